# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# sync_src DEST: the guest module's sources into DEST/guest-kernel and
# DEST/include/xvmsg, touching only files that changed (so Kbuild rebuilds
# only what changed) and dropping files the tree no longer has.  Sourced by
# scripts/kbuild/check-builds.sh and scripts/xen/build-trixie.sh; needs
# XVMSG_TOP.
sync_src() {
	local sub f
	for sub in guest-kernel include/xvmsg; do
		mkdir -p "$1/$sub"
		for f in "$XVMSG_TOP/$sub"/*.[ch] "$XVMSG_TOP/$sub"/Kbuild; do
			[ -f "$f" ] || continue
			cmp -s "$f" "$1/$sub/${f##*/}" || cp -p "$f" "$1/$sub/"
		done
		for f in "$1/$sub"/*.[ch]; do
			[ -f "$f" ] && [ ! -f "$XVMSG_TOP/$sub/${f##*/}" ] && rm -f "$f"
		done
	done
	return 0
}
