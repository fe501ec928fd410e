/* SPDX-License-Identifier: MIT */
/*
 * The bus-specific part of the driver library: grant table, guest memory,
 * event channels and the config store.  One file implements it per bus
 * (drv-loop.c, the loopback bus; drv-xen.c: gntalloc / libxenevtchn /
 * libxenstore); the virtio-msg, virtqueue and DMA code only ever call
 * these ops.
 *
 * Every int op returns 0 (or a count where stated) or a negative errno.  No op
 * blocks except attach/detach/store_write/mem_share/evtchn_alloc (a bounded
 * round trip to the toolstack or backend) and wait.  After the peer is gone
 * every op returns -EPIPE or -ENODEV promptly; none may hang or crash.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVD_DRV_BUS_H
#define XVD_DRV_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A block of guest memory, contiguous in virtual space and in guest frames. */
struct drv_mem {
	void *va;
	uint64_t gfn;		/* guest frame of va */
	size_t pages;
	int handle;		/* bus private (loopback: the memfd) */
};

enum drv_mem_kind {
	DRV_MEM_RAM,		/* the guest's RAM: application buffers */
	DRV_MEM_DEV,		/* a device's message page + pool */
};

struct drv_bus;

struct drv_bus_ops {
	const char *name;
	void (*close)(struct drv_bus *bus);

	/* Our domid and the backend's (grants go to the latter). */
	unsigned int (*domid)(struct drv_bus *bus);
	unsigned int (*backend_domid)(struct drv_bus *bus);

	/* --- grant table (Xen grant_entry_v1 semantics) --- */
	/* Reserve n consecutive free references; *first = the lowest. */
	int (*gnt_alloc)(struct drv_bus *bus, unsigned int n, uint32_t *first);
	/* Release a range from gnt_alloc; retired references stay reserved. */
	void (*gnt_free)(struct drv_bus *bus, uint32_t first, unsigned int n);
	/* Let the backend map frame gfn through ref. */
	int (*gnt_grant)(struct drv_bus *bus, uint32_t ref, uint64_t gfn, bool readonly);
	/* End access: 0, or -EBUSY when the backend still maps it; the bus then
	 * retires ref for good and the caller must never reuse the page. */
	int (*gnt_revoke)(struct drv_bus *bus, uint32_t ref);

	/* --- memory --- */
	/* Allocate zeroed memory; the bus chooses its guest frames.  devid
	 * names the device for DRV_MEM_DEV. */
	int (*mem_alloc)(struct drv_bus *bus, enum drv_mem_kind kind, unsigned int devid,
			 size_t pages, struct drv_mem *mem);
	void (*mem_free)(struct drv_bus *bus, struct drv_mem *mem);
	/* Make the frames reachable by the backend (loopback: REGION).  On
	 * Xen this is a no-op: grants or foreign mapping do it. */
	int (*mem_share)(struct drv_bus *bus, const struct drv_mem *mem);
	/* Optional: grant pages [first_page, first_page + n) of a DRV_MEM_DEV
	 * block with consecutive refs, for a bus whose memory comes granted
	 * (Xen gntalloc).  The grants then end in mem_free, and gnt_revoke of
	 * them is a no-op.  NULL: the generic gnt_alloc + gnt_grant path. */
	int (*mem_grant)(struct drv_bus *bus, const struct drv_mem *mem, size_t first_page,
			 unsigned int n, bool readonly, uint32_t *first_ref);

	/* --- event channels --- */
	/* Allocate an interdomain channel to the backend; *port = our number. */
	int (*evtchn_alloc)(struct drv_bus *bus, uint32_t *port);
	void (*evtchn_free)(struct drv_bus *bus, uint32_t port);
	int (*evtchn_notify)(struct drv_bus *bus, uint32_t port);
	/* Consume pending notifications of port: returns how many arrived
	 * (0 = none).  Never blocks. */
	int (*evtchn_ack)(struct drv_bus *bus, uint32_t port);
	/* A pollable fd that becomes readable when port fires, or -ENOTSUP. */
	int (*evtchn_fd)(struct drv_bus *bus, uint32_t port);

	/* The fd to poll for store events and peer loss (-ENOTSUP if none). */
	int (*get_fd)(struct drv_bus *bus);
	/* Handle pending store events without blocking.  Fails (-ENODEV) only
	 * when the peer is gone. */
	int (*dispatch)(struct drv_bus *bus);
	/* Block until one of ports fires, a store event arrives, or timeout_ms
	 * passes (-1 = forever).  Returns 1 (something happened, possibly
	 * spurious), 0 (timeout) or -ENODEV (peer gone).  Does not ack ports. */
	int (*wait)(struct drv_bus *bus, const uint32_t *ports, unsigned int n, int timeout_ms);

	/* --- config store --- */
	/* Toolstack duty: create the device's dirs (loopback only; a Xen bus
	 * finds them made by xl and returns 0). */
	int (*attach)(struct drv_bus *bus, const char *export_name, unsigned int devid,
		      unsigned int mode, unsigned int pool_pages);
	int (*detach)(struct drv_bus *bus, unsigned int devid);
	/* Write key in our frontend dir of devid. */
	int (*store_write)(struct drv_bus *bus, unsigned int devid, const char *key,
			   const char *val);
	/* Read key of devid's backend dir: -ENOENT if absent, -E2BIG if too long. */
	int (*store_read)(struct drv_bus *bus, unsigned int devid, const char *key,
			  char *buf, size_t len);
};

struct drv_bus {
	const struct drv_bus_ops *ops;
};

/* Loopback bus (drv-loop.c): connect to the backend's unix socket. */
struct xvd_logger;
int drv_loop_open(const char *socket_path, unsigned int gnt_entries, int timeout_ms,
		  const struct xvd_logger *log, struct drv_bus **out);

/* Xen bus (drv-xen.c): gntalloc, libxenevtchn, libxenstore; pool mode.  In a
 * build without Xen drv-noxen.c, which always fails with -EOPNOTSUPP. */
int drv_xen_open(int timeout_ms, const struct xvd_logger *log, struct drv_bus **out);

#endif /* XVD_DRV_BUS_H */
