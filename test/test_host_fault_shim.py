"""The fault-injection TEST TOOL (test/fault/ktls-fault.so, LD_PRELOAD) on
the host: its random mode (KTLS_FAULT_RANDOM, used by the soak) and its
configuration errors.  The host kernel has no kTLS, so the injected calls
here are sendmsg()/recvmsg() on a plain TCP pair, made by a Python child
through libc; the setsockopt() rules are exercised against a real kernel
by test_vm_faults.py."""

import os
import subprocess
import sys

import pytest

from conftest import BUILDDIR

SHIM = os.path.join(BUILDDIR, "test", "fault", ".libs", "ktls-fault.so")

# A TCP pair on loopback; CALLS sendmsg/recvmsg round trips; prints how
# many of each failed with EIO (the shim's own stderr lines go to stderr).
CHILD = r"""
import errno, socket, sys
calls = int(sys.argv[1])
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(1)
a = socket.create_connection(lst.getsockname()); b, _ = lst.accept()
u1, u2 = socket.socketpair(socket.AF_UNIX)
fails = {"send": 0, "recv": 0, "unix": 0}
for i in range(calls):
    try:
        a.sendmsg([b"x"])
    except OSError as e:
        assert e.errno == errno.EIO, e
        fails["send"] += 1
        continue
    while True:
        try:
            assert b.recvmsg(1)[0] == b"x"
            break
        except OSError as e:
            assert e.errno == errno.EIO, e
            fails["recv"] += 1
    try:                        # not TCP: never failed
        u1.sendmsg([b"y"]); u2.recvmsg(1)
    except OSError:
        fails["unix"] += 1
print(fails["send"], fails["recv"], fails["unix"])
"""


def run(env, calls=2000):
    if not os.path.isfile(SHIM):
        pytest.fail("%s is not built: run scripts/build.sh" % SHIM, pytrace=False)
    return subprocess.run([sys.executable, "-c", CHILD, str(calls)],
                          env=dict(os.environ, LD_PRELOAD=SHIM, **env),
                          capture_output=True, text=True, timeout=120)


def counts(r):
    assert r.returncode == 0, r.stderr[-2000:]
    return tuple(int(x) for x in r.stdout.split())


def test_random_faults_hit_about_their_share():
    """100,000 in a million of 4,000+ TCP calls: about a tenth fail, each
    with EIO and one line on stderr; the UNIX socket calls never."""
    r = run({"KTLS_FAULT_RANDOM": "sendmsg+recvmsg:100000:7"})
    send, recv, unix = counts(r)
    lines = [x for x in r.stderr.splitlines() if x.startswith("ktls-fault: injected EIO")]
    print("\n[fault_shim] sendmsg %d, recvmsg %d failed of ~4000 calls" % (send, recv))
    assert unix == 0
    assert 100 < send < 320 and 100 < recv < 320, (send, recv)
    assert len(lines) == send + recv, r.stderr[-2000:]
    assert all(x.endswith("(random)") for x in lines), lines[:3]


def test_same_seed_same_faults_other_seed_others():
    a = run({"KTLS_FAULT_RANDOM": "sendmsg+recvmsg:50000:11"})
    b = run({"KTLS_FAULT_RANDOM": "sendmsg+recvmsg:50000:11"})
    c = run({"KTLS_FAULT_RANDOM": "sendmsg+recvmsg:50000:12"})
    assert counts(a) == counts(b) and a.stderr == b.stderr
    assert a.stderr != c.stderr


def test_only_the_named_calls():
    send, recv, _ = counts(run({"KTLS_FAULT_RANDOM": "recvmsg:200000:3"}))
    assert send == 0 and recv > 100, (send, recv)


def test_port_filter_applies():
    """KTLS_FAULT_PORT names no port of the pair: nothing is failed."""
    assert counts(run({"KTLS_FAULT_RANDOM": "sendmsg+recvmsg:1000000:1",
                       "KTLS_FAULT_PORT": "9"})) == (0, 0, 0)


@pytest.mark.parametrize("spec,why", [
    ("sendmsg:0:1", "PPM is not 1..1000000"),
    ("sendmsg:1000001:1", "PPM is not 1..1000000"),
    ("write:10:1", "CALLS: not setsockopt, sendmsg or recvmsg"),
    ("sendmsg:10", "not CALLS:PPM:SEED"),
    ("sendmsg:10:x", "SEED is not a number"),
])
def test_bad_random_spec_stops_the_program(spec, why):
    r = run({"KTLS_FAULT_RANDOM": spec}, calls=1)
    assert r.returncode == 2, r
    assert 'ktls-fault: bad KTLS_FAULT_RANDOM="%s"' % spec in r.stderr and why in r.stderr, \
        r.stderr
