#!/bin/bash
# build.sh - build nginx linked with ktls-bridge ($ssl_ktls, the bridge BIO
# on every TLS connection) from Debian's own nginx source package, or the
# same nginx without the bridge (--stock), for tests and benchmarks.
#
# The source package comes from one Debian suite (--suite: bookworm, the
# default, has nginx 1.22.1; trixie 1.26.x; "newest" tries forky, then
# trixie) through a private apt state in the cache (scripts/private-apt.sh:
# the system's apt configuration is not touched and nothing is installed
# from other suites).  Only the upstream (orig) tarball is used, with
# contrib/nginx/patches/ applied in the order of their series file (not
# with --stock).  nginx is configured with the modules nginx's own TLS tests
# use (http ssl, v2, stream ssl and ssl_preread, ...), built against this
# system's OpenSSL 3.0, PCRE2 and zlib, and, unless --stock, with
# -DNGX_KTLS_BRIDGE=1 and the libktls-bridge of a build directory (found
# with pkg-config through a generated uninstalled .pc; an rpath points at
# the build tree's .libs).  Missing -dev packages are installed with
# apt-get when run as root.
#
# Usage: contrib/nginx/build.sh [--stock] [--suite SUITE] [--print-path]
#   --stock       nginx without the patches and without the bridge
#   --suite S     bookworm (default), trixie, forky or newest
#   --print-path  print the binary's path if it is built, else exit 1
# stdout: the path of the nginx binary (next to it: "version", "build.log").
# Cached by (suite, patches and library build dir + header, or "stock");
# a second run prints the cached path at once.
# Environment: KTLS_BUILDDIR (default <top>/_build), KTLS_NGINX_CACHE
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/ktls-offload/nginx).
# Exit status: 0 built or cached, 1 not built (--print-path), 2 error,
# 3 the source could not be downloaded (no archive access).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
builddir=${KTLS_BUILDDIR:-$top/_build}
cache=${KTLS_NGINX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktls-offload/nginx}
log() { echo "build.sh (nginx): $*" >&2; }
die() { log "error: $*"; exit 2; }
nosource() { log "error: $*"; exit 3; }
. "$top/scripts/private-apt.sh"
. "$top/contrib/build-lib.sh"

print_only=0 stock=0 suite=bookworm
while [ $# -gt 0 ]; do
	case $1 in
	--print-path) print_only=1 ;;
	--stock) stock=1 ;;
	--suite) [ $# -ge 2 ] || die "--suite needs a value"; suite=$2; shift ;;
	--suite=*) suite=${1#--suite=} ;;
	-h | --help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
	shift
done
case $suite in
bookworm | trixie | forky) suites=$suite ;;
newest) suites="forky trixie" ;;
*) die "--suite $suite: one of bookworm, trixie, forky, newest" ;;
esac

# The modules nginx-tests' ssl*, h2_ssl*, proxy_ssl* and stream_ssl* files
# need, and the ones Debian's own nginx has that they touch.
configure=(--with-http_ssl_module --with-http_v2_module --with-http_realip_module
	--with-http_addition_module --with-http_sub_module --with-http_gunzip_module
	--with-http_gzip_static_module --with-http_auth_request_module
	--with-http_secure_link_module --with-http_slice_module --with-http_stub_status_module
	--with-stream --with-stream_ssl_module --with-stream_ssl_preread_module
	--with-stream_realip_module --with-threads --with-pcre)
cfg_hash=$(printf '%s\n' "${configure[@]}" | sha256sum | cut -c1-12)

if [ "$stock" = 1 ]; then
	key="stock-$cfg_hash"
else
	builddir=$(built_tree "$builddir")
	libdir=$builddir/ktls-bridge/.libs
	# the patches and the library it links (build dir and API header)
	patch_hash=$(series_hash "$here/patches")
	lib_hash=$(lib_hash "$builddir" "$top")
	key="$patch_hash-$lib_hash-$cfg_hash"
fi
out="$cache/built-$suite-$key"

cached() {
	[ -x "$out/nginx" ] && [ -f "$out/version" ] && echo "$out/nginx"
}

cached_or_lock "$cache" "$print_only"

need_tools apt-get apt-cache make gcc patch pkg-config sha256sum flock tar
need_packages libssl-dev libpcre2-dev zlib1g-dev
work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
fetch_source "$cache/apt-$suite" "$work" nginx '1\.' $suites
version=$SRC_VERSION orig=$SRC_ORIG
upstream=${version%%-*}
log "nginx $version (orig $orig)"

src="$work/src"
mkdir "$src"
tar -C "$src" --strip-components=1 -xf "$work/$orig"
cc_opt="-O2 -g"
ld_opt=""
if [ "$stock" = 0 ]; then
	apply_series "$here/patches" "$src" "nginx $upstream"
	bridge_pkg_config "$work" "$builddir" "$top"
	cc_opt="$cc_opt -DNGX_KTLS_BRIDGE=1 $(pkg-config --cflags ktls-bridge)"
	ld_opt="$(pkg-config --libs ktls-bridge) -Wl,-rpath,$libdir"
fi

log "building nginx $upstream ($([ "$stock" = 1 ] && echo stock || echo with ktls-bridge))"
start=$SECONDS
(cd "$src" && ./configure --prefix=/usr/local/nginx "${configure[@]}" \
	--with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt") >"$work/build.log" 2>&1 ||
	{ tail -n 30 "$work/build.log" >&2; die "configuring nginx $upstream failed"; }
make -C "$src" -j"$(nproc | awk '{print ($1 > 2) ? 2 : $1}')" >>"$work/build.log" 2>&1 ||
	{ tail -n 40 "$work/build.log" >&2; die "building nginx $upstream failed"; }
"$src/objs/nginx" -V >"$work/V" 2>&1 || die "the built nginx does not run: $(cat "$work/V")"
if [ "$stock" = 0 ]; then
	grep -q 'NGX_KTLS_BRIDGE' "$work/V" || die "nginx $upstream was built without NGX_KTLS_BRIDGE"
	ldd "$src/objs/nginx" | grep -q libktls-bridge || die "nginx $upstream does not link libktls-bridge"
fi

rm -rf "$out" "$out.tmp"
mkdir "$out.tmp"
cp "$src/objs/nginx" "$out.tmp/"
cp "$work/build.log" "$work/V" "$out.tmp/"
echo "$version" >"$out.tmp/version"
mv "$out.tmp" "$out"
log "built in $((SECONDS - start)) s: $out/nginx"
echo "$out/nginx"
