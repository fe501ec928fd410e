/* SPDX-License-Identifier: MIT */
/* Unit tests: params parser and log helpers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"

struct seen {
	unsigned int n;
	char key[8][64];
	char val[8][300];
	bool has_val[8];
	int fail_at;		/* return -ENOSPC at this item (1-based), 0 = never */
};

static int collect(void *arg, const char *key, const char *value)
{
	struct seen *s = arg;

	if (s->n >= 8)
		return -E2BIG;
	snprintf(s->key[s->n], sizeof(s->key[0]), "%s", key);
	s->has_val[s->n] = value != NULL;
	snprintf(s->val[s->n], sizeof(s->val[0]), "%s", value ? value : "");
	s->n++;
	return s->fail_at && s->n == (unsigned int)s->fail_at ? -ENOSPC : 0;
}

static void test_empty(void **state)
{
	struct seen s = { 0 };

	assert_int_equal(xvmsg_params_parse(NULL, collect, &s), 0);
	assert_int_equal(xvmsg_params_parse("", collect, &s), 0);
	assert_int_equal(s.n, 0);
}

static void test_items(void **state)
{
	struct seen s = { 0 };

	assert_int_equal(xvmsg_params_parse("path=/tmp/a b=c,ro,serial=x:y;z,e=,k_9-x=1", collect, &s), 0);
	assert_int_equal(s.n, 5);
	assert_string_equal(s.key[0], "path");
	assert_string_equal(s.val[0], "/tmp/a b=c");	/* split at the first '=' */
	assert_string_equal(s.key[1], "ro");
	assert_false(s.has_val[1]);
	assert_string_equal(s.key[2], "serial");
	assert_string_equal(s.val[2], "x:y;z");
	assert_string_equal(s.key[3], "e");
	assert_true(s.has_val[3]);
	assert_string_equal(s.val[3], "");
	assert_string_equal(s.key[4], "k_9-x");
	assert_string_equal(s.val[4], "1");
}

static void test_syntax_errors(void **state)
{
	static const char *const bad[] = {
		",", "a,", ",a", "a,,b", "=v", "A=1", "a b", "ke.y=1", "a,=1", "é", "path=x,Ro",
	};
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct seen s = { 0 };

		assert_int_equal(xvmsg_params_parse(bad[i], collect, &s), -EINVAL);
		/* checked as a whole before any item is handed out */
		assert_int_equal(s.n, 0);
	}
}

static void test_item_length(void **state)
{
	char buf[600];
	struct seen s = { 0 };

	memset(buf, 0, sizeof(buf));
	buf[0] = 'k';
	buf[1] = '=';
	memset(buf + 2, 'v', 253);		/* item of exactly 255 bytes */
	assert_int_equal(xvmsg_params_parse(buf, collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(strlen(s.val[0]), 253);
	buf[255] = 'v';				/* 256 bytes */
	s.n = 0;
	assert_int_equal(xvmsg_params_parse(buf, collect, &s), -EINVAL);
	assert_int_equal(s.n, 0);
}

static void test_callback_error(void **state)
{
	struct seen s = { .fail_at = 2 };

	assert_int_equal(xvmsg_params_parse("a,b,c", collect, &s), -ENOSPC);
	assert_int_equal(s.n, 2);
}

/* Every model's on/off values, and a bare key for on. */
static void test_bool(void **state)
{
	const char *on[] = { NULL, "on", "1", "yes", "true" };
	const char *off[] = { "off", "0", "no", "false" };
	bool b;

	(void)state;
	for (unsigned int i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
		b = false;
		assert_int_equal(xvmsg_param_bool(on[i], &b), 0);
		assert_true(b);
	}
	for (unsigned int i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
		b = true;
		assert_int_equal(xvmsg_param_bool(off[i], &b), 0);
		assert_false(b);
	}
	b = true;
	assert_int_equal(xvmsg_param_bool("On", &b), -EINVAL);
	assert_int_equal(xvmsg_param_bool("", &b), -EINVAL);
	assert_true(b);		/* untouched */
}

static void test_log(void **state)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);
	struct xvb_log log = { .level = XVB_LOG_INFO, .out = f, .prog = "prog" };
	struct xvb_log *lp = &log;	/* xvb_dbg(&log) trips -Waddress */
	enum xvb_log_level lvl = XVB_LOG_ERR;

	assert_non_null(f);
	xvb_err(&log, "bad %s", "thing");
	xvb_info(&log, "two\n");
	xvb_dbg(lp, "hidden");
	xvb_logf(&log, XVB_LOG_DEBUG, "hidden too");
	fclose(f);
	assert_string_equal(text, "prog: err: bad thing\nprog: info: two\n");
	free(text);

	assert_int_equal(xvb_log_level_parse("debug", &lvl), 0);
	assert_int_equal(lvl, XVB_LOG_DEBUG);
	assert_int_equal(xvb_log_level_parse("warn", &lvl), 0);
	assert_int_equal(lvl, XVB_LOG_WARN);
	assert_int_equal(xvb_log_level_parse("loud", &lvl), -EINVAL);
	assert_int_equal(xvb_log_level_parse("", &lvl), -EINVAL);
	assert_int_equal(lvl, XVB_LOG_WARN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_items),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_item_length),
		cmocka_unit_test(test_callback_error),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_log),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
