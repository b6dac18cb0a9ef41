/* SPDX-License-Identifier: MIT */
/* uring.h - ktls-serve --uring: hand-off connections on one io_uring ring. */
#ifndef KTLS_APPS_URING_H
#define KTLS_APPS_URING_H
#include <stdbool.h>
#include <openssl/ssl.h>

#include "common.h"

struct uring_opts {
	const struct app_opts *app;
	const char *prog;
	const char *root;		/* serve files below it, else echo */
	long max_conns;			/* 0: run forever */
	long keyupdate_every;		/* echo: a KeyUpdate every N records */
	bool keyupdate_requested;
	bool verbose, json;
	unsigned int entries;		/* ring size */
	int threads;			/* rings, one per thread (0, 1: one) */
	bool multishot;			/* echo: one multishot RECVMSG per connection */
	int timeout;			/* seconds a connection may wait for its next
					 * request or the peer's close_notify; 0: no limit */
};

/* Accept on lfd and serve until max_conns connections ended (o->threads
 * rings, one per thread).  0, or 1 on a setup error or a ring's failure
 * (message printed). */
int uring_serve(SSL_CTX *ctx, int lfd, const struct uring_opts *o);

#endif
