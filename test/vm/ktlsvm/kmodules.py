"""The guest's kernel modules: the subset of a flavour's MODULES directory
copied into the initramfs (cached archive), and which of them to load."""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time

from .cache import FORMAT_VERSION, cache_dir, prune, stat_key
from .cpio import Archive
from .errors import Failure, log

# Modules loaded in every guest (those built into a kernel are skipped).
DEFAULT_MODULES = ["virtio_pci", "virtio_net", "tls", "gcm", "ccm",
                   "aesni_intel", "chacha20poly1305", "inet_diag", "tcp_diag"]
# Module directories copied into the guest besides the closure of the list
# above, so that the kernel can load crypto algorithms on demand.
MODULE_SUBTREES = ("kernel/crypto/", "kernel/arch/x86/crypto/", "kernel/lib/",
                   "kernel/net/tls/", "kernel/drivers/virtio/",
                   "kernel/drivers/net/veth.")


MOD_SUFFIX = re.compile(r"\.ko(\.xz|\.zst|\.gz)?$")


def mod_name(relpath):
    return MOD_SUFFIX.sub("", os.path.basename(relpath)).replace("-", "_")


def read_modules_dep(moddir):
    deps = {}
    with open(os.path.join(moddir, "modules.dep")) as f:
        for line in f:
            mod, _, rest = line.partition(":")
            if mod:
                deps[mod.strip()] = rest.split()
    return deps


def read_builtin(moddir):
    try:
        with open(os.path.join(moddir, "modules.builtin")) as f:
            return {mod_name(l.strip()) for l in f if l.strip()}
    except FileNotFoundError:
        return set()


def decompress(src, dst):
    suffix = MOD_SUFFIX.search(src).group(1)
    tool = {".xz": ["xz", "-dc"], ".zst": ["zstd", "-dcq"], ".gz": ["gzip", "-dc"]}[suffix]
    with open(dst, "wb") as out:
        r = subprocess.run(tool + [src], stdout=out)
    if r.returncode != 0:
        raise Failure("cannot decompress %s with %s" % (src, tool[0]))


def module_archive(moddir):
    """A cpio with the module subset of MODDIR (uncompressed, depmod'ed)."""
    release = os.path.basename(moddir)
    deps = read_modules_dep(moddir)
    by_name = {mod_name(m): m for m in deps}
    wanted = set(m for m in deps if m.startswith(MODULE_SUBTREES))
    wanted.update(by_name[n] for n in DEFAULT_MODULES if n in by_name)
    todo = list(wanted)
    while todo:
        for d in deps.get(todo.pop(), []):
            if d not in wanted:
                wanted.add(d)
                todo.append(d)

    h = hashlib.sha256((FORMAT_VERSION + moddir).encode())
    for m in sorted(wanted):
        h.update(stat_key(os.path.join(moddir, m), m))
    key = h.hexdigest()[:32]
    d = os.path.join(cache_dir(), "modules")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, key + ".cpio")
    if os.path.exists(path):
        os.utime(path)
        return path

    t0 = time.time()
    with tempfile.TemporaryDirectory(dir=d) as tmp:
        mdir = os.path.join(tmp, "lib", "modules", release)
        for m in sorted(wanted):
            src = os.path.join(moddir, m)
            dst = os.path.join(mdir, MOD_SUFFIX.sub(".ko", m))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if MOD_SUFFIX.search(m).group(1):
                decompress(src, dst)
            else:
                shutil.copyfile(src, dst)
        for n in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
            if os.path.exists(os.path.join(moddir, n)):
                shutil.copyfile(os.path.join(moddir, n), os.path.join(mdir, n))
        r = subprocess.run(["depmod", "-b", tmp, release],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise Failure("depmod failed on the module subset:\n" + r.stdout)
        a = Archive()
        for root, dirs, files in os.walk(mdir):
            for f in files:
                p = os.path.join(root, f)
                a.file("usr/" + os.path.relpath(p, tmp), p, 0o644)
        a.write(path)
    prune(d, ".cpio", 4)
    log("module archive for %s: %d modules (%.1f s)" % (release, len(wanted), time.time() - t0))
    return path


def plan_modules(moddir, skip):
    """(modules to load, modules to forbid) for the guest."""
    skip = [s.replace("-", "_") for s in skip]
    if not moddir:
        if skip:
            raise Failure("this kernel has everything built in; "
                          "--no-module %s cannot be honoured" % " ".join(skip))
        return [], []
    loadable = {mod_name(m) for m in read_modules_dep(moddir)}
    builtin = read_builtin(moddir)
    for s in skip:
        if s in builtin:
            raise Failure("module %s is built into this kernel; --no-module cannot "
                          "remove it" % s)
        if s not in loadable:
            raise Failure("--no-module %s: no such module in %s" % (s, moddir))
    load = []
    for m in DEFAULT_MODULES:
        if m in loadable:
            load.append(m)
        elif m not in builtin:
            log("warning: module %s is neither loadable nor built in" % m)
    return load, skip
