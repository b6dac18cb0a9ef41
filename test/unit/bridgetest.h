/* SPDX-License-Identifier: MIT */
/*
 * bridgetest.h - what the bio-*-test programs share: a bridge BIO over a
 * loopback pair, libssl's side of the contract (the key offer, ctrl 72),
 * TLS 1.3 key generations, and the fake kernels their cases start from.
 * Checks made here count for the case that called.
 */
#ifndef BRIDGETEST_H
#define BRIDGETEST_H

#include <stdbool.h>
#include <stdint.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "fakekernel.h"

/* The bridge's connection behind b. */
static inline struct ktls_conn *conn(BIO *b)
{
	return ktls_conn_from_bio(b);
}

/* A bridge BIO on fd (not closed with it), with the default policy
 * changed by tweak when there is one. */
BIO *bridge(int fd, void (*tweak)(struct ktls_policy *));

/* The end of a case: the BIO freed, both ends of the pair closed. */
void bridge_close(BIO *bio, int a, int b);
/* The same for an SSL that holds the bridge BIO, and its SSL_CTX. */
void ssl_close(SSL *ssl, SSL_CTX *ctx, int a, int b);

/* libssl offers kb (ctrl 72): tx, or rx.  The ctrl's answer. */
long offer_kb(BIO *b, const struct ktls_keyblock *kb, bool tx);
/* The same, with a dummy key of that cipher and version. */
long offer(BIO *b, const char *cipher, uint16_t version, bool tx);
/* The AES-128-GCM info struct of generation gen of the chain from s0
 * (32 bytes, SHA256) into info (KTLS_MAX_INFO bytes). */
void gen_info(const uint8_t *s0, int gen, uint8_t *info);
/* libssl 3.2+ offering generation gen of the chain from s0. */
long offer_gen(BIO *b, const uint8_t *s0, int gen, bool tx);

/* Policy tweaks for bridge(). */
void p_always(struct ktls_policy *p);	/* tls13 = always */
void p_ku4(struct ktls_policy *p);	/* a KeyUpdate every 4 records */

/* TX and RX TLS 1.3 in a fake kernel that re-keys (and pre-stages when
 * asked), both offered generation 0 of the chain from s0, the RX secret
 * set and its next key staged as the key-log callback does.  *a is the
 * bridge's end of the pair, *b the peer's. */
BIO *rx_bridge(int *a, int *b, const uint8_t *s0, bool prestage,
	       void (*tweak)(struct ktls_policy *));
/* The same on fd a of a pair, in the fake kernel as it is now. */
BIO *rx_bridge_on(int a, const uint8_t *s0, void (*tweak)(struct ktls_policy *));
/* An SSL over bio, in hand-off mode, and its SSL_CTX in *ctx. */
SSL *handoff_ssl(BIO *bio, SSL_CTX **ctx);

#endif
