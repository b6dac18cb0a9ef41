/* SPDX-License-Identifier: MIT */
/*
 * wipecheck.h - is key material still in heap memory when it is freed?
 *
 * wipecheck_start() puts allocator hooks under OpenSSL
 * (CRYPTO_set_mem_functions), so that every OPENSSL_malloc, _zalloc,
 * _realloc and _free -- libssl's, libcrypto's and the bridge's -- goes
 * through a table of live blocks.  A test registers the secrets it feeds
 * in (wipecheck_secret); every block is scanned for them just before it
 * is really freed (for a realloc: the old block), and each secret found
 * is a hit, kept with the secret's name and where the block was allocated
 * and freed.  The bytes are checked, not whether a wipe was called.
 *
 * A block belongs to this program when the file name OpenSSL passed for
 * its allocation lives in the program itself: the bridge is linked in
 * statically (libktls-core), libssl and libcrypto are shared libraries.
 */
#ifndef WIPECHECK_H
#define WIPECHECK_H

#include <stddef.h>

enum wipecheck_owner {
	WIPECHECK_ANY,
	WIPECHECK_PROGRAM,	/* allocated by the test program or the bridge */
	WIPECHECK_LIBRARY,	/* allocated by libssl or libcrypto */
};

/* Install the hooks: first thing in main(), before anything calls
 * OpenSSL.  0, or -1 when OpenSSL allocated already (too late). */
int wipecheck_start(void);
/* Look for these bytes (8 to 64 of them) from now on; name says which
 * secret it is in reports. */
void wipecheck_secret(const char *name, const void *p, size_t len);
/* Forget the secrets and the hits (between cases). */
void wipecheck_forget(void);
/* Live blocks of that owner holding secret name now (NULL: any secret). */
int wipecheck_live(const char *name, enum wipecheck_owner owner);
/* Hits so far in blocks of that owner; each one is printed to stderr. */
int wipecheck_hits(enum wipecheck_owner owner);
/* Free the table (the hooks pass straight through from here on): call it
 * before main() returns so that leak checkers see every leak again. */
void wipecheck_stop(void);

#endif
