/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - shared by the fuzz targets.  Each target is one file defining
 * LLVMFuzzerTestOneInput(); it links with libFuzzer (--enable-fuzzing) or
 * with replay.c, which runs it over the checked-in corpus in `make check`.
 */
#ifndef KTLS_FUZZ_H
#define KTLS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property of the code under test does not hold: a finding. */
#define FUZZ_ASSERT(cond)                                                   \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "%s:%d: fuzz assertion failed: %s\n", \
				__FILE__, __LINE__, #cond);                 \
			abort();                                            \
		}                                                           \
	} while (0)

#endif
