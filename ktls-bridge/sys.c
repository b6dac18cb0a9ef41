// SPDX-License-Identifier: MIT
/*
 * sys.c - the syscall seam, errno names, tracing and the one install path.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>

#include "internal.h"

static const struct ktls_sys_ops real_ops = {
	.setsockopt = setsockopt,
	.getsockopt = getsockopt,
	.sendmsg = sendmsg,
	.recvmsg = recvmsg,
};

const struct ktls_sys_ops *ktls_sys = &real_ops;

void ktls_sys_set(const struct ktls_sys_ops *ops)
{
	ktls_sys = ops ? ops : &real_ops;
}

const char *ktls_errno_name(int err)
{
	static __thread char buf[16];
	const char *n;

	if (err < 0)
		err = -err;
	if (err == 0)
		return "ok";
	n = strerrorname_np(err);
	if (n)
		return n;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

void ktls_trace(const char *fmt, ...)
{
	static int enabled = -1;
	va_list ap;

	if (enabled < 0) {
		const char *e = getenv("KTLS_DEBUG");

		enabled = e && *e && strcmp(e, "0");
	}
	if (!enabled)
		return;
	va_start(ap, fmt);
	fputs("ktls: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int ktls_install_opt(int fd, int opt, const struct ktls_keyblock *kb)
{
	unsigned char info[KTLS_MAX_INFO];
	int len, ret = 0;

	len = ktls_keyblock_to_info(kb, info, sizeof(info));
	if (len < 0)
		return len;
	if (ktls_sys->setsockopt(fd, SOL_TLS, opt, info, (socklen_t)len) < 0)
		ret = -errno;
	OPENSSL_cleanse(info, sizeof(info));
	return ret;
}

/* One direction's key, salt and IV appended to out's keyblock. */
static void keyblock_append(struct tls_keyblock *out, const struct ktls_keyblock *kb)
{
	const struct ktls_cipher *c = kb->cipher;
	unsigned char *p = out->keyblock + out->keyblock_len;

	memcpy(p, kb->key, c->key_size);
	memcpy(p + c->key_size, kb->salt, c->salt_size);
	memcpy(p + c->key_size + c->salt_size, kb->iv, c->iv_size);
	out->keyblock_len += c->key_size + c->salt_size + c->iv_size;
}

int ktls_install_keyblock(int fd, const struct ktls_keyblock *tx, const struct ktls_keyblock *rx)
{
	const struct ktls_keyblock *any = tx ? tx : rx;
	struct tls_keyblock out;
	int ret = 0;

	if (!any || !any->cipher ||
	    (tx && rx && (tx->version != rx->version || tx->cipher != rx->cipher)))
		return -EINVAL;
	/* both directions' material fits: checked once against the table */
	if (2u * (any->cipher->key_size + any->cipher->salt_size + any->cipher->iv_size) >
	    sizeof(out.keyblock))
		return -EINVAL;
	memset(&out, 0, sizeof(out));
	out.struct_version = TLS_KEYBLOCK_VERSION_1;
	out.struct_size = sizeof(out);
	out.version = any->version;
	out.cipher_type = any->cipher->kernel_id;
	if (tx) {
		out.flags |= TLS_KEYBLOCK_TX;
		memcpy(out.tx_rec_seq, tx->seq, sizeof(out.tx_rec_seq));
		keyblock_append(&out, tx);
	}
	if (rx) {
		out.flags |= TLS_KEYBLOCK_RX;
		memcpy(out.rx_rec_seq, rx->seq, sizeof(out.rx_rec_seq));
		keyblock_append(&out, rx);
	}
	if (ktls_sys->setsockopt(fd, SOL_TLS, TLS_KEYBLOCK, &out, sizeof(out)) < 0)
		ret = -errno;
	OPENSSL_cleanse(&out, sizeof(out));
	return ret;
}

int ktls_install(int fd, bool *ulp_attached, const struct ktls_keyblock *kb, bool tx,
		 bool keyblock)
{
	if (!*ulp_attached) {
		if (ktls_sys->setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", 3) < 0)
			return -errno;
		*ulp_attached = true;
	}
	/* the same install and the same errors; one generic call where the
	 * kernel has it */
	if (keyblock)
		return ktls_install_keyblock(fd, tx ? kb : NULL, tx ? NULL : kb);
	return ktls_install_opt(fd, tx ? TLS_TX : TLS_RX, kb);
}
