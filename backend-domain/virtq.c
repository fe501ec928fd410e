// SPDX-License-Identifier: MIT
/*
 * Split virtqueue, device side (virtio 1.2, 2.7).
 *
 * The rings live in memory the driver can change at any moment.  Every
 * descriptor is copied out once and the copy is validated; avail->idx and
 * each avail entry are read exactly once per use.  The used index is kept
 * locally and only ever written to shared memory, never read back.
 *
 * A chain that breaks a rule about its own buffers (zero length, readable
 * after writable, address outside the mode, bad indirect table) fails alone:
 * it is completed with length 0.  A ring that lies about itself (avail index
 * running ahead, head or next out of range, a head already in flight, a
 * descriptor loop) cannot be trusted any more: the device goes NEEDS_RESET.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_ring.h>

#include "core.h"

#define PAGE XVMSG_PAGE_SIZE
#define MAX_INDIRECT 1024	/* descriptors in one indirect table */
#define MAX_SEGS XVB_REQ_MAX_SEGS	/* buffers in one chain */

static void area_unmap(struct xvb_ring_area *a, struct xvb_mapcache *mc)
{
	xvb_mc_release(mc, &a->t);
	free(a->page);
	memset(a, 0, sizeof(*a));
}

/* Map a ring area and build its page table. */
static int area_map(struct xvb_ring_area *a, struct xvb_mapcache *mc, uint64_t addr,
		    size_t len, bool write)
{
	struct xvb_seg seg = { .addr = addr, .len = (uint32_t)len, .write = write };
	unsigned int max = (unsigned int)(len / PAGE + 2), i, k;
	struct iovec *iov;
	size_t x = 0;
	int n;

	memset(a, 0, sizeof(*a));
	a->base_off = XVMSG_ADDR_OFF(addr);
	a->npages = (unsigned int)((a->base_off + len + PAGE - 1) / PAGE);
	iov = calloc(max, sizeof(*iov));
	a->page = calloc(a->npages, sizeof(void *));
	if (!iov || !a->page) {
		free(iov);
		free(a->page);
		a->page = NULL;
		return -ENOMEM;
	}
	n = xvb_mc_map_sg(mc, &seg, 1, 1, NULL, iov, max, &a->t);
	if (n < 0) {
		free(iov);
		free(a->page);
		a->page = NULL;
		return n;
	}
	/* Page p starts at area offset p * PAGE - base_off. */
	for (i = 0, k = 0; i < a->npages; i++) {
		size_t want = i == 0 ? 0 : i * PAGE - a->base_off;

		while (k < (unsigned int)n && want >= x + iov[k].iov_len) {
			x += iov[k].iov_len;
			k++;
		}
		a->page[i] = (char *)iov[k].iov_base + (want - x) - ((want + a->base_off) % PAGE);
	}
	free(iov);
	return 0;
}

int xvb_vq_start(struct xvb_vq *vq, struct xvb_mapcache *mc, bool event_idx, bool indirect)
{
	size_t n = vq->size;
	int rc;

	if (!n || (n & (n - 1)) || n > vq->max_size)
		return -EINVAL;
	if ((vq->desc_addr & 15) || (vq->avail_addr & 1) || (vq->used_addr & 3))
		return -EINVAL;
	vq->event_idx = event_idx;
	vq->indirect = indirect;
	vq->last_avail = vq->used_idx = vq->published_used = 0;
	vq->signalled_valid = false;
	vq->quiet = false;	/* a poll going on makes it quiet again */
	vq->inflight = 0;
	vq->tickets = calloc(n, sizeof(*vq->tickets));
	vq->busy = calloc(n, 1);
	if (!vq->tickets || !vq->busy) {
		rc = -ENOMEM;
		goto err;
	}
	rc = area_map(&vq->desc, mc, vq->desc_addr, 16 * n, false);
	if (rc)
		goto err;
	rc = area_map(&vq->avail, mc, vq->avail_addr, 6 + 2 * n, false);
	if (rc)
		goto err_desc;
	rc = area_map(&vq->used, mc, vq->used_addr, 6 + 8 * n, true);
	if (rc)
		goto err_avail;
	vq->live = true;
	return 0;

err_avail:
	area_unmap(&vq->avail, mc);
err_desc:
	area_unmap(&vq->desc, mc);
err:
	free(vq->tickets);
	free(vq->busy);
	vq->tickets = NULL;
	vq->busy = NULL;
	return rc;
}

void xvb_vq_stop(struct xvb_vq *vq, struct xvb_mapcache *mc)
{
	unsigned int i;

	if (!vq->live)
		return;
	for (i = 0; i < vq->size; i++)
		if (vq->busy[i])
			xvb_mc_release(mc, &vq->tickets[i]);
	area_unmap(&vq->used, mc);
	area_unmap(&vq->avail, mc);
	area_unmap(&vq->desc, mc);
	free(vq->tickets);
	free(vq->busy);
	vq->tickets = NULL;
	vq->busy = NULL;
	vq->live = false;
}

/* Copy an indirect table out of shared memory. */
static int copy_indirect(struct xvb_mapcache *mc, uint64_t addr, uint32_t len,
			 struct vring_desc *table)
{
	struct xvb_seg seg = { .addr = addr, .len = len, .write = false };
	struct xvb_mc_ticket t = { 0 };
	struct iovec iov[4];
	size_t done = 0;
	int n, i;

	n = xvb_mc_map_sg(mc, &seg, 1, 1, NULL, iov, 4, &t);
	if (n < 0)
		return n;
	for (i = 0; i < n; i++) {
		memcpy((char *)table + done, iov[i].iov_base, iov[i].iov_len);
		done += iov[i].iov_len;
	}
	xvb_mc_release(mc, &t);
	return 0;
}

/* [addr, addr + len) meets one of vq's rings (bus addresses: the rings and
 * the buffers are named in the same space in every mode). */
static bool hits_rings(const struct xvb_vq *vq, uint64_t addr, uint64_t len)
{
	const uint64_t n = vq->size;
	const uint64_t ring[3][2] = {
		{ vq->desc_addr, 16 * n }, { vq->avail_addr, 6 + 2 * n }, { vq->used_addr, 6 + 8 * n },
	};

	if (!vq->live)
		return false;
	for (unsigned int i = 0; i < 3; i++)
		if (addr < ring[i][0] + ring[i][1] && ring[i][0] < addr + len)
			return true;
	return false;
}

/* A device-writable buffer over a ring would let the device's own data
 * rewrite the queue: avail_event (no more kicks), used entries, the
 * descriptors of requests in flight.  With asynchronous I/O that write
 * lands after the rings were last checked, so such a chain is refused. */
static bool overlaps_rings(const struct xvb_vq *vq, uint64_t addr, uint32_t len)
{
	if (addr + len < addr)
		return false;	/* not mappable either: refused there */
	if (!vq->peers)
		return hits_rings(vq, addr, len);
	for (unsigned int q = 0; q < vq->npeers; q++)
		if (hits_rings(&vq->peers[q], addr, len))
			return true;
	return false;
}

enum xvb_vq_err xvb_vq_pop(struct xvb_vq *vq, struct xvb_mapcache *mc, struct xvb_req *req,
			   const char **why)
{
	static __thread struct iovec iov[2 * XVB_REQ_MAX_IOV];	/* 16 KiB: off the stack */
	struct xvb_seg segs[MAX_SEGS];
	struct vring_desc d, *table = NULL;
	unsigned int nsegs = 0, count = 0, limit = vq->size, split = 0;
	uint16_t avail_idx, head, idx;
	bool in_seen = false;
	int n;

	avail_idx = xvb_area_rd16(&vq->avail, 2);
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->size) {
		*why = "avail index ran ahead of the ring";
		return XVB_VQ_BROKEN;
	}
	if (avail_idx == vq->last_avail) {
		if (!vq->event_idx || vq->quiet)
			return XVB_VQ_EMPTY;
		/* Going idle: ask for a kick at the next entry.  Full barrier
		 * pairs with the driver's barrier between its avail->idx store
		 * and its read of avail_event (virtqueue_kick_prepare). */
		xvb_area_wr16(&vq->used, 4 + 8 * vq->size, vq->last_avail);
		xvmsg_mb();
		avail_idx = xvb_area_rd16(&vq->avail, 2);
		if (avail_idx == vq->last_avail)
			return XVB_VQ_EMPTY;
		if ((uint16_t)(avail_idx - vq->last_avail) > vq->size) {
			*why = "avail index ran ahead of the ring";
			return XVB_VQ_BROKEN;
		}
	}
	/* Pairs with the driver's write barrier before it bumps avail->idx:
	 * the entries below are at least as new as the index we read. */
	xvmsg_rmb();
	head = xvb_area_rd16(&vq->avail, 4 + 2 * (vq->last_avail % vq->size));
	if (head >= vq->size) {
		*why = "avail entry names a descriptor beyond the queue";
		return XVB_VQ_BROKEN;
	}
	if (vq->busy[head]) {
		*why = "avail entry names a chain already in flight";
		return XVB_VQ_BROKEN;
	}
	vq->last_avail++;
	vq->busy[head] = 1;
	vq->inflight++;
	memset(req, 0, offsetof(struct xvb_req, out));
	req->head = head;

	idx = head;
	for (;;) {
		if (++count > limit) {
			if (table)
				goto bad_loop;
			*why = "descriptor chain loops";
			return XVB_VQ_BROKEN;
		}
		if (table)
			d = table[idx];
		else
			memcpy(&d, xvb_area_ptr(&vq->desc, 16 * (size_t)idx), sizeof(d));
		d.addr = le64toh(d.addr);
		d.len = le32toh(d.len);
		d.flags = le16toh(d.flags);
		d.next = le16toh(d.next);

		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!vq->indirect || table || count != 1 || (d.flags & VRING_DESC_F_NEXT) ||
			    d.len == 0 || d.len % 16 || d.len / 16 > MAX_INDIRECT) {
				*why = "bad indirect descriptor";
				goto bad;
			}
			table = malloc(d.len);
			if (!table || copy_indirect(mc, d.addr, d.len, table)) {
				*why = "indirect table not accessible";
				goto bad;
			}
			limit = d.len / 16;
			count = 0;
			idx = 0;
			continue;
		}
		if (d.len == 0) {
			*why = "zero-length buffer";
			goto bad;
		}
		if (d.flags & VRING_DESC_F_WRITE) {
			if (!in_seen)
				split = nsegs;
			in_seen = true;
		} else if (in_seen) {
			*why = "device-readable buffer after a device-writable one";
			goto bad;
		}
		if (nsegs == MAX_SEGS) {
			*why = "too many buffers in one chain";
			goto bad;
		}
		segs[nsegs].addr = d.addr;
		segs[nsegs].len = d.len;
		segs[nsegs].write = d.flags & VRING_DESC_F_WRITE;
		nsegs++;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		idx = d.next;
		if (idx >= limit) {
			if (table) {
				*why = "indirect next beyond the table";
				goto bad;
			}
			*why = "next names a descriptor beyond the queue";
			return XVB_VQ_BROKEN;
		}
	}
	if (!in_seen)
		split = nsegs;
	free(table);
	table = NULL;
	for (unsigned int i = split; i < nsegs; i++) {
		if (overlaps_rings(vq, segs[i].addr, segs[i].len)) {
			*why = "device-writable buffer over a virtqueue's rings";
			goto bad;
		}
	}

	n = xvb_mc_map_sg(mc, segs, nsegs, split, &req->nout, iov, 2 * XVB_REQ_MAX_IOV,
			  &vq->tickets[head]);
	if (n < 0) {
		*why = n == -E2BIG ? "too many buffers in one chain"
		       : n == -EDQUOT ? "the guest's quota of mappings is used up"
				      : "buffer address not accessible in this mode";
		goto bad;
	}
	req->nin = (unsigned int)n - req->nout;
	if (req->nout > XVB_REQ_MAX_IOV || req->nin > XVB_REQ_MAX_IOV) {
		xvb_mc_release(mc, &vq->tickets[head]);
		*why = "too many buffers in one chain";
		goto bad;
	}
	memcpy(req->out, iov, req->nout * sizeof(*iov));
	memcpy(req->in, iov + req->nout, req->nin * sizeof(*iov));
	for (n = 0; n < (int)req->nout; n++)
		req->out_len += req->out[n].iov_len;
	for (n = 0; n < (int)req->nin; n++)
		req->in_len += req->in[n].iov_len;
	return XVB_VQ_OK;

bad_loop:
	*why = "indirect descriptors loop";
bad:
	free(table);
	req->nout = req->nin = 0;
	return XVB_VQ_BAD_CHAIN;
}

int xvb_vq_retire(struct xvb_vq *vq, struct xvb_mapcache *mc, uint16_t head,
		  struct xvb_mc_ticket *keep)
{
	if (!vq->live || head >= vq->size || !vq->busy[head])
		return -EINVAL;
	if (keep) {
		*keep = vq->tickets[head];
		vq->tickets[head].n = 0;
	} else {
		xvb_mc_release(mc, &vq->tickets[head]);
	}
	vq->busy[head] = 0;
	vq->inflight--;
	return 0;
}

void xvb_vq_put_used(struct xvb_vq *vq, uint32_t id, uint32_t len)
{
	size_t slot = 4 + 8 * (size_t)(vq->used_idx % vq->size);

	xvb_area_wr32(&vq->used, slot, id);
	xvb_area_wr32(&vq->used, slot + 4, len);
	vq->used_idx++;
}

int xvb_vq_push(struct xvb_vq *vq, struct xvb_mapcache *mc, struct xvb_req *req, uint32_t len)
{
	/* Unmap before the driver can see the completion: it revokes its
	 * grants as soon as it does. */
	int rc = xvb_vq_retire(vq, mc, req->head, NULL);

	if (rc)
		return rc;
	if (len > req->in_len)
		len = (uint32_t)req->in_len;
	xvb_vq_put_used(vq, req->head, len);
	return 0;
}

bool xvb_vq_publish(struct xvb_vq *vq)
{
	/* vring_need_event() asks whether used_event lies in [old, new): the
	 * entries written by this publish.  old is the index published last,
	 * not the one last notified: an entry the driver asked for after a
	 * silent publish has already gone by (virtio 1.2, 2.7.10). */
	uint16_t new = vq->used_idx, old = vq->published_used;
	bool need;

	if (!vq->live || new == vq->published_used)
		return false;
	/* Used entries before the index: pairs with the driver's read barrier
	 * after it reads used->idx (virtqueue_get_buf). */
	xvmsg_wmb();
	xvb_area_wr16(&vq->used, 2, new);
	vq->published_used = new;
	/* Publish the index before reading used_event / flags: pairs with the
	 * driver's full barrier between writing used_event and re-reading
	 * used->idx (virtqueue_enable_cb). */
	xvmsg_mb();
	if (vq->event_idx) {
		uint16_t ev = xvb_area_rd16(&vq->avail, 4 + 2 * (size_t)vq->size);

		need = !vq->signalled_valid || vring_need_event(ev, new, old);
	} else {
		need = !(xvb_area_rd16(&vq->avail, 0) & VRING_AVAIL_F_NO_INTERRUPT);
	}
	if (need)
		vq->signalled_valid = true;
	return need;
}

bool xvb_vq_has_work(const struct xvb_vq *vq)
{
	return vq->live && xvb_area_rd16(&vq->avail, 2) != vq->last_avail;
}

bool xvb_vq_has_work_or_arm(struct xvb_vq *vq)
{
	if (!vq->live)
		return false;
	if (xvb_area_rd16(&vq->avail, 2) != vq->last_avail || !vq->event_idx || vq->quiet)
		return xvb_area_rd16(&vq->avail, 2) != vq->last_avail;
	/* As xvb_vq_pop going idle: the full barrier pairs with the driver's
	 * between its avail->idx store and its read of avail_event. */
	xvb_area_wr16(&vq->used, 4 + 8 * vq->size, vq->last_avail);
	xvmsg_mb();
	return xvb_area_rd16(&vq->avail, 2) != vq->last_avail;
}
