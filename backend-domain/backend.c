// SPDX-License-Identifier: MIT
/*
 * The backend context: finds xvmsg devices in its xenstore directory, keeps
 * one connection per device (conn.c), and routes event-channel signals to
 * them through the port registry (registry.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <xvmsg/wire.h>

#include "core.h"

int xvb_backend_init(struct xvb_backend *be, struct xvb_bus *bus, struct xvb_evloop *loop,
		     struct xvb_log *log, const struct xvb_model_ops *const *models)
{
	memset(be, 0, sizeof(*be));
	be->bus = bus;
	be->loop = loop;
	be->log = log;
	be->models = models;
	be->pend_tail = &be->pend_head;
	be->pend_run.cb = xvb_conn_run_pending;
	be->pend_run.arg = be;
	be->msg_budget = XVB_MSG_BUDGET;
	be->msg_revs = XVMSG_MSG_REVS_ALL;
	be->chain_budget = XVB_CHAIN_BUDGET;
	be->attn_fd = -1;
	return 0;
}

void xvb_stats_read(const struct xvb_stats *s, struct xvb_stats *out)
{
	const uint64_t *in = (const uint64_t *)s;
	uint64_t *o = (uint64_t *)out;

	_Static_assert(sizeof(*s) % sizeof(uint64_t) == 0, "xvb_stats holds uint64_t only");
	for (size_t i = 0; i < sizeof(*s) / sizeof(uint64_t); i++)
		o[i] = __atomic_load_n(&in[i], __ATOMIC_RELAXED);
}

/* A queue thread has news (a ring lied): the loop thread acts on it. */
static void on_attention(void *arg, int fd, uint32_t events)
{
	struct xvb_backend *be = arg;
	struct xvb_conn *c;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: already taken */
	}
	for (c = be->conns; c; c = xvb_conn_next(c))
		xvb_conn_attention(c);
}

int xvb_backend_queue_threads(struct xvb_backend *be, unsigned int n)
{
	int rc;

	if (!n)
		return 0;
	be->qthreads = calloc(n, sizeof(*be->qthreads));
	if (!be->qthreads)
		return -ENOMEM;
	be->attn_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (be->attn_fd < 0)
		return -errno;
	rc = xvb_evloop_add(be->loop, be->attn_fd, EPOLLIN, on_attention, be);
	if (rc)
		return rc;
	for (be->nqthreads = 0; be->nqthreads < n; be->nqthreads++) {
		rc = xvb_qthread_create(&be->qthreads[be->nqthreads]);
		if (rc)
			return rc;
	}
	return 0;
}

void xvb_backend_event(void *arg, uint32_t port)
{
	struct xvb_backend *be = arg;
	struct xvb_conn *c;
	int q;

	c = xvb_port_lookup(be, port, &q);
	if (c)
		xvb_conn_event(c, q);
}

static struct xvb_conn *find_conn(struct xvb_backend *be, uint32_t feid, uint32_t devid)
{
	struct xvb_conn *c;

	for (c = be->conns; c; c = xvb_conn_next(c))
		if (xvb_conn_match(c, feid, devid))
			return c;
	return NULL;
}

static int parse_id(const char *s, uint32_t *out)
{
	uint32_t v;

	if (xvmsg_parse_u32(s, &v) || v > 0xffff)
		return -EINVAL;
	*out = v;
	return 0;
}

struct scan {
	struct xvb_backend *be;
	uint32_t feid;
	char path[160];
};

static int scan_dev(void *arg, const char *child)
{
	struct scan *s = arg;
	struct xvb_conn *c;
	uint32_t devid;
	int rc;

	if (parse_id(child, &devid)) {
		xvb_dbg(s->be->log, "ignoring %s/%s", s->path, child);
		return 0;
	}
	if (find_conn(s->be, s->feid, devid))
		return 0;
	rc = xvb_conn_create(s->be, s->feid, devid, &c);
	if (rc && rc != -EAGAIN)
		xvb_err(s->be->log, "device %s/%s: %s", s->path, child, strerror(-rc));
	return 0;
}

static int scan_front(void *arg, const char *child)
{
	struct scan *s = arg, sub = *s;

	if (parse_id(child, &sub.feid))
		return 0;
	snprintf(sub.path, sizeof(sub.path), "%s/%s", s->be->root, child);
	s->be->bus->ops->store_dir(s->be->bus, sub.path, scan_dev, &sub);
	return 0;
}

/* Devices whose backend dir the toolstack removed go away. */
static void reap(struct xvb_backend *be)
{
	struct xvb_conn *c, *next;

	for (c = be->conns; c; c = next) {
		next = xvb_conn_next(c);
		if (!xvb_conn_present(c))
			xvb_conn_destroy(c);
	}
}

static void rescan(struct xvb_backend *be)
{
	struct scan s = { .be = be };

	strcpy(s.path, be->root);
	be->bus->ops->store_dir(be->bus, be->root, scan_front, &s);
	reap(be);
}

/*
 * Whether a change at root + rel may add or remove a device.  The root, a
 * frontend's directory and a device's directory: yes (a removed directory
 * fires the watch with its own path).  A key inside the directory of a
 * device we serve: no, except its frontend key, whose absence makes the
 * device gone (xvb_conn_present).  Most of those changes are our own writes
 * (state, features); a rescan for each costs a directory listing per
 * frontend and a read per device, and with a slow xenstore (Xen 4.20 under
 * emulation) those kept the backend from its event channels for longer
 * than a frontend waits for an answer.  A key of a device we do not serve
 * yet: yes, the toolstack may just have finished writing it.
 */
static bool needs_rescan(struct xvb_backend *be, const char *rel)
{
	char fe[16], dev[16], key[64];
	uint32_t feid, devid;

	if (sscanf(rel, "/%15[^/]/%15[^/]/%63s", fe, dev, key) != 3)
		return true;
	if (parse_id(fe, &feid) || parse_id(dev, &devid) || !find_conn(be, feid, devid))
		return true;
	return strcmp(key, XVMSG_XS_FRONTEND) == 0;
}

void xvb_backend_watch(void *arg, const char *path)
{
	struct xvb_backend *be = arg;
	size_t n = strlen(be->root);
	struct xvb_conn *c, *next;

	if (be->stopping)
		return;
	if (strncmp(path, be->root, n) == 0 && (path[n] == '\0' || path[n] == '/')) {
		const char *leaf = strrchr(path, '/');

		if (leaf && strcmp(leaf + 1, XVMSG_XS_STATS_REQUEST) == 0) {
			for (c = be->conns; c; c = xvb_conn_next(c))
				if (xvb_conn_owns_backend_path(c, path))
					xvb_conn_publish_stats(c);
			return;
		}
		if (!needs_rescan(be, path + n))
			return;
		rescan(be);
		return;
	}
	for (c = be->conns; c; c = next) {
		next = xvb_conn_next(c);
		if (xvb_conn_owns_path(c, path))
			xvb_conn_changed(c);
	}
}

int xvb_backend_start(struct xvb_backend *be)
{
	int rc;

	snprintf(be->root, sizeof(be->root), "/local/domain/%u/backend/%s",
		 be->bus->ops->self_domid(be->bus), XVMSG_XS_CLASS);
	rc = be->bus->ops->store_watch(be->bus, be->root);
	if (rc)
		return rc;
	rescan(be);
	return 0;
}

bool xvb_backend_poll(struct xvb_backend *be)
{
	struct xvb_conn *c;
	bool any = false;

	for (c = be->conns; c; c = xvb_conn_next(c)) {
		if (be->polling)
			xvb_conn_quiet(c);
		any |= xvb_conn_poll(c);
	}
	return any;
}

void xvb_backend_quiet(struct xvb_backend *be)
{
	struct xvb_conn *c;

	be->polling = true;
	for (c = be->conns; c; c = xvb_conn_next(c))
		xvb_conn_quiet(c);
}

bool xvb_backend_arm(struct xvb_backend *be)
{
	struct xvb_conn *c;
	bool any = false;

	be->polling = false;
	for (c = be->conns; c; c = xvb_conn_next(c))
		any |= xvb_conn_arm(c);
	return any;
}

void xvb_backend_shutdown(struct xvb_backend *be)
{
	be->stopping = true;
	while (be->conns)
		xvb_conn_destroy(be->conns);
	xvb_evloop_cancel(be->loop, &be->pend_run);
	be->bus->ops->store_unwatch(be->bus, be->root);
	xvb_ports_free(be);
	while (be->nqthreads)
		xvb_qthread_destroy(be->qthreads[--be->nqthreads]);
	free(be->qthreads);
	be->qthreads = NULL;
	xvb_evloop_del_close(be->loop, &be->attn_fd);
}

/* One write for the whole dump, so a reader never sees part of it. */
void xvb_backend_dump_stats(struct xvb_backend *be, FILE *out)
{
	struct xvb_conn *c;
	size_t len = 0;
	char *buf = NULL;
	FILE *m = open_memstream(&buf, &len);

	if (!m)
		return;
	for (c = be->conns; c; c = xvb_conn_next(c))
		xvb_conn_dump(c, m);
	fclose(m);
	fflush(out);
	if (len && write(fileno(out), buf, len) < 0) {
		/* nowhere left to report it */
	}
	free(buf);
}
