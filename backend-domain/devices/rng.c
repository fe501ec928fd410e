/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng (virtio 1.2, 5.4): fills the driver's buffers from getrandom().
 * No parameters.
 *
 * The backend has one thread for every device, so this model never blocks:
 * getrandom() without GRND_NONBLOCK waits until the kernel's random pool is
 * initialised, which in a young domain with few interrupts (a driver domain
 * under emulation) takes a minute or more, and every other device would wait
 * with it.  Until the pool is ready the driver's buffers stay in the queue
 * and a timer looks again; then they are filled.
 */
#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "device.h"

#define RNG_QUEUE_SIZE	64
#define RNG_MAX_REQ	(64 * 1024)	/* bytes per request */
#define RNG_RETRY_MS	200		/* looking again for the kernel's pool */

struct rng {
	const struct xvb_log *log;
	struct xvb_evloop *loop;
	char name[64];
	struct xvb_vdev *vdev;
	int timer_fd;			/* armed while the pool is not ready, else -1 */
	bool ready;			/* the kernel's pool is initialised */
	bool bad_param;
};

static void rng_serve(struct rng *r);

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
	r->loop = env->loop;
	r->timer_fd = -1;
	snprintf(r->name, sizeof(r->name), "%s", env->name ? env->name : "rng");
	err = xvb_params_parse(params, rng_param, r);
	if (err) {
		if (!r->bad_param)
			xvb_err(r->log, "%s: malformed parameters '%s'", r->name, params);
		free(r);
		return -EINVAL;
	}
	*priv = r;
	return 0;
}

static void rng_stop_waiting(struct rng *r)
{
	if (r->timer_fd < 0)
		return;
	xvb_evloop_del(r->loop, r->timer_fd);
	close(r->timer_fd);
	r->timer_fd = -1;
}

static void rng_destroy(void *priv)
{
	rng_stop_waiting(priv);
	free(priv);
}

/* Whether getrandom() would give bytes now, without blocking. */
static bool rng_pool_ready(struct rng *r)
{
	char c;

	if (!r->ready && getrandom(&c, 0, GRND_NONBLOCK) == 0) {
		r->ready = true;
		rng_stop_waiting(r);
	}
	return r->ready;
}

static void rng_timer_cb(void *arg, int fd, uint32_t events)
{
	struct rng *r = arg;
	uint64_t n;

	(void)events;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		xvb_warn(r->log, "%s: timer: %s", r->name, strerror(errno));
	if (rng_pool_ready(r)) {
		xvb_info(r->log, "%s: the kernel's random pool is ready: serving", r->name);
		rng_serve(r);
	}
}

/* The pool is not ready: look again every RNG_RETRY_MS.  0 or -errno. */
static int rng_wait_for_pool(struct rng *r)
{
	struct itimerspec its = {
		.it_interval = { 0, RNG_RETRY_MS * 1000000L },
		.it_value = { 0, RNG_RETRY_MS * 1000000L },
	};
	int fd, err;

	if (r->timer_fd >= 0)
		return 0;
	if (!r->loop)
		return -EINVAL;
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	err = xvb_evloop_add(r->loop, fd, EPOLLIN, rng_timer_cb, r);
	if (err) {
		close(fd);
		return err;
	}
	r->timer_fd = fd;
	xvb_info(r->log, "%s: the kernel's random pool is not initialised yet: "
		 "requests wait for it", r->name);
	return 0;
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
	rng_stop_waiting(r);
}

/* Fill up to max bytes of iov with random data; returns the bytes filled. */
static size_t rng_fill(const struct rng *r, const struct iovec *iov, unsigned int n, size_t max)
{
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < n && done < max; i++) {
		size_t want = iov[i].iov_len < max - done ? iov[i].iov_len : max - done, got = 0;

		while (got < want) {
			ssize_t k = getrandom((char *)iov[i].iov_base + got, want - got,
					      GRND_NONBLOCK);

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

static void rng_serve(struct rng *r)
{
	struct xvb_req req;
	int ret;

	if (!r->vdev)
		return;
	if (!rng_pool_ready(r)) {
		/* The buffers stay in the queue until the timer finds the pool
		 * ready.  Without a timer they would stay for good: say so. */
		ret = rng_wait_for_pool(r);
		if (ret)
			xvb_err(r->log, "%s: cannot wait for the kernel's random pool: %s",
				r->name, strerror(-ret));
		return;
	}
	while ((ret = xvb_pop(r->vdev, 0, &req)) != 0) {
		if (ret == -EINVAL)
			continue;
		if (ret < 0)
			break;
		xvb_push(r->vdev, &req, (uint32_t)rng_fill(r, req.in, req.nin, RNG_MAX_REQ));
	}
	xvb_flush(r->vdev, 0);
}

static void rng_notify(void *priv, unsigned int q)
{
	if (q == 0)
		rng_serve(priv);
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
