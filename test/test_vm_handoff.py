"""Hand-off mode on our patched 6.12 kernel and on Debian's stock 7.x: after
the handshake the bridge
gives the kernel both directions (the TLS 1.3 receive key too, which
OpenSSL 3.0 never offers) and the applications move the data on the socket
themselves.  KeyUpdates in both directions are run by the bridge: received
ones move the kernel's RX key (a staged switch, or TLS_RX set again after
EKEYEXPIRED with prestage = off), requested ones are answered with our own
KeyUpdate and a TX re-key.  Peers: ktls-client --handoff, and stock
gnutls-cli (^rekey^ / ^rekey1^) and openssl s_client (k / K).  The
kernel's counters in /proc/net/tls_stat prove every re-key.

On debian-7 (mainline's re-key, no TLS_RX_NEXT/TLS_TX_NEXT) the probe says
prestage false, so every received KeyUpdate is an EKEYEXPIRED and TLS_RX
set again, every sent one TLS_TX set again, whatever the policy: the
"staged" runs count as set-again runs there, and that kernel's tls_stat
has no *StagedSwitch counters at all.  One boot per kernel runs it all;
the debian-6.1 part (no re-key) is at the end."""

import json

import pytest

from helpers import GUEST_PROVIDER_CONF, GUEST_SH
from vm_helpers import (REKEY_KERNELS, STAGED_KERNELS, app_fill, nonzero, prefix_sha256,
                        run_guest_script, stat_delta, staged_switches)

pytestmark = pytest.mark.vm

KERNELS = REKEY_KERNELS

GUEST = GUEST_PROVIDER_CONF + r"""
set -e
cd /root
# the long runs send a requested KeyUpdate every 4 records, at the default
# storm guard (data between them: never a storm)
conf staged ""
conf setagain "prestage = off"
conf ratelimit "storm_limit = 50"
conf nopad "rx_expect_no_pad = on"
C=certs/cert.pem; K=certs/key.pem
serve() {  # NAME PORT CONF ARGS...
    n=$1; p=$2; cf=$3; shift 3
    OPENSSL_CONF=$cf ktls-serve --cert $C --key $K --port $p --echo --handoff --json \
        --max-conns 1 "$@" > $n.serve 2> $n.serr &
    waitlisten $n.serr
}
report() { sed "s/^/SERVE $1 /" $1.serve; [ -s $1.c ] && echo "CLIENT $1 $(cat $1.c)"; true; }
# The stock-peer feeders wait for events (GUEST_SH: waitsize, waitstat),
# never for time: tls_stat's TlsRxRekeyReceived moves when the server's
# kernel received a KeyUpdate (no other socket here receives any)

# 1. one connection, 64 MiB each way, a requested KeyUpdate every 4 records
for mode in staged setagain; do
    cf=/root/$mode.cnf
    stats long-$mode.before
    serve long-$mode 4433 $cf
    OPENSSL_CONF=$cf ktls-client --handoff --json --tls1_3 --bytes 64M --timeout 300 \
        --keyupdate-every 4 --keyupdate-requested 127.0.0.1:4433 > long-$mode.c || true
    wait
    stats long-$mode.after
    report long-$mode
done

# 1b. the storm guard's rate bound (storm_limit = 50 a second here): a
# KeyUpdate with every record, data between them (the burst bound never
# trips), several hundred a second under TCG
stats storm.before
serve storm 4437 /root/ratelimit.cnf
ktls-client --handoff --json --tls1_3 --bytes 16M --keyupdate-every 1 \
    127.0.0.1:4437 > storm.c 2> storm.cerr || true
wait
stats storm.after
report storm

# 2. TLS 1.2: both directions were the kernel's already
serve tls12 4434 /dev/null
ktls-client --handoff --json --tls1_2 --bytes 8M 127.0.0.1:4434 > tls12.c || true
wait
report tls12

# 2b. rx_expect_no_pad = on: both ends ask the kernel to decrypt TLS 1.3
# records expecting no padding, with KeyUpdates re-keying RX under it
stats nopad.before
serve nopad 4438 /root/nopad.cnf
OPENSSL_CONF=/root/nopad.cnf ktls-client --handoff --json --tls1_3 --bytes 8M \
    --keyupdate-every 64 --keyupdate-requested 127.0.0.1:4438 > nopad.c || true
wait
stats nopad.after
report nopad

# 3. stock gnutls-cli with inline ^rekey^ (both) and ^rekey1^ (its own).
# GnuTLS takes at most 8 KeyUpdates from its peer within a second (more
# ends its connection), and the feeder goes as fast as the events allow:
# 16 rekeys, so the server answers 8 ^rekey^ at most
i=0; : > gnutls.in
while [ $i -lt 16 ]; do
    j=0
    while [ $j -lt 25 ]; do printf 'gnutls line %04d.%02d %s\n' $i $j \
        abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789 >> gnutls.in
        j=$((j+1)); done
    [ $((i % 2)) = 0 ] && echo '^rekey^' >> gnutls.in || echo '^rekey1^' >> gnutls.in
    i=$((i+1))
done
grep -v '^^rekey' gnutls.in > gnutls.expect
stats gnutls.before
serve gnutls 4435 /dev/null
# the next line goes once the server's kernel has the KeyUpdate
: > gnutls.out
feedrekeys gnutls.in gnutls.expect gnutls.out TlsRxRekeyReceived |
    gnutls-cli --logfile gnutls.log --insecure --inline-commands -p 4435 127.0.0.1 \
    > gnutls.out 2> gnutls.err || true
wait
stats gnutls.after
report gnutls
echo "GNUTLS - {\"expect\":\"$(sha256sum < gnutls.expect | cut -d' ' -f1)\",\"got\":\"$(sha256sum < gnutls.out | cut -d' ' -f1)\",\"rekeys\":$(grep -c '^\^rekey' gnutls.in)}"

# 4. stock openssl s_client with K lines (KeyUpdate, update_requested)
: > sc.expect
stats sclient.before
serve sclient 4436 /dev/null
# s_client takes a command only when a read of its stdin starts with it:
# a K goes once the echo of everything before it is back, and the next
# data once the server's kernel has that KeyUpdate.  Data follows the last
# K too, so every request's answer is due (the bridge answers before its
# next data, RFC 8446 4.6.3)
: > sc.out; : > sc.k
base=$(tlsstat TlsRxRekeyReceived)
i=0
(while [ $i -le 10 ]; do
    j=0
    while [ $j -lt 50 ]; do printf 's_client line %04d.%02d %s\n' $i $j \
        abcdefghijklmnopqrstuvwxyz0123456789 | tee -a sc.expect; j=$((j+1)); done
    waitsize sc.out $(wc -c < sc.expect)
    if [ $i -lt 10 ]; then
        echo K; echo K >> sc.k
        waitstat TlsRxRekeyReceived $((base + $(wc -l < sc.k)))
    fi
    i=$((i+1))
done) | openssl s_client -connect 127.0.0.1:4436 -tls1_3 -quiet -no_ign_eof \
    > sc.out 2> sc.err || true
wait
stats sclient.after
report sclient
echo "SCLIENT - {\"expect\":\"$(sha256sum < sc.expect | cut -d' ' -f1)\",\"got\":\"$(sha256sum < sc.out | cut -d' ' -f1)\",\"keyupdates\":$(wc -l < sc.k)}"

# 5. the re-key benchmark runs here (its counts are checked, not its times)
ktls-rekey-bench --bytes 4M --runs 1 > bench.out 2> bench.err || echo "bench failed: $?"
sed 's/^/BENCH /' bench.out
# 6. ktls-bench, every path once (its paths are checked, not its numbers)
ktls-bench --tls1_3 --bytes 4M --runs 1 > kb.out 2> kb.err || echo "ktls-bench failed: $?"
sed 's/^/KBENCH /' kb.out
"""


KBENCH_PATHS = ("socket", "ossl-ktls", "bridge", "userspace", "sendfile")


def parse(out):
    res = {"BENCH": {}, "KBENCH": {}}
    for line in out.splitlines():
        if line.startswith("KBENCH "):
            cols = line.split()[1:]
            if len(cols) == 9 and cols[0] in KBENCH_PATHS:
                res["KBENCH"][cols[0]] = dict(zip(("tx", "rx"), cols[1:3]),
                                              mbs=float(cols[7]), ratio=float(cols[8]))
            continue
        if line.startswith("BENCH "):
            cols = line.split()[1:]
            if len(cols) == 9 and cols[0] in ("staged", "setagain", "userspace"):
                res["BENCH"][cols[0]] = dict(zip(
                    ("kus", "stall_us", "read_us", "calls", "ekeyexpired", "mbs_ku", "mbs_0",
                     "ratio"), [float(x) for x in cols[1:]]))
            continue
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] in ("STAT", "SERVE", "CLIENT", "GNUTLS", "SCLIENT"):
            res[(parts[0], parts[1])] = json.loads(parts[2])
    return res


@pytest.fixture(scope="module", params=KERNELS)
def guest(vm_platform, tmp_path_factory, request):
    kernel = request.param
    r = run_guest_script(tmp_path_factory.mktemp("handoff"), GUEST, kernel, timeout=900)
    assert r[0] == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = parse(r.stdout)
    res["_text"] = r.stdout + r.stderr
    res["_kernel"] = kernel
    return res


def staged_kernel(guest):
    return guest["_kernel"] in STAGED_KERNELS


def staged_counters(guest, d):
    """(TlsTxStagedSwitch, TlsRxStagedSwitch) moved; where the kernel has
    no staged keys the counters must not exist, and count as 0."""
    return tuple(staged_switches(d, way, staged_kernel(guest)) for way in ("tx", "rx"))


@pytest.mark.parametrize("mode", ["staged", "setagain"])
def test_handoff_thousand_keyupdates_each_way(guest, mode):
    name = "long-" + mode
    c, s, d = guest[("CLIENT", name)], guest[("SERVE", name)], stat_delta(guest, name)
    print("\n[vm_handoff] %s: tls_stat %s\n  client %s\n  server %s"
          % (name, nonzero(d), c["status"], s["status"]))
    assert c["handoff"] is True and s["handoff"] is True, guest["_text"][-3000:]
    assert c["ok"] and c["bytes_sent"] == c["bytes_received"] == 64 << 20
    assert c["sha256_sent"] == c["sha256_received"] == s["sha256_in"]
    n = c["keyupdates_sent"]
    assert n == (4096 - 1) // 4 >= 1000
    staged = mode == "staged" and staged_kernel(guest)
    for x in (c, s):
        for way in ("tx", "rx"):
            st = x["status"][way]
            assert st["mode"] == "kernel-sw" and st["tls"] == "1.3", st
            assert st["rekeys"] == n, (way, st)
            assert st["staged_switches"] == (n if staged else 0), (way, st)
        assert x["status"]["rx"]["keyupdates"] == n
    assert c["kernel_conf"] == {"tx": "sw", "rx": "sw"}
    assert d["TlsTxRekeyError"] == d["TlsRxRekeyError"] == 0
    # each process's probe sets TLS_TX twice on its own pair: one rekey each
    if staged:
        assert staged_counters(guest, d) == (2 * n, 2 * n)
        assert d["TlsTxRekeyOk"] == 2 and d["TlsRxRekeyOk"] == 0
    else:
        assert staged_counters(guest, d) == (0, 0)
        assert d["TlsTxRekeyOk"] == 2 + 2 * n and d["TlsRxRekeyOk"] == 2 * n


def test_handoff_tls12(guest):
    c, s = guest[("CLIENT", "tls12")], guest[("SERVE", "tls12")]
    assert c["handoff"] is True and s["handoff"] is True
    assert c["ok"] and c["sha256_sent"] == c["sha256_received"] == s["sha256_in"]
    for x in (c, s):
        for way in ("tx", "rx"):
            assert x["status"][way]["mode"] == "kernel-sw"
            assert x["status"][way]["tls"] == "1.2"


def test_handoff_tls12_has_no_tls13_options(guest):
    """TLS_RX_EXPECT_NO_PAD is a TLS 1.3 setting: the kernel has none for a
    TLS 1.2 socket (the JSON says null), and zerocopy is off by default."""
    for x in (guest[("CLIENT", "tls12")], guest[("SERVE", "tls12")]):
        assert x["kernel_opts"] == {"rx_expect_no_pad": None, "tx_zerocopy_ro": False}, x


@pytest.mark.parametrize("name,expect", [("long-staged", False), ("nopad", True)])
def test_handoff_rx_expect_no_pad(guest, name, expect):
    """rx_expect_no_pad = on reaches the kernel (its own getsockopt answer on
    each connection), off by default; 8 MiB echoed with KeyUpdates both ways
    and the RX re-keys under it, byte for byte."""
    c, s, d = guest[("CLIENT", name)], guest[("SERVE", name)], stat_delta(guest, name)
    print("\n[vm_handoff] %s: kernel_opts %s / %s, tls_stat %s"
          % (name, c["kernel_opts"], s["kernel_opts"], nonzero(d)))
    assert c["ok"] and c["sha256_sent"] == c["sha256_received"] == s["sha256_in"]
    for x in (c, s):
        assert x["handoff"] is True and x["status"]["rx"]["mode"] == "kernel-sw"
        assert x["kernel_opts"]["rx_expect_no_pad"] is expect, x["kernel_opts"]
    assert c["keyupdates_sent"] > 0
    assert d["TlsRxRekeyOk"] + staged_counters(guest, d)[1] >= 2 * c["keyupdates_sent"], d
    assert d["TlsDecryptError"] == 0, d


def test_handoff_with_stock_gnutls_rekeys(guest):
    g, s, d = guest[("GNUTLS", "-")], guest[("SERVE", "gnutls")], stat_delta(guest, "gnutls")
    print("\n[vm_handoff] gnutls: %s, tls_stat %s, server %s" % (g, nonzero(d), s["status"]))
    assert g["got"] == g["expect"], guest["_text"][-3000:]
    assert s["ok"] and s["handoff"] is True
    assert s["sha256_in"] == g["expect"]
    # every ^rekey^/^rekey1^ is a KeyUpdate the kernel received and the
    # bridge followed; ^rekey^ asks for ours too (half of them)
    rx, tx = s["status"]["rx"], s["status"]["tx"]
    assert rx["mode"] == "kernel-sw" and rx["keyupdates"] == rx["rekeys"] == g["rekeys"]
    assert tx["keyupdates"] == tx["rekeys"] == g["rekeys"] // 2
    if staged_kernel(guest):
        assert staged_counters(guest, d) == (g["rekeys"] // 2, g["rekeys"])
    else:
        # set again each time (the server's probe: one more TX re-key)
        assert staged_counters(guest, d) == (0, 0)
        assert d["TlsRxRekeyOk"] == g["rekeys"], d
        assert d["TlsTxRekeyOk"] == g["rekeys"] // 2 + 1, d


def test_handoff_with_stock_s_client_K(guest):
    """Ten K, each sent alone once the echo before it was back: the server
    received ten KeyUpdates and answered each (data follows every K, so
    each request's answer is due; coalesced replies go before data)."""
    sc, s, d = guest[("SCLIENT", "-")], guest[("SERVE", "sclient")], stat_delta(guest, "sclient")
    print("\n[vm_handoff] s_client: %s, tls_stat %s, server %s" % (sc, nonzero(d), s["status"]))
    assert sc["got"] == sc["expect"], guest["_text"][-3000:]
    assert s["ok"] and s["handoff"] is True and s["sha256_in"] == sc["expect"]
    n = sc["keyupdates"]
    assert n == 10
    rx, tx = s["status"]["rx"], s["status"]["tx"]
    staged = n if staged_kernel(guest) else 0
    assert rx["keyupdates"] == rx["rekeys"] == n and rx["staged_switches"] == staged
    # K asks for ours
    assert tx["keyupdates"] == tx["rekeys"] == n and tx["staged_switches"] == staged
    assert staged_counters(guest, d) == (staged, staged)
    if not staged:
        assert d["TlsRxRekeyOk"] == n and d["TlsTxRekeyOk"] == n + 1, d


def test_handoff_storm_guard_ends_a_keyupdate_flood(guest):
    """storm_limit = 50: a peer sending a KeyUpdate with every record (with
    data between, so only the rate bound applies) gets a fatal
    unexpected_message alert, and what it did receive is exactly what it
    sent, up to where it stopped.  (The burst bound, KeyUpdates with no data
    between them, is tested at its default in test_vm_endings.py.)"""
    c, s, d = guest[("CLIENT", "storm")], guest[("SERVE", "storm")], stat_delta(guest, "storm")
    print("\n[vm_handoff] storm: tls_stat %s\n  client %s\n  server %s"
          % (d, c["status"], s["status"]))
    assert s["handoff"] is True and s["ok"] is False
    rx = s["status"]["rx"]
    assert rx["reason_code"] == "keyupdate-storm" and "storm_limit" in rx["detail"], rx
    assert rx["keyupdates"] >= 51          # the 51st within a second ended it
    assert rx["rekeys"] == rx["keyupdates"] - 1    # it was not followed
    assert c["ok"] is False and c["status"]["rx"]["reason_code"] == "peer-closed"
    assert c["status"]["rx"]["detail"].startswith("alert 10 (level 2)")
    assert c["bytes_received"] < c["bytes_sent"] < 16 << 20
    # what came back is the prefix of what was sent, byte for byte
    assert c["sha256_received"] == prefix_sha256(app_fill(c["bytes_sent"]),
                                                 c["bytes_received"])


def test_rekey_bench_counts(guest):
    """ktls-rekey-bench (4 MiB, a KeyUpdate every 16 records): every
    receiver mode saw the 15 KeyUpdates; the staged one never got
    EKEYEXPIRED, set-again got one per KeyUpdate.  Times are printed by
    the benchmark, not asserted."""
    b = guest["BENCH"]
    print("\n[vm_handoff] ktls-rekey-bench:", b)
    assert set(b) == {"staged", "setagain", "userspace"}, guest["_text"][-2000:]
    for mode in b:
        assert b[mode]["kus"] == (256 - 1) // 16
    assert b["setagain"]["ekeyexpired"] == b["setagain"]["kus"]
    assert b["userspace"]["ekeyexpired"] == 0
    if staged_kernel(guest):
        assert b["staged"]["ekeyexpired"] == 0
        # the staged switch costs a check of the staged key, no second read
        assert b["staged"]["calls"] < b["setagain"]["calls"]
    else:
        # nothing can be staged: the "staged" receiver sets the key again
        assert b["staged"]["ekeyexpired"] == b["staged"]["kus"]


def test_ktls_bench_paths(guest):
    """ktls-bench runs every path once on a kTLS kernel: each transfer
    completed (exit 0 and a rate) and each path used the data path it names."""
    b = guest["KBENCH"]
    print("\n[vm_handoff] ktls-bench:", b)
    assert "ktls-bench failed" not in guest["_text"], guest["_text"][-2000:]
    assert set(b) == set(KBENCH_PATHS), guest["_text"][-2000:]
    for p in KBENCH_PATHS:
        assert b[p]["mbs"] > 0 and b[p]["ratio"] > 0, b[p]
    assert b["socket"]["ratio"] == 1.0          # the baseline of the same run
    assert b["userspace"]["tx"] == b["userspace"]["rx"] == "userspace"
    assert b["ossl-ktls"]["tx"] == "kernel"     # stock OpenSSL's own kTLS
    for p in ("bridge", "sendfile"):
        assert b[p]["tx"] == "kernel-sw", b[p]


GUEST_61 = GUEST_SH + r"""
cd /root
C=certs/cert.pem; K=certs/key.pem
for v in 1_2 1_3; do
    ktls-serve --cert $C --key $K --port 4433 --echo --handoff --json --max-conns 1 \
        > s$v.json 2> s$v.err &
    waitlisten s$v.err || exit 9
    ktls-client --handoff --json --tls$v --bytes 4M --keyupdate-every 16 127.0.0.1:4433 \
        > c$v.json 2> c$v.err
    echo "RC$v $?"
    wait
    echo "CLIENT $v $(cat c$v.json)"
    echo "SERVE $v $(cat s$v.json)"
    echo "CERR $v $(tr '\n' ' ' < c$v.err)"
done
"""


@pytest.fixture(scope="module")
def guest61(vm_platform, tmp_path_factory):
    r = run_guest_script(tmp_path_factory.mktemp("handoff61"), GUEST_61, "debian-6.1",
                         timeout=300)
    assert r[0] == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = {}
    for line in r.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind in ("CLIENT", "SERVE"):
            v, _, js = rest.partition(" ")
            res[(kind, v)] = json.loads(js)
        elif kind == "CERR":
            v, _, text = rest.partition(" ")
            res[(kind, v)] = text
    return res


def test_debian61_handoff_tls12_works(guest61):
    """Debian's 6.1 kernel has kTLS but no re-key: TLS 1.2 hands off."""
    c, s = guest61[("CLIENT", "1_2")], guest61[("SERVE", "1_2")]
    assert c["handoff"] is True and s["handoff"] is True
    assert c["ok"] and c["sha256_sent"] == c["sha256_received"] == s["sha256_in"]
    assert c["status"]["rx"]["mode"] == "kernel-sw" and c["kernel_conf"]["rx"] == "sw"


def test_debian61_handoff_tls13_refused_with_reason(guest61):
    """TLS 1.3 on a kernel that cannot re-key: tls13 = auto kept the
    connection in userspace, so the hand-off is refused, says why, and the
    transfer (with KeyUpdates) goes on through libssl."""
    c, s = guest61[("CLIENT", "1_3")], guest61[("SERVE", "1_3")]
    assert c["handoff"] is False and s["handoff"] is False
    assert "hand-off refused (Operation not supported)" in guest61[("CERR", "1_3")]
    assert c["ok"] and c["sha256_sent"] == c["sha256_received"] == s["sha256_in"]
    assert c["keyupdates_sent"] == (256 - 1) // 16
    assert c["status"]["tx"]["reason_code"] == "tls13-no-rekey"
