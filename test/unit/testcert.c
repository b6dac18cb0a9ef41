// SPDX-License-Identifier: MIT
/* testcert.c - see testcert.h. */
#include "testcert.h"

void testcert_make(EVP_PKEY **pkey, X509 **cert)
{
	*pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	*cert = X509_new();
	X509_set_version(*cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(*cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(*cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(*cert), 3600);
	X509_set_pubkey(*cert, *pkey);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(*cert), "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(*cert, X509_get_subject_name(*cert));
	X509_sign(*cert, *pkey, EVP_sha256());
}
