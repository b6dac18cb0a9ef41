// SPDX-License-Identifier: MIT
/*
 * ktls-probe - print what this kernel (and its NICs) can offload.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#include "common.h"
#include "ktls-params.h"

static const char *err_name(int err)
{
	const char *n;

	if (!err)
		return "ok";
	n = strerrorname_np(err);
	return n ? n : "EUNKNOWN";
}

static void print_json(const struct ktls_caps *c)
{
	size_t i, n = ktls_cipher_count();
	int v;

	printf("{\"kernel\":\"%s\",", c->kernel);
	printf("\"ulp\":{\"available\":%s,\"reason\":\"%s\"},",
	       c->ulp ? "true" : "false", err_name(c->ulp_err));
	printf("\"ciphers\":[");
	for (i = 0; i < n; i++) {
		const struct ktls_cipher *ci = ktls_cipher_at(i);

		for (v = 0; v < 2; v++)
			printf("%s{\"name\":\"%s\",\"tls\":\"%s\",\"tx\":\"%s\",\"rx\":\"%s\"}",
			       i || v ? "," : "", ci->name, v ? "1.3" : "1.2",
			       err_name(c->tx_err[i][v]), err_name(c->rx_err[i][v]));
	}
	printf("],\"rekey\":%s,\"rekey_reason\":\"%s\",", c->rekey ? "true" : "false",
	       err_name(c->rekey_err));
	printf("\"prestage\":%s,\"prestage_reason\":\"%s\",", c->prestage ? "true" : "false",
	       err_name(c->prestage_err));
	printf("\"zerocopy_sendfile\":%s,\"rx_expect_no_pad\":%s,",
	       c->zerocopy_tx ? "true" : "false", c->rx_no_pad ? "true" : "false");
	printf("\"nics\":[");
	for (i = 0; i < c->n_nics; i++)
		printf("%s{\"name\":\"%s\",\"tls_hw_tx\":%s,\"tls_hw_rx\":%s,\"error\":\"%s\"}",
		       i ? "," : "", c->nics[i].name, c->nics[i].hw_tx ? "true" : "false",
		       c->nics[i].hw_rx ? "true" : "false", err_name(-c->nics[i].err));
	printf("],\"probe_us\":%.1f}\n", (double)c->probe_ns / 1000.0);
}

static void print_table(const struct ktls_caps *c)
{
	size_t i, n = ktls_cipher_count();

	printf("kernel %s\n", c->kernel);
	if (c->ulp)
		printf("kernel TLS (\"tls\" ULP): available\n");
	else
		printf("kernel TLS (\"tls\" ULP): UNAVAILABLE (%s: %s)%s\n", err_name(c->ulp_err),
		       strerror(c->ulp_err),
		       c->ulp_err == ENOENT ? " - load the tls module: modprobe tls" : "");
	printf("\n%-18s %-10s %-10s %-10s %-10s\n", "cipher", "1.2 tx", "1.2 rx",
	       "1.3 tx", "1.3 rx");
	for (i = 0; i < n; i++)
		printf("%-18s %-10s %-10s %-10s %-10s\n", ktls_cipher_at(i)->name,
		       err_name(c->tx_err[i][0]), err_name(c->rx_err[i][0]),
		       err_name(c->tx_err[i][1]), err_name(c->rx_err[i][1]));
	printf("\nTLS 1.3 re-key (KeyUpdate):   %s\n", c->rekey ? "yes" : err_name(c->rekey_err));
	printf("pre-staged next keys:         %s\n",
	       c->prestage ? "yes" : err_name(c->prestage_err));
	printf("zero-copy sendfile:           %s\n",
	       c->zerocopy_tx ? "yes" : err_name(c->zerocopy_err));
	printf("rx expect no padding:         %s\n",
	       c->rx_no_pad ? "yes" : err_name(c->rx_no_pad_err));
	printf("\nNIC TLS offload:\n");
	for (i = 0; i < c->n_nics; i++) {
		const struct ktls_nic *nic = &c->nics[i];

		if (nic->err)
			printf("  %-12s features unreadable (%s)\n", nic->name, err_name(-nic->err));
		else
			printf("  %-12s tx %-3s rx %s\n", nic->name, nic->hw_tx ? "yes" : "no",
			       nic->hw_rx ? "yes" : "no");
	}
	printf("\nprobe took %.1f us\n", (double)c->probe_ns / 1000.0);
}

static int find_ktls(OSSL_PROVIDER *prov, void *arg)
{
	if (!strcmp(OSSL_PROVIDER_get0_name(prov), KTLS_PROVIDER_NAME)) {
		*(OSSL_PROVIDER **)arg = prov;
		return 0;
	}
	return 1;
}

/* Print every parameter the "ktls" provider answers (its own view). */
static int print_provider(bool json)
{
	OSSL_PROVIDER *prov = NULL;
	const OSSL_PARAM *g;
	size_t i;
	bool first = true;

	OSSL_PROVIDER_do_all(NULL, find_ktls, &prov);
	if (!prov) {
		fprintf(stderr, "ktls-probe: the \"ktls\" provider is not loaded "
				"(activate it in openssl.cnf; see ktls-provider(7))\n");
		return 2;
	}
	g = OSSL_PROVIDER_gettable_params(prov);
	printf(json ? "{" : "");
	for (i = 0; g && g[i].key; i++) {
		char sbuf[512] = "";
		uint64_t u = 0;
		int iv = 0;
		OSSL_PARAM q[2] = { OSSL_PARAM_END, OSSL_PARAM_END };

		if (g[i].data_type == OSSL_PARAM_UTF8_STRING || g[i].data_type == OSSL_PARAM_UTF8_PTR)
			q[0] = OSSL_PARAM_construct_utf8_string(g[i].key, sbuf, sizeof(sbuf));
		else if (g[i].data_type == OSSL_PARAM_INTEGER)
			q[0] = OSSL_PARAM_construct_int(g[i].key, &iv);
		else if (g[i].data_type == OSSL_PARAM_UNSIGNED_INTEGER)
			q[0] = OSSL_PARAM_construct_uint64(g[i].key, &u);
		else
			continue;
		if (!OSSL_PROVIDER_get_params(prov, q))
			continue;
		if (g[i].data_type == OSSL_PARAM_INTEGER)
			snprintf(sbuf, sizeof(sbuf), "%d", iv);
		else if (g[i].data_type == OSSL_PARAM_UNSIGNED_INTEGER)
			snprintf(sbuf, sizeof(sbuf), "%llu", (unsigned long long)u);
		if (json)
			printf("%s\"%s\":\"%s\"", first ? "" : ",", g[i].key, sbuf);
		else
			printf("%-26s %s\n", g[i].key, sbuf);
		first = false;
	}
	printf(json ? "}\n" : "");
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ktls-probe [--json] [--provider] [--help]\n"
		"Probe what the running kernel can offload with kernel TLS:\n"
		"the tls ULP, each cipher x TLS version x direction, TLS 1.3 re-key,\n"
		"pre-staged keys, zero-copy sendfile and NIC TLS offload.\n\n"
		"  --json       one JSON object on stdout\n"
		"  --provider   print the \"ktls\" provider's parameters instead\n"
		"  -h, --help   this text\n"
		"  --version    print the versions (ours, libssl's) and exit\n"
		"\n"
		"Exit status: 0 probe done (even if nothing can be offloaded),\n"
		"1 usage error, 2 provider requested but not loaded, or openssl.cnf\n"
		"failed to load.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "provider", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	bool json = false, prov = false;
	int ch;

	while ((ch = getopt_long(argc, argv, "jph", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = true;
			break;
		case 'p':
			prov = true;
			break;
		case 'V':
			app_print_version("ktls-probe");
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	if (app_load_config("ktls-probe"))
		return 2;
	if (prov)
		return print_provider(json);
	if (json)
		print_json(ktls_probe());
	else
		print_table(ktls_probe());
	return 0;
}
