/* SPDX-License-Identifier: MIT */
/*
 * fakekernel.h - a fake kTLS kernel behind the bridge's syscall seam.
 *
 * The host running the unit tests has no kTLS, so the tests put these
 * ops under the bridge (ktls_sys_set) and pretend the kernel accepted or
 * refused a particular call.  SOL_TLS and TCP_ULP never reach the real
 * kernel; everything else does, so bytes still move over a real loopback
 * TCP pair: records the bridge sends with a record-type cmsg go out as
 * plain bytes, and a read returns the record set with fake_record() or,
 * without one, whatever the peer wrote (as application data).
 *
 * The state is one global, `fake`: a test sets its fault fields before a
 * call to make that call fail, and reads the rest to see what the bridge
 * did.  It follows our kernel series' pre-staging (TLS_TX_NEXT,
 * TLS_RX_NEXT) and the 6.14 receive re-key UAPI (EKEYEXPIRED after a
 * KeyUpdate until TLS_RX is set again).
 */
#ifndef FAKEKERNEL_H
#define FAKEKERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define FAKE_MAX_FD	1024	/* per-fd counters: fds below this */
#define FAKE_MAX_CTRL	16	/* control records kept */
#define FAKE_CTRL_DATA	32	/* bytes kept of each */
#define FAKE_MAX_REC	64	/* the largest record fake_record() takes */

struct fake_kernel {
	/* ---- faults: errno for the call to fail with, 0 to succeed ---- */
	int ulp_err;		/* setsockopt(TCP_ULP) */
	int tx_err, rx_err;	/* setsockopt(TLS_TX), setsockopt(TLS_RX) */
	int rekey_err;		/* a second TLS_TX or TLS_RX on the same fd */
	int prestage_err;	/* TLS_TX_NEXT, TLS_RX_NEXT */
	int nopad_err;		/* TLS_RX_EXPECT_NO_PAD */
	int ctrl_err;		/* once: the next sendmsg with a record type */
	size_t short_ctrl;	/* once: that sendmsg takes only this many bytes */
	int rec_err;		/* every recvmsg, until cleared */

	/* ---- what the bridge set ---- */
	int tx_sets[FAKE_MAX_FD], rx_sets[FAKE_MAX_FD];	/* TLS_TX, TLS_RX */
	int nopad_sets[FAKE_MAX_FD];			/* TLS_RX_EXPECT_NO_PAD */
	int zc_sets[FAKE_MAX_FD];			/* TLS_TX_ZEROCOPY_RO */
	uint8_t last_tx[KTLS_MAX_INFO];	/* the TX key in use */
	uint8_t last_rx[KTLS_MAX_INFO];	/* the RX key in use */
	uint64_t tx_seq;		/* getsockopt(TLS_TX) reports it as rec_seq */
	uint64_t rx_seq;		/* getsockopt(TLS_RX) reports it as rec_seq */

	/* ---- what the bridge sent as records of a type (cmsg) ---- */
	size_t nctrl;
	int ctrl_type[FAKE_MAX_CTRL];
	uint8_t ctrl_data[FAKE_MAX_CTRL][FAKE_CTRL_DATA];
	size_t ctrl_len[FAKE_MAX_CTRL];	/* bytes passed on (short_ctrl cuts) */

	/* ---- the record every recvmsg returns while rec_len != 0 ---- */
	int rec_type;
	uint8_t rec[FAKE_MAX_REC];
	size_t rec_len;

	/* ---- TX pre-staging: a handshake record with a KeyUpdate switches
	 * TLS_TX to the staged key ---- */
	bool staged;
	uint8_t staged_tx[KTLS_MAX_INFO];
	int next_sets;		/* TLS_TX_NEXT with a key */
	int drops;		/* TLS_TX_NEXT without one: staged key dropped */
	int switches;		/* staged switches done */

	/* ---- RX re-key: a KeyUpdate read switches to the staged key, or
	 * else leaves recvmsg failing with EKEYEXPIRED until TLS_RX ---- */
	bool staged_rx;
	uint8_t staged_rx_info[KTLS_MAX_INFO];
	int rx_pending;		/* KeyUpdates read that still wait for a key */
	int rx_switches;	/* RX keys installed without TLS_RX */
};

extern struct fake_kernel fake;
extern const struct ktls_sys_ops fake_ops;

/*
 * Forget everything and install the seam: a kernel with kTLS that does
 * not re-key (rekey_err EBUSY) or pre-stage (prestage_err ENOPROTOOPT),
 * probed (fake_probe).  Also makes the bridge's linger short: the tests'
 * peers never close.
 */
void fake_reset(void);
/* fake_reset(), then a kernel that re-keys, pre-staging if asked, probed
 * again. */
void fake_reset_rekey(bool prestage);
/* Probe again through the seam (after a fault field changed what the
 * kernel can do).  The probe's own sockets are forgotten in the per-fd
 * counters; next_sets and drops keep what the probe did. */
void fake_probe(void);
/* A loopback TCP pair; *a, the bridge's end, starts with its per-fd
 * counters at 0 (fd numbers are reused). */
void fake_pair(int *a, int *b);
/* Every recvmsg from now on returns this record, of that type, until
 * fake.rec_len is set to 0.  A handshake record is walked for
 * KeyUpdates each time it is read. */
void fake_record(int type, const void *p, size_t len);

#endif
