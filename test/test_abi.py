"""The shared library's ABI, checked against what it promises: every
exported function is in libktls-bridge.map under the node of the release
that added it (and nothing else is exported), each node inherits the one
before, every function is declared in ktls-bridge.h and has a man page,
the version agrees everywhere, the soname is the one recorded here, the
structs a caller allocates keep their sizes, and the fields of the
library's own structs keep their offsets (those may only grow at the end).
How the structs grow is at the top of ktls-bridge.h."""

import ctypes
import os
import re
import subprocess

from conftest import ktls_skip
from helpers import BUILDDIR, TOP, package_version

MAP = os.path.join(TOP, "ktls-bridge", "libktls-bridge.map")
HEADER = os.path.join(TOP, "ktls-bridge", "ktls-bridge.h")
LIB = os.path.join(BUILDDIR, "ktls-bridge", ".libs", "libktls-bridge.so")

# The ABI of this soname (x86_64).  A caller allocates or embeds these
# structs: a new field takes reserved words instead of growing one.
# Changing a size (or an offset below) breaks programs built against an
# older header: it needs a new soname (-version-info in
# ktls-bridge/Makefile.am), changed here with it.
SONAME = "libktls-bridge.so.2"
STRUCT_SIZES = {"ktls_keyblock": 72, "ktls_nic": 24, "ktls_policy": 88,
                "ktls_dir_status": 224, "ktls_status": 448}
# The library's own structs, read through its pointers: new fields go at
# the end, the old ones stay where they are.
FIELD_OFFSETS = {
    "ktls_cipher": {"name": 0, "evp_name": 8, "tls13_suite": 16, "kernel_id": 24,
                    "key_size": 26, "iv_size": 27, "salt_size": 28, "seq_size": 29,
                    "tag_size": 30, "info_size": 32, "off_iv": 34, "off_key": 36,
                    "off_salt": 38, "off_seq": 40, "versions": 44, "hw_offloadable": 48},
    "ktls_caps": {"kernel": 0, "ulp": 65, "ulp_err": 68, "tx_err": 72, "rx_err": 200,
                  "rekey": 328, "rekey_err": 332, "prestage": 336, "prestage_err": 340,
                  "zerocopy_tx": 344, "zerocopy_err": 348, "rx_no_pad": 352,
                  "rx_no_pad_err": 356, "n_nics": 360, "nics": 368, "probe_ns": 1136},
}


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


def c_layout(tmp_path, exprs):
    """{label: value} of size_t expressions (labels without spaces), as a program built against
    the header sees them (x86_64 only: the numbers above are its)."""
    if os.uname().machine != "x86_64":
        ktls_skip("the ABI's numbers are recorded for x86_64 only")
    src = tmp_path / "layout.c"
    src.write_text("#include <stddef.h>\n#include <stdio.h>\n#include <ktls-bridge.h>\n"
                   "int main(void)\n{\n" + "".join(
                       '\tprintf("%s %%zu\\n", (size_t)(%s));\n' % (label, e)
                       for label, e in exprs.items()) + "\treturn 0;\n}\n")
    exe = tmp_path / "layout"
    r = subprocess.run(["cc", "-Wall", "-Werror", "-I", os.path.dirname(HEADER), str(src),
                        "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def test_public_struct_sizes_unchanged(tmp_path):
    got = c_layout(tmp_path, {s: "sizeof(struct %s)" % s for s in STRUCT_SIZES})
    assert got == STRUCT_SIZES, "a public struct changed size: %s" % {
        k: (STRUCT_SIZES[k], got[k]) for k in got if got[k] != STRUCT_SIZES[k]}


def test_library_structs_only_grow_at_the_end(tmp_path):
    want = {"%s.%s" % (s, f): off for s, fields in FIELD_OFFSETS.items()
            for f, off in fields.items()}
    got = c_layout(tmp_path, {k: "offsetof(struct %s, %s)" % tuple(k.split("."))
                              for k in want})
    assert got == want, "a field moved: %s" % {
        k: (want[k], got[k]) for k in got if got[k] != want[k]}


def test_reserved_words_end_the_structs_callers_allocate(tmp_path):
    """The room to grow is there, at the end, where a new field takes it.
    ktls_dir_status gave two of its six words to early_pauses and
    rekeys_ahead; below four words, the next soname adds room."""
    exprs = {}
    for s in ("ktls_policy", "ktls_dir_status"):
        exprs[s + ".reserved"] = "sizeof(((struct %s *)0)->reserved)" % s
        exprs[s + ".tail"] = "sizeof(struct %s) - offsetof(struct %s, reserved)" % (s, s)
    got = c_layout(tmp_path, exprs)
    for s in ("ktls_policy", "ktls_dir_status"):
        assert got[s + ".reserved"] >= 4 * 8, got
        assert got[s + ".reserved"] == got[s + ".tail"], got


def test_soname():
    out = subprocess.run(["readelf", "-d", LIB], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^]]+)\]", out)
    assert m and m.group(1) == SONAME, (m and m.group(1), SONAME)
