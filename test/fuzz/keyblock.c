// SPDX-License-Identifier: MIT
/*
 * keyblock.c - fuzz ktls_keyblock_from_info() (keyblock.c), the reader of
 * the crypto_info structs libssl hands over, with any bytes and length.
 *
 * Input: byte 0 is the capacity (mod KTLS_MAX_INFO + 1) given to
 * ktls_keyblock_to_info(); the rest is the struct.  When the reader
 * accepts it, the keyblock must name a table cipher allowed for the
 * version, writing it back must fill exactly the cipher's info_size
 * (-ENOSPC when the capacity is short), and reading that again must give
 * the same keyblock.  Every keyblock is wiped.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "internal.h"

static bool same_keyblock(const struct ktls_keyblock *a, const struct ktls_keyblock *b)
{
	return a->version == b->version && a->cipher == b->cipher &&
	       !memcmp(a->key, b->key, sizeof(a->key)) &&
	       !memcmp(a->salt, b->salt, sizeof(a->salt)) &&
	       !memcmp(a->iv, b->iv, sizeof(a->iv)) &&
	       !memcmp(a->seq, b->seq, sizeof(a->seq));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ktls_keyblock kb, again;
	const struct ktls_cipher *c;
	uint8_t *out;
	size_t cap;
	int ret;

	if (!size)
		return 0;
	cap = data[0] % (KTLS_MAX_INFO + 1);
	ret = ktls_keyblock_from_info(&kb, data + 1, size - 1);
	FUZZ_ASSERT(ret == 0 || ret == -EINVAL || ret == -ENOENT);
	if (ret)
		return 0;
	c = kb.cipher;
	FUZZ_ASSERT(c && ktls_cipher_by_id(c->kernel_id) == c);
	FUZZ_ASSERT(kb.version == KTLS_TLS12 || kb.version == KTLS_TLS13);
	FUZZ_ASSERT(ktls_cipher_allows(c, kb.version));
	FUZZ_ASSERT(c->info_size <= size - 1 && c->info_size <= KTLS_MAX_INFO);

	/* an exact-size buffer: a write past cap is caught */
	out = malloc(cap ? cap : 1);
	FUZZ_ASSERT(out);
	ret = ktls_keyblock_to_info(&kb, out, cap);
	if (cap < c->info_size) {
		FUZZ_ASSERT(ret == -ENOSPC);
	} else {
		FUZZ_ASSERT(ret == c->info_size);
		FUZZ_ASSERT(ktls_keyblock_from_info(&again, out, (size_t)ret) == 0);
		FUZZ_ASSERT(same_keyblock(&kb, &again));
		/* the key bytes are where the input had them */
		FUZZ_ASSERT(!memcmp(out + c->off_key, data + 1 + c->off_key, c->key_size));
		ktls_keyblock_wipe(&again);
	}
	memset(out, 0, cap ? cap : 1);
	free(out);
	ktls_keyblock_wipe(&kb);
	return 0;
}
