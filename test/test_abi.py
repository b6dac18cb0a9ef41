"""The shared library's ABI, checked against what it promises: every
exported function is in libktls-bridge.map under the node of the release
that added it (and nothing else is exported), each node inherits the one
before, every function is declared in ktls-bridge.h and has a man page,
the version agrees everywhere, and the public structs that callers
allocate keep their sizes (a change breaks programs built against an
older header: it needs new functions under a new node instead)."""

import ctypes
import os
import re
import subprocess

from conftest import ktls_skip
from helpers import BUILDDIR, TOP, package_version

MAP = os.path.join(TOP, "ktls-bridge", "libktls-bridge.map")
HEADER = os.path.join(TOP, "ktls-bridge", "ktls-bridge.h")
LIB = os.path.join(BUILDDIR, "ktls-bridge", ".libs", "libktls-bridge.so")

# sizeof() of the structs a caller allocates or embeds, as of release
# 0.2.0 (x86_64).  Growing one breaks every program built against an
# older header.
STRUCT_SIZES = {"ktls_cipher": 56, "ktls_keyblock": 72, "ktls_nic": 24, "ktls_caps": 1144,
                "ktls_policy": 40, "ktls_dir_status": 176, "ktls_status": 352}


def version_script():
    """[(node, [symbols], parent or None)] in file order."""
    text = re.sub(r"#.*", "", open(MAP).read())
    nodes = []
    for name, body, parent in re.findall(
            r"(KTLS_BRIDGE_[0-9.]+)\s*\{(.*?)\}\s*(KTLS_BRIDGE_[0-9.]+)?\s*;", text, re.S):
        glob = body.split("local:")[0].replace("global:", "")
        nodes.append((name, [s.strip() for s in glob.split(";") if s.strip()], parent or None))
    return nodes


def exported():
    """{symbol: node} of the functions the built library exports."""
    out = subprocess.run(["readelf", "--dyn-syms", "--wide", LIB], capture_output=True,
                         text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 8 and f[3] in ("FUNC", "OBJECT") and f[4] in ("GLOBAL", "WEAK") \
                and f[6] not in ("UND", "ABS"):
            name, _, node = f[7].partition("@@")
            syms[name] = node or None
    return syms


def test_exports_are_the_version_script():
    want = {s: node for node, syms, _ in version_script() for s in syms}
    got = exported()
    assert got == want, {"exported, not in the map (or another node)":
                         {k: v for k, v in got.items() if want.get(k) != v},
                         "in the map, not exported": sorted(set(want) - set(got))}


def test_each_node_inherits_the_one_before():
    nodes = version_script()
    assert nodes[0][0] == "KTLS_BRIDGE_0.1" and nodes[0][2] is None
    for (prev, _, _), (name, syms, parent) in zip(nodes, nodes[1:]):
        assert parent == prev, "%s must inherit %s" % (name, prev)
        assert syms, "%s adds nothing" % name


def test_every_function_declared_and_documented():
    header = open(HEADER).read()
    man = os.path.join(TOP, "man")
    pages = {p[:-2] for p in os.listdir(man) if p.endswith(".3")}
    names = " ".join(open(os.path.join(man, p)).read().split(".SH NAME", 1)[-1]
                     .split(".SH", 1)[0] for p in os.listdir(man) if p.endswith(".3"))
    for _, syms, _ in version_script():
        for s in syms:
            assert re.search(r"\b%s\(" % s, header), "%s is not declared in ktls-bridge.h" % s
            assert s in pages or re.search(r"\b%s\b" % s, names), "%s has no man page" % s


def test_version_agrees_everywhere():
    """ktls_version() of the built library, the header's macros, configure's
    version and the newest node of the map all name the same release."""
    header = open(HEADER).read()
    major = int(re.search(r"#define KTLS_BRIDGE_VERSION_MAJOR (\d+)", header).group(1))
    minor = int(re.search(r"#define KTLS_BRIDGE_VERSION_MINOR (\d+)", header).group(1))
    string = re.search(r'#define KTLS_BRIDGE_VERSION_STR "([^"]+)"', header).group(1)
    configure = package_version()
    lib = ctypes.CDLL(LIB)
    lib.ktls_version.restype = ctypes.c_char_p
    running = lib.ktls_version().decode()
    assert running == string == configure, (running, string, configure)
    assert string.startswith("%d.%d." % (major, minor)), (string, major, minor)
    assert version_script()[-1][0] == "KTLS_BRIDGE_%d.%d" % (major, minor)


def test_public_struct_sizes_unchanged(tmp_path):
    src = tmp_path / "sizes.c"
    src.write_text("#include <stdio.h>\n#include <ktls-bridge.h>\nint main(void)\n{\n" + "".join(
        '\tprintf("%s %%zu\\n", sizeof(struct %s));\n' % (s, s) for s in STRUCT_SIZES)
        + "\treturn 0;\n}\n")
    exe = tmp_path / "sizes"
    r = subprocess.run(["cc", "-Wall", "-Werror", "-I", os.path.dirname(HEADER), str(src),
                        "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    got = {k: int(v) for k, v in (line.split() for line in out.splitlines())}
    if os.uname().machine != "x86_64":
        ktls_skip("struct sizes are recorded for x86_64 only")
    assert got == STRUCT_SIZES, "a public struct changed size: %s" % {
        k: (STRUCT_SIZES[k], got[k]) for k in got if got[k] != STRUCT_SIZES[k]}
