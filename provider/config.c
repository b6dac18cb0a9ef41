// SPDX-License-Identifier: MIT
/*
 * config.c - the provider's openssl.cnf section: every key read with one
 * core_get_params() call, each value validated.  Defaults come from the
 * bridge (ktls_policy_default), so there is one source of truth.
 *
 * OpenSSL hands a provider only the keys it asks for, so unknown keys
 * cannot be listed; the likeliest slip, a '-' where the key has '_'
 * ("storm-limit", "keyupdate-burst"), is asked for too and rejected with
 * a hint.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/params.h>

#include "provider.h"

enum cfg_key {
	CFG_OFFLOAD,
	CFG_TX,
	CFG_RX,
	CFG_CIPHERS,
	CFG_TLS13,
	CFG_PRESTAGE,
	CFG_KEYUPDATE_RECORDS,
	CFG_STORM_LIMIT,
	CFG_KEYUPDATE_BURST,
	CFG_ZEROCOPY_SENDFILE,
	CFG_RX_EXPECT_NO_PAD,
	CFG_DEBUG,
	CFG__COUNT
};

static const char *const cfg_names[CFG__COUNT] = {
	[CFG_OFFLOAD] = "offload",
	[CFG_TX] = "tx",
	[CFG_RX] = "rx",
	[CFG_CIPHERS] = "ciphers",
	[CFG_TLS13] = "tls13",
	[CFG_PRESTAGE] = "prestage",
	[CFG_KEYUPDATE_RECORDS] = "keyupdate_records",
	[CFG_STORM_LIMIT] = "storm_limit",
	[CFG_KEYUPDATE_BURST] = "keyupdate_burst",
	[CFG_ZEROCOPY_SENDFILE] = "zerocopy_sendfile",
	[CFG_RX_EXPECT_NO_PAD] = "rx_expect_no_pad",
	[CFG_DEBUG] = "debug",
};

#define CFG_NAME_MAX 32
#define BOOL_ACCEPTED "on, off, yes, no, true, false, 1, 0"

static const char *const tls13_names[] = {
	[KTLS_TLS13_AUTO] = "auto",
	[KTLS_TLS13_ALWAYS] = "always",
	[KTLS_TLS13_NEVER] = "never",
};

const char *ktls_prov_tls13_name(enum ktls_tls13_mode m)
{
	if ((unsigned)m >= sizeof(tls13_names) / sizeof(tls13_names[0]))
		return "auto";
	return tls13_names[m];
}

void ktls_prov_cipher_list(uint32_t mask, char *buf, size_t cap)
{
	size_t i, len = 0;

	if (!cap)
		return;
	buf[0] = '\0';
	for (i = 0; i < ktls_cipher_count() && i < 32; i++) {
		const struct ktls_cipher *c = ktls_cipher_at(i);
		int n;

		if (!(mask & (1u << i)) || !c)
			continue;
		n = snprintf(buf + len, cap - len, "%s%s", len ? ":" : "", c->name);
		if (n < 0 || (size_t)n >= cap - len)
			break;	/* truncated; the buffers used are large enough */
		len += (size_t)n;
	}
}

/* ------------------------------------------------------------------ */
/* Value parsers: 0 on success, -EINVAL on a bad value                 */
/* ------------------------------------------------------------------ */

static int parse_bool(const char *v, bool *out)
{
	static const char *const on[] = { "on", "yes", "true", "1" };
	static const char *const off[] = { "off", "no", "false", "0" };
	size_t i;

	for (i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
		if (!strcasecmp(v, on[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(v, off[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_tls13(const char *v, enum ktls_tls13_mode *out)
{
	size_t i;

	for (i = 0; i < sizeof(tls13_names) / sizeof(tls13_names[0]); i++) {
		if (!strcasecmp(v, tls13_names[i])) {
			*out = (enum ktls_tls13_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Decimal digits only: no sign, no spaces, no suffix, no overflow. */
static int parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long x;
	char *end;

	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end || x < min || x > max)
		return -EINVAL;
	*out = x;
	return 0;
}

/* "ALL" or a colon-separated list of cipher table names (case-insensitive).
 * On a bad name, *bad gets a copy of it. */
static int parse_ciphers(const char *v, uint32_t *out, char *bad, size_t badcap)
{
	const uint32_t all = (uint32_t)((1ull << ktls_cipher_count()) - 1);
	uint32_t mask = 0;
	const char *p = v;

	bad[0] = '\0';
	for (;;) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);
		char name[64];
		const struct ktls_cipher *c;

		while (n && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 0 || n >= sizeof(name)) {
			snprintf(bad, badcap, "%.*s", (int)(n < 48 ? n : 48), p);
			return -EINVAL;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		if (!strcasecmp(name, "ALL")) {
			mask |= all;
		} else {
			c = ktls_cipher_by_name(name);
			if (!c) {
				snprintf(bad, badcap, "%s", name);
				return -EINVAL;
			}
			mask |= 1u << ktls_cipher_index(c);
		}
		if (!colon)
			break;
		p = colon + 1;
	}
	*out = mask;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

/* A macro, so that the error's function is the caller's. */
#define bad_value(pc, k, v, accepted)                                              \
	KTLS_PROV_RAISE((pc), KTLS_PROV_R_BAD_VALUE,                               \
			"ktls: %s = \"%.100s\" is invalid; accepted: %s", cfg_names[k], \
			(v), (accepted))

static int config_apply_key(struct ktls_provctx *pc, enum cfg_key k, const char *v)
{
	struct ktls_policy *p = &pc->policy;
	char accepted[512], bad[64];
	uint64_t u;
	uint32_t mask;
	bool *flag = NULL, b;

	switch (k) {
	case CFG_OFFLOAD:
		flag = &p->offload;
		break;
	case CFG_TX:
		flag = &p->tx;
		break;
	case CFG_RX:
		flag = &p->rx;
		break;
	case CFG_PRESTAGE:
		flag = &p->prestage;
		break;
	case CFG_ZEROCOPY_SENDFILE:
		flag = &p->zerocopy_sendfile;
		break;
	case CFG_RX_EXPECT_NO_PAD:
		flag = &p->rx_expect_no_pad;
		break;
	case CFG_DEBUG:
		flag = &pc->debug;
		break;
	case CFG_TLS13:
		if (parse_tls13(v, &p->tls13) < 0) {
			bad_value(pc, k, v, "auto, always, never");
			return -EINVAL;
		}
		return 0;
	case CFG_KEYUPDATE_RECORDS:
		if (parse_u64(v, 0, UINT64_MAX, &u) < 0) {
			bad_value(pc, k, v, "an unsigned decimal integer "
				  "(0 = re-key only at the AEAD usage limit)");
			return -EINVAL;
		}
		p->keyupdate_records = u;
		return 0;
	case CFG_STORM_LIMIT:
		if (parse_u64(v, 1, UINT32_MAX, &u) < 0) {
			bad_value(pc, k, v, "an unsigned decimal integer from 1 to 4294967295 "
				  "(peer KeyUpdates per second)");
			return -EINVAL;
		}
		p->storm_limit = (uint32_t)u;
		return 0;
	case CFG_KEYUPDATE_BURST:
		if (parse_u64(v, 0, UINT32_MAX, &u) < 0) {
			bad_value(pc, k, v, "an unsigned decimal integer from 0 to 4294967295 "
				  "(peer KeyUpdates in a row with no application data between; "
				  "0 = no limit)");
			return -EINVAL;
		}
		p->keyupdate_burst = (uint32_t)u;
		return 0;
	case CFG_CIPHERS:
		if (parse_ciphers(v, &mask, bad, sizeof(bad)) < 0) {
			size_t i, len = 0;

			for (i = 0; i < ktls_cipher_count(); i++) {
				int n = snprintf(accepted + len, sizeof(accepted) - len, "%s%s",
						 i ? ", " : "", ktls_cipher_at(i)->name);

				if (n < 0 || (size_t)n >= sizeof(accepted) - len)
					break;
				len += (size_t)n;
			}
			KTLS_PROV_RAISE(pc, KTLS_PROV_R_BAD_VALUE,
					"ktls: ciphers = \"%.100s\" is invalid (%s \"%s\"); accepted: "
					"ALL or a colon-separated list of %s",
					v, bad[0] ? "unknown cipher" : "empty name in", bad[0] ? bad : v,
					accepted);
			return -EINVAL;
		}
		p->ciphers = mask;
		return 0;
	case CFG__COUNT:
		break;
	}
	if (!flag || parse_bool(v, &b) < 0) {
		bad_value(pc, k, v, BOOL_ACCEPTED);
		return -EINVAL;
	}
	*flag = b;
	return 0;
}

/* "storm_limit" -> "storm-limit"; false when the key has no '_'. */
static bool hyphen_spelling(const char *key, char *out, size_t cap)
{
	size_t i;

	if (!strchr(key, '_') || strlen(key) >= cap)
		return false;
	for (i = 0; key[i]; i++)
		out[i] = key[i] == '_' ? '-' : key[i];
	out[i] = '\0';
	return true;
}

int ktls_prov_config_load(struct ktls_provctx *pc)
{
	const char *vals[CFG__COUNT] = { NULL };
	const char *typos[CFG__COUNT] = { NULL };
	char typo_names[CFG__COUNT][CFG_NAME_MAX];
	int typo_key[CFG__COUNT];
	OSSL_PARAM params[2 * CFG__COUNT + 1];
	size_t n = 0, ntypo = 0, i;
	int bad = 0;

	ktls_policy_default(&pc->policy);
	for (i = 0; i < CFG__COUNT; i++)
		params[n++] = OSSL_PARAM_construct_utf8_ptr(cfg_names[i], (char **)&vals[i], 0);
	for (i = 0; i < CFG__COUNT; i++) {
		if (!hyphen_spelling(cfg_names[i], typo_names[ntypo], CFG_NAME_MAX))
			continue;
		typo_key[ntypo] = (int)i;
		params[n++] = OSSL_PARAM_construct_utf8_ptr(typo_names[ntypo],
							    (char **)&typos[ntypo], 0);
		ntypo++;
	}
	params[n] = OSSL_PARAM_construct_end();

	if (!pc->core.get_params(pc->handle, params)) {
		KTLS_PROV_RAISE(pc, KTLS_PROV_R_CORE_PARAMS,
				"ktls: the core did not answer the configuration request");
		return 0;
	}

	/* debug first, so that the checks below are traced too */
	if (vals[CFG_DEBUG] && config_apply_key(pc, CFG_DEBUG, vals[CFG_DEBUG]) < 0)
		bad++;
	if (ktls_prov_debug_env())
		pc->debug = true;
	for (i = 0; i < CFG__COUNT; i++) {
		if (i == CFG_DEBUG || !vals[i])
			continue;
		ktls_prov_trace(pc, "config: %s = \"%s\"", cfg_names[i], vals[i]);
		if (config_apply_key(pc, (enum cfg_key)i, vals[i]) < 0)
			bad++;
	}
	for (i = 0; i < ntypo; i++) {
		if (!typos[i])
			continue;
		KTLS_PROV_RAISE(pc, KTLS_PROV_R_UNKNOWN_KEY,
				"ktls: unknown key \"%s\"; did you mean %s?", typo_names[i],
				cfg_names[typo_key[i]]);
		bad++;
	}
	if (bad) {
		/* always said: OpenSSL drops the error stack of a failed activation */
		fprintf(stderr, "ktls-provider: not activated (%d bad configuration key%s); "
			"see ktls-provider(7)\n", bad, bad == 1 ? "" : "s");
		return 0;
	}
	return 1;
}
