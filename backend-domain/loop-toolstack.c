// SPDX-License-Identifier: MIT
/*
 * The loopback bus is its own toolstack: a driver ATTACHes an export the
 * backend offers (both xenstore dirs written, as xl would), DETACHes it,
 * and WRITEs its frontend keys, one key below a device it attached,
 * against its store quota.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <xvmsg/toolstack.h>

#include "loop-priv.h"

static void dev_paths(uint32_t fe, uint32_t devid, char *be, char *fe_path, size_t len)
{
	/* fe and devid are checked (<= 0xffff): the paths fit */
	xvmsg_xs_be_dir(be, len, XVMSG_LOOP_BACKEND_DOMID, fe, devid);
	xvmsg_xs_fe_dir(fe_path, len, fe, devid);
}

static int loop_put(void *lb, const char *path, const char *val)
{
	return loop_st_set(lb, path, val, NULL);
}

/* The loopback store has no permissions: the bus itself decides who may
 * write where (loop_do_write), so dirs need no call of their own. */
static const struct xvmsg_xs_writer loop_writer = { .put = loop_put };

int loop_do_attach(struct loop_bus *lb, struct loop_client *c, const struct xvmsg_loop_attach *a)
{
	uint32_t devid = le32toh(a->devid), mode = le32toh(a->mode);
	uint32_t pool = le32toh(a->pool_pages);
	char be[XVMSG_XS_DIR_MAX], fe[XVMSG_XS_DIR_MAX];
	struct xvmsg_dev_spec spec;
	unsigned int i, x;
	int r;

	if (!memchr(a->export_name, '\0', sizeof(a->export_name)))
		return -EINVAL;
	for (x = 0; x < lb->nexports && strcmp(lb->exports[x].name, a->export_name); x++)
		;
	if (x == lb->nexports)
		return -ENOENT;
	if (mode > XVMSG_MODE_FULL || pool > XVMSG_MAX_POOL_PAGES || devid > 0xffff)
		return -EINVAL;
	if (mode == XVMSG_MODE_FULL && !lb->caps.map_frames)
		return -EPERM;		/* as the core's xvb_mode_check() would say */
	for (i = 0; i < c->ndev; i++)
		if (c->dev[i].devid == devid)
			return -EEXIST;
	if (lb->export_busy[x])
		return -EBUSY;
	if (c->ndev == MAX_DEVS)
		return -ENOSPC;
	if (!pool)
		pool = XVMSG_DEFAULT_POOL_PAGES;
	spec = (struct xvmsg_dev_spec){
		.fe_domid = c->domid, .be_domid = XVMSG_LOOP_BACKEND_DOMID, .devid = devid,
		.type = lb->exports[x].type, .params = lb->exports[x].params,
		.mode = xvmsg_mode_name((enum xvmsg_mode)mode), .pool_pages = pool,
	};
	r = xvmsg_dev_entry_write(&spec, &loop_writer, lb);
	if (r) {
		dev_paths(c->domid, devid, be, fe, sizeof(be));
		loop_st_rm(lb, be);
		loop_st_rm(lb, fe);
		return r;
	}
	lb->export_busy[x] = true;
	c->dev[c->ndev].devid = devid;
	c->dev[c->ndev].export = x;
	c->ndev++;
	return 0;
}

void loop_remove_dev(struct loop_bus *lb, struct loop_client *c, unsigned int i)
{
	char be[XVMSG_XS_DIR_MAX], fe[XVMSG_XS_DIR_MAX];

	dev_paths(c->domid, c->dev[i].devid, be, fe, sizeof(be));
	loop_st_rm(lb, be);
	loop_st_rm(lb, fe);
	lb->export_busy[c->dev[i].export] = false;
	c->dev[i] = c->dev[--c->ndev];
}

int loop_do_detach(struct loop_bus *lb, struct loop_client *c, uint32_t devid)
{
	unsigned int i;

	for (i = 0; i < c->ndev; i++) {
		if (c->dev[i].devid == devid) {
			loop_remove_dev(lb, c, i);
			return 0;
		}
	}
	return -ENOENT;
}

/* A key name a guest may write: xenstore's characters, without '/'. */
static bool valid_key(const char *k)
{
	if (!*k)
		return false;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
		      (*k >= '0' && *k <= '9') || *k == '-' || *k == '_' || *k == '@'))
			return false;
	return true;
}

/* A guest writes one key directly in the dir of a device it attached:
 * /local/domain/<its domid>/device/xvmsg/<devid>/<key>, the devid spelt
 * as the toolstack spells it, charged to its quota. */
int loop_do_write(struct loop_bus *lb, struct loop_client *c, const char *p, size_t len)
{
	const char *path = p, *val, *rest;
	char prefix[96];
	uint32_t devid;
	unsigned int i;
	int n;

	if (len == 0 || p[len - 1] != '\0')
		return -EINVAL;
	val = memchr(p, '\0', len);
	if ((size_t)(val - p) + 1 >= len)
		return -EINVAL;		/* no value */
	val++;
	if (strlen(path) > 200 || strlen(val) > 255)
		return -E2BIG;
	n = snprintf(prefix, sizeof(prefix), "/local/domain/%u/device/%s/", c->domid,
		     XVMSG_XS_CLASS);
	if (strncmp(path, prefix, (size_t)n) || loop_parse_id(path + n, &rest, 0xffff, &devid) ||
	    *rest != '/' || !valid_key(rest + 1))
		return -EACCES;		/* exactly one key below a device dir */
	for (i = 0; i < c->ndev && c->dev[i].devid != devid; i++)
		;
	if (i == c->ndev)
		return -EACCES;
	return loop_st_set(lb, path, val, &c->keys);
}
