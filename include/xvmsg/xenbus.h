/* SPDX-License-Identifier: MIT */
/*
 * The xvmsg bus: how a virtio-msg driver (the frontend, in the guest) and a
 * virtio-msg device (the backend, in a driver domain) find each other and
 * talk.  On Xen the pieces are a granted message page, event channels and
 * xenstore; the loopback bus (loop.h) emulates the same three on one host.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_XENBUS_H
#define XVMSG_XENBUS_H

#include "types.h"
#include "msg.h"

/* ------------------------------------------------------------------------
 * Message page
 *
 * One 4 KiB page, allocated and granted by the frontend (key msg-ref).  It
 * holds two single-producer/single-consumer rings of whole messages:
 *
 *   d2b: driver -> device: requests, EVENT_AVAIL when sent in band
 *   b2d: device -> driver: responses, EVENT_CONFIG, bus events
 *
 * Indices are free-running u32 counters; slot = index % XVMSG_RING_SLOTS.
 * A ring holds prod - cons messages; a consumer that finds more than
 * XVMSG_RING_SLOTS treats the ring as corrupt.  The slot count is a protocol
 * constant: neither side reads it from shared memory.
 *
 * Notification suppression (the Xen ring-macro scheme): after publishing
 * messages old_prod..new_prod-1 the producer notifies the peer only when
 *     (u32)(new_prod - event) < (u32)(new_prod - old_prod)
 * where event is the consumer's cons_event.  A consumer going idle writes
 * cons_event = cons + 1, issues a full barrier, and re-checks prod before it
 * sleeps.  prod_event works the same way in the other direction for a
 * producer waiting for a free slot.
 * ------------------------------------------------------------------------ */
#define XVMSG_MSG_PAGE_MAGIC	0x504d5658u	/* "XVMP" */
#define XVMSG_MSG_PAGE_VERSION	1
#define XVMSG_RING_SLOTS	8
#define XVMSG_PAGE_SIZE		4096
#define XVMSG_PAGE_SHIFT	12

struct xvmsg_ring_ctl {
	__le32	prod;		/* written by the producer only */
	__le32	cons;		/* written by the consumer only */
	__le32	cons_event;	/* consumer: notify me when prod passes this */
	__le32	prod_event;	/* producer: notify me when cons passes this */
	__le32	reserved[4];
};
XVMSG_ASSERT_SIZE(struct xvmsg_ring_ctl, 32);

struct xvmsg_msg_page {
	__le32			magic;		/* XVMSG_MSG_PAGE_MAGIC, set by frontend */
	__le16			version;	/* XVMSG_MSG_PAGE_VERSION */
	__le16			reserved0;
	__le32			reserved1[14];
	struct xvmsg_ring_ctl	d2b;
	struct xvmsg_ring_ctl	b2d;
	struct vmsg		d2b_slot[XVMSG_RING_SLOTS];
	struct vmsg		b2d_slot[XVMSG_RING_SLOTS];
};
XVMSG_ASSERT_SIZE(struct xvmsg_msg_page, XVMSG_PAGE_SIZE);
XVMSG_ASSERT_OFF(struct xvmsg_msg_page, d2b, 64);
XVMSG_ASSERT_OFF(struct xvmsg_msg_page, b2d, 96);
XVMSG_ASSERT_OFF(struct xvmsg_msg_page, d2b_slot, 128);
XVMSG_ASSERT_OFF(struct xvmsg_msg_page, b2d_slot, 128 + 8 * VMSG_MAX_SIZE);

/* Should a producer that moved prod from old to new notify? */
static inline int xvmsg_ring_need_notify(__u32 old_prod, __u32 new_prod, __u32 event)
{
	return (__u32)(new_prod - event) < (__u32)(new_prod - old_prod);
}

/* ------------------------------------------------------------------------
 * Bus addresses and memory-access modes
 *
 * Virtqueue and buffer addresses are bus addresses.
 *   pool, grant: the Linux grant DMA format (drivers/xen/grant-dma-ops.c):
 *       bit 63 set, grant reference in bits 12..62, offset in bits 0..11.
 *       A range that crosses pages uses consecutive grant references.
 *   full:  guest frame addresses, gfn << 12 | offset, bit 63 clear.
 * ------------------------------------------------------------------------ */
#define XVMSG_ADDR_GRANT_BIT	(1ULL << 63)
#define XVMSG_GRANT_ADDR(ref, off) \
	(XVMSG_ADDR_GRANT_BIT | ((__u64)(ref) << XVMSG_PAGE_SHIFT) | ((off) & 0xfffULL))
#define XVMSG_ADDR_IS_GRANT(a)	(((a) & XVMSG_ADDR_GRANT_BIT) != 0)
#define XVMSG_ADDR_PFN(a)	(((a) & ~XVMSG_ADDR_GRANT_BIT) >> XVMSG_PAGE_SHIFT)
#define XVMSG_ADDR_OFF(a)	((a) & 0xfffULL)

/*
 * The memory-access mode of a device.  In xenstore (key "mode") it is a name
 * (wire.h: xvmsg_mode_name, xvmsg_parse_mode); in a shared or wire struct it
 * is a fixed-width integer holding one of these values, never the enum.
 */
enum xvmsg_mode {
	XVMSG_MODE_POOL  = 0,	/* only the pool is granted; data bounced (default) */
	XVMSG_MODE_GRANT = 1,	/* each buffer granted per request (grant-dma-ops) */
	XVMSG_MODE_FULL  = 2,	/* backend maps guest frames (classic dom0 backend) */
};
#define XVMSG_NR_MODES		3

/* ------------------------------------------------------------------------
 * xenstore
 *
 * Device class "xvmsg".  One xenstore device per virtio device:
 *   backend dir:  /local/domain/<backend-id>/backend/xvmsg/<frontend-id>/<devid>
 *   frontend dir: /local/domain/<frontend-id>/device/xvmsg/<devid>
 * Both directories are created by the toolstack (xvmsg-ctl on Xen, the
 * loopback bus on one host).  Every key is documented in docs/protocol.md
 * with its writer, values and default.
 * ------------------------------------------------------------------------ */
#define XVMSG_XS_CLASS		"xvmsg"

/* backend dir, written by the toolstack */
#define XVMSG_XS_FRONTEND	"frontend"	/* path of the frontend dir */
#define XVMSG_XS_FRONTEND_ID	"frontend-id"	/* domid */
#define XVMSG_XS_TYPE		"type"		/* "blk" | "rng" | "console" | "net" */
#define XVMSG_XS_PARAMS		"params"	/* device specific, see docs */
#define XVMSG_XS_MODE		"mode"		/* "pool" (default) | "grant" | "full" */
#define XVMSG_XS_POOL_PAGES	"pool-pages"	/* pool size in pages, default 256 */
#define XVMSG_XS_ONLINE		"online"	/* "1", as xl writes it; not read */
/* backend dir, written by the backend (the toolstack creates "state" as 1) */
#define XVMSG_XS_STATE		"state"		/* XenbusState, decimal */
#define XVMSG_XS_MAX_QUEUES	"max-queues"	/* virtqueues the device has */
#define XVMSG_XS_MAX_POOL	"max-pool-pages"	/* largest pool accepted */
#define XVMSG_XS_HOTPLUG_ERROR	"error"		/* human-readable reason of a failure */
#define XVMSG_XS_STATS		"stats"		/* counters, "key=value ..." */
#define XVMSG_XS_STATS_SEQ	"stats-seq"	/* stats-request the counters answer */
/*
 * msg-revisions (backend dir)
 *      Values:   comma-separated decimal message layout revisions, "1,2"
 *                (msg.h: XVMSG_MSG_REV_*), no spaces, each 1..31
 *      Default:  "1" (a backend that writes no such key)
 *      Writer:   backend, before InitWait
 *      The virtio-msg message layouts the backend speaks.  A backend that
 *      speaks only revision 1 may omit it (xvmsg's does, so that a backend
 *      forced to revision 1 is exactly an older one on the wire).
 *
 * transport-features (backend dir)
 *      Values:   decimal bit mask of msg.h's VMSG_TF_* (1 = STRICT_CONFIG_
 *                GENERATION)
 *      Default:  0 in revision 2 (the baseline config profile); revision 1
 *                is always strict
 *      Writer:   backend, before InitWait, with msg-revisions naming 2
 *      The transport feature bits of this bus instance (revision 2).
 *
 * msg-revision (frontend dir)
 *      Values:   one revision of the backend's msg-revisions
 *      Default:  1 (a frontend that writes no such key)
 *      Writer:   frontend, with its other keys before Initialised
 *      The layout both sides use from Connected on: the highest revision
 *      both speak.  A backend that does not speak it goes Closed with
 *      "error" saying so.  A frontend that finds no common revision writes
 *      its own "error" key (frontend dir), goes Closed and connects no
 *      further; the backend logs that error.  A frontend that speaks only
 *      revision 1 may omit the key.
 */
#define XVMSG_XS_MSG_REVISIONS	"msg-revisions"	/* backend dir */
#define XVMSG_XS_TRANSPORT_FEATURES "transport-features"	/* backend dir */
#define XVMSG_XS_MSG_REVISION	"msg-revision"	/* frontend dir */
/* backend dir, written by the toolstack to ask for fresh counters */
#define XVMSG_XS_STATS_REQUEST	"stats-request"
/* frontend dir, written by the toolstack (and XVMSG_XS_TYPE: the type the
 * guest must find behind the device; the backend cannot write it here) */
#define XVMSG_XS_BACKEND	"backend"
#define XVMSG_XS_BACKEND_ID	"backend-id"
/* frontend dir, written by the frontend */
#define XVMSG_XS_MSG_REF	"msg-ref"	/* grant ref of the message page */
#define XVMSG_XS_EVTCHN		"event-channel"	/* port of the message rings */
#define XVMSG_XS_POOL_REF	"pool-ref"	/* first of pool-pages consecutive refs */
#define XVMSG_XS_NUM_QUEUES	"num-queues"	/* vq event channels published */
#define XVMSG_XS_VQ_EVTCHN_FMT	"vq-%u-event-channel"	/* port of virtqueue %u */

#define XVMSG_DEFAULT_POOL_PAGES	256
#define XVMSG_MAX_POOL_PAGES		65536	/* 256 MiB */
#define XVMSG_MAX_QUEUES		64

/* XenbusState, as in xen/include/public/io/xenbus.h */
enum {
	XVMSG_STATE_UNKNOWN		= 0,
	XVMSG_STATE_INITIALISING	= 1,
	XVMSG_STATE_INITWAIT		= 2,
	XVMSG_STATE_INITIALISED		= 3,
	XVMSG_STATE_CONNECTED		= 4,
	XVMSG_STATE_CLOSING		= 5,
	XVMSG_STATE_CLOSED		= 6,
	XVMSG_STATE_RECONFIGURING	= 7,
	XVMSG_STATE_RECONFIGURED	= 8,
};

/* Device number of the one virtio device behind an xvmsg xenstore device. */
#define XVMSG_DEV_NUM		1

#endif /* XVMSG_XENBUS_H */
