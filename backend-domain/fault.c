// SPDX-License-Identifier: MIT
/*
 * Fault injection (--fault): every lie a backend can tell its guest, kept
 * out of the protocol code.  See fault.h for the seams it uses.
 *
 * Completions (used-bad-id, used-bad-len, used-dup-id, keep-mapped,
 * silent, desc-rewrite, avail-rewrite, quiet-bad-id, snoop's positive
 * control) go through the transport's push hook; irq-storm and quiet-bad-id
 * through its notify hook;
 * keep-mapped's pages are released by its reset hook, when the queues
 * stop.  Messages (silent, msg-bad-token, msg-rewrite, wrong-device-id,
 * extra-features),
 * vanish-handshake and snoop's idle scans are called from the connection.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/timerfd.h>
#include <linux/virtio_ring.h>

#include "core.h"
#include "fault.h"

/* Extra notifications per one due.  The asynchronous backend notifies per
 * completion batch, not once per kick: 64 reads of 64 KiB are ~64 batches,
 * so a thousand each is ~64000, more than the synchronous backend's
 * 5000 x ~7 and within reach of a TCG-emulated driver domain. */
#define IRQ_STORM	1000

/* How a completion lies. */
enum lie {
	LIE_LEN,		/* len as given, not clamped to the buffers */
	LIE_BAD_ID,		/* an id beyond the queue */
	LIE_DUP_ID,		/* a correct entry, then the same id again */
	LIE_KEEP_MAPPED,	/* a correct entry; the pages stay mapped until reset */
};

struct xvb_fault {
	int kind;			/* XVB_FAULT_* */
	struct xvb_evloop *loop;
	const struct xvb_log *log;
	const char *name;
	/* The connection's transport, which ours forwards to. */
	const struct xvb_vdev_transport *tp;
	void *tp_ctx;
	struct xvb_vdev *vdev;		/* while connected */
	unsigned int said;		/* desc-/avail-rewrite, extra-features: logged once */
	/* keep-mapped: mappings of completed requests, released at reset */
	struct xvb_mc_ticket *kept;
	unsigned int nkept, kept_cap;
	/* msg-rewrite, msg-bad-token */
	uint32_t rewrite_from;		/* b2d slots below are done */
	uint64_t rewrites, bad_tokens;
	uint64_t quiet_lies;		/* quiet-bad-id: entries written */
	/* snoop */
	int snoop_fd;			/* timerfd, -1 when none */
	uint64_t snoop_requests;	/* stats->requests at the last tick */
	uint64_t snoop_quiet_since;	/* ms: no new request since */
	bool snoop_dirty;		/* requests since the last idle scan */
	uint64_t snoop_idle_scans, snoop_stale_scans;
	uint64_t snoop_busy_scans, snoop_busy_hits;	/* positive control */
};

int xvb_fault_create(int kind, struct xvb_evloop *loop, const struct xvb_log *log,
		     const char *name, struct xvb_fault **out)
{
	struct xvb_fault *f;

	*out = NULL;
	if (kind == XVB_FAULT_NONE)
		return 0;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->kind = kind;
	f->loop = loop;
	f->log = log;
	f->name = name;
	f->snoop_fd = -1;
	*out = f;
	return 0;
}

static void release_kept(struct xvb_fault *f, struct xvb_mapcache *mc)
{
	unsigned int i;

	for (i = 0; mc && i < f->nkept; i++)
		xvb_mc_release(mc, &f->kept[i]);
	free(f->kept);
	f->kept = NULL;
	f->nkept = f->kept_cap = 0;
}

void xvb_fault_destroy(struct xvb_fault *f)
{
	if (!f)
		return;
	release_kept(f, NULL);		/* the reset released them */
	free(f);
}

/* ---- completions: the transport's push and reset hooks ---- */

/* Room for one more kept ticket? */
static bool kept_room(struct xvb_fault *f)
{
	unsigned int cap;
	struct xvb_mc_ticket *k;

	if (f->nkept < f->kept_cap)
		return true;
	cap = f->kept_cap ? 2 * f->kept_cap : 64;
	k = realloc(f->kept, cap * sizeof(*k));
	if (!k)
		return false;
	f->kept = k;
	f->kept_cap = cap;
	return true;
}

/* Complete a chain with a lie. */
static void push_lie(struct xvb_fault *f, struct xvb_vdev *d, struct xvb_req *req,
		     uint32_t len, enum lie lie)
{
	struct xvb_vq *vq = &d->vq[req->queue];
	struct xvb_mc_ticket t = { 0 };
	uint16_t head = req->head;
	bool keep = lie == LIE_KEEP_MAPPED && kept_room(f);

	if (xvb_vq_retire(vq, d->mc, head, keep ? &t : NULL))
		return;
	if (t.n)
		f->kept[f->nkept++] = t;
	if (lie != LIE_LEN && len > req->in_len)
		len = (uint32_t)req->in_len;
	xvb_vq_put_used(vq, lie == LIE_BAD_ID ? (uint32_t)head + vq->size : head, len);
	if (lie == LIE_DUP_ID)
		xvb_vq_put_used(vq, head, len);
}

/* Write into the driver's rings where only the driver may write (pool
 * mode maps them writable).  No-ops on a queue that is not live. */
static void lie_desc_next(struct xvb_vq *vq)
{
	unsigned int i;

	for (i = 0; vq->live && i < vq->size; i++)
		xvb_area_wr16(&vq->desc, 16 * (size_t)i + 12,
			      xvb_area_rd16(&vq->desc, 16 * (size_t)i + 12) | VRING_DESC_F_NEXT);
}

static void lie_avail_idx(struct xvb_vq *vq)
{
	if (vq->live)
		xvb_area_wr16(&vq->avail, 2, vq->used_idx);
}

static bool ft_push(void *ctx, struct xvb_vdev *d, struct xvb_req *req, uint32_t written)
{
	struct xvb_fault *f = ctx;

	switch (f->kind) {
	case XVB_FAULT_SILENT:
		return true;		/* the request stays in flight forever */
	case XVB_FAULT_AVAIL_REWRITE:
		/* In flight forever, and the driver's avail index says none is. */
		lie_avail_idx(&d->vq[req->queue]);
		if (!f->said++)
			xvb_warn(d->log, "%s: avail-rewrite: requests kept, avail index set back",
				 d->name);
		return true;
	case XVB_FAULT_DESC_REWRITE:
		/* Every descriptor chained on, then this (valid) completion: a
		 * driver that reads NEXT back from the table follows a chain
		 * that never ends. */
		lie_desc_next(&d->vq[req->queue]);
		if (!f->said++)
			xvb_warn(d->log, "%s: desc-rewrite: NEXT set on every descriptor", d->name);
		return false;
	case XVB_FAULT_SNOOP:
		if (req->out_len >= 4096 && f->snoop_busy_scans < 1000 &&
		    ++f->snoop_busy_scans % 8 == 1 &&
		    xvb_mc_pool_scan(d->mc, XVB_SNOOP_MARKER) > 0 && !f->snoop_busy_hits++)
			xvb_warn(d->log, "%s: snoop: the marker is in the pool while a write is "
				 "in flight (positive control)", d->name);
		return false;
	case XVB_FAULT_USED_BAD_ID:
		push_lie(f, d, req, written, LIE_BAD_ID);
		return true;
	case XVB_FAULT_USED_BAD_LEN:
		/* past the clamp of an honest push */
		push_lie(f, d, req, (uint32_t)req->in_len + 4096, LIE_LEN);
		return true;
	case XVB_FAULT_USED_DUP_ID:
		push_lie(f, d, req, written, LIE_DUP_ID);
		return true;
	case XVB_FAULT_KEEP_MAPPED:
		push_lie(f, d, req, written, LIE_KEEP_MAPPED);
		return true;
	case XVB_FAULT_QUIET_BAD_ID:
		/* A NIC's transmit queue (1): the bad entries wait in the used
		 * ring until the driver looks there on its own, as virtio_net
		 * does for transmit completions when it receives. */
		if (req->queue == 0)
			return false;
		push_lie(f, d, req, written, LIE_BAD_ID);
		if (!f->quiet_lies++)
			xvb_warn(d->log, "%s: quiet-bad-id: used entries beyond queue %u, "
				 "not notified", d->name, req->queue);
		return true;
	default:
		return false;
	}
}

static void ft_reset(void *ctx, struct xvb_vdev *d)
{
	struct xvb_fault *f = ctx;

	release_kept(f, d->mc);
	if (f->tp->reset)
		f->tp->reset(f->tp_ctx, d);
}

static void ft_send(void *ctx, const struct vmsg *m)
{
	struct xvb_fault *f = ctx;

	f->tp->send(f->tp_ctx, m);
}

static void ft_notify_used(void *ctx, unsigned int q)
{
	struct xvb_fault *f = ctx;
	unsigned int i, n = f->kind == XVB_FAULT_IRQ_STORM ? 1 + IRQ_STORM : 1;

	if (f->kind == XVB_FAULT_QUIET_BAD_ID && q != 0)
		return;
	for (i = 0; i < n; i++)
		f->tp->notify_used(f->tp_ctx, q);
}

static const struct xvb_vdev_transport fault_transport = {
	.send = ft_send,
	.notify_used = ft_notify_used,
	.push = ft_push,
	.reset = ft_reset,
};

void xvb_fault_wrap(struct xvb_fault *f, const struct xvb_vdev_transport **tp, void **ctx)
{
	f->tp = *tp;
	f->tp_ctx = *ctx;
	*tp = &fault_transport;
	*ctx = f;
}

/* ---- the message ring ---- */

bool xvb_fault_drop_request(const struct xvb_fault *f, const struct xvb_vdev *d)
{
	return f->kind == XVB_FAULT_SILENT && d->activated;
}

/* msg-rewrite: scribble over every response slot the driver has consumed
 * (its b2d.cons moved past it).  A driver that copied the message once
 * cannot tell; one that reads the slot again gets garbage. */
void xvb_fault_b2d(struct xvb_fault *f, struct xvmsg_msg_page *msg, uint32_t b2d_prod)
{
	uint32_t cons;
	uint8_t *slot;
	size_t j;

	if (f->kind != XVB_FAULT_MSG_REWRITE)
		return;
	cons = le32toh(XVMSG_READ_ONCE(msg->b2d.cons));
	if (cons - f->rewrite_from > b2d_prod - f->rewrite_from)
		return;		/* an index out of range: nothing to trust */
	for (; f->rewrite_from != cons; f->rewrite_from++) {
		slot = (uint8_t *)&msg->b2d_slot[f->rewrite_from % XVMSG_RING_SLOTS];
		for (j = 0; j < sizeof(msg->b2d_slot[0]); j++)
			slot[j] ^= 0x5a;
		f->rewrites++;
	}
}

/* extra-features: GET_DEVICE_FEATURES offers, beside the device's own
 * bits, every transport bit the protocol does not carry (IN_ORDER, PACKED,
 * RING_RESET, NOTIFICATION_DATA, ...).  The device itself is unchanged, so
 * a driver that accepts one has FEATURES_OK refused (vdev.c: "never
 * offered"), and a driver that clears them gets a working device. */
static void extra_features(struct vmsg *resp)
{
	struct vmsg_features r;
	size_t plen = le16toh(resp->hdr.msg_size) - sizeof(resp->hdr);
	uint32_t i, w;

	if (plen < sizeof(r))
		return;
	memcpy(&r, resp->payload, sizeof(r));
	for (i = 0; i < le32toh(r.num_blocks) && sizeof(r) + 4 * (i + 1) <= plen; i++) {
		uint32_t b = le32toh(r.block_index) + i;
		size_t off = sizeof(r) + 4 * i;

		if (b > 1)
			continue;
		memcpy(&w, resp->payload + off, 4);
		w = htole32(le32toh(w) | (uint32_t)(VMSG_TRANSPORT_FORBIDDEN >> (32 * b)));
		memcpy(resp->payload + off, &w, 4);
	}
}

/* wrong-device-id: GET_DEVICE_INFO names a balloon.  msg-bad-token: before
 * a response, the same with its payload inverted under the previous
 * request's token (stale) and under the next one (not asked yet), when the
 * ring has room for all three. */
unsigned int xvb_fault_response(struct xvb_fault *f, const struct xvmsg_msg_page *msg,
				uint32_t b2d_prod, struct vmsg *resp, struct vmsg extra[2])
{
	uint32_t cons, id = htole32(5);		/* VIRTIO_ID_BALLOON */
	uint16_t tok;
	size_t plen, i;

	if (f->kind == XVB_FAULT_WRONG_DEVICE_ID && !vmsg_is_bus(&resp->hdr) &&
	    resp->hdr.msg_id == VMSG_GET_DEVICE_INFO)
		memcpy(resp->payload + offsetof(struct vmsg_device_info_resp, device_id), &id,
		       sizeof(id));
	if (f->kind == XVB_FAULT_EXTRA_FEATURES && !vmsg_is_bus(&resp->hdr) &&
	    resp->hdr.msg_id == VMSG_GET_DEVICE_FEATURES) {
		extra_features(resp);
		if (!f->said++)
			xvb_warn(f->log, "%s: extra-features: transport bits 0x%llx offered too",
				 f->name, (unsigned long long)VMSG_TRANSPORT_FORBIDDEN);
	}
	if (f->kind != XVB_FAULT_MSG_BAD_TOKEN)
		return 0;
	cons = le32toh(XVMSG_READ_ONCE(msg->b2d.cons));
	if (b2d_prod - cons > XVMSG_RING_SLOTS - 3)
		return 0;
	tok = le16toh(resp->hdr.token);
	plen = le16toh(resp->hdr.msg_size) - sizeof(resp->hdr);
	memcpy(&extra[0], resp, sizeof(extra[0]));
	for (i = 0; i < plen && i < sizeof(extra[0].payload); i++)
		extra[0].payload[i] ^= 0xff;
	extra[1] = extra[0];
	extra[0].hdr.token = htole16(tok == 1 ? 0xffff : (uint16_t)(tok - 1));
	extra[1].hdr.token = htole16(tok == 0xffff ? 1 : (uint16_t)(tok + 1));
	f->bad_tokens += 2;
	return 2;
}

/* ---- the handshake ---- */

void xvb_fault_mapped(struct xvb_fault *f)
{
	if (f->kind != XVB_FAULT_VANISH_HANDSHAKE)
		return;
	/* Like a crash between mapping and Connected. */
	xvb_err(f->log, "%s: fault vanish-handshake: frontend's page mapped, "
		"exiting before Connected", f->name);
	_exit(3);
}

/* ---- snoop: does the guest leave its data in freed pool slots? ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Every 250 ms: once no request came for a second and none is in flight or
 * waiting, every completion has long reached the guest, which has freed
 * (and should have scrubbed) the slots.  Scan the whole pool then, once per
 * burst of activity. */
static void snoop_tick(void *arg, int fd, uint32_t events)
{
	struct xvb_fault *f = arg;
	struct xvb_vdev *d = f->vdev;
	uint64_t expirations, now = now_ms();
	unsigned int q;
	long found;

	(void)events;
	if (read(fd, &expirations, sizeof(expirations)) < 0 || !d || !d->activated)
		return;
	if (d->stats->requests != f->snoop_requests) {
		f->snoop_requests = d->stats->requests;
		f->snoop_quiet_since = now;
		f->snoop_dirty = true;
		return;
	}
	if (!f->snoop_dirty || now - f->snoop_quiet_since < 1000)
		return;
	for (q = 0; q < d->nvqs; q++)
		if (d->vq[q].inflight || xvb_vq_has_work(&d->vq[q]))
			return;
	f->snoop_dirty = false;
	found = xvb_mc_pool_scan(d->mc, XVB_SNOOP_MARKER);
	f->snoop_idle_scans++;
	if (found > 0)
		f->snoop_stale_scans++;
	xvb_warn(f->log, "%s: snoop: idle scan %" PRIu64 ": %ld stale bytes", f->name,
		 f->snoop_idle_scans, found);
}

static void snoop_start(struct xvb_fault *f)
{
	struct itimerspec its = { .it_interval = { 0, 250000000 }, .it_value = { 0, 250000000 } };

	f->snoop_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (f->snoop_fd < 0)
		return;
	if (timerfd_settime(f->snoop_fd, 0, &its, NULL) ||
	    xvb_evloop_add(f->loop, f->snoop_fd, EPOLLIN, snoop_tick, f)) {
		close(f->snoop_fd);
		f->snoop_fd = -1;
		return;
	}
	f->snoop_requests = f->vdev->stats->requests;
	f->snoop_dirty = false;
}

static void snoop_stop(struct xvb_fault *f)
{
	if (f->snoop_fd < 0)
		return;
	xvb_evloop_del_close(f->loop, &f->snoop_fd);
	xvb_warn(f->log, "%s: snoop: %" PRIu64 " idle scans, %" PRIu64 " found stale bytes; "
		 "%" PRIu64 " scans during writes saw the marker", f->name, f->snoop_idle_scans,
		 f->snoop_stale_scans, f->snoop_busy_hits);
}

void xvb_fault_connected(struct xvb_fault *f, struct xvb_vdev *d, uint32_t b2d_prod)
{
	f->vdev = d;
	f->rewrite_from = b2d_prod;
	if (f->kind == XVB_FAULT_SNOOP && d->mc && d->mc->mode == XVMSG_MODE_POOL)
		snoop_start(f);
}

void xvb_fault_disconnected(struct xvb_fault *f)
{
	snoop_stop(f);
	if (f->kind == XVB_FAULT_MSG_REWRITE || f->kind == XVB_FAULT_MSG_BAD_TOKEN)
		xvb_warn(f->log, "%s: fault: %" PRIu64 " consumed response slots rewritten, "
			 "%" PRIu64 " responses with wrong tokens sent", f->name, f->rewrites,
			 f->bad_tokens);
	if (f->kind == XVB_FAULT_QUIET_BAD_ID)
		xvb_warn(f->log, "%s: fault: %" PRIu64 " quiet bad used entries", f->name,
			 f->quiet_lies);
	f->vdev = NULL;
}
