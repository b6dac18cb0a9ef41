// SPDX-License-Identifier: MIT
/*
 * rxkey.c - the TLS 1.3 receive key once the kernel decrypts, and libssl's
 * second key hand-off.
 *
 * OpenSSL 3.0 never offers TLS 1.3 receive keys; 3.2+ does, and after a
 * KeyUpdate it offers the next key again (BIO ctrl 72).  When a KeyUpdate
 * arrives the kernel either switches at once to a key staged with
 * TLS_RX_NEXT, or (mainline 6.14) hands up the KeyUpdate record and then
 * fails reads with EKEYEXPIRED until TLS_RX is set again.  The bridge
 * follows both, so libssl never sees EKEYEXPIRED, and checks every key
 * libssl offers again against its own chain rather than trusting it.
 *
 * Mainline looks only at the first byte of a handshake record: it pauses
 * after any record that begins with 24 (a KeyUpdate's type), and after no
 * other.  A KeyUpdate split over records, or behind another message,
 * therefore gets an early pause (its first fragment: no KeyUpdate yet) and
 * no pause where it ends.  The bridge's own walk knows where each message
 * ends: an early pause is answered with the key in use, set again at the
 * kernel's sequence number, and a KeyUpdate that ends in a record the
 * kernel did not pause for gets its next key before anything more is
 * read.  Our series (0004) finds KeyUpdates anywhere, so neither happens
 * there; setting the key ahead is then the same call a pause would get.
 *
 * Storm guard: a KeyUpdate costs the bridge a key derivation and one or
 * two setsockopt calls, so a peer may send many, but not without end.
 * The connection ends with a fatal unexpected_message alert when the peer
 * sends more than keyupdate_burst KeyUpdates with no application data
 * between them (nothing a real peer needs), or more than storm_limit in
 * one second however much data comes along (far above what any real peer
 * sends: they re-key per gigabytes or per hour).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <openssl/crypto.h>

#include "internal.h"

#define NSEC 1000000000ull

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC + (uint64_t)ts.tv_nsec;
}

static int storm_check(struct ktls_conn *c, int nku)
{
	struct ktls_dir *d = &c->rx;
	uint64_t now = now_ns();
	const char *why = NULL;

	if (!d->storm_start || now - d->storm_start >= NSEC) {
		d->storm_start = now;
		d->storm_count = 0;
	}
	d->storm_count += (uint32_t)nku;
	d->ku_run += (uint32_t)nku;
	if (c->policy.keyupdate_burst && d->ku_run > c->policy.keyupdate_burst)
		why = "more KeyUpdates without application data between them than keyupdate_burst";
	else if (c->policy.storm_limit && d->storm_count > c->policy.storm_limit)
		why = "more KeyUpdates in a second than storm_limit";
	if (!why)
		return 0;
	ktls_conn_fatal(c, false, KTLS_R_KEYUPDATE_STORM, 0, ALERT_UNEXPECTED_MESSAGE, why);
	return -EPROTO;
}

static int rx_failed(struct ktls_conn *c, int ret, const char *what)
{
	/* TX still works: the peer gets an alert it can read. */
	ktls_conn_fatal(c, false, KTLS_R_REKEY_FAILED, -ret, ALERT_INTERNAL_ERROR, what);
	return ret;
}

/* After a staged switch: advance the chain and stage the next key.  For
 * a lone KeyUpdate the staging waits until the record after it was
 * delivered, off the path from the KeyUpdate to the next data.  With more
 * KeyUpdates in the record the kernel pends on the next one, and staging
 * installs that key at once. */
static int follow_staged(struct ktls_conn *c, int nku)
{
	struct ktls_dir *d = &c->rx;
	int ret, budget = nku > 0 ? nku : 1;

	while (d->staged && budget-- > 0) {
		ret = ktls_key_staged_consumed(c, false);
		if (ret != 1)
			return 0;
		d->staged = false;
		ret = ktls_secret_next(&d->secret);
		if (ret)
			return rx_failed(c, ret, "TLS_RX re-key");
		d->st.rekeys++;
		d->st.staged_switches++;
		if (d->ku_unkeyed)
			d->ku_unkeyed--;
		if (nku == 1) {
			d->restage_due = true;
			return 0;
		}
		ktls_key_stage(c, false);
	}
	return 0;
}

#define HS_NEW_SESSION_TICKET 4

static void hs_complete(struct ktls_hs_walk *w, size_t rest, struct ktls_hs_seen *seen)
{
	switch (w->hdr[0]) {
	case KTLS_HS_KEY_UPDATE:
		if (w->body0 > 1) {
			seen->alert = ALERT_ILLEGAL_PARAMETER;
			seen->why = "KeyUpdate with a request_update other than 0 or 1";
		} else if (rest) {
			/* RFC 8446 5.1: it ends its key, so it ends its record */
			seen->alert = ALERT_UNEXPECTED_MESSAGE;
			seen->why = "KeyUpdate not at the end of its record";
		}
		seen->keyupdates++;
		seen->requested |= w->body0 == 1;
		break;
	case HS_NEW_SESSION_TICKET:
		seen->tickets++;
		break;
	default:
		seen->others++;	/* type 0 included: no HelloRequest in TLS 1.3 */
		break;
	}
	w->have = 0;
}

/* Walk the handshake bytes of one record; messages may start in an
 * earlier record. */
static void hs_walk(struct ktls_hs_walk *w, const uint8_t *p, size_t len,
		    struct ktls_hs_seen *seen)
{
	while (len && !seen->alert) {
		if (w->have < 4) {
			w->hdr[w->have++] = *p++;
			len--;
			if (w->have < 4)
				continue;
			w->left = (uint32_t)w->hdr[1] << 16 | (uint32_t)w->hdr[2] << 8 | w->hdr[3];
			w->body0 = -1;
			if (w->hdr[0] == KTLS_HS_KEY_UPDATE && w->left != 1) {
				seen->alert = ALERT_DECODE_ERROR;
				seen->why = "KeyUpdate body is not one byte";
				break;
			}
			if (!w->left)
				hs_complete(w, len, seen);
			continue;
		}
		{
			size_t take = len < w->left ? len : w->left;

			if (w->body0 < 0)
				w->body0 = p[0];
			p += take;
			len -= take;
			w->left -= (uint32_t)take;
			if (!w->left)
				hs_complete(w, len, seen);
		}
	}
}

/* Set TLS_RX to generation gen+1 (the kernel waits for it). */
static int rx_set_next(struct ktls_conn *c)
{
	struct ktls_dir *d = &c->rx;
	struct ktls_keyblock kb;
	bool was_staged = d->staged;
	int ret;

	if (!d->secret.len)
		return rx_failed(c, -ENOKEY, "TLS_RX re-key (no key-log secret)");
	ret = ktls_secret_next(&d->secret);
	if (!ret)
		ret = ktls_secret_keyblock(&d->secret, d->st.cipher, &kb);
	if (!ret) {
		ret = ktls_install_opt(c->fd, TLS_RX, &kb);
		d->st.key_calls++;
		ktls_keyblock_wipe(&kb);
	}
	if (ret)
		return rx_failed(c, ret, "TLS_RX re-key");
	d->st.rekeys++;
	d->staged = false;
	d->early_pause_due = false;	/* setting TLS_RX ends any pause */
	if (d->ku_unkeyed)
		d->ku_unkeyed--;
	else
		d->ku_ahead++;	/* its record is still with the application */
	/* A staged key is now the one in use: replace it, or drop it. */
	if (ktls_key_stage(c, false) && was_staged) {
		ret = ktls_key_unstage(c, false);
		if (ret)
			return rx_failed(c, ret, "TLS_RX_NEXT drop");
	}
	return 0;
}

/* The peer's KeyUpdate ended in a record that did not begin with one: a
 * kernel before our series read on with the old key, and the peer's next
 * record would fail as bad_record_mac.  The kernel takes TLS_RX at any
 * time, paused or not, so the next key goes in before the next read. */
static int rekey_ahead(struct ktls_conn *c)
{
	struct ktls_dir *d = &c->rx;
	int ret;

	if (!d->ku_unkeyed || d->st.mode == KTLS_MODE_USERSPACE)
		return 0;
	ret = rx_set_next(c);
	if (!ret) {
		d->st.rekeys_ahead++;
		d->ahead_unreported = true;
	}
	return ret;
}

int ktls_rx_after_handshake(struct ktls_conn *c, const uint8_t *body, size_t len,
			    struct ktls_hs_seen *seen)
{
	struct ktls_dir *d = &c->rx;
	bool ku_first = len && body[0] == KTLS_HS_KEY_UPDATE;
	int ret;

	memset(seen, 0, sizeof(*seen));
	if (d->st.version != KTLS_TLS13)
		return 0;
	hs_walk(&d->walk, body, len, seen);
	/* mainline pauses after this record with no key to change to */
	d->early_pause_due = ku_first && !seen->keyupdates;
	d->st.keyupdates += (uint64_t)seen->keyupdates;
	d->ku_unkeyed += (uint32_t)seen->keyupdates;
	d->hs_unwalked = false;
	/* keys installed at EKEYEXPIRED before this record was walked */
	while (d->ku_ahead && d->ku_unkeyed) {
		d->ku_ahead--;
		d->ku_unkeyed--;
	}
	if (seen->alert) {
		ktls_conn_fatal(c, false, KTLS_R_PROTOCOL, EPROTO, (uint8_t)seen->alert, seen->why);
		return -EPROTO;
	}
	if (seen->keyupdates && storm_check(c, seen->keyupdates))
		return -EPROTO;
	ret = follow_staged(c, seen->keyupdates);
	return ret || ku_first ? ret : rekey_ahead(c);
}

static bool same_keys(const struct ktls_keyblock *a, const struct ktls_keyblock *b)
{
	const struct ktls_cipher *ci = a->cipher;

	return a->cipher == b->cipher && a->version == b->version &&
	       !CRYPTO_memcmp(a->key, b->key, ci->key_size) &&
	       !CRYPTO_memcmp(a->salt, b->salt, ci->salt_size) &&
	       !CRYPTO_memcmp(a->iv, b->iv, ci->iv_size);
}

/* An early pause: no KeyUpdate is complete, so the key does not change.
 * Set the one in use again, at the sequence number the kernel reached;
 * the kernel reports both, and its key must be the one the bridge
 * believes in use. */
static int rx_set_again(struct ktls_conn *c)
{
	struct ktls_dir *d = &c->rx;
	unsigned char info[KTLS_MAX_INFO];
	socklen_t len = (socklen_t)d->st.cipher->info_size;
	struct ktls_keyblock kernel, ours;
	int ret;

	memset(&kernel, 0, sizeof(kernel));
	memset(&ours, 0, sizeof(ours));
	if (!d->secret.len)
		return rx_failed(c, -ENOKEY, "TLS_RX resume (no key-log secret)");
	d->st.key_calls += 2;
	if (ktls_sys->getsockopt(c->fd, SOL_TLS, TLS_RX, info, &len) < 0)
		ret = -errno;
	else
		ret = ktls_keyblock_from_info(&kernel, info, len);
	if (!ret)
		ret = ktls_secret_keyblock(&d->secret, d->st.cipher, &ours);
	if (!ret && !same_keys(&kernel, &ours))
		ret = -EKEYREJECTED;
	if (!ret && ktls_sys->setsockopt(c->fd, SOL_TLS, TLS_RX, info, len) < 0)
		ret = -errno;
	OPENSSL_cleanse(info, sizeof(info));
	ktls_keyblock_wipe(&kernel);
	ktls_keyblock_wipe(&ours);
	if (ret)
		return rx_failed(c, ret, "TLS_RX resume after an early pause");
	d->st.early_pauses++;
	d->early_pause_due = false;
	return 0;
}

/* The kernel answered EKEYEXPIRED: 1 when the bridge set the key the
 * kernel waits for, 0 when it cannot explain the pause, -errno when the
 * connection ended. */
static int rx_paused(struct ktls_conn *c, int err)
{
	struct ktls_dir *d = &c->rx;
	int ret;

	if (err != EKEYEXPIRED || d->st.version != KTLS_TLS13)
		return 0;
	if (d->ku_unkeyed || d->hs_unwalked)
		ret = rx_set_next(c);
	else if (d->early_pause_due && d->last_type == KTLS_CT_HANDSHAKE)
		ret = rx_set_again(c);
	else if (d->ahead_unreported)
		ret = 0;	/* a read issued before the key went in ahead */
	else
		return 0;
	d->ahead_unreported = false;
	d->st.key_expired++;
	return ret ? ret : 1;
}

/* Keys set while draining are not the connection's: its status stays as
 * it was when it ended.  1: a key was set; 0: none was due; -EKEYEXPIRED:
 * none could be (stop reading). */
static int drain_keys(struct ktls_conn *c, int err, int nku, bool ku_first)
{
	struct ktls_dir *d = &c->rx;
	struct ktls_dir_status keep = d->st;
	int ret = 0;

	if (err == EKEYEXPIRED && d->ku_unkeyed)
		ret = rx_set_next(c) ? -1 : 1;
	else if (err == EKEYEXPIRED && d->early_pause_due)
		ret = rx_set_again(c) ? -1 : 1;
	else if (err == EKEYEXPIRED && d->ahead_unreported)
		ret = 1;	/* answered already: read again */
	else if (err)
		ret = -1;
	else if (follow_staged(c, nku))
		ret = -1;
	else if (d->ku_unkeyed && !ku_first)
		ret = rx_set_next(c) ? -1 : 1;
	d->st = keep;
	d->ahead_unreported = ret == 1 && !err;
	return ret < 0 ? -EKEYEXPIRED : ret;
}

/* c->drain_follow (internal.h says what it answers) */
static int drain_follow(struct ktls_conn *c, int err, const uint8_t *p, size_t len)
{
	struct ktls_dir *d = &c->rx;
	struct ktls_hs_seen seen;
	bool ku_first = len && p[0] == KTLS_HS_KEY_UPDATE;

	/* after a key the kernel refused, no more are tried */
	if (d->st.version != KTLS_TLS13 || d->st.mode == KTLS_MODE_USERSPACE || !d->secret.len ||
	    d->st.reason == KTLS_R_REKEY_FAILED)
		return err ? -err : 0;
	if (err)
		return err == EKEYEXPIRED ? drain_keys(c, err, 0, false) : -err;
	memset(&seen, 0, sizeof(seen));
	hs_walk(&d->walk, p, len, &seen);
	d->ku_unkeyed += (uint32_t)seen.keyupdates;
	d->early_pause_due = ku_first && !seen.keyupdates;
	if (seen.alert)
		return -EPROTO;	/* malformed: the walk cannot follow the keys */
	return drain_keys(c, 0, seen.keyupdates, ku_first);
}

int ktls_key_reoffered(struct ktls_conn *c, bool tx, const struct ktls_keyblock *kb)
{
	struct ktls_dir *d = tx ? &c->tx : &c->rx;
	struct ktls_keyblock cur, next;
	int ret, which = 0;

	if (kb->version != KTLS_TLS13 || d->st.version != KTLS_TLS13)
		return 0;	/* TLS 1.2 has no re-key: keep what the kernel has */
	if (!d->secret.len) {
		ktls_conn_fatal(c, tx, KTLS_R_KEY_MISMATCH, ENOKEY, ALERT_INTERNAL_ERROR,
				"re-offered key (no key-log secret to check it)");
		return 0;
	}
	if (tx && d->lib_behind) {
		/* libssl offers its own count of generations, behind ours by
		 * the KeyUpdates the bridge sent itself: check against that */
		ret = ktls_secret_keyblock(&d->lib, d->st.cipher, &cur);
		which = !ret && same_keys(kb, &cur) ? 1 : 0;
		ktls_keyblock_wipe(&cur);
		if (which)
			return 1;
		ktls_conn_fatal(c, tx, KTLS_R_KEY_MISMATCH, ret ? -ret : 0,
				ALERT_INTERNAL_ERROR, "TLS_TX re-offer");
		return 0;
	}
	ret = ktls_secret_keyblock(&d->secret, d->st.cipher, &cur);
	if (!ret)
		ret = ktls_secret_peek_next(&d->secret, d->st.cipher, &next);
	if (!ret)
		which = same_keys(kb, &cur) ? 1 : same_keys(kb, &next) ? 2 : 0;
	ktls_keyblock_wipe(&cur);
	ktls_keyblock_wipe(&next);
	if (which == 1)
		return 1;	/* the kernel holds it already (staged or re-keyed) */
	if (which == 2 && !tx)
		return rx_set_next(c) == 0;
	/* TX: the bridge moves the kernel when the KeyUpdate goes out, so a
	 * next-generation key from libssl means we missed one. */
	ktls_conn_fatal(c, tx, KTLS_R_KEY_MISMATCH, ret ? -ret : 0, ALERT_INTERNAL_ERROR,
			tx ? "TLS_TX re-offer" : "TLS_RX re-offer");
	return 0;
}

/* recvmsg failed for good.  In hand-off mode the bridge tells the peer
 * why (alert.c has the table); in transparent mode libssl 3.2+ does, from
 * the errno the BIO read leaves, and the bridge only makes sure that its
 * alert can be sent.  A pause for a key the bridge saw no KeyUpdate for
 * ends the connection in both modes: installing a key the peer never
 * moved to would only turn it into bad_record_mac later. */
static ssize_t rx_kernel_error(struct ktls_conn *c, int err)
{
	const struct ktls_rx_alert *a = ktls_rx_alert_for(err);
	char what[96];

	c->rx_kerr = err;
	if (!c->dead && (c->handoff || err == EKEYEXPIRED)) {
		snprintf(what, sizeof(what), "TLS_RX: %s", a->why);
		ktls_conn_fatal(c, false, KTLS_R_PROTOCOL, err, a->desc, what);
	}
	return -err;
}

/* A record the kernel delivered, to the bridge's read or the
 * application's: checked and counted. */
static ssize_t rx_delivered(struct ktls_conn *c, const void *buf, ssize_t n, uint8_t type,
			    bool run_hs)
{
	struct ktls_hs_seen seen;
	int ret;

	c->rx.last_type = type;
	c->rx.ahead_unreported = false;	/* the kernel reads on */
	if (type == KTLS_CT_APPDATA)
		c->rx.ku_run = 0;
	if (type != KTLS_CT_HANDSHAKE && c->rx.walk.have) {
		/* RFC 8446 5.1: nothing between the records of a handshake message */
		ktls_conn_fatal(c, false, KTLS_R_PROTOCOL, EPROTO, ALERT_UNEXPECTED_MESSAGE,
				"record inside a split handshake message");
		return -EPROTO;
	}
	if (type == KTLS_CT_HANDSHAKE && run_hs) {
		ret = ktls_rx_after_handshake(c, buf, (size_t)n, &seen);
		if (ret)
			return ret;	/* ended: the record is not handed up */
	}
	if (type == KTLS_CT_HANDSHAKE && !run_hs)
		c->rx.hs_unwalked = true;	/* ktls_conn_control walks it */
	c->rx.st.records++;
	c->rx.st.bytes += (uint64_t)n;
	return n;
}

ssize_t ktls_rx_record(struct ktls_conn *c, void *buf, size_t cap, uint8_t *type, bool run_hs)
{
	union ktls_cmsg_buf cbuf;
	struct iovec iov = { .iov_base = buf, .iov_len = cap < KTLS_REC_MAX ? cap : KTLS_REC_MAX };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b),
	};
	struct cmsghdr *cm;
	ssize_t n;
	int ret;

	if (c->rx.restage_due && c->rx.last_type == KTLS_CT_APPDATA)
		ktls_key_stage(c, false);
	for (;;) {
		n = ktls_sys->recvmsg(c->fd, &msg, 0);
		if (n < 0) {
			ret = rx_paused(c, errno);
			if (ret < 0)
				return ret;
			if (ret) {
				msg.msg_controllen = sizeof(cbuf.b);
				continue;
			}
		}
		break;
	}
	if (n < 0)
		return ktls_retryable(errno) ? -errno : rx_kernel_error(c, errno);
	if (n == 0)
		return 0;
	*type = KTLS_CT_APPDATA;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
		if (cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(unsigned char)))
			*type = *CMSG_DATA(cm);
	return rx_delivered(c, buf, n, *type, run_hs);
}

ssize_t ktls_rx_app_result(struct ktls_conn *c, ssize_t res, uint8_t type, const void *buf)
{
	int ret;

	if (res < 0) {
		int err = (int)-res;

		ret = rx_paused(c, err);
		if (ret)
			return ret < 0 ? ret : -EAGAIN;	/* keyed: read again */
		return ktls_retryable(err) ? res : rx_kernel_error(c, err);
	}
	if (res == 0)
		return 0;
	res = rx_delivered(c, buf, res, type, false);
	/* the application arms its next read when this returns */
	if (res > 0 && c->rx.restage_due && type == KTLS_CT_APPDATA)
		ktls_key_stage(c, false);
	return res;
}

void ktls_rx_installed(struct ktls_conn *c)
{
	int one = 1;

	c->drain_follow = drain_follow;
	if (!c->policy.rx_expect_no_pad || c->rx.st.version != KTLS_TLS13)
		return;
	if (ktls_sys->setsockopt(c->fd, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one, sizeof(one)))
		ktls_trace("fd %d TLS_RX_EXPECT_NO_PAD refused: %s", c->fd,
			   ktls_errno_name(errno));
}
