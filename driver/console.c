// SPDX-License-Identifier: MIT
/*
 * virtio-console helper, port 0 only: receiveq 0 keeps CON_RX_BUFS buffers
 * posted; transmitq 1 sends one buffer at a time.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_ids.h>

#include "drv-priv.h"

#define CON_RX_BUFS	4
#define CON_BUF		1024

struct con_priv {
	uint8_t *mem;		/* guest RAM: CON_RX_BUFS receive buffers, then tx */
	int cur;		/* receive buffer being read, -1 = none */
	uint32_t cur_len, cur_off;
};

static uint8_t *con_buf(struct con_priv *p, int i)
{
	return p->mem + (size_t)i * CON_BUF;
}

static void con_free(struct xvd_dev *dev)
{
	struct con_priv *p = dev->type_priv;

	xvd_ram_free(dev->dom, p->mem);
	free(p);
	dev->type_priv = NULL;
}

static int con_post(struct xvd_dev *dev, int i)
{
	struct con_priv *p = dev->type_priv;
	struct xvd_buf b = { .addr = con_buf(p, i), .len = CON_BUF, .dev_writes = true };

	memset(b.addr, 0, CON_BUF);
	return xvd_vq_submit(dev, 0, &b, 1, (void *)(uintptr_t)(i + 1), 0);
}

/* Guest RAM for the buffers; every receive buffer posted. */
static int con_setup(struct xvd_dev *dev, void *arg)
{
	struct con_priv *p = dev->type_priv;
	int r;

	p->cur = -1;
	r = xvd_ram_alloc(dev->dom, (CON_RX_BUFS + 1) * CON_BUF, (void **)&p->mem);
	for (int i = 0; r == 0 && i < CON_RX_BUFS; i++)
		r = con_post(dev, i);
	return r;
}

static const struct xvd_dev_type con_type = {
	.device_id = VIRTIO_ID_CONSOLE,
	.priv_size = sizeof(struct con_priv),
	.free = con_free,
	.setup = con_setup,
};

int xvd_console_open(struct xvd_domain *d, const struct xvd_dev_opts *o, struct xvd_dev **out)
{
	return xvd_dev_open_type(d, o, &con_type, 2, NULL, out);
}

int xvd_console_write(struct xvd_dev *dev, const void *buf, size_t len)
{
	int64_t deadline = xvd_now_ms() + dev->o.timeout_ms;
	struct con_priv *p = dev->type_priv;
	size_t done = 0;

	if (!p || dev->type_free != con_free || len > INT32_MAX)
		return -EINVAL;
	while (done < len) {
		struct xvd_buf b = {
			.addr = con_buf(p, CON_RX_BUFS),
			.len = len - done < CON_BUF ? (uint32_t)(len - done) : CON_BUF,
		};
		int r;

		memcpy(b.addr, (const uint8_t *)buf + done, b.len);
		r = xvd_vq_call(dev, 1, &b, 1, deadline, "console transmit timed out", NULL);
		if (r < 0)
			return r;
		done += b.len;
	}
	return (int)len;
}

int xvd_console_read(struct xvd_dev *dev, void *buf, size_t len, int timeout_ms)
{
	int64_t deadline = xvd_now_ms() + (timeout_ms < 0 ? dev->o.timeout_ms : timeout_ms);
	struct con_priv *p = dev->type_priv;
	uint32_t n;

	if (!p || dev->type_free != con_free)
		return -EINVAL;
	if (!len)
		return 0;
	while (p->cur < 0) {
		struct xvd_done d;
		int r = xvd_vq_wait(dev, 0, &d, 1, deadline), i;

		if (r == 0)
			return -ETIMEDOUT;	/* quiet line: not an error of the device */
		if (r < 0)
			return r;
		i = (int)(uintptr_t)d.cookie - 1;
		if (i < 0 || i >= CON_RX_BUFS)
			return -EIO;
		if (d.status == -ECANCELED && !dev->err) {	/* after a reset */
			con_post(dev, i);
			continue;
		}
		if (d.status)
			return d.status;
		if (!d.len) {
			r = con_post(dev, i);
			if (r < 0)
				return r;
			continue;
		}
		p->cur = i;
		p->cur_len = d.len;
		p->cur_off = 0;
	}
	n = p->cur_len - p->cur_off;
	if (n > len)
		n = (uint32_t)len;
	memcpy(buf, con_buf(p, p->cur) + p->cur_off, n);
	p->cur_off += n;
	if (p->cur_off == p->cur_len) {
		int i = p->cur;

		p->cur = -1;
		con_post(dev, i);	/* a failure shows as the device error next time */
	}
	return (int)n;
}
