// SPDX-License-Identifier: MIT
/*
 * io.c - the engine's half of libssl's kTLS contract, shared by every
 * front end (the bridge BIO, and a program's own BIO that delegates):
 * the kTLS ctrls (72-76, 90), the keys libssl offers (installed per
 * direction when ktls_decide, policy.c, says so), and records carried
 * through the kernel once a direction is there.  A direction still in
 * userspace is the front end's to carry; it reports the wire bytes for
 * the status counters (ktls_io_account).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>

#include "internal.h"

#ifndef BIO_CTRL_SET_KTLS
#define BIO_CTRL_SET_KTLS 72
#endif
#ifndef BIO_CTRL_GET_KTLS_SEND
#define BIO_CTRL_GET_KTLS_SEND 73
#endif
#ifndef BIO_CTRL_SET_KTLS_TX_SEND_CTRL_MSG
#define BIO_CTRL_SET_KTLS_TX_SEND_CTRL_MSG 74
#endif
#ifndef BIO_CTRL_CLEAR_KTLS_TX_CTRL_MSG
#define BIO_CTRL_CLEAR_KTLS_TX_CTRL_MSG 75
#endif
#ifndef BIO_CTRL_GET_KTLS_RECV
#define BIO_CTRL_GET_KTLS_RECV 76
#endif
#ifndef BIO_CTRL_SET_KTLS_TX_ZEROCOPY_SENDFILE
#define BIO_CTRL_SET_KTLS_TX_ZEROCOPY_SENDFILE 90
#endif

static void dir_init(struct ktls_dir *d)
{
	memset(d, 0, sizeof(*d));
	d->st.mode = KTLS_MODE_USERSPACE;
	d->st.reason = KTLS_R_NOT_OFFERED;
	snprintf(d->st.detail, sizeof(d->st.detail), "no keys offered");
}

struct ktls_conn *ktls_conn_new(int fd, const struct ktls_policy *policy)
{
	/* OPENSSL_ allocation: the struct holds traffic secrets, and an
	 * application's CRYPTO_set_mem_functions sees it like libssl's own */
	struct ktls_conn *c = OPENSSL_zalloc(sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	if (policy)
		c->policy = *policy;
	else
		ktls_policy_default(&c->policy);
	dir_init(&c->tx);
	dir_init(&c->rx);
	return c;
}

void ktls_conn_free(struct ktls_conn *c)
{
	if (!c)
		return;
	/* wiped whole: the traffic secrets (tx.secret, tx.lib, rx.secret)
	 * with the rest, and the plaintext of a record libssl did not take */
	OPENSSL_clear_free(c->rbuf, KTLS_REC_HDR + KTLS_REC_MAX);
	OPENSSL_clear_free(c, sizeof(*c));
}

static bool offloaded(const struct ktls_dir *d)
{
	return d->st.mode != KTLS_MODE_USERSPACE;
}

static void refuse(struct ktls_dir *d, enum ktls_reason r, int err, const char *what)
{
	d->st.mode = KTLS_MODE_USERSPACE;
	ktls_dir_note(d, r, err, what);
}

/* Only a NIC with TLS offload on can put a connection in hardware. */
static bool nic_offload_possible(bool tx)
{
	const struct ktls_caps *caps = ktls_probe_basic();

	for (size_t i = 0; i < caps->n_nics; i++)
		if (tx ? caps->nics[i].hw_tx : caps->nics[i].hw_rx)
			return true;
	return false;
}

/* The kernel picks device or software offload itself: ask it. */
static enum ktls_mode kernel_mode(int fd, bool tx)
{
	int t, r;

	if (ktls_diag_conf(fd, &t, &r))
		return KTLS_MODE_KERNEL_SW;
	return (tx ? t : r) >= TLS_CONF_HW ? KTLS_MODE_KERNEL_HW : KTLS_MODE_KERNEL_SW;
}

/* zerocopy_sendfile: TLS_TX_ZEROCOPY_RO on an offloaded TX.  Set when TX
 * is installed (OpenSSL before 3.2 never asks) and again when libssl asks
 * (SSL_OP_ENABLE_KTLS_TX_ZEROCOPY_SENDFILE). */
static bool tx_zerocopy(struct ktls_conn *c)
{
	int one = 1;

	if (!offloaded(&c->tx) || !c->policy.zerocopy_sendfile)
		return false;
	if (ktls_sys->setsockopt(c->fd, SOL_TLS, TLS_TX_ZEROCOPY_RO, &one, sizeof(one))) {
		ktls_trace("fd %d TLS_TX_ZEROCOPY_RO refused: %s", c->fd,
			   ktls_errno_name(errno));
		return false;
	}
	return true;
}

/* ctrl 72: libssl offers one direction's keys. 1 = kernel has them. */
static long set_ktls(struct ktls_conn *c, const void *info, bool tx)
{
	struct ktls_dir *d = tx ? &c->tx : &c->rx;
	const char *what = tx ? "TLS_TX" : "TLS_RX";
	struct ktls_keyblock kb;
	enum ktls_reason r;
	int err, ret;

	ret = ktls_keyblock_from_info(&kb, info, KTLS_MAX_INFO);
	if (offloaded(d)) {
		/* 3.2+ offers the next key after a KeyUpdate: the chain decides */
		ret = ret ? 0 : ktls_key_reoffered(c, tx, &kb);
		ktls_keyblock_wipe(&kb);
		return ret;
	}
	if (d->decided) {
		/* libssl 3.2+ offers keys again after a KeyUpdate: the first
		 * answer stands (the bridge's key chain starts at that offer) */
		ktls_keyblock_wipe(&kb);
		return 0;
	}
	d->decided = true;
	if (ret) {
		refuse(d, KTLS_R_BAD_KEYS, -ret, what);
		return 0;
	}
	d->st.version = kb.version;
	d->st.cipher = kb.cipher;
	r = ktls_decide(c, &kb, tx, &err);
	if (r != KTLS_R_NONE) {
		refuse(d, r, err, r == KTLS_R_ULP_UNAVAILABLE ? "TCP_ULP" : what);
		ktls_trace("fd %d %s stays in userspace: %s (%s)", c->fd, what,
			   ktls_reason_str(r), ktls_errno_name(err));
		goto out;
	}
	ret = ktls_install(c->fd, &c->ulp, &kb, tx);
	if (ret) {
		/* ENOENT from TLS_TX/TLS_RX: no crypto implementation (module) */
		refuse(d, !c->ulp ? KTLS_R_ULP_UNAVAILABLE :
			  ret == -ENOENT ? KTLS_R_CIPHER_UNSUPPORTED : KTLS_R_KERNEL_REFUSED,
		       -ret, c->ulp ? what : "TCP_ULP");
		ktls_trace("fd %d %s refused by the kernel: %s", c->fd, what,
			   ktls_errno_name(-ret));
		goto out;
	}
	/* Installed: from here on nothing may fail the hand-off. */
	d->st.mode = nic_offload_possible(tx) ? kernel_mode(c->fd, tx) : KTLS_MODE_KERNEL_SW;
	d->st.reason = KTLS_R_NONE;
	d->st.err = 0;
	snprintf(d->st.detail, sizeof(d->st.detail), "%s installed", what);
	d->rec_left = d->hdr_have = 0;
	ktls_trace("fd %d %s offloaded: %s TLS %s", c->fd, what, kb.cipher->name,
		   kb.version == KTLS_TLS13 ? "1.3" : "1.2");
	if (tx) {
		ktls_key_stage(c, tx);	/* best effort: KeyUpdates can set the key again */
		tx_zerocopy(c);
	} else {
		ktls_rx_installed(c);
	}
out:
	ktls_keyblock_wipe(&kb);
	return offloaded(d);
}

int ktls_io_ctrl(struct ktls_conn *c, int cmd, long larg, void *ptr, long *ret)
{
	switch (cmd) {
	case BIO_CTRL_SET_KTLS:
		*ret = ptr ? set_ktls(c, ptr, larg != 0) : 0;
		return 1;
	case BIO_CTRL_GET_KTLS_SEND:
		*ret = offloaded(&c->tx);
		return 1;
	case BIO_CTRL_GET_KTLS_RECV:
		*ret = offloaded(&c->rx);
		return 1;
	case BIO_CTRL_SET_KTLS_TX_SEND_CTRL_MSG:
		c->ctrl_type = (int)larg;
		*ret = 1;
		return 1;
	case BIO_CTRL_CLEAR_KTLS_TX_CTRL_MSG:
		c->ctrl_type = 0;
		c->ctrl_sent = 0;
		*ret = 1;
		return 1;
	case BIO_CTRL_SET_KTLS_TX_ZEROCOPY_SENDFILE:
		*ret = tx_zerocopy(c);
		return 1;
	default:
		return 0;
	}
}

void ktls_io_account(struct ktls_dir *d, const uint8_t *p, size_t n)
{
	d->st.bytes += n;
	while (n) {
		if (d->rec_left) {
			size_t take = n < d->rec_left ? n : d->rec_left;

			d->rec_left -= take;
			p += take;
			n -= take;
			continue;
		}
		d->hdr[d->hdr_have++] = *p++;
		n--;
		if (d->hdr_have == KTLS_REC_HDR) {
			d->rec_left = ((size_t)d->hdr[3] << 8) | d->hdr[4];
			d->hdr_have = 0;
			d->st.records++;
		}
	}
}

/* A KeyUpdate of ours on a kernel that cannot re-key: the kernel would
 * keep the old key after we announce a new one, so the connection ends
 * with an alert under the old key instead. */
static ssize_t keyupdate_without_rekey(struct ktls_conn *c)
{
	bool sent = ktls_send_alert(c, ALERT_LEVEL_FATAL, ALERT_INTERNAL_ERROR) == 2;

	refuse(&c->tx, KTLS_R_REKEY_FAILED, ktls_probe_basic()->rekey_err, "TLS_TX re-key");
	c->tx.st.mode = KTLS_MODE_KERNEL_SW;
	c->dead = true;
	ktls_conn_end(c, sent);
	return -(c->tx.st.err ? c->tx.st.err : EOPNOTSUPP);
}

/* libssl writes a record of type c->ctrl_type (ctrl 74), perhaps in
 * parts on a non-blocking socket. */
static ssize_t write_ctrl(struct ktls_conn *c, const uint8_t *in, size_t inl)
{
	bool hs = c->ctrl_type == KTLS_CT_HANDSHAKE && c->tx.st.version == KTLS_TLS13;
	ssize_t n;

	if (!c->ctrl_sent) {	/* the record's first byte */
		c->ctrl_nku = 0;
		c->ctrl_parsed = false;
		c->ctrl_level = inl >= 2 ? in[0] << 8 | in[1] : -1;
		if (hs) {
			int nku = ktls_hs_count_keyupdates(in, inl, NULL);

			c->ctrl_nku = nku > 0 ? nku : 0;
			c->ctrl_parsed = nku >= 0;
		}
		if (c->ctrl_nku && !ktls_probe_basic()->rekey)
			return keyupdate_without_rekey(c);
		if (hs)
			ktls_tx_before_handshake(c);
	}
	n = ktls_send_ctrl(c, c->ctrl_type, in, inl);
	if (n < 0)
		return n;
	c->tx.st.bytes += (uint64_t)n;
	c->ctrl_sent += (size_t)n;
	/* A non-blocking socket short of memory can take part of the record:
	 * libssl writes the rest with the same type, and the record (and its
	 * KeyUpdates) counts once the last byte is out. */
	if ((size_t)n < inl)
		return n;
	if (c->ctrl_type == KTLS_CT_ALERT && c->ctrl_level >= 0) {
		/* a fatal alert or close_notify is the last record */
		if (c->ctrl_level >> 8 == ALERT_LEVEL_FATAL)
			ktls_conn_end(c, true);
		else if ((c->ctrl_level & 0xff) == ALERT_CLOSE_NOTIFY)
			ktls_conn_end(c, false);
	}
	c->ctrl_type = 0;
	c->ctrl_sent = 0;
	c->tx.st.records++;
	c->tx.st.keyupdates += (uint64_t)c->ctrl_nku;
	for (int i = 0; c->tx.lib_behind && i < c->ctrl_nku; i++)
		ktls_secret_next(&c->tx.lib);
	if (hs) {
		int ret = ktls_tx_after_handshake(c, c->ctrl_parsed ? c->ctrl_nku : -1);

		if (ret)
			return ret;
	}
	return n;
}

ssize_t ktls_io_write(struct ktls_conn *c, const void *in, size_t inl)
{
	uint64_t recs;
	ssize_t n;
	int ret;

	if (c->dead)
		return -(c->tx.st.err ? c->tx.st.err : EPIPE);
	if (c->ctrl_type)
		return write_ctrl(c, in, inl);
	ret = ktls_tx_maybe_keyupdate(c);
	if (ret)
		return ret;
	/* records owed to the peer go first, and the application sends them */
	if (ktls_owed_has(c, 0))
		return -EAGAIN;
	n = send(c->fd, in, inl, MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	recs = ((uint64_t)n + KTLS_REC_MAX - 1) / KTLS_REC_MAX;
	c->tx.st.records += recs;
	c->tx.st.bytes += (uint64_t)n;
	c->tx.since_ku += recs;
	return n;
}

/* One kernel record into out: rebuilt header + plaintext. */
static ssize_t recv_record(struct ktls_conn *c, uint8_t *out, size_t cap)
{
	uint8_t type;
	ssize_t n = ktls_rx_record(c, out + KTLS_REC_HDR, cap - KTLS_REC_HDR, &type, true);

	if (n <= 0)
		return n;
	out[0] = type;
	out[1] = 3;
	out[2] = 3;
	out[3] = (uint8_t)(n >> 8);
	out[4] = (uint8_t)n;
	return n + KTLS_REC_HDR;
}

ssize_t ktls_io_read(struct ktls_conn *c, void *out, size_t outl)
{
	ssize_t n;

	if (c->dead || c->handoff)	/* after a hand-off: ktls_conn_recv */
		return -(c->handoff ? EPERM : c->rx.st.err ? c->rx.st.err : EPROTO);
	if (c->rlen > c->roff) {
		n = (ssize_t)(c->rlen - c->roff);
		if ((size_t)n > outl)
			n = (ssize_t)outl;
		memcpy(out, c->rbuf + c->roff, (size_t)n);
		c->roff += (size_t)n;
		return n;
	}
	if (outl >= KTLS_REC_HDR + KTLS_REC_MAX) {
		n = recv_record(c, out, outl);
	} else {
		/* libssl asked for less than a record: keep the rest for later. */
		if (!c->rbuf && !(c->rbuf = OPENSSL_malloc(KTLS_REC_HDR + KTLS_REC_MAX)))
			return -ENOMEM;
		n = recv_record(c, c->rbuf, KTLS_REC_HDR + KTLS_REC_MAX);
		if (n > 0) {
			c->rlen = (size_t)n;
			n = (size_t)n > outl ? (ssize_t)outl : n;
			memcpy(out, c->rbuf, (size_t)n);
			c->roff = (size_t)n;
		}
	}
	if (n == 0)
		c->eof = true;
	return n;
}

bool ktls_io_offloaded(const struct ktls_conn *c, bool tx)
{
	return offloaded(tx ? &c->tx : &c->rx);
}
