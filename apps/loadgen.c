// SPDX-License-Identifier: MIT
/*
 * loadgen.c - ktls-client --connections: N connections at once, one
 * thread each.  The threads wait at a gate until all of them exist, so
 * the connections start together; each runs the whole single-connection
 * client (its own hash check and KeyUpdate schedule) and reports into its
 * own lg_result, which are summed up here once all have ended.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <openssl/crypto.h>

#include "loadgen.h"

/* Descriptors beyond one socket per connection: stdio, the probe's files. */
#define LG_SPARE_FDS 64
/* A connection's thread runs a handshake and two 16 KiB buffers. */
#define LG_STACK (512 * 1024)

int lg_reserve_fds(unsigned n, const char *prog)
{
	rlim_t need = (rlim_t)n + LG_SPARE_FDS;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		fprintf(stderr, "%s: getrlimit(RLIMIT_NOFILE): %s\n", prog, strerror(errno));
		return -1;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
			fprintf(stderr, "%s: --connections %u needs %llu open files, but the hard "
					"limit (ulimit -Hn) is %llu\n",
				prog, n, (unsigned long long)need, (unsigned long long)rl.rlim_max);
			return -1;
		}
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl)) {
			fprintf(stderr, "%s: --connections %u: raising the open files limit: %s\n",
				prog, n, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* The gate every thread waits at until all exist. */
struct lg_gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
};

struct lg_job {
	struct lg_gate *gate;
	lg_conn_fn *fn;
	void *arg;
	unsigned idx;
	struct lg_result *res;
};

static void *lg_thread(void *p)
{
	struct lg_job *j = p;

	pthread_mutex_lock(&j->gate->lock);
	while (!j->gate->open)
		pthread_cond_wait(&j->gate->cond, &j->gate->lock);
	pthread_mutex_unlock(&j->gate->lock);
	j->fn(j->arg, j->idx, j->res);
	return NULL;
}

static uint64_t lg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void lg_run(unsigned n, lg_conn_fn *fn, void *arg, struct lg_result *res, uint64_t *wall_ns)
{
	struct lg_gate gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
	struct lg_job *jobs = calloc(n, sizeof(*jobs));
	pthread_t *th = calloc(n, sizeof(*th));
	bool *started = calloc(n, sizeof(*started));
	pthread_attr_t attr;
	uint64_t t0;
	unsigned i;
	int err;

	*wall_ns = 0;
	if (!jobs || !th || !started) {
		for (i = 0; i < n; i++) {
			res[i].step = "thread";
			snprintf(res[i].error, sizeof(res[i].error), "%s", strerror(ENOMEM));
		}
		goto out;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, LG_STACK);
	for (i = 0; i < n; i++) {
		jobs[i] = (struct lg_job){ &gate, fn, arg, i, &res[i] };
		err = pthread_create(&th[i], &attr, lg_thread, &jobs[i]);
		started[i] = !err;
		if (err) {
			res[i].step = "thread";
			snprintf(res[i].error, sizeof(res[i].error), "pthread_create: %s",
				 strerror(err));
		}
	}
	pthread_attr_destroy(&attr);
	t0 = lg_now_ns();
	pthread_mutex_lock(&gate.lock);
	gate.open = true;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
	for (i = 0; i < n; i++)
		if (started[i])
			pthread_join(th[i], NULL);
	*wall_ns = lg_now_ns() - t0;
out:
	free(jobs);
	free(th);
	free(started);
}

static int lg_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile p of sorted v[0..n-1] (n > 0). */
static uint64_t lg_percentile(const uint64_t *v, size_t n, unsigned p)
{
	size_t rank = (n * p + 99) / 100;

	return v[rank ? rank - 1 : 0];
}

/* s as the inside of a JSON string. */
static void lg_json_str(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

/* How many connections had each reason, per direction. */
struct lg_tally {
	unsigned with_status;		/* connections the bridge reported on */
	unsigned kernel[2];
	unsigned reasons[2][KTLS_R__COUNT];
	uint64_t keyupdates[2];		/* the bridge's own counts */
};

static const struct ktls_dir_status *lg_dir(const struct lg_result *r, int d)
{
	return d ? &r->status.rx : &r->status.tx;
}

static void lg_count(struct lg_tally *t, const struct lg_result *r)
{
	if (!r->have_status)
		return;
	t->with_status++;
	for (int d = 0; d < 2; d++) {
		const struct ktls_dir_status *s = lg_dir(r, d);

		t->kernel[d] += s->mode != KTLS_MODE_USERSPACE;
		if ((unsigned)s->reason < KTLS_R__COUNT)
			t->reasons[d][s->reason]++;
		t->keyupdates[d] += s->keyupdates;
	}
}

/* {"code":count,...} or, json false, "code count, ..." */
static void lg_print_reasons(FILE *f, const unsigned *reasons, bool json)
{
	bool first = true;

	if (json)
		fputc('{', f);
	for (int i = 0; i < KTLS_R__COUNT; i++) {
		if (!reasons[i])
			continue;
		fprintf(f, json ? "%s\"%s\":%u" : "%s%s %u", first ? "" : json ? "," : ", ",
			ktls_reason_code((enum ktls_reason)i), reasons[i]);
		first = false;
	}
	if (json)
		fputc('}', f);
}

unsigned lg_report(const char *prog, const struct lg_result *res, unsigned n,
		   uint64_t wall_ns, bool json)
{
	uint64_t *ns = calloc(n ? n : 1, sizeof(*ns));
	uint64_t sent = 0, received = 0, kus = 0, body = 0, reqs = 0, reconnects = 0;
	unsigned i, ok = 0, handoff = 0;
	double rps;
	struct lg_tally t = { 0 };
	double p50 = 0, p99 = 0, max = 0;
	bool first = true;

	for (i = 0; i < n; i++) {
		const struct lg_result *r = &res[i];

		sent += r->sent;
		received += r->received;
		kus += r->keyupdates;
		handoff += r->handoff;
		reqs += r->requests;
		body += r->body_bytes;
		reconnects += r->reconnects;
		lg_count(&t, r);
		if (r->ok) {
			if (ns)
				ns[ok] = r->transfer_ns;
			ok++;
			continue;
		}
		fprintf(stderr, "%s: connection %u", prog, i);
		if (r->port)
			fprintf(stderr, " (port %d)", r->port);
		fprintf(stderr, ": %s: %s\n", r->step ? r->step : "unknown",
			r->error[0] ? r->error : "failed");
	}
	if (ok && ns) {
		qsort(ns, ok, sizeof(*ns), lg_cmp_u64);
		p50 = (double)lg_percentile(ns, ok, 50) / 1e6;
		p99 = (double)lg_percentile(ns, ok, 99) / 1e6;
		max = (double)ns[ok - 1] / 1e6;
	}
	free(ns);
	/* every connection's answered requests, failed ones' too */
	rps = wall_ns ? (double)reqs * 1e9 / (double)wall_ns : 0;
	if (!json) {
		fprintf(stderr, "%s: %u connections: %u ok, %u failed; sent %llu bytes, received %llu, "
				"%llu KeyUpdates sent; TX in the kernel on %u, RX on %u",
			prog, n, ok, n - ok, (unsigned long long)sent, (unsigned long long)received,
			(unsigned long long)kus, t.kernel[0], t.kernel[1]);
		if (handoff)
			fprintf(stderr, ", %u handed off", handoff);
		if (reqs)
			fprintf(stderr, "; %llu requests (%.1f/s), %llu body bytes, %llu reconnects",
				(unsigned long long)reqs, rps, (unsigned long long)body,
				(unsigned long long)reconnects);
		if (ok)
			fprintf(stderr, "; transfer ms p50 %.3f p99 %.3f max %.3f", p50, p99, max);
		fprintf(stderr, "; wall %.3f s: %s\n", (double)wall_ns / 1e9,
			ok == n ? "ok" : "FAILED");
		for (int d = 0; d < 2 && t.with_status; d++) {
			fprintf(stderr, "  %s: ", d ? "rx" : "tx");
			lg_print_reasons(stderr, t.reasons[d], false);
			fprintf(stderr, "\n");
		}
		return n - ok;
	}
	printf("{\"ok\":%s,\"connections\":%u,\"succeeded\":%u,\"failed\":%u,"
	       "\"bytes_sent\":%llu,\"bytes_received\":%llu,\"keyupdates_sent\":%llu,"
	       "\"handoff\":%u,\"tx_kernel\":%u,\"rx_kernel\":%u,\"tx_reasons\":",
	       ok == n ? "true" : "false", n, ok, n - ok, (unsigned long long)sent,
	       (unsigned long long)received, (unsigned long long)kus, handoff, t.kernel[0],
	       t.kernel[1]);
	lg_print_reasons(stdout, t.reasons[0], true);
	printf(",\"rx_reasons\":");
	lg_print_reasons(stdout, t.reasons[1], true);
	printf(",\"status_keyupdates\":{\"tx\":%llu,\"rx\":%llu},\"transfer_ms\":",
	       (unsigned long long)t.keyupdates[0], (unsigned long long)t.keyupdates[1]);
	if (ok)
		printf("{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}", p50, p99, max);
	else
		printf("null");
	printf(",\"requests\":%llu,\"requests_per_s\":%.3f,\"bytes\":%llu,\"reconnects\":%llu",
	       (unsigned long long)reqs, rps, (unsigned long long)body,
	       (unsigned long long)reconnects);
	printf(",\"wall_ms\":%.3f,\"failures\":[", (double)wall_ns / 1e6);
	for (i = 0; i < n; i++) {
		if (res[i].ok)
			continue;
		printf("%s{\"index\":%u,\"port\":%d,\"step\":\"%s\",\"error\":\"", first ? "" : ",",
		       i, res[i].port, res[i].step ? res[i].step : "unknown");
		lg_json_str(stdout, res[i].error);
		printf("\",\"bytes_sent\":%llu,\"bytes_received\":%llu}",
		       (unsigned long long)res[i].sent, (unsigned long long)res[i].received);
		first = false;
	}
	printf("],\"openssl\":\"%s\"}\n", OpenSSL_version(OPENSSL_VERSION));
	return n - ok;
}
