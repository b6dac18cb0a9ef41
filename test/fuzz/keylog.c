// SPDX-License-Identifier: MIT
/*
 * keylog.c - fuzz ktls_keylog_parse() (conn.c), the parsing half of the
 * key-log callback that keeps the TLS 1.3 traffic secrets from libssl's
 * "CLIENT_TRAFFIC_SECRET_0 <random> <secret hex>" lines, against a
 * reference: the label, a space, a field up to the next space, then an
 * even run of hex digits to the end of the line (a '\n' ends it; libssl
 * hands lines without one), at most the buffer's size in bytes.
 *
 * Input: the line (a NUL is put after it; a NUL inside ends it early).
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "internal.h"

#define SECRET_CAP 48	/* KTLS_MAX_SECRET: SHA-384 */

static int ref_hex(char ch)
{
	const char *digits = "0123456789abcdef", *at;

	if (ch >= 'A' && ch <= 'F')
		ch = (char)(ch - 'A' + 'a');
	at = ch ? strchr(digits, ch) : NULL;
	return at ? (int)(at - digits) : -1;
}

static int ref_parse(const char *line, bool *client, uint8_t *secret)
{
	const char *p;
	size_t n = 0, digits;

	if (!strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24))
		*client = true;
	else if (!strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24))
		*client = false;
	else
		return -ENOENT;
	p = strchr(line + 24, ' ');
	if (!p)
		return -EBADMSG;
	p++;
	digits = strcspn(p, "\n");
	if (digits % 2 || digits / 2 > SECRET_CAP)
		return -EBADMSG;
	for (; n < digits / 2; n++) {
		int hi = ref_hex(p[2 * n]), lo = ref_hex(p[2 * n + 1]);

		if (hi < 0 || lo < 0)
			return -EBADMSG;
		secret[n] = (uint8_t)(hi * 16 + lo);
	}
	return (int)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t secret[SECRET_CAP], ref_secret[SECRET_CAP];
	bool client = false, ref_client = false;
	char *line = malloc(size + 1);
	int n, ref;

	FUZZ_ASSERT(line);
	memcpy(line, data, size);
	line[size] = '\0';
	n = ktls_keylog_parse(line, &client, secret, sizeof(secret));
	ref = ref_parse(line, &ref_client, ref_secret);
	FUZZ_ASSERT(n == ref);
	if (n != -ENOENT)
		FUZZ_ASSERT(client == ref_client);
	if (n > 0)
		FUZZ_ASSERT(!memcmp(secret, ref_secret, (size_t)n));
	free(line);
	return 0;
}
