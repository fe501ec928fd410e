// SPDX-License-Identifier: MIT
/*
 * The virtio-msg device side: one virtio device's transport state (status,
 * features, config generation, queues) driven by messages, and the request
 * API device models use (xvb_pop/xvb_push/xvb_flush).
 *
 * Requests arrive here already copied out of the message ring; the header's
 * size, response bit and device number have been checked by the caller (type
 * bits 2..7 are reserved and ignored).  Payloads are checked here against the
 * size each message needs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <xvmsg/pool.h>

#include "core.h"

_Static_assert(VMSG_F_INDIRECT_DESC == VIRTIO_RING_F_INDIRECT_DESC &&
	       VMSG_F_EVENT_IDX == VIRTIO_RING_F_EVENT_IDX, "virtio's ring feature bits");
#define REQUIRED_FEATURES ((1ULL << VMSG_F_VERSION_1) | (1ULL << VMSG_F_ACCESS_PLATFORM))
#define FEATURE_BLOCKS 2	/* we know 64 feature bits */
#define BAD_CHAIN_LOG_LIMIT 10
#define XVB_VENDOR_ID 0x584d5658	/* "XVMX" */

void xvb_vdev_init(struct xvb_vdev *d, const struct xvb_model_ops *ops, void *priv,
		   const struct xvb_vdev_transport *tp, void *tp_ctx,
		   struct xvb_stats *stats, const struct xvb_log *log, const char *name)
{
	unsigned int q;

	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->priv = priv;
	d->tp = tp;
	d->tp_ctx = tp_ctx;
	d->stats = stats;
	d->log = log;
	d->name = name;
	d->msg_rev = XVMSG_MSG_REV_1;	/* until a frontend says otherwise */
	d->nvqs = ops->queues ? ops->queues(priv) : ops->num_queues;
	if (d->nvqs > ops->num_queues)
		d->nvqs = ops->num_queues;
	if (d->nvqs > XVMSG_MAX_QUEUES)
		d->nvqs = XVMSG_MAX_QUEUES;
	d->dev_features = VMSG_TRANSPORT_FEATURES | (ops->features ? ops->features(priv) : 0);
	for (q = 0; q < d->nvqs; q++)
		d->vq[q].max_size = ops->queue_size;
}

void xvb_vdev_set_mapcache(struct xvb_vdev *d, struct xvb_mapcache *mc)
{
	struct xvb_req_limits lim = { 0 };

	d->mc = mc;
	/* Pool mode: no request shape the pool cannot carry (xvmsg/pool.h). */
	if (mc && mc->mode == XVMSG_MODE_POOL) {
		lim.seg_bytes = xvmsg_pool_seg_bytes(mc->pool_pages);
		lim.req_bytes = xvmsg_pool_req_bytes(mc->pool_pages);
	}
	if (d->ops->set_limits) {
		d->ops->set_limits(d->priv, &lim);
		/* The offer may follow the limits (blk: SIZE_MAX in pool mode). */
		d->dev_features = VMSG_TRANSPORT_FEATURES |
				  (d->ops->features ? d->ops->features(d->priv) : 0);
	}
}

void xvb_vdev_stop_queues(struct xvb_vdev *d)
{
	unsigned int q;

	if (!d->queues_out)
		return;
	d->queues_out = false;
	for (q = 0; q < d->nvqs; q++)
		if (d->vq[q].remote && d->vq[q].live)
			d->tp->queue_stop(d->tp_ctx, d, q);
}

void xvb_vdev_reset(struct xvb_vdev *d)
{
	unsigned int q;

	xvb_vdev_stop_queues(d);
	if (d->activated && d->ops->reset)
		d->ops->reset(d->priv);
	d->activated = false;
	if (d->tp->reset)
		d->tp->reset(d->tp_ctx, d);
	for (q = 0; q < d->nvqs; q++) {
		struct xvb_vq *vq = &d->vq[q];

		if (d->mc)
			xvb_vq_stop(vq, d->mc);
		vq->size = 0;
		vq->desc_addr = vq->avail_addr = vq->used_addr = 0;
		vq->dead = NULL;
	}
	d->vq_on = 0;
	d->status = 0;
	d->drv_features = 0;
	d->drv_unknown_features = false;
	__atomic_store_n(&d->broken, false, __ATOMIC_RELAXED);
	/* The config generation keeps counting across resets. */
}

static void send_config_event(struct xvb_vdev *d)
{
	_Alignas(8) struct vmsg m;	/* the payload struct needs 4-byte alignment */
	struct vmsg_event_config *ev = (void *)m.payload;
	uint32_t len = d->ops->config_size;
	uint8_t cfg[512];

	memset(&m, 0, sizeof(m));
	if (len > VMSG_MAX_PAYLOAD - sizeof(*ev) || len > sizeof(cfg))
		len = 0;	/* too big to carry: the driver re-reads */
	if (len && d->ops->get_config) {
		d->ops->get_config(d->priv, cfg);
		memcpy(ev->data, cfg, len);
	}
	m.hdr.type = 0;
	m.hdr.msg_id = VMSG_EVENT_CONFIG;
	m.hdr.dev_num = htole16(XVMSG_DEV_NUM);
	m.hdr.msg_size = htole16((uint16_t)(sizeof(m.hdr) + sizeof(*ev) + len));
	ev->status = htole32(d->status);
	ev->generation = htole32(d->config_gen);
	ev->offset = 0;
	ev->length = htole32(len);
	d->tp->send(d->tp_ctx, &m);
}

void xvb_needs_reset(struct xvb_vdev *d, const char *why)
{
	if (d->broken)
		return;
	xvb_warn(d->log, "%s: driver broke the protocol (%s): device needs reset", d->name, why);
	__atomic_store_n(&d->broken, true, __ATOMIC_RELAXED);
	d->status |= VMSG_STATUS_NEEDS_RESET;
	send_config_event(d);
}

void xvb_config_changed(struct xvb_vdev *d)
{
	d->config_gen++;
	if (d->status & VMSG_STATUS_DRIVER_OK)
		send_config_event(d);
}

int xvb_pop(struct xvb_vdev *d, unsigned int q, struct xvb_req *req)
{
	const char *why = "";
	enum xvb_vq_err e;
	struct xvb_vq *vq;
	uint64_t bad;

	if (xvb_vdev_broken(d) || !d->activated || q >= d->nvqs || !d->vq[q].live ||
	    d->vq[q].dead)
		return -EIO;
	vq = &d->vq[q];
	if (vq->budgeted && !vq->budget) {
		/* The call has done its share: the rest waits for its turn.
		 * With nothing left, the driver's next entry must kick us:
		 * the queue went idle without xvb_vq_pop seeing it empty. */
		if (xvb_vq_has_work_or_arm(vq))
			vq->starved = true;
		return 0;
	}
	e = xvb_vq_pop(vq, d->mc, req, &why);
	if (vq->budgeted && (e == XVB_VQ_OK || e == XVB_VQ_BAD_CHAIN))
		vq->budget--;
	switch (e) {
	case XVB_VQ_OK:
		req->queue = (uint16_t)q;
		XVB_STAT_ADD(d->stats->requests, 1);
		XVB_STAT_ADD(d->stats->bytes_out, req->out_len);
		XVB_STAT_ADD(d->stats->bytes_in, req->in_len);
		return 1;
	case XVB_VQ_EMPTY:
		return 0;
	case XVB_VQ_BAD_CHAIN:
		bad = __atomic_add_fetch(&d->stats->bad_chains, 1, __ATOMIC_RELAXED);
		if (bad <= BAD_CHAIN_LOG_LIMIT)
			xvb_warn(d->log, "%s: queue %u: refused a request: %s%s", d->name, q, why,
				 bad == BAD_CHAIN_LOG_LIMIT ?
				 " (further refusals are counted, not logged)" : "");
		req->queue = (uint16_t)q;
		xvb_vq_push(vq, d->mc, req, 0);
		return -EINVAL;
	case XVB_VQ_BROKEN:
		break;
	}
	if (vq->remote) {
		/* Not this thread's to say: the loop's thread sets NEEDS_RESET
		 * (and sends the event); until then this queue takes nothing. */
		vq->dead = why;
		d->tp->queue_broken(d->tp_ctx, d, q);
		return -EIO;
	}
	xvb_needs_reset(d, why);
	return -EIO;
}

void xvb_push(struct xvb_vdev *d, struct xvb_req *req, uint32_t written)
{
	if (req->queue >= d->nvqs || !d->mc)
		return;
	if (d->tp->push && d->tp->push(d->tp_ctx, d, req, written))
		return;
	if (xvb_vq_push(&d->vq[req->queue], d->mc, req, written))
		xvb_warn(d->log, "%s: model pushed a request that is not in flight", d->name);
}

void xvb_flush(struct xvb_vdev *d, unsigned int q)
{
	if (q < d->nvqs && xvb_vq_publish(&d->vq[q]))
		d->tp->notify_used(d->tp_ctx, q);
}

void xvb_retry_later(struct xvb_vdev *d, unsigned int q)
{
	/* notify() runs only inside a call (serve), so budget_end sees it. */
	if (q < d->nvqs && d->vq[q].budgeted)
		d->vq[q].starved = true;
}

/* Serve queue q: whichever thread owns it (the loop thread, or its queue
 * thread through xvb_vdev_serve). */
static void kick(struct xvb_vdev *d, unsigned int q)
{
	if (q >= d->nvqs || !d->activated || xvb_vdev_broken(d) || !d->vq[q].live ||
	    d->vq[q].dead || !d->ops->notify)
		return;
	d->ops->notify(d->priv, q);
	/* Bad chains the model skipped were completed by xvb_pop. */
	xvb_flush(d, q);
}

void xvb_vdev_kick(struct xvb_vdev *d, unsigned int q)
{
	/* The loop thread's entry: a queue handed to its queue thread is not
	 * this thread's to serve, whoever asks (an in-band EVENT_AVAIL a guest
	 * sent for it, a stale pending bit). */
	if (q < d->nvqs && d->vq[q].remote)
		return;
	kick(d, q);
}

void xvb_vdev_budget(struct xvb_vdev *d, unsigned int chains)
{
	for (unsigned int q = 0; q < d->nvqs; q++) {
		struct xvb_vq *vq = &d->vq[q];

		if (vq->remote)
			continue;
		vq->budgeted = true;
		vq->budget = chains;
		vq->starved = false;
	}
	d->call_budget = chains;
	d->call_most = 0;
	d->call_taken = 0;
}

/* Chains queue q took in this call of `chains`. */
static unsigned int budget_taken(const struct xvb_vq *vq, unsigned int chains)
{
	return vq->budget <= chains ? chains - vq->budget : 0;
}

uint64_t xvb_vdev_budget_end(struct xvb_vdev *d)
{
	uint64_t starved = 0;

	for (unsigned int q = 0; q < d->nvqs; q++) {
		struct xvb_vq *vq = &d->vq[q];

		if (vq->remote || !vq->budgeted)
			continue;
		if (vq->starved)
			starved |= 1ULL << q;
		d->call_taken += budget_taken(vq, d->call_budget);
		if (budget_taken(vq, d->call_budget) > d->call_most)
			d->call_most = budget_taken(vq, d->call_budget);
		vq->budgeted = vq->starved = false;
	}
	/* A reset during the call stopped the queues: nothing is left. */
	return d->activated && !xvb_vdev_broken(d) ? starved : 0;
}

bool xvb_vdev_serve(struct xvb_vdev *d, unsigned int q, unsigned int chains,
		    unsigned int *taken)
{
	struct xvb_vq *vq = &d->vq[q];
	bool again;

	vq->budgeted = true;
	vq->budget = chains;
	vq->starved = false;
	kick(d, q);
	*taken = budget_taken(vq, chains);
	again = vq->starved && !vq->dead && !xvb_vdev_broken(d);
	vq->budgeted = vq->starved = false;
	return again;
}

size_t xvb_vdev_mem(const struct xvb_vdev *d)
{
	size_t n = 0;
	unsigned int q;

	for (q = 0; q < d->nvqs; q++) {
		const struct xvb_vq *vq = &d->vq[q];

		if (!vq->live)
			continue;
		n += (size_t)vq->size * (sizeof(*vq->tickets) + sizeof(*vq->busy)) +
		     (size_t)(vq->desc.npages + vq->avail.npages + vq->used.npages) * sizeof(void *);
	}
	if (d->priv && d->ops->mem)
		n += d->ops->mem(d->priv);
	return n;
}

uint64_t xvb_vdev_work(const struct xvb_vdev *d)
{
	uint64_t work = 0;
	unsigned int q;

	if (!d->activated || d->broken)
		return 0;
	for (q = 0; q < d->nvqs; q++)
		if (!d->vq[q].remote && xvb_vq_has_work(&d->vq[q]))
			work |= 1ULL << q;
	return work;
}

void xvb_vdev_quiet(struct xvb_vdev *d)
{
	if (!d->activated || d->broken)
		return;
	for (unsigned int q = 0; q < d->nvqs; q++) {
		struct xvb_vq *vq = &d->vq[q];

		if (vq->quiet || !vq->live || vq->remote)
			continue;	/* a queue started later goes quiet then */
		vq->quiet = true;
		/* avail_event as left by the last arming names the driver's
		 * next entry: move it behind, so that entry does not kick.  No
		 * barrier: a kick that comes anyway is only spent. */
		if (vq->event_idx)
			xvb_area_wr16(&vq->used, 4 + 8 * (size_t)vq->size,
				      (uint16_t)(vq->last_avail - 1));
	}
}

uint64_t xvb_vdev_arm(struct xvb_vdev *d)
{
	uint64_t work = 0;

	for (unsigned int q = 0; q < d->nvqs; q++) {
		if (d->vq[q].remote)
			continue;
		d->vq[q].quiet = false;
		if (d->activated && !d->broken && xvb_vq_has_work_or_arm(&d->vq[q]))
			work |= 1ULL << q;
	}
	return work;
}

/* ---- message handlers: each returns the response payload size, or -1 for
 * "no response" (malformed request). ---- */

static int h_device_info(struct xvb_vdev *d, const uint8_t *in, size_t len, uint8_t *out)
{
	if (d->msg_rev >= XVMSG_MSG_REV_2) {
		struct vmsg_device_info_resp_v2 *r = (void *)out;

		memset(r, 0, sizeof(*r));	/* nil device_uuid, no admin queues */
		r->device_id = htole32(d->ops->device_id);
		r->vendor_id = htole32(XVB_VENDOR_ID);
		r->num_feature_blocks = htole32(FEATURE_BLOCKS);
		r->config_size = htole32(d->ops->config_size);
		r->max_vqs = htole32(d->nvqs);
		return sizeof(*r);
	} else {
		struct vmsg_device_info_resp *r = (void *)out;

		memset(r, 0, sizeof(*r));
		r->device_id = htole32(d->ops->device_id);
		r->vendor_id = htole32(XVB_VENDOR_ID);
		r->num_feature_bits = htole32(32 * FEATURE_BLOCKS);
		r->config_size = htole32(d->ops->config_size);
		r->max_vqs = htole32(d->nvqs);
		return sizeof(*r);
	}
}

/*
 * Feature blocks [index, index + n) all have an index, i.e. the window ends
 * at block 0xffffffff at the latest.  Block indices are 32 bits: a window
 * running past the last one would wrap around to block 0.
 */
static bool blocks_exist(uint32_t index, uint32_t n)
{
	return n == 0 || index <= UINT32_MAX - (n - 1);
}

/*
 * The request of GET_DEVICE_FEATURES (with_data false) or
 * SET_DRIVER_FEATURES (with_data true: num_blocks words follow it), copied
 * out of in and converted to host order in *req.  0, or -1 when it is short
 * or names more blocks than allowed or than exist.
 */
static int features_req(const uint8_t *in, size_t len, bool with_data, struct vmsg_features *req)
{
	if (len < sizeof(*req))
		return -1;
	memcpy(req, in, sizeof(*req));
	req->block_index = le32toh(req->block_index);
	req->num_blocks = le32toh(req->num_blocks);
	if (req->num_blocks > VMSG_MAX_FEATURE_BLOCKS ||
	    (with_data && len < sizeof(*req) + 4 * req->num_blocks) ||
	    !blocks_exist(req->block_index, req->num_blocks))
		return -1;
	return 0;
}

static int h_get_features(struct xvb_vdev *d, const uint8_t *in, size_t len, uint8_t *out)
{
	struct vmsg_features req, *r = (void *)out;
	uint32_t i;

	if (features_req(in, len, false, &req))
		return -1;
	r->block_index = htole32(req.block_index);
	r->num_blocks = htole32(req.num_blocks);
	for (i = 0; i < req.num_blocks; i++) {
		uint32_t b = req.block_index + i;

		r->data[i] = htole32(b < FEATURE_BLOCKS ? (uint32_t)(d->dev_features >> (32 * b)) : 0);
	}
	return (int)(sizeof(*r) + 4 * req.num_blocks);
}

static int h_set_features(struct xvb_vdev *d, const uint8_t *in, size_t len, uint8_t *out)
{
	struct vmsg_features req;
	uint32_t i;

	if (features_req(in, len, true, &req))
		return -1;
	if (!(d->status & VMSG_STATUS_DRIVER) || (d->status & VMSG_STATUS_FEATURES_OK)) {
		xvb_dbg(d->log, "%s: SET_DRIVER_FEATURES in status 0x%x ignored", d->name, d->status);
		return 0;
	}
	for (i = 0; i < req.num_blocks; i++) {
		uint32_t b = req.block_index + i, w;

		memcpy(&w, in + sizeof(req) + 4 * i, 4);
		w = le32toh(w);
		if (b < FEATURE_BLOCKS) {
			d->drv_features &= ~(0xffffffffULL << (32 * b));
			d->drv_features |= (uint64_t)w << (32 * b);
		} else if (w) {
			/* Bits we never offered: FEATURES_OK will be refused. */
			d->drv_unknown_features = true;
		}
	}
	return 0;
}

static bool features_ok(struct xvb_vdev *d)
{
	if ((d->drv_features & ~d->dev_features) || d->drv_unknown_features) {
		xvb_warn(d->log, "%s: driver accepted features never offered (0x%llx)", d->name,
			 (unsigned long long)(d->drv_features & ~d->dev_features));
		return false;
	}
	if ((d->drv_features & REQUIRED_FEATURES) != REQUIRED_FEATURES) {
		xvb_warn(d->log, "%s: driver did not accept VERSION_1 and ACCESS_PLATFORM", d->name);
		return false;
	}
	return true;
}

static void activate(struct xvb_vdev *d)
{
	bool ev = d->drv_features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	bool ind = d->drv_features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	unsigned int q;
	int rc;

	if (!d->mc) {
		xvb_needs_reset(d, "no memory mapped");
		return;
	}
	for (q = 0; q < d->nvqs; q++) {
		if (!d->vq[q].size || !(d->vq_on & (1ULL << q)))
			continue;
		d->vq[q].peers = d->vq;
		d->vq[q].npeers = d->nvqs;
		rc = xvb_vq_start(&d->vq[q], d->mc, ev, ind);
		if (rc) {
			xvb_warn(d->log, "%s: queue %u rings not accessible (%s)", d->name, q,
				 strerror(-rc));
			xvb_needs_reset(d, "virtqueue rings not accessible");
			return;
		}
	}
	rc = d->ops->activate ? d->ops->activate(d->priv, d, d->drv_features) : 0;
	if (rc) {
		xvb_needs_reset(d, "device model failed to start");
		return;
	}
	d->activated = true;
	xvb_info(d->log, "%s: driver ready (features 0x%llx)", d->name,
		 (unsigned long long)d->drv_features);
	/* Buffers may already be waiting: each queue is served once, remote
	 * ones by their threads. */
	for (q = 0; q < d->nvqs; q++) {
		if (!d->vq[q].live)
			continue;
		if (d->vq[q].remote) {
			d->queues_out = true;
			d->tp->queue_start(d->tp_ctx, d, q);
		} else {
			xvb_vdev_kick(d, q);
		}
	}
}

static int h_status(struct xvb_vdev *d, const uint8_t *in, size_t len, uint8_t *out, bool set)
{
	struct vmsg_status *r = (void *)out;
	uint32_t s, old = d->status & ~VMSG_STATUS_NEEDS_RESET;

	if (set) {
		if (len < sizeof(*r))
			return -1;
		memcpy(&s, in, 4);
		s = le32toh(s) & ~VMSG_STATUS_NEEDS_RESET;	/* device-owned bit */
		if (s == 0) {
			xvb_vdev_reset(d);
		} else if ((s & old) != old) {
			xvb_dbg(d->log, "%s: status 0x%x -> 0x%x clears bits: refused", d->name, old, s);
		} else if (d->broken) {
			/* Only a reset gets a broken device going again; FAILED is noted. */
			d->status |= s & VMSG_STATUS_FAILED;
		} else {
			uint32_t add = s & ~old;

			if ((add & VMSG_STATUS_FEATURES_OK) && !features_ok(d))
				s &= ~VMSG_STATUS_FEATURES_OK;
			if ((add & VMSG_STATUS_DRIVER_OK) && !(s & VMSG_STATUS_FEATURES_OK)) {
				xvb_dbg(d->log, "%s: DRIVER_OK without FEATURES_OK refused", d->name);
				s &= ~VMSG_STATUS_DRIVER_OK;
			}
			d->status = s | (d->status & VMSG_STATUS_NEEDS_RESET);
			if ((add & VMSG_STATUS_FAILED) && d->activated) {
				xvb_vdev_stop_queues(d);
				if (d->ops->reset)
					d->ops->reset(d->priv);
				d->activated = false;
			} else if ((s & VMSG_STATUS_DRIVER_OK) && (add & VMSG_STATUS_DRIVER_OK)) {
				activate(d);
			}
		}
	}
	r->status = htole32(d->status);
	return sizeof(*r);
}

static int h_get_vqueue(struct xvb_vdev *d, const uint8_t *in, size_t len, uint8_t *out)
{
	struct vmsg_get_vqueue_resp *r = (void *)out;
	uint32_t q;

	if (len < 4)
		return -1;
	memcpy(&q, in, 4);
	q = le32toh(q);
	memset(r, 0, sizeof(*r));
	r->index = htole32(q);
	if (q < d->nvqs) {
		r->max_size = htole32(d->vq[q].max_size);
		r->cur_size = htole32(d->vq[q].size);
		r->desc_addr = htole64(d->vq[q].desc_addr);
		r->driver_addr = htole64(d->vq[q].avail_addr);
		r->device_addr = htole64(d->vq[q].used_addr);
		if (d->msg_rev >= XVMSG_MSG_REV_2 && (d->vq_on & (1ULL << q)))
			r->flags = htole32(VMSG_VQ_F_ENABLED);
	}
	return sizeof(*r);
}

/*
 * SET_VQUEUE is checked whole before anything changes: a refused one leaves
 * the queue as it was (size, addresses, enabled), an accepted one replaces
 * all of it.  Revision 1: size 0 disables the queue (GET_VQUEUE still shows
 * the addresses), any other size enables it.  Revision 2: flags bits 1:0
 * say whether the queue ends up enabled (KEEP_DISABLED, ENABLE, KEEP; 3 is
 * refused), bits 2..5 keep the current size or address instead of the
 * request's; an enabled queue needs a size, a disabled one may have 0.
 */
static int h_set_vqueue(struct xvb_vdev *d, const uint8_t *in, size_t len, uint8_t *out)
{
	struct vmsg_set_vqueue_req r;
	uint64_t desc, avail, used, bit;
	uint32_t q, size, flags = 0, op;
	struct xvb_vq *vq;
	bool on;

	if (len < sizeof(r))
		return -1;
	memcpy(&r, in, sizeof(r));
	q = le32toh(r.index);
	size = le32toh(r.size);
	if (q >= d->nvqs || !(d->status & VMSG_STATUS_FEATURES_OK) ||
	    (d->status & VMSG_STATUS_DRIVER_OK)) {
		xvb_dbg(d->log, "%s: SET_VQUEUE %u in status 0x%x ignored", d->name, q, d->status);
		return 0;
	}
	vq = &d->vq[q];
	bit = 1ULL << q;
	desc = le64toh(r.desc_addr);
	avail = le64toh(r.driver_addr);
	used = le64toh(r.device_addr);
	if (d->msg_rev >= XVMSG_MSG_REV_2) {
		flags = le32toh(r.flags);
		op = flags & VMSG_SET_VQ_STATE_MASK;
		if (op != VMSG_SET_VQ_KEEP_DISABLED && op != VMSG_SET_VQ_ENABLE &&
		    op != VMSG_SET_VQ_KEEP) {
			xvb_warn(d->log, "%s: queue %u: SET_VQUEUE flags 0x%x name no state: "
				 "refused, queue unchanged", d->name, q, flags);
			return 0;
		}
		on = op == VMSG_SET_VQ_ENABLE || (op == VMSG_SET_VQ_KEEP && (d->vq_on & bit));
		if (flags & VMSG_SET_VQ_IGNORE_SIZE)
			size = vq->size;
		if (flags & VMSG_SET_VQ_IGNORE_DESC)
			desc = vq->desc_addr;
		if (flags & VMSG_SET_VQ_IGNORE_DRIVER)
			avail = vq->avail_addr;
		if (flags & VMSG_SET_VQ_IGNORE_DEVICE)
			used = vq->used_addr;
	} else {
		on = size != 0;
	}
	if (size == 0 && !on) {
		vq->size = 0;
		d->vq_on &= ~bit;
		return 0;
	}
	if (size == 0 || (size & (size - 1)) || size > vq->max_size || !d->mc ||
	    xvb_mc_check(d->mc, desc, 16ULL * size) ||
	    xvb_mc_check(d->mc, avail, 6 + 2ULL * size) ||
	    xvb_mc_check(d->mc, used, 6 + 8ULL * size) ||
	    (desc & 15) || (avail & 1) || (used & 3)) {
		xvb_warn(d->log, "%s: queue %u: size %u or ring addresses not acceptable: "
			 "refused, queue unchanged", d->name, q, size);
		return 0;
	}
	vq->desc_addr = desc;
	vq->avail_addr = avail;
	vq->used_addr = used;
	vq->size = (uint16_t)size;
	d->vq_on = on ? d->vq_on | bit : d->vq_on & ~bit;
	return 0;
}

static int h_reset_vqueue(struct xvb_vdev *d, const uint8_t *in, size_t len, uint8_t *out)
{
	if (len < 4)
		return -1;
	/* Only with VIRTIO_F_RING_RESET, which we do not offer: a queue stopped
	 * behind the model's back could not be set up again before a reset. */
	xvb_dbg(d->log, "%s: RESET_VQUEUE without RING_RESET ignored", d->name);
	return 0;
}

/* No shared memory regions: every one has length 0. */
static int h_get_shm(struct xvb_vdev *d, const uint8_t *in, size_t len, uint8_t *out)
{
	if (len < 4)
		return -1;
	if (d->msg_rev >= XVMSG_MSG_REV_2) {
		struct vmsg_get_shm_resp_v2 *r = (void *)out;

		memset(r, 0, sizeof(*r));
		memcpy(&r->shmid, in, 4);
		return sizeof(*r);
	} else {
		struct vmsg_get_shm_resp *r = (void *)out;

		memset(r, 0, sizeof(*r));
		memcpy(&r->index, in, 4);
		return sizeof(*r);
	}
}

static int h_get_config(struct xvb_vdev *d, const uint8_t *in, size_t len, uint8_t *out)
{
	struct vmsg_get_config_req req;
	struct vmsg_config *r = (void *)out;
	uint8_t cfg[512];

	if (len < sizeof(req))
		return -1;
	memcpy(&req, in, sizeof(req));
	req.offset = le32toh(req.offset);
	req.length = le32toh(req.length);
	r->generation = htole32(d->config_gen);
	r->offset = htole32(req.offset);
	if (req.length > VMSG_MAX_CONFIG_CHUNK || req.offset > d->ops->config_size ||
	    req.length > d->ops->config_size - req.offset || d->ops->config_size > sizeof(cfg) ||
	    !d->ops->get_config) {
		r->length = 0;
		return sizeof(*r);
	}
	d->ops->get_config(d->priv, cfg);
	memcpy(r->data, cfg + req.offset, req.length);
	r->length = htole32(req.length);
	return (int)(sizeof(*r) + req.length);
}

static int h_set_config(struct xvb_vdev *d, const uint8_t *in, size_t len, uint8_t *out)
{
	struct vmsg_config req, *r = (void *)out;
	uint32_t gen, off, n;

	if (len < sizeof(req))
		return -1;
	memcpy(&req, in, sizeof(req));
	gen = le32toh(req.generation);
	off = le32toh(req.offset);
	n = le32toh(req.length);
	if (n > VMSG_MAX_CONFIG_CHUNK || len < sizeof(req) + n)
		return -1;
	r->offset = htole32(off);
	r->length = 0;
	if (gen != d->config_gen) {
		xvb_dbg(d->log, "%s: SET_CONFIG with stale generation %u (now %u) rejected",
			d->name, gen, d->config_gen);
	} else if (d->ops->set_config && off <= d->ops->config_size &&
		   n <= d->ops->config_size - off && n &&
		   d->ops->set_config(d->priv, off, in + sizeof(req), n) == 0) {
		d->config_gen++;
		r->length = htole32(n);
		memcpy(r->data, in + sizeof(req), n);
	}
	r->generation = htole32(d->config_gen);
	return (int)(sizeof(*r) + le32toh(r->length));
}

size_t xvb_vdev_handle(struct xvb_vdev *d, const struct vmsg *req, struct vmsg *resp)
{
	size_t plen = le16toh(req->hdr.msg_size) - sizeof(req->hdr);
	const uint8_t *in = req->payload;
	/* Handlers fill payload structs with 64-bit fields in place; a struct
	 * vmsg is only 2-byte aligned, so they write here and it is copied. */
	union { uint8_t b[VMSG_MAX_PAYLOAD]; uint64_t align; } buf;
	uint8_t *out = buf.b;
	int n;

	switch (req->hdr.msg_id) {
	case VMSG_GET_DEVICE_INFO:	n = h_device_info(d, in, plen, out); break;
	case VMSG_GET_DEVICE_FEATURES:	n = h_get_features(d, in, plen, out); break;
	case VMSG_SET_DRIVER_FEATURES:	n = h_set_features(d, in, plen, out); break;
	case VMSG_GET_CONFIG:		n = h_get_config(d, in, plen, out); break;
	case VMSG_SET_CONFIG:		n = h_set_config(d, in, plen, out); break;
	case VMSG_GET_DEVICE_STATUS:	n = h_status(d, in, plen, out, false); break;
	case VMSG_SET_DEVICE_STATUS:	n = h_status(d, in, plen, out, true); break;
	case VMSG_GET_VQUEUE:		n = h_get_vqueue(d, in, plen, out); break;
	case VMSG_SET_VQUEUE:		n = h_set_vqueue(d, in, plen, out); break;
	case VMSG_RESET_VQUEUE:		n = h_reset_vqueue(d, in, plen, out); break;
	case VMSG_GET_SHM:		n = h_get_shm(d, in, plen, out); break;
	case VMSG_EVENT_AVAIL: {
		struct vmsg_event_avail ev;

		if (plen >= sizeof(ev)) {
			memcpy(&ev, in, sizeof(ev));
			xvb_vdev_kick(d, le32toh(ev.vq_index));
		}
		return 0;
	}
	default:
		n = -1;
	}
	if (n < 0 || vmsg_is_event_id(req->hdr.msg_id) || req->hdr.token == 0) {
		d->stats->msgs_bad += n < 0;
		return 0;
	}
	resp->hdr.type = VMSG_TYPE_RESPONSE;
	resp->hdr.msg_id = req->hdr.msg_id;
	resp->hdr.dev_num = req->hdr.dev_num;
	resp->hdr.token = req->hdr.token;
	resp->hdr.msg_size = htole16((uint16_t)(sizeof(resp->hdr) + (size_t)n));
	memcpy(resp->payload, buf.b, (size_t)n);
	return sizeof(resp->hdr) + (size_t)n;
}
