// SPDX-License-Identifier: MIT
/*
 * walker.c - fuzz ktls_hs_count_keyupdates() (record.c), the walk of the
 * handshake messages in one record body, against a reference written
 * here as plainly as the contract in internal.h reads: 4-byte headers
 * (type, 24-bit length), a KeyUpdate (type 24) has a one-byte body of 0
 * or 1, the count of KeyUpdates and the last one's request flag, or
 * -EBADMSG for a truncated or malformed body.  Any disagreement aborts.
 */
#include "config.h"

#include <errno.h>

#include "fuzz.h"
#include "internal.h"

/* Reference: message by message, by index. */
static int ref_count(const uint8_t *p, size_t len, int *requested)
{
	size_t off = 0;
	int n = 0;

	while (off < len) {
		size_t body;

		if (len - off < 4)
			return -EBADMSG;
		body = (size_t)p[off + 1] * 65536 + (size_t)p[off + 2] * 256 + p[off + 3];
		if (body > len - off - 4)
			return -EBADMSG;
		if (p[off] == 24) {
			if (body != 1)
				return -EBADMSG;
			if (p[off + 4] != 0 && p[off + 4] != 1)
				return -EBADMSG;
			*requested = p[off + 4];
			n++;
		}
		off += 4 + body;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int req = -1, ref_req = -1, n, ref;

	n = ktls_hs_count_keyupdates(data, size, &req);
	ref = ref_count(data, size, &ref_req);
	FUZZ_ASSERT(n == ref);
	/* the flag is the last KeyUpdate's when the walk succeeded */
	if (n > 0)
		FUZZ_ASSERT(req == ref_req);
	if (n == 0)
		FUZZ_ASSERT(req == -1);
	/* no flag wanted: the same answer */
	FUZZ_ASSERT(ktls_hs_count_keyupdates(data, size, NULL) == n);
	return 0;
}
