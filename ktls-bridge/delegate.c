// SPDX-License-Identifier: MIT
/*
 * delegate.c - front end 3: a program whose SSL reads and writes through
 * its own BIO (HAProxy's, curl's) keeps that BIO and lets the bridge
 * answer libssl's kTLS ctrls and carry the records of each direction the
 * kernel took.  The connection hangs off the SSL (ex_data) and is freed
 * with it.  Also the one lookup of the connection behind an SSL, for
 * either front end.
 */
#include "config.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "internal.h"

static int deleg_idx = -1;
static CRYPTO_ONCE deleg_once = CRYPTO_ONCE_STATIC_INIT;

static void deleg_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
		       void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	ktls_conn_free(ptr);
}

/* SSL_dup: the copy has no socket of its own yet, so no delegation. */
static int deleg_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d,
		     int idx, long argl, void *argp)
{
	(void)to, (void)from, (void)idx, (void)argl, (void)argp;
	*from_d = NULL;
	return 1;
}

static void deleg_idx_init(void)
{
	deleg_idx = SSL_get_ex_new_index(0, NULL, NULL, deleg_dup, deleg_free);
}

static struct ktls_conn *deleg_get(const SSL *ssl)
{
	if (!ssl || !CRYPTO_THREAD_run_once(&deleg_once, deleg_idx_init) || deleg_idx < 0)
		return NULL;
	return SSL_get_ex_data(ssl, deleg_idx);
}

struct ktls_conn *ktls_conn_of(const SSL *ssl)
{
	struct ktls_conn *c;

	if (!ssl)
		return NULL;
	c = ktls_conn_from_bio(SSL_get_wbio(ssl));
	return c ? c : deleg_get(ssl);
}

bool ktls_delegated(const SSL *ssl)
{
	return deleg_get(ssl) != NULL;
}

int ktls_delegate_bind(SSL *ssl, struct ktls_conn *c)
{
	if (!CRYPTO_THREAD_run_once(&deleg_once, deleg_idx_init) || deleg_idx < 0)
		return -ENOMEM;
	if (!SSL_set_ex_data(ssl, deleg_idx, c))
		return -ENOMEM;
	c->ssl = ssl;
	return 0;
}

int ktls_delegate_ctrl(SSL *ssl, int cmd, long larg, void *ptr, long *ret)
{
	struct ktls_conn *c = deleg_get(ssl);

	if (!c || !ret)
		return -EINVAL;
	return ktls_io_ctrl(c, cmd, larg, ptr, ret);
}

int ktls_delegate_write(SSL *ssl, const void *buf, size_t len, ssize_t *done)
{
	struct ktls_conn *c = deleg_get(ssl);

	if (!c || !done || (!buf && len))
		return -EINVAL;
	if (!c->dead && !ktls_io_offloaded(c, true))
		return 0;
	*done = ktls_io_write(c, buf, len);
	return 1;
}

int ktls_delegate_read(SSL *ssl, void *buf, size_t len, ssize_t *done)
{
	struct ktls_conn *c = deleg_get(ssl);

	if (!c || !done || !buf || !len)
		return -EINVAL;
	if (!c->dead && !c->handoff && !ktls_io_offloaded(c, false))
		return 0;
	*done = ktls_io_read(c, buf, len);
	return 1;
}

int ktls_delegate_wire(SSL *ssl, int tx, const void *buf, size_t n)
{
	struct ktls_conn *c = deleg_get(ssl);

	if (!c || (!buf && n))
		return -EINVAL;
	if (ktls_io_offloaded(c, tx))
		return -EBUSY;	/* the kernel's records are counted already */
	ktls_io_account(tx ? &c->tx : &c->rx, buf, n);
	return 0;
}
