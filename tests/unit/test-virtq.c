/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the split virtqueue engine (virtq.c) against rings laid out by
 * the test in fake guest memory.  The test plays a hostile driver: it writes
 * descriptors, avail entries and indices straight into fb->mem, including
 * after the engine has looked at them.
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
#define GUEST_PAGES	512
#define POOL_REF	256	/* pool mode: refs POOL_REF.. cover frames 0.. */
#define POOL_PAGES	128
#define GREF_BASE	1024	/* grant mode: frame f is granted as ref GREF_BASE + f */
#define QSZ		16

/* Where the rings sit in guest memory (all in frame 0). */
#define DESC_GPA	0x000
#define AVAIL_GPA	0x400
#define USED_GPA	0x800

struct vt {
	struct fakebus *fb;
	struct xvb_stats st;
	struct xvb_mapcache mc;
	struct xvb_vq vq;
	int mode;
	uint16_t avail_idx;		/* the driver's */
	uint16_t next_head;		/* for complete_one() */
	struct xvb_req req;
	const char *why;
};

/* ---- the driver's side of the rings ---- */

static struct vring_desc *desc_tab(struct vt *v)
{
	return (struct vring_desc *)(v->fb->mem + DESC_GPA);
}

static struct vring_avail *avail(struct vt *v)
{
	return (struct vring_avail *)(v->fb->mem + AVAIL_GPA);
}

static struct vring_used *used(struct vt *v)
{
	return (struct vring_used *)(v->fb->mem + USED_GPA);
}

static uint16_t *used_event(struct vt *v)
{
	return (uint16_t *)&avail(v)->ring[QSZ];
}

static uint16_t *avail_event(struct vt *v)
{
	return (uint16_t *)&used(v)->ring[QSZ];
}

/* Bus address of guest byte gpa in the current mode. */
static uint64_t bus_addr(struct vt *v, uint64_t gpa)
{
	switch (v->mode) {
	case XVMSG_MODE_POOL:
		return XVMSG_GRANT_ADDR(POOL_REF + gpa / PAGE, gpa % PAGE);
	case XVMSG_MODE_GRANT:
		return XVMSG_GRANT_ADDR(GREF_BASE + gpa / PAGE, gpa % PAGE);
	default:
		return gpa;
	}
}

/* A buffer's bus address; in grant mode the driver grants its pages now. */
static uint64_t buf(struct vt *v, uint64_t gpa, uint32_t len)
{
	if (v->mode == XVMSG_MODE_GRANT) {
		uint32_t first = (uint32_t)(gpa / PAGE), last = (uint32_t)((gpa + len - 1) / PAGE);

		fakebus_grant(v->fb, GREF_BASE + first, first, last - first + 1, false);
	}
	return bus_addr(v, gpa);
}

static void set_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	d->addr = htole64(addr);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

static void put_avail(struct vt *v, uint16_t head)
{
	avail(v)->ring[v->avail_idx % QSZ] = htole16(head);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	avail(v)->idx = htole16(++v->avail_idx);
}

static enum xvb_vq_err pop(struct vt *v)
{
	v->why = NULL;
	return xvb_vq_pop(&v->vq, &v->mc, &v->req, &v->why);
}

static void start(struct vt *v, bool event_idx, bool indirect)
{
	v->vq.size = v->vq.max_size = QSZ;
	v->vq.desc_addr = bus_addr(v, DESC_GPA);
	v->vq.avail_addr = bus_addr(v, AVAIL_GPA);
	v->vq.used_addr = bus_addr(v, USED_GPA);
	assert_int_equal(xvb_vq_start(&v->vq, &v->mc, event_idx, indirect), 0);
	assert_true(v->vq.live);
}

/* A one-descriptor chain at head h: n writable bytes at gpa. */
static void one_desc_chain(struct vt *v, uint16_t h, uint64_t gpa, uint32_t n)
{
	set_desc(&desc_tab(v)[h], buf(v, gpa, n), n, VRING_DESC_F_WRITE, 0);
	put_avail(v, h);
}

/* Make one request available, take it and complete it (not yet published). */
static void complete_one(struct vt *v)
{
	uint16_t h = v->next_head++ % QSZ;

	one_desc_chain(v, h, 0x10000 + (uint64_t)h * 64, 64);
	assert_int_equal(pop(v), XVB_VQ_OK);
	assert_int_equal(v->req.head, h);
	assert_int_equal(xvb_vq_push(&v->vq, &v->mc, &v->req, 1), 0);
}

/* A refused chain fails alone: it completes with length 0, the queue goes on. */
static void assert_bad_chain_then_recovers(struct vt *v, uint16_t head)
{
	uint16_t before = v->vq.used_idx;

	assert_int_equal(pop(v), XVB_VQ_BAD_CHAIN);
	assert_non_null(v->why);
	assert_int_equal(v->req.head, head);
	assert_int_equal(v->req.nout + v->req.nin, 0);
	assert_int_equal(xvb_vq_push(&v->vq, &v->mc, &v->req, 0), 0);
	assert_int_equal(xvb_vq_push(&v->vq, &v->mc, &v->req, 0), -EINVAL);	/* only once */
	xvb_vq_publish(&v->vq);
	assert_int_equal(le16toh(used(v)->idx), (uint16_t)(before + 1));
	assert_int_equal(le32toh(used(v)->ring[before % QSZ].id), head);
	assert_int_equal(le32toh(used(v)->ring[before % QSZ].len), 0);
	/* A good request after it is served. */
	v->next_head = (uint16_t)(head + 1);
	complete_one(v);
}

/* ---- fixtures ---- */

static int setup_mode(void **state, int mode)
{
	struct vt *v = calloc(1, sizeof(*v));

	if (!v)
		return -1;
	v->fb = calloc(1, sizeof(*v->fb));
	if (!v->fb || fakebus_init(v->fb, GUEST_PAGES))
		return -1;
	v->mode = mode;
	if (mode == XVMSG_MODE_POOL)
		fakebus_grant(v->fb, POOL_REF, 0, POOL_PAGES, false);
	else if (mode == XVMSG_MODE_GRANT)
		fakebus_grant(v->fb, GREF_BASE, 0, 1, false);	/* the ring page */
	else
		v->fb->allow_frames = true;
	if (xvb_mc_init(&v->mc, &v->fb->bus, &v->st, 3, mode, POOL_REF, POOL_PAGES))
		return -1;
	*state = v;
	return 0;
}

static int setup_pool(void **state)
{
	return setup_mode(state, XVMSG_MODE_POOL);
}

static int setup_grant(void **state)
{
	return setup_mode(state, XVMSG_MODE_GRANT);
}

static int setup_full(void **state)
{
	return setup_mode(state, XVMSG_MODE_FULL);
}

static int teardown(void **state)
{
	struct vt *v = *state;

	xvb_vq_stop(&v->vq, &v->mc);
	xvb_mc_fini(&v->mc);
	assert_int_equal(v->fb->live, 0);
	fakebus_fini(v->fb);
	free(v->fb);
	free(v);
	return 0;
}

/* ---- basic operation ---- */

static void test_start_rejects(void **state)
{
	struct vt *v = *state;

	v->vq.max_size = QSZ;
	v->vq.desc_addr = bus_addr(v, DESC_GPA);
	v->vq.avail_addr = bus_addr(v, AVAIL_GPA);
	v->vq.used_addr = bus_addr(v, USED_GPA);
	v->vq.size = 12;
	assert_int_equal(xvb_vq_start(&v->vq, &v->mc, false, false), -EINVAL);
	v->vq.size = 2 * QSZ;
	assert_int_equal(xvb_vq_start(&v->vq, &v->mc, false, false), -EINVAL);
	v->vq.size = QSZ;
	v->vq.desc_addr += 8;
	assert_int_equal(xvb_vq_start(&v->vq, &v->mc, false, false), -EINVAL);
	v->vq.desc_addr = XVMSG_GRANT_ADDR(POOL_REF + POOL_PAGES, 0);	/* outside the pool */
	assert_int_equal(xvb_vq_start(&v->vq, &v->mc, false, false), -EFAULT);
	assert_false(v->vq.live);
	assert_int_equal(v->fb->live, 0);
}

static void test_valid_chain(void **state)
{
	struct vt *v = *state;
	const uint64_t hdr = 0x1008, data = 0x2000, status = 0x3064;
	struct vring_desc *d = desc_tab(v);
	unsigned int i;

	start(v, false, false);
	for (i = 0; i < 16; i++)
		v->fb->mem[hdr + i] = (uint8_t)(0xc0 + i);
	/* Chain 3 -> 7 -> 1: 16 readable bytes, 4096 and 1 writable. */
	set_desc(&d[3], buf(v, hdr, 16), 16, VRING_DESC_F_NEXT, 7);
	set_desc(&d[7], buf(v, data, 4096), 4096, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(&d[1], buf(v, status, 1), 1, VRING_DESC_F_WRITE, 0);
	put_avail(v, 3);

	assert_int_equal(pop(v), XVB_VQ_OK);
	assert_int_equal(v->req.head, 3);
	assert_int_equal(v->req.nout, 1);
	assert_int_equal(v->req.nin, 2);
	assert_int_equal(v->req.out_len, 16);
	assert_int_equal(v->req.in_len, 4097);
	assert_int_equal(v->req.out[0].iov_len, 16);
	assert_int_equal(v->req.in[0].iov_len, 4096);
	assert_int_equal(v->req.in[1].iov_len, 1);
	assert_memory_equal(v->req.out[0].iov_base, v->fb->mem + hdr, 16);
	memset(v->req.in[0].iov_base, 0xab, 4096);
	*(uint8_t *)v->req.in[1].iov_base = 0x5a;
	for (i = 0; i < 4096; i++)
		assert_int_equal(v->fb->mem[data + i], 0xab);
	assert_int_equal(v->fb->mem[data - 1], 0);
	assert_int_equal(v->fb->mem[data + 4096], 0);
	assert_int_equal(v->fb->mem[status], 0x5a);
	assert_int_equal(v->fb->mem[status - 1], 0);
	assert_int_equal(v->fb->mem[status + 1], 0);

	assert_int_equal(xvb_vq_push(&v->vq, &v->mc, &v->req, 4097), 0);
	assert_int_equal(le16toh(used(v)->idx), 0);		/* not yet published */
	assert_true(xvb_vq_publish(&v->vq));
	assert_int_equal(le16toh(used(v)->idx), 1);
	assert_int_equal(le32toh(used(v)->ring[0].id), 3);
	assert_int_equal(le32toh(used(v)->ring[0].len), 4097);
	assert_int_equal(pop(v), XVB_VQ_EMPTY);
}

static void test_empty(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	assert_int_equal(pop(v), XVB_VQ_EMPTY);
	assert_int_equal(pop(v), XVB_VQ_EMPTY);
	assert_false(xvb_vq_publish(&v->vq));			/* nothing to publish */
	v->req.head = 0;
	v->req.in_len = 0;
	assert_int_equal(xvb_vq_push(&v->vq, &v->mc, &v->req, 0), -EINVAL);	/* not in flight */
	v->req.head = QSZ;
	assert_int_equal(xvb_vq_push(&v->vq, &v->mc, &v->req, 0), -EINVAL);
	assert_int_equal(le16toh(used(v)->idx), 0);
}

/* ---- a ring that lies about itself: BROKEN ---- */

static void test_desc_loop(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	set_desc(&desc_tab(v)[0], buf(v, 0x1000, 8), 8, VRING_DESC_F_NEXT, 1);
	set_desc(&desc_tab(v)[1], buf(v, 0x1100, 8), 8, VRING_DESC_F_NEXT, 0);
	put_avail(v, 0);
	assert_int_equal(pop(v), XVB_VQ_BROKEN);
	assert_non_null(v->why);
}

static void test_next_out_of_range(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	set_desc(&desc_tab(v)[0], buf(v, 0x1000, 8), 8, VRING_DESC_F_NEXT, QSZ);
	put_avail(v, 0);
	assert_int_equal(pop(v), XVB_VQ_BROKEN);
	assert_non_null(v->why);
}

static void test_head_out_of_range(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	put_avail(v, QSZ);
	assert_int_equal(pop(v), XVB_VQ_BROKEN);
	assert_non_null(v->why);
}

static void test_avail_idx_ahead(void **state)
{
	struct vt *v = *state;
	uint16_t h;

	start(v, false, false);
	/* Exactly a full ring is fine... */
	for (h = 0; h < QSZ; h++)
		one_desc_chain(v, h, 0x1000 + h * 16u, 16);
	for (h = 0; h < QSZ; h++) {
		assert_int_equal(pop(v), XVB_VQ_OK);
		assert_int_equal(v->req.head, h);
		assert_int_equal(xvb_vq_push(&v->vq, &v->mc, &v->req, 0), 0);
	}
	assert_int_equal(pop(v), XVB_VQ_EMPTY);
	/* ...one more than the ring holds is not. */
	avail(v)->idx = htole16(QSZ + QSZ + 1);
	assert_int_equal(pop(v), XVB_VQ_BROKEN);
	assert_non_null(v->why);
}

static void test_head_in_flight(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	one_desc_chain(v, 0, 0x1000, 16);
	assert_int_equal(pop(v), XVB_VQ_OK);
	assert_int_equal(xvb_vq_push(&v->vq, &v->mc, &v->req, 0), 0);
	put_avail(v, 0);			/* completed: may be offered again */
	assert_int_equal(pop(v), XVB_VQ_OK);
	put_avail(v, 0);			/* still in flight: a lie */
	assert_int_equal(pop(v), XVB_VQ_BROKEN);
	assert_non_null(v->why);
}

/* ---- a chain that breaks a rule about its buffers: BAD_CHAIN ---- */

static void test_zero_length(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	set_desc(&desc_tab(v)[2], buf(v, 0x1000, 16), 16, VRING_DESC_F_NEXT, 4);
	set_desc(&desc_tab(v)[4], buf(v, 0x2000, 1), 0, VRING_DESC_F_WRITE, 0);
	put_avail(v, 2);
	assert_bad_chain_then_recovers(v, 2);
}

static void test_readable_after_writable(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	set_desc(&desc_tab(v)[5], buf(v, 0x1000, 16), 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 6);
	set_desc(&desc_tab(v)[6], buf(v, 0x2000, 16), 16, 0, 0);
	put_avail(v, 5);
	assert_bad_chain_then_recovers(v, 5);
}

/* Data the device writes must not land on the rings: each of desc, avail
 * and used (its last field, avail_event, included) refused as a
 * device-writable buffer; the same bytes as a device-readable buffer are
 * only data. */
static void test_writable_over_rings(void **state)
{
	struct vt *v = *state;
	const struct { uint64_t gpa; uint32_t len; } hit[] = {
		{ DESC_GPA, 16 }, { DESC_GPA + 16 * QSZ - 1, 1 },
		{ AVAIL_GPA - 8, 16 }, { AVAIL_GPA + 4 + 2 * QSZ, 2 },
		{ USED_GPA, 4 }, { USED_GPA + 4 + 8 * QSZ, 2 }, { 0, PAGE },
	};
	uint16_t h = 0;

	start(v, true, false);
	for (unsigned int i = 0; i < sizeof(hit) / sizeof(hit[0]); i++, h++) {
		set_desc(&desc_tab(v)[h], buf(v, 0x1000, 16), 16, VRING_DESC_F_NEXT,
			 (uint16_t)(h + 1));
		set_desc(&desc_tab(v)[h + 1], buf(v, hit[i].gpa, hit[i].len), hit[i].len,
			 VRING_DESC_F_WRITE, 0);
		put_avail(v, h);
		assert_bad_chain_then_recovers(v, h);
		h++;
	}
	/* Just past each ring: plain buffers. */
	set_desc(&desc_tab(v)[h], buf(v, USED_GPA + 6 + 8 * QSZ, 8), 8, VRING_DESC_F_WRITE, 0);
	put_avail(v, h);
	assert_int_equal(pop(v), XVB_VQ_OK);
	/* Reading the rings as data harms nobody. */
	h++;
	set_desc(&desc_tab(v)[h], buf(v, USED_GPA, 16), 16, 0, 0);
	put_avail(v, h);
	assert_int_equal(pop(v), XVB_VQ_OK);
}

static void test_addr_len_overflow(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	set_desc(&desc_tab(v)[0], 0xfffffffffffff000ULL, 0x2000, VRING_DESC_F_WRITE, 0);
	put_avail(v, 0);
	assert_bad_chain_then_recovers(v, 0);
}

static void test_pool_outside(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	/* The first ref after the pool. */
	set_desc(&desc_tab(v)[0], XVMSG_GRANT_ADDR(POOL_REF + POOL_PAGES, 0), 16,
		 VRING_DESC_F_WRITE, 0);
	put_avail(v, 0);
	assert_bad_chain_then_recovers(v, 0);
	/* A frame address of memory that is in the pool. */
	set_desc(&desc_tab(v)[3], 0x1000, 16, VRING_DESC_F_WRITE, 0);
	put_avail(v, 3);
	assert_bad_chain_then_recovers(v, 3);
	/* A range that starts in the pool and runs past its end. */
	set_desc(&desc_tab(v)[5], bus_addr(v, (uint64_t)POOL_PAGES * PAGE - 8), 16,
		 VRING_DESC_F_WRITE, 0);
	put_avail(v, 5);
	assert_bad_chain_then_recovers(v, 5);
}

/* ---- indirect descriptors ---- */

#define TABLE_GPA 0x4000

static struct vring_desc *table(struct vt *v)
{
	return (struct vring_desc *)(v->fb->mem + TABLE_GPA);
}

/* Head 9 points at a valid table of three: 16 readable, 64 and 1 writable. */
static void indirect_chain(struct vt *v)
{
	struct vring_desc *t = table(v);

	set_desc(&t[0], buf(v, 0x5000, 16), 16, VRING_DESC_F_NEXT, 1);
	set_desc(&t[1], buf(v, 0x6000, 64), 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	set_desc(&t[2], buf(v, 0x7000, 1), 1, VRING_DESC_F_WRITE, 0);
	set_desc(&desc_tab(v)[9], buf(v, TABLE_GPA, 48), 48, VRING_DESC_F_INDIRECT, 0);
	put_avail(v, 9);
}

static void test_indirect_valid(void **state)
{
	struct vt *v = *state;
	struct iovec in0;

	start(v, false, true);
	memcpy(v->fb->mem + 0x5000, "indirect header!", 16);
	indirect_chain(v);
	assert_int_equal(pop(v), XVB_VQ_OK);
	assert_int_equal(v->req.head, 9);
	assert_int_equal(v->req.nout, 1);
	assert_int_equal(v->req.nin, 2);
	assert_int_equal(v->req.out_len, 16);
	assert_int_equal(v->req.in_len, 65);
	assert_memory_equal(v->req.out[0].iov_base, "indirect header!", 16);
	memset(v->req.in[0].iov_base, 0x11, 64);
	assert_int_equal(v->fb->mem[0x6000 + 63], 0x11);
	assert_int_equal(v->fb->mem[0x6000 + 64], 0);

	/* The table was copied: rewriting it now changes nothing. */
	in0 = v->req.in[0];
	set_desc(&table(v)[1], buf(v, 0x8000, 4), 4, VRING_DESC_F_WRITE, 0);
	assert_ptr_equal(v->req.in[0].iov_base, in0.iov_base);
	assert_int_equal(v->req.in[0].iov_len, 64);
	assert_int_equal(xvb_vq_push(&v->vq, &v->mc, &v->req, 65), 0);
	xvb_vq_publish(&v->vq);
	assert_int_equal(le32toh(used(v)->ring[0].id), 9);
	assert_int_equal(le32toh(used(v)->ring[0].len), 65);
}

enum bad_ind { IND_NOT_NEGOTIATED, IND_NESTED, IND_WITH_NEXT, IND_BAD_LEN, IND_LOOP,
	       IND_NEXT_BEYOND, IND_OUTSIDE };

static void bad_indirect(void **state, enum bad_ind how)
{
	struct vt *v = *state;
	struct vring_desc *head = &desc_tab(v)[9], *t = table(v);

	start(v, false, how != IND_NOT_NEGOTIATED);
	indirect_chain(v);
	switch (how) {
	case IND_NOT_NEGOTIATED:
		break;
	case IND_NESTED:
		set_desc(&t[2], buf(v, 0x8000, 16), 16, VRING_DESC_F_INDIRECT, 0);
		break;
	case IND_WITH_NEXT:
		set_desc(&desc_tab(v)[10], buf(v, 0x8000, 16), 16, VRING_DESC_F_WRITE, 0);
		head->flags = htole16(VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT);
		head->next = htole16(10);
		break;
	case IND_BAD_LEN:	/* one whole, valid entry and half of another */
		set_desc(&t[0], buf(v, 0x6000, 8), 8, VRING_DESC_F_WRITE, 0);
		head->len = htole32(24);
		break;
	case IND_LOOP:		/* writable 0 -> 1 -> 0 */
		set_desc(&t[0], buf(v, 0x6000, 8), 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
		set_desc(&t[1], buf(v, 0x6100, 8), 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
		break;
	case IND_NEXT_BEYOND:
		t[2].flags = htole16(VRING_DESC_F_WRITE | VRING_DESC_F_NEXT);
		t[2].next = htole16(3);
		break;
	case IND_OUTSIDE:
		head->addr = htole64(XVMSG_GRANT_ADDR(GREF_BASE + 4000, 0));
		break;
	}
	assert_bad_chain_then_recovers(v, 9);
}

static void test_indirect_not_negotiated(void **state)
{
	bad_indirect(state, IND_NOT_NEGOTIATED);
}

static void test_indirect_nested(void **state)
{
	bad_indirect(state, IND_NESTED);
}

static void test_indirect_with_next(void **state)
{
	bad_indirect(state, IND_WITH_NEXT);
}

static void test_indirect_bad_len(void **state)
{
	bad_indirect(state, IND_BAD_LEN);
}

static void test_indirect_loop(void **state)
{
	bad_indirect(state, IND_LOOP);
}

static void test_indirect_next_beyond(void **state)
{
	bad_indirect(state, IND_NEXT_BEYOND);
}

static void test_indirect_outside(void **state)
{
	bad_indirect(state, IND_OUTSIDE);
}

/* ---- shared memory changing under the engine ---- */

static void test_copy_once_after_pop(void **state)
{
	struct vt *v = *state;
	struct xvb_req saved;

	start(v, false, false);
	set_desc(&desc_tab(v)[4], buf(v, 0x1000, 16), 16, VRING_DESC_F_NEXT, 8);
	set_desc(&desc_tab(v)[8], buf(v, 0x2000, 100), 100, VRING_DESC_F_WRITE, 0);
	put_avail(v, 4);
	assert_int_equal(pop(v), XVB_VQ_OK);
	saved = v->req;

	/* The driver rewrites everything it can reach. */
	set_desc(&desc_tab(v)[4], buf(v, 0x9000, 4096), 4096, VRING_DESC_F_WRITE, 0);
	set_desc(&desc_tab(v)[8], buf(v, 0xa000, 4096), 4096, VRING_DESC_F_WRITE, 0);
	avail(v)->ring[0] = htole16(8);
	assert_int_equal(v->req.head, 4);
	assert_int_equal(v->req.nout, 1);
	assert_int_equal(v->req.nin, 1);
	assert_ptr_equal(v->req.out[0].iov_base, saved.out[0].iov_base);
	assert_ptr_equal(v->req.in[0].iov_base, saved.in[0].iov_base);
	assert_int_equal(v->req.in[0].iov_len, 100);
	/* Completion uses what was taken; the length is clamped to it. */
	assert_int_equal(xvb_vq_push(&v->vq, &v->mc, &v->req, 5000), 0);
	xvb_vq_publish(&v->vq);
	assert_int_equal(le32toh(used(v)->ring[0].id), 4);
	assert_int_equal(le32toh(used(v)->ring[0].len), 100);
}

/*
 * A driver racing the engine: while pop is mapping the buffers (the first use
 * of pool chunk 1 costs a map call) the driver rewrites the descriptor.  The
 * request must describe the descriptor as it was read, not a mix.
 */
static struct {
	const struct xvb_bus_ops *real;
	struct xvb_bus_ops ops;
	struct vring_desc *victim;
	unsigned int fired;
} race;

static int racing_map(struct xvb_bus *bus, uint32_t domid, enum xvb_space space,
		      const uint64_t *ids, unsigned int n, bool writable, void **addr)
{
	if (race.victim) {
		race.victim->len = htole32(1);
		race.victim->addr = htole64(0);
		race.victim->flags = htole16(0);
		race.fired++;
	}
	return race.real->map(bus, domid, space, ids, n, writable, addr);
}

static void test_copy_once_during_pop(void **state)
{
	struct vt *v = *state;
	const uint64_t data = (uint64_t)XVB_CHUNK_PAGES * PAGE + 0x100;	/* pool chunk 1 */

	start(v, false, false);
	set_desc(&desc_tab(v)[6], buf(v, data, 300), 300, VRING_DESC_F_WRITE, 0);
	put_avail(v, 6);
	race.real = v->fb->bus.ops;
	race.ops = *race.real;
	race.ops.map = racing_map;
	race.victim = &desc_tab(v)[6];
	race.fired = 0;
	v->fb->bus.ops = &race.ops;
	assert_int_equal(pop(v), XVB_VQ_OK);
	v->fb->bus.ops = race.real;
	race.victim = NULL;
	assert_int_equal(race.fired, 1);
	assert_int_equal(v->req.nout, 0);
	assert_int_equal(v->req.nin, 1);
	assert_int_equal(v->req.in_len, 300);
	memset(v->req.in[0].iov_base, 0x77, 300);
	assert_int_equal(v->fb->mem[data], 0x77);
	assert_int_equal(v->fb->mem[data + 299], 0x77);
	assert_int_equal(xvb_vq_push(&v->vq, &v->mc, &v->req, 300), 0);
}

static void test_used_idx_not_read_back(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	complete_one(v);
	xvb_vq_publish(&v->vq);
	assert_int_equal(le16toh(used(v)->idx), 1);
	/* The driver scribbles over the device's part of the ring. */
	used(v)->idx = htole16(0x1234);
	used(v)->ring[1].id = htole32(0xdead);
	complete_one(v);
	xvb_vq_publish(&v->vq);
	assert_int_equal(le16toh(used(v)->idx), 2);
	assert_int_equal(le32toh(used(v)->ring[1].id), 1);
	assert_int_equal(le32toh(used(v)->ring[1].len), 1);
}

/* ---- notification suppression ---- */

static void test_event_idx_avail_event(void **state)
{
	struct vt *v = *state;

	start(v, true, false);
	*avail_event(v) = htole16(0x7777);
	one_desc_chain(v, 0, 0x1000, 8);
	one_desc_chain(v, 1, 0x1100, 8);
	assert_int_equal(pop(v), XVB_VQ_OK);
	assert_int_equal(pop(v), XVB_VQ_OK);
	assert_int_equal(pop(v), XVB_VQ_EMPTY);
	/* Going idle: "kick me when you add entry 2". */
	assert_int_equal(le16toh(*avail_event(v)), 2);
	assert_int_equal(v->vq.last_avail, 2);
}

static void test_event_idx_publish(void **state)
{
	struct vt *v = *state;

	start(v, true, false);
	*used_event(v) = htole16(0x8000);
	complete_one(v);
	assert_true(xvb_vq_publish(&v->vq));		/* the first one always */
	assert_false(xvb_vq_publish(&v->vq));		/* nothing new */

	*used_event(v) = htole16(1);			/* notify when entry 1 is written */
	complete_one(v);				/* used idx 1 -> 2 */
	assert_true(xvb_vq_publish(&v->vq));

	*used_event(v) = htole16(100);
	complete_one(v);				/* 2 -> 3 */
	assert_false(xvb_vq_publish(&v->vq));

	/* Entry 2 was written by the previous, silent publish: a driver that
	 * asks for it late gets no interrupt for entry 3. */
	*used_event(v) = htole16(2);
	complete_one(v);				/* 3 -> 4 */
	assert_false(xvb_vq_publish(&v->vq));

	*used_event(v) = htole16(5);
	complete_one(v);
	complete_one(v);				/* 4 -> 6 in one batch covers 5 */
	assert_true(xvb_vq_publish(&v->vq));

	*used_event(v) = htole16(6);
	complete_one(v);				/* 6 -> 7 */
	assert_true(xvb_vq_publish(&v->vq));
	assert_int_equal(le16toh(used(v)->idx), 7);
}

static void test_no_interrupt_flag(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	*used_event(v) = htole16(0x4444);			/* ignored without EVENT_IDX */
	avail(v)->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
	complete_one(v);
	assert_false(xvb_vq_publish(&v->vq));
	assert_int_equal(le16toh(used(v)->idx), 1);		/* published all the same */
	avail(v)->flags = 0;
	complete_one(v);
	assert_true(xvb_vq_publish(&v->vq));
	complete_one(v);
	assert_true(xvb_vq_publish(&v->vq));
}

/* ---- grant mode: per-request mappings ---- */

static void test_grant_map_unmap(void **state)
{
	struct vt *v = *state;
	struct vring_desc *d = desc_tab(v);
	unsigned int maps0, live0;

	start(v, false, false);
	maps0 = v->fb->maps;
	live0 = v->fb->live;
	assert_int_equal(live0, 3);			/* desc, avail, used */
	memcpy(v->fb->mem + 0x1000, "0123456789abcdef", 16);
	set_desc(&d[0], buf(v, 0x1000, 16), 16, VRING_DESC_F_NEXT, 1);
	set_desc(&d[1], buf(v, 0x2ff0, 64), 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	set_desc(&d[2], buf(v, 0x5000, 1), 1, VRING_DESC_F_WRITE, 0);
	put_avail(v, 0);

	assert_int_equal(pop(v), XVB_VQ_OK);
	assert_int_equal(v->fb->maps - maps0, 2);	/* one read-only, one writable */
	assert_int_equal(v->fb->live, live0 + 2);
	assert_int_equal(v->fb->gnt[GREF_BASE + 3].pins, 1);
	assert_memory_equal(v->req.out[0].iov_base, "0123456789abcdef", 16);
	memset(v->req.in[0].iov_base, 0x42, 64);	/* crosses a page */
	*(uint8_t *)v->req.in[1].iov_base = 0x24;
	assert_int_equal(v->fb->mem[0x2ff0], 0x42);
	assert_int_equal(v->fb->mem[0x302f], 0x42);
	assert_int_equal(v->fb->mem[0x3030], 0);
	assert_int_equal(v->fb->mem[0x5000], 0x24);

	assert_int_equal(xvb_vq_push(&v->vq, &v->mc, &v->req, 65), 0);
	/* Unmapped before the driver can see the completion. */
	assert_int_equal(v->fb->live, live0);
	assert_int_equal(v->fb->gnt[GREF_BASE + 3].pins, 0);
	assert_int_equal(le16toh(used(v)->idx), 0);
	assert_true(xvb_vq_publish(&v->vq));
	assert_int_equal(le16toh(used(v)->idx), 1);
	assert_int_equal(le32toh(used(v)->ring[0].len), 65);
}

static void test_grant_readonly_for_write(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	fakebus_grant(v->fb, GREF_BASE + 8, 8, 1, true);
	set_desc(&desc_tab(v)[0], bus_addr(v, 0x8000), 16, VRING_DESC_F_WRITE, 0);
	put_avail(v, 0);
	assert_bad_chain_then_recovers(v, 0);
	assert_int_equal(v->fb->live, 3);
}

static void test_grant_revoked(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	set_desc(&desc_tab(v)[0], buf(v, 0x8000, 16), 16, VRING_DESC_F_WRITE, 0);
	fakebus_revoke(v->fb, GREF_BASE + 8, 1);
	put_avail(v, 0);
	assert_bad_chain_then_recovers(v, 0);
	assert_int_equal(v->fb->live, 3);
}

static void test_grant_stop_releases(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	complete_one(v);
	one_desc_chain(v, 5, 0x6000, 32);
	assert_int_equal(pop(v), XVB_VQ_OK);		/* left in flight */
	assert_int_equal(v->fb->live, 4);
	xvb_vq_stop(&v->vq, &v->mc);
	assert_false(v->vq.live);
	assert_int_equal(v->fb->live, 0);
	assert_int_equal(v->fb->gnt[GREF_BASE + 6].pins, 0);
	assert_int_equal(xvb_vq_push(&v->vq, &v->mc, &v->req, 0), -EINVAL);
}

static void test_pool_stop_releases(void **state)
{
	struct vt *v = *state;

	start(v, false, false);
	one_desc_chain(v, 5, 0x6000, 32);
	assert_int_equal(pop(v), XVB_VQ_OK);
	xvb_vq_stop(&v->vq, &v->mc);
	assert_false(v->vq.live);
	assert_int_equal(v->fb->live, 1);		/* the cached pool chunk only */
	xvb_mc_fini(&v->mc);
	assert_int_equal(v->fb->live, 0);
}

/* ---- full mode ---- */

static void test_full_chain(void **state)
{
	struct vt *v = *state;

	start(v, true, true);
	indirect_chain(v);
	assert_int_equal(pop(v), XVB_VQ_OK);
	assert_int_equal(v->req.in_len, 65);
	*(uint8_t *)v->req.in[1].iov_base = 0x99;
	assert_int_equal(v->fb->mem[0x7000], 0x99);
	assert_int_equal(xvb_vq_push(&v->vq, &v->mc, &v->req, 1), 0);
	/* A grant address means nothing in full mode. */
	set_desc(&desc_tab(v)[2], XVMSG_GRANT_ADDR(5, 0), 16, VRING_DESC_F_WRITE, 0);
	put_avail(v, 2);
	assert_bad_chain_then_recovers(v, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define P(fn) { #fn " (pool)", fn, setup_pool, teardown, NULL }
#define G(fn) { #fn " (grant)", fn, setup_grant, teardown, NULL }
#define F(fn) { #fn " (full)", fn, setup_full, teardown, NULL }
		P(test_start_rejects),
		P(test_valid_chain),
		G(test_valid_chain),
		F(test_valid_chain),
		P(test_empty),
		P(test_desc_loop),
		P(test_next_out_of_range),
		P(test_head_out_of_range),
		P(test_avail_idx_ahead),
		P(test_head_in_flight),
		P(test_zero_length),
		P(test_readable_after_writable),
		P(test_writable_over_rings),
		G(test_writable_over_rings),
		F(test_writable_over_rings),
		P(test_addr_len_overflow),
		P(test_pool_outside),
		P(test_indirect_valid),
		G(test_indirect_valid),
		P(test_indirect_not_negotiated),
		P(test_indirect_nested),
		P(test_indirect_with_next),
		P(test_indirect_bad_len),
		P(test_indirect_loop),
		P(test_indirect_next_beyond),
		P(test_indirect_outside),
		P(test_copy_once_after_pop),
		P(test_copy_once_during_pop),
		P(test_used_idx_not_read_back),
		P(test_event_idx_avail_event),
		P(test_event_idx_publish),
		P(test_no_interrupt_flag),
		G(test_grant_map_unmap),
		G(test_grant_readonly_for_write),
		G(test_grant_revoked),
		G(test_grant_stop_releases),
		P(test_pool_stop_releases),
		F(test_full_chain),
#undef P
#undef G
#undef F
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
