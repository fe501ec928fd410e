/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: virtio-net's check of transmit headers (xvb_net_tx_check),
 * the parameters the model refuses before it touches a tap, and (as root,
 * with /dev/net/tun; skipped without) the receive path on a tap of its own
 * against a faked core (tests/common/fake-core.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "device.h"
#include "evloop.h"

#include "fake-core.h"

#define F(x)	(1ULL << VIRTIO_NET_F_##x)
#define ALL	(F(CSUM) | F(HOST_TSO4) | F(HOST_TSO6) | F(HOST_ECN))

struct hdr {
	uint8_t flags, gso;
	uint16_t hdr_len, gso_size, csum_start, csum_offset;
};

static enum xvb_net_tx_err check(struct hdr h, size_t frame_len, uint64_t features)
{
	uint8_t b[XVB_NET_HDR_LEN] = { h.flags, h.gso };
	uint16_t v[4] = { h.hdr_len, h.gso_size, h.csum_start, h.csum_offset };
	unsigned int i;

	for (i = 0; i < 4; i++) {	/* little-endian, whatever the host */
		b[2 + 2 * i] = (uint8_t)v[i];
		b[3 + 2 * i] = (uint8_t)(v[i] >> 8);
	}
	b[10] = 0xff;			/* num_buffers: not the driver's, ignored */
	b[11] = 0xff;
	return xvb_net_tx_check(b, frame_len, features);
}

static const struct hdr plain;
static const struct hdr csum = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 34,
				 .csum_offset = 16 };
static const struct hdr tso4 = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
				 .gso = VIRTIO_NET_HDR_GSO_TCPV4, .hdr_len = 54, .gso_size = 1448,
				 .csum_start = 34, .csum_offset = 16 };

static void test_good(void **state)
{
	struct hdr h = tso4;

	assert_int_equal(check(plain, 14, 0), XVB_NET_TX_OK);
	assert_int_equal(check(plain, 1514, 0), XVB_NET_TX_OK);
	assert_int_equal(check(plain, XVB_NET_FRAME_MAX, 0), XVB_NET_TX_OK);
	assert_int_equal(check(csum, 60, F(CSUM)), XVB_NET_TX_OK);
	assert_int_equal(check(tso4, 65548, ALL), XVB_NET_TX_OK);
	h.gso = VIRTIO_NET_HDR_GSO_TCPV6;
	assert_int_equal(check(h, 65548, F(CSUM) | F(HOST_TSO6)), XVB_NET_TX_OK);
	h.gso = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN;
	assert_int_equal(check(h, 65548, ALL), XVB_NET_TX_OK);
	/* hdr_len is a hint: any value within the frame */
	h = plain;
	h.hdr_len = 60;
	assert_int_equal(check(h, 60, 0), XVB_NET_TX_OK);
	/* the checksum field ends exactly at the frame's end */
	h = csum;
	h.csum_start = 40;
	h.csum_offset = 18;
	assert_int_equal(check(h, 60, F(CSUM)), XVB_NET_TX_OK);
}

static void test_lengths(void **state)
{
	assert_int_equal(check(plain, 0, ALL), XVB_NET_TX_RUNT);
	assert_int_equal(check(plain, 13, ALL), XVB_NET_TX_RUNT);
	assert_int_equal(check(plain, XVB_NET_FRAME_MAX + 1, ALL), XVB_NET_TX_TOO_BIG);
	assert_int_equal(check(tso4, 1u << 20, ALL), XVB_NET_TX_TOO_BIG);
	assert_int_equal(check(plain, (size_t)-1, ALL), XVB_NET_TX_TOO_BIG);
}

static void test_flags(void **state)
{
	struct hdr h = plain;

	h.flags = VIRTIO_NET_HDR_F_DATA_VALID;	/* the device's, on receive */
	assert_int_equal(check(h, 60, ALL), XVB_NET_TX_BAD_FLAGS);
	h.flags = VIRTIO_NET_HDR_F_RSC_INFO;
	assert_int_equal(check(h, 60, ALL), XVB_NET_TX_BAD_FLAGS);
	h.flags = 0x80;
	assert_int_equal(check(h, 60, ALL), XVB_NET_TX_BAD_FLAGS);
	/* NEEDS_CSUM without VIRTIO_NET_F_CSUM */
	assert_int_equal(check(csum, 60, 0), XVB_NET_TX_BAD_FLAGS);
	assert_int_equal(check(tso4, 65548, ALL & ~F(CSUM)), XVB_NET_TX_BAD_FLAGS);
}

static void test_gso(void **state)
{
	struct hdr h = tso4;
	unsigned int t;

	/* not negotiated */
	assert_int_equal(check(tso4, 65548, F(CSUM)), XVB_NET_TX_BAD_GSO);
	assert_int_equal(check(tso4, 65548, F(CSUM) | F(HOST_TSO6)), XVB_NET_TX_BAD_GSO);
	h.gso = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN;
	assert_int_equal(check(h, 65548, F(CSUM) | F(HOST_TSO4)), XVB_NET_TX_BAD_GSO);
	/* ECN alone */
	h = plain;
	h.gso = VIRTIO_NET_HDR_GSO_ECN;
	assert_int_equal(check(h, 60, ALL), XVB_NET_TX_BAD_GSO);
	/* UFO, USO and every unknown type: never offered */
	for (t = 0; t < 0x80; t++) {
		if (t == VIRTIO_NET_HDR_GSO_NONE || t == VIRTIO_NET_HDR_GSO_TCPV4 ||
		    t == VIRTIO_NET_HDR_GSO_TCPV6)
			continue;
		h = tso4;
		h.gso = (uint8_t)t;
		assert_int_equal(check(h, 65548, ~0ULL), XVB_NET_TX_BAD_GSO);
	}
	/* GSO without NEEDS_CSUM, or with no segment size */
	h = tso4;
	h.flags = 0;
	assert_int_equal(check(h, 65548, ALL), XVB_NET_TX_BAD_GSO);
	h = tso4;
	h.gso_size = 0;
	assert_int_equal(check(h, 65548, ALL), XVB_NET_TX_BAD_GSO);
}

static void test_offsets(void **state)
{
	struct hdr h = tso4;

	h.hdr_len = 61;
	assert_int_equal(check(h, 60, ALL), XVB_NET_TX_BAD_HDR_LEN);
	h.hdr_len = 0xffff;
	assert_int_equal(check(h, 65534, ALL), XVB_NET_TX_BAD_HDR_LEN);
	h = csum;
	h.csum_start = 59;
	h.csum_offset = 0;
	assert_int_equal(check(h, 60, F(CSUM)), XVB_NET_TX_BAD_CSUM);	/* 2 bytes past 60 */
	h.csum_start = 0xffff;
	h.csum_offset = 0xffff;		/* no 16-bit wrap */
	assert_int_equal(check(h, XVB_NET_FRAME_MAX, F(CSUM)), XVB_NET_TX_BAD_CSUM);
	h.csum_start = 100;
	h.csum_offset = 0;
	assert_int_equal(check(h, 60, F(CSUM)), XVB_NET_TX_BAD_CSUM);
}

static void test_names(void **state)
{
	assert_string_equal(xvb_net_tx_err_name(XVB_NET_TX_RUNT), "tx_runt");
	assert_string_equal(xvb_net_tx_err_name(XVB_NET_TX_BAD_CSUM), "tx_bad_csum");
	assert_string_equal(xvb_net_tx_err_name(XVB_NET_TX_NERR), "tx_unknown");
}

/* ---- the model's table and its parameters ---- */

static void create_fails(const char *params, const char *msg)
{
	char *text = NULL;
	size_t size = 0;
	struct xvb_log log = { .level = XVB_LOG_DEBUG, .prog = "t" };
	struct xvb_model_env env = { .log = &log, .name = "net9" };
	void *priv = NULL;

	log.out = open_memstream(&text, &size);
	assert_non_null(log.out);
	assert_int_equal(xvb_net_ops.create(params, &env, &priv), -EINVAL);
	assert_null(priv);
	fclose(log.out);
	if (!strstr(text, msg))
		fail_msg("'%s': log '%s' lacks '%s'", params, text, msg);
	free(text);
}

static void test_ops_and_params(void **state)
{
	assert_string_equal(xvb_net_ops.type, "net");
	assert_int_equal(xvb_net_ops.device_id, VIRTIO_ID_NET);
	assert_int_equal(xvb_net_ops.num_queues, 2);
	assert_int_equal(xvb_net_ops.config_size, 10);
	assert_non_null(xvb_net_ops.stats);
	create_fails("", "missing parameter 'tap'");
	create_fails("mac=52:54:00:12:34:56", "missing parameter 'tap'");
	create_fails("tap=", "'tap'");
	create_fails("tap=abcdefghijklmnop", "'tap'");
	create_fails("tap=a/b", "'tap'");
	create_fails("tap=t0,mac=01:00:5e:00:00:01", "'mac'");	/* multicast */
	create_fails("tap=t0,mac=52:54:00:12:34", "'mac'");
	create_fails("tap=t0,mac=52:54:00:12:34:5g", "'mac'");
	create_fails("tap=t0,mac=52:54:00:12:34:56:", "'mac'");
	create_fails("tap=t0,mac=52:54:00:12:34:+6", "'mac'");
	create_fails("tap=t0,offload=maybe", "'offload'");
	create_fails("tap=t0,mrg-rxbuf=2", "'mrg-rxbuf'");
	create_fails("tap=t0,speed=10", "'speed'");
	create_fails("tap=t0,", "malformed");
	create_fails("tap=t0", "no event loop");
}

/* ---- the receive path on a real tap ---- */

#define ETH_TEST 0x88b5

/* A frame of our own ethertype into the tap, from the host's side. */
static int tap_inject(const char *tap)
{
	struct sockaddr_ll sa = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_TEST) };
	uint8_t f[100];
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0), r = 0;	/* sends only */

	if (fd < 0)
		return -errno;
	memset(f, 0xa5, sizeof(f));
	f[12] = ETH_TEST >> 8;
	f[13] = ETH_TEST & 0xff;
	sa.sll_ifindex = (int)if_nametoindex(tap);
	if (sendto(fd, f, sizeof(f), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = -errno;
	close(fd);
	return r;
}

/*
 * A driver that keeps the receive queue full of chains the core refuses
 * (-EINVAL from xvb_pop), refilled as fast as they are taken: the tap's
 * callback, which no chain budget of the core covers, must still give the
 * loop back after a queue's worth of them, and deliver the packet in a
 * later round.  It used to take every refused chain in one callback.
 */
static void test_rx_refused_chains_bounded(void **state)
{
	struct xvb_log log = { .level = XVB_LOG_ERR, .prog = "t", .out = stderr };
	struct xvb_evloop *loop = NULL;
	struct xvb_model_env env = { .log = &log, .name = "net9" };
	static struct fake_vdev f;
	static uint8_t buf[2048];
	struct iovec in = { buf, sizeof(buf) };
	struct xvb_req good;
	char params[64], tap[IFNAMSIZ];
	unsigned int i, rounds;
	void *priv = NULL;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), r;

	if (fd < 0)
		skip();		/* not root, or no tun module */
	close(fd);
	snprintf(tap, sizeof(tap), "xvu%u", (unsigned int)getpid() % 100000);
	snprintf(params, sizeof(params), "tap=%s,offload=off", tap);
	assert_int_equal(xvb_evloop_create(&loop), 0);
	env.loop = loop;
	r = xvb_net_ops.create(params, &env, &priv);
	if (r == -EPERM || r == -EACCES) {	/* no CAP_NET_ADMIN */
		xvb_evloop_destroy(loop);
		skip();
	}
	assert_int_equal(r, 0);
	memset(&f, 0, sizeof(f));
	for (i = 0; i < FQ_MAX - 1; i++)
		fake_queue(&f, 0, NULL, -EINVAL);
	memset(&good, 0, sizeof(good));
	good.head = 7;
	good.nin = 1;
	good.in[0] = in;
	good.in_len = sizeof(buf);
	fake_queue(&f, 0, &good, 1);
	assert_int_equal(xvb_net_ops.activate(priv, VDEV(&f), xvb_net_ops.features(priv) |
					      1ULL << 32), 0);
	assert_int_equal(tap_inject(tap), 0);
	/* The first round that reads the tap stops after a queue's worth. */
	for (rounds = 0; !f.pops && rounds < 50; rounds++)
		xvb_evloop_run_once(loop, 100);
	assert_true(f.pops > 0);
	if (f.pops > 256)
		fail_msg("one tap callback took %u refused chains", f.pops);
	assert_int_equal(f.npush, 0);
	/* Later rounds go on without another kick, and the packet arrives. */
	for (rounds = 0; !f.npush && rounds < 10; rounds++)
		xvb_evloop_run_once(loop, 100);
	assert_int_equal(f.npush, 1);
	assert_int_equal(f.push[0].head, 7);
	assert_true(f.push[0].written >= XVB_NET_HDR_LEN + 14);
	assert_int_equal(f.qnext[0], FQ_MAX);
	assert_true(f.flushes[0] >= 1);
	xvb_net_ops.reset(priv);
	xvb_net_ops.destroy(priv);
	xvb_evloop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_gso),
		cmocka_unit_test(test_offsets),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_ops_and_params),
		cmocka_unit_test(test_rx_refused_chains_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
