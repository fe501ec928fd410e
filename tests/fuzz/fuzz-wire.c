// SPDX-License-Identifier: MIT
/*
 * Fuzz target: the guest's checks of what a backend sends
 * (include/xvmsg/wire.h, used by the kernel module and driver/): message
 * headers, payload sizes, ring counts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xvmsg/wire.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmsg m;
	uint32_t a = 0, b = 0;
	unsigned int rev;
	int n;

	memset(&m, 0, sizeof(m));
	memcpy(&m, data, size < sizeof(m) ? size : sizeof(m));
	if (size >= 8) {
		memcpy(&a, data, 4);
		memcpy(&b, data + 4, 4);
	}
	n = xvmsg_ring_count(a, b);
	if (n > XVMSG_RING_SLOTS || (n >= 0 && (uint32_t)(a - b) != (uint32_t)n))
		abort();
	/* Both message layout revisions, chosen by the input's first byte. */
	rev = size && (data[0] & 0x80) ? XVMSG_MSG_REV_2 : XVMSG_MSG_REV_1;
	(void)xvmsg_min_payload(m.hdr.msg_id, m.hdr.type & VMSG_TYPE_RESPONSE, rev);
	if (xvmsg_classify(&m, (__u16)a, (__u8)b, rev) == XVMSG_V_RESPONSE &&
	    xvmsg_payload_len(&m) < xvmsg_min_payload(m.hdr.msg_id, 1, rev))
		abort();	/* a response shorter than its layout */
	{
		__u32 feat[4], gen;
		unsigned int off;
		struct xvmsg_dev_info info;
		struct xvmsg_vq_info vq;
		char str[16];

		if (xvmsg_check_features(&m, a & 3, 1 + (b & 1), feat) == 0 && (a & 3) > 3)
			abort();
		if (xvmsg_check_get_config(&m, a & 0xff, b & 0xff, &gen, &off) == 0 &&
		    off + (b & 0xff) > sizeof(m))
			abort();	/* accepted data must lie inside the message */
		(void)xvmsg_check_set_config(&m, a & 0xff, b & 0xff, &gen);
		if (xvmsg_check_device_info(&m, rev, &info) == 0 &&
		    (info.num_feature_bits % 32 || !info.num_feature_bits ||
		     (uint64_t)info.admin_vq_start + info.admin_vq_count > info.max_vqs))
			abort();
		if (xvmsg_check_vqueue(&m, a & 7, rev, &vq) == 0 && vq.index != (a & 7))
			abort();
		{
			__u64 len, addr;

			if (xvmsg_check_shm(&m, a, rev, &len, &addr) == 0 &&
			    rev == XVMSG_MSG_REV_1 && (len >> 32 || addr >> 32))
				abort();	/* revision 1 carries 32 bits */
		}
		memcpy(str, data, size < sizeof(str) ? size : sizeof(str));
		str[sizeof(str) - 1] = '\0';
		(void)xvmsg_parse_u32(str, &gen);
		{
			__u32 mask;

			if (xvmsg_parse_revisions(str, &mask) == 0 && (!mask || (mask & 1)))
				abort();	/* revision 0 does not exist */
		}
		{
			enum xvmsg_mode mode;

			(void)xvmsg_parse_mode(str, &mode);
		}
	}
	return 0;
}
