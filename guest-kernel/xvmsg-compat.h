/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Differences between the kernels the module builds on, in one place.
 *
 * The module is written against the newest API.  For an older kernel this
 * header supplies what is missing; the rest of the module has no version
 * test.  Kernels checked (make check-module-builds, see README.md):
 *
 *   6.1    Debian 12 (bookworm)
 *   6.12   Debian 12's 6.12 (gcc-12) and Debian 13's (trixie, gcc-14)
 *   newer  the newest kernel in Debian 13's trixie-backports
 *
 * What changed and what did not, for every kernel API the module uses:
 *
 *   find_vqs          6.11 passes one struct virtqueue_info per queue
 *                     instead of three arrays (callbacks, names, ctx).
 *   dma_map_ops       6.19 has map_phys/unmap_phys in place of
 *                     map_page/unmap_page; 6.18 adds DMA_ATTR_MMIO.
 *   xenbus_read_driver_state
 *                     7.0 takes the xenbus device as well as the path.
 *   xenbus_dev_changed
 *                     7.0 removes and probes again a frontend whose state
 *                     node reads Initialising while dev->state differs (a
 *                     device the toolstack reset); xvmsg-front.c's
 *                     restart_handshake() never shows it that (no version
 *                     test needed: it is right on every kernel).
 *   nth_page          gone in 6.18; the module does pfn arithmetic instead.
 *   vring_new_virtqueue, vring_del_virtqueue, vring_interrupt,
 *   virtqueue_get_vring, vring_transport_features, virtio_break_device,
 *   __virtio_unbreak_device, virtio_config_ops' other members
 *                     same signatures, still exported (GPL) on all three.
 *   struct vring, vring_init
 *                     uapi <linux/virtio_ring.h>, unchanged.
 *   dma_map_ops' other members (alloc, free, map_sg, unmap_sg, sync_*,
 *   dma_supported, max_mapping_size), xenbus, grant table (gnttab_*_seq,
 *   gnttab_try_end_foreign_access), event channels, vmap
 *                     same signatures on all three.
 *
 * The 6.11 step is checked by building on 6.1 and 6.12, the 7.0 and 6.19
 * steps only by building on 6.12 and 7.x: the exact release of those two
 * comes from the kernel's history, not from a build.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_COMPAT_H
#define XVMSG_COMPAT_H

#include <linux/dma-map-ops.h>
#include <linux/slab.h>
#include <linux/version.h>
#include <linux/virtio_config.h>
#include <xen/xenbus.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 11, 0)
/* As in 6.11's <linux/virtio_config.h>: a NULL name means "no queue". */
struct virtqueue_info {
	const char *name;
	vq_callback_t *callback;
	bool ctx;
};
#endif

/*
 * xvmsg_find_vqs_fn: find_vqs with the 6.11 arguments.
 * XVMSG_FIND_VQS_OP(op, fn) defines a static function `op` that fits
 * virtio_config_ops.find_vqs on this kernel and calls fn; fn sleeps, so op
 * may allocate.
 */
typedef int xvmsg_find_vqs_fn(struct virtio_device *vdev, unsigned int nvqs,
			      struct virtqueue *vqs[], struct virtqueue_info vqs_info[],
			      struct irq_affinity *desc);

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)

#define XVMSG_FIND_VQS_OP(op, fn)						\
static int op(struct virtio_device *vdev, unsigned int nvqs,			\
	      struct virtqueue *vqs[], struct virtqueue_info vqs_info[],	\
	      struct irq_affinity *desc)					\
{										\
	return fn(vdev, nvqs, vqs, vqs_info, desc);				\
}

#else /* < 6.11 */

/* The three arrays of the old find_vqs as one array of virtqueue_info. */
static inline int xvmsg_find_vqs_arrays(xvmsg_find_vqs_fn *fn, struct virtio_device *vdev,
					unsigned int nvqs, struct virtqueue *vqs[],
					vq_callback_t *callbacks[], const char * const names[],
					const bool *ctx, struct irq_affinity *desc)
{
	struct virtqueue_info *info;
	unsigned int i;
	int r;

	info = kcalloc(nvqs, sizeof(*info), GFP_KERNEL);
	if (!info)
		return -ENOMEM;
	for (i = 0; i < nvqs; i++) {
		info[i].name = names[i];
		info[i].callback = callbacks[i];
		info[i].ctx = ctx ? ctx[i] : false;
	}
	r = fn(vdev, nvqs, vqs, info, desc);
	kfree(info);
	return r;
}

#define XVMSG_FIND_VQS_OP(op, fn)						\
static int op(struct virtio_device *vdev, unsigned int nvqs,			\
	      struct virtqueue *vqs[], vq_callback_t *callbacks[],		\
	      const char * const names[], const bool *ctx,			\
	      struct irq_affinity *desc)					\
{										\
	return xvmsg_find_vqs_arrays(fn, vdev, nvqs, vqs, callbacks, names,	\
				     ctx, desc);				\
}

#endif /* 6.11 */

/*
 * dma_map_ops: 6.19 maps physical addresses (map_phys, unmap_phys) where
 * older kernels map pages (map_page, unmap_page; the unmap arguments are
 * the same).  The module implements <mode>_map_phys and <mode>_unmap_phys;
 * XVMSG_DEFINE_MAP_PAGE_OPS(mode) adds <mode>_map_page on older kernels,
 * and XVMSG_DMA_MAP_PHYS_OPS(mode) fills in the members of the table.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 19, 0)

#define XVMSG_DEFINE_MAP_PAGE_OPS(mode)
#define XVMSG_DMA_MAP_PHYS_OPS(mode)						\
	.map_phys = mode##_map_phys,						\
	.unmap_phys = mode##_unmap_phys

#else /* < 6.19 */

#define XVMSG_DEFINE_MAP_PAGE_OPS(mode)						\
static dma_addr_t mode##_map_page(struct device *dev, struct page *page,	\
				  unsigned long offset, size_t size,		\
				  enum dma_data_direction dir,			\
				  unsigned long attrs)				\
{										\
	return mode##_map_phys(dev, page_to_phys(page) + offset, size, dir,	\
			       attrs);						\
}
#define XVMSG_DMA_MAP_PHYS_OPS(mode)						\
	.map_page = mode##_map_page,						\
	.unmap_page = mode##_unmap_phys

#endif /* 6.19 */

/*
 * DMA_ATTR_MMIO (6.18): the address is MMIO, not RAM with a struct page.
 * dma_map_resource() passes it to map_phys.  Older kernels never set it.
 */
#ifndef DMA_ATTR_MMIO
#define DMA_ATTR_MMIO 0
#endif

/*
 * The state of the driver at path.  7.0 takes the xenbus device too (and
 * answers XenbusStateUnknown once the device vanished).
 */
static inline enum xenbus_state xvmsg_read_driver_state(const struct xenbus_device *dev,
							const char *path)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(7, 0, 0)
	return xenbus_read_driver_state(dev, path);
#else
	return xenbus_read_driver_state(path);
#endif
}

#endif /* XVMSG_COMPAT_H */
