// SPDX-License-Identifier: MIT
/*
 * Fuzz target: virtio-net's check of a driver's transmit header
 * (xvb_net_tx_check, backend-domain/devices/net.c).  Input: the 12-byte
 * header, le64 negotiated features, le32 frame length; the rest is ignored.
 * A header the check accepts must keep every promise the tap relies on.
 */
#include <linux/virtio_net.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t le(const uint8_t *p, unsigned int n)
{
	uint32_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t in[24] = { 0 };
	uint64_t features;
	size_t frame_len;
	uint8_t type;
	enum xvb_net_tx_err e;

	memcpy(in, data, size < sizeof(in) ? size : sizeof(in));
	features = (uint64_t)le(in + 16, 4) << 32 | le(in + 12, 4);
	frame_len = le(in + 20, 4);
	e = xvb_net_tx_check(in, frame_len, features);
	if ((unsigned int)e >= XVB_NET_TX_NERR || !xvb_net_tx_err_name(e))
		abort();
	if (xvb_net_tx_check(in, frame_len, features) != e)
		abort();	/* a pure function of the copy */
	if (e != XVB_NET_TX_OK)
		return 0;
	type = in[1] & ~VIRTIO_NET_HDR_GSO_ECN;
	if (frame_len < 14 || frame_len > XVB_NET_FRAME_MAX)
		abort();
	if (in[0] & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
		abort();
	if (le(in + 2, 2) > frame_len)
		abort();
	if ((in[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    (!(features & (1ULL << VIRTIO_NET_F_CSUM)) ||
	     le(in + 6, 2) + le(in + 8, 2) + 2 > frame_len))
		abort();
	if (type != VIRTIO_NET_HDR_GSO_NONE &&
	    !(type == VIRTIO_NET_HDR_GSO_TCPV4 && (features & (1ULL << VIRTIO_NET_F_HOST_TSO4))) &&
	    !(type == VIRTIO_NET_HDR_GSO_TCPV6 && (features & (1ULL << VIRTIO_NET_F_HOST_TSO6))))
		abort();
	if (type != VIRTIO_NET_HDR_GSO_NONE &&
	    (!(in[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) || !le(in + 4, 2)))
		abort();
	if ((in[1] & VIRTIO_NET_HDR_GSO_ECN) &&
	    (type == VIRTIO_NET_HDR_GSO_NONE || !(features & (1ULL << VIRTIO_NET_F_HOST_ECN))))
		abort();
	return 0;
}
