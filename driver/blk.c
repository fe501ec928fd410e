// SPDX-License-Identifier: MIT
/*
 * virtio-blk helper: one request queue or several (VIRTIO_BLK_F_MQ, used in
 * turn), asynchronous submit/poll for benchmarks at any queue depth, and
 * synchronous wrappers.
 *
 * A read or write buffer is cut into segments of at most the device's
 * size_max, at most seg_max of them (the device derives both from its pool
 * in pool mode: include/xvmsg/pool.h); xvd_blk_max_io() tells the largest
 * request, and the synchronous wrappers split larger I/O into such requests.
 *
 * Each request uses a private 64-byte slot in guest RAM for its header
 * (virtio_blk_outhdr), its discard/write-zeroes segment and its status byte,
 * so that the same code works in all three memory modes.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>

#include "drv-priv.h"

#define SLOT_SIZE	64
#define SLOT_SEG	16	/* discard / write-zeroes segment */
#define SLOT_STATUS	32
#define SECTOR		512

_Static_assert(XVD_BLK_MAX_SEGS + 2 <= XVD_MAX_SEGS, "a request's chain must fit");

struct blk_req {
	void *cookie;
	uint16_t slot;
};

struct blk_priv {
	uint32_t seg_max;		/* data segments per request, >= 1 */
	uint32_t seg_bytes;		/* size_max; 0: no limit per segment */
	uint8_t *slots;			/* nslots * SLOT_SIZE, guest RAM */
	struct blk_req *req;
	uint16_t *free;
	unsigned int nfree, nslots;
	unsigned int nq, next_q;	/* request queues; the next one to use */
	unsigned int poll_q;		/* the queue poll looks at first */
	bool ro;
};

static void blk_free(struct xvd_dev *dev)
{
	struct blk_priv *p = dev->type_priv;

	xvd_ram_free(dev->dom, p->slots);
	free(p->req);
	free(p->free);
	free(p);
	dev->type_priv = NULL;
}

/*
 * seg_max and size_max from config space, when negotiated.  A seg_max the
 * ring could not carry (segments plus header and status in one chain) is
 * cut; 0 counts as 1, as Linux's virtio_blk does.  A size_max below one
 * sector could carry no I/O: -EPROTO.
 */
static int blk_read_limits(struct xvd_dev *dev, void *arg)
{
	struct blk_priv *p = arg;
	uint32_t ring_max = dev->vq[0].size > 2 ? dev->vq[0].size - 2 : 1;
	__le32 v;
	int r;

	p->seg_max = 1;
	p->seg_bytes = 0;
	if (dev->features & (1ULL << VIRTIO_BLK_F_SEG_MAX)) {
		r = xvd_dev_config_read(dev, offsetof(struct virtio_blk_config, seg_max), &v,
					sizeof(v));
		if (r < 0)
			return r;
		p->seg_max = le32toh(v) ? le32toh(v) : 1;
	}
	if (p->seg_max > XVD_BLK_MAX_SEGS)
		p->seg_max = XVD_BLK_MAX_SEGS;
	if (p->seg_max > ring_max)
		p->seg_max = ring_max;
	if (dev->num_queues > 1) {
		__le16 nq;

		/* The device must offer MQ with at least the queues we set up
		 * (it already said max_vqs >= nq). */
		if (!(dev->features & (1ULL << VIRTIO_BLK_F_MQ)))
			return -EOPNOTSUPP;
		r = xvd_dev_config_read(dev, offsetof(struct virtio_blk_config, num_queues), &nq,
					sizeof(nq));
		if (r < 0)
			return r;
		if (le16toh(nq) < dev->num_queues)
			return -EOPNOTSUPP;
	}
	if (dev->features & (1ULL << VIRTIO_BLK_F_SIZE_MAX)) {
		r = xvd_dev_config_read(dev, offsetof(struct virtio_blk_config, size_max), &v,
					sizeof(v));
		if (r < 0)
			return r;
		p->seg_bytes = le32toh(v) & ~(uint32_t)(SECTOR - 1);
		if (!p->seg_bytes)
			return -EPROTO;
	}
	return 0;
}

/* Request slots of guest RAM, one per queue entry. */
static int blk_setup(struct xvd_dev *dev, void *arg)
{
	struct blk_priv *p = dev->type_priv;
	int r;

	p->nq = dev->num_queues;
	for (unsigned int q = 0; q < p->nq; q++)
		p->nslots += dev->vq[q].size;
	p->ro = dev->features & (1ULL << VIRTIO_BLK_F_RO);
	p->req = calloc(p->nslots, sizeof(*p->req));
	p->free = calloc(p->nslots, sizeof(*p->free));
	r = p->req && p->free ? xvd_ram_alloc(dev->dom, (size_t)p->nslots * SLOT_SIZE,
					      (void **)&p->slots) : -ENOMEM;
	if (r < 0)
		return r;
	for (unsigned int i = 0; i < p->nslots; i++) {
		p->req[i].slot = (uint16_t)i;
		p->free[p->nfree++] = (uint16_t)(p->nslots - 1 - i);
	}
	return 0;
}

/* The limits are read before DRIVER_OK, as virtio_blk's probe does. */
static const struct xvd_dev_type blk_type = {
	.device_id = VIRTIO_ID_BLOCK,
	.priv_size = sizeof(struct blk_priv),
	.free = blk_free,
	.before_ready = blk_read_limits,
	.setup = blk_setup,
};

int xvd_blk_open(struct xvd_domain *d, const struct xvd_dev_opts *o, struct xvd_dev **out)
{
	struct xvd_dev_opts bo = *o;

	bo.features |= 1ULL << VIRTIO_BLK_F_RO | 1ULL << VIRTIO_BLK_F_BLK_SIZE |
		       1ULL << VIRTIO_BLK_F_FLUSH | 1ULL << VIRTIO_BLK_F_DISCARD |
		       1ULL << VIRTIO_BLK_F_WRITE_ZEROES | 1ULL << VIRTIO_BLK_F_SEG_MAX |
		       1ULL << VIRTIO_BLK_F_SIZE_MAX;
	if (o->queues > XVMSG_MAX_QUEUES)
		return -EINVAL;
	if (o->queues > 1)
		bo.features |= 1ULL << VIRTIO_BLK_F_MQ;
	return xvd_dev_open_type(d, &bo, &blk_type, o->queues ? o->queues : 1, NULL, out);
}

int xvd_blk_info(struct xvd_dev *dev, struct xvd_blk_info *info)
{
	struct virtio_blk_config cfg;
	uint32_t len = dev->config_size < sizeof(cfg) ? dev->config_size : sizeof(cfg);
	int r;

	if (len < 8)
		return -EIO;
	memset(&cfg, 0, sizeof(cfg));
	r = xvd_dev_config_read(dev, 0, &cfg, len);
	if (r < 0)
		return r;
	info->capacity = le64toh(cfg.capacity);
	info->blk_size = SECTOR;
	if ((dev->features & (1ULL << VIRTIO_BLK_F_BLK_SIZE)) && len >= 24 &&
	    le32toh(cfg.blk_size) >= SECTOR)
		info->blk_size = le32toh(cfg.blk_size);
	info->ro = dev->features & (1ULL << VIRTIO_BLK_F_RO);
	info->flush = dev->features & (1ULL << VIRTIO_BLK_F_FLUSH);
	info->discard = dev->features & (1ULL << VIRTIO_BLK_F_DISCARD);
	info->write_zeroes = dev->features & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	info->seg_max = ((struct blk_priv *)dev->type_priv)->seg_max;
	info->size_max = ((struct blk_priv *)dev->type_priv)->seg_bytes;
	info->max_io = xvd_blk_max_io(dev);
	return 0;
}

size_t xvd_blk_max_io(const struct xvd_dev *dev)
{
	const struct blk_priv *p = dev->type_priv;

	if (!p || dev->type_free != blk_free)
		return 0;
	if (!p->seg_bytes)
		return UINT32_MAX & ~(size_t)(SECTOR - 1);
	return (size_t)p->seg_max * p->seg_bytes;
}

int xvd_blk_submit(struct xvd_dev *dev, int op, uint64_t sector, void *buf, size_t len,
		   void *cookie, unsigned int flags)
{
	static const uint32_t types[] = {
		[XVD_BLK_READ] = VIRTIO_BLK_T_IN, [XVD_BLK_WRITE] = VIRTIO_BLK_T_OUT,
		[XVD_BLK_FLUSH] = VIRTIO_BLK_T_FLUSH, [XVD_BLK_GET_ID] = VIRTIO_BLK_T_GET_ID,
		[XVD_BLK_DISCARD] = VIRTIO_BLK_T_DISCARD,
		[XVD_BLK_WRITE_ZEROES] = VIRTIO_BLK_T_WRITE_ZEROES,
	};
	struct blk_priv *p = dev->type_priv;
	struct virtio_blk_outhdr hdr = { 0 };
	struct xvd_buf bufs[XVD_BLK_MAX_SEGS + 2];
	unsigned int n = 0;
	uint8_t *s;
	uint16_t slot;
	int r;

	if (!p || dev->type_free != blk_free || op < XVD_BLK_READ || op > XVD_BLK_WRITE_ZEROES)
		return -EINVAL;
	if (p->ro && (op == XVD_BLK_WRITE || op == XVD_BLK_DISCARD || op == XVD_BLK_WRITE_ZEROES))
		return -EROFS;
	if ((op == XVD_BLK_READ || op == XVD_BLK_WRITE) &&
	    (!len || len % SECTOR || len > UINT32_MAX || !buf))
		return -EINVAL;
	if ((op == XVD_BLK_DISCARD || op == XVD_BLK_WRITE_ZEROES) &&
	    (!len || len % SECTOR || len / SECTOR > UINT32_MAX))
		return -EINVAL;
	if (op == XVD_BLK_GET_ID && (!buf || len < VIRTIO_BLK_ID_BYTES))
		return -EINVAL;
	if ((op == XVD_BLK_READ || op == XVD_BLK_WRITE) && len > xvd_blk_max_io(dev))
		return -E2BIG;
	if (!p->nfree)
		return dev->err ? dev->err : -ENOSPC;

	slot = p->free[--p->nfree];
	s = p->slots + (size_t)slot * SLOT_SIZE;
	hdr.type = htole32(types[op]);
	if (op == XVD_BLK_READ || op == XVD_BLK_WRITE)
		hdr.sector = htole64(sector);
	memcpy(s, &hdr, sizeof(hdr));
	s[SLOT_STATUS] = 0xff;		/* not written by the device => -EIO */
	bufs[n++] = (struct xvd_buf){ .addr = s, .len = sizeof(hdr), .dev_writes = false };
	if (op == XVD_BLK_READ || op == XVD_BLK_WRITE) {
		size_t seg = p->seg_bytes ? p->seg_bytes : len;

		for (size_t off = 0; off < len; off += seg)
			bufs[n++] = (struct xvd_buf){
				.addr = (uint8_t *)buf + off,
				.len = (uint32_t)(len - off < seg ? len - off : seg),
				.dev_writes = op == XVD_BLK_READ,
			};
	} else if (op == XVD_BLK_GET_ID)
		bufs[n++] = (struct xvd_buf){ .addr = buf, .len = VIRTIO_BLK_ID_BYTES, .dev_writes = true };
	else if (op != XVD_BLK_FLUSH) {
		struct virtio_blk_discard_write_zeroes seg = {
			.sector = htole64(sector), .num_sectors = htole32((uint32_t)(len / SECTOR)),
		};

		memcpy(s + SLOT_SEG, &seg, sizeof(seg));
		bufs[n++] = (struct xvd_buf){ .addr = s + SLOT_SEG, .len = sizeof(seg), .dev_writes = false };
	}
	bufs[n++] = (struct xvd_buf){ .addr = s + SLOT_STATUS, .len = 1, .dev_writes = true };
	p->req[slot].cookie = cookie;
	r = xvd_vq_submit(dev, p->next_q, bufs, n, &p->req[slot], flags);
	if (r < 0)
		p->free[p->nfree++] = slot;
	else
		p->next_q = (p->next_q + 1) % p->nq;
	return r;
}

int xvd_blk_kick(struct xvd_dev *dev)
{
	struct blk_priv *p = dev->type_priv;
	int r = 0;

	if (!p || dev->type_free != blk_free)
		return -EINVAL;
	for (unsigned int q = 0; q < p->nq && r >= 0; q++)
		r = xvd_vq_kick(dev, q);
	return r;
}

unsigned int xvd_blk_queues(const struct xvd_dev *dev)
{
	const struct blk_priv *p = dev->type_priv;

	return p && dev->type_free == blk_free ? p->nq : 0;
}

int xvd_blk_poll(struct xvd_dev *dev, struct xvd_done *done, unsigned int max)
{
	struct blk_priv *p = dev->type_priv;
	int n, err = 0;

	if (!p || dev->type_free != blk_free)
		return -EINVAL;
	/* Every queue, starting with a different one each call so that none
	 * waits behind the others when max is small.  A broken device answers
	 * with its error only once no queue has a cancelled request left to
	 * report: one queue's error must not hide another's completions. */
	n = 0;
	for (unsigned int k = 0; k < p->nq && (unsigned int)n < max; k++) {
		unsigned int q = (p->poll_q + k) % p->nq;
		int m = xvd_vq_poll(dev, q, done + n, max - (unsigned int)n);

		if (m < 0) {
			err = m;
			continue;
		}
		n += m;
	}
	p->poll_q = (p->poll_q + 1) % p->nq;
	if (n == 0 && err)
		return err;
	for (int i = 0; i < n; i++) {
		struct blk_req *rq = done[i].cookie;
		uint8_t *s = p->slots + (size_t)rq->slot * SLOT_SIZE;

		if (done[i].status == 0) {
			switch (s[SLOT_STATUS]) {
			case VIRTIO_BLK_S_OK:		break;
			case VIRTIO_BLK_S_UNSUPP:	done[i].status = -EOPNOTSUPP; break;
			default:			done[i].status = -EIO; break;
			}
		}
		done[i].len = done[i].len ? done[i].len - 1 : 0;	/* minus the status */
		done[i].cookie = rq->cookie;
		memset(s, 0, SLOT_SIZE);
		p->free[p->nfree++] = rq->slot;
	}
	return n;
}

int xvd_blk_wait(struct xvd_dev *dev, struct xvd_done *done, unsigned int max, int timeout_ms)
{
	int64_t deadline = xvd_now_ms() + (timeout_ms < 0 ? dev->o.timeout_ms : timeout_ms);

	for (;;) {
		int n = xvd_blk_poll(dev, done, max), r;
		int64_t left = deadline - xvd_now_ms();

		if (n != 0 || left <= 0)
			return n;
		r = xvd_dev_wait(dev, (int)left);
		if (r < 0 && !dev->err)
			return r;
	}
}

/* One request, waited for.  A request that times out breaks the device:
 * its buffers are taken back before we return. */
static int blk_sync(struct xvd_dev *dev, int op, uint64_t sector, void *buf, size_t len)
{
	void *tmp = NULL, *io = buf;
	struct xvd_done d;
	int r;

	if (!dev->type_priv || dev->type_free != blk_free)
		return -EINVAL;
	if (xvd_vq_inflight(dev, 0))
		return -EBUSY;
	if (buf && dev->o.mode != XVMSG_MODE_POOL && !xvd_ram_holds(&dev->dom->ram, buf, len)) {
		r = xvd_ram_alloc(dev->dom, len, &tmp);	/* bounce through RAM */
		if (r < 0)
			return r;
		if (op == XVD_BLK_WRITE)
			memcpy(tmp, buf, len);
		io = tmp;
	}
	r = xvd_blk_submit(dev, op, sector, io, len, NULL, 0);
	if (r == 0) {
		r = xvd_blk_wait(dev, &d, 1, -1);
		if (r == 0) {
			xvd_dev_fail(dev, "request timed out");
			while (xvd_blk_poll(dev, &d, 1) == 1)
				;
			r = -ETIMEDOUT;
		} else if (r == 1) {
			r = d.status;
		}
	}
	if (tmp) {
		if (r == 0 && op == XVD_BLK_READ)
			memcpy(buf, tmp, len);
		xvd_ram_free(dev->dom, tmp);
	}
	return r;
}

/* READ or WRITE of any length, as requests of at most xvd_blk_max_io(). */
static int blk_sync_rw(struct xvd_dev *dev, int op, uint64_t sector, uint8_t *buf, size_t len)
{
	size_t max = xvd_blk_max_io(dev), n;
	int r;

	if (!max)
		return -EINVAL;
	if (!len || len % SECTOR)
		return -EINVAL;
	for (; len; len -= n, buf += n, sector += n / SECTOR) {
		n = len < max ? len : max;
		r = blk_sync(dev, op, sector, buf, n);
		if (r < 0)
			return r;
	}
	return 0;
}

int xvd_blk_read(struct xvd_dev *dev, uint64_t sector, void *buf, size_t len)
{
	return blk_sync_rw(dev, XVD_BLK_READ, sector, buf, len);
}

int xvd_blk_write(struct xvd_dev *dev, uint64_t sector, const void *buf, size_t len)
{
	return blk_sync_rw(dev, XVD_BLK_WRITE, sector, (uint8_t *)buf, len);
}

int xvd_blk_flush(struct xvd_dev *dev)
{
	return blk_sync(dev, XVD_BLK_FLUSH, 0, NULL, 0);
}
