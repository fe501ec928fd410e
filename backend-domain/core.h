/* SPDX-License-Identifier: MIT */
/*
 * Backend core internals: address translation (mapcache.c), the split
 * virtqueue engine (virtq.c), the virtio-msg device side (vdev.c), one
 * xenstore device (conn.c: its handshake; conn-ring.c: its message ring;
 * conn-queue.c: its queues on queue threads), queue threads (qthread.c),
 * the backend context (backend.c) and its registries (registry.c).  Fault
 * injection is fault.h's.  Nothing here knows which hypervisor is
 * underneath: all of it goes through struct xvb_bus.
 */
#ifndef XVB_CORE_H
#define XVB_CORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <xvmsg/barrier.h>
#include <xvmsg/msg.h>
#include <xvmsg/xenbus.h>

#include "aio.h"
#include "bus.h"
#include "device.h"
#include "evloop.h"
#include "log.h"

/* Counters, per device.  Queue threads add to them too: every update is
 * XVB_STAT_ADD / xvb_stat_max (relaxed atomics, no lock), every read
 * xvb_stats_read. */
struct xvb_stats {
	uint64_t map_calls, map_pages;		/* bus map operations, pages mapped */
	uint64_t unmap_calls, unmap_pages;
	uint64_t notify_out, notify_in;		/* event channel signals sent / received */
	uint64_t msgs_in, msgs_out, msgs_bad;	/* virtio-msg messages */
	uint64_t requests, bad_chains;		/* virtqueue chains taken / refused */
	uint64_t bytes_out, bytes_in;		/* buffer bytes readable / writable by device */
	/* The most messages / chains one call (a notification, or a turn on
	 * the pending list) took: bounded by the budgets below. */
	uint64_t max_msgs_call, max_chains_call;
};
#define XVB_STAT_ADD(field, n) ((void)__atomic_fetch_add(&(field), (uint64_t)(n), __ATOMIC_RELAXED))
static inline void xvb_stat_max(uint64_t *field, uint64_t v)
{
	uint64_t cur = __atomic_load_n(field, __ATOMIC_RELAXED);

	while (v > cur && !__atomic_compare_exchange_n(field, &cur, v, true, __ATOMIC_RELAXED,
						       __ATOMIC_RELAXED))
		;
}
static inline uint64_t xvb_stat_get(const uint64_t *field)
{
	return __atomic_load_n(field, __ATOMIC_RELAXED);
}
/* A copy of every counter, each read atomically. */
void xvb_stats_read(const struct xvb_stats *s, struct xvb_stats *out);

/* ---- mapcache.c: bus address -> process address, per memory-access mode -- */

#define XVB_CHUNK_PAGES 64	/* pool and full mode map in chunks of this many pages */
/* Full mode: chunks of guest frames one device keeps mapped (64 MiB of
 * guest memory); beyond them each request maps its own pages. */
#define XVB_FULL_CACHE_CHUNKS 256

struct xvb_mc_chunk;
struct xvb_mapcache;
struct xvb_seg;
struct xvb_mc_ticket;

/* What differs between the memory-access modes: one const table each in
 * mapcache.c, chosen once in xvb_mc_init(). */
struct xvb_mc_ops {
	/* Set up for a device (pool: the chunk table); NULL: nothing to do. */
	int (*init)(struct xvb_mapcache *mc, uint64_t pool_ref, uint32_t pool_pages);
	/* May a device name pages first..last (of a grant address or not)? */
	bool (*check)(const struct xvb_mapcache *mc, bool grant, uint64_t first, uint64_t last);
	/* Translate checked segments into iov[*n..max), recording transient
	 * mappings in *t: 0 or -errno (the caller releases *t). */
	int (*map_sg)(struct xvb_mapcache *mc, const struct xvb_seg *segs, unsigned int nsegs,
		      unsigned int split, unsigned int *split_iov, struct iovec *iov,
		      unsigned int *n, unsigned int max, struct xvb_mc_ticket *t);
};
/* Mappings a request holds until it completes (grant mode; full-mode edges). */
#define XVB_TICKET_MAPS 4
struct xvb_mc_ticket {
	unsigned int n;
	struct { void *addr; unsigned int pages; } m[XVB_TICKET_MAPS];
};

struct xvb_mapcache {
	struct xvb_bus *bus;
	struct xvb_stats *stats;
	uint32_t domid;
	enum xvmsg_mode mode;
	const struct xvb_mc_ops *ops;	/* the mode's */
	bool cache_frames;		/* full mode: keep frame chunks mapped (bus caps) */
	uint64_t pool_ref;		/* pool mode: first ref, and count */
	uint32_t pool_pages;
	void **chunk;			/* pool: chunk index -> mapping */
	uint32_t nchunks;
	void ***full_dir;		/* full: two-level table of chunk mappings */
	uint32_t full_dir_len;
	uint32_t full_cached;		/* full: chunks in it, at most full_cap */
	/* Queue threads share the cache: a pool chunk is published with a
	 * release store and looked up without a lock; lock is taken to map
	 * one (and around full mode's cached lookups). */
	pthread_mutex_t lock;
	bool lock_live;			/* from xvb_mc_init until xvb_mc_fini */
	uint32_t full_cap;		/* XVB_FULL_CACHE_CHUNKS (tests lower it) */
};

struct xvb_seg {		/* one descriptor's buffer */
	uint64_t addr;
	uint32_t len;
	bool write;
};

/* May a device on this bus use mode?  0, or -EPERM (-EINVAL: no such mode)
 * with the reason in why.  The one place that decides it, from the bus's
 * capabilities (struct xvb_bus_caps). */
int xvb_mode_check(struct xvb_bus *bus, enum xvmsg_mode mode, char *why, size_t len);
/* 0, -EINVAL (no such mode, or a pool that cannot be), -ENOMEM. */
int xvb_mc_init(struct xvb_mapcache *mc, struct xvb_bus *bus, struct xvb_stats *stats,
		uint32_t domid, enum xvmsg_mode mode, uint64_t pool_ref, uint32_t pool_pages);
/* Unmap everything cached.  Tickets must have been released. */
void xvb_mc_fini(struct xvb_mapcache *mc);
/* Is [addr, addr+len) acceptable in this mode at all?  0 or -EFAULT. */
int xvb_mc_check(const struct xvb_mapcache *mc, uint64_t addr, uint64_t len);
/*
 * Translate segments into iovecs (a segment may need several when it spans
 * chunks), mapping what is not mapped yet.  *split_iov (if not NULL) gets the
 * number of iovecs produced by the first `split` segments.  Transient mappings are recorded in
 * *t and must be released with xvb_mc_release().  Returns the number of iovecs
 * or -EFAULT (address not allowed in this mode), -E2BIG (more than max iovecs),
 * or the bus's error.  On error nothing stays recorded in *t.
 */
int xvb_mc_map_sg(struct xvb_mapcache *mc, const struct xvb_seg *segs, unsigned int nsegs,
		  unsigned int split, unsigned int *split_iov,
		  struct iovec *iov, unsigned int max, struct xvb_mc_ticket *t);
void xvb_mc_release(struct xvb_mapcache *mc, struct xvb_mc_ticket *t);
/* Fault injection only (--fault snoop): bytes of the pool that belong to a
 * copy of marker, mapping what is not mapped yet; -errno if the pool cannot
 * be mapped, -EINVAL outside pool mode. */
long xvb_mc_pool_scan(struct xvb_mapcache *mc, const char *marker);

/* ---- virtq.c: split virtqueue, device side ---------------------------- */

/* A ring area mapped page by page: no field crosses a page (alignment). */
struct xvb_ring_area {
	unsigned int base_off, npages;
	void **page;
	struct xvb_mc_ticket t;
};

struct xvb_vq {
	uint16_t size;			/* 0 = not set up */
	uint16_t max_size;
	uint64_t desc_addr, avail_addr, used_addr;
	bool live;			/* rings mapped */
	bool event_idx, indirect;
	struct xvb_ring_area desc, avail, used;
	uint16_t last_avail;		/* next avail entry we take */
	uint16_t used_idx;		/* our copy; we are the only writer */
	uint16_t published_used;	/* used_idx last made visible */
	bool signalled_valid;		/* notified at least once since start */
	uint32_t inflight;
	/* The backend is polling this queue (busy poll): going idle asks for
	 * no kick, so a driver that keeps it busy does not notify; the poll
	 * arms it (xvb_vq_has_work_or_arm) before the backend sleeps. */
	bool quiet;
	struct xvb_mc_ticket *tickets;	/* by head, for transient mappings */
	uint8_t *busy;			/* by head: taken, not yet pushed */
	/* The device's queues, this one included: no device-writable buffer
	 * may overlap their live rings (set by the vdev; NULL: only this
	 * queue's own rings are checked). */
	const struct xvb_vq *peers;
	unsigned int npeers;
	/* A call's chain budget (xvb_vdev_budget, xvb_vdev_serve): chains it
	 * may still take, and whether it left work (or the model asked for
	 * another turn, xvb_retry_later). */
	bool budgeted, starved;
	unsigned int budget;
	/* Served on a queue thread (set by the transport at connect): its
	 * kicks, requests and completions never touch the loop's thread; the
	 * transport's queue_start / queue_stop hand it over and take it back.
	 * dead: its ring lied (why), seen on that thread; the loop's thread
	 * sets NEEDS_RESET when the transport tells it (queue_broken). */
	bool remote;
	const char *dead;
};

/* Ring fields are little-endian and never cross a page (alignment): one
 * access through the area's page table, atomic against the driver's. */
static inline void *xvb_area_ptr(const struct xvb_ring_area *a, size_t off)
{
	size_t o = a->base_off + off;

	return (char *)a->page[o / XVMSG_PAGE_SIZE] + (o % XVMSG_PAGE_SIZE);
}

static inline uint16_t xvb_area_rd16(const struct xvb_ring_area *a, size_t off)
{
	return le16toh(__atomic_load_n((uint16_t *)xvb_area_ptr(a, off), __ATOMIC_RELAXED));
}

static inline void xvb_area_wr16(const struct xvb_ring_area *a, size_t off, uint16_t v)
{
	__atomic_store_n((uint16_t *)xvb_area_ptr(a, off), htole16(v), __ATOMIC_RELAXED);
}

static inline void xvb_area_wr32(const struct xvb_ring_area *a, size_t off, uint32_t v)
{
	__atomic_store_n((uint32_t *)xvb_area_ptr(a, off), htole32(v), __ATOMIC_RELAXED);
}

/* Why a chain was refused. */
enum xvb_vq_err {
	XVB_VQ_OK = 0,
	XVB_VQ_EMPTY,
	XVB_VQ_BAD_CHAIN,	/* this request fails, the queue goes on */
	XVB_VQ_BROKEN,		/* the ring itself is corrupt: NEEDS_RESET */
};

int xvb_vq_start(struct xvb_vq *vq, struct xvb_mapcache *mc, bool event_idx, bool indirect);
void xvb_vq_stop(struct xvb_vq *vq, struct xvb_mapcache *mc);
/* Take the next chain.  On XVB_VQ_BAD_CHAIN req->head is valid and the
 * chain must be completed with length 0.  *why names the problem. */
enum xvb_vq_err xvb_vq_pop(struct xvb_vq *vq, struct xvb_mapcache *mc, struct xvb_req *req,
			   const char **why);
/* Complete a chain; returns -EINVAL if the head is not in flight. */
int xvb_vq_push(struct xvb_vq *vq, struct xvb_mapcache *mc, struct xvb_req *req, uint32_t len);
/* The two steps of xvb_vq_push, for fault.c's lies.  retire: take head out
 * of flight, its transient mappings released or, when keep is not NULL,
 * handed over to *keep (the caller releases them before the queue stops);
 * -EINVAL if head is not in flight.  put_used: write one used entry (no
 * checks) and advance our used index; xvb_vq_publish makes it visible. */
int xvb_vq_retire(struct xvb_vq *vq, struct xvb_mapcache *mc, uint16_t head,
		  struct xvb_mc_ticket *keep);
void xvb_vq_put_used(struct xvb_vq *vq, uint32_t id, uint32_t len);
/* Publish pushed entries; true when the driver wants a notification. */
bool xvb_vq_publish(struct xvb_vq *vq);
/* Are there available entries we have not taken?  One read of avail->idx. */
bool xvb_vq_has_work(const struct xvb_vq *vq);
/* The same, and when there are none, ask for a kick at the next entry
 * (EVENT_IDX's avail_event, as xvb_vq_pop does going idle) and look again:
 * for a caller that stops taking chains without seeing the queue empty.
 * A quiet queue is not armed. */
bool xvb_vq_has_work_or_arm(struct xvb_vq *vq);

/* ---- vdev.c: the virtio-msg device side -------------------------------- */

struct xvb_vdev_transport {
	/* Queue a device->driver message (event). */
	void (*send)(void *ctx, const struct vmsg *m);
	/* Signal used buffers on queue q. */
	void (*notify_used)(void *ctx, unsigned int q);
	/* Optional, NULL in normal use (fault.c sets them to lie): complete a
	 * request in the core's place, true when it took it over (completed
	 * or kept in flight); the device is resetting, its queues stop next. */
	bool (*push)(void *ctx, struct xvb_vdev *d, struct xvb_req *req, uint32_t written);
	void (*reset)(void *ctx, struct xvb_vdev *d);
	/* Remote queues (vq->remote) only, so NULL where there are none.
	 * queue_start: the device is running, hand queue q to its thread
	 * (which serves it once at once: buffers may be waiting); returns
	 * when the thread has it.  queue_stop: take it back, waiting until
	 * that thread has let go; the model's reset or quiesce follows.
	 * queue_broken (on the queue's thread): its ring lied (vq->dead):
	 * set NEEDS_RESET from the loop's thread. */
	void (*queue_start)(void *ctx, struct xvb_vdev *d, unsigned int q);
	void (*queue_stop)(void *ctx, struct xvb_vdev *d, unsigned int q);
	void (*queue_broken)(void *ctx, struct xvb_vdev *d, unsigned int q);
};

struct xvb_vdev {
	const struct xvb_model_ops *ops;
	void *priv;
	const struct xvb_vdev_transport *tp;
	void *tp_ctx;
	struct xvb_mapcache *mc;	/* NULL until connected */
	struct xvb_stats *stats;
	const struct xvb_log *log;
	const char *name;

	uint32_t status;
	uint64_t dev_features, drv_features;
	bool drv_unknown_features;	/* driver set bits beyond the 64 we know */
	uint32_t config_gen;
	unsigned int msg_rev;		/* layout revision (msg.h), set at connect */
	uint64_t vq_on;			/* enabled queues (bit q); rev 1: size != 0 */
	bool activated;
	bool queues_out;		/* remote queues are with their threads */
	bool broken;			/* queue threads read it: __atomic */
	unsigned int call_budget;	/* the last call's budget per queue */
	unsigned int call_most;		/* chains one queue took in it */
	unsigned int call_taken;	/* chains all queues took in it */
	unsigned int nvqs;
	struct xvb_vq vq[XVMSG_MAX_QUEUES];
};

void xvb_vdev_init(struct xvb_vdev *d, const struct xvb_model_ops *ops, void *priv,
		   const struct xvb_vdev_transport *tp, void *tp_ctx,
		   struct xvb_stats *stats, const struct xvb_log *log, const char *name);
/* Attach or detach the address translation of a connection. */
void xvb_vdev_set_mapcache(struct xvb_vdev *d, struct xvb_mapcache *mc);
/* Handle one request (already copied out of shared memory and its header
 * checked).  Writes the response into *resp and returns its size, or 0 when
 * there is nothing to answer (events, malformed requests). */
size_t xvb_vdev_handle(struct xvb_vdev *d, const struct vmsg *req, struct vmsg *resp);
/* Driver kicked queue q (on the loop thread): a remote queue is ignored,
 * its thread serves it (xvb_vdev_serve). */
void xvb_vdev_kick(struct xvb_vdev *d, unsigned int q);
/* A call's chain budget: until xvb_vdev_budget_end(), xvb_pop() takes at
 * most `chains` chains from each queue (remote ones aside) and then answers
 * 0 (empty) for a queue that still has work, noting it.  budget_end returns
 * those queues (bit q), sets call_most and call_taken, and lifts the limit.  Outside a
 * call (console input, say) there is none. */
void xvb_vdev_budget(struct xvb_vdev *d, unsigned int chains);
uint64_t xvb_vdev_budget_end(struct xvb_vdev *d);
/* A queue thread's call for remote queue q: at most `chains` chains taken
 * (*taken says how many), completions published.  True when the queue
 * still has work and the device still runs: it wants another turn. */
bool xvb_vdev_serve(struct xvb_vdev *d, unsigned int q, unsigned int chains,
		    unsigned int *taken);
/* Take the remote queues back from their threads (the transport's
 * queue_stop), as reset does first; for a clean shutdown, before the
 * model's quiesce. */
void xvb_vdev_stop_queues(struct xvb_vdev *d);
/* The device is broken (NEEDS_RESET): readable from queue threads. */
static inline bool xvb_vdev_broken(const struct xvb_vdev *d)
{
	return __atomic_load_n(&d->broken, __ATOMIC_RELAXED);
}
/* Device reset: stop the model and every queue. */
void xvb_vdev_reset(struct xvb_vdev *d);
/* Queues with available entries not taken yet (bit q), remote ones aside;
 * 0 while the device is not running.  Not all of it is work: a model may
 * leave entries until the host has something for them (a console's or a
 * network card's receive buffers).  quiet and arm leave remote queues
 * alone too: busy polling is the loop thread's. */
uint64_t xvb_vdev_work(const struct xvb_vdev *d);
/* Busy polling: make every live queue quiet (no kicks asked for while the
 * backend polls; cheap when they are already), or end that: arm every live
 * queue for the next kick and return those found with work meanwhile
 * (bit q), which the caller serves. */
void xvb_vdev_quiet(struct xvb_vdev *d);
uint64_t xvb_vdev_arm(struct xvb_vdev *d);
/* Bytes the core holds for d's queues (per-request tickets and flags, the
 * rings' page tables), plus what its model reports (ops->mem). */
size_t xvb_vdev_mem(const struct xvb_vdev *d);

/* ---- qthread.c: queue threads ------------------------------------------ */

struct xvb_qthread;
/* A thread running an event loop of its own; signals blocked.  0 or -errno. */
int xvb_qthread_create(struct xvb_qthread **out);
/* Stop and join it; nothing may be left on its loop. */
void xvb_qthread_destroy(struct xvb_qthread *t);
struct xvb_evloop *xvb_qthread_loop(struct xvb_qthread *t);
/* Run fn(arg) on t's thread, between two of its rounds, and wait until it
 * has returned.  From one thread at a time (the loop thread). */
void xvb_qthread_call(struct xvb_qthread *t, void (*fn)(void *arg), void *arg);

/* ---- conn.c, backend.c, registry.c ------------------------------------- */

/* Work one call may do for one device (a notification, or its turn on the
 * backend's pending list): messages taken from its message ring, chains
 * taken from its virtqueues.  What is left waits for the device's next turn
 * (docs/security.md, bounded work per notification). */
#define XVB_MSG_BUDGET		16
#define XVB_CHAIN_BUDGET	64

struct xvb_conn;

struct xvb_backend {
	struct xvb_bus *bus;
	struct xvb_evloop *loop;
	struct xvb_log *log;
	const struct xvb_model_ops *const *models;	/* NULL-terminated */
	char root[96];			/* /local/domain/<self>/backend/xvmsg */
	struct xvb_conn *conns;		/* list */
	/* Devices whose last call ran out of budget, in turn order; each gets
	 * one call per turn (run_pending), after the fds of that loop round. */
	struct xvb_conn *pend_head, **pend_tail;
	struct xvb_conn *pend_round;	/* the turn being served, not served yet */
	struct xvb_evdefer pend_run;
	unsigned int msg_budget, chain_budget;	/* XVB_*_BUDGET (tests lower them) */
	struct xvb_port_slot { struct xvb_conn *conn; int q; } *ports;	/* by local port, q = -1: msg */
	uint32_t nports;
	bool stopping;
	bool polling;			/* in a busy poll: queues go quiet (xvb_backend_quiet) */
	int fault;			/* XVB_FAULT_* (fault.h): testing the guest only */
	uint32_t msg_revs;		/* message layout revisions offered (bit r) */
	struct xvb_aio_opts aio;	/* block I/O engine, resolved at start */
	/* Queue threads (--queue-threads; none: every queue on the loop's
	 * thread): a queue with its own event channel, of a model that can
	 * move queues (queue_loop), goes to the next one round-robin. */
	struct xvb_qthread **qthreads;
	unsigned int nqthreads, next_qthread;
	/* Queue threads wake the loop thread with it (a queue's ring lied:
	 * xvb_backend_attention). */
	int attn_fd;
};

int xvb_backend_init(struct xvb_backend *be, struct xvb_bus *bus, struct xvb_evloop *loop,
		     struct xvb_log *log, const struct xvb_model_ops *const *models);
/* Start n queue threads (before xvb_backend_start).  0 or -errno. */
int xvb_backend_queue_threads(struct xvb_backend *be, unsigned int n);
/* Start watching for devices. */
int xvb_backend_start(struct xvb_backend *be);
/* Bus callbacks (pass be as ctx). */
void xvb_backend_watch(void *be, const char *path);
void xvb_backend_event(void *be, uint32_t port);
/* Busy polling: serve queues that have work without waiting for a kick
 * (within the budgets, like a notification).  True if any device took a
 * chain: receive buffers that wait for the host are there, not work. */
bool xvb_backend_poll(struct xvb_backend *be);
/* Around a busy poll: quiet stops asking drivers for kicks (and
 * xvb_backend_poll keeps devices that connect meanwhile quiet); arm asks
 * again before the backend sleeps, serving what came meanwhile (true if
 * any device took a chain or has work waiting for its turn: poll on rather
 * than sleep). */
void xvb_backend_quiet(struct xvb_backend *be);
bool xvb_backend_arm(struct xvb_backend *be);
/* Finish in-flight work, flush, disconnect every device. */
void xvb_backend_shutdown(struct xvb_backend *be);
/* Print per-device counters. */
void xvb_backend_dump_stats(struct xvb_backend *be, FILE *out);

/* conn.c */
int xvb_conn_create(struct xvb_backend *be, uint32_t feid, uint32_t devid, struct xvb_conn **out);
void xvb_conn_destroy(struct xvb_conn *c);
/* Re-read xenstore after a watch fired on our dirs. */
void xvb_conn_changed(struct xvb_conn *c);
void xvb_conn_event(struct xvb_conn *c, int q);
bool xvb_conn_match(const struct xvb_conn *c, uint32_t feid, uint32_t devid);
bool xvb_conn_owns_path(const struct xvb_conn *c, const char *path);
/* Does the toolstack's backend dir still exist? */
bool xvb_conn_present(struct xvb_conn *c);
void xvb_conn_quiesce(struct xvb_conn *c);
bool xvb_conn_poll(struct xvb_conn *c);
void xvb_conn_quiet(struct xvb_conn *c);
bool xvb_conn_arm(struct xvb_conn *c);
/* The backend's pending list: one turn of every device on it (the
 * callback of be->pend_run; pass the backend). */
void xvb_conn_run_pending(void *be);
/* Queue threads' news for the loop thread (a remote queue's ring lied):
 * act on it.  The callback of be->attn_fd. */
void xvb_conn_attention(struct xvb_conn *c);
/* conn-queue.c: the transport's remote-queue ops (core.h) for c. */
void xvb_conn_queue_start(void *c, struct xvb_vdev *d, unsigned int q);
void xvb_conn_queue_stop(void *c, struct xvb_vdev *d, unsigned int q);
void xvb_conn_queue_broken(void *c, struct xvb_vdev *d, unsigned int q);
/* Write the counters to xenstore if the toolstack asked (stats-request). */
void xvb_conn_publish_stats(struct xvb_conn *c);
bool xvb_conn_owns_backend_path(const struct xvb_conn *c, const char *path);
void xvb_conn_dump(const struct xvb_conn *c, FILE *out);
struct xvb_conn *xvb_conn_next(const struct xvb_conn *c);

/* registry.c: calls nobody.  The model of a type, or NULL. */
const struct xvb_model_ops *xvb_model_find(const struct xvb_model_ops *const *models,
					   const char *type);
/* Port `port` belongs to c, queue q (-1: the message ring).  0, -ERANGE
 * (port too large), -EBUSY (taken), -ENOMEM. */
int xvb_port_register(struct xvb_backend *be, uint32_t port, struct xvb_conn *c, int q);
void xvb_port_unregister(struct xvb_backend *be, uint32_t port);
/* The connection a port belongs to (and its queue in *q), or NULL. */
struct xvb_conn *xvb_port_lookup(const struct xvb_backend *be, uint32_t port, int *q);
/* Forget every port (shutdown). */
void xvb_ports_free(struct xvb_backend *be);

#endif /* XVB_CORE_H */
