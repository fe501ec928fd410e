/* SPDX-License-Identifier: MIT */
/*
 * virtio-msg transport messages, as used by xvmsg, in both message layout
 * revisions xvmsg speaks (negotiated per device, xenbus.h: msg-revisions,
 * msg-revision):
 *
 *   1  the 2025 drafts (wmamills/virtio-msg-spec, branch bertrand-pr28,
 *      2025-12-01), as xvmsg has always sent them;
 *   2  the 2026 revision (the virtio-msg branch after the January 2026 v1
 *      posting to virtio-comment, as Arm's Linux proof of concept v2 carries
 *      it in include/linux/virtio_msg_protocol.h): GET_DEVICE_INFO with
 *      device_uuid and le32 admin fields, SET_VQUEUE / GET_VQUEUE flags,
 *      64-bit GET_SHM, GET_DEVICES reordered, EVENT_DEVICE ADDED.
 *
 * The draft itself calls both "virtio-msg revision 1"; these numbers are
 * xvmsg's, for what changed between the two texts.  The 8-byte header and
 * every message id are the same in both.
 *
 * Every virtio transport operation (device info, features, config space,
 * status, virtqueue setup, notifications) is one message.  A request carries a
 * non-zero token that its response echoes; events carry token 0 and are never
 * answered.  All fields are little-endian.  See docs/protocol.md.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_MSG_H
#define XVMSG_MSG_H

#include "types.h"

/* Message layout revisions (see above).  A set of them is a bit mask with
 * bit r for revision r, as the msg-revisions key lists them. */
#define XVMSG_MSG_REV_1		1	/* 2025 drafts */
#define XVMSG_MSG_REV_2		2	/* 2026 revision */
#define XVMSG_MSG_REV_MIN	XVMSG_MSG_REV_1
#define XVMSG_MSG_REV_MAX	XVMSG_MSG_REV_2
#define XVMSG_MSG_REVS_ALL	((1u << XVMSG_MSG_REV_1) | (1u << XVMSG_MSG_REV_2))
/* The newest revision this code speaks (xvmsg-backend --version). */
#define XVMSG_MSG_REVISION	XVMSG_MSG_REV_MAX

/* Common header, 8 bytes. */
struct vmsg_hdr {
	__u8	type;		/* XVMSG_TYPE_* bits */
	__u8	msg_id;		/* VMSG_* id */
	__le16	dev_num;	/* target device; 0 for bus messages */
	__le16	token;		/* non-zero in requests, echoed; 0 in events */
	__le16	msg_size;	/* header + payload, 8 .. bus maximum */
};
XVMSG_ASSERT_SIZE(struct vmsg_hdr, 8);
XVMSG_ASSERT_OFF(struct vmsg_hdr, msg_size, 6);

#define VMSG_TYPE_RESPONSE	0x01	/* bit 0: 0 request, 1 response */
#define VMSG_TYPE_BUS		0x02	/* bit 1: 0 transport, 1 bus message */
/*
 * Bits 2..7 are reserved: a sender writes them as zero and a receiver
 * ignores them (the draft's forward-compatibility rule), so no message is
 * dropped for them and no receiver looks at them.
 */
#define VMSG_TYPE_RESERVED	0xfc

/*
 * Largest message on the xvmsg buses (one ring slot, see xenbus.h).  The
 * virtio-msg draft recommends at most 264; our slots hold 248 so that two
 * rings of 8 slots and their control blocks fit one 4 KiB page.
 */
#define VMSG_MAX_SIZE		248
#define VMSG_MAX_PAYLOAD	(VMSG_MAX_SIZE - 8)

/* Transport requests (0x00-0x3f) and events (0x40-0x7f). */
#define VMSG_GET_DEVICE_INFO		0x02
#define VMSG_GET_DEVICE_FEATURES	0x03
#define VMSG_SET_DRIVER_FEATURES	0x04
#define VMSG_GET_CONFIG			0x05
#define VMSG_SET_CONFIG			0x06
#define VMSG_GET_DEVICE_STATUS		0x07
#define VMSG_SET_DEVICE_STATUS		0x08
#define VMSG_GET_VQUEUE			0x09
#define VMSG_SET_VQUEUE			0x0a
#define VMSG_RESET_VQUEUE		0x0b
#define VMSG_GET_SHM			0x0c
#define VMSG_EVENT_CONFIG		0x40
#define VMSG_EVENT_AVAIL		0x41
#define VMSG_EVENT_USED			0x42
#define VMSG_ID_EVENT_FIRST		0x40
#define VMSG_ID_EVENT_LAST		0x7f

/* Bus messages (type has VMSG_TYPE_BUS). Ids >= 0x80 are bus specific. */
#define VMSG_BUS_GET_DEVICES		0x02
#define VMSG_BUS_PING			0x03
#define VMSG_BUS_EVENT_DEVICE		0x40

#define VMSG_DEVICE_STATE_ADDED		1	/* revision 2's name */
#define VMSG_DEVICE_STATE_READY		VMSG_DEVICE_STATE_ADDED	/* revision 1's */
#define VMSG_DEVICE_STATE_REMOVED	2

/*
 * Transport feature bits (revision 2): parameters of the bus instance, not
 * device features; xenbus.h's transport-features key carries them.
 * STRICT_CONFIG_GENERATION: SET_CONFIG carries the driver's generation and
 * the device rejects a stale one (the "strict" profile; without it the
 * "baseline" profile: drivers send 0, devices ignore it).  xvmsg devices are
 * strict in both revisions.
 */
#define VMSG_TF_STRICT_CONFIG_GENERATION	(1u << 0)

/* Largest feature block count one GET_DEVICE_FEATURES can carry. */
#define VMSG_MAX_FEATURE_BLOCKS		((VMSG_MAX_PAYLOAD - 8) / 4)
/* Largest config chunk one GET_CONFIG / SET_CONFIG can carry. */
#define VMSG_MAX_CONFIG_CHUNK		(VMSG_MAX_PAYLOAD - 12)

/* ---- payloads ---- */

struct vmsg_device_info_resp {		/* revision 1 */
	__le32	device_id;		/* virtio device id; 0 = none */
	__le32	vendor_id;
	__le32	num_feature_bits;	/* multiple of 32 */
	__le32	config_size;
	__le32	max_vqs;
	__le16	admin_vq_start;
	__le16	admin_vq_count;
};
XVMSG_ASSERT_SIZE(struct vmsg_device_info_resp, 24);
XVMSG_ASSERT_OFF(struct vmsg_device_info_resp, admin_vq_start, 20);

struct vmsg_device_info_resp_v2 {	/* revision 2 */
	__le32	device_id;		/* virtio device id; 0 = none */
	__le32	vendor_id;
	__u8	device_uuid[16];	/* nil (all zero) when the device has none */
	__le32	num_feature_blocks;	/* 32-bit feature blocks */
	__le32	config_size;
	__le32	max_vqs;		/* including admin queues, <= 65536 */
	__le32	admin_vq_start;
	__le32	admin_vq_count;
};
XVMSG_ASSERT_SIZE(struct vmsg_device_info_resp_v2, 44);
XVMSG_ASSERT_OFF(struct vmsg_device_info_resp_v2, device_uuid, 8);
XVMSG_ASSERT_OFF(struct vmsg_device_info_resp_v2, num_feature_blocks, 24);
XVMSG_ASSERT_OFF(struct vmsg_device_info_resp_v2, admin_vq_count, 40);
/* Revision 2's smallest message: the header and this response. */
#define VMSG_REV2_MIN_MSG_SIZE	(8 + 44)

struct vmsg_features {		/* GET_DEVICE_FEATURES req (no data), its resp, SET_DRIVER_FEATURES */
	__le32	block_index;
	__le32	num_blocks;
	__le32	data[];		/* num_blocks words, not in the GET request */
};
XVMSG_ASSERT_SIZE(struct vmsg_features, 8);

struct vmsg_get_config_req {
	__le32	offset;
	__le32	length;
};
XVMSG_ASSERT_SIZE(struct vmsg_get_config_req, 8);

struct vmsg_config {		/* GET_CONFIG resp, SET_CONFIG req and resp */
	__le32	generation;	/* SET_CONFIG resp: the new generation */
	__le32	offset;
	__le32	length;		/* SET_CONFIG resp: 0 = rejected */
	__u8	data[];
};
XVMSG_ASSERT_SIZE(struct vmsg_config, 12);

struct vmsg_status {		/* GET_DEVICE_STATUS resp, SET_DEVICE_STATUS req and resp */
	__le32	status;
};
XVMSG_ASSERT_SIZE(struct vmsg_status, 4);

struct vmsg_vq_index {		/* GET_VQUEUE req, RESET_VQUEUE req, GET_SHM req (shmid) */
	__le32	index;
};
XVMSG_ASSERT_SIZE(struct vmsg_vq_index, 4);

struct vmsg_get_vqueue_resp {
	__le32	index;
	__le32	max_size;	/* 0 = no such queue */
	__le32	cur_size;
	__le32	flags;		/* revision 1: reserved, 0; revision 2: VMSG_VQ_F_* */
	__le64	desc_addr;
	__le64	driver_addr;
	__le64	device_addr;
};
XVMSG_ASSERT_SIZE(struct vmsg_get_vqueue_resp, 40);
XVMSG_ASSERT_OFF(struct vmsg_get_vqueue_resp, desc_addr, 16);
XVMSG_ASSERT_OFF(struct vmsg_get_vqueue_resp, flags, 12);

/* GET_VQUEUE flags, revision 2 (bits 1..31 reserved). */
#define VMSG_VQ_F_ENABLED	(1u << 0)

struct vmsg_set_vqueue_req {
	__le32	index;
	__le32	flags;		/* revision 1: reserved, ignored; revision 2: VMSG_SET_VQ_* */
	__le32	size;		/* revision 1: 0 disables the queue */
	__le32	reserved1;
	__le64	desc_addr;
	__le64	driver_addr;
	__le64	device_addr;
};
XVMSG_ASSERT_SIZE(struct vmsg_set_vqueue_req, 40);
XVMSG_ASSERT_OFF(struct vmsg_set_vqueue_req, desc_addr, 16);
XVMSG_ASSERT_OFF(struct vmsg_set_vqueue_req, flags, 4);

/*
 * SET_VQUEUE flags, revision 2.  Bits 1:0 say what becomes of the queue's
 * enabled state; bits 2..5 keep the current value of a field instead of the
 * request's; bits 6..31 are reserved.
 */
#define VMSG_SET_VQ_STATE_MASK		0x3u
#define VMSG_SET_VQ_KEEP_DISABLED	0x0u	/* configure, leave disabled */
#define VMSG_SET_VQ_ENABLE		0x1u	/* configure and enable */
#define VMSG_SET_VQ_KEEP		0x2u	/* configure, enabled state unchanged */
/* 0x3 is reserved: such a request is refused */
#define VMSG_SET_VQ_IGNORE_SIZE		(1u << 2)
#define VMSG_SET_VQ_IGNORE_DESC		(1u << 3)
#define VMSG_SET_VQ_IGNORE_DRIVER	(1u << 4)
#define VMSG_SET_VQ_IGNORE_DEVICE	(1u << 5)

struct vmsg_get_shm_resp {	/* revision 1 */
	__le32	index;
	__le32	length;	/* 0 = none */
	__le32	address;
};
XVMSG_ASSERT_SIZE(struct vmsg_get_shm_resp, 12);

struct vmsg_get_shm_resp_v2 {	/* revision 2 */
	__le32	shmid;
	__le32	reserved;
	__le64	length;	/* 0 = no such region */
	__le64	address;
};
XVMSG_ASSERT_SIZE(struct vmsg_get_shm_resp_v2, 24);
XVMSG_ASSERT_OFF(struct vmsg_get_shm_resp_v2, length, 8);

struct vmsg_event_config {
	__le32	status;
	__le32	generation;
	__le32	offset;
	__le32	length;
	__u8	data[];
};
XVMSG_ASSERT_SIZE(struct vmsg_event_config, 16);

struct vmsg_event_avail {
	__le32	vq_index;
	__le32	next_off_wrap;	/* 0 without VIRTIO_F_NOTIFICATION_DATA */
};
XVMSG_ASSERT_SIZE(struct vmsg_event_avail, 8);

struct vmsg_event_used {
	__le32	vq_index;
};
XVMSG_ASSERT_SIZE(struct vmsg_event_used, 4);

struct vmsg_bus_get_devices_resp {	/* revision 1 */
	__le16	offset;		/* first device number covered by bitmap */
	__le16	count;		/* device numbers covered */
	__le16	next_offset;	/* 0 = no more */
	__le16	reserved;
	__u8	bitmap[32];	/* bit n = device (offset + n) present */
};
XVMSG_ASSERT_SIZE(struct vmsg_bus_get_devices_resp, 40);

struct vmsg_bus_get_devices_resp_v2 {	/* revision 2 */
	__le16	offset;		/* first device number covered by bitmap */
	__le16	next_offset;	/* 0 = no more */
	__le16	count;		/* device numbers covered, bitmap has count / 8 bytes */
	__u8	bitmap[32];	/* bit n = device (offset + n) present */
};
XVMSG_ASSERT_SIZE(struct vmsg_bus_get_devices_resp_v2, 38);
XVMSG_ASSERT_OFF(struct vmsg_bus_get_devices_resp_v2, count, 4);
XVMSG_ASSERT_OFF(struct vmsg_bus_get_devices_resp_v2, bitmap, 6);

struct vmsg_bus_event_device {
	__le16	dev_num;
	__le16	state;		/* VMSG_DEVICE_STATE_* */
};
XVMSG_ASSERT_SIZE(struct vmsg_bus_event_device, 4);

/* One whole message as it sits in a ring slot.  8-byte aligned so that
 * payload structs can be accessed in place (slots are at 8-byte offsets). */
struct vmsg {
	struct vmsg_hdr	hdr;
	__u8		payload[VMSG_MAX_PAYLOAD];
} __attribute__((__aligned__(8)));
XVMSG_ASSERT_SIZE(struct vmsg, VMSG_MAX_SIZE);

/* virtio status bits (virtio 1.2, 2.1) */
#define VMSG_STATUS_ACKNOWLEDGE		1
#define VMSG_STATUS_DRIVER		2
#define VMSG_STATUS_DRIVER_OK		4
#define VMSG_STATUS_FEATURES_OK		8
#define VMSG_STATUS_NEEDS_RESET		64
#define VMSG_STATUS_FAILED		128

/* Feature bits every xvmsg device offers and requires. */
#define VMSG_F_VERSION_1		32
#define VMSG_F_ACCESS_PLATFORM		33
#define VMSG_F_RING_RESET		40

/* Bits 24..41 are the transport's: the rings and feature negotiation
 * (virtio 1.2, 2.2, ended the range at 40; Linux and later drafts use 41
 * too).  Of those, an xvmsg device may offer and a driver may
 * accept only these: split rings with indirect descriptors and event
 * indices, VERSION_1, ACCESS_PLATFORM.  A driver clears every other bit of
 * the range whatever the device offers (IN_ORDER, PACKED, RING_RESET,
 * NOTIFICATION_DATA, ...): a device that offers one is lying about what
 * the protocol carries. */
#define VMSG_F_TRANSPORT_FIRST		24
#define VMSG_F_TRANSPORT_LAST		41
#define VMSG_F_INDIRECT_DESC		28
#define VMSG_F_EVENT_IDX		29
#define VMSG_TRANSPORT_FEATURES		((1ULL << VMSG_F_INDIRECT_DESC) |	\
					 (1ULL << VMSG_F_EVENT_IDX) |		\
					 (1ULL << VMSG_F_VERSION_1) |		\
					 (1ULL << VMSG_F_ACCESS_PLATFORM))
/* The transport bits of a feature word that no xvmsg driver may accept. */
#define VMSG_TRANSPORT_FORBIDDEN					\
	(((1ULL << (VMSG_F_TRANSPORT_LAST + 1)) - (1ULL << VMSG_F_TRANSPORT_FIRST)) & \
	 ~VMSG_TRANSPORT_FEATURES)

/* Header helpers shared by both sides (type bits 2..7 are never looked at). */

/* msg_size covers at least the header and at most one ring slot. */
static inline int vmsg_size_ok(const struct vmsg_hdr *h)
{
	unsigned int size = le16_to_cpu(h->msg_size);

	return size >= sizeof(*h) && size <= VMSG_MAX_SIZE;
}

static inline int vmsg_is_response(const struct vmsg_hdr *h)
{
	return h->type & VMSG_TYPE_RESPONSE;
}

static inline int vmsg_is_bus(const struct vmsg_hdr *h)
{
	return h->type & VMSG_TYPE_BUS;
}

static inline int vmsg_is_event_id(unsigned int id)
{
	return id >= VMSG_ID_EVENT_FIRST && id <= VMSG_ID_EVENT_LAST;
}

#endif /* XVMSG_MSG_H */
