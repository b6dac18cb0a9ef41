// SPDX-License-Identifier: MIT
/*
 * bio-rx-test: the bridge's receive side against the fake kernel
 * (fakekernel.h), which hands it records as a kTLS socket would.
 *
 * The peer's KeyUpdate: with the 6.14 UAPI (EKEYEXPIRED until TLS_RX is
 * set again) and pre-staged (TLS_RX_NEXT, the kernel switches at once);
 * libssl 3.2+ re-offering keys on and off the chain; split, coalesced
 * and malformed KeyUpdates and the alert each gets; a refused re-key; the
 * KeyUpdate storm guard.  TLS_RX_EXPECT_NO_PAD by policy and version.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridgetest.h"
#include "ktest.h"

static void p_storm3(struct ktls_policy *p) { p->storm_limit = 3; }
static void p_no_guard(struct ktls_policy *p) { p->storm_limit = p->keyupdate_burst = 0; }

/* n reads of the KeyUpdate record the fake kernel delivers (fake_record),
 * each a whole record: header and the 5-byte message. */
static void read_keyupdates(BIO *bio, int n)
{
	uint8_t buf[KTLS_REC_HDR + KTLS_REC_MAX];

	for (int i = 0; i < n; i++)
		CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
}

static void case_rx_rekey(void)
{
	static const uint8_t ku[] = { 24, 0, 0, 1, 0 };
	static const uint8_t two[] = { 24, 0, 0, 1, 0, 24, 0, 0, 1, 1 };
	const size_t isz = ktls_cipher_by_name("AES-128-GCM")->info_size;
	uint8_t s0[32], info[KTLS_MAX_INFO], buf[KTLS_REC_HDR + KTLS_REC_MAX];
	int a, b;
	BIO *bio;

	memset(s0, 0x77, sizeof(s0));
	gen_info(s0, 0, info);

	/* 6.14 UAPI: KeyUpdate handed up, then EKEYEXPIRED until TLS_RX */
	bio = rx_bridge(&a, &b, s0, false, NULL);
	fake_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
	CHECK_EQ(buf[0], KTLS_CT_HANDSHAKE);
	CHECK_EQ(fake.rx_pending, 1);
	fake_record(KTLS_CT_APPDATA, "hello", 5);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);	/* no EKEYEXPIRED */
	CHECK(!memcmp(buf + KTLS_REC_HDR, "hello", 5));
	CHECK_EQ(fake.rx_sets[a], 2);
	gen_info(s0, 1, info);
	CHECK(!memcmp(fake.last_rx, info, isz));
	CHECK_EQ(conn(bio)->rx.st.rekeys, 1);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 1);
	CHECK_EQ(conn(bio)->rx.st.staged_switches, 0);
	/* 3.2+ offers generation 1 again after the KeyUpdate: already there */
	CHECK_EQ(offer_gen(bio, s0, 1, false), 1);
	CHECK_EQ(fake.rx_sets[a], 2);
	/* ... or offers generation 2 before the kernel asked: installed */
	CHECK_EQ(offer_gen(bio, s0, 2, false), 1);
	CHECK_EQ(fake.rx_sets[a], 3);
	gen_info(s0, 2, info);
	CHECK(!memcmp(fake.last_rx, info, isz));
	/* a key off the chain is not trusted: the connection ends */
	CHECK_EQ(offer_gen(bio, s0, 5, false), 0);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_KEY_MISMATCH);
	CHECK_EQ(fake.ctrl_type[0], KTLS_CT_ALERT);
	CHECK(!memcmp(fake.ctrl_data[0], "\x02\x50", 2));	/* fatal internal_error */
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	bridge_close(bio, a, b);

	/* pre-staged: the kernel switches at once, no EKEYEXPIRED, no TLS_RX */
	bio = rx_bridge(&a, &b, s0, true, NULL);
	fake_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
	CHECK_EQ(fake.rx_pending, 0);
	CHECK_EQ(fake.rx_switches, 1);
	CHECK_EQ(fake.rx_sets[a], 1);
	gen_info(s0, 1, info);
	CHECK(!memcmp(fake.last_rx, info, isz));
	CHECK_EQ(conn(bio)->rx.st.staged_switches, 1);
	/* the next key is staged after the first data record, not before it */
	CHECK(!fake.staged_rx);
	fake_record(KTLS_CT_APPDATA, "hello", 5);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
	CHECK(!fake.staged_rx);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
	gen_info(s0, 2, info);
	CHECK(fake.staged_rx && !memcmp(fake.staged_rx_info, info, isz));
	CHECK_EQ(conn(bio)->rx.st.key_expired, 0);
	/* 3.2+ re-offer of what the kernel holds: nothing to do */
	CHECK_EQ(offer_gen(bio, s0, 1, false), 1);
	CHECK_EQ(fake.rx_sets[a], 1);
	/* a KeyUpdate split across two records is one KeyUpdate */
	fake_record(KTLS_CT_HANDSHAKE, ku, 2);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 2);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 1);
	fake_record(KTLS_CT_HANDSHAKE, ku + 2, 3);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 3);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 2);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_NONE);
	/* two in one record: the first does not end its record (RFC 8446
	 * 5.1): fatal unexpected_message */
	CHECK_EQ(fake.nctrl, 0);
	fake_record(KTLS_CT_HANDSHAKE, two, sizeof(two));
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_PROTOCOL);
	CHECK_EQ(fake.nctrl, 1);
	CHECK(!memcmp(fake.ctrl_data[0], "\x02\x0a", 2));
	bridge_close(bio, a, b);

	/* malformed KeyUpdates: illegal_parameter, decode_error; and a record
	 * of another type inside a split handshake message */
	{
		static const struct { uint8_t rec[8]; size_t len; uint8_t alert; } bad[] = {
			{ { 24, 0, 0, 1, 2 }, 5, 47 },
			{ { 24, 0, 0, 2, 0, 0 }, 6, 50 },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			bio = rx_bridge(&a, &b, s0, false, NULL);
			fake_record(KTLS_CT_HANDSHAKE, bad[i].rec, bad[i].len);
			CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
			CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_PROTOCOL);
			CHECK_EQ(fake.nctrl, 1);
			CHECK_EQ(fake.ctrl_data[0][1], bad[i].alert);
			bridge_close(bio, a, b);
		}
		bio = rx_bridge(&a, &b, s0, false, NULL);
		fake_record(KTLS_CT_HANDSHAKE, ku, 3);
		CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 3);
		fake_record(KTLS_CT_APPDATA, "xy", 2);
		CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
		CHECK_EQ(fake.ctrl_data[0][1], 10);
		bridge_close(bio, a, b);
	}

	/* FAULT: TLS_RX refused after a KeyUpdate: alert (TX still works), end */
	bio = rx_bridge(&a, &b, s0, false, NULL);
	fake_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), KTLS_REC_HDR + 5);
	fake.rekey_err = ENOMEM;
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_REKEY_FAILED);
	CHECK_EQ(conn(bio)->rx.st.err, ENOMEM);
	CHECK_EQ(fake.nctrl, 1);
	CHECK(!memcmp(fake.ctrl_data[0], "\x02\x50", 2));
	bridge_close(bio, a, b);

	/* storm guard: the 4th KeyUpdate within a second (limit 3) ends it */
	bio = rx_bridge(&a, &b, s0, true, p_storm3);
	fake_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	read_keyupdates(bio, 3);
	CHECK_EQ(fake.nctrl, 0);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	CHECK_EQ(errno, EPROTO);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_KEYUPDATE_STORM);
	CHECK_EQ(fake.nctrl, 1);
	CHECK_EQ(fake.ctrl_type[0], KTLS_CT_ALERT);
	CHECK(!memcmp(fake.ctrl_data[0], "\x02\x0a", 2));	/* fatal unexpected_message */
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);	/* and nothing after */
	bridge_close(bio, a, b);

	/* the limit is per second: once the window is over (moved back here
	 * rather than slept through) three more pass, and the fourth ends it */
	bio = rx_bridge(&a, &b, s0, true, p_storm3);
	fake_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	read_keyupdates(bio, 3);
	conn(bio)->rx.storm_start -= 1000000000ull;
	read_keyupdates(bio, 3);
	CHECK_EQ(fake.nctrl, 0);
	CHECK_EQ(BIO_read(bio, buf, sizeof(buf)), -1);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_KEYUPDATE_STORM);
	bridge_close(bio, a, b);

	/* storm_limit = 0 and keyupdate_burst = 0 turn the guard off */
	bio = rx_bridge(&a, &b, s0, true, p_no_guard);
	fake_record(KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	read_keyupdates(bio, 100);
	CHECK_EQ(fake.nctrl, 0);
	CHECK_EQ(conn(bio)->rx.st.keyupdates, 100);
	CHECK_EQ(conn(bio)->rx.st.reason, KTLS_R_NONE);
	bridge_close(bio, a, b);
}

static void nopad_on(struct ktls_policy *p)
{
	p->rx_expect_no_pad = true;
}

/* rx_expect_no_pad: TLS_RX_EXPECT_NO_PAD once TLS 1.3 RX is the kernel's,
 * never for TX, TLS 1.2 or when the policy is off; a kernel refusing it
 * leaves RX offloaded. */
static void case_rx_expect_no_pad(void)
{
	static const struct {
		void (*tweak)(struct ktls_policy *);
		uint16_t version;
		int err, sets;
	} runs[] = {
		{ nopad_on, KTLS_TLS13, 0, 1 },
		{ NULL, KTLS_TLS13, 0, 0 },
		{ nopad_on, KTLS_TLS12, 0, 0 },
		{ nopad_on, KTLS_TLS13, ENOPROTOOPT, 0 },
	};
	int a, b;
	BIO *bio;

	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		fake_reset_rekey(false);	/* TLS 1.3 offloads */
		fake.nopad_err = runs[i].err;
		fake_pair(&a, &b);
		bio = bridge(a, runs[i].tweak);
		CHECK_EQ(offer(bio, "AES-128-GCM", runs[i].version, true), 1);
		CHECK_EQ(fake.nopad_sets[a], 0);
		CHECK_EQ(offer(bio, "AES-128-GCM", runs[i].version, false), 1);
		CHECK_EQ(fake.nopad_sets[a], runs[i].sets);
		CHECK_EQ(conn(bio)->rx.st.mode, KTLS_MODE_KERNEL_SW);
		bridge_close(bio, a, b);
	}
}

int main(void)
{
	RUN(case_rx_rekey);
	RUN(case_rx_expect_no_pad);
	ktls_sys_set(NULL);
	return ktest_done("bio-rx-test");
}
