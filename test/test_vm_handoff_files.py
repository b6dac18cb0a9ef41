"""ktls-serve --handoff --root on the kernels that re-key TLS 1.3: after the
handshake the bridge hands both directions to the kernel, the request is
read with ktls_conn_recv() and the file goes out with sendfile(2) on the
socket itself, in pieces, each after ktls_conn_send(ssl, NULL, 0).  Peers:
stock curl (TLS 1.3 and 1.2) and openssl s_client (TLS 1.2), every body
checked byte for byte in the guest.  /proc/net/tls_stat proves that the
kernel held both keys; with keyupdate_records = 256 the bridge's own
KeyUpdates come on records it never saw (the kernel's record count), each
one a staged switch in our kernels and TLS_TX set again on Debian's stock
7.x (no staged keys), and curl follows them."""

import pytest

from helpers import GUEST_PROVIDER_CONF
from vm_helpers import (REKEY_KERNELS, STAGED_KERNELS, kernel_tx_rekeys, nonzero,
                        run_guest_script, stat_delta, tagged_lines)

pytestmark = pytest.mark.vm

MIB = 64
KU_RECORDS = 256

GUEST = GUEST_PROVIDER_CONF + r"""
set -e
cd /root
conf ku "keyupdate_records = __KU__"
mkdir -p www
dd if=/dev/urandom of=www/big bs=1048576 count=__MIB__ 2>/dev/null
echo small > www/small
echo "FILE big {\"sha256\":\"$(sha256sum < www/big | cut -d' ' -f1)\",\"bytes\":$(wc -c < www/big)}"
C=certs/cert.pem; K=certs/key.pem
serve() {  # NAME PORT CONF CONNS
    OPENSSL_CONF=$3 ktls-serve --cert $C --key $K --port $2 --root /root/www --handoff \
        --json --max-conns $4 > $1.serve 2> $1.serr &
    waitlisten $1.serr
}
body() {  # NAME: the body's hash, from the file the client wrote
    echo "GOT $1 {\"sha256\":\"$(sha256sum < $1.body | cut -d' ' -f1)\",\"bytes\":$(wc -c < $1.body)}"
}
viacurl() {  # NAME PORT CURL-ARGS...
    n=$1; p=$2; shift 2
    stats $n.before
    curl -sSk "$@" -o $n.body https://127.0.0.1:$p/big 2> $n.cerr || echo "CURLFAIL $n $?"
    stats $n.after
    body $n
}
# the first connection of each server runs the bridge's probe (loopback
# sockets, counted in tls_stat): a small GET first, outside the deltas
serve files 4440 /dev/null 3
curl -sSk -o /dev/null https://127.0.0.1:4440/small
viacurl tls13 4440 --tlsv1.3
stats tls12.before
printf 'GET /big HTTP/1.1\r\nHost: x\r\n\r\n' |
    openssl s_client -connect 127.0.0.1:4440 -tls1_2 -quiet -ign_eof > tls12.out 2> tls12.cerr || true
stats tls12.after
# s_client writes the response: the head, then the body
tail -c $((__MIB__ * 1048576)) tls12.out > tls12.body
echo "HEAD tls12 $(head -n 1 tls12.out | tr -d '\r')"
body tls12
wait
sed 's/^/SERVE files /' files.serve
sed 's/^/SERR files /' files.serr

serve ku 4441 /root/ku.cnf 2
curl -sSk -o /dev/null https://127.0.0.1:4441/small
viacurl ku 4441 --tlsv1.3
wait
sed 's/^/SERVE ku /' ku.serve
"""


@pytest.fixture(scope="module", params=REKEY_KERNELS)
def guest(vm_platform, tmp_path_factory, request):
    script = GUEST.replace("__MIB__", str(MIB)).replace("__KU__", str(KU_RECORDS))
    r = run_guest_script(tmp_path_factory.mktemp("handoff-files"), script, request.param,
                         timeout=900)
    assert r[0] == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = tagged_lines(r.stdout, json_kinds=("STAT", "SERVE", "FILE", "GOT"),
                       text_kinds=("HEAD", "CURLFAIL", "SERR"))
    res["_text"] = r.stdout + r.stderr
    res["_staged"] = request.param in STAGED_KERNELS
    return res


def one(res, kind, name, i=0):
    v = res.get((kind, name))
    assert v and len(v) > i, "no %s %s line from the guest:\n%s" % (kind, name,
                                                                    res["_text"][-3000:])
    return v[i]


def served(res, name, server, i):
    """Server connection i's JSON line, the client's body against the file,
    and tls_stat's delta over the client's run."""
    s = one(res, "SERVE", server, i)
    got, want = one(res, "GOT", name), one(res, "FILE", "big")
    delta = stat_delta(res, name)
    print("\n[vm_handoff_files] %s: %s %s, %d bytes, tx %s, rx %s; tls_stat %s"
          % (name, s["protocol"], s["cipher"], s["bytes"], s["status"]["tx"]["mode"],
             s["status"]["rx"]["mode"], nonzero(delta)))
    assert not res.get(("CURLFAIL", name)), res.get(("CURLFAIL", name))
    assert s["ok"] and s["handoff"] and s["sendfile"], s
    assert s["bytes"] == want["bytes"] == MIB << 20, s
    assert got == want, (got, want)
    for d in ("tx", "rx"):
        assert s["status"][d]["mode"] == "kernel-sw", s["status"]
    for k in ("TlsTxRekeyError", "TlsRxRekeyError", "TlsDecryptError"):
        assert delta.get(k, 0) == 0, (k, nonzero(delta))
    return s, delta


def test_tls13_curl_file_by_sendfile_after_handoff(guest):
    """TLS 1.3: the kernel held both keys (the receive key is the bridge's,
    from the key log: OpenSSL 3.0 never offers it); nothing else."""
    s, delta = served(guest, "tls13", "files", 1)
    assert s["protocol"] == "TLSv1.3", s
    assert delta["TlsTxSw"] == 1 and delta["TlsRxSw"] == 1, nonzero(delta)
    assert s["status"]["tx"]["keyupdates"] == 0, s["status"]


def test_tls12_s_client_file_by_sendfile_after_handoff(guest):
    s, delta = served(guest, "tls12", "files", 2)
    assert s["protocol"] == "TLSv1.2", s
    assert one(guest, "HEAD", "tls12").startswith("HTTP/1.1 200"), one(guest, "HEAD", "tls12")
    assert delta["TlsTxSw"] == 1 and delta["TlsRxSw"] == 1, nonzero(delta)


def test_bridge_keyupdates_on_records_it_never_saw(guest):
    """keyupdate_records = 256: the file's records go out by sendfile(2)
    and the bridge sees none of them, yet its own KeyUpdates come, from
    the kernel's record count read in ktls_conn_send(ssl, NULL, 0) before
    each 16-record piece; a KeyUpdate can come a piece late: between
    records / 512 and records / 256 of them, each a staged switch in the
    kernel (TLS_TX set again where it has no staged keys), and curl (which
    follows them) got every byte."""
    s, delta = served(guest, "ku", "ku", 1)
    tx = s["status"]["tx"]
    records = (MIB << 20) // 16384
    print("[vm_handoff_files] ku: %d records by sendfile(2), %d KeyUpdates by the bridge at "
          "keyupdate_records = %d" % (records, tx["keyupdates"], KU_RECORDS))
    assert records // (2 * KU_RECORDS) <= tx["keyupdates"] <= records // KU_RECORDS, tx
    assert tx["rekeys"] == tx["keyupdates"], tx
    assert kernel_tx_rekeys(delta, guest["_staged"]) == tx["keyupdates"], nonzero(delta)
    assert tx["staged_switches"] == (tx["keyupdates"] if guest["_staged"] else 0), tx
    if guest["_staged"]:
        assert delta.get("TlsTxRekeyOk", 0) == 0, nonzero(delta)


def test_no_handoff_refusal_on_this_kernel(guest):
    assert not any("hand-off refused" in line for line in guest.get(("SERR", "files"), [])), \
        guest.get(("SERR", "files"))
