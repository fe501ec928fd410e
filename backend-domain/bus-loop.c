// SPDX-License-Identifier: MIT
/*
 * The loopback bus: the xvb_bus interface on one Linux host (see
 * include/xvmsg/loop.h for the protocol).  This file plays the parts Xen and
 * the toolstack play on the Xen bus: it checks every map against the
 * driver's grant table and marks entries in use, maps only frames of memfd
 * regions the driver handed over, relays event channels over eventfds,
 * keeps the key/value store (loop-store.c) with a quota per guest, and
 * creates device directories when a driver attaches an export.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <xvmsg/loop.h>
#include <xvmsg/wire.h>

#include "bus.h"
#include "device.h"
#include "loop-store.h"

#define PAGE		XVMSG_PAGE_SIZE
#define MAX_REGIONS	64	/* held at once by one connection */
#define MAX_EVTCHNS	(XVMSG_MAX_QUEUES + 1) * 64
#define MAX_DEVS	256
#define MAX_GNT		(1u << 20)
#define MAX_STORE	100000	/* values in the store: a backstop, guests have quotas */
#define GNT_RESERVED	8

enum { K_LISTEN = 1, K_CLIENT, K_PORT, K_WAKE };
#define EPDATA(k, id)	(((uint64_t)(k) << 32) | (uint32_t)(id))

struct loop_gnt {		/* a driver's grant table; outlives the driver while mapped */
	int refs;
	struct xvmsg_loop_gnt *e;
	uint32_t n;
	uint16_t *pin_r, *pin_w;	/* our map counts per entry */
};

struct loop_region {
	uint64_t base, pages;
	int fd;
};

struct loop_evtchn {
	uint32_t port;
	int kick, irq;
	bool bound;
};

struct loop_dev {
	uint32_t devid;
	unsigned int export;
};

struct loop_client {
	struct loop_client *next;
	int sock;
	uint16_t domid;
	bool dead;
	struct loop_gnt *gnt;
	struct loop_region region[MAX_REGIONS];
	unsigned int nregions;
	struct loop_evtchn *ev;
	unsigned int nev;
	struct loop_dev dev[MAX_DEVS];
	unsigned int ndev;
	unsigned int nvmas;		/* mappings of its memory we hold (loop_map.vmas) */
	struct ls_account keys;		/* what it wrote into the store */
};

/* Descriptors a connection makes us hold, its quota's measure: a memfd per
 * region, two eventfds per channel, and two more per channel a device of
 * ours has bound (the port keeps its own copies). */
static unsigned int client_fds(const struct loop_client *c)
{
	unsigned int i, n = c->nregions + 2 * c->nev;

	for (i = 0; i < c->nev; i++)
		n += 2 * c->ev[i].bound;
	return n;
}

struct loop_map {
	struct loop_map *next;
	void *addr;
	unsigned int n;
	unsigned int vmas;	/* kernel mappings it made: one per run of frames */
	struct loop_client *owner;	/* whose quota it counts in; NULL once gone */
	bool writable;
	struct loop_gnt *gnt;	/* NULL: frame mapping */
	uint32_t ref[];
};

struct loop_port {
	bool used;
	int kick, irq;
	uint16_t domid;
	uint32_t remote;
};

struct loop_bus {
	struct xvb_bus bus;
	struct xvb_bus_events ev;
	const struct xvb_export *exports;
	unsigned int nexports;
	bool *export_busy;
	struct xvb_bus_caps caps;	/* map_frames: --full */
	unsigned int max_guest_fds;	/* per-connection quota (client_fds) */
	unsigned int max_guest_maps;	/* per-connection quota (loop_client.nvmas) */
	char sock_path[108];
	int epfd, lsock, wake;
	int spare;		/* kept open to refuse a connection when out of fds */
	bool listen_paused;	/* out of fds and no spare: not accepting */
	struct loop_client *clients;
	uint16_t next_domid;
	struct loop_map *maps;
	struct loop_port *port;
	uint32_t nports;
	struct ls_store *store;
	char **watch;
	size_t nwatch;
	char **pend;
	size_t npend, cappend;
	bool in_dispatch;
};

#define LB(b) ((struct loop_bus *)(b))

static char *xstrdup(const char *s)
{
	return strdup(s);
}

/* ---- store ---- */

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static void wake(struct loop_bus *lb)
{
	uint64_t one = 1;

	if (write(lb->wake, &one, sizeof(one)) < 0) {
		/* counter full: already awake */
	}
}

static void queue_watch(struct loop_bus *lb, const char *path)
{
	size_t i;

	for (i = 0; i < lb->nwatch; i++) {
		if (!under(path, lb->watch[i]))
			continue;
		if (lb->npend && strcmp(lb->pend[lb->npend - 1], path) == 0)
			return;
		if (lb->npend == lb->cappend) {
			size_t cap = lb->cappend ? 2 * lb->cappend : 64;
			char **p = realloc(lb->pend, cap * sizeof(*p));

			if (!p)
				return;
			lb->pend = p;
			lb->cappend = cap;
		}
		lb->pend[lb->npend] = xstrdup(path);
		if (lb->pend[lb->npend])
			lb->npend++;
		wake(lb);
		return;
	}
}

static struct loop_client *client_by_domid(struct loop_bus *lb, uint32_t domid)
{
	struct loop_client *c;

	for (c = lb->clients; c; c = c->next)
		if (c->domid == domid && !c->dead)
			return c;
	return NULL;
}

static int send_pkt(struct loop_client *c, uint32_t op, uint32_t seq, int32_t status,
		    const void *payload, size_t len)
{
	char buf[XVMSG_LOOP_MAX_PACKET];
	struct xvmsg_loop_hdr h = {
		.op = htole32(op), .len = htole32((uint32_t)len),
		.seq = htole32(seq), .status = htole32((uint32_t)status),
	};

	if (len > sizeof(buf) - sizeof(h))
		return -E2BIG;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), payload, len);
	if (send(c->sock, buf, sizeof(h) + len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		c->dead = true;		/* not reading, or gone: dropped after this round */
		return -errno;
	}
	return 0;
}

/* A domain or device id as the store spells it: decimal digits, no sign, no
 * leading zero, at most max; *end: the first byte after it. */
static int parse_id(const char *s, const char **end, uint32_t max, uint32_t *out)
{
	uint32_t v = 0;

	if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint32_t)(*s - '0');
		if (v > max)
			return -ERANGE;
	}
	*end = s;
	*out = v;
	return 0;
}

/* Writes to a driver's backend dirs are mirrored to that driver. */
static void forward(struct loop_bus *lb, const char *path, const char *val)
{
	char prefix[64], buf[600];
	const char *end;
	uint32_t fe;
	struct loop_client *c;
	size_t pl, vl;
	int n;

	n = snprintf(prefix, sizeof(prefix), "/local/domain/%u/backend/%s/",
		     XVMSG_LOOP_BACKEND_DOMID, XVMSG_XS_CLASS);
	if (strncmp(path, prefix, (size_t)n) || parse_id(path + n, &end, 0xffff, &fe) ||
	    *end != '/')
		return;
	c = client_by_domid(lb, fe);
	pl = strlen(path) + 1;
	vl = val ? strlen(val) + 1 : 0;
	if (!c || pl + vl > sizeof(buf))
		return;
	memcpy(buf, path, pl);
	if (val)
		memcpy(buf + pl, val, vl);
	send_pkt(c, XVMSG_LOOP_OP_STORE_EVENT, 0, 0, buf, pl + vl);
}

/* A value the store took away: watchers and the guest hear of it. */
static void st_removed(void *arg, const char *path)
{
	struct loop_bus *lb = arg;

	queue_watch(lb, path);
	forward(lb, path, NULL);
}

/* Set a key for acct's guest (NULL: the backend or our toolstack part). */
static int st_set(struct loop_bus *lb, const char *path, const char *val, struct ls_account *acct)
{
	int rc = ls_write(lb->store, path, val, acct);

	if (rc)
		return rc;
	queue_watch(lb, path);
	forward(lb, path, val);
	return 0;
}

static int st_rm(struct loop_bus *lb, const char *path)
{
	return ls_rm(lb->store, path, st_removed, lb);
}

static int l_store_read(struct xvb_bus *b, const char *path, char *buf, size_t len)
{
	const char *v = ls_read(LB(b)->store, path);
	size_t n;

	if (!v)
		return -ENOENT;
	n = strlen(v);
	if (n + 1 > len)
		return -E2BIG;
	memcpy(buf, v, n + 1);
	return 0;
}

static int l_store_write(struct xvb_bus *b, const char *path, const char *val)
{
	return st_set(LB(b), path, val, NULL);
}

static int l_store_rm(struct xvb_bus *b, const char *path)
{
	int rc = st_rm(LB(b), path);

	return rc == -ENOENT ? 0 : rc;
}

struct dir_names {
	char **name;
	size_t n;
	int err;
};

static int take_name(void *arg, const char *child)
{
	struct dir_names *d = arg;
	char **p = realloc(d->name, (d->n + 1) * sizeof(*p));

	if (!p || !(p[d->n] = strdup(child))) {
		if (p)
			d->name = p;
		d->err = -ENOMEM;
		return 1;
	}
	d->name = p;
	d->n++;
	return 0;
}

/* The names are copied first: fn may change the store (the core creates
 * devices while it scans). */
static int l_store_dir(struct xvb_bus *b, const char *path,
		       int (*fn)(void *arg, const char *child), void *arg)
{
	struct dir_names d = { 0 };
	size_t j;
	int rc = ls_dir(LB(b)->store, path, take_name, &d);

	if (rc > 0)
		rc = d.err;
	for (j = 0; j < d.n && !rc; j++)
		rc = fn(arg, d.name[j]);
	for (j = 0; j < d.n; j++)
		free(d.name[j]);
	free(d.name);
	return rc;
}

static int l_store_watch(struct xvb_bus *b, const char *path)
{
	struct loop_bus *lb = LB(b);
	char **w = realloc(lb->watch, (lb->nwatch + 1) * sizeof(*w));

	if (!w)
		return -ENOMEM;
	lb->watch = w;
	w[lb->nwatch] = xstrdup(path);
	if (!w[lb->nwatch])
		return -ENOMEM;
	lb->nwatch++;
	queue_watch(lb, path);		/* like xenstore: fires once when set */
	return 0;
}

static int l_store_unwatch(struct xvb_bus *b, const char *path)
{
	struct loop_bus *lb = LB(b);
	size_t i;

	for (i = 0; i < lb->nwatch; i++) {
		if (strcmp(lb->watch[i], path) == 0) {
			free(lb->watch[i]);
			lb->watch[i] = lb->watch[--lb->nwatch];
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- grants and memory ---- */

static void gnt_put(struct loop_gnt *g)
{
	if (!g || --g->refs)
		return;
	munmap(g->e, (size_t)g->n * sizeof(*g->e));
	free(g->pin_r);
	free(g->pin_w);
	free(g);
}

static const struct loop_region *region_of(const struct loop_client *c, uint64_t frame)
{
	unsigned int i;

	for (i = 0; i < c->nregions; i++)
		if (frame >= c->region[i].base && frame - c->region[i].base < c->region[i].pages)
			return &c->region[i];
	return NULL;
}

static void unpin(struct loop_gnt *g, uint32_t ref, bool writable)
{
	uint16_t *flags = &g->e[ref].flags;

	if (--g->pin_r[ref] == 0)
		__atomic_and_fetch(flags, (uint16_t)htole16(~XVMSG_GTF_READING), __ATOMIC_SEQ_CST);
	if (writable && --g->pin_w[ref] == 0)
		__atomic_and_fetch(flags, (uint16_t)htole16(~XVMSG_GTF_WRITING), __ATOMIC_SEQ_CST);
}

/* Check and pin one grant entry the way Xen does; returns its frame. */
static int pin(struct loop_gnt *g, uint64_t ref, bool writable, uint64_t *frame)
{
	uint16_t *fp, old, want;

	if (ref < GNT_RESERVED || ref >= g->n)
		return -EINVAL;
	fp = &g->e[ref].flags;
	old = __atomic_load_n(fp, __ATOMIC_ACQUIRE);
	do {
		uint16_t f = le16toh(old);

		if (!(f & XVMSG_GTF_PERMIT_ACCESS) ||
		    le16toh(__atomic_load_n(&g->e[ref].domid, __ATOMIC_RELAXED)) !=
		    XVMSG_LOOP_BACKEND_DOMID)
			return -EPERM;
		if (writable && (f & XVMSG_GTF_READONLY))
			return -EPERM;
		want = htole16(f | XVMSG_GTF_READING | (writable ? XVMSG_GTF_WRITING : 0));
	} while (!__atomic_compare_exchange_n(fp, &old, want, false, __ATOMIC_SEQ_CST,
					      __ATOMIC_ACQUIRE));
	/* Pinned: the granter can no longer revoke it.  Read the frame once. */
	*frame = le32toh(__atomic_load_n(&g->e[ref].frame, __ATOMIC_RELAXED));
	g->pin_r[ref]++;
	if (writable)
		g->pin_w[ref]++;
	return 0;
}

static int l_map(struct xvb_bus *b, uint32_t domid, enum xvb_space space, const uint64_t *ids,
		 unsigned int n, bool writable, void **addr)
{
	struct loop_bus *lb = LB(b);
	struct loop_client *c = client_by_domid(lb, domid);
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	const struct loop_region **reg = NULL;
	struct loop_map *m = NULL;
	uint64_t *frame = NULL;
	unsigned int i = 0, pinned = 0, j, runs = 0;
	char *base = MAP_FAILED;
	int rc;

	if (!c)
		return -ESRCH;
	if (n == 0 || n > 65536)
		return -EINVAL;
	if (space == XVB_SPACE_FRAME && !lb->caps.map_frames)
		return -EPERM;
	m = calloc(1, sizeof(*m) + n * sizeof(uint32_t));
	frame = calloc(n, sizeof(*frame));
	reg = calloc(n, sizeof(*reg));
	if (!m || !frame || !reg) {
		rc = -ENOMEM;
		goto err;
	}
	for (i = 0; i < n; i++) {
		if (space == XVB_SPACE_GRANT) {
			rc = pin(c->gnt, ids[i], writable, &frame[i]);
			if (rc)
				goto err;
			m->ref[i] = (uint32_t)ids[i];
			pinned++;
		} else {
			frame[i] = ids[i];
		}
		reg[i] = region_of(c, frame[i]);
		if (!reg[i]) {
			rc = -EFAULT;	/* not memory this backend was given */
			i++;
			goto err;
		}
	}
	/* Runs of consecutive frames of one region are mapped at once, each a
	 * mapping of the kernel's: the guest's quota counts them (the kernel's
	 * own limit, vm.max_map_count, is shared by every guest). */
	for (i = 0; i < n; i = j, runs++)
		for (j = i + 1; j < n && reg[j] == reg[i] && frame[j] == frame[j - 1] + 1; j++)
			;
	if (c->nvmas + runs > lb->max_guest_maps) {
		rc = -EDQUOT;
		goto err;
	}
	base = mmap(NULL, (size_t)n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		rc = -ENOMEM;
		goto err;
	}
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && reg[j] == reg[i] && frame[j] == frame[j - 1] + 1; j++)
			;
		if (mmap(base + (size_t)i * PAGE, (size_t)(j - i) * PAGE, prot,
			 MAP_SHARED | MAP_FIXED, reg[i]->fd,
			 (off_t)((frame[i] - reg[i]->base) * PAGE)) == MAP_FAILED) {
			rc = -ENOMEM;
			goto err;
		}
	}
	m->addr = base;
	m->n = n;
	m->vmas = runs;
	m->owner = c;
	c->nvmas += runs;
	m->writable = writable;
	if (space == XVB_SPACE_GRANT) {
		m->gnt = c->gnt;
		c->gnt->refs++;
	}
	m->next = lb->maps;
	lb->maps = m;
	free(frame);
	free(reg);
	*addr = base;
	return 0;

err:
	if (base != MAP_FAILED)
		munmap(base, (size_t)n * PAGE);
	for (j = 0; j < pinned; j++)
		unpin(c->gnt, m->ref[j], writable);
	free(m);
	free(frame);
	free(reg);
	return rc;
}

static int l_unmap(struct xvb_bus *b, void *addr, unsigned int n)
{
	struct loop_bus *lb = LB(b);
	struct loop_map **pp, *m;
	unsigned int i;

	for (pp = &lb->maps; (m = *pp); pp = &m->next) {
		if (m->addr != addr)
			continue;
		if (m->n != n)
			return -EINVAL;
		*pp = m->next;
		munmap(m->addr, (size_t)m->n * PAGE);
		if (m->owner)
			m->owner->nvmas -= m->vmas;
		if (m->gnt) {
			for (i = 0; i < m->n; i++)
				unpin(m->gnt, m->ref[i], m->writable);
			gnt_put(m->gnt);
		}
		free(m);
		return 0;
	}
	return -ENOENT;
}

/* ---- event channels ---- */

static int l_bind(struct xvb_bus *b, uint32_t domid, uint32_t remote, uint32_t *local)
{
	struct loop_bus *lb = LB(b);
	struct loop_client *c = client_by_domid(lb, domid);
	struct epoll_event e = { .events = EPOLLIN };
	struct loop_evtchn *ev = NULL;
	uint32_t p;
	unsigned int i;

	if (!c)
		return -ESRCH;
	for (i = 0; i < c->nev; i++)
		if (c->ev[i].port == remote)
			ev = &c->ev[i];
	if (!ev)
		return -ENOENT;
	if (ev->bound)
		return -EBUSY;
	if (client_fds(c) + 2 > lb->max_guest_fds)
		return -EDQUOT;
	for (p = 1; p < lb->nports && lb->port[p].used; p++)
		;
	if (p >= lb->nports) {
		uint32_t n = lb->nports ? 2 * lb->nports : 64;
		struct loop_port *np = realloc(lb->port, n * sizeof(*np));

		if (!np)
			return -ENOMEM;
		memset(np + lb->nports, 0, (n - lb->nports) * sizeof(*np));
		lb->port = np;
		if (p == 0)
			p = 1;
		lb->nports = n;
	}
	lb->port[p].kick = fcntl(ev->kick, F_DUPFD_CLOEXEC, 0);
	lb->port[p].irq = fcntl(ev->irq, F_DUPFD_CLOEXEC, 0);
	if (lb->port[p].kick < 0 || lb->port[p].irq < 0)
		goto err;
	e.data.u64 = EPDATA(K_PORT, p);
	if (epoll_ctl(lb->epfd, EPOLL_CTL_ADD, lb->port[p].kick, &e))
		goto err;
	lb->port[p].used = true;
	lb->port[p].domid = (uint16_t)domid;
	lb->port[p].remote = remote;
	ev->bound = true;
	*local = p;
	return 0;
err:
	if (lb->port[p].kick >= 0)
		close(lb->port[p].kick);
	if (lb->port[p].irq >= 0)
		close(lb->port[p].irq);
	return -EINVAL;
}

static int l_unbind(struct xvb_bus *b, uint32_t local)
{
	struct loop_bus *lb = LB(b);
	struct loop_client *c;
	struct loop_port *p;
	unsigned int i;

	if (local >= lb->nports || !lb->port[local].used)
		return -ENOENT;
	p = &lb->port[local];
	epoll_ctl(lb->epfd, EPOLL_CTL_DEL, p->kick, NULL);
	close(p->kick);
	close(p->irq);
	p->used = false;
	c = client_by_domid(lb, p->domid);
	for (i = 0; c && i < c->nev; i++)
		if (c->ev[i].port == p->remote)
			c->ev[i].bound = false;
	return 0;
}

static int l_notify(struct xvb_bus *b, uint32_t local)
{
	struct loop_bus *lb = LB(b);
	uint64_t one = 1;

	if (local >= lb->nports || !lb->port[local].used)
		return -ENOENT;
	if (write(lb->port[local].irq, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

/* ---- the toolstack part: ATTACH / DETACH ---- */

static void dev_paths(uint32_t fe, uint32_t devid, char *be, char *fe_path, size_t len)
{
	snprintf(be, len, "/local/domain/%u/backend/%s/%u/%u", XVMSG_LOOP_BACKEND_DOMID,
		 XVMSG_XS_CLASS, fe, devid);
	snprintf(fe_path, len, "/local/domain/%u/device/%s/%u", fe, XVMSG_XS_CLASS, devid);
}

static int kv(struct loop_bus *lb, const char *dir, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int kv(struct loop_bus *lb, const char *dir, const char *key, const char *fmt, ...)
{
	char path[256], val[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s", dir, key);
	return st_set(lb, path, val, NULL);
}

static int do_attach(struct loop_bus *lb, struct loop_client *c, const struct xvmsg_loop_attach *a)
{
	uint32_t devid = le32toh(a->devid), mode = le32toh(a->mode);
	uint32_t pool = le32toh(a->pool_pages);
	char be[160], fe[160];
	unsigned int i, x;

	if (!memchr(a->export_name, '\0', sizeof(a->export_name)))
		return -EINVAL;
	for (x = 0; x < lb->nexports && strcmp(lb->exports[x].name, a->export_name); x++)
		;
	if (x == lb->nexports)
		return -ENOENT;
	if (mode > XVMSG_MODE_FULL || pool > XVMSG_MAX_POOL_PAGES || devid > 0xffff)
		return -EINVAL;
	if (mode == XVMSG_MODE_FULL && !lb->caps.map_frames)
		return -EPERM;		/* as the core's xvb_mode_check() would say */
	for (i = 0; i < c->ndev; i++)
		if (c->dev[i].devid == devid)
			return -EEXIST;
	if (lb->export_busy[x])
		return -EBUSY;
	if (c->ndev == MAX_DEVS)
		return -ENOSPC;
	if (!pool)
		pool = XVMSG_DEFAULT_POOL_PAGES;
	dev_paths(c->domid, devid, be, fe, sizeof(be));
	kv(lb, fe, XVMSG_XS_BACKEND, "%s", be);
	kv(lb, fe, XVMSG_XS_BACKEND_ID, "%u", XVMSG_LOOP_BACKEND_DOMID);
	kv(lb, fe, XVMSG_XS_TYPE, "%s", lb->exports[x].type);
	kv(lb, fe, XVMSG_XS_STATE, "%d", XVMSG_STATE_INITIALISING);
	kv(lb, be, XVMSG_XS_FRONTEND_ID, "%u", c->domid);
	kv(lb, be, XVMSG_XS_TYPE, "%s", lb->exports[x].type);
	kv(lb, be, XVMSG_XS_PARAMS, "%s", lb->exports[x].params);
	kv(lb, be, XVMSG_XS_MODE, "%s", xvmsg_mode_name((enum xvmsg_mode)mode));
	kv(lb, be, XVMSG_XS_POOL_PAGES, "%u", pool);
	/* "frontend" last: the backend takes a device with it as complete. */
	if (kv(lb, be, XVMSG_XS_FRONTEND, "%s", fe)) {
		st_rm(lb, be);
		st_rm(lb, fe);
		return -ENOMEM;
	}
	lb->export_busy[x] = true;
	c->dev[c->ndev].devid = devid;
	c->dev[c->ndev].export = x;
	c->ndev++;
	return 0;
}

static void remove_dev(struct loop_bus *lb, struct loop_client *c, unsigned int i)
{
	char be[160], fe[160];

	dev_paths(c->domid, c->dev[i].devid, be, fe, sizeof(be));
	st_rm(lb, be);
	st_rm(lb, fe);
	lb->export_busy[c->dev[i].export] = false;
	c->dev[i] = c->dev[--c->ndev];
}

static int do_detach(struct loop_bus *lb, struct loop_client *c, uint32_t devid)
{
	unsigned int i;

	for (i = 0; i < c->ndev; i++) {
		if (c->dev[i].devid == devid) {
			remove_dev(lb, c, i);
			return 0;
		}
	}
	return -ENOENT;
}

/* A key name a guest may write: xenstore's characters, without '/'. */
static bool valid_key(const char *k)
{
	if (!*k)
		return false;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
		      (*k >= '0' && *k <= '9') || *k == '-' || *k == '_' || *k == '@'))
			return false;
	return true;
}

/* A guest writes one key directly in the dir of a device it attached:
 * /local/domain/<its domid>/device/xvmsg/<devid>/<key>, the devid spelt
 * as the toolstack spells it, charged to its quota. */
static int do_write(struct loop_bus *lb, struct loop_client *c, const char *p, size_t len)
{
	const char *path = p, *val, *rest;
	char prefix[96];
	uint32_t devid;
	unsigned int i;
	int n;

	if (len == 0 || p[len - 1] != '\0')
		return -EINVAL;
	val = memchr(p, '\0', len);
	if ((size_t)(val - p) + 1 >= len)
		return -EINVAL;		/* no value */
	val++;
	if (strlen(path) > 200 || strlen(val) > 255)
		return -E2BIG;
	n = snprintf(prefix, sizeof(prefix), "/local/domain/%u/device/%s/", c->domid,
		     XVMSG_XS_CLASS);
	if (strncmp(path, prefix, (size_t)n) || parse_id(path + n, &rest, 0xffff, &devid) ||
	    *rest != '/' || !valid_key(rest + 1))
		return -EACCES;		/* exactly one key below a device dir */
	for (i = 0; i < c->ndev && c->dev[i].devid != devid; i++)
		;
	if (i == c->ndev)
		return -EACCES;
	return st_set(lb, path, val, &c->keys);
}

/* ---- driver connections ---- */

static void close_fds(int *fds, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static bool is_eventfd(int fd)
{
	char link[64], path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	return strcmp(link, "anon_inode:[eventfd]") == 0;
}

/* The guest owns every memfd it hands us and could shrink it at any time:
 * our next access to a page past the new end would be SIGBUS, the end of
 * every guest's backend.  Accept only memfds sealed against shrinking. */
static bool shrink_sealed(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	return seals >= 0 && (seals & F_SEAL_SHRINK);
}

static int do_hello(struct loop_bus *lb, struct loop_client *c, const void *p, size_t len,
		    int *fds, unsigned int nfds, struct xvmsg_loop_hello_reply *r)
{
	struct xvmsg_loop_hello h;
	struct loop_gnt *g;
	struct stat st;
	uint32_t n;

	if (c->gnt)
		return -EALREADY;
	if (len < sizeof(h) || nfds != 1)
		return -EINVAL;
	memcpy(&h, p, sizeof(h));
	n = le32toh(h.gnt_entries);
	if (le32toh(h.version) != XVMSG_LOOP_VERSION)
		return -EPROTONOSUPPORT;
	if (n <= GNT_RESERVED || n > MAX_GNT || !shrink_sealed(fds[0]) || fstat(fds[0], &st) ||
	    (uint64_t)st.st_size < (uint64_t)n * sizeof(struct xvmsg_loop_gnt))
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->refs = 1;
	g->n = n;
	g->pin_r = calloc(n, sizeof(uint16_t));
	g->pin_w = calloc(n, sizeof(uint16_t));
	g->e = mmap(NULL, (size_t)n * sizeof(*g->e), PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
	if (!g->pin_r || !g->pin_w || g->e == MAP_FAILED) {
		if (g->e != MAP_FAILED)
			munmap(g->e, (size_t)n * sizeof(*g->e));
		free(g->pin_r);
		free(g->pin_w);
		free(g);
		return -ENOMEM;
	}
	c->gnt = g;
	if (lb->next_domid >= 0x7ff0)
		lb->next_domid = 2;
	while (client_by_domid(lb, lb->next_domid))
		lb->next_domid++;
	c->domid = lb->next_domid++;
	r->version = htole32(XVMSG_LOOP_VERSION);
	r->frontend_domid = htole16(c->domid);
	r->backend_domid = htole16(XVMSG_LOOP_BACKEND_DOMID);
	return 0;
}

static int do_region(struct loop_bus *lb, struct loop_client *c, const void *p, size_t len,
		     int *fds, unsigned int nfds)
{
	struct xvmsg_loop_region r;
	uint64_t base, pages;
	struct stat st;
	unsigned int i;

	if (len < sizeof(r) || nfds != 1)
		return -EINVAL;
	memcpy(&r, p, sizeof(r));
	base = le64toh(r.base_gfn);
	pages = le64toh(r.pages);
	if (!pages || pages > (1ULL << 28) || base > (1ULL << 40))
		return -EINVAL;
	if (!shrink_sealed(fds[0]) || fstat(fds[0], &st) || (uint64_t)st.st_size < pages * PAGE)
		return -EINVAL;
	for (i = 0; i < c->nregions; i++)
		if (base < c->region[i].base + c->region[i].pages &&
		    c->region[i].base < base + pages)
			return -EEXIST;
	if (client_fds(c) + 1 > lb->max_guest_fds)
		return -EDQUOT;
	if (c->nregions == MAX_REGIONS)
		return -ENOSPC;
	c->region[c->nregions].base = base;
	c->region[c->nregions].pages = pages;
	c->region[c->nregions].fd = fds[0];
	c->nregions++;
	fds[0] = -1;		/* taken */
	return 0;
}

static int do_evtchn(struct loop_bus *lb, struct loop_client *c, const void *p, size_t len,
		     int *fds, unsigned int nfds)
{
	struct xvmsg_loop_evtchn e;
	struct loop_evtchn *ev;
	uint32_t port;
	unsigned int i;

	if (len < sizeof(e) || nfds != 2)
		return -EINVAL;
	memcpy(&e, p, sizeof(e));
	port = le32toh(e.port);
	if (port == 0)
		return -EINVAL;
	for (i = 0; i < c->nev; i++)
		if (c->ev[i].port == port)
			return -EEXIST;
	if (client_fds(c) + 2 > lb->max_guest_fds)
		return -EDQUOT;
	if (c->nev >= MAX_EVTCHNS)
		return -ENOSPC;
	if (!is_eventfd(fds[0]) || !is_eventfd(fds[1]))
		return -EINVAL;
	/* The file status flags are shared with the driver: make sure a read
	 * or write of ours can never block. */
	if (fcntl(fds[0], F_SETFL, O_NONBLOCK) || fcntl(fds[1], F_SETFL, O_NONBLOCK))
		return -EINVAL;
	ev = realloc(c->ev, (c->nev + 1) * sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	c->ev = ev;
	ev[c->nev].port = port;
	ev[c->nev].kick = fds[0];
	ev[c->nev].irq = fds[1];
	ev[c->nev].bound = false;
	c->nev++;
	fds[0] = fds[1] = -1;
	return 0;
}

/*
 * UNREGION: like a guest taking memory back from a grant-mapped backend,
 * except that mappings made before stay valid (each mmap holds its own
 * reference to the memfd) until the device that made them unmaps them; only
 * new maps of these frames fail.  The descriptor and the slot are freed now.
 */
static int do_unregion(struct loop_client *c, const void *p, size_t len, unsigned int nfds)
{
	struct xvmsg_loop_unregion u;
	uint64_t base;
	unsigned int i;

	if (len < sizeof(u) || nfds)
		return -EINVAL;
	memcpy(&u, p, sizeof(u));
	base = le64toh(u.base_gfn);
	for (i = 0; i < c->nregions && c->region[i].base != base; i++)
		;
	if (i == c->nregions)
		return -ENOENT;
	close(c->region[i].fd);
	c->region[i] = c->region[--c->nregions];
	return 0;
}

/*
 * EVTCHN_CLOSE: refused with -EBUSY while a device we serve has the channel
 * bound (its port holds duplicates of the eventfds and may notify at any
 * time); the driver closes the device first.  Otherwise our two eventfds go.
 */
static int do_evtchn_close(struct loop_client *c, const void *p, size_t len, unsigned int nfds)
{
	struct xvmsg_loop_evtchn e;
	uint32_t port;
	unsigned int i;

	if (len < sizeof(e) || nfds)
		return -EINVAL;
	memcpy(&e, p, sizeof(e));
	port = le32toh(e.port);
	for (i = 0; i < c->nev && c->ev[i].port != port; i++)
		;
	if (i == c->nev)
		return -ENOENT;
	if (c->ev[i].bound)
		return -EBUSY;
	close(c->ev[i].kick);
	close(c->ev[i].irq);
	c->ev[i] = c->ev[--c->nev];
	return 0;
}

static void client_free(struct loop_bus *lb, struct loop_client *c)
{
	struct loop_map *m;
	unsigned int i;

	while (c->ndev)
		remove_dev(lb, c, 0);
	/* Its devices' dirs went with them; anything else it wrote goes now. */
	ls_rm_account(lb->store, &c->keys, st_removed, lb);
	/* Its devices unmapped everything when they went; should anything be
	 * left, it no longer counts for anybody. */
	for (m = lb->maps; m; m = m->next)
		if (m->owner == c)
			m->owner = NULL;
	epoll_ctl(lb->epfd, EPOLL_CTL_DEL, c->sock, NULL);
	close(c->sock);
	for (i = 0; i < c->nregions; i++)
		close(c->region[i].fd);
	for (i = 0; i < c->nev; i++) {
		close(c->ev[i].kick);
		close(c->ev[i].irq);
	}
	free(c->ev);
	gnt_put(c->gnt);
	free(c);
	if (lb->listen_paused) {
		struct epoll_event e = { .events = EPOLLIN, .data.u64 = EPDATA(K_LISTEN, 0) };

		if (lb->spare < 0)
			lb->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (!epoll_ctl(lb->epfd, EPOLL_CTL_ADD, lb->lsock, &e))
			lb->listen_paused = false;
	}
}

/*
 * A dead client is a destroyed guest domain.  First its devices go (the
 * watches make the core unmap everything of it), then, after the watches have
 * run, its socket closes: by the time the driver sees EOF nothing of it is
 * mapped any more, as when Xen tears down a domain's grant mappings.
 */
static void detach_dead(struct loop_bus *lb)
{
	struct loop_client *c;

	for (c = lb->clients; c; c = c->next)
		while (c->dead && c->ndev)
			remove_dev(lb, c, 0);
}

static void free_dead(struct loop_bus *lb)
{
	struct loop_client **pp = &lb->clients, *c;

	while ((c = *pp)) {
		if (c->dead) {
			*pp = c->next;
			client_free(lb, c);
		} else {
			pp = &c->next;
		}
	}
}

/* Would opening one more descriptor fail for lack of room?  (open_fd: any
 * descriptor we have open, to duplicate.) */
static bool out_of_fds(int open_fd)
{
	int fd = fcntl(open_fd, F_DUPFD_CLOEXEC, 0);

	if (fd >= 0) {
		close(fd);
		return false;
	}
	return errno == EMFILE || errno == ENFILE;
}

static void client_input(struct loop_bus *lb, struct loop_client *c)
{
	char buf[XVMSG_LOOP_MAX_PACKET];
	char cbuf[CMSG_SPACE(XVMSG_LOOP_MAX_FDS * sizeof(int))];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	int fds[XVMSG_LOOP_MAX_FDS], rc = -EINVAL;
	unsigned int nfds = 0, i;
	struct xvmsg_loop_hdr h;
	struct xvmsg_loop_hello_reply hr;
	struct cmsghdr *cm;
	size_t rlen = 0;
	uint32_t op, len;
	ssize_t n;

	n = recvmsg(c->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	for (cm = CMSG_FIRSTHDR(&mh); n >= 0 && cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			unsigned int k = (unsigned int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));

			for (i = 0; i < k; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				if (nfds < XVMSG_LOOP_MAX_FDS)
					fds[nfds++] = fd;
				else
					close(fd);
			}
		}
	}
	if (n <= 0 || (mh.msg_flags & MSG_TRUNC) || (size_t)n < sizeof(h)) {
		close_fds(fds, nfds);
		c->dead = true;		/* EOF, error, or garbage: the domain is gone */
		return;
	}
	memcpy(&h, buf, sizeof(h));
	op = le32toh(h.op);
	len = le32toh(h.len);
	if (len != (size_t)n - sizeof(h)) {
		close_fds(fds, nfds);
		c->dead = true;
		return;
	}
	if (mh.msg_flags & MSG_CTRUNC) {
		/* Not every descriptor reached us: more than a request carries,
		 * or we are out of descriptors (maybe because of another guest).
		 * The packet itself is whole, so refuse this request and keep the
		 * connection: its other devices are not at fault. */
		rc = out_of_fds(c->sock) ? -EMFILE : -EINVAL;
	} else if (op != XVMSG_LOOP_OP_HELLO && !c->gnt) {
		rc = -EPROTO;
	} else {
		const char *p = buf + sizeof(h);

		switch (op) {
		case XVMSG_LOOP_OP_HELLO:
			rc = do_hello(lb, c, p, len, fds, nfds, &hr);
			rlen = rc ? 0 : sizeof(hr);
			break;
		case XVMSG_LOOP_OP_REGION:
			rc = do_region(lb, c, p, len, fds, nfds);
			break;
		case XVMSG_LOOP_OP_EVTCHN:
			rc = do_evtchn(lb, c, p, len, fds, nfds);
			break;
		case XVMSG_LOOP_OP_UNREGION:
			rc = do_unregion(c, p, len, nfds);
			break;
		case XVMSG_LOOP_OP_EVTCHN_CLOSE:
			rc = do_evtchn_close(c, p, len, nfds);
			break;
		case XVMSG_LOOP_OP_ATTACH:
			if (len >= sizeof(struct xvmsg_loop_attach)) {
				struct xvmsg_loop_attach a;

				memcpy(&a, p, sizeof(a));
				rc = do_attach(lb, c, &a);
			}
			break;
		case XVMSG_LOOP_OP_DETACH:
			if (len >= sizeof(struct xvmsg_loop_devid)) {
				struct xvmsg_loop_devid d;

				memcpy(&d, p, sizeof(d));
				rc = do_detach(lb, c, le32toh(d.devid));
			}
			break;
		case XVMSG_LOOP_OP_WRITE:
			rc = do_write(lb, c, p, len);
			break;
		default:
			rc = -EOPNOTSUPP;
		}
	}
	close_fds(fds, nfds);	/* any not taken */
	send_pkt(c, op | XVMSG_LOOP_REPLY, le32toh(h.seq), rc, &hr, rlen);
}

static void accept_client(struct loop_bus *lb)
{
	struct epoll_event e = { .events = EPOLLIN };
	struct loop_client *c;
	int fd = accept4(lb->lsock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0 && (errno == EMFILE || errno == ENFILE) && lb->spare >= 0) {
		/* Out of descriptors: the connection would stay queued and the
		 * listening socket readable, and we would spin.  Use the spare
		 * to take it and hang up at once; the driver sees the refusal. */
		close(lb->spare);
		fd = accept4(lb->lsock, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			close(fd);
		lb->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
		return;
	}
	if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
		/* No spare either (it could not be reopened): stop listening
		 * until a guest leaves, rather than spin on a readable socket. */
		lb->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (lb->spare < 0 && !epoll_ctl(lb->epfd, EPOLL_CTL_DEL, lb->lsock, NULL))
			lb->listen_paused = true;
		return;
	}
	if (fd < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->sock = fd;
	c->domid = 0;		/* assigned by HELLO */
	e.data.u64 = EPDATA(K_CLIENT, fd);
	if (epoll_ctl(lb->epfd, EPOLL_CTL_ADD, fd, &e)) {
		close(fd);
		free(c);
		return;
	}
	c->next = lb->clients;
	lb->clients = c;
}

static const struct xvb_bus_caps *l_caps(struct xvb_bus *b)
{
	return &LB(b)->caps;
}

static int l_get_fd(struct xvb_bus *b)
{
	return LB(b)->epfd;
}

static uint32_t l_self_domid(struct xvb_bus *b)
{
	return XVMSG_LOOP_BACKEND_DOMID;
}

static void deliver_watches(struct loop_bus *lb)
{
	size_t i;

	/* Callbacks may queue more; take the batch first. */
	while (lb->npend) {
		char **batch = lb->pend;
		size_t n = lb->npend;

		lb->pend = NULL;
		lb->npend = lb->cappend = 0;
		for (i = 0; i < n; i++) {
			lb->ev.watch(lb->ev.ctx, batch[i]);
			free(batch[i]);
		}
		free(batch);
	}
}

static int l_dispatch(struct xvb_bus *b)
{
	struct loop_bus *lb = LB(b);
	struct epoll_event evs[32];
	int n, i, rounds = 0;

	do {
		n = epoll_wait(lb->epfd, evs, 32, 0);
		if (n < 0)
			return errno == EINTR ? 0 : -errno;
		for (i = 0; i < n; i++) {
			uint32_t kind = (uint32_t)(evs[i].data.u64 >> 32);
			uint32_t id = (uint32_t)evs[i].data.u64;
			struct loop_client *c;
			uint64_t v;

			switch (kind) {
			case K_LISTEN:
				accept_client(lb);
				break;
			case K_CLIENT:
				for (c = lb->clients; c && c->sock != (int)id; c = c->next)
					;
				if (c && !c->dead)
					client_input(lb, c);
				break;
			case K_PORT:
				if (id < lb->nports && lb->port[id].used &&
				    read(lb->port[id].kick, &v, sizeof(v)) == sizeof(v))
					lb->ev.event(lb->ev.ctx, id);
				break;
			case K_WAKE:	/* the events themselves are in lb->pend */
				if (read(lb->wake, &v, sizeof(v)) < 0) {
					/* drained already */
				}
				break;
			}
		}
		detach_dead(lb);
		deliver_watches(lb);
		detach_dead(lb);	/* a send may have failed meanwhile */
		deliver_watches(lb);
		free_dead(lb);
	} while (n == 32 && ++rounds < 8);
	return 0;
}

static void l_destroy(struct xvb_bus *b)
{
	struct loop_bus *lb = LB(b);
	size_t i;

	while (lb->clients) {
		struct loop_client *c = lb->clients;

		lb->clients = c->next;
		client_free(lb, c);
	}
	while (lb->maps) {
		struct loop_map *m = lb->maps;

		l_unmap(b, m->addr, m->n);
	}
	for (i = 1; i < lb->nports; i++)
		if (lb->port[i].used)
			l_unbind(b, (uint32_t)i);
	ls_destroy(lb->store);
	for (i = 0; i < lb->nwatch; i++)
		free(lb->watch[i]);
	for (i = 0; i < lb->npend; i++)
		free(lb->pend[i]);
	free(lb->watch);
	free(lb->pend);
	free(lb->port);
	free(lb->export_busy);
	close(lb->lsock);
	unlink(lb->sock_path);
	close(lb->wake);
	if (lb->spare >= 0)
		close(lb->spare);
	close(lb->epfd);
	free(lb);
}

unsigned int xvb_loop_default_guest_fds(unsigned long nofile)
{
	unsigned long q = nofile / 8;

	return q < 16 ? 16 : q > 1024 ? 1024 : (unsigned int)q;
}

unsigned int xvb_loop_default_guest_maps(unsigned long max_map_count)
{
	unsigned long q = (max_map_count ? max_map_count : 65530) / 8;

	return q < 256 ? 256 : q > (1u << 24) ? 1u << 24 : (unsigned int)q;
}

unsigned long xvb_loop_max_map_count(void)
{
	unsigned long v = 0;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");

	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

static const struct xvb_bus_ops loop_ops = {
	.name = "loopback",
	.destroy = l_destroy,
	.get_fd = l_get_fd,
	.dispatch = l_dispatch,
	.self_domid = l_self_domid,
	.caps = l_caps,
	.store_read = l_store_read,
	.store_write = l_store_write,
	.store_rm = l_store_rm,
	.store_dir = l_store_dir,
	.store_watch = l_store_watch,
	.store_unwatch = l_store_unwatch,
	.map = l_map,
	.unmap = l_unmap,
	.evtchn_bind = l_bind,
	.evtchn_unbind = l_unbind,
	.evtchn_notify = l_notify,
};

int xvb_loop_create(const struct xvb_loop_opts *opts, const struct xvb_bus_events *ev,
		    struct xvb_bus **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct epoll_event e = { .events = EPOLLIN };
	struct loop_bus *lb;
	int rc;

	if (!opts->socket_path || strlen(opts->socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	lb = calloc(1, sizeof(*lb));
	if (!lb)
		return -ENOMEM;
	lb->bus.ops = &loop_ops;
	lb->ev = *ev;
	lb->exports = opts->exports;
	lb->nexports = opts->nr_exports;
	lb->caps.map_frames = opts->allow_full;
	lb->caps.cache_frames = true;
	if (!opts->allow_full)
		snprintf(lb->caps.no_frames, sizeof(lb->caps.no_frames),
			 "full mode is off in this backend (it takes --full)");
	lb->max_guest_fds = opts->max_guest_fds;
	lb->max_guest_maps = opts->max_guest_maps ? opts->max_guest_maps :
			     xvb_loop_default_guest_maps(xvb_loop_max_map_count());
	if (!lb->max_guest_fds) {
		struct rlimit lim;

		lb->max_guest_fds = xvb_loop_default_guest_fds(
			getrlimit(RLIMIT_NOFILE, &lim) ? 1024 : lim.rlim_cur);
	}
	lb->next_domid = 2;
	lb->lsock = lb->wake = -1;
	lb->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	snprintf(lb->sock_path, sizeof(lb->sock_path), "%s", opts->socket_path);
	lb->export_busy = calloc(opts->nr_exports + 1, sizeof(bool));
	lb->epfd = epoll_create1(EPOLL_CLOEXEC);
	{
		struct ls_limits lim = {
			.keys = opts->max_guest_keys ? opts->max_guest_keys : XVB_LOOP_GUEST_KEYS,
			.bytes = opts->max_guest_store_bytes ? opts->max_guest_store_bytes
							     : XVB_LOOP_GUEST_STORE_BYTES,
			.total = MAX_STORE,
		};

		rc = ls_create(&lim, &lb->store);
	}
	if (!lb->export_busy || lb->epfd < 0 || rc) {
		rc = -ENOMEM;
		goto err;
	}
	lb->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	lb->lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lb->wake < 0 || lb->lsock < 0) {
		rc = -errno;
		goto err;
	}
	strcpy(sa.sun_path, opts->socket_path);
	unlink(opts->socket_path);	/* a stale socket from a killed backend */
	rc = bind(lb->lsock, (struct sockaddr *)&sa, sizeof(sa));
	if (rc && errno == ENOENT) {
		/* e.g. /run/xvmsg does not exist yet: make the last component */
		char dir[sizeof(sa.sun_path)], *slash;

		strcpy(dir, opts->socket_path);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			mkdir(dir, 0755);
		}
		rc = bind(lb->lsock, (struct sockaddr *)&sa, sizeof(sa));
	}
	if (rc || listen(lb->lsock, 16)) {
		rc = -errno;
		goto err;
	}
	e.data.u64 = EPDATA(K_LISTEN, 0);
	if (epoll_ctl(lb->epfd, EPOLL_CTL_ADD, lb->lsock, &e)) {
		rc = -errno;
		goto err;
	}
	e.data.u64 = EPDATA(K_WAKE, 0);
	if (epoll_ctl(lb->epfd, EPOLL_CTL_ADD, lb->wake, &e)) {
		rc = -errno;
		goto err;
	}
	*out = &lb->bus;
	return 0;
err:
	if (lb->lsock >= 0)
		close(lb->lsock);
	if (lb->wake >= 0)
		close(lb->wake);
	if (lb->spare >= 0)
		close(lb->spare);
	if (lb->epfd >= 0)
		close(lb->epfd);
	ls_destroy(lb->store);
	free(lb->export_busy);
	free(lb);
	return rc;
}
