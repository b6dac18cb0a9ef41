// SPDX-License-Identifier: MIT
/*
 * provconf.c - fuzz the provider's openssl.cnf values: ktls_prov_config_load()
 * (provider/config.c) with a fake core whose get_params answers from the
 * input, so the provider needs no loading.  A reference written here
 * says which values are valid (booleans, auto/always/never, decimal
 * integers in range, cipher lists); the load must succeed exactly when
 * every value is valid and no key is spelt with '-', and then the
 * policy must hold what the reference read.
 *
 * Input: "key=value" entries, one per line; the first entry of a key wins.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "../../provider/provider.h"

#define MAX_ENTRIES 32

enum kind { K_BOOL, K_TLS13, K_U64, K_CIPHERS };

static const struct ref_key {
	const char *name;
	enum kind kind;
	uint64_t min, max;
} ref_keys[] = {
	{ "offload", K_BOOL, 0, 0 },
	{ "tx", K_BOOL, 0, 0 },
	{ "rx", K_BOOL, 0, 0 },
	{ "ciphers", K_CIPHERS, 0, 0 },
	{ "tls13", K_TLS13, 0, 0 },
	{ "prestage", K_BOOL, 0, 0 },
	{ "keyupdate_records", K_U64, 0, UINT64_MAX },
	{ "storm_limit", K_U64, 1, UINT32_MAX },
	{ "keyupdate_burst", K_U64, 0, UINT32_MAX },
	{ "zerocopy_sendfile", K_BOOL, 0, 0 },
	{ "rx_expect_no_pad", K_BOOL, 0, 0 },
	{ "debug", K_BOOL, 0, 0 },
};
#define NKEYS (sizeof(ref_keys) / sizeof(ref_keys[0]))

struct entry {
	const char *key, *val;
};

static struct entry entries[MAX_ENTRIES];
static size_t nentries;

static const char *lookup(const char *key)
{
	size_t i;

	for (i = 0; i < nentries; i++)
		if (!strcmp(entries[i].key, key))
			return entries[i].val;
	return NULL;
}

static int fake_get_params(const OSSL_CORE_HANDLE *h, OSSL_PARAM params[])
{
	OSSL_PARAM *p;

	for (p = params; p->key; p++) {
		const char *v = lookup(p->key);

		if (!v || p->data_type != OSSL_PARAM_UTF8_PTR)
			continue;
		*(const char **)p->data = v;
		p->return_size = strlen(v);
	}
	return 1;
}

static void fake_new_error(const OSSL_CORE_HANDLE *h)
{
}

/* the message is formatted, so that a bad format argument shows */
__attribute__((format(printf, 3, 0)))
static void fake_vset_error(const OSSL_CORE_HANDLE *h, uint32_t reason,
			    const char *fmt, va_list args)
{
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, args);
}

/* ---- reference ---- */

/* Is v one of the space-separated words (any case)? */
static bool ref_word(const char *v, const char *words)
{
	size_t n = strlen(v);

	while (*words) {
		size_t w = strcspn(words, " ");

		if (w == n && !strncasecmp(v, words, n))
			return true;
		words += w + (words[w] == ' ');
	}
	return false;
}

static int ref_bool(const char *v, bool *out)
{
	if (ref_word(v, "on yes true 1"))
		*out = true;
	else if (ref_word(v, "off no false 0"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

static int ref_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t x = 0;

	if (!*v)
		return -EINVAL;
	for (; *v; v++) {
		if (*v < '0' || *v > '9' || x > (UINT64_MAX - (uint64_t)(*v - '0')) / 10)
			return -EINVAL;
		x = x * 10 + (uint64_t)(*v - '0');
	}
	if (x < min || x > max)
		return -EINVAL;
	*out = x;
	return 0;
}

static int ref_ciphers(const char *v, uint32_t *out)
{
	uint32_t mask = 0;

	for (;;) {
		size_t n = strcspn(v, ":"), s = 0, e = n;
		char name[64];

		while (s < e && (v[s] == ' ' || v[s] == '\t'))
			s++;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e == s || e - s >= sizeof(name))
			return -EINVAL;
		memcpy(name, v + s, e - s);
		name[e - s] = '\0';
		if (!strcasecmp(name, "all")) {
			size_t i;

			for (i = 0; i < ktls_cipher_count(); i++)
				mask |= 1u << i;
		} else if (ktls_cipher_by_name(name)) {
			mask |= 1u << ktls_cipher_index(ktls_cipher_by_name(name));
		} else {
			return -EINVAL;
		}
		if (!v[n])
			break;
		v += n + 1;
	}
	*out = mask;
	return 0;
}

static bool has_hyphen_typo(void)
{
	size_t i, j;

	for (i = 0; i < NKEYS; i++) {
		char typo[32];

		if (!strchr(ref_keys[i].name, '_'))
			continue;
		for (j = 0; ref_keys[i].name[j]; j++)
			typo[j] = ref_keys[i].name[j] == '_' ? '-' : ref_keys[i].name[j];
		typo[j] = '\0';
		if (lookup(typo))
			return true;
	}
	return false;
}

/* The policy field of key i must hold what the reference read. */
static void check_value(const struct ktls_provctx *pc, size_t i, const char *v)
{
	const struct ktls_policy *p = &pc->policy;
	const char *name = ref_keys[i].name;
	uint64_t u = 0;
	uint32_t mask = 0;
	bool b = false;

	switch (ref_keys[i].kind) {
	case K_BOOL:
		ref_bool(v, &b);
		FUZZ_ASSERT(b == (!strcmp(name, "offload") ? p->offload :
				  !strcmp(name, "tx") ? p->tx :
				  !strcmp(name, "rx") ? p->rx :
				  !strcmp(name, "prestage") ? p->prestage :
				  !strcmp(name, "zerocopy_sendfile") ? p->zerocopy_sendfile :
				  !strcmp(name, "rx_expect_no_pad") ? p->rx_expect_no_pad :
				  pc->debug));
		break;
	case K_TLS13:
		FUZZ_ASSERT(!strcasecmp(v, ktls_prov_tls13_name(p->tls13)));
		break;
	case K_U64:
		ref_u64(v, ref_keys[i].min, ref_keys[i].max, &u);
		FUZZ_ASSERT(u == (!strcmp(name, "keyupdate_records") ? p->keyupdate_records :
				  !strcmp(name, "storm_limit") ? p->storm_limit :
				  p->keyupdate_burst));
		break;
	case K_CIPHERS:
		ref_ciphers(v, &mask);
		FUZZ_ASSERT(mask == p->ciphers);
		break;
	}
}

static bool ref_valid(size_t i, const char *v)
{
	uint64_t u;
	uint32_t mask;
	bool b;

	switch (ref_keys[i].kind) {
	case K_BOOL:
		return !ref_bool(v, &b);
	case K_TLS13:
		return ref_word(v, "auto always never");
	case K_U64:
		return !ref_u64(v, ref_keys[i].min, ref_keys[i].max, &u);
	case K_CIPHERS:
		return !ref_ciphers(v, &mask);
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ktls_provctx pc;
	char *text = malloc(size + 1), *line, *save = NULL;
	bool valid;
	size_t i;
	int ret;

	FUZZ_ASSERT(text);
	memcpy(text, data, size);
	text[size] = '\0';
	nentries = 0;
	for (line = strtok_r(text, "\n", &save); line && nentries < MAX_ENTRIES;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');

		if (!eq)
			continue;
		*eq = '\0';
		entries[nentries].key = line;
		entries[nentries++].val = eq + 1;
	}

	memset(&pc, 0, sizeof(pc));
	pc.core.get_params = fake_get_params;
	pc.core.new_error = fake_new_error;
	pc.core.vset_error = fake_vset_error;
	ret = ktls_prov_config_load(&pc);

	valid = !has_hyphen_typo();
	for (i = 0; i < NKEYS; i++) {
		const char *v = lookup(ref_keys[i].name);

		if (v && !ref_valid(i, v))
			valid = false;
	}
	FUZZ_ASSERT(ret == (valid ? 1 : 0));
	for (i = 0; valid && i < NKEYS; i++) {
		const char *v = lookup(ref_keys[i].name);

		if (v)
			check_value(&pc, i, v);
	}
	free(text);
	return 0;
}
