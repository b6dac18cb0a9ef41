// SPDX-License-Identifier: MIT
/*
 * ktls-rekey-bench - what a TLS 1.3 KeyUpdate costs the receiver.
 *
 * One-way transfers over loopback.  The sender hands its connection off
 * (ktls_conn_handoff) and sends 16 KiB records through the kernel, with a
 * KeyUpdate every R records or none.  The receiver is one of:
 *   staged     hand-off, the next receive key staged (TLS_RX_NEXT): the
 *              kernel switches at once
 *   setagain   hand-off with prestage = off: the kernel answers EKEYEXPIRED
 *              after each KeyUpdate until TLS_RX is set again (6.14 UAPI)
 *   userspace  libssl decrypts (the bridge in transparent mode; OpenSSL 3.0
 *              never offloads TLS 1.3 reception)
 * For each it prints the stall per KeyUpdate (from the start of the read
 * that brought the KeyUpdate record to the return of the next data, and
 * the system calls in between), the EKEYEXPIRED answers, and the
 * throughput with KeyUpdates against the same receiver without them,
 * measured in the same run.  Numbers, not a test.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>

#include "common.h"

static const char *prog = "ktls-rekey-bench";

enum mode { M_STAGED, M_SETAGAIN, M_USERSPACE, M__N };
static const char *const mode_name[M__N] = { "staged", "setagain", "userspace" };

#define MAX_STALLS 65536

struct run {
	enum mode mode;
	uint64_t bytes;
	long every;		/* KeyUpdate every N records; 0 none */
	SSL_CTX *sctx, *cctx;
	int lfd;
	struct sockaddr_in addr;
	/* receiver results */
	uint64_t got, kus, expired;
	double stall[MAX_STALLS];	/* seconds */
	double stall_calls[MAX_STALLS];
	size_t nstall;
	double rec_time;	/* median seconds per plain data read */
	char error[160];
	/* userspace receiver: KeyUpdate seen by the message callback */
	int ku_seen;
	uint64_t reads;
};

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static int attach(SSL *ssl, int fd, enum mode m)
{
	struct ktls_policy pol;

	ktls_policy_load(NULL, &pol);
	pol.prestage = m != M_SETAGAIN;
	pol.storm_limit = UINT32_MAX;	/* a KeyUpdate every record is the point */
	pol.keyupdate_records = 0;
	return ktls_conn_attach(ssl, fd, &pol);
}

static void key_calls(SSL *ssl, uint64_t *calls, uint64_t *expired)
{
	struct ktls_status st;

	*calls = *expired = 0;
	if (!ktls_conn_status(ssl, &st)) {
		*calls = st.rx.key_calls;
		*expired = st.rx.key_expired;
	}
}

/* Hand-off receiver: every record through ktls_conn_recv_record.  The
 * bridge's key calls are read before each read, so that those made for a
 * KeyUpdate in the read that brought it are counted too. */
static void receive_handoff(struct run *r, SSL *ssl)
{
	static uint8_t buf[16384];
	static double plain[MAX_STALLS];
	size_t nplain = 0;
	bool pending = false;
	double t_ku = 0;
	uint64_t c0 = 0, e0 = 0, reads = 0, c, e;

	for (;;) {
		double t = now();
		uint64_t cb, eb;
		int type;
		ssize_t n;

		key_calls(ssl, &cb, &eb);
		n = ktls_conn_recv_record(ssl, buf, sizeof(buf), &type);
		if (n <= 0) {
			if (n < 0)
				snprintf(r->error, sizeof(r->error), "ktls_conn_recv_record: %s",
					 strerror((int)-n));
			break;
		}
		reads++;
		if (type == 23) {
			r->got += (uint64_t)n;
			if (pending && r->nstall < MAX_STALLS) {
				double t1 = now();

				key_calls(ssl, &c, &e);
				r->stall[r->nstall] = t1 - t_ku;
				/* recvmsg calls, those answered EKEYEXPIRED, key calls */
				r->stall_calls[r->nstall++] = (double)(reads + (e - e0) + (c - c0));
				pending = false;
			} else if (nplain < MAX_STALLS) {
				plain[nplain++] = now() - t;
			}
			continue;
		}
		if (type == 22) {	/* counted from the start of this read */
			t_ku = t;
			c0 = cb;
			e0 = eb;
			reads = 1;
			pending = true;
			r->kus++;
		}
		if (ktls_conn_control(ssl, type, buf, (size_t)n) != 0)
			break;
	}
	key_calls(ssl, &c, &r->expired);
	r->rec_time = median(plain, nplain);
}

static void on_msg(int write_p, int version, int content_type, const void *buf, size_t len,
		   SSL *ssl, void *arg)
{
	struct run *r = arg;

	(void)version;
	(void)ssl;
	if (!write_p && content_type == SSL3_RT_HANDSHAKE && len && *(const uint8_t *)buf == 24)
		r->ku_seen++;
}

static long count_reads(BIO *b, int oper, const char *argp, size_t len, int argi, long argl,
			int ret, size_t *processed)
{
	struct run *r = (struct run *)BIO_get_callback_arg(b);

	(void)argp;
	(void)len;
	(void)argi;
	(void)argl;
	(void)processed;
	if (oper == BIO_CB_READ)
		r->reads++;
	return ret;
}

/* Userspace receiver: SSL_read; the KeyUpdate shows in the message callback. */
static void receive_userspace(struct run *r, SSL *ssl)
{
	static char buf[16384];
	static double plain[MAX_STALLS];
	size_t nplain = 0;
	int n;

	SSL_set_msg_callback(ssl, on_msg);
	SSL_set_msg_callback_arg(ssl, r);
	BIO_set_callback_arg(SSL_get_rbio(ssl), (char *)r);
	BIO_set_callback_ex(SSL_get_rbio(ssl), count_reads);
	for (;;) {
		int seen = r->ku_seen;
		uint64_t reads = r->reads;
		double t = now();

		n = SSL_read(ssl, buf, sizeof(buf));
		if (n <= 0)
			break;
		r->got += (uint64_t)n;
		if (r->ku_seen != seen && r->nstall < MAX_STALLS) {
			r->stall[r->nstall] = now() - t;
			r->stall_calls[r->nstall++] = (double)(r->reads - reads);
		} else if (nplain < MAX_STALLS) {
			plain[nplain++] = now() - t;
		}
	}
	r->kus = (uint64_t)r->ku_seen;
	r->rec_time = median(plain, nplain);
	BIO_set_callback_ex(SSL_get_rbio(ssl), NULL);
}

static void *receiver(void *arg)
{
	struct run *r = arg;
	int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
	SSL *ssl = SSL_new(r->sctx);
	int ret;

	if (fd < 0 || !ssl || attach(ssl, fd, r->mode) || SSL_accept(ssl) != 1) {
		snprintf(r->error, sizeof(r->error), "receiver handshake failed");
		goto out;
	}
	if (r->mode == M_USERSPACE) {
		receive_userspace(r, ssl);
	} else if ((ret = ktls_conn_handoff(ssl)) != 0) {
		struct ktls_status st;

		ktls_conn_status(ssl, &st);
		snprintf(r->error, sizeof(r->error), "receiver hand-off refused (%s): %s",
			 strerror(-ret), ktls_reason_str(st.tx.mode == KTLS_MODE_USERSPACE ?
							 st.tx.reason : st.rx.reason));
	} else {
		receive_handoff(r, ssl);
		ktls_conn_shutdown(ssl);
	}
out:
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int sender(struct run *r)
{
	static uint8_t buf[16384];
	uint64_t sent = 0, records = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ret = -1;
	SSL *ssl = SSL_new(r->cctx);

	app_fill(buf, sizeof(buf), 0);
	if (fd < 0 || !ssl || connect(fd, (struct sockaddr *)&r->addr, sizeof(r->addr)) ||
	    attach(ssl, fd, M_STAGED) || SSL_connect(ssl) != 1) {
		app_ssl_errors(prog, "connecting");
		goto out;
	}
	if ((ret = ktls_conn_handoff(ssl)) != 0) {
		fprintf(stderr, "%s: sender hand-off refused: %s\n", prog, strerror(-ret));
		goto out;
	}
	while (sent < r->bytes) {
		size_t chunk = r->bytes - sent < sizeof(buf) ? (size_t)(r->bytes - sent) : sizeof(buf);
		ssize_t n = ktls_conn_send(ssl, buf, chunk);

		if (n < 0) {
			fprintf(stderr, "%s: ktls_conn_send: %s\n", prog, strerror((int)-n));
			goto out;
		}
		sent += (uint64_t)n;
		if (r->every && ++records % (uint64_t)r->every == 0 && sent < r->bytes &&
		    (ret = ktls_conn_keyupdate(ssl, 0)) != 0) {
			fprintf(stderr, "%s: ktls_conn_keyupdate: %s\n", prog, strerror(-ret));
			goto out;
		}
	}
	ret = 0;
	ktls_conn_shutdown(ssl);
	{
		char sink[256];	/* the receiver's close_notify */

		while (ktls_conn_recv(ssl, sink, sizeof(sink)) > 0)
			;
	}
out:
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	return ret;
}

static SSL_CTX *ctx_new(bool server, const char *suite, EVP_PKEY *pkey, X509 *cert)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(ctx, suite);
	SSL_CTX_set_num_tickets(ctx, 0);
	if (server) {
		SSL_CTX_use_certificate(ctx, cert);
		SSL_CTX_use_PrivateKey(ctx, pkey);
	}
	ktls_ctx_setup(ctx);
	return ctx;
}

/* One transfer; 0, or -1 with the reason printed. */
static int one(struct run *r, const char *suite, EVP_PKEY *pkey, X509 *cert, double *wall)
{
	socklen_t alen = sizeof(r->addr);
	pthread_t th;
	double t0;
	int rc;

	r->sctx = ctx_new(true, suite, pkey, cert);
	r->cctx = ctx_new(false, suite, pkey, cert);
	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	r->addr.sin_family = AF_INET;
	r->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!r->sctx || !r->cctx || r->lfd < 0 ||
	    bind(r->lfd, (struct sockaddr *)&r->addr, sizeof(r->addr)) || listen(r->lfd, 1) ||
	    getsockname(r->lfd, (struct sockaddr *)&r->addr, &alen)) {
		perror("ktls-rekey-bench: listen");
		return -1;
	}
	t0 = now();
	pthread_create(&th, NULL, receiver, r);
	rc = sender(r);
	if (rc)
		shutdown(r->lfd, SHUT_RDWR);
	pthread_join(th, NULL);
	*wall = now() - t0;
	close(r->lfd);
	SSL_CTX_free(r->sctx);
	SSL_CTX_free(r->cctx);
	if (r->error[0]) {
		fprintf(stderr, "%s: %s: %s\n", prog, mode_name[r->mode], r->error);
		return -1;
	}
	if (rc || r->got != r->bytes) {
		fprintf(stderr, "%s: %s: received %llu of %llu bytes\n", prog, mode_name[r->mode],
			(unsigned long long)r->got, (unsigned long long)r->bytes);
		return -1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ktls-rekey-bench [--bytes N] [--every R] [--runs K] [--modes LIST]\n"
		"                        [--ciphersuite SUITE]\n"
		"What a TLS 1.3 KeyUpdate costs the receiving side: stall per KeyUpdate and\n"
		"throughput with KeyUpdates against none, per receiver mode (median of K runs).\n"
		"Needs a kernel that re-keys kTLS (6.14+, or the ktls-offload series).\n\n"
		"  --bytes N            per transfer (default 64M; k/M/G)\n"
		"  --every R            a KeyUpdate every R records of 16 KiB (default 16)\n"
		"  --runs K             runs per mode and setting (default 3)\n"
		"  --modes LIST         comma list of staged,setagain,userspace (default: all)\n"
		"  --ciphersuite SUITE  TLS 1.3 suite (default TLS_AES_128_GCM_SHA256)\n"
		"  -h, --help           this text\n"
		"  --version            print the versions (ours, libssl's) and exit\n"
		"\n"
		"Exit status: 0 all transfers completed, 1 one failed or openssl.cnf\n"
		"failed to load (reason on stderr), 2 usage.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bytes", required_argument, NULL, 'n' },
		{ "every", required_argument, NULL, 'e' },
		{ "runs", required_argument, NULL, 'r' },
		{ "modes", required_argument, NULL, 'm' },
		{ "ciphersuite", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	const char *suite = "TLS_AES_128_GCM_SHA256";
	bool want[M__N] = { true, true, true };
	uint64_t bytes = 64ull << 20;
	long every = 16;
	int runs = 3, ch, rc = 0;
	EVP_PKEY *pkey;
	X509 *cert;
	char *end;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			if (app_parse_size(optarg, &bytes)) {
				fprintf(stderr, "%s: --bytes %s: not a size\n", prog, optarg);
				return 2;
			}
			break;
		case 'e':
			every = strtol(optarg, &end, 10);
			if (*end || every < 1) {
				fprintf(stderr, "%s: --every %s: need a count >= 1\n", prog, optarg);
				return 2;
			}
			break;
		case 'r':
			runs = (int)strtol(optarg, &end, 10);
			if (*end || runs < 1 || runs > 99) {
				fprintf(stderr, "%s: --runs %s: 1..99\n", prog, optarg);
				return 2;
			}
			break;
		case 'm':
			if (app_parse_list(optarg, mode_name, M__N, want, prog, "--modes"))
				return 2;
			break;
		case 'c': suite = optarg; break;
		case 'V':
			app_print_version(prog);
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (app_load_config(prog))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	{
		const struct ktls_caps *caps = ktls_probe();

		if (!caps->ulp || !caps->rekey) {
			fprintf(stderr, "%s: kernel %s: %s (%s); this benchmark needs kernel TLS "
				"with TLS 1.3 re-keying\n", prog, caps->kernel,
				!caps->ulp ? "the tls ULP is unavailable" : "kTLS cannot re-key",
				strerror(!caps->ulp ? caps->ulp_err : caps->rekey_err));
			return 1;
		}
	}
	if (app_selfsigned(&pkey, &cert)) {
		app_ssl_errors(prog, "making a certificate");
		return 1;
	}
	printf("ktls-rekey-bench: TLS 1.3 %s, %llu bytes one way, a KeyUpdate every %ld "
	       "records vs none, median of %d runs, kernel %s\n", suite,
	       (unsigned long long)bytes, every, runs, ktls_probe()->kernel);
	printf("%-10s %6s %11s %11s %10s %12s %9s %9s %7s\n", "receiver", "KUs", "stall us",
	       "read us", "calls/KU", "EKEYEXPIRED", "MB/s KU", "MB/s 0", "ratio");
	for (int m = 0; m < M__N; m++) {
		double wall_ku[99], wall_0[99], stall[99], calls[99], rec[99];
		uint64_t kus = 0, expired = 0;
		bool failed = false;

		if (!want[m])
			continue;
		for (int i = 0; i < runs && !failed; i++) {
			static struct run r;

			for (int with = 0; with < 2 && !failed; with++) {
				memset(&r, 0, sizeof(r));
				r.mode = (enum mode)m;
				r.bytes = bytes;
				r.every = with ? every : 0;
				if (one(&r, suite, pkey, cert, with ? &wall_ku[i] : &wall_0[i])) {
					failed = true;
					break;
				}
				if (with) {
					stall[i] = median(r.stall, r.nstall);
					calls[i] = median(r.stall_calls, r.nstall);
					rec[i] = r.rec_time;
					kus = r.kus;
					expired += r.expired;
				}
			}
		}
		if (failed) {
			printf("%-10s %s\n", mode_name[m], "failed (see above)");
			rc = 1;
			continue;
		}
		double wk = median(wall_ku, (size_t)runs), w0 = median(wall_0, (size_t)runs);

		printf("%-10s %6llu %11.1f %11.1f %10.1f %12llu %9.1f %9.1f %7.3f\n", mode_name[m],
		       (unsigned long long)kus, median(stall, (size_t)runs) * 1e6,
		       median(rec, (size_t)runs) * 1e6, median(calls, (size_t)runs),
		       (unsigned long long)expired, (double)bytes / 1e6 / wk,
		       (double)bytes / 1e6 / w0, w0 / wk);
	}
	EVP_PKEY_free(pkey);
	X509_free(cert);
	return rc;
}
