#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian 12 packages xvmsg builds and tests with, if missing.
# Idempotent: does nothing when everything is there.  Needs root to install.
set -eu
. "$(dirname "$0")/debs.sh"

PKGS="build-essential pkg-config libcmocka-dev linux-libc-dev libxen-dev liburing-dev"
# shellcheck disable=SC2086
missing=$(missing_debs $PKGS)
[ -z "$missing" ] && exit 0

echo "xvmsg: installing Debian packages:$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "xvmsg: not root: install them with: apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
