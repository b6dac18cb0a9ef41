// SPDX-License-Identifier: MIT
/*
 * reason-test: the fallback-reason and mode tables.  Every reason has a
 * code and a text of its own, codes are unique and fit JSON and shell use
 * (lower case, digits, '-'), and anything out of range reads "unknown".
 */
#include <ctype.h>
#include <string.h>

#include "internal.h"
#include "ktest.h"

static void case_reasons(void)
{
	for (int i = 0; i < KTLS_R__COUNT; i++) {
		const char *code = ktls_reason_code((enum ktls_reason)i);
		const char *text = ktls_reason_str((enum ktls_reason)i);

		CHECK(strcmp(code, "unknown") != 0);
		CHECK(strcmp(text, "unknown reason") != 0);
		CHECK(strlen(text) > 8);
		for (const char *p = code; *p; p++)
			CHECK(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-');
		for (int j = 0; j < i; j++) {
			CHECK(strcmp(code, ktls_reason_code((enum ktls_reason)j)) != 0);
			CHECK(strcmp(text, ktls_reason_str((enum ktls_reason)j)) != 0);
		}
	}
	CHECK(!strcmp(ktls_reason_code(KTLS_R_NONE), "none"));
	CHECK(!strcmp(ktls_reason_code(KTLS_R_KEYUPDATE_STORM), "keyupdate-storm"));
	CHECK(strstr(ktls_reason_str(KTLS_R_KEYUPDATE_STORM), "keyupdate_burst") != NULL);
	CHECK(!strcmp(ktls_reason_code(KTLS_R__COUNT), "unknown"));
	CHECK(!strcmp(ktls_reason_code((enum ktls_reason)-1), "unknown"));
	CHECK(!strcmp(ktls_reason_str(KTLS_R__COUNT), "unknown reason"));
	CHECK(!strcmp(ktls_reason_str((enum ktls_reason)1000), "unknown reason"));
}

static void case_modes(void)
{
	CHECK(!strcmp(ktls_mode_str(KTLS_MODE_USERSPACE), "userspace"));
	CHECK(!strcmp(ktls_mode_str(KTLS_MODE_KERNEL_SW), "kernel-sw"));
	CHECK(!strcmp(ktls_mode_str(KTLS_MODE_KERNEL_HW), "kernel-hw"));
	CHECK(!strcmp(ktls_mode_str((enum ktls_mode)7), "unknown"));
}

int main(void)
{
	RUN(case_reasons);
	RUN(case_modes);
	return ktest_done("reason-test");
}
