// SPDX-License-Identifier: MIT
/* common.c - option handling, context setup and status output for the apps. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/conf.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/opensslv.h>
#include <openssl/provider.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ktls-uapi.h>

#include "common.h"

/* ------------------------------------------------------------------ */
/* openssl.cnf                                                         */
/* ------------------------------------------------------------------ */

static void conf_failed(const char *prog, const char *file)
{
	fprintf(stderr, "%s: error configuring OpenSSL modules from %s\n", prog, file);
	ERR_print_errors_fp(stderr);
}

/* A name after its first '.', as OpenSSL reads provider and command names. */
static const char *conf_skip_dot(const char *name)
{
	const char *dot = strchr(name, '.');

	return dot ? dot + 1 : name;
}

/* OpenSSL 3.0 reads only the presence of "activate" and "soft_load";
 * later releases read their value too. */
static bool conf_false(const char *v)
{
	return !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "false") ||
	       !strcasecmp(v, "off");
}

/* Does section sect activate a provider (without soft_load) that is not
 * active?  *name (the identity key overrides it) and *module are set. */
static bool conf_provider_missing(const CONF *conf, const char *sect, const char **name,
				  const char **module)
{
	STACK_OF(CONF_VALUE) *cmds = NCONF_get_section(conf, sect);
	bool activate = false, soft = false;
	int i;

	for (i = 0; i < sk_CONF_VALUE_num(cmds); i++) {
		const CONF_VALUE *c = sk_CONF_VALUE_value(cmds, i);
		const char *key = conf_skip_dot(c->name);

		if (!strcmp(key, "identity"))
			*name = c->value;
		else if (!strcmp(key, "module"))
			*module = c->value;
		else if (!strcmp(key, "activate"))
			activate = !conf_false(c->value);
		else if (!strcmp(key, "soft_load"))
			soft = !conf_false(c->value);
	}
	return activate && !soft && !OSSL_PROVIDER_available(NULL, *name);
}

/*
 * OpenSSL (3.0 to 3.5 at least) takes a provider that fails to activate
 * from openssl.cnf for a non-fatal problem: CONF_modules_load() succeeds
 * and drops the errors.  So each provider the file activates must be
 * active now.  Returns how many are not, each named under conf_failed()'s
 * line.
 */
static int conf_check_providers(const CONF *conf, const char *prog, const char *file)
{
	STACK_OF(CONF_VALUE) *mods = NULL;
	const char *top;
	int i, j, missing = 0;

	ERR_set_mark();
	top = NCONF_get_string(conf, NULL, "openssl_conf");
	ERR_pop_to_mark();
	if (top)
		mods = NCONF_get_section(conf, top);
	for (i = 0; i < sk_CONF_VALUE_num(mods); i++) {
		const CONF_VALUE *m = sk_CONF_VALUE_value(mods, i);
		const char *dot = strrchr(m->name, '.');	/* "providers.2" too */
		size_t n = dot ? (size_t)(dot - m->name) : strlen(m->name);
		STACK_OF(CONF_VALUE) *provs;

		if (n != strlen("providers") || strncmp(m->name, "providers", n))
			continue;
		provs = NCONF_get_section(conf, m->value);
		for (j = 0; j < sk_CONF_VALUE_num(provs); j++) {
			const CONF_VALUE *p = sk_CONF_VALUE_value(provs, j);
			const char *name = conf_skip_dot(p->name), *module = NULL;

			if (!conf_provider_missing(conf, p->value, &name, &module))
				continue;
			if (!missing++)
				conf_failed(prog, file);
			fprintf(stderr, "%s: provider \"%s\" (section [%s]%s%s) did not activate\n",
				prog, name, p->value, module ? ", module " : "", module ? module : "");
		}
	}
	return missing;
}

int app_load_config(const char *prog)
{
	CONF *conf = NULL;
	char *file = NULL;
	int ret = -1;

	/* The file is read here, not by CONF_modules_load_file(), so that the
	 * providers it activates can be checked after loading. */
	if (!OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL) ||
	    !(file = CONF_get1_default_config_file())) {
		app_ssl_errors(prog, "initialising OpenSSL");
		return -1;
	}
	if (!*file) {
		ret = 0;	/* OPENSSL_CONF="": no file, as in OpenSSL */
		goto out;
	}
	conf = NCONF_new_ex(NULL, NULL);
	if (!conf) {
		conf_failed(prog, file);
		goto out;
	}
	if (NCONF_load(conf, file, NULL) <= 0) {
		if (ERR_GET_REASON(ERR_peek_last_error()) == CONF_R_NO_SUCH_FILE) {
			ERR_clear_error();	/* no file: OpenSSL's built-in defaults */
			ret = 0;
		} else {
			conf_failed(prog, file);
		}
		goto out;
	}
	if (CONF_modules_load(conf, NULL, CONF_MFLAGS_DEFAULT_SECTION) <= 0)
		conf_failed(prog, file);
	else if (!conf_check_providers(conf, prog, file))
		ret = 0;
out:
	NCONF_free(conf);
	OPENSSL_free(file);
	return ret;
}

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
	case APP_OPT_OWN_BIO:
		o->own_bio = true;
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
	if (o->no_prestage)
		p.prestage = false;
	if (o->tls13_policy)
		p.tls13 = !strcmp(o->tls13_policy, "always") ? KTLS_TLS13_ALWAYS :
			  !strcmp(o->tls13_policy, "never") ? KTLS_TLS13_NEVER : KTLS_TLS13_AUTO;
	if (!o->own_bio) {
		ret = ktls_conn_attach(ssl, fd, &p);
		if (ret) {
			fprintf(stderr, "%s: ktls_conn_attach: %s\n", prog, strerror(-ret));
			return -1;
		}
		return 0;
	}
	ret = app_own_bio(ssl, fd);
	if (!ret)
		ret = ktls_conn_delegate(ssl, fd, &p);
	if (ret) {
		fprintf(stderr, "%s: ktls_conn_delegate: %s\n", prog, strerror(-ret));
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
	static _Thread_local char buf[2048];
	struct ktls_status st;

	if (ktls_conn_status(ssl, &st) || ktls_status_json(&st, buf, sizeof(buf)) < 0)
		return "null";
	return buf;
}

const char *app_diag_json(SSL *ssl)
{
	static _Thread_local char buf[64];
	const char *tx, *rx;

	if (ktls_conn_diag(ssl, &tx, &rx))
		return "null";
	snprintf(buf, sizeof(buf), "{\"tx\":\"%s\",\"rx\":\"%s\"}", tx, rx);
	return buf;
}

static const char *sol_tls_bool(int fd, int opt)
{
	int v = 0;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_TLS, opt, &v, &len))
		return "null";
	return v ? "true" : "false";
}

const char *app_kernel_opts_json(int fd)
{
	static _Thread_local char buf[80];

	snprintf(buf, sizeof(buf), "{\"rx_expect_no_pad\":%s,\"tx_zerocopy_ro\":%s}",
		 sol_tls_bool(fd, TLS_RX_EXPECT_NO_PAD), sol_tls_bool(fd, TLS_TX_ZEROCOPY_RO));
	return buf;
}

void app_print_version(const char *prog)
{
	/* the library this process runs, which may be newer than the one it
	 * was built with (LD_LIBRARY_PATH): both are worth knowing */
	printf("%s (ktls-offload) %s\n", prog, ktls_version());
	printf("libssl: %s (built with %s)\n", OpenSSL_version(OPENSSL_VERSION),
	       OPENSSL_VERSION_TEXT);
}

void app_fill(uint8_t *buf, size_t len, uint64_t off)
{
	/* A cheap position-dependent pattern: detects reordering and loss. */
	for (size_t i = 0; i < len; i++) {
		uint64_t x = off + i;

		buf[i] = (uint8_t)((x * 2654435761u) >> 13 ^ (x >> 8));
	}
}

void app_fill_text(uint8_t *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = off + i;

		buf[i] = x % 64 == 63 ? '\n' :
			 (uint8_t)('a' + ((x * 2654435761u) >> 13 ^ (x >> 8)) % 26);
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

bool app_http_keep_alive(const char *req)
{
	const char *eol = strpbrk(req, "\r\n"), *h;
	bool v11 = eol && eol - req >= 8 && !strncmp(eol - 8, "HTTP/1.1", 8);

	/* header names and the tokens are case-insensitive (RFC 9110) */
	for (h = eol; h && *h; h = strpbrk(h, "\r\n")) {
		h += strspn(h, "\r\n");
		if (!strncasecmp(h, "Connection:", 11)) {
			h += 11 + strspn(h + 11, " \t");
			if (!strncasecmp(h, "close", 5))
				return false;
			if (!strncasecmp(h, "keep-alive", 10))
				return true;
		}
	}
	return v11;
}

int app_http_answer(const char *root, char *req, bool keep, char *head, size_t headlen,
		    off_t *size, const char **err)
{
	char path[PATH_MAX], *sp = req + 4, *end;
	struct stat st;
	int fd = -1;

	if (strncmp(req, "GET /", 5) || !(end = strpbrk(sp, " \r\n"))) {
		*err = "bad request";
	} else {
		*end = 0;
		if (strstr(sp, "..") ||
		    snprintf(path, sizeof(path), "%s%s", root, sp) >= (int)sizeof(path))
			*err = "forbidden";
		else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0 ||
			 !S_ISREG(st.st_mode))
			*err = "not found";
		else
			*err = NULL;
	}
	if (*err) {
		if (fd >= 0)
			close(fd);
		snprintf(head, headlen,
			 "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
			 !strcmp(*err, "bad request") ? 400 : !strcmp(*err, "forbidden") ? 403 : 404,
			 *err, strlen(*err) + 1, *err);
		return -1;
	}
	*size = st.st_size;
	snprintf(head, headlen, "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\nConnection: %s\r\n\r\n",
		 (long long)st.st_size, keep ? "keep-alive" : "close");
	return fd;
}
