// SPDX-License-Identifier: MIT
/*
 * crafted-server - a TLS 1.3 server that misbehaves on purpose (test tool).
 *
 * It does a normal handshake with libssl on the bridge, hands the
 * connection to the kernel (ktls_conn_handoff), sends 64 KiB, then one of
 * the crafted post-handshake records below through the bridge's own
 * record writer (kernel TX, TLS_SET_RECORD_TYPE), moves its transmit key
 * as a peer that meant it would, sends 64 KiB more and close_notify.  Then
 * it reads what the client sends back until the end and prints one JSON
 * line: what it sent (bytes, sha256) and the alert it received, if any.
 *
 *   plain       no crafted record (the control case)
 *   coalesced   NewSessionTicket + KeyUpdate in one record (valid)
 *   split       a KeyUpdate split across two records (valid)
 *   two         two KeyUpdates in one record (the first does not end it)
 *   kufirst     KeyUpdate followed by a NewSessionTicket in one record
 *   badvalue    KeyUpdate with request_update = 2
 *   badlength   KeyUpdate with a two-byte body
 *   storm       40 KeyUpdates, one record each, back to back
 *
 * Usage: crafted-server --cert FILE --key FILE --port N --scenario NAME
 * Built against the bridge's internal library (not installed).
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "internal.h"

#define CHUNK 16384

struct scenario {
	const char *name;
	uint8_t rec[2][24];	/* up to two records */
	size_t len[2];
	int nku;		/* complete KeyUpdates the records announce */
	int repeat;
};

static const struct scenario scenarios[] = {
	{ "plain", { { 0 } }, { 0 }, 0, 0 },
	/* a well-formed NewSessionTicket (lifetime 60 s, no nonce, a one-byte
	 * ticket), which libssl parses in transparent mode */
	{ "coalesced", { { 4, 0, 0, 14, 0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 1, 'x', 0, 0,
			   24, 0, 0, 1, 0 } }, { 23 }, 1, 1 },
	{ "split", { { 24, 0 }, { 0, 1, 0 } }, { 2, 3 }, 1, 1 },
	{ "two", { { 24, 0, 0, 1, 0, 24, 0, 0, 1, 0 } }, { 10 }, 2, 1 },
	{ "kufirst", { { 24, 0, 0, 1, 0, 4, 0, 0, 4, 0, 0, 0, 0 } }, { 13 }, 1, 1 },
	{ "badvalue", { { 24, 0, 0, 1, 2 } }, { 5 }, 0, 1 },
	{ "badlength", { { 24, 0, 0, 2, 0, 0 } }, { 6 }, 0, 1 },
	{ "storm", { { 24, 0, 0, 1, 0 } }, { 5 }, 1, 40 },
};

static int send_data(SSL *ssl, EVP_MD_CTX *md, uint64_t *sent)
{
	static uint8_t buf[CHUNK];

	for (int i = 0; i < 4; i++) {
		memset(buf, 'a' + (int)(*sent / CHUNK % 26), sizeof(buf));
		for (size_t off = 0; off < sizeof(buf);) {
			ssize_t n = ktls_conn_send(ssl, buf + off, sizeof(buf) - off);

			if (n < 0)
				return (int)n;
			EVP_DigestUpdate(md, buf + off, (size_t)n);
			off += (size_t)n;
			*sent += (uint64_t)n;
		}
	}
	return 0;
}

static int crafted(SSL *ssl, const struct scenario *sc)
{
	struct ktls_conn *c = ktls_conn_from_bio(SSL_get_wbio(ssl));

	for (int r = 0; r < sc->repeat; r++) {
		for (int i = 0; i < 2 && sc->len[i]; i++)
			if (ktls_send_ctrl(c, KTLS_CT_HANDSHAKE, sc->rec[i], sc->len[i]) < 0)
				return -errno;
		/* our own keys move as the records said they would */
		if (sc->nku && ktls_tx_after_handshake(c, sc->nku))
			return -errno;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "port", required_argument, NULL, 'p' },
		{ "scenario", required_argument, NULL, 's' },
		{ 0 },
	};
	const char *cert = NULL, *key = NULL, *name = NULL;
	const struct scenario *sc = NULL;
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct ktls_policy pol;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char dgst[32];
	char hex[65], alert[32] = "null", end[32] = "eof";
	uint64_t sent = 0;
	int ch, lfd, fd, one = 1, ret;
	SSL_CTX *ctx;
	SSL *ssl;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'p': a.sin_port = htons((uint16_t)atoi(optarg)); break;
		case 's': name = optarg; break;
		default: return 2;
		}
	}
	for (size_t i = 0; name && i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (!strcmp(name, scenarios[i].name))
			sc = &scenarios[i];
	if (!cert || !key || !sc || !a.sin_port) {
		fprintf(stderr, "usage: crafted-server --cert F --key F --port N --scenario NAME\n");
		return 2;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_num_tickets(ctx, 0);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || ktls_ctx_setup(ctx)) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1)) {
		perror("crafted-server: listen");
		return 1;
	}
	fprintf(stderr, "crafted-server: listening\n");
	fd = accept(lfd, NULL, NULL);
	ssl = SSL_new(ctx);
	ktls_policy_default(&pol);
	pol.prestage = false;	/* our TX key moves only when we say so */
	if (fd < 0 || ktls_conn_attach(ssl, fd, &pol) || SSL_accept(ssl) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	ret = ktls_conn_handoff(ssl);
	if (ret) {
		fprintf(stderr, "crafted-server: hand-off refused: %s\n", strerror(-ret));
		return 1;
	}
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	ret = send_data(ssl, md, &sent);
	if (!ret)
		ret = crafted(ssl, sc);
	if (!ret)
		ret = send_data(ssl, md, &sent);
	if (!ret)
		ret = ktls_conn_shutdown(ssl);
	if (ret)	/* the client may have ended it already: say so, go on */
		fprintf(stderr, "crafted-server: sending: %s\n", strerror(-ret));
	/* what the client says back */
	for (;;) {
		uint8_t buf[CHUNK];
		int type;
		ssize_t n = ktls_conn_recv_record(ssl, buf, sizeof(buf), &type);

		if (n <= 0) {
			if (n < 0)
				snprintf(end, sizeof(end), "%s", strerror((int)-n));
			break;
		}
		if (type == KTLS_CT_ALERT && n == 2) {
			if (buf[1] == 0) {
				snprintf(end, sizeof(end), "close_notify");
			} else {
				snprintf(alert, sizeof(alert), "%u", buf[1]);
				break;
			}
		}
	}
	EVP_DigestFinal_ex(md, dgst, NULL);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", dgst[i]);
	printf("{\"scenario\":\"%s\",\"sent\":%llu,\"sha256_sent\":\"%s\",\"alert\":%s,"
	       "\"end\":\"%s\"}\n", sc->name, (unsigned long long)sent, hex, alert, end);
	SSL_free(ssl);
	close(fd);
	close(lfd);
	SSL_CTX_free(ctx);
	EVP_MD_CTX_free(md);
	return 0;
}
