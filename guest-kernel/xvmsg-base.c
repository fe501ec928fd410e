// SPDX-License-Identifier: GPL-2.0-only
/*
 * The module's base: the request timeout, and a connection marked broken
 * (failed or stopped) with the hand-off of that to the virtio core's side
 * (ev_work, in xvmsg-virtio.c).  The other files call it; it calls none of
 * them, so the front end, the message page, the virtio device and the DMA
 * ops each call downwards only.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <linux/moduleparam.h>
#include <linux/sched.h>
#include <linux/workqueue.h>

#include "xvmsg.h"

/* ---- the request timeout ---------------------------------------------------- */

static unsigned int timeout_ms = XVMSG_DEFAULT_TIMEOUT_MS;
module_param(timeout_ms, uint, 0644);
MODULE_PARM_DESC(timeout_ms, "how long a request waits for the backend, in ms (default 30000, 100..600000); past it the device is marked broken");

unsigned int xvmsg_timeout_ms(void)
{
	return clamp_t(unsigned int, READ_ONCE(timeout_ms), XVMSG_MIN_TIMEOUT_MS,
		       XVMSG_MAX_TIMEOUT_MS);
}

/* ---- broken connections ----------------------------------------------------- */

void xvmsg_ev_kick(struct xvmsg_conn *c)
{
	unsigned long flags;

	/* Also while the driver probes (vd set, not live yet): a broken
	 * connection must fail the probe's requests too.  What needs a live
	 * device waits in the work until xvmsg_vdev_register() kicks again. */
	spin_lock_irqsave(&c->ev_lock, flags);
	if (c->vd && !c->ev_dead)
		queue_work(system_wq, &c->ev_work);
	spin_unlock_irqrestore(&c->ev_lock, flags);
}

void xvmsg_conn_fail(struct xvmsg_conn *c, const char *fmt, ...)
{
	struct va_format vaf;
	va_list args;

	if (test_and_set_bit(XVMSG_F_BROKEN, &c->flags))
		return;
	set_bit(XVMSG_F_FAILED, &c->flags);
	va_start(args, fmt);
	vaf.fmt = fmt;
	vaf.va = &args;
	dev_err(xvmsg_dev(c), "%pV; device marked broken (reconnect: write 1 to xvmsg/reconnect)\n",
		&vaf);
	va_end(args);
	xvmsg_stat_inc(c->info, XVMSG_ST_BROKEN);
	wake_up_all(&c->wq);
	xvmsg_ev_kick(c);
}

void xvmsg_conn_stop(struct xvmsg_conn *c)
{
	if (test_and_set_bit(XVMSG_F_BROKEN, &c->flags))
		return;
	wake_up_all(&c->wq);
	xvmsg_ev_kick(c);
}
