"""The "ktls" OpenSSL provider (provider/, ktls-provider(7)): loading,
configuration keys (good values reflected, bad values refused with a message
naming the key), parameters, tracing, the policy's effect on the bridge on
this host, and stock openssl s_server/s_client still working with it.

OpenSSL 3.0 treats a provider that fails to activate from openssl.cnf as a
non-fatal problem: `openssl list -providers` exits 0, the provider is simply
absent, and OpenSSL discards its error stack (even with config_diagnostics).
The provider therefore prints its errors on stderr; the tests assert that.
The project's apps check after loading openssl.cnf that every provider it
activates is active, and otherwise exit before doing anything.
"""

import hashlib
import json
import os
import re
import socket
import subprocess

import pytest

import provider_helpers as ph
from conftest import ktls_skip
from helpers import host_has_ktls, package_version

pytestmark = pytest.mark.host

BOOL_KEYS = ["offload", "tx", "rx", "prestage", "zerocopy_sendfile", "rx_expect_no_pad"]
BOOL_PARAM = {k: "ktls-" + k.replace("_", "-") for k in BOOL_KEYS}


@pytest.fixture(scope="module", autouse=True)
def built():
    if not os.path.exists(ph.MODULE):
        pytest.fail("%s is not built" % ph.MODULE)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return ph.make_cert(tmp_path_factory.mktemp("certs"))


# ------------------------------------------------------------------ loading

def test_module_exports_only_provider_init():
    r = subprocess.run(["nm", "-D", "--defined-only", ph.MODULE], capture_output=True,
                       text=True, check=True)
    syms = [line.split()[-1] for line in r.stdout.splitlines() if line.strip()]
    assert syms == ["OSSL_provider_init"]


def test_listed_active_with_version(tmp_path):
    conf = ph.write_conf(tmp_path)
    r, provs = ph.list_providers(conf)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert provs["ktls"]["name"] == "ktls provider"
    assert provs["ktls"]["version"] == package_version()
    assert provs["ktls"]["status"] == "active"
    assert "ktls-offload" in r.stdout and "ktls-cap-ulp" in r.stdout
    assert provs["default"]["status"] == "active"


def test_openssl_own_keys_accepted(tmp_path):
    conf = ph.write_conf(tmp_path, [("module", ph.MODULE), ("identity", "ktls")])
    r, provs = ph.list_providers(conf)
    assert provs.get("ktls", {}).get("status") == "active", r.stdout + r.stderr


def test_defaults_are_the_bridge_defaults(tmp_path):
    params = ph.provider_params(ph.write_conf(tmp_path))
    for k, v in ph.DEFAULTS.items():
        assert params[k] == v, k
    assert params["name"] == "ktls provider"
    assert params["status"] == "1"


def test_capabilities_match_the_probe(tmp_path):
    params = ph.provider_params(ph.write_conf(tmp_path))
    probe = json.loads(subprocess.run([ph.app("ktls-probe"), "--json"], capture_output=True,
                                      text=True, check=True, timeout=ph.TIMEOUT).stdout)
    assert params["ktls-cap-ulp"] == ("1" if probe["ulp"]["available"] else "0")
    assert params["ktls-cap-ulp-reason"] == probe["ulp"]["reason"]
    assert params["ktls-cap-kernel"] == os.uname().release
    if not probe["ulp"]["available"]:
        for d in ("tx12", "rx12", "tx13", "rx13"):
            assert params["ktls-cap-ciphers-" + d] == ""


# ------------------------------------------------------------ good values

GOOD = [
    ("offload", "off", "ktls-offload", "0"),
    ("offload", "ON", "ktls-offload", "1"),
    ("tx", "no", "ktls-tx", "0"),
    ("tx", "Yes", "ktls-tx", "1"),
    ("rx", "false", "ktls-rx", "0"),
    ("rx", "0", "ktls-rx", "0"),
    ("prestage", "off", "ktls-prestage", "0"),
    ("zerocopy_sendfile", "on", "ktls-zerocopy-sendfile", "1"),
    ("zerocopy_sendfile", "TRUE", "ktls-zerocopy-sendfile", "1"),
    ("rx_expect_no_pad", "1", "ktls-rx-expect-no-pad", "1"),
    ("ciphers", "aes-128-gcm", "ktls-ciphers", "AES-128-GCM"),
    ("ciphers", "CHACHA20-POLY1305:AES-256-GCM", "ktls-ciphers", "AES-256-GCM:CHACHA20-POLY1305"),
    ("ciphers", "AES-256-GCM:CHACHA20-POLY1305", "ktls-cipher-mask", str(0b1010)),
    ("ciphers", "ALL", "ktls-ciphers", ":".join(ph.CIPHERS)),
    ("ciphers", "all", "ktls-cipher-mask", "255"),
    ("ciphers", "SM4-GCM : ARIA-256-GCM", "ktls-ciphers", "SM4-GCM:ARIA-256-GCM"),
    ("tls13", "never", "ktls-tls13", "never"),
    ("tls13", "Always", "ktls-tls13", "always"),
    ("tls13", "auto", "ktls-tls13", "auto"),
    ("keyupdate_records", "0", "ktls-keyupdate-records", "0"),
    ("keyupdate_records", "1000000", "ktls-keyupdate-records", "1000000"),
    ("keyupdate_records", "18446744073709551615", "ktls-keyupdate-records",
     "18446744073709551615"),
    ("storm_limit", "1", "ktls-storm-limit", "1"),
    ("storm_limit", "4294967295", "ktls-storm-limit", "4294967295"),
    ("keyupdate_burst", "0", "ktls-keyupdate-burst", "0"),
    ("keyupdate_burst", "1", "ktls-keyupdate-burst", "1"),
    ("keyupdate_burst", "4294967295", "ktls-keyupdate-burst", "4294967295"),
]


@pytest.mark.parametrize("key,value,param,expected", GOOD,
                         ids=["%s=%s" % (g[0], g[1]) for g in GOOD])
def test_good_value_reflected(tmp_path, key, value, param, expected):
    params = ph.provider_params(ph.write_conf(tmp_path, [(key, value)]))
    assert params[param] == expected
    # every other policy parameter keeps its default
    for k, v in ph.DEFAULTS.items():
        if k not in (param, "ktls-ciphers", "ktls-cipher-mask"):
            assert params[k] == v, k


def test_all_keys_together(tmp_path):
    keys = [("offload", "on"), ("tx", "on"), ("rx", "off"), ("ciphers", "AES-128-GCM"),
            ("tls13", "always"), ("prestage", "off"), ("keyupdate_records", "42"),
            ("storm_limit", "7"), ("keyupdate_burst", "5"), ("zerocopy_sendfile", "on"),
            ("rx_expect_no_pad", "on"), ("debug", "off")]
    params = ph.provider_params(ph.write_conf(tmp_path, keys))
    assert params["ktls-rx"] == "0"
    assert params["ktls-ciphers"] == "AES-128-GCM"
    assert params["ktls-cipher-mask"] == "1"
    assert params["ktls-tls13"] == "always"
    assert params["ktls-prestage"] == "0"
    assert params["ktls-keyupdate-records"] == "42"
    assert params["ktls-storm-limit"] == "7"
    assert params["ktls-keyupdate-burst"] == "5"
    assert params["ktls-zerocopy-sendfile"] == "1"
    assert params["ktls-rx-expect-no-pad"] == "1"


# ------------------------------------------------------------- bad values

BOOL_ACCEPTED = "accepted: on, off, yes, no, true, false, 1, 0"
BAD = [(k, v, BOOL_ACCEPTED) for k in BOOL_KEYS + ["debug"]
       for v in ("maybe", "2", "onn", "")]
BAD += [("tls13", v, "accepted: auto, always, never") for v in ("sometimes", "1.3", "yes", "")]
BAD += [("ciphers", v, "accepted: ALL or a colon-separated list of " + ", ".join(ph.CIPHERS))
        for v in ("AES-512-GCM", "AES-128-GCM::AES-256-GCM", "AES-128-GCM,AES-256-GCM",
                  "AES-128-GCM:", "", "TLS_AES_128_GCM_SHA256")]
BAD += [("keyupdate_records", v, "accepted: an unsigned decimal integer")
        for v in ("-1", "ten", "1e6", "0x10", "18446744073709551616", "5 records", "")]
BAD += [("storm_limit", v, "accepted: an unsigned decimal integer from 1 to 4294967295")
        for v in ("0", "-3", "4294967296", "abc", "")]
BAD += [("keyupdate_burst", v, "accepted: an unsigned decimal integer from 0 to 4294967295")
        for v in ("-1", "4294967296", "x", "1e3", "0x20", "32 updates", "")]


def assert_refused(r, provs, message):
    # OpenSSL 3.0: activation failure is non-fatal; the provider is absent,
    # the command still succeeds, and the provider's stderr copy says why.
    assert r.returncode == 0
    assert "ktls" not in provs
    assert provs["default"]["status"] == "active"
    assert message in r.stderr, r.stderr
    assert "ktls-provider: not activated" in r.stderr


@pytest.mark.parametrize("key,value,accepted", BAD,
                         ids=["%s=%r" % (b[0], b[1]) for b in BAD])
def test_bad_value_refused(tmp_path, key, value, accepted):
    conf = ph.write_conf(tmp_path, [(key, value)])
    r, provs = ph.list_providers(conf)
    assert_refused(r, provs, 'ktls: %s = "%s" is invalid' % (key, value))
    assert accepted in r.stderr
    # a program that wants the provider notices it is missing
    p = ph.run([ph.app("ktls-probe"), "--provider"], conf)
    assert p.returncode == 2


def test_unknown_cipher_is_named(tmp_path):
    r, provs = ph.list_providers(ph.write_conf(tmp_path, [("ciphers", "AES-128-GCM:ROT13")]))
    assert_refused(r, provs, 'ktls: ciphers = "AES-128-GCM:ROT13" is invalid '
                   '(unknown cipher "ROT13")')


def test_every_bad_key_reported(tmp_path):
    conf = ph.write_conf(tmp_path, [("tx", "sideways"), ("storm_limit", "0"),
                                    ("tls13", "sometimes")])
    r, provs = ph.list_providers(conf)
    assert_refused(r, provs, 'ktls: tx = "sideways" is invalid')
    assert 'ktls: storm_limit = "0" is invalid' in r.stderr
    assert 'ktls: tls13 = "sometimes" is invalid; accepted: auto, always, never' in r.stderr
    assert "3 bad configuration keys" in r.stderr


@pytest.mark.parametrize("typo,key", [("storm-limit", "storm_limit"),
                                      ("keyupdate-burst", "keyupdate_burst"),
                                      ("keyupdate-records", "keyupdate_records"),
                                      ("zerocopy-sendfile", "zerocopy_sendfile"),
                                      ("rx-expect-no-pad", "rx_expect_no_pad")])
def test_hyphen_spelling_refused_with_hint(tmp_path, typo, key):
    r, provs = ph.list_providers(ph.write_conf(tmp_path, [(typo, "1")]))
    assert_refused(r, provs, 'ktls: unknown key "%s"; did you mean %s?' % (typo, key))


def test_error_stack_when_loaded_explicitly(tmp_path):
    """A program loading the provider itself (here `openssl list -provider`)
    gets the error on OpenSSL's error stack."""
    conf = ph.write_conf(tmp_path, [("tls13", "sometimes")], activate=False)
    r = ph.run(["openssl", "list", "-providers", "-provider", "default",
                "-provider", "ktls"], conf)
    assert r.returncode != 0
    assert "unable to load provider ktls" in r.stderr
    # the line from OpenSSL's error stack (ERR_print_errors) carries the detail
    stack = [line for line in r.stderr.splitlines() if ":error:" in line]
    assert any('ktls: tls13 = "sometimes" is invalid; accepted: auto, always, never' in line
               for line in stack), r.stderr


# ------------------------------- a configuration that fails stops the apps

# Each app, its arguments (cert, key, port) and the exit status its man page
# gives for a configuration that fails.  None of them gets to serve, connect
# or measure anything.
APP_CONF_ERROR = {
    "ktls-serve": (lambda c, k, p: ["--cert", c, "--key", k, "--port", "0",
                                    "--max-conns", "1"], 1),
    "ktls-client": (lambda c, k, p: ["127.0.0.1:%d" % p], 3),
    "ktls-probe": (lambda c, k, p: [], 2),
    "ktls-bench": (lambda c, k, p: ["--bytes", "64k", "--runs", "1", "--paths", "socket"], 1),
    "ktls-rekey-bench": (lambda c, k, p: ["--bytes", "64k", "--runs", "1"], 1),
}
FAILING_CONF = {
    # the module cannot be loaded
    "missing-module": ([("module", "/nonexistent/ktls.so")], None),
    # the module loads, and its init refuses the setting
    "bad-setting": ([("tls13", "sometimes")],
                    'ktls: tls13 = "sometimes" is invalid'),
}


@pytest.mark.parametrize("case", sorted(FAILING_CONF))
@pytest.mark.parametrize("name", sorted(APP_CONF_ERROR))
def test_failed_activation_stops_app(tmp_path, certs, name, case):
    """OpenSSL itself lets a program run on without a provider that failed
    to activate (see the top of this file); the apps check, say which file
    and provider, and exit with their documented status before any work."""
    keys, provider_says = FAILING_CONF[case]
    conf = ph.write_conf(tmp_path, keys)
    args, status = APP_CONF_ERROR[name]
    with socket.socket() as peer:  # where ktls-client would connect
        peer.bind(("127.0.0.1", 0))
        peer.listen(1)
        peer.setblocking(False)
        argv = [ph.app(name)] + args(certs[0], certs[1], peer.getsockname()[1])
        try:
            r = subprocess.run(argv, env=ph.env_for(conf), capture_output=True, text=True,
                               timeout=10)
        except subprocess.TimeoutExpired as e:
            pytest.fail("%s ran on for 10 s: %r" % (name, e.stderr), pytrace=False)
        with pytest.raises(BlockingIOError):
            peer.accept()
    assert r.returncode == status, r.stderr
    assert "%s: error configuring OpenSSL modules from %s\n" % (name, conf) in r.stderr
    assert '%s: provider "ktls" (section [ktls_sect]' % name in r.stderr
    assert "did not activate" in r.stderr
    if provider_says:
        assert provider_says in r.stderr
    assert "listening" not in r.stderr
    assert r.stdout == ""
    # the status is the one --help and the man page give for it
    usage = subprocess.run([ph.app(name), "--help"], env=ph.env_for(conf),
                           capture_output=True, text=True, timeout=ph.TIMEOUT)
    assert "openssl.cnf" in usage.stdout.split("Exit status:")[1], usage.stdout
    with open(os.path.join(ph.TOP, "man", name + ".1")) as f:
        exit_status = f.read().split(".SH EXIT STATUS\n", 1)[1].split("\n.SH ", 1)[0]
    assert "openssl.cnf" in exit_status


def test_missing_config_file_is_fine():
    r = ph.run([ph.app("ktls-probe"), "--json"], "/nonexistent/openssl.cnf")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert json.loads(r.stdout)["kernel"] == os.uname().release


@pytest.mark.parametrize("keys,said", [
    # a good file: applied, its provider activated
    ([("debug", "on")], "ktls-provider: activated, version"),
    # soft_load: the file lets the provider fail, the app runs on with the
    # bridge's defaults
    ([("tls13", "sometimes"), ("soft_load", "1")], "ktls-provider: not activated"),
], ids=["good", "soft_load-failure"])
def test_config_read_once(tmp_path, keys, said):
    """The apps read openssl.cnf once and libssl does not read it again
    (the provider would then say its line twice)."""
    conf = ph.write_conf(tmp_path, keys)
    r = ph.run([ph.app("ktls-bench"), "--bytes", "64k", "--runs", "1", "--paths", "bridge"],
               conf)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(said) == 1, r.stderr
    assert "error configuring" not in r.stderr


# ---------------------------------------------------------------- tracing

def test_quiet_by_default(tmp_path):
    r, provs = ph.list_providers(ph.write_conf(tmp_path, [("tls13", "never")]))
    assert provs["ktls"]["status"] == "active"
    assert "ktls-provider" not in r.stderr


@pytest.mark.parametrize("how", ["env", "key"])
def test_debug_logs_effective_settings(tmp_path, how):
    keys = [("tls13", "never"), ("storm_limit", "9"), ("keyupdate_burst", "0"),
            ("ciphers", "aes-128-gcm")]
    if how == "key":
        keys.append(("debug", "on"))
    conf = ph.write_conf(tmp_path, keys)
    r = ph.run([ph.app("ktls-probe"), "--provider"], conf, debug=(how == "env"))
    assert r.returncode == 0
    err = r.stderr
    assert "ktls-provider: activated, version %s" % package_version() in err
    for line in ("offload = on", "tx = on", "rx = on", "ciphers = AES-128-GCM",
                 "tls13 = never", "prestage = on", "keyupdate_records = 0",
                 "storm_limit = 9", "keyupdate_burst = 0 (no limit)",
                 "zerocopy_sendfile = off", "rx_expect_no_pad = off"):
        assert "ktls-provider: " + line + "\n" in err or "ktls-provider: " + line + " " in err
    # the probe ran lazily, when ktls-probe asked for a capability
    assert "ktls-provider: capabilities: kernel " + os.uname().release in err
    assert err.index("activated") < err.index("capabilities")


def test_probe_not_run_without_capability_request(tmp_path):
    conf = ph.write_conf(tmp_path)
    r = ph.run(["openssl", "list", "-providers"], conf, debug=True)
    assert "ktls-provider: activated" in r.stderr
    assert "capabilities:" not in r.stderr


# --------------------------------------------- policy effects on the bridge

def status_of(conf, certs, version):
    return ph.bridge_connection(conf, certs[0], certs[1], version)["status"]


def test_policy_offload_off(tmp_path, certs):
    st = status_of(ph.write_conf(tmp_path, [("offload", "off")]), certs, "--tls1_2")
    assert st["tx"]["reason_code"] == "policy-off"
    assert st["rx"]["reason_code"] == "policy-off"
    assert st["tx"]["mode"] == "userspace"


def test_policy_tls13_never(tmp_path, certs):
    res = ph.bridge_connection(ph.write_conf(tmp_path, [("tls13", "never")]),
                               certs[0], certs[1], "--tls1_3")
    assert res["protocol"] == "TLSv1.3"
    assert res["status"]["tx"]["reason_code"] == "tls13-never"


def test_policy_tx_off(tmp_path, certs):
    st = status_of(ph.write_conf(tmp_path, [("tx", "off")]), certs, "--tls1_2")
    assert st["tx"]["reason_code"] == "policy-direction"
    assert st["rx"]["reason_code"] != "policy-direction"


def test_policy_cipher_not_allowed(tmp_path, certs):
    # ECDSA P-256 certificate, TLS 1.2: the apps negotiate AES-256-GCM
    res = ph.bridge_connection(ph.write_conf(tmp_path, [("ciphers", "AES-128-GCM")]),
                               certs[0], certs[1], "--tls1_2")
    assert res["status"]["tx"]["cipher"] == "AES-256-GCM"
    assert res["status"]["tx"]["reason_code"] == "policy-cipher"
    assert res["status"]["rx"]["reason_code"] == "policy-cipher"


def test_defaults_on_this_host(tmp_path, certs):
    if host_has_ktls():
        ktls_skip("this host kernel has kTLS", allowed="host-has-ktls")
    st = status_of(ph.write_conf(tmp_path), certs, "--tls1_2")
    assert st["tx"]["reason_code"] == "ulp-unavailable"
    assert st["rx"]["reason_code"] == "ulp-unavailable"


# ------------------------------------- stock openssl keeps working with it

def start_s_server(env, port, certs, args, cwd, stdout):
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", certs[0],
         "-key", certs[1], "-naccept", "1", "-quiet"] + args,
        env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.PIPE)
    ph.wait_port(port, server)
    return server


def finish(server):
    """Wait for a one-shot s_server; return its stderr."""
    try:
        _, err = server.communicate(timeout=ph.TIMEOUT)  # closes its stdin
        return err
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def s_client(env, port, args, stdin):
    return subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                           "-quiet", "-nocommands"] + args,
                          env=env, input=stdin, capture_output=True, timeout=ph.TIMEOUT)


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_stock_openssl_interop(tmp_path, certs, version):
    """Stock s_client and s_server, both with the provider in their
    configuration, move a 256 KiB random file each way; sha256 compared on
    both ends."""
    conf = ph.write_conf(tmp_path)
    env = ph.env_for(conf, debug=True)  # so that we see the provider was loaded
    data = os.urandom(256 * 1024)
    (tmp_path / "data.bin").write_bytes(data)
    want = hashlib.sha256(data).hexdigest()

    # upload: s_client's stdin -> s_server's stdout
    out = tmp_path / "server.out"
    port = ph.free_port()
    with open(out, "wb") as so:
        server = start_s_server(env, port, certs, [version], str(tmp_path), so)
        cli = s_client(env, port, ["-no_ign_eof", version], data)
        err = finish(server)
    assert cli.returncode == 0, cli.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == want
    assert b"ktls-provider: activated" in err
    assert b"ktls-provider: activated" in cli.stderr

    # download: s_server -WWW serves the file (its stdin is not a reliable
    # source: s_server can stall after 16 KiB of a regular file)
    port = ph.free_port()
    server = start_s_server(env, port, certs, ["-WWW", version], str(tmp_path),
                            subprocess.DEVNULL)
    cli = s_client(env, port, [version], b"GET /data.bin HTTP/1.0\r\n\r\n")
    err = finish(server)
    assert cli.returncode == 0, cli.stderr
    head, _, body = cli.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), head
    assert hashlib.sha256(body).hexdigest() == want
    assert b"ktls-provider: activated" in err
    assert b"ktls-provider: error" not in err + cli.stderr


# ------------------------------------------------- documentation stays true

MAN = os.path.join(ph.TOP, "man", "ktls-provider.7")
EXAMPLE = os.path.join(ph.TOP, "provider", "ktls.cnf.example")
KEYS = BOOL_KEYS + ["ciphers", "tls13", "keyupdate_records", "storm_limit", "keyupdate_burst",
                    "debug"]


def test_example_config_loads_with_the_defaults():
    r, provs = ph.list_providers(EXAMPLE)
    assert provs["ktls"]["status"] == "active", r.stderr
    assert provs["default"]["status"] == "active"
    params = ph.provider_params(EXAMPLE)
    for k, v in ph.DEFAULTS.items():
        assert params[k] == v, k


def test_man_page_documents_every_key_and_param(tmp_path):
    with open(MAN) as f:
        man = f.read().replace("\\-", "-")
    for key in KEYS:
        section = man.split("\n.B %s\n" % key, 1)
        assert len(section) == 2, key
        entry = section[1].split("\n.TP\n", 1)[0]
        assert "Default:" in entry and "Example:" in entry, key
    for param in ph.provider_params(ph.write_conf(tmp_path)):
        # a whole name: "ktls-rx" must not pass inside "ktls-rx-expect-no-pad"
        assert re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(param), man), param
