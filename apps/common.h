/* SPDX-License-Identifier: MIT */
/* common.h - shared by the apps. */
#ifndef KTLS_APPS_COMMON_H
#define KTLS_APPS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "ktls-bridge.h"

/* Load openssl.cnf ($OPENSSL_CONF, else OpenSSL's default file; a missing
 * file is fine) with errors not ignored, and keep libssl from loading it a
 * second time, quietly.  Call it in main before any other OpenSSL call,
 * after the options (--help and usage errors do not depend on the file).
 * 0, or -1 when a module fails or a provider the file activates is not
 * active (the file and the reasons printed). */
int app_load_config(const char *prog);
/* --version: PROG, the project's and libssl's versions, on stdout. */
void app_print_version(const char *prog);

/* Options both tools share. */
struct app_opts {
	int tls_version;		/* 0 any, else TLS1_2_VERSION / TLS1_3_VERSION */
	const char *ciphers;		/* TLS 1.2 cipher list */
	const char *ciphersuites;	/* TLS 1.3 suites */
	const char *tls13_policy;	/* override: auto|always|never */
	bool no_offload;		/* override: offload = off */
	bool own_bio;			/* delegate from a BIO of our own (ownbio.c) */
	bool no_prestage;		/* override: prestage = off (ktls-serve --multishot) */
	bool have_policy_override;
	struct ktls_policy policy;
};

/* Parse a shared option (getopt_long code); returns 1 if consumed, 0 if
 * not ours, -1 on a bad value (message printed). */
int app_opt(struct app_opts *o, int code, const char *arg, const char *prog);
/* getopt_long entries for the shared options (terminated by the caller's). */
#define APP_OPT_TLS12 1001
#define APP_OPT_TLS13 1002
#define APP_OPT_CIPHERS 1003
#define APP_OPT_SUITES 1004
#define APP_OPT_TLS13_POLICY 1005
#define APP_OPT_NO_OFFLOAD 1006
#define APP_OPT_OWN_BIO 1007
#define APP_LONG_OPTS                                                       \
	{ "tls1_2", no_argument, NULL, APP_OPT_TLS12 },                    \
	{ "tls1_3", no_argument, NULL, APP_OPT_TLS13 },                    \
	{ "cipher", required_argument, NULL, APP_OPT_CIPHERS },            \
	{ "ciphersuites", required_argument, NULL, APP_OPT_SUITES },       \
	{ "tls13-offload", required_argument, NULL, APP_OPT_TLS13_POLICY }, \
	{ "no-offload", no_argument, NULL, APP_OPT_NO_OFFLOAD },           \
	{ "own-bio", no_argument, NULL, APP_OPT_OWN_BIO }
#define APP_OPTS_HELP                                                            \
	"  --tls1_2 | --tls1_3       only this TLS version\n"                     \
	"  --cipher LIST             TLS 1.2 cipher list (OpenSSL syntax)\n"      \
	"  --ciphersuites LIST       TLS 1.3 cipher suites\n"                     \
	"  --tls13-offload MODE      override policy tls13: auto|always|never\n" \
	"  --no-offload              override policy: keep records in userspace\n" \
	"  --own-bio                 read and write through a BIO of our own and\n" \
	"                            delegate kernel TLS to the bridge from it\n"

/* Configure versions/ciphers and ktls_ctx_setup(); prints errors. */
int app_ctx_setup(SSL_CTX *ctx, const struct app_opts *o, const char *prog);
/* ownbio.c: ssl reads and writes fd through a BIO of the app's own (not
 * yet delegated); 0 or -ENOMEM. */
int app_own_bio(SSL *ssl, int fd);
/* Attach the bridge with the effective policy (--own-bio: delegate). */
int app_attach(SSL *ssl, int fd, const struct app_opts *o, const char *prog);

/* One human line per direction. */
void app_print_status(FILE *f, const char *who, SSL *ssl);
/* JSON status object text (a buffer of the calling thread, valid until
 * its next call). */
const char *app_status_json(SSL *ssl);

/* What sock_diag says of the socket: {"tx":"sw","rx":"sw"} or null. */
const char *app_diag_json(SSL *ssl);
/* The kernel's own answer (getsockopt SOL_TLS) for the options the policy
 * can set on fd: {"rx_expect_no_pad":B,"tx_zerocopy_ro":B}, B true, false
 * or null where the kernel has no such setting for this socket. */
const char *app_kernel_opts_json(int fd);

/* Deterministic payload: byte i of the stream. Fill buf from offset off. */
void app_fill(uint8_t *buf, size_t len, uint64_t off);
/* The same pattern as printable lines: 63 letters and a newline each. */
void app_fill_text(uint8_t *buf, size_t len, uint64_t off);

/* Hex sha256 of an EVP_MD_CTX so far (finalises a copy). */
void app_sha256_hex(EVP_MD_CTX *md, char out[65]);

/* "64M"-style sizes (k, M, G suffixes); 0, or -1 when not a size > 0. */
int app_parse_size(const char *s, uint64_t *out);
/* A comma list of names out of names[0..n-1] into want[]; -1 (message
 * printed, naming opt) on an unknown one. */
int app_parse_list(const char *arg, const char *const *names, size_t n, bool *want,
		   const char *prog, const char *opt);

/* A P-256 key and a self-signed certificate for it, valid an hour
 * (benchmarks); 0 or -1. */
int app_selfsigned(EVP_PKEY **pkey, X509 **cert);

/* ktls-serve's answer to the HTTP/1.1 request head in req (NUL-terminated;
 * changed): a GET of a regular file below root.  Fills head (headlen
 * bytes) with the response head and returns the file, open, its size in
 * *size; or -1 with the error's text in *err ("bad request", "forbidden",
 * "not found") and the whole error response (head and body) in head.
 * keep: a 200 says "Connection: keep-alive" (an error always closes). */
int app_http_answer(const char *root, char *req, bool keep, char *head, size_t headlen,
		    off_t *size, const char **err);
/* Does the request head ask to keep the connection open after the answer?
 * HTTP/1.1 does unless "Connection: close"; HTTP/1.0 only with
 * "Connection: keep-alive". */
bool app_http_keep_alive(const char *req);
/* Print OpenSSL's error queue with a prefix. */
void app_ssl_errors(const char *prog, const char *what);

#endif
