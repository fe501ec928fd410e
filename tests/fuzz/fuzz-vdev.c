// SPDX-License-Identifier: MIT
/*
 * Fuzz target: the virtio-msg device side.  The input is a sequence of
 * messages (each: one length byte, then that many bytes, copied into a
 * 248-byte slot as the ring would), handled in order by a device with one
 * queue in a granted pool.  Responses must be well formed.  An input of odd
 * size runs the device in message layout revision 2, of even size in 1, so
 * the corpus covers both.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xvmsg/wire.h>

#include "core.h"
#include "fakebus.h"

#define POOL_REF 8
#define POOL_PAGES 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct dummy { int notified; uint8_t cfg[8]; };

static int d_create(const char *p, const struct xvb_model_env *e, void **priv) { return 0; }
static void d_destroy(void *priv) { }
static uint64_t d_features(void *priv) { return 1ULL << 5; }
static void d_get_config(void *priv, uint8_t *cfg) { memcpy(cfg, ((struct dummy *)priv)->cfg, 8); }
static int d_set_config(void *priv, uint32_t off, const uint8_t *d, uint32_t len)
{
	memcpy(((struct dummy *)priv)->cfg + off, d, len);
	return 0;
}
static int d_activate(void *priv, struct xvb_vdev *vdev, uint64_t f) { return 0; }
static void d_reset(void *priv) { }
static void d_notify(void *priv, unsigned int q) { ((struct dummy *)priv)->notified++; }

static const struct xvb_model_ops dummy_ops = {
	.type = "dummy", .device_id = 42, .num_queues = 2, .queue_size = 64, .config_size = 8,
	.create = d_create, .destroy = d_destroy, .features = d_features,
	.get_config = d_get_config, .set_config = d_set_config, .activate = d_activate,
	.reset = d_reset, .notify = d_notify,
};

static void tp_send(void *ctx, const struct vmsg *m)
{
	if (le16toh(m->hdr.msg_size) < 8 || le16toh(m->hdr.msg_size) > VMSG_MAX_SIZE)
		abort();
}

static void tp_notify(void *ctx, unsigned int q) { }

static const struct xvb_vdev_transport tp = { .send = tp_send, .notify_used = tp_notify };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fakebus fb;
	static bool ready;
	struct xvb_stats st = { 0 };
	struct xvb_log log = { .level = XVB_LOG_ERR, .out = NULL };
	struct xvb_mapcache mc;
	struct xvb_vdev d;
	struct dummy m = { 0 };
	size_t pos = 0;

	if (!ready) {
		if (fakebus_init(&fb, 32))
			abort();
		ready = true;
	}
	log.out = fopen("/dev/null", "w");
	fakebus_grant(&fb, POOL_REF, 0, POOL_PAGES, false);
	if (xvb_mc_init(&mc, &fb.bus, &st, 3, XVMSG_MODE_POOL, POOL_REF, POOL_PAGES))
		abort();
	xvb_vdev_init(&d, &dummy_ops, &m, &tp, NULL, &st, &log, "fuzz");
	d.msg_rev = size & 1 ? XVMSG_MSG_REV_2 : XVMSG_MSG_REV_1;
	xvb_vdev_set_mapcache(&d, &mc);
	while (pos < size) {
		struct vmsg req, resp;
		size_t n = data[pos++], r;

		if (n > size - pos)
			n = size - pos;
		if (n > sizeof(req)) {		/* a slot holds at most this much */
			pos += n;
			continue;
		}
		memset(&req, 0, sizeof(req));
		memcpy(&req, data + pos, n);
		pos += n;
		/* What conn-ring.c checks before handing a message over. */
		if (!vmsg_size_ok(&req.hdr) || vmsg_is_response(&req.hdr))
			continue;
		r = xvb_vdev_handle(&d, &req, &resp);
		if (r && (r < 8 || r > VMSG_MAX_SIZE || le16toh(resp.hdr.msg_size) != r ||
			  resp.hdr.token != req.hdr.token || !(resp.hdr.type & VMSG_TYPE_RESPONSE)))
			abort();
		/* Responses whose layout the revision decides have exactly its size,
		 * and a frontend of that revision accepts them. */
		if (r && (req.hdr.msg_id == VMSG_GET_DEVICE_INFO || req.hdr.msg_id == VMSG_GET_SHM ||
			  req.hdr.msg_id == VMSG_GET_VQUEUE) &&
		    r != 8 + xvmsg_min_payload(req.hdr.msg_id, 1, d.msg_rev))
			abort();
		if (r && req.hdr.msg_id == VMSG_GET_DEVICE_INFO) {
			struct xvmsg_dev_info di;

			if (xvmsg_check_device_info(&resp, d.msg_rev, &di) || di.device_id != 42 ||
			    di.num_feature_bits != 64 || di.max_vqs != 2)
				abort();
		}
		/* A queue the device would start has a size. */
		if ((d.vq_on & 1) && !d.vq[0].size)
			abort();
	}
	xvb_vdev_reset(&d);
	xvb_mc_fini(&mc);
	fclose(log.out);
	if (fb.live)
		abort();
	return 0;
}
