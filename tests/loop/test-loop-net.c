// SPDX-License-Identifier: MIT
/*
 * Integration: virtio-net over the loopback bus.  The backend serves two
 * exports, each on a tap interface it creates: net0 with every feature,
 * net1 without offloads or mergeable buffers.  The test plays the rest of
 * the driver domain's network with packet sockets bound to the taps:
 * what the guest transmits arrives there, what the test sends there
 * reaches the guest.  Frames carry an ethertype of their own (0x88b5, local
 * experimental), so whatever the host's stack sends on a new interface is
 * ignored on both sides.
 *
 * Two more guests talk through a bridge with two persistent taps, as in a
 * driver domain (configs/xvmsg-net-bridge.sh).
 *
 * Needs root and /dev/net/tun; without them it fails, saying why.
 */
#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "loop-fixture.h"

#define ETH_TEST	0x88b5
#define MAC0		"52:54:00:12:34:56"

struct fx {
	struct loop_fx lf;
	char tap0[IFNAMSIZ], tap1[IFNAMSIZ];
	char br[IFNAMSIZ];	/* the bridge test's: made here, with tap0 and tap1 in it */
	struct xvd_domain *d2;	/* its second guest */
	struct xvd_dev *dev2;
	int pk;			/* packet socket on the device's tap */
	int pkv;		/* the same with PACKET_VNET_HDR */
};

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t host_mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };

/* A fixture and the names of its two taps (xvt<pid><s0>, ...<s1>); NULL
 * without memory or without /dev/net/tun (said why). */
static struct fx *fx_new(void **state, char s0, char s1)
{
	struct fx *f;

	*state = NULL;
	if (access("/dev/net/tun", R_OK | W_OK)) {
		fprintf(stderr, "test-loop-net needs /dev/net/tun (root, the tun module): %s\n",
			strerror(errno));
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	*state = f;
	f->pk = f->pkv = -1;
	snprintf(f->tap0, sizeof(f->tap0), "xvt%u%c", (unsigned int)getpid() % 100000, s0);
	snprintf(f->tap1, sizeof(f->tap1), "xvt%u%c", (unsigned int)getpid() % 100000, s1);
	return f;
}

static int setup(void **state)
{
	struct loop_fx_opts o = {
		.args = { "--export", NULL, "--export", NULL, "--full" },
		.open_domain = 1,
		.domain = { .log_level = XVD_LOG_WARN, .ram_pages = 32768 },
	};
	struct fx *f = fx_new(state, 'a', 'b');
	char e0[128], e1[128];

	if (!f)
		return -1;
	snprintf(e0, sizeof(e0), "net0:net:tap=%s,mac=" MAC0, f->tap0);
	snprintf(e1, sizeof(e1), "net1:net:tap=%s,offload=off,mrg-rxbuf=off", f->tap1);
	o.args[1] = e0;
	o.args[3] = e1;
	SETUP_TRY(backend_setup(&f->lf.b));
	SETUP_TRY(loop_fx_start(&f->lf, &o));
	return 0;
fail:
	loop_fx_teardown(state);
	return -1;
}

static void bridge_remove(struct fx *f);

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f && f->dev2)
		xvd_dev_close(f->dev2);
	if (f && f->d2)
		xvd_domain_close(f->d2);
	if (f && f->br[0]) {
		loop_fx_stop(&f->lf);	/* the backend lets go of the taps */
		bridge_remove(f);
	}

	if (f && f->pk >= 0)
		close(f->pk);
	if (f && f->pkv >= 0)
		close(f->pkv);
	return loop_fx_teardown(state);
}

/* A packet socket on ifname: for our ethertype, or with vnet for every
 * frame, each behind a virtio_net_hdr.  Made with protocol 0, which
 * receives nothing until bind() names the protocol and the interface: one
 * made with the protocol takes that protocol from every interface until
 * then, such as the frames of a test running at the same time. */
static int packet_socket(const char *ifname, bool vnet)
{
	uint16_t proto = htons(vnet ? ETH_P_ALL : ETH_TEST);
	struct sockaddr_ll sa = { .sll_family = AF_PACKET, .sll_protocol = proto };
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0), one = 1;
	int big = 64 << 20;

	assert_true(fd >= 0);
	sa.sll_ifindex = (int)if_nametoindex(ifname);
	assert_true(sa.sll_ifindex > 0);
	if (vnet)
		assert_int_equal(setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void set_up(const char *ifname, bool up)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(s >= 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags = (short)(up ? ifr.ifr_flags | IFF_UP : ifr.ifr_flags & ~IFF_UP);
	assert_int_equal(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
	close(s);
}

static void set_mtu(const char *ifname, int mtu)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(s >= 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_mtu = mtu;
	assert_int_equal(ioctl(s, SIOCSIFMTU, &ifr), 0);
	close(s);
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	while (n--)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

/* Frame i: Ethernet header, le32 sequence number, then bytes from seed. */
static size_t make_frame(uint8_t *f, uint32_t i, size_t len, const uint8_t *dst,
			 const uint8_t *src)
{
	size_t k;

	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = ETH_TEST >> 8;
	f[13] = ETH_TEST & 0xff;
	memcpy(f + 14, &i, 4);
	for (k = 18; k < len; k++)
		f[k] = (uint8_t)(i * 31 + k * 7 + (k >> 8));
	return len;
}

static size_t frame_len_of(uint32_t i)
{
	return 60 + (i * 977) % (1514 - 60 + 1);
}

/* Receive a frame the tap received (not one sent on it) with a timeout:
 * length, or -1. */
static ssize_t host_recv(int fd, void *buf, size_t len, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct sockaddr_ll from;
	socklen_t fl;
	ssize_t n;

	do {
		if (poll(&p, 1, timeout_ms) != 1)
			return -1;
		fl = sizeof(from);
		n = recvfrom(fd, buf, len, MSG_TRUNC, (struct sockaddr *)&from, &fl);
	} while (n >= 0 && from.sll_pkttype == PACKET_OUTGOING);
	return n;
}

/* The guest's next frame of our ethertype: length, or the error. */
static int guest_recv(struct xvd_dev *dev, struct xvd_net_hdr *h, uint8_t *buf, size_t len,
		      int timeout_ms)
{
	for (;;) {
		int r = xvd_net_recv(dev, h, buf, len, timeout_ms);

		if (r < 0 || (r >= 14 && buf[12] == ETH_TEST >> 8 && buf[13] == (ETH_TEST & 0xff)))
			return r;
	}
}

static struct xvd_dev *open_net(struct fx *f, const char *exp, int mode, uint64_t feat,
				unsigned int rx, bool vnet)
{
	struct xvd_dev_opts o = { .export_name = exp, .mode = mode, .features = feat };
	const char *tap = !strcmp(exp, "net0") ? f->tap0 : f->tap1;

	assert_int_equal(xvd_net_open(f->lf.d, &o, rx, &f->lf.dev), 0);
	f->pk = packet_socket(tap, false);
	if (vnet)
		f->pkv = packet_socket(tap, true);
	return f->lf.dev;
}

#define NFRAMES	4000	/* about 3 MiB each way */
#define WINDOW	200	/* below the tap's queue of 500 */

static void frames_both_ways(struct fx *f, struct xvd_dev *dev)
{
	static uint8_t buf[70000], frame[2048];
	uint64_t h_sent = 0xcbf29ce484222325ULL, h_got = h_sent;
	struct xvd_net_hdr h;
	size_t bytes = 0;
	uint32_t i, got;

	/* guest -> host */
	for (i = 0; i < NFRAMES; i++) {
		size_t n = make_frame(frame, i, frame_len_of(i), host_mac, guest_mac);

		h_sent = fnv(h_sent, frame, n);
		bytes += n;
		assert_int_equal(xvd_net_send(dev, NULL, frame, n, i % 16 ? XVD_NO_KICK : 0), 0);
	}
	assert_int_equal(xvd_net_tx_wait(dev, -1), 0);
	for (got = 0; got < NFRAMES; got++) {
		ssize_t n = host_recv(f->pk, buf, sizeof(buf), 2000);
		uint32_t seq;

		assert_true(n >= 18);
		memcpy(&seq, buf + 14, 4);
		assert_int_equal(seq, got);
		assert_int_equal((size_t)n, frame_len_of(got));
		h_got = fnv(h_got, buf, (size_t)n);
	}
	assert_true(h_got == h_sent);
	fprintf(stderr, "guest -> tap: %u frames, %zu bytes, checksums agree\n", NFRAMES, bytes);

	/* host -> guest, in windows the tap's queue holds */
	h_sent = h_got = 0xcbf29ce484222325ULL;
	for (i = 0; i < NFRAMES; i += WINDOW) {
		uint32_t j;

		for (j = i; j < i + WINDOW && j < NFRAMES; j++) {
			size_t n = make_frame(frame, j, frame_len_of(j), guest_mac, host_mac);

			h_sent = fnv(h_sent, frame, n);
			assert_int_equal(send(f->pk, frame, n, 0), (ssize_t)n);
		}
		for (j = i; j < i + WINDOW && j < NFRAMES; j++) {
			int n = guest_recv(dev, &h, buf, sizeof(buf), 2000);
			uint32_t seq;

			assert_true(n >= 18);
			memcpy(&seq, buf + 14, 4);
			assert_int_equal(seq, j);
			assert_int_equal((size_t)n, frame_len_of(j));
			h_got = fnv(h_got, buf, (size_t)n);
		}
	}
	assert_true(h_got == h_sent);
	fprintf(stderr, "tap -> guest: %u frames, checksums agree\n", NFRAMES);
}

static void net_in_mode(void **state, int mode)
{
	struct fx *f = *state;
	struct xvd_dev *dev = open_net(f, "net0", mode, 0, 128, false);
	struct xvd_net_info ni;

	assert_int_equal(xvd_net_info(dev, &ni), 0);
	assert_true(ni.have_mac);
	assert_memory_equal(ni.mac, guest_mac, 6);
	assert_true(ni.link_up);
	assert_true(ni.mrg_rxbuf);
	assert_int_equal(ni.rx_posted, 128);
	frames_both_ways(f, dev);
}

static void test_frames_pool(void **state) { net_in_mode(state, XVD_MODE_POOL); }
static void test_frames_grant(void **state) { net_in_mode(state, XVD_MODE_GRANT); }
static void test_frames_full(void **state) { net_in_mode(state, XVD_MODE_FULL); }

/* Without MRG_RXBUF a 64 KiB frame fits no buffer: it is dropped and
 * counted, the buffers stay posted and the next frame arrives. */
static void too_big_for_buffers(struct fx *f, struct xvd_dev *dev)
{
	static uint8_t buf[70000], frame[66000];
	struct xvd_net_info ni;
	char name[32];
	uint32_t seq;
	size_t n;
	int r;

	set_mtu(f->tap1, 65521);
	n = make_frame(frame, 1, 65000, guest_mac, host_mac);
	assert_int_equal(send(f->pk, frame, n, 0), (ssize_t)n);
	n = make_frame(frame, 2, 100, guest_mac, host_mac);
	assert_int_equal(send(f->pk, frame, n, 0), (ssize_t)n);
	r = guest_recv(dev, NULL, buf, sizeof(buf), 2000);
	assert_int_equal(r, 100);
	memcpy(&seq, buf + 14, 4);
	assert_int_equal(seq, 2);
	snprintf(name, sizeof(name), "net0(dom%u)", xvd_domain_id(f->lf.d));	/* type, devid */
	assert_int_equal(backend_stat(&f->lf.b, name, "rx_dropped"), 1);
	assert_int_equal(xvd_net_info(dev, &ni), 0);
	assert_int_equal(ni.rx_posted, 128);
}

/* Without MRG_RXBUF and offloads: one buffer per packet, no MAC offered. */
static void test_frames_plain(void **state)
{
	struct fx *f = *state;
	struct xvd_dev *dev = open_net(f, "net1", XVD_MODE_POOL,
				       1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_HOST_TSO4,
				       128, false);
	struct xvd_net_info ni;

	assert_int_equal(xvd_net_info(dev, &ni), 0);
	assert_false(ni.have_mac);
	assert_false(ni.mrg_rxbuf);
	assert_false(ni.features & (1ULL << VIRTIO_NET_F_CSUM));
	assert_false(ni.features & (1ULL << VIRTIO_NET_F_HOST_TSO4));
	frames_both_ways(f, dev);
	too_big_for_buffers(f, dev);
}

/* No receive buffer posted: frames wait in the tap, then all arrive. */
static void test_backpressure(void **state)
{
	struct fx *f = *state;
	struct xvd_dev *dev = open_net(f, "net0", XVD_MODE_POOL, 0, 0, false);
	static uint8_t buf[70000], frame[2048];
	char name[32];
	uint32_t i;

	for (i = 0; i < 300; i++) {
		size_t n = make_frame(frame, i, frame_len_of(i), guest_mac, host_mac);

		assert_int_equal(send(f->pk, frame, n, 0), (ssize_t)n);
	}
	assert_int_equal(guest_recv(dev, NULL, buf, sizeof(buf), 300), -ETIMEDOUT);
	snprintf(name, sizeof(name), "net0(dom%u)", xvd_domain_id(f->lf.d));
	assert_int_equal(backend_stat(&f->lf.b, name, "rx_packets"), 0);
	assert_true(backend_stat(&f->lf.b, name, "rx_waits") >= 1);
	assert_int_equal(xvd_net_rx_post(dev, 64), 64);
	for (i = 0; i < 300; i++) {
		int n = guest_recv(dev, NULL, buf, sizeof(buf), 2000);
		uint32_t seq;

		assert_true(n >= 18);
		memcpy(&seq, buf + 14, 4);
		assert_int_equal(seq, i);
	}
	assert_int_equal(backend_stat(&f->lf.b, name, "rx_dropped"), 0);
	fprintf(stderr, "300 frames waited for buffers, all arrived in order\n");
}

/* Mergeable buffers: a 64 KiB frame that finds 10 buffers of 2 KiB takes
 * them and waits, completing none, until the guest posts the rest; then it
 * arrives whole in 33 buffers, nothing dropped. */
static void test_frame_waits_holding_buffers(void **state)
{
	struct fx *f = *state;
	struct xvd_dev *dev = open_net(f, "net0", XVD_MODE_POOL, 0, 10, false);
	static uint8_t buf[70000], frame[66000];
	struct xvd_net_hdr h;
	char name[32];
	size_t n;
	int r;

	set_mtu(f->tap0, 65521);
	n = make_frame(frame, 7, 65000, guest_mac, host_mac);
	assert_int_equal(send(f->pk, frame, n, 0), (ssize_t)n);
	snprintf(name, sizeof(name), "net0(dom%u)", xvd_domain_id(f->lf.d));
	/* Smaller frames the host's stack sends on the new interface may take
	 * a buffer or two first: wait until ours holds what is left. */
	for (int i = 0; i < 100 && backend_stat(&f->lf.b, name, "rx_waits") < 1; i++)
		usleep(10000);
	assert_true(backend_stat(&f->lf.b, name, "rx_waits") >= 1);
	r = guest_recv(dev, NULL, buf, sizeof(buf), 200);
	assert_int_equal(r, -ETIMEDOUT);
	assert_true(xvd_net_rx_post(dev, 64) > 0);
	r = guest_recv(dev, &h, buf, sizeof(buf), 2000);
	assert_int_equal(r, (int)n);
	assert_memory_equal(buf, frame, n);
	assert_int_equal(h.num_buffers, (n + XVD_NET_HDR_LEN + 2047) / 2048);
	assert_int_equal(backend_stat(&f->lf.b, name, "rx_dropped"), 0);
	fprintf(stderr, "a 64 KiB frame waited holding the buffers it found, then came in %u\n",
		h.num_buffers);
}

/* Wait for an EVENT_CONFIG, then read the link. */
static bool link_after_event(struct xvd_dev *dev)
{
	struct xvd_net_info ni;
	uint32_t st, gen;
	int i;

	for (i = 0; i < 200; i++) {
		xvd_dev_wait(dev, 10);
		if (xvd_dev_config_events(dev, &st, &gen) > 0)
			break;
	}
	assert_true(i < 200);
	assert_int_equal(xvd_net_info(dev, &ni), 0);
	return ni.link_up;
}

static void test_link_status(void **state)
{
	struct fx *f = *state;
	struct xvd_dev *dev = open_net(f, "net0", XVD_MODE_POOL, 0, 16, false);
	struct xvd_net_info ni;
	uint32_t st, gen;
	char name[32];

	assert_int_equal(xvd_net_info(dev, &ni), 0);
	assert_true(ni.link_up);
	xvd_dev_config_events(dev, &st, &gen);
	set_up(f->tap0, false);
	assert_false(link_after_event(dev));
	set_up(f->tap0, true);
	assert_true(link_after_event(dev));
	snprintf(name, sizeof(name), "net0(dom%u)", xvd_domain_id(f->lf.d));
	assert_int_equal(backend_stat(&f->lf.b, name, "link_changes"), 2);
}

/* Delete interface name (RTM_DELLINK), as `ip link del` does: 0 or -errno. */
static int link_del(const char *name)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
	} req = {
		.h = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_DELLINK,
		       .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK, .nlmsg_seq = 1 },
		.i = { .ifi_family = AF_UNSPEC, .ifi_index = (int)if_nametoindex(name) },
	};
	char buf[512] __attribute__((aligned(4)));
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), r = -EIO;
	ssize_t n;

	if (s < 0)
		return -errno;
	if (!req.i.ifi_index) {
		close(s);
		return -ENODEV;
	}
	if (send(s, &req, sizeof(req), 0) == (ssize_t)sizeof(req) &&
	    (n = recv(s, buf, sizeof(buf), 0)) >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
		struct nlmsghdr *h = (struct nlmsghdr *)buf;

		if (h->nlmsg_type == NLMSG_ERROR)
			r = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
	}
	close(s);
	return r;
}

/*
 * The tap's interface is deleted under a running device (`ip link del`):
 * its fd then reads EBADFD and polls readable for ever.  The backend stops
 * reading it (one warning, not one per loop round and a CPU spinning), the
 * driver sees the link go down, and what the guest sends is dropped and
 * counted, its buffers still returned.
 */
static void test_tap_deleted(void **state)
{
	struct fx *f = *state;
	struct xvd_dev_opts o = { .export_name = "net0", .mode = XVD_MODE_POOL };
	static uint8_t frame[128];
	uint32_t st, gen;
	char name[32];
	size_t n;

	assert_int_equal(xvd_net_open(f->lf.d, &o, 64, &f->lf.dev), 0);
	xvd_dev_config_events(f->lf.dev, &st, &gen);
	assert_int_equal(link_del(f->tap0), 0);
	assert_false(link_after_event(f->lf.dev));
	usleep(100 * 1000);
	assert_true(proc_cpu_over(f->lf.b.pid, 300, 1000000,
		    "backend with its tap gone") < 1000000);
	assert_int_equal(backend_log_count(&f->lf.b, "no more receive"), 1);
	n = make_frame(frame, 1, sizeof(frame), host_mac, guest_mac);
	assert_int_equal(xvd_net_send(f->lf.dev, NULL, frame, n, 0), 0);
	assert_int_equal(xvd_net_tx_wait(f->lf.dev, 2000), 0);
	snprintf(name, sizeof(name), "net0(dom%u)", xvd_domain_id(f->lf.d));
	assert_int_equal(backend_stat(&f->lf.b, name, "tx_tap_err"), 1);
}

/* A TCP/IPv4 frame of len bytes: headers as a GSO frame needs them. */
static size_t tcp4_frame(uint8_t *fr, size_t len, uint32_t seed, const uint8_t *dst,
			 const uint8_t *src)
{
	uint16_t tot = htons((uint16_t)(len - 14));
	size_t k;

	memset(fr, 0, 54);
	memcpy(fr, dst, 6);
	memcpy(fr + 6, src, 6);
	fr[12] = 0x08;				/* IPv4 */
	fr[14] = 0x45;
	memcpy(fr + 16, &tot, 2);
	fr[22] = 64;				/* ttl */
	fr[23] = 6;				/* TCP */
	fr[26] = 198, fr[27] = 18, fr[28] = 0, fr[29] = 1;	/* 198.18.0.1 -> .2 */
	fr[30] = 198, fr[31] = 18, fr[32] = 0, fr[33] = 2;
	fr[34] = 0x30, fr[35] = 0x39;		/* ports 12345 -> 9 */
	fr[37] = 9;
	memcpy(fr + 38, &seed, 4);
	fr[46] = 0x50;				/* data offset 5 */
	fr[47] = 0x18;				/* PSH ACK */
	fr[48] = 0xff, fr[49] = 0xff;		/* window */
	for (k = 54; k < len; k++)
		fr[k] = (uint8_t)(seed + k * 13);
	return len;
}

/* 64 KiB: TSO frames to the tap with the offloads negotiated, and frames
 * from it in mergeable buffers. */
static void test_64k_frames(void **state)
{
	struct fx *f = *state;
	uint64_t feat = 1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_GUEST_CSUM |
			1ULL << VIRTIO_NET_F_HOST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO4;
	struct xvd_dev *dev = open_net(f, "net0", XVD_MODE_POOL, feat, 128, true);
	static uint8_t fr[XVD_NET_FRAME_MAX], buf[XVD_NET_HDR_LEN + XVD_NET_FRAME_MAX + 64];
	struct xvd_net_hdr h = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
		.hdr_len = 54, .gso_size = 1448, .csum_start = 34, .csum_offset = 16,
	};
	struct virtio_net_hdr vh;
	size_t len = 14 + 65535 - 1;	/* IP total length below 64 KiB */
	struct xvd_net_info ni;
	uint64_t h_sent = 0xcbf29ce484222325ULL, h_got = h_sent;
	unsigned int i, n = 32;

	assert_int_equal(xvd_net_info(dev, &ni), 0);
	if ((ni.features & feat) != feat)
		fail_msg("the tap refused the offloads (features %#llx)",
			 (unsigned long long)ni.features);
	/* guest -> host: the tap takes each as one GSO packet */
	for (i = 0; i < n; i++) {
		tcp4_frame(fr, len, i, host_mac, guest_mac);
		h_sent = fnv(h_sent, fr, len);
		assert_int_equal(xvd_net_send(dev, &h, fr, len, 0), 0);
	}
	assert_int_equal(xvd_net_tx_wait(dev, -1), 0);
	for (i = 0; i < n; i++) {
		ssize_t r;

		for (;;) {
			r = host_recv(f->pkv, buf, sizeof(buf), 2000);
			assert_true(r > (ssize_t)sizeof(vh));
			if (buf[sizeof(vh) + 12] == 0x08 && buf[sizeof(vh) + 13] == 0 &&
			    buf[sizeof(vh) + 23] == 6)
				break;
		}
		memcpy(&vh, buf, sizeof(vh));
		assert_int_equal((size_t)r - sizeof(vh), len);
		assert_int_equal(vh.gso_type & 0x7f, VIRTIO_NET_HDR_GSO_TCPV4);
		h_got = fnv(h_got, buf + sizeof(vh), len);
	}
	assert_true(h_got == h_sent);
	/*
	 * host -> guest: 64 KiB frames through mergeable buffers.  The tap
	 * would cut a GSO frame sent on a packet socket into segments (it is
	 * "dodgy", and a tap is not GSO_ROBUST), so these are single frames
	 * of 64 KiB on a tap whose MTU allows them.
	 */
	set_mtu(f->tap0, 65521);
	h_sent = h_got = 0xcbf29ce484222325ULL;
	for (i = 0; i < n; i++) {
		size_t fl = make_frame(fr, i, 65000 + i, guest_mac, host_mac);
		int r;

		h_sent = fnv(h_sent, fr, fl);
		assert_int_equal(send(f->pk, fr, fl, 0), (ssize_t)fl);
		r = guest_recv(dev, &h, buf, sizeof(buf), 2000);
		assert_int_equal(r, (int)fl);
		assert_true(h.num_buffers >= (fl + XVD_NET_HDR_LEN + 2047) / 2048);
		h_got = fnv(h_got, buf, fl);
	}
	assert_true(h_got == h_sent);
	fprintf(stderr, "%u 64 KiB TSO frames to the tap, %u 64 KiB frames from it, "
		"checksums agree\n", n, n);
}

/* ---- two guests through a bridge of the driver domain ---- */

/* A persistent tap (it outlives our descriptor), or with persist false
 * the removal of one.  0 or -errno. */
static int tap_persist(const char *name, bool persist)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, persist ? 1 : 0) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int if_up(int s, const char *name)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -errno;
	ifr.ifr_flags |= IFF_UP;
	return ioctl(s, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
}

/* Bridge br with the persistent taps tap0 and tap1, all up.  No asserts
 * (a setup step): 0 or -errno. */
static int bridge_make(struct fx *f)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r;
	const char *taps[2] = { f->tap0, f->tap1 };
	struct ifreq ifr;

	if (s < 0)
		return -errno;
	r = ioctl(s, SIOCBRADDBR, f->br) < 0 ? -errno : 0;
	for (int i = 0; i < 2 && !r; i++) {
		r = tap_persist(taps[i], true);
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", f->br);
		ifr.ifr_ifindex = (int)if_nametoindex(taps[i]);
		if (!r && ioctl(s, SIOCBRADDIF, &ifr) < 0)
			r = -errno;
		if (!r)
			r = if_up(s, taps[i]);
	}
	if (!r)
		r = if_up(s, f->br);
	close(s);
	return r;
}

static void bridge_remove(struct fx *f)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;

	tap_persist(f->tap0, false);
	tap_persist(f->tap1, false);
	if (s < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", f->br);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags &= ~IFF_UP;
		ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	ioctl(s, SIOCBRDELBR, f->br);
	close(s);
}

static const uint8_t mac_b[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x57 };

/* Two exports on persistent taps of one bridge, as a driver domain has
 * them (configs/xvmsg-net-bridge.sh). */
static int setup_bridge(void **state)
{
	struct loop_fx_opts o = {
		.args = { "--export", NULL, "--export", NULL },
		.open_domain = 1,
		.domain = { .log_level = XVD_LOG_WARN, .ram_pages = 32768 },
	};
	struct fx *f = fx_new(state, 'c', 'd');
	char e0[128], e1[128];

	if (!f)
		return -1;
	snprintf(f->br, sizeof(f->br), "xvbr%u", (unsigned int)getpid() % 100000);
	snprintf(e0, sizeof(e0), "netA:net:tap=%s,mac=" MAC0, f->tap0);
	snprintf(e1, sizeof(e1), "netB:net:tap=%s,mac=52:54:00:12:34:57", f->tap1);
	o.args[1] = e0;
	o.args[3] = e1;
	SETUP_TRY(bridge_make(f));
	SETUP_TRY(backend_setup(&f->lf.b));
	SETUP_TRY(loop_fx_start(&f->lf, &o));
	SETUP_TRY(loop_fx_domain(&f->lf, o.domain, &f->d2));
	return 0;
fail:
	teardown(state);
	return -1;
}

/* Why a frame did not come: what the bridge and its taps counted, and
 * both guests' queues. */
static void bridge_explain(const struct fx *f, struct xvd_dev *from, struct xvd_dev *to)
{
	static const char *const file[] = { "statistics/rx_packets", "statistics/tx_packets",
					    "statistics/rx_dropped", "statistics/tx_dropped",
					    "brport/state" };
	const char *const dev[] = { f->tap0, f->tap1, f->br };
	struct xvd_stats st[2];
	char path[160], v[32];
	unsigned int i, k;
	FILE *x;

	for (i = 0; i < 3; i++) {
		fprintf(stderr, "  %s:", dev[i]);
		for (k = 0; k < sizeof(file) / sizeof(file[0]); k++) {
			snprintf(path, sizeof(path), "/sys/class/net/%s/%s", dev[i], file[k]);
			x = fopen(path, "re");
			if (!x)
				continue;
			if (fgets(v, sizeof(v), x)) {
				v[strcspn(v, "\n")] = '\0';
				fprintf(stderr, " %s %s", strchr(file[k], '/') + 1, v);
			}
			fclose(x);
		}
		fputc('\n', stderr);
	}
	xvd_dev_stats(from, &st[0]);
	xvd_dev_stats(to, &st[1]);
	for (i = 0; i < 2; i++)
		fprintf(stderr, "  %s guest: requests %llu, completed %llu, kicks %llu (%llu "
			"suppressed), notifications %llu\n", i ? "receiving" : "sending",
			(unsigned long long)st[i].requests, (unsigned long long)st[i].completions,
			(unsigned long long)st[i].kicks, (unsigned long long)st[i].kicks_suppressed,
			(unsigned long long)st[i].irqs);
}

/* Frames from one guest to the other, in windows the taps' queues hold:
 * each arrives once, in order, checksums agree. */
static void guest_to_guest(const struct fx *f, struct xvd_dev *from, struct xvd_dev *to,
			   const uint8_t *src, const uint8_t *dst, uint32_t nframes)
{
	static uint8_t buf[70000], frame[2048];
	uint64_t h_sent = 0xcbf29ce484222325ULL, h_got = h_sent;
	uint32_t i, j;

	for (i = 0; i < nframes; i += WINDOW) {
		for (j = i; j < i + WINDOW && j < nframes; j++) {
			size_t n = make_frame(frame, j, frame_len_of(j), dst, src);

			h_sent = fnv(h_sent, frame, n);
			assert_int_equal(xvd_net_send(from, NULL, frame, n, j % 16 ? XVD_NO_KICK : 0),
					 0);
		}
		assert_int_equal(xvd_net_tx_wait(from, -1), 0);
		for (j = i; j < i + WINDOW && j < nframes; j++) {
			int n = guest_recv(to, NULL, buf, sizeof(buf), 2000);
			uint32_t seq;

			if (n < 18) {
				bridge_explain(f, from, to);
				fail_msg("frame %u of %u (window from %u): %s", j, nframes, i,
					 n < 0 ? strerror(-n) : "too short");
			}
			memcpy(&seq, buf + 14, 4);
			assert_int_equal(seq, j);
			h_got = fnv(h_got, buf, (size_t)n);
		}
	}
	assert_true(h_got == h_sent);
}

static void test_two_guests_bridge(void **state)
{
	struct fx *f = *state;
	struct xvd_dev_opts oa = { .export_name = "netA", .mode = XVD_MODE_POOL };
	struct xvd_dev_opts ob = { .export_name = "netB", .mode = XVD_MODE_POOL };

	assert_int_equal(xvd_net_open(f->lf.d, &oa, 128, &f->lf.dev), 0);
	assert_int_equal(xvd_net_open(f->d2, &ob, 128, &f->dev2), 0);
	guest_to_guest(f, f->lf.dev, f->dev2, guest_mac, mac_b, NFRAMES);
	guest_to_guest(f, f->dev2, f->lf.dev, mac_b, guest_mac, NFRAMES);
	fprintf(stderr, "%u frames each way between two guests through bridge %s\n", NFRAMES,
		f->br);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_frames_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frames_grant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frames_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frames_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frame_waits_holding_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_link_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tap_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_64k_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_guests_bridge, setup_bridge, teardown),
	};

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);	/* one test by name, by hand */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
