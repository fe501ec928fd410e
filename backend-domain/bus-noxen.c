// SPDX-License-Identifier: MIT
/*
 * The Xen bus in a build without Xen (make XEN=0, or XEN=auto on a host
 * without libxen-dev): linked instead of bus-xen.c, it only says so, and
 * the backend serves the loopback bus alone.
 */
#include <errno.h>
#include <stdio.h>

#include "bus.h"

int xvb_xen_create(const struct xvb_xen_opts *opts, const struct xvb_bus_events *ev,
		   struct xvb_bus **out, char *err, size_t errlen)
{
	snprintf(err, errlen, "this xvmsg-backend was built without Xen (libxen-dev was "
		 "missing or XEN=0): only --bus loop");
	return -EOPNOTSUPP;
}
