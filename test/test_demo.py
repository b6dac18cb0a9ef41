"""The README's first command, scripts/demo.sh, run as a user runs it (both
parts: Debian's 6.1 guest, then patched-6.12), and its output checked: every
transfer ends "ok" with equal hashes both ways, the fallbacks give their
reasons, and the patched kernel's counters moved by the KeyUpdates shown."""

import os
import re
import subprocess

import pytest

from conftest import TOP

pytestmark = pytest.mark.vm

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def counters(line):
    return {k: int(v) for k, v in re.findall(r"(Tls\w+)=(\d+)", line)}


@pytest.fixture(scope="module")
def demo(vm_platform):
    env = dict(os.environ)
    env.pop("KTLS_DEMO_PATCHED", None)
    r = subprocess.run([os.path.join(TOP, "scripts", "demo.sh")], cwd=TOP, env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=1800)
    out = ANSI.sub("", r.stdout)
    print(out[-6000:])
    assert r.returncode == 0, out[-4000:]
    parts = out.split("#### Part 2")
    assert len(parts) == 2, out[-3000:]
    return parts


def delta(section, name):
    lines = section.splitlines()
    b = [counters(x) for x in lines if x.startswith("Kernel TLS counters before")]
    a = [counters(x) for x in lines if x.startswith("Kernel TLS counters after")]
    assert len(b) == len(a) == 1, section
    return a[0][name] - b[0][name]


def staged(section, d):
    """(KeyUpdates, kernel re-keys, staged switches) of each status line for
    direction d, client first."""
    return [tuple(int(x) for x in m) for m in re.findall(
        r"^   %s: kernel-sw .*, (\d+) KeyUpdates, (\d+) kernel re-keys "
        r"\((\d+) to a staged key\)$" % d, section, re.M)]


def client_lines(text):
    return [line for line in text.splitlines() if line.startswith("ktls-client: TLS")]


def test_demo_part1_debian61(demo):
    p1 = demo[0]
    clients = client_lines(p1)
    assert len(clients) == 3, p1[-3000:]
    for line in clients:
        h = re.findall(r"sha256 ([0-9a-f]{64})", line)
        assert line.endswith(": ok") and len(h) == 2 and h[0] == h[1], line
    assert "kernel 6.1." in p1
    # offload, then the two fallbacks with their reasons
    assert "tx: kernel-sw AES-128-GCM TLS 1.2" in p1
    assert "kernel cannot re-key TLS 1.3" in p1 and "15 KeyUpdates sent: ok" in p1
    assert "CHACHA20-POLY1305 TLS 1.2 - kernel does not support this cipher" in p1


def test_demo_part2_patched612(demo):
    p2 = demo[1]
    assert "TLS 1.3 re-key (KeyUpdate):   yes" in p2
    assert "pre-staged next keys:         yes" in p2
    clients = client_lines(p2)
    assert len(clients) == 2, p2[-3000:]
    for line in clients:
        h = re.findall(r"sha256 ([0-9a-f]{64})", line)
        assert line.endswith(": ok") and len(h) == 2 and h[0] == h[1], line
    sec6 = p2[p2.index("== 6."):p2.index("== 7.")]
    sec7 = p2[p2.index("== 7."):p2.index("== 8.")]
    # transparent mode: the client's 31 KeyUpdates and the server's answers,
    # each one a staged TX switch in the kernel; hand-off: both directions
    tx6 = staged(sec6, "tx")
    assert tx6[0] == (31, 31, 31) and tx6[1][0] >= 1, sec6
    assert delta(sec6, "TlsTxStagedSwitch") == sum(t[2] for t in tx6) > 31
    assert delta(sec6, "TlsTxRekeyOk") == 2      # the two processes' probes
    tx7, rx7 = staged(sec7, "tx"), staged(sec7, "rx")
    assert tx7[0] == (15, 15, 15), sec7
    assert delta(sec7, "TlsTxStagedSwitch") == sum(t[2] for t in tx7) > 15
    assert delta(sec7, "TlsRxStagedSwitch") == sum(r[2] for r in rx7) > 15
    assert delta(sec7, "TlsRxRekeyReceived") == sum(r[0] for r in rx7)
    rows = {m.group(1): m.group(2).split() for m in
            re.finditer(r"^(staged|setagain|userspace)\s+(.*)$", p2, re.M)}
    assert set(rows) == {"staged", "setagain", "userspace"}, p2[-2000:]
    assert rows["staged"][4] == "0"         # EKEYEXPIRED column: none when staged
    assert int(rows["setagain"][4]) > 0
