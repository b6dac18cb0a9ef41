// SPDX-License-Identifier: MIT
/*
 * cipher-test: the cipher table is consistent with <linux/tls.h>, lookups
 * behave, and every conversion (kernel struct <-> keyblock <-> TLS 1.3
 * key/iv) round-trips for every entry; bad structs are refused.
 */
#include <errno.h>
#include <string.h>
#include <linux/tls.h>

#include "internal.h"
#include "ktest.h"

int main(void)
{
	size_t n = ktls_cipher_count(), i;
	uint8_t info[KTLS_MAX_INFO], back[KTLS_MAX_INFO];
	struct ktls_keyblock kb;

	CHECK_EQ(n, 8);
	CHECK(ktls_cipher_at(n) == NULL);
	for (i = 0; i < n; i++) {
		const struct ktls_cipher *c = ktls_cipher_at(i);
		struct tls_crypto_info hdr = { .version = KTLS_TLS12 };
		int len;

		CHECK(c != NULL);
		CHECK(ktls_cipher_by_id(c->kernel_id) == c);
		CHECK(ktls_cipher_by_name(c->name) == c);
		CHECK(ktls_cipher_by_name(c->evp_name) == c);
		CHECK_EQ(ktls_cipher_index(c), i);
		CHECK(c->off_key + c->key_size <= c->info_size);
		CHECK(c->off_seq + c->seq_size <= c->info_size);

		/* kernel struct -> keyblock -> kernel struct is the identity */
		hdr.cipher_type = c->kernel_id;
		for (size_t j = 0; j < sizeof(info); j++)
			info[j] = (uint8_t)(j * 7 + i);
		memcpy(info, &hdr, sizeof(hdr));
		CHECK_EQ(ktls_keyblock_from_info(&kb, info, c->info_size), 0);
		CHECK(kb.cipher == c);
		memset(back, 0, sizeof(back));
		len = ktls_keyblock_to_info(&kb, back, sizeof(back));
		CHECK_EQ(len, c->info_size);
		CHECK(!memcmp(info, back, c->info_size));
		CHECK_EQ(ktls_keyblock_to_info(&kb, back, c->info_size - 1), -ENOSPC);
		CHECK_EQ(ktls_keyblock_from_info(&kb, info, c->info_size - 1), -EINVAL);

		/* TLS 1.3: key + 12-byte IV split into salt || iv */
		if (c->versions & KTLS_V13) {
			uint8_t key[KTLS_MAX_KEY], iv[12];

			memset(key, 0xab, sizeof(key));
			for (int j = 0; j < 12; j++)
				iv[j] = (uint8_t)j;
			CHECK_EQ(c->salt_size + c->iv_size, 12);
			CHECK_EQ(ktls_keyblock_from_tls13(&kb, c, key, c->key_size, iv, 12), 0);
			CHECK_EQ(kb.version, KTLS_TLS13);
			CHECK(!memcmp(kb.salt, iv, c->salt_size));
			CHECK(!memcmp(kb.iv, iv + c->salt_size, c->iv_size));
			CHECK_EQ(ktls_keyblock_from_tls13(&kb, c, key, c->key_size, iv, 11), -EINVAL);
		} else {
			uint8_t key[KTLS_MAX_KEY] = { 0 }, iv[12] = { 0 };

			CHECK_EQ(ktls_keyblock_from_tls13(&kb, c, key, c->key_size, iv, 12), -EINVAL);
			hdr.version = KTLS_TLS13;
			memcpy(info, &hdr, sizeof(hdr));
			CHECK_EQ(ktls_keyblock_from_info(&kb, info, c->info_size), -EINVAL);
		}
		ktls_keyblock_wipe(&kb);
		for (size_t j = 0; j < sizeof(kb); j++)
			CHECK(((uint8_t *)&kb)[j] == 0);
	}

	/* unknown cipher, unknown version, NULL */
	{
		struct tls_crypto_info hdr = { .version = KTLS_TLS12, .cipher_type = 99 };

		memset(info, 0, sizeof(info));
		memcpy(info, &hdr, sizeof(hdr));
		CHECK_EQ(ktls_keyblock_from_info(&kb, info, sizeof(info)), -ENOENT);
		hdr.version = 0x0302;
		hdr.cipher_type = TLS_CIPHER_AES_GCM_128;
		memcpy(info, &hdr, sizeof(hdr));
		CHECK_EQ(ktls_keyblock_from_info(&kb, info, sizeof(info)), -EINVAL);
		CHECK_EQ(ktls_keyblock_from_info(NULL, info, sizeof(info)), -EINVAL);
		CHECK(ktls_cipher_by_id(0) == NULL);
		CHECK(ktls_cipher_by_name("RC4") == NULL);
		CHECK(ktls_cipher_by_name(NULL) == NULL);
		CHECK(ktls_cipher_by_name("chacha20-poly1305") != NULL);
	}
	return ktest_done("cipher-test");
}
