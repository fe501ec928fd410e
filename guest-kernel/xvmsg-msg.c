// SPDX-License-Identifier: GPL-2.0-only
/*
 * The message page: d2b (our requests) and b2d (the backend's responses and
 * events), one request in flight at a time, and the hand-off of device
 * events to the virtio core.
 *
 * The b2d ring is drained by a work item that the message event channel's
 * handler schedules; that work also sends the late EOI, so the channel stays
 * masked while messages are processed and a backend that floods it gets
 * spurious EOIs (which Xen throttles) instead of a hung guest.
 *
 * Every barrier below names its partner in backend-domain/conn-ring.c.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <linux/jiffies.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <xen/events.h>

#include "xvmsg.h"

static u32 ring_read(__le32 *field)
{
	return le32_to_cpu(XVMSG_READ_ONCE(*field));
}

static void ring_write(__le32 *field, u32 v)
{
	XVMSG_WRITE_ONCE(*field, cpu_to_le32(v));
}

/* ---- b2d: responses and events ------------------------------------------ */

static void handle_msg(struct xvmsg_conn *c, const struct vmsg *m)
{
	enum xvmsg_verdict v;

	xvmsg_stat_inc(c->info, XVMSG_ST_MSGS_RECV);
	spin_lock(&c->rx_lock);
	v = xvmsg_classify(m, c->resp_ready ? 0 : c->wait_token, c->wait_id, c->msg_rev);
	if (v == XVMSG_V_RESPONSE) {
		c->resp = *m;
		c->resp_ready = true;
	}
	spin_unlock(&c->rx_lock);

	switch (v) {
	case XVMSG_V_RESPONSE:
		wake_up_all(&c->wq);
		break;
	case XVMSG_V_RESP_BROKEN:
		xvmsg_conn_fail(c,
			"malformed response from the backend (message id %#x, %u bytes, expected id %#x)",
			m->hdr.msg_id, le16_to_cpu(m->hdr.msg_size), c->wait_id);
		break;
	case XVMSG_V_EVENT_CONFIG: {
		struct vmsg_event_config ev;

		memcpy(&ev, m->payload, sizeof(ev));
		xvmsg_stat_inc(c->info, XVMSG_ST_CONFIG_EVENTS);
		WRITE_ONCE(c->cfg_gen, le32_to_cpu(ev.generation));
		if (le32_to_cpu(ev.status) & VMSG_STATUS_NEEDS_RESET) {
			xvmsg_stat_inc(c->info, XVMSG_ST_NEEDS_RESET);
			xvmsg_conn_fail(c,
				"backend reports NEEDS_RESET (status %#x): it found the driver's rings unusable, see the backend's log",
				le32_to_cpu(ev.status));
		}
		set_bit(XVMSG_F_CFG_PENDING, &c->flags);
		xvmsg_ev_kick(c);
		break;
	}
	case XVMSG_V_EVENT_USED:
		/* Every queue has its own channel, so none is expected. */
		xvmsg_stat_inc(c->info, XVMSG_ST_MSGS_BAD);
		dev_dbg_ratelimited(xvmsg_dev(c), "ignoring in-band EVENT_USED\n");
		break;
	case XVMSG_V_BUS:
		dev_dbg_ratelimited(xvmsg_dev(c), "ignoring bus message %#x\n", m->hdr.msg_id);
		break;
	case XVMSG_V_STALE:
		xvmsg_stat_inc(c->info, XVMSG_ST_MSGS_BAD);
		dev_dbg_ratelimited(xvmsg_dev(c),
			"discarding response with token %u (none waits)\n",
			le16_to_cpu(m->hdr.token));
		break;
	case XVMSG_V_BAD:
		xvmsg_stat_inc(c->info, XVMSG_ST_MSGS_BAD);
		dev_warn_ratelimited(xvmsg_dev(c),
			"discarding malformed message from the backend (type %#x, id %#x, %u bytes)\n",
			m->hdr.type, m->hdr.msg_id, le16_to_cpu(m->hdr.msg_size));
		break;
	}
}

irqreturn_t xvmsg_msg_irq(int irq, void *data)
{
	struct xvmsg_conn *c = data;

	xvmsg_stat_inc(c->info, XVMSG_ST_IRQS_MSG);
	/* The channel stays masked until the work's late EOI. */
	if (!test_bit(XVMSG_F_DYING, &c->flags))
		queue_work(xvmsg_wq, &c->msg_work);
	return IRQ_HANDLED;
}

void xvmsg_msg_work(struct work_struct *w)
{
	struct xvmsg_conn *c = container_of(w, struct xvmsg_conn, msg_work);
	struct xvmsg_ring_ctl *ctl = &c->page->b2d;
	u32 cons = c->b2d_cons, old = cons, prod;
	unsigned int budget = XVMSG_MSG_BUDGET, got = 0;
	bool more = false;
	struct vmsg m;
	int n;

	if (test_bit(XVMSG_F_DYING, &c->flags))
		return;		/* the irq is being unbound: no EOI needed */

	while (!test_bit(XVMSG_F_BROKEN, &c->flags)) {
		prod = ring_read(&ctl->prod);
		n = xvmsg_ring_count(prod, cons);
		if (n == 0) {
			/* Going idle: ask for a kick at the next message. */
			ring_write(&ctl->cons_event, cons + 1);
			/* cons_event before looking at prod again; pairs with
			 * the full barrier in the backend's b2d_kick() between
			 * storing b2d.prod and reading cons_event.
			 */
			xvmsg_mb();
			prod = ring_read(&ctl->prod);
			n = xvmsg_ring_count(prod, cons);
			if (n == 0)
				break;
		}
		if (n < 0) {
			xvmsg_conn_fail(c,
				"b2d ring corrupt: backend producer index %u is %u ahead of ours (at most %u)",
				prod, prod - cons, XVMSG_RING_SLOTS);
			break;
		}
		if (!budget--) {
			more = true;
			break;
		}
		/* prod before the slot; pairs with the write barrier in the
		 * backend's b2d_put() before it stores b2d.prod.
		 */
		xvmsg_rmb();
		/* The one copy; only the copy is looked at from here on. */
		memcpy(&m, &c->page->b2d_slot[cons % XVMSG_RING_SLOTS], sizeof(m));
		/* Done reading the slot before handing it back; pairs with the
		 * backend's b2d_full(), which reads b2d.cons before it
		 * overwrites a slot.
		 */
		xvmsg_mb();
		cons++;
		ring_write(&ctl->cons, cons);
		got++;
		handle_msg(c, &m);
	}
	c->b2d_cons = cons;
	if (cons != old) {
		/* cons before prod_event; pairs with the full barrier in the
		 * backend's b2d_full() between storing prod_event and
		 * re-reading b2d.cons.
		 */
		xvmsg_mb();
		if (xvmsg_ring_need_notify(old, cons, ring_read(&ctl->prod_event)))
			notify_remote_via_irq(c->msg_irq);
	}
	/* Wake whoever waits: a response may have come, or d2b room. */
	wake_up_all(&c->wq);
	if (more) {
		queue_work(xvmsg_wq, &c->msg_work);	/* EOI after the rest */
		return;
	}
	if (!got && !test_bit(XVMSG_F_D2B_WAIT, &c->flags))
		xvmsg_stat_inc(c->info, XVMSG_ST_IRQS_SPURIOUS);
	xen_irq_lateeoi(c->msg_irq, got || test_bit(XVMSG_F_D2B_WAIT, &c->flags) ?
			0 : XEN_EOI_FLAG_SPURIOUS);
}

/* ---- d2b: requests ------------------------------------------------------ */

static bool d2b_has_room(struct xvmsg_conn *c)
{
	int n = xvmsg_ring_count(c->d2b_prod, ring_read(&c->page->d2b.cons));

	return n < 0 || n < XVMSG_RING_SLOTS;	/* corrupt: let the caller see it */
}

/* Put one message on d2b; waits (until deadline) for room.  req_lock held. */
static int d2b_put(struct xvmsg_conn *c, const struct vmsg *m, unsigned long deadline)
{
	struct xvmsg_ring_ctl *ctl = &c->page->d2b;
	u32 prod = c->d2b_prod, cons;
	long left;
	int n;

	for (;;) {
		cons = ring_read(&ctl->cons);
		n = xvmsg_ring_count(prod, cons);
		if (n >= 0 && n == XVMSG_RING_SLOTS) {
			/* Full: ask to be told when a slot frees. */
			set_bit(XVMSG_F_D2B_WAIT, &c->flags);
			ring_write(&ctl->prod_event, cons + 1);
			/* prod_event before looking at cons again; pairs with
			 * the backend's full barrier after it stores d2b.cons
			 * and before it reads prod_event (end of
			 * process_msgs()).
			 */
			xvmsg_mb();
			cons = ring_read(&ctl->cons);
			n = xvmsg_ring_count(prod, cons);
		}
		if (n < 0) {
			clear_bit(XVMSG_F_D2B_WAIT, &c->flags);
			xvmsg_conn_fail(c,
				"d2b ring corrupt: backend consumer index %u is ahead of our producer %u",
				cons, prod);
			return -EIO;
		}
		if (n < XVMSG_RING_SLOTS)
			break;
		left = (long)(deadline - jiffies);
		if (left <= 0 ||
		    !wait_event_timeout(c->wq, d2b_has_room(c) ||
					test_bit(XVMSG_F_BROKEN, &c->flags), left)) {
			clear_bit(XVMSG_F_D2B_WAIT, &c->flags);
			xvmsg_stat_inc(c->info, XVMSG_ST_TIMEOUTS);
			xvmsg_conn_fail(c, "backend took no message for %u ms (d2b ring full)",
					xvmsg_timeout_ms());
			return -ETIMEDOUT;
		}
		if (test_bit(XVMSG_F_BROKEN, &c->flags)) {
			clear_bit(XVMSG_F_D2B_WAIT, &c->flags);
			return -EIO;
		}
	}
	clear_bit(XVMSG_F_D2B_WAIT, &c->flags);
	/* The cons load before reusing its slot; pairs with the backend's
	 * release store of d2b.cons after it copied the slot.
	 */
	xvmsg_mb();
	memcpy(&c->page->d2b_slot[prod % XVMSG_RING_SLOTS], m, sizeof(*m));
	/* Message before prod; pairs with the backend's read barrier after it
	 * loads d2b.prod.
	 */
	xvmsg_wmb();
	ring_write(&ctl->prod, prod + 1);
	c->d2b_prod = prod + 1;
	/* prod before cons_event; pairs with the backend's full barrier
	 * between storing d2b.cons_event and re-reading d2b.prod.
	 */
	xvmsg_mb();
	if (xvmsg_ring_need_notify(prod, prod + 1, ring_read(&ctl->cons_event)))
		notify_remote_via_irq(c->msg_irq);
	xvmsg_stat_inc(c->info, XVMSG_ST_MSGS_SENT);
	return 0;
}

int xvmsg_call(struct xvmsg_conn *c, u8 id, const void *req, unsigned int len,
	       struct vmsg *resp)
{
	unsigned int ms = xvmsg_timeout_ms();
	unsigned long deadline;
	struct vmsg m;
	bool got;
	long left;
	u16 token;
	int r;

	if (len > VMSG_MAX_PAYLOAD)
		return -EINVAL;
	/*
	 * A virtio driver touching config space where it must not sleep.
	 * Best effort: in_atomic() sees spinlocks only with PREEMPT_COUNT,
	 * which Debian's kernels have; refusing beats sleeping there.
	 */
	if (in_atomic() || irqs_disabled()) {
		dev_err_ratelimited(xvmsg_dev(c),
			"config access (message %#x) from atomic context refused\n",
			id);
		return -EWOULDBLOCK;
	}
	mutex_lock(&c->req_lock);
	if (test_bit(XVMSG_F_BROKEN, &c->flags)) {
		r = -EIO;
		goto out;
	}
	token = ++c->token;
	if (!token)
		token = ++c->token;
	xvmsg_msg_build(&m, id, token, req, len);
	spin_lock(&c->rx_lock);
	c->wait_token = token;
	c->wait_id = id;
	c->resp_ready = false;
	spin_unlock(&c->rx_lock);

	deadline = jiffies + msecs_to_jiffies(ms);
	r = d2b_put(c, &m, deadline);
	if (r == 0) {
		left = (long)(deadline - jiffies);
		if (left > 0)
			wait_event_timeout(c->wq, READ_ONCE(c->resp_ready) ||
					   test_bit(XVMSG_F_BROKEN, &c->flags), left);
	}

	spin_lock(&c->rx_lock);
	got = c->resp_ready;
	if (got)
		*resp = c->resp;
	c->wait_token = 0;
	c->resp_ready = false;
	spin_unlock(&c->rx_lock);

	if (r == 0 && !got) {
		if (test_bit(XVMSG_F_BROKEN, &c->flags)) {
			r = -EIO;
		} else {
			xvmsg_stat_inc(c->info, XVMSG_ST_TIMEOUTS);
			xvmsg_conn_fail(c, "no response to message %#x (token %u) within %u ms",
					id, token, ms);
			r = -ETIMEDOUT;
		}
	}
out:
	mutex_unlock(&c->req_lock);
	return r;
}
