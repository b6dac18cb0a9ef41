#!/bin/bash
# build.sh - configure (once) and build into _build/ (or $KTLS_BUILDDIR).
# Extra arguments go to ./configure; it runs again when they differ from
# the last run's (a stale _build-asan must not lose --enable-sanitizers).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${KTLS_BUILDDIR:-$top/_build}

cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
	autoreconf -fi >/dev/null
fi
mkdir -p "$builddir"
cd "$builddir"
if [ ! -f Makefile ] || [ "$(cat .configure-args 2>/dev/null)" != "$*" ]; then
	"$top/configure" -q "$@"
	printf '%s' "$*" > .configure-args
fi
make -s -j"$(nproc)" >/dev/null
echo "build: $builddir" >&2
