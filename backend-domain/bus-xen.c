// SPDX-License-Identifier: MIT
/*
 * The Xen bus: the xvb_bus interface on Xen's libraries.
 *
 *   grants          libxengnttab (/dev/xen/gntdev): pages of the frontend
 *                   mapped by reference, batched; the library fails and undoes
 *                   a batch in which any single reference fails.
 *   foreign frames  libxenforeignmemory (privcmd), full mode only; needs a
 *                   privileged backend (dom0).  Every page's error is checked.
 *   event channels  libxenevtchn: interdomain binds, pending + unmask; a
 *                   queue channel gets a handle (and an fd) of its own.
 *   xenstore        libxenstore: reads, writes, watches.
 *
 * The backend is an unprivileged process in a driver domain: nothing here
 * needs more than gntdev, evtchn and xenbus access, except full mode.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/mman.h>

#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xengnttab.h>
#include <xenstore.h>

#include <xvmsg/wire.h>

#include "bus.h"

#define PAGE XVMSG_PAGE_SIZE

/* Grant mode maps and unmaps per request: every chain in flight on every
 * device is a mapping, found again by address at unmap. */
#define XEN_MAP_BUCKETS	256

struct xen_map {
	struct xen_map *next;
	void *addr;
	unsigned int n;
	bool foreign;
};

struct xen_bus {
	struct xvb_bus bus;
	struct xvb_bus_events ev;
	xengnttab_handle *xgt;
	xenevtchn_handle *xce;
	xenforeignmemory_handle *fmem;	/* opened on first full-mode map */
	struct xs_handle *xs;
	int epfd;
	uint32_t domid;
	struct xvb_bus_caps caps;
	/* map and unmap may come from queue threads (bus.h): the table of
	 * mappings, and fmem's opening, are under map_lock, and nothing else
	 * is: libxengnttab and libxenforeignmemory calls on one handle are
	 * safe from several threads (an mmap and an ioctl each; gntdev and
	 * privcmd lock inside), and a foreign map may take long (privcmd
	 * retries paged-out frames), so no call is made under the lock. */
	pthread_mutex_t map_lock;
	struct xen_map *maps[XEN_MAP_BUCKETS];
};

/* The bucket of a mapping: by its address, which mmap hands out page-aligned. */
static struct xen_map **map_bucket(struct xen_bus *xb, const void *addr)
{
	uintptr_t a = (uintptr_t)addr / PAGE;

	return &xb->maps[(a ^ (a >> 8)) % XEN_MAP_BUCKETS];
}

/* A queue channel: a xenevtchn handle of its own (Linux's evtchn device
 * delivers a port on the file that bound it, and notifies only ports that
 * file bound), so its thread shares nothing with the bus's. */
struct xvb_chan {
	xenevtchn_handle *xce;
	evtchn_port_t port;
};

#define XB(b) ((struct xen_bus *)(b))

static int x_get_fd(struct xvb_bus *b)
{
	return XB(b)->epfd;
}

static uint32_t x_self_domid(struct xvb_bus *b)
{
	return XB(b)->domid;
}

/* Full mode maps guest frames: that takes the foreign-mapping privilege of
 * the control domain.  A driver domain cannot, and says why.  Frames are
 * never kept mapped (bus.h). */
static void x_caps_init(struct xvb_bus_caps *caps, bool allow_full)
{
	char domcaps[64] = "";
	FILE *f;

	memset(caps, 0, sizeof(*caps));
	if (!allow_full) {
		snprintf(caps->no_frames, sizeof(caps->no_frames),
			 "full mode is switched off in this backend (--no-full)");
		return;
	}
	f = fopen("/proc/xen/capabilities", "r");
	if (f) {
		if (!fgets(domcaps, sizeof(domcaps), f))
			domcaps[0] = '\0';
		fclose(f);
	}
	if (!strstr(domcaps, "control_d")) {
		snprintf(caps->no_frames, sizeof(caps->no_frames),
			 "full mode needs a backend with foreign-mapping privilege (dom0); "
			 "this domain has none");
		return;
	}
	caps->map_frames = true;
}

static const struct xvb_bus_caps *x_caps(struct xvb_bus *b)
{
	return &XB(b)->caps;
}

static int x_dispatch(struct xvb_bus *b)
{
	struct xen_bus *xb = XB(b);
	struct pollfd p = { .fd = xenevtchn_fd(xb->xce), .events = POLLIN };
	char **vec;
	int budget = 256;

	/* Event channels: the fd is blocking, so only read what poll promises. */
	while (budget-- > 0 && poll(&p, 1, 0) == 1) {
		xenevtchn_port_or_error_t port = xenevtchn_pending(xb->xce);

		if (port < 0)
			break;
		xb->ev.event(xb->ev.ctx, (uint32_t)port);
		/* Unmask after the work: a signal that came meanwhile is
		 * delivered again right away. */
		xenevtchn_unmask(xb->xce, (evtchn_port_t)port);
	}
	/* Watches: a bounded number per call too.  Handling one may write
	 * xenstore (and so fire more of them); with no bound a busy or slow
	 * xenstore keeps this loop going and every event channel waits.  The
	 * rest stay queued, and the fd readable, for the next call. */
	budget = 16;
	errno = 0;
	while (budget-- > 0 && (vec = xs_check_watch(xb->xs))) {
		xb->ev.watch(xb->ev.ctx, vec[XS_WATCH_PATH]);
		free(vec);
		errno = 0;
	}
	/* libxenstore says EINVAL once its connection is gone (its reader
	 * thread closed it), then on every call: the event channels and
	 * grants still work, xenstore does not. */
	if (errno == EINVAL)
		return -ENOTCONN;
	if (errno != EAGAIN && errno != 0)
		return -errno;
	return 0;
}

/* ---- xenstore ---- */

static int x_store_read(struct xvb_bus *b, const char *path, char *buf, size_t len)
{
	unsigned int n;
	char *v = xs_read(XB(b)->xs, XBT_NULL, path, &n);

	if (!v)
		return errno == ENOENT ? -ENOENT : -(errno ? errno : EIO);
	if (n + 1 > len) {
		free(v);
		return -E2BIG;
	}
	memcpy(buf, v, n);
	buf[n] = '\0';
	free(v);
	return 0;
}

static int x_store_write(struct xvb_bus *b, const char *path, const char *val)
{
	return xs_write(XB(b)->xs, XBT_NULL, path, val, (unsigned int)strlen(val)) ? 0 : -errno;
}

static int x_store_rm(struct xvb_bus *b, const char *path)
{
	if (xs_rm(XB(b)->xs, XBT_NULL, path) || errno == ENOENT)
		return 0;
	return -errno;
}

static int x_store_dir(struct xvb_bus *b, const char *path,
		       int (*fn)(void *arg, const char *child), void *arg)
{
	unsigned int n, i;
	char **d = xs_directory(XB(b)->xs, XBT_NULL, path, &n);
	int rc = 0;

	if (!d)
		return -errno;
	for (i = 0; i < n && !rc; i++)
		rc = fn(arg, d[i]);
	free(d);
	return rc;
}

static int x_store_watch(struct xvb_bus *b, const char *path)
{
	return xs_watch(XB(b)->xs, path, path) ? 0 : -errno;
}

static int x_store_unwatch(struct xvb_bus *b, const char *path)
{
	return xs_unwatch(XB(b)->xs, path, path) ? 0 : -errno;
}

/* ---- memory ---- */

static int map_foreign(struct xen_bus *xb, uint32_t domid, const uint64_t *ids, unsigned int n,
		       int prot, void **addr)
{
	xen_pfn_t *pfn = calloc(n, sizeof(*pfn));
	int *err = calloc(n, sizeof(*err));
	xenforeignmemory_handle *fmem;
	unsigned int i;
	void *a;
	int rc = 0;

	if (!pfn || !err) {
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&xb->map_lock);
	if (!xb->fmem)
		xb->fmem = xenforeignmemory_open(NULL, 0);
	fmem = xb->fmem;
	pthread_mutex_unlock(&xb->map_lock);
	if (!fmem) {
		rc = -EPERM;
		goto out;
	}
	for (i = 0; i < n; i++)
		pfn[i] = (xen_pfn_t)ids[i];
	a = xenforeignmemory_map(fmem, domid, prot, n, pfn, err);
	if (!a) {
		rc = -(errno ? errno : EPERM);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (err[i]) {
			rc = err[i] < 0 ? err[i] : -err[i];
			xenforeignmemory_unmap(fmem, a, n);
			goto out;
		}
	}
	*addr = a;
out:
	free(pfn);
	free(err);
	return rc;
}

static int x_map(struct xvb_bus *b, uint32_t domid, enum xvb_space space, const uint64_t *ids,
		 unsigned int n, bool writable, void **addr)
{
	struct xen_bus *xb = XB(b);
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	struct xen_map *m;
	unsigned int i;
	void *a = NULL;
	int rc = 0;

	if (n == 0 || n > 65536)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	if (space == XVB_SPACE_GRANT) {
		uint32_t *refs = malloc(n * sizeof(*refs));

		if (!refs) {
			free(m);
			return -ENOMEM;
		}
		for (i = 0; i < n; i++) {
			if (ids[i] > UINT32_MAX) {
				free(refs);
				free(m);
				return -EINVAL;
			}
			refs[i] = (uint32_t)ids[i];
		}
		a = xengnttab_map_domain_grant_refs(xb->xgt, n, domid, refs, prot);
		if (!a)
			rc = -(errno ? errno : EPERM);
		free(refs);
	} else if (!xb->caps.map_frames) {
		rc = -EPERM;
	} else {
		rc = map_foreign(xb, domid, ids, n, prot, &a);
		m->foreign = true;
	}
	if (rc) {
		free(m);
		return rc;
	}
	m->addr = a;
	m->n = n;
	pthread_mutex_lock(&xb->map_lock);
	m->next = *map_bucket(xb, a);
	*map_bucket(xb, a) = m;
	pthread_mutex_unlock(&xb->map_lock);
	*addr = a;
	return 0;
}

static int x_unmap(struct xvb_bus *b, void *addr, unsigned int n)
{
	struct xen_bus *xb = XB(b);
	struct xen_map **pp, *m;

	pthread_mutex_lock(&xb->map_lock);
	for (pp = map_bucket(xb, addr); (m = *pp); pp = &m->next) {
		if (m->addr != addr)
			continue;
		if (m->n != n)
			break;
		*pp = m->next;
		pthread_mutex_unlock(&xb->map_lock);
		if (m->foreign)
			xenforeignmemory_unmap(xb->fmem, addr, n);
		else
			xengnttab_unmap(xb->xgt, addr, n);
		free(m);
		return 0;
	}
	pthread_mutex_unlock(&xb->map_lock);
	return m ? -EINVAL : -ENOENT;
}

/* ---- event channels ---- */

static int x_bind(struct xvb_bus *b, uint32_t domid, uint32_t remote, uint32_t *local)
{
	xenevtchn_port_or_error_t p = xenevtchn_bind_interdomain(XB(b)->xce, domid, remote);

	if (p < 0)
		return -errno;
	*local = (uint32_t)p;
	return 0;
}

static int x_unbind(struct xvb_bus *b, uint32_t local)
{
	return xenevtchn_unbind(XB(b)->xce, local) ? -errno : 0;
}

static int x_notify(struct xvb_bus *b, uint32_t local)
{
	return xenevtchn_notify(XB(b)->xce, local) ? -errno : 0;
}

static int x_chan_bind(struct xvb_bus *b, uint32_t domid, uint32_t remote, struct xvb_chan **out)
{
	struct xvb_chan *ch = calloc(1, sizeof(*ch));
	xenevtchn_port_or_error_t p;
	int rc;

	if (!ch)
		return -ENOMEM;
	ch->xce = xenevtchn_open(NULL, 0);
	if (!ch->xce) {
		rc = -errno;
		free(ch);
		return rc;
	}
	p = xenevtchn_bind_interdomain(ch->xce, domid, remote);
	if (p < 0) {
		rc = -errno;
		xenevtchn_close(ch->xce);
		free(ch);
		return rc;
	}
	ch->port = (evtchn_port_t)p;
	*out = ch;
	return 0;
}

static void x_chan_unbind(struct xvb_bus *b, struct xvb_chan *ch)
{
	xenevtchn_unbind(ch->xce, ch->port);
	xenevtchn_close(ch->xce);
	free(ch);
}

static int x_chan_fd(struct xvb_chan *ch)
{
	return xenevtchn_fd(ch->xce);
}

/* The evtchn fd blocks: read a port only when poll says one is there.
 * Unmasked at once: a signal during the work that follows wakes us again,
 * and the work looks at the rings anyway. */
static int x_chan_ack(struct xvb_chan *ch)
{
	struct pollfd p = { .fd = xenevtchn_fd(ch->xce), .events = POLLIN };
	xenevtchn_port_or_error_t port;

	if (poll(&p, 1, 0) != 1)
		return -EAGAIN;
	port = xenevtchn_pending(ch->xce);
	if (port < 0)
		return -EAGAIN;
	xenevtchn_unmask(ch->xce, (evtchn_port_t)port);
	return 0;
}

static int x_chan_notify(struct xvb_chan *ch)
{
	return xenevtchn_notify(ch->xce, ch->port) ? -errno : 0;
}

/* Also what xvb_xen_create() opened before it failed. */
static void x_destroy(struct xvb_bus *b)
{
	struct xen_bus *xb = XB(b);

	for (unsigned int i = 0; i < XEN_MAP_BUCKETS; i++)
		while (xb->maps[i])
			x_unmap(b, xb->maps[i]->addr, xb->maps[i]->n);
	if (xb->fmem)
		xenforeignmemory_close(xb->fmem);
	if (xb->xgt)
		xengnttab_close(xb->xgt);
	if (xb->xce)
		xenevtchn_close(xb->xce);
	if (xb->xs)
		xs_close(xb->xs);
	if (xb->epfd >= 0)
		close(xb->epfd);
	pthread_mutex_destroy(&xb->map_lock);
	free(xb);
}

static const struct xvb_bus_ops xen_ops = {
	.name = "xen",
	.destroy = x_destroy,
	.get_fd = x_get_fd,
	.dispatch = x_dispatch,
	.self_domid = x_self_domid,
	.caps = x_caps,
	.store_read = x_store_read,
	.store_write = x_store_write,
	.store_rm = x_store_rm,
	.store_dir = x_store_dir,
	.store_watch = x_store_watch,
	.store_unwatch = x_store_unwatch,
	.map = x_map,
	.unmap = x_unmap,
	.evtchn_bind = x_bind,
	.evtchn_unbind = x_unbind,
	.evtchn_notify = x_notify,
	.chan_bind = x_chan_bind,
	.chan_unbind = x_chan_unbind,
	.chan_fd = x_chan_fd,
	.chan_ack = x_chan_ack,
	.chan_notify = x_chan_notify,
};

int xvb_xen_create(const struct xvb_xen_opts *opts, const struct xvb_bus_events *ev,
		   struct xvb_bus **out, char *err, size_t errlen)
{
	struct epoll_event e = { .events = EPOLLIN };
	struct xen_bus *xb = calloc(1, sizeof(*xb));
	char buf[16];
	int rc;

	if (!xb)
		return -ENOMEM;
	xb->bus.ops = &xen_ops;
	xb->ev = *ev;
	pthread_mutex_init(&xb->map_lock, NULL);
	x_caps_init(&xb->caps, opts->allow_full);
	xb->epfd = -1;
	xb->xs = xs_open(0);
	if (!xb->xs) {
		rc = -errno;
		snprintf(err, errlen, "cannot open xenstore (is xenfs/xenbus available?): %s",
			 strerror(errno));
		goto fail;
	}
	xb->xce = xenevtchn_open(NULL, 0);
	if (!xb->xce) {
		rc = -errno;
		snprintf(err, errlen, "cannot open event channels (load xen-evtchn): %s",
			 strerror(errno));
		goto fail;
	}
	xb->xgt = xengnttab_open(NULL, 0);
	if (!xb->xgt) {
		rc = -errno;
		snprintf(err, errlen, "cannot open the grant device (load xen-gntdev): %s",
			 strerror(errno));
		goto fail;
	}
	rc = x_store_read(&xb->bus, "domid", buf, sizeof(buf));
	if (rc) {
		snprintf(err, errlen, "cannot read our domid from xenstore: %s", strerror(-rc));
		goto fail;
	}
	if (xvmsg_parse_u32(buf, &xb->domid)) {
		rc = -EINVAL;
		snprintf(err, errlen, "xenstore domid '%s' is not a number", buf);
		goto fail;
	}
	xb->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (xb->epfd < 0 ||
	    epoll_ctl(xb->epfd, EPOLL_CTL_ADD, xenevtchn_fd(xb->xce), &e) ||
	    epoll_ctl(xb->epfd, EPOLL_CTL_ADD, xs_fileno(xb->xs), &e)) {
		rc = -errno;
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		goto fail;
	}
	*out = &xb->bus;
	return 0;
fail:
	x_destroy(&xb->bus);
	return rc;
}
