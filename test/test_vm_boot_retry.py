"""vm-run boots again when the guest died of qemu TCG's stale-int3 race
before the command started (ktlsvm/qemu.py, TCG_STALE_INT3), and only then.

The guest here is a FAKE: a qemu-system-x86_64 script put first on PATH that
writes what a guest writes to vm-run's serial-port files (the console, the
command's stdout, the control port's READY / RC / DMESG lines) and exits.
The real race cannot be provoked on purpose (it was seen as a Debian 7.3
guest dying at 1.3 s, "Oops: int3" in set_next_task_fair); the fake replays
that console text.  The flavour's kernel and initramfs are real (vm-run
prepares them as for any run), so the test needs the VM platform."""

import json
import os
import stat
import subprocess

import pytest

from conftest import VM_EXIT_PLATFORM, VM_RUN

pytestmark = pytest.mark.vm

FAKE_QEMU = r'''#!/usr/bin/env python3
import os, sys
files = {}
args = sys.argv[1:]
for i, a in enumerate(args):
    if a == "-chardev":
        spec = dict(kv.split("=", 1) for kv in args[i + 1].split(",")[1:])
        files[spec["id"]] = spec["path"]
state = os.environ["FAKE_QEMU_STATE"]
n = int(open(state).read()) if os.path.exists(state) else 0
open(state, "w").write(str(n + 1))
plan = os.environ["FAKE_QEMU_PLAN"].split(",")
what = plan[n] if n < len(plan) else plan[-1]
def put(ident, text):
    with open(files[ident], "a") as f:
        f.write(text)
INT3 = ("[    1.303076] Oops: int3: 0000 [#1] SMP NOPTI\n"
        "[    1.305206] RIP: 0010:set_next_task_fair+0x609/0x780\n"
        "[    1.306622] Kernel panic - not syncing: Fatal exception in interrupt\n")
if what == "int3":                # dies while booting, the race's signature
    put("s0", "[    0.000000] Linux version 7.3.4\n" + INT3)
elif what == "null":              # dies while booting, another oops
    put("s0", "[    1.2] BUG: kernel NULL pointer dereference, address: 0\n"
              "[    1.2] Oops: 0000 [#1] SMP NOPTI\n[    1.3] Kernel panic - not syncing\n")
elif what == "late-int3":         # the command had started
    put("s3", "READY\n")
    put("s0", INT3)
else:                             # boots, runs the command, exits 0
    put("s3", "READY\n")
    put("s1", "fake guest ran the command\n")
    put("s3", "RC 0\nDMESG-BEGIN\n[    0.1] fake dmesg\nDMESG-END\n")
'''


@pytest.fixture
def fake_vm(vm_platform, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    q = bindir / "qemu-system-x86_64"
    q.write_text(FAKE_QEMU)
    q.chmod(q.stat().st_mode | stat.S_IXUSR)
    state = tmp_path / "boots"

    def run(plan):
        j = tmp_path / "r.json"
        env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]),
                   KTLS_VM_ACCEL="tcg", FAKE_QEMU_STATE=str(state), FAKE_QEMU_PLAN=plan)
        r = subprocess.run([VM_RUN, "--kernel", "debian-6.1", "--no-project", "--timeout", "120",
                            "--result-json", str(j), "--", "true"],
                           env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=600)
        boots = int(state.read_text())
        state.unlink()
        res = json.loads(j.read_text()) if j.exists() else None
        print("\n[boot_retry] plan %s: exit %d, %d boot(s)\n%s"
              % (plan, r.returncode, boots, r.stderr[-1500:]))
        return r, boots, res
    return run


def test_boots_again_after_the_race(fake_vm):
    r, boots, res = fake_vm("int3,ok")
    assert r.returncode == 0, r.stderr
    assert boots == 2
    assert "fake guest ran the command" in r.stdout
    assert "qemu TCG's stale-int3 race" in r.stderr and "booting again (1 of 2)" in r.stderr
    assert "set_next_task_fair" in r.stderr       # what the guest died of is shown
    assert res["timing"]["boot_retries"] == 1 and res["status"] == 0


def test_gives_up_after_two_retries(fake_vm):
    r, boots, res = fake_vm("int3")
    assert boots == 3
    assert r.returncode == VM_EXIT_PLATFORM, r.stderr
    assert "booting again (2 of 2)" in r.stderr
    assert "the guest stopped before the command finished" in r.stderr
    assert res["timing"]["boot_retries"] == 2


@pytest.mark.parametrize("plan", ["null", "late-int3"])
def test_other_crashes_are_not_retried(fake_vm, plan):
    """Another oops while booting may be the kernel's own bug, and after
    READY the command may have done something: neither is booted again."""
    r, boots, res = fake_vm(plan)
    assert boots == 1
    assert r.returncode == VM_EXIT_PLATFORM, r.stderr
    assert "booting again" not in r.stderr
    assert res["timing"]["boot_retries"] == 0
