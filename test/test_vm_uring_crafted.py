"""The crafted peer against both hand-off echo servers on our patched 6.12
kernel and on Debian's stock 7.x: the io_uring one must end exactly the
connections the reference ends, with the same alerts (issue 14).

`ktls-serve --handoff` reads with ktls_conn_recv() on a blocking socket,
one connection at a time; `ktls-serve --uring` reads with RECVMSG on a
ring and gives every result to ktls_conn_received().  Both run the records
the kernel cannot judge (KeyUpdates, tickets, alerts) through the bridge.
test/peer/crafted-client seals its own records and sends what libssl
never would: KeyUpdates malformed, split around data, two in one record,
followed by a ticket, under the wrong key, in storms, every few records
of a bulk transfer; and a NewSessionTicket, which only servers send (see
its --list).

The same alert cases also run as an upload: after the crafted records the
client writes TRAIL more bytes without reading (crafted-client --trail),
as a peer in the middle of a request body.  The hand-off server lingers
after its fatal alert (the bridge reads and drops what the peer still
sends until its FIN, at most 2 s and 4 MiB), and the ring server does
the same without blocking (ktls_conn_linger(ssl, 0) on a ring timer), so
the upload finishes and the peer then reads the alert; closing at once
instead resets the peer's writes ("write_error": the ring's first
version did).  Only cases after which the kernel can still
decrypt the peer's records are uploads here: after a record it cannot
decrypt (or a malformed KeyUpdate it has already followed) nothing can be
drained, and both servers end by the 2 s bound, a matter of timing.

On debian-7 (mainline's re-key: no staged keys, a KeyUpdate found only at
the start of a record) a split KeyUpdate pauses the kernel early and not
at its end, and the bridge follows both; its lingering close follows the
peer's KeyUpdates too, so the uploads drain there as well; and
ktls-serve --multishot receives singly, saying why (its read-ahead would
pass the end of a split KeyUpdate).

One guest boot per kernel: every variant below, RUNS times on new
connections, against each server.  Per variant, the client's verdict (how the server
ended the connection, the alert it read, what was echoed) and the
server's own ending (ok or failed, the reason and detail in its status)
must be the same for both servers, and as expected: the case table's RFC
alert (the bridge parses these records, so its answers are the RFC's,
not libssl's), and for storms the default keyupdate_burst of 32."""

import json
import subprocess

import pytest

from helpers import GUEST_SH
from test_host_crafted import client
from vm_helpers import REKEY_KERNELS, STAGED_KERNELS, run_guest_script, tagged_lines

pytestmark = pytest.mark.vm

RUNS = 3
# Debian's stock kernel with mainline's re-key pauses early and not at
# all for a split KeyUpdate: the bridge follows
KERNELS = REKEY_KERNELS
# --multishot reads records ahead of the bridge: ktls-serve uses it only
# where the kernel has pre-staged keys (our series, which also finds a
# KeyUpdate anywhere); on debian-7 it says why not and receives singly
MULTISHOT_KERNELS = STAGED_KERNELS
BULK = "1M"         # ku-every: 64 records of 16 KiB
MODES = ("handoff", "ring", "multishot")
RINGS = ("ring", "multishot")      # multishot: ktls-serve --uring --multishot

# (case, --value): every case of crafted-client --list; a few with more
# than one value (the edges of the length and of the storm bound)
VARIANTS = [("valid", None), ("requested", None), ("split", 1), ("split", 2),
            ("badvalue", 2), ("badvalue", 255),
            ("badlength", 0), ("badlength", 2), ("badlength", 16380),
            ("frag-data", None), ("two", None), ("two-newkey", None),
            ("oldkey-data", None), ("split-newkey", None), ("kufirst", None),
            ("ticket", None),
            ("storm", 32), ("storm", 33),
            ("ku-every", 1), ("ku-every", 16)]

# upload variants: "+upload" after the label
TRAIL = "512K"
TRAIL_BYTES = 512 << 10
UPLOADS = [("frag-data", None), ("kufirst", None), ("ticket", None)]
# --multishot attaches with the policy's prestage off (its receive reads
# records ahead of the bridge): after these two cases the kernel stopped
# at the peer's KeyUpdate with no next key, nothing more can be drained,
# and an upload still running may be reset -- after the peer read the
# alert, which is still asserted
UNDRAINABLE_MULTISHOT = {"frag-data", "kufirst"}


def undrainable(mode, case, upload):
    return mode == "multishot" and upload and case in UNDRAINABLE_MULTISHOT

# storm has no RFC answer ("any"): the bridge's default keyupdate_burst
# (32 KeyUpdates with no data between) lets 32 through and ends the 33rd
STORM = {32: None, 33: 10}

# how each server's status names the ending: the reason code, and the
# start of its detail, for the case (None: the peer's close_notify)
REASONS = {
    "badvalue": ("protocol-error", "KeyUpdate with a request_update other than 0 or 1"),
    "badlength": ("protocol-error", "KeyUpdate body is not one byte"),
    "frag-data": ("protocol-error", "record inside a split handshake message"),
    "two": ("protocol-error", "KeyUpdate not at the end of its record"),
    "kufirst": ("protocol-error", "KeyUpdate not at the end of its record"),
    "ticket": ("protocol-error", "ticket from a client"),
    "two-newkey": ("protocol-error", "TLS_RX: RFC 8446 5.2: the record did not decrypt"),
    "oldkey-data": ("protocol-error", "TLS_RX: RFC 8446 5.2: the record did not decrypt"),
    "split-newkey": ("protocol-error", "TLS_RX: RFC 8446 5.2: the record did not decrypt"),
    "storm": ("keyupdate-storm", "more KeyUpdates without application data between them"),
}

GUEST = GUEST_SH + r"""
cd /root
chmod +x crafted-client
C=/root/certs/cert.pem; K=/root/certs/key.pem
VARIANTS="%(variants)s"
total=$(( $(echo $VARIANTS | wc -w) * %(runs)d ))
for m in handoff ring multishot; do
    a=--handoff; [ $m = ring ] && a=--uring; [ $m = multishot ] && a="--uring --multishot"
    # every server under strace, sendmsg only: records of a type (a SOL_TLS
    # cmsg) of 2 or 5 bytes are alerts and KeyUpdates, which the hand-off
    # server's bridge sends itself and the rings' bridge does not (the
    # handshake's tickets, libssl's, are longer)
    strace -f -qq --seccomp-bpf -e trace=sendmsg -e signal=none -o $m.strace \
    ktls-serve --cert $C --key $K --port 4433 --echo --tls1_3 --json --timeout 30 \
        --max-conns $total $a > $m.srv 2> $m.serr &
    sp=$!
    waitlisten $m.serr || { echo "NOLISTEN $m"; kill $sp; continue; }
    for v in $VARIANTS; do
        b=; case $v in *+upload) b="--trail %(trail)s"; v=${v%%+upload};; esac
        c=${v%%:*}; val=; [ "$c" != "$v" ] && val="--value ${v#*:}"
        [ $c = ku-every ] && b="--bytes %(bulk)s"
        ./crafted-client --case $c $val $b --repeat %(runs)d --timeout 20 127.0.0.1:4433 \
            2>> $m.cerr | sed "s/^/RUN $m /"
    done
    # the server exits after its last connection; one it never ends
    # would keep it waiting
    i=0
    while kill -0 $sp 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
    kill $sp 2>/dev/null && echo "SRVRC $m still-running-killed"
    wait $sp; echo "SRVRC $m $?"
    echo "STRACE $m {\"sendmsg\":$(grep -c 'sendmsg(' $m.strace),\"sol_tls\":$(grep -c 'SOL_TLS' $m.strace),\"ctl\":$(grep 'SOL_TLS' $m.strace | grep -cE 'iov_len=(2|5)}')}"
    sed "s/^/SRV $m /" $m.srv
    sed "s/^/SERR $m /" $m.serr
    sed "s/^/CERR $m /" $m.cerr
done
"""


def label(case, value, upload=False):
    return (case if value is None else "%s:%d" % (case, value)) + ("+upload" if upload else "")


ALL = [(c, v, False) for c, v in VARIANTS] + [(c, v, True) for c, v in UPLOADS]


def params():
    """ALL as pytest parameters."""
    return [pytest.param(c, v, up, id=label(c, v, up)) for c, v, up in ALL]


@pytest.fixture(scope="module")
def table():
    """crafted-client's case table: {case: its --list line}."""
    r = subprocess.run([client(), "--list"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return {c["case"]: c for c in map(json.loads, r.stdout.splitlines())}


@pytest.fixture(scope="module", params=KERNELS)
def guest(request, vm_platform, tmp_path_factory):
    """One boot per kernel: {mode: {label: [(client run, server line),
    ...]}}, plus the raw tagged lines under "_raw" and the kernel."""
    script = GUEST % {"variants": " ".join(label(*v) for v in ALL), "runs": RUNS,
                      "bulk": BULK, "trail": TRAIL}
    r = run_guest_script(tmp_path_factory.mktemp("uring-crafted"), script, request.param,
                         timeout=400, puts=[(client(), "/root/crafted-client")])
    assert r[0] == 0, r.stdout[-3000:] + r.stderr[-3000:]
    raw = tagged_lines(r.stdout, json_kinds=("RUN", "SRV", "STRACE"),
                       text_kinds=("SRVRC", "SERR", "CERR", "NOLISTEN"))
    res = {"_raw": raw, "_kernel": request.param}
    for m in MODES:
        runs, srv = raw.get(("RUN", m), []), raw.get(("SRV", m), [])
        by_conn = {s["conn"]: s for s in srv}
        # the client runs one connection at a time, so the server numbers
        # them in the order of the runs; an upload seals at least a first
        # 256 KiB of its trail, any other alert case 4100 bytes at most
        per = res[m] = {}
        for i, run in enumerate(runs):
            up = run["case"] != "ku-every" and run["sent"] > 8000
            per.setdefault(label(run["case"], run["value"], up), []).append(
                (run, by_conn.get(i + 1)))
    return res


def expected_alert(table, case, value):
    """The alert the server must send, or None: a clean end."""
    if case == "storm":
        return STORM[value]
    exp = table[case]["expected"]
    assert exp is None or isinstance(exp, int), table[case]
    return exp


def verdict(run):
    """What the client saw, as the two servers must both give it."""
    return {k: run[k] for k in ("end", "alert", "alert_level", "match", "echo_ok", "sent",
                                "echoed", "client_keyupdates", "write_error")}


def ending(srv):
    """How the server ended the connection, from its own JSON line."""
    rx = srv["status"]["rx"]
    return {"ok": srv["ok"], "reason_code": rx["reason_code"], "detail": rx["detail"],
            "rx_keyupdates": rx["keyupdates"], "rx_rekeys": rx["rekeys"]}


def test_every_case_of_the_table_runs(table):
    """A case added to crafted-client must be added here too."""
    assert {c for c, _ in VARIANTS} == set(table)


def test_both_servers_served_every_run(guest):
    raw = guest["_raw"]
    for m in MODES:
        assert not raw.get(("NOLISTEN", m)), raw.get(("SERR", m))
        n = sum(len(v) for v in guest[m].values())
        assert n == len(ALL) * RUNS, "%s: %d runs of %d; client stderr %s" % (
            m, n, len(ALL) * RUNS, raw.get(("CERR", m)))
        assert len(raw.get(("SRV", m), [])) == n, raw.get(("SERR", m))
        assert raw[("SRVRC", m)] == ["0"], raw.get(("SERR", m))
        # every connection was handed off: the bridge ran its records
        for s in raw[("SRV", m)]:
            assert s["handoff"] is True and s["protocol"] == "TLSv1.3", s
            assert s["status"]["rx"]["mode"] == s["status"]["tx"]["mode"] == "kernel-sw", s
            assert s.get("multishot", False) is (
                m == "multishot" and guest["_kernel"] in MULTISHOT_KERNELS), s
    if guest["_kernel"] not in MULTISHOT_KERNELS:
        assert any("multishot receive not used" in line and "pre-staged keys" in line
                   for line in raw[("SERR", "multishot")]), raw[("SERR", "multishot")]
    for m in RINGS:
        ring_lines = [s for s in raw[("SERR", m)] if "ring:" in s and "connections" in s]
        assert ring_lines and "%d connections" % (len(ALL) * RUNS) in ring_lines[-1]


def test_rings_send_the_control_records(guest):
    """ktls_conn_set_owed: on ring connections the bridge writes no record
    itself (strace: no sendmsg of an alert or a KeyUpdate, a record of 2 or
    5 bytes with a SOL_TLS cmsg, from the ring server, where the hand-off
    server makes one at least per connection, its close_notify or alert;
    the handshake's tickets, libssl's, go by sendmsg with the cmsg in both,
    before the hand-off); the ring sent them by SENDMSG, and its count
    agrees with the bridge's: every KeyUpdate the status counts, and one
    last record (close_notify or the fatal alert) per connection."""
    raw = guest["_raw"]
    ho = raw[("STRACE", "handoff")][0]
    print("\n[vm_uring_crafted] strace sendmsg: %s" % {
        m: raw[("STRACE", m)][0] for m in MODES})
    assert ho["ctl"] >= len(ALL) * RUNS, ho
    sent = {m: 0 for m in RINGS}
    for m in RINGS:
        st = raw[("STRACE", m)][0]
        assert st["sol_tls"] > 0 and st["ctl"] == 0, (m, st)
        for what, runs in guest[m].items():
            for run, srv in runs:
                ctl = srv["ring_ctl"]
                assert ctl["keyupdates"] == srv["status"]["tx"]["keyupdates"], (m, what, srv)
                assert ctl["alerts"] == 1, (m, what, run, srv)
                sent[m] += ctl["keyupdates"]
    assert all(sent.values()), sent     # the requested and ku-every cases


def runs_of(guest, m, case, value, upload=False):
    what = label(case, value, upload)
    got = guest[m].get(what, [])
    assert len(got) == RUNS, "%s %s: %d runs of %d" % (m, what, len(got), RUNS)
    assert all(s is not None for _, s in got), "%s %s: a run without its server line" % (
        m, what)
    return got


def check_ending(table, mode, case, value, upload, got):
    """One server's runs of a variant: the case's alert (or a clean end
    with every byte echoed), and the reason its status gives."""
    alert = expected_alert(table, case, value)
    for run, srv in got:
        where = "%s %s run %d: client %s\n  server %s" % (
            mode, label(case, value, upload), run["run"], run, srv)
        assert run["error"] == "" and run["echo_ok"], where
        rx = srv["status"]["rx"]
        if alert is None:
            assert run["end"] == "close_notify" and run["alert"] is None, where
            assert run["echoed"] == run["sent"] > 0, where
            assert srv["ok"] is True and srv["bytes"] == run["sent"], where
            assert rx["reason_code"] == "peer-closed" and rx["detail"] == "close_notify", where
        else:
            assert run["end"] == "alert" and run["alert"] == alert, where
            assert run["alert_level"] == 2, where
            assert run["echoed"] >= 1000, where   # the first record came back
            assert srv["ok"] is False, where
            code, detail = REASONS[case]
            assert rx["reason_code"] == code and rx["detail"].startswith(detail), where
        if case in ("requested", "ku-every"):
            assert run["server_keyupdates"] >= 1 and srv["status"]["tx"]["keyupdates"] >= 1
        if case == "storm":
            assert rx["keyupdates"] == value, where
        if upload and undrainable(mode, case, upload):
            assert run["write_error"] in ("", "EPIPE", "ECONNRESET"), where
        elif upload:    # the whole upload went out, none of it was reset
            assert run["write_error"] == "" and run["sent"] >= TRAIL_BYTES, where


@pytest.mark.parametrize("case,value,upload", params())
def test_handoff_ends_as_expected(guest, table, case, value, upload):
    """The reference alone: as the case table (and the bridge's
    lingering close) asks."""
    check_ending(table, "handoff", case, value, upload,
                 runs_of(guest, "handoff", case, value, upload))


@pytest.mark.parametrize("mode", RINGS)
@pytest.mark.parametrize("case,value,upload", params())
def test_ring_ends_as_expected(guest, table, mode, case, value, upload):
    """The ring server alone (single receives, or --multishot), the same
    expectations."""
    check_ending(table, mode, case, value, upload,
                 runs_of(guest, mode, case, value, upload))


@pytest.mark.parametrize("mode", RINGS)
@pytest.mark.parametrize("case,value,upload", params())
def test_ring_ends_as_the_handoff_server(guest, mode, case, value, upload):
    """The same records, the same ending: run by run, what the client saw
    and how each server ended the connection."""
    ho = runs_of(guest, "handoff", case, value, upload)
    ring = runs_of(guest, mode, case, value, upload)
    print("\n[vm_uring_crafted] %-23s hand-off %s | %s %s" % (
        label(case, value, upload), summary(ho), mode, summary(ring)))
    cut = ("sent", "write_error") if undrainable(mode, case, upload) else ()
    for (hr, hs), (rr, rs) in zip(ho, ring):
        assert {k: v for k, v in verdict(rr).items() if k not in cut} == \
            {k: v for k, v in verdict(hr).items() if k not in cut}, \
            "client: %s %s, hand-off %s" % (mode, rr, hr)
        assert ending(rs) == ending(hs), "server: ring %s\n  hand-off %s" % (rs, hs)


def summary(runs):
    """"alert 47 / protocol-error" ... per run, counted."""
    seen = {}
    for run, srv in runs:
        k = "%s %s/%s%s" % (run["end"], run["alert"] if run["alert"] is not None else "-",
                            srv["status"]["rx"]["reason_code"] if srv else "?",
                            " " + run["write_error"] if run["write_error"] else "")
        seen[k] = seen.get(k, 0) + 1
    return ", ".join("%s x%d" % kv for kv in sorted(seen.items()))
