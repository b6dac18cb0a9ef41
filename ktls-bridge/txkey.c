// SPDX-License-Identifier: MIT
/*
 * txkey.c - the TLS 1.3 transmit key once the kernel encrypts.
 *
 * The bridge, not libssl, knows which generation of the traffic secret
 * the kernel holds (c->tx.secret).  Each KeyUpdate that goes out moves the
 * kernel one generation on, in one of two ways:
 *
 *  - staged: generation N+1 was handed to the kernel beforehand with
 *    TLS_TX_NEXT (our kernel series); the kernel switches by itself right
 *    after it encrypts the record carrying the KeyUpdate.  We then stage
 *    N+2.  Staging happens before the KeyUpdate is sent, so a kernel that
 *    refuses it costs nothing: that KeyUpdate falls back to the other way.
 *  - set again: after the KeyUpdate record went out, TLS_TX is set with
 *    generation N+1 (the re-key UAPI of mainline 6.14).  A refusal here
 *    comes after the peer was told to expect the new key, so it ends the
 *    connection.
 *
 * A record under generation N+1 is never sent before the kernel has that
 * key with sequence 0, and no key is installed twice after records went
 * out under it, so no key/nonce pair is ever reused.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/crypto.h>

#include "internal.h"

/* RFC 8446 5.5: at most 2^24.5 full-size records under one AES-GCM key;
 * we stop at 2^24 and use the same bound for the other 128-bit block
 * ciphers (CCM, SM4, ARIA).  ChaCha20-Poly1305's bound is beyond reach. */
#define AEAD_RECORD_LIMIT (1ull << 24)
/* Read the kernel's record counter at least every this many flushes:
 * SSL_sendfile() records never pass through the BIO. */
#define KERNEL_SEQ_EVERY 64

void ktls_tx_before_handshake(struct ktls_conn *c)
{
	if (!c->tx.staged)
		ktls_key_stage(c, true);
}

static int rekey_failed(struct ktls_conn *c, int ret, const char *what)
{
	/* The peer now expects the new key and the kernel has the old one:
	 * nothing more can be sent correctly, not even an alert the peer
	 * could decrypt. */
	ktls_conn_fatal(c, true, KTLS_R_REKEY_FAILED, -ret, 0, what);
	return ret;
}

int ktls_tx_after_handshake(struct ktls_conn *c, int nku)
{
	struct ktls_dir *d = &c->tx;
	uint64_t gen = d->secret.gen, kernel_gen = gen, target;
	bool maybe_staged = false;
	struct ktls_keyblock kb;
	int ret;

	/* The kernel switches only on a KeyUpdate it found in the record: with
	 * none in it (tickets, say) there is nothing to ask.  A record whose
	 * messages did not parse (nku -1) may have held one. */
	if (d->staged && nku != 0) {
		ret = ktls_key_staged_consumed(c, true);
		if (ret == 1) {
			kernel_gen = gen + 1;
			d->st.staged_switches++;
		} else {
			maybe_staged = true;	/* still there, or cannot tell */
		}
	}
	/* The kernel only switches on a KeyUpdate it found, which the peer
	 * will find too: it is never ahead of what the peer expects. */
	target = gen + (uint64_t)(nku > 0 ? nku : 0);
	if (kernel_gen > target)
		target = kernel_gen;
	if (target == gen)
		return 0;	/* no KeyUpdate in this record */
	d->staged = false;
	if (!d->secret.len)
		return rekey_failed(c, -ENOKEY, "TLS_TX re-key (no key-log secret)");
	while (d->secret.gen < target) {
		ret = ktls_secret_next(&d->secret);
		if (ret)
			return rekey_failed(c, ret, "TLS_TX re-key");
	}
	if (kernel_gen != target) {
		/* A key left staged would later be switched to a second time. */
		ret = maybe_staged ? ktls_key_unstage(c, true) : 0;
		if (ret)
			return rekey_failed(c, ret, "TLS_TX_NEXT drop");
		ret = ktls_secret_keyblock(&d->secret, d->st.cipher, &kb);
		if (!ret) {
			ret = ktls_install_opt(c->fd, TLS_TX, &kb);
			d->st.key_calls++;
			ktls_keyblock_wipe(&kb);
		}
		if (ret)
			return rekey_failed(c, ret, "TLS_TX re-key");
	}
	d->st.rekeys++;
	d->since_ku = 0;
	ktls_key_stage(c, true);
	return 0;
}

/* The kernel's count of records sent under the current TX key.  The
 * kernel answers only a buffer of the cipher's exact struct size. */
static int kernel_tx_seq(struct ktls_conn *c, uint64_t *seq)
{
	unsigned char info[KTLS_MAX_INFO];
	socklen_t len;
	struct ktls_keyblock kb;
	int ret = 0;

	if (!c->tx.st.cipher)
		return -EINVAL;
	len = (socklen_t)c->tx.st.cipher->info_size;
	c->tx.st.key_calls++;
	if (ktls_sys->getsockopt(c->fd, SOL_TLS, TLS_TX, info, &len) < 0)
		ret = -errno;
	else
		ret = ktls_keyblock_from_info(&kb, info, len);
	OPENSSL_cleanse(info, sizeof(info));
	if (!ret) {
		*seq = 0;
		for (size_t i = 0; i < KTLS_SEQ_SIZE; i++)
			*seq = *seq << 8 | kb.seq[i];
	}
	ktls_keyblock_wipe(&kb);
	return ret;
}

static uint64_t record_limit(const struct ktls_conn *c)
{
	if (c->policy.keyupdate_records)
		return c->policy.keyupdate_records;
	if (c->tx.st.cipher && c->tx.st.cipher->kernel_id == TLS_CIPHER_CHACHA20_POLY1305)
		return 0;
	return AEAD_RECORD_LIMIT;
}

/* Our own KeyUpdate (update_not_requested, RFC 8446 4.6.3) now: the
 * records under this key reached the limit. */
static int keyupdate_now(struct ktls_conn *c)
{
	static const uint8_t ku[5] = { KTLS_HS_KEY_UPDATE, 0, 0, 1, 0 };
	struct ktls_dir *d = &c->tx;
	ssize_t n;

	if (ktls_owed_has(c, KTLS_CT_HANDSHAKE))
		return 0;	/* a KeyUpdate waits for the application: it resets the count */
	if (!ktls_probe_basic()->rekey || !d->secret.len) {
		/* The kernel could not follow a KeyUpdate: RFC 8446 5.5 asks
		 * for one (SHOULD), but going on beats ending the connection. */
		ktls_trace("fd %d at the record limit and cannot re-key (%s)", c->fd,
			   d->secret.len ? "kernel" : "no key-log secret");
		d->no_proactive = true;
		return 0;
	}
	if (!d->lib_behind) {
		/* from here libssl's own KeyUpdates count from this generation */
		d->lib = d->secret;
		d->lib_behind = true;
	}
	ktls_tx_before_handshake(c);
	n = ktls_send_ctrl(c, KTLS_CT_HANDSHAKE, ku, sizeof(ku));
	if (n < 0)
		return (int)n;	/* nothing went out: tried again on the next write */
	if (n == 0)	/* owed: counted and re-keyed when the application sent it */
		return 0;
	d->st.records++;
	d->st.keyupdates++;
	ktls_trace("fd %d KeyUpdate sent after %llu records", c->fd,
		   (unsigned long long)d->since_ku);
	return ktls_tx_after_handshake(c, 1);
}

int ktls_tx_maybe_keyupdate(struct ktls_conn *c)
{
	struct ktls_dir *d = &c->tx;
	uint64_t limit = record_limit(c), seq;

	if (d->st.version != KTLS_TLS13 || !limit || d->no_proactive)
		return 0;
	/* Every record written through here is counted (since_ku); records
	 * that bypass the BIO (SSL_sendfile, the application's own writes
	 * after a hand-off) are counted at the flushes before them.  The
	 * kernel's count is read only to confirm the limit. */
	if (d->since_ku < limit)
		return 0;
	if (kernel_tx_seq(c, &seq) == 0)
		d->since_ku = seq;	/* the kernel's count wins over ours */
	if (d->since_ku < limit)
		return 0;
	return keyupdate_now(c);
}

/*
 * SSL_sendfile() records go from the file to the kernel without passing
 * the BIO; libssl flushes the BIO before each call, so the flush is where
 * they can be counted, from the kernel's record sequence.  Reading it on
 * every flush would cost a syscall per SSL_sendfile(): it is read when the
 * most records seen between two flushes so far could bring the count to
 * half-way to the limit, at the latest every KERNEL_SEQ_EVERY flushes, and
 * on every flush while no rate is known.  libssl also flushes at the
 * end of each handshake flight (the tickets after the handshake, a
 * KeyUpdate), with SSL_in_init() true: those flushes say nothing about
 * SSL_sendfile() and are not counted, nor is the flush after close_notify
 * or a fatal alert.  The first counted flush only sets
 * a base, from the BIO's own count of the records it wrote under this key
 * (tickets, headers; no syscall: a server pays it on every connection):
 * what came before says nothing about what one call sends.  The flush
 * comes before the call, so one call's records can pass the limit before
 * the KeyUpdate goes out.
 */
int ktls_tx_flush(struct ktls_conn *c)
{
	struct ktls_dir *d = &c->tx;
	uint64_t limit = record_limit(c), seq, grown, rate, next;

	if (d->st.version != KTLS_TLS13 || !limit || d->no_proactive)
		return 0;
	if (c->ssl && SSL_in_init(c->ssl))
		return 0;
	if (c->wr_shut || c->dead)
		return 0;	/* the last record is out (libssl flushes after close_notify) */
	if (!d->flush_based) {
		d->flush_based = true;
		d->flushes = 0;
		d->flush_seq = d->since_ku;
		d->flush_next = 1;
		return 0;
	}
	if (++d->flushes < d->flush_next)
		return 0;
	if (kernel_tx_seq(c, &seq))
		return 0;	/* no count: the writes' own check still runs */
	/* a re-key since the last reading restarted the count at 0 */
	grown = seq >= d->flush_seq ? seq - d->flush_seq : seq;
	rate = (grown + d->flushes - 1) / d->flushes;
	if (rate > d->flush_rate)
		d->flush_rate = rate;
	d->flushes = 0;
	d->flush_seq = seq;
	d->since_ku = seq;
	if (seq >= limit) {
		int ret = keyupdate_now(c);

		if (ret) {
			d->flush_next = 1;	/* the retry's flush reads again */
			return ret;
		}
		d->flush_seq = 0;
		seq = 0;
	}
	next = d->flush_rate ? (limit - seq) / (2 * d->flush_rate) : 1;
	d->flush_next = (unsigned int)(next < 1 ? 1 : next > KERNEL_SEQ_EVERY ? KERNEL_SEQ_EVERY : next);
	return 0;
}
