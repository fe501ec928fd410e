/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * xvmsg guest module: a virtio bus over Xen grants and event channels.
 *
 * One xenbus device of class "xvmsg" carries one virtio device.  Its life:
 *
 *   struct xvmsg_info   one per xenbus device, from probe to remove.  Owns the
 *                       lifecycle work (all xenstore state changes happen
 *                       there, never on the xenwatch thread), the counters
 *                       and the sysfs/debugfs files.
 *   struct xvmsg_conn   one per connection to the backend: message page,
 *                       pool, event channels, the request state and the
 *                       virtio device registered on top.  A backend that
 *                       closes and comes back gets a fresh conn and a fresh
 *                       virtio device.
 *
 * Files, each calling only those below it (docs/architecture.md):
 *   xvmsg-front.c   module, xenbus frontend, handshake, lifecycle, counters
 *   xvmsg-virtio.c  virtio_config_ops over messages, virtqueues, breaking
 *                   the virtio device (ev_work)
 *   xvmsg-msg.c     the two message rings, requests, device events
 *   xvmsg-shadow.c  each virtqueue's private rings and requests in flight
 *   xvmsg-dma.c     dma_map_ops for pool, grant and full mode; grant helpers
 *   xvmsg-base.c    the timeout, a connection marked broken, the event kick
 *   <xvmsg/wire.h>  pure checks of what the backend sends (shared, userspace-testable)
 *   <xvmsg/frames.h> full mode's bus address of a range: gfn vs mfn (shared,
 *                   userspace-testable)
 *
 * Contexts: config ops, the lifecycle work and the message work sleep; the
 * event-channel handlers and the DMA ops never do.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_H
#define XVMSG_H

#include <linux/atomic.h>
#include <linux/device.h>
#include <linux/dma-map-ops.h>
#include <linux/interrupt.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/virtio.h>
#include <linux/virtio_ring.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include <xen/grant_table.h>
#include <xen/xenbus.h>

#include <xvmsg/barrier.h>
#include <xvmsg/pool.h>
#include <xvmsg/wire.h>

/*
 * How long a message waits for the backend's answer.  The backend is a
 * process in another domain that may be descheduled, paging or starting up
 * (and, in the tests, emulated by TCG on a loaded host): 30 s, like the
 * block layer's default request timeout and the stall watchdog
 * (xvmsg-virtio.c), not a round-trip estimate.  A backend that really died
 * is noticed sooner through xenstore (Closing, Closed, InitWait).
 */
#define XVMSG_DEFAULT_TIMEOUT_MS	30000
#define XVMSG_MIN_TIMEOUT_MS		100
#define XVMSG_MAX_TIMEOUT_MS		600000
/* Pool slots: 256 bytes, so the many small virtio headers stay cheap. */
#define XVMSG_POOL_UNIT_SHIFT		8
#define XVMSG_POOL_UNIT			(1U << XVMSG_POOL_UNIT_SHIFT)
#define XVMSG_POOL_UNITS_PER_PAGE	(PAGE_SIZE >> XVMSG_POOL_UNIT_SHIFT)
/* Device-writable mappings up to this size start out as 0xff (see pool_map_page). */
#define XVMSG_POISON_MAX		64
/* Messages one run of the message work takes before it yields. */
#define XVMSG_MSG_BUDGET		32
/* Config reads in a row that find a new generation before we give up. */
#define XVMSG_GEN_CHANGES_MAX		32
/* Tries of a SET_CONFIG that loses the race with a config change. */
#define XVMSG_SET_CONFIG_TRIES		3

/*
 * Counters, per xenbus device, kept across reconnects.  Exported in sysfs
 * (<device>/xvmsg/<name>) and debugfs (xvmsg/<device>/stats).
 *   grants           grant entries made for the backend
 *   revokes          grant entries ended
 *   revoke_busy      ...that the backend still had mapped
 *   leaked_pages     pages withheld because the backend kept them mapped
 *                    (freed by the grant table's deferred reclaim if it ever
 *                    lets go), or a pool a driver still used at disconnect
 *   bounce_in_bytes  bytes copied into the pool (pool mode)
 *   bounce_out_bytes bytes copied out of the pool (pool mode)
 *   pool_full        pool allocations that found no room
 *   map_errors       other failed DMA mappings (no grant refs, bad args)
 *   full_discontig   full mode: range not machine-contiguous (PV)
 *   msgs_sent, msgs_recv, msgs_bad (discarded), timeouts, broken,
 *   config_events, needs_reset, irqs_msg, irqs_vq, irqs_spurious, kicks,
 *   connects, disconnects
 */
#define XVMSG_STATS(X)						\
	X(GRANTS, grants)					\
	X(REVOKES, revokes)					\
	X(REVOKE_BUSY, revoke_busy)				\
	X(LEAKED_PAGES, leaked_pages)				\
	X(BOUNCE_IN, bounce_in_bytes)				\
	X(BOUNCE_OUT, bounce_out_bytes)				\
	X(POOL_FULL, pool_full)					\
	X(MAP_ERRORS, map_errors)				\
	X(FULL_DISCONTIG, full_discontig)			\
	X(MSGS_SENT, msgs_sent)					\
	X(MSGS_RECV, msgs_recv)					\
	X(MSGS_BAD, msgs_bad)					\
	X(TIMEOUTS, timeouts)					\
	X(BROKEN, broken)					\
	X(CONFIG_EVENTS, config_events)				\
	X(NEEDS_RESET, needs_reset)				\
	X(IRQS_MSG, irqs_msg)					\
	X(IRQS_VQ, irqs_vq)					\
	X(IRQS_SPURIOUS, irqs_spurious)				\
	X(KICKS, kicks)						\
	X(CONNECTS, connects)					\
	X(DISCONNECTS, disconnects)

#define XVMSG_STAT_ENUM(u, l) XVMSG_ST_##u,
enum xvmsg_stat {
	XVMSG_STATS(XVMSG_STAT_ENUM)
	XVMSG_ST_NR
};
#undef XVMSG_STAT_ENUM
extern const char *const xvmsg_stat_names[XVMSG_ST_NR];

struct xvmsg_conn;

/* One virtqueue's event channel, both directions. */
/*
 * A virtqueue's rings (xvmsg-shadow.c): virtio_ring uses ring (private
 * descriptor table and avail ring, then a private used ring the module
 * fills from the shared one, or with !private_used the shared used ring
 * itself), the backend shared (a copy of those, then its used ring).
 */
struct xvmsg_shadow {
	unsigned int num;
	size_t size;			/* of shared */
	unsigned int ndriver;		/* pages of desc + avail */
	bool private_used;		/* virtio_ring's used ring is private too */
	unsigned int npriv;		/* private pages: ndriver, or all with private_used */
	struct page **priv;		/* those pages, guest memory only */
	void *ring_va;			/* vmap: priv pages, then (!private_used) shared's used pages */
	struct vring ring;		/* virtio_ring's view */
	void *shared_va;		/* from the device's DMA ops */
	dma_addr_t shared_dma;
	struct vring shared;
	spinlock_t avail_lock;		/* avail_seen, dead; the shared avail side */
	u16 avail_seen;			/* private avail->idx copied so far */
	bool dead;			/* requests failed: nothing more to the backend */
	u16 failed_to;			/* private avail->idx the last failing took */
	spinlock_t used_lock;		/* every vring_interrupt of the queue; used_*, lie_* */
	bool used_dead;			/* dead: the backend's interrupts are ignored */
	u16 used_copied;		/* shared used->idx copied to the private ring so far */
	bool used_lied;			/* an entry named no head the backend holds */
	u32 lie_id;			/* that entry's id, and where it was */
	u16 lie_at;
	unsigned long *shared_heads;	/* by head: given to the backend, not completed */
	unsigned long *inflight;	/* by head: recorded, not yet freed by virtio_ring */
	atomic_t ninflight;
};

struct xvmsg_queue {
	struct xvmsg_conn *conn;
	unsigned int index;
	evtchn_port_t port;		/* 0: not allocated */
	int irq;			/* 0: not bound */
	struct virtqueue *vq;		/* set by find_vqs; the handler reads it */
	struct xvmsg_shadow sh;		/* its rings, while vq is set up */
	char name[40];
};

/* Per pool unit.  orig is set in every unit of a streaming mapping; nunits
 * and flags in the first unit only.
 */
struct xvmsg_slot {
	phys_addr_t orig;
	u32 nunits;
	u32 flags;
};
#define XVMSG_SLOT_HEAD		0x1	/* first unit of a live allocation */
#define XVMSG_SLOT_DIRTY	0x2	/* held guest data: zero when freed */
#define XVMSG_SLOT_COHERENT	0x4	/* dma_alloc_coherent, not a mapping */

/* Pool mode: npages pages granted with consecutive refs, mapped linearly. */
struct xvmsg_pool {
	spinlock_t lock;		/* map, hint, used, head slots */
	void *va;			/* vmap of pages */
	struct page **pages;
	unsigned int npages;
	unsigned int nallocated;	/* pages[0..nallocated) hold a page */
	unsigned int ngranted;		/* refs first_ref .. +ngranted granted */
	grant_ref_t first_ref;
	bool have_refs;
	unsigned long *map;		/* one bit per unit: busy */
	struct xvmsg_slot *slot;
	unsigned int nunits, hint, used;
};

/* conn->flags bits */
enum {
	XVMSG_F_BROKEN,		/* no more messages; config ops answer locally */
	XVMSG_F_BREAK_DONE,	/* virtio_break_device called */
	XVMSG_F_CFG_PENDING,	/* tell the driver its config changed */
	XVMSG_F_DYING,		/* interrupts no longer schedule work */
	XVMSG_F_D2B_WAIT,	/* a request waits for room in d2b */
	XVMSG_F_RING_FAIL,	/* a used ring lied (the module or virtio_ring saw it), or a stall */
	XVMSG_F_FAILED,		/* broken by a failure (xvmsg_conn_fail), not a stop */
	XVMSG_F_MAP_GATE,	/* requests being failed: DMA maps are refused */
};

struct xvmsg_vdev;

struct xvmsg_conn {
	struct xvmsg_info *info;
	enum xvmsg_mode mode;
	unsigned int msg_rev;		/* message layout revision (xvmsg/msg.h) */
	bool msg_rev_key;		/* the backend announced its: publish ours */
	domid_t domid;			/* backend domain */
	unsigned long flags;

	/* message page */
	struct page *msg_page;
	/* The page the grant table puts in place of a driver's page the
	 * module cannot hold (grant mode, end_access_driver_page); one count
	 * per use, ours dropped at destroy. */
	struct page *anchor;
	struct xvmsg_msg_page *page;
	grant_ref_t msg_ref;
	bool msg_granted;
	evtchn_port_t msg_port;
	int msg_irq;
	char msg_irq_name[40];
	u32 d2b_prod;			/* ours; never read back from the page */
	u32 b2d_cons;			/* ours; never read back from the page */
	struct work_struct msg_work;	/* drains b2d, then EOIs msg_irq */

	/* requests: one in flight */
	struct mutex req_lock;
	u16 token;
	spinlock_t rx_lock;		/* wait_*, resp, resp_ready */
	u16 wait_token;
	u8 wait_id;
	bool resp_ready;
	struct vmsg resp;
	wait_queue_head_t wq;		/* responses, d2b room, broken */

	/* the virtio device */
	struct mutex cfg_lock;		/* config ops: status, generation tracking */
	struct xvmsg_dev_info dinfo;
	u32 cfg_gen;
	unsigned int gen_changes;
	u8 status;			/* as the virtio core may see it */
	unsigned int nq;		/* queue channels allocated: max-queues */
	struct xvmsg_queue *q;
	size_t max_map;			/* pool mode: max_mapping_size */

	/* virtio core notifications (from any context, done in ev_work) */
	spinlock_t ev_lock;		/* vd, vdev_live, ev_dead */
	struct xvmsg_vdev *vd;
	bool vdev_live, ev_dead;
	struct work_struct ev_work;
	/* The device's virtqueue list (find_vqs, del_vqs) against failing its
	 * requests in flight (ev_work, also during probe, and teardown). */
	struct mutex vq_lock;
	struct dentry *dbg_queues;	/* debugfs <dev>/queues, while the connection lives */
	/* Block devices: a request the backend never completes would wait
	 * forever (6.1's virtio_blk has no timeout); see xvmsg_stall_work. */
	struct delayed_work stall_work;
	u16 stall_used[8];		/* used->idx per queue at the last look */
	unsigned int stall_ticks;	/* looks in a row without progress */

	struct xvmsg_pool pool;		/* pool mode */
	struct xarray grants;		/* grant mode: first ref -> pages */
	struct xarray heads;		/* bus address of a chain's first buffer -> queue << 16 | head */
};

struct xvmsg_info {
	struct xenbus_device *xbdev;
	struct mutex lock;		/* lifecycle: conn, connect, teardown */
	struct work_struct work;	/* the lifecycle work */
	spinlock_t state_lock;		/* removing, reconnect_req, conn_fast */
	bool removing, reconnect_req;
	struct xvmsg_conn *conn;	/* under lock */
	struct xvmsg_conn *conn_fast;	/* the same, under state_lock */
	struct xvmsg_conn __rcu *dma_conn; /* the DMA ops' view (RCU) */
	u64 dma_mask;
	u64 *old_dma_mask;		/* restored on remove */
	u64 old_coherent_mask;
	unsigned long auto_window;	/* automatic reconnects: window start */
	unsigned int auto_count;	/* ...and how many in it */
	atomic64_t st[XVMSG_ST_NR];
	struct dentry *dbg;
};

struct xvmsg_vdev {
	struct virtio_device vdev;
	struct xvmsg_conn *conn;
};

extern struct workqueue_struct *xvmsg_wq;

static inline void xvmsg_stat_add(struct xvmsg_info *info, enum xvmsg_stat s, u64 v)
{
	atomic64_add(v, &info->st[s]);
}

static inline void xvmsg_stat_inc(struct xvmsg_info *info, enum xvmsg_stat s)
{
	atomic64_inc(&info->st[s]);
}

static inline struct device *xvmsg_dev(struct xvmsg_conn *c)
{
	return &c->info->xbdev->dev;
}

/* xvmsg-base.c: the base, which calls no other file of the module */
unsigned int xvmsg_timeout_ms(void);
/* Mark the connection broken (once, logged as an error).  Any context. */
__printf(2, 3) void xvmsg_conn_fail(struct xvmsg_conn *c, const char *fmt, ...);
/* Mark it broken without an error: the backend went away in order. */
void xvmsg_conn_stop(struct xvmsg_conn *c);
/* Queue ev_work, which tells the virtio core. */
void xvmsg_ev_kick(struct xvmsg_conn *c);

/* xvmsg-msg.c */
irqreturn_t xvmsg_msg_irq(int irq, void *data);
void xvmsg_msg_work(struct work_struct *w);
/* Send one request and wait (bounded) for its response, copied to *resp.
 * 0, -EIO (broken), -ETIMEDOUT (now broken), -EWOULDBLOCK (atomic caller).
 * Sleeps.
 */
int xvmsg_call(struct xvmsg_conn *c, u8 id, const void *req, unsigned int len,
	       struct vmsg *resp);
void xvmsg_stall_work(struct work_struct *w);

/* xvmsg-virtio.c */
irqreturn_t xvmsg_vq_irq(int irq, void *data);
/* Tells the virtio core what the connection's flags say (ev_kick's work). */
void xvmsg_ev_work(struct work_struct *w);
/* Ask the device what it is and register a virtio device for it.  Sleeps. */
int xvmsg_vdev_register(struct xvmsg_conn *c);

/* xvmsg-shadow.c: a virtqueue's rings and the record of requests in flight */
int xvmsg_shadow_create(struct xvmsg_queue *q, struct device *dma_dev, unsigned int num,
			bool private_used);
void xvmsg_shadow_destroy(struct xvmsg_queue *q, struct device *dma_dev);
/* Bus addresses of the shared ring's parts, for SET_VQUEUE. */
void xvmsg_shadow_addrs(const struct xvmsg_queue *q, u64 *desc, u64 *avail, u64 *used);
/*
 * A kick: record the new chains and, with share and while the queue lives,
 * copy them out.  Returns whether the backend is to be notified.
 */
bool xvmsg_shadow_kick(struct xvmsg_queue *q, bool share);
/* The queue is dead: nothing more to the backend, its interrupts ignored. */
void xvmsg_shadow_kill(struct xvmsg_queue *q);
/* Has virtio_ring made heads available since xvmsg_shadow_fail_all took them? */
bool xvmsg_shadow_pending(struct xvmsg_queue *q);
unsigned int xvmsg_shadow_retract(struct xvmsg_queue *q, struct virtqueue *vq);
/* From the DMA ops' unmap, any context. */
void xvmsg_shadow_unmapped(struct xvmsg_conn *c, dma_addr_t addr);
/* Copy the backend's new used entries to virtio_ring's ring, then
 * vring_interrupt; never at the same time as xvmsg_shadow_fail_all().
 * *lied: the backend wrote an entry naming no head it holds (now or
 * before): fail the connection. */
irqreturn_t xvmsg_shadow_interrupt(struct xvmsg_queue *q, struct virtqueue *vq, int irq,
				   bool *lied);
unsigned int xvmsg_shadow_fail_all(struct xvmsg_queue *q, struct virtqueue *vq,
				   unsigned int *left);
/* Requests in flight, or made available and not kicked yet (stall watchdog). */
bool xvmsg_shadow_busy(struct xvmsg_queue *q);
struct seq_file;
/* One line of the queue's ring indexes and records (debugfs; vq_lock held). */
void xvmsg_shadow_show(struct seq_file *m, struct xvmsg_queue *q);
/* Unregister it; graceful: the backend still works, do not break it first. */
void xvmsg_vdev_unregister(struct xvmsg_conn *c, bool graceful);

/* xvmsg-dma.c */
const struct dma_map_ops *xvmsg_dma_ops(enum xvmsg_mode mode);
int xvmsg_pool_create(struct xvmsg_conn *c, unsigned int npages);
void xvmsg_pool_destroy(struct xvmsg_conn *c);
/* Grant mode, at disconnect: revoke every mapping the drivers still hold. */
void xvmsg_grants_revoke_all(struct xvmsg_conn *c);
/* End the backend's access through ref.  True: ended, page is ours again.
 * False: still mapped; ref and page (if given; else a reference to the
 * granted frame) go to the grant table's deferred reclaim and are counted.
 */
bool xvmsg_end_access(struct xvmsg_info *info, grant_ref_t ref, struct page *page);

#endif /* XVMSG_H */
