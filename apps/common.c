// SPDX-License-Identifier: MIT
/* common.c - option handling, context setup and status output for the apps. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>

#include "common.h"

int app_opt(struct app_opts *o, int code, const char *arg, const char *prog)
{
	switch (code) {
	case APP_OPT_TLS12:
		o->tls_version = TLS1_2_VERSION;
		return 1;
	case APP_OPT_TLS13:
		o->tls_version = TLS1_3_VERSION;
		return 1;
	case APP_OPT_CIPHERS:
		o->ciphers = arg;
		return 1;
	case APP_OPT_SUITES:
		o->ciphersuites = arg;
		return 1;
	case APP_OPT_TLS13_POLICY:
		if (strcmp(arg, "auto") && strcmp(arg, "always") && strcmp(arg, "never")) {
			fprintf(stderr, "%s: --tls13-offload %s: expected auto, always or never\n",
				prog, arg);
			return -1;
		}
		o->tls13_policy = arg;
		return 1;
	case APP_OPT_NO_OFFLOAD:
		o->no_offload = true;
		return 1;
	default:
		return 0;
	}
}

int app_ctx_setup(SSL_CTX *ctx, const struct app_opts *o, const char *prog)
{
	int ret;

	if (o->tls_version &&
	    (!SSL_CTX_set_min_proto_version(ctx, o->tls_version) ||
	     !SSL_CTX_set_max_proto_version(ctx, o->tls_version))) {
		app_ssl_errors(prog, "setting the TLS version");
		return -1;
	}
	if (o->ciphers && !SSL_CTX_set_cipher_list(ctx, o->ciphers)) {
		app_ssl_errors(prog, "--cipher");
		return -1;
	}
	if (o->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, o->ciphersuites)) {
		app_ssl_errors(prog, "--ciphersuites");
		return -1;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	ret = ktls_ctx_setup(ctx);
	if (ret) {
		fprintf(stderr, "%s: ktls_ctx_setup: %s\n", prog, strerror(-ret));
		return -1;
	}
	return 0;
}

int app_attach(SSL *ssl, int fd, const struct app_opts *o, const char *prog)
{
	struct ktls_policy p;
	int ret;

	ret = ktls_policy_load(NULL, &p);
	if (ret < 0) {
		fprintf(stderr, "%s: reading the ktls provider's policy: %s\n", prog,
			strerror(-ret));
		return -1;
	}
	if (o->no_offload)
		p.offload = false;
	if (o->tls13_policy)
		p.tls13 = !strcmp(o->tls13_policy, "always") ? KTLS_TLS13_ALWAYS :
			  !strcmp(o->tls13_policy, "never") ? KTLS_TLS13_NEVER : KTLS_TLS13_AUTO;
	ret = ktls_conn_attach(ssl, fd, &p);
	if (ret) {
		fprintf(stderr, "%s: ktls_conn_attach: %s\n", prog, strerror(-ret));
		return -1;
	}
	return 0;
}

static void print_dir(FILE *f, const char *who, const char *dir, const struct ktls_dir_status *d)
{
	fprintf(f, "%s %s: %s", who, dir, ktls_mode_str(d->mode));
	if (d->cipher)
		fprintf(f, " %s TLS %s", d->cipher->name, d->version == KTLS_TLS13 ? "1.3" : "1.2");
	if (d->reason != KTLS_R_NONE)
		fprintf(f, " - %s [%s]", ktls_reason_str(d->reason), d->detail);
	fprintf(f, "; %llu records, %llu bytes", (unsigned long long)d->records,
		(unsigned long long)d->bytes);
	if (d->mode == KTLS_MODE_USERSPACE) {
		/* The bridge carries ciphertext here: libssl runs the KeyUpdates. */
		fprintf(f, " (libssl's records)\n");
		return;
	}
	fprintf(f, ", %llu KeyUpdates, %llu kernel re-keys (%llu to a staged key)\n",
		(unsigned long long)d->keyupdates, (unsigned long long)d->rekeys,
		(unsigned long long)d->staged_switches);
}

void app_print_status(FILE *f, const char *who, SSL *ssl)
{
	struct ktls_status st;

	if (ktls_conn_status(ssl, &st))
		return;
	print_dir(f, who, "tx", &st.tx);
	print_dir(f, who, "rx", &st.rx);
}

const char *app_status_json(SSL *ssl)
{
	static char buf[2048];
	struct ktls_status st;

	if (ktls_conn_status(ssl, &st) || ktls_status_json(&st, buf, sizeof(buf)) < 0)
		return "null";
	return buf;
}

const char *app_diag_json(SSL *ssl)
{
	static char buf[64];
	const char *tx, *rx;

	if (ktls_conn_diag(ssl, &tx, &rx))
		return "null";
	snprintf(buf, sizeof(buf), "{\"tx\":\"%s\",\"rx\":\"%s\"}", tx, rx);
	return buf;
}

void app_fill(uint8_t *buf, size_t len, uint64_t off)
{
	/* A cheap position-dependent pattern: detects reordering and loss. */
	for (size_t i = 0; i < len; i++) {
		uint64_t x = off + i;

		buf[i] = (uint8_t)((x * 2654435761u) >> 13 ^ (x >> 8));
	}
}

void app_sha256_hex(EVP_MD_CTX *md, char out[65])
{
	EVP_MD_CTX *copy = EVP_MD_CTX_new();
	unsigned char d[32];
	unsigned int n = 0;

	out[0] = 0;
	if (!copy)
		return;
	if (EVP_MD_CTX_copy_ex(copy, md) && EVP_DigestFinal_ex(copy, d, &n))
		for (unsigned int i = 0; i < n; i++)
			sprintf(out + 2 * i, "%02x", d[i]);
	EVP_MD_CTX_free(copy);
}

void app_ssl_errors(const char *prog, const char *what)
{
	unsigned long e;
	char buf[256];

	fprintf(stderr, "%s: %s failed\n", prog, what);
	while ((e = ERR_get_error())) {
		ERR_error_string_n(e, buf, sizeof(buf));
		fprintf(stderr, "%s:   %s\n", prog, buf);
	}
}

int app_selfsigned(EVP_PKEY **pkey, X509 **cert)
{
	*pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	*cert = X509_new();
	if (!*pkey || !*cert || !X509_set_version(*cert, 2) ||
	    !X509_gmtime_adj(X509_getm_notBefore(*cert), 0) ||
	    !X509_gmtime_adj(X509_getm_notAfter(*cert), 3600) ||
	    !X509_set_pubkey(*cert, *pkey) ||
	    !X509_set_issuer_name(*cert, X509_get_subject_name(*cert)) ||
	    !X509_sign(*cert, *pkey, EVP_sha256())) {
		EVP_PKEY_free(*pkey);
		X509_free(*cert);
		return -1;
	}
	return 0;
}

int app_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s == '-')
		return -1;
	v = strtoull(s, &end, 10);
	if (end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end || !v)
		return -1;
	*out = v;
	return 0;
}

int app_parse_list(const char *arg, const char *const *names, size_t n, bool *want,
		   const char *prog, const char *opt)
{
	char *s = strdup(arg), *tok, *save = NULL;
	int ret = 0;

	if (!s)
		return -1;
	memset(want, 0, n * sizeof(*want));
	for (tok = strtok_r(s, ",", &save); tok && !ret; tok = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < n && strcmp(tok, names[i]); i++)
			;
		if (i == n) {
			fprintf(stderr, "%s: %s: unknown name '%s'\n", prog, opt, tok);
			ret = -1;
		} else {
			want[i] = true;
		}
	}
	free(s);
	return ret;
}
