// SPDX-License-Identifier: MIT
/*
 * The Xen bus in a build without Xen (make XEN=0, or XEN=auto on a host
 * without libxen-dev): linked instead of drv-xen.c, it only says so, and
 * the library drives the loopback bus alone.
 */
#include <errno.h>

#include "drv-priv.h"

int drv_xen_open(int timeout_ms, const struct xvd_logger *log, struct drv_bus **out)
{
	xvd_logf(log, XVD_LOG_ERR, "libxvmsg-drv was built without Xen (libxen-dev was "
		 "missing or XEN=0): only the loopback bus");
	return -EOPNOTSUPP;
}
