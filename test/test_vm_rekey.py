"""TLS 1.3 KeyUpdate with the kernel encrypting, on our patched 6.12
kernel (re-key UAPI of mainline 6.14 plus pre-staged keys) and on
Debian's stock 7.x: the bridge sends libssl's KeyUpdate record and moves
the kernel to the next TX key (HKDF "traffic upd" chain), either by a key
staged beforehand with TLS_TX_NEXT (the default where the kernel has it)
or by setting TLS_TX again (policy prestage = off).  A third run has the
bridge send KeyUpdates of its own every 16 records (keyupdate_records).
OpenSSL 3.0 never offers TLS 1.3 receive keys, so RX stays in userspace.
The kernel's counters in /proc/net/tls_stat prove each re-key and each
staged switch.

On debian-7 (mainline's re-key only) TLS_TX_NEXT is refused: the probe
says prestage false (ENOPROTOOPT) and the bridge takes the set-again path
with the default policy too, so the "staged" runs are set-again runs
there: no staged switch anywhere, every KeyUpdate a TLS_TX set again,
each counted by the kernel as TlsTxRekeyOk.  That kernel's tls_stat has
no *StagedSwitch counters at all, and the gnutls feeder waits on
TlsTxRekeyOk instead of TlsTxStagedSwitch.

One guest boot per kernel runs every connection below."""

import pytest

from helpers import GUEST_PROVIDER_CONF
from vm_helpers import (REKEY_KERNELS, STAGED_KERNELS, nonzero, run_guest_script, stat_delta,
                        tagged_lines)

pytestmark = pytest.mark.vm

KERNELS = REKEY_KERNELS

GUEST = GUEST_PROVIDER_CONF + r"""
set -e
cd /root
conf setagain "prestage = off"
conf proactive "keyupdate_records = 16"
ktls-probe --json > probe.json
echo "PROBE - $(cat probe.json)"
# run NAME SERVE-CONF -- two clients against one server; counters around it
run() {
    stats $1.before
    OPENSSL_CONF=${2:-/dev/null} ktls-serve --cert certs/cert.pem --key certs/key.pem \
        --port 4433 --echo --json --max-conns 2 > $1.serve 2> $1.err &
    waitlisten $1.err
    OPENSSL_CONF=${2:-/dev/null} ktls-client --json --tls1_3 --bytes 8M $3 \
        127.0.0.1:4433 > $1.c1 || echo "client1 failed: $?"
    OPENSSL_CONF=${2:-/dev/null} ktls-client --json --tls1_3 \
        --ciphersuites TLS_CHACHA20_POLY1305_SHA256 --bytes 2M $4 \
        127.0.0.1:4433 > $1.c2 || echo "client2 failed: $?"
    wait
    stats $1.after
    echo "CLIENT1 $1 $(cat $1.c1)"
    echo "CLIENT2 $1 $(cat $1.c2)"
    sed "s/^/SERVE $1 /" $1.serve
}
run staged "" "--keyupdate-every 16 --keyupdate-requested" "--keyupdate-every 4"
run setagain /root/setagain.cnf "--keyupdate-every 16 --keyupdate-requested" "--keyupdate-every 4"
run proactive /root/proactive.cnf "" ""
# one connection each: 64 MiB echoed, a KeyUpdate every 4 records both ways
long() {
    stats $1.before
    OPENSSL_CONF=${2:-/dev/null} ktls-serve --cert certs/cert.pem --key certs/key.pem \
        --port 4433 --echo --json --max-conns 1 > $1.serve 2> $1.err &
    waitlisten $1.err
    OPENSSL_CONF=${2:-/dev/null} ktls-client --json --tls1_3 --bytes 64M --timeout 300 \
        --keyupdate-every 4 --keyupdate-requested 127.0.0.1:4433 > $1.c1 || echo "client failed: $?"
    wait
    stats $1.after
    echo "CLIENT1 $1 $(cat $1.c1)"
    sed "s/^/SERVE $1 /" $1.serve
}
long long-staged ""
long long-setagain /root/setagain.cnf
# stock gnutls-cli: ^rekey^ asks ktls-serve (transparent mode) to update
# too.  GnuTLS ends a connection that receives more than 8 KeyUpdates in a
# second ("Too many handshake packets"), and the feeder goes as fast as the
# events allow: 8 rekeys.  A first data line before them: once it is
# echoed the server has its TX key, and its bridge has probed the kernel
# (the probe sets TLS_TX twice, one TlsTxRekeyOk) before the feeder counts
echo "gnutls 0 abcdefghijklmnopqrstuvwxyz0123456789" > g.in
for i in 1 2 3 4 5 6 7 8; do
    echo '^rekey^' >> g.in
    for j in $(seq 1 20); do echo "gnutls $i.$j abcdefghijklmnopqrstuvwxyz0123456789" >> g.in; done
done
grep -v '^^rekey' g.in > g.expect
tail -n +2 g.in > g.rest
# the counter that moves when the server's kernel takes its next TX key: a
# staged switch where the kernel has pre-staged keys, else TLS_TX set again
ctr=TlsTxStagedSwitch
grep -q '"prestage":true' probe.json || ctr=TlsTxRekeyOk
stats gnutls.before
ktls-serve --cert certs/cert.pem --key certs/key.pem --port 4433 --echo --json \
    --max-conns 1 > gnutls.serve 2> gnutls.err &
waitlisten gnutls.err
# the server's kernel switches to its next TX key to answer each ^rekey^
: > g.out
{ head -n 1 g.in; waitfor g.out "gnutls 0 " && feedrekeys g.rest g.expect g.out $ctr; } |
    gnutls-cli --logfile g.log --insecure --inline-commands -p 4433 127.0.0.1 > g.out 2> g.err || true
wait
stats gnutls.after
sed "s/^/SERVE gnutls /" gnutls.serve
echo "GNUTLS gnutls {\"counter\":\"$ctr\",\"expect\":\"$(sha256sum < g.expect | cut -d' ' -f1)\",\"got\":\"$(sha256sum < g.out | cut -d' ' -f1)\",\"rekeys\":$(grep -c '^\^rekey' g.in),\"expect_size\":$(wc -c < g.expect),\"got_size\":$(wc -c < g.out),\"log\":\"$(tr -d '\"' < g.log | tr '\n' '|' | tail -c 300)\"}"
"""


def parse(out):
    return tagged_lines(out, json_kinds=("PROBE", "STAT", "CLIENT1", "CLIENT2", "SERVE",
                                         "GNUTLS"))


@pytest.fixture(scope="module", params=KERNELS)
def guest(request, vm_platform, tmp_path_factory):
    """One boot per kernel for the whole module: the runs and their
    counters, and the kernel under "_kernel"."""
    r = run_guest_script(tmp_path_factory.mktemp("rekey"), GUEST, request.param, timeout=600)
    assert r[0] == 0, r.stdout + r.stderr
    assert "failed" not in r.stdout, r.stdout + r.stderr
    res = parse(r.stdout)
    res["_kernel"] = request.param
    return res


def staged_kernel(guest):
    return guest["_kernel"] in STAGED_KERNELS


def staged_stat(guest, delta):
    """TlsTxStagedSwitch's change.  Debian's 7.x has no such counter
    (mainline has no staged keys): there it must be absent, and counts 0."""
    assert ("TlsTxStagedSwitch" in delta) is staged_kernel(guest), sorted(delta)
    return delta.get("TlsTxStagedSwitch", 0)


def run_of(res, name):
    c1 = res[("CLIENT1", name)][0]
    c2 = res[("CLIENT2", name)][0]
    s1, s2 = res[("SERVE", name)]
    delta = stat_delta(res, name)
    print("\n[vm_rekey] %s %s: tls_stat %s; tx rekeys/staged/keyupdates/records:"
          % (res["_kernel"], name, nonzero(delta)),
          [(x["status"]["tx"]["rekeys"], x["status"]["tx"]["staged_switches"],
            x["status"]["tx"]["keyupdates"], x["status"]["tx"]["records"])
           for x in (c1, c2, s1, s2)])
    for c in (c1, c2):      # echoed byte for byte (ktls-client hashes both ways)
        assert c["ok"] and c["sha256_sent"] == c["sha256_received"], c
    assert s1["ok"] and s2["ok"]
    for x in (c1, c2, s1, s2):      # TLS 1.3 TX in the kernel everywhere
        assert x["status"]["tx"]["mode"] == "kernel-sw" and x["status"]["tx"]["tls"] == "1.3"
    assert c1["kernel_conf"]["tx"] == "sw"     # the kernel's word (sock_diag)
    assert delta["TlsTxRekeyError"] == 0
    return c1, c2, s1, s2, delta


def test_probe_says_rekey_and_whether_prestage(guest):
    """Both kernels re-key; only ours takes TLS_TX_NEXT (mainline:
    ENOPROTOOPT, an option it does not know)."""
    probe = guest[("PROBE", "-")][0]
    print("\n[vm_rekey] %s: kernel %s rekey %s (%s) prestage %s (%s)"
          % (guest["_kernel"], probe["kernel"], probe["rekey"], probe["rekey_reason"],
             probe["prestage"], probe["prestage_reason"]))
    assert probe["rekey"] is True and probe["rekey_reason"] == "ok", probe
    if staged_kernel(guest):
        assert probe["prestage"] is True and probe["prestage_reason"] == "ok", probe
    else:
        assert probe["kernel"].split(".")[0] == "7", probe
        assert probe["prestage"] is False and probe["prestage_reason"] == "ENOPROTOOPT", probe


def test_keyupdates_switch_to_staged_keys(guest):
    """Default policy: on our kernel every KeyUpdate is a staged switch,
    TLS_TX is never set again; on debian-7 (no staged keys) every one is
    TLS_TX set again, and nothing is staged."""
    c1, c2, s1, s2, delta = run_of(guest, "staged")
    # one every 16 of 512 records, none after the last
    assert c1["keyupdates_sent"] == (512 - 1) // 16
    assert c2["keyupdates_sent"] == (128 - 1) // 4
    assert s2["status"]["tx"]["rekeys"] == 0
    # the three processes' probes set TLS_TX twice (their rekey test)
    probes = 3
    if staged_kernel(guest):
        for c in (c1, c2):
            tx = c["status"]["tx"]
            assert tx["rekeys"] == tx["staged_switches"] == tx["keyupdates"] \
                == c["keyupdates_sent"]
        # update_requested: the server answered every KeyUpdate with its own
        assert s1["status"]["tx"]["rekeys"] == s1["status"]["tx"]["staged_switches"] \
            == c1["keyupdates_sent"]
        staged = sum(x["status"]["tx"]["staged_switches"] for x in (c1, c2, s1))
        assert staged_stat(guest, delta) == staged
        assert delta["TlsTxRekeyOk"] == probes
    else:
        for c in (c1, c2):
            tx = c["status"]["tx"]
            assert tx["rekeys"] == tx["keyupdates"] == c["keyupdates_sent"]
            assert tx["staged_switches"] == 0
        assert s1["status"]["tx"]["rekeys"] == s1["status"]["tx"]["keyupdates"] \
            == c1["keyupdates_sent"]
        assert s1["status"]["tx"]["staged_switches"] == s2["status"]["tx"]["staged_switches"] \
            == 0
        assert staged_stat(guest, delta) == 0
        assert delta["TlsTxRekeyOk"] == probes + sum(
            x["status"]["tx"]["rekeys"] for x in (c1, c2, s1))


def test_keyupdates_set_tls_tx_again(guest):
    """prestage = off: the bridge sets TLS_TX after each KeyUpdate (the
    mainline 6.14 way, and debian-7's only one); the kernel counts each
    as TlsTxRekeyOk."""
    c1, c2, s1, s2, delta = run_of(guest, "setagain")
    for c in (c1, c2):
        tx = c["status"]["tx"]
        assert tx["rekeys"] == tx["keyupdates"] == c["keyupdates_sent"] > 0
        assert tx["staged_switches"] == 0
    assert s1["status"]["tx"]["rekeys"] == c1["keyupdates_sent"]
    assert s1["status"]["tx"]["staged_switches"] == 0
    assert staged_stat(guest, delta) == 0
    assert delta["TlsTxRekeyOk"] == 3 + sum(x["status"]["tx"]["rekeys"] for x in (c1, c2, s1))


def test_bridge_sends_keyupdates_at_the_record_limit(guest):
    """keyupdate_records = 16: no KeyUpdate from the applications, the
    bridge sends its own once the kernel's counter reaches 16 records,
    and moves the kernel on by a staged switch (our kernel) or by TLS_TX
    set again (debian-7)."""
    c1, c2, s1, s2, delta = run_of(guest, "proactive")
    staged = staged_kernel(guest)
    for x in (c1, c2, s1, s2):
        tx = x["status"]["tx"]
        recs = tx["records"]
        assert tx["keyupdates"] == tx["rekeys"]
        assert tx["staged_switches"] == (tx["keyupdates"] if staged else 0), tx
        # one per 16 data records; the KeyUpdate records are counted too
        assert (recs - 16) // 17 <= tx["keyupdates"] <= recs // 17, tx
    for c in (c1, c2):
        assert c["keyupdates_sent"] == 0       # the application sent none
        assert c["status"]["tx"]["keyupdates"] >= 7
    total = sum(x["status"]["tx"]["keyupdates"] for x in (c1, c2, s1, s2))
    # three processes' probes (the server's, the two clients')
    if staged:
        assert staged_stat(guest, delta) == total and delta["TlsTxRekeyOk"] == 3
    else:
        assert staged_stat(guest, delta) == 0 and delta["TlsTxRekeyOk"] == 3 + total


@pytest.mark.parametrize("name,policy_staged", [("long-staged", True),
                                                ("long-setagain", False)])
def test_thousand_keyupdates_each_way_over_64mib(guest, name, policy_staged):
    """One connection, 64 MiB each way, the client sends a KeyUpdate with
    update_requested every 4 records and the server answers each: over
    1,000 kernel re-keys in each direction, every byte checked.  Staged
    switches where the policy asks for them and the kernel has them (not
    on debian-7: there both runs set TLS_TX again)."""
    c = guest[("CLIENT1", name)][0]
    s = guest[("SERVE", name)][0]
    delta = stat_delta(guest, name)
    print("\n[vm_rekey] %s %s: tls_stat %s, client tx %s, server tx %s"
          % (guest["_kernel"], name, nonzero(delta), c["status"]["tx"], s["status"]["tx"]))
    assert c["ok"] and c["bytes_sent"] == c["bytes_received"] == 64 << 20
    assert c["sha256_sent"] == c["sha256_received"] == s["sha256_in"]
    n = c["keyupdates_sent"]
    assert n == (4096 - 1) // 4 >= 1000
    staged = policy_staged and staged_kernel(guest)
    for x in (c, s):
        tx = x["status"]["tx"]
        assert tx["mode"] == "kernel-sw"
        assert tx["rekeys"] == tx["keyupdates"] == n
        assert tx["staged_switches"] == (n if staged else 0)
    assert delta["TlsTxRekeyError"] == 0
    # two processes' probes
    if staged:
        assert staged_stat(guest, delta) == 2 * n and delta["TlsTxRekeyOk"] == 2
    else:
        assert staged_stat(guest, delta) == 0 and delta["TlsTxRekeyOk"] == 2 + 2 * n


def test_stock_gnutls_rekey_requests_rekey_our_kernel_tx(guest):
    """gnutls-cli ^rekey^ (KeyUpdate with update_requested) against
    ktls-serve in transparent mode: libssl answers each with its KeyUpdate,
    and the bridge moves the kernel's TX key every time: a staged switch
    on our kernel, TLS_TX set again on debian-7 (where the feeder waits
    for TlsTxRekeyOk to move instead)."""
    g = guest[("GNUTLS", "gnutls")][0]
    s = guest[("SERVE", "gnutls")][0]
    delta = stat_delta(guest, "gnutls")
    print("\n[vm_rekey] %s gnutls: %s, server tx %s, tls_stat %s"
          % (guest["_kernel"], g, s["status"]["tx"], nonzero(delta)))
    assert g["got"] == g["expect"] and s["sha256_in"] == g["expect"]
    tx = s["status"]["tx"]
    assert tx["mode"] == "kernel-sw" and tx["tls"] == "1.3"
    assert tx["keyupdates"] == tx["rekeys"] == g["rekeys"] == 8
    # kTLS on the server's connection (TX only: libssl 3.0) and its probe's
    # socket (both), none on gnutls-cli's
    assert delta["TlsTxSw"] == 2 and delta["TlsRxSw"] == 1, nonzero(delta)
    assert delta["TlsTxRekeyError"] == 0
    # one probe (the server's) sets TLS_TX twice
    if staged_kernel(guest):
        assert g["counter"] == "TlsTxStagedSwitch"
        assert tx["staged_switches"] == 8
        assert staged_stat(guest, delta) == 8 and delta["TlsTxRekeyOk"] == 1
    else:
        assert g["counter"] == "TlsTxRekeyOk"
        assert tx["staged_switches"] == 0
        assert staged_stat(guest, delta) == 0 and delta["TlsTxRekeyOk"] == 1 + 8
