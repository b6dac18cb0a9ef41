/* SPDX-License-Identifier: MIT */
/*
 * ktls-params.h - parameter names of the "ktls" OpenSSL provider.
 *
 * The provider answers OSSL_PROVIDER_get_params() with these; the bridge
 * reads the policy through them.  Policy values are the effective ones
 * (config parsed and validated); capability values come from the probe.
 */
#ifndef KTLS_PARAMS_H
#define KTLS_PARAMS_H

#define KTLS_PROVIDER_NAME "ktls"

/* Policy (effective values) */
#define KTLS_PARAM_OFFLOAD            "ktls-offload"            /* int 0/1 */
#define KTLS_PARAM_TX                 "ktls-tx"                 /* int 0/1 */
#define KTLS_PARAM_RX                 "ktls-rx"                 /* int 0/1 */
#define KTLS_PARAM_CIPHERS            "ktls-ciphers"            /* utf8 "AES-128-GCM:..." */
#define KTLS_PARAM_CIPHER_MASK        "ktls-cipher-mask"        /* uint32, bit per table index */
#define KTLS_PARAM_TLS13              "ktls-tls13"              /* utf8 auto|always|never */
#define KTLS_PARAM_PRESTAGE           "ktls-prestage"           /* int 0/1 */
#define KTLS_PARAM_KEYUPDATE_RECORDS  "ktls-keyupdate-records"  /* uint64 */
#define KTLS_PARAM_STORM_LIMIT        "ktls-storm-limit"        /* uint32 */
#define KTLS_PARAM_KEYUPDATE_BURST    "ktls-keyupdate-burst"    /* uint32 */
#define KTLS_PARAM_ZEROCOPY_SENDFILE  "ktls-zerocopy-sendfile"  /* int 0/1 */
#define KTLS_PARAM_RX_EXPECT_NO_PAD   "ktls-rx-expect-no-pad"   /* int 0/1 */

/* Capabilities (from the probe, run lazily once) */
#define KTLS_PARAM_CAP_KERNEL         "ktls-cap-kernel"         /* utf8 */
#define KTLS_PARAM_CAP_ULP            "ktls-cap-ulp"            /* int 0/1 */
#define KTLS_PARAM_CAP_ULP_REASON     "ktls-cap-ulp-reason"     /* utf8 errno name or "ok" */
#define KTLS_PARAM_CAP_REKEY          "ktls-cap-rekey"          /* int 0/1 */
#define KTLS_PARAM_CAP_PRESTAGE       "ktls-cap-prestage"       /* int 0/1 */
#define KTLS_PARAM_CAP_CIPHERS_TX12   "ktls-cap-ciphers-tx12"   /* utf8 list of accepted */
#define KTLS_PARAM_CAP_CIPHERS_RX12   "ktls-cap-ciphers-rx12"
#define KTLS_PARAM_CAP_CIPHERS_TX13   "ktls-cap-ciphers-tx13"
#define KTLS_PARAM_CAP_CIPHERS_RX13   "ktls-cap-ciphers-rx13"
#define KTLS_PARAM_CAP_ZEROCOPY_SENDFILE "ktls-cap-zerocopy-sendfile" /* int 0/1 */
#define KTLS_PARAM_CAP_RX_EXPECT_NO_PAD  "ktls-cap-rx-expect-no-pad"  /* int 0/1 */
#define KTLS_PARAM_CAP_NIC_OFFLOAD    "ktls-cap-nic-offload"    /* utf8 "eth0=tx+rx eth1=tx", "" if none */

#endif
