// SPDX-License-Identifier: MIT
/*
 * fakekernel.c - a fault-injection kTLS kernel behind the bridge's
 * syscall seam (see fakekernel.h).  fakekernel-test checks it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fakekernel.h"
#include "ktest.h"

struct fake_kernel fake;

/* Keep the key struct the bridge set (at most a whole one). */
static void keep_info(uint8_t *dst, const void *val, socklen_t len)
{
	memcpy(dst, val, len < KTLS_MAX_INFO ? len : KTLS_MAX_INFO);
}

static int fail(int err)
{
	errno = err;
	return -1;
}

static int fake_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	if (level == IPPROTO_TCP && name == TCP_ULP)
		return fake.ulp_err ? fail(fake.ulp_err) : 0;
	if (level != SOL_TLS)
		return setsockopt(fd, level, name, val, len);
	switch (name) {
	case TLS_TX:
		if (fake.tx_sets[fd] && fake.rekey_err)
			return fail(fake.rekey_err);
		if (fake.tx_err)
			return fail(fake.tx_err);
		fake.tx_sets[fd]++;
		keep_info(fake.last_tx, val, len);
		return 0;
	case TLS_RX:
		if (fake.rx_err || (fake.rx_sets[fd] && fake.rekey_err))
			return fail(fake.rx_err ? fake.rx_err : fake.rekey_err);
		fake.rx_sets[fd]++;
		keep_info(fake.last_rx, val, len);
		if (fake.rx_pending)
			fake.rx_pending--;
		return 0;
	case TLS_TX_ZEROCOPY_RO:
		fake.zc_sets[fd]++;
		return 0;
	case TLS_RX_EXPECT_NO_PAD:
		if (fake.nopad_err)
			return fail(fake.nopad_err);
		fake.nopad_sets[fd]++;
		return 0;
	case TLS_TX_NEXT:
		if (fake.prestage_err)
			return fail(fake.prestage_err);
		if (!val && !len) {
			fake.staged = false;
			fake.drops++;
			return 0;
		}
		fake.staged = true;
		fake.next_sets++;
		keep_info(fake.staged_tx, val, len);
		return 0;
	case TLS_RX_NEXT:
		if (fake.prestage_err)
			return fail(fake.prestage_err);
		if (!val && !len) {
			fake.staged_rx = false;
			return 0;
		}
		if (fake.rx_pending) {	/* a KeyUpdate waits: installed at once */
			keep_info(fake.last_rx, val, len);
			fake.rx_pending--;
			fake.rx_switches++;
			return 0;
		}
		fake.staged_rx = true;
		keep_info(fake.staged_rx_info, val, len);
		return 0;
	default:
		return 0;
	}
}

/* Records with a record-type cmsg are kept (and may fail or go out
 * short); all bytes go to the real socket without the cmsg. */
static ssize_t fake_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct cmsghdr *cm = CMSG_FIRSTHDR((struct msghdr *)msg);
	bool typed = cm && cm->cmsg_level == SOL_TLS;
	struct msghdr plain = *msg;
	struct iovec iov = msg->msg_iov[0];

	if (typed && fake.ctrl_err) {
		int err = fake.ctrl_err;

		fake.ctrl_err = 0;
		return fail(err);
	}
	if (typed && fake.short_ctrl && fake.short_ctrl < iov.iov_len) {
		iov.iov_len = fake.short_ctrl;	/* a short write, as under memory pressure */
		fake.short_ctrl = 0;
		plain.msg_iov = &iov;
		plain.msg_iovlen = 1;
		msg = &plain;
	}
	if (typed && fake.nctrl < FAKE_MAX_CTRL) {
		size_t n = msg->msg_iov[0].iov_len;

		fake.ctrl_type[fake.nctrl] = *CMSG_DATA(cm);
		fake.ctrl_len[fake.nctrl] = n;
		memcpy(fake.ctrl_data[fake.nctrl], msg->msg_iov[0].iov_base,
		       n < FAKE_CTRL_DATA ? n : FAKE_CTRL_DATA);
		fake.nctrl++;
		/* the kernel switches to a staged key after a KeyUpdate record */
		if (*CMSG_DATA(cm) == KTLS_CT_HANDSHAKE && fake.staged &&
		    ktls_hs_count_keyupdates(msg->msg_iov[0].iov_base, n, NULL) > 0) {
			memcpy(fake.last_tx, fake.staged_tx, sizeof(fake.last_tx));
			fake.staged = false;
			fake.switches++;
		}
	}
	plain.msg_control = NULL;
	plain.msg_controllen = 0;
	return sendmsg(fd, &plain, flags);
}

static ssize_t fake_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct cmsghdr *cm;

	if (fake.rec_err)
		return fail(fake.rec_err);
	if (fake.rx_pending)
		return fail(EKEYEXPIRED);
	if (!fake.rec_len)
		return recvmsg(fd, msg, flags);
	memcpy(msg->msg_iov[0].iov_base, fake.rec, fake.rec_len);
	if (fake.rec_type == KTLS_CT_HANDSHAKE) {
		int nku = ktls_hs_count_keyupdates(fake.rec, fake.rec_len, NULL);

		if (nku > 0 && fake.staged_rx) {	/* switch once, pend for the rest */
			memcpy(fake.last_rx, fake.staged_rx_info, sizeof(fake.last_rx));
			fake.staged_rx = false;
			fake.rx_switches++;
			nku--;
		}
		if (nku > 0)
			fake.rx_pending += nku;
	}
	cm = CMSG_FIRSTHDR(msg);
	cm->cmsg_level = SOL_TLS;
	cm->cmsg_type = TLS_GET_RECORD_TYPE;
	cm->cmsg_len = CMSG_LEN(1);
	*CMSG_DATA(cm) = (unsigned char)fake.rec_type;
	msg->msg_controllen = CMSG_SPACE(1);
	return (ssize_t)fake.rec_len;
}

/* TLS_TX, TLS_RX, TLS_TX_NEXT and TLS_RX_NEXT read back, as AES-128-GCM
 * structs (the only cipher the tests re-key with); TLS_TX carries tx_seq,
 * TLS_RX rx_seq.  As the kernel does, only into a buffer of the struct's
 * exact size. */
static int fake_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	const struct ktls_cipher *c = ktls_cipher_by_name("AES-128-GCM");

	if (level != SOL_TLS)
		return getsockopt(fd, level, name, val, len);
	if ((name == TLS_TX_NEXT && !fake.staged) || (name == TLS_RX_NEXT && !fake.staged_rx))
		return fail(ENOENT);
	if ((name != TLS_TX && name != TLS_RX && name != TLS_TX_NEXT && name != TLS_RX_NEXT) ||
	    *len != c->info_size)
		return fail(EINVAL);
	memcpy(val, name == TLS_TX ? fake.last_tx : name == TLS_RX ? fake.last_rx :
		    name == TLS_TX_NEXT ? fake.staged_tx : fake.staged_rx_info, c->info_size);
	if (name == TLS_TX || name == TLS_RX) {
		uint64_t seq = name == TLS_TX ? fake.tx_seq : fake.rx_seq;

		for (int i = 0; i < 8; i++)
			((uint8_t *)val)[c->off_seq + i] = (uint8_t)(seq >> (56 - 8 * i));
	}
	*len = c->info_size;
	return 0;
}

const struct ktls_sys_ops fake_ops = {
	.setsockopt = fake_setsockopt,
	.getsockopt = fake_getsockopt,
	.sendmsg = fake_sendmsg,
	.recvmsg = fake_recvmsg,
};

void fake_probe(void)
{
	ktls_probe_refresh();
	memset(fake.tx_sets, 0, sizeof(fake.tx_sets));
	memset(fake.rx_sets, 0, sizeof(fake.rx_sets));
}

void fake_reset(void)
{
	memset(&fake, 0, sizeof(fake));
	ktls_linger_ms = 20;	/* our peers never close: do not wait 2 s for them */
	fake.prestage_err = ENOPROTOOPT;
	fake.rekey_err = EBUSY;
	ktls_sys_set(&fake_ops);
	fake_probe();
}

void fake_reset_rekey(bool prestage)
{
	fake_reset();
	fake.rekey_err = 0;
	if (prestage)
		fake.prestage_err = 0;
	fake_probe();
}

void fake_pair(int *a, int *b)
{
	tcp_pair(a, b);
	fake.tx_sets[*a] = fake.rx_sets[*a] = 0;
	fake.nopad_sets[*a] = fake.zc_sets[*a] = 0;
}

void fake_record(int type, const void *p, size_t len)
{
	if (len > sizeof(fake.rec)) {
		fprintf(stderr, "fake_record: %zu bytes, at most %zu\n", len, sizeof(fake.rec));
		abort();
	}
	fake.rec_type = type;
	memcpy(fake.rec, p, len);
	fake.rec_len = len;
}
