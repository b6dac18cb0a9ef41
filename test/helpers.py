"""Helpers shared by the host tests: the build's tools, certificates,
ports, and stock OpenSSL peers."""

import hashlib
import json
import os
import re
import socket
import subprocess
import threading
import time

TEST_DIR = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(TEST_DIR)
BUILDDIR = os.environ.get("KTLS_BUILDDIR") or os.path.join(TOP, "_build")
APPS = os.path.join(BUILDDIR, "apps")


def app(name):
    path = os.path.join(APPS, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError("%s is not built: run scripts/build.sh first" % path)
    return path


def package_version():
    """configure.ac's version of the package (AC_INIT)."""
    with open(os.path.join(TOP, "configure.ac")) as f:
        return re.search(r"AC_INIT\(\[ktls-offload\], \[([^]]+)\]", f.read()).group(1)


def host_has_ktls():
    """True when this machine's kernel offers kTLS (then the host tests
    that assert the fallback reasons do not apply)."""
    out = subprocess.run([app("ktls-probe"), "--json"], capture_output=True, check=True)
    return json.loads(out.stdout)["ulp"]["available"]


def make_cert(directory, cn="localhost", kind="ec"):
    key = os.path.join(directory, "key.pem")
    cert = os.path.join(directory, "cert.pem")
    if not os.path.exists(cert):
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec" \
            else ["-newkey", "rsa:2048"]
        subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key,
                        "-out", cert, "-subj", "/CN=" + cn, "-days", "7"],
                       check=True, capture_output=True)
    return cert, key


def run(cmd, timeout, **kw):
    """subprocess.run with no stdin and text stdout/stderr captured."""
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    """Is something listening on this TCP port?  (Reads /proc/net/tcp*,
    so it does not use up a connection of a one-shot server.)"""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


def wait_port(port, proc=None, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited early (status %s)" % proc.returncode)
        if listening(port):
            return
        time.sleep(0.02)
    raise RuntimeError("nothing listens on port %d after %.0f s" % (port, timeout))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def payload_lines(nbytes, seed=1):
    """Text lines safe for s_client/s_server's stdin: none starts with a
    command letter (Q, R, k, K ...), so every byte is data."""
    lines = []
    total = 0
    i = 0
    while total < nbytes:
        digest = hashlib.sha256(b"%d:%d" % (seed, i)).hexdigest()
        line = ("D%08d " % i + digest * 3 + "\n").encode()
        lines.append(line)
        total += len(line)
        i += 1
    return lines


# Guest shell (dash), one copy of each: the waits poll for an event, never
# for a fixed time (each bounded, 20-60 s), and count in private variables
# (dash has no `local`: a caller's own loop counter must survive them).
#   stats NAME          "STAT NAME {json}": every /proc/net/tls_stat counter
#   tlsstat COUNTER     one counter's value
#   waitport PORT       until something listens on PORT
#   waitlisten FILE     until the server whose stderr is FILE says it listens
#   waitfor FILE TEXT   until TEXT shows in FILE
#   waitsize FILE BYTES until FILE holds BYTES (e.g. an echo came back)
#   waitstat COUNTER N  until tls_stat's COUNTER reaches N
#   feedrekeys IN EXPECT OUT COUNTER
#                       IN's lines to stdout (gnutls-cli --inline-commands
#                       reads them): after a ^rekey line and the data line
#                       after it, until COUNTER moved once more (the
#                       server's kernel saw that KeyUpdate, or re-keyed to
#                       answer it: a server in transparent mode answers
#                       when data makes it read), so no two are in flight;
#                       at the end until OUT holds EXPECT's size (echo back)
# (no percent signs in it: some scripts are %-formatted after prepending it)
GUEST_SH = r"""
stats() {
    echo "STAT $1 {$(awk 'NF == 2 && $2 ~ /^[0-9]+$/ {s = s sep "\"" $1 "\":" $2; sep = ","} END {print s}' /proc/net/tls_stat)}"
}
tlsstat() { awk -v n=$1 '$1 == n {print $2}' /proc/net/tls_stat; }
# _until WHAT TRIES CMD...: CMD every 0.05 s until it succeeds
_until() {
    u_what=$1; u_max=$2; u_n=0; shift 2
    while ! "$@"; do
        u_n=$((u_n+1)); [ $u_n -gt $u_max ] && { echo "timed out: $u_what" >&2; return 1; }
        sleep 0.05
    done
}
_listens() { ss -ltnH "( sport = :$1 )" 2>/dev/null | grep -q .; }
_has() { grep -q "$2" "$1" 2>/dev/null; }
_size() { [ "$(wc -c < $1)" -ge $2 ]; }
_stat() { [ "$(tlsstat $1)" -ge $2 ]; }
waitport() { _until "port $1 never listened" 400 _listens $1; }
waitlisten() { _until "never listened: $1" 600 _has "$1" listening || { cat "$1" >&2; return 1; }; }
waitfor() { _until "$2 never showed in $1" 400 _has "$1" "$2"; }
waitsize() { _until "waitsize $1 $2" 1200 _size $1 $2; }
waitstat() { _until "waitstat $1 $2" 1200 _stat $1 $2; }
feedrekeys() {
    fr_base=$(tlsstat $4); fr_k=0; fr_seen=0
    while read -r fr_line; do
        echo "$fr_line"
        case $fr_line in ^rekey*) fr_k=$((fr_k+1)); continue;; esac
        if [ $fr_seen -lt $fr_k ]; then
            waitstat $4 $((fr_base + fr_k)) || return 1
            fr_seen=$fr_k
        fi
    done < $1
    if [ $fr_seen -lt $fr_k ]; then waitstat $4 $((fr_base + fr_k)) || return 1; fi
    waitsize $3 $(wc -c < $2)
}
"""

# `conf NAME "KEY = VALUE"` writes /root/NAME.cnf, an openssl.cnf that loads
# the installed "ktls" provider with that setting.
GUEST_PROVIDER_CONF = GUEST_SH + r"""
mod=$(find / -xdev -name ktls.so -path '*ossl-modules*' 2>/dev/null | head -n1)
[ -n "$mod" ] || { echo "ktls.so not installed in the guest"; exit 3; }
conf() {
    cat > "/root/$1.cnf" <<EOC
openssl_conf = init
[init]
providers = prov
[prov]
default = dflt
ktls = ktls
[dflt]
activate = 1
[ktls]
activate = 1
module = $mod
$2
EOC
}
"""


class SClient:
    """Stock `openssl s_client` (quiet, -no_ign_eof) whose output a thread
    reads.  Its -msg trace goes to a file, so a test can see the KeyUpdates
    it sent and received: command(b"K\\n") returns once s_client has sent
    the KeyUpdate (s_client takes a command only when a stdin read starts
    with it, so the next data must wait until then)."""

    def __init__(self, port, args, msgfile):
        self.msgfile = str(msgfile)
        self.proc = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                                      "-quiet", "-no_ign_eof", "-msg", "-msgfile", self.msgfile,
                                      *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.got = bytearray()
        self.eof = False
        self.cmds = 0
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            with self.cond:
                self.got += chunk
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def send(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def wait_for(self, n, timeout=60):
        """True once n bytes came back; False at EOF or timeout."""
        end = time.monotonic() + timeout
        with self.cond:
            while len(self.got) < n and not self.eof and time.monotonic() < end:
                self.cond.wait(end - time.monotonic())
            return len(self.got) >= n

    def keyupdates(self):
        """(sent, received): KeyUpdate messages in the -msg trace so far."""
        try:
            with open(self.msgfile, errors="replace") as f:
                trace = f.read()
        except FileNotFoundError:
            return 0, 0
        return (len(re.findall(r"^>>> .*KeyUpdate", trace, re.M)),
                len(re.findall(r"^<<< .*KeyUpdate", trace, re.M)))

    def command(self, cmd, timeout=30):
        """Send k or K alone and wait until s_client has sent its KeyUpdate;
        False if it did not (s_client gone, or the time ran out)."""
        if not self.send(cmd):
            return False
        self.cmds += 1
        end = time.monotonic() + timeout
        while self.keyupdates()[0] < self.cmds:
            if self.proc.poll() is not None or time.monotonic() > end:
                return False
            time.sleep(0.01)
        return True

    def finish(self, timeout=60):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(10)
        return bytes(self.got), self.proc.stderr.read().decode(errors="replace")
