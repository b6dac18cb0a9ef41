/* SPDX-License-Identifier: MIT */
/*
 * ktest.h - tiny helpers for the standalone unit tests (exit 0/77/1).
 *
 * A program runs its cases with RUN(case_x) (or RUN(case_x, args)); a
 * failed CHECK names the program and the case, so that a line in a log
 * says which test broke without a debugger:
 *
 *	bio-rx-test: case_rx_rekey: unit/bio-rx-test.c:80: CHECK failed: ...
 *
 * The counters live in ktest.c, one copy per program, so that helpers in
 * other files (bridgetest.c) count their checks for the case that called
 * them.
 */
#ifndef KTEST_H
#define KTEST_H

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define T_PASS 0
#define T_SKIP 77
#define T_FAIL 1

extern int ktest_failures;	/* failed checks so far */
extern int ktest_checks;	/* checks run so far, passed or not */
extern int ktest_cases;		/* cases RUN so far */

/* Print "<program>: <case>: " before a failure's own text. */
void ktest_where(void);
/* Start case name (args: its arguments as text, "" for none). */
void ktest_begin(const char *name, const char *args);
/* End the case begun last: failures from here on name no case. */
void ktest_end(void);

/* Run one case; its name (and arguments) go into each failure it reports. */
#define RUN(fn, ...)                                                         \
	do {                                                                 \
		ktest_begin(#fn, #__VA_ARGS__);                              \
		fn(__VA_ARGS__);                                             \
		ktest_end();                                                 \
	} while (0)

#define CHECK(cond)                                                          \
	do {                                                                 \
		ktest_checks++;                                              \
		if (!(cond)) {                                               \
			ktest_where();                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                            \
			ktest_failures++;                                    \
		}                                                            \
	} while (0)

#define CHECK_EQ(a, b)                                                       \
	do {                                                                 \
		long long _a = (long long)(a), _b = (long long)(b);          \
		ktest_checks++;                                              \
		if (_a != _b) {                                              \
			ktest_where();                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", \
				__FILE__, __LINE__, #a, #b, _a, _b);         \
			ktest_failures++;                                    \
		}                                                            \
	} while (0)

/* A connected loopback TCP pair (*a connected to *b). */
static inline void tcp_pair(int *a, int *b)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(l, (struct sockaddr *)&sa, sizeof(sa));
	listen(l, 1);
	getsockname(l, (struct sockaddr *)&sa, &len);
	*a = socket(AF_INET, SOCK_STREAM, 0);
	connect(*a, (struct sockaddr *)&sa, sizeof(sa));
	*b = accept(l, NULL, NULL);
	close(l);
}

/* The exit status: T_FAIL after any failed check, else T_PASS. */
int ktest_done(const char *name);

#endif
