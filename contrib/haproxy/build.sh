#!/bin/bash
# build.sh - build HAProxy with the ktls-bridge delegation (the "ktls" bind
# keyword and the ssl_fc_ktls sample fetch) from Debian's own haproxy source
# package, for tests (test/test_vm_haproxy.py).
#
# The source package comes from the newest Debian suite that has a 3.2.x or
# 3.0.x one and whose orig tarball the archive still serves (forky, then
# trixie), through a private apt state in the cache (scripts/private-apt.sh):
# the system's apt configuration is not touched, nothing is installed from
# those suites, and the archive addresses are the system's own with the
# suite changed.  Only the upstream (orig) tarball is used,
# with contrib/haproxy/patches/ applied in the order of their series file.
# HAProxy is built against this system's OpenSSL 3.0 (libssl-dev) and PCRE2,
# without Lua or systemd, and linked with the libktls-bridge of a build
# directory (found with pkg-config through a generated uninstalled .pc; an
# rpath points at the build tree's .libs).  Missing -dev packages are
# installed with apt-get when run as root.
#
# Usage: contrib/haproxy/build.sh [--print-path]
#   --print-path  print the binary's path if it is built, else exit 1
# stdout: the path of the haproxy binary (next to it: "version", "build.log").
# Cached by (source version, hash of the patches, library build dir + header);
# a second run prints the cached path at once.
# Environment: KTLS_BUILDDIR (default <top>/_build), KTLS_HAPROXY_CACHE
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/ktls-offload/haproxy),
# KTLS_HAPROXY_SUITES (default "forky trixie").
# Exit status: 0 built or cached, 1 not built (--print-path), 2 error,
# 3 the source could not be downloaded (no archive access).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
builddir=${KTLS_BUILDDIR:-$top/_build}
cache=${KTLS_HAPROXY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktls-offload/haproxy}
suites=${KTLS_HAPROXY_SUITES:-forky trixie}
log() { echo "build.sh (haproxy): $*" >&2; }
die() { log "error: $*"; exit 2; }
nosource() { log "error: $*"; exit 3; }
. "$top/scripts/private-apt.sh"
. "$top/contrib/build-lib.sh"

print_path_args 28 "$@"

builddir=$(built_tree "$builddir")
libdir=$builddir/ktls-bridge/.libs

# The key of a build: the patches and the library it links (build dir and
# API header).  The source version joins it once known (below).
patch_hash=$(series_hash "$here/patches")
lib_hash=$(lib_hash "$builddir" "$top")
key="$patch_hash-$lib_hash"

cached() {
	local d
	for d in "$cache"/built-*-"$key"; do
		[ -x "$d/haproxy" ] && [ -f "$d/version" ] && { echo "$d/haproxy"; return 0; }
	done
	return 1
}

cached_or_lock "$cache" "$print_only"

need_tools apt-get apt-cache make gcc patch pkg-config sha256sum flock tar
need_packages libssl-dev libpcre2-dev
work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
# the newest haproxy 3.2.x or 3.0.x
fetch_source "$cache/apt" "$work" haproxy '3\.(2|0)\.' $suites
got=$SRC_VERSION orig=$SRC_ORIG
upstream=${got%%-*}
log "haproxy $got (orig $orig)"

out="$cache/built-$upstream-$key"
src="$work/src"
mkdir "$src"
tar -C "$src" --strip-components=1 -xf "$work/$orig"
apply_series "$here/patches" "$src" "haproxy $upstream"

bridge_pkg_config "$work" "$builddir" "$top"

log "building haproxy $upstream (USE_OPENSSL=1 USE_PCRE2=1 USE_KTLS_BRIDGE=1)"
start=$SECONDS
make -C "$src" -j"$(nproc | awk '{print ($1 > 2) ? 2 : $1}')" TARGET=linux-glibc \
	USE_OPENSSL=1 USE_PCRE2=1 USE_PCRE2_JIT=1 USE_LUA= USE_SYSTEMD= USE_KTLS_BRIDGE=1 \
	KTLS_BRIDGE_LDFLAGS="$(pkg-config --libs ktls-bridge) -Wl,-rpath,$libdir" \
	>"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; die "building haproxy $upstream failed"; }
"$src/haproxy" -vv >"$work/vv" 2>&1 || die "the built haproxy does not run: $(cat "$work/vv")"
grep -q 'USE_KTLS_BRIDGE=1\|+KTLS_BRIDGE' "$work/vv" || die "haproxy $upstream was built without USE_KTLS_BRIDGE"

rm -rf "$out" "$out.tmp"
mkdir "$out.tmp"
cp "$src/haproxy" "$out.tmp/"
cp "$work/build.log" "$work/vv" "$out.tmp/"
echo "$got" >"$out.tmp/version"
mv "$out.tmp" "$out"
log "built in $((SECONDS - start)) s: $out/haproxy"
echo "$out/haproxy"
