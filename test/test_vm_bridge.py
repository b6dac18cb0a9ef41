"""The bridge on a real kernel (issue #3): Debian 12's 6.1 in a qemu guest.

Proves, with stock OpenSSL peers on the other side of every connection and
every transfer hash-checked at both ends:
  * ktls-probe's view of 6.1 (ciphers, errnos, no rekey, no pre-stage);
  * TLS 1.2 with AES-128-GCM, AES-256-GCM, AES-128-CCM and CHACHA20-POLY1305:
    both directions in the kernel (ktls-serve/ktls-client status, the
    /proc/net/tls_stat counters, and sock_diag as `ss -tie` shows it while
    the connection is open), for ktls-serve driven from the host by
    `openssl s_client`, for ktls-client against `openssl s_server` both ways,
    and for SSL_sendfile file serving;
  * TLS 1.3: policy auto keeps it in userspace (peer KeyUpdates survive);
    policy always offloads TX, and a peer's KeyUpdate(update_requested) ends
    the connection with an alert and reason "rekey-failed"/EBUSY - never with
    silently corrupted data;
  * a missing crypto module (chacha20poly1305) falls back to userspace with
    the kernel's ENOENT while AES-GCM in the same boot is still offloaded.

Guest time is precious (TCG): each module-scoped fixture is ONE guest boot
running a shell script; the tests then check its sections.
"""

import time

import pytest

from conftest import VMProcess
from helpers import GUEST_PROVIDER_CONF, SClient, free_port, make_cert, payload_lines, sha256
from vm_helpers import (GUEST_LIB, KERNEL, LiveGuest, delta, diag_module_puts, json_lines,
                        sections, tls_stat)

pytestmark = pytest.mark.vm

TLS12 = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": "AES-128-GCM",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "AES-256-GCM",
    "ECDHE-ECDSA-AES128-CCM": "AES-128-CCM",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "CHACHA20-POLY1305",
}
# what iproute2's ss prints as "cipher:" for each kernel cipher (it knows
# only some; None: ss prints no cipher field for it)
SS_CIPHER = {"AES-128-GCM": "aes-gcm-128", "AES-256-GCM": "aes-gcm-256",
             "AES-128-CCM": None, "CHACHA20-POLY1305": None}
MIB8 = 8 << 20
TIMES = {}


def _timed(name, fn):
    t0 = time.monotonic()
    try:
        return fn()
    finally:
        TIMES[name] = time.monotonic() - t0
        print("\n[vm_bridge] %s: %.1f s" % (name, TIMES[name]))


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("vmcerts")
    make_cert(str(d), kind="ec")
    return str(d)


@pytest.fixture(scope="module")
def diag_puts():
    return diag_module_puts()


def guest_sections(r, text):
    """The sections of a finished guest's output; fails unless its script
    ran to its "== end"."""
    assert r.rc == 0, r.stderr[-3000:]
    s = sections(text)
    assert "end" in s, "guest script stopped early:\n" + text[-3000:] + r.stderr[-3000:]
    return s


def boot(name, script, certs, diag_puts, timeout=300, **kw):
    """One guest boot running GUEST_LIB + script; returns its sections."""
    def run():
        vm = VMProcess(GUEST_LIB + script, kernel=KERNEL, timeout=timeout,
                       puts=[(certs, "/root/certs")] + diag_puts, **kw)
        try:
            return vm.wait()
        finally:
            vm.kill()
    r = _timed(name, run)
    return guest_sections(r, r.stdout)


def tag_of(cipher):
    return cipher.replace("ECDHE-ECDSA-", "").replace("-", "").lower()


# ---------------------------------------------------------------------------
# Boot 1: probe + TLS 1.2 in the guest, four ciphers
# ---------------------------------------------------------------------------

TLS12_SCRIPT = GUEST_PROVIDER_CONF + r"""
loaddiag
conf zerocopy "zerocopy_sendfile = on"
echo "== probe"; ktls-probe --json
mkdir -p /root/www; dd if=/dev/urandom of=/root/www/f bs=1048576 count=8 2>/dev/null
echo "== file"; sha256sum /root/www/f
mkfifo /tmp/hold; exec 9<>/tmp/hold   # stdin for s_server: never EOF
port=5000
for c in %(ciphers)s; do
	t=$(echo $c | sed 's/ECDHE-ECDSA-//; s/-//g' | tr A-Z a-z)
	V="-tls1_2 -cipher $c"
	# (1) hold a connection open: ktls-serve <- s_client, look at it
	port=$((port+1))
	hold $t $port "--tls1_2 --cipher $c" "$V"
	# (2) ktls-client --mode send -> s_server -quiet (hash what it printed)
	port=$((port+1))
	sh -c "openssl s_server -accept 127.0.0.1:$port -cert $C -key $K -naccept 1 -quiet $V </tmp/hold 2>$t.send.serr | sha256sum >$t.send.hash" &
	spid=$!
	waitport $port
	st $t.send.stat0
	ktls-client --json --mode send --bytes %(nbytes)d --tls1_2 --cipher $c 127.0.0.1:$port >$t.send.json 2>$t.send.err
	rc=$?; echo "== $t.send.rc"; echo $rc
	wait $spid
	st $t.send.stat1
	sec $t.send.json; sec $t.send.hash; sec $t.send.err
	# (3) s_server -WWW -> ktls-client --mode recv
	port=$((port+1))
	(cd /root/www && exec openssl s_server -WWW -accept 127.0.0.1:$port -cert $C -key $K -naccept 1 $V </tmp/hold >/dev/null 2>/root/$t.www.serr) &
	spid=$!
	waitport $port
	ktls-client --json --mode recv --request 'GET /f HTTP/1.0\r\n\r\n' --output $t.www.got --tls1_2 --cipher $c 127.0.0.1:$port >$t.recv.json 2>$t.recv.err
	rc=$?; echo "== $t.recv.rc"; echo $rc
	wait $spid
	sec $t.recv.json; sec $t.recv.err
	echo "== $t.recv.body"; wc -c <$t.www.got; head -n1 $t.www.got; tail -c %(nbytes)d $t.www.got | sha256sum
	rm -f $t.www.got
	# (4) SSL_sendfile: ktls-serve --root, fetched by s_client and ktls-client,
	# with zerocopy_sendfile = on
	port=$((port+1))
	OPENSSL_CONF=/root/zerocopy.cnf ktls-serve --cert $C --key $K --port $port --root /root/www --max-conns 2 --json --tls1_2 --cipher $c >$t.sf.json 2>$t.sf.err &
	spid=$!
	waitport $port
	st $t.sf.stat0
	printf 'GET /f HTTP/1.1\r\nHost: x\r\n\r\n' | openssl s_client -connect 127.0.0.1:$port -quiet $V >$t.sf.got 2>$t.sf.cerr
	echo "== $t.sf.body1"; wc -c <$t.sf.got; head -n1 $t.sf.got; tail -c %(nbytes)d $t.sf.got | sha256sum
	ktls-client --json --mode recv --request 'GET /f HTTP/1.1\r\nHost: x\r\n\r\n' --output $t.sf.got --tls1_2 --cipher $c 127.0.0.1:$port >$t.sf.cjson 2>$t.sf.cerr2
	echo "== $t.sf.body2"; wc -c <$t.sf.got; head -n1 $t.sf.got; tail -c %(nbytes)d $t.sf.got | sha256sum
	wait $spid
	st $t.sf.stat1
	sec $t.sf.json; sec $t.sf.cjson; sec $t.sf.err
	rm -f $t.sf.got
done
echo "== end"
"""


@pytest.fixture(scope="module")
def tls12_guest(vm_platform, certs, diag_puts):
    script = TLS12_SCRIPT % {"ciphers": " ".join(TLS12), "nbytes": MIB8}
    return boot("boot tls12 (probe + 4 ciphers x hold/send/recv/sendfile)", script, certs,
                diag_puts, timeout=420)


def test_probe_on_debian_6_1(tls12_guest):
    caps = json_lines(tls12_guest["probe"])[0]
    assert caps["kernel"].startswith("6.1.")
    assert caps["ulp"] == {"available": True, "reason": "ok"}
    got = {(c["name"], c["tls"]): (c["tx"], c["rx"]) for c in caps["ciphers"]}
    for name in ("AES-128-GCM", "AES-256-GCM", "AES-128-CCM", "CHACHA20-POLY1305"):
        for v in ("1.2", "1.3"):
            assert got[(name, v)] == ("ok", "ok"), (name, v, got[(name, v)])
    for name in ("SM4-GCM", "SM4-CCM"):
        for v in ("1.2", "1.3"):
            assert got[(name, v)] == ("ENOENT", "ENOENT"), (name, v)
    for name in ("ARIA-128-GCM", "ARIA-256-GCM"):
        # 6.1 knows ARIA for TLS 1.2 only; Debian's cloud kernel has no aria module
        assert got[(name, "1.3")] == ("EINVAL", "EINVAL"), name
        assert got[(name, "1.2")] == ("ENOENT", "ENOENT"), name
    assert caps["rekey"] is False and caps["rekey_reason"] == "EBUSY"
    assert caps["prestage"] is False
    assert {n["name"] for n in caps["nics"]} >= {"lo", "eth0"}


def _check_stock_peer_conn(s, t):
    st0, st1, st2 = (tls_stat(s[t + k]) for k in (".stat0", ".stat1", ".stat2"))
    # the bridge's socket (and only it: s_client does not use kTLS) while open
    assert st1["TlsCurrTxSw"] - st0["TlsCurrTxSw"] == 1, (st0, st1)
    assert st1["TlsCurrRxSw"] - st0["TlsCurrRxSw"] == 1, (st0, st1)
    d = delta(st0, st2)
    assert d["TlsTxSw"] >= 1 and d["TlsRxSw"] >= 1, d
    assert st2["TlsCurrTxSw"] == st0["TlsCurrTxSw"], "kTLS socket leaked"
    assert d["TlsDecryptError"] == 0
    return st0, st1, st2


@pytest.mark.parametrize("cipher", list(TLS12))
def test_tls12_kernel_owns_both_directions(tls12_guest, cipher):
    """ktls-serve <- stock s_client, connection held open: tls_stat and
    sock_diag (ss -tie) show the tls ULP with TX and RX in kernel software."""
    s, t, kc = tls12_guest, tag_of(cipher), TLS12[cipher]
    _check_stock_peer_conn(s, t)
    ss_line = s[t + ".ss"]
    assert "tcp-ulp-tls" in ss_line, "ss -tie shows no tls ULP: %r" % ss_line
    assert "version: 1.2" in ss_line and "rxconf: sw" in ss_line and "txconf: sw" in ss_line, \
        ss_line
    if SS_CIPHER[kc]:
        assert "cipher: " + SS_CIPHER[kc] in ss_line, ss_line
    res = json_lines(s[t + ".hold.json"])[0]
    assert res["ok"] is True and res["cipher"] == cipher
    assert res["kernel_conf"] == {"tx": "sw", "rx": "sw"}, res   # this connection's own
    # zerocopy_sendfile is off by default (the kernel's word); no TLS 1.2 no-pad
    assert res["kernel_opts"] == {"rx_expect_no_pad": None, "tx_zerocopy_ro": False}, res
    assert res["sha256_in"] == sha256(("hello-%s\n" % t).encode())
    assert s[t + ".hold.out"] == "hello-%s\n" % t
    for d in ("tx", "rx"):
        assert res["status"][d]["mode"] == "kernel-sw", res["status"]
        assert res["status"][d]["cipher"] == kc and res["status"][d]["tls"] == "1.2"


@pytest.mark.parametrize("cipher", list(TLS12))
def test_tls12_client_sends_to_s_server(tls12_guest, cipher):
    """ktls-client --mode send (8 MiB) -> openssl s_server -quiet."""
    s, t, kc = tls12_guest, tag_of(cipher), TLS12[cipher]
    assert s[t + ".send.rc"].strip() == "0", s[t + ".send.err"]
    res = json_lines(s[t + ".send.json"])[0]
    assert res["ok"] is True and res["bytes_sent"] == MIB8 and res["cipher"] == cipher
    assert s[t + ".send.hash"].split()[0] == res["sha256_sent"], "s_server got other bytes"
    for d in ("tx", "rx"):
        assert res["status"][d]["mode"] == "kernel-sw", res["status"]
        assert res["status"][d]["cipher"] == kc
    assert res["status"]["tx"]["bytes"] >= MIB8
    # the connection's own socket (sock_diag), not only a process-wide count
    # that the bridge's probe pair moves too
    assert res["kernel_conf"] == {"tx": "sw", "rx": "sw"}, res
    d = delta(tls_stat(s[t + ".send.stat0"]), tls_stat(s[t + ".send.stat1"]))
    assert d["TlsTxSw"] >= 1 and d["TlsRxSw"] >= 1 and d["TlsDecryptError"] == 0, d


@pytest.mark.parametrize("cipher", list(TLS12))
def test_tls12_client_receives_from_s_server(tls12_guest, cipher):
    """openssl s_server -WWW -> ktls-client --mode recv (8 MiB file)."""
    s, t, kc = tls12_guest, tag_of(cipher), TLS12[cipher]
    want = s["file"].split()[0]
    assert s[t + ".recv.rc"].strip() == "0", s[t + ".recv.err"]
    res = json_lines(s[t + ".recv.json"])[0]
    size, status_line, body_hash = s[t + ".recv.body"].splitlines()
    assert status_line.startswith("HTTP/1.0 200"), status_line
    assert body_hash.split()[0] == want, "body differs from the served file"
    assert res["ok"] is True and res["bytes_received"] == int(size) > MIB8
    for d in ("tx", "rx"):
        assert res["status"][d]["mode"] == "kernel-sw", res["status"]
        assert res["status"][d]["cipher"] == kc
    assert res["status"]["rx"]["bytes"] >= MIB8
    assert res["kernel_conf"] == {"tx": "sw", "rx": "sw"}, res


@pytest.mark.parametrize("cipher", list(TLS12))
def test_tls12_sendfile(tls12_guest, cipher):
    """ktls-serve --root: SSL_sendfile through kernel TX, fetched by a stock
    s_client and by ktls-client; body hash equal to the file's.  With
    zerocopy_sendfile = on the kernel has TLS_TX_ZEROCOPY_RO on each served
    connection (OpenSSL 3.0 never asks for it: the bridge sets it)."""
    s, t, kc = tls12_guest, tag_of(cipher), TLS12[cipher]
    want = s["file"].split()[0]
    for body in (".sf.body1", ".sf.body2"):
        size, status_line, body_hash = s[t + body].splitlines()
        assert status_line.startswith("HTTP/1.1 200"), (body, status_line)
        assert body_hash.split()[0] == want, body
        assert int(size) == MIB8 + len("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                                       "Connection: close\r\n\r\n" % MIB8), body
    conns = json_lines(s[t + ".sf.json"])
    assert len(conns) == 2, s[t + ".sf.err"]
    for res in conns:
        assert res["ok"] is True and res["sendfile"] is True, res
        assert res["bytes"] == MIB8
        assert res["status"]["tx"]["mode"] == "kernel-sw" and res["status"]["tx"]["cipher"] == kc
        assert res["kernel_conf"] == {"tx": "sw", "rx": "sw"}, res
        assert res["kernel_opts"]["tx_zerocopy_ro"] is True, res
    cres = json_lines(s[t + ".sf.cjson"])[0]
    assert cres["ok"] is True and cres["status"]["rx"]["mode"] == "kernel-sw"
    assert cres["kernel_conf"] == {"tx": "sw", "rx": "sw"}, cres
    d = delta(tls_stat(s[t + ".sf.stat0"]), tls_stat(s[t + ".sf.stat1"]))
    # two server sockets, plus the one ktls-client connection's own
    assert d["TlsTxSw"] >= 3 and d["TlsRxSw"] >= 3 and d["TlsDecryptError"] == 0, d


# ---------------------------------------------------------------------------
# Boot 2: TLS 1.3 in the guest (policy auto / always, peer KeyUpdates)
# ---------------------------------------------------------------------------

TLS13_SCRIPT = r"""
loaddiag
hold auto 5001 --tls1_3 -tls1_3
hold always 5002 "--tls1_3 --tls13-offload always" -tls1_3
# always: peer KeyUpdates that do not ask for an answer are fine (RX stays in
# userspace on OpenSSL 3.0); auto: even update_requested is fine.  The auto
# run's received stream (--output) is the reference for the prefix check.
ktls-serve --cert $C --key $K --port 5003 --echo --max-conns 1 --json --tls1_3 --tls13-offload always >ku.json 2>ku.err &
spid=$!; waitport 5003
st ku.stat0
ktls-client --json --tls1_3 --bytes %(nbytes)d --keyupdate-every 16 127.0.0.1:5003 >ku.cjson 2>ku.cerr
rc=$?; echo "== ku.rc"; echo $rc
wait $spid
st ku.stat1
sec ku.json; sec ku.cjson; sec ku.err; sec ku.cerr
ktls-serve --cert $C --key $K --port 5004 --echo --max-conns 1 --json --tls1_3 >kr.json 2>kr.err &
spid=$!; waitport 5004
ktls-client --json --tls1_3 --bytes %(nbytes)d --keyupdate-every 16 --keyupdate-requested --output ref.bin 127.0.0.1:5004 >kr.cjson 2>kr.cerr
rc=$?; echo "== kr.rc"; echo $rc
wait $spid
sec kr.json; sec kr.cjson; sec kr.err; sec kr.cerr
# always + update_requested: the server cannot re-key 6.1's TX -> clean end
ktls-serve --cert $C --key $K --port 5005 --echo --max-conns 1 --json --tls1_3 --tls13-offload always >kx.json 2>kx.err &
spid=$!; waitport 5005
st kx.stat0
ktls-client --json --tls1_3 --bytes %(nbytes)d --keyupdate-every 64 --keyupdate-requested --timeout 20 --output kx.bin 127.0.0.1:5005 >kx.cjson 2>kx.cerr
rc=$?; echo "== kx.rc"; echo $rc
wait $spid
st kx.stat1
sec kx.json; sec kx.cjson; sec kx.err; sec kx.cerr
echo "== kx.prefix"; n=$(wc -c <kx.bin); echo $n; cmp -n $n kx.bin ref.bin && echo prefix-ok
echo "== end"
"""


@pytest.fixture(scope="module")
def tls13_guest(vm_platform, certs, diag_puts):
    script = TLS13_SCRIPT % {"nbytes": 4 << 20}
    return boot("boot tls13 (auto/always, KeyUpdates)", script, certs, diag_puts)


def test_tls13_auto_stays_in_userspace(tls13_guest):
    s = tls13_guest
    st0, st1 = tls_stat(s["auto.stat0"]), tls_stat(s["auto.stat1"])
    assert st1["TlsCurrTxSw"] == st0["TlsCurrTxSw"] and st1["TlsCurrRxSw"] == st0["TlsCurrRxSw"]
    assert "tcp-ulp-tls" not in s["auto.ss"], s["auto.ss"]
    res = json_lines(s["auto.hold.json"])[0]
    assert res["ok"] is True and res["protocol"] == "TLSv1.3"
    assert s["auto.hold.out"] == "hello-auto\n"
    tx = res["status"]["tx"]
    assert tx["mode"] == "userspace" and tx["reason_code"] == "tls13-no-rekey", tx
    assert tx["errno"] == "EBUSY", tx


def test_tls13_always_offloads_tx(tls13_guest):
    s = tls13_guest
    st0, st1, st2 = (tls_stat(s["always.stat" + k]) for k in "012")
    assert st1["TlsCurrTxSw"] - st0["TlsCurrTxSw"] == 1, (st0, st1)
    # OpenSSL 3.0 never offers TLS 1.3 receive keys
    assert st1["TlsCurrRxSw"] == st0["TlsCurrRxSw"], (st0, st1)
    assert st2["TlsTxSw"] - st0["TlsTxSw"] >= 1
    ss_line = s["always.ss"]
    assert "tcp-ulp-tls" in ss_line and "version: 1.3" in ss_line, ss_line
    assert "txconf: sw" in ss_line and "rxconf: sw" not in ss_line, ss_line
    res = json_lines(s["always.hold.json"])[0]
    assert res["ok"] is True and s["always.hold.out"] == "hello-always\n"
    assert res["sha256_in"] == sha256(b"hello-always\n")
    assert res["status"]["tx"]["mode"] == "kernel-sw" and res["status"]["tx"]["tls"] == "1.3"
    assert res["status"]["rx"]["reason_code"] == "not-offered"


def _keyupdate_echo_ok(s, tag):
    """ktls-client (sending KeyUpdates) <-> ktls-serve: echo intact both ends."""
    assert s[tag + ".rc"].strip() == "0", s[tag + ".cerr"] + s[tag + ".err"]
    cres, sres = json_lines(s[tag + ".cjson"])[0], json_lines(s[tag + ".json"])[0]
    assert cres["ok"] is True and cres["keyupdates_sent"] > 0
    assert cres["sha256_received"] == cres["sha256_sent"]
    assert sres["ok"] is True and sres["sha256_in"] == cres["sha256_sent"]
    return sres


def test_tls13_always_survives_peer_keyupdate_not_requested(tls13_guest):
    s = tls13_guest
    sres = _keyupdate_echo_ok(s, "ku")
    assert sres["status"]["tx"]["mode"] == "kernel-sw"
    # this connection's TX was the kernel's to the end; OpenSSL 3.0 kept RX
    assert sres["kernel_conf"] == {"tx": "sw", "rx": "base"}, sres
    d = delta(tls_stat(s["ku.stat0"]), tls_stat(s["ku.stat1"]))
    assert d["TlsTxSw"] >= 1, d


def test_tls13_auto_survives_peer_keyupdate_requested(tls13_guest):
    sres = _keyupdate_echo_ok(tls13_guest, "kr")
    assert sres["status"]["tx"]["reason_code"] == "tls13-no-rekey"


def test_tls13_always_peer_keyupdate_requested_ends_cleanly(tls13_guest):
    """6.1 cannot re-key TX: the server must end the connection with an
    alert and say why; the client sees an error and only correct bytes."""
    s = tls13_guest
    assert s["kx.rc"].strip() == "1", "the client should see the connection fail:\n" \
        + s["kx.cerr"]
    cres, sres = json_lines(s["kx.cjson"])[0], json_lines(s["kx.json"])[0]
    assert cres["ok"] is False
    assert "alert internal error" in s["kx.cerr"], s["kx.cerr"]
    assert sres["ok"] is False, sres
    tx = sres["status"]["tx"]
    assert tx["reason_code"] == "rekey-failed" and tx["errno"] == "EBUSY", tx
    assert tx["mode"] == "kernel-sw" and sres["kernel_conf"]["tx"] == "sw", sres
    n, verdict = s["kx.prefix"].split("\n")[:2]
    assert int(n) == cres["bytes_received"] and verdict == "prefix-ok", s["kx.prefix"]
    assert int(n) < 4 << 20, "the whole echo came back despite the failure"
    d = delta(tls_stat(s["kx.stat0"]), tls_stat(s["kx.stat1"]))
    assert d["TlsTxSw"] >= 1 and d["TlsDecryptError"] == 0, d


# ---------------------------------------------------------------------------
# Boot 3: ktls-serve in the guest, stock s_client on the HOST (--forward)
# ---------------------------------------------------------------------------

HOST_SCRIPT = r"""
loaddiag
ktls-serve --cert $C --key $K --port 4433 --bind 0.0.0.0 --echo --json --max-conns 5 --cipher %(ciphers)s >s1.json 2>s1.err &
p1=$!
ktls-serve --cert $C --key $K --port 4434 --bind 0.0.0.0 --echo --json --max-conns 1 --tls1_3 --tls13-offload always >s2.json 2>s2.err &
p2=$!
waitport 4433; waitport 4434
st stat0
echo "== samples"
# what sock_diag and tls_stat say about port 4433 while the host's connection is open
(n=0; while :; do
	n=$((n+1))
	l=$(ss -tnieH state established "( sport = :4433 )" 2>/dev/null | grep -o 'tcp-ulp-tls.*')
	c=$(awk '/TlsCurr(Tx|Rx)Sw/ {printf "%%s=%%s ", $1, $2}' /proc/net/tls_stat)
	[ -n "$l" ] && echo "SAMPLE $n $c| $l"
	sleep 0.3
done) &
smp=$!
echo READY
wait $p1; wait $p2
kill $smp
st stat1
sec s1.json; sec s2.json; sec s1.err; sec s2.err
echo "== end"
"""


def echo_through(port, args, nbytes, seed, msgfile, on_mid=None, commands=(), max_chunks=None):
    """Echo nbytes of s_client-safe lines, 500 lines at a time; after each
    chunk's echo is back, the next of `commands` (k/K) if any, and the next
    chunk only once s_client has sent that KeyUpdate.
    Returns (sent, got, stderr, commands sent, (KeyUpdates sent, received))."""
    lines = payload_lines(nbytes, seed=seed)
    cl = SClient(port, args, msgfile)
    sent = bytearray()
    segs = list(range(0, len(lines), 500))[:max_chunks]
    for i, seg in enumerate(segs):
        chunk = b"".join(lines[seg:seg + 500])
        if not cl.send(chunk):
            break
        sent += chunk
        if not cl.wait_for(len(sent)):
            break
        if on_mid and i == len(segs) // 2:
            on_mid()
        if commands and i + 1 < len(segs):
            if not cl.command(commands[cl.cmds % len(commands)]):
                break
    got, err = cl.finish()
    return bytes(sent), got, err, cl.cmds, cl.keyupdates()


@pytest.fixture(scope="module")
def host_guest(vm_platform, certs, diag_puts, tmp_path_factory):
    """One guest, five host connections to ktls-serve on 4433 (the four
    TLS 1.2 ciphers with 8 MiB each, then TLS 1.3 auto with k/K) and one to
    4434 (TLS 1.3 always, then K)."""
    p1, p2 = free_port(), free_port()
    msgs = tmp_path_factory.mktemp("s_client_msg")
    out = {"conns": {}}
    t0 = time.monotonic()
    live = LiveGuest(GUEST_LIB + HOST_SCRIPT % {"ciphers": ":".join(TLS12)}, kernel=KERNEL,
                     timeout=420, forwards=[(p1, 4433), (p2, 4434)],
                     puts=[(certs, "/root/certs")] + diag_puts)
    try:
        live.wait_line(r"^READY$", 180)
        for n, cipher in enumerate(TLS12):
            sample = {}

            def mid():
                i = live.wait_line(r"^SAMPLE .*tcp-ulp-tls", 20, start=live.count())
                sample["line"] = live.buf[i - 1]
            t1 = time.monotonic()
            sent, got, err, _, _ = echo_through(p1, ["-tls1_2", "-cipher", cipher], MIB8,
                                                seed=n + 1, msgfile=msgs / cipher, on_mid=mid)
            out["conns"][cipher] = dict(sent=sent, got=got, err=err, sample=sample.get("line"),
                                        secs=time.monotonic() - t1)
        sent, got, err, cmds, kus = echo_through(p1, ["-tls1_3"], 2 << 20, seed=9,
                                                 msgfile=msgs / "auto13",
                                                 commands=(b"k\n", b"K\n"))
        out["auto13"] = dict(sent=sent, got=got, err=err, cmds=cmds, kus=kus)
        # always: one chunk, then K (update_requested), then more data
        sent, got, err, cmds, kus = echo_through(p2, ["-tls1_3"], 1 << 20, seed=10,
                                                 msgfile=msgs / "always13",
                                                 commands=(b"K\n",), max_chunks=3)
        out["always13"] = dict(sent=sent, got=got, err=err, cmds=cmds, kus=kus)
        r, text = live.finish()
    except BaseException:
        live.kill()
        raise
    TIMES["boot host-driven (4x8 MiB + TLS 1.3)"] = time.monotonic() - t0
    print("\n[vm_bridge] boot host-driven: %.1f s; per cipher: %s" % (
        time.monotonic() - t0,
        ", ".join("%s %.1f s" % (c, v["secs"]) for c, v in out["conns"].items())))
    out["s"] = guest_sections(r, text)
    return out


@pytest.mark.parametrize("cipher", list(TLS12))
def test_tls12_host_s_client_echo(host_guest, cipher):
    """8 MiB from the host's stock s_client through qemu's forward to
    ktls-serve in the guest and back, byte for byte, both directions in the
    kernel (JSON status and sock_diag while the connection was open)."""
    c, s = host_guest["conns"][cipher], host_guest["s"]
    n = list(TLS12).index(cipher)
    assert len(c["sent"]) >= MIB8
    assert sha256(c["got"]) == sha256(c["sent"]), "echo differs: " + c["err"][-500:]
    res = json_lines(s["s1.json"])[n]
    assert res["ok"] is True and res["cipher"] == cipher, s["s1.err"]
    assert res["sha256_in"] == sha256(c["sent"]) and res["bytes"] == len(c["sent"])
    for d in ("tx", "rx"):
        assert res["status"][d]["mode"] == "kernel-sw", res["status"]
        assert res["status"][d]["cipher"] == TLS12[cipher]
    line = c["sample"]
    assert line and "TlsCurrTxSw=1 TlsCurrRxSw=1" in line, line
    assert "version: 1.2" in line and "rxconf: sw" in line and "txconf: sw" in line, line


def test_tls12_host_tls_stat(host_guest):
    s = host_guest["s"]
    d = delta(tls_stat(s["stat0"]), tls_stat(s["stat1"]))
    # four TLS 1.2 connections, both directions each (+ probes)
    assert d["TlsTxSw"] >= 4 and d["TlsRxSw"] >= 4, d
    assert d["TlsDecryptError"] == 0 and d["TlsCurrTxSw"] == 0, d


def test_tls13_auto_host_keyupdates_survive(host_guest):
    c, s = host_guest["auto13"], host_guest["s"]
    # s_client sent one KeyUpdate per k/K, and the server answered each K
    # (update_requested) with its own; data after each k still echoed, so
    # the server read it under the key that k moved to
    assert c["cmds"] > 0 and c["kus"] == (c["cmds"], c["cmds"] // 2), (c, c["err"][-800:])
    assert sha256(c["got"]) == sha256(c["sent"]), "echo differs: " + c["err"][-500:]
    res = json_lines(s["s1.json"])[4]
    assert res["ok"] is True and res["protocol"] == "TLSv1.3"
    assert res["sha256_in"] == sha256(c["sent"])
    assert res["status"]["tx"]["mode"] == "userspace"
    assert res["status"]["tx"]["reason_code"] == "tls13-no-rekey"


def test_tls13_always_host_K_ends_cleanly(host_guest):
    """s_client 'K' against --tls13-offload always on 6.1: an explained end
    with an alert; what s_client got is a prefix of what it sent."""
    c, s = host_guest["always13"], host_guest["s"]
    # s_client sent its KeyUpdate; the server answered with an alert, not one
    assert c["cmds"] == 1 and c["kus"] == (1, 0), c
    assert c["sent"].startswith(c["got"]), "s_client received bytes it never sent"
    assert len(c["got"]) >= 500 * 203 // 2, "the first chunk should have come back"
    assert "alert internal error" in c["err"], c["err"][-800:]
    res = json_lines(s["s2.json"])[0]
    assert res["ok"] is False, res
    tx = res["status"]["tx"]
    assert tx["mode"] == "kernel-sw" and tx["reason_code"] == "rekey-failed", tx
    assert tx["errno"] == "EBUSY", tx


# ---------------------------------------------------------------------------
# Boot 4: no chacha20poly1305 module
# ---------------------------------------------------------------------------

NOMOD_SCRIPT = r"""
loaddiag
echo "== probe"; ktls-probe --json
hold chacha 5001 "--tls1_2" "-tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305"
hold gcm 5002 "--tls1_2" "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256"
ktls-serve --cert $C --key $K --port 5003 --echo --max-conns 2 --json --tls1_2 >x.json 2>x.err &
spid=$!; waitport 5003
for c in ECDHE-ECDSA-CHACHA20-POLY1305 ECDHE-ECDSA-AES128-GCM-SHA256; do
	ktls-client --json --tls1_2 --cipher $c --bytes %(nbytes)d 127.0.0.1:5003 >>x.cjson 2>>x.cerr
	echo $? >>x.rc
done
wait $spid
sec x.json; sec x.cjson; sec x.rc; sec x.err; sec x.cerr
echo "== end"
"""


@pytest.fixture(scope="module")
def nomod_guest(vm_platform, certs, diag_puts):
    return boot("boot no-module chacha20poly1305", NOMOD_SCRIPT % {"nbytes": 4 << 20}, certs,
                diag_puts, no_modules=["chacha20poly1305"])


def test_missing_module_probe(nomod_guest):
    caps = json_lines(nomod_guest["probe"])[0]
    got = {(c["name"], c["tls"]): (c["tx"], c["rx"]) for c in caps["ciphers"]}
    assert got[("CHACHA20-POLY1305", "1.2")] == ("ENOENT", "ENOENT")
    assert got[("CHACHA20-POLY1305", "1.3")] == ("ENOENT", "ENOENT")
    assert got[("AES-128-GCM", "1.2")] == ("ok", "ok")


def _fallback_reason(d):
    assert d["mode"] == "userspace", d
    assert d["reason_code"] == "cipher-unsupported", d     # ENOENT: no crypto module
    assert d["errno"] == "ENOENT", d


def test_missing_module_falls_back_with_stock_peer(nomod_guest):
    s = nomod_guest
    st0, st1 = tls_stat(s["chacha.stat0"]), tls_stat(s["chacha.stat1"])
    assert st1["TlsCurrTxSw"] == st0["TlsCurrTxSw"] and st1["TlsCurrRxSw"] == st0["TlsCurrRxSw"]
    res = json_lines(s["chacha.hold.json"])[0]
    assert res["ok"] is True and res["cipher"] == "ECDHE-ECDSA-CHACHA20-POLY1305"
    assert s["chacha.hold.out"] == "hello-chacha\n"
    assert res["sha256_in"] == sha256(b"hello-chacha\n")
    _fallback_reason(res["status"]["tx"])
    _fallback_reason(res["status"]["rx"])


def test_missing_module_bridge_to_bridge_transfer(nomod_guest):
    s = nomod_guest
    assert s["x.rc"].split() == ["0", "0"], s["x.cerr"]
    cl = json_lines(s["x.cjson"])
    sv = json_lines(s["x.json"])
    assert len(cl) == 2 and len(sv) == 2
    for c, v in zip(cl, sv):
        assert c["ok"] is True and v["ok"] is True
        assert c["sha256_received"] == c["sha256_sent"] == v["sha256_in"]
        assert c["bytes_sent"] == 4 << 20
    for side in (cl[0], sv[0]):
        _fallback_reason(side["status"]["tx"])
        _fallback_reason(side["status"]["rx"])
    for side in (cl[1], sv[1]):
        assert side["status"]["tx"]["mode"] == side["status"]["rx"]["mode"] == "kernel-sw"


def test_aes_gcm_still_offloaded_without_chacha(nomod_guest):
    s = nomod_guest
    _check_stock_peer_conn(s, "gcm")
    assert "tcp-ulp-tls" in s["gcm.ss"] and "cipher: aes-gcm-128" in s["gcm.ss"], s["gcm.ss"]
    res = json_lines(s["gcm.hold.json"])[0]
    assert res["ok"] is True and res["status"]["tx"]["mode"] == "kernel-sw"
    assert res["status"]["rx"]["mode"] == "kernel-sw"


# ---------------------------------------------------------------------------
# Boot 5: no tls module at all (the ULP cannot attach)
# ---------------------------------------------------------------------------

NOTLS_SCRIPT = r"""
echo "== probe"; ktls-probe --json
echo "== ulps"; cat /proc/sys/net/ipv4/tcp_available_ulp
ktls-serve --cert $C --key $K --port 5004 --echo --max-conns 2 --json >n.json 2>n.err &
spid=$!; waitport 5004
for v in 1_2 1_3; do
	ktls-client --json --tls$v --bytes %(nbytes)d 127.0.0.1:5004 >>n.cjson 2>>n.cerr
	echo $? >>n.rc
done
wait $spid
echo "== after"; [ -e /proc/net/tls_stat ] && echo "tls_stat present" || echo "no tls_stat"
cut -d' ' -f1 /proc/modules | grep -x tls || echo "tls not loaded"
sec n.json; sec n.cjson; sec n.rc; sec n.err; sec n.cerr
echo "== end"
"""


@pytest.fixture(scope="module")
def notls_guest(vm_platform, certs):
    return boot("boot no-module tls", NOTLS_SCRIPT % {"nbytes": 2 << 20}, certs, [],
                no_modules=["tls"])


def test_no_tls_module_probe_says_why(notls_guest):
    """The kernel has kTLS, but as a module that is not there: the probe
    says the ULP is unavailable (ENOENT) and every cipher with it."""
    s = notls_guest
    assert "tls" not in s["ulps"].split(), s["ulps"]
    caps = json_lines(s["probe"])[0]
    assert caps["ulp"] == {"available": False, "reason": "ENOENT"}, caps["ulp"]
    assert caps["rekey"] is False and caps["prestage"] is False, caps
    for c in caps["ciphers"]:
        assert (c["tx"], c["rx"]) == ("ENOENT", "ENOENT"), c


def test_no_tls_module_transfers_in_userspace(notls_guest):
    """Both sides fall back to userspace records with reason ulp-unavailable
    (ENOENT), the data intact both ways; the module was never loaded."""
    s = notls_guest
    assert s["n.rc"].split() == ["0", "0"], s["n.cerr"]
    assert s["after"].split("\n")[:2] == ["no tls_stat", "tls not loaded"], s["after"]
    cl, sv = json_lines(s["n.cjson"]), json_lines(s["n.json"])
    assert [c["protocol"] for c in cl] == ["TLSv1.2", "TLSv1.3"], cl
    assert len(sv) == 2, s["n.err"]
    for c, v in zip(cl, sv):
        assert c["ok"] is True and v["ok"] is True, (c, v)
        assert c["bytes_sent"] == 2 << 20
        assert c["sha256_received"] == c["sha256_sent"] == v["sha256_in"]
        for side in (c, v):
            # OpenSSL 3.0 offers no TLS 1.3 receive keys: that direction
            # never reaches the ULP
            dirs = ("tx", "rx") if c["protocol"] == "TLSv1.2" else ("tx",)
            for d in ("tx", "rx"):
                st = side["status"][d]
                assert st["mode"] == "userspace", st
                if d in dirs:
                    assert (st["reason_code"], st["errno"]) == ("ulp-unavailable", "ENOENT"), st
                else:
                    assert st["reason_code"] == "not-offered", st

