#!/bin/sh
# SPDX-License-Identifier: MIT
# make deb: build the Debian packages (debian/) from a copy of the tree, so
# that the tree stays clean.  Packages, .changes and .buildinfo go to
# $XVMSG_DEB_OUT (default build/deb/).
#
#   XVMSG_VERSION=0.1.0 scripts/deb/build.sh      (make deb passes it)
#
# Installs the build dependencies (debian/control) when they are missing.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
: "${XVMSG_VERSION:?set XVMSG_VERSION (make deb does)}"
out=${XVMSG_DEB_OUT:-$top/build/deb}
src=$out/xvmsg-$XVMSG_VERSION

. "$top/scripts/debs.sh"
need_tools="dpkg-dev debhelper dh-dkms lintian"
# shellcheck disable=SC2086
missing=$(missing_debs $need_tools)
if [ -n "$missing" ]; then
	[ "$(id -u)" -eq 0 ] || { echo "deb: install$missing first" >&2; exit 1; }
	echo "deb: installing$missing"
	apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The copy: what git tracks plus new files it does not ignore (so an
# uncommitted change is packaged too), or everything but build/ outside git.
rm -rf "$out"
mkdir -p "$src"
cd "$top"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
		xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\n" "$f"; done' sh |
		tar -cf - -T - | tar -xf - -C "$src"
	date=$(git log -1 --format=%aD)
	what="Built from commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo ' with local changes')."
else
	tar -cf - --exclude=./build . | tar -xf - -C "$src"
	date=$(date -R)
	what="Built from a copy of the tree."
fi

# debian/changelog is made here: its version is the Makefile's.
maint=$(sed -n 's/^Maintainer: //p' debian/control)
cat >"$src/debian/changelog" <<CHANGELOG
xvmsg ($XVMSG_VERSION) unstable; urgency=medium

  * $what

 -- $maint  $date
CHANGELOG

cd "$src"
if ! dpkg-checkbuilddeps >/dev/null 2>&1; then
	[ "$(id -u)" -eq 0 ] || { dpkg-checkbuilddeps; exit 1; }
	echo "deb: installing the build dependencies"
	DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq ./ >/dev/null
fi
dpkg-buildpackage -us -uc -b -j2 >"$out/build.log" 2>&1 || {
	tail -n 40 "$out/build.log"; echo "deb: dpkg-buildpackage failed (log: $out/build.log)" >&2; exit 1
}
cd "$out"
rm -rf "$src"
ls -1 ./*.deb
