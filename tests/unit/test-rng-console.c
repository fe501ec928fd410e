/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: virtio-rng and virtio-console models, and the event loop the
 * console relies on.  The core's request API is faked as in test-blk.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "device.h"

#include "fake-core.h"

/* A chain of one device-readable and/or one device-writable buffer. */
static void mkreq(struct xvb_req *r, uint16_t head, void *out, size_t olen, void *in, size_t ilen)
{
	memset(r, 0, sizeof(*r));
	r->head = head;
	if (out) {
		r->out[r->nout++] = (struct iovec){ out, olen };
		r->out_len = olen;
	}
	if (in) {
		r->in[r->nin++] = (struct iovec){ in, ilen };
		r->in_len = ilen;
	}
}

/* ---- fixture ---- */
struct t {
	char dir[64], path[128];
	char *logtext;
	size_t logsize;
	struct xvb_log log;
	struct xvb_model_env env;
	struct xvb_evloop *loop;
	void *priv;
	const struct xvb_model_ops *ops;
	struct fake_vdev f;
};

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/xvb-con-XXXXXX");
	t->log = (struct xvb_log){ .level = XVB_LOG_DEBUG, .prog = "test" };
	t->log.out = open_memstream(&t->logtext, &t->logsize);
	if (!t->log.out || !mkdtemp(t->dir) || xvb_evloop_create(&t->loop))
		return -1;
	t->env = (struct xvb_model_env){ .loop = t->loop, .log = &t->log, .name = "dev0" };
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;

	if (t->priv)
		t->ops->destroy(t->priv);
	xvb_evloop_destroy(t->loop);
	fclose(t->log.out);
	if (getenv("XVB_TEST_LOG"))	/* show what the model logged */
		fprintf(stderr, "%s", t->logtext ? t->logtext : "");
	free(t->logtext);
	rmdir(t->dir);
	free(t);
	return 0;
}

static const char *logtext(struct t *t)
{
	fflush(t->log.out);
	return t->logtext ? t->logtext : "";
}

static void expect_create_fails(struct t *t, const struct xvb_model_ops *ops, const char *params,
				const char *msg)
{
	void *priv = NULL;
	long before;

	fflush(t->log.out);
	before = ftell(t->log.out);
	assert_int_equal(ops->create(params, &t->env, &priv), -EINVAL);
	assert_null(priv);
	assert_non_null(strstr(logtext(t) + before, msg));
}

/* ================= rng ================= */

static void rng_start(struct t *t)
{
	t->ops = &xvb_rng_ops;
	assert_int_equal(xvb_rng_ops.create("", &t->env, &t->priv), 0);
	assert_int_equal(xvb_rng_ops.activate(t->priv, VDEV(&t->f), 0), 0);
}

static void test_rng_ops(void **state)
{
	struct t *t = *state;

	assert_string_equal(xvb_rng_ops.type, "rng");
	assert_int_equal(xvb_rng_ops.device_id, VIRTIO_ID_RNG);
	assert_int_equal(xvb_rng_ops.num_queues, 1);
	assert_int_equal(xvb_rng_ops.queue_size, 64);
	assert_int_equal(xvb_rng_ops.config_size, 0);
	expect_create_fails(t, &xvb_rng_ops, "foo", "'foo'");
	expect_create_fails(t, &xvb_rng_ops, "size=3", "'size'");
	expect_create_fails(t, &xvb_rng_ops, "a,,b", "malformed");
	assert_int_equal(xvb_rng_ops.create(NULL, &t->env, &t->priv), 0);
	t->ops = &xvb_rng_ops;
	assert_int_equal(xvb_rng_ops.features(t->priv), 0);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

static void test_rng_fill(void **state)
{
	struct t *t = *state;
	uint8_t a[100], b[50], o[8];
	struct xvb_req r1, r2, r3;

	rng_start(t);
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	mkreq(&r1, 1, NULL, 0, a, sizeof(a));
	r1.in[r1.nin++] = (struct iovec){ b, sizeof(b) };
	r1.in_len += sizeof(b);
	mkreq(&r2, 2, o, sizeof(o), NULL, 0);	/* nothing writable */
	mkreq(&r3, 3, NULL, 0, NULL, 0);
	fake_queue(&t->f, 0, &r1, 0);
	fake_queue(&t->f, 0, NULL, -EINVAL);	/* skipped */
	fake_queue(&t->f, 0, &r2, 0);
	fake_queue(&t->f, 0, NULL, -EIO);	/* stops */
	fake_queue(&t->f, 0, &r3, 0);
	xvb_rng_ops.notify(t->priv, 0);
	assert_int_equal(t->f.npush, 2);
	assert_int_equal(t->f.push[0].head, 1);
	assert_int_equal(t->f.push[0].written, 150);
	assert_false(all_zero(a + 60, 40));	/* 2^-320 chance of a false failure */
	assert_false(all_zero(b + 10, 40));
	assert_int_equal(t->f.push[1].head, 2);
	assert_int_equal(t->f.push[1].written, 0);
	assert_int_equal(t->f.flushes[0], 1);
	xvb_rng_ops.notify(t->priv, 0);
	assert_int_equal(t->f.npush, 3);
	assert_int_equal(t->f.push[2].written, 0);
}

static void test_rng_cap(void **state)
{
	struct t *t = *state;
	size_t len = 100 * 1024;
	uint8_t *buf = calloc(1, len);
	struct xvb_req r;

	assert_non_null(buf);
	rng_start(t);
	mkreq(&r, 9, NULL, 0, buf, len);
	fake_queue(&t->f, 0, &r, 0);
	xvb_rng_ops.notify(t->priv, 0);
	assert_int_equal(t->f.npush, 1);
	assert_int_equal(t->f.push[0].written, 64 * 1024);
	assert_false(all_zero(buf + 64 * 1024 - 64, 64));
	assert_true(all_zero(buf + 64 * 1024, len - 64 * 1024));
	free(buf);
}

static void test_rng_inactive(void **state)
{
	struct t *t = *state;
	uint8_t a[16];
	struct xvb_req r;

	rng_start(t);
	xvb_rng_ops.reset(t->priv);
	mkreq(&r, 1, NULL, 0, a, sizeof(a));
	fake_queue(&t->f, 0, &r, 0);
	xvb_rng_ops.notify(t->priv, 0);
	assert_int_equal(t->f.pops, 0);
	assert_int_equal(t->f.npush, 0);
}

/* ================= event loop ================= */

struct evt {
	struct xvb_evloop *loop;
	int fds[2];		/* the read ends watched */
	unsigned int calls[2];
	bool readd;
};

static void ev_del_both(void *arg, int fd, uint32_t events)
{
	struct evt *e = arg;

	e->calls[fd == e->fds[1]]++;
	xvb_evloop_del(e->loop, e->fds[0]);
	xvb_evloop_del(e->loop, e->fds[1]);
	if (e->readd) {	/* same fds again, new registrations, same round */
		assert_int_equal(xvb_evloop_add(e->loop, e->fds[0], EPOLLIN, ev_del_both, e), 0);
		assert_int_equal(xvb_evloop_add(e->loop, e->fds[1], EPOLLIN, ev_del_both, e), 0);
	}
}

static void make_pipes(int p[2][2])
{
	assert_int_equal(pipe(p[0]), 0);
	assert_int_equal(pipe(p[1]), 0);
	assert_int_equal(write(p[0][1], "x", 1), 1);
	assert_int_equal(write(p[1][1], "y", 1), 1);
}

static void close_pipes(int p[2][2])
{
	close(p[0][0]);
	close(p[0][1]);
	close(p[1][0]);
	close(p[1][1]);
}

static void test_evloop_del_in_dispatch(void **state)
{
	struct t *t = *state;
	int p[2][2];
	struct evt e = { .loop = t->loop };

	make_pipes(p);
	e.fds[0] = p[0][0];
	e.fds[1] = p[1][0];
	assert_int_equal(xvb_evloop_add(t->loop, e.fds[0], EPOLLIN, ev_del_both, &e), 0);
	assert_int_equal(xvb_evloop_add(t->loop, e.fds[1], EPOLLIN, ev_del_both, &e), 0);
	assert_int_equal(xvb_evloop_add(t->loop, e.fds[1], EPOLLIN, ev_del_both, &e), -EEXIST);
	/* both are ready, but whichever runs first removes the other */
	assert_int_equal(xvb_evloop_run_once(t->loop, 1000), 1);
	assert_int_equal(e.calls[0] + e.calls[1], 1);
	assert_int_equal(xvb_evloop_run_once(t->loop, 0), 0);

	/* deleted and re-added during the round: the old event is stale */
	e.readd = true;
	assert_int_equal(xvb_evloop_add(t->loop, e.fds[0], EPOLLIN, ev_del_both, &e), 0);
	assert_int_equal(xvb_evloop_add(t->loop, e.fds[1], EPOLLIN, ev_del_both, &e), 0);
	assert_int_equal(xvb_evloop_run_once(t->loop, 1000), 1);
	assert_int_equal(e.calls[0] + e.calls[1], 2);
	assert_int_equal(xvb_evloop_run_once(t->loop, 1000), 1);	/* new ones fire */
	assert_int_equal(e.calls[0] + e.calls[1], 3);
	e.readd = false;
	assert_int_equal(xvb_evloop_run_once(t->loop, 1000), 1);
	assert_int_equal(xvb_evloop_run_once(t->loop, 0), 0);
	close_pipes(p);
}

static void ev_count(void *arg, int fd, uint32_t events)
{
	(*(unsigned int *)arg)++;
}

static void test_evloop_mod(void **state)
{
	struct t *t = *state;
	unsigned int n = 0;
	int p[2], fd;
	char path[160];

	assert_int_equal(pipe(p), 0);
	close(p[1]);	/* the read end now reports EPOLLHUP forever */
	assert_int_equal(xvb_evloop_add(t->loop, p[0], EPOLLIN, ev_count, &n), 0);
	assert_int_equal(xvb_evloop_run_once(t->loop, 0), 1);
	assert_int_equal(xvb_evloop_mod(t->loop, p[0], 0), 0);	/* paused: not even HUP */
	assert_int_equal(xvb_evloop_run_once(t->loop, 0), 0);
	assert_int_equal(xvb_evloop_mod(t->loop, p[0], EPOLLIN), 0);
	assert_int_equal(xvb_evloop_run_once(t->loop, 0), 1);
	assert_int_equal(n, 2);
	assert_int_equal(xvb_evloop_mod(t->loop, 12345, EPOLLIN), -ENOENT);
	xvb_evloop_del(t->loop, p[0]);
	xvb_evloop_del(t->loop, p[0]);	/* harmless */
	assert_int_equal(xvb_evloop_run_once(t->loop, 0), 0);
	close(p[0]);
	/* regular files cannot be polled */
	snprintf(path, sizeof(path), "%s/f", t->dir);
	fd = open(path, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(xvb_evloop_add(t->loop, fd, EPOLLIN, ev_count, &n), -EPERM);
	assert_int_equal(xvb_evloop_mod(t->loop, fd, EPOLLIN), -ENOENT);
	close(fd);
	unlink(path);
}

/* ================= console ================= */

static void con_start(struct t *t, const char *params)
{
	t->ops = &xvb_console_ops;
	assert_int_equal(xvb_console_ops.create(params, &t->env, &t->priv), 0);
	assert_int_equal(xvb_console_ops.activate(t->priv, VDEV(&t->f), 0), 0);
}

static void test_console_params(void **state)
{
	struct t *t = *state;
	char params[200];

	assert_string_equal(xvb_console_ops.type, "console");
	assert_int_equal(xvb_console_ops.device_id, VIRTIO_ID_CONSOLE);
	assert_int_equal(xvb_console_ops.num_queues, 2);
	assert_int_equal(xvb_console_ops.queue_size, 64);
	assert_int_equal(xvb_console_ops.config_size, 12);
	expect_create_fails(t, &xvb_console_ops, "", "one of");
	expect_create_fails(t, &xvb_console_ops, "stdio,pty", "'pty'");
	expect_create_fails(t, &xvb_console_ops, "stdio=1", "'stdio'");
	expect_create_fails(t, &xvb_console_ops, "socket=", "'socket'");
	expect_create_fails(t, &xvb_console_ops, "stdio,link=/tmp/x", "'link'");
	expect_create_fails(t, &xvb_console_ops, "stdio,speed=9600", "'speed'");
	expect_create_fails(t, &xvb_console_ops, "stdio,", "malformed");
	snprintf(params, sizeof(params), "socket=%s/no/such/dir/s", t->dir);
	t->env.log->level = XVB_LOG_DEBUG;
	{
		void *priv = NULL;

		assert_true(xvb_console_ops.create(params, &t->env, &priv) < 0);
		assert_null(priv);
	}
	t->env.loop = NULL;
	expect_create_fails(t, &xvb_console_ops, "stdio", "event loop");
	t->env.loop = t->loop;
}

/* Wait until fd is readable and read what is there. */
static ssize_t read_wait(int fd, void *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 2000) != 1)
		return -1;
	return read(fd, buf, len);
}

/* Read until want bytes came (or 2 s without any). */
static ssize_t read_some_wait(int fd, char *buf, size_t len, size_t want)
{
	size_t got = 0;

	while (got < want) {
		ssize_t n = read_wait(fd, buf + got, len - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void tx(struct t *t, uint16_t head, const char *a, const char *b)
{
	struct xvb_req r;
	unsigned int npush = t->f.npush, flushes = t->f.flushes[1];

	mkreq(&r, head, (void *)a, strlen(a), NULL, 0);
	if (b) {
		r.out[r.nout++] = (struct iovec){ (void *)b, strlen(b) };
		r.out_len += strlen(b);
	}
	fake_queue(&t->f, 1, &r, 0);
	xvb_console_ops.notify(t->priv, 1);
	assert_int_equal(t->f.npush, npush + 1);
	assert_int_equal(t->f.push[npush].head, head);
	assert_int_equal(t->f.push[npush].queue, 1);
	assert_int_equal(t->f.push[npush].written, 0);
	assert_int_equal(t->f.flushes[1], flushes + 1);
}

static void test_console_socket(void **state)
{
	struct t *t = *state;
	char params[200], a[3], b[16], c[16], d[16], got[32];
	struct xvb_req ra, rb, rc, rd;
	struct stat st;
	int cl, cl2;

	snprintf(t->path, sizeof(t->path), "%s/con.sock", t->dir);
	snprintf(params, sizeof(params), "socket=%s", t->path);
	con_start(t, params);
	assert_int_equal(stat(t->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));

	/* no client yet: output is discarded */
	tx(t, 1, "lost", NULL);
	cl = connect_to(t->path);
	assert_int_equal(xvb_evloop_run_once(t->loop, 2000), 1);	/* accept */
	assert_non_null(strstr(logtext(t), "client connected"));

	/* input with no receive buffer waits, and input polling stops */
	assert_int_equal(write(cl, "hello", 5), 5);
	assert_int_equal(xvb_evloop_run_once(t->loop, 2000), 1);
	assert_int_equal(t->f.npush, 1);
	assert_int_equal(write(cl, "world", 5), 5);
	assert_int_equal(xvb_evloop_run_once(t->loop, 100), 0);

	/* buffers arrive: what was read goes out, split as needed */
	memset(b, 0, sizeof(b));
	mkreq(&ra, 10, NULL, 0, a, sizeof(a));
	mkreq(&rb, 11, NULL, 0, b, sizeof(b));
	fake_queue(&t->f, 0, &ra, 0);
	fake_queue(&t->f, 0, &rb, 0);
	xvb_console_ops.notify(t->priv, 0);
	assert_int_equal(t->f.npush, 3);
	assert_int_equal(t->f.push[1].head, 10);
	assert_int_equal(t->f.push[1].written, 3);
	assert_int_equal(t->f.push[2].head, 11);
	assert_int_equal(t->f.push[2].written, 2);
	assert_memory_equal(a, "hel", 3);
	assert_memory_equal(b, "lo", 2);
	assert_int_equal(t->f.flushes[0], 1);

	/* polling resumed: "world" is read, waits, then is delivered */
	assert_int_equal(xvb_evloop_run_once(t->loop, 2000), 1);
	assert_int_equal(t->f.npush, 3);
	mkreq(&rc, 12, NULL, 0, c, sizeof(c));
	fake_queue(&t->f, 0, &rc, 0);
	xvb_console_ops.notify(t->priv, 0);
	assert_int_equal(t->f.npush, 4);
	assert_int_equal(t->f.push[3].written, 5);
	assert_memory_equal(c, "world", 5);

	/* output reaches the client */
	tx(t, 2, "abc", "def");
	memset(got, 0, sizeof(got));
	assert_int_equal(read_wait(cl, got, sizeof(got)), 6);
	assert_string_equal(got, "abcdef");

	/* input read before a reset survives it; while reset, nothing is read */
	assert_int_equal(write(cl, "zz", 2), 2);
	assert_int_equal(xvb_evloop_run_once(t->loop, 2000), 1);	/* now pending */
	xvb_console_ops.reset(t->priv);
	assert_int_equal(write(cl, "q", 1), 1);
	assert_int_equal(xvb_evloop_run_once(t->loop, 100), 0);
	xvb_console_ops.notify(t->priv, 0);	/* ignored */
	assert_int_equal(t->f.npush, 5);
	assert_int_equal(xvb_console_ops.activate(t->priv, VDEV(&t->f), 0), 0);
	assert_int_equal(xvb_evloop_run_once(t->loop, 100), 0);	/* still pending */
	mkreq(&rd, 13, NULL, 0, d, sizeof(d));
	fake_queue(&t->f, 0, &rd, 0);
	xvb_console_ops.notify(t->priv, 0);	/* the core kicks after activate */
	assert_int_equal(t->f.npush, 6);
	assert_int_equal(t->f.push[5].written, 2);
	assert_memory_equal(d, "zz", 2);
	assert_int_equal(xvb_evloop_run_once(t->loop, 2000), 1);	/* "q" */
	fake_queue(&t->f, 0, &rd, 0);
	xvb_console_ops.notify(t->priv, 0);
	assert_int_equal(t->f.npush, 7);
	assert_int_equal(t->f.push[6].written, 1);
	assert_int_equal(d[0], 'q');

	/* one client at a time: a second one waits in the backlog */
	cl2 = connect_to(t->path);
	assert_int_equal(write(cl2, "2nd", 3), 3);
	assert_int_equal(xvb_evloop_run_once(t->loop, 100), 0);
	close(cl);
	assert_int_equal(xvb_evloop_run_once(t->loop, 2000), 1);	/* EOF: dropped */
	assert_non_null(strstr(logtext(t), "client disconnected"));
	tx(t, 3, "nobody", NULL);
	assert_int_equal(xvb_evloop_run_once(t->loop, 2000), 1);	/* accept cl2 */
	assert_int_equal(xvb_evloop_run_once(t->loop, 2000), 1);	/* its input */
	memset(d, 0, sizeof(d));
	fake_queue(&t->f, 0, &rd, 0);
	xvb_console_ops.notify(t->priv, 0);
	assert_memory_equal(d, "2nd", 3);
	tx(t, 4, "to-2", NULL);
	memset(got, 0, sizeof(got));
	assert_int_equal(read_wait(cl2, got, sizeof(got)), 4);
	assert_string_equal(got, "to-2");

	/* a client that went away makes output drop it, not kill us */
	close(cl2);
	tx(t, 5, "x", NULL);
	tx(t, 6, "y", NULL);
	xvb_console_ops.destroy(t->priv);
	t->priv = NULL;
	assert_int_equal(lstat(t->path, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(xvb_evloop_run_once(t->loop, 0), 0);
}

static void test_console_pty(void **state)
{
	struct t *t = *state;
	char params[200], target[128], buf[16], got[16];
	struct xvb_req r;
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(t->path, sizeof(t->path), "%s/pty", t->dir);
	snprintf(params, sizeof(params), "pty,link=%s", t->path);
	con_start(t, params);
	n = readlink(t->path, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_non_null(strstr(logtext(t), target));
	fd = open(t->path, O_RDWR | O_NOCTTY);
	assert_true(fd >= 0);

	mkreq(&r, 1, NULL, 0, buf, sizeof(buf));
	fake_queue(&t->f, 0, &r, 0);
	assert_int_equal(write(fd, "ping\n", 5), 5);
	assert_int_equal(xvb_evloop_run_once(t->loop, 2000), 1);
	assert_int_equal(t->f.npush, 1);
	assert_int_equal(t->f.push[0].written, 5);
	assert_memory_equal(buf, "ping\n", 5);	/* raw: no line discipline */

	tx(t, 2, "pong\n", NULL);
	memset(got, 0, sizeof(got));
	assert_int_equal(read_wait(fd, got, sizeof(got)), 5);
	assert_string_equal(got, "pong\n");
	close(fd);

	/* nobody reading 160 KiB: output is dropped rather than blocking us */
	{
		static char big[4096];
		unsigned int i;

		memset(r.out, 0, sizeof(r.out));
		r.nout = 40;
		r.nin = 0;
		r.in_len = 0;
		r.out_len = 40 * sizeof(big);
		for (i = 0; i < r.nout; i++)
			r.out[i] = (struct iovec){ big, sizeof(big) };
		fake_queue(&t->f, 1, &r, 0);
		alarm(10);	/* a blocking write would hang here */
		xvb_console_ops.notify(t->priv, 1);
		alarm(0);
		assert_int_equal(t->f.npush, 3);
		assert_int_equal(t->f.push[2].written, 0);
	}
	xvb_console_ops.destroy(t->priv);
	t->priv = NULL;
	assert_int_equal(lstat(t->path, &st), -1);
}

static void test_console_stdio(void **state)
{
	struct t *t = *state;
	int in[2], out[2], save_in = dup(0), save_out = dup(1), nul;
	char buf[16], got[16];
	struct xvb_req r;

	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	fflush(stdout);
	assert_true(dup2(in[0], 0) == 0 && dup2(out[1], 1) == 1);
	con_start(t, "stdio");

	mkreq(&r, 1, NULL, 0, buf, sizeof(buf));
	fake_queue(&t->f, 0, &r, 0);
	assert_int_equal(write(in[1], "hi", 2), 2);
	assert_int_equal(xvb_evloop_run_once(t->loop, 2000), 1);
	assert_int_equal(t->f.npush, 1);
	assert_int_equal(t->f.push[0].written, 2);
	assert_memory_equal(buf, "hi", 2);
	tx(t, 2, "yo", NULL);
	memset(got, 0, sizeof(got));
	assert_int_equal(read_wait(out[0], got, sizeof(got)), 2);
	assert_string_equal(got, "yo");

	/* EOF: logged once, then no more polling (no busy loop on HUP) */
	close(in[1]);
	assert_int_equal(xvb_evloop_run_once(t->loop, 2000), 1);
	assert_non_null(strstr(logtext(t), "end of file"));
	assert_int_equal(xvb_evloop_run_once(t->loop, 50), 0);
	xvb_console_ops.destroy(t->priv);

	/* stdin that epoll cannot watch (/dev/null): output still works */
	nul = open("/dev/null", O_RDONLY);
	assert_true(nul >= 0 && dup2(nul, 0) == 0);
	close(nul);
	con_start(t, "stdio");
	assert_non_null(strstr(logtext(t), "cannot be polled"));
	tx(t, 3, "ok", NULL);
	assert_int_equal(read_wait(out[0], got, sizeof(got)), 2);
	xvb_console_ops.destroy(t->priv);
	t->priv = NULL;

	dup2(save_in, 0);
	dup2(save_out, 1);
	close(save_in);
	close(save_out);
	close(in[0]);
	close(out[0]);
	close(out[1]);
}

/* VIRTIO_CONSOLE_F_EMERG_WRITE: emerg_wr is the one writable config field.
 * A character written there goes out like normal output, even before the
 * driver set the device up; every other field refuses writes. */
static void test_console_emergency_write(void **state)
{
	struct t *t = *state;
	const uint32_t emerg = offsetof(struct virtio_console_config, emerg_wr);
	uint8_t cfg[sizeof(struct virtio_console_config)] = { 0 }, le[4] = { 'E', 0, 0, 0 };
	char params[200], got[16];
	int cl;

	snprintf(t->path, sizeof(t->path), "%s/con.sock", t->dir);
	snprintf(params, sizeof(params), "socket=%s", t->path);
	t->ops = &xvb_console_ops;
	assert_int_equal(emerg, 8);
	assert_int_equal(xvb_console_ops.create(params, &t->env, &t->priv), 0);
	assert_non_null(xvb_console_ops.set_config);
	assert_true(xvb_console_ops.features(t->priv) & (1ULL << VIRTIO_CONSOLE_F_EMERG_WRITE));
	cl = connect_to(t->path);
	assert_int_equal(xvb_evloop_run_once(t->loop, 2000), 1);	/* accept */

	/* Not activated (no queues): the character still goes out. */
	assert_int_equal(xvb_console_ops.set_config(t->priv, emerg, le, 4), 0);
	memset(got, 0, sizeof(got));
	assert_int_equal(read_wait(cl, got, sizeof(got)), 1);
	assert_string_equal(got, "E");

	/* Activated: in order with the transmit queue's output. */
	assert_int_equal(xvb_console_ops.activate(t->priv, VDEV(&t->f), 0), 0);
	tx(t, 1, "ab", NULL);
	le[0] = '!';
	assert_int_equal(xvb_console_ops.set_config(t->priv, emerg, le, 4), 0);
	tx(t, 2, "cd", NULL);
	memset(got, 0, sizeof(got));
	assert_int_equal(read_some_wait(cl, got, sizeof(got), 5), 5);
	assert_string_equal(got, "ab!cd");

	/* Read-only fields, and emerg_wr in pieces or together with them. */
	assert_int_equal(xvb_console_ops.set_config(t->priv, 0, le, 2), -EPERM);	/* cols */
	assert_int_equal(xvb_console_ops.set_config(t->priv, 2, le, 2), -EPERM);	/* rows */
	assert_int_equal(xvb_console_ops.set_config(t->priv, 4, le, 4), -EPERM);	/* ports */
	assert_int_equal(xvb_console_ops.set_config(t->priv, emerg, le, 1), -EPERM);
	assert_int_equal(xvb_console_ops.set_config(t->priv, emerg + 1, le, 3), -EPERM);
	assert_int_equal(xvb_console_ops.set_config(t->priv, 4, cfg, 8), -EPERM);
	/* Write-only: it reads as zero, like the rest of the config space. */
	memset(cfg, 0xee, sizeof(cfg));
	xvb_console_ops.get_config(t->priv, cfg);
	assert_true(all_zero(cfg, sizeof(cfg)));
	/* Nothing went out for the refused writes. */
	tx(t, 3, "z", NULL);
	memset(got, 0, sizeof(got));
	assert_int_equal(read_wait(cl, got, sizeof(got)), 1);
	assert_string_equal(got, "z");
	close(cl);
}

static void test_console_inactive(void **state)
{
	struct t *t = *state;
	char params[200];
	struct xvb_req r;

	snprintf(t->path, sizeof(t->path), "%s/con.sock", t->dir);
	snprintf(params, sizeof(params), "socket=%s", t->path);
	t->ops = &xvb_console_ops;
	assert_int_equal(xvb_console_ops.create(params, &t->env, &t->priv), 0);
	mkreq(&r, 1, "x", 1, NULL, 0);
	fake_queue(&t->f, 1, &r, 0);
	xvb_console_ops.notify(t->priv, 1);
	xvb_console_ops.notify(t->priv, 0);
	assert_int_equal(t->f.pops, 0);
	assert_int_equal(t->f.npush, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rng_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rng_fill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rng_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rng_inactive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evloop_del_in_dispatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evloop_mod, setup, teardown),
		cmocka_unit_test_setup_teardown(test_console_params, setup, teardown),
		cmocka_unit_test_setup_teardown(test_console_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_console_pty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_console_stdio, setup, teardown),
		cmocka_unit_test_setup_teardown(test_console_emergency_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_console_inactive, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
