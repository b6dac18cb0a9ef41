// SPDX-License-Identifier: MIT
/*
 * secret.c - one direction's TLS 1.3 traffic-secret chain.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "rekey.h"

/* HKDF-Expand-Label(secret, label, "", outlen) via TLS13-KDF. */
static int expand_label(const char *digest, const uint8_t *secret, size_t slen,
			const char *label, uint8_t *out, size_t outlen)
{
	static const unsigned char prefix[] = "tls13 ";
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
	EVP_KDF_CTX *kctx = NULL;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, ret = -EIO;
	OSSL_PARAM params[6], *p = params;

	if (!kdf)
		return -ENOSYS;
	kctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (!kctx)
		return -ENOMEM;
	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)digest, 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, slen);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, (void *)prefix,
						 sizeof(prefix) - 1);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (void *)label,
						 strlen(label));
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, outlen, params) > 0)
		ret = 0;
	EVP_KDF_CTX_free(kctx);
	return ret;
}

int ktls_secret_set(struct ktls_secret *sec, const uint8_t *s, size_t len,
		    const char *digest)
{
	if (!sec || !s || !digest || !len || len > sizeof(sec->s) ||
	    strlen(digest) >= sizeof(sec->digest))
		return -EINVAL;
	ktls_secret_wipe(sec);
	memcpy(sec->s, s, len);
	sec->len = len;
	strcpy(sec->digest, digest);
	sec->gen = 0;
	return 0;
}

int ktls_secret_next(struct ktls_secret *sec)
{
	uint8_t next[KTLS_MAX_SECRET];
	int ret;

	if (!sec || !sec->len)
		return -EINVAL;
	ret = expand_label(sec->digest, sec->s, sec->len, "traffic upd", next, sec->len);
	if (!ret) {
		memcpy(sec->s, next, sec->len);
		sec->gen++;
	}
	OPENSSL_cleanse(next, sizeof(next));
	return ret;
}

int ktls_secret_key_iv(const struct ktls_secret *sec, uint8_t *key, size_t key_len,
		       uint8_t *iv, size_t iv_len)
{
	int ret;

	if (!sec || !sec->len || !key || !iv || !key_len || !iv_len)
		return -EINVAL;
	ret = expand_label(sec->digest, sec->s, sec->len, "key", key, key_len);
	if (!ret)
		ret = expand_label(sec->digest, sec->s, sec->len, "iv", iv, iv_len);
	if (ret) {
		OPENSSL_cleanse(key, key_len);
		OPENSSL_cleanse(iv, iv_len);
	}
	return ret;
}

void ktls_secret_wipe(struct ktls_secret *sec)
{
	if (sec)
		OPENSSL_cleanse(sec, sizeof(*sec));
}
