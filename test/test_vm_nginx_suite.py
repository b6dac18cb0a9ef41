"""nginx's own test suite (nginx-tests, an unmodified snapshot in
../shared/nginx-tests) on our patched 6.12 kernel with kTLS live, against
two nginx binaries built from Debian's source (contrib/nginx/build.sh):

  stock   nginx without our patches, with "ssl_conf_command Options KTLS;"
          injected in the http and stream contexts: libssl's own socket BIO
          offloads (OpenSSL 3.0: TLS 1.3 and TLS 1.2 transmit, TLS 1.2
          receive), SSL_sendfile() included;
  bridge  nginx on the bridge (contrib/nginx/patches): the bridge turns
          kTLS on, no Options KTLS.

Both get "sendfile on;" in the http context, and "user root;" (the guest
runs everything as root, and nginx's default worker user, nobody, could not
read the suite's temporary directories).  The subset is ssl*.t h2_ssl*.t
proxy_ssl*.t stream_ssl*.t (the four groups taken in turn), run with prove,
one prove per file, each test process under a timeout, two files at a time
(the guest's two CPUs), in chunks of eight files that each binary runs in
turn: tls_stat is the whole guest's, so only one binary runs at a time, and
alternating chunks makes a host that slows down (other guests) slow both
alike.  A chunk starts only within the time budget: what it leaves out is
reported for both binaries.  After each chunk, what a killed test left
running is reaped.  (nginx 1.22.1's default ssl_protocols stop at TLS 1.2:
most of the suite's connections are TLS 1.2, both directions offloaded.)

What it proves: every test file that passes with stock nginx passes with the
bridge (the difference, either way, is printed with the failed test
numbers); the suite really ran (a minimum of files ran and passed for each
binary: a run where everything skipped fails); kTLS was live for each
binary: /proc/net/tls_stat's TlsTxSw grew over its files, beyond what the
bridge's own probe accounts for (ktls_probe(3) installs keys on loopback
sockets once in each nginx process; its footprint is measured in the same
guest: the bridge nginx's tls_stat over one TLS 1.2 connection, minus that
connection's two keys, which $ssl_ktls shows; the number of probes is the
TlsTxRekeyOk count, one per probe: nginx re-keys nothing here).

The guest has no perl: the host's perl, prove and the part of its library
trees that prove, Test::More, IO::Socket::SSL (libio-socket-ssl-perl) and
Net::SSLeay (libnet-ssleay-perl) load are put in /root/perl, with the
shared libraries they and nginx need that the guest lacks.  A test that
cannot load a module says "Can't locate": that fails here, it is not a skip.

Opt-in: KTLS_NGINX=1 (building two nginx binaries takes minutes; the suite
under TCG about twenty).  KTLS_NGINX_STOCK_BIN / KTLS_NGINX_BRIDGE_BIN use
given binaries instead of contrib/nginx/build.sh; KTLS_NGINX_SUITE passes
--suite to it; KTLS_NGINX_TESTS="a.t b.t" runs only those files."""

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import time

import pytest

from conftest import BUILDDIR, TOP, ktls_skip, project_built
from helpers import GUEST_SH
from vm_helpers import delta, nonzero, run_guest_script, tagged_lines

pytestmark = pytest.mark.vm

KERNEL = "patched-6.12"
BUILD_SH = os.path.join(TOP, "contrib", "nginx", "build.sh")
SUITE = os.path.normpath(os.path.join(TOP, "..", "shared", "nginx-tests"))
PATTERNS = ("ssl*.t", "h2_ssl*.t", "proxy_ssl*.t", "stream_ssl*.t")
BINARIES = ("stock", "bridge")
TAG = "[vm_nginx_suite]"

FILE_TIMEOUT = 150          # seconds one test file may take in the guest
WORKERS = 2                 # files at a time (the guest's two CPUs)
CHUNK = 8                   # files per chunk (each binary in turn)
BUDGET = 1020               # seconds in which chunks start (later: NOTRUN) ...
GRACE = 180                 # ... and after which no file starts
VM_TIMEOUT = BUDGET + GRACE + 2 * FILE_TIMEOUT + 180
MIN_RAN = 24                # files each binary must have run (not skipped) ...
MIN_PASSED = 16             # ... and passed

# Directives injected through lib/Test/Nginx.pm's environment variables
# (appended to the main, http and stream contexts of every test's config).
GLOBALS = {
    "stock": {"TEST_NGINX_GLOBALS": "user root;",
              "TEST_NGINX_GLOBALS_HTTP": "sendfile on; ssl_conf_command Options KTLS;",
              "TEST_NGINX_GLOBALS_STREAM": "ssl_conf_command Options KTLS;"},
    "bridge": {"TEST_NGINX_GLOBALS": "user root;",
               "TEST_NGINX_GLOBALS_HTTP": "sendfile on;",
               "TEST_NGINX_GLOBALS_STREAM": ""},
}

PERL = "/usr/bin/perl"
PROVE = "/usr/bin/prove"
PERL_MODULES = ("IO::Socket::SSL", "Net::SSLeay")
PERL_PACKAGES = "libio-socket-ssl-perl libnet-ssleay-perl"
# perl's @INC on Debian 12, in its order, and what of each the suite, prove
# and the modules they load need ("" is all of it); a .pm's or directory's
# auto/ counterpart (XS objects, AutoLoader files) comes along.
PERL_INC = (
    ("/usr/lib/x86_64-linux-gnu/perl5/5.36", ("Net/SSLeay.pm", "Net/SSLeay")),
    ("/usr/share/perl5", ("IO/Socket/SSL.pm", "IO/Socket/SSL", "URI.pm", "URI")),
    ("/usr/lib/x86_64-linux-gnu/perl-base", ("",)),
    ("/usr/lib/x86_64-linux-gnu/perl/5.36",
     ("Data", "Digest", "IO", "MIME", "Time", "mro.pm")),
    ("/usr/share/perl/5.36",
     ("App", "TAP", "Test", "Test2", "Test2.pm", "Benchmark.pm", "File", "FindBin.pm",
      "PerlIO.pm", "PerlIO", "IO/Socket", "Time", "Text", "if.pm", "version.pm", "version")),
)
# libraries the guest has (its openssl and libc, the project)
GUEST_HAS = ("libc.so", "libm.so", "ld-linux", "libssl.so", "libcrypto.so",
             "libktls-bridge.so")

GUEST = GUEST_SH + r"""
set -u
export PATH=/root/perl/bin:$PATH PERL5LIB=/root/perl/lib TMPDIR=/tmp/nginx-tests
export LD_LIBRARY_PATH=/root/perl/so${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p $TMPDIR /tmp/claimed
[ -r /proc/net/tls_stat ] && echo "KTLS tls_stat present" || echo "KTLS tls_stat missing"
echo "PERL modules $(perl -MIO::Socket::SSL -MNet::SSLeay -e 'print "perl $^V IO::Socket::SSL $IO::Socket::SSL::VERSION Net::SSLeay $Net::SSLeay::VERSION"' 2>&1)"
for b in __BINARIES__; do
    echo "NGINX $b $(/root/nginx-$b -V 2>&1 | tr '\n' ' ')"
done
# The bridge's probe (ktls_probe(3): once in each nginx process, when its
# first connection has its keys): the bridge nginx and one TLS 1.2
# connection, whose own keys $ssl_ktls shows
mkdir -p /tmp/probe
cat > /tmp/probe/nginx.conf <<'EOC'
user root;
daemon off;
worker_processes 1;
error_log /tmp/probe/error.log info;
pid /tmp/probe/nginx.pid;
events { }
stream {
    server {
        listen 127.0.0.1:8099 ssl;
        ssl_certificate /root/certs/cert.pem;
        ssl_certificate_key /root/certs/key.pem;
        return "KTLS=$ssl_ktls\n";
    }
}
EOC
stats probe.before
/root/nginx-bridge -p /tmp/probe -c /tmp/probe/nginx.conf &
p_pid=$!
waitport 8099
echo "PROBE conn $(timeout 30 openssl s_client -connect 127.0.0.1:8099 -tls1_2 -quiet \
    < /dev/null 2>/dev/null | grep '^KTLS=')"
kill $p_pid; wait $p_pid
stats probe.after
# the environment of one binary's tests
globals() {
    case $1 in
__GLOBALS__
    esac
}
# worker BINARY N DEADLINE FILES...: takes the next of FILES nobody
# claimed, runs it with prove (the test under timeout), until none is
# left; past DEADLINE the rest is NOTRUN
worker() {
    w_b=$1 w_n=$2 w_end=$3
    shift 3
    for w_f; do
        mkdir /tmp/claimed/$w_b:$w_f 2>/dev/null || continue
        if [ $(date +%s) -ge $w_end ]; then
            echo "NOTRUN $w_b $w_f"
            continue
        fi
        w_s=$(date +%s)
        TEST_NGINX_BINARY=/root/nginx-$w_b perl /root/perl/bin/prove \
            -e "timeout __TIMEOUT__ perl" $w_f > /tmp/prove.$w_n 2>&1
        w_rc=$?
        echo "BEGIN $w_b $w_f"
        cat /tmp/prove.$w_n
        echo "END $w_b $w_f $w_rc $(($(date +%s) - w_s))"
    done > /tmp/worker.$w_n
}
# what a killed test left behind: its nginx, its perl daemons (no prove
# runs now: every perl is a leftover)
reap() {
    r_n=0
    for r_p in /proc/[0-9]*; do
        case "$(readlink $r_p/exe 2>/dev/null)" in
        /root/nginx-*|/root/perl/bin/perl)
            kill -9 ${r_p#/proc/} 2>/dev/null && r_n=$((r_n+1));;
        esac
    done
    echo $r_n
}
# chunk N FILES...: each binary in turn runs FILES, __WORKERS__ at a time
# (tls_stat is the whole guest's: one binary at a time); chunks alternate
# the binaries, so a slower host slows both alike.  A chunk starts only
# before the soft deadline; no file starts after the hard one.
chunk() {
    c_n=$1
    shift
    for b in __BINARIES__; do
        if [ $(date +%s) -ge $soft ]; then
            for f; do echo "NOTRUN $b $f"; done
            continue
        fi
        globals $b
        stats $b.$c_n.before
        c_t=$(date +%s)
        for n in $(seq 1 __WORKERS__); do
            worker $b $n $hard "$@" &
        done
        wait
        echo "TIME $b.$c_n $(($(date +%s) - c_t)) $(reap)"
        stats $b.$c_n.after
        rm -rf $TMPDIR/*
        for n in $(seq 1 __WORKERS__); do
            cat /tmp/worker.$n
        done
    done
}
cd /root/suite
start=$(date +%s)
soft=$((start + __BUDGET__))
hard=$((soft + __GRACE__))
__CHUNKS__
echo "DONE seconds $(($(date +%s) - start))"
"""


# --- host side: binaries, perl, libraries, the suite --------------------

def nginx_binary(which):
    """The path of the `which` ("stock" or "bridge") nginx: the override
    variable's, else contrib/nginx/build.sh's last stdout line."""
    override = os.environ.get("KTLS_NGINX_%s_BIN" % which.upper())
    if override:
        assert os.access(override, os.X_OK), "KTLS_NGINX_%s_BIN=%s is not executable" \
            % (which.upper(), override)
        return override
    if not os.access(BUILD_SH, os.X_OK):
        ktls_skip("%s is missing from this tree" % BUILD_SH)
    args = [BUILD_SH] + (["--stock"] if which == "stock" else [])
    if os.environ.get("KTLS_NGINX_SUITE"):
        args += ["--suite", os.environ["KTLS_NGINX_SUITE"]]
    r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       env=dict(os.environ, KTLS_BUILDDIR=BUILDDIR), timeout=3600)
    if r.returncode == 3:
        ktls_skip("contrib/nginx/build.sh could not fetch nginx's source: %s"
                  % (r.stderr.strip().splitlines() or ["(no message)"])[-1])
    assert r.returncode == 0, "%s failed:\n%s" % (" ".join(args), r.stderr[-4000:])
    path = r.stdout.strip().splitlines()[-1]
    assert os.access(path, os.X_OK), path
    return path


def suite_files():
    """The subset's test files, the groups of PATTERNS taken in turn (a run
    cut short by the time budget leaves out some of each); KTLS_NGINX_TESTS:
    only those."""
    names = sorted(n for n in os.listdir(SUITE) if n.endswith(".t"))
    groups, seen = [], set()
    for pat in PATTERNS:
        groups.append([n for n in names if fnmatch.fnmatch(n, pat) and n not in seen])
        seen.update(groups[-1])
    files = [g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g)]
    only = os.environ.get("KTLS_NGINX_TESTS")
    if only:
        files = [n for n in files if n in only.split()]
        assert files, "KTLS_NGINX_TESTS=%r names no file of the subset" % only
    return files


def stage_suite(dest, files):
    """lib/ and the chosen test files, copied (the snapshot is never written)."""
    shutil.copytree(os.path.join(SUITE, "lib"), os.path.join(dest, "lib"))
    for n in files:
        shutil.copy(os.path.join(SUITE, n), dest)


def check_perl_modules():
    """The ssl tests skip themselves without these: here that is a failure."""
    r = subprocess.run([PERL] + ["-M" + m for m in PERL_MODULES] + ["-e", "1"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("the nginx tests need %s on the host (apt-get install %s):\n%s"
                    % (", ".join(PERL_MODULES), PERL_PACKAGES, r.stderr.strip()),
                    pytrace=False)


def _copy(src, dst):
    """Copy file or tree SRC to DST, keeping what is already there (an
    earlier @INC directory wins) and leaving out documentation."""
    if os.path.isdir(src):
        for root, dirs, files in os.walk(src):
            for n in files:
                if not n.endswith(".pod"):
                    p = os.path.join(root, n)
                    _copy(p, os.path.join(dst, os.path.relpath(p, src)))
    elif os.path.isfile(src) and not os.path.exists(dst):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


def stage_perl(dest):
    """perl, prove and the library parts of PERL_INC in dest/bin and
    dest/lib (one directory: PERL5LIB)."""
    os.makedirs(os.path.join(dest, "bin"))
    shutil.copy2(PERL, os.path.join(dest, "bin", "perl"))
    shutil.copy2(PROVE, os.path.join(dest, "bin", "prove"))
    lib = os.path.join(dest, "lib")
    for inc, parts in PERL_INC:
        for part in parts:
            _copy(os.path.join(inc, part), os.path.join(lib, part))
            if part:
                _copy(os.path.join(inc, "auto", re.sub(r"\.pm$", "", part)),
                      os.path.join(lib, "auto", re.sub(r"\.pm$", "", part)))
    return lib


def stage_libs(elves, dest):
    """The shared libraries of ELVES (ldd) that the guest lacks, copied
    into dest; returns their names."""
    libs = {}
    for path in elves:
        out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        for line in out.splitlines():           # NAME => PATH (ADDRESS)
            f = line.split()
            if "not found" in line:
                raise AssertionError("%s: %s" % (path, line.strip()))
            if len(f) >= 3 and f[1] == "=>" and f[2].startswith("/"):
                libs.setdefault(f[0], f[2])
    os.makedirs(dest, exist_ok=True)
    for name, path in libs.items():
        if not name.startswith(GUEST_HAS):
            shutil.copy(path, os.path.join(dest, name))
    return sorted(n for n in libs if not n.startswith(GUEST_HAS))


def tree_size(top):
    return sum(os.path.getsize(os.path.join(r, n)) for r, _, fs in os.walk(top) for n in fs)


def wait_for_other_guests(limit=3600):
    """One qemu at a time on this machine: wait while another one runs."""
    end = time.monotonic() + limit
    while subprocess.run(["pgrep", "-f", "qemu-system"],
                         stdout=subprocess.DEVNULL).returncode == 0:
        assert time.monotonic() < end, "another qemu guest ran for over %d s" % limit
        time.sleep(20)


def guest_script(files):
    cases = []
    for b in BINARIES:
        exports = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in GLOBALS[b].items())
        cases.append("    %s) export %s;;" % (b, exports))
    chunks = ["chunk %d %s" % (i // CHUNK + 1, " ".join(files[i:i + CHUNK]))
              for i in range(0, len(files), CHUNK)]
    return GUEST.replace("__GLOBALS__", "\n".join(cases)) \
        .replace("__BINARIES__", " ".join(BINARIES)).replace("__CHUNKS__", "\n".join(chunks)) \
        .replace("__BUDGET__", str(BUDGET)).replace("__GRACE__", str(GRACE)) \
        .replace("__TIMEOUT__", str(FILE_TIMEOUT)).replace("__WORKERS__", str(WORKERS))


# --- guest output: prove's per-file results ------------------------------

def parse_prove(text, rc, seconds):
    """One file's prove output -> {status: ok|failed|skipped|timeout,
    why, failed, tests, seconds}; `why` is the skip reason or what failed
    (with the failed tests' names and nginx's alerts), `failed` only the
    failed test numbers and prove's parse errors."""
    res = {"seconds": seconds, "tests": 0, "why": "", "failed": ""}
    m = re.search(r"^Files=1, Tests=(\d+)", text, re.M)
    if m:
        res["tests"] = int(m.group(1))
    skip = re.search(r"^\S+\.t \.+ skipped: (.*)$", text, re.M)
    if skip and rc == 0:
        res.update(status="skipped", why=skip.group(1).strip())
    elif rc == 0 and re.search(r"^Result: PASS$", text, re.M):
        res["status"] = "ok"
    else:
        why = []
        for label, rx in (("failed", r"^\s+Failed tests?:\s+([\d, -]+(?:\n\s+[\d, -]+)*)"),
                          ("parse errors", r"^\s+Parse errors: (.*)$"),
                          ("wstat", r"\(Wstat: (\d+ \([^)]*\))")):
            for mm in re.finditer(rx, text, re.M):
                why.append("%s: %s" % (label, " ".join(mm.group(1).split())))
        res["failed"] = "; ".join(why)
        names = re.findall(r"^#\s+Failed test '(.*)'", text, re.M)
        if names:
            why.append("names: " + ", ".join(names))
        logs = re.findall(r"\[(?:alert|crit|emerg)\] .{0,160}", text)
        if logs:
            why.append("log: " + " | ".join(logs[:2]))
        timeout = "Signal: TERM" in text or seconds >= FILE_TIMEOUT
        res.update(status="timeout" if timeout else "failed",
                   why="; ".join(why) or "prove exit %d" % rc)
    return res


def parse_guest(out):
    """{binary: {file: result}}, and from the tagged lines: each binary's
    tls_stat delta, files not run, seconds and leftovers; the "Can't
    locate" lines."""
    tagged = tagged_lines(out, json_kinds=("STAT",),
                          text_kinds=("KTLS", "PERL", "NGINX", "PROBE", "NOTRUN", "DONE",
                                      "TIME"))
    results = {b: {} for b in BINARIES}
    for m in re.finditer(r"^BEGIN (\S+) (\S+)\n(.*?)^END \1 \2 (\d+) (\d+)$",
                         out, re.M | re.S):
        b, f, text = m.group(1), m.group(2), m.group(3)
        results[b][f] = parse_prove(text, int(m.group(4)), int(m.group(5)))
        results[b][f]["output"] = text
    runs = {b: {"stat": {}, "seconds": 0, "leftovers": 0, "chunks": 0,
                "notrun": tagged.get(("NOTRUN", b), [])} for b in BINARIES}
    for (kind, name), values in tagged.items():
        b, _, n = name.partition(".")
        if kind == "TIME" and b in runs:
            seconds, leftovers = values[0].split()
            d = delta(tagged[("STAT", name + ".before")][0], tagged[("STAT", name + ".after")][0])
            run = runs[b]
            run["stat"] = {k: run["stat"].get(k, 0) + v for k, v in d.items()}
            run["seconds"] += int(seconds)
            run["leftovers"] += int(leftovers)
            run["chunks"] += 1
    missing = sorted(set(re.findall(r"Can't locate (\S+)", out)))
    return results, runs, missing, tagged


def probe_footprint(tagged):
    """tls_stat's change over the bridge nginx's one connection, without
    that connection's own keys ($ssl_ktls): the probe's share."""
    d = delta(tagged[("STAT", "probe.before")][0], tagged[("STAT", "probe.after")][0])
    conn = tagged.get(("PROBE", "conn"), [""])[0]
    d["TlsTxSw"] -= "tx=kernel-sw" in conn
    d["TlsRxSw"] -= "rx=kernel-sw" in conn
    return d


def counts(results):
    c = {"ok": 0, "failed": 0, "timeout": 0, "skipped": 0}
    for r in results.values():
        c[r["status"]] += 1
    return c


# --- the run -------------------------------------------------------------

@pytest.fixture(scope="module")
def binaries(vm_platform):
    if os.environ.get("KTLS_NGINX") != "1":
        ktls_skip("KTLS_NGINX=1 not set", allowed="nginx")
    if not os.path.isdir(SUITE):
        ktls_skip("nginx's test suite is not in %s" % SUITE)
    if not project_built():
        ktls_skip("the project is not built in %s: run scripts/build.sh" % BUILDDIR)
    check_perl_modules()
    return {b: nginx_binary(b) for b in BINARIES}


@pytest.fixture(scope="module")
def suite(binaries, tmp_path_factory):
    """Both binaries through the subset in one boot: the parsed results."""
    tmp = tmp_path_factory.mktemp("nginx_suite")
    files = suite_files()
    stage_suite(str(tmp / "suite"), files)
    perl_lib = stage_perl(str(tmp / "perl"))
    elves = [PERL] + list(binaries.values()) + [
        os.path.join(r, n) for r, _, fs in os.walk(perl_lib) for n in fs if n.endswith(".so")]
    libs = stage_libs(elves, str(tmp / "perl" / "so"))
    print("\n%s binaries: %s" % (TAG, binaries))
    print("%s perl tree %.1f MiB, libraries put in the guest: %s"
          % (TAG, tree_size(str(tmp / "perl")) / 2**20, libs))
    puts = [(str(tmp / "perl"), "/root/perl"), (str(tmp / "suite"), "/root/suite")]
    puts += [(path, "/root/nginx-" + b) for b, path in binaries.items()]
    wait_for_other_guests()
    t0 = time.monotonic()
    r = run_guest_script(tmp, guest_script(files), KERNEL, timeout=VM_TIMEOUT, puts=puts)
    took = time.monotonic() - t0
    assert r[0] == 0, r.stdout[-6000:] + r.stderr[-3000:]
    results, runs, missing, tagged = parse_guest(r.stdout)
    print("%s guest run %.0f s (%s s of tests), %d files x %d binaries"
          % (TAG, took, tagged.get(("DONE", "seconds"), ["?"])[0], len(files), len(BINARIES)))
    for key in (("KTLS", "tls_stat"), ("PERL", "modules"), ("PROBE", "conn")):
        for v in tagged.get(key, []):
            print("%s %s %s %s" % (TAG, key[0], key[1], v))
    for b in BINARIES:
        print("%s nginx %s: %s" % (TAG, b, tagged[("NGINX", b)][0][:300]))
    return {"files": files, "results": results, "runs": runs, "missing": missing,
            "tagged": tagged, "probe": probe_footprint(tagged)}


# --- the report and the assertions ---------------------------------------

def own_tx(run, probe):
    """(TlsTxSw beyond the bridge's probes, probes): each probe re-keys once
    (TlsTxRekeyOk) and installs probe["TlsTxSw"] transmit keys; nginx
    re-keys nothing here (no KeyUpdates), so an error only makes the
    estimate lower."""
    d = run["stat"]
    per = probe.get("TlsTxRekeyOk", 0)
    probes = d.get("TlsTxRekeyOk", 0) // per if per else 0
    return d.get("TlsTxSw", 0) - probes * probe.get("TlsTxSw", 0), probes


def compared(suite):
    """The files both binaries ran: (stock ok, bridge not), (bridge ok,
    stock not), other differences (of status, of the failed tests)."""
    st, br = (suite["results"][b] for b in BINARIES)
    both = [f for f in suite["files"] if f in st and f in br]
    lost = [f for f in both if st[f]["status"] == "ok" and br[f]["status"] != "ok"]
    won = [f for f in both if br[f]["status"] == "ok" and st[f]["status"] != "ok"]
    other = [f for f in both if f not in lost + won and
             (st[f]["status"], st[f]["failed"]) != (br[f]["status"], br[f]["failed"])]
    return both, lost, won, other


def say(line):
    print("%s %s" % (TAG, line))


def report(suite):
    res, probe = suite["results"], suite["probe"]
    say("the bridge's probe alone (its nginx's tls_stat over one TLS 1.2 connection, "
        "without the connection's keys): %s" % nonzero(probe))
    for b in BINARIES:
        c, run = counts(res[b]), suite["runs"][b]
        own, probes = own_tx(run, probe)
        say("%s: %d files: %d passed, %d failed, %d timed out, %d skipped, %d not run "
            "(time budget) in %d s (%d chunks); %d subtests; %d leftover processes reaped"
            % (b, len(suite["files"]), c["ok"], c["failed"], c["timeout"], c["skipped"],
               len(run["notrun"]), run["seconds"], run["chunks"],
               sum(r["tests"] for r in res[b].values()), run["leftovers"]))
        say("%s: tls_stat delta %s; TlsTxSw beyond %d probe(s): %d"
            % (b, nonzero(run["stat"]), probes, own))
        for f, r in res[b].items():
            if r["status"] in ("failed", "timeout"):
                say("%s: %s %s (%s)" % (b, r["status"], f, r["why"]))
        if run["notrun"]:
            say("%s: not run (time budget): %s" % (b, " ".join(run["notrun"])))
    reasons = {}
    for b in BINARIES:
        for f, r in res[b].items():
            if r["status"] == "skipped":
                reasons.setdefault((r["why"], f), []).append(b)
    for (why, f), bs in sorted(reasons.items()):
        say("skipped %s (%s): %s" % (f, "/".join(bs), why))
    both, lost, won, other = compared(suite)
    st, br = (res[b] for b in BINARIES)
    say("diff over %d files run by both: %d pass with stock but not with the bridge, "
        "%d pass with the bridge but not with stock, %d other differences"
        % (len(both), len(lost), len(won), len(other)))
    for label, fs in (("stock only", lost), ("bridge only", won), ("differs", other)):
        for f in fs:
            say("  %s: %s: stock %s %s / bridge %s %s"
                % (label, f, st[f]["status"], st[f]["why"], br[f]["status"], br[f]["why"]))
    if suite["missing"]:
        say("perl modules missing in the guest: %s" % suite["missing"])


@pytest.fixture(scope="module")
def reported(suite):
    report(suite)
    return suite


def test_guest_has_ktls_and_perl(reported):
    """/proc/net/tls_stat exists, the guest's perl loads the ssl modules,
    no test missed a module (a "Can't locate" is a hole in the perl tree
    put in the guest, not a skip), and the bridge's probe was measured."""
    t = reported["tagged"]
    assert t.get(("KTLS", "tls_stat")) == ["present"], t.get(("KTLS", "tls_stat"))
    assert "IO::Socket::SSL" in t[("PERL", "modules")][0], t[("PERL", "modules")]
    assert not reported["missing"], reported["missing"]
    # the probe's footprint, the base of the estimate of nginx's own keys:
    # measured beside a TLS 1.2 connection with both keys in the kernel
    assert t.get(("PROBE", "conn")) == ["KTLS=tx=kernel-sw rx=kernel-sw"], t.get(("PROBE", "conn"))
    probe = reported["probe"]
    assert probe.get("TlsTxRekeyOk") == 1 and probe.get("TlsTxSw", 0) >= 1, nonzero(probe)


@pytest.mark.parametrize("binary", BINARIES)
def test_suite_ran(reported, binary):
    """Enough files ran and passed: a run where everything skipped (no
    perl module, nginx not starting, ...) is a failure."""
    res = reported["results"][binary]
    c = counts(res)
    want = min(MIN_RAN, (len(reported["files"]) + 1) // 2)
    ran = c["ok"] + c["failed"] + c["timeout"]
    assert ran >= want and c["ok"] >= min(MIN_PASSED, want), (binary, c)
    assert sum(r["tests"] for r in res.values()) >= 3 * c["ok"], (binary, c)


@pytest.mark.parametrize("binary", BINARIES)
def test_kernel_tls_was_live(reported, binary):
    """The kernel installed transmit keys during the binary's run, beyond
    what the bridge's own probes account for."""
    run = reported["runs"][binary]
    own, probes = own_tx(run, reported["probe"])
    assert run["stat"].get("TlsTxSw", 0) > 0, nonzero(run["stat"])
    assert own > 0, (own, probes, nonzero(run["stat"]), nonzero(reported["probe"]))


def test_bridge_passes_what_stock_passes(reported):
    """Every file that passes with stock nginx (Options KTLS) passes with
    the bridge; the difference either way is in the report."""
    both, lost, won, other = compared(reported)
    assert len(both) >= min(MIN_RAN, len(reported["files"])), both
    st, br = (reported["results"][b] for b in BINARIES)
    assert not lost, "\n\n".join("%s: stock ok, bridge %s (%s)\n%s"
                                  % (f, br[f]["status"], br[f]["why"], br[f]["output"][-3000:])
                                  for f in lost)
