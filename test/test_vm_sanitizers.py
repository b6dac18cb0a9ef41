"""The bridge's kernel paths under ASan + UBSan: the sanitizer build
(_build-asan, as scripts/test.sh makes it) is what the guest installs, on
the kernels that re-key TLS 1.3, where both directions really are the
kernel's: our 6.12 (staged keys) and Debian's stock 7.x (every re-key set
again after EKEYEXPIRED: the bridge's other path).  The unit
tests and the host fallback path run under the sanitizers elsewhere; here
are transparent mode (TX re-keys at KeyUpdates), TLS 1.2, hand-off mode
(RX re-keys in rxkey.c / handoff.c) and a hand-off ending (a receive
re-key that fails, by the fault-injection shim, and the alert after it).

Every case asserts its transfer (hashes) and that no sanitizer spoke; the
first section proves the ASan runtime is in the guest's binaries."""

import os
import subprocess

import pytest

from conftest import TOP
from helpers import GUEST_PROVIDER_CONF
from vm_helpers import (FAULT_SHIM_GUEST, GUEST_LIB, REKEY_KERNELS, fault_shim_put, json_lines,
                        run_guest_script, sections)

pytestmark = pytest.mark.vm

ASAN_BUILD = os.environ.get("KTLS_ASAN_BUILDDIR") or os.path.join(TOP, "_build-asan")
BYTES = 2 << 20

GUEST = GUEST_PROVIDER_CONF + GUEST_LIB + r"""
cd /root
conf setagain "prestage = off"
echo "== asan"
ASAN_OPTIONS=help=1 ktls-probe --help 2>&1 | grep -c "Available flags for AddressSanitizer" || true
export ASAN_OPTIONS=detect_leaks=1:exitcode=86
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87
# run NAME CONF SERVE-ARGS CLIENT-ARGS [CLIENT-FAULT]: one connection
run() {
    OPENSSL_CONF=$2 ktls-serve --cert $C --key $K --port 4433 --echo --json --max-conns 1 \
        $3 > $1.sj 2> $1.se &
    spid=$!
    waitport 4433
    if [ -n "$5" ]; then
        # the shim is not instrumented: ASan must not insist on coming first
        ASAN_OPTIONS=$ASAN_OPTIONS:verify_asan_link_order=0 LD_PRELOAD=@SHIM@ \
            KTLS_FAULT=$5 KTLS_FAULT_PORT=4433 OPENSSL_CONF=$2 \
            ktls-client --json $4 127.0.0.1:4433 > $1.cj 2> $1.ce
    else
        OPENSSL_CONF=$2 ktls-client --json $4 127.0.0.1:4433 > $1.cj 2> $1.ce
    fi
    echo $? > $1.crc
    wait $spid; echo $? > $1.src
    for f in sj cj se ce crc src; do sec $1.$f; done
}
run t13 /dev/null "--tls1_3" "--tls1_3 --bytes @BYTES@ --keyupdate-every 16 --keyupdate-requested"
run t12 /dev/null "--tls1_2" "--tls1_2 --bytes @BYTES@"
run ho /dev/null "--handoff --keyupdate-every 16" \
    "--handoff --tls1_3 --bytes @BYTES@ --keyupdate-every 16 --keyupdate-requested"
run hof /root/setagain.cnf "--handoff --keyupdate-every 16" "--handoff --tls1_3 --bytes @BYTES@" \
    TLS_RX:3:EIO
echo "== end"
"""

SANITIZER_WORDS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehavior")


def asan_build():
    """The sanitizer build, brought up to date (a no-op right after
    scripts/test.sh made it)."""
    lib = os.path.join(ASAN_BUILD, "ktls-bridge", ".libs", "libktls-bridge.so")
    subprocess.run([os.path.join(TOP, "scripts", "build.sh"), "--enable-sanitizers"],
                   env=dict(os.environ, KTLS_BUILDDIR=ASAN_BUILD), check=True,
                   stdout=subprocess.DEVNULL)
    nm = subprocess.run(["nm", lib], capture_output=True, text=True, check=True).stdout
    assert "__asan_init" in nm, "%s has no ASan: run scripts/build.sh --enable-sanitizers" % lib
    return ASAN_BUILD


@pytest.fixture(scope="module", params=REKEY_KERNELS)
def guest(vm_platform, tmp_path_factory, request):
    build = asan_build()
    script = (GUEST.replace("@SHIM@", FAULT_SHIM_GUEST).replace("@BYTES@", str(BYTES)))
    r = run_guest_script(tmp_path_factory.mktemp("asan"), script, request.param, timeout=600,
                         puts=[fault_shim_put()], builddir=build)
    assert r.rc == 0, r.stderr[-3000:]
    s = sections(r.stdout)
    assert "end" in s, r.stdout[-3000:] + r.stderr[-3000:]
    return s


def case(s, name):
    """(client JSON, server JSON, client rc, server rc) after checking that
    neither process's stderr has a sanitizer report."""
    for f in ("ce", "se"):
        text = s[name + "." + f]
        for w in SANITIZER_WORDS:
            assert w not in text, "%s.%s:\n%s" % (name, f, text[-4000:])
    c, sv = json_lines(s[name + ".cj"]), json_lines(s[name + ".sj"])
    assert c and sv, (s[name + ".ce"], s[name + ".se"])
    return c[0], sv[0], int(s[name + ".crc"]), int(s[name + ".src"])


def test_guest_binaries_carry_asan(guest):
    # ASAN_OPTIONS=help=1 makes the ASan runtime list its flags: it is there
    assert guest["asan"].strip() not in ("", "0"), guest["asan"]


def test_transparent_tls13_rekeys_under_asan(guest):
    c, s, crc, src = case(guest, "t13")
    assert crc == src == 0 and c["ok"] and s["ok"], (c, s)
    assert c["sha256_received"] == c["sha256_sent"] == s["sha256_in"]
    assert c["bytes_sent"] == BYTES and c["keyupdates_sent"] > 0
    tx = c["status"]["tx"]
    assert tx["mode"] == "kernel-sw" and tx["rekeys"] == tx["keyupdates"] > 0, tx
    # the server's kernel TX answered each update_requested
    stx = s["status"]["tx"]
    assert stx["mode"] == "kernel-sw" and stx["rekeys"] == stx["keyupdates"] > 0, stx


def test_tls12_both_directions_under_asan(guest):
    c, s, crc, src = case(guest, "t12")
    assert crc == src == 0 and c["ok"] and s["ok"], (c, s)
    assert c["sha256_received"] == c["sha256_sent"] == s["sha256_in"]
    for d in ("tx", "rx"):
        assert c["status"][d]["mode"] == s["status"][d]["mode"] == "kernel-sw"
    assert c["kernel_conf"] == s["kernel_conf"] == {"tx": "sw", "rx": "sw"}


def test_handoff_rekeys_under_asan(guest):
    c, s, crc, src = case(guest, "ho")
    assert crc == src == 0 and c["ok"] and s["ok"], (c, s)
    assert c["handoff"] is True and s["handoff"] is True
    assert c["sha256_received"] == c["sha256_sent"] == s["sha256_in"]
    # the server's KeyUpdates moved the client's kernel RX, and the other way
    for e in (c, s):
        rx = e["status"]["rx"]
        assert rx["mode"] == "kernel-sw" and rx["rekeys"] == rx["keyupdates"] > 0, rx


def test_handoff_failed_rekey_ending_under_asan(guest):
    """Fault injection (test/fault shim): TLS_RX call #3 fails with EIO;
    the client ends with internal_error, which the server reads."""
    c, s, crc, src = case(guest, "hof")
    assert "ktls-fault: injected EIO into setsockopt(TLS_RX) call #3" in guest["hof.ce"]
    assert crc == 1 and c["ok"] is False
    assert c["status"]["rx"]["reason_code"] == "rekey-failed", c["status"]
    srx = s["status"]["rx"]
    assert srx["reason_code"] == "peer-closed" and srx["detail"].startswith("alert 80 (level 2)")
