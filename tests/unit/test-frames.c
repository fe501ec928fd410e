/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: full mode's bus addresses (include/xvmsg/frames.h), the rule
 * the guest module applies before it hands a buffer to a full-mode backend,
 * on the two kinds of Xen guest:
 *
 *   auto-translated (Arm, x86 PVH/HVM): gfn == pfn, every range qualifies;
 *   PV (x86): gfn is the machine frame from the p2m, and only ranges whose
 *   machine frames are consecutive qualify.
 *
 * The addresses are then decoded the way the backend does (xenbus.h's
 * XVMSG_ADDR_* macros) and mapped through the map cache over the fake bus:
 * an auto-translated guest's memory need not start at frame 0 (Arm's first
 * RAM bank is at 1 GiB), and the cache must serve it without tables for the
 * hole below.
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
#include "xvmsg/frames.h"

#define PAGE		XVMSG_PAGE_SIZE
/* Xen on Arm's guest memory map (public/arch-arm.h): RAM bank 0 at 1 GiB,
 * bank 1 at 32 GiB. */
#define ARM_RAM0	0x40000000ULL
#define ARM_RAM1	0x800000000ULL

struct p2m {
	const uint64_t *mfn;	/* NULL: auto-translated (identity) */
	uint64_t n;
	unsigned int calls;
};

/* What pfn_to_gfn() does in each kind of guest.  A PV guest's p2m beyond
 * its table is invalid (~0, like INVALID_P2M_ENTRY). */
static __u64 to_gfn(void *ctx, __u64 pfn)
{
	struct p2m *p = ctx;

	p->calls++;
	if (!p->mfn)
		return pfn;
	return pfn < p->n ? p->mfn[pfn] : ~0ULL;
}

/* A PV guest's p2m: pfns 0-3 are one machine-contiguous run, 4 is alone,
 * 5-7 run backwards, 8-9 are contiguous again. */
static const uint64_t pv_mfn[] = {
	0x1230, 0x1231, 0x1232, 0x1233,	/* 0-3 */
	0x0777,				/* 4 */
	0x2002, 0x2001, 0x2000,		/* 5-7 */
	0x3400, 0x3401,			/* 8-9 */
};

static void test_spanned(void **state)
{
	(void)state;
	assert_int_equal(xvmsg_frames_spanned(0, 1), 1);
	assert_int_equal(xvmsg_frames_spanned(0, PAGE), 1);
	assert_int_equal(xvmsg_frames_spanned(0, PAGE + 1), 2);
	assert_int_equal(xvmsg_frames_spanned(PAGE - 1, 1), 1);
	assert_int_equal(xvmsg_frames_spanned(PAGE - 1, 2), 2);
	assert_int_equal(xvmsg_frames_spanned(5 * PAGE + 100, 3 * PAGE), 4);
	assert_int_equal(xvmsg_frames_spanned(ARM_RAM1 + 10, 4u << 20), 1025);
}

/* Auto-translated: the bus address is the guest-physical address, for any
 * length, wherever the memory is; the backend decodes it back to the frame. */
static void test_auto_translated_identity(void **state)
{
	struct p2m p = { 0 };
	const uint64_t phys[] = { 0, 123, ARM_RAM0, ARM_RAM0 + 5 * PAGE + 77,
				  ARM_RAM1 + PAGE - 1, 0xffffffff000ULL };
	const uint64_t lens[] = { 1, 100, PAGE, 3 * PAGE + 5, 1u << 20, 4u << 20 };
	__u64 addr;
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(phys) / sizeof(phys[0]); i++) {
		for (j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			p.calls = 0;
			assert_int_equal(xvmsg_full_addr(to_gfn, &p, phys[i], lens[j], &addr), 1);
			assert_int_equal(addr, phys[i]);
			assert_false(XVMSG_ADDR_IS_GRANT(addr));
			assert_int_equal(XVMSG_ADDR_PFN(addr), phys[i] / PAGE);
			assert_int_equal(XVMSG_ADDR_OFF(addr), phys[i] % PAGE);
			assert_int_equal(p.calls, xvmsg_frames_spanned(phys[i], lens[j]));
		}
	}
}

/* PV: the address carries the machine frame; ranges qualify only inside a
 * machine-contiguous run. */
static void test_pv_machine_frames(void **state)
{
	struct p2m p = { pv_mfn, sizeof(pv_mfn) / sizeof(pv_mfn[0]), 0 };
	__u64 addr = 0xdead;

	(void)state;
	/* One frame always qualifies: its mfn, the offset kept. */
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, 4 * PAGE + 9, 10, &addr), 1);
	assert_int_equal(addr, 0x0777ULL * PAGE + 9);
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, 6 * PAGE, PAGE, &addr), 1);
	assert_int_equal(XVMSG_ADDR_PFN(addr), 0x2001);
	/* Inside the run 0-3, across pages. */
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, PAGE + 3, 2 * PAGE, &addr), 1);
	assert_int_equal(addr, 0x1231ULL * PAGE + 3);
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, 0, 4 * PAGE, &addr), 1);
	assert_int_equal(addr, 0x1230ULL * PAGE);
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, 8 * PAGE + 1, 2 * PAGE - 1, &addr), 1);
	assert_int_equal(addr, 0x3400ULL * PAGE + 1);
	/* Refused: contiguous pfns, discontiguous mfns; *addr untouched. */
	addr = 0xdead;
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, 3 * PAGE, 2 * PAGE, &addr), 0);
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, 4 * PAGE - 1, 2, &addr), 0);
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, 5 * PAGE, 2 * PAGE, &addr), 0);	/* backwards */
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, 0, 5 * PAGE, &addr), 0);
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, 9 * PAGE, PAGE + 1, &addr), 0);	/* past the p2m */
	assert_int_equal(addr, 0xdead);
	/* The same pfns in an auto-translated guest all qualify. */
	p.mfn = NULL;
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, 3 * PAGE, 2 * PAGE, &addr), 1);
	assert_int_equal(addr, 3ULL * PAGE);
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, 0, 10 * PAGE, &addr), 1);
}

/* A kernel with 64 KiB pages (arm64 may): frames and offsets stay 4 KiB
 * ones, so a buffer at offset 0x5123 of a 64 KiB page is frame 5 of it. */
static void test_large_kernel_pages(void **state)
{
	struct p2m p = { 0 };
	uint64_t page64 = ARM_RAM0 + 7 * 0x10000ULL;
	__u64 addr;

	(void)state;
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, page64 + 0x5123, 0x2000, &addr), 1);
	assert_int_equal(XVMSG_ADDR_PFN(addr), (page64 >> 12) + 5);
	assert_int_equal(XVMSG_ADDR_OFF(addr), 0x123);
	assert_int_equal(p.calls, 3);
}

static void test_refused_ranges(void **state)
{
	struct p2m p = { 0 };
	__u64 addr = 0xdead;

	(void)state;
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, PAGE, 0, &addr), 0);	/* empty */
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, ~0ULL - 10, 100, &addr), 0);	/* wraps */
	/* A gfn with bit 51 set would set bit 63 of the address: a grant. */
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, (XVMSG_FULL_MAX_GFN + 1) << 12, 1, &addr), 0);
	/* The last frame that fits, and a range running past it. */
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, XVMSG_FULL_MAX_GFN << 12, PAGE + 1, &addr), 0);
	assert_int_equal(addr, 0xdead);
	assert_int_equal(xvmsg_full_addr(to_gfn, &p, (XVMSG_FULL_MAX_GFN << 12) + 5, 7, &addr), 1);
	assert_false(XVMSG_ADDR_IS_GRANT(addr));
	assert_int_equal(XVMSG_ADDR_PFN(addr), XVMSG_FULL_MAX_GFN);
}

/* ---- the backend's side: the map cache over an Arm guest's memory ---- */

#define ARM_PAGES	256		/* 1 MiB of guest RAM at ARM_RAM0 */
#define ARM_BASE_GFN	(ARM_RAM0 / PAGE)

struct fix {
	struct fakebus fb;
	struct xvb_stats st;
	struct xvb_mapcache mc;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (!f || fakebus_init(&f->fb, ARM_PAGES))
		return -1;
	f->fb.frame_base = ARM_BASE_GFN;
	f->fb.allow_frames = true;
	if (xvb_mc_init(&f->mc, &f->fb.bus, &f->st, 7, XVMSG_MODE_FULL, 0, 0))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	xvb_mc_fini(&f->mc);
	assert_int_equal(f->fb.live, 0);
	fakebus_fini(&f->fb);
	free(f);
	return 0;
}

static int map1(struct fix *f, uint64_t addr, uint32_t len, struct iovec *iov,
		struct xvb_mc_ticket *t)
{
	struct xvb_seg s = { .addr = addr, .len = len, .write = true };

	return xvb_mc_map_sg(&f->mc, &s, 1, 1, NULL, iov, 4, t);
}

/* The guest module's address for guest-physical phys, as the backend maps
 * it: the bytes land in guest RAM at phys. */
static void test_backend_maps_arm_ram(void **state)
{
	struct fix *f = *state;
	struct p2m p = { 0 };
	struct xvb_mc_ticket t = { 0 };
	struct iovec iov[4];
	uint64_t phys = ARM_RAM0 + 70 * PAGE + 300;
	__u64 addr;
	size_t i;

	assert_int_equal(xvmsg_full_addr(to_gfn, &p, phys, 2 * PAGE, &addr), 1);
	assert_int_equal(map1(f, addr, 2 * PAGE, iov, &t), 1);
	assert_int_equal(iov[0].iov_len, 2 * PAGE);
	for (i = 0; i < 2 * PAGE; i++)
		((uint8_t *)iov[0].iov_base)[i] = (uint8_t)(i * 13 + 1);
	for (i = 0; i < 2 * PAGE; i++)
		assert_int_equal(f->fb.mem[phys - ARM_RAM0 + i], (uint8_t)(i * 13 + 1));
	/* Cached: the lookup tables cover the chunks used, not the 1 GiB
	 * below guest RAM (one second-level table, for this one chunk). */
	assert_int_equal(t.n, 0);
	assert_int_equal(f->mc.full_cached, 1);
	assert_non_null(f->mc.full_dir[f->mc.full_dir_len - 1]);
	for (i = 0; i + 1 < f->mc.full_dir_len; i++)
		assert_null(f->mc.full_dir[i]);
}

/* Frames outside guest RAM (the MMIO hole below it, beyond its end) are
 * refused and leave nothing mapped; the last chunk of RAM still serves. */
static void test_backend_outside_arm_ram(void **state)
{
	struct fix *f = *state;
	struct xvb_mc_ticket t = { 0 };
	struct iovec iov[4];

	assert_true(map1(f, ARM_RAM0 - PAGE, 16, iov, &t) < 0);
	assert_true(map1(f, ARM_RAM0 - 8, 16, iov, &t) < 0);	/* straddles the start */
	assert_true(map1(f, ARM_RAM0 + ARM_PAGES * PAGE, 16, iov, &t) < 0);
	assert_true(map1(f, 0, 16, iov, &t) < 0);
	assert_int_equal(t.n, 0);
	assert_int_equal(f->fb.live, 0);
	assert_int_equal(map1(f, ARM_RAM0 + ARM_PAGES * PAGE - 16, 16, iov, &t), 1);
	assert_int_equal(f->fb.mem[ARM_PAGES * PAGE - 16], 0);
	((uint8_t *)iov[0].iov_base)[0] = 0x5a;
	assert_int_equal(f->fb.mem[ARM_PAGES * PAGE - 16], 0x5a);
	xvb_mc_release(&f->mc, &t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spanned),
		cmocka_unit_test(test_auto_translated_identity),
		cmocka_unit_test(test_pv_machine_frames),
		cmocka_unit_test(test_large_kernel_pages),
		cmocka_unit_test(test_refused_ranges),
		cmocka_unit_test_setup_teardown(test_backend_maps_arm_ram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_outside_arm_ram, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
