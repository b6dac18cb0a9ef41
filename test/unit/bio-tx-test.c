// SPDX-License-Identifier: MIT
/*
 * bio-tx-test: the bridge's send side against the fake kernel
 * (fakekernel.h), bytes over a loopback pair.
 *
 * libssl's KeyUpdate: the end explained when the kernel cannot re-key,
 * TLS_TX set to the next generation when it can, a refused re-key, a
 * KeyUpdate record the socket takes in two pieces.  Pre-staging
 * (TLS_TX_NEXT): the kernel switches by itself, the next key is staged,
 * staging refused later.  The bridge's own KeyUpdate at the record limit,
 * by the kernel's count, retried when the socket is full; the same at the
 * BIO flushes that come before SSL_sendfile(), whose records the BIO never
 * sees, reading the kernel's count only as often as the records seen per
 * flush require.  A data write
 * the socket takes in part.  TLS_TX_ZEROCOPY_RO by policy, and a fatal
 * alert as the connection's last record.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridgetest.h"
#include "ktest.h"

/* A fake kernel that re-keys (and pre-stages when asked), TX TLS 1.3
 * offered, its secret s0. */
static BIO *tx13_bridge(int *a, int *b, const uint8_t *s0, bool prestage,
			void (*tweak)(struct ktls_policy *))
{
	BIO *bio;

	fake_reset_rekey(prestage);
	if (prestage)
		CHECK(ktls_probe()->prestage);
	tcp_pair(a, b);
	bio = bridge(*a, tweak);
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS13, true), 1);
	ktls_secret_set(&conn(bio)->tx.secret, s0, 32, "SHA256");
	return bio;
}

static void case_keyupdate(void)
{
	static const uint8_t ku[] = { 24, 0, 0, 1, 1 };
	struct ktls_keyblock want;
	struct ktls_secret ref;
	uint8_t s0[32], info[KTLS_MAX_INFO], buf[64];
	int a, b;
	BIO *bio;

	memset(s0, 0x42, sizeof(s0));

	/* kernel cannot re-key, tls13 = always: explained end, alert sent */
	fake_reset();
	fake_pair(&a, &b);
	bio = bridge(a, p_always);
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS13, true), 1);
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku, sizeof(ku)), -1);
	CHECK_EQ(fake.nctrl, 1);
	CHECK_EQ(fake.ctrl_type[0], KTLS_CT_ALERT);
	CHECK(!memcmp(fake.ctrl_data[0], "\x02\x50", 2));	/* fatal internal_error */
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_REKEY_FAILED);
	CHECK_EQ(conn(bio)->tx.st.err, EBUSY);
	CHECK_EQ(BIO_write(bio, "data", 4), -1);		/* nothing after that */
	CHECK_EQ(read(b, buf, sizeof(buf)), 2);		/* only the alert left */
	bridge_close(bio, a, b);

	/* kernel re-keys: KeyUpdate goes out, then TLS_TX gets generation 1 */
	fake_reset_rekey(false);
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS13, true), 1);
	CHECK_EQ(ktls_secret_set(&conn(bio)->tx.secret, s0, 32, "SHA256"), 0);
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku, sizeof(ku)), (int)sizeof(ku));
	CHECK_EQ(fake.ctrl_type[0], KTLS_CT_HANDSHAKE);
	CHECK_EQ(fake.tx_sets[a], 2);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 1);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 1);
	ktls_secret_set(&ref, s0, 32, "SHA256");
	ktls_secret_next(&ref);
	ktls_secret_keyblock(&ref, ktls_cipher_by_name("AES-128-GCM"), &want);
	ktls_keyblock_to_info(&want, info, sizeof(info));
	CHECK(!memcmp(fake.last_tx, info, ktls_cipher_by_name("AES-128-GCM")->info_size));
	CHECK_EQ(BIO_write(bio, "more", 4), 4);
	bridge_close(bio, a, b);

	/* re-key refused by the kernel after the KeyUpdate went out */
	bio = tx13_bridge(&a, &b, s0, false, NULL);
	fake.rekey_err = ENOMEM;	/* FAULT: the second TLS_TX fails */
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku, sizeof(ku)), -1);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_REKEY_FAILED);
	CHECK_EQ(conn(bio)->tx.st.err, ENOMEM);
	CHECK_EQ(BIO_write(bio, "data", 4), -1);
	bridge_close(bio, a, b);

	/* FAULT: the kernel takes only part of the KeyUpdate record; the
	 * re-key waits for its last byte, which libssl writes next */
	bio = tx13_bridge(&a, &b, s0, false, NULL);
	fake.short_ctrl = 3;
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku, sizeof(ku)), 3);
	CHECK_EQ(fake.tx_sets[a], 1);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 0);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 0);
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku + 3, sizeof(ku) - 3), (int)sizeof(ku) - 3);
	CHECK_EQ(fake.nctrl, 2);
	CHECK_EQ(fake.ctrl_len[0], 3);
	CHECK_EQ(fake.ctrl_type[1], KTLS_CT_HANDSHAKE);
	CHECK_EQ(fake.ctrl_len[1], sizeof(ku) - 3);
	CHECK_EQ(fake.tx_sets[a], 2);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 1);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 1);
	CHECK_EQ(conn(bio)->tx.st.records, 1);
	CHECK(!memcmp(fake.last_tx, info, ktls_cipher_by_name("AES-128-GCM")->info_size));
	CHECK_EQ(recv(b, buf, sizeof(ku), MSG_WAITALL), (ssize_t)sizeof(ku));
	CHECK(!memcmp(buf, ku, sizeof(ku)));
	bridge_close(bio, a, b);
	ktls_secret_wipe(&ref);
	ktls_keyblock_wipe(&want);
}

static void p_ku4_always(struct ktls_policy *p)
{
	p->keyupdate_records = 4;
	p->tls13 = KTLS_TLS13_ALWAYS;
}

static void case_prestage(void)
{
	static const uint8_t ku[] = { 24, 0, 0, 1, 0 };
	uint64_t calls;
	static const uint8_t two[] = { 24, 0, 0, 1, 0, 24, 0, 0, 1, 0 };
	const size_t isz = ktls_cipher_by_name("AES-128-GCM")->info_size;
	uint8_t s0[32], info[KTLS_MAX_INFO];
	int a, b;
	BIO *bio;

	memset(s0, 0x5a, sizeof(s0));

	/* staged before the KeyUpdate; the kernel switches by itself */
	bio = tx13_bridge(&a, &b, s0, true, NULL);
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku, sizeof(ku)), (int)sizeof(ku));
	CHECK_EQ(fake.switches, 1);
	CHECK_EQ(fake.tx_sets[a], 1);		/* TLS_TX was never set again */
	gen_info(s0, 1, info);
	CHECK(!memcmp(fake.last_tx, info, isz));	/* the kernel holds generation 1 */
	gen_info(s0, 2, info);
	CHECK(fake.staged && !memcmp(fake.staged_tx, info, isz));	/* 2 is staged */
	CHECK_EQ(conn(bio)->tx.st.rekeys, 1);
	CHECK_EQ(conn(bio)->tx.st.staged_switches, 1);

	/* two KeyUpdates in one record: one staged switch, then TLS_TX */
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, two, sizeof(two)), (int)sizeof(two));
	CHECK_EQ(fake.switches, 2);
	CHECK_EQ(fake.tx_sets[a], 2);
	gen_info(s0, 3, info);
	CHECK(!memcmp(fake.last_tx, info, isz));
	gen_info(s0, 4, info);
	CHECK(fake.staged && !memcmp(fake.staged_tx, info, isz));
	CHECK_EQ(conn(bio)->tx.st.rekeys, 2);
	CHECK_EQ(conn(bio)->tx.st.staged_switches, 2);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 3);

	/* FAULT: staging refused from now on; KeyUpdates set TLS_TX again */
	fake.prestage_err = ENOMEM;
	fake.staged = false;
	conn(bio)->tx.staged = false;
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku, sizeof(ku)), (int)sizeof(ku));
	CHECK_EQ(fake.tx_sets[a], 3);
	gen_info(s0, 4, info);
	CHECK(!memcmp(fake.last_tx, info, isz));
	CHECK_EQ(conn(bio)->tx.st.rekeys, 3);
	CHECK_EQ(conn(bio)->tx.st.staged_switches, 2);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_NONE);
	CHECK_EQ(BIO_write(bio, "data", 4), 4);
	bridge_close(bio, a, b);

	/* a handshake record without KeyUpdate leaves the staged key alone,
	 * and the kernel is not asked about it (no syscall per ticket) */
	bio = tx13_bridge(&a, &b, s0, true, NULL);
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, "\x04\x00\x00\x01\x07", 5), 5);	/* NewSessionTicket-ish */
	CHECK(fake.staged);
	CHECK_EQ(fake.drops, 0);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 0);
	calls = conn(bio)->tx.st.key_calls;	/* the staging before it */
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, "\x04\x00\x00\x01\x08", 5), 5);	/* a second one */
	CHECK_EQ(conn(bio)->tx.st.key_calls, calls);
	/* a record whose messages do not parse whole may hold a KeyUpdate
	 * the kernel found: then it is asked */
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, "\x04\x00\x00\x09\x07", 5), 5);	/* a message cut short */
	CHECK_EQ(conn(bio)->tx.st.key_calls, calls + 1);
	CHECK(fake.staged);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 0);
	bridge_close(bio, a, b);
}

/* Past the record limit on the stock fake kernel (no re-key): nothing
 * but the data goes out and TX keeps its first key. */
static void no_proactive(void (*tweak)(struct ktls_policy *), uint16_t version,
			 const uint8_t *s0)
{
	int a, b;
	BIO *bio;

	fake_reset();
	fake_pair(&a, &b);
	bio = bridge(a, tweak);
	CHECK_EQ(offer(bio, "AES-128-GCM", version, true), 1);
	if (version == KTLS_TLS13)
		ktls_secret_set(&conn(bio)->tx.secret, s0, 32, "SHA256");
	fake.tx_seq = 100;
	for (int i = 0; i < 8; i++)
		CHECK_EQ(BIO_write(bio, "abcd", 4), 4);
	CHECK_EQ(fake.nctrl, 0);
	CHECK_EQ(fake.tx_sets[a], 1);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_NONE);
	bridge_close(bio, a, b);
}

static void p_ku_big(struct ktls_policy *p)
{
	p->keyupdate_records = 100000;
}

static void case_proactive_keyupdate(void)
{
	uint8_t s0[32], info[KTLS_MAX_INFO];
	const size_t isz = ktls_cipher_by_name("AES-128-GCM")->info_size;
	int a, b;
	BIO *bio;

	memset(s0, 0x33, sizeof(s0));
	bio = tx13_bridge(&a, &b, s0, true, p_ku4);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(BIO_write(bio, "abcd", 4), 4);
	CHECK_EQ(fake.nctrl, 0);
	/* our count says 4 records, the kernel's says 2: the kernel wins */
	fake.tx_seq = 2;
	CHECK_EQ(BIO_write(bio, "abcd", 4), 4);		/* 3 by the kernel's count */
	CHECK_EQ(BIO_write(bio, "abcd", 4), 4);		/* 4 */
	CHECK_EQ(fake.nctrl, 0);
	/* now the kernel's counter is at the limit, and the socket is full
	 * for the KeyUpdate: nothing goes out and the write is to be retried */
	fake.tx_seq = 4;
	fake.ctrl_err = EAGAIN;
	{
		int queued = 0, now = 0;

		CHECK_EQ(ioctl(b, FIONREAD, &queued), 0);
		CHECK_EQ(BIO_write(bio, "abcd", 4), -1);
		CHECK(BIO_should_retry(bio) && BIO_should_write(bio));
		CHECK_EQ(ioctl(b, FIONREAD, &now), 0);
		CHECK_EQ(now, queued);			/* no data before the KeyUpdate */
		CHECK_EQ(fake.nctrl, 0);
		CHECK_EQ(conn(bio)->tx.st.keyupdates, 0);
	}
	/* the retry: KeyUpdate first */
	CHECK_EQ(BIO_write(bio, "abcd", 4), 4);
	CHECK_EQ(fake.nctrl, 1);
	CHECK_EQ(fake.ctrl_type[0], KTLS_CT_HANDSHAKE);
	CHECK_EQ(fake.ctrl_len[0], 5);
	CHECK(!memcmp(fake.ctrl_data[0], "\x18\x00\x00\x01\x00", 5));	/* not requested */
	CHECK_EQ(fake.switches, 1);
	gen_info(s0, 1, info);
	CHECK(!memcmp(fake.last_tx, info, isz));
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 1);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 1);
	CHECK_EQ(conn(bio)->tx.since_ku, 1);	/* the data record after it */
	/* libssl 3.2+ then sends a KeyUpdate of its own and offers the key it
	 * counts (generation 1), one behind the kernel's (2): accepted */
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, "\x18\x00\x00\x01\x00", 5), 5);
	gen_info(s0, 2, info);
	CHECK(!memcmp(fake.last_tx, info, isz));
	CHECK_EQ(offer_gen(bio, s0, 1, true), 1);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_NONE);
	CHECK(!memcmp(fake.last_tx, info, isz));	/* the kernel keeps generation 2 */
	/* any other key is a mismatch */
	CHECK_EQ(offer_gen(bio, s0, 3, true), 0);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_KEY_MISMATCH);
	bridge_close(bio, a, b);

	/* far from the limit, writes never ask the kernel (it costs a
	 * syscall; HAProxy's benchmark saw one per 64 records) */
	bio = tx13_bridge(&a, &b, s0, true, p_ku_big);
	{
		uint64_t calls = conn(bio)->tx.st.key_calls;
		char buf[64];

		for (int i = 0; i < 200; i++) {
			CHECK_EQ(BIO_write(bio, "abcd", 4), 4);
			CHECK_EQ(read(b, buf, 4), 4);
		}
		CHECK_EQ(conn(bio)->tx.st.key_calls, calls);
		CHECK_EQ(conn(bio)->tx.since_ku, 200);
	}
	bridge_close(bio, a, b);

	/* a kernel that cannot re-key (tls13 = always): no KeyUpdate at the
	 * limit, the data keeps flowing; TLS 1.2 has no KeyUpdate at all */
	no_proactive(p_ku4_always, KTLS_TLS13, s0);
	no_proactive(p_ku4, KTLS_TLS12, s0);
}

static void p_ku100(struct ktls_policy *p)
{
	p->keyupdate_records = 100;
}

/* SSL_sendfile() records reach the kernel without passing the BIO; libssl
 * flushes the BIO before each call.  fake.tx_seq plays the records that
 * sendfile() sent between flushes. */
static void case_sendfile_flush_keyupdate(void)
{
	uint8_t s0[32], info[KTLS_MAX_INFO];
	const size_t isz = ktls_cipher_by_name("AES-128-GCM")->info_size;
	uint64_t calls;
	int a, b;
	BIO *bio;

	memset(s0, 0x66, sizeof(s0));
	bio = tx13_bridge(&a, &b, s0, true, p_ku100);
	calls = conn(bio)->tx.st.key_calls;
	/* the BIO's own records under this key (headers) are the base */
	CHECK_EQ(BIO_write(bio, "HTTP/1.1 200 OK\r\n", 17), 17);
	fake.tx_seq = 1;
	CHECK_EQ(conn(bio)->tx.since_ku, 1);
	CHECK_EQ(BIO_flush(bio), 1);		/* no rate yet: a base, no syscall */
	CHECK_EQ(conn(bio)->tx.st.key_calls, calls);
	CHECK_EQ(conn(bio)->tx.flush_seq, 1);
	CHECK_EQ(conn(bio)->tx.flush_rate, 0);
	fake.tx_seq = 31;
	CHECK_EQ(BIO_flush(bio), 1);			/* 30 per flush: read */
	CHECK_EQ(conn(bio)->tx.flush_rate, 30);
	fake.tx_seq = 60;
	CHECK_EQ(BIO_flush(bio), 1);
	CHECK_EQ(conn(bio)->tx.st.key_calls, calls + 2);
	CHECK_EQ(fake.nctrl, 0);
	CHECK_EQ(conn(bio)->tx.since_ku, 60);
	/* the limit reached with the socket full: the flush is to be retried,
	 * and nothing went out */
	fake.tx_seq = 100;
	fake.ctrl_err = EAGAIN;
	CHECK(BIO_flush(bio) <= 0);
	CHECK(BIO_should_retry(bio) && BIO_should_write(bio));
	CHECK_EQ(fake.nctrl, 0);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 0);
	/* the retry: our KeyUpdate, and the kernel switches to the staged key */
	fake.ctrl_err = 0;
	CHECK_EQ(BIO_flush(bio), 1);
	CHECK(!BIO_should_retry(bio));
	CHECK_EQ(fake.nctrl, 1);
	CHECK_EQ(fake.ctrl_type[0], KTLS_CT_HANDSHAKE);
	CHECK(!memcmp(fake.ctrl_data[0], "\x18\x00\x00\x01\x00", 5));
	CHECK_EQ(fake.switches, 1);
	gen_info(s0, 1, info);
	CHECK(!memcmp(fake.last_tx, info, isz));
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 1);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 1);
	CHECK_EQ(conn(bio)->tx.since_ku, 0);
	/* the new key counts from 0: the next limit is 100 records on */
	fake.tx_seq = 40;
	CHECK_EQ(BIO_flush(bio), 1);
	CHECK_EQ(fake.nctrl, 1);
	fake.tx_seq = 100;
	CHECK_EQ(BIO_flush(bio), 1);
	CHECK_EQ(fake.nctrl, 2);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 2);
	bridge_close(bio, a, b);

	/* few records per flush (small files): the counter is read once in
	 * KERNEL_SEQ_EVERY (64) flushes, not at each */
	bio = tx13_bridge(&a, &b, s0, true, p_ku_big);
	calls = conn(bio)->tx.st.key_calls;
	CHECK_EQ(BIO_flush(bio), 1);
	fake.tx_seq = 2;
	CHECK_EQ(BIO_flush(bio), 1);
	CHECK_EQ(conn(bio)->tx.st.key_calls, calls + 1);
	for (int i = 0; i < 63; i++)
		CHECK_EQ(BIO_flush(bio), 1);
	CHECK_EQ(conn(bio)->tx.st.key_calls, calls + 1);
	CHECK_EQ(BIO_flush(bio), 1);
	CHECK_EQ(conn(bio)->tx.st.key_calls, calls + 2);
	CHECK_EQ(fake.nctrl, 0);
	/* libssl flushes after close_notify too: nothing left to count */
	for (int i = 0; i < 63; i++)
		CHECK_EQ(BIO_flush(bio), 1);
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_ALERT, NULL), 1);
	CHECK_EQ(BIO_write(bio, "\x01\x00", 2), 2);
	CHECK(conn(bio)->wr_shut);
	CHECK_EQ(BIO_flush(bio), 1);
	CHECK_EQ(conn(bio)->tx.st.key_calls, calls + 2);
	bridge_close(bio, a, b);

	/* TLS 1.2 has no KeyUpdate: a flush never asks the kernel */
	fake_reset_rekey(true);
	tcp_pair(&a, &b);
	bio = bridge(a, p_ku100);
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS12, true), 1);
	calls = conn(bio)->tx.st.key_calls;
	fake.tx_seq = 1000;
	CHECK_EQ(BIO_flush(bio), 1);
	CHECK_EQ(conn(bio)->tx.st.key_calls, calls);
	CHECK_EQ(fake.nctrl, 0);
	bridge_close(bio, a, b);
}

/* Hand-off: an application that writes the socket itself (sendfile,
 * splice) calls ktls_conn_send(ssl, NULL, 0) before; the kernel's record
 * count decides whether our KeyUpdate goes out before its records. */
static void case_handoff_own_writes_keyupdate(void)
{
	uint8_t s0[32], buf[8];
	uint64_t calls;
	SSL_CTX *ctx;
	SSL *ssl;
	int a, b;
	BIO *bio;

	memset(s0, 0x55, sizeof(s0));
	bio = tx13_bridge(&a, &b, s0, true, p_ku100);
	ctx = SSL_CTX_new(TLS_method());
	ssl = SSL_new(ctx);
	SSL_set_bio(ssl, bio, bio);
	CHECK_EQ(ktls_conn_send(ssl, NULL, 0), -EINVAL);	/* not handed off */
	conn(bio)->handoff = true;
	calls = conn(bio)->tx.st.key_calls;
	CHECK_EQ(ktls_conn_send(ssl, NULL, 0), 0);	/* a base, no syscall */
	CHECK_EQ(conn(bio)->tx.st.key_calls, calls);
	fake.tx_seq = 60;				/* the application's sendfile */
	CHECK_EQ(ktls_conn_send(ssl, NULL, 0), 0);
	CHECK_EQ(conn(bio)->tx.st.key_calls, calls + 1);
	CHECK_EQ(fake.nctrl, 0);
	fake.tx_seq = 120;				/* past keyupdate_records */
	CHECK_EQ(ktls_conn_send(ssl, NULL, 0), 0);
	CHECK_EQ(fake.nctrl, 1);
	CHECK(!memcmp(fake.ctrl_data[0], "\x18\x00\x00\x01\x00", 5));
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 1);
	CHECK_EQ(fake.switches, 1);			/* to the staged key */
	CHECK_EQ(recv(b, buf, 5, MSG_WAITALL), 5);
	CHECK(!memcmp(buf, "\x18\x00\x00\x01\x00", 5));
	ssl_close(ssl, ctx, a, b);
}

/* A data write the socket takes only in part: the BIO returns what went
 * out, counts those bytes and the records they make, and a full socket is
 * a write to retry. */
static void case_partial_data_write(void)
{
	static uint8_t big[4 << 20];
	uint8_t s0[32];
	int a, b, small = 4096;
	ssize_t n;
	BIO *bio;

	memset(s0, 0x44, sizeof(s0));
	bio = tx13_bridge(&a, &b, s0, true, NULL);
	fcntl(a, F_SETFL, O_NONBLOCK);
	setsockopt(a, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	n = BIO_write(bio, big, sizeof(big));	/* the peer reads nothing */
	CHECK(n > 0 && n < (ssize_t)sizeof(big));
	CHECK_EQ(conn(bio)->tx.st.bytes, (uint64_t)n);
	CHECK_EQ(conn(bio)->tx.st.records, ((uint64_t)n + KTLS_REC_MAX - 1) / KTLS_REC_MAX);
	CHECK_EQ(conn(bio)->tx.since_ku, conn(bio)->tx.st.records);
	while ((n = BIO_write(bio, big, sizeof(big))) > 0)
		;
	CHECK_EQ(n, -1);
	CHECK(BIO_should_retry(bio) && BIO_should_write(bio));
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_NONE);
	bridge_close(bio, a, b);
}

static void zerocopy_on(struct ktls_policy *p)
{
	p->zerocopy_sendfile = true;
}

/* zerocopy_sendfile: TLS_TX_ZEROCOPY_RO when TX is installed (OpenSSL 3.0
 * never asks) and when libssl asks (ctrl 90); never when the policy is
 * off or TX stayed in userspace. */
static void case_tx_zerocopy(void)
{
	static const struct {
		void (*tweak)(struct ktls_policy *);
		int tx_err, sets;
	} runs[] = {
		{ zerocopy_on, 0, 1 },
		{ NULL, 0, 0 },
		{ zerocopy_on, EINVAL, 0 },
	};
	int a, b;
	BIO *bio;

	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		fake_reset();
		fake.tx_err = runs[i].tx_err;
		fake_pair(&a, &b);
		bio = bridge(a, runs[i].tweak);
		CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS12, false), 1);
		CHECK_EQ(fake.zc_sets[a], 0);
		CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS12, true), !runs[i].tx_err);
		CHECK_EQ(fake.zc_sets[a], runs[i].sets);
		CHECK_EQ(BIO_ctrl(bio, 90, 0, NULL),	/* SET_KTLS_TX_ZEROCOPY_SENDFILE */
			 runs[i].sets);
		CHECK_EQ(fake.zc_sets[a], 2 * runs[i].sets);
		bridge_close(bio, a, b);
	}
}

/* A fatal alert libssl writes through the kernel is the connection's last
 * record: the write side is shut behind it (the peer reads the alert, then
 * EOF), and a non-blocking socket is not waited on. */
static void case_fatal_alert_ends(void)
{
	uint8_t buf[64];
	int a, b, fl;
	BIO *bio;

	fake_reset();
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS12, true), 1);
	fl = fcntl(a, F_GETFL);
	fcntl(a, F_SETFL, fl | O_NONBLOCK);
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_ALERT, NULL), 1);
	CHECK_EQ(BIO_write(bio, "\x02\x0a", 2), 2);	/* fatal unexpected_message */
	CHECK(conn(bio)->wr_shut);
	CHECK(conn(bio)->lingered);
	CHECK_EQ(conn(bio)->linger_end, KTLS_LINGER_TIMEOUT);	/* not waited on */
	CHECK_EQ(read(b, buf, sizeof(buf)), 2);
	CHECK_EQ(read(b, buf, sizeof(buf)), 0);	/* FIN right behind it */
	bridge_close(bio, a, b);
}

int main(void)
{
	RUN(case_keyupdate);
	RUN(case_prestage);
	RUN(case_proactive_keyupdate);
	RUN(case_sendfile_flush_keyupdate);
	RUN(case_handoff_own_writes_keyupdate);
	RUN(case_partial_data_write);
	RUN(case_tx_zerocopy);
	RUN(case_fatal_alert_ends);
	ktls_sys_set(NULL);
	return ktest_done("bio-tx-test");
}
