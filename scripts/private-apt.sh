# private-apt.sh - sourced (bash): apt-get/apt-cache on other Debian suites
# without touching the system's apt configuration.
#
#   . scripts/private-apt.sh
#   private_apt_init DIR TYPE SUITE...   # TYPE: deb or deb-src
#   apt-get "${PRIVATE_APT[@]}" -qq update
#
# DIR gets an apt state of its own (sources, lists, archives) whose sources
# are the system's Debian bookworm entries (one-line sources.list and
# deb822 .sources files) with the suite changed to each SUITE, so the
# archive addresses are the system's own.  The system's dpkg status and
# trusted keys are read, never written.  Returns 1 when the system has no
# bookworm entry to derive from (the message is on stderr).
# PRIVATE_APT: the array of -o options for apt-get and apt-cache.

private_apt_init() {
	local dir=$1 type=$2 s f
	shift 2
	rm -rf "$dir"
	mkdir -p "$dir/etc/sources.list.d" "$dir/etc/preferences.d" "$dir/etc/apt.conf.d" \
		"$dir/lists/partial" "$dir/archives/partial"
	for s in "$@"; do
		for f in /etc/apt/sources.list.d/*.sources; do
			if [ ! -f "$f" ] || ! grep -q bookworm "$f"; then continue; fi
			sed -e "s/^Types:.*/Types: $type/" -e "s/bookworm/$s/g" "$f" \
				>"$dir/etc/sources.list.d/$s-$(basename "$f")"
		done
		if [ -f /etc/apt/sources.list ]; then
			sed -n "s/^deb \(.*\)bookworm/$type \1$s/p" /etc/apt/sources.list \
				>>"$dir/etc/sources.list"
		fi
	done
	if ! ls "$dir/etc/sources.list.d"/*.sources >/dev/null 2>&1 &&
		! [ -s "$dir/etc/sources.list" ]; then
		echo "private-apt: no Debian bookworm archive in the apt sources to derive $* from" >&2
		return 1
	fi
	PRIVATE_APT=(-o "Dir::Etc=$dir/etc" -o "Dir::State=$dir" -o "Dir::State::Lists=$dir/lists"
		-o "Dir::Cache=$dir" -o "Dir::Cache::Archives=$dir/archives"
		-o "Dir::State::status=/var/lib/dpkg/status" -o "APT::Sandbox::User=root")
}

# private_apt_orig PKG FILTER: "VERSION ORIG-TARBALL SHA256" for every source
# version of PKG whose upstream version matches the grep -E FILTER, newest
# first (a version found in several suites counts once).
private_apt_orig() {
	apt-cache "${PRIVATE_APT[@]}" showsrc "$1" 2>/dev/null | awk '
		/^Version:/ {v = $2}
		/^Checksums-Sha256:/ {c = 1; next}
		/^[^ ]/ {c = 0}
		c && $3 ~ /\.orig\.tar\.[a-z0-9]+$/ {print v, $3, $1}' |
		grep -E "^($2)" | sort -u -k1,1 | sort -rV
}

# private_apt_fetch_orig DIR PKG CANDIDATES: download into DIR the orig
# tarball of the first candidate (private_apt_orig's lines) that the
# archive serves with the right checksum; prints "VERSION ORIG-TARBALL".
# A mirror may lack the .dsc or the Debian tarball of a version whose orig
# it serves: only the orig is checked.  Returns 1 if none could be had.
private_apt_fetch_orig() {
	local dir=$1 pkg=$2 v orig sum
	while read -r v orig sum; do
		[ -n "$v" ] || continue
		(cd "$dir" && apt-get "${PRIVATE_APT[@]}" -qq source --download-only "$pkg=$v" \
			</dev/null >/dev/null 2>&1) || true
		if [ -f "$dir/$orig" ] && [ "$(sha256sum <"$dir/$orig" | cut -d' ' -f1)" = "$sum" ]; then
			echo "$v $orig"
			return 0
		fi
		echo "private-apt: $pkg $v: $orig not downloadable, trying an older one" >&2
		find "$dir" -maxdepth 1 -type f -name "${pkg}_*" -delete
	done <<<"$3"
	return 1
}
