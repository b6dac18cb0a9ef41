"""Endings a peer can read, on real kTLS kernels (issue: fatal alerts
always delivered, RFC alerts for what the kernel detects, KeyUpdate bursts
that do not kill healthy connections).

test/peer/crafted-client does a TLS 1.3 handshake with libssl, then seals
its own records with the project's secret chain and sends post-handshake
records that a normal stack would not (bad KeyUpdate values and lengths, a
KeyUpdate split around application data, two in one record, records under
the wrong key), each followed by application data, and reads what the
server answers.  Its case table holds the alert RFC 8446 asks for.

Each case runs RUNS times in one guest boot against ktls-serve --echo in
three modes, and every run must end with the expected alert (never a
reset, never a timeout):
  * t30: transparent, libssl 3.0 (the kernel encrypts, libssl decrypts);
  * t35: transparent, libssl 3.5 (the kernel does both directions);
  * ho:  hand-off (the kernel does both, the bridge runs control records).
On debian-6.1 (no re-key) TLS 1.3 is offloaded with tls13 = always, so the
kernel still carries the connection up to the bad record.  On debian-7
(Debian's stock kernel, mainline's re-key, nothing staged) the same matrix
as on patched-6.12 runs 10 times per case.  Every server
connection's own status must show the kernel in the modes claimed.

Stock `openssl s_server` runs the same cases (3.0 in userspace, 3.0 with
-ktls, 3.5 with -ktls) for comparison: its numbers are printed, not
asserted, except that userspace 3.0 must agree with the case table (that
is what checks the table against a stock stack).

Also here: a 64 MiB transfer with an update_requested KeyUpdate every 16
records at default settings in transparent and hand-off mode (patched
6.12), a real storm (KeyUpdates with no data between) ended with an
alert, and the tls13 = always KeyUpdate ending on 6.1, 50 times."""

import os
from collections import Counter, defaultdict

import pytest

from conftest import BUILDDIR
from helpers import GUEST_PROVIDER_CONF
from test_host_crafted import LIBSSL_ANSWERS
from test_openssl35 import GUEST_LIB as OSSL35_GUEST, ossl35  # noqa: F401 (fixture)
from vm_helpers import REKEY_KERNELS, run_guest_script, stat_delta, tagged_lines

pytestmark = pytest.mark.vm

RUNS = int(os.environ.get("KTLS_ENDING_RUNS", "50"))
STOCK_RUNS = 10

ALERT_CASES = ["badvalue:2", "badvalue:255", "badlength:0", "badlength:2", "frag-data",
               "two", "two-newkey", "oldkey-data", "split-newkey", "kufirst"]
VALID_CASES = ["valid", "requested"]
# On 6.1 the kernel cannot follow a KeyUpdate, and with tls13 = always a
# valid one ends the connection by design; "oldkey-data" starts with a
# valid KeyUpdate, so it tests that ending there, not this table.
ALERT_CASES_61 = [c for c in ALERT_CASES if c != "oldkey-data"]

GUEST_HEAD = GUEST_PROVIDER_CONF + r"""
cd /root
chmod +x crafted-client
C=/root/certs/cert.pem; K=/root/certs/key.pem
L35=%(ossl35)s
# cases MODE PORT RUNS CASE...: crafted-client runs, one RUN line each
cases() {
    m=$1; p=$2; r=$3; shift 3
    for c in "$@"; do
        n=${c%%:*}; v=; [ "$n" != "$c" ] && v="--value ${c#*:}"
        ./crafted-client --case $n $v --repeat $r --timeout 20 $CC_ARGS 127.0.0.1:$p \
            2>> $m.cerr | sed "s/^/RUN $m /"
    done
}
# matrix MODE LIBDIR SERVE-ARGS -- CASES...: ktls-serve for one mode
matrix() {
    m=$1; lib=$2; sa=$3; shift 4
    total=$(( $# * RUNS ))
    stats $m.before
    LD_LIBRARY_PATH=${lib:+$lib:}$LD_LIBRARY_PATH ktls-serve --cert $C --key $K --port 4433 --echo --tls1_3 --json \
        --timeout 30 --max-conns $total $sa > $m.srv 2> $m.serr &
    sp=$!
    waitport 4433 || { cat $m.serr; return; }
    CC_ARGS= cases $m 4433 $RUNS "$@"
    wait $sp; echo "SRVRC $m $?"
    stats $m.after
    sed "s/^/SRV $m /" $m.srv
    tail -n 5 $m.serr | sed "s/^/ERR $m /"
}
# stock openssl s_server with kTLS: its own Options = KTLS (the 3.0 app has
# no -ktls), applied by libssl to every SSL_CTX
cat > /root/ktls-opt.cnf <<EOC
openssl_conf = init
[init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = sysdef
[sysdef]
Options = KTLS
EOC
# stock MODE LIBDIR OPENSSL_CONF -- CASES...: stock openssl s_server
stock() {
    m=$1; lib=$2; cf=$3; shift 4
    total=$(( $# * STOCK_RUNS ))
    # s_server ends a connection when its stdin ends: give it one that stays
    # open (a FIFO whose writer we hold) and no data
    rm -f /root/hold; mkfifo /root/hold
    OPENSSL_CONF=$cf LD_LIBRARY_PATH=${lib:+$lib:}$LD_LIBRARY_PATH openssl s_server \
        -accept 4434 -cert $C -key $K -tls1_3 -naccept $total -quiet \
        < /root/hold > $m.sout 2> $m.serr &
    sp=$!
    exec 3> /root/hold
    waitport 4434 || { exec 3>&-; cat $m.serr; return; }
    CC_ARGS=--no-echo cases $m 4434 $STOCK_RUNS "$@"
    kill $sp 2>/dev/null; wait $sp
    exec 3>&-
    echo "VERSION $m $(LD_LIBRARY_PATH=${lib:+$lib:}$LD_LIBRARY_PATH openssl version | tr ' ' _)"
}
RUNS=%(runs)d; STOCK_RUNS=%(stock_runs)d
"""

# the kernels that re-key: ktls-serve in its three modes, every case
MATRIX_REKEY = r"""
matrix t30 "" "" -- %(alerts)s %(valid)s
matrix t35 $L35 "" -- %(alerts)s %(valid)s
matrix ho "" "--handoff" -- %(alerts)s %(valid)s
"""

STOCK = r"""
stock s30u "" /dev/null -- %(alerts)s
stock s30k "" /root/ktls-opt.cnf -- %(alerts)s
stock s35k $L35 /root/ktls-opt.cnf -- %(alerts)s
"""

LONG_AND_STORM = r"""
# a healthy, eager peer at default settings: 64 MiB each way, an
# update_requested KeyUpdate every 16 records (no openssl.cnf policy)
for m in t30 ho; do
    a=; [ $m = ho ] && a=--handoff
    stats long-$m.before
    OPENSSL_CONF=/dev/null ktls-serve --cert $C --key $K --port 4440 --echo --tls1_3 --json \
        --max-conns 1 $a > long-$m.s 2> long-$m.serr &
    waitport 4440
    OPENSSL_CONF=/dev/null ktls-client --json --tls1_3 $a --bytes 64M --timeout 300 \
        --keyupdate-every 16 --keyupdate-requested 127.0.0.1:4440 > long-$m.c 2> long-$m.cerr
    echo "LONGRC $m $?"
    wait
    stats long-$m.after
    echo "LONGC $m $(cat long-$m.c)"; echo "LONGS $m $(head -n 1 long-$m.s)"
done

# a real storm: 40 KeyUpdates with no data between them, default settings
for m in ho t35; do
    a=; lib=; [ $m = ho ] && a=--handoff; [ $m = t35 ] && lib=$L35
    OPENSSL_CONF=/dev/null LD_LIBRARY_PATH=${lib:+$lib:}$LD_LIBRARY_PATH ktls-serve --cert $C --key $K --port 4441 \
        --echo --tls1_3 --json --max-conns $RUNS $a > storm-$m.s 2> storm-$m.serr &
    waitport 4441
    ./crafted-client --case storm --value 40 --repeat $RUNS 127.0.0.1:4441 | sed "s/^/RUN storm-$m /"
    wait
    sed "s/^/SRV storm-$m /" storm-$m.s
done
echo "== done"
"""

GUEST_612 = GUEST_HEAD + MATRIX_REKEY + STOCK + LONG_AND_STORM
# Debian's stock 7.x: the same, fewer runs per case (the crafted cases run
# on it against the hand-off and ring servers in test_vm_uring_crafted.py
# too), no stock s_server (scripts/compare-stacks.sh sets stock stacks
# beside ours there)
GUEST_7 = GUEST_HEAD + MATRIX_REKEY + LONG_AND_STORM
RUNS_7 = min(RUNS, 10)

GUEST_61 = GUEST_HEAD + r"""
matrix t30 "" "--tls13-offload always" -- %(alerts)s
matrix t35 $L35 "--tls13-offload always" -- %(alerts)s
matrix ho "" "--handoff --tls13-offload always" -- %(alerts)s
stock s30u "" /dev/null -- %(alerts)s
stock s30k "" /root/ktls-opt.cnf -- %(alerts)s
stock s35k $L35 /root/ktls-opt.cnf -- %(alerts)s

# the flaky one: a KeyUpdate the kernel cannot follow, ended with an alert
stats kx.before
ktls-serve --cert $C --key $K --port 4442 --echo --tls1_3 --json --tls13-offload always \
    --max-conns $RUNS > kx.s 2> kx.serr &
waitport 4442
i=0
while [ $i -lt $RUNS ]; do
    ktls-client --json --tls1_3 --bytes 4M --keyupdate-every 64 --keyupdate-requested \
        --timeout 20 127.0.0.1:4442 > kx.c 2> kx.cerr
    rc=$?
    grep -q "alert internal error" kx.cerr && a=1 || a=0
    grep -q -i "reset by peer" kx.cerr && r=1 || r=0
    echo "KX $i {\"rc\":$rc,\"alert\":$a,\"reset\":$r,\"client\":$(cat kx.c)}"
    i=$((i+1))
done
wait
stats kx.after
sed "s/^/SRV kx /" kx.s
echo "== done"
"""


def script(template, alerts, runs):
    return template % {"ossl35": OSSL35_GUEST, "runs": runs, "stock_runs": STOCK_RUNS,
                       "alerts": " ".join(alerts), "valid": " ".join(VALID_CASES)}


def boot(tmp_path_factory, name, template, kernel, libdir, alerts, runs=RUNS):
    client = os.path.join(BUILDDIR, "test", "peer", "crafted-client")
    if not os.access(client, os.X_OK):
        pytest.fail("%s is not built (make in %s)" % (client, BUILDDIR), pytrace=False)
    r = run_guest_script(tmp_path_factory.mktemp(name), script(template, alerts, runs), kernel,
                         timeout=3000,
                         puts=[(client, "/root/crafted-client"), (libdir, OSSL35_GUEST)])
    assert r[0] == 0 and "== done" in r[1], r[1][-4000:] + r.stderr[-2000:]
    res = tagged_lines(r[1], json_kinds=("RUN", "SRV", "STAT", "LONGC", "LONGS", "KX"),
                       text_kinds=("SRVRC", "LONGRC", "VERSION", "ERR"))
    res["_text"] = r[1]
    return res


@pytest.fixture(scope="module")
def g612(vm_platform, ossl35, tmp_path_factory):  # noqa: F811
    return boot(tmp_path_factory, "endings-612", GUEST_612, "patched-6.12", ossl35[0],
                ALERT_CASES)


# the 7.x kernels: Debian's stock one, and our series with KTLS_PATCHED7=1
# (mainline's re-key with our staged keys and KeyUpdate detection on top)
KERNELS_7 = [k for k in REKEY_KERNELS if k != "patched-6.12"]


@pytest.fixture(scope="module", params=KERNELS_7)
def g7(vm_platform, ossl35, tmp_path_factory, request):  # noqa: F811
    res = boot(tmp_path_factory, "endings-" + request.param, GUEST_7, request.param,
               ossl35[0], ALERT_CASES, runs=RUNS_7)
    res["_kernel"] = request.param
    return res


@pytest.fixture(scope="module")
def g61(vm_platform, ossl35, tmp_path_factory):  # noqa: F811
    return boot(tmp_path_factory, "endings-61", GUEST_61, "debian-6.1", ossl35[0],
                ALERT_CASES_61)


def outcomes(g, mode):
    """{case label: Counter of outcomes} for one mode; an outcome is the
    alert number, or the end ("reset", "timeout", ...) when no alert."""
    out = defaultdict(Counter)
    for r in g.get(("RUN", mode), []):
        label = r["case"] + (":%s" % r["value"] if r.get("value") is not None else "")
        out[label][r["alert"] if r["end"] == "alert" else r["end"]] += 1
    return out


def table(g, modes):
    lines = []
    for m in modes:
        oc = outcomes(g, m)
        lines.append("  %-5s %s" % (m, "  ".join("%s=%s" % (c, dict(oc[c])) for c in sorted(oc))))
    return "\n".join(lines)


def matches(r, libssl_parses):
    """The run ended as the case table says; where libssl parses the
    KeyUpdate, as libssl answers (LIBSSL_ANSWERS, see test_host_crafted)."""
    want = LIBSSL_ANSWERS.get((r["case"], r.get("value"))) if libssl_parses else None
    if want is None:
        return r["match"] and r["echo_ok"]
    return r["end"] == "alert" and r["alert"] == want and r["echo_ok"]


def check_matrix(g, mode, kernel, cases, expect_tx, expect_rx, handoff, runs=RUNS):
    nruns, runs = runs, g.get(("RUN", mode), [])
    # with libssl 3.0 the records are decrypted and parsed by libssl; with
    # 3.5 and in hand-off mode the bridge walks them first
    bad = [r for r in runs if not matches(r, mode == "t30")]
    oc = outcomes(g, mode)
    print("\n[vm_endings] %s %s: %d runs\n%s" % (kernel, mode, len(runs), table(g, [mode])))
    assert len(runs) == len(cases) * nruns, "runs missing:\n" + "\n".join(
        g.get(("ERR", mode), []))
    assert not bad, "%d of %d runs did not end as the RFC asks, e.g. %s" % (
        len(bad), len(runs), bad[:3])
    resets = sum(c["reset"] + c["timeout"] + c["eof"] for c in oc.values())
    assert resets == 0
    assert g[("SRVRC", mode)] == ["0"], g.get(("ERR", mode))
    srv = g[("SRV", mode)]
    assert len(srv) == len(runs)
    for s in srv:   # the kernel carried each connection (its own status)
        assert s["handoff"] is handoff, s
        assert s["status"]["tx"]["mode"] == expect_tx, s["status"]
        assert s["status"]["rx"]["mode"] == expect_rx, s["status"]
    d = stat_delta(g, mode)
    # each connection installed TX (and RX) once: probes add only a few
    assert d["TlsTxSw"] >= len(srv)
    if expect_rx != "userspace":
        assert d["TlsRxSw"] >= len(srv)
        # the bad-key cases are found by the kernel, never by a guess
        assert d["TlsDecryptError"] >= sum(oc[c][20] for c in oc)
    return oc


def stock_report(g, kernel):
    vers = {k[1]: v[0] for k, v in g.items() if isinstance(k, tuple) and k[0] == "VERSION"}
    print("\n[vm_endings] %s stock openssl s_server, %d runs per case (%s):\n%s" % (
        kernel, STOCK_RUNS, vers, table(g, ["s30u", "s30k", "s35k"])))


# --- patched-6.12 --------------------------------------------------------

@pytest.mark.parametrize("mode,rx,handoff", [("t30", "userspace", False),
                                            ("t35", "kernel-sw", False),
                                            ("ho", "kernel-sw", True)])
def test_612_every_alert_arrives(g612, mode, rx, handoff):
    check_matrix(g612, mode, "patched-6.12", ALERT_CASES + VALID_CASES, "kernel-sw", rx,
                 handoff)


def test_612_stock_userspace_agrees_with_the_table(g612):
    stock_report(g612, "patched-6.12")
    runs = g612[("RUN", "s30u")]
    assert len(runs) == len(ALERT_CASES) * STOCK_RUNS
    assert all(matches(r, True) for r in runs), [r for r in runs if not matches(r, True)][:3]


def test_612_eager_peer_survives_at_default_settings(g612):
    """64 MiB each way, update_requested every 16 records, no policy: the
    storm guard must not end a peer that sends data between its KeyUpdates."""
    check_eager_peer(g612)


def check_eager_peer(g):
    for m in ("t30", "ho"):
        c, s = g[("LONGC", m)][0], g[("LONGS", m)][0]
        d = stat_delta(g, "long-" + m)
        print("\n[vm_endings] 64 MiB %s: client %s\n  server %s\n  tls_stat %s"
              % (m, c["status"], s["status"], d))
        assert g[("LONGRC", m)] == ["0"] and c["ok"] and s["ok"]
        assert c["bytes_sent"] == c["bytes_received"] == 64 << 20
        assert c["sha256_received"] == c["sha256_sent"] == s["sha256_in"]
        n = c["keyupdates_sent"]
        assert n in (255, 256)     # 4096 records; none after the last one
        tx = s["status"]["tx"]     # one reply per request: data between them
        assert tx["mode"] == "kernel-sw" and tx["rekeys"] == tx["keyupdates"] == n
        if m == "ho":
            assert s["status"]["rx"]["rekeys"] == n
        assert d["TlsTxRekeyError"] == d["TlsRxRekeyError"] == 0


@pytest.mark.parametrize("mode", ["ho", "t35"])
def test_612_storm_is_ended_with_an_alert(g612, mode):
    """40 KeyUpdates with no data between them (the default burst bound is
    32): unexpected_message, reason keyupdate-storm, every run."""
    check_storm(g612, mode, RUNS)


def check_storm(g, mode, nruns):
    runs, srv = g[("RUN", "storm-" + mode)], g[("SRV", "storm-" + mode)]
    print("\n[vm_endings] storm %s: %s" % (mode, Counter(
        r["alert"] if r["end"] == "alert" else r["end"] for r in runs)))
    assert len(runs) == len(srv) == nruns
    assert all(r["end"] == "alert" and r["alert"] == 10 for r in runs), runs[:3]
    for s in srv:
        rx = s["status"]["rx"]
        assert rx["mode"] == "kernel-sw" and rx["reason_code"] == "keyupdate-storm", rx
        assert rx["keyupdates"] == 33 and "keyupdate_burst" in rx["detail"], rx


# --- debian-7 (and patched-7 with KTLS_PATCHED7=1) -----------------------
# debian-7: mainline's re-key, nothing staged: every KeyUpdate the bridge
# follows is EKEYEXPIRED and TLS_RX set again, and a KeyUpdate is found
# only at the start of a record (the bridge's walker finds the rest);
# patched-7: the same matrix with our staged keys and detection on top

@pytest.mark.parametrize("mode,rx,handoff", [("t30", "userspace", False),
                                            ("t35", "kernel-sw", False),
                                            ("ho", "kernel-sw", True)])
def test_7_every_alert_arrives(g7, mode, rx, handoff):
    check_matrix(g7, mode, g7["_kernel"], ALERT_CASES + VALID_CASES, "kernel-sw", rx,
                 handoff, runs=RUNS_7)


def test_7_eager_peer_survives_at_default_settings(g7):
    check_eager_peer(g7)


@pytest.mark.parametrize("mode", ["ho", "t35"])
def test_7_storm_is_ended_with_an_alert(g7, mode):
    check_storm(g7, mode, RUNS_7)


# --- debian-6.1 ----------------------------------------------------------

@pytest.mark.parametrize("mode,rx,handoff", [("t30", "userspace", False),
                                            ("t35", "kernel-sw", False),
                                            ("ho", "kernel-sw", True)])
def test_61_every_alert_arrives(g61, mode, rx, handoff):
    check_matrix(g61, mode, "debian-6.1", ALERT_CASES_61, "kernel-sw", rx, handoff)


def test_61_stock_userspace_agrees_with_the_table(g61):
    stock_report(g61, "debian-6.1")
    runs = g61[("RUN", "s30u")]
    assert len(runs) == len(ALERT_CASES_61) * STOCK_RUNS
    assert all(matches(r, True) for r in runs), [r for r in runs if not matches(r, True)][:3]


def test_61_always_keyupdate_ends_with_an_alert_every_time(g61):
    """tls13 = always on a kernel without re-key: the peer's
    update_requested must end the connection with internal_error, which
    the peer reads, in every one of the runs (it used to see a reset)."""
    kx = [v[0] for k, v in g61.items() if isinstance(k, tuple) and k[0] == "KX"]
    srv = g61[("SRV", "kx")]
    resets = sum(x["reset"] for x in kx)
    alerts = sum(x["alert"] for x in kx)
    print("\n[vm_endings] 6.1 always + KeyUpdate: %d runs, %d alerts, %d resets"
          % (len(kx), alerts, resets))
    assert len(kx) == len(srv) == RUNS
    assert resets == 0 and alerts == RUNS
    for x, s in zip(kx, srv):
        assert x["rc"] == 1 and x["client"]["ok"] is False
        tx = s["status"]["tx"]
        assert tx["mode"] == "kernel-sw" and tx["reason_code"] == "rekey-failed", tx
        assert tx["errno"] == "EBUSY"

