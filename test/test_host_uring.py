"""ktls-serve --uring on this host: its kernel has no kTLS, so every
hand-off is refused and the ring serves the connections through libssl,
driven by its poll operations; this checks the ring's event loop, the
fallback and the byte counts.  The kernel's side (hand-off, RECVMSG,
SEND, SPLICE, tls_stat, the control records the ring sends with SENDMSG)
is test_vm_uring.py's and test_vm_uring_crafted.py's; the bridge's half
of those records (ktls_conn_owed) is unit/bio-handoff-test's."""

import json
import subprocess

import pytest

from conftest import ktls_skip
from helpers import app, free_port, host_has_ktls, make_cert, sha256, wait_port

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if host_has_ktls():
        ktls_skip("this host kernel has kTLS", allowed="host-has-ktls")
    return make_cert(str(tmp_path_factory.mktemp("certs")))


def ring(certs, conns, *extra):
    cert, key = certs
    port = free_port()
    proc = subprocess.Popen([app("ktls-serve"), "--cert", cert, "--key", key, "--port",
                             str(port), "--uring", "--json", "--max-conns", str(conns), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_port(port, proc)
    return proc, port


def finish(proc):
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError("ktls-serve --uring did not end: " + err[-2000:])
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()], err


def test_ring_echoes_parallel_connections_through_libssl(certs):
    n = 12
    serve, port = ring(certs, n)
    clients = [subprocess.Popen([app("ktls-client"), "--json", "--bytes", "512k",
                                 "--keyupdate-every", "4", "--keyupdate-requested",
                                 "127.0.0.1:%d" % port],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(n)]
    results = [json.loads(c.communicate(timeout=120)[0]) for c in clients]
    lines, err = finish(serve)
    assert err.count("hand-off refused (Operation not supported); going on through libssl") \
        == n, err
    assert "ring: %d connections, 0 failed" % n in err, err
    for c in results:
        assert c["ok"] and c["bytes_received"] == c["bytes_sent"] == 512 << 10, c
        assert c["keyupdates_sent"] == (32 - 1) // 4, c
    assert len(lines) == n
    for s in lines:
        assert s["ok"] and s["ring"] and not s["handoff"] and s["bytes"] == 512 << 10, s
        # libssl wrote its own KeyUpdates and close_notify: the ring sends
        # control records (ktls_conn_owed) on handed-off connections only
        assert s["ring_ctl"] == {"keyupdates": 0, "alerts": 0}, s
    assert sorted(s["sha256_in"] for s in lines) == sorted(c["sha256_sent"] for c in results)


def test_ring_serves_files_and_errors(certs, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    body = bytes(range(256)) * 12289
    (root / "f").write_bytes(body)
    serve, port = ring(certs, 3, "--root", str(root))

    def get(path):
        r = subprocess.run([app("ktls-client"), "--json", "--mode", "recv", "--get", path,
                            "127.0.0.1:%d" % port], capture_output=True, text=True,
                           timeout=60)
        return r.returncode, json.loads(r.stdout)

    rc, c = get("/f")
    assert rc == 0 and c["sha256_received"] == sha256(body), c
    assert c["body_bytes"] == len(body), c
    rc, c = get("/missing")
    assert rc != 0 and c["responses"] == 1 and c["responses_200"] == 0, c
    rc, c = get("/../etc/passwd")
    assert rc != 0 and c["responses_200"] == 0, c
    lines, err = finish(serve)
    assert [s["ok"] for s in lines] == [True, False, False], lines
    assert lines[0]["bytes"] == len(body) and not lines[0]["splice"], lines[0]
    assert lines[1]["error"] == "answered: not found", lines[1]
    assert lines[2]["error"] == "answered: forbidden", lines[2]
    assert "ring: 3 connections, 2 failed" in err, err


def test_ring_refuses_own_bio(certs):
    cert, key = certs
    r = subprocess.run([app("ktls-serve"), "--cert", cert, "--key", key, "--uring",
                        "--own-bio"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "--own-bio does not work with --uring" in r.stderr, r.stderr


def test_ring_keeps_the_connection_for_the_next_request(certs, tmp_path):
    """HTTP keep-alive through the ring's libssl path: three GETs on one
    connection (the last says close), then one that says close at once."""
    root = tmp_path / "www"
    root.mkdir()
    body = bytes(range(256)) * 700
    (root / "f").write_bytes(body)
    serve, port = ring(certs, 2, "--root", str(root))
    runs = [subprocess.run([app("ktls-client"), "--json", "--mode", "recv", "--get", "/f",
                            "--requests", str(k), "127.0.0.1:%d" % port],
                           capture_output=True, text=True, timeout=60) for k in (3, 1)]
    lines, err = finish(serve)
    for r in runs:
        assert r.returncode == 0, r.stderr
    three, one = (json.loads(r.stdout) for r in runs)
    assert three["responses_200"] == 3 and three["reconnects"] == 0, three
    assert three["body_bytes"] == 3 * len(body) and one["body_bytes"] == len(body), one
    assert [(s["ok"], s["requests"], s["bytes"]) for s in lines] == \
        [(True, 3, 3 * len(body)), (True, 1, len(body))], lines


def test_ring_ends_an_idle_kept_alive_connection(certs, tmp_path):
    """A client that got its answer and says nothing more is sent a
    close_notify after --timeout; the server does not wait for it."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "f").write_bytes(b"small\n")
    serve, port = ring(certs, 1, "--root", str(root), "--timeout", "1")
    cli = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                            "-quiet", "-ign_eof"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        cli.stdin.write(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
        cli.stdin.flush()
        lines, err = finish(serve)    # stdin stays open: only the timeout ends it
    finally:
        cli.kill()
        out = cli.communicate()[0]
    assert out.endswith(b"\r\n\r\nsmall\n") and b"Connection: keep-alive" in out, out
    assert [(s["ok"], s["requests"]) for s in lines] == [(True, 1)], lines


def test_ring_threads_share_the_connections(certs):
    """--threads 3: three rings accept on one socket; every connection is
    served by one of them (its line says which), ids unique."""
    n = 24
    serve, port = ring(certs, n, "--threads", "3")
    clients = [subprocess.Popen([app("ktls-client"), "--json", "--bytes", "128k",
                                 "127.0.0.1:%d" % port],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(n)]
    results = [json.loads(c.communicate(timeout=120)[0]) for c in clients]
    lines, err = finish(serve)
    assert all(c["ok"] and c["bytes_received"] == 128 << 10 for c in results), results
    assert sorted(s["conn"] for s in lines) == list(range(1, n + 1)), lines
    assert all(s["ok"] and s["thread"] in (0, 1, 2) for s in lines), lines
    assert "ring: %d connections, 0 failed" % n in err and "on 3 rings" in err, err


def test_ring_threads_stop_at_max_conns(certs):
    """--threads 2 --max-conns 3 with more clients than that: the ring that
    accepts the third ends the other ring's pending accept, and the server
    exits after exactly three connections (before, it would wait forever)."""
    serve, port = ring(certs, 3, "--threads", "2")
    clients = [subprocess.Popen([app("ktls-client"), "--json", "--bytes", "16k",
                                 "--timeout", "20", "127.0.0.1:%d" % port],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(3)]
    for c in clients:
        c.communicate(timeout=60)
    lines, err = finish(serve)
    assert [s["conn"] for s in sorted(lines, key=lambda s: s["conn"])] == [1, 2, 3], lines
    assert all(s["ok"] for s in lines), lines
    assert "ring: 3 connections, 0 failed" in err, err


def test_threads_needs_uring(certs):
    cert, key = certs
    for args, msg in ((["--threads", "2"], "--threads works with --uring only"),
                      (["--uring", "--threads", "0"], "bad number '0'"),
                      (["--uring", "--threads", "257"], "bad number '257'"),
                      (["--multishot"], "--multishot works with --uring only"),
                      (["--uring", "--multishot", "--root", "/tmp"],
                       "--multishot works with echo only")):
        r = subprocess.run([app("ktls-serve"), "--cert", cert, "--key", key, *args],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)
