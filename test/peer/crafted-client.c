// SPDX-License-Identifier: MIT
/*
 * crafted-client - a TLS 1.3 client that misbehaves on purpose (test tool).
 *
 * It does a normal handshake with libssl on a plain socket, learns both
 * application traffic secrets from the key-log callback, and from then on
 * writes and reads the records itself: userspace AEAD, keys from the
 * project's own secret chain (rekey/secret.c).  So it can send what libssl
 * never would: KeyUpdates that are malformed, split, doubled, or sealed
 * under the wrong key, and a NewSessionTicket, which only servers send.
 * The server is an echo server.
 *
 * One run, on a new connection: a 1000-byte record and its echo (which
 * also eats the server's NewSessionTickets); the case's crafted records;
 * three 1000-byte records under the key the client's own chain has
 * reached; with --trail, an upload it writes without reading, through a
 * small send buffer, as a peer in the middle of a request body would (an
 * alert case: does the server let it finish and read the alert, or reset
 * it, "write_error"?); when everything came back, close_notify; then it
 * reads until the server ends the connection.  Every run prints one JSON line: how
 * the server ended it and whether that is what RFC 8446 asks for (the
 * table `cases` below, also printed by --list).
 *
 * Exit status: 0 every run matched its expectation, 1 otherwise, 2 usage.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "internal.h"

static const char *prog = "crafted-client";

#define CT_ALERT	21
#define CT_HANDSHAKE	22
#define CT_APPDATA	23

#define HS_NEW_SESSION_TICKET	4
#define HS_KEY_UPDATE		24

#define HDR_LEN		5
#define NONCE_LEN	12
#define REC_MAX		16384			/* TLSInnerPlaintext limit */
#define REC_WIRE_MAX	(REC_MAX + 256)		/* TLSCiphertext limit */
#define RBUF_SIZE	(4 * (HDR_LEN + REC_WIRE_MAX))
#define HS_MAX		65536			/* longest server message we buffer */

#define DATA_LEN	1000			/* the ordinary data records */
#define FRAG_DATA_LEN	100			/* frag-data: the record in between */
#define BULK_LEN	16384			/* ku-every: record size */
#define TXQ_LOW		(256 * 1024)		/* ku-every: queue refill mark */

#define EXP_NONE	(-1)	/* no alert: everything echoed, a clean end */
#define EXP_ANY		(-2)	/* server policy: the tool only reports */

/* How a run ended. */
enum end {
	END_NONE = 0,
	END_ALERT,		/* an alert record other than close_notify */
	END_CLOSE_NOTIFY,
	END_EOF,		/* TCP FIN, no alert */
	END_RESET,		/* ECONNRESET/EPIPE */
	END_TIMEOUT,
	END_UNDECRYPTABLE,	/* a server record did not decrypt or parse */
	END_HANDSHAKE,		/* connect or handshake failed */
	END_ERROR,		/* this tool failed (see "error") */
};

static const char *const end_names[] = {
	[END_NONE] = "none",
	[END_ALERT] = "alert",
	[END_CLOSE_NOTIFY] = "close_notify",
	[END_EOF] = "eof",
	[END_RESET] = "reset",
	[END_TIMEOUT] = "timeout",
	[END_UNDECRYPTABLE] = "undecryptable",
	[END_HANDSHAKE] = "handshake-failed",
	[END_ERROR] = "error",
};

/* One direction's record protection. */
struct dir {
	struct ktls_secret sec;
	EVP_CIPHER_CTX *ctx;
	uint8_t iv[NONCE_LEN];	/* salt || iv of the keyblock */
	uint64_t seq;
	int enc;
};

struct opts;
struct tcase;

struct conn {
	const struct opts *o;
	int fd;
	const struct ktls_cipher *kc;
	const EVP_CIPHER *evp;
	struct dir tx, rx;

	/* from the key log, until the chains take them */
	uint8_t log_c[KTLS_MAX_SECRET], log_s[KTLS_MAX_SECRET];
	size_t log_clen, log_slen;

	/* transmit */
	uint8_t *txq;
	size_t txoff, txlen, txcap;
	uint64_t sent;		/* application bytes sealed */
	uint64_t bulk_left;	/* ku-every: bytes still to generate */
	uint64_t bulk_records;
	long ku_every;
	unsigned client_kus;	/* times the client moved its own key */
	bool write_dead, saw_reset;
	char write_error[24];

	/* receive */
	uint8_t rbuf[RBUF_SIZE];
	size_t rlen;
	uint8_t hs[HS_MAX];
	size_t hslen;
	uint64_t echoed;
	bool echo_ok;
	unsigned server_kus;
	bool want_server_ku;	/* requested: a server KeyUpdate comes first */
	uint64_t ku_mark;	/* ... before the echo of bytes from here on */
	bool ku_late;
	EVP_MD_CTX *md_sent, *md_recv;

	/* outcome */
	enum end end;
	int alert, alert_level;	/* -1 = none */
	char error[200];
};

/* ------------------------------------------------------------------ */
/* Case table                                                          */
/* ------------------------------------------------------------------ */

struct tcase {
	const char *name;
	int expected;		/* alert description, EXP_NONE or EXP_ANY */
	const char *rfc;
	long vmin, vmax, vdef;	/* --value range and default; vdef < 0: none */
	int (*craft)(struct conn *c, long value);
	const char *what;
};

static int craft_valid(struct conn *c, long v);
static int craft_requested(struct conn *c, long v);
static int craft_badvalue(struct conn *c, long v);
static int craft_badlength(struct conn *c, long v);
static int craft_frag_data(struct conn *c, long v);
static int craft_two(struct conn *c, long v);
static int craft_two_newkey(struct conn *c, long v);
static int craft_oldkey_data(struct conn *c, long v);
static int craft_split_newkey(struct conn *c, long v);
static int craft_split(struct conn *c, long v);
static int craft_kufirst(struct conn *c, long v);
static int craft_ticket(struct conn *c, long v);
static int craft_storm(struct conn *c, long v);
static int craft_ku_every(struct conn *c, long v);

/*
 * What the server must do with each case.  Alert descriptions (RFC 8446
 * 6): 10 unexpected_message, 20 bad_record_mac, 47 illegal_parameter,
 * 50 decode_error.
 */
static const struct tcase cases[] = {
	{ "valid", EXP_NONE, "RFC 8446 4.6.3", 0, 0, -1, craft_valid,
	  "KeyUpdate(update_not_requested), data under the next key" },
	{ "requested", EXP_NONE, "RFC 8446 4.6.3", 0, 0, -1, craft_requested,
	  "KeyUpdate(update_requested): the server updates before its next data" },
	{ "badvalue", 47, "RFC 8446 4.6.3", 2, 255, 2, craft_badvalue,
	  "KeyUpdate with request_update = VALUE" },
	{ "badlength", 50, "RFC 8446 4.6.3, 6.2", 0, 16380, 2, craft_badlength,
	  "KeyUpdate whose body is VALUE zero bytes (not 1)" },
	{ "frag-data", 10, "RFC 8446 5.1", 0, 0, -1, craft_frag_data,
	  "KeyUpdate split over two records with application data between" },
	{ "two", 10, "RFC 8446 5.1", 0, 0, -1, craft_two,
	  "two KeyUpdates in one record (the first does not end it)" },
	{ "two-newkey", 20, "RFC 8446 5.2", 0, 0, -1, craft_two_newkey,
	  "the record of two KeyUpdates sealed under the key after the first" },
	{ "oldkey-data", 20, "RFC 8446 5.2", 0, 0, -1, craft_oldkey_data,
	  "KeyUpdate, then data still under the old key" },
	{ "split-newkey", 20, "RFC 8446 5.1, 5.2", 0, 0, -1, craft_split_newkey,
	  "KeyUpdate split over two records, the second under the next key" },
	{ "split", EXP_NONE, "RFC 8446 5.1, 4.6.3", 1, 4, 1, craft_split,
	  "KeyUpdate(update_requested) in VALUE-byte pieces, one record each" },
	{ "kufirst", 10, "RFC 8446 5.1", 0, 0, -1, craft_kufirst,
	  "KeyUpdate followed by a NewSessionTicket in one record" },
	{ "ticket", 10, "RFC 8446 4, 4.6.1", 0, 0, -1, craft_ticket,
	  "a well-formed NewSessionTicket from the client (only servers send them)" },
	{ "storm", EXP_ANY, "RFC 8446 4.6.3 (no limit: server policy)", 1, 1000000, 40,
	  craft_storm, "VALUE KeyUpdate records back to back" },
	{ "ku-every", EXP_NONE, "RFC 8446 4.6.3", 1, 1000000, 16, craft_ku_every,
	  "--bytes in 16 KiB records, KeyUpdate(update_requested) every VALUE records" },
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static const struct {
	int desc;
	const char *name;
} alert_names[] = {
	{ 0, "close_notify" },
	{ 10, "unexpected_message" },
	{ 20, "bad_record_mac" },
	{ 47, "illegal_parameter" },
	{ 50, "decode_error" },
	{ 90, "user_canceled" },
};

static const char *alert_name(int desc)
{
	if (desc == EXP_NONE)
		return "none";
	if (desc == EXP_ANY)
		return "any";
	for (size_t i = 0; i < sizeof(alert_names) / sizeof(alert_names[0]); i++)
		if (alert_names[i].desc == desc)
			return alert_names[i].name;
	return "other";
}

/* Suites this tool can seal and open (its AEAD code is GCM/ChaCha only). */
static const char *const tool_ciphers[] = { "AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305" };

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

struct opts {
	const struct tcase *tc;
	long value;
	long repeat;
	uint64_t bytes;
	uint64_t trail;		/* alert cases: an upload after the crafted records */
	const char *suites;
	int timeout;		/* seconds without progress */
	bool no_echo;
	char host[256];
	char port[16];
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: crafted-client --case NAME [--value N] [--repeat R] [--bytes B]\n"
		"                      [--trail B] [--ciphersuites LIST] [--timeout SECONDS]\n"
		"                      [--no-echo]\n"
		"                      HOST:PORT\n"
		"       crafted-client --list\n"
		"A TLS 1.3 client that sends crafted KeyUpdate records to an echo server\n"
		"and reports, one JSON line per run, how the server ended the connection.\n\n"
		"  --case NAME           what to send (--list shows the cases)\n"
		"  --value N             the case's parameter (badvalue, badlength, storm,\n"
		"                        ku-every)\n"
		"  --repeat R            runs, each on a new connection (default 1)\n"
		"  --bytes B             ku-every: bytes to send, K/M/G suffixes (default 64M)\n"
		"  --trail B             alert cases: then B more bytes, written without reading\n"
		"                        (a peer still uploading when the server ends it)\n"
		"  --ciphersuites LIST   TLS 1.3 suites to offer (default TLS_AES_128_GCM_SHA256;\n"
		"                        AES-GCM and ChaCha20-Poly1305 suites only)\n"
		"  --timeout SECONDS     give up after this long without progress (default 10)\n"
		"  --no-echo             the server is no echo server: do not wait for an echo,\n"
		"                        ignore its application data (for alert cases)\n"
		"  --list                print the case table as JSON lines\n"
		"  -h, --help            this text\n\n"
		"Exit status: 0 every run matched, 1 a run did not (or setup failed), 2 usage.\n");
}

static const struct tcase *case_by_name(const char *name)
{
	for (size_t i = 0; i < NCASES; i++)
		if (!strcmp(cases[i].name, name))
			return &cases[i];
	return NULL;
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_bytes(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;
	int shift = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift)
		end++;
	if (errno || *end || !v || v > (1ull << 40) >> shift)
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static const struct ktls_cipher *cipher_by_suite(const char *suite, size_t len)
{
	for (size_t i = 0; i < ktls_cipher_count(); i++) {
		const struct ktls_cipher *c = ktls_cipher_at(i);

		if (c->tls13_suite && strlen(c->tls13_suite) == len &&
		    !strncmp(c->tls13_suite, suite, len))
			return c;
	}
	return NULL;
}

static bool tool_supports(const struct ktls_cipher *c)
{
	for (size_t i = 0; c && i < sizeof(tool_ciphers) / sizeof(tool_ciphers[0]); i++)
		if (!strcmp(c->name, tool_ciphers[i]))
			return true;
	return false;
}

/* Every suite of LIST must be one this tool can protect records for. */
static int check_suites(const char *list)
{
	if (!*list) {
		fprintf(stderr, "%s: --ciphersuites: empty list\n", prog);
		return -EINVAL;
	}
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ":");

		if (!tool_supports(cipher_by_suite(p, n))) {
			fprintf(stderr, "%s: --ciphersuites: %.*s: not supported here "
				"(AES-GCM and ChaCha20-Poly1305 suites only)\n", prog, (int)n, p);
			return -EINVAL;
		}
		p += n;
		if (*p)
			p++;
	}
	return 0;
}

static int split_hostport(const char *arg, struct opts *o)
{
	const char *colon = strrchr(arg, ':');
	const char *h = arg;
	size_t hl;

	if (!colon || !colon[1] || strlen(colon + 1) >= sizeof(o->port))
		return -EINVAL;
	hl = (size_t)(colon - arg);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (!hl || hl >= sizeof(o->host))
		return -EINVAL;
	memcpy(o->host, h, hl);
	o->host[hl] = 0;
	strcpy(o->port, colon + 1);
	return 0;
}

static void print_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void print_expected(int expected)
{
	if (expected == EXP_NONE)
		printf("null");
	else if (expected == EXP_ANY)
		printf("\"any\"");
	else
		printf("%d", expected);
}

static void list_cases(void)
{
	for (size_t i = 0; i < NCASES; i++) {
		const struct tcase *tc = &cases[i];

		printf("{\"case\":\"%s\",\"expected\":", tc->name);
		print_expected(tc->expected);
		printf(",\"expected_name\":\"%s\",\"rfc\":\"%s\",", alert_name(tc->expected),
		       tc->rfc);
		if (tc->vdef < 0)
			printf("\"value\":null,\"value_default\":null,");
		else
			printf("\"value\":\"%ld..%ld\",\"value_default\":%ld,", tc->vmin, tc->vmax,
			       tc->vdef);
		printf("\"what\":");
		print_json_string(tc->what);
		printf("}\n");
	}
}

/* ------------------------------------------------------------------ */
/* Run state helpers                                                   */
/* ------------------------------------------------------------------ */

__attribute__((format(printf, 2, 3)))
static void set_error(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->error[0])
		return;		/* the first problem is the one to read */
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
}

static void set_end(struct conn *c, enum end e)
{
	if (!c->end)
		c->end = e;
}

/* The application data byte at stream offset off; records differ. */
static uint8_t pattern(uint64_t off)
{
	uint64_t x = (off >> 9) * 0x9e3779b97f4a7c15ull;

	return (uint8_t)(off ^ (x >> 56));
}

/* ------------------------------------------------------------------ */
/* Record protection (RFC 8446 5.2, 5.3)                               */
/* ------------------------------------------------------------------ */

static EVP_CIPHER *evp_cache[KTLS_PROBE_MAX_CIPHERS];

static const EVP_CIPHER *evp_for(const struct ktls_cipher *kc)
{
	size_t i = ktls_cipher_index(kc);

	if (i >= KTLS_PROBE_MAX_CIPHERS)
		return NULL;
	if (!evp_cache[i])
		evp_cache[i] = EVP_CIPHER_fetch(NULL, kc->evp_name, NULL);
	return evp_cache[i];
}

/* Key and IV of the chain's current generation; sequence number 0. */
static int dir_load(struct dir *d, const struct ktls_cipher *kc, const EVP_CIPHER *evp)
{
	struct ktls_keyblock kb;
	int ret;

	ret = ktls_secret_keyblock(&d->sec, kc, &kb);
	if (!ret) {
		memcpy(d->iv, kb.salt, kc->salt_size);
		memcpy(d->iv + kc->salt_size, kb.iv, kc->iv_size);
		if (!EVP_CipherInit_ex2(d->ctx, evp, kb.key, NULL, d->enc, NULL))
			ret = -EIO;
		d->seq = 0;
	}
	ktls_keyblock_wipe(&kb);
	return ret;
}

static int dir_init(struct dir *d, const uint8_t *secret, size_t len, const char *digest,
		    int enc, const struct ktls_cipher *kc, const EVP_CIPHER *evp)
{
	int ret;

	d->enc = enc;
	d->ctx = EVP_CIPHER_CTX_new();
	if (!d->ctx)
		return -ENOMEM;
	ret = ktls_secret_set(&d->sec, secret, len, digest);
	return ret ? ret : dir_load(d, kc, evp);
}

/* The next generation: RFC 8446 7.2 "traffic upd". */
static int dir_next(struct dir *d, const struct ktls_cipher *kc, const EVP_CIPHER *evp)
{
	int ret = ktls_secret_next(&d->sec);

	return ret ? ret : dir_load(d, kc, evp);
}

static void dir_free(struct dir *d)
{
	ktls_secret_wipe(&d->sec);
	OPENSSL_cleanse(d->iv, sizeof(d->iv));
	EVP_CIPHER_CTX_free(d->ctx);
	d->ctx = NULL;
}

/* Per-record nonce: the IV XOR the left-padded big-endian sequence number. */
static void dir_nonce(const struct dir *d, uint8_t nonce[NONCE_LEN])
{
	memcpy(nonce, d->iv, NONCE_LEN);
	for (int i = 0; i < 8; i++)
		nonce[NONCE_LEN - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

static int txq_reserve(struct conn *c, size_t need)
{
	uint8_t *q;
	size_t cap;

	if (c->txcap - c->txlen >= need)
		return 0;
	if (c->txoff) {
		memmove(c->txq, c->txq + c->txoff, c->txlen - c->txoff);
		c->txlen -= c->txoff;
		c->txoff = 0;
		if (c->txcap - c->txlen >= need)
			return 0;
	}
	cap = c->txcap ? c->txcap : 65536;
	while (cap - c->txlen < need)
		cap *= 2;
	q = realloc(c->txq, cap);
	if (!q)
		return -ENOMEM;
	c->txq = q;
	c->txcap = cap;
	return 0;
}

/* Seal content of one type as one record onto the transmit queue. */
static int seal(struct conn *c, uint8_t type, const uint8_t *p, size_t len)
{
	struct dir *d = &c->tx;
	size_t tag = c->kc->tag_size, clen = len + 1 + tag;
	uint8_t nonce[NONCE_LEN], *rec;
	int n, ret = -EIO;

	if (c->write_dead)
		return 0;	/* nothing goes out any more: do not queue */
	if (len > REC_MAX)
		return -EINVAL;
	if (txq_reserve(c, HDR_LEN + clen))
		return -ENOMEM;
	rec = c->txq + c->txlen;
	rec[0] = CT_APPDATA;
	rec[1] = 3;
	rec[2] = 3;
	rec[3] = (uint8_t)(clen >> 8);
	rec[4] = (uint8_t)clen;
	dir_nonce(d, nonce);
	if (EVP_CipherInit_ex2(d->ctx, NULL, NULL, nonce, 1, NULL) &&
	    EVP_CipherUpdate(d->ctx, NULL, &n, rec, HDR_LEN) &&
	    (!len || EVP_CipherUpdate(d->ctx, rec + HDR_LEN, &n, p, (int)len)) &&
	    EVP_CipherUpdate(d->ctx, rec + HDR_LEN + len, &n, &type, 1) &&
	    EVP_CipherFinal_ex(d->ctx, rec + HDR_LEN + len + 1, &n) &&
	    EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_GET_TAG, (int)tag,
				rec + HDR_LEN + len + 1) > 0) {
		d->seq++;
		c->txlen += HDR_LEN + clen;
		ret = 0;
	}
	OPENSSL_cleanse(nonce, sizeof(nonce));
	return ret;
}

/*
 * Open the record at rec (header + len bytes) in place.  Returns 0 with
 * the inner content type and length, or -EBADMSG.
 */
static int unseal(struct conn *c, uint8_t *rec, size_t len, uint8_t *type, size_t *plen)
{
	struct dir *d = &c->rx;
	size_t tag = c->kc->tag_size, clen;
	uint8_t nonce[NONCE_LEN], *body = rec + HDR_LEN;
	int n, ok;

	if (len < tag + 1)
		return -EBADMSG;
	clen = len - tag;
	dir_nonce(d, nonce);
	ok = EVP_CipherInit_ex2(d->ctx, NULL, NULL, nonce, 0, NULL) &&
	     EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_SET_TAG, (int)tag, body + clen) > 0 &&
	     EVP_CipherUpdate(d->ctx, NULL, &n, rec, HDR_LEN) &&
	     EVP_CipherUpdate(d->ctx, body, &n, body, (int)clen) &&
	     EVP_CipherFinal_ex(d->ctx, body + clen, &n) > 0;
	OPENSSL_cleanse(nonce, sizeof(nonce));
	if (!ok)
		return -EBADMSG;
	d->seq++;
	/* TLSInnerPlaintext: content, type, zero padding */
	while (clen && !body[clen - 1])
		clen--;
	if (!clen)
		return -EBADMSG;
	*type = body[clen - 1];
	*plen = clen - 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* What the client sends                                               */
/* ------------------------------------------------------------------ */

static int send_data(struct conn *c, size_t len)
{
	uint8_t buf[REC_MAX];
	int ret;

	for (size_t i = 0; i < len; i++)
		buf[i] = pattern(c->sent + i);
	ret = seal(c, CT_APPDATA, buf, len);
	if (!ret && !c->write_dead) {
		EVP_DigestUpdate(c->md_sent, buf, len);
		c->sent += len;
	}
	return ret;
}

static int send_hs(struct conn *c, const uint8_t *msg, size_t len)
{
	return seal(c, CT_HANDSHAKE, msg, len);
}

static int send_ku(struct conn *c, uint8_t request_update)
{
	const uint8_t ku[] = { HS_KEY_UPDATE, 0, 0, 1, request_update };

	return send_hs(c, ku, sizeof(ku));
}

/* The client's transmit key moves on: generation N+1, sequence 0. */
static int tx_next(struct conn *c)
{
	int ret = dir_next(&c->tx, c->kc, c->evp);

	if (!ret)
		c->client_kus++;
	return ret;
}

static int craft_valid(struct conn *c, long v)
{
	int ret = send_ku(c, 0);

	return ret ? ret : tx_next(c);
}

static int craft_requested(struct conn *c, long v)
{
	int ret = send_ku(c, 1);

	c->want_server_ku = true;
	c->ku_mark = c->sent;
	return ret ? ret : tx_next(c);
}

/* Malformed KeyUpdates: the client's key stays where it is. */
static int craft_badvalue(struct conn *c, long v)
{
	return send_ku(c, (uint8_t)v);
}

static int craft_badlength(struct conn *c, long v)
{
	uint8_t msg[4 + 16380] = { HS_KEY_UPDATE, 0, (uint8_t)(v >> 8), (uint8_t)v };

	return send_hs(c, msg, 4 + (size_t)v);
}

static int craft_frag_data(struct conn *c, long v)
{
	static const uint8_t head[] = { HS_KEY_UPDATE, 0, 0 }, tail[] = { 1, 0 };
	int ret;

	ret = send_hs(c, head, sizeof(head));
	if (!ret)
		ret = send_data(c, FRAG_DATA_LEN);
	if (!ret)
		ret = send_hs(c, tail, sizeof(tail));
	return ret ? ret : tx_next(c);
}

static const uint8_t two_kus[] = { HS_KEY_UPDATE, 0, 0, 1, 0, HS_KEY_UPDATE, 0, 0, 1, 0 };

static int craft_two(struct conn *c, long v)
{
	int ret = send_hs(c, two_kus, sizeof(two_kus));

	if (!ret)
		ret = tx_next(c);
	return ret ? ret : tx_next(c);
}

static int craft_two_newkey(struct conn *c, long v)
{
	int ret = tx_next(c);

	if (!ret)
		ret = send_hs(c, two_kus, sizeof(two_kus));
	return ret ? ret : tx_next(c);
}

static int craft_oldkey_data(struct conn *c, long v)
{
	return send_ku(c, 0);
}

static int craft_split_newkey(struct conn *c, long v)
{
	static const uint8_t head[] = { HS_KEY_UPDATE, 0 }, tail[] = { 0, 1, 0 };
	int ret = send_hs(c, head, sizeof(head));

	if (!ret)
		ret = tx_next(c);
	return ret ? ret : send_hs(c, tail, sizeof(tail));
}

/* Valid (RFC 8446 5.1: a handshake message may span records, nothing in
 * between): only the first piece begins with the KeyUpdate's type byte,
 * the one a kernel before our series looks at. */
static int craft_split(struct conn *c, long v)
{
	static const uint8_t ku[] = { HS_KEY_UPDATE, 0, 0, 1, 1 };
	int ret = 0;

	for (size_t off = 0; off < sizeof(ku) && !ret; off += (size_t)v)
		ret = send_hs(c, ku + off,
			      sizeof(ku) - off < (size_t)v ? sizeof(ku) - off : (size_t)v);
	c->want_server_ku = true;
	c->ku_mark = c->sent;
	return ret ? ret : tx_next(c);
}

static int craft_kufirst(struct conn *c, long v)
{
	static const uint8_t msg[] = { HS_KEY_UPDATE, 0, 0, 1, 0,
				       HS_NEW_SESSION_TICKET, 0, 0, 0 };
	int ret = send_hs(c, msg, sizeof(msg));

	return ret ? ret : tx_next(c);
}

/* lifetime 60 s, age_add 0, no nonce, a one-byte ticket, no extensions */
static int craft_ticket(struct conn *c, long v)
{
	static const uint8_t msg[] = { HS_NEW_SESSION_TICKET, 0, 0, 14,
				       0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 1, 'x', 0, 0 };

	return send_hs(c, msg, sizeof(msg));
}

static int craft_storm(struct conn *c, long v)
{
	int ret = 0;

	for (long i = 0; i < v && !ret; i++) {
		ret = send_ku(c, 0);
		if (!ret)
			ret = tx_next(c);
	}
	return ret;
}

static int pump_flush(struct conn *c);

/* The bulk records come from refill() while pump() reads the echo. */
static int craft_ku_every(struct conn *c, long v)
{
	c->ku_every = v;
	c->bulk_left = c->o->bytes;
	return pump_flush(c);
}

/* ku-every: keep the transmit queue fed. */
static int refill(struct conn *c)
{
	int ret = 0;

	while (c->bulk_left && !c->write_dead && c->txlen - c->txoff < TXQ_LOW && !ret) {
		size_t n = c->bulk_left < BULK_LEN ? (size_t)c->bulk_left : BULK_LEN;

		ret = send_data(c, n);
		c->bulk_left -= n;
		if (!ret && c->ku_every && ++c->bulk_records % (uint64_t)c->ku_every == 0) {
			ret = send_ku(c, 1);
			if (!ret)
				ret = tx_next(c);
		}
	}
	if (c->write_dead)
		c->bulk_left = 0;
	return ret;
}

/* ------------------------------------------------------------------ */
/* What the server sends                                               */
/* ------------------------------------------------------------------ */

static void on_data(struct conn *c, const uint8_t *p, size_t n)
{
	if (c->o->no_echo)
		return;
	if (c->want_server_ku && !c->server_kus && c->echoed + n > c->ku_mark) {
		c->ku_late = true;
		set_error(c, "the server sent data before its KeyUpdate");
	}
	for (size_t i = 0; i < n && c->echo_ok; i++) {
		uint64_t off = c->echoed + i;

		if (off >= c->sent || p[i] != pattern(off)) {
			c->echo_ok = false;
			set_error(c, "echo differs at byte %llu (%llu sent)",
				  (unsigned long long)off, (unsigned long long)c->sent);
		}
	}
	EVP_DigestUpdate(c->md_recv, p, n);
	c->echoed += n;
}

static void on_alert(struct conn *c, const uint8_t *p, size_t n)
{
	if (n != 2) {
		set_error(c, "alert record of %zu bytes", n);
		set_end(c, END_UNDECRYPTABLE);
		return;
	}
	if (p[1] == 0) {
		set_end(c, END_CLOSE_NOTIFY);
		return;
	}
	c->alert_level = p[0];
	c->alert = p[1];
	set_end(c, END_ALERT);
}

static void on_message(struct conn *c, uint8_t type, const uint8_t *body, size_t len)
{
	if (type == HS_NEW_SESSION_TICKET)
		return;
	if (type != HS_KEY_UPDATE) {
		set_error(c, "unexpected handshake message %u from the server", type);
		return;
	}
	if (len != 1 || body[0] > 1) {
		set_error(c, "malformed KeyUpdate from the server");
		return;
	}
	if (body[0] == 1)	/* not answered: the cases do not need it */
		set_error(c, "the server asked for a KeyUpdate");
	c->server_kus++;
}

/* Handshake content: messages may span records. */
static void on_handshake(struct conn *c, const uint8_t *p, size_t n)
{
	size_t off = 0;

	if (n > sizeof(c->hs) - c->hslen) {
		set_error(c, "server handshake message longer than %zu bytes", sizeof(c->hs));
		set_end(c, END_UNDECRYPTABLE);
		return;
	}
	memcpy(c->hs + c->hslen, p, n);
	c->hslen += n;
	while (c->hslen - off >= 4) {
		const uint8_t *m = c->hs + off;
		size_t mlen = (size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3];

		if (c->hslen - off - 4 < mlen)
			break;
		on_message(c, m[0], m + 4, mlen);
		off += 4 + mlen;
	}
	memmove(c->hs, c->hs + off, c->hslen - off);
	c->hslen -= off;
}

static void on_record(struct conn *c, uint8_t *rec, size_t len)
{
	unsigned kus = c->server_kus;
	uint8_t type;
	size_t plen;

	if (rec[0] == CT_ALERT) {	/* a plaintext alert */
		on_alert(c, rec + HDR_LEN, len);
		return;
	}
	if (rec[0] != CT_APPDATA) {
		set_error(c, "server record of outer type %u", rec[0]);
		set_end(c, END_UNDECRYPTABLE);
		return;
	}
	if (unseal(c, rec, len, &type, &plen)) {
		set_error(c, "server record %llu of key generation %llu did not decrypt",
			  (unsigned long long)c->rx.seq, (unsigned long long)c->rx.sec.gen);
		set_end(c, END_UNDECRYPTABLE);
		return;
	}
	if (type == CT_APPDATA) {
		on_data(c, rec + HDR_LEN, plen);
	} else if (type == CT_HANDSHAKE) {
		on_handshake(c, rec + HDR_LEN, plen);
	} else if (type == CT_ALERT) {
		on_alert(c, rec + HDR_LEN, plen);
	} else {
		set_error(c, "server record of content type %u", type);
		set_end(c, END_UNDECRYPTABLE);
	}
	/* a KeyUpdate ends its record: the next record is under the next key */
	for (; kus < c->server_kus && !c->end; kus++) {
		if (dir_next(&c->rx, c->kc, c->evp)) {
			set_error(c, "cannot derive the server's next key");
			set_end(c, END_ERROR);
		}
	}
}

static void do_read(struct conn *c)
{
	size_t off = 0;
	int one = 1;
	ssize_t n;

	n = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		if (errno != ECONNRESET && errno != EPIPE)
			set_error(c, "recv: %s", strerror(errno));
		set_end(c, END_RESET);
		return;
	}
	if (n == 0) {
		if (c->rlen)
			set_error(c, "%zu bytes of a partial record before the end", c->rlen);
		set_end(c, c->saw_reset ? END_RESET : END_EOF);
		return;
	}
	c->rlen += (size_t)n;
	/* ACK at once: a server without TCP_NODELAY (libssl writes each
	 * NewSessionTicket alone) would otherwise wait out our delayed ACK */
	setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	while (!c->end && c->rlen - off >= HDR_LEN) {
		uint8_t *rec = c->rbuf + off;
		size_t len = (size_t)rec[3] << 8 | rec[4];

		if (len > REC_WIRE_MAX) {
			set_error(c, "server record of %zu bytes", len);
			set_end(c, END_UNDECRYPTABLE);
			break;
		}
		if (c->rlen - off - HDR_LEN < len)
			break;
		on_record(c, rec, len);
		off += HDR_LEN + len;
	}
	memmove(c->rbuf, c->rbuf + off, c->rlen - off);
	c->rlen -= off;
}

/*
 * A failed write does not end the run: the server's alert may be waiting
 * in the receive queue, so reading goes on.
 */
static void do_write(struct conn *c)
{
	while (c->txoff < c->txlen) {
		ssize_t n = send(c->fd, c->txq + c->txoff, c->txlen - c->txoff, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR)
				continue;
			if (errno == EPIPE || errno == ECONNRESET)
				c->saw_reset = true;
			else
				set_error(c, "send: %s", strerror(errno));
			snprintf(c->write_error, sizeof(c->write_error), "%s",
				 errno == EPIPE ? "EPIPE" : errno == ECONNRESET ? "ECONNRESET" :
				 "other");
			c->write_dead = true;
			break;
		}
		c->txoff += (size_t)n;
	}
	c->txoff = c->txlen = 0;
}

/* ------------------------------------------------------------------ */
/* The event loop                                                      */
/* ------------------------------------------------------------------ */

enum goal {
	GOAL_FLUSH,	/* everything queued (and generated) is written */
	GOAL_UPLOAD,	/* the same, reading nothing meanwhile */
	GOAL_ECHO,	/* ... and all of it came back */
	GOAL_END,	/* the server ended the connection */
};

static bool goal_met(const struct conn *c, enum goal g)
{
	bool flushed = c->write_dead || (c->txoff == c->txlen && !c->bulk_left);

	if (g == GOAL_FLUSH || g == GOAL_UPLOAD)
		return flushed;
	if (g == GOAL_ECHO)
		return flushed && c->echoed >= c->sent && !c->write_dead;
	return false;
}

/* Read and write until the goal is met or the connection ended. */
static void pump(struct conn *c, enum goal g)
{
	while (!c->end) {
		struct pollfd p = { .fd = c->fd, .events = g == GOAL_UPLOAD ? 0 : POLLIN };
		int n;

		if (refill(c)) {
			set_error(c, "cannot seal a record");
			set_end(c, END_ERROR);
			break;
		}
		if (goal_met(c, g))
			break;
		if (c->txoff < c->txlen && !c->write_dead)
			p.events |= POLLOUT;
		n = poll(&p, 1, c->o->timeout * 1000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_error(c, "poll: %s", strerror(errno));
			set_end(c, END_ERROR);
			break;
		}
		if (n == 0) {
			set_error(c, "nothing happened for %d s", c->o->timeout);
			set_end(c, END_TIMEOUT);
			break;
		}
		if (g != GOAL_UPLOAD && (p.revents & (POLLIN | POLLHUP | POLLERR)))
			do_read(c);
		if (!c->end && (p.revents & (POLLOUT | POLLERR | (g == GOAL_UPLOAD ? POLLHUP : 0))) &&
		    c->txoff < c->txlen)
			do_write(c);
	}
}

static int pump_flush(struct conn *c)
{
	pump(c, GOAL_FLUSH);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Connection and handshake                                            */
/* ------------------------------------------------------------------ */

/* Hex after the client random, the whole of it or nothing. */
static size_t keylog_secret(const char *p, uint8_t *out)
{
	size_t n = 0;

	p = strchr(p, ' ');
	if (!p)
		return 0;
	for (p++; isxdigit((unsigned char)p[0]) && isxdigit((unsigned char)p[1]); p += 2) {
		char byte[3] = { p[0], p[1], 0 };

		if (n == KTLS_MAX_SECRET)
			return 0;
		out[n++] = (uint8_t)strtoul(byte, NULL, 16);
	}
	return *p && *p != '\n' ? 0 : n;
}

static void keylog_cb(const SSL *ssl, const char *line)
{
	static const char cts[] = "CLIENT_TRAFFIC_SECRET_0 ";
	static const char sts[] = "SERVER_TRAFFIC_SECRET_0 ";
	struct conn *c = SSL_get_app_data(ssl);

	if (!strncmp(line, cts, sizeof(cts) - 1))
		c->log_clen = keylog_secret(line + sizeof(cts) - 1, c->log_c);
	else if (!strncmp(line, sts, sizeof(sts) - 1))
		c->log_slen = keylog_secret(line + sizeof(sts) - 1, c->log_s);
}

static int connect_to(struct conn *c, const struct addrinfo *ai)
{
	struct timeval tv = { .tv_sec = c->o->timeout };
	int one = 1, sndbuf = 16384, err = ECONNREFUSED;

	for (; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			err = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* an upload: little room of our own, so the server must read it */
		if (c->o->trail)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			c->fd = fd;
			return 0;
		}
		err = errno;
		close(fd);
	}
	set_error(c, "connect: %s", strerror(err));
	return -err;
}

static void ssl_error(struct conn *c, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char buf[120];

	if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		set_error(c, "%s: %s", what, buf);
	} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
		set_error(c, "%s: no answer for %d s", what, c->o->timeout);
	} else {
		set_error(c, "%s: %s", what, errno ? strerror(errno) : "connection closed");
	}
	ERR_clear_error();
}

/*
 * libssl does the handshake and nothing else: it writes no application
 * data and, without read-ahead, reads no record past the server's
 * Finished, so both sequence numbers start at 0 here.
 */
static int handshake(struct conn *c, SSL_CTX *ctx)
{
	const SSL_CIPHER *ciph;
	const EVP_MD *md;
	const char *digest;
	SSL *ssl = SSL_new(ctx);
	int ret = -EPROTO;

	errno = 0;
	if (!ssl || !SSL_set_app_data(ssl, c) || !SSL_set_fd(ssl, c->fd) ||
	    SSL_connect(ssl) != 1) {
		ssl_error(c, "handshake");
		goto out;
	}
	ciph = SSL_get_current_cipher(ssl);
	c->kc = ciph ? cipher_by_suite(SSL_CIPHER_standard_name(ciph),
				       strlen(SSL_CIPHER_standard_name(ciph))) : NULL;
	md = ciph ? SSL_CIPHER_get_handshake_digest(ciph) : NULL;
	digest = md ? EVP_MD_get0_name(md) : NULL;
	if (!tool_supports(c->kc) || !digest) {
		set_error(c, "negotiated suite %s is not supported here",
			  ciph ? SSL_CIPHER_standard_name(ciph) : "(none)");
		goto out;
	}
	c->evp = evp_for(c->kc);
	if (!c->evp) {
		set_error(c, "cipher %s not available", c->kc->evp_name);
		goto out;
	}
	if (!c->log_clen || !c->log_slen) {
		set_error(c, "no traffic secrets from the key log");
		goto out;
	}
	ret = dir_init(&c->tx, c->log_c, c->log_clen, digest, 1, c->kc, c->evp);
	if (!ret)
		ret = dir_init(&c->rx, c->log_s, c->log_slen, digest, 0, c->kc, c->evp);
	if (ret)
		set_error(c, "cannot derive the traffic keys: %s", strerror(-ret));
out:
	OPENSSL_cleanse(c->log_c, sizeof(c->log_c));
	OPENSSL_cleanse(c->log_s, sizeof(c->log_s));
	SSL_free(ssl);		/* sends nothing */
	return ret;
}

/* ------------------------------------------------------------------ */
/* One run                                                             */
/* ------------------------------------------------------------------ */

static bool run_matched(const struct conn *c, int expected)
{
	bool clean = c->end == END_CLOSE_NOTIFY || c->end == END_EOF;
	bool all = c->echo_ok && c->echoed == c->sent && !c->write_dead;

	if (!c->echo_ok || c->end == END_ERROR)
		return false;
	if (expected == EXP_ANY)
		return c->end == END_ALERT || (clean && all);
	if (expected == EXP_NONE)
		return clean && all && !c->ku_late &&
		       (!c->want_server_ku || c->server_kus > 0);
	return c->end == END_ALERT && c->alert == expected;
}

static void print_run(const struct conn *c, long run, bool match)
{
	const struct tcase *tc = c->o->tc;

	printf("{\"case\":\"%s\",\"value\":", tc->name);
	if (tc->vdef < 0)
		printf("null");
	else
		printf("%ld", c->o->value);
	printf(",\"run\":%ld,\"expected\":", run);
	print_expected(tc->expected);
	if (c->alert < 0)
		printf(",\"alert\":null,\"alert_level\":null");
	else
		printf(",\"alert\":%d,\"alert_level\":%d", c->alert, c->alert_level);
	printf(",\"end\":\"%s\",\"match\":%s,\"sent\":%llu,\"echoed\":%llu,\"echo_ok\":%s,"
	       "\"server_keyupdates\":%u,\"client_keyupdates\":%u,\"cipher\":\"%s\","
	       "\"write_error\":\"%s\",\"error\":",
	       end_names[c->end], match ? "true" : "false", (unsigned long long)c->sent,
	       (unsigned long long)c->echoed, c->echo_ok ? "true" : "false", c->server_kus,
	       c->client_kus, c->kc ? c->kc->name : "", c->write_error);
	print_json_string(c->error);
	printf("}\n");
	fflush(stdout);
}

/* All echoed: the digests of both streams must agree too. */
static void check_digests(struct conn *c)
{
	unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	unsigned int la = 0, lb = 0;

	if (c->o->no_echo || c->echoed != c->sent)
		return;
	if (!EVP_DigestFinal_ex(c->md_sent, a, &la) || !EVP_DigestFinal_ex(c->md_recv, b, &lb) ||
	    la != lb || memcmp(a, b, la)) {
		c->echo_ok = false;
		set_error(c, "sha256 of the echo differs from what was sent");
	}
}

static void exchange(struct conn *c)
{
	const struct opts *o = c->o;
	static const uint8_t close_notify[] = { 1, 0 };

	if (send_data(c, DATA_LEN))
		goto fail;
	pump(c, o->no_echo ? GOAL_FLUSH : GOAL_ECHO);
	if (c->end)
		return;
	if (o->tc->craft(c, o->value))
		goto fail;
	for (int i = 0; i < 3 && !c->end; i++)
		if (send_data(c, DATA_LEN))
			goto fail;
	if (o->trail) {		/* the records go out first, then the upload */
		c->bulk_left = o->trail;
		pump(c, GOAL_UPLOAD);
	}
	if (o->no_echo) {
		pump(c, GOAL_END);
		return;
	}
	pump(c, GOAL_ECHO);
	if (c->end)
		return;
	if (seal(c, CT_ALERT, close_notify, sizeof(close_notify)))
		goto fail;
	pump(c, GOAL_FLUSH);
	if (!c->end)
		shutdown(c->fd, SHUT_WR);
	pump(c, GOAL_END);
	return;
fail:
	set_error(c, "cannot seal a record");
	set_end(c, END_ERROR);
}

static bool run_once(SSL_CTX *ctx, const struct addrinfo *ai, const struct opts *o, long run)
{
	struct conn *c = calloc(1, sizeof(*c));
	bool match;

	if (!c) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return false;
	}
	c->o = o;
	c->fd = -1;
	c->alert = c->alert_level = -1;
	c->echo_ok = true;
	c->md_sent = EVP_MD_CTX_new();
	c->md_recv = EVP_MD_CTX_new();
	if (!c->md_sent || !c->md_recv || !EVP_DigestInit_ex(c->md_sent, EVP_sha256(), NULL) ||
	    !EVP_DigestInit_ex(c->md_recv, EVP_sha256(), NULL)) {
		set_error(c, "cannot set up sha256");
		set_end(c, END_ERROR);
	} else if (connect_to(c, ai) || handshake(c, ctx)) {
		set_end(c, END_HANDSHAKE);
	} else if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0) {
		set_error(c, "O_NONBLOCK: %s", strerror(errno));
		set_end(c, END_ERROR);
	} else {
		exchange(c);
		check_digests(c);
	}
	match = run_matched(c, o->tc->expected);
	print_run(c, run, match);
	if (c->fd >= 0)
		close(c->fd);
	dir_free(&c->tx);
	dir_free(&c->rx);
	EVP_MD_CTX_free(c->md_sent);
	EVP_MD_CTX_free(c->md_recv);
	free(c->txq);
	free(c);
	return match;
}

static SSL_CTX *client_ctx(const struct opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, o->suites)) {
		ERR_print_errors_fp(stderr);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);	/* a test tool */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_keylog_callback(ctx, keylog_cb);
	return ctx;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see %s --help)\n", prog);
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "case", required_argument, NULL, 'c' },
		{ "value", required_argument, NULL, 'v' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "trail", required_argument, NULL, 'T' },
		{ "ciphersuites", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "no-echo", no_argument, NULL, 'n' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct opts o = { .repeat = 1, .bytes = 64ull << 20,
			  .suites = "TLS_AES_128_GCM_SHA256", .timeout = 10 };
	const char *value_arg = NULL;
	bool bytes_set = false;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	SSL_CTX *ctx;
	long failed = 0, t;
	int ch, r;

	while ((ch = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o.tc = case_by_name(optarg);
			if (!o.tc)
				return usage_error("--case %s: no such case (--list shows them)",
						   optarg);
			break;
		case 'v':
			value_arg = optarg;
			break;
		case 'r':
			if (parse_long(optarg, 1, 1000000, &o.repeat))
				return usage_error("--repeat %s: want 1..1000000", optarg);
			break;
		case 'b':
			if (parse_bytes(optarg, &o.bytes))
				return usage_error("--bytes %s: want a positive size (K/M/G)",
						   optarg);
			bytes_set = true;
			break;
		case 'T':
			if (parse_bytes(optarg, &o.trail))
				return usage_error("--trail %s: want a positive size (K/M/G)",
						   optarg);
			break;
		case 's':
			if (check_suites(optarg))
				return 2;
			o.suites = optarg;
			break;
		case 't':
			if (parse_long(optarg, 1, 3600, &t))
				return usage_error("--timeout %s: want 1..3600 seconds", optarg);
			o.timeout = (int)t;
			break;
		case 'n':
			o.no_echo = true;
			break;
		case 'l':
			list_cases();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o.tc)
		return usage_error("%s", "--case NAME is required");
	if (optind + 1 != argc || split_hostport(argv[optind], &o))
		return usage_error("%s", "want one HOST:PORT argument");
	if (value_arg && o.tc->vdef < 0)
		return usage_error("--value: case %s takes no value", o.tc->name);
	o.value = o.tc->vdef;
	if (value_arg && (parse_long(value_arg, o.tc->vmin, o.tc->vmax, &o.value) ||
			  (o.tc->craft == craft_badlength && o.value == 1))) {
		fprintf(stderr, "%s: --value %s: case %s takes %ld..%ld%s\n", prog, value_arg,
			o.tc->name, o.tc->vmin, o.tc->vmax,
			o.tc->craft == craft_badlength ? ", not 1" : "");
		return 2;
	}
	if (bytes_set && o.tc->craft != craft_ku_every)
		return usage_error("--bytes: only case ku-every sends bulk data (not %s)",
				   o.tc->name);
	/* an echo of the upload would fill both directions: no alert, no end */
	if (o.trail && o.tc->expected < 0)
		return usage_error("--trail: case %s is not answered with an alert", o.tc->name);
	if (o.no_echo && o.tc->expected == EXP_NONE)
		return usage_error("--no-echo: case %s needs an echo server", o.tc->name);

	signal(SIGPIPE, SIG_IGN);
	r = getaddrinfo(o.host, o.port, &hints, &ai);
	if (r) {
		fprintf(stderr, "%s: %s:%s: %s\n", prog, o.host, o.port, gai_strerror(r));
		return 1;
	}
	ctx = client_ctx(&o);
	if (!ctx) {
		freeaddrinfo(ai);
		return 1;
	}
	for (long run = 1; run <= o.repeat; run++)
		if (!run_once(ctx, ai, &o, run))
			failed++;
	SSL_CTX_free(ctx);
	freeaddrinfo(ai);
	for (size_t i = 0; i < KTLS_PROBE_MAX_CIPHERS; i++)
		EVP_CIPHER_free(evp_cache[i]);
	return failed ? 1 : 0;
}
