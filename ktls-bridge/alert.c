// SPDX-License-Identifier: MIT
/*
 * alert.c - which TLS alert a receive error from the kernel calls for.
 *
 * When the kernel decrypts (hand-off mode, or libssl 3.2+ with receive
 * offload), a record it cannot take never reaches userspace: recvmsg()
 * fails with an errno instead.  RFC 8446 still wants the peer told why.
 * This is the one table that turns those errnos into alerts.  libssl 3.2+
 * applies the same mapping itself in transparent mode (its kTLS record
 * layer reads errno after the BIO read), so both modes send the same.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>

#include "internal.h"

static const struct ktls_rx_alert rx_alerts[] = {
	/* AEAD open failed, or a record too short for its tag, or an inner
	 * plaintext with no content type (RFC 8446 5.2, 5.4) */
	{ EBADMSG, ALERT_BAD_RECORD_MAC, "RFC 8446 5.2: the record did not decrypt" },
	/* TLSCiphertext.length above 2^14 + 256 (RFC 8446 5.2) */
	{ EMSGSIZE, ALERT_RECORD_OVERFLOW, "RFC 8446 5.2: record longer than allowed" },
	/* the kernel checks legacy_record_version = 0x0303; libssl's kTLS
	 * layer answers protocol_version, and so do we */
	{ EINVAL, ALERT_PROTOCOL_VERSION, "record header: legacy_record_version is not 0x0303" },
	/* the kernel paused for a new key the bridge saw no KeyUpdate for
	 * (RFC 8446 5: a record the receiver cannot account for) */
	{ EKEYEXPIRED, ALERT_UNEXPECTED_MESSAGE,
	  "the kernel paused for a KeyUpdate that the records did not hold" },
	/* the transport is gone: no alert can arrive */
	{ ECONNRESET, 0, "connection reset" },
	{ EPIPE, 0, "connection closed" },
	{ ETIMEDOUT, 0, "connection timed out" },
	{ ESHUTDOWN, 0, "socket shut down" },
};

const struct ktls_rx_alert *ktls_rx_alert_for(int err)
{
	static const struct ktls_rx_alert other = {
		0, ALERT_INTERNAL_ERROR, "the kernel failed a receive",
	};

	if (err < 0)
		err = -err;
	for (size_t i = 0; i < sizeof(rx_alerts) / sizeof(rx_alerts[0]); i++)
		if (rx_alerts[i].err == err)
			return &rx_alerts[i];
	return &other;
}
