"""The cache directory, keys that change with a file's content, pruning."""

import os

# Bump when the layout of the generated archives changes.
FORMAT_VERSION = "1"


def cache_dir():
    d = os.environ.get("KTLS_VM_CACHE")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or \
            os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "ktls-offload", "vm")
    os.makedirs(d, exist_ok=True)
    return d


def stat_key(path, name=None):
    """Bytes that change when PATH's content (probably) changes."""
    st = os.lstat(path)
    return ("%s\0%d\0%d\0" % (name or path, st.st_size, st.st_mtime_ns)).encode()


def prune(directory, suffix, keep):
    """Keep the KEEP most recently used files ending in SUFFIX."""
    old = sorted((os.path.join(directory, n) for n in os.listdir(directory)
                  if n.endswith(suffix)), key=os.path.getmtime, reverse=True)
    for p in old[keep:]:
        try:
            os.unlink(p)
        except OSError:
            pass
