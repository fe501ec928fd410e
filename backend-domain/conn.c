// SPDX-License-Identifier: MIT
/*
 * One xvmsg xenstore device: the XenbusState handshake with its frontend,
 * mapping the granted message page and binding the event channels, and the
 * device's calls and turns on the backend's pending list.  The message ring
 * itself is conn-ring.c (as xen-blkback splits xenbus.c from blkback.c).
 *
 * Backend side of the handshake (keys in include/xvmsg/xenbus.h):
 *   toolstack creates both dirs -> we create the model, publish max-queues
 *   and max-pool-pages, go InitWait -> frontend publishes msg-ref, pool and
 *   ports, goes Initialised -> we map and bind, go Connected.  Frontend
 *   Closing/Closed or gone -> we unmap, unbind, reset the device, go Closed;
 *   frontend back to Initialising -> we go InitWait again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xvmsg/pool.h>
#include <xvmsg/wire.h>

#include "conn.h"
#include "fault.h"

struct xvb_conn *xvb_conn_next(const struct xvb_conn *c)
{
	return c->next;
}

bool xvb_conn_match(const struct xvb_conn *c, uint32_t feid, uint32_t devid)
{
	return c->feid == feid && c->devid == devid;
}

bool xvb_conn_owns_path(const struct xvb_conn *c, const char *path)
{
	size_t n = strlen(c->fepath);

	return c->fepath[0] && strncmp(path, c->fepath, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/');
}

/* ---- xenstore helpers ---- */

static int rd(struct xvb_conn *c, const char *dir, const char *key, char *buf, size_t len);

bool xvb_conn_present(struct xvb_conn *c)
{
	char buf[8];

	return rd(c, c->bepath, XVMSG_XS_FRONTEND, buf, sizeof(buf)) != -ENOENT;
}

static int rd(struct xvb_conn *c, const char *dir, const char *key, char *buf, size_t len)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, key);
	return c->be->bus->ops->store_read(c->be->bus, path, buf, len);
}

static int rd_u32(struct xvb_conn *c, const char *dir, const char *key, uint32_t *out)
{
	char buf[32];
	int rc = rd(c, dir, key, buf, sizeof(buf));

	return rc ? rc : xvmsg_parse_u32(buf, out);
}

static int wr(struct xvb_conn *c, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int wr(struct xvb_conn *c, const char *key, const char *fmt, ...)
{
	char path[256], val[2048];	/* the stats line is the longest */
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(val)) {
		/* never a cut value: a counter without its number */
		xvb_err(c->be->log, "%s: value of %s too long (%d bytes): not written", c->name, key, n);
		return -E2BIG;
	}
	snprintf(path, sizeof(path), "%s/%s", c->bepath, key);
	return c->be->bus->ops->store_write(c->be->bus, path, val);
}

static void set_state(struct xvb_conn *c, int state)
{
	if (c->state == state)
		return;
	xvb_dbg(c->be->log, "%s: state %d -> %d", c->name, c->state, state);
	c->state = state;
	wr(c, XVMSG_XS_STATE, "%d", state);
}

/* A new attempt starts (we go InitWait): the error of an earlier one must
 * not be taken for its answer. */
static void clear_error(struct xvb_conn *c)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", c->bepath, XVMSG_XS_HOTPLUG_ERROR);
	c->be->bus->ops->store_rm(c->be->bus, path);
}

static void fail(struct xvb_conn *c, const char *why)
{
	xvb_err(c->be->log, "%s: %s", c->name, why);
	wr(c, XVMSG_XS_HOTPLUG_ERROR, "%s", why);
	set_state(c, XVMSG_STATE_CLOSED);
}

static void disconnect(struct xvb_conn *c);
static unsigned int remote_queues(const struct xvb_conn *c);

/* The message ring itself is corrupt: nothing more can be said over it. */
static void ring_broken(struct xvb_conn *c, const char *why)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "message ring corrupt (%s): disconnected", why);
	disconnect(c);
	fail(c, msg);
}

/* ---- calls and turns ----
 *
 * A call serves one device: its message ring and the queues named, within
 * the budgets (XVB_MSG_BUDGET messages, XVB_CHAIN_BUDGET chains).  A call
 * that leaves work behind puts the device on the backend's pending list;
 * the event loop gives every device there one more call per round, after
 * that round's notifications, until it has no work left.  A notification
 * for a device already on the list only adds to its next turn: a guest
 * that notifies all the time gets no more than one call per round. */

static void pend(struct xvb_conn *c)
{
	struct xvb_backend *be = c->be;

	if (c->pend_on)
		return;
	c->pend_on = true;
	c->pend_next = NULL;
	*be->pend_tail = c;
	be->pend_tail = &c->pend_next;
	xvb_evloop_defer(be->loop, &be->pend_run);
}

static void unpend(struct xvb_conn *c)
{
	struct xvb_backend *be = c->be;
	struct xvb_conn **p;

	c->pend_msgs = false;
	c->pend_q = 0;
	if (!c->pend_on)
		return;
	c->pend_on = false;
	for (p = &be->pend_head; *p; p = &(*p)->pend_next) {
		if (*p == c) {
			*p = c->pend_next;
			if (be->pend_tail == &c->pend_next)
				be->pend_tail = p;
			return;
		}
	}
	for (p = &be->pend_round; *p; p = &(*p)->pend_next) {
		if (*p == c) {
			*p = c->pend_next;
			return;
		}
	}
}

/* True when it got something done: a message handled or a chain taken. */
static bool serve(struct xvb_conn *c, bool msgs, uint64_t queues)
{
	uint64_t msgs0 = c->stats.msgs_in, n;
	const char *why = "";
	unsigned int q;

	if (c->fault)
		xvb_fault_b2d(c->fault, c->msg, c->b2d_prod);
	c->pend_msgs = false;
	xvb_vdev_budget(&c->vdev, c->be->chain_budget);
	if (msgs && xvb_conn_ring_process(c, &why))
		ring_broken(c, why);
	for (q = 0; c->connected && q < c->vdev.nvqs; q++)
		if (queues & (1ULL << q))
			xvb_vdev_kick(&c->vdev, q);
	c->pend_q = xvb_vdev_budget_end(&c->vdev);
	n = c->stats.msgs_in - msgs0;
	if (n > c->stats.max_msgs_call)
		c->stats.max_msgs_call = n;
	xvb_stat_max(&c->stats.max_chains_call, c->vdev.call_most);
	if (c->connected && (c->pend_msgs || c->pend_q))
		pend(c);
	else
		unpend(c);
	return n || c->vdev.call_taken;
}

void xvb_conn_event(struct xvb_conn *c, int q)
{
	XVB_STAT_ADD(c->stats.notify_in, 1);
	if (!c->connected)
		return;
	if (c->pend_on) {
		/* Its turn comes: the work waits for it. */
		if (q < 0)
			c->pend_msgs = true;
		else if ((unsigned int)q < c->vdev.nvqs)
			c->pend_q |= 1ULL << q;
		return;
	}
	serve(c, q < 0, q < 0 ? 0 : 1ULL << q);
}

void xvb_conn_run_pending(void *arg)
{
	struct xvb_backend *be = arg;
	struct xvb_conn *c;

	/* This turn: the list as it is; devices that run out of budget again
	 * go to the end of a new one, for the next round. */
	be->pend_round = be->pend_head;
	be->pend_head = NULL;
	be->pend_tail = &be->pend_head;
	while ((c = be->pend_round)) {
		be->pend_round = c->pend_next;
		c->pend_next = NULL;
		c->pend_on = false;
		if (c->connected)
			serve(c, c->pend_msgs, c->pend_q);
		else
			unpend(c);
	}
}

/* ---- connect / disconnect ---- */

static void unbind_all(struct xvb_conn *c)
{
	struct xvb_bus *bus = c->be->bus;

	while (c->nvq_ports) {
		unsigned int q = --c->nvq_ports;

		if (c->qs[q].chan) {
			bus->ops->chan_unbind(bus, c->qs[q].chan);
			c->qs[q].chan = NULL;
			c->vdev.vq[q].remote = false;
			continue;
		}
		xvb_port_unregister(c->be, c->vq_port[q]);
		bus->ops->evtchn_unbind(bus, c->vq_port[q]);
	}
	__atomic_store_n(&c->attn_q, 0, __ATOMIC_RELAXED);
	if (c->msg_bound) {
		xvb_port_unregister(c->be, c->msg_port);
		bus->ops->evtchn_unbind(bus, c->msg_port);
		c->msg_bound = false;
	}
}

static void disconnect(struct xvb_conn *c)
{
	unpend(c);
	if (!c->connected)
		return;
	xvb_vdev_stop_queues(&c->vdev);	/* queue threads read c->connected */
	c->connected = false;
	if (c->fault)
		xvb_fault_disconnected(c->fault);
	xvb_vdev_reset(&c->vdev);
	xvb_vdev_set_mapcache(&c->vdev, NULL);
	xvb_mc_fini(&c->mc);
	unbind_all(c);
	c->be->bus->ops->unmap(c->be->bus, c->msg, 1);
	XVB_STAT_ADD(c->stats.unmap_calls, 1);
	XVB_STAT_ADD(c->stats.unmap_pages, 1);
	c->msg = NULL;
	xvb_conn_ring_stop(c);
	xvb_info(c->be->log, "%s: disconnected", c->name);
}

static int bind_port(struct xvb_conn *c, uint32_t remote, int q, uint32_t *local)
{
	struct xvb_bus *bus = c->be->bus;
	int rc = bus->ops->evtchn_bind(bus, c->feid, remote, local);

	if (rc)
		return rc;
	rc = xvb_port_register(c->be, *local, c, q);
	if (rc)
		bus->ops->evtchn_unbind(bus, *local);
	return rc;
}

/* The bus could not give a queue a channel of its own for want of
 * resources (on Xen each costs an event channel device fd), not because
 * the port is bad: the loop's thread can still serve the queue. */
static bool chan_shortage(int rc)
{
	return rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM || rc == -ENOSPC || rc == -EAGAIN;
}

/* A queue's own event channel: on a queue thread where the backend has
 * them, the model can move queues there and the bus can give the channel
 * an fd of its own; with --fault the queues stay on the loop's thread
 * (the lies are told from there), and so does a queue whose channel the
 * bus has no resources for (it shares the bus's, as without threads). */
static int bind_queue(struct xvb_conn *c, uint32_t remote, unsigned int q)
{
	struct xvb_backend *be = c->be;
	struct xvb_bus *bus = be->bus;
	struct xvb_qserve *s = &c->qs[q];
	int rc;

	if (!be->nqthreads || !c->ops->queue_loop || !bus->ops->chan_bind || c->fault)
		return bind_port(c, remote, (int)q, &c->vq_port[q]);
	rc = bus->ops->chan_bind(bus, c->feid, remote, &s->chan);
	if (chan_shortage(rc)) {
		s->chan = NULL;
		xvb_warn(be->log, "%s: queue %u stays on the loop thread: no channel of its own (%s)",
			 c->name, q, strerror(-rc));
		return bind_port(c, remote, (int)q, &c->vq_port[q]);
	}
	if (rc)
		return rc;
	s->c = c;
	s->q = q;
	s->t = be->qthreads[be->next_qthread++ % be->nqthreads];
	c->vdev.vq[q].remote = true;
	return 0;
}

/* "1,2" for a revision mask. */
static void revs_str(uint32_t mask, char *buf, size_t len)
{
	size_t n = 0;
	unsigned int r;

	buf[0] = '\0';
	for (r = XVMSG_MSG_REV_MIN; r <= XVMSG_MSG_REV_MAX && n < len; r++)
		if (mask & (1u << r))
			n += (size_t)snprintf(buf + n, len - n, "%s%u", n ? "," : "", r);
}

/*
 * Announce the message layout revisions we speak (before InitWait).  Only
 * revision 1: no key, exactly as a backend before revisions; a key an
 * earlier instance left goes.
 */
static void announce_revisions(struct xvb_conn *c)
{
	struct xvb_bus *bus = c->be->bus;
	char revs[32], path[256];

	if (c->be->msg_revs == 1u << XVMSG_MSG_REV_1) {
		snprintf(path, sizeof(path), "%s/%s", c->bepath, XVMSG_XS_MSG_REVISIONS);
		bus->ops->store_rm(bus, path);
		snprintf(path, sizeof(path), "%s/%s", c->bepath, XVMSG_XS_TRANSPORT_FEATURES);
		bus->ops->store_rm(bus, path);
		return;
	}
	revs_str(c->be->msg_revs, revs, sizeof(revs));
	wr(c, XVMSG_XS_MSG_REVISIONS, "%s", revs);
	wr(c, XVMSG_XS_TRANSPORT_FEATURES, "%u", VMSG_TF_STRICT_CONFIG_GENERATION);
}

/* The layout revision the frontend chose (msg-revision; absent: 1), if we
 * speak it: 0 and *rev, or -EPROTONOSUPPORT with why saying so. */
static int frontend_revision(struct xvb_conn *c, unsigned int *rev, char *why, size_t whylen)
{
	char revs[32];
	uint32_t v;
	int rc = rd_u32(c, c->fepath, XVMSG_XS_MSG_REVISION, &v);

	if (rc == -ENOENT)
		v = XVMSG_MSG_REV_1;
	else if (rc)
		v = 0;
	if (xvmsg_rev_known(v) && (c->be->msg_revs & (1u << v))) {
		*rev = v;
		return 0;
	}
	revs_str(c->be->msg_revs, revs, sizeof(revs));
	if (rc == -ENOENT)
		snprintf(why, whylen, "frontend writes no %s, so it speaks virtio-msg layout "
			 "revision 1 only; this backend speaks %s (--msg-revision)",
			 XVMSG_XS_MSG_REVISION, revs);
	else
		snprintf(why, whylen, "frontend chose virtio-msg layout revision %s%u; this "
			 "backend speaks %s (--msg-revision)", rc ? "(not a number) " : "", v,
			 revs);
	return -EPROTONOSUPPORT;
}

static int connect_frontend(struct xvb_conn *c, char *why, size_t whylen)
{
	struct xvb_bus *bus = c->be->bus;
	uint32_t msg_ref, port, pool_ref = 0, pool_pages = 0, nq = 0, i;
	unsigned int rev = XVMSG_MSG_REV_1;
	char mode[16], key[32];
	uint64_t ref;
	void *page;
	int rc;

#define BAD(...) do { snprintf(why, whylen, __VA_ARGS__); return rc ? rc : -EINVAL; } while (0)
	if ((rc = frontend_revision(c, &rev, why, whylen)))
		return rc;
	rc = rd(c, c->fepath, XVMSG_XS_MODE, mode, sizeof(mode));
	if (rc == 0 && strcmp(mode, xvmsg_mode_name(c->mode)))
		BAD("frontend uses mode '%s', toolstack set '%s'", mode, xvmsg_mode_name(c->mode));
	if ((rc = rd_u32(c, c->fepath, XVMSG_XS_MSG_REF, &msg_ref)))
		BAD("frontend key %s missing or not a number", XVMSG_XS_MSG_REF);
	if ((rc = rd_u32(c, c->fepath, XVMSG_XS_EVTCHN, &port)))
		BAD("frontend key %s missing or not a number", XVMSG_XS_EVTCHN);
	if (c->mode == XVMSG_MODE_POOL) {
		if ((rc = rd_u32(c, c->fepath, XVMSG_XS_POOL_REF, &pool_ref)) ||
		    (rc = rd_u32(c, c->fepath, XVMSG_XS_POOL_PAGES, &pool_pages)))
			BAD("frontend keys pool-ref/pool-pages missing or not numbers");
		if (pool_pages < c->min_pool || pool_pages > c->max_pool)
			BAD("frontend pool of %u pages outside %u..%u (a %s needs at least %u)",
			    pool_pages, c->min_pool, c->max_pool, c->ops->type, c->min_pool);
	}
	rc = rd_u32(c, c->fepath, XVMSG_XS_NUM_QUEUES, &nq);
	if (rc == -ENOENT)
		nq = 0;		/* every queue notifies in band */
	else if (rc || nq > c->vdev.nvqs)
		BAD("frontend num-queues must be 0..%u", c->vdev.nvqs);

	ref = msg_ref;
	rc = bus->ops->map(bus, c->feid, XVB_SPACE_GRANT, &ref, 1, true, &page);
	if (rc)
		BAD("cannot map message page (grant %u): %s", msg_ref, strerror(-rc));
	XVB_STAT_ADD(c->stats.map_calls, 1);
	XVB_STAT_ADD(c->stats.map_pages, 1);
	c->msg = page;
	rc = bind_port(c, port, -1, &c->msg_port);
	if (rc) {
		snprintf(why, whylen, "cannot bind event channel %u: %s", port, strerror(-rc));
		goto err_unmap;
	}
	c->msg_bound = true;
	for (i = 0; i < nq; i++) {
		uint32_t p;

		snprintf(key, sizeof(key), XVMSG_XS_VQ_EVTCHN_FMT, i);
		rc = rd_u32(c, c->fepath, key, &p);
		if (rc) {
			snprintf(why, whylen, "frontend key %s missing or not a number", key);
			goto err_unbind;
		}
		rc = bind_queue(c, p, i);
		if (rc) {
			snprintf(why, whylen, "cannot bind event channel %u: %s", p, strerror(-rc));
			goto err_unbind;
		}
		c->nvq_ports++;
	}
	rc = xvb_mc_init(&c->mc, bus, &c->stats, c->feid, c->mode, pool_ref, pool_pages);
	if (rc) {
		snprintf(why, whylen, "bad pool description");
		goto err_unbind;
	}
	xvb_vdev_set_mapcache(&c->vdev, &c->mc);
	c->vdev.msg_rev = rev;
	xvb_conn_ring_start(c);
	c->connected = true;
	if (c->fault)
		xvb_fault_connected(c->fault, &c->vdev, c->b2d_prod);
	xvb_info(c->be->log, "%s: connected, mode %s%s%.0u%s, %u queue channels "
		 "(%u on queue threads), message layout revision %u", c->name,
		 xvmsg_mode_name(c->mode), c->mode == XVMSG_MODE_POOL ? " (" : "",
		 c->mode == XVMSG_MODE_POOL ? pool_pages : 0,
		 c->mode == XVMSG_MODE_POOL ? " pages)" : "", c->nvq_ports, remote_queues(c), rev);
	return 0;

err_unbind:
	unbind_all(c);
err_unmap:
	bus->ops->unmap(bus, c->msg, 1);
	c->msg = NULL;
	return rc ? rc : -EINVAL;
#undef BAD
}

/* A frontend that closes before it connected may say why in its own error
 * key (no common message layout revision): into our log with it. */
static void frontend_gave_up(struct xvb_conn *c)
{
	char err[200];

	if (c->state == XVMSG_STATE_INITWAIT &&
	    rd(c, c->fepath, XVMSG_XS_HOTPLUG_ERROR, err, sizeof(err)) == 0)
		xvb_err(c->be->log, "%s: frontend gave up: %s", c->name, err);
}

void xvb_conn_changed(struct xvb_conn *c)
{
	uint32_t fe_state = XVMSG_STATE_CLOSED;
	char why[160];

	if (rd_u32(c, c->fepath, XVMSG_XS_STATE, &fe_state))
		fe_state = XVMSG_STATE_CLOSED;	/* frontend gone or garbage */
	if (c->failed)
		return;
	switch (fe_state) {
	case XVMSG_STATE_INITIALISING:
		if (c->state == XVMSG_STATE_CLOSED || c->state == XVMSG_STATE_CLOSING) {
			disconnect(c);
			clear_error(c);
			set_state(c, XVMSG_STATE_INITWAIT);
		}
		break;
	case XVMSG_STATE_INITIALISED:
	case XVMSG_STATE_CONNECTED:
		if (c->state != XVMSG_STATE_INITWAIT)
			break;
		if (fe_state == XVMSG_STATE_CONNECTED && !c->ever_connected) {
			/* Connected to an earlier backend (one that died): its
			 * rings and device state are not ours.  Make it start over:
			 * it closes, then comes back through Initialising. */
			xvb_info(c->be->log, "%s: frontend was connected to an earlier backend; "
				 "asking it to reconnect", c->name);
			set_state(c, XVMSG_STATE_CLOSING);
			set_state(c, XVMSG_STATE_CLOSED);
			break;
		}
		if (connect_frontend(c, why, sizeof(why))) {
			fail(c, why);
			break;
		}
		if (c->fault)
			xvb_fault_mapped(c->fault);
		clear_error(c);		/* an earlier failure */
		set_state(c, XVMSG_STATE_CONNECTED);
		c->ever_connected = true;
		serve(c, true, 0);	/* it may have queued requests already */
		break;
	case XVMSG_STATE_CLOSING:
		/* Closed already: this is another change in the frontend's
		 * directory (the watch covers it all), not a new close.  Going
		 * through Closing again would tell a frontend that has moved on
		 * to Initialising and waits for InitWait that we failed. */
		if (c->state == XVMSG_STATE_CLOSED)
			break;
		frontend_gave_up(c);
		disconnect(c);
		set_state(c, XVMSG_STATE_CLOSING);
		set_state(c, XVMSG_STATE_CLOSED);
		break;
	default:	/* Closed, Unknown, missing, nonsense */
		frontend_gave_up(c);
		disconnect(c);
		if (c->state == XVMSG_STATE_CONNECTED)
			set_state(c, XVMSG_STATE_CLOSING);
		set_state(c, XVMSG_STATE_CLOSED);
		break;
	}
}

int xvb_conn_create(struct xvb_backend *be, uint32_t feid, uint32_t devid, struct xvb_conn **out)
{
	const struct xvb_vdev_transport *tp = &xvb_conn_transport;
	void *tp_ctx;
	struct xvb_model_env env;
	char type[32], params[256], mode[16];
	struct xvb_conn *c;
	uint32_t v;
	int rc;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->be = be;
	c->feid = feid;
	c->devid = devid;
	c->state = XVMSG_STATE_UNKNOWN;
	snprintf(c->bepath, sizeof(c->bepath), "%s/%u/%u", be->root, feid, devid);
	if (rd(c, c->bepath, XVMSG_XS_FRONTEND, c->fepath, sizeof(c->fepath)) ||
	    rd(c, c->bepath, XVMSG_XS_TYPE, type, sizeof(type))) {
		free(c);
		return -EAGAIN;		/* the toolstack is still writing */
	}
	if (rd(c, c->bepath, XVMSG_XS_PARAMS, params, sizeof(params)))
		params[0] = '\0';
	snprintf(c->name, sizeof(c->name), "%.16s%u(dom%u)", type, devid, feid);
	c->next = be->conns;
	be->conns = c;
	*out = c;

	c->mode = XVMSG_MODE_POOL;
	if (rd(c, c->bepath, XVMSG_XS_MODE, mode, sizeof(mode)) == 0 &&
	    xvmsg_parse_mode(mode, &c->mode)) {
		c->failed = true;
		fail(c, "toolstack key mode must be pool, grant or full");
		return 0;
	}
	{
		char why[160];

		if (xvb_mode_check(be->bus, c->mode, why, sizeof(why))) {
			c->failed = true;
			fail(c, why);
			return 0;
		}
	}

	c->max_pool = XVMSG_MAX_POOL_PAGES;
	if (rd_u32(c, c->bepath, XVMSG_XS_POOL_PAGES, &v) == 0 && v && v <= XVMSG_MAX_POOL_PAGES)
		c->max_pool = v;
	c->ops = xvb_model_find(be->models, type);
	if (!c->ops) {
		c->failed = true;
		fail(c, "unknown device type");
		return 0;
	}
	c->min_pool = xvmsg_min_pool_pages(c->ops->type);
	if (c->mode == XVMSG_MODE_POOL && c->max_pool < c->min_pool) {
		char why[160];

		snprintf(why, sizeof(why),
			 "toolstack key pool-pages %u is below the minimum of %u pages for %s",
			 c->max_pool, c->min_pool, c->ops->type);
		c->failed = true;
		fail(c, why);
		return 0;
	}
	if (xvb_fault_create(be->fault, be->loop, be->log, c->name, &c->fault)) {
		c->failed = true;
		fail(c, "out of memory");
		return 0;
	}
	env.loop = be->loop;
	env.log = be->log;
	env.name = c->name;
	env.aio = &be->aio;
	rc = c->ops->create(params, &env, &c->priv);
	if (rc) {
		c->failed = true;
		fail(c, "device parameters rejected (see the backend's log)");
		return 0;
	}
	tp_ctx = c;
	if (c->fault)
		xvb_fault_wrap(c->fault, &tp, &tp_ctx);
	xvb_vdev_init(&c->vdev, c->ops, c->priv, tp, tp_ctx, &c->stats, be->log, c->name);
	wr(c, XVMSG_XS_MAX_QUEUES, "%u", c->vdev.nvqs);
	wr(c, XVMSG_XS_MAX_POOL, "%u", c->max_pool);
	announce_revisions(c);
	be->bus->ops->store_watch(be->bus, c->fepath);
	clear_error(c);			/* left by an earlier backend instance */
	set_state(c, XVMSG_STATE_INITWAIT);
	xvb_info(be->log, "%s: new device, mode %s, frontend %s", c->name, xvmsg_mode_name(c->mode),
		 c->fepath);
	xvb_conn_changed(c);
	return 0;
}

bool xvb_conn_poll(struct xvb_conn *c)
{
	uint64_t work;

	if (!c->connected || c->pend_on)
		return false;
	work = xvb_vdev_work(&c->vdev);
	return work && serve(c, false, work);
}

void xvb_conn_quiet(struct xvb_conn *c)
{
	xvb_vdev_quiet(&c->vdev);
}

bool xvb_conn_arm(struct xvb_conn *c)
{
	uint64_t work = xvb_vdev_arm(&c->vdev);

	if (!c->connected || !work)
		return false;
	if (c->pend_on) {
		c->pend_q |= work;	/* its turn comes */
		return true;
	}
	return serve(c, false, work);
}

void xvb_conn_quiesce(struct xvb_conn *c)
{
	xvb_vdev_stop_queues(&c->vdev);	/* their I/O is answered from here */
	if (c->priv && c->ops->quiesce)
		c->ops->quiesce(c->priv);
}

void xvb_conn_destroy(struct xvb_conn *c)
{
	struct xvb_conn **pp;

	for (pp = &c->be->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	xvb_conn_quiesce(c);
	disconnect(c);
	if (c->fepath[0] && c->ops)
		c->be->bus->ops->store_unwatch(c->be->bus, c->fepath);
	if (c->priv)
		c->ops->destroy(c->priv);
	xvb_fault_destroy(c->fault);
	xvb_info(c->be->log, "%s: removed", c->name);
	free(c);
}

/* Heap the backend holds for this device: the connection, the queues'
 * bookkeeping, the model's (the stats line's mem_bytes). */
static size_t conn_mem(const struct xvb_conn *c)
{
	return sizeof(*c) + xvb_vdev_mem(&c->vdev);
}

/* Queues served on queue threads now. */
static unsigned int remote_queues(const struct xvb_conn *c)
{
	unsigned int q, n = 0;

	for (q = 0; q < c->nvq_ports; q++)
		n += c->qs[q].chan != NULL;
	return n;
}

/* The model's own counters (" name=value..."), or "". */
static void model_stats(const struct xvb_conn *c, char *buf, size_t len)
{
	buf[0] = '\0';
	if (c->priv && c->ops && c->ops->stats)
		c->ops->stats(c->priv, buf, len);
}

/* The toolstack wrote stats-request: answer with the counters in "stats"
 * and echo the request in "stats-seq" so it knows the answer is fresh. */
void xvb_conn_publish_stats(struct xvb_conn *c)
{
	struct xvb_stats snap, *s = &snap;
	char seq[32], model[1024];

	if (rd(c, c->bepath, XVMSG_XS_STATS_REQUEST, seq, sizeof(seq)))
		return;
	xvb_stats_read(&c->stats, s);
	model_stats(c, model, sizeof(model));
	wr(c, XVMSG_XS_STATS, "maps=%" PRIu64 " map_pages=%" PRIu64 " unmaps=%" PRIu64
	   " unmap_pages=%" PRIu64 " notify_in=%" PRIu64 " notify_out=%" PRIu64
	   " msgs_in=%" PRIu64 " msgs_out=%" PRIu64 " msgs_bad=%" PRIu64
	   " requests=%" PRIu64 " bad_chains=%" PRIu64 " bytes_out=%" PRIu64
	   " bytes_in=%" PRIu64 " mem_bytes=%zu queue_threads=%u%s", s->map_calls, s->map_pages,
	   s->unmap_calls, s->unmap_pages, s->notify_in, s->notify_out, s->msgs_in, s->msgs_out,
	   s->msgs_bad, s->requests, s->bad_chains, s->bytes_out, s->bytes_in, conn_mem(c),
	   remote_queues(c), model);
	wr(c, XVMSG_XS_STATS_SEQ, "%s", seq);
}

bool xvb_conn_owns_backend_path(const struct xvb_conn *c, const char *path)
{
	size_t n = strlen(c->bepath);

	return strncmp(path, c->bepath, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

void xvb_conn_dump(const struct xvb_conn *c, FILE *out)
{
	struct xvb_stats snap, *s = &snap;
	char model[1024];

	xvb_stats_read(&c->stats, s);
	model_stats(c, model, sizeof(model));
	fprintf(out, "%s mode=%s state=%d maps=%" PRIu64 " map_pages=%" PRIu64
		" unmaps=%" PRIu64 " unmap_pages=%" PRIu64 " notify_in=%" PRIu64
		" notify_out=%" PRIu64 " msgs_in=%" PRIu64 " msgs_out=%" PRIu64
		" msgs_bad=%" PRIu64 " requests=%" PRIu64 " bad_chains=%" PRIu64
		" bytes_out=%" PRIu64 " bytes_in=%" PRIu64 " max_msgs_call=%" PRIu64
		" max_chains_call=%" PRIu64 " mem_bytes=%zu queue_threads=%u%s\n",
		c->name, xvmsg_mode_name(c->mode), c->state, s->map_calls, s->map_pages,
		s->unmap_calls, s->unmap_pages, s->notify_in, s->notify_out, s->msgs_in,
		s->msgs_out, s->msgs_bad, s->requests, s->bad_chains, s->bytes_out, s->bytes_in,
		s->max_msgs_call, s->max_chains_call, conn_mem(c), remote_queues(c), model);
}
