#!/usr/bin/env python3
"""check-layers.py - fail when the C files of a directory call each other
in a circle.

A file depends on another when it calls a non-static ktls_* function
defined there.  The files must form layers: a file may call down, never
back up, so the dependency graph has no cycle.  Prints the layers (lowest
first) with --list; on a cycle prints its files and the calls that close
it, and exits 1.

Usage: check-layers.py [--list] DIR
"""

import os
import re
import sys

DEF = re.compile(r"^(?!static\b)[a-z][\w \t*]*?\b(ktls_\w+)\([^;{]*\)\s*\{", re.M)
CALL = re.compile(r"\b(ktls_\w+)\s*\(")


def strip_comments(text):
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def graph(directory):
    """{file: {(callee file, function), ...}} for the .c files of directory."""
    files = sorted(f for f in os.listdir(directory) if f.endswith(".c"))
    text = {}
    owner = {}
    for f in files:
        with open(os.path.join(directory, f)) as fh:
            text[f] = strip_comments(fh.read())
        for m in DEF.finditer(text[f]):
            owner[m.group(1)] = f
    edges = {f: set() for f in files}
    for f in files:
        for m in CALL.finditer(text[f]):
            to = owner.get(m.group(1))
            if to and to != f:
                edges[f].add((to, m.group(1)))
    return edges


def cycles(edges):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted({t for t, _ in edges[v]}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def layers(edges):
    """Files by layer: 0 calls nothing here, n calls at most layer n-1."""
    level = {}

    def depth(f):
        if f not in level:
            level[f] = 0
            level[f] = 1 + max([depth(t) for t, _ in edges[f]], default=-1)
        return level[f]

    for f in edges:
        depth(f)
    out = {}
    for f, n in level.items():
        out.setdefault(n, []).append(f)
    return [sorted(out[n]) for n in sorted(out)]


def main(argv):
    args = [a for a in argv if a != "--list"]
    if len(args) != 1 or not os.path.isdir(args[0]):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    edges = graph(args[0])
    bad = cycles(edges)
    for comp in bad:
        print("cycle: " + " ".join(comp))
        for f in comp:
            for to, fn in sorted(edges[f]):
                if to in comp:
                    print("    %s -> %s (%s)" % (f, to, fn))
    if bad:
        return 1
    if "--list" in argv:
        for n, files in enumerate(layers(edges)):
            print("layer %d: %s" % (n, " ".join(files)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
