// SPDX-License-Identifier: MIT
/*
 * The loopback bus: the xvb_bus interface on one Linux host (see
 * include/xvmsg/loop.h for the protocol).  This file has the ops table,
 * the dispatch of the bus's epoll set, creation and teardown; the parts Xen
 * and the toolstack play on the Xen bus have a file each (loop-priv.h):
 * the socket server, the toolstack, the store and its watches, the grant
 * tables and memory, the event channels.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/un.h>

#include "evloop.h"
#include "loop-priv.h"

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
	return loop_st_set(LB(b), path, val, NULL);
}

static int l_store_rm(struct xvb_bus *b, const char *path)
{
	int rc = loop_st_rm(LB(b), path);

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
			uint32_t kind = (uint32_t)(evs[i].data.u64 >> 32) & 0xff;
			uint32_t id = (uint32_t)evs[i].data.u64;
			struct loop_client *c;
			uint64_t v;

			switch (kind) {
			case K_LISTEN:
				loop_accept(lb);
				break;
			case K_CLIENT:
				for (c = lb->clients; c && c->sock != (int)id; c = c->next)
					;
				if (c && !c->dead)
					loop_client_input(lb, c);
				break;
			case K_PORT:
				if (id < lb->nports && lb->port[id].used &&
				    loop_evtchn_drain(lb->port[id].fd))
					lb->ev.event(lb->ev.ctx, id);
				break;
			case K_IDLE:	/* nobody has it bound: dropped */
				loop_evtchn_idle(lb, (uint16_t)(evs[i].data.u64 >> 40), id);
				break;
			case K_WAKE:	/* the events themselves are in lb->pend */
				if (read(lb->wake, &v, sizeof(v)) < 0) {
					/* drained already */
				}
				break;
			}
		}
		loop_detach_dead(lb);
		loop_watch_deliver(lb);
		loop_detach_dead(lb);	/* a send may have failed meanwhile */
		loop_watch_deliver(lb);
		loop_free_dead(lb);
	} while (n == 32 && ++rounds < 8);
	return 0;
}

static void l_destroy(struct xvb_bus *b)
{
	struct loop_bus *lb = LB(b);
	size_t i;

	while (lb->clients) {
		struct loop_client *c = lb->clients;

		pthread_mutex_lock(&lb->map_lock);
		lb->clients = c->next;
		pthread_mutex_unlock(&lb->map_lock);
		loop_client_free(lb, c);
	}
	while (lb->maps) {
		struct loop_map *m = lb->maps;

		loop_unmap(b, m->addr, m->n);
	}
	for (i = 1; i < lb->nports; i++)
		if (lb->port[i].used)
			loop_evtchn_unbind(b, (uint32_t)i);
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
	pthread_mutex_destroy(&lb->map_lock);
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
	.store_watch = loop_store_watch,
	.store_unwatch = loop_store_unwatch,
	.map = loop_map,
	.unmap = loop_unmap,
	.evtchn_bind = loop_evtchn_bind,
	.evtchn_unbind = loop_evtchn_unbind,
	.evtchn_notify = loop_evtchn_notify,
	.chan_bind = loop_chan_bind,
	.chan_unbind = loop_chan_unbind,
	.chan_fd = loop_chan_fd,
	.chan_ack = loop_chan_ack,
	.chan_notify = loop_chan_notify,
};

int xvb_loop_create(const struct xvb_loop_opts *opts, const struct xvb_bus_events *ev,
		    struct xvb_bus **out)
{
	struct epoll_event e = { .events = EPOLLIN };
	struct sockaddr_un sa;
	struct loop_bus *lb;
	int rc;

	if (!opts->socket_path || strlen(opts->socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	lb = calloc(1, sizeof(*lb));
	if (!lb)
		return -ENOMEM;
	lb->bus.ops = &loop_ops;
	lb->ev = *ev;
	pthread_mutex_init(&lb->map_lock, NULL);
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
	lb->spare = xvb_spare_open();
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
	if (lb->wake < 0) {
		rc = -errno;
		goto err;
	}
	rc = loop_listen(lb, opts->socket_path);
	if (rc)
		goto err;
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
	pthread_mutex_destroy(&lb->map_lock);
	free(lb);
	return rc;
}
