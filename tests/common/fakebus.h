/* SPDX-License-Identifier: MIT */
/*
 * An in-process xvb_bus for unit tests of the core: guest memory is one
 * memfd of `pages` frames from frame_base on (0 unless the test sets it: an
 * Arm guest's RAM starts at 1 GiB); grants are a table the test fills in,
 * naming frames the same way.  Maps alias
 * the memfd like the loopback bus does, so writes through a mapping are
 * visible in fb->mem.  Counts everything, checks permissions.
 */
#ifndef XVMSG_TEST_FAKEBUS_H
#define XVMSG_TEST_FAKEBUS_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"

#define FB_MAX_GRANTS 4096
#define FB_MAX_STORE 256

struct fakebus {
	struct xvb_bus bus;
	int memfd;
	uint8_t *mem;			/* the whole guest memory, for the test */
	uint32_t pages;
	uint64_t frame_base;		/* frame of mem[0] */
	struct { bool permit, readonly; uint32_t frame; int pins; } gnt[FB_MAX_GRANTS];
	bool allow_frames;
	unsigned int maps, unmaps, live;	/* calls and mappings alive */
	unsigned int notifies;
	uint32_t last_notify;
	struct { char path[128], val[1024]; } st[FB_MAX_STORE];	/* a stats line is long */
	struct fb_map { void *addr; unsigned int n; bool grant; uint64_t ids[64]; } map[256];
	unsigned int nst;
	unsigned int reads, dirs;		/* store_read and store_dir calls */
	int chan_err;				/* queue channel binds fail with it */
	unsigned int chan_binds, chans;		/* bind calls, channels alive */
};

/* 0 or -errno. */
int fakebus_init(struct fakebus *fb, uint32_t pages);
void fakebus_fini(struct fakebus *fb);
/* Grant frames [frame, frame+n) as refs [ref, ref+n). */
void fakebus_grant(struct fakebus *fb, uint32_t ref, uint32_t frame, uint32_t n, bool ro);
void fakebus_revoke(struct fakebus *fb, uint32_t ref, uint32_t n);

#endif
