#!/bin/bash
# SPDX-License-Identifier: MIT
# scripts/kbuild/module-src.sh (sync_src): the module's sources go to a
# kernel's build folder, changed files only, removed ones dropped; Kbuild's
# own *.mod.c is never carried from the tree (where a host build for 6.1
# leaves one) into another kernel's folder, nor dropped there.
set -u
top=${XVMSG_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
no() { echo "  FAIL    module-src: $*"; fail=1; }
src=$tmp/tree dst=$tmp/build
mkdir -p "$src/guest-kernel" "$src/include/xvmsg"
echo 'int a;' >"$src/guest-kernel/a.c"
echo 'int b;' >"$src/guest-kernel/b.c"
echo 'obj-m := x.o' >"$src/guest-kernel/Kbuild"
echo '/* 6.1 */' >"$src/guest-kernel/xvmsg.mod.c"
echo '#define W 1' >"$src/include/xvmsg/wire.h"
# shellcheck source=scripts/kbuild/module-src.sh
XVMSG_TOP=$src . "$top/scripts/kbuild/module-src.sh"
XVMSG_TOP=$src sync_src "$dst"
for f in guest-kernel/a.c guest-kernel/b.c guest-kernel/Kbuild include/xvmsg/wire.h; do
	cmp -s "$src/$f" "$dst/$f" || no "$f not copied"
done
[ -e "$dst/guest-kernel/xvmsg.mod.c" ] && no "the tree's xvmsg.mod.c was copied"
# The build folder's own .mod.c (modpost's, for its kernel) stays; a source
# the tree dropped goes; an unchanged file keeps its time.
echo '/* 6.12 */' >"$dst/guest-kernel/xvmsg.mod.c"
touch -d '2020-01-01' "$dst/guest-kernel/a.c"
rm "$src/guest-kernel/b.c"
echo '/* 6.1 again */' >"$src/guest-kernel/xvmsg.mod.c"
XVMSG_TOP=$src sync_src "$dst"
[ "$(cat "$dst/guest-kernel/xvmsg.mod.c" 2>/dev/null)" = '/* 6.12 */' ] || no "the build folder's xvmsg.mod.c was replaced or dropped"
[ -e "$dst/guest-kernel/b.c" ] && no "a source the tree dropped stayed"
[ "$(stat -c %Y "$dst/guest-kernel/a.c")" = "$(date -d 2020-01-01 +%s)" ] || no "an unchanged source was copied again"
[ $fail = 0 ] && echo "module-src: all cases passed"
exit $fail
