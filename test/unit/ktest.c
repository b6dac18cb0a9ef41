// SPDX-License-Identifier: MIT
/*
 * ktest.c - the counters behind ktest.h's CHECK macros and the name of
 * the case running, for the failures to name it.
 */
#include <errno.h>
#include <stdio.h>

#include "ktest.h"

int ktest_failures;
int ktest_checks;
int ktest_cases;

static char ktest_case[96];	/* "" between cases */
static int case_failures;	/* ktest_failures when the case began */

void ktest_where(void)
{
	/* program_invocation_short_name: no libtool wrapper runs these
	 * programs (they link no shared libtool library), so it is ours */
	fprintf(stderr, "%s: ", program_invocation_short_name);
	if (ktest_case[0])
		fprintf(stderr, "%s: ", ktest_case);
}

void ktest_begin(const char *name, const char *args)
{
	if (args[0])
		snprintf(ktest_case, sizeof(ktest_case), "%s(%s)", name, args);
	else
		snprintf(ktest_case, sizeof(ktest_case), "%s", name);
	case_failures = ktest_failures;
	ktest_cases++;
}

void ktest_end(void)
{
	if (ktest_failures > case_failures) {
		ktest_where();
		fprintf(stderr, "%d check(s) failed\n", ktest_failures - case_failures);
	}
	ktest_case[0] = '\0';
}

int ktest_done(const char *name)
{
	if (ktest_failures) {
		fprintf(stderr, "%s: %d of %d check(s) failed\n", name, ktest_failures,
			ktest_checks);
		return T_FAIL;
	}
	if (ktest_cases)
		printf("%s: %d cases, all %d checks passed\n", name, ktest_cases,
		       ktest_checks);
	else
		printf("%s: all %d checks passed\n", name, ktest_checks);
	return T_PASS;
}
