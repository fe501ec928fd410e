/* SPDX-License-Identifier: MIT */
/*
 * libxvmsg-drv: the driver ("guest") side of xvmsg in userspace.
 *
 * A domain is one guest: one connection to the bus, its grant table, its
 * RAM and its devices.  A device is one virtio device behind one xvmsg
 * xenstore device; xvd_dev_open() runs the xenstore handshake and the virtio
 * initialisation over virtio-msg and returns a ready device.
 *
 * Conventions:
 *  - every int function returns 0 (or a count where stated) or -errno;
 *  - nothing is thread-safe: use a domain and its devices from one thread;
 *  - "blocks" means: waits at most the device timeout (default 5 s) unless a
 *    timeout argument says otherwise; nothing ever waits forever;
 *  - once the backend is gone every call returns -ENODEV or -EPIPE promptly;
 *    a device that breaks the protocol is marked broken (-EIO) and stays so
 *    until xvd_dev_reset() succeeds;
 *  - buffers handed to the device stay owned by the caller but must not be
 *    touched until their completion is returned.  In pool mode a buffer may
 *    live anywhere (it is copied through the pool); in grant and full mode it
 *    must lie inside guest RAM from xvd_ram_alloc() (else -EINVAL).
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_DRV_H
#define XVMSG_DRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xvmsg/xenbus.h>	/* enum xvmsg_mode */

struct xvd_domain;
struct xvd_dev;

enum { XVD_LOG_ERR, XVD_LOG_WARN, XVD_LOG_INFO, XVD_LOG_DEBUG };

/* ---- domain ------------------------------------------------------------ */

struct xvd_domain_opts {
	const char *socket_path;	/* loopback bus: the backend's unix socket */
	size_t ram_pages;		/* guest RAM in 4 KiB pages; 0 = 4096 */
	unsigned int gnt_entries;	/* grant table entries, 9..2^20; 0 = 65536 */
	int timeout_ms;			/* default bound of every wait; 0 = 5000 */
	int log_level;			/* highest XVD_LOG_* reported */
	/* Log sink; NULL = stderr.  msg has no trailing newline. */
	void (*log)(void *ctx, int level, const char *msg);
	void *log_ctx;
};

/* Connect to the backend, say HELLO, create RAM.  Blocks (one round trip). */
int xvd_domain_open_loop(const struct xvd_domain_opts *opts, struct xvd_domain **out);
/* The same in a Xen guest domain (xenstore, gntalloc, event channels):
 * devices are attached by the toolstack (xvmsg-ctl); socket_path and
 * gnt_entries are unused.  Pool mode only. */
int xvd_domain_open_xen(const struct xvd_domain_opts *opts, struct xvd_domain **out);
/* Close every device still open, then the connection.  Blocks (bounded). */
void xvd_domain_close(struct xvd_domain *d);
unsigned int xvd_domain_id(const struct xvd_domain *d);
/* The bus control fd: when readable, call xvd_domain_dispatch(). */
int xvd_domain_fd(const struct xvd_domain *d);
/* Apply pending store events.  Never blocks.  -ENODEV once the peer is gone. */
int xvd_domain_dispatch(struct xvd_domain *d);

/* Guest RAM: first-fit, 512-byte granularity, page aligned for len >= 4096.
 * Memory is zeroed on allocation.  -ENOMEM when full. */
int xvd_ram_alloc(struct xvd_domain *d, size_t len, void **buf);
/* Return a buffer; pages the backend still maps (revoke_busy) stay leaked. */
void xvd_ram_free(struct xvd_domain *d, void *buf);

/* ---- devices ----------------------------------------------------------- */

/* The memory-access modes are the wire's (enum xvmsg_mode); these are their
 * names in this API. */
#define XVD_MODE_POOL	XVMSG_MODE_POOL
#define XVD_MODE_GRANT	XVMSG_MODE_GRANT
#define XVD_MODE_FULL	XVMSG_MODE_FULL

struct xvd_dev_opts {
	const char *export_name;	/* backend export to attach */
	unsigned int devid;		/* xenstore device id, < 1024 */
	enum xvmsg_mode mode;		/* XVD_MODE_* */
	unsigned int pool_pages;	/* pool mode; 0 = 256; clamped to max-pool-pages */
	unsigned int queue_size;	/* 0 = min(max_size, 256); rounded down to 2^n */
	uint64_t features;		/* device-specific feature bits wanted */
	bool no_event_idx;		/* refuse VIRTIO_RING_F_EVENT_IDX */
	bool no_indirect;		/* refuse VIRTIO_RING_F_INDIRECT_DESC */
	unsigned int indirect_min;	/* chains of >= this many buffers go indirect; 0 = 4 */
	unsigned int queues;		/* virtio-blk request queues; 0 = 1; more asks
					 * VIRTIO_BLK_F_MQ (-EOPNOTSUPP if not offered) */
	int timeout_ms;			/* 0 = the domain's */
	/* virtio-msg message layout revisions to speak, bit r for revision r
	 * (xvmsg/msg.h XVMSG_MSG_REV_*); 0 = every one known.  The highest one
	 * the backend also speaks is used; none is -EPROTONOSUPPORT.  Only
	 * revision 1: the driver reads and writes no revision key, exactly as
	 * drivers before revisions did. */
	uint32_t msg_revisions;
	/* Called (from inside any call that services the device) for every
	 * EVENT_CONFIG; status may carry NEEDS_RESET (64). */
	void (*config_cb)(void *ctx, struct xvd_dev *dev, uint32_t status, uint32_t generation);
	void *cb_ctx;
};

/* Attach export_name as devid, run the xenstore handshake and the virtio init
 * with num_queues queues; device_id is the virtio device id expected
 * (-ENODEV if another).  Blocks (bounded).  On failure everything is undone. */
int xvd_dev_open(struct xvd_domain *d, const struct xvd_dev_opts *o, uint32_t device_id,
		 unsigned int num_queues, struct xvd_dev **out);
/* Reset the device, close the xenstore device, revoke every grant, detach.
 * Requests still in flight are dropped.  Blocks (bounded).  dev is freed. */
void xvd_dev_close(struct xvd_dev *dev);
/* SET_DEVICE_STATUS 0, complete in-flight requests with -ECANCELED (collect
 * them with xvd_vq_poll), and re-initialise; clears the broken state. */
int xvd_dev_reset(struct xvd_dev *dev);
/* 0 when usable, -EIO when broken, -ENODEV when the backend is gone. */
int xvd_dev_error(const struct xvd_dev *dev);
uint64_t xvd_dev_features(const struct xvd_dev *dev);	/* negotiated, bits 0..63 */
unsigned int xvd_dev_msg_revision(const struct xvd_dev *dev);	/* message layout in use */
unsigned int xvd_dev_queue_size(const struct xvd_dev *dev, unsigned int q);

/* Config space via GET_CONFIG / SET_CONFIG.  Blocks.  A write rejected for a
 * stale generation returns -EAGAIN (read again, retry); one the device
 * refuses at its current generation (read-only field) returns -EPERM. */
int xvd_dev_config_read(struct xvd_dev *dev, uint32_t off, void *buf, uint32_t len);
int xvd_dev_config_write(struct xvd_dev *dev, uint32_t off, const void *buf, uint32_t len);
/* EVENT_CONFIG messages seen since the last call (count), with the latest
 * status and generation.  Never blocks. */
int xvd_dev_config_events(struct xvd_dev *dev, uint32_t *status, uint32_t *generation);

/* Fds that become readable when the device may have something for us (its
 * event channels, then the bus control fd); count, at most max.  A caller
 * with its own poll loop calls xvd_dev_wait(dev, 0) when one is readable,
 * to take the notifications, and then polls the queues. */
int xvd_dev_fds(const struct xvd_dev *dev, int *fds, unsigned int max);
/* Block until the device signals or timeout_ms (-1 = the device timeout)
 * passes: 1 = maybe something to poll, 0 = timeout, or the device error. */
int xvd_dev_wait(struct xvd_dev *dev, int timeout_ms);

struct xvd_stats {
	uint64_t requests;	/* chains submitted */
	uint64_t completions;	/* chains completed by the device */
	uint64_t kicks;		/* queue notifications sent */
	uint64_t kicks_suppressed;
	uint64_t irqs;		/* notifications received (queues + messages) */
	uint64_t msgs_sent, msgs_recv, msgs_bad;	/* virtio-msg messages */
	uint64_t grants, revokes, revoke_busy;		/* grant references */
	uint64_t bounce_in, bounce_out;			/* bytes copied through the pool */
	uint64_t pool_full;	/* maps refused for lack of pool space */
};
void xvd_dev_stats(const struct xvd_dev *dev, struct xvd_stats *st);

/* ---- generic virtqueue I/O ---------------------------------------------- */

struct xvd_buf {
	void *addr;
	uint32_t len;
	bool dev_writes;	/* device-writable; these must follow the readable ones */
	/* Testing and fault injection only: put bus_addr in the descriptor
	 * verbatim instead of mapping addr (no bounce, no grant).  Lets a test
	 * name memory the backend must refuse. */
	bool raw;
	uint64_t bus_addr;
};

struct xvd_done {
	void *cookie;
	uint32_t len;		/* bytes the device wrote */
	int status;		/* 0, -EIO (broken device), -ENODEV (backend gone),
				 * -ECANCELED (reset) */
};

#define XVD_NO_KICK	1	/* xvd_vq_submit flag: caller kicks later */

/* Map bufs (at most 64, readable ones first) and make them available on
 * queue q.  Never blocks.  -ENOSPC (ring full, or cancelled completions not
 * collected yet), -ENOMEM (pool full: poll completions, retry), -EINVAL,
 * or the device error. */
int xvd_vq_submit(struct xvd_dev *dev, unsigned int q, const struct xvd_buf *bufs,
		  unsigned int n, void *cookie, unsigned int flags);
/* Notify the device if it wants to be (EVENT_IDX / NO_NOTIFY). */
int xvd_vq_kick(struct xvd_dev *dev, unsigned int q);
/* Collect up to max completions; count.  Never blocks.  Device-writable bytes
 * are in the caller's buffers when a completion is returned.  On a broken
 * device the in-flight requests come back with -EIO (-ENODEV when the
 * backend is gone), then the call returns that error. */
int xvd_vq_poll(struct xvd_dev *dev, unsigned int q, struct xvd_done *done, unsigned int max);
unsigned int xvd_vq_inflight(const struct xvd_dev *dev, unsigned int q);

/* ---- virtio-blk (queue 0) ----------------------------------------------- */

enum { XVD_BLK_READ, XVD_BLK_WRITE, XVD_BLK_FLUSH, XVD_BLK_GET_ID,
       XVD_BLK_DISCARD, XVD_BLK_WRITE_ZEROES };

/* Data segments one request may have at most (virtio-blk seg_max is cut to
 * it): a chain holds 64 buffers, header and status among them. */
#define XVD_BLK_MAX_SEGS	62

struct xvd_blk_info {
	uint64_t capacity;	/* 512-byte sectors */
	uint32_t blk_size;	/* 512 unless the device says otherwise */
	uint32_t seg_max;	/* data segments per request (1 if not offered) */
	uint32_t size_max;	/* bytes per segment; 0: not limited */
	size_t max_io;		/* largest READ/WRITE one request carries */
	bool ro, flush, discard, write_zeroes;
};

/* Open a virtio-blk device (asks for RO, BLK_SIZE, FLUSH, DISCARD,
 * WRITE_ZEROES, SEG_MAX plus o->features).  Blocks. */
int xvd_blk_open(struct xvd_domain *d, const struct xvd_dev_opts *o, struct xvd_dev **out);
/* Read capacity etc. from config space.  Blocks. */
int xvd_blk_info(struct xvd_dev *dev, struct xvd_blk_info *info);
/* Largest READ/WRITE length one request carries: seg_max segments of
 * size_max (the device's limits; in pool mode they follow the pool). */
size_t xvd_blk_max_io(const struct xvd_dev *dev);
/* Queue one request.  READ/WRITE: len multiple of 512, at most
 * xvd_blk_max_io() (-E2BIG); GET_ID: buf of 20 bytes; DISCARD/WRITE_ZEROES:
 * len bytes from sector, buf unused; FLUSH: none.
 * Never blocks: -ENOSPC/-ENOMEM when no room (poll, then retry), -EROFS. */
int xvd_blk_submit(struct xvd_dev *dev, int op, uint64_t sector, void *buf, size_t len,
		   void *cookie, unsigned int flags);
/* With several queues (o->queues), requests go to them in turn; kick then
 * notifies every queue with new requests (after XVD_NO_KICK submissions). */
int xvd_blk_kick(struct xvd_dev *dev);
unsigned int xvd_blk_queues(const struct xvd_dev *dev);
/* Completions of every queue: status 0, -EIO (IOERR or broken), -EOPNOTSUPP,
 * -ECANCELED.  poll never blocks; wait blocks until one arrives or
 * timeout_ms passes (-1 = the device timeout) and returns 0 on timeout. */
int xvd_blk_poll(struct xvd_dev *dev, struct xvd_done *done, unsigned int max);
int xvd_blk_wait(struct xvd_dev *dev, struct xvd_done *done, unsigned int max, int timeout_ms);
/* Synchronous wrappers (-EBUSY while async requests are in flight).  Block.
 * Reads and writes of any length are split into requests of at most
 * xvd_blk_max_io(); an error stops at the failed request. */
int xvd_blk_read(struct xvd_dev *dev, uint64_t sector, void *buf, size_t len);
int xvd_blk_write(struct xvd_dev *dev, uint64_t sector, const void *buf, size_t len);
int xvd_blk_flush(struct xvd_dev *dev);

/* ---- virtio-rng (queue 0) ----------------------------------------------- */
int xvd_rng_open(struct xvd_domain *d, const struct xvd_dev_opts *o, struct xvd_dev **out);
/* Fill buf with len random bytes (any memory).  Blocks.  Returns len. */
int xvd_rng_read(struct xvd_dev *dev, void *buf, size_t len);

/* ---- virtio-console (port 0: receiveq 0, transmitq 1) ------------------ */
int xvd_console_open(struct xvd_domain *d, const struct xvd_dev_opts *o, struct xvd_dev **out);
/* Send len bytes (any memory) and wait until the device took them.  Returns len. */
int xvd_console_write(struct xvd_dev *dev, const void *buf, size_t len);
/* Receive up to len bytes; waits up to timeout_ms (-1 = device timeout) for
 * the first byte.  Returns the count, or -ETIMEDOUT if nothing came. */
int xvd_console_read(struct xvd_dev *dev, void *buf, size_t len, int timeout_ms);

/* ---- virtio-net (receiveq 0, transmitq 1) ------------------------------- */

#define XVD_NET_HDR_LEN		12	/* virtio_net_hdr_v1 before every frame */
#define XVD_NET_FRAME_MAX	65553	/* largest frame: 64 KiB IP packet, Ethernet, VLAN */

/* The header (virtio_net_hdr_v1), in host byte order. */
struct xvd_net_hdr {
	uint8_t flags;		/* VIRTIO_NET_HDR_F_* */
	uint8_t gso_type;	/* VIRTIO_NET_HDR_GSO_* */
	uint16_t hdr_len, gso_size, csum_start, csum_offset;
	uint16_t num_buffers;	/* receive only */
};

struct xvd_net_info {
	uint8_t mac[6];
	bool have_mac;		/* VIRTIO_NET_F_MAC: mac is the device's */
	bool link_up;		/* VIRTIO_NET_S_LINK_UP (always, without F_STATUS) */
	bool mrg_rxbuf;		/* VIRTIO_NET_F_MRG_RXBUF negotiated */
	uint64_t features;	/* negotiated */
	uint32_t rx_buf_len;	/* bytes per receive buffer */
	unsigned int rx_posted;	/* receive buffers the device holds */
};

/* Open a virtio-net device (asks for MAC, STATUS, MRG_RXBUF plus
 * o->features, e.g. the offloads) and post rx_bufs receive buffers (0: none
 * yet; at most the queue size).  Blocks. */
int xvd_net_open(struct xvd_domain *d, const struct xvd_dev_opts *o, unsigned int rx_bufs,
		 struct xvd_dev **out);
/* Read MAC and link status from config space.  Blocks. */
int xvd_net_info(struct xvd_dev *dev, struct xvd_net_info *info);
/* Post up to n more receive buffers; how many were posted.  Never blocks. */
int xvd_net_rx_post(struct xvd_dev *dev, unsigned int n);
/* Queue one frame of len bytes (at most XVD_NET_FRAME_MAX; not checked
 * further, so a test can send what the device must refuse) behind hdr
 * (NULL: all zero).  Takes finished transmissions; waits (bounded) only
 * while all 64 transmit slots are in flight.  XVD_NO_KICK: the caller
 * kicks later (xvd_vq_kick, queue 1, or xvd_net_tx_wait). */
int xvd_net_send(struct xvd_dev *dev, const struct xvd_net_hdr *hdr, const void *frame,
		 size_t len, unsigned int flags);
/* Kick and wait until every queued frame is done (-1: the device timeout);
 * 0, -ETIMEDOUT or the device error.  Blocks. */
int xvd_net_tx_wait(struct xvd_dev *dev, int timeout_ms);
/* Receive one frame: its header into *hdr (may be NULL), up to len bytes of
 * it into frame; returns its whole length.  The buffers it came in are
 * posted again.  Waits up to timeout_ms (-1 = the device timeout):
 * -ETIMEDOUT if nothing came. */
int xvd_net_recv(struct xvd_dev *dev, struct xvd_net_hdr *hdr, void *frame, size_t len,
		 int timeout_ms);

#endif /* XVMSG_DRV_H */
