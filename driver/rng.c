// SPDX-License-Identifier: MIT
/*
 * virtio-rng helper: one request queue of device-writable buffers.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <string.h>
#include <linux/virtio_ids.h>

#include "drv-priv.h"

#define RNG_CHUNK	4096

static void rng_free(struct xvd_dev *dev)
{
	xvd_ram_free(dev->dom, dev->type_priv);
	dev->type_priv = NULL;
}

/* The chunk requests are read into: device-reachable in every mode. */
static int rng_setup(struct xvd_dev *dev, void *arg)
{
	return xvd_ram_alloc(dev->dom, RNG_CHUNK, &dev->type_priv);
}

static const struct xvd_dev_type rng_type = {
	.device_id = VIRTIO_ID_RNG,
	.free = rng_free,
	.setup = rng_setup,
};

int xvd_rng_open(struct xvd_domain *d, const struct xvd_dev_opts *o, struct xvd_dev **out)
{
	return xvd_dev_open_type(d, o, &rng_type, 1, NULL, out);
}

int xvd_rng_read(struct xvd_dev *dev, void *buf, size_t len)
{
	int64_t deadline = xvd_now_ms() + dev->o.timeout_ms;
	uint8_t *chunk = dev->type_priv;
	size_t done = 0;

	if (!chunk || dev->type_free != rng_free || len > INT32_MAX)
		return -EINVAL;
	if (xvd_vq_inflight(dev, 0))
		return -EBUSY;
	while (done < len) {
		struct xvd_buf b = {
			.addr = chunk,
			.len = len - done < RNG_CHUNK ? (uint32_t)(len - done) : RNG_CHUNK,
			.dev_writes = true,
		};
		uint32_t got;
		int r = xvd_vq_call(dev, 0, &b, 1, deadline, "rng request timed out", &got);

		if (r < 0)
			return r;
		memcpy((uint8_t *)buf + done, chunk, got);
		memset(chunk, 0, got);
		done += got;
	}
	return (int)len;
}
