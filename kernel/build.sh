#!/bin/sh
# SPDX-License-Identifier: MIT
#
# kernel/build.sh - build the patched-6.12 guest kernel (bzImage).
#
# Unpacks Debian's linux-source-6.12 into a cache directory outside the
# source tree, applies kernel/series (quilt-style, patch -p1), merges
# kernel/config.fragment onto `make tinyconfig` and builds a bzImage with
# everything built in (no modules).  The result is cached under a key made
# from the source package version, every patch, the config fragment and
# this script; an unchanged input set is not rebuilt.
#
# Usage: kernel/build.sh [--kasan] [--print-path] [--keep-tree]
#   --kasan       build the KASAN + kmemleak variant (cached separately)
#   --print-path  print the cached bzImage path if it is built, else exit 1
#   --keep-tree   keep the build tree next to the cached image (for
#                 incremental work, selftests and `make headers_install`)
#
# stdout: the bzImage path as the last line.  Diagnostics go to stderr.
# Next to the bzImage: config, source-version, headers/include (patched UAPI
# headers) and tls-selftest (static tools/testing/selftests/net/tls.c).
# Environment: KTLS_KERNEL_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/
# ktls-offload/kernel), KTLS_KERNEL_SRC (tarball; default
# /usr/src/linux-source-6.12.tar.xz), KTLS_KERNEL_JOBS (default nproc).

set -eu

PKG=linux-source-6.12
here=$(cd "$(dirname "$0")" && pwd)
cache=${KTLS_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktls-offload/kernel}
tarball=${KTLS_KERNEL_SRC:-/usr/src/$PKG.tar.xz}
jobs=${KTLS_KERNEL_JOBS:-$(nproc)}
kasan=0
print_only=0
keep_tree=0

log() { echo "build.sh: $*" >&2; }
die() { log "error: $*"; exit 2; }

for arg in "$@"; do
	case $arg in
	--kasan) kasan=1 ;;
	--print-path) print_only=1 ;;
	--keep-tree) keep_tree=1 ;;
	-h|--help) sed -n '3,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
	*) die "unknown argument: $arg" ;;
	esac
done

# One build at a time (builds are CPU-bound): concurrent callers wait here,
# then hash the inputs as they are now and reuse what the first one built.
if [ "$print_only" = 0 ] && command -v flock >/dev/null; then
	mkdir -p "$cache"
	exec 9>"$cache/.lock"
	flock 9 || die "cannot lock $cache/.lock"
fi

# The tools kbuild and headers_install run (scripts/deps.sh installs them).
if [ "$print_only" = 0 ]; then
	need=
	for t in make gcc flex bison bc perl rsync; do
		command -v "$t" >/dev/null || need="$need $t"
	done
	[ -z "$need" ] || die "missing build tools:$need (run scripts/deps.sh,"\
" or apt-get install build-essential flex bison bc libelf-dev rsync)"
fi

pkg_version() {
	dpkg-query -W -f='${Version}' "$PKG" 2>/dev/null || true
}

version=$(pkg_version)
if [ -z "$version" ] || [ ! -f "$tarball" ]; then
	[ "$print_only" = 1 ] && exit 1
	log "$PKG is not installed; installing it with apt-get"
	if [ "$(id -u)" = 0 ]; then
		apt-get install -y "$PKG" >&2 || die "apt-get install $PKG failed"
	else
		sudo -n apt-get install -y "$PKG" >&2 ||
			die "install $PKG (apt-get install $PKG) and retry"
	fi
	version=$(pkg_version)
	[ -f "$tarball" ] || die "$tarball missing after installing $PKG"
fi

# The cache key: everything that can change the image.
series="$here/series"
[ -f "$series" ] || die "missing $series"
patches=$(grep -v '^[[:space:]]*#' "$series" | sed '/^[[:space:]]*$/d')
key=$(
	{
		echo "pkg $PKG $version kasan=$kasan"
		for p in $patches; do
			echo "patch $p"
			cat "$here/$p" || exit 1
		done
		echo "fragment"
		cat "$here/config.fragment"
		echo "build.sh"
		cat "$here/build.sh"
	} | sha256sum | cut -c1-16
) || die "cannot hash the inputs (a patch listed in series is missing?)"

variant=patched
[ "$kasan" = 1 ] && variant=kasan
out="$cache/$variant-$key"
image="$out/bzImage"

if [ -f "$image" ]; then
	[ "$print_only" = 1 ] || log "cached: $image"
	echo "$image"
	exit 0
fi
[ "$print_only" = 1 ] && exit 1

mkdir -p "$cache"
tree="$out.tree"
rm -rf "$tree" "$out.tmp"
mkdir -p "$tree"
trap 'rm -rf "$out.tmp"; [ "$keep_tree" = 1 ] || rm -rf "$tree"' EXIT

start=$(date +%s)
log "unpacking $tarball ($version) into $tree"
tar -C "$tree" --strip-components=1 -xf "$tarball" || die "cannot unpack $tarball"

for p in $patches; do
	[ -f "$here/$p" ] || die "patch listed in series is missing: $p"
	if ! patch -p1 -N -s --dry-run -d "$tree" <"$here/$p" >&2; then
		die "patch does not apply: $p"
	fi
	patch -p1 -N -s -d "$tree" <"$here/$p" >&2 || die "patch failed: $p"
	log "applied $p"
done

log "configuring (tinyconfig + config.fragment)"
frag="$here/config.fragment"
if [ "$kasan" = 1 ]; then
	frag="$tree/.ktls-fragment"
	cat "$here/config.fragment" >"$frag"
	cat >>"$frag" <<'EOF'
CONFIG_DEBUG_KERNEL=y
CONFIG_KASAN=y
CONFIG_KASAN_GENERIC=y
CONFIG_KASAN_INLINE=y
CONFIG_DEBUG_KMEMLEAK=y
CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN=y
CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE=16000
CONFIG_STACKTRACE=y
CONFIG_DEBUG_FS=y
CONFIG_SLUB_DEBUG=y
CONFIG_KALLSYMS=y
# CONFIG_SLUB_TINY is not set
# CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF is not set
EOF
fi
make -C "$tree" -s tinyconfig >&2
"$tree/scripts/kconfig/merge_config.sh" -m -O "$tree" "$tree/.config" "$frag" >&2
make -C "$tree" -s olddefconfig >&2

# Every =y the fragment asks for must have survived olddefconfig.
missing=$(grep '^CONFIG_.*=y$' "$frag" | while read -r line; do
	grep -qx "$line" "$tree/.config" || echo "${line%=y}"
done)
[ -z "$missing" ] || die "config options not satisfied: $(echo $missing)"

log "building bzImage with -j$jobs"
make -C "$tree" -j"$jobs" bzImage >"$tree/.build.log" 2>&1 || {
	tail -n 40 "$tree/.build.log" >&2
	die "kernel build failed (log: $tree/.build.log)"
}

mkdir -p "$out.tmp"
cp "$tree/arch/x86/boot/bzImage" "$out.tmp/bzImage"

# Beside the image: the patched UAPI headers and the static net/tls
# selftest binary, for the guest tests (test/test_kernel_series.py).
log "installing headers, building the static tls selftest"
make -C "$tree" -s headers_install INSTALL_HDR_PATH="$out.tmp/headers" >&2 ||
	die "make headers_install failed"
gcc -static -O2 -Wall -pthread -I"$out.tmp/headers/include" \
	-o "$out.tmp/tls-selftest" "$tree/tools/testing/selftests/net/tls.c" >&2 ||
	die "cannot build the tls selftest (gcc -static)"
cp "$tree/.config" "$out.tmp/config"
echo "$version" >"$out.tmp/source-version"
rm -rf "$out"
mv "$out.tmp" "$out"
log "built in $(( $(date +%s) - start ))s: $image"
echo "$image"
