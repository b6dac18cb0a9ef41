// SPDX-License-Identifier: MIT
/*
 * handoff.c - hand-off mode: after the handshake the kernel owns both
 * directions and the application uses the socket itself (read, write,
 * sendfile, splice, io_uring).  Records that are not application data
 * come to the bridge, which runs them in userspace:
 *
 *   KeyUpdate            the kernel's RX key moves on (staged or set again);
 *                        with update_requested our own KeyUpdate goes out
 *                        and TX moves on before any more data
 *   NewSessionTicket     consumed (OpenSSL 3.0 has no way to feed a
 *                        ticket into the SSL afterwards) and counted
 *   close_notify         answered with ours; the stream ends
 *   other alerts         the connection ends, reason peer-closed
 *   anything else        fatal unexpected_message alert
 *
 * The records the bridge sends (KeyUpdates, alerts, close_notify) go out
 * with its own sendmsg, or, after ktls_conn_set_owed, wait in a queue for
 * the application (an event loop that owns every write): ktls_conn_owed
 * hands them out one at a time, and ktls_conn_owed_sent does what follows
 * each (TX re-key, the write side shut, the end after a failed send).
 *
 * OpenSSL 3.0 offers TLS 1.3 transmit keys and TLS 1.2 keys itself; the
 * TLS 1.3 receive key comes from the key-log secret, with the sequence
 * number counted by the bridge since the handshake ended.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "internal.h"

static bool in_kernel(const struct ktls_dir *d)
{
	return d->st.mode != KTLS_MODE_USERSPACE;
}

/* TLS 1.3 RX from the key-log secret; seq = records read under it. */
static int install_rx13(struct ktls_conn *c)
{
	struct ktls_dir *d = &c->rx;
	struct ktls_keyblock kb;
	enum ktls_reason r;
	uint64_t seq;
	int ret, err;

	if (!c->hs_done)
		return -EINPROGRESS;
	if (!d->secret.len || !c->tx.st.cipher)
		return -ENOKEY;
	seq = d->st.records - c->rx_app_base;
	/* A record read under the application key may have been a KeyUpdate
	 * that libssl applied where we cannot see it. */
	if (seq)
		return -EBUSY;
	d->st.version = KTLS_TLS13;
	d->st.cipher = c->tx.st.cipher;
	ret = ktls_secret_keyblock(&d->secret, d->st.cipher, &kb);
	if (ret)
		return ret;
	r = ktls_decide(c, &kb, false, &err);
	if (r != KTLS_R_NONE) {
		ktls_keyblock_wipe(&kb);
		ktls_dir_note(d, r, err, "TLS_RX (hand-off)");
		return -EOPNOTSUPP;
	}
	ret = ktls_install(c->fd, &c->ulp, &kb, false);
	ktls_keyblock_wipe(&kb);
	if (ret)
		return ret;
	d->st.mode = KTLS_MODE_KERNEL_SW;
	ktls_dir_note(d, KTLS_R_NONE, 0, "TLS_RX installed (hand-off)");
	d->rec_left = d->hdr_have = 0;
	d->st.records = d->st.bytes = 0;
	ktls_rx_installed(c);
	ktls_key_stage(c, false);
	return 0;
}

int ktls_conn_handoff(SSL *ssl)
{
	struct ktls_conn *c = ktls_conn_of(ssl);
	int ret;

	if (!c)
		return -EINVAL;
	if (c->handoff)
		return 0;
	if (!SSL_is_init_finished(ssl))
		return -EINPROGRESS;
	/* libssl must hold nothing it has read but not returned */
	if (SSL_has_pending(ssl) || c->rx.rec_left || c->rx.hdr_have || c->rlen > c->roff)
		return -EAGAIN;
	if (!in_kernel(&c->tx))
		return -EOPNOTSUPP;	/* the reason is in the TX status */
	if (!in_kernel(&c->rx)) {
		if (c->tx.st.version != KTLS_TLS13 || c->rx.st.reason != KTLS_R_NOT_OFFERED)
			return -EOPNOTSUPP;	/* TLS 1.2 RX refused: see its reason */
		ret = install_rx13(c);
		if (ret) {
			/* nothing changed: the SSL keeps working in userspace */
			ktls_trace("fd %d hand-off refused: TLS 1.3 RX: %s", c->fd,
				   ktls_errno_name(ret));
			if (ret != -EBUSY && ret != -EINPROGRESS && ret != -EOPNOTSUPP)
				ktls_dir_note(&c->rx, ret == -ENOKEY ? KTLS_R_BAD_KEYS :
					      ret == -ENOENT ? KTLS_R_CIPHER_UNSUPPORTED :
					      KTLS_R_KERNEL_REFUSED, -ret, "TLS_RX (hand-off)");
			return ret;
		}
	}
	c->handoff = true;
	c->ssl = ssl;
	ktls_trace("fd %d handed off: the application owns the data path", c->fd);
	return 0;
}

static int fatal(struct ktls_conn *c, uint8_t alert, const char *what)
{
	ktls_conn_fatal(c, false, KTLS_R_PROTOCOL, EPROTO, alert, what);
	return -EPROTO;
}

/* Our KeyUpdate, then TX moves on: before any more data goes out. */
static int send_keyupdate(struct ktls_conn *c, bool requested)
{
	const uint8_t ku[5] = { KTLS_HS_KEY_UPDATE, 0, 0, 1, requested };
	ssize_t n;

	if (c->tx.st.version != KTLS_TLS13)
		return -EOPNOTSUPP;
	ktls_tx_before_handshake(c);
	n = ktls_send_ctrl(c, KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	if (n <= 0)	/* 0: owed, the rest follows ktls_conn_owed_sent */
		return (int)n;
	c->tx.st.records++;
	c->tx.st.keyupdates++;
	return ktls_tx_after_handshake(c, 1);
}

/* The reply a peer's update_requested is owed goes before our next data.
 * After our close_notify, or the end, nothing goes out: it is dropped. */
static int pay_keyupdate(struct ktls_conn *c)
{
	int ret;

	if (c->closed || c->dead)
		c->ku_owed = false;
	if (!c->ku_owed)
		return 0;
	ret = send_keyupdate(c, false);
	if (!ret)
		c->ku_owed = false;
	return ret;
}

/* defer: the reply that an update_requested is owed may wait for the
 * next application data we hand up or send (ktls_conn_recv, which sees
 * every record), so that a run of requests gets one reply (RFC 8446
 * 4.6.3 allows that); an application that writes to the socket itself
 * gets it at once. */
static int handshake_record(struct ktls_conn *c, const uint8_t *p, size_t len, bool defer)
{
	struct ktls_hs_seen seen;
	int ret;

	/* the kernel's receive key follows here (staged switch), the storm
	 * guard counts, malformed KeyUpdates get their alert */
	ret = ktls_rx_after_handshake(c, p, len, &seen);
	if (ret)
		return ret;
	if (seen.others)
		return fatal(c, ALERT_UNEXPECTED_MESSAGE, "post-handshake message");
	if (seen.tickets && SSL_is_server(c->ssl))
		return fatal(c, ALERT_UNEXPECTED_MESSAGE, "ticket from a client");
	c->tickets += (uint64_t)seen.tickets;
	/* update_requested: ours goes out before any more data (on a full
	 * non-blocking socket, with the next send, receive or KeyUpdate) */
	if (seen.requested)
		c->ku_owed = true;
	if (defer)
		return 0;
	ret = pay_keyupdate(c);
	return ktls_retryable(-ret) ? 0 : ret;
}

static int control(struct ktls_conn *c, int type, const uint8_t *p, size_t len, bool defer)
{
	switch (type) {
	case KTLS_CT_HANDSHAKE:
		if (c->tx.st.version != KTLS_TLS13)
			return fatal(c, ALERT_UNEXPECTED_MESSAGE, "TLS 1.2 renegotiation");
		return handshake_record(c, p, len, defer);
	case KTLS_CT_ALERT:
		if (len != 2)	/* a message of the wrong length */
			return fatal(c, ALERT_DECODE_ERROR, "malformed alert");
		if (p[1] == ALERT_CLOSE_NOTIFY) {
			c->eof = true;	/* what follows is ignored (RFC 8446 6.1) */
			ktls_conn_shutdown(c->ssl);
			ktls_dir_note(&c->rx, KTLS_R_PEER_CLOSED, 0, "close_notify");
			return 1;
		}
		{
			char what[48];

			snprintf(what, sizeof(what), "alert %u (level %u)", p[1], p[0]);
			ktls_conn_fatal(c, false, KTLS_R_PEER_CLOSED, ECONNRESET, 0, what);
		}
		return -ECONNRESET;
	default:
		return fatal(c, ALERT_UNEXPECTED_MESSAGE, "unexpected record type");
	}
}

int ktls_conn_control(SSL *ssl, int type, const void *rec, size_t len)
{
	struct ktls_conn *c = ktls_conn_of(ssl);

	if (!c || !c->handoff || (!rec && len))
		return -EINVAL;
	/* after the end, or the peer's close_notify, a record changes nothing
	 * and nothing is sent for it */
	if (c->dead)
		return -(c->rx.st.err ? c->rx.st.err : EPIPE);
	if (c->eof)
		return -EPIPE;
	return control(c, type, rec, len, false);
}

int ktls_conn_received(SSL *ssl, ssize_t res, int type, const void *rec)
{
	struct ktls_conn *c = ktls_conn_of(ssl);
	ssize_t n;
	int ret;

	if (!c || !c->handoff || (res > 0 && (!rec || res > KTLS_REC_MAX)) || type < 0 ||
	    type > 255)
		return -EINVAL;
	if (c->dead)
		return -(c->rx.st.err ? c->rx.st.err : EPIPE);
	if (c->eof)
		return -EPIPE;
	n = ktls_rx_app_result(c, res, (uint8_t)type, rec);
	if (n == 0) {
		c->eof = true;	/* the stream ended without close_notify */
		return 1;
	}
	if (n < 0)
		return ktls_retryable((int)-n) ? 0 : (int)n;
	if (type != KTLS_CT_APPDATA)
		return control(c, type, rec, (size_t)n, false);
	/* the application may answer this data: a reply we owe goes first
	 * (a full socket: with the next ktls_conn_send) */
	ret = pay_keyupdate(c);
	return ret && !ktls_retryable(-ret) ? ret : 0;
}

ssize_t ktls_conn_recv_record(SSL *ssl, void *buf, size_t len, int *type)
{
	struct ktls_conn *c = ktls_conn_of(ssl);
	uint8_t t;
	ssize_t n;

	/* a record whole: a control record cut short could not be parsed */
	if (!c || !c->handoff || !buf || !type || len < KTLS_REC_MAX)
		return -EINVAL;
	if (c->dead)
		return -(c->rx.st.err ? c->rx.st.err : EPIPE);
	n = ktls_rx_record(c, buf, len, &t, false);
	if (n < 0)
		return n;
	*type = t;
	return n;
}

ssize_t ktls_conn_recv(SSL *ssl, void *buf, size_t len)
{
	struct ktls_conn *c = ktls_conn_of(ssl);

	if (!c || !c->handoff || !buf)
		return -EINVAL;
	for (;;) {
		uint8_t type, *dst = buf;
		size_t cap = len;
		ssize_t n;
		int ret;

		if (c->rlen > c->roff) {	/* the rest of a record from before */
			n = (ssize_t)(c->rlen - c->roff);
			if ((size_t)n > len)
				n = (ssize_t)len;
			memcpy(buf, c->rbuf + c->roff, (size_t)n);
			c->roff += (size_t)n;
			return n;
		}
		if (c->dead)
			return -(c->rx.st.err ? c->rx.st.err : EPIPE);
		if (c->eof)
			return 0;
		/* a control record must come whole: small buffers go through ours */
		if (len < KTLS_REC_MAX) {
			if (!c->rbuf && !(c->rbuf = OPENSSL_malloc(KTLS_REC_HDR + KTLS_REC_MAX)))
				return -ENOMEM;
			dst = c->rbuf;
			cap = KTLS_REC_MAX;
		}
		n = ktls_rx_record(c, dst, cap, &type, false);
		if (n < 0)
			return n;
		if (n == 0) {
			c->eof = true;
			return 0;
		}
		if (type == KTLS_CT_APPDATA) {
			/* the application may answer this data: a reply
			 * we owe goes first (a full socket: with the next call) */
			ret = pay_keyupdate(c);
			if (ret && !ktls_retryable(-ret))
				return ret;
			if (dst == buf)
				return n;
			c->rlen = (size_t)n;
			c->roff = 0;
			continue;
		}
		ret = control(c, type, dst, (size_t)n, true);
		if (ret == 1) {
			c->eof = true;
			return 0;
		}
		if (ret < 0)
			return ret;
	}
}

ssize_t ktls_conn_send(SSL *ssl, const void *buf, size_t len)
{
	struct ktls_conn *c = ktls_conn_of(ssl);
	ssize_t n;

	if (!c || !c->handoff || (!buf && len))
		return -EINVAL;
	if (c->dead || c->closed)
		return -EPIPE;
	n = pay_keyupdate(c);
	if (n)
		return n;
	if (!len)
		/* the application writes the socket itself next (sendfile,
		 * splice, its own ring): counted as SSL_sendfile()'s records
		 * are, from the kernel's record sequence (txkey.c) */
		return ktls_tx_flush(c);
	return ktls_io_write(c, buf, len);	/* as libssl's data goes */
}

int ktls_conn_keyupdate(SSL *ssl, int requested)
{
	struct ktls_conn *c = ktls_conn_of(ssl);
	int ret;

	if (!c || !c->handoff || (requested != 0 && requested != 1))
		return -EINVAL;
	if (c->dead || c->closed)
		return -EPIPE;
	ret = pay_keyupdate(c);
	return ret ? ret : send_keyupdate(c, requested);
}

int ktls_conn_shutdown(SSL *ssl)
{
	struct ktls_conn *c = ktls_conn_of(ssl);
	ssize_t n;

	if (!c || !c->handoff)
		return -EINVAL;
	if (c->closed)
		return 0;
	if (c->dead)
		return -EPIPE;
	n = ktls_send_alert(c, ALERT_LEVEL_WARNING, ALERT_CLOSE_NOTIFY);
	if (n < 0)
		return (int)n;
	c->closed = true;
	if (n)	/* owed: the write side is shut once it went out */
		ktls_conn_end(c, false);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Records the application sends itself (ktls_conn_set_owed)          */
/* ------------------------------------------------------------------ */

int ktls_conn_set_owed(SSL *ssl, int on)
{
	struct ktls_conn *c = ktls_conn_of(ssl);

	if (!c || !c->handoff || (on != 0 && on != 1))
		return -EINVAL;
	if (!on && (c->owed_n || c->owed_out))
		return -EBUSY;
	c->owe = on;
	return 0;
}

ssize_t ktls_conn_owed(SSL *ssl, void *buf, size_t cap, int *type)
{
	struct ktls_conn *c = ktls_conn_of(ssl);
	struct ktls_owed *e;

	if (!c || !c->handoff || !c->owe || !buf || !type)
		return -EINVAL;
	if (c->owed_out)
		return -EBUSY;
	if (!c->owed_n)
		pay_keyupdate(c);	/* a reply that found the queue full */
	if (!c->owed_n)
		return 0;
	e = &c->owed[0];
	if (cap < e->len)
		return -ENOSPC;
	/* staged now if it could not be before: the KeyUpdates ahead of
	 * this one have moved the key on since it was queued */
	if (e->type == KTLS_CT_HANDSHAKE)
		ktls_tx_before_handshake(c);
	memcpy(buf, e->rec, e->len);
	*type = e->type;
	c->owed_out = true;
	return e->len;
}

/* The send of an owed record failed: nothing more can go out in order. */
static int owed_failed(struct ktls_conn *c, const struct ktls_owed *e, int err)
{
	char what[64];

	c->owed_n = 0;	/* what was queued behind it would come out of order */
	snprintf(what, sizeof(what), "%s not sent (%s)",
		 e->type == KTLS_CT_HANDSHAKE ? "KeyUpdate" : "alert", ktls_errno_name(err));
	if (e->type == KTLS_CT_HANDSHAKE && !c->dead) {
		/* a KeyUpdate the peer may or may not have: no key is safe
		 * to send under any more, not even an alert's */
		ktls_conn_fatal(c, true, KTLS_R_REKEY_FAILED, err, 0, what);
	} else {
		/* the last record (the reason is the one that ended it) */
		ktls_trace("fd %d %s", c->fd, what);
		c->dead = true;
		ktls_conn_end(c, false);
	}
	return -err;
}

int ktls_conn_owed_sent(SSL *ssl, ssize_t res)
{
	struct ktls_conn *c = ktls_conn_of(ssl);
	struct ktls_owed e;
	int nku;

	if (!c || !c->handoff || !c->owe || !c->owed_out)
		return -EINVAL;
	c->owed_out = false;
	if (res < 0 && res >= -4095 && ktls_retryable((int)-res))
		return 0;	/* still owed: ktls_conn_owed returns it again */
	e = c->owed[0];
	c->owed_n--;
	memmove(c->owed, c->owed + 1, c->owed_n * sizeof(c->owed[0]));
	if (res != e.len)	/* a control record goes whole or not at all */
		return owed_failed(c, &e, res < 0 && res >= -4095 ? (int)-res : EIO);
	c->tx.st.records++;
	if (e.type == KTLS_CT_ALERT) {
		/* a fatal alert or close_notify: the last record */
		ktls_conn_end(c, e.rec[0] == ALERT_LEVEL_FATAL);
		return 1;
	}
	nku = ktls_hs_count_keyupdates(e.rec, e.len, NULL);
	if (nku <= 0)
		return 0;
	c->tx.st.keyupdates += (uint64_t)nku;
	/* the KeyUpdate went out under the old key: now the kernel moves on
	 * (staged switch, or TLS_TX set again) before the next record */
	return ktls_tx_after_handshake(c, nku);
}
