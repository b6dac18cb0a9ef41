/* SPDX-License-Identifier: MIT */
/*
 * ktls-bridge.h - hand OpenSSL 3 TLS records to Linux kernel TLS, safely.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure, unless its comment says otherwise.  Nothing here logs or returns
 * key material.
 */
#ifndef KTLS_BRIDGE_H
#define KTLS_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <openssl/ssl.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The release this header belongs to.  Each release's new functions get
 * a symbol-version node of their own (KTLS_BRIDGE_MAJOR.MINOR, see
 * libktls-bridge.map), so a program that uses them will not load with an
 * older library.
 *
 * How the structs grow without breaking programs built against an older
 * header (the ABI, from 0.3.0 on, soname libktls-bridge.so.2):
 *  - the library's own (ktls_cipher, ktls_caps): a program only reads them
 *    through the pointers the library returns; new fields go at the end;
 *  - a program's (ktls_policy, ktls_dir_status/ktls_status): they end in
 *    reserved words.  A new field takes reserved words, and its zero means
 *    what the release before did.  In a policy they must be zero (the
 *    functions that fill one clear them; a nonzero word is -EINVAL, so a
 *    program built for a newer release fails loudly on an older library);
 *    in a status the library writes them, zero until a release uses them;
 *  - ktls_keyblock and ktls_nic are fixed: the kernel's layout, and an
 *    array's element. */
#define KTLS_BRIDGE_VERSION_MAJOR 0
#define KTLS_BRIDGE_VERSION_MINOR 5
#define KTLS_BRIDGE_VERSION_STR "0.5.0"

/* The release of the library running, "MAJOR.MINOR.PATCH" (it may be newer
 * than the header a program was built with).  Never NULL. */
const char *ktls_version(void);

/* ------------------------------------------------------------------ */
/* Cipher descriptor table                                             */
/* ------------------------------------------------------------------ */

#define KTLS_TLS12 0x0303
#define KTLS_TLS13 0x0304

/* Bits of ktls_cipher.versions. */
#define KTLS_V12 0x1u
#define KTLS_V13 0x2u

#define KTLS_MAX_KEY   32
#define KTLS_MAX_IV    12
#define KTLS_MAX_SALT  4
#define KTLS_SEQ_SIZE  8
#define KTLS_MAX_INFO  64	/* >= every struct tls12_crypto_info_* */

/* One kernel TLS cipher.  The table is the only place that knows sizes. */
struct ktls_cipher {
	const char *name;	/* "AES-128-GCM": our name, also the policy name */
	const char *evp_name;	/* OpenSSL EVP_CIPHER name */
	const char *tls13_suite;/* IANA TLS 1.3 suite name, NULL if none */
	uint16_t kernel_id;	/* TLS_CIPHER_* */
	uint8_t key_size;
	uint8_t iv_size;	/* the kernel struct's iv[] */
	uint8_t salt_size;
	uint8_t seq_size;
	uint8_t tag_size;
	uint16_t info_size;	/* sizeof(struct tls12_crypto_info_*) */
	uint16_t off_iv, off_key, off_salt, off_seq;	/* offsets in that struct */
	unsigned versions;	/* KTLS_V12 | KTLS_V13 */
	bool hw_offloadable;	/* mainline NIC offload exists for it */
};

/* Number of table entries; entries are indexed 0 .. n-1. */
size_t ktls_cipher_count(void);
/* Entry i, or NULL when out of range. */
const struct ktls_cipher *ktls_cipher_at(size_t i);
/* Entry for a TLS_CIPHER_* id, or NULL. */
const struct ktls_cipher *ktls_cipher_by_id(uint16_t kernel_id);
/* Entry by our name or EVP name (case-insensitive), or NULL. */
const struct ktls_cipher *ktls_cipher_by_name(const char *name);
/* Index of an entry in the table (for bit masks). */
size_t ktls_cipher_index(const struct ktls_cipher *c);

/* ------------------------------------------------------------------ */
/* Generic keyblock: one direction's keys, cipher-agnostic             */
/* ------------------------------------------------------------------ */

struct ktls_keyblock {
	uint16_t version;	/* KTLS_TLS12 or KTLS_TLS13 */
	const struct ktls_cipher *cipher;
	uint8_t key[KTLS_MAX_KEY];
	uint8_t salt[KTLS_MAX_SALT];
	uint8_t iv[KTLS_MAX_IV];	/* kernel layout: explicit/per-record part */
	uint8_t seq[KTLS_SEQ_SIZE];	/* big-endian record sequence number */
};

/* Parse a kernel/libssl struct tls12_crypto_info_* of len bytes.
 * -EINVAL bad version/length, -ENOENT unknown cipher. */
int ktls_keyblock_from_info(struct ktls_keyblock *kb, const void *info, size_t len);
/* Write the kernel struct into buf (size cap); returns its length. */
int ktls_keyblock_to_info(const struct ktls_keyblock *kb, void *buf, size_t cap);
/* Build a TLS 1.3 keyblock from a traffic key and 12-byte IV, seq 0. */
int ktls_keyblock_from_tls13(struct ktls_keyblock *kb, const struct ktls_cipher *c,
			     const uint8_t *key, size_t key_len,
			     const uint8_t *iv, size_t iv_len);
/* Wipe a keyblock (OPENSSL_cleanse). */
void ktls_keyblock_wipe(struct ktls_keyblock *kb);

/* ------------------------------------------------------------------ */
/* Capability probe                                                    */
/* ------------------------------------------------------------------ */

#define KTLS_PROBE_MAX_CIPHERS 16
#define KTLS_PROBE_MAX_NICS    32

struct ktls_nic {
	char name[16];
	bool hw_tx;		/* tls-hw-tx-offload active */
	bool hw_rx;		/* tls-hw-rx-offload active */
	int err;		/* 0, or -errno when its features were unreadable */
};

/* Results: every *_err is 0 (supported) or a positive errno. */
struct ktls_caps {
	char kernel[65];	/* uname release */
	bool ulp;		/* "tls" ULP can be attached */
	int ulp_err;
	/* [cipher index][0 = TLS 1.2, 1 = TLS 1.3] */
	int tx_err[KTLS_PROBE_MAX_CIPHERS][2];
	int rx_err[KTLS_PROBE_MAX_CIPHERS][2];
	bool rekey;		/* TLS 1.3 TLS_TX can be set again */
	int rekey_err;
	bool prestage;		/* TLS_TX_NEXT (our kernel series) works */
	int prestage_err;
	bool zerocopy_tx;	/* TLS_TX_ZEROCOPY_RO accepted */
	int zerocopy_err;
	bool rx_no_pad;		/* TLS_RX_EXPECT_NO_PAD accepted */
	int rx_no_pad_err;
	size_t n_nics;
	struct ktls_nic nics[KTLS_PROBE_MAX_NICS];
	uint64_t probe_ns;	/* wall time of the probe that made this */
};

/* Cached, thread-safe probe.  Never NULL. */
const struct ktls_caps *ktls_probe(void);
/* Probe again now and replace the cache. */
const struct ktls_caps *ktls_probe_refresh(void);
/* Convenience: does the kernel take cipher c, version v, in this direction? */
bool ktls_caps_supports(const struct ktls_caps *caps, const struct ktls_cipher *c,
			uint16_t version, bool tx);

/* ------------------------------------------------------------------ */
/* Policy                                                              */
/* ------------------------------------------------------------------ */

enum ktls_tls13_mode {
	KTLS_TLS13_AUTO = 0,	/* offload only if the kernel can re-key */
	KTLS_TLS13_ALWAYS,	/* offload; a KeyUpdate without re-key ends it */
	KTLS_TLS13_NEVER,
};

struct ktls_policy {
	bool offload;		/* master switch; default true */
	bool tx;		/* default true */
	bool rx;		/* default true */
	uint32_t ciphers;	/* bit i = ktls_cipher_at(i) allowed; default all */
	enum ktls_tls13_mode tls13;	/* default auto */
	bool prestage;		/* use TLS_*_NEXT when probed; default true */
	uint64_t keyupdate_records;	/* proactive KeyUpdate after N records; 0 = only at the AEAD limit */
	uint32_t storm_limit;	/* peer KeyUpdates per second tolerated; default 1000,
				 * 0 = no limit (the provider takes 1 and up) */
	bool zerocopy_sendfile;	/* TLS_TX_ZEROCOPY_RO; default false */
	bool rx_expect_no_pad;	/* TLS_RX_EXPECT_NO_PAD; default false */
	uint32_t keyupdate_burst;	/* peer KeyUpdates in a row with no application
					 * data between; default 32, 0 = no limit */
	uint64_t reserved[6];		/* zero (see the top of this header) */
};

/* Built-in defaults (reserved words zero). */
void ktls_policy_default(struct ktls_policy *p);
/* Policy of the "ktls" provider if it is loaded in libctx (NULL = default
 * context), else the defaults.  Returns 1 when it came from the provider,
 * 0 for defaults, -errno on a malformed provider answer. */
int ktls_policy_load(OSSL_LIB_CTX *libctx, struct ktls_policy *p);

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

enum ktls_mode {
	KTLS_MODE_USERSPACE = 0,
	KTLS_MODE_KERNEL_SW,
	KTLS_MODE_KERNEL_HW,
};

/* Why a direction is (still) in userspace. */
enum ktls_reason {
	KTLS_R_NONE = 0,		/* offloaded */
	KTLS_R_NOT_OFFERED,		/* libssl never offered keys (yet) */
	KTLS_R_POLICY_OFF,		/* policy: offload = off */
	KTLS_R_POLICY_DIRECTION,	/* policy: tx/rx = off */
	KTLS_R_POLICY_CIPHER,		/* policy: cipher not allowed */
	KTLS_R_TLS13_NO_REKEY,		/* tls13=auto and kernel cannot re-key */
	KTLS_R_TLS13_NEVER,		/* policy: tls13 = never */
	KTLS_R_ULP_UNAVAILABLE,		/* TCP_ULP "tls" refused */
	KTLS_R_CIPHER_UNSUPPORTED,	/* probe: kernel lacks cipher/version */
	KTLS_R_KERNEL_REFUSED,		/* setsockopt TLS_TX/TLS_RX failed */
	KTLS_R_BAD_KEYS,		/* libssl's key struct did not parse */
	KTLS_R_REKEY_FAILED,		/* a KeyUpdate could not be installed: connection ended */
	KTLS_R_PEER_CLOSED,		/* close_notify/alert ended it */
	KTLS_R_KEYUPDATE_STORM,		/* peer KeyUpdates over storm_limit: ended */
	KTLS_R_KEY_MISMATCH,		/* libssl re-offered a key off our chain: ended */
	KTLS_R_PROTOCOL,		/* hand-off: the peer broke the protocol: ended */
	KTLS_R__COUNT
};

/* Fixed human text for a reason ("kernel cannot re-key TLS 1.3", ...). */
const char *ktls_reason_str(enum ktls_reason r);
/* Stable short name of a reason ("tls13-no-rekey", ...), for JSON. */
const char *ktls_reason_code(enum ktls_reason r);
/* "userspace", "kernel-sw", "kernel-hw". */
const char *ktls_mode_str(enum ktls_mode m);

struct ktls_dir_status {
	enum ktls_mode mode;
	enum ktls_reason reason;	/* KTLS_R_NONE when offloaded */
	int err;			/* errno behind the reason, or 0 */
	char detail[96];		/* e.g. "TLS_TX: ENOENT" */
	uint16_t version;		/* 0 until keys were offered */
	const struct ktls_cipher *cipher;	/* NULL until keys were offered */
	uint64_t records;		/* records this direction moved */
	uint64_t bytes;			/* plaintext bytes if kernel, wire bytes if userspace */
	uint64_t rekeys;		/* key updates installed in the kernel */
	uint64_t keyupdates;		/* KeyUpdate messages seen in this direction */
	uint64_t staged_switches;	/* rekeys the kernel made itself, to a key
					 * staged with TLS_TX_NEXT/TLS_RX_NEXT */
	uint64_t key_calls;		/* setsockopt/getsockopt calls for re-keys,
					 * staging and record counts after install */
	uint64_t key_expired;		/* RX: reads the kernel answered EKEYEXPIRED */
	uint64_t early_pauses;		/* RX: pauses with no KeyUpdate complete (a
					 * record began with a KeyUpdate's type
					 * byte): the key in use was set again */
	uint64_t rekeys_ahead;		/* RX: next keys set right after a KeyUpdate
					 * that ended in a record not beginning
					 * with one, before the next read */
	uint64_t reserved[4];		/* written zero, for later releases */
};

struct ktls_status {
	struct ktls_dir_status tx, rx;
};

/* Prepare ctx: sets SSL_OP_ENABLE_KTLS and installs a key-log callback
 * that records TLS 1.3 secrets for the bridge and then calls the
 * callback the application had set (call this after setting yours). */
int ktls_ctx_setup(SSL_CTX *ctx);

/* Attach a bridge BIO on connected TCP socket fd to ssl (as SSL_set_fd
 * would).  Policy is *policy when not NULL (-EINVAL if its tls13 is not
 * one of the enum's modes or a reserved word is not zero), else
 * ktls_policy_load() on the default library context (OpenSSL 3.0 cannot
 * name an SSL_CTX's own).
 * -EBADF closed fd, -ENOTSOCK, -EPROTOTYPE not TCP, -ENOTCONN, -EINVAL NULL,
 * -EEXIST ssl has a delegation (ktls_conn_delegate). */
int ktls_conn_attach(SSL *ssl, int fd, const struct ktls_policy *policy);

/* Per-connection status; -EINVAL if ssl has no bridge. */
int ktls_conn_status(SSL *ssl, struct ktls_status *st);

/* Ask the kernel (sock_diag, as `ss -ti` does) how it handles each
 * direction of ssl's socket: *tx / *rx get "none", "base", "sw", "hw" or
 * "hw-record".  -ENOENT when the socket has no tls ULP. */
int ktls_conn_diag(SSL *ssl, const char **tx, const char **rx);

/* Status as one line of JSON into buf (NUL-terminated); returns length
 * or -ENOSPC. */
int ktls_status_json(const struct ktls_status *st, char *buf, size_t cap);

/* ------------------------------------------------------------------ */
/* Hand-off mode: the application owns the socket                      */
/* ------------------------------------------------------------------ */

/* After the handshake, give the kernel both directions (the TLS 1.3
 * receive key too, which OpenSSL 3.0 never offers).  Then use the fd for
 * data, or ktls_conn_recv/ktls_conn_send, and no more SSL_read/SSL_write.
 * On failure nothing changed and the SSL keeps working in userspace:
 * -EINPROGRESS handshake not finished, -EAGAIN libssl holds unread data,
 * -EBUSY records were read under the TLS 1.3 application key already,
 * -EOPNOTSUPP a direction stays in userspace (its status says why),
 * -ENOKEY no key-log secret (ktls_ctx_setup not used), other -errno from
 * the kernel. */
int ktls_conn_handoff(SSL *ssl);
/* Application data into buf; control records are run on the way (see
 * ktls_conn_control).  0 at close_notify, -errno on error (-EAGAIN on a
 * non-blocking socket). */
ssize_t ktls_conn_recv(SSL *ssl, void *buf, size_t len);
/* send() through the kernel, after a KeyUpdate of our own when the
 * policy's keyupdate_records limit is reached.  Returns bytes or -errno. */
ssize_t ktls_conn_send(SSL *ssl, const void *buf, size_t len);
/* One record as the kernel delivered it: its plaintext into buf and its
 * type (23 application data, 22 handshake, 21 alert) into *type.  Answers
 * EKEYEXPIRED itself (installing the next receive key); the KeyUpdate
 * record it then returns still goes to ktls_conn_control, like any record
 * that is not application data.  Returns bytes, 0 at EOF, or -errno. */
ssize_t ktls_conn_recv_record(SSL *ssl, void *buf, size_t len, int *type);
/* A record that was not application data, as read by the application
 * with recvmsg (type from the TLS_GET_RECORD_TYPE cmsg): KeyUpdate,
 * NewSessionTicket, alerts.  0 go on, 1 the peer sent close_notify (ours
 * was sent), -errno the connection ended (alert sent when it was ours). */
int ktls_conn_control(SSL *ssl, int type, const void *rec, size_t len);
/* What the application's own read of the socket returned (recvmsg,
 * io_uring): res bytes of a record of type (from TLS_GET_RECORD_TYPE; 23
 * without it) in rec, 0 at EOF, or -errno; call it before the next read.
 * Records are checked and counted, control records run as by
 * ktls_conn_control, EKEYEXPIRED answered by installing the next key,
 * the kernel's other errors answered with their alert.  0 go on (use the
 * data when type is 23 and res > 0, else read again), 1 the stream ended
 * (close_notify answered, or EOF), -errno the connection ended. */
int ktls_conn_received(SSL *ssl, ssize_t res, int type, const void *rec);
/* Send a TLS 1.3 KeyUpdate (requested: ask the peer to update too) and
 * move the kernel's TX key on. */
int ktls_conn_keyupdate(SSL *ssl, int requested);
/* Send close_notify through the kernel and shut the socket for writing. */
int ktls_conn_shutdown(SSL *ssl);

/* Control records the application sends itself (an event loop that owns
 * every write, e.g. io_uring SENDMSG with a TLS_SET_RECORD_TYPE cmsg).
 * After ktls_conn_set_owed(ssl, 1) the bridge writes no record on the
 * socket: KeyUpdates (replies, its own, ktls_conn_keyupdate), alerts and
 * close_notify are queued instead, and the calls that queued them return
 * as if sent.  Hand-off mode only; -EBUSY turning it off with records
 * still owed.  The rules of order are in ktls_conn_owed(3). */
int ktls_conn_set_owed(SSL *ssl, int on);
/* The largest record ktls_conn_owed returns. */
#define KTLS_OWED_MAX 16
/* The next record owed to the peer: its plaintext into buf (cap bytes,
 * KTLS_OWED_MAX is always enough) and its type (21 alert, 22 handshake)
 * into *type.  Returns its length, 0 when nothing is owed, -EBUSY when
 * the record returned before was not reported yet, -ENOSPC cap too
 * small.  Send it as one record of that type, then report the result. */
ssize_t ktls_conn_owed(SSL *ssl, void *buf, size_t cap, int *type);
/* The result of the send of the record ktls_conn_owed returned (bytes, or
 * -errno as the send or io_uring gave it).  Moves the kernel's transmit
 * key after a KeyUpdate, shuts the write side after close_notify or a
 * fatal alert.  0 go on (a retryable error: the same record is owed
 * again), 1 that was the connection's last record, -errno the send failed
 * and the connection ended. */
int ktls_conn_owed_sent(SSL *ssl, ssize_t res);

/* After the bridge ended ssl's connection with a fatal alert on a
 * non-blocking socket (where it never waits), wait before close() until
 * the peer has closed too, so that close() cannot reset the connection
 * before the peer read the alert: read and drop what it still sends, for
 * at most timeout_ms (negative: the bridge's own 2000).  1 the peer
 * closed, 0 the time ran out, -ENOTCONN no fatal alert was sent (nothing
 * to wait for), -EINVAL ssl has no bridge.  Either mode. */
int ktls_conn_linger(SSL *ssl, int timeout_ms);

/* ------------------------------------------------------------------ */
/* Delegation: a program that reads and writes through its own BIO     */
/* ------------------------------------------------------------------ */

/* Give ssl a bridge without changing its BIO: the program's BIO lets the
 * bridge answer libssl's kTLS ctrls and carry what goes through the kernel
 * (the calls below), and keeps carrying, through its own transport, any
 * direction that stays in userspace.  fd is the connected TCP socket
 * under that BIO; policy as for ktls_conn_attach.  Status, diag, linger
 * and hand-off work on ssl as after ktls_conn_attach.  The bridge lives
 * until SSL_free(ssl).  -EEXIST ssl has a bridge already; fd errors as for
 * ktls_conn_attach. */
int ktls_conn_delegate(SSL *ssl, int fd, const struct ktls_policy *policy);
/* From the BIO's ctrl callback, before its own ctrls: 1 when cmd is one of
 * libssl's kTLS ctrls (72-76, 90), answered in *ret (the callback returns
 * it); 0 when cmd is the program's own. */
int ktls_delegate_ctrl(SSL *ssl, int cmd, long larg, void *ptr, long *ret);
/* From the BIO's write callback, first: 1 when the kernel has the
 * transmit direction (or the bridge ended the connection) and the bridge
 * wrote to fd: *done is the bytes taken or -errno (-EAGAIN: set the BIO's
 * retry flag and wait for fd to be writable); 0 when transmit is in
 * userspace: write through your transport. */
int ktls_delegate_write(SSL *ssl, const void *buf, size_t len, ssize_t *done);
/* From the BIO's read callback, first: as ktls_delegate_write, for
 * receive; *done is bytes (records as libssl reads them), 0 at the end of
 * the stream, or -errno.  Once libssl gave receive to the kernel, bytes
 * that the program's transport read ahead are lost: do not read ahead. */
int ktls_delegate_read(SSL *ssl, void *buf, size_t len, ssize_t *done);
/* Optional: the wire bytes the program carried itself for a direction in
 * userspace (tx nonzero: written), so that the status counts its records
 * and bytes.  -EBUSY when that direction is the kernel's. */
int ktls_delegate_wire(SSL *ssl, int tx, const void *buf, size_t n);

/* The bridge BIO method (BIO_TYPE_DESCRIPTOR | source/sink). */
const BIO_METHOD *ktls_bio_method(void);
/* A bridge BIO on fd (not closed by BIO_free unless close_flag); policy
 * NULL means the built-in defaults.  No checks on fd: see ktls_conn_attach.
 * NULL also for a policy that ktls_conn_attach refuses (-EINVAL). */
BIO *ktls_bio_new(int fd, int close_flag, const struct ktls_policy *policy);

#ifdef __cplusplus
}
#endif
#endif /* KTLS_BRIDGE_H */
