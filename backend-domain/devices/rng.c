/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng (virtio 1.2, 5.4): fills the driver's buffers from getrandom().
 * No parameters.
 *
 * The backend has one thread for every device, so this model never blocks
 * it: getrandom() waits until the kernel's random pool is initialised, which
 * in a young domain with few interrupts (a driver domain under emulation)
 * takes a minute or more, and every other device would wait with it.  Until
 * the pool is ready the driver's buffers stay in the queue, and a helper
 * thread waits in getrandom() instead; it is that wait which makes Linux
 * generate entropy from timer jitter (an idle domain where nobody waits may
 * never initialise its pool).  The thread signals an eventfd in the loop
 * when the pool is ready; then the buffers are filled.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ids.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "device.h"

#define RNG_QUEUE_SIZE	64
#define RNG_MAX_REQ	(64 * 1024)	/* bytes per request */

struct rng {
	struct xvb_model_base m;	/* log, loop, name */
	struct xvb_vdev *vdev;
	int wake_fd;			/* while waiting for the pool, else -1 */
	bool ready;			/* the kernel's pool is initialised */
};

static void rng_serve(struct rng *r);

static int rng_param(void *arg, const char *key, const char *val)
{
	struct rng *r = arg;

	return xvb_param_unknown(&r->m, key, " (rng takes none)");
}

static int rng_create(const char *params, const struct xvb_model_env *env, void **priv)
{
	struct rng *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->wake_fd = -1;
	err = xvb_model_start(&r->m, env, "rng", params, rng_param, r);
	if (err) {
		free(r);
		return -EINVAL;
	}
	*priv = r;
	return 0;
}

static void rng_stop_waiting(struct rng *r)
{
	xvb_evloop_del_close(r->m.loop, &r->wake_fd);
}

/* A waiter still blocked in getrandom() keeps only its own descriptor of
 * the eventfd: it outlives the model harmlessly. */
static void rng_destroy(void *priv)
{
	rng_stop_waiting(priv);
	free(priv);
}

/* Whether getrandom() gives bytes now, without blocking. */
static bool rng_pool_ready(struct rng *r)
{
	char c;

	if (!r->ready && getrandom(&c, 0, GRND_NONBLOCK) == 0) {
		r->ready = true;
		rng_stop_waiting(r);
	}
	return r->ready;
}

/* The helper thread: wait for the pool, say so, go.  arg is its own
 * descriptor of the eventfd. */
static void *rng_pool_waiter(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint64_t one = 1;
	char c;

	while (getrandom(&c, 1, 0) < 0 && errno == EINTR)
		;
	if (write(fd, &one, sizeof(one)) < 0) {
		/* the loop looks again at its next request */
	}
	close(fd);
	return NULL;
}

static int rng_wait_for_pool(struct rng *r);

static void rng_wake_cb(void *arg, int fd, uint32_t events)
{
	struct rng *r = arg;
	uint64_t n;
	int err;

	(void)events;
	if (read(fd, &n, sizeof(n)) < 0 && errno == EAGAIN)
		return;
	if (rng_pool_ready(r)) {
		xvb_model_info(&r->m, "the kernel's random pool is ready: serving");
		rng_serve(r);
		return;
	}
	/* The waiter gave up (an error, not the pool): wait again. */
	rng_stop_waiting(r);
	err = rng_wait_for_pool(r);
	if (err)
		xvb_model_err(&r->m, "cannot wait for the kernel's random pool: %s",
			      strerror(-err));
}

/* The pool is not ready: start a waiter (one at a time).  0 or -errno. */
static int rng_wait_for_pool(struct rng *r)
{
	pthread_attr_t attr;
	pthread_t th;
	int efd, tfd, err;

	if (r->wake_fd >= 0)
		return 0;
	if (!r->m.loop)
		return -EINVAL;
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0)
		return -errno;
	tfd = fcntl(efd, F_DUPFD_CLOEXEC, 0);
	if (tfd < 0) {
		err = -errno;
		close(efd);
		return err;
	}
	err = xvb_evloop_add(r->m.loop, efd, EPOLLIN, rng_wake_cb, r);
	if (err)
		goto fail;
	/* Detached: nobody joins a thread that may wait for good.  It keeps
	 * the signal mask of this thread (the backend's signals blocked, for
	 * its signalfd). */
	err = -pthread_attr_init(&attr);
	if (!err) {
		err = -pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (!err)
			err = -pthread_create(&th, &attr, rng_pool_waiter, (void *)(intptr_t)tfd);
		pthread_attr_destroy(&attr);
	}
	if (err) {
		xvb_evloop_del(r->m.loop, efd);
		goto fail;
	}
	r->wake_fd = efd;
	xvb_model_info(&r->m, "the kernel's random pool is not initialised yet: "
		       "requests wait for it");
	return 0;
fail:
	close(tfd);
	close(efd);
	return err;
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

	r->vdev = NULL;	/* a waiter keeps waiting: the next driver needs the pool too */
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
				xvb_model_warn(&r->m, "getrandom: %s", strerror(errno));
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
		/* The buffers stay in the queue until the waiter finds the pool
		 * ready.  Without a waiter they would stay for good: say so. */
		ret = rng_wait_for_pool(r);
		if (ret)
			xvb_model_err(&r->m, "cannot wait for the kernel's random pool: %s",
				      strerror(-ret));
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
};
