#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian 12 packages xvmsg builds and tests with, if missing
# (clang and its compiler-rt: the libFuzzer targets, built by make check).
# Idempotent: does nothing when everything is there.  Needs root to install.
set -eu
. "$(dirname "$0")/debs.sh"

install_missing() {
	missing=$(missing_debs "$@")
	[ -z "$missing" ] && return 0
	echo "xvmsg: installing Debian packages:$missing"
	if [ "$(id -u)" -ne 0 ]; then
		echo "xvmsg: not root: install them with: apt-get install$missing" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	[ -n "${updated:-}" ] || apt-get update -qq
	updated=1
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

install_missing build-essential pkg-config libcmocka-dev linux-libc-dev libxen-dev liburing-dev clang
# -fsanitize=fuzzer needs the compiler-rt of the clang just installed
# (Debian 12: 14, Debian 13: 19).
install_missing "libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"
