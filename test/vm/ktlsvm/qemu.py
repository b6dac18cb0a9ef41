"""One guest: start qemu on the kernel and initramfs, stream the command's
output while it runs, enforce the timeouts, and turn what the guest reported
(control port, dmesg, console) into vm-run's exit status."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

from .errors import EXIT_DMESG, EXIT_PLATFORM, EXIT_TIMEOUT, Stopped, die_with_parent, log

DMESG_BAD = re.compile(r"BUG:|WARNING:|Oops|KASAN|UBSAN|Kernel panic|"
                       r"kernel BUG at|general protection fault|"
                       r"Call Trace:|RCU stall|hung_task|soft lockup|"
                       r"alg: .*fail")

GUEST_IP = "10.0.2.15"

# Under TCG with several vCPUs (qemu's multi-threaded TCG), a guest kernel
# that patches its own code while booting (static keys: int3 first, then
# the new bytes, each step followed by an IPI to every CPU) is sometimes
# run past the patching by another vCPU from a stale translation of the old
# bytes: that CPU then executes the int3 after the kernel finished the
# patch, and the kernel dies with "Oops: int3" in whatever function held
# the static branch.  Seen with Debian's 7.3 kernel (set_next_task_fair,
# 1.3 s into the boot, once in a few dozen boots on a loaded host).  It is
# the emulator's race, not the guest's or the project's: when a guest dies
# that way before the command started, vm-run boots it again, says so,
# and counts it in the result JSON (timing.boot_retries).
TCG_STALE_INT3 = re.compile(r"Oops: int3")
BOOT_RETRIES = 2


_kvm_ok = None


def use_kvm():
    """KVM only if /dev/kvm is usable and qemu can start a machine with it."""
    global _kvm_ok
    forced = os.environ.get("KTLS_VM_ACCEL")
    if forced:
        return forced == "kvm"
    if _kvm_ok is None:
        _kvm_ok = False
        if os.access("/dev/kvm", os.R_OK | os.W_OK):
            try:
                p = subprocess.Popen(["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host",
                                      "-nodefaults", "-display", "none", "-S",
                                      "-monitor", "none"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    p.wait(timeout=2)  # exited at once: KVM refused
                except subprocess.TimeoutExpired:
                    _kvm_ok = True
                    p.kill()
                    p.wait()
            except OSError:
                pass
    return _kvm_ok


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no console log)"
    return "\n".join(lines[-n:]) or "(console log is empty)"


class Streamer:
    """Copies what the guest wrote to a serial-port file to a host stream."""

    def __init__(self, path, out):
        self.path, self.out, self.pos, self.data = path, out, 0, bytearray()

    def pump(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                chunk = f.read()
        except FileNotFoundError:
            return
        if chunk:
            self.pos += len(chunk)
            self.data += chunk
            if self.out is not None:
                self.out.write(chunk)
                self.out.flush()


def boot(opts, flavour, kernel, initrd, append, forwards, run_dir, t_start, t_ready):
    """Boots the guest and runs the command: boot_once(), again after a
    boot that died of TCG's stale-int3 race before the command started."""
    retries = 0
    while True:
        status = boot_once(opts, flavour, kernel, initrd, append, forwards, run_dir,
                           t_start, t_ready, retries)
        if status is not None:
            return status
        retries += 1


def boot_once(opts, flavour, kernel, initrd, append, forwards, run_dir, t_start, t_ready,
              retries):
    """One qemu run.  Returns vm-run's exit status, or None when the guest
    died of TCG's stale-int3 race before the command started and may be
    booted again (its logs are kept as NAME.log.N)."""
    files = {n: os.path.join(run_dir, n + ".log")
             for n in ("console", "stdout", "stderr", "control", "qemu")}
    kvm = use_kvm()
    # tsc=reliable and mitigations=off save ~0.5 s under TCG; skipping the
    # crypto self-tests ~1.7 s (aesni_intel alone runs >1 s of them).
    cmdline = "console=ttyS0 panic=-1 rdinit=/init 8250.nr_uarts=4 " \
        "tsc=reliable mitigations=off"
    if not opts.crypto_selftests:
        cmdline += " cryptomgr.notests=1"
    for extra in (append, opts.append):
        if extra:
            cmdline += " " + extra
    netdev = "user,id=n0,restrict=on,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3"
    for f in forwards:
        netdev += ",hostfwd=" + f
    qemu = ["qemu-system-x86_64",
            "-accel", "kvm" if kvm else "tcg",
            "-cpu", "host" if kvm else "max",
            "-m", str(opts.memory), "-smp", str(opts.smp),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
            "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0"]
    for i, n in enumerate(("console", "stdout", "stderr", "control")):
        qemu += ["-chardev", "file,id=s%d,path=%s" % (i, files[n]), "-serial", "chardev:s%d" % i]
    if opts.debug:
        log("qemu: " + " ".join(shlex.quote(x) for x in qemu))

    with open(files["qemu"], "wb") as qlog:
        # qemu runs in a session of its own (a terminal's ^C reaches vm-run
        # only, which then stops it) and dies with vm-run even by SIGKILL
        proc = subprocess.Popen(qemu, stdin=subprocess.DEVNULL, stdout=qlog, stderr=qlog,
                                start_new_session=True,
                                preexec_fn=lambda: die_with_parent(signal.SIGKILL))
    out = Streamer(files["stdout"], sys.stdout.buffer)
    err = Streamer(files["stderr"], sys.stderr.buffer)
    ctl = Streamer(files["control"], None)
    t_boot = time.time()
    t_cmd = None
    failure = None
    deadline = t_boot + opts.timeout
    boot_deadline = t_boot + min(opts.boot_timeout, opts.timeout)
    try:
        while True:
            exited = proc.poll() is not None
            for s in (out, err, ctl):
                s.pump()
            if t_cmd is None and b"READY\n" in ctl.data:
                t_cmd = time.time()
            if exited:
                break
            now = time.time()
            if t_cmd is None and now > boot_deadline:
                failure = ("the guest did not boot within %d s"
                           % min(opts.boot_timeout, opts.timeout), EXIT_TIMEOUT)
            elif now > deadline:
                failure = ("timed out after %d s (boot %.1f s, then the command ran "
                           "%.1f s); raise --timeout if the command is slow"
                           % (opts.timeout, t_cmd - t_boot, now - t_cmd), EXIT_TIMEOUT)
            if failure:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            time.sleep(0.02)
    except (KeyboardInterrupt, Stopped):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    t_end = time.time()
    for s in (out, err, ctl):
        s.pump()

    control = ctl.data.decode(errors="replace")
    rc = None
    m = re.search(r"^RC (\d+)$", control, re.M)
    if m:
        rc = int(m.group(1))
    dmesg = None
    m = re.search(r"^DMESG-BEGIN\n(.*?)^DMESG-END$", control, re.M | re.S)
    if m:
        dmesg = m.group(1)
    console = open(files["console"], "rb").read().decode(errors="replace") \
        if os.path.exists(files["console"]) else ""
    dmesg_text = dmesg if dmesg is not None else console
    if opts.dmesg_out:
        with open(opts.dmesg_out, "w") as f:
            f.write(dmesg_text)
    modfail = re.findall(r"^MODFAIL (\S+)$", control, re.M)

    if (t_cmd is None and rc is None and not failure and not kvm
            and retries < BOOT_RETRIES and TCG_STALE_INT3.search(console)):
        oops = [l for l in console.splitlines() if TCG_STALE_INT3.search(l) or "RIP:" in l]
        log("the guest kernel died while booting, before the command started: %s "
            "(qemu TCG's stale-int3 race, see ktlsvm/qemu.py); booting again (%d of %d)"
            % (" / ".join(l.strip() for l in oops[:2]), retries + 1, BOOT_RETRIES))
        for path in files.values():
            if os.path.exists(path):
                os.replace(path, "%s.%d" % (path, retries + 1))
        return None
    timing = {"flavour": flavour, "accel": "kvm" if kvm else "tcg",
              "boot_retries": retries,
              "prepare_s": round(t_ready - t_start, 3),
              "boot_s": round(t_cmd - t_boot, 3) if t_cmd else None,
              "command_s": round(t_end - t_cmd, 3) if t_cmd else None,
              "total_s": round(t_end - t_start, 3)}
    if opts.timing:
        log("timing: " + " ".join("%s=%s" % kv for kv in timing.items()))

    status = None
    message = None
    if failure:
        message, status = failure
    elif proc.returncode != 0 and rc is None:
        message, status = ("qemu failed (exit %d): %s" % (
            proc.returncode, tail(files["qemu"], 10)), EXIT_PLATFORM)
    elif rc is None:
        message, status = ("the guest stopped before the command finished "
                           "(kernel panic or crash?)", EXIT_PLATFORM)
    elif modfail:
        message, status = ("modules failed to load in the guest: %s"
                           % " ".join(modfail), EXIT_PLATFORM)
    if message:
        log("%s (kernel %s)" % (message, flavour))
        if os.path.getsize(files["console"]) if os.path.exists(files["console"]) else 0:
            sys.stderr.write("---- tail of the guest console log ----\n%s\n"
                             "---------------------------------------\n" % tail(files["console"]))
    bad = [l for l in dmesg_text.splitlines() if DMESG_BAD.search(l)]
    if bad and not opts.allow_dmesg_warnings:
        log("the guest kernel log has %d BUG/WARNING/Oops line(s):" % len(bad))
        sys.stderr.write("".join("  %s\n" % l for l in bad[:40]))
        if status is None:
            status = EXIT_DMESG
            log("the command itself exited %d" % rc)
    if status is None:
        status = rc
    if opts.result_json:
        with open(opts.result_json, "w") as f:
            json.dump({"status": status, "rc": rc, "failure": message,
                       "dmesg_bad": bad, "modfail": modfail, "timing": timing}, f)
    return status
