// SPDX-License-Identifier: MIT
/*
 * record.c - records as the kernel sees them: a record of a given content
 * type through the kernel's TX (alerts, KeyUpdates, close_notify), and the
 * walk of the handshake messages in a record body.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

int ktls_hs_count_keyupdates(const uint8_t *p, size_t len, int *requested)
{
	int n = 0;

	while (len) {
		size_t body;

		if (len < 4)
			return -EBADMSG;
		body = ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
		if (len - 4 < body)
			return -EBADMSG;
		if (p[0] == KTLS_HS_KEY_UPDATE) {
			if (body != 1 || p[4] > 1)
				return -EBADMSG;
			if (requested)
				*requested = p[4];
			n++;
		}
		p += 4 + body;
		len -= 4 + body;
	}
	return n;
}

ssize_t ktls_send_ctrl(struct ktls_conn *c, int type, const void *buf, size_t len)
{
	union ktls_cmsg_buf cbuf;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b),
	};
	struct cmsghdr *cm;
	ssize_t n;

	/* The kernel's receive path reports a bad record through the socket
	 * error, and a pending socket error fails every send: take it before
	 * an alert, or the alert that explains the error cannot go out. */
	if (type == KTLS_CT_ALERT && c->rx_kerr) {
		int soerr;
		socklen_t slen = sizeof(soerr);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &slen);
	}
	memset(cbuf.b, 0, sizeof(cbuf.b));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_TLS;
	cm->cmsg_type = TLS_SET_RECORD_TYPE;
	cm->cmsg_len = CMSG_LEN(sizeof(unsigned char));
	*CMSG_DATA(cm) = (unsigned char)type;
	n = ktls_sys->sendmsg(c->fd, &msg, MSG_NOSIGNAL);
	return n < 0 ? -errno : n;
}
