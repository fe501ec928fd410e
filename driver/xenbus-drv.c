// SPDX-License-Identifier: MIT
/*
 * Domain lifetime, guest RAM, and the xenstore handshake of each device
 * (the frontend half of xen/include/public/io/xenbus.h's state machine).
 *
 * Frontend keys written here (frontend dir, see xenbus.h):
 *   mode                 "pool" | "grant" | "full"
 *   msg-ref              grant ref of the message page (always RW)
 *   event-channel        port of the message rings
 *   pool-ref, pool-pages first of pool-pages consecutive RW refs; both 0
 *                        outside pool mode
 *   msg-revision         the message layout chosen from the backend's
 *                        msg-revisions (not written when it announced none)
 *   num-queues           queues the device type uses (<= max-queues)
 *   vq-<n>-event-channel port of queue n, n < num-queues
 *   state                XenbusState
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xvmsg/wire.h>

#include "drv-priv.h"

/* ---- domain ------------------------------------------------------------ */

static int domain_open(const struct xvd_domain_opts *o, bool xen, struct xvd_domain **out)
{
	struct xvd_domain *d;
	size_t pages;
	int r;

	if (!o || (!xen && !o->socket_path))
		return -EINVAL;
	pages = o->ram_pages ? o->ram_pages : XVD_DEFAULT_RAM_PAGES;
	if (pages > (UINT32_MAX / (XVMSG_PAGE_SIZE / XVD_RAM_UNIT)) || pages >= 0x100000)
		return -EINVAL;		/* RAM must stay below the device regions */
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->log = (struct xvd_logger){ o->log, o->log_ctx, o->log_level };
	d->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : XVD_DEFAULT_TIMEOUT_MS;
	if (xen)
		r = drv_xen_open(d->timeout_ms, &d->log, &d->bus);
	else
		r = drv_loop_open(o->socket_path, o->gnt_entries ? o->gnt_entries : XVD_DEFAULT_GNT,
				  d->timeout_ms, &d->log, &d->bus);
	if (r < 0)
		goto err;
	r = d->bus->ops->mem_alloc(d->bus, DRV_MEM_RAM, 0, pages, &d->ram.mem);
	if (r < 0)
		goto err_bus;
	r = xvd_ua_init(&d->ram.ua, (uint32_t)(pages * (XVMSG_PAGE_SIZE / XVD_RAM_UNIT)));
	if (r < 0)
		goto err_ram;
	*out = d;
	return 0;

err_ram:
	d->bus->ops->mem_free(d->bus, &d->ram.mem);
err_bus:
	d->bus->ops->close(d->bus);
err:
	free(d);
	return r;
}

int xvd_domain_open_loop(const struct xvd_domain_opts *o, struct xvd_domain **out)
{
	return domain_open(o, false, out);
}

int xvd_domain_open_xen(const struct xvd_domain_opts *o, struct xvd_domain **out)
{
	return domain_open(o, true, out);
}

void xvd_domain_close(struct xvd_domain *d)
{
	if (!d)
		return;
	while (d->devs)
		xvd_dev_close(d->devs);
	xvd_ua_destroy(&d->ram.ua);
	d->bus->ops->mem_free(d->bus, &d->ram.mem);
	d->bus->ops->close(d->bus);
	free(d);
}

unsigned int xvd_domain_id(const struct xvd_domain *d)
{
	return d->bus->ops->domid(d->bus);
}

int xvd_domain_fd(const struct xvd_domain *d)
{
	return d->bus->ops->get_fd(d->bus);
}

int xvd_ram_alloc(struct xvd_domain *d, size_t len, void **buf)
{
	return xvd_ram_get(&d->ram, len, buf);
}

void xvd_ram_free(struct xvd_domain *d, void *buf)
{
	xvd_ram_put(&d->ram, buf);
}

/* ---- xenstore helpers -------------------------------------------------- */

static int fe_write(struct xvd_dev *dev, const char *key, unsigned long v)
{
	struct drv_bus *bus = dev->dom->bus;
	char val[32];

	snprintf(val, sizeof(val), "%lu", v);
	return xvd_bus_result(dev->dom, bus->ops->store_write(bus, dev->o.devid, key, val));
}

static int fe_state(struct xvd_dev *dev, int state)
{
	int r = fe_write(dev, XVMSG_XS_STATE, (unsigned long)state);

	if (r == 0)
		dev->fe_state = state;
	return r;
}

int xvd_be_read_u32(struct xvd_dev *dev, const char *key, uint32_t *v)
{
	struct drv_bus *bus = dev->dom->bus;
	char buf[32];
	int r = bus->ops->store_read(bus, dev->o.devid, key, buf, sizeof(buf));

	return r < 0 ? r : xvmsg_parse_u32(buf, v);	/* as the module reads it */
}

/* Wait (bounded) until the backend state is in [lo, hi].  A backend that
 * closes, or writes "error", while we wait for lo < Closing fails us. */
static int wait_backend(struct xvd_dev *dev, int lo, int hi)
{
	struct drv_bus *bus = dev->dom->bus;
	int64_t deadline = xvd_now_ms() + dev->o.timeout_ms;
	uint32_t st = 0, st0 = UINT32_MAX;
	bool moved = false;
	char err[128];

	for (;;) {
		int r = xvd_be_read_u32(dev, XVMSG_XS_STATE, &st);
		int64_t left = deadline - xvd_now_ms();

		if (r == 0 && (int)st >= lo && (int)st <= hi)
			return 0;
		if (r < 0)
			st = 0;
		if (st0 == UINT32_MAX)
			st0 = st;
		moved |= st != st0;
		/* A backend found Closing/Closed (with the error of an earlier
		 * attempt, maybe) has yet to see our Initialising: only a state
		 * it moves to now says something about this attempt. */
		if (lo < XVMSG_STATE_CLOSING && (moved || st0 < XVMSG_STATE_CLOSING)) {
			int e = bus->ops->store_read(bus, dev->o.devid, XVMSG_XS_HOTPLUG_ERROR,
						     err, sizeof(err));

			if (st >= XVMSG_STATE_CLOSING || e == 0 || e == -E2BIG) {
				dev_log(dev, XVD_LOG_ERR, "backend failed (state %u): %s", st,
					e == 0 ? err : "(no readable error key)");
				return -EIO;
			}
		}
		if (left <= 0) {
			dev_log(dev, XVD_LOG_ERR, "backend state %u, waited for %d in vain", st, lo);
			return -ETIMEDOUT;
		}
		r = xvd_bus_result(dev->dom, bus->ops->wait(bus, NULL, 0, (int)left));
		if (r < 0)
			return r;
	}
}

/* ---- handshake --------------------------------------------------------- */

/* Grant n pages of the device region from first_page with consecutive refs. */
static int grant_pages(struct xvd_dev *dev, size_t first_page, unsigned int n, uint32_t *first)
{
	struct drv_bus *bus = dev->dom->bus;
	unsigned int i;
	int r;

	if (bus->ops->mem_grant) {
		r = bus->ops->mem_grant(bus, &dev->region, first_page, n, false, first);
		if (r == 0)
			dev->st.grants += n;
		return r;
	}
	r = bus->ops->gnt_alloc(bus, n, first);
	if (r < 0)
		return r;
	for (i = 0; i < n; i++) {
		r = bus->ops->gnt_grant(bus, *first + i, dev->region.gfn + first_page + i, false);
		if (r < 0)
			break;
	}
	if (r < 0) {
		while (i--)
			bus->ops->gnt_revoke(bus, *first + i);	/* never mapped yet */
		bus->ops->gnt_free(bus, *first, n);
		return r;
	}
	dev->st.grants += n;
	return 0;
}

static int grant_region(struct xvd_dev *dev)
{
	struct drv_bus *bus = dev->dom->bus;
	int r;

	r = grant_pages(dev, 0, 1, &dev->msg_ref);
	if (r < 0)
		return r;
	if (dev->pool_pages) {
		r = grant_pages(dev, 1, dev->pool_pages, &dev->pool_ref);
		if (r < 0) {
			if (!bus->ops->mem_grant) {
				bus->ops->gnt_revoke(bus, dev->msg_ref);
				bus->ops->gnt_free(bus, dev->msg_ref, 1);
			}
			return r;
		}
	}
	dev->granted = true;
	return 0;
}

static void revoke_region(struct xvd_dev *dev)
{
	struct drv_bus *bus = dev->dom->bus;

	if (!dev->granted)
		return;
	if (bus->ops->mem_grant) {	/* the bus ends them with the memory */
		dev->granted = false;
		return;
	}
	for (unsigned int i = 0; i <= dev->pool_pages; i++) {
		uint32_t ref = i ? dev->pool_ref + i - 1 : dev->msg_ref;

		dev->st.revokes++;
		if (bus->ops->gnt_revoke(bus, ref) == -EBUSY) {
			dev->st.revoke_busy++;
			dev_log(dev, XVD_LOG_WARN, "grant %u still mapped by the backend: leaked", ref);
		}
	}
	bus->ops->gnt_free(bus, dev->msg_ref, 1);
	if (dev->pool_pages)
		bus->ops->gnt_free(bus, dev->pool_ref, dev->pool_pages);
	dev->granted = false;
}

/*
 * The message layout revision: the highest one both we (o.msg_revisions)
 * and the backend (msg-revisions; absent: 1) speak.  None: say why in our
 * error key and the log, go Closed, -EPROTONOSUPPORT.  Speaking only 1 we
 * behave as drivers before revisions: no key read or written.
 */
static int pick_revision(struct xvd_dev *dev)
{
	struct drv_bus *bus = dev->dom->bus;
	uint32_t ours = dev->o.msg_revisions ? dev->o.msg_revisions : XVMSG_MSG_REVS_ALL;
	uint32_t theirs = 1u << XVMSG_MSG_REV_1;
	char buf[64], why[256];
	int r, rev;

	dev->msg_rev = XVMSG_MSG_REV_1;
	dev->msg_rev_key = false;
	if (ours == 1u << XVMSG_MSG_REV_1)
		return 0;
	r = bus->ops->store_read(bus, dev->o.devid, XVMSG_XS_MSG_REVISIONS, buf, sizeof(buf));
	if (r == 0 && xvmsg_parse_revisions(buf, &theirs)) {
		snprintf(why, sizeof(why), "backend key %s '%.32s' is no list of revisions",
			 XVMSG_XS_MSG_REVISIONS, buf);
		theirs = 0;
	} else if (r && r != -ENOENT) {
		return xvd_bus_result(dev->dom, r);
	}
	rev = xvmsg_pick_revision(ours, theirs);
	if (rev < 0) {
		if (theirs)
			snprintf(why, sizeof(why), "no common virtio-msg message layout revision: "
				 "backend speaks %.40s, this driver 0x%x (bit r = revision r)",
				 r == 0 ? buf : "1 (no msg-revisions key)", ours);
		dev_log(dev, XVD_LOG_ERR, "%s", why);
		bus->ops->store_write(bus, dev->o.devid, XVMSG_XS_HOTPLUG_ERROR, why);
		fe_state(dev, XVMSG_STATE_CLOSED);
		return -EPROTONOSUPPORT;
	}
	dev->msg_rev = (unsigned int)rev;
	dev->msg_rev_key = r == 0;
	dev_log(dev, XVD_LOG_DEBUG, "message layout revision %d", rev);
	return 0;
}

static int publish(struct xvd_dev *dev)
{
	struct drv_bus *bus = dev->dom->bus;
	int r = 0;

	if (dev->msg_rev_key)
		r = fe_write(dev, XVMSG_XS_MSG_REVISION, dev->msg_rev);
	if (!r)
		r = xvd_bus_result(dev->dom, bus->ops->store_write(bus, dev->o.devid,
								   XVMSG_XS_MODE,
								   xvmsg_mode_name(dev->o.mode)));
	if (!r)
		r = fe_write(dev, XVMSG_XS_MSG_REF, dev->msg_ref);
	if (!r)
		r = fe_write(dev, XVMSG_XS_EVTCHN, dev->msg_port);
	if (!r)
		r = fe_write(dev, XVMSG_XS_POOL_REF, dev->pool_pages ? dev->pool_ref : 0);
	if (!r)
		r = fe_write(dev, XVMSG_XS_POOL_PAGES, dev->pool_pages);
	if (!r)
		r = fe_write(dev, XVMSG_XS_NUM_QUEUES, dev->num_queues);
	for (unsigned int q = 0; !r && q < dev->num_queues; q++) {
		char key[32];

		snprintf(key, sizeof(key), XVMSG_XS_VQ_EVTCHN_FMT, q);
		r = fe_write(dev, key, dev->vq_port[q]);
	}
	return r;
}

/*
 * A frontend instance that died without closing (kill -9 of the process
 * that had the device) leaves the device Initialised or Connected, and the
 * backend ignores a new Initialising from a device it considers live.
 * Start over the way Linux's xenbus_reset_state() does for a kexec'd
 * kernel: Closing, wait (bounded) for the backend to close, then
 * Initialising again.
 */
static int reset_stale(struct xvd_dev *dev)
{
	uint32_t st;
	int r;

	if (xvd_be_read_u32(dev, XVMSG_XS_STATE, &st) < 0 ||
	    (st != XVMSG_STATE_INITIALISED && st != XVMSG_STATE_CONNECTED))
		return 0;
	dev_log(dev, XVD_LOG_INFO, "backend still in state %u from an earlier frontend: "
		"resetting the device", st);
	r = fe_state(dev, XVMSG_STATE_CLOSING);
	if (!r)
		r = wait_backend(dev, XVMSG_STATE_CLOSED, XVMSG_STATE_CLOSED);
	if (!r)
		r = fe_state(dev, XVMSG_STATE_INITIALISING);
	if (r < 0)
		dev_log(dev, XVD_LOG_ERR, "could not reset the stale device: %s", strerror(-r));
	return r;
}

int xvd_xenbus_connect(struct xvd_dev *dev)
{
	struct xvd_domain *d = dev->dom;
	struct drv_bus *bus = d->bus;
	uint32_t maxq, maxpool;
	int r;

	r = xvd_bus_result(d, bus->ops->attach(bus, dev->export_name, dev->o.devid,
					       (unsigned int)dev->o.mode, dev->o.pool_pages));
	if (r < 0) {
		dev_log(dev, XVD_LOG_ERR, "attach %s: %s", dev->export_name, strerror(-r));
		return r;
	}
	dev->attached = true;
	dev->fe_state = XVMSG_STATE_INITIALISING;
	r = reset_stale(dev);
	if (r < 0)
		return r;
	r = wait_backend(dev, XVMSG_STATE_INITWAIT, XVMSG_STATE_INITWAIT);
	if (r < 0)
		return r;
	r = pick_revision(dev);
	if (r < 0)
		return r;
	if (xvd_be_read_u32(dev, XVMSG_XS_MAX_QUEUES, &maxq) < 0 || maxq < dev->num_queues) {
		dev_log(dev, XVD_LOG_ERR, "backend offers too few queues (max-queues)");
		return -ENODEV;
	}
	if (xvd_be_read_u32(dev, XVMSG_XS_MAX_POOL, &maxpool) < 0)
		maxpool = XVMSG_MAX_POOL_PAGES;
	{
		/* The toolstack's choice of mode is the one the backend enforces. */
		char want[16];

		if (bus->ops->store_read(bus, dev->o.devid, XVMSG_XS_MODE, want, sizeof(want)) == 0 &&
		    strcmp(want, xvmsg_mode_name(dev->o.mode))) {
			dev_log(dev, XVD_LOG_ERR, "the toolstack set mode '%s', we were asked for '%s'",
				want, xvmsg_mode_name(dev->o.mode));
			return -EINVAL;
		}
	}
	if (dev->o.mode == XVMSG_MODE_POOL) {
		dev->pool_pages = dev->o.pool_pages ? dev->o.pool_pages : XVMSG_DEFAULT_POOL_PAGES;
		if (dev->pool_pages > maxpool) {
			dev_log(dev, XVD_LOG_WARN, "pool clamped to max-pool-pages %u", maxpool);
			dev->pool_pages = (unsigned int)maxpool;
		}
		if (!dev->pool_pages)
			return -EINVAL;
	} else if (!d->ram_shared) {
		/* grant/full: the backend may reach RAM frames (pool: never). */
		r = xvd_bus_result(d, bus->ops->mem_share(bus, &d->ram.mem));
		if (r < 0)
			return r;
		d->ram_shared = true;
	}

	r = bus->ops->mem_alloc(bus, DRV_MEM_DEV, dev->o.devid, 1 + dev->pool_pages, &dev->region);
	if (r < 0)
		return r;
	dev->page = dev->region.va;
	xvmsg_msg_page_init(dev->page);
	dev->d2b = (struct xvd_mring){ &dev->page->d2b, dev->page->d2b_slot, 0 };
	dev->b2d = (struct xvd_mring){ &dev->page->b2d, dev->page->b2d_slot, 0 };
	r = grant_region(dev);
	if (r < 0)
		return r;
	r = xvd_dma_init(&dev->dma, dev->o.mode, bus, &d->ram, &dev->st, &d->log);
	if (r < 0)
		return r;
	if (dev->pool_pages) {
		r = xvd_dma_pool_init(&dev->dma, (uint8_t *)dev->region.va + XVMSG_PAGE_SIZE,
				      dev->pool_pages, dev->pool_ref);
		if (r < 0)
			return r;
	}
	r = xvd_bus_result(d, bus->ops->mem_share(bus, &dev->region));
	if (r < 0)
		return r;
	r = xvd_bus_result(d, bus->ops->evtchn_alloc(bus, &dev->msg_port));
	if (r < 0)
		return r;
	for (; dev->nports < dev->num_queues; dev->nports++) {
		r = xvd_bus_result(d, bus->ops->evtchn_alloc(bus, &dev->vq_port[dev->nports]));
		if (r < 0)
			return r;
	}
	r = publish(dev);
	if (!r)
		r = fe_state(dev, XVMSG_STATE_INITIALISED);
	if (!r)
		r = wait_backend(dev, XVMSG_STATE_CONNECTED, XVMSG_STATE_CONNECTED);
	if (!r)
		r = fe_state(dev, XVMSG_STATE_CONNECTED);
	return r;
}

void xvd_xenbus_disconnect(struct xvd_dev *dev)
{
	struct xvd_domain *d = dev->dom;
	struct drv_bus *bus = d->bus;

	if (dev->attached && !d->gone && dev->fe_state >= XVMSG_STATE_INITIALISED) {
		if (fe_state(dev, XVMSG_STATE_CLOSING) == 0)
			wait_backend(dev, XVMSG_STATE_CLOSED, XVMSG_STATE_CLOSED);
	}
	/* The backend has let go (or is gone, or timed out): take back memory. */
	xvd_dev_teardown_queues(dev);
	revoke_region(dev);
	if (dev->attached && !d->gone) {
		fe_state(dev, XVMSG_STATE_CLOSED);
		xvd_bus_result(d, bus->ops->detach(bus, dev->o.devid));
	}
	dev->attached = false;
	if (dev->msg_port)
		bus->ops->evtchn_free(bus, dev->msg_port);
	while (dev->nports)
		bus->ops->evtchn_free(bus, dev->vq_port[--dev->nports]);
	dev->msg_port = 0;
	xvd_dma_destroy(&dev->dma);
	if (dev->region.va)
		bus->ops->mem_free(bus, &dev->region);
	dev->page = NULL;
}

/* ---- device lifetime --------------------------------------------------- */

int xvd_dev_open(struct xvd_domain *d, const struct xvd_dev_opts *o, uint32_t device_id,
		 unsigned int num_queues, struct xvd_dev **out)
{
	return xvd_dev_open_ready(d, o, device_id, num_queues, NULL, NULL, out);
}

int xvd_dev_open_ready(struct xvd_domain *d, const struct xvd_dev_opts *o, uint32_t device_id,
		       unsigned int num_queues, int (*before_ready)(struct xvd_dev *, void *),
		       void *arg, struct xvd_dev **out)
{
	struct xvd_dev *dev;
	int r;

	if (!o || !o->export_name || !*o->export_name || strlen(o->export_name) >= 32 ||
	    o->devid > XVD_MAX_DEVID || (unsigned int)o->mode >= XVMSG_NR_MODES ||
	    !num_queues || num_queues > XVMSG_MAX_QUEUES || o->pool_pages > XVMSG_MAX_POOL_PAGES)
		return -EINVAL;
	if (d->gone)
		return -ENODEV;
	for (dev = d->devs; dev; dev = dev->next)
		if (dev->o.devid == o->devid)
			return -EEXIST;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->dom = d;
	dev->o = *o;
	if (dev->o.timeout_ms <= 0)
		dev->o.timeout_ms = d->timeout_ms;
	snprintf(dev->export_name, sizeof(dev->export_name), "%s", o->export_name);
	dev->o.export_name = dev->export_name;
	snprintf(dev->name, sizeof(dev->name), "dev%u(%s)", o->devid, dev->export_name);
	dev->device_id = device_id;
	dev->num_queues = num_queues;
	dev->before_ready = before_ready;
	dev->before_ready_arg = arg;
	dev->next = d->devs;
	d->devs = dev;

	r = xvd_xenbus_connect(dev);
	if (r == 0)
		r = xvd_virtio_init(dev);
	if (r < 0) {
		dev_log(dev, XVD_LOG_ERR, "open failed: %s", strerror(-r));
		xvd_dev_close(dev);
		return r;
	}
	dev_log(dev, XVD_LOG_INFO, "connected: %s mode, features %#llx, pool %u pages",
		xvmsg_mode_name(o->mode),
		(unsigned long long)dev->features, dev->pool_pages);
	*out = dev;
	return 0;
}

int xvd_dev_open_type(struct xvd_domain *d, const struct xvd_dev_opts *o,
		      const struct xvd_dev_type *t, unsigned int num_queues, void *arg,
		      struct xvd_dev **out)
{
	void *priv = NULL;
	struct xvd_dev *dev;
	int r;

	if (t->priv_size && !(priv = calloc(1, t->priv_size)))
		return -ENOMEM;
	r = xvd_dev_open_ready(d, o, t->device_id, num_queues, t->before_ready, priv, &dev);
	if (r < 0) {
		free(priv);
		return r;
	}
	dev->type_priv = priv;
	dev->type_free = t->free;
	r = t->setup ? t->setup(dev, arg) : 0;
	if (r < 0) {
		xvd_dev_close(dev);
		return r;
	}
	*out = dev;
	return 0;
}

void xvd_dev_close(struct xvd_dev *dev)
{
	struct xvd_dev **pp;

	if (!dev)
		return;
	if (dev->vq_ready && !dev->err)
		xvd_set_status(dev, 0);		/* reset: the device drops the queues */
	xvd_xenbus_disconnect(dev);
	if (dev->type_free)
		dev->type_free(dev);
	for (pp = &dev->dom->devs; *pp; pp = &(*pp)->next)
		if (*pp == dev) {
			*pp = dev->next;
			break;
		}
	free(dev);
}
