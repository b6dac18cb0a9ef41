/* SPDX-License-Identifier: MIT */
/* internal.h - shared by the bridge's own files; not installed. */
#ifndef KTLS_INTERNAL_H
#define KTLS_INTERNAL_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "ktls-bridge.h"
#include "ktls-uapi.h"


/* TLS record layer constants */
#define KTLS_REC_HDR 5
#define KTLS_REC_MAX 16384
#define KTLS_CT_CCS 20
#define KTLS_CT_ALERT 21
#define KTLS_CT_HANDSHAKE 22
#define KTLS_CT_APPDATA 23
#define KTLS_HS_KEY_UPDATE 24

bool ktls_cipher_allows(const struct ktls_cipher *c, uint16_t version);

/* What the bridge needs before a hand-off (ULP, TLS 1.3 re-key and
 * pre-stage), cached like ktls_probe(); per-cipher entries may read EAGAIN
 * (not probed).  Returns the full result when one exists. */
const struct ktls_caps *ktls_probe_basic(void);

/*
 * Syscall seam.  Everything that talks SOL_TLS goes through ktls_sys so
 * that tests can make a particular call fail or pretend the kernel took
 * the keys (fault injection).  Production code never changes it.
 */
struct ktls_sys_ops {
	int (*setsockopt)(int fd, int level, int name, const void *val, socklen_t len);
	int (*getsockopt)(int fd, int level, int name, void *val, socklen_t *len);
	ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
	ssize_t (*recvmsg)(int fd, struct msghdr *msg, int flags);
};
extern const struct ktls_sys_ops *ktls_sys;
/* Replace the seam (NULL restores the real syscalls). Tests only. */
void ktls_sys_set(const struct ktls_sys_ops *ops);

/* "ENOENT" for ENOENT; "E<n>" when unknown. */
const char *ktls_errno_name(int err);

/* TLS alert descriptions the bridge sends or checks (RFC 8446 6). */
enum {
	ALERT_CLOSE_NOTIFY = 0,
	ALERT_UNEXPECTED_MESSAGE = 10,
	ALERT_BAD_RECORD_MAC = 20,
	ALERT_RECORD_OVERFLOW = 22,
	ALERT_ILLEGAL_PARAMETER = 47,
	ALERT_DECODE_ERROR = 50,
	ALERT_PROTOCOL_VERSION = 70,
	ALERT_INTERNAL_ERROR = 80,
};
#define ALERT_LEVEL_WARNING 1
#define ALERT_LEVEL_FATAL 2

/* alert.c: the alert a kernel receive error calls for (desc 0: none,
 * the transport is gone).  Never NULL. */
struct ktls_rx_alert {
	int err;
	uint8_t desc;
	const char *why;
};
const struct ktls_rx_alert *ktls_rx_alert_for(int err);

/* ending.c: bounds of the lingering close after a fatal alert */
#define KTLS_LINGER_MS 2000
#define KTLS_LINGER_BYTES (4u << 20)
/* The time bound in use: KTLS_LINGER_MS; unit tests whose peers never
 * close lower it, like the syscall seam.  Production code never changes it. */
extern int ktls_linger_ms;

/* A control-message buffer for one record-type byte, aligned for cmsghdr. */
union ktls_cmsg_buf {
	char b[CMSG_SPACE(sizeof(unsigned char))];
	struct cmsghdr align;
};

/* errno values after which the same call may succeed later. */
static inline bool ktls_retryable(int e)
{
	return e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == EINPROGRESS;
}

/* Debug tracing to stderr when KTLS_DEBUG is set; never pass key material. */
void ktls_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Install one direction's keys on fd: attaches the ULP if needed, then
 * TLS_TX/TLS_RX.  Wipes its own copy of the key struct. */
int ktls_install(int fd, bool *ulp_attached, const struct ktls_keyblock *kb, bool tx);
/* Same as ktls_install on an already-attached socket, for a re-key or
 * (opt = TLS_TX_NEXT/TLS_RX_NEXT) a pre-stage. */
int ktls_install_opt(int fd, int opt, const struct ktls_keyblock *kb);

/* sock_diag: TLS_CONF_* of each direction of fd (0 when not set). */
int ktls_diag_conf(int fd, int *txconf, int *rxconf);
/* diag.c: the kernel's answer of len bytes (netlink messages) read for
 * ktls_diag_conf; the same returns, -EBADMSG for a message cut short. */
int ktls_diag_parse(const void *buf, size_t len, int *txconf, int *rxconf);

/* probe.c: a NIC's TLS offload from ethtool's answers.  names: n feature
 * names of ETH_GSTRING_LEN bytes each as allocated, of which the kernel
 * says it filled names_len (not always NUL-terminated); active: the
 * feature blocks' active words, nwords of them as allocated.  Reads
 * nothing past what was allocated whatever the kernel's counts say. */
void ktls_nic_features(struct ktls_nic *nic, const char *names, uint32_t n,
		       uint32_t names_len, const uint32_t *active, uint32_t nwords);

/* record.c: walk the handshake messages in a record body; returns the number of
 * KeyUpdate messages found and stores the last one's request flag in
 * *requested (may be NULL). -EBADMSG when malformed/truncated. */
int ktls_hs_count_keyupdates(const uint8_t *p, size_t len, int *requested);

/* conn.c: the parsing half of the key-log callback, apart from the SSL so
 * that test/fuzz can reach it.  "CLIENT_TRAFFIC_SECRET_0 <random> <hex>"
 * or SERVER_...: *client says which; the secret's bytes (at most cap) go
 * to secret.  Their number, -ENOENT for any other label, -EBADMSG when
 * the hex does not run to the end of the line (an optional '\n'). */
int ktls_keylog_parse(const char *line, bool *client, uint8_t *secret, size_t cap);

#include "../rekey/rekey.h"

/* keyblock.c: a secret chain generation as a keyblock for cipher c (key,
 * iv, seq 0); the next generation's without advancing sec. */
int ktls_secret_keyblock(const struct ktls_secret *sec, const struct ktls_cipher *c,
			 struct ktls_keyblock *kb);
int ktls_secret_peek_next(const struct ktls_secret *sec, const struct ktls_cipher *c,
			  struct ktls_keyblock *kb);

/* Receive: where we are in the stream of handshake messages, which the
 * peer may split across records anywhere. */
struct ktls_hs_walk {
	uint8_t hdr[4];
	uint8_t have;		/* header bytes so far */
	uint32_t left;		/* body bytes still to come */
	int body0;		/* first body byte, -1 before it */
};

/* What the handshake messages completed in one record were. */
struct ktls_hs_seen {
	int keyupdates;		/* KeyUpdates */
	int requested;		/* one had update_requested */
	int tickets;		/* NewSessionTickets */
	int others;		/* messages of any other type */
	int alert;		/* a TLS alert the record calls for, else 0 */
	const char *why;	/* ... and why */
};

/* One direction of a bridged connection. */
struct ktls_dir {
	struct ktls_dir_status st;
	/* userspace accounting: where we are in the record stream */
	size_t rec_left;
	uint8_t hdr[KTLS_REC_HDR];
	size_t hdr_have;
	struct ktls_secret secret;	/* TLS 1.3: generation the kernel holds */
	/* TX: the generation libssl believes in, once the bridge sent
	 * KeyUpdates of its own (libssl 3.2+ offers keys again on its own
	 * KeyUpdates, counted from there) */
	struct ktls_secret lib;
	bool lib_behind;
	bool staged;		/* generation secret.gen + 1 is staged (TLS_*_NEXT) */
	uint64_t since_ku;	/* records since the last re-key (estimate) */
	/* TX: SSL_sendfile() accounting, at BIO flushes (ktls_tx_flush) */
	unsigned int flushes;	/* flushes since the kernel's counter was read */
	unsigned int flush_next;	/* read it again at this many */
	uint64_t flush_seq;	/* the counter at that reading */
	uint64_t flush_rate;	/* most records seen per flush between readings */
	bool flush_based;	/* flush_seq is set: a reading can give a rate */
	bool no_proactive;	/* TX: the record limit passed, the kernel cannot re-key */
	bool decided;		/* keys were offered once: kernel or userspace for good */
	bool restage_due;	/* RX: stage the next key once data flows again */
	uint8_t last_type;	/* RX: type of the last record read */
	struct ktls_hs_walk walk;	/* RX: handshake messages across records */
	uint64_t storm_start;	/* RX: start of the KeyUpdate rate window (ns) */
	uint32_t storm_count;	/* RX: peer KeyUpdates in that window */
	uint32_t ku_run;	/* RX: peer KeyUpdates since the last data record */
	uint32_t ku_unkeyed;	/* RX: KeyUpdates seen that the kernel's key has
				 * not followed yet (it pauses for each) */
	uint32_t ku_ahead;	/* RX: keys installed for KeyUpdates not walked yet */
	bool early_pause_due;	/* RX: the last handshake record walked began
				 * with a KeyUpdate's type byte (24) but held
				 * no whole KeyUpdate: mainline pauses anyway */
	bool ahead_unreported;	/* RX: a key went in ahead of the kernel's
				 * pause, and a read issued before (one
				 * that runs ahead, e.g. multishot) may
				 * still report that pause */
	bool hs_unwalked;	/* RX: a handshake record went to the application
				 * (hand-off) before ktls_conn_control walked it */
};

/* Hand-off with ktls_conn_set_owed: a control record for the application
 * to send (record.c queues it, handoff.c hands it out). */
#define KTLS_OWED_SLOTS 4
struct ktls_owed {
	uint8_t type;
	uint8_t len;
	uint8_t rec[KTLS_OWED_MAX];
};

enum ktls_linger_end {
	KTLS_LINGER_NONE = 0,
	KTLS_LINGER_PEER_FIN,	/* the peer closed: nothing left unread */
	KTLS_LINGER_ACKED,	/* the peer's TCP has everything we sent */
	KTLS_LINGER_TIMEOUT,	/* a bound was reached (or a non-blocking socket) */
};

struct ktls_conn {
	int fd;
	int close_flag;
	bool ulp;		/* TCP_ULP "tls" attached */
	bool eof;
	bool dead;		/* a failed re-key ended the connection */
	int ctrl_type;		/* record type of the next write (ctrl 74), 0 none */
	size_t ctrl_sent;	/* bytes of that record the kernel took so far */
	int ctrl_nku;		/* KeyUpdates in that record */
	bool ctrl_parsed;	/* its messages were all whole: ctrl_nku is exact */
	struct ktls_policy policy;
	struct ktls_dir tx, rx;
	/* receive: the rest of a kernel record libssl has not taken yet */
	uint8_t *rbuf;
	size_t rlen, roff;
	SSL *ssl;		/* set by ktls_conn_attach */
	bool hs_done;		/* the first handshake finished (info callback) */
	uint64_t rx_app_base;	/* RX records read when it finished */
	bool handoff;		/* the application owns the data path now */
	bool closed;		/* close_notify sent */
	bool ku_owed;		/* hand-off: the reply to update_requested waits for room */
	uint64_t tickets;	/* NewSessionTickets consumed after a hand-off */
	bool owe;		/* ktls_conn_set_owed: records are queued, not sent */
	bool owed_out;		/* owed[0] was handed out: its result is due */
	unsigned int owed_n;	/* records queued, oldest first */
	struct ktls_owed owed[KTLS_OWED_SLOTS];
	int ctrl_level;		/* first byte of the control record being written */
	int rx_kerr;		/* the kernel's receive path failed with this errno */
	bool wr_shut;		/* shutdown(SHUT_WR) done: the last record is out */
	bool lingered;		/* the lingering close after a fatal alert ran */
	enum ktls_linger_end linger_end;
	uint64_t linger_bytes;	/* bytes read and dropped while lingering */
	/* Set by rxkey.c when RX is in the kernel (ending.c sits below it):
	 * the lingering close reads and drops what the peer still sends, and
	 * to get past the peer's KeyUpdates the receive key follows them as
	 * it would have before the end (unchecked: nothing read is used; the
	 * status does not count it).  err: recvmsg's errno, or 0 for a
	 * handshake record P of LEN bytes.  1: a key was set, read on; 0:
	 * nothing to do; -errno: stop reading. */
	int (*drain_follow)(struct ktls_conn *c, int err, const uint8_t *p, size_t len);
};

/* The connection's last record (close_notify, or a fatal alert when
 * fatal) was handed to the kernel: shut the write side so that it leaves
 * now, and after a fatal alert linger until the peer can have read it
 * (ending.c).  Safe to call more than once. */
void ktls_conn_end(struct ktls_conn *c, bool fatal);
/* An alert record through the kernel's TX; counts it.  Bytes or -errno. */
ssize_t ktls_send_alert(struct ktls_conn *c, uint8_t level, uint8_t desc);
/* ktls_conn_linger(3) on c: 1 the peer closed, 0 the time ran out,
 * -ENOTCONN no fatal alert was sent, -EINVAL no socket. */
int ktls_linger_now(struct ktls_conn *c, int timeout_ms);
/* End the connection: a fatal alert through the kernel when it has TX. */
void ktls_conn_fatal(struct ktls_conn *c, bool tx, enum ktls_reason r, int err,
		     uint8_t alert, const char *what);

/* io.c: the engine's half of libssl's kTLS contract, for every front end. */
/* A connection on fd (policy NULL: the defaults), nothing offered yet;
 * NULL when out of memory.  ktls_conn_free wipes and frees it (NULL is
 * fine); the socket is the caller's. */
struct ktls_conn *ktls_conn_new(int fd, const struct ktls_policy *policy);
void ktls_conn_free(struct ktls_conn *c);
/* libssl's kTLS ctrls (72-76, 90): 1 with the answer in *ret, 0 when cmd
 * is none of them. */
int ktls_io_ctrl(struct ktls_conn *c, int cmd, long larg, void *ptr, long *ret);
/* Is a direction in the kernel (then ktls_io_write/read carry it)? */
bool ktls_io_offloaded(const struct ktls_conn *c, bool tx);
/* Kernel TX: what libssl writes (application data, or the control record
 * it announced with ctrl 74).  Bytes taken or -errno (retryable ones
 * included); also the error of a connection the bridge ended. */
ssize_t ktls_io_write(struct ktls_conn *c, const void *in, size_t inl);
/* Kernel RX: records with their 5-byte headers rebuilt, as libssl reads
 * them (the rest of a record kept for the next call).  Bytes, 0 at the
 * end of the stream, or -errno; after a hand-off always -EPERM. */
ssize_t ktls_io_read(struct ktls_conn *c, void *out, size_t outl);
/* A userspace direction's wire bytes, for its record and byte counters. */
void ktls_io_account(struct ktls_dir *d, const uint8_t *p, size_t n);

/* bio.c: the conn behind a bridge BIO, or NULL for any other BIO. */
struct ktls_conn *ktls_conn_from_bio(BIO *b);
/* delegate.c: the conn behind ssl, through its bridge BIO or its
 * delegation; NULL when it has neither (or ssl is NULL). */
struct ktls_conn *ktls_conn_of(const SSL *ssl);
/* Does ssl have a delegation (ktls_conn_delegate)? */
bool ktls_delegated(const SSL *ssl);
/* Hang c off ssl, freed with it (SSL_free); 0 or -ENOMEM. */
int ktls_delegate_bind(SSL *ssl, struct ktls_conn *c);
/* record.c: one control record of type on c's kernel TX
 * (TLS_SET_RECORD_TYPE).  Bytes taken, or -errno; with c->owe the record
 * is queued for the application instead (ktls_conn_owed): 0, or -EAGAIN
 * when the queue is full.  A fatal alert queued drops the KeyUpdates
 * still queued before it (not handed out yet): nothing else follows it. */
ssize_t ktls_send_ctrl(struct ktls_conn *c, int type, const void *buf, size_t len);
/* Is a record of type (0: any) queued or handed out, not yet reported? */
bool ktls_owed_has(const struct ktls_conn *c, int type);

/* stage.c: pre-staged keys, both directions. */
/* Stage generation gen+1 with TLS_TX_NEXT/TLS_RX_NEXT when policy and
 * kernel allow; a failure only means the next KeyUpdate sets the key again. */
int ktls_key_stage(struct ktls_conn *c, bool tx);
/* Drop a staged key (none staged is fine); 0 or -errno. */
int ktls_key_unstage(struct ktls_conn *c, bool tx);
/* Did the kernel switch to the staged key?  1 yes (nothing staged any
 * more), 0 no, -errno when it cannot tell. */
int ktls_key_staged_consumed(struct ktls_conn *c, bool tx);

/* txkey.c: the TLS 1.3 transmit key chain once the kernel has TX. */
/* Before a handshake record goes out: stage now if staging is wanted. */
void ktls_tx_before_handshake(struct ktls_conn *c);
/* After a handshake record holding nku KeyUpdates went out: bring the
 * kernel to generation gen+nku (staged switch or TLS_TX again) and stage
 * the next.  A failure ends the connection (reason rekey-failed). */
int ktls_tx_after_handshake(struct ktls_conn *c, int nku);	/* -1: not known */
/* Before application data: send our own KeyUpdate when the records under
 * this key reached the limit (policy keyupdate_records, else the AEAD
 * limit).  0, or -errno (retryable errors included). */
int ktls_tx_maybe_keyupdate(struct ktls_conn *c);
/* A BIO flush, which libssl does before each SSL_sendfile(): the same
 * KeyUpdate at the limit for records the BIO never saw.  0 or -errno. */
int ktls_tx_flush(struct ktls_conn *c);

/* rxkey.c: the TLS 1.3 receive key chain once the kernel has RX. */
/* A decrypted handshake record was received: count its KeyUpdates, apply
 * the storm guard, follow a staged switch.  0, or -errno when the
 * connection had to end (the record must not be handed up). */
int ktls_rx_after_handshake(struct ktls_conn *c, const uint8_t *body, size_t len,
			    struct ktls_hs_seen *seen);
/* One record's plaintext from the kernel (at most cap, 16384 bytes) and
 * its type; answers EKEYEXPIRED, and runs ktls_rx_after_handshake on a
 * handshake record when run_hs (else the caller does).  Bytes, 0 at the
 * end of the stream, or -errno (retryable ones included). */
ssize_t ktls_rx_record(struct ktls_conn *c, void *buf, size_t cap, uint8_t *type, bool run_hs);
/* What the application's own read of a record returned (hand-off): res
 * bytes of a record of type in buf, 0 at the end of the stream, or
 * -errno.  Checked and counted as ktls_rx_record does; a pause for a key
 * a KeyUpdate explains is answered (-EAGAIN: read again); other errors
 * end the connection with their alert.  Returns res, 0, or -errno. */
ssize_t ktls_rx_app_result(struct ktls_conn *c, ssize_t res, uint8_t type, const void *buf);
/* RX was just installed in the kernel: TLS_RX_EXPECT_NO_PAD for TLS 1.3
 * when the policy asks (best effort: without it the kernel only decrypts
 * less eagerly), and c->drain_follow for ending.c's lingering close. */
void ktls_rx_installed(struct ktls_conn *c);
/* libssl offered TLS 1.3 keys again for an offloaded direction (OpenSSL
 * 3.2+ after a KeyUpdate): 1 when they are the generation the kernel holds
 * or the next one (then installed), else the connection ends and 0. */
int ktls_key_reoffered(struct ktls_conn *c, bool tx, const struct ktls_keyblock *kb);
/* policy.c: 0 when a program's policy is one this release can follow:
 * tls13 one of the enum's modes, reserved words zero; else -EINVAL. */
int ktls_policy_check(const struct ktls_policy *p);
/* policy.c: policy and probe for one direction's keys, before any side
 * effect: KTLS_R_NONE = go ahead (the kernel's install answer decides
 * ciphers). */
enum ktls_reason ktls_decide(const struct ktls_conn *c, const struct ktls_keyblock *kb,
			     bool tx, int *err);
/* reason.c: record a direction's reason, errno and "what: ERRNO" detail. */
void ktls_dir_note(struct ktls_dir *d, enum ktls_reason r, int err, const char *what);

#endif
