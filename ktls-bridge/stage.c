// SPDX-License-Identifier: MIT
/*
 * stage.c - pre-staged keys, both directions (our kernel series'
 * TLS_TX_NEXT/TLS_RX_NEXT): generation N+1 handed to the kernel before the
 * KeyUpdate that needs it, so that the kernel switches by itself right
 * after the KeyUpdate record.  A kernel that refuses only means the next
 * KeyUpdate sets TLS_TX/TLS_RX again (txkey.c, rxkey.c).
 */
#include "config.h"

#include <errno.h>
#include <openssl/crypto.h>

#include "internal.h"

static bool want_stage(const struct ktls_conn *c, const struct ktls_dir *d)
{
	return c->policy.prestage && ktls_probe_basic()->prestage &&
	       d->st.version == KTLS_TLS13 && d->secret.len;
}

int ktls_key_stage(struct ktls_conn *c, bool tx)
{
	struct ktls_dir *d = tx ? &c->tx : &c->rx;
	struct ktls_keyblock kb;
	int ret;

	if (!want_stage(c, d))
		return 0;
	ret = ktls_secret_peek_next(&d->secret, d->st.cipher, &kb);
	if (!ret) {
		ret = ktls_install_opt(c->fd, tx ? TLS_TX_NEXT : TLS_RX_NEXT, &kb);
		d->st.key_calls++;
		ktls_keyblock_wipe(&kb);
	}
	d->staged = ret == 0;
	d->restage_due = false;
	if (ret)
		ktls_trace("fd %d %s refused (%s): the next KeyUpdate sets %s again", c->fd,
			   tx ? "TLS_TX_NEXT" : "TLS_RX_NEXT", ktls_errno_name(ret),
			   tx ? "TLS_TX" : "TLS_RX");
	return ret;
}

int ktls_key_unstage(struct ktls_conn *c, bool tx)
{
	struct ktls_dir *d = tx ? &c->tx : &c->rx;

	d->st.key_calls++;
	if (ktls_sys->setsockopt(c->fd, SOL_TLS, tx ? TLS_TX_NEXT : TLS_RX_NEXT, NULL, 0) < 0 &&
	    errno != ENOENT)
		return -errno;
	d->staged = false;
	return 0;
}

int ktls_key_staged_consumed(struct ktls_conn *c, bool tx)
{
	const struct ktls_dir *d = tx ? &c->tx : &c->rx;
	unsigned char info[KTLS_MAX_INFO];
	/* the kernel answers only a buffer of the cipher's exact size */
	socklen_t len = d->st.cipher ? (socklen_t)d->st.cipher->info_size : sizeof(info);
	int ret;

	ret = ktls_sys->getsockopt(c->fd, SOL_TLS, tx ? TLS_TX_NEXT : TLS_RX_NEXT, info, &len);
	(tx ? &c->tx : &c->rx)->st.key_calls++;
	OPENSSL_cleanse(info, sizeof(info));
	if (ret == 0)
		return 0;
	return errno == ENOENT ? 1 : -errno;
}
