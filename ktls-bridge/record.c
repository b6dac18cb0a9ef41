// SPDX-License-Identifier: MIT
/*
 * record.c - records as the kernel sees them: a record of a given content
 * type through the kernel's TX (alerts, KeyUpdates, close_notify), or
 * queued for an application that sends them itself (ktls_conn_set_owed),
 * and the walk of the handshake messages in a record body.
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

bool ktls_owed_has(const struct ktls_conn *c, int type)
{
	for (unsigned int i = 0; i < c->owed_n; i++)
		if (!type || c->owed[i].type == type)
			return true;
	return false;
}

/* Queue a record for the application (ktls_conn_owed). */
static ssize_t owe(struct ktls_conn *c, int type, const uint8_t *p, size_t len)
{
	struct ktls_owed *e;

	if (len > KTLS_OWED_MAX)
		return -EMSGSIZE;
	if (type == KTLS_CT_ALERT && len == 2 && p[0] == ALERT_LEVEL_FATAL) {
		/* the connection ends: KeyUpdates not handed out yet are moot */
		unsigned int keep = c->owed_out ? 1 : 0, n = keep;

		for (unsigned int i = keep; i < c->owed_n; i++)
			if (c->owed[i].type != KTLS_CT_HANDSHAKE)
				c->owed[n++] = c->owed[i];
		c->owed_n = n;
	}
	if (c->owed_n == KTLS_OWED_SLOTS)
		return -EAGAIN;
	e = &c->owed[c->owed_n++];
	e->type = (uint8_t)type;
	e->len = (uint8_t)len;
	memcpy(e->rec, p, len);
	return 0;
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
	if (c->owe)
		return owe(c, type, buf, len);
	memset(cbuf.b, 0, sizeof(cbuf.b));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_TLS;
	cm->cmsg_type = TLS_SET_RECORD_TYPE;
	cm->cmsg_len = CMSG_LEN(sizeof(unsigned char));
	*CMSG_DATA(cm) = (unsigned char)type;
	n = ktls_sys->sendmsg(c->fd, &msg, MSG_NOSIGNAL);
	return n < 0 ? -errno : n;
}
