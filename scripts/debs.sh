# SPDX-License-Identifier: MIT
# shellcheck shell=sh
# Debian packages on this host, for the scripts that install what they need
# (install-deps.sh, deb/build.sh, xen/fetch.sh).  Sourced, not run (POSIX sh).

# missing_debs PKG...: prints " PKG" for each PKG that dpkg does not list as
# installed, nothing when all are.
missing_debs() {
	for _p in "$@"; do
		dpkg-query -W -f='${Status}' "$_p" 2>/dev/null | grep -q "install ok installed" ||
			printf ' %s' "$_p"
	done
}
