// SPDX-License-Identifier: MIT
/*
 * bio-test: the bridge BIO's side of libssl's kTLS contract.
 *
 * This host's kernel has no kTLS, so most cases run against a
 * FAULT-INJECTION seam (ktls_sys_set) that pretends the kernel accepted
 * or refused a particular setsockopt; bytes still move over a real
 * loopback TCP pair.  The first case uses the real kernel and checks the
 * fallback reason.  Real offload is proved by the VM tests.  The whole run
 * is under wipecheck's allocator hooks; the case_wipe_* cases check that
 * no key material is left in heap memory the bridge frees.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <openssl/bio.h>

#include "internal.h"
#include "ktest.h"
#include "wipecheck.h"

/* ---- fault-injection seam ------------------------------------------- */

static struct {
	int ulp_err, tx_err, rx_err, rekey_err, prestage_err;
	size_t short_ctrl;	/* FAULT: the next control record sendmsg takes this many bytes */
	int ctrl_err;		/* FAULT: the next control record sendmsg fails so */
	int tx_sets[1024], rx_sets[1024];
	uint8_t last_tx[KTLS_MAX_INFO];
	int ctrl_type[16];
	uint8_t ctrl_data[16][32];
	size_t ctrl_len[16], nctrl;
	/* a record the next recvmsg returns */
	int rec_type, rec_err;
	uint8_t rec[64];
	size_t rec_len;
	/* pre-staging as our kernel series does it (TLS_TX_NEXT) */
	bool staged;
	uint8_t staged_tx[KTLS_MAX_INFO];
	int next_sets, drops, switches;
	uint64_t tx_seq;	/* what getsockopt(TLS_TX) reports as rec_seq */
	/* receive re-key: a staged key, and KeyUpdates waiting for a key */
	bool staged_rx;
	uint8_t staged_rx_info[KTLS_MAX_INFO], last_rx[KTLS_MAX_INFO];
	int rx_pending, rx_switches;
	/* TLS_RX_EXPECT_NO_PAD, TLS_TX_ZEROCOPY_RO: sets per fd */
	int nopad_sets[1024], nopad_err, zc_sets[1024];
} F;

static int fake_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	if (level == IPPROTO_TCP && name == TCP_ULP) {
		if (F.ulp_err) {
			errno = F.ulp_err;
			return -1;
		}
		return 0;
	}
	if (level != SOL_TLS)
		return setsockopt(fd, level, name, val, len);
	switch (name) {
	case TLS_TX:
		if (F.tx_sets[fd] && F.rekey_err) {
			errno = F.rekey_err;
			return -1;
		}
		if (F.tx_err) {
			errno = F.tx_err;
			return -1;
		}
		F.tx_sets[fd]++;
		memcpy(F.last_tx, val, len < sizeof(F.last_tx) ? len : sizeof(F.last_tx));
		return 0;
	case TLS_RX:
		if (F.rx_err || (F.rx_sets[fd] && F.rekey_err)) {
			errno = F.rx_err ? F.rx_err : F.rekey_err;
			return -1;
		}
		F.rx_sets[fd]++;
		memcpy(F.last_rx, val, len < sizeof(F.last_rx) ? len : sizeof(F.last_rx));
		if (F.rx_pending)
			F.rx_pending--;
		return 0;
	case TLS_TX_ZEROCOPY_RO:
		F.zc_sets[fd]++;
		return 0;
	case TLS_RX_EXPECT_NO_PAD:
		if (F.nopad_err) {
			errno = F.nopad_err;
			return -1;
		}
		F.nopad_sets[fd]++;
		return 0;
	case TLS_TX_NEXT:
		if (F.prestage_err) {
			errno = F.prestage_err;
			return -1;
		}
		if (!val && !len) {
			F.staged = false;
			F.drops++;
			return 0;
		}
		F.staged = true;
		F.next_sets++;
		memcpy(F.staged_tx, val, len < sizeof(F.staged_tx) ? len : sizeof(F.staged_tx));
		return 0;
	case TLS_RX_NEXT:
		if (F.prestage_err) {
			errno = F.prestage_err;
			return -1;
		}
		if (!val && !len) {
			F.staged_rx = false;
			return 0;
		}
		if (F.rx_pending) {	/* a KeyUpdate waits: installed at once */
			memcpy(F.last_rx, val, len < sizeof(F.last_rx) ? len : sizeof(F.last_rx));
			F.rx_pending--;
			F.rx_switches++;
			return 0;
		}
		F.staged_rx = true;
		memcpy(F.staged_rx_info, val,
		       len < sizeof(F.staged_rx_info) ? len : sizeof(F.staged_rx_info));
		return 0;
	default:
		return 0;
	}
}

static ssize_t fake_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct cmsghdr *cm = CMSG_FIRSTHDR((struct msghdr *)msg);
	struct msghdr plain = *msg;
	struct iovec iov = msg->msg_iov[0];

	if (cm && cm->cmsg_level == SOL_TLS && F.ctrl_err) {
		errno = F.ctrl_err;
		F.ctrl_err = 0;
		return -1;
	}
	if (cm && cm->cmsg_level == SOL_TLS && F.short_ctrl && F.short_ctrl < iov.iov_len) {
		iov.iov_len = F.short_ctrl;	/* a short write, as under memory pressure */
		F.short_ctrl = 0;
		plain.msg_iov = &iov;
		plain.msg_iovlen = 1;
		msg = &plain;
	}
	if (cm && cm->cmsg_level == SOL_TLS && F.nctrl < 16) {
		F.ctrl_type[F.nctrl] = *CMSG_DATA(cm);
		F.ctrl_len[F.nctrl] = msg->msg_iov[0].iov_len;
		memcpy(F.ctrl_data[F.nctrl], msg->msg_iov[0].iov_base,
		       F.ctrl_len[F.nctrl] < 32 ? F.ctrl_len[F.nctrl] : 32);
		F.nctrl++;
		/* the kernel switches to a staged key after a KeyUpdate record */
		if (*CMSG_DATA(cm) == KTLS_CT_HANDSHAKE && F.staged &&
		    ktls_hs_count_keyupdates(msg->msg_iov[0].iov_base,
					     msg->msg_iov[0].iov_len, NULL) > 0) {
			memcpy(F.last_tx, F.staged_tx, sizeof(F.last_tx));
			F.staged = false;
			F.switches++;
		}
	}
	plain.msg_control = NULL;
	plain.msg_controllen = 0;
	return sendmsg(fd, &plain, flags);
}

static ssize_t fake_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct cmsghdr *cm;

	if (F.rec_err) {
		errno = F.rec_err;
		return -1;
	}
	if (F.rx_pending) {
		errno = EKEYEXPIRED;
		return -1;
	}
	if (!F.rec_len)
		return recvmsg(fd, msg, flags);
	memcpy(msg->msg_iov[0].iov_base, F.rec, F.rec_len);
	if (F.rec_type == KTLS_CT_HANDSHAKE) {
		int nku = ktls_hs_count_keyupdates(F.rec, F.rec_len, NULL);

		if (nku > 0 && F.staged_rx) {	/* switch once, pend for the rest */
			memcpy(F.last_rx, F.staged_rx_info, sizeof(F.last_rx));
			F.staged_rx = false;
			F.rx_switches++;
			nku--;
		}
		if (nku > 0)
			F.rx_pending += nku;
	}
	cm = CMSG_FIRSTHDR(msg);
	cm->cmsg_level = SOL_TLS;
	cm->cmsg_type = TLS_GET_RECORD_TYPE;
	cm->cmsg_len = CMSG_LEN(1);
	*CMSG_DATA(cm) = (unsigned char)F.rec_type;
	msg->msg_controllen = CMSG_SPACE(1);
	return (ssize_t)F.rec_len;
}

static int fake_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	const struct ktls_cipher *c = ktls_cipher_by_name("AES-128-GCM");

	if (level != SOL_TLS)
		return getsockopt(fd, level, name, val, len);
	if ((name == TLS_TX_NEXT && !F.staged) || (name == TLS_RX_NEXT && !F.staged_rx)) {
		errno = ENOENT;
		return -1;
	}
	if ((name != TLS_TX && name != TLS_TX_NEXT && name != TLS_RX_NEXT) ||
	    *len < c->info_size) {
		errno = EINVAL;
		return -1;
	}
	memcpy(val, name == TLS_TX ? F.last_tx : name == TLS_TX_NEXT ? F.staged_tx :
		    F.staged_rx_info, c->info_size);
	if (name == TLS_TX)
		for (int i = 0; i < 8; i++)
			((uint8_t *)val)[c->off_seq + i] = (uint8_t)(F.tx_seq >> (56 - 8 * i));
	*len = c->info_size;
	return 0;
}

static const struct ktls_sys_ops fake_ops = {
	.setsockopt = fake_setsockopt,
	.getsockopt = fake_getsockopt,
	.sendmsg = fake_sendmsg,
	.recvmsg = fake_recvmsg,
};

/* Probe through the seam; forget the probe's own sockets afterwards. */
static void fake_probe(void)
{
	ktls_probe_refresh();
	memset(F.tx_sets, 0, sizeof(F.tx_sets));
	memset(F.rx_sets, 0, sizeof(F.rx_sets));
}

static void fake_reset(void)
{
	memset(&F, 0, sizeof(F));
	ktls_linger_ms = 20;	/* our peers never close: do not wait 2 s for them */
	F.prestage_err = ENOPROTOOPT;
	F.rekey_err = EBUSY;
	ktls_sys_set(&fake_ops);
	fake_probe();
}

/* ---- helpers ----------------------------------------------------------- */

/* A loopback pair whose fd numbers the fake kernel has not seen yet. */
static void fake_pair(int *a, int *b)
{
	tcp_pair(a, b);
	F.tx_sets[*a] = F.rx_sets[*a] = F.nopad_sets[*a] = F.zc_sets[*a] = 0;	/* fd numbers reused */
}

/* libssl offers kb (ctrl 72); its layout: the key struct, then a size_t
 * length. */
static long offer_kb(BIO *b, const struct ktls_keyblock *kb, bool tx)
{
	unsigned char buf[KTLS_MAX_INFO + sizeof(size_t)];

	memset(buf, 0, sizeof(buf));
	ktls_keyblock_to_info(kb, buf, sizeof(buf));
	return BIO_ctrl(b, 72, tx, buf);
}

static long offer(BIO *b, const char *cipher, uint16_t version, bool tx)
{
	struct ktls_keyblock kb;

	memset(&kb, 0x11, sizeof(kb));
	kb.cipher = ktls_cipher_by_name(cipher);
	kb.version = version;
	return offer_kb(b, &kb, tx);
}

static struct ktls_conn *conn(BIO *b)
{
	return ktls_conn_from_bio(b);
}

static BIO *bridge(int fd, void (*tweak)(struct ktls_policy *))
{
	struct ktls_policy p;

	ktls_policy_default(&p);
	if (tweak)
		tweak(&p);
	return ktls_bio_new(fd, BIO_NOCLOSE, &p);
}

/* ---- cases ------------------------------------------------------------- */

static void case_real_kernel(void)
{
	const struct ktls_caps *caps;
	int a, b;
	BIO *bio;

	ktls_sys_set(NULL);
	caps = ktls_probe_refresh();
	if (caps->ulp) {
		printf("bio-test: this kernel has kTLS; real-kernel fallback case skipped\n");
		return;
	}
	printf("bio-test: host kernel has no kTLS (%s): testing the fallback path\n",
	       ktls_errno_name(caps->ulp_err));
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS12, true), 0);
	CHECK_EQ(BIO_ctrl(bio, BIO_CTRL_GET_KTLS_SEND, 0, NULL), 0);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_ULP_UNAVAILABLE);
	CHECK_EQ(conn(bio)->tx.st.err, caps->ulp_err);
	CHECK(strstr(conn(bio)->tx.st.detail, "TCP_ULP") != NULL);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_NOT_OFFERED);
	BIO_free(bio);
	close(a);
	close(b);
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
	BIO_free(bio);
	close(a);
	close(b);
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
	CHECK_EQ(F.tx_sets[a], 1);

	/* application data: plaintext straight to the socket */
	CHECK_EQ(BIO_write(bio, "hello", 5), 5);
	CHECK_EQ(read(b, buf, sizeof(buf)), 5);
	CHECK(!memcmp(buf, "hello", 5));

	/* ctrl 74: the next write is one record of that type, via the cmsg
	 * (a warning alert that does not end the connection: user_canceled) */
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_ALERT, NULL), 1);
	CHECK_EQ(BIO_write(bio, "\x01\x5a", 2), 2);
	CHECK_EQ(F.nctrl, 1);
	CHECK_EQ(F.ctrl_type[0], KTLS_CT_ALERT);
	CHECK_EQ(F.ctrl_len[0], 2);
	CHECK_EQ(read(b, buf, sizeof(buf)), 2);
	CHECK(!conn(bio)->wr_shut);
	/* ... and only the next one */
	CHECK_EQ(BIO_write(bio, "x", 1), 1);
	CHECK_EQ(F.nctrl, 1);
	CHECK_EQ(read(b, buf, sizeof(buf)), 1);

	/* receive: one record, header rebuilt from the cmsg */
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS12, false), 1);
	CHECK_EQ(BIO_ctrl(bio, BIO_CTRL_GET_KTLS_RECV, 0, NULL), 1);
	F.rec_type = KTLS_CT_HANDSHAKE;
	memcpy(F.rec, "abc", 3);
	F.rec_len = 3;
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), 8);
	CHECK(!memcmp(buf, "\x16\x03\x03\x00\x03" "abc", 8));
	/* a reader asking for less than a record gets it in pieces */
	CHECK_EQ(BIO_read(bio, small, 4), 4);
	F.rec_len = 0;
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
	F.rec_err = EBADMSG;
	errno = 0;
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	CHECK_EQ(errno, EBADMSG);
	CHECK(!BIO_should_retry(bio));
	F.rec_err = EAGAIN;
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	CHECK(BIO_should_retry(bio) && BIO_should_read(bio));
	F.rec_err = 0;

	/* zerocopy sendfile: only when policy allows */
	CHECK_EQ(BIO_ctrl(bio, 90, 1, NULL), 0);
	conn(bio)->policy.zerocopy_sendfile = true;
	CHECK_EQ(BIO_ctrl(bio, 90, 1, NULL), 1);
	BIO_free(bio);
	close(a);
	close(b);
}

static void case_faults(void)
{
	int a, b;
	BIO *bio;

	/* the probe said yes but the ULP fails now */
	fake_reset();
	F.ulp_err = EPERM;
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	CHECK_EQ(offer(bio, "AES-256-GCM", KTLS_TLS12, true), 0);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_ULP_UNAVAILABLE);
	CHECK_EQ(conn(bio)->tx.st.err, EPERM);
	CHECK_EQ(BIO_ctrl(bio, BIO_CTRL_GET_KTLS_SEND, 0, NULL), 0);
	CHECK_EQ(BIO_write(bio, "abc", 3), 3);	/* still a working socket */
	BIO_free(bio);
	close(a);
	close(b);

	/* TX accepted, then RX refused: TX kernel, RX userspace */
	fake_reset();
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	F.rx_err = EINVAL;
	CHECK_EQ(offer(bio, "CHACHA20-POLY1305", KTLS_TLS12, true), 1);
	CHECK_EQ(offer(bio, "CHACHA20-POLY1305", KTLS_TLS12, false), 0);
	CHECK_EQ(conn(bio)->tx.st.mode, KTLS_MODE_KERNEL_SW);
	CHECK_EQ(conn(bio)->rx.st.mode, KTLS_MODE_USERSPACE);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_KERNEL_REFUSED);
	CHECK_EQ(conn(bio)->rx.st.err, EINVAL);
	CHECK(strstr(conn(bio)->rx.st.detail, "TLS_RX: EINVAL") != NULL);
	BIO_free(bio);
	close(a);
	close(b);

	/* TLS_TX refused with ENOENT (crypto module missing) */
	fake_reset();
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	F.tx_err = ENOENT;
	CHECK_EQ(offer(bio, "AES-128-CCM", KTLS_TLS12, true), 0);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_CIPHER_UNSUPPORTED);
	CHECK_EQ(conn(bio)->tx.st.err, ENOENT);
	CHECK(strstr(conn(bio)->tx.st.detail, "TLS_TX: ENOENT") != NULL);
	BIO_free(bio);
	close(a);
	close(b);

	/* any other TLS_TX error is the kernel refusing */
	fake_reset();
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	F.tx_err = ENOMEM;
	CHECK_EQ(offer(bio, "AES-128-CCM", KTLS_TLS12, true), 0);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_KERNEL_REFUSED);
	CHECK_EQ(conn(bio)->tx.st.err, ENOMEM);
	/* a later offer (libssl 3.2+ after a KeyUpdate) does not change the
	 * answer, even when the kernel would take it now */
	F.tx_err = 0;
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS13, true), 0);
	CHECK_EQ(F.tx_sets[a], 0);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_KERNEL_REFUSED);
	CHECK_EQ(conn(bio)->tx.st.err, ENOMEM);
	BIO_free(bio);
	close(a);
	close(b);

	/* libssl hands a struct with an unknown cipher */
	fake_reset();
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	{
		unsigned char junk[KTLS_MAX_INFO + 8] = { 0x03, 0x03, 0x63, 0x00 };

		CHECK_EQ(BIO_ctrl(bio, 72, 1, junk), 0);
		CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_BAD_KEYS);
	}
	BIO_free(bio);
	close(a);
	close(b);
}

static void p_off(struct ktls_policy *p) { p->offload = false; }
static void p_notx(struct ktls_policy *p) { p->tx = false; }
static void p_nogcm(struct ktls_policy *p) { p->ciphers &= ~1u; }
static void p_never(struct ktls_policy *p) { p->tls13 = KTLS_TLS13_NEVER; }
static void p_always(struct ktls_policy *p) { p->tls13 = KTLS_TLS13_ALWAYS; }

static void expect_policy(void (*tweak)(struct ktls_policy *), const char *cipher,
			  uint16_t version, bool tx, long want, enum ktls_reason why)
{
	int a, b;
	BIO *bio;

	fake_pair(&a, &b);
	bio = bridge(a, tweak);
	CHECK_EQ(offer(bio, cipher, version, tx), want);
	CHECK_EQ((tx ? conn(bio)->tx : conn(bio)->rx).st.reason, why);
	BIO_free(bio);
	close(a);
	close(b);
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

	F.rekey_err = 0;	/* a kernel that re-keys: auto offloads TLS 1.3 */
	fake_probe();
	CHECK(ktls_probe()->rekey);
	expect_policy(NULL, "AES-128-GCM", KTLS_TLS13, true, 1, KTLS_R_NONE);
}

/* A fake kernel that re-keys (no staging), TX TLS 1.3 offered with s0. */
static BIO *rekey_bridge(int *a, int *b, const uint8_t *s0)
{
	BIO *bio;

	fake_reset();
	F.rekey_err = 0;
	fake_probe();
	tcp_pair(a, b);
	bio = bridge(*a, NULL);
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
	CHECK_EQ(F.nctrl, 1);
	CHECK_EQ(F.ctrl_type[0], KTLS_CT_ALERT);
	CHECK(!memcmp(F.ctrl_data[0], "\x02\x50", 2));	/* fatal internal_error */
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_REKEY_FAILED);
	CHECK_EQ(conn(bio)->tx.st.err, EBUSY);
	CHECK_EQ(BIO_write(bio, "data", 4), -1);		/* nothing after that */
	CHECK_EQ(read(b, buf, sizeof(buf)), 2);		/* only the alert left */
	BIO_free(bio);
	close(a);
	close(b);

	/* kernel re-keys: KeyUpdate goes out, then TLS_TX gets generation 1 */
	fake_reset();
	F.rekey_err = 0;
	fake_probe();
	fake_pair(&a, &b);
	bio = bridge(a, NULL);
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS13, true), 1);
	CHECK_EQ(ktls_secret_set(&conn(bio)->tx.secret, s0, 32, "SHA256"), 0);
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku, sizeof(ku)), (int)sizeof(ku));
	CHECK_EQ(F.ctrl_type[0], KTLS_CT_HANDSHAKE);
	CHECK_EQ(F.tx_sets[a], 2);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 1);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 1);
	ktls_secret_set(&ref, s0, 32, "SHA256");
	ktls_secret_next(&ref);
	ktls_secret_keyblock(&ref, ktls_cipher_by_name("AES-128-GCM"), &want);
	ktls_keyblock_to_info(&want, info, sizeof(info));
	CHECK(!memcmp(F.last_tx, info, ktls_cipher_by_name("AES-128-GCM")->info_size));
	CHECK_EQ(BIO_write(bio, "more", 4), 4);
	BIO_free(bio);
	close(a);
	close(b);

	/* re-key refused by the kernel after the KeyUpdate went out */
	bio = rekey_bridge(&a, &b, s0);
	F.rekey_err = ENOMEM;	/* FAULT: the second TLS_TX fails */
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku, sizeof(ku)), -1);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_REKEY_FAILED);
	CHECK_EQ(conn(bio)->tx.st.err, ENOMEM);
	CHECK_EQ(BIO_write(bio, "data", 4), -1);
	BIO_free(bio);
	close(a);
	close(b);

	/* FAULT: the kernel takes only part of the KeyUpdate record; the
	 * re-key waits for its last byte, which libssl writes next */
	bio = rekey_bridge(&a, &b, s0);
	F.short_ctrl = 3;
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku, sizeof(ku)), 3);
	CHECK_EQ(F.tx_sets[a], 1);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 0);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 0);
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku + 3, sizeof(ku) - 3), (int)sizeof(ku) - 3);
	CHECK_EQ(F.nctrl, 2);
	CHECK_EQ(F.ctrl_len[0], 3);
	CHECK_EQ(F.ctrl_type[1], KTLS_CT_HANDSHAKE);
	CHECK_EQ(F.ctrl_len[1], sizeof(ku) - 3);
	CHECK_EQ(F.tx_sets[a], 2);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 1);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 1);
	CHECK_EQ(conn(bio)->tx.st.records, 1);
	CHECK(!memcmp(F.last_tx, info, ktls_cipher_by_name("AES-128-GCM")->info_size));
	CHECK_EQ(recv(b, buf, sizeof(ku), MSG_WAITALL), (ssize_t)sizeof(ku));
	CHECK(!memcmp(buf, ku, sizeof(ku)));
	BIO_free(bio);
	close(a);
	close(b);
	ktls_secret_wipe(&ref);
	ktls_keyblock_wipe(&want);
}

/* The info struct of generation gen of the chain from s0. */
static void gen_info(const uint8_t *s0, int gen, uint8_t *info)
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

/* libssl 3.2+ offering generation gen of the chain from s0 (ctrl 72). */
static long offer_gen(BIO *b, const uint8_t *s0, int gen, bool tx)
{
	unsigned char buf[KTLS_MAX_INFO + sizeof(size_t)];

	memset(buf, 0, sizeof(buf));
	gen_info(s0, gen, buf);
	return BIO_ctrl(b, 72, tx, buf);
}

static void p_ku4(struct ktls_policy *p) { p->keyupdate_records = 4; }
static void p_ku4_always(struct ktls_policy *p)
{
	p->keyupdate_records = 4;
	p->tls13 = KTLS_TLS13_ALWAYS;
}

/* A prestage-capable fake kernel, TX TLS 1.3 offered with secret s0. */
static BIO *prestage_bridge(int *a, int *b, const uint8_t *s0,
			    void (*tweak)(struct ktls_policy *))
{
	BIO *bio;

	fake_reset();
	F.rekey_err = F.prestage_err = 0;
	fake_probe();
	CHECK(ktls_probe()->prestage);
	tcp_pair(a, b);
	bio = bridge(*a, tweak);
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS13, true), 1);
	ktls_secret_set(&conn(bio)->tx.secret, s0, 32, "SHA256");
	return bio;
}

static void case_prestage(void)
{
	static const uint8_t ku[] = { 24, 0, 0, 1, 0 };
	static const uint8_t two[] = { 24, 0, 0, 1, 0, 24, 0, 0, 1, 0 };
	const size_t isz = ktls_cipher_by_name("AES-128-GCM")->info_size;
	uint8_t s0[32], info[KTLS_MAX_INFO];
	int a, b;
	BIO *bio;

	memset(s0, 0x5a, sizeof(s0));

	/* staged before the KeyUpdate; the kernel switches by itself */
	bio = prestage_bridge(&a, &b, s0, NULL);
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku, sizeof(ku)), (int)sizeof(ku));
	CHECK_EQ(F.switches, 1);
	CHECK_EQ(F.tx_sets[a], 1);		/* TLS_TX was never set again */
	gen_info(s0, 1, info);
	CHECK(!memcmp(F.last_tx, info, isz));	/* the kernel holds generation 1 */
	gen_info(s0, 2, info);
	CHECK(F.staged && !memcmp(F.staged_tx, info, isz));	/* 2 is staged */
	CHECK_EQ(conn(bio)->tx.st.rekeys, 1);
	CHECK_EQ(conn(bio)->tx.st.staged_switches, 1);

	/* two KeyUpdates in one record: one staged switch, then TLS_TX */
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, two, sizeof(two)), (int)sizeof(two));
	CHECK_EQ(F.switches, 2);
	CHECK_EQ(F.tx_sets[a], 2);
	gen_info(s0, 3, info);
	CHECK(!memcmp(F.last_tx, info, isz));
	gen_info(s0, 4, info);
	CHECK(F.staged && !memcmp(F.staged_tx, info, isz));
	CHECK_EQ(conn(bio)->tx.st.rekeys, 2);
	CHECK_EQ(conn(bio)->tx.st.staged_switches, 2);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 3);

	/* FAULT: staging refused from now on; KeyUpdates set TLS_TX again */
	F.prestage_err = ENOMEM;
	F.staged = false;
	conn(bio)->tx.staged = false;
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku, sizeof(ku)), (int)sizeof(ku));
	CHECK_EQ(F.tx_sets[a], 3);
	gen_info(s0, 4, info);
	CHECK(!memcmp(F.last_tx, info, isz));
	CHECK_EQ(conn(bio)->tx.st.rekeys, 3);
	CHECK_EQ(conn(bio)->tx.st.staged_switches, 2);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_NONE);
	CHECK_EQ(BIO_write(bio, "data", 4), 4);
	BIO_free(bio);
	close(a);
	close(b);

	/* a handshake record without KeyUpdate leaves the staged key alone */
	bio = prestage_bridge(&a, &b, s0, NULL);
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, "\x04\x00\x00\x01\x07", 5), 5);	/* NewSessionTicket-ish */
	CHECK(F.staged);
	CHECK_EQ(F.drops, 0);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 0);
	BIO_free(bio);
	close(a);
	close(b);
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
	F.tx_seq = 100;
	for (int i = 0; i < 8; i++)
		CHECK_EQ(BIO_write(bio, "abcd", 4), 4);
	CHECK_EQ(F.nctrl, 0);
	CHECK_EQ(F.tx_sets[a], 1);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_NONE);
	BIO_free(bio);
	close(a);
	close(b);
}

static void case_proactive_keyupdate(void)
{
	uint8_t s0[32], info[KTLS_MAX_INFO];
	const size_t isz = ktls_cipher_by_name("AES-128-GCM")->info_size;
	int a, b;
	BIO *bio;

	memset(s0, 0x33, sizeof(s0));
	bio = prestage_bridge(&a, &b, s0, p_ku4);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(BIO_write(bio, "abcd", 4), 4);
	CHECK_EQ(F.nctrl, 0);
	/* our count says 4 records, the kernel's says 2: the kernel wins */
	F.tx_seq = 2;
	CHECK_EQ(BIO_write(bio, "abcd", 4), 4);		/* 3 by the kernel's count */
	CHECK_EQ(BIO_write(bio, "abcd", 4), 4);		/* 4 */
	CHECK_EQ(F.nctrl, 0);
	/* now the kernel's counter is at the limit, and the socket is full
	 * for the KeyUpdate: nothing goes out and the write is to be retried */
	F.tx_seq = 4;
	F.ctrl_err = EAGAIN;
	{
		int queued = 0, now = 0;

		CHECK_EQ(ioctl(b, FIONREAD, &queued), 0);
		CHECK_EQ(BIO_write(bio, "abcd", 4), -1);
		CHECK(BIO_should_retry(bio) && BIO_should_write(bio));
		CHECK_EQ(ioctl(b, FIONREAD, &now), 0);
		CHECK_EQ(now, queued);			/* no data before the KeyUpdate */
		CHECK_EQ(F.nctrl, 0);
		CHECK_EQ(conn(bio)->tx.st.keyupdates, 0);
	}
	/* the retry: KeyUpdate first */
	CHECK_EQ(BIO_write(bio, "abcd", 4), 4);
	CHECK_EQ(F.nctrl, 1);
	CHECK_EQ(F.ctrl_type[0], KTLS_CT_HANDSHAKE);
	CHECK_EQ(F.ctrl_len[0], 5);
	CHECK(!memcmp(F.ctrl_data[0], "\x18\x00\x00\x01\x00", 5));	/* not requested */
	CHECK_EQ(F.switches, 1);
	gen_info(s0, 1, info);
	CHECK(!memcmp(F.last_tx, info, isz));
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 1);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 1);
	CHECK_EQ(conn(bio)->tx.since_ku, 1);	/* the data record after it */
	/* libssl 3.2+ then sends a KeyUpdate of its own and offers the key it
	 * counts (generation 1), one behind the kernel's (2): accepted */
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, "\x18\x00\x00\x01\x00", 5), 5);
	gen_info(s0, 2, info);
	CHECK(!memcmp(F.last_tx, info, isz));
	CHECK_EQ(offer_gen(bio, s0, 1, true), 1);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_NONE);
	CHECK(!memcmp(F.last_tx, info, isz));	/* the kernel keeps generation 2 */
	/* any other key is a mismatch */
	CHECK_EQ(offer_gen(bio, s0, 3, true), 0);
	CHECK_EQ(conn(bio)->tx.st.reason, KTLS_R_KEY_MISMATCH);
	BIO_free(bio);
	close(a);
	close(b);

	/* a kernel that cannot re-key (tls13 = always): no KeyUpdate at the
	 * limit, the data keeps flowing; TLS 1.2 has no KeyUpdate at all */
	no_proactive(p_ku4_always, KTLS_TLS13, s0);
	no_proactive(p_ku4, KTLS_TLS12, s0);
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
	bio = prestage_bridge(&a, &b, s0, NULL);
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
	BIO_free(bio);
	close(a);
	close(b);
}

/* The next record the fake kernel delivers. */
static void rx_record(int type, const void *p, size_t len)
{
	F.rec_type = type;
	memcpy(F.rec, p, len);
	F.rec_len = len;
}

static void p_storm3(struct ktls_policy *p) { p->storm_limit = 3; }
static void p_no_guard(struct ktls_policy *p) { p->storm_limit = p->keyupdate_burst = 0; }

/* TX and RX TLS 1.3 in the (fake) kernel, the RX chain from s0. */
static BIO *rx_bridge(int *a, int *b, const uint8_t *s0, bool prestage,
		      void (*tweak)(struct ktls_policy *))
{
	BIO *bio;

	fake_reset();
	F.rekey_err = 0;
	if (prestage)
		F.prestage_err = 0;
	fake_probe();
	tcp_pair(a, b);
	bio = bridge(*a, tweak);
	CHECK_EQ(offer_gen(bio, s0, 0, true), 1);
	CHECK_EQ(offer_gen(bio, s0, 0, false), 1);
	ktls_secret_set(&conn(bio)->rx.secret, s0, 32, "SHA256");
	ktls_key_stage(conn(bio), false);	/* as the key-log callback does */
	CHECK_EQ(F.staged_rx, prestage);
	return bio;
}

/* n reads of the KeyUpdate record the fake kernel delivers (rx_record),
 * each a whole record: header and the 5-byte message. */
static void read_keyupdates(BIO *bio, int n)
{
	uint8_t buf[KTLS_REC_HDR + KTLS_REC_MAX];

	for (int i = 0; i < n; i++)
		CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
}

static void case_rx_rekey(void)
{
	static const uint8_t ku[] = { 24, 0, 0, 1, 0 };
	static const uint8_t two[] = { 24, 0, 0, 1, 0, 24, 0, 0, 1, 1 };
	const size_t isz = ktls_cipher_by_name("AES-128-GCM")->info_size;
	uint8_t s0[32], info[KTLS_MAX_INFO], buf[KTLS_REC_HDR + KTLS_REC_MAX];
	int a, b;
	BIO *bio;

	memset(s0, 0x77, sizeof(s0));
	gen_info(s0, 0, info);

	/* 6.14 UAPI: KeyUpdate handed up, then EKEYEXPIRED until TLS_RX */
	bio = rx_bridge(&a, &b, s0, false, NULL);
	rx_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
	CHECK_EQ(buf[0], KTLS_CT_HANDSHAKE);
	CHECK_EQ(F.rx_pending, 1);
	rx_record(KTLS_CT_APPDATA, "hello", 5);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);	/* no EKEYEXPIRED */
	CHECK(!memcmp(buf + KTLS_REC_HDR, "hello", 5));
	CHECK_EQ(F.rx_sets[a], 2);
	gen_info(s0, 1, info);
	CHECK(!memcmp(F.last_rx, info, isz));
	CHECK_EQ(conn(bio)->rx.st.rekeys, 1);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 1);
	CHECK_EQ(conn(bio)->rx.st.staged_switches, 0);
	/* 3.2+ offers generation 1 again after the KeyUpdate: already there */
	CHECK_EQ(offer_gen(bio, s0, 1, false), 1);
	CHECK_EQ(F.rx_sets[a], 2);
	/* ... or offers generation 2 before the kernel asked: installed */
	CHECK_EQ(offer_gen(bio, s0, 2, false), 1);
	CHECK_EQ(F.rx_sets[a], 3);
	gen_info(s0, 2, info);
	CHECK(!memcmp(F.last_rx, info, isz));
	/* a key off the chain is not trusted: the connection ends */
	CHECK_EQ(offer_gen(bio, s0, 5, false), 0);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_KEY_MISMATCH);
	CHECK_EQ(F.ctrl_type[0], KTLS_CT_ALERT);
	CHECK(!memcmp(F.ctrl_data[0], "\x02\x50", 2));	/* fatal internal_error */
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	BIO_free(bio);
	close(a);
	close(b);

	/* pre-staged: the kernel switches at once, no EKEYEXPIRED, no TLS_RX */
	bio = rx_bridge(&a, &b, s0, true, NULL);
	rx_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
	CHECK_EQ(F.rx_pending, 0);
	CHECK_EQ(F.rx_switches, 1);
	CHECK_EQ(F.rx_sets[a], 1);
	gen_info(s0, 1, info);
	CHECK(!memcmp(F.last_rx, info, isz));
	CHECK_EQ(conn(bio)->rx.st.staged_switches, 1);
	/* the next key is staged after the first data record, not before it */
	CHECK(!F.staged_rx);
	rx_record(KTLS_CT_APPDATA, "hello", 5);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
	CHECK(!F.staged_rx);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
	gen_info(s0, 2, info);
	CHECK(F.staged_rx && !memcmp(F.staged_rx_info, info, isz));
	CHECK_EQ(conn(bio)->rx.st.key_expired, 0);
	/* 3.2+ re-offer of what the kernel holds: nothing to do */
	CHECK_EQ(offer_gen(bio, s0, 1, false), 1);
	CHECK_EQ(F.rx_sets[a], 1);
	/* a KeyUpdate split across two records is one KeyUpdate */
	rx_record(KTLS_CT_HANDSHAKE, ku, 2);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 2);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 1);
	rx_record(KTLS_CT_HANDSHAKE, ku + 2, 3);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 3);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 2);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_NONE);
	/* two in one record: the first does not end its record (RFC 8446
	 * 5.1): fatal unexpected_message */
	CHECK_EQ(F.nctrl, 0);
	rx_record(KTLS_CT_HANDSHAKE, two, sizeof(two));
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_PROTOCOL);
	CHECK_EQ(F.nctrl, 1);
	CHECK(!memcmp(F.ctrl_data[0], "\x02\x0a", 2));
	BIO_free(bio);
	close(a);
	close(b);

	/* malformed KeyUpdates: illegal_parameter, decode_error; and a record
	 * of another type inside a split handshake message */
	{
		static const struct { uint8_t rec[8]; size_t len; uint8_t alert; } bad[] = {
			{ { 24, 0, 0, 1, 2 }, 5, 47 },
			{ { 24, 0, 0, 2, 0, 0 }, 6, 50 },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			bio = rx_bridge(&a, &b, s0, false, NULL);
			rx_record(KTLS_CT_HANDSHAKE, bad[i].rec, bad[i].len);
			CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
			CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_PROTOCOL);
			CHECK_EQ(F.nctrl, 1);
			CHECK_EQ(F.ctrl_data[0][1], bad[i].alert);
			BIO_free(bio);
			close(a);
			close(b);
		}
		bio = rx_bridge(&a, &b, s0, false, NULL);
		rx_record(KTLS_CT_HANDSHAKE, ku, 3);
		CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 3);
		rx_record(KTLS_CT_APPDATA, "xy", 2);
		CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
		CHECK_EQ(F.ctrl_data[0][1], 10);
		BIO_free(bio);
		close(a);
		close(b);
	}

	/* FAULT: TLS_RX refused after a KeyUpdate: alert (TX still works), end */
	bio = rx_bridge(&a, &b, s0, false, NULL);
	rx_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
	F.rekey_err = ENOMEM;
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_REKEY_FAILED);
	CHECK_EQ(conn(bio)->rx.st.err, ENOMEM);
	CHECK_EQ(F.nctrl, 1);
	CHECK(!memcmp(F.ctrl_data[0], "\x02\x50", 2));
	BIO_free(bio);
	close(a);
	close(b);

	/* storm guard: the 4th KeyUpdate within a second (limit 3) ends it */
	bio = rx_bridge(&a, &b, s0, true, p_storm3);
	rx_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	read_keyupdates(bio, 3);
	CHECK_EQ(F.nctrl, 0);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	CHECK_EQ(errno, EPROTO);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_KEYUPDATE_STORM);
	CHECK_EQ(F.nctrl, 1);
	CHECK_EQ(F.ctrl_type[0], KTLS_CT_ALERT);
	CHECK(!memcmp(F.ctrl_data[0], "\x02\x0a", 2));	/* fatal unexpected_message */
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);	/* and nothing after */
	BIO_free(bio);
	close(a);
	close(b);

	/* the limit is per second: once the window is over (moved back here
	 * rather than slept through) three more pass, and the fourth ends it */
	bio = rx_bridge(&a, &b, s0, true, p_storm3);
	rx_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	read_keyupdates(bio, 3);
	conn(bio)->rx.storm_start -= 1000000000ull;
	read_keyupdates(bio, 3);
	CHECK_EQ(F.nctrl, 0);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_KEYUPDATE_STORM);
	BIO_free(bio);
	close(a);
	close(b);

	/* storm_limit = 0 and keyupdate_burst = 0 turn the guard off */
	bio = rx_bridge(&a, &b, s0, true, p_no_guard);
	rx_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	read_keyupdates(bio, 100);
	CHECK_EQ(F.nctrl, 0);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 100);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_NONE);
	BIO_free(bio);
	close(a);
	close(b);
}

static void nopad_on(struct ktls_policy *p)
{
	p->rx_expect_no_pad = true;
}

/* rx_expect_no_pad: TLS_RX_EXPECT_NO_PAD once TLS 1.3 RX is the kernel's,
 * never for TX, TLS 1.2 or when the policy is off; a kernel refusing it
 * leaves RX offloaded. */
static void case_rx_expect_no_pad(void)
{
	static const struct {
		void (*tweak)(struct ktls_policy *);
		uint16_t version;
		int err, sets;
	} runs[] = {
		{ nopad_on, KTLS_TLS13, 0, 1 },
		{ NULL, KTLS_TLS13, 0, 0 },
		{ nopad_on, KTLS_TLS12, 0, 0 },
		{ nopad_on, KTLS_TLS13, ENOPROTOOPT, 0 },
	};
	int a, b;
	BIO *bio;

	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		fake_reset();
		F.rekey_err = 0;	/* a kernel that re-keys: TLS 1.3 offloads */
		fake_probe();
		F.nopad_err = runs[i].err;
		fake_pair(&a, &b);
		bio = bridge(a, runs[i].tweak);
		CHECK_EQ(offer(bio, "AES-128-GCM", runs[i].version, true), 1);
		CHECK_EQ(F.nopad_sets[a], 0);
		CHECK_EQ(offer(bio, "AES-128-GCM", runs[i].version, false), 1);
		CHECK_EQ(F.nopad_sets[a], runs[i].sets);
		CHECK_EQ(conn(bio)->rx.st.mode, KTLS_MODE_KERNEL_SW);
		BIO_free(bio);
		close(a);
		close(b);
	}
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
		F.tx_err = runs[i].tx_err;
		fake_pair(&a, &b);
		bio = bridge(a, runs[i].tweak);
		CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS12, false), 1);
		CHECK_EQ(F.zc_sets[a], 0);
		CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS12, true), !runs[i].tx_err);
		CHECK_EQ(F.zc_sets[a], runs[i].sets);
		CHECK_EQ(BIO_ctrl(bio, 90, 0, NULL),	/* SET_KTLS_TX_ZEROCOPY_SENDFILE */
			 runs[i].sets);
		CHECK_EQ(F.zc_sets[a], 2 * runs[i].sets);
		BIO_free(bio);
		close(a);
		close(b);
	}
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
	BIO_free(bio);
	close(a);
	close(b);
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
	F.ctrl_err = EAGAIN;	/* FAULT: the socket is full */
	CHECK_EQ(ktls_conn_control(ssl, KTLS_CT_HANDSHAKE, kureq, sizeof(kureq)), 0);
	CHECK(conn(bio)->ku_owed);
	CHECK_EQ(F.nctrl, 0);
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 0);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 1);
	CHECK_EQ(ktls_conn_send(ssl, "x", 1), 1);
	CHECK(!conn(bio)->ku_owed);
	CHECK_EQ(F.nctrl, 1);
	CHECK(!memcmp(F.ctrl_data[0], "\x18\x00\x00\x01\x00", 5));	/* not requested */
	CHECK_EQ(conn(bio)->tx.st.keyupdates, 1);
	CHECK_EQ(conn(bio)->tx.st.rekeys, 1);
	CHECK_EQ(recv(b, buf, 6, MSG_WAITALL), 6);
	CHECK(!memcmp(buf, "\x18\x00\x00\x01\x00x", 6));	/* KeyUpdate first */
	/* a message of type 0 (TLS 1.2's HelloRequest) after the handshake */
	CHECK_EQ(ktls_conn_control(ssl, KTLS_CT_HANDSHAKE, "\x00\x00\x00\x00", 4), -EPROTO);
	CHECK_EQ(F.nctrl, 2);
	CHECK(!memcmp(F.ctrl_data[1], "\x02\x0a", 2));	/* unexpected_message */
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(a);
	close(b);
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
	BIO_free(bio);
	close(a);
	close(b);
}

/* The kernel's receive errors: hand-off mode answers each with the alert
 * of alert.c's table; a pause for a key no KeyUpdate explains ends the
 * connection in both modes; a KeyUpdate record handed to the application
 * (ktls_conn_recv_record) explains the pause before it is walked. */
static SSL *handoff_ssl(BIO *bio, SSL_CTX **ctx)
{
	SSL *ssl;

	*ctx = SSL_CTX_new(TLS_method());
	ssl = SSL_new(*ctx);
	SSL_set_bio(ssl, bio, bio);
	conn(bio)->handoff = true;
	conn(bio)->ssl = ssl;
	return ssl;
}

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
	F.rx_pending = 1;
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	CHECK_EQ(errno, EKEYEXPIRED);
	CHECK_EQ(F.rx_sets[a], 1);		/* no key guessed */
	CHECK_EQ(F.nctrl, 1);
	CHECK(!memcmp(F.ctrl_data[0], "\x02\x0a", 2));	/* unexpected_message */
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_PROTOCOL);
	CHECK(conn(bio)->wr_shut);
	BIO_free(bio);
	close(a);
	close(b);

	/* hand-off: each receive error gets its alert, the socket error is
	 * taken first so that the alert can go out */
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		bio = rx_bridge(&a, &b, s0, false, NULL);
		ssl = handoff_ssl(bio, &ctx);
		F.rec_err = t[i].err;
		CHECK_EQ(ktls_conn_recv(ssl, buf, sizeof(buf)), -t[i].err);
		CHECK_EQ(F.nctrl, 1);
		CHECK(!memcmp(F.ctrl_data[0], t[i].alert, 2));
		CHECK_EQ(conn(bio)->rx_kerr, t[i].err);
		CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_PROTOCOL);
		CHECK_EQ(conn(bio)->rx.st.err, t[i].err);
		CHECK(conn(bio)->dead && conn(bio)->lingered);
		/* after the failure: no close_notify, no data, no KeyUpdate */
		CHECK_EQ(ktls_conn_shutdown(ssl), -EPIPE);
		CHECK_EQ(ktls_conn_send(ssl, "x", 1), -EPIPE);
		CHECK_EQ(ktls_conn_keyupdate(ssl, 0), -EPIPE);
		CHECK_EQ(F.nctrl, 1);		/* nothing went out after the alert */
		SSL_free(ssl);
		SSL_CTX_free(ctx);
		close(a);
		close(b);
	}
	/* ... but not when the transport is gone */
	bio = rx_bridge(&a, &b, s0, false, NULL);
	ssl = handoff_ssl(bio, &ctx);
	F.rec_err = ECONNRESET;
	CHECK_EQ(ktls_conn_recv(ssl, buf, sizeof(buf)), -ECONNRESET);
	CHECK_EQ(F.nctrl, 0);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(a);
	close(b);

	/* ktls_conn_recv_record hands up the KeyUpdate; the next read meets
	 * EKEYEXPIRED before ktls_conn_control walked it: still the peer's
	 * KeyUpdate, so the next key goes in, and the walk later agrees */
	bio = rx_bridge(&a, &b, s0, false, NULL);
	ssl = handoff_ssl(bio, &ctx);
	rx_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	CHECK_EQ(ktls_conn_recv_record(ssl, buf, sizeof(buf), &type), 5);
	CHECK_EQ(type, KTLS_CT_HANDSHAKE);
	CHECK_EQ(F.rx_pending, 1);
	rx_record(KTLS_CT_APPDATA, "hello", 5);
	CHECK_EQ(ktls_conn_recv_record(ssl, buf, sizeof(buf), &type), 5);
	CHECK_EQ(type, KTLS_CT_APPDATA);
	CHECK_EQ(F.rx_sets[a], 2);
	CHECK_EQ(conn(bio)->rx.ku_ahead, 1);
	CHECK_EQ(ktls_conn_control(ssl, KTLS_CT_HANDSHAKE, ku, sizeof(ku)), 0);
	CHECK_EQ(conn(bio)->rx.ku_ahead, 0);
	CHECK_EQ(conn(bio)->rx.ku_unkeyed, 0);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 1);
	CHECK_EQ(F.nctrl, 0);			/* no alert */
	/* a second pause with nothing to explain it ends the connection */
	F.rx_pending = 1;
	CHECK_EQ(ktls_conn_recv_record(ssl, buf, sizeof(buf), &type), -EKEYEXPIRED);
	CHECK_EQ(F.rx_sets[a], 2);
	CHECK(!memcmp(F.ctrl_data[0], "\x02\x0a", 2));
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(a);
	close(b);
}

/* ---- key material in freed heap memory (wipecheck.c) ------------------ */

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

	fake_reset();
	F.rekey_err = F.prestage_err = 0;
	fake_probe();
	F.tx_err = F.rx_err = err;
	fake_pair(a, b);
	bio = bridge(*a, tweak);
	CHECK_EQ(offer_gen(bio, wipe_s0_tx, 0, true), !err);
	CHECK_EQ(offer_gen(bio, wipe_s0_rx, 0, false), !err);
	ktls_secret_set(&conn(bio)->tx.secret, wipe_s0_tx, 32, "SHA256");
	ktls_secret_set(&conn(bio)->rx.secret, wipe_s0_rx, 32, "SHA256");
	if (!err) {
		ktls_key_stage(conn(bio), true);
		ktls_key_stage(conn(bio), false);
		CHECK(F.staged && F.staged_rx);
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
	rx_record(KTLS_CT_APPDATA, "hello", 5);
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
	CHECK_EQ(F.switches, 1);
	F.tx_seq = 4;
	for (int i = 0; i < 5; i++)
		CHECK_EQ(BIO_write(bio, "abcd", 4), 4);
	CHECK_EQ(F.switches, 2);
	CHECK(conn(bio)->tx.lib_behind);
	CHECK_EQ(conn(bio)->tx.secret.gen, 2);
	rx_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
	CHECK_EQ(F.rx_switches, 1);
	rx_record(KTLS_CT_APPDATA, "hello", 5);
	CHECK_EQ(BIO_read(bio, small, sizeof(small)), 4);
	CHECK_EQ(BIO_read(bio, small, sizeof(small)), 4);
	CHECK_EQ(BIO_read(bio, small, sizeof(small)), 2);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
	CHECK(F.staged_rx);
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
	rx_record(KTLS_CT_HANDSHAKE, kureq, sizeof(kureq));
	CHECK_EQ(ktls_conn_recv_record(ssl, buf, sizeof(buf), &type), 5);
	CHECK_EQ(ktls_conn_control(ssl, type, buf, 5), 0);
	CHECK_EQ(conn(bio)->rx.secret.gen, 1);
	CHECK_EQ(conn(bio)->tx.secret.gen, 1);
	CHECK_EQ(ktls_conn_keyupdate(ssl, 0), 0);
	CHECK_EQ(conn(bio)->tx.secret.gen, 2);
	rx_record(KTLS_CT_APPDATA, "hello", 5);
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
	case_real_kernel();
	case_contract_basics();
	case_accept_both();
	case_fatal_alert_ends();
	case_rx_kernel_errors();
	case_faults();
	case_policy();
	case_keyupdate();
	case_prestage();
	case_handoff_owed_keyupdate();
	case_proactive_keyupdate();
	case_partial_data_write();
	case_rx_rekey();
	case_rx_expect_no_pad();
	case_tx_zerocopy();
	case_handshake_walk();
	case_userspace_accounting();
	case_attach_bad_input();
	case_wipe_transparent();
	case_wipe_fallback();
	case_wipe_handoff();
	ktls_sys_set(NULL);
	wipecheck_stop();
	return ktest_done("bio-test");
}
