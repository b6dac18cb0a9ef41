"""ktls-serve --uring on the kernels that re-key TLS 1.3 (our 6.12, Debian's
stock 7.x): one io_uring ring serves
many connections at once, each handed off to the kernel after its
handshake; from then on its bytes move by ring operations only (RECVMSG
with the record type, SEND, SPLICE file -> pipe -> socket), every receive
reported to the bridge with ktls_conn_received().

Echo: 1,000 connections at once from ktls-client --connections (two
runs side by side; userspace records on the client side, so the kernel's
receive counters are the server's), 256 KiB each way, a requested
KeyUpdate every 8 records on a tenth of them: every byte comes back, 0
failed connections, every KeyUpdate was received by the server's kernel;
the server's resident memory is reported.  Files: a 64 MiB file by splice, TLS 1.3 (curl) and TLS 1.2
(openssl s_client), byte for byte, tls_stat proving the kernel encrypted.
TLS 1.2 on Debian's 6.1 too; TLS 1.3 there cannot be handed off (no
re-key): the ring serves it through libssl and says why.  On debian-7 (no
staged keys) --multishot is refused with its reason and the rings receive
singly: every KeyUpdate pauses the kernel and is set again."""

import pytest

from helpers import GUEST_PROVIDER_CONF
from vm_helpers import (REKEY_KERNELS, STAGED_KERNELS, nonzero, run_guest_script, stat_delta,
                        tagged_lines)

pytestmark = pytest.mark.vm

CONNS = 1000
CONNS_61 = 100     # the fallback path through libssl, in userspace (slow under TCG)
EVERY_TENTH_KU = 8
THREAD_CONNS = 200
MIB = 64

GUEST = GUEST_PROVIDER_CONF + r"""
set -e
cd /root
C=certs/cert.pem; K=certs/key.pem
mkdir -p www
dd if=/dev/urandom of=www/big bs=1048576 count=__MIB__ 2>/dev/null
echo small > www/small
echo "FILE big {\"sha256\":\"$(sha256sum < www/big | cut -d' ' -f1)\",\"bytes\":$(wc -c < www/big)}"
ring() {  # NAME PORT CONNS ARGS...
    n=$1; p=$2; k=$3; shift 3
    ktls-serve --cert $C --key $K --port $p --uring --json --max-conns $k "$@" \
        > $n.serve 2> $n.serr &
    echo $! > $n.pid
    waitlisten $n.serr
}
reap() {  # NAME: the server ends after its last connection; one the
    # clients gave up on would keep it waiting: killed after 60 s
    i=0
    while kill -0 $(cat $1.pid) 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
    kill $(cat $1.pid) 2>/dev/null && echo "SERVEXIT $1 still running: killed"
    wait $(cat $1.pid) || echo "SERVEXIT $1 $?"
}
# the server's first connection runs the bridge's probe (loopback sockets,
# in tls_stat): one small connection first, outside the deltas
ulimit -n 8192
ring echo 4450 $((__CONNS__ + 1))
ktls-client --no-offload --json --bytes 1k 127.0.0.1:4450 > warm.c 2>&1 || true
stats echo.before
start=$(date +%s)
ktls-client --no-offload --json --tls1_3 --bytes 256k --timeout 600 \
    --connections $((__CONNS__ - __CONNS__ / 10)) 127.0.0.1:4450 > echo.plain 2> echo.eplain &
c1=$!
ktls-client --no-offload --json --tls1_3 --bytes 256k --timeout 600 \
    --keyupdate-every __KU__ --keyupdate-requested \
    --connections $((__CONNS__ / 10)) 127.0.0.1:4450 > echo.ku 2> echo.eku &
c2=$!
wait $c1 || true
wait $c2 || true
reap echo
echo "ECHOTIME echo $(( $(date +%s) - start )) s"
stats echo.after
echo "LOAD plain $(cat echo.plain)"
echo "LOAD ku $(cat echo.ku)"
sed 's/^/LOADERR plain /' echo.eplain
sed 's/^/LOADERR ku /' echo.eku
sed 's/^/SERVE echo /' echo.serve
sed 's/^/SERR echo /' echo.serr

__THREADS__
__FILES__
"""

# --threads 2 --multishot: two rings accept on one socket, each connection
# receives with one multishot RECVMSG; a KeyUpdate every 2 records (of 8)
# on a quarter of the connections
THREADS = r"""
ring thr 4452 $((__TCONNS__ + 1)) --threads 2 --multishot
ktls-client --no-offload --json --bytes 1k 127.0.0.1:4452 > warm.t 2>&1 || true
stats thr.before
ktls-client --no-offload --json --tls1_3 --bytes 128k --timeout 300 \
    --connections $((__TCONNS__ * 3 / 4)) 127.0.0.1:4452 > thr.plain 2> thr.eplain &
c1=$!
ktls-client --no-offload --json --tls1_3 --bytes 128k --timeout 300 --keyupdate-every 2 \
    --keyupdate-requested --connections $((__TCONNS__ / 4)) 127.0.0.1:4452 > thr.ku 2> thr.eku &
c2=$!
wait $c1 || true
wait $c2 || true
reap thr
stats thr.after
echo "LOAD thrplain $(cat thr.plain)"
echo "LOAD thrku $(cat thr.ku)"
sed 's/^/LOADERR thrplain /' thr.eplain
sed 's/^/LOADERR thrku /' thr.eku
sed 's/^/SERVE thr /' thr.serve
sed 's/^/SERR thr /' thr.serr
"""

FILES = r"""
ring files 4451 5 --root /root/www --timeout 3
curl -sSk -o /dev/null https://127.0.0.1:4451/small
stats tls13.before
curl -sSk --tlsv1.3 -o tls13.body https://127.0.0.1:4451/big 2> tls13.cerr || echo "CURLFAIL tls13 $?"
stats tls13.after
echo "GOT tls13 {\"sha256\":\"$(sha256sum < tls13.body | cut -d' ' -f1)\",\"bytes\":$(wc -c < tls13.body)}"
stats tls12.before
printf 'GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
    openssl s_client -connect 127.0.0.1:4451 -tls1_2 -quiet -ign_eof > tls12.out 2> tls12.cerr || true
stats tls12.after
tail -c $((__MIB__ * 1048576)) tls12.out > tls12.body
echo "GOT tls12 {\"sha256\":\"$(sha256sum < tls12.body | cut -d' ' -f1)\",\"bytes\":$(wc -c < tls12.body)}"
# keep-alive: three answers on one connection (curl says if it re-used it)
dd if=/dev/urandom of=www/mid bs=1024 count=1536 2>/dev/null
curl -sSkv -o ka1 -o ka2 -o ka3 https://127.0.0.1:4451/mid https://127.0.0.1:4451/small \
    https://127.0.0.1:4451/mid 2> ka.cerr || echo "CURLFAIL ka $?"
echo "KA files {\"reused\":$(grep -c 'Re-using existing connection' ka.cerr),\"want\":\"$(cat www/mid www/small www/mid | sha256sum | cut -d' ' -f1)\",\"got\":\"$(cat ka1 ka2 ka3 | sha256sum | cut -d' ' -f1)\",\"bytes\":$(cat ka1 ka2 ka3 | wc -c)}"
# an idle kept-alive connection is ended after --timeout (3 s): our
# close_notify, then at most 3 s more for the peer's; the server, at its
# last connection, exits then (the client would idle 20 s)
t0=$(date +%s)
(printf 'GET /small HTTP/1.1\r\nHost: x\r\n\r\n'; sleep 20) |
    timeout 30 openssl s_client -connect 127.0.0.1:4451 -quiet -ign_eof > idle.out 2> idle.cerr &
i=0
while kill -0 $(cat files.pid) 2>/dev/null && [ $i -lt 250 ]; do sleep 0.1; i=$((i+1)); done
echo "IDLE files {\"secs\":$(( $(date +%s) - t0 )),\"body\":\"$(tail -n 1 idle.out)\"}"
reap files
sed 's/^/SERVE files /' files.serve
sed 's/^/SERR files /' files.serr
"""


def run(tmp_path_factory, kernel, conns, files=True):
    script = (GUEST.replace("__FILES__", FILES if files else "")
              .replace("__THREADS__", THREADS if files else "")
              .replace("__TCONNS__", str(THREAD_CONNS))
              .replace("__MIB__", str(MIB)).replace("__CONNS__", str(conns))
              .replace("__KU__", str(EVERY_TENTH_KU)))
    r = run_guest_script(tmp_path_factory.mktemp("uring"), script, kernel, timeout=1200)
    assert r[0] == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = tagged_lines(r.stdout, json_kinds=("STAT", "SERVE", "LOAD", "FILE", "GOT", "KA",
                                             "IDLE"),
                       text_kinds=("SERR", "CURLFAIL", "SERVEXIT", "LOADERR", "ECHOTIME"))
    res["_text"] = r.stdout + r.stderr
    res["_staged"] = kernel in STAGED_KERNELS
    return res


@pytest.fixture(scope="module", params=REKEY_KERNELS)
def guest(vm_platform, tmp_path_factory, request):
    return run(tmp_path_factory, request.param, CONNS)


@pytest.fixture(scope="module")
def guest61(vm_platform, tmp_path_factory):
    return run(tmp_path_factory, "debian-6.1", CONNS_61, files=False)


def echo_results(res):
    """The two load runs' summaries and the server's lines (not the first:
    the probe's warm-up connection)."""
    loads = [res.get(("LOAD", n), [None])[0] for n in ("plain", "ku")]
    serves = [s for s in res.get(("SERVE", "echo"), []) if s["conn"] > 1]
    assert all(loads), res["_text"][-3000:]
    assert not res.get(("SERVEXIT", "echo")), res.get(("SERR", "echo"))
    for n in ("plain", "ku"):
        assert not res.get(("LOADERR", n)), res.get(("LOADERR", n))[:10]
    return loads, serves


def test_ring_echo_many_connections_with_keyupdates(guest):
    (plain, ku), serves = echo_results(guest)
    delta = stat_delta(guest, "echo")
    sent_kus = plain["keyupdates_sent"] + ku["keyupdates_sent"]
    print("\n[vm_uring] %d connections at once in %s, %d KeyUpdates from the clients, "
          "transfer p50/p99 %s / %s ms; tls_stat %s; %s"
          % (plain["connections"] + ku["connections"], guest[("ECHOTIME", "echo")][0],
             sent_kus, ku["transfer_ms"]["p50"], ku["transfer_ms"]["p99"], nonzero(delta),
             guest[("SERR", "echo")][-1]))
    for load, n in ((plain, CONNS - CONNS // 10), (ku, CONNS // 10)):
        assert load["ok"] and load["connections"] == load["succeeded"] == n, load
        assert load["failed"] == 0, load
        assert load["bytes_sent"] == load["bytes_received"] == n * (256 << 10), load
    assert plain["keyupdates_sent"] == 0
    # (a client sends none after its last record)
    assert ku["keyupdates_sent"] == (CONNS // 10) * ((256 // 16 - 1) // EVERY_TENTH_KU), ku
    assert len(serves) == CONNS, guest.get(("SERR", "echo"))[-3:]
    for s in serves:
        assert s["ok"] and s["handoff"] and s["ring"], s
        assert s["bytes"] == 256 << 10, s
        for d in ("tx", "rx"):
            assert s["status"][d]["mode"] == "kernel-sw", s["status"]
    # the server's kernel took both keys of every connection (the clients'
    # two probes add theirs) and received every KeyUpdate (the clients'
    # records are userspace), and the server answered them
    assert delta["TlsTxSw"] >= CONNS and delta["TlsRxSw"] >= CONNS, nonzero(delta)
    assert delta["TlsRxRekeyReceived"] == sent_kus, nonzero(delta)
    answered = sum(s["status"]["tx"]["keyupdates"] for s in serves)
    assert 1 <= answered <= sent_kus, answered
    # the ring sent them (ktls_conn_owed), and each connection's
    # close_notify: the bridge wrote no record itself
    for s in serves:
        assert s["ring_ctl"] == {"keyupdates": s["status"]["tx"]["keyupdates"],
                                 "alerts": 1}, s
    for k in ("TlsTxRekeyError", "TlsRxRekeyError", "TlsDecryptError"):
        assert delta.get(k, 0) == 0, (k, nonzero(delta))
    assert "ring: %d connections, 0 failed" % (CONNS + 1) in guest[("SERR", "echo")][-1], \
        guest[("SERR", "echo")][-1]
    # asked once on the first hand-off: kTLS does not take a zero-copy send
    zc = [line for line in guest[("SERR", "echo")] if "IORING_OP_SEND_ZC" in line]
    print("[vm_uring] %s" % zc)
    assert zc == ["ktls-serve: zero-copy send (IORING_OP_SEND_ZC) on a kTLS socket: "
                  "Operation not supported; not used"], zc


def test_ring_threads_serve_many_connections(guest):
    """--threads 2 --multishot: both rings serve connections of one
    listening socket, every one handed off, received by a multishot
    RECVMSG and byte-exact; the KeyUpdates counted by the server's kernel
    (each paused it: no staged keys with --multishot, so every one ended
    a multishot receive and the ring armed it again).  Where the kernel
    has no staged keys at all (debian-7) the server says why it does not
    use multishot and receives singly."""
    loads = [guest[("LOAD", n)][0] for n in ("thrplain", "thrku")]
    serves = [s for s in guest[("SERVE", "thr")] if s["conn"] > 1]   # 1: the probe's warm-up
    delta = stat_delta(guest, "thr")
    per = [sum(1 for s in serves if s["thread"] == t) for t in (0, 1)]
    print("\n[vm_uring] --threads 2: %d connections, per ring %s; tls_stat %s; %s"
          % (len(serves), per, nonzero(delta), guest[("SERR", "thr")][-1]))
    assert not guest.get(("SERVEXIT", "thr")), guest.get(("SERR", "thr"))
    for n in ("thrplain", "thrku"):
        assert not guest.get(("LOADERR", n)), guest.get(("LOADERR", n))[:10]
    for load in loads:
        assert load["ok"] and load["failed"] == 0, load
        assert load["bytes_sent"] == load["bytes_received"] == load["connections"] * (128 << 10)
    assert sorted(s["conn"] for s in serves) == list(range(2, THREAD_CONNS + 2))
    multishot = guest["_staged"]
    assert all(s["ok"] and s["handoff"] and s.get("multishot", False) is multishot
               and s["bytes"] == 128 << 10 for s in serves), \
        [s for s in serves if not s["ok"] or s.get("multishot", False) is not multishot][:3]
    if not multishot:
        assert any("multishot receive not used" in line and "pre-staged keys" in line
                   for line in guest[("SERR", "thr")]), guest[("SERR", "thr")][:5]
    else:
        assert not any("multishot receive not used" in line for line in guest[("SERR", "thr")])
    assert min(per) > 0, per
    for s in serves:
        assert s["ring_ctl"] == {"keyupdates": s["status"]["tx"]["keyupdates"],
                                 "alerts": 1}, s
    # (a client sends none after its last record: 3 of 8 records)
    assert loads[1]["keyupdates_sent"] == (THREAD_CONNS // 4) * 3, loads[1]
    assert delta["TlsRxRekeyReceived"] == loads[1]["keyupdates_sent"], nonzero(delta)
    assert delta.get("TlsRxStagedSwitch", 0) == 0, nonzero(delta)
    assert delta["TlsRxRekeyOk"] == loads[1]["keyupdates_sent"], nonzero(delta)
    assert "ring: %d connections, 0 failed" % (THREAD_CONNS + 1) in guest[("SERR", "thr")][-1]


def files_run(res, name, i):
    s = res[("SERVE", "files")][i]
    got, want = res[("GOT", name)][0], res[("FILE", "big")][0]
    delta = stat_delta(res, name)
    print("\n[vm_uring] %s: %s, %d bytes by splice; tls_stat %s"
          % (name, s["protocol"], s["bytes"], nonzero(delta)))
    assert not res.get(("CURLFAIL", name)), res.get(("CURLFAIL", name))
    assert s["ok"] and s["handoff"] and s["splice"], s
    assert s["bytes"] == want["bytes"] == MIB << 20 and got == want, (s, got, want)
    assert delta["TlsTxSw"] == 1 and delta["TlsRxSw"] == 1, nonzero(delta)
    return s


def test_ring_splices_a_file_tls13_curl(guest):
    assert files_run(guest, "tls13", 1)["protocol"] == "TLSv1.3"


def test_ring_splices_a_file_tls12_s_client(guest):
    assert files_run(guest, "tls12", 2)["protocol"] == "TLSv1.2"


def test_ring_keeps_a_connection_alive_for_the_next_request(guest):
    """HTTP keep-alive: curl fetches three files on one connection; the
    ring answers each (the files by splice) and counts three requests."""
    ka = guest[("KA", "files")][0]
    s = guest[("SERVE", "files")][3]
    print("\n[vm_uring] keep-alive: %s; server %s requests, %d bytes" % (ka, s["requests"],
                                                                         s["bytes"]))
    assert not guest.get(("CURLFAIL", "ka")), guest.get(("CURLFAIL", "ka"))
    assert ka["reused"] == 2 and ka["got"] == ka["want"], ka
    assert s["ok"] and s["handoff"] and s["splice"] and s["requests"] == 3, s
    assert s["bytes"] == ka["bytes"] == 2 * 1536 * 1024 + len("small\n"), (s, ka)


def test_ring_ends_an_idle_kept_alive_connection(guest):
    """A client that asked for a file and then says nothing is ended after
    --timeout (3 s) with close_notify, and 3 s later at most without the
    peer's answer: the server (at its last connection) is gone long before
    the client's 20 s; its line says ok, one request."""
    idle = guest[("IDLE", "files")][0]
    s = guest[("SERVE", "files")][4]
    assert idle["body"] == "small" and 3 <= idle["secs"] < 15, idle
    assert s["ok"] and s["requests"] == 1 and s["bytes"] == len("small\n"), s


def test_61_tls13_served_through_libssl_and_says_why(guest61):
    """Debian's 6.1 cannot re-key: the bridge refuses the TLS 1.3 hand-off
    and the ring serves those connections through libssl, every byte
    still right; each refusal is printed."""
    (plain, ku), serves = echo_results(guest61)
    refusals = [line for line in guest61[("SERR", "echo")] if "hand-off refused" in line]
    assert len(refusals) == CONNS_61 + 1, guest61[("SERR", "echo")][:5]
    for load in (plain, ku):
        assert load["ok"] and load["failed"] == 0, load
        assert load["bytes_sent"] == load["bytes_received"], load
    assert len(serves) == CONNS_61
    for s in serves:
        assert s["ok"] and not s["handoff"] and s["bytes"] == 256 << 10, s
