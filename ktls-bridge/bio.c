// SPDX-License-Identifier: MIT
/*
 * bio.c - front end 1, the bridge BIO: a TCP socket BIO whose kTLS ctrls
 * (72-76, 90) and kernel records are the engine's (io.c); it carries a
 * direction that is still in userspace itself, and turns the engine's
 * -errno into errno and retry flags, as libssl expects of a BIO.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>

#include "internal.h"

/* The BIO's result from n (bytes or -errno): errno and retry flags. */
static int bio_result(BIO *b, ssize_t n, bool write)
{
	if (n >= 0)
		return (int)n;
	errno = (int)-n;	/* the BIO reports through errno */
	if (ktls_retryable(errno)) {
		if (write)
			BIO_set_retry_write(b);
		else
			BIO_set_retry_read(b);
	}
	return -1;
}

static int bridge_write(BIO *b, const char *in, int inl)
{
	struct ktls_conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (c->dead || ktls_io_offloaded(c, true))
		return bio_result(b, ktls_io_write(c, in, (size_t)inl), true);
	n = send(c->fd, in, (size_t)inl, MSG_NOSIGNAL);
	if (n < 0)
		return bio_result(b, -errno, true);
	ktls_io_account(&c->tx, (const uint8_t *)in, (size_t)n);
	return (int)n;
}

static int bridge_read(BIO *b, char *out, int outl)
{
	struct ktls_conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (!out || outl <= 0)
		return 0;
	if (c->dead || c->handoff || ktls_io_offloaded(c, false))
		return bio_result(b, ktls_io_read(c, out, (size_t)outl), false);
	n = read(c->fd, out, (size_t)outl);
	if (n < 0)
		return bio_result(b, -errno, false);
	if (n == 0)
		c->eof = true;
	ktls_io_account(&c->rx, (const uint8_t *)out, (size_t)n);
	return (int)n;
}

static int bridge_puts(BIO *b, const char *s)
{
	return bridge_write(b, s, (int)strlen(s));
}

static long bridge_ctrl(BIO *b, int cmd, long larg, void *ptr)
{
	struct ktls_conn *c = BIO_get_data(b);

	switch (cmd) {
	case BIO_C_GET_FD:
		if (ptr)
			*(int *)ptr = c->fd;
		return c->fd;
	case BIO_CTRL_GET_CLOSE:
		return c->close_flag;
	case BIO_CTRL_SET_CLOSE:
		c->close_flag = (int)larg;
		return 1;
	case BIO_CTRL_FLUSH:
		BIO_clear_retry_flags(b);
		if (!c->dead && ktls_io_offloaded(c, true)) {
			int ret = ktls_tx_flush(c);

			if (ret)
				return bio_result(b, ret, true);
		}
		return 1;
	case BIO_CTRL_DUP:
		return 1;
	case BIO_CTRL_EOF:
		return c->eof;
	case BIO_CTRL_PENDING:
		return (long)(c->rlen - c->roff);
	case BIO_CTRL_WPENDING:
		return 0;
	default: {
		long ret = 0;

		/* libssl's kTLS ctrls, or 0 for any other */
		ktls_io_ctrl(c, cmd, larg, ptr, &ret);
		return ret;
	}
	}
}

static int bridge_create(BIO *b)
{
	BIO_set_data(b, NULL);
	BIO_set_init(b, 0);
	return 1;
}

static int bridge_destroy(BIO *b)
{
	struct ktls_conn *c = BIO_get_data(b);

	if (!c)
		return 1;
	if (c->close_flag && c->fd >= 0) {
		/* the BIO owns the socket: a last record that went out must
		 * reach the peer before close() can reset the connection */
		if (c->wr_shut)
			ktls_conn_end(c, true);
		close(c->fd);
	}
	ktls_conn_free(c);
	BIO_set_data(b, NULL);
	BIO_set_init(b, 0);
	return 1;
}

static BIO_METHOD *bridge_method;
static int bridge_type;
static CRYPTO_ONCE bridge_once = CRYPTO_ONCE_STATIC_INIT;

static void bridge_method_init(void)
{
	int type = BIO_get_new_index();
	BIO_METHOD *m;

	if (type < 0)
		return;
	type |= BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR;
	m = BIO_meth_new(type, "ktls bridge");
	if (!m)
		return;
	if (!BIO_meth_set_write(m, bridge_write) || !BIO_meth_set_read(m, bridge_read) ||
	    !BIO_meth_set_puts(m, bridge_puts) || !BIO_meth_set_ctrl(m, bridge_ctrl) ||
	    !BIO_meth_set_create(m, bridge_create) || !BIO_meth_set_destroy(m, bridge_destroy)) {
		BIO_meth_free(m);
		return;
	}
	bridge_type = type;
	bridge_method = m;
}

const BIO_METHOD *ktls_bio_method(void)
{
	if (!CRYPTO_THREAD_run_once(&bridge_once, bridge_method_init))
		return NULL;
	return bridge_method;
}

struct ktls_conn *ktls_conn_from_bio(BIO *b)
{
	const BIO_METHOD *m = ktls_bio_method();

	for (; b; b = BIO_next(b))
		if (m && BIO_method_type(b) == bridge_type)
			return BIO_get_data(b);
	return NULL;
}
