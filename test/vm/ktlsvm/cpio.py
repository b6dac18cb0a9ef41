"""newc cpio archives written by vm-run itself, and the cache of built ones."""

import hashlib
import os
import shutil
import stat

from .cache import FORMAT_VERSION, cache_dir, prune, stat_key


class Archive:
    """Entries of a newc cpio archive, keyed by guest path (no leading /)."""

    def __init__(self):
        self.entries = {}

    def _parents(self, path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.entries:
                self.entries[d] = ("dir", 0o755, None)

    def dir(self, path, mode=0o755):
        path = path.strip("/")
        self._parents(path)
        self.entries[path] = ("dir", mode, None)

    def file(self, path, src, mode=None):
        path = path.strip("/")
        self._parents(path)
        if mode is None:
            mode = stat.S_IMODE(os.stat(src).st_mode)
        self.entries[path] = ("file", mode, src)

    def data(self, path, content, mode=0o644):
        path = path.strip("/")
        self._parents(path)
        if isinstance(content, str):
            content = content.encode()
        self.entries[path] = ("data", mode, content)

    def symlink(self, path, target):
        path = path.strip("/")
        self._parents(path)
        self.entries[path] = ("symlink", 0o777, target)

    def chardev(self, path, major, minor, mode=0o600):
        path = path.strip("/")
        self._parents(path)
        self.entries[path] = ("chr", mode, (major, minor))

    def digest(self):
        """Hash of everything that ends up in the archive."""
        h = hashlib.sha256(FORMAT_VERSION.encode())
        for path in sorted(self.entries):
            kind, mode, arg = self.entries[path]
            h.update(("%s\0%s\0%o\0" % (path, kind, mode)).encode())
            if kind == "file":
                h.update(stat_key(arg))
            elif kind == "data":
                h.update(hashlib.sha256(arg).digest())
            else:
                h.update(repr(arg).encode())
        return h.hexdigest()

    def write(self, out_path):
        tmp = out_path + ".tmp%d" % os.getpid()
        with open(tmp, "wb") as out:
            ino = 1
            for path in sorted(self.entries):
                kind, mode, arg = self.entries[path]
                ino += 1
                self._write_entry(out, ino, path, kind, mode, arg)
            self._header(out, 0, "TRAILER!!!", 0, 0, 1, 0)
            pad = (-out.tell()) % 512
            out.write(b"\0" * pad)
        os.replace(tmp, out_path)

    @staticmethod
    def _header(out, ino, name, mode, size, nlink, rdev):
        nameb = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0] if rdev else 0,
            rdev[1] if rdev else 0, len(nameb), 0))
        out.write(hdr.encode() + nameb)
        out.write(b"\0" * ((-(len(hdr) + len(nameb))) % 4))

    def _write_entry(self, out, ino, path, kind, mode, arg):
        if kind == "dir":
            self._header(out, ino, path, stat.S_IFDIR | mode, 0, 2, None)
        elif kind == "chr":
            self._header(out, ino, path, stat.S_IFCHR | mode, 0, 1, arg)
        elif kind == "symlink":
            t = arg.encode()
            self._header(out, ino, path, stat.S_IFLNK | mode, len(t), 1, None)
            out.write(t + b"\0" * ((-len(t)) % 4))
        elif kind == "data":
            self._header(out, ino, path, stat.S_IFREG | mode, len(arg), 1, None)
            out.write(arg + b"\0" * ((-len(arg)) % 4))
        else:
            size = os.path.getsize(arg)
            self._header(out, ino, path, stat.S_IFREG | mode, size, 1, None)
            with open(arg, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
            out.write(b"\0" * ((-size) % 4))


def cached_archive(kind, archive, keep=4):
    """Write ARCHIVE under the cache unless an identical one is there."""
    d = os.path.join(cache_dir(), kind)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, archive.digest()[:32] + ".cpio")
    if os.path.exists(path):
        os.utime(path)
        return path, False
    archive.write(path)
    prune(d, ".cpio", keep)
    return path, True
