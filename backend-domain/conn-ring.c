// SPDX-License-Identifier: MIT
/*
 * The message ring of one connected device (include/xvmsg/xenbus.h): the
 * driver's requests taken from d2b, each copied out once and checked
 * before it is handled, the responses and events put in b2d, and the
 * notifications both ways with their event indices.  Bus messages are
 * answered here, device messages by vdev.c.  A ring that lies about its
 * indices is reported to the caller (conn.c), which disconnects.
 */
#include <errno.h>
#include <string.h>

#include "conn.h"
#include "fault.h"

static void notify_msg(struct xvb_conn *c)
{
	if (c->be->bus->ops->evtchn_notify(c->be->bus, c->msg_port) == 0)
		XVB_STAT_ADD(c->stats.notify_out, 1);
}

static bool b2d_full(struct xvb_conn *c)
{
	uint32_t cons = le32toh(XVMSG_READ_ONCE(c->msg->b2d.cons));

	if (c->b2d_prod - cons < XVMSG_RING_SLOTS)
		return false;
	/* Ask for a kick when the driver frees a slot, then look again.  The
	 * full barrier pairs with the driver's between storing b2d.cons and
	 * reading b2d.prod_event. */
	XVMSG_WRITE_ONCE(c->msg->b2d.prod_event, htole32(cons + 1));
	xvmsg_mb();
	cons = le32toh(XVMSG_READ_ONCE(c->msg->b2d.cons));
	return c->b2d_prod - cons >= XVMSG_RING_SLOTS;
}

/* Put one message in the b2d ring; the caller made sure there is room (a
 * response uses the slot xvb_conn_ring_process kept for it, an event checks
 * b2d_full).  Should that ever be wrong, the message is dropped rather than
 * written over one the driver has not read. */
static void b2d_put(struct xvb_conn *c, const struct vmsg *m)
{
	size_t size = le16toh(m->hdr.msg_size);
	uint32_t cons = le32toh(XVMSG_READ_ONCE(c->msg->b2d.cons));

	if (c->b2d_prod - cons >= XVMSG_RING_SLOTS) {
		xvb_err(c->be->log, "%s: no room in b2d for message 0x%x: dropped", c->name,
			m->hdr.msg_id);
		return;
	}
	if (c->fault)
		xvb_fault_b2d(c->fault, c->msg, c->b2d_prod);
	memcpy(&c->msg->b2d_slot[c->b2d_prod % XVMSG_RING_SLOTS], m, size);
	/* Slot contents before the index: pairs with the driver's read barrier
	 * after it reads b2d.prod. */
	xvmsg_wmb();
	c->b2d_prod++;
	XVMSG_WRITE_ONCE(c->msg->b2d.prod, htole32(c->b2d_prod));
	c->stats.msgs_out++;
}

/* Notify the driver if it asked for messages we published since last time. */
static void b2d_kick(struct xvb_conn *c)
{
	uint32_t event;

	if (c->notify_from == c->b2d_prod)
		return;
	/* Index before cons_event: pairs with the driver's full barrier between
	 * storing cons_event and re-reading prod. */
	xvmsg_mb();
	event = le32toh(XVMSG_READ_ONCE(c->msg->b2d.cons_event));
	if (xvmsg_ring_need_notify(c->notify_from, c->b2d_prod, event))
		notify_msg(c);
	c->notify_from = c->b2d_prod;
}

static void used_event_msg(struct vmsg *m, unsigned int q)
{
	struct vmsg_event_used *ev = (void *)m->payload;

	memset(m, 0, sizeof(m->hdr) + sizeof(*ev));
	m->hdr.msg_id = VMSG_EVENT_USED;
	m->hdr.dev_num = htole16(XVMSG_DEV_NUM);
	m->hdr.msg_size = htole16(sizeof(m->hdr) + sizeof(*ev));
	ev->vq_index = htole32(q);
}

/* Put events that waited for room into b2d, as far as there is room.  While
 * a request is being handled its events wait too: the slot kept for its
 * response is not theirs. */
static void put_pending(struct xvb_conn *c)
{
	struct vmsg m;
	unsigned int q;

	if (c->in_request)
		return;
	while (c->event_pending || c->used_pending) {
		if (b2d_full(c))
			break;
		if (c->event_pending) {
			b2d_put(c, &c->pending);
			c->event_pending = false;
			continue;
		}
		q = (unsigned int)__builtin_ctzll(c->used_pending);
		c->used_pending &= ~(1ULL << q);
		used_event_msg(&m, q);
		b2d_put(c, &m);
	}
}

/* Send events that waited for room, and notify. */
static void flush_pending(struct xvb_conn *c)
{
	if (c->in_request)
		return;
	put_pending(c);
	b2d_kick(c);
}

static void tp_send(void *ctx, const struct vmsg *m)
{
	struct xvb_conn *c = ctx;

	if (!c->connected)
		return;
	c->pending = *m;
	c->event_pending = true;
	flush_pending(c);
}

static void tp_notify_used(void *ctx, unsigned int q)
{
	struct xvb_conn *c = ctx;

	if (!c->connected)
		return;
	if (q < c->nvq_ports && c->qs[q].chan) {	/* on the queue's thread */
		if (c->be->bus->ops->chan_notify(c->qs[q].chan) == 0)
			XVB_STAT_ADD(c->stats.notify_out, 1);
		return;
	}
	if (q < c->nvq_ports) {
		if (c->be->bus->ops->evtchn_notify(c->be->bus, c->vq_port[q]) == 0)
			XVB_STAT_ADD(c->stats.notify_out, 1);
		return;
	}
	c->used_pending |= 1ULL << q;	/* no channel of its own: in band */
	flush_pending(c);
}

const struct xvb_vdev_transport xvb_conn_transport = {
	.send = tp_send,
	.notify_used = tp_notify_used,
	.queue_start = xvb_conn_queue_start,
	.queue_stop = xvb_conn_queue_stop,
	.queue_broken = xvb_conn_queue_broken,
};

static void handle_bus_msg(struct xvb_conn *c, const struct vmsg *req, struct vmsg *resp,
			   size_t *rsize)
{
	*rsize = 0;
	if (req->hdr.token == 0 || vmsg_is_event_id(req->hdr.msg_id))
		return;		/* bus events from the driver: none defined */
	memset(resp, 0, sizeof(*resp));
	switch (req->hdr.msg_id) {
	case VMSG_BUS_GET_DEVICES:
		/* One window of 256 device numbers from 0, no more after it. */
		if (c->vdev.msg_rev >= XVMSG_MSG_REV_2) {
			struct vmsg_bus_get_devices_resp_v2 *r = (void *)resp->payload;

			r->count = htole16(8 * sizeof(r->bitmap));
			r->bitmap[0] = 1u << XVMSG_DEV_NUM;
			*rsize = sizeof(*r);
		} else {
			struct vmsg_bus_get_devices_resp *r = (void *)resp->payload;

			r->count = htole16(8 * sizeof(r->bitmap));
			r->bitmap[0] = 1u << XVMSG_DEV_NUM;
			*rsize = sizeof(*r);
		}
		break;
	case VMSG_BUS_PING:
		*rsize = 0;
		break;
	default:
		c->stats.msgs_bad++;
		return;
	}
	resp->hdr.type = VMSG_TYPE_RESPONSE | VMSG_TYPE_BUS;
	resp->hdr.msg_id = req->hdr.msg_id;
	resp->hdr.token = req->hdr.token;
	resp->hdr.msg_size = htole16((uint16_t)(sizeof(resp->hdr) + *rsize));
	*rsize += sizeof(resp->hdr);
}

int xvb_conn_ring_process(struct xvb_conn *c, const char **why)
{
	uint32_t prod, old_cons = c->d2b_cons, pev;
	struct vmsg req, resp, lie[2];
	size_t rsize;
	unsigned int taken = 0, nlies, i;

	flush_pending(c);
	while (c->connected) {
		prod = le32toh(XVMSG_READ_ONCE(c->msg->d2b.prod));
		if (prod - c->d2b_cons > XVMSG_RING_SLOTS) {
			*why = "driver index ran ahead";
			return -EPROTO;
		}
		if (prod == c->d2b_cons) {
			/* Going idle: ask for a kick at the next message.  Pairs
			 * with the driver's full barrier between storing d2b.prod
			 * and reading cons_event. */
			XVMSG_WRITE_ONCE(c->msg->d2b.cons_event, htole32(c->d2b_cons + 1));
			xvmsg_mb();
			if (le32toh(XVMSG_READ_ONCE(c->msg->d2b.prod)) == c->d2b_cons)
				break;
			continue;
		}
		if (taken == c->be->msg_budget) {
			c->pend_msgs = true;	/* more waits: the device's next turn */
			break;
		}
		/* Every request may need a response slot: wait for one. */
		if (b2d_full(c))
			break;
		/* Pairs with the driver's write barrier before storing d2b.prod. */
		xvmsg_rmb();
		memcpy(&req, &c->msg->d2b_slot[c->d2b_cons % XVMSG_RING_SLOTS], sizeof(req));
		c->d2b_cons++;
		taken++;
		/* Our copy is taken before the slot is handed back. */
		__atomic_store_n(&c->msg->d2b.cons, htole32(c->d2b_cons), __ATOMIC_RELEASE);
		c->stats.msgs_in++;

		/* Type bits 2..7 are reserved: ignored (msg.h), only the size
		 * can make a header unusable here. */
		if (!vmsg_size_ok(&req.hdr)) {
			c->stats.msgs_bad++;
			continue;
		}
		if (vmsg_is_response(&req.hdr)) {
			c->stats.msgs_bad++;	/* we send no requests */
			continue;
		}
		rsize = 0;
		if (vmsg_is_bus(&req.hdr)) {
			handle_bus_msg(c, &req, &resp, &rsize);
		} else if (le16toh(req.hdr.dev_num) != XVMSG_DEV_NUM) {
			c->stats.msgs_bad++;
			continue;
		} else if (c->fault && xvb_fault_drop_request(c->fault, &c->vdev)) {
			rsize = 0;	/* unanswered (--fault silent) */
		} else {
			/* Events the request causes (EVENT_CONFIG on NEEDS_RESET,
			 * in-band EVENT_USED) wait until its response is in. */
			c->in_request = true;
			rsize = xvb_vdev_handle(&c->vdev, &req, &resp);
			c->in_request = false;
		}
		if (rsize && c->connected) {
			nlies = c->fault ? xvb_fault_response(c->fault, c->msg, c->b2d_prod,
							      &resp, lie) : 0;
			for (i = 0; i < nlies; i++)
				b2d_put(c, &lie[i]);
			b2d_put(c, &resp);
		}
		if (!c->connected)
			return 0;
		put_pending(c);		/* what the request emitted (kicked below) */
	}
	if (!c->connected)
		return 0;
	b2d_kick(c);
	/* Tell a driver waiting for d2b room that we freed some.  Pairs with
	 * the driver's full barrier between storing prod_event and re-reading
	 * d2b.cons. */
	xvmsg_mb();
	pev = le32toh(XVMSG_READ_ONCE(c->msg->d2b.prod_event));
	if (c->d2b_cons != old_cons && xvmsg_ring_need_notify(old_cons, c->d2b_cons, pev))
		notify_msg(c);
	return 0;
}

void xvb_conn_ring_start(struct xvb_conn *c)
{
	/* Start from whatever the frontend initialised; checked on every use. */
	c->d2b_cons = le32toh(XVMSG_READ_ONCE(c->msg->d2b.cons));
	c->b2d_prod = le32toh(XVMSG_READ_ONCE(c->msg->b2d.prod));
	c->notify_from = c->b2d_prod;
}

void xvb_conn_ring_stop(struct xvb_conn *c)
{
	c->event_pending = false;
	c->used_pending = 0;
}
