// SPDX-License-Identifier: MIT
/*
 * ktest.c - the counters behind ktest.h's CHECK macros and the name of
 * the case running, for the failures to name it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ktest.h"

int ktest_failures;
int ktest_checks;
int ktest_cases;

static char ktest_case[96];	/* "" between cases */
static int case_failures;	/* ktest_failures when the case began */

/*
 * A case that waits for bytes that never come would hang make check with
 * no word of which case it was (automake's harness has no timeout).  Each
 * case gets KTEST_CASE_SECONDS; past that the watchdog names the case and
 * the program fails.  Generous, for valgrind's runs of the same programs.
 */
#define KTEST_CASE_SECONDS 300

/* async-signal-safe: write(2) and strlen(3) only */
static void say(const char *text)
{
	ssize_t r = write(2, text, strlen(text));

	(void)r;
}

static void watchdog(int sig)
{
	(void)sig;
	say(program_invocation_short_name);
	say(": ");
	say(ktest_case);
	say(": still running after the watchdog's limit; failing\n");
	_exit(T_FAIL);
}

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
	signal(SIGALRM, watchdog);
	alarm(KTEST_CASE_SECONDS);
}

void ktest_end(void)
{
	if (ktest_failures > case_failures) {
		ktest_where();
		fprintf(stderr, "%d check(s) failed\n", ktest_failures - case_failures);
	}
	alarm(0);
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
