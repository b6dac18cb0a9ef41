// SPDX-License-Identifier: MIT
/*
 * secret-test: the TLS 1.3 secret chain.  Key/IV derivation matches the
 * RFC 8448 (simple 1-RTT) server application traffic keys, and the
 * "traffic upd" step matches an independent HKDF-Expand over a hand-built
 * HkdfLabel (RFC 8446 7.1) computed with EVP_KDF "HKDF".
 */
#include <errno.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "internal.h"
#include "ktest.h"

static int unhex(const char *h, uint8_t *out)
{
	int n = 0;

	for (; h[0] && h[1]; h += 2) {
		if (*h == ' ') {
			h--;
			continue;
		}
		sscanf(h, "%2hhx", &out[n++]);
	}
	return n;
}

/* HKDF-Expand(secret, HkdfLabel(len, "tls13 " label, ""), len) */
static void ref_expand(const uint8_t *secret, size_t slen, const char *label,
		       uint8_t *out, size_t len)
{
	uint8_t info[2 + 1 + 255 + 1];
	size_t ll = 6 + strlen(label), n = 0;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
	OSSL_PARAM p[5];

	info[n++] = (uint8_t)(len >> 8);
	info[n++] = (uint8_t)len;
	info[n++] = (uint8_t)ll;
	memcpy(info + n, "tls13 ", 6);
	n += 6;
	memcpy(info + n, label, strlen(label));
	n += strlen(label);
	info[n++] = 0;
	p[0] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	p[1] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, slen);
	p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n);
	p[4] = OSSL_PARAM_construct_end();
	CHECK(EVP_KDF_derive(ctx, out, len, p) > 0);
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
}

int main(void)
{
	/* RFC 8448 section 3, server application traffic secret 0 */
	static const char s0_hex[] =
		"a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643";
	static const char key_hex[] = "9f02283b6c9c07efc26bb9f2ac92e356";
	static const char iv_hex[] = "cf782b88dd83549aadf1e984";
	const struct ktls_cipher *c = ktls_cipher_by_name("AES-128-GCM");
	uint8_t s0[32], key[16], iv[12], ref[32], refkey[16], refiv[12];
	struct ktls_secret sec = { 0 };
	struct ktls_keyblock kb, peek;

	CHECK_EQ(unhex(s0_hex, s0), 32);
	unhex(key_hex, key);
	unhex(iv_hex, iv);

	CHECK_EQ(ktls_secret_keyblock(&sec, c, &kb), -EINVAL);	/* no secret yet */
	CHECK_EQ(ktls_secret_set(&sec, s0, sizeof(s0), "SHA256"), 0);
	CHECK_EQ(ktls_secret_keyblock(&sec, c, &kb), 0);
	CHECK(!memcmp(kb.key, key, 16));
	CHECK(!memcmp(kb.salt, iv, 4));
	CHECK(!memcmp(kb.iv, iv + 4, 8));
	CHECK(!memcmp(kb.seq, "\0\0\0\0\0\0\0\0", 8));

	/* generation 1, peeked and then taken, equals the reference */
	ref_expand(s0, 32, "traffic upd", ref, 32);
	ref_expand(ref, 32, "key", refkey, 16);
	ref_expand(ref, 32, "iv", refiv, 12);
	CHECK_EQ(ktls_secret_peek_next(&sec, c, &peek), 0);
	CHECK_EQ(sec.gen, 0);
	CHECK(!memcmp(sec.s, s0, 32));
	CHECK_EQ(ktls_secret_next(&sec), 0);
	CHECK_EQ(sec.gen, 1);
	CHECK(!memcmp(sec.s, ref, 32));
	CHECK_EQ(ktls_secret_keyblock(&sec, c, &kb), 0);
	CHECK(!memcmp(kb.key, refkey, 16));
	CHECK(!memcmp(kb.salt, refiv, 4) && !memcmp(kb.iv, refiv + 4, 8));
	CHECK(!memcmp(&peek, &kb, sizeof(kb)));

	/* a key/nonce pair is never repeated along the chain */
	for (int g = 0; g < 64; g++) {
		struct ktls_keyblock prev = kb;

		CHECK_EQ(ktls_secret_next(&sec), 0);
		CHECK_EQ(ktls_secret_keyblock(&sec, c, &kb), 0);
		CHECK(memcmp(prev.key, kb.key, 16) || memcmp(prev.iv, kb.iv, 8));
	}
	CHECK_EQ(sec.gen, 65);

	/* bad input */
	CHECK_EQ(ktls_secret_set(&sec, s0, 0, "SHA256"), -EINVAL);
	CHECK_EQ(ktls_secret_set(&sec, s0, 65, "SHA256"), -EINVAL);
	CHECK_EQ(ktls_secret_set(&sec, s0, 32, "NO-SUCH-DIGEST"), 0);
	CHECK(ktls_secret_next(&sec) < 0);

	ktls_secret_wipe(&sec);
	CHECK_EQ(sec.len, 0);
	/* the bytes, not only the length */
	for (size_t i = 0; i < sizeof(sec.s); i++)
		CHECK_EQ(sec.s[i], 0);
	return ktest_done("secret-test");
}
