// SPDX-License-Identifier: MIT
/*
 * The loopback bus's event channels: a driver registers a pair of eventfds
 * per port (EVTCHN), one per direction; binding one gives the backend a
 * local port holding its own copies, watched by the bus's epoll set, or a
 * queue channel (bus.h) holding them for a queue thread to poll.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "loop-priv.h"

/* The channel remote of domid, if it may be bound: not bound yet, and
 * within the guest's descriptor quota (a bound channel's two copies). */
static int bindable(struct loop_bus *lb, uint32_t domid, uint32_t remote,
		    struct loop_evtchn **out)
{
	struct loop_client *c = loop_client_find(lb, domid);
	unsigned int i;

	if (!c)
		return -ESRCH;
	for (i = 0; i < c->nev && c->ev[i].port != remote; i++)
		;
	if (i == c->nev)
		return -ENOENT;
	if (c->ev[i].bound)
		return -EBUSY;
	if (loop_client_fds(c) + 2 > lb->max_guest_fds)
		return -EDQUOT;
	*out = &c->ev[i];
	return 0;
}

int loop_evtchn_bind(struct xvb_bus *b, uint32_t domid, uint32_t remote, uint32_t *local)
{
	struct loop_bus *lb = LB(b);
	struct epoll_event e = { .events = EPOLLIN };
	struct loop_evtchn *ev;
	uint32_t p;
	int rc = bindable(lb, domid, remote, &ev);

	if (rc)
		return rc;
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

int loop_evtchn_unbind(struct xvb_bus *b, uint32_t local)
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
	c = loop_client_find(lb, p->domid);
	for (i = 0; c && i < c->nev; i++)
		if (c->ev[i].port == p->remote)
			c->ev[i].bound = false;
	return 0;
}

int loop_evtchn_notify(struct xvb_bus *b, uint32_t local)
{
	struct loop_bus *lb = LB(b);
	uint64_t one = 1;

	if (local >= lb->nports || !lb->port[local].used)
		return -ENOENT;
	if (write(lb->port[local].irq, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
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

/*
 * A kick eventfd made with EFD_SEMAPHORE gives 1 per read, so one write of
 * a huge count would keep it readable for 2^64 rounds of our event loop,
 * each serving the device: 100% of a CPU (two with a queue thread) for one
 * system call of the driver's.  /proc's fdinfo says so only from Linux 6.5
 * on; asking the fd itself works everywhere: add 2 and read.  A plain
 * eventfd gives its whole count, at least 2 (if the add failed, the count
 * was near its end), and is drained: a kick made before the channel is
 * bound means nothing, a connection serves its queues once anyway.  A
 * semaphore gives 1; nothing at all means the driver read its own kick fd
 * meanwhile, which a driver never does.  The fd is non-blocking by now.
 */
static bool plain_kick_fd(int fd)
{
	uint64_t two = 2, v = 0;

	if (write(fd, &two, sizeof(two)) != sizeof(two)) {
		/* near the end of the counter: the read below says what it is */
	}
	return read(fd, &v, sizeof(v)) == sizeof(v) && v >= 2;
}

int loop_do_evtchn(struct loop_bus *lb, struct loop_client *c, const void *p, size_t len,
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
	if (loop_client_fds(c) + 2 > lb->max_guest_fds)
		return -EDQUOT;
	if (c->nev >= MAX_EVTCHNS)
		return -ENOSPC;
	if (!is_eventfd(fds[0]) || !is_eventfd(fds[1]))
		return -EINVAL;
	/* The file status flags are shared with the driver: make sure a read
	 * or write of ours can never block. */
	if (fcntl(fds[0], F_SETFL, O_NONBLOCK) || fcntl(fds[1], F_SETFL, O_NONBLOCK))
		return -EINVAL;
	if (!plain_kick_fd(fds[0]))
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
 * EVTCHN_CLOSE: refused with -EBUSY while a device we serve has the channel
 * bound (its port holds duplicates of the eventfds and may notify at any
 * time); the driver closes the device first.  Otherwise our two eventfds go.
 */
int loop_evtchn_close(struct loop_client *c, uint32_t port)
{
	unsigned int i;

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

/* ---- queue channels: the same checks as a bound port, but the two
 * eventfds are the channel's own and the bus's epoll set never sees them. */

struct xvb_chan {
	int kick, irq;
	uint16_t domid;
	uint32_t remote;
};

int loop_chan_bind(struct xvb_bus *b, uint32_t domid, uint32_t remote, struct xvb_chan **out)
{
	struct loop_evtchn *ev;
	struct xvb_chan *ch;
	int rc = bindable(LB(b), domid, remote, &ev);

	if (rc)
		return rc;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	ch->kick = fcntl(ev->kick, F_DUPFD_CLOEXEC, 0);
	ch->irq = fcntl(ev->irq, F_DUPFD_CLOEXEC, 0);
	if (ch->kick < 0 || ch->irq < 0) {
		if (ch->kick >= 0)
			close(ch->kick);
		if (ch->irq >= 0)
			close(ch->irq);
		free(ch);
		return -EMFILE;
	}
	ch->domid = (uint16_t)domid;
	ch->remote = remote;
	ev->bound = true;
	*out = ch;
	return 0;
}

void loop_chan_unbind(struct xvb_bus *b, struct xvb_chan *ch)
{
	struct loop_client *c = loop_client_find(LB(b), ch->domid);
	unsigned int i;

	close(ch->kick);
	close(ch->irq);
	for (i = 0; c && i < c->nev; i++)
		if (c->ev[i].port == ch->remote)
			c->ev[i].bound = false;
	free(ch);
}

int loop_chan_fd(struct xvb_chan *ch)
{
	return ch->kick;
}

int loop_chan_ack(struct xvb_chan *ch)
{
	uint64_t n;

	if (read(ch->kick, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return errno == EAGAIN ? -EAGAIN : -errno;
	return 0;
}

int loop_chan_notify(struct xvb_chan *ch)
{
	uint64_t one = 1;

	if (write(ch->irq, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}
