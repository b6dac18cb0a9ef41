"""The project in the guest: `make install` of the build in $KTLS_BUILDDIR
into a stage directory under the cache, redone when the tree changes."""

import hashlib
import os
import shutil
import subprocess
import time

from .cache import cache_dir, stat_key
from .errors import Failure, log
from .paths import TOP


def tree_stamp(dirs):
    """Changes when a file that `make install` may depend on changes."""
    h = hashlib.sha256()
    for top in dirs:
        for root, ds, files in os.walk(top):
            ds[:] = sorted(x for x in ds if x not in (".git", "__pycache__", ".pytest_cache"))
            for f in sorted(files):
                if f.endswith((".py", ".pyc", ".md")):
                    continue
                try:
                    h.update(stat_key(os.path.join(root, f)))
                except OSError:
                    continue
    return h.hexdigest()


def stage_project():
    """`make install DESTDIR=<stage>` of the build in KTLS_BUILDDIR (cached)."""
    builddir = os.path.realpath(os.environ.get("KTLS_BUILDDIR") or os.path.join(TOP, "_build"))
    if not os.path.isfile(os.path.join(builddir, "Makefile")):
        raise Failure("no configured build in %s: run scripts/build.sh first "
                      "(or set KTLS_BUILDDIR, or pass --no-project)" % builddir)
    key = hashlib.sha256(builddir.encode()).hexdigest()[:16]
    stage = os.path.join(cache_dir(), "stage", key)
    stampf = stage + ".stamp"
    dirs = [TOP] if builddir.startswith(TOP + os.sep) else [TOP, builddir]
    stamp = tree_stamp(dirs)
    try:
        with open(stampf) as f:
            if f.read() == stamp and os.path.isdir(stage):
                return stage
    except FileNotFoundError:
        pass
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    t0 = time.time()
    r = subprocess.run(["make", "-s", "-C", builddir, "install", "DESTDIR=" + stage],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise Failure("make -C %s install DESTDIR=%s failed:\n%s"
                      % (builddir, stage, r.stdout[-4000:]))
    log("staged the project from %s (%.1f s)" % (builddir, time.time() - t0))
    with open(stampf, "w") as f:
        f.write(tree_stamp(dirs))
    return stage
