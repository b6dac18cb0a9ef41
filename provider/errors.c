// SPDX-License-Identifier: MIT
/*
 * errors.c - the provider's reason strings and the one function that puts
 * an error on OpenSSL's error stack (through the core, never libcrypto's
 * ERR_* directly: the core owns the error library number).
 */
#include "config.h"

#include <stdio.h>

#include "provider.h"

static const OSSL_ITEM reason_strings[] = {
	{ KTLS_PROV_R_BAD_VALUE, "invalid value in the ktls provider configuration" },
	{ KTLS_PROV_R_UNKNOWN_KEY, "unknown key in the ktls provider configuration" },
	{ KTLS_PROV_R_CORE_PARAMS, "could not read the ktls provider configuration" },
	{ KTLS_PROV_R_NO_MEMORY, "out of memory" },
	{ 0, NULL },
};

const OSSL_ITEM *ktls_prov_reason_strings(void *provctx)
{
	(void)provctx;
	return reason_strings;
}

void ktls_prov_raise(const struct ktls_provctx *pc, enum ktls_prov_reason r,
		     const char *file, int line, const char *func, const char *fmt, ...)
{
	va_list ap;

	if (!pc || !pc->core.new_error || !pc->core.vset_error)
		return;
	pc->core.new_error(pc->handle);
	if (pc->core.set_error_debug)
		pc->core.set_error_debug(pc->handle, file, line, func);
	va_start(ap, fmt);
	pc->core.vset_error(pc->handle, (uint32_t)r, fmt, ap);
	va_end(ap);
	/*
	 * OpenSSL discards the error stack of a provider that fails to
	 * activate from openssl.cnf (it counts as a non-fatal failure), so a
	 * configuration mistake would otherwise go unseen while programs run
	 * without the provider.  Say it on stderr too.
	 */
	if (pc->debug || r == KTLS_PROV_R_BAD_VALUE || r == KTLS_PROV_R_UNKNOWN_KEY) {
		va_start(ap, fmt);
		fputs("ktls-provider: error: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
	}
}
