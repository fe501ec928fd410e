// SPDX-License-Identifier: MIT
/*
 * Remote queues: a device queue served on a queue thread (qthread.c) rather
 * than on the loop thread.  The transport's queue_start hands it over once
 * the device runs, queue_stop takes it back before the model's reset or
 * quiesce; in between the queue thread alone touches the queue: its
 * channel (a bus queue channel, bus.h), its ring and mappings, the model's
 * state for it (blk's I/O context), its budget and its turns.  What it
 * shares with other threads is read-only while the device runs (the vdev's
 * settings, the mapping cache's published chunks) or counted with relaxed
 * atomics (the device's counters).  No lock is taken to serve it.
 *
 * Each wake-up is one call with the backend's chain budget; a queue that
 * still has work afterwards gets another turn in the thread's next round
 * (an evdefer), after that round's other fds: round-robin between the
 * queues on one thread, as the loop thread's pending list does.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"

static void qs_serve(struct xvb_qserve *s)
{
	struct xvb_conn *c = s->c;
	unsigned int taken;

	if (xvb_vdev_serve(&c->vdev, s->q, c->be->chain_budget, &taken) && !s->turn) {
		s->turn = true;
		xvb_evloop_defer(xvb_qthread_loop(s->t), &s->again);
	}
	xvb_stat_max(&c->stats.max_chains_call, taken);
}

static void qs_again(void *arg)
{
	struct xvb_qserve *s = arg;

	s->turn = false;
	qs_serve(s);
}

static void qs_on_chan(void *arg, int fd, uint32_t events)
{
	struct xvb_qserve *s = arg;
	struct xvb_conn *c = s->c;

	if (c->be->bus->ops->chan_ack(s->chan))
		return;		/* spurious */
	XVB_STAT_ADD(c->stats.notify_in, 1);
	if (s->turn)
		return;		/* its turn comes this round: the work waits for it */
	qs_serve(s);
}

/* On the queue thread: take the queue, serve it once (buffers may be
 * waiting: no kick will come for them). */
static void qs_attach(void *arg)
{
	struct xvb_qserve *s = arg;
	struct xvb_conn *c = s->c;
	struct xvb_evloop *loop = xvb_qthread_loop(s->t);
	int rc;

	s->again.cb = qs_again;
	s->again.arg = s;
	s->turn = false;
	rc = c->ops->queue_loop(c->priv, s->q, loop);
	if (!rc) {
		rc = xvb_evloop_add(loop, c->be->bus->ops->chan_fd(s->chan), EPOLLIN, qs_on_chan, s);
		if (rc)
			c->ops->queue_loop(c->priv, s->q, NULL);
	}
	if (rc) {
		xvb_err(c->be->log, "%s: queue %u: cannot move to its queue thread: %s", c->name,
			s->q, strerror(-rc));
		c->vdev.vq[s->q].dead = "queue thread refused the queue";
		xvb_conn_queue_broken(c, &c->vdev, s->q);
		return;
	}
	s->on_thread = true;
	qs_serve(s);
}

/* On the queue thread: let go of the queue. */
static void qs_detach(void *arg)
{
	struct xvb_qserve *s = arg;
	struct xvb_conn *c = s->c;
	struct xvb_evloop *loop = xvb_qthread_loop(s->t);

	if (!s->on_thread)
		return;
	s->on_thread = false;
	xvb_evloop_cancel(loop, &s->again);
	s->turn = false;
	xvb_evloop_del(loop, c->be->bus->ops->chan_fd(s->chan));
	c->ops->queue_loop(c->priv, s->q, NULL);
}

void xvb_conn_queue_start(void *ctx, struct xvb_vdev *d, unsigned int q)
{
	struct xvb_conn *c = ctx;
	struct xvb_qserve *s = &c->qs[q];
	int rc = c->ops->queue_loop(c->priv, q, NULL);	/* off the loop thread's */

	if (rc) {
		xvb_err(c->be->log, "%s: queue %u: cannot leave the loop thread: %s", c->name, q,
			strerror(-rc));
		d->vq[q].dead = "queue thread refused the queue";
		xvb_conn_queue_broken(c, d, q);
		return;
	}
	xvb_qthread_call(s->t, qs_attach, s);
}

void xvb_conn_queue_stop(void *ctx, struct xvb_vdev *d, unsigned int q)
{
	struct xvb_conn *c = ctx;
	struct xvb_qserve *s = &c->qs[q];

	xvb_qthread_call(s->t, qs_detach, s);
	/* A lie its thread reported and the loop thread has not read yet is
	 * the reset's business now (vq->dead is cleared with it): a stale bit
	 * would have the loop thread read the next round's vq->dead while a
	 * thread writes it. */
	__atomic_fetch_and(&c->attn_q, ~(1ULL << q), __ATOMIC_RELAXED);
	/* Home again, for the model's reset or quiesce and the next start. */
	if (c->ops->queue_loop(c->priv, q, c->be->loop))
		xvb_warn(c->be->log, "%s: queue %u: its I/O cannot come back to the loop thread",
			 c->name, q);
}

/* Any thread: tell the loop thread. */
void xvb_conn_queue_broken(void *ctx, struct xvb_vdev *d, unsigned int q)
{
	struct xvb_conn *c = ctx;
	uint64_t one = 1;

	__atomic_fetch_or(&c->attn_q, 1ULL << q, __ATOMIC_RELEASE);
	if (write(c->be->attn_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, a wake-up is pending anyway */
	}
}

/* On the loop thread. */
void xvb_conn_attention(struct xvb_conn *c)
{
	uint64_t bits = __atomic_exchange_n(&c->attn_q, 0, __ATOMIC_ACQUIRE);
	unsigned int q;

	for (q = 0; bits && q < c->vdev.nvqs; q++) {
		if (!(bits & (1ULL << q)))
			continue;
		bits &= ~(1ULL << q);
		if (c->connected && c->vdev.vq[q].dead)
			xvb_needs_reset(&c->vdev, c->vdev.vq[q].dead);
	}
}
