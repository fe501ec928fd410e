// SPDX-License-Identifier: MIT
/*
 * Unit tests of the backend's xenstore handshake (conn.c) over the fake
 * bus: what the backend leaves in its directory when a frontend's attempt
 * fails and when the frontend starts over.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core.h"
#include "device.h"
#include "evloop.h"
#include "fakebus.h"

#define BE "/local/domain/1/backend/xvmsg/5/0"
#define FE "/local/domain/5/device/xvmsg/0"

struct t {
	struct fakebus fb;
	struct xvb_evloop *loop;
	struct xvb_log log;
	struct xvb_backend be;
	struct xvb_conn *c;
};

static const struct xvb_model_ops *const models[] = { &xvb_rng_ops, NULL };

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	if (!t || fakebus_init(&t->fb, 16) || xvb_evloop_create(&t->loop))
		return -1;
	t->log = (struct xvb_log){ .level = XVB_LOG_ERR, .prog = "test" };
	t->log.out = fopen("/dev/null", "w");
	xvb_backend_init(&t->be, &t->fb.bus, t->loop, &t->log, models);
	snprintf(t->be.root, sizeof(t->be.root), "/local/domain/1/backend/xvmsg");
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;

	if (t->c)
		xvb_conn_destroy(t->c);
	free(t->be.ports);
	xvb_evloop_destroy(t->loop);
	fakebus_fini(&t->fb);
	fclose(t->log.out);
	free(t);
	return 0;
}

static void put(struct t *t, const char *path, const char *val)
{
	assert_int_equal(t->fb.bus.ops->store_write(&t->fb.bus, path, val), 0);
}

/* The key's value, or "" when absent. */
static const char *get(struct t *t, const char *path)
{
	static char buf[128];

	if (t->fb.bus.ops->store_read(&t->fb.bus, path, buf, sizeof(buf)))
		buf[0] = '\0';
	return buf;
}

/* An error from an earlier attempt (or an earlier backend instance) is gone
 * once the backend is in InitWait for a new one: a frontend waiting for
 * Connected must not take it for the answer to its own attempt. */
static void test_error_cleared_on_new_attempt(void **state)
{
	struct t *t = *state;

	put(t, BE "/frontend-id", "5");
	put(t, BE "/type", "rng");
	put(t, BE "/error", "left by an earlier backend instance");
	put(t, BE "/frontend", FE);
	put(t, FE "/state", "1");
	assert_int_equal(xvb_conn_create(&t->be, 5, 0, &t->c), 0);
	assert_string_equal(get(t, BE "/state"), "2");
	assert_string_equal(get(t, BE "/error"), "");

	/* A bad attempt: Closed with the reason. */
	put(t, FE "/msg-ref", "abc");
	put(t, FE "/event-channel", "3");
	put(t, FE "/state", "3");
	xvb_conn_changed(t->c);
	assert_string_equal(get(t, BE "/state"), "6");
	assert_non_null(strstr(get(t, BE "/error"), "msg-ref"));

	/* The frontend starts over: InitWait, and no stale error. */
	put(t, FE "/state", "1");
	xvb_conn_changed(t->c);
	assert_string_equal(get(t, BE "/state"), "2");
	assert_string_equal(get(t, BE "/error"), "");

	/* A second bad attempt says so again. */
	put(t, FE "/state", "3");
	xvb_conn_changed(t->c);
	assert_string_equal(get(t, BE "/state"), "6");
	assert_non_null(strstr(get(t, BE "/error"), "msg-ref"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_error_cleared_on_new_attempt, setup, teardown),
	};

	return cmocka_run_group_tests_name("conn", tests, NULL, NULL);
}
