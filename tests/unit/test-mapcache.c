/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: address translation (mapcache.c) over the fake bus.  Guest
 * memory is a memfd; every mapping aliases it, so bytes written through an
 * iovec must show up in fb->mem at the right place.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core.h"
#include "fakebus.h"

#define PAGE		XVMSG_PAGE_SIZE
#define GUEST_PAGES	512
#define POOL_REF	512	/* pool: refs POOL_REF.. cover frames 0.. */
#define POOL_PAGES	256
#define DOMID		7

struct fix {
	struct fakebus *fb;
	struct xvb_stats st;
	struct xvb_mapcache mc;
	bool mc_live;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->fb = calloc(1, sizeof(*f->fb));
	if (!f->fb || fakebus_init(f->fb, GUEST_PAGES))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	if (f->mc_live)
		xvb_mc_fini(&f->mc);
	/* Whatever a test did, nothing may stay mapped after fini. */
	assert_int_equal(f->fb->live, 0);
	f->fb->pages = GUEST_PAGES;	/* a test may pretend memory is smaller */
	fakebus_fini(f->fb);
	free(f->fb);
	free(f);
	return 0;
}

static void init_mode(struct fix *f, int mode)
{
	if (mode == XVMSG_MODE_POOL)
		fakebus_grant(f->fb, POOL_REF, 0, POOL_PAGES, false);
	if (mode == XVMSG_MODE_FULL)
		f->fb->allow_frames = true;
	assert_int_equal(xvb_mc_init(&f->mc, &f->fb->bus, &f->st, DOMID, mode, POOL_REF,
				     POOL_PAGES), 0);
	f->mc_live = true;
}

/* Bus address of guest byte `gpa` in the pool. */
static uint64_t pool_addr(uint64_t gpa)
{
	return XVMSG_GRANT_ADDR(POOL_REF + gpa / PAGE, gpa % PAGE);
}

/* The iovec must alias guest memory at gpa: write through it, read fb->mem. */
static void assert_aliases(struct fix *f, const struct iovec *iov, uint64_t gpa)
{
	size_t i;

	for (i = 0; i < iov->iov_len; i++)
		((uint8_t *)iov->iov_base)[i] = (uint8_t)(gpa + i * 7 + 1);
	for (i = 0; i < iov->iov_len; i++)
		assert_int_equal(f->fb->mem[gpa + i], (uint8_t)(gpa + i * 7 + 1));
}

static int map1(struct fix *f, uint64_t addr, uint32_t len, bool write, struct iovec *iov,
		unsigned int max, struct xvb_mc_ticket *t)
{
	struct xvb_seg s = { .addr = addr, .len = len, .write = write };

	return xvb_mc_map_sg(&f->mc, &s, 1, 1, NULL, iov, max, t);
}

static void test_init_bad(void **state)
{
	struct fix *f = *state;
	struct xvb_mapcache mc;

	assert_int_equal(xvb_mc_init(&mc, &f->fb->bus, &f->st, DOMID, XVMSG_MODE_POOL, 0, 0),
			 -EINVAL);
	assert_int_equal(xvb_mc_init(&mc, &f->fb->bus, &f->st, DOMID, XVMSG_MODE_POOL, 0,
				     XVMSG_MAX_POOL_PAGES + 1), -EINVAL);
	assert_int_equal(xvb_mc_init(&mc, &f->fb->bus, &f->st, DOMID, XVMSG_MODE_POOL,
				     (1ULL << 51) - 10, 64), -EINVAL);
	assert_int_equal(xvb_mc_init(&mc, &f->fb->bus, &f->st, DOMID, 3, 0, 16), -EINVAL);
	assert_int_equal(xvb_mc_init(&mc, &f->fb->bus, &f->st, DOMID, -1, 0, 16), -EINVAL);
	/* The largest pool is fine, and fini of an unused cache maps nothing. */
	assert_int_equal(xvb_mc_init(&mc, &f->fb->bus, &f->st, DOMID, XVMSG_MODE_POOL, 0,
				     XVMSG_MAX_POOL_PAGES), 0);
	xvb_mc_fini(&mc);
	assert_int_equal(f->fb->maps, 0);
}

static void test_check_pool(void **state)
{
	struct fix *f = *state;

	init_mode(f, XVMSG_MODE_POOL);
	assert_int_equal(xvb_mc_check(&f->mc, pool_addr(0), 1), 0);
	assert_int_equal(xvb_mc_check(&f->mc, pool_addr(0), (uint64_t)POOL_PAGES * PAGE), 0);
	assert_int_equal(xvb_mc_check(&f->mc, pool_addr(0), 0), -EFAULT);
	/* One ref below, one byte beyond the end, a range running off the end. */
	assert_int_equal(xvb_mc_check(&f->mc, XVMSG_GRANT_ADDR(POOL_REF - 1, 0), 1), -EFAULT);
	assert_int_equal(xvb_mc_check(&f->mc, pool_addr((uint64_t)POOL_PAGES * PAGE), 1), -EFAULT);
	assert_int_equal(xvb_mc_check(&f->mc, pool_addr((uint64_t)POOL_PAGES * PAGE - 8), 9),
			 -EFAULT);
	/* A frame address naming the very same memory is not a pool address. */
	assert_int_equal(xvb_mc_check(&f->mc, 0x1000, 16), -EFAULT);
	/* addr + len wraps past 2^64. */
	assert_int_equal(xvb_mc_check(&f->mc, pool_addr(0), UINT64_MAX), -EFAULT);
	assert_int_equal(xvb_mc_check(&f->mc, 0xfffffffffffff000ULL, 0x2000), -EFAULT);
}

static void test_check_grant(void **state)
{
	struct fix *f = *state;

	init_mode(f, XVMSG_MODE_GRANT);
	assert_int_equal(xvb_mc_check(&f->mc, XVMSG_GRANT_ADDR(3, 100), 8000), 0);
	assert_int_equal(xvb_mc_check(&f->mc, 3 << 12, 16), -EFAULT);	/* frame address */
	/* Grant refs are 32 bits on Xen. */
	assert_int_equal(xvb_mc_check(&f->mc, XVMSG_GRANT_ADDR(1ULL << 32, 0), 16), -EFAULT);
	assert_int_equal(xvb_mc_check(&f->mc, XVMSG_GRANT_ADDR(UINT32_MAX, 0), PAGE + 1), -EFAULT);
}

static void test_check_full(void **state)
{
	struct fix *f = *state;

	init_mode(f, XVMSG_MODE_FULL);
	assert_int_equal(xvb_mc_check(&f->mc, 0x5000, 100), 0);
	assert_int_equal(xvb_mc_check(&f->mc, XVMSG_GRANT_ADDR(5, 0), 100), -EFAULT);
	/* Starts as a frame address, ends as a grant address: wraps across bit 63. */
	assert_int_equal(xvb_mc_check(&f->mc, XVMSG_ADDR_GRANT_BIT - PAGE, 2 * PAGE), -EFAULT);
	/* The cache covers 2^48 bytes of guest memory; nothing beyond. */
	assert_int_equal(xvb_mc_check(&f->mc, (1ULL << 48) - PAGE, PAGE), 0);
	assert_int_equal(xvb_mc_check(&f->mc, (1ULL << 48) - PAGE, PAGE + 1), -EFAULT);
}

static void test_pool_steady_state(void **state)
{
	struct fix *f = *state;
	struct xvb_mc_ticket t = { 0 };
	struct iovec iov[4];
	unsigned int i, maps;
	uint32_t rnd = 12345;

	init_mode(f, XVMSG_MODE_POOL);
	/* First pass: one map per chunk of the pool, no more. */
	for (i = 0; i < POOL_PAGES; i++) {
		assert_int_equal(map1(f, pool_addr((uint64_t)i * PAGE + 5), 3, true, iov, 4, &t), 1);
		assert_aliases(f, &iov[0], (uint64_t)i * PAGE + 5);
	}
	assert_int_equal(f->fb->maps, POOL_PAGES / XVB_CHUNK_PAGES);
	assert_int_equal(f->st.map_calls, POOL_PAGES / XVB_CHUNK_PAGES);
	maps = f->fb->maps;

	for (i = 0; i < 1000; i++) {
		uint64_t gpa, len;
		int n;

		rnd = rnd * 1103515245 + 12345;
		gpa = (rnd >> 8) % ((uint64_t)POOL_PAGES * PAGE - 1);
		len = 1 + (rnd >> 3) % 3000;
		if (gpa + len > (uint64_t)POOL_PAGES * PAGE)
			len = (uint64_t)POOL_PAGES * PAGE - gpa;
		n = map1(f, pool_addr(gpa), (uint32_t)len, i & 1, iov, 4, &t);
		assert_true(n == 1 || n == 2);
		assert_aliases(f, &iov[0], gpa);
		if (n == 2)
			assert_aliases(f, &iov[1], gpa + iov[0].iov_len);
		assert_int_equal(iov[0].iov_len + (n == 2 ? iov[1].iov_len : 0), len);
		assert_int_equal(t.n, 0);
	}
	assert_int_equal(f->fb->maps, maps);
	assert_int_equal(f->st.map_calls, maps);
	assert_int_equal(f->fb->live, POOL_PAGES / XVB_CHUNK_PAGES);
}

static void test_pool_chunk_boundary(void **state)
{
	struct fix *f = *state;
	uint64_t edge = (uint64_t)XVB_CHUNK_PAGES * PAGE;
	struct xvb_seg segs[2] = {
		{ .addr = pool_addr(edge - 96), .len = 200, .write = false },
		{ .addr = pool_addr(3 * PAGE), .len = 10, .write = true },
	};
	struct xvb_mc_ticket t = { 0 };
	struct iovec iov[4];
	unsigned int split = 99;

	init_mode(f, XVMSG_MODE_POOL);
	assert_int_equal(xvb_mc_map_sg(&f->mc, segs, 2, 1, &split, iov, 4, &t), 3);
	assert_int_equal(split, 2);	/* the first segment needed two iovecs */
	assert_int_equal(iov[0].iov_len, 96);
	assert_int_equal(iov[1].iov_len, 104);
	assert_int_equal(iov[2].iov_len, 10);
	assert_aliases(f, &iov[0], edge - 96);
	assert_aliases(f, &iov[1], edge);
	assert_aliases(f, &iov[2], 3 * PAGE);
	assert_int_equal(f->fb->maps, 2);
	assert_int_equal(t.n, 0);
}

static void test_full_chunk_cached(void **state)
{
	struct fix *f = *state;
	struct xvb_mc_ticket t = { 0 };
	struct iovec iov[4];

	init_mode(f, XVMSG_MODE_FULL);
	assert_int_equal(map1(f, 5 * PAGE + 10, 100, true, iov, 4, &t), 1);
	assert_aliases(f, &iov[0], 5 * PAGE + 10);
	assert_int_equal(map1(f, 40 * PAGE, 2 * PAGE, false, iov, 4, &t), 1);
	assert_aliases(f, &iov[0], 40 * PAGE);
	assert_int_equal(f->fb->maps, 1);		/* same chunk: one map */
	assert_int_equal(map1(f, 70 * PAGE + 1, 1, true, iov, 4, &t), 1);
	assert_aliases(f, &iov[0], 70 * PAGE + 1);
	assert_int_equal(f->fb->maps, 2);
	assert_int_equal(t.n, 0);			/* all cached, nothing transient */
	assert_int_equal(f->fb->live, 2);
}

static void test_full_edge_fallback(void **state)
{
	struct fix *f = *state;
	struct xvb_mc_ticket t = { 0 };
	struct iovec iov[4];
	uint32_t end = 100 * PAGE;	/* guest memory ends inside chunk 1 (pages 64..127) */
	int n;

	f->fb->pages = 100;		/* the memfd is bigger; the bus refuses frames >= 100 */
	init_mode(f, XVMSG_MODE_FULL);
	n = map1(f, end - PAGE - 50, PAGE, true, iov, 4, &t);
	assert_int_equal(n, 1);
	assert_int_equal(t.n, 1);		/* a transient mapping of just the pages needed */
	assert_int_equal(t.m[0].pages, 2);
	assert_aliases(f, &iov[0], end - PAGE - 50);
	assert_int_equal(f->fb->live, 1);
	xvb_mc_release(&f->mc, &t);
	assert_int_equal(t.n, 0);
	assert_int_equal(f->fb->live, 0);

	/* Chunk 0 lies wholly inside guest memory and is still cached. */
	assert_int_equal(map1(f, 10 * PAGE, 10, true, iov, 4, &t), 1);
	assert_int_equal(t.n, 0);
	/* Beyond guest memory nothing can be mapped and nothing stays recorded. */
	n = map1(f, end + 10, 10, true, iov, 4, &t);
	assert_true(n < 0);
	assert_int_equal(t.n, 0);
	assert_int_equal(f->fb->live, 1);
}

/* At most full_cap chunks stay mapped; a request needing more maps its own
 * pages and gives them back when released. */
static void test_full_cache_cap(void **state)
{
	struct fix *f = *state;
	struct xvb_mc_ticket t = { 0 };
	struct iovec iov[4];
	uint64_t chunk = (uint64_t)XVB_CHUNK_PAGES * PAGE;
	unsigned int i;

	init_mode(f, XVMSG_MODE_FULL);
	f->mc.full_cap = 2;
	assert_int_equal(map1(f, 0 * chunk + 5, 10, true, iov, 4, &t), 1);
	assert_int_equal(map1(f, 1 * chunk + 5, 10, true, iov, 4, &t), 1);
	assert_int_equal(t.n, 0);
	assert_int_equal(f->fb->live, 2);
	for (i = 0; i < 100; i++) {
		uint64_t gpa = (2 + i % 6) * chunk + PAGE - 3;	/* crosses a page */

		assert_int_equal(map1(f, gpa, 7, true, iov, 4, &t), 1);
		assert_int_equal(t.n, 1);
		assert_int_equal(t.m[0].pages, 2);
		assert_aliases(f, &iov[0], gpa);
		assert_int_equal(f->fb->live, 3);
		xvb_mc_release(&f->mc, &t);
		assert_int_equal(f->fb->live, 2);
	}
	/* Cached chunks still serve without a map; a request touching a
	 * cached and an uncached chunk maps its own pages. */
	{
		unsigned int maps = f->fb->maps;
		struct xvb_seg segs[2] = {
			{ .addr = 0 * chunk + 100, .len = 10 },
			{ .addr = 3 * chunk + 100, .len = 10, .write = true },
		};

		assert_int_equal(map1(f, 1 * chunk + 99, 1, false, iov, 4, &t), 1);
		assert_int_equal(f->fb->maps, maps);
		assert_int_equal(xvb_mc_map_sg(&f->mc, segs, 2, 1, NULL, iov, 4, &t), 2);
		assert_int_equal(t.n, 2);		/* one read-only, one writable */
		f->fb->mem[0 * chunk + 100] = 0x5c;
		assert_int_equal(((uint8_t *)iov[0].iov_base)[0], 0x5c);
		assert_aliases(f, &iov[1], 3 * chunk + 100);
		xvb_mc_release(&f->mc, &t);
	}
	assert_int_equal(f->mc.full_cached, 2);
	assert_int_equal(f->fb->live, 2);
}

static void test_full_no_growth_for_bad_addresses(void **state)
{
	struct fix *f = *state;
	struct xvb_mc_ticket t = { 0 };
	struct iovec iov[4];
	uint64_t a;

	/* A driver naming frames that do not exist must not make the cache
	 * allocate lookup tables for them. */
	init_mode(f, XVMSG_MODE_FULL);
	for (a = 1ULL << 32; a < 1ULL << 48; a <<= 1)
		assert_true(map1(f, a, 16, false, iov, 4, &t) < 0);
	assert_int_equal(f->mc.full_dir_len, 0);
	assert_int_equal(t.n, 0);
	assert_int_equal(f->fb->live, 0);
}

static void test_e2big(void **state)
{
	struct fix *f = *state;
	uint64_t edge = (uint64_t)XVB_CHUNK_PAGES * PAGE;
	struct xvb_seg segs[3] = {
		{ .addr = pool_addr(0), .len = 1, .write = false },
		{ .addr = pool_addr(PAGE), .len = 1, .write = true },
		{ .addr = pool_addr(2 * PAGE), .len = 1, .write = true },
	};
	struct xvb_mc_ticket t = { 0 };
	struct iovec iov[4];

	init_mode(f, XVMSG_MODE_POOL);
	/* One segment that needs two iovecs with room for one. */
	assert_int_equal(map1(f, pool_addr(edge - 1), 2, false, iov, 1, &t), -E2BIG);
	assert_int_equal(xvb_mc_map_sg(&f->mc, segs, 3, 1, NULL, iov, 2, &t), -E2BIG);
	assert_int_equal(xvb_mc_map_sg(&f->mc, segs, 3, 1, NULL, iov, 3, &t), 3);
	assert_int_equal(t.n, 0);
}

static void test_e2big_grant_releases(void **state)
{
	struct fix *f = *state;
	struct xvb_seg segs[3] = {
		{ .addr = XVMSG_GRANT_ADDR(10, 0), .len = 1, .write = false },
		{ .addr = XVMSG_GRANT_ADDR(11, 0), .len = 1, .write = true },
		{ .addr = XVMSG_GRANT_ADDR(12, 0), .len = 1, .write = true },
	};
	struct xvb_mc_ticket t = { 0 };
	struct iovec iov[4];
	unsigned int split = 99;

	init_mode(f, XVMSG_MODE_GRANT);
	fakebus_grant(f->fb, 10, 20, 3, false);
	assert_int_equal(xvb_mc_map_sg(&f->mc, segs, 3, 1, &split, iov, 2, &t), -E2BIG);
	assert_int_equal(t.n, 0);
	assert_int_equal(f->fb->live, 0);	/* both batched maps undone */

	assert_int_equal(xvb_mc_map_sg(&f->mc, segs, 3, 1, &split, iov, 4, &t), 3);
	assert_int_equal(split, 1);
	assert_int_equal(f->fb->live, 2);	/* one read-only, one writable */
	assert_int_equal(t.n, 2);
	assert_aliases(f, &iov[1], 21 * PAGE);
	xvb_mc_release(&f->mc, &t);
	assert_int_equal(f->fb->live, 0);
}

static void test_grant_readonly_refused(void **state)
{
	struct fix *f = *state;
	struct xvb_mc_ticket t = { 0 };
	struct iovec iov[4];

	init_mode(f, XVMSG_MODE_GRANT);
	fakebus_grant(f->fb, 30, 30, 1, true);
	assert_int_equal(map1(f, XVMSG_GRANT_ADDR(30, 0), 16, false, iov, 4, &t), 1);
	xvb_mc_release(&f->mc, &t);
	assert_true(map1(f, XVMSG_GRANT_ADDR(30, 0), 16, true, iov, 4, &t) < 0);
	assert_int_equal(t.n, 0);
	assert_int_equal(f->fb->live, 0);
}

static void test_fini_unmaps(void **state)
{
	struct fix *f = *state;
	struct xvb_mc_ticket t = { 0 };
	struct iovec iov[4];
	struct xvb_mapcache full;

	init_mode(f, XVMSG_MODE_POOL);
	assert_int_equal(map1(f, pool_addr(0), 1, true, iov, 4, &t), 1);
	assert_int_equal(map1(f, pool_addr(200 * PAGE), 1, true, iov, 4, &t), 1);
	f->fb->allow_frames = true;
	assert_int_equal(xvb_mc_init(&full, &f->fb->bus, &f->st, DOMID, XVMSG_MODE_FULL, 0, 0), 0);
	assert_int_equal(xvb_mc_map_sg(&full, &(struct xvb_seg){ .addr = 0, .len = 1 }, 1, 1,
				       NULL, iov, 4, &t), 1);
	assert_int_equal(xvb_mc_map_sg(&full, &(struct xvb_seg){ .addr = 300 * PAGE, .len = 1 },
				       1, 1, NULL, iov, 4, &t), 1);
	assert_int_equal(f->fb->live, 4);
	xvb_mc_fini(&full);
	xvb_mc_fini(&f->mc);
	f->mc_live = false;
	assert_int_equal(f->fb->live, 0);
	assert_int_equal(f->fb->unmaps, f->fb->maps);
	assert_int_equal(f->st.unmap_calls, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_init_bad),
		T(test_check_pool),
		T(test_check_grant),
		T(test_check_full),
		T(test_pool_steady_state),
		T(test_pool_chunk_boundary),
		T(test_full_chunk_cached),
		T(test_full_edge_fallback),
		T(test_full_no_growth_for_bad_addresses),
		T(test_full_cache_cap),
		T(test_e2big),
		T(test_e2big_grant_releases),
		T(test_grant_readonly_refused),
		T(test_fini_unmaps),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
