// SPDX-License-Identifier: MIT
/*
 * Integration: virtio-msg message layout revisions over the loopback bus
 * (docs/protocol.md 2 and 5: msg-revisions, msg-revision).  Old and new
 * peers in every pairing, a disk and an rng used through them, and the
 * pairings that cannot be bridged refused with a reason in both logs.
 * "Old" is a side forced to revision 1 (the driver's msg_revisions, the
 * backend's --msg-revision 1): it then writes and reads no revision key,
 * exactly as the code before revisions did.
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
#include <cmocka.h>

#include "backend-proc.h"
#include "xvmsg-drv.h"

#define REV1	(1u << 1)
#define REV2	(1u << 2)
#define REVS	(REV1 | REV2)

struct fx {
	struct backend_proc b;
	struct xvd_domain *d;
	struct xvd_dev *blk, *rng;
	char drvlog[4096];		/* what the driver logged */
};

static void drv_log(void *ctx, int level, const char *msg)
{
	struct fx *f = ctx;
	size_t n = strlen(f->drvlog);

	snprintf(f->drvlog + n, sizeof(f->drvlog) - n, "%s\n", msg);
}

/* Backend with a disk and an rng, revisions as given (NULL: its default). */
static int start(struct fx *f, const char *revs)
{
	struct xvd_domain_opts o = { .log_level = XVD_LOG_WARN, .log = drv_log, .log_ctx = f,
				     .timeout_ms = 3000 };
	char img[160], exp[200];

	if (backend_setup(&f->b) || backend_image(&f->b, "disk.img", 1 << 20, img, sizeof(img)))
		return -1;
	snprintf(exp, sizeof(exp), "disk0:blk:path=%s", img);
	if (revs ? backend_start(&f->b, "--export", exp, "--export", "rng0:rng",
				 "--msg-revision", revs, NULL)
		 : backend_start(&f->b, "--export", exp, "--export", "rng0:rng", NULL))
		return -1;
	o.socket_path = f->b.sock;
	return xvd_domain_open_loop(&o, &f->d);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	*state = f;
	return f ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (!f)
		return 0;
	if (f->blk)
		xvd_dev_close(f->blk);
	if (f->rng)
		xvd_dev_close(f->rng);
	if (f->d)
		xvd_domain_close(f->d);
	backend_cleanup(&f->b);
	free(f);
	return 0;
}

/* The disk and the rng work with driver revisions drv and backend
 * revisions be; both use revision want. */
static void pair_works(void **state, uint32_t drv, const char *be, unsigned int want)
{
	struct fx *f = *state;
	struct xvd_dev_opts o = { .export_name = "disk0", .msg_revisions = drv };
	struct xvd_blk_info bi;
	static uint8_t w[8192], r[8192], rnd[4096];
	char needle[64];
	size_t i;

	assert_int_equal(start(f, be), 0);
	assert_int_equal(xvd_blk_open(f->d, &o, &f->blk), 0);
	assert_int_equal(xvd_dev_msg_revision(f->blk), want);
	assert_int_equal(xvd_blk_info(f->blk, &bi), 0);	/* config space */
	assert_true(bi.capacity == 2048);
	for (i = 0; i < sizeof(w); i++)
		w[i] = (uint8_t)(i * 7 + want);
	assert_int_equal(xvd_blk_write(f->blk, 8, w, sizeof(w)), 0);
	assert_int_equal(xvd_blk_read(f->blk, 8, r, sizeof(r)), 0);
	assert_memory_equal(w, r, sizeof(w));
	/* A reset sets the queues up again in the same layout. */
	assert_int_equal(xvd_dev_reset(f->blk), 0);
	assert_int_equal(xvd_blk_read(f->blk, 8, r, sizeof(r)), 0);
	assert_memory_equal(w, r, sizeof(w));

	o.export_name = "rng0";
	o.devid = 1;
	assert_int_equal(xvd_rng_open(f->d, &o, &f->rng), 0);
	assert_int_equal(xvd_dev_msg_revision(f->rng), want);
	assert_int_equal(xvd_rng_read(f->rng, rnd, sizeof(rnd)), (int)sizeof(rnd));

	snprintf(needle, sizeof(needle), "message layout revision %u", want);
	assert_int_equal(backend_log_count(&f->b, needle), 2);
}

/* New pair: revision 2. */
static void test_new_new(void **state) { pair_works(state, 0, NULL, 2); }
/* Old driver, new backend: revision 1. */
static void test_old_driver_new_backend(void **state) { pair_works(state, REV1, NULL, 1); }
/* New driver, old backend: revision 1. */
static void test_new_driver_old_backend(void **state) { pair_works(state, 0, "1", 1); }
/* Old pair: revision 1, as before revisions. */
static void test_old_old(void **state) { pair_works(state, REV1, "1", 1); }
/* Both speak both, the driver only 2: 2. */
static void test_driver_only_new(void **state) { pair_works(state, REV2, "1,2", 2); }
/* A backend that speaks only 2, a driver that speaks both: 2. */
static void test_backend_only_new(void **state) { pair_works(state, REVS, "2", 2); }

/* Old driver, backend that speaks only 2: the backend refuses (error key,
 * its log), the driver reports the backend's reason. */
static void test_old_driver_refused(void **state)
{
	struct fx *f = *state;
	struct xvd_dev_opts o = { .export_name = "disk0", .msg_revisions = REV1 };

	assert_int_equal(start(f, "2"), 0);
	assert_int_equal(xvd_blk_open(f->d, &o, &f->blk), -EIO);
	assert_int_equal(backend_log_count(&f->b, "writes no msg-revision"), 1);
	assert_non_null(strstr(f->drvlog, "writes no msg-revision"));
	assert_non_null(strstr(f->drvlog, "speaks 2"));
}

/* Driver that speaks only 2, old backend: the driver refuses (its log,
 * its error key), the backend logs the driver's reason. */
static void test_new_driver_refuses_old_backend(void **state)
{
	struct fx *f = *state;
	struct xvd_dev_opts o = { .export_name = "disk0", .msg_revisions = REV2 };
	int i;

	assert_int_equal(start(f, "1"), 0);
	assert_int_equal(xvd_blk_open(f->d, &o, &f->blk), -EPROTONOSUPPORT);
	assert_non_null(strstr(f->drvlog, "no common virtio-msg message layout revision"));
	/* The backend hears of it through the store: give it a moment. */
	for (i = 0; i < 200 && !backend_log_count(&f->b, "frontend gave up"); i++)
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	assert_int_equal(backend_log_count(&f->b, "frontend gave up: no common virtio-msg"), 1);
}

/* A refused device does not keep the export: the same driver speaking
 * both connects afterwards. */
static void test_refused_then_retry(void **state)
{
	struct fx *f = *state;
	struct xvd_dev_opts o = { .export_name = "disk0", .msg_revisions = REV2 };
	static uint8_t r[512];

	assert_int_equal(start(f, "1"), 0);
	assert_int_equal(xvd_blk_open(f->d, &o, &f->blk), -EPROTONOSUPPORT);
	o.msg_revisions = 0;
	assert_int_equal(xvd_blk_open(f->d, &o, &f->blk), 0);
	assert_int_equal(xvd_dev_msg_revision(f->blk), 1);
	assert_int_equal(xvd_blk_read(f->blk, 0, r, sizeof(r)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_new_new),
		T(test_old_driver_new_backend),
		T(test_new_driver_old_backend),
		T(test_old_old),
		T(test_driver_only_new),
		T(test_backend_only_new),
		T(test_old_driver_refused),
		T(test_new_driver_refuses_old_backend),
		T(test_refused_then_retry),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
