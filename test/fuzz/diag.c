// SPDX-License-Identifier: MIT
/*
 * diag.c - fuzz the parser of the kernel's sock_diag answer (diag.c,
 * ktls_diag_parse): netlink messages, an inet_diag_msg, then nested
 * attributes INET_DIAG_ULP_INFO > INET_ULP_INFO_TLS > TLS_INFO_TXCONF and
 * TLS_INFO_RXCONF.  The kernel is trusted to send well-formed answers,
 * but a parser that reads past what it was given is a bug wherever the
 * bytes come from.
 *
 * Input: the bytes recv() returned, as they are, in a buffer of exactly
 * that size (so that ASan sees a read past the end).
 *
 * Checked: the answer is 0 (both confs then in 0..65535), -ENOENT,
 * -EBADMSG or the negative errno of an NLMSG_ERROR message; confs are 0
 * unless the answer is 0; parsing is deterministic.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	int tx = -1, rx = -1, tx2 = -1, rx2 = -1, r, r2;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	r = ktls_diag_parse(buf, size, &tx, &rx);
	r2 = ktls_diag_parse(buf, size, &tx2, &rx2);
	FUZZ_ASSERT(r == r2 && tx == tx2 && rx == rx2);
	FUZZ_ASSERT(r <= 0);
	if (r == 0)
		FUZZ_ASSERT(tx >= 0 && tx <= 0xffff && rx >= 0 && rx <= 0xffff);
	else
		FUZZ_ASSERT(tx == 0 && rx == 0);
	free(buf);
	return 0;
}
