/* SPDX-License-Identifier: MIT */
/*
 * provider.h - internals of the "ktls" OpenSSL provider (ktls-provider(7)).
 *
 * The provider offers no algorithms.  It carries the kTLS policy read from
 * its openssl.cnf section and the cached capability probe, both readable
 * with OSSL_PROVIDER_get_params() (names in ktls-params.h).
 */
#ifndef KTLS_PROVIDER_H
#define KTLS_PROVIDER_H

#include <stdarg.h>
#include <stdbool.h>
#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/macros.h>

#include "ktls-bridge.h"

/* The core functions this provider uses, captured at init. */
struct ktls_core {
	OSSL_FUNC_core_get_params_fn *get_params;
	OSSL_FUNC_core_new_error_fn *new_error;
	OSSL_FUNC_core_set_error_debug_fn *set_error_debug;
	OSSL_FUNC_core_vset_error_fn *vset_error;
};

/* One activation of the provider (one per library context). */
struct ktls_provctx {
	const OSSL_CORE_HANDLE *handle;
	struct ktls_core core;
	struct ktls_policy policy;	/* effective, validated; immutable after init */
	char ciphers_text[256];		/* policy.ciphers as names */
	bool debug;
	int probe_logged;		/* atomic: the first capability read was traced */
};

/* ------------------------------------------------------------------ */
/* config.c: the openssl.cnf section                                   */
/* ------------------------------------------------------------------ */

/* Read and validate every key with one core_get_params call.  Fills
 * pc->policy and pc->debug; on a bad value raises an error naming the key
 * and returns 0. */
int ktls_prov_config_load(struct ktls_provctx *pc);
/* "auto", "always", "never". */
const char *ktls_prov_tls13_name(enum ktls_tls13_mode m);
/* The cipher names of mask, colon-separated, into buf (always terminated). */
void ktls_prov_cipher_list(uint32_t mask, char *buf, size_t cap);

/* ------------------------------------------------------------------ */
/* params.c: OSSL_PROVIDER_get_params                                  */
/* ------------------------------------------------------------------ */

const OSSL_PARAM *ktls_prov_gettable_params(void *provctx);
int ktls_prov_get_params(void *provctx, OSSL_PARAM params[]);

/* ------------------------------------------------------------------ */
/* errors.c: the OpenSSL error stack                                   */
/* ------------------------------------------------------------------ */

enum ktls_prov_reason {
	KTLS_PROV_R_BAD_VALUE = 1,	/* a config key has an invalid value */
	KTLS_PROV_R_UNKNOWN_KEY,	/* a misspelt config key */
	KTLS_PROV_R_CORE_PARAMS,	/* core_get_params failed */
	KTLS_PROV_R_NO_MEMORY,
};

/* Reason strings for OSSL_FUNC_PROVIDER_GET_REASON_STRINGS. */
const OSSL_ITEM *ktls_prov_reason_strings(void *provctx);
/* Push an error with a formatted detail ("ktls: ..."). */
void ktls_prov_raise(const struct ktls_provctx *pc, enum ktls_prov_reason r,
		     const char *file, int line, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
#define KTLS_PROV_RAISE(pc, r, ...) \
	ktls_prov_raise((pc), (r), OPENSSL_FILE, OPENSSL_LINE, OPENSSL_FUNC, __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* debug.c: tracing to stderr                                          */
/* ------------------------------------------------------------------ */

/* True when KTLS_PROVIDER_DEBUG is set to a true value (1, on, yes, true). */
bool ktls_prov_debug_env(void);
/* One "ktls-provider: ..." line on stderr when pc->debug. */
void ktls_prov_trace(const struct ktls_provctx *pc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Log the effective settings (at activation). */
void ktls_prov_trace_policy(const struct ktls_provctx *pc);

#endif
