/* SPDX-License-Identifier: MIT */
/*
 * rekey.h - the TLS 1.3 traffic-secret chain of one direction.
 *
 * Generation 0 comes from libssl's key-log callback; generation N+1 is
 * HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length) (RFC 8446
 * 7.2), and each generation's key/iv are Expand-Label(secret, "key"/"iv").
 * The derivations use EVP_KDF "TLS13-KDF"; nothing here hand-rolls HKDF.
 *
 * The bottom layer: it knows secrets, labels and lengths, nothing of
 * ciphers, keyblocks or the kernel (ktls-bridge/keyblock.c turns its key
 * and iv into a keyblock), and builds and links alone (unit/rekey-test).
 * Functions return 0 or -errno and leave errno alone.
 */
#ifndef KTLS_REKEY_H
#define KTLS_REKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KTLS_MAX_SECRET 64

struct ktls_secret {
	uint8_t s[KTLS_MAX_SECRET];
	size_t len;		/* 0 = not known */
	char digest[16];	/* "SHA256" / "SHA384" / "SM3" */
	uint64_t gen;		/* generation number of s */
};

/* Set generation 0 from raw bytes; digest is the suite's hash name. */
int ktls_secret_set(struct ktls_secret *sec, const uint8_t *s, size_t len,
		    const char *digest);
/* Advance to generation gen+1, wiping the old secret. */
int ktls_secret_next(struct ktls_secret *sec);
/* The current generation's write key and iv (RFC 8446 7.3), key_len and
 * iv_len bytes (the iv is the whole nonce base: salt and explicit part). */
int ktls_secret_key_iv(const struct ktls_secret *sec, uint8_t *key, size_t key_len,
		       uint8_t *iv, size_t iv_len);
/* Wipe. */
void ktls_secret_wipe(struct ktls_secret *sec);

#endif
