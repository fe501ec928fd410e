// SPDX-License-Identifier: MIT
/* Unit tests: include/xvmsg/xs-readf.h, against a stand-in xs_read that
 * records the path it was asked for (built with Xen's headers only). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <xvmsg/xs-readf.h>

static char last_path[512];
static int reads;

/* Overrides libxenstore's: the executable's definition comes first. */
void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len)
{
	(void)h;
	(void)t;
	reads++;
	snprintf(last_path, sizeof(last_path), "%s", path);
	*len = 5;
	return strdup("value");
}

static void test_formats_the_path(void **state)
{
	char *v;

	(void)state;
	reads = 0;
	v = xvmsg_xs_readf(NULL, "device/%s/%u/%s", "xvmsg", 7u, "backend-id");
	assert_non_null(v);
	assert_string_equal(v, "value");
	assert_string_equal(last_path, "device/xvmsg/7/backend-id");
	assert_int_equal(reads, 1);
	free(v);
}

/* 255 bytes are read; 256 would be cut and name another key: not read. */
static void test_long_path_not_read(void **state)
{
	char name[300];
	char *v;

	(void)state;
	memset(name, 'k', sizeof(name));
	name[250] = '\0';
	reads = 0;
	v = xvmsg_xs_readf(NULL, "a/%s", name);	/* 252 bytes */
	assert_non_null(v);
	free(v);
	assert_int_equal(reads, 1);
	name[253] = '\0';
	memset(name, 'k', 253);
	v = xvmsg_xs_readf(NULL, "a/%s", name);	/* 255 */
	assert_non_null(v);
	free(v);
	assert_int_equal(reads, 2);
	memset(name, 'k', 254);
	name[254] = '\0';
	errno = 0;
	v = xvmsg_xs_readf(NULL, "a/%s", name);	/* 256: too long */
	assert_null(v);
	assert_int_equal(errno, ENAMETOOLONG);
	assert_int_equal(reads, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_formats_the_path),
		cmocka_unit_test(test_long_path_not_read),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
