// SPDX-License-Identifier: MIT
/*
 * ending.c - the last record of a connection must reach the peer.
 *
 * A TCP socket closed while received data is still unread sends a reset
 * and throws away whatever it had not sent yet.  A peer that is still
 * writing when we end the connection (it sent a bad record and then data)
 * is exactly that case, so a fatal alert written just before close() is
 * often lost, and a small alert record can sit in the send queue behind
 * Nagle's algorithm until then.
 *
 * So once the bridge has handed the kernel a connection's last record (a
 * fatal alert, or close_notify):
 *
 *  1. shutdown(SHUT_WR): the record and a FIN go out now (the FIN pushes
 *     the queue out with Nagle off); nothing more can be written anyway.
 *  2. after a fatal alert, a lingering close: read and throw away what the
 *     peer still sends until its FIN, for at most KTLS_LINGER_MS and
 *     KTLS_LINGER_BYTES, so that the peer's writes keep succeeding until
 *     it has read our alert and closes.  Where the kernel decrypts, the
 *     receive key follows the peer's KeyUpdates meanwhile, as it would
 *     have before the end (c->drain_follow, set by rxkey.c): a kernel with
 *     no staged key would otherwise stop at the first.  When the receive
 *     side cannot be
 *     drained (the kernel's TLS receive path stopped on a bad record, or
 *     waits for a key it will not get), wait for the peer's FIN without
 *     reading, within the same bound: a peer still writing then fills our
 *     receive window rather than meeting a reset before it reads the alert.
 *
 * A non-blocking socket is never waited on: the bridge shuts the write
 * side and drains what is there; the caller keeps the descriptor open
 * while it waits for readability (see ktls_conn_attach(3)).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "internal.h"

int ktls_linger_ms = KTLS_LINGER_MS;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read and discard what is queued now.  1: the peer's FIN was read;
 * 0: nothing more right now; -errno: the receive side cannot be read. */
static int drain_now(struct ktls_conn *c, size_t *budget)
{
	uint8_t buf[KTLS_REC_MAX];
	union ktls_cmsg_buf cbuf;

	for (;;) {
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		/* with kernel receive, control records need the cmsg room */
		struct msghdr msg = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b),
		};
		ssize_t n = recvmsg(c->fd, &msg, MSG_DONTWAIT);
		struct cmsghdr *cm;
		int ret;

		if (n == 0)
			return 1;
		if (n < 0) {
			int e = errno;

			if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR)
				return 0;
			ret = c->drain_follow ? c->drain_follow(c, e, NULL, 0) : 0;
			if (ret > 0)
				continue;
			return ret ? ret : -e;
		}
		c->linger_bytes += (uint64_t)n;
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
			if (cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE &&
			    *CMSG_DATA(cm) == KTLS_CT_HANDSHAKE && c->drain_follow) {
				ret = c->drain_follow(c, 0, buf, (size_t)n);
				if (ret < 0)
					return ret;
			}
		if ((size_t)n >= *budget) {
			*budget = 0;
			return -ENOBUFS;
		}
		*budget -= (size_t)n;
	}
}

/* Has the peer acknowledged all we sent (SIOCOUTQ counts unacked bytes)? */
static bool all_acked(int fd)
{
	int outq = 0;

	return ioctl(fd, SIOCOUTQ, &outq) < 0 || outq == 0;
}

/* Has the peer's FIN arrived (whether or not its data was read)? */
static bool peer_fin(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP));
}

/* wait: block (in poll, whatever O_NONBLOCK says) for up to ms */
static void linger(struct ktls_conn *c, int ms, bool wait)
{
	int64_t deadline = now_ms() + ms;
	size_t budget = KTLS_LINGER_BYTES;
	bool can_read = true;

	for (;;) {
		int64_t left;
		int ret;

		if (can_read) {
			ret = drain_now(c, &budget);
			if (ret == 1) {
				c->linger_end = KTLS_LINGER_PEER_FIN;
				return;
			}
			if (ret < 0) {
				ktls_trace("fd %d linger: stops reading (%s)", c->fd,
					   ktls_errno_name(ret));
				can_read = false;
			}
		}
		if (!can_read && peer_fin(c->fd)) {
			c->linger_end = KTLS_LINGER_PEER_FIN;
			return;
		}
		left = deadline - now_ms();
		if (!wait || left <= 0) {
			c->linger_end = !can_read && all_acked(c->fd) ? KTLS_LINGER_ACKED :
					KTLS_LINGER_TIMEOUT;
			return;
		}
		if (can_read) {
			struct pollfd p = { .fd = c->fd, .events = POLLIN | POLLRDHUP };

			if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
				can_read = false;
		} else {
			/* readability says nothing here (the records wait for a key,
			 * or the kernel stopped): look for the peer's FIN again soon */
			struct timespec ts = { 0, 2 * 1000 * 1000 };

			nanosleep(&ts, NULL);
		}
	}
}

static bool is_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_NONBLOCK);
}

static void trace_end(const struct ktls_conn *c)
{
	ktls_trace("fd %d ended after a fatal alert: %s, %llu bytes read and dropped", c->fd,
		   c->linger_end == KTLS_LINGER_PEER_FIN ? "the peer closed" :
		   c->linger_end == KTLS_LINGER_ACKED ? "the peer has the alert" : "time limit",
		   (unsigned long long)c->linger_bytes);
}

void ktls_conn_end(struct ktls_conn *c, bool fatal)
{
	if (c->fd < 0)
		return;
	if (!c->wr_shut) {
		c->wr_shut = true;
		shutdown(c->fd, SHUT_WR);
	}
	if (!fatal || c->lingered)
		return;
	c->lingered = true;
	linger(c, ktls_linger_ms, !is_nonblocking(c->fd));
	trace_end(c);
}

int ktls_linger_now(struct ktls_conn *c, int timeout_ms)
{
	if (c->fd < 0)
		return -EINVAL;
	if (!c->lingered)
		return -ENOTCONN;	/* no fatal alert went out: nothing to wait for */
	if (c->linger_end != KTLS_LINGER_PEER_FIN) {
		linger(c, timeout_ms < 0 ? ktls_linger_ms : timeout_ms, true);
		trace_end(c);
	}
	return c->linger_end == KTLS_LINGER_PEER_FIN;
}

ssize_t ktls_send_alert(struct ktls_conn *c, uint8_t level, uint8_t desc)
{
	const uint8_t rec[2] = { level, desc };
	ssize_t n;

	n = ktls_send_ctrl(c, KTLS_CT_ALERT, rec, sizeof(rec));
	if (n == (ssize_t)sizeof(rec))
		c->tx.st.records++;
	return n;
}

void ktls_conn_fatal(struct ktls_conn *c, bool tx, enum ktls_reason r, int err,
		     uint8_t alert, const char *what)
{
	struct ktls_dir *d = tx ? &c->tx : &c->rx;
	ssize_t n = -1;

	/* nothing goes out behind our close_notify (RFC 8446 6.1) */
	if (alert && !c->dead && !c->closed && c->tx.st.mode != KTLS_MODE_USERSPACE)
		n = ktls_send_alert(c, ALERT_LEVEL_FATAL, alert);
	ktls_dir_note(d, r, err, what);
	c->dead = true;
	ktls_trace("fd %d connection ended: %s (%s), alert %u %s", c->fd, ktls_reason_code(r),
		   d->st.detail, alert, n == 2 ? "sent" : n == 0 ? "owed" : "not sent");
	/* owed: the application sends it, and the end follows its report
	 * (ktls_conn_owed_sent) */
	if (n != 0)
		ktls_conn_end(c, n == 2);
}
