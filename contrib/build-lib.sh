# build-lib.sh - sourced (bash) by contrib/*/build.sh: what building a
# server from Debian's source with the bridge's patches has in common.
# The caller defines log() and die().

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
