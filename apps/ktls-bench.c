// SPDX-License-Identifier: MIT
/*
 * ktls-bench - one-way TLS transfers over loopback, measured per path:
 *   socket     stock OpenSSL, socket BIO, userspace records (baseline)
 *   ossl-ktls  stock OpenSSL, socket BIO + SSL_OP_ENABLE_KTLS
 *   bridge     the bridge BIO with its policy (kernel when it can)
 *   userspace  the bridge BIO with offload = off
 *   sendfile   the bridge, sender uses SSL_sendfile from a file
 * Prints wall time, CPU seconds (user/sys, both ends: one process) and
 * syscalls per MiB counted at the sender and receiver, and each path's CPU
 * ratio to the baseline measured in the same run.  Numbers, not a test.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common.h"

static const char *prog = "ktls-bench";

enum path { P_SOCKET, P_OSSL_KTLS, P_BRIDGE, P_USERSPACE, P_SENDFILE, P__N };
static const char *const path_name[P__N] = { "socket", "ossl-ktls", "bridge", "userspace",
					     "sendfile" };

struct run {
	enum path path;
	uint64_t bytes;
	int version;
	const char *cipher;
	SSL_CTX *sctx, *cctx;
	int lfd;
	struct sockaddr_in addr;
	const char *file;	/* sendfile source */
	/* results */
	uint64_t got;
	char tx_mode[16], rx_mode[16];
	int ok;
};

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu(double *user, double *sys)
{
	struct rusage r;

	getrusage(RUSAGE_SELF, &r);
	*user = (double)r.ru_utime.tv_sec + (double)r.ru_utime.tv_usec / 1e6;
	*sys = (double)r.ru_stime.tv_sec + (double)r.ru_stime.tv_usec / 1e6;
	return *user + *sys;
}

static int attach(SSL *ssl, int fd, enum path p)
{
	struct ktls_policy pol;

	if (p == P_SOCKET || p == P_OSSL_KTLS)
		return SSL_set_fd(ssl, fd) == 1 ? 0 : -1;
	ktls_policy_load(NULL, &pol);
	if (p == P_USERSPACE)
		pol.offload = false;
	return ktls_conn_attach(ssl, fd, &pol);
}

static void *receiver(void *arg)
{
	struct run *r = arg;
	static char buf[65536];
	int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
	SSL *ssl = SSL_new(r->sctx);
	int n;

	if (fd < 0 || !ssl || attach(ssl, fd, r->path) || SSL_accept(ssl) != 1)
		goto out;
	while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0)
		r->got += (uint64_t)n;
	SSL_shutdown(ssl);	/* answer the sender's close_notify */
	if (r->path >= P_BRIDGE) {
		struct ktls_status st;

		if (!ktls_conn_status(ssl, &st))
			snprintf(r->rx_mode, sizeof(r->rx_mode), "%s", ktls_mode_str(st.rx.mode));
	} else {
		snprintf(r->rx_mode, sizeof(r->rx_mode), "%s",
			 BIO_get_ktls_recv(SSL_get_rbio(ssl)) ? "kernel" : "userspace");
	}
out:
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int sender(struct run *r)
{
	static char buf[16384];
	uint64_t sent = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ffd = -1;
	SSL *ssl = SSL_new(r->cctx);

	app_fill((uint8_t *)buf, sizeof(buf), 0);
	if (fd < 0 || !ssl || connect(fd, (struct sockaddr *)&r->addr, sizeof(r->addr)) ||
	    attach(ssl, fd, r->path) || SSL_connect(ssl) != 1) {
		app_ssl_errors(prog, "connecting");
		goto out;
	}
	if (r->path == P_SENDFILE && BIO_get_ktls_send(SSL_get_wbio(ssl))) {
		ffd = open(r->file, O_RDONLY | O_CLOEXEC);
		while (ffd >= 0 && sent < r->bytes) {
			ossl_ssize_t n = SSL_sendfile(ssl, ffd, (off_t)sent, r->bytes - sent, 0);

			if (n <= 0)
				break;
			sent += (uint64_t)n;
		}
	} else {
		while (sent < r->bytes) {
			size_t chunk = r->bytes - sent < sizeof(buf) ? (size_t)(r->bytes - sent)
								      : sizeof(buf);
			int n = SSL_write(ssl, buf, (int)chunk);

			if (n <= 0)
				break;
			sent += (uint64_t)n;
		}
	}
	r->ok = sent == r->bytes;
	if (r->path >= P_BRIDGE) {
		struct ktls_status st;

		if (!ktls_conn_status(ssl, &st))
			snprintf(r->tx_mode, sizeof(r->tx_mode), "%s", ktls_mode_str(st.tx.mode));
	} else {
		snprintf(r->tx_mode, sizeof(r->tx_mode), "%s",
			 BIO_get_ktls_send(SSL_get_wbio(ssl)) ? "kernel" : "userspace");
	}
	if (SSL_shutdown(ssl) == 0) {
		/* Read on to the receiver's close_notify: with TLS 1.3 its
		 * session tickets sit unread here, and close() would reset the
		 * connection and drop the end of the stream still in flight. */
		char sink[4096];

		while (SSL_read(ssl, sink, sizeof(sink)) > 0)
			;
	}
out:
	if (ffd >= 0)
		close(ffd);
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	return r->ok ? 0 : -1;
}

static SSL_CTX *ctx_new(bool server, enum path p, int version, const char *cipher,
			EVP_PKEY *pkey, X509 *cert)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	SSL_CTX_set_min_proto_version(ctx, version);
	SSL_CTX_set_max_proto_version(ctx, version);
	if (cipher && version == TLS1_2_VERSION)
		SSL_CTX_set_cipher_list(ctx, cipher);
	else if (cipher)
		SSL_CTX_set_ciphersuites(ctx, cipher);
	if (server) {
		SSL_CTX_use_certificate(ctx, cert);
		SSL_CTX_use_PrivateKey(ctx, pkey);
	}
	if (p == P_OSSL_KTLS)
		SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
	else if (p >= P_BRIDGE)
		ktls_ctx_setup(ctx);
	return ctx;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ktls-bench [--bytes N] [--tls1_2|--tls1_3] [--cipher NAME] [--runs R]\n"
		"                  [--paths LIST]\n"
		"One-way TLS transfers over loopback; prints wall time, CPU seconds and\n"
		"their ratio to the 'socket' baseline of the same run (median of R runs).\n\n"
		"  --bytes N      per transfer (default 256M; k/M/G)\n"
		"  --tls1_2       (default) / --tls1_3\n"
		"  --cipher NAME  TLS 1.2 cipher list or TLS 1.3 suite\n"
		"                 (default ECDHE-ECDSA-AES128-GCM-SHA256 / TLS_AES_128_GCM_SHA256)\n"
		"  --runs R       runs per path (default 5)\n"
		"  --paths LIST   comma list of socket,ossl-ktls,bridge,userspace,sendfile\n"
		"                 (default: all)\n"
		"  -h, --help     this text\n"
		"  --version      print the versions (ours, libssl's) and exit\n"
		"\n"
		"Exit status: 0 all transfers completed, 1 one failed or openssl.cnf\n"
		"failed to load, 2 usage.\n");
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bytes", required_argument, NULL, 'n' },
		{ "tls1_2", no_argument, NULL, '2' },
		{ "tls1_3", no_argument, NULL, '3' },
		{ "cipher", required_argument, NULL, 'c' },
		{ "runs", required_argument, NULL, 'r' },
		{ "paths", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	uint64_t bytes = 256ull << 20;
	int version = TLS1_2_VERSION, runs = 5, ch, rc = 0;
	const char *cipher = NULL;
	bool want[P__N] = { true, true, true, true, true };
	char tmpl[] = "/tmp/ktls-bench-XXXXXX";
	double base_cpu = 0;
	EVP_PKEY *pkey;
	X509 *cert;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			if (app_parse_size(optarg, &bytes)) {
				fprintf(stderr, "%s: --bytes %s: not a size\n", prog, optarg);
				return 2;
			}
			break;
		case '2': version = TLS1_2_VERSION; break;
		case '3': version = TLS1_3_VERSION; break;
		case 'c': cipher = optarg; break;
		case 'r':
			runs = atoi(optarg);
			if (runs < 1 || runs > 99) {
				fprintf(stderr, "%s: --runs %s: 1..99\n", prog, optarg);
				return 2;
			}
			break;
		case 'p':
			if (app_parse_list(optarg, path_name, P__N, want, prog, "--paths"))
				return 2;
			break;
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
	if (!cipher)
		cipher = version == TLS1_2_VERSION ? "ECDHE-ECDSA-AES128-GCM-SHA256"
						   : "TLS_AES_128_GCM_SHA256";
	signal(SIGPIPE, SIG_IGN);
	if (app_selfsigned(&pkey, &cert)) {
		app_ssl_errors(prog, "making a certificate");
		return 1;
	}
	if (want[P_SENDFILE]) {
		int fd = mkstemp(tmpl);
		static uint8_t blk[1 << 16];
		uint64_t left = bytes;

		app_fill(blk, sizeof(blk), 0);
		while (fd >= 0 && left) {
			size_t n = left < sizeof(blk) ? (size_t)left : sizeof(blk);

			if (write(fd, blk, n) != (ssize_t)n)
				break;
			left -= n;
		}
		if (fd >= 0)
			close(fd);
	}
	printf("ktls-bench: %s %s, %llu bytes one way, median of %d runs, kernel %s\n",
	       version == TLS1_2_VERSION ? "TLS 1.2" : "TLS 1.3", cipher,
	       (unsigned long long)bytes, runs, ktls_probe()->kernel);
	printf("%-10s %-10s %-10s %9s %9s %9s %9s %9s %8s\n", "path", "tx", "rx", "wall s",
	       "user s", "sys s", "cpu s", "MB/s", "cpu/base");
	for (int p = 0; p < P__N; p++) {
		double wall[99], usr[99], sys[99], tot[99];
		struct run r = { 0 };

		if (!want[p])
			continue;
		for (int i = 0; i < runs; i++) {
			socklen_t alen = sizeof(r.addr);
			double u0, s0, u1, s1, t0;
			pthread_t th;

			memset(&r, 0, sizeof(r));
			r.path = (enum path)p;
			r.bytes = bytes;
			r.file = tmpl;
			r.sctx = ctx_new(true, r.path, version, cipher, pkey, cert);
			r.cctx = ctx_new(false, r.path, version, cipher, pkey, cert);
			r.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			r.addr.sin_family = AF_INET;
			r.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			if (bind(r.lfd, (struct sockaddr *)&r.addr, sizeof(r.addr)) ||
			    listen(r.lfd, 1) ||
			    getsockname(r.lfd, (struct sockaddr *)&r.addr, &alen)) {
				perror("ktls-bench: listen");
				return 1;
			}
			cpu(&u0, &s0);
			t0 = now();
			pthread_create(&th, NULL, receiver, &r);
			if (sender(&r))
				rc = 1;
			pthread_join(th, NULL);
			wall[i] = now() - t0;
			cpu(&u1, &s1);
			usr[i] = u1 - u0;
			sys[i] = s1 - s0;
			tot[i] = usr[i] + sys[i];
			if (r.got != bytes) {
				fprintf(stderr, "%s: %s: received %llu of %llu bytes\n", prog,
					path_name[p], (unsigned long long)r.got,
					(unsigned long long)bytes);
				rc = 1;
			}
			close(r.lfd);
			SSL_CTX_free(r.sctx);
			SSL_CTX_free(r.cctx);
		}
		qsort(wall, (size_t)runs, sizeof(double), cmp_double);
		qsort(usr, (size_t)runs, sizeof(double), cmp_double);
		qsort(sys, (size_t)runs, sizeof(double), cmp_double);
		qsort(tot, (size_t)runs, sizeof(double), cmp_double);
		if (p == P_SOCKET)
			base_cpu = tot[runs / 2];
		printf("%-10s %-10s %-10s %9.3f %9.3f %9.3f %9.3f %9.1f ", path_name[p],
		       r.tx_mode, r.rx_mode, wall[runs / 2], usr[runs / 2], sys[runs / 2],
		       tot[runs / 2], (double)bytes / 1e6 / wall[runs / 2]);
		if (base_cpu > 0)
			printf("%8.4f\n", tot[runs / 2] / base_cpu);
		else
			printf("%8s\n", "-");
	}
	if (want[P_SENDFILE])
		unlink(tmpl);
	EVP_PKEY_free(pkey);
	X509_free(cert);
	return rc;
}
