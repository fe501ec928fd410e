/* SPDX-License-Identifier: MIT */
/*
 * virtio-net (virtio 1.2, 5.1) on one tap interface of the driver domain.
 * Queue 0 is receiveq1 (tap to driver), queue 1 transmitq1 (driver to tap);
 * no control queue, one queue pair.
 *
 * Params:
 *   tap=NAME            the tap interface (required, at most 15 bytes): an
 *                       existing one is attached, else it is created (and
 *                       set up; it goes when the device does)
 *   mac=XX:XX:XX:XX:XX:XX   offered with VIRTIO_NET_F_MAC (default: none,
 *                       the driver picks one)
 *   offload[=on|off]    checksum and TSO offloads (default on): offered only
 *                       when the tap accepts TUNSETOFFLOAD
 *   mrg-rxbuf[=on|off]  VIRTIO_NET_F_MRG_RXBUF (default on)
 *
 * The tap speaks the same 12-byte header as the driver (virtio_net_hdr_v1,
 * little-endian), so frames go through unchanged; the header of every
 * transmitted frame is copied out of shared memory and checked
 * (xvb_net_tx_check) before the tap sees it, and a frame that fails is
 * dropped and counted.  Link status (VIRTIO_NET_F_STATUS) follows the tap's
 * IFF_UP, watched through rtnetlink: a change is an EVENT_CONFIG.
 *
 * Receive backpressure: the tap is polled only while the device is active
 * and no packet read from it waits for buffers.  A packet that finds too
 * few posted buffers waits, with the buffers it already took (never
 * completed half-filled), until the driver posts more; everything else
 * waits in the tap's queue.  Buffers are never lost: one too small for
 * the header is completed with length 0 (rx_bad_buf); a packet larger than
 * all the buffers one packet may take (without MRG_RXBUF: one chain) is
 * dropped and the buffers are kept for the next packet (rx_dropped), as is
 * one whose header the driver did not negotiate (queued before a reset).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "device.h"

#define NET_QUEUE_SIZE	256
#define NET_RXQ		0
#define NET_TXQ		1
#define NET_ETH_HLEN	14
#define NET_PKT_BUF	(XVB_NET_HDR_LEN + XVB_NET_FRAME_MAX)
#define NET_RX_HOLD	64	/* receive chains one packet may take (MRG_RXBUF) */
#define NET_RX_BATCH	64	/* packets read from the tap per call */
#define NET_RX_REFUSED	NET_QUEUE_SIZE	/* refused receive chains per call */
#define NET_CONFIG_SIZE	10	/* mac, status, max_virtqueue_pairs */
#define NET_TUN_OFFLOADS (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)
#define NET_OFFLOAD_FEATURES \
	(1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_GUEST_CSUM | \
	 1ULL << VIRTIO_NET_F_GUEST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO6 | \
	 1ULL << VIRTIO_NET_F_GUEST_ECN | 1ULL << VIRTIO_NET_F_HOST_TSO4 | \
	 1ULL << VIRTIO_NET_F_HOST_TSO6 | 1ULL << VIRTIO_NET_F_HOST_ECN)

struct net_stats {
	uint64_t tx_packets, tx_bytes, rx_packets, rx_bytes;
	uint64_t tx_err[XVB_NET_TX_NERR];	/* by verdict; [0] unused */
	uint64_t tx_tap_err;		/* the tap refused a checked frame */
	uint64_t rx_bad_buf;		/* receive chains too small for the header */
	uint64_t rx_dropped;		/* packets no posted buffers could take */
	uint64_t rx_waits;		/* a packet waited for buffers */
	uint64_t link_changes;
};

struct net {
	struct xvb_model_base m;	/* log, loop, name */
	char ifname[IFNAMSIZ];
	uint8_t mac[6];
	bool have_mac, offload, mrg;
	bool offload_ok;		/* the tap took TUNSETOFFLOAD */
	bool created;			/* we made the tap (it goes with us) */
	int tap, nl;			/* tap queue; rtnetlink, link changes */
	int ifindex;
	bool link_up;
	bool tap_watched, tap_on;
	bool tap_gone;			/* read failed for good: interface deleted */
	struct xvb_evdefer rx_again;	/* receive goes on next round (it yielded) */
	struct xvb_vdev *vdev;		/* set between activate and reset */
	uint64_t features;		/* negotiated */
	uint8_t *pkt;			/* a packet read from the tap: header, frame */
	size_t pkt_len;			/* 0: none waits */
	bool waiting;			/* pkt waits for buffers (counted once) */
	struct xvb_req *held;		/* receive chains taken for pkt */
	unsigned int nheld;
	size_t held_bytes;
	struct net_stats st;
};

/* ---- the transmit header ------------------------------------------------ */

static const char *const tx_err_names[XVB_NET_TX_NERR] = {
	[XVB_NET_TX_OK] = "tx_ok",
	[XVB_NET_TX_RUNT] = "tx_runt",
	[XVB_NET_TX_TOO_BIG] = "tx_too_big",
	[XVB_NET_TX_BAD_FLAGS] = "tx_bad_flags",
	[XVB_NET_TX_BAD_GSO] = "tx_bad_gso",
	[XVB_NET_TX_BAD_HDR_LEN] = "tx_bad_hdr_len",
	[XVB_NET_TX_BAD_CSUM] = "tx_bad_csum",
};

const char *xvb_net_tx_err_name(enum xvb_net_tx_err e)
{
	return (unsigned int)e < XVB_NET_TX_NERR ? tx_err_names[e] : "tx_unknown";
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/*
 * virtio 1.2, 5.1.6.2: what a driver may send.  Only NEEDS_CSUM may be set
 * (DATA_VALID and RSC_INFO are the device's), and only with VIRTIO_NET_F_CSUM;
 * a GSO type needs its HOST_* feature, NEEDS_CSUM and a segment size; UFO
 * and USO are never offered.  Offsets are checked against the frame as the
 * chain's lengths give it, which the driver cannot change any more.
 */
enum xvb_net_tx_err xvb_net_tx_check(const uint8_t hdr[XVB_NET_HDR_LEN], size_t frame_len,
				     uint64_t features)
{
	uint8_t flags = hdr[0], gso = hdr[1], type = gso & ~VIRTIO_NET_HDR_GSO_ECN;
	uint32_t hdr_len = rd16(hdr + 2), gso_size = rd16(hdr + 4);
	uint32_t csum_start = rd16(hdr + 6), csum_offset = rd16(hdr + 8);
	bool csum = flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;
	unsigned int bit;

	if (frame_len < NET_ETH_HLEN)
		return XVB_NET_TX_RUNT;
	if (frame_len > XVB_NET_FRAME_MAX)
		return XVB_NET_TX_TOO_BIG;
	if ((flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) ||
	    (csum && !(features & (1ULL << VIRTIO_NET_F_CSUM))))
		return XVB_NET_TX_BAD_FLAGS;
	if (type == VIRTIO_NET_HDR_GSO_NONE) {
		if (gso & VIRTIO_NET_HDR_GSO_ECN)
			return XVB_NET_TX_BAD_GSO;
	} else {
		if (type == VIRTIO_NET_HDR_GSO_TCPV4)
			bit = VIRTIO_NET_F_HOST_TSO4;
		else if (type == VIRTIO_NET_HDR_GSO_TCPV6)
			bit = VIRTIO_NET_F_HOST_TSO6;
		else
			return XVB_NET_TX_BAD_GSO;
		if (!(features & (1ULL << bit)) || !csum || !gso_size ||
		    ((gso & VIRTIO_NET_HDR_GSO_ECN) &&
		     !(features & (1ULL << VIRTIO_NET_F_HOST_ECN))))
			return XVB_NET_TX_BAD_GSO;
	}
	if (hdr_len > frame_len)
		return XVB_NET_TX_BAD_HDR_LEN;
	if (csum && csum_start + csum_offset + 2 > frame_len)
		return XVB_NET_TX_BAD_CSUM;
	return XVB_NET_TX_OK;
}

/* ---- parameters ---------------------------------------------------------- */

/* "52:54:00:12:34:56": six hex pairs; a multicast address is refused. */
static int parse_mac(const char *v, uint8_t mac[6])
{
	unsigned int b[6], i;
	char end;

	if (!v || strlen(v) != 17 ||
	    sscanf(v, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &end) != 6)
		return -EINVAL;
	for (i = 0; i < 6; i++)
		if (v[i * 3] == '+' || v[i * 3] == '-' || v[i * 3] == ' ')
			return -EINVAL;
	if (b[0] & 1)
		return -EINVAL;
	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}

static int net_param(void *arg, const char *key, const char *val)
{
	struct net *n = arg;
	int err = 0;

	if (!strcmp(key, "tap")) {
		if (!val || !*val || strlen(val) >= IFNAMSIZ || strchr(val, '/') ||
		    strchr(val, ' ') || !strcmp(val, ".") || !strcmp(val, ".."))
			goto bad;
		snprintf(n->ifname, sizeof(n->ifname), "%s", val);
	} else if (!strcmp(key, "mac")) {
		err = parse_mac(val, n->mac);
		n->have_mac = !err;
	} else if (!strcmp(key, "offload")) {
		err = xvmsg_param_bool(val, &n->offload);
	} else if (!strcmp(key, "mrg-rxbuf")) {
		err = xvmsg_param_bool(val, &n->mrg);
	} else {
		return xvb_param_unknown(&n->m, key, NULL);
	}
	if (!err)
		return 0;
bad:
	return xvb_param_bad(&n->m, key,
			     !strcmp(key, "tap") ? " (an interface name of 1..15 bytes)" :
			     !strcmp(key, "mac") ? " (XX:XX:XX:XX:XX:XX, not multicast)" : NULL);
}

/* ---- the tap and its link -------------------------------------------------- */

/* The interface's flags (SIOCGIFFLAGS), or with set, set IFF_UP. */
static int net_ifflags(const char *ifname, bool set_up, short *flags)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (s < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		err = -errno;
	} else if (set_up && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			err = -errno;
	}
	if (!err && flags)
		*flags = ifr.ifr_flags;
	close(s);
	return err;
}

static int net_open_tap(struct net *n)
{
	struct ifreq ifr;
	int hdr = XVB_NET_HDR_LEN, le = 1, err;
	bool existed = if_nametoindex(n->ifname) != 0;
	short flags = 0;

	n->tap = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (n->tap < 0) {
		err = -errno;
		xvb_model_err(&n->m, "tap: cannot open /dev/net/tun: %s", strerror(-err));
		return err;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", n->ifname);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(n->tap, TUNSETIFF, &ifr) < 0) {
		err = -errno;
		xvb_model_err(&n->m, "tap: cannot %s %s: %s",
			      existed ? "attach to" : "create", n->ifname, strerror(-err));
		return err;
	}
	n->created = !existed;
	if (ioctl(n->tap, TUNSETVNETHDRSZ, &hdr) < 0) {
		err = -errno;
		xvb_model_err(&n->m, "tap: TUNSETVNETHDRSZ: %s", strerror(-err));
		return err;
	}
	/* VERSION_1 headers are little-endian: native here, else ask the tap. */
	if (ioctl(n->tap, TUNSETVNETLE, &le) < 0 && BYTE_ORDER != LITTLE_ENDIAN) {
		err = -errno;
		xvb_model_err(&n->m, "tap: TUNSETVNETLE: %s", strerror(-err));
		return err;
	}
	if (n->offload) {
		n->offload_ok = ioctl(n->tap, TUNSETOFFLOAD, (unsigned long)NET_TUN_OFFLOADS) == 0;
		if (!n->offload_ok)
			xvb_model_info(&n->m, "tap refuses offloads (%s): offered none",
				       strerror(errno));
		ioctl(n->tap, TUNSETOFFLOAD, 0UL);
	}
	n->ifindex = (int)if_nametoindex(n->ifname);
	err = net_ifflags(n->ifname, n->created, &flags);
	if (err || !n->ifindex) {
		xvb_model_err(&n->m, "tap %s: %s", n->ifname,
			      err ? strerror(-err) : "no interface index");
		return err ? err : -ENODEV;
	}
	n->link_up = flags & IFF_UP;
	return 0;
}

static void net_tap_cb(void *arg, int fd, uint32_t events);
static void net_rx_again(void *arg);

/* Poll the tap exactly when a packet read from it could go somewhere. */
static void net_watch_tap(struct net *n)
{
	bool want = n->vdev && !n->pkt_len && !n->tap_gone;
	int err;

	if (!n->tap_watched) {
		if (!want)
			return;
		err = xvb_evloop_add(n->m.loop, n->tap, EPOLLIN, net_tap_cb, n);
		if (err) {
			xvb_model_warn(&n->m, "tap cannot be polled: %s", strerror(-err));
			return;
		}
		n->tap_watched = n->tap_on = true;
	} else if (want != n->tap_on && !xvb_evloop_mod(n->m.loop, n->tap, want ? EPOLLIN : 0)) {
		n->tap_on = want;
	}
}

static void net_set_link(struct net *n, bool up)
{
	up &= !n->tap_gone;
	if (up == n->link_up)
		return;
	n->link_up = up;
	n->st.link_changes++;
	xvb_model_info(&n->m, "link %s", up ? "up" : "down");
	if (n->vdev)
		xvb_config_changed(n->vdev);
}

/* rtnetlink: RTM_NEWLINK / RTM_DELLINK of our interface. */
static void net_nl_cb(void *arg, int fd, uint32_t events)
{
	struct net *n = arg;
	char buf[8192] __attribute__((aligned(4)));
	ssize_t len;

	while ((len = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		struct nlmsghdr *h;
		size_t rest = (size_t)len;

		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, rest); h = NLMSG_NEXT(h, rest)) {
			const struct ifinfomsg *ifi = NLMSG_DATA(h);

			if ((h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK) ||
			    h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)) || ifi->ifi_index != n->ifindex)
				continue;
			net_set_link(n, h->nlmsg_type == RTM_NEWLINK && (ifi->ifi_flags & IFF_UP));
		}
	}
	if (len < 0 && errno == ENOBUFS) {	/* missed events: ask the interface */
		short flags;

		if (!net_ifflags(n->ifname, false, &flags))
			net_set_link(n, flags & IFF_UP);
	}
}

static int net_open_netlink(struct net *n)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
	int err;

	n->nl = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (n->nl < 0 || bind(n->nl, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		xvb_model_err(&n->m, "rtnetlink: %s", strerror(-err));
		return err;
	}
	err = xvb_evloop_add(n->m.loop, n->nl, EPOLLIN, net_nl_cb, n);
	if (err) {
		xvb_model_err(&n->m, "rtnetlink cannot be polled: %s", strerror(-err));
		close(n->nl);
		n->nl = -1;
	}
	return err;
}

/* ---- model ops ------------------------------------------------------------- */

static void net_destroy(void *priv)
{
	struct net *n = priv;

	if (!n)
		return;
	if (n->m.loop)
		xvb_evloop_cancel(n->m.loop, &n->rx_again);
	if (n->tap_watched)
		xvb_evloop_del(n->m.loop, n->tap);
	xvb_evloop_del_close(n->m.loop, &n->nl);
	if (n->tap >= 0)
		close(n->tap);
	free(n->held);
	free(n->pkt);
	free(n);
}

static int net_create(const char *params, const struct xvb_model_env *env, void **priv)
{
	struct net *n = calloc(1, sizeof(*n));
	int err;

	if (!n)
		return -ENOMEM;
	n->tap = n->nl = -1;
	n->offload = n->mrg = true;
	n->rx_again.cb = net_rx_again;
	n->rx_again.arg = n;
	err = xvb_model_start(&n->m, env, "net", params, net_param, n);
	if (err)
		goto fail;
	err = -EINVAL;
	if (!n->ifname[0]) {
		xvb_model_err(&n->m, "missing parameter 'tap'");
		goto fail;
	}
	if (!n->m.loop) {
		xvb_model_err(&n->m, "no event loop");
		goto fail;
	}
	err = -ENOMEM;
	n->pkt = malloc(NET_PKT_BUF);
	n->held = calloc(NET_RX_HOLD, sizeof(*n->held));
	if (!n->pkt || !n->held)
		goto fail;
	err = net_open_tap(n);
	if (err)
		goto fail;
	err = net_open_netlink(n);
	if (err)
		goto fail;
	xvb_model_info(&n->m, "tap %s (%s), link %s, offloads %s", n->ifname,
		       n->created ? "created" : "attached", n->link_up ? "up" : "down",
		       n->offload_ok ? "offered" : "off");
	*priv = n;
	return 0;
fail:
	net_destroy(n);
	return err;
}

static uint64_t net_features(void *priv)
{
	struct net *n = priv;
	uint64_t f = 1ULL << VIRTIO_NET_F_STATUS;

	if (n->mrg)
		f |= 1ULL << VIRTIO_NET_F_MRG_RXBUF;
	if (n->have_mac)
		f |= 1ULL << VIRTIO_NET_F_MAC;
	if (n->offload_ok)
		f |= NET_OFFLOAD_FEATURES;
	return f;
}

static void net_get_config(void *priv, uint8_t *cfg)
{
	struct net *n = priv;
	uint16_t status = htole16(n->link_up ? VIRTIO_NET_S_LINK_UP : 0);
	uint16_t pairs = htole16(1);

	memset(cfg, 0, NET_CONFIG_SIZE);
	if (n->have_mac)
		memcpy(cfg, n->mac, 6);
	memcpy(cfg + 6, &status, 2);
	memcpy(cfg + 8, &pairs, 2);
}

/* What the tap may hand us: what the driver takes (virtio 1.2, 5.1.3.1:
 * the TSO bits need GUEST_CSUM, ECN needs one of them). */
static unsigned long net_tun_offloads(uint64_t f)
{
	unsigned long o = 0;

	if (!(f & (1ULL << VIRTIO_NET_F_GUEST_CSUM)))
		return 0;
	o |= TUN_F_CSUM;
	if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO4))
		o |= TUN_F_TSO4;
	if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO6))
		o |= TUN_F_TSO6;
	if ((o & (TUN_F_TSO4 | TUN_F_TSO6)) && (f & (1ULL << VIRTIO_NET_F_GUEST_ECN)))
		o |= TUN_F_TSO_ECN;
	return o;
}

static int net_activate(void *priv, struct xvb_vdev *vdev, uint64_t features)
{
	struct net *n = priv;
	unsigned long off = n->offload_ok ? net_tun_offloads(features) : 0;

	if (off && ioctl(n->tap, TUNSETOFFLOAD, off) < 0) {
		int err = -errno;

		xvb_model_err(&n->m, "tap: TUNSETOFFLOAD %#lx: %s", off, strerror(-err));
		return err;
	}
	n->features = features;
	n->vdev = vdev;
	net_watch_tap(n);
	return 0;
}

static void net_reset(void *priv)
{
	struct net *n = priv;

	/* The chains held go with the queue; a packet read for the old
	 * driver (its offloads) is not given to the next one. */
	n->nheld = 0;
	n->held_bytes = 0;
	if (n->pkt_len)
		n->st.rx_dropped++;
	n->pkt_len = 0;
	n->waiting = false;
	n->vdev = NULL;
	n->features = 0;
	xvb_evloop_cancel(n->m.loop, &n->rx_again);
	if (n->offload_ok)
		ioctl(n->tap, TUNSETOFFLOAD, 0UL);
	net_watch_tap(n);
}

/*
 * Give the waiting packet to the driver.  1: done with it (delivered or
 * dropped), 0: it waits for buffers, -EAGAIN: it waits for the next round
 * (*refused, chains refused this call, reached NET_RX_REFUSED), other <0:
 * the device is broken.  The tap's callback has no chain budget of the
 * core's: without that bound a driver refilling the queue with chains the
 * core or we refuse kept the loop here as long as it liked.
 */
static int net_rx_deliver(struct net *n, unsigned int *refused, bool *pushed)
{
	bool mrg = n->features & (1ULL << VIRTIO_NET_F_MRG_RXBUF);
	size_t need = n->pkt_len, off = 0, k;
	unsigned int used = 0, i;
	uint32_t lens[NET_RX_HOLD];
	uint16_t nbufs;
	int r;

	while (!(n->nheld && (!mrg || n->held_bytes >= need)) && n->nheld < NET_RX_HOLD) {
		struct xvb_req *req = &n->held[n->nheld];

		if (*refused >= NET_RX_REFUSED)
			return -EAGAIN;
		r = xvb_pop(n->vdev, NET_RXQ, req);
		if (r == -EINVAL) {	/* the core completed that chain */
			++*refused;
			*pushed = true;	/* to be published */
			continue;
		}
		if (r < 0)
			return r;
		if (r == 0) {
			if (!n->waiting)
				n->st.rx_waits++;
			n->waiting = true;
			return 0;
		}
		if (req->nout || req->in_len < XVB_NET_HDR_LEN) {
			n->st.rx_bad_buf++;
			xvb_push(n->vdev, req, 0);
			*pushed = true;
			++*refused;
			continue;
		}
		n->held_bytes += req->in_len;
		n->nheld++;
	}
	n->waiting = false;
	if (n->held_bytes < need || (!mrg && n->held[0].in_len < need)) {
		n->st.rx_dropped++;	/* the buffers stay held for the next one */
		return 1;
	}
	for (k = 0; k < need; used++)
		k += n->held[used].in_len;
	nbufs = htole16((uint16_t)used);
	memcpy(n->pkt + 10, &nbufs, sizeof(nbufs));	/* num_buffers */
	for (i = 0; i < used; i++) {
		struct xvb_req *req = &n->held[i];

		k = need - off < req->in_len ? need - off : req->in_len;
		lens[i] = (uint32_t)xvb_buf_to_iov(req->in, req->nin, 0, n->pkt + off, k);
		off += k;
	}
	for (i = 0; i < used; i++) {
		xvb_push(n->vdev, &n->held[i], lens[i]);
		n->held_bytes -= n->held[i].in_len;
	}
	n->nheld -= used;
	if (n->nheld)
		memmove(n->held, n->held + used, n->nheld * sizeof(*n->held));
	*pushed = true;
	n->st.rx_packets++;
	n->st.rx_bytes += need - XVB_NET_HDR_LEN;
	return 1;
}

/*
 * The tap's header against what the driver negotiated (virtio 1.2, 5.1.6.4.1):
 * without GUEST_CSUM flags must be zero, a GSO type needs its GUEST_ feature.
 * TUNSETOFFLOAD keeps the tap to them, but a frame queued for a driver
 * before a reset may carry the old one's.  False: drop it.
 */
static bool net_rx_hdr_ok(struct net *n)
{
	uint8_t *h = n->pkt, type = h[1] & ~VIRTIO_NET_HDR_GSO_ECN;
	uint64_t f = n->features;

	if (!(f & (1ULL << VIRTIO_NET_F_GUEST_CSUM))) {
		if (h[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			return false;
		h[0] = 0;	/* DATA_VALID is a GUEST_CSUM driver's */
	}
	if (type == VIRTIO_NET_HDR_GSO_NONE)
		return true;
	if ((h[1] & VIRTIO_NET_HDR_GSO_ECN) && !(f & (1ULL << VIRTIO_NET_F_GUEST_ECN)))
		return false;
	if (type == VIRTIO_NET_HDR_GSO_TCPV4)
		return f & (1ULL << VIRTIO_NET_F_GUEST_TSO4);
	if (type == VIRTIO_NET_HDR_GSO_TCPV6)
		return f & (1ULL << VIRTIO_NET_F_GUEST_TSO6);
	return false;
}

/*
 * The tap's read fails with something other than EAGAIN/EINTR (EBADFD
 * once its interface is deleted, and epoll then reports it readable for
 * ever; any other such error is taken as lasting too): stop polling it, or
 * every round of the loop would read and fail again.  The link goes down for the
 * driver; frames it sends are dropped and counted (tx_tap_err).  A new
 * interface of the same name is not picked up: restart the device.
 */
static void net_tap_gone(struct net *n, int err)
{
	if (n->tap_gone)
		return;
	n->tap_gone = true;
	xvb_model_warn(&n->m, "tap read: %s: no more receive on this device", strerror(err));
	if (n->tap_watched)
		xvb_evloop_del(n->m.loop, n->tap);
	n->tap_watched = n->tap_on = false;
	net_set_link(n, false);
}

/* Move packets from the tap to the driver while it has buffers. */
static void net_rx_run(struct net *n)
{
	unsigned int budget = NET_RX_BATCH, refused = 0;
	bool pushed = false;
	ssize_t len;
	int r;

	while (n->vdev) {
		if (!n->pkt_len) {
			if (!budget--)
				break;
			len = read(n->tap, n->pkt, NET_PKT_BUF);
			if (len < 0) {
				if (errno != EAGAIN && errno != EINTR)
					net_tap_gone(n, errno);
				break;
			}
			if (len < XVB_NET_HDR_LEN + NET_ETH_HLEN)
				continue;
			if (!net_rx_hdr_ok(n)) {
				n->st.rx_dropped++;
				continue;
			}
			n->pkt_len = (size_t)len;
		}
		r = net_rx_deliver(n, &refused, &pushed);
		if (r == -EAGAIN)	/* after the others' fds, without a kick */
			xvb_evloop_defer(n->m.loop, &n->rx_again);
		if (r <= 0)
			break;
		n->pkt_len = 0;
	}
	if (pushed && n->vdev)
		xvb_flush(n->vdev, NET_RXQ);
	net_watch_tap(n);
}

static void net_tap_cb(void *arg, int fd, uint32_t events)
{
	net_rx_run(arg);
}

static void net_rx_again(void *arg)
{
	net_rx_run(arg);
}

/* Copy the entries of src covering bytes from skip on into dst. */
static unsigned int iov_from(const struct iovec *src, unsigned int n, size_t skip,
			     struct iovec *dst)
{
	unsigned int i, k = 0;

	for (i = 0; i < n; i++) {
		if (skip >= src[i].iov_len) {
			skip -= src[i].iov_len;
			continue;
		}
		dst[k].iov_base = (char *)src[i].iov_base + skip;
		dst[k++].iov_len = src[i].iov_len - skip;
		skip = 0;
	}
	return k;
}

static void net_tx_one(struct net *n, const struct xvb_req *req)
{
	struct iovec iov[1 + XVB_REQ_MAX_IOV];
	uint8_t hdr[XVB_NET_HDR_LEN];
	enum xvb_net_tx_err e = XVB_NET_TX_RUNT;
	size_t frame_len = 0;
	unsigned int k;
	ssize_t w;

	/* The header is copied once and the tap gets the copy we checked. */
	if (xvb_iov_to_buf(req->out, req->nout, 0, hdr, sizeof(hdr)) == sizeof(hdr)) {
		frame_len = req->out_len - sizeof(hdr);
		e = xvb_net_tx_check(hdr, frame_len, n->features);
	}
	if (e != XVB_NET_TX_OK) {
		if (++n->st.tx_err[e] <= 8)
			xvb_model_warn(&n->m, "transmit refused (%s, %zu bytes)%s",
				       xvb_net_tx_err_name(e), frame_len, n->st.tx_err[e] == 8 ?
				       "; more are counted, not logged" : "");
		return;
	}
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	k = iov_from(req->out, req->nout, sizeof(hdr), iov + 1);
	do
		w = writev(n->tap, iov, (int)k + 1);
	while (w < 0 && errno == EINTR);
	if (w < 0) {
		if (++n->st.tx_tap_err <= 8)
			xvb_model_warn(&n->m, "tap write (%zu bytes): %s", frame_len,
				       strerror(errno));
		return;
	}
	n->st.tx_packets++;
	n->st.tx_bytes += frame_len;
}

static void net_tx_run(struct net *n)
{
	struct xvb_req req;
	int r;

	while ((r = xvb_pop(n->vdev, NET_TXQ, &req)) != 0) {
		if (r == -EINVAL)
			continue;
		if (r < 0)
			break;
		net_tx_one(n, &req);
		xvb_push(n->vdev, &req, 0);
	}
	xvb_flush(n->vdev, NET_TXQ);
}

static void net_notify(void *priv, unsigned int q)
{
	struct net *n = priv;

	if (!n->vdev)
		return;
	if (q == NET_RXQ)
		net_rx_run(n);
	else if (q == NET_TXQ)
		net_tx_run(n);
}

static void net_stats(void *priv, char *buf, size_t len)
{
	const struct net *n = priv;
	const struct net_stats *s = &n->st;
	size_t o;
	int i;

	o = (size_t)snprintf(buf, len, " tx_packets=%llu tx_bytes=%llu rx_packets=%llu rx_bytes=%llu",
			     (unsigned long long)s->tx_packets, (unsigned long long)s->tx_bytes,
			     (unsigned long long)s->rx_packets, (unsigned long long)s->rx_bytes);
	for (i = XVB_NET_TX_OK + 1; i < XVB_NET_TX_NERR && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, " %s=%llu", tx_err_names[i],
				      (unsigned long long)s->tx_err[i]);
	if (o < len)
		snprintf(buf + o, len - o,
			 " tx_tap_err=%llu rx_bad_buf=%llu rx_dropped=%llu rx_waits=%llu link_changes=%llu",
			 (unsigned long long)s->tx_tap_err, (unsigned long long)s->rx_bad_buf,
			 (unsigned long long)s->rx_dropped, (unsigned long long)s->rx_waits,
			 (unsigned long long)s->link_changes);
}

const struct xvb_model_ops xvb_net_ops = {
	.type = "net",
	.device_id = VIRTIO_ID_NET,
	.num_queues = 2,
	.queue_size = NET_QUEUE_SIZE,
	.config_size = NET_CONFIG_SIZE,
	.create = net_create,
	.destroy = net_destroy,
	.features = net_features,
	.get_config = net_get_config,
	.activate = net_activate,
	.reset = net_reset,
	.notify = net_notify,
	.stats = net_stats,
};
