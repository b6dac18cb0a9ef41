/* SPDX-License-Identifier: MIT */
/* ktest.h - tiny helpers for the standalone unit tests (exit 0/77/1). */
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

static int ktest_failures;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                            \
			ktest_failures++;                                    \
		}                                                            \
	} while (0)

#define CHECK_EQ(a, b)                                                       \
	do {                                                                 \
		long long _a = (long long)(a), _b = (long long)(b);          \
		if (_a != _b) {                                              \
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

static inline int ktest_done(const char *name)
{
	if (ktest_failures) {
		fprintf(stderr, "%s: %d check(s) failed\n", name, ktest_failures);
		return T_FAIL;
	}
	printf("%s: all checks passed\n", name);
	return T_PASS;
}

#endif
