// SPDX-License-Identifier: MIT
/*
 * Integration: the userspace driver library (driver/) against a malicious
 * backend, on the loopback bus.  Each case starts xvmsg-backend with one
 * --fault mode (the lies are in backend-domain/, see docs/backend.md),
 * drives a disk through libxvmsg-drv and asserts what the driver must do:
 * keep working where the lie is harmless, fail with a clean error where it
 * is not, and never crash or hang (every step is bounded; under make
 * check-san the library runs with ASan and UBSan).  A case also checks the
 * backend really lied (its log or the driver's counters), so it can fail.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "loop-fixture.h"

#define DISK_BYTES	(4u << 20)
#define MARKER		"XVMSG-SECRET-"	/* = XVB_SNOOP_MARKER */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Start a backend lying with `fault` and open a domain on it; *state holds
 * it for the teardown until finish(). */
static struct loop_fx *start(void **state, const char *fault)
{
	const struct loop_fx_opts o = {
		.disk_bytes = DISK_BYTES, .args = { "--fault", fault },
		.open_domain = 1, .domain = { .log_level = XVD_LOG_ERR, .timeout_ms = 1000 },
	};
	struct loop_fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	*state = f;
	assert_int_equal(loop_fx_start(f, &o), 0);
	return f;
}

static int open_blk(struct loop_fx *f, int mode)
{
	struct xvd_dev_opts o = { .export_name = "disk0", .devid = 1, .mode = mode,
				  .pool_pages = 64 };

	return xvd_blk_open(f->d, &o, &f->dev);
}

/* Close everything; the backend must still be running (it lies, it does not
 * crash) and stop cleanly on SIGTERM. */
static void finish(void **state, bool backend_alive)
{
	struct loop_fx *f = *state;
	bool bad;
	int st;

	if (f->dev)
		xvd_dev_close(f->dev);
	f->dev = NULL;
	xvd_domain_close(f->d);
	f->d = NULL;
	st = backend_stop(&f->b, SIGTERM);
	bad = backend_alive && !(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	if (bad)
		backend_dump_log(&f->b);
	loop_fx_teardown(state);
	if (bad)
		fail_msg("backend did not stop cleanly (status %d)", st);
}

/* A value "<prefix>N" in the backend's log, or -1. */
static long log_number_after(const struct loop_fx *f, const char *prefix)
{
	char line[512];
	FILE *fp = fopen(f->b.log, "r");
	long v = -1;
	char *p;

	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp))
		if ((p = strstr(line, prefix)))
			v = strtol(p + strlen(prefix), NULL, 10);
	fclose(fp);
	return v;
}

static void fill(uint8_t *buf, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + seed);
}

/* Write then read back 64 KiB at a few places; 0 if all matched, else the
 * first error. */
static int io_roundtrip(struct xvd_dev *dev)
{
	static uint8_t out[65536], in[65536];
	int r;

	for (unsigned int k = 0; k < 4; k++) {
		fill(out, sizeof(out), k);
		r = xvd_blk_write(dev, 256 * k, out, sizeof(out));
		if (r)
			return r;
		memset(in, 0, sizeof(in));
		r = xvd_blk_read(dev, 256 * k, in, sizeof(in));
		if (r)
			return r;
		if (memcmp(out, in, sizeof(in)))
			return -EBADMSG;
	}
	return 0;
}

/* ---- lies about the used ring ------------------------------------------ */

/* The same id twice: the first completion is real, the second names a
 * chain no longer in flight.  The queue is broken (-EIO), promptly. */
static void used_dup_id(void **state)
{
	struct loop_fx *f = start(state, "used-dup-id");
	static uint8_t buf[8192];
	double t0;
	int r;

	assert_int_equal(open_blk(f, XVD_MODE_POOL), 0);
	t0 = now_s();
	r = xvd_blk_write(f->dev, 0, buf, sizeof(buf));
	assert_true(r == 0 || r == -EIO);
	r = xvd_blk_read(f->dev, 0, buf, sizeof(buf));
	assert_int_equal(r, -EIO);
	assert_int_equal(xvd_dev_error(f->dev), -EIO);
	assert_true(now_s() - t0 < 3.0);
	print_message("used-dup-id: device broken (-EIO) after %.2f s\n", now_s() - t0);
	finish(state, true);
}

static void used_bad_id(void **state)
{
	struct loop_fx *f = start(state, "used-bad-id");
	static uint8_t buf[4096];

	assert_int_equal(open_blk(f, XVD_MODE_POOL), 0);
	assert_int_equal(xvd_blk_read(f->dev, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(xvd_dev_error(f->dev), -EIO);
	finish(state, true);
}

/* Used lengths beyond the buffers: the library treats a length it cannot
 * trust as a broken device (-EIO); it never copies past the buffer.  (The
 * kernel module clamps instead, and its reads work.) */
static void used_bad_len(void **state)
{
	struct loop_fx *f = start(state, "used-bad-len");
	static uint8_t buf[4096];

	assert_int_equal(open_blk(f, XVD_MODE_POOL), 0);
	assert_int_equal(xvd_blk_read(f->dev, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(xvd_dev_error(f->dev), -EIO);
	finish(state, true);
}

/* Queue 0 served honestly; on queue 1 the used entries name no descriptor
 * and are never signalled (a NIC's transmit queue in the kmod plan).  A
 * two-queue disk takes requests in turn: the first read completes, the
 * second ends within the device timeout with an error, whether the library
 * finds the lie or times out first, and the device is broken. */
static void quiet_bad_id(void **state)
{
	const struct loop_fx_opts o = {
		.disk_bytes = DISK_BYTES, .disk_params = "queues=2",
		.args = { "--fault", "quiet-bad-id" },
		.open_domain = 1, .domain = { .log_level = XVD_LOG_ERR, .timeout_ms = 1000 },
	};
	struct xvd_dev_opts d = { .export_name = "disk0", .devid = 1, .mode = XVD_MODE_POOL,
				  .pool_pages = 64, .queues = 2 };
	struct loop_fx *f = calloc(1, sizeof(*f));
	static uint8_t buf[4096];
	double t0;
	int r;

	assert_non_null(f);
	*state = f;
	assert_int_equal(loop_fx_start(f, &o), 0);
	assert_int_equal(xvd_blk_open(f->d, &d, &f->dev), 0);
	assert_int_equal(xvd_blk_queues(f->dev), 2);
	assert_int_equal(xvd_blk_read(f->dev, 0, buf, sizeof(buf)), 0);	/* queue 0 */
	t0 = now_s();
	r = xvd_blk_read(f->dev, 8, buf, sizeof(buf));			/* queue 1 */
	print_message("quiet-bad-id: second read %d (%s) after %.3f s\n", r, strerror(-r),
		      now_s() - t0);
	assert_true(r == -EIO || r == -ETIMEDOUT);
	assert_true(now_s() - t0 < 3.0);
	assert_int_not_equal(xvd_dev_error(f->dev), 0);
	/* The backend lied, on queue 1 (its log). */
	assert_int_equal(log_number_after(f, "used entries beyond queue "), 1);
	finish(state, true);
}

/* Notifications by the thousand: I/O works, the driver does not spin. */
static void irq_storm(void **state)
{
	struct loop_fx *f = start(state, "irq-storm");
	struct xvd_stats st;

	assert_int_equal(open_blk(f, XVD_MODE_POOL), 0);
	assert_int_equal(io_roundtrip(f->dev), 0);
	xvd_dev_stats(f->dev, &st);
	print_message("irq-storm: %llu notifications taken\n", (unsigned long long)st.irqs);
	finish(state, true);
}

/* A 4 KiB read of a device that completes nothing: it must end at the device
 * timeout (1 s here) with an error, from the library's own record. */
static void read_times_out(struct loop_fx *f, const char *what)
{
	static uint8_t buf[4096];
	double t0 = now_s();
	int r = xvd_blk_read(f->dev, 0, buf, sizeof(buf));

	assert_true(r == -ETIMEDOUT || r == -EIO);
	assert_true(now_s() - t0 < 5.0);
	print_message("%s: read returned %d after %.2f s\n", what, r, now_s() - t0);
}

/* Never completes. */
static void silent(void **state)
{
	struct loop_fx *f = start(state, "silent");

	assert_int_equal(open_blk(f, XVD_MODE_POOL), 0);
	read_times_out(f, "silent");
	finish(state, true);
}

/* ---- lies on the message ring ------------------------------------------- */

/* Before every response, a stale and an unsolicited one with the payload
 * inverted: the driver drops both (counted), takes the right one, and the
 * device works. */
static void msg_bad_token(void **state)
{
	struct loop_fx *f = start(state, "msg-bad-token");
	struct xvd_blk_info info;
	struct xvd_stats st;

	assert_int_equal(open_blk(f, XVD_MODE_POOL), 0);
	assert_int_equal(xvd_blk_info(f->dev, &info), 0);
	assert_int_equal(info.capacity, DISK_BYTES / 512);
	assert_int_equal(io_roundtrip(f->dev), 0);
	xvd_dev_stats(f->dev, &st);
	print_message("msg-bad-token: %llu messages dropped, device fine\n",
		      (unsigned long long)st.msgs_bad);
	assert_true(st.msgs_bad >= 2);
	finish(state, true);
	(void)log_number_after;
}

/* Response slots scribbled over once consumed: the driver copied each
 * once, so config reads and I/O are unaffected. */
static void msg_rewrite(void **state)
{
	struct loop_fx *f = start(state, "msg-rewrite");
	struct xvd_blk_info info;
	long n;

	assert_int_equal(open_blk(f, XVD_MODE_POOL), 0);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(xvd_blk_info(f->dev, &info), 0);
		assert_int_equal(info.capacity, DISK_BYTES / 512);
	}
	assert_int_equal(io_roundtrip(f->dev), 0);
	xvd_dev_close(f->dev);
	f->dev = NULL;
	/* The backend logs its count at disconnect: it did rewrite. */
	for (int i = 0; i < 200 && log_number_after(f, "fault: ") < 0; i++)
		usleep(10000);
	n = log_number_after(f, "fault: ");
	print_message("msg-rewrite: %ld consumed response slots rewritten\n", n);
	assert_true(n > 20);
	finish(state, true);
}

/* ---- the backend dies in the handshake ---------------------------------- */

static void vanish_handshake(void **state)
{
	struct loop_fx *f = start(state, "vanish-handshake");
	double t0 = now_s();
	int r, st;

	r = open_blk(f, XVD_MODE_POOL);
	print_message("vanish-handshake: open returned %d after %.2f s\n", r, now_s() - t0);
	assert_true(r < 0);
	assert_null(f->dev);
	assert_true(now_s() - t0 < 5.0);
	/* The domain notices the peer is gone; nothing blocks. */
	assert_true(xvd_domain_dispatch(f->d) == -ENODEV || xvd_domain_dispatch(f->d) == 0);
	st = backend_stop(&f->b, SIGTERM);
	assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 3);
	finish(state, false);
}

/* ---- grant mode: pages kept mapped after completion ---------------------- */

/* Revoking a grant the backend still maps fails: the driver must count it
 * and leak the page, never hand it out again. */
static void keep_mapped(void **state)
{
	struct loop_fx *f = start(state, "keep-mapped");
	struct xvd_stats st;
	void *a, *b;
	int r;

	assert_int_equal(open_blk(f, XVD_MODE_GRANT), 0);
	assert_int_equal(xvd_ram_alloc(f->d, 65536, &a), 0);
	fill(a, 65536, 3);
	r = xvd_blk_write(f->dev, 0, a, 65536);
	assert_true(r == 0 || r == -EIO);
	r = xvd_blk_read(f->dev, 0, a, 65536);
	assert_true(r == 0 || r == -EIO);
	xvd_dev_stats(f->dev, &st);
	xvd_ram_free(f->d, a);
	/* The freed range is still mapped by the backend: not reused. */
	assert_int_equal(xvd_ram_alloc(f->d, 65536, &b), 0);
	print_message("keep-mapped: revokes %llu, busy %llu; buffer %p, next %p\n",
		      (unsigned long long)st.revokes, (unsigned long long)st.revoke_busy, a, b);
	assert_true(st.revoke_busy > 0);
	assert_true((uint8_t *)b >= (uint8_t *)a + 65536 || (uint8_t *)b + 65536 <= (uint8_t *)a);
	xvd_ram_free(f->d, b);
	finish(state, true);
}

/* ---- pool mode: does freed pool memory keep guest data? ------------------ */

static void snoop(void **state)
{
	struct loop_fx *f = start(state, "snoop");
	static uint8_t buf[131072], back[131072];
	size_t m = strlen(MARKER);
	int idle_scans = 0;

	assert_int_equal(open_blk(f, XVD_MODE_POOL), 0);
	for (size_t i = 0; i + m <= sizeof(buf); i += m)
		memcpy(buf + i, MARKER, m);
	for (unsigned int k = 0; k < 8; k++)
		assert_int_equal(xvd_blk_write(f->dev, 256 * k, buf, sizeof(buf)), 0);
	/* Read back somewhere else: a slot the device wrote holds what the
	 * backend put there, not the guest's (the library does not scrub
	 * those), so reading the marker back would plant it in the pool. */
	memset(back, 0xee, sizeof(back));
	assert_int_equal(xvd_blk_read(f->dev, 4096, back, sizeof(back)), 0);
	for (size_t i = 0; i < sizeof(back); i++)
		assert_int_equal(back[i], 0);
	/* Idle for a second: the backend scans the whole pool (bounded wait). */
	for (int i = 0; i < 500 && !idle_scans; i++) {
		usleep(10000);
		idle_scans = backend_log_count(&f->b, "snoop: idle scan");
	}
	if (!idle_scans || backend_log_count(&f->b, "snoop: idle scan 1: 0 stale bytes") != 1 ||
	    backend_log_count(&f->b, "marker is in the pool while a write") != 1)
		backend_dump_log(&f->b);
	assert_int_equal(idle_scans, 1);
	/* Nothing stale, and the scan can see the marker (positive control). */
	assert_int_equal(backend_log_count(&f->b, "snoop: idle scan 1: 0 stale bytes"), 1);
	assert_int_equal(backend_log_count(&f->b, "marker is in the pool while a write"), 1);
	finish(state, true);
}

/* ---- the driver's own rings rewritten (issue 17, items 5 and 6) --------- */

/* NEXT on every descriptor: the library never reads its table back, so I/O
 * either works or fails; it never hangs or loops. */
static void desc_rewrite(void **state)
{
	struct loop_fx *f = start(state, "desc-rewrite");
	double t0;
	int r;

	assert_int_equal(open_blk(f, XVD_MODE_POOL), 0);
	t0 = now_s();
	r = io_roundtrip(f->dev);
	assert_true(r == 0 || r == -EIO || r == -ETIMEDOUT);
	assert_true(now_s() - t0 < 10.0);
	print_message("desc-rewrite: I/O returned %d after %.2f s\n", r, now_s() - t0);
	assert_true(backend_log_count(&f->b, "desc-rewrite: NEXT set on every descriptor") >= 1);
	finish(state, true);
}

/* avail->idx set back, nothing completed: the wait ends at the device
 * timeout, from the library's own record of what is in flight. */
static void avail_rewrite(void **state)
{
	struct loop_fx *f = start(state, "avail-rewrite");

	assert_int_equal(open_blk(f, XVD_MODE_POOL), 0);
	read_times_out(f, "avail-rewrite");
	assert_true(backend_log_count(&f->b, "avail-rewrite: requests kept") >= 1);
	finish(state, true);
}

/* A device id other than the one asked for (balloon for a blk): refused. */
static void wrong_device_id(void **state)
{
	struct loop_fx *f = start(state, "wrong-device-id");

	assert_int_not_equal(open_blk(f, XVD_MODE_POOL), 0);
	assert_null(f->dev);
	finish(state, true);
}

/* A device that offers every transport bit (IN_ORDER, PACKED, RING_RESET,
 * NOTIFICATION_DATA, ...): the driver takes none of those, even asked to,
 * and the device works. */
static void extra_features(void **state)
{
	struct loop_fx *f = start(state, "extra-features");
	char said[96];
	struct xvd_dev_opts o = { .export_name = "disk0", .devid = 1, .mode = XVD_MODE_POOL,
				  .pool_pages = 64, .features = 1ULL << 35 /* IN_ORDER */ };

	assert_int_equal(xvd_blk_open(f->d, &o, &f->dev), 0);
	assert_int_equal(io_roundtrip(f->dev), 0);
	assert_int_equal(xvd_dev_features(f->dev) & VMSG_TRANSPORT_FORBIDDEN, 0);
	assert_true(xvd_dev_features(f->dev) & (1ULL << VMSG_F_ACCESS_PLATFORM));
	snprintf(said, sizeof(said), "extra-features: transport bits 0x%llx offered too",
		 (unsigned long long)VMSG_TRANSPORT_FORBIDDEN);
	assert_int_equal(backend_log_count(&f->b, said), 1);
	assert_int_equal(backend_log_count(&f->b, "never offered"), 0);
	finish(state, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(desc_rewrite, loop_fx_teardown),
		cmocka_unit_test_teardown(avail_rewrite, loop_fx_teardown),
		cmocka_unit_test_teardown(wrong_device_id, loop_fx_teardown),
		cmocka_unit_test_teardown(extra_features, loop_fx_teardown),
		cmocka_unit_test_teardown(used_dup_id, loop_fx_teardown),
		cmocka_unit_test_teardown(used_bad_id, loop_fx_teardown),
		cmocka_unit_test_teardown(used_bad_len, loop_fx_teardown),
		cmocka_unit_test_teardown(quiet_bad_id, loop_fx_teardown),
		cmocka_unit_test_teardown(irq_storm, loop_fx_teardown),
		cmocka_unit_test_teardown(silent, loop_fx_teardown),
		cmocka_unit_test_teardown(msg_bad_token, loop_fx_teardown),
		cmocka_unit_test_teardown(msg_rewrite, loop_fx_teardown),
		cmocka_unit_test_teardown(vanish_handshake, loop_fx_teardown),
		cmocka_unit_test_teardown(keep_mapped, loop_fx_teardown),
		cmocka_unit_test_teardown(snoop, loop_fx_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("loop-badbackend", tests, NULL, NULL);
}
