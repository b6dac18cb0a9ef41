/* SPDX-License-Identifier: MIT */
/* testcert.h - a throwaway certificate for unit tests that run real
 * handshakes. */
#ifndef TESTCERT_H
#define TESTCERT_H

#include <openssl/evp.h>
#include <openssl/x509.h>

/* A P-256 key and a self-signed certificate for it (CN=localhost, valid
 * for an hour); the caller frees both. */
void testcert_make(EVP_PKEY **pkey, X509 **cert);

#endif
