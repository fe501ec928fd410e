// SPDX-License-Identifier: MIT
/*
 * Unit tests of the event loop's deferred work (evloop.c): what the
 * backend's pending list of devices relies on to give each its turn.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "evloop.h"

struct rec;

struct item {				/* a deferred entry's arg */
	struct rec *r;
	unsigned int i;
};

struct rec {
	struct xvb_evloop *loop;
	char order[32];			/* what ran: 'a' + entry, 'F' the fd */
	unsigned int n;
	struct xvb_evdefer d[3];
	struct item it[3];
	unsigned int rearm[3];		/* times each arms itself again */
	struct xvb_evdefer *cancel;	/* d[0] cancels this */
	struct xvb_evdefer *fd_arms;	/* the fd callback arms this */
};

static void cb(void *arg)
{
	struct item *it = arg;
	struct rec *r = it->r;

	r->order[r->n++] = (char)('a' + it->i);
	if (it->i == 0 && r->cancel)
		xvb_evloop_cancel(r->loop, r->cancel);
	if (r->rearm[it->i]) {
		r->rearm[it->i]--;
		xvb_evloop_defer(r->loop, &r->d[it->i]);
	}
}

static void fd_cb(void *arg, int fd, uint32_t events)
{
	struct rec *r = arg;
	uint64_t v;

	(void)events;
	if (read(fd, &v, sizeof(v)) < 0)
		return;
	r->order[r->n++] = 'F';
	if (r->fd_arms)
		xvb_evloop_defer(r->loop, r->fd_arms);
}

static int setup(void **state)
{
	struct rec *r = calloc(1, sizeof(*r));

	if (!r || xvb_evloop_create(&r->loop))
		return -1;
	for (unsigned int i = 0; i < 3; i++) {
		r->it[i] = (struct item){ r, i };
		r->d[i].cb = cb;
		r->d[i].arg = &r->it[i];
	}
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct rec *r = *state;

	xvb_evloop_destroy(r->loop);
	free(r);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Armed work runs once, in the order armed; arming twice is once; a round
 * with work armed does not wait for fds. */
static void test_fifo_once(void **state)
{
	struct rec *r = *state;
	int64_t t0;

	xvb_evloop_defer(r->loop, &r->d[1]);
	xvb_evloop_defer(r->loop, &r->d[0]);
	xvb_evloop_defer(r->loop, &r->d[1]);
	t0 = now_ms();
	assert_int_equal(xvb_evloop_run_once(r->loop, 5000), 2);
	assert_true(now_ms() - t0 < 1000);		/* did not sleep */
	assert_string_equal(r->order, "ba");
	assert_int_equal(xvb_evloop_run_once(r->loop, 0), 0);
	assert_string_equal(r->order, "ba");
}

/* Work armed again by its own callback waits for the next round, behind
 * what others armed meanwhile: each gets one turn per round. */
static void test_rearm_next_round(void **state)
{
	struct rec *r = *state;

	r->rearm[0] = 2;
	r->rearm[1] = 1;
	xvb_evloop_defer(r->loop, &r->d[0]);
	xvb_evloop_defer(r->loop, &r->d[1]);
	assert_int_equal(xvb_evloop_run_once(r->loop, -1), 2);
	assert_string_equal(r->order, "ab");
	xvb_evloop_defer(r->loop, &r->d[2]);
	assert_int_equal(xvb_evloop_run_once(r->loop, -1), 3);
	assert_string_equal(r->order, "ababc");
	assert_int_equal(xvb_evloop_run_once(r->loop, -1), 1);
	assert_string_equal(r->order, "ababca");
	assert_int_equal(xvb_evloop_run_once(r->loop, 0), 0);
}

/* The fds of a round come first; work they arm runs in the next round. */
static void test_fds_first(void **state)
{
	struct rec *r = *state;
	int fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);

	assert_true(fd >= 0);
	r->fd_arms = &r->d[2];
	assert_int_equal(xvb_evloop_add(r->loop, fd, EPOLLIN, fd_cb, r), 0);
	xvb_evloop_defer(r->loop, &r->d[0]);
	assert_int_equal(xvb_evloop_run_once(r->loop, -1), 2);
	assert_string_equal(r->order, "Fa");
	assert_int_equal(xvb_evloop_run_once(r->loop, -1), 1);
	assert_string_equal(r->order, "Fac");
	xvb_evloop_del(r->loop, fd);
	close(fd);
}

/* del_close: the fd is no longer watched, closed, set to -1; again: nothing. */
static void test_del_close(void **state)
{
	struct rec *r = *state;
	int fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK), copy = fd;

	assert_true(fd >= 0);
	assert_int_equal(xvb_evloop_add(r->loop, fd, EPOLLIN, fd_cb, r), 0);
	xvb_evloop_del_close(r->loop, &fd);
	assert_int_equal(fd, -1);
	assert_int_equal(fcntl(copy, F_GETFD), -1);	/* closed */
	assert_int_equal(xvb_evloop_run_once(r->loop, 0), 0);	/* not watched */
	assert_string_equal(r->order, "");
	xvb_evloop_del_close(r->loop, &fd);
	assert_int_equal(fd, -1);
}

/* Cancelled work does not run, also when cancelled during its round. */
static void test_cancel(void **state)
{
	struct rec *r = *state;

	xvb_evloop_defer(r->loop, &r->d[0]);
	xvb_evloop_defer(r->loop, &r->d[1]);
	xvb_evloop_defer(r->loop, &r->d[2]);
	xvb_evloop_cancel(r->loop, &r->d[2]);
	r->cancel = &r->d[1];			/* d[0] cancels d[1] as it runs */
	assert_int_equal(xvb_evloop_run_once(r->loop, 0), 1);
	assert_string_equal(r->order, "a");
	assert_false(r->d[1].armed);
	assert_int_equal(xvb_evloop_run_once(r->loop, 0), 0);
	/* Cancelled entries can be armed again; cancelling twice is fine. */
	xvb_evloop_cancel(r->loop, &r->d[2]);
	r->cancel = NULL;
	xvb_evloop_defer(r->loop, &r->d[2]);
	xvb_evloop_defer(r->loop, &r->d[1]);
	assert_int_equal(xvb_evloop_run_once(r->loop, 0), 2);
	assert_string_equal(r->order, "acb");
}

/* The lowest descriptor number free now. */
static int lowest_free_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	close(fd);
	return fd;
}

/* Out of descriptors with a connection waiting: with a spare it is taken
 * and hung up (the client sees end of file) and the spare comes back; with
 * none to be had, false and the connection stays queued for later. */
static void test_refuse_with_spare(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rlimit old, low;
	char dir[] = "/tmp/xvmsg-evloop-XXXXXX", b;
	int lfd, c1, c2, spare, fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	c1 = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c2 = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(c1, (struct sockaddr *)&sa, sizeof(sa)), 0);
	spare = xvb_spare_open();
	assert_true(spare >= 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)lowest_free_fd();	/* no new descriptor */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(accept4(lfd, NULL, NULL, SOCK_CLOEXEC), -1);
	assert_int_equal(errno, EMFILE);
	assert_true(xvb_refuse_with_spare(lfd, &spare));
	assert_true(spare >= 0);				/* back */
	assert_int_equal(recv(c1, &b, 1, MSG_DONTWAIT), 0);	/* hung up */
	/* No spare and none to be had: the caller has to stop listening. */
	close(spare);
	spare = -1;
	low.rlim_cur = (rlim_t)lowest_free_fd();
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(connect(c2, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_false(xvb_refuse_with_spare(lfd, &spare));
	assert_int_equal(spare, -1);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);		/* c2 still waits */
	assert_true(fd >= 0);
	assert_int_equal(send(c2, "x", 1, 0), 1);
	assert_int_equal(recv(fd, &b, 1, 0), 1);
	close(fd);
	close(c1);
	close(c2);
	close(lfd);
	unlink(sa.sun_path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fifo_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rearm_next_round, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fds_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_del_close, setup, teardown),
		cmocka_unit_test(test_refuse_with_spare),
	};

	return cmocka_run_group_tests_name("evloop", tests, NULL, NULL);
}
