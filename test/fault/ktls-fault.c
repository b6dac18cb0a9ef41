// SPDX-License-Identifier: MIT
/*
 * ktls-fault.c - TEST TOOL, never for production: fail chosen setsockopt()
 * calls of a process, by LD_PRELOAD, to drive the bridge's error paths
 * against a real kernel (the VM tests; the C unit tests use the bridge's
 * ktls_sys seam instead).  Built as test/fault/.libs/ktls-fault.so, never
 * installed.
 *
 *   LD_PRELOAD=.../ktls-fault.so KTLS_FAULT=RULE[,RULE...] program ...
 *
 * RULE is OPT:N:ERRNO
 *   OPT    TLS_TX, TLS_RX, TLS_TX_NEXT (0x7401), TLS_RX_NEXT (0x7402), all
 *          at level SOL_TLS (282), or TCP_ULP at level IPPROTO_TCP
 *   N      the N-th call (1-based) of setsockopt(OPT) in this process fails;
 *          one counter per OPT, shared by all threads
 *   ERRNO  an errno name (EIO, ENOMEM, EINVAL, EBUSY, ENOPROTOOPT, ...) or
 *          a positive number
 * The failing call returns -1 with errno set; the real setsockopt() is not
 * called, so the kernel never sees it.  Each injected fault prints one line
 * on stderr:
 *   ktls-fault: injected EIO into setsockopt(TLS_TX) call #3
 * Several rules may name the same OPT (e.g. TLS_TX_NEXT:2:ENOMEM,
 * TLS_TX_NEXT:3:ENOMEM fails two calls in a row).
 *
 * KTLS_FAULT_PORT=P counts (and fails) only calls on TCP sockets whose
 * local or peer port is P: a client's connection to a server on P, or a
 * server's connection accepted on P.  The bridge's probe runs on a
 * loopback pair with ephemeral ports, so its TLS_TX/TLS_TX_NEXT/TCP_ULP
 * calls are then neither counted nor failed.  Without KTLS_FAULT_PORT
 * every call of OPT counts, the probe's included.
 *
 * KTLS_FAULT_TRACE=1 prints every counted call (passed or failed).
 *
 * A KTLS_FAULT or KTLS_FAULT_PORT that does not parse is reported on
 * stderr and the process ends with _exit(2) before main() runs.  An unset
 * or empty KTLS_FAULT injects nothing.
 */
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ktls-uapi.h"	/* SOL_TLS, TCP_ULP, TLS_TX_NEXT, TLS_RX_NEXT */

#define MAX_RULES 32

static const struct fault_opt {
	const char *name;
	int level, opt;
} opts[] = {
	{ "TLS_TX", SOL_TLS, TLS_TX },
	{ "TLS_RX", SOL_TLS, TLS_RX },
	{ "TLS_TX_NEXT", SOL_TLS, TLS_TX_NEXT },
	{ "TLS_RX_NEXT", SOL_TLS, TLS_RX_NEXT },
	{ "TCP_ULP", IPPROTO_TCP, TCP_ULP },
};
#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static struct fault_rule {
	size_t opt;		/* index into opts[] */
	unsigned long call;	/* N, 1-based */
	int err;
} rules[MAX_RULES];
static size_t n_rules;
static unsigned long counts[N_OPTS];	/* atomic */
static int only_port = -1;		/* KTLS_FAULT_PORT, -1: every socket */
static bool trace;
static bool ready;

typedef int (*setsockopt_fn)(int, int, int, const void *, socklen_t);

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One write(2) per line, so lines of concurrent threads do not mix. */
static void say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
}

static const char *errno_name(int err)
{
	const char *n = strerrorname_np(err);

	return n ? n : "E?";
}

static int parse_errno(const char *s)
{
	char *end;
	long v;

	if (*s >= '0' && *s <= '9') {
		v = strtol(s, &end, 10);
		return *end || v <= 0 || v > 4095 ? -1 : (int)v;
	}
	for (int e = 1; e < 4096; e++) {
		const char *n = strerrorname_np(e);

		if (n && !strcmp(n, s))
			return e;
	}
	return -1;
}

static bool parse_ulong(const char *s, unsigned long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return !*end && !errno;
}

/* One rule "OPT:N:ERRNO" (modified in place); NULL or what is wrong. */
static const char *parse_rule(char *s, struct fault_rule *r)
{
	char *n = strchr(s, ':'), *e;

	if (!n || !(e = strchr(n + 1, ':')))
		return "not OPT:N:ERRNO";
	*n++ = 0;
	*e++ = 0;
	for (r->opt = 0; r->opt < N_OPTS; r->opt++)
		if (!strcmp(opts[r->opt].name, s))
			break;
	if (r->opt == N_OPTS)
		return "unknown OPT";
	if (!parse_ulong(n, &r->call) || !r->call)
		return "N is not a number >= 1";
	r->err = parse_errno(e);
	return r->err > 0 ? NULL : "unknown ERRNO";
}

static void fail_config(const char *var, const char *val, const char *bad, const char *why)
{
	say("ktls-fault: bad %s=\"%s\": \"%s\": %s\n"
	    "ktls-fault: expected KTLS_FAULT=OPT:N:ERRNO[,...] with OPT one of TLS_TX, TLS_RX,"
	    " TLS_TX_NEXT, TLS_RX_NEXT, TCP_ULP; N >= 1; ERRNO a name like EIO;"
	    " KTLS_FAULT_PORT a TCP port\n", var, val, bad, why);
	_exit(2);
}

__attribute__((constructor)) static void fault_init(void)
{
	const char *spec = getenv("KTLS_FAULT"), *port = getenv("KTLS_FAULT_PORT");
	const char *tr = getenv("KTLS_FAULT_TRACE");
	char buf[1024], *tok, *next;

	trace = tr && *tr && strcmp(tr, "0");
	if (port && *port) {
		unsigned long p;

		if (!parse_ulong(port, &p) || !p || p > 65535)
			fail_config("KTLS_FAULT_PORT", port, port, "not a TCP port");
		only_port = (int)p;
	}
	if (spec && *spec) {
		if (strlen(spec) >= sizeof(buf))
			fail_config("KTLS_FAULT", spec, "", "too long");
		strcpy(buf, spec);
		for (tok = buf; tok; tok = next) {
			char rule[sizeof(buf)];
			const char *why;

			next = strchr(tok, ',');
			if (next)
				*next++ = 0;
			strcpy(rule, tok);
			if (n_rules == MAX_RULES)
				fail_config("KTLS_FAULT", spec, rule, "too many rules");
			why = parse_rule(tok, &rules[n_rules]);
			if (why)
				fail_config("KTLS_FAULT", spec, rule, why);
			n_rules++;
		}
	}
	__atomic_store_n(&ready, true, __ATOMIC_RELEASE);
}

static int sock_port(int fd, bool peer)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int ret = peer ? getpeername(fd, (struct sockaddr *)&ss, &len) :
			 getsockname(fd, (struct sockaddr *)&ss, &len);

	if (ret < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

static bool port_matches(int fd)
{
	int saved = errno;
	bool ok = only_port < 0 || sock_port(fd, false) == only_port ||
		  sock_port(fd, true) == only_port;

	errno = saved;
	return ok;
}

static setsockopt_fn real_setsockopt(void)
{
	static setsockopt_fn fn;
	setsockopt_fn f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);

	if (!f) {
		void *sym = dlsym(RTLD_NEXT, "setsockopt");

		if (!sym) {
			say("ktls-fault: dlsym(RTLD_NEXT, \"setsockopt\") failed: %s\n", dlerror());
			abort();
		}
		memcpy(&f, &sym, sizeof(f));
		__atomic_store_n(&fn, f, __ATOMIC_RELEASE);
	}
	return f;
}

/* The rule that fails this call of opts[o], or NULL. */
static const struct fault_rule *match(size_t o, unsigned long call)
{
	for (size_t i = 0; i < n_rules; i++)
		if (rules[i].opt == o && rules[i].call == call)
			return &rules[i];
	return NULL;
}

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	const struct fault_rule *r;
	unsigned long call;
	size_t o;

	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
		return real_setsockopt()(fd, level, name, val, len);
	for (o = 0; o < N_OPTS; o++)
		if (opts[o].level == level && opts[o].opt == name)
			break;
	if (o == N_OPTS || !port_matches(fd))
		return real_setsockopt()(fd, level, name, val, len);
	call = __atomic_add_fetch(&counts[o], 1, __ATOMIC_SEQ_CST);
	r = match(o, call);
	if (r) {
		say("ktls-fault: injected %s into setsockopt(%s) call #%lu\n",
		    errno_name(r->err), opts[o].name, call);
		errno = r->err;
		return -1;
	}
	if (trace)
		say("ktls-fault: setsockopt(%s) call #%lu on fd %d passed through\n",
		    opts[o].name, call, fd);
	return real_setsockopt()(fd, level, name, val, len);
}
