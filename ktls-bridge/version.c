// SPDX-License-Identifier: MIT
/*
 * version.c - which release of the library is running.
 */
#include "config.h"

#include "internal.h"

const char *ktls_version(void)
{
	return PACKAGE_VERSION;
}
