// SPDX-License-Identifier: MIT
/*
 * ktls-serve - a TLS server on the bridge: echo, or static files over
 * HTTP/1.1 (SSL_sendfile when the kernel encrypts; sendfile(2) itself after
 * a hand-off).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <openssl/err.h>

#include "common.h"
#include "uring.h"

static const char *prog = "ktls-serve";

struct serve_opts {
	struct app_opts app;
	const char *cert, *key, *root, *bind_addr;
	int port;
	bool echo, verbose, json, handoff, uring, multishot;
	long max_conns;
	long keyupdate_every;
	bool keyupdate_requested;
	int timeout, threads;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ktls-serve --cert FILE --key FILE [--port N] [--bind ADDR]\n"
		"                  [--echo | --root DIR] [--tls1_2|--tls1_3] [--verbose] [--json]\n"
		"A TLS server whose records go through kernel TLS when the kernel can.\n\n"
		"  --cert FILE / --key FILE  server certificate and private key (PEM)\n"
		"  --port N                  TCP port (default 4433; 0 picks one, printed)\n"
		"  --bind ADDR               listen address (default 127.0.0.1; 0.0.0.0 for all)\n"
		"  --echo                    echo every byte back (default)\n"
		"  --root DIR                serve files below DIR for HTTP/1.1 GET\n"
		"  --max-conns N             exit after N connections (default: run forever)\n"
		"  --keyupdate-every N       send a KeyUpdate every N records echoed (TLS 1.3)\n"
		"  --keyupdate-requested     ... with update_requested\n"
		"  --handoff                 after the handshake hand both directions to the\n"
		"                            kernel and echo (or send files with sendfile(2))\n"
		"                            on the socket itself\n"
		"  --uring                   many connections at once on one io_uring ring,\n"
		"                            each handed off after its handshake (implies\n"
		"                            --handoff; --root files go out by splice)\n"
		"  --threads N               with --uring: N rings, one per thread, all\n"
		"                            accepting (1 to 256; default 1)\n"
		"  --multishot               with --uring, echo: one multishot RECVMSG per\n"
		"                            connection into provided buffers (no staged\n"
		"                            keys: the receive reads ahead of the bridge)\n"
		"  --timeout SECS            per-connection idle timeout (default 60; with\n"
		"                            --uring: waiting for the next request or the\n"
		"                            peer's close_notify)\n"
		"  --verbose                 print each connection's offload status (stderr)\n"
		"  --json                    print one JSON line per connection (stdout)\n"
		APP_OPTS_HELP
		"  -h, --help                this text\n"
		"  --version                 print the versions (ours, libssl's) and exit\n"
		"\n"
		"Exit status: 0 after --max-conns connections, 1 setup error (openssl.cnf\n"
		"included), 2 usage.\n");
}

static int listen_on(const struct serve_opts *o)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port) };
	socklen_t alen = sizeof(a);
	int one = 1, fd;

	if (inet_pton(AF_INET, o->bind_addr, &a.sin_addr) != 1) {
		fprintf(stderr, "%s: --bind %s: not an IPv4 address\n", prog, o->bind_addr);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, SOMAXCONN) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
		fprintf(stderr, "%s: listen on %s:%d: %s\n", prog, o->bind_addr, o->port,
			strerror(errno));
		return -1;
	}
	fprintf(stderr, "%s: listening on %s:%u\n", prog, o->bind_addr, ntohs(a.sin_port));
	return fd;
}

static int write_all(SSL *ssl, const void *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		int n = SSL_write(ssl, (const char *)buf + off, (int)(len - off));

		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* After a hand-off the bridge's calls move the bytes (the kernel's records);
 * before, or when the hand-off was refused, libssl's. */
static int conn_read(SSL *ssl, bool ho, char *buf, size_t len)
{
	ssize_t n;

	if (!ho)
		return SSL_read(ssl, buf, (int)len);
	n = ktls_conn_recv(ssl, buf, len);
	if (n < 0)
		fprintf(stderr, "%s: ktls_conn_recv: %s\n", prog, strerror((int)-n));
	return n < 0 ? -1 : (int)n;
}

static int conn_write_all(SSL *ssl, bool ho, const void *buf, size_t len)
{
	if (!ho)
		return write_all(ssl, buf, len);
	for (size_t off = 0; off < len;) {
		ssize_t w = ktls_conn_send(ssl, (const char *)buf + off, len - off);

		if (w < 0) {
			fprintf(stderr, "%s: ktls_conn_send: %s\n", prog, strerror((int)-w));
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

/* A file after a hand-off: sendfile(2) on the socket, the kernel makes the
 * records.  ktls_conn_send(ssl, NULL, 0) before each piece pays a KeyUpdate
 * owed to the peer and counts the records, for the bridge's own KeyUpdate
 * at the policy's limit; pieces of 16 records keep the count close. */
#define HANDOFF_PIECE (16 * 16384)

static int sendfile_handoff(SSL *ssl, int fd, off_t size)
{
	off_t off = 0;

	while (off < size) {
		ssize_t r = ktls_conn_send(ssl, NULL, 0);
		size_t piece = size - off < HANDOFF_PIECE ? (size_t)(size - off) : HANDOFF_PIECE;

		if (r < 0) {
			fprintf(stderr, "%s: ktls_conn_send: %s\n", prog, strerror((int)-r));
			return -1;
		}
		r = sendfile(SSL_get_fd(ssl), fd, &off, piece);
		if (r <= 0) {
			fprintf(stderr, "%s: sendfile: %s\n", prog,
				r ? strerror(errno) : "the file ended early");
			return -1;
		}
	}
	return 0;
}

/* Echo until the peer closes. Returns 0 on a clean close. */
static int serve_echo(SSL *ssl, const struct serve_opts *o, EVP_MD_CTX *md, uint64_t *total,
		      uint64_t *kus)
{
	static char buf[16384];
	long records = 0;

	for (;;) {
		int n = SSL_read(ssl, buf, sizeof(buf));

		if (n <= 0) {
			int e = SSL_get_error(ssl, n);

			if (e == SSL_ERROR_ZERO_RETURN)
				return 0;
			if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0)
				return 0;	/* EOF without close_notify */
			app_ssl_errors(prog, "SSL_read");
			return -1;
		}
		EVP_DigestUpdate(md, buf, (size_t)n);
		*total += (uint64_t)n;
		if (write_all(ssl, buf, (size_t)n)) {
			app_ssl_errors(prog, "SSL_write");
			return -1;
		}
		if (o->keyupdate_every && ++records % o->keyupdate_every == 0 &&
		    SSL_version(ssl) == TLS1_3_VERSION) {
			if (!SSL_key_update(ssl, o->keyupdate_requested ? SSL_KEY_UPDATE_REQUESTED
									: SSL_KEY_UPDATE_NOT_REQUESTED)) {
				app_ssl_errors(prog, "SSL_key_update");
				return -1;
			}
			(*kus)++;
		}
	}
}

/* Echo on the socket after ktls_conn_handoff(): records are the kernel's. */
static int serve_echo_handoff(SSL *ssl, const struct serve_opts *o, EVP_MD_CTX *md,
			      uint64_t *total, uint64_t *kus)
{
	static char buf[16384];
	long records = 0;

	for (;;) {
		int n = conn_read(ssl, true, buf, sizeof(buf));

		if (n <= 0)
			return n;
		EVP_DigestUpdate(md, buf, (size_t)n);
		*total += (uint64_t)n;
		if (conn_write_all(ssl, true, buf, (size_t)n))
			return -1;
		if (o->keyupdate_every && ++records % o->keyupdate_every == 0 &&
		    SSL_version(ssl) == TLS1_3_VERSION) {
			int r = ktls_conn_keyupdate(ssl, o->keyupdate_requested);

			if (r) {
				fprintf(stderr, "%s: ktls_conn_keyupdate: %s\n", prog, strerror(-r));
				return -1;
			}
			(*kus)++;
		}
	}
}

/* One HTTP/1.1 GET for a file below root; ho: handed off. */
static int serve_file(SSL *ssl, const struct serve_opts *o, bool ho, uint64_t *total,
		      bool *used_sendfile)
{
	char req[4096], hdr[256];
	const char *err;
	size_t have = 0;
	off_t off = 0, size = 0;
	int fd, n;

	while (have < sizeof(req) - 1) {
		n = conn_read(ssl, ho, req + have, sizeof(req) - 1 - have);
		if (n <= 0)
			return -1;
		have += (size_t)n;
		req[have] = 0;
		if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
			break;
	}
	fd = app_http_answer(o->root, req, false, hdr, sizeof(hdr), &size, &err);
	if (fd < 0)
		return conn_write_all(ssl, ho, hdr, strlen(hdr));
	n = (int)strlen(hdr);
	if (conn_write_all(ssl, ho, hdr, (size_t)n))
		goto fail;
	if (ho) {
		*used_sendfile = true;
		n = sendfile_handoff(ssl, fd, size);
		close(fd);
		if (!n)
			*total = (uint64_t)size;
		return n;
	}
	*used_sendfile = BIO_get_ktls_send(SSL_get_wbio(ssl));
	while (off < size) {
		ossl_ssize_t s;

		if (*used_sendfile) {
			s = SSL_sendfile(ssl, fd, off, (size_t)(size - off), 0);
		} else {
			static char buf[16384];

			s = pread(fd, buf, sizeof(buf), off);
			if (s > 0 && write_all(ssl, buf, (size_t)s))
				s = -1;
		}
		if (s <= 0)
			goto fail;
		off += s;
	}
	*total = (uint64_t)off;
	close(fd);
	return 0;
fail:
	app_ssl_errors(prog, *used_sendfile ? "SSL_sendfile" : "sending the file");
	close(fd);
	return -1;
}

static void handle(SSL_CTX *ctx, int cfd, const struct serve_opts *o, long id)
{
	struct timeval tv = { .tv_sec = o->timeout };
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint64_t total = 0, kus = 0;
	bool sendfile_used = false, handed_off = false;
	char hex[65] = "", diag[64] = "null", kopts[80] = "null";
	SSL *ssl = SSL_new(ctx);
	int ok = -1;

	setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (!ssl || !md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
	    app_attach(ssl, cfd, &o->app, prog))
		goto out;
	if (SSL_accept(ssl) <= 0) {
		app_ssl_errors(prog, "TLS handshake");
		goto out;
	}
	if (o->handoff) {
		int r = ktls_conn_handoff(ssl);

		handed_off = r == 0;
		if (r)	/* nothing changed: echo in userspace and say why */
			fprintf(stderr, "%s: conn %ld: hand-off refused (%s); going on through "
				"libssl\n", prog, id, strerror(-r));
	}
	snprintf(diag, sizeof(diag), "%s", app_diag_json(ssl));
	snprintf(kopts, sizeof(kopts), "%s", app_kernel_opts_json(cfd));
	if (o->root)
		ok = serve_file(ssl, o, handed_off, &total, &sendfile_used);
	else if (handed_off)
		ok = serve_echo_handoff(ssl, o, md, &total, &kus);
	else
		ok = serve_echo(ssl, o, md, &total, &kus);
	if (ok == 0 && handed_off)
		ktls_conn_shutdown(ssl);
	else if (ok == 0)
		SSL_shutdown(ssl);
	app_sha256_hex(md, hex);
	if (o->verbose) {
		fprintf(stderr, "%s: conn %ld: %s %s, %s %llu bytes%s%s\n", prog, id,
			SSL_get_version(ssl), SSL_get_cipher_name(ssl),
			o->root ? "sent" : "echoed", (unsigned long long)total,
			sendfile_used ? " with SSL_sendfile" : "", ok ? " (ended with an error)" : "");
		app_print_status(stderr, "  ", ssl);
	}
	if (o->json)
		printf("{\"conn\":%ld,\"ok\":%s,\"protocol\":\"%s\",\"cipher\":\"%s\","
		       "\"bytes\":%llu,\"sha256_in\":\"%s\",\"keyupdates_sent\":%llu,"
		       "\"sendfile\":%s,\"handoff\":%s,\"kernel_conf\":%s,\"kernel_opts\":%s,"
		       "\"openssl\":\"%s\",\"bio\":\"%s\","
		       "\"status\":%s}\n",
		       id, ok ? "false" : "true", SSL_get_version(ssl), SSL_get_cipher_name(ssl),
		       (unsigned long long)total, o->root ? "" : hex, (unsigned long long)kus,
		       sendfile_used ? "true" : "false", handed_off ? "true" : "false", diag,
		       kopts, OpenSSL_version(OPENSSL_VERSION),
		       BIO_method_name(SSL_get_rbio(ssl)), app_status_json(ssl));
	fflush(stdout);
out:
	ERR_clear_error();
	SSL_free(ssl);
	EVP_MD_CTX_free(md);
	close(cfd);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "port", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, 'b' },
		{ "echo", no_argument, NULL, 'e' },
		{ "root", required_argument, NULL, 'r' },
		{ "max-conns", required_argument, NULL, 'm' },
		{ "keyupdate-every", required_argument, NULL, 'u' },
		{ "keyupdate-requested", no_argument, NULL, 'U' },
		{ "handoff", no_argument, NULL, 'H' },
		{ "uring", no_argument, NULL, 'R' },
		{ "threads", required_argument, NULL, 'T' },
		{ "multishot", no_argument, NULL, 'M' },
		{ "timeout", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		APP_LONG_OPTS,
		{ 0 },
	};
	struct serve_opts o = { .port = 4433, .bind_addr = "127.0.0.1", .timeout = 60 };
	SSL_CTX *ctx;
	long served = 0;
	int ch, lfd, r;
	char *end;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		r = app_opt(&o.app, ch, optarg, prog);
		if (r < 0)
			return 2;
		if (r)
			continue;
		switch (ch) {
		case 'c': o.cert = optarg; break;
		case 'k': o.key = optarg; break;
		case 'b': o.bind_addr = optarg; break;
		case 'e': o.echo = true; break;
		case 'r': o.root = optarg; break;
		case 'U': o.keyupdate_requested = true; break;
		case 'H': o.handoff = true; break;
		case 'R': o.uring = o.handoff = true; break;
		case 'M': o.multishot = o.app.no_prestage = true; break;
		case 'v': o.verbose = true; break;
		case 'j': o.json = true; break;
		case 'V':
			app_print_version(prog);
			return 0;
		case 'h': usage(stdout); return 0;
		case 'p': case 'm': case 'u': case 't': case 'T': {
			long v = strtol(optarg, &end, 10);

			if (*end || v < 0 || (ch == 'p' && v > 65535) ||
			    (ch == 'T' && (v < 1 || v > 256))) {
				fprintf(stderr, "%s: bad number '%s'\n", prog, optarg);
				return 2;
			}
			if (ch == 'p') o.port = (int)v;
			else if (ch == 'm') o.max_conns = v;
			else if (ch == 'u') o.keyupdate_every = v;
			else if (ch == 'T') o.threads = (int)v;
			else o.timeout = (int)v;
			break;
		}
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !o.cert || !o.key || (o.echo && o.root) ||
	    (o.app.own_bio && (o.root || o.uring)) || ((o.threads || o.multishot) && !o.uring) ||
	    (o.multishot && o.root)) {
		fprintf(stderr, "%s: %s\n", prog,
			optind != argc ? "unexpected argument" :
			(o.threads && !o.uring) ? "--threads works with --uring only" :
			(o.multishot && !o.uring) ? "--multishot works with --uring only" :
			(o.multishot && o.root) ? "--multishot works with echo only (--root reads "
						  "each request with single receives)" :
			(o.echo && o.root) ? "--echo and --root exclude each other" :
			o.uring ? "--own-bio does not work with --uring (a hand-off needs the "
				  "bridge's own BIO)" :
			o.root ? "--own-bio works with --echo only (SSL_sendfile needs a "
				 "descriptor BIO)" :
			"--cert and --key are required");
		usage(stderr);
		return 2;
	}
	if (app_load_config(prog))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || app_ctx_setup(ctx, &o.app, prog))
		return 1;
	if (SSL_CTX_use_certificate_chain_file(ctx, o.cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, o.key, SSL_FILETYPE_PEM) != 1) {
		app_ssl_errors(prog, "loading --cert/--key");
		return 1;
	}
	lfd = listen_on(&o);
	if (lfd < 0)
		return 1;
	if (o.uring) {
		struct uring_opts uo = {
			.app = &o.app, .prog = prog, .root = o.root, .max_conns = o.max_conns,
			.keyupdate_every = o.keyupdate_every,
			.keyupdate_requested = o.keyupdate_requested, .verbose = o.verbose,
			.json = o.json, .timeout = o.timeout, .threads = o.threads,
			.multishot = o.multishot,
		};

		r = uring_serve(ctx, lfd, &uo);
		close(lfd);
		SSL_CTX_free(ctx);
		return r;
	}
	while (!o.max_conns || served < o.max_conns) {
		int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: accept: %s\n", prog, strerror(errno));
			return 1;
		}
		handle(ctx, cfd, &o, ++served);
	}
	close(lfd);
	SSL_CTX_free(ctx);
	return 0;
}
