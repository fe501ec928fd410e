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

int xvd_rng_open(struct xvd_domain *d, const struct xvd_dev_opts *o, struct xvd_dev **out)
{
	struct xvd_dev *dev;
	int r = xvd_dev_open(d, o, VIRTIO_ID_RNG, 1, &dev);

	if (r < 0)
		return r;
	dev->type_free = rng_free;
	r = xvd_ram_alloc(d, RNG_CHUNK, &dev->type_priv);	/* device-reachable in every mode */
	if (r < 0) {
		xvd_dev_close(dev);
		return r;
	}
	*out = dev;
	return 0;
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
		struct xvd_done d;
		int r = xvd_vq_submit(dev, 0, &b, 1, NULL, 0);

		if (r < 0)
			return r;
		r = xvd_vq_wait(dev, 0, &d, 1, deadline);
		if (r == 0) {
			xvd_dev_fail(dev, "rng request timed out");
			while (xvd_vq_poll(dev, 0, &d, 1) == 1)
				;
			return -ETIMEDOUT;
		}
		if (r < 0)
			return r;
		if (d.status)
			return d.status;
		memcpy((uint8_t *)buf + done, chunk, d.len);
		memset(chunk, 0, d.len);
		done += d.len;
	}
	return (int)len;
}
