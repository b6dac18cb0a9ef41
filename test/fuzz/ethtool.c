// SPDX-License-Identifier: MIT
/*
 * ethtool.c - fuzz the reading of ethtool's answers for a NIC's TLS
 * offload (probe.c, ktls_nic_features): the feature names (fixed-size
 * fields, not always NUL-terminated) and the active bits, with the
 * kernel's own count of names, which need not match what was allocated.
 *
 * Input: u32 names_len (little-endian: the kernel's count), u8 nwords,
 * nwords u32 active words, then the names: every whole ETH_GSTRING_LEN
 * bytes one name (a shorter tail is ignored).  Names and words are copied
 * into buffers of exactly that size, so ASan sees a read past either.
 *
 * Checked against a deliberately plain reference (each name copied out
 * and NUL-terminated, compared with strcmp): the same hw_tx and hw_rx;
 * name, err and the other fields of the NIC untouched.
 */
#include "config.h"

#include <linux/ethtool.h>
#include <string.h>

#include "fuzz.h"
#include "internal.h"

static void reference(bool *tx, bool *rx, const char *names, uint32_t n, uint32_t names_len,
		      const uint32_t *active, uint32_t nwords)
{
	char name[ETH_GSTRING_LEN + 1];
	uint32_t i;

	for (i = 0; i < n && i < names_len && i / 32 < nwords; i++) {
		bool on = (active[i / 32] >> (i % 32)) & 1;

		memcpy(name, names + (size_t)i * ETH_GSTRING_LEN, ETH_GSTRING_LEN);
		name[ETH_GSTRING_LEN] = 0;
		if (!strcmp(name, "tls-hw-tx-offload"))
			*tx = on;
		else if (!strcmp(name, "tls-hw-rx-offload"))
			*rx = on;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ktls_nic nic, before;
	uint32_t names_len, nwords, n, i, *active;
	bool tx = false, rx = false;
	char *names;

	if (size < 5)
		return 0;
	names_len = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
		    (uint32_t)data[3] << 24;
	nwords = data[4];
	data += 5;
	size -= 5;
	if (size < (size_t)nwords * 4)
		return 0;
	active = malloc(nwords ? nwords * sizeof(*active) : 1);
	for (i = 0; active && i < nwords; i++, data += 4, size -= 4)
		active[i] = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
			    (uint32_t)data[3] << 24;
	n = (uint32_t)(size / ETH_GSTRING_LEN);
	names = malloc(n ? (size_t)n * ETH_GSTRING_LEN : 1);
	if (!active || !names)
		goto out;
	memcpy(names, data, (size_t)n * ETH_GSTRING_LEN);

	memset(&nic, 0, sizeof(nic));
	snprintf(nic.name, sizeof(nic.name), "fuzz0");
	before = nic;
	ktls_nic_features(&nic, names, n, names_len, active, nwords);
	reference(&tx, &rx, names, n, names_len, active, nwords);
	FUZZ_ASSERT(nic.hw_tx == tx && nic.hw_rx == rx);
	FUZZ_ASSERT(!strcmp(nic.name, before.name) && nic.err == before.err);
out:
	free(active);
	free(names);
	return 0;
}
