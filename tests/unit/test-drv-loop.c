// SPDX-License-Identifier: MIT
/*
 * Unit tests of the driver library's loopback bus (driver/drv-loop.c)
 * against a fake backend on a unix socket: a backend that floods the
 * connection with store events and never answers must not hold a request
 * past its timeout; an event channel the backend hands over that is not a
 * connected datagram socket is refused.
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
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <xvmsg/loop.h>

#include "drv-priv.h"
#include "xvmsg-drv.h"

struct fake {
	char dir[48], sock[80];
	int lsock;
	pthread_t th;
	unsigned long sent;
	/* answer(): what each EVTCHN reply carries, in turn */
	const char *const *chans;
	int kept;			/* its end of the good channel */
	unsigned int closes;		/* EVTCHN_CLOSE requests */
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

/* One packet from s, closing any descriptors it carried: its op, or -1. */
static int fake_recv(int s, struct xvmsg_loop_hdr *h)
{
	char in[XVMSG_LOOP_MAX_PACKET], cbuf[CMSG_SPACE(XVMSG_LOOP_MAX_FDS * sizeof(int))];
	struct iovec iov = { in, sizeof(in) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(s, &mh, 0);

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n > 0 && cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
				close(fd);
			}
	if (n < (ssize_t)sizeof(*h))
		return -1;
	memcpy(h, in, sizeof(*h));
	return (int)le32toh(h->op);
}

static void fake_reply(int s, const struct xvmsg_loop_hdr *req, int status, const void *p,
		       size_t len, int fd)
{
	char out[64], cbuf[CMSG_SPACE(sizeof(int))];
	struct xvmsg_loop_hdr h = { htole32(le32toh(req->op) | XVMSG_LOOP_REPLY),
				    htole32((uint32_t)len), req->seq, htole32((uint32_t)status) };
	struct iovec iov = { out, sizeof(h) + len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	memcpy(out, &h, sizeof(h));
	if (len)
		memcpy(out + sizeof(h), p, len);
	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	sendmsg(s, &mh, MSG_NOSIGNAL);
}

/* Accept one driver and answer it: HELLO, then each EVTCHN with what
 * f->chans says in turn ("none", "eventfd", "stream", "unconnected",
 * "again": -EAGAIN, "dgram": a good one, whose other end is kept, "shut"),
 * EVTCHN_CLOSE counted. */
static void *answer(void *arg)
{
	struct fake *f = arg;
	struct xvmsg_loop_hello_reply hr = { htole32(XVMSG_LOOP_VERSION), htole16(2), htole16(1) };
	struct xvmsg_loop_hdr h;
	unsigned int k = 0;
	int s = accept(f->lsock, NULL, NULL), op;

	if (s < 0)
		return NULL;
	while ((op = fake_recv(s, &h)) > 0) {
		int sv[2] = { -1, -1 };
		const char *what = op == XVMSG_LOOP_OP_EVTCHN ? f->chans[k++] : NULL;

		if (op == XVMSG_LOOP_OP_HELLO) {
			fake_reply(s, &h, 0, &hr, sizeof(hr), -1);
			continue;
		}
		if (op == XVMSG_LOOP_OP_EVTCHN_CLOSE)
			f->closes++;
		if (!what) {
		} else if (!strcmp(what, "eventfd")) {
			sv[1] = eventfd(0, EFD_CLOEXEC);
		} else if (!strcmp(what, "stream")) {
			socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
		} else if (!strcmp(what, "unconnected")) {
			sv[1] = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		} else if (!strcmp(what, "dgram")) {
			socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv);
			f->kept = sv[0];
			sv[0] = -1;
		} else if (!strcmp(what, "shut")) {
			/* A backend that shut the driver's end for reading
			 * before handing it over: readable for ever, and
			 * nothing to read. */
			socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv);
			shutdown(sv[1], SHUT_RD);
		}
		fake_reply(s, &h, what && !strcmp(what, "again") ? -EAGAIN : 0, NULL, 0, sv[1]);
		for (unsigned int i = 0; i < 2; i++)
			if (sv[i] >= 0)
				close(sv[i]);
	}
	close(s);
	return NULL;
}

static int setup_with(void **state, void *(*serve)(void *), const char *const *chans)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (!f)
		return -1;
	f->chans = chans;
	f->kept = -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/xvmsg-drvloop-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->sock, sizeof(f->sock), "%s/sock", f->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
	f->lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (f->lsock < 0 || bind(f->lsock, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(f->lsock, 4) || pthread_create(&f->th, NULL, serve, f)) {
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

static int setup(void **state)
{
	return setup_with(state, flood, NULL);
}

static const char *const bad_chans[] = { "none", "eventfd", "stream", "unconnected", "again",
					 "dgram", "shut", NULL };

static int setup_chans(void **state)
{
	return setup_with(state, answer, bad_chans);
}

static int teardown(void **state)
{
	struct fake *f = *state;

	shutdown(f->lsock, SHUT_RDWR);	/* wakes an accept that got nobody */
	pthread_join(f->th, NULL);
	if (f->kept >= 0)
		close(f->kept);
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

/* An event channel is the backend's to make, and the driver takes only a
 * connected unix datagram socket: no descriptor, an eventfd, a stream
 * socket (whose peer's shutdown would reach us) or an unconnected socket
 * is refused with -EPROTO, and the channel released; a good one works.  One
 * the backend shut down for reading (it made it) is noticed in a wait and
 * left out after. */
static void test_evtchn_reply_checked(void **state)
{
	struct fake *f = *state;
	struct xvd_domain_opts o = { .socket_path = f->sock, .timeout_ms = 2000,
				     .log_level = -1 };
	struct xvd_domain *d = NULL;
	struct drv_bus *bus;
	uint32_t port;
	char b;

	alarm(20);
	assert_int_equal(xvd_domain_open_loop(&o, &d), 0);
	bus = d->bus;
	for (unsigned int i = 0; i < 4; i++)
		assert_int_equal(bus->ops->evtchn_alloc(bus, &port), -EPROTO);
	/* -EAGAIN (replies with channel ends unread, the backend thinks):
	 * asked again after reading what is pending. */
	assert_int_equal(bus->ops->evtchn_alloc(bus, &port), 0);
	assert_int_equal(bus->ops->evtchn_notify(bus, port), 0);
	assert_true(f->kept >= 0);
	assert_int_equal(recv(f->kept, &b, 1, 0), 1);
	assert_int_equal(send(f->kept, "n", 1, 0), 1);
	assert_int_equal(bus->ops->wait(bus, &port, 1, 2000), 1);
	assert_int_equal(bus->ops->evtchn_ack(bus, port), 1);
	assert_int_equal(bus->ops->evtchn_ack(bus, port), 0);
	/* A channel the backend shut down under us: noticed once, then left
	 * out of the waits instead of waking every one at once. */
	{
		uint32_t shut, both[2];

		assert_int_equal(bus->ops->evtchn_alloc(bus, &shut), 0);
		both[0] = port;
		both[1] = shut;
		assert_int_equal(bus->ops->wait(bus, &shut, 1, 100), 1);
		assert_int_equal(bus->ops->wait(bus, &shut, 1, 100), 0);
		assert_int_equal(bus->ops->wait(bus, both, 2, 100), 0);
		assert_int_equal(send(f->kept, "n", 1, 0), 1);	/* the good one still works */
		assert_int_equal(bus->ops->wait(bus, both, 2, 2000), 1);
		assert_int_equal(bus->ops->evtchn_ack(bus, port), 1);
	}
	xvd_domain_close(d);
	alarm(0);
	assert_int_equal(f->closes, 4);	/* the refused ones (at close, the hang-up does) */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flood_no_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evtchn_reply_checked, setup_chans, teardown),
		cmocka_unit_test(test_gnt_entries_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
