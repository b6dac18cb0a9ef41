// SPDX-License-Identifier: MIT
/*
 * ownbio.c - --own-bio: the apps read and write through a BIO of their
 * own, as HAProxy and curl do, and delegate kernel TLS to the bridge
 * (ktls_conn_delegate(3)) instead of attaching the bridge BIO.  The BIO is
 * a plain source/sink, not a descriptor BIO; its "transport" is send(2)
 * and recv(2) on the socket, for the directions left in userspace.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <ktls-bridge.h>

#include "common.h"

struct own {
	SSL *ssl;
	int fd;
};

/* The BIO's answer for n, bytes or -errno: errno and the retry flags. */
static int own_result(BIO *b, ssize_t n, bool write)
{
	if (n >= 0)
		return (int)n;
	errno = (int)-n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		if (write)
			BIO_set_retry_write(b);
		else
			BIO_set_retry_read(b);
	}
	return -1;
}

static int own_write(BIO *b, const char *in, int inl)
{
	struct own *o = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (ktls_delegate_write(o->ssl, in, (size_t)inl, &n) == 1)
		return own_result(b, n, true);
	n = send(o->fd, in, (size_t)inl, MSG_NOSIGNAL);
	if (n < 0)
		return own_result(b, -errno, true);
	ktls_delegate_wire(o->ssl, 1, in, (size_t)n);
	return (int)n;
}

static int own_read(BIO *b, char *out, int outl)
{
	struct own *o = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (outl <= 0)
		return 0;
	if (ktls_delegate_read(o->ssl, out, (size_t)outl, &n) == 1)
		return own_result(b, n, false);
	n = recv(o->fd, out, (size_t)outl, 0);
	if (n < 0)
		return own_result(b, -errno, false);
	ktls_delegate_wire(o->ssl, 0, out, (size_t)n);
	return (int)n;
}

static long own_ctrl(BIO *b, int cmd, long larg, void *ptr)
{
	struct own *o = BIO_get_data(b);
	long ret;

	if (ktls_delegate_ctrl(o->ssl, cmd, larg, ptr, &ret) == 1)
		return ret;
	return cmd == BIO_CTRL_FLUSH;	/* nothing is buffered here */
}

static int own_destroy(BIO *b)
{
	OPENSSL_free(BIO_get_data(b));
	BIO_set_data(b, NULL);
	return 1;
}

static BIO_METHOD *own_meth;
static CRYPTO_ONCE own_once = CRYPTO_ONCE_STATIC_INIT;

static void own_meth_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "app's own");

	if (m && BIO_meth_set_write(m, own_write) && BIO_meth_set_read(m, own_read) &&
	    BIO_meth_set_ctrl(m, own_ctrl) && BIO_meth_set_destroy(m, own_destroy))
		own_meth = m;
	else
		BIO_meth_free(m);
}

int app_own_bio(SSL *ssl, int fd)
{
	struct own *o;
	BIO *b;

	if (!CRYPTO_THREAD_run_once(&own_once, own_meth_init) || !own_meth)
		return -ENOMEM;
	o = OPENSSL_zalloc(sizeof(*o));
	b = o ? BIO_new(own_meth) : NULL;
	if (!b) {
		OPENSSL_free(o);
		return -ENOMEM;
	}
	o->ssl = ssl;
	o->fd = fd;
	BIO_set_data(b, o);
	BIO_set_init(b, 1);
	SSL_set_bio(ssl, b, b);
	return 0;
}
