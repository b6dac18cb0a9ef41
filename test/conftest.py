"""pytest harness for ktls-offload: host tests and qemu VM tests.

Markers: `vm` (needs test/vm/vm-run and boots a guest), `host` (runs on this
machine; given automatically to every test without `vm`).

Environment:
  KTLS_VM=0        skip every VM test (quick host-only runs)
  KTLS_EXPECTED=1  a skip because kTLS or the VM platform is unavailable
                   becomes a failure (use kTLS_skip() for such skips)
  KTLS_BUILDDIR    the configured build (default <top>/_build), installed into
                   each guest by vm-run
  KTLS_VM_KERNEL, KTLS_VM_CACHE, KTLS_VM_TIMEOUT ...  see test/vm/README

Fixtures: vm_platform (session), vm_run, vm_start.
"""

import json
import os
import shlex
import socket
import subprocess
import tempfile
import time

import pytest

TEST_DIR = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(TEST_DIR)
VM_RUN = os.path.join(TEST_DIR, "vm", "vm-run")
BUILDDIR = os.environ.get("KTLS_BUILDDIR") or os.path.join(TOP, "_build")

# vm-run's own exit statuses (see test/vm/README).
VM_EXIT_DMESG = 122
VM_EXIT_TIMEOUT = 124
VM_EXIT_PLATFORM = 125


def ktls_expected():
    v = os.environ.get("KTLS_EXPECTED", "")
    if v not in ("", "0", "1"):
        raise pytest.UsageError("KTLS_EXPECTED=%r: use 1 (every part must run) or 0" % v)
    return v == "1"


# The only skips that KTLS_EXPECTED=1 lets through: each key names a
# documented reason why a part does not apply, not that it could not run.
SKIP_ALLOWED = {
    "kasan": "the KASAN + kmemleak run is opt-in (KTLS_KASAN=1): it takes minutes",
    "patched7": "the kernel/7.x series tests are opt-in (KTLS_PATCHED7=1): building the "
                "second patched kernel takes minutes of both cores, past the default "
                "suite's 45-minute budget on CI",
    "haproxy": "the HAProxy tests are opt-in (KTLS_HAPROXY=1): building HAProxy from "
               "Debian's source package takes about 6 minutes on two cores",
    "nginx": "the nginx tests are opt-in (KTLS_NGINX=1): building stock and bridge-linked "
             "nginx from Debian's source package takes about 2 minutes each on two cores",
    "liburing-next": "the build against the newer liburing runs when asked for "
                     "(KTLS_LIBURING_NEXT=1, which scripts/test.sh sets) or when "
                     "scripts/liburing-next.sh has built it already",
    "gnutls-next": "the newer GnuTLS runs when asked for (KTLS_GNUTLS_NEXT=1, which "
                   "scripts/test.sh sets) or when scripts/gnutls-next.sh has built it already",
    "host-has-ktls": "this host's kernel has kTLS, so the host tests of the userspace "
                     "fallback and its reasons do not apply (the VM tests cover kTLS)",
}


def ktls_skip(reason, allowed=None):
    """Every skip of the suite goes through here.  Under KTLS_EXPECTED=1 a
    skip is a failure, unless `allowed` names an entry of SKIP_ALLOWED."""
    if allowed is not None:
        assert allowed in SKIP_ALLOWED, allowed
        pytest.skip("%s (%s)" % (reason, SKIP_ALLOWED[allowed]))
    if ktls_expected():
        pytest.fail("KTLS_EXPECTED=1, but " + reason, pytrace=False)
    pytest.skip(reason)


def project_built():
    return os.path.isfile(os.path.join(BUILDDIR, "Makefile"))


def pytest_configure(config):
    if ktls_expected() and os.environ.get("KTLS_VM") == "0":
        raise pytest.UsageError("KTLS_EXPECTED=1 asks for the VM tests and KTLS_VM=0 "
                                "skips them: choose one")
    config.addinivalue_line("markers", "vm: boots a qemu guest through test/vm/vm-run")
    config.addinivalue_line("markers", "host: runs on this machine only (the default)")


def pytest_collection_modifyitems(config, items):
    skip_vm = pytest.mark.skip(reason="KTLS_VM=0: VM tests skipped")
    for item in items:
        if "vm" in item.keywords:
            if os.environ.get("KTLS_VM") == "0":
                item.add_marker(skip_vm)
        else:
            item.add_marker(pytest.mark.host)


_vm_passed = []


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed and "vm" in report.keywords:
        _vm_passed.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    """Under KTLS_EXPECTED=1 a run in which VM tests were collected but none
    passed proves nothing about kTLS: fail it."""
    collected = [i for i in getattr(session, "items", []) if "vm" in i.keywords]
    if ktls_expected() and collected and not _vm_passed and exitstatus == 0:
        session.config.get_terminal_writer().line(
            "KTLS_EXPECTED=1: %d VM tests collected and none passed" % len(collected),
            red=True)
        session.exitstatus = 1


class VMResult(tuple):
    """(rc, stdout) of one guest run, plus .stderr, .dmesg and .info."""

    def __new__(cls, rc, stdout, stderr="", dmesg="", info=None):
        self = super().__new__(cls, (rc, stdout))
        self.rc, self.stdout, self.stderr = rc, stdout, stderr
        self.dmesg, self.info = dmesg, info or {}
        return self


def _pairs(items):
    out = []
    for it in items:
        if isinstance(it, str):
            out.append(it)
        else:
            a, b = it
            out.append("%s:%s" % (a, b))
    return out


class VMProcess:
    """A running vm-run; wait() returns a VMResult and checks the outcome."""

    def __init__(self, command, kernel=None, forwards=(), puts=(), no_modules=(),
                 timeout=300, project=True, env=(), extra_args=(),
                 allow_dmesg_warnings=False, builddir=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="vm-run-")
        self.json = os.path.join(self.tmp.name, "result.json")
        self.dmesg_path = os.path.join(self.tmp.name, "dmesg")
        self.timeout = timeout
        self.allow_dmesg_warnings = allow_dmesg_warnings
        args = [VM_RUN, "--timeout", str(timeout), "--result-json", self.json,
                "--dmesg-out", self.dmesg_path]
        if kernel:
            args += ["--kernel", kernel]
        for f in _pairs(forwards):
            args += ["--forward", f]
        for p in _pairs(puts):
            args += ["--put", p]
        for m in no_modules:
            args += ["--no-module", m]
        for kv in (env.items() if isinstance(env, dict) else env):
            args += ["--env", kv if isinstance(kv, str) else "%s=%s" % kv]
        if not project:
            args.append("--no-project")
        if allow_dmesg_warnings:
            args.append("--allow-dmesg-warnings")
        args += list(extra_args)
        args.append("--")
        args += [command] if isinstance(command, str) else list(command)
        self.args = args
        # builddir: install that build in the guest instead of KTLS_BUILDDIR's
        host_env = dict(os.environ, KTLS_BUILDDIR=builddir) if builddir else None
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, env=host_env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait(self):
        try:
            out, err = self.proc.communicate(timeout=self.timeout + 120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            pytest.fail("vm-run did not stop %d s after its own timeout" % 120)
        out = out.decode(errors="replace")
        err = err.decode(errors="replace")
        info, dmesg = {}, ""
        if os.path.exists(self.json):
            with open(self.json) as f:
                info = json.load(f)
        if os.path.exists(self.dmesg_path):
            with open(self.dmesg_path, errors="replace") as f:
                dmesg = f.read()
        self.tmp.cleanup()
        status = self.proc.returncode
        cmd = " ".join(shlex.quote(a) for a in self.args)
        if info.get("failure") or (not info and status == VM_EXIT_PLATFORM):
            # the guest's console (its dmesg when it never got to say more):
            # where a boot that stalled stopped
            tail = "\n  ".join(dmesg.splitlines()[-25:])
            pytest.fail("VM run failed: %s\n$ %s\n%s\nthe guest's console, last lines:\n  %s"
                        % (info.get("failure"), cmd, err, tail), pytrace=False)
        if info.get("dmesg_bad") and not self.allow_dmesg_warnings:
            pytest.fail("guest dmesg has BUG/WARNING/Oops lines:\n  %s\n$ %s"
                        % ("\n  ".join(info["dmesg_bad"]), cmd), pytrace=False)
        rc = info.get("rc", status)
        return VMResult(rc, out, err, dmesg, info)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def newer_library(script, var, name, allowed, timeout):
    """(directory, version) of a newer library that scripts/SCRIPT builds
    from Debian's newer suites, beside the system's (its own prefix with a
    `version` file).

    VAR=1 builds it when it is not cached; unset, a cached build is used
    and the test is skipped (allowed reason) without one; VAR=0 skips.
    The script's exit 3 (the source could not be downloaded here) skips
    with its reason; any other failure fails the test."""
    path = os.path.join(TOP, "scripts", script)
    want = os.environ.get(var, "")
    if want == "0":
        ktls_skip("%s=0" % var, allowed=allowed)
    r = subprocess.run([path] if want == "1" else [path, "--print-path"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode == 1 and want != "1":
        ktls_skip("the newer %s is not built (scripts/%s)" % (name, script), allowed=allowed)
    if r.returncode == 3:
        ktls_skip("the newer %s's source could not be downloaded here:\n%s"
                  % (name, r.stderr[-2000:]))
    assert r.returncode == 0, "scripts/%s failed:\n%s" % (script, r.stderr[-3000:])
    d = r.stdout.strip().splitlines()[-1]
    with open(os.path.join(d, "version")) as f:
        return d, f.read().strip()


@pytest.fixture(scope="session")
def gnutls_next():
    """The newer GnuTLS (scripts/gnutls-next.sh; KTLS_GNUTLS_NEXT=1 builds
    it, about 7 minutes on two cores): see newer_library()."""
    return newer_library("gnutls-next.sh", "KTLS_GNUTLS_NEXT", "GnuTLS", "gnutls-next", 1800)


@pytest.fixture(scope="session")
def liburing_next():
    """The newer liburing (scripts/liburing-next.sh; KTLS_LIBURING_NEXT=1
    builds it, about 20 s): see newer_library()."""
    return newer_library("liburing-next.sh", "KTLS_LIBURING_NEXT", "liburing", "liburing-next",
                         600)


@pytest.fixture(scope="session")
def vm_platform():
    """Skips (fails under KTLS_EXPECTED=1) unless a guest boots here.

    Returns the probe boot's timing information."""
    if os.environ.get("KTLS_VM") == "0":
        pytest.skip("KTLS_VM=0: VM tests skipped")
    if not os.access(VM_RUN, os.X_OK):
        ktls_skip("VM platform unavailable: %s is missing" % VM_RUN)
    if subprocess.run(["sh", "-c", "command -v qemu-system-x86_64"],
                      stdout=subprocess.DEVNULL).returncode != 0:
        ktls_skip("VM platform unavailable: qemu-system-x86_64 not installed")
    with tempfile.TemporaryDirectory() as tmp:
        j = os.path.join(tmp, "r.json")
        # debian-6.1: only downloaded, never waits on a kernel build
        r = subprocess.run([VM_RUN, "--kernel", "debian-6.1", "--no-project", "--timeout",
                            "300", "--result-json", j, "--", "echo ktls-vm-ok"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=900)
        info = {}
        if os.path.exists(j):
            with open(j) as f:
                info = json.load(f)
    if r.returncode != 0 or r.stdout.strip() != "ktls-vm-ok":
        ktls_skip("VM platform unavailable: probe boot failed (exit %d):\n%s"
                  % (r.returncode, r.stderr[-3000:]))
    return info.get("timing", {})


@pytest.fixture
def vm_start(vm_platform, request):
    """vm_start(command, ...) -> VMProcess running in the background.

    Same arguments as vm_run; call .wait() for the VMResult."""
    started = []

    def start(command, kernel=None, forwards=(), puts=(), no_modules=(), timeout=300,
              project=True, **kw):
        if project and not project_built():
            ktls_skip("the project is not built in %s: run scripts/build.sh" % BUILDDIR)
        p = VMProcess(command, kernel=kernel, forwards=forwards, puts=puts,
                      no_modules=no_modules, timeout=timeout, project=project, **kw)
        started.append(p)
        return p
    yield start
    for p in started:
        p.kill()


@pytest.fixture
def vm_run(vm_start):
    """vm_run(command, kernel=None, forwards=(), puts=(), no_modules=(), timeout=300,
    project=True, env=(), extra_args=(), allow_dmesg_warnings=False) -> (rc, stdout).

    command: one string (a shell command line) or a list (an exact argv).
    forwards: (hostport, guestport) pairs; puts: (hostpath, guestpath) pairs.
    Fails the test if the guest did not boot, timed out, a module did not
    load, or the guest's dmesg has BUG/WARNING/Oops lines."""
    def run(command, **kw):
        return vm_start(command, **kw).wait()
    return run


def wait_for_port_data(port, deadline, expect=b"", vm=None):
    """Connect to 127.0.0.1:PORT until a connection yields data (the forward
    accepts before the guest listens, so an empty answer means retry).

    A connection is never given up before the deadline: while the guest's
    network is not up yet, qemu's user network keeps re-sending the SYN of a
    connection the host already accepted, and a one-shot guest server that
    starts listening in between takes that connection.  Closing it early
    (the first version waited 5 s) left the server answering a socket nobody
    read, and every later attempt was refused once the guest had exited.
    VM: the VMProcess; if it has exited, stop trying and say so."""
    last = None
    while time.time() < deadline:
        if vm is not None and vm.proc.poll() is not None:
            raise AssertionError("the VM exited (status %d) before 127.0.0.1:%d answered"
                                 " (last: %r)" % (vm.proc.returncode, port, last))
        data = b""
        try:
            with socket.create_connection(("127.0.0.1", port),
                                          timeout=max(1.0, deadline - time.time())) as s:
                while True:
                    s.settimeout(max(1.0, deadline - time.time()))
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            if data and expect in data:
                return data
            last = data
        except OSError as e:
            last = (e, data)
        time.sleep(0.2)
    raise AssertionError("no answer on 127.0.0.1:%d before the deadline (last: %r)"
                         % (port, last))
