/* SPDX-License-Identifier: MIT */
/*
 * A fake of the core's request API (xvb_pop, xvb_push, ...) for unit tests of
 * device models: the test queues prepared requests and reads back what the
 * model pushed.  The functions are defined here: include this header in
 * exactly one file of a test program that does not link the real vdev.o.
 */
#ifndef XVMSG_TEST_FAKE_CORE_H
#define XVMSG_TEST_FAKE_CORE_H

#include "device.h"

#define FQ_MAX 320	/* more than a queue of 256 */

struct fake_vdev {
	struct { struct xvb_req *req; int ret; } q[2][FQ_MAX];
	unsigned int qn[2], qnext[2], pops;
	struct { uint16_t head, queue; uint32_t written; } push[FQ_MAX];
	unsigned int npush, flushes[2], needs_reset, config_changed, retries[2];
	unsigned int flush_npush[2];	/* npush at the last flush */
};
#define VDEV(f) ((struct xvb_vdev *)(f))

int xvb_pop(struct xvb_vdev *vdev, unsigned int q, struct xvb_req *req)
{
	struct fake_vdev *f = (struct fake_vdev *)vdev;

	f->pops++;
	assert_true(q < 2);
	if (f->qnext[q] == f->qn[q])
		return 0;
	if (!f->q[q][f->qnext[q]].req)
		return f->q[q][f->qnext[q]++].ret;
	*req = *f->q[q][f->qnext[q]++].req;
	req->queue = (uint16_t)q;
	return 1;
}

void xvb_push(struct xvb_vdev *vdev, struct xvb_req *req, uint32_t written)
{
	struct fake_vdev *f = (struct fake_vdev *)vdev;

	assert_true(f->npush < FQ_MAX);
	assert_true(written <= req->in_len);
	f->push[f->npush].head = req->head;
	f->push[f->npush].queue = req->queue;
	f->push[f->npush++].written = written;
}

void xvb_flush(struct xvb_vdev *vdev, unsigned int q)
{
	((struct fake_vdev *)vdev)->flushes[q]++;
	((struct fake_vdev *)vdev)->flush_npush[q] = ((struct fake_vdev *)vdev)->npush;
}

void xvb_retry_later(struct xvb_vdev *vdev, unsigned int q)
{
	assert_true(q < 2);
	((struct fake_vdev *)vdev)->retries[q]++;
}

void xvb_config_changed(struct xvb_vdev *vdev)
{
	((struct fake_vdev *)vdev)->config_changed++;
}

void xvb_needs_reset(struct xvb_vdev *vdev, const char *why)
{
	((struct fake_vdev *)vdev)->needs_reset++;
}

static void fake_queue(struct fake_vdev *f, unsigned int q, struct xvb_req *req, int ret)
{
	assert_true(f->qn[q] < FQ_MAX);
	f->q[q][f->qn[q]].req = req;
	f->q[q][f->qn[q]++].ret = ret;
}

#endif
