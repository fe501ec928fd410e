/* SPDX-License-Identifier: MIT */
/*
 * Internals of libxvmsg-drv shared by its files (and the unit tests).
 * Nothing here knows which bus is underneath: that is drv-bus.h.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVD_DRV_PRIV_H
#define XVD_DRV_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/virtio_ring.h>

#include <xvmsg/barrier.h>
#include <xvmsg/msg.h>
#include <xvmsg/xenbus.h>

#include "drv-bus.h"
#include "xvmsg-drv.h"

#define XVD_DEFAULT_TIMEOUT_MS	5000
#define XVD_DEFAULT_RAM_PAGES	4096
#define XVD_DEFAULT_GNT		65536
#define XVD_MAX_DEVID		1023
#define XVD_MAX_SEGS		64	/* buffers in one chain */
#define XVD_DEFAULT_QSIZE	256
#define XVD_DEFAULT_IND_MIN	4
#define XVD_RAM_UNIT		512
#define XVD_POOL_UNIT		512

#define XVD_DIV_UP(a, b)	(((a) + (b) - 1) / (b))

/* ---- the base (drv-base.c): logging, the clock, the unit allocator, bus
 * results.  It calls no other file of the library. ---- */
struct xvd_logger {
	void (*fn)(void *ctx, int level, const char *msg);
	void *ctx;
	int level;
};
void xvd_logf(const struct xvd_logger *l, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int64_t xvd_now_ms(void);
/* Deal with a bus op result: -ENODEV/-EPIPE mark the whole domain gone. */
int xvd_bus_result(struct xvd_domain *d, int r);

/* ---- unit allocator: first-fit bitmap, used for RAM, the pool and
 * grant references.  Leaked units are never handed out again. ---- */
struct xvd_ualloc {
	uint32_t nunits, hint;
	uint64_t *busy;		/* allocated or leaked */
	uint64_t *leak;		/* retired for good */
	uint32_t *len;		/* len[start] = units of the allocation at start */
};
int xvd_ua_init(struct xvd_ualloc *a, uint32_t nunits);
void xvd_ua_destroy(struct xvd_ualloc *a);
/* First unit of n free ones aligned to align, or -ENOMEM. */
int64_t xvd_ua_alloc(struct xvd_ualloc *a, uint32_t n, uint32_t align);
/* Free the allocation starting at start; returns its length (0 = none). */
uint32_t xvd_ua_free(struct xvd_ualloc *a, uint32_t start);
void xvd_ua_leak(struct xvd_ualloc *a, uint32_t unit, uint32_t n);
bool xvd_ua_is_busy(const struct xvd_ualloc *a, uint32_t unit);

/* ---- guest RAM (dma.c) ---- */
struct xvd_ram {
	struct drv_mem mem;
	struct xvd_ualloc ua;		/* XVD_RAM_UNIT units */
};
int xvd_ram_get(struct xvd_ram *r, size_t len, void **va);
void xvd_ram_put(struct xvd_ram *r, void *va);
bool xvd_ram_holds(const struct xvd_ram *r, const void *va, size_t len);

/* ---- memory-access modes (dma.c) ---- */
struct xvd_dma;
struct xvd_map;
/* What differs between the modes: one const table each in dma.c, chosen
 * once by xvd_dma_init().  mp->va, len and dev_writes are set. */
struct xvd_dma_ops {
	bool in_ram;		/* buffers must lie in guest RAM (grant, full) */
	/* Make mp->va reachable: set mp->addr (and what unmap needs). */
	int (*map)(struct xvd_dma *m, struct xvd_map *mp);
	/* Undo map; copy back at most copy_len device-written bytes.  NULL:
	 * nothing to undo. */
	void (*unmap)(struct xvd_dma *m, struct xvd_map *mp, uint32_t copy_len);
	/* Zeroed memory the device can reach: set mp->va and mp->addr. */
	int (*alloc)(struct xvd_dma *m, struct xvd_map *mp);
	void (*free)(struct xvd_dma *m, struct xvd_map *mp);
};

struct xvd_dma {
	enum xvmsg_mode mode;
	const struct xvd_dma_ops *ops;	/* the mode's */
	struct drv_bus *bus;		/* grant mode: grants */
	struct xvd_ram *ram;		/* grant/full: buffers, rings */
	uint8_t *pool;			/* pool mode: pool_units * XVD_POOL_UNIT bytes */
	uint32_t pool_ref;		/* grant ref of the first pool page */
	struct xvd_ualloc pool_ua;
	struct xvd_stats *st;
	const struct xvd_logger *log;
};

enum { XVD_MAP_NONE, XVD_MAP_BUF, XVD_MAP_ALLOC };
struct xvd_map {
	void *va;		/* MAP_BUF: caller's buffer; MAP_ALLOC: the shared memory */
	uint64_t addr;		/* bus address */
	uint32_t len;
	uint32_t first;		/* pool unit (pool) or first grant ref (grant) */
	uint16_t nref;		/* grant refs held */
	uint8_t kind, dev_writes;
};

/* Choose the mode's ops: 0, or -EINVAL for no mode.  Pool mode then needs
 * xvd_dma_pool_init(). */
int xvd_dma_init(struct xvd_dma *m, enum xvmsg_mode mode, struct drv_bus *bus,
		 struct xvd_ram *ram, struct xvd_stats *st, const struct xvd_logger *log);
int xvd_dma_pool_init(struct xvd_dma *m, uint8_t *pool, size_t pages, uint32_t pool_ref);
void xvd_dma_destroy(struct xvd_dma *m);
/* Make [va, va+len) reachable: bounce (pool), grant (grant), gfn (full). */
int xvd_dma_map(struct xvd_dma *m, void *va, uint32_t len, bool dev_writes, struct xvd_map *mp);
/* Undo a map; copy back at most copy_len device-written bytes (pool). */
void xvd_dma_unmap(struct xvd_dma *m, struct xvd_map *mp, uint32_t copy_len);
/* Zeroed driver-owned memory the device can reach (rings, indirect tables). */
int xvd_dma_alloc(struct xvd_dma *m, uint32_t len, bool dev_writes, struct xvd_map *mp);
void xvd_dma_free(struct xvd_dma *m, struct xvd_map *mp);

/* ---- message rings (vmsg-drv.c) ---- */
struct xvd_mring {
	struct xvmsg_ring_ctl *ctl;
	struct vmsg *slot;
	uint32_t idx;		/* our prod (d2b) or cons (b2d): never read back */
};
/* Producer: 0 (*notify: kick the peer), -EAGAIN full (prod_event armed),
 * -EIO the peer's cons is impossible. */
int xvd_mring_put(struct xvd_mring *r, const struct vmsg *m, bool *notify);
/* Consumer: 1 and *m copied out, 0 empty (cons_event armed), -EIO corrupt.
 * *notify: the producer waits for space. */
int xvd_mring_get(struct xvd_mring *r, struct vmsg *m, bool *notify);

/* ---- split virtqueue (vring-drv.c) ---- */
struct xvd_chain {
	void *cookie;
	uint32_t in_len;	/* device-writable bytes */
	uint16_t ndesc;		/* ring descriptors held */
	uint16_t nmaps;
	bool busy;
	struct xvd_map *maps;
	struct xvd_map ind;	/* indirect table, kind NONE if unused */
};

struct xvd_vq {
	unsigned int index;
	uint16_t size;
	struct xvd_dma *dma;
	uint32_t port;		/* event channel: kicks out, used notifications in */
	int *err;		/* the device's error cell: non-zero = fail all */
	struct xvd_stats *st;
	const struct xvd_logger *log;
	bool event_idx, indirect;
	unsigned int indirect_min;

	struct xvd_map ring;	/* desc | avail | used, one allocation */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t desc_addr, avail_addr, used_addr;

	uint16_t *used_event, *avail_event;	/* EVENT_IDX fields */
	uint16_t free_head, num_free, avail_idx, kicked_idx, last_used, shadow_used;
	uint16_t *next;		/* free list, private: desc[].next is never read */
	struct xvd_chain *chain;
	unsigned int inflight;
	struct xvd_done *dead;	/* cancelled chains waiting to be reported */
	unsigned int ndead;
};

int xvd_vq_setup(struct xvd_vq *vq, unsigned int index, unsigned int size,
		 struct xvd_dma *dma, uint32_t port, int *err,
		 struct xvd_stats *st, const struct xvd_logger *log);
void xvd_vq_teardown(struct xvd_vq *vq);
/* Unmap every in-flight chain and queue it for xvd_vq_get with status. */
void xvd_vq_cancel_all(struct xvd_vq *vq, int status);
/* Zero the rings and indices (after cancel_all, device reset). */
void xvd_vq_restart(struct xvd_vq *vq);
/* 0, -ENOSPC, -ENOMEM, -EINVAL or the device error. */
int xvd_vq_add(struct xvd_vq *vq, const struct xvd_buf *bufs, unsigned int n, void *cookie);
bool xvd_vq_kick_prepare(struct xvd_vq *vq);
/* 1 and *d filled, 0 nothing, or the device error when broken and drained. */
int xvd_vq_get(struct xvd_vq *vq, struct xvd_done *d);

/* ---- domain and device ---- */
struct xvd_domain {
	struct drv_bus *bus;
	struct xvd_logger log;
	int timeout_ms;
	struct xvd_ram ram;
	bool ram_shared;
	bool gone;			/* the bus peer is gone */
	struct xvd_dev *devs;
	int64_t last_check_ms;		/* xvd_vq_poll looked for a vanished peer */
};

struct xvd_dev {
	struct xvd_domain *dom;
	struct xvd_dev *next;
	char name[48];
	struct xvd_dev_opts o;
	char export_name[32];
	uint32_t device_id;
	unsigned int num_queues;
	int err;			/* 0, -EIO broken, -ENODEV gone */
	bool ring_broken;		/* message ring unusable: only close helps */
	bool attached, granted;
	int fe_state;			/* XenbusState we last wrote */
	unsigned int msg_rev;		/* message layout revision (msg.h) */
	bool msg_rev_key;		/* the backend announced its: write ours */

	struct drv_mem region;		/* message page + pool */
	uint32_t msg_ref, pool_ref;
	unsigned int pool_pages;
	uint32_t msg_port;
	uint32_t vq_port[XVMSG_MAX_QUEUES];
	unsigned int nports;		/* vq ports allocated */

	struct xvmsg_msg_page *page;
	struct xvd_mring d2b, b2d;
	uint16_t token;			/* last token used */
	uint16_t wait_token;		/* token in flight, 0 = none */
	uint8_t wait_id;
	bool resp_ready;
	struct vmsg resp;

	uint64_t features;
	uint32_t config_size, cfg_gen, cfg_status;
	unsigned int cfg_events;
	struct xvd_dma dma;
	struct xvd_vq *vq;
	bool vq_ready;
	struct xvd_stats st;

	void *type_priv;		/* device helper state */
	void (*type_free)(struct xvd_dev *dev);
	/* Device helper's step before DRIVER_OK (features negotiated, queues
	 * set up), at every initialisation: reads config it needs, as Linux
	 * drivers do in probe.  0 or -errno. */
	int (*before_ready)(struct xvd_dev *dev, void *arg);
	void *before_ready_arg;
};

#define dev_log(dev, lvl, fmt, ...) \
	xvd_logf(&(dev)->dom->log, lvl, "%s: " fmt, (dev)->name, ##__VA_ARGS__)

/* vmsg-drv.c */
/* Handle incoming notifications and messages without blocking. */
void xvd_dev_service(struct xvd_dev *dev);
/* xvd_dev_open() with a step run before DRIVER_OK (see before_ready). */
int xvd_dev_open_ready(struct xvd_domain *d, const struct xvd_dev_opts *o, uint32_t device_id,
		       unsigned int num_queues, int (*before_ready)(struct xvd_dev *, void *),
		       void *arg, struct xvd_dev **out);
/* What a device helper (blk.c, rng.c, console.c, net.c) drives, and the
 * steps of its open. */
struct xvd_dev_type {
	uint32_t device_id;		/* VIRTIO_ID_* */
	size_t priv_size;		/* zeroed helper state at dev->type_priv
					 * (0: none; setup may set its own) */
	void (*free)(struct xvd_dev *dev);	/* dev->type_free */
	/* dev->before_ready, with the helper state as its argument. */
	int (*before_ready)(struct xvd_dev *dev, void *priv);
	/* Once, when the device is ready: buffers, first requests.  0 or
	 * -errno; the device is closed on failure.  May be NULL. */
	int (*setup)(struct xvd_dev *dev, void *arg);
};
/* xvd_dev_open() for a device helper of type t; setup gets arg. */
int xvd_dev_open_type(struct xvd_domain *d, const struct xvd_dev_opts *o,
		      const struct xvd_dev_type *t, unsigned int num_queues, void *arg,
		      struct xvd_dev **out);
/* Run the virtio initialisation (reset .. DRIVER_OK), setting up the queues. */
int xvd_virtio_init(struct xvd_dev *dev);
int xvd_set_status(struct xvd_dev *dev, uint32_t status);
void xvd_dev_teardown_queues(struct xvd_dev *dev);
void xvd_dev_fail(struct xvd_dev *dev, const char *why);
/* Poll queue q, blocking until deadline (xvd_now_ms scale): count, 0 at the
 * deadline, or the device error once nothing is left to report. */
int xvd_vq_wait(struct xvd_dev *dev, unsigned int q, struct xvd_done *done, unsigned int max,
		int64_t deadline);
/* One chain of n buffers through queue q and back, waited for until
 * deadline: 0 with the bytes the device wrote in *len (len may be NULL),
 * the completion's status, or -errno.  At the deadline the device fails
 * (why), the chain is taken back, and -ETIMEDOUT. */
int xvd_vq_call(struct xvd_dev *dev, unsigned int q, const struct xvd_buf *bufs, unsigned int n,
		int64_t deadline, const char *why, uint32_t *len);

/* xenbus-drv.c */
/* A number in devid's backend dir (xenstore rules: decimal, no sign, no
 * spaces, 32 bits): 0, -ENOENT absent, -EINVAL/-ERANGE not such a number,
 * or the bus's error.  Blocks (a bounded store read). */
int xvd_be_read_u32(struct xvd_dev *dev, const char *key, uint32_t *v);
int xvd_xenbus_connect(struct xvd_dev *dev);
void xvd_xenbus_disconnect(struct xvd_dev *dev);

#endif /* XVD_DRV_PRIV_H */
