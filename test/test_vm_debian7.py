"""Debian's stock 7.x kernel (flavour debian-7): mainline's TLS 1.3 re-key
without our series, as users run it this year.

Mainline looks only at the first byte of a decrypted handshake record: it
pauses receive (EKEYEXPIRED until TLS_RX is set again) after any record
that begins with a KeyUpdate's type byte, and after no other.  A valid
KeyUpdate split over records (RFC 8446 5.1 allows it) therefore brings an
early pause (after its first piece, with no KeyUpdate complete) and no
pause where it ends (the kernel would decrypt the peer's next record with
the old key).  Before the bridge handled both, hand-off ktls-serve ended
such connections with unexpected_message.  The bridge now sets the key in
use again at an early pause (counted as early_pauses) and the next key
right after a KeyUpdate that ended in a record the kernel did not pause
for (rekeys_ahead); these tests prove both on the real kernel, byte for
byte, with tls_stat agreeing with the bridge's own counts.

One guest boot:
  * ktls-probe: re-key yes, pre-staged keys no (ENOPROTOOPT);
  * test/peer/crafted-client against ktls-serve --echo in hand-off mode
    (the kernel does both directions; the bridge runs control records),
    transparent with libssl 3.5 (the kernel does both; libssl runs the
    records through the bridge) and transparent with libssl 3.0 (receive in
    userspace: the control group): valid and requested KeyUpdates, a
    KeyUpdate in 1-, 2-, 3- and 4-byte pieces, one split around data
    (an alert, RFC 8446 5.1), and 1 MiB with a KeyUpdate every 16 records;
  * test/peer/crafted-server against ktls-client (hand-off, and transparent
    on 3.5): a KeyUpdate behind a NewSessionTicket in one record (no pause:
    the key goes in ahead) and one split in two records (both)."""

import os

import pytest

from conftest import BUILDDIR
from helpers import GUEST_SH
from test_openssl35 import GUEST_LIB as OSSL35_GUEST, ossl35  # noqa: F401 (fixture)
from vm_helpers import run_guest_script, stat_delta, tagged_lines

pytestmark = pytest.mark.vm

KERNEL = "debian-7"
SPLITS = ["split:1", "split:2", "split:3", "split:4"]
CASES = ["valid", "requested"] + SPLITS + ["frag-data", "ku-every:16"]
SERVER_MODES = ["ho", "t35", "t30"]
SCENARIOS = ["plain", "coalesced", "split"]
CLIENT_MODES = ["ho", "t35"]

GUEST = GUEST_SH + r"""
cd /root
chmod +x crafted-client crafted-server
C=/root/certs/cert.pem; K=/root/certs/key.pem; L35=%(ossl35)s
echo "PROBE - $(ktls-probe --json)"
# bounded PID SECS WHAT: wait for PID; one still running after SECS (a
# peer gave up before connecting) is killed and says so
bounded() {
    b_i=0
    while kill -0 $1 2>/dev/null && [ $b_i -lt $(($2 * 10)) ]; do sleep 0.1; b_i=$((b_i+1)); done
    kill $1 2>/dev/null && echo "KILLED $3 still running after $2 s"
    wait $1
}
# serve MODE LIBDIR SERVE-ARGS: ktls-serve --echo for every case
serve() {
    m=$1; lib=$2; sa=$3
    stats $m.before
    LD_LIBRARY_PATH=${lib:+$lib:}$LD_LIBRARY_PATH ktls-serve --cert $C --key $K --port 4433 --echo --tls1_3 --json \
        --timeout 30 --max-conns %(ncases)d $sa > $m.srv 2> $m.serr &
    sp=$!
    waitport 4433 || { cat $m.serr; return; }
    for c in %(cases)s; do
        n=${c%%%%:*}; v=; [ "$n" != "$c" ] && v="--value ${c#*:}"
        b=; [ "$n" = ku-every ] && b="--bytes 1M"
        ./crafted-client --case $n $v $b --timeout 20 127.0.0.1:4433 2>> $m.cerr |
            sed "s/^/RUN $m /"
    done
    bounded $sp 60 ktls-serve-$m; echo "SRVRC $m $?"
    stats $m.after
    sed "s/^/SRV $m /" $m.srv
    tail -n 5 $m.serr | sed "s/^/ERR $m /"
}
serve ho "" --handoff
serve t35 $L35 ""
serve t30 "" ""
# client MODE LIBDIR CLIENT-ARGS: ktls-client against each crafted server
client() {
    m=$1; lib=$2; ca=$3
    for sc in %(scenarios)s; do
        ./crafted-server --cert $C --key $K --port 4434 --scenario $sc > $m-$sc.srv 2> $m-$sc.serr &
        sp=$!
        waitlisten $m-$sc.serr || exit 9
        LD_LIBRARY_PATH=${lib:+$lib:}$LD_LIBRARY_PATH ktls-client $ca --mode recv --json --tls1_3 --timeout 20 \
            127.0.0.1:4434 > $m-$sc.cli 2> $m-$sc.cerr
        echo "CRC $m-$sc $?"
        bounded $sp 30 crafted-server-$m-$sc
        echo "CSRV $m-$sc $(cat $m-$sc.srv)"
        echo "CLI $m-$sc $(cat $m-$sc.cli)"
        tail -n 3 $m-$sc.cerr | sed "s/^/ERR $m-$sc /"
    done
}
client ho "" --handoff
client t35 $L35 ""
"""


def case_name(c):
    return c.replace(":", "-")


@pytest.fixture(scope="module")
def d7(vm_platform, ossl35, tmp_path_factory):  # noqa: F811 (fixture)
    peers = [os.path.join(BUILDDIR, "test", "peer", p)
             for p in ("crafted-client", "crafted-server")]
    for p in peers:
        if not os.access(p, os.X_OK):
            pytest.fail("%s is not built (make in %s)" % (p, BUILDDIR), pytrace=False)
    script = GUEST % {"ossl35": OSSL35_GUEST, "ncases": len(CASES), "cases": " ".join(CASES),
                      "scenarios": " ".join(SCENARIOS)}
    puts = [(peers[0], "/root/crafted-client"), (peers[1], "/root/crafted-server"),
            (ossl35[0], OSSL35_GUEST)]
    r = run_guest_script(tmp_path_factory.mktemp("debian7"), script, KERNEL, timeout=600,
                         puts=puts)
    text = r[1]
    res = tagged_lines(text, json_kinds=("PROBE", "STAT", "RUN", "SRV", "CSRV", "CLI"),
                       text_kinds=("SRVRC", "CRC", "ERR", "KILLED"))
    res["_text"] = text
    killed = [k for k in res if k[0] == "KILLED"]
    assert not killed, "the guest killed what did not end: %s\n%s" % (killed, text[-3000:])
    return res


def runs(d7, m):
    """[(case, crafted-client's result, the server's JSON line)] in case order."""
    cli, srv = d7.get(("RUN", m), []), d7.get(("SRV", m), [])
    assert len(cli) == len(CASES) and len(srv) == len(CASES), (
        "mode %s: %d client and %d server lines for %d cases\n%s"
        % (m, len(cli), len(srv), len(CASES), d7["_text"][-3000:]))
    return list(zip(CASES, cli, srv))


def test_probe_says_rekey_without_staging(d7):
    p = d7[("PROBE", "-")][0]
    print("\n[debian7] kernel %s rekey %s (%s) prestage %s (%s)"
          % (p["kernel"], p["rekey"], p["rekey_reason"], p["prestage"], p["prestage_reason"]))
    assert p["kernel"].split(".")[0] == "7"
    assert p["rekey"] is True and p["rekey_reason"] == "ok"
    assert p["prestage"] is False and p["prestage_reason"] == "ENOPROTOOPT"


@pytest.mark.parametrize("m", SERVER_MODES)
def test_every_case_ends_as_the_rfc_says(d7, m):
    assert d7[("SRVRC", m)] == ["0"], d7.get(("ERR", m))
    for c, cli, _ in runs(d7, m):
        print("[debian7] %s %s: alert %s end %s sent %d echoed %d"
              % (m, c, cli["alert"], cli["end"], cli["sent"], cli["echoed"]))
        assert cli["match"] is True and cli["echo_ok"] is True, (m, c, cli)
        if c == "frag-data":
            assert cli["alert"] == 10 and cli["end"] == "alert"
        else:
            assert cli["alert"] is None and cli["end"] == "close_notify"
            assert cli["echoed"] == cli["sent"] > 0


@pytest.mark.parametrize("m", ["ho", "t35"])
def test_split_keyupdates_early_and_missed_pauses(d7, m):
    """The kernel receives in both modes; every split KeyUpdate gets one
    early pause (its first piece begins with the type byte) and its key set
    ahead (its last piece does not)."""
    for c, cli, srv in runs(d7, m):
        rx = srv["status"]["rx"]
        assert rx["mode"] == "kernel-sw" and rx["tls"] == "1.3", (m, c, rx)
        if c in SPLITS:
            assert srv["ok"] is True, (m, c, srv)
            assert rx["keyupdates"] == rx["rekeys"] == 1, (m, c, rx)
            assert rx["early_pauses"] == 1 and rx["rekeys_ahead"] == 1, (m, c, rx)
            assert rx["key_expired"] == 1, (m, c, rx)
            assert cli["server_keyupdates"] == 1    # its update_requested answered
        elif c in ("valid", "requested"):
            assert rx["keyupdates"] == rx["rekeys"] == 1, (m, c, rx)
            assert rx["early_pauses"] == rx["rekeys_ahead"] == 0, (m, c, rx)
            # libssl 3.5 offers the next key when it reads the KeyUpdate,
            # before the bridge's next read could meet the kernel's pause
            assert rx["key_expired"] == (1 if m == "ho" else 0), (m, c, rx)
        elif c == "frag-data":
            assert srv["ok"] is False and rx["reason_code"] == "protocol-error", (m, c, rx)
            assert rx["early_pauses"] == 1 and rx["rekeys"] == 0, (m, c, rx)
        else:   # ku-every: 1 MiB in 16 KiB records, a KeyUpdate every 16
            assert srv["ok"] is True and srv["bytes"] == cli["sent"] > 1 << 20, (m, c, srv)
            assert rx["keyupdates"] == rx["rekeys"] == 4, (m, c, rx)
            assert rx["early_pauses"] == rx["rekeys_ahead"] == 0, (m, c, rx)


@pytest.mark.parametrize("m", ["ho", "t35"])
def test_tls_stat_agrees_with_the_bridge(d7, m):
    """The kernel paused once per KeyUpdate whose record began with one
    and once per early pause, and every TLS_RX it took is a re-key or a
    resume that the bridge counted -- or, on a connection that had already
    ended with our alert (frag-data), one its lingering close set to read
    past the peer's KeyUpdate, which the status does not count."""
    d = stat_delta(d7, m)
    srvs = [srv for _, _, srv in runs(d7, m)]
    rx = [srv["status"]["rx"] for srv in srvs]
    print("\n[debian7] %s tls_stat %s" % (m, {k: v for k, v in d.items() if v}))
    assert d["TlsRxRekeyReceived"] == sum(r["keyupdates"] - r["rekeys_ahead"] + r["early_pauses"]
                                          for r in rx) > 0
    counted = sum(r["rekeys"] + r["early_pauses"] for r in rx)
    ended = sum(1 for srv in srvs if not srv["ok"])
    assert counted <= d["TlsRxRekeyOk"] <= counted + ended
    assert d["TlsRxRekeyError"] == 0 and d["TlsDecryptError"] == 0
    assert d["TlsRxSw"] >= len(CASES)


def test_userspace_receive_is_the_control(d7):
    """libssl 3.0 never offers TLS 1.3 receive keys: no pauses at all."""
    for c, _, srv in runs(d7, "t30"):
        rx = srv["status"]["rx"]
        assert rx["mode"] == "userspace" and rx["reason_code"] == "not-offered", (c, rx)
    assert stat_delta(d7, "t30")["TlsRxRekeyReceived"] == 0


@pytest.mark.parametrize("m", CLIENT_MODES)
@pytest.mark.parametrize("sc,early,ahead", [("plain", 0, 0), ("coalesced", 0, 1),
                                            ("split", 1, 1)])
def test_client_follows_the_server_keyupdates(d7, m, sc, early, ahead):
    """crafted-server sends 64 KiB, the record(s), moves its key, 64 KiB."""
    key = "%s-%s" % (m, sc)
    srv, cli = d7[("CSRV", key)][0], d7[("CLI", key)][0]
    rx = cli["status"]["rx"]
    print("\n[debian7] client %s: rc %s rx %s" % (key, d7[("CRC", key)], rx))
    assert d7[("CRC", key)] == ["0"] and cli["ok"] is True, d7.get(("ERR", key))
    assert cli["bytes_received"] == srv["sent"] == 128 << 10
    assert cli["sha256_received"] == srv["sha256_sent"]
    assert srv["alert"] is None and srv["end"] == "close_notify"
    kus = 0 if sc == "plain" else 1
    assert rx["mode"] == "kernel-sw"
    assert rx["keyupdates"] == rx["rekeys"] == kus and rx["staged_switches"] == 0
    assert rx["early_pauses"] == early and rx["rekeys_ahead"] == ahead
    # a pause for the early one; none where the key went in ahead
    assert rx["key_expired"] == early

