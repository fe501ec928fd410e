/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the pool-size-to-limits rule of include/xvmsg/pool.h, which
 * the backend, the guest module and the userspace driver all follow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <xvmsg/pool.h>
#include <xvmsg/xenbus.h>

#define BLK_SEG_MAX 126		/* what the backend's blk offers without a pool */

/* Values a reader can check by hand. */
static void test_known_values(void **state)
{
	assert_int_equal(xvmsg_pool_seg_bytes(8), 4096);
	assert_int_equal(xvmsg_pool_seg_bytes(128), 4096);
	assert_int_equal(xvmsg_pool_seg_bytes(256), 8192);	/* the default 1 MiB pool */
	assert_int_equal(xvmsg_pool_seg_bytes(383), 8192);	/* 11.97 KiB: whole pages */
	assert_int_equal(xvmsg_pool_seg_bytes(2048), 65536);
	assert_int_equal(xvmsg_pool_seg_bytes(XVMSG_MAX_POOL_PAGES), 65536);

	assert_int_equal(xvmsg_pool_req_bytes(2), 0);
	assert_int_equal(xvmsg_pool_req_bytes(8), 12288);
	assert_int_equal(xvmsg_pool_req_bytes(256), 520192);	/* 512 KiB - 4 KiB */

	assert_int_equal(xvmsg_pool_seg_max(3, BLK_SEG_MAX), 0);
	assert_int_equal(xvmsg_pool_seg_max(8, BLK_SEG_MAX), 3);
	assert_int_equal(xvmsg_pool_seg_max(16, BLK_SEG_MAX), 7);
	assert_int_equal(xvmsg_pool_seg_max(64, BLK_SEG_MAX), 31);
	assert_int_equal(xvmsg_pool_seg_max(128, BLK_SEG_MAX), 63);
	assert_int_equal(xvmsg_pool_seg_max(256, BLK_SEG_MAX), 63);
	assert_int_equal(xvmsg_pool_seg_max(XVMSG_MAX_POOL_PAGES, BLK_SEG_MAX), BLK_SEG_MAX);
	assert_int_equal(xvmsg_pool_seg_max(XVMSG_MAX_POOL_PAGES, 5), 5);	/* never raised */
}

/*
 * For every pool size the toolstack accepts: segments are whole pages of
 * 4..64 KiB, and the largest request with its header, status and indirect
 * table takes at most half the pool.  From each type's minimum up, at least
 * one segment fits.
 */
static void test_every_pool(void **state)
{
	uint32_t pages;

	for (pages = 1; pages <= XVMSG_MAX_POOL_PAGES; pages++) {
		uint32_t seg = xvmsg_pool_seg_bytes(pages);
		uint32_t n = xvmsg_pool_seg_max(pages, BLK_SEG_MAX);
		uint64_t pool = (uint64_t)pages * 4096;

		assert_true(seg >= 4096 && seg <= 65536 && seg % 4096 == 0);
		assert_true(n <= BLK_SEG_MAX);
		assert_true((uint64_t)n * seg + XVMSG_POOL_REQ_SLACK <= pool / 2 || n == 0);
		if (pages >= XVMSG_MIN_POOL_PAGES_BLK)
			assert_true(n >= 1);
		if (pages > 1)
			assert_true(seg >= xvmsg_pool_seg_bytes(pages - 1));	/* monotonic */
	}
}

static void test_minimums(void **state)
{
	assert_int_equal(xvmsg_min_pool_pages("blk"), XVMSG_MIN_POOL_PAGES_BLK);
	assert_int_equal(xvmsg_min_pool_pages("console"), XVMSG_MIN_POOL_PAGES_CONSOLE);
	assert_int_equal(xvmsg_min_pool_pages("rng"), XVMSG_MIN_POOL_PAGES_RNG);
	assert_int_equal(xvmsg_min_pool_pages("net"), XVMSG_MIN_POOL_PAGES_NET);
	assert_int_equal(xvmsg_min_pool_pages("gpu"), 1);
	assert_int_equal(xvmsg_min_pool_pages(NULL), 1);
	/* The blk minimum carries a request; one page less carries too little
	 * beside the rings. */
	assert_true(xvmsg_pool_seg_max(XVMSG_MIN_POOL_PAGES_BLK, BLK_SEG_MAX) >= 1);
	assert_true(XVMSG_MIN_POOL_PAGES_BLK <= XVMSG_DEFAULT_POOL_PAGES);
}

/* A sync never runs past its mapping (issue 17, item 7): the module copies
 * what this returns, whatever length a driver passes. */
static void test_sync_len(void **state)
{
	/* A mapping of pool bytes [4096, 8192). */
	assert_int_equal(xvmsg_pool_sync_len(4096, 4096, 4096, 8192), 4096);
	assert_int_equal(xvmsg_pool_sync_len(4096, 100, 4096, 8192), 100);
	assert_int_equal(xvmsg_pool_sync_len(6000, 4096, 4096, 8192), 2192);	/* clamped */
	assert_int_equal(xvmsg_pool_sync_len(4096, 1ULL << 40, 4096, 8192), 4096);
	assert_int_equal(xvmsg_pool_sync_len(8191, 2, 4096, 8192), 1);
	assert_int_equal(xvmsg_pool_sync_len(8192, 1, 4096, 8192), 0);	/* outside */
	assert_int_equal(xvmsg_pool_sync_len(4095, 1, 4096, 8192), 0);
	assert_int_equal(xvmsg_pool_sync_len(~0ULL, ~0ULL, 4096, 8192), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_len),
		cmocka_unit_test(test_known_values),
		cmocka_unit_test(test_every_pool),
		cmocka_unit_test(test_minimums),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
