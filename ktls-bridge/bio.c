// SPDX-License-Identifier: MIT
/*
 * bio.c - the bridge BIO: a TCP socket BIO that speaks libssl's kTLS
 * contract (BIO ctrls 72/73/74/75/76/90) and installs, per direction, the
 * keys the policy lets the kernel have (ktls_decide, policy.c).
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>

#include "internal.h"

#ifndef BIO_CTRL_SET_KTLS
#define BIO_CTRL_SET_KTLS 72
#endif
#ifndef BIO_CTRL_SET_KTLS_TX_SEND_CTRL_MSG
#define BIO_CTRL_SET_KTLS_TX_SEND_CTRL_MSG 74
#endif
#ifndef BIO_CTRL_CLEAR_KTLS_TX_CTRL_MSG
#define BIO_CTRL_CLEAR_KTLS_TX_CTRL_MSG 75
#endif
#ifndef BIO_CTRL_SET_KTLS_TX_ZEROCOPY_SENDFILE
#define BIO_CTRL_SET_KTLS_TX_ZEROCOPY_SENDFILE 90
#endif

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
		ktls_rx_expect_no_pad(c);
	}
out:
	ktls_keyblock_wipe(&kb);
	return offloaded(d);
}

/* Count records and bytes of a userspace direction from the wire. */
static void account_wire(struct ktls_dir *d, const uint8_t *p, size_t n)
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

static int bridge_write(BIO *b, const char *in, int inl)
{
	struct ktls_conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (c->dead) {
		errno = c->tx.st.err ? c->tx.st.err : EPIPE;
		return -1;
	}
	if (!offloaded(&c->tx)) {
		n = send(c->fd, in, (size_t)inl, MSG_NOSIGNAL);
		if (n > 0)
			account_wire(&c->tx, (const uint8_t *)in, (size_t)n);
	} else if (c->ctrl_type) {
		bool hs = c->ctrl_type == KTLS_CT_HANDSHAKE && c->tx.st.version == KTLS_TLS13;

		if (!c->ctrl_sent) {	/* the record's first byte */
			c->ctrl_nku = 0;
			c->ctrl_level = inl >= 2 ? (uint8_t)in[0] << 8 | (uint8_t)in[1] : -1;
			if (hs) {
				int nku = ktls_hs_count_keyupdates((const uint8_t *)in,
								   (size_t)inl, NULL);

				c->ctrl_nku = nku > 0 ? nku : 0;
			}
			if (c->ctrl_nku && !ktls_probe_basic()->rekey) {
				/* The kernel would keep the old key after we announce
				 * a new one: end the connection with an alert under
				 * the old key instead. */
				bool sent = ktls_send_alert(c, ALERT_LEVEL_FATAL,
							    ALERT_INTERNAL_ERROR) == 2;

				refuse(&c->tx, KTLS_R_REKEY_FAILED, ktls_probe_basic()->rekey_err,
				       "TLS_TX re-key");
				c->tx.st.mode = KTLS_MODE_KERNEL_SW;
				c->dead = true;
				ktls_conn_end(c, sent);
				errno = c->tx.st.err ? c->tx.st.err : EOPNOTSUPP;
				return -1;
			}
			if (hs)
				ktls_tx_before_handshake(c);
		}
		n = ktls_send_ctrl(c, c->ctrl_type, in, (size_t)inl);
		if (n < 0) {
			errno = (int)-n;	/* the BIO reports through errno */
			n = -1;
		} else {
			c->tx.st.bytes += (uint64_t)n;
			c->ctrl_sent += (size_t)n;
			/* A non-blocking socket short of memory can take part of
			 * the record: libssl writes the rest with the same type,
			 * and the record (and its KeyUpdates) counts once the
			 * last byte is out. */
			if (n < inl)
				return (int)n;
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
				int ret = ktls_tx_after_handshake(c, c->ctrl_nku);

				if (ret) {
					errno = -ret;
					return -1;
				}
			}
		}
	} else {
		int ret = ktls_tx_maybe_keyupdate(c);

		if (ret) {
			errno = -ret;
			if (ktls_retryable(errno))
				BIO_set_retry_write(b);
			return -1;
		}
		n = send(c->fd, in, (size_t)inl, MSG_NOSIGNAL);
		if (n > 0) {
			uint64_t recs = ((uint64_t)n + KTLS_REC_MAX - 1) / KTLS_REC_MAX;

			c->tx.st.records += recs;
			c->tx.st.bytes += (uint64_t)n;
			c->tx.since_ku += recs;
		}
	}
	if (n < 0 && ktls_retryable(errno))
		BIO_set_retry_write(b);
	return (int)n;
}

/* One kernel record into out: rebuilt header + plaintext. */
static ssize_t recv_record(struct ktls_conn *c, uint8_t *out, size_t cap)
{
	uint8_t type;
	ssize_t n = ktls_rx_record(c, out + KTLS_REC_HDR, cap - KTLS_REC_HDR, &type, true);

	if (n < 0) {
		errno = (int)-n;	/* the BIO reports through errno */
		return -1;
	}
	if (n == 0)
		return 0;
	out[0] = type;
	out[1] = 3;
	out[2] = 3;
	out[3] = (uint8_t)(n >> 8);
	out[4] = (uint8_t)n;
	return n + KTLS_REC_HDR;
}

static int bridge_read(BIO *b, char *out, int outl)
{
	struct ktls_conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (!out || outl <= 0)
		return 0;
	if (c->dead || c->handoff) {	/* after a hand-off: ktls_conn_recv */
		errno = c->handoff ? EPERM : c->rx.st.err ? c->rx.st.err : EPROTO;
		return -1;
	}
	if (!offloaded(&c->rx)) {
		n = read(c->fd, out, (size_t)outl);
		if (n > 0)
			account_wire(&c->rx, (const uint8_t *)out, (size_t)n);
	} else if (c->rlen > c->roff) {
		n = (ssize_t)(c->rlen - c->roff);
		if (n > outl)
			n = outl;
		memcpy(out, c->rbuf + c->roff, (size_t)n);
		c->roff += (size_t)n;
	} else if ((size_t)outl >= KTLS_REC_HDR + KTLS_REC_MAX) {
		n = recv_record(c, (uint8_t *)out, (size_t)outl);
	} else {
		/* libssl asked for less than a record: keep the rest for later. */
		if (!c->rbuf && !(c->rbuf = OPENSSL_malloc(KTLS_REC_HDR + KTLS_REC_MAX))) {
			errno = ENOMEM;
			return -1;
		}
		n = recv_record(c, c->rbuf, KTLS_REC_HDR + KTLS_REC_MAX);
		if (n > 0) {
			c->rlen = (size_t)n;
			c->roff = 0;
			n = n > outl ? outl : n;
			memcpy(out, c->rbuf, (size_t)n);
			c->roff = (size_t)n;
		}
	}
	if (n == 0)
		c->eof = true;
	else if (n < 0 && ktls_retryable(errno))
		BIO_set_retry_read(b);
	return (int)n;
}

static int bridge_puts(BIO *b, const char *s)
{
	return bridge_write(b, s, (int)strlen(s));
}

static long bridge_ctrl(BIO *b, int cmd, long larg, void *ptr)
{
	struct ktls_conn *c = BIO_get_data(b);

	switch (cmd) {
	case BIO_C_GET_FD:
		if (ptr)
			*(int *)ptr = c->fd;
		return c->fd;
	case BIO_CTRL_GET_CLOSE:
		return c->close_flag;
	case BIO_CTRL_SET_CLOSE:
		c->close_flag = (int)larg;
		return 1;
	case BIO_CTRL_FLUSH:
	case BIO_CTRL_DUP:
		return 1;
	case BIO_CTRL_EOF:
		return c->eof;
	case BIO_CTRL_PENDING:
		return (long)(c->rlen - c->roff);
	case BIO_CTRL_WPENDING:
		return 0;
	case BIO_CTRL_SET_KTLS:
		if (!ptr)
			return 0;
		return set_ktls(c, ptr, larg != 0);
	case BIO_CTRL_GET_KTLS_SEND:
		return offloaded(&c->tx);
	case BIO_CTRL_GET_KTLS_RECV:
		return offloaded(&c->rx);
	case BIO_CTRL_SET_KTLS_TX_SEND_CTRL_MSG:
		c->ctrl_type = (int)larg;
		return 1;
	case BIO_CTRL_CLEAR_KTLS_TX_CTRL_MSG:
		c->ctrl_type = 0;
		c->ctrl_sent = 0;
		return 1;
	case BIO_CTRL_SET_KTLS_TX_ZEROCOPY_SENDFILE:
		return tx_zerocopy(c);
	default:
		return 0;
	}
}

static int bridge_create(BIO *b)
{
	BIO_set_data(b, NULL);
	BIO_set_init(b, 0);
	return 1;
}

static int bridge_destroy(BIO *b)
{
	struct ktls_conn *c = BIO_get_data(b);

	if (!c)
		return 1;
	if (c->close_flag && c->fd >= 0) {
		/* the BIO owns the socket: a last record that went out must
		 * reach the peer before close() can reset the connection */
		if (c->wr_shut)
			ktls_conn_end(c, true);
		close(c->fd);
	}
	/* wiped whole: the traffic secrets (tx.secret, tx.lib, rx.secret)
	 * with the rest, and the plaintext of a record libssl did not take */
	OPENSSL_clear_free(c->rbuf, KTLS_REC_HDR + KTLS_REC_MAX);
	OPENSSL_clear_free(c, sizeof(*c));
	BIO_set_data(b, NULL);
	BIO_set_init(b, 0);
	return 1;
}

static BIO_METHOD *bridge_method;
static int bridge_type;
static CRYPTO_ONCE bridge_once = CRYPTO_ONCE_STATIC_INIT;

static void bridge_method_init(void)
{
	int type = BIO_get_new_index();
	BIO_METHOD *m;

	if (type < 0)
		return;
	type |= BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR;
	m = BIO_meth_new(type, "ktls bridge");
	if (!m)
		return;
	if (!BIO_meth_set_write(m, bridge_write) || !BIO_meth_set_read(m, bridge_read) ||
	    !BIO_meth_set_puts(m, bridge_puts) || !BIO_meth_set_ctrl(m, bridge_ctrl) ||
	    !BIO_meth_set_create(m, bridge_create) || !BIO_meth_set_destroy(m, bridge_destroy)) {
		BIO_meth_free(m);
		return;
	}
	bridge_type = type;
	bridge_method = m;
}

const BIO_METHOD *ktls_bio_method(void)
{
	if (!CRYPTO_THREAD_run_once(&bridge_once, bridge_method_init))
		return NULL;
	return bridge_method;
}

struct ktls_conn *ktls_conn_from_bio(BIO *b)
{
	const BIO_METHOD *m = ktls_bio_method();

	for (; b; b = BIO_next(b))
		if (m && BIO_method_type(b) == bridge_type)
			return BIO_get_data(b);
	return NULL;
}
