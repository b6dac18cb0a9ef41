/* SPDX-License-Identifier: MIT */
/*
 * rekey.h - the TLS 1.3 traffic-secret chain of one direction.
 *
 * Generation 0 comes from libssl's key-log callback; generation N+1 is
 * HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length) (RFC 8446
 * 7.2), and each generation's key/iv are Expand-Label(secret, "key"/"iv").
 * The derivations use EVP_KDF "TLS13-KDF"; nothing here hand-rolls HKDF.
 */
#ifndef KTLS_REKEY_H
#define KTLS_REKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ktls-bridge.h"

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
/* The keyblock (key, iv, seq 0) of the current generation for cipher c. */
int ktls_secret_keyblock(const struct ktls_secret *sec, const struct ktls_cipher *c,
			 struct ktls_keyblock *kb);
/* A keyblock for generation gen+1 without advancing sec. */
int ktls_secret_peek_next(const struct ktls_secret *sec, const struct ktls_cipher *c,
			  struct ktls_keyblock *kb);
/* Wipe. */
void ktls_secret_wipe(struct ktls_secret *sec);

#endif
