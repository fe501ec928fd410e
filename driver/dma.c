// SPDX-License-Identifier: MIT
/*
 * Memory the device may reach, in the three xvmsg modes:
 *
 *   pool   only the pool is granted (once, at connect); buffers are bounced
 *          through pool slots, device-written bytes copied back up to the
 *          used length, and every slot is zeroed when freed.
 *   grant  buffers live in guest RAM; each is granted (consecutive refs) while
 *          the device owns it, then revoked (grant-dma-ops).
 *   full   buffers live in guest RAM; the bus address is the guest frame.
 *
 * The unit allocator they use (and the grant-ref allocator) is drv-base.c's.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "drv-priv.h"

/* ---- guest RAM --------------------------------------------------------- */

int xvd_ram_get(struct xvd_ram *r, size_t len, void **va)
{
	int64_t s;
	size_t n = XVD_DIV_UP(len, XVD_RAM_UNIT);

	if (!len || n > UINT32_MAX)
		return -EINVAL;
	s = xvd_ua_alloc(&r->ua, (uint32_t)n,
			 len >= XVMSG_PAGE_SIZE ? XVMSG_PAGE_SIZE / XVD_RAM_UNIT : 1);
	if (s < 0)
		return -ENOMEM;
	*va = (uint8_t *)r->mem.va + (size_t)s * XVD_RAM_UNIT;
	memset(*va, 0, n * XVD_RAM_UNIT);
	return 0;
}

bool xvd_ram_holds(const struct xvd_ram *r, const void *va, size_t len)
{
	uintptr_t base = (uintptr_t)r->mem.va, p = (uintptr_t)va;
	size_t size = r->mem.pages * XVMSG_PAGE_SIZE;

	return r->mem.va && p >= base && len <= size && p - base <= size - len;
}

void xvd_ram_put(struct xvd_ram *r, void *va)
{
	size_t off;

	if (!va || !xvd_ram_holds(r, va, 1))
		return;
	off = (size_t)((uint8_t *)va - (uint8_t *)r->mem.va);
	if (off % XVD_RAM_UNIT == 0)
		xvd_ua_free(&r->ua, (uint32_t)(off / XVD_RAM_UNIT));
}

/* ---- modes ------------------------------------------------------------- */

int xvd_dma_pool_init(struct xvd_dma *m, uint8_t *pool, size_t pages, uint32_t pool_ref)
{
	m->pool = pool;
	m->pool_ref = pool_ref;
	return xvd_ua_init(&m->pool_ua, (uint32_t)(pages * (XVMSG_PAGE_SIZE / XVD_POOL_UNIT)));
}

void xvd_dma_destroy(struct xvd_dma *m)
{
	xvd_ua_destroy(&m->pool_ua);
	m->pool = NULL;
}

static uint64_t pool_addr(const struct xvd_dma *m, size_t off)
{
	return XVMSG_GRANT_ADDR(m->pool_ref + off / XVMSG_PAGE_SIZE, off % XVMSG_PAGE_SIZE);
}

static int pool_get(struct xvd_dma *m, uint32_t len, struct xvd_map *mp)
{
	int64_t s = xvd_ua_alloc(&m->pool_ua, XVD_DIV_UP(len, XVD_POOL_UNIT), 1);

	if (s < 0) {
		m->st->pool_full++;
		return -ENOMEM;
	}
	mp->first = (uint32_t)s;
	mp->addr = pool_addr(m, (size_t)s * XVD_POOL_UNIT);
	return 0;
}

/*
 * Free slots hold no guest data.  A slot we copied guest data into (or that
 * held rings or descriptor tables) is zeroed when it is freed, so nothing of
 * ours stays visible to the backend.  A device-writable bounce slot is not:
 * it was free (so free of guest data) when taken, and only the device wrote
 * into it since; skipping the memset halves the copying of every read.
 */
static void pool_put(struct xvd_dma *m, struct xvd_map *mp)
{
	if (!(mp->kind == XVD_MAP_BUF && mp->dev_writes))
		memset(m->pool + (size_t)mp->first * XVD_POOL_UNIT, 0,
		       (size_t)XVD_DIV_UP(mp->len, XVD_POOL_UNIT) * XVD_POOL_UNIT);
	xvd_ua_free(&m->pool_ua, mp->first);
}

static int pool_map(struct xvd_dma *m, struct xvd_map *mp)
{
	int r = pool_get(m, mp->len, mp);

	if (r == 0 && !mp->dev_writes) {
		memcpy(m->pool + (size_t)mp->first * XVD_POOL_UNIT, mp->va, mp->len);
		m->st->bounce_in += mp->len;
	}
	return r;
}

static void pool_unmap(struct xvd_dma *m, struct xvd_map *mp, uint32_t copy_len)
{
	if (mp->dev_writes && copy_len) {
		uint32_t n = copy_len < mp->len ? copy_len : mp->len;

		memcpy(mp->va, m->pool + (size_t)mp->first * XVD_POOL_UNIT, n);
		m->st->bounce_out += n;
	}
	pool_put(m, mp);
}

static int pool_alloc(struct xvd_dma *m, struct xvd_map *mp)
{
	int r = pool_get(m, mp->len, mp);

	if (r < 0)
		return r;
	mp->va = m->pool + (size_t)mp->first * XVD_POOL_UNIT;
	memset(mp->va, 0, mp->len);
	return 0;
}

/* Grant the RAM pages under [va, va+len) with consecutive refs. */
static int grant_range(struct xvd_dma *m, void *va, uint32_t len, bool dev_writes,
		       struct xvd_map *mp)
{
	size_t off = (size_t)((uint8_t *)va - (uint8_t *)m->ram->mem.va);
	size_t pg0 = off / XVMSG_PAGE_SIZE;
	unsigned int n = XVD_DIV_UP(off % XVMSG_PAGE_SIZE + len, XVMSG_PAGE_SIZE), i;
	uint32_t first;
	int r;

	r = m->bus->ops->gnt_alloc(m->bus, n, &first);
	if (r < 0)
		return r;
	for (i = 0; i < n; i++) {
		r = m->bus->ops->gnt_grant(m->bus, first + i, m->ram->mem.gfn + pg0 + i,
					   !dev_writes);
		if (r < 0)
			break;
	}
	if (r < 0) {
		while (i--)
			m->bus->ops->gnt_revoke(m->bus, first + i);	/* never mapped yet */
		m->bus->ops->gnt_free(m->bus, first, n);
		return r;
	}
	m->st->grants += n;
	mp->first = first;
	mp->nref = (uint16_t)n;
	mp->addr = XVMSG_GRANT_ADDR(first, off % XVMSG_PAGE_SIZE);
	return 0;
}

/* Revoke; a page still mapped by the backend is leaked (never reused). */
static void ungrant_range(struct xvd_dma *m, struct xvd_map *mp)
{
	size_t pg0 = (size_t)((uint8_t *)mp->va - (uint8_t *)m->ram->mem.va) / XVMSG_PAGE_SIZE;

	for (unsigned int i = 0; i < mp->nref; i++) {
		m->st->revokes++;
		if (m->bus->ops->gnt_revoke(m->bus, mp->first + i) == -EBUSY) {
			m->st->revoke_busy++;
			xvd_ua_leak(&m->ram->ua, (uint32_t)((pg0 + i) * (XVMSG_PAGE_SIZE / XVD_RAM_UNIT)),
				    XVMSG_PAGE_SIZE / XVD_RAM_UNIT);
			xvd_logf(m->log, XVD_LOG_WARN, "grant %u still mapped by the backend: page leaked",
				 mp->first + i);
		}
	}
	m->bus->ops->gnt_free(m->bus, mp->first, mp->nref);
	mp->nref = 0;
}

static int grant_map(struct xvd_dma *m, struct xvd_map *mp)
{
	return grant_range(m, mp->va, mp->len, mp->dev_writes, mp);
}

static void grant_unmap(struct xvd_dma *m, struct xvd_map *mp, uint32_t copy_len)
{
	ungrant_range(m, mp);
}

static uint64_t full_addr(const struct xvd_dma *m, const void *va)
{
	size_t off = (size_t)((const uint8_t *)va - (const uint8_t *)m->ram->mem.va);

	return (m->ram->mem.gfn << XVMSG_PAGE_SHIFT) + off;
}

static int full_map(struct xvd_dma *m, struct xvd_map *mp)
{
	mp->addr = full_addr(m, mp->va);
	return 0;
}

/* Grant and full mode: rings and tables in guest RAM, made reachable as a
 * buffer is; freed (leaked pages stay reserved) after the buffer's unmap. */
static int ram_alloc(struct xvd_dma *m, struct xvd_map *mp)
{
	int r = xvd_ram_get(m->ram, mp->len, &mp->va);

	if (r < 0)
		return r;
	r = m->ops->map(m, mp);
	if (r < 0)
		xvd_ram_put(m->ram, mp->va);
	return r;
}

static void ram_free(struct xvd_dma *m, struct xvd_map *mp)
{
	if (m->ops->unmap)
		m->ops->unmap(m, mp, 0);
	xvd_ram_put(m->ram, mp->va);
}

static const struct xvd_dma_ops pool_ops = {
	.map = pool_map, .unmap = pool_unmap, .alloc = pool_alloc, .free = pool_put,
};
static const struct xvd_dma_ops grant_ops = {
	.in_ram = true, .map = grant_map, .unmap = grant_unmap, .alloc = ram_alloc,
	.free = ram_free,
};
static const struct xvd_dma_ops full_ops = {
	.in_ram = true, .map = full_map, .alloc = ram_alloc, .free = ram_free,
};

int xvd_dma_init(struct xvd_dma *m, enum xvmsg_mode mode, struct drv_bus *bus,
		 struct xvd_ram *ram, struct xvd_stats *st, const struct xvd_logger *log)
{
	static const struct xvd_dma_ops *const ops[XVMSG_NR_MODES] = {
		[XVMSG_MODE_POOL] = &pool_ops,
		[XVMSG_MODE_GRANT] = &grant_ops,
		[XVMSG_MODE_FULL] = &full_ops,
	};

	memset(m, 0, sizeof(*m));
	if ((unsigned int)mode >= XVMSG_NR_MODES)
		return -EINVAL;
	*m = (struct xvd_dma){ .mode = mode, .ops = ops[mode], .bus = bus, .ram = ram, .st = st,
			       .log = log };
	return 0;
}

int xvd_dma_map(struct xvd_dma *m, void *va, uint32_t len, bool dev_writes, struct xvd_map *mp)
{
	int r;

	memset(mp, 0, sizeof(*mp));
	if (!len)
		return -EINVAL;
	mp->va = va;
	mp->len = len;
	mp->dev_writes = dev_writes;
	if (m->ops->in_ram && !xvd_ram_holds(m->ram, va, len))
		return -EINVAL;
	r = m->ops->map(m, mp);
	if (r == 0)
		mp->kind = XVD_MAP_BUF;
	return r;
}

void xvd_dma_unmap(struct xvd_dma *m, struct xvd_map *mp, uint32_t copy_len)
{
	if (mp->kind != XVD_MAP_BUF)
		return;
	if (m->ops->unmap)
		m->ops->unmap(m, mp, copy_len);
	mp->kind = XVD_MAP_NONE;
}

int xvd_dma_alloc(struct xvd_dma *m, uint32_t len, bool dev_writes, struct xvd_map *mp)
{
	int r;

	memset(mp, 0, sizeof(*mp));
	mp->len = len;
	mp->dev_writes = dev_writes;
	r = m->ops->alloc(m, mp);
	if (r < 0)
		return r;
	mp->kind = XVD_MAP_ALLOC;
	return 0;
}

void xvd_dma_free(struct xvd_dma *m, struct xvd_map *mp)
{
	if (mp->kind != XVD_MAP_ALLOC)
		return;
	m->ops->free(m, mp);
	mp->kind = XVD_MAP_NONE;
}
