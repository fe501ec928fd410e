/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the virtio-msg device side (vdev.c).  The test is the driver:
 * it builds request messages, hands them to xvb_vdev_handle() and checks the
 * responses, the transport events and what a dummy device model was told.
 */
#include <errno.h>
#include <endian.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_ring.h>

#include <cmocka.h>

#include "core.h"
#include "fakebus.h"

#define PAGE		XVMSG_PAGE_SIZE
#define GUEST_PAGES	128
#define POOL_REF	256
#define POOL_PAGES	64
#define QSZ		16
#define CFG_SIZE	8
#define NQUEUES		2

#define F(bit)		(1ULL << (bit))
#define MODEL_FEATURES	(F(0) | F(3))		/* bit 1 is never offered */
#define REQUIRED	(F(VMSG_F_VERSION_1) | F(VMSG_F_ACCESS_PLATFORM))

#define S_ACK		VMSG_STATUS_ACKNOWLEDGE
#define S_DRIVER	VMSG_STATUS_DRIVER
#define S_FEAT		VMSG_STATUS_FEATURES_OK
#define S_OK		VMSG_STATUS_DRIVER_OK

/* ---- the dummy model ---- */

struct dummy {
	unsigned int activates, resets, set_configs, notifies[NQUEUES];
	uint64_t act_features;
	struct xvb_vdev *vdev;
	uint8_t cfg[CFG_SIZE];
};

static uint64_t dummy_features(void *priv)
{
	return MODEL_FEATURES;
}

static void dummy_get_config(void *priv, uint8_t *cfg)
{
	memcpy(cfg, ((struct dummy *)priv)->cfg, CFG_SIZE);
}

static int dummy_set_config(void *priv, uint32_t off, const uint8_t *data, uint32_t len)
{
	struct dummy *m = priv;

	assert_true(off + len <= CFG_SIZE);
	memcpy(m->cfg + off, data, len);
	m->set_configs++;
	return 0;
}

static int dummy_activate(void *priv, struct xvb_vdev *vdev, uint64_t features)
{
	struct dummy *m = priv;

	m->activates++;
	m->act_features = features;
	m->vdev = vdev;
	return 0;
}

static void dummy_reset(void *priv)
{
	struct dummy *m = priv;

	m->resets++;
	m->vdev = NULL;
}

static void dummy_notify(void *priv, unsigned int q)
{
	assert_true(q < NQUEUES);
	((struct dummy *)priv)->notifies[q]++;
}

static const struct xvb_model_ops dummy_ops = {
	.type = "dummy",
	.device_id = 4,
	.num_queues = NQUEUES,
	.queue_size = QSZ,
	.config_size = CFG_SIZE,
	.features = dummy_features,
	.get_config = dummy_get_config,
	.set_config = dummy_set_config,
	.activate = dummy_activate,
	.reset = dummy_reset,
	.notify = dummy_notify,
};

/* The same model with a read-only config space. */
static const struct xvb_model_ops dummy_ro_ops = {
	.type = "dummy-ro",
	.device_id = 4,
	.num_queues = NQUEUES,
	.queue_size = QSZ,
	.config_size = CFG_SIZE,
	.features = dummy_features,
	.get_config = dummy_get_config,
	.activate = dummy_activate,
	.reset = dummy_reset,
	.notify = dummy_notify,
};

/* ---- the transport ---- */

struct tp_rec {
	unsigned int sends, notify_used[NQUEUES];
	struct vmsg last;
	/* remote queues: the hand-overs, and the model's resets each saw */
	unsigned int starts[NQUEUES], stops[NQUEUES], broken[NQUEUES];
	const struct dummy *m;
	unsigned int resets_at_stop;
};

static void tp_send(void *ctx, const struct vmsg *m)
{
	struct tp_rec *r = ctx;

	r->sends++;
	r->last = *m;
}

static void tp_notify_used(void *ctx, unsigned int q)
{
	assert_true(q < NQUEUES);
	((struct tp_rec *)ctx)->notify_used[q]++;
}

static void tp_queue_start(void *ctx, struct xvb_vdev *d, unsigned int q)
{
	((struct tp_rec *)ctx)->starts[q]++;
}

static void tp_queue_stop(void *ctx, struct xvb_vdev *d, unsigned int q)
{
	struct tp_rec *r = ctx;

	r->stops[q]++;
	r->resets_at_stop = r->m->resets;
}

static void tp_queue_broken(void *ctx, struct xvb_vdev *d, unsigned int q)
{
	((struct tp_rec *)ctx)->broken[q]++;
}

static const struct xvb_vdev_transport tp_ops = {
	.send = tp_send,
	.notify_used = tp_notify_used,
	.queue_start = tp_queue_start,
	.queue_stop = tp_queue_stop,
	.queue_broken = tp_queue_broken,
};

/* ---- fixture ---- */

struct vd {
	struct fakebus *fb;
	struct xvb_stats st;
	struct xvb_mapcache mc;
	struct xvb_log log;
	struct xvb_vdev d;
	struct dummy m;
	struct tp_rec tp;
	struct vmsg resp_buf;	/* 8-byte aligned by its type */
	struct vmsg *resp;
	uint16_t token;
	uint16_t avail_idx;
};

static void vdev_init(struct vd *v, const struct xvb_model_ops *ops)
{
	xvb_vdev_init(&v->d, ops, &v->m, &tp_ops, &v->tp, &v->st, &v->log, "dummy0");
	xvb_vdev_set_mapcache(&v->d, &v->mc);
}

static int setup(void **state)
{
	struct vd *v = calloc(1, sizeof(*v));

	if (!v)
		return -1;
	v->fb = calloc(1, sizeof(*v->fb));
	if (!v->fb || fakebus_init(v->fb, GUEST_PAGES))
		return -1;
	fakebus_grant(v->fb, POOL_REF, 0, POOL_PAGES, false);
	if (xvb_mc_init(&v->mc, &v->fb->bus, &v->st, 3, XVMSG_MODE_POOL, POOL_REF, POOL_PAGES))
		return -1;
	v->log.level = XVB_LOG_ERR;	/* the tests provoke warnings on purpose */
	memcpy(v->m.cfg, "\x01\x02\x03\x04\x05\x06\x07\x08", CFG_SIZE);
	v->resp = &v->resp_buf;
	v->tp.m = &v->m;
	vdev_init(v, &dummy_ops);
	*state = v;
	return 0;
}

static int teardown(void **state)
{
	struct vd *v = *state;

	xvb_vdev_reset(&v->d);
	xvb_mc_fini(&v->mc);
	assert_int_equal(v->fb->live, 0);
	fakebus_fini(v->fb);
	free(v->fb);
	free(v);
	return 0;
}

/* ---- the driver's side ---- */

static size_t send_tok(struct vd *v, uint8_t id, uint16_t token, const void *payload,
		       size_t plen)
{
	struct vmsg req;

	memset(&req, 0, sizeof(req));
	req.hdr.type = 0;
	req.hdr.msg_id = id;
	req.hdr.dev_num = htole16(XVMSG_DEV_NUM);
	req.hdr.token = htole16(token);
	req.hdr.msg_size = htole16((uint16_t)(sizeof(req.hdr) + plen));
	if (plen)
		memcpy(req.payload, payload, plen);
	memset(v->resp, 0xee, sizeof(*v->resp));
	return xvb_vdev_handle(&v->d, &req, v->resp);
}

/* A request with a fresh token; a response must echo it. */
static size_t call(struct vd *v, uint8_t id, const void *payload, size_t plen)
{
	uint16_t tok = ++v->token ? v->token : ++v->token;
	size_t n = send_tok(v, id, tok, payload, plen);

	if (n) {
		assert_true(n >= sizeof(v->resp->hdr) && n <= VMSG_MAX_SIZE);
		assert_int_equal(v->resp->hdr.type, VMSG_TYPE_RESPONSE);
		assert_int_equal(v->resp->hdr.msg_id, id);
		assert_int_equal(le16toh(v->resp->hdr.token), tok);
		assert_int_equal(le16toh(v->resp->hdr.dev_num), XVMSG_DEV_NUM);
		assert_int_equal(le16toh(v->resp->hdr.msg_size), n);
	}
	return n;
}

static uint32_t resp32(struct vd *v, size_t off)
{
	uint32_t x;

	memcpy(&x, v->resp->payload + off, 4);
	return le32toh(x);
}

static uint64_t resp64(struct vd *v, size_t off)
{
	uint64_t x;

	memcpy(&x, v->resp->payload + off, 8);
	return le64toh(x);
}

static uint32_t set_status(struct vd *v, uint32_t s)
{
	struct vmsg_status p = { .status = htole32(s) };

	assert_int_equal(call(v, VMSG_SET_DEVICE_STATUS, &p, sizeof(p)), 8 + sizeof(p));
	return resp32(v, 0);
}

static uint32_t get_status(struct vd *v)
{
	assert_int_equal(call(v, VMSG_GET_DEVICE_STATUS, NULL, 0), 8 + 4);
	return resp32(v, 0);
}

static void set_features(struct vd *v, uint64_t f)
{
	struct { struct vmsg_features h; uint32_t w[2]; } p = {
		.h = { .block_index = htole32(0), .num_blocks = htole32(2) },
		.w = { htole32((uint32_t)f), htole32((uint32_t)(f >> 32)) },
	};

	assert_int_equal(call(v, VMSG_SET_DRIVER_FEATURES, &p, sizeof(p)), 8);
}

/* ACK, DRIVER, features, FEATURES_OK: returns the status the device kept. */
static uint32_t negotiate(struct vd *v, uint64_t f)
{
	assert_int_equal(set_status(v, S_ACK), S_ACK);
	assert_int_equal(set_status(v, S_ACK | S_DRIVER), S_ACK | S_DRIVER);
	set_features(v, f);
	return set_status(v, S_ACK | S_DRIVER | S_FEAT);
}

static void set_vqueue(struct vd *v, uint32_t q, uint32_t size, uint64_t desc, uint64_t drv,
		       uint64_t dev)
{
	struct vmsg_set_vqueue_req p = {
		.index = htole32(q), .size = htole32(size), .desc_addr = htole64(desc),
		.driver_addr = htole64(drv), .device_addr = htole64(dev),
	};

	assert_int_equal(call(v, VMSG_SET_VQUEUE, &p, sizeof(p)), 8);
}

/* GET_VQUEUE; returns cur_size (max_size in *max). */
static uint32_t get_vqueue(struct vd *v, uint32_t q, uint32_t *max)
{
	struct vmsg_vq_index p = { .index = htole32(q) };

	assert_int_equal(call(v, VMSG_GET_VQUEUE, &p, sizeof(p)),
			 8 + sizeof(struct vmsg_get_vqueue_resp));
	assert_int_equal(resp32(v, offsetof(struct vmsg_get_vqueue_resp, index)), q);
	if (max)
		*max = resp32(v, offsetof(struct vmsg_get_vqueue_resp, max_size));
	return resp32(v, offsetof(struct vmsg_get_vqueue_resp, cur_size));
}

/* Queue 0's rings in the pool: desc at 0, avail at 0x400, used at 0x800. */
static uint64_t pool_addr(uint64_t gpa)
{
	return XVMSG_GRANT_ADDR(POOL_REF + gpa / PAGE, gpa % PAGE);
}

#define DESC_GPA	0x000
#define AVAIL_GPA	0x400
#define USED_GPA	0x800

static void set_vqueue0(struct vd *v)
{
	set_vqueue(v, 0, QSZ, pool_addr(DESC_GPA), pool_addr(AVAIL_GPA), pool_addr(USED_GPA));
	assert_int_equal(get_vqueue(v, 0, NULL), QSZ);
}

static const uint64_t negotiated = REQUIRED | F(VIRTIO_RING_F_EVENT_IDX) | F(0);

/* All the way to DRIVER_OK with queue 0 set up. */
static void bring_up(struct vd *v)
{
	assert_int_equal(negotiate(v, negotiated), S_ACK | S_DRIVER | S_FEAT);
	set_vqueue0(v);
	assert_int_equal(set_status(v, S_ACK | S_DRIVER | S_FEAT | S_OK),
			 S_ACK | S_DRIVER | S_FEAT | S_OK);
}

/* Offer head h: one writable buffer of n bytes at gpa. */
static void offer(struct vd *v, uint16_t h, uint64_t gpa, uint32_t n)
{
	struct vring_desc *d = (struct vring_desc *)(v->fb->mem + DESC_GPA) + h;
	struct vring_avail *a = (struct vring_avail *)(v->fb->mem + AVAIL_GPA);

	d->addr = htole64(pool_addr(gpa));
	d->len = htole32(n);
	d->flags = htole16(VRING_DESC_F_WRITE);
	d->next = 0;
	a->ring[v->avail_idx % QSZ] = htole16(h);
	a->idx = htole16(++v->avail_idx);
}

static struct vring_used *used(struct vd *v)
{
	return (struct vring_used *)(v->fb->mem + USED_GPA);
}

static void event_avail(struct vd *v, uint32_t q)
{
	struct vmsg_event_avail ev = { .vq_index = htole32(q) };

	assert_int_equal(send_tok(v, VMSG_EVENT_AVAIL, 0, &ev, sizeof(ev)), 0);
}

/* ---- tests: discovery ---- */

static void test_device_info(void **state)
{
	struct vd *v = *state;

	assert_int_equal(call(v, VMSG_GET_DEVICE_INFO, NULL, 0),
			 8 + sizeof(struct vmsg_device_info_resp));
	assert_int_equal(resp32(v, offsetof(struct vmsg_device_info_resp, device_id)), 4);
	assert_int_equal(resp32(v, offsetof(struct vmsg_device_info_resp, num_feature_bits)), 64);
	assert_int_equal(resp32(v, offsetof(struct vmsg_device_info_resp, config_size)), CFG_SIZE);
	assert_int_equal(resp32(v, offsetof(struct vmsg_device_info_resp, max_vqs)), NQUEUES);
	assert_int_equal(resp32(v, offsetof(struct vmsg_device_info_resp, admin_vq_start)), 0);
}

static void test_device_features(void **state)
{
	struct vd *v = *state;
	struct vmsg_features p = { .block_index = htole32(0), .num_blocks = htole32(3) };
	uint64_t f;

	assert_int_equal(call(v, VMSG_GET_DEVICE_FEATURES, &p, sizeof(p)), 8 + 8 + 3 * 4);
	assert_int_equal(resp32(v, 0), 0);
	assert_int_equal(resp32(v, 4), 3);
	f = resp32(v, 8) | (uint64_t)resp32(v, 12) << 32;
	assert_true(f & F(VMSG_F_VERSION_1));
	assert_true(f & F(VMSG_F_ACCESS_PLATFORM));
	assert_true(f & F(VIRTIO_RING_F_EVENT_IDX));
	assert_true(f & F(VIRTIO_RING_F_INDIRECT_DESC));
	assert_int_equal(f & 0xff, MODEL_FEATURES);
	assert_false(f & F(VMSG_F_RING_RESET));
	assert_int_equal(resp32(v, 16), 0);		/* block 2: we know 64 bits */

	/* One block, starting at 1. */
	p.block_index = htole32(1);
	p.num_blocks = htole32(1);
	assert_int_equal(call(v, VMSG_GET_DEVICE_FEATURES, &p, sizeof(p)), 8 + 8 + 4);
	assert_int_equal(resp32(v, 0), 1);
	assert_int_equal(resp32(v, 8), (uint32_t)(f >> 32));
}

/* GET_DEVICE_FEATURES for blocks [index, index + n); its response size. */
static size_t get_features(struct vd *v, uint32_t index, uint32_t n)
{
	struct vmsg_features p = { .block_index = htole32(index), .num_blocks = htole32(n) };

	return call(v, VMSG_GET_DEVICE_FEATURES, &p, sizeof(p));
}

/* Windows that end at the last block index, 0xffffffff, are answered with
 * zeros (the device has no such blocks); only windows that would run past
 * it name blocks that cannot exist and are dropped. */
static void test_device_features_top_of_range(void **state)
{
	struct vd *v = *state;
	static const struct { uint32_t index, n; } top[] = {
		{ 0xffffffff, 1 }, { 0xfffffffe, 2 }, { 0xfffffffd, 3 }, { 0xffffffff, 0 },
		{ 0x7fffffff, 1 }, { UINT32_MAX - VMSG_MAX_FEATURE_BLOCKS + 1, VMSG_MAX_FEATURE_BLOCKS },
	};
	unsigned int i, k;

	for (i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
		if (get_features(v, top[i].index, top[i].n) != 8 + 8 + 4 * top[i].n)
			fail_msg("GET_DEVICE_FEATURES %u blocks at %#x not answered", top[i].n,
				 top[i].index);
		assert_int_equal(resp32(v, 0), top[i].index);
		assert_int_equal(resp32(v, 4), top[i].n);
		for (k = 0; k < top[i].n; k++)
			assert_int_equal(resp32(v, 8 + 4 * k), 0);
	}
	assert_int_equal(v->st.msgs_bad, 0);
	/* Past the last index: block 0x100000000 would wrap to block 0. */
	assert_int_equal(get_features(v, 0xffffffff, 2), 0);
	assert_int_equal(get_features(v, 0xfffffffe, 3), 0);
	assert_int_equal(get_features(v, 0x80000000, VMSG_MAX_FEATURE_BLOCKS),
			 8 + 8 + 4 * VMSG_MAX_FEATURE_BLOCKS);
	assert_int_equal(v->st.msgs_bad, 2);
}

/* SET_DRIVER_FEATURES up to the last block index: answered, and a bit set
 * there (never offered) makes FEATURES_OK fail. */
static void test_set_features_top_of_range(void **state)
{
	struct vd *v = *state;
	struct { struct vmsg_features h; uint32_t w[2]; } p = {
		.h = { .block_index = htole32(0xfffffffe), .num_blocks = htole32(2) },
		.w = { 0, htole32(0x80000000) },
	};

	set_status(v, S_ACK);
	set_status(v, S_ACK | S_DRIVER);
	set_features(v, REQUIRED);
	assert_int_equal(call(v, VMSG_SET_DRIVER_FEATURES, &p, sizeof(p)), 8);
	assert_int_equal(v->st.msgs_bad, 0);
	assert_int_equal(set_status(v, S_ACK | S_DRIVER | S_FEAT), S_ACK | S_DRIVER);
	/* The bits it writes never reach blocks 0 and 1. */
	assert_int_equal(v->d.drv_features, REQUIRED);
	/* Zeros up there are harmless; a window past the last index is dropped. */
	assert_int_equal(set_status(v, 0), 0);
	set_status(v, S_ACK);
	set_status(v, S_ACK | S_DRIVER);
	set_features(v, REQUIRED);
	p.w[1] = 0;
	p.h.block_index = htole32(0xffffffff);
	p.h.num_blocks = htole32(1);
	assert_int_equal(call(v, VMSG_SET_DRIVER_FEATURES, &p, sizeof(p.h) + 4), 8);
	p.h.num_blocks = htole32(2);
	assert_int_equal(call(v, VMSG_SET_DRIVER_FEATURES, &p, sizeof(p)), 0);
	assert_int_equal(v->st.msgs_bad, 1);
	assert_int_equal(set_status(v, S_ACK | S_DRIVER | S_FEAT), S_ACK | S_DRIVER | S_FEAT);
}

/* ---- tests: feature negotiation and status ---- */

static void test_set_features_before_driver(void **state)
{
	struct vd *v = *state;

	set_features(v, REQUIRED);			/* status 0 */
	assert_int_equal(v->d.drv_features, 0);
	assert_int_equal(set_status(v, S_ACK), S_ACK);
	set_features(v, REQUIRED);			/* ACK only */
	assert_int_equal(v->d.drv_features, 0);
	assert_int_equal(set_status(v, S_ACK | S_DRIVER), S_ACK | S_DRIVER);
	set_features(v, REQUIRED | F(0));
	assert_int_equal(v->d.drv_features, REQUIRED | F(0));
	assert_int_equal(set_status(v, S_ACK | S_DRIVER | S_FEAT), S_ACK | S_DRIVER | S_FEAT);
	set_features(v, REQUIRED | F(3));		/* after FEATURES_OK: too late */
	assert_int_equal(v->d.drv_features, REQUIRED | F(0));
}

static void test_features_ok_rules(void **state)
{
	struct vd *v = *state;
	const uint32_t before = S_ACK | S_DRIVER;

	set_status(v, S_ACK);
	set_status(v, before);
	set_features(v, F(VMSG_F_ACCESS_PLATFORM) | F(0));		/* no VERSION_1 */
	assert_int_equal(set_status(v, before | S_FEAT), before);
	set_features(v, F(VMSG_F_VERSION_1) | F(0));			/* no ACCESS_PLATFORM */
	assert_int_equal(set_status(v, before | S_FEAT), before);
	set_features(v, REQUIRED | F(1));				/* never offered */
	assert_int_equal(set_status(v, before | S_FEAT), before);
	assert_int_equal(get_status(v), before);
	set_features(v, REQUIRED | F(3) | F(VIRTIO_RING_F_INDIRECT_DESC));
	assert_int_equal(set_status(v, before | S_FEAT), before | S_FEAT);
	assert_int_equal(get_status(v), before | S_FEAT);
}

static void test_features_beyond_64_refused(void **state)
{
	struct vd *v = *state;
	struct { struct vmsg_features h; uint32_t w[3]; } p = {
		.h = { .block_index = htole32(0), .num_blocks = htole32(3) },
		.w = { 0, htole32((uint32_t)(REQUIRED >> 32)), htole32(1) },
	};

	set_status(v, S_ACK);
	set_status(v, S_ACK | S_DRIVER);
	assert_int_equal(call(v, VMSG_SET_DRIVER_FEATURES, &p, sizeof(p)), 8);
	assert_int_equal(set_status(v, S_ACK | S_DRIVER | S_FEAT), S_ACK | S_DRIVER);
	/* Rewriting the first 64 bits does not forget bit 64. */
	set_features(v, REQUIRED);
	assert_int_equal(set_status(v, S_ACK | S_DRIVER | S_FEAT), S_ACK | S_DRIVER);
	/* A reset does. */
	assert_int_equal(set_status(v, 0), 0);
	assert_int_equal(negotiate(v, REQUIRED), S_ACK | S_DRIVER | S_FEAT);
}

static void test_status_cannot_clear_bits(void **state)
{
	struct vd *v = *state;

	assert_int_equal(negotiate(v, REQUIRED), S_ACK | S_DRIVER | S_FEAT);
	assert_int_equal(set_status(v, S_ACK | S_DRIVER), S_ACK | S_DRIVER | S_FEAT);
	assert_int_equal(set_status(v, S_ACK), S_ACK | S_DRIVER | S_FEAT);
	assert_int_equal(set_status(v, S_DRIVER | S_FEAT | S_OK), S_ACK | S_DRIVER | S_FEAT);
	assert_int_equal(v->m.activates, 0);
	assert_int_equal(get_status(v), S_ACK | S_DRIVER | S_FEAT);
}

static void test_driver_ok_needs_features_ok(void **state)
{
	struct vd *v = *state;

	set_status(v, S_ACK);
	set_status(v, S_ACK | S_DRIVER);
	set_features(v, REQUIRED);
	assert_int_equal(set_status(v, S_ACK | S_DRIVER | S_OK), S_ACK | S_DRIVER);
	assert_int_equal(v->m.activates, 0);
	assert_false(v->d.activated);
}

/* ---- tests: virtqueue setup ---- */

static void test_get_vqueue(void **state)
{
	struct vd *v = *state;
	uint32_t max;

	assert_int_equal(get_vqueue(v, 0, &max), 0);
	assert_int_equal(max, QSZ);
	assert_int_equal(get_vqueue(v, NQUEUES - 1, &max), 0);
	assert_int_equal(max, QSZ);
	assert_int_equal(get_vqueue(v, NQUEUES, &max), 0);
	assert_int_equal(max, 0);
	assert_int_equal(get_vqueue(v, 0xffffffff, &max), 0);
	assert_int_equal(max, 0);
}

static void test_set_vqueue_rejects(void **state)
{
	struct vd *v = *state;
	const uint64_t desc = pool_addr(DESC_GPA), drv = pool_addr(AVAIL_GPA),
		       dev = pool_addr(USED_GPA);

	/* Before FEATURES_OK the queue cannot be set up. */
	set_vqueue(v, 0, QSZ, desc, drv, dev);
	assert_int_equal(get_vqueue(v, 0, NULL), 0);

	assert_int_equal(negotiate(v, REQUIRED), S_ACK | S_DRIVER | S_FEAT);
	set_vqueue(v, 0, 12, desc, drv, dev);				/* not a power of 2 */
	assert_int_equal(get_vqueue(v, 0, NULL), 0);
	set_vqueue(v, 0, 2 * QSZ, desc, drv, dev);			/* beyond max_size */
	assert_int_equal(get_vqueue(v, 0, NULL), 0);
	set_vqueue(v, 0, QSZ, desc + 8, drv, dev);			/* desc not 16-aligned */
	assert_int_equal(get_vqueue(v, 0, NULL), 0);
	set_vqueue(v, 0, QSZ, desc, drv + 1, dev);			/* avail odd */
	assert_int_equal(get_vqueue(v, 0, NULL), 0);
	set_vqueue(v, 0, QSZ, desc, drv, dev + 2);			/* used not 4-aligned */
	assert_int_equal(get_vqueue(v, 0, NULL), 0);
	set_vqueue(v, 0, QSZ, XVMSG_GRANT_ADDR(POOL_REF + POOL_PAGES, 0), drv, dev);
	assert_int_equal(get_vqueue(v, 0, NULL), 0);			/* outside the pool */
	set_vqueue(v, 0, QSZ, desc, drv, pool_addr((uint64_t)POOL_PAGES * PAGE - 64));
	assert_int_equal(get_vqueue(v, 0, NULL), 0);			/* runs off its end */
	set_vqueue(v, 0, QSZ, DESC_GPA + PAGE, drv, dev);		/* a frame address */
	assert_int_equal(get_vqueue(v, 0, NULL), 0);
	set_vqueue(v, NQUEUES, QSZ, desc, drv, dev);			/* no such queue */
	assert_int_equal(get_vqueue(v, NQUEUES, NULL), 0);

	set_vqueue(v, 1, QSZ / 2, desc, drv, dev);			/* and a good one */
	assert_int_equal(get_vqueue(v, 1, NULL), QSZ / 2);
	assert_int_equal(resp64(v, offsetof(struct vmsg_get_vqueue_resp, desc_addr)), desc);
	assert_int_equal(resp64(v, offsetof(struct vmsg_get_vqueue_resp, driver_addr)), drv);
	assert_int_equal(resp64(v, offsetof(struct vmsg_get_vqueue_resp, device_addr)), dev);
	set_vqueue(v, 1, 0, 0, 0, 0);					/* size 0 disables */
	assert_int_equal(get_vqueue(v, 1, NULL), 0);
}

/* GET_VQUEUE of q matches size and the three addresses. */
static void assert_vqueue(struct vd *v, uint32_t q, uint32_t size, uint64_t desc, uint64_t drv,
			  uint64_t dev)
{
	assert_int_equal(get_vqueue(v, q, NULL), size);
	assert_int_equal(resp64(v, offsetof(struct vmsg_get_vqueue_resp, desc_addr)), desc);
	assert_int_equal(resp64(v, offsetof(struct vmsg_get_vqueue_resp, driver_addr)), drv);
	assert_int_equal(resp64(v, offsetof(struct vmsg_get_vqueue_resp, device_addr)), dev);
}

/* A refused SET_VQUEUE changes nothing: not the size, not the addresses. */
static void test_set_vqueue_refused_changes_nothing(void **state)
{
	struct vd *v = *state;
	const uint64_t desc = pool_addr(DESC_GPA), drv = pool_addr(AVAIL_GPA),
		       dev = pool_addr(USED_GPA), other = pool_addr(0x2000);

	assert_int_equal(negotiate(v, negotiated), S_ACK | S_DRIVER | S_FEAT);
	/* A queue never set up stays disabled with no addresses. */
	set_vqueue(v, 1, QSZ + 512, other, other, other);
	assert_vqueue(v, 1, 0, 0, 0, 0);
	set_vqueue(v, 1, QSZ, other + 8, other, other);
	assert_vqueue(v, 1, 0, 0, 0, 0);

	/* A queue set up keeps its size and rings through refusals. */
	set_vqueue0(v);
	set_vqueue(v, 0, QSZ + 512, other, other, other);		/* beyond max_size */
	assert_vqueue(v, 0, QSZ, desc, drv, dev);
	set_vqueue(v, 0, 12, other, other, other);			/* not a power of 2 */
	assert_vqueue(v, 0, QSZ, desc, drv, dev);
	set_vqueue(v, 0, QSZ / 2, other + 8, other, other);		/* desc misaligned */
	assert_vqueue(v, 0, QSZ, desc, drv, dev);
	set_vqueue(v, 0, QSZ / 2, other, other,
		   XVMSG_GRANT_ADDR(POOL_REF + POOL_PAGES, 0));		/* outside the pool */
	assert_vqueue(v, 0, QSZ, desc, drv, dev);

	/* And it runs on those rings. */
	assert_int_equal(set_status(v, S_ACK | S_DRIVER | S_FEAT | S_OK),
			 S_ACK | S_DRIVER | S_FEAT | S_OK);
	assert_true(v->d.vq[0].live);
	assert_false(v->d.vq[1].live);

	/* An accepted one replaces everything; size 0 still disables. */
	assert_int_equal(set_status(v, 0), 0);
	assert_int_equal(negotiate(v, negotiated), S_ACK | S_DRIVER | S_FEAT);
	set_vqueue(v, 1, QSZ / 2, other, other + 0x400, other + 0x800);
	assert_vqueue(v, 1, QSZ / 2, other, other + 0x400, other + 0x800);
	set_vqueue(v, 1, 0, 0, 0, 0);
	assert_int_equal(get_vqueue(v, 1, NULL), 0);
}

/* ---- tests: config space ---- */

static uint32_t get_config(struct vd *v, uint32_t off, uint32_t len)
{
	struct vmsg_get_config_req p = { .offset = htole32(off), .length = htole32(len) };
	size_t n = call(v, VMSG_GET_CONFIG, &p, sizeof(p));

	assert_true(n >= 8 + sizeof(struct vmsg_config));
	assert_int_equal(resp32(v, offsetof(struct vmsg_config, offset)), off);
	assert_int_equal(n, 8 + sizeof(struct vmsg_config) + resp32(v, 8));
	return resp32(v, offsetof(struct vmsg_config, length));
}

static void test_get_config(void **state)
{
	struct vd *v = *state;

	assert_int_equal(get_config(v, 0, CFG_SIZE), CFG_SIZE);
	assert_memory_equal(v->resp->payload + 12, "\x01\x02\x03\x04\x05\x06\x07\x08", CFG_SIZE);
	assert_int_equal(resp32(v, 0), v->d.config_gen);
	assert_int_equal(get_config(v, 5, 3), 3);
	assert_memory_equal(v->resp->payload + 12, "\x06\x07\x08", 3);
	assert_int_equal(get_config(v, 6, 4), 0);			/* runs off the end */
	assert_int_equal(get_config(v, CFG_SIZE + 1, 0), 0);
	assert_int_equal(get_config(v, 0xfffffffe, 4), 0);		/* offset + length wraps */
	assert_int_equal(get_config(v, 0, 0xffffffff), 0);
}

static size_t set_config(struct vd *v, uint32_t gen, uint32_t off, const void *data,
			 uint32_t len)
{
	struct { struct vmsg_config h; uint8_t d[16]; } p = {
		.h = { .generation = htole32(gen), .offset = htole32(off), .length = htole32(len) },
	};

	memcpy(p.d, data, len);
	return call(v, VMSG_SET_CONFIG, &p, sizeof(p.h) + len);
}

static void test_set_config(void **state)
{
	struct vd *v = *state;
	uint32_t gen = v->d.config_gen;

	/* A stale generation: refused, and the generation does not move. */
	assert_int_equal(set_config(v, gen + 1, 2, "\xaa\xbb", 2), 8 + 12);
	assert_int_equal(resp32(v, 8), 0);
	assert_int_equal(resp32(v, 0), gen);
	assert_int_equal(v->m.set_configs, 0);
	/* Out of range with the right generation: refused. */
	assert_int_equal(set_config(v, gen, 7, "\xaa\xbb", 2), 8 + 12);
	assert_int_equal(resp32(v, 8), 0);
	assert_int_equal(resp32(v, 0), gen);
	/* The current generation: accepted, the generation moves on. */
	assert_int_equal(set_config(v, gen, 2, "\xaa\xbb", 2), 8 + 12 + 2);
	assert_int_equal(resp32(v, 8), 2);
	assert_int_equal(resp32(v, 0), gen + 1);
	assert_memory_equal(v->resp->payload + 12, "\xaa\xbb", 2);
	assert_int_equal(v->m.set_configs, 1);
	assert_memory_equal(v->m.cfg, "\x01\x02\xaa\xbb\x05", 5);
	assert_int_equal(get_config(v, 0, 4), 4);
	assert_int_equal(resp32(v, 0), gen + 1);
	/* The old generation is stale now. */
	assert_int_equal(set_config(v, gen, 2, "\xcc", 1), 8 + 12);
	assert_int_equal(resp32(v, 8), 0);
	assert_int_equal(v->m.set_configs, 1);
}

static void test_set_config_read_only(void **state)
{
	struct vd *v = *state;
	uint32_t gen;

	vdev_init(v, &dummy_ro_ops);
	gen = v->d.config_gen;
	assert_int_equal(set_config(v, gen, 0, "\xaa", 1), 8 + 12);
	assert_int_equal(resp32(v, 8), 0);
	assert_int_equal(resp32(v, 0), gen);
	assert_int_equal(v->m.cfg[0], 0x01);
}

/* ---- tests: malformed requests ---- */

static void test_truncated_payloads(void **state)
{
	struct vd *v = *state;
	static const struct { uint8_t id; size_t plen; uint32_t w[4]; } cases[] = {
		{ VMSG_GET_DEVICE_FEATURES, 7, { 0, 1 } },
		{ VMSG_GET_DEVICE_FEATURES, 8, { 0, VMSG_MAX_FEATURE_BLOCKS + 1 } },
		{ VMSG_SET_DRIVER_FEATURES, 7, { 0, 0 } },
		{ VMSG_SET_DRIVER_FEATURES, 12, { 0, 2, 0 } },	/* two words announced, one sent */
		{ VMSG_GET_CONFIG, 7, { 0, 4 } },
		{ VMSG_SET_CONFIG, 11, { 0, 0, 0 } },
		{ VMSG_SET_CONFIG, 14, { 0, 0, 4, 0 } },		/* 4 bytes announced, 2 sent */
		{ VMSG_SET_DEVICE_STATUS, 3, { S_ACK } },
		{ VMSG_GET_VQUEUE, 3, { 0 } },
		{ VMSG_SET_VQUEUE, sizeof(struct vmsg_set_vqueue_req) - 1, { 0 } },
		{ VMSG_RESET_VQUEUE, 0, { 0 } },
		{ VMSG_GET_SHM, 2, { 0 } },
		{ 0x30, 8, { 0 } },				/* no such message */
	};
	unsigned int i;
	uint32_t w[2] = { 0, htole32(1) };

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t p[12] = { 0 };		/* room for the longest request */
		unsigned int k;

		for (k = 0; k < 4; k++)
			p[k] = htole32(cases[i].w[k]);
		if (call(v, cases[i].id, p, cases[i].plen) != 0)
			fail_msg("case %u (id 0x%x, %zu bytes) was answered", i, cases[i].id,
				 cases[i].plen);
	}
	assert_int_equal(v->st.msgs_bad, i);
	assert_int_equal(v->d.status, 0);		/* the short SET_DEVICE_STATUS did nothing */
	/* The full-size request is answered. */
	assert_int_equal(call(v, VMSG_GET_DEVICE_FEATURES, w, 8), 8 + 8 + 4);
}

static void test_token_zero(void **state)
{
	struct vd *v = *state;
	struct vmsg_status s = { .status = htole32(S_ACK) };

	assert_int_equal(send_tok(v, VMSG_GET_DEVICE_INFO, 0, NULL, 0), 0);
	assert_int_equal(send_tok(v, VMSG_GET_DEVICE_STATUS, 0, NULL, 0), 0);
	assert_int_equal(send_tok(v, VMSG_SET_DEVICE_STATUS, 0, &s, sizeof(s)), 0);
	assert_int_not_equal(send_tok(v, VMSG_GET_DEVICE_INFO, 1, NULL, 0), 0);
}

/* ---- tests: running ---- */

static void test_event_avail(void **state)
{
	struct vd *v = *state;
	struct vmsg_event_avail ev = { .vq_index = 0 };

	event_avail(v, 0);				/* not running yet */
	assert_int_equal(v->m.notifies[0], 0);
	bring_up(v);
	assert_int_equal(v->m.notifies[0], 1);		/* activation looks at live queues */
	event_avail(v, 0);
	assert_int_equal(v->m.notifies[0], 2);
	event_avail(v, NQUEUES);			/* no such queue */
	event_avail(v, 0xffffffff);
	assert_int_equal(v->m.notifies[0], 2);
	assert_int_equal(v->m.notifies[1], 0);
	/* Even with a token an event is not answered; a short one is dropped. */
	assert_int_equal(call(v, VMSG_EVENT_AVAIL, &ev, sizeof(ev)), 0);
	assert_int_equal(v->m.notifies[0], 3);
	assert_int_equal(send_tok(v, VMSG_EVENT_AVAIL, 0, &ev, 4), 0);
	assert_int_equal(v->m.notifies[0], 3);
}

static void test_full_init_and_needs_reset(void **state)
{
	struct vd *v = *state;
	const struct vmsg_event_config *ev = (const void *)v->tp.last.payload;
	struct xvb_req req;

	bring_up(v);
	assert_int_equal(v->m.activates, 1);
	assert_int_equal(v->m.act_features, negotiated);
	assert_ptr_equal(v->m.vdev, &v->d);
	assert_true(v->d.vq[0].live);
	assert_false(v->d.vq[1].live);

	/* The model serves a request. */
	offer(v, 2, 0x3000, 8);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 1);
	assert_int_equal(req.queue, 0);
	assert_int_equal(req.in_len, 8);
	memcpy(req.in[0].iov_base, "answered", 8);
	xvb_push(&v->d, &req, 8);
	xvb_flush(&v->d, 0);
	assert_int_equal(v->tp.notify_used[0], 1);
	assert_int_equal(le16toh(used(v)->idx), 1);
	assert_int_equal(le32toh(used(v)->ring[0].id), 2);
	assert_memory_equal(v->fb->mem + 0x3000, "answered", 8);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 0);
	assert_int_equal(xvb_pop(&v->d, 1, &req), -EIO);	/* queue 1 was never set up */
	assert_int_equal(v->tp.sends, 0);

	/* Something goes wrong: one EVENT_CONFIG, however often it is said. */
	xvb_needs_reset(&v->d, "test");
	xvb_needs_reset(&v->d, "test again");
	assert_int_equal(v->tp.sends, 1);
	assert_int_equal(v->tp.last.hdr.msg_id, VMSG_EVENT_CONFIG);
	assert_int_equal(v->tp.last.hdr.type, 0);
	assert_int_equal(v->tp.last.hdr.token, 0);
	assert_int_equal(le16toh(v->tp.last.hdr.dev_num), XVMSG_DEV_NUM);
	assert_true(le16toh(v->tp.last.hdr.msg_size) >= 8 + sizeof(*ev));
	assert_true(le32toh(ev->status) & VMSG_STATUS_NEEDS_RESET);
	assert_true(le32toh(ev->status) & S_OK);
	assert_true(get_status(v) & VMSG_STATUS_NEEDS_RESET);
	offer(v, 3, 0x3100, 8);
	assert_int_equal(xvb_pop(&v->d, 0, &req), -EIO);
	event_avail(v, 0);
	assert_int_equal(v->m.notifies[0], 1);		/* only the one at activation */
	/* Setting bits does not clear it; the driver's NEEDS_RESET bit is ignored. */
	assert_true(set_status(v, S_ACK | S_DRIVER | S_FEAT | S_OK) & VMSG_STATUS_NEEDS_RESET);
	assert_true(set_status(v, S_ACK | S_DRIVER | S_FEAT | S_OK | VMSG_STATUS_NEEDS_RESET) &
		    VMSG_STATUS_NEEDS_RESET);

	/* A reset does. */
	assert_int_equal(set_status(v, 0), 0);
	assert_int_equal(v->m.resets, 1);
	assert_null(v->m.vdev);
	assert_false(v->d.broken);
	assert_false(v->d.vq[0].live);
	assert_int_equal(get_vqueue(v, 0, NULL), 0);
	assert_int_equal(v->tp.sends, 1);

	/* And the device can be brought up again. */
	memset(v->fb->mem, 0, PAGE);
	v->avail_idx = 0;
	bring_up(v);
	assert_int_equal(v->m.activates, 2);
	offer(v, 1, 0x3000, 8);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 1);
	xvb_push(&v->d, &req, 0);
}

static void test_ring_broken_by_driver(void **state)
{
	struct vd *v = *state;
	struct vring_avail *a = (struct vring_avail *)(v->fb->mem + AVAIL_GPA);
	struct xvb_req req;

	bring_up(v);
	/* A bad chain fails alone and is completed with length 0. */
	offer(v, 4, 0x3000, 0);
	assert_int_equal(xvb_pop(&v->d, 0, &req), -EINVAL);
	assert_int_equal(v->st.bad_chains, 1);
	xvb_flush(&v->d, 0);
	assert_int_equal(le16toh(used(v)->idx), 1);
	assert_int_equal(le32toh(used(v)->ring[0].id), 4);
	assert_int_equal(le32toh(used(v)->ring[0].len), 0);
	assert_int_equal(v->tp.sends, 0);
	/* A lying ring breaks the device. */
	a->ring[v->avail_idx % QSZ] = htole16(QSZ);
	a->idx = htole16(++v->avail_idx);
	assert_int_equal(xvb_pop(&v->d, 0, &req), -EIO);
	assert_int_equal(v->tp.sends, 1);
	assert_true(get_status(v) & VMSG_STATUS_NEEDS_RESET);
}

/* A call's chain budget: xvb_pop takes that many chains, then answers
 * "empty" and notes the queue; the rest is there for the next call. */
static void test_chain_budget(void **state)
{
	struct vd *v = *state;
	struct xvb_req req;
	unsigned int i;

	bring_up(v);
	for (i = 0; i < 5; i++)
		offer(v, (uint16_t)i, 0x3000 + 0x100 * i, 8);
	xvb_vdev_budget(&v->d, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(xvb_pop(&v->d, 0, &req), 1);
		xvb_push(&v->d, &req, 0);
	}
	assert_int_equal(xvb_pop(&v->d, 0, &req), 0);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 0);
	assert_int_equal(xvb_vdev_budget_end(&v->d), 1ULL << 0);
	assert_int_equal(v->st.requests, 3);
	assert_int_equal(xvb_vdev_work(&v->d), 1ULL << 0);

	/* The next call takes the rest; an empty queue is not noted, but
	 * the budget ran out exactly as it went idle: the driver's next
	 * entry must kick (avail_event = our index), else nobody would
	 * come back for it. */
	xvb_vdev_budget(&v->d, 2);
	for (i = 0; i < 2; i++) {
		assert_int_equal(xvb_pop(&v->d, 0, &req), 1);
		xvb_push(&v->d, &req, 0);
	}
	assert_int_not_equal(le16toh(*(uint16_t *)&used(v)->ring[QSZ]), 5);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 0);
	assert_int_equal(le16toh(*(uint16_t *)&used(v)->ring[QSZ]), 5);
	assert_int_equal(xvb_vdev_budget_end(&v->d), 0);
	assert_int_equal(xvb_vdev_work(&v->d), 0);

	/* A bad chain counts too; outside a call there is no limit. */
	offer(v, 5, 0x3000, 0);
	offer(v, 6, 0x3000, 8);
	xvb_vdev_budget(&v->d, 1);
	assert_int_equal(xvb_pop(&v->d, 0, &req), -EINVAL);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 0);
	assert_int_equal(xvb_vdev_budget_end(&v->d), 1ULL << 0);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 1);
	xvb_push(&v->d, &req, 0);
	xvb_flush(&v->d, 0);
	assert_int_equal(le16toh(used(v)->idx), 7);
}

/* Busy polling (xvmsg-backend --poll-us): a quiet queue asks for no kick,
 * neither going idle nor at the end of a budget, and its avail_event is
 * moved behind the driver's next entry; arming asks again and reports what
 * came meanwhile. */
static void test_quiet_arm(void **state)
{
	struct vd *v = *state;
	struct xvb_req req;
	uint16_t *ev;

	bring_up(v);
	ev = (uint16_t *)&used(v)->ring[QSZ];
	offer(v, 0, 0x3000, 8);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 1);
	xvb_push(&v->d, &req, 0);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 0);
	assert_int_equal(le16toh(*ev), 1);		/* armed: entry 1 kicks */

	xvb_vdev_quiet(&v->d);
	assert_true(v->d.vq[0].quiet);
	assert_int_equal(le16toh(*ev), 0);		/* entry 1 does not */
	assert_false(vring_need_event(le16toh(*ev), 2, 1));
	assert_int_equal(xvb_pop(&v->d, 0, &req), 0);
	assert_int_equal(le16toh(*ev), 0);		/* idle, quietly */
	offer(v, 1, 0x3100, 8);
	offer(v, 2, 0x3200, 8);
	assert_int_equal(xvb_vdev_work(&v->d), 1ULL << 0);	/* found by polling */
	xvb_vdev_budget(&v->d, 1);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 1);
	xvb_push(&v->d, &req, 0);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 0);	/* budget spent */
	assert_int_equal(xvb_vdev_budget_end(&v->d), 1ULL << 0);
	assert_int_equal(le16toh(*ev), 0);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 1);
	xvb_push(&v->d, &req, 0);

	/* Arming with nothing there: kick at our index, no work. */
	assert_int_equal(xvb_vdev_arm(&v->d), 0);
	assert_false(v->d.vq[0].quiet);
	assert_int_equal(le16toh(*ev), 3);
	/* An entry that comes just before the arm is reported by it. */
	xvb_vdev_quiet(&v->d);
	offer(v, 3, 0x3300, 8);
	assert_int_equal(xvb_vdev_arm(&v->d), 1ULL << 0);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 1);	/* the caller serves it */
	xvb_push(&v->d, &req, 0);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 0);
	assert_int_equal(le16toh(*ev), 4);		/* and going idle arms */
	xvb_flush(&v->d, 0);
	assert_int_equal(le16toh(used(v)->idx), 4);
	/* A reset device is left alone. */
	xvb_vdev_reset(&v->d);
	xvb_vdev_quiet(&v->d);
	assert_int_equal(xvb_vdev_arm(&v->d), 0);
}

/* A model that stopped taking a queue's requests early (it could not
 * allocate) says so with xvb_retry_later: budget_end hands the queue back
 * like one that ran out of budget, so the device gets another turn. */
static void test_retry_later(void **state)
{
	struct vd *v = *state;

	bring_up(v);
	xvb_vdev_budget(&v->d, XVB_CHAIN_BUDGET);
	xvb_retry_later(&v->d, 0);
	xvb_retry_later(&v->d, 64);		/* no such queue: ignored */
	assert_int_equal(xvb_vdev_budget_end(&v->d), 1ULL << 0);
	xvb_retry_later(&v->d, 0);		/* outside a call: nothing to hand back to */
	assert_int_equal(xvb_vdev_budget_end(&v->d), 0);
}

/* A remote queue (served on a queue thread, --queue-threads): DRIVER_OK
 * hands it to the transport instead of serving it here; busy polling and
 * the loop thread's budgets leave it alone; a lie found on it is reported
 * to the transport, not answered with NEEDS_RESET from the queue's thread;
 * every reset and FAILED takes it back before the model resets. */
static void test_remote_queue(void **state)
{
	struct vd *v = *state;
	struct xvb_req req;
	unsigned int taken;

	v->d.vq[0].remote = true;
	bring_up(v);
	assert_int_equal(v->tp.starts[0], 1);
	assert_int_equal(v->m.notifies[0], 0);		/* its thread serves it */
	offer(v, 0, 0x3000, 8);
	assert_int_equal(xvb_vdev_work(&v->d), 0);	/* not the loop thread's */
	/* An in-band EVENT_AVAIL for it (a guest may send one for any queue)
	 * must not have the loop thread serve it beside its thread. */
	event_avail(v, 0);
	assert_int_equal(v->m.notifies[0], 0);
	xvb_vdev_kick(&v->d, 0);
	assert_int_equal(v->m.notifies[0], 0);
	xvb_vdev_quiet(&v->d);
	assert_false(v->d.vq[0].quiet);
	/* The queue thread's call: budget 1, then another turn. */
	offer(v, 1, 0x3100, 8);
	assert_false(xvb_vdev_serve(&v->d, 0, 1, &taken));	/* the dummy takes nothing */
	assert_int_equal(taken, 0);
	assert_int_equal(v->m.notifies[0], 1);
	v->d.vq[0].budgeted = true;
	v->d.vq[0].budget = 1;
	assert_int_equal(xvb_pop(&v->d, 0, &req), 1);
	xvb_push(&v->d, &req, 0);
	assert_int_equal(xvb_pop(&v->d, 0, &req), 0);	/* budget spent, work left */
	assert_true(v->d.vq[0].starved);
	v->d.vq[0].budgeted = v->d.vq[0].starved = false;
	assert_int_equal(xvb_pop(&v->d, 0, &req), 1);
	xvb_push(&v->d, &req, 0);

	/* The avail index runs a whole queue ahead: the queue stops taking,
	 * the transport hears of it, the device is not broken yet. */
	((struct vring_avail *)(v->fb->mem + AVAIL_GPA))->idx = htole16(v->avail_idx + QSZ + 1);
	assert_int_equal(xvb_pop(&v->d, 0, &req), -EIO);
	assert_int_equal(v->tp.broken[0], 1);
	assert_non_null(v->d.vq[0].dead);
	assert_int_equal(v->tp.sends, 0);
	assert_false(xvb_vdev_broken(&v->d));
	assert_int_equal(xvb_pop(&v->d, 0, &req), -EIO);	/* dead stays dead */
	assert_int_equal(v->tp.broken[0], 1);
	xvb_needs_reset(&v->d, v->d.vq[0].dead);		/* the loop thread's part */
	assert_int_equal(v->tp.sends, 1);
	assert_true(xvb_vdev_broken(&v->d));

	/* Reset: the queue comes back before the model resets, once. */
	assert_int_equal(set_status(v, 0), 0);
	assert_int_equal(v->tp.stops[0], 1);
	assert_int_equal(v->tp.resets_at_stop, 0);
	assert_int_equal(v->m.resets, 1);
	assert_null(v->d.vq[0].dead);
	/* Again, and FAILED this time. */
	v->avail_idx = 0;
	((struct vring_avail *)(v->fb->mem + AVAIL_GPA))->idx = 0;
	bring_up(v);
	assert_int_equal(v->tp.starts[0], 2);
	set_status(v, S_ACK | S_DRIVER | S_FEAT | S_OK | VMSG_STATUS_FAILED);
	assert_int_equal(v->tp.stops[0], 2);
	assert_int_equal(v->tp.resets_at_stop, 1);
	assert_int_equal(v->m.resets, 2);
	xvb_vdev_stop_queues(&v->d);			/* nothing left to take back */
	assert_int_equal(v->tp.stops[0], 2);
	assert_int_equal(set_status(v, 0), 0);
	assert_int_equal(v->tp.stops[0], 2);
	v->d.vq[0].remote = false;
}

/* ---- tests: message layout revision 2 ---- */

static void set_vqueue_flags(struct vd *v, uint32_t q, uint32_t flags, uint32_t size,
			     uint64_t desc, uint64_t drv, uint64_t dev)
{
	struct vmsg_set_vqueue_req p = {
		.index = htole32(q), .flags = htole32(flags), .size = htole32(size),
		.desc_addr = htole64(desc), .driver_addr = htole64(drv),
		.device_addr = htole64(dev),
	};

	assert_int_equal(call(v, VMSG_SET_VQUEUE, &p, sizeof(p)), 8);
}

static uint32_t vq_flags(struct vd *v, uint32_t q)
{
	get_vqueue(v, q, NULL);
	return resp32(v, offsetof(struct vmsg_get_vqueue_resp, flags));
}

static void test_v2_device_info(void **state)
{
	struct vd *v = *state;
	uint8_t zero[16] = { 0 };

	v->d.msg_rev = XVMSG_MSG_REV_2;
	assert_int_equal(call(v, VMSG_GET_DEVICE_INFO, NULL, 0), 52);
	assert_int_equal(resp32(v, 0), 4);			/* device_id */
	assert_int_equal(resp32(v, 4), 0x584d5658);		/* vendor_id */
	assert_memory_equal(v->resp->payload + 8, zero, 16);	/* nil device_uuid */
	assert_int_equal(resp32(v, 24), 2);			/* num_feature_blocks */
	assert_int_equal(resp32(v, 28), CFG_SIZE);
	assert_int_equal(resp32(v, 32), NQUEUES);
	assert_int_equal(resp32(v, 36), 0);			/* admin_vq_start */
	assert_int_equal(resp32(v, 40), 0);			/* admin_vq_count */
	/* The same device in revision 1: 24 bytes, bits not blocks. */
	v->d.msg_rev = XVMSG_MSG_REV_1;
	assert_int_equal(call(v, VMSG_GET_DEVICE_INFO, NULL, 0), 32);
	assert_int_equal(resp32(v, 8), 64);
}

static void test_v2_get_shm(void **state)
{
	struct vd *v = *state;
	struct vmsg_vq_index p = { .index = htole32(3) };

	v->d.msg_rev = XVMSG_MSG_REV_2;
	assert_int_equal(call(v, VMSG_GET_SHM, &p, sizeof(p)), 8 + 24);
	assert_int_equal(resp32(v, 0), 3);			/* shmid */
	assert_int_equal(resp64(v, 8), 0);			/* length: none */
	assert_int_equal(resp64(v, 16), 0);
	v->d.msg_rev = XVMSG_MSG_REV_1;
	assert_int_equal(call(v, VMSG_GET_SHM, &p, sizeof(p)), 8 + 12);
	assert_int_equal(resp32(v, 0), 3);
	assert_int_equal(resp32(v, 4), 0);
}

/* flags bits 1:0: KEEP_DISABLED configures without enabling, ENABLE
 * enables, KEEP keeps; only enabled queues start at DRIVER_OK. */
static void test_v2_set_vqueue_state(void **state)
{
	struct vd *v = *state;
	uint64_t d0 = pool_addr(DESC_GPA), a0 = pool_addr(AVAIL_GPA), u0 = pool_addr(USED_GPA);
	uint64_t d1 = pool_addr(0x1000), a1 = pool_addr(0x1400), u1 = pool_addr(0x1800);

	v->d.msg_rev = XVMSG_MSG_REV_2;
	assert_int_equal(negotiate(v, negotiated), S_ACK | S_DRIVER | S_FEAT);
	assert_int_equal(vq_flags(v, 0), 0);
	set_vqueue_flags(v, 0, VMSG_SET_VQ_KEEP_DISABLED, QSZ, d0, a0, u0);
	assert_int_equal(get_vqueue(v, 0, NULL), QSZ);
	assert_int_equal(vq_flags(v, 0), 0);			/* configured, disabled */
	set_vqueue_flags(v, 0, VMSG_SET_VQ_ENABLE, QSZ, d0, a0, u0);
	assert_int_equal(vq_flags(v, 0), VMSG_VQ_F_ENABLED);
	set_vqueue_flags(v, 0, VMSG_SET_VQ_KEEP, QSZ / 2, d0, a0, u0);
	assert_int_equal(get_vqueue(v, 0, NULL), QSZ / 2);
	assert_int_equal(vq_flags(v, 0), VMSG_VQ_F_ENABLED);	/* kept */
	/* Queue 1 configured but left disabled: not started at DRIVER_OK. */
	set_vqueue_flags(v, 1, VMSG_SET_VQ_KEEP_DISABLED, QSZ, d1, a1, u1);
	assert_int_equal(set_status(v, S_ACK | S_DRIVER | S_FEAT | S_OK),
			 S_ACK | S_DRIVER | S_FEAT | S_OK);
	assert_true(v->d.vq[0].live);
	assert_false(v->d.vq[1].live);
	assert_int_equal(vq_flags(v, 1), 0);
}

/* Bits 2..5 keep the current size or address; state 3 and an enabled
 * queue without a size are refused and change nothing. */
static void test_v2_set_vqueue_ignore_and_refuse(void **state)
{
	struct vd *v = *state;
	uint64_t d0 = pool_addr(DESC_GPA), a0 = pool_addr(AVAIL_GPA), u0 = pool_addr(USED_GPA);

	v->d.msg_rev = XVMSG_MSG_REV_2;
	assert_int_equal(negotiate(v, negotiated), S_ACK | S_DRIVER | S_FEAT);
	set_vqueue_flags(v, 0, VMSG_SET_VQ_ENABLE, QSZ, d0, a0, u0);
	/* Everything ignored but the device area, which moves. */
	set_vqueue_flags(v, 0, VMSG_SET_VQ_KEEP | VMSG_SET_VQ_IGNORE_SIZE |
			 VMSG_SET_VQ_IGNORE_DESC | VMSG_SET_VQ_IGNORE_DRIVER, 0, 0, 0,
			 pool_addr(0xc00));
	assert_int_equal(get_vqueue(v, 0, NULL), QSZ);
	assert_true(resp64(v, offsetof(struct vmsg_get_vqueue_resp, desc_addr)) == d0);
	assert_true(resp64(v, offsetof(struct vmsg_get_vqueue_resp, driver_addr)) == a0);
	assert_true(resp64(v, offsetof(struct vmsg_get_vqueue_resp, device_addr)) ==
		    pool_addr(0xc00));
	assert_int_equal(vq_flags(v, 0), VMSG_VQ_F_ENABLED);
	/* State 3: refused. */
	set_vqueue_flags(v, 0, 0x3, QSZ / 2, d0, a0, u0);
	assert_int_equal(get_vqueue(v, 0, NULL), QSZ);
	assert_true(resp64(v, offsetof(struct vmsg_get_vqueue_resp, device_addr)) ==
		    pool_addr(0xc00));
	/* Enable with size 0: refused, the queue stays as it was. */
	set_vqueue_flags(v, 0, VMSG_SET_VQ_ENABLE, 0, d0, a0, u0);
	assert_int_equal(get_vqueue(v, 0, NULL), QSZ);
	assert_int_equal(vq_flags(v, 0), VMSG_VQ_F_ENABLED);
	/* Disable with size 0: accepted, addresses shown as last accepted. */
	set_vqueue_flags(v, 0, VMSG_SET_VQ_KEEP_DISABLED, 0, 0, 0, 0);
	assert_int_equal(get_vqueue(v, 0, NULL), 0);
	assert_int_equal(vq_flags(v, 0), 0);
	assert_true(resp64(v, offsetof(struct vmsg_get_vqueue_resp, desc_addr)) == d0);
	/* Reset forgets enabled state with everything else. */
	set_vqueue_flags(v, 0, VMSG_SET_VQ_ENABLE, QSZ, d0, a0, u0);
	assert_int_equal(set_status(v, 0), 0);
	assert_int_equal(v->d.vq_on, 0);
	assert_int_equal(vq_flags(v, 0), 0);
}

/* Revision 1 ignores the word that revision 2 calls flags, and never
 * reports flags in GET_VQUEUE. */
static void test_v1_ignores_flags(void **state)
{
	struct vd *v = *state;
	uint64_t d0 = pool_addr(DESC_GPA), a0 = pool_addr(AVAIL_GPA), u0 = pool_addr(USED_GPA);

	assert_int_equal(v->d.msg_rev, XVMSG_MSG_REV_1);
	assert_int_equal(negotiate(v, negotiated), S_ACK | S_DRIVER | S_FEAT);
	set_vqueue_flags(v, 0, VMSG_SET_VQ_KEEP_DISABLED | 0xfffffff0u, QSZ, d0, a0, u0);
	assert_int_equal(get_vqueue(v, 0, NULL), QSZ);		/* a size enables */
	assert_int_equal(vq_flags(v, 0), 0);			/* reserved: 0 */
	assert_int_equal(set_status(v, S_ACK | S_DRIVER | S_FEAT | S_OK),
			 S_ACK | S_DRIVER | S_FEAT | S_OK);
	assert_true(v->d.vq[0].live);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_device_info),
		T(test_device_features),
		T(test_device_features_top_of_range),
		T(test_set_features_top_of_range),
		T(test_set_features_before_driver),
		T(test_features_ok_rules),
		T(test_features_beyond_64_refused),
		T(test_status_cannot_clear_bits),
		T(test_driver_ok_needs_features_ok),
		T(test_get_vqueue),
		T(test_set_vqueue_rejects),
		T(test_set_vqueue_refused_changes_nothing),
		T(test_get_config),
		T(test_set_config),
		T(test_set_config_read_only),
		T(test_truncated_payloads),
		T(test_token_zero),
		T(test_event_avail),
		T(test_full_init_and_needs_reset),
		T(test_ring_broken_by_driver),
		T(test_chain_budget),
		T(test_remote_queue),
		T(test_quiet_arm),
		T(test_retry_later),
		T(test_v2_device_info),
		T(test_v2_get_shm),
		T(test_v2_set_vqueue_state),
		T(test_v2_set_vqueue_ignore_and_refuse),
		T(test_v1_ignores_flags),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
