/* SPDX-License-Identifier: MIT */
/*
 * epoll event loop.  Each watched fd has a registration; epoll hands back a
 * pointer to it.  A callback may add or delete fds (its own included) while a
 * round is dispatched: a deleted registration is marked removed, so an event
 * for it later in the same round is skipped, and it is freed only when the
 * round ends.  Modifying an fd to 0 events takes it out of the epoll set
 * (epoll would otherwise still report EPOLLHUP/EPOLLERR) until it is modified
 * to non-zero events again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evloop.h"

#define XVB_EVLOOP_MAX_EVENTS 32

struct xvb_evreg {
	struct xvb_evreg *next;
	int fd;
	uint32_t events;	/* 0 = paused: not in the epoll set */
	bool removed;
	xvb_fd_cb cb;
	void *arg;
};

struct xvb_evloop {
	int epfd;
	bool dispatching;
	struct xvb_evreg *regs;		/* live registrations */
	struct xvb_evreg *dead;		/* removed during dispatch, freed after */
	struct xvb_evdefer *defer, **defer_tail;	/* armed, for the next round */
	struct xvb_evdefer *running;	/* this round's, not run yet */
};

int xvb_evloop_create(struct xvb_evloop **out)
{
	struct xvb_evloop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return -ENOMEM;
	loop->defer_tail = &loop->defer;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int err = -errno;

		free(loop);
		return err;
	}
	*out = loop;
	return 0;
}

static void free_list(struct xvb_evreg *r)
{
	while (r) {
		struct xvb_evreg *next = r->next;

		free(r);
		r = next;
	}
}

void xvb_evloop_destroy(struct xvb_evloop *loop)
{
	if (!loop)
		return;
	free_list(loop->regs);
	free_list(loop->dead);
	close(loop->epfd);
	free(loop);
}

static struct xvb_evreg **find(struct xvb_evloop *loop, int fd)
{
	struct xvb_evreg **p;

	for (p = &loop->regs; *p; p = &(*p)->next)
		if ((*p)->fd == fd)
			return p;
	return NULL;
}

static int ctl(struct xvb_evloop *loop, int op, struct xvb_evreg *r, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = r };

	return epoll_ctl(loop->epfd, op, r->fd, &ev) < 0 ? -errno : 0;
}

int xvb_evloop_add(struct xvb_evloop *loop, int fd, uint32_t events, xvb_fd_cb cb, void *arg)
{
	struct xvb_evreg *r;
	int err;

	if (fd < 0 || !cb)
		return -EINVAL;
	if (find(loop, fd))
		return -EEXIST;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct xvb_evreg){ .fd = fd, .events = events, .cb = cb, .arg = arg };
	if (events) {
		err = ctl(loop, EPOLL_CTL_ADD, r, events);
		if (err) {
			free(r);
			return err;
		}
	}
	r->next = loop->regs;
	loop->regs = r;
	return 0;
}

int xvb_evloop_mod(struct xvb_evloop *loop, int fd, uint32_t events)
{
	struct xvb_evreg **p = find(loop, fd), *r;
	int err = 0;

	if (!p)
		return -ENOENT;
	r = *p;
	if (events == r->events)
		return 0;
	if (!events)
		err = ctl(loop, EPOLL_CTL_DEL, r, 0);
	else
		err = ctl(loop, r->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, r, events);
	if (!err)
		r->events = events;
	return err;
}

void xvb_evloop_del(struct xvb_evloop *loop, int fd)
{
	struct xvb_evreg **p = find(loop, fd), *r;

	if (!p)
		return;
	r = *p;
	*p = r->next;
	/* Fails harmlessly if the fd was already closed. */
	if (r->events)
		ctl(loop, EPOLL_CTL_DEL, r, 0);
	if (loop->dispatching) {
		r->removed = true;
		r->next = loop->dead;
		loop->dead = r;
	} else {
		free(r);
	}
}

void xvb_evloop_del_close(struct xvb_evloop *loop, int *fd)
{
	if (*fd < 0)
		return;
	xvb_evloop_del(loop, *fd);
	close(*fd);
	*fd = -1;
}

void xvb_evloop_defer(struct xvb_evloop *loop, struct xvb_evdefer *d)
{
	if (d->armed)
		return;
	d->armed = true;
	d->next = NULL;
	*loop->defer_tail = d;
	loop->defer_tail = &d->next;
}

static bool unlink_defer(struct xvb_evdefer **head, struct xvb_evdefer ***tail,
			 struct xvb_evdefer *d)
{
	struct xvb_evdefer **p;

	for (p = head; *p; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			if (tail && *tail == &d->next)
				*tail = p;
			return true;
		}
	}
	return false;
}

void xvb_evloop_cancel(struct xvb_evloop *loop, struct xvb_evdefer *d)
{
	if (!d->armed)
		return;
	if (!unlink_defer(&loop->defer, &loop->defer_tail, d))
		unlink_defer(&loop->running, NULL, d);
	d->armed = false;
	d->next = NULL;
}

int xvb_evloop_run_once(struct xvb_evloop *loop, int timeout_ms)
{
	struct epoll_event ev[XVB_EVLOOP_MAX_EVENTS];
	struct xvb_evdefer *d;
	int i, n, ran = 0;

	if (loop->dispatching)
		return -EBUSY;	/* not re-entrant */
	n = epoll_wait(loop->epfd, ev, XVB_EVLOOP_MAX_EVENTS, loop->defer ? 0 : timeout_ms);
	if (n < 0)
		return -errno;
	loop->dispatching = true;
	/* This round's deferred work: what was armed before it. */
	loop->running = loop->defer;
	loop->defer = NULL;
	loop->defer_tail = &loop->defer;
	for (i = 0; i < n; i++) {
		struct xvb_evreg *r = ev[i].data.ptr;

		/* Deleted, or paused, by an earlier callback of this round. */
		if (r->removed || !r->events)
			continue;
		r->cb(r->arg, r->fd, ev[i].events);
		ran++;
	}
	while ((d = loop->running)) {
		loop->running = d->next;
		d->next = NULL;
		d->armed = false;
		d->cb(d->arg);
		ran++;
	}
	loop->dispatching = false;
	free_list(loop->dead);
	loop->dead = NULL;
	return ran;
}

int xvb_spare_open(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

bool xvb_refuse_with_spare(int lfd, int *spare)
{
	int fd;

	if (*spare < 0)
		*spare = xvb_spare_open();
	if (*spare < 0)
		return false;
	close(*spare);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	*spare = xvb_spare_open();
	return true;
}
