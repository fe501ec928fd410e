// SPDX-License-Identifier: MIT
/*
 * Unit tests of the driver library's loopback bus (driver/drv-loop.c)
 * against a fake backend on a unix socket: a backend that floods the
 * connection with store events and never answers must not hold a request
 * past its timeout.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <xvmsg/loop.h>

#include "xvmsg-drv.h"

struct fake {
	char dir[48], sock[80];
	int lsock;
	pthread_t th;
	unsigned long sent;
};

/* Accept one driver, read its HELLO, then send store events until it hangs
 * up: never a reply. */
static void *flood(void *arg)
{
	struct fake *f = arg;
	char pkt[sizeof(struct xvmsg_loop_hdr) + 64], in[XVMSG_LOOP_MAX_PACKET];
	char cbuf[CMSG_SPACE(XVMSG_LOOP_MAX_FDS * sizeof(int))];
	static const char kv[] = "device/xvmsg/0/state\0" "4";
	struct xvmsg_loop_hdr h = { htole32(XVMSG_LOOP_OP_STORE_EVENT), htole32(sizeof(kv)), 0, 0 };
	struct iovec iov = { in, sizeof(in) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	int s = accept(f->lsock, NULL, NULL);

	if (s < 0)
		return NULL;
	if (recvmsg(s, &mh, 0) > 0)
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				size_t i, k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

				for (i = 0; i < k; i++) {
					int fd;

					memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
					close(fd);
				}
			}
	memcpy(pkt, &h, sizeof(h));
	memcpy(pkt + sizeof(h), kv, sizeof(kv));
	/* As fast as we can, many packets per call. */
	{
		struct iovec piov = { pkt, sizeof(h) + sizeof(kv) };
		struct mmsghdr mm[64];
		unsigned int i;
		int n;

		memset(mm, 0, sizeof(mm));
		for (i = 0; i < 64; i++) {
			mm[i].msg_hdr.msg_iov = &piov;
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		while ((n = sendmmsg(s, mm, 64, MSG_NOSIGNAL)) > 0)
			f->sent += (unsigned long)n;
	}
	close(s);
	return NULL;
}

static int setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/xvmsg-drvloop-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->sock, sizeof(f->sock), "%s/sock", f->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
	f->lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (f->lsock < 0 || bind(f->lsock, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(f->lsock, 4) || pthread_create(&f->th, NULL, flood, f)) {
		if (f->lsock >= 0)
			close(f->lsock);
		unlink(f->sock);
		rmdir(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;

	shutdown(f->lsock, SHUT_RDWR);	/* wakes an accept that got nobody */
	pthread_join(f->th, NULL);
	close(f->lsock);
	unlink(f->sock);
	rmdir(f->dir);
	free(f);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* HELLO gets no reply, only a stream of store events: the open fails with
 * -ETIMEDOUT about when the timeout says, not never.  (The alarm turns a
 * hang into a failed test.) */
static void test_flood_no_reply(void **state)
{
	struct fake *f = *state;
	struct xvd_domain_opts o = { .socket_path = f->sock, .timeout_ms = 300,
				     .log_level = XVD_LOG_ERR };
	struct xvd_domain *d = NULL;
	int64_t t0 = now_ms(), took;
	int r;

	alarm(20);
	r = xvd_domain_open_loop(&o, &d);
	alarm(0);
	took = now_ms() - t0;
	assert_int_equal(r, -ETIMEDOUT);
	assert_null(d);
	assert_true(took >= 250);
	assert_true(took < 5000);
	print_message("open gave up after %lld ms\n", (long long)took);
}

/* The grant table sizes the driver asks for are the ones the backend takes
 * (include/xvmsg/loop.h): a larger one is refused here, before anything is
 * sent, not by the backend after the driver set up a table it cannot use. */
static void test_gnt_entries_bounds(void **state)
{
	struct xvd_domain_opts o = { .socket_path = "/nonexistent/xvmsg.sock",
				     .log_level = XVD_LOG_ERR };
	struct xvd_domain *d = NULL;

	(void)state;
	o.gnt_entries = XVMSG_LOOP_MAX_GNT_ENTRIES + 1;
	assert_int_equal(xvd_domain_open_loop(&o, &d), -EINVAL);
	o.gnt_entries = XVMSG_LOOP_GNT_RESERVED;
	assert_int_equal(xvd_domain_open_loop(&o, &d), -EINVAL);
	/* in range: the missing socket is what fails */
	o.gnt_entries = XVMSG_LOOP_MAX_GNT_ENTRIES;
	assert_int_equal(xvd_domain_open_loop(&o, &d), -ENOENT);
	assert_null(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flood_no_reply, setup, teardown),
		cmocka_unit_test(test_gnt_entries_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
