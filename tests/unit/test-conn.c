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

/* ---- the message rings of a connected device ---- */

#define MSG_REF		10	/* the message page: frame 0 */
#define POOL_REF	11	/* the pool: frames 1..8, never granted here */

static struct xvmsg_msg_page *page(struct t *t)
{
	return (struct xvmsg_msg_page *)t->fb.mem;
}

/* A device connected in pool mode whose pool the backend cannot map. */
static void connect_dev(struct t *t)
{
	fakebus_grant(&t->fb, MSG_REF, 0, 1, false);
	put(t, BE "/frontend-id", "5");
	put(t, BE "/type", "rng");
	put(t, BE "/frontend", FE);
	put(t, FE "/state", "1");
	assert_int_equal(xvb_conn_create(&t->be, 5, 0, &t->c), 0);
	put(t, FE "/mode", "pool");
	put(t, FE "/msg-ref", "10");
	put(t, FE "/event-channel", "3");
	put(t, FE "/pool-ref", "11");
	put(t, FE "/pool-pages", "8");
	put(t, FE "/num-queues", "0");
	put(t, FE "/state", "3");
	xvb_conn_changed(t->c);
	assert_string_equal(get(t, BE "/state"), "4");
}

/* Publish one message in d2b (without telling the backend). */
static void d2b_put(struct t *t, uint8_t type, uint8_t id, uint16_t token, const void *p,
		    size_t plen)
{
	struct xvmsg_msg_page *mp = page(t);
	uint32_t prod = le32toh(mp->d2b.prod);
	struct vmsg *m = &mp->d2b_slot[prod % XVMSG_RING_SLOTS];

	assert_true(prod - le32toh(mp->d2b.cons) < XVMSG_RING_SLOTS);
	memset(m, 0, sizeof(*m));
	m->hdr.type = type;
	m->hdr.msg_id = id;
	m->hdr.dev_num = htole16((type & VMSG_TYPE_BUS) ? 0 : XVMSG_DEV_NUM);
	m->hdr.token = htole16(token);
	m->hdr.msg_size = htole16((uint16_t)(sizeof(m->hdr) + plen));
	if (plen)
		memcpy(m->payload, p, plen);
	mp->d2b.prod = htole32(prod + 1);
}

static void status_msg(struct t *t, uint32_t status, uint16_t token)
{
	__le32 s = htole32(status);

	d2b_put(t, 0, VMSG_SET_DEVICE_STATUS, token, &s, sizeof(s));
}

/* The driver consumes every response (and event) the backend wrote. */
static void b2d_drain(struct t *t)
{
	page(t)->b2d.cons = page(t)->b2d.prod;
}

/* The one slot kept for a request's response must not be taken by the
 * events its handling emits: a DRIVER_OK whose rings cannot be mapped sets
 * NEEDS_RESET (EVENT_CONFIG) while 7 responses wait unread.  The response
 * fills the ring; the event waits until the driver frees a slot.  Before
 * the fix the backend wrote both: 9 messages in 8 slots, the oldest unread
 * response overwritten. */
static void test_reply_slot_not_taken_by_events(void **state)
{
	struct t *t = *state;
	struct xvmsg_msg_page *mp = page(t);
	struct vmsg_set_vqueue_req vq = { 0 };
	__le32 feat[3] = { htole32(1), htole32(1), htole32(3) };	/* VERSION_1, ACCESS_PLATFORM */
	uint32_t cons, i;
	bool event = false;

	connect_dev(t);
	status_msg(t, VMSG_STATUS_ACKNOWLEDGE | VMSG_STATUS_DRIVER, 1);
	d2b_put(t, 0, VMSG_SET_DRIVER_FEATURES, 2, feat, sizeof(feat));
	status_msg(t, VMSG_STATUS_ACKNOWLEDGE | VMSG_STATUS_DRIVER | VMSG_STATUS_FEATURES_OK, 3);
	vq.size = htole32(64);
	vq.desc_addr = htole64(XVMSG_GRANT_ADDR(POOL_REF, 0));
	vq.driver_addr = htole64(XVMSG_GRANT_ADDR(POOL_REF + 1, 0));
	vq.device_addr = htole64(XVMSG_GRANT_ADDR(POOL_REF + 2, 0));
	d2b_put(t, 0, VMSG_SET_VQUEUE, 4, &vq, sizeof(vq));
	xvb_conn_event(t->c, -1);
	assert_int_equal(le32toh(mp->b2d.prod), 4);
	b2d_drain(t);

	/* Seven responses the driver leaves unread, then DRIVER_OK. */
	for (i = 0; i < 7; i++)
		d2b_put(t, VMSG_TYPE_BUS, VMSG_BUS_PING, (uint16_t)(100 + i), NULL, 0);
	status_msg(t, VMSG_STATUS_ACKNOWLEDGE | VMSG_STATUS_DRIVER | VMSG_STATUS_FEATURES_OK |
		   VMSG_STATUS_DRIVER_OK, 200);
	xvb_conn_event(t->c, -1);
	cons = le32toh(mp->b2d.cons);
	assert_int_equal(le32toh(mp->b2d.prod) - cons, XVMSG_RING_SLOTS);
	for (i = 0; i < 7; i++) {
		const struct vmsg *m = &mp->b2d_slot[(cons + i) % XVMSG_RING_SLOTS];

		assert_int_equal(m->hdr.msg_id, VMSG_BUS_PING);
		assert_int_equal(le16toh(m->hdr.token), 100 + i);
	}
	{
		const struct vmsg *m = &mp->b2d_slot[(cons + 7) % XVMSG_RING_SLOTS];
		__le32 st;

		assert_int_equal(m->hdr.msg_id, VMSG_SET_DEVICE_STATUS);
		assert_int_equal(le16toh(m->hdr.token), 200);
		memcpy(&st, m->payload, sizeof(st));
		assert_true(le32toh(st) & VMSG_STATUS_NEEDS_RESET);
	}

	/* Once the driver reads them (and kicks), the event follows. */
	b2d_drain(t);
	cons = le32toh(mp->b2d.cons);
	xvb_conn_event(t->c, -1);
	assert_true(le32toh(mp->b2d.prod) - cons >= 1);
	for (i = cons; i != le32toh(mp->b2d.prod); i++)
		event |= mp->b2d_slot[i % XVMSG_RING_SLOTS].hdr.msg_id == VMSG_EVENT_CONFIG;
	assert_true(event);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_error_cleared_on_new_attempt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_slot_not_taken_by_events, setup, teardown),
	};

	return cmocka_run_group_tests_name("conn", tests, NULL, NULL);
}
