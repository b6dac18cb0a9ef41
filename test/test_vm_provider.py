"""The "ktls" provider's policy, from openssl.cnf, decides what the kernel
gets on a real kTLS kernel (Debian's 6.1 in a guest): the same bridge
offloads or not depending only on OPENSSL_CONF."""

import json

import pytest

from helpers import GUEST_PROVIDER_CONF, make_cert

pytestmark = pytest.mark.vm

GUEST = GUEST_PROVIDER_CONF + r"""
cd /root
conf off "offload = off"
conf always "tls13 = always"
conf notx "tx = off"
run() {  # name client-args
    OPENSSL_CONF=/root/$1.cnf ktls-serve --cert certs/cert.pem --key certs/key.pem \
        --port 4433 --echo --max-conns 1 --json > $1.serve 2>$1.err &
    waitlisten $1.err
    OPENSSL_CONF=/root/$1.cnf ktls-client --json --bytes 1M $2 127.0.0.1:4433 > $1.client
    wait
    echo "$1 CLIENT $(cat $1.client)"
    echo "$1 SERVE $(cat $1.serve)"
}
run off --tls1_2
run always --tls1_3
run notx --tls1_2
OPENSSL_CONF=/root/always.cnf ktls-probe --provider --json | sed 's/^/always PROV /'
"""


def test_provider_policy_decides_offload(vm_run, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    make_cert(str(certs))
    script = tmp_path / "guest.sh"
    script.write_text(GUEST)
    r = vm_run("sh /root/guest.sh", kernel="debian-6.1", timeout=300,
               puts=[(str(certs), "/root/certs"), (str(script), "/root/guest.sh")])
    assert r[0] == 0, r.stdout + r.stderr
    res = {}
    for line in r.stdout.splitlines():
        name, kind, rest = line.split(" ", 2)
        res[(name, kind)] = json.loads(rest)
    for name in ("off", "always", "notx"):
        c = res[(name, "CLIENT")]
        assert c["ok"] and c["sha256_sent"] == c["sha256_received"]
    # offload = off: both ends stay in userspace and say why
    for kind in ("CLIENT", "SERVE"):
        st = res[("off", kind)]["status"]
        assert st["tx"]["mode"] == st["rx"]["mode"] == "userspace"
        assert st["tx"]["reason_code"] == "policy-off"
    assert res[("off", "CLIENT")]["kernel_conf"] is None
    # tls13 = always on a kernel that cannot re-key: TLS 1.3 TX in the kernel
    st = res[("always", "SERVE")]["status"]
    assert st["tx"]["mode"] == "kernel-sw" and st["tx"]["tls"] == "1.3"
    assert res[("always", "SERVE")]["kernel_conf"]["tx"] == "sw"
    assert res[("always", "PROV")]["ktls-tls13"] == "always"
    # tx = off: receive offloaded, transmit not
    st = res[("notx", "CLIENT")]["status"]
    assert st["tx"]["reason_code"] == "policy-direction" and st["rx"]["mode"] == "kernel-sw"
    # the ULP is attached, TX never got keys: the kernel passes it through
    assert res[("notx", "CLIENT")]["kernel_conf"] == {"tx": "base", "rx": "sw"}
