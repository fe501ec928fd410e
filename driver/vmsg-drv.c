// SPDX-License-Identifier: MIT
/*
 * virtio-msg, driver side: the two message rings of the message page, the
 * request/response exchange, device events, the virtio initialisation, config
 * space, and the public per-device and per-queue calls.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xvmsg/wire.h>

#include "drv-priv.h"

/* ---- message rings ----------------------------------------------------- */

int xvd_mring_put(struct xvd_mring *r, const struct vmsg *m, bool *notify)
{
	uint32_t prod = r->idx, cons = le32toh(XVMSG_READ_ONCE(r->ctl->cons));
	int n = xvmsg_ring_count(prod, cons);

	*notify = false;
	if (n < 0)
		return -EIO;
	if (n == XVMSG_RING_SLOTS) {
		/* Full: ask to be told when a slot frees, then re-check.  The
		 * barrier pairs with the consumer's between storing cons and
		 * loading prod_event. */
		XVMSG_WRITE_ONCE(r->ctl->prod_event, htole32(cons + 1));
		xvmsg_mb();
		cons = le32toh(XVMSG_READ_ONCE(r->ctl->cons));
		n = xvmsg_ring_count(prod, cons);
		if (n < 0)
			return -EIO;
		if (n == XVMSG_RING_SLOTS)
			return -EAGAIN;
	}
	/* cons load before reusing the slot; pairs with the consumer's
	 * barrier between copying the slot and storing cons. */
	xvmsg_mb();
	memcpy(&r->slot[prod % XVMSG_RING_SLOTS], m, sizeof(*m));
	/* Message before prod; pairs with the consumer's read barrier after
	 * loading prod. */
	xvmsg_wmb();
	XVMSG_WRITE_ONCE(r->ctl->prod, htole32(prod + 1));
	r->idx = prod + 1;
	/* prod store before the cons_event load; pairs with the consumer's
	 * barrier between storing cons_event and re-loading prod. */
	xvmsg_mb();
	*notify = xvmsg_ring_need_notify(prod, prod + 1, le32toh(XVMSG_READ_ONCE(r->ctl->cons_event)));
	return 0;
}

int xvd_mring_get(struct xvd_mring *r, struct vmsg *m, bool *notify)
{
	uint32_t cons = r->idx, prod = le32toh(XVMSG_READ_ONCE(r->ctl->prod));
	int n = xvmsg_ring_count(prod, cons);

	*notify = false;
	if (n < 0)
		return -EIO;
	if (n == 0) {
		/* Empty: ask for a notification, then re-check (see put). */
		XVMSG_WRITE_ONCE(r->ctl->cons_event, htole32(cons + 1));
		xvmsg_mb();
		prod = le32toh(XVMSG_READ_ONCE(r->ctl->prod));
		n = xvmsg_ring_count(prod, cons);
		if (n < 0)
			return -EIO;
		if (n == 0)
			return 0;
	}
	/* prod load before the slot; pairs with the producer's write barrier. */
	xvmsg_rmb();
	memcpy(m, &r->slot[cons % XVMSG_RING_SLOTS], sizeof(*m));	/* the one copy */
	/* Done with the slot before releasing it; pairs with the producer's
	 * barrier between loading cons and writing the slot. */
	xvmsg_mb();
	XVMSG_WRITE_ONCE(r->ctl->cons, htole32(cons + 1));
	r->idx = cons + 1;
	/* cons store before the prod_event load; pairs with put's full path. */
	xvmsg_mb();
	*notify = xvmsg_ring_need_notify(cons, cons + 1, le32toh(XVMSG_READ_ONCE(r->ctl->prod_event)));
	return 1;
}

/* ---- device errors and service ---------------------------------------- */

void xvd_dev_fail(struct xvd_dev *dev, const char *why)
{
	if (!dev->err) {
		dev_log(dev, XVD_LOG_ERR, "%s: device marked broken", why);
		dev->err = -EIO;
	}
}

static void dev_config_event(struct xvd_dev *dev, const struct vmsg *m)
{
	const struct vmsg_event_config *ev = (const void *)m->payload;

	dev->cfg_status = le32toh(ev->status);
	dev->cfg_gen = le32toh(ev->generation);
	dev->cfg_events++;
	if (dev->cfg_status & VMSG_STATUS_NEEDS_RESET)
		dev_log(dev, XVD_LOG_WARN, "device needs a reset");
	if (dev->o.config_cb)
		dev->o.config_cb(dev->o.cb_ctx, dev, dev->cfg_status, dev->cfg_gen);
}

/* A bus message: only the removal of our device means something. */
static void dev_bus_msg(struct xvd_dev *dev, const struct vmsg *m)
{
	struct vmsg_bus_event_device ev;

	if (vmsg_is_response(&m->hdr) || m->hdr.msg_id != VMSG_BUS_EVENT_DEVICE ||
	    xvmsg_payload_len(m) < sizeof(ev))
		return;
	memcpy(&ev, m->payload, sizeof(ev));
	if (le16toh(ev.dev_num) == XVMSG_DEV_NUM &&
	    le16toh(ev.state) == VMSG_DEVICE_STATE_REMOVED) {
		dev_log(dev, XVD_LOG_ERR, "device removed by the bus");
		dev->err = -ENODEV;
	}
}

/* What to do with a message copied out of b2d: the verdict is the module's
 * (xvmsg_classify); a second response to one request is stale. */
static void dev_handle_msg(struct xvd_dev *dev, const struct vmsg *m)
{
	switch (xvmsg_classify(m, dev->resp_ready ? 0 : dev->wait_token, dev->wait_id,
			       dev->msg_rev)) {
	case XVMSG_V_RESPONSE:
		dev->resp = *m;
		dev->resp_ready = true;
		break;
	case XVMSG_V_RESP_BROKEN:
		xvd_dev_fail(dev, "malformed response");
		break;
	case XVMSG_V_EVENT_CONFIG:
		dev_config_event(dev, m);
		break;
	case XVMSG_V_EVENT_USED:
		break;	/* in band: the queues are polled by the caller anyway */
	case XVMSG_V_BUS:
		dev_bus_msg(dev, m);
		break;
	case XVMSG_V_STALE:
		dev->st.msgs_bad++;
		dev_log(dev, XVD_LOG_DEBUG, "discarding response token %u",
			le16toh(m->hdr.token));
		break;
	case XVMSG_V_BAD:
		dev->st.msgs_bad++;
		dev_log(dev, XVD_LOG_WARN, "discarding malformed message (type %#x id %#x size %u)",
			m->hdr.type, m->hdr.msg_id, le16toh(m->hdr.msg_size));
		break;
	}
}

void xvd_dev_service(struct xvd_dev *dev)
{
	struct drv_bus *bus = dev->dom->bus;
	struct vmsg m;
	bool notify;
	int r;

	if (dev->dom->gone || dev->ring_broken || !dev->page)
		return;
	r = bus->ops->evtchn_ack(bus, dev->msg_port);
	if (r > 0)
		dev->st.irqs += (unsigned int)r;
	xvd_bus_result(dev->dom, r);
	for (unsigned int q = 0; q < dev->nports; q++) {
		r = bus->ops->evtchn_ack(bus, dev->vq_port[q]);
		if (r > 0)
			dev->st.irqs += (unsigned int)r;
	}
	while ((r = xvd_mring_get(&dev->b2d, &m, &notify)) == 1) {
		if (notify)
			bus->ops->evtchn_notify(bus, dev->msg_port);
		dev->st.msgs_recv++;
		dev_handle_msg(dev, &m);
	}
	if (r < 0) {
		dev->ring_broken = true;
		xvd_dev_fail(dev, "b2d ring index out of range");
	}
}

/* ---- requests ---------------------------------------------------------- */

static int dev_wait_msg(struct xvd_dev *dev, int64_t deadline)
{
	int64_t left = deadline - xvd_now_ms();
	int r;

	if (left <= 0)
		return 0;
	r = dev->dom->bus->ops->wait(dev->dom->bus, &dev->msg_port, 1, (int)left);
	return xvd_bus_result(dev->dom, r);
}

/* One exchange: send id with payload req, wait (bounded) for its response.
 * The response is copied to *out (its header and size checked). */
static int vmsg_call(struct xvd_dev *dev, uint8_t id, const void *req, size_t req_len,
		     struct vmsg *out)
{
	struct drv_bus *bus = dev->dom->bus;
	int64_t deadline = xvd_now_ms() + dev->o.timeout_ms;
	struct vmsg m;
	bool notify;
	int r;

	if (dev->err)
		return dev->err;
	if (req_len > VMSG_MAX_PAYLOAD)
		return -EINVAL;
	if (++dev->token == 0)
		dev->token = 1;
	xvmsg_msg_build(&m, id, dev->token, req, (unsigned int)req_len);
	dev->wait_token = dev->token;
	dev->wait_id = id;
	dev->resp_ready = false;
	while ((r = xvd_mring_put(&dev->d2b, &m, &notify)) == -EAGAIN) {
		xvd_dev_service(dev);
		if (dev->err)
			goto out;
		r = dev_wait_msg(dev, deadline);
		if (r <= 0)
			goto out;
	}
	if (r < 0) {
		dev->ring_broken = true;
		xvd_dev_fail(dev, "d2b ring index out of range");
		goto out;
	}
	dev->st.msgs_sent++;
	if (notify)
		xvd_bus_result(dev->dom, bus->ops->evtchn_notify(bus, dev->msg_port));
	for (;;) {
		xvd_dev_service(dev);
		if (dev->err || dev->resp_ready)
			break;
		r = dev_wait_msg(dev, deadline);
		if (r <= 0)
			goto out;
	}
	r = 0;
out:
	dev->wait_token = 0;
	if (dev->err)
		return dev->err;
	if (r == 0 && !dev->resp_ready) {
		xvd_dev_fail(dev, "no response in time");
		return -ETIMEDOUT;
	}
	if (r < 0)
		return r;
	*out = dev->resp;
	return 0;
}

int xvd_set_status(struct xvd_dev *dev, uint32_t status)
{
	struct vmsg_status s = { htole32(status) };
	struct vmsg m;
	int r = vmsg_call(dev, VMSG_SET_DEVICE_STATUS, &s, sizeof(s), &m);

	if (r < 0)
		return r;
	return (int)(le32toh(((struct vmsg_status *)m.payload)->status) & 0xff);
}

static int get_status(struct xvd_dev *dev)
{
	struct vmsg m;
	int r = vmsg_call(dev, VMSG_GET_DEVICE_STATUS, NULL, 0, &m);

	return r < 0 ? r : (int)(le32toh(((struct vmsg_status *)m.payload)->status) & 0xff);
}

static int negotiate(struct xvd_dev *dev)
{
	__le32 req[4] = { 0, htole32(2) };	/* block_index, num_blocks, data[2] */
	struct xvmsg_dev_info info;
	uint64_t offered, want;
	uint32_t w[2];
	struct vmsg m;
	int r;

	r = vmsg_call(dev, VMSG_GET_DEVICE_INFO, NULL, 0, &m);
	if (r < 0)
		return r;
	if (xvmsg_check_device_info(&m, dev->msg_rev, &info)) {
		xvd_dev_fail(dev, "bad GET_DEVICE_INFO response");
		return -EIO;
	}
	if (info.device_id != dev->device_id) {
		dev_log(dev, XVD_LOG_ERR, "virtio device id %u, expected %u",
			info.device_id, dev->device_id);
		return -ENODEV;
	}
	if (info.max_vqs < dev->num_queues) {
		dev_log(dev, XVD_LOG_ERR, "device has %u queues, need %u",
			info.max_vqs, dev->num_queues);
		return -ENODEV;
	}
	dev->config_size = info.config_size;

	r = vmsg_call(dev, VMSG_GET_DEVICE_FEATURES, req, sizeof(struct vmsg_features), &m);
	if (r < 0)
		return r;
	if (xvmsg_check_features(&m, 0, 2, w)) {
		xvd_dev_fail(dev, "bad GET_DEVICE_FEATURES response");
		return -EIO;
	}
	offered = w[0] | (uint64_t)w[1] << 32;
	if (!(offered & (1ULL << VMSG_F_VERSION_1)) || !(offered & (1ULL << VMSG_F_ACCESS_PLATFORM))) {
		dev_log(dev, XVD_LOG_ERR, "device lacks VERSION_1 or ACCESS_PLATFORM");
		return -EOPNOTSUPP;
	}
	want = (1ULL << VMSG_F_VERSION_1) | (1ULL << VMSG_F_ACCESS_PLATFORM) | dev->o.features;
	if (!dev->o.no_event_idx)
		want |= 1ULL << VIRTIO_RING_F_EVENT_IDX;
	if (!dev->o.no_indirect)
		want |= 1ULL << VIRTIO_RING_F_INDIRECT_DESC;
	/* Whatever the caller asked for: of the transport's bits, only what
	 * the protocol carries (a device offering IN_ORDER or PACKED lies). */
	want &= ~VMSG_TRANSPORT_FORBIDDEN;
	dev->features = offered & want;

	req[2] = htole32((uint32_t)dev->features);
	req[3] = htole32((uint32_t)(dev->features >> 32));
	r = vmsg_call(dev, VMSG_SET_DRIVER_FEATURES, &req, sizeof(req), &m);
	if (r < 0)
		return r;
	r = xvd_set_status(dev, VMSG_STATUS_ACKNOWLEDGE | VMSG_STATUS_DRIVER |
			   VMSG_STATUS_FEATURES_OK);
	if (r >= 0)
		r = get_status(dev);
	if (r >= 0 && !(r & VMSG_STATUS_FEATURES_OK)) {
		dev_log(dev, XVD_LOG_ERR, "device refused features %#llx",
			(unsigned long long)dev->features);
		r = -EOPNOTSUPP;
	}
	return r < 0 ? r : 0;
}

static int setup_queue(struct xvd_dev *dev, unsigned int q)
{
	struct vmsg_vq_index idx = { htole32(q) };
	struct vmsg_set_vqueue_req sv;
	struct xvd_vq *vq = &dev->vq[q];
	struct xvmsg_vq_info vi;
	unsigned int max, size;
	struct vmsg m;
	int r;

	r = vmsg_call(dev, VMSG_GET_VQUEUE, &idx, sizeof(idx), &m);
	if (r < 0)
		return r;
	if (xvmsg_check_vqueue(&m, q, dev->msg_rev, &vi)) {
		xvd_dev_fail(dev, "GET_VQUEUE answered for another queue");
		return -EIO;
	}
	max = vi.max_size;
	if (!max) {
		dev_log(dev, XVD_LOG_ERR, "queue %u missing", q);
		return -ENODEV;
	}
	size = dev->o.queue_size ? dev->o.queue_size : XVD_DEFAULT_QSIZE;
	size = xvmsg_queue_size(size < max ? size : max);	/* as the module rounds */
	if (!vq->chain) {
		r = xvd_vq_setup(vq, q, size, &dev->dma, dev->vq_port[q], &dev->err, &dev->st,
				 &dev->dom->log);
		if (r < 0)
			return r;
	} else if (vq->size <= max) {
		xvd_vq_restart(vq);		/* after a reset: same memory */
	} else {
		return -ENODEV;
	}
	size = vq->size;
	vq->event_idx = dev->features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = dev->features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	if (dev->o.indirect_min)
		vq->indirect_min = dev->o.indirect_min;
	xvmsg_build_set_vqueue(&sv, dev->msg_rev, q, size, vq->desc_addr, vq->avail_addr,
			       vq->used_addr);
	return vmsg_call(dev, VMSG_SET_VQUEUE, &sv, sizeof(sv), &m);
}

int xvd_virtio_init(struct xvd_dev *dev)
{
	int r;

	r = xvd_set_status(dev, 0);
	if (r >= 0)
		r = xvd_set_status(dev, VMSG_STATUS_ACKNOWLEDGE);
	if (r >= 0)
		r = xvd_set_status(dev, VMSG_STATUS_ACKNOWLEDGE | VMSG_STATUS_DRIVER);
	if (r >= 0)
		r = negotiate(dev);
	if (!dev->vq && r >= 0) {
		dev->vq = calloc(dev->num_queues, sizeof(*dev->vq));
		if (!dev->vq)
			r = -ENOMEM;
	}
	for (unsigned int q = 0; q < dev->num_queues && r >= 0; q++)
		r = setup_queue(dev, q);
	if (r >= 0 && dev->before_ready)
		r = dev->before_ready(dev, dev->before_ready_arg);
	if (r >= 0)
		r = xvd_set_status(dev, VMSG_STATUS_ACKNOWLEDGE | VMSG_STATUS_DRIVER |
				   VMSG_STATUS_FEATURES_OK | VMSG_STATUS_DRIVER_OK);
	if (r >= 0 && (r & (VMSG_STATUS_NEEDS_RESET | VMSG_STATUS_FAILED)))
		r = -EIO;
	if (r < 0) {
		if (!dev->err)
			xvd_set_status(dev, VMSG_STATUS_FAILED);
		return r;
	}
	dev->vq_ready = true;
	return 0;
}

/* ---- public device calls ---------------------------------------------- */

int xvd_dev_reset(struct xvd_dev *dev)
{
	int r;

	if (dev->dom->gone || dev->ring_broken || !dev->page)
		return dev->err ? dev->err : -ENODEV;
	dev->err = 0;
	dev->vq_ready = false;
	r = xvd_set_status(dev, 0);
	if (r < 0)
		return r;
	/* The device let go of everything: fail what was in flight (the
	 * completions wait in each queue for xvd_vq_poll), then start over
	 * on the same rings. */
	for (unsigned int q = 0; dev->vq && q < dev->num_queues; q++)
		if (dev->vq[q].chain)
			xvd_vq_cancel_all(&dev->vq[q], -ECANCELED);
	return xvd_virtio_init(dev);
}

void xvd_dev_teardown_queues(struct xvd_dev *dev)
{
	if (dev->vq)
		for (unsigned int q = 0; q < dev->num_queues; q++)
			if (dev->vq[q].chain)
				xvd_vq_teardown(&dev->vq[q]);
	free(dev->vq);
	dev->vq = NULL;
	dev->vq_ready = false;
}

int xvd_dev_error(const struct xvd_dev *dev)
{
	return dev->err;
}

uint64_t xvd_dev_features(const struct xvd_dev *dev)
{
	return dev->features;
}

unsigned int xvd_dev_msg_revision(const struct xvd_dev *dev)
{
	return dev->msg_rev;
}

unsigned int xvd_dev_queue_size(const struct xvd_dev *dev, unsigned int q)
{
	return dev->vq_ready && q < dev->num_queues ? dev->vq[q].size : 0;
}

int xvd_dev_config_read(struct xvd_dev *dev, uint32_t off, void *buf, uint32_t len)
{
	if ((uint64_t)off + len > dev->config_size)
		return -EINVAL;
	for (int tries = 0; tries < 4; tries++) {
		uint32_t gen = 0, done, n;
		bool stable = true;

		for (done = 0; done < len; done += n) {
			struct vmsg_get_config_req req;
			unsigned int data_off;
			uint32_t g;
			struct vmsg m;
			int r;

			n = len - done < VMSG_MAX_CONFIG_CHUNK ? len - done : VMSG_MAX_CONFIG_CHUNK;
			req.offset = htole32(off + done);
			req.length = htole32(n);
			r = vmsg_call(dev, VMSG_GET_CONFIG, &req, sizeof(req), &m);
			if (r < 0)
				return r;
			if (xvmsg_check_get_config(&m, off + done, n, &g, &data_off)) {
				xvd_dev_fail(dev, "bad GET_CONFIG response");
				return -EIO;
			}
			memcpy((uint8_t *)buf + done, m.payload + data_off, n);
			if (done && g != gen)
				stable = false;
			gen = g;
		}
		dev->cfg_gen = gen;
		if (stable)
			return 0;
	}
	return -EAGAIN;
}

int xvd_dev_config_write(struct xvd_dev *dev, uint32_t off, const void *buf, uint32_t len)
{
	uint8_t req[VMSG_MAX_PAYLOAD];
	struct vmsg_config *rc = (struct vmsg_config *)req;
	uint32_t done, n;

	if ((uint64_t)off + len > dev->config_size)
		return -EINVAL;
	for (done = 0; done < len; done += n) {
		struct vmsg m;
		uint32_t gen;
		int r;

		n = len - done < VMSG_MAX_CONFIG_CHUNK ? len - done : VMSG_MAX_CONFIG_CHUNK;
		rc->generation = htole32(dev->cfg_gen);
		rc->offset = htole32(off + done);
		rc->length = htole32(n);
		memcpy(rc->data, (const uint8_t *)buf + done, n);
		r = vmsg_call(dev, VMSG_SET_CONFIG, req, sizeof(*rc) + n, &m);
		if (r < 0)
			return r;
		r = xvmsg_check_set_config(&m, off + done, n, &gen);
		if (r == -EPROTO) {
			xvd_dev_fail(dev, "bad SET_CONFIG response");
			return -EIO;
		}
		if (r == -EAGAIN) {
			/* Rejected: with a newer generation our view was stale;
			 * with the same one the device refuses the write. */
			r = gen != dev->cfg_gen ? -EAGAIN : -EPERM;
			dev->cfg_gen = gen;
			return r;
		}
		dev->cfg_gen = gen;
	}
	return 0;
}

int xvd_dev_config_events(struct xvd_dev *dev, uint32_t *status, uint32_t *generation)
{
	int n;

	xvd_dev_service(dev);
	n = (int)dev->cfg_events;
	dev->cfg_events = 0;
	if (status)
		*status = dev->cfg_status;
	if (generation)
		*generation = dev->cfg_gen;
	return n;
}

int xvd_dev_fds(const struct xvd_dev *dev, int *fds, unsigned int max)
{
	struct drv_bus *bus = dev->dom->bus;
	unsigned int n = 0;
	int fd;

	if (n < max && (fd = bus->ops->evtchn_fd(bus, dev->msg_port)) >= 0)
		fds[n++] = fd;
	for (unsigned int q = 0; q < dev->nports && n < max; q++)
		if ((fd = bus->ops->evtchn_fd(bus, dev->vq_port[q])) >= 0)
			fds[n++] = fd;
	if (n < max && (fd = bus->ops->get_fd(bus)) >= 0)
		fds[n++] = fd;
	return (int)n;
}

int xvd_dev_wait(struct xvd_dev *dev, int timeout_ms)
{
	uint32_t ports[XVMSG_MAX_QUEUES + 1];
	unsigned int n = 0;
	int r;

	if (dev->err)
		return dev->err;
	ports[n++] = dev->msg_port;
	for (unsigned int q = 0; q < dev->nports; q++)
		ports[n++] = dev->vq_port[q];
	r = dev->dom->bus->ops->wait(dev->dom->bus, ports, n,
				     timeout_ms < 0 ? dev->o.timeout_ms : timeout_ms);
	return xvd_bus_result(dev->dom, r);
}

void xvd_dev_stats(const struct xvd_dev *dev, struct xvd_stats *st)
{
	*st = dev->st;
}

/* ---- public queue calls ------------------------------------------------ */

static struct xvd_vq *dev_vq(struct xvd_dev *dev, unsigned int q)
{
	return dev->vq_ready && q < dev->num_queues ? &dev->vq[q] : NULL;
}

int xvd_vq_submit(struct xvd_dev *dev, unsigned int q, const struct xvd_buf *bufs,
		  unsigned int n, void *cookie, unsigned int flags)
{
	struct xvd_vq *vq = dev_vq(dev, q);
	int r;

	if (!vq)
		return dev->err ? dev->err : -EINVAL;
	r = xvd_vq_add(vq, bufs, n, cookie);
	if (r == 0 && !(flags & XVD_NO_KICK))
		xvd_vq_kick(dev, q);	/* a lost kick surfaces as the device error */
	return r;
}

int xvd_vq_kick(struct xvd_dev *dev, unsigned int q)
{
	struct xvd_vq *vq = dev_vq(dev, q);
	int r = 0;

	if (!vq)
		return dev->err ? dev->err : -EINVAL;
	if (dev->err)
		return dev->err;
	if (xvd_vq_kick_prepare(vq)) {
		dev->st.kicks++;
		r = xvd_bus_result(dev->dom, dev->dom->bus->ops->evtchn_notify(dev->dom->bus,
									       vq->port));
	}
	return r;
}

int xvd_vq_poll(struct xvd_dev *dev, unsigned int q, struct xvd_done *done, unsigned int max)
{
	struct xvd_vq *vq = dev_vq(dev, q);
	unsigned int n = 0;

	if (!vq)
		return dev->err ? dev->err : -EINVAL;
	xvd_dev_service(dev);
	while (n < max) {
		int r = xvd_vq_get(vq, &done[n]);

		if (r == 1)
			n++;
		else if (r == 0 || n)
			break;
		else
			return r;
	}
	/* Nothing new: notice a vanished backend even if the caller only polls
	 * (looked at once a millisecond: a receive is a system call). */
	if (!n && xvd_now_ms() != dev->dom->last_check_ms) {
		dev->dom->last_check_ms = xvd_now_ms();
		if (xvd_domain_dispatch(dev->dom) < 0)
			return xvd_vq_poll(dev, q, done, max);
	}
	return (int)n;
}

unsigned int xvd_vq_inflight(const struct xvd_dev *dev, unsigned int q)
{
	return dev->vq_ready && q < dev->num_queues ? dev->vq[q].inflight + dev->vq[q].ndead : 0;
}

int xvd_vq_wait(struct xvd_dev *dev, unsigned int q, struct xvd_done *done, unsigned int max,
		int64_t deadline)
{
	for (;;) {
		int64_t left;
		int n = xvd_vq_poll(dev, q, done, max), r;

		if (n != 0)
			return n;
		left = deadline - xvd_now_ms();
		if (left <= 0)
			return 0;
		r = xvd_dev_wait(dev, left > INT32_MAX ? INT32_MAX : (int)left);
		if (r < 0 && !dev->err)
			return r;
	}
}

int xvd_vq_call(struct xvd_dev *dev, unsigned int q, const struct xvd_buf *bufs, unsigned int n,
		int64_t deadline, const char *why, uint32_t *len)
{
	struct xvd_done d;
	int r = xvd_vq_submit(dev, q, bufs, n, NULL, 0);

	if (r < 0)
		return r;
	r = xvd_vq_wait(dev, q, &d, 1, deadline);
	if (r == 0) {
		xvd_dev_fail(dev, why);
		while (xvd_vq_poll(dev, q, &d, 1) == 1)
			;
		return -ETIMEDOUT;
	}
	if (r < 0)
		return r;
	if (d.status)
		return d.status;
	if (len)
		*len = d.len;
	return 0;
}
