// SPDX-License-Identifier: MIT
/*
 * Integration: an rng request while the backend's kernel has no random pool
 * yet must not stop the backend.  Its one thread serves every device, so an
 * rng model that waited in getrandom() left every other device unanswered
 * until the pool was ready; in a young Xen driver domain under emulation
 * that was longer than the guest module's 30 s timeout (docs/xen.md, Debian
 * 13).  The backend runs with the preload shim tests/loop/preload/crng-gate.c:
 * its getrandom() behaves as before crng init while the gate file exists.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "loop-fixture.h"

#define RNG_LEN 1024

struct fx {
	struct loop_fx lf;
	char gate[128];
	struct xvd_dev *rng;
};

static int setup(void **state)
{
	struct loop_fx_opts o = { .disk_bytes = 1 << 20, .args = { "--export", "rng0:rng" },
				  .open_domain = 1,
				  .domain = { .log_level = XVD_LOG_WARN, .timeout_ms = 3000 } };
	const char *bin = getenv("XVMSG_BIN"), *asan = getenv("ASAN_OPTIONS");
	struct fx *f = calloc(1, sizeof(*f));
	char shim[256], asan_opts[512];
	FILE *g;
	int rc;

	*state = f;
	if (!f)
		return -1;
	/* No asserts: cmocka skips the teardown when a setup fails. */
	SETUP_TRY(backend_setup(&f->lf.b));
	snprintf(f->gate, sizeof(f->gate), "%.100s/crng-gate", f->lf.b.dir);
	g = fopen(f->gate, "w");
	SETUP_TRY(g == NULL);
	fclose(g);
	snprintf(shim, sizeof(shim), "%s/tests/crng-gate.so", bin ? bin : "build/bin");
	SETUP_TRY(access(shim, R_OK));
	/* Only the backend gets the shim: the environment of its exec.  A
	 * sanitizer build wants its runtime first; the shim goes before it. */
	snprintf(asan_opts, sizeof(asan_opts), "%s%sverify_asan_link_order=0", asan ? asan : "",
		 asan && *asan ? ":" : "");
	SETUP_TRY(setenv("LD_PRELOAD", shim, 1) || setenv("XVMSG_TEST_CRNG_GATE", f->gate, 1) ||
		  setenv("ASAN_OPTIONS", asan_opts, 1));
	rc = loop_fx_start(&f->lf, &o);
	unsetenv("LD_PRELOAD");
	if (asan)
		setenv("ASAN_OPTIONS", asan, 1);
	else
		unsetenv("ASAN_OPTIONS");
	SETUP_TRY(rc);
	return 0;
fail:
	loop_fx_teardown(state);
	return -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f && f->rng)
		xvd_dev_close(f->rng);
	if (f && f->gate[0])
		unlink(f->gate);
	return loop_fx_teardown(state);
}

/* The rng request waits for the pool; a disk on the same backend works
 * meanwhile; the request completes once the pool is ready. */
static void test_rng_waits_alone(void **state)
{
	struct fx *f = *state;
	struct xvd_dev_opts ro = { .export_name = "rng0", .devid = 1, .mode = XVD_MODE_POOL };
	struct xvd_dev_opts bo = { .export_name = "disk0", .devid = 2, .mode = XVD_MODE_POOL };
	static uint8_t wr[4096], rd[4096];
	struct xvd_done done;
	unsigned int i, zeros = 0;
	uint8_t *buf;
	int r;

	assert_int_equal(xvd_rng_open(f->lf.d, &ro, &f->rng), 0);
	assert_int_equal(xvd_ram_alloc(f->lf.d, RNG_LEN, (void **)&buf), 0);
	struct xvd_buf b = { .addr = buf, .len = RNG_LEN, .dev_writes = true };
	assert_int_equal(xvd_vq_submit(f->rng, 0, &b, 1, buf, 0), 0);
	assert_int_equal(xvd_vq_kick(f->rng, 0), 0);

	/* The backend takes the request (a backend that waits in getrandom()
	 * says nothing: then 2 s pass here)... */
	for (i = 0; i < 100 && backend_log_count(&f->lf.b, "random pool is not initialised") == 0;
	     i++)
		usleep(20 * 1000);
	/* ...and serves the disk meanwhile (the driver gives up after 3 s)... */
	assert_int_equal(xvd_blk_open(f->lf.d, &bo, &f->lf.dev), 0);
	for (i = 0; i < sizeof(wr); i++)
		wr[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(xvd_blk_write(f->lf.dev, 8, wr, sizeof(wr)), 0);
	assert_int_equal(xvd_blk_read(f->lf.dev, 8, rd, sizeof(rd)), 0);
	assert_memory_equal(wr, rd, sizeof(wr));
	/* ...while the rng request waits for the pool. */
	assert_int_equal(xvd_vq_poll(f->rng, 0, &done, 1), 0);
	assert_int_equal(backend_log_count(&f->lf.b, "random pool is not initialised"), 1);

	/* The pool is ready: the request completes, with random bytes. */
	assert_int_equal(unlink(f->gate), 0);
	for (i = 0; i < 50; i++) {
		r = xvd_vq_poll(f->rng, 0, &done, 1);
		if (r)
			break;
		xvd_dev_wait(f->rng, 100);
	}
	assert_int_equal(r, 1);
	assert_int_equal(done.status, 0);
	assert_int_equal(done.len, RNG_LEN);
	for (i = 0; i < RNG_LEN; i++)
		zeros += buf[i] == 0;
	assert_true(zeros < RNG_LEN / 16);
	assert_int_equal(backend_log_count(&f->lf.b, "random pool is ready"), 1);
	/* And later requests are served at once. */
	assert_int_equal(xvd_rng_read(f->rng, buf, RNG_LEN), RNG_LEN);
	xvd_ram_free(f->lf.d, buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rng_waits_alone, setup, teardown),
	};

	return cmocka_run_group_tests_name("loop-rng-wait", tests, NULL, NULL);
}
