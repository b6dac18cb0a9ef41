// SPDX-License-Identifier: MIT
/*
 * diag.c - ask the kernel (sock_diag, what `ss -ti` shows) where each
 * direction of one TLS socket is handled: TLS_CONF_SW or TLS_CONF_HW.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "internal.h"

/* The attribute of this type among those in [p, p + len), or NULL. */
static const struct nlattr *nla_find(const void *p, int len, int type)
{
	const struct nlattr *a = p;

	while (len >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= len) {
		if ((a->nla_type & NLA_TYPE_MASK) == type)
			return a;
		len -= NLA_ALIGN(a->nla_len);
		a = (const struct nlattr *)((const char *)a + NLA_ALIGN(a->nla_len));
	}
	return NULL;
}

static const void *nla_payload(const struct nlattr *a)
{
	return (const char *)a + NLA_HDRLEN;
}

static int nla_paylen(const struct nlattr *a)
{
	return a->nla_len - NLA_HDRLEN;
}

static int nla_u16(const struct nlattr *a)
{
	uint16_t v = 0;

	if (a && nla_paylen(a) >= (int)sizeof(v))
		memcpy(&v, nla_payload(a), sizeof(v));
	return v;
}

int ktls_diag_parse(const void *buf, size_t len, int *txconf, int *rxconf)
{
	size_t off = 0;

	*txconf = *rxconf = 0;
	/* by hand, not NLMSG_OK/NLMSG_NEXT: a last message whose length is
	 * not padded to 4 must not move the walk past the end */
	while (off + NLMSG_HDRLEN <= len) {
		const struct nlmsghdr *h = (const void *)((const char *)buf + off);
		const struct inet_diag_msg *m = NLMSG_DATA(h);
		const struct nlattr *a;

		if (h->nlmsg_len < NLMSG_HDRLEN || h->nlmsg_len > len - off)
			return -EBADMSG;
		off += NLMSG_ALIGN(h->nlmsg_len);
		if (h->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(h);

			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				return -EBADMSG;
			/* a negative errno; anything else is not an answer */
			return e->error < 0 ? e->error : e->error ? -EBADMSG : -ENOENT;
		}
		if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
			continue;
		if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
			return -EBADMSG;
		a = nla_find((const char *)m + NLMSG_ALIGN(sizeof(*m)),
			     (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m))), INET_DIAG_ULP_INFO);
		if (a)
			a = nla_find(nla_payload(a), nla_paylen(a), INET_ULP_INFO_TLS);
		if (!a)
			return -ENOENT;	/* no tls ULP on this socket */
		*txconf = nla_u16(nla_find(nla_payload(a), nla_paylen(a), TLS_INFO_TXCONF));
		*rxconf = nla_u16(nla_find(nla_payload(a), nla_paylen(a), TLS_INFO_RXCONF));
		return 0;
	}
	return -ENOENT;
}

int ktls_diag_conf(int fd, int *txconf, int *rxconf)
{
	struct sockaddr_storage local, peer;
	socklen_t llen = sizeof(local), plen = sizeof(peer);
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	char buf[8192];
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
	int sk, ret;
	ssize_t n;

	*txconf = *rxconf = 0;
	if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0 ||
	    getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
		return -errno;
	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST;
	req.r.sdiag_family = (uint8_t)local.ss_family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_ext = 1 << (INET_DIAG_INFO - 1);	/* brings the ULP info */
	req.r.idiag_states = ~0u;
	req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (local.ss_family == AF_INET) {
		const struct sockaddr_in *l = (void *)&local, *p = (void *)&peer;

		req.r.id.idiag_sport = l->sin_port;
		req.r.id.idiag_dport = p->sin_port;
		memcpy(req.r.id.idiag_src, &l->sin_addr, 4);
		memcpy(req.r.id.idiag_dst, &p->sin_addr, 4);
	} else if (local.ss_family == AF_INET6) {
		const struct sockaddr_in6 *l = (void *)&local, *p = (void *)&peer;

		req.r.id.idiag_sport = l->sin6_port;
		req.r.id.idiag_dport = p->sin6_port;
		memcpy(req.r.id.idiag_src, &l->sin6_addr, 16);
		memcpy(req.r.id.idiag_dst, &p->sin6_addr, 16);
	} else {
		return -EAFNOSUPPORT;
	}
	sk = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (sk < 0)
		return -errno;
	if (sendto(sk, &req, sizeof(req), 0, (struct sockaddr *)&nl, sizeof(nl)) < 0) {
		ret = -errno;
		goto out;
	}
	n = recv(sk, buf, sizeof(buf), 0);
	if (n < 0) {
		ret = -errno;
		goto out;
	}
	ret = ktls_diag_parse(buf, (size_t)n, txconf, rxconf);
out:
	close(sk);
	return ret;
}
