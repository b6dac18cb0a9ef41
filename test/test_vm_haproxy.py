"""HAProxy with the bridge (contrib/haproxy): HAProxy keeps its own BIO
(ha_meth) and delegates kernel TLS to the bridge (ktls_conn_delegate(3))
on a bind line with the "ktls" keyword.  On the kernels that re-key (our
patched 6.12: staged switches; Debian's stock 7.x: TLS_TX set again), HAProxy
terminates TLS in front of plain TCP backends: in TCP mode an echo backend
(busybox nc running tee, which keeps what it received), through which
ktls-client streams 64 MiB each way and checks the echo byte for byte
(SHA-256 both ways, and of what the backend got); in HTTP mode a 64 MiB file
from busybox httpd.  The client keeps its records in userspace
(--no-offload: the bridge then leaves the kernel alone), and a control run
through a bind line without "ktls" is subtracted: what is left is
HAProxy's.  The ssl_fc_ktls and ssl_fc_ktls_json sample
fetches, in HAProxy's log, say where each direction's records went.

On the system's OpenSSL 3.0: TLS 1.3 with KeyUpdates (update_requested:
HAProxy answers each one and the bridge moves the kernel's transmit key to
the staged next key), TLS 1.2 with both directions in the kernel, HTTP mode,
and stock gnutls-cli's KeyUpdates (^rekey^).
On OpenSSL 3.5's libraries (scripts/openssl-next.sh; the same binary):
TLS 1.3 with both directions in the kernel and the KeyUpdates moving both
keys, and a KeyUpdate storm (test/peer/crafted-client) that the bridge ends
while HAProxy goes on serving the next connection.
On Debian's 6.1 (no TLS 1.3 re-key): TLS 1.3 with KeyUpdates stays in
userspace and says why, TLS 1.2 goes both ways through the kernel.

contrib/haproxy/build.sh builds HAProxy (once; cached) from Debian's source
package.  Opt-in: KTLS_HAPROXY=1 (the first build takes about 6 minutes);
without access to Debian's archive the module is skipped."""

import json
import os
import shutil
import subprocess

import pytest

from conftest import BUILDDIR, TOP, ktls_skip, project_built
from helpers import GUEST_SH
import test_openssl35
from vm_helpers import (REKEY_KERNELS, STAGED_KERNELS, kernel_tx_rekeys, nonzero,
                        run_guest_script, stat_delta, tagged_lines)

pytestmark = pytest.mark.vm

KERNEL = "patched-6.12"
BUILD_SH = os.path.join(TOP, "contrib", "haproxy", "build.sh")
OSSL35_GUEST = test_openssl35.GUEST_LIB
ossl35 = test_openssl35.ossl35     # the fixture: OpenSSL 3.5 (scripts/openssl-next.sh)
MIB = 64                    # data per connection, each way
KEYUPDATE_EVERY = 16        # records (16 KiB each) between the client's KeyUpdates

GUEST = GUEST_SH + r"""
set -e
cd /root
export LD_LIBRARY_PATH=/root/haplib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# HAProxy's own environment (__HAPENV__: OpenSSL 3.5's libraries, or nothing)
hap() { env __HAPENV__ ./haproxy "$@"; }
echo "HAPROXY version $(hap -v | head -n 1)"
echo "HAPROXY openssl $(hap -vv | grep 'Running on OpenSSL')"
cat certs/cert.pem certs/key.pem > crt.pem
# the backend: plain TCP, echoes what it gets and keeps a copy
printf '#!/bin/sh\nexec tee /root/backend.in\n' > sink.sh
chmod +x sink.sh
cat > h.cfg <<'EOC'
global
    log stdout format raw local0
defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:8443 ssl crt /root/crt.pem ktls
    bind 127.0.0.1:8444 ssl crt /root/crt.pem
    log-format "KTLS %[ssl_fc_protocol] %[ssl_fc_ktls] bytes_out=%B JSON %[ssl_fc_ktls_json]"
    default_backend be
backend be
    server echo 127.0.0.1:9000
frontend fe_http
    mode http
    bind 127.0.0.1:8445 ssl crt /root/crt.pem ktls
    log-format "KTLS %[ssl_fc_protocol] %[ssl_fc_ktls] bytes_out=%B JSON %[ssl_fc_ktls_json]"
    default_backend be_http
backend be_http
    mode http
    server www 127.0.0.1:9080
EOC
hap -c -q -f h.cfg
hap -db -f h.cfg > hap.log 2> hap.err &
hap=$!
waitport 8443
_logged() { [ "$(grep -c '^KTLS ' hap.log)" -ge $1 ]; }
n=0
# run NAME PORT BYTES CLIENT-FLAGS: one connection through HAProxy, counters
# around it
run() {
    rm -f backend.in
    nc -l -p 9000 -e /root/sink.sh &
    be=$!
    waitport 9000
    stats $1.before
    t0=$(date +%s)
    ktls-client --json --no-offload --bytes $3 --timeout 60 $4 127.0.0.1:$2 > $1.c ||
        echo "client $1 failed: $?"
    t1=$(date +%s)
    wait $be || true
    stats $1.after
    n=$((n+1))
    _until "haproxy's log line of $1" 400 _logged $n || echo "log $1 failed"
    echo "CLIENT $1 $(cat $1.c)"
    echo "BACKEND $1 {\"sha256\":\"$(sha256sum < backend.in | cut -d' ' -f1)\",\"size\":$(wc -c < backend.in),\"seconds\":$((t1 - t0))}"
    echo "LOG $1 $(grep '^KTLS ' hap.log | sed -n ${n}p)"
}
# HAProxy's first connection with "ktls" runs the bridge's probe of the kernel
# (ktls_probe(3): TLS_TX/TLS_RX on loopback sockets, counted in tls_stat)
run warmup 8443 16k "--tls1_3"
# control: the bind line without "ktls" (ktls-client --no-offload leaves the
# kernel alone, so any count here is not ours), subtracted from every run
run control 8444 1M "--tls1_3"
run tls13 8443 __BYTES__ "--tls1_3 --keyupdate-every __EVERY__ --keyupdate-requested"
__RUNS__
kill $hap
wait $hap || true
sed 's/^/HAPERR /' hap.err
"""

# OpenSSL 3.0 (the system's): TLS 1.2, and HTTP mode
RUNS_30 = r"""
run tls12 8443 __BYTES__ "--tls1_2"
# HTTP mode: a file from busybox httpd, HAProxy's response through the kernel
mkdir -p www
dd if=/dev/urandom of=www/f bs=1M count=__MIB__ 2>/dev/null
httpd -f -p 127.0.0.1:9080 -h /root/www &
web=$!
waitport 9080
stats http.before
t0=$(date +%s)
ktls-client --json --no-offload --tls1_3 --mode recv --request 'GET /f HTTP/1.0\r\n\r\n' \
    --output http.out --timeout 60 127.0.0.1:8445 > http.c || echo "client http failed: $?"
t1=$(date +%s)
stats http.after
n=$((n+1))
_until "haproxy's log line of http" 400 _logged $n || echo "log http failed"
kill $web
echo "CLIENT http $(cat http.c)"
echo "BACKEND http {\"sha256\":\"$(sha256sum < www/f | cut -d' ' -f1)\",\"size\":$(wc -c < www/f),\"body_sha256\":\"$(tail -c $(wc -c < www/f) http.out | sha256sum | cut -d' ' -f1)\",\"received\":$(wc -c < http.out),\"head\":\"$(head -n 1 http.out | tr -d '\r\"')\",\"seconds\":$((t1 - t0))}"
echo "LOG http $(grep '^KTLS ' hap.log | sed -n ${n}p)"
# stock gnutls-cli: ^rekey^ sends a KeyUpdate with update_requested; GnuTLS
# ends a connection that receives more than 8 KeyUpdates in a second: 8
: > g.in
for i in 1 2 3 4 5 6 7 8; do
    echo '^rekey^' >> g.in
    for j in $(seq 1 20); do echo "gnutls $i.$j abcdefghijklmnopqrstuvwxyz0123456789" >> g.in; done
done
grep -v '^^rekey' g.in > g.expect
rm -f backend.in
nc -l -p 9000 -e /root/sink.sh &
be=$!
waitport 9000
stats gnutls.before
# HAProxy's kernel switches to its next TX key to answer each ^rekey^
: > g.out
feedrekeys g.in g.expect g.out __TXCOUNTER__ |
    gnutls-cli --logfile g.log --insecure --inline-commands -p 8443 127.0.0.1 > g.out 2> g.err || true
stats gnutls.after
n=$((n+1))
_until "haproxy's log line of gnutls" 400 _logged $n || echo "log gnutls failed"
wait $be || true
echo "GNUTLS gnutls {\"expect\":\"$(sha256sum < g.expect | cut -d' ' -f1)\",\"got\":\"$(sha256sum < g.out | cut -d' ' -f1)\",\"backend\":\"$(sha256sum < backend.in | cut -d' ' -f1)\",\"rekeys\":$(grep -c '^\^rekey' g.in),\"size\":$(wc -c < g.expect)}"
echo "LOG gnutls $(grep '^KTLS ' hap.log | sed -n ${n}p)"
"""

# HAProxy on OpenSSL 3.5's libraries (scripts/openssl-next.sh), which offer
# TLS 1.3 receive keys: both directions in the kernel, and a KeyUpdate storm
# (crafted-client: 40 KeyUpdates back to back) that the bridge ends.
RUNS_35 = r"""
rm -f backend.in
nc -l -p 9000 -e /root/sink.sh &
be=$!
waitport 9000
stats storm.before
./crafted-client --case storm --value 40 --repeat 1 --timeout 20 127.0.0.1:8443 |
    sed "s/^/RUN storm /"
stats storm.after
n=$((n+1))
_until "haproxy's log line of storm" 400 _logged $n || echo "log storm failed"
kill $be 2>/dev/null || true
echo "LOG storm $(grep '^KTLS ' hap.log | sed -n ${n}p)"
# HAProxy goes on serving after the storm
run afterstorm 8443 1M "--tls1_3"
"""

# Debian's 6.1 cannot re-key: TLS 1.3 stays in userspace, TLS 1.2 both ways
RUNS_61 = r"""
run tls12 8443 __BYTES__ "--tls1_2"
"""


def guest_libs(binary, dest):
    """Copy the shared libraries of `binary` that the guest may lack into
    dest: all but libc's, libssl's, libcrypto's (the guest has them, for
    its openssl) and the bridge's (the project is installed there), plus
    libgcc_s, which glibc loads when a thread exits (HAProxy's do)."""
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = {}
    for line in ldd.splitlines():           # NAME => PATH (ADDRESS)
        f = line.split()
        if len(f) >= 3 and f[1] == "=>" and f[2].startswith("/"):
            libs[f[0]] = f[2]
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    for line in cache.splitlines():         # NAME (libc6,x86-64) => PATH
        f = line.split()
        if f and f[0] == "libgcc_s.so.1" and "x86-64" in line and f[-1].startswith("/"):
            libs.setdefault(f[0], f[-1])
    assert "libgcc_s.so.1" in libs, "libgcc_s.so.1 not found by ldconfig -p"
    have = ("libc.so", "libm.so", "libssl.so", "libcrypto.so", "libktls-bridge.so")
    os.makedirs(dest, exist_ok=True)
    copied = []
    for name, path in sorted(libs.items()):
        if not name.startswith(have):
            shutil.copy(path, os.path.join(dest, name))
            copied.append(name)
    return copied


@pytest.fixture(scope="module")
def haproxy(vm_platform):
    """The patched HAProxy binary (contrib/haproxy/build.sh, cached after
    its first run)."""
    if os.environ.get("KTLS_HAPROXY") != "1":
        ktls_skip("KTLS_HAPROXY=1 not set", allowed="haproxy")
    if not project_built():
        ktls_skip("the project is not built in %s: run scripts/build.sh" % BUILDDIR)
    if not os.access(BUILD_SH, os.X_OK):
        ktls_skip("%s is missing from this tree" % BUILD_SH)
    r = subprocess.run([BUILD_SH], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       env=dict(os.environ, KTLS_BUILDDIR=BUILDDIR), timeout=3600)
    if r.returncode == 3:
        ktls_skip("contrib/haproxy/build.sh could not fetch HAProxy's source: %s"
                  % r.stderr.strip().splitlines()[-1])
    assert r.returncode == 0, "contrib/haproxy/build.sh failed:\n" + r.stderr[-4000:]
    path = r.stdout.strip().splitlines()[-1]
    assert os.access(path, os.X_OK), path
    return path


def boot(haproxy, tmp, runs, hapenv="", puts=(), kernel=KERNEL):
    staged = kernel in STAGED_KERNELS
    libs = str(tmp / "haplib")
    print("\n[vm_haproxy] %s; libraries put in the guest: %s"
          % (haproxy, guest_libs(haproxy, libs)))
    script = GUEST.replace("__RUNS__", runs).replace("__HAPENV__", hapenv) \
        .replace("__BYTES__", "%dM" % MIB).replace("__MIB__", str(MIB)) \
        .replace("__EVERY__", str(KEYUPDATE_EVERY)) \
        .replace("__TXCOUNTER__", "TlsTxStagedSwitch" if staged else "TlsTxRekeyOk")
    r = run_guest_script(tmp, script, kernel, timeout=1500,
                         puts=[(haproxy, "/root/haproxy"), (libs, "/root/haplib")] + list(puts))
    assert r[0] == 0, r.stdout + r.stderr
    assert "failed" not in r.stdout, r.stdout + r.stderr
    print("[vm_haproxy] " + "\n[vm_haproxy] ".join(
        line for line in r.stdout.splitlines() if line.startswith(("HAPROXY", "HAPERR"))))
    res = tagged_lines(r.stdout, json_kinds=("STAT", "CLIENT", "BACKEND", "RUN", "GNUTLS"),
                       text_kinds=("LOG", "HAPROXY"))
    res["_staged"] = staged
    return res


@pytest.fixture(scope="module", params=REKEY_KERNELS)
def guest(haproxy, tmp_path_factory, request):
    """HAProxy on the system's OpenSSL 3.0."""
    return boot(haproxy, tmp_path_factory.mktemp("haproxy30"), RUNS_30, kernel=request.param)


@pytest.fixture(scope="module", params=REKEY_KERNELS)
def guest35(haproxy, ossl35, tmp_path_factory, request):
    """HAProxy (built with 3.0) on OpenSSL 3.5's libraries."""
    client = os.path.join(BUILDDIR, "test", "peer", "crafted-client")
    if not os.access(client, os.X_OK):
        pytest.fail("%s is not built (make in %s)" % (client, BUILDDIR), pytrace=False)
    res = boot(haproxy, tmp_path_factory.mktemp("haproxy35"), RUNS_35,
               hapenv="OPENSSL_CONF=/dev/null LD_LIBRARY_PATH=%s:$LD_LIBRARY_PATH" % OSSL35_GUEST,
               puts=[(client, "/root/crafted-client"), (ossl35[0], OSSL35_GUEST)],
               kernel=request.param)
    assert "OpenSSL 3.5" in res[("HAPROXY", "openssl")][0], res[("HAPROXY", "openssl")]
    return res


@pytest.fixture(scope="module")
def guest61(haproxy, tmp_path_factory):
    """HAProxy on Debian's 6.1 (no TLS 1.3 re-key in the kernel)."""
    return boot(haproxy, tmp_path_factory.mktemp("haproxy61"), RUNS_61, kernel="debian-6.1")


def run_of(res, name, mib=MIB):
    """The client's result, HAProxy's log line (the words before the JSON,
    the JSON of ssl_fc_ktls_json) and the tls_stat delta minus the
    client's own part (the control run's)."""
    c = res[("CLIENT", name)][0]
    b = res[("BACKEND", name)][0]
    line = res[("LOG", name)][0]
    head, _, js = line.partition(" JSON ")
    status = json.loads(js) if js != "-" else None
    delta = stat_delta(res, name)
    if name != "control":
        client = stat_delta(res, "control")
        delta = {k: v - client.get(k, 0) for k, v in delta.items()}
    print("\n[vm_haproxy] %s: %d KiB each way in %d s; log: %s; haproxy tx %s rx %s; "
          "tls_stat %s %s"
          % (name, c["bytes_sent"] >> 10, b["seconds"], head, status and status["tx"],
             status and status["rx"],
             "(the client's own)" if name == "control" else "without the client's part",
             nonzero(delta)))
    # byte-exact: what the client sent is what the backend got and what came back
    assert c["ok"], c
    assert c["bytes_sent"] == c["bytes_received"] == b["size"] == mib << 20, (c, b)
    assert c["sha256_sent"] == c["sha256_received"] == b["sha256"], (c, b)
    # the client kept its records in userspace
    for d in ("tx", "rx"):
        assert c["status"][d]["mode"] == "userspace", c["status"]
    assert c["status"]["tx"]["reason_code"] == "policy-off", c["status"]
    for k in ("TlsTxRekeyError", "TlsRxRekeyError", "TlsDecryptError"):
        assert delta.get(k, 0) == 0, (k, delta)
    return c, head.split(), status, delta


def test_control_bind_line_without_ktls(guest):
    """Without "ktls" the fetches fail ("-" in the log); this run's tls_stat
    delta (none expected: the client does not touch the kernel) is
    subtracted from the other runs'."""
    c, head, st, delta = run_of(guest, "control", mib=1)
    assert head[1:3] == ["TLSv1.3", "-"] and st is None, head
    assert kernel_tx_rekeys(delta, guest["_staged"]) == 0, nonzero(delta)


def test_tls13_keyupdates_kernel_encrypts(guest):
    c, head, st, delta = run_of(guest, "tls13")
    n = c["keyupdates_sent"]
    assert n == (MIB * 64 - 1) // KEYUPDATE_EVERY
    # the sample fetch: TLS 1.3 transmit in the kernel; receive stays in
    # userspace (OpenSSL 3.0 never offers TLS 1.3 receive keys)
    assert head[1:4] == ["TLSv1.3", "tx=kernel-sw", "rx=userspace(not-offered)"], head
    tx = st["tx"]
    assert tx["mode"] == "kernel-sw" and tx["tls"] == "1.3", tx
    # HAProxy answered each update_requested with a KeyUpdate of its own and
    # the bridge moved the kernel's key for each one (to the staged next
    # key where the kernel stages keys)
    assert tx["keyupdates"] == tx["rekeys"] == n, tx
    assert tx["staged_switches"] == (n if guest["_staged"] else 0), tx
    # tls_stat: HAProxy installed one TX key, no RX key, and the kernel
    # moved it n times (the probe's own re-key was in the warm-up run)
    assert delta["TlsTxSw"] == 1 and delta["TlsRxSw"] == 0, nonzero(delta)
    assert kernel_tx_rekeys(delta, guest["_staged"]) == n, nonzero(delta)
    # the kernel encrypted all the echoed data (plaintext bytes)
    assert MIB << 20 <= tx["bytes"] < (MIB << 20) + 4096, tx


def test_tls12_both_directions_in_the_kernel(guest):
    c, head, st, delta = run_of(guest, "tls12")
    assert head[1:4] == ["TLSv1.2", "tx=kernel-sw", "rx=kernel-sw"], head
    for d in ("tx", "rx"):
        assert st[d]["mode"] == "kernel-sw" and st[d]["tls"] == "1.2", st
        assert MIB << 20 <= st[d]["bytes"] < (MIB << 20) + 4096, st
        assert st[d]["records"] >= MIB * 64, st
    assert delta["TlsTxSw"] == 1 and delta["TlsRxSw"] == 1, nonzero(delta)
    assert delta.get("TlsTxStagedSwitch", 0) == delta.get("TlsTxRekeyOk", 0) == 0, \
        nonzero(delta)


def test_http_mode_response_through_the_kernel(guest):
    """mode http: a 64 MiB file from busybox httpd; HAProxy's kernel
    encrypts the response, the body arrives byte for byte."""
    c = guest[("CLIENT", "http")][0]
    b = guest[("BACKEND", "http")][0]
    head, _, js = guest[("LOG", "http")][0].partition(" JSON ")
    st = json.loads(js)
    delta = stat_delta(guest, "http")
    client = stat_delta(guest, "control")
    delta = {k: v - client.get(k, 0) for k, v in delta.items()}
    print("\n[vm_haproxy] http: %s, %d bytes received in %d s; log: %s; haproxy tx %s; "
          "tls_stat without the client's part %s"
          % (b["head"], b["received"], b["seconds"], head, st["tx"], nonzero(delta)))
    assert c["ok"], c
    assert b["head"].startswith("HTTP/1.") and " 200 " in b["head"], b
    assert b["size"] == MIB << 20 and b["received"] > b["size"], b
    assert b["body_sha256"] == b["sha256"], b
    assert head.split()[1:4] == ["TLSv1.3", "tx=kernel-sw", "rx=userspace(not-offered)"], head
    assert st["tx"]["mode"] == "kernel-sw" and MIB << 20 <= st["tx"]["bytes"], st
    assert delta["TlsTxSw"] == 1 and delta["TlsRxSw"] == 0, nonzero(delta)
    for k in ("TlsTxRekeyError", "TlsRxRekeyError", "TlsDecryptError"):
        assert delta.get(k, 0) == 0, (k, delta)



def test_stock_gnutls_cli_keyupdates(guest):
    """gnutls-cli ^rekey^ (KeyUpdate with update_requested) through HAProxy:
    libssl answers each with its KeyUpdate and the bridge moves HAProxy's
    kernel TX key (to the staged next key where there is one) every time."""
    g = guest[("GNUTLS", "gnutls")][0]
    head, _, js = guest[("LOG", "gnutls")][0].partition(" JSON ")
    tx = json.loads(js)["tx"]
    delta = stat_delta(guest, "gnutls")
    print("\n[vm_haproxy] gnutls: %s; log: %s; haproxy tx %s; tls_stat %s"
          % (g, head, tx, nonzero(delta)))
    assert g["got"] == g["expect"] == g["backend"], g
    assert head.split()[1:3] == ["TLSv1.3", "tx=kernel-sw"], head
    assert tx["mode"] == "kernel-sw" and tx["tls"] == "1.3", tx
    assert tx["keyupdates"] == tx["rekeys"] == g["rekeys"] == 8, tx
    assert tx["staged_switches"] == (8 if guest["_staged"] else 0), tx
    assert kernel_tx_rekeys(delta, guest["_staged"]) == 8, nonzero(delta)
    for k in ("TlsTxRekeyError", "TlsRxRekeyError", "TlsDecryptError"):
        assert delta.get(k, 0) == 0, (k, delta)


# --- HAProxy on OpenSSL 3.5 ---------------------------------------------

def test_35_tls13_both_directions_and_keyupdates_in_the_kernel(guest35):
    """libssl 3.5 offers TLS 1.3 receive keys: HAProxy's kernel decrypts
    too, and each of the client's KeyUpdates moves HAProxy's receive key
    as well as its transmit key (HAProxy's answer)."""
    c, head, st, delta = run_of(guest35, "tls13")
    n = c["keyupdates_sent"]
    assert n == (MIB * 64 - 1) // KEYUPDATE_EVERY
    assert head[1:4] == ["TLSv1.3", "tx=kernel-sw", "rx=kernel-sw"], head
    for d in ("tx", "rx"):
        assert st[d]["mode"] == "kernel-sw" and st[d]["tls"] == "1.3", st
        assert st[d]["keyupdates"] == st[d]["rekeys"] == n, st
        assert MIB << 20 <= st[d]["bytes"] < (MIB << 20) + 4096, st
    assert delta["TlsTxSw"] == 1 and delta["TlsRxSw"] == 1, nonzero(delta)
    assert delta["TlsRxRekeyReceived"] == n, nonzero(delta)
    if guest35["_staged"]:
        assert kernel_tx_rekeys(delta, True) == st["tx"]["staged_switches"], nonzero(delta)
    else:
        # every move set again: TX after HAProxy's answers, RX after EKEYEXPIRED
        assert kernel_tx_rekeys(delta, False) == delta["TlsRxRekeyOk"] == n, nonzero(delta)


def test_35_keyupdate_storm_is_ended(guest35):
    """40 KeyUpdates back to back (the default burst bound is 32): the bridge
    ends HAProxy's connection with unexpected_message, and the log says why."""
    runs = guest35[("RUN", "storm")]
    head, _, js = guest35[("LOG", "storm")][0].partition(" JSON ")
    st = json.loads(js)
    print("\n[vm_haproxy] storm: client %s; log: %s; haproxy rx %s"
          % (runs, head, st["rx"]))
    assert len(runs) == 1 and runs[0]["end"] == "alert" and runs[0]["alert"] == 10, runs
    rx = st["rx"]
    assert rx["mode"] == "kernel-sw" and rx["reason_code"] == "keyupdate-storm", rx
    assert rx["keyupdates"] == 33 and "keyupdate_burst" in rx["detail"], rx


def test_35_haproxy_serves_on_after_a_storm(guest35):
    """The storm ended one connection, not HAProxy: the next one, with its
    1 MiB each way, goes through byte for byte."""
    c, head, st, delta = run_of(guest35, "afterstorm", mib=1)
    assert head[1:3] == ["TLSv1.3", "tx=kernel-sw"], head


# --- Debian's 6.1 -------------------------------------------------------

def test_61_tls13_keyupdates_stay_in_userspace(guest61):
    """A kernel that cannot re-key gets no TLS 1.3 key (policy tls13 =
    auto): HAProxy answers every requested KeyUpdate through libssl, the
    fetch says why, every byte arrives."""
    c, head, st, delta = run_of(guest61, "tls13")
    assert c["keyupdates_sent"] == (MIB * 64 - 1) // KEYUPDATE_EVERY, c
    assert head[1:4] == ["TLSv1.3", "tx=userspace(tls13-no-rekey)",
                         "rx=userspace(not-offered)"], head
    assert st["tx"]["mode"] == "userspace", st
    assert delta.get("TlsTxSw", 0) == 0 and delta.get("TlsRxSw", 0) == 0, nonzero(delta)


def test_61_tls12_both_directions_in_the_kernel(guest61):
    c, head, st, delta = run_of(guest61, "tls12")
    assert head[1:4] == ["TLSv1.2", "tx=kernel-sw", "rx=kernel-sw"], head
    assert delta["TlsTxSw"] == 1 and delta["TlsRxSw"] == 1, nonzero(delta)
