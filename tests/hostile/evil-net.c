// SPDX-License-Identifier: MIT
/*
 * The malicious driver against virtio-net: transmit headers the virtio spec
 * forbids, chains too short to hold a header, receive buffers too small
 * for one, and a storm of transmit kicks.  The backend must refuse each
 * frame alone (dropped, counted by kind), never write outside a posted
 * buffer, never ask for a reset for any of it, and keep serving the
 * witness.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evil.h"

#define ETH_TEST	0x88b5
#define F(x)		(1ULL << VIRTIO_NET_F_##x)
#define OFFLOADS	(F(CSUM) | F(HOST_TSO4))

int evil_open_net(struct evil_env *e, int mode, uint64_t features, unsigned int rx_bufs,
		  struct xvd_dev **dev)
{
	struct xvd_dev_opts opts = { .mode = mode, .features = features };

	if (!e->net_export && !e->xen)
		return -ENODEV;
	if (e->xen) {
		if (mode != XVD_MODE_POOL)
			return -EOPNOTSUPP;
		opts.export_name = "xen";
	} else {
		opts.export_name = e->net_export;
	}
	opts.devid = e->net_devid;
	return xvd_net_open(e->d, &opts, rx_bufs, dev);
}

/* A counter of the hostile net device, -1 when unknown. */
static long net_stat(struct evil_env *e, const char *key)
{
	char name[48];

	if (!e->backend_stat)
		return -1;
	snprintf(name, sizeof(name), "net%u(dom%u)", e->net_devid, xvd_domain_id(e->d));
	return e->backend_stat(e->log_ctx, name, key);
}

/*
 * Does the case check the device's counters?  Where the backend's counters
 * can be seen (the loopback test) it must, and a counter that then reads -1
 * fails the case (net_unread); where they cannot (Xen, xvmsg-evil) the
 * observation says that they were left out, so a pass on the sends alone
 * is never mistaken for a checked one.
 */
static bool net_counted(struct evil_env *e, char *obs, size_t len)
{
	if (!e->backend_stat)
		evil_say(obs, len, "; counters not checked (the backend's are not visible here)");
	return e->backend_stat != NULL;
}

/* Some of n counters (each -1 when unknown) could not be read: say so. */
static bool net_unread(char *obs, size_t len, unsigned int n, ...)
{
	bool bad = false;
	va_list ap;

	va_start(ap, n);
	while (n--)
		if (va_arg(ap, long) < 0)
			bad = true;
	va_end(ap);
	if (bad)
		evil_say(obs, len, "; a counter of the device could not be read");
	return bad;
}

static size_t frame(uint8_t *f, size_t len)
{
	static const uint8_t dst[6] = { 0x52, 0x54, 0x00, 0xee, 0xee, 0xee };

	memset(f, 0xa5, len);
	memcpy(f, dst, 6);
	memcpy(f + 6, dst, 6);
	f[6] = 0x02;
	f[12] = ETH_TEST >> 8;
	f[13] = ETH_TEST & 0xff;
	return len;
}

/* After the abuse: a good frame still goes out (counted, where the
 * counters can be seen) and nobody asked for a reset. */
static int net_still_works(struct evil_env *e, struct xvd_dev *dev, char *obs, size_t len)
{
	static uint8_t f[1514];
	long before = net_stat(e, "tx_packets"), after;
	int r;

	r = xvd_net_send(dev, NULL, f, frame(f, sizeof(f)), 0);
	if (!r)
		r = xvd_net_tx_wait(dev, -1);
	if (r || xvd_dev_error(dev)) {
		evil_say(obs, len, "; a good frame afterwards: %s", strerror(r ? -r : EIO));
		return -1;
	}
	if (!e->backend_stat) {
		evil_say(obs, len, "; a good frame afterwards was taken, no reset asked");
		return 0;
	}
	after = net_stat(e, "tx_packets");
	if (net_unread(obs, len, 2, before, after))
		return -1;
	if (after != before + 1) {
		evil_say(obs, len, "; a good frame afterwards was not sent (tx_packets %ld -> %ld)",
			 before, after);
		return -1;
	}
	evil_say(obs, len, "; a good frame afterwards went out, no reset asked");
	return 0;
}

/* The net device in mode, and `size` bytes of guest RAM filled with `fill`
 * for the case's own buffers: 0, or -1 saying why (*dev, *mem NULL). */
static int net_open_mem(struct evil_env *e, int mode, size_t size, int fill,
			struct xvd_dev **dev, uint8_t **mem, char *obs, size_t len)
{
	int r = evil_open_net(e, mode, 0, 0, dev);

	*mem = NULL;
	if (r) {
		evil_say(obs, len, "open: %s", strerror(-r));
		*dev = NULL;
		return -1;
	}
	r = xvd_ram_alloc(e->d, size, (void **)mem);
	if (r) {
		evil_say(obs, len, "guest RAM: %s", strerror(-r));
		xvd_dev_close(*dev);
		*dev = NULL;
		*mem = NULL;
		return -1;
	}
	memset(*mem, fill, size);
	return 0;
}

/* The next `want` completions of queue q into d (2 s for each): 0, or -1
 * saying how many of them, `what`, came back. */
static int net_collect(struct xvd_dev *dev, unsigned int q, struct xvd_done *d,
		       unsigned int want, const char *what, char *obs, size_t len)
{
	unsigned int n = 0;
	int r;

	while (n < want) {
		r = xvd_vq_poll(dev, q, d + n, want - n);
		if (r < 0) {
			evil_say(obs, len, "poll: %s", strerror(-r));
			return -1;
		}
		n += (unsigned int)r;
		if (n < want && xvd_dev_wait(dev, 2000) <= 0) {
			evil_say(obs, len, "only %u of %u %s came back", n, want, what);
			return -1;
		}
	}
	return 0;
}

/* ---- net-bad-headers ------------------------------------------------------- */

struct bad {
	const char *what, *counter;
	struct xvd_net_hdr h;
	size_t len;
};

static int case_bad_headers(struct evil_env *e, char *obs, size_t len)
{
	const struct bad bad[] = {
		{ "runt", "tx_runt", { 0 }, 5 },
		{ "over 64 KiB", "tx_too_big", { 0 }, XVD_NET_FRAME_MAX + 1 },
		{ "DATA_VALID", "tx_bad_flags", { .flags = VIRTIO_NET_HDR_F_DATA_VALID }, 60 },
		{ "unknown flag", "tx_bad_flags", { .flags = 0x40 }, 60 },
		{ "UFO", "tx_bad_gso",
		  { .flags = 1, .gso_type = VIRTIO_NET_HDR_GSO_UDP, .gso_size = 1400,
		    .csum_start = 34, .csum_offset = 6 }, 9000 },
		{ "unknown gso_type", "tx_bad_gso",
		  { .flags = 1, .gso_type = 0x7f, .gso_size = 1400, .csum_start = 34,
		    .csum_offset = 16 }, 9000 },
		{ "TSO without NEEDS_CSUM", "tx_bad_gso",
		  { .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .gso_size = 1448 }, 9000 },
		{ "TSO with gso_size 0", "tx_bad_gso",
		  { .flags = 1, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4, .csum_start = 34,
		    .csum_offset = 16 }, 9000 },
		{ "TSO6 not negotiated", "tx_bad_gso",
		  { .flags = 1, .gso_type = VIRTIO_NET_HDR_GSO_TCPV6, .gso_size = 1440,
		    .csum_start = 54, .csum_offset = 16 }, 9000 },
		{ "ECN not negotiated", "tx_bad_gso",
		  { .flags = 1, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN,
		    .gso_size = 1448, .csum_start = 34, .csum_offset = 16 }, 9000 },
		{ "hdr_len beyond the frame", "tx_bad_hdr_len", { .hdr_len = 61 }, 60 },
		{ "csum_start beyond the frame", "tx_bad_csum",
		  { .flags = 1, .csum_start = 60, .csum_offset = 0 }, 60 },
		{ "csum_offset beyond the frame", "tx_bad_csum",
		  { .flags = 1, .csum_start = 34, .csum_offset = 0xffff }, 60 },
		{ "csum field across the end", "tx_bad_csum",
		  { .flags = 1, .csum_start = 58, .csum_offset = 1 }, 60 },
	};
	const char *counters[] = { "tx_runt", "tx_too_big", "tx_bad_flags", "tx_bad_gso",
				   "tx_bad_hdr_len", "tx_bad_csum" };
	static uint8_t f[XVD_NET_FRAME_MAX + 1];
	long want[6] = { 0 }, got;
	struct xvd_dev *dev = NULL;
	unsigned int i, k, rounds = 10;
	int r, rc = -1;

	r = evil_open_net(e, XVD_MODE_POOL, OFFLOADS, 0, &dev);
	if (r) {
		evil_say(obs, len, "open: %s", strerror(-r));
		return -1;
	}
	if ((xvd_dev_features(dev) & OFFLOADS) != OFFLOADS && e->backend_stat) {
		evil_say(obs, len, "the export offers no offloads (its tap refused them?)");
		goto out;
	}
	for (k = 0; k < rounds; k++) {
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			r = xvd_net_send(dev, &bad[i].h, f, frame(f, bad[i].len), XVD_NO_KICK);
			if (r) {
				evil_say(obs, len, "send %s: %s", bad[i].what, strerror(-r));
				goto out;
			}
		}
		r = xvd_net_tx_wait(dev, -1);
		if (r) {
			evil_say(obs, len, "round %u: %s", k, strerror(-r));
			goto out;
		}
	}
	evil_say(obs, len, "%u refused frames of %zu kinds", rounds * (unsigned int)(sizeof(bad) /
		 sizeof(bad[0])), sizeof(bad) / sizeof(bad[0]));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		for (k = 0; k < 6; k++)
			if (!strcmp(bad[i].counter, counters[k]))
				want[k] += rounds;
	for (k = 0; k < 6 && net_counted(e, obs, len); k++) {
		got = net_stat(e, counters[k]);
		evil_say(obs, len, ", %s=%ld", counters[k], got);
		if (net_unread(obs, len, 1, got))
			goto out;
		if (got != want[k]) {
			evil_say(obs, len, " (expected %ld)", want[k]);
			goto out;
		}
	}
	if (e->backend_stat && net_stat(e, "tx_packets") != 0) {
		evil_say(obs, len, "; some reached the tap (tx_packets %ld)",
			 net_stat(e, "tx_packets"));
		goto out;
	}
	rc = net_still_works(e, dev, obs, len);
out:
	xvd_dev_close(dev);
	return rc;
}

/* ---- net-short-chains ----------------------------------------------------- */

static int case_short_chains(struct evil_env *e, char *obs, size_t len)
{
	struct xvd_dev *dev = NULL;
	uint8_t *mem = NULL;
	struct xvd_buf b[2];
	struct xvd_done d[4];
	unsigned int n = 4, i;
	long runt0, tx0, bad0;
	int r, rc = -1;

	if (net_open_mem(e, XVD_MODE_POOL, 4096, 0, &dev, &mem, obs, len))
		return -1;
	runt0 = net_stat(e, "tx_runt");
	tx0 = net_stat(e, "tx_packets");
	bad0 = net_stat(e, "bad_chains");
	/* 4 bytes: not even a header; 12: a header and no frame; a header and
	 * a frame split over two buffers, the second device-writable (a
	 * transmit chain the device has nothing to write into) */
	b[0] = (struct xvd_buf){ .addr = mem, .len = 4 };
	r = xvd_vq_submit(dev, 1, b, 1, (void *)1, 0);
	b[0].len = XVD_NET_HDR_LEN;
	if (!r)
		r = xvd_vq_submit(dev, 1, b, 1, (void *)2, 0);
	b[0].len = XVD_NET_HDR_LEN + 4;
	b[1] = (struct xvd_buf){ .addr = mem + 1024, .len = 1024, .dev_writes = true };
	if (!r)
		r = xvd_vq_submit(dev, 1, b, 2, (void *)3, 0);
	/* a whole frame, then a buffer whose length is set to 0 in the ring
	 * before the kick (the library refuses to make one): the core refuses
	 * the chain */
	b[0].len = XVD_NET_HDR_LEN + 60;
	b[1] = (struct xvd_buf){ .addr = mem + 2048, .len = 1 };
	if (!r)
		r = xvd_vq_submit(dev, 1, b, 2, (void *)4, XVD_NO_KICK);
	if (!r) {
		struct xvd_vq *vq = &dev->vq[1];
		uint16_t head = le16toh(vq->avail->ring[(uint16_t)(vq->avail_idx - 1) % vq->size]);
		uint16_t second = le16toh(vq->desc[head % vq->size].next);

		vq->desc[second % vq->size].len = 0;
		r = xvd_vq_kick(dev, 1);
	}
	if (r) {
		evil_say(obs, len, "submit: %s", strerror(-r));
		goto out;
	}
	if (net_collect(dev, 1, d, n, "chains", obs, len))
		goto out;
	for (i = 0; i < n; i++)
		if (d[i].len || d[i].status) {
			evil_say(obs, len, "chain %p: len %u status %d", d[i].cookie, d[i].len,
				 d[i].status);
			goto out;
		}
	for (i = 1024; i < 2048; i++)
		if (mem[i]) {
			evil_say(obs, len, "the device wrote into a transmit chain");
			goto out;
		}
	evil_say(obs, len, "3 short chains and one with a zero-length buffer completed with "
		 "length 0, nothing written");
	if (net_counted(e, obs, len)) {
		long runt = net_stat(e, "tx_runt");
		long tx = net_stat(e, "tx_packets"), bad = net_stat(e, "bad_chains");

		if (net_unread(obs, len, 6, runt0, tx0, bad0, runt, tx, bad))
			goto out;
		evil_say(obs, len, ", tx_runt +%ld, bad_chains +%ld, tx_packets +%ld",
			 runt - runt0, bad - bad0, tx - tx0);
		if (runt - runt0 != 3 || bad - bad0 != 1 || tx != tx0)
			goto out;
	}
	rc = net_still_works(e, dev, obs, len);
out:
	if (mem)
		xvd_ram_free(e->d, mem);
	xvd_dev_close(dev);
	return rc;
}

/* ---- net-rx-small-bufs (loopback: a frame comes from the tap) ------------- */

static int tap_send(const char *tap, unsigned int n)
{
	struct sockaddr_ll sa = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_TEST) };
	uint8_t f[200];
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0), r = 0;	/* sends only */

	if (fd < 0)
		return -errno;
	sa.sll_ifindex = (int)if_nametoindex(tap);
	frame(f, sizeof(f));
	while (n-- && r == 0)
		if (sendto(fd, f, sizeof(f), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			r = -errno;
	close(fd);
	return r;
}

static int case_rx_small_bufs(struct evil_env *e, char *obs, size_t len)
{
	struct xvd_dev *dev = NULL;
	uint8_t *mem = NULL;
	struct xvd_buf b;
	struct xvd_done d[4];
	unsigned int n = 4, i, good = 0, empty = 0, flen = 0;
	long bad0;
	int r, rc = -1;

	if (!e->net_tap) {
		evil_say(obs, len, "no tap given");
		return -1;
	}
	/* Full mode: the backend writes straight into guest RAM, so a write
	 * past a buffer would show in the canary around it. */
	if (net_open_mem(e, XVD_MODE_FULL, 8192, 0x5a, &dev, &mem, obs, len))
		return -1;
	bad0 = net_stat(e, "rx_bad_buf");
	/* 1 and 11 bytes: too small for the header; a device-readable one;
	 * then one good buffer */
	b = (struct xvd_buf){ .addr = mem + 100, .len = 1, .dev_writes = true };
	r = xvd_vq_submit(dev, 0, &b, 1, (void *)1, XVD_NO_KICK);
	b = (struct xvd_buf){ .addr = mem + 200, .len = XVD_NET_HDR_LEN - 1, .dev_writes = true };
	if (!r)
		r = xvd_vq_submit(dev, 0, &b, 1, (void *)2, XVD_NO_KICK);
	b = (struct xvd_buf){ .addr = mem + 300, .len = 512 };
	if (!r)
		r = xvd_vq_submit(dev, 0, &b, 1, (void *)3, XVD_NO_KICK);
	b = (struct xvd_buf){ .addr = mem + 4096, .len = 2048, .dev_writes = true };
	if (!r)
		r = xvd_vq_submit(dev, 0, &b, 1, (void *)4, 0);
	if (!r)
		r = tap_send(e->net_tap, 1);
	if (r) {
		evil_say(obs, len, "setup: %s", strerror(-r));
		goto out;
	}
	if (net_collect(dev, 0, d, n, "buffers", obs, len))
		goto out;
	/* The good buffer takes the first frame the tap has: ours, or one
	 * the host's stack sent on the new interface (IPv6). */
	for (i = 0; i < n; i++) {
		if ((uintptr_t)d[i].cookie == 4 && d[i].len >= XVD_NET_HDR_LEN + 14 &&
		    d[i].len <= 2048)
			good++, flen = d[i].len;
		else if ((uintptr_t)d[i].cookie != 4 && d[i].len == 0 && !d[i].status)
			empty++;
	}
	evil_say(obs, len, "3 unusable receive buffers came back empty (%u), a frame went "
		 "into the good one (%u, %u bytes)", empty, good, flen);
	if (good != 1 || empty != 3)
		goto out;
	for (i = 0; i < 4096; i++)
		if (mem[i] != 0x5a) {
			evil_say(obs, len, "; byte %u around the small buffers was written", i);
			goto out;
		}
	for (i = 4096 + flen; i < 8192; i++)
		if (mem[i] != 0x5a) {
			evil_say(obs, len, "; byte %u past the frame was written", i);
			goto out;
		}
	evil_say(obs, len, ", nothing written outside");
	if (net_counted(e, obs, len)) {
		long bad = net_stat(e, "rx_bad_buf");

		if (net_unread(obs, len, 2, bad0, bad))
			goto out;
		evil_say(obs, len, ", rx_bad_buf +%ld", bad - bad0);
		if (bad - bad0 != 3)
			goto out;
	}
	rc = net_still_works(e, dev, obs, len);
out:
	if (mem)
		xvd_ram_free(e->d, mem);
	xvd_dev_close(dev);
	return rc;
}

/* ---- net-tx-storm ------------------------------------------------------------ */

struct kick_storm {
	struct drv_bus *bus;
	uint32_t port;
	unsigned long n, errors;
	atomic_bool done;
};

static void *kick_run(void *arg)
{
	struct kick_storm *s = arg;

	for (unsigned long i = 0; i < s->n; i++)
		if (s->bus->ops->evtchn_notify(s->bus, s->port))
			s->errors++;
	atomic_store(&s->done, true);
	return NULL;
}

static int case_tx_storm(struct evil_env *e, char *obs, size_t len)
{
	static uint8_t f[200];
	struct xvd_net_hdr bad = { .hdr_len = 0xffff };
	struct kick_storm s = { 0 };
	struct xvd_dev *dev = NULL;
	unsigned long wok = 0, wfail = 0, frames = 0;
	long idle, hdr_len;
	pthread_t th;
	int r, rc = -1;

	r = evil_open_net(e, XVD_MODE_POOL, 0, 0, &dev);
	if (r) {
		evil_say(obs, len, "open: %s", strerror(-r));
		return -1;
	}
	if (dev->nports < 2) {
		evil_say(obs, len, "no transmit channel");
		goto out;
	}
	s.bus = dev->dom->bus;
	s.port = dev->vq_port[1];
	s.n = e->xen ? 20000 : 300000;
	if (pthread_create(&th, NULL, kick_run, &s))
		goto out;
	/* Meanwhile: bad frames, each kicked, and the witness. */
	while (!atomic_load(&s.done)) {
		char tmp[128] = "";

		for (unsigned int i = 0; i < 64; i++, frames++)
			if (xvd_net_send(dev, &bad, f, frame(f, sizeof(f)), 0))
				break;
		if (evil_witness_ok(e, tmp, sizeof(tmp)) == 0)
			wok++;
		else
			wfail++;
	}
	pthread_join(th, NULL);
	r = xvd_net_tx_wait(dev, -1);
	idle = evil_backend_idle(e, 1000);
	hdr_len = net_stat(e, "tx_bad_hdr_len");
	evil_say(obs, len, "%lu forced transmit kicks (%lu refused) and %lu bad frames; "
		 "witness %lu rounds ok, %lu failed; backend %s afterwards", s.n, s.errors, frames,
		 wok, wfail, idle < 0 ? "BUSY" : "idle");
	if (r || s.errors || !wok || wfail || idle < 0)
		goto out;
	if (net_counted(e, obs, len)) {
		if (net_unread(obs, len, 1, hdr_len))
			goto out;
		evil_say(obs, len, ", tx_bad_hdr_len=%ld", hdr_len);
		if ((unsigned long)hdr_len != frames)
			goto out;
	}
	rc = net_still_works(e, dev, obs, len);
out:
	xvd_dev_close(dev);
	return rc;
}

const struct evil_case evil_net_cases[] = {
	{ "net-bad-headers", "every transmit header the spec forbids (runt, over 64 KiB, "
	  "receive-only or unknown flags, GSO types not negotiated or unknown, TSO without "
	  "NEEDS_CSUM or segment size, hdr_len, csum_start or csum_offset beyond the frame, the "
	  "checksum field across its end: 14 kinds) is dropped and "
	  "counted by kind, none reaches the tap, no reset; a good frame goes out afterwards",
	  case_bad_headers, EVIL_NET },
	{ "net-short-chains", "transmit chains of 4 bytes, of a header alone and with a "
	  "device-writable buffer complete with length 0 and count as runts, one with a "
	  "zero-length buffer is refused by the core; nothing is written or sent",
	  case_short_chains, EVIL_NET },
	{ "net-rx-small-bufs", "full mode: receive buffers smaller than the header or "
	  "device-readable come back empty (rx_bad_buf), the frame goes into the next good "
	  "buffer, not a byte around them is written", case_rx_small_bufs,
	  EVIL_NET | EVIL_LOOP_ONLY },
	{ "net-tx-storm", "forced transmit kicks and thousands of bad frames: each frame "
	  "refused and counted, the witness served throughout, the backend idle afterwards",
	  case_tx_storm, EVIL_NET },
	{ NULL },
};
