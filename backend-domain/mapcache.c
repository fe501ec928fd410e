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
 */
#include <errno.h>
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
		mc->stats->map_calls++;
		mc->stats->map_pages += n;
	}
	return rc;
}

static void bus_unmap(struct xvb_mapcache *mc, void *addr, unsigned int n)
{
	mc->bus->ops->unmap(mc->bus, addr, n);
	mc->stats->unmap_calls++;
	mc->stats->unmap_pages += n;
}

int xvb_mc_init(struct xvb_mapcache *mc, struct xvb_bus *bus, struct xvb_stats *stats,
		uint32_t domid, int mode, uint64_t pool_ref, uint32_t pool_pages)
{
	memset(mc, 0, sizeof(*mc));
	mc->bus = bus;
	mc->stats = stats;
	mc->domid = domid;
	mc->mode = mode;
	mc->cache_frames = !bus->ops->cache_frames || bus->ops->cache_frames(bus);
	mc->full_cap = XVB_FULL_CACHE_CHUNKS;
	if (mode == XVMSG_MODE_POOL) {
		if (pool_pages == 0 || pool_pages > XVMSG_MAX_POOL_PAGES ||
		    pool_ref + pool_pages > (1ULL << 51))
			return -EINVAL;
		mc->pool_ref = pool_ref;
		mc->pool_pages = pool_pages;
		mc->nchunks = (pool_pages + XVB_CHUNK_PAGES - 1) / XVB_CHUNK_PAGES;
		mc->chunk = calloc(mc->nchunks, sizeof(void *));
		if (!mc->chunk)
			return -ENOMEM;
	} else if (mode != XVMSG_MODE_GRANT && mode != XVMSG_MODE_FULL) {
		return -EINVAL;
	}
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
}

int xvb_mc_check(const struct xvb_mapcache *mc, uint64_t addr, uint64_t len)
{
	uint64_t first, last;

	if (len == 0 || addr + len < addr)
		return -EFAULT;
	first = XVMSG_ADDR_PFN(addr);
	last = XVMSG_ADDR_PFN(addr + len - 1);
	if (XVMSG_ADDR_IS_GRANT(addr) != XVMSG_ADDR_IS_GRANT(addr + len - 1))
		return -EFAULT;		/* wrapped across bit 63 */
	switch (mc->mode) {
	case XVMSG_MODE_POOL:
		if (!XVMSG_ADDR_IS_GRANT(addr) || first < mc->pool_ref ||
		    last >= mc->pool_ref + mc->pool_pages)
			return -EFAULT;
		return 0;
	case XVMSG_MODE_GRANT:
		/* refs are 32-bit on Xen */
		return XVMSG_ADDR_IS_GRANT(addr) && last <= UINT32_MAX ? 0 : -EFAULT;
	case XVMSG_MODE_FULL:
		return XVMSG_ADDR_IS_GRANT(addr) ||
		       last >= ((uint64_t)FULL_DIR_MAX << FULL_DIR_SHIFT) * XVB_CHUNK_PAGES ? -EFAULT : 0;
	}
	return -EFAULT;
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

	if (!mc->chunk[c]) {
		n = pool_chunk_pages(mc, c);
		for (i = 0; i < n; i++)
			ids[i] = mc->pool_ref + (uint64_t)c * XVB_CHUNK_PAGES + i;
		rc = bus_map(mc, XVB_SPACE_GRANT, ids, n, true, &mc->chunk[c]);
		if (rc)
			return rc;
	}
	*out = mc->chunk[c];
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

/* pool/full: walk a segment chunk by chunk through the cache. */
static int map_cached(struct xvb_mapcache *mc, const struct xvb_seg *s, struct iovec *iov,
		      unsigned int *n, unsigned int max, struct xvb_mc_ticket *t)
{
	uint64_t page = XVMSG_ADDR_PFN(s->addr);
	uint64_t off = XVMSG_ADDR_OFF(s->addr);
	uint64_t left = s->len;
	int rc;

	if (mc->mode == XVMSG_MODE_POOL)
		page -= mc->pool_ref;
	while (left) {
		uint64_t c = page / XVB_CHUNK_PAGES;
		uint64_t in_chunk = (page % XVB_CHUNK_PAGES) * PAGE + off;
		uint64_t room = (uint64_t)XVB_CHUNK_PAGES * PAGE - in_chunk;
		uint64_t take = left < room ? left : room;
		void *base;

		if (mc->mode == XVMSG_MODE_POOL) {
			rc = pool_chunk(mc, (uint32_t)c, &base);
			if (rc)
				return rc;
		} else {
			rc = full_chunk(mc, c, &base);
			if (rc == -ENOMEM)
				return rc;
			if (rc) {
				/* The chunk cannot be mapped whole (the end of guest
				 * memory: buses say -EFAULT or -EINVAL).  Fall back:
				 * map just these pages, for this request; if they do
				 * not exist either, that fails with the bus's error. */
				unsigned int np = (unsigned int)((off + take + PAGE - 1) / PAGE);
				uint64_t ids[XVB_CHUNK_PAGES];
				unsigned int i;

				for (i = 0; i < np; i++)
					ids[i] = page + i;
				rc = bus_map(mc, XVB_SPACE_FRAME, ids, np, true, &base);
				if (rc)
					return rc;
				rc = ticket_add(t, base, np);
				if (rc) {
					bus_unmap(mc, base, np);
					return rc;
				}
				in_chunk = off;
			}
		}
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
 * with one call per access kind, for the request only. */
static int map_request(struct xvb_mapcache *mc, const struct xvb_seg *segs, unsigned int nsegs,
		     unsigned int split, unsigned int *split_iov,
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
		rc = bus_map(mc, mc->mode == XVMSG_MODE_GRANT ? XVB_SPACE_GRANT : XVB_SPACE_FRAME,
			     ids[pass], npages[pass], pass, &base[pass]);
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
	if (mc->mode == XVMSG_MODE_GRANT ||
	    (mc->mode == XVMSG_MODE_FULL &&
	     (!mc->cache_frames || !full_cache_fits(mc, segs, nsegs)))) {
		rc = map_request(mc, segs, nsegs, split, split_iov, iov, &n, max, t);
	} else {
		for (i = 0; i < nsegs && !rc; i++) {
			if (i == split && split_iov)
				*split_iov = n;
			rc = map_cached(mc, &segs[i], iov, &n, max, t);
		}
		if (nsegs == split && split_iov)
			*split_iov = n;
	}
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
