// SPDX-License-Identifier: MIT
/*
 * The Xen bus for the userspace driver side: a guest domain's process that
 * acts as an xvmsg frontend, so xvmsg-backend can be exercised on real Xen
 * without the guest kernel module.
 *
 *   memory, grants  /dev/xen/gntalloc: the message page and the pool are
 *                   one region whose pages must have consecutive grant
 *                   references (the pool is described by its first ref).
 *                   The kernel hands references out from a free list that
 *                   is last-in first-out and, after open/close churn, a mix
 *                   of runs; gntalloc cannot ask for a consecutive range.
 *                   So pages are granted one at a time until a run of
 *                   consecutive refs as long as the region shows up among
 *                   them (bounded: REGION_TRIES(pages) grants), the run is
 *                   kept, mapped in ref order, and every other grant is
 *                   given back at once.  No run within the bound fails the
 *                   device with a clear message and leaks nothing.
 *   event channels  libxenevtchn: unbound ports the backend binds to.
 *   xenstore        libxenstore: the toolstack (xvmsg-ctl) made the dirs.
 *
 * Pool mode only: gntalloc can grant only pages it allocates itself, so
 * per-request grants of arbitrary memory (grant mode) and the guest frame
 * numbers that full mode needs are the guest kernel module's business.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <xen/gntalloc.h>

#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

#include <xvmsg/wire.h>
#include <xvmsg/xs-readf.h>

#include "drv-priv.h"

#define MAX_REGIONS 64
#define MAX_PORTS 1024

struct xen_region {
	void *va;
	size_t pages;
	uint32_t *refs;		/* one per page, ascending */
	uint64_t *index;	/* gntalloc offsets, for the deallocation */
};

struct xen_bus {
	struct drv_bus bus;
	const struct xvd_logger *log;
	struct xs_handle *xs;
	xenevtchn_handle *xce;
	int gntalloc;		/* /dev/xen/gntalloc */
	unsigned int domid, bdomid;
	int timeout_ms;
	struct xen_region region[MAX_REGIONS];
	uint32_t pending[MAX_PORTS];	/* notifications taken by wait, not acked */
	bool gone;
};

#define to_xen(b) ((struct xen_bus *)(b))

static unsigned int x_domid(struct drv_bus *bus)
{
	return to_xen(bus)->domid;
}

static unsigned int x_bdomid(struct drv_bus *bus)
{
	return to_xen(bus)->bdomid;
}

/* Grants come with the memory (mem_grant); the generic calls do not apply. */
static int x_gnt_alloc(struct drv_bus *bus, unsigned int n, uint32_t *first)
{
	return -EOPNOTSUPP;
}

static void x_gnt_free(struct drv_bus *bus, uint32_t first, unsigned int n)
{
}

static int x_gnt_grant(struct drv_bus *bus, uint32_t ref, uint64_t gfn, bool readonly)
{
	return -EOPNOTSUPP;
}

static int x_gnt_revoke(struct drv_bus *bus, uint32_t ref)
{
	return 0;	/* ended when the memory is unshared */
}

static int region_alloc(struct xen_bus *b, struct xen_region *r, size_t pages);

static int x_mem_alloc(struct drv_bus *bus, enum drv_mem_kind kind, unsigned int devid,
		       size_t pages, struct drv_mem *mem)
{
	struct xen_bus *b = to_xen(bus);
	unsigned int i;
	int r;

	memset(mem, 0, sizeof(*mem));
	if (kind == DRV_MEM_RAM) {
		/* Application buffers: ordinary memory, bounced in pool mode. */
		mem->va = mmap(NULL, pages * XVMSG_PAGE_SIZE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem->va == MAP_FAILED)
			return -ENOMEM;
		mem->pages = pages;
		mem->handle = -1;
		return 0;
	}
	if (!b->bdomid)
		return -EINVAL;
	for (i = 0; i < MAX_REGIONS && b->region[i].va; i++)
		;
	if (i == MAX_REGIONS || pages == 0 || pages > 65536)
		return -ENOSPC;
	r = region_alloc(b, &b->region[i], pages);
	if (r)
		return r;
	mem->va = b->region[i].va;
	mem->pages = pages;
	mem->handle = (int)i;
	return 0;
}

/* Grants one region may take while it looks for a run of consecutive refs:
 * the region, what the free list's recycled head may hold before its
 * never-used (consecutive) tail, and slack.  gntalloc's own limit (module
 * parameter "limit", 1024 by default) may stop it earlier. */
#define REGION_TRIES(pages) (2 * (pages) + 256)

static void gref_dealloc(struct xen_bus *b, uint64_t index)
{
	struct ioctl_gntalloc_dealloc_gref d = { .index = index, .count = 1 };

	/* gntalloc ends the grant; a page the backend still maps is kept by
	 * the kernel until it lets go, and its ref is never reused before. */
	ioctl(b->gntalloc, IOCTL_GNTALLOC_DEALLOC_GREF, &d);
}

static void region_free(struct xen_bus *b, struct xen_region *r, size_t allocated)
{
	size_t k;

	if (r->va)
		munmap(r->va, r->pages * XVMSG_PAGE_SIZE);
	for (k = 0; k < allocated; k++)
		gref_dealloc(b, r->index[k]);
	free(r->refs);
	free(r->index);
	memset(r, 0, sizeof(*r));
}

/*
 * Grant pages one by one until `pages` consecutive refs are among them.
 * ref[]/idx[] (room for tries) are kept sorted by ref; on success the run is
 * moved to r->refs/r->index and every other grant is given back.  On failure
 * everything is given back.  Returns 0 or a negative errno.
 */
static int grant_run(struct xen_bus *b, struct xen_region *r, size_t pages, uint32_t *ref,
		     uint64_t *idx, size_t tries)
{
	size_t got = 0, first = SIZE_MAX, k, j, lo, hi;
	int e = 0;

	while (first == SIZE_MAX && got < tries) {
		struct ioctl_gntalloc_alloc_gref a = { .domid = (uint16_t)b->bdomid,
						       .flags = GNTALLOC_FLAG_WRITABLE, .count = 1 };

		if (ioctl(b->gntalloc, IOCTL_GNTALLOC_ALLOC_GREF, &a)) {
			e = errno;
			break;
		}
		for (j = got; j > 0 && ref[j - 1] > a.gref_ids[0]; j--) {
			ref[j] = ref[j - 1];
			idx[j] = idx[j - 1];
		}
		ref[j] = a.gref_ids[0];
		idx[j] = a.index;
		got++;
		/* Only the run through the new ref can have grown. */
		for (lo = j; lo > 0 && ref[lo - 1] + 1 == ref[lo]; lo--)
			;
		for (hi = j; hi + 1 < got && ref[hi] + 1 == ref[hi + 1]; hi++)
			;
		if (hi - lo + 1 >= pages)
			first = lo;
	}
	if (first == SIZE_MAX) {
		for (k = 0; k < got; k++)
			gref_dealloc(b, idx[k]);
		if (e)
			xvd_logf(b->log, XVD_LOG_ERR, "gntalloc: cannot grant page %zu to domain %u "
				 "(looking for %zu consecutive refs): %s (raise xen-gntalloc's "
				 "limit?)", got + 1, b->bdomid, pages, strerror(e));
		else
			xvd_logf(b->log, XVD_LOG_ERR, "gntalloc: no %zu consecutive grant refs "
				 "among %zu granted: the guest's grant refs are too fragmented; "
				 "try a smaller pool", pages, got);
		return e ? -e : -EAGAIN;
	}
	memcpy(r->refs, ref + first, pages * sizeof(*ref));
	memcpy(r->index, idx + first, pages * sizeof(*idx));
	for (k = 0; k < got; k++)
		if (k < first || k >= first + pages)
			gref_dealloc(b, idx[k]);
	if (got > pages)
		xvd_logf(b->log, XVD_LOG_INFO, "gntalloc: %zu grants taken for a run of %zu "
			 "consecutive refs (%u..%u), %zu given back", got, pages, r->refs[0],
			 r->refs[pages - 1], got - pages);
	return 0;
}

static int region_alloc(struct xen_bus *b, struct xen_region *r, size_t pages)
{
	size_t tries = REGION_TRIES(pages), k;
	uint32_t *ref;
	uint64_t *idx;
	char *va;
	int e;

	r->pages = pages;
	r->refs = calloc(pages, sizeof(*r->refs));
	r->index = calloc(pages, sizeof(*r->index));
	ref = calloc(tries, sizeof(*ref));
	idx = calloc(tries, sizeof(*idx));
	if (!r->refs || !r->index || !ref || !idx) {
		free(ref);
		free(idx);
		region_free(b, r, 0);
		return -ENOMEM;
	}
	e = grant_run(b, r, pages, ref, idx, tries);
	free(ref);
	free(idx);
	if (e) {
		region_free(b, r, 0);
		return e;
	}
	va = mmap(NULL, pages * XVMSG_PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (va == MAP_FAILED) {
		region_free(b, r, pages);
		return -ENOMEM;
	}
	r->va = va;
	for (k = 0; k < pages; k++) {
		if (mmap(va + k * XVMSG_PAGE_SIZE, XVMSG_PAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, b->gntalloc, (off_t)r->index[k]) == MAP_FAILED) {
			e = errno;
			region_free(b, r, pages);
			return -e;
		}
	}
	memset(va, 0, pages * XVMSG_PAGE_SIZE);
	return 0;
}

static void x_mem_free(struct drv_bus *bus, struct drv_mem *mem)
{
	struct xen_bus *b = to_xen(bus);

	if (!mem->va)
		return;
	if (mem->handle < 0)
		munmap(mem->va, mem->pages * XVMSG_PAGE_SIZE);
	else
		region_free(b, &b->region[mem->handle], b->region[mem->handle].pages);
	mem->va = NULL;
}

static int x_mem_share(struct drv_bus *bus, const struct drv_mem *mem)
{
	return 0;
}

static int x_mem_grant(struct drv_bus *bus, const struct drv_mem *mem, size_t first_page,
		       unsigned int n, bool readonly, uint32_t *first_ref)
{
	struct xen_bus *b = to_xen(bus);
	struct xen_region *r;
	unsigned int i;

	if (mem->handle < 0 || mem->handle >= MAX_REGIONS || readonly)
		return -EOPNOTSUPP;
	r = &b->region[mem->handle];
	if (first_page + n > r->pages)
		return -EINVAL;
	for (i = 1; i < n; i++) {
		if (r->refs[first_page + i] != r->refs[first_page] + i) {
			/* region_alloc takes a run: cannot happen. */
			xvd_logf(b->log, XVD_LOG_ERR, "gntalloc gave non-consecutive grant refs "
				 "(%u then %u): the pool cannot be described",
				 r->refs[first_page + i - 1], r->refs[first_page + i]);
			return -EAGAIN;
		}
	}
	*first_ref = r->refs[first_page];
	return 0;
}

static int x_evtchn_alloc(struct drv_bus *bus, uint32_t *port)
{
	struct xen_bus *b = to_xen(bus);
	xenevtchn_port_or_error_t p = xenevtchn_bind_unbound_port(b->xce, b->bdomid);

	if (p < 0)
		return -errno;
	if (p >= MAX_PORTS) {
		xenevtchn_unbind(b->xce, (evtchn_port_t)p);
		return -ENOSPC;
	}
	b->pending[p] = 0;
	*port = (uint32_t)p;
	return 0;
}

static void x_evtchn_free(struct drv_bus *bus, uint32_t port)
{
	xenevtchn_unbind(to_xen(bus)->xce, port);
}

static int x_evtchn_notify(struct drv_bus *bus, uint32_t port)
{
	return xenevtchn_notify(to_xen(bus)->xce, port) ? -errno : 0;
}

static int x_evtchn_ack(struct drv_bus *bus, uint32_t port)
{
	struct xen_bus *b = to_xen(bus);
	uint32_t v;

	if (port >= MAX_PORTS)
		return -EINVAL;
	v = b->pending[port];
	b->pending[port] = 0;
	return v > INT32_MAX ? INT32_MAX : (int)v;
}

static int x_evtchn_fd(struct drv_bus *bus, uint32_t port)
{
	return xenevtchn_fd(to_xen(bus)->xce);
}

static int x_get_fd(struct drv_bus *bus)
{
	return xs_fileno(to_xen(bus)->xs);
}

static int x_dispatch(struct drv_bus *bus)
{
	struct xen_bus *b = to_xen(bus);
	char **vec;

	while ((vec = xs_check_watch(b->xs)))
		free(vec);
	return b->gone ? -ENODEV : 0;
}

static void take_events(struct xen_bus *b)
{
	struct pollfd p = { .fd = xenevtchn_fd(b->xce), .events = POLLIN };

	while (poll(&p, 1, 0) == 1) {
		xenevtchn_port_or_error_t port = xenevtchn_pending(b->xce);

		if (port < 0)
			break;
		if (port < MAX_PORTS)
			b->pending[port]++;
		xenevtchn_unmask(b->xce, (evtchn_port_t)port);
	}
}

static int x_wait(struct drv_bus *bus, const uint32_t *ports, unsigned int n, int timeout_ms)
{
	struct xen_bus *b = to_xen(bus);
	struct pollfd p[2] = {
		{ .fd = xenevtchn_fd(b->xce), .events = POLLIN },
		{ .fd = xs_fileno(b->xs), .events = POLLIN },
	};
	unsigned int i;
	int r;

	for (i = 0; i < n; i++)
		if (ports[i] < MAX_PORTS && b->pending[ports[i]])
			return 1;
	r = poll(p, 2, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 1 : -errno;
	if (r == 0)
		return 0;
	if (p[0].revents)
		take_events(b);
	if (p[1].revents)
		x_dispatch(bus);
	return 1;
}

static int x_store_write(struct drv_bus *bus, unsigned int devid, const char *key,
			 const char *val);

/* The toolstack attached the device: find it and its backend. */
static int x_attach(struct drv_bus *bus, const char *export_name, unsigned int devid,
		    unsigned int mode, unsigned int pool_pages)
{
	struct xen_bus *b = to_xen(bus);
	char *bid = xvmsg_xs_readf(b->xs, "device/%s/%u/%s", XVMSG_XS_CLASS, devid, XVMSG_XS_BACKEND_ID);
	char *bpath = xvmsg_xs_readf(b->xs, "device/%s/%u/%s", XVMSG_XS_CLASS, devid, XVMSG_XS_BACKEND);
	char watch[300];
	uint32_t id;

	if (!bid || !bpath) {
		free(bid);
		free(bpath);
		xvd_logf(b->log, XVD_LOG_ERR, "no xvmsg device %u for this domain: attach it with "
			 "xvmsg-ctl in dom0 first", devid);
		return -ENOENT;
	}
	if (xvmsg_parse_u32(bid, &id) || id == 0 || id >= 0x7ff0 ||
	    (b->bdomid && b->bdomid != id)) {
		xvd_logf(b->log, XVD_LOG_ERR, "device %u: backend-id '%s' is not a usable domain%s",
			 devid, bid, b->bdomid ? " (or not the one of our other devices)" : "");
		free(bid);
		free(bpath);
		return -EINVAL;
	}
	free(bid);
	b->bdomid = id;
	snprintf(watch, sizeof(watch), "%s", bpath);
	free(bpath);
	if (!xs_watch(b->xs, watch, "xvmsg-drv") && errno != EEXIST) {
		xvd_logf(b->log, XVD_LOG_ERR, "device %u: cannot watch %s: %s", devid, watch,
			 strerror(errno));
		return -errno;
	}
	/* Start (or start over) the handshake: the directories outlive us. */
	return x_store_write(bus, devid, XVMSG_XS_STATE, "1");
}

static int x_detach(struct drv_bus *bus, unsigned int devid)
{
	return 0;	/* the toolstack removes the device */
}

static int x_store_write(struct drv_bus *bus, unsigned int devid, const char *key, const char *val)
{
	struct xen_bus *b = to_xen(bus);
	char path[256];

	snprintf(path, sizeof(path), "device/%s/%u/%s", XVMSG_XS_CLASS, devid, key);
	return xs_write(b->xs, XBT_NULL, path, val, (unsigned int)strlen(val)) ? 0 : -errno;
}

static int x_store_read(struct drv_bus *bus, unsigned int devid, const char *key, char *buf,
			size_t len)
{
	struct xen_bus *b = to_xen(bus);
	char *bpath = xvmsg_xs_readf(b->xs, "device/%s/%u/%s", XVMSG_XS_CLASS, devid, XVMSG_XS_BACKEND);
	char *v;
	size_t n;

	if (!bpath)
		return -ENOENT;
	v = xvmsg_xs_readf(b->xs, "%s/%s", bpath, key);
	free(bpath);
	if (!v)
		return -ENOENT;
	n = strlen(v);
	if (n + 1 > len) {
		free(v);
		return -E2BIG;
	}
	memcpy(buf, v, n + 1);
	free(v);
	return 0;
}

/* Also what drv_xen_open() opened before it failed. */
static void x_close(struct drv_bus *bus)
{
	struct xen_bus *b = to_xen(bus);
	unsigned int i;

	for (i = 0; i < MAX_REGIONS; i++)
		if (b->region[i].va)
			region_free(b, &b->region[i], b->region[i].pages);
	if (b->gntalloc >= 0)
		close(b->gntalloc);
	if (b->xce)
		xenevtchn_close(b->xce);
	if (b->xs)
		xs_close(b->xs);
	free(b);
}

static const struct drv_bus_ops xen_ops = {
	.name = "xen",
	.close = x_close,
	.domid = x_domid,
	.backend_domid = x_bdomid,
	.gnt_alloc = x_gnt_alloc,
	.gnt_free = x_gnt_free,
	.gnt_grant = x_gnt_grant,
	.gnt_revoke = x_gnt_revoke,
	.mem_alloc = x_mem_alloc,
	.mem_free = x_mem_free,
	.mem_share = x_mem_share,
	.mem_grant = x_mem_grant,
	.evtchn_alloc = x_evtchn_alloc,
	.evtchn_free = x_evtchn_free,
	.evtchn_notify = x_evtchn_notify,
	.evtchn_ack = x_evtchn_ack,
	.evtchn_fd = x_evtchn_fd,
	.get_fd = x_get_fd,
	.dispatch = x_dispatch,
	.wait = x_wait,
	.attach = x_attach,
	.detach = x_detach,
	.store_write = x_store_write,
	.store_read = x_store_read,
};

int drv_xen_open(int timeout_ms, const struct xvd_logger *log, struct drv_bus **out)
{
	struct xen_bus *b = calloc(1, sizeof(*b));
	char *id;
	int r;

	if (!b)
		return -ENOMEM;
	b->bus.ops = &xen_ops;
	b->log = log;
	b->timeout_ms = timeout_ms;
	b->xs = xs_open(0);
	b->xce = xenevtchn_open(NULL, 0);
	b->gntalloc = open("/dev/xen/gntalloc", O_RDWR | O_CLOEXEC);
	if (!b->xs || !b->xce || b->gntalloc < 0) {
		r = -errno;
		xvd_logf(log, XVD_LOG_ERR, "cannot open %s: %s (load xen-evtchn, xen-gntalloc; "
			 "is xenbus mounted?)", !b->xs ? "xenstore" : !b->xce ? "event channels"
			 : "gntalloc", strerror(errno));
		goto err;
	}
	id = xvmsg_xs_readf(b->xs, "domid");
	if (!id) {
		r = -errno;
		goto err;
	}
	r = xvmsg_parse_u32(id, &b->domid) ? -EINVAL : 0;
	free(id);
	if (r)
		goto err;
	*out = &b->bus;
	return 0;
err:
	x_close(&b->bus);
	return r ? r : -EIO;
}
