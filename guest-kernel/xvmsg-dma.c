// SPDX-License-Identifier: GPL-2.0-only
/*
 * Where the backend may reach guest memory: DMA ops set on the xenbus device,
 * which is the parent of the virtio device, so virtio_ring allocates its
 * rings and maps every buffer through them.  One const table per mode:
 *
 *   pool   the pool (granted once, consecutive refs) is the only memory the
 *          backend can map.  Coherent allocations (rings) come from the pool;
 *          streaming mappings are bounced through pool slots.  A slot that
 *          held guest data is zeroed when it is freed; a slot only the device
 *          wrote into is not (it was free, hence clean, when taken), which is
 *          the rule of driver/dma.c pool_put().
 *   grant  every mapping is granted with consecutive refs while it lives and
 *          revoked on unmap, grant-dma-ops style.  A revoke that finds the
 *          grant still mapped goes to the grant table's deferred reclaim and
 *          marks the device broken.
 *   full   bus addresses are guest frames, gfn << 12 | offset; the backend
 *          maps them with foreign-memory privilege.  In PV guests gfns are
 *          machine frames, so a multi-page range must be machine-contiguous;
 *          in auto-translated ones (Arm, PVH) every range is.  The rule is
 *          <xvmsg/frames.h>, shared with the unit tests.
 *
 * Bus address format for pool and grant: XVMSG_GRANT_ADDR(ref, offset).
 * These ops run in any context (virtio_net maps from softirq, virtio_console
 * under a spinlock with interrupts off): they never sleep.  Each runs under
 * rcu_read_lock_sched(); a disconnect clears info->dma_conn and waits for
 * them, so a late call from a driver finds no connection, not a freed one.
 * Grant-mode mappings are recorded (first ref -> page count), so the ones a
 * driver never gives back are still revoked at disconnect.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <linux/bitmap.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/rcupdate.h>
#include <linux/scatterlist.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/xarray.h>
#include <xen/page.h>
#include <xen/xen.h>

#include <xvmsg/frames.h>

#include "xvmsg.h"
#include "xvmsg-compat.h"

static_assert(PAGE_SIZE == XEN_PAGE_SIZE, "xvmsg assumes 4 KiB kernel pages");
static_assert(PAGE_SIZE == XVMSG_PAGE_SIZE, "xvmsg assumes 4 KiB kernel pages");

/* The connection a DMA op works for; caller holds rcu_read_lock_sched(). */
static struct xvmsg_conn *dev_conn(struct device *dev)
{
	struct xvmsg_info *info = dev_get_drvdata(dev);

	return info ? rcu_dereference_sched(info->dma_conn) : NULL;
}

/*
 * The device's requests are being failed (xvmsg_fail_inflight): no new
 * mapping, so that virtio_ring cannot add a request (it fails the add with
 * -ENOMEM).  The flag is set before a grace period that waits for these
 * ops, and stays set for the connection's life.
 */
static bool map_gated(struct xvmsg_conn *c)
{
	return test_bit(XVMSG_F_MAP_GATE, &c->flags);
}

/*
 * The ops below whose name ends in _rcu run inside rcu_read_lock_sched(),
 * taken by a wrapper of the plain name: preemption is off, so nothing in
 * them sleeps, and gnttab_end_foreign_access() (which picks its allocation
 * flags by in_atomic()) allocates atomically.  synchronize_rcu() waits for
 * these readers too.
 */
#define XVMSG_RCU_OP(type, name, params, args)		\
static type name params					\
{							\
	type r;						\
							\
	rcu_read_lock_sched();				\
	r = name##_rcu args;				\
	rcu_read_unlock_sched();			\
	return r;					\
}

#define XVMSG_RCU_VOID_OP(name, params, args)		\
static void name params					\
{							\
	rcu_read_lock_sched();				\
	name##_rcu args;				\
	rcu_read_unlock_sched();			\
}

/*
 * End the backend's access to one of our own pages, whose reference the
 * caller gives up: true, ended (the caller frees the page, or drops its
 * reference); false, the backend still maps it, and the grant table keeps
 * the page and frees it once the backend lets go.  Never without a page:
 * see end_access_driver_page for why.
 */
/* Counted, and ended now if the backend let go (the ref is then back on the
 * free list); false: it still maps the page. */
static bool end_access_now(struct xvmsg_info *info, grant_ref_t ref)
{
	xvmsg_stat_inc(info, XVMSG_ST_REVOKES);
	if (gnttab_try_end_foreign_access(ref))
		return true;
	xvmsg_stat_inc(info, XVMSG_ST_REVOKE_BUSY);
	xvmsg_stat_inc(info, XVMSG_ST_LEAKED_PAGES);
	return false;
}

bool xvmsg_end_access(struct xvmsg_info *info, grant_ref_t ref, struct page *page)
{
	if (end_access_now(info, ref))
		return true;
	dev_warn_ratelimited(&info->xbdev->dev,
			     "grant %u still mapped by backend domain %u: the page is withheld until it unmaps it\n",
			     ref, info->xbdev->otherend_id);
	/* Retries later and frees page only once the backend let go. */
	gnttab_end_foreign_access(ref, page);
	return false;
}

/*
 * End the backend's access to a page of a driver's buffer (grant mode; the
 * page is the driver's, not ours), xen_pfn its frame.  true: ended, and the
 * reference is free again.  false: the backend still maps it; the grant
 * table retries every second and ends the grant once it lets go.
 *
 * That retry needs a page to put at the end, and the page must be held, by
 * us: gnttab_end_foreign_access() without a page takes a count on the
 * granted page itself.  A page with no count of its own (a tail page of a
 * non-compound higher-order allocation, such as blk-mq's request memory,
 * where virtio_blk's request headers live) then shows a count while free
 * ("BUG: Bad page state"), and the late put frees it a second time, into
 * memory already in use again.  So:
 *
 *  - a page whose folio has a count, and is not a slab's, is held with a
 *    reference of ours on the folio, which the grant table drops when the
 *    backend lets go: withheld from reuse until then;
 *  - a page without one, or in a slab (a count there does not keep kfree()
 *    from reusing the object), cannot be withheld: it goes back to its
 *    owner while the backend still maps it (said here; the caller fails
 *    the connection), and the grant table gets a count on the
 *    connection's anchor page to put instead.
 *
 * In the revoke at disconnect a driver may have freed the page meanwhile:
 * the folio is checked again once counted.
 */
static bool end_access_driver_page(struct xvmsg_conn *c, grant_ref_t ref, unsigned long xen_pfn)
{
	struct xvmsg_info *info = c->info;
	struct page *page = pfn_valid(xen_pfn) ? pfn_to_page(xen_pfn) : NULL;
	struct folio *folio = page ? page_folio(page) : NULL;

	if (end_access_now(info, ref))
		return true;
	if (folio && folio_try_get(folio)) {
		if (page_folio(page) == folio && !folio_test_slab(folio)) {
			dev_warn_ratelimited(&info->xbdev->dev,
					     "grant %u still mapped by backend domain %u: the page is withheld until it unmaps it\n",
					     ref, info->xbdev->otherend_id);
			gnttab_end_foreign_access(ref, &folio->page);
			return false;
		}
		folio_put(folio);	/* a slab's, or freed and reused in between */
	}
	dev_warn_ratelimited(&info->xbdev->dev,
			     "grant %u still mapped by backend domain %u: a page that cannot be withheld (no count of its own, or a slab's) is back with its driver while mapped; the grant ends when the backend unmaps it\n",
			     ref, info->xbdev->otherend_id);
	get_page(c->anchor);
	gnttab_end_foreign_access(ref, c->anchor);
	return false;
}

/* ---- pool allocator ------------------------------------------------------ */

static dma_addr_t pool_bus(const struct xvmsg_pool *p, size_t off)
{
	return XVMSG_GRANT_ADDR(p->first_ref + (off >> PAGE_SHIFT), off & ~PAGE_MASK);
}

/* Pool byte offset of a bus address, or -1 if it is not in the pool. */
static long pool_off(const struct xvmsg_pool *p, dma_addr_t addr)
{
	u64 ref;

	if (!XVMSG_ADDR_IS_GRANT(addr))
		return -1;
	ref = XVMSG_ADDR_PFN(addr);
	if (ref < p->first_ref || ref - p->first_ref >= p->npages)
		return -1;
	return (long)(((ref - p->first_ref) << PAGE_SHIFT) | XVMSG_ADDR_OFF(addr));
}

/*
 * Take n units aligned to align_mask + 1; the head gets flags.  Unit index
 * or -ENOMEM.
 */
static long pool_take(struct xvmsg_conn *c, unsigned int n, unsigned int align_mask, u32 flags)
{
	struct xvmsg_pool *p = &c->pool;
	unsigned long idx, irqf;

	spin_lock_irqsave(&p->lock, irqf);
	idx = bitmap_find_next_zero_area(p->map, p->nunits, p->hint, n, align_mask);
	if (idx + n > p->nunits)
		idx = bitmap_find_next_zero_area(p->map, p->nunits, 0, n, align_mask);
	if (idx + n > p->nunits) {
		spin_unlock_irqrestore(&p->lock, irqf);
		xvmsg_stat_inc(c->info, XVMSG_ST_POOL_FULL);
		return -ENOMEM;
	}
	bitmap_set(p->map, idx, n);
	p->hint = idx + n < p->nunits ? idx + n : 0;
	p->used += n;
	p->slot[idx].nunits = n;
	p->slot[idx].flags = flags | XVMSG_SLOT_HEAD;
	spin_unlock_irqrestore(&p->lock, irqf);
	return (long)idx;
}

/*
 * Look up the allocation starting at unit idx and retire its head, so a
 * second free of it is refused.  Its units stay reserved until pool_give.
 */
static bool pool_retire(struct xvmsg_conn *c, unsigned long idx, u32 want, unsigned int *n,
			u32 *flags)
{
	struct xvmsg_pool *p = &c->pool;
	unsigned long irqf;
	bool ok;

	spin_lock_irqsave(&p->lock, irqf);
	ok = idx < p->nunits && (p->slot[idx].flags & XVMSG_SLOT_HEAD) &&
	     (p->slot[idx].flags & XVMSG_SLOT_COHERENT) == want;
	if (ok) {
		*n = p->slot[idx].nunits;
		*flags = p->slot[idx].flags;
		p->slot[idx].flags = 0;
	}
	spin_unlock_irqrestore(&p->lock, irqf);
	if (!ok)
		dev_err_ratelimited(xvmsg_dev(c),
				    "DMA free/unmap of pool unit %lu that is not a live %s (driver bug?)\n",
				    idx, want ? "allocation" : "mapping");
	return ok;
}

static void pool_give(struct xvmsg_conn *c, unsigned long idx, unsigned int n, u32 flags)
{
	struct xvmsg_pool *p = &c->pool;
	size_t bytes = (size_t)n << XVMSG_POOL_UNIT_SHIFT;
	unsigned long irqf;

	/* No guest data stays where the backend can read it. */
	if (flags & XVMSG_SLOT_DIRTY)
		memset(p->va + (idx << XVMSG_POOL_UNIT_SHIFT), 0, bytes);
	spin_lock_irqsave(&p->lock, irqf);
	bitmap_clear(p->map, idx, n);
	p->used -= n;
	spin_unlock_irqrestore(&p->lock, irqf);
}

/* Copy between guest memory at physical address orig and the pool. */
static void bounce(struct xvmsg_conn *c, phys_addr_t orig, void *pool, size_t size, bool to_pool)
{
	xvmsg_stat_add(c->info, to_pool ? XVMSG_ST_BOUNCE_IN : XVMSG_ST_BOUNCE_OUT, size);
	while (size) {
		size_t off = offset_in_page(orig), n = min_t(size_t, size, PAGE_SIZE - off);
		void *va = kmap_local_page(pfn_to_page(PHYS_PFN(orig)));

		if (to_pool)
			memcpy(pool, va + off, n);
		else
			memcpy(va + off, pool, n);
		kunmap_local(va);
		orig += n;
		pool += n;
		size -= n;
	}
}

static void *pool_alloc_rcu(struct device *dev, size_t size, dma_addr_t *handle, gfp_t gfp,
			    unsigned long attrs)
{
	struct xvmsg_conn *c = dev_conn(dev);
	unsigned int n;
	long idx;
	void *va;

	if (!c || !size || size > ((size_t)c->pool.npages << PAGE_SHIFT))
		return NULL;
	/* Whole pages, page aligned, as the DMA API promises. */
	n = PAGE_ALIGN(size) >> XVMSG_POOL_UNIT_SHIFT;
	idx = pool_take(c, n, XVMSG_POOL_UNITS_PER_PAGE - 1,
			XVMSG_SLOT_DIRTY | XVMSG_SLOT_COHERENT);
	if (idx < 0)
		return NULL;
	va = c->pool.va + ((size_t)idx << XVMSG_POOL_UNIT_SHIFT);
	memset(va, 0, (size_t)n << XVMSG_POOL_UNIT_SHIFT);
	*handle = pool_bus(&c->pool, (size_t)idx << XVMSG_POOL_UNIT_SHIFT);
	return va;
}
XVMSG_RCU_OP(void *, pool_alloc,
	     (struct device *dev, size_t size, dma_addr_t *handle, gfp_t gfp, unsigned long attrs),
	     (dev, size, handle, gfp, attrs))

static void pool_free_rcu(struct device *dev, size_t size, void *vaddr, dma_addr_t handle,
			  unsigned long attrs)
{
	struct xvmsg_conn *c = dev_conn(dev);
	unsigned int n;
	size_t off;
	u32 flags;

	if (!c || vaddr < c->pool.va ||
	    vaddr >= c->pool.va + ((size_t)c->pool.npages << PAGE_SHIFT))
		return;
	off = vaddr - c->pool.va;
	if (off & (XVMSG_POOL_UNIT - 1) || pool_off(&c->pool, handle) != (long)off) {
		dev_err_ratelimited(dev, "dma_free_coherent of %p / %pad that was not allocated so\n",
				    vaddr, &handle);
		return;
	}
	if (pool_retire(c, off >> XVMSG_POOL_UNIT_SHIFT, XVMSG_SLOT_COHERENT, &n, &flags))
		pool_give(c, off >> XVMSG_POOL_UNIT_SHIFT, n, flags);
}
XVMSG_RCU_VOID_OP(pool_free,
		  (struct device *dev, size_t size, void *vaddr, dma_addr_t handle,
		   unsigned long attrs),
		  (dev, size, vaddr, handle, attrs))

static dma_addr_t pool_map_phys_rcu(struct device *dev, phys_addr_t phys, size_t size,
				    enum dma_data_direction dir, unsigned long attrs)
{
	struct xvmsg_conn *c = dev_conn(dev);
	unsigned int n, i;
	long idx;

	if (!c || !size || dir == DMA_NONE || (attrs & DMA_ATTR_MMIO) || map_gated(c)) {
		if (c)
			xvmsg_stat_inc(c->info, XVMSG_ST_MAP_ERRORS);
		return DMA_MAPPING_ERROR;
	}
	/* max_mapping_size is advice: a larger buffer is mapped if it fits. */
	if (size > ((size_t)c->pool.npages << PAGE_SHIFT)) {
		xvmsg_stat_inc(c->info, XVMSG_ST_POOL_FULL);
		return DMA_MAPPING_ERROR;
	}
	n = DIV_ROUND_UP(size, XVMSG_POOL_UNIT);
	idx = pool_take(c, n, 0, dir == DMA_FROM_DEVICE ? 0 : XVMSG_SLOT_DIRTY);
	if (idx < 0)
		return DMA_MAPPING_ERROR;	/* virtio_ring fails the add: -ENOMEM */
	for (i = 0; i < n; i++)
		c->pool.slot[idx + i].orig = phys + ((phys_addr_t)i << XVMSG_POOL_UNIT_SHIFT);
	/*
	 * Device-readable data goes in now.  A device-writable buffer is not
	 * copied in: the backend must not see what the guest had there.
	 */
	if (dir == DMA_TO_DEVICE || dir == DMA_BIDIRECTIONAL)
		bounce(c, phys, c->pool.va + ((size_t)idx << XVMSG_POOL_UNIT_SHIFT), size, true);
	else if (size <= XVMSG_POISON_MAX)
		/*
		 * A small device-writable buffer is a status byte or a response
		 * header.  If the device completes the request without writing
		 * it (a chain it refused), the driver must read a failure, not
		 * whatever an earlier request left in the slot: 0xff is no
		 * success code of any virtio device.
		 */
		memset(c->pool.va + ((size_t)idx << XVMSG_POOL_UNIT_SHIFT), 0xff, size);
	return pool_bus(&c->pool, (size_t)idx << XVMSG_POOL_UNIT_SHIFT);
}

static void pool_unmap_phys_rcu(struct device *dev, dma_addr_t addr, size_t size,
				enum dma_data_direction dir, unsigned long attrs)
{
	struct xvmsg_conn *c = dev_conn(dev);
	long off = c ? pool_off(&c->pool, addr) : -1;
	unsigned long idx;
	unsigned int n;
	u32 flags;

	if (c)
		xvmsg_shadow_unmapped(c, addr);	/* a chain virtio_ring freed? */
	if (off < 0 || (off & (XVMSG_POOL_UNIT - 1))) {
		if (c)
			dev_err_ratelimited(dev, "dma unmap of %pad: not a pool mapping\n", &addr);
		return;
	}
	idx = (unsigned long)off >> XVMSG_POOL_UNIT_SHIFT;
	if (!pool_retire(c, idx, 0, &n, &flags))
		return;
	if (size > ((size_t)n << XVMSG_POOL_UNIT_SHIFT)) {
		dev_err_ratelimited(dev, "dma unmap of %pad with size %zu, mapped %u bytes\n",
				    &addr, size, n << XVMSG_POOL_UNIT_SHIFT);
		size = (size_t)n << XVMSG_POOL_UNIT_SHIFT;
	}
	/* All of it: the used length is the driver's business, as with swiotlb. */
	if ((dir == DMA_FROM_DEVICE || dir == DMA_BIDIRECTIONAL) &&
	    !(attrs & DMA_ATTR_SKIP_CPU_SYNC))
		bounce(c, c->pool.slot[idx].orig, c->pool.va + off, size, false);
	pool_give(c, idx, n, flags);
}

/*
 * The streaming mapping that holds pool byte off: its first and end byte.
 * false if off is in no live streaming mapping.
 */
static bool pool_mapping_of(struct xvmsg_conn *c, long off, size_t *start, size_t *end)
{
	struct xvmsg_pool *p = &c->pool;
	unsigned long u, irqf;
	bool ok = false;

	if (off < 0 || (size_t)off >= ((size_t)p->npages << PAGE_SHIFT))
		return false;
	spin_lock_irqsave(&p->lock, irqf);
	for (u = (unsigned long)off >> XVMSG_POOL_UNIT_SHIFT; ; u--) {
		if (p->slot[u].flags & XVMSG_SLOT_HEAD) {
			ok = !(p->slot[u].flags & XVMSG_SLOT_COHERENT) &&
			     u + p->slot[u].nunits > ((unsigned long)off >> XVMSG_POOL_UNIT_SHIFT);
			*start = (size_t)u << XVMSG_POOL_UNIT_SHIFT;
			*end = (size_t)(u + p->slot[u].nunits) << XVMSG_POOL_UNIT_SHIFT;
			break;
		}
		if (!u || !test_bit(u, p->map))
			break;
	}
	spin_unlock_irqrestore(&p->lock, irqf);
	return ok;
}

static void pool_sync_rcu(struct device *dev, dma_addr_t addr, size_t size, bool to_pool)
{
	struct xvmsg_conn *c = dev_conn(dev);
	long off = c ? pool_off(&c->pool, addr) : -1;
	size_t start, end, n;

	if (!c)
		return;
	if (!pool_mapping_of(c, off, &start, &end)) {
		dev_err_ratelimited(dev, "dma sync of %pad+%zu: not a pool mapping\n", &addr, size);
		return;
	}
	/* Never past the mapping that holds addr (a device-reported size). */
	n = xvmsg_pool_sync_len(off, size, start, end);
	if (n < size)
		dev_err_ratelimited(dev, "dma sync of %pad+%zu past its mapping: %zu bytes synced\n",
				    &addr, size, n);
	bounce(c, c->pool.slot[off >> XVMSG_POOL_UNIT_SHIFT].orig + (off & (XVMSG_POOL_UNIT - 1)),
	       c->pool.va + off, n, to_pool);
}
XVMSG_RCU_VOID_OP(pool_sync, (struct device *dev, dma_addr_t addr, size_t size, bool to_pool),
		  (dev, addr, size, to_pool))

static void pool_sync_for_cpu(struct device *dev, dma_addr_t addr, size_t size,
			      enum dma_data_direction dir)
{
	if (dir == DMA_FROM_DEVICE || dir == DMA_BIDIRECTIONAL)
		pool_sync(dev, addr, size, false);
}

static void pool_sync_for_device(struct device *dev, dma_addr_t addr, size_t size,
				 enum dma_data_direction dir)
{
	/*
	 * A FROM_DEVICE mapping's slots never get guest data, so they need no
	 * DIRTY mark here; TO_DEVICE and BIDIRECTIONAL ones have it.
	 */
	if (dir == DMA_TO_DEVICE || dir == DMA_BIDIRECTIONAL)
		pool_sync(dev, addr, size, true);
}

static size_t pool_max_mapping_size_rcu(struct device *dev)
{
	struct xvmsg_conn *c = dev_conn(dev);

	return c ? c->max_map : PAGE_SIZE;
}
XVMSG_RCU_OP(size_t, pool_max_mapping_size, (struct device *dev), (dev))

/* ---- grant mode ------------------------------------------------------------ */

/*
 * c->grants: by first reference, each mapping's first frame and page count
 * (an xarray value: the frame above 16 bits, the count below).
 */
#define GRANT_MAX_PAGES	0xffffu
static_assert(BITS_PER_LONG == 64, "xvmsg's grant records keep a frame and a count in one long");

static unsigned long grant_entry(unsigned long xen_pfn, unsigned int n)
{
	return xen_pfn << 16 | n;
}

static unsigned long grant_entry_pfn(unsigned long v)
{
	return v >> 16;
}

static unsigned int grant_entry_pages(unsigned long v)
{
	return v & GRANT_MAX_PAGES;
}

/*
 * Grant n pages from pfn with consecutive refs and record the mapping.
 * Bus address, or DMA_MAPPING_ERROR.
 */
static dma_addr_t grant_pages(struct xvmsg_conn *c, unsigned long pfn, unsigned int n,
			      unsigned long offset, bool readonly)
{
	unsigned long irqf;
	grant_ref_t ref;
	unsigned int i;
	int r;

	if (n > GRANT_MAX_PAGES || pfn > (LONG_MAX >> 16)) {	/* 2^47 frames: never */
		xvmsg_stat_inc(c->info, XVMSG_ST_MAP_ERRORS);
		return DMA_MAPPING_ERROR;
	}
	if (gnttab_alloc_grant_reference_seq(n, &ref)) {
		xvmsg_stat_inc(c->info, XVMSG_ST_MAP_ERRORS);
		dev_warn_ratelimited(xvmsg_dev(c), "no %u consecutive grant references free\n", n);
		return DMA_MAPPING_ERROR;
	}
	xa_lock_irqsave(&c->grants, irqf);
	r = xa_err(__xa_store(&c->grants, ref, xa_mk_value(grant_entry(pfn, n)), GFP_ATOMIC));
	xa_unlock_irqrestore(&c->grants, irqf);
	if (r) {
		gnttab_free_grant_reference_seq(ref, n);	/* never granted */
		xvmsg_stat_inc(c->info, XVMSG_ST_MAP_ERRORS);
		return DMA_MAPPING_ERROR;
	}
	for (i = 0; i < n; i++)
		gnttab_grant_foreign_access_ref(ref + i, c->domid, pfn_to_gfn(pfn + i), readonly);
	xvmsg_stat_add(c->info, XVMSG_ST_GRANTS, n);
	return XVMSG_GRANT_ADDR(ref, offset);
}

/*
 * Forget the mapping that starts at ref: its page count, 0 if none does,
 * and its first frame.  With a frame to expect (a coherent free names its
 * memory), a mapping of another frame is left alone and 0 returned: a stale
 * handle must not end another buffer's grants.
 */
static unsigned int grant_forget(struct xvmsg_conn *c, grant_ref_t ref, long expect_pfn,
				 unsigned long *xen_pfn)
{
	unsigned long irqf, v = 0;
	void *entry;

	xa_lock_irqsave(&c->grants, irqf);
	entry = xa_load(&c->grants, ref);
	if (entry) {
		v = xa_to_value(entry);
		if (expect_pfn < 0 || grant_entry_pfn(v) == (unsigned long)expect_pfn)
			__xa_erase(&c->grants, ref);
		else
			entry = NULL;
	}
	xa_unlock_irqrestore(&c->grants, irqf);
	if (!entry) {
		dev_err_ratelimited(xvmsg_dev(c), "DMA unmap/free of grant %u that is not %s\n",
				    ref, v ? "mapped there" : "mapped");
		return 0;
	}
	*xen_pfn = grant_entry_pfn(v);
	return grant_entry_pages(v);
}

/*
 * Grant and full mode: the device writes straight into the buffer.  A small
 * device-writable buffer (a status byte) starts as 0xff, as in pool mode, so
 * a request completed without the device writing it reads as a failure.
 * The content of a DMA_FROM_DEVICE buffer is undefined until the device
 * wrote it, so nothing of the driver's is lost.
 */
static void poison_small(phys_addr_t phys, size_t size, enum dma_data_direction dir)
{
	void *va;

	if (dir != DMA_FROM_DEVICE || size > XVMSG_POISON_MAX ||
	    offset_in_page(phys) + size > PAGE_SIZE)
		return;
	va = kmap_local_page(pfn_to_page(PHYS_PFN(phys)));
	memset(va + offset_in_page(phys), 0xff, size);
	kunmap_local(va);
}

static dma_addr_t grant_map_phys_rcu(struct device *dev, phys_addr_t phys, size_t size,
				     enum dma_data_direction dir, unsigned long attrs)
{
	struct xvmsg_conn *c = dev_conn(dev);
	unsigned long offset = offset_in_page(phys);

	if (!c || !size || dir == DMA_NONE || (attrs & DMA_ATTR_MMIO) || map_gated(c)) {
		if (c)
			xvmsg_stat_inc(c->info, XVMSG_ST_MAP_ERRORS);
		return DMA_MAPPING_ERROR;
	}
	poison_small(phys, size, dir);
	return grant_pages(c, XEN_PFN_DOWN(phys), PFN_UP(offset + size), offset,
			   dir == DMA_TO_DEVICE);
}

static void grant_unmap_phys_rcu(struct device *dev, dma_addr_t addr, size_t size,
				 enum dma_data_direction dir, unsigned long attrs)
{
	struct xvmsg_conn *c = dev_conn(dev);
	unsigned int i, n, busy = 0;
	unsigned long xen_pfn;
	grant_ref_t ref;

	if (c)
		xvmsg_shadow_unmapped(c, addr);	/* a chain virtio_ring freed? */
	if (!c || !XVMSG_ADDR_IS_GRANT(addr))
		return;
	ref = (grant_ref_t)XVMSG_ADDR_PFN(addr);
	n = grant_forget(c, ref, -1, &xen_pfn);
	if (n != PFN_UP(XVMSG_ADDR_OFF(addr) + size) && n)
		dev_err_ratelimited(dev, "dma unmap of %pad+%zu, mapped as %u page(s)\n",
				    &addr, size, n);
	for (i = 0; i < n; i++)
		busy += !end_access_driver_page(c, ref + i, xen_pfn + i);
	if (busy)
		xvmsg_conn_fail(c,
				"backend still maps %u page(s) of a buffer the driver took back (grants %u..%u)",
				busy, ref, ref + n - 1);
}

static void *grant_alloc(struct device *dev, size_t size, dma_addr_t *handle, gfp_t gfp,
			 unsigned long attrs)
{
	size_t bytes = PAGE_ALIGN(size);
	dma_addr_t addr = DMA_MAPPING_ERROR;
	struct xvmsg_conn *c;
	void *va;

	if (!size)
		return NULL;
	/*
	 * alloc_pages_exact (it may sleep: not under RCU): order-0 pages, each
	 * of which may be withheld alone if the backend keeps it mapped (see
	 * gnttab_end_foreign_access).
	 */
	va = alloc_pages_exact(bytes, (gfp & ~__GFP_COMP) | __GFP_ZERO);
	if (!va)
		return NULL;
	rcu_read_lock_sched();
	c = dev_conn(dev);
	if (c)
		addr = grant_pages(c, virt_to_pfn(va), bytes >> PAGE_SHIFT, 0, false);
	rcu_read_unlock_sched();
	if (addr == DMA_MAPPING_ERROR) {
		free_pages_exact(va, bytes);
		return NULL;
	}
	*handle = addr;
	return va;
}

static void grant_free_rcu(struct device *dev, size_t size, void *vaddr, dma_addr_t handle,
			   unsigned long attrs)
{
	struct xvmsg_conn *c = dev_conn(dev);
	unsigned long xen_pfn;
	unsigned int i, n;
	grant_ref_t ref;

	if (!c || !XVMSG_ADDR_IS_GRANT(handle))
		return;		/* after a disconnect: revoked there, leaked here */
	ref = (grant_ref_t)XVMSG_ADDR_PFN(handle);
	n = grant_forget(c, ref, (long)virt_to_pfn(vaddr), &xen_pfn);
	/* All n pages are ours (alloc_pages_exact, order 0 each), whatever
	 * size the driver says: end and free every one. */
	if (n && n != PFN_UP(size))
		dev_err_ratelimited(dev, "dma_free_coherent of %zu bytes, allocated %u page(s)\n",
				    size, n);
	for (i = 0; i < n; i++) {
		void *va = vaddr + ((size_t)i << PAGE_SHIFT);

		if (xvmsg_end_access(c->info, ref + i, virt_to_page(va)))
			free_page((unsigned long)va);
	}
}
XVMSG_RCU_VOID_OP(grant_free,
		  (struct device *dev, size_t size, void *vaddr, dma_addr_t handle,
		   unsigned long attrs),
		  (dev, size, vaddr, handle, attrs))

/*
 * Disconnect: revoke what the drivers never gave back (a request that never
 * completed keeps its buffer mapped).  The pages are the drivers'; one the
 * backend still maps is withheld until it lets go, where it can be
 * (end_access_driver_page).
 */
void xvmsg_grants_revoke_all(struct xvmsg_conn *c)
{
	unsigned long ref, left = 0, xen_pfn;
	unsigned int i, n;
	void *entry;

	xa_for_each(&c->grants, ref, entry) {
		n = grant_entry_pages(xa_to_value(entry));
		xen_pfn = grant_entry_pfn(xa_to_value(entry));
		for (i = 0; i < n; i++)
			end_access_driver_page(c, ref + i, xen_pfn + i);
		left += n;
	}
	xa_destroy(&c->grants);
	if (left)
		dev_warn(xvmsg_dev(c), "revoked %lu grant(s) of buffers the drivers had not unmapped\n",
			 left);
}

/* ---- full mode ------------------------------------------------------------ */

/* pfn_to_gfn() for <xvmsg/frames.h>: pfn is a 4 KiB Xen frame; the mfn in
 * a PV guest, the same frame in an auto-translated one. */
static __u64 xen_frame_gfn(void *ctx, __u64 pfn)
{
	return pfn_to_gfn((unsigned long)pfn);
}

static dma_addr_t full_map_phys_rcu(struct device *dev, phys_addr_t phys, size_t size,
				    enum dma_data_direction dir, unsigned long attrs)
{
	struct xvmsg_conn *c = dev_conn(dev);
	__u64 addr;

	if (!c || !size || dir == DMA_NONE || (attrs & DMA_ATTR_MMIO) || map_gated(c)) {
		if (c)
			xvmsg_stat_inc(c->info, XVMSG_ST_MAP_ERRORS);
		return DMA_MAPPING_ERROR;
	}
	poison_small(phys, size, dir);
	if (!xvmsg_full_addr(xen_frame_gfn, NULL, phys, size, &addr)) {
		xvmsg_stat_inc(c->info, XVMSG_ST_FULL_DISCONTIG);
		dev_warn_ratelimited(dev,
				     "full mode: %zu-byte buffer spans machine-discontiguous frames, not mapped\n",
				     size);
		return DMA_MAPPING_ERROR;
	}
	return addr;
}

static void full_unmap_phys_rcu(struct device *dev, dma_addr_t addr, size_t size,
				enum dma_data_direction dir, unsigned long attrs)
{
	struct xvmsg_conn *c = dev_conn(dev);

	if (c)
		xvmsg_shadow_unmapped(c, addr);	/* a chain virtio_ring freed? */
}

#define FULL_ALLOC_TRIES 4

static void *full_alloc(struct device *dev, size_t size, dma_addr_t *handle, gfp_t gfp,
			unsigned long attrs)
{
	size_t bytes = PAGE_ALIGN(size);
	void *rejects[FULL_ALLOC_TRIES], *va = NULL;
	unsigned int i, nrej = 0;
	struct xvmsg_conn *c;
	__u64 addr = 0;

	if (!size)
		return NULL;
	/*
	 * PV: pseudo-physically contiguous pages are often, not always,
	 * machine-contiguous; a few tries, then virtio_ring asks for less.
	 */
	for (i = 0; i < FULL_ALLOC_TRIES; i++) {
		va = alloc_pages_exact(bytes, (gfp & ~__GFP_COMP) | __GFP_ZERO);
		if (!va)
			break;
		if (xvmsg_full_addr(xen_frame_gfn, NULL, virt_to_phys(va), bytes, &addr))
			break;
		rejects[nrej++] = va;
		va = NULL;
	}
	while (nrej)
		free_pages_exact(rejects[--nrej], bytes);
	if (!va) {
		rcu_read_lock_sched();
		c = dev_conn(dev);
		if (c)
			xvmsg_stat_inc(c->info, XVMSG_ST_FULL_DISCONTIG);
		rcu_read_unlock_sched();
		return NULL;
	}
	*handle = addr;
	return va;
}

static void full_free(struct device *dev, size_t size, void *vaddr, dma_addr_t handle,
		      unsigned long attrs)
{
	free_pages_exact(vaddr, PAGE_ALIGN(size));
}

/* ---- common ---------------------------------------------------------------- */

/* <mode>_map_phys and <mode>_unmap_phys: the mode's _rcu functions, each
 * called under rcu_read_lock_sched() (XVMSG_RCU_OP). */
#define DEFINE_PHYS_OPS(mode)								\
XVMSG_RCU_OP(dma_addr_t, mode##_map_phys,						\
	     (struct device *dev, phys_addr_t phys, size_t size,			\
	      enum dma_data_direction dir, unsigned long attrs),			\
	     (dev, phys, size, dir, attrs))						\
XVMSG_RCU_VOID_OP(mode##_unmap_phys,							\
		  (struct device *dev, dma_addr_t addr, size_t size,			\
		   enum dma_data_direction dir, unsigned long attrs),			\
		  (dev, addr, size, dir, attrs))

#define DEFINE_SG_OPS(mode)								\
static void mode##_unmap_sg(struct device *dev, struct scatterlist *sgl, int nents,	\
			    enum dma_data_direction dir, unsigned long attrs)		\
{											\
	struct scatterlist *sg;								\
	int i;										\
											\
	for_each_sg(sgl, sg, nents, i)							\
		mode##_unmap_phys(dev, sg_dma_address(sg), sg_dma_len(sg), dir, attrs);	\
}											\
											\
static int mode##_map_sg(struct device *dev, struct scatterlist *sgl, int nents,	\
			 enum dma_data_direction dir, unsigned long attrs)		\
{											\
	struct scatterlist *sg;								\
	int i;										\
											\
	for_each_sg(sgl, sg, nents, i) {						\
		sg_dma_address(sg) = mode##_map_phys(dev, sg_phys(sg), sg->length,	\
						     dir, attrs);			\
		if (sg_dma_address(sg) == DMA_MAPPING_ERROR) {				\
			mode##_unmap_sg(dev, sgl, i, dir,				\
					attrs | DMA_ATTR_SKIP_CPU_SYNC);		\
			return -ENOMEM;							\
		}									\
		sg_dma_len(sg) = sg->length;						\
	}										\
	return nents;									\
}

DEFINE_PHYS_OPS(pool)
DEFINE_SG_OPS(pool)
XVMSG_DEFINE_MAP_PAGE_OPS(pool)
DEFINE_PHYS_OPS(grant)
DEFINE_SG_OPS(grant)
XVMSG_DEFINE_MAP_PAGE_OPS(grant)
DEFINE_PHYS_OPS(full)
DEFINE_SG_OPS(full)
XVMSG_DEFINE_MAP_PAGE_OPS(full)

static void pool_sync_sg_for_cpu(struct device *dev, struct scatterlist *sgl, int nents,
				 enum dma_data_direction dir)
{
	struct scatterlist *sg;
	int i;

	for_each_sg(sgl, sg, nents, i)
		pool_sync_for_cpu(dev, sg_dma_address(sg), sg_dma_len(sg), dir);
}

static void pool_sync_sg_for_device(struct device *dev, struct scatterlist *sgl, int nents,
				    enum dma_data_direction dir)
{
	struct scatterlist *sg;
	int i;

	for_each_sg(sgl, sg, nents, i)
		pool_sync_for_device(dev, sg_dma_address(sg), sg_dma_len(sg), dir);
}

/* Pool and grant addresses use bit 63: only a 64-bit mask can carry them. */
static int xvmsg_dma_supported_64(struct device *dev, u64 mask)
{
	return mask == DMA_BIT_MASK(64);
}

static int xvmsg_dma_supported_any(struct device *dev, u64 mask)
{
	return 1;
}

static const struct dma_map_ops xvmsg_pool_ops = {
	.alloc			= pool_alloc,
	.free			= pool_free,
	XVMSG_DMA_MAP_PHYS_OPS(pool),
	.map_sg			= pool_map_sg,
	.unmap_sg		= pool_unmap_sg,
	.sync_single_for_cpu	= pool_sync_for_cpu,
	.sync_single_for_device	= pool_sync_for_device,
	.sync_sg_for_cpu	= pool_sync_sg_for_cpu,
	.sync_sg_for_device	= pool_sync_sg_for_device,
	.dma_supported		= xvmsg_dma_supported_64,
	.max_mapping_size	= pool_max_mapping_size,
};

static const struct dma_map_ops xvmsg_grant_ops = {
	.alloc			= grant_alloc,
	.free			= grant_free,
	XVMSG_DMA_MAP_PHYS_OPS(grant),
	.map_sg			= grant_map_sg,
	.unmap_sg		= grant_unmap_sg,
	.dma_supported		= xvmsg_dma_supported_64,
};

static const struct dma_map_ops xvmsg_full_ops = {
	.alloc			= full_alloc,
	.free			= full_free,
	XVMSG_DMA_MAP_PHYS_OPS(full),
	.map_sg			= full_map_sg,
	.unmap_sg		= full_unmap_sg,
	.dma_supported		= xvmsg_dma_supported_any,
};

const struct dma_map_ops *xvmsg_dma_ops(enum xvmsg_mode mode)
{
	switch (mode) {
	case XVMSG_MODE_POOL:	return &xvmsg_pool_ops;
	case XVMSG_MODE_GRANT:	return &xvmsg_grant_ops;
	case XVMSG_MODE_FULL:	return &xvmsg_full_ops;
	}
	return &xvmsg_pool_ops;
}

/* ---- pool lifetime -------------------------------------------------------- */

int xvmsg_pool_create(struct xvmsg_conn *c, unsigned int npages)
{
	struct xvmsg_pool *p = &c->pool;
	unsigned int i;
	int r;

	spin_lock_init(&p->lock);
	p->npages = npages;
	p->nunits = npages * XVMSG_POOL_UNITS_PER_PAGE;
	p->pages = kvcalloc(npages, sizeof(*p->pages), GFP_KERNEL);
	p->map = bitmap_zalloc(p->nunits, GFP_KERNEL);
	p->slot = kvcalloc(p->nunits, sizeof(*p->slot), GFP_KERNEL);
	if (!p->pages || !p->map || !p->slot)
		return -ENOMEM;
	for (; p->nallocated < npages; p->nallocated++) {
		p->pages[p->nallocated] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!p->pages[p->nallocated])
			return -ENOMEM;
	}
	p->va = vmap(p->pages, npages, VM_MAP, PAGE_KERNEL);
	if (!p->va)
		return -ENOMEM;
	r = gnttab_alloc_grant_reference_seq(npages, &p->first_ref);
	if (r) {
		dev_err(xvmsg_dev(c),
			"no %u consecutive grant references for the pool (%d); try a smaller pool_pages\n",
			npages, r);
		return r;
	}
	p->have_refs = true;
	for (i = 0; i < npages; i++) {
		gnttab_grant_foreign_access_ref(p->first_ref + i, c->domid,
						xen_page_to_gfn(p->pages[i]), 0);
		p->ngranted = i + 1;
	}
	xvmsg_stat_add(c->info, XVMSG_ST_GRANTS, npages);
	/*
	 * Largest streaming mapping (include/xvmsg/pool.h): seg_max segments
	 * of this size fit in half the pool (the backend derives seg_max from
	 * the pool, clamp_blk_seg_max() makes sure), so a request never waits
	 * for more pool than there is.
	 */
	c->max_map = xvmsg_pool_seg_bytes(npages);
	return 0;
}

/*
 * Revoke and free the pool; safe on a partly created one.  A pool that the
 * drivers still use (units busy: a driver leaked a mapping) is revoked but
 * never freed.
 */
void xvmsg_pool_destroy(struct xvmsg_conn *c)
{
	struct xvmsg_pool *p = &c->pool;
	bool keep = p->used != 0;
	unsigned int i;

	if (keep) {
		dev_err(xvmsg_dev(c),
			"%u pool units still in use by guest drivers at disconnect: pool memory leaked\n",
			p->used);
		xvmsg_stat_add(c->info, XVMSG_ST_LEAKED_PAGES, p->nallocated);
	}
	if (p->va && !keep)
		vunmap(p->va);
	for (i = 0; i < p->ngranted; i++) {
		/* keep: the page stays ours (the drivers use it); the grant
		 * table gets a reference of its own to drop. */
		if (keep)
			get_page(p->pages[i]);
		if (xvmsg_end_access(c->info, p->first_ref + i, p->pages[i]))
			put_page(p->pages[i]);	/* freed, or back to our own reference */
	}
	if (p->have_refs && p->ngranted < p->npages)
		gnttab_free_grant_reference_seq(p->first_ref + p->ngranted,
						p->npages - p->ngranted);
	for (i = p->ngranted; i < p->nallocated && !keep; i++)
		__free_page(p->pages[i]);
	kvfree(p->pages);
	bitmap_free(p->map);
	kvfree(p->slot);
	memset(p, 0, sizeof(*p));
}
