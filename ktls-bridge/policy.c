// SPDX-License-Identifier: MIT
/*
 * policy.c - built-in defaults, the policy of the "ktls" provider when it
 * is loaded in a library context, and the decision, per direction, whether
 * the kernel gets a connection's keys (policy against the probe).
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <openssl/core.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#include "internal.h"
#include "ktls-params.h"

void ktls_policy_default(struct ktls_policy *p)
{
	if (!p)
		return;
	memset(p, 0, sizeof(*p));
	p->offload = true;
	p->tx = true;
	p->rx = true;
	p->ciphers = (uint32_t)((1ull << ktls_cipher_count()) - 1);
	p->tls13 = KTLS_TLS13_AUTO;
	p->prestage = true;
	p->keyupdate_records = 0;
	p->storm_limit = 1000;
	p->keyupdate_burst = 32;
	p->zerocopy_sendfile = false;
	p->rx_expect_no_pad = false;
}

int ktls_policy_check(const struct ktls_policy *p)
{
	size_t i;

	switch (p->tls13) {
	case KTLS_TLS13_AUTO:
	case KTLS_TLS13_ALWAYS:
	case KTLS_TLS13_NEVER:
		break;
	default:
		return -EINVAL;
	}
	/* a word a newer release gave a meaning: refused, not ignored */
	for (i = 0; i < sizeof(p->reserved) / sizeof(p->reserved[0]); i++)
		if (p->reserved[i])
			return -EINVAL;
	return 0;
}

static int find_ktls(OSSL_PROVIDER *prov, void *arg)
{
	if (!strcmp(OSSL_PROVIDER_get0_name(prov), KTLS_PROVIDER_NAME)) {
		*(OSSL_PROVIDER **)arg = prov;
		return 0;	/* stop */
	}
	return 1;
}

static const char *const tls13_names[] = {
	[KTLS_TLS13_AUTO] = "auto",
	[KTLS_TLS13_ALWAYS] = "always",
	[KTLS_TLS13_NEVER] = "never",
};

int ktls_policy_load(OSSL_LIB_CTX *libctx, struct ktls_policy *p)
{
	OSSL_PROVIDER *prov = NULL;
	int offload = 1, tx = 1, rx = 1, prestage = 1, zc = 0, nopad = 0;
	unsigned int mask = 0, storm = 0, burst = 0;
	uint64_t kur = 0;
	char tls13[16] = "";
	OSSL_PARAM params[] = {
		OSSL_PARAM_int(KTLS_PARAM_OFFLOAD, &offload),
		OSSL_PARAM_int(KTLS_PARAM_TX, &tx),
		OSSL_PARAM_int(KTLS_PARAM_RX, &rx),
		OSSL_PARAM_uint(KTLS_PARAM_CIPHER_MASK, &mask),
		OSSL_PARAM_utf8_string(KTLS_PARAM_TLS13, tls13, sizeof(tls13)),
		OSSL_PARAM_int(KTLS_PARAM_PRESTAGE, &prestage),
		OSSL_PARAM_uint64(KTLS_PARAM_KEYUPDATE_RECORDS, &kur),
		OSSL_PARAM_uint(KTLS_PARAM_STORM_LIMIT, &storm),
		OSSL_PARAM_uint(KTLS_PARAM_KEYUPDATE_BURST, &burst),
		OSSL_PARAM_int(KTLS_PARAM_ZEROCOPY_SENDFILE, &zc),
		OSSL_PARAM_int(KTLS_PARAM_RX_EXPECT_NO_PAD, &nopad),
		OSSL_PARAM_END,
	};
	size_t i;

	if (!p)
		return -EINVAL;
	ktls_policy_default(p);
	OSSL_PROVIDER_do_all(libctx, find_ktls, &prov);
	if (!prov)
		return 0;
	if (!OSSL_PROVIDER_get_params(prov, params))
		return -EPROTO;
	for (i = 0; params[i].key; i++)
		if (!OSSL_PARAM_modified(&params[i]))
			return -EPROTO;
	p->offload = offload;
	p->tx = tx;
	p->rx = rx;
	p->ciphers = mask;
	p->prestage = prestage;
	p->keyupdate_records = kur;
	p->storm_limit = storm;
	p->keyupdate_burst = burst;
	p->zerocopy_sendfile = zc;
	p->rx_expect_no_pad = nopad;
	for (i = 0; i < sizeof(tls13_names) / sizeof(tls13_names[0]); i++)
		if (!strcmp(tls13, tls13_names[i]))
			break;
	if (i == sizeof(tls13_names) / sizeof(tls13_names[0]))
		return -EPROTO;
	p->tls13 = (enum ktls_tls13_mode)i;
	return 1;
}

/*
 * Policy and probe, before any side effect. 0 = go ahead.  The probe comes
 * after the policy: where the policy keeps the records in userspace the
 * kernel is not touched at all (the probe's sockets count in tls_stat, and
 * each cipher module it asks for costs a module request).
 */
enum ktls_reason ktls_decide(const struct ktls_conn *c, const struct ktls_keyblock *kb,
			       bool tx, int *err)
{
	const struct ktls_policy *p = &c->policy;
	const struct ktls_caps *caps;
	size_t ci = ktls_cipher_index(kb->cipher);

	*err = 0;
	if (!p->offload)
		return KTLS_R_POLICY_OFF;
	if (tx ? !p->tx : !p->rx)
		return KTLS_R_POLICY_DIRECTION;
	if (!(p->ciphers & (1u << ci)))
		return KTLS_R_POLICY_CIPHER;
	if (kb->version == KTLS_TLS13 && p->tls13 == KTLS_TLS13_NEVER)
		return KTLS_R_TLS13_NEVER;
	caps = ktls_probe_basic();
	if (!caps->ulp) {
		*err = caps->ulp_err;
		return KTLS_R_ULP_UNAVAILABLE;
	}
	if (kb->version == KTLS_TLS13 && p->tls13 == KTLS_TLS13_AUTO && !caps->rekey) {
		*err = caps->rekey_err;
		return KTLS_R_TLS13_NO_REKEY;
	}
	/* Whether the kernel has the cipher is its answer at install time. */
	return KTLS_R_NONE;
}
