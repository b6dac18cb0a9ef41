// SPDX-License-Identifier: MIT
/*
 * bridgetest.c - helpers shared by the bio-*-test programs (see
 * bridgetest.h).
 */
#include <string.h>
#include <unistd.h>

#include "bridgetest.h"
#include "ktest.h"

BIO *bridge(int fd, void (*tweak)(struct ktls_policy *))
{
	struct ktls_policy p;

	ktls_policy_default(&p);
	if (tweak)
		tweak(&p);
	return ktls_bio_new(fd, BIO_NOCLOSE, &p);
}

void bridge_close(BIO *bio, int a, int b)
{
	BIO_free(bio);
	close(a);
	close(b);
}

void ssl_close(SSL *ssl, SSL_CTX *ctx, int a, int b)
{
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(a);
	close(b);
}

/* ctrl 72's argument: the key struct, then a size_t length. */
long offer_kb(BIO *b, const struct ktls_keyblock *kb, bool tx)
{
	unsigned char buf[KTLS_MAX_INFO + sizeof(size_t)];

	memset(buf, 0, sizeof(buf));
	ktls_keyblock_to_info(kb, buf, sizeof(buf));
	return BIO_ctrl(b, 72, tx, buf);
}

long offer(BIO *b, const char *cipher, uint16_t version, bool tx)
{
	struct ktls_keyblock kb;

	memset(&kb, 0x11, sizeof(kb));
	kb.cipher = ktls_cipher_by_name(cipher);
	kb.version = version;
	return offer_kb(b, &kb, tx);
}

void gen_info(const uint8_t *s0, int gen, uint8_t *info)
{
	struct ktls_secret ref;
	struct ktls_keyblock kb;

	ktls_secret_set(&ref, s0, 32, "SHA256");
	while (gen--)
		ktls_secret_next(&ref);
	ktls_secret_keyblock(&ref, ktls_cipher_by_name("AES-128-GCM"), &kb);
	memset(info, 0, KTLS_MAX_INFO);
	ktls_keyblock_to_info(&kb, info, KTLS_MAX_INFO);
	ktls_keyblock_wipe(&kb);
	ktls_secret_wipe(&ref);
}

long offer_gen(BIO *b, const uint8_t *s0, int gen, bool tx)
{
	unsigned char buf[KTLS_MAX_INFO + sizeof(size_t)];

	memset(buf, 0, sizeof(buf));
	gen_info(s0, gen, buf);
	return BIO_ctrl(b, 72, tx, buf);
}

void p_always(struct ktls_policy *p)
{
	p->tls13 = KTLS_TLS13_ALWAYS;
}

void p_ku4(struct ktls_policy *p)
{
	p->keyupdate_records = 4;
}

BIO *rx_bridge_on(int a, const uint8_t *s0, void (*tweak)(struct ktls_policy *))
{
	BIO *bio = bridge(a, tweak);

	CHECK_EQ(offer_gen(bio, s0, 0, true), 1);
	CHECK_EQ(offer_gen(bio, s0, 0, false), 1);
	ktls_secret_set(&conn(bio)->rx.secret, s0, 32, "SHA256");
	ktls_key_stage(conn(bio), false);	/* as the key-log callback does */
	return bio;
}

BIO *rx_bridge(int *a, int *b, const uint8_t *s0, bool prestage,
	       void (*tweak)(struct ktls_policy *))
{
	BIO *bio;

	fake_reset_rekey(prestage);
	tcp_pair(a, b);
	bio = rx_bridge_on(*a, s0, tweak);
	CHECK_EQ(fake.staged_rx, prestage);
	return bio;
}

SSL *handoff_ssl(BIO *bio, SSL_CTX **ctx)
{
	SSL *ssl;

	*ctx = SSL_CTX_new(TLS_method());
	ssl = SSL_new(*ctx);
	SSL_set_bio(ssl, bio, bio);
	conn(bio)->handoff = true;
	conn(bio)->ssl = ssl;
	return ssl;
}
