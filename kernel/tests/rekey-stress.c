// SPDX-License-Identifier: MIT
/*
 * rekey-stress: send and receive in both directions of one kTLS socket
 * pair while both sides re-key thousands of times.
 *
 * Four threads: a sender and a receiver per direction.  Every few records
 * the sender emits a KeyUpdate; the key of the next generation is either
 * pre-staged (TLS_TX_NEXT / TLS_RX_NEXT) or installed afterwards (TLS_TX,
 * and TLS_RX after EKEYEXPIRED), chosen at random per generation and
 * side.  Every byte received is checked against the stream pattern.
 *
 * Usage: rekey-stress [KEYUPDATES_PER_DIRECTION [SEED]]
 * Exit: 0 pass, 1 fail, 77 skip (no kTLS in this kernel).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

#define RECORDS_PER_KEY 7

static const unsigned char key_update[] = { 0x18, 0x00, 0x00, 0x01, 0x00 };
static int updates = 2000;

struct dir {
	const char *name;
	int tx_fd, rx_fd;
	unsigned int seed;
	unsigned long staged_tx, staged_rx, expired, late_staged;
	unsigned long long sent, received;
	int failed;
};

static void fail(struct dir *d, const char *what, int err)
{
	fprintf(stderr, "rekey-stress: %s: %s: %s\n", d->name, what,
		strerror(err));
	d->failed = 1;
	printf("FAIL\n");
	exit(1);	/* the other threads may be blocked on this one */
}

static void keys_for(struct tls12_crypto_info_aes_gcm_128 *k, int gen,
		     unsigned char dir_tag)
{
	memset(k, 0, sizeof(*k));
	k->info.version = TLS_1_3_VERSION;
	k->info.cipher_type = TLS_CIPHER_AES_GCM_128;
	memset(k->key, gen & 0xff, sizeof(k->key));
	k->key[0] = gen >> 8;
	k->key[1] = dir_tag;
	memset(k->iv, (gen * 7) & 0xff, sizeof(k->iv));
	memset(k->salt, dir_tag, sizeof(k->salt));
}

static int set_key(int fd, int opt, int gen, unsigned char dir_tag)
{
	struct tls12_crypto_info_aes_gcm_128 k;
	int ret;

	keys_for(&k, gen, dir_tag);
	ret = setsockopt(fd, SOL_TLS, opt, &k, sizeof(k));
	memset(&k, 0, sizeof(k));
	return ret ? -errno : 0;
}

static unsigned char pattern(unsigned long long off)
{
	return (unsigned char)(off ^ (off >> 8) ^ (off >> 17) ^ 0x5a);
}

static int send_record(int fd, unsigned char type, const void *buf,
		       size_t len, int flags)
{
	char cbuf[CMSG_SPACE(1)];
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { 0 };
	struct cmsghdr *cmsg;

	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (type != 23) {
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_TLS;
		cmsg->cmsg_type = TLS_SET_RECORD_TYPE;
		cmsg->cmsg_len = CMSG_LEN(1);
		*CMSG_DATA(cmsg) = type;
	}
	return sendmsg(fd, &msg, flags);
}

static void *sender(void *arg)
{
	struct dir *d = arg;
	unsigned char dir_tag = d->name[0];
	unsigned long long off = 0;
	unsigned char buf[2048];
	int gen = 0, u, r;
	bool staged = false;

	for (u = 0; u < updates && !d->failed; u++) {
		if (rand_r(&d->seed) & 1) {
			if (set_key(d->tx_fd, TLS_TX_NEXT, gen + 1, dir_tag))
				return fail(d, "TLS_TX_NEXT", errno), NULL;
			staged = true;
		}
		for (r = 0; r < RECORDS_PER_KEY; r++) {
			size_t len = 1 + rand_r(&d->seed) % sizeof(buf);
			int flags = (rand_r(&d->seed) % 4 == 0) ? MSG_MORE : 0;
			size_t i, done = 0;

			for (i = 0; i < len; i++)
				buf[i] = pattern(off + i);
			while (done < len) {
				ssize_t n = send_record(d->tx_fd, 23, buf + done,
							len - done, flags);
				if (n < 0)
					return fail(d, "send data", errno), NULL;
				done += n;
			}
			off += len;
		}
		if (send_record(d->tx_fd, 22, key_update, sizeof(key_update),
				0) != sizeof(key_update))
			return fail(d, "send KeyUpdate", errno), NULL;
		gen++;
		if (staged) {
			d->staged_tx++;
			staged = false;
		} else if (set_key(d->tx_fd, TLS_TX, gen, dir_tag)) {
			return fail(d, "TLS_TX", errno), NULL;
		}
	}
	/* end marker: an alert-type record */
	if (send_record(d->tx_fd, 21, "\x01\x00", 2, 0) != 2)
		fail(d, "send end", errno);
	d->sent = off;
	return NULL;
}

static void *receiver(void *arg)
{
	struct dir *d = arg;
	unsigned char dir_tag = d->name[0];
	unsigned long long off = 0;
	unsigned char buf[16384];
	bool staged = false, pending = false;
	unsigned int seed = d->seed ^ 0x9e3779b9;
	int gen = 0;

	for (;;) {
		char cbuf[CMSG_SPACE(1)];
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr msg = { 0 };
		struct cmsghdr *cmsg;
		unsigned char type = 23;
		ssize_t n, i;

		/*
		 * A staged key is for the generation after the next KeyUpdate
		 * we read.  A KeyUpdate read with nothing staged leaves the
		 * kernel waiting for generation gen: TLS_RX, or TLS_RX_NEXT
		 * which then installs at once.
		 */
		if (pending && (rand_r(&seed) % 4 == 0)) {
			if (set_key(d->rx_fd, TLS_RX_NEXT, gen, dir_tag))
				return fail(d, "TLS_RX_NEXT while pending", errno), NULL;
			pending = false;
			d->late_staged++;
		} else if (!pending && !staged && (rand_r(&seed) & 1)) {
			if (set_key(d->rx_fd, TLS_RX_NEXT, gen + 1, dir_tag))
				return fail(d, "TLS_RX_NEXT", errno), NULL;
			staged = true;
		}
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		n = recvmsg(d->rx_fd, &msg, 0);
		if (n < 0 && errno == EKEYEXPIRED && pending) {
			pending = false;
			d->expired++;
			if (set_key(d->rx_fd, TLS_RX, gen, dir_tag))
				return fail(d, "TLS_RX", errno), NULL;
			continue;
		}
		if (n < 0)
			return fail(d, "recvmsg", errno), NULL;
		if (n == 0)
			return fail(d, "recvmsg", EPIPE), NULL;
		cmsg = CMSG_FIRSTHDR(&msg);
		if (cmsg && cmsg->cmsg_level == SOL_TLS &&
		    cmsg->cmsg_type == TLS_GET_RECORD_TYPE)
			type = *CMSG_DATA(cmsg);

		if (type == 21)
			break;
		if (type == 22) {
			if (n != sizeof(key_update) ||
			    memcmp(buf, key_update, n))
				return fail(d, "bad KeyUpdate record", EBADMSG), NULL;
			gen++;
			if (staged)
				d->staged_rx++;
			else
				pending = true;
			staged = false;
			continue;
		}
		if (type != 23)
			return fail(d, "unexpected record type", EBADMSG), NULL;
		for (i = 0; i < n; i++)
			if (buf[i] != pattern(off + i)) {
				fprintf(stderr, "rekey-stress: %s: byte %llu differs (gen %d)\n",
					d->name, off + i, gen);
				d->failed = 1;
				return NULL;
			}
		off += n;
	}
	if (gen != updates)
		return fail(d, "KeyUpdate count", EBADMSG), NULL;
	d->received = off;
	return NULL;
}

static int tcp_pair(int *a, int *b)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	int l;

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (void *)&addr, sizeof(addr)) || listen(l, 1) ||
	    getsockname(l, (void *)&addr, &len))
		return -1;
	*a = socket(AF_INET, SOCK_STREAM, 0);
	if (*a < 0 || connect(*a, (void *)&addr, sizeof(addr)))
		return -1;
	*b = accept(l, NULL, NULL);
	close(l);
	return *b < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	unsigned int seed = argc > 2 ? atoi(argv[2]) : 1;
	struct dir ab = { .name = "a->b" }, ba = { .name = "b->a" };
	pthread_t t[4];
	int a, b;

	if (argc > 1)
		updates = atoi(argv[1]);
	if (tcp_pair(&a, &b)) {
		perror("rekey-stress: socket pair");
		return 1;
	}
	if (setsockopt(a, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) ||
	    setsockopt(b, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls"))) {
		perror("rekey-stress: TCP_ULP tls (skip)");
		return 77;
	}
	ab.tx_fd = a; ab.rx_fd = b; ab.seed = seed;
	ba.tx_fd = b; ba.rx_fd = a; ba.seed = seed * 2654435761u + 1;
	if (set_key(a, TLS_TX, 0, 'a') || set_key(b, TLS_RX, 0, 'a') ||
	    set_key(b, TLS_TX, 0, 'b') || set_key(a, TLS_RX, 0, 'b')) {
		perror("rekey-stress: TLS_TX/TLS_RX (skip)");
		return 77;
	}
	alarm(600);
	pthread_create(&t[0], NULL, receiver, &ab);
	pthread_create(&t[1], NULL, receiver, &ba);
	pthread_create(&t[2], NULL, sender, &ab);
	pthread_create(&t[3], NULL, sender, &ba);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);

	for (int i = 0; i < 2; i++) {
		struct dir *d = i ? &ba : &ab;

		printf("%s: sent %llu received %llu bytes, %d KeyUpdates, staged tx %lu rx %lu, EKEYEXPIRED %lu, staged while pending %lu\n",
		       d->name, d->sent, d->received, updates, d->staged_tx,
		       d->staged_rx, d->expired, d->late_staged);
		if (d->sent != d->received)
			d->failed = 1;
	}
	close(a);
	close(b);
	if (ab.failed || ba.failed) {
		printf("FAIL\n");
		return 1;
	}
	printf("PASS\n");
	return 0;
}
