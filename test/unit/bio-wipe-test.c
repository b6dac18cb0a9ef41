// SPDX-License-Identifier: MIT
/*
 * bio-wipe-test: no key material in heap memory the bridge frees.
 *
 * The whole run is under wipecheck's allocator hooks (wipecheck.h), with
 * the fake kernel (fakekernel.h) taking the keys.  Transparent mode with
 * TLS 1.2 keys and with TLS 1.3 KeyUpdates both ways (libssl's, the
 * bridge's own at the record limit, the peer's); a kernel refusing both
 * directions, so that the secrets stay in the bridge; hand-off mode with
 * the peer's update_requested and the application's KeyUpdate.  Each
 * generation left behind must leave the heap at once, and no freed block
 * may hold a watched secret.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridgetest.h"
#include "ktest.h"
#include "wipecheck.h"

/* What the (fake) libssl hands over: text, so that a dump shows it. */
static const uint8_t wipe_s0_tx[32] = "wipecheck: TLS 1.3 TX secret g0!";
static const uint8_t wipe_s0_rx[32] = "wipecheck: TLS 1.3 RX secret g0!";

/* Watch generations 0..gens of the chain from s0 ("TX secret 1", ...):
 * each secret, and the AES-128-GCM key and IV made from it. */
static void watch_chain(const char *dir, const uint8_t *s0, int gens)
{
	const struct ktls_cipher *c = ktls_cipher_by_name("AES-128-GCM");
	struct ktls_keyblock kb;
	struct ktls_secret sec;
	char name[48];

	ktls_secret_set(&sec, s0, 32, "SHA256");
	for (int g = 0; g <= gens; g++) {
		if (g)
			ktls_secret_next(&sec);
		ktls_secret_keyblock(&sec, c, &kb);
		snprintf(name, sizeof(name), "%s secret %d", dir, g);
		wipecheck_secret(name, sec.s, sec.len);
		snprintf(name, sizeof(name), "%s key %d", dir, g);
		wipecheck_secret(name, kb.key, c->key_size);
		snprintf(name, sizeof(name), "%s iv %d", dir, g);
		wipecheck_secret(name, kb.iv, c->iv_size);
		ktls_keyblock_wipe(&kb);
	}
	ktls_secret_wipe(&sec);
}

/* TLS 1.3 generation 0 offered for both directions to a fake kernel that
 * re-keys and pre-stages (err: refuses TLS_TX and TLS_RX so), then the
 * secrets as the key-log callback leaves them, with the next keys staged
 * when the kernel took the keys. */
static BIO *wipe_bridge13(int *a, int *b, void (*tweak)(struct ktls_policy *), int err)
{
	BIO *bio;

	fake_reset_rekey(true);
	fake.tx_err = fake.rx_err = err;
	fake_pair(a, b);
	bio = bridge(*a, tweak);
	CHECK_EQ(offer_gen(bio, wipe_s0_tx, 0, true), !err);
	CHECK_EQ(offer_gen(bio, wipe_s0_rx, 0, false), !err);
	ktls_secret_set(&conn(bio)->tx.secret, wipe_s0_tx, 32, "SHA256");
	ktls_secret_set(&conn(bio)->rx.secret, wipe_s0_rx, 32, "SHA256");
	if (!err) {
		ktls_key_stage(conn(bio), true);
		ktls_key_stage(conn(bio), false);
		CHECK(fake.staged && fake.staged_rx);
	}
	/* the checker sees the bridge's heap: the secrets are in its conn */
	CHECK_EQ(wipecheck_live("TX secret 0", WIPECHECK_PROGRAM), 1);
	CHECK_EQ(wipecheck_live("RX secret 0", WIPECHECK_PROGRAM), 1);
	return bio;
}

/* Both directions moved on from generation 0: it left the heap at once. */
static void wipe_gen0_gone(void)
{
	CHECK_EQ(wipecheck_live("TX secret 0", WIPECHECK_ANY), 0);
	CHECK_EQ(wipecheck_live("RX secret 0", WIPECHECK_ANY), 0);
}

/* The end of a wipe case: the SSL (with its BIO) or the BIO is freed, and
 * no block freed on the way held a watched secret. */
static void wipe_done(SSL *ssl, SSL_CTX *ctx, BIO *bio, int a, int b)
{
	if (ssl)
		SSL_free(ssl);
	else
		BIO_free(bio);
	SSL_CTX_free(ctx);
	close(a);
	close(b);
	CHECK_EQ(wipecheck_hits(WIPECHECK_ANY), 0);
	wipecheck_forget();
}

/* Transparent mode.  TLS 1.2: both directions' keys to the kernel, a
 * record kept in part in the bridge's buffer; the keys never reach the
 * heap.  TLS 1.3: libssl's KeyUpdate (staged switch), the bridge's own at
 * the record limit (libssl's generation kept beside the kernel's), the
 * peer's (staged switch, the next staged after data); the generations left
 * behind leave the heap at once, and SSL_free takes the rest. */
static void case_wipe_transparent(void)
{
	static const uint8_t ku[] = { 24, 0, 0, 1, 0 };
	uint8_t buf[KTLS_REC_HDR + KTLS_REC_MAX], small[4];
	struct ktls_keyblock k12[2];
	SSL_CTX *ctx;
	SSL *ssl;
	int a, b;
	BIO *bio;

	for (int tx = 0; tx < 2; tx++) {
		memset(&k12[tx], 0, sizeof(k12[tx]));
		k12[tx].cipher = ktls_cipher_by_name("AES-128-GCM");
		k12[tx].version = KTLS_TLS12;
		memcpy(k12[tx].key, tx ? "wipecheck TX key" : "wipecheck RX key", 16);
		memcpy(k12[tx].iv, tx ? "TX iv 12" : "RX iv 12", 8);
		wipecheck_secret(tx ? "TLS 1.2 TX key" : "TLS 1.2 RX key", k12[tx].key, 16);
		wipecheck_secret(tx ? "TLS 1.2 TX iv" : "TLS 1.2 RX iv", k12[tx].iv, 8);
	}
	fake_reset();
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	CHECK_EQ(offer_kb(bio, &k12[1], true), 1);
	CHECK_EQ(offer_kb(bio, &k12[0], false), 1);
	CHECK_EQ(BIO_write(bio, "data", 4), 4);
	fake_record(KTLS_CT_APPDATA, "hello", 5);
	CHECK_EQ(BIO_read(bio, small, sizeof(small)), 4);
	CHECK_EQ(wipecheck_live(NULL, WIPECHECK_ANY), 0);
	wipe_done(NULL, NULL, bio, a, b);

	watch_chain("TX", wipe_s0_tx, 3);
	watch_chain("RX", wipe_s0_rx, 2);
	bio = wipe_bridge13(&a, &b, p_ku4, 0);
	ctx = SSL_CTX_new(TLS_method());
	ssl = SSL_new(ctx);
	SSL_set_bio(ssl, bio, bio);
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku, sizeof(ku)), (int)sizeof(ku));
	CHECK_EQ(fake.switches, 1);
	fake.tx_seq = 4;
	for (int i = 0; i < 5; i++)
		CHECK_EQ(BIO_write(bio, "abcd", 4), 4);
	CHECK_EQ(fake.switches, 2);
	CHECK(conn(bio)->tx.lib_behind);
	CHECK_EQ(conn(bio)->tx.secret.gen, 2);
	fake_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
	CHECK_EQ(fake.rx_switches, 1);
	fake_record(KTLS_CT_APPDATA, "hello", 5);
	CHECK_EQ(BIO_read(bio, small, sizeof(small)), 4);
	CHECK_EQ(BIO_read(bio, small, sizeof(small)), 4);
	CHECK_EQ(BIO_read(bio, small, sizeof(small)), 2);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
	CHECK(fake.staged_rx);
	CHECK_EQ(conn(bio)->rx.secret.gen, 1);
	wipe_gen0_gone();
	CHECK_EQ(wipecheck_live("TX secret 1", WIPECHECK_PROGRAM), 1);	/* tx.lib */
	CHECK_EQ(wipecheck_live("TX secret 2", WIPECHECK_PROGRAM), 1);
	CHECK_EQ(wipecheck_live("RX secret 1", WIPECHECK_PROGRAM), 1);
	wipe_done(ssl, ctx, bio, a, b);
}

/* The kernel refused both directions: the connection runs in userspace,
 * with the key-log secrets in the bridge until BIO_free. */
static void case_wipe_fallback(void)
{
	uint8_t buf[16];
	int a, b;
	BIO *bio;

	watch_chain("TX", wipe_s0_tx, 1);
	watch_chain("RX", wipe_s0_rx, 1);
	bio = wipe_bridge13(&a, &b, NULL, EINVAL);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_KERNEL_REFUSED);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_KERNEL_REFUSED);
	CHECK_EQ(BIO_write(bio, "\x17\x03\x03\x00\x01x", 6), 6);
	CHECK_EQ(write(b, "\x17\x03\x03\x00\x01y", 6), 6);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), 6);
	wipe_done(NULL, NULL, bio, a, b);
}

/* Hand-off: the peer's KeyUpdate with update_requested (RX staged
 * switch, our answer moves TX), the application's KeyUpdate, a record
 * through the bridge's buffer; SSL_free ends it. */
static void case_wipe_handoff(void)
{
	static const uint8_t kureq[] = { 24, 0, 0, 1, 1 };
	uint8_t buf[KTLS_REC_HDR + KTLS_REC_MAX], small[4];
	SSL_CTX *ctx;
	SSL *ssl;
	int a, b, type;
	BIO *bio;

	watch_chain("TX", wipe_s0_tx, 3);
	watch_chain("RX", wipe_s0_rx, 2);
	bio = wipe_bridge13(&a, &b, NULL, 0);
	ssl = handoff_ssl(bio, &ctx);
	fake_record(KTLS_CT_HANDSHAKE, kureq, sizeof(kureq));
	CHECK_EQ(ktls_conn_recv_record(ssl, buf, sizeof(buf), &type), 5);
	CHECK_EQ(ktls_conn_control(ssl, type, buf, 5), 0);
	CHECK_EQ(conn(bio)->rx.secret.gen, 1);
	CHECK_EQ(conn(bio)->tx.secret.gen, 1);
	CHECK_EQ(ktls_conn_keyupdate(ssl, 0), 0);
	CHECK_EQ(conn(bio)->tx.secret.gen, 2);
	fake_record(KTLS_CT_APPDATA, "hello", 5);
	CHECK_EQ(ktls_conn_recv(ssl, small, sizeof(small)), 4);
	CHECK_EQ(ktls_conn_send(ssl, "x", 1), 1);
	wipe_gen0_gone();
	CHECK_EQ(wipecheck_live("TX secret 2", WIPECHECK_PROGRAM), 1);
	wipe_done(ssl, ctx, bio, a, b);
}

int main(void)
{
	/* before anything allocates through OpenSSL */
	CHECK_EQ(wipecheck_start(), 0);
	RUN(case_wipe_transparent);
	RUN(case_wipe_fallback);
	RUN(case_wipe_handoff);
	ktls_sys_set(NULL);
	wipecheck_stop();
	return ktest_done("bio-wipe-test");
}
