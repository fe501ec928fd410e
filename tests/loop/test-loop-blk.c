// SPDX-License-Identifier: MIT
/*
 * Integration: xvmsg-backend as a separate process, a virtio-blk device
 * driven through the loopback bus in each memory-access mode.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/wait.h>
#include <cmocka.h>

#include <xvmsg/pool.h>

#include "loop-fixture.h"

#define DISK_SIZE	(8u << 20)
#define SECTORS		(DISK_SIZE / 512)
#define CHUNK		(64u << 10)

static int setup(void **state)
{
	static const struct loop_fx_opts o = {
		.disk_bytes = DISK_SIZE, .disk_params = "serial=xvmsg-test",
		.disk_also = "disk2q:queues=2",
		.args = { "--log-level", "info", "--full" },
	};

	return loop_fx_setup(state, sizeof(struct loop_fx), &o);
}

static void open_domain(struct loop_fx *f)
{
	struct xvd_domain_opts o = { .socket_path = f->b.sock, .ram_pages = 8192,
				     .log_level = XVD_LOG_WARN };

	assert_int_equal(xvd_domain_open_loop(&o, &f->d), 0);
}

static int open_blk(struct loop_fx *f, int mode, unsigned int devid)
{
	struct xvd_dev_opts o = { .export_name = "disk0", .devid = devid, .mode = mode,
				  .pool_pages = 1024 };

	return xvd_blk_open(f->d, &o, &f->dev);
}

/* Sector s holds its own number and a per-pass seed in every 8 bytes. */
static void fill(uint8_t *buf, uint64_t sector, size_t len, uint64_t seed)
{
	size_t i;

	for (i = 0; i < len; i += 8) {
		uint64_t v = ((sector + i / 512) << 20) ^ (i % 512) ^ seed;

		memcpy(buf + i, &v, 8);
	}
}

static int check(const uint8_t *buf, uint64_t sector, size_t len, uint64_t seed)
{
	uint8_t want[CHUNK];

	fill(want, sector, len, seed);
	return memcmp(buf, want, len);
}

/* Write the whole disk with up to qd requests in flight, then read it back. */
static void pattern_pass(struct loop_fx *f, uint64_t seed, unsigned int qd)
{
	unsigned int nbuf = qd, i, inflight = 0, errors = 0, bad = 0;
	uint64_t next = 0, done_bytes = 0;
	struct xvd_done done[64];
	void **bufs = calloc(nbuf, sizeof(void *));
	uint64_t *sect = calloc(nbuf, sizeof(uint64_t));
	int pass, n;

	assert_non_null(bufs);
	for (i = 0; i < nbuf; i++)
		assert_int_equal(xvd_ram_alloc(f->d, CHUNK, &bufs[i]), 0);
	for (pass = 0; pass < 2; pass++) {
		int op = pass == 0 ? XVD_BLK_WRITE : XVD_BLK_READ;
		unsigned int freelist = nbuf;
		unsigned int stack[256];

		for (i = 0; i < nbuf; i++)
			stack[i] = i;
		next = 0;
		done_bytes = 0;
		while (done_bytes < DISK_SIZE) {
			while (freelist && next < DISK_SIZE) {
				unsigned int k = stack[--freelist];

				sect[k] = next / 512;
				if (op == XVD_BLK_WRITE)
					fill(bufs[k], sect[k], CHUNK, seed);
				else
					memset(bufs[k], 0xee, CHUNK);
				n = xvd_blk_submit(f->dev, op, sect[k], bufs[k], CHUNK,
						   (void *)(uintptr_t)k, 0);
				if (n == -ENOSPC || n == -ENOMEM) {
					stack[freelist++] = k;
					break;
				}
				assert_int_equal(n, 0);
				next += CHUNK;
				inflight++;
			}
			n = xvd_blk_wait(f->dev, done, 64, 5000);
			assert_true(n > 0);
			for (i = 0; i < (unsigned int)n; i++) {
				unsigned int k = (unsigned int)(uintptr_t)done[i].cookie;

				errors += done[i].status != 0;
				if (op == XVD_BLK_READ && check(bufs[k], sect[k], CHUNK, seed))
					bad++;
				stack[freelist++] = k;
				inflight--;
				done_bytes += CHUNK;
			}
		}
		assert_int_equal(inflight, 0);
		if (op == XVD_BLK_WRITE)
			assert_int_equal(xvd_blk_flush(f->dev), 0);
	}
	assert_int_equal(errors, 0);
	assert_int_equal(bad, 0);
	for (i = 0; i < nbuf; i++)
		xvd_ram_free(f->d, bufs[i]);
	free(bufs);
	free(sect);
}

/* What the backend wrote is really in the image file. */
static void image_matches(struct loop_fx *f, uint64_t seed)
{
	uint8_t *buf = malloc(CHUNK);
	int fd = open(f->img, O_RDONLY | O_CLOEXEC);
	unsigned int bad = 0;
	uint64_t off;

	assert_non_null(buf);
	assert_true(fd >= 0);
	for (off = 0; off < DISK_SIZE; off += CHUNK) {
		assert_int_equal(pread(fd, buf, CHUNK, (off_t)off), CHUNK);
		bad += check(buf, off / 512, CHUNK, seed) != 0;
	}
	close(fd);
	free(buf);
	assert_int_equal(bad, 0);
}

static void pattern_in_mode(void **state, int mode)
{
	struct loop_fx *f = *state;
	struct xvd_blk_info info;
	char id[20];

	open_domain(f);
	assert_int_equal(open_blk(f, mode, 0), 0);
	assert_int_equal(xvd_blk_info(f->dev, &info), 0);
	assert_int_equal(info.capacity, SECTORS);
	assert_false(info.ro);
	assert_true(info.flush);
	pattern_pass(f, 0x1234 + (uint64_t)mode, 32);
	image_matches(f, 0x1234 + (uint64_t)mode);

	/* GET_ID returns the serial from the export's params. */
	{
		void *buf;
		struct xvd_done d;

		assert_int_equal(xvd_ram_alloc(f->d, 20, &buf), 0);
		assert_int_equal(xvd_blk_submit(f->dev, XVD_BLK_GET_ID, 0, buf, 20, NULL, 0), 0);
		assert_int_equal(xvd_blk_wait(f->dev, &d, 1, 5000), 1);
		assert_int_equal(d.status, 0);
		memcpy(id, buf, sizeof(id));
		assert_memory_equal(id, "xvmsg-test", 10);
		xvd_ram_free(f->d, buf);
	}
	/* Out of range: the device says IOERR, the device stays usable. */
	{
		uint8_t tmp[512];

		assert_int_not_equal(xvd_blk_read(f->dev, SECTORS, tmp, 512), 0);
		assert_int_equal(xvd_blk_read(f->dev, SECTORS - 1, tmp, 512), 0);
		assert_int_equal(check(tmp, SECTORS - 1, 512, 0x1234 + (uint64_t)mode), 0);
	}
}

static void test_pattern_pool(void **state) { pattern_in_mode(state, XVD_MODE_POOL); }
static void test_pattern_grant(void **state) { pattern_in_mode(state, XVD_MODE_GRANT); }
static void test_pattern_full(void **state) { pattern_in_mode(state, XVD_MODE_FULL); }

/* Hundreds of requests in flight at once on a 256-entry queue. */
static void test_many_inflight(void **state)
{
	struct loop_fx *f = *state;
	enum { N = 240 };
	void *buf[N];
	struct xvd_done done[N];
	unsigned int i, got = 0;
	char name[64];
	long mem;
	int n;

	open_domain(f);
	{
		/* Indirect tables for every chain, as Linux does: 240 requests of 3
		 * buffers fit a 256-entry ring only that way. */
		struct xvd_dev_opts o = { .export_name = "disk0", .devid = 3,
					  .mode = XVD_MODE_POOL, .pool_pages = 2048,
					  .indirect_min = 2 };

		assert_int_equal(xvd_blk_open(f->d, &o, &f->dev), 0);
	}
	assert_int_equal(xvd_dev_queue_size(f->dev, 0), 256);
	for (i = 0; i < N; i++) {
		assert_int_equal(xvd_ram_alloc(f->d, 4096, &buf[i]), 0);
		fill(buf[i], i * 8, 4096, 77);
		assert_int_equal(xvd_blk_submit(f->dev, XVD_BLK_WRITE, i * 8, buf[i], 4096,
						(void *)(uintptr_t)i, XVD_NO_KICK), 0);
	}
	assert_int_equal(xvd_vq_inflight(f->dev, 0), N);
	assert_int_equal(xvd_vq_kick(f->dev, 0), 0);
	while (got < N) {
		n = xvd_blk_wait(f->dev, done + got, N - got, 5000);
		assert_true(n > 0);
		got += (unsigned int)n;
	}
	for (i = 0; i < N; i++)
		assert_int_equal(done[i].status, 0);
	assert_int_equal(xvd_blk_flush(f->dev), 0);
	snprintf(name, sizeof(name), "blk3(dom%u)", xvd_domain_id(f->d));
	mem = backend_stat(&f->b, name, "mem_bytes");
	assert_true(mem > 0);
	for (i = 0; i < N; i++) {
		memset(buf[i], 0, 4096);
		assert_int_equal(xvd_blk_read(f->dev, i * 8, buf[i], 4096), 0);
		assert_int_equal(check(buf[i], i * 8, 4096, 77), 0);
	}
	/* The same N in flight once more: the backend's memory for the device
	 * is bounded by the queue, not by the requests it has served. */
	for (i = 0; i < N; i++)
		assert_int_equal(xvd_blk_submit(f->dev, XVD_BLK_READ, i * 8, buf[i], 4096,
						(void *)(uintptr_t)i, XVD_NO_KICK), 0);
	assert_int_equal(xvd_vq_kick(f->dev, 0), 0);
	for (got = 0; got < N; got += (unsigned int)n) {
		n = xvd_blk_wait(f->dev, done + got, N - got, 5000);
		assert_true(n > 0);
	}
	assert_int_equal(backend_stat(&f->b, name, "mem_bytes"), mem);
	for (i = 0; i < N; i++)
		xvd_ram_free(f->d, buf[i]);
}

/*
 * A two-queue disk (queues=2): the driver sets up both queues, its requests
 * go to both, every one completes, and what went through one queue reads
 * back through the other.  A driver asking two queues of a one-queue disk
 * is refused.
 */
static void multiqueue_in_mode(void **state, enum xvmsg_mode mode)
{
	struct loop_fx *f = *state;
	enum { N = 64 };
	struct xvd_dev_opts o = { .export_name = "disk2q", .devid = 5, .mode = mode,
				  .pool_pages = 1024, .queues = 2 };
	void *buf[N];
	struct xvd_done done[N];
	unsigned int i, got = 0;
	int n;

	open_domain(f);
	assert_int_equal(xvd_blk_open(f->d, &o, &f->dev), 0);
	assert_int_equal(xvd_blk_queues(f->dev), 2);
	assert_int_equal(xvd_dev_queue_size(f->dev, 1), 256);
	for (i = 0; i < N; i++) {
		assert_int_equal(xvd_ram_alloc(f->d, 4096, &buf[i]), 0);
		fill(buf[i], 1000 + i * 8, 4096, 91);
		assert_int_equal(xvd_blk_submit(f->dev, XVD_BLK_WRITE, 1000 + i * 8, buf[i], 4096,
						NULL, XVD_NO_KICK), 0);
	}
	assert_int_equal(xvd_vq_inflight(f->dev, 0), N / 2);	/* both queues */
	assert_int_equal(xvd_vq_inflight(f->dev, 1), N / 2);
	assert_int_equal(xvd_blk_kick(f->dev), 0);
	while (got < N) {
		n = xvd_blk_wait(f->dev, done + got, N - got, 5000);
		assert_true(n > 0);
		got += (unsigned int)n;
	}
	for (i = 0; i < N; i++)
		assert_int_equal(done[i].status, 0);
	/* Read each back: request i + 1 lands on the other queue than its
	 * write did (the queues are used in turn). */
	assert_int_equal(xvd_blk_submit(f->dev, XVD_BLK_FLUSH, 0, NULL, 0, NULL, 0), 0);
	assert_int_equal(xvd_blk_wait(f->dev, done, 1, 5000), 1);
	for (i = 0; i < N; i++) {
		memset(buf[i], 0, 4096);
		assert_int_equal(xvd_blk_read(f->dev, 1000 + i * 8, buf[i], 4096), 0);
		assert_int_equal(check(buf[i], 1000 + i * 8, 4096, 91), 0);
		xvd_ram_free(f->d, buf[i]);
	}
	xvd_dev_close(f->dev);
	f->dev = NULL;

	o.export_name = "disk0";
	o.devid = 6;
	assert_true(xvd_blk_open(f->d, &o, &f->dev) < 0);
	assert_null(f->dev);
}

static void test_multiqueue_pool(void **state) { multiqueue_in_mode(state, XVD_MODE_POOL); }
static void test_multiqueue_full(void **state) { multiqueue_in_mode(state, XVD_MODE_FULL); }

/* A device reset in the middle, then the same device works again. */
static void test_reset_reinit(void **state)
{
	struct loop_fx *f = *state;
	uint8_t buf[4096];

	open_domain(f);
	assert_int_equal(open_blk(f, XVD_MODE_POOL, 0), 0);
	fill(buf, 100, sizeof(buf), 5);
	assert_int_equal(xvd_blk_write(f->dev, 100, buf, sizeof(buf)), 0);
	assert_int_equal(xvd_dev_reset(f->dev), 0);
	assert_int_equal(xvd_dev_error(f->dev), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(xvd_blk_read(f->dev, 100, buf, sizeof(buf)), 0);
	assert_int_equal(check(buf, 100, sizeof(buf), 5), 0);
}

/* Detach and attach again, in another mode: data stays, export is free. */
static void test_detach_reattach(void **state)
{
	struct loop_fx *f = *state;
	struct xvd_dev *second;
	struct xvd_dev_opts o = { .export_name = "disk0", .devid = 9, .mode = XVD_MODE_POOL };
	uint8_t buf[4096];

	open_domain(f);
	assert_int_equal(open_blk(f, XVD_MODE_POOL, 0), 0);
	/* The export is busy while attached. */
	assert_int_not_equal(xvd_blk_open(f->d, &o, &second), 0);
	fill(buf, 8, sizeof(buf), 9);
	assert_int_equal(xvd_blk_write(f->dev, 8, buf, sizeof(buf)), 0);
	assert_int_equal(xvd_blk_flush(f->dev), 0);
	xvd_dev_close(f->dev);
	f->dev = NULL;
	assert_int_equal(open_blk(f, XVD_MODE_GRANT, 1), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(xvd_blk_read(f->dev, 8, buf, sizeof(buf)), 0);
	assert_int_equal(check(buf, 8, sizeof(buf), 9), 0);
	assert_int_equal(backend_log_count(&f->b, "removed"), 1);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* kill -9 of the backend: the driver fails promptly, a restarted backend
 * serves the data flushed before. */
static void test_backend_killed(void **state)
{
	struct loop_fx *f = *state;
	uint8_t buf[4096];
	long long t0;
	int rc;

	open_domain(f);
	assert_int_equal(open_blk(f, XVD_MODE_POOL, 0), 0);
	fill(buf, 64, sizeof(buf), 42);
	assert_int_equal(xvd_blk_write(f->dev, 64, buf, sizeof(buf)), 0);
	assert_int_equal(xvd_blk_flush(f->dev), 0);
	assert_true(WIFSIGNALED(backend_stop(&f->b, SIGKILL)));

	t0 = now_ms();
	rc = xvd_blk_read(f->dev, 64, buf, sizeof(buf));
	assert_int_not_equal(rc, 0);
	assert_true(now_ms() - t0 < 6000);
	assert_int_not_equal(xvd_dev_error(f->dev), 0);
	xvd_dev_close(f->dev);
	f->dev = NULL;
	xvd_domain_close(f->d);
	f->d = NULL;

	assert_int_equal(backend_restart(&f->b), 0);
	open_domain(f);
	assert_int_equal(open_blk(f, XVD_MODE_POOL, 0), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(xvd_blk_read(f->dev, 64, buf, sizeof(buf)), 0);
	assert_int_equal(check(buf, 64, sizeof(buf), 42), 0);
}

/* SIGTERM: the backend exits 0 and what was acknowledged is on the image. */
static void test_sigterm_clean(void **state)
{
	struct loop_fx *f = *state;
	struct xvd_done done[16];
	void *buf[16];
	unsigned int i, got = 0;
	int n, status;

	open_domain(f);
	assert_int_equal(open_blk(f, XVD_MODE_POOL, 0), 0);
	for (i = 0; i < 16; i++) {
		assert_int_equal(xvd_ram_alloc(f->d, CHUNK, &buf[i]), 0);
		fill(buf[i], i * (CHUNK / 512), CHUNK, 3);
		assert_int_equal(xvd_blk_submit(f->dev, XVD_BLK_WRITE, i * (CHUNK / 512), buf[i],
						CHUNK, NULL, 0), 0);
	}
	while (got < 16) {
		n = xvd_blk_wait(f->dev, done, 16, 5000);
		assert_true(n > 0);
		for (i = 0; i < (unsigned int)n; i++)
			assert_int_equal(done[i].status, 0);
		got += (unsigned int)n;
	}
	status = backend_stop(&f->b, SIGTERM);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	{
		uint8_t *tmp = malloc(CHUNK);
		int fd = open(f->img, O_RDONLY | O_CLOEXEC);

		for (i = 0; i < 16; i++) {
			assert_int_equal(pread(fd, tmp, CHUNK, (off_t)i * CHUNK), CHUNK);
			assert_int_equal(check(tmp, i * (CHUNK / 512), CHUNK, 3), 0);
		}
		close(fd);
		free(tmp);
	}
}

/* Attach errors are reported, not fatal. */
static void test_attach_errors(void **state)
{
	struct loop_fx *f = *state;
	struct xvd_dev_opts o = { .export_name = "nosuch", .devid = 0, .mode = XVD_MODE_POOL };
	struct xvd_dev *dev = NULL;

	open_domain(f);
	assert_int_equal(xvd_blk_open(f->d, &o, &dev), -ENOENT);
	o.export_name = "disk0";
	o.mode = 7;
	assert_int_not_equal(xvd_blk_open(f->d, &o, &dev), 0);
	o.mode = XVD_MODE_POOL;
	assert_int_equal(xvd_blk_open(f->d, &o, &f->dev), 0);
}

/*
 * Small pools (issue 15): a pool-mode device offers no request shape its
 * pool cannot carry, and 1 MiB and 4 MiB writes through pools of 8 to 128
 * pages arrive whole.  In the guest module a too-large shape made blk-mq
 * retry a request for ever; here the driver library splits by the limits
 * the device reports, so wrong limits fail the mapping (-ENOMEM).
 */
static void test_small_pools(void **state)
{
	static const unsigned int pools[] = { 8, 16, 64, 128 };
	static const size_t sizes[] = { 1u << 20, 4u << 20 };
	struct loop_fx *f = *state;
	struct xvd_blk_info info;
	uint8_t *buf = malloc(4u << 20), *back = malloc(4u << 20);
	unsigned int i, j;

	assert_non_null(buf);
	assert_non_null(back);
	open_domain(f);
	for (i = 0; i < sizeof(pools) / sizeof(pools[0]); i++) {
		struct xvd_dev_opts o = { .export_name = "disk0", .devid = i, .mode = XVD_MODE_POOL,
					  .pool_pages = pools[i] };
		size_t half = (size_t)pools[i] * 4096 / 2;
		uint64_t sector = 0;

		assert_int_equal(xvd_blk_open(f->d, &o, &f->dev), 0);
		assert_int_equal(xvd_blk_info(f->dev, &info), 0);
		printf("  pool %3u pages: seg_max %u, size_max %u, largest request %zu bytes\n",
		       pools[i], info.seg_max, info.size_max, info.max_io);
		assert_true(info.seg_max >= 1);
		assert_true(info.size_max >= 4096);
		assert_int_equal(info.size_max, xvmsg_pool_seg_bytes(pools[i]));
		/* A whole request and its header, status and table: half the pool. */
		assert_true((size_t)info.seg_max * info.size_max + XVMSG_POOL_REQ_SLACK <= half);
		assert_int_equal(info.max_io, (size_t)info.seg_max * info.size_max);
		for (j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
			fill(buf, sector, sizes[j], i * 16 + j);
			assert_int_equal(xvd_blk_write(f->dev, sector, buf, sizes[j]), 0);
			assert_int_equal(xvd_blk_flush(f->dev), 0);
			memset(back, 0, sizes[j]);
			assert_int_equal(xvd_blk_read(f->dev, sector, back, sizes[j]), 0);
			for (size_t off = 0; off < sizes[j]; off += CHUNK)
				assert_int_equal(check(back + off, sector + off / 512, CHUNK,
						       i * 16 + j), 0);
			sector += sizes[j] / 512;
		}
		/* One request of the largest shape goes through; one sector more is
		 * refused by the library before it reaches the device. */
		assert_int_equal(xvd_blk_submit(f->dev, XVD_BLK_READ, 0, back, info.max_io + 512,
						NULL, 0), -E2BIG);
		xvd_dev_close(f->dev);
		f->dev = NULL;
	}
	free(buf);
	free(back);
}

/* A pool below a type's minimum is refused with the minimum in the reason;
 * grant mode has no pool and offers the full request shape. */
static void test_pool_minimum(void **state)
{
	struct loop_fx *f = *state;
	struct xvd_dev_opts o = { .export_name = "disk0", .devid = 0, .mode = XVD_MODE_POOL,
				  .pool_pages = XVMSG_MIN_POOL_PAGES_BLK - 1 };
	struct xvd_blk_info info;
	struct xvd_dev *dev = NULL;

	open_domain(f);
	assert_int_not_equal(xvd_blk_open(f->d, &o, &dev), 0);
	assert_null(dev);
	assert_true(backend_log_count(&f->b, "below the minimum of 8 pages for blk") >= 1);
	o.devid = 1;
	o.mode = XVD_MODE_GRANT;
	assert_int_equal(xvd_blk_open(f->d, &o, &f->dev), 0);
	assert_int_equal(xvd_blk_info(f->dev, &info), 0);
	assert_int_equal(info.seg_max, XVD_BLK_MAX_SEGS);	/* 126 offered, cut to the chain */
	assert_int_equal(info.size_max, 0);
}

static int setup_poll(void **state)
{
	static const struct loop_fx_opts o = {
		.disk_bytes = DISK_SIZE, .args = { "--log-level", "info", "--poll-us", "20000" },
	};

	return loop_fx_setup(state, sizeof(struct loop_fx), &o);
}

/* One request at a time, each submitted as the last completes. */
static void one_by_one(struct loop_fx *f, void *buf, unsigned int n)
{
	struct xvd_done d;

	for (unsigned int i = 0; i < n; i++) {
		assert_int_equal(xvd_blk_submit(f->dev, XVD_BLK_READ, (i % 64) * 8, buf, 4096,
						NULL, 0), 0);
		assert_int_equal(xvd_blk_wait(f->dev, &d, 1, 5000), 1);
		assert_int_equal(d.status, 0);
	}
}

/*
 * --poll-us: while the backend polls, a busy queue asks for no kicks (the
 * driver's are suppressed by avail_event); once the poll ends the queue is
 * armed again, so a request after a pause is served (no lost kick), and an
 * idle backend uses no CPU.
 */
static void test_busy_poll(void **state)
{
	struct loop_fx *f = *state;
	struct xvd_stats s0, s1;
	void *buf;

	open_domain(f);
	assert_int_equal(open_blk(f, XVD_MODE_POOL, 4), 0);
	assert_int_equal(xvd_ram_alloc(f->d, 4096, &buf), 0);
	one_by_one(f, buf, 10);
	xvd_dev_stats(f->dev, &s0);
	one_by_one(f, buf, 400);
	xvd_dev_stats(f->dev, &s1);
	/* Not all: the poll may end while we are descheduled (a loaded host). */
	assert_true(s1.kicks_suppressed - s0.kicks_suppressed > 200);
	for (int round = 0; round < 3; round++) {
		usleep(100 * 1000);		/* the poll (20 ms) ends: armed, asleep */
		/* idle: nothing runs (a millisecond of slack for stray work) */
		assert_true(proc_cpu_over(f->b.pid, 300, 1000000,
			    "idle backend") < 1000000);
		one_by_one(f, buf, 3);		/* the first one had to kick */
	}
	xvd_ram_free(f->d, buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pattern_pool, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_pattern_grant, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_pattern_full, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_many_inflight, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_multiqueue_pool, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_multiqueue_full, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_reset_reinit, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_detach_reattach, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_backend_killed, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_sigterm_clean, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_attach_errors, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_small_pools, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_pool_minimum, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_busy_poll, setup_poll, loop_fx_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("loop-blk", tests, NULL, NULL);
}
