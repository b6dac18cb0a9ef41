"""ktls-bridge/ is a stack of one-way layers: no two files call each other
in a circle (scripts/check-layers.py), and the checker does find a circle
when there is one.  vm-run's package (test/vm/ktlsvm) is one too: each
module imports only modules listed below it in test/vm/README."""

import ast
import os
import re
import subprocess
import sys

from helpers import TOP

CHECK = os.path.join(TOP, "scripts", "check-layers.py")


def run(directory):
    return subprocess.run([sys.executable, CHECK, "--list", directory], capture_output=True,
                          text=True)


def test_bridge_files_call_only_downwards():
    r = run(os.path.join(TOP, "ktls-bridge"))
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    listed = {f for line in r.stdout.splitlines() for f in line.split(":", 1)[1].split()}
    want = {f for f in os.listdir(os.path.join(TOP, "ktls-bridge")) if f.endswith(".c")}
    assert listed == want


def test_checker_finds_a_circle(tmp_path):
    (tmp_path / "a.c").write_text("int ktls_a(void)\n{\n\treturn ktls_b();\n}\n")
    (tmp_path / "b.c").write_text("static int helper(void)\n{\n\treturn 0;\n}\n\n"
                                  "int ktls_b(void)\n{\n\treturn ktls_c() + helper();\n}\n")
    (tmp_path / "c.c").write_text("/* ktls_b() is not called here */\n"
                                  "int ktls_c(void)\n{\n\treturn ktls_a();\n}\n")
    (tmp_path / "d.c").write_text("int ktls_d(void)\n{\n\treturn ktls_a();\n}\n")
    r = run(str(tmp_path))
    assert r.returncode == 1, r.stdout
    assert "cycle: a.c b.c c.c" in r.stdout, r.stdout
    assert "c.c -> a.c (ktls_a)" in r.stdout and "d.c" not in r.stdout, r.stdout


def readme_module_order():
    """The modules of test/vm/README's "The vm-run package" list, top first."""
    text = open(os.path.join(TOP, "test", "vm", "README")).read()
    section = text.split("The vm-run package", 1)[1].split("\n\n\n", 1)[0]
    return re.findall(r"^  ([a-z_]+)\.py\s", section, re.M)


def test_vm_run_modules_import_only_downwards():
    pkg = os.path.join(TOP, "test", "vm", "ktlsvm")
    order = readme_module_order()
    modules = sorted(f[:-3] for f in os.listdir(pkg)
                     if f.endswith(".py") and f != "__init__.py")
    assert sorted(order) == modules, "README's list and the package differ"
    upward = []
    for m in modules:
        tree = ast.parse(open(os.path.join(pkg, m + ".py")).read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if order.index(node.module) <= order.index(m):
                    upward.append("%s imports %s" % (m, node.module))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                    else [node.module or ""]
                assert not any(n.startswith("ktlsvm") for n in names), (m, names)
    assert not upward, upward
