/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng (virtio 1.2, 5.4): fills the driver's buffers from getrandom().
 * No parameters.
 */
#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "device.h"

#define RNG_QUEUE_SIZE	64
#define RNG_MAX_REQ	(64 * 1024)	/* bytes per request */

struct rng {
	const struct xvb_log *log;
	char name[64];
	struct xvb_vdev *vdev;
	bool bad_param;
};

static int rng_param(void *arg, const char *key, const char *val)
{
	struct rng *r = arg;

	xvb_err(r->log, "%s: unknown parameter '%s' (rng takes none)", r->name, key);
	r->bad_param = true;
	return -EINVAL;
}

static int rng_create(const char *params, const struct xvb_model_env *env, void **priv)
{
	struct rng *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->log = env->log;
	snprintf(r->name, sizeof(r->name), "%s", env->name ? env->name : "rng");
	err = xvmsg_params_parse(params, rng_param, r);
	if (err) {
		if (!r->bad_param)
			xvb_err(r->log, "%s: malformed parameters '%s'", r->name, params);
		free(r);
		return -EINVAL;
	}
	*priv = r;
	return 0;
}

static void rng_destroy(void *priv)
{
	free(priv);
}

static uint64_t rng_features(void *priv)
{
	return 0;
}

static void rng_get_config(void *priv, uint8_t *cfg)
{
}

static int rng_activate(void *priv, struct xvb_vdev *vdev, uint64_t features)
{
	struct rng *r = priv;

	r->vdev = vdev;
	return 0;
}

static void rng_reset(void *priv)
{
	struct rng *r = priv;

	r->vdev = NULL;
}

/* Fill up to max bytes of iov with random data; returns the bytes filled. */
static size_t rng_fill(const struct rng *r, const struct iovec *iov, unsigned int n, size_t max)
{
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < n && done < max; i++) {
		size_t want = iov[i].iov_len < max - done ? iov[i].iov_len : max - done, got = 0;

		while (got < want) {
			ssize_t k = getrandom((char *)iov[i].iov_base + got, want - got, 0);

			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				xvb_warn(r->log, "%s: getrandom: %s", r->name, strerror(errno));
				return done + got;
			}
			got += (size_t)k;
		}
		done += got;
	}
	return done;
}

static void rng_notify(void *priv, unsigned int q)
{
	struct rng *r = priv;
	struct xvb_req req;
	int ret;

	if (!r->vdev || q != 0)
		return;
	while ((ret = xvb_pop(r->vdev, 0, &req)) != 0) {
		if (ret == -EINVAL)
			continue;
		if (ret < 0)
			break;
		xvb_push(r->vdev, &req, (uint32_t)rng_fill(r, req.in, req.nin, RNG_MAX_REQ));
	}
	xvb_flush(r->vdev, 0);
}

static void rng_quiesce(void *priv)
{
}

const struct xvb_model_ops xvb_rng_ops = {
	.type = "rng",
	.device_id = VIRTIO_ID_RNG,
	.num_queues = 1,
	.queue_size = RNG_QUEUE_SIZE,
	.config_size = 0,
	.create = rng_create,
	.destroy = rng_destroy,
	.features = rng_features,
	.get_config = rng_get_config,
	.activate = rng_activate,
	.reset = rng_reset,
	.notify = rng_notify,
	.quiesce = rng_quiesce,
};
