/* SPDX-License-Identifier: MIT */
/*
 * The loopback bus: xvmsg on one Linux host, without a hypervisor.
 *
 * A driver process (the "guest") and xvmsg-backend (the "driver domain") are
 * separate processes.  The loopback bus emulates, with plain Linux objects,
 * the three things the Xen bus gets from Xen:
 *
 *   grant table   a memfd of struct xvmsg_loop_gnt entries, written by the
 *                 driver; the backend's bus layer checks it on every map and
 *                 marks entries in use, exactly like Xen's v1 grant table.
 *   memory        memfd regions at guest frame numbers chosen by the driver.
 *                 In pool mode the backend receives only the region holding
 *                 the message page and the pool; guest RAM is another region
 *                 it never receives.
 *   event chans   a SOCK_DGRAM unix socketpair per port, made by the
 *                 backend, which gives the driver one end: a datagram
 *                 either way is a notification.
 *   xenstore      a key/value store inside the backend process; the driver
 *                 writes its frontend keys over the socket and receives
 *                 every write to its devices' backend dirs.
 *
 * Control travels over a SOCK_SEQPACKET unix socket; file descriptors ride
 * along as SCM_RIGHTS.  Each packet is a struct xvmsg_loop_hdr followed by
 * len bytes of payload.  Requests get a reply with the same op | REPLY and the
 * same seq; status is 0 or a negative errno.  See docs/protocol.md.
 *
 * Memory fds (the grant table, regions) must be memfds sealed with
 * F_SEAL_SHRINK: memory that could shrink under the backend's mappings would
 * kill it with SIGBUS.
 *
 * Every region (one fd) and event channel (one) a connection registers counts
 * against its descriptor quota in the backend until released with UNREGION /
 * EVTCHN_CLOSE or the connection ends; beyond it REGION and EVTCHN fail with
 * -EDQUOT (-EMFILE: the backend as a whole is out of descriptors).  The
 * backend's mappings of a connection's memory and the store keys it writes
 * have quotas too (-EDQUOT); its keys go with its devices and with it.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_LOOP_H
#define XVMSG_LOOP_H

#include "types.h"

/* 2: event channels are socketpairs the backend makes (1: driver eventfds,
 * which let a driver block the backend through the flags it shared). */
#define XVMSG_LOOP_VERSION	2
#define XVMSG_LOOP_MAX_PACKET	1024
#define XVMSG_LOOP_MAX_FDS	4
#define XVMSG_LOOP_BACKEND_DOMID 1	/* the backend's domid on the loopback bus */
/* Grant table (HELLO's gnt_entries): refs below XVMSG_LOOP_GNT_RESERVED are
 * reserved, as in Xen, and never mapped; a table has more entries than
 * that and at most XVMSG_LOOP_MAX_GNT_ENTRIES. */
#define XVMSG_LOOP_GNT_RESERVED	8
#define XVMSG_LOOP_MAX_GNT_ENTRIES (1u << 20)

struct xvmsg_loop_hdr {
	__le32	op;		/* XVMSG_LOOP_OP_*, | XVMSG_LOOP_REPLY in replies */
	__le32	len;		/* payload bytes after this header */
	__le32	seq;		/* echoed in the reply */
	__le32	status;		/* replies: 0 or -errno, as two's complement */
};
XVMSG_ASSERT_SIZE(struct xvmsg_loop_hdr, 16);

#define XVMSG_LOOP_REPLY	0x80000000u

enum {
	/* driver -> backend */
	XVMSG_LOOP_OP_HELLO	= 1,	/* xvmsg_loop_hello + fd: grant table memfd */
	XVMSG_LOOP_OP_REGION	= 2,	/* xvmsg_loop_region + fd: memfd */
	XVMSG_LOOP_OP_EVTCHN	= 3,	/* xvmsg_loop_evtchn, no fds; the reply
					 * carries the driver's end of the channel */
	XVMSG_LOOP_OP_ATTACH	= 4,	/* xvmsg_loop_attach: act as toolstack */
	XVMSG_LOOP_OP_DETACH	= 5,	/* xvmsg_loop_devid */
	XVMSG_LOOP_OP_WRITE	= 6,	/* "path\0value\0": one key directly in the
					 * frontend dir of a device the sender
					 * attached (.../xvmsg/<devid>/<key>, devid
					 * in canonical decimal); -EACCES otherwise,
					 * -EDQUOT beyond its store quota */
	XVMSG_LOOP_OP_UNREGION	= 7,	/* xvmsg_loop_unregion: release a region */
	XVMSG_LOOP_OP_EVTCHN_CLOSE = 8,	/* xvmsg_loop_evtchn: release a channel */
	/* backend -> driver, no reply */
	XVMSG_LOOP_OP_STORE_EVENT = 32,	/* "path\0value\0"; value absent = removed */
};

struct xvmsg_loop_hello {
	__le32	version;	/* XVMSG_LOOP_VERSION */
	__le32	gnt_entries;	/* entries in the grant table memfd */
};
XVMSG_ASSERT_SIZE(struct xvmsg_loop_hello, 8);

struct xvmsg_loop_hello_reply {
	__le32	version;
	__le16	frontend_domid;	/* the domid the driver was given */
	__le16	backend_domid;	/* grant to this domid */
};
XVMSG_ASSERT_SIZE(struct xvmsg_loop_hello_reply, 8);

/* A memfd holding guest frames [base_gfn, base_gfn + pages). */
struct xvmsg_loop_region {
	__le64	base_gfn;
	__le64	pages;
};
XVMSG_ASSERT_SIZE(struct xvmsg_loop_region, 16);

/* UNREGION: the region registered at exactly base_gfn is forgotten and its
 * memfd closed (-ENOENT if none).  Mappings the backend already holds stay
 * valid until it unmaps them; no new ones can be made. */
struct xvmsg_loop_unregion {
	__le64	base_gfn;
};
XVMSG_ASSERT_SIZE(struct xvmsg_loop_unregion, 8);

/* Interdomain event channel `port` (frontend's number).  The backend makes a
 * SOCK_DGRAM unix socketpair, keeps one end and sends the other with its
 * reply (SCM_RIGHTS).  The driver sends a datagram on its end to notify the
 * backend and receives one when the backend notifies it; the bytes mean
 * nothing, any number of pending notifications may arrive as fewer.  Both
 * sides send with MSG_DONTWAIT: a full queue means a notification is
 * already pending.  EVTCHN_CLOSE (no fds) releases it: -ENOENT unknown
 * port, -EBUSY while a device the backend serves has it bound (close the
 * device first). */
struct xvmsg_loop_evtchn {
	__le32	port;
	__le32	reserved;
};
XVMSG_ASSERT_SIZE(struct xvmsg_loop_evtchn, 8);

struct xvmsg_loop_attach {
	char	export_name[32];	/* NUL-terminated name of a backend device */
	__le32	devid;			/* xenstore device id to create */
	__le32	mode;			/* XVMSG_MODE_* */
	__le32	pool_pages;		/* 0 = default */
	__le32	reserved;
};
XVMSG_ASSERT_SIZE(struct xvmsg_loop_attach, 48);

struct xvmsg_loop_devid {
	__le32	devid;
	__le32	reserved;
};
XVMSG_ASSERT_SIZE(struct xvmsg_loop_devid, 8);

/* Grant table entry: Xen's grant_entry_v1 layout and flag meanings. */
struct xvmsg_loop_gnt {
	__le16	flags;		/* XVMSG_GTF_* */
	__le16	domid;		/* domain allowed to map */
	__le32	frame;		/* guest frame number */
};
XVMSG_ASSERT_SIZE(struct xvmsg_loop_gnt, 8);

#define XVMSG_GTF_PERMIT_ACCESS	0x0001	/* set by the granter */
#define XVMSG_GTF_READONLY	0x0004	/* set by the granter */
#define XVMSG_GTF_READING	0x0008	/* set by the mapper while mapped */
#define XVMSG_GTF_WRITING	0x0010	/* set by the mapper while mapped writable */

#endif /* XVMSG_LOOP_H */
