/* SPDX-License-Identifier: MIT */
/*
 * httpget.h - the HTTP/1.1 side of ktls-client --get: GET requests on one
 * keep-alive connection, responses split into header and body (by
 * Content-Length), bodies handed to the caller.  A server that closes
 * after an answer (Connection: close, or an end of the stream between two
 * answers) leaves the rest for a new connection: http_get_reconnect().
 */
#ifndef KTLS_APPS_HTTPGET_H
#define KTLS_APPS_HTTPGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_get {
	const char *path, *host;
	int requests;		/* to make */
	int made;		/* requests built so far */
	int answered;		/* complete responses */
	int ok;			/* of those, status 200 */
	char req[1024];		/* the request being sent */
	size_t req_len, req_off;
	char hdr[8192];		/* header of the response being read */
	size_t hdr_len;
	bool in_body;
	int status;		/* of the response being read */
	uint64_t body_left;
	uint64_t body_bytes;	/* all bodies */
	bool server_close;	/* the response being read said Connection: close */
	bool closing;		/* the server closes after the last answer: no more
				 * requests on this connection */
	int on_conn;		/* responses on the current connection */
	const char *error;
};

/* Sets up n requests for path on host and builds the first (in req). */
int http_get_init(struct http_get *h, const char *path, const char *host, int n);

/* Received bytes: body bytes go to body(arg, p, len), and end(arg, status)
 * follows each complete response (NULL: none); a complete response builds
 * the next request, if any, unless the server said it closes.  0, or -1
 * with h->error set (or a callback's -1). */
int http_get_feed(struct http_get *h, const uint8_t *p, size_t n,
		  int (*body)(void *arg, const uint8_t *p, size_t n),
		  int (*end)(void *arg, int status), void *arg);

/* The server ended the stream: true when the requests left can go on a
 * new connection (it said Connection: close, or closed between two
 * answers after answering at least one on this connection); then the
 * next request is ready to send again.  False: it closed mid-answer or
 * before any answer. */
bool http_get_reconnect(struct http_get *h);

static inline bool http_get_done(const struct http_get *h)
{
	return h->answered == h->requests;
}

#endif
