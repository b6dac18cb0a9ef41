/* SPDX-License-Identifier: MIT */
/*
 * ktls-uapi.h - socket options added by this project's kernel series
 * (kernel/), beside <linux/tls.h>.  Values sit far from mainline's small
 * integers so they cannot collide; stock kernels answer ENOPROTOOPT.
 */
#ifndef KTLS_UAPI_H
#define KTLS_UAPI_H

#include <linux/tls.h>

/* setsockopt(SOL_TLS, ...): stage the next generation's crypto info
 * (TLS 1.3 only, same version and cipher as installed).  getsockopt
 * returns the staged info or fails with ENOENT when nothing is staged. */
#ifndef TLS_TX_NEXT
#define TLS_TX_NEXT 0x7401
#endif
#ifndef TLS_RX_NEXT
#define TLS_RX_NEXT 0x7402
#endif

/* setsockopt(SOL_TLS, TLS_KEYBLOCK, struct tls_keyblock): install one or
 * both directions from one generic keyblock (our kernel series); the
 * kernel cuts key, salt and IV by its own cipher table.  getsockopt
 * reports the installed directions, never key bytes.  Stock kernels
 * answer ENOPROTOOPT. */
#ifndef TLS_KEYBLOCK
#define TLS_KEYBLOCK 0x7403
#define TLS_KEYBLOCK_VERSION_1 1
#define TLS_KEYBLOCK_TX 0x1
#define TLS_KEYBLOCK_RX 0x2
#define TLS_KEYBLOCK_MAX_LEN 128

struct tls_keyblock {
	__u16 struct_version;	/* TLS_KEYBLOCK_VERSION_1 */
	__u16 struct_size;	/* sizeof(struct tls_keyblock) = the option length */
	__u16 version;		/* TLS_1_2_VERSION, TLS_1_3_VERSION */
	__u16 cipher_type;	/* TLS_CIPHER_* */
	__u16 flags;		/* TLS_KEYBLOCK_TX | TLS_KEYBLOCK_RX */
	__u16 keyblock_len;	/* bytes of keyblock in use */
	__u32 reserved;		/* zero */
	unsigned char tx_rec_seq[8];
	unsigned char rx_rec_seq[8];
	/* per direction in flags, TX first: key, salt, iv; zero after */
	unsigned char keyblock[TLS_KEYBLOCK_MAX_LEN];
};
#endif

/* Re-key socket options and counters exist in mainline from 6.14; these
 * are the same names, defined here for older headers. */
#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif

#endif
