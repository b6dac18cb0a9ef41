"""Host interop: the bridge's apps against stock OpenSSL peers.

This machine's kernel has no kTLS, so everything here runs the FALLBACK
path (userspace records, with the reason recorded); the VM tests prove the
kernel path.  Every transfer is checked byte for byte (sha256 both ends).
"""

import json
import os
import subprocess
import threading
import time

import pytest

from conftest import ktls_skip
from helpers import (SClient, app, free_port, host_has_ktls, make_cert, package_version,
                     payload_lines, sha256, wait_port)

pytestmark = pytest.mark.host

TLS12 = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
         "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-CCM"]
TLS13 = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
         "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256"]
ALL13 = ":".join(TLS13)
CASES = [("1.2", c) for c in TLS12] + [("1.3", c) for c in TLS13]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_cert(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="module")
def fallback_only():
    if host_has_ktls():
        ktls_skip("this host kernel has kTLS", allowed="host-has-ktls")


def version_args(version, cipher, ours):
    if version == "1.2":
        return (["--tls1_2", "--cipher", cipher] if ours
                else ["-tls1_2", "-cipher", cipher])
    return (["--tls1_3", "--ciphersuites", cipher] if ours
            else ["-tls1_3", "-ciphersuites", cipher])


def start_serve(certs, *extra):
    cert, key = certs
    port = free_port()
    proc = subprocess.Popen([app("ktls-serve"), "--cert", cert, "--key", key,
                             "--port", str(port), "--json", "--verbose", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_port(port, proc)
    return proc, port


def finish(proc, timeout=60):
    out, err = proc.communicate(timeout=timeout)
    return out.decode(), err.decode()


def test_probe_reports_why_no_offload(fallback_only):
    out = subprocess.run([app("ktls-probe"), "--json"], capture_output=True, check=True)
    caps = json.loads(out.stdout)
    assert caps["kernel"] == os.uname().release
    assert caps["ulp"]["available"] is False
    reason = caps["ulp"]["reason"]
    assert reason.startswith("E") and reason != "ok"
    assert caps["rekey"] is False and caps["prestage"] is False
    names = {c["name"] for c in caps["ciphers"]}
    assert names == {"AES-128-GCM", "AES-256-GCM", "AES-128-CCM", "CHACHA20-POLY1305",
                     "SM4-GCM", "SM4-CCM", "ARIA-128-GCM", "ARIA-256-GCM"}
    assert len(caps["ciphers"]) == 16
    for c in caps["ciphers"]:
        assert c["tx"] == reason and c["rx"] == reason
    assert "lo" in {n["name"] for n in caps["nics"]}
    human = subprocess.run([app("ktls-probe")], capture_output=True, check=True, text=True)
    assert "UNAVAILABLE (%s" % reason in human.stdout


def test_probe_usage():
    assert subprocess.run([app("ktls-probe"), "--help"], capture_output=True).returncode == 0
    bad = subprocess.run([app("ktls-probe"), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 1 and "Usage" in bad.stderr


@pytest.mark.parametrize("version,cipher", CASES)
def test_serve_with_stock_s_client(certs, fallback_only, version, cipher, tmp_path):
    """ktls-serve --echo <-> openssl s_client; TLS 1.3 gets k/K KeyUpdates,
    and s_client's message trace shows the server's answer to each K."""
    echo_with_s_client(certs, version, cipher, tmp_path)


@pytest.mark.parametrize("version,cipher", [("1.2", TLS12[0]), ("1.3", TLS13[1])])
def test_own_bio_serve_with_stock_s_client(certs, fallback_only, version, cipher, tmp_path):
    """The same through ktls-serve --own-bio: a BIO of the app's own that
    hands libssl's kTLS ctrls to the bridge (ktls_conn_delegate); here the
    bridge answers 'userspace' and the app's BIO carries every record."""
    echo_with_s_client(certs, version, cipher, tmp_path, "--own-bio")


def echo_with_s_client(certs, version, cipher, tmp_path, *extra):
    serve, port = start_serve(certs, "--echo", "--max-conns", "1", *extra,
                              *(["--ciphersuites", ALL13] if version == "1.3"
                                else ["--cipher", cipher]))
    lines = payload_lines(1 << 20, seed=len(cipher))
    expect = b"".join(lines)
    client = SClient(port, version_args(version, cipher, False), tmp_path / "s_client.msg")
    # each k/K goes alone, after the echo of everything before it is back,
    # and the next data only once s_client has sent that KeyUpdate
    step = 500
    for seg in range(0, len(lines), step):
        client.send(b"".join(lines[seg:seg + step]))
        client.wait_for(len(b"".join(lines[:seg + step])))
        if version == "1.3" and seg + step < len(lines):
            assert client.command(b"K\n" if client.cmds % 2 else b"k\n"), client.cmds
    got, cerr = client.finish(30)
    out, err = finish(serve)
    assert sha256(bytes(got)) == sha256(expect), "echo differs; s_client: " + cerr[-500:]
    res = json.loads(out.strip().splitlines()[-1])
    assert res["ok"] is True, err
    assert res["sha256_in"] == sha256(expect)
    assert res["protocol"] == ("TLSv1.2" if version == "1.2" else "TLSv1.3")
    assert res["bio"] == ("app's own" if "--own-bio" in extra else "ktls bridge")
    assert res["status"]["tx"]["mode"] == "userspace"
    if cipher == "TLS_AES_128_CCM_SHA256":
        # OpenSSL 3.0 does not offer kTLS keys for TLS 1.3 AES-CCM at all
        assert res["status"]["tx"]["reason_code"] == "not-offered"
    else:
        assert res["status"]["tx"]["reason_code"] == "ulp-unavailable"
    if version == "1.2":
        assert res["status"]["rx"]["reason_code"] == "ulp-unavailable"
    else:
        # OpenSSL 3.0 never offers TLS 1.3 receive keys
        assert res["status"]["rx"]["reason_code"] in ("not-offered", "ulp-unavailable")
        # the effect, not s_client announcing its own command: it sent one
        # KeyUpdate per k/K, and the server answered each K (update_requested)
        cmds = client.cmds
        assert cmds > 0 and client.keyupdates() == (cmds, cmds // 2), cerr[-1500:]


def s_server(certs, port, version, cipher, *extra, cwd=None):
    cert, key = certs
    proc = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                             "-cert", cert, "-key", key, "-naccept", "1",
                             *version_args(version, cipher, False), *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd)
    wait_port(port, proc)
    return proc


@pytest.mark.parametrize("version,cipher", CASES)
def test_client_sends_to_stock_s_server(certs, fallback_only, version, cipher):
    """ktls-client --mode send -> openssl s_server -quiet (writes what it gets
    to stdout); TLS 1.3 with a KeyUpdate(update_requested) every 8 records,
    so s_server answers with KeyUpdates of its own."""
    nbytes = 1 << 20
    port = free_port()
    server = s_server(certs, port, version, cipher, "-quiet")
    sout = bytearray()

    def drain():
        for chunk in iter(lambda: server.stdout.read1(65536), b""):
            sout.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    args = [app("ktls-client"), "--json", "--mode", "send", "--bytes", str(nbytes),
            *version_args(version, cipher, True), "127.0.0.1:%d" % port]
    if version == "1.3":
        args[1:1] = ["--keyupdate-every", "8", "--keyupdate-requested"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    # s_server drops the connection at stdin EOF: close it only once
    # everything the client sent has come out (or the server is gone)
    end = time.monotonic() + 30
    while len(sout) < nbytes and server.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    server.stdin.close()
    server.wait(30)
    reader.join(30)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["ok"] is True and res["bytes_sent"] == nbytes
    assert sha256(bytes(sout)) == res["sha256_sent"], "s_server saw %d bytes" % len(sout)
    if version == "1.3":
        # one every 8 records, none after the last
        assert res["keyupdates_sent"] == (nbytes // 16384 - 1) // 8
    assert res["status"]["tx"]["reason_code"] == (
        "not-offered" if cipher == "TLS_AES_128_CCM_SHA256" else "ulp-unavailable")


@pytest.mark.parametrize("version,cipher", CASES)
def test_client_receives_from_stock_s_server(certs, fallback_only, version, cipher, tmp_path):
    """openssl s_server -WWW -> ktls-client --mode recv: a 2 MiB file, byte
    for byte, through the bridge's receive path."""
    body = os.urandom(2 << 20)
    (tmp_path / "blob.bin").write_bytes(body)
    port = free_port()
    server = s_server(certs, port, version, cipher, "-WWW", cwd=str(tmp_path))
    got = tmp_path / "got.bin"
    args = [app("ktls-client"), "--json", "--mode", "recv", "--request",
            "GET /blob.bin HTTP/1.0\\r\\n\\r\\n", "--output", str(got),
            *version_args(version, cipher, True), "127.0.0.1:%d" % port]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    server.stdin.close()
    server.wait(30)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    data = got.read_bytes()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert sha256(rest) == sha256(body)
    assert res["sha256_received"] == sha256(data) and res["bytes_received"] == len(data)
    assert res["status"]["rx"]["mode"] == "userspace"


def test_policy_overrides_change_the_reason(certs, fallback_only):
    serve, port = start_serve(certs, "--echo", "--max-conns", "2")
    r = subprocess.run([app("ktls-client"), "--json", "--no-offload", "--tls1_2",
                        "127.0.0.1:%d" % port], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)["status"]
    assert st["tx"]["reason_code"] == "policy-off" and st["rx"]["reason_code"] == "policy-off"
    r = subprocess.run([app("ktls-client"), "--json", "--tls13-offload", "never", "--tls1_3",
                        "127.0.0.1:%d" % port], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"]["tx"]["reason_code"] == "tls13-never"
    finish(serve)


@pytest.mark.parametrize("args,ulp_calls", [(["--no-offload"], 0),
                                             (["--tls13-offload", "never", "--tls1_3"], 0),
                                             ([], 1)])
def test_policy_off_leaves_the_kernel_alone(certs, fallback_only, args, ulp_calls):
    """Where the policy keeps every record in userspace the bridge does not
    probe the kernel: no TCP_ULP on any socket (the probe's loopback
    sockets would count in the kernel's tls_stat, and on a kernel missing
    ciphers each probe costs module requests).  Control: with the default
    policy the probe asks for the ULP once (refused here: no kTLS)."""
    serve, port = start_serve(certs, "--echo", "--max-conns", "1")
    r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=setsockopt", "-o", "/dev/stderr",
                        app("ktls-client"), "--json", "--bytes", "64k", *args,
                        "127.0.0.1:%d" % port], capture_output=True, text=True, timeout=60)
    finish(serve)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["ok"] is True
    ulp = [line for line in r.stderr.splitlines() if "TCP_ULP" in line]
    assert len(ulp) == ulp_calls, ulp


def test_handoff_refused_here_keeps_libssl(certs, fallback_only):
    """--handoff on a kernel without kTLS: both ends say why the hand-off
    was refused and move the data through libssl, byte for byte (the
    hand-off itself runs in the VM tests)."""
    serve, port = start_serve(certs, "--echo", "--handoff", "--max-conns", "1")
    r = subprocess.run([app("ktls-client"), "--json", "--handoff", "--tls1_3",
                        "--bytes", "2M", "--keyupdate-every", "8", "127.0.0.1:%d" % port],
                       capture_output=True, text=True, timeout=60)
    out, err = finish(serve)
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)
    s = json.loads(out.strip().splitlines()[-1])
    assert "hand-off refused (Operation not supported); continuing through libssl" in r.stderr
    assert "hand-off refused (Operation not supported); going on through libssl" in err
    assert c["handoff"] is False and s["handoff"] is False
    assert c["ok"] and c["sha256_sent"] == c["sha256_received"] == s["sha256_in"]
    assert c["keyupdates_sent"] == (128 - 1) // 8
    assert c["status"]["tx"]["reason_code"] == "ulp-unavailable"


def test_static_file_without_kernel_tx(certs, fallback_only, tmp_path):
    """ktls-serve --root: SSL_sendfile needs kernel TX, so here the file goes
    out through SSL_write, byte for byte."""
    import ssl
    import socket
    root = tmp_path / "www"
    root.mkdir()
    body = os.urandom(3 << 20)
    (root / "blob.bin").write_bytes(body)
    serve, port = start_serve(certs, "--root", str(root), "--max-conns", "2")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def get(path):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                resp = bytearray()
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    resp += b
        head, _, rest = bytes(resp).partition(b"\r\n\r\n")
        return head, rest

    head, rest = get(b"/blob.bin")
    assert head.startswith(b"HTTP/1.1 200") and sha256(rest) == sha256(body)
    head, _ = get(b"/../etc/passwd")
    assert head.startswith(b"HTTP/1.1 403")
    out, _ = finish(serve)
    first = json.loads(out.splitlines()[0])
    assert first["sendfile"] is False and first["bytes"] == len(body)


def test_static_file_handoff_refused_goes_on_through_libssl(certs, fallback_only, tmp_path):
    """ktls-serve --handoff --root: this host's kernel has no kTLS, so the
    hand-off is refused with its reason and the file goes out through
    libssl, byte for byte (test_vm_handoff_files.py covers the kernel's
    side: sendfile(2) after a hand-off)."""
    root = tmp_path / "www"
    root.mkdir()
    body = os.urandom(1 << 20)
    (root / "blob.bin").write_bytes(body)
    serve, port = start_serve(certs, "--root", str(root), "--handoff", "--max-conns", "1")
    r = subprocess.run([app("ktls-client"), "--json", "--mode", "recv", "--get", "/blob.bin",
                        "127.0.0.1:%d" % port], capture_output=True, text=True, timeout=60)
    out, err = finish(serve)
    assert r.returncode == 0, r.stderr
    c, s = json.loads(r.stdout), json.loads(out.strip().splitlines()[-1])
    assert "hand-off refused (Operation not supported); going on through libssl" in err
    assert s["ok"] and s["handoff"] is False and s["sendfile"] is False, s
    assert s["bytes"] == c["body_bytes"] == len(body), (s, c)
    assert c["sha256_received"] == sha256(body) and c["responses_200"] == 1, c


def keepalive_server(certs, bodies, close_after=None):
    """A Python HTTPS server for one connection: answers each GET with the
    next of bodies (None: 404) on a keep-alive connection, until the
    client asks to close or close_after responses were sent; returns
    (port, thread, requests) where requests collects the request heads."""
    import socket
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certs)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    requests = []

    def serve():
        raw, _ = ls.accept()
        with ctx.wrap_socket(raw, server_side=True) as s:
            buf = b""
            for body in bodies:
                while b"\r\n\r\n" not in buf:
                    more = s.recv(65536)
                    if not more:
                        return
                    buf += more
                head, _, buf = buf.partition(b"\r\n\r\n")
                requests.append(head.decode())
                if body is None:
                    s.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n")
                else:
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                              + body)
                if "Connection: close" in head.decode() or len(requests) == close_after:
                    break
            if close_after is None:
                s.unwrap()      # close_notify both ways: a clean end
        ls.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return ls.getsockname()[1], t, requests


def test_client_http_keepalive_get(certs, fallback_only, tmp_path):
    """ktls-client --get PATH --requests N: N GETs on one keep-alive
    connection, the last asking to close; the bodies (not the headers) are
    hashed and written to --output; KeyUpdates every R records received
    (none during the last response)."""
    from hashlib import sha256
    bodies = [os.urandom(n) for n in (300000, 1, 200000)]
    port, t, reqs = keepalive_server(certs, bodies)
    out = tmp_path / "bodies"
    r = subprocess.run([app("ktls-client"), "--json", "--mode", "recv", "--get", "/f",
                        "--requests", "3", "--keyupdate-every", "4", "--tls1_3",
                        "--output", str(out), "127.0.0.1:%d" % port],
                       capture_output=True, text=True, timeout=60)
    t.join(30)
    assert r.returncode == 0, r.stdout + r.stderr
    c = json.loads(r.stdout)
    want = b"".join(bodies)
    assert c["ok"] and c["responses"] == c["responses_200"] == 3, c
    assert c["body_bytes"] == len(want) and c["sha256_received"] == sha256(want).hexdigest()
    assert out.read_bytes() == want
    assert [q.split("\r\n")[0] for q in reqs] == ["GET /f HTTP/1.1"] * 3, reqs
    assert ["Connection: keep-alive" in q for q in reqs] == [True, True, False], reqs
    assert "Connection: close" in reqs[2]
    # 300000 bytes are at least 18 records: a KeyUpdate after every 4th
    assert c["keyupdates_sent"] >= 4, c


def test_client_http_get_failures(certs, fallback_only):
    """A status other than 200, or a server that closes before the last
    response: exit 1 and the reason."""
    port, t, _ = keepalive_server(certs, [b"x", None])
    r = subprocess.run([app("ktls-client"), "--json", "--mode", "recv", "--get", "/f",
                        "--requests", "2", "127.0.0.1:%d" % port],
                       capture_output=True, text=True, timeout=60)
    t.join(30)
    c = json.loads(r.stdout)
    assert r.returncode == 1 and not c["ok"] and c["error"] == "HTTP status not 200", r.stdout
    assert c["responses"] == 2 and c["responses_200"] == 1, c
    port, t, _ = keepalive_server(certs, [b"x", b"y", b"z"], close_after=1)
    r = subprocess.run([app("ktls-client"), "--json", "--mode", "recv", "--get", "/f",
                        "--requests", "3", "127.0.0.1:%d" % port],
                       capture_output=True, text=True, timeout=60)
    t.join(30)
    c = json.loads(r.stdout)
    assert r.returncode == 1 and c["responses"] == 1, r.stdout + r.stderr
    assert c["error"] in ("the server closed before the last response", "SSL_read failed"), c
    r = subprocess.run([app("ktls-client"), "--get", "/f", "127.0.0.1:1"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--get needs --mode recv" in r.stderr


@pytest.mark.parametrize("name", ["ktls-probe", "ktls-serve", "ktls-client", "ktls-bench",
                                  "ktls-rekey-bench"])
def test_version(name):
    """--version: the program, the project's version and the libssl it runs
    on, exit status 0, nothing else done (no probe, no openssl.cnf)."""
    r = subprocess.run([app(name), "--version"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, OPENSSL_CONF="/nonexistent/openssl.cnf"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "%s (ktls-offload) %s" % (name, package_version()), lines
    assert len(lines) == 2 and lines[1].startswith("libssl: OpenSSL 3."), lines


def test_bad_invocations(certs, tmp_path):
    r = subprocess.run([app("ktls-client"), "nohostport"], capture_output=True, text=True)
    assert r.returncode == 2 and "HOST:PORT" in r.stderr
    r = subprocess.run([app("ktls-client"), "127.0.0.1:%d" % free_port()],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 3 and "connect" in r.stderr
    r = subprocess.run([app("ktls-client"), "--bytes", "lots", "127.0.0.1:1"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([app("ktls-serve"), "--echo"], capture_output=True, text=True)
    assert r.returncode == 2 and "--cert and --key are required" in r.stderr
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    r = subprocess.run([app("ktls-serve"), "--cert", str(bogus), "--key", str(bogus),
                        "--port", "0", "--max-conns", "1"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1 and "--cert/--key" in r.stderr


def parallel_echo_server(certs, version, kill_every=0, kill_after=64 << 10):
    """A Python TLS echo server that serves connections in parallel, one
    thread each (openssl s_server takes one at a time), TLS `version` only.
    With kill_every K, the Kth, 2Kth, ... connection it accepts is reset
    (SO_LINGER 0, no close_notify) once kill_after bytes were echoed.
    Returns (port, stop, killed): stop() ends it, killed collects the
    client ports of the connections it reset."""
    import socket
    import ssl
    import struct
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certs)
    ctx.minimum_version = ctx.maximum_version = (
        ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(512)
    ls.settimeout(0.2)
    done = threading.Event()
    killed, workers = [], []

    def echo(raw, kill):
        try:
            with ctx.wrap_socket(raw, server_side=True) as s:
                echoed = 0
                while True:
                    data = s.recv(65536)
                    if not data:
                        s.unwrap()      # the client's close_notify: answer it
                        return
                    s.sendall(data)
                    echoed += len(data)
                    if kill and echoed >= kill_after:
                        killed.append(s.getpeername()[1])
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
                        return
        except (OSError, ValueError):
            pass

    def accept():
        n = 0
        while not done.is_set():
            try:
                raw, _ = ls.accept()
            except socket.timeout:
                continue
            raw.settimeout(60)
            n += 1
            t = threading.Thread(target=echo, args=(raw, kill_every and n % kill_every == 0),
                                 daemon=True)
            t.start()
            workers.append(t)
        ls.close()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()

    def stop():
        done.set()
        acceptor.join(10)
        for t in workers:
            t.join(10)

    return ls.getsockname()[1], stop, killed


def load_client(port, *args, timeout=120, **kw):
    return subprocess.run([app("ktls-client"), "--connections", *args, "127.0.0.1:%d" % port],
                          capture_output=True, text=True, timeout=timeout, **kw)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_connections_parallel_echo(certs, fallback_only, version):
    """ktls-client --connections 50: 50 echo connections of 256 KiB at once
    against a threaded Python server, each with a KeyUpdate
    (update_requested) every 8 records on TLS 1.3 and its own hash check.
    This host's kernel has no kTLS, so every connection falls back to
    userspace records; the summary counts them (tx_kernel 0, the reason
    for each).  Totals are exact, no failures, exit 0."""
    port, stop, _ = parallel_echo_server(certs, version)
    try:
        r = load_client(port, "50", "--json", "--bytes", "256k", "--keyupdate-every", "8",
                        "--keyupdate-requested", "--tls1_%s" % version[-1])
    finally:
        stop()
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads(r.stdout)
    assert s["ok"] is True and s["failures"] == [], s
    assert (s["connections"], s["succeeded"], s["failed"]) == (50, 50, 0)
    assert s["bytes_sent"] == s["bytes_received"] == 50 * (256 << 10)
    # 16 records each: a KeyUpdate after the 8th (none after the last)
    assert s["keyupdates_sent"] == (50 * ((16 - 1) // 8) if version == "1.3" else 0)
    assert s["tx_kernel"] == s["rx_kernel"] == 0 and s["handoff"] == 0
    assert s["tx_reasons"] == {"ulp-unavailable": 50}, s
    assert sum(s["rx_reasons"].values()) == 50, s
    if version == "1.2":
        assert s["rx_reasons"] == {"ulp-unavailable": 50}
    t = s["transfer_ms"]
    assert 0 < t["p50"] <= t["p99"] <= t["max"] <= s["wall_ms"], s
    assert r.stderr == ""


def test_connections_server_resets_some(certs, fallback_only):
    """The server resets every 5th connection it accepts halfway through
    (64 KiB of 256 KiB echoed): exactly those (by client port) are
    reported failed, one stderr line each, the others succeed; exit 1.
    Then the same without --json: the per-connection lines and the summary
    line on stderr."""
    port, stop, killed = parallel_echo_server(certs, "1.3", kill_every=5)
    try:
        r = load_client(port, "50", "--json", "--bytes", "256k", "--keyupdate-every", "8")
    finally:
        stop()
    assert r.returncode == 1, r.stdout + r.stderr
    s = json.loads(r.stdout)
    assert len(killed) == 10
    assert (s["connections"], s["succeeded"], s["failed"], s["ok"]) == (50, 40, 10, False)
    assert sorted(f["port"] for f in s["failures"]) == sorted(killed), s["failures"]
    assert {f["step"] for f in s["failures"]} == {"transfer"}, s["failures"]
    for f in s["failures"]:
        # the reset drops what the client had not read yet: less than 64 KiB
        # may have arrived, never all of it
        assert f["bytes_received"] < 256 << 10, f
    lines = r.stderr.splitlines()
    assert len(lines) == 10, r.stderr
    for f, line in zip(s["failures"], lines):
        assert line.startswith("ktls-client: connection %d (port %d): transfer: "
                               % (f["index"], f["port"])), line
    # the 40 that succeeded moved all their bytes
    assert s["bytes_sent"] >= 40 * (256 << 10) and s["bytes_received"] >= 40 * (256 << 10)
    assert s["bytes_sent"] - sum(f["bytes_sent"] for f in s["failures"]) == 40 * (256 << 10)

    port, stop, killed = parallel_echo_server(certs, "1.2", kill_every=4)
    try:
        r = load_client(port, "8", "--bytes", "256k")
    finally:
        stop()
    assert r.returncode == 1 and r.stdout == "", r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert sorted(int(ln.split("(port ")[1].split(")")[0]) for ln in lines[:2]) \
        == sorted(killed), r.stderr
    assert "ktls-client: 8 connections: 6 ok, 2 failed; sent " in lines[2], r.stderr
    assert "TX in the kernel on 0, RX on 0; transfer ms p50 " in lines[2]
    assert lines[2].endswith(": FAILED") and lines[3:] == [
        "  tx: ulp-unavailable 8", "  rx: ulp-unavailable 8"], r.stderr


def test_connections_usage(certs, fallback_only):
    """Bad --connections values are usage errors (exit 2) with the range;
    --output does not go with it; N that cannot fit under the hard limit on
    open files is refused, while a low soft limit is raised."""
    import resource
    for bad in ("0", "-1", "10001", "abc", "5x", "", "99999999999999999999"):
        r = subprocess.run([app("ktls-client"), "--connections", bad, "127.0.0.1:1"],
                           capture_output=True, text=True)
        assert r.returncode == 2, (bad, r.stderr)
        assert "--connections %s: need a count from 1 to 10000" % bad in r.stderr, r.stderr
    r = subprocess.run([app("ktls-client"), "--connections", "2", "--output", os.devnull,
                        "127.0.0.1:1"], capture_output=True, text=True)
    assert r.returncode == 2 and "--output cannot be used with --connections" in r.stderr

    def limit(soft, hard):
        return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    r = subprocess.run([app("ktls-client"), "--connections", "200", "127.0.0.1:1"],
                       capture_output=True, text=True, preexec_fn=limit(64, 128))
    assert r.returncode == 2, r.stderr
    assert "--connections 200 needs 264 open files, but the hard limit (ulimit -Hn) is 128" \
        in r.stderr
    port, stop, _ = parallel_echo_server(certs, "1.3")
    try:
        r = load_client(port, "200", "--json", "--bytes", "16k", preexec_fn=limit(32, 4096))
    finally:
        stop()
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads(r.stdout)
    assert s["succeeded"] == 200 and s["bytes_received"] == 200 * (16 << 10)
