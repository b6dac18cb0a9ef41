// SPDX-License-Identifier: MIT
/*
 * rekey-test - rekey/ on its own: linked with librekey and libcrypto only
 * (no ktls-bridge), so the bottom layer cannot grow a dependency upwards
 * without this program failing to build.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rekey.h"
#include "ktest.h"

static void unhex(const char *h, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sscanf(h + 2 * i, "%2hhx", &out[i]);
}

int main(void)
{
	/* RFC 8448 section 3: server application traffic secret 0 and the
	 * AES-128-GCM write key and iv derived from it */
	static const char s0_hex[] =
		"a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643";
	uint8_t s0[32], want_key[16], want_iv[12], key[16], iv[12], s1[32];
	struct ktls_secret sec = { 0 };

	unhex(s0_hex, s0, sizeof(s0));
	unhex("9f02283b6c9c07efc26bb9f2ac92e356", want_key, sizeof(want_key));
	unhex("cf782b88dd83549aadf1e984", want_iv, sizeof(want_iv));

	CHECK_EQ(ktls_secret_key_iv(&sec, key, 16, iv, 12), -EINVAL);	/* no secret */
	CHECK_EQ(ktls_secret_set(&sec, s0, sizeof(s0), "SHA256"), 0);
	CHECK_EQ(ktls_secret_key_iv(&sec, key, 16, iv, 12), 0);
	CHECK(!memcmp(key, want_key, 16));
	CHECK(!memcmp(iv, want_iv, 12));
	CHECK_EQ(ktls_secret_key_iv(&sec, key, 0, iv, 12), -EINVAL);
	CHECK_EQ(ktls_secret_key_iv(NULL, key, 16, iv, 12), -EINVAL);

	/* one step along the chain: a new secret, a new key and iv */
	CHECK_EQ(ktls_secret_next(&sec), 0);
	CHECK_EQ(sec.gen, 1);
	memcpy(s1, sec.s, sizeof(s1));
	CHECK(memcmp(s1, s0, sizeof(s0)));
	CHECK_EQ(ktls_secret_key_iv(&sec, key, 16, iv, 12), 0);
	CHECK(memcmp(key, want_key, 16) && memcmp(iv, want_iv, 12));
	/* ... the same step from generation 0 again gives the same secret */
	CHECK_EQ(ktls_secret_set(&sec, s0, sizeof(s0), "SHA256"), 0);
	CHECK_EQ(ktls_secret_next(&sec), 0);
	CHECK(!memcmp(sec.s, s1, sizeof(s1)));

	ktls_secret_wipe(&sec);
	CHECK_EQ(sec.len, 0);
	return ktest_done("rekey-test");
}
