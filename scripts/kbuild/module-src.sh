# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# sync_src DEST: the guest module's sources into DEST/guest-kernel and
# DEST/include/xvmsg, touching only files that changed (so Kbuild rebuilds
# only what changed) and dropping files the tree no longer has.  Sourced by
# scripts/kbuild/check-builds.sh and scripts/xen/build-trixie.sh; needs
# XVMSG_TOP.
#
# Kbuild's own output is neither copied nor dropped: *.mod.c is what
# modpost wrote for one kernel (a `make module` in the tree leaves 6.1's
# there).  Copied into another kernel's folder whose objects were up to
# date, it was compiled as it was, and the module carried 6.1's symbol
# versions ("disagrees about version of symbol module_layout" on 6.12).
sync_src() {
	local sub f
	for sub in guest-kernel include/xvmsg; do
		mkdir -p "$1/$sub"
		for f in "$XVMSG_TOP/$sub"/*.[ch] "$XVMSG_TOP/$sub"/Kbuild; do
			[ -f "$f" ] || continue
			case ${f##*/} in *.mod.c) continue ;; esac
			cmp -s "$f" "$1/$sub/${f##*/}" || cp -p "$f" "$1/$sub/"
		done
		for f in "$1/$sub"/*.[ch]; do
			case ${f##*/} in *.mod.c) continue ;; esac
			[ -f "$f" ] && [ ! -f "$XVMSG_TOP/$sub/${f##*/}" ] && rm -f "$f"
		done
	done
	return 0
}
