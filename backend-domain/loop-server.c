// SPDX-License-Identifier: MIT
/*
 * The loopback bus's socket server: drivers connect to a SOCK_SEQPACKET
 * unix socket, each packet a request with its descriptors (SCM_RIGHTS),
 * answered in turn.  A connection is a guest domain: HELLO gives it a
 * domid and its grant table; when it goes (EOF, garbage, a reply it does
 * not read) its devices go first, then everything else of it.  Out of
 * descriptors, a connection is refused, never spun on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "evloop.h"
#include "loop-priv.h"

static void close_fds(int *fds, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* A request whose payload is one struct and no descriptors: copied out, or
 * false (the request is -EINVAL). */
static bool fixed(const void *p, size_t len, unsigned int nfds, void *out, size_t size)
{
	if (len < size || nfds)
		return false;
	memcpy(out, p, size);
	return true;
}

static int do_hello(struct loop_bus *lb, struct loop_client *c, const void *p, size_t len,
		    int *fds, unsigned int nfds, struct xvmsg_loop_hello_reply *r)
{
	struct xvmsg_loop_hello h;
	int rc;

	if (c->gnt)
		return -EALREADY;
	if (len < sizeof(h) || nfds != 1)
		return -EINVAL;
	memcpy(&h, p, sizeof(h));
	if (le32toh(h.version) != XVMSG_LOOP_VERSION)
		return -EPROTONOSUPPORT;
	pthread_mutex_lock(&lb->map_lock);
	rc = loop_gnt_open(fds[0], le32toh(h.gnt_entries), &c->gnt);
	pthread_mutex_unlock(&lb->map_lock);
	if (rc)
		return rc;
	if (lb->next_domid >= 0x7ff0)
		lb->next_domid = 2;
	while (loop_client_find(lb, lb->next_domid))
		lb->next_domid++;
	pthread_mutex_lock(&lb->map_lock);	/* loop_client_find on a queue thread */
	c->domid = lb->next_domid++;
	pthread_mutex_unlock(&lb->map_lock);
	r->version = htole32(XVMSG_LOOP_VERSION);
	r->frontend_domid = htole16(c->domid);
	r->backend_domid = htole16(XVMSG_LOOP_BACKEND_DOMID);
	return 0;
}

void loop_client_free(struct loop_bus *lb, struct loop_client *c)
{
	struct loop_map *m;
	unsigned int i;

	while (c->ndev)
		loop_remove_dev(lb, c, 0);
	/* Its devices' dirs went with them; anything else it wrote goes now. */
	ls_rm_account(lb->store, &c->keys, loop_st_removed, lb);
	/* Its devices unmapped everything when they went; should anything be
	 * left, it no longer counts for anybody. */
	pthread_mutex_lock(&lb->map_lock);
	for (m = lb->maps; m; m = m->next)
		if (m->owner == c)
			m->owner = NULL;
	pthread_mutex_unlock(&lb->map_lock);
	epoll_ctl(lb->epfd, EPOLL_CTL_DEL, c->sock, NULL);
	close(c->sock);
	for (i = 0; i < c->nregions; i++)
		close(c->region[i].fd);
	for (i = 0; i < c->nev; i++) {
		epoll_ctl(lb->epfd, EPOLL_CTL_DEL, c->ev[i].fd, NULL);
		close(c->ev[i].fd);
	}
	free(c->ev);
	pthread_mutex_lock(&lb->map_lock);	/* as loop_gnt_open was */
	loop_gnt_put(c->gnt);
	pthread_mutex_unlock(&lb->map_lock);
	free(c);
	if (lb->listen_paused) {
		struct epoll_event e = { .events = EPOLLIN, .data.u64 = EPDATA(K_LISTEN, 0) };

		if (lb->spare < 0)
			lb->spare = xvb_spare_open();
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
void loop_detach_dead(struct loop_bus *lb)
{
	struct loop_client *c;

	for (c = lb->clients; c; c = c->next)
		while (c->dead && c->ndev)
			loop_remove_dev(lb, c, 0);
}

void loop_free_dead(struct loop_bus *lb)
{
	struct loop_client **pp = &lb->clients, *c;

	while ((c = *pp)) {
		if (c->dead) {
			pthread_mutex_lock(&lb->map_lock);
			*pp = c->next;
			pthread_mutex_unlock(&lb->map_lock);
			loop_client_free(lb, c);
		} else {
			pp = &c->next;
		}
	}
}

/* Has the driver taken everything we sent it (SIOCOUTQ: bytes of ours it
 * has not read)? */
static bool all_read(int sock)
{
	int n = 1;

	return !ioctl(sock, SIOCOUTQ, &n) && n == 0;
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

void loop_client_input(struct loop_bus *lb, struct loop_client *c)
{
	char buf[XVMSG_LOOP_MAX_PACKET];
	char cbuf[CMSG_SPACE(XVMSG_LOOP_MAX_FDS * sizeof(int))];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	int fds[XVMSG_LOOP_MAX_FDS], rc = -EINVAL, out_fd = -1;
	unsigned int nfds = 0, i;
	struct xvmsg_loop_hdr h;
	struct xvmsg_loop_hello_reply hr;
	struct xvmsg_loop_unregion u;
	struct xvmsg_loop_evtchn ec;
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
		loop_client_kill(c);	/* EOF, error, or garbage: the domain is gone */
		return;
	}
	memcpy(&h, buf, sizeof(h));
	op = le32toh(h.op);
	len = le32toh(h.len);
	if (c->fds_unread && all_read(c->sock))
		c->fds_unread = 0;	/* the channel ends we sent reached it */
	if (len != (size_t)n - sizeof(h)) {
		close_fds(fds, nfds);
		loop_client_kill(c);
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
			pthread_mutex_lock(&lb->map_lock);
			rc = loop_do_region(lb, c, p, len, fds, nfds);
			pthread_mutex_unlock(&lb->map_lock);
			break;
		case XVMSG_LOOP_OP_EVTCHN:
			rc = loop_do_evtchn(lb, c, p, len, nfds, &out_fd);
			break;
		case XVMSG_LOOP_OP_UNREGION:
			if (fixed(p, len, nfds, &u, sizeof(u))) {
				pthread_mutex_lock(&lb->map_lock);
				rc = loop_region_remove(c, le64toh(u.base_gfn));
				pthread_mutex_unlock(&lb->map_lock);
			}
			break;
		case XVMSG_LOOP_OP_EVTCHN_CLOSE:
			if (fixed(p, len, nfds, &ec, sizeof(ec)))
				rc = loop_evtchn_close(lb, c, le32toh(ec.port));
			break;
		case XVMSG_LOOP_OP_ATTACH:
			if (len >= sizeof(struct xvmsg_loop_attach)) {
				struct xvmsg_loop_attach a;

				memcpy(&a, p, sizeof(a));
				rc = loop_do_attach(lb, c, &a);
			}
			break;
		case XVMSG_LOOP_OP_DETACH:
			if (len >= sizeof(struct xvmsg_loop_devid)) {
				struct xvmsg_loop_devid d;

				memcpy(&d, p, sizeof(d));
				rc = loop_do_detach(lb, c, le32toh(d.devid));
			}
			break;
		case XVMSG_LOOP_OP_WRITE:
			rc = loop_do_write(lb, c, p, len);
			break;
		default:
			rc = -EOPNOTSUPP;
		}
	}
	close_fds(fds, nfds);	/* any not taken */
	if (out_fd < 0) {
		loop_send(c, op | XVMSG_LOOP_REPLY, le32toh(h.seq), rc, &hr, rlen, -1);
		return;
	}
	rc = loop_send(c, op | XVMSG_LOOP_REPLY, le32toh(h.seq), 0, NULL, 0, out_fd);
	close(out_fd);		/* the driver has its own now, or never will */
	if (rc == 0) {
		c->fds_unread++;
	} else if (rc == -ETOOMANYREFS) {
		/* Too many descriptors in flight from us (other connections'
		 * unread replies, each within MAX_FDS_UNREAD): the channel goes
		 * and the driver hears that we are out of room. */
		loop_evtchn_forget_last(lb, c);
		loop_send(c, op | XVMSG_LOOP_REPLY, le32toh(h.seq), -EMFILE, NULL, 0, -1);
	}
}

void loop_accept(struct loop_bus *lb)
{
	struct epoll_event e = { .events = EPOLLIN };
	struct loop_client *c;
	int fd = accept4(lb->lsock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
		/* Out of descriptors: refuse the driver with the spare (it sees
		 * the hang-up); without one, stop listening until a guest
		 * leaves, rather than spin on a readable socket. */
		if (!xvb_refuse_with_spare(lb->lsock, &lb->spare) &&
		    !epoll_ctl(lb->epfd, EPOLL_CTL_DEL, lb->lsock, NULL))
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
	c->lb = lb;
	c->domid = 0;		/* assigned by HELLO */
	e.data.u64 = EPDATA(K_CLIENT, fd);
	if (epoll_ctl(lb->epfd, EPOLL_CTL_ADD, fd, &e)) {
		close(fd);
		free(c);
		return;
	}
	pthread_mutex_lock(&lb->map_lock);
	c->next = lb->clients;
	lb->clients = c;
	pthread_mutex_unlock(&lb->map_lock);
}

int loop_listen(struct loop_bus *lb, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = EPDATA(K_LISTEN, 0) };
	int rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	lb->lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lb->lsock < 0)
		return -errno;
	strcpy(sa.sun_path, path);
	unlink(path);	/* a stale socket from a killed backend */
	rc = bind(lb->lsock, (struct sockaddr *)&sa, sizeof(sa));
	if (rc && errno == ENOENT) {
		/* e.g. /run/xvmsg does not exist yet: make the last component */
		char dir[sizeof(sa.sun_path)], *slash;

		strcpy(dir, path);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			mkdir(dir, 0755);
		}
		rc = bind(lb->lsock, (struct sockaddr *)&sa, sizeof(sa));
	}
	if (rc || listen(lb->lsock, 16))
		return -errno;
	if (epoll_ctl(lb->epfd, EPOLL_CTL_ADD, lb->lsock, &e))
		return -errno;
	return 0;
}
