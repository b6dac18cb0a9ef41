// SPDX-License-Identifier: MIT
/*
 * wipecheck.c - allocator hooks under OpenSSL that find registered
 * secrets in heap blocks as they are freed (see wipecheck.h).
 *
 * The table of live blocks is an open-addressing hash on libc's own heap,
 * outside the hooks.  It keeps each block's address bitwise inverted, so
 * that it never makes a leaked block look reachable to LeakSanitizer or
 * valgrind; wipecheck_stop() frees it.  Scanning reads whole blocks,
 * bytes never written included: valgrind's error reporting is off for
 * the scan.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "wipecheck.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define VALGRIND_DISABLE_ERROR_REPORTING do { } while (0)
#define VALGRIND_ENABLE_ERROR_REPORTING do { } while (0)
#endif

#define MAX_SECRETS 128
#define MAX_HITS 64
#define NAME_LEN 48

struct blk {
	uintptr_t key;		/* HIDE(address); 0: a free slot */
	size_t size;
	const char *file;	/* where OpenSSL was asked for it */
	int line;
};
#define HIDE(p) (~(uintptr_t)(p))
#define SHOW(k) ((const unsigned char *)~(k))

struct secret {
	char name[NAME_LEN];
	unsigned char b[64];
	size_t len;
};

struct hit {
	char name[NAME_LEN];
	size_t size;
	const char *file, *free_file;
	int line, free_line;
	bool moved;		/* the old block of a realloc */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct blk *tab;		/* NULL: not started or stopped */
static size_t tab_cap, tab_used;
static struct secret secrets[MAX_SECRETS];
static int nsecrets;
static struct hit hits[MAX_HITS];
static int nhits;
static void *program_base;

/* ---- the table ---------------------------------------------------------- */

static size_t slot_of(uintptr_t key)
{
	return (size_t)(((uint64_t)key * 0x9e3779b97f4a7c15ull) >> 32) & (tab_cap - 1);
}

static void tab_place(struct blk *t, size_t cap, const struct blk *b)
{
	size_t i = slot_of(b->key);

	while (t[i].key)
		i = (i + 1) & (cap - 1);
	t[i] = *b;
}

static int tab_grow(void)
{
	size_t old_cap = tab_cap, cap = tab_cap ? tab_cap * 2 : 4096;
	struct blk *old = tab, *t = calloc(cap, sizeof(*t));

	if (!t)
		return -1;
	tab = t;
	tab_cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].key)
			tab_place(tab, tab_cap, &old[i]);
	free(old);
	return 0;
}

static void tab_put(const void *p, size_t size, const char *file, int line)
{
	struct blk b = { .key = HIDE(p), .size = size, .file = file, .line = line };

	if ((tab_used + 1) * 2 > tab_cap && tab_grow())
		return;		/* untracked: its free passes straight through */
	tab_place(tab, tab_cap, &b);
	tab_used++;
}

static long tab_find(const void *p)
{
	uintptr_t key = HIDE(p);

	for (size_t i = slot_of(key); tab[i].key; i = (i + 1) & (tab_cap - 1))
		if (tab[i].key == key)
			return (long)i;
	return -1;
}

/* Linear probing without tombstones: entries after the hole move back
 * into it unless their home slot lies between the hole and them. */
static void tab_del(size_t i)
{
	size_t mask = tab_cap - 1, j = i;

	for (;;) {
		j = (j + 1) & mask;
		if (!tab[j].key)
			break;
		if (((j - slot_of(tab[j].key)) & mask) >= ((j - i) & mask)) {
			tab[i] = tab[j];
			i = j;
		}
	}
	tab[i].key = 0;
	tab_used--;
}

/* ---- scanning ------------------------------------------------------------ */

static bool holds(const struct blk *b, const struct secret *s)
{
	bool found;

	VALGRIND_DISABLE_ERROR_REPORTING;
	found = memmem(SHOW(b->key), b->size, s->b, s->len) != NULL;
	VALGRIND_ENABLE_ERROR_REPORTING;
	return found;
}

static void scan_freed(const struct blk *b, const char *file, int line, bool moved)
{
	for (int i = 0; i < nsecrets; i++) {
		struct hit *h;

		if (!holds(b, &secrets[i]))
			continue;
		if (nhits++ >= MAX_HITS)
			continue;
		h = &hits[nhits - 1];
		memcpy(h->name, secrets[i].name, sizeof(h->name));
		h->size = b->size;
		h->file = b->file;
		h->line = b->line;
		h->free_file = file;
		h->free_line = line;
		h->moved = moved;
	}
}

/* The object (program or shared library) that holds OpenSSL's file name. */
static const char *owner_of(const char *file, bool *program)
{
	Dl_info di;

	*program = false;
	if (!file || !dladdr(file, &di))
		return "?";
	*program = di.dli_fbase == program_base;
	if (*program || !di.dli_fname)
		return "this program";
	return strrchr(di.dli_fname, '/') ? strrchr(di.dli_fname, '/') + 1 : di.dli_fname;
}

static bool owner_is(const char *file, enum wipecheck_owner owner)
{
	bool program;

	if (owner == WIPECHECK_ANY)
		return true;
	owner_of(file, &program);
	return program == (owner == WIPECHECK_PROGRAM);
}

/* ---- the hooks ------------------------------------------------------------ */

static void *wc_malloc(size_t num, const char *file, int line)
{
	void *p;

	if (!num)
		return NULL;	/* as CRYPTO_malloc */
	p = malloc(num);
	pthread_mutex_lock(&lock);
	if (p && tab)
		tab_put(p, num, file, line);
	pthread_mutex_unlock(&lock);
	return p;
}

static void wc_free(void *p, const char *file, int line)
{
	long i;

	if (!p)
		return;
	pthread_mutex_lock(&lock);
	if (tab && (i = tab_find(p)) >= 0) {
		scan_freed(&tab[i], file, line, false);
		tab_del((size_t)i);
	}
	pthread_mutex_unlock(&lock);
	free(p);
}

/* Always a new block, so that the old one is scanned before it goes. */
static void *wc_realloc(void *p, size_t num, const char *file, int line)
{
	struct blk old;
	void *q;
	long i;

	if (!p)
		return wc_malloc(num, file, line);
	if (!num) {
		wc_free(p, file, line);
		return NULL;
	}
	pthread_mutex_lock(&lock);
	if (!tab || (i = tab_find(p)) < 0) {
		pthread_mutex_unlock(&lock);
		return realloc(p, num);
	}
	q = malloc(num);
	if (q) {
		old = tab[i];
		memcpy(q, p, old.size < num ? old.size : num);
		scan_freed(&old, file, line, true);
		tab_del((size_t)i);
		tab_put(q, num, file, line);
	}
	pthread_mutex_unlock(&lock);
	if (q)
		free(p);
	return q;
}

/* ---- the API ---------------------------------------------------------------- */

int wipecheck_start(void)
{
	Dl_info di;

	if (dladdr(&tab, &di))
		program_base = di.dli_fbase;
	pthread_mutex_lock(&lock);
	if (!tab)
		tab_grow();
	pthread_mutex_unlock(&lock);
	if (tab && CRYPTO_set_mem_functions(wc_malloc, wc_realloc, wc_free))
		return 0;
	fprintf(stderr, "wipecheck: cannot hook OpenSSL's allocator (it allocated already)\n");
	wipecheck_stop();
	return -1;
}

void wipecheck_secret(const char *name, const void *p, size_t len)
{
	struct secret *s;

	if (len < 8 || len > sizeof(s->b) || nsecrets == MAX_SECRETS) {
		fprintf(stderr, "wipecheck: secret %s: %zu bytes, or too many secrets\n",
			name, len);
		abort();
	}
	pthread_mutex_lock(&lock);
	s = &secrets[nsecrets++];
	snprintf(s->name, sizeof(s->name), "%s", name);
	memcpy(s->b, p, len);
	s->len = len;
	pthread_mutex_unlock(&lock);
}

void wipecheck_forget(void)
{
	pthread_mutex_lock(&lock);
	OPENSSL_cleanse(secrets, sizeof(secrets));
	nsecrets = nhits = 0;
	pthread_mutex_unlock(&lock);
}

int wipecheck_live(const char *name, enum wipecheck_owner owner)
{
	int n = 0;

	pthread_mutex_lock(&lock);
	for (size_t i = 0; tab && i < tab_cap; i++) {
		if (!tab[i].key)
			continue;
		for (int j = 0; j < nsecrets; j++) {
			if ((!name || !strcmp(name, secrets[j].name)) &&
			    holds(&tab[i], &secrets[j]) && owner_is(tab[i].file, owner)) {
				n++;
				break;
			}
		}
	}
	pthread_mutex_unlock(&lock);
	return n;
}

int wipecheck_hits(enum wipecheck_owner owner)
{
	int n = 0;

	pthread_mutex_lock(&lock);
	for (int i = 0; i < nhits && i < MAX_HITS; i++) {
		const struct hit *h = &hits[i];
		const char *obj;
		bool program;

		if (!owner_is(h->file, owner))
			continue;
		obj = owner_of(h->file, &program);
		fprintf(stderr, "wipecheck: %s still in a %zu-byte block that %s "
			"allocated at %s:%d, %s at %s:%d\n", h->name, h->size, obj,
			h->file ? h->file : "?", h->line,
			h->moved ? "moved by realloc" : "freed",
			h->free_file ? h->free_file : "?", h->free_line);
		n++;
	}
	if (nhits > MAX_HITS) {
		fprintf(stderr, "wipecheck: %d more hits not kept\n", nhits - MAX_HITS);
		n += nhits - MAX_HITS;
	}
	pthread_mutex_unlock(&lock);
	return n;
}

void wipecheck_stop(void)
{
	pthread_mutex_lock(&lock);
	free(tab);
	tab = NULL;
	tab_cap = tab_used = 0;
	pthread_mutex_unlock(&lock);
}
