#!/bin/bash
# liburing-next.sh - build the newest liburing Debian has (forky's, the testing suite,
# else trixie's) from Debian's own source package, so that ktls-serve
# --uring can be built and tested against it as well as against Debian 12's
# liburing 2.3 (test/test_host_liburing_next.py).
#
# The binary packages of the newer suites need a newer glibc, so this takes
# the upstream (orig) tarball of the newest liburing 2.x source package the
# archive serves, through a private apt state in the cache
# (scripts/private-apt.sh: the system's apt configuration and installed
# packages are not touched; the archive addresses are the system's own with
# the suite changed), runs liburing's own ./configure and make, and installs
# the result into the cache (no root, nothing outside the cache).
#
# Usage: scripts/liburing-next.sh [--print-path]
#   --print-path  print the directory if it is built, else exit 1
# stdout: the directory, holding include/, lib/ (liburing.so.2 and
# lib/pkgconfig/liburing.pc) and a file "version" (upstream version).
# Build against it:  PKG_CONFIG_PATH=<dir>/lib/pkgconfig .../configure
# Run against it:    LD_LIBRARY_PATH=<dir>/lib
# Environment: KTLS_LIBURING_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/
# ktls-offload/liburing), KTLS_LIBURING_SUITES (default "forky trixie").
# Exit status: 0 built or cached, 1 not built (--print-path), 2 error,
# 3 the source could not be downloaded (no archive access).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${KTLS_LIBURING_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktls-offload/liburing}
suites=${KTLS_LIBURING_SUITES:-forky trixie}
log() { echo "liburing-next.sh: $*" >&2; }
die() { log "error: $*"; exit 2; }
nosource() { log "error: $*"; exit 3; }
. "$top/scripts/private-apt.sh"
. "$top/contrib/build-lib.sh"

print_path_args 24 "$@"

# cached: the newest complete build's directory
cached() {
	local d
	d=$(ls -d "$cache"/built-* 2>/dev/null | sort -V | tail -n 1)
	[ -n "$d" ] && [ -f "$d/version" ] && [ -f "$d/lib/pkgconfig/liburing.pc" ] &&
		[ -e "$d/lib/liburing.so.2" ] && echo "$d"
}
cached_or_lock "$cache" "$print_only"

need_tools apt-get apt-cache make gcc sha256sum flock tar
work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
# the newest liburing 2.x of the suites (the soname stays liburing.so.2)
fetch_source "$cache/apt" "$work" liburing '2\.' $suites
got=$SRC_VERSION orig=$SRC_ORIG
upstream=${got%%-*}
log "liburing $got (orig $orig)"

out="$cache/built-$upstream"
stage="$work/stage"
src="$work/src"
mkdir "$src"
tar -C "$src" --strip-components=1 -xf "$work/$orig"

log "building liburing $upstream"
start=$SECONDS
# the prefix is where it ends up (the .pc file names it); DESTDIR stages it
(
	cd "$src"
	./configure --prefix="$out" --libdir="$out/lib" --includedir="$out/include" \
		--mandir="$out/share/man" >"$work/configure.log" 2>&1 ||
		{ tail -n 20 "$work/configure.log" >&2; exit 1; }
	make -C src -j"$(nproc)" >"$work/build.log" 2>&1 &&
		make install DESTDIR="$stage" >>"$work/build.log" 2>&1 ||
		{ tail -n 40 "$work/build.log" >&2; exit 1; }
) || die "building liburing $upstream failed"
[ -f "$stage$out/lib/pkgconfig/liburing.pc" ] && [ -e "$stage$out/lib/liburing.so.2" ] ||
	die "liburing $upstream's install has no lib/pkgconfig/liburing.pc or liburing.so.2"
pcv=$(PKG_CONFIG_PATH="$stage$out/lib/pkgconfig" pkg-config --modversion liburing)
[ "$pcv" = "$upstream" ] || log "note: liburing.pc says $pcv, the package $upstream"
rm -rf "$stage$out/share"

rm -rf "$out" "$out.tmp"
mv "$stage$out" "$out.tmp"
echo "$pcv" >"$out.tmp/version"
echo "$got" >"$out.tmp/debian-version"
cp "$work/build.log" "$out.tmp/"
mv "$out.tmp" "$out"
log "built in $((SECONDS - start)) s: $out"
echo "$out"
