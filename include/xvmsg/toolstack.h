/* SPDX-License-Identifier: MIT */
/*
 * A device's xenstore entry as a toolstack creates it (docs/protocol.md,
 * section 5): the two directories and the keys in them, written in one
 * order by every toolstack of the project (xvmsg-ctl on Xen, the loopback
 * bus's own ATTACH), so that the two cannot drift apart.  Userspace only.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_TOOLSTACK_H
#define XVMSG_TOOLSTACK_H

#include <errno.h>
#include <stdio.h>

#include "xenbus.h"

/* Longest directory path the helpers below make, with its NUL. */
#define XVMSG_XS_DIR_MAX	96

/* The backend dir of device devid of domain fe, served by domain be:
 * 0, or -ENAMETOOLONG (len too small; buf then holds no usable path). */
static inline int xvmsg_xs_be_dir(char *buf, size_t len, unsigned int be, unsigned int fe,
				  unsigned int devid)
{
	int n = snprintf(buf, len, "/local/domain/%u/backend/%s/%u/%u", be, XVMSG_XS_CLASS, fe,
			 devid);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The frontend dir of device devid of domain fe: 0 or -ENAMETOOLONG. */
static inline int xvmsg_xs_fe_dir(char *buf, size_t len, unsigned int fe, unsigned int devid)
{
	int n = snprintf(buf, len, "/local/domain/%u/device/%s/%u", fe, XVMSG_XS_CLASS, devid);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* What a toolstack knows of a device it creates (already checked). */
struct xvmsg_dev_spec {
	unsigned int	fe_domid, be_domid, devid;
	const char	*type;		/* XVMSG_XS_TYPE */
	const char	*params;	/* XVMSG_XS_PARAMS */
	const char	*mode;		/* XVMSG_XS_MODE, a name from xvmsg_mode_name() */
	unsigned int	pool_pages;	/* XVMSG_XS_POOL_PAGES */
};

/* How a toolstack writes: dir() creates a directory owned by owner and
 * readable by reader (may be NULL where the store has no permissions);
 * put() writes one key.  Each returns 0 or a negative errno. */
struct xvmsg_xs_writer {
	int (*dir)(void *ctx, const char *path, unsigned int owner, unsigned int reader);
	int (*put)(void *ctx, const char *path, const char *val);
};

/* Writes s's entry through w: the frontend dir (backend, backend-id, type,
 * state 1), then the backend dir (frontend-id, type, params, mode,
 * pool-pages, online, state 1) and last its "frontend" key, which a backend
 * takes as the sign that the entry is complete.  Stops at the first error
 * and returns it (the caller removes what was written); 0 when all is. */
static inline int xvmsg_dev_entry_write(const struct xvmsg_dev_spec *s,
					const struct xvmsg_xs_writer *w, void *ctx)
{
	char fe[XVMSG_XS_DIR_MAX], be[XVMSG_XS_DIR_MAX];
	char path[XVMSG_XS_DIR_MAX + 32], be_id[12], fe_id[12], state[4], pool[12];
	const struct { const char *dir, *key, *val; } kv[] = {
		{ fe, XVMSG_XS_BACKEND, be },
		{ fe, XVMSG_XS_BACKEND_ID, be_id },
		{ fe, XVMSG_XS_TYPE, s->type },
		{ fe, XVMSG_XS_STATE, state },
		{ be, XVMSG_XS_FRONTEND_ID, fe_id },
		{ be, XVMSG_XS_TYPE, s->type },
		{ be, XVMSG_XS_PARAMS, s->params },
		{ be, XVMSG_XS_MODE, s->mode },
		{ be, XVMSG_XS_POOL_PAGES, pool },
		{ be, XVMSG_XS_ONLINE, "1" },
		{ be, XVMSG_XS_STATE, state },
		{ be, XVMSG_XS_FRONTEND, fe },	/* last */
	};
	unsigned int i;
	int r;

	if (xvmsg_xs_fe_dir(fe, sizeof(fe), s->fe_domid, s->devid) ||
	    xvmsg_xs_be_dir(be, sizeof(be), s->be_domid, s->fe_domid, s->devid))
		return -ENAMETOOLONG;
	snprintf(be_id, sizeof(be_id), "%u", s->be_domid);
	snprintf(fe_id, sizeof(fe_id), "%u", s->fe_domid);
	snprintf(state, sizeof(state), "%d", XVMSG_STATE_INITIALISING);
	snprintf(pool, sizeof(pool), "%u", s->pool_pages);
	for (i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
		if (w->dir && (i == 0 || kv[i].dir != kv[i - 1].dir)) {
			int own = kv[i].dir == fe;

			r = w->dir(ctx, kv[i].dir, own ? s->fe_domid : s->be_domid,
				   own ? s->be_domid : s->fe_domid);
			if (r)
				return r;
		}
		snprintf(path, sizeof(path), "%s/%s", kv[i].dir, kv[i].key);
		r = w->put(ctx, path, kv[i].val);
		if (r)
			return r;
	}
	return 0;
}

#endif /* XVMSG_TOOLSTACK_H */
