#!/bin/bash
# openssl-next.sh - build Debian 13's OpenSSL (3.5) libraries from Debian's
# own source package, for tests of what libssl 3.2 and later do with kTLS
# (TLS 1.3 receive offload, keys offered again on every KeyUpdate).
#
# Debian 12 ships OpenSSL 3.0 only, and Debian 13's binary packages need a
# newer glibc, so this fetches the trixie source package with apt (a private
# apt state in the cache; the system's apt configuration is not touched; the
# archive addresses are the system's own, with the suite changed) and builds
# libssl.so.3 + libcrypto.so.3 with kTLS enabled.  Programs built against
# 3.0 run on them with LD_LIBRARY_PATH=<dir> (3.x keeps the 3.0 ABI).
#
# Usage: scripts/openssl-next.sh [--print-path]
#   --print-path  print the directory if it is built, else exit 1
# stdout: the directory holding the libraries (and a file "version").
# Environment: KTLS_OPENSSL_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/
# ktls-offload/openssl), KTLS_OPENSSL_SUITE (default trixie).
# Exit status: 0 built or cached, 1 not built (--print-path), 2 error.
set -euo pipefail

suite=${KTLS_OPENSSL_SUITE:-trixie}
cache=${KTLS_OPENSSL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktls-offload/openssl}
log() { echo "openssl-next.sh: $*" >&2; }
die() { log "error: $*"; exit 2; }
. "$(dirname "$0")/../contrib/build-lib.sh"

print_path_args 18 "$@"

newest() {
	local d
	d=$(ls -d "$cache"/built-* 2>/dev/null | sort -V | tail -n 1)
	[ -n "$d" ] && [ -f "$d/libssl.so.3" ] && [ -f "$d/libcrypto.so.3" ] && echo "$d"
}

if [ "$print_only" = 1 ]; then
	newest || exit 1
	exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 || die "cannot lock $cache/.lock"
if d=$(newest); then
	log "cached: $d ($(cat "$d/version"))"
	echo "$d"
	exit 0
fi

for t in apt-get apt-cache dpkg-source make gcc perl flock; do
	command -v "$t" >/dev/null || die "$t is missing (scripts/deps.sh installs it)"
done

# A private apt state with deb-src lines for $suite, made from the system's
# own Debian archive entries (one-line and deb822 formats).
apt="$cache/apt"
rm -rf "$apt"
mkdir -p "$apt/etc/sources.list.d" "$apt/etc/preferences.d" "$apt/etc/apt.conf.d" \
	"$apt/lists/partial" "$apt/archives/partial"
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] && grep -q bookworm "$f" || continue
	sed -e 's/^Types:.*/Types: deb-src/' -e "s/bookworm/$suite/g" "$f" \
		>"$apt/etc/sources.list.d/$(basename "$f")"
done
if [ -f /etc/apt/sources.list ]; then
	sed -n "s/^deb \(.*\)bookworm/deb-src \1$suite/p" /etc/apt/sources.list \
		>"$apt/etc/sources.list"
fi
ls "$apt/etc/sources.list.d"/*.sources >/dev/null 2>&1 || [ -s "$apt/etc/sources.list" ] ||
	die "no Debian bookworm archive in the apt sources to derive $suite's from"
A=(-o "Dir::Etc=$apt/etc" -o "Dir::State=$apt" -o "Dir::State::Lists=$apt/lists"
	-o "Dir::Cache=$apt" -o "Dir::Cache::Archives=$apt/archives"
	-o "Dir::State::status=/var/lib/dpkg/status" -o "APT::Sandbox::User=root")
log "reading $suite's source index"
apt-get "${A[@]}" -qq update >&2 || die "apt-get update for $suite's sources failed"

# The newest version the archive still serves (a mirror may lag).
versions=$(apt-cache "${A[@]}" showsrc openssl 2>/dev/null | awk '/^Version:/ {print $2}' | sort -rV)
[ -n "$versions" ] || die "no openssl source package in $suite"
work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
got=
for v in $versions; do
	if (cd "$work" && apt-get "${A[@]}" -qq source --download-only "openssl=$v" >&2); then
		got=$v
		break
	fi
	log "openssl $v: not downloadable, trying an older one"
	rm -f "$work"/*
done
[ -n "$got" ] || die "could not download any openssl source package from $suite"
orig=$(ls "$work"/openssl_*.orig.tar.gz 2>/dev/null | head -n 1)
[ -n "$orig" ] || die "no orig tarball in openssl $got"

log "building libssl/libcrypto $got (enable-ktls)"
start=$SECONDS
mkdir "$work/src"
tar -C "$work/src" --strip-components=1 -xzf "$orig"
(
	cd "$work/src"
	./Configure linux-x86_64 shared enable-ktls no-tests no-docs no-apps \
		--prefix=/nonexistent --libdir=lib >"$work/configure.log" 2>&1 ||
		{ tail -n 20 "$work/configure.log" >&2; exit 1; }
	make -j"$(nproc)" build_libs >"$work/build.log" 2>&1 ||
		{ tail -n 40 "$work/build.log" >&2; exit 1; }
) || die "building openssl $got failed"
grep -q 'define OPENSSL_NO_KTLS' "$work/src/include/openssl/configuration.h" &&
	die "openssl $got was configured without kTLS"

out="$cache/built-$got"
rm -rf "$out" "$out.tmp"
mkdir "$out.tmp"
cp -L "$work/src/libssl.so.3" "$work/src/libcrypto.so.3" "$out.tmp/"
echo "$got" >"$out.tmp/version"
mv "$out.tmp" "$out"
log "built in $((SECONDS - start)) s: $out"
echo "$out"
