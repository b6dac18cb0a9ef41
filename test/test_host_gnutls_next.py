"""The newer GnuTLS that scripts/compare-stacks.sh sets beside the bridge:
gnutls-serv and gnutls-cli of the newest GnuTLS 3.8 Debian has, built by
scripts/gnutls-next.sh with kTLS compiled in, running on Debian 12 with
their own libraries (LD_LIBRARY_PATH) and the system's untouched.

This host's kernel has no kTLS, so here GnuTLS keeps its records in
userspace: these tests check the build (version, its own libraries
loaded, kTLS turned on by its configuration file) and that it talks to
the bridge byte for byte.  Kernel offload by GnuTLS is measured in the
guests by scripts/compare-stacks.sh.

KTLS_GNUTLS_NEXT=1 builds it when it is not cached (scripts/test.sh sets
it); unset, a cached build is used and the tests are skipped without one;
0 skips them.  Where the source cannot be downloaded the tests are skipped
with the script's reason."""

import json
import os
import re
import subprocess

import pytest

from helpers import app, free_port, host_has_ktls, make_cert, run, sha256, wait_port


def gnutls_env(d):
    return dict(os.environ, LD_LIBRARY_PATH=os.path.join(d, "lib"),
                GNUTLS_SYSTEM_PRIORITY_FILE=os.path.join(d, "ktls.conf"))


def test_version_is_newer_than_debian_12s(gnutls_next):
    d, version = gnutls_next
    # 3.8.10 and later re-key a kTLS connection on KeyUpdate
    assert tuple(int(x) for x in version.split(".")[:3]) >= (3, 8, 10), version
    for prog in ("gnutls-serv", "gnutls-cli"):
        r = run([os.path.join(d, "bin", prog), "--version"], 30, env=gnutls_env(d))
        assert r.returncode == 0, r.stderr
        first = r.stdout.splitlines()[0]
        print("\n[gnutls-next] %s" % first)
        assert first.endswith(" " + version), first
    # the configuration file the stacks run with turns kTLS on
    with open(os.path.join(d, "ktls.conf")) as f:
        conf = f.read()
    assert re.search(r"^\[global\]\s*^ktls\s*=\s*true\s*$", conf, re.M), conf


def test_no_run_path_and_its_own_libraries(gnutls_next):
    d, version = gnutls_next
    serv = os.path.join(d, "bin", "gnutls-serv")
    r = run(["readelf", "-d", serv], 30)
    assert r.returncode == 0 and "RUNPATH" not in r.stdout and "RPATH" not in r.stdout
    r = run(["ldd", serv], 30, env=gnutls_env(d))
    assert r.returncode == 0, r.stderr
    libs = dict(re.findall(r"^\s*(\S+) => (\S+)", r.stdout, re.M))
    for lib in ("libgnutls.so.30", "libnettle.so.8", "libhogweed.so.6"):
        assert libs.get(lib, "").startswith(os.path.join(d, "lib") + "/"), r.stdout


@pytest.fixture
def gnutls_echo(gnutls_next, tmp_path):
    """gnutls-serv --echo on a free port, the newer libraries mapped."""
    d, version = gnutls_next
    cert, key = make_cert(str(tmp_path))
    port = free_port()
    # a file, not a pipe: it writes what it echoes there, and a full pipe
    # would stop it
    log = open(tmp_path / "gnutls-serv.log", "wb")
    proc = subprocess.Popen([os.path.join(d, "bin", "gnutls-serv"), "--echo", "--port",
                             str(port), "--x509certfile", cert, "--x509keyfile", key],
                            env=gnutls_env(d), stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc)
        yield proc, port, d
    finally:
        proc.kill()
        proc.wait()
        log.close()


def test_the_newer_libraries_are_what_runs(gnutls_echo):
    proc, port, d = gnutls_echo
    with open("/proc/%d/maps" % proc.pid) as f:
        mapped = {p for p in (line.split()[-1] for line in f)
                  if re.match(r"lib(gnutls|nettle|hogweed)\.so", os.path.basename(p))}
    real = os.path.realpath(os.path.join(d, "lib"))
    assert mapped and all(os.path.dirname(p) == real for p in mapped), mapped
    assert len(mapped) == 3, mapped


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_bridge_client_echoes_through_gnutls_serv(gnutls_echo, version):
    """ktls-client --mode echo --text against the newer gnutls-serv --echo
    (which echoes lines of text): 1 MiB out and back, compared byte for
    byte by the client; on TLS 1.3 with a KeyUpdate(update_requested) every
    8 records, which GnuTLS must answer with its own.  Userspace records on
    both sides here (no kTLS in this kernel)."""
    proc, port, d = gnutls_echo
    nbytes = 1 << 20
    args = [app("ktls-client"), "--json", "--mode", "echo", "--text", "--bytes", str(nbytes),
            "--tls1_3" if version == "1.3" else "--tls1_2", "127.0.0.1:%d" % port]
    if version == "1.3":
        args[1:1] = ["--keyupdate-every", "8", "--keyupdate-requested"]
    r = run(args, 120)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    assert res["ok"] is True and res["bytes_sent"] == nbytes, res
    assert res["bytes_received"] == nbytes and res["sha256_received"] == res["sha256_sent"]
    assert res["sha256_sent"] != sha256(b""), res
    if version == "1.3":
        assert res["keyupdates_sent"] == (nbytes // 16384 - 1) // 8, res
    if not host_has_ktls():
        assert res["status"]["tx"]["mode"] == "userspace", res["status"]
