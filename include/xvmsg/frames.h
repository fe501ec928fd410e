/* SPDX-License-Identifier: MIT */
/*
 * Full mode's bus addresses: from a guest-physical range to the guest frames
 * the backend maps.  Used by the guest kernel module (xvmsg-dma.c) and by
 * the unit tests, which run it against a PV and an auto-translated guest.
 *
 * A full-mode bus address is gfn << 12 | offset (xenbus.h); the backend maps
 * XVMSG_ADDR_PFN(addr) and the frames after it, so a buffer is usable only
 * when its frames are consecutive gfns.  What a gfn is depends on the guest:
 *
 *   PV (x86)         the kernel's frames are pseudo-physical; pfn_to_gfn()
 *                    looks the machine frame up in the p2m.  Memory that is
 *                    contiguous for the kernel is machine-contiguous only by
 *                    chance, so ranges of more than one frame can fail.
 *   auto-translated  (Arm, x86 PVH and HVM) Xen translates guest-physical
 *                    addresses in its own tables; pfn_to_gfn() is the
 *                    identity, every range qualifies and the bus address is
 *                    the guest-physical address itself.
 *
 * Frames here are always Xen's 4 KiB frames (XVMSG_PAGE_SIZE), whatever the
 * kernel's page size: an arm64 kernel may run with 16 or 64 KiB pages, and
 * both the gfn and the offset in the bus address are in 4 KiB units.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_FRAMES_H
#define XVMSG_FRAMES_H

#include "types.h"
#include "xenbus.h"

/* The largest gfn a full-mode address can carry: bit 63 marks grants. */
#define XVMSG_FULL_MAX_GFN	((XVMSG_ADDR_GRANT_BIT >> XVMSG_PAGE_SHIFT) - 1)

/* The gfn of 4 KiB guest frame pfn (Linux: pfn_to_gfn()); ctx is the
 * caller's. */
typedef __u64 (*xvmsg_to_gfn_t)(void *ctx, __u64 pfn);

/* How many 4 KiB frames [phys, phys + len) touches; len > 0. */
static inline __u64 xvmsg_frames_spanned(__u64 phys, __u64 len)
{
	return ((phys & (XVMSG_PAGE_SIZE - 1)) + len + XVMSG_PAGE_SIZE - 1) >> XVMSG_PAGE_SHIFT;
}

/*
 * The full-mode bus address of [phys, phys + len) into *addr.  Returns 1,
 * or 0 when there is none: len is 0, the range wraps, its frames are not
 * consecutive gfns (a PV guest's machine-discontiguous memory), or its gfns
 * do not fit in a full-mode address.  Calls to_gfn once per frame; never
 * blocks unless to_gfn does.
 */
static inline int xvmsg_full_addr(xvmsg_to_gfn_t to_gfn, void *ctx, __u64 phys, __u64 len,
				  __u64 *addr)
{
	__u64 pfn = phys >> XVMSG_PAGE_SHIFT, n, gfn, i;

	if (!len || phys + len - 1 < phys)
		return 0;
	n = xvmsg_frames_spanned(phys, len);
	gfn = to_gfn(ctx, pfn);
	if (gfn > XVMSG_FULL_MAX_GFN || XVMSG_FULL_MAX_GFN - gfn < n - 1)
		return 0;
	for (i = 1; i < n; i++)
		if (to_gfn(ctx, pfn + i) != gfn + i)
			return 0;
	*addr = (gfn << XVMSG_PAGE_SHIFT) | (phys & (XVMSG_PAGE_SIZE - 1));
	return 1;
}

#endif /* XVMSG_FRAMES_H */
