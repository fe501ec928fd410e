/* SPDX-License-Identifier: MIT */
/* Unit tests: iovec copy helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"

/* Three segments of 3, 0 and 5 bytes plus one of 4: 12 bytes in all. */
static char a[3], b[1], c[5], d[4];

static void setup_iov(struct iovec *iov)
{
	iov[0] = (struct iovec){ a, sizeof(a) };
	iov[1] = (struct iovec){ b, 0 };
	iov[2] = (struct iovec){ c, sizeof(c) };
	iov[3] = (struct iovec){ d, sizeof(d) };
	memcpy(a, "012", 3);
	memcpy(c, "34567", 5);
	memcpy(d, "89ab", 4);
}

static void test_to_buf(void **state)
{
	struct iovec iov[4];
	char buf[32];

	setup_iov(iov);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(xvb_iov_to_buf(iov, 4, 0, buf, sizeof(buf)), 12);
	assert_memory_equal(buf, "0123456789ab", 12);

	memset(buf, 0, sizeof(buf));
	assert_int_equal(xvb_iov_to_buf(iov, 4, 2, buf, 7), 7);	/* crosses three segments */
	assert_memory_equal(buf, "2345678", 7);
	assert_int_equal(buf[7], 0);

	assert_int_equal(xvb_iov_to_buf(iov, 4, 3, buf, 1), 1);	/* skip ends on a boundary */
	assert_int_equal(buf[0], '3');
	assert_int_equal(xvb_iov_to_buf(iov, 4, 11, buf, 5), 1);
	assert_int_equal(buf[0], 'b');
	assert_int_equal(xvb_iov_to_buf(iov, 4, 12, buf, 5), 0);
	assert_int_equal(xvb_iov_to_buf(iov, 4, 100, buf, 5), 0);
	assert_int_equal(xvb_iov_to_buf(iov, 2, 0, buf, 32), 3);	/* only n entries */
	assert_int_equal(xvb_iov_to_buf(iov, 0, 0, buf, 32), 0);
	assert_int_equal(xvb_iov_to_buf(iov, 4, 0, buf, 0), 0);
}

static void test_to_iov(void **state)
{
	struct iovec iov[4];
	char all[12];

	setup_iov(iov);
	assert_int_equal(xvb_buf_to_iov(iov, 4, 1, "ABCDEFG", 7), 7);
	xvb_iov_to_buf(iov, 4, 0, all, sizeof(all));
	assert_memory_equal(all, "0ABCDEFG89ab", 12);

	assert_int_equal(xvb_buf_to_iov(iov, 4, 10, "XYZ", 3), 2);	/* truncated at the end */
	xvb_iov_to_buf(iov, 4, 0, all, sizeof(all));
	assert_memory_equal(all, "0ABCDEFG89XY", 12);
	assert_int_equal(xvb_buf_to_iov(iov, 4, 12, "Q", 1), 0);
	assert_int_equal(xvb_buf_to_iov(iov, 4, 0, "Q", 0), 0);
	assert_int_equal(b[0], 0);	/* zero-length segment untouched */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_to_buf),
		cmocka_unit_test(test_to_iov),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
