"""The generic keyblock install (TLS_KEYBLOCK, kernel/0006) end to end.

On patched-6.12 the probe reports the option (keyblock true) and the
bridge installs each direction of a hand-off connection with one
TLS_KEYBLOCK call instead of TLS_TX/TLS_RX (TX when libssl offers it, RX
at the hand-off: two calls of one direction each, not one of both):
strace in the guest (fd paths, no string bytes, so no key material in
the log) sees the calls on the connection's socket, and the transfer is
byte-exact with KeyUpdates both ways (re-keys still go through
TLS_TX_NEXT/TLS_RX_NEXT).  (The status detail naming TLS_KEYBLOCK is
checked by bio-tx-test: by the end of a connection it says close_notify.)

On debian-6.1 the probe says keyblock false with the reason ENOPROTOOPT
and the same client and server install with TLS_TX/TLS_RX (TLS 1.2: that
kernel cannot re-key TLS 1.3)."""

import json
import re

import pytest

from helpers import GUEST_PROVIDER_CONF
from vm_helpers import run_guest_script

pytestmark = pytest.mark.vm

KERNELS = ["patched-6.12", "debian-6.1"]

GUEST = GUEST_PROVIDER_CONF + r"""
set -e
cd /root
C=certs/cert.pem; K=certs/key.pem
ktls-probe --json > probe.json
echo "PROBE - $(cat probe.json)"
ktls-probe | sed -n 's/^generic keyblock install: */PROBETEXT - /p'
if grep -q '"keyblock":true' probe.json; then
    ver=--tls1_3; ku="--keyupdate-every 16 --keyupdate-requested"
else
    ver=--tls1_2; ku=
fi
# -yy: the socket's addresses beside each fd; -s 0: no string bytes
strace -f -qq -yy -s 0 -e trace=setsockopt -o serve.strace \
    ktls-serve --cert $C --key $K --port 4433 --echo --handoff --json --max-conns 1 \
    > kb.serve 2> kb.serr &
waitlisten kb.serr
strace -f -qq -yy -s 0 -e trace=setsockopt -o client.strace \
    ktls-client --handoff --json $ver --bytes 4M $ku 127.0.0.1:4433 > kb.c || true
wait
echo "SERVE - $(cat kb.serve)"
echo "CLIENT - $(cat kb.c)"
# the calls on the connection's socket (port 4433 on one side or the other)
grep ':4433\]' client.strace | sed 's/^/CSTRACE /' || true
grep ':4433->' serve.strace | sed 's/^/SSTRACE /' || true
"""


def parse(out):
    res = {"CSTRACE": [], "SSTRACE": []}
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] in ("PROBE", "SERVE", "CLIENT"):
            res[parts[0]] = json.loads(parts[2])
        elif len(parts) == 3 and parts[0] == "PROBETEXT":
            res["PROBETEXT"] = parts[2]
        elif parts[0] in ("CSTRACE", "SSTRACE"):
            res[parts[0]].append(line.split(" ", 1)[1])
    return res


def sol_tls_calls(lines):
    """[(option, result)] of the setsockopt(SOL_TLS) calls, in order."""
    calls = []
    for line in lines:
        m = re.search(r"setsockopt\(\S+, SOL_TLS, (\w+).* = (-?\d+)", line)
        if m:
            calls.append((m.group(1), int(m.group(2))))
    return calls


@pytest.fixture(scope="module", params=KERNELS)
def guest(vm_platform, tmp_path_factory, request):
    kernel = request.param
    r = run_guest_script(tmp_path_factory.mktemp("keyblock"), GUEST, kernel, timeout=600)
    assert r[0] == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = parse(r.stdout)
    res["_text"] = r.stdout + r.stderr
    res["_kernel"] = kernel
    return res


def test_probe_reports_keyblock(guest):
    p = guest["PROBE"]
    print("\n[vm_keyblock] %s: keyblock %s (%s); %s"
          % (guest["_kernel"], p["keyblock"], p["keyblock_reason"], guest.get("PROBETEXT")))
    if guest["_kernel"] == "patched-6.12":
        assert p["keyblock"] is True and p["keyblock_reason"] == "ok", p
        assert guest["PROBETEXT"].split()[-1] == "yes"
    else:
        assert p["keyblock"] is False and p["keyblock_reason"] == "ENOPROTOOPT", p
        assert guest["PROBETEXT"].split()[-1] == "ENOPROTOOPT"


def test_transfer_byte_exact(guest):
    c, s = guest["CLIENT"], guest["SERVE"]
    assert c["ok"] and c["handoff"] is True and s["handoff"] is True, guest["_text"][-3000:]
    assert c["bytes_sent"] == c["bytes_received"] == 4 << 20
    assert c["sha256_sent"] == c["sha256_received"] == s["sha256_in"]
    for x in (c, s):
        for way in ("tx", "rx"):
            assert x["status"][way]["mode"] == "kernel-sw", (way, x["status"][way])
    if guest["_kernel"] == "patched-6.12":
        n = c["keyupdates_sent"]
        assert n > 0
        for x in (c, s):
            assert x["status"]["tx"]["rekeys"] == n and x["status"]["rx"]["rekeys"] == n


@pytest.mark.parametrize("side", ["CSTRACE", "SSTRACE"])
def test_install_path(guest, side):
    """patched-6.12: each direction's first install is one TLS_KEYBLOCK
    call, and TLS_TX/TLS_RX never install on the connection (re-keys are
    staged: TLS_TX_NEXT/TLS_RX_NEXT); debian-6.1: TLS_TX and TLS_RX, no
    TLS_KEYBLOCK."""
    calls = sol_tls_calls(guest[side])
    print("\n[vm_keyblock] %s %s: %s" % (guest["_kernel"], side, calls[:6]))
    opts = [o for o, _ in calls]
    assert calls and all(rc == 0 for _, rc in calls), calls
    if guest["_kernel"] == "patched-6.12":
        assert opts.count("0x7403") == 2, calls	# TX, then RX at the hand-off
        assert opts[0] == "0x7403", calls
        assert "TLS_TX" not in opts and "TLS_RX" not in opts, calls
    else:
        assert "0x7403" not in opts, calls
        assert opts.count("TLS_TX") == 1 and opts.count("TLS_RX") == 1, calls
