// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio_config_ops over virtio-msg messages, and the virtqueues.
 *
 * Every op that talks to the device sleeps (one message round trip, bounded
 * by timeout_ms).  Once the connection is broken the ops answer locally:
 * reads return zeros, writes are dropped, the status is what the core set,
 * so the virtio core and the drivers unwind without waiting and without
 * tripping over a WARN or BUG on values the backend chose.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <linux/delay.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <xen/events.h>

#include "xvmsg.h"
#include "xvmsg-compat.h"

/*
 * For tests only: how long the failing of a broken device's requests keeps
 * its queues open (between handing the requests back and breaking the
 * device again).  Drivers add requests in that moment like in any other;
 * the kmod test sets it so that they surely do (tests/xen/kmod).
 */
static unsigned int fail_window_ms;
module_param(fail_window_ms, uint, 0644);
MODULE_PARM_DESC(fail_window_ms, "testing only: keep a broken device's queues open this long (ms, at most 5000) while its requests are failed (default 0)");

static struct xvmsg_conn *vd_conn(struct virtio_device *vdev)
{
	return container_of(vdev, struct xvmsg_vdev, vdev)->conn;
}

/* Remember the generation a response carried (cfg_lock held). */
static void note_generation(struct xvmsg_conn *c, u32 gen)
{
	if (gen == READ_ONCE(c->cfg_gen)) {
		c->gen_changes = 0;
		return;
	}
	WRITE_ONCE(c->cfg_gen, gen);
	/* virtio_cread loops until two generation reads agree: a device
	 * whose generation moves on every read would keep it forever.
	 */
	if (++c->gen_changes > XVMSG_GEN_CHANGES_MAX)
		xvmsg_conn_fail(c, "config generation changed on %u reads in a row",
				XVMSG_GEN_CHANGES_MAX);
}

/*
 * Pool mode: every block request is bounced through the pool, so one the
 * pool cannot hold is retried by blk-mq for ever (-ENOMEM from the DMA
 * map), unkillable.  The backend derives seg_max from the pool
 * (include/xvmsg/pool.h); a backend that offers more (an older or a
 * hostile one) has seg_max cut here, where virtio_blk reads it, so the
 * block layer never builds such a request.  Segments are at most max_map
 * (our max_mapping_size), whatever size_max says.
 */
static void clamp_blk_seg_max(struct xvmsg_conn *c, unsigned int offset, void *buf,
			      unsigned int len)
{
	const unsigned int at = offsetof(struct virtio_blk_config, seg_max);
	u32 offered, fits;
	__le32 v;

	if (c->mode != XVMSG_MODE_POOL || c->dinfo.device_id != VIRTIO_ID_BLOCK ||
	    offset > at || len < at + sizeof(v) - offset)
		return;
	memcpy(&v, buf + at - offset, sizeof(v));
	offered = le32_to_cpu(v);
	fits = max_t(u32, xvmsg_pool_seg_max(c->pool.npages, offered), 1);
	if (offered == fits)
		return;
	dev_info_once(xvmsg_dev(c),
		      "seg_max %u from the backend is more than a %u-page pool carries: using %u\n",
		      offered, c->pool.npages, fits);
	v = cpu_to_le32(fits);
	memcpy(buf + at - offset, &v, sizeof(v));
}

static void xv_get(struct virtio_device *vdev, unsigned int offset, void *buf, unsigned int len)
{
	struct xvmsg_conn *c = vd_conn(vdev);
	unsigned int done = 0, n, data;
	struct vmsg_get_config_req req;
	struct vmsg m;
	u32 gen;
	int r;

	if (offset > c->dinfo.config_size || len > c->dinfo.config_size - offset) {
		dev_warn_ratelimited(&vdev->dev,
			"config read %u+%u beyond the %u-byte config space\n",
			offset, len, c->dinfo.config_size);
		memset(buf, 0, len);
		return;
	}
	mutex_lock(&c->cfg_lock);
	for (; done < len; done += n) {
		n = min_t(unsigned int, len - done, VMSG_MAX_CONFIG_CHUNK);
		req.offset = cpu_to_le32(offset + done);
		req.length = cpu_to_le32(n);
		r = xvmsg_call(c, VMSG_GET_CONFIG, &req, sizeof(req), &m);
		if (r)
			break;
		r = xvmsg_check_get_config(&m, offset + done, n, &gen, &data);
		if (r == -ERANGE) {
			dev_warn_ratelimited(&vdev->dev, "device refused config read %u+%u\n",
					     offset + done, n);
			memset(buf + done, 0, n);
			continue;
		}
		if (r) {
			xvmsg_conn_fail(c,
				"GET_CONFIG %u+%u answered for another range or too short",
				offset + done, n);
			break;
		}
		memcpy(buf + done, m.payload + data, n);
		note_generation(c, gen);
	}
	mutex_unlock(&c->cfg_lock);
	if (done < len)
		memset(buf + done, 0, len - done);
	clamp_blk_seg_max(c, offset, buf, len);
}

static void xv_set(struct virtio_device *vdev, unsigned int offset, const void *buf,
		   unsigned int len)
{
	struct xvmsg_conn *c = vd_conn(vdev);
	u8 req[sizeof(struct vmsg_config) + VMSG_MAX_CONFIG_CHUNK] __aligned(4);
	struct vmsg_config *rc = (struct vmsg_config *)req;
	unsigned int done, n, tries;
	struct vmsg m;
	u32 gen;
	int r = 0;

	if (offset > c->dinfo.config_size || len > c->dinfo.config_size - offset) {
		dev_warn_ratelimited(&vdev->dev,
			"config write %u+%u beyond the %u-byte config space\n",
			offset, len, c->dinfo.config_size);
		return;
	}
	mutex_lock(&c->cfg_lock);
	for (done = 0; done < len && !r; done += n) {
		n = min_t(unsigned int, len - done, VMSG_MAX_CONFIG_CHUNK);
		for (tries = 0; tries < XVMSG_SET_CONFIG_TRIES; tries++) {
			u32 sent = READ_ONCE(c->cfg_gen);

			rc->generation = cpu_to_le32(sent);
			rc->offset = cpu_to_le32(offset + done);
			rc->length = cpu_to_le32(n);
			memcpy(rc->data, buf + done, n);
			r = xvmsg_call(c, VMSG_SET_CONFIG, req, sizeof(*rc) + n, &m);
			if (r)
				break;
			r = xvmsg_check_set_config(&m, offset + done, n, &gen);
			if (r == -EPROTO) {
				xvmsg_conn_fail(c, "SET_CONFIG %u+%u answered for another range",
						offset + done, n);
				break;
			}
			WRITE_ONCE(c->cfg_gen, gen);
			if (r == 0 || gen == sent)
				break;	/* done, or refused for another reason */
			/* Lost a race with a config change: try with the new one. */
		}
		if (r == -EAGAIN)
			dev_warn_ratelimited(&vdev->dev, "device refused config write %u+%u\n",
					     offset + done, n);
	}
	mutex_unlock(&c->cfg_lock);
}

static u32 xv_generation(struct virtio_device *vdev)
{
	return READ_ONCE(vd_conn(vdev)->cfg_gen);
}

static u8 xv_get_status(struct virtio_device *vdev)
{
	return READ_ONCE(vd_conn(vdev)->status);
}

static void xv_set_status(struct virtio_device *vdev, u8 status)
{
	struct xvmsg_conn *c = vd_conn(vdev);
	struct vmsg_status s = { cpu_to_le32(status) };
	struct vmsg m;
	u32 got;

	mutex_lock(&c->cfg_lock);
	if (xvmsg_call(c, VMSG_SET_DEVICE_STATUS, &s, sizeof(s), &m)) {
		/* Broken: keep the core's view consistent, it is unwinding. */
		WRITE_ONCE(c->status, status);
	} else {
		memcpy(&s, m.payload, sizeof(s));
		got = le32_to_cpu(s.status);
		WRITE_ONCE(c->status, xvmsg_status_accept(status, got));
		if (status & ~got & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK))
			dev_info(&vdev->dev,
				"device refused status %#x (it has %#x)\n", status, got);
	}
	mutex_unlock(&c->cfg_lock);
}

static void xv_reset(struct virtio_device *vdev)
{
	struct xvmsg_conn *c = vd_conn(vdev);
	struct vmsg_status s = { 0 };
	struct vmsg m;

	mutex_lock(&c->cfg_lock);
	if (!xvmsg_call(c, VMSG_SET_DEVICE_STATUS, &s, sizeof(s), &m)) {
		memcpy(&s, m.payload, sizeof(s));
		if (le32_to_cpu(s.status) & ~VMSG_STATUS_NEEDS_RESET)
			xvmsg_conn_fail(c, "device did not reset (status %#x after writing 0)",
					le32_to_cpu(s.status));
	}
	/* Reset from the driver's side whatever the device said. */
	WRITE_ONCE(c->status, 0);
	c->gen_changes = 0;
	mutex_unlock(&c->cfg_lock);
}

static u64 xv_get_features(struct virtio_device *vdev)
{
	struct xvmsg_conn *c = vd_conn(vdev);
	struct vmsg_features req = { cpu_to_le32(0), cpu_to_le32(2) };
	struct vmsg m;
	u32 w[2];

	if (xvmsg_call(c, VMSG_GET_DEVICE_FEATURES, &req, sizeof(req), &m))
		return 0;
	if (xvmsg_check_features(&m, 0, 2, w)) {
		xvmsg_conn_fail(c, "GET_DEVICE_FEATURES answered for other blocks or too short");
		return 0;
	}
	return (u64)w[1] << 32 | w[0];
}

static int xv_finalize_features(struct virtio_device *vdev)
{
	struct xvmsg_conn *c = vd_conn(vdev);
	__le32 req[4];		/* struct vmsg_features and two data words */
	unsigned int bit;
	struct vmsg m;

	vring_transport_features(vdev);
	/* Of the transport's bits only those the protocol carries, whatever
	 * the backend offers and virtio_ring would take: split rings only,
	 * and not IN_ORDER (7.x's virtio_ring keeps it), with which virtio_ring
	 * completes heads by position while the private used ring is checked
	 * by id (xvmsg-shadow.c); nor RING_RESET or NOTIFICATION_DATA, which
	 * no message of ours implements. */
	for (bit = VMSG_F_TRANSPORT_FIRST; bit <= VMSG_F_TRANSPORT_LAST; bit++)
		if (VMSG_TRANSPORT_FORBIDDEN & BIT_ULL(bit))
			__virtio_clear_bit(vdev, bit);
	/* Shadow rings (xvmsg-shadow.c): virtio_ring would read the event
	 * indices from its private ring, which the backend never writes. */
	__virtio_clear_bit(vdev, VIRTIO_RING_F_EVENT_IDX);
	if (!__virtio_test_bit(vdev, VIRTIO_F_VERSION_1) ||
	    !__virtio_test_bit(vdev, VIRTIO_F_ACCESS_PLATFORM)) {
		dev_err(&vdev->dev,
			"device does not offer VERSION_1 and ACCESS_PLATFORM: refusing it (features %#llx)\n",
			vdev->features);
		return -ENODEV;
	}
	req[0] = cpu_to_le32(0);
	req[1] = cpu_to_le32(2);
	req[2] = cpu_to_le32((u32)vdev->features);
	req[3] = cpu_to_le32((u32)(vdev->features >> 32));
	return xvmsg_call(c, VMSG_SET_DRIVER_FEATURES, req, sizeof(req), &m);
}

/* ---- virtqueues ------------------------------------------------------------ */

/* Rounds of failing a broken device's requests (xvmsg_fail_inflight). */
#define XVMSG_FAIL_ROUNDS	8

/*
 * Never false: virtio_ring would mark the queue broken on its own, and a
 * request added just before would then be left in flight, since a broken
 * queue hands nothing back (xvmsg_fail_inflight).  Once the connection is
 * broken or the queue dead, the new chains are only recorded, and failed
 * with the others.
 */
static bool xv_notify(struct virtqueue *vq)
{
	struct xvmsg_queue *q = vq->priv;

	if (xvmsg_shadow_kick(q, !test_bit(XVMSG_F_BROKEN, &q->conn->flags))) {
		xvmsg_stat_inc(q->conn->info, XVMSG_ST_KICKS);
		notify_remote_via_irq(q->irq);
	}
	return true;
}

irqreturn_t xvmsg_vq_irq(int irq, void *data)
{
	struct xvmsg_queue *q = data;
	struct virtqueue *vq = READ_ONCE(q->vq);
	unsigned int eoi = XEN_EOI_FLAG_SPURIOUS;
	bool lied = false;

	xvmsg_stat_inc(q->conn->info, XVMSG_ST_IRQS_VQ);
	/* A broken queue reports "handled" for used entries it will never
	 * look at: count that as spurious so a flooding backend is throttled.
	 */
	if (vq && !virtqueue_is_broken(vq) &&
	    xvmsg_shadow_interrupt(q, vq, irq, &lied) == IRQ_HANDLED)
		eoi = 0;
	else
		xvmsg_stat_inc(q->conn->info, XVMSG_ST_IRQS_SPURIOUS);
	/* A used entry the module refused (xvmsg-shadow.c), or one virtio_ring
	 * could not accept (it broke the queue): the requests would wait
	 * forever (virtio_blk has no timeout, not even while probing).  Fail
	 * them, from process context. */
	if (vq && (lied || virtqueue_is_broken(vq)) && !test_bit(XVMSG_F_BREAK_DONE, &q->conn->flags) &&
	    !test_and_set_bit(XVMSG_F_RING_FAIL, &q->conn->flags)) {
		unsigned long flags;

		spin_lock_irqsave(&q->conn->ev_lock, flags);
		if (q->conn->vd && !q->conn->ev_dead)
			queue_work(system_wq, &q->conn->ev_work);
		spin_unlock_irqrestore(&q->conn->ev_lock, flags);
	}
	xen_irq_lateeoi(irq, eoi);
	return IRQ_HANDLED;
}

static int get_vqueue(struct xvmsg_conn *c, unsigned int index, struct xvmsg_vq_info *vi)
{
	struct vmsg_vq_index req = { cpu_to_le32(index) };
	struct vmsg m;
	int r;

	r = xvmsg_call(c, VMSG_GET_VQUEUE, &req, sizeof(req), &m);
	if (r)
		return r;
	if (xvmsg_check_vqueue(&m, index, c->msg_rev, vi)) {
		xvmsg_conn_fail(c, "GET_VQUEUE %u answered for queue %u", index, vi->index);
		return -EIO;
	}
	return 0;
}

static struct virtqueue *setup_vq(struct virtio_device *vdev, unsigned int index,
				  vq_callback_t *callback, const char *name, bool ctx)
{
	struct xvmsg_conn *c = vd_conn(vdev);
	struct vmsg_set_vqueue_req sv;
	u64 desc, avail, used;
	struct xvmsg_vq_info vi;
	struct xvmsg_queue *q;
	struct virtqueue *vq;
	unsigned int size;
	struct vmsg m;
	int r;

	if (index >= c->nq || index >= c->dinfo.max_vqs) {
		dev_err(&vdev->dev, "driver wants queue %u, the device has %u\n", index,
			min(c->nq, c->dinfo.max_vqs));
		return ERR_PTR(-ENOENT);
	}
	q = &c->q[index];
	r = get_vqueue(c, index, &vi);
	if (r)
		return ERR_PTR(r);
	size = xvmsg_queue_size(vi.max_size);
	if (!size) {
		dev_err(&vdev->dev, "device has no queue %u\n", index);
		return ERR_PTR(-ENOENT);
	}
	/*
	 * The rings (xvmsg-shadow.c): the shared one from the parent's DMA
	 * API (in pool mode it lands in the pool), which the backend uses;
	 * virtio_ring's own view with a private descriptor table and avail
	 * ring, and a private used ring filled at each interrupt, except for
	 * virtio_console: it waits for its output with interrupts off
	 * (put_chars, for the hvc console), which only works when virtio_ring
	 * reads the backend's used ring itself.  A smaller ring when the pool
	 * has no room for this one, as vring_create_virtqueue would.
	 */
	for (; size; size /= 2)
		if (!xvmsg_shadow_create(q, xvmsg_dev(c), size,
					 vdev->id.device != VIRTIO_ID_CONSOLE))
			break;
	if (!size) {
		dev_err(&vdev->dev, "no memory for a ring of queue %u\n", index);
		return ERR_PTR(-ENOMEM);
	}
	vq = vring_new_virtqueue(index, size, PAGE_SIZE, vdev, true, ctx, q->sh.ring_va,
				 xv_notify, callback, name);
	if (!vq) {
		xvmsg_shadow_destroy(q, xvmsg_dev(c));
		dev_err(&vdev->dev, "no memory for a %u-entry ring of queue %u\n", size, index);
		return ERR_PTR(-ENOMEM);
	}
	vq->num_max = size;
	vq->priv = q;

	xvmsg_shadow_addrs(q, &desc, &avail, &used);
	xvmsg_build_set_vqueue(&sv, c->msg_rev, index, size, desc, avail, used);
	r = xvmsg_call(c, VMSG_SET_VQUEUE, &sv, sizeof(sv), &m);
	if (!r)
		r = get_vqueue(c, index, &vi);
	/* SET_VQUEUE has no status: the device shows what it took. */
	if (!r && (vi.cur_size != size || vi.desc_addr != desc || vi.driver_addr != avail ||
		   vi.device_addr != used)) {
		dev_err(&vdev->dev,
			"device did not accept queue %u (size %u; see the backend's log)\n",
			index, size);
		r = -EIO;
	}
	if (r) {
		vring_del_virtqueue(vq);
		xvmsg_shadow_destroy(q, xvmsg_dev(c));
		return ERR_PTR(r);
	}
	WRITE_ONCE(q->vq, vq);
	return vq;
}

#define XVMSG_STALL_TICKS	6	/* looks without a completion: give up */

/* One look every timeout_ms / 6: timeout_ms without a completion (30 s by
 * default) and the device is given up, as one message is. */
static unsigned long xvmsg_stall_period(void)
{
	return msecs_to_jiffies(xvmsg_timeout_ms() / XVMSG_STALL_TICKS);
}

/*
 * Block devices only: every timeout_ms / 6 (5 s by default), is something in
 * flight while no queue moved its used index?  After timeout_ms (30 s) of
 * that the backend is not answering:
 * the requests in flight fail and the device stays broken, as when a used
 * ring lies.  (Queues that keep buffers posted for input, like a console's,
 * would look stalled: that is why only block devices are watched.)
 */
void xvmsg_stall_work(struct work_struct *w)
{
	struct xvmsg_conn *c = container_of(to_delayed_work(w), struct xvmsg_conn, stall_work);
	struct xvmsg_vdev *vd;
	struct virtqueue *vq;
	bool busy = false, moved = false;
	unsigned int i = 0;

	spin_lock_irq(&c->ev_lock);
	vd = c->ev_dead ? NULL : c->vd;
	spin_unlock_irq(&c->ev_lock);
	if (!vd || test_bit(XVMSG_F_BREAK_DONE, &c->flags))
		return;
	list_for_each_entry(vq, &vd->vdev.vqs, list) {
		const struct vring *vr = virtqueue_get_vring(vq);
		struct xvmsg_queue *q = vq->priv;
		u16 used;

		if (!q || !vr || i >= ARRAY_SIZE(c->stall_used))
			break;
		used = virtio16_to_cpu(&vd->vdev, READ_ONCE(vr->used->idx));
		busy |= xvmsg_shadow_busy(q);
		moved |= used != c->stall_used[i];
		c->stall_used[i++] = used;
	}
	c->stall_ticks = busy && !moved ? c->stall_ticks + 1 : 0;
	if (c->stall_ticks < XVMSG_STALL_TICKS) {
		schedule_delayed_work(&c->stall_work, xvmsg_stall_period());
		return;
	}
	dev_err(xvmsg_dev(c), "no request completed for %u ms: the backend is not answering\n",
		jiffies_to_msecs(XVMSG_STALL_TICKS * xvmsg_stall_period()));
	if (!test_and_set_bit(XVMSG_F_RING_FAIL, &c->flags))
		queue_work(system_wq, &c->ev_work);
}

static void xv_del_vqs(struct virtio_device *vdev)
{
	struct xvmsg_conn *c = vd_conn(vdev);
	struct virtqueue *vq, *n;

	cancel_delayed_work_sync(&c->stall_work);

	/* Not while ev_work fails requests in flight on these queues (a
	 * driver's probe that failed on a broken connection lands here). */
	mutex_lock(&c->vq_lock);
	list_for_each_entry_safe(vq, n, &vdev->vqs, list) {
		struct xvmsg_queue *q = vq->priv;

		if (q) {
			WRITE_ONCE(q->vq, NULL);
			if (q->irq > 0)
				synchronize_irq(q->irq);	/* the handler let go */
		}
		vring_del_virtqueue(vq);
		if (q)
			xvmsg_shadow_destroy(q, xvmsg_dev(c));
	}
	mutex_unlock(&c->vq_lock);
}

static int xv_find_vqs(struct virtio_device *vdev, unsigned int nvqs, struct virtqueue *vqs[],
		       struct virtqueue_info vqs_info[], struct irq_affinity *desc)
{
	unsigned int i, index = 0;

	mutex_lock(&vd_conn(vdev)->vq_lock);
	for (i = 0; i < nvqs; i++) {
		const struct virtqueue_info *info = &vqs_info[i];

		if (!info->name) {
			vqs[i] = NULL;
			continue;
		}
		vqs[i] = setup_vq(vdev, index++, info->callback, info->name, info->ctx);
		if (IS_ERR(vqs[i])) {
			int r = PTR_ERR(vqs[i]);

			mutex_unlock(&vd_conn(vdev)->vq_lock);
			xv_del_vqs(vdev);
			return r;
		}
	}
	mutex_unlock(&vd_conn(vdev)->vq_lock);
	if (vdev->id.device == VIRTIO_ID_BLOCK) {
		struct xvmsg_conn *c = vd_conn(vdev);

		c->stall_ticks = 0;
		memset(c->stall_used, 0, sizeof(c->stall_used));
		schedule_delayed_work(&c->stall_work, xvmsg_stall_period());
	}
	return 0;
}

XVMSG_FIND_VQS_OP(xv_find_vqs_op, xv_find_vqs)

static void xv_synchronize_cbs(struct virtio_device *vdev)
{
	struct xvmsg_conn *c = vd_conn(vdev);
	unsigned int i;

	for (i = 0; i < c->nq; i++)
		if (c->q[i].irq > 0)
			synchronize_irq(c->q[i].irq);
}

static const struct virtio_config_ops xvmsg_config_ops = {
	.get			= xv_get,
	.set			= xv_set,
	.generation		= xv_generation,
	.get_status		= xv_get_status,
	.set_status		= xv_set_status,
	.reset			= xv_reset,
	.find_vqs		= xv_find_vqs_op,
	.del_vqs		= xv_del_vqs,
	.synchronize_cbs	= xv_synchronize_cbs,
	.get_features		= xv_get_features,
	.finalize_features	= xv_finalize_features,
};

/* ---- the virtio device ------------------------------------------------------ */

static void xv_release(struct device *dev)
{
	struct virtio_device *vdev = dev_to_virtio(dev);

	kfree(container_of(vdev, struct xvmsg_vdev, vdev));
}

/*
 * The device must be what the toolstack attached: the type it wrote in our
 * own (frontend) directory, which the backend cannot write; a toolstack
 * that writes it only in the backend directory is still understood.
 * Otherwise a backend could make the guest bind any virtio driver.
 */
static int check_device_type(struct xvmsg_conn *c)
{
	struct xenbus_device *dev = c->info->xbdev;
	const char *where = "frontend";
	char *type;
	int want;

	type = xenbus_read(XBT_NIL, dev->nodename, XVMSG_XS_TYPE, NULL);
	if (IS_ERR(type)) {
		where = "backend";
		type = xenbus_read(XBT_NIL, dev->otherend, XVMSG_XS_TYPE, NULL);
	}
	if (IS_ERR(type)) {
		xvmsg_conn_fail(c, "no device type in xenstore (toolstack key %s): refusing the device",
				XVMSG_XS_TYPE);
		return -EINVAL;
	}
	want = xvmsg_type_device_id(type);
	if (want < 0 || (u32)want != c->dinfo.device_id) {
		xvmsg_conn_fail(c,
			"backend reports virtio device id %u, the toolstack attached '%.16s' (%s directory): refusing the device",
			c->dinfo.device_id, type, where);
		kfree(type);
		return -EINVAL;
	}
	kfree(type);
	return 0;
}

int xvmsg_vdev_register(struct xvmsg_conn *c)
{
	struct xvmsg_vdev *vd;
	bool kick;
	struct vmsg m;
	int r;

	r = xvmsg_call(c, VMSG_GET_DEVICE_INFO, NULL, 0, &m);
	if (r)
		return r;
	if (xvmsg_check_device_info(&m, c->msg_rev, &c->dinfo)) {
		xvmsg_conn_fail(c,
			"GET_DEVICE_INFO: device id %u, config %u bytes, %u queues: not acceptable",
			c->dinfo.device_id, c->dinfo.config_size, c->dinfo.max_vqs);
		return -EIO;
	}
	r = check_device_type(c);
	if (r)
		return r;
	vd = kzalloc(sizeof(*vd), GFP_KERNEL);
	if (!vd)
		return -ENOMEM;
	vd->conn = c;
	vd->vdev.dev.parent = xvmsg_dev(c);	/* virtio_ring uses its DMA ops */
	vd->vdev.dev.release = xv_release;
	vd->vdev.config = &xvmsg_config_ops;
	vd->vdev.id.device = c->dinfo.device_id;
	vd->vdev.id.vendor = c->dinfo.vendor_id;

	spin_lock_irq(&c->ev_lock);
	c->vd = vd;
	spin_unlock_irq(&c->ev_lock);
	r = register_virtio_device(&vd->vdev);
	if (r) {
		spin_lock_irq(&c->ev_lock);
		c->vd = NULL;
		spin_unlock_irq(&c->ev_lock);
		/* The event work may have taken vd before: let it finish
		 * (it takes nothing any more) before vd is freed. */
		cancel_work_sync(&c->ev_work);
		put_device(&vd->vdev.dev);	/* frees vd through xv_release */
		return r;
	}
	/* Events that came during the driver's probe are delivered now. */
	spin_lock_irq(&c->ev_lock);
	c->vdev_live = true;
	kick = test_bit(XVMSG_F_BROKEN, &c->flags) || test_bit(XVMSG_F_CFG_PENDING, &c->flags);
	spin_unlock_irq(&c->ev_lock);
	if (kick)
		xvmsg_ev_kick(c);
	dev_info(xvmsg_dev(c), "%s: virtio device id %u, %s mode, %u queue(s)\n",
		 dev_name(&vd->vdev.dev), c->dinfo.device_id, xvmsg_mode_name(c->mode),
		 min(c->nq, c->dinfo.max_vqs));
	return 0;
}

/*
 * The backend is gone with requests in flight, stopped answering, or lied.
 * A driver like virtio_blk waits for every request before it can be
 * removed (del_gendisk freezes the queue), and 6.1's virtio_blk has no
 * timeout to give up.  So complete them here the way a device would, with
 * length 0, from the module's own record of what is in flight
 * (xvmsg-shadow.c): nothing the backend can still write is read, and the
 * queue's callback never runs twice at once.  Their small device-writable
 * buffers (status bytes) start as 0xff in every mode, so drivers see I/O
 * errors, never success.  Afterwards the device is broken (new requests
 * fail at once, with -EIO).
 *
 * A broken queue hands nothing back (virtqueue_get_buf and vring_interrupt
 * look at nothing), so the device is unbroken while its requests are
 * completed, and broken again after.  A request a driver adds in that
 * moment and that is not among those completed would be left in flight
 * for ever: virtio_blk's probe hung on its partition scan that way.  So,
 * in this order:
 *
 * 1. Each queue is killed (xvmsg_shadow_kill): kicks only record their
 *    chains, nothing reaches the backend, and its interrupts are ignored,
 *    so it cannot make virtio_ring read its used ring while we write it
 *    (nor is anything more of it copied to a private one).
 *    xv_notify never returns false, so virtio_ring never breaks a queue by
 *    itself after a request was added.
 * 2. DMA maps are refused from now on (XVMSG_F_MAP_GATE, xvmsg-dma.c).
 *    virtio_ring maps every buffer of a request (and its indirect table)
 *    after it checked the queue is not broken and before it makes the
 *    request available; a map that fails makes virtqueue_add return
 *    -ENOMEM and leaves nothing in the ring.  So no request can be added
 *    any more, broken device or not.
 * 3. synchronize_rcu(): an add that passed its maps before the gate ran in
 *    a section the grace period waits for, for every add path of the
 *    stock drivers but two (below): virtio_blk's queue_rq and queue_rqs
 *    under the queue's spinlock with interrupts off (and blk-mq's RCU
 *    read side), virtio_console under its port and control queue
 *    spinlocks, virtio_net's transmit under the tx lock (bottom halves
 *    off) and its receive refill from NAPI (softirq).  The maps themselves
 *    run under rcu_read_lock_sched.  After the grace period each such
 *    request is in the private avail ring.
 * 4. Unbreak, take every head from the avail ring (kicked or not), write
 *    a used entry of length 0 for each recorded one at virtio_ring's next
 *    used position and run vring_interrupt (xvmsg_shadow_fail_all).  The
 *    drivers' callbacks complete them; what they add again (virtio_console
 *    posts its receive buffer anew, blk-mq dispatches the next request)
 *    fails at the map: virtio_blk retries -ENOMEM (BLK_STS_RESOURCE) and
 *    gets -EIO once the device is broken, virtio_console drops the buffer.
 * 5. Break, wait for a grace period again, and look whether anything got
 *    into an avail ring after step 4 took it; if so, another round.
 *
 * Not covered: an add that runs preemptible (virtio_rng's request, with
 * GFP_KERNEL; virtio_net's refill from its work item and at open, and its
 * control queue) and was preempted between its maps and making the
 * request available, longer than steps 3 to 5 take, and buffers virtio_net
 * premapped itself.  Such a request stays in flight until the driver is
 * removed: virtio_rng completes its waiter then, virtio_net detaches its
 * buffers; neither waits for it.  And a driver that takes its completions
 * back outside the callback (virtio_net's NAPI) finds the device broken
 * again and leaves them for its remove, as before.
 */
static void xvmsg_fail_inflight(struct xvmsg_vdev *vd)
{
	struct virtio_device *vdev = &vd->vdev;
	struct xvmsg_conn *c = vd->conn;
	unsigned int round, window;
	struct virtqueue *vq;
	bool again = true;

	list_for_each_entry(vq, &vdev->vqs, list)
		if (vq->priv)
			xvmsg_shadow_kill(vq->priv);
	set_bit(XVMSG_F_MAP_GATE, &c->flags);
	synchronize_rcu();

	for (round = 0; again && round < XVMSG_FAIL_ROUNDS; round++) {
		__virtio_unbreak_device(vdev);
		/* Unbroken before the avail rings are read: pairs with
		 * virtio_ring's full barrier between making a request
		 * available and reading broken in virtqueue_notify. */
		smp_mb();
		list_for_each_entry(vq, &vdev->vqs, list) {
			struct xvmsg_queue *q = vq->priv;
			unsigned int n, left;

			if (!q)
				continue;
			n = xvmsg_shadow_fail_all(q, vq, &left);
			if (n)
				dev_warn(&vdev->dev, "queue %s: %u requests in flight failed\n",
					 vq->name, n);
			if (left)
				dev_info(&vdev->dev,
					 "queue %s: %u requests not taken back yet (the driver takes them later, or the backend rewrote the used ring)\n",
					 vq->name, left);
		}
		window = READ_ONCE(fail_window_ms);
		if (window)
			msleep(min(window, 5000U));
		/*
		 * About to break: no used entry may look pending afterwards.
		 * virtio_net takes transmit entries back in NAPI, which on a
		 * broken queue gets nothing and loops while entries look
		 * pending; on a one-CPU guest it did so in ksoftirqd before
		 * this work item ran again.
		 */
		list_for_each_entry(vq, &vdev->vqs, list) {
			unsigned int n;

			if (!vq->priv)
				continue;
			n = xvmsg_shadow_retract(vq->priv, vq);
			if (n)
				dev_info(&vdev->dev, "queue %s: %u used entries taken back: the driver's remove detaches their buffers\n",
					 vq->name, n);
		}
		virtio_break_device(vdev);
		synchronize_rcu();
		/*
		 * A virtqueue_get_buf that passed its "more used" check before
		 * the break (start_xmit under the tx lock, NAPI: both RCU
		 * readers, so done by now) may have taken one entry more after
		 * the retract above, leaving last_used past used->idx: its
		 * enable_cb_delayed would then see 65535 entries pending for
		 * ever.  Take back again; from here get_buf sees the break and
		 * moves nothing.
		 */
		list_for_each_entry(vq, &vdev->vqs, list)
			if (vq->priv)
				xvmsg_shadow_retract(vq->priv, vq);
		again = false;
		list_for_each_entry(vq, &vdev->vqs, list)
			if (vq->priv && xvmsg_shadow_pending(vq->priv))
				again = true;
	}
	if (again)
		dev_err(&vdev->dev, "requests still added after %u rounds of failing them\n",
			XVMSG_FAIL_ROUNDS);
}

/*
 * The connection ended: fail what is in flight and keep the device broken.
 * failure: a used ring lied, the backend stopped answering, or a message
 * failed (an error); otherwise the connection was closed in order (the
 * device detached, the backend closing, the module unbound: info).
 */
static void xvmsg_vdev_fail_broken(struct xvmsg_vdev *vd, bool failure)
{
	struct xvmsg_conn *c = vd->conn;

	mutex_lock(&c->vq_lock);
	if (test_and_set_bit(XVMSG_F_BREAK_DONE, &c->flags)) {
		mutex_unlock(&c->vq_lock);
		return;		/* broken already, and its requests failed */
	}
	if (failure)
		dev_err(xvmsg_dev(c), "%s: the backend broke a virtqueue, stopped answering or "
			"failed the connection: device broken, requests in flight failed\n",
			dev_name(&vd->vdev.dev));
	else
		dev_info(xvmsg_dev(c), "%s: connection closed (device detached, backend closing "
			 "or driver unbound): device stopped, requests in flight failed\n",
			 dev_name(&vd->vdev.dev));
	xvmsg_fail_inflight(vd);	/* and breaks the device */
	mutex_unlock(&c->vq_lock);
}

/*
 * Tell the virtio core what happened, from process context: virtio_break_device
 * and virtio_config_changed take locks that interrupt handlers must not.
 * Runs only while the virtio device is registered (vdev_live); the events
 * stay pending until then.
 */
void xvmsg_ev_work(struct work_struct *w)
{
	struct xvmsg_conn *c = container_of(w, struct xvmsg_conn, ev_work);
	struct xvmsg_vdev *vd = NULL, *any = NULL;

	spin_lock_irq(&c->ev_lock);
	if (!c->ev_dead) {
		any = c->vd;	/* also while the driver probes: it may wait on I/O */
		if (c->vdev_live)
			vd = c->vd;
	}
	spin_unlock_irq(&c->ev_lock);
	/*
	 * A lie in a used ring, the stall watchdog, or a connection failed
	 * for any other reason (a page the backend kept mapped, a bad
	 * response, the backend closing): the requests in flight would wait
	 * forever on a broken queue (virtio_blk has no timeout, and the stall
	 * watchdog stands down once the device is broken), so fail them.
	 */
	if (any) {
		bool lie = test_and_clear_bit(XVMSG_F_RING_FAIL, &c->flags);

		if (lie || (test_bit(XVMSG_F_BROKEN, &c->flags) &&
			    !test_bit(XVMSG_F_BREAK_DONE, &c->flags)))
			xvmsg_vdev_fail_broken(any, lie || test_bit(XVMSG_F_FAILED, &c->flags));
	}
	if (!vd)
		return;
	/* Broken since the check above (xvmsg_conn_fail on another CPU): fail
	 * its requests too, not only break it; a no-op once done. */
	if (test_bit(XVMSG_F_BROKEN, &c->flags) && !test_bit(XVMSG_F_BREAK_DONE, &c->flags))
		xvmsg_vdev_fail_broken(vd, test_bit(XVMSG_F_FAILED, &c->flags));
	if (test_and_clear_bit(XVMSG_F_CFG_PENDING, &c->flags))
		virtio_config_changed(&vd->vdev);
}

void xvmsg_vdev_unregister(struct xvmsg_conn *c, bool graceful)
{
	struct xvmsg_vdev *vd = c->vd;

	if (!vd)
		return;
	if (!graceful && c->vdev_live) {
		/* Fail new requests fast; the driver's remove must not wait
		 * on a device that will not answer.
		 */
		xvmsg_conn_stop(c);
		/* Hand the requests in flight back as failed (also when
		 * ev_work did: the driver may have added since).  ev_work
		 * (kicked just now) may be doing the same: one at a time, or
		 * one breaks the device under the other. */
		mutex_lock(&c->vq_lock);
		set_bit(XVMSG_F_BREAK_DONE, &c->flags);
		xvmsg_fail_inflight(vd);	/* and breaks the device */
		mutex_unlock(&c->vq_lock);
	}
	spin_lock_irq(&c->ev_lock);
	c->ev_dead = true;
	spin_unlock_irq(&c->ev_lock);
	cancel_work_sync(&c->ev_work);
	if (c->vdev_live)
		unregister_virtio_device(&vd->vdev);	/* drops our reference */
	spin_lock_irq(&c->ev_lock);
	c->vd = NULL;
	c->vdev_live = false;
	spin_unlock_irq(&c->ev_lock);
}
