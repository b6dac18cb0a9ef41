// SPDX-License-Identifier: MIT
/*
 * conn-test: a real TLS 1.2 and 1.3 handshake through two bridges over
 * loopback TCP on this host (fallback path: the host kernel has no kTLS).
 * Checks that the application's own key-log callback still fires after
 * ktls_ctx_setup(), that the bridge captured both directions' TLS 1.3
 * traffic secrets, that data and KeyUpdates flow, and that the first probe, raced by 8 threads with the cache empty, yields one result.
 * Hand-off's refusals before the kernel could own the connection: before
 * the handshake (EINPROGRESS), with a record half read by libssl (EAGAIN),
 * and here, where TX stayed in userspace (EOPNOTSUPP); the hand-off calls
 * on a connection that was not handed off (EINVAL).  Under wipecheck's
 * allocator hooks: the secrets libssl logs are found in live heap blocks,
 * and in no block the bridge frees (libssl's own are listed, not failed).
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "internal.h"
#include "ktest.h"
#include "testcert.h"
#include "wipecheck.h"

static int app_lines;
static int app_secret_lines;

/* Watch the secret of a key-log line ("LABEL <random> <secret>") with
 * wipecheck; a TLS 1.3 traffic secret with the generations the KeyUpdates
 * below make too (CLIENT_TRAFFIC_SECRET_0 ... _5; the ..._N lines libssl
 * logs after each KeyUpdate are those). */
static void watch_keylog(const char *line)
{
	const char *sp = strchr(line, ' '), *hex = sp ? strchr(sp + 1, ' ') : NULL;
	int label = sp ? (int)(sp - line) : 0;
	uint8_t s[KTLS_MAX_SECRET];
	struct ktls_secret sec;
	char name[48];
	size_t n = 0;

	if (!hex || (label > 2 && !strncmp(sp - 2, "_N", 2)))
		return;
	while (n < sizeof(s) && sscanf(hex + 1 + 2 * n, "%2hhx", &s[n]) == 1)
		n++;
	snprintf(name, sizeof(name), "%.*s", label, line);
	wipecheck_secret(name, s, n);
	if (label > 2 && !strcmp(name + label - 2, "_0") &&
	    !ktls_secret_set(&sec, s, n, n == 48 ? "SHA384" : "SHA256")) {
		for (int g = 1; g <= 5 && !ktls_secret_next(&sec); g++) {
			snprintf(name, sizeof(name), "%.*s%d", label - 1, line, g);
			wipecheck_secret(name, sec.s, sec.len);
		}
		ktls_secret_wipe(&sec);
	}
	OPENSSL_cleanse(s, sizeof(s));
}

static void app_keylog(const SSL *ssl, const char *line)
{
	(void)ssl;
	app_lines++;
	watch_keylog(line);
	if (strstr(line, "TRAFFIC_SECRET_0"))
		app_secret_lines++;
}

struct server_arg {
	SSL *ssl;
	int ok;
};

static void *server_main(void *p)
{
	struct server_arg *a = p;
	char buf[4096];
	int n;

	a->ok = SSL_accept(a->ssl) == 1;
	while (a->ok && (n = SSL_read(a->ssl, buf, sizeof(buf))) > 0)
		if (SSL_write(a->ssl, buf, n) != n)
			a->ok = 0;
	SSL_shutdown(a->ssl);
	return NULL;
}

static pthread_barrier_t probe_start;

static void *probe_thread(void *p)
{
	pthread_barrier_wait(&probe_start);	/* all ask at once, cache empty */
	*(const struct ktls_caps **)p = ktls_probe();
	return NULL;
}

static void run(int version, EVP_PKEY *pkey, X509 *cert)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct server_arg sa = { 0 };
	struct ktls_status st;
	pthread_t th;
	char buf[4096], out[4096];
	int a, b, i;

	app_lines = app_secret_lines = 0;
	SSL_CTX_use_certificate(sctx, cert);
	SSL_CTX_use_PrivateKey(sctx, pkey);
	SSL_CTX_set_min_proto_version(sctx, version);
	SSL_CTX_set_max_proto_version(sctx, version);
	SSL_CTX_set_keylog_callback(cctx, app_keylog);	/* the app's own, first */
	CHECK_EQ(ktls_ctx_setup(cctx), 0);
	CHECK_EQ(ktls_ctx_setup(cctx), 0);		/* idempotent: no self-chaining */
	CHECK_EQ(ktls_ctx_setup(sctx), 0);
	CHECK(SSL_CTX_get_options(cctx) & SSL_OP_ENABLE_KTLS);

	tcp_pair(&a, &b);
	sa.ssl = SSL_new(sctx);
	CHECK_EQ(ktls_conn_attach(sa.ssl, b, NULL), 0);
	pthread_create(&th, NULL, server_main, &sa);
	{
		SSL *c = SSL_new(cctx);

		CHECK_EQ(ktls_conn_attach(c, a, NULL), 0);
		CHECK_EQ(ktls_conn_handoff(c), -EINPROGRESS);
		CHECK_EQ(SSL_connect(c), 1);
		/* the checker sees libssl's heap (and the bridge's, which keeps
		 * the TLS 1.3 traffic secrets) */
		CHECK(wipecheck_live(version == TLS1_3_VERSION ? "CLIENT_TRAFFIC_SECRET_0" :
				     "CLIENT_RANDOM", WIPECHECK_LIBRARY) >= 1);
		if (version == TLS1_3_VERSION)
			CHECK(wipecheck_live("CLIENT_TRAFFIC_SECRET_0", WIPECHECK_PROGRAM) >= 1);
		for (i = 0; i < 20; i++) {
			memset(out, 'a' + i, sizeof(out));
			CHECK_EQ(SSL_write(c, out, sizeof(out)), (int)sizeof(out));
			if (version == TLS1_3_VERSION && i % 5 == 4)
				CHECK_EQ(SSL_key_update(c, SSL_KEY_UPDATE_REQUESTED), 1);
			CHECK_EQ(SSL_read(c, buf, sizeof(buf)), (int)sizeof(buf));
			CHECK(!memcmp(buf, out, sizeof(buf)));
		}
		/* libssl holds the rest of a record: nothing may move yet */
		CHECK_EQ(SSL_write(c, out, sizeof(out)), (int)sizeof(out));
		CHECK_EQ(SSL_read(c, buf, 10), 10);
		CHECK(SSL_has_pending(c));
		CHECK_EQ(ktls_conn_handoff(c), -EAGAIN);
		CHECK_EQ(SSL_read(c, buf + 10, sizeof(buf) - 10), (int)sizeof(buf) - 10);
		CHECK(!memcmp(buf, out, sizeof(buf)));
		if (!ktls_probe()->ulp)	/* TX in userspace: it says why */
			CHECK_EQ(ktls_conn_handoff(c), -EOPNOTSUPP);
		/* refused, so the hand-off calls do not apply; the SSL still works */
		CHECK_EQ(ktls_conn_recv(c, buf, sizeof(buf)), -EINVAL);
		CHECK_EQ(ktls_conn_send(c, buf, sizeof(buf)), -EINVAL);
		CHECK_EQ(ktls_conn_keyupdate(c, 0), -EINVAL);
		CHECK_EQ(ktls_conn_shutdown(c), -EINVAL);
		CHECK_EQ(ktls_conn_linger(c, 0), -ENOTCONN);	/* no fatal alert */
		CHECK_EQ(SSL_write(c, out, sizeof(out)), (int)sizeof(out));
		CHECK_EQ(SSL_read(c, buf, sizeof(buf)), (int)sizeof(buf));
		CHECK(app_lines > 0);	/* the application's callback still fires */
		CHECK_EQ(ktls_conn_status(c, &st), 0);
		CHECK_EQ(st.tx.mode, KTLS_MODE_USERSPACE);
		if (!ktls_probe()->ulp)
			CHECK_EQ(st.tx.reason, KTLS_R_ULP_UNAVAILABLE);
		CHECK(st.tx.records >= 22);
		CHECK(st.rx.records >= 22);
		if (version == TLS1_3_VERSION) {
			struct ktls_conn *kc = ktls_conn_from_bio(SSL_get_wbio(c));

			CHECK_EQ(app_secret_lines, 2);
			/* the bridge holds both generation-0 application secrets */
			CHECK(kc->tx.secret.len == 32 || kc->tx.secret.len == 48);
			CHECK_EQ(kc->rx.secret.len, kc->tx.secret.len);
			CHECK(memcmp(kc->tx.secret.s, kc->rx.secret.s, kc->tx.secret.len));
			CHECK(!strcmp(kc->tx.secret.digest, "SHA256") ||
			      !strcmp(kc->tx.secret.digest, "SHA384"));
		}
		SSL_shutdown(c);
		SSL_free(c);
	}
	shutdown(a, SHUT_WR);
	pthread_join(th, NULL);
	CHECK(sa.ok);
	SSL_free(sa.ssl);
	close(a);
	close(b);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	/* no block the bridge freed held a secret of this connection; what
	 * libssl and libcrypto leave is theirs, listed but not failed (3.0
	 * frees an SSL with its traffic secrets in it) */
	CHECK_EQ(wipecheck_hits(WIPECHECK_PROGRAM), 0);
	i = wipecheck_hits(WIPECHECK_LIBRARY);
	if (i)
		printf("conn-test: TLS 1.%d: OpenSSL freed %d secret(s) of its own "
		       "unwiped (listed above)\n", version == TLS1_3_VERSION ? 3 : 2, i);
	wipecheck_forget();
}

int main(void)
{
	const struct ktls_caps *seen[8], *first;
	pthread_t th[8];
	EVP_PKEY *pkey;
	X509 *cert;
	int i;

	/* before anything allocates through OpenSSL */
	CHECK_EQ(wipecheck_start(), 0);
	/* the first probe raced by 8 threads: one result, shared by all */
	pthread_barrier_init(&probe_start, NULL, 8);
	for (i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, probe_thread, &seen[i]);
	for (i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&probe_start);
	first = seen[0];
	for (i = 0; i < 8; i++)
		CHECK(seen[i] == first && first != NULL);
	CHECK(ktls_probe() == first);
	if (!ktls_probe()->ulp)
		printf("conn-test: host kernel has no kTLS: testing the fallback path\n");
	testcert_make(&pkey, &cert);
	run(TLS1_2_VERSION, pkey, cert);
	run(TLS1_3_VERSION, pkey, cert);

	/* the cache held through the connections; refresh replaces it */
	CHECK(ktls_probe() == first);
	CHECK(ktls_probe_refresh() != first);
	CHECK(ktls_probe() != first);
	CHECK(first->kernel[0] != 0);	/* old results stay readable */
	printf("conn-test: probe took %.1f us\n", (double)ktls_probe()->probe_ns / 1000.0);

	EVP_PKEY_free(pkey);
	X509_free(cert);
	wipecheck_stop();
	return ktest_done("conn-test");
}
