/* SPDX-License-Identifier: MIT */
/*
 * Pool mode: what a pool of a given size can carry.
 *
 * In pool mode every buffer a driver hands to the device is bounced through
 * the pool, so a request larger than the pool can never be mapped: a guest
 * that builds one retries it for ever.  Both sides therefore follow one
 * rule, defined here once and used by the backend (the limits its devices
 * offer), the guest module (its DMA mapping limit and the block limits it
 * accepts) and the userspace driver (how it splits I/O):
 *
 *   segment  one mapping (one buffer of a request) is at most
 *            xvmsg_pool_seg_bytes(): 1/128 of the pool, whole pages,
 *            4 KiB .. 64 KiB;
 *   request  the data of one request is at most xvmsg_pool_req_bytes():
 *            half the pool, less XVMSG_POOL_REQ_SLACK for the request's
 *            header, status and indirect descriptor table.  The other half
 *            holds the rings and lets a second request be in flight.
 *
 * A device type also needs a smallest pool to be useful at all
 * (xvmsg_min_pool_pages()): the toolstack and the backend refuse smaller
 * ones, naming the minimum.  docs/protocol.md, section 4.3, has the numbers.
 *
 * Pure functions of their arguments: they compile in the kernel and in
 * userspace.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_POOL_H
#define XVMSG_POOL_H

#ifdef __KERNEL__
#include <linux/string.h>
#include <linux/types.h>
#else
#include <linux/types.h>
#include <string.h>
#endif
#include "xenbus.h"	/* XVMSG_DEFAULT_POOL_PAGES */

#define XVMSG_POOL_PAGE		4096u
#define XVMSG_POOL_SEG_MIN	4096u		/* smallest segment limit: one page */
#define XVMSG_POOL_SEG_MAX	65536u		/* largest segment limit */
#define XVMSG_POOL_REQ_SLACK	4096u		/* header, status, indirect table */

/*
 * Smallest useful pools, in pages: the rings (the guest module lays each
 * queue out with page-aligned parts: 2 pages for 64 entries, 3 for 256)
 * plus one request or buffer.
 */
#define XVMSG_MIN_POOL_PAGES_BLK	8	/* 3 ring pages, a 12 KiB request */
#define XVMSG_MIN_POOL_PAGES_CONSOLE	6	/* 2 rings, one receive page, output */
#define XVMSG_MIN_POOL_PAGES_RNG	3	/* 1 ring, one buffer */
#define XVMSG_MIN_POOL_PAGES_NET	32	/* 2 rings of 256, a 64 KiB frame, receive buffers */

/*
 * The pool a toolstack gives when none is asked for: xenbus.h's
 * XVMSG_DEFAULT_POOL_PAGES (256, 1 MiB), but 1024 (4 MiB) for a NIC.
 * virtio_net keeps its receive ring full, 256 buffers of up to a page each
 * once large frames arrive: in a 1 MiB pool nothing is left to send from,
 * and virtio_net drops what it cannot map ("Unexpected TXQ queue failure:
 * -12"), so TCP crawls on retransmissions.
 */
#define XVMSG_DEFAULT_POOL_PAGES_NET	1024

/* Largest single mapping (segment) for a pool of pool_pages pages. */
static inline __u32 xvmsg_pool_seg_bytes(__u32 pool_pages)
{
	__u64 s = (__u64)pool_pages * XVMSG_POOL_PAGE / 128;

	if (s < XVMSG_POOL_SEG_MIN)
		s = XVMSG_POOL_SEG_MIN;
	if (s > XVMSG_POOL_SEG_MAX)
		s = XVMSG_POOL_SEG_MAX;
	return (__u32)(s & ~(__u64)(XVMSG_POOL_PAGE - 1));
}

/* Largest data payload of one request; 0 if the pool is too small for any. */
static inline __u32 xvmsg_pool_req_bytes(__u32 pool_pages)
{
	__u64 half = (__u64)pool_pages * XVMSG_POOL_PAGE / 2;

	return half > XVMSG_POOL_REQ_SLACK ? (__u32)(half - XVMSG_POOL_REQ_SLACK) : 0;
}

/*
 * Segments of xvmsg_pool_seg_bytes() that one request may carry: the
 * device's offer (e.g. virtio-blk seg_max) cut to what the pool holds.
 * 0 when not even one segment fits.
 */
static inline __u32 xvmsg_pool_seg_max(__u32 pool_pages, __u32 offered)
{
	__u32 n = xvmsg_pool_req_bytes(pool_pages) / xvmsg_pool_seg_bytes(pool_pages);

	return offered < n ? offered : n;
}

/*
 * A DMA sync of size bytes at pool byte off, inside the mapping that spans
 * pool bytes [start, end): how many bytes may be copied.  Never past the
 * mapping, whatever size the driver passed (a device-reported length, in
 * virtio_net's receive path): swiotlb clamps the same way.  0 when off is
 * not inside the mapping.
 */
static inline __u64 xvmsg_pool_sync_len(__u64 off, __u64 size, __u64 start, __u64 end)
{
	if (off < start || off >= end)
		return 0;
	return size < end - off ? size : end - off;
}

/* Smallest pool for a device type ("blk", "rng", "console", "net"); 1 for
 * others. */
static inline __u32 xvmsg_min_pool_pages(const char *type)
{
	if (type && !strcmp(type, "blk"))
		return XVMSG_MIN_POOL_PAGES_BLK;
	if (type && !strcmp(type, "console"))
		return XVMSG_MIN_POOL_PAGES_CONSOLE;
	if (type && !strcmp(type, "rng"))
		return XVMSG_MIN_POOL_PAGES_RNG;
	if (type && !strcmp(type, "net"))
		return XVMSG_MIN_POOL_PAGES_NET;
	return 1;
}

/* Default pool for a device type (see XVMSG_DEFAULT_POOL_PAGES_NET). */
static inline __u32 xvmsg_default_pool_pages(const char *type)
{
	if (type && !strcmp(type, "net"))
		return XVMSG_DEFAULT_POOL_PAGES_NET;
	return XVMSG_DEFAULT_POOL_PAGES;
}

#endif /* XVMSG_POOL_H */
