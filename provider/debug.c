// SPDX-License-Identifier: MIT
/*
 * debug.c - tracing to stderr, switched on by KTLS_PROVIDER_DEBUG=1 or the
 * "debug" key.  The configuration holds nothing secret; key material never
 * passes through the provider at all.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "provider.h"

bool ktls_prov_debug_env(void)
{
	static const char *const yes[] = { "1", "on", "yes", "true" };
	const char *v = secure_getenv("KTLS_PROVIDER_DEBUG");
	size_t i;

	if (!v)
		return false;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!strcasecmp(v, yes[i]))
			return true;
	return false;
}

void ktls_prov_trace(const struct ktls_provctx *pc, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!pc || !pc->debug)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* one write per line, so lines of concurrent threads do not mix */
	fprintf(stderr, "ktls-provider: %s\n", line);
}

static const char *onoff(bool b)
{
	return b ? "on" : "off";
}

void ktls_prov_trace_policy(const struct ktls_provctx *pc)
{
	const struct ktls_policy *p = &pc->policy;
	char ciphers[256];

	if (!pc->debug)
		return;
	ktls_prov_cipher_list(p->ciphers, ciphers, sizeof(ciphers));
	ktls_prov_trace(pc, "activated, version %s", PACKAGE_VERSION);
	ktls_prov_trace(pc, "offload = %s", onoff(p->offload));
	ktls_prov_trace(pc, "tx = %s", onoff(p->tx));
	ktls_prov_trace(pc, "rx = %s", onoff(p->rx));
	ktls_prov_trace(pc, "ciphers = %s", ciphers);
	ktls_prov_trace(pc, "tls13 = %s", ktls_prov_tls13_name(p->tls13));
	ktls_prov_trace(pc, "prestage = %s", onoff(p->prestage));
	ktls_prov_trace(pc, "keyupdate_records = %llu%s",
			(unsigned long long)p->keyupdate_records,
			p->keyupdate_records ? "" : " (only at the AEAD usage limit)");
	ktls_prov_trace(pc, "storm_limit = %u", (unsigned)p->storm_limit);
	ktls_prov_trace(pc, "keyupdate_burst = %u%s", (unsigned)p->keyupdate_burst,
			p->keyupdate_burst ? "" : " (no limit)");
	ktls_prov_trace(pc, "zerocopy_sendfile = %s", onoff(p->zerocopy_sendfile));
	ktls_prov_trace(pc, "rx_expect_no_pad = %s", onoff(p->rx_expect_no_pad));
	ktls_prov_trace(pc, "debug = on");
}
