// SPDX-License-Identifier: MIT
/*
 * ending-test: how a bridged connection ends, on loopback TCP of this host
 * (plain TCP behaviour, no kTLS needed).
 *
 *  - the errno -> alert table (alert.c);
 *  - the reset that a lingering close prevents: a peer that is still
 *    writing when we end, with its data unread, gets ECONNRESET when we
 *    simply close (the control case: it shows that the setup can fail)
 *    and reads our last bytes and a clean EOF after ktls_conn_end();
 *  - the bounds: a non-blocking socket is not waited on; a silent peer is
 *    waited on for KTLS_LINGER_MS at most;
 *  - ktls_conn_linger(): on a non-blocking socket the application asks for
 *    the same wait before close(), and the peer again reads everything.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/ssl.h>

#include "internal.h"
#include "ktest.h"

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void case_alert_table(void)
{
	CHECK_EQ(ktls_rx_alert_for(EBADMSG)->desc, ALERT_BAD_RECORD_MAC);
	CHECK_EQ(ktls_rx_alert_for(-EBADMSG)->desc, ALERT_BAD_RECORD_MAC);
	CHECK_EQ(ktls_rx_alert_for(EMSGSIZE)->desc, ALERT_RECORD_OVERFLOW);
	CHECK_EQ(ktls_rx_alert_for(EINVAL)->desc, ALERT_PROTOCOL_VERSION);
	CHECK_EQ(ktls_rx_alert_for(EKEYEXPIRED)->desc, ALERT_UNEXPECTED_MESSAGE);
	CHECK_EQ(ktls_rx_alert_for(ECONNRESET)->desc, 0);
	CHECK_EQ(ktls_rx_alert_for(EPIPE)->desc, 0);
	CHECK_EQ(ktls_rx_alert_for(EIO)->desc, ALERT_INTERNAL_ERROR);
	CHECK(ktls_rx_alert_for(12345)->why != NULL);
}

/* The peer: writes its data in a loop until it sees our last bytes and
 * EOF (a TLS peer sending records after a bad one, then reading the
 * alert), then closes.  It records what its reads and writes saw. */
struct peer {
	int fd;
	size_t to_write;
	size_t wrote;
	uint8_t got[16];
	size_t got_len;
	int read_err;		/* errno of a failed read, 0 when it saw EOF */
	int write_err;
	bool eof;
	atomic_bool hold_reads;	/* a peer busy writing: it reads once this clears */
};

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	static uint8_t chunk[16384];

	memset(chunk, 'd', sizeof(chunk));
	fcntl(p->fd, F_SETFL, O_NONBLOCK);
	for (;;) {
		ssize_t n;

		if (p->wrote < p->to_write && !p->write_err) {
			n = send(p->fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
			if (n > 0)
				p->wrote += (size_t)n;
			else if (errno != EAGAIN)
				p->write_err = errno;
		}
		if (atomic_load(&p->hold_reads)) {
			usleep(1000);
			continue;
		}
		n = recv(p->fd, p->got + p->got_len, sizeof(p->got) - p->got_len, 0);
		if (n > 0) {
			p->got_len += (size_t)n;
		} else if (n == 0) {
			p->eof = true;
			break;
		} else if (errno != EAGAIN) {
			p->read_err = errno;
			break;
		} else if (p->wrote >= p->to_write || p->write_err) {
			usleep(1000);
		}
	}
	close(p->fd);
	return NULL;
}

enum how { CLOSE_AT_ONCE, LINGER, NONBLOCK_THEN_CALL };

/* We received 1 MiB we will never read, send our last bytes and end;
 * the peer is still writing another 4 MiB at that moment. */
static BIO *run_ending(enum how how, struct peer *p)
{
	static uint8_t junk[1 << 20];
	BIO *bio;
	int a, b;
	pthread_t th;

	tcp_pair(&a, &b);
	memset(p, 0, sizeof(*p));
	p->fd = b;
	for (size_t off = 0; off < sizeof(junk);) {	/* unread data on our side */
		ssize_t n = send(b, junk + off, sizeof(junk) - off, 0);

		if (n <= 0)
			break;
		off += (size_t)n;
		if (off >= 256 << 10)
			break;	/* enough to be unread; keep the socket writable */
	}
	p->to_write = 4u << 20;
	atomic_store(&p->hold_reads, how == NONBLOCK_THEN_CALL);
	bio = ktls_bio_new(a, BIO_NOCLOSE, NULL);
	pthread_create(&th, NULL, peer_main, p);
	usleep(20 * 1000);	/* the peer is writing now */
	CHECK_EQ(send(a, "ALERT", 5, MSG_NOSIGNAL), 5);
	if (how == LINGER) {
		ktls_conn_end(ktls_conn_from_bio(bio), true);
	} else if (how == NONBLOCK_THEN_CALL) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_method());
		SSL *ssl = SSL_new(ctx);

		fcntl(a, F_SETFL, O_NONBLOCK);
		BIO_up_ref(bio);
		SSL_set_bio(ssl, bio, bio);
		CHECK_EQ(ktls_conn_linger(ssl, -1), -ENOTCONN);	/* nothing ended yet */
		/* does not wait, only drains: the peer is still writing */
		ktls_conn_end(ktls_conn_from_bio(bio), true);
		CHECK_EQ(ktls_conn_from_bio(bio)->linger_end, KTLS_LINGER_TIMEOUT);
		atomic_store(&p->hold_reads, false);	/* now it reads, sees EOF, closes */
		CHECK_EQ(ktls_conn_linger(ssl, -1), 1);	/* waits for the FIN */
		CHECK_EQ(ktls_conn_linger(ssl, -1), 1);	/* and knows it */
		SSL_free(ssl);
		SSL_CTX_free(ctx);
	}
	close(a);	/* unread data: without the linger this resets */
	pthread_join(th, NULL);
	return bio;
}

static void case_reset_without_linger(void)
{
	struct peer p;

	BIO_free(run_ending(CLOSE_AT_ONCE, &p));
	/* the control case: what the bug looked like */
	CHECK(p.read_err == ECONNRESET || p.write_err == ECONNRESET || p.write_err == EPIPE);
}

static void case_linger_delivers(enum how how)
{
	struct ktls_conn *c;
	struct peer p;
	BIO *bio = run_ending(how, &p);

	c = ktls_conn_from_bio(bio);
	CHECK_EQ(p.read_err, 0);
	CHECK_EQ(p.write_err, 0);
	CHECK(p.eof);
	CHECK_EQ(p.got_len, 5);
	CHECK(!memcmp(p.got, "ALERT", 5));
	CHECK_EQ(c->linger_end, KTLS_LINGER_PEER_FIN);
	CHECK(c->linger_bytes > 0);
	CHECK(c->wr_shut && c->lingered);
	BIO_free(bio);
}

static void case_bounds(void)
{
	struct timespec t0;
	uint8_t buf[8];
	BIO *bio;
	int a, b;

	/* non-blocking: shut the write side, drain, never wait */
	tcp_pair(&a, &b);
	fcntl(a, F_SETFL, O_NONBLOCK);
	bio = ktls_bio_new(a, BIO_NOCLOSE, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ktls_conn_end(ktls_conn_from_bio(bio), true);
	CHECK(elapsed_ms(&t0) < 200);
	CHECK_EQ(ktls_conn_from_bio(bio)->linger_end, KTLS_LINGER_TIMEOUT);
	CHECK_EQ(read(b, buf, sizeof(buf)), 0);	/* FIN */
	/* a second call does nothing more */
	ktls_conn_end(ktls_conn_from_bio(bio), true);
	BIO_free(bio);
	close(a);
	close(b);

	/* blocking, silent peer that never closes: at most KTLS_LINGER_MS */
	tcp_pair(&a, &b);
	bio = ktls_bio_new(a, BIO_NOCLOSE, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ktls_conn_end(ktls_conn_from_bio(bio), true);
	CHECK(elapsed_ms(&t0) >= KTLS_LINGER_MS - 50);
	CHECK(elapsed_ms(&t0) < KTLS_LINGER_MS + 1000);
	CHECK_EQ(ktls_conn_from_bio(bio)->linger_end, KTLS_LINGER_TIMEOUT);
	BIO_free(bio);
	close(a);
	close(b);

	/* close_notify: the write side is shut, nothing is waited for */
	tcp_pair(&a, &b);
	bio = ktls_bio_new(a, BIO_NOCLOSE, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ktls_conn_end(ktls_conn_from_bio(bio), false);
	CHECK(elapsed_ms(&t0) < 200);
	CHECK(!ktls_conn_from_bio(bio)->lingered);
	CHECK_EQ(read(b, buf, sizeof(buf)), 0);
	BIO_free(bio);
	close(a);
	close(b);
}

static void case_linger_call_errors(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	SSL *ssl = SSL_new(ctx);
	struct timespec t0;
	BIO *bio;
	int a, b;

	CHECK_EQ(ktls_conn_linger(NULL, -1), -EINVAL);
	CHECK_EQ(ktls_conn_linger(ssl, -1), -EINVAL);	/* no bridge */
	/* a peer that never closes: the caller's own bound holds */
	tcp_pair(&a, &b);
	fcntl(a, F_SETFL, O_NONBLOCK);
	bio = ktls_bio_new(a, BIO_NOCLOSE, NULL);
	SSL_set_bio(ssl, bio, bio);
	ktls_conn_end(ktls_conn_from_bio(bio), true);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(ktls_conn_linger(ssl, 300), 0);
	CHECK(elapsed_ms(&t0) >= 250 && elapsed_ms(&t0) < 1300);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(a);
	close(b);
}

int main(void)
{
	RUN(case_alert_table);
	RUN(case_reset_without_linger);
	RUN(case_linger_delivers, LINGER);
	RUN(case_linger_delivers, NONBLOCK_THEN_CALL);
	RUN(case_linger_call_errors);
	RUN(case_bounds);
	return ktest_done("ending-test");
}
