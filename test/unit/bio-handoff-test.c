// SPDX-License-Identifier: MIT
/*
 * bio-handoff-test: hand-off mode (the application calls ktls_conn_*
 * on the socket the kernel owns) against the fake kernel (fakekernel.h).
 *
 * A KeyUpdate owed when the socket was full, paid before the next data; a
 * post-handshake message TLS 1.3 does not have.  The kernel's receive
 * errors, each answered with its alert and nothing after it; a pause for
 * a key (EKEYEXPIRED) that no KeyUpdate explains, in transparent and in
 * hand-off mode; a KeyUpdate handed to the application that explains the
 * pause before the application passes it back.  Records after our
 * close_notify and after the peer's.  Records the application sends
 * itself (ktls_conn_set_owed): the bridge writes none, hands them out in
 * order, and moves the key or ends the connection at each report.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridgetest.h"
#include "ktest.h"

/* Hand-off: the reply to a peer's update_requested finds the socket full;
 * it is owed, and the next ktls_conn_send pays it before the data.  Then a
 * post-handshake message of a type TLS 1.3 does not have. */
static void case_handoff_owed_keyupdate(void)
{
	static const uint8_t kureq[] = { 24, 0, 0, 1, 1 };
	uint8_t s0[32], buf[8];
	SSL_CTX *ctx;
	SSL *ssl;
	int a, b;
	BIO *bio;

	memset(s0, 0x77, sizeof(s0));
	bio = rx_bridge(&a, &b, s0, true, NULL);
	ktls_secret_set(&conn(bio)->tx.secret, s0, 32, "SHA256");
	ctx = SSL_CTX_new(TLS_method());
	ssl = SSL_new(ctx);
	SSL_set_bio(ssl, bio, bio);
	conn(bio)->handoff = true;
	fake.ctrl_err = EAGAIN;	/* FAULT: the socket is full */
	CHECK_EQ(ktls_conn_control(ssl, KTLS_CT_HANDSHAKE, kureq, sizeof(kureq)), 0);
	CHECK(conn(bio)->ku_owed);
	CHECK_EQ(fake.nctrl, 0);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 0);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 1);
	CHECK_EQ(ktls_conn_send(ssl, "x", 1), 1);
	CHECK(!conn(bio)->ku_owed);
	CHECK_EQ(fake.nctrl, 1);
	CHECK(!memcmp(fake.ctrl_data[0], "\x18\x00\x00\x01\x00", 5));	/* not requested */
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 1);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 1);
	CHECK_EQ(recv(b, buf, 6, MSG_WAITALL), 6);
	CHECK(!memcmp(buf, "\x18\x00\x00\x01\x00x", 6));	/* KeyUpdate first */
	/* a message of type 0 (TLS 1.2's HelloRequest) after the handshake */
	CHECK_EQ(ktls_conn_control(ssl, KTLS_CT_HANDSHAKE, "\x00\x00\x00\x00", 4), -EPROTO);
	CHECK_EQ(fake.nctrl, 2);
	CHECK(!memcmp(fake.ctrl_data[1], "\x02\x0a", 2));	/* unexpected_message */
	ssl_close(ssl, ctx, a, b);
}

/* The kernel's receive errors: hand-off mode answers each with the alert
 * of alert.c's table; a pause for a key no KeyUpdate explains ends the
 * connection in both modes; a KeyUpdate record handed to the application
 * (ktls_conn_recv_record) explains the pause before it is walked. */
static void case_rx_kernel_errors(void)
{
	static const uint8_t ku[] = { 24, 0, 0, 1, 0 };
	static const struct { int err; const char *alert; } t[] = {
		{ EBADMSG, "\x02\x14" }, { EMSGSIZE, "\x02\x16" }, { EINVAL, "\x02\x46" },
		{ EIO, "\x02\x50" },
	};
	uint8_t s0[32], buf[KTLS_REC_HDR + KTLS_REC_MAX];
	SSL_CTX *ctx;
	SSL *ssl;
	int a, b, type;
	BIO *bio;

	memset(s0, 0x77, sizeof(s0));
	/* transparent: the kernel pauses though no KeyUpdate came */
	bio = rx_bridge(&a, &b, s0, false, NULL);
	fake.rx_pending = 1;
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	CHECK_EQ(errno, EKEYEXPIRED);
	CHECK_EQ(fake.rx_sets[a], 1);		/* no key guessed */
	CHECK_EQ(fake.nctrl, 1);
	CHECK(!memcmp(fake.ctrl_data[0], "\x02\x0a", 2));	/* unexpected_message */
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_PROTOCOL);
	CHECK(conn(bio)->wr_shut);
	bridge_close(bio, a, b);

	/* hand-off: each receive error gets its alert, the socket error is
	 * taken first so that the alert can go out */
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		bio = rx_bridge(&a, &b, s0, false, NULL);
		ssl = handoff_ssl(bio, &ctx);
		fake.rec_err = t[i].err;
		CHECK_EQ(ktls_conn_recv(ssl, buf, sizeof(buf)), -t[i].err);
		CHECK_EQ(fake.nctrl, 1);
		CHECK(!memcmp(fake.ctrl_data[0], t[i].alert, 2));
		CHECK_EQ(conn(bio)->rx_kerr, t[i].err);
		CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_PROTOCOL);
		CHECK_EQ(conn(bio)->rx.st.err, t[i].err);
		CHECK(conn(bio)->dead && conn(bio)->lingered);
		/* after the failure: no close_notify, no data, no KeyUpdate */
		CHECK_EQ(ktls_conn_shutdown(ssl), -EPIPE);
		CHECK_EQ(ktls_conn_send(ssl, "x", 1), -EPIPE);
		CHECK_EQ(ktls_conn_keyupdate(ssl, 0), -EPIPE);
		CHECK_EQ(fake.nctrl, 1);		/* nothing went out after the alert */
		ssl_close(ssl, ctx, a, b);
	}
	/* ... but not when the transport is gone */
	bio = rx_bridge(&a, &b, s0, false, NULL);
	ssl = handoff_ssl(bio, &ctx);
	fake.rec_err = ECONNRESET;
	CHECK_EQ(ktls_conn_recv(ssl, buf, sizeof(buf)), -ECONNRESET);
	CHECK_EQ(fake.nctrl, 0);
	ssl_close(ssl, ctx, a, b);

	/* ktls_conn_recv_record hands up the KeyUpdate; the next read meets
	 * EKEYEXPIRED before ktls_conn_control walked it: still the peer's
	 * KeyUpdate, so the next key goes in, and the walk later agrees */
	bio = rx_bridge(&a, &b, s0, false, NULL);
	ssl = handoff_ssl(bio, &ctx);
	fake_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	CHECK_EQ(ktls_conn_recv_record(ssl, buf, sizeof(buf), &type), 5);
	CHECK_EQ(type, KTLS_CT_HANDSHAKE);
	CHECK_EQ(fake.rx_pending, 1);
	fake_record(KTLS_CT_APPDATA, "hello", 5);
	CHECK_EQ(ktls_conn_recv_record(ssl, buf, sizeof(buf), &type), 5);
	CHECK_EQ(type, KTLS_CT_APPDATA);
	CHECK_EQ(fake.rx_sets[a], 2);
	CHECK_EQ(conn(bio)->rx.ku_ahead, 1);
	CHECK_EQ(ktls_conn_control(ssl, KTLS_CT_HANDSHAKE, ku, sizeof(ku)), 0);
	CHECK_EQ(conn(bio)->rx.ku_ahead, 0);
	CHECK_EQ(conn(bio)->rx.ku_unkeyed, 0);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 1);
	CHECK_EQ(fake.nctrl, 0);			/* no alert */
	/* a second pause with nothing to explain it ends the connection */
	fake.rx_pending = 1;
	CHECK_EQ(ktls_conn_recv_record(ssl, buf, sizeof(buf), &type), -EKEYEXPIRED);
	CHECK_EQ(fake.rx_sets[a], 2);
	CHECK(!memcmp(fake.ctrl_data[0], "\x02\x0a", 2));
	ssl_close(ssl, ctx, a, b);
}

/* An application that reads the socket itself (its own recvmsg, an
 * io_uring ring) reports each read's result with ktls_conn_received. */
static void case_app_own_reads(void)
{
	static const uint8_t kureq[] = { 24, 0, 0, 1, 1 };
	uint8_t s0[32];
	uint64_t recs;
	SSL_CTX *ctx;
	SSL *ssl;
	int a, b;
	BIO *bio;

	memset(s0, 0x77, sizeof(s0));
	bio = rx_bridge(&a, &b, s0, false, NULL);
	ktls_secret_set(&conn(bio)->tx.secret, s0, 32, "SHA256");
	ssl = handoff_ssl(bio, &ctx);
	recs = conn(bio)->rx.st.records;
	CHECK_EQ(ktls_conn_received(ssl, 5, KTLS_CT_APPDATA, NULL), -EINVAL);
	CHECK_EQ(ktls_conn_received(ssl, 5, 256, "hello"), -EINVAL);
	CHECK_EQ(ktls_conn_received(ssl, 5, KTLS_CT_APPDATA, "hello"), 0);
	CHECK_EQ(conn(bio)->rx.st.records, recs + 1);
	CHECK_EQ(ktls_conn_received(ssl, -EAGAIN, 0, NULL), 0);	/* read again */
	/* update_requested: the reply goes out at once */
	CHECK_EQ(ktls_conn_received(ssl, 5, KTLS_CT_HANDSHAKE, kureq), 0);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 1);
	CHECK_EQ(fake.nctrl, 1);
	CHECK(!memcmp(fake.ctrl_data[0], "\x18\x00\x00\x01\x00", 5));
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 1);
	/* the kernel waits for the next key: the read's EKEYEXPIRED puts it in */
	CHECK_EQ(fake.rx_sets[a], 1);
	CHECK_EQ(ktls_conn_received(ssl, -EKEYEXPIRED, 0, NULL), 0);
	CHECK_EQ(fake.rx_sets[a], 2);
	CHECK_EQ(conn(bio)->rx.st.key_expired, 1);
	/* a second pause with no KeyUpdate to explain it ends the connection */
	CHECK_EQ(ktls_conn_received(ssl, -EKEYEXPIRED, 0, NULL), -EKEYEXPIRED);
	CHECK_EQ(fake.rx_sets[a], 2);
	CHECK(!memcmp(fake.ctrl_data[1], "\x02\x0a", 2));	/* unexpected_message */
	CHECK_EQ(ktls_conn_received(ssl, 5, KTLS_CT_APPDATA, "hello"), -EKEYEXPIRED);
	ssl_close(ssl, ctx, a, b);

	/* the kernel's error that the application's read took: its alert */
	bio = rx_bridge(&a, &b, s0, false, NULL);
	ssl = handoff_ssl(bio, &ctx);
	CHECK_EQ(ktls_conn_received(ssl, -EBADMSG, 0, NULL), -EBADMSG);
	CHECK_EQ(fake.nctrl, 1);
	CHECK(!memcmp(fake.ctrl_data[0], "\x02\x14", 2));	/* bad_record_mac */
	CHECK(conn(bio)->dead);
	ssl_close(ssl, ctx, a, b);

	/* EOF; and the peer's close_notify, answered */
	bio = rx_bridge(&a, &b, s0, false, NULL);
	ssl = handoff_ssl(bio, &ctx);
	CHECK_EQ(ktls_conn_received(ssl, 0, 0, NULL), 1);
	CHECK_EQ(ktls_conn_received(ssl, 5, KTLS_CT_APPDATA, "hello"), -EPIPE);
	ssl_close(ssl, ctx, a, b);
	bio = rx_bridge(&a, &b, s0, false, NULL);
	ssl = handoff_ssl(bio, &ctx);
	CHECK_EQ(ktls_conn_received(ssl, 2, KTLS_CT_ALERT, "\x01\x00"), 1);
	CHECK_EQ(fake.nctrl, 1);
	CHECK(!memcmp(fake.ctrl_data[0], "\x01\x00", 2));	/* ours */
	ssl_close(ssl, ctx, a, b);
}

/* After our close_notify the peer may still re-key: the receive key moves
 * on and the reply it asks for is not sent behind the close_notify.
 * After the peer's close_notify, records change nothing (RFC 8446 6.1).
 * (Found by the hand-off fuzz target: a KeyUpdate went out after our
 * close_notify.) */
static void case_records_after_close_notify(void)
{
	static const uint8_t kureq[] = { 24, 0, 0, 1, 1 };
	uint8_t s0[32];
	SSL_CTX *ctx;
	SSL *ssl;
	int a, b;
	BIO *bio;

	memset(s0, 0x33, sizeof(s0));
	bio = rx_bridge(&a, &b, s0, true, NULL);
	ktls_secret_set(&conn(bio)->tx.secret, s0, 32, "SHA256");
	ssl = handoff_ssl(bio, &ctx);
	CHECK_EQ(ktls_conn_shutdown(ssl), 0);
	CHECK_EQ(fake.nctrl, 1);
	CHECK(!memcmp(fake.ctrl_data[0], "\x01\x00", 2));	/* our close_notify */
	CHECK_EQ(ktls_conn_control(ssl, KTLS_CT_HANDSHAKE, kureq, sizeof(kureq)), 0);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 1);
	CHECK_EQ(fake.nctrl, 1);		/* no KeyUpdate behind it */
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 0);
	CHECK(!conn(bio)->ku_owed);
	CHECK_EQ(ktls_conn_send(ssl, "x", 1), -EPIPE);
	CHECK_EQ(fake.nctrl, 1);

	/* the peer's close_notify ends it; what follows changes nothing */
	CHECK_EQ(ktls_conn_control(ssl, KTLS_CT_ALERT, "\x01\x00", 2), 1);
	CHECK_EQ(ktls_conn_control(ssl, KTLS_CT_HANDSHAKE, kureq, sizeof(kureq)), -EPIPE);
	CHECK_EQ(ktls_conn_control(ssl, KTLS_CT_ALERT, "\x02\x28", 2), -EPIPE);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 1);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_PEER_CLOSED);
	CHECK_EQ(fake.nctrl, 1);
	ssl_close(ssl, ctx, a, b);
}

/* A record that ends the connection after our close_notify: no fatal
 * alert goes out behind it.  (Found by the hand-off fuzz target.) */
static void case_no_alert_after_close_notify(void)
{
	uint8_t s0[32];
	SSL_CTX *ctx;
	SSL *ssl;
	int a, b;
	BIO *bio;

	memset(s0, 0x44, sizeof(s0));
	bio = rx_bridge(&a, &b, s0, true, NULL);
	ssl = handoff_ssl(bio, &ctx);
	CHECK_EQ(ktls_conn_shutdown(ssl), 0);
	CHECK_EQ(fake.nctrl, 1);
	CHECK_EQ(ktls_conn_control(ssl, KTLS_CT_CCS, "\x01", 1), -EPROTO);
	CHECK(conn(bio)->dead);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_PROTOCOL);
	CHECK_EQ(fake.nctrl, 1);		/* the close_notify only */
	ssl_close(ssl, ctx, a, b);
}

/* A kernel that looks only at a handshake record's first byte (mainline):
 * a KeyUpdate split over records pauses it after the first piece, with
 * no KeyUpdate yet, and not after the last.  The bridge sets the key in
 * use again at the kernel's sequence number for the first, and the next
 * key right after the last; a pause with nothing to explain still ends
 * the connection, and so does a kernel whose key is not ours. */
static void case_split_keyupdate(void)
{
	uint8_t s0[32], kernel_key[KTLS_MAX_INFO];
	const struct ktls_cipher *ci = ktls_cipher_by_name("AES-128-GCM");
	SSL_CTX *ctx;
	SSL *ssl;
	int a, b;
	BIO *bio;

	memset(s0, 0x77, sizeof(s0));
	bio = rx_bridge(&a, &b, s0, false, NULL);
	ssl = handoff_ssl(bio, &ctx);
	CHECK_EQ(fake.rx_sets[a], 1);
	fake.rx_seq = 3;
	CHECK_EQ(ktls_conn_received(ssl, 1, KTLS_CT_HANDSHAKE, "\x18"), 0);
	CHECK_EQ(fake.rx_sets[a], 1);	/* nothing complete: no key yet */
	CHECK_EQ(ktls_conn_received(ssl, -EKEYEXPIRED, 0, NULL), 0);
	CHECK_EQ(fake.rx_sets[a], 2);	/* the same key, at sequence 3 */
	CHECK_EQ(fake.last_rx[ci->off_seq + 7], 3);
	CHECK_EQ(conn(bio)->rx.st.early_pauses, 1);
	CHECK_EQ(conn(bio)->rx.st.rekeys, 0);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 0);
	memcpy(kernel_key, fake.last_rx, sizeof(kernel_key));
	CHECK_EQ(ktls_conn_received(ssl, 2, KTLS_CT_HANDSHAKE, "\x00\x00"), 0);
	CHECK_EQ(ktls_conn_received(ssl, 1, KTLS_CT_HANDSHAKE, "\x01"), 0);
	CHECK_EQ(fake.rx_sets[a], 2);
	/* the last piece: the next key before the next read */
	CHECK_EQ(ktls_conn_received(ssl, 1, KTLS_CT_HANDSHAKE, "\x00"), 0);
	CHECK_EQ(fake.rx_sets[a], 3);
	CHECK(memcmp(fake.last_rx + ci->off_key, kernel_key + ci->off_key, ci->key_size));
	CHECK_EQ(fake.last_rx[ci->off_seq + 7], 0);
	CHECK_EQ(conn(bio)->rx.st.rekeys_ahead, 1);
	CHECK_EQ(conn(bio)->rx.st.rekeys, 1);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 1);
	/* a read that ran ahead (multishot) may still report the pause that
	 * the key set ahead answered: read again, nothing set */
	CHECK_EQ(ktls_conn_received(ssl, -EKEYEXPIRED, 0, NULL), 0);
	CHECK_EQ(fake.rx_sets[a], 3);
	CHECK_EQ(ktls_conn_received(ssl, 5, KTLS_CT_APPDATA, "hello"), 0);
	/* a pause now has no record to explain it */
	CHECK_EQ(ktls_conn_received(ssl, -EKEYEXPIRED, 0, NULL), -EKEYEXPIRED);
	CHECK_EQ(fake.rx_sets[a], 3);
	CHECK_EQ(fake.nctrl, 1);
	CHECK(!memcmp(fake.ctrl_data[0], "\x02\x0a", 2));	/* unexpected_message */
	ssl_close(ssl, ctx, a, b);

	/* the kernel holds a key that is not the bridge's: no resume */
	bio = rx_bridge(&a, &b, s0, false, NULL);
	ssl = handoff_ssl(bio, &ctx);
	fake.last_rx[ci->off_key] ^= 1;
	CHECK_EQ(ktls_conn_received(ssl, 2, KTLS_CT_HANDSHAKE, "\x18\x00"), 0);
	CHECK(ktls_conn_received(ssl, -EKEYEXPIRED, 0, NULL) < 0);
	CHECK_EQ(fake.rx_sets[a], 1);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_REKEY_FAILED);
	CHECK(!memcmp(fake.ctrl_data[0], "\x02\x50", 2));	/* internal_error */
	ssl_close(ssl, ctx, a, b);
}

/* One owed record: ktls_conn_owed must hand out exactly len bytes of
 * type and nothing more until it is reported. */
static void owed_is(SSL *ssl, int type, const void *rec, size_t len)
{
	uint8_t buf[KTLS_OWED_MAX];
	int t = -1;

	CHECK_EQ(ktls_conn_owed(ssl, buf, sizeof(buf), &t), (ssize_t)len);
	CHECK_EQ(t, type);
	CHECK(!memcmp(buf, rec, len));
	CHECK_EQ(ktls_conn_owed(ssl, buf, sizeof(buf), &t), -EBUSY);
}

/* ktls_conn_set_owed: the application sends the control records (an
 * io_uring SENDMSG); the bridge queues them, writes nothing, and acts on
 * each report: the TX key moves after a KeyUpdate went out, the write
 * side shuts after an alert, a failed send ends the connection. */
static void case_owed_records(void)
{
	static const uint8_t kureq[] = { 24, 0, 0, 1, 1 };
	uint8_t s0[32], small[1];
	SSL_CTX *ctx;
	SSL *ssl;
	int a, b, t;
	BIO *bio;

	memset(s0, 0x55, sizeof(s0));
	bio = rx_bridge(&a, &b, s0, false, NULL);
	ktls_secret_set(&conn(bio)->tx.secret, s0, 32, "SHA256");
	ssl = handoff_ssl(bio, &ctx);
	CHECK_EQ(ktls_conn_owed(ssl, small, sizeof(small), &t), -EINVAL);	/* not opted in */
	CHECK_EQ(ktls_conn_set_owed(ssl, 2), -EINVAL);
	CHECK_EQ(ktls_conn_set_owed(ssl, 1), 0);
	CHECK_EQ(ktls_conn_owed(ssl, small, sizeof(small), &t), 0);	/* nothing owed */
	CHECK_EQ(ktls_conn_owed_sent(ssl, 5), -EINVAL);			/* nothing out */
	/* the peer asks for an update: the reply is queued, not written */
	CHECK_EQ(ktls_conn_received(ssl, 5, KTLS_CT_HANDSHAKE, kureq), 0);
	CHECK_EQ(fake.nctrl, 0);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 0);
	CHECK_EQ(ktls_conn_send(ssl, "x", 1), -EAGAIN);	/* no data before it */
	CHECK_EQ(ktls_conn_set_owed(ssl, 0), -EBUSY);
	CHECK_EQ(ktls_conn_owed(ssl, small, sizeof(small), &t), -ENOSPC);
	owed_is(ssl, KTLS_CT_HANDSHAKE, "\x18\x00\x00\x01\x00", 5);
	CHECK_EQ(fake.tx_sets[a], 1);			/* the old key until it is out */
	CHECK_EQ(ktls_conn_owed_sent(ssl, 5), 0);
	CHECK_EQ(fake.tx_sets[a], 2);			/* TLS_TX set again */
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 1);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 1);
	CHECK_EQ(ktls_conn_owed(ssl, small, sizeof(small), &t), 0);
	CHECK_EQ(ktls_conn_send(ssl, "x", 1), 1);
	/* our own, requested, and one more: in order, each after the last's
	 * report; a retryable failure hands the same record out again */
	CHECK_EQ(ktls_conn_keyupdate(ssl, 1), 0);
	CHECK_EQ(ktls_conn_keyupdate(ssl, 0), 0);
	owed_is(ssl, KTLS_CT_HANDSHAKE, "\x18\x00\x00\x01\x01", 5);
	CHECK_EQ(ktls_conn_owed_sent(ssl, -EAGAIN), 0);
	CHECK_EQ(fake.tx_sets[a], 2);
	owed_is(ssl, KTLS_CT_HANDSHAKE, "\x18\x00\x00\x01\x01", 5);
	CHECK_EQ(ktls_conn_owed_sent(ssl, 5), 0);
	CHECK_EQ(fake.tx_sets[a], 3);
	owed_is(ssl, KTLS_CT_HANDSHAKE, "\x18\x00\x00\x01\x00", 5);
	/* that one's send fails: the peer may have it or not, the
	 * connection ends with no alert */
	CHECK_EQ(ktls_conn_owed_sent(ssl, -EPIPE), -EPIPE);
	CHECK_EQ(fake.tx_sets[a], 3);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_REKEY_FAILED);
	CHECK(conn(bio)->dead && conn(bio)->wr_shut);
	CHECK_EQ(ktls_conn_owed(ssl, small, sizeof(small), &t), 0);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 2);	/* the failed one is not counted */
	CHECK_EQ(fake.nctrl, 0);
	ssl_close(ssl, ctx, a, b);

	/* the kernel's receive error: its alert is owed, and the end (write
	 * side shut, linger) follows the report; a KeyUpdate not handed out
	 * yet is dropped before it */
	bio = rx_bridge(&a, &b, s0, false, NULL);
	ktls_secret_set(&conn(bio)->tx.secret, s0, 32, "SHA256");
	ssl = handoff_ssl(bio, &ctx);
	CHECK_EQ(ktls_conn_set_owed(ssl, 1), 0);
	CHECK_EQ(ktls_conn_keyupdate(ssl, 0), 0);
	CHECK_EQ(ktls_conn_received(ssl, -EBADMSG, 0, NULL), -EBADMSG);
	CHECK(conn(bio)->dead && !conn(bio)->wr_shut);
	owed_is(ssl, KTLS_CT_ALERT, "\x02\x14", 2);	/* bad_record_mac, alone */
	CHECK_EQ(ktls_conn_owed_sent(ssl, 2), 1);
	CHECK(conn(bio)->wr_shut && conn(bio)->lingered);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 0);
	CHECK_EQ(fake.nctrl, 0);
	ssl_close(ssl, ctx, a, b);

	/* the peer's close_notify: ours is owed, then the write side shuts */
	bio = rx_bridge(&a, &b, s0, false, NULL);
	ssl = handoff_ssl(bio, &ctx);
	CHECK_EQ(ktls_conn_set_owed(ssl, 1), 0);
	CHECK_EQ(ktls_conn_received(ssl, 2, KTLS_CT_ALERT, "\x01\x00"), 1);
	CHECK(!conn(bio)->wr_shut);
	owed_is(ssl, KTLS_CT_ALERT, "\x01\x00", 2);
	CHECK_EQ(ktls_conn_owed_sent(ssl, 2), 1);
	CHECK(conn(bio)->wr_shut && !conn(bio)->lingered);
	CHECK_EQ(ktls_conn_shutdown(ssl), 0);		/* once */
	CHECK_EQ(ktls_conn_owed(ssl, small, sizeof(small), &t), 0);
	CHECK_EQ(fake.nctrl, 0);
	ssl_close(ssl, ctx, a, b);
}

/* What an application does with ktls_conn_owed: each record through the
 * kernel (here the fake one) with its type, then its report. */
static int send_owed(SSL *ssl, int fd)
{
	union ktls_cmsg_buf cb;
	uint8_t rec[KTLS_OWED_MAX];
	int type, r = 0, sent = 0;
	ssize_t n;

	while (r == 0 && (n = ktls_conn_owed(ssl, rec, sizeof(rec), &type)) > 0) {
		struct iovec iov = { .iov_base = rec, .iov_len = (size_t)n };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = cb.b, .msg_controllen = sizeof(cb.b) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

		memset(cb.b, 0, sizeof(cb.b));
		cm->cmsg_level = SOL_TLS;
		cm->cmsg_type = TLS_SET_RECORD_TYPE;
		cm->cmsg_len = CMSG_LEN(1);
		*CMSG_DATA(cm) = (unsigned char)type;
		n = fake_ops.sendmsg(fd, &m, MSG_NOSIGNAL);
		r = ktls_conn_owed_sent(ssl, n < 0 ? -errno : n);
		sent++;
	}
	return r < 0 ? r : sent;
}

/* A kernel with a staged key: the application's KeyUpdate record makes
 * it switch by itself, and the report only accounts (and stages the
 * next); the data sent after the report follows the KeyUpdate. */
static void case_owed_staged(void)
{
	static const uint8_t kureq[] = { 24, 0, 0, 1, 1 };
	uint8_t s0[32], buf[6];
	SSL_CTX *ctx;
	SSL *ssl;
	int a, b;
	BIO *bio;

	memset(s0, 0x66, sizeof(s0));
	bio = rx_bridge(&a, &b, s0, true, NULL);
	ktls_secret_set(&conn(bio)->tx.secret, s0, 32, "SHA256");
	ssl = handoff_ssl(bio, &ctx);
	ktls_key_stage(conn(bio), true);
	CHECK(conn(bio)->tx.staged && fake.staged);
	CHECK_EQ(ktls_conn_set_owed(ssl, 1), 0);
	CHECK_EQ(ktls_conn_received(ssl, 5, KTLS_CT_HANDSHAKE, kureq), 0);
	CHECK_EQ(fake.switches, 0);
	CHECK_EQ(send_owed(ssl, a), 1);
	CHECK_EQ(fake.switches, 1);
	CHECK_EQ(fake.tx_sets[a], 1);			/* not set again */
	CHECK_EQ(conn(bio)->tx.st.staged_switches, 1);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 1);
	CHECK(conn(bio)->tx.staged && fake.staged);	/* the next one */
	CHECK_EQ(ktls_conn_send(ssl, "x", 1), 1);
	CHECK_EQ(recv(b, buf, 6, MSG_WAITALL), 6);
	CHECK(!memcmp(buf, "\x18\x00\x00\x01\x00x", 6));	/* KeyUpdate first */
	/* our close_notify: the last record */
	CHECK_EQ(ktls_conn_shutdown(ssl), 0);
	CHECK(!conn(bio)->wr_shut);
	CHECK_EQ(send_owed(ssl, a), 1);
	CHECK(conn(bio)->wr_shut);
	CHECK_EQ(fake.nctrl, 2);
	CHECK(!memcmp(fake.ctrl_data[1], "\x01\x00", 2));
	ssl_close(ssl, ctx, a, b);
}

int main(void)
{
	RUN(case_handoff_owed_keyupdate);
	RUN(case_rx_kernel_errors);
	RUN(case_app_own_reads);
	RUN(case_split_keyupdate);
	RUN(case_records_after_close_notify);
	RUN(case_no_alert_after_close_notify);
	RUN(case_owed_records);
	RUN(case_owed_staged);
	ktls_sys_set(NULL);
	return ktest_done("bio-handoff-test");
}
