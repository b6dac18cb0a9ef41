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
 * KTLS_FAULT_RANDOM=CALLS:PPM:SEED fails a random share of calls instead
 * (the soak test's mode; with or without KTLS_FAULT's rules):
 *   CALLS  one or more of setsockopt, sendmsg, recvmsg joined by '+':
 *          setsockopt of the OPTs above only; sendmsg/recvmsg on TCP
 *          sockets only (and only on KTLS_FAULT_PORT's when it is set)
 *   PPM    how many calls in a million fail (1..1000000)
 *   SEED   the pseudo-random sequence's seed: the same seed fails the
 *          same call numbers (one sequence shared by the threads)
 * A failed setsockopt() returns ENOMEM (the kernel's answer when it cannot
 * allocate a context or a cipher), sendmsg() and recvmsg() EIO; each prints
 *   ktls-fault: injected EIO into recvmsg() call #123 (random)
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

/* KTLS_FAULT_RANDOM */
enum { RND_SETSOCKOPT = 1, RND_SENDMSG = 2, RND_RECVMSG = 4 };
static unsigned int rnd_calls;
static unsigned long rnd_ppm, rnd_seed, rnd_n;	/* rnd_n: atomic */

typedef int (*setsockopt_fn)(int, int, int, const void *, socklen_t);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
typedef ssize_t (*recvmsg_fn)(int, struct msghdr *, int);

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
	    " KTLS_FAULT_PORT a TCP port; KTLS_FAULT_RANDOM=CALLS:PPM:SEED with CALLS"
	    " setsockopt, sendmsg, recvmsg joined by '+', PPM 1..1000000\n", var, val, bad, why);
	_exit(2);
}

/* "CALLS:PPM:SEED" (modified in place); NULL or what is wrong. */
static const char *parse_random(char *s)
{
	char *ppm = strchr(s, ':'), *seed, *tok, *next;

	if (!ppm || !(seed = strchr(ppm + 1, ':')))
		return "not CALLS:PPM:SEED";
	*ppm++ = 0;
	*seed++ = 0;
	for (tok = s; tok; tok = next) {
		next = strchr(tok, '+');
		if (next)
			*next++ = 0;
		if (!strcmp(tok, "setsockopt"))
			rnd_calls |= RND_SETSOCKOPT;
		else if (!strcmp(tok, "sendmsg"))
			rnd_calls |= RND_SENDMSG;
		else if (!strcmp(tok, "recvmsg"))
			rnd_calls |= RND_RECVMSG;
		else
			return "CALLS: not setsockopt, sendmsg or recvmsg";
	}
	if (!parse_ulong(ppm, &rnd_ppm) || !rnd_ppm || rnd_ppm > 1000000)
		return "PPM is not 1..1000000";
	if (!parse_ulong(seed, &rnd_seed))
		return "SEED is not a number";
	return NULL;
}

/* Whether this counted call fails: call n of the shared sequence, mixed
 * with the seed (splitmix64's finaliser), below PPM in a million. */
static bool random_fails(unsigned long *n)
{
	unsigned long long x;

	*n = __atomic_add_fetch(&rnd_n, 1, __ATOMIC_SEQ_CST);
	x = (unsigned long long)*n + (unsigned long long)rnd_seed * 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x % 1000000 < rnd_ppm;
}

__attribute__((constructor)) static void fault_init(void)
{
	const char *spec = getenv("KTLS_FAULT"), *port = getenv("KTLS_FAULT_PORT");
	const char *tr = getenv("KTLS_FAULT_TRACE"), *rnd = getenv("KTLS_FAULT_RANDOM");
	char buf[1024], *tok, *next;

	trace = tr && *tr && strcmp(tr, "0");
	if (port && *port) {
		unsigned long p;

		if (!parse_ulong(port, &p) || !p || p > 65535)
			fail_config("KTLS_FAULT_PORT", port, port, "not a TCP port");
		only_port = (int)p;
	}
	if (rnd && *rnd) {
		const char *why;

		if (strlen(rnd) >= sizeof(buf))
			fail_config("KTLS_FAULT_RANDOM", rnd, "", "too long");
		strcpy(buf, rnd);
		why = parse_random(buf);
		if (why)
			fail_config("KTLS_FAULT_RANDOM", rnd, rnd, why);
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

/* libc's own function name, looked up once (*slot caches it). */
static void *real(void **slot, const char *name)
{
	void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (!f) {
		f = dlsym(RTLD_NEXT, name);
		if (!f) {
			say("ktls-fault: dlsym(RTLD_NEXT, \"%s\") failed: %s\n", name, dlerror());
			abort();
		}
		__atomic_store_n(slot, f, __ATOMIC_RELEASE);
	}
	return f;
}

static setsockopt_fn real_setsockopt(void)
{
	static void *slot;
	setsockopt_fn f;
	void *sym = real(&slot, "setsockopt");

	memcpy(&f, &sym, sizeof(f));
	return f;
}

/* A TCP socket: a stream socket of an internet family (UNIX stream
 * sockets are streams too). */
static bool is_tcp(int fd)
{
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);
	int saved = errno, type = 0;
	socklen_t len = sizeof(type);
	bool ok = !getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) && type == SOCK_STREAM &&
		  !getsockname(fd, (struct sockaddr *)&ss, &slen) &&
		  (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);

	errno = saved;
	return ok;
}

/* Whether a random fault hits this sendmsg/recvmsg (which), and says so. */
static bool random_io_fault(int fd, unsigned int which, const char *name)
{
	unsigned long n;

	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE) || !(rnd_calls & which) ||
	    !is_tcp(fd) || !port_matches(fd) || !random_fails(&n))
		return false;
	say("ktls-fault: injected EIO into %s() call #%lu (random)\n", name, n);
	errno = EIO;
	return true;
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	static void *slot;
	sendmsg_fn f;
	void *sym = real(&slot, "sendmsg");

	if (random_io_fault(fd, RND_SENDMSG, "sendmsg"))
		return -1;
	memcpy(&f, &sym, sizeof(f));
	return f(fd, msg, flags);
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	static void *slot;
	recvmsg_fn f;
	void *sym = real(&slot, "recvmsg");

	if (random_io_fault(fd, RND_RECVMSG, "recvmsg"))
		return -1;
	memcpy(&f, &sym, sizeof(f));
	return f(fd, msg, flags);
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
	if (rnd_calls & RND_SETSOCKOPT) {
		unsigned long n;

		if (random_fails(&n)) {
			say("ktls-fault: injected ENOMEM into setsockopt(%s) call #%lu (random)\n",
			    opts[o].name, call);
			errno = ENOMEM;
			return -1;
		}
	}
	if (trace)
		say("ktls-fault: setsockopt(%s) call #%lu on fd %d passed through\n",
		    opts[o].name, call, fd);
	return real_setsockopt()(fd, level, name, val, len);
}
