// SPDX-License-Identifier: MIT
/*
 * The loopback bus, driver side (see include/xvmsg/loop.h): one
 * SOCK_SEQPACKET connection to xvmsg-backend is one guest domain.  The grant
 * table and all guest memory are memfds, event channels are datagram sockets,
 * and xenstore is the backend's: we write our frontend keys over the socket
 * and keep a cache of our devices' backend keys from STORE_EVENT packets.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <xvmsg/loop.h>
#include <xvmsg/wire.h>

#include "drv-priv.h"

/* Device regions: a fresh 512 MiB window of guest frames per attach, never
 * reused within the domain, so a re-attached devid never overlaps a region
 * the backend may still hold.  Frames stay below 2^32 (grant v1 frame). */
#define LOOP_DEV_GFN(slot)	(0x100000ULL + (uint64_t)(slot) * 0x20000)
#define LOOP_DEV_MAX_PAGES	0x20000
#define LOOP_DEV_SLOTS		((0x100000000ULL - 0x100000) / 0x20000)
#define LOOP_MAX_KEYS		1024	/* cached backend keys: bounds a chatty peer */

struct loop_port {
	uint32_t port;
	/* Our end of the channel (a SOCK_DGRAM socket the backend made): we
	 * send to notify the backend; it is readable when the backend
	 * notified us. */
	int fd;
	/* Notifications loop_wait drained from fd, not yet acked.  The fast
	 * path (ack, then look at the rings) makes no system call; only a wait
	 * reads the socket, right after poll() said it fired. */
	uint64_t pending;
	/* Hung up (POLLRDHUP, POLLHUP): only whoever made it, the backend,
	 * can shut it down.  Readable for ever with nothing to read, so left out of
	 * waits; its notifications are lost and the device stalls. */
	bool hung_up;
};

struct loop_kv {
	unsigned int devid;
	char *key, *val;
};

struct loop_bus {
	struct drv_bus bus;
	const struct xvd_logger *log;
	int sock;
	bool dead;
	int timeout_ms;
	unsigned int domid, bdomid;
	char be_prefix[80];	/* /local/domain/<be>/backend/xvmsg/<fe>/ */

	int gnt_fd;
	struct xvmsg_loop_gnt *gnt;
	uint32_t ngnt;
	struct xvd_ualloc refs;

	struct loop_port *ports;
	unsigned int nports, cap_ports;
	uint32_t next_port;
	uint32_t dev_slots;	/* device regions handed out */
	bool ram_shared;	/* REGION sent for guest RAM (gfn 0) */
	bool closing;		/* loop_close: the connection's end releases all */
	bool release_stuck;	/* a release timed out: send no more */

	struct loop_kv *kv;
	unsigned int nkv, cap_kv;
	bool store_changed;

	uint32_t seq, wait_seq;	/* request in flight */
	bool got_reply;
	int reply_status;
	int reply_fd;		/* a descriptor the reply carried, or -1 */
	bool reply_ctrunc;	/* descriptors of the reply were lost (we are out of fds) */
	uint8_t reply[XVMSG_LOOP_MAX_PACKET];
	size_t reply_len;
};

#define to_loop(b) ((struct loop_bus *)(b))

/* ---- socket ------------------------------------------------------------ */

static int loop_dead(struct loop_bus *b, const char *why)
{
	uint32_t i;

	if (b->dead)
		return -ENODEV;
	xvd_logf(b->log, XVD_LOG_ERR, "loop bus: backend connection lost (%s)", why);
	b->dead = true;
	/* The backend domain is gone.  A live backend unmaps everything of ours
	 * before it closes the connection; a killed one took its mappings with
	 * it.  Either way nothing is mapped any more: release the in-use marks,
	 * as Xen does when it destroys a domain. */
	for (i = 0; b->gnt && i < b->ngnt; i++)
		__atomic_and_fetch(&b->gnt[i].flags,
				   (uint16_t)~htole16(XVMSG_GTF_READING | XVMSG_GTF_WRITING),
				   __ATOMIC_SEQ_CST);
	return -ENODEV;
}

static int loop_send(struct loop_bus *b, uint32_t op, uint32_t seq, const void *p, size_t len,
		     const int *fds, unsigned int nfds)
{
	struct xvmsg_loop_hdr h = { htole32(op), htole32((uint32_t)len), htole32(seq), 0 };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)p, len } };
	union { struct cmsghdr c; char buf[CMSG_SPACE(sizeof(int) * XVMSG_LOOP_MAX_FDS)]; } u;
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	ssize_t n;

	if (b->dead)
		return -EPIPE;
	if (len + sizeof(h) > XVMSG_LOOP_MAX_PACKET || nfds > XVMSG_LOOP_MAX_FDS)
		return -E2BIG;
	if (nfds) {
		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		u.c.cmsg_level = SOL_SOCKET;
		u.c.cmsg_type = SCM_RIGHTS;
		u.c.cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(&u.c), fds, sizeof(int) * nfds);
	}
	for (;;) {
		n = sendmsg(b->sock, &msg, MSG_NOSIGNAL);
		if (n >= 0 || errno != EINTR)
			break;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		struct pollfd pfd = { b->sock, POLLOUT, 0 };

		if (poll(&pfd, 1, b->timeout_ms) <= 0)
			return -ETIMEDOUT;
		n = sendmsg(b->sock, &msg, MSG_NOSIGNAL);
	}
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : (loop_dead(b, strerror(errno)), -EPIPE);
	return (size_t)n == sizeof(h) + len ? 0 : -EIO;
}

static void kv_drop(struct loop_bus *b, unsigned int i)
{
	free(b->kv[i].key);
	free(b->kv[i].val);
	b->kv[i] = b->kv[--b->nkv];
}

static void kv_forget(struct loop_bus *b, unsigned int devid)
{
	for (unsigned int i = 0; i < b->nkv;)
		if (b->kv[i].devid == devid)
			kv_drop(b, i);
		else
			i++;
}

static struct loop_kv *kv_find(struct loop_bus *b, unsigned int devid, const char *key)
{
	for (unsigned int i = 0; i < b->nkv; i++)
		if (b->kv[i].devid == devid && !strcmp(b->kv[i].key, key))
			return &b->kv[i];
	return NULL;
}

static void kv_set(struct loop_bus *b, unsigned int devid, const char *key, const char *val)
{
	struct loop_kv *e = kv_find(b, devid, key);
	char *v = strdup(val);

	if (!v)
		return;
	if (e) {
		free(e->val);
		e->val = v;
		return;
	}
	if (b->nkv == LOOP_MAX_KEYS) {
		free(v);
		return;
	}
	if (b->nkv == b->cap_kv) {
		unsigned int cap = b->cap_kv ? 2 * b->cap_kv : 32;
		struct loop_kv *n = realloc(b->kv, cap * sizeof(*n));

		if (!n) {
			free(v);
			return;
		}
		b->kv = n;
		b->cap_kv = cap;
	}
	e = &b->kv[b->nkv];
	e->devid = devid;
	e->val = v;
	e->key = strdup(key);
	if (e->key)
		b->nkv++;
	else
		free(v);
}

/* STORE_EVENT "path\0value\0": a backend key of one of our devices. */
static void loop_store_event(struct loop_bus *b, const char *p, size_t len)
{
	size_t plen = strnlen(p, len), pre = strlen(b->be_prefix);
	const char *val = NULL, *key;
	const char *end;
	char vbuf[XVMSG_LOOP_MAX_PACKET];
	uint32_t devid;

	if (plen == len || strncmp(p, b->be_prefix, pre))
		return;				/* malformed or not ours */
	if (plen + 1 < len) {
		size_t vlen = strnlen(p + plen + 1, len - plen - 1);

		memcpy(vbuf, p + plen + 1, vlen);
		vbuf[vlen] = 0;
		val = vbuf;
	}
	end = strchr(p + pre, '/');
	if (!end)
		end = p + plen;
	if (xvmsg_parse_u32_len(p + pre, (size_t)(end - (p + pre)), &devid) ||
	    devid > XVD_MAX_DEVID)
		return;
	key = *end ? end + 1 : "";
	b->store_changed = true;
	if (!*key) {
		if (!val)
			kv_forget(b, (unsigned int)devid);	/* directory removed */
	} else if (val) {
		kv_set(b, (unsigned int)devid, key, val);
	} else {
		struct loop_kv *e = kv_find(b, (unsigned int)devid, key);

		if (e)
			kv_drop(b, (unsigned int)(e - b->kv));
	}
}

/* Read and handle one packet: 1 handled, 0 none pending, -ENODEV dead. */
static int loop_recv_one(struct loop_bus *b)
{
	uint8_t buf[XVMSG_LOOP_MAX_PACKET];
	union { struct cmsghdr c; char buf[CMSG_SPACE(sizeof(int) * XVMSG_LOOP_MAX_FDS)]; } u;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct xvmsg_loop_hdr h;
	uint32_t op, len;
	int fd, keep = -1;
	ssize_t n;

	if (b->dead)
		return -ENODEV;
	do
		n = recvmsg(b->sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : loop_dead(b, strerror(errno));
	if (n == 0)
		return loop_dead(b, "closed");
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
				if (keep < 0)
					keep = fd;	/* the first, for a reply */
				else
					close(fd);
			}
	if ((size_t)n < sizeof(h) || (msg.msg_flags & MSG_TRUNC))
		goto out;
	memcpy(&h, buf, sizeof(h));
	op = le32toh(h.op);
	len = le32toh(h.len);
	if (len != (size_t)n - sizeof(h))
		goto out;
	if (op == XVMSG_LOOP_OP_STORE_EVENT) {
		loop_store_event(b, (const char *)buf + sizeof(h), len);
	} else if ((op & XVMSG_LOOP_REPLY) && le32toh(h.seq) == b->wait_seq && !b->got_reply) {
		b->got_reply = true;
		b->reply_status = (int32_t)le32toh(h.status);
		b->reply_len = len;
		memcpy(b->reply, buf + sizeof(h), len);
		b->reply_fd = keep;
		b->reply_ctrunc = (msg.msg_flags & MSG_CTRUNC) != 0;
		keep = -1;
	}
out:
	if (keep >= 0)
		close(keep);	/* nobody asked for it */
	return 1;
}

/* One request and its reply (bounded).  Returns the reply status. */
static int loop_call(struct loop_bus *b, uint32_t op, const void *p, size_t len,
		     const int *fds, unsigned int nfds)
{
	int64_t deadline = xvd_now_ms() + b->timeout_ms;
	int r;

	b->wait_seq = ++b->seq;
	b->got_reply = false;
	if (b->reply_fd >= 0)
		close(b->reply_fd);	/* a caller that did not want it */
	b->reply_fd = -1;
	r = loop_send(b, op, b->wait_seq, p, len, fds, nfds);
	while (r == 0 && !b->got_reply) {
		struct pollfd pfd = { b->sock, POLLIN, 0 };
		int64_t left;

		r = loop_recv_one(b);
		if (r < 0)
			break;
		if (b->got_reply) {
			r = 0;
			break;
		}
		/* Checked after every packet too: a peer that never lets the
		 * socket drain still meets the deadline. */
		left = deadline - xvd_now_ms();
		if (left <= 0) {
			xvd_logf(b->log, XVD_LOG_ERR, "loop bus: no reply to op %u", op);
			r = -ETIMEDOUT;
		} else if (r > 0) {
			r = 0;		/* took a packet: look for the next at once */
		} else if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
			r = -errno;
		}
	}
	b->wait_seq = 0;
	if (r < 0)
		return r;
	return b->reply_status > 0 ? -EPROTO : b->reply_status;
}

/* ---- ops --------------------------------------------------------------- */

static unsigned int loop_domid(struct drv_bus *bus)
{
	return to_loop(bus)->domid;
}

static unsigned int loop_bdomid(struct drv_bus *bus)
{
	return to_loop(bus)->bdomid;
}

static int loop_gnt_alloc(struct drv_bus *bus, unsigned int n, uint32_t *first)
{
	int64_t r = xvd_ua_alloc(&to_loop(bus)->refs, n, 1);

	if (r < 0)
		return -ENOSPC;
	*first = (uint32_t)r;
	return 0;
}

static void loop_gnt_free(struct drv_bus *bus, uint32_t first, unsigned int n)
{
	xvd_ua_free(&to_loop(bus)->refs, first);
}

static int loop_gnt_grant(struct drv_bus *bus, uint32_t ref, uint64_t gfn, bool readonly)
{
	struct loop_bus *b = to_loop(bus);
	struct xvmsg_loop_gnt *e;

	if (ref < XVMSG_LOOP_GNT_RESERVED || ref >= b->ngnt || gfn > UINT32_MAX)
		return -EINVAL;
	e = &b->gnt[ref];
	XVMSG_WRITE_ONCE(e->frame, htole32((uint32_t)gfn));
	XVMSG_WRITE_ONCE(e->domid, htole16((uint16_t)b->bdomid));
	/* frame and domid before flags; pairs with the backend's read barrier
	 * after it checks PERMIT_ACCESS (as Xen's gnttab_grant_foreign_access). */
	xvmsg_wmb();
	XVMSG_WRITE_ONCE(e->flags, htole16(XVMSG_GTF_PERMIT_ACCESS | (readonly ? XVMSG_GTF_READONLY : 0)));
	return 0;
}

static int loop_gnt_revoke(struct drv_bus *bus, uint32_t ref)
{
	struct loop_bus *b = to_loop(bus);
	uint16_t busy = htole16(XVMSG_GTF_READING | XVMSG_GTF_WRITING), f;

	if (ref < XVMSG_LOOP_GNT_RESERVED || ref >= b->ngnt)
		return -EINVAL;
	f = XVMSG_READ_ONCE(b->gnt[ref].flags);
	/* Clear the entry only while the backend maps nothing: the atomic
	 * exchange races the backend's own atomic setting of READING/WRITING. */
	do {
		if (f & busy) {
			xvd_ua_leak(&b->refs, ref, 1);	/* retired for good */
			return -EBUSY;
		}
	} while (!__atomic_compare_exchange_n(&b->gnt[ref].flags, &f, 0, false,
					      __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	return 0;
}

static int loop_mem_alloc(struct drv_bus *bus, enum drv_mem_kind kind, unsigned int devid,
			  size_t pages, struct drv_mem *mem)
{
	int fd, r;
	void *va;

	struct loop_bus *b = to_loop(bus);

	if (!pages || (kind == DRV_MEM_DEV && pages > LOOP_DEV_MAX_PAGES))
		return -EINVAL;
	if (kind == DRV_MEM_DEV && b->dev_slots >= LOOP_DEV_SLOTS)
		return -ENOSPC;
	fd = memfd_create(kind == DRV_MEM_RAM ? "xvmsg-ram" : "xvmsg-dev",
			  MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	/* Sealed against shrinking: the backend refuses memory that could
	 * vanish under its mappings. */
	if (ftruncate(fd, (off_t)(pages * XVMSG_PAGE_SIZE)) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	va = mmap(NULL, pages * XVMSG_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (va == MAP_FAILED) {
		r = -errno;
		close(fd);
		return r;
	}
	*mem = (struct drv_mem){ va, kind == DRV_MEM_RAM ? 0 : LOOP_DEV_GFN(b->dev_slots++), pages,
				 fd };
	return 0;
}

/* Best effort: the backend may be gone (then it holds nothing of ours) or
 * refuse; either way our side is released. */
static void loop_release(struct loop_bus *b, uint32_t op, const void *p, size_t len)
{
	int r;

	if (b->dead || b->closing || b->release_stuck || b->sock < 0)
		return;
	r = loop_call(b, op, p, len, NULL, 0);
	if (r == -ETIMEDOUT) {
		/* Not answering: do not make every later close wait as long. */
		xvd_logf(b->log, XVD_LOG_WARN, "loop bus: backend does not answer releases; "
			 "it keeps them until we disconnect");
		b->release_stuck = true;
	} else if (r < 0 && r != -ENODEV && r != -EPIPE) {
		xvd_logf(b->log, XVD_LOG_DEBUG, "loop bus: release op %u: %s", op, strerror(-r));
	}
}

static void loop_mem_free(struct drv_bus *bus, struct drv_mem *mem)
{
	struct loop_bus *b = to_loop(bus);

	/* Device regions were (maybe) shared, RAM only when ram_shared. */
	if (mem->va && (mem->gfn || b->ram_shared)) {
		struct xvmsg_loop_unregion u = { htole64(mem->gfn) };

		if (!mem->gfn)
			b->ram_shared = false;
		loop_release(b, XVMSG_LOOP_OP_UNREGION, &u, sizeof(u));
	}
	if (mem->va)
		munmap(mem->va, mem->pages * XVMSG_PAGE_SIZE);
	if (mem->handle >= 0)
		close(mem->handle);
	memset(mem, 0, sizeof(*mem));
	mem->handle = -1;
}

static int loop_mem_share(struct drv_bus *bus, const struct drv_mem *mem)
{
	struct xvmsg_loop_region reg = { htole64(mem->gfn), htole64(mem->pages) };
	struct loop_bus *b = to_loop(bus);
	int r = loop_call(b, XVMSG_LOOP_OP_REGION, &reg, sizeof(reg), &mem->handle, 1);

	if (r == 0 && !mem->gfn)
		b->ram_shared = true;
	return r;
}

static struct loop_port *port_find(struct loop_bus *b, uint32_t port)
{
	for (unsigned int i = 0; i < b->nports; i++)
		if (b->ports[i].port == port)
			return &b->ports[i];
	return NULL;
}

/* Is fd what the backend must give us for a channel: a datagram socket of
 * ours, connected?  Anything else (an eventfd, a stream that could be
 * shut down under us, a file) is refused: notify and wait would not work. */
static bool chan_fd_ok(int fd)
{
	int type = 0, domain = 0;
	socklen_t l1 = sizeof(type), l2 = sizeof(domain);
	struct sockaddr_un peer;
	socklen_t pl = sizeof(peer);

	return fd >= 0 && !getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) && type == SOCK_DGRAM &&
	       !getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l2) && domain == AF_UNIX &&
	       !getpeername(fd, (struct sockaddr *)&peer, &pl);
}

static int loop_dispatch(struct drv_bus *bus);

static int loop_evtchn_alloc(struct drv_bus *bus, uint32_t *port)
{
	struct loop_bus *b = to_loop(bus);
	struct xvmsg_loop_evtchn ev = { 0 };
	struct loop_port p = { 0 };
	int r;

	if (b->nports == b->cap_ports) {
		unsigned int cap = b->cap_ports ? 2 * b->cap_ports : 16;
		struct loop_port *n = realloc(b->ports, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		b->ports = n;
		b->cap_ports = cap;
	}
	p.port = b->next_port;
	ev.port = htole32(p.port);
	/* -EAGAIN: the backend counts replies with channel ends we may not
	 * have read (store events it sent after one can hide our having read
	 * it); after reading all that is pending, ask again. */
	for (int tries = 0;; tries++) {
		r = loop_call(b, XVMSG_LOOP_OP_EVTCHN, &ev, sizeof(ev), NULL, 0);
		if (r != -EAGAIN || tries == 3)
			break;
		r = loop_dispatch(bus);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	b->next_port++;
	p.fd = b->reply_fd;
	b->reply_fd = -1;
	if (!chan_fd_ok(p.fd)) {
		r = p.fd < 0 && b->reply_ctrunc ? -EMFILE : -EPROTO;
		if (r == -EPROTO)
			xvd_logf(b->log, XVD_LOG_ERR,
				 "loop bus: EVTCHN reply without a datagram socket");
		if (p.fd >= 0)
			close(p.fd);
		loop_release(b, XVMSG_LOOP_OP_EVTCHN_CLOSE, &ev, sizeof(ev));
		return r;
	}
	/* Non-blocking for poll's sake; every send and receive says
	 * MSG_DONTWAIT anyway, so flags the backend (which made the socket
	 * and may keep a copy) could change do not matter. */
	fcntl(p.fd, F_SETFL, O_NONBLOCK);
	b->ports[b->nports++] = p;
	*port = p.port;
	return 0;
}

static void loop_evtchn_free(struct drv_bus *bus, uint32_t port)
{
	struct loop_bus *b = to_loop(bus);
	struct loop_port *p = port_find(b, port);
	struct xvmsg_loop_evtchn ev = { htole32(port), 0 };

	if (!p)
		return;
	/* -EBUSY if the backend still has it bound: it keeps its end until
	 * the connection ends (a device closed in order has unbound first). */
	loop_release(b, XVMSG_LOOP_OP_EVTCHN_CLOSE, &ev, sizeof(ev));
	close(p->fd);
	*p = b->ports[--b->nports];
}

/* A full queue (EAGAIN) means the backend has a notification pending. */
static int loop_evtchn_notify(struct drv_bus *bus, uint32_t port)
{
	struct loop_bus *b = to_loop(bus);
	struct loop_port *p = port_find(b, port);
	static const char one = 1;

	if (b->dead)
		return -EPIPE;
	if (!p)
		return -EINVAL;
	if (send(p->fd, &one, 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

static int loop_evtchn_ack(struct drv_bus *bus, uint32_t port)
{
	struct loop_bus *b = to_loop(bus);
	struct loop_port *p = port_find(b, port);
	uint64_t v;

	if (!p)
		return -EINVAL;
	v = p->pending;
	p->pending = 0;
	if (b->dead)
		return -ENODEV;
	return v > INT32_MAX ? INT32_MAX : (int)v;
}

static int loop_evtchn_fd(struct drv_bus *bus, uint32_t port)
{
	struct loop_port *p = port_find(to_loop(bus), port);

	return p ? p->fd : -EINVAL;
}

static int loop_get_fd(struct drv_bus *bus)
{
	return to_loop(bus)->sock;
}

static int loop_dispatch(struct drv_bus *bus)
{
	struct loop_bus *b = to_loop(bus);
	int r;

	while ((r = loop_recv_one(b)) > 0)
		;
	return r;
}

static int loop_wait(struct drv_bus *bus, const uint32_t *ports, unsigned int n, int timeout_ms)
{
	struct loop_bus *b = to_loop(bus);
	struct pollfd pfd[XVMSG_MAX_QUEUES + 2];
	unsigned int k = 1;
	int r;

	if (b->dead)
		return -ENODEV;
	if (b->store_changed) {		/* applied while waiting for a reply */
		b->store_changed = false;
		return 1;
	}
	struct loop_port *pp[XVMSG_MAX_QUEUES + 2];

	pfd[0] = (struct pollfd){ b->sock, POLLIN, 0 };
	for (unsigned int i = 0; i < n && k < XVMSG_MAX_QUEUES + 2; i++) {
		struct loop_port *p = port_find(b, ports[i]);

		if (p && !p->hung_up) {
			pp[k] = p;
			pfd[k++] = (struct pollfd){ p->fd, POLLIN | POLLRDHUP, 0 };
		}
	}
	r = poll(pfd, k, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 1 : -errno;
	for (unsigned int i = 1; i < k; i++) {
		struct mmsghdr m[16];
		int got;

		if (!pfd[i].revents)
			continue;
		if (pfd[i].revents & (POLLRDHUP | POLLHUP | POLLNVAL)) {
			pp[i]->hung_up = true;
			xvd_logf(b->log, XVD_LOG_ERR, "loop bus: event channel %u hung up by "
				 "the backend: its notifications are lost", pp[i]->port);
			continue;
		}
		/* Zero-length buffers take each datagram whole.  More than 16
		 * waiting (the backend's send buffer holds 6 small ones) wake
		 * the next poll at once. */
		memset(m, 0, sizeof(m));
		got = recvmmsg(pp[i]->fd, m, 16, MSG_DONTWAIT, NULL);
		if (got > 0)
			pp[i]->pending += (unsigned int)got;
	}
	if (r == 0)
		return 0;
	if (pfd[0].revents) {
		r = loop_dispatch(bus);
		if (r < 0)
			return r;
		b->store_changed = false;
	}
	return 1;
}

static int loop_attach(struct drv_bus *bus, const char *export_name, unsigned int devid,
		       unsigned int mode, unsigned int pool_pages)
{
	struct xvmsg_loop_attach a = { .devid = htole32(devid), .mode = htole32(mode),
				       .pool_pages = htole32(pool_pages) };

	if (strlen(export_name) >= sizeof(a.export_name))
		return -EINVAL;
	strcpy(a.export_name, export_name);
	kv_forget(to_loop(bus), devid);		/* no stale keys of an old attach */
	return loop_call(to_loop(bus), XVMSG_LOOP_OP_ATTACH, &a, sizeof(a), NULL, 0);
}

static int loop_detach(struct drv_bus *bus, unsigned int devid)
{
	struct xvmsg_loop_devid a = { htole32(devid), 0 };
	int r = loop_call(to_loop(bus), XVMSG_LOOP_OP_DETACH, &a, sizeof(a), NULL, 0);

	kv_forget(to_loop(bus), devid);
	return r;
}

static int loop_store_write(struct drv_bus *bus, unsigned int devid, const char *key,
			    const char *val)
{
	struct loop_bus *b = to_loop(bus);
	char buf[XVMSG_LOOP_MAX_PACKET - sizeof(struct xvmsg_loop_hdr)];
	int n = snprintf(buf, sizeof(buf), "/local/domain/%u/device/%s/%u/%s",
			 b->domid, XVMSG_XS_CLASS, devid, key);
	size_t vlen = strlen(val);

	if (n < 0 || (size_t)n + 2 + vlen > sizeof(buf))
		return -E2BIG;
	memcpy(buf + n + 1, val, vlen + 1);
	return loop_call(b, XVMSG_LOOP_OP_WRITE, buf, (size_t)n + 2 + vlen, NULL, 0);
}

static int loop_store_read(struct drv_bus *bus, unsigned int devid, const char *key,
			   char *buf, size_t len)
{
	struct loop_kv *e = kv_find(to_loop(bus), devid, key);

	if (!e)
		return -ENOENT;
	if (strlen(e->val) >= len)
		return -E2BIG;
	strcpy(buf, e->val);
	return 0;
}

static void loop_close(struct drv_bus *bus)
{
	struct loop_bus *b = to_loop(bus);

	b->closing = true;
	while (b->nports)
		loop_evtchn_free(bus, b->ports[0].port);
	while (b->nkv)
		kv_drop(b, 0);
	free(b->kv);
	free(b->ports);
	if (b->gnt)
		munmap(b->gnt, (size_t)b->ngnt * sizeof(*b->gnt));
	if (b->gnt_fd >= 0)
		close(b->gnt_fd);
	if (b->sock >= 0)
		close(b->sock);
	if (b->reply_fd >= 0)
		close(b->reply_fd);
	xvd_ua_destroy(&b->refs);
	free(b);
}

static const struct drv_bus_ops loop_ops = {
	.name = "loop",
	.close = loop_close,
	.domid = loop_domid,
	.backend_domid = loop_bdomid,
	.gnt_alloc = loop_gnt_alloc,
	.gnt_free = loop_gnt_free,
	.gnt_grant = loop_gnt_grant,
	.gnt_revoke = loop_gnt_revoke,
	.mem_alloc = loop_mem_alloc,
	.mem_free = loop_mem_free,
	.mem_share = loop_mem_share,
	.evtchn_alloc = loop_evtchn_alloc,
	.evtchn_free = loop_evtchn_free,
	.evtchn_notify = loop_evtchn_notify,
	.evtchn_ack = loop_evtchn_ack,
	.evtchn_fd = loop_evtchn_fd,
	.get_fd = loop_get_fd,
	.dispatch = loop_dispatch,
	.wait = loop_wait,
	.attach = loop_attach,
	.detach = loop_detach,
	.store_write = loop_store_write,
	.store_read = loop_store_read,
};

int drv_loop_open(const char *socket_path, unsigned int gnt_entries, int timeout_ms,
		  const struct xvd_logger *log, struct drv_bus **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct xvmsg_loop_hello hello = { htole32(XVMSG_LOOP_VERSION), htole32(gnt_entries) };
	struct xvmsg_loop_hello_reply rep;
	struct loop_bus *b;
	int r;

	if (strlen(socket_path) >= sizeof(sa.sun_path) || gnt_entries <= XVMSG_LOOP_GNT_RESERVED ||
	    gnt_entries > XVMSG_LOOP_MAX_GNT_ENTRIES)
		return -EINVAL;
	strcpy(sa.sun_path, socket_path);
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->bus.ops = &loop_ops;
	b->log = log;
	b->timeout_ms = timeout_ms;
	b->gnt_fd = -1;
	b->reply_fd = -1;
	b->next_port = 1;
	b->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (b->sock < 0 || connect(b->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		xvd_logf(log, XVD_LOG_ERR, "loop bus: connect %s: %s", socket_path, strerror(-r));
		goto err;
	}
	r = xvd_ua_init(&b->refs, gnt_entries);
	if (r < 0)
		goto err;
	xvd_ua_leak(&b->refs, 0, XVMSG_LOOP_GNT_RESERVED);
	b->ngnt = gnt_entries;
	b->gnt_fd = memfd_create("xvmsg-gnttab", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (b->gnt_fd < 0 || ftruncate(b->gnt_fd, (off_t)gnt_entries * sizeof(*b->gnt)) < 0 ||
	    fcntl(b->gnt_fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
		r = -errno;
		goto err;
	}
	b->gnt = mmap(NULL, (size_t)gnt_entries * sizeof(*b->gnt), PROT_READ | PROT_WRITE,
		      MAP_SHARED, b->gnt_fd, 0);
	if (b->gnt == MAP_FAILED) {
		b->gnt = NULL;
		r = -errno;
		goto err;
	}
	r = loop_call(b, XVMSG_LOOP_OP_HELLO, &hello, sizeof(hello), &b->gnt_fd, 1);
	if (r == 0 && b->reply_len < sizeof(rep))
		r = -EPROTO;
	if (r < 0) {
		xvd_logf(log, XVD_LOG_ERR, "loop bus: HELLO: %s", strerror(-r));
		goto err;
	}
	memcpy(&rep, b->reply, sizeof(rep));
	b->domid = le16toh(rep.frontend_domid);
	b->bdomid = le16toh(rep.backend_domid);
	snprintf(b->be_prefix, sizeof(b->be_prefix), "/local/domain/%u/backend/%s/%u/",
		 b->bdomid, XVMSG_XS_CLASS, b->domid);
	*out = &b->bus;
	return 0;
err:
	loop_close(&b->bus);
	return r;
}
