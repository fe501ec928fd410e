// SPDX-License-Identifier: MIT
/*
 * Integration: xvmsg-backend --queue-threads.  Several two-queue disks on
 * one backend, their queues spread over two queue threads, driven at once
 * in each memory-access mode; what went through one queue reads back
 * through the other.  Then the hard parts of handing queues to threads:
 * a reset and a close with I/O in flight (slow storage), a queue whose
 * ring lies (the loop thread must set NEEDS_RESET for it), and a backend
 * with --fault, whose queues stay on the loop thread.
 *
 * Built with ThreadSanitizer too (make check-tsan): the backend's fast path
 * takes no lock, so any unordered access shared between threads shows up.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "drv-priv.h"
#include "xvmsg/wire.h"
#include "loop-fixture.h"

#define DISK_SIZE	(8u << 20)
#define NDEV		4
#define NREQ		64		/* per device, both queues */
#define IO		4096

struct qt {
	struct loop_fx fx;		/* first: loop_fx_teardown frees it */
	char img[NDEV][160];
	char exp[NDEV][256];
	struct xvd_dev *dev[NDEV];
};

/* A backend with NDEV exports d0..d3 of two queues each, its own image
 * each, and args more. */
static int start(void **state, const char *const *more)
{
	struct qt *t = calloc(1, sizeof(*t));
	const char *argv[32];
	unsigned int n = 0, i;
	char name[16];

	if (!t)
		return -1;
	*state = t;
	SETUP_TRY(backend_setup(&t->fx.b));
	for (i = 0; i < NDEV; i++) {
		snprintf(name, sizeof(name), "d%u.img", i);
		SETUP_TRY(backend_image(&t->fx.b, name, DISK_SIZE, t->img[i], sizeof(t->img[i])));
		snprintf(t->exp[i], sizeof(t->exp[i]), "d%u:blk:path=%s,queues=2", i, t->img[i]);
		argv[n++] = "--export";
		argv[n++] = t->exp[i];
	}
	argv[n++] = "--full";
	while (more && *more)
		argv[n++] = *more++;
	argv[n] = NULL;
	SETUP_TRY(backend_startv(&t->fx.b, argv));
	SETUP_TRY(loop_fx_domain(&t->fx, (struct xvd_domain_opts){ .ram_pages = 16384,
								 .log_level = XVD_LOG_WARN },
				 &t->fx.d));
	return 0;
fail:
	backend_dump_log(&t->fx.b);
	return -1;
}

static int setup_threads(void **state)
{
	static const char *const more[] = { "--queue-threads", "2", NULL };

	return start(state, more);
}

/* The I/O engine's worker threads (io_uring refused) beside the queue
 * threads: each queue's own pool of workers. */
static int setup_threads_aio(void **state)
{
	static const char *const more[] = { "--queue-threads", "2", "--aio", "threads", NULL };

	return start(state, more);
}

/* Slow storage: every I/O starts 150 ms late, so a reset finds it in flight. */
static int setup_slow(void **state)
{
	static const char *const more[] = { "--queue-threads", "2", "--fault", "slow-io=150",
					    NULL };

	return start(state, more);
}

static int setup_fault(void **state)
{
	static const char *const more[] = { "--queue-threads", "2", "--fault", "used-bad-len",
					    NULL };

	return start(state, more);
}

static int teardown(void **state)
{
	struct qt *t = *state;

	/* A sanitizer's report says where; the test itself saw only a device
	 * that died. */
	if (t && (backend_log_count(&t->fx.b, "ThreadSanitizer") ||
		  backend_log_count(&t->fx.b, "AddressSanitizer")))
		backend_dump_log(&t->fx.b);

	for (unsigned int i = 0; t && i < NDEV; i++)
		if (t->dev[i])
			xvd_dev_close(t->dev[i]);
	return loop_fx_teardown(state);
}

static int open_dev(struct qt *t, unsigned int i, enum xvmsg_mode mode)
{
	char name[8];
	struct xvd_dev_opts o = { .export_name = name, .devid = i, .mode = mode,
				  .pool_pages = 1024, .queues = 2 };

	snprintf(name, sizeof(name), "d%u", i);
	return xvd_blk_open(t->fx.d, &o, &t->dev[i]);
}

static long dev_stat(struct qt *t, unsigned int i, const char *key)
{
	char name[32];

	snprintf(name, sizeof(name), "blk%u(dom%u)", i, xvd_domain_id(t->fx.d));
	return backend_stat(&t->fx.b, name, key);
}

static void fill(uint8_t *buf, uint64_t sector, uint64_t seed)
{
	for (size_t i = 0; i < IO; i += 8) {
		uint64_t v = ((sector + i / 512) << 20) ^ (i % 512) ^ seed;

		memcpy(buf + i, &v, 8);
	}
}

/* Every device: NREQ writes over both queues, all in flight together on
 * every device, then a flush; each block read back (request i + 1 goes to
 * the other queue than write i did). */
static void drive_all(struct qt *t, uint64_t seed)
{
	static struct xvd_done done[NREQ];
	void *buf[NDEV][NREQ];
	uint8_t want[IO];
	unsigned int i, k, got;
	int n;

	for (i = 0; i < NDEV; i++) {
		for (k = 0; k < NREQ; k++) {
			assert_int_equal(xvd_ram_alloc(t->fx.d, IO, &buf[i][k]), 0);
			fill(buf[i][k], 8 * k, seed + i);
			assert_int_equal(xvd_blk_submit(t->dev[i], XVD_BLK_WRITE, 8 * k, buf[i][k],
							IO, NULL, XVD_NO_KICK), 0);
		}
		assert_int_equal(xvd_vq_inflight(t->dev[i], 0), NREQ / 2);
		assert_int_equal(xvd_vq_inflight(t->dev[i], 1), NREQ / 2);
	}
	for (i = 0; i < NDEV; i++)
		assert_int_equal(xvd_blk_kick(t->dev[i]), 0);
	for (i = 0; i < NDEV; i++) {
		for (got = 0; got < NREQ; got += (unsigned int)n) {
			n = xvd_blk_wait(t->dev[i], done + got, NREQ - got, 10000);
			assert_true(n > 0);
		}
		for (k = 0; k < NREQ; k++)
			assert_int_equal(done[k].status, 0);
		assert_int_equal(xvd_blk_flush(t->dev[i]), 0);
	}
	for (i = 0; i < NDEV; i++) {
		for (k = 0; k < NREQ; k++) {
			memset(buf[i][k], 0, IO);
			assert_int_equal(xvd_blk_read(t->dev[i], 8 * k, buf[i][k], IO), 0);
			fill(want, 8 * k, seed + i);
			assert_memory_equal(buf[i][k], want, IO);
			xvd_ram_free(t->fx.d, buf[i][k]);
		}
	}
}

static void mq_in_mode(void **state, enum xvmsg_mode mode)
{
	struct qt *t = *state;
	unsigned int i;

	for (i = 0; i < NDEV; i++) {
		assert_int_equal(open_dev(t, i, mode), 0);
		assert_int_equal(xvd_blk_queues(t->dev[i]), 2);
	}
	drive_all(t, 100 + mode);
	drive_all(t, 200 + mode);
	for (i = 0; i < NDEV; i++) {
		/* Both queues on threads; every request counted once (2 x
		 * (NREQ writes, a flush, NREQ reads)), whichever thread took it. */
		assert_int_equal(dev_stat(t, i, "queue_threads"), 2);
		assert_int_equal(dev_stat(t, i, "requests"), 2 * (2 * NREQ + 1));
		assert_true(dev_stat(t, i, "max_chains_call") <= 64);
		xvd_dev_close(t->dev[i]);
		t->dev[i] = NULL;
	}
	assert_int_equal(backend_log_count(&t->fx.b, "2 queue channels (2 on queue threads)"),
			 NDEV);
}

static void test_mq_pool(void **state) { mq_in_mode(state, XVD_MODE_POOL); }
static void test_mq_grant(void **state) { mq_in_mode(state, XVD_MODE_GRANT); }
static void test_mq_full(void **state) { mq_in_mode(state, XVD_MODE_FULL); }

static void test_mq_aio_threads(void **state)
{
	struct qt *t = *state;

	mq_in_mode(state, XVD_MODE_POOL);
	assert_int_equal(backend_log_count(&t->fx.b, "block I/O engine: threads"), 1);
}

/* Reads in flight on both queues (slow storage) when the driver resets the
 * device, and again when it closes it: the queue threads give the queues
 * back, the I/O is waited for before anything is unmapped (ASan would see
 * a completion written into a mapping that is gone), and the device works
 * again after the reset. */
static void test_reset_in_flight(void **state)
{
	struct qt *t = *state;
	struct xvd_done done[16];
	void *buf[16];
	uint8_t data[IO];
	unsigned int k;

	assert_int_equal(open_dev(t, 0, XVD_MODE_POOL), 0);
	for (int round = 0; round < 2; round++) {
		for (k = 0; k < 16; k++) {
			assert_int_equal(xvd_ram_alloc(t->fx.d, IO, &buf[k]), 0);
			assert_int_equal(xvd_blk_submit(t->dev[0], XVD_BLK_READ, 8 * k, buf[k], IO,
							NULL, XVD_NO_KICK), 0);
		}
		assert_int_equal(xvd_blk_kick(t->dev[0]), 0);
		if (round == 0) {
			/* Cancelled chains come back with an error. */
			assert_int_equal(xvd_dev_reset(t->dev[0]), 0);
			assert_int_equal(xvd_blk_wait(t->dev[0], done, 16, 1000), 16);
			for (k = 0; k < 16; k++)
				xvd_ram_free(t->fx.d, buf[k]);
			fill(data, 8, 7);
			assert_int_equal(xvd_blk_write(t->dev[0], 8, data, IO), 0);
			memset(data, 0, IO);
			assert_int_equal(xvd_blk_read(t->dev[0], 8, data, IO), 0);
			assert_int_equal(dev_stat(t, 0, "queue_threads"), 2);
		} else {
			xvd_dev_close(t->dev[0]);	/* and the buffers with the domain */
			t->dev[0] = NULL;
		}
	}
	/* The backend lived through it, and serves a new device. */
	assert_int_equal(open_dev(t, 1, XVD_MODE_POOL), 0);
	fill(data, 0, 9);
	assert_int_equal(xvd_blk_write(t->dev[1], 0, data, IO), 0);
	assert_int_equal(backend_log_count(&t->fx.b, "ERROR: AddressSanitizer"), 0);
	assert_int_equal(backend_log_count(&t->fx.b, "ThreadSanitizer"), 0);
}

/* Queue 1's avail index runs ahead of anything the queue could hold: its
 * thread finds the lie, the loop thread sets NEEDS_RESET (the driver sees a
 * broken device), and after a reset both queues work again on their
 * threads.  Twice: the second lie is told to the queue's thread after it
 * was handed the queue back. */
static void lie_on_queue_1(struct qt *t, struct xvd_dev *dev, unsigned int nth)
{
	uint8_t data[IO];
	struct xvd_vq *vq = &dev->vq[1];
	int r = 0;

	XVMSG_WRITE_ONCE(vq->avail->idx, htole16((uint16_t)(vq->avail_idx + 1000)));
	/* A kick of our own: the library's would see nothing new to say. */
	assert_int_equal(dev->dom->bus->ops->evtchn_notify(dev->dom->bus, vq->port), 0);
	/* Let the queue's thread look before the next request on queue 1
	 * writes the true index back. */
	nanosleep(&(struct timespec){ 0, 300 * 1000 * 1000 }, NULL);
	for (int i = 0; i < 100 && xvd_dev_error(dev) == 0; i++) {
		/* The next request (either queue) finds the device broken. */
		r = xvd_blk_read(dev, 16, data, IO);
		if (r)
			break;
		nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
	}
	if (xvd_dev_error(dev) != -EIO)
		backend_dump_log(&t->fx.b);
	assert_int_equal(xvd_dev_error(dev), -EIO);
	assert_int_equal(backend_log_count(&t->fx.b, "driver broke the protocol"), nth);
	/* Whatever the failed read left on either queue was reported. */
	assert_int_equal(xvd_vq_inflight(dev, 0) + xvd_vq_inflight(dev, 1), 0);
	assert_int_equal(xvd_dev_reset(dev), 0);
}

static void test_lying_queue(void **state)
{
	struct qt *t = *state;
	struct xvd_dev *dev;
	uint8_t data[IO], want[IO];

	assert_int_equal(open_dev(t, 0, XVD_MODE_POOL), 0);
	dev = t->dev[0];
	fill(data, 16, 3);
	assert_int_equal(xvd_blk_write(dev, 16, data, IO), 0);
	fill(want, 16, 3);
	for (unsigned int lie = 1; lie <= 2; lie++) {
		lie_on_queue_1(t, dev, lie);
		for (unsigned int k = 0; k < 4; k++) {		/* both queues, twice */
			memset(data, 0, IO);
			assert_int_equal(xvd_blk_read(dev, 16, data, IO), 0);
			assert_memory_equal(data, want, IO);
		}
	}
	assert_int_equal(dev_stat(t, 0, "queue_threads"), 2);
}

/* An EVENT_AVAIL for queue q in band, on the message ring, as a guest may
 * send for any queue (the protocol says a queue with its own channel is
 * kicked there). */
static void event_avail(struct xvd_dev *dev, uint32_t q)
{
	struct vmsg_event_avail ev = { .vq_index = htole32(q) };
	struct vmsg m;
	bool notify;

	xvmsg_msg_build(&m, VMSG_EVENT_AVAIL, 0, &ev, sizeof(ev));
	if (xvd_mring_put(&dev->d2b, &m, &notify) == 0 && notify)
		assert_int_equal(dev->dom->bus->ops->evtchn_notify(dev->dom->bus,
								   dev->msg_port), 0);
}

/* A guest that also kicks its threaded queues in band, while their threads
 * serve them: the loop thread must leave those queues alone (serving one
 * from two threads completes requests twice and unmaps under the other).
 * Every request is answered once, the data reads back, and neither
 * sanitizer has anything to say. */
static void test_inband_avail(void **state)
{
	struct qt *t = *state;
	struct xvd_done done[NREQ];
	void *buf[NREQ];
	uint8_t want[IO];
	unsigned int k, got, round;
	int n;

	assert_int_equal(open_dev(t, 0, XVD_MODE_POOL), 0);
	for (k = 0; k < NREQ; k++)
		assert_int_equal(xvd_ram_alloc(t->fx.d, IO, &buf[k]), 0);
	for (round = 0; round < 20; round++) {
		for (k = 0; k < NREQ; k++) {
			fill(buf[k], 8 * k, round);
			assert_int_equal(xvd_blk_submit(t->dev[0], XVD_BLK_WRITE, 8 * k, buf[k],
							IO, NULL, XVD_NO_KICK), 0);
			if (k % 4 == 3) {
				event_avail(t->dev[0], 0);
				event_avail(t->dev[0], 1);
			}
		}
		assert_int_equal(xvd_blk_kick(t->dev[0]), 0);
		for (k = 0; k < 8; k++)
			event_avail(t->dev[0], k % 2);
		for (got = 0; got < NREQ; got += (unsigned int)n) {
			n = xvd_blk_wait(t->dev[0], done + got, NREQ - got, 10000);
			assert_true(n > 0);
		}
		for (k = 0; k < NREQ; k++)
			assert_int_equal(done[k].status, 0);
	}
	for (k = 0; k < NREQ; k++) {
		memset(buf[k], 0, IO);
		assert_int_equal(xvd_blk_read(t->dev[0], 8 * k, buf[k], IO), 0);
		fill(want, 8 * k, round - 1);
		assert_memory_equal(buf[k], want, IO);
		xvd_ram_free(t->fx.d, buf[k]);
	}
	assert_int_equal(xvd_dev_error(t->dev[0]), 0);
	assert_int_equal(dev_stat(t, 0, "queue_threads"), 2);
	assert_int_equal(dev_stat(t, 0, "requests"), 20 * NREQ + NREQ);
	assert_int_equal(backend_log_count(&t->fx.b, "not in flight"), 0);
	assert_int_equal(backend_log_count(&t->fx.b, "ERROR: AddressSanitizer"), 0);
	assert_int_equal(backend_log_count(&t->fx.b, "ThreadSanitizer"), 0);
}

/* Other domains come and go (HELLO, then EOF) while a grant-mode device's
 * queue threads map its buffers: a map looks the domain up in the bus's
 * client list while the loop thread names a new client and buries an old
 * one (under TSan, an unordered write there is a race). */
static void test_domains_come_and_go(void **state)
{
	struct qt *t = *state;
	struct xvd_done done[32];
	struct xvd_domain *other;
	void *buf[32];
	unsigned int k, got, round;
	int n;

	assert_int_equal(open_dev(t, 0, XVD_MODE_GRANT), 0);
	for (k = 0; k < 32; k++)
		assert_int_equal(xvd_ram_alloc(t->fx.d, IO, &buf[k]), 0);
	for (round = 0; round < 16; round++) {
		for (k = 0; k < 32; k++)
			assert_int_equal(xvd_blk_submit(t->dev[0], XVD_BLK_READ, 8 * k, buf[k], IO,
							NULL, XVD_NO_KICK), 0);
		assert_int_equal(xvd_blk_kick(t->dev[0]), 0);
		assert_int_equal(loop_fx_domain(&t->fx, (struct xvd_domain_opts){
						.ram_pages = 64, .log_level = XVD_LOG_WARN },
						&other), 0);
		xvd_domain_close(other);
		for (got = 0; got < 32; got += (unsigned int)n) {
			n = xvd_blk_wait(t->dev[0], done + got, 32 - got, 10000);
			assert_true(n > 0);
		}
		for (k = 0; k < 32; k++)
			assert_int_equal(done[k].status, 0);
	}
	for (k = 0; k < 32; k++)
		xvd_ram_free(t->fx.d, buf[k]);
	assert_int_equal(xvd_dev_error(t->dev[0]), 0);
	assert_int_equal(dev_stat(t, 0, "queue_threads"), 2);
	assert_int_equal(backend_log_count(&t->fx.b, "ThreadSanitizer"), 0);
}

/* --fault: lies are told from the loop thread, so no queue goes to a queue
 * thread (the log says so at start). */
static void test_fault_stays(void **state)
{
	struct qt *t = *state;

	assert_int_equal(open_dev(t, 0, XVD_MODE_POOL), 0);
	assert_int_equal(dev_stat(t, 0, "queue_threads"), 0);
	assert_int_equal(backend_log_count(&t->fx.b, "not with --fault"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mq_pool, setup_threads, teardown),
		cmocka_unit_test_setup_teardown(test_mq_grant, setup_threads, teardown),
		cmocka_unit_test_setup_teardown(test_mq_full, setup_threads, teardown),
		cmocka_unit_test_setup_teardown(test_mq_aio_threads, setup_threads_aio, teardown),
		cmocka_unit_test_setup_teardown(test_lying_queue, setup_threads, teardown),
		cmocka_unit_test_setup_teardown(test_inband_avail, setup_threads, teardown),
		cmocka_unit_test_setup_teardown(test_domains_come_and_go, setup_threads, teardown),
		cmocka_unit_test_setup_teardown(test_reset_in_flight, setup_slow, teardown),
		cmocka_unit_test_setup_teardown(test_fault_stays, setup_fault, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
