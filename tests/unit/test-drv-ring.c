// SPDX-License-Identifier: MIT
/*
 * Unit tests of the driver library's pure parts, no backend needed: the
 * message rings against an in-test peer, notification suppression, the unit
 * and pool allocators, grant-mode leaks, and the split virtqueue against a
 * fake device that consumes descriptors here (including malformed used
 * entries, which must mark the device broken, never crash).
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

#include <xvmsg/wire.h>

#include "drv-priv.h"

/* ---- fixtures ---------------------------------------------------------- */

static const struct xvd_logger quiet = { NULL, NULL, -1 };

/* A fake bus: a grant table in plain memory. */
struct fake_bus {
	struct drv_bus bus;
	struct xvd_ualloc refs;
	struct { uint64_t gfn; bool ro, on; } gnt[256];
	uint32_t busy_ref;	/* revoke of this ref reports -EBUSY */
	const char *store_val;	/* what every backend key reads as (NULL: absent) */
};

static int fb_gnt_alloc(struct drv_bus *b, unsigned int n, uint32_t *first)
{
	int64_t r = xvd_ua_alloc(&((struct fake_bus *)b)->refs, n, 1);

	if (r < 0)
		return -ENOSPC;
	*first = (uint32_t)r;
	return 0;
}

static void fb_gnt_free(struct drv_bus *b, uint32_t first, unsigned int n)
{
	xvd_ua_free(&((struct fake_bus *)b)->refs, first);
}

static int fb_gnt_grant(struct drv_bus *b, uint32_t ref, uint64_t gfn, bool ro)
{
	struct fake_bus *f = (struct fake_bus *)b;

	assert_true(ref >= 8 && ref < 256);
	assert_false(f->gnt[ref].on);
	f->gnt[ref].gfn = gfn;
	f->gnt[ref].ro = ro;
	f->gnt[ref].on = true;
	return 0;
}

static int fb_gnt_revoke(struct drv_bus *b, uint32_t ref)
{
	struct fake_bus *f = (struct fake_bus *)b;

	if (ref == f->busy_ref) {
		xvd_ua_leak(&f->refs, ref, 1);
		return -EBUSY;
	}
	f->gnt[ref].on = false;
	return 0;
}

static int fb_store_read(struct drv_bus *b, unsigned int devid, const char *key, char *buf,
			 size_t len)
{
	const char *v = ((struct fake_bus *)b)->store_val;

	if (!v)
		return -ENOENT;
	if (strlen(v) >= len)
		return -E2BIG;
	strcpy(buf, v);
	return 0;
}

static int fb_evtchn_nop(struct drv_bus *b, uint32_t port)
{
	return 0;
}

static int fb_dispatch(struct drv_bus *b)
{
	return 0;
}

static const struct drv_bus_ops fake_ops = {
	.name = "fake", .gnt_alloc = fb_gnt_alloc, .gnt_free = fb_gnt_free,
	.gnt_grant = fb_gnt_grant, .gnt_revoke = fb_gnt_revoke, .store_read = fb_store_read,
	.evtchn_ack = fb_evtchn_nop, .evtchn_notify = fb_evtchn_nop, .dispatch = fb_dispatch,
};

#define POOL_PAGES	4
#define POOL_REF	100
#define RAM_PAGES	16

struct fix {
	struct fake_bus fb;
	struct xvd_stats st;
	struct xvd_ram ram;
	struct xvd_dma dma;
	uint8_t *pool;
	struct xvd_vq vq;
	int err;
};

static struct fix *fix_new(int mode)
{
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->fb.bus.ops = &fake_ops;
	f->fb.busy_ref = UINT32_MAX;
	assert_int_equal(xvd_ua_init(&f->fb.refs, 256), 0);
	xvd_ua_leak(&f->fb.refs, 0, 8);
	f->ram.mem.va = aligned_alloc(4096, RAM_PAGES * 4096);
	assert_non_null(f->ram.mem.va);
	memset(f->ram.mem.va, 0, RAM_PAGES * 4096);
	f->ram.mem.pages = RAM_PAGES;
	f->ram.mem.gfn = 0x40;
	assert_int_equal(xvd_ua_init(&f->ram.ua, RAM_PAGES * 8), 0);
	assert_int_equal(xvd_dma_init(&f->dma, mode, &f->fb.bus, &f->ram, &f->st, &quiet), 0);
	f->pool = calloc(POOL_PAGES, 4096);
	assert_non_null(f->pool);
	if (mode == XVMSG_MODE_POOL)
		assert_int_equal(xvd_dma_pool_init(&f->dma, f->pool, POOL_PAGES, POOL_REF), 0);
	return f;
}

static void fix_free(struct fix *f)
{
	if (f->vq.chain)
		xvd_vq_teardown(&f->vq);
	xvd_dma_destroy(&f->dma);
	xvd_ua_destroy(&f->ram.ua);
	xvd_ua_destroy(&f->fb.refs);
	free(f->ram.mem.va);
	free(f->pool);
	free(f);
}

/* Device view of a bus address. */
static uint8_t *dev_ptr(struct fix *f, uint64_t addr)
{
	if (XVMSG_ADDR_IS_GRANT(addr) && f->dma.mode == XVMSG_MODE_POOL)
		return f->pool + (XVMSG_ADDR_PFN(addr) - POOL_REF) * 4096 + XVMSG_ADDR_OFF(addr);
	if (XVMSG_ADDR_IS_GRANT(addr)) {
		uint32_t ref = (uint32_t)XVMSG_ADDR_PFN(addr);

		assert_true(f->fb.gnt[ref].on);
		return (uint8_t *)f->ram.mem.va + (f->fb.gnt[ref].gfn - f->ram.mem.gfn) * 4096 +
		       XVMSG_ADDR_OFF(addr);
	}
	return (uint8_t *)f->ram.mem.va + (addr - (f->ram.mem.gfn << 12));
}

/* ---- message rings ----------------------------------------------------- */

static struct xvmsg_msg_page *page_new(void)
{
	struct xvmsg_msg_page *p = aligned_alloc(4096, sizeof(*p));

	assert_non_null(p);
	xvmsg_msg_page_init(p);
	assert_int_equal(le32toh(p->magic), XVMSG_MSG_PAGE_MAGIC);
	return p;
}

static void mk_msg(struct vmsg *m, uint8_t type, uint8_t id, uint16_t token, uint16_t psize)
{
	memset(m, 0, sizeof(*m));
	m->hdr.type = type;
	m->hdr.msg_id = id;
	m->hdr.dev_num = htole16(XVMSG_DEV_NUM);
	m->hdr.token = htole16(token);
	m->hdr.msg_size = htole16(8 + psize);
}

/* The in-test backend consuming d2b.  Returns 1 and the message, or 0. */
static int peer_get(struct xvmsg_msg_page *p, uint32_t *cons, struct vmsg *m)
{
	uint32_t prod = le32toh(p->d2b.prod);

	if (prod == *cons)
		return 0;
	*m = p->d2b_slot[*cons % XVMSG_RING_SLOTS];
	p->d2b.cons = htole32(++*cons);
	return 1;
}

static void peer_put(struct xvmsg_msg_page *p, uint32_t *prod, const struct vmsg *m)
{
	p->b2d_slot[*prod % XVMSG_RING_SLOTS] = *m;
	p->b2d.prod = htole32(++*prod);
}

static void test_mring_producer(void **state)
{
	struct xvmsg_msg_page *p = page_new();
	struct xvd_mring r = { &p->d2b, p->d2b_slot, 0 };
	uint32_t cons = 0;
	struct vmsg m, got;
	bool notify;

	/* First message is signalled (cons_event starts at 1), then suppressed. */
	mk_msg(&m, 0, VMSG_GET_DEVICE_INFO, 1, 0);
	assert_int_equal(xvd_mring_put(&r, &m, &notify), 0);
	assert_true(notify);
	mk_msg(&m, 0, VMSG_GET_DEVICE_INFO, 2, 0);
	assert_int_equal(xvd_mring_put(&r, &m, &notify), 0);
	assert_false(notify);
	/* Peer drains and re-arms: the next message is signalled again. */
	assert_int_equal(peer_get(p, &cons, &got), 1);
	assert_int_equal(le16toh(got.hdr.token), 1);
	assert_int_equal(peer_get(p, &cons, &got), 1);
	assert_int_equal(le16toh(got.hdr.token), 2);
	p->d2b.cons_event = htole32(cons + 1);
	for (int i = 0; i < XVMSG_RING_SLOTS; i++) {
		mk_msg(&m, 0, VMSG_GET_DEVICE_STATUS, (uint16_t)(10 + i), 0);
		assert_int_equal(xvd_mring_put(&r, &m, &notify), 0);
		assert_int_equal(notify, i == 0);
	}
	/* Full: -EAGAIN, and prod_event asks for a wake-up at the next slot. */
	assert_int_equal(xvd_mring_put(&r, &m, &notify), -EAGAIN);
	assert_int_equal(le32toh(p->d2b.prod_event), cons + 1);
	assert_int_equal(peer_get(p, &cons, &got), 1);
	assert_int_equal(le16toh(got.hdr.token), 10);
	assert_int_equal(xvd_mring_put(&r, &m, &notify), 0);
	/* A cons that runs ahead of prod is a broken peer. */
	p->d2b.cons = htole32(r.idx + 1);
	assert_int_equal(xvd_mring_put(&r, &m, &notify), -EIO);
	free(p);
}

static void test_mring_consumer(void **state)
{
	struct xvmsg_msg_page *p = page_new();
	struct xvd_mring r = { &p->b2d, p->b2d_slot, 0 };
	uint32_t prod = 0;
	struct vmsg m, got;
	bool notify;

	assert_int_equal(xvd_mring_get(&r, &got, &notify), 0);
	assert_int_equal(le32toh(p->b2d.cons_event), 1);
	for (uint16_t i = 1; i <= 3; i++) {
		mk_msg(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_STATUS, i, 4);
		peer_put(p, &prod, &m);
		/* The peer notifies by the same rule the driver uses. */
		assert_int_equal(xvmsg_ring_need_notify(prod - 1, prod, le32toh(p->b2d.cons_event)),
				 i == 1);
	}
	for (uint16_t i = 1; i <= 3; i++) {
		assert_int_equal(xvd_mring_get(&r, &got, &notify), 1);
		assert_int_equal(le16toh(got.hdr.token), i);
		assert_false(notify);
	}
	assert_int_equal(xvd_mring_get(&r, &got, &notify), 0);
	assert_int_equal(le32toh(p->b2d.cons_event), 4);
	assert_int_equal(le32toh(p->b2d.cons), 3);
	/* A producer waiting for space (prod_event) is woken by our cons. */
	p->b2d.prod_event = htole32(4);
	peer_put(p, &prod, &m);
	assert_int_equal(xvd_mring_get(&r, &got, &notify), 1);
	assert_true(notify);
	/* prod more than 8 ahead: corrupt. */
	p->b2d.prod = htole32(r.idx + XVMSG_RING_SLOTS + 1);
	assert_int_equal(xvd_mring_get(&r, &got, &notify), -EIO);
	free(p);
}

static void test_mring_wrap(void **state)
{
	struct xvmsg_msg_page *p = page_new();
	struct xvd_mring d = { &p->d2b, p->d2b_slot, 0xfffffffcu };
	uint32_t cons = 0xfffffffcu;
	struct vmsg m, got;
	bool notify;

	p->d2b.prod = p->d2b.cons = htole32(cons);
	p->d2b.cons_event = htole32(cons + 1);
	for (uint16_t i = 0; i < 8; i++) {
		mk_msg(&m, 0, VMSG_GET_CONFIG, (uint16_t)(i + 1), 8);
		assert_int_equal(xvd_mring_put(&d, &m, &notify), 0);
		assert_int_equal(notify, i == 0);
	}
	assert_int_equal(xvd_mring_put(&d, &m, &notify), -EAGAIN);
	for (uint16_t i = 0; i < 8; i++) {
		assert_int_equal(peer_get(p, &cons, &got), 1);
		assert_int_equal(le16toh(got.hdr.token), i + 1);
	}
	assert_int_equal(cons, 4);
	free(p);
}

static void test_notify_math(void **state)
{
	/* Xen rule: notify iff event in (old, new]. */
	assert_true(xvmsg_ring_need_notify(0, 1, 1));
	assert_false(xvmsg_ring_need_notify(1, 2, 1));
	assert_true(xvmsg_ring_need_notify(1, 5, 3));
	assert_true(xvmsg_ring_need_notify(1, 5, 5));
	assert_false(xvmsg_ring_need_notify(1, 5, 6));
	assert_true(xvmsg_ring_need_notify(0xfffffffeu, 2, 0));
	assert_false(xvmsg_ring_need_notify(0xfffffffeu, 2, 3));
	/* virtio rule: notify iff event in [old, new). */
	assert_true(vring_need_event(0, 1, 0));
	assert_false(vring_need_event(1, 1, 0));
	assert_true(vring_need_event(3, 5, 1));
	assert_false(vring_need_event(5, 5, 1));
	assert_true(vring_need_event(0xffff, 1, 0xfffe));
}

/*
 * The userspace driver judges what the backend sends exactly as the guest
 * module does (include/xvmsg/wire.h): the same xenstore numbers, the same
 * verdict on every b2d message.
 */
static void test_be_numbers_as_module(void **state)
{
	static const char *const vals[] = {
		"0", "12", "4294967295", "4294967296", "+12", "-1", " 12", "12 ", "0x10",
		"", "007", "99999999999999999999",
	};
	struct fake_bus fb = { .bus.ops = &fake_ops };
	struct xvd_domain d = { .bus = &fb.bus, .log = quiet };
	struct xvd_dev dev = { .dom = &d, .name = "t" };
	unsigned int differ = 0;

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint32_t got = 77, want = 77;
		int r, rw = xvmsg_parse_u32(vals[i], &want);

		fb.store_val = vals[i];
		r = xvd_be_read_u32(&dev, XVMSG_XS_MAX_QUEUES, &got);
		if (r != rw || (r == 0 && got != want)) {
			print_error("backend key \"%s\": the driver says %d (%u), the module %d\n",
				    vals[i], r, got, rw);
			differ++;
		}
	}
	assert_int_equal(differ, 0);
	fb.store_val = NULL;
	assert_int_equal(xvd_be_read_u32(&dev, XVMSG_XS_MAX_QUEUES, &(uint32_t){ 0 }), -ENOENT);
}

struct b2d_fix {
	struct fake_bus fb;
	struct xvd_domain d;
	struct xvd_dev dev;
	uint32_t prod;
};

static void b2d_fix_init(struct b2d_fix *f)
{
	memset(f, 0, sizeof(*f));
	f->fb.bus.ops = &fake_ops;
	f->d.bus = &f->fb.bus;
	f->d.log = quiet;
	f->dev.dom = &f->d;
	snprintf(f->dev.name, sizeof(f->dev.name), "t");
	f->dev.page = page_new();
	f->dev.b2d = (struct xvd_mring){ &f->dev.page->b2d, f->dev.page->b2d_slot, 0 };
	f->dev.d2b = (struct xvd_mring){ &f->dev.page->d2b, f->dev.page->d2b_slot, 0 };
}

/* Deliver m to the driver while it waits for (token, id); check that what
 * it does matches the shared verdict. */
static void b2d_case_rev(const struct vmsg *m, uint16_t token, uint8_t id, bool resp_ready,
			 unsigned int rev)
{
	enum xvmsg_verdict v = xvmsg_classify(m, resp_ready ? 0 : token, id, rev);
	struct b2d_fix f;
	uint64_t bad;
	unsigned int ev;

	b2d_fix_init(&f);
	f.dev.wait_token = token;
	f.dev.wait_id = id;
	f.dev.resp_ready = resp_ready;
	f.dev.msg_rev = rev;
	memset(&f.dev.resp, 0xa5, sizeof(f.dev.resp));
	bad = f.dev.st.msgs_bad;
	ev = f.dev.cfg_events;
	peer_put(f.dev.page, &f.prod, m);
	xvd_dev_service(&f.dev);
	switch (v) {
	case XVMSG_V_BAD:
	case XVMSG_V_STALE:
		if (f.dev.st.msgs_bad != bad + 1)
			fail_msg("message type %#x id %#x token %u size %u: the module discards "
				 "it as %s, the driver does not count it",
				 m->hdr.type, m->hdr.msg_id, le16toh(m->hdr.token),
				 le16toh(m->hdr.msg_size), v == XVMSG_V_BAD ? "bad" : "stale");
		assert_int_equal(f.dev.err, 0);
		assert_int_equal(f.dev.resp.hdr.type, 0xa5);	/* no response taken */
		break;
	case XVMSG_V_RESPONSE:
		assert_true(f.dev.resp_ready);
		assert_memory_equal(&f.dev.resp, m, sizeof(*m));
		assert_int_equal(f.dev.err, 0);
		break;
	case XVMSG_V_RESP_BROKEN:
		assert_int_equal(f.dev.err, -EIO);
		break;
	case XVMSG_V_EVENT_CONFIG:
		assert_int_equal(f.dev.cfg_events, ev + 1);
		assert_int_equal(f.dev.err, 0);
		break;
	case XVMSG_V_EVENT_USED:
	case XVMSG_V_BUS:
		assert_int_equal(f.dev.err, 0);
		assert_int_equal(f.dev.resp.hdr.type, 0xa5);
		break;
	}
	free(f.dev.page);
}

static void b2d_case(const struct vmsg *m, uint16_t token, uint8_t id, bool resp_ready)
{
	b2d_case_rev(m, token, id, resp_ready, XVMSG_MSG_REV_1);
	b2d_case_rev(m, token, id, resp_ready, XVMSG_MSG_REV_2);
}

static void test_b2d_verdicts_as_module(void **state)
{
	struct vmsg m;

	/* Responses whose size depends on the layout revision: one is the
	 * response in revision 1 and too short (the device broken) in 2. */
	mk_msg(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 5, 24);
	b2d_case(&m, 5, VMSG_GET_DEVICE_INFO, false);
	mk_msg(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 5, 44);
	b2d_case(&m, 5, VMSG_GET_DEVICE_INFO, false);
	mk_msg(&m, VMSG_TYPE_RESPONSE, VMSG_GET_SHM, 5, 12);
	b2d_case(&m, 5, VMSG_GET_SHM, false);

	mk_msg(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_STATUS, 5, 4);
	b2d_case(&m, 5, VMSG_GET_DEVICE_STATUS, false);		/* the response */
	b2d_case(&m, 5, VMSG_GET_DEVICE_STATUS, true);		/* a second one: stale */
	b2d_case(&m, 6, VMSG_GET_DEVICE_STATUS, false);		/* another token */
	b2d_case(&m, 0, VMSG_GET_DEVICE_STATUS, false);		/* nobody waits */
	b2d_case(&m, 5, VMSG_GET_DEVICE_INFO, false);		/* wrong id */
	mk_msg(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_STATUS, 5, 3);
	b2d_case(&m, 5, VMSG_GET_DEVICE_STATUS, false);		/* too short */
	mk_msg(&m, 0, VMSG_EVENT_CONFIG, 0, 16);
	b2d_case(&m, 5, VMSG_GET_DEVICE_STATUS, false);
	mk_msg(&m, 0, VMSG_EVENT_CONFIG, 0, 15);
	b2d_case(&m, 5, VMSG_GET_DEVICE_STATUS, false);		/* short event */
	mk_msg(&m, 0, VMSG_EVENT_CONFIG, 3, 16);
	b2d_case(&m, 5, VMSG_GET_DEVICE_STATUS, false);		/* event with a token */
	mk_msg(&m, 0, VMSG_EVENT_USED, 0, 4);
	b2d_case(&m, 5, VMSG_GET_DEVICE_STATUS, false);
	mk_msg(&m, 0, VMSG_EVENT_AVAIL, 0, 8);
	b2d_case(&m, 5, VMSG_GET_DEVICE_STATUS, false);		/* the driver's event */
	mk_msg(&m, 0, 0x50, 0, 0);
	b2d_case(&m, 5, VMSG_GET_DEVICE_STATUS, false);		/* unknown event */
	mk_msg(&m, 0, VMSG_GET_DEVICE_STATUS, 5, 4);
	b2d_case(&m, 5, VMSG_GET_DEVICE_STATUS, false);		/* a request */
	mk_msg(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_STATUS, 5, 4);
	m.hdr.dev_num = htole16(2);
	b2d_case(&m, 5, VMSG_GET_DEVICE_STATUS, false);		/* another device */
	m.hdr.dev_num = htole16(XVMSG_DEV_NUM);
	m.hdr.msg_size = htole16(VMSG_MAX_SIZE + 1);
	b2d_case(&m, 5, VMSG_GET_DEVICE_STATUS, false);		/* oversized */
	mk_msg(&m, VMSG_TYPE_BUS, VMSG_BUS_PING, 0, 0);
	b2d_case(&m, 5, VMSG_GET_DEVICE_STATUS, false);
}

/* ---- allocators -------------------------------------------------------- */

static void test_ualloc(void **state)
{
	struct xvd_ualloc a;

	assert_int_equal(xvd_ua_init(&a, 100), 0);
	assert_int_equal(xvd_ua_alloc(&a, 3, 1), 0);
	assert_int_equal(xvd_ua_alloc(&a, 8, 8), 8);		/* aligned */
	assert_int_equal(xvd_ua_alloc(&a, 100, 1), -ENOMEM);
	assert_int_equal(xvd_ua_free(&a, 0), 3);
	assert_int_equal(xvd_ua_free(&a, 0), 0);		/* double free: ignored */
	assert_int_equal(xvd_ua_free(&a, 9), 0);		/* not a start */
	xvd_ua_leak(&a, 9, 1);
	assert_int_equal(xvd_ua_free(&a, 8), 8);
	assert_true(xvd_ua_is_busy(&a, 9));			/* leaked stays busy */
	assert_false(xvd_ua_is_busy(&a, 10));
	for (int i = 0; i < 200; i++) {				/* never handed out again */
		int64_t s = xvd_ua_alloc(&a, 2, 1);

		if (s < 0)
			break;
		assert_false(s <= 9 && s + 2 > 9);
	}
	xvd_ua_destroy(&a);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void test_pool_slots(void **state)
{
	struct fix *f = fix_new(XVMSG_MODE_POOL);
	static uint8_t src[POOL_PAGES * 4096];
	struct xvd_map maps[64], in;
	uint8_t dst[4096];
	unsigned int n = 0;
	int r;

	memset(src, 0xa5, sizeof(src));
	/* Device-readable: copied in, address within the pool's grant range. */
	assert_int_equal(xvd_dma_map(&f->dma, src, 1000, false, &maps[0]), 0);
	assert_true(XVMSG_ADDR_IS_GRANT(maps[0].addr));
	assert_int_equal(XVMSG_ADDR_PFN(maps[0].addr), POOL_REF);
	assert_memory_equal(dev_ptr(f, maps[0].addr), src, 1000);
	assert_int_equal(f->st.bounce_in, 1000);
	/* Device-writable: only the used length comes back. */
	memset(dst, 0x11, sizeof(dst));
	assert_int_equal(xvd_dma_map(&f->dma, dst, 4096, true, &in), 0);
	assert_true(all_zero(dev_ptr(f, in.addr), 4096));	/* no stale data */
	memset(dev_ptr(f, in.addr), 0x77, 4096);
	xvd_dma_unmap(&f->dma, &in, 100);
	assert_int_equal(dst[0], 0x77);
	assert_int_equal(dst[99], 0x77);
	assert_int_equal(dst[100], 0x11);
	assert_int_equal(f->st.bounce_out, 100);
	/* Exhaustion: -ENOMEM, counted, nothing corrupted. */
	n = 1;
	while ((r = xvd_dma_map(&f->dma, src, 512, false, &maps[n])) == 0)
		n++;
	assert_int_equal(r, -ENOMEM);
	assert_int_equal(n, POOL_PAGES * 8 - 1);		/* 1000 bytes took 2 units */
	assert_true(f->st.pool_full >= 1);
	for (unsigned int i = 0; i < n; i++)
		xvd_dma_unmap(&f->dma, &maps[i], 0);
	/* Zero on free: the backend sees nothing of ours any more. */
	assert_true(all_zero(f->pool, POOL_PAGES * 4096));
	assert_int_equal(xvd_dma_map(&f->dma, src, POOL_PAGES * 4096, false, &maps[0]), 0);
	xvd_dma_unmap(&f->dma, &maps[0], 0);
	fix_free(f);
}

static void test_grant_mode(void **state)
{
	struct fix *f = fix_new(XVMSG_MODE_GRANT);
	struct xvd_map m;
	uint8_t stack[16];
	void *buf;
	size_t pg;

	assert_int_equal(xvd_dma_map(&f->dma, stack, sizeof(stack), false, &m), -EINVAL);
	assert_int_equal(xvd_ram_get(&f->ram, 8192, &buf), 0);
	/* Crossing pages: consecutive refs, read-only for device-readable. */
	assert_int_equal(xvd_dma_map(&f->dma, (uint8_t *)buf + 100, 5000, false, &m), 0);
	assert_int_equal(m.nref, 2);
	assert_int_equal(XVMSG_ADDR_OFF(m.addr), 100);
	assert_true(f->fb.gnt[m.first].ro && f->fb.gnt[m.first + 1].ro);
	assert_int_equal(f->fb.gnt[m.first + 1].gfn, f->fb.gnt[m.first].gfn + 1);
	assert_ptr_equal(dev_ptr(f, m.addr), (uint8_t *)buf + 100);
	/* The backend still maps the second page: leak ref and page. */
	f->fb.busy_ref = m.first + 1;
	xvd_dma_unmap(&f->dma, &m, 0);
	assert_int_equal(f->st.revokes, 2);
	assert_int_equal(f->st.revoke_busy, 1);
	pg = ((uint8_t *)buf - (uint8_t *)f->ram.mem.va) / 4096 + 1;
	xvd_ram_put(&f->ram, buf);
	assert_true(xvd_ua_is_busy(&f->ram.ua, (uint32_t)(pg * 8)));
	assert_false(xvd_ua_is_busy(&f->ram.ua, (uint32_t)((pg - 1) * 8)));
	assert_true(xvd_ua_is_busy(&f->fb.refs, f->fb.busy_ref));
	fix_free(f);
}

/* ---- virtqueue with a fake device ------------------------------------- */

static void vq_new(struct fix *f, unsigned int size)
{
	assert_int_equal(xvd_vq_setup(&f->vq, 0, size, &f->dma, 1, &f->err, &f->st, &quiet), 0);
}

/* The fake device takes the next available chain: checks the readable bytes
 * start with `expect`, fills `fill` into the writable ones, returns head. */
static uint16_t dev_take(struct fix *f, uint16_t *avail_seen, uint8_t expect, uint8_t fill,
			 uint32_t *written, unsigned int *ndesc)
{
	struct xvd_vq *vq = &f->vq;
	uint16_t head, i, n = 0;
	struct vring_desc *table = vq->desc;
	uint32_t w = 0;

	assert_int_not_equal(le16toh(vq->avail->idx), *avail_seen);
	head = le16toh(vq->avail->ring[*avail_seen % vq->size]);
	(*avail_seen)++;
	i = head;
	if (le16toh(table[i].flags) & VRING_DESC_F_INDIRECT) {
		table = (struct vring_desc *)dev_ptr(f, le64toh(table[i].addr));
		i = 0;
	}
	for (;;) {
		struct vring_desc *d = &table[i];
		uint8_t *p = dev_ptr(f, le64toh(d->addr));

		n++;
		if (le16toh(d->flags) & VRING_DESC_F_WRITE) {
			memset(p, fill, le32toh(d->len));
			w += le32toh(d->len);
		} else {
			assert_int_equal(p[0], expect);
		}
		if (!(le16toh(d->flags) & VRING_DESC_F_NEXT))
			break;
		i = le16toh(d->next);
	}
	*written = w;
	*ndesc = n;
	return head;
}

static void dev_used(struct fix *f, uint32_t id, uint32_t len)
{
	struct xvd_vq *vq = &f->vq;
	uint16_t idx = le16toh(vq->used->idx);

	vq->used->ring[idx % vq->size].id = htole32(id);
	vq->used->ring[idx % vq->size].len = htole32(len);
	vq->used->idx = htole16(idx + 1);
}

static void run_chain(int mode, bool indirect)
{
	struct fix *f = fix_new(mode);
	uint8_t *hdr, *data, *st;
	uint16_t seen = 0, head;
	unsigned int ndesc;
	struct xvd_done d;
	uint32_t w;

	vq_new(f, 8);
	f->vq.indirect = indirect;
	f->vq.indirect_min = 2;
	assert_int_equal(xvd_ram_get(&f->ram, 16, (void **)&hdr), 0);
	assert_int_equal(xvd_ram_get(&f->ram, 2048, (void **)&data), 0);
	assert_int_equal(xvd_ram_get(&f->ram, 1, (void **)&st), 0);
	memset(hdr, 0x42, 16);
	struct xvd_buf bufs[3] = {
		{ .addr = hdr, .len = 16 },
		{ .addr = data, .len = 2048, .dev_writes = true },
		{ .addr = st, .len = 1, .dev_writes = true },
	};

	assert_int_equal(xvd_vq_add(&f->vq, bufs, 3, (void *)0x1234), 0);
	assert_true(xvd_vq_kick_prepare(&f->vq));
	assert_false(xvd_vq_kick_prepare(&f->vq));		/* nothing new */
	assert_int_equal(f->vq.num_free, indirect ? 7 : 5);
	assert_int_equal(xvd_vq_get(&f->vq, &d), 0);
	head = dev_take(f, &seen, 0x42, 0x99, &w, &ndesc);
	assert_int_equal(ndesc, 3);
	assert_int_equal(w, 2049);
	dev_used(f, head, 2049);
	assert_int_equal(xvd_vq_get(&f->vq, &d), 1);
	assert_ptr_equal(d.cookie, (void *)0x1234);
	assert_int_equal(d.len, 2049);
	assert_int_equal(d.status, 0);
	assert_int_equal(data[0], 0x99);
	assert_int_equal(data[2047], 0x99);
	assert_int_equal(st[0], 0x99);
	assert_int_equal(f->vq.num_free, 8);
	assert_int_equal(f->vq.inflight, 0);
	if (mode == XVMSG_MODE_POOL)
		assert_true(all_zero(f->pool + 4096, (POOL_PAGES - 1) * 4096));	/* rings first */
	if (mode == XVMSG_MODE_GRANT)
		assert_int_equal(f->st.grants - 1, f->st.revokes);	/* ring stays granted */
	fix_free(f);
}

static void test_vq_pool(void **state)		{ run_chain(XVMSG_MODE_POOL, false); }
static void test_vq_pool_indirect(void **state)	{ run_chain(XVMSG_MODE_POOL, true); }
static void test_vq_grant_indirect(void **state)	{ run_chain(XVMSG_MODE_GRANT, true); }
static void test_vq_full(void **state)		{ run_chain(XVMSG_MODE_FULL, false); }

static void test_vq_full_ring_and_order(void **state)
{
	struct fix *f = fix_new(XVMSG_MODE_POOL);
	uint8_t b[8][64];
	uint16_t seen = 0, heads[8];
	unsigned int ndesc;
	struct xvd_done d;
	uint32_t w;

	vq_new(f, 8);
	for (int i = 0; i < 8; i++) {
		struct xvd_buf x = { .addr = b[i], .len = 64, .dev_writes = true };

		assert_int_equal(xvd_vq_add(&f->vq, &x, 1, (void *)(uintptr_t)(i + 1)), 0);
	}
	struct xvd_buf x = { .addr = b[0], .len = 64, .dev_writes = true };
	assert_int_equal(xvd_vq_add(&f->vq, &x, 1, NULL), -ENOSPC);
	for (int i = 0; i < 8; i++)
		heads[i] = dev_take(f, &seen, 0, (uint8_t)i, &w, &ndesc);
	/* Complete out of order, with short lengths. */
	for (int i = 7; i >= 0; i--)
		dev_used(f, heads[i], (uint32_t)i);
	for (int i = 7; i >= 0; i--) {
		assert_int_equal(xvd_vq_get(&f->vq, &d), 1);
		assert_ptr_equal(d.cookie, (void *)(uintptr_t)(i + 1));
		assert_int_equal(d.len, i);
	}
	assert_int_equal(xvd_vq_get(&f->vq, &d), 0);
	assert_int_equal(f->err, 0);
	fix_free(f);
}

static void test_vq_event_idx(void **state)
{
	struct fix *f = fix_new(XVMSG_MODE_POOL);
	uint8_t b[64];
	struct xvd_buf x = { .addr = b, .len = 64, .dev_writes = true };
	uint16_t seen = 0, h;
	unsigned int ndesc;
	struct xvd_done d;
	uint32_t w;

	vq_new(f, 8);
	f->vq.event_idx = true;
	/* Device wants a kick at avail index 0 -> first add kicks. */
	assert_int_equal(xvd_vq_add(&f->vq, &x, 1, NULL), 0);
	assert_true(xvd_vq_kick_prepare(&f->vq));
	/* Device still busy, asks for a kick only at index 3. */
	*f->vq.avail_event = htole16(3);
	assert_int_equal(xvd_vq_add(&f->vq, &x, 1, NULL), 0);
	assert_false(xvd_vq_kick_prepare(&f->vq));
	assert_int_equal(xvd_vq_add(&f->vq, &x, 1, NULL), 0);
	assert_false(xvd_vq_kick_prepare(&f->vq));
	assert_int_equal(xvd_vq_add(&f->vq, &x, 1, NULL), 0);
	assert_true(xvd_vq_kick_prepare(&f->vq));
	assert_int_equal(f->st.kicks_suppressed, 2);
	/* An empty poll publishes used_event = last_used. */
	assert_int_equal(xvd_vq_get(&f->vq, &d), 0);
	assert_int_equal(le16toh(*f->vq.used_event), 0);
	h = dev_take(f, &seen, 0, 1, &w, &ndesc);
	dev_used(f, h, 64);
	assert_int_equal(xvd_vq_get(&f->vq, &d), 1);
	assert_int_equal(xvd_vq_get(&f->vq, &d), 0);
	assert_int_equal(le16toh(*f->vq.used_event), 1);
	fix_free(f);
}

/* Malformed used entries: every in-flight chain fails with -EIO, then the
 * queue keeps returning -EIO; no crash, buffers released, pool zeroed. */
static void malformed(int kind)
{
	struct fix *f = fix_new(XVMSG_MODE_POOL);
	uint8_t b[3][64];
	uint16_t seen = 0, h = 0;
	unsigned int ndesc, n = 0;
	struct xvd_done d;
	uint32_t w;

	memset(b, 0, sizeof(b));
	vq_new(f, 8);
	for (int i = 0; i < 3; i++) {
		struct xvd_buf x = { .addr = b[i], .len = 64, .dev_writes = true };

		assert_int_equal(xvd_vq_add(&f->vq, &x, 1, (void *)(uintptr_t)(i + 1)), 0);
	}
	for (int i = 0; i < 3; i++)
		h = dev_take(f, &seen, 0, 0xee, &w, &ndesc);
	switch (kind) {
	case 0: dev_used(f, 8, 0); break;			/* id out of range */
	case 1: dev_used(f, h, 65); break;			/* longer than writable */
	case 2: dev_used(f, h, 1); dev_used(f, h, 1); break;	/* completed twice */
	case 3: f->vq.used->idx = htole16(100); break;		/* index ran ahead */
	case 4: dev_used(f, (uint32_t)(h + 1) % 8, 0); break;	/* not a head in flight */
	}
	while (xvd_vq_get(&f->vq, &d) == 1) {
		if (d.status == 0) {
			assert_int_equal(kind, 2);		/* the first one was fine */
			continue;
		}
		assert_int_equal(d.status, -EIO);
		n++;
	}
	assert_int_equal(n, kind == 2 ? 2 : 3);
	assert_int_equal(f->err, -EIO);
	assert_int_equal(xvd_vq_get(&f->vq, &d), -EIO);
	struct xvd_buf x = { .addr = b[0], .len = 64, .dev_writes = true };
	assert_int_equal(xvd_vq_add(&f->vq, &x, 1, NULL), -EIO);
	assert_int_equal(f->vq.inflight, 0);
	assert_int_equal(b[0][0], 0);				/* nothing copied back */
	fix_free(f);
}

static void test_vq_bad_id(void **state)	{ malformed(0); }
static void test_vq_bad_len(void **state)	{ malformed(1); }
static void test_vq_double(void **state)	{ malformed(2); }
static void test_vq_ahead(void **state)		{ malformed(3); }
static void test_vq_not_head(void **state)	{ malformed(4); }

static void test_vq_pool_exhaustion(void **state)
{
	struct fix *f = fix_new(XVMSG_MODE_POOL);
	static uint8_t big[3 * 4096];
	struct xvd_buf x[2] = {
		{ .addr = big, .len = 4096 },
		{ .addr = big, .len = 3 * 4096, .dev_writes = true },
	};
	unsigned int free_before;

	vq_new(f, 8);
	free_before = f->vq.num_free;
	/* The second buffer does not fit beside the rings: nothing leaks. */
	assert_int_equal(xvd_vq_add(&f->vq, x, 2, NULL), -ENOMEM);
	assert_int_equal(f->vq.num_free, free_before);
	assert_int_equal(f->vq.inflight, 0);
	assert_int_equal(xvd_vq_add(&f->vq, x, 1, NULL), 0);
	/* Bad chains: empty, writable before readable, too many. */
	struct xvd_buf bad[2] = {
		{ .addr = big, .len = 16, .dev_writes = true },
		{ .addr = big, .len = 16 },
	};
	assert_int_equal(xvd_vq_add(&f->vq, bad, 2, NULL), -EINVAL);
	assert_int_equal(xvd_vq_add(&f->vq, bad, 0, NULL), -EINVAL);
	fix_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mring_producer),
		cmocka_unit_test(test_mring_consumer),
		cmocka_unit_test(test_mring_wrap),
		cmocka_unit_test(test_notify_math),
		cmocka_unit_test(test_be_numbers_as_module),
		cmocka_unit_test(test_b2d_verdicts_as_module),
		cmocka_unit_test(test_ualloc),
		cmocka_unit_test(test_pool_slots),
		cmocka_unit_test(test_grant_mode),
		cmocka_unit_test(test_vq_pool),
		cmocka_unit_test(test_vq_pool_indirect),
		cmocka_unit_test(test_vq_grant_indirect),
		cmocka_unit_test(test_vq_full),
		cmocka_unit_test(test_vq_full_ring_and_order),
		cmocka_unit_test(test_vq_event_idx),
		cmocka_unit_test(test_vq_bad_id),
		cmocka_unit_test(test_vq_bad_len),
		cmocka_unit_test(test_vq_double),
		cmocka_unit_test(test_vq_ahead),
		cmocka_unit_test(test_vq_not_head),
		cmocka_unit_test(test_vq_pool_exhaustion),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
