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

/* rng with counters of its own (stats op), as net has: a copy made in
 * main(), before any test runs. */
static struct xvb_model_ops rng_counting;

/* rng whose queue may go to a queue thread (queue_loop), as blk's may. */
static struct xvb_model_ops rng_threaded;

static const struct xvb_model_ops *const models[] = { &xvb_rng_ops, &rng_counting, &rng_threaded,
						      NULL };

static int threaded_queue_loop(void *priv, unsigned int q, struct xvb_evloop *loop)
{
	return 0;	/* nothing of rng's is tied to a thread */
}

static void counting_stats(void *priv, char *buf, size_t len)
{
	/* as long as net's thirteen counters with big values */
	snprintf(buf, len, " model_pad_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1"
		 " model_pad_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb=2"
		 " model_pad_cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc=3"
		 " model_frames=7 model_drops=0");
}

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
	static char buf[1024];

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

/* A frontend that resets a device it finds connected (Closing, wait for
 * Closed, Initialising: what a new process does after kill -9 of the old
 * one) must see the backend go Closed once: every later change in the
 * frontend's directory (the watch covers all of it) while the frontend
 * still says Closing leaves the backend Closed, not Closing-then-Closed
 * again, which a frontend already waiting for InitWait takes for a
 * failure (the Xen e2e's reopen after kill -9, with the backend slow to
 * get round to its queued watch events). */
static struct xvmsg_msg_page *connect_rng(struct t *t);

static void test_closed_once_per_close(void **state)
{
	struct t *t = *state;
	char *log = NULL;
	size_t loglen = 0;
	FILE *out;

	connect_rng(t);
	put(t, FE "/state", "5");
	xvb_conn_changed(t->c);
	assert_string_equal(get(t, BE "/state"), "6");

	out = open_memstream(&log, &loglen);
	assert_non_null(out);
	fclose(t->log.out);
	t->log.out = out;
	t->log.level = XVB_LOG_DEBUG;
	put(t, FE "/some-key", "x");
	xvb_conn_changed(t->c);
	xvb_conn_changed(t->c);
	fflush(out);
	assert_null(strstr(log, "-> 5"));
	assert_string_equal(get(t, BE "/state"), "6");

	/* and the frontend's new attempt goes on as usual */
	put(t, FE "/state", "1");
	xvb_conn_changed(t->c);
	assert_string_equal(get(t, BE "/state"), "2");
	t->log.out = fopen("/dev/null", "w");
	fclose(out);
	free(log);
}

/*
 * The backend watches its whole directory, so its own writes (state, keys
 * for the frontend) come back as watch events.  Those must not cost a
 * rescan (a listing per frontend and a read per device): with a slow
 * xenstore the rescans kept the backend from its event channels (Xen 4.20
 * under emulation, docs/xen.md).  New and removed devices still do.
 */
static void test_own_keys_no_rescan(void **state)
{
	struct t *t = *state;
	unsigned int reads, dirs;

	put(t, BE "/frontend-id", "5");
	put(t, BE "/type", "rng");
	put(t, BE "/frontend", FE);
	put(t, FE "/state", "1");
	xvb_backend_watch(&t->be, BE "/frontend");
	assert_non_null(t->be.conns);
	t->c = t->be.conns;
	assert_string_equal(get(t, BE "/state"), "2");

	reads = t->fb.reads;
	dirs = t->fb.dirs;
	xvb_backend_watch(&t->be, BE "/state");
	xvb_backend_watch(&t->be, BE "/max-queues");
	assert_int_equal(t->fb.dirs, dirs);
	assert_int_equal(t->fb.reads, reads);

	/* A device the backend does not serve yet: looked for. */
	put(t, "/local/domain/1/backend/xvmsg/5/1/frontend-id", "5");
	xvb_backend_watch(&t->be, "/local/domain/1/backend/xvmsg/5/1/frontend-id");
	assert_true(t->fb.dirs > dirs);

	/* The toolstack removes the device: the watch fires for its directory,
	 * and the device goes. */
	t->fb.bus.ops->store_rm(&t->fb.bus, BE);
	xvb_backend_watch(&t->be, BE);
	assert_null(t->be.conns);
	t->c = NULL;
}

/* ---- the message rings, as a frontend drives them ---- */

#define RB_MSG_REF		8	/* the message page: frame 0 */
#define RB_POOL_REF	16	/* the pool: frames 1..8 */

static const char *connect_rev(struct t *t, const char *rev);

/* Connect an rng device; returns the message page as the frontend sees it. */
static struct xvmsg_msg_page *connect_rng(struct t *t)
{
	assert_string_equal(connect_rev(t, NULL), "4");
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

#undef RB_MSG_REF
#undef RB_POOL_REF

/* ---- the message rings of a connected device ---- */

#define MSG_REF		10	/* the message page: frame 0 */
#define POOL_REF	11	/* the pool: frames 1..8, never granted here */

/* The message page of device devid: frame devid, granted as ref 10 + 10 * devid. */
static struct xvmsg_msg_page *page_of(struct t *t, unsigned int devid)
{
	return (struct xvmsg_msg_page *)(t->fb.mem + (size_t)devid * XVMSG_PAGE_SIZE);
}

static struct xvmsg_msg_page *page(struct t *t)
{
	return page_of(t, 0);
}

/* Device devid of domain 5 connected in pool mode; its pool (refs after
 * its message page's) is never granted, so the backend cannot map it. */
static struct xvb_conn *connect_devid(struct t *t, unsigned int devid)
{
	char be[96], fe[96], path[160], val[16];
	struct xvb_conn *c;

	snprintf(be, sizeof(be), "/local/domain/1/backend/xvmsg/5/%u", devid);
	snprintf(fe, sizeof(fe), "/local/domain/5/device/xvmsg/%u", devid);
	fakebus_grant(&t->fb, MSG_REF + 10 * devid, devid, 1, false);
#define PUT(dir, key, v) do { snprintf(path, sizeof(path), "%s/%s", dir, key); put(t, path, v); } \
			 while (0)
	PUT(be, "frontend-id", "5");
	PUT(be, "type", "rng");
	PUT(be, "frontend", fe);
	PUT(fe, "state", "1");
	assert_int_equal(xvb_conn_create(&t->be, 5, devid, &c), 0);
	PUT(fe, "mode", "pool");
	snprintf(val, sizeof(val), "%u", MSG_REF + 10 * devid);
	PUT(fe, "msg-ref", val);
	snprintf(val, sizeof(val), "%u", 3 + devid);
	PUT(fe, "event-channel", val);
	snprintf(val, sizeof(val), "%u", POOL_REF + 10 * devid);
	PUT(fe, "pool-ref", val);
	PUT(fe, "pool-pages", "8");
	PUT(fe, "num-queues", "0");
	PUT(fe, "state", "3");
#undef PUT
	xvb_conn_changed(c);
	snprintf(path, sizeof(path), "%s/state", be);
	assert_string_equal(get(t, path), "4");
	return c;
}

static void connect_dev(struct t *t)
{
	t->c = connect_devid(t, 0);
}

/* Publish one message in d2b of mp (without telling the backend). */
static void d2b_put_on(struct xvmsg_msg_page *mp, uint8_t type, uint8_t id, uint16_t token,
		       const void *p, size_t plen)
{
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

static void d2b_put(struct t *t, uint8_t type, uint8_t id, uint16_t token, const void *p,
		    size_t plen)
{
	d2b_put_on(page(t), type, id, token, p, plen);
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

/* Responses a device has published. */
static uint32_t answered(struct t *t, unsigned int devid)
{
	return le32toh(page_of(t, devid)->b2d.prod);
}

/*
 * Two devices with seven messages each and a budget of two messages per
 * call: a notification serves two, the rest waits on the pending list;
 * each round of the event loop gives each device one more call, in turn,
 * with no further notification; a notification for a device already
 * waiting only adds to its turn.
 */
static void test_round_robin(void **state)
{
	struct t *t = *state;
	struct xvb_conn *a, *b;
	unsigned int i;

	t->be.msg_budget = 2;
	a = t->c = connect_devid(t, 0);
	b = connect_devid(t, 1);
	for (i = 0; i < 7; i++) {
		d2b_put_on(page_of(t, 0), VMSG_TYPE_BUS, VMSG_BUS_PING, (uint16_t)(1 + i), NULL, 0);
		d2b_put_on(page_of(t, 1), VMSG_TYPE_BUS, VMSG_BUS_PING, (uint16_t)(1 + i), NULL, 0);
	}
	xvb_conn_event(a, -1);
	assert_int_equal(answered(t, 0), 2);
	assert_true(t->be.pend_run.armed);
	xvb_conn_event(b, -1);
	assert_int_equal(answered(t, 1), 2);
	xvb_conn_event(a, -1);			/* waiting: its turn comes */
	assert_int_equal(answered(t, 0), 2);
	/* Rounds of the loop: nothing to wait for, one call each. */
	assert_int_equal(xvb_evloop_run_once(t->loop, 5000), 1);
	assert_int_equal(answered(t, 0), 4);
	assert_int_equal(answered(t, 1), 4);
	assert_int_equal(xvb_evloop_run_once(t->loop, 5000), 1);
	assert_int_equal(answered(t, 0), 6);
	assert_int_equal(answered(t, 1), 6);
	assert_int_equal(xvb_evloop_run_once(t->loop, 5000), 1);
	assert_int_equal(answered(t, 0), 7);
	assert_int_equal(answered(t, 1), 7);
	assert_false(t->be.pend_run.armed);	/* nothing left: the loop may sleep */
	assert_null(t->be.pend_head);
	/* In order, each answered once. */
	for (i = 0; i < 7; i++) {
		assert_int_equal(le16toh(page_of(t, 0)->b2d_slot[i].hdr.token), 1 + i);
		assert_int_equal(le16toh(page_of(t, 1)->b2d_slot[i].hdr.token), 1 + i);
	}
	{
		FILE *m;
		char *buf = NULL;
		size_t len = 0;

		m = open_memstream(&buf, &len);
		assert_non_null(m);
		xvb_conn_dump(a, m);
		fclose(m);
		assert_non_null(strstr(buf, " max_msgs_call=2 "));
		free(buf);
	}
	/* A device that goes while waiting leaves the list. */
	b2d_drain(t);
	for (i = 0; i < 3; i++)
		d2b_put_on(page_of(t, 1), VMSG_TYPE_BUS, VMSG_BUS_PING, (uint16_t)(20 + i), NULL, 0);
	page_of(t, 1)->b2d.cons = page_of(t, 1)->b2d.prod;
	xvb_conn_event(b, -1);
	assert_non_null(t->be.pend_head);
	xvb_conn_destroy(b);
	assert_null(t->be.pend_head);
	assert_int_equal(xvb_evloop_run_once(t->loop, 0), 1);	/* the armed round, empty */
}

/* ---- message layout revisions ---- */

/* The size of the GET_DEVICE_INFO response the connected device sends:
 * 8 + 24 in layout revision 1, 8 + 44 in revision 2. */
static unsigned int info_size(struct t *t)
{
	struct xvmsg_msg_page *p = (struct xvmsg_msg_page *)t->fb.mem;
	static uint16_t token = 100;
	struct vmsg r;

	assert_int_equal(exchange(t, p, 0, VMSG_GET_DEVICE_INFO, XVMSG_DEV_NUM, token++, NULL, 0,
				  &r), 1);
	return le16toh(r.hdr.msg_size);
}

/* A device of type up to the frontend's Initialised with msg-revision rev
 * (NULL: no key, an older frontend) and, if own_channel, an event channel
 * of its own for queue 0; the backend's state after it. */
static const char *connect_with(struct t *t, const char *type, const char *rev, bool own_channel)
{
	fakebus_grant(&t->fb, 8, 0, 1, false);
	fakebus_grant(&t->fb, 16, 1, 8, false);
	put(t, BE "/frontend-id", "5");
	put(t, BE "/type", type);
	put(t, BE "/frontend", FE);
	put(t, FE "/state", "1");
	assert_int_equal(xvb_conn_create(&t->be, 5, 0, &t->c), 0);
	assert_string_equal(get(t, BE "/state"), "2");
	if (rev)
		put(t, FE "/msg-revision", rev);
	put(t, FE "/msg-ref", "8");
	put(t, FE "/event-channel", "3");
	if (own_channel) {
		put(t, FE "/num-queues", "1");
		put(t, FE "/vq-0-event-channel", "4");
	}
	put(t, FE "/pool-ref", "16");
	put(t, FE "/pool-pages", "8");
	put(t, FE "/state", "3");
	xvb_conn_changed(t->c);
	return get(t, BE "/state");
}

static const char *connect_rev(struct t *t, const char *rev)
{
	return connect_with(t, "rng", rev, false);
}

/* A model's counters end the device's line in "stats" and on SIGUSR1,
 * after the core's (mem_bytes the last of those). */
static void test_model_counters(void **state)
{
	struct t *t = *state;
	char *dump = NULL;
	const char *line;
	size_t dlen = 0;
	FILE *f;

	put(t, BE "/frontend-id", "5");
	put(t, BE "/type", "rngx");
	put(t, BE "/frontend", FE);
	put(t, FE "/state", "1");
	assert_int_equal(xvb_conn_create(&t->be, 5, 0, &t->c), 0);
	put(t, BE "/stats-request", "9");
	xvb_conn_publish_stats(t->c);
	line = get(t, BE "/stats");
	assert_non_null(strstr(line, "maps=0 "));
	assert_non_null(strstr(line, " bytes_in=0 mem_bytes="));
	assert_non_null(strstr(line, " model_frames=7 model_drops=0"));
	assert_int_equal(strcmp(line + strlen(line) - strlen(" model_drops=0"), " model_drops=0"), 0);
	assert_null(strchr(line, '\n'));
	assert_string_equal(get(t, BE "/stats-seq"), "9");
	f = open_memstream(&dump, &dlen);
	assert_non_null(f);
	xvb_conn_dump(t->c, f);
	fclose(f);
	assert_non_null(strstr(dump, " max_chains_call=0 mem_bytes="));
	assert_non_null(strstr(dump, " model_frames=7 model_drops=0\n"));
	free(dump);
}

/* By default both revisions are announced, with strict config generation,
 * and the frontend's choice is taken; an older frontend gets revision 1. */
static void test_rev_default(void **state)
{
	struct t *t = *state;

	assert_string_equal(connect_rev(t, "2"), "4");
	assert_string_equal(get(t, BE "/msg-revisions"), "1,2");
	assert_string_equal(get(t, BE "/transport-features"), "1");
	assert_int_equal(info_size(t), 52);
}

static void test_rev_old_frontend(void **state)
{
	struct t *t = *state;

	assert_string_equal(connect_rev(t, NULL), "4");
	assert_int_equal(info_size(t), 32);
}

/* A revision the backend does not speak, or garbage: Closed, and error
 * says which revision and which we speak. */
static void test_rev_unknown_refused(void **state)
{
	struct t *t = *state;

	assert_string_equal(connect_rev(t, "3"), "6");
	assert_non_null(strstr(get(t, BE "/error"), "revision 3"));
	assert_non_null(strstr(get(t, BE "/error"), "speaks 1,2"));
}

static void test_rev_garbage_refused(void **state)
{
	struct t *t = *state;

	assert_string_equal(connect_rev(t, "2x"), "6");
	assert_non_null(strstr(get(t, BE "/error"), "not a number"));
}

/* --msg-revision 2: an older frontend (no key) is refused with a reason. */
static void test_rev_forced_new_refuses_old(void **state)
{
	struct t *t = *state;

	t->be.msg_revs = 1u << XVMSG_MSG_REV_2;
	assert_string_equal(connect_rev(t, NULL), "6");
	assert_string_equal(get(t, BE "/msg-revisions"), "2");
	assert_non_null(strstr(get(t, BE "/error"), "writes no msg-revision"));
	assert_non_null(strstr(get(t, BE "/error"), "speaks 2"));
}

/* --msg-revision 1: exactly an older backend, no key (and none left over
 * from an earlier instance); a frontend choosing 2 anyway is refused. */
static void test_rev_forced_old(void **state)
{
	struct t *t = *state;

	t->be.msg_revs = 1u << XVMSG_MSG_REV_1;
	put(t, BE "/msg-revisions", "1,2");
	put(t, BE "/transport-features", "1");
	assert_string_equal(connect_rev(t, "2"), "6");
	assert_string_equal(get(t, BE "/msg-revisions"), "");
	assert_string_equal(get(t, BE "/transport-features"), "");
	assert_non_null(strstr(get(t, BE "/error"), "revision 2"));
}

/* A frontend that gives up in InitWait (no common revision) says why in its
 * own error key: the backend closes too. */
static void test_rev_frontend_gives_up(void **state)
{
	struct t *t = *state;

	put(t, BE "/frontend-id", "5");
	put(t, BE "/type", "rng");
	put(t, BE "/frontend", FE);
	put(t, FE "/state", "1");
	assert_int_equal(xvb_conn_create(&t->be, 5, 0, &t->c), 0);
	put(t, FE "/error", "no common virtio-msg message layout revision");
	put(t, FE "/state", "6");
	xvb_conn_changed(t->c);
	assert_string_equal(get(t, BE "/state"), "6");
}

/* Bus GET_DEVICES in both layouts: revision 2 puts next_offset before
 * count and has no reserved word before the bitmap. */
static void test_rev_bus_get_devices(void **state)
{
	struct t *t = *state;
	struct xvmsg_msg_page *p = (struct xvmsg_msg_page *)t->fb.mem;
	struct vmsg r;

	assert_string_equal(connect_rev(t, "1"), "4");
	assert_int_equal(exchange(t, p, VMSG_TYPE_BUS, VMSG_BUS_GET_DEVICES, 0, 7, NULL, 0, &r),
			 1);
	assert_int_equal(le16toh(r.hdr.msg_size), 8 + 40);
	assert_int_equal(r.payload[2], 0);		/* count: 256 = 0x100 */
	assert_int_equal(r.payload[3], 1);
	assert_int_equal(r.payload[8], 1u << XVMSG_DEV_NUM);
}

static void test_rev2_bus_get_devices(void **state)
{
	struct t *t = *state;
	struct xvmsg_msg_page *p = (struct xvmsg_msg_page *)t->fb.mem;
	struct vmsg r;

	assert_string_equal(connect_rev(t, "2"), "4");
	assert_int_equal(exchange(t, p, VMSG_TYPE_BUS, VMSG_BUS_GET_DEVICES, 0, 8, NULL, 0, &r),
			 1);
	assert_int_equal(le16toh(r.hdr.msg_size), 8 + 38);
	assert_int_equal(r.payload[2], 0);		/* next_offset */
	assert_int_equal(r.payload[3], 0);
	assert_int_equal(r.payload[4], 0);		/* count: 256 */
	assert_int_equal(r.payload[5], 1);
	assert_int_equal(r.payload[6], 1u << XVMSG_DEV_NUM);
}

/*
 * --queue-threads: a queue with an event channel of its own goes to a
 * queue thread; when the bus has no resources for such a channel (EMFILE:
 * on Xen each costs an event channel fd) the queue stays on the loop
 * thread and the device still connects; any other bind error (a bad port)
 * fails the device as before.
 */
static const char *connect_threaded(struct t *t, int chan_err)
{
	t->fb.chan_err = chan_err;
	return connect_with(t, "rngq", NULL, true);
}

/* Queues on queue threads, as the device's stats line says. */
static unsigned int on_threads(struct t *t)
{
	const char *v;

	put(t, BE "/stats-request", "1");
	xvb_conn_publish_stats(t->c);
	v = strstr(get(t, BE "/stats"), " queue_threads=");
	assert_non_null(v);
	return (unsigned int)strtoul(v + strlen(" queue_threads="), NULL, 10);
}

static void qthread_end(struct t *t)
{
	xvb_backend_shutdown(&t->be);	/* destroys t->c too */
	t->c = NULL;
	assert_int_equal(t->fb.chans, 0);
}

static void test_queue_channel_own(void **state)
{
	struct t *t = *state;

	assert_int_equal(xvb_backend_queue_threads(&t->be, 1), 0);
	assert_string_equal(connect_threaded(t, 0), "4");
	assert_int_equal(t->fb.chan_binds, 1);
	assert_int_equal(t->fb.chans, 1);
	assert_int_equal(on_threads(t), 1);
	qthread_end(t);
}

static void test_queue_channel_shortage(void **state)
{
	static const int errs[] = { -EMFILE, -ENFILE, -ENOMEM };
	struct t *t = *state;
	char line[256];
	bool warned = false;

	t->log.level = XVB_LOG_WARN;
	fclose(t->log.out);
	t->log.out = tmpfile();
	assert_non_null(t->log.out);
	assert_int_equal(xvb_backend_queue_threads(&t->be, 1), 0);
	for (unsigned int i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		assert_string_equal(connect_threaded(t, errs[i]), "4");
		assert_int_equal(t->fb.chan_binds, i + 1);
		assert_int_equal(t->fb.chans, 0);
		assert_int_equal(on_threads(t), 0);
		xvb_conn_destroy(t->c);
		t->c = NULL;
	}
	rewind(t->log.out);
	while (fgets(line, sizeof(line), t->log.out))
		warned |= strstr(line, "queue 0 stays on the loop thread") != NULL;
	assert_true(warned);
	qthread_end(t);
}

static void test_queue_channel_bad_port(void **state)
{
	struct t *t = *state;

	assert_int_equal(xvb_backend_queue_threads(&t->be, 1), 0);
	assert_string_equal(connect_threaded(t, -EINVAL), "6");	/* Closed */
	assert_non_null(strstr(get(t, BE "/error"), "cannot bind event channel 4"));
	assert_int_equal(t->fb.chans, 0);
	qthread_end(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_error_cleared_on_new_attempt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_channel_own, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_channel_shortage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_channel_bad_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closed_once_per_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_keys_no_rescan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserved_type_bits_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_slot_not_taken_by_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_robin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_model_counters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rev_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rev_old_frontend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rev_unknown_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rev_garbage_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rev_forced_new_refuses_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rev_forced_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rev_frontend_gives_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rev_bus_get_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rev2_bus_get_devices, setup, teardown),
	};

	rng_counting = xvb_rng_ops;
	rng_counting.type = "rngx";
	rng_counting.stats = counting_stats;
	rng_threaded = xvb_rng_ops;
	rng_threaded.type = "rngq";
	rng_threaded.queue_loop = threaded_queue_loop;
	return cmocka_run_group_tests_name("conn", tests, NULL, NULL);
}
