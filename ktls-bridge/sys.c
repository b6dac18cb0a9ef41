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

int ktls_install(int fd, bool *ulp_attached, const struct ktls_keyblock *kb, bool tx)
{
	if (!*ulp_attached) {
		if (ktls_sys->setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", 3) < 0)
			return -errno;
		*ulp_attached = true;
	}
	return ktls_install_opt(fd, tx ? TLS_TX : TLS_RX, kb);
}
