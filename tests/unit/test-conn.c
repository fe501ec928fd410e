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

/* ---- the message rings, as a frontend drives them ---- */

#define MSG_REF		8	/* the message page: frame 0 */
#define POOL_REF	16	/* the pool: frames 1..8 */

/* Connect an rng device; returns the message page as the frontend sees it. */
static struct xvmsg_msg_page *connect_rng(struct t *t)
{
	fakebus_grant(&t->fb, MSG_REF, 0, 1, false);
	fakebus_grant(&t->fb, POOL_REF, 1, 8, false);
	put(t, BE "/frontend-id", "5");
	put(t, BE "/type", "rng");
	put(t, BE "/frontend", FE);
	put(t, FE "/state", "1");
	assert_int_equal(xvb_conn_create(&t->be, 5, 0, &t->c), 0);
	assert_string_equal(get(t, BE "/state"), "2");
	put(t, FE "/msg-ref", "8");
	put(t, FE "/event-channel", "3");
	put(t, FE "/pool-ref", "16");
	put(t, FE "/pool-pages", "8");
	put(t, FE "/state", "3");
	xvb_conn_changed(t->c);
	assert_string_equal(get(t, BE "/state"), "4");
	return (struct xvmsg_msg_page *)t->fb.mem;
}

/* Publish one message on d2b and let the backend handle it.  Returns the
 * number of messages it put on b2d; the last one is copied to *resp. */
static unsigned int exchange(struct t *t, struct xvmsg_msg_page *p, uint8_t type, uint8_t id,
			     uint16_t dev_num, uint16_t token, const void *payload, uint16_t len,
			     struct vmsg *resp)
{
	uint32_t prod = le32toh(p->d2b.prod), b2d = le32toh(p->b2d.prod), n;
	struct vmsg *m = &p->d2b_slot[prod % XVMSG_RING_SLOTS];

	memset(m, 0, sizeof(*m));
	m->hdr.type = type;
	m->hdr.msg_id = id;
	m->hdr.dev_num = htole16(dev_num);
	m->hdr.token = htole16(token);
	m->hdr.msg_size = htole16((uint16_t)(sizeof(m->hdr) + len));
	if (len)
		memcpy(m->payload, payload, len);
	p->d2b.prod = htole32(prod + 1);
	xvb_conn_event(t->c, -1);
	assert_int_equal(le32toh(p->d2b.cons), prod + 1);
	n = le32toh(p->b2d.prod) - b2d;
	if (n)
		memcpy(resp, &p->b2d_slot[(b2d + n - 1) % XVMSG_RING_SLOTS], sizeof(*resp));
	p->b2d.cons = p->b2d.prod;	/* consumed */
	return n;
}

/* Type bits 2-7 are reserved: sent as zero, ignored on receipt.  A request
 * with them set is answered as if they were clear, and the response has
 * them clear. */
static void test_reserved_type_bits_ignored(void **state)
{
	struct t *t = *state;
	struct xvmsg_msg_page *p = connect_rng(t);
	struct vmsg_status ack = { .status = htole32(VMSG_STATUS_ACKNOWLEDGE) };
	struct vmsg_device_info_resp info;
	struct vmsg_status st;
	struct vmsg r;

	assert_int_equal(exchange(t, p, 0x84, VMSG_GET_DEVICE_INFO, XVMSG_DEV_NUM, 7, NULL, 0, &r),
			 1);
	assert_int_equal(r.hdr.type, VMSG_TYPE_RESPONSE);
	assert_int_equal(r.hdr.msg_id, VMSG_GET_DEVICE_INFO);
	assert_int_equal(le16toh(r.hdr.token), 7);
	assert_int_equal(le16toh(r.hdr.msg_size), 8 + sizeof(info));
	memcpy(&info, r.payload, sizeof(info));
	assert_int_equal(le32toh(info.device_id), 4);		/* VIRTIO_ID_RNG */

	/* Every reserved bit at once, on a request that changes state. */
	assert_int_equal(exchange(t, p, 0xfc, VMSG_SET_DEVICE_STATUS, XVMSG_DEV_NUM, 8, &ack,
				  sizeof(ack), &r), 1);
	assert_int_equal(r.hdr.type, VMSG_TYPE_RESPONSE);
	assert_int_equal(le16toh(r.hdr.token), 8);
	memcpy(&st, r.payload, sizeof(st));
	assert_int_equal(le32toh(st.status), VMSG_STATUS_ACKNOWLEDGE);

	/* A bus message stays a bus message. */
	assert_int_equal(exchange(t, p, 0xf8 | VMSG_TYPE_BUS, VMSG_BUS_PING, 0, 9, NULL, 0, &r), 1);
	assert_int_equal(r.hdr.type, VMSG_TYPE_RESPONSE | VMSG_TYPE_BUS);
	assert_int_equal(le16toh(r.hdr.token), 9);

	/* The bits that are defined still count: a response sent to the device
	 * is discarded, reserved bits or not. */
	assert_int_equal(exchange(t, p, 0xfc | VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO,
				  XVMSG_DEV_NUM, 10, NULL, 0, &r), 0);
	put(t, BE "/stats-request", "1");
	xvb_conn_publish_stats(t->c);
	assert_non_null(strstr(get(t, BE "/stats"), " msgs_in=4 msgs_out=3 msgs_bad=1 "));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_error_cleared_on_new_attempt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserved_type_bits_ignored, setup, teardown),
	};

	return cmocka_run_group_tests_name("conn", tests, NULL, NULL);
}
