"""ktls-serve --uring built against the newest liburing Debian has as well
as against Debian 12's 2.3: configure checks what each liburing offers and
nothing in the project depends on one version.

scripts/liburing-next.sh builds the newer liburing (forky's, else
trixie's) from Debian's source package into the cache, in about 20 s.
This test configures and builds the project again in <builddir>-liburing-next
against it (PKG_CONFIG_PATH, a configure argument, so a newer liburing
reconfigures), checks that configure found it and that ktls-serve loads it
(LD_LIBRARY_PATH), and runs test_host_uring.py on that build.

KTLS_LIBURING_NEXT=1 builds the library when it is not cached (scripts/
test.sh sets it); unset, a cached build is used and the test is skipped
without one; 0 skips it.  Where the source package cannot be downloaded
the test is skipped with the script's reason."""

import os
import re
import subprocess
import sys

import pytest

from conftest import BUILDDIR, TEST_DIR, TOP, ktls_skip
from helpers import free_port, make_cert, run, wait_port

NEXT_BUILDDIR = BUILDDIR.rstrip("/") + "-liburing-next"


@pytest.fixture(scope="module")
def next_build(liburing_next):
    libdir = os.path.join(liburing_next[0], "lib")
    r = run([os.path.join(TOP, "scripts", "build.sh"),
             "PKG_CONFIG_PATH=" + os.path.join(libdir, "pkgconfig")], 1800,
            env=dict(os.environ, KTLS_BUILDDIR=NEXT_BUILDDIR))
    assert r.returncode == 0, "building against liburing %s failed:\n%s" % (
        liburing_next[1], r.stdout[-3000:] + r.stderr[-3000:])
    return libdir


def test_configure_found_the_newer_liburing(liburing_next, next_build):
    d, version = liburing_next
    with open(os.path.join(NEXT_BUILDDIR, "config.log")) as f:
        log = f.read()
    m = re.search(r"liburing (\S+) in (\S+); optional features: (.*)", log)
    assert m, "no liburing summary in %s/config.log" % NEXT_BUILDDIR
    print("\n[liburing-next] %s" % m.group(0))
    assert m.group(1) == version and m.group(2) == next_build
    with open(os.path.join(NEXT_BUILDDIR, "config.h")) as f:
        assert '#define KTLS_LIBURING_VERSION "%s"' % version in f.read()
    # 2.4 and later: every check beyond Debian 12's 2.3 finds its feature
    if tuple(int(x) for x in version.split(".")[:2]) >= (2, 4):
        for feature in ("io_uring_setup_buf_ring", "io_uring_major_version"):
            assert feature in m.group(3).split(), m.group(0)


def test_ktls_serve_loads_the_newer_liburing(liburing_next, next_build, tmp_path):
    d, version = liburing_next
    binary = os.path.join(NEXT_BUILDDIR, "apps", ".libs", "ktls-serve")
    env = dict(os.environ, LD_LIBRARY_PATH=next_build)
    r = run(["ldd", binary], 60, env=env)
    assert r.returncode == 0, r.stderr
    uring = [line for line in r.stdout.splitlines() if "liburing" in line]
    assert len(uring) == 1 and "=> %s/liburing.so" % next_build in uring[0], r.stdout
    # and what really runs: the ring server's mapped liburing
    cert, key = make_cert(str(tmp_path))
    port = free_port()
    proc = subprocess.Popen([os.path.join(NEXT_BUILDDIR, "apps", "ktls-serve"), "--cert",
                             cert, "--key", key, "--port", str(port), "--uring",
                             "--max-conns", "1"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port, proc)
        with open("/proc/%d/maps" % proc.pid) as f:
            maps = {p for p in (line.split()[-1] for line in f)
                    if os.path.basename(p).startswith("liburing")}
    finally:
        proc.kill()
        proc.communicate()
    assert maps == {os.path.realpath(os.path.join(next_build, "liburing.so.2"))}, maps


def test_host_ring_tests_pass_on_the_newer_liburing(liburing_next, next_build):
    env = dict(os.environ, KTLS_BUILDDIR=NEXT_BUILDDIR, LD_LIBRARY_PATH=next_build)
    r = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
             "test_host_uring.py"], 1200, cwd=TEST_DIR, env=env)
    tail = r.stdout[-3000:] + r.stderr[-2000:]
    print("\n[liburing-next] test_host_uring.py on liburing %s: %s"
          % (liburing_next[1], r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""))
    assert r.returncode == 0, tail
    summary = r.stdout.strip().splitlines()[-1]
    if " passed" not in summary:
        ktls_skip("test_host_uring.py ran nothing on this host: " + summary,
                  allowed="host-has-ktls")
    assert "failed" not in summary and "error" not in summary, tail
