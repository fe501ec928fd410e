/* SPDX-License-Identifier: MIT */
/*
 * The hypervisor-specific part of the backend: map guest memory, signal
 * event channels, read and write the config store.  One file implements it
 * per bus (bus-loop.c, bus-xen.c); the core never includes a hypervisor
 * header.  Modelled on Xen's tools/libs: an opaque handle, one pollable fd,
 * and the caller owns the event loop.
 *
 * Every function returning int returns 0 (or a count where stated) or a
 * negative errno.  None of them blocks unless stated.
 *
 * Threads: everything runs on the thread that owns the bus (the backend's
 * event loop) except map and unmap, which any thread may call (queue
 * threads translate requests), and the chan_fd, chan_ack and chan_notify
 * of a queue channel, which only its queue's thread calls.
 */
#ifndef XVB_BUS_H
#define XVB_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xvb_bus;
/* A queue channel: an event channel with a descriptor of its own, for a
 * queue served on a thread of its own (qthread.c); see chan_bind. */
struct xvb_chan;

/* What the core is told; set once at creation. */
struct xvb_bus_events {
	void *ctx;
	/* A watched path (or something below it) changed. */
	void (*watch)(void *ctx, const char *path);
	/* A bound event channel fired. */
	void (*event)(void *ctx, uint32_t local_port);
};

/*
 * What a bus can do for the memory-access modes, fixed when it is created.
 * The core decides from this alone which mode a device may use
 * (xvb_mode_check, mapcache.c) and how full mode maps.
 */
struct xvb_bus_caps {
	/* Maps of XVB_SPACE_FRAME work (full mode): on the loopback bus with
	 * --full, on Xen with foreign-mapping privilege unless --no-full. */
	bool map_frames;
	/* Frames may stay mapped between requests (full mode's map cache).
	 * Xen says no: a PV guest cannot pin a page as a page table while
	 * another domain maps it writable. */
	bool cache_frames;
	/* !map_frames: why, for the device's error key. */
	char no_frames[128];
};

/* Address spaces a map request can name. */
enum xvb_space {
	XVB_SPACE_GRANT = 0,	/* grant references of the peer */
	XVB_SPACE_FRAME = 1,	/* guest frame numbers (foreign mapping) */
};

struct xvb_bus_ops {
	const char *name;
	void (*destroy)(struct xvb_bus *bus);

	/* The one fd to poll for input; call dispatch() when it is readable. */
	int (*get_fd)(struct xvb_bus *bus);
	/* Handle whatever is pending, invoking the callbacks. Never blocks. */
	int (*dispatch)(struct xvb_bus *bus);
	/* Our own domain id. */
	uint32_t (*self_domid)(struct xvb_bus *bus);
	/* What this bus can do; valid until destroy.  NULL: everything
	 * (frames mapped and cached). */
	const struct xvb_bus_caps *(*caps)(struct xvb_bus *bus);

	/* --- config store (xenstore) --- */
	/* Read a value into buf (NUL-terminated). -ENOENT if absent,
	 * -E2BIG if it does not fit. */
	int (*store_read)(struct xvb_bus *bus, const char *path, char *buf, size_t len);
	int (*store_write)(struct xvb_bus *bus, const char *path, const char *val);
	int (*store_rm)(struct xvb_bus *bus, const char *path);
	/* Call fn for each direct child name of path; stops and returns fn's
	 * value when it is non-zero. -ENOENT if path does not exist. */
	int (*store_dir)(struct xvb_bus *bus, const char *path,
			 int (*fn)(void *arg, const char *child), void *arg);
	int (*store_watch)(struct xvb_bus *bus, const char *path);
	int (*store_unwatch)(struct xvb_bus *bus, const char *path);

	/* --- memory ---
	 * Map n pages of domain domid, named by ids[] in the given space,
	 * at one contiguous address.  Each page is checked on its own; when any
	 * fails, those that succeeded are unmapped and the first error is
	 * returned (-EPERM: not granted to us or read-only, -EINVAL: bad id,
	 * -ENOMEM). */
	int (*map)(struct xvb_bus *bus, uint32_t domid, enum xvb_space space,
		   const uint64_t *ids, unsigned int n, bool writable, void **addr);
	int (*unmap)(struct xvb_bus *bus, void *addr, unsigned int n);

	/* --- event channels --- */
	int (*evtchn_bind)(struct xvb_bus *bus, uint32_t domid, uint32_t remote_port,
			   uint32_t *local_port);
	int (*evtchn_unbind)(struct xvb_bus *bus, uint32_t local_port);
	int (*evtchn_notify)(struct xvb_bus *bus, uint32_t local_port);

	/* --- queue channels (optional: NULL, and every queue is served on
	 * the bus's thread) ---
	 * Bind remote_port of domid as a channel that is not the bus fd's:
	 * its own fd becomes readable when the peer signals it, and nothing
	 * of the bus is touched when it is acked or notified, so another
	 * thread can serve it without a lock.  Bind and unbind on the bus's
	 * thread; unbind only once the queue's thread has let go of it. */
	int (*chan_bind)(struct xvb_bus *bus, uint32_t domid, uint32_t remote_port,
			 struct xvb_chan **out);
	void (*chan_unbind)(struct xvb_bus *bus, struct xvb_chan *ch);
	/* The channel's thread: the fd to poll; after it was readable, take
	 * the signal and let the next one through (0, or -EAGAIN when there
	 * was none: a spurious wake-up); signal the peer. */
	int (*chan_fd)(struct xvb_chan *ch);
	int (*chan_ack)(struct xvb_chan *ch);
	int (*chan_notify)(struct xvb_chan *ch);
};

struct xvb_bus {
	const struct xvb_bus_ops *ops;
};

/* Loopback bus (bus-loop.c). */
struct xvb_export;
/* Default store quota of one guest (xenstored's quota-nb-entry-per-domain
 * is 1000 too): keys it writes, and bytes of their paths and values. */
#define XVB_LOOP_GUEST_KEYS		1000
#define XVB_LOOP_GUEST_STORE_BYTES	(256 * 1024)
struct xvb_loop_opts {
	const char *socket_path;	/* unix socket to listen on */
	/* Devices a connecting driver may attach by name (the loopback bus is
	 * its own toolstack); the array must outlive the bus. */
	const struct xvb_export *exports;
	unsigned int nr_exports;
	bool allow_full;		/* permit full mode (foreign mapping): caps.map_frames */
	/* Descriptors one connection may make the backend hold (a region is
	 * one, an event channel two); beyond it REGION/EVTCHN fail with
	 * -EDQUOT.  0: xvb_loop_default_guest_fds of the current soft limit. */
	unsigned int max_guest_fds;
	/* Mappings (the kernel's VMAs) of one connection's memory the backend
	 * may hold at once; beyond it a map fails with -EDQUOT.  0:
	 * xvb_loop_default_guest_maps of vm.max_map_count. */
	unsigned int max_guest_maps;
	/* Store keys one connection may write, and bytes of their paths and
	 * values; beyond them WRITE fails with -EDQUOT.  0: the defaults
	 * XVB_LOOP_GUEST_KEYS, XVB_LOOP_GUEST_STORE_BYTES. */
	unsigned int max_guest_keys;
	unsigned int max_guest_store_bytes;
};
/* The default per-guest quota for a soft RLIMIT_NOFILE of nofile: an eighth
 * of it, at least 16 and at most 1024. */
unsigned int xvb_loop_default_guest_fds(unsigned long nofile);
/* The default per-guest mapping quota for the kernel's vm.max_map_count
 * (0: unknown, taken as 65530): an eighth of it, at least 256. */
unsigned int xvb_loop_default_guest_maps(unsigned long max_map_count);
/* vm.max_map_count, or 0 when it cannot be read. */
unsigned long xvb_loop_max_map_count(void);
int xvb_loop_create(const struct xvb_loop_opts *opts, const struct xvb_bus_events *ev,
		    struct xvb_bus **out);

/* Xen bus (bus-xen.c; in a build without Xen bus-noxen.c, which always fails
 * with -EOPNOTSUPP).  On failure err says what is missing. */
struct xvb_xen_opts {
	/* Full mode (caps.map_frames): also needs foreign-mapping privilege. */
	bool allow_full;
};
int xvb_xen_create(const struct xvb_xen_opts *opts, const struct xvb_bus_events *ev,
		   struct xvb_bus **out, char *err, size_t errlen);

#endif /* XVB_BUS_H */
