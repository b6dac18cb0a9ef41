// SPDX-License-Identifier: MIT
/*
 * ktls-client - connect through the bridge, stream N bytes each way and
 * check them (hash), optionally sending KeyUpdates as it goes.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>

#include "common.h"
#include "httpget.h"
#include "loadgen.h"

static const char *prog = "ktls-client";

enum xfer_mode { MODE_ECHO, MODE_SEND, MODE_RECV };

struct client_opts {
	struct app_opts app;
	uint64_t bytes;
	long keyupdate_every;
	bool keyupdate_requested;
	bool json, handoff;
	bool text;		/* --text: printable lines, for line-echo servers */
	enum xfer_mode mode;
	const char *cafile, *servername;
	const char *request;	/* sent first in recv mode */
	const char *get;	/* --get PATH: HTTP/1.1 keep-alive requests */
	int requests;		/* how many (--requests) */
	const char *expect_sha256;	/* --expect-sha256: every --get body's hash */
	unsigned connections;	/* --connections N: N at once; 0: one, as always */
	FILE *output;		/* received bytes go here too */
	int timeout;
	const char *host, *port;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ktls-client [--bytes N] [--keyupdate-every RECORDS] [--keyupdate-requested]\n"
		"                   [--tls1_2|--tls1_3] [--mode echo|send|recv] [--json] HOST:PORT\n"
		"Connect through the kernel TLS bridge and stream data with a hash check.\n\n"
		"  --bytes N                 bytes to send (echo/send; default 1048576; k/M/G ok)\n"
		"  --mode echo               send N bytes, read them back, compare (default;\n"
		"                            needs ktls-serve --echo)\n"
		"  --mode send               only send N bytes, print their sha256\n"
		"  --mode recv               read until the peer closes, print the sha256\n"
		"  --text                    send printable lines (64 bytes each, with \\n)\n"
		"                            instead of binary, for servers that echo lines\n"
		"                            (gnutls-serv --echo)\n"
		"  --request STRING          recv mode: send STRING first (\\r \\n understood),\n"
		"                            e.g. an HTTP GET\n"
		"  --get PATH                recv mode over HTTP/1.1: GET PATH, keep the\n"
		"                            connection and hash the response bodies only\n"
		"  --requests N              --get: N requests one after the other, the\n"
		"                            last with Connection: close (default 1); when\n"
		"                            the server closes after an answer, the rest go\n"
		"                            on a new connection (counted as reconnects)\n"
		"  --expect-sha256 HEX       --get: each 200 body must have this SHA-256\n"
		"                            (with --connections, by default: the run's\n"
		"                            first body)\n"
		"  --output FILE             also write the received bytes (--get: the\n"
		"                            bodies) to FILE\n"
		"  --keyupdate-every R       send a TLS 1.3 KeyUpdate every R records written\n"
		"                            (recv mode: received)\n"
		"  --keyupdate-requested     ... asking the peer to update too\n"
		"  --handoff                 after the handshake hand both directions to the\n"
		"                            kernel and move the data on the socket itself\n"
		"  --cafile FILE             verify the server against FILE (default: no check)\n"
		"  --servername NAME         SNI / name to verify\n"
		"  --connections N           N connections at once (1 to 10000), each with\n"
		"                            the transfer and checks above; prints the\n"
		"                            failed ones, totals and transfer-time p50/p99\n"
		"                            (with --get: requests and requests per second)\n"
		"  --timeout SECS            give up after SECS without progress (default 60)\n"
		"  --json                    one JSON object with results and status on stdout\n"
		APP_OPTS_HELP
		"  -h, --help                this text\n"
		"  --version                 print the versions (ours, libssl's) and exit\n"
		"\n"
		"Exit status: 0 transfer complete and hashes match, 1 transfer or hash\n"
		"check failed, 2 usage, 3 openssl.cnf failed to load, or could not connect\n"
		"or handshake.  With --connections: 0 all succeeded, 1 any failed (a\n"
		"connection that cannot connect or handshake too).\n");
}

/* "\r" and "\n" escapes, in place. */
static char *unescape(char *s)
{
	char *r = s, *w = s;

	for (; *r; r++) {
		if (r[0] == '\\' && (r[1] == 'r' || r[1] == 'n')) {
			*w++ = r[1] == 'r' ? '\r' : '\n';
			r++;
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
	return s;
}

/* HOST:PORT's addresses (once: every connection uses them); NULL when
 * they do not resolve (message printed). */
static struct addrinfo *resolve(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	int r = getaddrinfo(host, port, &hints, &res);

	if (r) {
		fprintf(stderr, "%s: %s:%s: %s\n", prog, host, port, gai_strerror(r));
		return NULL;
	}
	return res;
}

struct xfer {
	uint64_t sent, recvd, kus, records;
	EVP_MD_CTX *md_out, *md_in;
	EVP_MD_CTX *md_body;	/* --get: the body being read */
	const char *expect;	/* --expect-sha256, or NULL: see same_body */
	bool same_body;		/* without it: every body as the run's first */
	FILE *output;
	struct http_get *http;	/* --get: this connection's requests */
	bool reconnect;		/* --get: the server closed; the rest go on a new one */
	unsigned reconnects;
	const char *error;
	char why[200];		/* error's text when it is built */
};

/* --get --connections N without --expect-sha256: the first 200 body of
 * the run (any connection's) is the one every other must match.  (One
 * connection without it checks nothing: a server may answer a path
 * differently each time, and sha256_received covers all bodies.) */
static struct {
	pthread_mutex_t lock;
	bool set;
	char hex[65];
} first_body = { PTHREAD_MUTEX_INITIALIZER, false, "" };

/* Received data to hash (all of it, or --get's bodies). */
static int take_in(void *arg, const uint8_t *p, size_t n)
{
	struct xfer *x = arg;

	EVP_DigestUpdate(x->md_in, p, n);
	if (x->md_body)
		EVP_DigestUpdate(x->md_body, p, n);
	if (x->output && fwrite(p, 1, n, x->output) != n) {
		x->error = "writing --output failed";
		return -1;
	}
	return 0;
}

/* --get: a response is complete; a 200 body must hash as expected (other
 * statuses are counted by the caller). */
static int body_end(void *arg, int status)
{
	struct xfer *x = arg;
	const char *want = x->expect;
	char hex[65];

	app_sha256_hex(x->md_body, hex);
	if (!EVP_DigestInit_ex(x->md_body, EVP_sha256(), NULL)) {
		x->error = "SHA-256 setup failed";
		return -1;
	}
	if (status != 200 || (!want && !x->same_body))
		return 0;
	if (!want) {
		pthread_mutex_lock(&first_body.lock);
		if (!first_body.set) {
			memcpy(first_body.hex, hex, sizeof(hex));
			first_body.set = true;
		}
		pthread_mutex_unlock(&first_body.lock);
		want = first_body.hex;	/* set once, never changed after */
	}
	if (strcmp(hex, want)) {
		snprintf(x->why, sizeof(x->why), "response %d: body sha256 %s, expected %s%s",
			 x->http->answered, hex, want, x->expect ? "" : " (the first body's)");
		x->error = x->why;
		return -1;
	}
	return 0;
}

/* A TLS 1.3 KeyUpdate (none on TLS 1.2): 0, or -1 with x->error. */
static int keyupdate(SSL *ssl, const struct client_opts *o, struct xfer *x)
{
	if (SSL_version(ssl) != TLS1_3_VERSION)
		return 0;
	if (!SSL_key_update(ssl, o->keyupdate_requested ? SSL_KEY_UPDATE_REQUESTED :
							  SSL_KEY_UPDATE_NOT_REQUESTED)) {
		x->error = "SSL_key_update failed";
		return -1;
	}
	x->kus++;
	return 0;
}

/* The --get request being sent, if any: 1 progress, 0 none or blocked
 * (*events set), -1 failed. */
static int send_request(SSL *ssl, struct http_get *h, short *events, struct xfer *x)
{
	int n, e;

	if (!h || h->req_off == h->req_len)
		return 0;
	n = SSL_write(ssl, h->req + h->req_off, (int)(h->req_len - h->req_off));
	if (n > 0) {
		h->req_off += (size_t)n;
		return 1;
	}
	e = SSL_get_error(ssl, n);
	if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
		*events |= e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
		return 0;
	}
	x->error = "sending the HTTP request failed";
	return -1;
}

/* Non-blocking loop: write the stream while reading what comes back. */
static int run(SSL *ssl, int fd, const struct client_opts *o, struct xfer *x)
{
	uint8_t wbuf[16384], rbuf[16384];	/* on the stack: one per thread */
	size_t wlen = 0;	/* pending chunk (retry with the same buffer) */
	bool send_done = o->mode == MODE_RECV, recv_done = o->mode == MODE_SEND;
	time_t last = time(NULL);

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while (!send_done || !recv_done) {
		short events = 0;
		bool progress = false;
		int n, e;

		n = send_request(ssl, x->http, &events, x);
		if (n < 0)
			return -1;
		progress = n > 0;
		if (!send_done) {
			if (!wlen) {
				uint64_t left = o->bytes - x->sent;

				wlen = left < sizeof(wbuf) ? (size_t)left : sizeof(wbuf);
				(o->text ? app_fill_text : app_fill)(wbuf, wlen, x->sent);
			}
			n = SSL_write(ssl, wbuf, (int)wlen);
			if (n > 0) {
				EVP_DigestUpdate(x->md_out, wbuf, (size_t)n);
				x->sent += (uint64_t)n;
				x->records++;
				wlen = 0;
				progress = true;
				if (x->sent == o->bytes)
					send_done = true;
				/* none after the last record: it would race the close */
				if (o->keyupdate_every && !send_done &&
				    x->records % (uint64_t)o->keyupdate_every == 0 &&
				    keyupdate(ssl, o, x))
					return -1;
			} else {
				e = SSL_get_error(ssl, n);
				if (e == SSL_ERROR_WANT_WRITE)
					events |= POLLOUT;
				else if (e == SSL_ERROR_WANT_READ)
					events |= POLLIN;
				else {
					x->error = "SSL_write failed";
					return -1;
				}
			}
		}
		while (!recv_done) {
			n = SSL_read(ssl, rbuf, sizeof(rbuf));
			if (n > 0) {
				if (x->http) {
					if (http_get_feed(x->http, rbuf, (size_t)n, take_in,
							  body_end, x)) {
						if (!x->error)
							x->error = x->http->error;
						return -1;
					}
					recv_done = http_get_done(x->http);
				} else if (take_in(x, rbuf, (size_t)n)) {
					return -1;
				}
				x->recvd += (uint64_t)n;
				progress = true;
				if (o->mode == MODE_ECHO && x->recvd >= o->bytes)
					recv_done = true;
				/* recv mode: a KeyUpdate every R records received
				 * (SSL_read returns one record's data at most); libssl
				 * sends it from the next SSL_read.  None during --get's
				 * last response: the server reads no more and closes,
				 * and unread records would reset the connection. */
				if (o->mode == MODE_RECV && o->keyupdate_every && !recv_done &&
				    (!x->http || x->http->made < x->http->requests) &&
				    ++x->records % (uint64_t)o->keyupdate_every == 0 &&
				    keyupdate(ssl, o, x))
					return -1;
				continue;
			}
			e = SSL_get_error(ssl, n);
			if (e == SSL_ERROR_WANT_READ) {
				events |= POLLIN;
			} else if (e == SSL_ERROR_WANT_WRITE) {
				events |= POLLOUT;
			} else if (o->mode == MODE_RECV &&
				   (e == SSL_ERROR_ZERO_RETURN ||
				    (e == SSL_ERROR_SYSCALL && !ERR_peek_error()))) {
				if (x->http && !http_get_done(x->http)) {
					/* it answers one request per connection (or
					 * ended a keep-alive one): the rest on a new one */
					if (!http_get_reconnect(x->http)) {
						x->error = "the server closed before the last response";
						return -1;
					}
					x->reconnect = true;
				}
				recv_done = true;
			} else {
				x->error = e == SSL_ERROR_ZERO_RETURN ?
					   "peer closed before everything came back" : "SSL_read failed";
				return -1;
			}
			break;
		}
		if (progress) {
			last = time(NULL);
			continue;
		}
		if (!events)
			continue;
		struct pollfd p = { .fd = fd, .events = events };

		if (poll(&p, 1, 1000) < 0 && errno != EINTR) {
			x->error = "poll failed";
			return -1;
		}
		if (time(NULL) - last > o->timeout) {
			x->error = "timed out without progress";
			return -1;
		}
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return 0;
}

/* The same transfer after ktls_conn_handoff(): the kernel has the records. */
static int run_handoff(SSL *ssl, int fd, const struct client_opts *o, struct xfer *x)
{
	uint8_t wbuf[16384], rbuf[16384];
	size_t wlen = 0;
	bool send_done = o->mode == MODE_RECV, recv_done = o->mode == MODE_SEND;
	bool ku_due = false;	/* a KeyUpdate waits for room in the socket */
	time_t last = time(NULL);

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while (!send_done || !recv_done) {
		short events = 0;
		bool progress = false;
		ssize_t n;

		if (ku_due) {
			int r = ktls_conn_keyupdate(ssl, o->keyupdate_requested);

			if (r == 0) {
				x->kus++;
				ku_due = false;
				progress = true;
			} else if (r == -EAGAIN) {
				events |= POLLOUT;
			} else {
				errno = -r;
				x->error = "ktls_conn_keyupdate failed";
				return -1;
			}
		}
		if (!send_done && !ku_due) {
			if (!wlen) {
				uint64_t left = o->bytes - x->sent;

				wlen = left < sizeof(wbuf) ? (size_t)left : sizeof(wbuf);
				(o->text ? app_fill_text : app_fill)(wbuf, wlen, x->sent);
			}
			n = ktls_conn_send(ssl, wbuf, wlen);
			if (n > 0) {
				EVP_DigestUpdate(x->md_out, wbuf, (size_t)n);
				x->sent += (uint64_t)n;
				x->records++;
				memmove(wbuf, wbuf + n, wlen - (size_t)n);
				wlen -= (size_t)n;
				progress = true;
				if (x->sent == o->bytes)
					send_done = true;
				if (o->keyupdate_every && !send_done && !wlen &&
				    x->records % (uint64_t)o->keyupdate_every == 0 &&
				    SSL_version(ssl) == TLS1_3_VERSION)
					ku_due = true;
			} else if (n == -EAGAIN) {
				events |= POLLOUT;
			} else {
				errno = (int)-n;
				x->error = "ktls_conn_send failed";
				return -1;
			}
		}
		while (!recv_done) {
			n = ktls_conn_recv(ssl, rbuf, sizeof(rbuf));
			if (n > 0) {
				EVP_DigestUpdate(x->md_in, rbuf, (size_t)n);
				if (x->output && fwrite(rbuf, 1, (size_t)n, x->output) != (size_t)n) {
					x->error = "writing --output failed";
					return -1;
				}
				x->recvd += (uint64_t)n;
				progress = true;
				if (o->mode == MODE_ECHO && x->recvd >= o->bytes)
					recv_done = true;
				continue;
			}
			if (n == -EAGAIN) {
				events |= POLLIN;
			} else if (n == 0 && o->mode == MODE_RECV) {
				recv_done = true;
			} else {
				errno = n ? (int)-n : 0;
				x->error = n ? "ktls_conn_recv failed" :
					       "peer closed before everything came back";
				return -1;
			}
			break;
		}
		if (progress) {
			last = time(NULL);
			continue;
		}
		if (!events)
			continue;
		struct pollfd p = { .fd = fd, .events = events };

		if (poll(&p, 1, 1000) < 0 && errno != EINTR) {
			x->error = "poll failed";
			return -1;
		}
		if (time(NULL) - last > o->timeout) {
			x->error = "timed out without progress";
			return -1;
		}
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return 0;
}

/* One connection from connect to close: a run makes one, --connections N. */
struct conn {
	const struct client_opts *o;
	bool quiet;		/* --connections: keep what failed in step and why */
	int fd;
	SSL *ssl;
	bool handed_off;
	struct xfer x;
	struct http_get http;	/* --get: this connection's requests */
	SSL_CTX *ctx;		/* for --get's reconnects */
	const struct addrinfo *addrs;
	struct timespec t0, t1;	/* connect start, end of the transfer */
	char out_hex[65], in_hex[65];
	const char *step;	/* quiet: what failed ... */
	char why[256];		/* ... and why */
};

/* A failure: said on stderr now, or (quiet) kept for the summary. */
static void conn_say(struct conn *c, const char *step, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void conn_say(struct conn *c, const char *step, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (!c->quiet) {
		fprintf(stderr, "%s: ", prog);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	} else if (!c->step) {
		c->step = step;
		vsnprintf(c->why, sizeof(c->why), fmt, ap);
	}
	va_end(ap);
}

/* Why, in one line: OpenSSL's first error, else errno's text, else "". */
static void last_error(char *buf, size_t len)
{
	unsigned long e = ERR_peek_error();

	buf[0] = 0;
	if (e)
		ERR_error_string_n(e, buf, len);
	else if (errno)
		snprintf(buf, len, "%s", strerror(errno));
}

/* An OpenSSL call failed: its error queue printed, or (quiet) kept. */
static void conn_say_ssl(struct conn *c, const char *step, const char *what)
{
	char e[160];

	if (!c->quiet) {
		app_ssl_errors(prog, what);
		return;
	}
	last_error(e, sizeof(e));
	conn_say(c, step, "%s failed%s%s", what, *e ? ": " : "", e);
}

static int conn_connect(struct conn *c, const struct addrinfo *addrs)
{
	const struct addrinfo *ai;
	int err = 0;

	for (ai = addrs; ai; ai = ai->ai_next) {
		c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (c->fd < 0) {
			err = errno;
			continue;
		}
		if (!connect(c->fd, ai->ai_addr, ai->ai_addrlen))
			return 0;
		err = errno;
		close(c->fd);
		c->fd = -1;
	}
	conn_say(c, "connect", "connect %s:%s: %s", c->o->host, c->o->port, strerror(err));
	return -1;
}

/* The transfer's state, once per run (not again on --get's reconnects):
 * 0, or 3 (said why). */
static int conn_setup(struct conn *c, const char *name)
{
	const struct client_opts *o = c->o;

	c->x.output = o->output;
	if (o->get) {	/* the path was checked with the options */
		http_get_init(&c->http, o->get, name, o->requests);
		c->x.http = &c->http;
		c->x.expect = o->expect_sha256;
		c->x.same_body = o->connections > 0;
		c->x.md_body = EVP_MD_CTX_new();
		if (!c->x.md_body || !EVP_DigestInit_ex(c->x.md_body, EVP_sha256(), NULL)) {
			conn_say_ssl(c, "setup", "setting up SHA-256");
			return 3;
		}
	}
	c->x.md_out = EVP_MD_CTX_new();
	c->x.md_in = EVP_MD_CTX_new();
	if (!c->x.md_out || !c->x.md_in || !EVP_DigestInit_ex(c->x.md_out, EVP_sha256(), NULL) ||
	    !EVP_DigestInit_ex(c->x.md_in, EVP_sha256(), NULL)) {
		conn_say_ssl(c, "setup", "setting up SHA-256");
		return 3;
	}
	return 0;
}

/* Connect, attach the bridge, handshake, send --request and hand off:
 * 0, 2 (--request could not be sent) or 3 (connect, setup, handshake). */
static int conn_open(struct conn *c, SSL_CTX *ctx, const struct addrinfo *addrs)
{
	const struct client_opts *o = c->o;
	const char *name = o->servername ? o->servername : o->host;
	/* the handshake blocks: --timeout bounds each wait in it too */
	struct timeval tv = { .tv_sec = o->timeout };
	int r;

	c->ctx = ctx;
	c->addrs = addrs;
	if (!c->x.md_in)	/* not again for --get's reconnects */
		clock_gettime(CLOCK_MONOTONIC, &c->t0);
	if (conn_connect(c, addrs))
		return 3;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	c->ssl = SSL_new(ctx);
	if (!c->ssl || app_attach(c->ssl, c->fd, &o->app, prog)) {
		if (c->quiet)	/* app_attach() said why */
			conn_say(c, "setup", c->ssl ? "attaching the bridge failed" : "SSL_new failed");
		return 3;
	}
	SSL_set_tlsext_host_name(c->ssl, (char *)name);
	if (o->servername && o->cafile)
		SSL_set1_host(c->ssl, o->servername);
	if (SSL_connect(c->ssl) <= 0) {
		conn_say_ssl(c, "handshake", "TLS handshake");
		return 3;
	}
	if (o->request && SSL_write(c->ssl, o->request, (int)strlen(o->request)) <= 0) {
		conn_say_ssl(c, "request", "sending --request");
		return 2;
	}
	if (!c->x.md_in && conn_setup(c, name))
		return 3;
	if (o->handoff) {
		r = ktls_conn_handoff(c->ssl);
		c->handed_off = r == 0;
		if (r && !c->quiet)	/* nothing changed: go on through libssl, say why */
			fprintf(stderr, "%s: hand-off refused (%s); continuing through libssl\n",
				prog, strerror(-r));
	}
	return 0;
}

static void conn_close(struct conn *c, int rc);

/* The transfer: 0, or 1 (said why).  --get follows a server that closes
 * after an answer to new connections until every request is answered. */
static int conn_transfer(struct conn *c)
{
	int rc;
	char e[160];

	for (;;) {
		rc = c->handed_off ? run_handoff(c->ssl, c->fd, c->o, &c->x) :
				     run(c->ssl, c->fd, c->o, &c->x);
		if (rc || !c->x.reconnect)
			break;
		c->x.reconnect = false;
		c->x.reconnects++;
		conn_close(c, 0);
		SSL_free(c->ssl);
		c->ssl = NULL;
		close(c->fd);
		c->fd = -1;
		if (conn_open(c, c->ctx, c->addrs)) {	/* said why */
			c->x.error = "reconnecting failed";
			rc = -1;
			break;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &c->t1);
	if (!rc)
		return 0;
	if (c->quiet) {
		last_error(e, sizeof(e));
		conn_say(c, "transfer", "%s after %llu bytes sent, %llu received%s%s", c->x.error,
			 (unsigned long long)c->x.sent, (unsigned long long)c->x.recvd,
			 *e ? ": " : "", e);
		return 1;
	}
	fprintf(stderr, "%s: %s after %llu bytes sent, %llu received\n", prog, c->x.error,
		(unsigned long long)c->x.sent, (unsigned long long)c->x.recvd);
	if (ERR_peek_error())
		app_ssl_errors(prog, "the transfer");
	else if (errno)
		fprintf(stderr, "%s: last error: %s\n", prog, strerror(errno));
	return 1;
}

/* The end of the connection after the transfer (rc: how it went). */
static void conn_close(struct conn *c, int rc)
{
	struct timeval tv = { .tv_sec = c->o->timeout };
	char sink[4096];

	if (rc) {
		/* The socket is non-blocking, so the bridge did not wait after
		 * its fatal alert: wait now, or close() could reset the
		 * connection before the server has read why it ended. */
		ktls_conn_linger(c->ssl, -1);
		return;
	}
	/* Wait for the peer to finish: closing with its KeyUpdates or
	 * tickets unread would reset the connection and lose our data. */
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (c->handed_off) {
		if (!ktls_conn_shutdown(c->ssl))
			while (ktls_conn_recv(c->ssl, sink, sizeof(sink)) > 0)
				;
	} else if (SSL_shutdown(c->ssl) == 0)
		while (SSL_read(c->ssl, sink, sizeof(sink)) > 0)
			;
	/* libssl may stop early (it will not answer a KeyUpdate after
	 * close_notify): read on to EOF so that close() sends no RST. */
	ERR_clear_error();
	shutdown(c->fd, SHUT_WR);
	while (read(c->fd, sink, sizeof(sink)) > 0)
		;
}

/* The hashes, and the checks after the transfer: rc, or 1 (said why). */
static int conn_check(struct conn *c, int rc)
{
	const struct xfer *x = &c->x;
	bool match;

	app_sha256_hex(x->md_out, c->out_hex);
	app_sha256_hex(x->md_in, c->in_hex);
	match = c->o->mode != MODE_ECHO || (x->sent == x->recvd && !strcmp(c->out_hex, c->in_hex));
	if (!rc && x->http && x->http->ok != x->http->answered) {
		conn_say(c, "http", "%d of %d responses were not \"200\"",
			 x->http->answered - x->http->ok, x->http->answered);
		c->x.error = "HTTP status not 200";
		rc = 1;
	}
	if (!rc && !match) {
		conn_say(c, "hash", "echo mismatch: sent %llu bytes sha256 %s, received %llu sha256 %s",
			 (unsigned long long)x->sent, c->out_hex, (unsigned long long)x->recvd,
			 c->in_hex);
		rc = 1;
	}
	return rc;
}

static void conn_free(struct conn *c)
{
	EVP_MD_CTX_free(c->x.md_out);
	EVP_MD_CTX_free(c->x.md_in);
	EVP_MD_CTX_free(c->x.md_body);
	SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	if (c->quiet)	/* this thread's queue, said in why */
		ERR_clear_error();
}

/* --connections: what every connection shares. */
struct load {
	const struct client_opts *o;
	SSL_CTX *ctx;
	const struct addrinfo *addrs;
};

static int local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len))
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port) : 0;
}

/* One of the --connections, in a thread of its own: a single run, quiet. */
static void load_one(void *arg, unsigned idx, struct lg_result *r)
{
	const struct load *l = arg;
	struct conn c = { .o = l->o, .quiet = true, .fd = -1 };
	int rc;

	(void)idx;
	rc = conn_open(&c, l->ctx, l->addrs);
	r->port = local_port(c.fd);
	if (!rc) {
		rc = conn_transfer(&c);
		conn_close(&c, rc);
		rc = conn_check(&c, rc);
		r->have_status = !ktls_conn_status(c.ssl, &r->status);
		r->transfer_ns = (uint64_t)(c.t1.tv_sec - c.t0.tv_sec) * 1000000000u +
				 (uint64_t)c.t1.tv_nsec - (uint64_t)c.t0.tv_nsec;
	}
	r->ok = !rc;
	if (rc) {
		r->step = c.step;
		snprintf(r->error, sizeof(r->error), "%s", c.why);
	}
	r->sent = c.x.sent;
	r->received = c.x.recvd;
	r->keyupdates = c.x.kus;
	r->handoff = c.handed_off;
	r->requests = c.x.http ? (unsigned)c.x.http->answered : 0;
	r->body_bytes = c.x.http ? c.x.http->body_bytes : 0;
	r->reconnects = c.x.reconnects;
	conn_free(&c);
}

/* --connections N: all at once; 0 when all succeeded, else 1. */
static int load_run(const struct client_opts *o, SSL_CTX *ctx, const struct addrinfo *addrs)
{
	struct load l = { o, ctx, addrs };
	struct lg_result *res = calloc(o->connections, sizeof(*res));
	uint64_t wall;
	unsigned failed;

	if (!res) {
		fprintf(stderr, "%s: --connections %u: %s\n", prog, o->connections, strerror(ENOMEM));
		return 3;
	}
	lg_run(o->connections, load_one, &l, res, &wall);
	failed = lg_report(prog, res, o->connections, wall, o->json);
	free(res);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bytes", required_argument, NULL, 'n' },
		{ "keyupdate-every", required_argument, NULL, 'u' },
		{ "keyupdate-requested", no_argument, NULL, 'U' },
		{ "handoff", no_argument, NULL, 'H' },
		{ "mode", required_argument, NULL, 'm' },
		{ "cafile", required_argument, NULL, 'C' },
		{ "request", required_argument, NULL, 'R' },
		{ "get", required_argument, NULL, 'g' },
		{ "requests", required_argument, NULL, 'N' },
		{ "expect-sha256", required_argument, NULL, 'E' },
		{ "connections", required_argument, NULL, 'c' },
		{ "output", required_argument, NULL, 'o' },
		{ "servername", required_argument, NULL, 'S' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "text", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		APP_LONG_OPTS,
		{ 0 },
	};
	struct client_opts o = { .bytes = 1 << 20, .timeout = 60, .requests = 1 };
	struct conn c = { .o = &o, .fd = -1 };
	struct addrinfo *addrs = NULL;
	char diag[64], kopts[80] = "null", *colon, *end;
	const struct xfer *x = &c.x;
	SSL_CTX *ctx = NULL;
	int ch, r, rc = 0;
	long n;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		r = app_opt(&o.app, ch, optarg, prog);
		if (r < 0)
			return 2;
		if (r)
			continue;
		switch (ch) {
		case 'n':
			if (app_parse_size(optarg, &o.bytes)) {
				fprintf(stderr, "%s: --bytes %s: not a size\n", prog, optarg);
				return 2;
			}
			break;
		case 'u':
			o.keyupdate_every = strtol(optarg, &end, 10);
			if (*end || o.keyupdate_every < 1) {
				fprintf(stderr, "%s: --keyupdate-every %s: need a count >= 1\n", prog,
					optarg);
				return 2;
			}
			break;
		case 'U': o.keyupdate_requested = true; break;
		case 'H': o.handoff = true; break;
		case 'T': o.text = true; break;
		case 'm':
			if (!strcmp(optarg, "echo")) o.mode = MODE_ECHO;
			else if (!strcmp(optarg, "send")) o.mode = MODE_SEND;
			else if (!strcmp(optarg, "recv")) o.mode = MODE_RECV;
			else {
				fprintf(stderr, "%s: --mode %s: expected echo, send or recv\n", prog,
					optarg);
				return 2;
			}
			break;
		case 'C': o.cafile = optarg; break;
		case 'R': o.request = unescape(optarg); break;
		case 'g': o.get = optarg; break;
		case 'N':
			o.requests = (int)strtol(optarg, &end, 10);
			if (*end || o.requests < 1 || o.requests > 1000000) {
				fprintf(stderr, "%s: --requests %s: need a count from 1 to 1000000\n",
					prog, optarg);
				return 2;
			}
			break;
		case 'E':
			if (strlen(optarg) != 64 || strspn(optarg, "0123456789abcdefABCDEF") != 64) {
				fprintf(stderr, "%s: --expect-sha256 %s: need 64 hex digits\n",
					prog, optarg);
				return 2;
			}
			for (end = optarg; *end; end++)
				*end = (char)(*end >= 'A' && *end <= 'F' ? *end - 'A' + 'a' : *end);
			o.expect_sha256 = optarg;
			break;
		case 'c':
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (end == optarg || *end || errno || n < 1 || n > LG_MAX_CONNECTIONS) {
				fprintf(stderr, "%s: --connections %s: need a count from 1 to %d\n",
					prog, optarg, LG_MAX_CONNECTIONS);
				return 2;
			}
			o.connections = (unsigned)n;
			break;
		case 'o':
			if (o.output)
				fclose(o.output);
			o.output = fopen(optarg, "wb");
			if (!o.output) {
				fprintf(stderr, "%s: --output %s: %s\n", prog, optarg, strerror(errno));
				return 2;
			}
			break;
		case 'S': o.servername = optarg; break;
		case 't': o.timeout = atoi(optarg); break;
		case 'j': o.json = true; break;
		case 'V':
			app_print_version(prog);
			return 0;
		case 'h': usage(stdout); rc = 0; goto out;
		default: usage(stderr); rc = 2; goto out;
		}
	}
	rc = 2;	/* usage errors from here */
	if (optind + 1 != argc || !(colon = strrchr(argv[optind], ':'))) {
		fprintf(stderr, "%s: expected one HOST:PORT argument\n", prog);
		usage(stderr);
		goto out;
	}
	*colon = 0;
	o.host = argv[optind];
	o.port = colon + 1;
	if (o.get && (o.mode != MODE_RECV || o.request || o.handoff)) {
		fprintf(stderr, "%s: --get needs --mode recv, and neither --request nor --handoff\n",
			prog);
		goto out;
	}
	if (o.get && http_get_init(&c.http, o.get, o.servername ? o.servername : o.host,
				   o.requests)) {
		fprintf(stderr, "%s: --get %s: %s\n", prog, o.get, c.http.error);
		goto out;
	}
	if (o.expect_sha256 && !o.get) {
		fprintf(stderr, "%s: --expect-sha256 needs --get\n", prog);
		goto out;
	}
	if (o.request && o.mode != MODE_RECV) {
		fprintf(stderr, "%s: --request needs --mode recv\n", prog);
		goto out;
	}
	if (o.connections && o.output) {
		fprintf(stderr, "%s: --output cannot be used with --connections\n", prog);
		goto out;
	}
	if (o.connections && lg_reserve_fds(o.connections, prog))
		goto out;
	rc = 3;
	if (app_load_config(prog))
		goto out;
	signal(SIGPIPE, SIG_IGN);

	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || app_ctx_setup(ctx, &o.app, prog))
		goto out;
	if (o.cafile) {
		if (!SSL_CTX_load_verify_locations(ctx, o.cafile, NULL)) {
			app_ssl_errors(prog, "--cafile");
			goto out;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	addrs = resolve(o.host, o.port);
	if (!addrs)
		goto out;
	if (o.connections) {
		rc = load_run(&o, ctx, addrs);
		goto out;
	}
	rc = conn_open(&c, ctx, addrs);
	if (rc)
		goto out;
	rc = conn_transfer(&c);
	snprintf(diag, sizeof(diag), "%s", app_diag_json(c.ssl));
	snprintf(kopts, sizeof(kopts), "%s", app_kernel_opts_json(c.fd));
	conn_close(&c, rc);
	rc = conn_check(&c, rc);
	if (o.json) {
		printf("{\"ok\":%s,\"error\":\"%s\",\"protocol\":\"%s\",\"cipher\":\"%s\","
		       "\"bytes_sent\":%llu,\"bytes_received\":%llu,\"sha256_sent\":\"%s\","
		       "\"sha256_received\":\"%s\",\"keyupdates_sent\":%llu,\"handoff\":%s,"
		       "\"responses\":%d,\"responses_200\":%d,\"body_bytes\":%llu,\"reconnects\":%u,"
		       "\"kernel_conf\":%s,\"kernel_opts\":%s,\"openssl\":\"%s\",\"status\":%s}\n",
		       rc ? "false" : "true", rc ? (x->error ? x->error : "hash mismatch") : "",
		       SSL_get_version(c.ssl), SSL_get_cipher_name(c.ssl),
		       (unsigned long long)x->sent, (unsigned long long)x->recvd, c.out_hex,
		       c.in_hex, (unsigned long long)x->kus, c.handed_off ? "true" : "false",
		       x->http ? x->http->answered : 0, x->http ? x->http->ok : 0,
		       (unsigned long long)(x->http ? x->http->body_bytes : 0), x->reconnects, diag,
		       kopts, OpenSSL_version(OPENSSL_VERSION), app_status_json(c.ssl));
	} else {
		fprintf(stderr, "%s: %s %s: sent %llu bytes (sha256 %s), received %llu (sha256 %s), "
				"%llu KeyUpdates sent: %s\n",
			prog, SSL_get_version(c.ssl), SSL_get_cipher_name(c.ssl),
			(unsigned long long)x->sent, c.out_hex, (unsigned long long)x->recvd,
			c.in_hex, (unsigned long long)x->kus, rc ? "FAILED" : "ok");
		app_print_status(stderr, "  ", c.ssl);
	}
out:
	/* every exit comes here: nothing leaks */
	if (o.output && fclose(o.output) && !rc)
		rc = 1;
	conn_free(&c);
	if (addrs)
		freeaddrinfo(addrs);
	SSL_CTX_free(ctx);
	return rc;
}
