/* SPDX-License-Identifier: MIT */
/*
 * A xenstore read of a path made with printf, for the userspace parts that
 * talk to libxenstore themselves: xvmsg-ctl and the driver's Xen bus
 * (drv-xen.c).  Userspace and Xen only: the includer has <xenstore.h>.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_XS_READF_H
#define XVMSG_XS_READF_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <xenstore.h>

/* The value at the path fmt makes, malloc'd, or NULL with errno set by
 * xs_read; a path longer than 255 bytes is not read (cut short it would
 * name another key): NULL, errno ENAMETOOLONG. */
static inline char *xvmsg_xs_readf(struct xs_handle *xs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline char *xvmsg_xs_readf(struct xs_handle *xs, const char *fmt, ...)
{
	char path[256];
	unsigned int len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	return xs_read(xs, XBT_NULL, path, &len);
}

#endif /* XVMSG_XS_READF_H */
