#!/bin/bash
# build.sh - configure (once) and build into _build/ (or $KTLS_BUILDDIR).
# Extra arguments go to ./configure on the first run.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${KTLS_BUILDDIR:-$top/_build}

cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
	autoreconf -fi >/dev/null
fi
mkdir -p "$builddir"
cd "$builddir"
if [ ! -f Makefile ]; then
	"$top/configure" -q "$@"
fi
make -s -j"$(nproc)" >/dev/null
echo "build: $builddir" >&2
