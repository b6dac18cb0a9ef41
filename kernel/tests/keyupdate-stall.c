// SPDX-License-Identifier: MIT
/*
 * keyupdate-stall: how long the data behind a KeyUpdate waits on the
 * receive side, with the next RX key set after the KeyUpdate (TLS_RX, the
 * mainline flow) or staged before it (TLS_RX_NEXT).
 *
 * One kTLS connection over loopback, TLS 1.3 AES-128-GCM.  Per round the
 * sender writes a KeyUpdate record and right behind it one data record
 * under the next key (its own key is staged with TLS_TX_NEXT), then waits
 * for the receiver.  The receiver is a poll() loop; for each KeyUpdate it
 * does WORK_US microseconds of busy work, standing for what a TLS library
 * does with a KeyUpdate (parse it, derive the next traffic key), and sets
 * the key:
 *   tls_rx  the work and TLS_RX come first; the kernel cannot decrypt the
 *           data record before that (recvmsg fails with EKEYEXPIRED, poll
 *           hides EPOLLIN);
 *   staged  the key of this round was staged (TLS_RX_NEXT) the round
 *           before, so the data record is read first, then the work and
 *           the staging of the next round's key.
 * Reported: the time from recvmsg() returning the KeyUpdate to recvmsg()
 * returning the data record behind it (median, 90th and 99th percentile,
 * microseconds), per mode.
 *
 * Usage: keyupdate-stall [ROUNDS [WORK_US]]   (default 2000 rounds, 50 us)
 * Exit: 0 done, 1 fail, 77 skip (no kTLS or no TLS_RX_NEXT here).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/tls.h>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef TLS_TX_NEXT
#define TLS_TX_NEXT 0x7401
#define TLS_RX_NEXT 0x7402
#endif

static const unsigned char key_update[] = { 0x18, 0x00, 0x00, 0x01, 0x00 };

static void die(const char *what)
{
	fprintf(stderr, "keyupdate-stall: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int set_key(int fd, int opt, int gen)
{
	struct tls12_crypto_info_aes_gcm_128 k;
	int ret;

	memset(&k, 0, sizeof(k));
	k.info.version = TLS_1_3_VERSION;
	k.info.cipher_type = TLS_CIPHER_AES_GCM_128;
	memset(k.key, gen & 0xff, sizeof(k.key));
	k.key[0] = gen >> 8;
	memset(k.iv, (gen * 7) & 0xff, sizeof(k.iv));
	ret = setsockopt(fd, SOL_TLS, opt, &k, sizeof(k));
	memset(&k, 0, sizeof(k));
	return ret;
}

static void send_record(int fd, unsigned char type, const void *buf, size_t len)
{
	char cbuf[CMSG_SPACE(1)];
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { 0 };
	struct cmsghdr *cmsg;

	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf;
	msg.msg_controllen = sizeof(cbuf);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_TLS;
	cmsg->cmsg_type = TLS_SET_RECORD_TYPE;
	cmsg->cmsg_len = CMSG_LEN(1);
	*CMSG_DATA(cmsg) = type;
	if (sendmsg(fd, &msg, 0) != (ssize_t)len)
		die("sendmsg");
}

/* One record, waiting with poll() as an event loop would; its type. */
static int recv_record(int fd)
{
	char buf[512], cbuf[CMSG_SPACE(1)];
	struct iovec iov = { buf, sizeof(buf) };
	struct pollfd pfd = { fd, POLLIN, 0 };
	struct msghdr msg = { 0 };
	struct cmsghdr *cmsg;

	for (;;) {
		if (poll(&pfd, 1, 5000) != 1)
			die("poll (no EPOLLIN within 5 s)");
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		if (recvmsg(fd, &msg, MSG_DONTWAIT) >= 0)
			break;
		if (errno != EAGAIN)
			die("recvmsg");
	}
	cmsg = CMSG_FIRSTHDR(&msg);
	if (cmsg && cmsg->cmsg_level == SOL_TLS &&
	    cmsg->cmsg_type == TLS_GET_RECORD_TYPE)
		return *CMSG_DATA(cmsg);
	return 23;
}

static void busy(double us)
{
	double end = now_us() + us;

	while (now_us() < end)
		;
}

static void pair(int *a, int *b)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int l, one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (void *)&sa, len) || listen(l, 1) ||
	    getsockname(l, (void *)&sa, &len))
		die("listen");
	*a = socket(AF_INET, SOCK_STREAM, 0);
	if (*a < 0 || connect(*a, (void *)&sa, len))
		die("connect");
	*b = accept(l, NULL, NULL);
	if (*b < 0)
		die("accept");
	close(l);
	setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (setsockopt(*a, IPPROTO_TCP, TCP_ULP, "tls", 4) ||
	    setsockopt(*b, IPPROTO_TCP, TCP_ULP, "tls", 4)) {
		printf("SKIP: no kTLS\n");
		exit(77);
	}
	if (set_key(*a, TLS_TX, 0) || set_key(*b, TLS_RX, 0))
		die("TLS_TX/TLS_RX");
}

static int cmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

static void run(const char *mode, int staged, int rounds, double work)
{
	double *lat = calloc(rounds, sizeof(*lat)), t0;
	int a, b, g;

	if (!lat)
		die("calloc");
	pair(&a, &b);
	if (set_key(a, TLS_TX_NEXT, 1)) {
		if (errno == ENOPROTOOPT) {
			printf("SKIP: no TLS_TX_NEXT (not a patched kernel)\n");
			exit(77);
		}
		die("TLS_TX_NEXT");
	}
	if (staged && set_key(b, TLS_RX_NEXT, 1))
		die("TLS_RX_NEXT");
	for (g = 1; g <= rounds; g++) {
		/* the KeyUpdate, and data right behind it under key g */
		send_record(a, 22, key_update, sizeof(key_update));
		send_record(a, 23, "data after the KeyUpdate", 24);
		if (set_key(a, TLS_TX_NEXT, g + 1))
			die("TLS_TX_NEXT");

		if (recv_record(b) != 22)
			die("expected the KeyUpdate record");
		t0 = now_us();
		if (!staged) {
			busy(work);
			if (set_key(b, TLS_RX, g))
				die("TLS_RX");
		}
		if (recv_record(b) != 23)
			die("expected a data record");
		lat[g - 1] = now_us() - t0;
		if (staged) {
			busy(work);
			if (set_key(b, TLS_RX_NEXT, g + 1))
				die("TLS_RX_NEXT");
		}
	}
	close(a);
	close(b);
	qsort(lat, rounds, sizeof(*lat), cmp);
	printf("%-7s rounds %d work %.0f us: KeyUpdate -> next data record: median %.1f us, p90 %.1f us, p99 %.1f us\n",
	       mode, rounds, work, lat[rounds / 2], lat[rounds * 9 / 10],
	       lat[rounds * 99 / 100]);
	free(lat);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 2000;
	double work = argc > 2 ? atof(argv[2]) : 50;

	if (rounds < 1 || work < 0) {
		fprintf(stderr, "usage: keyupdate-stall [ROUNDS [WORK_US]]\n");
		return 1;
	}
	run("tls_rx", 0, rounds, work);
	run("staged", 1, rounds, work);
	return 0;
}
