// SPDX-License-Identifier: MIT
/* Integration: virtio-rng and virtio-console over the loopback bus. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <cmocka.h>
#include <linux/virtio_console.h>

#include "drv-priv.h"
#include "loop-fixture.h"

struct fx {
	struct loop_fx lf;
	char con_sock[100];
};

static int setup_args(void **state, const char *more)
{
	struct loop_fx_opts o = { .args = { "--export", "rng0:rng", "--export", NULL, "--full",
					    more ? "--poll-us" : NULL, more },
				  .open_domain = 1, .domain = { .log_level = XVD_LOG_WARN } };
	struct fx *f = calloc(1, sizeof(*f));
	char exp[256];

	*state = f;
	if (!f)
		return -1;
	/* No asserts: cmocka skips the teardown when a setup fails. */
	SETUP_TRY(backend_setup(&f->lf.b));
	snprintf(f->con_sock, sizeof(f->con_sock), "%.60s/con.sock", f->lf.b.dir);
	snprintf(exp, sizeof(exp), "con0:console:socket=%s", f->con_sock);
	o.args[3] = exp;
	SETUP_TRY(loop_fx_start(&f->lf, &o));
	return 0;
fail:
	loop_fx_teardown(state);
	return -1;
}

static int setup(void **state)
{
	return setup_args(state, NULL);
}

/* The backend polls 20 ms after work (--poll-us). */
static int setup_poll(void **state)
{
	return setup_args(state, "20000");
}

static void rng_in_mode(void **state, int mode)
{
	struct fx *f = *state;
	struct xvd_dev_opts o = { .export_name = "rng0", .mode = mode };
	static uint8_t a[65536], b[65536];
	unsigned int i, zeros = 0;

	assert_int_equal(xvd_rng_open(f->lf.d, &o, &f->lf.dev), 0);
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	assert_int_equal(xvd_rng_read(f->lf.dev, a, sizeof(a)), (int)sizeof(a));
	assert_int_equal(xvd_rng_read(f->lf.dev, b, sizeof(b)), (int)sizeof(b));
	assert_memory_not_equal(a, b, sizeof(a));
	for (i = 0; i < sizeof(a); i++)
		zeros += a[i] == 0;
	/* ~256 expected; all-zero or stale buffers would give 65536. */
	assert_true(zeros < 1024);
}

static void test_rng_pool(void **state) { rng_in_mode(state, XVD_MODE_POOL); }
static void test_rng_grant(void **state) { rng_in_mode(state, XVD_MODE_GRANT); }

static int connect_console(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	int fd, i;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	for (i = 0; i < 250; i++) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		nanosleep(&ts, NULL);
	}
	return -1;
}

static ssize_t read_some(int fd, char *buf, size_t len, size_t want)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t got = 0;

	while (got < want && poll(&p, 1, 5000) == 1) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static void console_in_mode(void **state, int mode)
{
	struct fx *f = *state;
	struct xvd_dev_opts o = { .export_name = "con0", .mode = mode };
	const char out[] = "hello from the guest\n", in[] = "hello from the host\n";
	char buf[128];
	int sock, n, got = 0;

	assert_int_equal(xvd_console_open(f->lf.d, &o, &f->lf.dev), 0);
	sock = connect_console(f->con_sock);
	assert_true(sock >= 0);
	/* Guest -> host.  Give the backend a moment to accept the client:
	 * output with no client attached is dropped by design. */
	usleep(100 * 1000);
	assert_int_equal(xvd_console_write(f->lf.dev, out, strlen(out)), (int)strlen(out));
	assert_int_equal(read_some(sock, buf, sizeof(buf), strlen(out)), (ssize_t)strlen(out));
	assert_memory_equal(buf, out, strlen(out));
	/* Host -> guest. */
	assert_int_equal(write(sock, in, strlen(in)), (ssize_t)strlen(in));
	while (got < (int)strlen(in)) {
		n = xvd_console_read(f->lf.dev, buf + got, sizeof(buf) - (size_t)got, 5000);
		assert_true(n > 0);
		got += n;
	}
	assert_memory_equal(buf, in, strlen(in));
	close(sock);
}

static void test_console_pool(void **state) { console_in_mode(state, XVD_MODE_POOL); }
static void test_console_full(void **state) { console_in_mode(state, XVD_MODE_FULL); }

/* The generation check of SET_CONFIG, from outside, on a field that can be
 * written: virtio-console's emerg_wr (VIRTIO_CONSOLE_F_EMERG_WRITE).  The
 * current generation: accepted, the character is console output, and the
 * generation moves on.  A stale one: refused (-EAGAIN), nothing written.  A
 * read-only field at the current generation: refused (-EPERM). */
static void test_console_config_generation(void **state)
{
	struct fx *f = *state;
	struct xvd_dev_opts o = { .export_name = "con0" };
	const uint32_t emerg = offsetof(struct virtio_console_config, emerg_wr);
	uint8_t cfg[sizeof(struct virtio_console_config)], ch[4] = { 'X', 0, 0, 0 };
	uint32_t gen;
	char buf[16];
	int sock;

	assert_int_equal(xvd_console_open(f->lf.d, &o, &f->lf.dev), 0);
	sock = connect_console(f->con_sock);
	assert_true(sock >= 0);
	usleep(100 * 1000);	/* the backend accepts the client */
	assert_int_equal(xvd_dev_config_read(f->lf.dev, 0, cfg, sizeof(cfg)), 0);
	gen = f->lf.dev->cfg_gen;

	assert_int_equal(xvd_dev_config_write(f->lf.dev, emerg, ch, sizeof(ch)), 0);
	assert_int_equal(f->lf.dev->cfg_gen, gen + 1);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(read_some(sock, buf, sizeof(buf), 1), 1);
	assert_string_equal(buf, "X");

	/* Our view falls behind (another writer, say): refused, and the
	 * response tells the current generation. */
	f->lf.dev->cfg_gen = gen;
	ch[0] = 'Y';
	assert_int_equal(xvd_dev_config_write(f->lf.dev, emerg, ch, sizeof(ch)), -EAGAIN);
	assert_int_equal(f->lf.dev->cfg_gen, gen + 1);
	/* cols is read-only: refused at the current generation. */
	assert_int_equal(xvd_dev_config_write(f->lf.dev, 0, ch, 2), -EPERM);
	assert_int_equal(f->lf.dev->cfg_gen, gen + 1);
	/* Retried at the current generation: accepted. */
	ch[0] = 'Z';
	assert_int_equal(xvd_dev_config_write(f->lf.dev, emerg, ch, sizeof(ch)), 0);
	assert_int_equal(f->lf.dev->cfg_gen, gen + 2);
	/* Only X and Z came out, then normal output follows them. */
	assert_int_equal(xvd_console_write(f->lf.dev, "\n", 1), 1);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(read_some(sock, buf, sizeof(buf), 2), 2);
	assert_string_equal(buf, "Z\n");
	/* emerg_wr is write-only: it reads as zero. */
	assert_int_equal(xvd_dev_config_read(f->lf.dev, emerg, ch, sizeof(ch)), 0);
	assert_memory_equal(ch, "\0\0\0\0", 4);
	close(sock);
}

/*
 * --poll-us with devices whose queues wait for the host, not the guest: a
 * console's receive queue and an rng's requests hold buffers the backend
 * cannot fill yet.  Buffers that are posted but cannot be used are no work:
 * once the poll after the last exchange is over the backend sleeps.
 */
static void test_poll_idle_with_waiting_queues(void **state)
{
	struct fx *f = *state;
	struct xvd_dev_opts o = { .export_name = "con0" };
	char buf[64];
	int sock;

	assert_int_equal(xvd_console_open(f->lf.d, &o, &f->lf.dev), 0);
	sock = connect_console(f->con_sock);
	assert_true(sock >= 0);
	usleep(100 * 1000);
	assert_int_equal(xvd_console_write(f->lf.dev, "x\n", 2), 2);
	assert_int_equal(read_some(sock, buf, sizeof(buf), 2), 2);
	usleep(200 * 1000);		/* the poll (20 ms) is long over */
	assert_true(proc_cpu_over(f->lf.b.pid, 300, 1000000,
		    "idle backend, receive buffers posted") < 1000000);
	/* and input still reaches the guest */
	assert_int_equal(write(sock, "y", 1), 1);
	assert_int_equal(xvd_console_read(f->lf.dev, buf, sizeof(buf), 5000), 1);
	assert_int_equal(buf[0], 'y');
	close(sock);
}

/*
 * A console client that sends more than the driver has buffers for, then
 * hangs up: the backend holds input back until the driver posts buffers
 * (input not watched), and the hang-up must not wake it again and again
 * meanwhile (epoll reports a hang-up even on an fd watched for nothing).
 * Everything sent before the hang-up still reaches the guest, in order.
 */
static void test_console_hangup_while_paused(void **state)
{
	struct fx *f = *state;
	struct xvd_dev_opts o = { .export_name = "con0" };
	static char out[16384], in[sizeof(out)];
	size_t got = 0;
	int sock;

	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (char)('a' + i % 23);
	assert_int_equal(xvd_console_open(f->lf.d, &o, &f->lf.dev), 0);
	sock = connect_console(f->con_sock);
	assert_true(sock >= 0);
	usleep(100 * 1000);
	assert_int_equal(write(sock, out, sizeof(out)), (ssize_t)sizeof(out));
	usleep(100 * 1000);		/* the driver's 4 KiB of buffers are full */
	close(sock);
	usleep(100 * 1000);
	assert_true(proc_cpu_over(f->lf.b.pid, 300, 1000000,
		    "backend holding input back") < 1000000);
	while (got < sizeof(in)) {
		int n = xvd_console_read(f->lf.dev, in + got, sizeof(in) - got, 5000);

		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_memory_equal(in, out, sizeof(out));
}

/* The lowest descriptor number process pid has free. */
static long lowest_free_fd(pid_t pid)
{
	char p[64];
	long i;

	for (i = 0;; i++) {
		snprintf(p, sizeof(p), "/proc/%d/fd/%ld", (int)pid, i);
		if (access(p, F_OK))
			return i;
	}
}

/*
 * A console client connects while the backend has no descriptor to spare
 * (guests can use them up, see tests/hostile): it is refused at once, the
 * backend does not spin on a listening socket that stays readable, and
 * once descriptors are back the next client is served.
 */
static void test_console_accept_out_of_fds(void **state)
{
	struct fx *f = *state;
	struct xvd_dev_opts o = { .export_name = "con0" };
	struct rlimit old, lim;
	char buf[16];
	int sock;

	assert_int_equal(xvd_console_open(f->lf.d, &o, &f->lf.dev), 0);
	usleep(100 * 1000);
	assert_int_equal(prlimit(f->lf.b.pid, RLIMIT_NOFILE, NULL, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)lowest_free_fd(f->lf.b.pid);
	assert_int_equal(prlimit(f->lf.b.pid, RLIMIT_NOFILE, &lim, NULL), 0);
	sock = connect_console(f->con_sock);
	assert_true(sock >= 0);
	{
		struct pollfd p = { .fd = sock, .events = POLLIN };

		assert_int_equal(poll(&p, 1, 3000), 1);		/* hung up on */
		assert_int_equal(read(sock, buf, sizeof(buf)), 0);
	}
	close(sock);
	sock = connect_console(f->con_sock);		/* and again */
	assert_true(sock >= 0);
	usleep(100 * 1000);
	assert_true(proc_cpu_over(f->lf.b.pid, 300, 1000000,
		    "backend out of descriptors") < 1000000);
	close(sock);
	assert_int_equal(prlimit(f->lf.b.pid, RLIMIT_NOFILE, &old, NULL), 0);
	assert_true(backend_log_count(&f->lf.b, "client refused") >= 1);
	sock = connect_console(f->con_sock);
	assert_true(sock >= 0);
	usleep(100 * 1000);
	assert_int_equal(xvd_console_write(f->lf.dev, "ok\n", 3), 3);
	assert_int_equal(read_some(sock, buf, sizeof(buf), 3), 3);
	assert_memory_equal(buf, "ok\n", 3);
	close(sock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rng_pool, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_rng_grant, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_console_pool, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_console_full, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_console_config_generation, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_poll_idle_with_waiting_queues, setup_poll,
						loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_console_hangup_while_paused, setup,
						loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_console_accept_out_of_fds, setup,
						loop_fx_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("loop-devices", tests, NULL, NULL);
}
