// SPDX-License-Identifier: MIT
/*
 * keyblock.c - libssl's / the kernel's crypto_info <-> generic keyblock.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <linux/tls.h>
#include <openssl/crypto.h>

#include "internal.h"

int ktls_secret_keyblock(const struct ktls_secret *sec, const struct ktls_cipher *c,
			 struct ktls_keyblock *kb)
{
	uint8_t key[KTLS_MAX_KEY], iv[KTLS_MAX_IV + KTLS_MAX_SALT];
	size_t ivlen;
	int ret;

	if (!sec || !c || !kb)
		return -EINVAL;
	ivlen = (size_t)c->salt_size + c->iv_size;
	ret = ktls_secret_key_iv(sec, key, c->key_size, iv, ivlen);
	if (!ret)
		ret = ktls_keyblock_from_tls13(kb, c, key, c->key_size, iv, ivlen);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(iv, sizeof(iv));
	return ret;
}

int ktls_secret_peek_next(const struct ktls_secret *sec, const struct ktls_cipher *c,
			  struct ktls_keyblock *kb)
{
	struct ktls_secret tmp;
	int ret;

	if (!sec)
		return -EINVAL;
	tmp = *sec;
	ret = ktls_secret_next(&tmp);
	if (!ret)
		ret = ktls_secret_keyblock(&tmp, c, kb);
	ktls_secret_wipe(&tmp);
	return ret;
}

int ktls_keyblock_from_info(struct ktls_keyblock *kb, const void *info, size_t len)
{
	struct tls_crypto_info hdr;
	const uint8_t *p = info;
	const struct ktls_cipher *c;

	if (!kb || !info || len < sizeof(hdr))
		return -EINVAL;
	memcpy(&hdr, info, sizeof(hdr));
	if (hdr.version != KTLS_TLS12 && hdr.version != KTLS_TLS13)
		return -EINVAL;
	c = ktls_cipher_by_id(hdr.cipher_type);
	if (!c)
		return -ENOENT;
	if (len < c->info_size || !ktls_cipher_allows(c, hdr.version))
		return -EINVAL;

	memset(kb, 0, sizeof(*kb));
	kb->version = hdr.version;
	kb->cipher = c;
	memcpy(kb->key, p + c->off_key, c->key_size);
	memcpy(kb->salt, p + c->off_salt, c->salt_size);
	memcpy(kb->iv, p + c->off_iv, c->iv_size);
	memcpy(kb->seq, p + c->off_seq, c->seq_size);
	return 0;
}

int ktls_keyblock_to_info(const struct ktls_keyblock *kb, void *buf, size_t cap)
{
	const struct ktls_cipher *c;
	struct tls_crypto_info hdr;
	uint8_t *p = buf;

	if (!kb || !kb->cipher || !buf)
		return -EINVAL;
	c = kb->cipher;
	if (cap < c->info_size)
		return -ENOSPC;
	memset(buf, 0, c->info_size);
	hdr.version = kb->version;
	hdr.cipher_type = c->kernel_id;
	memcpy(p, &hdr, sizeof(hdr));
	memcpy(p + c->off_key, kb->key, c->key_size);
	memcpy(p + c->off_salt, kb->salt, c->salt_size);
	memcpy(p + c->off_iv, kb->iv, c->iv_size);
	memcpy(p + c->off_seq, kb->seq, c->seq_size);
	return c->info_size;
}

int ktls_keyblock_from_tls13(struct ktls_keyblock *kb, const struct ktls_cipher *c,
			     const uint8_t *key, size_t key_len,
			     const uint8_t *iv, size_t iv_len)
{
	if (!kb || !c || !key || !iv || !(c->versions & KTLS_V13))
		return -EINVAL;
	/* TLS 1.3 per-record nonce: salt is the head of the IV, iv the rest. */
	if (key_len != c->key_size || iv_len != (size_t)c->salt_size + c->iv_size)
		return -EINVAL;
	memset(kb, 0, sizeof(*kb));
	kb->version = KTLS_TLS13;
	kb->cipher = c;
	memcpy(kb->key, key, key_len);
	memcpy(kb->salt, iv, c->salt_size);
	memcpy(kb->iv, iv + c->salt_size, c->iv_size);
	return 0;
}

void ktls_keyblock_wipe(struct ktls_keyblock *kb)
{
	if (kb)
		OPENSSL_cleanse(kb, sizeof(*kb));
}
