// SPDX-License-Identifier: MIT
/*
 * Malicious-driver cases about the virtqueue, its descriptors and the
 * grants behind them: descriptors rewritten while the backend works on
 * them, loops, lying avail indices and entries, addresses outside what the
 * mode allows, read-only and revoked grants, and a flood of grant maps.
 *
 * The driver library keeps its own copy of every chain (free list, maps),
 * so rewriting the shared rings here never confuses it; it only sees what
 * the backend does about the lies.  A case that rewrites rings from a
 * second thread writes shared memory only (the rings, the pool, the grant
 * table), never the library's private state, and pauses while the device
 * resets.  The same storms also lie from the main thread right after each
 * kick, so that some lies reach the backend before it takes the chain and
 * some after: both outcomes happen in every run.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <linux/virtio_blk.h>
#include <xvmsg/loop.h>

#include "evil.h"

#define SECT		512
#define DATA		4096
#define STALL_MS	2000	/* no completion for this long, no reset asked: a hang */
#define ST_UNTOUCHED	0xff	/* a status byte the device did not write */

/* ---- small tools ------------------------------------------------------- */

static uint32_t rnd(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

static void pause_us(long us)
{
	struct timespec ts = { 0, us * 1000 };

	nanosleep(&ts, NULL);
}

/* A device with what the backend told us about it. */
struct rdev {
	struct xvd_dev *dev;
	int needs_reset;		/* NEEDS_RESET seen since the last reset */
	unsigned int nr_events;		/* NEEDS_RESET events in all */
	unsigned int resets;
	unsigned int cancelled;		/* completions a reset cancelled */
};

static void cfg_cb(void *ctx, struct xvd_dev *dev, uint32_t status, uint32_t gen)
{
	struct rdev *r = ctx;

	(void)dev;
	(void)gen;
	if (status & VMSG_STATUS_NEEDS_RESET) {
		r->needs_reset = 1;
		r->nr_events++;
	}
}

static int rdev_open(struct evil_env *e, struct rdev *r, int mode, const struct xvd_dev_opts *o)
{
	struct xvd_dev_opts opts = { 0 };

	memset(r, 0, sizeof(*r));
	if (o)
		opts = *o;
	opts.config_cb = cfg_cb;
	opts.cb_ctx = r;
	return evil_open_blk(e, mode, &opts, &r->dev);
}

static void rdev_close(struct rdev *r)
{
	if (r->dev)
		xvd_dev_close(r->dev);
	r->dev = NULL;
}

/* Reset and collect what the reset cancelled. */
static int rdev_reset(struct rdev *r)
{
	struct xvd_done d;
	int rc = xvd_dev_reset(r->dev);

	while (rc == 0 && xvd_vq_poll(r->dev, 0, &d, 1) == 1)
		r->cancelled++;
	r->needs_reset = 0;
	r->resets++;
	return rc;
}

/* One completion within ms: 1, 0 (none, or NEEDS_RESET came first), or the
 * device error. */
static int wait_one(struct rdev *r, struct xvd_done *d, int ms)
{
	int64_t end = xvd_now_ms() + ms;
	int n;

	for (;;) {
		n = xvd_vq_poll(r->dev, 0, d, 1);
		if (n)
			return n;
		if (r->needs_reset || xvd_now_ms() >= end)
			return 0;
		n = xvd_dev_wait(r->dev, 50);
		if (n < 0)
			return n;
	}
}

/* Notify queue 0 whether or not the library thinks it is needed. */
static int kick_raw(struct xvd_dev *dev)
{
	struct drv_bus *bus = dev->dom->bus;

	return bus->ops->evtchn_notify(bus, dev->vq[0].port);
}

static uint64_t pool_addr(const struct xvd_dev *dev, size_t off)
{
	return XVMSG_GRANT_ADDR(dev->pool_ref + off / XVMSG_PAGE_SIZE, off % XVMSG_PAGE_SIZE);
}

/* Pool memory behind a bus address of the device's pool, or NULL. */
static void *pool_ptr(const struct xvd_dev *dev, uint64_t addr, size_t len)
{
	uint64_t pfn = XVMSG_ADDR_PFN(addr);

	if (!XVMSG_ADDR_IS_GRANT(addr) || pfn < dev->pool_ref ||
	    pfn - dev->pool_ref >= dev->pool_pages ||
	    (pfn - dev->pool_ref) * XVMSG_PAGE_SIZE + XVMSG_ADDR_OFF(addr) + len >
	    (uint64_t)dev->pool_pages * XVMSG_PAGE_SIZE)
		return NULL;
	return dev->dma.pool + (pfn - dev->pool_ref) * XVMSG_PAGE_SIZE + XVMSG_ADDR_OFF(addr);
}

/* ---- one block request with buffers of our own ------------------------- */

struct breq {
	struct virtio_blk_outhdr *hdr;	/* 512-byte RAM unit: header, status at +64 */
	uint8_t *status;
	uint8_t *data;			/* DATA bytes, page aligned */
	bool write, busy;
};

static int breq_alloc(struct xvd_domain *d, struct breq *q)
{
	memset(q, 0, sizeof(*q));
	if (xvd_ram_alloc(d, 512, (void **)&q->hdr) < 0)
		return -ENOMEM;
	if (xvd_ram_alloc(d, DATA, (void **)&q->data) < 0) {
		xvd_ram_free(d, q->hdr);
		return -ENOMEM;
	}
	q->status = (uint8_t *)q->hdr + 64;
	return 0;
}

static void breq_free(struct xvd_domain *d, struct breq *q)
{
	xvd_ram_free(d, q->data);
	xvd_ram_free(d, q->hdr);
	memset(q, 0, sizeof(*q));
}

/* Fill the header and the three buffers; data may be replaced by raw. */
static void breq_bufs(struct breq *q, bool write, uint64_t sector, struct xvd_buf b[3])
{
	q->hdr->type = htole32(write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN);
	q->hdr->ioprio = 0;
	q->hdr->sector = htole64(sector);
	*q->status = ST_UNTOUCHED;
	q->write = write;
	b[0] = (struct xvd_buf){ .addr = q->hdr, .len = sizeof(*q->hdr) };
	b[1] = (struct xvd_buf){ .addr = q->data, .len = DATA, .dev_writes = !write };
	b[2] = (struct xvd_buf){ .addr = q->status, .len = 1, .dev_writes = true };
}

/*
 * Submit, then rewrite the chain before the backend can see it: the avail
 * index is put back while tweak() edits the rings, then published and
 * kicked.  head is the chain's first descriptor.
 */
typedef void (*tweak_fn)(struct xvd_vq *vq, uint16_t head, void *ctx);

static int submit_tweaked(struct xvd_dev *dev, const struct xvd_buf *b, unsigned int n,
			  void *cookie, tweak_fn tweak, void *ctx)
{
	struct xvd_vq *vq = &dev->vq[0];
	uint16_t head = vq->free_head, old = vq->avail_idx;
	int r;

	r = xvd_vq_submit(dev, 0, b, n, cookie, XVD_NO_KICK);
	if (r < 0)
		return r;
	XVMSG_WRITE_ONCE(vq->avail->idx, htole16(old));
	xvmsg_wmb();	/* hidden before edited: the backend reads the index first */
	if (tweak)
		tweak(vq, head, ctx);
	xvmsg_wmb();	/* edits before the index; pairs with the backend's rmb */
	XVMSG_WRITE_ONCE(vq->avail->idx, htole16(vq->avail_idx));
	return xvd_vq_kick(dev, 0);
}

/* Write a bad value into one field of d (descriptor idx of its ring or
 * table).  hold: put the old one back after a moment unless someone (the
 * library, for a new chain) wrote it since; else leave the lie. */
static void lie_desc(const struct xvd_dev *dev, uint32_t *seed, struct vring_desc *d,
		     uint16_t idx, bool hold)
{
	uint64_t a0 = __atomic_load_n(&d->addr, __ATOMIC_RELAXED), a1 = a0;
	uint32_t l0 = __atomic_load_n(&d->len, __ATOMIC_RELAXED), l1 = l0;
	uint16_t f0 = __atomic_load_n(&d->flags, __ATOMIC_RELAXED), f1 = f0;
	uint16_t n0 = __atomic_load_n(&d->next, __ATOMIC_RELAXED), n1 = n0;
	uint32_t v = rnd(seed);

	switch (v % 16) {
	case 0: case 1:
		a1 = htole64(0x1000);			/* a guest RAM frame */
		break;
	case 2: case 3:
		a1 = htole64(XVMSG_GRANT_ADDR(dev->pool_ref + dev->pool_pages + (v >> 8) % 4096, 0));
		break;
	case 4:
		a1 = htole64(0xfffffffffffff000ULL);	/* addr + len overflows */
		break;
	case 5: case 6:
		a1 = htole64(pool_addr(dev, ((v >> 8) % (dev->pool_pages * 8)) * 512));
		break;
	case 7: case 8:
		l1 = 0;
		break;
	case 9:
		l1 = htole32(0xffffffffu);
		break;
	case 10:
		l1 = htole32(le32toh(l0) + 512 * ((v >> 8) % 16));
		break;
	case 11: case 12:
		f1 = htole16(le16toh(f0) ^ (uint16_t)(1u << ((v >> 8) % 3)));	/* NEXT, WRITE, INDIRECT */
		break;
	case 13: case 14:
		n1 = htole16(idx);				/* next: itself */
		f1 = htole16(le16toh(f0) | VRING_DESC_F_NEXT);
		break;
	default:
		n1 = htole16((uint16_t)(v >> 8));		/* anywhere, often beyond the queue */
		f1 = htole16(le16toh(f0) | VRING_DESC_F_NEXT);
		break;
	}
	__atomic_store_n(&d->addr, a1, __ATOMIC_RELAXED);
	__atomic_store_n(&d->len, l1, __ATOMIC_RELAXED);
	__atomic_store_n(&d->next, n1, __ATOMIC_RELAXED);
	__atomic_store_n(&d->flags, f1, __ATOMIC_RELAXED);
	if (!hold)
		return;
	/* Hold the lie for a random few microseconds: sometimes the backend
	 * copies it, sometimes the original, sometimes a mix of fields. */
	for (volatile uint32_t i = 0, n = (v >> 20) * 8; i < n; i++)
		;
	__atomic_compare_exchange_n(&d->addr, &a1, a0, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	__atomic_compare_exchange_n(&d->len, &l1, l0, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	__atomic_compare_exchange_n(&d->next, &n1, n0, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	__atomic_compare_exchange_n(&d->flags, &f1, f0, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/* While a case lies on purpose, count the library's complaints instead of
 * printing each. */
struct quiet_log {
	struct xvd_logger saved;
	unsigned int n;
};

static void quiet_fn(void *ctx, int level, const char *msg)
{
	(void)level;
	(void)msg;
	((struct quiet_log *)ctx)->n++;
}

static void quiet(struct evil_env *e, struct quiet_log *q, bool on)
{
	if (on) {
		q->saved = e->d->log;
		q->n = 0;
		e->d->log.fn = quiet_fn;
		e->d->log.ctx = q;
	} else {
		e->d->log = q->saved;
	}
}

/* ---- the request engine: many reads and writes, each one classified ---- */

struct tamper;
static void tamper_pause(struct tamper *t, bool on);

struct eng {
	struct evil_env *e;
	struct tamper *t;		/* paused while the device resets; may be NULL */
	struct rdev *r;
	struct breq *q;
	unsigned int depth, inflight;
	uint32_t seed;
	/* outcomes */
	unsigned int submitted, ok, ioerr, refused, shortlen, oddstatus, cancelled, broken;
	unsigned int bad;		/* impossible outcomes: the case fails */
	/* Lie about a chain just made available and kicked (racing the
	 * backend, which takes it now or a moment later); NULL: none. */
	void (*lie)(struct eng *g, uint16_t head);
	unsigned int lies;
	unsigned int stalls, reset_fail;
	char why[160];
};

static int eng_init(struct eng *g, struct evil_env *e, struct rdev *r, unsigned int depth,
		    uint32_t seed)
{
	memset(g, 0, sizeof(*g));
	g->e = e;
	g->r = r;
	g->depth = depth;
	g->seed = seed;
	g->q = calloc(depth, sizeof(*g->q));
	if (!g->q)
		return -ENOMEM;
	for (unsigned int i = 0; i < depth; i++)
		if (breq_alloc(e->d, &g->q[i]) < 0)
			return -ENOMEM;
	return 0;
}

static void eng_fini(struct eng *g)
{
	for (unsigned int i = 0; g->q && i < g->depth; i++)
		if (g->q[i].hdr)
			breq_free(g->e->d, &g->q[i]);
	free(g->q);
	g->q = NULL;
}

static void eng_note(struct eng *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void eng_note(struct eng *g, const char *fmt, ...)
{
	va_list ap;

	if (g->why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(g->why, sizeof(g->why), fmt, ap);
	va_end(ap);
}

static void eng_done(struct eng *g, const struct xvd_done *d)
{
	struct breq *q = d->cookie;
	uint32_t in_len;

	if (!q || q < g->q || q >= g->q + g->depth || !q->busy) {
		g->bad++;
		eng_note(g, "a completion for no request in flight");
		return;
	}
	q->busy = false;
	g->inflight--;
	in_len = q->write ? 1 : DATA + 1;
	if (d->status == -ECANCELED) {
		g->cancelled++;
	} else if (d->status == -EIO) {
		g->broken++;
	} else if (d->status) {
		g->bad++;
		eng_note(g, "completion status %u", (unsigned int)-d->status);
	} else if (d->len == 0) {
		/* Refused: nothing may come back.  Pool mode copies back at
		 * most len bytes; in grant mode the device wrote nothing. */
		g->refused++;
		if (*q->status != ST_UNTOUCHED) {
			g->bad++;
			eng_note(g, "refused request with status byte %u", *q->status);
		}
	} else if (d->len < in_len) {
		g->shortlen++;		/* the backend saw other (tampered) lengths */
	} else if (*q->status == VIRTIO_BLK_S_OK) {
		g->ok++;
	} else if (*q->status == VIRTIO_BLK_S_IOERR || *q->status == VIRTIO_BLK_S_UNSUPP) {
		g->ioerr++;
	} else {
		g->oddstatus++;		/* the status buffer was redirected */
	}
}

static void eng_reset(struct eng *g)
{
	struct xvd_done d;
	int n;

	/* A broken device hands back what was in flight first. */
	while ((n = xvd_vq_poll(g->r->dev, 0, &d, 1)) == 1)
		eng_done(g, &d);
	/* A liar at work during the re-initialisation would make it fail:
	 * the library zeroes the rings and the device looks at them at once. */
	if (g->t)
		tamper_pause(g->t, true);
	n = xvd_dev_reset(g->r->dev);
	if (g->t)
		tamper_pause(g->t, false);
	if (n < 0) {
		g->reset_fail++;
		return;
	}
	g->r->resets++;
	g->r->needs_reset = 0;
	while (xvd_vq_poll(g->r->dev, 0, &d, 1) == 1) {
		g->r->cancelled++;
		eng_done(g, &d);
	}
}

/* Run total requests, depth at a time; 0, or -1 when the run went wrong
 * (stall, failed reset, impossible outcome; g->why says which). */
static int eng_run(struct eng *g, unsigned int total)
{
	int64_t last = xvd_now_ms();
	unsigned int completed_before, nb = 0;
	struct xvd_done d[16];
	uint16_t batch[16];

	while (g->submitted < total || g->inflight) {
		struct xvd_dev *dev = g->r->dev;
		int n;

		if (g->r->needs_reset || xvd_dev_error(dev)) {
			eng_reset(g);
			if (g->reset_fail)
				break;
			last = xvd_now_ms();
		}
		while (g->submitted < total && g->inflight < g->depth && !xvd_dev_error(dev)) {
			struct breq *q = NULL;
			struct xvd_buf b[3];
			int r;

			uint16_t head = dev->vq[0].free_head;

			for (unsigned int i = 0; i < g->depth && !q; i++)
				if (!g->q[i].busy)
					q = &g->q[i];
			breq_bufs(q, rnd(&g->seed) & 1, (rnd(&g->seed) % 512) * 8, b);
			if (q->write)
				memset(q->data, (int)(g->submitted & 0xff), DATA);
			r = xvd_vq_submit(dev, 0, b, 3, q, XVD_NO_KICK);
			if (r == -ENOSPC || r == -ENOMEM)
				break;
			if (r < 0)
				break;		/* device error: reset above */
			q->busy = true;
			g->inflight++;
			g->submitted++;
			if (nb < 16)
				batch[nb++] = head;
		}
		xvd_vq_kick(dev, 0);
		for (unsigned int i = 0; g->lie && i < nb; i++)
			g->lie(g, batch[i]);
		nb = 0;
		completed_before = g->inflight;
		n = xvd_vq_poll(dev, 0, d, 16);
		for (int i = 0; i < n; i++)
			eng_done(g, &d[i]);
		if (n > 0 || g->inflight != completed_before) {
			last = xvd_now_ms();
			continue;
		}
		if (n < 0)
			continue;	/* broken: reset at the top */
		if (xvd_now_ms() - last > STALL_MS) {
			/* Nothing for 2 s and no NEEDS_RESET: a hang. */
			g->stalls++;
			eng_note(g, "no completion for %d ms without NEEDS_RESET", STALL_MS);
			eng_reset(g);
			if (g->reset_fail)
				break;
			last = xvd_now_ms();
			continue;
		}
		xvd_dev_wait(dev, 20);
	}
	if (g->reset_fail)
		eng_note(g, "reset failed (%u times)", g->reset_fail);
	return g->bad || g->stalls || g->reset_fail ? -1 : 0;
}

static void eng_say(const struct eng *g, char *obs, size_t len)
{
	evil_say(obs, len, "%u requests: %u ok, %u refused, %u io-error, %u short, %u odd-status, "
		 "%u broken, %u cancelled; %u NEEDS_RESET, %u resets",
		 g->submitted, g->ok, g->refused, g->ioerr, g->shortlen, g->oddstatus, g->broken,
		 g->cancelled, g->r->nr_events, g->r->resets);
	if (g->why[0])
		evil_say(obs, len, "; %s", g->why);
}

/* After a storm: the device works (after a reset if it needs one), the
 * backend is not left spinning. */
static int after_storm(struct evil_env *e, struct rdev *r, char *obs, size_t len)
{
	long cpu;
	int rc;

	if (r->needs_reset || xvd_dev_error(r->dev)) {
		rc = rdev_reset(r);
		if (rc) {
			evil_say(obs, len, "; final reset failed: %s", strerror(-rc));
			return -1;
		}
	}
	rc = evil_blk_still_works(r->dev);
	if (rc) {
		evil_say(obs, len, "; the device does not work afterwards: %s", strerror(-rc));
		return -1;
	}
	cpu = evil_backend_idle(e, 500);
	if (cpu < 0) {
		evil_say(obs, len, "; the backend keeps spinning afterwards");
		return -1;
	}
	evil_say(obs, len, "; afterwards the device works, backend idle (%ld ms CPU in 500 ms)", cpu);
	return 0;
}

/* ---- a second thread that lies in shared memory ------------------------ */

enum { T_DESC, T_INDIRECT, T_AVAIL, T_GNT };

struct tamper {
	int kind;
	struct xvd_dev *dev;
	struct vring_desc *desc;
	struct vring_avail *avail;
	uint16_t size;
	struct xvmsg_loop_gnt *gnt;	/* T_GNT: the loopback grant table */
	uint32_t ngnt;
	uint32_t seed;
	int stop;
	int pause, parked;		/* pause asked / the thread is waiting */
	unsigned long lies;		/* rewrites done */
	pthread_t th;
};

static void *tamper_main(void *arg)
{
	struct tamper *t = arg;

	while (!__atomic_load_n(&t->stop, __ATOMIC_RELAXED)) {
		if (__atomic_load_n(&t->pause, __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&t->parked, 1, __ATOMIC_RELEASE);
			pause_us(100);
			continue;
		}
		/* Aim at a chain published a moment ago: most likely still in
		 * flight.  Walk a step or two along it, as the backend would. */
		uint16_t aidx = le16toh(__atomic_load_n(&t->avail->idx, __ATOMIC_RELAXED));
		uint32_t v = rnd(&t->seed);
		uint16_t i;
		struct vring_desc *d;

		i = le16toh(__atomic_load_n(&t->avail->ring[(uint16_t)(aidx - 1 - v % 4) % t->size],
					    __ATOMIC_RELAXED));

		if (t->kind == T_AVAIL || i >= t->size)
			i = (uint16_t)(v >> 16) % t->size;
		for (unsigned int k = (v >> 4) % 3; k && t->kind == T_DESC; k--) {
			struct vring_desc *c = &t->desc[i];
			uint16_t nx = le16toh(__atomic_load_n(&c->next, __ATOMIC_RELAXED));

			if (!(le16toh(__atomic_load_n(&c->flags, __ATOMIC_RELAXED)) & VRING_DESC_F_NEXT) ||
			    nx >= t->size)
				break;
			i = nx;
		}
		d = &t->desc[i];

		if (t->kind == T_DESC) {
			lie_desc(t->dev, &t->seed, d, i, true);
		} else if (t->kind == T_INDIRECT) {
			/* Find the table through the ring, as the backend does. */
			uint64_t a = le64toh(__atomic_load_n(&d->addr, __ATOMIC_RELAXED));
			uint32_t l = le32toh(__atomic_load_n(&d->len, __ATOMIC_RELAXED));
			uint16_t f = le16toh(__atomic_load_n(&d->flags, __ATOMIC_RELAXED));
			struct vring_desc *tbl;

			if ((f & VRING_DESC_F_INDIRECT) && l >= 16 && l <= 16 * XVD_MAX_SEGS &&
			    !(l % 16) && !(a % 16) && (tbl = pool_ptr(t->dev, a, l))) {
				uint16_t k = (uint16_t)(rnd(&t->seed) % (l / 16));

				lie_desc(t->dev, &t->seed, &tbl[k], k, true);
			} else {
				continue;
			}
		} else if (t->kind == T_AVAIL) {
			/* Publish entries the library never made: random heads,
			 * sometimes beyond the queue. */
			uint16_t idx = le16toh(__atomic_load_n(&t->avail->idx, __ATOMIC_RELAXED));
			unsigned int k = 1 + rnd(&t->seed) % 3;

			for (unsigned int j = 0; j < k; j++)
				__atomic_store_n(&t->avail->ring[(uint16_t)(idx + j) % t->size],
						 htole16((uint16_t)(rnd(&t->seed) % (t->size + t->size / 16))),
						 __ATOMIC_RELAXED);
			xvmsg_wmb();	/* entries before the index, as a driver would */
			__atomic_store_n(&t->avail->idx, htole16((uint16_t)(idx + k)), __ATOMIC_RELAXED);
		} else {
			/* End the grant of a buffer in flight behind the
			 * backend's back: the whole entry to 0, busy or not. */
			uint64_t a = le64toh(__atomic_load_n(&d->addr, __ATOMIC_RELAXED));
			uint64_t ref = XVMSG_ADDR_PFN(a);

			if (!XVMSG_ADDR_IS_GRANT(a) || ref < 8 || ref >= t->ngnt)
				continue;
			__atomic_store_n((uint64_t *)&t->gnt[ref], 0, __ATOMIC_SEQ_CST);
		}
		t->lies++;
		pause_us(t->kind == T_AVAIL ? 200 : 20);
	}
	return NULL;
}

static int tamper_start(struct tamper *t, int kind, struct xvd_dev *dev, uint32_t seed,
			struct xvmsg_loop_gnt *gnt, uint32_t ngnt)
{
	memset(t, 0, sizeof(*t));
	t->gnt = gnt;
	t->ngnt = ngnt;
	t->kind = kind;
	t->dev = dev;
	t->desc = dev->vq[0].desc;
	t->avail = dev->vq[0].avail;
	t->size = dev->vq[0].size;
	t->seed = seed;
	return -pthread_create(&t->th, NULL, tamper_main, t);
}

/* Pause (and wait, bounded, until no lie is half written) or resume. */
static void tamper_pause(struct tamper *t, bool on)
{
	int64_t end = xvd_now_ms() + 1000;

	/* The thread sets parked only between lies, while paused. */
	__atomic_store_n(&t->parked, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&t->pause, on, __ATOMIC_RELEASE);
	while (on && !__atomic_load_n(&t->parked, __ATOMIC_ACQUIRE) && xvd_now_ms() < end)
		pause_us(50);
}

static void tamper_stop(struct tamper *t)
{
	__atomic_store_n(&t->stop, 1, __ATOMIC_RELAXED);
	pthread_join(t->th, NULL);
}

/* ---- the loopback grant table, as a hostile granter sees it ------------ */

/* Our own domain's grant table entries: the memfd mapping of this process
 * whose entry for a probe grant we just made names the probe frame. */
static struct xvmsg_loop_gnt *loop_gnt_table(struct xvd_domain *d, uint32_t *n)
{
	struct drv_bus *bus = d->bus;
	struct xvmsg_loop_gnt *found = NULL;
	const uint64_t probe = 0xe71f1;
	char line[512];
	uint32_t ref;
	FILE *f;

	if (bus->ops->gnt_alloc(bus, 1, &ref) < 0)
		return NULL;
	if (bus->ops->gnt_grant(bus, ref, probe, true) < 0)
		goto out;
	f = fopen("/proc/self/maps", "r");
	while (f && !found && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		struct xvmsg_loop_gnt *g;

		if (!strstr(line, "memfd:xvmsg-gnttab") || sscanf(line, "%lx-%lx", &lo, &hi) != 2)
			continue;
		g = (struct xvmsg_loop_gnt *)lo;
		if ((hi - lo) / sizeof(*g) > ref && le32toh(g[ref].frame) == probe &&
		    (le16toh(g[ref].flags) & XVMSG_GTF_READONLY)) {
			found = g;
			*n = (uint32_t)((hi - lo) / sizeof(*g));
		}
	}
	if (f)
		fclose(f);
	bus->ops->gnt_revoke(bus, ref);
out:
	bus->ops->gnt_free(bus, ref, 1);
	return found;
}

/* ---- 1, 2: descriptors rewritten while in flight ------------------------ */

/* One chain in three: rewrite one of its descriptors (direct) or table
 * entries (indirect) right after the kick. */
static void lie_direct(struct eng *g, uint16_t head)
{
	struct xvd_vq *vq = &g->r->dev->vq[0];
	uint32_t v = rnd(&g->seed);
	uint16_t i = head;

	if (v % 3)
		return;
	for (unsigned int k = (v >> 8) % 3; k; k--)
		i = vq->next[i];	/* our own copy of the chain */
	lie_desc(g->r->dev, &g->seed, &vq->desc[i], i, false);
	g->lies++;
}

static void lie_indirect(struct eng *g, uint16_t head)
{
	struct xvd_vq *vq = &g->r->dev->vq[0];
	struct vring_desc *tbl = vq->chain[head].ind.va;
	uint32_t v = rnd(&g->seed);
	uint16_t k = (uint16_t)((v >> 8) % 4);

	if (v % 3)
		return;
	if (k == 3 || !tbl) {
		lie_desc(g->r->dev, &g->seed, &vq->desc[head], head, false);	/* the ring entry */
	} else {
		lie_desc(g->r->dev, &g->seed, &tbl[k], k, false);
	}
	g->lies++;
}

static int toctou(struct evil_env *e, char *obs, size_t len, bool indirect)
{
	struct xvd_dev_opts o = { .queue_size = 64 };
	struct rdev r;
	struct eng g;
	struct tamper t;
	struct quiet_log ql;
	int rc, fail = 0;

	if (indirect)
		o.indirect_min = 1;
	else
		o.no_indirect = true;
	rc = rdev_open(e, &r, XVD_MODE_POOL, &o);
	if (rc) {
		evil_say(obs, len, "open: %s", strerror(-rc));
		return -1;
	}
	if (eng_init(&g, e, &r, 16, indirect ? 0x1d1 : 0xd5c) < 0 ||
	    tamper_start(&t, indirect ? T_INDIRECT : T_DESC, r.dev, 0x7a3, NULL, 0) != 0) {
		evil_say(obs, len, "setup failed");
		eng_fini(&g);
		rdev_close(&r);
		return -1;
	}
	g.lie = indirect ? lie_indirect : lie_direct;
	g.t = &t;
	quiet(e, &ql, true);
	fail = eng_run(&g, e->xen ? 600 : 2000);	/* Xen runs in QEMU (TCG) */
	tamper_stop(&t);
	quiet(e, &ql, false);
	eng_say(&g, obs, len);
	evil_say(obs, len, "; %u lies right after the kick, %lu by a second thread; the library "
		 "logged %u errors", g.lies, t.lies, ql.n);
	if (!fail && g.ok == 0) {
		evil_say(obs, len, "; no request completed OK");
		fail = -1;
	}
	if (!fail && g.refused + g.ioerr + g.shortlen + g.oddstatus + g.broken + r.nr_events == 0) {
		evil_say(obs, len, "; no lie had any effect");
		fail = -1;
	}
	if (!fail)
		fail = after_storm(e, &r, obs, len);
	eng_fini(&g);
	rdev_close(&r);
	return fail;
}

static int case_desc_toctou(struct evil_env *e, char *obs, size_t len)
{
	return toctou(e, obs, len, false);
}

static int case_indirect_toctou(struct evil_env *e, char *obs, size_t len)
{
	return toctou(e, obs, len, true);
}

/* ---- 3: loops ----------------------------------------------------------- */

struct loop_tw {
	int how;
};

enum { LOOP_CYCLE, LOOP_SELF, IND_NESTED, IND_CYCLE };

static void tweak_loop(struct xvd_vq *vq, uint16_t head, void *ctx)
{
	const struct loop_tw *tw = ctx;
	uint16_t data = vq->next[head], status = vq->next[data];
	struct vring_desc *tbl = vq->chain[head].ind.va;

	switch (tw->how) {
	case LOOP_CYCLE:	/* data -> status -> data ..., all device-writable */
		vq->desc[status].flags |= htole16(VRING_DESC_F_NEXT);
		vq->desc[status].next = htole16(data);
		break;
	case LOOP_SELF:		/* status -> status ... */
		vq->desc[status].flags |= htole16(VRING_DESC_F_NEXT);
		vq->desc[status].next = htole16(status);
		break;
	case IND_NESTED:	/* the table's data entry is itself indirect */
		tbl[1].flags |= htole16(VRING_DESC_F_INDIRECT);
		break;
	case IND_CYCLE:		/* table: 0 -> 1 -> 2 -> 1 ... */
		tbl[2].flags |= htole16(VRING_DESC_F_NEXT);
		tbl[2].next = htole16(1);
		break;
	}
}

/* Submit one read with a tweak; *used = its used length, or -1 when the
 * device went NEEDS_RESET instead.  0 or -errno. */
static int one_read(struct evil_env *e, struct rdev *r, tweak_fn tw, void *ctx, int *used,
		    uint8_t *status)
{
	struct breq q;
	struct xvd_buf b[3];
	struct xvd_done d;
	int rc;

	if (breq_alloc(e->d, &q) < 0)
		return -ENOMEM;
	breq_bufs(&q, false, 0, b);
	rc = submit_tweaked(r->dev, b, 3, &q, tw, ctx);
	if (rc == 0) {
		rc = wait_one(r, &d, 3000);
		if (rc == 1) {
			*used = d.status ? -2 : (int)d.len;
			rc = 0;
		} else if (rc == 0 && r->needs_reset) {
			*used = -1;
		} else if (rc == 0) {
			rc = -ETIMEDOUT;
		}
	}
	*status = *q.status;
	/* A request still in flight is cancelled by the reset that follows
	 * (the memory stays ours until then). */
	if (rc == 0 && *used == -1) {
		rc = rdev_reset(r);
	}
	breq_free(e->d, &q);
	return rc;
}

static int case_desc_loop(struct evil_env *e, char *obs, size_t len)
{
	static const struct { const char *name; int how; unsigned int qsize; bool ind; bool reset; } st[] = {
		{ "writable cycle, queue 256", LOOP_CYCLE, 256, false, false },
		{ "next to itself, queue 256", LOOP_SELF, 256, false, false },
		{ "indirect in indirect", IND_NESTED, 256, true, false },
		{ "cycle in an indirect table", IND_CYCLE, 256, true, false },
		{ "writable cycle, queue 64", LOOP_CYCLE, 64, false, true },
		{ "next to itself, queue 64", LOOP_SELF, 64, false, true },
	};
	unsigned int pass = 0;

	for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
		struct xvd_dev_opts o = { .queue_size = st[i].qsize };
		struct loop_tw tw = { st[i].how };
		struct rdev r;
		uint8_t status = 0;
		int used = 0, rc;
		bool good;

		if (st[i].ind)
			o.indirect_min = 1;
		else
			o.no_indirect = true;
		rc = rdev_open(e, &r, XVD_MODE_POOL, &o);
		if (rc) {
			evil_say(obs, len, "%s: open: %s; ", st[i].name, strerror(-rc));
			continue;
		}
		rc = one_read(e, &r, tweak_loop, &tw, &used, &status);
		/* Loops the segment limit (128) catches first are the
		 * request's own fault: refused.  Shorter queues catch the loop
		 * itself: the ring lies, NEEDS_RESET. */
		good = rc == 0 && (st[i].reset ? used == -1 && r.resets == 1
					       : used == 0 && status == ST_UNTOUCHED);
		if (good && evil_blk_still_works(r.dev))
			good = false;
		evil_say(obs, len, "%s: %s%s; ", st[i].name,
			 rc ? strerror(-rc) : used == -1 ? "NEEDS_RESET, reset" :
			 used == 0 ? "refused" : "served", good ? "" : " (WRONG)");
		pass += good;
		rdev_close(&r);
	}
	evil_say(obs, len, "%u/6 as expected", pass);
	if (e->log_count)
		evil_say(obs, len, "; backend logged %d loops, %d too-many, %d bad-indirect",
			 e->log_count(e->log_ctx, "loops"),
			 e->log_count(e->log_ctx, "too many buffers"),
			 e->log_count(e->log_ctx, "bad indirect"));
	return pass == 6 ? 0 : -1;
}

/* ---- 4: avail index and entries that lie -------------------------------- */

static int case_avail_ahead(struct evil_env *e, char *obs, size_t len)
{
	static const char *const names[] = { "index size+1 ahead", "index 1 behind",
					     "entry beyond the queue" };
	struct rdev r;
	unsigned int pass = 0;
	int rc;

	rc = rdev_open(e, &r, XVD_MODE_POOL, NULL);
	if (rc) {
		evil_say(obs, len, "open: %s", strerror(-rc));
		return -1;
	}
	for (int k = 0; k < 3; k++) {
		struct xvd_vq *vq = &r.dev->vq[0];
		uint16_t last;
		bool good;

		/* Some honest traffic first, so the indices are not 0. */
		if (evil_blk_still_works(r.dev) || evil_blk_still_works(r.dev)) {
			evil_say(obs, len, "%s: honest I/O failed; ", names[k]);
			continue;
		}
		last = vq->avail_idx;	/* = the backend's next entry: all consumed */
		if (k == 0) {
			XVMSG_WRITE_ONCE(vq->avail->idx, htole16((uint16_t)(last + vq->size + 1)));
		} else if (k == 1) {
			XVMSG_WRITE_ONCE(vq->avail->idx, htole16((uint16_t)(last - 1)));
		} else {
			XVMSG_WRITE_ONCE(vq->avail->ring[last % vq->size], htole16(vq->size + 7));
			xvmsg_wmb();	/* entry before the index */
			XVMSG_WRITE_ONCE(vq->avail->idx, htole16((uint16_t)(last + 1)));
		}
		kick_raw(r.dev);
		good = evil_wait_needs_reset(r.dev, 2000) == 1;
		/* evil_wait_needs_reset took the event; the callback saw it. */
		good = good && r.needs_reset;
		rc = rdev_reset(&r);
		good = good && rc == 0 && evil_blk_still_works(r.dev) == 0;
		evil_say(obs, len, "%s: %s; ", names[k], good ? "NEEDS_RESET, reset, works" : "WRONG");
		pass += good;
	}
	evil_say(obs, len, "%u/3 as expected", pass);
	rdev_close(&r);
	return pass == 3 ? 0 : -1;
}

/* ---- 5: a thread publishing entries that were never made --------------- */

static int case_avail_race(struct evil_env *e, char *obs, size_t len)
{
	struct xvd_dev_opts o = { .queue_size = 64, .no_indirect = true };
	struct rdev r;
	struct eng g;
	struct tamper t;
	struct quiet_log ql;
	int rc, fail;

	rc = rdev_open(e, &r, XVD_MODE_POOL, &o);
	if (rc) {
		evil_say(obs, len, "open: %s", strerror(-rc));
		return -1;
	}
	if (eng_init(&g, e, &r, 16, 0xa7a) < 0 || tamper_start(&t, T_AVAIL, r.dev, 0x51, NULL, 0) != 0) {
		evil_say(obs, len, "setup failed");
		eng_fini(&g);
		rdev_close(&r);
		return -1;
	}
	g.t = &t;
	quiet(e, &ql, true);
	fail = eng_run(&g, e->xen ? 500 : 1500);
	tamper_stop(&t);
	quiet(e, &ql, false);
	eng_say(&g, obs, len);
	evil_say(obs, len, "; %lu lies; the library logged %u errors", t.lies, ql.n);
	/* Entries nobody made complete chains the library does not have in
	 * flight (it breaks the device) or make the backend refuse the ring. */
	if (!fail && r.nr_events + g.broken + r.resets == 0) {
		evil_say(obs, len, "; neither NEEDS_RESET nor a broken device");
		fail = -1;
	}
	if (!fail && g.ok == 0) {
		evil_say(obs, len, "; no request completed OK");
		fail = -1;
	}
	if (!fail)
		fail = after_storm(e, &r, obs, len);
	eng_fini(&g);
	rdev_close(&r);
	return fail;
}

/* ---- 6: one head made available twice --------------------------------- */

struct dup_tw {
	bool mid;		/* the second entry names the chain's middle */
};

static void tweak_dup(struct xvd_vq *vq, uint16_t head, void *ctx)
{
	const struct dup_tw *tw = ctx;

	/* The library published avail_idx = old + 1 with ring[old] = head:
	 * add ring[old + 1] and count it in the index it publishes next. */
	XVMSG_WRITE_ONCE(vq->avail->ring[vq->avail_idx % vq->size],
		htole16(tw->mid ? vq->next[head] : head));
	vq->avail_idx++;	/* the library's shadow: it publishes this one */
}

static int case_head_dup(struct evil_env *e, char *obs, size_t len)
{
	struct quiet_log ql;
	unsigned int pass = 0;

	quiet(e, &ql, true);
	for (int k = 0; k < 2; k++) {
		struct xvd_dev_opts o = { .no_indirect = true };
		struct dup_tw tw = { k == 1 };
		struct rdev r;
		struct breq q;
		struct xvd_buf b[3];
		struct xvd_vq *vq;
		struct xvd_done d;
		uint16_t base, head, uidx = 0;
		uint32_t id0 = 0, id1 = 0, len0 = 0, len1 = 0;
		int64_t end;
		bool good = false, both = false;
		int rc;

		rc = rdev_open(e, &r, XVD_MODE_POOL, &o);
		if (rc) {
			evil_say(obs, len, "open: %s; ", strerror(-rc));
			continue;
		}
		if (evil_blk_still_works(r.dev) || breq_alloc(e->d, &q) < 0) {
			evil_say(obs, len, "setup failed; ");
			rdev_close(&r);
			continue;
		}
		vq = &r.dev->vq[0];
		base = vq->last_used;
		head = vq->free_head;
		breq_bufs(&q, false, 0, b);
		rc = submit_tweaked(r.dev, b, 3, &q, tweak_dup, &tw);
		/* Watch the used ring itself: the library rejects the second
		 * entry (it names nothing in flight). */
		end = xvd_now_ms() + 2000;
		while (rc == 0 && !r.needs_reset && xvd_now_ms() < end) {
			uidx = le16toh(XVMSG_READ_ONCE(vq->used->idx));
			if ((uint16_t)(uidx - base) >= 2) {
				both = true;
				break;
			}
			xvd_dev_wait(r.dev, 20);
			xvd_dev_config_events(r.dev, NULL, NULL);
		}
		if (both) {
			id0 = le32toh(XVMSG_READ_ONCE(vq->used->ring[base % vq->size].id));
			len0 = le32toh(XVMSG_READ_ONCE(vq->used->ring[base % vq->size].len));
			id1 = le32toh(XVMSG_READ_ONCE(vq->used->ring[(uint16_t)(base + 1) % vq->size].id));
			len1 = le32toh(XVMSG_READ_ONCE(vq->used->ring[(uint16_t)(base + 1) % vq->size].len));
		}
		while (xvd_vq_poll(r.dev, 0, &d, 1) == 1)
			;
		if (k == 0) {
			/* Served twice when the first I/O completed before the
			 * second entry was taken; NEEDS_RESET when blk still had
			 * it in flight (I/O is asynchronous). */
			good = (both && id0 == head && id1 == head && len0 == DATA + 1 &&
				len1 == DATA + 1) || r.needs_reset;
			evil_say(obs, len, "head twice: %s (used %u:%u, %u:%u), library %s; ",
				 both ? "served twice" : r.needs_reset ? "NEEDS_RESET" : "neither",
				 id0, len0, id1, len1, xvd_dev_error(r.dev) ? "broke the device" : "fine");
		} else {
			/* A chain starting at a device-writable descriptor
			 * has no header: blk refuses it, possibly before the
			 * whole chain's I/O has completed (either order). */
			uint16_t mid = vq->next[head];

			good = (both && id0 == head && len0 == DATA + 1 && id1 == mid && len1 == 0) ||
			       (both && id1 == head && len1 == DATA + 1 && id0 == mid && len0 == 0) ||
			       r.needs_reset;
			evil_say(obs, len, "middle of a chain as head: %s (used %u:%u, %u:%u), library %s; ",
				 both ? "served, then refused" : r.needs_reset ? "NEEDS_RESET" : "neither",
				 id0, len0, id1, len1, xvd_dev_error(r.dev) ? "broke the device" : "fine");
		}
		if (both && !xvd_dev_error(r.dev))
			good = false;	/* the library must notice the extra entry */
		rc = rdev_reset(&r);
		good = good && rc == 0 && evil_blk_still_works(r.dev) == 0;
		pass += good;
		breq_free(e->d, &q);
		rdev_close(&r);
	}
	quiet(e, &ql, false);
	evil_say(obs, len, "%u/2 as expected, device works after a reset; the library logged %u "
		 "errors", pass, ql.n);
	return pass == 2 ? 0 : -1;
}

/* ---- 7, 12: addresses outside the mode --------------------------------- */

struct raw_addr {
	const char *name;
	uint64_t addr;
	uint32_t len;
	bool write;		/* the raw buffer is device-readable (a write) */
};

/* Each address as the data buffer of one request: refused with length 0,
 * the status untouched, the device still works after each. */
static unsigned int try_raw(struct evil_env *e, struct rdev *r, const struct raw_addr *ra,
			    unsigned int n, char *obs, size_t len)
{
	unsigned int pass = 0;
	struct breq q;

	if (breq_alloc(e->d, &q) < 0)
		return 0;
	for (unsigned int i = 0; i < n; i++) {
		struct xvd_buf b[3];
		struct xvd_done d;
		int rc;
		bool good;

		breq_bufs(&q, ra[i].write, 16, b);
		b[1] = (struct xvd_buf){ .len = ra[i].len, .dev_writes = !ra[i].write, .raw = true,
					 .bus_addr = ra[i].addr };
		rc = xvd_vq_submit(r->dev, 0, b, 3, &q, 0);
		if (rc == 0)
			rc = wait_one(r, &d, 3000);
		good = rc == 1 && d.status == 0 && d.len == 0 && *q.status == ST_UNTOUCHED &&
		       evil_blk_still_works(r->dev) == 0;
		if (!good)
			evil_say(obs, len, "%s: rc %d len %u status 0x%x (WRONG); ", ra[i].name, rc,
				 rc == 1 ? d.len : 0, *q.status);
		pass += good;
		if (rc != 1)
			break;		/* still in flight: stop using q */
	}
	breq_free(e->d, &q);
	return pass;
}

#define RAW_MAX 12	/* addresses one case tries */

/* A disk in mode, and each address fill() names for it (at most RAW_MAX)
 * refused as try_raw() wants: 0, or -1 saying which were not. */
static int refuse_raw(struct evil_env *e, int mode,
		      unsigned int (*fill)(const struct evil_env *e, const struct xvd_dev *dev,
					   struct raw_addr *ra),
		      char *obs, size_t len)
{
	struct raw_addr ra[RAW_MAX];
	struct rdev r;
	unsigned int pass, n;
	int rc;

	rc = rdev_open(e, &r, mode, NULL);
	if (rc) {
		evil_say(obs, len, "open: %s", strerror(-rc));
		return -1;
	}
	n = fill(e, r.dev, ra);
	pass = try_raw(e, &r, ra, n, obs, len);
	evil_say(obs, len, "%u/%u refused with length 0, status untouched, device works after each",
		 pass, n);
	rdev_close(&r);
	return pass == n ? 0 : -1;
}

static unsigned int addr_outside(const struct evil_env *e, const struct xvd_dev *dev,
				 struct raw_addr *ra)
{
	const uint64_t end = (uint64_t)dev->pool_pages * XVMSG_PAGE_SIZE;
	const struct raw_addr list[] = {
		{ "guest frame", 0x1000, DATA, false },
		{ "frame of the pool's own page", (uint64_t)dev->region.gfn << 12, DATA, false },
		{ "ref just past the pool", XVMSG_GRANT_ADDR(dev->pool_ref + dev->pool_pages, 0), DATA, false },
		{ "ref far beyond the pool", XVMSG_GRANT_ADDR(dev->pool_ref + 0x7fff0, 0), DATA, false },
		{ "reserved ref", XVMSG_GRANT_ADDR(2, 0), DATA, false },
		{ "ref 0xffffffff", XVMSG_GRANT_ADDR(0xffffffffULL, 0), DATA, false },
		{ "last pool page + 8 KiB", pool_addr(dev, end - XVMSG_PAGE_SIZE), 2 * DATA, false },
		{ "overflowing addr+len", 0xfffffffffffff000ULL, DATA, false },
		{ "overflow into the grant bit", 0x7ffffffffffff000ULL, 2 * DATA, false },
		{ "4 GiB-1 from the pool start", pool_addr(dev, 0), 0xffffffffu, true },
	};

	_Static_assert(sizeof(list) / sizeof(list[0]) <= RAW_MAX, "RAW_MAX");
	memcpy(ra, list, sizeof(list));
	return sizeof(list) / sizeof(list[0]);
}

static int case_addr_outside(struct evil_env *e, char *obs, size_t len)
{
	int rc = refuse_raw(e, XVD_MODE_POOL, addr_outside, obs, len);

	if (e->log_count)
		evil_say(obs, len, "; backend logged %d refusals",
			 e->log_count(e->log_ctx, "refused a request"));
	return rc;
}

/* Device-writable buffers over the queue's own rings.  Served, the read
 * would write disk data into the rings after the device last looked at
 * them (the I/O is asynchronous): a used entry or avail_event rewritten,
 * the driver no longer kicks, the device waits for a kick. */
static unsigned int ring_overlap(const struct evil_env *e, const struct xvd_dev *dev,
				 struct raw_addr *ra)
{
	const struct xvd_vq *vq = &dev->vq[0];
	const uint64_t used_end = vq->used_addr + 6 + 8 * (uint64_t)vq->size;
	const struct raw_addr list[] = {
		{ "the descriptor table", vq->desc_addr, 512, false },
		{ "the avail ring", vq->avail_addr, 512, false },
		{ "the used ring", vq->used_addr, 512, false },
		{ "512 bytes ending on avail_event", used_end - 512, 512, false },
	};

	_Static_assert(sizeof(list) / sizeof(list[0]) <= RAW_MAX, "RAW_MAX");
	memcpy(ra, list, sizeof(list));
	return sizeof(list) / sizeof(list[0]);
}

static int case_ring_overlap(struct evil_env *e, char *obs, size_t len)
{
	return refuse_raw(e, XVD_MODE_POOL, ring_overlap, obs, len);
}

static unsigned int full_outside(const struct evil_env *e, const struct xvd_dev *dev,
				 struct raw_addr *ra)
{
	const struct xvd_ram *ram = &e->d->ram;
	const uint64_t ram_end = (ram->mem.gfn + ram->mem.pages) << 12;
	const struct raw_addr list[] = {
		{ "frame just past RAM", ram_end, DATA, false },
		{ "last RAM page + 8 KiB", ram_end - XVMSG_PAGE_SIZE, 2 * DATA, false },
		{ "frame 2^34", 1ULL << 46, DATA, false },
		{ "beyond the 2^48 limit", 1ULL << 48, DATA, false },
		{ "a grant address", XVMSG_GRANT_ADDR(dev->pool_ref, 0), DATA, false },
		{ "overflowing addr+len", 0xfffffffffffff000ULL, DATA, false },
		{ "overflow into the grant bit", 0x7ffffffffffff000ULL, 2 * DATA, false },
		{ "4 GiB-1 from RAM", ram->mem.gfn << 12, 0xffffffffu, true },
	};

	_Static_assert(sizeof(list) / sizeof(list[0]) <= RAW_MAX, "RAW_MAX");
	memcpy(ra, list, sizeof(list));
	return sizeof(list) / sizeof(list[0]);
}

static int case_full_outside(struct evil_env *e, char *obs, size_t len)
{
	return refuse_raw(e, XVD_MODE_FULL, full_outside, obs, len);
}

/* ---- 8: a device-writable buffer granted read-only ---------------------- */

static int case_grant_readonly_write(struct evil_env *e, char *obs, size_t len)
{
	struct drv_bus *bus = e->d->bus;
	struct rdev r;
	struct breq q;
	uint8_t *page = NULL;
	unsigned int pass = 0, unchanged = 0;
	int rc;

	rc = rdev_open(e, &r, XVD_MODE_GRANT, NULL);
	if (rc) {
		evil_say(obs, len, "open: %s", strerror(-rc));
		return -1;
	}
	if (breq_alloc(e->d, &q) < 0 || xvd_ram_alloc(e->d, DATA, (void **)&page) < 0) {
		evil_say(obs, len, "no RAM");
		rdev_close(&r);
		return -1;
	}
	for (int k = 0; k < 2; k++) {	/* the data buffer, then the status byte */
		uint64_t gfn = e->d->ram.mem.gfn + (uint64_t)(page - (uint8_t *)e->d->ram.mem.va) / 4096;
		struct xvd_buf b[3];
		struct xvd_done d;
		uint32_t ref;
		bool same = true;
		int rv;

		memset(page, 0x3c, DATA);
		if (bus->ops->gnt_alloc(bus, 1, &ref) < 0 || bus->ops->gnt_grant(bus, ref, gfn, true) < 0)
			break;
		breq_bufs(&q, false, 16, b);
		if (k == 0)
			b[1] = (struct xvd_buf){ .len = DATA, .dev_writes = true, .raw = true,
						 .bus_addr = XVMSG_GRANT_ADDR(ref, 0) };
		else
			b[2] = (struct xvd_buf){ .len = 1, .dev_writes = true, .raw = true,
						 .bus_addr = XVMSG_GRANT_ADDR(ref, 100) };
		rc = xvd_vq_submit(r.dev, 0, b, 3, &q, 0);
		if (rc == 0)
			rc = wait_one(&r, &d, 3000);
		for (int i = 0; i < DATA; i++)
			same = same && page[i] == 0x3c;
		unchanged += same;
		rv = bus->ops->gnt_revoke(bus, ref);	/* -EBUSY: still mapped */
		bus->ops->gnt_free(bus, ref, 1);
		if (rc == 1 && d.status == 0 && d.len == 0 && same && rv == 0 &&
		    evil_blk_still_works(r.dev) == 0)
			pass++;
		else
			evil_say(obs, len, "%s: rc %d len %u unchanged %d revoke %d (WRONG); ",
				 k ? "status" : "data", rc, rc == 1 ? d.len : 0, same, rv);
		if (rc != 1)
			break;
	}
	evil_say(obs, len, "%u/2 refused with length 0 (data buffer, status byte), page unchanged %u/2, "
		 "grant not left mapped, device works after each", pass, unchanged);
	if (e->log_count)
		evil_say(obs, len, "; backend logged %d refusals",
			 e->log_count(e->log_ctx, "refused a request"));
	xvd_ram_free(e->d, page);
	breq_free(e->d, &q);
	rdev_close(&r);
	return pass == 2 ? 0 : -1;
}

/* ---- 9: grants ended behind the backend's back while mapped ------------- */

/* Backend mappings and fds: not more after than before. */
static int no_more(const char *what, long before, long after, char *obs, size_t len)
{
	evil_say(obs, len, "; %s %ld -> %ld", what, before, after);
	if (before < 0 || after < 0 || after <= before)
		return 0;
	evil_say(obs, len, " (LEAK)");
	return -1;
}

static int case_grant_revoked(struct evil_env *e, char *obs, size_t len)
{
	struct xvd_dev_opts o = { .queue_size = 64, .no_indirect = true };
	long maps0 = evil_backend_guest_maps(e), fds0 = evil_backend_fds(e), maps1, fds1;
	struct quiet_log ql;
	struct xvmsg_loop_gnt *gt;
	struct rdev r;
	struct eng g;
	struct tamper t;
	uint32_t n = 0;
	int rc, fail;

	rc = rdev_open(e, &r, XVD_MODE_GRANT, &o);
	if (rc) {
		evil_say(obs, len, "open: %s", strerror(-rc));
		return -1;
	}
	gt = loop_gnt_table(e->d, &n);
	if (!gt || eng_init(&g, e, &r, 16, 0x9e7) < 0 ||
	    tamper_start(&t, T_GNT, r.dev, 0x33, gt, n) != 0) {
		evil_say(obs, len, gt ? "setup failed" : "cannot find our grant table");
		eng_fini(&g);
		rdev_close(&r);
		return -1;
	}
	g.t = &t;
	maps1 = evil_backend_guest_maps(e);
	fds1 = evil_backend_fds(e);
	quiet(e, &ql, true);
	fail = eng_run(&g, 1500);
	quiet(e, &ql, false);
	tamper_stop(&t);
	eng_say(&g, obs, len);
	evil_say(obs, len, "; %lu grant entries zeroed", t.lies);
	if (!fail && (g.ok == 0 || g.refused == 0)) {
		evil_say(obs, len, "; expected both completions and refusals");
		fail = -1;
	}
	if (!fail)
		fail = after_storm(e, &r, obs, len);
	/* Idle and open: the rings and nothing else, as before the storm. */
	fail |= no_more("guest-memory mappings while open", maps1, evil_backend_guest_maps(e),
			obs, len);
	fail |= no_more("fds while open", fds1, evil_backend_fds(e), obs, len);
	eng_fini(&g);
	rdev_close(&r);
	fail |= no_more("guest-memory mappings before open / after close", maps0,
			evil_backend_guest_maps(e), obs, len);
	/* The device's channels and region are released at close; the guest's
	 * RAM, shared with the backend by the first grant-mode buffer, stays
	 * registered until the domain closes: at most one fd more. */
	fail |= no_more("fds before open / after close (+1: guest RAM)", fds0 + 1,
			evil_backend_fds(e), obs, len);
	return fail ? -1 : 0;
}

/* ---- 10: a pool granted read-only --------------------------------------- */

struct ro_bus {
	struct drv_bus_ops ops;		/* first: a copy with gnt_grant below */
	const struct drv_bus_ops *orig;
	unsigned int calls;
};

/* The first grant of a device is its message page: writable; every pool
 * page after it read-only.  bus->ops is the ops member of our ro_bus. */
static int ro_grant(struct drv_bus *bus, uint32_t ref, uint64_t gfn, bool readonly)
{
	struct ro_bus *rb = (struct ro_bus *)(uintptr_t)bus->ops;

	return rb->orig->gnt_grant(bus, ref, gfn, readonly || rb->calls++ > 0);
}

static int case_pool_readonly(struct evil_env *e, char *obs, size_t len)
{
	struct drv_bus *bus = e->d->bus;
	struct ro_bus rb = { .ops = *bus->ops, .orig = bus->ops };
	struct xvd_dev *rng = NULL;
	struct rdev r;
	uint8_t buf[64];
	int rc, logged = -1, fail = 0;

	if (bus->ops->mem_grant) {
		evil_say(obs, len, "this bus grants device memory itself");
		return -1;
	}
	/* Interpose on our own bus for the one open: a hostile guest grants
	 * whatever it likes. */
	rb.ops.gnt_grant = ro_grant;
	bus->ops = &rb.ops;
	rc = rdev_open(e, &r, XVD_MODE_POOL, NULL);
	bus->ops = rb.orig;
	if (e->log_count)
		logged = e->log_count(e->log_ctx, "rings not accessible");
	evil_say(obs, len, "open with %u read-only pool grants: %s; backend logged 'rings not "
		 "accessible' %d times", rb.calls ? rb.calls - 1 : 0, rc ? strerror(-rc) : "succeeded",
		 logged);
	if (rc == 0) {
		fail = -1;
		rdev_close(&r);
	}
	if (e->log_count && logged < 1)
		fail = -1;
	/* The export and the backend's other devices go on. */
	rc = rdev_open(e, &r, XVD_MODE_POOL, NULL);
	if (rc == 0)
		rc = evil_blk_still_works(r.dev);
	if (r.dev)
		rdev_close(&r);
	evil_say(obs, len, "; the same disk opened honestly afterwards: %s", rc ? strerror(-rc) : "works");
	fail |= rc ? -1 : 0;
	rc = evil_open_rng(e, NULL, &rng);
	if (rc == 0)
		rc = xvd_rng_read(rng, buf, sizeof(buf)) == (int)sizeof(buf) ? 0 : -EIO;
	if (rng)
		xvd_dev_close(rng);
	evil_say(obs, len, "; rng: %s", rc ? strerror(-rc) : "works");
	return fail || rc ? -1 : 0;
}

/* ---- 11: tens of thousands of grant maps -------------------------------- */

#define MX_SEGS		(XVD_MAX_SEGS - 2)	/* data buffers per chain */
#define MX_DEPTH	32
#define MX_CHAINS	800			/* x 64 grants = 51200 */

static int case_map_exhaustion(struct evil_env *e, char *obs, size_t len)
{
	long maps0 = evil_backend_guest_maps(e), fds0 = evil_backend_fds(e), maps1 = -1, fds1 = -1;
	struct xvd_buf b[XVD_MAX_SEGS];
	struct breq q[MX_DEPTH];
	unsigned int submitted = 0, inflight = 0, ok = 0, refused = 0, bad = 0;
	uint8_t *area = NULL;
	uint32_t seed = 0x3e9;
	int64_t last;
	struct rdev r;
	struct xvd_stats st;
	int rc, fail = 0;

	memset(q, 0, sizeof(q));
	rc = rdev_open(e, &r, XVD_MODE_GRANT, NULL);
	if (rc) {
		evil_say(obs, len, "open: %s", strerror(-rc));
		return -1;
	}
	/* Every other page: each buffer is its own grant and its own mapping. */
	rc = xvd_ram_alloc(e->d, 2 * MX_SEGS * DATA, (void **)&area);
	for (unsigned int i = 0; rc == 0 && i < MX_DEPTH; i++)
		rc = breq_alloc(e->d, &q[i]);
	if (rc) {
		evil_say(obs, len, "no RAM");
		fail = -1;
		goto out;
	}
	maps1 = evil_backend_guest_maps(e);
	fds1 = evil_backend_fds(e);
	last = xvd_now_ms();
	while (submitted < MX_CHAINS || inflight) {
		struct xvd_done d[16];
		int n;

		while (submitted < MX_CHAINS && inflight < MX_DEPTH) {
			struct breq *p = NULL;
			bool write = submitted % 2;

			for (unsigned int i = 0; i < MX_DEPTH && !p; i++)
				if (!q[i].busy)
					p = &q[i];
			breq_bufs(p, write, (rnd(&seed) % 15) * (MX_SEGS * DATA / SECT), b);
			for (unsigned int i = 0; i < MX_SEGS; i++)
				b[1 + i] = (struct xvd_buf){ .addr = area + 2 * i * DATA, .len = DATA,
							     .dev_writes = !write };
			b[1 + MX_SEGS] = (struct xvd_buf){ .addr = p->status, .len = 1, .dev_writes = true };
			rc = xvd_vq_submit(r.dev, 0, b, XVD_MAX_SEGS, p, XVD_NO_KICK);
			if (rc == -ENOSPC || rc == -ENOMEM)
				break;
			if (rc < 0) {
				evil_say(obs, len, "submit: %s; ", strerror(-rc));
				fail = -1;
				goto drain;
			}
			p->busy = true;
			inflight++;
			submitted++;
		}
		xvd_vq_kick(r.dev, 0);
		n = xvd_vq_poll(r.dev, 0, d, 16);
		if (n < 0) {
			evil_say(obs, len, "device error: %s; ", strerror(-n));
			fail = -1;
			goto drain;
		}
		for (int i = 0; i < n; i++) {
			struct breq *p = d[i].cookie;
			uint32_t in_len = p->write ? 1 : MX_SEGS * DATA + 1;

			p->busy = false;
			inflight--;
			if (d[i].status == 0 && d[i].len == 0)
				refused++;
			else if (d[i].status == 0 && d[i].len == in_len && *p->status == VIRTIO_BLK_S_OK)
				ok++;
			else
				bad++;
		}
		if (n > 0) {
			last = xvd_now_ms();
		} else if (xvd_now_ms() - last > STALL_MS) {
			evil_say(obs, len, "no completion for %d ms; ", STALL_MS);
			fail = -1;
			goto drain;
		} else {
			xvd_dev_wait(r.dev, 20);
		}
	}
drain:
	xvd_dev_stats(r.dev, &st);
	evil_say(obs, len, "%u chains of %u buffers: %u ok, %u refused, %u other; %llu grants made, "
		 "%llu revoked while mapped", submitted, XVD_MAX_SEGS, ok, refused, bad,
		 (unsigned long long)st.grants, (unsigned long long)st.revoke_busy);
	if (bad || ok + refused != submitted || st.revoke_busy)
		fail = -1;
	if (inflight && rdev_reset(&r) < 0)
		fail = -1;		/* the reset cancels what is left */
	fail |= no_more("guest-memory mappings while open", maps1, evil_backend_guest_maps(e),
			obs, len);
	fail |= no_more("fds while open", fds1, evil_backend_fds(e), obs, len);
out:
	for (unsigned int i = 0; i < MX_DEPTH; i++)
		if (q[i].hdr)
			breq_free(e->d, &q[i]);
	if (area)
		xvd_ram_free(e->d, area);
	rdev_close(&r);
	fail |= no_more("guest-memory mappings before open / after close", maps0,
			evil_backend_guest_maps(e), obs, len);
	/* +1: the guest RAM region stays registered (see case_grant_revoked). */
	fail |= no_more("fds before open / after close (+1: guest RAM)", fds0 + 1,
			evil_backend_fds(e), obs, len);
	return fail ? -1 : 0;
}

/* ---- 13: memory taken away under the backend's mappings ---------------- */

/* The loopback bus hands the backend memfds the guest owns.  Shrink the
 * device's region (message page + pool, rings included) while the backend
 * maps it, and make the backend look: it must not die of SIGBUS. */
static int case_region_shrink(struct evil_env *e, char *obs, size_t len)
{
	struct rdev r;
	struct stat st;
	int rc, fd, fail = 0;

	rc = rdev_open(e, &r, XVD_MODE_POOL, NULL);
	if (rc) {
		evil_say(obs, len, "open: %s", strerror(-rc));
		return -1;
	}
	fd = r.dev->region.handle;
	if (fstat(fd, &st) || evil_blk_still_works(r.dev)) {
		evil_say(obs, len, "setup failed");
		rdev_close(&r);
		return -1;
	}
	/* The library seals its memfds against shrinking and the backend
	 * takes no other kind; try anyway.  If it worked, this process must
	 * not touch the region either until the size is back: only event
	 * channels and waiting. */
	if (ftruncate(fd, 0) == 0) {
		kick_raw(r.dev);
		r.dev->dom->bus->ops->evtchn_notify(r.dev->dom->bus, r.dev->msg_port);
		pause_us(300 * 1000);
		if (ftruncate(fd, st.st_size))
			fail = -1;
		evil_say(obs, len, "region of %lld bytes shrunk to 0 while mapped, both channels "
			 "kicked, size restored (zeroed) after 300 ms", (long long)st.st_size);
	} else {
		evil_say(obs, len, "shrinking the %lld-byte region refused: %s",
			 (long long)st.st_size, strerror(errno));
	}
	/* The rings came back zeroed: whatever the device thinks now, a reset
	 * or a fresh open must work. */
	rdev_close(&r);
	rc = rdev_open(e, &r, XVD_MODE_POOL, NULL);
	if (rc == 0)
		rc = evil_blk_still_works(r.dev);
	evil_say(obs, len, "; reopened: %s", rc ? strerror(-rc) : "works");
	if (r.dev)
		rdev_close(&r);
	return fail || rc ? -1 : 0;
}

const struct evil_case evil_ring_cases[] = {
	{ "desc-toctou",
	  "descriptors rewritten in flight (bad addresses, lengths, flags, next): every request "
	  "completes, is refused with length 0 or is cancelled by a reset after NEEDS_RESET; some "
	  "complete OK; the backend stays up and idle and the device works after a reset",
	  case_desc_toctou, 0 },
	{ "indirect-toctou",
	  "the same with indirect tables rewritten in flight",
	  case_indirect_toctou, 0 },
	{ "desc-loop",
	  "a next cycle the 128-buffer limit catches first, and nested or looping indirect "
	  "tables, are refused with length 0; a cycle in a 64-entry queue sets NEEDS_RESET; after "
	  "a reset the device works",
	  case_desc_loop, 0 },
	{ "avail-ahead",
	  "avail->idx more than the queue size ahead, avail->idx going back, and an avail entry "
	  "beyond the queue each set NEEDS_RESET; after a reset the device works",
	  case_avail_ahead, 0 },
	{ "avail-race",
	  "a thread publishing avail entries nobody made: NEEDS_RESET or a broken device, every "
	  "request completes or is cancelled, the backend stays up and idle, a reset recovers",
	  case_avail_race, 0 },
	{ "head-dup",
	  "a head made available twice is served twice, or NEEDS_RESET while it is still in "
	  "flight, and the middle of a chain as head is refused; the library breaks the device on the "
	  "extra used entry; a reset recovers",
	  case_head_dup, 0 },
	{ "addr-outside",
	  "pool mode: guest frames, refs beyond the pool, reserved refs, overflowing and 4 GiB "
	  "buffers are each refused with length 0; the device works after each",
	  case_addr_outside, 0 },
	{ "grant-readonly-write",
	  "grant mode: a device-writable buffer granted read-only is refused with length 0 and "
	  "the page is unchanged",
	  case_grant_readonly_write, EVIL_LOOP_ONLY },
	{ "grant-revoked-while-mapped",
	  "grant mode: grant entries zeroed while requests are in flight: each completes or is "
	  "refused, the backend holds no more mappings or fds than before",
	  case_grant_revoked, EVIL_LOOP_ONLY },
	{ "pool-readonly",
	  "a pool granted read-only: DRIVER_OK fails (NEEDS_RESET, logged as rings not "
	  "accessible), the same disk opened honestly and the rng work afterwards",
	  case_pool_readonly, EVIL_LOOP_ONLY },
	{ "map-exhaustion",
	  "grant mode: about 50000 grant maps in 64-buffer chains are all served, the backend's "
	  "mappings and fds go back to where they were",
	  case_map_exhaustion, EVIL_LOOP_ONLY },
	{ "ring-overlap",
	  "pool mode: device-writable buffers over the queue's descriptor table, avail ring, "
	  "used ring and avail_event are each refused with length 0; the device works after each",
	  case_ring_overlap, 0 },
	{ "full-outside",
	  "full mode: frames beyond guest RAM, beyond the 2^48 limit, grant addresses and "
	  "overflowing buffers are each refused with length 0",
	  case_full_outside, EVIL_LOOP_ONLY },
	{ "region-shrink",
	  "the guest shrinks its device memory (memfd) under the backend's mappings and kicks: "
	  "refused by the seal the backend insists on (or, were it possible, survived); the "
	  "disk can be opened again",
	  case_region_shrink, EVIL_LOOP_ONLY },
	{ 0 }
};
