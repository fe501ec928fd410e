/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Differences between the kernels the module builds on, in one place.
 *
 * The module is written against the newest API.  For an older kernel this
 * header supplies what is missing; the rest of the module has no version
 * test.  Kernels checked (make check-module-builds, see README.md):
 *
 *   6.1    Debian 12 (bookworm)
 *   6.12   Debian 12's 6.12 and Debian 13 (trixie)
 *   newer  the newest kernel in Debian 13's trixie-backports
 *
 * What changed and what did not, for every kernel API the module uses:
 *
 *   find_vqs          6.11 passes one struct virtqueue_info per queue
 *                     instead of three arrays (callbacks, names, ctx).
 *                     Below: the struct and an adapter for older kernels.
 *   vring_new_virtqueue, vring_del_virtqueue, vring_interrupt,
 *   virtqueue_get_vring, vring_transport_features, virtio_break_device,
 *   __virtio_unbreak_device, synchronize_cbs
 *                     same signatures on every kernel above.
 *   struct vring, vring_init
 *                     uapi <linux/virtio_ring.h>, unchanged.
 *   dma_map_ops       the members the module sets (alloc, free, map_page,
 *                     unmap_page, map_sg, unmap_sg, sync_*, dma_supported,
 *                     max_mapping_size) keep their types.
 *   xenbus, grant table, event channels
 *                     same signatures on every kernel above.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_COMPAT_H
#define XVMSG_COMPAT_H

#include <linux/slab.h>
#include <linux/version.h>
#include <linux/virtio_config.h>

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

#endif /* XVMSG_COMPAT_H */
