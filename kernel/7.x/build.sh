#!/bin/bash
# SPDX-License-Identifier: MIT
#
# kernel/7.x/build.sh - build the patched-7 guest kernel (bzImage).
#
# The 7.x sibling of kernel/build.sh (which builds the 6.12 series): the
# same steps and outputs, but the source is Debian's linux-source-7.N named
# in kernel/7.x/source, which Debian 12's apt does not list.  It is fetched
# with `apt-get download` through an apt state of our own
# (scripts/private-apt.sh: the system's Debian entries with the suite
# changed) into the cache and unpacked there with dpkg-deb -x; the system's
# apt configuration and installed packages are not touched.  The series
# (kernel/7.x/series, patch -p1) goes on top of mainline's own TLS 1.3
# re-key code; kernel/7.x/config.fragment is merged onto `make tinyconfig`;
# everything is built in (no modules).  The result is cached under a key
# made from the source package version, every patch, the config fragment
# and this script.
#
# Usage: kernel/7.x/build.sh [--kasan] [--print-path] [--keep-tree]
#   --kasan       build the KASAN + kmemleak variant (cached separately)
#   --print-path  print the cached bzImage path if it is built, else exit 1
#   --keep-tree   keep the build tree next to the cached image
#
# stdout: the bzImage path as the last line.  Diagnostics go to stderr.
# Next to the bzImage: config, source-version, headers/include (patched UAPI
# headers), tls-selftest (static tools/testing/selftests/net/tls.c) and
# checkpatch.txt (scripts/checkpatch.pl --strict of each patch).
# Environment: KTLS_KERNEL_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/
# ktls-offload/kernel), KTLS_KERNEL7_SRC (a linux-source-7.N tarball to use
# instead of fetching; its version is then read from its Makefile),
# KTLS_KERNEL_JOBS (default nproc).

set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cache=${KTLS_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktls-offload/kernel}
jobs=${KTLS_KERNEL_JOBS:-$(nproc)}
kasan=0
print_only=0
keep_tree=0

log() { echo "7.x/build.sh: $*" >&2; }
die() { log "error: $*"; exit 2; }

for arg in "$@"; do
	case $arg in
	--kasan) kasan=1 ;;
	--print-path) print_only=1 ;;
	--keep-tree) keep_tree=1 ;;
	-h|--help) sed -n '3,30p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
	*) die "unknown argument: $arg" ;;
	esac
done

read -r pkg version suites <<<"$(grep -v '^#' "$here/source" | head -n1)"
[ -n "$pkg" ] && [ -n "$version" ] && [ -n "$suites" ] ||
	die "cannot read package, version and suites from $here/source"
srcdir="$cache/src/${pkg}_$version"
tarball=${KTLS_KERNEL7_SRC:-$srcdir/usr/src/$pkg.tar.xz}
if [ -n "${KTLS_KERNEL7_SRC:-}" ]; then
	[ -f "$tarball" ] || die "KTLS_KERNEL7_SRC=$tarball: no such file"
	version="tarball $(sha256sum <"$tarball" | cut -c1-16)"
fi

if [ "$print_only" = 0 ]; then
	mkdir -p "$cache"
	exec 9>"$cache/.lock"
	flock 9 || die "cannot lock $cache/.lock"
	need=
	for t in make gcc flex bison bc perl rsync apt-get dpkg-deb; do
		command -v "$t" >/dev/null || need="$need $t"
	done
	[ -z "$need" ] ||
		die "missing build tools:$need (run scripts/deps.sh, or apt-get install" \
			"build-essential flex bison bc libelf-dev rsync apt dpkg)"
fi

# The cache key: everything that can change the image.
patches=$(grep -v '^[[:space:]]*#' "$here/series" | sed '/^[[:space:]]*$/d')
key=$(
	{
		echo "pkg $pkg $version kasan=$kasan"
		for p in $patches; do
			echo "patch $p"
			cat "$here/$p" || exit 1
		done
		echo "fragment"
		cat "$here/config.fragment"
		[ "$kasan" = 0 ] || cat "$here/kasan.fragment"
		echo "build.sh"
		cat "$here/build.sh"
	} | sha256sum | cut -c1-16
) || die "cannot hash the inputs (a patch listed in series is missing?)"

variant=patched7
[ "$kasan" = 1 ] && variant=kasan7
out="$cache/$variant-$key"
image="$out/bzImage"

if [ -f "$image" ]; then
	[ "$print_only" = 1 ] || log "cached: $image"
	echo "$image"
	exit 0
fi
[ "$print_only" = 1 ] && exit 1

# The source: apt-get download through a private apt state, dpkg-deb -x.
if [ ! -f "$tarball" ]; then
	log "fetching $pkg=$version (suites: $suites)"
	# shellcheck source=../../scripts/private-apt.sh
	. "$top/scripts/private-apt.sh"
	# shellcheck disable=SC2086  # suites is a list of words
	private_apt_init "$cache/src/apt" deb $suites || die "no apt sources to derive $suites from"
	# Some derived entries (e.g. SUITE-security) do not exist: what counts
	# is that the package can be downloaded.
	apt-get "${PRIVATE_APT[@]}" -qq update >&2 || log "apt-get update reported errors (above)"
	rm -rf "$srcdir.tmp"
	mkdir -p "$srcdir.tmp"
	(cd "$srcdir.tmp" && apt-get "${PRIVATE_APT[@]}" -q download "$pkg=$version" >&2) ||
		die "apt-get download $pkg=$version failed (is it still in $suites?)"
	dpkg-deb -x "$srcdir.tmp"/*.deb "$srcdir.tmp/root" || die "dpkg-deb -x failed"
	[ -f "$srcdir.tmp/root/usr/src/$pkg.tar.xz" ] || die "$pkg has no usr/src/$pkg.tar.xz"
	rm -rf "$srcdir"
	mv "$srcdir.tmp/root" "$srcdir"
	rm -rf "$srcdir.tmp"
fi

tree="$out.tree"
rm -rf "$tree" "$out.tmp"
mkdir -p "$tree"
trap 'rm -rf "$out.tmp"; [ "$keep_tree" = 1 ] || rm -rf "$tree"' EXIT

start=$(date +%s)
log "unpacking $tarball ($version) into $tree"
tar -C "$tree" --strip-components=1 -xf "$tarball" || die "cannot unpack $tarball"

for p in $patches; do
	[ -f "$here/$p" ] || die "patch listed in series is missing: $p"
	patch -p1 -N -s --dry-run -d "$tree" <"$here/$p" >&2 || die "patch does not apply: $p"
	patch -p1 -N -s -d "$tree" <"$here/$p" >&2 || die "patch failed: $p"
	log "applied $p"
done

# checkpatch.pl --strict of every patch, from the tree they apply to;
# kept beside the image for test/test_kernel_series.py.
for p in $patches; do
	echo "== $p"
	(cd "$tree" && perl scripts/checkpatch.pl --strict --no-color "$here/$p") || true
done >"$tree/.checkpatch.txt" 2>&1

log "configuring (tinyconfig + config.fragment)"
frag="$here/config.fragment"
if [ "$kasan" = 1 ]; then
	frag="$tree/.ktls-fragment"
	cat "$here/config.fragment" "$here/kasan.fragment" >"$frag"
fi
make -C "$tree" -s tinyconfig >&2
"$tree/scripts/kconfig/merge_config.sh" -m -O "$tree" "$tree/.config" "$frag" >&2
make -C "$tree" -s olddefconfig >&2

# Every =y of the fragment must have survived olddefconfig.
missing=$(grep '^CONFIG_.*=y$' "$frag" | while read -r line; do
	grep -qx "$line" "$tree/.config" || echo "${line%=y}"
done)
[ -z "$missing" ] || die "config options not satisfied: $(echo "$missing" | tr '\n' ' ')"

log "building bzImage with -j$jobs"
make -C "$tree" -j"$jobs" bzImage >"$tree/.build.log" 2>&1 || {
	tail -n 40 "$tree/.build.log" >&2
	die "kernel build failed (log: $tree/.build.log)"
}

mkdir -p "$out.tmp"
cp "$tree/arch/x86/boot/bzImage" "$out.tmp/bzImage"

log "installing headers, building the static tls selftest"
make -C "$tree" -s headers_install INSTALL_HDR_PATH="$out.tmp/headers" >&2 ||
	die "make headers_install failed"
gcc -static -O2 -Wall -pthread -I"$out.tmp/headers/include" \
	-I"$tree/tools/testing/selftests" \
	-o "$out.tmp/tls-selftest" "$tree/tools/testing/selftests/net/tls.c" >&2 ||
	die "cannot build the tls selftest (gcc -static)"
cp "$tree/.config" "$out.tmp/config"
cp "$tree/.checkpatch.txt" "$out.tmp/checkpatch.txt"
echo "$pkg $version" >"$out.tmp/source-version"
rm -rf "$out"
mv "$out.tmp" "$out"
log "built in $(( $(date +%s) - start ))s: $image"
echo "$image"
