/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: the guest module's checks of what the backend sends
 * (include/xvmsg/wire.h, shared with the kernel module, built here in userspace).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <xvmsg/wire.h>

/* A b2d message as the backend would write it. */
static void mk(struct vmsg *m, uint8_t type, uint8_t id, uint16_t dev, uint16_t token,
	       const void *payload, unsigned int len)
{
	memset(m, 0, sizeof(*m));
	m->hdr.type = type;
	m->hdr.msg_id = id;
	m->hdr.dev_num = htole16(dev);
	m->hdr.token = htole16(token);
	m->hdr.msg_size = htole16((uint16_t)(sizeof(m->hdr) + len));
	if (len)
		memcpy(m->payload, payload, len);
}

static void test_ring_count(void **state)
{
	assert_int_equal(xvmsg_ring_count(0, 0), 0);
	assert_int_equal(xvmsg_ring_count(8, 0), 8);
	assert_int_equal(xvmsg_ring_count(9, 0), -1);		/* more than the ring holds */
	assert_int_equal(xvmsg_ring_count(0, 1), -1);		/* producer behind consumer */
	assert_int_equal(xvmsg_ring_count(3, 0xfffffffeu), 5);	/* wraps */
	assert_int_equal(xvmsg_ring_count(0xffffffffu, 0), -1);
}

static void test_classify_header(void **state)
{
	uint8_t st[4] = { 0 };
	struct vmsg m;

	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_STATUS, 1, 7, st, 4);
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS, XVMSG_MSG_REV_1), XVMSG_V_RESPONSE);

	m.hdr.msg_size = htole16(7);				/* shorter than a header */
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS, XVMSG_MSG_REV_1), XVMSG_V_BAD);
	m.hdr.msg_size = htole16(VMSG_MAX_SIZE + 1);		/* longer than a slot */
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS, XVMSG_MSG_REV_1), XVMSG_V_BAD);
	m.hdr.msg_size = htole16(0xffff);
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS, XVMSG_MSG_REV_1), XVMSG_V_BAD);

	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_STATUS, 2, 7, st, 4);	/* device 2 */
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS, XVMSG_MSG_REV_1), XVMSG_V_BAD);

	mk(&m, VMSG_TYPE_RESPONSE | VMSG_TYPE_BUS, VMSG_BUS_PING, 0, 7, NULL, 0);
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS, XVMSG_MSG_REV_1), XVMSG_V_BUS);
}

/* Type bits 2-7 are reserved: a sender writes them as zero, a receiver
 * ignores them (the draft's forward-compatibility rule).  Whatever they
 * hold, a message is classified by its other fields alone. */
static void test_classify_reserved_type_bits(void **state)
{
	uint8_t st[4] = { 0 }, ev[16] = { 0 };
	unsigned int bits;
	struct vmsg m;

	for (bits = 0x04; bits <= 0xfc; bits += 0x04) {
		mk(&m, (uint8_t)(bits | VMSG_TYPE_RESPONSE), VMSG_GET_DEVICE_STATUS, 1, 7, st, 4);
		assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS, XVMSG_MSG_REV_1), XVMSG_V_RESPONSE);
		assert_int_equal(xvmsg_classify(&m, 8, VMSG_GET_DEVICE_STATUS, XVMSG_MSG_REV_1), XVMSG_V_STALE);
		assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_CONFIG, XVMSG_MSG_REV_1), XVMSG_V_RESP_BROKEN);
		mk(&m, (uint8_t)bits, VMSG_EVENT_CONFIG, 1, 0, ev, 16);
		assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_CONFIG, XVMSG_MSG_REV_1), XVMSG_V_EVENT_CONFIG);
		mk(&m, (uint8_t)bits, VMSG_EVENT_USED, 1, 0, ev, 4);
		assert_int_equal(xvmsg_classify(&m, 0, 0, XVMSG_MSG_REV_1), XVMSG_V_EVENT_USED);
		mk(&m, (uint8_t)(bits | VMSG_TYPE_BUS | VMSG_TYPE_RESPONSE), VMSG_BUS_PING, 0, 7,
		   NULL, 0);
		assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS, XVMSG_MSG_REV_1), XVMSG_V_BUS);
		/* What is wrong with the other fields still is. */
		mk(&m, (uint8_t)bits, VMSG_GET_CONFIG, 1, 3, ev, 8);	/* a request */
		assert_int_equal(xvmsg_classify(&m, 3, VMSG_GET_CONFIG, XVMSG_MSG_REV_1), XVMSG_V_BAD);
		mk(&m, (uint8_t)(bits | VMSG_TYPE_RESPONSE), VMSG_GET_DEVICE_STATUS, 1, 7, st, 4);
		m.hdr.msg_size = htole16(7);
		assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS, XVMSG_MSG_REV_1), XVMSG_V_BAD);
	}
}

static void test_classify_response(void **state)
{
	uint8_t st[4] = { 0 };
	struct vmsg m;

	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_STATUS, 1, 7, st, 4);
	assert_int_equal(xvmsg_classify(&m, 0, 0, XVMSG_MSG_REV_1), XVMSG_V_STALE);	/* nothing in flight */
	assert_int_equal(xvmsg_classify(&m, 8, VMSG_GET_DEVICE_STATUS, XVMSG_MSG_REV_1), XVMSG_V_STALE);
	/* Right token, wrong id: the device answers something else. */
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_SET_DEVICE_STATUS, XVMSG_MSG_REV_1), XVMSG_V_RESP_BROKEN);
	/* Right token and id, payload too short for the id. */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_STATUS, 1, 7, st, 3);
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS, XVMSG_MSG_REV_1), XVMSG_V_RESP_BROKEN);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_VQUEUE, 1, 7, st, 4);
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_VQUEUE, XVMSG_MSG_REV_1), XVMSG_V_RESP_BROKEN);
	/* Empty responses are fine where the id has no payload. */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_SET_VQUEUE, 1, 7, NULL, 0);
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_SET_VQUEUE, XVMSG_MSG_REV_1), XVMSG_V_RESPONSE);
}

static void test_classify_events(void **state)
{
	uint8_t ev[16] = { 0 };
	struct vmsg m;

	mk(&m, 0, VMSG_EVENT_CONFIG, 1, 0, ev, 16);
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_CONFIG, XVMSG_MSG_REV_1), XVMSG_V_EVENT_CONFIG);
	mk(&m, 0, VMSG_EVENT_CONFIG, 1, 0, ev, 15);			/* too short */
	assert_int_equal(xvmsg_classify(&m, 0, 0, XVMSG_MSG_REV_1), XVMSG_V_BAD);
	mk(&m, 0, VMSG_EVENT_CONFIG, 1, 5, ev, 16);			/* events carry token 0 */
	assert_int_equal(xvmsg_classify(&m, 0, 0, XVMSG_MSG_REV_1), XVMSG_V_BAD);
	mk(&m, 0, VMSG_EVENT_USED, 1, 0, ev, 4);
	assert_int_equal(xvmsg_classify(&m, 0, 0, XVMSG_MSG_REV_1), XVMSG_V_EVENT_USED);
	mk(&m, 0, VMSG_EVENT_AVAIL, 1, 0, ev, 8);			/* driver -> device only */
	assert_int_equal(xvmsg_classify(&m, 0, 0, XVMSG_MSG_REV_1), XVMSG_V_BAD);
	mk(&m, 0, VMSG_GET_CONFIG, 1, 3, ev, 8);			/* a request to the driver */
	assert_int_equal(xvmsg_classify(&m, 3, VMSG_GET_CONFIG, XVMSG_MSG_REV_1), XVMSG_V_BAD);
}

static void test_build(void **state)
{
	uint32_t p = htole32(0x11223344);
	struct vmsg m;

	memset(&m, 0xaa, sizeof(m));
	xvmsg_msg_build(&m, VMSG_GET_VQUEUE, 0x1234, &p, 4);
	assert_int_equal(m.hdr.type, 0);
	assert_int_equal(m.hdr.msg_id, VMSG_GET_VQUEUE);
	assert_int_equal(le16toh(m.hdr.dev_num), XVMSG_DEV_NUM);
	assert_int_equal(le16toh(m.hdr.token), 0x1234);
	assert_int_equal(le16toh(m.hdr.msg_size), 12);
	assert_memory_equal(m.payload, &p, 4);
	assert_int_equal(m.payload[4], 0);		/* the rest is zero, not stale */
	assert_int_equal(m.payload[VMSG_MAX_PAYLOAD - 1], 0);
}

static void test_features(void **state)
{
	uint32_t w[2], pl[4] = { htole32(0), htole32(2), htole32(0x10000000), htole32(3) };
	struct vmsg m;

	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_FEATURES, 1, 1, pl, 16);
	assert_int_equal(xvmsg_check_features(&m, 0, 2, w), 0);
	assert_int_equal(w[0], 0x10000000);
	assert_int_equal(w[1], 3);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_FEATURES, 1, 1, pl, 12);	/* a word short */
	assert_int_equal(xvmsg_check_features(&m, 0, 2, w), -EPROTO);
	pl[0] = htole32(1);							/* other block */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_FEATURES, 1, 1, pl, 16);
	assert_int_equal(xvmsg_check_features(&m, 0, 2, w), -EPROTO);
	pl[0] = htole32(0);
	pl[1] = htole32(1);							/* fewer blocks */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_FEATURES, 1, 1, pl, 16);
	assert_int_equal(xvmsg_check_features(&m, 0, 2, w), -EPROTO);
}

static void test_get_config(void **state)
{
	uint8_t pl[12 + 8];
	unsigned int off;
	uint32_t gen, v;
	struct vmsg m;

	v = htole32(5);
	memcpy(pl, &v, 4);		/* generation */
	v = htole32(16);
	memcpy(pl + 4, &v, 4);		/* offset */
	v = htole32(8);
	memcpy(pl + 8, &v, 4);		/* length */
	memcpy(pl + 12, "abcdefgh", 8);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_CONFIG, 1, 1, pl, sizeof(pl));
	assert_int_equal(xvmsg_check_get_config(&m, 16, 8, &gen, &off), 0);
	assert_int_equal(gen, 5);
	assert_memory_equal(m.payload + off, "abcdefgh", 8);
	assert_int_equal(xvmsg_check_get_config(&m, 12, 8, &gen, &off), -EPROTO);	/* offset */
	assert_int_equal(xvmsg_check_get_config(&m, 16, 4, &gen, &off), -EPROTO);	/* length */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_CONFIG, 1, 1, pl, sizeof(pl) - 1);	/* data short */
	assert_int_equal(xvmsg_check_get_config(&m, 16, 8, &gen, &off), -EPROTO);
	v = htole32(0);
	memcpy(pl + 8, &v, 4);		/* length 0: out of range */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_CONFIG, 1, 1, pl, 12);
	assert_int_equal(xvmsg_check_get_config(&m, 16, 8, &gen, &off), -ERANGE);
}

static void test_set_config(void **state)
{
	uint32_t pl[3] = { htole32(9), htole32(4), htole32(2) };
	struct vmsg m;
	uint32_t gen;

	mk(&m, VMSG_TYPE_RESPONSE, VMSG_SET_CONFIG, 1, 1, pl, 12);
	assert_int_equal(xvmsg_check_set_config(&m, 4, 2, &gen), 0);
	assert_int_equal(gen, 9);
	pl[2] = 0;
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_SET_CONFIG, 1, 1, pl, 12);
	assert_int_equal(xvmsg_check_set_config(&m, 4, 2, &gen), -EAGAIN);
	pl[2] = htole32(3);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_SET_CONFIG, 1, 1, pl, 12);
	assert_int_equal(xvmsg_check_set_config(&m, 4, 2, &gen), -EPROTO);
	pl[1] = htole32(5);
	pl[2] = htole32(2);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_SET_CONFIG, 1, 1, pl, 12);
	assert_int_equal(xvmsg_check_set_config(&m, 4, 2, &gen), -EPROTO);
}

static void test_status(void **state)
{
	/* The device may refuse bits... */
	assert_int_equal(xvmsg_status_accept(0x0b, 0x03), 0x03);
	/* ...but never add one: no DRIVER_OK the core did not write. */
	assert_int_equal(xvmsg_status_accept(0x0b, 0xff), 0x0b);
	assert_int_equal(xvmsg_status_accept(0x0b, 0x4f), 0x0b);
	assert_int_equal(xvmsg_status_accept(0, 0xffffffffu), 0);
}

static void test_device_info(void **state)
{
	uint32_t pl[6] = { htole32(2), htole32(0x584d5658), htole32(64), htole32(60),
			   htole32(1), 0 };
	struct xvmsg_dev_info di;
	struct vmsg m;

	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 24);
	assert_int_equal(xvmsg_check_device_info(&m, XVMSG_MSG_REV_1, &di), 0);
	assert_int_equal(di.device_id, 2);
	assert_int_equal(di.config_size, 60);
	assert_int_equal(di.max_vqs, 1);
	pl[0] = 0;						/* no device */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 24);
	assert_int_equal(xvmsg_check_device_info(&m, XVMSG_MSG_REV_1, &di), -EPROTO);
	pl[0] = htole32(2);
	pl[3] = htole32(XVMSG_MAX_CONFIG_SIZE + 1);		/* absurd config space */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 24);
	assert_int_equal(xvmsg_check_device_info(&m, XVMSG_MSG_REV_1, &di), -EPROTO);
	pl[3] = htole32(60);
	pl[4] = htole32(XVMSG_MAX_QUEUES + 1);			/* more queues than channels */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 24);
	assert_int_equal(xvmsg_check_device_info(&m, XVMSG_MSG_REV_1, &di), -EPROTO);
}

static void test_vqueue(void **state)
{
	struct vmsg_get_vqueue_resp r;
	struct xvmsg_vq_info vi;
	struct vmsg m;

	memset(&r, 0, sizeof(r));
	r.index = htole32(1);
	r.max_size = htole32(256);
	r.cur_size = htole32(128);
	r.desc_addr = htole64(XVMSG_GRANT_ADDR(9, 0));
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_VQUEUE, 1, 1, &r, sizeof(r));
	assert_int_equal(xvmsg_check_vqueue(&m, 1, XVMSG_MSG_REV_1, &vi), 0);
	assert_int_equal(vi.max_size, 256);
	assert_int_equal(vi.cur_size, 128);
	assert_true(vi.desc_addr == XVMSG_GRANT_ADDR(9, 0));
	assert_int_equal(xvmsg_check_vqueue(&m, 0, XVMSG_MSG_REV_1, &vi), -EPROTO);

	assert_int_equal(xvmsg_queue_size(0), 0);
	assert_int_equal(xvmsg_queue_size(1), 1);
	assert_int_equal(xvmsg_queue_size(256), 256);
	assert_int_equal(xvmsg_queue_size(300), 256);		/* down to a power of two */
	assert_int_equal(xvmsg_queue_size(0xffffffffu), XVMSG_MAX_QUEUE_SIZE);
}

static void test_parse(void **state)
{
	uint32_t v = 77;

	assert_int_equal(xvmsg_parse_u32("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(xvmsg_parse_u32("4294967295", &v), 0);
	assert_true(v == 4294967295u);
	assert_int_equal(xvmsg_parse_u32("4294967296", &v), -ERANGE);
	assert_int_equal(xvmsg_parse_u32("99999999999999999999999", &v), -ERANGE);
	assert_int_equal(xvmsg_parse_u32("", &v), -EINVAL);
	assert_int_equal(xvmsg_parse_u32(NULL, &v), -EINVAL);
	assert_int_equal(xvmsg_parse_u32("12abc", &v), -EINVAL);
	assert_int_equal(xvmsg_parse_u32(" 12", &v), -EINVAL);
	assert_int_equal(xvmsg_parse_u32("-1", &v), -EINVAL);
	assert_int_equal(xvmsg_parse_u32("+1", &v), -EINVAL);
	/* A number that ends where a path component does. */
	assert_int_equal(xvmsg_parse_u32_len("12/state", 2, &v), 0);
	assert_int_equal(v, 12);
	assert_int_equal(xvmsg_parse_u32_len("12/state", 3, &v), -EINVAL);
	assert_int_equal(xvmsg_parse_u32_len("/state", 0, &v), -EINVAL);
	assert_int_equal(xvmsg_parse_u32_len("-1/x", 2, &v), -EINVAL);

	enum xvmsg_mode m = XVMSG_MODE_FULL;

	assert_int_equal(xvmsg_parse_mode("pool", &m), 0);
	assert_int_equal(m, XVMSG_MODE_POOL);
	assert_int_equal(xvmsg_parse_mode("grant", &m), 0);
	assert_int_equal(m, XVMSG_MODE_GRANT);
	assert_int_equal(xvmsg_parse_mode("full", &m), 0);
	assert_int_equal(m, XVMSG_MODE_FULL);
	/* A xenstore value is exact, as the backend has always read it; the
	 * module strips a sysfs write's newline itself (parse_mode_len). */
	assert_int_equal(xvmsg_parse_mode("grant\n", &m), -EINVAL);
	assert_int_equal(xvmsg_parse_mode_len("grant\n", 5, &m), 0);
	assert_int_equal(m, XVMSG_MODE_GRANT);
	assert_int_equal(xvmsg_parse_mode("fullx", &m), -EINVAL);
	assert_int_equal(xvmsg_parse_mode("poo", &m), -EINVAL);
	assert_int_equal(xvmsg_parse_mode("pool\n\n", &m), -EINVAL);
	assert_int_equal(xvmsg_parse_mode("", &m), -EINVAL);
	assert_int_equal(xvmsg_parse_mode(NULL, &m), -EINVAL);
	assert_int_equal(m, XVMSG_MODE_GRANT);	/* untouched on failure */
	assert_string_equal(xvmsg_mode_name(XVMSG_MODE_GRANT), "grant");
	assert_string_equal(xvmsg_mode_name((enum xvmsg_mode)7), "?");
	for (m = XVMSG_MODE_POOL; m < XVMSG_NR_MODES; m++) {
		enum xvmsg_mode back;

		assert_int_equal(xvmsg_parse_mode(xvmsg_mode_name(m), &back), 0);
		assert_int_equal(back, m);
	}
}

/* Toolstack type -> virtio device id (the module refuses any other id). */
static void test_type_device_id(void **state)
{
	assert_int_equal(xvmsg_type_device_id("blk"), 2);
	assert_int_equal(xvmsg_type_device_id("console"), 3);
	assert_int_equal(xvmsg_type_device_id("rng"), 4);
	assert_int_equal(xvmsg_type_device_id("net"), 1);
	assert_int_equal(xvmsg_type_device_id("balloon"), -EINVAL);
	assert_int_equal(xvmsg_type_device_id("blk "), -EINVAL);
	assert_int_equal(xvmsg_type_device_id(""), -EINVAL);
	assert_int_equal(xvmsg_type_device_id(NULL), -EINVAL);
}

/* ---- message layout revisions ---- */

static void test_revisions(void **state)
{
	uint32_t m;

	assert_int_equal(xvmsg_parse_revisions("1", &m), 0);
	assert_int_equal(m, 1u << 1);
	assert_int_equal(xvmsg_parse_revisions("1,2", &m), 0);
	assert_int_equal(m, (1u << 1) | (1u << 2));
	assert_int_equal(xvmsg_parse_revisions("2,1", &m), 0);
	assert_int_equal(m, (1u << 1) | (1u << 2));
	assert_int_equal(xvmsg_parse_revisions("31", &m), 0);	/* unknown, but a revision */
	assert_int_equal(m, 1u << 31);
	{
		static const char *const bad[] = {
			"", ",", "1,", ",1", "1,,2", " 1", "1 ", "0", "32", "100", "+1", "-1",
			"1;2", "x", "1,2,",
		};
		size_t i;

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			m = 0xdead;
			assert_int_equal(xvmsg_parse_revisions(bad[i], &m), -EINVAL);
			assert_int_equal(m, 0xdead);
		}
	}
	assert_int_equal(xvmsg_parse_revisions(NULL, &m), -EINVAL);

	/* The highest known revision both speak. */
	assert_int_equal(xvmsg_pick_revision(XVMSG_MSG_REVS_ALL, XVMSG_MSG_REVS_ALL), 2);
	assert_int_equal(xvmsg_pick_revision(XVMSG_MSG_REVS_ALL, 1u << 1), 1);	/* old peer */
	assert_int_equal(xvmsg_pick_revision(1u << 1, XVMSG_MSG_REVS_ALL), 1);
	assert_int_equal(xvmsg_pick_revision(XVMSG_MSG_REVS_ALL, (1u << 2) | (1u << 9)), 2);
	assert_int_equal(xvmsg_pick_revision(1u << 2, 1u << 1), -EPROTONOSUPPORT);
	assert_int_equal(xvmsg_pick_revision(1u << 1, 1u << 2), -EPROTONOSUPPORT);
	assert_int_equal(xvmsg_pick_revision(1u << 9, 1u << 9), -EPROTONOSUPPORT);	/* unknown */
	assert_int_equal(xvmsg_pick_revision(XVMSG_MSG_REVS_ALL, 0), -EPROTONOSUPPORT);
	assert_true(xvmsg_rev_known(1) && xvmsg_rev_known(2));
	assert_false(xvmsg_rev_known(0) || xvmsg_rev_known(3));
}

/* Little-endian field of a payload, by byte offset. */
static uint32_t at32(const void *p, size_t off)
{
	uint32_t v;

	memcpy(&v, (const uint8_t *)p + off, 4);
	return le32toh(v);
}

static uint64_t at64(const void *p, size_t off)
{
	uint64_t v;

	memcpy(&v, (const uint8_t *)p + off, 8);
	return le64toh(v);
}

static void put32(void *p, size_t off, uint32_t v)
{
	v = htole32(v);
	memcpy((uint8_t *)p + off, &v, 4);
}

static void put64(void *p, size_t off, uint64_t v)
{
	v = htole64(v);
	memcpy((uint8_t *)p + off, &v, 8);
}

/* GET_DEVICE_INFO, revision 2 (2026): device_id 0, vendor_id 4,
 * device_uuid[16] 8, num_feature_blocks 24, config_size 28, max_vqs 32,
 * admin_vq_start 36, admin_vq_count 40; 44 bytes, 52 with the header. */
static void test_device_info_v2(void **state)
{
	uint8_t pl[44];
	struct xvmsg_dev_info di;
	struct vmsg m;
	unsigned int i;

	assert_int_equal(sizeof(struct vmsg_device_info_resp_v2), 44);
	assert_int_equal(VMSG_REV2_MIN_MSG_SIZE, 52);
	memset(pl, 0, sizeof(pl));
	put32(pl, 0, 2);
	put32(pl, 4, 0x584d5658);
	for (i = 0; i < 16; i++)
		pl[8 + i] = (uint8_t)(0xa0 + i);
	put32(pl, 24, 2);		/* blocks */
	put32(pl, 28, 60);
	put32(pl, 32, 3);
	put32(pl, 36, 2);		/* admin queue 2 */
	put32(pl, 40, 1);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 44);
	assert_int_equal(xvmsg_classify(&m, 1, VMSG_GET_DEVICE_INFO, XVMSG_MSG_REV_2),
			 XVMSG_V_RESPONSE);
	assert_int_equal(xvmsg_check_device_info(&m, XVMSG_MSG_REV_2, &di), 0);
	assert_int_equal(di.device_id, 2);
	assert_int_equal(di.vendor_id, 0x584d5658);
	assert_int_equal(di.num_feature_bits, 64);
	assert_int_equal(di.config_size, 60);
	assert_int_equal(di.max_vqs, 3);
	assert_int_equal(di.admin_vq_start, 2);
	assert_int_equal(di.admin_vq_count, 1);
	assert_memory_equal(di.device_uuid, pl + 8, 16);
	/* Read as revision 1 the same bytes mean something else: the uuid's
	 * first word is num_feature_bits.  A 24-byte revision 1 response is too
	 * short for revision 2: the device is broken. */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 24);
	assert_int_equal(xvmsg_classify(&m, 1, VMSG_GET_DEVICE_INFO, XVMSG_MSG_REV_2),
			 XVMSG_V_RESP_BROKEN);
	assert_int_equal(xvmsg_classify(&m, 1, VMSG_GET_DEVICE_INFO, XVMSG_MSG_REV_1),
			 XVMSG_V_RESPONSE);
	/* Admin queues beyond max_vqs, no feature blocks, more blocks than a
	 * slot carries: refused. */
	put32(pl, 36, 3);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 44);
	assert_int_equal(xvmsg_check_device_info(&m, XVMSG_MSG_REV_2, &di), -EPROTO);
	put32(pl, 36, 0xffffffffu);	/* start + count wraps 32 bits */
	put32(pl, 40, 2);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 44);
	assert_int_equal(xvmsg_check_device_info(&m, XVMSG_MSG_REV_2, &di), -EPROTO);
	put32(pl, 36, 0);
	put32(pl, 40, 0);
	put32(pl, 24, 0);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 44);
	assert_int_equal(xvmsg_check_device_info(&m, XVMSG_MSG_REV_2, &di), -EPROTO);
	put32(pl, 24, VMSG_MAX_FEATURE_BLOCKS + 1);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 44);
	assert_int_equal(xvmsg_check_device_info(&m, XVMSG_MSG_REV_2, &di), -EPROTO);
	put32(pl, 24, 0x08000001u);	/* * 32 would wrap to 32 */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 44);
	assert_int_equal(xvmsg_check_device_info(&m, XVMSG_MSG_REV_2, &di), -EPROTO);
}

/* Revision 1's le16 admin fields at 20 and 22. */
static void test_device_info_v1_admin(void **state)
{
	uint8_t pl[24];
	struct xvmsg_dev_info di;
	struct vmsg m;

	memset(pl, 0, sizeof(pl));
	put32(pl, 0, 4);
	put32(pl, 8, 64);
	put32(pl, 16, 2);
	pl[20] = 1;			/* admin_vq_start 1 */
	pl[22] = 1;			/* admin_vq_count 1 */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 24);
	assert_int_equal(xvmsg_check_device_info(&m, XVMSG_MSG_REV_1, &di), 0);
	assert_int_equal(di.admin_vq_start, 1);
	assert_int_equal(di.admin_vq_count, 1);
	pl[22] = 2;			/* beyond the two queues */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 24);
	assert_int_equal(xvmsg_check_device_info(&m, XVMSG_MSG_REV_1, &di), -EPROTO);
}

/* GET_VQUEUE's word at 12: reserved in revision 1, flags (bit 0 ENABLED)
 * in revision 2; reserved flag bits are ignored. */
static void test_vqueue_flags(void **state)
{
	uint8_t pl[40];
	struct xvmsg_vq_info vi;
	struct vmsg m;

	memset(pl, 0, sizeof(pl));
	put32(pl, 0, 3);
	put32(pl, 4, 64);
	put32(pl, 8, 32);
	put32(pl, 12, 0xfffffffeu);	/* every bit but ENABLED */
	put64(pl, 16, 0x1000);
	put64(pl, 24, 0x2000);
	put64(pl, 32, 0x3000);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_VQUEUE, 1, 1, pl, sizeof(pl));
	assert_int_equal(xvmsg_check_vqueue(&m, 3, XVMSG_MSG_REV_2, &vi), 0);
	assert_false(vi.enabled);	/* configured, not enabled */
	assert_true(vi.desc_addr == 0x1000 && vi.driver_addr == 0x2000 &&
		    vi.device_addr == 0x3000);
	assert_int_equal(xvmsg_check_vqueue(&m, 3, XVMSG_MSG_REV_1, &vi), 0);
	assert_true(vi.enabled);	/* revision 1: a size is enabled */
	put32(pl, 12, VMSG_VQ_F_ENABLED);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_VQUEUE, 1, 1, pl, sizeof(pl));
	assert_int_equal(xvmsg_check_vqueue(&m, 3, XVMSG_MSG_REV_2, &vi), 0);
	assert_true(vi.enabled);
	put32(pl, 8, 0);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_VQUEUE, 1, 1, pl, sizeof(pl));
	assert_int_equal(xvmsg_check_vqueue(&m, 3, XVMSG_MSG_REV_1, &vi), 0);
	assert_false(vi.enabled);
}

/* SET_VQUEUE as both frontends build it: index 0, flags 4, size 8,
 * reserved 12, addresses at 16, 24, 32. */
static void test_build_set_vqueue(void **state)
{
	struct vmsg_set_vqueue_req r;

	memset(&r, 0xa5, sizeof(r));
	xvmsg_build_set_vqueue(&r, XVMSG_MSG_REV_1, 2, 128, 0x10, 0x20, 0x30);
	assert_int_equal(at32(&r, 0), 2);
	assert_int_equal(at32(&r, 4), 0);		/* reserved in revision 1 */
	assert_int_equal(at32(&r, 8), 128);
	assert_int_equal(at32(&r, 12), 0);
	assert_true(at64(&r, 16) == 0x10 && at64(&r, 24) == 0x20 && at64(&r, 32) == 0x30);
	memset(&r, 0xa5, sizeof(r));
	xvmsg_build_set_vqueue(&r, XVMSG_MSG_REV_2, 2, 128, 0x10, 0x20, 0x30);
	assert_int_equal(at32(&r, 4), VMSG_SET_VQ_ENABLE);	/* enable, ignore nothing */
	assert_int_equal(at32(&r, 8), 128);
	assert_int_equal(at32(&r, 12), 0);
	assert_int_equal(VMSG_SET_VQ_KEEP_DISABLED, 0);
	assert_int_equal(VMSG_SET_VQ_ENABLE, 1);
	assert_int_equal(VMSG_SET_VQ_KEEP, 2);
	assert_int_equal(VMSG_SET_VQ_IGNORE_SIZE | VMSG_SET_VQ_IGNORE_DESC |
			 VMSG_SET_VQ_IGNORE_DRIVER | VMSG_SET_VQ_IGNORE_DEVICE, 0x3c);
}

/* GET_SHM: revision 1 {le32 index, length, address}; revision 2 {le32
 * shmid, reserved, le64 length at 8, le64 address at 16}. */
static void test_shm(void **state)
{
	uint8_t pl[24];
	__u64 len, addr;
	struct vmsg m;

	memset(pl, 0, sizeof(pl));
	put32(pl, 0, 5);
	put32(pl, 4, 0x1000);
	put32(pl, 8, 0x2000);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_SHM, 1, 1, pl, 12);
	assert_int_equal(xvmsg_classify(&m, 1, VMSG_GET_SHM, XVMSG_MSG_REV_1), XVMSG_V_RESPONSE);
	assert_int_equal(xvmsg_classify(&m, 1, VMSG_GET_SHM, XVMSG_MSG_REV_2),
			 XVMSG_V_RESP_BROKEN);
	assert_int_equal(xvmsg_check_shm(&m, 5, XVMSG_MSG_REV_1, &len, &addr), 0);
	assert_true(len == 0x1000 && addr == 0x2000);
	assert_int_equal(xvmsg_check_shm(&m, 4, XVMSG_MSG_REV_1, &len, &addr), -EPROTO);

	memset(pl, 0, sizeof(pl));
	put32(pl, 0, 5);
	put32(pl, 4, 0xffffffffu);	/* reserved: ignored */
	put64(pl, 8, 0x100000000ULL);
	put64(pl, 16, 0x8000000000001000ULL);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_SHM, 1, 1, pl, 24);
	assert_int_equal(xvmsg_classify(&m, 1, VMSG_GET_SHM, XVMSG_MSG_REV_2), XVMSG_V_RESPONSE);
	assert_int_equal(xvmsg_check_shm(&m, 5, XVMSG_MSG_REV_2, &len, &addr), 0);
	assert_true(len == 0x100000000ULL && addr == 0x8000000000001000ULL);
	assert_int_equal(xvmsg_check_shm(&m, 6, XVMSG_MSG_REV_2, &len, &addr), -EPROTO);
}

/* Bus messages: GET_DEVICES' field order and EVENT_DEVICE's state name. */
static void test_bus_layouts(void **state)
{
	assert_int_equal(offsetof(struct vmsg_bus_get_devices_resp, count), 2);
	assert_int_equal(offsetof(struct vmsg_bus_get_devices_resp, next_offset), 4);
	assert_int_equal(offsetof(struct vmsg_bus_get_devices_resp, bitmap), 8);
	assert_int_equal(offsetof(struct vmsg_bus_get_devices_resp_v2, next_offset), 2);
	assert_int_equal(offsetof(struct vmsg_bus_get_devices_resp_v2, count), 4);
	assert_int_equal(offsetof(struct vmsg_bus_get_devices_resp_v2, bitmap), 6);
	assert_int_equal(VMSG_DEVICE_STATE_ADDED, 1);
	assert_int_equal(VMSG_DEVICE_STATE_READY, VMSG_DEVICE_STATE_ADDED);
	assert_int_equal(VMSG_DEVICE_STATE_REMOVED, 2);
	assert_int_equal(VMSG_TF_STRICT_CONFIG_GENERATION, 1);
	/* Unchanged: the header and every id. */
	assert_int_equal(sizeof(struct vmsg_hdr), 8);
	assert_int_equal(VMSG_GET_SHM, 0x0c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_count),
		cmocka_unit_test(test_type_device_id),
		cmocka_unit_test(test_classify_header),
		cmocka_unit_test(test_classify_reserved_type_bits),
		cmocka_unit_test(test_classify_response),
		cmocka_unit_test(test_classify_events),
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_features),
		cmocka_unit_test(test_get_config),
		cmocka_unit_test(test_set_config),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_device_info),
		cmocka_unit_test(test_vqueue),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_revisions),
		cmocka_unit_test(test_device_info_v2),
		cmocka_unit_test(test_device_info_v1_admin),
		cmocka_unit_test(test_vqueue_flags),
		cmocka_unit_test(test_build_set_vqueue),
		cmocka_unit_test(test_shm),
		cmocka_unit_test(test_bus_layouts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
