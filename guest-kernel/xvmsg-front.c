// SPDX-License-Identifier: GPL-2.0-only
/*
 * xvmsg: virtio devices served by a backend in another Xen domain, which can
 * reach nothing of this guest but a granted pool (docs/architecture.md).
 *
 * This file is the xenbus frontend of device class "xvmsg": the handshake of
 * docs/protocol.md section 5.3, the lifecycle of a connection, the module
 * parameters and the counters.
 *
 *   backend InitWait   read max-queues, max-pool-pages, mode; allocate and
 *                      grant the message page and the pool; allocate and
 *                      bind the event channels; publish the keys in one
 *                      transaction; Initialised
 *   backend Connected  Connected; register the virtio device
 *   backend Closing,   break and unregister the virtio device, unbind, revoke
 *   Closed, gone       every grant (one the backend still maps is withheld
 *                      and counted), Closed.  A backend that closed a
 *                      connected device (a restarted backend does) gets a
 *                      new handshake from Initialising (rate-limited); a
 *                      backend back in InitWait is connected again
 *
 * All of it runs in one work item per device, under info->lock: never on
 * the xenwatch thread, which only records that the backend changed (and
 * makes waiting requests fail at once when the backend goes away).
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/rcupdate.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <xen/events.h>
#include <xen/page.h>
#include <xen/xen.h>

#include "xvmsg.h"
#include "xvmsg-compat.h"

/* ---- module parameters ---------------------------------------------------- */

static enum xvmsg_mode default_mode = XVMSG_MODE_POOL;
static unsigned int pool_pages;
static u32 msg_revisions = XVMSG_MSG_REVS_ALL;	/* bit r: layout revision r */

static int mode_param_set(const char *val, const struct kernel_param *kp)
{
	size_t len = strlen(val);
	enum xvmsg_mode m;

	if (len && val[len - 1] == '\n')
		len--;		/* from a write to the parameter's sysfs file */
	if (xvmsg_parse_mode_len(val, len, &m))
		return -EINVAL;
	WRITE_ONCE(*(enum xvmsg_mode *)kp->arg, m);
	return 0;
}

static int mode_param_get(char *buf, const struct kernel_param *kp)
{
	return scnprintf(buf, PAGE_SIZE, "%s\n", xvmsg_mode_name(READ_ONCE(*(enum xvmsg_mode *)kp->arg)));
}

static const struct kernel_param_ops mode_param_ops = {
	.set = mode_param_set,
	.get = mode_param_get,
};

static int revs_param_set(const char *val, const struct kernel_param *kp)
{
	char buf[32];
	size_t len = strlen(val);
	u32 m;

	if (len && val[len - 1] == '\n')
		len--;		/* from a write to the parameter's sysfs file */
	if (len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, val, len);
	buf[len] = '\0';
	if (xvmsg_parse_revisions(buf, &m) || (m & ~XVMSG_MSG_REVS_ALL))
		return -EINVAL;
	WRITE_ONCE(*(u32 *)kp->arg, m);
	return 0;
}

static int revs_param_get(char *buf, const struct kernel_param *kp)
{
	u32 m = READ_ONCE(*(u32 *)kp->arg);
	int n = 0;
	unsigned int r;

	for (r = XVMSG_MSG_REV_MIN; r <= XVMSG_MSG_REV_MAX; r++)
		if (m & (1u << r))
			n += scnprintf(buf + n, PAGE_SIZE - n, "%s%u", n ? "," : "", r);
	return n + scnprintf(buf + n, PAGE_SIZE - n, "\n");
}

static const struct kernel_param_ops revs_param_ops = {
	.set = revs_param_set,
	.get = revs_param_get,
};

module_param_cb(mode, &mode_param_ops, &default_mode, 0644);
MODULE_PARM_DESC(mode, "memory-access mode when the backend directory has no \"mode\" key: pool (default), grant or full");
module_param(pool_pages, uint, 0644);
MODULE_PARM_DESC(pool_pages, "pool size in 4 KiB pages (pool mode); 0 (default): the backend's max-pool-pages, or 256; always at most max-pool-pages");
module_param_cb(msg_revisions, &revs_param_ops, &msg_revisions, 0644);
MODULE_PARM_DESC(msg_revisions, "virtio-msg message layout revisions to speak, e.g. 1,2 (default: every one known); the highest the backend also speaks is used");

struct workqueue_struct *xvmsg_wq;
static struct dentry *xvmsg_dbg_root;
static const struct file_operations xvmsg_queues_fops;	/* debugfs <dev>/queues */

/* Same list as the enum, so in the same order. */
#define XVMSG_STAT_NAME(u, l) #l,
const char *const xvmsg_stat_names[XVMSG_ST_NR] = {
	XVMSG_STATS(XVMSG_STAT_NAME)
};
#undef XVMSG_STAT_NAME

/* ---- xenstore helpers ----------------------------------------------------- */

/* A backend key as a strict decimal: 0, -ENOENT absent, -EINVAL/-ERANGE bad. */
static int read_backend_u32(struct xenbus_device *dev, const char *key, u32 *v)
{
	char *s = xenbus_read(XBT_NIL, dev->otherend, key, NULL);
	int r;

	if (IS_ERR(s))
		return PTR_ERR(s);
	r = xvmsg_parse_u32(s, v);
	kfree(s);
	return r;
}

static void log_backend_error(struct xenbus_device *dev)
{
	char *s = xenbus_read(XBT_NIL, dev->otherend, XVMSG_XS_HOTPLUG_ERROR, NULL);

	if (IS_ERR(s))
		return;
	/* The backend wrote it: escaped, bounded. */
	dev_err(&dev->dev, "backend %s says: %*pE\n", dev->otherend, (int)strnlen(s, 200), s);
	kfree(s);
}

/*
 * The message layout revision: the highest one both the msg_revisions
 * parameter and the backend (msg-revisions; absent: 1) name.  Speaking only
 * 1 we read and write no key, as frontends before revisions.  None in
 * common: our own error key says why, and the device fails.
 */
static int pick_revision(struct xenbus_device *dev, unsigned int *rev, bool *key)
{
	u32 ours = READ_ONCE(msg_revisions), theirs = 1u << XVMSG_MSG_REV_1;
	char *s;
	int r;

	*rev = XVMSG_MSG_REV_1;
	*key = false;
	if (ours == 1u << XVMSG_MSG_REV_1)
		return 0;
	s = xenbus_read(XBT_NIL, dev->otherend, XVMSG_XS_MSG_REVISIONS, NULL);
	if (!IS_ERR(s)) {
		if (xvmsg_parse_revisions(s, &theirs))
			theirs = 0;
		*key = true;
	}
	r = xvmsg_pick_revision(ours, theirs);
	if (r < 0) {
		xenbus_printf(XBT_NIL, dev->nodename, XVMSG_XS_HOTPLUG_ERROR,
			      "no common virtio-msg message layout revision: backend speaks %.20s, "
			      "this frontend 0x%x (bit r = revision r)",
			      IS_ERR(s) ? "1" : s, ours);
		xenbus_dev_fatal(dev, r, "no common virtio-msg message layout revision: backend "
				 "msg-revisions \"%*pE\", msg_revisions parameter 0x%x",
				 IS_ERR(s) ? 1 : (int)strnlen(s, 20), IS_ERR(s) ? "1" : s, ours);
	} else {
		*rev = r;
	}
	if (!IS_ERR(s))
		kfree(s);
	return r < 0 ? r : 0;
}

/* ---- one connection --------------------------------------------------------- */

static struct xvmsg_conn *conn_alloc(struct xvmsg_info *info, enum xvmsg_mode mode,
				     unsigned int nq)
{
	struct xvmsg_conn *c = kzalloc(sizeof(*c), GFP_KERNEL);
	unsigned int i;

	if (!c)
		return NULL;
	c->q = kcalloc(nq, sizeof(*c->q), GFP_KERNEL);
	c->anchor = alloc_page(GFP_KERNEL);
	if (!c->q || !c->anchor) {
		if (c->anchor)
			__free_page(c->anchor);
		kfree(c->q);
		kfree(c);
		return NULL;
	}
	c->info = info;
	c->mode = mode;
	c->domid = info->xbdev->otherend_id;
	c->nq = nq;
	for (i = 0; i < nq; i++) {
		c->q[i].conn = c;
		c->q[i].index = i;
	}
	mutex_init(&c->req_lock);
	mutex_init(&c->cfg_lock);
	mutex_init(&c->vq_lock);
	spin_lock_init(&c->rx_lock);
	spin_lock_init(&c->ev_lock);
	init_waitqueue_head(&c->wq);
	xa_init_flags(&c->grants, XA_FLAGS_LOCK_IRQ);
	xa_init_flags(&c->heads, XA_FLAGS_LOCK_IRQ);
	INIT_WORK(&c->msg_work, xvmsg_msg_work);
	INIT_WORK(&c->ev_work, xvmsg_ev_work);
	INIT_DELAYED_WORK(&c->stall_work, xvmsg_stall_work);
	return c;
}

static int msg_page_setup(struct xvmsg_conn *c)
{
	int r;

	c->msg_page = alloc_page(GFP_KERNEL | __GFP_ZERO);
	if (!c->msg_page)
		return -ENOMEM;
	c->page = page_address(c->msg_page);
	xvmsg_msg_page_init(c->page);
	r = gnttab_grant_foreign_access(c->domid, xen_page_to_gfn(c->msg_page), 0);
	if (r < 0)
		return r;
	c->msg_ref = r;
	c->msg_granted = true;
	xvmsg_stat_inc(c->info, XVMSG_ST_GRANTS);
	return 0;
}

static void msg_page_destroy(struct xvmsg_conn *c)
{
	if (!c->msg_page)
		return;
	/* A page the backend still maps goes to the deferred reclaim. */
	if (!c->msg_granted || xvmsg_end_access(c->info, c->msg_ref, c->msg_page))
		__free_page(c->msg_page);
	c->msg_page = NULL;
	c->page = NULL;
}

static int bind_channel(struct xvmsg_conn *c, evtchn_port_t *port, int *irq,
			irq_handler_t handler, const char *name, void *data)
{
	struct xenbus_device *dev = c->info->xbdev;
	int r;

	r = xenbus_alloc_evtchn(dev, port);
	if (r)
		return r;
	r = bind_evtchn_to_irqhandler_lateeoi(*port, handler, 0, name, data);
	if (r < 0) {
		xenbus_free_evtchn(dev, *port);
		*port = 0;
		return r;
	}
	*irq = r;
	return 0;
}

/* Unbinding also closes the port. */
static void unbind_channel(evtchn_port_t *port, int *irq, void *data)
{
	if (*irq > 0)
		unbind_from_irqhandler(*irq, data);
	*irq = 0;
	*port = 0;
}

/*
 * Take everything of a connection back; safe on a partly built one.  The
 * virtio device is gone already and the backend has let go (or is gone, or
 * did not in time: then its grants are withheld, not reused).
 */
static void conn_destroy(struct xvmsg_info *info, struct xvmsg_conn *c)
{
	unsigned int i;

	/* Waits for a reader of it to finish. */
	debugfs_remove(c->dbg_queues);
	c->dbg_queues = NULL;
	spin_lock(&info->state_lock);
	if (info->conn_fast == c)
		info->conn_fast = NULL;
	spin_unlock(&info->state_lock);
	if (info->conn == c)
		info->conn = NULL;

	set_bit(XVMSG_F_BROKEN, &c->flags);
	set_bit(XVMSG_F_DYING, &c->flags);
	wake_up_all(&c->wq);
	/* After this no handler queues the message work, and it is not queued. */
	if (c->msg_irq > 0)
		synchronize_irq(c->msg_irq);
	cancel_work_sync(&c->msg_work);
	spin_lock_irq(&c->ev_lock);
	c->ev_dead = true;
	spin_unlock_irq(&c->ev_lock);
	cancel_work_sync(&c->ev_work);

	for (i = 0; i < c->nq; i++)
		unbind_channel(&c->q[i].port, &c->q[i].irq, &c->q[i]);
	unbind_channel(&c->msg_port, &c->msg_irq, c);

	/*
	 * DMA ops in flight finish first; later ones (a driver that unmaps
	 * after its device is gone) find no connection.  The ops table stays
	 * set until remove, so such calls never reach another DMA layer.
	 */
	if (rcu_access_pointer(info->dma_conn) == c) {
		RCU_INIT_POINTER(info->dma_conn, NULL);
		synchronize_rcu();
	}
	xvmsg_grants_revoke_all(c);
	xa_destroy(&c->heads);
	if (c->mode == XVMSG_MODE_POOL)
		xvmsg_pool_destroy(c);
	msg_page_destroy(c);
	put_page(c->anchor);	/* the grant table may hold counts of its own */
	kfree(c->q);
	kfree(c);
}

/*
 * The connection's keys and state Initialised, in one transaction, then
 * dev->state.  Not xenbus_switch_state() after the keys: since 7.0 the
 * xenbus core (xenbus_dev_changed, on the xenwatch thread) removes and
 * probes again a frontend whose state node reads Initialising while
 * dev->state says otherwise, and the watch events of a transaction of keys
 * alone are handled while the state switch runs: the node read before the
 * switch, dev->state after it, and the device is gone under its handshake
 * ("state reset occurred").  A transaction with the state in it fires its
 * events only once the node says Initialised.
 */
static int publish(struct xvmsg_conn *c, const char **what)
{
	struct xenbus_device *dev = c->info->xbdev;
	const char *dir = dev->nodename;
	struct xenbus_transaction xbt;
	unsigned int i, tries = 0;
	char key[32];
	int r;

again:
	*what = "starting a xenstore transaction";
	r = xenbus_transaction_start(&xbt);
	if (r)
		return r;
	*what = "writing " XVMSG_XS_MODE;
	r = xenbus_printf(xbt, dir, XVMSG_XS_MODE, "%s", xvmsg_mode_name(c->mode));
	if (!r && c->msg_rev_key) {
		*what = "writing " XVMSG_XS_MSG_REVISION;
		r = xenbus_printf(xbt, dir, XVMSG_XS_MSG_REVISION, "%u", c->msg_rev);
	}
	if (!r) {
		*what = "writing " XVMSG_XS_MSG_REF;
		r = xenbus_printf(xbt, dir, XVMSG_XS_MSG_REF, "%u", c->msg_ref);
	}
	if (!r) {
		*what = "writing " XVMSG_XS_EVTCHN;
		r = xenbus_printf(xbt, dir, XVMSG_XS_EVTCHN, "%u", c->msg_port);
	}
	if (!r && c->mode == XVMSG_MODE_POOL) {
		*what = "writing " XVMSG_XS_POOL_REF;
		r = xenbus_printf(xbt, dir, XVMSG_XS_POOL_REF, "%u", c->pool.first_ref);
		if (!r) {
			*what = "writing " XVMSG_XS_POOL_PAGES;
			r = xenbus_printf(xbt, dir, XVMSG_XS_POOL_PAGES, "%u", c->pool.npages);
		}
	}
	if (!r) {
		*what = "writing " XVMSG_XS_NUM_QUEUES;
		r = xenbus_printf(xbt, dir, XVMSG_XS_NUM_QUEUES, "%u", c->nq);
	}
	for (i = 0; !r && i < c->nq; i++) {
		snprintf(key, sizeof(key), XVMSG_XS_VQ_EVTCHN_FMT, i);
		*what = "writing a queue event channel";
		r = xenbus_printf(xbt, dir, key, "%u", c->q[i].port);
	}
	if (!r) {
		*what = "writing state Initialised";
		r = xenbus_printf(xbt, dir, "state", "%d", XenbusStateInitialised);
	}
	if (r) {
		xenbus_transaction_end(xbt, 1);
		return r;
	}
	*what = "completing the xenstore transaction";
	r = xenbus_transaction_end(xbt, 0);
	if (r == -EAGAIN && ++tries < 16)
		goto again;
	if (!r)
		WRITE_ONCE(dev->state, XenbusStateInitialised);
	return r;
}

/* Backend InitWait: build a connection and publish it.  info->lock held. */
static int xvmsg_connect(struct xvmsg_info *info)
{
	struct xenbus_device *dev = info->xbdev;
	const char *what = "reading the backend's keys";
	u32 maxq, maxpool = 0, pages = 0;
	unsigned int i, rev;
	struct xvmsg_conn *c;
	enum xvmsg_mode mode;
	bool rev_key;
	char *s;
	int r;

	r = pick_revision(dev, &rev, &rev_key);
	if (r)
		return r;

	r = read_backend_u32(dev, XVMSG_XS_MAX_QUEUES, &maxq);
	if (r || !maxq || maxq > XVMSG_MAX_QUEUES) {
		r = r ?: -EINVAL;
		xenbus_dev_fatal(dev, r, "backend key %s/%s missing or not 1..%u",
				 dev->otherend, XVMSG_XS_MAX_QUEUES, XVMSG_MAX_QUEUES);
		return r;
	}
	if (read_backend_u32(dev, XVMSG_XS_MAX_POOL, &maxpool) ||
	    maxpool > XVMSG_MAX_POOL_PAGES)
		maxpool = 0;	/* absent or garbage: no limit from the backend */
	s = xenbus_read(XBT_NIL, dev->otherend, XVMSG_XS_MODE, NULL);
	if (IS_ERR(s)) {
		mode = READ_ONCE(default_mode);
	} else {
		r = xvmsg_parse_mode(s, &mode);
		if (r)
			xenbus_dev_fatal(dev, -EINVAL,
				"backend mode \"%*pE\" is not pool, grant or full",
				(int)strnlen(s, 20), s);
		kfree(s);
		if (r)
			return -EINVAL;
	}
	if (mode == XVMSG_MODE_POOL) {
		pages = READ_ONCE(pool_pages);
		if (!pages)
			pages = maxpool ?: XVMSG_DEFAULT_POOL_PAGES;
		if (maxpool && pages > maxpool) {
			dev_info(&dev->dev,
				"pool_pages %u clamped to the backend's max-pool-pages %u\n",
				pages, maxpool);
			pages = maxpool;
		}
		pages = min_t(u32, pages, XVMSG_MAX_POOL_PAGES);
	}

	c = conn_alloc(info, mode, maxq);
	if (!c) {
		xenbus_dev_fatal(dev, -ENOMEM, "allocating the connection");
		return -ENOMEM;
	}
	c->msg_rev = rev;
	c->msg_rev_key = rev_key;
	what = "granting the message page";
	r = msg_page_setup(c);
	if (r)
		goto fail;
	if (mode == XVMSG_MODE_POOL) {
		what = "allocating and granting the pool";
		r = xvmsg_pool_create(c, pages);
		if (r)
			goto fail;
	}
	what = "allocating the message event channel";
	snprintf(c->msg_irq_name, sizeof(c->msg_irq_name), "%s-msg", dev_name(&dev->dev));
	r = bind_channel(c, &c->msg_port, &c->msg_irq, xvmsg_msg_irq, c->msg_irq_name, c);
	if (r)
		goto fail;
	what = "allocating the queue event channels";
	for (i = 0; i < c->nq; i++) {
		struct xvmsg_queue *q = &c->q[i];

		snprintf(q->name, sizeof(q->name), "%s-q%u", dev_name(&dev->dev), i);
		r = bind_channel(c, &q->port, &q->irq, xvmsg_vq_irq, q->name, q);
		if (r)
			goto fail;
	}
	info->conn = c;
	c->dbg_queues = debugfs_create_file("queues", 0444, info->dbg, c, &xvmsg_queues_fops);
	spin_lock(&info->state_lock);
	info->conn_fast = c;
	spin_unlock(&info->state_lock);
	set_dma_ops(&dev->dev, xvmsg_dma_ops(mode));
	rcu_assign_pointer(info->dma_conn, c);
	/* The keys and state Initialised in one transaction (publish()). */
	r = publish(c, &what);
	if (r)
		goto fail;
	xvmsg_stat_inc(info, XVMSG_ST_CONNECTS);
	dev_info(&dev->dev,
		"published to backend domain %u: %s mode, %u pool pages, %u queue channels, "
		"message layout revision %u\n",
		c->domid, xvmsg_mode_name(mode), pages, c->nq, c->msg_rev);
	return 0;

fail:
	conn_destroy(info, c);
	xenbus_dev_fatal(dev, r, "%s", what);
	return r;
}

/* Wait (bounded) until the backend let go of the message page and the pool. */
static void wait_backend_released(struct xenbus_device *dev)
{
	unsigned int ms = xvmsg_timeout_ms();
	unsigned long end = jiffies + msecs_to_jiffies(ms);
	enum xenbus_state s;

	for (;;) {
		s = xvmsg_read_driver_state(dev, dev->otherend);
		if (s != XenbusStateInitialised && s != XenbusStateConnected &&
		    s != XenbusStateClosing)
			return;
		if (time_after(jiffies, end)) {
			dev_warn(&dev->dev,
				"backend still %s after %u ms: revoking anyway (pages it maps are withheld)\n",
				xenbus_strstate(s), ms);
			return;
		}
		msleep(20);
	}
}

/*
 * Disconnect: virtio device, backend hand-back, interrupts, memory, state
 * Closed.  graceful: the backend still serves, so the driver's remove may
 * flush through it.  info->lock held.
 */
static void xvmsg_teardown(struct xvmsg_info *info, bool graceful, const char *why)
{
	struct xenbus_device *dev = info->xbdev;
	struct xvmsg_conn *c = info->conn;

	if (!c)
		return;
	dev_info(&dev->dev, "disconnecting: %s\n", why);
	if (graceful && (test_bit(XVMSG_F_BROKEN, &c->flags) ||
			 xvmsg_read_driver_state(dev, dev->otherend) != XenbusStateConnected))
		graceful = false;
	xvmsg_vdev_unregister(c, graceful);
	xvmsg_conn_stop(c);	/* nothing more goes over the rings */
	if (dev->state == XenbusStateInitialised || dev->state == XenbusStateConnected)
		xenbus_switch_state(dev, XenbusStateClosing);
	wait_backend_released(dev);
	conn_destroy(info, c);
	xenbus_switch_state(dev, XenbusStateClosed);
	xvmsg_stat_inc(info, XVMSG_ST_DISCONNECTS);
}

/* ---- lifecycle -------------------------------------------------------------- */

/*
 * A backend that closes a connected device on its own (a restarted backend
 * does: docs/xenstore.md, "backend restart") expects the frontend to start
 * over from Initialising.  At most XVMSG_AUTO_RECONNECTS of those per
 * XVMSG_AUTO_WINDOW, so a backend that closes every connection cannot keep
 * the guest registering and removing devices.
 */
#define XVMSG_AUTO_RECONNECTS	3
#define XVMSG_AUTO_WINDOW	(60 * HZ)

static bool auto_reconnect_allowed(struct xvmsg_info *info)
{
	if (!info->auto_window || time_after(jiffies, info->auto_window + XVMSG_AUTO_WINDOW)) {
		info->auto_window = jiffies;
		info->auto_count = 0;
	}
	if (info->auto_count >= XVMSG_AUTO_RECONNECTS) {
		dev_err(&info->xbdev->dev,
			"backend closed the device %u times within %u s: staying closed (write 1 to xvmsg/reconnect to retry)\n",
			XVMSG_AUTO_RECONNECTS, XVMSG_AUTO_WINDOW / HZ);
		return false;
	}
	info->auto_count++;
	return true;
}

/*
 * Back to Initialising, to start the handshake over (module reload, backend
 * restart, reconnect request).  Since 7.0 the xenbus core takes a frontend
 * whose state node reads Initialising while dev->state says otherwise for a
 * device the toolstack reset: it unregisters it and probes a new one
 * (xenbus_dev_changed, on the xenwatch thread).  xenbus_switch_state()
 * writes the node first and sets dev->state after, so the xenwatch thread
 * can see exactly that, and then removes the device under our handshake
 * (its grants revoked while the backend maps them).  So dev->state first,
 * then the node.  Older kernels do not look; there it changes nothing.
 */
static void restart_handshake(struct xenbus_device *dev)
{
	int r;

	if (dev->state == XenbusStateInitialising)
		return;
	WRITE_ONCE(dev->state, XenbusStateInitialising);
	r = xenbus_printf(XBT_NIL, dev->nodename, "state", "%d", XenbusStateInitialising);
	if (r)
		xenbus_dev_error(dev, r, "writing state Initialising");
}

/* The backend closed (or restarted under) a live connection. */
static void backend_closed(struct xvmsg_info *info, enum xenbus_state be, const char *why)
{
	struct xenbus_device *dev = info->xbdev;
	bool was_connected = dev->state == XenbusStateConnected;

	log_backend_error(dev);
	xvmsg_teardown(info, false, why);
	if (was_connected && be != XenbusStateUnknown && auto_reconnect_allowed(info)) {
		dev_info(&dev->dev, "starting the handshake again\n");
		restart_handshake(dev);
	}
}

/*
 * Act on the backend's state, then look again: tearing down takes a while
 * and the backend may have moved meanwhile.  Bounded passes.
 */
static void xvmsg_step(struct xvmsg_info *info)
{
	struct xenbus_device *dev = info->xbdev;
	enum xenbus_state be;
	unsigned int pass;
	bool again;
	int r;

	for (pass = 0; pass < 4; pass++) {
		be = xvmsg_read_driver_state(dev, dev->otherend);
		dev_dbg(&dev->dev, "backend %s, frontend %s\n", xenbus_strstate(be),
			xenbus_strstate(dev->state));
		again = false;
		switch (be) {
		case XenbusStateInitWait:
			if (info->conn && dev->state == XenbusStateConnected) {
				backend_closed(info, be, "backend restarted");
				again = true;
			} else if (!info->conn && (dev->state == XenbusStateInitialising ||
						   dev->state == XenbusStateClosed)) {
				xvmsg_connect(info);
			}
			break;
		case XenbusStateConnected:
			if (info->conn && dev->state == XenbusStateInitialised) {
				xenbus_switch_state(dev, XenbusStateConnected);
				r = xvmsg_vdev_register(info->conn);
				if (r)
					xenbus_dev_fatal(dev, r, "setting up the virtio device");
			}
			break;
		case XenbusStateClosing:
		case XenbusStateClosed:
		case XenbusStateUnknown:
			if (info->conn) {
				backend_closed(info, be, be == XenbusStateUnknown ?
					       "backend directory gone" : "backend closed");
				again = true;
			} else if (dev->state == XenbusStateClosing) {
				xenbus_switch_state(dev, XenbusStateClosed);
			}
			break;
		default:
			break;
		}
		if (!again)
			break;
	}
}

static void xvmsg_work(struct work_struct *w)
{
	struct xvmsg_info *info = container_of(w, struct xvmsg_info, work);
	struct xenbus_device *dev = info->xbdev;
	bool reconnect;

	mutex_lock(&info->lock);
	spin_lock(&info->state_lock);
	reconnect = info->reconnect_req;
	info->reconnect_req = false;
	if (info->removing) {
		spin_unlock(&info->state_lock);
		goto out;
	}
	spin_unlock(&info->state_lock);

	if (reconnect) {
		info->auto_window = 0;	/* a person asked: fresh budget */
		xvmsg_teardown(info, true, "reconnect requested");
		if (dev->state == XenbusStateClosed || dev->state == XenbusStateClosing)
			restart_handshake(dev);
	}
	xvmsg_step(info);
out:
	mutex_unlock(&info->lock);
}

static void xvmsg_kick(struct xvmsg_info *info)
{
	spin_lock(&info->state_lock);
	if (!info->removing)
		queue_work(system_long_wq, &info->work);
	spin_unlock(&info->state_lock);
}

/* xenwatch thread: note the change, let the work do it. */
static void xvmsg_backend_changed(struct xenbus_device *dev, enum xenbus_state be)
{
	struct xvmsg_info *info = dev_get_drvdata(&dev->dev);

	dev_dbg(&dev->dev, "backend state %s\n", xenbus_strstate(be));
	if (be == XenbusStateClosing || be == XenbusStateClosed || be == XenbusStateUnknown) {
		/* Requests waiting for this backend fail now, not at timeout. */
		spin_lock(&info->state_lock);
		if (info->conn_fast)
			xvmsg_conn_stop(info->conn_fast);
		spin_unlock(&info->state_lock);
	}
	xvmsg_kick(info);
}

/* ---- sysfs and debugfs ------------------------------------------------------- */

static ssize_t stat_show(struct device *d, struct device_attribute *attr, char *buf)
{
	struct xvmsg_info *info = dev_get_drvdata(d);
	struct dev_ext_attribute *ea = container_of(attr, struct dev_ext_attribute, attr);

	return sysfs_emit(buf, "%lld\n", atomic64_read(&info->st[(uintptr_t)ea->var]));
}

#define XVMSG_STAT_ATTR(u, l)							\
	static struct dev_ext_attribute xvmsg_attr_##l = {			\
		__ATTR(l, 0444, stat_show, NULL), (void *)XVMSG_ST_##u		\
	};
XVMSG_STATS(XVMSG_STAT_ATTR)
#undef XVMSG_STAT_ATTR

/* What the connection shows, read under state_lock (conn_show). */
enum { XVMSG_CONN_MODE, XVMSG_CONN_POOL_PAGES, XVMSG_CONN_POOL_USED_BYTES, XVMSG_CONN_BROKEN_NOW };

static ssize_t conn_show(struct device *d, struct device_attribute *attr, char *buf)
{
	struct xvmsg_info *info = dev_get_drvdata(d);
	struct dev_ext_attribute *ea = container_of(attr, struct dev_ext_attribute, attr);
	const struct xvmsg_conn *c;
	ssize_t n;

	spin_lock(&info->state_lock);
	c = info->conn_fast;
	switch ((uintptr_t)ea->var) {
	case XVMSG_CONN_MODE:
		n = sysfs_emit(buf, "%s\n", c ? xvmsg_mode_name(c->mode) : "disconnected");
		break;
	case XVMSG_CONN_POOL_PAGES:
		n = sysfs_emit(buf, "%u\n", c ? c->pool.npages : 0);
		break;
	case XVMSG_CONN_POOL_USED_BYTES:
		n = sysfs_emit(buf, "%zu\n",
			       c ? (size_t)READ_ONCE(c->pool.used) << XVMSG_POOL_UNIT_SHIFT : 0);
		break;
	case XVMSG_CONN_BROKEN_NOW:
		n = sysfs_emit(buf, "%d\n", c ? test_bit(XVMSG_F_BROKEN, &c->flags) : 0);
		break;
	default:
		n = -EINVAL;
	}
	spin_unlock(&info->state_lock);
	return n;
}

#define XVMSG_CONN_ATTR(l, i)							\
	static struct dev_ext_attribute xvmsg_conn_attr_##l = {			\
		__ATTR(l, 0444, conn_show, NULL), (void *)(i)			\
	}
XVMSG_CONN_ATTR(mode, XVMSG_CONN_MODE);
XVMSG_CONN_ATTR(pool_pages, XVMSG_CONN_POOL_PAGES);
XVMSG_CONN_ATTR(pool_used_bytes, XVMSG_CONN_POOL_USED_BYTES);
XVMSG_CONN_ATTR(broken_now, XVMSG_CONN_BROKEN_NOW);
#undef XVMSG_CONN_ATTR

/* Write 1: disconnect (if connected) and go through the handshake again. */
static ssize_t reconnect_store(struct device *d, struct device_attribute *attr,
			       const char *buf, size_t count)
{
	struct xvmsg_info *info = dev_get_drvdata(d);
	bool v;

	if (kstrtobool(buf, &v) || !v)
		return -EINVAL;
	spin_lock(&info->state_lock);
	info->reconnect_req = true;
	spin_unlock(&info->state_lock);
	xvmsg_kick(info);
	return count;
}
static DEVICE_ATTR_WO(reconnect);

#define XVMSG_STAT_ATTR_REF(u, l) &xvmsg_attr_##l.attr.attr,
static struct attribute *xvmsg_attrs[] = {
	XVMSG_STATS(XVMSG_STAT_ATTR_REF)
	&xvmsg_conn_attr_mode.attr.attr,
	&xvmsg_conn_attr_pool_pages.attr.attr,
	&xvmsg_conn_attr_pool_used_bytes.attr.attr,
	&xvmsg_conn_attr_broken_now.attr.attr,
	&dev_attr_reconnect.attr,
	NULL
};
#undef XVMSG_STAT_ATTR_REF

static const struct attribute_group xvmsg_group = {
	.name = "xvmsg",
	.attrs = xvmsg_attrs,
};

static const struct attribute_group *xvmsg_groups[] = {
	&xvmsg_group,
	NULL
};

/* Each queue's ring state; vq_lock for a moment only (whoever holds it
 * may be what hangs: then say so rather than wait). */
static int xvmsg_queues_show(struct seq_file *s, void *unused)
{
	struct xvmsg_conn *c = s->private;
	unsigned int i, tries;

	for (tries = 0; !mutex_trylock(&c->vq_lock); tries++) {
		if (tries == 50) {
			seq_puts(s, "vq_lock held for over a second: ring state not read\n");
			return 0;
		}
		msleep(20);
	}
	for (i = 0; i < c->nq; i++)
		xvmsg_shadow_show(s, &c->q[i]);
	mutex_unlock(&c->vq_lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(xvmsg_queues);

static int xvmsg_stats_show(struct seq_file *s, void *unused)
{
	struct xvmsg_info *info = s->private;
	struct xvmsg_conn *c;
	unsigned int i;

	for (i = 0; i < XVMSG_ST_NR; i++)
		seq_printf(s, "%-17s %lld\n", xvmsg_stat_names[i], atomic64_read(&info->st[i]));
	spin_lock(&info->state_lock);
	c = info->conn_fast;
	if (c)
		seq_printf(s, "mode              %s\nbackend_domain    %u\nbroken            %d\n"
			   "queue_channels    %u\npool_pages        %u\npool_used_bytes   %zu\n",
			   xvmsg_mode_name(c->mode), c->domid,
			   test_bit(XVMSG_F_BROKEN, &c->flags), c->nq, c->pool.npages,
			   (size_t)READ_ONCE(c->pool.used) << XVMSG_POOL_UNIT_SHIFT);
	else
		seq_puts(s, "mode              disconnected\n");
	spin_unlock(&info->state_lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(xvmsg_stats);

/* ---- xenbus driver ------------------------------------------------------------- */

static int xvmsg_probe(struct xenbus_device *dev, const struct xenbus_device_id *id)
{
	struct xvmsg_info *info = kzalloc(sizeof(*info), GFP_KERNEL);

	if (!info) {
		xenbus_dev_fatal(dev, -ENOMEM, "allocating device state");
		return -ENOMEM;
	}
	info->xbdev = dev;
	mutex_init(&info->lock);
	spin_lock_init(&info->state_lock);
	INIT_WORK(&info->work, xvmsg_work);
	dev_set_drvdata(&dev->dev, info);
	/* The virtio device below maps through us: 64-bit bus addresses. */
	info->old_dma_mask = dev->dev.dma_mask;
	info->old_coherent_mask = dev->dev.coherent_dma_mask;
	info->dma_mask = DMA_BIT_MASK(64);
	dev->dev.dma_mask = &info->dma_mask;
	dev->dev.coherent_dma_mask = DMA_BIT_MASK(64);
	info->dbg = debugfs_create_dir(dev_name(&dev->dev), xvmsg_dbg_root);
	debugfs_create_file("stats", 0444, info->dbg, info, &xvmsg_stats_fops);
	/* After a module reload or unbind the state is Closed: ask again. */
	restart_handshake(dev);
	return 0;
}

static void xvmsg_remove(struct xenbus_device *dev)
{
	struct xvmsg_info *info = dev_get_drvdata(&dev->dev);

	spin_lock(&info->state_lock);
	info->removing = true;
	spin_unlock(&info->state_lock);
	cancel_work_sync(&info->work);
	mutex_lock(&info->lock);
	xvmsg_teardown(info, true, "device removed");
	mutex_unlock(&info->lock);
	debugfs_remove(info->dbg);
	set_dma_ops(&dev->dev, NULL);
	dev->dev.dma_mask = info->old_dma_mask;
	dev->dev.coherent_dma_mask = info->old_coherent_mask;
	dev_set_drvdata(&dev->dev, NULL);
	synchronize_rcu();	/* a DMA op that still saw info is done with it */
	kfree(info);
}

static const struct xenbus_device_id xvmsg_ids[] = {
	{ XVMSG_XS_CLASS },
	{ "" }
};

static struct xenbus_driver xvmsg_driver = {
	.ids = xvmsg_ids,
	.probe = xvmsg_probe,
	.remove = xvmsg_remove,
	.otherend_changed = xvmsg_backend_changed,
	.not_essential = true,
	.driver = {
		.dev_groups = xvmsg_groups,
	},
};

static int __init xvmsg_init(void)
{
	int r;

	if (!xen_domain())
		return -ENODEV;
	/* Unbound: message work has no CPU to stay on, and since 7.x a queue
	 * that says neither WQ_UNBOUND nor WQ_PERCPU draws a warning. */
	xvmsg_wq = alloc_workqueue("xvmsg", WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!xvmsg_wq)
		return -ENOMEM;
	xvmsg_dbg_root = debugfs_create_dir("xvmsg", NULL);
	r = xenbus_register_frontend(&xvmsg_driver);
	if (r) {
		debugfs_remove(xvmsg_dbg_root);
		destroy_workqueue(xvmsg_wq);
		return r;
	}
	pr_info("xvmsg: virtio over Xen grants, default mode %s, timeout %u ms\n",
		xvmsg_mode_name(READ_ONCE(default_mode)), xvmsg_timeout_ms());
	return 0;
}

static void __exit xvmsg_exit(void)
{
	xenbus_unregister_driver(&xvmsg_driver);	/* removes every device */
	debugfs_remove(xvmsg_dbg_root);
	destroy_workqueue(xvmsg_wq);
}

module_init(xvmsg_init);
module_exit(xvmsg_exit);

MODULE_DESCRIPTION("xvmsg: virtio devices over Xen grants and event channels, backend restricted to a pool");
MODULE_AUTHOR("The xvmsg authors");
MODULE_LICENSE("GPL");
MODULE_ALIAS("xen:" XVMSG_XS_CLASS);
