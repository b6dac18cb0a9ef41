"""The userland archive: /init, busybox, the peer tools, their shared
libraries (ldd closure, cached), OpenSSL's and GnuTLS's configuration, and
the staged project."""

import hashlib
import json
import os
import re
import shutil
import subprocess

from .cache import FORMAT_VERSION, cache_dir, prune, stat_key
from .cpio import Archive, cached_archive
from .errors import Failure, log
from .paths import INIT_SCRIPT

REQUIRED_BINS = ["openssl", "gnutls-cli", "ss", "strace", "kmod", "dash", "bash"]
OPTIONAL_BINS = ["gnutls-serv", "certtool", "ethtool", "curl"]
KMOD_LINKS = ["modprobe", "insmod", "rmmod", "lsmod", "modinfo", "depmod"]

ETC_FILES = {
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
                 "127.0.1.1\tktls-vm\n",
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n"
                         "services: files\nprotocols: files\n",
    "etc/protocols": "ip\t0\tIP\ntcp\t6\tTCP\nudp\t17\tUDP\n",
    "etc/services": "https\t443/tcp\n",
}


def ldd_closure(paths, libpath=""):
    """Host paths of the shared libraries (and loader) PATHS need (cached:
    running ldd costs most of a warm start)."""
    h = hashlib.sha256((FORMAT_VERSION + libpath).encode())
    for p in sorted(paths):
        h.update(stat_key(p))
    d = os.path.join(cache_dir(), "ldd")
    os.makedirs(d, exist_ok=True)
    cached = os.path.join(d, h.hexdigest()[:32] + ".json")
    try:
        with open(cached) as f:
            libs = set(json.load(f))
        if all(os.path.exists(l) for l in libs):
            return libs
    except (OSError, ValueError):
        pass
    libs = run_ldd(paths, libpath)
    with open(cached + ".tmp", "w") as f:
        json.dump(sorted(libs), f)
    os.replace(cached + ".tmp", cached)
    prune(d, ".json", 16)
    return libs


def run_ldd(paths, libpath):
    env = dict(os.environ)
    if libpath:
        env["LD_LIBRARY_PATH"] = libpath
    out = set()
    for p in paths:
        r = subprocess.run(["ldd", p], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True, env=env)
        if r.returncode != 0:
            continue  # static or not ELF
        for line in r.stdout.splitlines():
            line = line.strip()
            if "not found" in line:
                raise Failure("%s: shared library missing on the host: %s" % (p, line))
            m = re.match(r"\S+ => (/\S+)", line) or re.match(r"(/\S+) \(0x", line)
            if m:
                out.add(m.group(1))
    return out


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def add_host_path(a, path):
    """Add host PATH at the same place in the guest (resolving symlinks)."""
    real = os.path.realpath(path)
    a.file(real, real)
    link = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    if link != real:
        a.symlink(link, real)
    return real


def add_host_tree(a, top):
    for root, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(root, n)
            if os.path.islink(p):
                a.symlink(p, os.readlink(p))
            elif os.path.isfile(p):
                a.file(p, p)
            elif os.path.isdir(p):
                a.dir(p)


def openssl_dirs():
    r = subprocess.run(["openssl", "version", "-d", "-m"], stdout=subprocess.PIPE, text=True)
    d = dict(re.findall(r'^(\w+): "(.*)"$', r.stdout, re.M))
    return d.get("OPENSSLDIR", "/usr/lib/ssl"), d.get("MODULESDIR", "")


def userland_archive(stage):
    """The cached cpio with busybox, the tools, their libraries and the project.

    Returns (path, guest PATH additions, guest LD_LIBRARY_PATH)."""
    a = Archive()
    for d in ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "proc", "sys", "dev",
              "tmp", "run", "root", "etc/ssl/certs", "etc/modprobe.d", "ktls-vm"):
        a.dir(d)
    a.dir("tmp", 0o1777)
    for d in ("bin", "sbin", "lib", "lib64"):
        a.symlink(d, "usr/" + d)
    a.chardev("dev/console", 5, 1)
    a.chardev("dev/null", 1, 3, 0o666)
    a.file("init", INIT_SCRIPT, 0o755)
    for path, content in ETC_FILES.items():
        a.data(path, content)

    busybox = shutil.which("busybox")
    if not busybox:
        raise Failure("busybox not found (apt-get install busybox-static)")
    r = subprocess.run([busybox, "--list-full"], stdout=subprocess.PIPE, text=True)
    a.file("usr/bin/busybox", os.path.realpath(busybox), 0o755)
    applets = []
    for ap in r.stdout.split():
        ap = re.sub(r"^(s?bin)/", r"usr/\1/", ap)
        applets.append(ap)

    elves = [os.path.realpath(busybox)]
    for b in REQUIRED_BINS + OPTIONAL_BINS:
        p = shutil.which(b)
        if not p:
            if b in REQUIRED_BINS:
                pkg = {"strace": "strace", "ss": "iproute2", "kmod": "kmod",
                       "gnutls-cli": "gnutls-bin"}.get(b, b)
                raise Failure("%s not found on the host (apt-get install %s)" % (b, pkg))
            continue
        elves.append(add_host_path(a, p))
    kmod = os.path.realpath(shutil.which("kmod"))
    for n in KMOD_LINKS:
        a.symlink("usr/sbin/" + n, kmod)
    # The command runs under dash: busybox ash would prefer its own applets
    # (modprobe, ip, ...) over the real tools on PATH.
    a.symlink("usr/bin/sh", os.path.realpath(shutil.which("dash")))

    ssldir, modulesdir = openssl_dirs()
    if os.path.isdir(ssldir):
        add_host_tree(a, ssldir)
    cnf = os.path.realpath(os.path.join(ssldir, "openssl.cnf"))
    if os.path.isfile(cnf):
        a.file(cnf, cnf)
    if modulesdir and os.path.isdir(modulesdir):
        add_host_tree(a, modulesdir)
        elves += [os.path.join(modulesdir, n) for n in os.listdir(modulesdir)]
    if os.path.isdir("/etc/gnutls"):
        add_host_tree(a, "/etc/gnutls")

    guest_path, guest_lib = [], []
    if stage:
        for root, dirs, files in os.walk(stage):
            rel = os.path.relpath(root, stage)
            for n in dirs:
                p = os.path.join(root, n)
                g = os.path.join(rel, n)
                if os.path.islink(p):
                    a.symlink(g, os.readlink(p))
                else:
                    a.dir(g)
            for n in files:
                p = os.path.join(root, n)
                g = os.path.normpath(os.path.join(rel, n))
                if os.path.islink(p):
                    a.symlink(g, os.readlink(p))
                    continue
                a.file(g, p)
                if is_elf(p):
                    elves.append(p)
            base = os.path.basename(root)
            if base in ("bin", "sbin") and files:
                guest_path.append("/" + rel)
            if (base.startswith("lib") and rel != "." and
                    any(".so" in f for f in files) and "ossl-modules" not in rel):
                guest_lib.append("/" + rel)
        libpath = ":".join(stage + d for d in guest_lib)
    else:
        libpath = ""

    for lib in sorted(ldd_closure(elves, libpath)):
        if stage and lib.startswith(stage + os.sep):
            continue
        add_host_path(a, lib)
    for ap in applets:
        if ap not in a.entries:
            a.symlink(ap, "/usr/bin/busybox")
    path, built = cached_archive("userland", a)
    if built:
        log("built userland archive %s (%d MiB)" % (path, os.path.getsize(path) >> 20))
    return path, sorted(guest_path, reverse=True), sorted(guest_lib)
