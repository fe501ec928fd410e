// SPDX-License-Identifier: MIT
/*
 * Split virtqueue, driver side (virtio 1.2, 2.7), with EVENT_IDX and indirect
 * descriptors.  The rings live in memory the device can reach (xvd_dma); the
 * descriptor free list and per-chain state stay private, so nothing the device
 * writes is ever trusted except used elements, which are copied once and
 * checked before use.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xvmsg/wire.h>

#include "drv-priv.h"

/* Ring layout in one allocation: desc[size] | avail (+used_event) | used (+avail_event). */
static size_t avail_off(unsigned int size)
{
	return sizeof(struct vring_desc) * size;
}

static size_t used_off(unsigned int size)
{
	return (avail_off(size) + 6 + 2 * size + 3) & ~(size_t)3;
}

static size_t ring_bytes(unsigned int size)
{
	return used_off(size) + 6 + sizeof(struct vring_used_elem) * size;
}

int xvd_vq_setup(struct xvd_vq *vq, unsigned int index, unsigned int size,
		 struct xvd_dma *dma, uint32_t port, int *err,
		 struct xvd_stats *st, const struct xvd_logger *log)
{
	int r;

	memset(vq, 0, sizeof(*vq));
	if (!size || size > XVMSG_MAX_QUEUE_SIZE || (size & (size - 1)))
		return -EINVAL;
	vq->index = index;
	vq->size = (uint16_t)size;
	vq->dma = dma;
	vq->port = port;
	vq->err = err;
	vq->st = st;
	vq->log = log;
	vq->indirect_min = XVD_DEFAULT_IND_MIN;
	r = xvd_dma_alloc(dma, (uint32_t)ring_bytes(size), true, &vq->ring);
	if (r < 0)
		return r;
	vq->desc = vq->ring.va;
	vq->avail = (struct vring_avail *)((uint8_t *)vq->ring.va + avail_off(size));
	vq->used = (struct vring_used *)((uint8_t *)vq->ring.va + used_off(size));
	vq->used_event = &vq->avail->ring[size];
	vq->avail_event = (uint16_t *)&vq->used->ring[size];
	vq->desc_addr = vq->ring.addr;
	vq->avail_addr = vq->ring.addr + avail_off(size);
	vq->used_addr = vq->ring.addr + used_off(size);
	vq->next = calloc(size, sizeof(*vq->next));
	vq->chain = calloc(size, sizeof(*vq->chain));
	vq->dead = calloc(size, sizeof(*vq->dead));
	if (!vq->next || !vq->chain || !vq->dead) {
		xvd_vq_teardown(vq);
		return -ENOMEM;
	}
	xvd_vq_restart(vq);
	return 0;
}

void xvd_vq_teardown(struct xvd_vq *vq)
{
	if (vq->chain)
		xvd_vq_cancel_all(vq, -ECANCELED);
	xvd_dma_free(vq->dma, &vq->ring);
	free(vq->next);
	free(vq->chain);
	free(vq->dead);
	vq->next = NULL;
	vq->chain = NULL;
	vq->dead = NULL;
}

void xvd_vq_restart(struct xvd_vq *vq)
{
	memset(vq->ring.va, 0, vq->ring.len);
	for (unsigned int i = 0; i < vq->size; i++)
		vq->next[i] = (uint16_t)(i + 1);
	vq->free_head = 0;
	vq->num_free = vq->size;
	vq->avail_idx = vq->kicked_idx = vq->last_used = vq->shadow_used = 0;
}

/* Return the chain's descriptors and mappings; copy back up to len bytes. */
static void chain_release(struct xvd_vq *vq, uint16_t head, uint32_t len)
{
	struct xvd_chain *c = &vq->chain[head];
	uint16_t tail = head;

	for (unsigned int i = 0; i < c->nmaps; i++) {
		struct xvd_map *mp = &c->maps[i];
		uint32_t n = 0;

		if (mp->dev_writes) {
			n = len < mp->len ? len : mp->len;
			len -= n;
		}
		xvd_dma_unmap(vq->dma, mp, n);
	}
	xvd_dma_free(vq->dma, &c->ind);
	free(c->maps);
	for (unsigned int i = 1; i < c->ndesc; i++)
		tail = vq->next[tail];
	vq->next[tail] = vq->free_head;
	vq->free_head = head;
	vq->num_free += c->ndesc;
	vq->inflight--;
	memset(c, 0, sizeof(*c));
}

void xvd_vq_cancel_all(struct xvd_vq *vq, int status)
{
	for (uint16_t h = 0; h < vq->size && vq->inflight; h++) {
		if (!vq->chain[h].busy)
			continue;
		vq->dead[vq->ndead++] = (struct xvd_done){ vq->chain[h].cookie, 0, status };
		chain_release(vq, h, 0);
	}
}

static void vq_set_desc(struct vring_desc *d, const struct xvd_map *mp, uint16_t flags,
			uint16_t next)
{
	d->addr = htole64(mp->addr);
	d->len = htole32(mp->len);
	d->flags = htole16(flags | (mp->dev_writes ? VRING_DESC_F_WRITE : 0));
	d->next = htole16(next);
}

int xvd_vq_add(struct xvd_vq *vq, const struct xvd_buf *bufs, unsigned int n, void *cookie)
{
	struct xvd_map *maps, ind = { 0 };
	uint64_t in_len = 0;
	unsigned int i, need;
	uint16_t head, cur;
	bool use_ind;
	int r;

	if (*vq->err)
		return *vq->err;
	if (vq->ndead + vq->inflight >= vq->size)
		return -ENOSPC;		/* keeps room to report every chain cancelled */
	if (!n || n > XVD_MAX_SEGS)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!bufs[i].len || (i && bufs[i - 1].dev_writes && !bufs[i].dev_writes))
			return -EINVAL;
		if (bufs[i].dev_writes)
			in_len += bufs[i].len;
	}
	if (in_len > UINT32_MAX)
		return -EINVAL;
	use_ind = vq->indirect && n > 1 && n >= vq->indirect_min;
	need = use_ind ? 1 : n;
	if (need > vq->size)
		return -EINVAL;
	if (need > vq->num_free)
		return -ENOSPC;

	maps = calloc(n, sizeof(*maps));
	if (!maps)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (bufs[i].raw) {	/* XVD_MAP_NONE: nothing to undo on completion */
			maps[i] = (struct xvd_map){ .addr = bufs[i].bus_addr, .len = bufs[i].len,
						    .dev_writes = bufs[i].dev_writes };
			continue;
		}
		r = xvd_dma_map(vq->dma, bufs[i].addr, bufs[i].len, bufs[i].dev_writes, &maps[i]);
		if (r < 0)
			goto unmap;
	}
	if (use_ind) {
		struct vring_desc *t;

		r = xvd_dma_alloc(vq->dma, (uint32_t)(n * sizeof(*t)), false, &ind);
		if (r < 0)
			goto unmap;
		t = ind.va;
		for (i = 0; i < n; i++)
			vq_set_desc(&t[i], &maps[i], i + 1 < n ? VRING_DESC_F_NEXT : 0,
				    (uint16_t)(i + 1 < n ? i + 1 : 0));
	}

	head = cur = vq->free_head;
	for (i = 0; i < need; i++) {
		uint16_t nx = vq->next[cur];

		if (use_ind) {
			struct xvd_map tbl = ind;

			tbl.dev_writes = 0;
			vq_set_desc(&vq->desc[cur], &tbl, VRING_DESC_F_INDIRECT, 0);
		} else {
			vq_set_desc(&vq->desc[cur], &maps[i], i + 1 < need ? VRING_DESC_F_NEXT : 0,
				    i + 1 < need ? nx : 0);
		}
		if (i + 1 < need)
			cur = nx;
		else
			vq->free_head = nx;
	}
	vq->num_free -= need;
	vq->chain[head] = (struct xvd_chain){ .cookie = cookie, .in_len = (uint32_t)in_len,
					      .ndesc = (uint16_t)need, .nmaps = (uint16_t)n,
					      .busy = true, .maps = maps, .ind = ind };
	vq->avail->ring[vq->avail_idx % vq->size] = htole16(head);
	/* Descriptors and ring entry before the index; pairs with the device's
	 * read barrier between reading avail->idx and the entries. */
	xvmsg_wmb();
	vq->avail_idx++;
	XVMSG_WRITE_ONCE(vq->avail->idx, htole16(vq->avail_idx));
	vq->inflight++;
	vq->st->requests++;
	return 0;

unmap:
	while (i--)
		xvd_dma_unmap(vq->dma, &maps[i], 0);
	free(maps);
	return r;
}

bool xvd_vq_kick_prepare(struct xvd_vq *vq)
{
	uint16_t old = vq->kicked_idx, new = vq->avail_idx;
	bool kick;

	if (old == new)
		return false;
	vq->kicked_idx = new;
	/* avail->idx store before the avail_event/flags load; pairs with the
	 * device's full barrier between writing avail_event and re-reading
	 * avail->idx. */
	xvmsg_mb();
	if (vq->event_idx)
		kick = vring_need_event(le16toh(XVMSG_READ_ONCE(*vq->avail_event)), new, old);
	else
		kick = !(le16toh(XVMSG_READ_ONCE(vq->used->flags)) & VRING_USED_F_NO_NOTIFY);
	if (!kick)
		vq->st->kicks_suppressed++;
	return kick;
}

/* Mark the device broken; the caller then reports the cancelled chains. */
static void vq_broken(struct xvd_vq *vq, const char *why, unsigned int a, unsigned int b)
{
	xvd_logf(vq->log, XVD_LOG_ERR, "vq %u: %s (%u, %u): device broken", vq->index, why, a, b);
	if (!*vq->err)
		*vq->err = -EIO;
}

int xvd_vq_get(struct xvd_vq *vq, struct xvd_done *d)
{
	struct vring_used_elem e;
	struct xvd_chain *c;
	uint16_t idx;

	if (*vq->err && vq->inflight)
		xvd_vq_cancel_all(vq, *vq->err == -ENODEV ? -ENODEV : -EIO);
	if (vq->ndead) {
		*d = vq->dead[--vq->ndead];
		return 1;
	}
	if (*vq->err)
		return *vq->err;
	while (vq->last_used == vq->shadow_used) {
		idx = le16toh(XVMSG_READ_ONCE(vq->used->idx));
		/* Read used->idx before the elements; pairs with the device's
		 * write barrier before it publishes used->idx. */
		xvmsg_rmb();
		if ((uint16_t)(idx - vq->last_used) > vq->inflight) {
			vq_broken(vq, "used index ran ahead", idx, vq->last_used);
			return xvd_vq_get(vq, d);
		}
		vq->shadow_used = idx;
		if (idx != vq->last_used)
			break;
		if (!vq->event_idx)
			return 0;
		/* Ask for an interrupt at the next completion, then re-check;
		 * the full barrier pairs with the device's between writing
		 * used->idx and reading used_event. */
		XVMSG_WRITE_ONCE(*vq->used_event, htole16(vq->last_used));
		xvmsg_mb();
		if (le16toh(XVMSG_READ_ONCE(vq->used->idx)) == vq->last_used)
			return 0;
	}
	/* Copy the element once, then check the copy. */
	e.id = le32toh(XVMSG_READ_ONCE(vq->used->ring[vq->last_used % vq->size].id));
	e.len = le32toh(XVMSG_READ_ONCE(vq->used->ring[vq->last_used % vq->size].len));
	if (e.id >= vq->size || !vq->chain[e.id].busy) {
		vq_broken(vq, "bad used id", e.id, vq->size);
		return xvd_vq_get(vq, d);
	}
	c = &vq->chain[e.id];
	if (e.len > c->in_len) {
		vq_broken(vq, "used length too long", e.len, c->in_len);
		return xvd_vq_get(vq, d);
	}
	vq->last_used++;
	*d = (struct xvd_done){ c->cookie, e.len, 0 };
	chain_release(vq, (uint16_t)e.id, e.len);
	vq->st->completions++;
	return 1;
}
