// SPDX-License-Identifier: MIT
/*
 * cipher.c - the one table of kernel TLS ciphers.
 *
 * Sizes and offsets come from <linux/tls.h>; every conversion between
 * libssl's key struct, the generic keyblock and the kernel struct goes
 * through this table.  There is no per-cipher switch anywhere else.
 */
#include "config.h"

#include <stddef.h>
#include <strings.h>
#include <linux/tls.h>

#include "internal.h"

#define KTLS_CIPHER(nm, evp, suite, ID, STRUCT, vers, hw)                  \
	{                                                                  \
		.name = nm, .evp_name = evp, .tls13_suite = suite,        \
		.kernel_id = TLS_CIPHER_##ID,                              \
		.key_size = TLS_CIPHER_##ID##_KEY_SIZE,                    \
		.iv_size = TLS_CIPHER_##ID##_IV_SIZE,                      \
		.salt_size = TLS_CIPHER_##ID##_SALT_SIZE,                  \
		.seq_size = TLS_CIPHER_##ID##_REC_SEQ_SIZE,                \
		.tag_size = TLS_CIPHER_##ID##_TAG_SIZE,                    \
		.info_size = sizeof(struct STRUCT),                        \
		.off_iv = offsetof(struct STRUCT, iv),                     \
		.off_key = offsetof(struct STRUCT, key),                   \
		.off_salt = offsetof(struct STRUCT, salt),                 \
		.off_seq = offsetof(struct STRUCT, rec_seq),               \
		.versions = vers, .hw_offloadable = hw,                    \
	}

/* Each entry's uapi sizes must fit the generic keyblock. */
#define KTLS_CHECK(ID, STRUCT)                                               \
	_Static_assert(TLS_CIPHER_##ID##_KEY_SIZE <= KTLS_MAX_KEY, #ID " key");  \
	_Static_assert(TLS_CIPHER_##ID##_IV_SIZE <= KTLS_MAX_IV, #ID " iv");     \
	_Static_assert(TLS_CIPHER_##ID##_SALT_SIZE <= KTLS_MAX_SALT, #ID " salt"); \
	_Static_assert(TLS_CIPHER_##ID##_REC_SEQ_SIZE == KTLS_SEQ_SIZE, #ID " seq"); \
	_Static_assert(sizeof(struct STRUCT) <= KTLS_MAX_INFO, #ID " info");     \
	_Static_assert(sizeof(((struct STRUCT *)0)->key) == TLS_CIPHER_##ID##_KEY_SIZE, #ID " key field"); \
	_Static_assert(sizeof(((struct STRUCT *)0)->iv) == TLS_CIPHER_##ID##_IV_SIZE, #ID " iv field")

KTLS_CHECK(AES_GCM_128, tls12_crypto_info_aes_gcm_128);
KTLS_CHECK(AES_GCM_256, tls12_crypto_info_aes_gcm_256);
KTLS_CHECK(AES_CCM_128, tls12_crypto_info_aes_ccm_128);
KTLS_CHECK(CHACHA20_POLY1305, tls12_crypto_info_chacha20_poly1305);
KTLS_CHECK(SM4_GCM, tls12_crypto_info_sm4_gcm);
KTLS_CHECK(SM4_CCM, tls12_crypto_info_sm4_ccm);
KTLS_CHECK(ARIA_GCM_128, tls12_crypto_info_aria_gcm_128);
KTLS_CHECK(ARIA_GCM_256, tls12_crypto_info_aria_gcm_256);

static const struct ktls_cipher ktls_ciphers[] = {
	KTLS_CIPHER("AES-128-GCM", "AES-128-GCM", "TLS_AES_128_GCM_SHA256",
		    AES_GCM_128, tls12_crypto_info_aes_gcm_128,
		    KTLS_V12 | KTLS_V13, true),
	KTLS_CIPHER("AES-256-GCM", "AES-256-GCM", "TLS_AES_256_GCM_SHA384",
		    AES_GCM_256, tls12_crypto_info_aes_gcm_256,
		    KTLS_V12 | KTLS_V13, true),
	KTLS_CIPHER("AES-128-CCM", "AES-128-CCM", "TLS_AES_128_CCM_SHA256",
		    AES_CCM_128, tls12_crypto_info_aes_ccm_128,
		    KTLS_V12 | KTLS_V13, false),
	KTLS_CIPHER("CHACHA20-POLY1305", "ChaCha20-Poly1305",
		    "TLS_CHACHA20_POLY1305_SHA256",
		    CHACHA20_POLY1305, tls12_crypto_info_chacha20_poly1305,
		    KTLS_V12 | KTLS_V13, false),
	KTLS_CIPHER("SM4-GCM", "SM4-GCM", "TLS_SM4_GCM_SM3",
		    SM4_GCM, tls12_crypto_info_sm4_gcm,
		    KTLS_V12 | KTLS_V13, false),
	KTLS_CIPHER("SM4-CCM", "SM4-CCM", "TLS_SM4_CCM_SM3",
		    SM4_CCM, tls12_crypto_info_sm4_ccm,
		    KTLS_V12 | KTLS_V13, false),
	KTLS_CIPHER("ARIA-128-GCM", "ARIA-128-GCM", NULL,
		    ARIA_GCM_128, tls12_crypto_info_aria_gcm_128,
		    KTLS_V12, false),
	KTLS_CIPHER("ARIA-256-GCM", "ARIA-256-GCM", NULL,
		    ARIA_GCM_256, tls12_crypto_info_aria_gcm_256,
		    KTLS_V12, false),
};

_Static_assert(sizeof(ktls_ciphers) / sizeof(ktls_ciphers[0]) <= KTLS_PROBE_MAX_CIPHERS,
	       "probe arrays too small for the cipher table");
_Static_assert(sizeof(ktls_ciphers) / sizeof(ktls_ciphers[0]) <= 32,
	       "policy cipher mask too small for the cipher table");

#define NCIPHERS (sizeof(ktls_ciphers) / sizeof(ktls_ciphers[0]))

size_t ktls_cipher_count(void)
{
	return NCIPHERS;
}

const struct ktls_cipher *ktls_cipher_at(size_t i)
{
	return i < NCIPHERS ? &ktls_ciphers[i] : NULL;
}

const struct ktls_cipher *ktls_cipher_by_id(uint16_t kernel_id)
{
	for (size_t i = 0; i < NCIPHERS; i++)
		if (ktls_ciphers[i].kernel_id == kernel_id)
			return &ktls_ciphers[i];
	return NULL;
}

const struct ktls_cipher *ktls_cipher_by_name(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < NCIPHERS; i++)
		if (!strcasecmp(ktls_ciphers[i].name, name) ||
		    !strcasecmp(ktls_ciphers[i].evp_name, name))
			return &ktls_ciphers[i];
	return NULL;
}

size_t ktls_cipher_index(const struct ktls_cipher *c)
{
	return (size_t)(c - ktls_ciphers);
}

bool ktls_cipher_allows(const struct ktls_cipher *c, uint16_t version)
{
	if (version == KTLS_TLS12)
		return c->versions & KTLS_V12;
	if (version == KTLS_TLS13)
		return c->versions & KTLS_V13;
	return false;
}
