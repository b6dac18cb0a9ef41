// SPDX-License-Identifier: MIT
/*
 * conn.c - the public connection API: SSL_CTX setup (key-log chaining),
 * attaching a bridge to an SSL, status, and the TLS 1.3 TX re-key.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "internal.h"

/* ------------------------------------------------------------------ */
/* SSL_CTX: key-log chaining                                           */
/* ------------------------------------------------------------------ */

static int app_keylog_idx = -1, app_info_idx = -1;
static CRYPTO_ONCE keylog_once = CRYPTO_ONCE_STATIC_INIT;

static void keylog_idx_init(void)
{
	app_keylog_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	app_info_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

typedef void (*info_cb_func)(const SSL *ssl, int where, int ret);

/* The end of the first handshake: from here the peer's records are under
 * the application traffic key (TLS 1.3), which a hand-off must count. */
static void info_cb(const SSL *ssl, int where, int ret)
{
	struct ktls_conn *c = ktls_conn_of(ssl);
	info_cb_func app;

	if (c && (where & SSL_CB_HANDSHAKE_DONE) && !c->hs_done) {
		c->hs_done = true;
		c->rx_app_base = c->rx.st.records;
	}
	/* libssl wrote an alert (through the kernel or in userspace): a
	 * fatal one or close_notify is the connection's last record */
	if (c && where == SSL_CB_WRITE_ALERT) {
		if ((ret >> 8) == ALERT_LEVEL_FATAL)
			ktls_conn_end(c, true);
		else if ((ret & 0xff) == ALERT_CLOSE_NOTIFY)
			ktls_conn_end(c, false);
	}
	app = (info_cb_func)SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), app_info_idx);
	if (app)
		app(ssl, where, ret);
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static const EVP_MD *suite_digest(const SSL *ssl)
{
	const SSL_CIPHER *ciph = SSL_get_current_cipher(ssl);

	if (!ciph)
		ciph = SSL_get_pending_cipher(ssl);
	return ciph ? SSL_CIPHER_get_handshake_digest(ciph) : NULL;
}

int ktls_keylog_parse(const char *line, bool *client, uint8_t *secret, size_t cap)
{
	static const char cts[] = "CLIENT_TRAFFIC_SECRET_0 ";
	static const char sts[] = "SERVER_TRAFFIC_SECRET_0 ";
	const char *p;
	size_t n = 0;

	if (!strncmp(line, cts, sizeof(cts) - 1))
		*client = true;
	else if (!strncmp(line, sts, sizeof(sts) - 1))
		*client = false;
	else
		return -ENOENT;
	p = strchr(line + sizeof(cts) - 1, ' ');
	if (!p)
		return -EBADMSG;
	for (p++; p[0] && p[1] && n < cap; p += 2) {
		int hi = hexval(p[0]), lo = hexval(p[1]);

		if (hi < 0 || lo < 0)
			break;
		secret[n++] = (uint8_t)(hi << 4 | lo);
	}
	/* the whole secret or nothing: hex to the end */
	if (*p && *p != '\n') {
		OPENSSL_cleanse(secret, n);
		return -EBADMSG;
	}
	return (int)n;
}

/* "LABEL <client_random> <secret>": keep TLS 1.3 application secrets. */
static void keylog_take(const SSL *ssl, struct ktls_conn *c, const char *line)
{
	uint8_t secret[KTLS_MAX_SECRET];
	bool client_label, ours_tx;
	const char *digest;
	const EVP_MD *md;
	int n;

	n = ktls_keylog_parse(line, &client_label, secret, sizeof(secret));
	if (n < 0)
		return;
	md = suite_digest(ssl);
	digest = md ? EVP_MD_get0_name(md) : NULL;
	ours_tx = SSL_is_server(ssl) ? !client_label : client_label;
	/* ... and Hash.length bytes of it */
	if (digest && n && n == EVP_MD_get_size(md) &&
	    !ktls_secret_set(ours_tx ? &c->tx.secret : &c->rx.secret, secret, (size_t)n, digest) &&
	    (ours_tx ? &c->tx : &c->rx)->st.mode != KTLS_MODE_USERSPACE)
		ktls_key_stage(c, ours_tx);	/* keys went to the kernel before the secret */
	OPENSSL_cleanse(secret, sizeof(secret));
}

static void keylog_cb(const SSL *ssl, const char *line)
{
	struct ktls_conn *c = ktls_conn_of(ssl);
	SSL_CTX_keylog_cb_func app;

	if (c && line)
		keylog_take(ssl, c, line);
	app = (SSL_CTX_keylog_cb_func)SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl),
							  app_keylog_idx);
	if (app)
		app(ssl, line);
}

int ktls_ctx_setup(SSL_CTX *ctx)
{
	SSL_CTX_keylog_cb_func app;
	info_cb_func info;

	if (!ctx)
		return -EINVAL;
	if (!CRYPTO_THREAD_run_once(&keylog_once, keylog_idx_init) || app_keylog_idx < 0)
		return -ENOMEM;
	app = SSL_CTX_get_keylog_callback(ctx);
	if (app != keylog_cb &&
	    !SSL_CTX_set_ex_data(ctx, app_keylog_idx, (void *)app))
		return -ENOMEM;
	info = SSL_CTX_get_info_callback(ctx);
	if (info != info_cb &&
	    !SSL_CTX_set_ex_data(ctx, app_info_idx, (void *)info))
		return -ENOMEM;
	SSL_CTX_set_keylog_callback(ctx, keylog_cb);
	SSL_CTX_set_info_callback(ctx, info_cb);
	SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Attaching                                                           */
/* ------------------------------------------------------------------ */

/* One getsockopt answers all of it (a server attaches every connection it
 * accepts, so this is per-connection cost): TCP_INFO exists only on TCP
 * sockets (EBADF, ENOTSOCK, and EOPNOTSUPP or ENOPROTOOPT from sockets of
 * other kinds), and its state says whether there is a peer where
 * getpeername(2) would fail: closed, listening, or still connecting. */
static int check_fd(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (fd < 0)
		return -EBADF;
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0) {
		if (errno == EOPNOTSUPP || errno == ENOPROTOOPT)
			return -EPROTOTYPE;
		return -errno;
	}
	if (len < 1)
		return -EPROTOTYPE;
	switch (ti.tcpi_state) {
	case TCP_CLOSE:
	case TCP_LISTEN:
	case TCP_SYN_SENT:
		return -ENOTCONN;
	default:
		return 0;
	}
}

BIO *ktls_bio_new(int fd, int close_flag, const struct ktls_policy *policy)
{
	const BIO_METHOD *m = ktls_bio_method();
	struct ktls_conn *c;
	BIO *b;

	if (!m || fd < 0 || (policy && ktls_policy_check(policy)))
		return NULL;
	c = ktls_conn_new(fd, policy);
	if (!c)
		return NULL;
	b = BIO_new(m);
	if (!b) {
		ktls_conn_free(c);
		return NULL;
	}
	c->close_flag = close_flag;
	BIO_set_data(b, c);
	BIO_set_init(b, 1);
	return b;
}

/* What attaching and delegating check first (ssl has no bridge yet when
 * they get here); *p gets *policy, or the provider's. */
static int conn_prepare(int fd, const struct ktls_policy *policy, struct ktls_policy *p)
{
	int ret = check_fd(fd);

	if (ret)
		return ret;
	if (policy) {
		*p = *policy;
		return ktls_policy_check(p);
	}
	/* OpenSSL 3.0 cannot tell an SSL_CTX's library context; the provider
	 * is looked up in the default one (where openssl.cnf loads it). */
	ret = ktls_policy_load(NULL, p);
	return ret < 0 ? ret : 0;
}

int ktls_conn_attach(SSL *ssl, int fd, const struct ktls_policy *policy)
{
	struct ktls_policy p;
	struct ktls_conn *c;
	BIO *b;
	int ret;

	if (!ssl)
		return -EINVAL;
	if (ktls_delegated(ssl))
		return -EEXIST;
	ret = conn_prepare(fd, policy, &p);
	if (ret)
		return ret;
	b = ktls_bio_new(fd, BIO_NOCLOSE, &p);
	if (!b)
		return -ENOMEM;
	c = BIO_get_data(b);
	c->ssl = ssl;
	SSL_set_bio(ssl, b, b);
	return 0;
}

int ktls_conn_delegate(SSL *ssl, int fd, const struct ktls_policy *policy)
{
	struct ktls_policy p;
	struct ktls_conn *c;
	int ret;

	if (!ssl)
		return -EINVAL;
	if (ktls_conn_of(ssl))
		return -EEXIST;
	ret = conn_prepare(fd, policy, &p);
	if (ret)
		return ret;
	c = ktls_conn_new(fd, &p);
	if (!c)
		return -ENOMEM;
	ret = ktls_delegate_bind(ssl, c);
	if (ret)
		ktls_conn_free(c);
	return ret;
}

int ktls_conn_linger(SSL *ssl, int timeout_ms)
{
	struct ktls_conn *c = ktls_conn_of(ssl);

	return c ? ktls_linger_now(c, timeout_ms) : -EINVAL;
}

/* ------------------------------------------------------------------ */
/* Status                                                              */
/* ------------------------------------------------------------------ */

int ktls_conn_status(SSL *ssl, struct ktls_status *st)
{
	struct ktls_conn *c;

	if (!ssl || !st)
		return -EINVAL;
	c = ktls_conn_of(ssl);
	if (!c)
		return -EINVAL;
	st->tx = c->tx.st;
	st->rx = c->rx.st;
	return 0;
}

static const char *conf_name(int conf)
{
	static const char *const names[] = { "none", "base", "sw", "hw", "hw-record" };

	return conf >= 0 && conf < (int)(sizeof(names) / sizeof(names[0])) ? names[conf] : "unknown";
}

int ktls_conn_diag(SSL *ssl, const char **tx, const char **rx)
{
	struct ktls_conn *c;
	int t, r, ret;

	if (!ssl || !tx || !rx)
		return -EINVAL;
	c = ktls_conn_of(ssl);
	if (!c)
		return -EINVAL;
	ret = ktls_diag_conf(c->fd, &t, &r);
	if (ret)
		return ret;
	*tx = conf_name(t);
	*rx = conf_name(r);
	return 0;
}

static size_t json_str(char *out, size_t cap, const char *s)
{
	size_t n = 0;

#define PUT(ch) do { if (n + 1 < cap) out[n] = (ch); n++; } while (0)
	PUT('"');
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			PUT('\\');
			PUT((char)ch);
		} else if (ch < 0x20) {
			PUT(' ');
		} else {
			PUT((char)ch);
		}
	}
	PUT('"');
#undef PUT
	if (cap)
		out[n < cap ? n : cap - 1] = 0;
	return n;
}

static int json_dir(char *buf, size_t cap, const char *name, const struct ktls_dir_status *d)
{
	char reason[256], detail[160];
	const char *ver = d->version == KTLS_TLS13 ? "1.3" : d->version == KTLS_TLS12 ? "1.2" : "";

	json_str(reason, sizeof(reason), ktls_reason_str(d->reason));
	json_str(detail, sizeof(detail), d->detail);
	return snprintf(buf, cap,
			"\"%s\":{\"mode\":\"%s\",\"reason_code\":\"%s\",\"reason\":%s,"
			"\"errno\":\"%s\",\"detail\":%s,\"tls\":\"%s\",\"cipher\":\"%s\","
			"\"records\":%llu,\"bytes\":%llu,\"rekeys\":%llu,\"keyupdates\":%llu,"
			"\"staged_switches\":%llu,\"key_calls\":%llu,\"key_expired\":%llu,"
			"\"early_pauses\":%llu,\"rekeys_ahead\":%llu}",
			name, ktls_mode_str(d->mode), ktls_reason_code(d->reason), reason,
			d->err ? ktls_errno_name(d->err) : "", detail, ver,
			d->cipher ? d->cipher->name : "",
			(unsigned long long)d->records, (unsigned long long)d->bytes,
			(unsigned long long)d->rekeys, (unsigned long long)d->keyupdates,
			(unsigned long long)d->staged_switches, (unsigned long long)d->key_calls,
			(unsigned long long)d->key_expired, (unsigned long long)d->early_pauses,
			(unsigned long long)d->rekeys_ahead);
}

int ktls_status_json(const struct ktls_status *st, char *buf, size_t cap)
{
	int a, b, c;

	if (!st || !buf || !cap)
		return -EINVAL;
	a = snprintf(buf, cap, "{");
	if (a < 0 || (size_t)a >= cap)
		return -ENOSPC;
	b = json_dir(buf + a, cap - (size_t)a, "tx", &st->tx);
	if (b < 0 || (size_t)(a + b) >= cap)
		return -ENOSPC;
	c = snprintf(buf + a + b, cap - (size_t)(a + b), ",");
	if (c < 0 || (size_t)(a + b + c) >= cap)
		return -ENOSPC;
	c += json_dir(buf + a + b + c, cap - (size_t)(a + b + c), "rx", &st->rx);
	if ((size_t)(a + b + c) + 2 > cap)
		return -ENOSPC;
	strcat(buf, "}");
	return (int)strlen(buf);
}
