// SPDX-License-Identifier: MIT
/*
 * uring.c - ktls-serve --uring: many connections on one io_uring ring,
 * each handed off to the kernel after its handshake.
 *
 * A connection goes: accept (ring) -> TLS handshake through libssl on the
 * non-blocking socket -> ktls_conn_handoff() -> its bytes move with ring
 * operations only.  The handshake is driven by the ring's POLL_ADD: libssl
 * must be called when the socket is ready, a handshake is a few small
 * flights, and a poll keeps it in the one loop (no thread hands
 * connections over, no lock).  After the hand-off:
 *   receive  RECVMSG with room for the TLS_GET_RECORD_TYPE cmsg; every
 *            result goes to ktls_conn_received() (records checked and
 *            counted, control records run, EKEYEXPIRED answered, errors
 *            answered with their alert), then the receive is re-armed;
 *   echo     SEND of what came, after ktls_conn_send(ssl, NULL, 0) (a
 *            KeyUpdate owed to the peer, the bridge's own at the limit);
 *   --root   the request by RECVMSG, the head by SEND, the file by SPLICE
 *            file -> pipe -> socket, each piece after
 *            ktls_conn_send(ssl, NULL, 0); then the next request on the
 *            same connection (HTTP keep-alive) unless it asked to close.
 *   control  the records the bridge decides (KeyUpdate replies, its own
 *            KeyUpdates, the fatal alert that ends a connection,
 *            close_notify) go out as SENDMSG with a TLS_SET_RECORD_TYPE
 *            cmsg: after ktls_conn_set_owed() the bridge writes nothing
 *            itself and queues them; after every bridge call and before
 *            every data send the ring takes them from ktls_conn_owed() one
 *            at a time and reports each with ktls_conn_owed_sent().  The
 *            data send is submitted only after that report, not linked
 *            behind the SENDMSG: on a kernel without staged keys the new
 *            TX key goes in only inside the report (ktls_conn_owed(3)).
 * One operation is in flight per connection at a time (with --multishot,
 * the armed receive besides): its state says what completes next (a
 * connection waiting for its next request or for the peer's close_notify
 * adds a linked timeout: --timeout).  Each connection counts what it has
 * in flight, so an ended one is freed only after the last completion.  A
 * connection whose hand-off is refused is served through libssl
 * (userspace records, the reason printed), driven by polls.
 * Zero-copy send (SEND_ZC) is not used: the kernel's TLS layer does not
 * take it.  The first hand-off asks once (a SEND_ZC of no bytes, which a
 * kernel that refuses it refuses before looking at the length) and the
 * server prints the answer.
 *
 * --threads N: N threads, each with a ring of its own that accepts on the
 * one listening socket (the kernel hands each new connection to one of
 * them); a connection stays on its ring.  They share only the counters.
 * Reaching --max-conns, a ring shuts the listening socket down, which ends
 * the accepts the other rings have pending; a connection one of them
 * accepted past the limit in that moment is closed unserved (said).
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>

#include "uring.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TLS_SET_RECORD_TYPE
#define TLS_SET_RECORD_TYPE 1
#endif
#ifndef TLS_GET_RECORD_TYPE
#define TLS_GET_RECORD_TYPE 2
#endif
#define CT_HANDSHAKE 22
#define CT_APPDATA 23
#define REC_MAX 16384
#define PIPE_WANT (256 * 1024)
#define LINGER_MS 2000			/* as long as the bridge's own lingering close */
#define LINGER_TICK_NS (5 * 1000 * 1000)
#define MS_BUFS 256			/* provided buffers per ring (a power of two) */
#define MS_BUFSZ (sizeof(struct io_uring_recvmsg_out) + CMSG_SPACE(sizeof(unsigned char)) + \
		  REC_MAX)
#define MS_TAG 1UL			/* user_data bit: a connection's multishot receive */
#define MS_WAIT_NS (1000 * 1000)	/* no buffer free: look again after 1 ms */

enum ustate {
	U_NONE,		/* nothing but a multishot receive */
	U_HS,		/* a poll for libssl's handshake */
	U_RECV,		/* RECVMSG */
	U_PAY,		/* a poll for room for an owed KeyUpdate */
	U_SEND,		/* SEND of out[out_off..out_len) */
	U_SPLICE_IN,	/* file -> pipe */
	U_SPLICE_OUT,	/* pipe -> socket */
	U_LIB,		/* a poll for libssl (hand-off refused) */
	U_SHUT,		/* a poll for room for our close_notify */
	U_LINGER,	/* a tick after our fatal alert: the peer may still write */
	U_MS_WAIT,	/* a tick: the multishot receive ran out of buffers */
	U_CTRL,		/* SENDMSG of a record the bridge owes the peer */
};

/* what comes after a SEND (or a paid KeyUpdate) */
enum unext { N_RECV, N_FILE, N_END };

struct userve;

struct uconn {
	const struct uring_opts *o;
	SSL *ssl;
	int fd;
	long id;
	enum ustate st;
	enum unext next;
	int (*after_pay)(struct userve *s, struct uconn *c);
	bool ho, closing, failed;
	/* records the bridge owes the peer (ktls_conn_owed), sent by the
	 * ring: one SENDMSG at a time, then after_ctl */
	bool owes;
	int (*after_ctl)(struct userve *s, struct uconn *c);
	unsigned char ctl[KTLS_OWED_MAX];
	struct msghdr ctl_msg;
	struct iovec ctl_iov;
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(unsigned char))];
	} ctl_cbuf;
	int ctl_type;
	long ctl_ku, ctl_alerts;	/* sent by the ring: KeyUpdates, alerts */
	int rcv_r, rcv_type;		/* a receive's report, while owed records go */
	int rcv_res;
	int ms_end;			/* --multishot: ended (<0), once idle */
	char why[96];
	struct msghdr msg;
	struct iovec iov;
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(unsigned char))];
	} cbuf;
	unsigned char buf[REC_MAX];
	const unsigned char *out;
	size_t out_len, out_off;
	char req[4096];
	size_t req_len, req_head;	/* bytes in req; the head's, once complete */
	bool keep;			/* answer the next request on this connection */
	long requests;			/* answered completely */
	char head[256];
	int file, pipe[2];
	size_t pipe_cap, in_pipe;
	off_t file_off, file_size;
	long records;
	uint64_t bytes, kus;
	EVP_MD_CTX *md;
	struct __kernel_timespec tick;	/* U_LINGER */
	int64_t linger_until;		/* ms, CLOCK_MONOTONIC */
	int ended;			/* what ended the connection (dying) */
	int inflight;			/* operations whose last completion is due */
	bool dying;			/* ended: waiting for those, then linger/free */
	/* --multishot: one RECVMSG stays armed (ms_armed); the records it
	 * delivered wait in ring buffers (msq) until their echo went out */
	bool ms, ms_armed, ms_cancelled;
	struct msghdr ms_msg;
	struct msq { unsigned short bid; unsigned int off, len; } *q;
	unsigned int q_head, q_n;
};

/* What the rings (threads) share. */
struct ushared {
	atomic_long accepted, ended, failed, live, peak, past_limit;
};

struct userve {
	struct io_uring ring;
	struct __kernel_timespec idle;	/* --timeout, for linked timeouts */
	long idle_tag;			/* user_data of those timeouts (and cancels) */
	long zc_tag;			/* user_data of the SEND_ZC question */
	/* --multishot: the provided buffers (group 0) of this ring */
	struct io_uring_buf_ring *br;
	unsigned char *bufs;
	bool ms;			/* in use: the kernel took the buffer ring */
	SSL_CTX *ctx;
	const struct uring_opts *o;
	struct ushared *g;
	int lfd, index, ret;
	bool accepting;
	long live;			/* this ring's connections */
	pthread_t thread;
};

static struct io_uring_sqe *sqe_get(struct userve *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

	if (!sqe) {	/* the queue is full: hand it to the kernel first */
		io_uring_submit(&s->ring);
		sqe = io_uring_get_sqe(&s->ring);
	}
	return sqe;
}

/* Waiting for the peer only (the next request, or its close_notify after
 * ours)?  Such a wait ends after --timeout seconds. */
static bool idle_wait(const struct uconn *c)
{
	return c->o->timeout > 0 &&
	       (c->closing || (c->o->root && c->requests && !c->req_len));
}

/* Two entries in a row (an operation and its linked timeout): make room
 * first, so that a submit cannot fall between them. */
static struct io_uring_sqe *sqe_get_pair(struct userve *s, bool pair)
{
	if (pair && io_uring_sq_space_left(&s->ring) < 2)
		io_uring_submit(&s->ring);
	return sqe_get(s);
}

/* After the operation in sqe, when the connection waits for the peer only:
 * a linked timeout that cancels it (the operation then completes with
 * -ECANCELED; the timeout's own completion is ignored). */
static void link_idle(struct userve *s, struct uconn *c, struct io_uring_sqe *sqe)
{
	struct io_uring_sqe *t;

	if (!idle_wait(c))
		return;
	t = io_uring_get_sqe(&s->ring);	/* room was made by sqe_get_pair */
	if (!t)
		return;
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_prep_link_timeout(t, &s->idle, 0);
	io_uring_sqe_set_data(t, &s->idle_tag);
}

static void ms_give_back(struct userve *s, unsigned short bid);
static int arm_ms(struct userve *s, struct uconn *c);

/* An operation of connection c: counted until its last completion. */
static void set_conn(struct io_uring_sqe *sqe, struct uconn *c)
{
	c->inflight++;
	io_uring_sqe_set_data(sqe, c);
}

static int arm_accept(struct userve *s)
{
	struct io_uring_sqe *sqe = sqe_get(s);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_accept(sqe, s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, NULL);
	return 0;
}

/* The first failure is the connection's: "what: detail" (detail may be
 * NULL). */
static void fail(struct uconn *c, const char *what, const char *detail)
{
	if (!c->failed)
		snprintf(c->why, sizeof(c->why), "%s%s%s", what, detail ? ": " : "",
			 detail ? detail : "");
	c->failed = true;
}

static int arm_poll(struct userve *s, struct uconn *c, enum ustate st, unsigned int events)
{
	bool idle = events == POLLIN && idle_wait(c);
	struct io_uring_sqe *sqe = sqe_get_pair(s, idle);

	if (!sqe)
		return -EBUSY;
	c->st = st;
	io_uring_prep_poll_add(sqe, c->fd, events);
	set_conn(sqe, c);
	if (idle)
		link_idle(s, c, sqe);
	return 0;
}

static int arm_recv(struct userve *s, struct uconn *c)
{
	struct io_uring_sqe *sqe = sqe_get_pair(s, idle_wait(c));

	if (!sqe)
		return -EBUSY;
	c->iov.iov_base = c->buf;
	c->iov.iov_len = sizeof(c->buf);
	memset(&c->msg, 0, sizeof(c->msg));
	c->msg.msg_iov = &c->iov;
	c->msg.msg_iovlen = 1;
	c->msg.msg_control = c->cbuf.b;
	c->msg.msg_controllen = sizeof(c->cbuf.b);
	c->st = U_RECV;
	io_uring_prep_recvmsg(sqe, c->fd, &c->msg, 0);
	set_conn(sqe, c);
	link_idle(s, c, sqe);
	return 0;
}

static int arm_send(struct userve *s, struct uconn *c)
{
	struct io_uring_sqe *sqe = sqe_get(s);

	if (!sqe)
		return -EBUSY;
	c->st = U_SEND;
	io_uring_prep_send(sqe, c->fd, c->out + c->out_off, c->out_len - c->out_off,
			   MSG_NOSIGNAL);
	set_conn(sqe, c);
	return 0;
}

/* One record the bridge owes, as a record of its type through the kernel. */
static int arm_ctl(struct userve *s, struct uconn *c, size_t len, int type)
{
	struct io_uring_sqe *sqe = sqe_get(s);
	struct cmsghdr *cm;

	if (!sqe)
		return -EBUSY;
	c->ctl_iov.iov_base = c->ctl;
	c->ctl_iov.iov_len = len;
	memset(&c->ctl_msg, 0, sizeof(c->ctl_msg));
	memset(&c->ctl_cbuf, 0, sizeof(c->ctl_cbuf));
	c->ctl_msg.msg_iov = &c->ctl_iov;
	c->ctl_msg.msg_iovlen = 1;
	c->ctl_msg.msg_control = c->ctl_cbuf.b;
	c->ctl_msg.msg_controllen = sizeof(c->ctl_cbuf.b);
	cm = CMSG_FIRSTHDR(&c->ctl_msg);
	cm->cmsg_level = SOL_TLS;
	cm->cmsg_type = TLS_SET_RECORD_TYPE;
	cm->cmsg_len = CMSG_LEN(sizeof(unsigned char));
	*CMSG_DATA(cm) = (unsigned char)type;
	c->ctl_type = type;
	c->st = U_CTRL;
	io_uring_prep_sendmsg(sqe, c->fd, &c->ctl_msg, MSG_NOSIGNAL);
	set_conn(sqe, c);
	return 0;
}

/* What the bridge owes the peer goes out first, one record at a time;
 * then `then`.  0 armed something, -errno the connection failed. */
static int owe_then(struct userve *s, struct uconn *c, int (*then)(struct userve *, struct uconn *))
{
	ssize_t n;
	int type;

	if (!c->owes)
		return then(s, c);
	n = ktls_conn_owed(c->ssl, c->ctl, sizeof(c->ctl), &type);
	if (n < 0) {
		fail(c, "ktls_conn_owed", strerror((int)-n));
		return (int)n;
	}
	if (!n)
		return then(s, c);
	c->after_ctl = then;
	return arm_ctl(s, c, (size_t)n, type);
}

/* A record the bridge owed went out (or not): the bridge acts on it, and
 * the next one goes, or what waited for them. */
static int on_ctl(struct userve *s, struct uconn *c, int res)
{
	int r = ktls_conn_owed_sent(c->ssl, res);

	c->st = U_NONE;
	if (r < 0) {
		fail(c, "a control record was not sent", strerror(-r));
		return r;
	}
	if (res > 0 && (size_t)res == c->ctl_iov.iov_len) {
		if (c->ctl_type == CT_HANDSHAKE)
			c->ctl_ku++;
		else
			c->ctl_alerts++;
	}
	return owe_then(s, c, c->after_ctl);
}

static int paid(struct userve *s, struct uconn *c)
{
	return c->after_pay(s, c);
}

/* Before bytes of ours go out on the socket: what the bridge owes the
 * peer first.  0 armed something, -errno the connection failed. */
static int pay_then(struct userve *s, struct uconn *c, int (*then)(struct userve *, struct uconn *))
{
	ssize_t r = ktls_conn_send(c->ssl, NULL, 0);

	if (c->owes && (r == 0 || r == -EAGAIN)) {
		/* -EAGAIN: the bridge's queue was full; what did not fit
		 * waits in the bridge and comes with the queue */
		c->after_pay = then;
		return owe_then(s, c, paid);
	}
	if (r == -EAGAIN) {
		c->after_pay = then;
		return arm_poll(s, c, U_PAY, POLLOUT);
	}
	if (r < 0) {
		fail(c, "ktls_conn_send", strerror((int)-r));
		return (int)r;
	}
	return then(s, c);
}

static int splice_in(struct userve *s, struct uconn *c)
{
	struct io_uring_sqe *sqe = sqe_get(s);
	off_t left = c->file_size - c->file_off;

	if (!sqe)
		return -EBUSY;
	c->st = U_SPLICE_IN;
	io_uring_prep_splice(sqe, c->file, c->file_off, c->pipe[1], -1,
			     (unsigned int)(left < (off_t)c->pipe_cap ? left : (off_t)c->pipe_cap), 0);
	set_conn(sqe, c);
	return 0;
}

static int splice_out(struct userve *s, struct uconn *c)
{
	struct io_uring_sqe *sqe = sqe_get(s);

	if (!sqe)
		return -EBUSY;
	c->st = U_SPLICE_OUT;
	io_uring_prep_splice(sqe, c->pipe[0], -1, c->fd, -1, (unsigned int)c->in_pipe, 0);
	set_conn(sqe, c);
	return 0;
}

/* The answer to the request in c->req: head filled, and c->next N_FILE
 * (c->file open, c->file_size set) or N_END (an error status). */
static void prepare_response(struct uconn *c)
{
	const char *err;

	c->keep = app_http_keep_alive(c->req);
	c->file = app_http_answer(c->o->root, c->req, c->keep, c->head, sizeof(c->head),
				  &c->file_size, &err);
	c->file_off = 0;
	c->next = c->file >= 0 ? N_FILE : N_END;
	if (err) {
		fail(c, "answered", err);
		c->keep = false;
	}
	c->out = (const unsigned char *)c->head;
	c->out_off = 0;
	c->out_len = strlen(c->head);
}

/* Is the head in c->req complete (or too long to be)?  Sets req_head. */
static bool request_complete(struct uconn *c)
{
	char *e = strstr(c->req, "\r\n\r\n");

	if (e)
		c->req_head = (size_t)(e + 4 - c->req);
	else if ((e = strstr(c->req, "\n\n")))
		c->req_head = (size_t)(e + 2 - c->req);
	else if (c->req_len == sizeof(c->req) - 1)
		c->req_head = c->req_len;
	else
		return false;
	return true;
}

/* Request bytes in; true once the head is complete (or too long).  Bytes
 * past the head (a pipelined request) stay for the next answer. */
static bool request_add(struct uconn *c, const unsigned char *p, size_t n)
{
	size_t room = sizeof(c->req) - 1 - c->req_len;

	if (n > room)
		n = room;
	memcpy(c->req + c->req_len, p, n);
	c->req_len += n;
	c->req[c->req_len] = 0;
	return request_complete(c);
}

/* Would the peer's close now cut an answer short?  Echo: never; files:
 * before the first request is complete or within one. */
static bool close_cuts_short(const struct uconn *c)
{
	return c->o->root && (!c->requests || c->req_len);
}

/* An answer is out completely: keep what followed its request, drop the
 * file.  True if the connection goes on (keep-alive). */
static bool request_done(struct uconn *c)
{
	c->requests++;
	if (c->file >= 0) {
		c->bytes += (uint64_t)c->file_size;
		close(c->file);
		c->file = -1;
	}
	if (!c->keep)
		return false;
	c->req_len -= c->req_head;
	memmove(c->req, c->req + c->req_head, c->req_len);
	c->req[c->req_len] = 0;
	c->req_head = 0;
	c->next = N_RECV;
	return true;
}

static int ring_response(struct userve *s, struct uconn *c)
{
	prepare_response(c);
	if (c->next == N_FILE && c->pipe[0] < 0) {
		int cap;

		if (pipe2(c->pipe, O_CLOEXEC) < 0) {
			c->pipe[0] = c->pipe[1] = -1;
			fail(c, "pipe", strerror(errno));
			return -EIO;
		}
		/* pieces of 16 records; the default pipe (64 KiB) works too */
		fcntl(c->pipe[1], F_SETPIPE_SZ, PIPE_WANT);
		cap = fcntl(c->pipe[1], F_GETPIPE_SZ);
		c->pipe_cap = cap > 0 ? (size_t)cap : 65536;
	}
	return pay_then(s, c, arm_send);
}

static int end_cleanly(struct userve *s, struct uconn *c);
static int closing_recv(struct userve *s, struct uconn *c);

/* The next piece of the file, after what the bridge owes the peer; once
 * the whole file is out, the next request (keep-alive) or the end. */
static int next_piece(struct userve *s, struct uconn *c)
{
	if (c->file_off < c->file_size)
		return pay_then(s, c, splice_in);
	if (!request_done(c))
		return end_cleanly(s, c);
	return request_complete(c) ? ring_response(s, c) : arm_recv(s, c);
}

/* Our close_notify, then read until the peer's answer or EOF (unread data
 * would make close() reset the connection). */
static int end_cleanly(struct userve *s, struct uconn *c)
{
	int r = ktls_conn_shutdown(c->ssl);

	if (r == -EAGAIN)	/* the socket is full of the file's records */
		return arm_poll(s, c, U_SHUT, POLLOUT);
	if (r && r != -EPIPE)
		fail(c, "ktls_conn_shutdown", strerror(-r));
	return owe_then(s, c, closing_recv);	/* our close_notify, when owed */
}

static int closing_recv(struct userve *s, struct uconn *c)
{
	c->closing = true;
	return arm_recv(s, c);
}

/* ------------------------------------------------------------------ */
/* Through libssl: the hand-off was refused                             */
/* ------------------------------------------------------------------ */

/* Echo, or the request then the file, by SSL_read/SSL_write on the
 * non-blocking socket.  0 a poll is armed, 1 ended, -1 failed. */
static int lib_step(struct userve *s, struct uconn *c)
{
	for (;;) {
		int n, e;

		if (c->out_off < c->out_len) {
			n = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len - c->out_off));
			if (n <= 0)
				goto wait;
			c->out_off += (size_t)n;
			continue;
		}
		if (c->o->root && c->next == N_FILE) {
			ssize_t r = pread(c->file, c->buf, sizeof(c->buf), c->file_off);

			if (r < 0) {
				fail(c, "reading the file", strerror(errno));
				return -1;
			}
			if (r > 0) {
				c->file_off += r;
				c->out = c->buf;
				c->out_len = (size_t)r;
				c->out_off = 0;
				continue;
			}
			if (!request_done(c))
				c->next = N_END;
			else if (request_complete(c))
				prepare_response(c);
			continue;
		}
		if (c->next == N_END) {
			SSL_shutdown(c->ssl);
			return c->failed ? -1 : 1;
		}
		n = SSL_read(c->ssl, c->buf, sizeof(c->buf));
		if (n <= 0)
			goto wait;
		if (c->o->root) {
			if (request_add(c, c->buf, (size_t)n))
				prepare_response(c);
			continue;
		}
		EVP_DigestUpdate(c->md, c->buf, (size_t)n);
		c->bytes += (uint64_t)n;
		c->out = c->buf;
		c->out_len = (size_t)n;
		c->out_off = 0;
		continue;
wait:
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return arm_poll(s, c, U_LIB, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT) ?
				       -1 : 0;
		if (e == SSL_ERROR_ZERO_RETURN && !close_cuts_short(c)) {
			SSL_shutdown(c->ssl);
			return 1;
		}
		fail(c, e == SSL_ERROR_ZERO_RETURN ? "the peer closed before the answer" :
						     "libssl failed", NULL);
		app_ssl_errors(c->o->prog, "SSL_read/SSL_write");
		return -1;
	}
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */
/* ------------------------------------------------------------------ */

static void conn_report(struct userve *s, struct uconn *c)
{
	const struct uring_opts *o = c->o;
	char hex[65] = "";

	if (!o->root)
		app_sha256_hex(c->md, hex);
	if (o->verbose) {
		flockfile(stderr);	/* the lines of one connection together */
		fprintf(stderr, "%s: ring conn %ld: %s %s, %s %llu bytes%s%s%s\n", o->prog, c->id,
			SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
			o->root ? "sent" : "echoed", (unsigned long long)c->bytes,
			c->ho ? " (handed off)" : " (through libssl)", c->failed ? ": " : "",
			c->failed ? c->why : "");
		app_print_status(stderr, "  ", c->ssl);
		funlockfile(stderr);
	}
	if (o->json) {
		printf("{\"conn\":%ld,\"ok\":%s,\"error\":\"%s\",\"ring\":true,\"thread\":%d,"
		       "\"protocol\":\"%s\",\"cipher\":\"%s\",\"bytes\":%llu,"
		       "\"sha256_in\":\"%s\",\"keyupdates_sent\":%llu,\"handoff\":%s,"
		       "\"splice\":%s,\"requests\":%ld,\"multishot\":%s,"
		       "\"ring_ctl\":{\"keyupdates\":%ld,\"alerts\":%ld},\"status\":%s}\n",
		       c->id, c->failed ? "false" : "true", c->failed ? c->why : "", s->index,
		       SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
		       (unsigned long long)c->bytes, hex, (unsigned long long)c->kus,
		       c->ho ? "true" : "false", c->ho && o->root && c->pipe[0] >= 0 ? "true" : "false",
		       c->requests, c->ms ? "true" : "false", c->ctl_ku, c->ctl_alerts,
		       app_status_json(c->ssl));
		fflush(stdout);
	}
	s->g->ended++;
	if (c->failed)
		s->g->failed++;
}

static void conn_free(struct userve *s, struct uconn *c)
{
	conn_report(s, c);
	ERR_clear_error();
	SSL_free(c->ssl);
	EVP_MD_CTX_free(c->md);
	close(c->fd);
	if (c->file >= 0)
		close(c->file);
	if (c->pipe[0] >= 0) {
		close(c->pipe[0]);
		close(c->pipe[1]);
	}
	for (; c->q_n; c->q_n--, c->q_head = (c->q_head + 1) % MS_BUFS)
		ms_give_back(s, c->q[c->q_head].bid);
	free(c->q);
	free(c);
	s->live--;
	s->g->live--;
}

static struct uconn *conn_new(struct userve *s, int fd, long id)
{
	struct uconn *c = calloc(1, sizeof(*c));
	long live, peak;

	if (!c)
		return NULL;
	c->o = s->o;
	c->fd = fd;
	c->file = c->pipe[0] = c->pipe[1] = -1;
	c->id = id;
	c->ssl = SSL_new(s->ctx);
	c->md = EVP_MD_CTX_new();
	if (!c->ssl || !c->md || !EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) ||
	    app_attach(c->ssl, fd, s->o->app, s->o->prog)) {
		SSL_free(c->ssl);
		EVP_MD_CTX_free(c->md);
		free(c);
		return NULL;
	}
	s->live++;
	live = ++s->g->live;
	peak = atomic_load(&s->g->peak);
	while (live > peak && !atomic_compare_exchange_weak(&s->g->peak, &peak, live))
		;
	return c;
}

/* Once per process, on the first handed-off socket: does the kernel take
 * a zero-copy send on a kTLS socket?  The answer is printed (zc_answer);
 * the server never uses it either way. */
static atomic_int zc_asked;

static void zc_ask(struct userve *s, struct uconn *c)
{
	struct io_uring_sqe *sqe;

	if (atomic_exchange(&zc_asked, 1) || !(sqe = sqe_get(s)))
		return;
	io_uring_prep_send_zc(sqe, c->fd, NULL, 0, MSG_NOSIGNAL, 0);
	io_uring_sqe_set_data(sqe, &s->zc_tag);
}

static void zc_answer(const struct uring_opts *o, const struct io_uring_cqe *cqe)
{
	if (cqe->flags & IORING_CQE_F_NOTIF)
		return;		/* the buffer-release notice of a taken one */
	if (cqe->res < 0)
		fprintf(stderr, "%s: zero-copy send (IORING_OP_SEND_ZC) on a kTLS socket: %s; "
				"not used\n", o->prog, cqe->res == -EINVAL ?
			"this kernel has no such operation" : strerror(-cqe->res));
	else
		fprintf(stderr, "%s: zero-copy send (IORING_OP_SEND_ZC) on a kTLS socket: "
				"taken by this kernel; not used (the server sends with SEND)\n",
			o->prog);
}

/* The handshake's next step; then the hand-off.  0 armed, <0 failed. */
static int hs_step(struct userve *s, struct uconn *c)
{
	int r = SSL_accept(c->ssl), e, ret;

	if (r != 1) {
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			return arm_poll(s, c, U_HS, POLLIN);
		if (e == SSL_ERROR_WANT_WRITE)
			return arm_poll(s, c, U_HS, POLLOUT);
		fail(c, "TLS handshake failed", NULL);
		app_ssl_errors(s->o->prog, "TLS handshake");
		return -EPROTO;
	}
	ret = ktls_conn_handoff(c->ssl);
	c->ho = ret == 0;
	if (ret) {	/* nothing changed: go on through libssl and say why */
		fprintf(stderr, "%s: ring conn %ld: hand-off refused (%s); going on through libssl\n",
			s->o->prog, c->id, strerror(-ret));
		ret = lib_step(s, c);
		return ret == 0 ? 0 : ret > 0 ? -ECANCELED : -EIO;
	}
	/* the ring sends the bridge's control records (SENDMSG) */
	ret = ktls_conn_set_owed(c->ssl, 1);
	c->owes = ret == 0;
	if (ret)
		fprintf(stderr, "%s: ring conn %ld: ktls_conn_set_owed: %s; the bridge sends "
				"its control records itself\n", s->o->prog, c->id, strerror(-ret));
	zc_ask(s, c);
	if (s->ms && !s->o->root && (c->q = calloc(MS_BUFS, sizeof(*c->q)))) {
		c->ms = true;
		c->st = U_NONE;
		return arm_ms(s, c);
	}
	return arm_recv(s, c);
}

static int received(struct userve *s, struct uconn *c);

/* A receive completed on a handed-off connection. */
static int on_recv(struct userve *s, struct uconn *c, int res)
{
	struct cmsghdr *cm;
	int type = CT_APPDATA;

	if (res == -ECANCELED && idle_wait(c)) {	/* --timeout passed */
		if (c->closing)
			return -ECANCELED;	/* no answer to our close_notify */
		return end_cleanly(s, c);	/* kept alive, no next request */
	}
	if (res > 0)
		for (cm = CMSG_FIRSTHDR(&c->msg); cm; cm = CMSG_NXTHDR(&c->msg, cm))
			if (cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE)
				type = *CMSG_DATA(cm);
	c->rcv_r = ktls_conn_received(c->ssl, res, type, c->buf);
	c->rcv_res = res;
	c->rcv_type = type;
	/* what the record called for (a KeyUpdate, our close_notify, the
	 * alert that ends the connection) goes out before anything else */
	return owe_then(s, c, received);
}

/* After a receive's report and the records it made the bridge owe. */
static int received(struct userve *s, struct uconn *c)
{
	int r = c->rcv_r, res = c->rcv_res, type = c->rcv_type;

	if (r < 0) {
		if (!c->closing)
			fail(c, "the connection ended", strerror(-r));
		return r;
	}
	if (r == 1) {	/* close_notify (answered) or EOF */
		if (!c->closing && close_cuts_short(c))
			fail(c, "the peer closed before the answer", NULL);
		return -ECANCELED;
	}
	if (res <= 0 || type != CT_APPDATA || c->closing)
		return arm_recv(s, c);
	if (c->o->root)
		return request_add(c, c->buf, (size_t)res) ? ring_response(s, c) : arm_recv(s, c);
	EVP_DigestUpdate(c->md, c->buf, (size_t)res);
	c->bytes += (uint64_t)res;
	c->out = c->buf;
	c->out_len = (size_t)res;
	c->out_off = 0;
	c->next = N_RECV;
	return pay_then(s, c, arm_send);
}

/* ------------------------------------------------------------------ */
/* --multishot: one RECVMSG per connection that stays armed             */
/* ------------------------------------------------------------------ */

/*
 * The receive delivers each record (or run of data records) into one of
 * the ring's provided buffers, with the record type in its cmsg; it goes
 * to ktls_conn_received() at once, in order, and application data waits
 * in its buffer (c->q) until its echo went out, one SEND at a time.  The
 * kernel ends a multishot receive at an error (EKEYEXPIRED: the bridge
 * installs the next key in ktls_conn_received(), then it is re-armed), at
 * EOF, and when no buffer is free (ENOBUFS: re-armed once this
 * connection's echoes gave theirs back, or after a tick).
 *
 * The receive reads ahead of the bridge: several records complete in one
 * io_uring_enter before the bridge sees the first.  A receive key staged
 * for the next KeyUpdate (TLS_RX_NEXT) could then be taken by the kernel
 * at a later KeyUpdate, or after a malformed one, before the bridge ran
 * the earlier one, and its count of generations would be wrong (seen: a
 * connection with a KeyUpdate every 16 records ended by "the kernel
 * paused for a KeyUpdate that the records did not hold", and a bad
 * KeyUpdate's alert never reached the peer).  So ktls-serve --multishot
 * attaches with prestage off: the kernel pauses at every KeyUpdate, the
 * pause ends the multishot receive, and it is re-armed after the bridge
 * installed the key in order.
 */
static void ms_give_back(struct userve *s, unsigned short bid)
{
	io_uring_buf_ring_add(s->br, s->bufs + (size_t)bid * MS_BUFSZ, MS_BUFSZ, bid,
			      io_uring_buf_ring_mask(MS_BUFS), 0);
	io_uring_buf_ring_advance(s->br, 1);
}

/* The ring's buffers, registered as group 0: 0, or -errno (the kernel
 * has no provided-buffer rings: multishot receive is not used). */
static int ms_setup(struct userve *s)
{
	struct io_uring_buf_reg reg = { .ring_entries = MS_BUFS, .bgid = 0 };
	void *mem;
	int r, i;

	if (posix_memalign(&mem, 4096, MS_BUFS * sizeof(struct io_uring_buf)))
		return -ENOMEM;
	s->br = mem;
	s->bufs = malloc((size_t)MS_BUFS * MS_BUFSZ);
	reg.ring_addr = (uintptr_t)mem;
	io_uring_buf_ring_init(s->br);
	r = s->bufs ? io_uring_register_buf_ring(&s->ring, &reg, 0) : -ENOMEM;
	if (r) {
		free(s->bufs);
		free(s->br);
		s->bufs = NULL;
		s->br = NULL;
		return r;
	}
	for (i = 0; i < MS_BUFS; i++)
		io_uring_buf_ring_add(s->br, s->bufs + (size_t)i * MS_BUFSZ, MS_BUFSZ,
				      (unsigned short)i, io_uring_buf_ring_mask(MS_BUFS), i);
	io_uring_buf_ring_advance(s->br, MS_BUFS);
	s->ms = true;
	return 0;
}

static void ms_teardown(struct userve *s)
{
	if (!s->br)
		return;
	io_uring_unregister_buf_ring(&s->ring, 0);
	free(s->bufs);
	free(s->br);
}

static int arm_ms(struct userve *s, struct uconn *c)
{
	struct io_uring_sqe *sqe = sqe_get(s);

	if (!sqe)
		return -EBUSY;
	memset(&c->ms_msg, 0, sizeof(c->ms_msg));
	c->ms_msg.msg_controllen = CMSG_SPACE(sizeof(unsigned char));
	io_uring_prep_recvmsg_multishot(sqe, c->fd, &c->ms_msg, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
	c->inflight++;
	c->ms_armed = true;
	io_uring_sqe_set_data64(sqe, (uintptr_t)c | MS_TAG);
	return 0;
}

static int arm_ms_wait(struct userve *s, struct uconn *c)
{
	struct io_uring_sqe *sqe = sqe_get(s);

	if (!sqe)
		return -EBUSY;
	c->st = U_MS_WAIT;
	c->tick.tv_sec = 0;
	c->tick.tv_nsec = MS_WAIT_NS;
	io_uring_prep_timeout(sqe, &c->tick, 0, 0);
	set_conn(sqe, c);
	return 0;
}

static int ms_go(struct userve *s, struct uconn *c);

/* Nothing but the receive in flight: what the bridge owes the peer, then
 * the end if the connection ended, or the echo of the oldest waiting
 * record, or the receive re-armed if the kernel ended it. */
static int ms_next(struct userve *s, struct uconn *c)
{
	if (c->st != U_NONE)
		return 0;	/* a SEND (or a poll before one, a SENDMSG) is in flight */
	return owe_then(s, c, ms_go);
}

/* The receive reported an end (r < 0: failed, 1: the stream ended): it
 * comes once the records it made the bridge owe went out. */
static int ms_ended(struct userve *s, struct uconn *c, int r)
{
	if (r < 0 && !c->closing)
		fail(c, "the connection ended", strerror(-r));
	c->ms_end = r < 0 ? r : -ECANCELED;
	return ms_next(s, c);
}

static int ms_go(struct userve *s, struct uconn *c)
{
	if (c->ms_end)
		return c->ms_end;
	if (c->q_n) {
		const struct msq *m = &c->q[c->q_head];

		c->out = s->bufs + (size_t)m->bid * MS_BUFSZ + m->off;
		c->out_len = m->len;
		c->out_off = 0;
		c->next = N_RECV;
		return pay_then(s, c, arm_send);
	}
	return c->ms_armed ? 0 : arm_ms(s, c);
}

/* The oldest waiting record's echo went out: its buffer goes back. */
static int ms_echoed(struct userve *s, struct uconn *c)
{
	ms_give_back(s, c->q[c->q_head].bid);
	c->q_head = (c->q_head + 1) % MS_BUFS;
	c->q_n--;
	c->st = U_NONE;
	return ms_next(s, c);
}

/* A completion of the multishot receive (res, flags: the CQE's). */
static int on_ms(struct userve *s, struct uconn *c, int res, unsigned int flags)
{
	struct io_uring_recvmsg_out *o;
	struct cmsghdr *cm;
	unsigned char *buf, *payload;
	unsigned short bid;
	unsigned int len;
	int type = CT_APPDATA, r;

	if (c->ms_end) {	/* what the receive still brings is not reported */
		if (res >= 0 && (flags & IORING_CQE_F_BUFFER))
			ms_give_back(s, (unsigned short)(flags >> IORING_CQE_BUFFER_SHIFT));
		return ms_next(s, c);
	}
	if (res < 0) {
		if (res == -ENOBUFS)	/* every buffer waits for an echo */
			return c->q_n ? ms_next(s, c) : c->st == U_NONE ? arm_ms_wait(s, c) : 0;
		if (res == -EINVAL && !c->bytes && !c->q_n && c->st == U_NONE) {
			/* a kernel with buffer rings but no multishot RECVMSG (5.19) */
			fprintf(stderr, "%s: ring conn %ld: multishot receive refused (%s); "
					"single receives\n", c->o->prog, c->id, strerror(-res));
			c->ms = false;
			return arm_recv(s, c);
		}
		r = ktls_conn_received(c->ssl, res, CT_APPDATA, NULL);
		return r ? ms_ended(s, c, r) : ms_next(s, c);
	}
	if (!(flags & IORING_CQE_F_BUFFER)) {
		fail(c, "multishot receive", "a completion without a buffer");
		return -EIO;
	}
	bid = (unsigned short)(flags >> IORING_CQE_BUFFER_SHIFT);
	buf = s->bufs + (size_t)bid * MS_BUFSZ;
	o = io_uring_recvmsg_validate(buf, res, &c->ms_msg);
	if (!o || (o->flags & MSG_CTRUNC)) {
		ms_give_back(s, bid);
		fail(c, "multishot receive", o ? "the record type did not fit" : "a short buffer");
		return -EIO;
	}
	for (cm = io_uring_recvmsg_cmsg_firsthdr(o, &c->ms_msg); cm;
	     cm = io_uring_recvmsg_cmsg_nexthdr(o, &c->ms_msg, cm))
		if (cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE)
			type = *CMSG_DATA(cm);
	payload = io_uring_recvmsg_payload(o, &c->ms_msg);
	len = io_uring_recvmsg_payload_length(o, res, &c->ms_msg);
	r = ktls_conn_received(c->ssl, len, type, payload);	/* 0 bytes: EOF */
	if (r || type != CT_APPDATA || !len) {
		ms_give_back(s, bid);
		return r ? ms_ended(s, c, r) : ms_next(s, c);
	}
	EVP_DigestUpdate(c->md, payload, len);
	c->bytes += len;
	c->q[(c->q_head + c->q_n++) % MS_BUFS] =
		(struct msq){ .bid = bid, .off = (unsigned int)(payload - buf), .len = len };
	return ms_next(s, c);
}

/* The echo of one record went out: our KeyUpdate when it is due. */
static int after_echo(struct userve *s, struct uconn *c)
{
	const struct uring_opts *o = c->o;

	if (!c->ms_end && o->keyupdate_every && ++c->records % o->keyupdate_every == 0 &&
	    SSL_version(c->ssl) == TLS1_3_VERSION) {
		int r = ktls_conn_keyupdate(c->ssl, o->keyupdate_requested);

		if (r && r != -EAGAIN) {
			fail(c, "ktls_conn_keyupdate", strerror(-r));
			return r;
		}
		if (!r)
			c->kus++;
	}
	/* our KeyUpdate (owed) goes before the next echo */
	return owe_then(s, c, c->ms ? ms_echoed : arm_recv);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The connection ended (ret < 0).  After a fatal alert of the bridge's the
 * peer may still be writing, and close() with its bytes unread sends a
 * reset that can reach the peer before it read the alert; on a
 * non-blocking socket the bridge never waits (ktls_conn_linger(3)).  So
 * do what the bridge does on a blocking one, without blocking the ring:
 * on a tick, let ktls_conn_linger(ssl, 0) read and drop what arrived,
 * until the peer's FIN, for at most LINGER_MS.  (A poll would spin when
 * the kernel holds a record it cannot decrypt: readable, never read.)
 * 0 a tick is armed; else ret: close now.
 */
static int end_or_linger(struct userve *s, struct uconn *c, int ret)
{
	struct io_uring_sqe *sqe;

	if (ret >= 0)
		return ret;
	if (c->st != U_LINGER)
		c->linger_until = now_ms() + LINGER_MS;
	/* 1: the peer closed; -ENOTCONN: no fatal alert of ours to wait for */
	if (ktls_conn_linger(c->ssl, 0) != 0 || now_ms() >= c->linger_until ||
	    !(sqe = sqe_get(s)))
		return ret;
	c->ended = ret;
	c->st = U_LINGER;
	c->tick.tv_sec = 0;
	c->tick.tv_nsec = LINGER_TICK_NS;
	io_uring_prep_timeout(sqe, &c->tick, 0, 0);
	set_conn(sqe, c);
	return 0;
}

/* One completion of connection c; <0 ends it (-ECANCELED: cleanly). */
static int on_done(struct userve *s, struct uconn *c, int res)
{
	switch (c->st) {
	case U_NONE:
		return -EINVAL;
	case U_MS_WAIT:
		c->st = U_NONE;
		return ms_next(s, c);
	case U_LINGER:
		return c->ended;
	case U_HS:
		return hs_step(s, c);
	case U_LIB: {
		int r;

		if (res == -ECANCELED && idle_wait(c)) {	/* no next request */
			SSL_shutdown(c->ssl);
			return -ECANCELED;
		}
		r = lib_step(s, c);

		return r == 0 ? 0 : r > 0 ? -ECANCELED : -EIO;
	}
	case U_RECV:
		return on_recv(s, c, res);
	case U_CTRL:
		return on_ctl(s, c, res);
	case U_PAY:
		return pay_then(s, c, c->after_pay);
	case U_SHUT:
		return end_cleanly(s, c);
	case U_SEND:
		if (res < 0) {
			if (res == -EAGAIN || res == -EINTR)
				return arm_send(s, c);
			fail(c, "send", strerror(-res));
			return res;
		}
		c->out_off += (size_t)res;
		if (c->out_off < c->out_len)
			return arm_send(s, c);
		if (c->next == N_RECV)
			return after_echo(s, c);
		if (c->next == N_FILE)
			return next_piece(s, c);
		return end_cleanly(s, c);
	case U_SPLICE_IN:
		if (res <= 0) {
			fail(c, "splice from the file", res ? strerror(-res) : "it ended early");
			return res ? res : -EIO;
		}
		c->file_off += res;
		c->in_pipe = (size_t)res;
		return splice_out(s, c);
	case U_SPLICE_OUT:
		if (res <= 0) {
			if (res == -EAGAIN || res == -EINTR)
				return splice_out(s, c);
			fail(c, "splice to the socket", res ? strerror(-res) : "no progress");
			return res ? res : -EIO;
		}
		c->in_pipe -= (size_t)res;
		if (c->in_pipe)
			return splice_out(s, c);
		return next_piece(s, c);
	}
	return -EINVAL;
}

static void on_accept(struct userve *s, int res)
{
	const struct uring_opts *o = s->o;
	struct uconn *c;
	long id = 0;

	if (res >= 0) {
		id = ++s->g->accepted;
		/* the last one: end the other rings' pending accepts */
		if (o->max_conns && id == o->max_conns && o->threads > 1)
			shutdown(s->lfd, SHUT_RD);
	}
	if (res < 0) {
		if (res != -EINTR && res != -ECONNABORTED && res != -EAGAIN &&
		    !(res == -EINVAL && o->max_conns && s->g->accepted >= o->max_conns))
			fprintf(stderr, "%s: accept: %s\n", o->prog, strerror(-res));
	} else if (o->max_conns && id > o->max_conns) {
		fprintf(stderr, "%s: ring %d: a connection accepted past --max-conns %ld, "
				"closed unserved\n", o->prog, s->index, o->max_conns);
		close(res);
		s->g->past_limit++;
	} else if (!(c = conn_new(s, res, id))) {
		fprintf(stderr, "%s: ring: cannot set up a connection (out of memory?)\n", o->prog);
		close(res);
		s->g->ended++;
		s->g->failed++;
	} else if (hs_step(s, c) < 0) {
		conn_free(s, c);
	}
	s->accepting = !o->max_conns || s->g->accepted < o->max_conns;
	if (s->accepting && arm_accept(s)) {
		fprintf(stderr, "%s: ring: no room to accept\n", o->prog);
		s->accepting = false;
	}
}

static long rss_kib(const char *what)
{
	char line[128];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, what, strlen(what)))
			v = strtol(line + strlen(what), NULL, 10);
	fclose(f);
	return v;
}

/*
 * After a completion of c: ret < 0 ended it.  An ended connection waits
 * for the last completions of its operations (a multishot receive is
 * cancelled first), lingers after a fatal alert of the bridge's, and is
 * freed.
 */
static void conn_settle(struct userve *s, struct uconn *c, int ret)
{
	if (!c->dying) {
		if (ret >= 0)
			return;
		c->dying = true;
		c->ended = ret;
	}
	if (c->ms_armed) {
		struct io_uring_sqe *sqe;

		if (!c->ms_cancelled && (sqe = sqe_get(s))) {
			io_uring_prep_cancel64(sqe, (uintptr_t)c | MS_TAG, 0);
			io_uring_sqe_set_data(sqe, &s->idle_tag);
			c->ms_cancelled = true;
		}
		return;
	}
	if (c->inflight)
		return;
	/* not dying while it lingers: the tick's completion runs on_done */
	c->dying = false;
	if (end_or_linger(s, c, c->ended) < 0)
		conn_free(s, c);
	else
		c->dying = true;
}

/* One ring's loop, until it stops accepting and its connections ended;
 * s->ret 0, or 1 if the ring failed. */
static void *ring_run(void *arg)
{
	struct userve *s = arg;
	const struct uring_opts *o = s->o;
	int ret = 0;

	arm_accept(s);
	while (s->accepting || s->live) {
		struct io_uring_cqe *cqe;
		unsigned int head, seen = 0;

		ret = io_uring_submit_and_wait(&s->ring, 1);
		if (ret < 0 && ret != -EINTR) {
			fprintf(stderr, "%s: ring %d: io_uring_submit_and_wait: %s\n", o->prog,
				s->index, strerror(-ret));
			break;
		}
		io_uring_for_each_cqe(&s->ring, head, cqe) {
			uint64_t ud = io_uring_cqe_get_data64(cqe);
			struct uconn *c = (struct uconn *)(uintptr_t)(ud & ~(uint64_t)MS_TAG);
			int r = 0;

			seen++;
			if (ud == (uintptr_t)&s->idle_tag)
				continue;	/* a linked timeout's or a cancel's own */
			if (ud == (uintptr_t)&s->zc_tag) {
				zc_answer(o, cqe);
				continue;
			}
			if (!c) {
				on_accept(s, cqe->res);
				continue;
			}
			if (ud & MS_TAG) {
				if (!(cqe->flags & IORING_CQE_F_MORE)) {
					c->ms_armed = false;
					c->inflight--;
				}
				if (!c->dying)
					r = on_ms(s, c, cqe->res, cqe->flags);
				else if (cqe->res >= 0 && (cqe->flags & IORING_CQE_F_BUFFER))
					ms_give_back(s, (unsigned short)(cqe->flags >>
									 IORING_CQE_BUFFER_SHIFT));
			} else {
				c->inflight--;
				if (!c->dying || c->st == U_LINGER)
					r = on_done(s, c, cqe->res);
			}
			if (c->dying)
				r = c->ended;
			conn_settle(s, c, r);
		}
		io_uring_cq_advance(&s->ring, seen);
	}
	s->ret = ret < 0 && ret != -EINTR ? 1 : 0;
	return NULL;
}

/*
 * The multishot receive reads records ahead of the bridge, which is safe
 * only where the kernel itself pauses at every KeyUpdate wherever it ends.
 * Mainline looks only at a record's first byte: the last piece of a
 * KeyUpdate split over records does not pause it, and the receive read
 * ahead would decrypt the peer's next record with the old key (seen on
 * Debian's 7.3.4: the connection ended with EBADMSG, the peer was reset).
 * The probe cannot see how the kernel finds KeyUpdates, but the staging
 * option comes only with our series, which finds them anywhere.
 */
static bool multishot_safe(const struct uring_opts *o)
{
	const struct ktls_caps *caps = ktls_probe();

	if (caps->prestage)
		return true;
	fprintf(stderr, "%s: multishot receive not used: it reads records ahead of the "
			"bridge, and this kernel (no pre-staged keys: %s) pauses only for a "
			"KeyUpdate at the start of a record; single receives\n",
		o->prog, strerror(caps->prestage_err));
	return false;
}

int uring_serve(SSL_CTX *ctx, int lfd, const struct uring_opts *o)
{
	int n = o->threads > 1 ? o->threads : 1, i, ret, started, failed = 0;
	struct ushared g = { 0 };
	struct userve *rings = calloc((size_t)n, sizeof(*rings));
	long rss0 = rss_kib("VmRSS:");
	bool multishot = o->multishot && multishot_safe(o);

	if (!rings) {
		fprintf(stderr, "%s: out of memory\n", o->prog);
		return 1;
	}
	for (i = 0; i < n; i++) {
		struct userve *s = &rings[i];

		*s = (struct userve){ .ctx = ctx, .o = o, .g = &g, .lfd = lfd, .index = i,
				      .accepting = true, .idle = { .tv_sec = o->timeout } };
		ret = io_uring_queue_init(o->entries ? o->entries : 1024, &s->ring, 0);
		if (ret < 0) {
			fprintf(stderr, "%s: io_uring_queue_init: %s\n", o->prog, strerror(-ret));
			while (i--) {
				ms_teardown(&rings[i]);
				io_uring_queue_exit(&rings[i].ring);
			}
			free(rings);
			return 1;
		}
		if (multishot && (ret = ms_setup(s)) && !i)	/* a run-time check */
			fprintf(stderr, "%s: multishot receive not available (provided buffer "
					"ring: %s); single receives\n", o->prog, strerror(-ret));
	}
	fprintf(stderr, "%s: io_uring ring%s of %u entries%s%s\n", o->prog, n > 1 ? "s" : "",
		rings[0].ring.sq.ring_entries, n > 1 ? ", one per thread" : "",
		rings[0].ms ? "; multishot receive, 256 provided buffers per ring" : "");
	for (started = 1; started < n; started++) {
		ret = pthread_create(&rings[started].thread, NULL, ring_run, &rings[started]);
		if (ret) {	/* the rings that run serve on */
			fprintf(stderr, "%s: pthread_create: %s; %d ring%s\n", o->prog,
				strerror(ret), started, started > 1 ? "s" : "");
			break;
		}
	}
	ring_run(&rings[0]);
	for (i = 0; i < n; i++) {
		if (i && i < started)
			pthread_join(rings[i].thread, NULL);
		failed |= rings[i].ret;
		ms_teardown(&rings[i]);
		io_uring_queue_exit(&rings[i].ring);
	}
	free(rings);
	fprintf(stderr, "%s: ring: %ld connections, %ld failed, at most %ld at once", o->prog,
		(long)g.ended, (long)g.failed, (long)g.peak);
	if (n > 1)
		fprintf(stderr, " on %d rings (%ld accepted past --max-conns, closed)", started,
			(long)g.past_limit);
	fprintf(stderr, "; VmRSS %ld KiB at the start, %ld at the end, peak (VmHWM) %ld KiB\n",
		rss0, rss_kib("VmRSS:"), rss_kib("VmHWM:"));
	return failed;
}
