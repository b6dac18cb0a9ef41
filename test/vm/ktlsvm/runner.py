"""One vm-run: check the options, prepare the flavour, assemble the
initramfs (cached userland + modules, then the per-run archive) and boot."""

import fcntl
import os
import re
import shlex
import shutil
import tempfile
import time

from .cache import cache_dir
from .cpio import Archive
from .errors import Failure, log
from .flavours import flavour_prepare, prepare_default_flavour
from .kmodules import module_archive, plan_modules
from .project import stage_project
from .qemu import boot
from .userland import userland_archive


def parse_forward(spec):
    proto = "tcp"
    if spec.startswith(("tcp:", "udp:")):
        proto, spec = spec[:3], spec[4:]
    m = re.fullmatch(r"(\d+):(\d+)", spec)
    if not m or not all(0 < int(x) < 65536 for x in m.groups()):
        raise Failure("--forward wants HOSTPORT:GUESTPORT, got %r" % spec)
    return "%s:127.0.0.1:%s-:%s" % (proto, m.group(1), m.group(2))


def parse_put(spec):
    i = spec.rfind(":/")
    if i <= 0:
        raise Failure("--put wants HOSTFILE:/GUESTPATH, got %r" % spec)
    return spec[:i], spec[i + 1:]


def build_command(argv):
    if not argv:
        raise Failure("no command given (usage: vm-run [options] -- COMMAND [ARGS])")
    if len(argv) == 1:
        return argv[0]  # one word: a shell command line
    return " ".join(shlex.quote(x) for x in argv)


def clean_old_runs(max_age=86400):
    """Remove run directories that a killed vm-run left behind."""
    d = cache_dir()
    for n in os.listdir(d):
        p = os.path.join(d, n)
        if n.startswith("run-") and time.time() - os.path.getmtime(p) > max_age:
            shutil.rmtree(p, ignore_errors=True)


def run_archive(run_dir, config, command, envs, puts):
    a = Archive()
    cfg = "".join("%s=%s\n" % (k, shlex.quote(v)) for k, v in config.items())
    a.data("ktls-vm/config", cfg)
    a.data("ktls-vm/cmd", command + "\n", 0o755)
    a.data("ktls-vm/env", "".join("export %s=%s\n" % (k, shlex.quote(v)) for k, v in envs))
    for host, guest in puts:
        guest = guest.strip("/")
        if os.path.isdir(host):
            for root, dirs, files in os.walk(host):
                rel = os.path.relpath(root, host)
                a.dir(os.path.normpath(os.path.join(guest, rel)))
                for n in files:
                    a.file(os.path.normpath(os.path.join(guest, rel, n)), os.path.join(root, n))
        elif os.path.isfile(host):
            a.file(guest, host)
        else:
            raise Failure("--put %s: no such file or directory" % host)
    path = os.path.join(run_dir, "run.cpio")
    a.write(path)
    return path


def run(opts, argv):
    t_start = time.time()
    command = build_command(argv)
    forwards = [parse_forward(f) for f in opts.forward]
    puts = [parse_put(p) for p in opts.put]
    envs = []
    for e in opts.env:
        k, sep, v = e.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            raise Failure("--env wants NAME=VALUE, got %r" % e)
        envs.append((k, v))

    # Flavour scripts take care of their own caches (a kernel build may take
    # minutes and must not hold up runs of other flavours).
    if opts.kernel:
        flavour = opts.kernel
        kernel, moddir, append = flavour_prepare(flavour)
    else:
        flavour, kernel, moddir, append = prepare_default_flavour()
    load, skip = plan_modules(moddir, opts.no_module)
    # One preparer of the shared archives at a time.
    with open(os.path.join(cache_dir(), "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stage = None if opts.no_project else stage_project()
        userland, gpath, glib = userland_archive(stage)
        parts = [userland]
        if moddir:
            parts.append(module_archive(moddir))
        clean_old_runs()
        run_dir = tempfile.mkdtemp(prefix="run-", dir=cache_dir())
        # The kernel unpacks concatenated archives in order; copy the cached
        # ones while no other run can prune them.
        initrd = os.path.join(run_dir, "initrd.cpio")
        with open(initrd, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
    try:
        config = {"KTLS_VM_MODULES": " ".join(load), "KTLS_VM_SKIP": " ".join(skip),
                  "KTLS_VM_PATH": ":".join(gpath), "KTLS_VM_LIBPATH": ":".join(glib),
                  "KTLS_VM_EPOCH": str(int(time.time()))}
        with open(initrd, "ab") as out, \
                open(run_archive(run_dir, config, command, envs, puts), "rb") as f:
            shutil.copyfileobj(f, out)
        t_ready = time.time()
        return boot(opts, flavour, kernel, initrd, append, forwards, run_dir,
                    t_start, t_ready)
    finally:
        if opts.keep:
            log("kept run directory %s" % run_dir)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
