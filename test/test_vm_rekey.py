"""TLS 1.3 KeyUpdate with the kernel encrypting, on our patched 6.12
kernel (re-key UAPI of mainline 6.14): the bridge sends libssl's KeyUpdate
record and then installs the next TX key (HKDF "traffic upd" chain).
OpenSSL 3.0 never offers TLS 1.3 receive keys, so RX stays in userspace.
Kernel counters (/proc/net/tls_stat TlsTxRekeyOk) prove each re-key."""

import json
import os

import pytest

from helpers import make_cert

pytestmark = pytest.mark.vm

KERNEL = "patched-6.12"

GUEST = r"""
set -e
cd /root
stat() { awk -v k="$1" '$1 == k {print $2}' /proc/net/tls_stat; }
ktls-probe --json > probe.json
before=$(stat TlsTxRekeyOk)
ktls-serve --cert certs/cert.pem --key certs/key.pem --port 4433 --echo --json \
    --max-conns 2 > serve.json 2> serve.err &
sleep 1
ktls-client --json --tls1_3 --bytes 8M --keyupdate-every 16 --keyupdate-requested \
    127.0.0.1:4433 > client1.json || echo "client1 failed: $?"
ktls-client --json --tls1_3 --ciphersuites TLS_CHACHA20_POLY1305_SHA256 --bytes 2M \
    --keyupdate-every 4 127.0.0.1:4433 > client2.json || echo "client2 failed: $?"
wait
after=$(stat TlsTxRekeyOk)
echo "PROBE $(cat probe.json)"
echo "CLIENT1 $(cat client1.json)"
echo "CLIENT2 $(cat client2.json)"
sed 's/^/SERVE /' serve.json
echo "REKEYOK $before $after"
echo "TXERR $(stat TlsTxRekeyError)"
"""


def parse(out):
    res = {"SERVE": []}
    for line in out.splitlines():
        key, _, rest = line.partition(" ")
        if key == "SERVE":
            res["SERVE"].append(json.loads(rest))
        elif key in ("PROBE", "CLIENT1", "CLIENT2"):
            res[key] = json.loads(rest)
        elif key in ("REKEYOK", "TXERR"):
            res[key] = [int(x) for x in rest.split()]
    return res


def test_tls13_keyupdates_rekey_the_kernel(vm_run, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    make_cert(str(certs))
    script = tmp_path / "guest.sh"
    script.write_text(GUEST)
    r = vm_run("sh /root/guest.sh", kernel=KERNEL, timeout=600,
               puts=[(str(certs), "/root/certs"), (str(script), "/root/guest.sh")])
    assert r[0] == 0, r.stdout + r.stderr
    res = parse(r.stdout)
    assert res["PROBE"]["rekey"] is True, res["PROBE"]
    c1, c2 = res["CLIENT1"], res["CLIENT2"]
    # both transfers echoed byte for byte (ktls-client checks the hash)
    assert c1["ok"] and c1["sha256_sent"] == c1["sha256_received"]
    assert c2["ok"] and c2["sha256_sent"] == c2["sha256_received"]
    # TLS 1.3 TX was in the kernel on both ends, re-keyed per KeyUpdate
    assert c1["status"]["tx"]["mode"] == "kernel-sw"
    assert c1["kernel_conf"]["tx"] == "sw"     # the kernel's word (sock_diag)
    # one every 16 records, none after the last (512 records)
    assert c1["keyupdates_sent"] == ((8 << 20) // 16384 - 1) // 16
    assert c1["status"]["tx"]["rekeys"] == c1["keyupdates_sent"]
    assert c2["status"]["tx"]["rekeys"] == c2["keyupdates_sent"] > 0
    s1, s2 = res["SERVE"]
    assert s1["ok"] and s2["ok"]
    assert s1["status"]["tx"]["mode"] == "kernel-sw"
    # update_requested: the server answered every KeyUpdate with its own
    assert s1["status"]["tx"]["rekeys"] == c1["keyupdates_sent"]
    assert s2["status"]["tx"]["rekeys"] == 0
    before, after = res["REKEYOK"]
    # the three processes (server, two clients) each probe once, and the
    # probe re-keys a TLS 1.3 socket on its own loopback pair
    assert after - before == 3 + (c1["status"]["tx"]["rekeys"] + c2["status"]["tx"]["rekeys"]
                                  + s1["status"]["tx"]["rekeys"])
    assert res["TXERR"] == [0]
