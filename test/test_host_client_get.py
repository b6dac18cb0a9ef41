"""ktls-client --get as a load client (--connections N --requests K): the
request and byte counts of its summary, each body's SHA-256 (against
--expect-sha256 or the run's first body), and how it follows a server that
closes after an answer.  The servers are local: ktls-serve --root (one
connection at a time, one answer per connection), the ring server, and a
small Python TLS server for the endings no real server here makes."""

import json
import socket
import ssl
import subprocess
import threading

import pytest

from helpers import app, free_port, make_cert, sha256, wait_port

pytestmark = pytest.mark.host

BODY = bytes(range(256)) * 77 + b"tail"    # 19716 bytes: two records and a bit


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_cert(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture
def root(tmp_path):
    d = tmp_path / "www"
    d.mkdir()
    (d / "f").write_bytes(BODY)
    return d


def serve(certs, root, *mode):
    cert, key = certs
    port = free_port()
    proc = subprocess.Popen([app("ktls-serve"), "--cert", cert, "--key", key, "--port",
                             str(port), "--root", str(root), *mode],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_port(port, proc)
    return proc, port


def client(port, *args, timeout=120):
    r = subprocess.run([app("ktls-client"), "--json", "--mode", "recv", "--timeout", "30",
                        *args, "127.0.0.1:%d" % port],
                       capture_output=True, text=True, timeout=timeout)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else None), r.stderr


def against(certs, root, mode, *args):
    """ktls-client ARGS against ktls-serve --root [MODE]: (status, JSON,
    stderr)."""
    proc, port = serve(certs, root, *mode)
    try:
        return client(port, *args)
    finally:
        proc.kill()
        proc.communicate()


def test_one_answer_per_connection_is_followed(certs, root):
    """ktls-serve --root answers one GET and closes: each of the 3
    connections' 4 requests takes 4 connections, 3 of them reconnects,
    and every body is checked against the hash given."""
    rc, j, err = against(certs, root, (), "--connections", "3", "--get", "/f",
                         "--requests", "4", "--expect-sha256", sha256(BODY).upper())
    assert rc == 0, err
    assert j["ok"] and j["succeeded"] == 3 and j["failures"] == [], j
    assert j["requests"] == 12 and j["bytes"] == 12 * len(BODY), j
    assert j["reconnects"] == 9, j
    assert j["requests_per_s"] > 0 and j["wall_ms"] > 0, j
    assert abs(j["requests_per_s"] - 12 / (j["wall_ms"] / 1000)) < 0.01 * j["requests_per_s"], j


def test_single_connection_counts_reconnects(certs, root):
    rc, j, err = against(certs, root, (), "--get", "/f", "--requests", "3")
    assert rc == 0, err
    assert j["ok"] and j["responses_200"] == 3 and j["reconnects"] == 2, j
    assert j["body_bytes"] == 3 * len(BODY), j
    assert j["sha256_received"] == sha256(BODY * 3), j


def test_wrong_hash_fails_each_connection(certs, root):
    rc, j, err = against(certs, root, (), "--connections", "2", "--get", "/f",
                         "--requests", "2", "--expect-sha256", "ab" * 32)
    assert rc == 1, err
    assert not j["ok"] and j["failed"] == 2 and j["succeeded"] == 0, j
    for f in j["failures"]:
        assert f["step"] == "transfer", f
        assert "response 1: body sha256 %s, expected %s" % (sha256(BODY), "ab" * 32) \
            in f["error"], f
    # the first answer of each was read whole before the check failed it
    assert j["requests"] == 2 and j["bytes"] == 2 * len(BODY) and j["reconnects"] == 0, j


def test_a_missing_file_fails(certs, root):
    rc, j, err = against(certs, root, (), "--get", "/missing", "--requests", "2")
    assert rc == 1 and not j["ok"], (j, err)
    assert j["responses"] == 2 and j["responses_200"] == 0, j


def test_ring_server_with_or_without_keep_alive(certs, root):
    """The ring server, before HTTP keep-alive (a reconnect per request
    but the first of each connection) or after it (none): the totals and
    hashes are the same either way."""
    rc, j, err = against(certs, root, ("--uring",), "--connections", "8", "--get", "/f",
                         "--requests", "5", "--expect-sha256", sha256(BODY))
    assert rc == 0, err
    assert j["ok"] and j["requests"] == 40 and j["bytes"] == 40 * len(BODY), j
    assert j["reconnects"] in (0, 32), j


def test_usage_errors():
    for args, said in ((["--expect-sha256", "ab" * 32], "--expect-sha256 needs --get"),
                       (["--get", "/f", "--expect-sha256", "ab" * 31], "need 64 hex digits"),
                       (["--get", "/f", "--expect-sha256", "zz" * 32], "need 64 hex digits")):
        r = subprocess.run([app("ktls-client"), "--mode", "recv", *args, "127.0.0.1:1"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and said in r.stderr, (args, r.stderr)


class Scripted:
    """A TLS server on a thread that answers each connection's requests
    by a script: 'ok' (a keep-alive answer), 'ok-close' (an answer, then it
    closes without saying so), 'other' (a different body), 'half' (a
    header and half the body, then it closes)."""

    def __init__(self, certs, script):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*certs)
        self.script = list(script)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def answer(self, s, body, keep=True):
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n"
                  % (len(body), b"keep-alive" if keep else b"close") + body)

    def run(self):
        while self.script:
            raw, _ = self.sock.accept()
            self.connections += 1
            with self.ctx.wrap_socket(raw, server_side=True) as s:
                while self.script:
                    req = b""
                    while b"\r\n\r\n" not in req:
                        got = s.recv(4096)
                        if not got:
                            break
                        req += got
                    if not req:
                        break
                    step = self.script.pop(0)
                    if step == "half":
                        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                                  % len(BODY) + BODY[:len(BODY) // 2])
                        break
                    self.answer(s, BODY if step != "other" else BODY[::-1],
                                keep=b"Connection: close" not in req)
                    if step == "ok-close":
                        break
                try:
                    s.unwrap()
                except (OSError, ssl.SSLError):
                    pass
        self.sock.close()


def test_close_between_answers_resends_the_pending_request(certs):
    """A keep-alive answer, then the server closes without saying so: the
    request already sent goes again on a new connection."""
    srv = Scripted(certs, ["ok", "ok-close", "ok", "ok"])
    rc, j, err = client(srv.port, "--get", "/f", "--requests", "4",
                        "--expect-sha256", sha256(BODY))
    srv.thread.join(30)
    assert rc == 0, err
    assert j["responses_200"] == 4 and j["reconnects"] == 1, j
    assert srv.connections == 2


def test_another_body_than_the_first_fails(certs):
    """As a load client (--connections) without --expect-sha256, every body
    must be the run's first; one connection alone checks nothing."""
    srv = Scripted(certs, ["ok", "other"])
    rc, j, err = client(srv.port, "--connections", "1", "--get", "/f", "--requests", "2")
    srv.thread.join(30)
    assert rc == 1 and not j["ok"] and j["failed"] == 1, (j, err)
    assert "response 2: body sha256 %s, expected %s (the first body's)" \
        % (sha256(BODY[::-1]), sha256(BODY)) in j["failures"][0]["error"], j
    srv = Scripted(certs, ["ok", "other"])
    rc, j, err = client(srv.port, "--get", "/f", "--requests", "2")
    srv.thread.join(30)
    assert rc == 0 and j["ok"] and j["responses_200"] == 2, (j, err)
    assert j["sha256_received"] == sha256(BODY + BODY[::-1]), j


def test_close_in_the_middle_of_an_answer_fails(certs):
    srv = Scripted(certs, ["ok", "half"])
    rc, j, err = client(srv.port, "--get", "/f", "--requests", "3")
    srv.thread.join(30)
    assert rc == 1 and not j["ok"], (j, err)
    assert j["error"] == "the server closed before the last response", j
    assert j["responses"] == 1 and j["reconnects"] == 0 and srv.connections == 1, j
