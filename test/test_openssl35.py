"""The bridge with libssl 3.5, the behaviour DESIGN.md describes for
OpenSSL 3.2 and later: libssl offers TLS 1.3 receive keys too, and offers
keys again (BIO ctrl 72) on every KeyUpdate, in both directions.

Debian 12 has OpenSSL 3.0 only; scripts/openssl-next.sh builds Debian 13's
OpenSSL 3.5 libraries from Debian's source package, and the project's apps
(built against 3.0) run on them through LD_LIBRARY_PATH.  The JSON field
"openssl" proves which library ran.

  * host (no kTLS here): both directions get keys offered and fall back
    with the ULP's reason; KeyUpdates both ways, byte for byte;
  * VM patched-6.12: libssl offloads both directions itself and the bridge
    keeps the kernel's keys in step with every KeyUpdate (staged switches,
    or TLS_TX/TLS_RX set again with prestage = off), tls_stat agreeing with
    each end's counts; hand-off mode on 3.5;
  * VM debian-6.1: tls13 = auto keeps TLS 1.3 in userspace in both
    directions (the kernel cannot re-key); tls13 = always ends the
    connection at the first KeyUpdate with the reason (internal_error goes
    out instead of the KeyUpdate), and the kernel decrypts nothing wrongly.

If the source package cannot be downloaded here, these tests are skipped
with that reason (they need the network, which the rest of the suite does
not once dependencies are installed)."""

import json
import os
import subprocess

import pytest

from conftest import TOP, ktls_skip
from helpers import GUEST_PROVIDER_CONF, app, free_port, make_cert, wait_port
from vm_helpers import app_fill, prefix_sha256, run_guest_script, stat_delta, tagged_lines

SCRIPT = os.path.join(TOP, "scripts", "openssl-next.sh")
GUEST_LIB = "/root/ossl35"


@pytest.fixture(scope="module")
def ossl35():
    r = subprocess.run([SCRIPT], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=1800)
    if r.returncode != 0:
        ktls_skip("OpenSSL 3.5 could not be fetched or built here:\n" + r.stderr[-2000:])
    d = r.stdout.strip().splitlines()[-1]
    with open(os.path.join(d, "version")) as f:
        return d, f.read().strip()


def test_host_libssl35_offers_tls13_receive_keys(ossl35, tmp_path):
    libdir, version = ossl35
    make_cert(str(tmp_path))
    env = dict(os.environ, LD_LIBRARY_PATH=libdir, OPENSSL_CONF="/dev/null")
    port = free_port()
    srv = subprocess.Popen([app("ktls-serve"), "--cert", str(tmp_path / "cert.pem"),
                            "--key", str(tmp_path / "key.pem"), "--port", str(port),
                            "--echo", "--max-conns", "1", "--json"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port, srv)
        cl = subprocess.run([app("ktls-client"), "--json", "--tls1_3", "--bytes", "2M",
                             "--keyupdate-every", "16", "--keyupdate-requested",
                             "127.0.0.1:%d" % port], env=env, capture_output=True,
                            text=True, timeout=120)
        out, err = srv.communicate(timeout=60)
    finally:
        srv.kill()
    c = json.loads(cl.stdout)
    s = json.loads(out.splitlines()[0])
    print("\n[openssl35] host, %s: client %s\n  server %s" % (version, c["status"], s["status"]))
    assert c["openssl"].startswith("OpenSSL 3.5") and s["openssl"].startswith("OpenSSL 3.5")
    assert c["ok"] and s["ok"] and c["sha256_received"] == c["sha256_sent"] == s["sha256_in"]
    assert c["keyupdates_sent"] == 7
    for st in (c["status"], s["status"]):
        for d in ("tx", "rx"):
            # keys offered for both directions (3.0 never offers TLS 1.3
            # receive), refused because this kernel has no tls ULP
            assert st[d]["tls"] == "1.3" and st[d]["mode"] == "userspace"
            assert st[d]["reason_code"] == "ulp-unavailable", st


# --- VM ------------------------------------------------------------------

GUEST_HEAD = GUEST_PROVIDER_CONF + r"""
cd /root
export LD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
C=/root/certs/cert.pem; K=/root/certs/key.pem
# run NAME CONF SERVE-ARGS -- CLIENT-ARGS
run() {
    n=$1; cf=$2; sa=$3; shift 4
    stats $n.before
    OPENSSL_CONF=$cf ktls-serve --cert $C --key $K --port 4433 --echo --json --max-conns 1 \
        $sa > $n.s 2> $n.serr &
    waitlisten $n.serr
    OPENSSL_CONF=$cf ktls-client --json --tls1_3 "$@" 127.0.0.1:4433 > $n.c 2> $n.cerr ||
        echo "client $n failed: $?"
    wait
    stats $n.after
    echo "CLIENT $n $(cat $n.c)"
    echo "SERVE $n $(head -n 1 $n.s)"
    sed "s/^/ERR $n /" $n.serr $n.cerr
}
""" % GUEST_LIB

GUEST_612 = GUEST_HEAD + r"""
# ~37 KeyUpdates a second arrive here, with data between them: the storm
# guard's defaults let them through
conf staged ""
conf setagain "prestage = off"
run staged /root/staged.cnf "" -- --bytes 16M --keyupdate-every 16 --keyupdate-requested
run setagain /root/setagain.cnf "" -- --bytes 16M --keyupdate-every 16 --keyupdate-requested
conf handoff ""
run handoff /root/handoff.cnf --handoff -- --handoff --bytes 8M --keyupdate-every 16 \
    --keyupdate-requested
# the storm guard's rate bound in transparent mode: storm_limit = 1 takes
# one KeyUpdate a second, and the client sends one every 16 records
conf ratelimit "storm_limit = 1"
run ratelimit /root/ratelimit.cnf "" -- --bytes 4M --keyupdate-every 16
"""

GUEST_61 = GUEST_HEAD + r"""
run auto /dev/null "" -- --bytes 4M --keyupdate-every 16 --keyupdate-requested
run always /dev/null "--tls13-offload always" -- --tls13-offload always --bytes 4M \
    --keyupdate-every 16
"""


def guest_run(tmp_path_factory, name, script, kernel, libdir):
    puts = [(libdir, GUEST_LIB)]
    r = run_guest_script(tmp_path_factory.mktemp(name), script, kernel, timeout=900, puts=puts)
    text = r[1]
    res = tagged_lines(text, json_kinds=("STAT", "CLIENT", "SERVE"), text_kinds=("ERR",))
    res["_text"] = text
    return res


@pytest.fixture(scope="module")
def guest612(vm_platform, ossl35, tmp_path_factory):
    return guest_run(tmp_path_factory, "ossl35-612", GUEST_612, "patched-6.12", ossl35[0])


@pytest.fixture(scope="module")
def guest61(vm_platform, ossl35, tmp_path_factory):
    return guest_run(tmp_path_factory, "ossl35-61", GUEST_61, "debian-6.1", ossl35[0])


def one(res, name):
    c, s = res[("CLIENT", name)][0], res[("SERVE", name)][0]
    d = stat_delta(res, name)
    print("\n[openssl35] %s: tls_stat %s\n  client %s\n  server %s"
          % (name, {k: v for k, v in d.items() if v}, c["status"], s["status"]))
    return c, s, d


def total(ends, direction, field):
    return sum(e["status"][direction][field] for e in ends)


@pytest.mark.vm
@pytest.mark.parametrize("mode", ["staged", "setagain"])
def test_patched612_libssl35_offloads_and_rekeys_both_directions(guest612, mode):
    c, s, d = one(guest612, mode)
    assert c["openssl"].startswith("OpenSSL 3.5"), c["openssl"]
    assert c["ok"] and s["ok"], guest612["_text"][-3000:]
    assert c["sha256_received"] == c["sha256_sent"] == s["sha256_in"]
    assert c["keyupdates_sent"] == 63
    ends = (c, s)
    for e in ends:
        for dr in ("tx", "rx"):
            assert e["status"][dr]["mode"] == "kernel-sw", e["status"]
            # every KeyUpdate in this direction moved the kernel's key
            assert e["status"][dr]["rekeys"] == e["status"][dr]["keyupdates"] > 0
    # what one end sent, the other received
    assert c["status"]["tx"]["keyupdates"] == s["status"]["rx"]["keyupdates"] == 63
    assert s["status"]["tx"]["keyupdates"] == c["status"]["rx"]["keyupdates"]
    # the kernel's counters agree with the ends' own (+2: each process's
    # probe re-keys a loopback TLS_TX once)
    for dr, D in (("tx", "Tx"), ("rx", "Rx")):
        staged = total(ends, dr, "staged_switches")
        assert d["Tls%sStagedSwitch" % D] == staged
        assert d["Tls%sRekeyOk" % D] == (total(ends, dr, "rekeys") - staged
                                         + (2 if dr == "tx" else 0))
    assert d["TlsRxRekeyReceived"] == total(ends, "rx", "keyupdates")
    if mode == "staged":
        assert total(ends, "tx", "staged_switches") == total(ends, "tx", "rekeys")
        assert total(ends, "rx", "staged_switches") > 0
    else:
        assert total(ends, "tx", "staged_switches") == total(ends, "rx", "staged_switches") == 0
    assert d["TlsTxRekeyError"] == d["TlsRxRekeyError"] == d["TlsDecryptError"] == 0


@pytest.mark.vm
def test_patched612_libssl35_handoff(guest612):
    c, s, d = one(guest612, "handoff")
    assert c["openssl"].startswith("OpenSSL 3.5")
    assert c["ok"] and s["ok"] and c["handoff"] is True and s["handoff"] is True
    assert c["sha256_received"] == c["sha256_sent"] == s["sha256_in"]
    assert c["status"]["rx"]["keyupdates"] == c["status"]["rx"]["rekeys"] > 0
    assert s["status"]["rx"]["keyupdates"] == s["status"]["rx"]["rekeys"] == 31
    assert d["TlsRxRekeyReceived"] == total((c, s), "rx", "keyupdates")


@pytest.mark.vm
def test_patched612_libssl35_storm_rate_bound(guest612):
    """Transparent mode, the kernel decrypting TLS 1.3 for libssl 3.5: more
    KeyUpdates in a second than storm_limit end the connection with an
    unexpected_message alert the client reads (never a reset), reason
    keyupdate-storm; what the client got back is a prefix of what it sent
    (all of it when the server had echoed everything before the KeyUpdate
    that tripped the guard: the client's next data may not have left yet)."""
    c, s, d = one(guest612, "ratelimit")
    errs = "\n".join(guest612.get(("ERR", "ratelimit"), []))
    assert c["openssl"].startswith("OpenSSL 3.5")
    assert s["handoff"] is False and s["status"]["rx"]["tls"] == "1.3"
    assert s["status"]["rx"]["mode"] == "kernel-sw", s["status"]
    assert s["ok"] is False and c["ok"] is False
    assert s["status"]["rx"]["reason_code"] == "keyupdate-storm", s["status"]
    assert s["status"]["rx"]["keyupdates"] >= 2
    assert "unexpected message" in errs and "reset by peer" not in errs, errs
    assert c["bytes_received"] <= c["bytes_sent"] <= 4 << 20
    assert c["sha256_received"] == prefix_sha256(app_fill(c["bytes_sent"]),
                                                 c["bytes_received"])
    assert d["TlsDecryptError"] == 0


@pytest.mark.vm
def test_debian61_libssl35_auto_keeps_tls13_in_userspace(guest61):
    c, s, d = one(guest61, "auto")
    assert c["openssl"].startswith("OpenSSL 3.5")
    assert c["ok"] and s["ok"] and c["sha256_received"] == c["sha256_sent"] == s["sha256_in"]
    assert c["keyupdates_sent"] == 15
    for e in (c, s):
        for dr in ("tx", "rx"):
            st = e["status"][dr]
            assert st["mode"] == "userspace" and st["reason_code"] == "tls13-no-rekey", st
    # the kernel got only the two processes' probe sockets, not the connection
    assert d["TlsTxSw"] == d["TlsRxSw"] == 2 and d["TlsDecryptError"] == 0


@pytest.mark.vm
def test_debian61_libssl35_always_ends_at_the_first_keyupdate(guest61):
    c, s, d = one(guest61, "always")
    errs = "\n".join(guest61.get(("ERR", "always"), []))
    assert c["openssl"].startswith("OpenSSL 3.5")
    # both directions were in the kernel until the KeyUpdate
    for e in (c, s):
        assert e["status"]["rx"]["tls"] == "1.3"
        assert e["status"]["tx"]["mode"] == e["status"]["rx"]["mode"] == "kernel-sw"
    # the sender could not re-key the kernel: it says so and ends the
    # connection; the peer gets an alert, nothing is decrypted wrongly
    assert c["ok"] is False and s["ok"] is False
    assert c["status"]["tx"]["reason_code"] == "rekey-failed", c["status"]
    assert "EBUSY" in c["status"]["tx"]["detail"]
    # the alert goes out first (bio-tx-test checks its bytes) and the sender
    # lingers until the peer has read it: never a reset instead
    assert "alert internal error" in errs, errs
    assert "reset by peer" not in errs, errs
    assert c["bytes_received"] < c["bytes_sent"] < 4 << 20
    assert c["sha256_received"] == prefix_sha256(app_fill(c["bytes_sent"]),
                                                 c["bytes_received"])
    assert d["TlsDecryptError"] == 0
