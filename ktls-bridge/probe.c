// SPDX-License-Identifier: MIT
/*
 * probe.c - what the running kernel and its NICs can offload.
 *
 * Everything is tried for real on loopback TCP pairs: attach the "tls"
 * ULP, install every cipher x version x direction from the cipher table,
 * set TLS 1.3 TLS_TX twice (re-key), stage a next key (our kernel
 * series), and ask each interface for its TLS offload features.
 */
#include "config.h"

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>

#include "internal.h"

#define PROBE_MAX_SOCKS (2 * KTLS_PROBE_MAX_CIPHERS + 2)

struct probe_ctx {
	int lsn;
	struct sockaddr_in addr;
	int socks[2 * PROBE_MAX_SOCKS];
	size_t nsocks;
};

static int pair_new(struct probe_ctx *pc, int *cli)
{
	int c, s;

	if (pc->nsocks + 2 > sizeof(pc->socks) / sizeof(pc->socks[0]))
		return -ENOSPC;
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0)
		return -errno;
	if (connect(c, (struct sockaddr *)&pc->addr, sizeof(pc->addr)) < 0) {
		int e = -errno;

		close(c);
		return e;
	}
	s = accept4(pc->lsn, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0) {
		int e = -errno;

		close(c);
		return e;
	}
	pc->socks[pc->nsocks++] = c;
	pc->socks[pc->nsocks++] = s;
	*cli = c;
	return 0;
}

static int probe_listen(struct probe_ctx *pc)
{
	socklen_t alen = sizeof(pc->addr);

	pc->lsn = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (pc->lsn < 0)
		return -errno;
	memset(&pc->addr, 0, sizeof(pc->addr));
	pc->addr.sin_family = AF_INET;
	pc->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(pc->lsn, (struct sockaddr *)&pc->addr, sizeof(pc->addr)) < 0 ||
	    listen(pc->lsn, 4) < 0 ||
	    getsockname(pc->lsn, (struct sockaddr *)&pc->addr, &alen) < 0)
		return -errno;
	return 0;
}

/* A fresh ULP-attached client socket, or -errno from the ULP. */
static int ulp_sock(struct probe_ctx *pc, int *fd)
{
	int ret = pair_new(pc, fd);

	if (ret)
		return ret;
	if (ktls_sys->setsockopt(*fd, IPPROTO_TCP, TCP_ULP, "tls", 3) < 0)
		return -errno;
	return 0;
}

static void dummy_keyblock(struct ktls_keyblock *kb, const struct ktls_cipher *c,
			   uint16_t version)
{
	memset(kb, 0x5a, sizeof(*kb));
	kb->version = version;
	kb->cipher = c;
	memset(kb->seq, 0, sizeof(kb->seq));
}

static int set_int(int fd, int opt)
{
	int one = 1;

	return ktls_sys->setsockopt(fd, SOL_TLS, opt, &one, sizeof(one)) < 0 ? errno : 0;
}

void ktls_nic_features(struct ktls_nic *nic, const char *names, uint32_t n,
		       uint32_t names_len, const uint32_t *active, uint32_t nwords)
{
	uint32_t i, count = names_len < n ? names_len : n;

	for (i = 0; i < count && i / 32 < nwords; i++) {
		const char *s = names + (size_t)i * ETH_GSTRING_LEN;
		bool on = active[i / 32] & (1u << (i % 32));

		if (!strncmp(s, "tls-hw-tx-offload", ETH_GSTRING_LEN))
			nic->hw_tx = on;
		else if (!strncmp(s, "tls-hw-rx-offload", ETH_GSTRING_LEN))
			nic->hw_rx = on;
	}
}

static void probe_nics(struct ktls_caps *caps)
{
	struct if_nameindex *ifs = if_nameindex(), *it;
	int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (!ifs || sk < 0)
		goto out;
	for (it = ifs; it->if_index && caps->n_nics < KTLS_PROBE_MAX_NICS; it++) {
		struct ktls_nic *nic = &caps->nics[caps->n_nics++];
		struct {
			struct ethtool_sset_info hdr;
			uint32_t len;
		} sset = { .hdr = { .cmd = ETHTOOL_GSSET_INFO,
				    .sset_mask = 1ull << ETH_SS_FEATURES } };
		struct ethtool_gstrings *strs = NULL;
		struct ethtool_gfeatures *feat = NULL;
		uint32_t *active = NULL;
		struct ifreq ifr;
		uint32_t n, blocks, i;

		memset(&ifr, 0, sizeof(ifr));
		snprintf(nic->name, sizeof(nic->name), "%s", it->if_name);
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", it->if_name);
		ifr.ifr_data = (void *)&sset;
		if (ioctl(sk, SIOCETHTOOL, &ifr) < 0 || !sset.hdr.sset_mask) {
			nic->err = -errno;
			continue;
		}
		n = sset.len;
		blocks = (n + 31) / 32;
		strs = calloc(1, sizeof(*strs) + (size_t)n * ETH_GSTRING_LEN);
		feat = calloc(1, sizeof(*feat) + blocks * sizeof(feat->features[0]));
		active = calloc(blocks ? blocks : 1, sizeof(*active));
		if (!strs || !feat || !active) {
			nic->err = -ENOMEM;
			goto next;
		}
		strs->cmd = ETHTOOL_GSTRINGS;
		strs->string_set = ETH_SS_FEATURES;
		strs->len = n;
		ifr.ifr_data = (void *)strs;
		if (ioctl(sk, SIOCETHTOOL, &ifr) < 0) {
			nic->err = -errno;
			goto next;
		}
		feat->cmd = ETHTOOL_GFEATURES;
		feat->size = blocks;
		ifr.ifr_data = (void *)feat;
		if (ioctl(sk, SIOCETHTOOL, &ifr) < 0) {
			nic->err = -errno;
			goto next;
		}
		for (i = 0; i < blocks; i++)
			active[i] = feat->features[i].active;
		ktls_nic_features(nic, (const char *)strs->data, n, strs->len, active, blocks);
next:
		free(strs);
		free(feat);
		free(active);
	}
out:
	if (ifs)
		if_freenameindex(ifs);
	if (sk >= 0)
		close(sk);
}

/*
 * full: every cipher x version x direction, zerocopy and no-pad.
 * !full: what the bridge needs before a hand-off - the ULP, and TLS 1.3
 * re-key / pre-stage on the first TLS 1.3 cipher the kernel takes.  Each
 * cipher the kernel lacks costs a module request (a modprobe exec), so the
 * bridge leaves those to the kernel's answer at install time.
 */
static void probe_run(struct ktls_caps *caps, bool full)
{
	struct probe_ctx pc = { .lsn = -1 };
	struct ktls_keyblock kb;
	struct utsname u;
	struct timespec t0, t1;
	int sock12 = -1, sock13 = -1, fd = -1, ret;
	bool fresh = false;
	size_t i;
	int v;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(caps, 0, sizeof(*caps));
	if (uname(&u) == 0)
		snprintf(caps->kernel, sizeof(caps->kernel), "%s", u.release);
	probe_nics(caps);

	ret = probe_listen(&pc);
	if (!ret)
		ret = ulp_sock(&pc, &fd);
	caps->ulp = ret == 0;
	caps->ulp_err = -ret;
	fresh = caps->ulp;
	for (i = 0; i < ktls_cipher_count(); i++) {
		const struct ktls_cipher *c = ktls_cipher_at(i);

		for (v = 0; v < 2; v++) {
			uint16_t ver = v ? KTLS_TLS13 : KTLS_TLS12;
			int tx, rx;

			if (!caps->ulp) {
				caps->tx_err[i][v] = caps->rx_err[i][v] = caps->ulp_err;
				continue;
			}
			if (!full && (v == 0 || sock13 >= 0)) {
				caps->tx_err[i][v] = caps->rx_err[i][v] = EAGAIN;	/* not probed */
				continue;
			}
			if (!fresh && (ret = ulp_sock(&pc, &fd))) {
				caps->tx_err[i][v] = caps->rx_err[i][v] = -ret;
				continue;
			}
			/* ENOENT means the kernel has no AEAD for this cipher; both
			 * directions and versions use the same one, and each attempt
			 * costs a module request, so it is not asked again. */
			if (v == 1 && caps->tx_err[i][0] == ENOENT && ktls_cipher_allows(c, ver)) {
				caps->tx_err[i][v] = caps->rx_err[i][v] = ENOENT;
				continue;
			}
			dummy_keyblock(&kb, c, ver);
			tx = -ktls_install_opt(fd, TLS_TX, &kb);
			rx = tx == ENOENT ? ENOENT : -ktls_install_opt(fd, TLS_RX, &kb);
			caps->tx_err[i][v] = tx;
			caps->rx_err[i][v] = rx;
			fresh = tx && rx;	/* nothing installed: reuse it */
			if (!tx && !rx && v == 0 && sock12 < 0)
				sock12 = fd;
			if (!tx && !rx && v == 1 && sock13 < 0)
				sock13 = fd;
		}
	}

	caps->rekey_err = caps->prestage_err = caps->ulp ? EOPNOTSUPP : caps->ulp_err;
	caps->zerocopy_err = caps->rx_no_pad_err = caps->rekey_err;
	if (sock13 >= 0) {
		const struct ktls_cipher *c = ktls_cipher_at(0);

		for (i = 0; i < ktls_cipher_count(); i++)
			if (!caps->tx_err[i][1] && !caps->rx_err[i][1]) {
				c = ktls_cipher_at(i);
				break;
			}
		dummy_keyblock(&kb, c, KTLS_TLS13);
		caps->rekey_err = -ktls_install_opt(sock13, TLS_TX, &kb);
		caps->prestage_err = -ktls_install_opt(sock13, TLS_TX_NEXT, &kb);
		caps->rx_no_pad_err = full ? set_int(sock13, TLS_RX_EXPECT_NO_PAD) : EAGAIN;
	}
	if (sock12 >= 0)
		caps->zerocopy_err = set_int(sock12, TLS_TX_ZEROCOPY_RO);
	else if (!full && caps->ulp)
		caps->zerocopy_err = EAGAIN;
	caps->rekey = !caps->rekey_err;
	caps->prestage = !caps->prestage_err;
	caps->zerocopy_tx = !caps->zerocopy_err;
	caps->rx_no_pad = !caps->rx_no_pad_err;
	ktls_keyblock_wipe(&kb);

	for (i = 0; i < pc.nsocks; i++)
		close(pc.socks[i]);
	if (pc.lsn >= 0)
		close(pc.lsn);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	caps->probe_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull +
			 (uint64_t)(t1.tv_nsec - t0.tv_nsec);
}

/* Every result ever handed out stays valid for the process's lifetime. */
struct caps_node {
	struct ktls_caps caps;
	bool full;
	struct caps_node *older;
};

static _Atomic(struct caps_node *) current;
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;

static const struct ktls_caps *probe_store(bool force, bool full)
{
	struct caps_node *n;

	pthread_mutex_lock(&probe_lock);
	n = atomic_load(&current);
	if (!n || force || (full && !n->full)) {
		struct caps_node *fresh = calloc(1, sizeof(*fresh));

		if (fresh) {
			probe_run(&fresh->caps, full);
			fresh->full = full;
			fresh->older = n;
			atomic_store(&current, fresh);
			n = fresh;
		}
	}
	pthread_mutex_unlock(&probe_lock);
	if (!n) {
		static struct ktls_caps oom = { .ulp_err = ENOMEM };

		return &oom;
	}
	return &n->caps;
}

const struct ktls_caps *ktls_probe(void)
{
	struct caps_node *n = atomic_load(&current);

	return n && n->full ? &n->caps : probe_store(false, true);
}

const struct ktls_caps *ktls_probe_refresh(void)
{
	return probe_store(true, true);
}

const struct ktls_caps *ktls_probe_basic(void)
{
	struct caps_node *n = atomic_load(&current);

	return n ? &n->caps : probe_store(false, false);
}

bool ktls_caps_supports(const struct ktls_caps *caps, const struct ktls_cipher *c,
				    uint16_t version, bool tx)
{
	size_t i;
	int v;

	if (!caps || !c || !caps->ulp)
		return false;
	i = ktls_cipher_index(c);
	if (i >= ktls_cipher_count())
		return false;
	v = version == KTLS_TLS13 ? 1 : 0;
	if (version != KTLS_TLS12 && version != KTLS_TLS13)
		return false;
	return tx ? caps->tx_err[i][v] == 0 : caps->rx_err[i][v] == 0;
}

__attribute__((destructor)) static void probe_release(void)
{
	struct caps_node *n = atomic_exchange(&current, NULL);

	while (n) {
		struct caps_node *older = n->older;

		free(n);
		n = older;
	}
}
