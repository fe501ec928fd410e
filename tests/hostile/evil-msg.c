// SPDX-License-Identifier: MIT
/*
 * Malicious-driver cases of the message layer: raw virtio-msg messages
 * written straight into the driver-to-backend ring (garbage, lies about the
 * ring indices, slots rewritten after publication, token games), config
 * space and device status abuse, notification storms, and (loopback)
 * many devices, a garbled xenstore handshake and attach churn.
 *
 * The raw helpers here bypass the library's request/response exchange: they
 * put a message with xvd_mring_put, notify, and read the backend-to-driver
 * ring themselves, so nothing the library would check or drop gets in the
 * way.  A bus PING with a fresh token serves as a barrier: the backend takes
 * messages in order, so every response it sends for earlier messages
 * arrives before the PING's.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <xvmsg/pool.h>
#include <xvmsg/wire.h>

#include "evil.h"

/* Pages of the pool the hand-made handshakes grant: the rng minimum. */
#define MANUAL_POOL	XVMSG_MIN_POOL_PAGES_RNG

#define RAW_TOKEN_BASE	0x9000u		/* raw tokens: far from the library's */

/* The hostile devices use small pools: on Xen a pool needs consecutive
 * grant references, which get scarcer as devices come and go. */
static const struct xvd_dev_opts small_pool = { .pool_pages = 64 };

/* ---- raw message helpers ------------------------------------------------ */

static struct drv_bus *dbus(struct xvd_dev *dev)
{
	return dev->dom->bus;
}

static void raw_mk(struct vmsg *m, uint8_t type, uint8_t id, uint16_t token,
		   const void *payload, size_t plen)
{
	memset(m, 0, sizeof(*m));
	m->hdr.type = type;
	m->hdr.msg_id = id;
	m->hdr.dev_num = htole16((type & VMSG_TYPE_BUS) ? 0 : XVMSG_DEV_NUM);
	m->hdr.token = htole16(token);
	m->hdr.msg_size = htole16((uint16_t)(sizeof(m->hdr) + plen));
	if (plen)
		memcpy(m->payload, payload, plen);
}

/* Put m into d2b and notify, waiting up to ms for a free slot (the backend
 * frees slots as it takes messages).  -EAGAIN when the ring stays full. */
static int raw_put_wait(struct xvd_dev *dev, const struct vmsg *m, int ms)
{
	struct drv_bus *bus = dbus(dev);
	int64_t end = xvd_now_ms() + ms;
	bool notify;
	int r;

	while ((r = xvd_mring_put(&dev->d2b, m, &notify)) == -EAGAIN) {
		int64_t left = end - xvd_now_ms();

		if (left <= 0)
			break;
		bus->ops->evtchn_ack(bus, dev->msg_port);
		bus->ops->wait(bus, &dev->msg_port, 1, (int)(left > 50 ? 50 : left));
	}
	if (r == 0)
		bus->ops->evtchn_notify(bus, dev->msg_port);
	return r;
}

static int raw_put(struct xvd_dev *dev, const struct vmsg *m)
{
	return raw_put_wait(dev, m, 1000);
}

/* Next message from b2d within ms: 1, 0 (timeout) or -EIO (index lies). */
static int raw_get(struct xvd_dev *dev, struct vmsg *m, int ms)
{
	struct drv_bus *bus = dbus(dev);
	int64_t end = xvd_now_ms() + ms;
	bool notify;
	int r;

	for (;;) {
		r = xvd_mring_get(&dev->b2d, m, &notify);
		if (r == 1 && notify)
			bus->ops->evtchn_notify(bus, dev->msg_port);
		if (r)
			return r;
		int64_t left = end - xvd_now_ms();

		if (left <= 0)
			return 0;
		bus->ops->evtchn_ack(bus, dev->msg_port);
		r = bus->ops->wait(bus, &dev->msg_port, 1, (int)(left > 100 ? 100 : left));
		if (r < 0)
			return r;
	}
}

/* Read b2d until the response with token (and bus bit as given) arrives.
 * Responses with other tokens are counted in *others, events skipped.
 * 1 found (copied to *out if non-NULL), 0 timeout, <0 ring error. */
static int raw_wait_resp(struct xvd_dev *dev, uint16_t token, bool bus_msg, struct vmsg *out,
			 unsigned int *others, int ms)
{
	int64_t end = xvd_now_ms() + ms;
	struct vmsg m;
	int r;

	for (;;) {
		int64_t left = end - xvd_now_ms();

		r = raw_get(dev, &m, left > 0 ? (int)left : 0);
		if (r <= 0)
			return r;
		if (!vmsg_is_response(&m.hdr))
			continue;		/* EVENT_CONFIG, EVENT_USED */
		if (le16toh(m.hdr.token) == token && !!vmsg_is_bus(&m.hdr) == bus_msg) {
			if (out)
				*out = m;
			return 1;
		}
		if (others)
			(*others)++;
	}
}

static uint16_t raw_token(void)
{
	static uint16_t t;

	t = (uint16_t)((t + 1) & 0x0fff);
	return (uint16_t)(RAW_TOKEN_BASE + t);
}

/* A bus PING as a barrier: responses before its own are counted in
 * *others.  1 when the PING was answered within ms. */
static int raw_ping(struct xvd_dev *dev, unsigned int *others, int ms)
{
	uint16_t tok = raw_token();
	struct vmsg m;
	int r;

	raw_mk(&m, VMSG_TYPE_BUS, VMSG_BUS_PING, tok, NULL, 0);
	r = raw_put(dev, &m);
	if (r)
		return r;
	return raw_wait_resp(dev, tok, true, NULL, others, ms);
}

/* One transport request and its response (1), 0 if none came within ms. */
static int raw_call(struct xvd_dev *dev, uint8_t id, const void *p, size_t plen, struct vmsg *resp,
		    int ms)
{
	uint16_t tok = raw_token();
	struct vmsg m;
	int r;

	raw_mk(&m, 0, id, tok, p, plen);
	r = raw_put(dev, &m);
	if (r)
		return r;
	return raw_wait_resp(dev, tok, false, resp, NULL, ms);
}

/* SET_DEVICE_STATUS / GET_DEVICE_STATUS raw: the status, or -1. */
static long raw_status(struct xvd_dev *dev, bool set, uint32_t s)
{
	__le32 v = htole32(s);
	struct vmsg r;

	if (raw_call(dev, set ? VMSG_SET_DEVICE_STATUS : VMSG_GET_DEVICE_STATUS, &v,
		     set ? 4 : 0, &r, 2000) != 1)
		return -1;
	memcpy(&v, r.payload, 4);
	return (long)le32toh(v);
}

static int raw_features(struct xvd_dev *dev, uint32_t block, uint32_t n, const uint32_t *w)
{
	__le32 p[2 + 8];
	struct vmsg r;

	p[0] = htole32(block);
	p[1] = htole32(n);
	for (uint32_t i = 0; i < n && i < 8; i++)
		p[2 + i] = htole32(w[i]);
	return raw_call(dev, VMSG_SET_DRIVER_FEATURES, p, 8 + 4 * (n < 8 ? n : 8), &r, 2000) == 1
		? 0 : -1;
}

static int raw_set_vq(struct xvd_dev *dev, uint32_t q, uint32_t size, uint64_t desc,
		      uint64_t avail, uint64_t used)
{
	struct vmsg_set_vqueue_req s;
	struct vmsg r;

	/* As the library would, in the layout the device negotiated. */
	xvmsg_build_set_vqueue(&s, xvd_dev_msg_revision(dev), q, size, desc, avail, used);
	return raw_call(dev, VMSG_SET_VQUEUE, &s, sizeof(s), &r, 2000) == 1 ? 0 : -1;
}

/* GET_VQUEUE: cur_size (and desc_addr), or -1. */
static long raw_vq_size(struct xvd_dev *dev, uint32_t q, uint64_t *desc)
{
	struct vmsg_get_vqueue_resp g;
	__le32 idx = htole32(q);
	struct vmsg r;

	if (raw_call(dev, VMSG_GET_VQUEUE, &idx, 4, &r, 2000) != 1)
		return -1;
	memcpy(&g, r.payload, sizeof(g));
	if (desc)
		*desc = le64toh(g.desc_addr);
	return (long)le32toh(g.cur_size);
}

/* Close a device whose backend stopped answering its message ring, without
 * waiting for the reset the library would send first. */
static void close_dead(struct xvd_dev *dev)
{
	xvd_dev_fail(dev, "evil: ring abandoned");
	dev->ring_broken = true;
	xvd_dev_close(dev);
}

/* Wait (bounded) until the backend state of devid is want; 0 or -ETIMEDOUT. */
static int wait_be_state(struct xvd_domain *d, unsigned int devid, unsigned long want, int ms)
{
	struct drv_bus *bus = d->bus;
	int64_t end = xvd_now_ms() + ms;
	char buf[32];

	do {
		bus->ops->dispatch(bus);
		if (bus->ops->store_read(bus, devid, XVMSG_XS_STATE, buf, sizeof(buf)) == 0 &&
		    strtoul(buf, NULL, 10) == want)
			return 0;
		bus->ops->wait(bus, NULL, 0, 50);
	} while (xvd_now_ms() < end);
	return -ETIMEDOUT;
}

static const char *err_name(int r)
{
	return r < 0 ? strerror(-r) : "ok";
}

/* ---- 1. msg-garbage ----------------------------------------------------- */

struct garbage {
	const char *what;
	uint8_t type, id;
	uint16_t dev_num, token, size;	/* size: msg_size field */
	uint8_t fill;			/* payload byte */
};

static int case_msg_garbage(struct evil_env *e, char *observed, size_t len)
{
	/* Every one of these is discarded without a reply (protocol.md 2.1). */
	static const struct garbage g[] = {
		{ "msg_size 0", 0, VMSG_GET_DEVICE_INFO, 1, 1, 0, 0 },
		{ "msg_size 7", 0, VMSG_GET_DEVICE_INFO, 1, 1, 7, 0 },
		{ "msg_size 249", 0, VMSG_GET_DEVICE_INFO, 1, 1, 249, 0 },
		{ "msg_size 65535", 0, VMSG_GET_DEVICE_INFO, 1, 1, 65535, 0 },
		{ "response bit", VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, 8, 0 },
		{ "bus response bit", VMSG_TYPE_RESPONSE | VMSG_TYPE_BUS, VMSG_BUS_PING, 0, 1, 8, 0 },
		{ "dev_num 0", 0, VMSG_GET_DEVICE_INFO, 0, 1, 8, 0 },
		{ "dev_num 2", 0, VMSG_GET_DEVICE_INFO, 2, 1, 8, 0 },
		{ "dev_num 65535", 0, VMSG_GET_DEVICE_STATUS, 65535, 1, 8, 0 },
		{ "unknown id 0x00", 0, 0x00, 1, 1, 8, 0 },
		{ "unknown id 0x01", 0, 0x01, 1, 1, 8, 0 },
		{ "unknown id 0x0d", 0, 0x0d, 1, 1, 24, 0 },
		{ "unknown id 0x3f", 0, 0x3f, 1, 1, 248, 0xff },
		{ "unknown id 0x80", 0, 0x80, 1, 1, 8, 0 },
		{ "unknown id 0xff", 0, 0xff, 1, 1, 248, 0xff },
		{ "unknown bus id 0x00", VMSG_TYPE_BUS, 0x00, 0, 1, 8, 0 },
		{ "unknown bus id 0x7f", VMSG_TYPE_BUS, 0x7f, 0, 1, 8, 0 },
		{ "unknown bus id 0xff", VMSG_TYPE_BUS, 0xff, 0, 1, 8, 0 },
		{ "bus event from driver", VMSG_TYPE_BUS, VMSG_BUS_EVENT_DEVICE, 0, 1, 12, 0 },
		{ "EVENT_CONFIG from driver", 0, VMSG_EVENT_CONFIG, 1, 1, 24, 0 },
		{ "EVENT_USED from driver", 0, VMSG_EVENT_USED, 1, 1, 12, 0 },
		{ "EVENT_AVAIL with token", 0, VMSG_EVENT_AVAIL, 1, 1, 16, 0 },
		{ "event id 0x7f", 0, 0x7f, 1, 1, 8, 0 },
		{ "token 0 GET_DEVICE_INFO", 0, VMSG_GET_DEVICE_INFO, 1, 0, 8, 0 },
		{ "token 0 PING", VMSG_TYPE_BUS, VMSG_BUS_PING, 0, 0, 8, 0 },
		/* payload shorter than the id needs, for every id with one */
		{ "GET_DEVICE_FEATURES short", 0, VMSG_GET_DEVICE_FEATURES, 1, 1, 8 + 7, 0 },
		{ "SET_DRIVER_FEATURES short", 0, VMSG_SET_DRIVER_FEATURES, 1, 1, 8 + 7, 0 },
		{ "GET_CONFIG short", 0, VMSG_GET_CONFIG, 1, 1, 8 + 7, 0 },
		{ "SET_CONFIG short", 0, VMSG_SET_CONFIG, 1, 1, 8 + 11, 0 },
		{ "SET_DEVICE_STATUS short", 0, VMSG_SET_DEVICE_STATUS, 1, 1, 8 + 3, 0 },
		{ "SET_DEVICE_STATUS empty", 0, VMSG_SET_DEVICE_STATUS, 1, 1, 8, 0 },
		{ "GET_VQUEUE short", 0, VMSG_GET_VQUEUE, 1, 1, 8 + 3, 0 },
		{ "SET_VQUEUE short", 0, VMSG_SET_VQUEUE, 1, 1, 8 + 39, 0 },
		{ "RESET_VQUEUE short", 0, VMSG_RESET_VQUEUE, 1, 1, 8 + 3, 0 },
		{ "GET_SHM short", 0, VMSG_GET_SHM, 1, 1, 8 + 3, 0 },
		{ "EVENT_AVAIL short", 0, VMSG_EVENT_AVAIL, 1, 0, 8 + 7, 0 },
		/* payloads whose counts lie: 0xff.. blocks / lengths */
		{ "GET_DEVICE_FEATURES 2^32-1 blocks", 0, VMSG_GET_DEVICE_FEATURES, 1, 1, 16, 0xff },
		{ "SET_DRIVER_FEATURES 2^32-1 blocks", 0, VMSG_SET_DRIVER_FEATURES, 1, 1, 248, 0xff },
		{ "SET_CONFIG length 2^32-1", 0, VMSG_SET_CONFIG, 1, 1, 248, 0xff },
	};
	/* Answered: well-formed apart from slack (extra payload is ignored) or
	 * reserved type bits (ignored on receipt, zero in the response). */
	static const struct garbage ok[] = {
		{ "type bits 2 and 7", 0x84, VMSG_GET_DEVICE_INFO, 1, 1, 8, 0 },
		{ "type bits 2-7, PING", 0xfc | VMSG_TYPE_BUS, VMSG_BUS_PING, 0, 1, 8, 0 },
		{ "GET_DEVICE_FEATURES 0 blocks", 0, VMSG_GET_DEVICE_FEATURES, 1, 1, 16, 0 },
		{ "GET_DEVICE_INFO 240 bytes of slack", 0, VMSG_GET_DEVICE_INFO, 1, 1, 248, 0xee },
		{ "GET_DEVICE_STATUS slack", 0, VMSG_GET_DEVICE_STATUS, 1, 1, 100, 0xee },
		{ "PING slack", VMSG_TYPE_BUS, VMSG_BUS_PING, 0, 1, 200, 0xee },
		{ "GET_DEVICES", VMSG_TYPE_BUS, VMSG_BUS_GET_DEVICES, 0, 1, 8, 0 },
	};
	unsigned int replied = 0, lost = 0, answered = 0, nbad = sizeof(g) / sizeof(g[0]);
	struct xvd_dev *dev = NULL;
	char first_bad[64] = "";
	int r, rc = -1;

	r = evil_open_blk(e, XVD_MODE_POOL, &small_pool, &dev);
	if (r) {
		evil_say(observed, len, "open: %s", err_name(r));
		return -1;
	}
	for (unsigned int round = 0; round < 3; round++) {
		for (unsigned int i = 0; i < nbad; i++) {
			unsigned int others = 0;
			struct vmsg m;

			memset(&m, 0, sizeof(m));
			m.hdr.type = g[i].type;
			m.hdr.msg_id = g[i].id;
			m.hdr.dev_num = htole16(g[i].dev_num);
			m.hdr.token = htole16(g[i].token ? raw_token() : 0);
			m.hdr.msg_size = htole16(g[i].size);
			memset(m.payload, g[i].fill, sizeof(m.payload));
			if (raw_put(dev, &m) || raw_ping(dev, &others, 2000) != 1) {
				lost++;
				snprintf(first_bad, sizeof(first_bad), "%s", g[i].what);
				continue;
			}
			if (others) {
				replied += others;
				if (!first_bad[0])
					snprintf(first_bad, sizeof(first_bad), "%s", g[i].what);
			}
		}
	}
	for (unsigned int i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint16_t tok = raw_token();
		struct vmsg m;

		memset(&m, 0, sizeof(m));
		m.hdr.type = ok[i].type;
		m.hdr.msg_id = ok[i].id;
		m.hdr.dev_num = htole16(ok[i].dev_num);
		m.hdr.token = htole16(tok);
		m.hdr.msg_size = htole16(ok[i].size);
		memset(m.payload, ok[i].fill, sizeof(m.payload));
		if (raw_put(dev, &m) == 0 &&
		    raw_wait_resp(dev, tok, ok[i].type & VMSG_TYPE_BUS, &m, NULL, 2000) == 1 &&
		    m.hdr.msg_id == ok[i].id && !(m.hdr.type & VMSG_TYPE_RESERVED))
			answered++;
	}
	evil_say(observed, len, "%u malformed messages x3: %u replies, %u without a PING after; "
		 "%u/%zu well-formed (slack, reserved type bits) answered",
		 nbad, replied, lost, answered, sizeof(ok) / sizeof(ok[0]));
	if (first_bad[0])
		evil_say(observed, len, " (first wrong: %s)", first_bad);
	/* The device is still connected and usable (garbage is not fatal). */
	r = evil_blk_still_works(dev);
	evil_say(observed, len, "; device afterwards: %s", err_name(r));
	if (!replied && !lost && answered == sizeof(ok) / sizeof(ok[0]) && r == 0)
		rc = 0;
	xvd_dev_close(dev);
	return rc;
}

/* ---- 2. msg-ring-lies --------------------------------------------------- */

static int case_msg_ring_lies(struct evil_env *e, char *observed, size_t len)
{
	struct xvd_dev *dev = NULL, *rng = NULL;
	unsigned int others = 0;
	uint8_t rbuf[64];
	char err[160] = "";
	int r, rc = -1, got;
	uint16_t tok;
	long idle;

	r = evil_open_blk(e, XVD_MODE_POOL, &small_pool, &dev);
	if (r == 0)
		r = evil_open_rng(e, &small_pool, &rng);
	if (r) {
		evil_say(observed, len, "open: %s", err_name(r));
		goto out;
	}

	/* (a) b2d.cons (ours) lies: far ahead of what the backend produced.
	 * The backend sees no room for a response, takes nothing, and waits
	 * for a notification without spinning. */
	XVMSG_WRITE_ONCE(dev->page->b2d.cons, htole32(dev->b2d.idx + 1000));
	{
		struct vmsg m;

		tok = raw_token();
		raw_mk(&m, VMSG_TYPE_BUS, VMSG_BUS_PING, tok, NULL, 0);
		raw_put(dev, &m);
		got = raw_get(dev, &m, 300);
	}
	idle = evil_backend_idle(e, 300);
	XVMSG_WRITE_ONCE(dev->page->b2d.cons, htole32(dev->b2d.idx));
	dbus(dev)->ops->evtchn_notify(dbus(dev), dev->msg_port);
	r = raw_wait_resp(dev, tok, true, NULL, &others, 2000);
	evil_say(observed, len, "b2d.cons +1000: %s while lying, backend %s, %s after the truth",
		 got ? "answered" : "no answer", idle < 0 ? "busy" : "idle",
		 r == 1 ? "answered" : "no answer");
	if (got || idle < 0 || r != 1 || others)
		goto out;

	/* (b) garbage in the fields the backend owns but we can write:
	 * d2b.cons_event, b2d.prod_event, reserved words.  They only steer
	 * notifications; the device keeps working. */
	XVMSG_WRITE_ONCE(dev->page->d2b.cons_event, htole32(0xdeadbeef));
	XVMSG_WRITE_ONCE(dev->page->b2d.prod_event, htole32(0x7fffffff));
	memset((void *)dev->page->d2b.reserved, 0xff, sizeof(dev->page->d2b.reserved));
	r = evil_blk_still_works(dev);
	evil_say(observed, len, "; event fields garbage: I/O %s", err_name(r));
	if (r)
		goto out;

	/* (c) d2b.prod runs 1000 ahead: the ring is corrupt, the backend
	 * disconnects this device only (error key, state Closed). */
	XVMSG_WRITE_ONCE(dev->page->d2b.prod, htole32(dev->d2b.idx + 1000));
	dbus(dev)->ops->evtchn_notify(dbus(dev), dev->msg_port);
	r = wait_be_state(e->d, dev->o.devid, XVMSG_STATE_CLOSED, 3000);
	dbus(dev)->ops->store_read(dbus(dev), dev->o.devid, XVMSG_XS_HOTPLUG_ERROR, err,
				   sizeof(err));
	evil_say(observed, len, "; d2b.prod +1000: backend %s, error '%s'",
		 r ? "not Closed" : "Closed", err);
	if (r || !strstr(err, "message ring corrupt"))
		goto out;
	r = xvd_rng_read(rng, rbuf, sizeof(rbuf));
	evil_say(observed, len, "; rng of the same guest: %d", r);
	if (r != (int)sizeof(rbuf))
		goto out;
	/* Close the rng first: on Xen a pool needs consecutive grant refs,
	 * and refs freed last are handed out first (closing in the order of
	 * opening would mix the two devices' refs in the next pool). */
	xvd_dev_close(rng);
	rng = NULL;
	close_dead(dev);
	dev = NULL;
	r = evil_open_blk(e, XVD_MODE_POOL, &small_pool, &dev);
	if (r == 0)
		r = evil_blk_still_works(dev);
	evil_say(observed, len, "; reopened: %s", err_name(r));
	if (r == 0)
		rc = 0;
out:
	if (dev)
		xvd_dev_close(dev);
	if (rng)
		xvd_dev_close(rng);
	return rc;
}

/* ---- 3. msg-toctou ------------------------------------------------------ */

struct scribbler {
	struct xvmsg_msg_page *page;
	atomic_uint on;			/* 1: rewrite the slots, 0: hands off */
	atomic_uint idle;		/* 1: the scribbler saw on == 0 */
	atomic_bool stop;
	unsigned long writes;
};

static uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void *scribble(void *arg)
{
	static const uint8_t ids[] = {
		VMSG_GET_DEVICE_INFO, VMSG_GET_DEVICE_FEATURES, VMSG_SET_DRIVER_FEATURES,
		VMSG_GET_CONFIG, VMSG_SET_CONFIG, VMSG_GET_DEVICE_STATUS, VMSG_SET_DEVICE_STATUS,
		VMSG_GET_VQUEUE, VMSG_SET_VQUEUE, VMSG_RESET_VQUEUE, VMSG_GET_SHM,
		VMSG_EVENT_AVAIL, VMSG_BUS_PING, 0x77, 0xff,
	};
	struct scribbler *s = arg;
	uint32_t seed = 0x1234567u;

	while (!atomic_load(&s->stop)) {
		struct vmsg *m;
		uint32_t x;

		if (!atomic_load(&s->on)) {
			atomic_store(&s->idle, 1);
			continue;
		}
		atomic_store(&s->idle, 0);
		m = &s->page->d2b_slot[xorshift(&seed) % XVMSG_RING_SLOTS];
		x = xorshift(&seed);
		/* Rewrite fields one at a time, as a racing guest would. */
		switch (x % 5) {
		case 0:
			__atomic_store_n(&m->hdr.msg_size, (uint16_t)(xorshift(&seed) % 300),
					 __ATOMIC_RELAXED);
			break;
		case 1:
			__atomic_store_n(&m->hdr.msg_id, ids[xorshift(&seed) % sizeof(ids)],
					 __ATOMIC_RELAXED);
			break;
		case 2:
			/* Rewritten tokens have bit 15 set: ours never do. */
			__atomic_store_n(&m->hdr.token, (uint16_t)(0x8000 | xorshift(&seed)),
					 __ATOMIC_RELAXED);
			break;
		case 3:
			__atomic_store_n(&m->hdr.type, (uint8_t)(xorshift(&seed) & 3),
					 __ATOMIC_RELAXED);
			break;
		default: {
			uint32_t off = (xorshift(&seed) % (VMSG_MAX_PAYLOAD / 4)) * 4;

			__atomic_store_n((uint32_t *)(void *)(m->payload + off), xorshift(&seed),
					 __ATOMIC_RELAXED);
			break;
		}
		}
		s->writes++;
	}
	return NULL;
}

static void scribbler_pause(struct scribbler *s)
{
	int64_t end = xvd_now_ms() + 1000;

	atomic_store(&s->on, 0);
	atomic_store(&s->idle, 0);
	while (!atomic_load(&s->idle) && xvd_now_ms() < end)
		sched_yield();		/* a guest may have one vCPU */
}

struct toctou_count {
	unsigned int resp, dup, scribbled, badhdr, events;
	uint8_t seen[4096];
};

static void toctou_note(struct toctou_count *t, const struct vmsg *m, unsigned int n)
{
	uint16_t tok = le16toh(m->hdr.token);

	if (!vmsg_is_response(&m->hdr)) {
		t->events++;
		return;
	}
	t->resp++;
	/* Header verdicts (BAD) do not depend on the layout revision. */
	if (xvmsg_classify(m, tok, m->hdr.msg_id, XVMSG_MSG_REV_1) == XVMSG_V_BAD)
		t->badhdr++;
	if (tok & 0x8000)
		t->scribbled++;
	else if (tok >= 1 && tok <= n)
		t->dup += t->seen[tok]++ != 0;
	else if (!(tok >= RAW_TOKEN_BASE && tok < RAW_TOKEN_BASE + 0x1000))
		t->badhdr++;	/* a token nobody used */
}

static int case_msg_toctou(struct evil_env *e, char *observed, size_t len)
{
	enum { BATCH = 7, N = BATCH * 420, MIN_BATCHES = 10 };
	static const uint8_t ids[] = { VMSG_GET_DEVICE_STATUS, VMSG_GET_CONFIG,
				       VMSG_GET_VQUEUE, VMSG_GET_DEVICE_INFO,
				       VMSG_GET_DEVICE_FEATURES, VMSG_GET_SHM };
	static struct toctou_count t;
	struct scribbler s = { 0 };
	struct xvd_dev *dev = NULL;
	unsigned int sent = 0, batches = 0, lost_ping = 0, pings = 0;
	int64_t end, hard_end;
	pthread_t th;
	int r, rc = -1;

	r = evil_open_blk(e, XVD_MODE_POOL, &small_pool, &dev);
	if (r) {
		evil_say(observed, len, "open: %s", err_name(r));
		return -1;
	}
	memset(&t, 0, sizeof(t));
	s.page = dev->page;
	if (pthread_create(&th, NULL, scribble, &s)) {
		evil_say(observed, len, "no thread");
		xvd_dev_close(dev);
		return -1;
	}
	end = xvd_now_ms() + (e->xen ? 2000 : 4000);	/* TCG: a shorter run */
	/* ... but at least MIN_BATCHES batches: on Xen on Arm under TCG a
	 * batch took about 300 ms (7 in 2 s), on x86 far less. */
	hard_end = xvd_now_ms() + 20000;
	/* Each batch: publish BATCH requests without a notification while
	 * the slots are being rewritten, notify with the rewriting still going
	 * on, stop it once the backend took them, then a PING as the barrier
	 * (written after the rewriting stopped). */
	while (sent < N && (xvd_now_ms() < end || batches < MIN_BATCHES) &&
	       xvd_now_ms() < hard_end) {
		uint16_t ptok = raw_token();
		struct vmsg m;
		bool notify;

		atomic_store(&s.on, 1);
		for (unsigned int i = 0; i < BATCH; i++) {
			__le32 p[2] = { 0, htole32(2) };

			raw_mk(&m, 0, ids[(sent + i) % sizeof(ids)], (uint16_t)(sent + i + 1), p,
			       sizeof(p));
			if (xvd_mring_put(&dev->d2b, &m, &notify))
				break;
		}
		sent += BATCH;
		{
			/* let the rewriting run (it may share our vCPU) */
			struct timespec ts = { 0, 50 * 1000 };

			nanosleep(&ts, NULL);
		}
		dbus(dev)->ops->evtchn_notify(dbus(dev), dev->msg_port);
		{
			int64_t until = xvd_now_ms() + 200;

			while (le32toh(XVMSG_READ_ONCE(dev->page->d2b.cons)) != dev->d2b.idx &&
			       xvd_now_ms() < until)
				sched_yield();
		}
		scribbler_pause(&s);
		raw_mk(&m, VMSG_TYPE_BUS, VMSG_BUS_PING, ptok, NULL, 0);
		if (raw_put(dev, &m)) {
			lost_ping++;
			break;
		}
		for (;;) {
			r = raw_get(dev, &m, 2000);
			if (r != 1) {
				lost_ping++;
				break;
			}
			if (vmsg_is_response(&m.hdr) && vmsg_is_bus(&m.hdr) &&
			    le16toh(m.hdr.token) == ptok) {
				pings++;
				break;
			}
			toctou_note(&t, &m, N);
		}
		batches++;
		if (r != 1)
			break;
	}
	atomic_store(&s.stop, true);
	pthread_join(th, NULL);
	evil_say(observed, len, "%u requests in %u batches, published then rewritten (%lu field "
		 "rewrites): %u responses, %u of them to rewritten tokens, %u duplicates, "
		 "%u malformed, %u events; %u/%u barrier PINGs answered",
		 sent, batches, s.writes, t.resp, t.scribbled, t.dup, t.badhdr, t.events, pings,
		 batches);
	/* On loopback (two host CPUs) the rewriting must have hit something;
	 * a one-vCPU guest may not get to run it in time. */
	if (lost_ping || t.dup || t.badhdr || t.resp > sent || batches < MIN_BATCHES ||
	    (!e->xen && !t.scribbled))
		goto out;
	/* The rewrites may have reset or failed the device: reset it and use it. */
	r = xvd_dev_reset(dev);
	if (r == 0)
		r = evil_blk_still_works(dev);
	evil_say(observed, len, "; reset + I/O: %s", err_name(r));
	if (r == 0)
		rc = 0;
out:
	xvd_dev_close(dev);
	return rc;
}

/* ---- 4. msg-tokens ------------------------------------------------------ */

/* The payload size of a response in the device's layout revision rev. */
static unsigned int expect_psize(uint8_t id, bool bus, unsigned int rev)
{
	if (bus)
		return id != VMSG_BUS_GET_DEVICES ? 0 :
		       rev >= XVMSG_MSG_REV_2 ? sizeof(struct vmsg_bus_get_devices_resp_v2) :
		       sizeof(struct vmsg_bus_get_devices_resp);
	switch (id) {
	case VMSG_GET_DEVICE_INFO:
	case VMSG_GET_VQUEUE:
	case VMSG_GET_SHM: return xvmsg_min_payload(id, 1, rev);
	case VMSG_GET_DEVICE_STATUS: return 4;
	case VMSG_GET_DEVICE_FEATURES: return 8 + 4;
	case VMSG_GET_CONFIG: return 12 + 4;
	}
	return 0;
}

static int case_msg_tokens(struct evil_env *e, char *observed, size_t len)
{
	static const struct { uint8_t type, id; } reqs[] = {
		{ 0, VMSG_GET_DEVICE_INFO }, { 0, VMSG_GET_DEVICE_STATUS }, { 0, VMSG_GET_VQUEUE },
		{ 0, VMSG_GET_SHM }, { 0, VMSG_GET_DEVICE_FEATURES }, { 0, VMSG_GET_CONFIG },
		{ VMSG_TYPE_BUS, VMSG_BUS_PING }, { VMSG_TYPE_BUS, VMSG_BUS_GET_DEVICES },
	};
	enum { NR = sizeof(reqs) / sizeof(reqs[0]) };
	struct xvd_dev *dev = NULL;
	unsigned int rounds = 0, answered = 0, mixed = 0, zero_answered = 0, missing = 0;
	uint32_t seed = 99;
	int r, rc = -1;

	r = evil_open_blk(e, XVD_MODE_POOL, &small_pool, &dev);
	if (r) {
		evil_say(observed, len, "open: %s", err_name(r));
		return -1;
	}
	for (rounds = 0; rounds < 200; rounds++) {
		/* Eight requests in one go: every one with the same token (or
		 * token 0, which must get no answer, or 0xffff). */
		uint16_t tok = rounds % 4 == 0 ? 0 : rounds % 4 == 1 ? 0xffff :
			       (uint16_t)(xorshift(&seed) | 1);
		unsigned int order[NR], got = 0;

		for (unsigned int i = 0; i < NR; i++)
			order[i] = (i + rounds) % NR;
		for (unsigned int i = 0; i < NR; i++) {
			__le32 p[2] = { 0, htole32(1) };
			struct vmsg m;

			if (reqs[order[i]].id == VMSG_GET_CONFIG)
				p[1] = htole32(4);
			raw_mk(&m, reqs[order[i]].type, reqs[order[i]].id, tok, p,
			       reqs[order[i]].type ? 0 : sizeof(p));
			if (raw_put(dev, &m))
				break;
		}
		/* Responses come in request order, each with its own id. */
		for (;;) {
			unsigned int others = 0;
			struct vmsg m;

			if (tok == 0) {
				/* nothing comes; a PING proves it */
				if (raw_ping(dev, &others, 2000) != 1)
					missing++;
				zero_answered += others;
				break;
			}
			if (got == NR)
				break;
			if (raw_get(dev, &m, 2000) != 1) {
				missing += NR - got;
				break;
			}
			if (!vmsg_is_response(&m.hdr))
				continue;
			{
				unsigned int k = order[got++];
				bool bus = reqs[k].type & VMSG_TYPE_BUS;

				if (le16toh(m.hdr.token) != tok || m.hdr.msg_id != reqs[k].id ||
				    !!vmsg_is_bus(&m.hdr) != bus ||
				    le16toh(m.hdr.msg_size) !=
				    8 + expect_psize(reqs[k].id, bus, xvd_dev_msg_revision(dev)))
					mixed++;
				else
					answered++;
			}
		}
	}
	evil_say(observed, len, "%u rounds of %u requests sharing a token (0, 0xffff, random): "
		 "%u answered in order with their own id and size, %u mixed up, %u missing, "
		 "%u answers to token 0", rounds, NR, answered, mixed, missing, zero_answered);
	/* The library's own exchange (its token counter) still works. */
	r = evil_blk_still_works(dev);
	evil_say(observed, len, "; normal I/O after: %s", err_name(r));
	if (!mixed && !missing && !zero_answered && answered == rounds / 4 * 3 * NR && r == 0)
		rc = 0;
	xvd_dev_close(dev);
	return rc;
}

/* ---- 5. config-stale-gen ------------------------------------------------ */

static int case_config_abuse(struct evil_env *e, char *observed, size_t len)
{
	struct { uint32_t off, n; const char *what; } bad[] = {
		{ 0, 4, "off+len past the end" },
		{ 0, 1, "off = size" },
		{ 0xffffffffu, 4, "off 2^32-1 (wraps)" },
		{ 0xfffffffcu, 8, "off+len wraps to 4" },
		{ 0, 0, "len 0" },
	};
	uint8_t before[256], after[256], junk[8];
	struct xvd_dev *dev = NULL;
	unsigned int get_zero = 0, set_zero = 0, nbad = sizeof(bad) / sizeof(bad[0]);
	unsigned int dropped = 0;
	uint32_t gen, csize = 0;
	int r, stale, ro, rc = -1;

	r = evil_open_blk(e, XVD_MODE_POOL, &small_pool, &dev);
	if (r == 0 && (dev->config_size < 8 || dev->config_size > sizeof(before)))
		r = -EPROTO;
	if (r == 0) {
		csize = dev->config_size;
		bad[0].off = csize - 1;
		bad[1].off = csize;
		r = xvd_dev_config_read(dev, 0, before, csize);
	}
	if (r) {
		evil_say(observed, len, "open/read: %s", err_name(r));
		goto out;
	}
	gen = dev->cfg_gen;
	/* A stale generation (ours is behind or ahead of the device's). */
	memset(junk, 0x5a, sizeof(junk));
	dev->cfg_gen = gen + 7;
	stale = xvd_dev_config_write(dev, 0, junk, 8);
	/* The right generation, but capacity is read-only (no blk field is
	 * writable: the backend has no set_config for blk). */
	dev->cfg_gen = gen;
	ro = xvd_dev_config_write(dev, 0, junk, 8);
	evil_say(observed, len, "stale generation: %s, read-only capacity: %s",
		 err_name(stale), err_name(ro));
	/* Out of range, raw: GET answers length 0, SET answers length 0. */
	for (unsigned int i = 0; i < nbad; i++) {
		uint8_t p[12 + 8] = { 0 };
		__le32 w[3] = { htole32(gen), htole32(bad[i].off), htole32(bad[i].n) };
		struct vmsg m;

		if (raw_call(dev, VMSG_GET_CONFIG, &w[1], 8, &m, 2000) == 1 &&
		    ((struct vmsg_config *)(void *)m.payload)->length == 0)
			get_zero++;
		memcpy(p, w, sizeof(w));
		if (raw_call(dev, VMSG_SET_CONFIG, p, 12 + (bad[i].n < 8 ? bad[i].n : 8), &m, 2000)
		    == 1 && ((struct vmsg_config *)(void *)m.payload)->length == 0)
			set_zero++;
	}
	/* Lengths beyond one message: no reply at all (protocol.md 2.1). */
	{
		__le32 w[3] = { htole32(gen), 0, htole32(0xffffffffu) };
		unsigned int others = 0;
		struct vmsg m;

		raw_mk(&m, 0, VMSG_SET_CONFIG, raw_token(), w, sizeof(w));
		raw_put(dev, &m);
		w[2] = htole32(VMSG_MAX_CONFIG_CHUNK + 1);
		raw_mk(&m, 0, VMSG_SET_CONFIG, raw_token(), w, sizeof(w));
		raw_put(dev, &m);
		if (raw_ping(dev, &others, 2000) == 1 && others == 0)
			dropped += 2;
		/* GET_CONFIG with a huge length: answered with length 0 */
		w[1] = 0;
		w[2] = htole32(0xffffffffu);
		if (raw_call(dev, VMSG_GET_CONFIG, &w[1], 8, &m, 2000) == 1 &&
		    ((struct vmsg_config *)(void *)m.payload)->length == 0)
			get_zero++;
	}
	r = xvd_dev_config_read(dev, 0, after, csize);
	evil_say(observed, len, "; out of range x%u: GET length 0 x%u, SET length 0 x%u; "
		 "SET length > %u dropped x%u/2; config (%u bytes) %s; generation %u -> %u",
		 nbad, get_zero, set_zero, VMSG_MAX_CONFIG_CHUNK, dropped, csize,
		 r ? "unreadable" : memcmp(before, after, csize) ? "CHANGED" : "unchanged",
		 gen, dev->cfg_gen);
	if (stale == -EAGAIN && ro == -EPERM && get_zero == nbad + 1 && set_zero == nbad &&
	    dropped == 2 && r == 0 && !memcmp(before, after, csize) &&
	    dev->cfg_gen == gen && evil_blk_still_works(dev) == 0)
		rc = 0;
out:
	if (dev)
		xvd_dev_close(dev);
	return rc;
}

/* ---- 6. status-abuse ---------------------------------------------------- */

#define ST_AD	(VMSG_STATUS_ACKNOWLEDGE | VMSG_STATUS_DRIVER)
#define ST_FOK	(ST_AD | VMSG_STATUS_FEATURES_OK)
#define ST_DOK	(ST_FOK | VMSG_STATUS_DRIVER_OK)

static int case_status_abuse(struct evil_env *e, char *observed, size_t len)
{
	struct xvd_dev *dev = NULL;
	unsigned int ok = 0, checks = 0;
	char fail_at[48] = "";
	int r, rc = -1;
	long s;
	uint64_t d0;
	struct xvd_vq *vq;
	uint32_t feat[2];

	r = evil_open_blk(e, XVD_MODE_POOL, &small_pool, &dev);
	if (r) {
		evil_say(observed, len, "open: %s", err_name(r));
		return -1;
	}
	vq = &dev->vq[0];
	feat[0] = (uint32_t)dev->features;
	feat[1] = (uint32_t)(dev->features >> 32);
#define CHECK(what, cond) do { checks++; if (cond) ok++; else if (!fail_at[0]) \
		snprintf(fail_at, sizeof(fail_at), "%s", what); } while (0)
	CHECK("reset", raw_status(dev, true, 0) == 0);
	CHECK("ack+driver", raw_status(dev, true, ST_AD) == ST_AD);
	/* DRIVER_OK without FEATURES_OK */
	CHECK("DRIVER_OK w/o FEATURES_OK", raw_status(dev, true, ST_AD | VMSG_STATUS_DRIVER_OK)
	      == ST_AD);
	/* SET_VQUEUE before FEATURES_OK */
	raw_set_vq(dev, 0, vq->size, vq->desc_addr, vq->avail_addr, vq->used_addr);
	CHECK("SET_VQUEUE before FEATURES_OK", raw_vq_size(dev, 0, NULL) == 0);
	/* features never offered: bit 63, and a block beyond the device's */
	{
		uint32_t w[2] = { feat[0], feat[1] | 0x80000000u }, far = 1;

		raw_features(dev, 0, 2, w);
		CHECK("bit 63 accepted?", raw_status(dev, true, ST_FOK) == ST_AD);
		raw_status(dev, true, 0);
		raw_status(dev, true, ST_AD);
		raw_features(dev, 0, 2, feat);
		raw_features(dev, 5, 1, &far);
		CHECK("block 5 accepted?", raw_status(dev, true, ST_FOK) == ST_AD);
		raw_status(dev, true, 0);
		raw_status(dev, true, ST_AD);
		w[0] = feat[0];
		w[1] = 0;	/* no VERSION_1 / ACCESS_PLATFORM */
		raw_features(dev, 0, 2, w);
		CHECK("no VERSION_1 accepted?", raw_status(dev, true, ST_FOK) == ST_AD);
	}
	/* Proper features: FEATURES_OK; then changing them is ignored. */
	raw_status(dev, true, 0);
	raw_status(dev, true, ST_AD);
	raw_features(dev, 0, 2, feat);
	CHECK("FEATURES_OK", raw_status(dev, true, ST_FOK) == ST_FOK);
	{
		uint32_t w[2] = { 0, 0 };

		raw_features(dev, 0, 2, w);	/* after FEATURES_OK: ignored */
	}
	/* Queue set-ups the device must refuse (cur_size stays 0). */
	{
		uint64_t pool0 = XVMSG_GRANT_ADDR(dev->pool_ref, 0);
		uint64_t beyond = XVMSG_GRANT_ADDR(dev->pool_ref + dev->pool_pages + 5, 0);
		struct { const char *what; uint32_t size; uint64_t d, a, u; } bq[] = {
			{ "size 0", 0, vq->desc_addr, vq->avail_addr, vq->used_addr },
			{ "size 3", 3, vq->desc_addr, vq->avail_addr, vq->used_addr },
			{ "size 2^31", 0x80000000u, vq->desc_addr, vq->avail_addr, vq->used_addr },
			{ "size 2*max", 2048, vq->desc_addr, vq->avail_addr, vq->used_addr },
			{ "desc beyond pool", 16, beyond, vq->avail_addr, vq->used_addr },
			{ "used beyond pool", 16, vq->desc_addr, vq->avail_addr, beyond },
			{ "avail a guest frame", 16, vq->desc_addr, 0x1000, vq->used_addr },
			{ "desc below pool", 16, XVMSG_GRANT_ADDR(2, 0), vq->avail_addr,
			  vq->used_addr },
			{ "desc unaligned", 16, pool0 + 8, vq->avail_addr, vq->used_addr },
			{ "used wraps", 16, vq->desc_addr, vq->avail_addr, ~0ULL - 8 },
		};

		for (unsigned int i = 0; i < sizeof(bq) / sizeof(bq[0]); i++) {
			raw_set_vq(dev, 0, bq[i].size, bq[i].d, bq[i].a, bq[i].u);
			CHECK(bq[i].what, raw_vq_size(dev, 0, NULL) == 0);
		}
		raw_set_vq(dev, 1000, 16, vq->desc_addr, vq->avail_addr, vq->used_addr);
		CHECK("queue 1000", raw_vq_size(dev, 1000, NULL) == 0);
	}
	/* The right queue, DRIVER_OK, then changes after DRIVER_OK are ignored. */
	raw_set_vq(dev, 0, vq->size, vq->desc_addr, vq->avail_addr, vq->used_addr);
	CHECK("proper queue", raw_vq_size(dev, 0, NULL) == vq->size);
	/* A refused set-up of a queue that is set up changes nothing. */
	raw_set_vq(dev, 0, 2048, vq->desc_addr + 16, vq->avail_addr, vq->used_addr);
	s = raw_vq_size(dev, 0, &d0);
	CHECK("refused SET_VQUEUE kept the queue", s == vq->size && d0 == vq->desc_addr);
	CHECK("DRIVER_OK", raw_status(dev, true, ST_DOK) == ST_DOK);
	raw_set_vq(dev, 0, vq->size / 2, XVMSG_GRANT_ADDR(dev->pool_ref, 0), vq->avail_addr,
		   vq->used_addr);
	s = raw_vq_size(dev, 0, &d0);
	CHECK("SET_VQUEUE after DRIVER_OK", s == vq->size && d0 == vq->desc_addr);
	/* Going backwards is refused; RESET_VQUEUE is ignored (no RING_RESET). */
	CHECK("clear DRIVER_OK", raw_status(dev, true, ST_FOK) == ST_DOK);
	CHECK("clear everything but ACK", raw_status(dev, true, VMSG_STATUS_ACKNOWLEDGE) ==
	      ST_DOK);
	{
		__le32 idx = 0;
		struct vmsg m;

		raw_call(dev, VMSG_RESET_VQUEUE, &idx, 4, &m, 2000);
		CHECK("RESET_VQUEUE ignored", raw_vq_size(dev, 0, NULL) == vq->size);
	}
	/* The device works as set up by hand (the library's rings are in place). */
	{
		r = evil_blk_still_works(dev);
		CHECK("I/O after hand set-up", r == 0);
	}
	/* FAILED: noted, and the device stops; a reset brings it back. */
	s = raw_status(dev, true, ST_DOK | VMSG_STATUS_FAILED);
	CHECK("FAILED", s >= 0 && (s & VMSG_STATUS_FAILED));
	r = xvd_dev_reset(dev);
	if (r == 0)
		r = evil_blk_still_works(dev);
	CHECK("reset + I/O", r == 0);
#undef CHECK
	evil_say(observed, len, "%u/%u status/queue/feature checks as documented%s%s; "
		 "after reset: %s", ok, checks, fail_at[0] ? ", first wrong: " : "", fail_at,
		 err_name(r));
	xvd_dev_close(dev);
	dev = NULL;
	r = evil_open_blk(e, XVD_MODE_POOL, &small_pool, &dev);
	if (r == 0)
		r = evil_blk_still_works(dev);
	evil_say(observed, len, "; fresh open: %s", err_name(r));
	if (ok == checks && r == 0)
		rc = 0;
	if (dev)
		xvd_dev_close(dev);
	return rc;
}

/* ---- reply-overflow (loopback: grant mode) ------------------------------ */

/* Wait (bounded) until the backend has taken every message we put. */
static int d2b_taken(struct xvd_dev *dev, int ms)
{
	int64_t end = xvd_now_ms() + ms;

	while (le32toh(XVMSG_READ_ONCE(dev->d2b.ctl->cons)) != dev->d2b.idx) {
		if (xvd_now_ms() >= end)
			return -ETIMEDOUT;
		dbus(dev)->ops->wait(dbus(dev), &dev->msg_port, 1, 10);
	}
	return 0;
}

/*
 * The backend keeps one b2d slot for each request's response, but handling
 * a request may also emit events: a DRIVER_OK whose rings cannot be mapped
 * sets NEEDS_RESET and sends EVENT_CONFIG.  With seven responses left
 * unread, response and event do not both fit: the response must take the
 * last slot and the event wait until the driver reads.  Before the fix the
 * backend wrote nine messages into the eight slots (the oldest unread one
 * overwritten).
 */
static int case_reply_overflow(struct evil_env *e, char *observed, size_t len)
{
	const uint32_t far_ref = 0x7ff00;	/* beyond the grant table: never mappable */
	struct xvd_dev *dev = NULL;
	unsigned int pings = 0, in_order = 0, events = 0;
	uint32_t feat = 3, used = 0, prod;	/* block 1: VERSION_1, ACCESS_PLATFORM */
	uint16_t tok[7];
	bool status_ok = false, event_after = false;
	struct vmsg m;
	int r, rc = -1;

	r = evil_open_blk(e, XVD_MODE_GRANT, NULL, &dev);
	if (r) {
		evil_say(observed, len, "open: %s", err_name(r));
		return -1;
	}
	if (raw_status(dev, true, 0) != 0 || raw_status(dev, true, ST_AD) != ST_AD ||
	    raw_features(dev, 1, 1, &feat) || raw_status(dev, true, ST_FOK) != ST_FOK ||
	    raw_set_vq(dev, 0, 64, XVMSG_GRANT_ADDR(far_ref, 0), XVMSG_GRANT_ADDR(far_ref + 1, 0),
		       XVMSG_GRANT_ADDR(far_ref + 2, 0)) || raw_vq_size(dev, 0, NULL) != 64) {
		evil_say(observed, len, "set-up by hand failed");
		goto out;
	}
	/* Seven PINGs whose responses stay unread. */
	for (unsigned int i = 0; i < 7; i++) {
		tok[i] = raw_token();
		raw_mk(&m, VMSG_TYPE_BUS, VMSG_BUS_PING, tok[i], NULL, 0);
		if (raw_put(dev, &m))
			goto out;
	}
	if (d2b_taken(dev, 2000))
		goto out;
	{
		__le32 st = htole32(ST_DOK);

		raw_mk(&m, 0, VMSG_SET_DEVICE_STATUS, raw_token(), &st, sizeof(st));
		if (raw_put(dev, &m) || d2b_taken(dev, 2000))
			goto out;
	}
	{
		struct timespec ts = { 0, 100 * 1000000 };	/* anything more it would write */

		nanosleep(&ts, NULL);
	}
	prod = le32toh(XVMSG_READ_ONCE(dev->b2d.ctl->prod));
	used = prod - dev->b2d.idx;
	evil_say(observed, len, "b2d holds %u messages in %u slots", used, XVMSG_RING_SLOTS);
	if (used > XVMSG_RING_SLOTS)
		goto out;
	/* In order: the seven PINGs, the DRIVER_OK response saying
	 * NEEDS_RESET; then, once there is room, the EVENT_CONFIG. */
	for (unsigned int i = 0; i < used; i++) {
		if (raw_get(dev, &m, 100) != 1)
			break;
		if (i < 7 && vmsg_is_response(&m.hdr) && m.hdr.msg_id == VMSG_BUS_PING) {
			pings++;
			in_order += le16toh(m.hdr.token) == tok[i];
		} else if (i == 7 && vmsg_is_response(&m.hdr) &&
			   m.hdr.msg_id == VMSG_SET_DEVICE_STATUS) {
			__le32 st;

			memcpy(&st, m.payload, sizeof(st));
			status_ok = le32toh(st) & VMSG_STATUS_NEEDS_RESET;
		} else if (m.hdr.msg_id == VMSG_EVENT_CONFIG) {
			events++;
		}
	}
	/* The event comes once we have read (raw_get notifies). */
	while (!event_after && raw_get(dev, &m, 1000) == 1)
		event_after = m.hdr.msg_id == VMSG_EVENT_CONFIG;
	evil_say(observed, len, "; read back: %u/7 PING responses (%u in order), DRIVER_OK "
		 "response %s, %u events among them, EVENT_CONFIG %s", pings, in_order,
		 status_ok ? "with NEEDS_RESET" : "MISSING", events,
		 event_after ? "after them" : "never");
	r = xvd_dev_reset(dev);
	if (r == 0)
		r = evil_blk_still_works(dev);
	evil_say(observed, len, "; after reset: %s", err_name(r));
	if (used == XVMSG_RING_SLOTS && pings == 7 && in_order == 7 && status_ok && !events &&
	    event_after && r == 0)
		rc = 0;
out:
	xvd_dev_close(dev);
	return rc;
}

/* ---- 7. notify-storm ---------------------------------------------------- */

struct storm {
	struct drv_bus *bus;
	uint32_t vq_port, msg_port;
	unsigned long nq, nm, sent, errors;
	atomic_bool done;
};

static void *storm_run(void *arg)
{
	struct storm *s = arg;
	unsigned long every = s->nm ? s->nq / s->nm : 0;

	for (unsigned long i = 0; i < s->nq; i++) {
		if (s->bus->ops->evtchn_notify(s->bus, s->vq_port))
			s->errors++;
		if (every && i % every == 0 &&
		    s->bus->ops->evtchn_notify(s->bus, s->msg_port))
			s->errors++;
		s->sent += 1 + (every && i % every == 0);
	}
	atomic_store(&s->done, true);
	return NULL;
}

static int case_notify_storm(struct evil_env *e, char *observed, size_t len)
{
	struct storm s = { 0 };
	struct xvd_dev *dev = NULL;
	unsigned long wok = 0, wfail = 0;
	long cpu0, cpu1, idle;
	int64_t t0, t1, wmax = 0;
	pthread_t th;
	int r, rc = -1;

	r = evil_open_blk(e, XVD_MODE_POOL, &small_pool, &dev);
	if (r) {
		evil_say(observed, len, "open: %s", err_name(r));
		return -1;
	}
	/* On Xen every notification is a hypercall, ~100 us each in QEMU under
	 * TCG: 22000 of them keep the e2e run short and the witness still
	 * gets hundreds of rounds in during the storm. */
	s.bus = dbus(dev);
	s.vq_port = dev->vq_port[0];
	s.msg_port = dev->msg_port;
	s.nq = e->xen ? 20000 : 1000000;
	s.nm = s.nq / 10;
	cpu0 = evil_backend_cpu_ms(e);
	t0 = xvd_now_ms();
	if (pthread_create(&th, NULL, storm_run, &s)) {
		xvd_dev_close(dev);
		return -1;
	}
	while (!atomic_load(&s.done)) {
		char tmp[128] = "";
		int64_t w0 = xvd_now_ms();

		if (evil_witness_ok(e, tmp, sizeof(tmp)) == 0)
			wok++;
		else
			wfail++;
		if (xvd_now_ms() - w0 > wmax)
			wmax = xvd_now_ms() - w0;
	}
	pthread_join(th, NULL);
	t1 = xvd_now_ms();
	cpu1 = evil_backend_cpu_ms(e);
	idle = evil_backend_idle(e, 1000);
	r = evil_blk_still_works(dev);
	evil_say(observed, len, "%lu queue + %lu message notifications in %lld ms (%lu refused); "
		 "witness did %lu write+read rounds meanwhile (%lu failed, slowest %lld ms); ",
		 s.nq, s.sent - s.nq, (long long)(t1 - t0), s.errors, wok, wfail,
		 (long long)wmax);
	if (cpu0 >= 0 && cpu1 >= 0)
		evil_say(observed, len, "backend CPU %ld ms = %.3f ms per 1000 notifications; ",
			 cpu1 - cpu0, (double)(cpu1 - cpu0) * 1000.0 / (double)s.sent);
	else
		evil_say(observed, len, "backend CPU n/a; ");
	evil_say(observed, len, "after: backend %s (%ld ms CPU in 1 s), hostile device I/O %s",
		 idle < 0 ? "BUSY" : "idle", idle, err_name(r));
	if (wok > 0 && !wfail && idle >= 0 && r == 0 && !s.errors && wmax < 2000)
		rc = 0;
	xvd_dev_close(dev);
	return rc;
}

/* ---- xenstore by hand (loopback) ---------------------------------------- */

/* What a frontend needs for a handshake, made without the library's
 * device code: a message page plus one pool page, granted, and a port. */
struct manual {
	struct drv_bus *bus;
	unsigned int devid;
	struct drv_mem mem;
	uint32_t ref, port;
	bool mem_ok, ref_ok, port_ok;
};

static int fe_put(struct manual *h, const char *key, const char *val)
{
	return h->bus->ops->store_write(h->bus, h->devid, key, val);
}

static int fe_putu(struct manual *h, const char *key, unsigned long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%lu", v);
	return fe_put(h, key, buf);
}

static int manual_setup(struct xvd_domain *d, unsigned int devid, struct manual *h)
{
	struct drv_bus *bus = d->bus;
	int r;

	memset(h, 0, sizeof(*h));
	h->bus = bus;
	h->devid = devid;
	h->mem.handle = -1;
	/* The message page, then a pool of the rng's minimum (xvmsg/pool.h). */
	r = bus->ops->mem_alloc(bus, DRV_MEM_DEV, devid, 1 + MANUAL_POOL, &h->mem);
	if (r)
		return r;
	h->mem_ok = true;
	xvmsg_msg_page_init(h->mem.va);
	r = bus->ops->mem_share(bus, &h->mem);
	if (r)
		return r;
	r = bus->ops->gnt_alloc(bus, 1 + MANUAL_POOL, &h->ref);
	if (r)
		return r;
	h->ref_ok = true;
	for (unsigned int i = 0; i <= MANUAL_POOL && !r; i++)
		r = bus->ops->gnt_grant(bus, h->ref + i, h->mem.gfn + i, false);
	if (r)
		return r;
	r = bus->ops->evtchn_alloc(bus, &h->port);
	if (r)
		return r;
	h->port_ok = true;
	return 0;
}

/* The keys of a good handshake (the smallest pool, no queue channels). */
static int manual_keys(struct manual *h)
{
	int r = fe_put(h, XVMSG_XS_MODE, "pool");

	if (!r)
		r = fe_putu(h, XVMSG_XS_MSG_REF, h->ref);
	if (!r)
		r = fe_putu(h, XVMSG_XS_EVTCHN, h->port);
	if (!r)
		r = fe_putu(h, XVMSG_XS_POOL_REF, h->ref + 1);
	if (!r)
		r = fe_putu(h, XVMSG_XS_POOL_PAGES, MANUAL_POOL);
	if (!r)
		r = fe_putu(h, XVMSG_XS_NUM_QUEUES, 0);
	return r;
}

static void manual_free(struct manual *h)
{
	if (h->port_ok)
		h->bus->ops->evtchn_free(h->bus, h->port);
	if (h->ref_ok) {
		for (unsigned int i = 0; i <= MANUAL_POOL; i++)
			h->bus->ops->gnt_revoke(h->bus, h->ref + i);
		h->bus->ops->gnt_free(h->bus, h->ref, 1 + MANUAL_POOL);
	}
	if (h->mem_ok)
		h->bus->ops->mem_free(h->bus, &h->mem);
	h->mem_ok = h->ref_ok = h->port_ok = false;
}

static int count_log(struct evil_env *e, const char *needle)
{
	return e->log_count ? e->log_count(e->log_ctx, needle) : -1;
}

/* Wait (bounded) until fds and guest-memory mappings of the backend are
 * back to (at most) the baseline; returns the last counts. */
static void wait_baseline(struct evil_env *e, long fd0, long map0, long *fd, long *map)
{
	int64_t end = xvd_now_ms() + 3000;
	struct timespec ts = { 0, 20 * 1000000 };

	do {
		*fd = evil_backend_fds(e);
		*map = evil_backend_guest_maps(e);
		if (*fd <= fd0 && (map0 < 0 || *map <= map0))
			return;
		nanosleep(&ts, NULL);
	} while (xvd_now_ms() < end);
}

/* ---- 8. many-devices (loopback) ----------------------------------------- */

static int case_many_devices(struct evil_env *e, char *observed, size_t len)
{
	enum { G = 6, ATTACHES = 400, OPENS = 40, OPENS0 = 300 };
	static const char *const names[] = { "disk0", "rng0", "witness", "no-such-export" };
	struct xvd_domain_opts dopts = { .socket_path = e->socket_path, .log_level = -1 };
	struct xvd_domain *g[G] = { 0 };
	unsigned int nattach = 0, ok = 0, busy = 0, noent = 0, exist = 0, inval = 0, other = 0;
	unsigned int opened = 0, open_fail = 0, opened0 = 0, not_back = 0;
	int first_err = 0, r, rc = -1;
	long fd0 = evil_backend_fds(e), map0 = evil_backend_guest_maps(e), peak_a = 0, peak_open = 0;
	long fdb = -1, fd1, map1;

	for (int i = 0; i < G; i++) {
		r = xvd_domain_open_loop(&dopts, &g[i]);
		if (r) {
			evil_say(observed, len, "guest %d: %s", i, err_name(r));
			goto out;
		}
	}
	/* Thousands of attach requests: each export goes to one frontend at a
	 * time, so all but the first of each are refused. */
	for (unsigned int k = 0; k < ATTACHES; k++) {
		for (int i = 0; i < G; i++) {
			struct drv_bus *bus = g[i]->bus;
			unsigned int devid = 200 + k;

			if (k % 50 == 49)
				devid = 70000 + k;	/* beyond 0xffff */
			else if (k % 50 == 48)
				devid = 200;		/* maybe in use */
			r = bus->ops->attach(bus, names[k % 4], devid, XVD_MODE_POOL, 0);
			nattach++;
			switch (r) {
			case 0: ok++; break;
			case -EBUSY: busy++; break;
			case -ENOENT: noent++; break;
			case -EEXIST: exist++; break;
			case -EINVAL: inval++; break;
			default: other++; break;
			}
		}
		if (k % 100 == 0) {
			long n = evil_backend_fds(e);

			if (n > peak_a)
				peak_a = n;
		}
	}
	evil_say(observed, len, "%u attach requests over %d guests: %u attached, %u EBUSY, "
		 "%u ENOENT, %u EEXIST, %u EINVAL, %u other; fds %ld -> peak %ld; ",
		 nattach, G, ok, busy, noent, exist, inval, other, fd0, peak_a);
	/* Detach whatever was attached (disk0 and rng0, once each). */
	for (int i = 0; i < G; i++)
		for (unsigned int k = 0; k < ATTACHES; k++)
			g[i]->bus->ops->detach(g[i]->bus, 200 + k);
	if (ok != 2 || other || !busy || !noent || !exist || !inval)
		goto out;

	/* Full handshakes: every guest opens and closes the rng OPENS times,
	 * guest 0 OPENS0 times on its one connection (once the 65th failed: a
	 * connection never gave a region back).  One device is open at a time,
	 * so after every close the backend holds what it held before the first
	 * open: each close released its region and event channels. */
	for (unsigned int k = 0; k < OPENS0; k++) {
		for (int i = 0; i < G; i++) {
			struct xvd_dev_opts o = { .devid = 300 + k, .pool_pages = 4 };
			struct xvd_dev *dev;
			uint8_t b[16];
			long n;

			if (i && k >= OPENS)
				continue;
			if (fdb < 0)
				fdb = evil_backend_fds(e);
			r = evil_open_rng(&(struct evil_env){ .d = g[i], .rng_export = e->rng_export },
					  &o, &dev);
			if (r == 0) {
				if (xvd_rng_read(dev, b, sizeof(b)) != (int)sizeof(b))
					r = -EIO;
				n = evil_backend_fds(e);
				if (n > peak_open)
					peak_open = n;
				opened++;
				opened0 += !i;
				xvd_dev_close(dev);
			}
			if (r) {
				open_fail++;
				first_err = first_err ? first_err : r;
			}
			not_back += evil_backend_fds(e) != fdb;
		}
	}
	evil_say(observed, len, "%u full open/read/close (guest 0: %u on one connection), %u "
		 "failed (%s); backend fds %ld before each open, +%ld while one is open, not back "
		 "after %u closes; ", opened, opened0, open_fail, err_name(first_err), fdb,
		 peak_open - fdb, not_back);
	for (int i = 0; i < G; i++) {
		xvd_domain_close(g[i]);
		g[i] = NULL;
	}
	wait_baseline(e, fd0, map0, &fd1, &map1);
	evil_say(observed, len, "after close: fds %ld (baseline %ld), guest memory mappings "
		 "%ld (%ld)", fd1, fd0, map1, map0);
	/* Bounded: per guest a socket; an open rng costs its region, 2 fds for
	 * each of its 2 event channels, 2 more for each bound port. */
	if (!open_fail && opened0 == OPENS0 && opened == OPENS0 + (G - 1) * OPENS &&
	    !not_back && peak_a <= fd0 + G + 4 && fdb <= fd0 + G && peak_open <= fdb + 9 &&
	    fd1 <= fd0 && map1 <= map0)
		rc = 0;
out:
	for (int i = 0; i < G; i++)
		xvd_domain_close(g[i]);
	return rc;
}

/* ---- 9. handshake-abuse (loopback) -------------------------------------- */

struct hs_step {
	const char *what;
	const char *key, *val;		/* NULL key: only the state write */
	const char *needle;		/* expected in the backend's log and error */
};

static int case_handshake_abuse(struct evil_env *e, char *observed, size_t len)
{
	char maxp[16], big[16];
	const struct hs_step steps[] = {
		{ "msg-ref not a number", XVMSG_XS_MSG_REF, "abc", "key msg-ref missing" },
		{ "msg-ref negative", XVMSG_XS_MSG_REF, "-1", "key msg-ref missing" },
		{ "event-channel negative", XVMSG_XS_EVTCHN, "-5", "key event-channel missing" },
		{ "event-channel 2^64", XVMSG_XS_EVTCHN, "18446744073709551616",
		  "key event-channel missing" },
		{ "event-channel with a space", XVMSG_XS_EVTCHN, " 5", "key event-channel missing" },
		{ "event-channel 4000000000", XVMSG_XS_EVTCHN, "4000000000",
		  "cannot bind event channel" },
		{ "pool-ref junk", XVMSG_XS_POOL_REF, "12x", "pool-ref/pool-pages missing" },
		{ "pool-pages 0", XVMSG_XS_POOL_PAGES, "0", "pages outside 3.." },
		{ "pool-pages below the rng minimum", XVMSG_XS_POOL_PAGES, "2",
		  "a rng needs at least 3" },
		{ "pool-pages above max", XVMSG_XS_POOL_PAGES, big, "pages outside 3.." },
		{ "pool-pages empty", XVMSG_XS_POOL_PAGES, "", "pool-ref/pool-pages missing" },
		{ "num-queues 99", XVMSG_XS_NUM_QUEUES, "99", "num-queues must be" },
		{ "mode grant", XVMSG_XS_MODE, "grant", "frontend uses mode" },
		{ "msg-ref never granted", XVMSG_XS_MSG_REF, "60000", "cannot map message page" },
		{ "msg-ref reserved", XVMSG_XS_MSG_REF, "0", "cannot map message page" },
		{ "vq channel junk", XVMSG_XS_NUM_QUEUES, "1", "vq-0-event-channel missing" },
	};
	unsigned int devid = e->spare_devid, nsteps = sizeof(steps) / sizeof(steps[0]);
	struct drv_bus *bus = e->d->bus;
	unsigned int refused = 0, logged = 0, stale = 0;
	char first_bad[48] = "", err[160];
	struct manual h = { 0 };
	struct xvd_dev *dev = NULL;
	int r, rc = -1, attached = 0;

	r = bus->ops->attach(bus, e->rng_export, devid, XVD_MODE_POOL, 0);
	if (r == 0) {
		attached = 1;
		r = wait_be_state(e->d, devid, XVMSG_STATE_INITWAIT, 3000);
	}
	if (r == 0)
		r = bus->ops->store_read(bus, devid, XVMSG_XS_MAX_POOL, maxp, sizeof(maxp));
	if (r == 0)
		r = manual_setup(e->d, devid, &h);
	if (r) {
		evil_say(observed, len, "setup: %s", err_name(r));
		goto out;
	}
	snprintf(big, sizeof(big), "%lu", strtoul(maxp, NULL, 10) + 1);
	/* Connected before any key: taken for a frontend of an earlier backend
	 * instance and sent back through Closed. */
	{
		int n0 = count_log(e, "was connected to an earlier backend");

		fe_putu(&h, XVMSG_XS_STATE, XVMSG_STATE_CONNECTED);
		r = wait_be_state(e->d, devid, XVMSG_STATE_CLOSED, 3000);
		if (r == 0)
			refused++;
		else
			snprintf(first_bad, sizeof(first_bad), "Connected first");
		logged += count_log(e, "was connected to an earlier backend") > n0;
		fe_putu(&h, XVMSG_XS_STATE, XVMSG_STATE_INITIALISING);
		wait_be_state(e->d, devid, XVMSG_STATE_INITWAIT, 3000);
	}
	/* Initialised with no keys at all. */
	{
		int n0 = count_log(e, "key msg-ref missing");

		fe_putu(&h, XVMSG_XS_STATE, XVMSG_STATE_INITIALISED);
		if (wait_be_state(e->d, devid, XVMSG_STATE_CLOSED, 3000) == 0)
			refused++;
		else if (!first_bad[0])
			snprintf(first_bad, sizeof(first_bad), "no keys");
		logged += count_log(e, "key msg-ref missing") > n0;
		fe_putu(&h, XVMSG_XS_STATE, XVMSG_STATE_INITIALISING);
		wait_be_state(e->d, devid, XVMSG_STATE_INITWAIT, 3000);
	}
	for (unsigned int i = 0; i < nsteps; i++) {
		int n0 = count_log(e, steps[i].needle), ok1;

		manual_keys(&h);
		fe_put(&h, steps[i].key, steps[i].val);
		if (!strcmp(steps[i].what, "vq channel junk"))
			fe_put(&h, "vq-0-event-channel", "x");
		fe_putu(&h, XVMSG_XS_STATE, XVMSG_STATE_INITIALISED);
		r = wait_be_state(e->d, devid, XVMSG_STATE_CLOSED, 3000);
		err[0] = '\0';
		bus->ops->store_read(bus, devid, XVMSG_XS_HOTPLUG_ERROR, err, sizeof(err));
		ok1 = r == 0 && strstr(err, steps[i].needle);
		refused += ok1;
		logged += count_log(e, steps[i].needle) > n0;
		if (!ok1 && !first_bad[0])
			snprintf(first_bad, sizeof(first_bad), "%s", steps[i].what);
		fe_putu(&h, XVMSG_XS_STATE, XVMSG_STATE_INITIALISING);
		if (wait_be_state(e->d, devid, XVMSG_STATE_INITWAIT, 3000) && !first_bad[0])
			snprintf(first_bad, sizeof(first_bad), "%s: no InitWait after", steps[i].what);
		/* The new attempt must not inherit the old error. */
		if (bus->ops->store_read(bus, devid, XVMSG_XS_HOTPLUG_ERROR, err, sizeof(err)) !=
		    -ENOENT)
			stale++;
	}
	/* States out of range are taken as Closed. */
	{
		static const char *const junk[] = { "7", "99", "x", "", "-1" };
		unsigned int closed = 0;

		for (unsigned int i = 0; i < 5; i++) {
			fe_put(&h, XVMSG_XS_STATE, junk[i]);
			closed += wait_be_state(e->d, devid, XVMSG_STATE_CLOSED, 3000) == 0;
			fe_putu(&h, XVMSG_XS_STATE, XVMSG_STATE_INITIALISING);
			wait_be_state(e->d, devid, XVMSG_STATE_INITWAIT, 3000);
		}
		evil_say(observed, len, "junk states taken as Closed: %u/5; ", closed);
		if (closed != 5 && !first_bad[0])
			snprintf(first_bad, sizeof(first_bad), "junk state");
	}
	/* The same keys done right connect. */
	manual_keys(&h);
	fe_put(&h, "vq-0-event-channel", "");
	fe_putu(&h, XVMSG_XS_STATE, XVMSG_STATE_INITIALISED);
	r = wait_be_state(e->d, devid, XVMSG_STATE_CONNECTED, 3000);
	evil_say(observed, len, "%u/%u bad handshakes refused with the expected error key, "
		 "%u with a log line%s, %u stale error keys at the next InitWait; hand-made good "
		 "keys: %s", refused, nsteps + 2, logged,
		 count_log(e, "x") < 0 ? " (log not available)" : "", stale,
		 r ? "NOT connected" : "Connected");
	if (first_bad[0])
		evil_say(observed, len, " (first wrong: %s)", first_bad);
	if (r == 0) {
		fe_putu(&h, XVMSG_XS_STATE, XVMSG_STATE_CLOSING);
		r = wait_be_state(e->d, devid, XVMSG_STATE_CLOSED, 3000);
	}
	bus->ops->detach(bus, devid);
	attached = 0;
	manual_free(&h);
	if (r == 0) {
		struct xvd_dev_opts o = { .devid = devid };
		uint8_t b[16];

		r = evil_open_rng(e, &o, &dev);
		if (r == 0 && xvd_rng_read(dev, b, sizeof(b)) != (int)sizeof(b))
			r = -EIO;
	}
	evil_say(observed, len, "; proper open afterwards: %s", err_name(r));
	/* The log is only known when the backend's log is (test-loop-evil). */
	if (r == 0 && refused == nsteps + 2 && !first_bad[0] && !stale &&
	    (logged == nsteps + 2 || count_log(e, "x") < 0))
		rc = 0;
out:
	if (dev)
		xvd_dev_close(dev);
	if (attached)
		bus->ops->detach(bus, devid);
	manual_free(&h);
	return rc;
}

/* ---- 10. attach-churn (loopback) ---------------------------------------- */

static int case_attach_churn(struct evil_env *e, char *observed, size_t len)
{
	/* More cycles per connection than it once had regions (64). */
	enum { CYCLES = 1000, PER_CONN = 250, DROPS = 200 };
	struct xvd_domain_opts dopts = { .socket_path = e->socket_path, .log_level = -1 };
	long fd0 = evil_backend_fds(e), map0 = evil_backend_guest_maps(e), fd1, map1;
	long all0 = evil_backend_maps(e), kept = 0;
	unsigned int cycles = 0, fails = 0, drops = 0, dfail = 0;
	int64_t t0 = xvd_now_ms(), t1;
	int r, rc = -1, first_err = 0;

	for (unsigned int c = 0; c < CYCLES / PER_CONN; c++) {
		struct xvd_domain *d;
		long fdc;

		r = xvd_domain_open_loop(&dopts, &d);
		if (r) {
			fails++;
			first_err = first_err ? first_err : r;
			continue;
		}
		fdc = evil_backend_fds(e);
		for (unsigned int k = 0; k < PER_CONN; k++) {
			struct xvd_dev_opts o = { .devid = 1 + k % 3, .pool_pages = XVMSG_MIN_POOL_PAGES_RNG };
			struct xvd_dev *dev;
			uint8_t b[8];

			r = evil_open_rng(&(struct evil_env){ .d = d, .rng_export = e->rng_export },
					  &o, &dev);
			if (r == 0) {
				if (xvd_rng_read(dev, b, sizeof(b)) != (int)sizeof(b))
					r = -EIO;
				xvd_dev_close(dev);
			}
			if (r) {
				fails++;
				first_err = first_err ? first_err : r;
			}
			cycles++;
		}
		kept += evil_backend_fds(e) - fdc;	/* what the closes did not release */
		xvd_domain_close(d);
	}
	t1 = xvd_now_ms();
	/* Connections that go away in the middle of a handshake. */
	for (unsigned int i = 0; i < DROPS; i++) {
		struct xvd_domain *d;
		struct xvd_dev *dev = NULL;
		struct manual h = { 0 };
		unsigned int devid = 7;

		if (xvd_domain_open_loop(&dopts, &d)) {
			dfail++;
			continue;
		}
		switch (i % 4) {
		case 0:		/* attached, backend in InitWait */
			r = d->bus->ops->attach(d->bus, e->rng_export, devid, XVD_MODE_POOL, 0);
			break;
		case 1:		/* keys published and Initialised: backend maps, binds */
			r = d->bus->ops->attach(d->bus, e->rng_export, devid, XVD_MODE_POOL, 0);
			if (!r)
				r = wait_be_state(d, devid, XVMSG_STATE_INITWAIT, 3000);
			if (!r)
				r = manual_setup(d, devid, &h);
			if (!r)
				r = manual_keys(&h);
			if (!r)
				r = fe_putu(&h, XVMSG_XS_STATE, XVMSG_STATE_INITIALISED);
			if (!r)
				r = wait_be_state(d, devid, XVMSG_STATE_CONNECTED, 3000);
			break;
		case 2:		/* a device fully open */
			r = evil_open_rng(&(struct evil_env){ .d = d, .rng_export = e->rng_export },
					  &(struct xvd_dev_opts){ .devid = devid, .pool_pages = XVMSG_MIN_POOL_PAGES_RNG },
					  &dev);
			break;
		default:	/* Initialised with garbage, not waiting for the answer */
			r = d->bus->ops->attach(d->bus, e->rng_export, devid, XVD_MODE_POOL, 0);
			if (!r) {
				h.bus = d->bus;
				h.devid = devid;
				fe_put(&h, XVMSG_XS_MSG_REF, "junk");
				r = fe_putu(&h, XVMSG_XS_STATE, XVMSG_STATE_INITIALISED);
			}
			break;
		}
		if (r)
			dfail++;
		/* Drop the connection as a dying guest would, then clean up. */
		shutdown(xvd_domain_fd(d), SHUT_RDWR);
		manual_free(&h);
		xvd_domain_close(d);	/* closes dev too, against a gone peer */
		drops++;
	}
	wait_baseline(e, fd0, map0, &fd1, &map1);
	evil_say(observed, len, "%u open/read/close cycles over %u connections in %lld ms, "
		 "%u failed (%s), backend fds kept by live connections after their closes: %ld; "
		 "%u connections dropped mid-handshake (%u set-ups failed); "
		 "backend fds %ld -> %ld, guest memory mappings %ld -> %ld (all mappings %ld -> "
		 "%ld)", cycles, CYCLES / PER_CONN, (long long)(t1 - t0), fails,
		 err_name(first_err), kept, drops, dfail, fd0, fd1, map0, map1, all0,
		 evil_backend_maps(e));
	if (!fails && !kept && !dfail && fd1 <= fd0 && map1 <= map0)
		rc = 0;
	return rc;
}

/* ---- 11. fd-exhaustion (loopback) ---------------------------------------- */

/* The backend's default per-guest quota (docs/backend.md) for its soft
 * limit: an eighth, 16..1024. */
static long default_quota(rlim_t soft)
{
	long q = (long)(soft / 8);

	return q < 16 ? 16 : q > 1024 ? 1024 : q;
}

/* Register event channels on d until refused, keeping them (the backend
 * keeps two descriptors each until they are freed); returns the refusal. */
static int hog_channels(struct xvd_domain *d, unsigned int max, unsigned int *n)
{
	int r = 0;

	while (*n < max) {
		uint32_t port;

		r = d->bus->ops->evtchn_alloc(d->bus, &port);
		if (r)
			break;
		(*n)++;
	}
	return r;
}

/* Share one-page regions on d until refused; the memory stays ours (and
 * shared) in mem[], so the caller frees it. */
static int hog_regions(struct xvd_domain *d, struct drv_mem *mem, unsigned int max,
		       unsigned int *n, unsigned int devid0)
{
	int r = 0;

	while (*n < max) {
		r = d->bus->ops->mem_alloc(d->bus, DRV_MEM_DEV, devid0 + *n, 1, &mem[*n]);
		if (r)
			break;
		r = d->bus->ops->mem_share(d->bus, &mem[*n]);
		(*n)++;			/* freed by the caller either way */
		if (r)
			break;
	}
	return r;
}

/*
 * Every event channel a loopback guest registers keeps a socket in the
 * backend until released (regions one memfd each).  First an attacker
 * that never releases anything runs into its own quota: clean -EDQUOT for
 * channels and regions, and every other guest still opens new devices.
 * Then the backend as a whole runs out (its soft RLIMIT_NOFILE lowered to
 * just above what it holds, so that a second attacker, far from its quota,
 * takes the rest): clean EMFILE refusals, other guests keep their devices
 * and connection, a new connection is refused without the backend spinning,
 * and all comes back when the attackers leave.
 */
static int case_fd_exhaustion(struct evil_env *e, char *observed, size_t len)
{
	enum { MAXR = 64 };
	struct xvd_domain_opts dopts = { .socket_path = e->socket_path, .log_level = -1 };
	struct xvd_domain *inno = NULL, *att = NULL, *att2 = NULL, *probe = NULL, *fresh = NULL;
	struct xvd_dev *rng = NULL, *disk = NULL, *frng = NULL;
	struct drv_mem mem[MAXR], mem2[MAXR];
	long fd0 = evil_backend_fds(e), fda, fdq, fd1, map1, cpu0, cpu1, quota;
	unsigned int nev = 0, nreg = 0, nev2 = 0, nreg2 = 0;
	int r, r_ev, r_reg, r_open, r_fresh, r_ev2, r_reg2, r_probe, r_rng, r_after, rc = -1;
	struct rlimit old, lim;
	int64_t t0, t1;
	uint8_t b[16];

	if (prlimit(e->backend_pid, RLIMIT_NOFILE, NULL, &old)) {
		evil_say(observed, len, "prlimit: %s", strerror(errno));
		return -1;
	}
	quota = default_quota(old.rlim_cur);
	r = xvd_domain_open_loop(&dopts, &inno);
	if (!r)
		r = evil_open_rng(&(struct evil_env){ .d = inno, .rng_export = e->rng_export },
				  &(struct xvd_dev_opts){ .devid = 5, .pool_pages = XVMSG_MIN_POOL_PAGES_RNG }, &rng);
	if (!r)
		r = xvd_domain_open_loop(&dopts, &att);
	if (r) {
		evil_say(observed, len, "setup: %s", err_name(r));
		goto out;
	}
	/* 1. The attacker fills its quota (its RAM is not shared in pool mode). */
	fda = evil_backend_fds(e);
	r_ev = hog_channels(att, 5000, &nev);
	r_reg = hog_regions(att, mem, MAXR, &nreg, 700);
	fdq = evil_backend_fds(e);
	evil_say(observed, len, "backend fd limit %ld, quota %ld: attacker registered %u event "
		 "channels, then %s, regions then %s (%u tried); backend fds +%ld; ",
		 (long)old.rlim_cur, quota, nev, err_name(r_ev), err_name(r_reg), nreg, fdq - fda);
	/* ...and everybody else still gets new devices. */
	r_open = evil_open_blk(&(struct evil_env){ .d = inno, .blk_export = e->blk_export },
			       XVD_MODE_POOL, &(struct xvd_dev_opts){ .devid = 6, .pool_pages = 8 },
			       &disk);
	if (!r_open)
		r_open = evil_blk_still_works(disk);
	r_rng = xvd_rng_read(rng, b, sizeof(b));
	if (disk) {
		xvd_dev_close(disk);
		disk = NULL;
	}
	r_fresh = xvd_domain_open_loop(&dopts, &fresh);
	if (!r_fresh) {
		xvd_dev_close(rng);	/* the export goes to the new guest */
		rng = NULL;
		r_fresh = evil_open_rng(&(struct evil_env){ .d = fresh, .rng_export = e->rng_export },
					&(struct xvd_dev_opts){ .devid = 9, .pool_pages = XVMSG_MIN_POOL_PAGES_RNG }, &frng);
	}
	if (!r_fresh && xvd_rng_read(frng, b, sizeof(b)) != (int)sizeof(b))
		r_fresh = -EIO;
	evil_say(observed, len, "innocent guest's new disk: %s, its open rng: %s; a new guest's "
		 "rng: %s; ", err_name(r_open),
		 r_rng == (int)sizeof(b) ? "works" : err_name(r_rng), err_name(r_fresh));
	if (frng) {
		xvd_dev_close(frng);
		frng = NULL;
	}
	xvd_domain_close(fresh);
	fresh = NULL;
	r = evil_open_rng(&(struct evil_env){ .d = inno, .rng_export = e->rng_export },
			  &(struct xvd_dev_opts){ .devid = 5, .pool_pages = XVMSG_MIN_POOL_PAGES_RNG }, &rng);
	if (r) {
		evil_say(observed, len, "innocent rng reopen: %s", err_name(r));
		goto out;
	}

	/* 2. The backend as a whole runs out: a second attacker, far below its
	 * quota, takes the last descriptors under a lowered limit. */
	lim = old;
	lim.rlim_cur = (rlim_t)evil_backend_fds(e) + 40;
	r = xvd_domain_open_loop(&dopts, &att2);
	if (r || prlimit(e->backend_pid, RLIMIT_NOFILE, &lim, NULL)) {
		evil_say(observed, len, "second attacker: %s", r ? err_name(r) : strerror(errno));
		goto out;
	}
	r_ev2 = hog_channels(att2, 5000, &nev2);
	r_reg2 = hog_regions(att2, mem2, MAXR, &nreg2, 800);	/* the last odd one */
	r_rng = xvd_rng_read(rng, b, sizeof(b));
	evil_say(observed, len, "limit lowered to %ld: second attacker got %u channels, then %s, "
		 "regions then %s; innocent rng: %s; ", (long)lim.rlim_cur, nev2, err_name(r_ev2),
		 err_name(r_reg2), r_rng == (int)sizeof(b) ? "works" : err_name(r_rng));
	/* A new guest while no descriptor is left: refused or timed out, and
	 * the backend does not spin on its listening socket meanwhile. */
	cpu0 = evil_backend_cpu_ms(e);
	t0 = xvd_now_ms();
	dopts.timeout_ms = 500;
	r_probe = xvd_domain_open_loop(&dopts, &probe);
	{
		struct timespec ts = { 0, 300 * 1000000 };

		nanosleep(&ts, NULL);
	}
	t1 = xvd_now_ms();
	cpu1 = evil_backend_cpu_ms(e);
	dopts.timeout_ms = 0;
	evil_say(observed, len, "new guest: %s, backend CPU %ld ms in %lld ms; ",
		 err_name(r_probe), cpu1 - cpu0, (long long)(t1 - t0));
	xvd_domain_close(probe);
	probe = NULL;
	/* The attackers leave: everything comes back. */
	prlimit(e->backend_pid, RLIMIT_NOFILE, &old, NULL);
	for (unsigned int i = 0; i < nreg2; i++)
		att2->bus->ops->mem_free(att2->bus, &mem2[i]);
	nreg2 = 0;
	xvd_domain_close(att2);
	att2 = NULL;
	for (unsigned int i = 0; i < nreg; i++)
		att->bus->ops->mem_free(att->bus, &mem[i]);
	nreg = 0;
	xvd_domain_close(att);
	att = NULL;
	r_after = xvd_rng_read(rng, b, sizeof(b)) == (int)sizeof(b) ? 0 : -EIO;
	if (!r_after)
		r_after = evil_open_blk(&(struct evil_env){ .d = inno, .blk_export = e->blk_export },
					XVD_MODE_POOL,
					&(struct xvd_dev_opts){ .devid = 7, .pool_pages = 8 }, &disk);
	if (!r_after)
		r_after = evil_blk_still_works(disk);
	evil_say(observed, len, "after the attackers left: innocent rng + new disk %s",
		 err_name(r_after));
	/* The quota held exactly (channels 1 fd, regions 1), the refusals
	 * were clean, nobody else noticed. */
	if (r_ev != -EDQUOT || r_reg != -EDQUOT || (long)nev != quota ||
	    fdq - fda != quota || r_open || r_fresh)
		goto out;
	if (r_rng != (int)sizeof(b) || (r_ev2 != -EMFILE && r_ev2 != -ENFILE) ||
	    (r_reg2 != -EMFILE && r_reg2 != -ENFILE) || (long)nev2 >= quota ||
	    r_probe == 0 || (cpu1 - cpu0) > (t1 - t0) / 4 || r_after)
		goto out;
	rc = 0;
out:
	prlimit(e->backend_pid, RLIMIT_NOFILE, &old, NULL);
	if (disk)
		xvd_dev_close(disk);
	if (rng)
		xvd_dev_close(rng);
	if (frng)
		xvd_dev_close(frng);
	for (unsigned int i = 0; att && i < nreg; i++)
		att->bus->ops->mem_free(att->bus, &mem[i]);
	for (unsigned int i = 0; att2 && i < nreg2; i++)
		att2->bus->ops->mem_free(att2->bus, &mem2[i]);
	xvd_domain_close(fresh);
	xvd_domain_close(probe);
	xvd_domain_close(att2);
	xvd_domain_close(att);
	xvd_domain_close(inno);
	wait_baseline(e, fd0, -1, &fd1, &map1);
	evil_say(observed, len, "; fds %ld -> %ld", fd0, fd1);
	if (fd1 > fd0)
		rc = -1;
	return rc;
}

const struct evil_case evil_msg_cases[] = {
	{ "msg-garbage", "every malformed message (size, response bit, dev_num, unknown id, "
	  "token 0, short or lying payload) is discarded without a reply, slack after a valid "
	  "payload and reserved type bits are ignored, and the device keeps working",
	  case_msg_garbage, 0 },
	{ "msg-ring-lies", "a lying b2d.cons stalls only that device (no spin) until corrected; "
	  "garbage event fields change nothing; d2b.prod 1000 ahead disconnects that device "
	  "only (error key, Closed), which then closes and reopens",
	  case_msg_ring_lies, 0 },
	{ "msg-toctou", "messages rewritten after publication are each handled at most once "
	  "with well-formed responses; the backend survives and a reset device works",
	  case_msg_toctou, 0 },
	{ "msg-tokens", "shared, 0xffff and random tokens: each response carries its request's "
	  "token, id and size in order; token 0 gets no response; the library keeps working",
	  case_msg_tokens, 0 },
	{ "config-abuse", "SET_CONFIG with a stale generation fails with -EAGAIN, read-only "
	  "fields with -EPERM, out-of-range GET/SET answer length 0, lengths beyond a message "
	  "get no reply; config and generation unchanged",
	  case_config_abuse, 0 },
	{ "status-abuse", "DRIVER_OK without FEATURES_OK, unoffered or missing features, bad "
	  "queue set-ups (which leave the queue as it was), changes after DRIVER_OK and status "
	  "going backwards are refused as documented; FAILED then reset works; a fresh open "
	  "works",
	  case_status_abuse, 0 },
	{ "reply-overflow", "grant mode: with seven responses unread, a DRIVER_OK whose rings "
	  "cannot be mapped fills the eighth slot with its response (NEEDS_RESET); the "
	  "EVENT_CONFIG waits until the driver reads, nothing is overwritten; a reset recovers",
	  case_reply_overflow, EVIL_LOOP_ONLY },
	{ "notify-storm", "1e6 queue and 1e5 message notifications with nothing to do: the "
	  "witness is served throughout and the backend is idle afterwards",
	  case_notify_storm, 0 },
	{ "many-devices", "thousands of attach requests over several guests: one frontend per "
	  "export, clean EBUSY/ENOENT/EEXIST/EINVAL refusals; 500 full opens, 300 of them on "
	  "one connection, all work; backend fds back to baseline after every close (regions "
	  "and channels released), bounded while open, at baseline after the guests leave",
	  case_many_devices, EVIL_LOOP_ONLY },
	{ "handshake-abuse", "garbage frontend keys and states out of order: the device goes "
	  "Closed with an error key and log line naming the key, the error is gone when the "
	  "frontend starts over; a proper open afterwards works",
	  case_handshake_abuse, EVIL_LOOP_ONLY },
	{ "attach-churn", "1000 open/close cycles (250 per connection) and 200 connections "
	  "dropped mid-handshake: nothing fails, a live connection's closes leave no backend fds, "
	  "backend fds and mappings back to baseline",
	  case_attach_churn, EVIL_LOOP_ONLY },
	{ "fd-exhaustion", "a guest that never releases gets clean EDQUOT refusals at exactly "
	  "its quota while other guests (old and new) open new devices; with the backend's "
	  "limit lowered a second guest runs it out: clean EMFILE refusals, others keep their "
	  "devices, a new connection is refused, nothing spins; all comes back after",
	  case_fd_exhaustion, EVIL_LOOP_ONLY },
	{ 0 }
};
