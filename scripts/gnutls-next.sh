#!/bin/bash
# gnutls-next.sh - build the newest GnuTLS 3.8 Debian has (forky's, the
# testing suite, else trixie's) with kTLS compiled in, as a second TLS stack
# to set against the bridge: gnutls-serv and gnutls-cli that run on Debian
# 12, here and in the qemu guests, through LD_LIBRARY_PATH.
#
# Debian 12's GnuTLS 3.7.9 has kTLS too, but drops a kTLS connection at the
# first KeyUpdate; 3.8.10 and later re-key the kernel (Linux 6.14 and
# later).  The binary packages of the newer suites need a newer glibc, so
# this takes the upstream (orig) tarballs of the newest GnuTLS 3.8 source
# package the archive serves, and of the nettle it needs (3.8.x wants a
# newer one than Debian 12's 3.8.1; the sonames are the same), through a
# private apt state in the cache (scripts/private-apt.sh: the system's apt
# configuration and installed packages are not touched; the archive
# addresses are the system's own with the suite changed), builds both with
# their own configure and make, and keeps what the two programs need in
# the cache (no root, nothing outside the cache).  Every other library is
# Debian 12's own, which GnuTLS 3.7.9 links as well.
#
# Usage: scripts/gnutls-next.sh [--print-path]
#   --print-path  print the directory if it is built, else exit 1
# stdout: the directory, relocatable as a whole (no RUNPATH), holding
#   bin/gnutls-serv, bin/gnutls-cli
#   lib/           libgnutls.so.30, libnettle.so.8, libhogweed.so.6
#   ktls.conf      a GnuTLS system configuration turning kTLS on
#   version        GnuTLS's upstream version (nettle-version: nettle's)
# Run:  LD_LIBRARY_PATH=<dir>/lib GNUTLS_SYSTEM_PRIORITY_FILE=<dir>/ktls.conf \
#         <dir>/bin/gnutls-serv ...
# (without that variable the file read is /etc/gnutls/config, as Debian's,
# and kTLS is off: GnuTLS enables it only when the configuration says so).
# Environment: KTLS_GNUTLS_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/
# ktls-offload/gnutls), KTLS_GNUTLS_SUITES (default "forky trixie").
# Exit status: 0 built or cached, 1 not built (--print-path), 2 error,
# 3 the source could not be downloaded (no archive access).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${KTLS_GNUTLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktls-offload/gnutls}
suites=${KTLS_GNUTLS_SUITES:-forky trixie}
log() { echo "gnutls-next.sh: $*" >&2; }
die() { log "error: $*"; exit 2; }
nosource() { log "error: $*"; exit 3; }
. "$top/scripts/private-apt.sh"
. "$top/contrib/build-lib.sh"

print_path_args 34 "$@"

# cached: the newest complete build's directory
cached() {
	local d
	d=$(ls -d "$cache"/built-* 2>/dev/null | sort -V | tail -n 1)
	[ -n "$d" ] && [ -f "$d/version" ] && [ -f "$d/ktls.conf" ] &&
		[ -x "$d/bin/gnutls-serv" ] && [ -x "$d/bin/gnutls-cli" ] &&
		[ -e "$d/lib/libgnutls.so.30" ] && echo "$d"
}
cached_or_lock "$cache" "$print_only"

need_tools apt-get apt-cache make gcc m4 pkg-config readelf sha256sum flock tar xz
# what Debian 12's own GnuTLS links (hogweed needs gmp)
need_packages libgmp-dev libtasn1-6-dev libunistring-dev libidn2-dev libp11-kit-dev
work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
# the newest GnuTLS 3.8 of the suites (the soname stays libgnutls.so.30)
fetch_source "$cache/apt" "$work" gnutls28 '3\.8\.' $suites
got=$SRC_VERSION orig=$SRC_ORIG
upstream=${got%%-*}
log "gnutls $got (orig $orig)"
src="$work/src"
mkdir "$src"
tar -C "$src" --strip-components=1 -xf "$work/$orig"

# the nettle it asks for: the newest 3.x (libnettle.so.8, libhogweed.so.6,
# Debian 12's sonames) of the same suites, at least GnuTLS's minimum
nmin=$(sed -n 's/^ *NETTLE_MINIMUM=\([0-9.]*\).*/\1/p' "$src/configure.ac" "$src/m4/hooks.m4" |
	head -n 1)
[ -n "$nmin" ] || die "gnutls $upstream's configure names no NETTLE_MINIMUM"
ncands=$(private_apt_orig nettle '3\.' | while read -r v o s; do
	dpkg --compare-versions "${v%%-*}" ge "$nmin" && echo "$v $o $s"; done)
[ -n "$ncands" ] || nosource "no nettle >= $nmin source package in $suites"
ngot=$(private_apt_fetch_orig "$work" nettle "$ncands") ||
	nosource "could not download any nettle >= $nmin orig tarball from $suites"
read -r nver norig <<<"$ngot"
nup=${nver%%-*}
log "nettle $nver (orig $norig; gnutls $upstream wants >= $nmin)"

out="$cache/built-$upstream"
stage="$work/stage"
nsrc="$work/nettle-src"
nettle="$work/nettle"
mkdir "$nsrc"
tar -C "$nsrc" --strip-components=1 -xf "$work/$norig"

log "building nettle $nup and gnutls $upstream (--enable-ktls)"
start=$SECONDS
(
	cd "$nsrc"
	./configure --prefix="$nettle" --libdir="$nettle/lib" --disable-documentation \
		--disable-static --disable-openssl >"$work/nettle-configure.log" 2>&1 ||
		{ tail -n 20 "$work/nettle-configure.log" >&2; exit 1; }
	make -j"$(nproc)" >"$work/build.log" 2>&1 && make install >>"$work/build.log" 2>&1 ||
		{ tail -n 40 "$work/build.log" >&2; exit 1; }
) || die "building nettle $nup failed"
[ -e "$nettle/lib/libnettle.so.8" ] && [ -e "$nettle/lib/libhogweed.so.6" ] ||
	die "nettle $nup built no libnettle.so.8 and libhogweed.so.6 (hogweed needs gmp)"

# Only the library and the two programs: no documentation, tests, C++,
# DANE, translations, TPM or certificate compression (each would add a
# library the guests may not have).  The configuration file read without
# GNUTLS_SYSTEM_PRIORITY_FILE is Debian's.  libtool's run paths are taken
# out so that the directory works wherever it is copied.
(
	cd "$src"
	PKG_CONFIG_PATH="$nettle/lib/pkgconfig" ./configure --prefix="$out" --libdir="$out/lib" \
		--enable-ktls --disable-doc --disable-tests --disable-full-test-suite \
		--disable-cxx --disable-libdane --disable-nls --without-tpm --without-tpm2 \
		--without-zlib --without-brotli --without-zstd \
		--with-system-priority-file=/etc/gnutls/config \
		>"$work/configure.log" 2>&1 ||
		{ tail -n 20 "$work/configure.log" >&2; exit 1; }
	sed -i -e 's/^hardcode_libdir_flag_spec=.*/hardcode_libdir_flag_spec=""/' \
		-e 's/^runpath_var=.*/runpath_var=/' libtool
	{ for d in gl lib src/gl; do make -C "$d" -j"$(nproc)" || exit 1; done &&
		make -C src -j"$(nproc)" gnutls-serv gnutls-cli &&
		make -C lib install DESTDIR="$stage" &&
		make -C src install-binPROGRAMS bin_PROGRAMS="gnutls-serv gnutls-cli" \
			DESTDIR="$stage"; } >>"$work/build.log" 2>&1 ||
		{ tail -n 40 "$work/build.log" >&2; exit 1; }
) || die "building gnutls $upstream failed"
grep -q '^#define ENABLE_KTLS 1' "$src/config.h" ||
	die "gnutls $upstream was configured without kTLS"

d="$stage$out"
[ -e "$d/lib/libgnutls.so.30" ] && [ -x "$d/bin/gnutls-serv" ] && [ -x "$d/bin/gnutls-cli" ] ||
	die "gnutls $upstream's install has no lib/libgnutls.so.30, bin/gnutls-serv or bin/gnutls-cli"
cp -a "$nettle"/lib/libnettle.so.* "$nettle"/lib/libhogweed.so.* "$d/lib/"
rm -rf "$d/include" "$d/share" "$d/lib/pkgconfig" "$d"/lib/*.la
if readelf -d "$d"/bin/* "$d"/lib/*.so.* | grep -E 'R(UN)?PATH'; then
	die "a run path is left in gnutls $upstream's programs or libraries"
fi
# it runs here, on Debian 12's glibc, with its own libraries
v=$(LD_LIBRARY_PATH="$d/lib" "$d/bin/gnutls-serv" --version </dev/null 2>&1 | head -n 1) ||
	die "gnutls-serv $upstream does not run here: $v"
case $v in
*" $upstream") ;;
*) die "gnutls-serv $upstream says: $v" ;;
esac

cat >"$d/ktls.conf" <<'EOF'
# GnuTLS system configuration: GNUTLS_SYSTEM_PRIORITY_FILE=<this file>.
# GnuTLS puts each connection's records in the kernel (TCP_ULP "tls") and
# falls back to userspace where the kernel refuses.
[global]
ktls = true
EOF
echo "$upstream" >"$d/version"
echo "$got" >"$d/debian-version"
echo "$nup" >"$d/nettle-version"
cp "$work/build.log" "$d/"
rm -rf "$out" "$out.tmp"
mv "$d" "$out.tmp"
mv "$out.tmp" "$out"
log "built in $((SECONDS - start)) s: $out"
echo "$out"
