// SPDX-License-Identifier: MIT
/*
 * Unit tests of the loopback bus's descriptor handling: running out of file
 * descriptors (every event channel and region a guest registers keeps
 * descriptors open in the backend), releasing them (UNREGION,
 * EVTCHN_CLOSE), and the per-guest quotas; the store (keys a guest may
 * write, its quota, what goes when it goes).  This process plays both sides:
 * the bus, and raw clients on its socket.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/sockios.h>
#include <unistd.h>

#include <cmocka.h>

#include <xvmsg/loop.h>
#include <xvmsg/xenbus.h>

#include "bus.h"
#include "device.h"
#include "send-fds.h"

struct fx {
	char dir[48], sock[64];
	struct xvb_bus *bus;
	unsigned int events;	/* event-channel events the bus delivered */
	struct rlimit lim;
	int hog[4096];
	unsigned int nhog;
};

static void no_watch(void *ctx, const char *path) {}
static void count_event(void *ctx, uint32_t port)
{
	((struct fx *)ctx)->events++;
}

static long count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	long n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1;		/* the directory's own */
}

static int setup_quota(void **state, unsigned int max_guest_fds, unsigned int max_guest_maps)
{
	struct xvb_bus_events ev = { NULL, no_watch, count_event };
	static const struct xvb_export exports[] = {
		{ .name = "rng0", .type = "rng" }, { .name = "rng1", .type = "rng" },
	};
	struct xvb_loop_opts o = { .allow_full = true, .max_guest_fds = max_guest_fds,
				   .max_guest_maps = max_guest_maps, .exports = exports,
				   .nr_exports = 2 };
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	ev.ctx = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/xvmsg-busloop-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/s", f->dir);
	o.socket_path = f->sock;
	assert_int_equal(xvb_loop_create(&o, &ev, &f->bus), 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &f->lim), 0);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_quota(state, 0, 0);	/* the default quotas */
}

#define SMALL_QUOTA 10

static int setup_small(void **state)
{
	return setup_quota(state, SMALL_QUOTA, 0);
}

static int setup_roomy(void **state)
{
	return setup_quota(state, 1000, 0);
}

static void unhog(struct fx *f)
{
	while (f->nhog)
		close(f->hog[--f->nhog]);
	setrlimit(RLIMIT_NOFILE, &f->lim);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	unhog(f);
	f->bus->ops->destroy(f->bus);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Use up every descriptor but `leave`, under a low limit. */
static void hog(struct fx *f, unsigned int leave)
{
	struct rlimit l = f->lim;
	int fd;

	l.rlim_cur = 256;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &l), 0);
	while (f->nhog < 4096 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		f->hog[f->nhog++] = fd;
	assert_int_equal(errno, EMFILE);
	while (leave-- && f->nhog)
		close(f->hog[--f->nhog]);
}

static int client(struct fx *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(s >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
	assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return s;
}

static void send_op(int s, uint32_t op, const void *p, size_t len, const int *fds, unsigned int n)
{
	char buf[XVMSG_LOOP_MAX_PACKET];
	struct xvmsg_loop_hdr h = { htole32(op), htole32((uint32_t)len), htole32(7), 0 };

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), p, len);
	if (xt_send_fds(s, buf, sizeof(h) + len, fds, n, 0) != (ssize_t)(sizeof(h) + len))
		fail_msg("sendmsg op %u: %s", op, strerror(errno));
}

/* One packet from s: its length, or -1 if none; a descriptor it carried
 * to *fd (-1 if none; closed if fd is NULL). */
static ssize_t recv_packet(int s, char *buf, size_t len, int *fd)
{
	char cbuf[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov = { buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(s, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	int got = -1;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n >= 0 && cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			assert_int_equal(cm->cmsg_len, CMSG_LEN(sizeof(int)));	/* one at most */
			memcpy(&got, CMSG_DATA(cm), sizeof(int));
		}
	if (fd)
		*fd = got;
	else if (got >= 0)
		close(got);
	return n;
}

/* The reply's status, or 1 if the bus hung up; its payload to out, the
 * descriptor it carried to *fd (-1: none).  Store events (writes to the
 * sender's backend dirs) are skipped. */
static int reply_pf(struct fx *f, int s, void *out, size_t outlen, int *fd)
{
	struct xvmsg_loop_hdr h;
	char buf[1024];
	ssize_t n;

	for (int i = 0; i < 20; i++) {	/* accept, then read: rounds of dispatch */
		assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
		while ((n = recv_packet(s, buf, sizeof(buf), fd)) >= (ssize_t)sizeof(h) &&
		       le32toh(((struct xvmsg_loop_hdr *)buf)->op) == XVMSG_LOOP_OP_STORE_EVENT)
			;
		if (n >= 0)
			break;
	}
	if (n == 0)
		return 1;
	assert_true(n >= (ssize_t)sizeof(h));
	memcpy(&h, buf, sizeof(h));
	if (out) {
		assert_true((size_t)n >= sizeof(h) + outlen);
		memcpy(out, buf + sizeof(h), outlen);
	}
	return (int)le32toh(h.status);
}

static int reply_p(struct fx *f, int s, void *out, size_t outlen)
{
	return reply_pf(f, s, out, outlen, NULL);
}

static int reply(struct fx *f, int s)
{
	return reply_p(f, s, NULL, 0);
}

static int region_fd(unsigned int pages);
static int op_evtchn(struct fx *f, int s, uint32_t port, int *fd);

/* HELLO; returns the domid the bus gave. */
static uint32_t hello(struct fx *f, int s)
{
	struct xvmsg_loop_hello h = { htole32(XVMSG_LOOP_VERSION), htole32(64) };
	int fd = memfd_create("gnt", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64 * sizeof(struct xvmsg_loop_gnt)), 0);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	struct xvmsg_loop_hello_reply r;

	send_op(s, XVMSG_LOOP_OP_HELLO, &h, sizeof(h), &fd, 1);
	close(fd);
	assert_int_equal(reply_p(f, s, &r, sizeof(r)), 0);
	return le16toh(r.frontend_domid);
}

/* EVTCHN out of descriptors (the channel's socketpair needs two, one of
 * them only until the reply is sent): -EMFILE, nothing kept, and the
 * connection works once there is room again. */
static void test_evtchn_out_of_fds(void **state)
{
	struct fx *f = *state;
	int s = client(f), fd;
	long base;

	hello(f, s);
	base = count_fds();
	hog(f, 1);			/* room for one of the two */
	assert_int_equal(op_evtchn(f, s, 5, NULL), -EMFILE);
	hog(f, 0);			/* room for none */
	assert_int_equal(op_evtchn(f, s, 5, NULL), -EMFILE);
	unhog(f);
	assert_int_equal(count_fds(), base);
	assert_int_equal(op_evtchn(f, s, 5, &fd), 0);
	assert_true(fd >= 0);
	assert_int_equal(count_fds(), base + 2);	/* the bus's end, ours */
	close(fd);
	close(s);
}

/* Descriptors that cannot all be received (more than any request carries,
 * or any with EVTCHN, which takes none): refused, nothing kept, the
 * connection kept. */
static void test_too_many_fds(void **state)
{
	struct fx *f = *state;
	struct xvmsg_loop_region r = { htole64(0x100), htole64(1) };
	struct xvmsg_loop_evtchn ev = { htole32(6), 0 };
	int s = client(f), fds[6];
	long before;

	hello(f, s);
	for (int i = 0; i < 6; i++)
		fds[i] = region_fd(1);
	before = count_fds();
	{
		/* 6 fds do not fit the bus's control buffer of 4 */
		char buf[64], cbuf[CMSG_SPACE(6 * sizeof(int))];
		struct xvmsg_loop_hdr h = { htole32(XVMSG_LOOP_OP_REGION), htole32(sizeof(r)),
					    htole32(8), 0 };
		struct iovec iov = { buf, sizeof(h) + sizeof(r) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

		memcpy(buf, &h, sizeof(h));
		memcpy(buf + sizeof(h), &r, sizeof(r));
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(6 * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, sizeof(fds));
		assert_true(sendmsg(s, &mh, MSG_NOSIGNAL) > 0);
	}
	assert_int_equal(reply(f, s), -EINVAL);
	assert_int_equal(count_fds(), before);	/* what did arrive was closed */
	send_op(s, XVMSG_LOOP_OP_EVTCHN, &ev, sizeof(ev), fds, 2);
	assert_int_equal(reply(f, s), -EINVAL);
	assert_int_equal(count_fds(), before);
	send_op(s, XVMSG_LOOP_OP_REGION, &r, sizeof(r), fds, 1);
	assert_int_equal(reply(f, s), 0);
	assert_int_equal(count_fds(), before + 1);
	for (int i = 0; i < 6; i++)
		close(fds[i]);
	close(s);
}

/* A connection arriving while no descriptor is left is hung up at once,
 * and the listening socket does not stay readable (no busy loop). */
static void test_accept_out_of_fds(void **state)
{
	struct fx *f = *state;
	struct pollfd p = { .fd = f->bus->ops->get_fd(f->bus), .events = POLLIN };
	int s, alive = client(f);
	char b;

	hello(f, alive);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	hog(f, 0);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
		assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
	assert_int_equal(recv(s, &b, 1, MSG_DONTWAIT), 0);	/* hung up */
	assert_int_equal(poll(&p, 1, 0), 0);			/* nothing pending */
	unhog(f);
	close(s);
	/* The bus still takes connections, and the earlier one still works. */
	s = client(f);
	hello(f, s);
	{
		struct xvmsg_loop_devid d = { htole32(3), 0 };

		send_op(alive, XVMSG_LOOP_OP_DETACH, &d, sizeof(d), NULL, 0);
		assert_int_equal(reply(f, alive), -ENOENT);
	}
	close(s);
	close(alive);
}

/* ---- releasing regions and event channels ---- */

/* A sealed memfd of `pages` pages, page i filled with byte 'A' + i. */
static int region_fd(unsigned int pages)
{
	int fd = memfd_create("xvmsg-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	char page[4096];

	assert_true(fd >= 0);
	for (unsigned int i = 0; i < pages; i++) {
		memset(page, 'A' + (int)i, sizeof(page));
		assert_int_equal(write(fd, page, sizeof(page)), (ssize_t)sizeof(page));
	}
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	return fd;
}

static int op_region(struct fx *f, int s, uint64_t gfn, uint64_t pages)
{
	struct xvmsg_loop_region r = { htole64(gfn), htole64(pages) };
	int fd = region_fd((unsigned int)pages);

	send_op(s, XVMSG_LOOP_OP_REGION, &r, sizeof(r), &fd, 1);
	close(fd);
	return reply(f, s);
}

static int op_unregion(struct fx *f, int s, uint64_t gfn)
{
	struct xvmsg_loop_unregion u = { htole64(gfn) };

	send_op(s, XVMSG_LOOP_OP_UNREGION, &u, sizeof(u), NULL, 0);
	return reply(f, s);
}

/* EVTCHN: the reply's status; the channel's end it carried to *fd (or
 * closed). */
static int op_evtchn(struct fx *f, int s, uint32_t port, int *fd)
{
	struct xvmsg_loop_evtchn ev = { htole32(port), 0 };
	int mine, r;

	send_op(s, XVMSG_LOOP_OP_EVTCHN, &ev, sizeof(ev), NULL, 0);
	r = reply_pf(f, s, NULL, 0, &mine);
	assert_true(r == 0 ? mine >= 0 : mine < 0);	/* an end with success only */
	if (fd)
		*fd = mine;
	else if (mine >= 0)
		close(mine);
	return r;
}

static int op_evtchn_close(struct fx *f, int s, uint32_t port)
{
	struct xvmsg_loop_evtchn ev = { htole32(port), 0 };

	send_op(s, XVMSG_LOOP_OP_EVTCHN_CLOSE, &ev, sizeof(ev), NULL, 0);
	return reply(f, s);
}

/* UNREGION: unknown gfn, release, double release, the slot reusable; a
 * descriptor sent along is refused and not kept. */
static void test_unregion(void **state)
{
	struct fx *f = *state;
	int s = client(f), fd;
	long base;

	hello(f, s);
	base = count_fds();
	assert_int_equal(op_unregion(f, s, 0x100), -ENOENT);	/* nothing yet */
	assert_int_equal(op_region(f, s, 0x100, 2), 0);
	assert_int_equal(count_fds(), base + 1);
	assert_int_equal(op_unregion(f, s, 0x101), -ENOENT);	/* inside, not its base */
	assert_int_equal(op_unregion(f, s, 0x200), -ENOENT);
	{
		struct xvmsg_loop_unregion u = { htole64(0x100) };

		fd = region_fd(1);
		send_op(s, XVMSG_LOOP_OP_UNREGION, &u, sizeof(u), &fd, 1);
		close(fd);
		assert_int_equal(reply(f, s), -EINVAL);
		send_op(s, XVMSG_LOOP_OP_UNREGION, &u, 4, NULL, 0);	/* short */
		assert_int_equal(reply(f, s), -EINVAL);
	}
	assert_int_equal(count_fds(), base + 1);
	assert_int_equal(op_unregion(f, s, 0x100), 0);
	assert_int_equal(count_fds(), base);
	assert_int_equal(op_unregion(f, s, 0x100), -ENOENT);	/* double release */
	assert_int_equal(op_region(f, s, 0x100, 1), 0);		/* the frames are free */
	assert_int_equal(op_unregion(f, s, 0x100), 0);
	assert_int_equal(count_fds(), base);
	close(s);
}

/* A region released while the backend maps it: the mapping stays valid
 * (no SIGBUS, the same memory), new maps fail, unmap works. */
static void test_unregion_mapped(void **state)
{
	struct fx *f = *state;
	int s = client(f);
	uint32_t domid = hello(f, s);
	uint64_t frames[2] = { 0x300, 0x301 };
	unsigned char *va;
	void *addr, *again;
	long base = count_fds();

	assert_int_equal(op_region(f, s, 0x300, 2), 0);
	assert_int_equal(f->bus->ops->map(f->bus, domid, XVB_SPACE_FRAME, frames, 2, true, &addr),
			 0);
	assert_int_equal(op_unregion(f, s, 0x300), 0);
	assert_int_equal(count_fds(), base);			/* the fd went */
	va = addr;
	assert_int_equal(va[0], 'A');
	assert_int_equal(va[4096 + 17], 'B');
	va[5] = 'z';						/* still writable */
	assert_int_equal(va[5], 'z');
	assert_int_equal(f->bus->ops->map(f->bus, domid, XVB_SPACE_FRAME, frames, 1, false,
					  &again), -EFAULT);	/* no new maps */
	assert_int_equal(f->bus->ops->unmap(f->bus, addr, 2), 0);
	close(s);
}

/* EVTCHN_CLOSE: unknown port, refused while bound (the bound port keeps
 * working both ways), released after unbind, double release; fds back to
 * baseline. */
static void test_evtchn_close(void **state)
{
	struct fx *f = *state;
	int s = client(f), fd;
	uint32_t domid = hello(f, s), local;
	long base = count_fds();
	char b;

	assert_int_equal(op_evtchn_close(f, s, 5), -ENOENT);
	assert_int_equal(op_evtchn(f, s, 5, &fd), 0);
	assert_int_equal(count_fds(), base + 2);		/* ours 1, the bus's 1 */
	assert_int_equal(op_evtchn_close(f, s, 6), -ENOENT);
	assert_int_equal(f->bus->ops->evtchn_bind(f->bus, domid, 5, &local), 0);
	assert_int_equal(count_fds(), base + 3);		/* the port's copy */
	assert_int_equal(op_evtchn_close(f, s, 5), -EBUSY);
	assert_int_equal(f->bus->ops->evtchn_notify(f->bus, local), 0);
	assert_int_equal(recv(fd, &b, 1, MSG_DONTWAIT), 1);
	assert_int_equal(recv(fd, &b, 1, MSG_DONTWAIT), -1);	/* one notify, one datagram */
	f->events = 0;
	assert_int_equal(send(fd, "k", 1, MSG_DONTWAIT), 1);
	assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
	assert_int_equal(f->events, 1);
	assert_int_equal(f->bus->ops->evtchn_unbind(f->bus, local), 0);
	assert_int_equal(op_evtchn_close(f, s, 5), 0);
	assert_int_equal(count_fds(), base + 1);		/* only ours left */
	assert_int_equal(op_evtchn_close(f, s, 5), -ENOENT);	/* double release */
	{
		struct xvmsg_loop_evtchn ev = { htole32(5), 0 };

		send_op(s, XVMSG_LOOP_OP_EVTCHN_CLOSE, &ev, sizeof(ev), &fd, 1);
		assert_int_equal(reply(f, s), -EINVAL);		/* fds are not taken */
	}
	assert_int_equal(count_fds(), base + 1);
	close(fd);
	/* The port number can be registered and bound again. */
	assert_int_equal(op_evtchn(f, s, 5, NULL), 0);
	assert_int_equal(f->bus->ops->evtchn_bind(f->bus, domid, 5, &local), 0);
	assert_int_equal(f->bus->ops->evtchn_unbind(f->bus, local), 0);
	assert_int_equal(op_evtchn_close(f, s, 5), 0);
	assert_int_equal(count_fds(), base);
	close(s);
}

/* Nothing of the bus's is pending: its epoll fd is not readable. */
static bool bus_idle(struct fx *f)
{
	struct pollfd p = { .fd = f->bus->ops->get_fd(f->bus), .events = POLLIN };

	return poll(&p, 1, 0) == 0;
}

/*
 * What a driver can do to its end of a channel cannot block or spin the
 * backend.  With eventfds (protocol 1) the flags were shared: a driver that
 * filled its irq counter and cleared O_NONBLOCK made the backend's next
 * notify block for good.  SIGALRM ends this test as a failure should a
 * notify block.
 */
static void test_evtchn_hostile_driver(void **state)
{
	struct fx *f = *state;
	int s = client(f), fd[4], got = 0, sent = 0, rounds;
	uint32_t domid = hello(f, s), local[4];
	struct sockaddr_un elsewhere = { .sun_family = AF_UNIX };
	int other;
	char b;

	for (unsigned int i = 0; i < 4; i++) {
		assert_int_equal(op_evtchn(f, s, i + 1, &fd[i]), 0);
		assert_int_equal(f->bus->ops->evtchn_bind(f->bus, domid, i + 1, &local[i]), 0);
	}
	alarm(20);
	/* 1. Its end made blocking and never read: every notify returns, the
	 * queue holds a bounded number. */
	assert_int_equal(fcntl(fd[0], F_SETFL, 0), 0);
	for (unsigned int k = 0; k < 10000; k++)
		assert_int_equal(f->bus->ops->evtchn_notify(f->bus, local[0]), 0);
	while (recv(fd[0], &b, 1, MSG_DONTWAIT) == 1)
		got++;
	assert_true(got >= 1 && got <= 1000);
	/* 2. A flood of kicks, the driver's send buffer raised to the most it
	 * may have (thousands of datagrams): the queue fills (the driver's
	 * send fails); each dispatch takes up to 512 and makes one event; then
	 * nothing stays readable. */
	assert_int_equal(setsockopt(fd[0], SOL_SOCKET, SO_SNDBUF, &(int){ 1 << 30 }, sizeof(int)),
			 0);
	while (sent < 1000000 && send(fd[0], "k", 1, MSG_DONTWAIT) == 1)
		sent++;
	assert_true(sent >= 1 && sent < 1000000);
	f->events = 0;
	for (rounds = 0; rounds <= sent / 512 + 1 && !bus_idle(f); rounds++)
		assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
	assert_true(bus_idle(f));
	assert_int_equal(f->events, rounds);
	assert_true(rounds >= 1);
	/* 3. Its end shut down: notify succeeds (nobody to hear it), nothing
	 * for the bus to read. */
	assert_int_equal(shutdown(fd[1], SHUT_RDWR), 0);
	assert_int_equal(f->bus->ops->evtchn_notify(f->bus, local[1]), 0);
	assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
	assert_true(bus_idle(f));
	/* 4. Its end connected to another socket: our end reports the loss
	 * once (ECONNRESET), then is quiet; notify succeeds. */
	other = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(other >= 0);
	snprintf(elsewhere.sun_path, sizeof(elsewhere.sun_path), "%s/other", f->dir);
	assert_int_equal(bind(other, (struct sockaddr *)&elsewhere, sizeof(elsewhere)), 0);
	assert_int_equal(connect(fd[2], (struct sockaddr *)&elsewhere, sizeof(elsewhere)), 0);
	assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
	assert_true(bus_idle(f));
	assert_int_equal(f->bus->ops->evtchn_notify(f->bus, local[2]), 0);
	assert_int_equal(recv(other, &b, 1, MSG_DONTWAIT), -1);	/* it reached nobody */
	/* 5. Its end closed: notify succeeds, twice (refused, then not
	 * connected), the bus stays idle. */
	close(fd[3]);
	assert_int_equal(f->bus->ops->evtchn_notify(f->bus, local[3]), 0);
	assert_int_equal(f->bus->ops->evtchn_notify(f->bus, local[3]), 0);
	assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
	assert_true(bus_idle(f));
	alarm(0);
	for (unsigned int i = 0; i < 4; i++)
		assert_int_equal(f->bus->ops->evtchn_unbind(f->bus, local[i]), 0);
	for (unsigned int i = 0; i < 3; i++)
		close(fd[i]);
	close(other);
	unlink(elsewhere.sun_path);
	close(s);
}

/* Bytes the peer of fd has not taken yet from what fd sent. */
static int unread(int fd)
{
	int n = -1;

	assert_int_equal(ioctl(fd, SIOCOUTQ, &n), 0);
	return n;
}

/*
 * A channel nobody has bound is drained all the same: the driver cannot
 * leave data queued on the backend's end (charged to nobody's quota,
 * kept after the driver closes its end) by filling it and closing.  Bound
 * and unbound again, the same.
 */
static void test_evtchn_unbound_drained(void **state)
{
	struct fx *f = *state;
	int s = client(f), fd;
	uint32_t domid = hello(f, s), local;
	static char big[60000];

	assert_int_equal(op_evtchn(f, s, 5, &fd), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ 1 << 30 }, sizeof(int)),
			 0);
	for (unsigned int round = 0; round < 2; round++) {
		unsigned int sent = 0;

		while (sent < 100000 && send(fd, big, sizeof(big), MSG_DONTWAIT) > 0)
			sent++;
		assert_true(sent >= 1);
		assert_true(unread(fd) > 0);
		for (unsigned int i = 0; i < 100 && unread(fd) > 0; i++)
			assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
		assert_int_equal(unread(fd), 0);
		assert_true(bus_idle(f));
		/* Bound for a while, then unbound: drained again after. */
		assert_int_equal(f->bus->ops->evtchn_bind(f->bus, domid, 5, &local), 0);
		assert_int_equal(f->bus->ops->evtchn_unbind(f->bus, local), 0);
	}
	f->events = 0;
	assert_int_equal(send(fd, "k", 1, MSG_DONTWAIT), 1);	/* unbound: no event */
	assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
	assert_int_equal(f->events, 0);
	assert_int_equal(unread(fd), 0);
	close(fd);
	close(s);
}

/*
 * Channel ends sent with EVTCHN replies the driver does not read stay in
 * flight, charged by the kernel to the backend's user: at most 130 per
 * connection (twice the channels of the largest device), further EVTCHN
 * requests get -EAGAIN (nothing made) until the driver has read its
 * replies.
 */
static void test_evtchn_unread_replies_bounded(void **state)
{
	struct fx *f = *state;
	int s = client(f), ok = 0, again = 0, fd;
	struct xvmsg_loop_evtchn ev = { 0 };

	hello(f, s);
	for (unsigned int i = 0; i < 200; i++) {
		ev.port = htole32(i + 1);
		send_op(s, XVMSG_LOOP_OP_EVTCHN, &ev, sizeof(ev), NULL, 0);
	}
	for (unsigned int i = 0; i < 400; i++)		/* one request per dispatch */
		assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
	for (unsigned int i = 0; i < 200; i++) {
		int r = reply_pf(f, s, NULL, 0, &fd);

		if (r == 0 && fd >= 0) {
			ok++;
			close(fd);
		} else {
			assert_int_equal(r, -EAGAIN);
			assert_int_equal(fd, -1);
			again++;
		}
	}
	assert_int_equal(ok, 2 * (XVMSG_MAX_QUEUES + 1));	/* 130 */
	assert_int_equal(again, 200 - 2 * (XVMSG_MAX_QUEUES + 1));
	/* All read: channels can be made again. */
	assert_int_equal(op_evtchn(f, s, 200, NULL), 0);
	close(s);
}

/*
 * The kernel refuses to send a descriptor when the sender's user has more
 * in flight than its RLIMIT_NOFILE (ETOOMANYREFS): hostile connections that
 * make and close channels and never read their replies can get there (130
 * each at most, test_evtchn_unread_replies_bounded), and then an innocent guest's
 * EVTCHN reply cannot carry its end.  That guest gets -EMFILE and keeps its
 * connection (once it was dropped, all its devices with it); the hostile
 * ones too.  Needs root, to run the bus as an unprivileged user (root is
 * not limited).
 */
static int inflight_child(void)
{
	struct fx f = { 0 };
	void *st = &f;
	int h[2], inno, fd, r, step = 1;

	if (setgid(65534) || setuid(65534))
		return step;
	step++;
	if (setrlimit(RLIMIT_NOFILE, &(struct rlimit){ 100, 100 }))
		return step;
	step++;
	{
		struct fx *fp;

		setup_quota(&st, 1000, 0);	/* room for 64 channels each */
		fp = st;
		f = *fp;
		free(fp);
	}
	/* The innocent is there first: here the guests are the backend's user
	 * too, and its HELLO's memfd would not get through afterwards. */
	inno = client(&f);
	hello(&f, inno);
	for (int k = 0; k < 2; k++) {
		h[k] = client(&f);
		hello(&f, h[k]);
		/* Made and closed at once: our ends go, theirs stay in
		 * flight in the replies they never read. */
		for (unsigned int i = 0; i < 64; i++) {
			struct xvmsg_loop_evtchn ev = { htole32(i + 1), 0 };

			send_op(h[k], XVMSG_LOOP_OP_EVTCHN, &ev, sizeof(ev), NULL, 0);
			send_op(h[k], XVMSG_LOOP_OP_EVTCHN_CLOSE, &ev, sizeof(ev), NULL, 0);
		}
		for (unsigned int i = 0; i < 200; i++)
			f.bus->ops->dispatch(f.bus);
	}
	step++;
	r = op_evtchn(&f, inno, 1, &fd);
	if (r != -EMFILE) {
		fprintf(stderr, "innocent EVTCHN: %d\n", r);
		return step;
	}
	step++;
	{
		struct xvmsg_loop_devid d = { htole32(3), 0 };

		send_op(inno, XVMSG_LOOP_OP_DETACH, &d, sizeof(d), NULL, 0);
		if (reply(&f, inno) != -ENOENT)		/* still connected */
			return step;
	}
	step++;
	close(h[0]);
	close(h[1]);
	f.bus->ops->dispatch(f.bus);
	if (op_evtchn(&f, inno, 2, &fd) != 0 || fd < 0)
		return step;
	close(fd);
	close(inno);
	f.bus->ops->destroy(f.bus);
	rmdir(f.dir);
	return 0;
}

/* In the child, as a test of its own: its helpers assert through cmocka,
 * and a failure returns to the runner that is running it, this one, which
 * prints it and returns, rather than to the parent's, which would go on with
 * the rest of the suite in a second process. */
static void inflight_child_test(void **state)
{
	(void)state;
	assert_int_equal(inflight_child(), 0);
}

static void test_evtchn_inflight_limit_no_kill(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	if (geteuid() != 0) {
		print_message("needs root to run the bus as another user\n");
		skip();
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const struct CMUnitTest child[] = { cmocka_unit_test(inflight_child_test) };

		_exit(cmocka_run_group_tests_name("inflight child", child, NULL, NULL) ? 1 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status))
		print_message("child: killed by signal %d\n", WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* What a device open/close does, 300 times on one connection: once a
 * connection could share only 64 regions in its lifetime. */
static void test_release_churn(void **state)
{
	struct fx *f = *state;
	int s = client(f);
	uint32_t domid = hello(f, s), local[2];
	long base = count_fds();

	for (unsigned int k = 0; k < 300; k++) {
		uint64_t gfn = 0x100000 + (uint64_t)k * 0x20;

		assert_int_equal(op_region(f, s, gfn, 1), 0);
		assert_int_equal(op_evtchn(f, s, 2 * k + 1, NULL), 0);
		assert_int_equal(op_evtchn(f, s, 2 * k + 2, NULL), 0);
		assert_int_equal(f->bus->ops->evtchn_bind(f->bus, domid, 2 * k + 1, &local[0]), 0);
		assert_int_equal(f->bus->ops->evtchn_bind(f->bus, domid, 2 * k + 2, &local[1]), 0);
		assert_int_equal(f->bus->ops->evtchn_unbind(f->bus, local[0]), 0);
		assert_int_equal(f->bus->ops->evtchn_unbind(f->bus, local[1]), 0);
		assert_int_equal(op_evtchn_close(f, s, 2 * k + 1), 0);
		assert_int_equal(op_evtchn_close(f, s, 2 * k + 2), 0);
		assert_int_equal(op_unregion(f, s, gfn), 0);
		assert_int_equal(count_fds(), base);
	}
	close(s);
}

/* ---- the per-guest quota ---- */

/* A guest at its quota gets -EDQUOT for regions and channels, keeps its
 * connection, gets room back by releasing; another guest is unaffected. */
static void test_quota(void **state)
{
	struct fx *f = *state;
	int a = client(f), b = client(f);
	unsigned int n;
	long base;

	hello(f, a);
	hello(f, b);
	base = count_fds();
	for (n = 0; n < 100 && op_evtchn(f, a, n + 1, NULL) == 0; n++)
		;
	assert_int_equal(n, SMALL_QUOTA);			/* one fd each */
	assert_int_equal(op_evtchn(f, a, 50, NULL), -EDQUOT);
	assert_int_equal(op_region(f, a, 0x100, 1), -EDQUOT);
	assert_int_equal(count_fds(), base + SMALL_QUOTA);	/* refused ones not kept */
	/* The other guest still gets its full quota. */
	assert_int_equal(op_region(f, b, 0x100, 1), 0);
	assert_int_equal(op_evtchn(f, b, 1, NULL), 0);
	/* Releasing one channel makes room for a region, not then a channel. */
	assert_int_equal(op_evtchn_close(f, a, 1), 0);
	assert_int_equal(op_region(f, a, 0x100, 1), 0);		/* the 10th fd */
	assert_int_equal(op_evtchn(f, a, 51, NULL), -EDQUOT);
	assert_int_equal(op_region(f, a, 0x300, 1), -EDQUOT);
	assert_int_equal(op_evtchn_close(f, a, 2), 0);
	assert_int_equal(op_evtchn(f, a, 51, NULL), 0);
	/* The connection is fine: other requests work. */
	{
		struct xvmsg_loop_devid d = { htole32(3), 0 };

		send_op(a, XVMSG_LOOP_OP_DETACH, &d, sizeof(d), NULL, 0);
		assert_int_equal(reply(f, a), -ENOENT);
	}
	/* A guest that leaves gives everything back. */
	close(a);
	assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
	assert_int_equal(count_fds(), base + 2 - 2);		/* b's 2; a's 2 sockets gone */
	close(b);
}

/* The copy a bound channel keeps counts too: binding is refused at the
 * quota, and unbinding gives the room back. */
static void test_quota_counts_bound(void **state)
{
	struct fx *f = *state;
	int a = client(f);
	uint32_t domid = hello(f, a), local[SMALL_QUOTA];
	unsigned int i;
	long base = count_fds();

	/* Four channels (4 fds), all bound (4 more): 8 of the 10. */
	for (i = 0; i < 4; i++) {
		assert_int_equal(op_evtchn(f, a, i + 1, NULL), 0);
		assert_int_equal(f->bus->ops->evtchn_bind(f->bus, domid, i + 1, &local[i]), 0);
	}
	assert_int_equal(count_fds(), base + 8);
	/* Two more fit (10), but binding one would make 11. */
	assert_int_equal(op_evtchn(f, a, 5, NULL), 0);
	assert_int_equal(op_evtchn(f, a, 6, NULL), 0);
	assert_int_equal(f->bus->ops->evtchn_bind(f->bus, domid, 5, &local[4]), -EDQUOT);
	assert_int_equal(count_fds(), base + 10);
	assert_int_equal(op_region(f, a, 0x100, 1), -EDQUOT);
	/* Unbinding one makes room for the other. */
	assert_int_equal(f->bus->ops->evtchn_unbind(f->bus, local[0]), 0);
	assert_int_equal(f->bus->ops->evtchn_bind(f->bus, domid, 5, &local[4]), 0);
	for (i = 1; i < 5; i++)
		assert_int_equal(f->bus->ops->evtchn_unbind(f->bus, local[i]), 0);
	close(a);
	assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
}

#define MAP_QUOTA 4

static int setup_maps(void **state)
{
	return setup_quota(state, 0, MAP_QUOTA);
}

/* A guest's mappings count against its quota, one per run of frames the
 * kernel has to map; beyond it a map fails with -EDQUOT and changes
 * nothing; unmapping gives the room back; another guest is unaffected. */
static void test_map_quota(void **state)
{
	struct fx *f = *state;
	int a = client(f), b = client(f);
	uint32_t da = hello(f, a), db = hello(f, b);
	uint64_t fr[MAP_QUOTA + 1], gap[2] = { 0x100, 0x102 }, run[3] = { 0x100, 0x101, 0x102 };
	void *addr[MAP_QUOTA + 1], *x;
	unsigned int i;

	assert_int_equal(op_region(f, a, 0x100, 8), 0);
	assert_int_equal(op_region(f, b, 0x100, 8), 0);
	for (i = 0; i < MAP_QUOTA; i++) {
		fr[i] = 0x100 + 2 * i;		/* not adjacent: a mapping each */
		assert_int_equal(f->bus->ops->map(f->bus, da, XVB_SPACE_FRAME, &fr[i], 1, false,
						  &addr[i]), 0);
	}
	fr[i] = 0x107;
	assert_int_equal(f->bus->ops->map(f->bus, da, XVB_SPACE_FRAME, &fr[i], 1, false, &x),
			 -EDQUOT);
	/* The other guest maps as before, three frames in a run counting one. */
	for (i = 0; i < MAP_QUOTA; i++) {
		assert_int_equal(f->bus->ops->map(f->bus, db, XVB_SPACE_FRAME, run, 3, true, &x), 0);
		assert_int_equal(f->bus->ops->unmap(f->bus, x, 3), 0);
	}
	/* Room for one: a map of two frames apart needs two. */
	assert_int_equal(f->bus->ops->unmap(f->bus, addr[0], 1), 0);
	assert_int_equal(f->bus->ops->map(f->bus, da, XVB_SPACE_FRAME, gap, 2, false, &x), -EDQUOT);
	assert_int_equal(f->bus->ops->map(f->bus, da, XVB_SPACE_FRAME, run, 3, false, &x), 0);
	assert_int_equal(f->bus->ops->unmap(f->bus, x, 3), 0);
	assert_int_equal(f->bus->ops->unmap(f->bus, addr[1], 1), 0);
	assert_int_equal(f->bus->ops->map(f->bus, da, XVB_SPACE_FRAME, gap, 2, false, &x), 0);
	assert_int_equal(f->bus->ops->unmap(f->bus, x, 2), 0);
	for (i = 2; i < MAP_QUOTA; i++)
		assert_int_equal(f->bus->ops->unmap(f->bus, addr[i], 1), 0);
	close(a);
	close(b);
	assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
}

/* The default mapping quota: an eighth of vm.max_map_count, at least 256. */
static void test_default_map_quota(void **state)
{
	assert_int_equal(xvb_loop_default_guest_maps(65530), 8191);
	assert_int_equal(xvb_loop_default_guest_maps(0), 8191);
	assert_int_equal(xvb_loop_default_guest_maps(1000), 256);
	assert_int_equal(xvb_loop_default_guest_maps(1u << 20), 1u << 17);
}

/* ---- the store ---- */

static int op_attach(struct fx *f, int s, const char *export, uint32_t devid)
{
	struct xvmsg_loop_attach a = { .devid = htole32(devid) };

	snprintf(a.export_name, sizeof(a.export_name), "%s", export);
	send_op(s, XVMSG_LOOP_OP_ATTACH, &a, sizeof(a), NULL, 0);
	return reply(f, s);
}

static int op_detach(struct fx *f, int s, uint32_t devid)
{
	struct xvmsg_loop_devid d = { htole32(devid), 0 };

	send_op(s, XVMSG_LOOP_OP_DETACH, &d, sizeof(d), NULL, 0);
	return reply(f, s);
}

/* WRITE of path (relative ones are taken below the sender's device dirs). */
static int op_write(struct fx *f, int s, uint32_t domid, const char *path, const char *val)
{
	char buf[600];
	int n = path[0] == '/' ? snprintf(buf, sizeof(buf), "%s", path)
			       : snprintf(buf, sizeof(buf), "/local/domain/%u/device/xvmsg/%s",
					  domid, path);

	assert_true(n > 0 && (size_t)n + strlen(val) + 2 <= sizeof(buf));
	memcpy(buf + n + 1, val, strlen(val) + 1);
	send_op(s, XVMSG_LOOP_OP_WRITE, buf, (size_t)n + 2 + strlen(val), NULL, 0);
	return reply(f, s);
}

/* The store's value of path below domid's device dirs, or NULL. */
static const char *fe_read(struct fx *f, uint32_t domid, const char *rel)
{
	static char buf[300];
	char path[300];

	snprintf(path, sizeof(path), "/local/domain/%u/device/xvmsg/%s", domid, rel);
	return f->bus->ops->store_read(f->bus, path, buf, sizeof(buf)) ? NULL : buf;
}

/* ATTACH writes the entry a toolstack writes on Xen (xvmsg-ctl attach,
 * include/xvmsg/toolstack.h), keys and values alike; DETACH removes it. */
static void test_attach_writes_entry(void **state)
{
	struct fx *f = *state;
	int a = client(f);
	uint32_t da = hello(f, a);
	char be[128], fe[128], path[200], val[300];
	static const char *const be_keys[][2] = {
		{ "type", "rng" }, { "params", "" }, { "mode", "pool" },
		{ "pool-pages", "256" }, { "online", "1" }, { "state", "1" },
	};
	unsigned int i;

	assert_int_equal(op_attach(f, a, "rng0", 3), 0);
	snprintf(fe, sizeof(fe), "/local/domain/%u/device/xvmsg/3", da);
	snprintf(be, sizeof(be), "/local/domain/%u/backend/xvmsg/%u/3",
		 XVMSG_LOOP_BACKEND_DOMID, da);
	assert_string_equal(fe_read(f, da, "3/backend"), be);
	snprintf(val, sizeof(val), "%u", XVMSG_LOOP_BACKEND_DOMID);
	assert_string_equal(fe_read(f, da, "3/backend-id"), val);
	assert_string_equal(fe_read(f, da, "3/type"), "rng");
	assert_string_equal(fe_read(f, da, "3/state"), "1");
	for (i = 0; i < sizeof(be_keys) / sizeof(be_keys[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", be, be_keys[i][0]);
		assert_int_equal(f->bus->ops->store_read(f->bus, path, val, sizeof(val)), 0);
		assert_string_equal(val, be_keys[i][1]);
	}
	snprintf(path, sizeof(path), "%s/frontend", be);
	assert_int_equal(f->bus->ops->store_read(f->bus, path, val, sizeof(val)), 0);
	assert_string_equal(val, fe);
	snprintf(path, sizeof(path), "%s/frontend-id", be);
	assert_int_equal(f->bus->ops->store_read(f->bus, path, val, sizeof(val)), 0);
	assert_int_equal(strtoul(val, NULL, 10), da);
	assert_int_equal(op_detach(f, a, 3), 0);
	assert_null(fe_read(f, da, "3/backend"));
	assert_int_not_equal(f->bus->ops->store_read(f->bus, path, val, sizeof(val)), 0);
	close(a);
	assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
}

/* A guest writes only single keys directly in the dirs of devices it has
 * attached: the device id is a canonical decimal followed by '/'.  Before,
 * "1junk/k" passed as device 1 (and was never removed). */
static void test_store_strict_paths(void **state)
{
	struct fx *f = *state;
	int a = client(f);
	uint32_t da = hello(f, a);
	char path[128];

	assert_int_equal(op_attach(f, a, "rng0", 1), 0);
	assert_int_equal(op_write(f, a, da, "1junk/k", "v"), -EACCES);
	assert_int_equal(op_write(f, a, da, "01/k", "v"), -EACCES);
	assert_int_equal(op_write(f, a, da, "1 /k", "v"), -EACCES);
	assert_int_equal(op_write(f, a, da, "+1/k", "v"), -EACCES);
	assert_int_equal(op_write(f, a, da, "1", "v"), -EACCES);
	assert_int_equal(op_write(f, a, da, "1/", "v"), -EACCES);
	assert_int_equal(op_write(f, a, da, "1//k", "v"), -EACCES);
	assert_int_equal(op_write(f, a, da, "1/k/x", "v"), -EACCES);
	assert_int_equal(op_write(f, a, da, "2/k", "v"), -EACCES);	/* not attached */
	assert_int_equal(op_write(f, a, da, "4294967297/k", "v"), -EACCES);	/* wraps to 1 */
	assert_int_equal(op_write(f, a, da, "1/k*", "v"), -EACCES);
	snprintf(path, sizeof(path), "/local/domain/%u/device/xvmsg/1/k", da + 1);
	assert_int_equal(op_write(f, a, da, path, "v"), -EACCES);	/* another guest's */
	assert_null(fe_read(f, da, "1junk/k"));
	assert_null(fe_read(f, da, "01/k"));
	assert_int_equal(op_write(f, a, da, "1/k", "v"), 0);
	assert_int_equal(op_write(f, a, da, "1/vq-0-event-channel", "17"), 0);
	assert_string_equal(fe_read(f, da, "1/k"), "v");
	assert_string_equal(fe_read(f, da, "1/vq-0-event-channel"), "17");
	close(a);
	assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
}

/* Keys a guest may hold: XVB_LOOP_GUEST_KEYS of short values, fewer of
 * long ones (XVB_LOOP_GUEST_STORE_BYTES of paths and values); a rewrite of
 * its own key is fine at the quota; another guest has its own; detaching
 * the device gives all of it back. */
static void test_store_quota(void **state)
{
	struct fx *f = *state;
	int a = client(f), b = client(f);
	uint32_t da = hello(f, a), db = hello(f, b);
	char key[64], val[256];
	size_t bytes = 0, next;
	unsigned int n;
	int r;

	assert_int_equal(op_attach(f, a, "rng0", 1), 0);
	assert_int_equal(op_attach(f, b, "rng1", 1), 0);
	for (n = 0; n < 2 * XVB_LOOP_GUEST_KEYS; n++) {
		snprintf(key, sizeof(key), "1/k%u", n);
		if (op_write(f, a, da, key, "1"))
			break;
	}
	assert_int_equal(n, XVB_LOOP_GUEST_KEYS);
	assert_int_equal(op_write(f, a, da, key, "1"), -EDQUOT);
	assert_null(fe_read(f, da, key));
	assert_int_equal(op_write(f, a, da, "1/k0", "22"), 0);		/* its own key */
	assert_int_equal(op_write(f, a, da, "1/state", "3"), 0);	/* the toolstack's */
	assert_int_equal(op_write(f, b, db, "1/k0", "1"), 0);		/* b is not a */

	/* Detach: everything of the device goes, and with it the usage. */
	assert_int_equal(op_detach(f, a, 1), 0);
	assert_null(fe_read(f, da, "1/k0"));
	assert_int_equal(op_attach(f, a, "rng0", 1), 0);
	memset(val, 'x', 255);
	val[255] = '\0';
	for (n = 0; n < 2 * XVB_LOOP_GUEST_KEYS; n++) {
		snprintf(key, sizeof(key), "1/k%u", n);
		next = strlen("/local/domain//device/xvmsg/") + (size_t)snprintf(NULL, 0, "%u", da) +
		       strlen(key) + 255;
		r = op_write(f, a, da, key, val);
		if (r) {
			assert_int_equal(r, -EDQUOT);
			assert_true(bytes + next > XVB_LOOP_GUEST_STORE_BYTES);
			break;
		}
		bytes += next;
	}
	assert_true(n > 0 && n < XVB_LOOP_GUEST_KEYS);
	assert_true(bytes <= XVB_LOOP_GUEST_STORE_BYTES);
	close(a);
	close(b);
	assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
}

static int count_child(void *arg, const char *child)
{
	(*(unsigned int *)arg)++;
	return 0;
}

/* A guest that goes takes everything it wrote with it: not one of its
 * keys is left, nor its domain's directory.  Before, keys it had put
 * outside its device's dir (1junk/k) stayed until the backend restarted. */
static void test_store_removed_when_guest_leaves(void **state)
{
	struct fx *f = *state;
	int a = client(f), b = client(f);
	uint32_t da = hello(f, a), db = hello(f, b);
	char dom[64], key[32];
	unsigned int n = 0, i;

	assert_int_equal(op_attach(f, a, "rng0", 1), 0);
	assert_int_equal(op_attach(f, b, "rng1", 1), 0);
	op_write(f, a, da, "1junk/k", "v");
	op_write(f, a, da, "01/k", "v");
	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "1/k%u", i);
		assert_int_equal(op_write(f, a, da, key, "v"), 0);
	}
	assert_int_equal(op_write(f, b, db, "1/mine", "v"), 0);
	close(a);
	assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
	assert_null(fe_read(f, da, "1junk/k"));
	assert_null(fe_read(f, da, "01/k"));
	assert_null(fe_read(f, da, "1/k0"));
	snprintf(dom, sizeof(dom), "/local/domain/%u", da);
	assert_int_equal(f->bus->ops->store_dir(f->bus, dom, count_child, &n), -ENOENT);
	/* The other guest keeps its own. */
	assert_string_equal(fe_read(f, db, "1/mine"), "v");
	close(b);
	assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
}

/* The default quota: an eighth of the limit, 16..1024. */
static void test_default_quota(void **state)
{
	assert_int_equal(xvb_loop_default_guest_fds(0), 16);
	assert_int_equal(xvb_loop_default_guest_fds(1024), 128);
	assert_int_equal(xvb_loop_default_guest_fds(8192), 1024);
	assert_int_equal(xvb_loop_default_guest_fds(1u << 20), 1024);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_evtchn_out_of_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_out_of_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregion_mapped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evtchn_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evtchn_hostile_driver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evtchn_unbound_drained, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evtchn_unread_replies_bounded, setup_roomy,
						teardown),
		cmocka_unit_test(test_evtchn_inflight_limit_no_kill),
		cmocka_unit_test_setup_teardown(test_release_churn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_quota_counts_bound, setup_small, teardown),
		cmocka_unit_test(test_default_quota),
		cmocka_unit_test_setup_teardown(test_map_quota, setup_maps, teardown),
		cmocka_unit_test(test_default_map_quota),
		cmocka_unit_test_setup_teardown(test_attach_writes_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_strict_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_removed_when_guest_leaves, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("bus-loop", tests, NULL, NULL);
}
