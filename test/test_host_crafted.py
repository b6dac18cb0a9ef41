"""Host: a misbehaving TLS 1.3 client against ktls-serve and stock s_server.

test/peer/crafted-client does its handshake with libssl, then seals and
opens the records itself (keys from rekey/'s secret chain) and sends
crafted KeyUpdates: malformed, split, doubled, under the wrong key.  Its
case table (`crafted-client --list`) says which alert RFC 8446 asks for;
each run prints one JSON line with what the server did and whether it
matches ("match").

This machine's kernel has no kTLS, so ktls-serve runs its userspace
FALLBACK here (libssl's own records behind the bridge BIO); the VM tests
cover the kernel.  The alert cases also run against stock `openssl
s_server`, so the table itself is checked against stock OpenSSL.
"""

import collections
import json
import os
import subprocess

import pytest

from helpers import BUILDDIR, app, free_port, make_cert, wait_port

pytestmark = pytest.mark.host

CLIENT = os.path.join(BUILDDIR, "test", "peer", "crafted-client")
REPEAT = 10
BULK = 4194304          # ku-every: 4 MiB, a KeyUpdate(update_requested) every 16 records

# (case, --value): every case of the table, some with several values.
# Where libssl parses the KeyUpdate (OpenSSL 3.0 and 3.5; here, behind the
# bridge's fallback too) a body longer than one byte (badlength 2, 3, 255)
# gets illegal_parameter (47, "excessive message size": libssl's per-message
# length cap runs before its parser), where RFC 8446 6.2 says decode_error
# (50); a body of 0 bytes gets decode_error.  The case table keeps the RFC's
# answer (the bridge sends it where it parses: hand-off mode, and wherever
# the kernel decrypts); LIBSSL_ANSWERS says where libssl differs.
LIBSSL_ANSWERS = {("badlength", v): 47 for v in (2, 3, 255)}
ALERT_VARIANTS = ([("badvalue", v) for v in (2, 3, 128, 255)] +
                  [("badlength", v) for v in (0, 2, 3, 255)] +
                  [(c, None) for c in ("frag-data", "two", "two-newkey", "oldkey-data",
                                       "split-newkey", "kufirst", "ticket")])
VARIANTS = ([("valid", None), ("requested", None), ("split", 1), ("split", 4)] +
            ALERT_VARIANTS + [("storm", 40), ("ku-every", 16)])
CASES = {c for c, _ in VARIANTS}


def client():
    if not os.access(CLIENT, os.X_OK):
        pytest.fail("%s is not built: run scripts/build.sh (or make -C %s)"
                    % (CLIENT, BUILDDIR), pytrace=False)
    return CLIENT


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_cert(str(tmp_path_factory.mktemp("certs")))


def variant_id(v):
    return v[0] if v[1] is None else "%s=%d" % v


def crafted(port, case, value=None, repeat=REPEAT, *extra, timeout=180):
    """Run crafted-client; returns (returncode, [one dict per run], stderr)."""
    args = [client(), "--case", case, "--repeat", str(repeat), "--timeout", "5", *extra]
    if value is not None:
        args += ["--value", str(value)]
    if case == "ku-every":
        args += ["--bytes", str(BULK)]
    r = subprocess.run(args + ["127.0.0.1:%d" % port], capture_output=True, text=True,
                       timeout=timeout)
    runs = [json.loads(line) for line in r.stdout.splitlines()]
    return r.returncode, runs, r.stderr


def outcome(runs):
    """What the runs saw, counted: {"alert 47": 9, "reset": 1} ..."""
    return dict(collections.Counter(
        "alert %d" % r["alert"] if r["end"] == "alert" else r["end"] for r in runs))


def check_runs(case, value, runs, rc, repeat, no_echo=False):
    """libssl parses the KeyUpdates in every server here: where it answers
    differently from the RFC (LIBSSL_ANSWERS), its answer is expected."""
    what = "%s%s" % (case, "" if value is None else "=%d" % value)
    assert len(runs) == repeat, "%s: %d JSON lines for %d runs" % (what, len(runs), repeat)
    expected = LIBSSL_ANSWERS.get((case, value), runs[0]["expected"])
    if (case, value) in LIBSSL_ANSWERS:
        bad = [r for r in runs if r["end"] != "alert" or r["alert"] != expected]
    else:
        bad = [r for r in runs if not r["match"]]
    assert not bad, "%s: %d/%d runs did not match (expected %s): %s; first: %s" % (
        what, len(bad), repeat, expected, outcome(runs), bad[0])
    assert rc == (1 if (case, value) in LIBSSL_ANSWERS else 0)
    for r in runs:
        assert r["case"] == case and r["echo_ok"] and r["error"] == "", r
        if isinstance(expected, int):
            assert r["end"] == "alert" and r["alert"] == expected and r["alert_level"] == 2
            if not no_echo:     # the first record came back before the crafted ones
                assert r["echoed"] >= 1000
        elif expected is None:
            assert r["end"] in ("close_notify", "eof") and r["echoed"] == r["sent"], r
    if case == "requested":
        assert all(r["server_keyupdates"] >= 1 for r in runs)
    if case == "ku-every":
        assert all(r["sent"] == BULK + 4000 and r["client_keyupdates"] == BULK // 16384 // 16
                   and r["server_keyupdates"] >= 1 for r in runs)


def start_serve(certs, conns, tmp_path):
    cert, key = certs
    port = free_port()
    log = open(tmp_path / "ktls-serve.log", "w+")
    proc = subprocess.Popen([app("ktls-serve"), "--cert", cert, "--key", key,
                             "--port", str(port), "--echo", "--tls1_3",
                             "--max-conns", str(conns)],
                            stdout=subprocess.DEVNULL, stderr=log)
    wait_port(port, proc)
    return proc, port, log


def stop_serve(proc, log):
    """ktls-serve exits by itself after --max-conns; its log for messages."""
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.seek(0)
    text = log.read()
    log.close()
    return proc.returncode, text


@pytest.fixture(scope="module")
def stock_server(certs, tmp_path_factory):
    """openssl s_server (default mode: not an echo server), all connections
    of the module, killed at the end."""
    cert, key = certs
    port = free_port()
    log = open(tmp_path_factory.mktemp("s_server") / "s_server.log", "w+")
    proc = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                             "-cert", cert, "-key", key, "-tls1_3"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
    wait_port(port, proc)
    yield port
    proc.kill()
    proc.wait()
    log.close()


def test_case_table():
    """--list: one JSON line per case, the expectation and its RFC section;
    the tests below cover every case of it."""
    r = subprocess.run([client(), "--list"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    table = {c["case"]: c for c in map(json.loads, r.stdout.splitlines())}
    assert set(table) == CASES
    for c in table.values():
        assert c["rfc"].startswith("RFC 8446 ")
        assert c["expected"] is None or c["expected"] == "any" or isinstance(c["expected"], int)
    assert table["valid"]["expected"] is None and table["storm"]["expected"] == "any"


def test_usage():
    cases = [[], ["--case", "nosuch", "127.0.0.1:1"], ["--case", "valid"],
             ["--case", "valid", "--value", "3", "127.0.0.1:1"],
             ["--case", "badvalue", "--value", "1", "127.0.0.1:1"],
             ["--case", "badlength", "--value", "1", "127.0.0.1:1"],
             ["--case", "two", "--bytes", "1M", "127.0.0.1:1"],
             ["--case", "valid", "--no-echo", "127.0.0.1:1"],
             ["--case", "valid", "--ciphersuites", "TLS_AES_128_CCM_SHA256", "127.0.0.1:1"],
             ["--case", "valid", "--repeat", "0", "127.0.0.1:1"],
             ["--case", "valid", "nohostport"]]
    for args in cases:
        r = subprocess.run([client(), *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and r.stderr and not r.stdout, args
    r = subprocess.run([client(), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "--case NAME" in r.stdout


def test_refused_is_reported():
    rc, runs, _ = crafted(free_port(), "valid", repeat=2)
    assert rc == 1 and [r["end"] for r in runs] == ["handshake-failed"] * 2
    assert "connect" in runs[0]["error"] and not runs[0]["match"]


@pytest.mark.parametrize("case,value", VARIANTS, ids=[variant_id(v) for v in VARIANTS])
def test_ktls_serve(certs, tmp_path, case, value):
    """ktls-serve --echo --tls1_3 (userspace fallback here): every case ends
    as the table says, REPEAT times on new connections."""
    proc, port, log = start_serve(certs, REPEAT, tmp_path)
    try:
        rc, runs, err = crafted(port, case, value)
    finally:
        status, text = stop_serve(proc, log)
    assert err == "", err
    try:
        check_runs(case, value, runs, rc, REPEAT)
    except AssertionError as e:
        raise AssertionError("%s\nktls-serve log (tail):\n%s" % (e, text[-2000:])) from None
    assert status == 0, text[-2000:]


@pytest.mark.parametrize("suite", ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"])
@pytest.mark.parametrize("case", ["requested", "two-newkey"])
def test_ktls_serve_other_suites(certs, tmp_path, suite, case):
    proc, port, log = start_serve(certs, 2, tmp_path)
    try:
        rc, runs, _ = crafted(port, case, None, 2, "--ciphersuites", suite)
    finally:
        status, text = stop_serve(proc, log)
    check_runs(case, None, runs, rc, 2)
    assert {r["cipher"] for r in runs} == {"AES-256-GCM" if "AES_256" in suite
                                           else "CHACHA20-POLY1305"}


def test_ktls_serve_every_badvalue(certs, tmp_path):
    """request_update 2..255: illegal_parameter for each (RFC 8446 4.6.3)."""
    values = range(2, 256)
    proc, port, log = start_serve(certs, len(values), tmp_path)
    seen = collections.Counter()
    try:
        for v in values:
            _, runs, _ = crafted(port, "badvalue", v, 1, timeout=60)
            seen[(v, runs[0]["end"], runs[0]["alert"]) if runs else (v, "no output", None)] += 1
    finally:
        status, text = stop_serve(proc, log)
    wrong = sorted(k for k in seen if k[1:] != ("alert", 47))
    assert not wrong, "badvalue values not answered with alert 47: %s" % wrong[:20]
    assert status == 0, text[-2000:]


@pytest.mark.parametrize("case,value", ALERT_VARIANTS,
                         ids=[variant_id(v) for v in ALERT_VARIANTS])
def test_stock_s_server(stock_server, case, value):
    """The same crafted records against stock openssl s_server (userspace
    libssl, no echo: --no-echo): the table's alerts are stock OpenSSL's."""
    rc, runs, err = crafted(stock_server, case, value, REPEAT, "--no-echo")
    assert err == "", err
    check_runs(case, value, runs, rc, REPEAT, no_echo=True)
