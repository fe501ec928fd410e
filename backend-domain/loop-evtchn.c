/*
 * The loopback bus's event channels.  EVTCHN makes a SOCK_DGRAM unix
 * socketpair: we keep one end, the driver gets the other in the reply.  A
 * datagram either way is a notification (its bytes mean nothing); binding
 * gives the backend a local port holding a copy of our end, watched by the
 * bus's epoll set, or a queue channel (bus.h) holding one for a queue
 * thread to poll.
 *
 * Why sockets and not eventfds: every flag of an open file is shared by
 * all who hold it.  Once a driver handed us eventfds, it could clear
 * O_NONBLOCK on them and fill its irq counter to the top, and our next
 * notify blocked for good (or our read of the kick fd, in a race).  Here
 * the driver never holds our end, and MSG_DONTWAIT makes each send and
 * receive of ours non-blocking by itself, whatever the flags are.  A
 * datagram socket's state is its own too: the driver shutting down or
 * reconnecting its end does not reach ours (only stream sockets pass a
 * shutdown to the peer), so our end is readable only while kicks wait.
 *
 * Our end is always drained: by the bus's epoll set while nothing has
 * the channel bound (K_IDLE: the kicks are dropped), by the port or the
 * queue thread while bound.  Otherwise a driver could fill it with big
 * datagrams and close its end, leaving kernel memory queued on ours that
 * no quota counts.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "loop-priv.h"

/* Watch our end of ev for kicks nobody has bound (on), or stop (off, when
 * a port or a queue channel takes over). */
static int idle_watch(struct loop_bus *lb, uint16_t domid, const struct loop_evtchn *ev, bool on)
{
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = EPDATA_IDLE(domid, ev->port) };

	if (!on)
		return epoll_ctl(lb->epfd, EPOLL_CTL_DEL, ev->fd, NULL) ? -errno : 0;
	return epoll_ctl(lb->epfd, EPOLL_CTL_ADD, ev->fd, &e) ? -errno : 0;
}

/* The channel remote of domid, if it may be bound: not bound yet, and
 * within the guest's descriptor quota (a bound channel's copy). */
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
	if (loop_client_fds(c) + 1 > lb->max_guest_fds)
		return -EDQUOT;
	*out = &c->ev[i];
	return 0;
}

/*
 * One notification to the driver.  A full queue (EAGAIN: the driver has not
 * read the ones before) loses nothing: a notification is pending already.
 * A driver that shut down, closed or reconnected its end cannot hear it
 * (EPIPE, ECONNREFUSED, ENOTCONN, EPERM, ECONNRESET): its own doing, and
 * not worth an error per notify.
 */
static int chan_send(int fd)
{
	static const char one = 1;

	if (send(fd, &one, 1, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
		return 0;
	switch (errno) {
	case EAGAIN:
	case ECONNRESET:	/* reconnected elsewhere with one unread */
	case EPIPE:
	case ECONNREFUSED:
	case ENOTCONN:
	case EPERM:
		return 0;
	default:
		return -errno;
	}
}

/*
 * The kicks waiting, up to 512 of them.  How many can wait is bounded by
 * the driver's send buffer, not net.unix.max_dgram_qlen (which a connected
 * pair skips): we make it the smallest, 6 small datagrams; a driver may
 * raise it to twice net.core.wmem_max, 555 of them with the default of
 * 212992 bytes.  Should more wait, epoll reports the fd again.  Zero-length buffers: each datagram is taken
 * whole, its bytes dropped.
 */
int loop_evtchn_drain(int fd)
{
	struct mmsghdr m[64];
	int n, k = 0, took = 0;

	do {
		memset(m, 0, sizeof(m));
		n = recvmmsg(fd, m, 64, MSG_DONTWAIT, NULL);
		took |= n > 0;
	} while (n == 64 && ++k < 8);
	return took;
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
	lb->port[p].fd = fcntl(ev->fd, F_DUPFD_CLOEXEC, 0);
	if (lb->port[p].fd < 0)
		return errno == EMFILE || errno == ENFILE ? -errno : -EINVAL;
	/* One file, watched once: as the port from now on (both would fire). */
	idle_watch(lb, (uint16_t)domid, ev, false);
	e.data.u64 = EPDATA(K_PORT, p);
	if (epoll_ctl(lb->epfd, EPOLL_CTL_ADD, lb->port[p].fd, &e)) {
		rc = errno == ENOMEM || errno == ENOSPC ? -errno : -EINVAL;
		close(lb->port[p].fd);
		idle_watch(lb, (uint16_t)domid, ev, true);
		return rc;
	}
	lb->port[p].used = true;
	lb->port[p].domid = (uint16_t)domid;
	lb->port[p].remote = remote;
	ev->bound = true;
	*local = p;
	return 0;
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
	epoll_ctl(lb->epfd, EPOLL_CTL_DEL, p->fd, NULL);
	close(p->fd);
	p->used = false;
	c = loop_client_find(lb, p->domid);
	for (i = 0; c && i < c->nev; i++)
		if (c->ev[i].port == p->remote) {
			c->ev[i].bound = false;
			idle_watch(lb, p->domid, &c->ev[i], true);
		}
	return 0;
}

int loop_evtchn_notify(struct xvb_bus *b, uint32_t local)
{
	struct loop_bus *lb = LB(b);

	if (local >= lb->nports || !lb->port[local].used)
		return -ENOENT;
	return chan_send(lb->port[local].fd);
}

int loop_do_evtchn(struct loop_bus *lb, struct loop_client *c, const void *p, size_t len,
		   unsigned int nfds, int *driver_fd)
{
	struct xvmsg_loop_evtchn e;
	struct loop_evtchn *ev;
	uint32_t port;
	unsigned int i;
	int sv[2];

	if (len < sizeof(e) || nfds)
		return -EINVAL;
	if (c->fds_unread >= MAX_FDS_UNREAD)
		return -EAGAIN;
	memcpy(&e, p, sizeof(e));
	port = le32toh(e.port);
	if (port == 0)
		return -EINVAL;
	for (i = 0; i < c->nev; i++)
		if (c->ev[i].port == port)
			return -EEXIST;
	if (loop_client_fds(c) + 1 > lb->max_guest_fds)
		return -EDQUOT;
	if (c->nev >= MAX_EVTCHNS)
		return -ENOSPC;
	ev = realloc(c->ev, (c->nev + 1) * sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	c->ev = ev;
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		return -errno;
	/* One pending notification is all either side needs: the smallest
	 * send buffers (the kernel's minimum, a few datagrams) bound what a
	 * peer that never reads makes the other pin in kernel memory. */
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &(int){ 0 }, sizeof(int));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &(int){ 0 }, sizeof(int));
	ev[c->nev].port = port;
	ev[c->nev].fd = sv[0];
	ev[c->nev].bound = false;
	if (idle_watch(lb, c->domid, &ev[c->nev], true)) {
		close(sv[0]);
		close(sv[1]);
		return -ENOMEM;		/* epoll's watches (max_user_watches) */
	}
	c->nev++;
	*driver_fd = sv[1];
	return 0;
}

void loop_evtchn_forget_last(struct loop_bus *lb, struct loop_client *c)
{
	struct loop_evtchn *ev = &c->ev[c->nev - 1];

	idle_watch(lb, c->domid, ev, false);
	close(ev->fd);
	c->nev--;
}

void loop_evtchn_idle(struct loop_bus *lb, uint32_t domid, uint32_t port)
{
	struct loop_client *c = loop_client_find(lb, domid);
	unsigned int i;

	for (i = 0; c && i < c->nev; i++)
		if (c->ev[i].port == port && !c->ev[i].bound)
			loop_evtchn_drain(c->ev[i].fd);
}

/*
 * EVTCHN_CLOSE: refused with -EBUSY while a device we serve has the channel
 * bound (its port holds a copy of our end and may notify at any time); the
 * driver closes the device first.  Otherwise our end goes.
 */
int loop_evtchn_close(struct loop_bus *lb, struct loop_client *c, uint32_t port)
{
	unsigned int i;

	for (i = 0; i < c->nev && c->ev[i].port != port; i++)
		;
	if (i == c->nev)
		return -ENOENT;
	if (c->ev[i].bound)
		return -EBUSY;
	idle_watch(lb, c->domid, &c->ev[i], false);
	close(c->ev[i].fd);
	c->ev[i] = c->ev[--c->nev];
	return 0;
}

/* ---- queue channels: the same checks as a bound port, but the copy of
 * our end is the channel's own and the bus's epoll set never sees it. */

struct xvb_chan {
	int fd;
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
	ch->fd = fcntl(ev->fd, F_DUPFD_CLOEXEC, 0);
	if (ch->fd < 0) {
		free(ch);
		return -EMFILE;
	}
	idle_watch(LB(b), (uint16_t)domid, ev, false);	/* the queue's thread takes it */
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

	close(ch->fd);
	for (i = 0; c && i < c->nev; i++)
		if (c->ev[i].port == ch->remote) {
			c->ev[i].bound = false;
			idle_watch(LB(b), ch->domid, &c->ev[i], true);
		}
	free(ch);
}

int loop_chan_fd(struct xvb_chan *ch)
{
	return ch->fd;
}

int loop_chan_ack(struct xvb_chan *ch)
{
	return loop_evtchn_drain(ch->fd) ? 0 : -EAGAIN;
}

int loop_chan_notify(struct xvb_chan *ch)
{
	return chan_send(ch->fd);
}
