// SPDX-License-Identifier: MIT
/*
 * Unit tests of the backend's logging (backend-domain/log.c): a condition
 * that lasts is reported when it starts, changes and ends, not once per
 * occurrence.  The backend reports its bus's dispatch result this way: on
 * Xen, once the xenstore connection is gone, every dispatch fails (each
 * event channel wake-up), and a line each flooded the log at the guests'
 * notification rate.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"

/* Lines written to f so far. */
static unsigned int lines(FILE *f, char *last, size_t len)
{
	char buf[512];
	unsigned int n = 0;

	fflush(f);
	rewind(f);
	while (fgets(buf, sizeof(buf), f)) {
		n++;
		snprintf(last, len, "%s", buf);
	}
	return n;
}

static void test_cond_logged_on_change(void **state)
{
	FILE *f = tmpfile();
	struct xvb_log log = { .level = XVB_LOG_INFO, .prog = "t" };
	struct xvb_log_cond c = { 0 };
	char last[512] = "";

	(void)state;
	assert_non_null(f);
	log.out = f;
	assert_false(xvb_log_cond(&log, &c, 0, "bus"));		/* fine: silent */
	assert_int_equal(lines(f, last, sizeof(last)), 0);
	assert_true(xvb_log_cond(&log, &c, -ENOTCONN, "bus"));	/* starts */
	for (int i = 0; i < 1000; i++)
		assert_false(xvb_log_cond(&log, &c, -ENOTCONN, "bus"));
	assert_int_equal(lines(f, last, sizeof(last)), 1);
	assert_non_null(strstr(last, "t: err: bus: "));
	assert_non_null(strstr(last, strerror(ENOTCONN)));
	assert_true(xvb_log_cond(&log, &c, -EINVAL, "bus"));	/* changes */
	assert_false(xvb_log_cond(&log, &c, -EINVAL, "bus"));
	assert_int_equal(lines(f, last, sizeof(last)), 2);
	assert_non_null(strstr(last, strerror(EINVAL)));
	assert_true(xvb_log_cond(&log, &c, 0, "bus"));		/* ends */
	assert_false(xvb_log_cond(&log, &c, 0, "bus"));
	assert_int_equal(lines(f, last, sizeof(last)), 3);
	assert_non_null(strstr(last, "t: info: bus: "));
	assert_true(xvb_log_cond(&log, &c, -EINVAL, "bus"));	/* again */
	assert_int_equal(lines(f, last, sizeof(last)), 4);
	fclose(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cond_logged_on_change),
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
