// SPDX-License-Identifier: MIT
/* Unit tests: include/xvmsg/toolstack.h, the device entry both toolstacks
 * write (xvmsg-ctl on Xen, the loopback bus's ATTACH). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

/* test_dirs gives short buffers on purpose */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <xvmsg/toolstack.h>

/* What the writer was asked to do, one line per call. */
struct rec {
	char	ops[24][160];
	unsigned int n;
	unsigned int fail_at;	/* the call that fails (1-based), 0 = none */
};

static int rec_op(struct rec *r, const char *line)
{
	assert_true(r->n < 24);
	snprintf(r->ops[r->n++], sizeof(r->ops[0]), "%s", line);
	return r->n == r->fail_at ? -EACCES : 0;
}

static int rec_dir(void *ctx, const char *path, unsigned int owner, unsigned int reader)
{
	char line[160];

	snprintf(line, sizeof(line), "mkdir %s owner=%u reader=%u", path, owner, reader);
	return rec_op(ctx, line);
}

static int rec_put(void *ctx, const char *path, const char *val)
{
	char line[160];

	snprintf(line, sizeof(line), "%s=%s", path, val);
	return rec_op(ctx, line);
}

static const struct xvmsg_xs_writer with_dirs = { .dir = rec_dir, .put = rec_put };
static const struct xvmsg_xs_writer keys_only = { .put = rec_put };

static const struct xvmsg_dev_spec spec = {
	.fe_domid = 7, .be_domid = 3, .devid = 2, .type = "blk",
	.params = "path=/img,ro", .mode = "grant", .pool_pages = 1024,
};

#define FE "/local/domain/7/device/xvmsg/2"
#define BE "/local/domain/3/backend/xvmsg/7/2"

static const char *const entry[] = {
	"mkdir " FE " owner=7 reader=3",
	FE "/backend=" BE,
	FE "/backend-id=3",
	FE "/type=blk",
	FE "/state=1",
	"mkdir " BE " owner=3 reader=7",
	BE "/frontend-id=7",
	BE "/type=blk",
	BE "/params=path=/img,ro",
	BE "/mode=grant",
	BE "/pool-pages=1024",
	BE "/online=1",
	BE "/state=1",
	BE "/frontend=" FE,
};

/* Every key, in order, each dir created (owned by its side, readable by
 * the other) before its keys, "frontend" last. */
static void test_entry_in_order(void **state)
{
	struct rec r = { .n = 0 };
	unsigned int i;

	(void)state;
	assert_int_equal(xvmsg_dev_entry_write(&spec, &with_dirs, &r), 0);
	assert_int_equal(r.n, sizeof(entry) / sizeof(entry[0]));
	for (i = 0; i < r.n; i++)
		assert_string_equal(r.ops[i], entry[i]);
}

/* A store without permissions gets the same keys and no mkdir. */
static void test_entry_keys_only(void **state)
{
	struct rec r = { .n = 0 };
	unsigned int i, j = 0;

	(void)state;
	assert_int_equal(xvmsg_dev_entry_write(&spec, &keys_only, &r), 0);
	for (i = 0; i < sizeof(entry) / sizeof(entry[0]); i++)
		if (strncmp(entry[i], "mkdir ", 6))
			assert_string_equal(r.ops[j++], entry[i]);
	assert_int_equal(r.n, j);
}

/* The first failure ends the writing and is returned: in particular the
 * backend never sees "frontend" of an entry that is not whole. */
static void test_entry_stops_at_error(void **state)
{
	unsigned int k;

	(void)state;
	for (k = 1; k <= sizeof(entry) / sizeof(entry[0]); k++) {
		struct rec r = { .fail_at = k };

		assert_int_equal(xvmsg_dev_entry_write(&spec, &with_dirs, &r), -EACCES);
		assert_int_equal(r.n, k);
	}
}

/* The largest ids fit; a short buffer is refused, not cut. */
static void test_dirs(void **state)
{
	char buf[XVMSG_XS_DIR_MAX];

	(void)state;
	assert_int_equal(xvmsg_xs_be_dir(buf, sizeof(buf), 4294967295u, 4294967295u,
					 4294967295u), 0);
	assert_string_equal(buf, "/local/domain/4294967295/backend/xvmsg/4294967295/4294967295");
	assert_int_equal(xvmsg_xs_fe_dir(buf, sizeof(buf), 1, 0), 0);
	assert_string_equal(buf, "/local/domain/1/device/xvmsg/0");
	assert_int_equal(xvmsg_xs_fe_dir(buf, 30, 1, 0), -ENAMETOOLONG);	/* 31 needed */
	assert_int_equal(xvmsg_xs_fe_dir(buf, 31, 1, 0), 0);
	assert_int_equal(xvmsg_xs_be_dir(buf, 10, 0, 1, 0), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entry_in_order),
		cmocka_unit_test(test_entry_keys_only),
		cmocka_unit_test(test_entry_stops_at_error),
		cmocka_unit_test(test_dirs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
