/* SPDX-License-Identifier: MIT */
/*
 * Pure helpers that judge what a backend sent: message
 * headers, response payloads, ring indices, xenstore values.  No locks, no
 * allocation, no shared memory: every function works on a private copy, so
 * the same file compiles in the kernel and in userspace (tests/unit/
 * test-guest-msg.c), and the userspace driver (driver/) uses them too.
 *
 * Functions that read or build a payload whose layout changed between
 * xvmsg's message layout revisions (msg.h: XVMSG_MSG_REV_*) take the
 * revision the device negotiated (rev); every other helper is the same in
 * both.
 *
 * Rules (docs/protocol.md, sections 2 and 3):
 *   - msg_size outside 8..248, a transport message for a device other than
 *     1, or a payload shorter than its id needs: discarded;
 *   - type bits 2..7 are reserved and ignored (never a reason to discard);
 *   - a response is accepted only for the one request in flight (token and
 *     id both match);
 *   - a ring holding more than XVMSG_RING_SLOTS messages is corrupt.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_WIRE_H
#define XVMSG_WIRE_H

#include <xvmsg/msg.h>
#include <xvmsg/xenbus.h>

#ifdef __KERNEL__
#include <linux/errno.h>
#include <linux/string.h>
#else
#include <errno.h>
#include <string.h>
#endif

/* Largest config space the module reads (virtio devices stay far below). */
#define XVMSG_MAX_CONFIG_SIZE	4096
/* Largest virtqueue the module sets up (split rings: 2^15). */
#define XVMSG_MAX_QUEUE_SIZE	32768

/*
 * A fresh message page, as the frontend grants it: magic and version, both
 * rings empty, and (as Xen's SHARED_RING_INIT) the first message of each
 * ring signalled.
 */
static inline void xvmsg_msg_page_init(struct xvmsg_msg_page *p)
{
	memset(p, 0, sizeof(*p));
	p->magic = cpu_to_le32(XVMSG_MSG_PAGE_MAGIC);
	p->version = cpu_to_le16(XVMSG_MSG_PAGE_VERSION);
	p->d2b.cons_event = cpu_to_le32(1);
	p->b2d.cons_event = cpu_to_le32(1);
}

/* Messages the ring holds, from indices just read; -1 when it is corrupt. */
static inline int xvmsg_ring_count(__u32 prod, __u32 cons)
{
	__u32 n = prod - cons;

	return n > XVMSG_RING_SLOTS ? -1 : (int)n;
}

/* Is rev a message layout revision this code speaks? */
static inline int xvmsg_rev_known(unsigned int rev)
{
	return rev >= XVMSG_MSG_REV_MIN && rev <= XVMSG_MSG_REV_MAX;
}

/*
 * A msg-revisions value ("1,2": decimal revisions 1..31 separated by single
 * commas, nothing else): *mask gets bit r for each revision r named, known
 * or not.  0, or -EINVAL.
 */
static inline int xvmsg_parse_revisions(const char *s, __u32 *mask)
{
	__u32 m = 0, v = 0;
	size_t i, digits = 0;

	if (!s)
		return -EINVAL;
	for (i = 0;; i++) {
		if (s[i] >= '0' && s[i] <= '9') {
			v = v * 10 + (__u32)(s[i] - '0');
			if (++digits > 2 || v > 31)
				return -EINVAL;
			continue;
		}
		if ((s[i] != ',' && s[i] != '\0') || !digits || !v)
			return -EINVAL;
		m |= 1u << v;
		if (s[i] == '\0')
			break;
		v = 0;
		digits = 0;
	}
	*mask = m;
	return 0;
}

/*
 * The revision a side speaking the set ours uses with a peer speaking the
 * set theirs (both bit masks, msg-revisions): the highest known revision in
 * both, or -EPROTONOSUPPORT when there is none.
 */
static inline int xvmsg_pick_revision(__u32 ours, __u32 theirs)
{
	unsigned int r;

	for (r = XVMSG_MSG_REV_MAX; r >= XVMSG_MSG_REV_MIN; r--)
		if (ours & theirs & (1u << r))
			return (int)r;
	return -EPROTONOSUPPORT;
}

/*
 * Smallest payload a response (response != 0) or an event with this id has
 * in layout revision rev.
 */
static inline unsigned int xvmsg_min_payload(unsigned int id, int response, unsigned int rev)
{
	if (!response) {
		switch (id) {
		case VMSG_EVENT_CONFIG:	return sizeof(struct vmsg_event_config);
		case VMSG_EVENT_USED:	return sizeof(struct vmsg_event_used);
		default:		return 0;
		}
	}
	switch (id) {
	case VMSG_GET_DEVICE_INFO:	return rev >= XVMSG_MSG_REV_2 ?
					       sizeof(struct vmsg_device_info_resp_v2) :
					       sizeof(struct vmsg_device_info_resp);
	case VMSG_GET_DEVICE_FEATURES:	return sizeof(struct vmsg_features);
	case VMSG_GET_CONFIG:
	case VMSG_SET_CONFIG:		return sizeof(struct vmsg_config);
	case VMSG_GET_DEVICE_STATUS:
	case VMSG_SET_DEVICE_STATUS:	return sizeof(struct vmsg_status);
	case VMSG_GET_VQUEUE:		return sizeof(struct vmsg_get_vqueue_resp);
	case VMSG_GET_SHM:		return rev >= XVMSG_MSG_REV_2 ?
					       sizeof(struct vmsg_get_shm_resp_v2) :
					       sizeof(struct vmsg_get_shm_resp);
	default:			return 0;
	}
}

/* Payload bytes of a message whose header passed xvmsg_classify. */
static inline unsigned int xvmsg_payload_len(const struct vmsg *m)
{
	/* Never more than a slot holds, whatever the header says (found by
	 * fuzzing: a size below the header's used to wrap around). */
	if (!vmsg_size_ok(&m->hdr))
		return 0;
	return le16_to_cpu(m->hdr.msg_size) - (unsigned int)sizeof(struct vmsg_hdr);
}

/* What a message copied out of the b2d ring is. */
enum xvmsg_verdict {
	XVMSG_V_BAD,		/* malformed or unexpected: discard and count */
	XVMSG_V_STALE,		/* a response nobody waits for: discard and count */
	XVMSG_V_RESPONSE,	/* the response to the request in flight */
	XVMSG_V_RESP_BROKEN,	/* right token, wrong id or too short: device broken */
	XVMSG_V_EVENT_CONFIG,
	XVMSG_V_EVENT_USED,
	XVMSG_V_BUS,		/* a bus message: none is expected, ignored */
};

/*
 * Classify a private copy of a b2d message.  wait_token is the token of the
 * request in flight (0: none), wait_id its message id, rev the device's
 * layout revision.
 */
static inline enum xvmsg_verdict xvmsg_classify(const struct vmsg *m, __u16 wait_token,
						__u8 wait_id, unsigned int rev)
{
	unsigned int id = m->hdr.msg_id, psize;
	__u16 token = le16_to_cpu(m->hdr.token);

	/* Type bits 2..7 are reserved: ignored, whatever they hold. */
	if (!vmsg_size_ok(&m->hdr))
		return XVMSG_V_BAD;
	psize = xvmsg_payload_len(m);
	if (vmsg_is_bus(&m->hdr))
		return XVMSG_V_BUS;
	if (le16_to_cpu(m->hdr.dev_num) != XVMSG_DEV_NUM)
		return XVMSG_V_BAD;
	if (vmsg_is_response(&m->hdr)) {
		if (!wait_token || token != wait_token)
			return XVMSG_V_STALE;
		if (id != wait_id || psize < xvmsg_min_payload(id, 1, rev))
			return XVMSG_V_RESP_BROKEN;
		return XVMSG_V_RESPONSE;
	}
	if (!vmsg_is_event_id(id) || token != 0)
		return XVMSG_V_BAD;
	if (id == VMSG_EVENT_CONFIG && psize >= xvmsg_min_payload(id, 0, rev))
		return XVMSG_V_EVENT_CONFIG;
	if (id == VMSG_EVENT_USED && psize >= xvmsg_min_payload(id, 0, rev))
		return XVMSG_V_EVENT_USED;
	return XVMSG_V_BAD;
}

/* Build a transport request: header plus len payload bytes, rest zero. */
static inline void xvmsg_msg_build(struct vmsg *m, __u8 id, __u16 token, const void *payload,
				   unsigned int len)
{
	memset(m, 0, sizeof(*m));
	m->hdr.type = 0;
	m->hdr.msg_id = id;
	m->hdr.dev_num = cpu_to_le16(XVMSG_DEV_NUM);
	m->hdr.token = cpu_to_le16(token);
	m->hdr.msg_size = cpu_to_le16((__u16)(sizeof(struct vmsg_hdr) + len));
	if (len)
		memcpy(m->payload, payload, len);
}

/*
 * GET_DEVICE_FEATURES response for blocks [block, block + nblocks): copies
 * the words to out.  0, or -EPROTO when the response does not answer that.
 */
static inline int xvmsg_check_features(const struct vmsg *m, __u32 block, __u32 nblocks,
				       __u32 *out)
{
	struct vmsg_features f;
	__u32 i;

	if (nblocks > VMSG_MAX_FEATURE_BLOCKS ||
	    xvmsg_payload_len(m) < sizeof(f) + 4 * nblocks)
		return -EPROTO;
	memcpy(&f, m->payload, sizeof(f));
	if (le32_to_cpu(f.block_index) != block || le32_to_cpu(f.num_blocks) != nblocks)
		return -EPROTO;
	for (i = 0; i < nblocks; i++) {
		__le32 w;

		memcpy(&w, m->payload + sizeof(f) + 4 * i, 4);
		out[i] = le32_to_cpu(w);
	}
	return 0;
}

/*
 * GET_CONFIG response to (off, len): *gen and the offset of the data in the
 * payload.  0; -ERANGE when the device says the range is outside its config
 * space (length 0); -EPROTO when the response does not answer the request.
 */
static inline int xvmsg_check_get_config(const struct vmsg *m, __u32 off, __u32 len,
					 __u32 *gen, unsigned int *data_off)
{
	struct vmsg_config c;

	memcpy(&c, m->payload, sizeof(c));
	if (le32_to_cpu(c.offset) != off)
		return -EPROTO;
	*gen = le32_to_cpu(c.generation);
	if (le32_to_cpu(c.length) == 0 && len)
		return -ERANGE;
	if (le32_to_cpu(c.length) != len || xvmsg_payload_len(m) < sizeof(c) + len)
		return -EPROTO;
	*data_off = sizeof(c);
	return 0;
}

/*
 * SET_CONFIG response to (off, len): *gen is the device's generation now.
 * 0 accepted; -EAGAIN rejected (length 0); -EPROTO malformed.
 */
static inline int xvmsg_check_set_config(const struct vmsg *m, __u32 off, __u32 len, __u32 *gen)
{
	struct vmsg_config c;
	__u32 n;

	memcpy(&c, m->payload, sizeof(c));
	n = le32_to_cpu(c.length);
	if (le32_to_cpu(c.offset) != off || (n && n != len))
		return -EPROTO;
	*gen = le32_to_cpu(c.generation);
	return n ? 0 : -EAGAIN;
}

/*
 * The status the driver may believe after asking for `requested` and getting
 * `reported` back: the device may refuse bits (FEATURES_OK, DRIVER_OK) but
 * never add any, so a backend cannot make the virtio core see DRIVER_OK it
 * never set.  NEEDS_RESET arrives by EVENT_CONFIG and is handled there.
 */
static inline __u8 xvmsg_status_accept(__u8 requested, __u32 reported)
{
	return requested & (__u8)reported;
}

/* GET_DEVICE_INFO response, in CPU order, whatever the revision. */
struct xvmsg_dev_info {
	__u32 device_id, vendor_id, num_feature_bits, config_size, max_vqs;
	__u32 admin_vq_start, admin_vq_count;
	__u8 device_uuid[16];		/* revision 1: none, all zero */
};

/*
 * GET_DEVICE_INFO response in layout revision rev (its size checked by
 * xvmsg_classify): 0 or -EPROTO.  Revision 2's num_feature_blocks becomes
 * num_feature_bits (blocks * 32), so callers see one shape.
 */
static inline int xvmsg_check_device_info(const struct vmsg *m, unsigned int rev,
					  struct xvmsg_dev_info *out)
{
	memset(out, 0, sizeof(*out));
	if (rev >= XVMSG_MSG_REV_2) {
		struct vmsg_device_info_resp_v2 r;
		__u32 blocks;

		memcpy(&r, m->payload, sizeof(r));
		blocks = le32_to_cpu(r.num_feature_blocks);
		out->device_id = le32_to_cpu(r.device_id);
		out->vendor_id = le32_to_cpu(r.vendor_id);
		memcpy(out->device_uuid, r.device_uuid, sizeof(out->device_uuid));
		out->num_feature_bits = blocks <= VMSG_MAX_FEATURE_BLOCKS ? 32 * blocks : 0;
		out->config_size = le32_to_cpu(r.config_size);
		out->max_vqs = le32_to_cpu(r.max_vqs);
		out->admin_vq_start = le32_to_cpu(r.admin_vq_start);
		out->admin_vq_count = le32_to_cpu(r.admin_vq_count);
	} else {
		struct vmsg_device_info_resp r;

		memcpy(&r, m->payload, sizeof(r));
		out->device_id = le32_to_cpu(r.device_id);
		out->vendor_id = le32_to_cpu(r.vendor_id);
		out->num_feature_bits = le32_to_cpu(r.num_feature_bits);
		out->config_size = le32_to_cpu(r.config_size);
		out->max_vqs = le32_to_cpu(r.max_vqs);
		out->admin_vq_start = le16_to_cpu(r.admin_vq_start);
		out->admin_vq_count = le16_to_cpu(r.admin_vq_count);
	}
	if (!out->device_id || out->config_size > XVMSG_MAX_CONFIG_SIZE ||
	    !out->max_vqs || out->max_vqs > XVMSG_MAX_QUEUES ||
	    !out->num_feature_bits || out->num_feature_bits % 32 ||
	    (__u64)out->admin_vq_start + out->admin_vq_count > out->max_vqs)
		return -EPROTO;
	return 0;
}

/* Queue size to use for a device maximum: a power of two <= 32768, 0 = none. */
static inline unsigned int xvmsg_queue_size(__u32 max_size)
{
	unsigned int s = 1;

	if (!max_size)
		return 0;
	if (max_size > XVMSG_MAX_QUEUE_SIZE)
		max_size = XVMSG_MAX_QUEUE_SIZE;
	while (s * 2 <= max_size)
		s *= 2;
	return s;
}

/* GET_VQUEUE response, in CPU order, whatever the revision. */
struct xvmsg_vq_info {
	__u32 index, max_size, cur_size;
	__u64 desc_addr, driver_addr, device_addr;
	int enabled;		/* revision 2: VMSG_VQ_F_ENABLED; revision 1: cur_size != 0 */
};

/* GET_VQUEUE response for queue index in layout revision rev: 0 or -EPROTO.
 * Reserved flag bits are ignored. */
static inline int xvmsg_check_vqueue(const struct vmsg *m, __u32 index, unsigned int rev,
				     struct xvmsg_vq_info *out)
{
	struct vmsg_get_vqueue_resp r;

	memcpy(&r, m->payload, sizeof(r));
	out->index = le32_to_cpu(r.index);
	out->max_size = le32_to_cpu(r.max_size);
	out->cur_size = le32_to_cpu(r.cur_size);
	out->desc_addr = le64_to_cpu(r.desc_addr);
	out->driver_addr = le64_to_cpu(r.driver_addr);
	out->device_addr = le64_to_cpu(r.device_addr);
	out->enabled = rev >= XVMSG_MSG_REV_2 ? !!(le32_to_cpu(r.flags) & VMSG_VQ_F_ENABLED) :
		       out->cur_size != 0;
	return out->index == index ? 0 : -EPROTO;
}

/*
 * SET_VQUEUE request that sets up queue index with size and the three ring
 * addresses and enables it, in layout revision rev (revision 1: a non-zero
 * size enables; revision 2: flags ENABLE, nothing ignored).
 */
static inline void xvmsg_build_set_vqueue(struct vmsg_set_vqueue_req *r, unsigned int rev,
					  __u32 index, __u32 size, __u64 desc, __u64 driver,
					  __u64 device)
{
	memset(r, 0, sizeof(*r));
	r->index = cpu_to_le32(index);
	r->flags = cpu_to_le32(rev >= XVMSG_MSG_REV_2 ? VMSG_SET_VQ_ENABLE : 0);
	r->size = cpu_to_le32(size);
	r->desc_addr = cpu_to_le64(desc);
	r->driver_addr = cpu_to_le64(driver);
	r->device_addr = cpu_to_le64(device);
}

/*
 * GET_SHM response for region shmid in layout revision rev: *length and
 * *address (revision 1: 32-bit fields).  0, or -EPROTO when it answers
 * another region.
 */
static inline int xvmsg_check_shm(const struct vmsg *m, __u32 shmid, unsigned int rev,
				  __u64 *length, __u64 *address)
{
	__u32 id;

	if (rev >= XVMSG_MSG_REV_2) {
		struct vmsg_get_shm_resp_v2 r;

		memcpy(&r, m->payload, sizeof(r));
		id = le32_to_cpu(r.shmid);
		*length = le64_to_cpu(r.length);
		*address = le64_to_cpu(r.address);
	} else {
		struct vmsg_get_shm_resp r;

		memcpy(&r, m->payload, sizeof(r));
		id = le32_to_cpu(r.index);
		*length = le32_to_cpu(r.length);
		*address = le32_to_cpu(r.address);
	}
	return id == shmid ? 0 : -EPROTO;
}

/*
 * A xenstore number: decimal, no sign, no spaces, fits 32 bits.  0, -EINVAL,
 * -ERANGE.  The one parser of numbers a peer or the toolstack wrote, for the
 * backend, the userspace driver and the module alike.
 */
static inline int xvmsg_parse_u32_len(const char *s, size_t len, __u32 *out)
{
	__u64 v = 0;
	size_t i;

	if (!s || !len)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (__u64)(s[i] - '0');
		if (v > 0xffffffffULL)
			return -ERANGE;
	}
	*out = (__u32)v;
	return 0;
}

/* The same for a whole NUL-terminated string. */
static inline int xvmsg_parse_u32(const char *s, __u32 *out)
{
	return xvmsg_parse_u32_len(s, s ? strlen(s) : 0, out);
}

/* The name of a mode, as xenstore and every log and counter spell it; "?"
 * for a value that is no mode. */
static inline const char *xvmsg_mode_name(enum xvmsg_mode mode)
{
	switch (mode) {
	case XVMSG_MODE_POOL:	return "pool";
	case XVMSG_MODE_GRANT:	return "grant";
	case XVMSG_MODE_FULL:	return "full";
	}
	return "?";
}

/* The len bytes at s name a mode: 0 and *out set, or -EINVAL. */
static inline int xvmsg_parse_mode_len(const char *s, size_t len, enum xvmsg_mode *out)
{
	static const enum xvmsg_mode modes[XVMSG_NR_MODES] = {
		XVMSG_MODE_POOL, XVMSG_MODE_GRANT, XVMSG_MODE_FULL,
	};
	unsigned int i;

	for (i = 0; s && i < XVMSG_NR_MODES; i++) {
		const char *name = xvmsg_mode_name(modes[i]);

		if (len == strlen(name) && !memcmp(s, name, len)) {
			*out = modes[i];
			return 0;
		}
	}
	return -EINVAL;
}

/* A xenstore mode value, "pool" | "grant" | "full" exactly: 0, or -EINVAL. */
static inline int xvmsg_parse_mode(const char *s, enum xvmsg_mode *out)
{
	return xvmsg_parse_mode_len(s, s ? strlen(s) : 0, out);
}

/*
 * The virtio device id a toolstack device type ("type" key) stands for, or
 * -EINVAL for a type xvmsg does not know.  A frontend refuses a device whose
 * GET_DEVICE_INFO names another id, so a backend cannot make the guest
 * bind a driver the toolstack never attached (balloon, pmem, ...).
 */
static inline int xvmsg_type_device_id(const char *type)
{
	static const struct { const char *name; int id; } types[] = {
		{ "net", 1 }, { "blk", 2 }, { "console", 3 }, { "rng", 4 },
	};
	size_t i;

	for (i = 0; type && i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(type, types[i].name))
			return types[i].id;
	return -EINVAL;
}

#endif /* XVMSG_WIRE_H */
