/* SPDX-License-Identifier: MIT */
/* ktest.h - tiny helpers for the standalone unit tests (exit 0/77/1). */
#ifndef KTEST_H
#define KTEST_H

#include <stdio.h>
#include <stdlib.h>

#define T_PASS 0
#define T_SKIP 77
#define T_FAIL 1

static int ktest_failures;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                            \
			ktest_failures++;                                    \
		}                                                            \
	} while (0)

#define CHECK_EQ(a, b)                                                       \
	do {                                                                 \
		long long _a = (long long)(a), _b = (long long)(b);          \
		if (_a != _b) {                                              \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", \
				__FILE__, __LINE__, #a, #b, _a, _b);         \
			ktest_failures++;                                    \
		}                                                            \
	} while (0)

static inline int ktest_done(const char *name)
{
	if (ktest_failures) {
		fprintf(stderr, "%s: %d check(s) failed\n", name, ktest_failures);
		return T_FAIL;
	}
	printf("%s: all checks passed\n", name);
	return T_PASS;
}

#endif
