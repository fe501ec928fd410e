// SPDX-License-Identifier: MIT
/*
 * Address translation for the three memory-access modes.
 *
 *  pool   Bus addresses are grant addresses inside [pool_ref, pool_ref +
 *         pool_pages).  The pool is mapped in chunks of XVB_CHUNK_PAGES
 *         consecutive refs on first use and kept until disconnect: in steady
 *         state a request costs no map operation.
 *  grant  Any grant address.  Each request maps its pages when it is taken
 *         and unmaps them when it completes (the cost of grant-dma-ops
 *         backends).  Pages of one request are mapped in at most two batched
 *         calls, read-only and writable.
 *  full   Guest frame addresses, mapped in chunks and kept (a classic
 *         privileged backend's map cache), at most full_cap
 *         (XVB_FULL_CACHE_CHUNKS) of them: a request that would need more maps its own pages, like
 *         grant mode, so a guest naming memory all over cannot make the
 *         backend hold mappings without end.  A chunk that cannot be mapped
 *         whole (the end of guest memory) falls back to a transient mapping
 *         of just the pages needed.  On a bus that says frames must not be
 *         kept (Xen: a PV guest cannot turn a page into a page table while
 *         another domain maps it writable), each request maps exactly its
 *         pages, read-only or writable, and unmaps them before it completes.
 *
 * Each mode is one const table of struct xvb_mc_ops (init, check, map),
 * chosen once in xvb_mc_init(); which modes a bus can serve at all is
 * decided in xvb_mode_check() from the bus's capabilities alone.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define PAGE XVMSG_PAGE_SIZE
#define FULL_DIR_SHIFT 10	/* chunks per second-level table */
#define FULL_DIR_MAX (1u << 20)	/* second-level tables: 2^48 bytes of guest memory */

static int bus_map(struct xvb_mapcache *mc, enum xvb_space space, const uint64_t *ids,
		   unsigned int n, bool writable, void **addr)
{
	int rc = mc->bus->ops->map(mc->bus, mc->domid, space, ids, n, writable, addr);

	if (rc == 0) {
		XVB_STAT_ADD(mc->stats->map_calls, 1);
		XVB_STAT_ADD(mc->stats->map_pages, n);
	}
	return rc;
}

static void bus_unmap(struct xvb_mapcache *mc, void *addr, unsigned int n)
{
	mc->bus->ops->unmap(mc->bus, addr, n);
	XVB_STAT_ADD(mc->stats->unmap_calls, 1);
	XVB_STAT_ADD(mc->stats->unmap_pages, n);
}

/* What a bus without a caps op can do: everything. */
static const struct xvb_bus_caps all_caps = { .map_frames = true, .cache_frames = true };

static const struct xvb_bus_caps *bus_caps(struct xvb_bus *bus)
{
	return bus->ops->caps ? bus->ops->caps(bus) : &all_caps;
}

int xvb_mode_check(struct xvb_bus *bus, enum xvmsg_mode mode, char *why, size_t len)
{
	const struct xvb_bus_caps *caps = bus_caps(bus);

	switch (mode) {
	case XVMSG_MODE_POOL:
	case XVMSG_MODE_GRANT:
		return 0;
	case XVMSG_MODE_FULL:
		if (caps->map_frames)
			return 0;
		snprintf(why, len, "%s", caps->no_frames[0] ? caps->no_frames :
			 "full mode: this bus cannot map guest frames");
		return -EPERM;
	}
	snprintf(why, len, "no such memory-access mode");
	return -EINVAL;
}

static int pool_init(struct xvb_mapcache *mc, uint64_t pool_ref, uint32_t pool_pages)
{
	if (pool_pages == 0 || pool_pages > XVMSG_MAX_POOL_PAGES ||
	    pool_ref + pool_pages > (1ULL << 51))
		return -EINVAL;
	mc->pool_ref = pool_ref;
	mc->pool_pages = pool_pages;
	mc->nchunks = (pool_pages + XVB_CHUNK_PAGES - 1) / XVB_CHUNK_PAGES;
	mc->chunk = calloc(mc->nchunks, sizeof(void *));
	return mc->chunk ? 0 : -ENOMEM;
}

static const struct xvb_mc_ops pool_ops, grant_ops, full_ops;

int xvb_mc_init(struct xvb_mapcache *mc, struct xvb_bus *bus, struct xvb_stats *stats,
		uint32_t domid, enum xvmsg_mode mode, uint64_t pool_ref, uint32_t pool_pages)
{
	static const struct xvb_mc_ops *const ops[XVMSG_NR_MODES] = {
		[XVMSG_MODE_POOL] = &pool_ops,
		[XVMSG_MODE_GRANT] = &grant_ops,
		[XVMSG_MODE_FULL] = &full_ops,
	};
	int rc;

	memset(mc, 0, sizeof(*mc));
	if ((unsigned int)mode >= XVMSG_NR_MODES)
		return -EINVAL;
	mc->bus = bus;
	mc->stats = stats;
	mc->domid = domid;
	mc->mode = mode;
	mc->ops = ops[mode];
	mc->cache_frames = bus_caps(bus)->cache_frames;
	mc->full_cap = XVB_FULL_CACHE_CHUNKS;
	rc = mc->ops->init ? mc->ops->init(mc, pool_ref, pool_pages) : 0;
	if (rc)
		return rc;
	/* Live from here until xvb_mc_fini, which destroys it: one init per
	 * connection, never on a cache in use. */
	pthread_mutex_init(&mc->lock, NULL);
	mc->lock_live = true;
	return 0;
}

static unsigned int pool_chunk_pages(const struct xvb_mapcache *mc, uint32_t c)
{
	uint32_t first = c * XVB_CHUNK_PAGES;
	uint32_t left = mc->pool_pages - first;

	return left < XVB_CHUNK_PAGES ? left : XVB_CHUNK_PAGES;
}

void xvb_mc_fini(struct xvb_mapcache *mc)
{
	uint32_t i, j;

	for (i = 0; i < mc->nchunks; i++)
		if (mc->chunk[i])
			bus_unmap(mc, mc->chunk[i], pool_chunk_pages(mc, i));
	free(mc->chunk);
	for (i = 0; i < mc->full_dir_len; i++) {
		if (!mc->full_dir[i])
			continue;
		for (j = 0; j < (1u << FULL_DIR_SHIFT); j++)
			if (mc->full_dir[i][j])
				bus_unmap(mc, mc->full_dir[i][j], XVB_CHUNK_PAGES);
		free(mc->full_dir[i]);
	}
	free(mc->full_dir);
	mc->chunk = NULL;
	mc->full_dir = NULL;
	mc->nchunks = mc->full_dir_len = mc->full_cached = 0;
	if (mc->lock_live)
		pthread_mutex_destroy(&mc->lock);
	mc->lock_live = false;
}

int xvb_mc_check(const struct xvb_mapcache *mc, uint64_t addr, uint64_t len)
{
	if (len == 0 || addr + len < addr)
		return -EFAULT;
	if (XVMSG_ADDR_IS_GRANT(addr) != XVMSG_ADDR_IS_GRANT(addr + len - 1))
		return -EFAULT;		/* wrapped across bit 63 */
	return mc->ops->check(mc, XVMSG_ADDR_IS_GRANT(addr), XVMSG_ADDR_PFN(addr),
			      XVMSG_ADDR_PFN(addr + len - 1)) ? 0 : -EFAULT;
}

/* Pages first..last (a grant range or not) in the pool. */
static bool pool_check(const struct xvb_mapcache *mc, bool grant, uint64_t first, uint64_t last)
{
	return grant && first >= mc->pool_ref && last < mc->pool_ref + mc->pool_pages;
}

static bool grant_check(const struct xvb_mapcache *mc, bool grant, uint64_t first, uint64_t last)
{
	return grant && last <= UINT32_MAX;	/* refs are 32-bit on Xen */
}

static bool full_check(const struct xvb_mapcache *mc, bool grant, uint64_t first, uint64_t last)
{
	return !grant && last < ((uint64_t)FULL_DIR_MAX << FULL_DIR_SHIFT) * XVB_CHUNK_PAGES;
}

static int ticket_add(struct xvb_mc_ticket *t, void *addr, unsigned int pages)
{
	if (t->n == XVB_TICKET_MAPS)
		return -E2BIG;
	t->m[t->n].addr = addr;
	t->m[t->n].pages = pages;
	t->n++;
	return 0;
}

void xvb_mc_release(struct xvb_mapcache *mc, struct xvb_mc_ticket *t)
{
	while (t->n) {
		t->n--;
		bus_unmap(mc, t->m[t->n].addr, t->m[t->n].pages);
	}
}

/* Emit one iovec.  Segments are never merged: the caller splits by segment. */
static int iov_put(struct iovec *iov, unsigned int *n, unsigned int max, void *ptr, size_t len)
{
	if (*n == max)
		return -E2BIG;
	iov[*n].iov_base = ptr;
	iov[*n].iov_len = len;
	(*n)++;
	return 0;
}

/* Cached chunk lookups: map on first use, keep. */
static int pool_chunk(struct xvb_mapcache *mc, uint32_t c, void **out)
{
	uint64_t ids[XVB_CHUNK_PAGES];
	unsigned int i, n;
	int rc;

	void *p = __atomic_load_n(&mc->chunk[c], __ATOMIC_ACQUIRE);

	if (p) {		/* steady state: no lock */
		*out = p;
		return 0;
	}
	pthread_mutex_lock(&mc->lock);
	p = mc->chunk[c];
	if (!p) {
		n = pool_chunk_pages(mc, c);
		for (i = 0; i < n; i++)
			ids[i] = mc->pool_ref + (uint64_t)c * XVB_CHUNK_PAGES + i;
		rc = bus_map(mc, XVB_SPACE_GRANT, ids, n, true, &p);
		if (rc) {
			pthread_mutex_unlock(&mc->lock);
			return rc;
		}
		__atomic_store_n(&mc->chunk[c], p, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&mc->lock);
	*out = p;
	return 0;
}

static int full_chunk(struct xvb_mapcache *mc, uint64_t c, void **out)
{
	uint64_t ids[XVB_CHUNK_PAGES];
	uint64_t hi = c >> FULL_DIR_SHIFT, lo = c & ((1u << FULL_DIR_SHIFT) - 1);
	unsigned int i;
	void *p;
	int rc;

	if (hi >= FULL_DIR_MAX)
		return -EFAULT;		/* xvb_mc_check() refuses these */
	if (hi < mc->full_dir_len && mc->full_dir[hi] && mc->full_dir[hi][lo]) {
		*out = mc->full_dir[hi][lo];
		return 0;
	}
	/* Map first: the tables only grow for memory that exists, not for
	 * every address a driver names. */
	for (i = 0; i < XVB_CHUNK_PAGES; i++)
		ids[i] = c * XVB_CHUNK_PAGES + i;
	rc = bus_map(mc, XVB_SPACE_FRAME, ids, XVB_CHUNK_PAGES, true, &p);
	if (rc)
		return rc;
	if (hi >= mc->full_dir_len) {
		uint32_t len = (uint32_t)hi + 1;
		void ***d = realloc(mc->full_dir, len * sizeof(*d));

		if (!d)
			goto nomem;
		memset(d + mc->full_dir_len, 0, (len - mc->full_dir_len) * sizeof(*d));
		mc->full_dir = d;
		mc->full_dir_len = len;
	}
	if (!mc->full_dir[hi]) {
		mc->full_dir[hi] = calloc(1u << FULL_DIR_SHIFT, sizeof(void *));
		if (!mc->full_dir[hi])
			goto nomem;
	}
	mc->full_dir[hi][lo] = p;
	mc->full_cached++;
	*out = p;
	return 0;

nomem:
	bus_unmap(mc, p, XVB_CHUNK_PAGES);
	return -ENOMEM;
}

static bool full_is_cached(const struct xvb_mapcache *mc, uint64_t c)
{
	uint64_t hi = c >> FULL_DIR_SHIFT, lo = c & ((1u << FULL_DIR_SHIFT) - 1);

	return hi < mc->full_dir_len && mc->full_dir[hi] && mc->full_dir[hi][lo];
}

/* Full mode: would the chunks these segments touch fit in the cache?
 * (Chunks two segments share are counted twice: it errs on the side of
 * mapping per request.) */
static bool full_cache_fits(const struct xvb_mapcache *mc, const struct xvb_seg *segs,
			    unsigned int nsegs)
{
	uint64_t room = mc->full_cap > mc->full_cached ? mc->full_cap - mc->full_cached : 0;
	uint64_t c, last;
	unsigned int i;

	for (i = 0; i < nsegs; i++) {
		c = XVMSG_ADDR_PFN(segs[i].addr) / XVB_CHUNK_PAGES;
		last = XVMSG_ADDR_PFN(segs[i].addr + segs[i].len - 1) / XVB_CHUNK_PAGES;
		for (; c <= last; c++) {
			if (full_is_cached(mc, c))
				continue;
			if (!room)
				return false;
			room--;
		}
	}
	return true;
}

/* Where a piece of a segment is: chunk c holds page (relative to the mode's
 * first page) at byte off; take bytes from there stay inside the chunk. */
struct chunk_at {
	uint64_t c, page, off, take;
};

/* Pool: the chunk, mapped on first use and kept.  *in_chunk stays. */
static int pool_chunk_at(struct xvb_mapcache *mc, const struct chunk_at *at, void **base,
			 uint64_t *in_chunk, struct xvb_mc_ticket *t)
{
	return pool_chunk(mc, (uint32_t)at->c, base);
}

/* Full: the cached chunk; one that cannot be mapped whole (the end of guest
 * memory: buses say -EFAULT or -EINVAL) falls back to mapping just these
 * pages, for this request; if they do not exist either, that fails with
 * the bus's error. */
static int full_chunk_at(struct xvb_mapcache *mc, const struct chunk_at *at, void **base,
			 uint64_t *in_chunk, struct xvb_mc_ticket *t)
{
	unsigned int np = (unsigned int)((at->off + at->take + PAGE - 1) / PAGE), i;
	uint64_t ids[XVB_CHUNK_PAGES];
	int rc = full_chunk(mc, at->c, base);

	if (rc == 0 || rc == -ENOMEM)
		return rc;
	for (i = 0; i < np; i++)
		ids[i] = at->page + i;
	rc = bus_map(mc, XVB_SPACE_FRAME, ids, np, true, base);
	if (rc)
		return rc;
	rc = ticket_add(t, *base, np);
	if (rc) {
		bus_unmap(mc, *base, np);
		return rc;
	}
	*in_chunk = at->off;
	return 0;
}

/* pool/full: walk a segment chunk by chunk through the cache; page0 is the
 * mode's first page, get() finds a chunk. */
static int map_cached(struct xvb_mapcache *mc, const struct xvb_seg *s, uint64_t page0,
		      int (*get)(struct xvb_mapcache *mc, const struct chunk_at *at, void **base,
				 uint64_t *in_chunk, struct xvb_mc_ticket *t),
		      struct iovec *iov, unsigned int *n, unsigned int max, struct xvb_mc_ticket *t)
{
	uint64_t page = XVMSG_ADDR_PFN(s->addr) - page0;
	uint64_t off = XVMSG_ADDR_OFF(s->addr);
	uint64_t left = s->len;
	int rc;

	while (left) {
		uint64_t c = page / XVB_CHUNK_PAGES;
		uint64_t in_chunk = (page % XVB_CHUNK_PAGES) * PAGE + off;
		uint64_t room = (uint64_t)XVB_CHUNK_PAGES * PAGE - in_chunk;
		uint64_t take = left < room ? left : room;
		struct chunk_at at = { c, page, off, take };
		void *base;

		rc = get(mc, &at, &base, &in_chunk, t);
		if (rc)
			return rc;
		rc = iov_put(iov, n, max, (char *)base + in_chunk, take);
		if (rc)
			return rc;
		left -= take;
		page = (page / XVB_CHUNK_PAGES + 1) * XVB_CHUNK_PAGES;
		off = 0;
	}
	return 0;
}

/* grant, and full mode without a frame cache: map all pages of the request
 * (in space) with one call per access kind, for the request only. */
static int map_request(struct xvb_mapcache *mc, enum xvb_space space, const struct xvb_seg *segs,
		       unsigned int nsegs, unsigned int split, unsigned int *split_iov,
		       struct iovec *iov, unsigned int *n, unsigned int max, struct xvb_mc_ticket *t)
{
	/* Pages of one request: bounded by the iovec count and segment sizes. */
	unsigned int npages[2] = { 0, 0 }, pass, i, j;
	uint64_t *ids[2] = { NULL, NULL };
	void *base[2] = { NULL, NULL };
	int rc = 0;

	for (i = 0; i < nsegs; i++) {
		uint64_t np = (XVMSG_ADDR_OFF(segs[i].addr) + segs[i].len + PAGE - 1) / PAGE;

		if (np > 4096 || npages[segs[i].write] + np > 4096)
			return -E2BIG;	/* more than 16 MiB in one request */
		npages[segs[i].write] += (unsigned int)np;
	}
	for (pass = 0; pass < 2; pass++) {
		unsigned int k = 0;

		if (!npages[pass])
			continue;
		ids[pass] = malloc(npages[pass] * sizeof(uint64_t));
		if (!ids[pass]) {
			rc = -ENOMEM;
			goto out;
		}
		for (i = 0; i < nsegs; i++) {
			uint64_t np;

			if (segs[i].write != pass)
				continue;
			np = (XVMSG_ADDR_OFF(segs[i].addr) + segs[i].len + PAGE - 1) / PAGE;
			for (j = 0; j < np; j++)
				ids[pass][k++] = XVMSG_ADDR_PFN(segs[i].addr) + j;
		}
		rc = bus_map(mc, space, ids[pass], npages[pass], pass, &base[pass]);
		if (rc)
			goto out;
		rc = ticket_add(t, base[pass], npages[pass]);
		if (rc) {
			bus_unmap(mc, base[pass], npages[pass]);
			goto out;
		}
	}
	/* Each segment is contiguous in its pass's mapping. */
	{
		size_t pos[2] = { 0, 0 };

		for (i = 0; i < nsegs; i++) {
			unsigned int w = segs[i].write;
			uint64_t off = XVMSG_ADDR_OFF(segs[i].addr);
			uint64_t np = (off + segs[i].len + PAGE - 1) / PAGE;

			if (i == split && split_iov)
				*split_iov = *n;
			rc = iov_put(iov, n, max, (char *)base[w] + pos[w] + off, segs[i].len);
			if (rc)
				goto out;
			pos[w] += np * PAGE;
		}
		if (nsegs == split && split_iov)
			*split_iov = *n;
	}
out:
	free(ids[0]);
	free(ids[1]);
	return rc;
}

/* pool and full: every segment through the chunk cache. */
static int map_all_cached(struct xvb_mapcache *mc, const struct xvb_seg *segs, unsigned int nsegs,
			  unsigned int split, unsigned int *split_iov, uint64_t page0,
			  int (*get)(struct xvb_mapcache *mc, const struct chunk_at *at,
				     void **base, uint64_t *in_chunk, struct xvb_mc_ticket *t),
			  struct iovec *iov, unsigned int *n, unsigned int max,
			  struct xvb_mc_ticket *t)
{
	unsigned int i;
	int rc = 0;

	for (i = 0; i < nsegs && !rc; i++) {
		if (i == split && split_iov)
			*split_iov = *n;
		rc = map_cached(mc, &segs[i], page0, get, iov, n, max, t);
	}
	if (nsegs == split && split_iov)
		*split_iov = *n;
	return rc;
}

static int pool_map_sg(struct xvb_mapcache *mc, const struct xvb_seg *segs, unsigned int nsegs,
		       unsigned int split, unsigned int *split_iov,
		       struct iovec *iov, unsigned int *n, unsigned int max, struct xvb_mc_ticket *t)
{
	return map_all_cached(mc, segs, nsegs, split, split_iov, mc->pool_ref, pool_chunk_at,
			      iov, n, max, t);
}

static int grant_map_sg(struct xvb_mapcache *mc, const struct xvb_seg *segs, unsigned int nsegs,
			unsigned int split, unsigned int *split_iov,
			struct iovec *iov, unsigned int *n, unsigned int max, struct xvb_mc_ticket *t)
{
	return map_request(mc, XVB_SPACE_GRANT, segs, nsegs, split, split_iov, iov, n, max, t);
}

static int full_map_sg(struct xvb_mapcache *mc, const struct xvb_seg *segs, unsigned int nsegs,
		       unsigned int split, unsigned int *split_iov,
		       struct iovec *iov, unsigned int *n, unsigned int max, struct xvb_mc_ticket *t)
{
	int rc;

	if (!mc->cache_frames)
		return map_request(mc, XVB_SPACE_FRAME, segs, nsegs, split, split_iov, iov, n,
				   max, t);
	/* The frame cache is the device's, and its queues may be served by
	 * threads of their own: one lock over the room counted, the lookups
	 * and the chunks mapped (full mode's per-request cost; pool mode's
	 * lookups take none). */
	pthread_mutex_lock(&mc->lock);
	if (!full_cache_fits(mc, segs, nsegs)) {
		pthread_mutex_unlock(&mc->lock);
		return map_request(mc, XVB_SPACE_FRAME, segs, nsegs, split, split_iov, iov, n,
				   max, t);
	}
	rc = map_all_cached(mc, segs, nsegs, split, split_iov, 0, full_chunk_at, iov, n, max, t);
	pthread_mutex_unlock(&mc->lock);
	return rc;
}

static const struct xvb_mc_ops pool_ops = {
	.init = pool_init, .check = pool_check, .map_sg = pool_map_sg,
};
static const struct xvb_mc_ops grant_ops = {
	.check = grant_check, .map_sg = grant_map_sg,
};
static const struct xvb_mc_ops full_ops = {
	.check = full_check, .map_sg = full_map_sg,
};

int xvb_mc_map_sg(struct xvb_mapcache *mc, const struct xvb_seg *segs, unsigned int nsegs,
		  unsigned int split, unsigned int *split_iov,
		  struct iovec *iov, unsigned int max, struct xvb_mc_ticket *t)
{
	unsigned int i, n = 0;
	int rc = 0;

	for (i = 0; i < nsegs; i++) {
		rc = xvb_mc_check(mc, segs[i].addr, segs[i].len);
		if (rc)
			return rc;
	}
	rc = mc->ops->map_sg(mc, segs, nsegs, split, split_iov, iov, &n, max, t);
	if (rc) {
		xvb_mc_release(mc, t);
		return rc;
	}
	return (int)n;
}

/* Fault injection only (--fault snoop): what a backend could read from the
 * pool.  Copies of marker that span two chunks are not counted. */
long xvb_mc_pool_scan(struct xvb_mapcache *mc, const char *marker)
{
	size_t mlen = strlen(marker), len;
	const char *p, *end, *hit;
	long found = 0;
	uint32_t c;
	void *base;
	int rc;

	if (mc->mode != XVMSG_MODE_POOL || mlen == 0)
		return -EINVAL;
	for (c = 0; c < mc->nchunks; c++) {
		rc = pool_chunk(mc, c, &base);
		if (rc)
			return rc;
		p = base;
		len = (size_t)pool_chunk_pages(mc, c) * PAGE;
		end = p + len;
		while ((hit = memmem(p, (size_t)(end - p), marker, mlen))) {
			found += (long)mlen;
			p = hit + mlen;
		}
	}
	return found;
}
