"""A crafted peer against the hand-off client on our patched kernels (6.12;
7.x with KTLS_PATCHED7=1: staged keys and KeyUpdates found anywhere; Debian's
stock 7.x is test_vm_debian7.py's).

test/peer/crafted-server (a test tool on the bridge's own record writer)
sends post-handshake records a normal TLS stack would not: a KeyUpdate
coalesced with a NewSessionTicket, split across two records, two in one
record, followed by another message, with a bad value or length, and a
storm.  ktls-client --handoff (the kernel decrypts; the bridge runs the
records) must survive the valid ones byte for byte, with the kernel's
receive key moved, and answer the others with the right fatal alert
(RFC 8446 4.6.3, 5.1, 6.2), which the crafted server reports."""

import hashlib
import json
import os

import pytest

from conftest import BUILDDIR
from helpers import GUEST_SH
from vm_helpers import REKEY_KERNELS, STAGED_KERNELS, run_guest_script

pytestmark = pytest.mark.vm

SCENARIOS = ["plain", "coalesced", "split", "two", "kufirst", "badvalue", "badlength",
             "storm"]

GUEST = GUEST_SH + r"""
cd /root
chmod +x crafted-server
for sc in %s; do
    ./crafted-server --cert certs/cert.pem --key certs/key.pem --port 4433 \
        --scenario $sc > $sc.srv 2> $sc.serr &
    waitlisten $sc.serr || exit 9
    ktls-client --handoff --mode recv --json --tls1_3 --timeout 20 127.0.0.1:4433 \
        > $sc.cli 2> $sc.cerr
    echo "RC $sc $?"
    wait
    echo "SRV $sc $(cat $sc.srv)"
    echo "CLI $sc $(cat $sc.cli)"
done
""" % " ".join(SCENARIOS)


@pytest.fixture(scope="module", params=[k for k in REKEY_KERNELS if k in STAGED_KERNELS])
def guest(vm_platform, tmp_path_factory, request):
    server = os.path.join(BUILDDIR, "test", "peer", "crafted-server")
    if not os.access(server, os.X_OK):
        pytest.fail("%s is not built (make in %s)" % (server, BUILDDIR), pytrace=False)
    r = run_guest_script(tmp_path_factory.mktemp("crafted"), GUEST, request.param,
                         timeout=300, puts=[(server, "/root/crafted-server")])
    assert r[0] == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = {}
    for line in r.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        sc, _, val = rest.partition(" ")
        if kind == "RC":
            res[(sc, "rc")] = int(val)
        elif kind in ("SRV", "CLI"):
            res[(sc, kind)] = json.loads(val)
    return res


def served(n):
    """The first n bytes crafted-server sends: 16 KiB chunks of one letter
    each, 'a', 'b', ... (send_data in test/peer/crafted-server.c)."""
    return bytes(ord("a") + (i // 16384) % 26 for i in range(n))


def outcome(guest, sc):
    srv, cli = guest[(sc, "SRV")], guest[(sc, "CLI")]
    print("\n[vm_crafted] %s: server %s\n  client rc %d, rx %s"
          % (sc, srv, guest[(sc, "rc")], cli["status"]["rx"]))
    assert cli["handoff"] is True
    return srv, cli


@pytest.mark.parametrize("sc,kus", [("plain", 0), ("coalesced", 1), ("split", 1)])
def test_valid_records_survive(guest, sc, kus):
    srv, cli = outcome(guest, sc)
    assert guest[(sc, "rc")] == 0 and cli["ok"] is True
    assert cli["bytes_received"] == srv["sent"] == 128 << 10
    assert cli["sha256_received"] == srv["sha256_sent"]
    rx = cli["status"]["rx"]
    assert rx["mode"] == "kernel-sw" and rx["keyupdates"] == rx["rekeys"] == kus
    assert rx["staged_switches"] == kus and rx["key_expired"] == 0
    assert srv["alert"] is None and srv["end"] == "close_notify"


@pytest.mark.parametrize("sc,alert,why", [
    ("two", 10, "KeyUpdate not at the end of its record"),
    ("kufirst", 10, "KeyUpdate not at the end of its record"),
    ("badvalue", 47, "KeyUpdate with a request_update other than 0 or 1"),
    ("badlength", 50, "KeyUpdate body is not one byte"),
])
def test_bad_keyupdates_get_the_right_alert(guest, sc, alert, why):
    srv, cli = outcome(guest, sc)
    assert guest[(sc, "rc")] == 1 and cli["ok"] is False
    rx = cli["status"]["rx"]
    assert rx["reason_code"] == "protocol-error" and rx["detail"].startswith(why)
    assert srv["alert"] == alert
    # what arrived before is intact: the first 64 KiB, as sent
    assert cli["bytes_received"] == 64 << 10
    assert cli["sha256_received"] == hashlib.sha256(served(64 << 10)).hexdigest()


def test_keyupdate_storm_is_cut_off(guest):
    srv, cli = outcome(guest, "storm")
    assert guest[("storm", "rc")] == 1 and cli["ok"] is False
    rx = cli["status"]["rx"]
    assert rx["reason_code"] == "keyupdate-storm"
    assert rx["keyupdates"] == 33 and rx["rekeys"] == 32
    assert srv["alert"] == 10
    assert cli["bytes_received"] == 64 << 10
    assert cli["sha256_received"] == hashlib.sha256(served(64 << 10)).hexdigest()
