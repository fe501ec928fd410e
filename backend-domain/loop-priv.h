/* SPDX-License-Identifier: MIT */
/*
 * The loopback bus's insides, private to its files.  bus-loop.c has the
 * xvb_bus ops and the event loop; each role Xen and its toolstack play on
 * the Xen bus has a file of its own, and the calls only go down this list:
 *
 *   bus-loop.c       the ops table, dispatch, create and destroy
 *   loop-server.c    the unix socket: accepting drivers, their requests,
 *                    a driver's end (its devices, keys, memory, channels)
 *   loop-toolstack.c ATTACH / DETACH of exports, a guest's WRITE of its keys
 *   loop-watch.c     the store as the bus shows it: watches, and writes to
 *                    a guest's backend dirs mirrored to that guest
 *   loop-gnttab.c    grant tables, memory regions, map / unmap
 *   loop-evtchn.c    event channels: socketpairs, bound ports
 *   loop-client.c    a connection: lookup, descriptor count, sending
 *   loop-store.c     the key/value tree (loop-store.h)
 *
 * Functions returning int return 0 or a negative errno; none blocks.
 */
#ifndef XVB_LOOP_PRIV_H
#define XVB_LOOP_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xvmsg/loop.h>
#include <xvmsg/wire.h>

#include "bus.h"
#include "device.h"
#include "loop-store.h"

#define PAGE		XVMSG_PAGE_SIZE
#define MAX_REGIONS	64	/* held at once by one connection */
#define MAX_EVTCHNS	(XVMSG_MAX_QUEUES + 1) * 64
#define MAX_DEVS	256
#define MAX_STORE	100000	/* values in the store: a backstop, guests have quotas */
/* Channel ends sent in replies a connection may leave unread (in flight,
 * charged by the kernel to our user, beyond any quota): then EVTCHN
 * answers -EAGAIN until it reads them.  A driver reads each reply before
 * its next request; the count restarts whenever it has read all we sent,
 * which a store event sent meanwhile can put off.  Twice the channels of
 * the largest device. */
#define MAX_FDS_UNREAD	(2 * (XVMSG_MAX_QUEUES + 1))

/* epoll data: the kind in bits 32..39, for K_IDLE the domid in 40..55,
 * and an id (for K_IDLE the driver's port number) in 0..31. */
enum { K_LISTEN = 1, K_CLIENT, K_PORT, K_WAKE, K_IDLE };
#define EPDATA(k, id)	(((uint64_t)(k) << 32) | (uint32_t)(id))
#define EPDATA_IDLE(domid, port) (EPDATA(K_IDLE, port) | ((uint64_t)(uint16_t)(domid) << 40))

struct loop_gnt {		/* a driver's grant table; outlives the driver while mapped */
	int refs;
	struct xvmsg_loop_gnt *e;
	uint32_t n;
	uint16_t *pin_r, *pin_w;	/* our map counts per entry */
};

struct loop_region {
	uint64_t base, pages;
	int fd;
};

struct loop_evtchn {
	uint32_t port;
	int fd;		/* our end of the channel's datagram socketpair */
	bool bound;
};

struct loop_dev {
	uint32_t devid;
	unsigned int export;
};

struct loop_client {
	struct loop_client *next;
	struct loop_bus *lb;
	int sock;
	/* Read by loop_client_find on queue threads: written under map_lock
	 * (loop_client_kill, HELLO). */
	uint16_t domid;
	bool dead;
	struct loop_gnt *gnt;
	struct loop_region region[MAX_REGIONS];
	unsigned int nregions;
	struct loop_evtchn *ev;
	unsigned int nev;
	/* Replies with a channel end sent since it was last seen with
	 * nothing of ours unread (MAX_FDS_UNREAD). */
	unsigned int fds_unread;
	struct loop_dev dev[MAX_DEVS];
	unsigned int ndev;
	unsigned int nvmas;		/* mappings of its memory we hold (loop_map.vmas) */
	struct ls_account keys;		/* what it wrote into the store */
};

struct loop_map {
	struct loop_map *next;
	void *addr;
	unsigned int n;
	unsigned int vmas;	/* kernel mappings it made: one per run of frames */
	struct loop_client *owner;	/* whose quota it counts in; NULL once gone */
	bool writable;
	struct loop_gnt *gnt;	/* NULL: frame mapping */
	uint32_t ref[];
};

struct loop_port {
	bool used;
	int fd;		/* a copy of the channel's end: kicks arrive, we notify */
	uint16_t domid;
	uint32_t remote;
};

struct loop_bus {
	struct xvb_bus bus;
	/* map and unmap may come from queue threads (bus.h): they, and what
	 * they read (the clients list, a client's regions and grant table,
	 * the maps list), change under map_lock, as Xen's grant-table lock
	 * guards a map against the granting domain's changes.  Everything
	 * else is the bus thread's alone. */
	pthread_mutex_t map_lock;
	struct xvb_bus_events ev;
	const struct xvb_export *exports;
	unsigned int nexports;
	bool *export_busy;
	struct xvb_bus_caps caps;	/* map_frames: --full */
	unsigned int max_guest_fds;	/* per-connection quota (loop_client_fds) */
	unsigned int max_guest_maps;	/* per-connection quota (loop_client.nvmas) */
	char sock_path[108];
	int epfd, lsock, wake;
	int spare;		/* kept open to refuse a connection when out of fds */
	bool listen_paused;	/* out of fds and no spare: not accepting */
	struct loop_client *clients;
	uint16_t next_domid;
	struct loop_map *maps;
	struct loop_port *port;
	uint32_t nports;
	struct ls_store *store;
	char **watch;
	size_t nwatch;
	char **pend;
	size_t npend, cappend;
	bool in_dispatch;
};

#define LB(b) ((struct loop_bus *)(b))

/* ---- loop-client.c: calls nobody ---- */
/* The live connection of domid, or NULL. */
struct loop_client *loop_client_find(struct loop_bus *lb, uint32_t domid);
/* The connection is gone or broke the protocol: dropped after this round. */
void loop_client_kill(struct loop_client *c);
/* Descriptors a connection makes us hold, its quota's measure: a memfd per
 * region, one socket per channel, and one more per channel a device of
 * ours has bound (the port keeps its own copy). */
unsigned int loop_client_fds(const struct loop_client *c);
/* One packet to c, with descriptor fd unless it is -1, never blocking; a
 * connection that cannot take it is marked dead (dropped after this
 * round). */
int loop_send(struct loop_client *c, uint32_t op, uint32_t seq, int32_t status,
	      const void *payload, size_t len, int fd);
/* A domain or device id as the store spells it: decimal digits, no sign,
 * no leading zero, at most max; *end: the first byte after it. */
int loop_parse_id(const char *s, const char **end, uint32_t max, uint32_t *out);

/* ---- loop-watch.c ---- */
/* A store change at path: the watches above it fire (queued for dispatch). */
void loop_watch_queue(struct loop_bus *lb, const char *path);
/* Deliver the queued watch events (their callbacks may queue more). */
void loop_watch_deliver(struct loop_bus *lb);
/* Set a key for acct's guest (NULL: the backend or our toolstack part);
 * watches fire and the guest of a backend dir hears of it. */
int loop_st_set(struct loop_bus *lb, const char *path, const char *val, struct ls_account *acct);
/* Remove path and below, with the same notices (-ENOENT: absent). */
int loop_st_rm(struct loop_bus *lb, const char *path);
/* ls_removed_fn for removals done with ls_* directly (arg: lb). */
void loop_st_removed(void *arg, const char *path);
int loop_store_watch(struct xvb_bus *b, const char *path);
int loop_store_unwatch(struct xvb_bus *b, const char *path);

/* ---- loop-gnttab.c ---- */
/* Is fd a memfd sealed against shrinking (all guest memory must be)? */
bool loop_shrink_sealed(int fd);
/* Map a driver's grant table of n entries from fd: -EINVAL unless n and
 * the memfd are acceptable, -ENOMEM. */
int loop_gnt_open(int fd, uint32_t n, struct loop_gnt **out);
/* Drop a reference (the driver's, or a mapping's); the last unmaps. */
void loop_gnt_put(struct loop_gnt *g);
int loop_do_region(struct loop_bus *lb, struct loop_client *c, const void *p, size_t len,
		   int *fds, unsigned int nfds);
/* UNREGION: the region at exactly base_gfn goes (-ENOENT: none). */
int loop_region_remove(struct loop_client *c, uint64_t base_gfn);
/* The bus's map and unmap ops. */
int loop_map(struct xvb_bus *b, uint32_t domid, enum xvb_space space, const uint64_t *ids,
	     unsigned int n, bool writable, void **addr);
int loop_unmap(struct xvb_bus *b, void *addr, unsigned int n);

/* ---- loop-evtchn.c ---- */
/* EVTCHN: a new channel; *driver_fd: the driver's end, for the reply (the
 * caller closes it once sent). */
int loop_do_evtchn(struct loop_bus *lb, struct loop_client *c, const void *p, size_t len,
		   unsigned int nfds, int *driver_fd);
/* Take the kicks waiting on a channel's fd: 1 if there were any, 0 if
 * none.  Never blocks. */
int loop_evtchn_drain(int fd);
/* The channel EVTCHN just made goes again (its reply could not be sent). */
void loop_evtchn_forget_last(struct loop_bus *lb, struct loop_client *c);
/* Kicks on channel port of domid, bound by nobody: taken and dropped. */
void loop_evtchn_idle(struct loop_bus *lb, uint32_t domid, uint32_t port);
/* EVTCHN_CLOSE of port: -ENOENT unknown, -EBUSY while bound. */
int loop_evtchn_close(struct loop_bus *lb, struct loop_client *c, uint32_t port);
/* The bus's event-channel ops. */
int loop_evtchn_bind(struct xvb_bus *b, uint32_t domid, uint32_t remote, uint32_t *local);
int loop_evtchn_unbind(struct xvb_bus *b, uint32_t local);
int loop_evtchn_notify(struct xvb_bus *b, uint32_t local);
/* Queue channels (bus.h): the channel's socket duplicated, polled by the
 * queue's thread, not by the bus. */
int loop_chan_bind(struct xvb_bus *b, uint32_t domid, uint32_t remote, struct xvb_chan **out);
void loop_chan_unbind(struct xvb_bus *b, struct xvb_chan *ch);
int loop_chan_fd(struct xvb_chan *ch);
int loop_chan_ack(struct xvb_chan *ch);
int loop_chan_notify(struct xvb_chan *ch);

/* ---- loop-toolstack.c ---- */
int loop_do_attach(struct loop_bus *lb, struct loop_client *c, const struct xvmsg_loop_attach *a);
int loop_do_detach(struct loop_bus *lb, struct loop_client *c, uint32_t devid);
/* Device i of c goes: both its dirs removed, its export free again. */
void loop_remove_dev(struct loop_bus *lb, struct loop_client *c, unsigned int i);
int loop_do_write(struct loop_bus *lb, struct loop_client *c, const char *p, size_t len);

/* ---- loop-server.c ---- */
/* Create the listening socket at path and watch it. */
int loop_listen(struct loop_bus *lb, const char *path);
void loop_accept(struct loop_bus *lb);
/* One request of c, answered. */
void loop_client_input(struct loop_bus *lb, struct loop_client *c);
/* Dead connections: their devices go first (loop_detach_dead), then, once
 * the watches have run, the rest of them (loop_free_dead). */
void loop_detach_dead(struct loop_bus *lb);
void loop_free_dead(struct loop_bus *lb);
void loop_client_free(struct loop_bus *lb, struct loop_client *c);

#endif /* XVB_LOOP_PRIV_H */
