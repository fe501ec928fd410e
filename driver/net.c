// SPDX-License-Identifier: MIT
/*
 * virtio-net helper: receiveq 0 keeps the buffers the caller asked for
 * posted (2 KiB each with mergeable buffers, else one whole packet each);
 * transmitq 1 sends each frame as one buffer (header and frame) from one of
 * NET_TX_SLOTS slots of guest RAM.
 *
 * What the device returns is checked before it is used: a used length
 * beyond the buffer, a first buffer without a header, or a num_buffers
 * that does not fit what is posted makes the device broken.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>

#include "drv-priv.h"

#define NET_RXQ		0
#define NET_TXQ		1
#define NET_TX_SLOTS	64
#define NET_TX_SLOT	(XVD_NET_HDR_LEN + XVD_NET_FRAME_MAX + 11)	/* 512-byte multiple */
#define NET_RX_MRG	2048		/* receive buffer with MRG_RXBUF */
#define NET_RX_SMALL	1536		/* without: header and a 1514-byte frame */
#define NET_RX_BIG	(XVD_NET_HDR_LEN + XVD_NET_FRAME_MAX + 11)	/* with GUEST_TSO */
#define NET_PKT_MAX	(XVD_NET_HDR_LEN + XVD_NET_FRAME_MAX)

struct net_priv {
	uint8_t *rx_mem;		/* guest RAM: nrx receive buffers of rx_len */
	uint32_t rx_len;
	unsigned int nrx, posted;
	uint8_t *rx_on;			/* by slot: posted */
	uint8_t *tx_mem;		/* guest RAM: NET_TX_SLOTS slots */
	uint16_t tx_free[NET_TX_SLOTS];	/* stack of free slots */
	unsigned int ntx_free;
	bool mrg;
	/* A packet being collected from several buffers (MRG_RXBUF). */
	uint8_t *pkt;
	size_t pkt_len;
	unsigned int pkt_have, pkt_need;
	uint64_t rx_drops;		/* packets shorter than a header */
};

static void net_free(struct xvd_dev *dev)
{
	struct net_priv *p = dev->type_priv;

	xvd_ram_free(dev->dom, p->rx_mem);
	xvd_ram_free(dev->dom, p->tx_mem);
	free(p->rx_on);
	free(p->pkt);
	free(p);
	dev->type_priv = NULL;
}

static struct net_priv *net_priv(struct xvd_dev *dev)
{
	return dev->type_free == net_free ? dev->type_priv : NULL;
}

static int net_post(struct xvd_dev *dev, unsigned int slot)
{
	struct net_priv *p = dev->type_priv;
	struct xvd_buf b = {
		.addr = p->rx_mem + (size_t)slot * p->rx_len, .len = p->rx_len, .dev_writes = true,
	};
	int r = xvd_vq_submit(dev, NET_RXQ, &b, 1, (void *)(uintptr_t)(slot + 1), XVD_NO_KICK);

	if (r == 0) {
		p->rx_on[slot] = 1;
		p->posted++;
	}
	return r;
}

int xvd_net_rx_post(struct xvd_dev *dev, unsigned int n)
{
	struct net_priv *p = net_priv(dev);
	unsigned int slot, done = 0;
	int r = 0;

	if (!p)
		return -EINVAL;
	for (slot = 0; slot < p->nrx && done < n; slot++) {
		if (p->rx_on[slot])
			continue;
		r = net_post(dev, slot);
		if (r < 0)
			break;
		done++;
	}
	if (done)
		xvd_vq_kick(dev, NET_RXQ);
	return done ? (int)done : r == -ENOSPC || r == -ENOMEM ? 0 : r;
}

/* Buffers of guest RAM for both queues; rx_bufs (*arg) receive buffers posted. */
static int net_setup(struct xvd_dev *dev, void *arg)
{
	unsigned int rx_bufs = *(const unsigned int *)arg, i;
	struct net_priv *p = dev->type_priv;
	int r;

	p->mrg = dev->features & (1ULL << VIRTIO_NET_F_MRG_RXBUF);
	if (p->mrg)
		p->rx_len = NET_RX_MRG;
	else if (dev->features & (1ULL << VIRTIO_NET_F_GUEST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO6))
		p->rx_len = NET_RX_BIG;
	else
		p->rx_len = NET_RX_SMALL;
	p->nrx = xvd_dev_queue_size(dev, NET_RXQ);
	if (!p->mrg && p->rx_len == NET_RX_BIG && p->nrx > 32)
		p->nrx = 32;		/* 2 MiB of guest RAM is enough */
	p->rx_on = calloc(p->nrx, 1);
	p->pkt = malloc(NET_PKT_MAX);
	if (!p->rx_on || !p->pkt)
		return -ENOMEM;
	r = xvd_ram_alloc(dev->dom, (size_t)p->nrx * p->rx_len, (void **)&p->rx_mem);
	if (r == 0)
		r = xvd_ram_alloc(dev->dom, (size_t)NET_TX_SLOTS * NET_TX_SLOT, (void **)&p->tx_mem);
	if (r < 0)
		return r;
	for (i = 0; i < NET_TX_SLOTS; i++)
		p->tx_free[p->ntx_free++] = (uint16_t)(NET_TX_SLOTS - 1 - i);
	if (rx_bufs) {
		r = xvd_net_rx_post(dev, rx_bufs);
		if (r < 0)
			return r;
	}
	return 0;
}

static const struct xvd_dev_type net_type = {
	.device_id = VIRTIO_ID_NET,
	.priv_size = sizeof(struct net_priv),
	.free = net_free,
	.setup = net_setup,
};

int xvd_net_open(struct xvd_domain *d, const struct xvd_dev_opts *o, unsigned int rx_bufs,
		 struct xvd_dev **out)
{
	struct xvd_dev_opts no = *o;

	no.features |= 1ULL << VIRTIO_NET_F_MAC | 1ULL << VIRTIO_NET_F_STATUS |
		       1ULL << VIRTIO_NET_F_MRG_RXBUF;
	return xvd_dev_open_type(d, &no, &net_type, 2, &rx_bufs, out);
}

int xvd_net_info(struct xvd_dev *dev, struct xvd_net_info *info)
{
	struct net_priv *p = net_priv(dev);
	uint8_t cfg[8];
	uint16_t status;
	int r;

	if (!p)
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	r = xvd_dev_config_read(dev, 0, cfg, sizeof(cfg));
	if (r < 0)
		return r;
	info->features = dev->features;
	info->have_mac = dev->features & (1ULL << VIRTIO_NET_F_MAC);
	if (info->have_mac)
		memcpy(info->mac, cfg, 6);
	memcpy(&status, cfg + 6, 2);
	/* Without VIRTIO_NET_F_STATUS the link is always up (virtio 1.2, 5.1.4.2). */
	info->link_up = !(dev->features & (1ULL << VIRTIO_NET_F_STATUS)) ||
			(le16toh(status) & VIRTIO_NET_S_LINK_UP);
	info->mrg_rxbuf = p->mrg;
	info->rx_buf_len = p->rx_len;
	info->rx_posted = p->posted;
	return 0;
}

/* Take finished transmissions; count. */
static int net_tx_reap(struct xvd_dev *dev)
{
	struct net_priv *p = dev->type_priv;
	struct xvd_done d[NET_TX_SLOTS];
	int n = xvd_vq_poll(dev, NET_TXQ, d, NET_TX_SLOTS), i;

	for (i = 0; i < n; i++) {
		uintptr_t slot = (uintptr_t)d[i].cookie - 1;

		if (slot < NET_TX_SLOTS && p->ntx_free < NET_TX_SLOTS)
			p->tx_free[p->ntx_free++] = (uint16_t)slot;
	}
	return n;
}

static void hdr_put(uint8_t *b, const struct xvd_net_hdr *h)
{
	uint16_t v[5] = {
		htole16(h->hdr_len), htole16(h->gso_size), htole16(h->csum_start),
		htole16(h->csum_offset), htole16(h->num_buffers),
	};

	b[0] = h->flags;
	b[1] = h->gso_type;
	memcpy(b + 2, v, sizeof(v));
}

static void hdr_get(struct xvd_net_hdr *h, const uint8_t *b)
{
	uint16_t v[5];

	memcpy(v, b + 2, sizeof(v));
	h->flags = b[0];
	h->gso_type = b[1];
	h->hdr_len = le16toh(v[0]);
	h->gso_size = le16toh(v[1]);
	h->csum_start = le16toh(v[2]);
	h->csum_offset = le16toh(v[3]);
	h->num_buffers = le16toh(v[4]);
}

int xvd_net_send(struct xvd_dev *dev, const struct xvd_net_hdr *hdr, const void *frame,
		 size_t len, unsigned int flags)
{
	struct net_priv *p = net_priv(dev);
	int64_t deadline = xvd_now_ms() + dev->o.timeout_ms;
	static const struct xvd_net_hdr zero;
	struct xvd_buf b;
	uint8_t *slot;
	unsigned int s;
	int r;

	if (!p || len > NET_TX_SLOT - XVD_NET_HDR_LEN)
		return -EINVAL;
	for (;;) {
		net_tx_reap(dev);
		if (p->ntx_free) {
			s = p->tx_free[--p->ntx_free];
			slot = p->tx_mem + (size_t)s * NET_TX_SLOT;
			hdr_put(slot, hdr ? hdr : &zero);
			memcpy(slot + XVD_NET_HDR_LEN, frame, len);
			b = (struct xvd_buf){ .addr = slot, .len = (uint32_t)(XVD_NET_HDR_LEN + len) };
			r = xvd_vq_submit(dev, NET_TXQ, &b, 1, (void *)(uintptr_t)(s + 1), flags);
			if (r == 0)
				return 0;
			p->tx_free[p->ntx_free++] = (uint16_t)s;
			if (r != -ENOSPC && r != -ENOMEM)
				return r;
		}
		if (!xvd_vq_inflight(dev, NET_TXQ))
			return -ENOMEM;
		xvd_vq_kick(dev, NET_TXQ);
		r = xvd_dev_wait(dev, (int)(deadline - xvd_now_ms() > 0 ? deadline - xvd_now_ms() : 0));
		if (r < 0)
			return r;
		if (r == 0 && xvd_now_ms() >= deadline && !net_tx_reap(dev))
			return -ETIMEDOUT;
	}
}

int xvd_net_tx_wait(struct xvd_dev *dev, int timeout_ms)
{
	struct net_priv *p = net_priv(dev);
	int64_t deadline = xvd_now_ms() + (timeout_ms < 0 ? dev->o.timeout_ms : timeout_ms);
	int r;

	if (!p)
		return -EINVAL;
	xvd_vq_kick(dev, NET_TXQ);
	while (xvd_vq_inflight(dev, NET_TXQ)) {
		net_tx_reap(dev);
		if (!xvd_vq_inflight(dev, NET_TXQ))
			break;
		if (xvd_now_ms() >= deadline)
			return -ETIMEDOUT;
		r = xvd_dev_wait(dev, (int)(deadline - xvd_now_ms()));
		if (r < 0)
			return r;
	}
	return xvd_dev_error(dev);
}

/* One receive completion into the packet being collected: 1 when the packet
 * is whole, 0 when more buffers belong to it, -EIO when the device lied. */
static int net_rx_take(struct xvd_dev *dev, const struct xvd_done *d)
{
	struct net_priv *p = dev->type_priv;
	uintptr_t slot = (uintptr_t)d->cookie - 1;
	const uint8_t *buf;
	uint16_t nb;

	if (slot >= p->nrx || !p->rx_on[slot] || d->len > p->rx_len) {
		xvd_dev_fail(dev, "net: receive completion beyond its buffer");
		return -EIO;
	}
	p->rx_on[slot] = 0;
	p->posted--;
	buf = p->rx_mem + slot * p->rx_len;
	if (p->pkt_have == 0) {
		if (d->len < XVD_NET_HDR_LEN) {
			/* a buffer the device refused (too small): nothing in it */
			p->rx_drops++;
			net_post(dev, (unsigned int)slot);
			return 0;
		}
		p->pkt_len = 0;
	}
	if (p->pkt_len + d->len > NET_PKT_MAX) {
		xvd_dev_fail(dev, "net: received packet over 64 KiB");
		return -EIO;
	}
	/* Copied once; the header is checked (and later handed out) from the
	 * copy: in full and grant mode the device can still write buf. */
	memcpy(p->pkt + p->pkt_len, buf, d->len);
	if (p->pkt_have == 0) {
		memcpy(&nb, p->pkt + 10, 2);
		nb = p->mrg ? le16toh(nb) : 1;
		if (nb == 0 || nb > p->nrx) {
			xvd_dev_fail(dev, "net: bad num_buffers");
			return -EIO;
		}
		p->pkt_need = nb;
	}
	p->pkt_len += d->len;
	p->pkt_have++;
	net_post(dev, (unsigned int)slot);
	if (p->pkt_have < p->pkt_need)
		return 0;
	p->pkt_have = 0;
	return 1;
}

int xvd_net_recv(struct xvd_dev *dev, struct xvd_net_hdr *hdr, void *frame, size_t len,
		 int timeout_ms)
{
	struct net_priv *p = net_priv(dev);
	int64_t deadline = xvd_now_ms() + (timeout_ms < 0 ? dev->o.timeout_ms : timeout_ms);
	struct xvd_done d;
	size_t flen;
	int r;

	if (!p)
		return -EINVAL;
	for (;;) {
		r = xvd_vq_poll(dev, NET_RXQ, &d, 1);
		if (r < 0)
			return r;
		if (r == 1) {
			if (d.status)
				return d.status;
			r = net_rx_take(dev, &d);
			xvd_vq_kick(dev, NET_RXQ);
			if (r < 0)
				return r;
			if (r == 0)
				continue;
			flen = p->pkt_len - XVD_NET_HDR_LEN;
			if (hdr)
				hdr_get(hdr, p->pkt);
			memcpy(frame, p->pkt + XVD_NET_HDR_LEN, flen < len ? flen : len);
			return flen > INT32_MAX ? -EIO : (int)flen;
		}
		if (xvd_now_ms() >= deadline)
			return -ETIMEDOUT;
		r = xvd_dev_wait(dev, (int)(deadline - xvd_now_ms()));
		if (r < 0)
			return r;
	}
}
