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

/* Re-key socket options and counters exist in mainline from 6.14; these
 * are the same names, defined here for older headers. */
#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif

#endif
