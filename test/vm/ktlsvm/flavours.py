"""Kernel flavours: the scripts in test/vm/flavours (contract in
test/vm/README), their --check, their preparation, and the default choice."""

import os
import re
import subprocess
import time

from .cache import cache_dir
from .errors import Failure, log
from .paths import FLAVOURS_DIR, TOP

# Seconds a flavour that failed to prepare is left out of the default choice.
FAILED_FLAVOUR_HOLDOFF = 600


def flavour_names():
    try:
        names = os.listdir(FLAVOURS_DIR)
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        p = os.path.join(FLAVOURS_DIR, n)
        if n.startswith(".") or not os.path.isfile(p) or not os.access(p, os.X_OK):
            continue
        out.append(n)

    # our own kernel series first (it has everything the bridge uses),
    # then the newest stock kernel
    def key(n):
        m = re.search(r"(\d+(?:\.\d+)*)$", n)
        ver = tuple(int(x) for x in m.group(1).split(".")) if m else ()
        return (n.startswith("patched-"), ver, n)
    return sorted(out, key=key, reverse=True)


def flavour_env():
    env = dict(os.environ)
    env["KTLS_VM_CACHE"] = cache_dir()
    env["KTLS_TOP"] = TOP
    return env


# --check exit status of a flavour that can be prepared but is never the
# default: it is used only when asked for by name (--kernel, KTLS_VM_KERNEL).
CHECK_BY_NAME_ONLY = 2


def flavour_check(name):
    """(available, reason, default_ok) from `flavours/NAME --check`:
    exit 0 available, CHECK_BY_NAME_ONLY available but never the default,
    anything else unavailable."""
    p = os.path.join(FLAVOURS_DIR, name)
    try:
        r = subprocess.run([p, "--check"], env=flavour_env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120, text=True)
    except subprocess.TimeoutExpired:
        return False, "--check took longer than 120 s", False
    except OSError as e:
        return False, str(e), False
    reason = (r.stderr.strip().splitlines() or [""])[-1]
    ok = r.returncode in (0, CHECK_BY_NAME_ONLY)
    return ok, reason, r.returncode == 0


def prepare_default_flavour():
    """Prepare the first available flavour (flavour_names' order); if one
    fails, warn and try the next.

    Returns (name, kernel, moddir, append)."""
    env = os.environ.get("KTLS_VM_KERNEL")
    if env:
        return (env,) + flavour_prepare(env)
    tried = []
    for n in flavour_names():
        if not flavour_check(n)[2]:
            continue
        # A flavour whose preparation failed recently (a broken kernel build
        # can take minutes to fail) is passed over for a while.
        memo = os.path.join(cache_dir(), "flavours", n + ".failed")
        try:
            age = time.time() - os.path.getmtime(memo)
        except OSError:
            age = None
        if age is not None and age < FAILED_FLAVOUR_HOLDOFF:
            log("warning: flavour %s failed to prepare %d s ago; passing over it "
                "(use --kernel %s to retry)" % (n, age, n))
            tried.append(n)
            continue
        try:
            result = (n,) + flavour_prepare(n)
        except Failure as e:
            log("warning: %s; trying the next flavour (use --kernel to insist)" % e)
            os.makedirs(os.path.dirname(memo), exist_ok=True)
            open(memo, "w").close()
            tried.append(n)
            continue
        if os.path.exists(memo):
            os.unlink(memo)
        return result
    raise Failure("no kernel flavour is available%s (see `vm-run --list`)"
                  % (" (failed: %s)" % ", ".join(tried) if tried else ""))


def flavour_prepare(name):
    p = os.path.join(FLAVOURS_DIR, name)
    if not os.access(p, os.X_OK):
        raise Failure("unknown kernel flavour '%s' (known: %s)"
                      % (name, ", ".join(flavour_names()) or "none"))
    r = subprocess.run([p], env=flavour_env(), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise Failure("flavour %s could not prepare its kernel (exit %d); "
                      "its messages are above" % (name, r.returncode))
    info = {}
    for line in r.stdout.splitlines():
        k, sep, v = line.partition("=")
        if sep and re.fullmatch(r"[A-Z_]+", k):
            info[k] = v.strip()
    kernel = info.get("KERNEL", "")
    if not kernel or not os.path.isfile(kernel):
        raise Failure("flavour %s printed no usable KERNEL= line (got %r)"
                      % (name, kernel))
    mods = info.get("MODULES", "")
    if mods and not os.path.isdir(mods):
        raise Failure("flavour %s: MODULES=%s is not a directory" % (name, mods))
    return kernel, (os.path.realpath(mods) if mods else ""), info.get("APPEND", "")


def list_flavours():
    names = flavour_names()
    if not names:
        print("no flavours in %s" % FLAVOURS_DIR)
        return 1
    default = None
    rows = []
    for n in names:
        ok, why, default_ok = flavour_check(n)
        if default_ok and default is None:
            default = n
        rows.append((n, ok, why, default_ok))
    env = os.environ.get("KTLS_VM_KERNEL")
    for n, ok, why, default_ok in rows:
        mark = " (default)" if n == (env or default) else ""
        if ok and not default_ok and not mark:
            mark = " (with --kernel %s only)" % n
        print("%-16s %s%s%s" % (n, "available" if ok else "unavailable", mark,
                                "" if ok or not why else ": " + why))
    return 0
