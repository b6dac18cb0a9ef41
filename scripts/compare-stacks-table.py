#!/usr/bin/env python3
"""compare-stacks-table.py - the table of scripts/compare-stacks.sh.

Reads the guest outputs that compare-stacks.sh saved (one file per kernel
flavour, named FLAVOUR.out, holding compare-stacks-guest.sh's RES, KERNEL
and VERSION lines) and prints one table: a row per scenario, a column per
server stack and kernel.  A cell is the server's transmit and receive
offload (K: the kernel set the direction up, U: userspace, from the run's
/proc/net/tls_stat deltas) and the result (ok: checked byte for byte, or
the expected alert arrived; drop: the connection ended early; wrong: other
bytes or another alert; n/a: the stack cannot do it).

Usage: compare-stacks-table.py [--markdown] [--details] FLAVOUR.out...
Exit status: 0 printed, 1 a file holds no result, 2 usage."""

import os
import sys

SCENARIOS = [
    ("tls12", "TLS 1.2 transfer, 4 MiB"),
    ("tls13", "TLS 1.3 transfer, 4 MiB"),
    ("ku", "peer KeyUpdate, not requested (every 16 records; GnuTLS: 40)"),
    ("ku-req", "peer KeyUpdate, update_requested (every 16 records; GnuTLS: 40)"),
    ("own-ku", "server's own KeyUpdates"),
    ("ku-1000", "requested KeyUpdate every {every} records over {mib} MiB"),
    ("bad-ku", "malformed KeyUpdate: illegal_parameter received"),
    ("chacha", "ChaCha20-Poly1305, the kernel's module blocked (Debian's kernels)"),
]
STACKS = [("ko-t", "ktls-offload transparent"), ("ko-h", "ktls-offload hand-off"),
          ("ossl30", "openssl s_server 3.0 + KTLS"), ("ossl35", "openssl s_server 3.5 + KTLS"),
          ("gnutls", "gnutls-serv 3.8 + kTLS")]


def parse(path):
    """{"kernel": uname, "versions": {stack: text}, "res": {(stack, scen): fields}}"""
    out = {"kernel": "?", "versions": {}, "res": {}, "done": False, "param": None}
    with open(path, errors="replace") as f:
        for line in f:
            words = line.rstrip("\n").split(" ")
            if words[0] == "KERNEL" and len(words) > 1:
                out["kernel"] = words[1]
            elif words[0] == "VERSION" and len(words) > 2:
                out["versions"][words[1]] = " ".join(words[2:])
            elif words[0] == "RES" and len(words) > 3:
                fields = dict(w.split("=", 1) for w in words[3:] if "=" in w)
                out["res"][(words[1], words[2])] = fields
            elif words[0] == "PARAM" and len(words) == 3:
                out["param"] = {"mib": words[1], "every": words[2]}
            elif words[0] == "DONE":
                out["done"] = True
    return out


def cell(r):
    if r is None:
        return "-"
    if r["result"] == "n/a":
        return "n/a"
    return "%s%s %s" % (r["tx"], r["rx"], r["result"])


def main(argv):
    markdown = "--markdown" in argv
    details = "--details" in argv
    files = [a for a in argv if not a.startswith("--")]
    if not files or any(a.startswith("--") and a not in ("--markdown", "--details")
                        for a in argv):
        print(__doc__.split("\n\n")[-2], file=sys.stderr)
        return 2
    runs = []
    for p in files:
        flavour = os.path.basename(p).rsplit(".", 1)[0]
        got = parse(p)
        if not got["res"]:
            print("compare-stacks-table: %s holds no result" % p, file=sys.stderr)
            return 1
        runs.append((flavour, got))
    stacks = [s for s, _ in STACKS if any((s, sc) in g["res"] for _, g in runs
                                          for sc, _ in SCENARIOS)]
    cols = [(fl, g, s) for fl, g in runs for s in stacks]
    head = ["scenario"] + ["%s %s" % (s, fl) for fl, g, s in cols]
    param = next((g["param"] for _, g in runs if g["param"]), {"mib": "?", "every": "?"})
    rows = [[text.format(**param)] + [cell(g["res"].get((s, sc))) for _, g, s in cols]
            for sc, text in SCENARIOS]
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        w = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        for r in [head] + rows:
            print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
    print()
    for fl, g in runs:
        print("%s: kernel %s%s" % (fl, g["kernel"], "" if g["done"] else
                                    " (the guest did not finish: missing cells)"))
    for s, text in STACKS:
        if s in stacks:
            v = sorted({g["versions"].get(s, "?") for _, g in runs})
            print("%s: %s (%s)" % (s, text, "; ".join(v)))
    if details:
        print()
        for fl, g in runs:
            for (s, sc), r in sorted(g["res"].items()):
                print("%s %s %s: %s %s %s" % (fl, s, sc, r["result"], r.get("detail", ""),
                                             r.get("delta", "")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
