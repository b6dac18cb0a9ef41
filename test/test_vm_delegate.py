"""Delegation (ktls_conn_delegate(3)) on real kTLS: ktls-serve and
ktls-client with --own-bio read and write through a BIO of their own (a
source/sink BIO, not a socket BIO, as HAProxy's and curl's are) and hand
libssl's kTLS ctrls and the kernel's records to the bridge from it.  On
our patched 6.12 kernel: TLS 1.3 with KeyUpdates both ways (transparent
mode; the server answers update_requested), TLS 1.2 with both directions
in the kernel, and a hand-off over the program's BIO with KeyUpdates that
move the kernel's receive key too.  Every transfer is checked byte for
byte (ktls-client hashes both ways); /proc/net/tls_stat proves that the
kernel took the keys and switched them.

The same guest runs on Debian's stock 7.x (mainline's re-key, no staged
keys): there every KeyUpdate is TLS_TX set again on the sender and
EKEYEXPIRED + TLS_RX set again on the receiver, and tls_stat has no
*StagedSwitch counters at all."""

import pytest

from helpers import GUEST_SH
from vm_helpers import (REKEY_KERNELS, STAGED_KERNELS, nonzero, run_guest_script, stat_delta,
                        staged_switches, tagged_lines)

pytestmark = pytest.mark.vm

KERNELS = REKEY_KERNELS

GUEST = GUEST_SH + r"""
set -e
cd /root
# run NAME SERVER-FLAGS CLIENT-FLAGS: one connection, counters around it
run() {
    stats $1.before
    ktls-serve --cert certs/cert.pem --key certs/key.pem --port 4433 --echo --json \
        --max-conns 1 --own-bio $2 > $1.serve 2> $1.err &
    waitlisten $1.err
    ktls-client --json --own-bio --bytes 8M $3 127.0.0.1:4433 > $1.c || echo "client $1 failed: $?"
    wait
    stats $1.after
    echo "CLIENT $1 $(cat $1.c)"
    sed "s/^/SERVE $1 /" $1.serve
}
run tls13 "" "--tls1_3 --keyupdate-every 16 --keyupdate-requested"
run tls12 "" "--tls1_2"
run handoff "--handoff" "--tls1_3 --handoff --keyupdate-every 16 --keyupdate-requested"
"""


@pytest.fixture(scope="module", params=KERNELS)
def guest(vm_platform, tmp_path_factory, request):
    r = run_guest_script(tmp_path_factory.mktemp("delegate"), GUEST, request.param,
                         timeout=600)
    assert r[0] == 0, r.stdout + r.stderr
    assert "failed" not in r.stdout, r.stdout + r.stderr
    res = tagged_lines(r.stdout, json_kinds=("STAT", "CLIENT", "SERVE"))
    res["_staged"] = request.param in STAGED_KERNELS
    return res


def run_of(res, name):
    c = res[("CLIENT", name)][0]
    s = res[("SERVE", name)][0]
    delta = stat_delta(res, name)
    print("\n[vm_delegate] %s: tls_stat %s; client tx %s rx %s; server tx %s rx %s"
          % (name, nonzero(delta), c["status"]["tx"], c["status"]["rx"],
             s["status"]["tx"], s["status"]["rx"]))
    assert c["ok"] and c["sha256_sent"] == c["sha256_received"], c
    assert s["ok"], s
    assert delta["TlsTxRekeyError"] == delta["TlsRxRekeyError"] == 0
    return c, s, delta


def test_tls13_keyupdates_through_the_programs_bio(guest):
    c, s, delta = run_of(guest, "tls13")
    n = c["keyupdates_sent"]
    assert n == (512 - 1) // 16
    for x in (c, s):
        assert x["status"]["tx"]["mode"] == "kernel-sw" and x["status"]["tx"]["tls"] == "1.3"
    assert c["kernel_conf"]["tx"] == "sw"      # the kernel's word (sock_diag)
    # each KeyUpdate moved the client's kernel key; the server answered each
    assert c["status"]["tx"]["rekeys"] == c["status"]["tx"]["keyupdates"] == n
    assert s["status"]["tx"]["rekeys"] == n
    staged = c["status"]["tx"]["staged_switches"] + s["status"]["tx"]["staged_switches"]
    assert staged_switches(delta, "tx", guest["_staged"]) == staged
    if guest["_staged"]:
        assert staged == 2 * n
    else:
        # every re-key was TLS_TX set again (plus the probe's one per process)
        assert staged == 0
        assert delta["TlsTxRekeyOk"] == 2 * n + 2, delta
    assert delta["TlsTxSw"] >= 2


def test_tls12_both_directions_in_the_kernel(guest):
    c, s, delta = run_of(guest, "tls12")
    for x in (c, s):
        for d in ("tx", "rx"):
            assert x["status"][d]["mode"] == "kernel-sw" and x["status"][d]["tls"] == "1.2", x
    assert c["kernel_conf"] == {"tx": "sw", "rx": "sw"}
    assert delta["TlsTxSw"] >= 2 and delta["TlsRxSw"] >= 2
    # the records after the handshake were the kernel's, counted by the
    # bridge: 8 MiB of data (and the closing alert)
    assert 8 << 20 <= c["status"]["tx"]["bytes"] < (8 << 20) + 1024
    assert c["status"]["tx"]["records"] >= 512


def test_handoff_over_the_programs_bio(guest):
    c, s, delta = run_of(guest, "handoff")
    n = c["keyupdates_sent"]
    assert c["handoff"] and s["handoff"], (c, s)
    assert n > 0
    for x in (c, s):
        for d in ("tx", "rx"):
            assert x["status"][d]["mode"] == "kernel-sw", x
    # the server's kernel RX followed each of the client's KeyUpdates
    assert s["status"]["rx"]["keyupdates"] == s["status"]["rx"]["rekeys"] == n
    assert delta["TlsRxRekeyReceived"] == 2 * n     # both ends' kernels saw them
    # both ends' RX followed: by staged switches, or by TLS_RX set again
    # after EKEYEXPIRED where the kernel has no staged keys
    if guest["_staged"]:
        assert staged_switches(delta, "rx", guest["_staged"]) == 2 * n
    else:
        assert staged_switches(delta, "rx", guest["_staged"]) == 0
        assert delta["TlsRxRekeyOk"] == 2 * n, delta
    assert delta["TlsRxSw"] >= 2
