"""The man pages cover the interface: every function declared in
ktls-bridge/ktls-bridge.h has man/NAME.3 (a page of its own or a `.so`
alias to the page it shares), every app in apps/ has a section-1 page that
names each long option its --help prints, every page is installed through
man/Makefile.am's dist_man_MANS, and every page renders with groff -ww
without a warning.

The --help check runs the built tools in KTLS_BUILDDIR (default
<top>/_build) and skips when they are not built."""

import glob
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILDDIR, TOP, ktls_skip

pytestmark = pytest.mark.host

MAN = os.path.join(TOP, "man")
HEADER = os.path.join(TOP, "ktls-bridge", "ktls-bridge.h")
APPS = sorted(os.path.splitext(os.path.basename(p))[0]
              for p in glob.glob(os.path.join(TOP, "apps", "ktls-*.c")))
SO_RE = re.compile(r"^\.so\s+man(\d)/(\S+)\s*$")


def public_functions():
    with open(HEADER) as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)  # comments name functions too
    text = re.sub(r"//[^\n]*", " ", text)
    return sorted(set(re.findall(r"\b(ktls_[a-z0-9_]+)\s*\(", text)))


def pages():
    return sorted(p for p in glob.glob(os.path.join(MAN, "*.[1-8]")))


def so_target(path):
    """The page a `.so` alias points to (a path in man/), or None."""
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if l.strip() and not l.startswith('.\\"')]
    if len(lines) == 1:
        m = SO_RE.match(lines[0])
        if m:
            return os.path.join(MAN, m.group(2))
    return None


def roff_text(path):
    """Page source with the usual escapes undone, for plain-text searches."""
    with open(path) as f:
        text = f.read()
    for esc, plain in (("\\-", "-"), ("\\(hy", "-"), ("\\(em", "-"), ("\\&", ""),
                       ("\\e", "\\")):
        text = text.replace(esc, plain)
    return text


def name_section(path):
    text = roff_text(path)
    m = re.search(r"^\.SH NAME\n(.*?)^\.SH ", text, re.S | re.M)
    assert m, "%s has no NAME section" % os.path.basename(path)
    return m.group(1)


def test_header_parse_finds_functions():
    funcs = public_functions()
    assert len(funcs) >= 20, funcs
    assert "ktls_conn_attach" in funcs and "ktls_probe_refresh" in funcs


@pytest.mark.parametrize("func", public_functions())
def test_function_has_page(func):
    page = os.path.join(MAN, func + ".3")
    assert os.path.isfile(page), "man/%s.3 is missing" % func
    target = so_target(page) or page
    assert os.path.isfile(target), "%s: .so target %s is missing" % (page, target)
    assert so_target(target) is None, "%s: .so chain" % page
    assert re.search(r"\b%s\b" % re.escape(func), name_section(target)), \
        "%s is not in the NAME section of %s" % (func, os.path.basename(target))


def test_overview_page():
    assert os.path.isfile(os.path.join(MAN, "ktls-bridge.3"))


def test_apps_found():
    assert APPS == ["ktls-bench", "ktls-client", "ktls-probe", "ktls-rekey-bench", "ktls-serve"]


@pytest.mark.parametrize("app", APPS)
def test_app_has_page(app):
    assert os.path.isfile(os.path.join(MAN, app + ".1")), "man/%s.1 is missing" % app


@pytest.mark.parametrize("app", APPS)
def test_app_long_options_documented(app):
    exe = os.path.join(BUILDDIR, "apps", app)
    if not os.access(exe, os.X_OK):
        ktls_skip("%s is not built (KTLS_BUILDDIR=%s)" % (app, BUILDDIR))
    r = subprocess.run([exe, "--help"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    assert r.returncode == 0, "%s --help: exit %d\n%s" % (app, r.returncode, r.stderr)
    opts = sorted(set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9_-]*)", r.stdout)))
    assert "--help" in opts, r.stdout
    text = roff_text(os.path.join(MAN, app + ".1"))
    missing = [o for o in opts
               if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), text)]
    assert not missing, "man/%s.1 lacks %s" % (app, ", ".join(missing))


def test_pages_are_installed():
    with open(os.path.join(MAN, "Makefile.am")) as f:
        am = f.read().replace("\\\n", " ")
    m = re.search(r"^dist_man_MANS\s*=(.*)$", am, re.M)
    assert m, "man/Makefile.am has no dist_man_MANS"
    listed = set(m.group(1).split())
    present = {os.path.basename(p) for p in pages()}
    assert not present - listed, "not in dist_man_MANS: %s" % sorted(present - listed)
    assert not listed - present, "listed but missing: %s" % sorted(listed - present)


@pytest.mark.parametrize("page", [os.path.basename(p) for p in pages()])
def test_page_renders_without_warnings(page):
    if not shutil.which("groff"):
        ktls_skip("groff is not installed")
    path = os.path.join(MAN, page)
    target = so_target(path)
    if target:
        assert os.path.isfile(target), "%s: .so target missing" % page
        path = target
    r = subprocess.run(["groff", "-t", "-man", "-ww", "-z", "-Tutf8", path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60,
                       env=dict(os.environ, LC_ALL="C.UTF-8"))
    assert r.returncode == 0 and not r.stderr.strip(), \
        "groff -ww %s:\n%s" % (page, r.stderr)
