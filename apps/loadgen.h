/* SPDX-License-Identifier: MIT */
/*
 * loadgen.h - ktls-client --connections: one connection function run N
 * times at once, each in a thread of its own and all released together,
 * and what came of it summed up (totals, failures, transfer times).
 */
#ifndef KTLS_APPS_LOADGEN_H
#define KTLS_APPS_LOADGEN_H

#include <stdbool.h>
#include <stdint.h>

#include "ktls-bridge.h"

#define LG_MAX_CONNECTIONS 10000

/* What one connection reports. */
struct lg_result {
	bool ok;
	const char *step;	/* what failed: "connect", "handshake", "transfer", ... */
	char error[256];	/* and why */
	int port;		/* local TCP port, 0 when it never connected */
	uint64_t sent, received, keyupdates;
	uint64_t transfer_ns;	/* connect start to the end of the transfer */
	unsigned requests;	/* --get: responses read (on all its connections) */
	uint64_t body_bytes;	/* ... their bodies */
	unsigned reconnects;	/* ... new connections after a server's close */
	bool handoff;		/* handed off to the kernel (--handoff) */
	bool have_status;	/* status below is the bridge's */
	struct ktls_status status;
};

/* One connection, number idx of the run: fills *r (zeroed beforehand). */
typedef void lg_conn_fn(void *arg, unsigned idx, struct lg_result *r);

/* Room for n connections' descriptors: raises the soft RLIMIT_NOFILE to
 * the hard limit when needed.  0, or -1 (message printed) when n cannot
 * fit under the hard limit. */
int lg_reserve_fds(unsigned n, const char *prog);

/* Runs fn(arg, i, &res[i]) for i in 0..n-1 at once, each in its own
 * thread; all start together once every thread exists.  *wall_ns is the
 * time from that start to the end of the last.  A thread that cannot be
 * created is a failed connection (step "thread"). */
void lg_run(unsigned n, lg_conn_fn *fn, void *arg, struct lg_result *res, uint64_t *wall_ns);

/* One line on stderr per failed connection, then the summary: a line on
 * stderr, or with json one JSON object on stdout.  Returns how many
 * connections failed. */
unsigned lg_report(const char *prog, const struct lg_result *res, unsigned n,
		   uint64_t wall_ns, bool json);

#endif
