// SPDX-License-Identifier: MIT
/*
 * Fuzz target: the split-virtqueue engine fed arbitrary ring memory.  The
 * input is the content of the descriptor table, the avail ring and two
 * indirect tables, all in a granted pool; the engine pops until the ring
 * is empty or broken, completing every chain.  Any crash, hang, sanitizer
 * report, a buffer outside the mappings, or a mapping left behind is a bug.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "fakebus.h"

#define QSZ 16
#define POOL_REF 8
#define POOL_PAGES 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside_mapping(const struct fakebus *fb, const void *p, size_t len)
{
	const char *a = p;
	unsigned int i;

	for (i = 0; i < sizeof(fb->map) / sizeof(fb->map[0]); i++) {
		const char *base = fb->map[i].addr;

		if (base && a >= base && a + len <= base + (size_t)fb->map[i].n * 4096)
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fakebus fb;
	static bool ready;
	struct xvb_stats st = { 0 };
	struct xvb_mapcache mc;
	struct xvb_vq vq = { 0 };
	struct xvb_req req;
	const char *why;
	unsigned int rounds;
	uint8_t flags = size ? data[0] : 0;

	if (!ready) {
		if (fakebus_init(&fb, 64))
			abort();
		ready = true;
	}
	fakebus_grant(&fb, POOL_REF, 0, POOL_PAGES, false);
	memset(fb.mem, 0, 64 * 4096);
	/* Page 0: descriptors; page 1: avail; page 2: used; 3..7: whatever. */
	if (size > 1)
		memcpy(fb.mem, data + 1, size - 1 > 5 * 4096 ? 5 * 4096 : size - 1);
	/* The tail of the input also lands in pages 3.. (indirect tables,
	 * buffers), and a frame outside the pool has a marker. */
	memset(fb.mem + 20 * 4096, 0xab, 4096);
	if (xvb_mc_init(&mc, &fb.bus, &st, 3, XVMSG_MODE_POOL, POOL_REF, POOL_PAGES))
		abort();
	vq.max_size = QSZ;
	vq.size = QSZ;
	vq.desc_addr = XVMSG_GRANT_ADDR(POOL_REF, 0);
	vq.avail_addr = XVMSG_GRANT_ADDR(POOL_REF + 1, 0);
	vq.used_addr = XVMSG_GRANT_ADDR(POOL_REF + 2, 0);
	if (xvb_vq_start(&vq, &mc, flags & 1, flags & 2))
		abort();
	for (rounds = 0; rounds < 4 * QSZ; rounds++) {
		enum xvb_vq_err e = xvb_vq_pop(&vq, &mc, &req, &why);
		unsigned int i;

		if (e == XVB_VQ_EMPTY || e == XVB_VQ_BROKEN)
			break;
		req.queue = 0;
		/* Every byte the engine handed out lies inside a live mapping of
		 * the pool (never the ungranted marker frame), and writes to the
		 * device-writable part land. */
		for (i = 0; e == XVB_VQ_OK && i < req.nout + req.nin; i++) {
			const struct iovec *v = i < req.nout ? &req.out[i] : &req.in[i - req.nout];

			if (!inside_mapping(&fb, v->iov_base, v->iov_len))
				abort();
			if (i >= req.nout)
				memset(v->iov_base, 0x5a, v->iov_len);
		}
		xvb_vq_push(&vq, &mc, &req, (uint32_t)req.in_len);
		xvb_vq_publish(&vq);
	}
	xvb_vq_stop(&vq, &mc);
	xvb_mc_fini(&mc);
	if (fb.live)
		abort();	/* a mapping leaked */
	return 0;
}
