// SPDX-License-Identifier: MIT
/*
 * params.c - what OSSL_PROVIDER_get_params() answers: the standard
 * provider parameters, the effective policy, and the capabilities of the
 * running kernel.  The probe runs once, on the first request that needs a
 * capability (the bridge caches it process-wide).
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/opensslv.h>
#include <openssl/params.h>

#include "ktls-params.h"
#include "provider.h"

#define PROV_NAME "ktls provider"
#define PROV_BUILDINFO PACKAGE_STRING " (built with " OPENSSL_VERSION_TEXT ")"

static const OSSL_PARAM gettable[] = {
	OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_STRING, NULL, 0),
	OSSL_PARAM_DEFN(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_STRING, NULL, 0),
	OSSL_PARAM_DEFN(OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_STRING, NULL, 0),
	OSSL_PARAM_DEFN(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER, NULL, 0),

	OSSL_PARAM_DEFN(KTLS_PARAM_OFFLOAD, OSSL_PARAM_INTEGER, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_TX, OSSL_PARAM_INTEGER, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_RX, OSSL_PARAM_INTEGER, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_CIPHERS, OSSL_PARAM_UTF8_STRING, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_CIPHER_MASK, OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_TLS13, OSSL_PARAM_UTF8_STRING, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_PRESTAGE, OSSL_PARAM_INTEGER, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_KEYUPDATE_RECORDS, OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_STORM_LIMIT, OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_KEYUPDATE_BURST, OSSL_PARAM_UNSIGNED_INTEGER, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_ZEROCOPY_SENDFILE, OSSL_PARAM_INTEGER, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_RX_EXPECT_NO_PAD, OSSL_PARAM_INTEGER, NULL, 0),

	OSSL_PARAM_DEFN(KTLS_PARAM_CAP_KERNEL, OSSL_PARAM_UTF8_STRING, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_CAP_ULP, OSSL_PARAM_INTEGER, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_CAP_ULP_REASON, OSSL_PARAM_UTF8_STRING, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_CAP_REKEY, OSSL_PARAM_INTEGER, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_CAP_PRESTAGE, OSSL_PARAM_INTEGER, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_CAP_CIPHERS_TX12, OSSL_PARAM_UTF8_STRING, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_CAP_CIPHERS_RX12, OSSL_PARAM_UTF8_STRING, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_CAP_CIPHERS_TX13, OSSL_PARAM_UTF8_STRING, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_CAP_CIPHERS_RX13, OSSL_PARAM_UTF8_STRING, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_CAP_ZEROCOPY_SENDFILE, OSSL_PARAM_INTEGER, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_CAP_RX_EXPECT_NO_PAD, OSSL_PARAM_INTEGER, NULL, 0),
	OSSL_PARAM_DEFN(KTLS_PARAM_CAP_NIC_OFFLOAD, OSSL_PARAM_UTF8_STRING, NULL, 0),
	OSSL_PARAM_END,
};

const OSSL_PARAM *ktls_prov_gettable_params(void *provctx)
{
	(void)provctx;
	return gettable;
}

/* ------------------------------------------------------------------ */
/* Capabilities: probed once, rendered once (process-wide, like the    */
/* bridge's cache they come from)                                      */
/* ------------------------------------------------------------------ */

struct cap_text {
	const struct ktls_caps *caps;
	char ulp_reason[32];
	char ciphers[2][2][256];	/* [tx=0/rx=1][TLS 1.2=0 / 1.3=1] */
	char nics[KTLS_PROBE_MAX_NICS * 24];
};

static struct cap_text cap_text;
static pthread_once_t cap_once = PTHREAD_ONCE_INIT;

static void cap_render(void)
{
	static const uint16_t versions[2] = { KTLS_TLS12, KTLS_TLS13 };
	const struct ktls_caps *c = ktls_probe();
	struct cap_text *t = &cap_text;
	size_t i, d, v;

	t->caps = c;
	if (c->ulp) {
		snprintf(t->ulp_reason, sizeof(t->ulp_reason), "ok");
	} else {
		const char *n = strerrorname_np(c->ulp_err);

		snprintf(t->ulp_reason, sizeof(t->ulp_reason), "%s", n ? n : "EUNKNOWN");
	}
	for (d = 0; d < 2; d++) {
		for (v = 0; v < 2; v++) {
			uint32_t mask = 0;

			for (i = 0; i < ktls_cipher_count() && i < 32; i++)
				if (ktls_caps_supports(c, ktls_cipher_at(i), versions[v], d == 0))
					mask |= 1u << i;
			ktls_prov_cipher_list(mask, t->ciphers[d][v], sizeof(t->ciphers[d][v]));
		}
	}
	for (i = 0; i < c->n_nics; i++) {
		const struct ktls_nic *nic = &c->nics[i];
		size_t len = strlen(t->nics);

		if (nic->err || (!nic->hw_tx && !nic->hw_rx))
			continue;
		snprintf(t->nics + len, sizeof(t->nics) - len, "%s%.15s=%s", len ? " " : "",
			 nic->name, nic->hw_tx && nic->hw_rx ? "tx+rx" : nic->hw_tx ? "tx" : "rx");
	}
}

static const struct cap_text *caps_get(struct ktls_provctx *pc)
{
	pthread_once(&cap_once, cap_render);
	if (pc->debug && !__atomic_exchange_n(&pc->probe_logged, 1, __ATOMIC_RELAXED))
		ktls_prov_trace(pc, "capabilities: kernel %s, tls ULP %s, rekey %s, "
				"prestage %s (probe took %.1f us)",
				cap_text.caps->kernel, cap_text.ulp_reason,
				cap_text.caps->rekey ? "yes" : "no",
				cap_text.caps->prestage ? "yes" : "no",
				(double)cap_text.caps->probe_ns / 1000.0);
	return &cap_text;
}

/* ------------------------------------------------------------------ */
/* Setters that accept what callers commonly pass                      */
/* ------------------------------------------------------------------ */

/* UTF8_STRING (copied) or UTF8_PTR (s must outlive the provider). */
static int set_str(OSSL_PARAM *p, const char *s)
{
	if (p->data_type == OSSL_PARAM_UTF8_PTR)
		return OSSL_PARAM_set_utf8_ptr(p, s);
	return OSSL_PARAM_set_utf8_string(p, s);
}

static bool is_cap(const char *key)
{
	return !strncmp(key, "ktls-cap-", 9);
}

static int get_one(struct ktls_provctx *pc, OSSL_PARAM *p)
{
	const struct ktls_policy *pol = &pc->policy;
	const struct cap_text *t;
	const char *k = p->key;

	if (!strcmp(k, OSSL_PROV_PARAM_NAME))
		return set_str(p, PROV_NAME);
	if (!strcmp(k, OSSL_PROV_PARAM_VERSION))
		return set_str(p, PACKAGE_VERSION);
	if (!strcmp(k, OSSL_PROV_PARAM_BUILDINFO))
		return set_str(p, PROV_BUILDINFO);
	if (!strcmp(k, OSSL_PROV_PARAM_STATUS))
		return OSSL_PARAM_set_int(p, 1);

	if (!strcmp(k, KTLS_PARAM_OFFLOAD))
		return OSSL_PARAM_set_int(p, pol->offload);
	if (!strcmp(k, KTLS_PARAM_TX))
		return OSSL_PARAM_set_int(p, pol->tx);
	if (!strcmp(k, KTLS_PARAM_RX))
		return OSSL_PARAM_set_int(p, pol->rx);
	if (!strcmp(k, KTLS_PARAM_CIPHERS))
		return set_str(p, pc->ciphers_text);
	if (!strcmp(k, KTLS_PARAM_CIPHER_MASK))
		return OSSL_PARAM_set_uint32(p, pol->ciphers);
	if (!strcmp(k, KTLS_PARAM_TLS13))
		return set_str(p, ktls_prov_tls13_name(pol->tls13));
	if (!strcmp(k, KTLS_PARAM_PRESTAGE))
		return OSSL_PARAM_set_int(p, pol->prestage);
	if (!strcmp(k, KTLS_PARAM_KEYUPDATE_RECORDS))
		return OSSL_PARAM_set_uint64(p, pol->keyupdate_records);
	if (!strcmp(k, KTLS_PARAM_STORM_LIMIT))
		return OSSL_PARAM_set_uint32(p, pol->storm_limit);
	if (!strcmp(k, KTLS_PARAM_KEYUPDATE_BURST))
		return OSSL_PARAM_set_uint32(p, pol->keyupdate_burst);
	if (!strcmp(k, KTLS_PARAM_ZEROCOPY_SENDFILE))
		return OSSL_PARAM_set_int(p, pol->zerocopy_sendfile);
	if (!strcmp(k, KTLS_PARAM_RX_EXPECT_NO_PAD))
		return OSSL_PARAM_set_int(p, pol->rx_expect_no_pad);

	if (!is_cap(k))
		return -1;	/* not ours: leave it alone */
	t = caps_get(pc);
	if (!strcmp(k, KTLS_PARAM_CAP_KERNEL))
		return set_str(p, t->caps->kernel);
	if (!strcmp(k, KTLS_PARAM_CAP_ULP))
		return OSSL_PARAM_set_int(p, t->caps->ulp);
	if (!strcmp(k, KTLS_PARAM_CAP_ULP_REASON))
		return set_str(p, t->ulp_reason);
	if (!strcmp(k, KTLS_PARAM_CAP_REKEY))
		return OSSL_PARAM_set_int(p, t->caps->rekey);
	if (!strcmp(k, KTLS_PARAM_CAP_PRESTAGE))
		return OSSL_PARAM_set_int(p, t->caps->prestage);
	if (!strcmp(k, KTLS_PARAM_CAP_CIPHERS_TX12))
		return set_str(p, t->ciphers[0][0]);
	if (!strcmp(k, KTLS_PARAM_CAP_CIPHERS_RX12))
		return set_str(p, t->ciphers[1][0]);
	if (!strcmp(k, KTLS_PARAM_CAP_CIPHERS_TX13))
		return set_str(p, t->ciphers[0][1]);
	if (!strcmp(k, KTLS_PARAM_CAP_CIPHERS_RX13))
		return set_str(p, t->ciphers[1][1]);
	if (!strcmp(k, KTLS_PARAM_CAP_ZEROCOPY_SENDFILE))
		return OSSL_PARAM_set_int(p, t->caps->zerocopy_tx);
	if (!strcmp(k, KTLS_PARAM_CAP_RX_EXPECT_NO_PAD))
		return OSSL_PARAM_set_int(p, t->caps->rx_no_pad);
	if (!strcmp(k, KTLS_PARAM_CAP_NIC_OFFLOAD))
		return set_str(p, t->nics);
	return -1;
}

int ktls_prov_get_params(void *provctx, OSSL_PARAM params[])
{
	struct ktls_provctx *pc = provctx;
	OSSL_PARAM *p;
	int ok = 1;

	for (p = params; p && p->key; p++) {
		int r = get_one(pc, p);

		if (r == 0) {
			ktls_prov_trace(pc, "get_params: \"%s\" does not fit the caller's "
					"type or buffer", p->key);
			ok = 0;
		}
	}
	return ok;
}
