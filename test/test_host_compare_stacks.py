"""scripts/compare-stacks.sh stays runnable: its guest half and its table.

The comparison itself (README's table) boots three kernels and takes
minutes, so it is a script, not part of this suite.  Here its guest half,
scripts/compare-stacks-guest.sh, runs on the host against ktls-serve
(transparent and hand-off) and stock openssl s_server (3.0) with every
scenario, and the table is built from what it printed.  This host's kernel
has no kTLS: this covers the userspace fallback only -- every scenario
must end ok byte for byte with both directions in userspace (U), which
also proves the script's checks pass on a good run; the kernel cells come
from the guests.  A check that a bad run is caught: the same script with a
client that sends other bytes must report "wrong" or "drop", never ok.
The GnuTLS stack (scripts/gnutls-next.sh's build) runs the same way, with
what GnuTLS itself refuses."""

import os
import shutil
import subprocess

import pytest

from conftest import BUILDDIR, TOP
from helpers import free_port, make_cert

GUEST = os.path.join(TOP, "scripts", "compare-stacks-guest.sh")
TABLE = os.path.join(TOP, "scripts", "compare-stacks-table.py")
SCENARIOS = ["tls12", "tls13", "ku", "ku-req", "own-ku", "ku-1000", "bad-ku", "chacha"]
STACKS = ["ko-t", "ko-h", "ossl30"]


def run_guest_half(d, stacks, path_dirs):
    os.makedirs(os.path.join(d, "certs"), exist_ok=True)
    make_cert(os.path.join(d, "certs"))
    shutil.copy(os.path.join(BUILDDIR, "test", "peer", "crafted-client"), d)
    env = dict(os.environ, CS_DIR=d, CS_PORT=str(free_port()),
               CS_KTLS_MODULE=os.path.join(BUILDDIR, "provider", ".libs", "ktls.so"),
               PATH=os.pathsep.join(path_dirs + [os.environ["PATH"]]))
    r = subprocess.run(["sh", GUEST, " ".join(stacks), "4", "4"], cwd=d, env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    return r


def results(out):
    res = {}
    for line in out.splitlines():
        w = line.split(" ")
        if w[0] == "RES":
            res[(w[1], w[2])] = dict(x.split("=", 1) for x in w[3:])
    return res


@pytest.fixture(scope="module")
def host_run(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("compare-stacks"))
    r = run_guest_half(d, STACKS, [os.path.join(BUILDDIR, "apps")])
    assert r.returncode == 0, r.stderr[-3000:]
    with open(os.path.join(d, "host.out"), "w") as f:
        f.write(r.stdout)
    return d, r.stdout


def test_every_scenario_ok_in_userspace(host_run):
    _, out = host_run
    res = results(out)
    assert "DONE" in out.splitlines()
    for st in STACKS:
        for sc in SCENARIOS:
            r = res.get((st, sc))
            assert r is not None, "%s %s: no result\n%s" % (st, sc, out)
            assert r["result"] == "ok", (st, sc, r)
            # no kTLS here: nothing was set up in the kernel
            assert (r["tx"], r["rx"]) == ("U", "U"), (st, sc, r)
    # the KeyUpdate scenarios did send KeyUpdates (4 MiB, every 4 records:
    # 64; every 16: 15 or 16)
    assert res[("ko-t", "ku-1000")]["detail"].startswith(("63-", "64-")), res[("ko-t", "ku-1000")]
    assert int(res[("ko-h", "own-ku")]["detail"].split("-")[0]) > 0
    assert res[("ossl30", "bad-ku")]["detail"] == "alert-47"


def test_table_of_the_run(host_run):
    d, _ = host_run
    r = subprocess.run(["python3", TABLE, os.path.join(d, "host.out")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["scenario", "ko-t", "host", "ko-h", "host", "ossl30", "host"]
    body = [line for line in lines[1:9]]
    assert len(body) == len(SCENARIOS)
    for line in body:
        assert line.count("UU ok") == len(STACKS), line
    md = subprocess.run(["python3", TABLE, "--markdown", os.path.join(d, "host.out")],
                        capture_output=True, text=True, timeout=60)
    assert md.stdout.startswith("| scenario | ko-t host |"), md.stdout


def test_a_wrong_transfer_is_not_ok(tmp_path):
    """A bad run is caught: behind a ktls-client that damages what it
    received (one byte more in its --output file: s_server's file
    downloads) or reports a failed check (exit status 1: the echo
    servers), no transfer scenario may be ok."""
    shim = tmp_path / "shim"
    shim.mkdir()
    real = os.path.join(BUILDDIR, "apps", "ktls-client")
    (shim / "ktls-client").write_text(
        "#!/bin/sh\nout=\nprev=\nfor a; do [ \"$prev\" = --output ] && out=$a; prev=$a; done\n"
        "%s \"$@\"\n"
        "if [ -n \"$out\" ]; then printf x >> \"$out\"; else exit 1; fi\n" % real)
    (shim / "ktls-client").chmod(0o755)
    d = str(tmp_path / "run")
    os.makedirs(d)
    r = run_guest_half(d, ["ko-t", "ossl30"], [str(shim), os.path.join(BUILDDIR, "apps")])
    res = results(r.stdout)
    for st in ("ko-t", "ossl30"):
        for sc in ("tls12", "tls13", "ku", "ku-req", "ku-1000", "chacha"):
            assert res[(st, sc)]["result"] in ("drop", "wrong"), (st, sc, res[(st, sc)])
    assert res[("ossl30", "tls13")]["result"] == "wrong", res[("ossl30", "tls13")]


def test_gnutls_stack_on_the_host(gnutls_next, tmp_path):
    """The guest half's GnuTLS column, in userspace: gnutls-serv --echo
    echoes lines of text (ktls-client --text); every transfer ok byte for
    byte; own-ku n/a (gnutls-serv has no command to send one); bad-ku gets
    illegal_parameter; ku-1000 is ended by GnuTLS's own limit of 8
    KeyUpdates a second, and the cell says so."""
    d = str(tmp_path / "run")
    os.makedirs(d)
    os.symlink(gnutls_next[0], os.path.join(d, "gnutls"))
    r = run_guest_half(d, ["gnutls"], [os.path.join(BUILDDIR, "apps")])
    assert r.returncode == 0, r.stderr[-3000:]
    res = results(r.stdout)
    assert "VERSION gnutls GnuTLS %s" % gnutls_next[1] in r.stdout.splitlines()
    for sc in SCENARIOS:
        c = res[("gnutls", sc)]
        assert (c["tx"], c["rx"]) == ("U", "U"), (sc, c)
        if sc == "own-ku":
            assert c["result"] == "n/a", c
        elif sc == "ku-1000":
            assert c["result"] == "drop", c
            assert c["detail"].startswith("gnutls-ku-rate-limit-after-"), c
        else:
            assert c["result"] == "ok", (sc, c)
    assert res[("gnutls", "bad-ku")]["detail"] == "alert-47"
    assert res[("gnutls", "ku-req")]["detail"] == "6-ku-sent"
