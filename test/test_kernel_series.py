"""The kernel/ patch series (TLS 1.3 rekey + pre-staged keys) in a guest.

Boots the `patched-6.12` flavour (kernel/build.sh; the first run builds the
kernel, ~5-6 min on 2 cores) and runs:
  * the net/tls kselftest of the patched tree (static binary built by
    kernel/build.sh), every test must pass except the exclusions below;
  * kernel/tests/rekey-stress.c: both directions sending and receiving while
    re-keying thousands of times (staged and not), dmesg must stay clean;
  * with KTLS_KASAN=1 only: the same on the KASAN + kmemleak build.

With KTLS_PATCHED7=1 the selftests and the stress test run on the
`patched-7` flavour too (kernel/7.x/build.sh: the 7.x series on top of
mainline's re-key code), and test_patched7_checkpatch checks that every
7.x patch is `checkpatch.pl --strict` clean (with KTLS_KASAN=1 as well:
the KASAN run on the 7.x build too).  Opt-in: that second kernel build
does not fit the default suite's time budget on CI.

Exclusions (see kernel/README): the cipher variants the config does not
enable (SM4, ARIA).
"""

import os
import re
import subprocess

import pytest

from conftest import ktls_skip

TEST_DIR = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(TEST_DIR)
BUILD = os.path.join(TOP, "kernel", "build.sh")
BUILD7 = os.path.join(TOP, "kernel", "7.x", "build.sh")
# flavour name -> its build script
SERIES = {"patched-6.12": BUILD, "patched-7": BUILD7}
STRESS_SRC = os.path.join(TOP, "kernel", "tests", "rekey-stress.c")

# Fixture variants whose cipher kernel/config.fragment leaves out.
EXCLUDED_VARIANTS = ("13_sm4_gcm", "13_sm4_ccm", "12_aria_gcm", "12_aria_gcm_256")
# Tests needing what the minimal config leaves out (IPv6).
EXCLUDED_TESTS = ("global.tls_v6ops",)
# Tests of our series that must be present and pass (for each TLS 1.3 variant).
REQUIRED = ("rekey", "rekey_fail", "rekey_poll_pending", "rekey_stage_rx",
            "rekey_stage_tx", "rekey_stage_many", "rekey_stage_fail",
            "rekey_stage_replace", "rekey_stage_close", "rekey_stage_while_pending",
            "rekey_keyupdate_mid_record", "rekey_keyupdate_split",
            "rekey_keyupdate_split_body", "rekey_keyupdate_two_in_record",
            "rekey_tx_msg_more", "rekey_stage_epoll", "rekey_stage_poll_pending")
# Tests of the 6.12 series' own TLS_TX re-key (0002), which the 7.x series
# does not carry (mainline's TLS_TX is used there as it is).
ONLY_612 = ("rekey_tx_msg_more",)

pytestmark = pytest.mark.vm


def build_kernel(kasan=False, flavour="patched-6.12"):
    """Directory of the built (cached) image, headers and selftest."""
    build = SERIES[flavour]
    if not os.access(build, os.X_OK):
        ktls_skip("%s is missing" % os.path.relpath(build, TOP))
    args = [build] + (["--kasan"] if kasan else [])
    r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=3600)
    if r.returncode != 0:
        pytest.fail("%s failed:\n%s" % (os.path.relpath(build, TOP), r.stderr[-4000:]),
                    pytrace=False)
    return os.path.dirname(r.stdout.strip().splitlines()[-1])


def patched7_wanted():
    if os.environ.get("KTLS_PATCHED7") != "1":
        ktls_skip("the 7.x series is not asked for: set KTLS_PATCHED7=1", allowed="patched7")


@pytest.fixture(scope="session", params=["patched-6.12", "patched-7"])
def patched_kernel(request):
    """(flavour, directory of its build) for each series."""
    if request.param == "patched-7":
        patched7_wanted()
    return request.param, build_kernel(flavour=request.param)


def build_stress(outdir, kdir):
    exe = os.path.join(outdir, "rekey-stress")
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-pthread",
                    "-I", os.path.join(kdir, "headers", "include"),
                    "-o", exe, STRESS_SRC], check=True)
    return exe


def parse_tap(out):
    """{test name: 'ok' | 'skip' | 'fail'} from kselftest harness output."""
    res = {}
    for line in out.splitlines():
        m = re.match(r"^(not ok|ok) \d+ (\S+)(.*)$", line)
        if not m:
            continue
        status = "ok" if m.group(1) == "ok" else "fail"
        if "# SKIP" in m.group(3):
            status = "skip"
        res[m.group(2)] = status
    return res


def excluded(name):
    if name in EXCLUDED_TESTS:
        return True
    parts = name.split(".")
    return len(parts) == 3 and parts[1] in EXCLUDED_VARIANTS


def check_tap(out):
    """The kselftest run reported every test it planned ("1..N") and
    exited as its results say (1 when any failed, else 0): it did not
    crash or stop part way.  Returns parse_tap's results."""
    res = parse_tap(out)
    assert res, "no kselftest results:\n" + out[-3000:]
    plan = re.search(r"^1\.\.(\d+)$", out, re.M)
    rc = re.search(r"^selftest-rc=(\d+)$", out, re.M)
    assert plan and len(res) == int(plan.group(1)), \
        "planned %s, reported %d:\n%s" % (plan and plan.group(1), len(res), out[-3000:])
    any_failed = any(s == "fail" for s in res.values())
    assert rc and int(rc.group(1)) == (1 if any_failed else 0), out[-3000:]
    return res


def run_selftests(vm_run, kdir, flavour):
    r = vm_run("/root/tls-selftest; echo selftest-rc=$?", kernel=flavour,
               project=False, timeout=1500,
               puts=[(os.path.join(kdir, "tls-selftest"), "/root/tls-selftest")])
    res = check_tap(r.stdout)
    failed = sorted(n for n, s in res.items() if s == "fail" and not excluded(n))
    assert not failed, "failed: %s\n%s" % (failed, r.stdout[-6000:])
    for t in REQUIRED:
        if flavour != "patched-6.12" and t in ONLY_612:
            continue
        for v in ("13_aes_gcm", "13_chacha", "13_aes_ccm", "13_aes_gcm_256"):
            name = "tls.%s.%s" % (v, t)
            assert res.get(name) == "ok", "%s: %s" % (name, res.get(name))
    return res, r


def test_tls_selftests(vm_run, patched_kernel):
    flavour, kdir = patched_kernel
    res, r = run_selftests(vm_run, kdir, flavour)
    n_ok = sum(1 for s in res.values() if s == "ok")
    n_ex = sum(1 for n in res if excluded(n))
    print("%s tls selftests: %d ok, %d excluded (SM4/ARIA variants, tls_v6ops), %d total"
          % (flavour, n_ok, n_ex, len(res)))


def test_rekey_stress(vm_run, patched_kernel, tmp_path):
    flavour, kdir = patched_kernel
    exe = build_stress(str(tmp_path), kdir)
    r = vm_run("/root/rekey-stress 3000 7 && cat /proc/net/tls_stat",
               kernel=flavour, project=False,
               puts=[(exe, "/root/rekey-stress")], timeout=900)
    assert r.rc == 0, r.stdout + r.stderr[-3000:]
    assert "PASS" in r.stdout
    stats = dict(re.findall(r"^(Tls\w+)\s+(\d+)$", r.stdout, re.M))
    assert int(stats["TlsRxRekeyReceived"]) == 6000
    assert int(stats["TlsTxStagedSwitch"]) > 0 and int(stats["TlsRxStagedSwitch"]) > 0
    assert int(stats["TlsTxRekeyError"]) == 0 and int(stats["TlsRxRekeyError"]) == 0


@pytest.mark.parametrize("flavour", ["patched-6.12", "patched-7"])
def test_kasan_kmemleak(vm_run, tmp_path, monkeypatch, flavour):
    if os.environ.get("KTLS_KASAN") != "1":
        ktls_skip("KASAN run not asked for: set KTLS_KASAN=1", allowed="kasan")
    if flavour == "patched-7":
        patched7_wanted()
    kdir = build_kernel(kasan=True, flavour=flavour)
    monkeypatch.setenv("KTLS_VM_KASAN", "1")
    exe = build_stress(str(tmp_path), kdir)
    # a subset of the variants: KASAN under TCG is slow.  7.3's mutliproc
    # tests (mainline's, several processes on one socket) outlast the
    # harness's 30 s per test there, in the TLS 1.2 variant too where the
    # series runs no code; they pass in test_tls_selftests.
    slow = "" if flavour == "patched-6.12" else "".join(
        "-T %s " % t for t in ("mutliproc_readers", "mutliproc_writers",
                               "mutliproc_sendpage_readers",
                               "mutliproc_sendpage_writers"))
    cmd = ("/root/tls-selftest " + slow +
           "-v 13_aes_gcm -v 13_chacha -v 12_aes_gcm -v 13_nopad "
           "-f tls_basic -f tls_err -f global >/root/selftest.out 2>&1; "
           "echo selftest-rc=$?; echo selftest-begin; cat /root/selftest.out; "
           "echo selftest-end; "
           "/root/rekey-stress 500 3 || echo stress-failed; "
           "echo scan >/sys/kernel/debug/kmemleak; sleep 6; "
           "echo scan >/sys/kernel/debug/kmemleak; "
           "echo kmemleak-begin; cat /sys/kernel/debug/kmemleak; echo kmemleak-end")
    r = vm_run(cmd, kernel=flavour, project=False, timeout=3000,
               puts=[(os.path.join(kdir, "tls-selftest"), "/root/tls-selftest"),
                     (exe, "/root/rekey-stress")],
               extra_args=["--memory", "2048"])
    print(r.stdout)
    assert "stress-failed" not in r.stdout
    tap = r.stdout.split("selftest-begin", 1)[1].split("selftest-end", 1)[0]
    res = check_tap(tap + "\n" + re.search(r"^selftest-rc=\d+$", r.stdout, re.M).group(0))
    bad = sorted(n for n, s in res.items() if s == "fail" and not excluded(n))
    assert not bad, bad
    leaks = r.stdout.split("kmemleak-begin", 1)[1].split("kmemleak-end", 1)[0]
    assert "unreferenced object" not in leaks, leaks[:4000]


def test_patched7_checkpatch():
    """Every patch of kernel/7.x is `scripts/checkpatch.pl --strict` clean
    (kernel/7.x/build.sh runs it in the patched tree and keeps its report
    beside the image)."""
    patched7_wanted()
    kdir = build_kernel(flavour="patched-7")
    with open(os.path.join(kdir, "checkpatch.txt")) as f:
        report = f.read()
    with open(os.path.join(TOP, "kernel", "7.x", "series")) as f:
        series = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    totals = re.findall(r"^total: (\d+) errors, (\d+) warnings, (\d+) checks", report, re.M)
    assert len(totals) == len(series), report
    assert all(t == ("0", "0", "0") for t in totals), report
