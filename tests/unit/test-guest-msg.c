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
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS), XVMSG_V_RESPONSE);

	m.hdr.msg_size = htole16(7);				/* shorter than a header */
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS), XVMSG_V_BAD);
	m.hdr.msg_size = htole16(VMSG_MAX_SIZE + 1);		/* longer than a slot */
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS), XVMSG_V_BAD);
	m.hdr.msg_size = htole16(0xffff);
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS), XVMSG_V_BAD);

	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_STATUS, 2, 7, st, 4);	/* device 2 */
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS), XVMSG_V_BAD);

	mk(&m, VMSG_TYPE_RESPONSE | VMSG_TYPE_BUS, VMSG_BUS_PING, 0, 7, NULL, 0);
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS), XVMSG_V_BUS);
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
		assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS), XVMSG_V_RESPONSE);
		assert_int_equal(xvmsg_classify(&m, 8, VMSG_GET_DEVICE_STATUS), XVMSG_V_STALE);
		assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_CONFIG), XVMSG_V_RESP_BROKEN);
		mk(&m, (uint8_t)bits, VMSG_EVENT_CONFIG, 1, 0, ev, 16);
		assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_CONFIG), XVMSG_V_EVENT_CONFIG);
		mk(&m, (uint8_t)bits, VMSG_EVENT_USED, 1, 0, ev, 4);
		assert_int_equal(xvmsg_classify(&m, 0, 0), XVMSG_V_EVENT_USED);
		mk(&m, (uint8_t)(bits | VMSG_TYPE_BUS | VMSG_TYPE_RESPONSE), VMSG_BUS_PING, 0, 7,
		   NULL, 0);
		assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS), XVMSG_V_BUS);
		/* What is wrong with the other fields still is. */
		mk(&m, (uint8_t)bits, VMSG_GET_CONFIG, 1, 3, ev, 8);	/* a request */
		assert_int_equal(xvmsg_classify(&m, 3, VMSG_GET_CONFIG), XVMSG_V_BAD);
		mk(&m, (uint8_t)(bits | VMSG_TYPE_RESPONSE), VMSG_GET_DEVICE_STATUS, 1, 7, st, 4);
		m.hdr.msg_size = htole16(7);
		assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS), XVMSG_V_BAD);
	}
}

static void test_classify_response(void **state)
{
	uint8_t st[4] = { 0 };
	struct vmsg m;

	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_STATUS, 1, 7, st, 4);
	assert_int_equal(xvmsg_classify(&m, 0, 0), XVMSG_V_STALE);	/* nothing in flight */
	assert_int_equal(xvmsg_classify(&m, 8, VMSG_GET_DEVICE_STATUS), XVMSG_V_STALE);
	/* Right token, wrong id: the device answers something else. */
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_SET_DEVICE_STATUS), XVMSG_V_RESP_BROKEN);
	/* Right token and id, payload too short for the id. */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_STATUS, 1, 7, st, 3);
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_DEVICE_STATUS), XVMSG_V_RESP_BROKEN);
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_VQUEUE, 1, 7, st, 4);
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_VQUEUE), XVMSG_V_RESP_BROKEN);
	/* Empty responses are fine where the id has no payload. */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_SET_VQUEUE, 1, 7, NULL, 0);
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_SET_VQUEUE), XVMSG_V_RESPONSE);
}

static void test_classify_events(void **state)
{
	uint8_t ev[16] = { 0 };
	struct vmsg m;

	mk(&m, 0, VMSG_EVENT_CONFIG, 1, 0, ev, 16);
	assert_int_equal(xvmsg_classify(&m, 7, VMSG_GET_CONFIG), XVMSG_V_EVENT_CONFIG);
	mk(&m, 0, VMSG_EVENT_CONFIG, 1, 0, ev, 15);			/* too short */
	assert_int_equal(xvmsg_classify(&m, 0, 0), XVMSG_V_BAD);
	mk(&m, 0, VMSG_EVENT_CONFIG, 1, 5, ev, 16);			/* events carry token 0 */
	assert_int_equal(xvmsg_classify(&m, 0, 0), XVMSG_V_BAD);
	mk(&m, 0, VMSG_EVENT_USED, 1, 0, ev, 4);
	assert_int_equal(xvmsg_classify(&m, 0, 0), XVMSG_V_EVENT_USED);
	mk(&m, 0, VMSG_EVENT_AVAIL, 1, 0, ev, 8);			/* driver -> device only */
	assert_int_equal(xvmsg_classify(&m, 0, 0), XVMSG_V_BAD);
	mk(&m, 0, VMSG_GET_CONFIG, 1, 3, ev, 8);			/* a request to the driver */
	assert_int_equal(xvmsg_classify(&m, 3, VMSG_GET_CONFIG), XVMSG_V_BAD);
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
	assert_int_equal(xvmsg_check_device_info(&m, &di), 0);
	assert_int_equal(di.device_id, 2);
	assert_int_equal(di.config_size, 60);
	assert_int_equal(di.max_vqs, 1);
	pl[0] = 0;						/* no device */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 24);
	assert_int_equal(xvmsg_check_device_info(&m, &di), -EPROTO);
	pl[0] = htole32(2);
	pl[3] = htole32(XVMSG_MAX_CONFIG_SIZE + 1);		/* absurd config space */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 24);
	assert_int_equal(xvmsg_check_device_info(&m, &di), -EPROTO);
	pl[3] = htole32(60);
	pl[4] = htole32(XVMSG_MAX_QUEUES + 1);			/* more queues than channels */
	mk(&m, VMSG_TYPE_RESPONSE, VMSG_GET_DEVICE_INFO, 1, 1, pl, 24);
	assert_int_equal(xvmsg_check_device_info(&m, &di), -EPROTO);
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
	assert_int_equal(xvmsg_check_vqueue(&m, 1, &vi), 0);
	assert_int_equal(vi.max_size, 256);
	assert_int_equal(vi.cur_size, 128);
	assert_true(vi.desc_addr == XVMSG_GRANT_ADDR(9, 0));
	assert_int_equal(xvmsg_check_vqueue(&m, 0, &vi), -EPROTO);

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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
