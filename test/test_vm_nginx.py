"""nginx linked with the bridge (contrib/nginx), against stock nginx with
`ssl_conf_command Options KTLS`, the same nginx source, in one guest.

On the kernels that re-key (our 6.12, Debian's stock 7.x), with `sendfile on`: a 64 MiB file over TLS 1.2
and 1.3 to ktls-client (records kept in userspace, --no-offload), byte for
byte, the kernel's tls_stat deltas and nginx's $ssl_ktls / $ssl_ktls_json
in the access log saying the same; SSL_sendfile's records counted for the
bridge's own KeyUpdates (keyupdate_records = 256 through the ktls provider
in openssl.cnf: the KeyUpdates come from the BIO flushes before each
SSL_sendfile); two SNI server blocks; a `listen unix:` socket that falls
back to libssl's socket BIO (stock s_client -unix); the stream module in
front of an echo backend; an upstream `proxy_pass https://` (the client
side of the bridge, TLS 1.2 both ways in the kernel); and a reload with a
download in flight.

KeyUpdates mid-download: ktls-client asks for KeyUpdates (update_requested)
while each of four responses on one keep-alive connection comes in, and
stock gnutls-cli (^rekey^) and s_client (K) send one between two
requests.  nginx answers each
when it reads the next request: through the bridge the kernel moves to the
next key (a staged switch on ours, TLS_TX set again on debian-7); stock nginx on OpenSSL 3.0 sends its KeyUpdate and keeps
encrypting with the old key, and the client fails (shown in the same run).

On Debian's 6.1, which cannot re-key: TLS 1.2 both ways in the kernel;
TLS 1.3 stays in userspace with the reason in $ssl_ktls (tls13-no-rekey),
and the same KeyUpdate requests that stock nginx (its TLS 1.3 key in a
kernel that cannot move it) fails on arrive byte for byte.

contrib/nginx/build.sh builds both nginx binaries (cached) from Debian's
nginx source package: bookworm's 1.22.1, or the suite KTLS_NGINX_SUITE names
(trixie: 1.26.x).  Opt-in: KTLS_NGINX=1 (the first builds take about
2 minutes each); without access to Debian's archive the module is skipped.
"""

import json
import os
import subprocess

import pytest

from conftest import BUILDDIR, TOP, ktls_skip, project_built
from helpers import GUEST_PROVIDER_CONF
from test_vm_haproxy import guest_libs
from vm_helpers import (REKEY_KERNELS, STAGED_KERNELS, kernel_tx_rekeys, nonzero,
                        run_guest_script, stat_delta, tagged_lines)

pytestmark = pytest.mark.vm

BUILD_SH = os.path.join(TOP, "contrib", "nginx", "build.sh")
MIB = 64                # the big file
KU_RECORDS = 256        # keyupdate_records for the sendfile case
KU_EVERY = 16           # records received between ktls-client's KeyUpdates

GUEST = GUEST_PROVIDER_CONF + r"""
set -e
cd /root
export LD_LIBRARY_PATH=/root/ngxlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p www wwwb ngx/logs stock/logs
dd if=/dev/urandom of=www/f64 bs=1M count=__MIB__ 2>/dev/null
dd if=/dev/urandom of=www/f4 bs=1M count=4 2>/dev/null
dd if=/dev/urandom of=wwwb/f4 bs=1M count=4 2>/dev/null
sha() { sha256sum < $1 | cut -d' ' -f1; }
echo "FILE f64 {\"sha256\":\"$(sha www/f64)\"}"
echo "FILE f4 {\"sha256\":\"$(sha www/f4)\"}"
echo "FILE f4b {\"sha256\":\"$(sha wwwb/f4)\"}"
echo "FILE f4x4 {\"sha256\":\"$(cat www/f4 www/f4 www/f4 www/f4 | sha256sum | cut -d' ' -f1)\"}"
echo "NGINX version $(./nginx -v 2>&1)"
conf ku "keyupdate_records = __KU__"
# nginx.conf for PREFIX, with the bridge's variables (ours) or
# "ssl_conf_command Options KTLS" (stock)
mkconf() {
    if [ $2 = ours ]; then
        fmt='$request_uri $status $body_bytes_sent $ssl_protocol $ssl_server_name KTLS $ssl_ktls JSON $ssl_ktls_json'
        sfmt='stream $ssl_protocol KTLS $ssl_ktls JSON $ssl_ktls_json'
        extra=''
    else
        fmt='$request_uri $status $body_bytes_sent $ssl_protocol $ssl_server_name KTLS - JSON -'
        sfmt='stream $ssl_protocol KTLS - JSON -'
        extra='ssl_conf_command Options KTLS;'
    fi
    cat > $1/nginx.conf <<EOC
user root;
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    log_format k escape=none '$fmt';
    access_log logs/access.log k;
    sendfile on;
    keepalive_requests 100;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate /root/certs/cert.pem;
    ssl_certificate_key /root/certs/key.pem;
    server {
        listen 127.0.0.1:$3 ssl;
        server_name a.test;
        root /root/www;
        $extra
        location /up/ {
            proxy_pass https://127.0.0.1:$(($3 + 17))/;
            proxy_ssl_protocols TLSv1.2;
        }
    }
    server {
        listen 127.0.0.1:$3 ssl;
        server_name b.test;
        root /root/wwwb;
    }
    server {
        listen unix:/root/$1/u.sock ssl;
        root /root/www;
    }
    server {
        # stock: without Options KTLS, libssl's records in userspace
        listen 127.0.0.1:$(($3 + 3)) ssl;
        root /root/www;
    }
    server {
        listen 127.0.0.1:$(($3 + 17)) ssl;
        ssl_protocols TLSv1.2;
        root /root/www;
    }
}
stream {
    log_format s escape=none '$sfmt';
    server {
        listen 127.0.0.1:$(($3 + 10)) ssl;
        ssl_certificate /root/certs/cert.pem;
        ssl_certificate_key /root/certs/key.pem;
        access_log /root/$1/logs/stream.log s;
        proxy_pass 127.0.0.1:9000;
    }
}
EOC
}
mkconf ngx ours 8443
mkconf stock stock 8444
./nginx -t -p /root/ngx -c nginx.conf 2>&1 | sed 's/^/NGXT /'
./nginx-stock -t -p /root/stock -c nginx.conf 2>&1 | sed 's/^/NGXT /'
./nginx -p /root/ngx -c nginx.conf
./nginx-stock -p /root/stock -c nginx.conf
waitport 8443
waitport 8444
nlog() { [ "$(wc -l < $1/logs/access.log)" -ge $2 ]; }
# get NAME DIR PORT EXPECTED-LOG-LINES CLIENT-ARGS...: one ktls-client run,
# counters around it, the result and the access log's last line
get() {
    n=$1; d=$2; p=$3; want=$4
    shift 4
    stats $n.before
    ktls-client --json --no-offload --mode recv --timeout 90 "$@" 127.0.0.1:$p > $n.c 2> $n.err || true
    _until "access log of $n" 400 nlog $d $want || echo "log $n missing"
    stats $n.after
    echo "CLIENT $n $(cat $n.c)"
    sed "s/^/ERR $n /" $n.err
    echo "LOG $n $(tail -n 1 $d/logs/access.log)"
}
# the first connection runs the bridge's probe (loopback sockets, in tls_stat)
get warmup ngx 8443 1 --tls1_3 --get /f4
# control: stock nginx without kTLS (ktls-client --no-offload leaves the
# kernel alone, so any count here is not nginx's), subtracted from each run
get control stock 8447 1 --tls1_3 --get /f4
get tls13 ngx 8443 2 --tls1_3 --get /f64
get tls12 ngx 8443 3 --tls1_2 --get /f64
get sni ngx 8443 4 --tls1_3 --servername b.test --get /f4
# KeyUpdates mid-download, four responses on one connection: ours, stock
get ku ngx 8443 8 --tls1_3 --get /f4 --requests 4 --keyupdate-every __EVERY__ --keyupdate-requested
get kustock stock 8444 2 --tls1_3 --get /f4 --requests 4 --keyupdate-every __EVERY__ --keyupdate-requested
if [ __FULL__ != 1 ]; then
    for d in ngx stock; do kill $(cat $d/logs/nginx.pid) || true; done
    exit 0
fi
# the bridge's own KeyUpdates on sendfile's records (keyupdate_records)
mkdir -p ku/logs
mkconf ku ours 8445
OPENSSL_CONF=/root/ku.cnf ./nginx -p /root/ku -c nginx.conf
waitport 8445
get kuwarm ku 8445 1 --tls1_3 --get /f4
get kusend ku 8445 2 --tls1_3 --get /f64
# proxy_pass https:// to a TLS 1.2 server block of the same nginx
get proxy ngx 8443 10 --tls1_3 --get /up/f4
# a unix socket: libssl's own BIO, $ssl_ktls not found
stats unix.before
printf 'GET /f4 HTTP/1.0\r\n\r\n' | openssl s_client -quiet -unix /root/ngx/u.sock > unix.out 2> unix.err || true
stats unix.after
echo "UNIX unix {\"sha256\":\"$(tail -c 4194304 unix.out | sha256sum | cut -d' ' -f1)\",\"head\":\"$(head -n 1 unix.out | tr -d '\r')\"}"
echo "LOG unix $(tail -n 1 ngx/logs/access.log)"
# the stream module in front of an echo backend
nc -l -p 9000 -e cat &
waitport 9000
stats stream.before
ktls-client --json --no-offload --tls1_2 --bytes 8M --timeout 90 127.0.0.1:8453 > stream.c 2> stream.err || true
stats stream.after
echo "CLIENT stream $(cat stream.c)"
_until "stream log" 400 _has ngx/logs/stream.log stream || true
echo "LOG stream $(tail -n 1 ngx/logs/stream.log)"
# stock gnutls-cli (^rekey^) and s_client (K): a KeyUpdate with
# update_requested between two requests on one connection; the waits end
# early when the client reports a TLS error (stock nginx)
_gdone() { _size $1.out $2 || grep -q "$3" $1.err 2>/dev/null; }
# rekey2 NAME PORT REKEY-LINE ERROR-PATTERN CLIENT...
rekey2() {
    n=$1; p=$2; k=$3; e=$4
    shift 4
    { printf 'GET /f4 HTTP/1.1\r\nHost: a.test\r\n\r\n'
      _until "$n first response" 1200 _gdone $n 4194304 "$e" || true
      echo "$k"
      sleep 1
      printf 'GET /f4 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n'
      _until "$n second response" 1200 _gdone $n 8388608 "$e" || true
      sleep 1
    } | "$@" > $n.out 2> $n.err || true
    echo "GNUTLS $n {\"size\":$(wc -c < $n.out),\"responses\":$(grep -ao 'HTTP/1.1 200 OK' $n.out | wc -l)}"
    grep "$e" $n.err | sed "s/^/ERR $n /" || true
}
gtls() {
    rekey2 $1 $2 '^rekey^' 'Fatal error' gnutls-cli --logfile $1.log --insecure \
        --inline-commands --priority NORMAL:-VERS-ALL:+VERS-TLS1.3 -p $2 127.0.0.1
}
sclk() {
    rekey2 $1 $2 K 'SSL routines' openssl s_client -quiet -no_ign_eof -tls1_3 \
        -connect 127.0.0.1:$2
}
: > gt.out; : > gtstock.out
stats gt.before
gtls gt 8443
stats gt.after
gtls gtstock 8444
stats sk.before
sclk sk 8443
stats sk.after
sclk skstock 8444
# reload with a download in flight
ktls-client --json --no-offload --mode recv --timeout 90 --tls1_3 --get /f64 127.0.0.1:8443 > reload.c 2> reload.err &
cl=$!
sleep 1
kill -HUP $(cat ngx/logs/nginx.pid)
wait $cl || true
echo "CLIENT reload $(cat reload.c)"
get afterreload ngx 8443 17 --tls1_3 --get /f4
for d in ngx stock ku; do kill $(cat $d/logs/nginx.pid) || true; done
sleep 1
grep -h -E 'alert|emerg|crit' ngx/logs/error.log ku/logs/error.log | sed 's/^/NGXERR /' || true
"""


@pytest.fixture(scope="module")
def nginx_bins():
    """(ours, stock): the nginx binaries from contrib/nginx/build.sh."""
    if os.environ.get("KTLS_NGINX") != "1":
        ktls_skip("KTLS_NGINX=1 not set", allowed="nginx")
    if not project_built():
        ktls_skip("the project is not built in %s: run scripts/build.sh" % BUILDDIR)
    bins = []
    suite = ["--suite", os.environ.get("KTLS_NGINX_SUITE", "bookworm")]
    for args in (suite, suite + ["--stock"]):
        r = subprocess.run([BUILD_SH] + args, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, env=dict(os.environ, KTLS_BUILDDIR=BUILDDIR), timeout=3600)
        if r.returncode == 3:
            ktls_skip("contrib/nginx/build.sh could not fetch nginx's source: %s"
                      % r.stderr.strip().splitlines()[-1])
        assert r.returncode == 0, "contrib/nginx/build.sh %s failed:\n%s" % (args, r.stderr[-4000:])
        bins.append(r.stdout.strip().splitlines()[-1])
    return bins


def boot(nginx_bins, tmp, kernel, full):
    ours, stock = nginx_bins
    libs = str(tmp / "ngxlib")
    copied = guest_libs(ours, libs) + guest_libs(stock, libs)
    print("\n[vm_nginx] %s and %s; libraries put in the guest: %s"
          % (ours, stock, sorted(set(copied))))
    script = GUEST.replace("__MIB__", str(MIB)).replace("__KU__", str(KU_RECORDS)) \
        .replace("__EVERY__", str(KU_EVERY)).replace("__FULL__", "1" if full else "0")
    r = run_guest_script(tmp, script, kernel, timeout=1500,
                         puts=[(ours, "/root/nginx"), (stock, "/root/nginx-stock"),
                               (libs, "/root/ngxlib")])
    assert r[0] == 0, r.stdout + r.stderr
    print("[vm_nginx] " + "\n[vm_nginx] ".join(
        line for line in r.stdout.splitlines()
        if line.startswith(("NGINX", "NGXT", "NGXERR", "ERR", "log "))))
    res = tagged_lines(r.stdout, json_kinds=("STAT", "CLIENT", "FILE", "UNIX", "GNUTLS"),
                       text_kinds=("LOG", "NGINX", "NGXERR"))
    res["_staged"] = kernel in STAGED_KERNELS
    return res


@pytest.fixture(scope="module", params=REKEY_KERNELS)
def guest(nginx_bins, tmp_path_factory, request):
    """Everything, on each kernel that re-keys."""
    return boot(nginx_bins, tmp_path_factory.mktemp("nginx"), request.param, True)


@pytest.fixture(scope="module")
def guest61(nginx_bins, tmp_path_factory):
    """Debian's 6.1, which cannot re-key: up to the KeyUpdate cases."""
    return boot(nginx_bins, tmp_path_factory.mktemp("nginx61"), "debian-6.1", False)


def one(res, kind, name):
    v = res.get((kind, name))
    assert v, "no %s %s line from the guest" % (kind, name)
    return v[0]


def logline(res, name):
    """The access log line's words before KTLS, $ssl_ktls, and the JSON."""
    line = one(res, "LOG", name)
    head, _, rest = line.partition(" KTLS ")
    ktls, _, js = rest.partition(" JSON ")
    return head.split(), ktls, (json.loads(js) if js not in ("", "-") else None)


def fetched(res, name, file, n=1):
    """A ktls-client --get run that must have worked: its result, the
    access log's view and tls_stat's delta minus the control run's (stock
    nginx without kTLS)."""
    c = one(res, "CLIENT", name)
    head, ktls, st = logline(res, name)
    delta = stat_delta(res, name)
    if name != "control":
        ctl = stat_delta(res, "control")
        delta = {k: v - ctl.get(k, 0) for k, v in delta.items()}
    print("\n[vm_nginx] %s: %s, %d responses, %d KiB of bodies; log %s %s; tls_stat %s"
          % (name, c["protocol"], c["responses"], c["body_bytes"] >> 10, " ".join(head), ktls,
             nonzero(delta)))
    assert c["ok"], c
    assert c["responses"] == c["responses_200"] == n, c
    assert c["sha256_received"] == one(res, "FILE", file)["sha256"], c
    for d in ("tx", "rx"):
        assert c["status"][d]["mode"] == "userspace", c["status"]
    for k in ("TlsTxRekeyError", "TlsRxRekeyError", "TlsDecryptError"):
        assert delta.get(k, 0) == 0, (k, nonzero(delta))
    return c, head, ktls, st, delta


def test_control_stock_without_ktls(guest):
    """The control run: stock nginx without Options KTLS puts no key in the
    kernel, and the client (--no-offload) does not touch it either."""
    c, head, ktls, st, delta = fetched(guest, "control", "f4")
    assert ktls == "-" and st is None, ktls
    assert delta.get("TlsTxStagedSwitch", 0) == 0, nonzero(delta)


def test_tls13_64mib_sendfile_through_the_kernel(guest):
    c, head, ktls, st, delta = fetched(guest, "tls13", "f64")
    assert head[:4] == ["/f64", "200", str(MIB << 20), "TLSv1.3"], head
    # OpenSSL 3.0 offers TLS 1.3 transmit keys only: the file went out
    # through the kernel (SSL_sendfile), the request came in through libssl
    assert ktls == "tx=kernel-sw rx=userspace(not-offered)", ktls
    assert st["tx"]["mode"] == "kernel-sw" and st["tx"]["tls"] == "1.3", st
    assert delta["TlsTxSw"] == 1 and delta.get("TlsRxSw", 0) == 0, nonzero(delta)


def test_tls12_64mib_both_directions_in_the_kernel(guest):
    c, head, ktls, st, delta = fetched(guest, "tls12", "f64")
    assert head[3] == "TLSv1.2" and ktls == "tx=kernel-sw rx=kernel-sw", (head, ktls)
    assert delta["TlsTxSw"] == 1 and delta["TlsRxSw"] == 1, nonzero(delta)


def test_sni_second_server_block(guest):
    """SNI switches the connection to b.test's SSL_CTX, which went through
    ktls_ctx_setup too: its file, through the kernel."""
    c, head, ktls, st, delta = fetched(guest, "sni", "f4b")
    assert head[4] == "b.test" and ktls.startswith("tx=kernel-sw "), (head, ktls)


def test_keyupdates_mid_download_ours_survive_stock_dies(guest):
    """Four responses on one connection, the client asking for a KeyUpdate
    every 16 records it receives (none in the last response): nginx answers
    them when it reads the next request.  Through the bridge each answer
    moves the kernel's key; stock nginx (Options KTLS, same kernel) keeps
    the old key after its KeyUpdate and the client cannot decrypt."""
    c, head, ktls, st, delta = fetched(guest, "ku", "f4x4", n=4)
    assert c["keyupdates_sent"] >= 3 * ((4 << 20) // 16384 // KU_EVERY) - 3, c
    tx = st["tx"]
    assert tx["mode"] == "kernel-sw" and tx["keyupdates"] == tx["rekeys"] >= 1, tx
    if guest["_staged"]:
        assert kernel_tx_rekeys(delta, True) == tx["staged_switches"] >= 1, nonzero(delta)
    else:
        assert kernel_tx_rekeys(delta, False) == tx["rekeys"], nonzero(delta)
        assert tx["staged_switches"] == 0, tx
    stock = one(guest, "CLIENT", "kustock")
    print("[vm_nginx] stock nginx, same requests: %s after %d responses"
          % (stock["error"], stock["responses"]))
    assert not stock["ok"] and stock["responses"] < 4, stock


def test_gnutls_rekey_between_requests(guest):
    """Stock gnutls-cli's ^rekey^ (update_requested) between two requests:
    both responses arrive through the bridge; stock nginx's second does
    not."""
    g, gs = one(guest, "GNUTLS", "gt"), one(guest, "GNUTLS", "gtstock")
    delta = stat_delta(guest, "gt")
    print("\n[vm_nginx] gnutls-cli ^rekey^: ours %s, stock %s; tls_stat %s"
          % (g, gs, nonzero(delta)))
    assert g["responses"] == 2 and g["size"] > 2 * (4 << 20), g
    assert kernel_tx_rekeys(delta, guest["_staged"]) >= 1, nonzero(delta)
    assert gs["responses"] < 2, gs


def test_s_client_keyupdate_between_requests(guest):
    """Stock s_client's K (update_requested) between two requests: both
    responses through the bridge; stock nginx's second never decrypts."""
    k, ks = one(guest, "GNUTLS", "sk"), one(guest, "GNUTLS", "skstock")
    delta = stat_delta(guest, "sk")
    print("\n[vm_nginx] s_client K: ours %s, stock %s; tls_stat %s" % (k, ks, nonzero(delta)))
    assert k["responses"] == 2 and k["size"] > 2 * (4 << 20), k
    assert kernel_tx_rekeys(delta, guest["_staged"]) >= 1, nonzero(delta)
    assert ks["responses"] < 2, ks


def test_sendfile_records_trigger_the_bridges_keyupdates(guest):
    """keyupdate_records = 256 from openssl.cnf: the 64 MiB file goes out
    by SSL_sendfile only, and the bridge's own KeyUpdates still come, from
    the kernel's record count read at the BIO flushes.  The flush comes
    before each SSL_sendfile(), so a KeyUpdate can come one call's records
    late (nginx's calls carry up to sendfile_max_chunk, 2 MiB: 128
    records): between records / 512 and records / 256 of them, none of
    them libssl's, each one a re-key in the kernel (a staged switch on ours,
    TLS_TX set again on debian-7)."""
    c, head, ktls, st, delta = fetched(guest, "kusend", "f64")
    tx = st["tx"]
    records = (MIB << 20) // 16384
    print("[vm_nginx] kusend: %d records sent by SSL_sendfile, %d KeyUpdates by the bridge "
          "at keyupdate_records = %d" % (records, tx["keyupdates"], KU_RECORDS))
    assert tx["mode"] == "kernel-sw", tx
    assert records // (2 * KU_RECORDS) <= tx["keyupdates"] <= records // KU_RECORDS, tx
    assert c["keyupdates_sent"] == 0, c
    assert tx["rekeys"] == tx["keyupdates"], tx
    assert kernel_tx_rekeys(delta, guest["_staged"]) == tx["keyupdates"], nonzero(delta)
    assert tx["staged_switches"] == (tx["keyupdates"] if guest["_staged"] else 0), tx


def test_proxy_pass_https_upstream(guest):
    """proxy_pass https:// to a TLS 1.2 server block: the upstream
    connection is the client side of the bridge.  Three connections with
    a TX key (client's, upstream's, backend's), two with an RX key (the
    upstream client side and the backend's)."""
    c, head, ktls, st, delta = fetched(guest, "proxy", "f4")
    assert head[0] == "/up/f4" and ktls.startswith("tx=kernel-sw "), (head, ktls)
    assert delta["TlsTxSw"] == 3 and delta["TlsRxSw"] == 2, nonzero(delta)


def test_unix_socket_falls_back_to_libssl(guest):
    u = one(guest, "UNIX", "unix")
    head, ktls, st = logline(guest, "unix")
    delta = stat_delta(guest, "unix")
    print("\n[vm_nginx] unix: %s, log %s %r; tls_stat %s" % (u["head"], head, ktls, nonzero(delta)))
    assert u["head"].startswith("HTTP/1.1 200"), u
    assert u["sha256"] == one(guest, "FILE", "f4")["sha256"], u
    assert ktls in ("", "-") and st is None, (ktls, st)   # not found
    assert delta.get("TlsTxSw", 0) == 0, nonzero(delta)


def test_stream_module(guest):
    c = one(guest, "CLIENT", "stream")
    head, ktls, st = logline(guest, "stream")
    delta = stat_delta(guest, "stream")
    print("\n[vm_nginx] stream: %s, log %s; tls_stat %s" % (c.get("ok"), ktls, nonzero(delta)))
    assert c["ok"] and c["bytes_received"] == 8 << 20, c
    assert ktls == "tx=kernel-sw rx=kernel-sw", ktls
    assert delta["TlsTxSw"] >= 1 and delta["TlsRxSw"] >= 1, nonzero(delta)


def test_reload_with_a_download_in_flight(guest):
    c = one(guest, "CLIENT", "reload")
    assert c["ok"] and c["sha256_received"] == one(guest, "FILE", "f64")["sha256"], c
    c, head, ktls, st, delta = fetched(guest, "afterreload", "f4")
    assert ktls.startswith("tx=kernel-sw "), ktls


def test_no_alerts_in_nginx_error_logs(guest):
    """Nothing at alert, crit or emerg level in our nginx's error logs."""
    errs = [v for k, v in guest.items() if isinstance(k, tuple) and k[0] == "NGXERR"]
    assert not errs, errs


# --- Debian's 6.1: no re-key in the kernel ------------------------------

def test_61_tls12_both_directions_in_the_kernel(guest61):
    c, head, ktls, st, delta = fetched(guest61, "tls12", "f64")
    assert head[3] == "TLSv1.2" and ktls == "tx=kernel-sw rx=kernel-sw", (head, ktls)
    assert delta["TlsTxSw"] == 1 and delta["TlsRxSw"] == 1, nonzero(delta)


def test_61_tls13_stays_in_userspace_and_says_why(guest61):
    """A kernel that cannot follow a KeyUpdate gets no TLS 1.3 key (policy
    tls13 = auto): the file goes out through libssl, and $ssl_ktls says
    why."""
    c, head, ktls, st, delta = fetched(guest61, "tls13", "f64")
    print("[vm_nginx] 6.1 tls13: %s; %s" % (ktls, st["tx"]["reason"]))
    assert head[3] == "TLSv1.3" and ktls.startswith("tx=userspace("), (head, ktls)
    assert st["tx"]["mode"] == "userspace" and st["tx"]["reason_code"] != "none", st
    assert delta.get("TlsTxSw", 0) == 0, nonzero(delta)


def test_61_keyupdates_ours_survive_stock_dies(guest61):
    """The same four responses with KeyUpdates: stock nginx put the TLS 1.3
    key in a kernel that cannot re-key and the client fails; ours kept
    TLS 1.3 in userspace and every byte arrives."""
    c, head, ktls, st, delta = fetched(guest61, "ku", "f4x4", n=4)
    assert ktls.startswith("tx=userspace("), ktls
    stock = one(guest61, "CLIENT", "kustock")
    print("[vm_nginx] 6.1 stock nginx: %s after %d responses" % (stock["error"], stock["responses"]))
    assert not stock["ok"] and stock["responses"] < 4, stock
