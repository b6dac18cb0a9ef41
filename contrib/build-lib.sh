# build-lib.sh - sourced (bash) by contrib/*/build.sh and
# scripts/liburing-next.sh: what building from Debian's source into a cache
# (a server with the bridge's patches, a newer library) has in common.
# The caller defines log() and die().

# print_path_args LAST ARG: the one optional argument of such a build
# script: --print-path sets print_only=1; -h/--help prints the header
# comment (lines 2 to LAST of the script, "# " taken off) and exits 0
print_path_args() {
	print_only=0
	case ${2:-} in
	--print-path) print_only=1 ;;
	-h | --help) sed -n "2,$1p" "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	"") ;;
	*) die "unknown argument: $2" ;;
	esac
}

# series_hash DIR: a short hash of DIR/series and the patches it names
series_hash() {
	(cd "$1" && { cat series; grep -v '^#' series | while read -r p; do
		[ -z "$p" ] || cat "$p"; done; } | sha256sum | cut -c1-12)
}

# lib_hash BUILDDIR TOP: a short hash of the library a build links (the
# build directory and the API header)
lib_hash() {
	printf '%s\n' "$1" | cat - "$2/ktls-bridge/ktls-bridge.h" | sha256sum | cut -c1-12
}

# apply_series PATCHDIR SRC NAME: the patches of PATCHDIR/series, in order
apply_series() {
	local p
	while read -r p; do
		case $p in "" | "#"*) continue ;; esac
		log "applying $p"
		patch -d "$2" -p1 -s --no-backup-if-mismatch <"$1/$p" >&2 ||
			die "patch $p does not apply to $3"
	done <"$1/series"
}

# bridge_pkg_config WORK BUILDDIR TOP: point pkg-config at the build tree's
# libktls-bridge and the source tree's header (pkg-config prefers
# NAME-uninstalled.pc; everything else comes from the build's own .pc)
bridge_pkg_config() {
	local pc=$1/pc
	mkdir -p "$pc"
	sed -e "s|^Libs:.*|Libs: -L$2/ktls-bridge/.libs -lktls-bridge|" \
		-e "s|^Cflags:.*|Cflags: -I$3/ktls-bridge|" \
		"$2/ktls-bridge/ktls-bridge.pc" >"$pc/ktls-bridge-uninstalled.pc"
	export PKG_CONFIG_PATH="$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
	pkg-config --exists ktls-bridge || die "pkg-config cannot read $pc/ktls-bridge-uninstalled.pc"
}

# need_tools CMD...: each must be on PATH
need_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || die "$t is missing"
	done
}

# need_packages PKG...: Debian packages to have; installed with apt-get when
# missing and run as root
need_packages() {
	local pkg need=()
	for pkg in "$@"; do
		dpkg-query -W -f '${Status}\n' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
			need+=("$pkg")
	done
	[ ${#need[@]} -gt 0 ] || return 0
	[ "$(id -u)" = 0 ] || die "missing packages: ${need[*]} (apt-get install them)"
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2 ||
		die "apt-get install ${need[*]} failed"
}

# fetch_source APTDIR WORK PKG FILTER SUITE...: the newest orig tarball of
# PKG whose upstream version matches FILTER (grep -E) that the archive
# serves, from SUITEs, into WORK (scripts/private-apt.sh); sets SRC_VERSION
# (Debian's) and SRC_ORIG (the file name).  Calls nosource (exit 3) when
# the archive cannot be read or has none.
fetch_source() {
	local aptdir=$1 work=$2 pkg=$3 filter=$4 cands got
	shift 4
	private_apt_init "$aptdir" deb-src "$@" || die "no apt sources"
	log "reading the source indexes of: $*"
	apt-get "${PRIVATE_APT[@]}" -qq update >&2 || nosource "apt-get update for $*'s sources failed"
	cands=$(private_apt_orig "$pkg" "$filter")
	[ -n "$cands" ] || nosource "no $pkg source package matching $filter in $*"
	got=$(private_apt_fetch_orig "$work" "$pkg" "$cands") ||
		nosource "could not download any $pkg orig tarball from $*"
	read -r SRC_VERSION SRC_ORIG <<<"$got"
}

# built_tree BUILDDIR: BUILDDIR's absolute path, if it holds a built
# libktls-bridge (else die)
built_tree() {
	[ -f "$1/ktls-bridge/ktls-bridge.pc" ] ||
		die "$1 is not a built tree (no ktls-bridge/ktls-bridge.pc): run scripts/build.sh"
	[ -e "$1/ktls-bridge/.libs/libktls-bridge.so" ] ||
		die "$1/ktls-bridge/.libs/libktls-bridge.so is missing: run scripts/build.sh"
	(cd "$1" && pwd)
}

# cached_or_lock CACHE PRINT_ONLY: the caller's cached() prints a built
# binary's path or fails.  With PRINT_ONLY 1, print it or exit 1; else take
# CACHE's lock (a second build waits for the first) and, when a build is
# cached, print it and exit 0.
cached_or_lock() {
	local p
	if [ "$2" = 1 ]; then
		cached || exit 1
		exit 0
	fi
	mkdir -p "$1"
	exec 9>"$1/.lock"
	flock 9 || die "cannot lock $1/.lock"
	if p=$(cached); then
		# the version file is next to a binary, or in a directory printed
		log "cached: $p ($(cat "$p/version" 2>/dev/null || cat "$(dirname "$p")/version"))"
		echo "$p"
		exit 0
	fi
}
