// SPDX-License-Identifier: MIT
/*
 * handoff.c - fuzz hand-off mode's control-record path (handoff.c): what
 * an application passes back with ktls_conn_control() after the kernel
 * handed it a record that is not application data, mixed with its own
 * KeyUpdates and sends, with the kernel's answers faulted through the
 * fake kernel's seam (test/unit/fakekernel.h: no kTLS needed).
 *
 * The connection: TLS 1.3 both ways in a fake kernel that re-keys and was
 * probed once able to pre-stage (bit 0 of the first byte clear: it then
 * refuses to, a fault), handed off, as bio-handoff-test builds it.  No
 * linger at the end: the test's peer never reads.  Input: byte 0 = flags
 * (bit 0 pre-staging works, bit 1 server side), then operations until the
 * input ends:
 *   0x00-0x3f  a control record: type from the low 2 bits (22 handshake,
 *              21 alert, 23 application data, 20 change_cipher_spec),
 *              length = next byte (mod 65), then that many bytes
 *   0x40-0x5f  the next control record the bridge sends fails: EAGAIN,
 *              EPIPE, or is cut short (low 2 bits)
 *   0x60-0x7f  ktls_conn_keyupdate(requested = bit 0)
 *   0x80-0xbf  ktls_conn_send of one byte
 *   0xc0-0xff  ktls_conn_shutdown
 *
 * Checked, besides the sanitizers: each call answers 0/1 or one of the
 * errors its man page names; the bridge sends at most one alert and
 * nothing after it; once the connection ended (an alert either way),
 * every later call that moves records fails and sends nothing; after the
 * peer's close_notify records passed in fail and send nothing; after our
 * close_notify nothing is sent; the KeyUpdates the bridge sends
 * are never more than the peer asked for plus the ones the program asked
 * for; the key-count of the receive side equals the KeyUpdates the
 * bridge accepted.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "bridgetest.h"
#include "fuzz.h"
#include "internal.h"
#include "ktest.h"

struct sent {
	int alerts, keyupdates, total;
};

/* What the bridge sent since the connection was set up. */
static void count_sent(struct sent *s)
{
	size_t i;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < fake.nctrl && i < FAKE_MAX_CTRL; i++) {
		if (fake.ctrl_type[i] == KTLS_CT_ALERT)
			s->alerts++;
		else if (fake.ctrl_type[i] == KTLS_CT_HANDSHAKE &&
			 fake.ctrl_data[i][0] == KTLS_HS_KEY_UPDATE)
			s->keyupdates++;
	}
	s->total = (int)fake.nctrl;
}

static bool known_error(long r)
{
	switch (-r) {
	case EAGAIN: case EPIPE: case EPROTO: case ECONNRESET: case EOPNOTSUPP:
	case EMSGSIZE: case EIO: case EKEYEXPIRED: case EBADMSG:
		return true;
	}
	return false;
}

/* The peer's handshake stream so far (control records of type handshake
 * the bridge took), for counting its update_requested KeyUpdates: a
 * message may span records. */
struct hs_stream {
	uint8_t buf[4096];
	size_t len, walked;	/* walked: where the next message starts */
	int requested;		/* update_requested KeyUpdates, whole */
};

static void hs_add(struct hs_stream *h, const uint8_t *p, size_t len)
{
	if (len > sizeof(h->buf) - h->len)
		len = sizeof(h->buf) - h->len;
	memcpy(h->buf + h->len, p, len);
	h->len += len;
	while (h->len - h->walked >= 4) {
		const uint8_t *m = h->buf + h->walked;
		size_t body = (size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3];

		if (h->len - h->walked - 4 < body)
			break;
		if (m[0] == KTLS_HS_KEY_UPDATE && body >= 1 && m[4] == 1)
			h->requested++;
		h->walked += 4 + body;
	}
}

/* A fresh connection like bridgetest.c's rx_bridge(), without probing
 * the fake kernel again for every input (that probe is most of the cost). */
static BIO *setup(int *a, int *b, const uint8_t *s0, bool prestage)
{
	static bool probed;

	if (!probed) {
		fake_reset_rekey(true);
		probed = true;
	}
	fake.prestage_err = prestage ? 0 : ENOPROTOOPT;
	fake.ctrl_err = fake.rec_err = 0;
	fake.short_ctrl = fake.rec_len = 0;
	fake.staged = fake.staged_rx = false;
	fake.rx_pending = 0;
	ktls_linger_ms = 0;
	fake_pair(a, b);
	return rx_bridge_on(*a, s0, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int types[4] = { KTLS_CT_HANDSHAKE, KTLS_CT_ALERT, KTLS_CT_APPDATA, KTLS_CT_CCS };
	uint8_t s0[32];
	struct sent before, after;
	static struct hs_stream hs;
	int asked = 0, a, b, checks = ktest_failures;
	bool dead = false, eof = false;
	size_t off = 1;
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *bio;

	if (size < 1)
		return 0;
	memset(s0, 0x5a, sizeof(s0));
	bio = setup(&a, &b, s0, data[0] & 1);
	ktls_secret_set(&conn(bio)->tx.secret, s0, 32, "SHA256");
	ssl = handoff_ssl(bio, &ctx);
	if (data[0] & 2)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	FUZZ_ASSERT(ktest_failures == checks);	/* the setup itself held */
	fake.nctrl = 0;
	memset(&hs, 0, sizeof(hs));

	while (off < size) {
		uint8_t op = data[off++];
		long r;

		count_sent(&before);
		if (op < 0x40) {
			size_t len = off < size ? data[off++] % 65 : 0;

			if (len > size - off)
				len = size - off;
			r = ktls_conn_control(ssl, types[op & 3], data + off, len);
			if (types[op & 3] == KTLS_CT_HANDSHAKE && r != -EINVAL)
				hs_add(&hs, data + off, len);
			off += len;
			FUZZ_ASSERT(r == 0 || r == 1 || known_error(r));
		} else if (op < 0x60) {
			switch (op & 3) {
			case 0: fake.ctrl_err = EAGAIN; break;
			case 1: fake.ctrl_err = EPIPE; break;
			default: fake.short_ctrl = 1 + (op & 1); break;
			}
			continue;
		} else if (op < 0x80) {
			asked++;
			r = ktls_conn_keyupdate(ssl, op & 1);
			FUZZ_ASSERT(r == 0 || known_error(r));
		} else if (op < 0xc0) {
			r = ktls_conn_send(ssl, "x", 1);
			FUZZ_ASSERT(r == 1 || known_error(r));
		} else {
			r = ktls_conn_shutdown(ssl);
			FUZZ_ASSERT(r == 0 || known_error(r));
		}
		count_sent(&after);
		if (dead) {
			/* nothing moves after the end, and nothing is sent */
			FUZZ_ASSERT(op >= 0xc0 || r < 0);
			FUZZ_ASSERT(after.total == before.total);
		}
		if (eof && op < 0x40) {
			/* records after the peer's close_notify are ignored; our
			 * own data may still go (half-close) unless ours went */
			FUZZ_ASSERT(r < 0);
			FUZZ_ASSERT(after.total == before.total);
		}
		FUZZ_ASSERT(after.alerts <= 1);
		if (before.alerts)
			FUZZ_ASSERT(after.total == before.total);
		FUZZ_ASSERT(after.keyupdates <= asked + hs.requested);
		/* ended fatally, or the peer's close_notify came (our own only
		 * closes our side: the peer may still send, and re-key) */
		if (r == 1 && op < 0x40)
			FUZZ_ASSERT(conn(bio)->eof);
		dead = dead || conn(bio)->dead;
		eof = eof || conn(bio)->eof;
		FUZZ_ASSERT(conn(bio)->rx.st.rekeys <= conn(bio)->rx.st.keyupdates);
	}
	fake.ctrl_err = 0;
	fake.short_ctrl = 0;
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(a);
	close(b);
	return 0;
}
