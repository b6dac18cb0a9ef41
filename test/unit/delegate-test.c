// SPDX-License-Identifier: MIT
/*
 * delegate-test: the delegation API (ktls_conn_delegate(3)) from a BIO of
 * the program's own, as HAProxy's or curl's: a source/sink BIO that is not
 * a socket BIO (no descriptor type, no fd ctrls), whose data is the
 * program's connection object and which carries userspace bytes through
 * its own transport.
 *
 * Real libssl on both ends of a loopback pair, each with such a BIO.  On
 * the host's own kernel (no kTLS here: say so) the keys are refused and
 * everything goes through the program's transport, counted by the
 * bridge.  The kernel's side against the fake kernel (fakekernel.h),
 * through the program's BIO as libssl drives it: TLS 1.2 data both ways,
 * a KeyUpdate of ours re-keying TX and a peer's re-keying RX, an ending.
 * And the API's errors.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "bridgetest.h"
#include "ktest.h"
#include "testcert.h"

/* ---- the program's own BIO ------------------------------------------ */

/* The program's connection object: its SSL, its socket, what its own
 * transport carried. */
struct pconn {
	SSL *ssl;
	int fd;
	size_t own_out, own_in;		/* bytes through the program's transport */
	size_t bridge_out, bridge_in;	/* bytes the bridge carried */
	int own_ctrls;			/* ctrls the program answered itself */
};

static int pconn_result(BIO *b, ssize_t n, bool write)
{
	if (n >= 0)
		return (int)n;
	if (n == -EAGAIN) {
		if (write)
			BIO_set_retry_write(b);
		else
			BIO_set_retry_read(b);
	}
	errno = (int)-n;
	return -1;
}

static int pconn_write(BIO *b, const char *in, int inl)
{
	struct pconn *pc = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (ktls_delegate_write(pc->ssl, in, (size_t)inl, &n) == 1) {
		if (n > 0)
			pc->bridge_out += (size_t)n;
		return pconn_result(b, n, true);
	}
	n = send(pc->fd, in, (size_t)inl, MSG_NOSIGNAL);	/* "its transport" */
	if (n < 0)
		return pconn_result(b, -errno, true);
	pc->own_out += (size_t)n;
	CHECK_EQ(ktls_delegate_wire(pc->ssl, 1, in, (size_t)n), 0);
	return (int)n;
}

static int pconn_read(BIO *b, char *out, int outl)
{
	struct pconn *pc = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (ktls_delegate_read(pc->ssl, out, (size_t)outl, &n) == 1) {
		if (n > 0)
			pc->bridge_in += (size_t)n;
		return pconn_result(b, n, false);
	}
	n = recv(pc->fd, out, (size_t)outl, 0);
	if (n < 0)
		return pconn_result(b, -errno, false);
	pc->own_in += (size_t)n;
	CHECK_EQ(ktls_delegate_wire(pc->ssl, 0, out, (size_t)n), 0);
	return (int)n;
}

static long pconn_ctrl(BIO *b, int cmd, long larg, void *ptr)
{
	struct pconn *pc = BIO_get_data(b);
	long ret;

	if (ktls_delegate_ctrl(pc->ssl, cmd, larg, ptr, &ret) == 1)
		return ret;
	pc->own_ctrls++;
	return cmd == BIO_CTRL_FLUSH;	/* nothing buffered, no fd to give */
}

static BIO_METHOD *pconn_method(void)
{
	static BIO_METHOD *m;

	if (!m) {
		m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "program's own");
		BIO_meth_set_write(m, pconn_write);
		BIO_meth_set_read(m, pconn_read);
		BIO_meth_set_ctrl(m, pconn_ctrl);
	}
	return m;
}

/* An SSL of ctx on the program's BIO over fd, delegated with policy (NULL:
 * the provider's, or the defaults). */
static SSL *pconn_ssl(SSL_CTX *ctx, struct pconn *pc, int fd, const struct ktls_policy *policy)
{
	BIO *b = BIO_new(pconn_method());

	memset(pc, 0, sizeof(*pc));
	pc->ssl = SSL_new(ctx);
	pc->fd = fd;
	BIO_set_data(b, pc);
	BIO_set_init(b, 1);
	SSL_set_bio(pc->ssl, b, b);
	CHECK(ktls_conn_from_bio(b) == NULL);	/* really not the bridge's */
	CHECK_EQ(ktls_conn_delegate(pc->ssl, fd, policy), 0);
	return pc->ssl;
}

/* ---- real libssl both ends ------------------------------------------ */

#define ROUNDS 20
#define CHUNK 3000

/* The server: echo what comes, ROUNDS chunks. */
static void *echo_main(void *p)
{
	SSL *ssl = p;
	char buf[CHUNK];
	int i, ok = SSL_accept(ssl) == 1;

	for (i = 0; ok && i < ROUNDS; i++)
		ok = SSL_read(ssl, buf, sizeof(buf)) == CHUNK &&
		     SSL_write(ssl, buf, CHUNK) == CHUNK;
	return ok ? ssl : NULL;
}

/* A TLS version's handshake and ROUNDS echoes, both ends delegated, on
 * the host's own kernel. */
static void echo_both_delegated(int version)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct pconn spc, cpc;
	struct ktls_status st;
	char out[CHUNK], in[CHUNK];
	EVP_PKEY *pkey;
	X509 *cert;
	pthread_t th;
	void *srv;
	SSL *s, *c;
	int a, b, i;

	testcert_make(&pkey, &cert);
	SSL_CTX_use_certificate(sctx, cert);
	SSL_CTX_use_PrivateKey(sctx, pkey);
	SSL_CTX_set_min_proto_version(cctx, version);
	SSL_CTX_set_max_proto_version(cctx, version);
	CHECK_EQ(ktls_ctx_setup(sctx), 0);
	CHECK_EQ(ktls_ctx_setup(cctx), 0);
	tcp_pair(&a, &b);
	s = pconn_ssl(sctx, &spc, b, NULL);
	c = pconn_ssl(cctx, &cpc, a, NULL);
	pthread_create(&th, NULL, echo_main, s);
	CHECK_EQ(SSL_connect(c), 1);
	for (i = 0; i < ROUNDS; i++) {
		memset(out, 'a' + i, sizeof(out));
		CHECK_EQ(SSL_write(c, out, sizeof(out)), CHUNK);
		CHECK_EQ(SSL_read(c, in, sizeof(in)), CHUNK);
		CHECK(!memcmp(in, out, sizeof(in)));
	}
	pthread_join(th, &srv);
	CHECK(srv == s);

	/* the keys were offered and refused (no ULP): both directions in
	 * userspace, every byte through the program's transport and counted
	 * by the bridge from it, the reason recorded */
	CHECK_EQ(ktls_conn_status(c, &st), 0);
	CHECK(cpc.own_ctrls > 0);	/* flush and the like stay the program's */
	CHECK_EQ(st.tx.mode, KTLS_MODE_USERSPACE);
	CHECK_EQ(st.tx.reason, KTLS_R_ULP_UNAVAILABLE);
	CHECK_EQ(st.rx.reason, version == TLS1_3_VERSION ? KTLS_R_NOT_OFFERED :
			       KTLS_R_ULP_UNAVAILABLE);	/* 3.0 offers no 1.3 RX */
	CHECK_EQ(cpc.bridge_out + cpc.bridge_in + spc.bridge_out + spc.bridge_in, 0);
	CHECK_EQ(st.tx.bytes, cpc.own_out);
	CHECK_EQ(st.rx.bytes, cpc.own_in);
	CHECK(st.tx.records >= ROUNDS + 1);	/* handshake records and echoes */
	CHECK(st.rx.records >= ROUNDS + 1);
	SSL_free(c);	/* frees the delegations (ASan and valgrind watch) */
	SSL_free(s);
	close(a);
	close(b);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	EVP_PKEY_free(pkey);
	X509_free(cert);
}

static void case_host_userspace(void)
{
	ktls_sys_set(NULL);
	if (ktls_probe()->ulp) {
		printf("delegate-test: SKIP case_host_userspace: this host's kernel has "
		       "kTLS, the case needs one without (the VM tests cover the kernel)\n");
		return;
	}
	printf("delegate-test: this host's kernel has no kTLS: a real handshake is "
	       "checked in userspace here, the kernel's side against the fake kernel\n");
	echo_both_delegated(TLS1_2_VERSION);
	echo_both_delegated(TLS1_3_VERSION);
}

/* ---- TLS 1.3 through the program's BIO, as libssl drives it ----------- */

/* The program's BIO on a delegated SSL (no handshake: the cases below
 * play libssl themselves) over a fake kernel that re-keys. */
static BIO *delegated_bio(SSL_CTX *ctx, struct pconn *pc, int *a, int *b)
{
	fake_reset_rekey(false);
	fake_pair(a, b);
	pconn_ssl(ctx, pc, *a, NULL);
	return SSL_get_wbio(pc->ssl);
}

/* TLS 1.2 both ways in the (fake) kernel: the program's BIO passes data
 * to the bridge, which sends it as plaintext for the kernel to seal, and
 * gives libssl the kernel's records with their headers rebuilt. */
static void case_tls12_data(void)
{
	static const char msg[] = "through the kernel, not the program";
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	uint8_t rec[KTLS_REC_HDR + sizeof(msg)];
	char got[sizeof(msg)];
	struct ktls_status st;
	struct pconn pc;
	int a, b;
	BIO *bio;

	bio = delegated_bio(ctx, &pc, &a, &b);
	CHECK_EQ(offer(bio, "AES-256-GCM", KTLS_TLS12, true), 1);
	CHECK_EQ(offer(bio, "AES-256-GCM", KTLS_TLS12, false), 1);
	CHECK_EQ(fake.tx_sets[a], 1);
	CHECK_EQ(fake.rx_sets[a], 1);
	CHECK_EQ(BIO_write(bio, msg, sizeof(msg)), (int)sizeof(msg));
	CHECK_EQ(recv(b, got, sizeof(got), MSG_WAITALL), (ssize_t)sizeof(got));
	CHECK(!memcmp(got, msg, sizeof(msg)));
	fake_record(KTLS_CT_APPDATA, msg, sizeof(msg));
	CHECK_EQ(BIO_read(bio, rec, sizeof(rec)), (int)sizeof(rec));
	fake.rec_len = 0;
	CHECK_EQ(rec[0], KTLS_CT_APPDATA);
	CHECK_EQ(rec[3] << 8 | rec[4], sizeof(msg));
	CHECK(!memcmp(rec + KTLS_REC_HDR, msg, sizeof(msg)));
	CHECK_EQ(ktls_conn_status(pc.ssl, &st), 0);
	CHECK_EQ(st.tx.mode, KTLS_MODE_KERNEL_SW);
	CHECK_EQ(st.rx.mode, KTLS_MODE_KERNEL_SW);
	CHECK_EQ(st.tx.bytes, sizeof(msg));
	CHECK_EQ(st.rx.records, 1);
	CHECK_EQ(pc.bridge_out, sizeof(msg));
	CHECK_EQ(pc.bridge_in, sizeof(rec));
	CHECK_EQ(pc.own_out + pc.own_in, 0);
	CHECK_EQ(ktls_delegate_wire(pc.ssl, 1, "x", 1), -EBUSY);
	SSL_free(pc.ssl);
	close(a);
	close(b);
	SSL_CTX_free(ctx);
	ktls_sys_set(NULL);
}

static void case_tls13_rekey(void)
{
	static const uint8_t ku[] = { KTLS_HS_KEY_UPDATE, 0, 0, 1, 0 };
	const size_t isz = ktls_cipher_by_name("AES-128-GCM")->info_size;
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	uint8_t s0[32], info[KTLS_MAX_INFO], rec[KTLS_REC_HDR + sizeof(ku)];
	struct ktls_status st;
	struct ktls_conn *kc;
	struct pconn pc;
	int a, b;
	BIO *bio;

	memset(s0, 0x5a, sizeof(s0));
	bio = delegated_bio(ctx, &pc, &a, &b);
	kc = ktls_conn_of(pc.ssl);
	CHECK(kc != NULL);
	/* libssl's ctrls reach the bridge through the program's BIO */
	CHECK_EQ(BIO_ctrl(bio, 73, 0, NULL), 0);	/* BIO_get_ktls_send */
	CHECK_EQ(offer_gen(bio, s0, 0, true), 1);
	CHECK_EQ(offer_gen(bio, s0, 0, false), 1);
	CHECK_EQ(BIO_ctrl(bio, 73, 0, NULL), 1);
	CHECK_EQ(BIO_ctrl(bio, 76, 0, NULL), 1);	/* BIO_get_ktls_recv */
	ktls_secret_set(&kc->tx.secret, s0, 32, "SHA256");	/* as the key log does */
	ktls_secret_set(&kc->rx.secret, s0, 32, "SHA256");

	/* our KeyUpdate: a handshake record (ctrl 74), then TLS_TX moves on */
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku, sizeof(ku)), (int)sizeof(ku));
	CHECK_EQ(fake.nctrl, 1);
	CHECK_EQ(fake.ctrl_type[0], KTLS_CT_HANDSHAKE);
	CHECK_EQ(fake.tx_sets[a], 2);
	gen_info(s0, 1, info);
	CHECK(!memcmp(fake.last_tx, info, isz));

	/* the peer's KeyUpdate: the read gives libssl the record, with its
	 * header, and RX moves on to generation 1 */
	fake_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	CHECK_EQ(BIO_read(bio, rec, sizeof(rec)), (int)sizeof(rec));
	CHECK_EQ(rec[0], KTLS_CT_HANDSHAKE);
	CHECK_EQ(rec[4], sizeof(ku));
	CHECK(!memcmp(rec + KTLS_REC_HDR, ku, sizeof(ku)));
	/* the kernel waits for the key (EKEYEXPIRED) and the next read
	 * installs it on the way to the data */
	fake_record(KTLS_CT_APPDATA, "hello", 5);
	CHECK_EQ(BIO_read(bio, rec, sizeof(rec)), KTLS_REC_HDR + 5);
	fake.rec_len = 0;
	CHECK(!memcmp(rec + KTLS_REC_HDR, "hello", 5));
	CHECK_EQ(fake.rx_sets[a], 2);
	CHECK(!memcmp(fake.last_rx, info, isz));

	CHECK_EQ(ktls_conn_status(pc.ssl, &st), 0);
	CHECK_EQ(st.tx.rekeys, 1);
	CHECK_EQ(st.tx.keyupdates, 1);
	CHECK_EQ(st.rx.rekeys, 1);
	CHECK_EQ(st.rx.keyupdates, 1);
	CHECK_EQ(pc.own_out + pc.own_in, 0);	/* all of it was the bridge's */
	SSL_free(pc.ssl);
	close(a);
	close(b);
	SSL_CTX_free(ctx);
	ktls_sys_set(NULL);
}

/* A KeyUpdate on a kernel that cannot re-key, tls13 = always: the bridge
 * ends the connection, and the program's writes get the error from then
 * on (delegate_write answers even though TX "is" the kernel's no more). */
static void case_ended(void)
{
	static const uint8_t ku[] = { KTLS_HS_KEY_UPDATE, 0, 0, 1, 0 };
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	struct ktls_policy p;
	struct pconn pc;
	ssize_t done;
	int a, b;
	BIO *bio;

	fake_reset();
	fake_pair(&a, &b);
	ktls_policy_default(&p);
	p.tls13 = KTLS_TLS13_ALWAYS;
	bio = SSL_get_wbio(pconn_ssl(ctx, &pc, a, &p));
	CHECK_EQ(offer(bio, "AES-128-GCM", KTLS_TLS13, true), 1);
	CHECK_EQ(BIO_ctrl(bio, 74, KTLS_CT_HANDSHAKE, NULL), 1);
	CHECK_EQ(BIO_write(bio, ku, sizeof(ku)), -1);
	CHECK_EQ(errno, EBUSY);
	CHECK_EQ(fake.ctrl_type[0], KTLS_CT_ALERT);	/* the peer is told */
	CHECK_EQ(ktls_delegate_write(pc.ssl, "x", 1, &done), 1);
	CHECK_EQ(done, -EBUSY);
	CHECK_EQ(ktls_delegate_read(pc.ssl, (char[8]){ 0 }, 8, &done), 1);
	CHECK(done < 0);
	CHECK_EQ(pc.own_out, 0);
	SSL_free(pc.ssl);
	close(a);
	close(b);
	SSL_CTX_free(ctx);
	ktls_sys_set(NULL);
}

/* ---- the API's errors ---------------------------------------------- */

static void case_errors(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	SSL *ssl = SSL_new(ctx), *other = SSL_new(ctx);
	char buf[8];
	ssize_t done;
	long ret;
	int a, b, u[2];

	tcp_pair(&a, &b);
	socketpair(AF_UNIX, SOCK_STREAM, 0, u);
	CHECK_EQ(ktls_conn_delegate(NULL, a, NULL), -EINVAL);
	CHECK_EQ(ktls_conn_delegate(ssl, -1, NULL), -EBADF);
	CHECK_EQ(ktls_conn_delegate(ssl, u[0], NULL), -EPROTOTYPE);
	/* no delegation: every call says so, nothing is carried */
	CHECK_EQ(ktls_delegate_ctrl(ssl, 72, 1, NULL, &ret), -EINVAL);
	CHECK_EQ(ktls_delegate_write(ssl, "x", 1, &done), -EINVAL);
	CHECK_EQ(ktls_delegate_read(ssl, buf, sizeof(buf), &done), -EINVAL);
	CHECK_EQ(ktls_delegate_wire(ssl, 1, "x", 1), -EINVAL);

	CHECK_EQ(ktls_conn_delegate(ssl, a, NULL), 0);
	CHECK_EQ(ktls_conn_delegate(ssl, a, NULL), -EEXIST);
	CHECK_EQ(ktls_conn_attach(ssl, a, NULL), -EEXIST);
	CHECK_EQ(ktls_conn_attach(other, b, NULL), 0);
	CHECK_EQ(ktls_conn_delegate(other, b, NULL), -EEXIST);	/* has a bridge BIO */
	CHECK_EQ(ktls_delegate_ctrl(ssl, 72, 1, NULL, NULL), -EINVAL);
	CHECK_EQ(ktls_delegate_write(ssl, NULL, 1, &done), -EINVAL);
	CHECK_EQ(ktls_delegate_read(ssl, buf, 0, &done), -EINVAL);
	/* not a kTLS ctrl: the program's; kTLS ctrls answered */
	CHECK_EQ(ktls_delegate_ctrl(ssl, BIO_CTRL_FLUSH, 0, NULL, &ret), 0);
	CHECK_EQ(ktls_delegate_ctrl(ssl, 73, 0, NULL, &ret), 1);
	CHECK_EQ(ret, 0);
	CHECK_EQ(ktls_delegate_ctrl(ssl, 72, 1, NULL, &ret), 1);	/* no keys */
	CHECK_EQ(ret, 0);
	/* both directions in userspace: the program's to carry */
	CHECK_EQ(ktls_delegate_write(ssl, "x", 1, &done), 0);
	CHECK_EQ(ktls_delegate_read(ssl, buf, sizeof(buf), &done), 0);
	CHECK_EQ(ktls_delegate_wire(ssl, 1, "\x17\x03\x03\x00\x01x", 6), 0);
	/* an SSL_dup copy has no socket: no delegation */
	{
		SSL *dup = SSL_dup(ssl);

		if (dup) {
			CHECK_EQ(ktls_delegate_write(dup, "x", 1, &done), -EINVAL);
			SSL_free(dup);
		}
	}
	SSL_free(ssl);
	SSL_free(other);
	close(a);
	close(b);
	close(u[0]);
	close(u[1]);
	SSL_CTX_free(ctx);
}

int main(void)
{
	RUN(case_errors);
	RUN(case_host_userspace);
	RUN(case_tls12_data);
	RUN(case_tls13_rekey);
	RUN(case_ended);
	BIO_meth_free(pconn_method());
	return ktest_done("delegate-test");
}
