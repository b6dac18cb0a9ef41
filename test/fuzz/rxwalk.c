// SPDX-License-Identifier: MIT
/*
 * rxwalk.c - fuzz the receive side's streaming walk of handshake messages
 * (rxkey.c, ktls_rx_after_handshake), which the peer may split across
 * records anywhere, against a reference that sees the whole stream at
 * once and knows where the records end.
 *
 * Input: byte 0 = number of record splits (mod 16), then that many
 * record lengths (one byte each), then the stream; the last record takes
 * what is left.  No socket: a connection with fd -1 whose transmit side
 * stays in userspace sends no alert, and with the policy's limits at 0
 * and nothing staged the walk is all that runs.
 *
 * Checked: the first alert (desc) and the counts of KeyUpdates,
 * NewSessionTickets, other messages and the request flag up to it.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "internal.h"

#define MAX_RECS 17

struct ref_result {
	int keyupdates, tickets, others, requested, alert;
};

/* Is off the end of a record? */
static bool rec_end(const size_t *ends, int nrec, size_t off)
{
	int i;

	for (i = 0; i < nrec; i++)
		if (ends[i] == off)
			return true;
	return false;
}

/* Reference: message by message over the whole stream. */
static void ref_walk(const uint8_t *p, size_t len, const size_t *ends, int nrec,
		     struct ref_result *r)
{
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	while (len - off >= 4) {
		size_t body = (size_t)p[off + 1] << 16 | (size_t)p[off + 2] << 8 | p[off + 3];
		size_t end = off + 4 + body;

		if (p[off] == KTLS_HS_KEY_UPDATE && body != 1) {
			r->alert = ALERT_DECODE_ERROR;
			return;
		}
		if (end > len)
			return;		/* still coming */
		if (p[off] == KTLS_HS_KEY_UPDATE) {
			r->keyupdates++;
			r->requested |= p[off + 4] == 1;
			if (p[off + 4] > 1) {
				r->alert = ALERT_ILLEGAL_PARAMETER;
				return;
			}
			if (!rec_end(ends, nrec, end)) {
				r->alert = ALERT_UNEXPECTED_MESSAGE;
				return;
			}
		} else if (p[off] == 4) {
			r->tickets++;
		} else {
			r->others++;
		}
		off = end;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ktls_conn c;
	struct ktls_hs_seen seen;
	struct ref_result ref, got = { 0 };
	size_t ends[MAX_RECS], off = 0, hdr;
	const uint8_t *stream;
	size_t len;
	int nsplit, nrec = 0, i;

	if (!size)
		return 0;
	nsplit = data[0] % 16;
	hdr = 1 + (size_t)nsplit;
	if (size < hdr)
		return 0;
	stream = data + hdr;
	len = size - hdr;
	for (i = 0; i < nsplit; i++) {
		off += data[1 + i];
		if (off > len)
			off = len;
		ends[nrec++] = off;
	}
	ends[nrec++] = len;

	memset(&c, 0, sizeof(c));
	c.fd = -1;
	c.rx.st.version = KTLS_TLS13;
	/* the walk alone: with the kernel receiving, a KeyUpdate that ends
	 * in a record not beginning with one installs its key at once (the
	 * hand-off target covers that, through the seam) */
	c.rx.st.mode = KTLS_MODE_USERSPACE;
	off = 0;
	for (i = 0; i < nrec && !got.alert; i++) {
		int ret = ktls_rx_after_handshake(&c, stream + off, ends[i] - off, &seen);

		got.keyupdates += seen.keyupdates;
		got.tickets += seen.tickets;
		got.others += seen.others;
		got.requested |= seen.requested;
		got.alert = seen.alert;
		FUZZ_ASSERT(ret == (seen.alert ? -EPROTO : 0));
		FUZZ_ASSERT(!seen.alert == !seen.why);
		off = ends[i];
	}
	ref_walk(stream, len, ends, nrec, &ref);
	FUZZ_ASSERT(got.alert == ref.alert);
	FUZZ_ASSERT(got.keyupdates == ref.keyupdates);
	FUZZ_ASSERT(got.tickets == ref.tickets);
	FUZZ_ASSERT(got.others == ref.others);
	FUZZ_ASSERT(got.requested == ref.requested);
	FUZZ_ASSERT(c.rx.st.keyupdates == (uint64_t)ref.keyupdates);
	FUZZ_ASSERT(c.dead == !!ref.alert);
	return 0;
}
