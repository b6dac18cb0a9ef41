// SPDX-License-Identifier: MIT
/*
 * fakekernel-test: the fake kernel the bio-*-test programs stand on
 * (fakekernel.h), called through its ops the way the bridge calls them.
 *
 * Each fault field fails its call with its errno (once, where the header
 * says so) and nothing else; keys set, staged and switched are the bytes
 * passed in; a record set with fake_record() comes out of recvmsg with
 * its type in a TLS_GET_RECORD_TYPE cmsg, and a KeyUpdate in it switches
 * to the staged RX key or leaves recvmsg failing with EKEYEXPIRED until a
 * key is set; records sent with a type are kept, and a KeyUpdate among
 * them switches TX to the staged key; everything not TLS reaches the real
 * socket.  fake_reset() forgets what the fake kernel saw and installs it
 * for a probe that finds the kernel it describes.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fakekernel.h"
#include "ktest.h"

static const uint8_t ku[] = { 24, 0, 0, 1, 0 };		/* KeyUpdate */
static const uint8_t two_ku[] = { 24, 0, 0, 1, 0, 24, 0, 0, 1, 0 };

/* An info struct of recognisable bytes. */
static void pattern(uint8_t *info, uint8_t v)
{
	memset(info, v, KTLS_MAX_INFO);
}

static int set(int fd, int name, const void *val, socklen_t len)
{
	return fake_ops.setsockopt(fd, SOL_TLS, name, val, len);
}

/* setsockopt's errno, or 0 when it succeeded. */
static int set_err(int fd, int name, const void *val, socklen_t len)
{
	return set(fd, name, val, len) < 0 ? errno : 0;
}

static int get_err(int fd, int name, uint8_t *info, socklen_t *len)
{
	return fake_ops.getsockopt(fd, SOL_TLS, name, info, len) < 0 ? errno : 0;
}

/* sendmsg of one record of type (as record.c sends it), or without a
 * type when type < 0. */
static ssize_t send_rec(int fd, int type, const void *p, size_t len)
{
	union ktls_cmsg_buf cbuf;
	struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (type >= 0) {
		msg.msg_control = cbuf.b;
		msg.msg_controllen = sizeof(cbuf.b);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_TLS;
		cm->cmsg_type = TLS_SET_RECORD_TYPE;
		cm->cmsg_len = CMSG_LEN(1);
		*CMSG_DATA(cm) = (unsigned char)type;
	}
	return fake_ops.sendmsg(fd, &msg, MSG_NOSIGNAL);
}

/* recvmsg into buf; *type: the record type cmsg, -1 without one. */
static ssize_t recv_rec(int fd, void *buf, size_t cap, int *type)
{
	union ktls_cmsg_buf cbuf;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b),
	};
	struct cmsghdr *cm;
	ssize_t n;

	*type = -1;
	n = fake_ops.recvmsg(fd, &msg, 0);
	cm = n >= 0 && msg.msg_controllen ? CMSG_FIRSTHDR(&msg) : NULL;
	if (cm && cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE &&
	    cm->cmsg_len == CMSG_LEN(1))
		*type = *CMSG_DATA(cm);
	return n;
}

static int sum(const int *v)
{
	int s = 0;

	for (int i = 0; i < FAKE_MAX_FD; i++)
		s += v[i];
	return s;
}

/* fake_reset(): the seam installed, a kernel that does not re-key, the
 * probe found it and its sockets are forgotten; fake_reset_rekey(). */
static void case_reset_probe(void)
{
	uint8_t info[KTLS_MAX_INFO];
	int a, b;

	tcp_pair(&a, &b);
	pattern(info, 1);
	fake_reset();
	CHECK(ktls_probe()->ulp);
	CHECK(!ktls_probe()->rekey);
	CHECK(!ktls_probe()->prestage);
	CHECK_EQ(fake.rekey_err, EBUSY);
	CHECK_EQ(fake.prestage_err, ENOPROTOOPT);
	CHECK_EQ(ktls_linger_ms, 20);
	CHECK_EQ(sum(fake.tx_sets) + sum(fake.rx_sets), 0);
	/* the probe does set keys: fake_probe() is what forgets them */
	ktls_probe_refresh();
	CHECK(sum(fake.tx_sets) + sum(fake.rx_sets) > 0);
	fake_probe();
	CHECK_EQ(sum(fake.tx_sets) + sum(fake.rx_sets), 0);

	/* what was set before a reset is forgotten: TLS_TX is a first one */
	CHECK_EQ(set_err(a, TLS_TX, info, sizeof(info)), 0);
	fake.tx_err = EIO;
	fake.nctrl = 3;
	fake_reset();
	CHECK_EQ(fake.tx_sets[a], 0);
	CHECK_EQ(fake.tx_err, 0);
	CHECK_EQ(fake.nctrl, 0);
	CHECK_EQ(set_err(a, TLS_TX, info, sizeof(info)), 0);
	CHECK_EQ(fake.tx_sets[a], 1);

	fake_reset_rekey(false);
	CHECK(ktls_probe()->rekey && !ktls_probe()->prestage);
	CHECK_EQ(fake.tx_sets[a], 0);
	fake_reset_rekey(true);
	CHECK(ktls_probe()->rekey && ktls_probe()->prestage);
	close(a);
	close(b);
}

/* fake_pair(): the counters of its fd start at 0, whatever came before. */
static void case_pair(void)
{
	int a, b;

	fake_reset();
	for (int i = 0; i < 64; i++)
		fake.tx_sets[i] = fake.rx_sets[i] = fake.nopad_sets[i] = fake.zc_sets[i] = 7;
	fake_pair(&a, &b);
	CHECK(a >= 0 && a < 64 && b >= 0);
	CHECK_EQ(fake.tx_sets[a], 0);
	CHECK_EQ(fake.rx_sets[a], 0);
	CHECK_EQ(fake.nopad_sets[a], 0);
	CHECK_EQ(fake.zc_sets[a], 0);
	CHECK_EQ(write(a, "x", 1), 1);		/* a real, connected pair */
	close(a);
	close(b);
}

/* TCP_ULP and the socket options that are not TLS's. */
static void case_ulp_and_real(void)
{
	int a, b, one = 1, v = 0;
	socklen_t len = sizeof(v);

	fake_reset();
	fake_pair(&a, &b);
	CHECK_EQ(fake_ops.setsockopt(a, IPPROTO_TCP, TCP_ULP, "tls", 3), 0);
	fake.ulp_err = EPERM;
	errno = 0;
	CHECK_EQ(fake_ops.setsockopt(a, IPPROTO_TCP, TCP_ULP, "tls", 3), -1);
	CHECK_EQ(errno, EPERM);
	/* anything else is the real kernel's, both ways */
	CHECK_EQ(fake_ops.setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
	CHECK_EQ(getsockopt(a, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
	CHECK_EQ(v, 1);
	v = 0;
	CHECK_EQ(fake_ops.getsockopt(a, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
	CHECK_EQ(v, 1);
	close(a);
	close(b);
}

/* TLS_TX and TLS_RX: counted and kept per fd; tx_err, rx_err, and
 * rekey_err for a second one; getsockopt(TLS_TX) with tx_seq. */
static void case_keys(void)
{
	const struct ktls_cipher *c = ktls_cipher_by_name("AES-128-GCM");
	uint8_t k1[KTLS_MAX_INFO], k2[KTLS_MAX_INFO], got[KTLS_MAX_INFO];
	socklen_t len = sizeof(got);
	int a, b;

	pattern(k1, 0xa1);
	pattern(k2, 0xa2);
	fake_reset();
	fake_pair(&a, &b);
	CHECK_EQ(set_err(a, TLS_TX, k1, sizeof(k1)), 0);
	CHECK_EQ(fake.tx_sets[a], 1);
	CHECK(!memcmp(fake.last_tx, k1, sizeof(k1)));
	CHECK_EQ(set_err(a, TLS_TX, k2, sizeof(k2)), EBUSY);	/* no re-key */
	CHECK_EQ(fake.tx_sets[a], 1);
	CHECK(!memcmp(fake.last_tx, k1, sizeof(k1)));
	fake.rekey_err = 0;
	CHECK_EQ(set_err(a, TLS_TX, k2, sizeof(k2)), 0);
	CHECK_EQ(fake.tx_sets[a], 2);
	CHECK(!memcmp(fake.last_tx, k2, sizeof(k2)));
	fake.tx_err = ENOMEM;
	CHECK_EQ(set_err(a, TLS_TX, k1, sizeof(k1)), ENOMEM);
	CHECK_EQ(fake.tx_sets[a], 2);

	/* read back: the key in use, the record sequence from tx_seq; as
	 * from the kernel, only into a buffer of the struct's exact size */
	fake.tx_seq = 0x0102030405060708ull;
	CHECK_EQ(get_err(a, TLS_TX, got, &len), EINVAL);	/* sizeof(got) */
	len = c->info_size;
	CHECK_EQ(get_err(a, TLS_TX, got, &len), 0);
	CHECK_EQ(len, c->info_size);
	CHECK(!memcmp(got, k2, c->off_seq));
	CHECK(!memcmp(got + c->off_seq, "\x01\x02\x03\x04\x05\x06\x07\x08", 8));
	len = c->info_size - 1;
	CHECK_EQ(get_err(a, TLS_TX, got, &len), EINVAL);
	len = sizeof(got);
	CHECK_EQ(get_err(a, TLS_RX, got, &len), EINVAL);

	fake_reset();
	CHECK_EQ(set_err(a, TLS_RX, k1, sizeof(k1)), 0);
	CHECK_EQ(fake.rx_sets[a], 1);
	CHECK(!memcmp(fake.last_rx, k1, sizeof(k1)));
	CHECK_EQ(set_err(a, TLS_RX, k2, sizeof(k2)), EBUSY);
	fake.rekey_err = 0;
	fake.rx_pending = 2;	/* two KeyUpdates read: one key each */
	CHECK_EQ(set_err(a, TLS_RX, k2, sizeof(k2)), 0);
	CHECK_EQ(fake.rx_pending, 1);
	CHECK(!memcmp(fake.last_rx, k2, sizeof(k2)));
	fake.rx_err = EINVAL;
	CHECK_EQ(set_err(a, TLS_RX, k1, sizeof(k1)), EINVAL);
	CHECK_EQ(fake.rx_sets[a], 2);
	CHECK_EQ(fake.tx_sets[a], 0);	/* the other direction untouched */
	close(a);
	close(b);
}

/* TLS_RX_EXPECT_NO_PAD (nopad_err) and TLS_TX_ZEROCOPY_RO: counted. */
static void case_options(void)
{
	int a, b, one = 1;

	fake_reset();
	fake_pair(&a, &b);
	CHECK_EQ(set_err(a, TLS_RX_EXPECT_NO_PAD, &one, sizeof(one)), 0);
	CHECK_EQ(fake.nopad_sets[a], 1);
	fake.nopad_err = ENOPROTOOPT;
	CHECK_EQ(set_err(a, TLS_RX_EXPECT_NO_PAD, &one, sizeof(one)), ENOPROTOOPT);
	CHECK_EQ(fake.nopad_sets[a], 1);
	CHECK_EQ(set_err(a, TLS_TX_ZEROCOPY_RO, &one, sizeof(one)), 0);
	CHECK_EQ(set_err(a, TLS_TX_ZEROCOPY_RO, &one, sizeof(one)), 0);
	CHECK_EQ(fake.zc_sets[a], 2);
	CHECK_EQ(fake.zc_sets[b], 0);
	close(a);
	close(b);
}

/* Records sent with a type: kept, ctrl_err and short_ctrl once each; the
 * bytes reach the peer without the cmsg; untyped sends are not kept. */
static void case_send_records(void)
{
	uint8_t buf[16];
	int a, b;

	fake_reset();
	fake_pair(&a, &b);
	CHECK_EQ(send_rec(a, KTLS_CT_ALERT, "\x01\x00", 2), 2);
	CHECK_EQ(fake.nctrl, 1);
	CHECK_EQ(fake.ctrl_type[0], KTLS_CT_ALERT);
	CHECK_EQ(fake.ctrl_len[0], 2);
	CHECK(!memcmp(fake.ctrl_data[0], "\x01\x00", 2));
	CHECK_EQ(send_rec(a, -1, "data", 4), 4);
	CHECK_EQ(fake.nctrl, 1);
	CHECK_EQ(recv(b, buf, 6, MSG_WAITALL), 6);
	CHECK(!memcmp(buf, "\x01\x00" "data", 6));

	fake.ctrl_err = EAGAIN;
	errno = 0;
	CHECK_EQ(send_rec(a, KTLS_CT_HANDSHAKE, ku, sizeof(ku)), -1);
	CHECK_EQ(errno, EAGAIN);
	CHECK_EQ(fake.nctrl, 1);
	CHECK_EQ(send_rec(a, KTLS_CT_HANDSHAKE, ku, sizeof(ku)), (ssize_t)sizeof(ku));
	CHECK_EQ(fake.nctrl, 2);

	fake.short_ctrl = 3;
	CHECK_EQ(send_rec(a, KTLS_CT_HANDSHAKE, ku, sizeof(ku)), 3);
	CHECK_EQ(fake.ctrl_len[2], 3);
	CHECK_EQ(send_rec(a, KTLS_CT_HANDSHAKE, ku, sizeof(ku)), (ssize_t)sizeof(ku));
	CHECK_EQ(fake.ctrl_len[3], sizeof(ku));
	CHECK_EQ(recv(b, buf, 2 * sizeof(ku) + 3, MSG_WAITALL), (ssize_t)(2 * sizeof(ku) + 3));
	CHECK_EQ(fake.switches, 0);	/* nothing staged: no switch */
	close(a);
	close(b);
}

/* TLS_TX_NEXT: prestage_err, staged and read back, dropped; a KeyUpdate
 * sent switches TX to the staged key, other handshake records do not. */
static void case_tx_staging(void)
{
	uint8_t k1[KTLS_MAX_INFO], k2[KTLS_MAX_INFO], got[KTLS_MAX_INFO];
	socklen_t len = sizeof(got);
	int a, b, sets, drops;

	pattern(k1, 0xb1);
	pattern(k2, 0xb2);
	fake_reset();
	fake_pair(&a, &b);
	CHECK_EQ(set_err(a, TLS_TX_NEXT, k2, sizeof(k2)), ENOPROTOOPT);
	CHECK(!fake.staged);
	CHECK_EQ(get_err(a, TLS_TX_NEXT, got, &len), ENOENT);

	fake_reset_rekey(true);
	sets = fake.next_sets;		/* the probe's own count too */
	drops = fake.drops;
	CHECK_EQ(set_err(a, TLS_TX, k1, sizeof(k1)), 0);
	CHECK_EQ(set_err(a, TLS_TX_NEXT, k2, sizeof(k2)), 0);
	CHECK(fake.staged);
	CHECK_EQ(fake.next_sets, sets + 1);
	len = ktls_cipher_by_name("AES-128-GCM")->info_size;
	CHECK_EQ(get_err(a, TLS_TX_NEXT, got, &len), 0);
	CHECK(!memcmp(got, k2, len));
	CHECK_EQ(set_err(a, TLS_TX_NEXT, NULL, 0), 0);
	CHECK(!fake.staged);
	CHECK_EQ(fake.drops, drops + 1);
	CHECK_EQ(get_err(a, TLS_TX_NEXT, got, &len), ENOENT);

	CHECK_EQ(set_err(a, TLS_TX_NEXT, k2, sizeof(k2)), 0);
	CHECK_EQ(send_rec(a, KTLS_CT_HANDSHAKE, "\x04\x00\x00\x01\x07", 5), 5);
	CHECK(fake.staged);
	CHECK_EQ(send_rec(a, KTLS_CT_APPDATA, ku, sizeof(ku)), (ssize_t)sizeof(ku));
	CHECK(fake.staged);
	CHECK(!memcmp(fake.last_tx, k1, sizeof(k1)));
	CHECK_EQ(send_rec(a, KTLS_CT_HANDSHAKE, ku, sizeof(ku)), (ssize_t)sizeof(ku));
	CHECK(!fake.staged);
	CHECK_EQ(fake.switches, 1);
	CHECK(!memcmp(fake.last_tx, k2, sizeof(k2)));
	CHECK_EQ(fake.tx_sets[a], 1);
	close(a);
	close(b);
}

/* fake_record(): every recvmsg returns it with its type, until rec_len
 * is 0; then the peer's bytes, untyped.  rec_err and rx_pending fail
 * each read. */
static void case_recv_records(void)
{
	uint8_t buf[KTLS_REC_MAX];
	int a, b, type;

	fake_reset();
	fake_pair(&a, &b);
	CHECK_EQ(write(b, "zz", 2), 2);
	fake_record(KTLS_CT_ALERT, "\x01\x00", 2);
	for (int i = 0; i < 2; i++) {
		memset(buf, 0, sizeof(buf));
		CHECK_EQ(recv_rec(a, buf, sizeof(buf), &type), 2);
		CHECK_EQ(type, KTLS_CT_ALERT);
		CHECK(!memcmp(buf, "\x01\x00", 2));
	}
	fake_record(KTLS_CT_APPDATA, "hello", 5);
	CHECK_EQ(recv_rec(a, buf, sizeof(buf), &type), 5);
	CHECK_EQ(type, KTLS_CT_APPDATA);
	CHECK(!memcmp(buf, "hello", 5));

	fake.rec_err = EBADMSG;
	errno = 0;
	CHECK_EQ(recv_rec(a, buf, sizeof(buf), &type), -1);
	CHECK_EQ(errno, EBADMSG);
	fake.rec_err = 0;
	fake.rx_pending = 1;
	errno = 0;
	CHECK_EQ(recv_rec(a, buf, sizeof(buf), &type), -1);
	CHECK_EQ(errno, EKEYEXPIRED);
	fake.rx_pending = 0;

	fake.rec_len = 0;	/* the real socket again */
	CHECK_EQ(recv_rec(a, buf, sizeof(buf), &type), 2);
	CHECK_EQ(type, -1);
	CHECK(!memcmp(buf, "zz", 2));
	close(a);
	close(b);
}

/* A KeyUpdate received: the staged RX key (TLS_RX_NEXT) at once, or
 * EKEYEXPIRED until TLS_RX or TLS_RX_NEXT brings one per KeyUpdate. */
static void case_rx_keyupdate(void)
{
	uint8_t k1[KTLS_MAX_INFO], k2[KTLS_MAX_INFO], k3[KTLS_MAX_INFO];
	uint8_t got[KTLS_MAX_INFO], buf[KTLS_REC_MAX];
	socklen_t len = sizeof(got);
	int a, b, type;

	pattern(k1, 0xc1);
	pattern(k2, 0xc2);
	pattern(k3, 0xc3);
	fake_reset_rekey(true);
	fake_pair(&a, &b);
	CHECK_EQ(set_err(a, TLS_RX, k1, sizeof(k1)), 0);
	CHECK_EQ(get_err(a, TLS_RX_NEXT, got, &len), ENOENT);
	CHECK_EQ(set_err(a, TLS_RX_NEXT, k2, sizeof(k2)), 0);
	CHECK(fake.staged_rx);
	len = ktls_cipher_by_name("AES-128-GCM")->info_size;
	CHECK_EQ(get_err(a, TLS_RX_NEXT, got, &len), 0);
	CHECK(!memcmp(got, k2, len));

	/* staged: switched as the KeyUpdate is read */
	fake_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	CHECK_EQ(recv_rec(a, buf, sizeof(buf), &type), (ssize_t)sizeof(ku));
	CHECK_EQ(type, KTLS_CT_HANDSHAKE);
	CHECK(!fake.staged_rx);
	CHECK_EQ(fake.rx_switches, 1);
	CHECK_EQ(fake.rx_pending, 0);
	CHECK(!memcmp(fake.last_rx, k2, sizeof(k2)));

	/* nothing staged: the read after it pauses until TLS_RX */
	CHECK_EQ(recv_rec(a, buf, sizeof(buf), &type), (ssize_t)sizeof(ku));
	CHECK_EQ(fake.rx_pending, 1);
	fake.rec_len = 0;
	errno = 0;
	CHECK_EQ(recv_rec(a, buf, sizeof(buf), &type), -1);
	CHECK_EQ(errno, EKEYEXPIRED);
	CHECK_EQ(set_err(a, TLS_RX, k3, sizeof(k3)), 0);
	CHECK_EQ(fake.rx_pending, 0);
	CHECK(!memcmp(fake.last_rx, k3, sizeof(k3)));

	/* two in one record, one staged: switch once, pend for the other,
	 * which TLS_RX_NEXT then installs at once instead of staging */
	CHECK_EQ(set_err(a, TLS_RX_NEXT, k1, sizeof(k1)), 0);
	fake_record(KTLS_CT_HANDSHAKE, two_ku, sizeof(two_ku));
	CHECK_EQ(recv_rec(a, buf, sizeof(buf), &type), (ssize_t)sizeof(two_ku));
	CHECK_EQ(fake.rx_switches, 2);
	CHECK_EQ(fake.rx_pending, 1);
	CHECK(!memcmp(fake.last_rx, k1, sizeof(k1)));
	CHECK_EQ(set_err(a, TLS_RX_NEXT, k2, sizeof(k2)), 0);
	CHECK_EQ(fake.rx_pending, 0);
	CHECK_EQ(fake.rx_switches, 3);
	CHECK(!fake.staged_rx);
	CHECK(!memcmp(fake.last_rx, k2, sizeof(k2)));
	CHECK_EQ(fake.rx_sets[a], 2);		/* TLS_RX itself: twice */

	/* an application-data record is not walked */
	fake_record(KTLS_CT_APPDATA, ku, sizeof(ku));
	CHECK_EQ(recv_rec(a, buf, sizeof(buf), &type), (ssize_t)sizeof(ku));
	CHECK_EQ(fake.rx_pending, 0);
	close(a);
	close(b);
}

int main(void)
{
	RUN(case_reset_probe);
	RUN(case_pair);
	RUN(case_ulp_and_real);
	RUN(case_keys);
	RUN(case_options);
	RUN(case_send_records);
	RUN(case_tx_staging);
	RUN(case_recv_records);
	RUN(case_rx_keyupdate);
	ktls_sys_set(NULL);
	return ktest_done("fakekernel-test");
}
