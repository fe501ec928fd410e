// SPDX-License-Identifier: MIT
/*
 * Unit tests of the loopback bus when the backend runs out of file
 * descriptors (a guest can cause that: every event channel and region it
 * registers keeps descriptors open in the backend).  This process plays
 * both sides: the bus, and raw clients on its socket.
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
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include <xvmsg/loop.h>

#include "bus.h"

struct fx {
	char dir[48], sock[64];
	struct xvb_bus *bus;
	struct rlimit lim;
	int hog[4096];
	unsigned int nhog;
};

static void no_watch(void *ctx, const char *path) {}
static void no_event(void *ctx, uint32_t port) {}

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

static int setup(void **state)
{
	struct xvb_bus_events ev = { NULL, no_watch, no_event };
	struct xvb_loop_opts o = { 0 };
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/xvmsg-busloop-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/s", f->dir);
	o.socket_path = f->sock;
	assert_int_equal(xvb_loop_create(&o, &ev, &f->bus), 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &f->lim), 0);
	*state = f;
	return 0;
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
	char buf[64], cbuf[CMSG_SPACE(4 * sizeof(int))];
	struct xvmsg_loop_hdr h = { htole32(op), htole32((uint32_t)len), htole32(7), 0 };
	struct iovec iov = { buf, sizeof(h) + len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), p, len);
	if (n) {
		struct cmsghdr *cm;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
	}
	assert_int_equal(sendmsg(s, &mh, MSG_NOSIGNAL), (ssize_t)(sizeof(h) + len));
}

/* The reply's status, or 1 if the bus hung up. */
static int reply(struct fx *f, int s)
{
	struct xvmsg_loop_hdr h;
	char buf[1024];
	ssize_t n;

	for (int i = 0; i < 20; i++) {	/* accept, then read: rounds of dispatch */
		assert_int_equal(f->bus->ops->dispatch(f->bus), 0);
		n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
		if (n >= 0)
			break;
	}
	if (n == 0)
		return 1;
	assert_true(n >= (ssize_t)sizeof(h));
	memcpy(&h, buf, sizeof(h));
	return (int)le32toh(h.status);
}

static void hello(struct fx *f, int s)
{
	struct xvmsg_loop_hello h = { htole32(XVMSG_LOOP_VERSION), htole32(64) };
	int fd = memfd_create("gnt", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64 * sizeof(struct xvmsg_loop_gnt)), 0);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	send_op(s, XVMSG_LOOP_OP_HELLO, &h, sizeof(h), &fd, 1);
	close(fd);
	assert_int_equal(reply(f, s), 0);
}

/* Descriptors that cannot all be received: that request fails with
 * -EMFILE, the connection stays and works once there is room again. */
static void test_evtchn_out_of_fds(void **state)
{
	struct fx *f = *state;
	struct xvmsg_loop_evtchn ev = { htole32(5), 0 };
	int s = client(f), efd[2];

	hello(f, s);
	efd[0] = eventfd(0, EFD_CLOEXEC);
	efd[1] = eventfd(0, EFD_CLOEXEC);
	assert_true(efd[0] >= 0 && efd[1] >= 0);
	hog(f, 1);			/* room for one of the two */
	send_op(s, XVMSG_LOOP_OP_EVTCHN, &ev, sizeof(ev), efd, 2);
	assert_int_equal(reply(f, s), -EMFILE);
	hog(f, 0);			/* room for none */
	send_op(s, XVMSG_LOOP_OP_EVTCHN, &ev, sizeof(ev), efd, 2);
	assert_int_equal(reply(f, s), -EMFILE);
	unhog(f);
	send_op(s, XVMSG_LOOP_OP_EVTCHN, &ev, sizeof(ev), efd, 2);
	assert_int_equal(reply(f, s), 0);
	close(efd[0]);
	close(efd[1]);
	close(s);
}

/* More descriptors than any request carries: refused, connection kept. */
static void test_too_many_fds(void **state)
{
	struct fx *f = *state;
	struct xvmsg_loop_evtchn ev = { htole32(6), 0 };
	int s = client(f), fds[6];
	long before;

	hello(f, s);
	for (int i = 0; i < 6; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	before = count_fds();
	{
		/* 6 fds do not fit the bus's control buffer of 4 */
		char buf[64], cbuf[CMSG_SPACE(6 * sizeof(int))];
		struct xvmsg_loop_hdr h = { htole32(XVMSG_LOOP_OP_EVTCHN), htole32(sizeof(ev)),
					    htole32(8), 0 };
		struct iovec iov = { buf, sizeof(h) + sizeof(ev) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

		memcpy(buf, &h, sizeof(h));
		memcpy(buf + sizeof(h), &ev, sizeof(ev));
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(6 * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, sizeof(fds));
		assert_true(sendmsg(s, &mh, MSG_NOSIGNAL) > 0);
	}
	assert_int_equal(reply(f, s), -EINVAL);
	assert_int_equal(count_fds(), before);	/* what did arrive was closed */
	send_op(s, XVMSG_LOOP_OP_EVTCHN, &ev, sizeof(ev), fds, 2);
	assert_int_equal(reply(f, s), 0);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_evtchn_out_of_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_out_of_fds, setup, teardown),
	};

	return cmocka_run_group_tests_name("bus-loop", tests, NULL, NULL);
}
