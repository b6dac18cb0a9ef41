// SPDX-License-Identifier: MIT
/*
 * provider.c - OSSL_provider_init, the dispatch table and the capture of
 * the core functions.  Everything else lives in config.c, params.c,
 * errors.c and debug.c.
 */
#include "config.h"

#include <stdlib.h>

#include "provider.h"

static void ktls_prov_teardown(void *provctx)
{
	struct ktls_provctx *pc = provctx;

	ktls_prov_trace(pc, "unloaded");
	free(pc);
}

/* No algorithms: loading this provider changes nothing for programs that
 * do not use the bridge. */
static const OSSL_ALGORITHM *ktls_prov_query(void *provctx, int operation_id,
					     int *no_cache)
{
	(void)provctx;
	(void)operation_id;
	*no_cache = 0;
	return NULL;
}

static const OSSL_DISPATCH ktls_prov_dispatch[] = {
	{ OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))ktls_prov_teardown },
	{ OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))ktls_prov_gettable_params },
	{ OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))ktls_prov_get_params },
	{ OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))ktls_prov_query },
	{ OSSL_FUNC_PROVIDER_GET_REASON_STRINGS, (void (*)(void))ktls_prov_reason_strings },
	{ 0, NULL },
};

static void capture_core(struct ktls_core *core, const OSSL_DISPATCH *in)
{
	for (; in && in->function_id; in++) {
		switch (in->function_id) {
		case OSSL_FUNC_CORE_GET_PARAMS:
			core->get_params = OSSL_FUNC_core_get_params(in);
			break;
		case OSSL_FUNC_CORE_NEW_ERROR:
			core->new_error = OSSL_FUNC_core_new_error(in);
			break;
		case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
			core->set_error_debug = OSSL_FUNC_core_set_error_debug(in);
			break;
		case OSSL_FUNC_CORE_VSET_ERROR:
			core->vset_error = OSSL_FUNC_core_vset_error(in);
			break;
		default:
			break;
		}
	}
}

int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
		       const OSSL_DISPATCH **out, void **provctx)
{
	struct ktls_provctx *pc = calloc(1, sizeof(*pc));
	struct ktls_core core = { 0 };

	capture_core(&core, in);
	if (!pc) {
		struct ktls_provctx tmp = { .handle = handle, .core = core };

		KTLS_PROV_RAISE(&tmp, KTLS_PROV_R_NO_MEMORY, "ktls: out of memory");
		return 0;
	}
	pc->handle = handle;
	pc->core = core;
	pc->debug = ktls_prov_debug_env();
	if (!core.get_params) {
		KTLS_PROV_RAISE(pc, KTLS_PROV_R_CORE_PARAMS,
				"ktls: the core offers no get_params function");
		goto fail;
	}
	if (!ktls_prov_config_load(pc))
		goto fail;
	ktls_prov_cipher_list(pc->policy.ciphers, pc->ciphers_text, sizeof(pc->ciphers_text));
	ktls_prov_trace_policy(pc);
	*out = ktls_prov_dispatch;
	*provctx = pc;
	return 1;
fail:
	free(pc);
	return 0;
}
