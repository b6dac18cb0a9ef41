// SPDX-License-Identifier: MIT
/*
 * bio-contract-test: the bridge BIO's side of libssl's kTLS contract.
 *
 * The first cases use this host's kernel: without kTLS, the fallback
 * reason names TCP_ULP; the BIO answers libssl's ctrls like a socket BIO.
 * Then, against the fake kernel (fakekernel.h): both directions accepted
 * (records of a type out through the cmsg, in with their header rebuilt,
 * receive errors left in errno), faults at each step of the install and
 * the reason each one leaves, and the policy knobs.  Last, without the
 * seam: the handshake-message walk, record accounting in userspace mode
 * and ktls_conn_attach() refusing what is not a connected TCP socket,
 * or a policy with a reserved word set.
 */
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridgetest.h"
#include "ktest.h"

static void case_real_kernel(void)
{
	const struct ktls_caps *caps;
	int a, b;
	BIO *bio;

	ktls_sys_set(NULL);
	caps = ktls_probe_refresh();
	if (caps->ulp) {
		printf("bio-contract-test: this kernel has kTLS; real-kernel fallback case skipped\n");
		return;
	}
	printf("bio-contract-test: host kernel has no kTLS (%s): testing the fallback path\n",
	       ktls_errno_name(caps->ulp_err));
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS12, true), 0);
	CHECK_EQ(BIO_ctrl(bio, BIO_CTRL_GET_KTLS_SEND, 0, NULL), 0);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_ULP_UNAVAILABLE);
	CHECK_EQ(conn(bio)->tx.st.err, caps->ulp_err);
	CHECK(strstr(conn(bio)->tx.st.detail, "TCP_ULP") != NULL);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_NOT_OFFERED);
	bridge_close(bio, a, b);
}

static void case_contract_basics(void)
{
	int a, b, fd = -1;
	BIO *bio;

	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	CHECK(BIO_method_type(bio) & BIO_TYPE_DESCRIPTOR);
	CHECK(BIO_method_type(bio) & BIO_TYPE_SOURCE_SINK);
	CHECK_EQ(BIO_get_fd(bio, &fd), a);
	CHECK_EQ(fd, a);
	CHECK_EQ(BIO_ctrl(bio, 9999, 0, NULL), 0);		/* unknown ctrl */
	CHECK_EQ(BIO_ctrl(bio, BIO_CTRL_GET_KTLS_SEND, 0, NULL), 0);
	CHECK_EQ(BIO_ctrl(bio, BIO_CTRL_GET_KTLS_RECV, 0, NULL), 0);
	CHECK_EQ(BIO_ctrl(bio, 72, 1, NULL), 0);		/* no key struct */
	CHECK_EQ(BIO_flush(bio), 1);
	CHECK_EQ(BIO_ctrl(bio, 90, 1, NULL), 0);		/* zerocopy before TX */
	bridge_close(bio, a, b);
}

static void case_accept_both(void)
{
	uint8_t buf[KTLS_REC_HDR + KTLS_REC_MAX], small[4];
	int a, b;
	BIO *bio;

	fake_reset();
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS12, true), 1);
	CHECK_EQ(BIO_ctrl(bio, BIO_CTRL_GET_KTLS_SEND, 0, NULL), 1);
	CHECK_EQ(conn(bio)->tx.st.mode, KTLS_MODE_KERNEL_SW);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_NONE);
	CHECK_EQ(fake.tx_sets[a], 1);

	/* application data: plaintext straight to the socket */
	CHECK_EQ(BIO_write(bio, "hello", 5), 5);
	CHECK_EQ(read(b, buf, sizeof(buf)), 5);
	CHECK(!memcmp(buf, "hello", 5));

	/* ctrl 74: the next write is one record of that type, via the cmsg
	 * (a warning alert that does not end the connection: user_canceled) */
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_ALERT, NULL), 1);
	CHECK_EQ(BIO_write(bio, "\x01\x5a", 2), 2);
	CHECK_EQ(fake.nctrl, 1);
	CHECK_EQ(fake.ctrl_type[0], KTLS_CT_ALERT);
	CHECK_EQ(fake.ctrl_len[0], 2);
	CHECK_EQ(read(b, buf, sizeof(buf)), 2);
	CHECK(!conn(bio)->wr_shut);
	/* ... and only the next one */
	CHECK_EQ(BIO_write(bio, "x", 1), 1);
	CHECK_EQ(fake.nctrl, 1);
	CHECK_EQ(read(b, buf, sizeof(buf)), 1);

	/* receive: one record, header rebuilt from the cmsg */
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS12, false), 1);
	CHECK_EQ(BIO_ctrl(bio, BIO_CTRL_GET_KTLS_RECV, 0, NULL), 1);
	fake_record(KTLS_CT_HANDSHAKE, "abc", 3);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), 8);
	CHECK(!memcmp(buf, "\x16\x03\x03\x00\x03" "abc", 8));
	/* a reader asking for less than a record gets it in pieces */
	CHECK_EQ(BIO_read(bio, small, 4), 4);
	fake.rec_len = 0;
	CHECK(!memcmp(small, "\x16\x03\x03\x00", 4));
	CHECK_EQ(BIO_pending(bio), 4);
	CHECK_EQ(BIO_read(bio, small, 4), 4);
	CHECK(!memcmp(small, "\x03" "abc", 4));
	CHECK_EQ(conn(bio)->rx.st.records, 2);

	/* a data record without cmsg is application data */
	CHECK_EQ(write(b, "zz", 2), 2);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), 7);
	CHECK(!memcmp(buf, "\x17\x03\x03\x00\x02zz", 7));

	/* receive errors are left in errno for libssl's alert mapping */
	fake.rec_err = EBADMSG;
	errno = 0;
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	CHECK_EQ(errno, EBADMSG);
	CHECK(!BIO_should_retry(bio));
	fake.rec_err = EAGAIN;
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	CHECK(BIO_should_retry(bio) && BIO_should_read(bio));
	fake.rec_err = 0;

	/* zerocopy sendfile: only when policy allows */
	CHECK_EQ(BIO_ctrl(bio, 90, 1, NULL), 0);
	conn(bio)->policy.zerocopy_sendfile = true;
	CHECK_EQ(BIO_ctrl(bio, 90, 1, NULL), 1);
	bridge_close(bio, a, b);
}

static void case_faults(void)
{
	int a, b;
	BIO *bio;

	/* the probe said yes but the ULP fails now */
	fake_reset();
	fake.ulp_err = EPERM;
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	CHECK_EQ(offer(bio, "AES-256-GCM", KTLS_TLS12, true), 0);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_ULP_UNAVAILABLE);
	CHECK_EQ(conn(bio)->tx.st.err, EPERM);
	CHECK_EQ(BIO_ctrl(bio, BIO_CTRL_GET_KTLS_SEND, 0, NULL), 0);
	CHECK_EQ(BIO_write(bio, "abc", 3), 3);	/* still a working socket */
	bridge_close(bio, a, b);

	/* TX accepted, then RX refused: TX kernel, RX userspace */
	fake_reset();
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	fake.rx_err = EINVAL;
	CHECK_EQ(offer(bio, "CHACHA20-POLY1305", KTLS_TLS12, true), 1);
	CHECK_EQ(offer(bio, "CHACHA20-POLY1305", KTLS_TLS12, false), 0);
	CHECK_EQ(conn(bio)->tx.st.mode, KTLS_MODE_KERNEL_SW);
	CHECK_EQ(conn(bio)->rx.st.mode, KTLS_MODE_USERSPACE);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_KERNEL_REFUSED);
	CHECK_EQ(conn(bio)->rx.st.err, EINVAL);
	CHECK(strstr(conn(bio)->rx.st.detail, "TLS_RX: EINVAL") != NULL);
	bridge_close(bio, a, b);

	/* TLS_TX refused with ENOENT (crypto module missing) */
	fake_reset();
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	fake.tx_err = ENOENT;
	CHECK_EQ(offer(bio, "AES-128-CCM", KTLS_TLS12, true), 0);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_CIPHER_UNSUPPORTED);
	CHECK_EQ(conn(bio)->tx.st.err, ENOENT);
	CHECK(strstr(conn(bio)->tx.st.detail, "TLS_TX: ENOENT") != NULL);
	bridge_close(bio, a, b);

	/* any other TLS_TX error is the kernel refusing */
	fake_reset();
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	fake.tx_err = ENOMEM;
	CHECK_EQ(offer(bio, "AES-128-CCM", KTLS_TLS12, true), 0);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_KERNEL_REFUSED);
	CHECK_EQ(conn(bio)->tx.st.err, ENOMEM);
	/* a later offer (libssl 3.2+ after a KeyUpdate) does not change the
	 * answer, even when the kernel would take it now */
	fake.tx_err = 0;
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS13, true), 0);
	CHECK_EQ(fake.tx_sets[a], 0);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_KERNEL_REFUSED);
	CHECK_EQ(conn(bio)->tx.st.err, ENOMEM);
	bridge_close(bio, a, b);

	/* libssl hands a struct with an unknown cipher */
	fake_reset();
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	{
		unsigned char junk[KTLS_MAX_INFO + 8] = { 0x03, 0x03, 0x63, 0x00 };

		CHECK_EQ(BIO_ctrl(bio, 72, 1, junk), 0);
		CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_BAD_KEYS);
	}
	bridge_close(bio, a, b);
}

static void p_off(struct ktls_policy *p) { p->offload = false; }
static void p_notx(struct ktls_policy *p) { p->tx = false; }
static void p_nogcm(struct ktls_policy *p) { p->ciphers &= ~1u; }
static void p_never(struct ktls_policy *p) { p->tls13 = KTLS_TLS13_NEVER; }

static void expect_policy(void (*tweak)(struct ktls_policy *), const char *cipher,
			  uint16_t version, bool tx, long want, enum ktls_reason why)
{
	int a, b;
	BIO *bio;

	fake_pair(&a, &b);
	bio = bridge(a, tweak);
	CHECK_EQ(offer(bio, cipher, version, tx), want);
	CHECK_EQ((tx ? conn(bio)->tx : conn(bio)->rx).st.reason, why);
	bridge_close(bio, a, b);
}

static void case_policy(void)
{
	fake_reset();	/* kernel: everything but re-key */
	CHECK(!ktls_probe()->rekey);
	expect_policy(p_off, "AES-128-GCM", KTLS_TLS12, true, 0, KTLS_R_POLICY_OFF);
	expect_policy(p_notx, "AES-128-GCM", KTLS_TLS12, true, 0, KTLS_R_POLICY_DIRECTION);
	expect_policy(p_notx, "AES-128-GCM", KTLS_TLS12, false, 1, KTLS_R_NONE);
	expect_policy(p_nogcm, "AES-128-GCM", KTLS_TLS12, true, 0, KTLS_R_POLICY_CIPHER);
	expect_policy(p_nogcm, "AES-256-GCM", KTLS_TLS12, true, 1, KTLS_R_NONE);
	expect_policy(p_never, "AES-128-GCM", KTLS_TLS13, true, 0, KTLS_R_TLS13_NEVER);
	expect_policy(NULL, "AES-128-GCM", KTLS_TLS13, true, 0, KTLS_R_TLS13_NO_REKEY);
	expect_policy(p_always, "AES-128-GCM", KTLS_TLS13, true, 1, KTLS_R_NONE);

	fake.rekey_err = 0;	/* a kernel that re-keys: auto offloads TLS 1.3 */
	fake_probe();
	CHECK(ktls_probe()->rekey);
	expect_policy(NULL, "AES-128-GCM", KTLS_TLS13, true, 1, KTLS_R_NONE);
}

static void case_handshake_walk(void)
{
	static const uint8_t coalesced[] = { 4, 0, 0, 2, 9, 9, 24, 0, 0, 1, 0 };
	static const uint8_t two[] = { 24, 0, 0, 1, 1, 24, 0, 0, 1, 0 };
	static const uint8_t truncated[] = { 24, 0, 0, 1 };
	static const uint8_t badval[] = { 24, 0, 0, 1, 2 };
	static const uint8_t none[] = { 4, 0, 0, 1, 7 };
	int req = -1;

	CHECK_EQ(ktls_hs_count_keyupdates(coalesced, sizeof(coalesced), &req), 1);
	CHECK_EQ(req, 0);
	CHECK_EQ(ktls_hs_count_keyupdates(two, sizeof(two), &req), 2);
	CHECK_EQ(ktls_hs_count_keyupdates(truncated, sizeof(truncated), NULL), -EBADMSG);
	CHECK_EQ(ktls_hs_count_keyupdates(badval, sizeof(badval), NULL), -EBADMSG);
	CHECK_EQ(ktls_hs_count_keyupdates(none, sizeof(none), NULL), 0);
}

static void case_userspace_accounting(void)
{
	static const uint8_t recs[] = { 23, 3, 3, 0, 2, 'x', 'y', 23, 3, 3, 0, 1, 'z' };
	uint8_t buf[32];
	int a, b;
	BIO *bio;

	ktls_sys_set(NULL);
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	/* split mid-header and mid-body */
	CHECK_EQ(BIO_write(bio, recs, 3), 3);
	CHECK_EQ(BIO_write(bio, recs + 3, 5), 5);
	CHECK_EQ(BIO_write(bio, recs + 8, sizeof(recs) - 8), (int)sizeof(recs) - 8);
	CHECK_EQ(conn(bio)->tx.st.records, 2);
	CHECK_EQ(conn(bio)->tx.st.bytes, sizeof(recs));
	CHECK_EQ(read(b, buf, sizeof(buf)), (ssize_t)sizeof(recs));
	bridge_close(bio, a, b);
}

static void case_attach_bad_input(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	int p[2], u, t, a, b, us[2];

	CHECK_EQ(ktls_conn_attach(NULL, 0, NULL), -EINVAL);
	CHECK_EQ(ktls_conn_attach(ssl, -1, NULL), -EBADF);
	t = socket(AF_INET, SOCK_STREAM, 0);
	close(t);
	CHECK_EQ(ktls_conn_attach(ssl, t, NULL), -EBADF);	/* closed fd */
	CHECK_EQ(pipe(p), 0);
	CHECK_EQ(ktls_conn_attach(ssl, p[0], NULL), -ENOTSOCK);
	u = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK_EQ(ktls_conn_attach(ssl, u, NULL), -EPROTOTYPE);
	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, us), 0);
	CHECK_EQ(ktls_conn_attach(ssl, us[0], NULL), -EPROTOTYPE);
	t = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_EQ(ktls_conn_attach(ssl, t, NULL), -ENOTCONN);
	{
		/* a listening socket has no peer either */
		struct sockaddr_in sin = { .sin_family = AF_INET };
		int l = socket(AF_INET, SOCK_STREAM, 0);

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		CHECK_EQ(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
		CHECK_EQ(listen(l, 1), 0);
		CHECK_EQ(ktls_conn_attach(ssl, l, NULL), -ENOTCONN);
		close(l);
	}
	fake_pair(&a, &b);
	CHECK_EQ(ktls_conn_attach(ssl, a, NULL), 0);
	CHECK_EQ(SSL_get_fd(ssl), a);
	{
		struct ktls_status st;

		CHECK_EQ(ktls_conn_status(ssl, &st), 0);
		CHECK_EQ(st.tx.reason, KTLS_R_NOT_OFFERED);
		CHECK_EQ(ktls_conn_status(ssl, NULL), -EINVAL);
	}
	SSL_free(ssl);
	ssl = SSL_new(ctx);
	{
		struct ktls_status st;

		CHECK_EQ(ktls_conn_status(ssl, &st), -EINVAL);	/* no bridge */
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(p[0]);
	close(p[1]);
	close(u);
	close(t);
	close(us[0]);
	close(us[1]);
	close(a);
	close(b);
}

/* The reserved words that let ktls_policy grow: the functions that fill a
 * policy clear them; attach, delegate and ktls_bio_new refuse a policy
 * with one set (a field of a newer release this one would ignore) or a
 * tls13 outside the enum; a status comes back with them zero. */
static void case_policy_reserved(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	struct ktls_policy p;
	struct ktls_status st;
	size_t i, n = sizeof(p.reserved) / sizeof(p.reserved[0]);
	int a, b;

	memset(&p, 0xa5, sizeof(p));
	ktls_policy_default(&p);
	for (i = 0; i < n; i++)
		CHECK_EQ(p.reserved[i], 0);
	memset(&p, 0xa5, sizeof(p));
	CHECK(ktls_policy_load(NULL, &p) >= 0);
	for (i = 0; i < n; i++)
		CHECK_EQ(p.reserved[i], 0);

	fake_pair(&a, &b);
	for (i = 0; i < n; i++) {
		ktls_policy_default(&p);
		p.reserved[i] = 1;
		CHECK_EQ(ktls_conn_attach(ssl, a, &p), -EINVAL);
		CHECK_EQ(ktls_conn_delegate(ssl, a, &p), -EINVAL);
		CHECK(ktls_bio_new(a, BIO_NOCLOSE, &p) == NULL);
	}
	ktls_policy_default(&p);
	p.tls13 = (enum ktls_tls13_mode)(KTLS_TLS13_NEVER + 1);
	CHECK_EQ(ktls_conn_attach(ssl, a, &p), -EINVAL);
	CHECK(ktls_bio_new(a, BIO_NOCLOSE, &p) == NULL);
	CHECK(SSL_get_rbio(ssl) == NULL);	/* nothing attached by the refusals */

	/* the same policy with the words zero is taken */
	p.tls13 = KTLS_TLS13_NEVER;
	CHECK_EQ(ktls_conn_attach(ssl, a, &p), 0);
	memset(&st, 0xa5, sizeof(st));
	CHECK_EQ(ktls_conn_status(ssl, &st), 0);
	for (i = 0; i < sizeof(st.tx.reserved) / sizeof(st.tx.reserved[0]); i++) {
		CHECK_EQ(st.tx.reserved[i], 0);
		CHECK_EQ(st.rx.reserved[i], 0);
	}
	CHECK_EQ(st.rx.early_pauses, 0);
	CHECK_EQ(st.rx.rekeys_ahead, 0);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(a);
	close(b);
}

int main(void)
{
	RUN(case_real_kernel);
	RUN(case_contract_basics);	/* still the real kernel's seam */
	RUN(case_accept_both);
	RUN(case_faults);
	RUN(case_policy);
	RUN(case_handshake_walk);
	RUN(case_userspace_accounting);
	RUN(case_attach_bad_input);
	RUN(case_policy_reserved);
	ktls_sys_set(NULL);
	return ktest_done("bio-contract-test");
}
