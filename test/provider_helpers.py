"""Helpers for the "ktls" provider tests: generated openssl.cnf files, the
build's provider module, and the apps run against a configuration.

The build directory is $KTLS_BUILDDIR (default <top>/_build); the provider
is loaded from <builddir>/provider/.libs through OPENSSL_MODULES.
"""

import json
import os
import re
import select
import subprocess
import time

from helpers import app, free_port, make_cert, wait_port  # noqa: F401  (one copy of each)

TEST_DIR = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(TEST_DIR)
BUILDDIR = os.environ.get("KTLS_BUILDDIR") or os.path.join(TOP, "_build")
MODULES = os.path.join(BUILDDIR, "provider", ".libs")
MODULE = os.path.join(MODULES, "ktls.so")
APPS = os.path.join(BUILDDIR, "apps")

TIMEOUT = 30

# The bridge's defaults (ktls_policy_default), as provider parameters.
CIPHERS = ["AES-128-GCM", "AES-256-GCM", "AES-128-CCM", "CHACHA20-POLY1305",
           "SM4-GCM", "SM4-CCM", "ARIA-128-GCM", "ARIA-256-GCM"]
DEFAULTS = {
    "ktls-offload": "1",
    "ktls-tx": "1",
    "ktls-rx": "1",
    "ktls-ciphers": ":".join(CIPHERS),
    "ktls-cipher-mask": str((1 << len(CIPHERS)) - 1),
    "ktls-tls13": "auto",
    "ktls-prestage": "1",
    "ktls-keyupdate-records": "0",
    "ktls-storm-limit": "1000",
    "ktls-keyupdate-burst": "32",
    "ktls-zerocopy-sendfile": "0",
    "ktls-rx-expect-no-pad": "0",
}


def write_conf(directory, keys=(), name="openssl.cnf", default=True, activate=True,
               extra=""):
    """An openssl.cnf that loads "ktls" with the (key, value) pairs given,
    activating "default" too unless default=False."""
    lines = ["openssl_conf = openssl_init", "", "[openssl_init]",
             "providers = provider_sect", "", "[provider_sect]"]
    if default:
        lines.append("default = default_sect")
    lines += ["ktls = ktls_sect", ""]
    if default:
        lines += ["[default_sect]", "activate = 1", ""]
    lines.append("[ktls_sect]")
    if activate:
        lines.append("activate = 1")
    for k, v in (keys.items() if isinstance(keys, dict) else keys):
        lines.append("%s = %s" % (k, v))
    lines.append(extra)
    path = os.path.join(str(directory), name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def env_for(conf, debug=False):
    env = dict(os.environ)
    env.pop("KTLS_PROVIDER_DEBUG", None)
    env["OPENSSL_CONF"] = conf
    env["OPENSSL_MODULES"] = MODULES
    if debug:
        env["KTLS_PROVIDER_DEBUG"] = "1"
    return env


def run(argv, conf, debug=False, **kw):
    return subprocess.run(argv, env=env_for(conf, debug), capture_output=True, text=True,
                          timeout=TIMEOUT, **kw)


def list_providers(conf, debug=False):
    """`openssl list -providers -verbose`: (result, {name: {field: value}})."""
    r = run(["openssl", "list", "-providers", "-verbose"], conf, debug)
    provs, cur = {}, None
    for line in r.stdout.splitlines():
        m = re.match(r"^  (\S+)$", line)
        if m:
            cur = provs.setdefault(m.group(1), {})
            continue
        m = re.match(r"^    ([a-z][a-z ]*): (.*)$", line)
        if m and cur is not None:
            cur[m.group(1)] = m.group(2)
    return r, provs


def provider_params(conf):
    """`ktls-probe --provider --json`: the provider's parameters (all strings)."""
    r = run([app("ktls-probe"), "--provider", "--json"], conf)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_line(proc, pattern, timeout=TIMEOUT):
    """Read proc.stderr until a line matches pattern; return the match."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m
    raise AssertionError("no line matching %r; got: %r" % (pattern, "".join(seen)))


def bridge_connection(conf, cert, key, version, nbytes=65536):
    """One echo connection ktls-client -> ktls-serve, both under conf.
    Returns the client's --json result (its own connection's status)."""
    serve = subprocess.Popen([app("ktls-serve"), "--cert", cert, "--key", key, "--port", "0",
                              "--echo", "--max-conns", "1", version],
                             env=env_for(conf), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        port = wait_line(serve, r"listening on 127\.0\.0\.1:(\d+)").group(1)
        r = run([app("ktls-client"), "--bytes", str(nbytes), "--json", version,
                 "127.0.0.1:" + port], conf)
        assert r.returncode == 0, r.stdout + r.stderr
        serve.wait(timeout=TIMEOUT)
        return json.loads(r.stdout)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        serve.stderr.close()


