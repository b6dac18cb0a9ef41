"""Helpers for VM tests that talk to a guest: guest shell snippets, output
sections, /proc/net/tls_stat parsing, the sock_diag modules that vm-run does
not load, and a guest whose stdout is read while it runs (host-driven peers)."""

import hashlib
import json
import os
import re
import subprocess
import threading
import time

from conftest import TOP, VMProcess
from helpers import GUEST_SH

KERNEL = "debian-6.1"

# The kernels that re-key TLS 1.3, where the re-key tests run: our 6.12
# series and Debian's stock 7.x (mainline's re-key: TLS_TX/TLS_RX set again
# after EKEYEXPIRED); our 7.x series (mainline's re-key + our staged keys
# and KeyUpdate detection) too with KTLS_PATCHED7=1 -- its kernel build
# costs ~15 minutes of both cores, which the default suite leaves out.
REKEY_KERNELS = ["patched-6.12", "debian-7"] + \
    (["patched-7"] if os.environ.get("KTLS_PATCHED7") == "1" else [])
# pre-staged next keys (TLS_TX_NEXT / TLS_RX_NEXT, the *StagedSwitch
# counters): our series only; elsewhere the probe says prestage false and
# every re-key is set again, whatever the policy
STAGED_KERNELS = {"patched-6.12", "patched-7"}


def staged_switches(delta, way, staged):
    """Tls{Tx,Rx}StagedSwitch (way "tx" or "rx") in a tls_stat delta; where
    the kernel has no staged keys the counter must not exist: 0."""
    name = "Tls%sStagedSwitch" % way.capitalize()
    if staged:
        return delta[name]
    assert name not in delta, delta
    return 0


def kernel_tx_rekeys(delta, staged):
    """How often tls_stat says a kernel moved a TX key in a delta: staged
    switches where the kernel stages keys, TLS_TX set again (TlsTxRekeyOk)
    where it does not -- there the staged counter must not exist."""
    if staged:
        return staged_switches(delta, "tx", True)
    staged_switches(delta, "tx", False)
    return delta.get("TlsTxRekeyOk", 0)

# Shell functions for guest scripts (dash).  Output is cut into sections by
# lines "== NAME"; keep big data in the guest and print hashes only.
GUEST_LIB = GUEST_SH + r"""
C=/root/certs/cert.pem; K=/root/certs/key.pem
sec() { echo "== $1"; cat "$1" 2>/dev/null; }
st() { echo "== $1"; cat /proc/net/tls_stat; }
ssconn() { echo "== $1"; ss -tnieH state established "( sport = :$2 )" 2>/dev/null; }
# hold TAG PORT SERVE-ARGS S_CLIENT-ARGS: ktls-serve --echo <- s_client with
# the connection held open for a look at tls_stat (TAG.stat0/1/2) and ss (TAG.ss)
hold() {
	ktls-serve --cert $C --key $K --port $2 --echo --max-conns 1 --json $3 >$1.hold.json 2>$1.hold.err &
	hold_s=$!
	waitport $2
	st $1.stat0
	rm -f $1.done
	(echo hello-$1; i=0; while [ ! -e $1.done ] && [ $i -lt 600 ]; do i=$((i+1)); sleep 0.05; done) |
		openssl s_client -connect 127.0.0.1:$2 -quiet -no_ign_eof $4 >$1.hold.out 2>$1.hold.cerr &
	hold_c=$!
	waitfor $1.hold.out hello-$1
	st $1.stat1
	ssconn $1.ss $2
	touch $1.done
	wait $hold_c; wait $hold_s
	st $1.stat2
	sec $1.hold.json; sec $1.hold.out
}
# sock_diag (ss -i) needs inet_diag + tcp_diag; vm-run does not load them
loaddiag() { for m in inet_diag tcp_diag; do insmod /root/mods/$m.ko 2>&1; done; echo "== diag"; cut -d' ' -f1 /proc/modules | grep diag; }
"""


def diag_module_puts(kernel=KERNEL):
    """--put pairs for the guest's inet_diag.ko and tcp_diag.ko (from the
    flavour's MODULES directory); [] when the flavour has none."""
    env = dict(os.environ, KTLS_TOP=TOP)
    env.setdefault("KTLS_VM_CACHE", os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "ktls-offload", "vm"))
    try:
        out = subprocess.run([os.path.join(TOP, "test", "vm", "flavours", kernel)],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             env=env, timeout=600).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    m = re.search(r"^MODULES=(.*)$", out, re.M)
    puts = []
    for name in ("inet_diag", "tcp_diag"):
        if m and m.group(1):
            p = os.path.join(m.group(1), "kernel", "net", "ipv4", name + ".ko")
            if os.path.exists(p):
                puts.append((p, "/root/mods/%s.ko" % name))
    return puts


def sections(text):
    """{name: body} for every "== name" line of a guest's output."""
    out = {}
    parts = re.split(r"^== (\S+)\n", text, flags=re.M)
    for i in range(1, len(parts) - 1, 2):
        out[parts[i]] = parts[i + 1]
    return out


def tls_stat(text):
    """/proc/net/tls_stat as {counter: int}."""
    stat = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) == 2 and f[1].isdigit():
            stat[f[0]] = int(f[1])
    assert "TlsTxSw" in stat, "not a tls_stat dump: %r" % text[:200]
    return stat


def app_fill(n):
    """The first n bytes of ktls-client's data (apps/common.c app_fill)."""
    return bytes(((x * 2654435761 >> 13) ^ (x >> 8)) & 0xff for x in range(n))


def prefix_sha256(data, n):
    return hashlib.sha256(data[:n]).hexdigest()


def delta(before, after):
    return {k: after[k] - before.get(k, 0) for k in after}


def stat_delta(res, name):
    """tls_stat's change over a guest's `stats NAME.before` .. `stats
    NAME.after` (GUEST_SH), from a tagged_lines()-style result (a list per
    key, or one value)."""
    before, after = res[("STAT", name + ".before")], res[("STAT", name + ".after")]
    if isinstance(before, list):
        before, after = before[0], after[0]
    return delta(before, after)


def nonzero(d):
    """The counters that moved (for printing)."""
    return {k: v for k, v in d.items() if v}


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


class LiveGuest:
    """A vm-run whose stdout is read as it comes (for host-driven peers).

    lines() / wait_line(pattern) look at what the guest printed so far;
    finish() waits for the guest and returns (VMResult, full stdout)."""

    def __init__(self, command, **kw):
        self.vm = VMProcess(command, **kw)
        self.buf = []
        self.cond = threading.Condition()
        self.eof = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in iter(self.vm.proc.stdout.readline, b""):
            with self.cond:
                self.buf.append(raw.decode(errors="replace"))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def text(self):
        with self.cond:
            return "".join(self.buf)

    def wait_line(self, pattern, timeout, start=0):
        """Index just after the first line at or after `start` matching
        `pattern`; AssertionError on timeout or guest exit."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.buf):
                    if rx.search(self.buf[i]):
                        return i + 1
                    i += 1
                left = end - time.monotonic()
                if self.eof or left <= 0:
                    raise AssertionError("guest never printed /%s/ (%s); output so far:\n%s"
                                         % (pattern, "exited" if self.eof else "timeout",
                                            "".join(self.buf)[-3000:]))
                self.cond.wait(left)

    def count(self):
        with self.cond:
            return len(self.buf)

    def finish(self):
        self.reader.join(self.vm.timeout + 60)
        res = self.vm.wait()
        return res, self.text()

    def kill(self):
        self.vm.kill()


# test/fault/ktls-fault.c: the LD_PRELOAD setsockopt() fault injector
# (KTLS_FAULT=OPT:N:ERRNO[,...], KTLS_FAULT_PORT=P; see test/vm/README).
FAULT_SHIM_GUEST = "/root/ktls-fault.so"


def fault_shim_put():
    """(host path, guest path) --put pair for the build's ktls-fault.so."""
    from conftest import BUILDDIR
    path = os.path.join(BUILDDIR, "test", "fault", ".libs", "ktls-fault.so")
    if not os.path.isfile(path):
        raise AssertionError("%s is not built: run scripts/build.sh" % path)
    return (path, FAULT_SHIM_GUEST)


def run_guest_script(tmp, script, kernel, timeout=600, puts=(), builddir=None):
    """Boot once and run SCRIPT (dash) as /root/guest.sh with a fresh
    certificate in /root/certs (cert.pem, key.pem) and PUTS, the project
    installed from BUILDDIR (default KTLS_BUILDDIR's); returns the VMResult
    (VMProcess.wait() fails the test on a platform failure)."""
    from helpers import make_cert
    certs = os.path.join(str(tmp), "certs")
    os.makedirs(certs, exist_ok=True)
    make_cert(certs)
    path = os.path.join(str(tmp), "guest.sh")
    with open(path, "w") as f:
        f.write(script)
    p = VMProcess("sh /root/guest.sh", kernel=kernel, timeout=timeout, builddir=builddir,
                  puts=[(certs, "/root/certs"), (path, "/root/guest.sh")] + list(puts))
    try:
        return p.wait()
    finally:
        p.kill()


def tagged_lines(text, json_kinds=(), text_kinds=()):
    """{(KIND, NAME): [value, ...]} from guest lines "KIND NAME REST": REST
    parsed as JSON for json_kinds, kept as text for text_kinds; other
    lines are ignored."""
    res = {}
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) < 3 or parts[0] not in json_kinds + text_kinds:
            continue
        kind, name, rest = parts
        res.setdefault((kind, name), []).append(
            json.loads(rest) if kind in json_kinds else rest)
    return res
