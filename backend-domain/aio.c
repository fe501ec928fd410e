// SPDX-License-Identifier: MIT
/*
 * Asynchronous file I/O (aio.h): io_uring, or worker threads.
 *
 * An op goes through these lists, all touched on the loop's thread only:
 *   slow  (--fault slow-io: not due yet) -> wait (ready; the engine is full
 *   or refused the last submission) -> the engine (ring or pool) -> done()
 * `inflight` counts every op between xvb_aio_submit() and its done(), so
 * xvb_aio_drain() knows when nothing of the device's is left in the kernel
 * or in a worker.  Both engines signal completions on one eventfd; the
 * worker threads hand finished ops over under `mu` (the only state they
 * share with the loop's thread).
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "aio.h"

#define AIO_RING_DEPTH	128	/* ops in the ring at once; the CQ has twice that */
#define AIO_WORKERS	4
#define AIO_BACKOFF_MS	1
#define AIO_STACK	(128 * 1024)	/* a worker runs one system call at a time */
/* Counters read from other threads (xvb_aio_get_stats): written by the
 * context's thread alone, so relaxed atomics suffice. */
#define XVB_AIO_STAT_ADD(f, n) ((void)__atomic_fetch_add(&(f), (n), __ATOMIC_RELAXED))

struct xvb_aio {
	struct xvb_evloop *loop;
	const struct xvb_log *log;
	char name[64];
	int engine;
	struct xvb_aio_opts opts;
	int efd;			/* completions: the ring's eventfd, or the workers' */
	int tfd;			/* timerfd: slow-io and back-off */
	void (*batch)(void *arg);
	void *arg;
	unsigned int inflight;		/* submitted, done() not run yet */
	unsigned int in_engine;		/* in the ring or the pool */
	struct xvb_aio_op *slow_head, **slow_tail;
	struct xvb_aio_op *wait_head, **wait_tail;
	uint64_t backoff_until;		/* ms; the engine refused a submission */
	uint64_t timer_due;		/* ms the timerfd is armed for, 0: disarmed */
	bool sq_pending;		/* io_uring: SQEs the kernel has not taken */
	unsigned long nsubmit;		/* for opts.refuse_every */
	bool plugged;			/* xvb_aio_plug: submissions wait for unplug */
	struct xvb_aio_stats st;
	/* io_uring */
	struct io_uring ring;
	bool ring_up;
	/* threads */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct xvb_aio_op *work_head, **work_tail;	/* under mu */
	struct xvb_aio_op *done_head, **done_tail;	/* under mu */
	bool stop;					/* under mu */
	pthread_t th[AIO_WORKERS];
	unsigned int nth;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *xvb_aio_engine_name(int engine)
{
	return engine == XVB_AIO_URING ? "io_uring" : engine == XVB_AIO_THREADS ? "threads" : "auto";
}

int xvb_aio_probe(struct xvb_aio_opts *opts, const struct xvb_log *log)
{
	struct io_uring r;
	int rc;

	if (opts->engine == XVB_AIO_THREADS) {
		xvb_info(log, "block I/O engine: threads (--aio=threads)");
		return 0;
	}
	rc = io_uring_queue_init(4, &r, 0);
	if (rc == 0) {
		io_uring_queue_exit(&r);
		xvb_info(log, "block I/O engine: io_uring");
		opts->engine = XVB_AIO_URING;
		return 0;
	}
	if (opts->engine == XVB_AIO_URING) {
		xvb_err(log, "--aio=io_uring: io_uring not available: %s", strerror(-rc));
		return rc;
	}
	xvb_info(log, "block I/O engine: threads (io_uring not available: %s)", strerror(-rc));
	opts->engine = XVB_AIO_THREADS;
	return 0;
}

/* ---- lists ---- */

static void list_add(struct xvb_aio_op ***tail, struct xvb_aio_op *op)
{
	op->next = NULL;
	**tail = op;
	*tail = &op->next;
}

static struct xvb_aio_op *list_take(struct xvb_aio_op **head, struct xvb_aio_op ***tail)
{
	struct xvb_aio_op *op = *head;

	if (op) {
		*head = op->next;
		if (!*head)
			*tail = head;
	}
	return op;
}

static void wait_push_front(struct xvb_aio *a, struct xvb_aio_op *op)
{
	op->next = a->wait_head;
	a->wait_head = op;
	if (!op->next)
		a->wait_tail = &op->next;
}

/* ---- the worker pool ---- */

/* Skip n bytes of op's iovecs (and empty entries). */
static void iov_advance(struct xvb_aio_op *op, size_t n)
{
	while (op->niov && n >= op->iov->iov_len) {
		n -= op->iov->iov_len;
		op->iov++;
		op->niov--;
	}
	if (op->niov && n) {
		op->iov->iov_base = (char *)op->iov->iov_base + n;
		op->iov->iov_len -= n;
	}
}

static int run_sync(struct xvb_aio_op *op)
{
	ssize_t r;

	for (;;) {
		switch (op->opcode) {
		case XVB_AIO_READ:
		case XVB_AIO_WRITE:
			iov_advance(op, 0);
			if (!op->niov)
				return 0;
			r = op->opcode == XVB_AIO_WRITE ? pwritev(op->fd, op->iov, (int)op->niov, op->off)
							: preadv(op->fd, op->iov, (int)op->niov, op->off);
			if (r == 0)
				return -EIO;	/* the file shrank under us */
			if (r > 0) {
				op->off += r;
				iov_advance(op, (size_t)r);
				continue;
			}
			break;
		case XVB_AIO_FDATASYNC:
			if (fdatasync(op->fd) == 0)
				return 0;
			break;
		case XVB_AIO_FALLOCATE:
			if (fallocate(op->fd, op->mode, op->off, op->len) == 0)
				return 0;
			break;
		default:
			return -EINVAL;
		}
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
}

static void *worker(void *arg)
{
	struct xvb_aio *a = arg;
	struct xvb_aio_op *op;
	uint64_t one = 1;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->work_head && !a->stop)
			pthread_cond_wait(&a->cv, &a->mu);
		op = list_take(&a->work_head, &a->work_tail);
		if (!op)
			break;	/* stopping, nothing left */
		pthread_mutex_unlock(&a->mu);
		op->res = run_sync(op);
		pthread_mutex_lock(&a->mu);
		list_add(&a->done_tail, op);
		/* The loop's thread takes the op under mu after reading efd. */
		if (write(a->efd, &one, sizeof(one)) < 0) {
			/* cannot fail short of a counter overflow */
		}
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

static int pool_start(struct xvb_aio *a)
{
	sigset_t all, old;
	pthread_attr_t attr;
	int rc = 0;

	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->work_tail = &a->work_head;
	a->done_tail = &a->done_head;
	/* Workers take no signals: they stay with the loop's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, AIO_STACK);
	for (a->nth = 0; a->nth < AIO_WORKERS; a->nth++) {
		rc = -pthread_create(&a->th[a->nth], &attr, worker, a);
		if (rc)
			break;
	}
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return a->nth ? 0 : rc;
}

static void pool_stop(struct xvb_aio *a)
{
	unsigned int i;

	pthread_mutex_lock(&a->mu);
	a->stop = true;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	for (i = 0; i < a->nth; i++)
		pthread_join(a->th[i], NULL);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
}

/* ---- moving ops along ---- */

static unsigned int engine_cap(const struct xvb_aio *a)
{
	return a->engine == XVB_AIO_URING ? AIO_RING_DEPTH : 4 * AIO_WORKERS;
}

/* Hand op to the engine: 0, or -errno when it refused (op not taken). */
static int engine_start(struct xvb_aio *a, struct xvb_aio_op *op)
{
	struct io_uring_sqe *sqe;

	if (a->opts.refuse_every && ++a->nsubmit % a->opts.refuse_every == 0)
		return -EAGAIN;
	if (a->engine == XVB_AIO_THREADS) {
		pthread_mutex_lock(&a->mu);
		list_add(&a->work_tail, op);
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
		return 0;
	}
	sqe = io_uring_get_sqe(&a->ring);
	if (!sqe)
		return -EBUSY;		/* SQ full: the kernel has not taken them yet */
	switch (op->opcode) {
	case XVB_AIO_READ:
		io_uring_prep_readv(sqe, op->fd, op->iov, op->niov, (uint64_t)op->off);
		break;
	case XVB_AIO_WRITE:
		io_uring_prep_writev(sqe, op->fd, op->iov, op->niov, (uint64_t)op->off);
		break;
	case XVB_AIO_FDATASYNC:
		io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
		break;
	default:
		io_uring_prep_fallocate(sqe, op->fd, op->mode, op->off, op->len);
		break;
	}
	io_uring_sqe_set_data(sqe, op);
	a->sq_pending = true;
	return 0;
}

/* Arm the timerfd for the earliest deadline (a system call only when that
 * changes: this runs on every submission and completion batch). */
static void arm_timer(struct xvb_aio *a)
{
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };
	uint64_t due = 0;

	if (a->backoff_until)
		due = a->backoff_until;
	if (a->slow_head && (!due || a->slow_head->due_ms < due))
		due = a->slow_head->due_ms;
	if (a->sq_pending && !due)
		due = a->timer_due ? a->timer_due : now_ms() + AIO_BACKOFF_MS;
	if (due == a->timer_due)
		return;
	a->timer_due = due;
	if (due) {
		its.it_value.tv_sec = (time_t)(due / 1000);
		its.it_value.tv_nsec = (long)(due % 1000) * 1000000 + 1;
	}
	timerfd_settime(a->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Start what is ready, as far as the engine takes it. */
static void kick(struct xvb_aio *a)
{
	uint64_t now = now_ms();
	struct xvb_aio_op *op;
	int rc;

	if (a->backoff_until && now >= a->backoff_until)
		a->backoff_until = 0;
	while (a->slow_head && a->slow_head->due_ms <= now)
		list_add(&a->wait_tail, list_take(&a->slow_head, &a->slow_tail));
	while (!a->backoff_until && a->in_engine < engine_cap(a) &&
	       (op = list_take(&a->wait_head, &a->wait_tail))) {
		rc = engine_start(a, op);
		if (rc) {
			wait_push_front(a, op);
			XVB_AIO_STAT_ADD(a->st.retries, 1);
			if (rc != -EBUSY)
				a->backoff_until = now + AIO_BACKOFF_MS;
			break;
		}
		a->in_engine++;
	}
	if (a->sq_pending) {
		rc = io_uring_submit(&a->ring);
		if (rc >= 0 && io_uring_sq_ready(&a->ring) == 0) {
			a->sq_pending = false;
		} else if (rc < 0) {
			/* -EAGAIN, -ENOMEM, -EBUSY: the SQEs stay in the ring
			 * and are offered again after the back-off. */
			XVB_AIO_STAT_ADD(a->st.retries, 1);
			a->backoff_until = now + AIO_BACKOFF_MS;
			if (rc != -EAGAIN && rc != -ENOMEM && rc != -EBUSY && rc != -EINTR)
				xvb_warn(a->log, "%s: io_uring submit: %s (retrying)", a->name,
					 strerror(-rc));
		}
	}
	arm_timer(a);
}

/* The engine finished op with res: 0 or -errno when it is done, or it goes
 * round again (short transfer, EAGAIN). */
static bool engine_finished(struct xvb_aio *a, struct xvb_aio_op *op, int res)
{
	a->in_engine--;
	if (res == -EAGAIN || res == -EINTR) {
		list_add(&a->wait_tail, op);
		return false;
	}
	if ((op->opcode == XVB_AIO_READ || op->opcode == XVB_AIO_WRITE) && res >= 0 &&
	    a->engine == XVB_AIO_URING) {
		op->off += res;
		iov_advance(op, (size_t)res);
		if (op->niov && res == 0) {
			res = -EIO;	/* the file shrank under us */
		} else if (op->niov) {
			list_add(&a->wait_tail, op);
			return false;
		}
	}
	op->res = res < 0 ? res : 0;
	return true;
}

/* Reap the engine's completions and run done() for the finished ops. */
static void reap(struct xvb_aio *a)
{
	struct xvb_aio_op *head = NULL, **tail = &head, *op, *more;
	struct io_uring_cqe *cqe;
	uint64_t cnt;

	if (read(a->efd, &cnt, sizeof(cnt)) < 0) {
		/* EAGAIN: nothing signalled; the ring may still hold CQEs */
	}
	if (a->engine == XVB_AIO_URING) {
		/* Resubmissions (kick) may complete inline: go round until
		 * the CQ stays empty. */
		while (io_uring_peek_cqe(&a->ring, &cqe) == 0) {
			do {
				int res = cqe->res;

				op = io_uring_cqe_get_data(cqe);
				io_uring_cqe_seen(&a->ring, cqe);
				if (engine_finished(a, op, res))
					list_add(&tail, op);
			} while (io_uring_peek_cqe(&a->ring, &cqe) == 0);
			kick(a);
		}
	} else {
		pthread_mutex_lock(&a->mu);
		more = a->done_head;
		a->done_head = NULL;
		a->done_tail = &a->done_head;
		pthread_mutex_unlock(&a->mu);
		while ((op = more)) {
			more = op->next;
			if (engine_finished(a, op, op->res))
				list_add(&tail, op);
		}
	}
	kick(a);
	if (!head)
		return;
	while ((op = head)) {
		head = op->next;
		a->inflight--;
		op->done(op, op->res);
	}
	if (a->batch)
		a->batch(a->arg);
}

static void on_efd(void *arg, int fd, uint32_t events)
{
	reap(arg);
}

static void on_timer(void *arg, int fd, uint32_t events)
{
	struct xvb_aio *a = arg;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0) {
		/* spurious */
	}
	a->timer_due = 0;	/* one-shot: expired (or disarmed since) */
	kick(a);
	if (a->engine == XVB_AIO_URING && io_uring_cq_ready(&a->ring))
		reap(a);	/* completed inline: reap now, not a loop round later */
}

void xvb_aio_plug(struct xvb_aio *a)
{
	a->plugged = true;
}

void xvb_aio_unplug(struct xvb_aio *a)
{
	a->plugged = false;
	kick(a);
	/* Page-cache I/O often completes inside io_uring_enter: no round trip
	 * through the loop for those. */
	if (a->engine == XVB_AIO_URING && io_uring_cq_ready(&a->ring))
		reap(a);
}

void xvb_aio_submit(struct xvb_aio *a, struct xvb_aio_op *op)
{
	a->inflight++;
	XVB_AIO_STAT_ADD(a->st.ops, 1);
	if (a->inflight > a->st.max_inflight)
		__atomic_store_n(&a->st.max_inflight, a->inflight, __ATOMIC_RELAXED);
	if (a->opts.slow_ms) {
		op->due_ms = now_ms() + a->opts.slow_ms;
		list_add(&a->slow_tail, op);
		arm_timer(a);
		return;
	}
	list_add(&a->wait_tail, op);
	if (!a->plugged)
		xvb_aio_unplug(a);
}

unsigned int xvb_aio_inflight(const struct xvb_aio *a)
{
	return a->inflight;
}

void xvb_aio_drain(struct xvb_aio *a)
{
	while (a->inflight) {
		struct pollfd p[2] = { { a->efd, POLLIN, 0 }, { a->tfd, POLLIN, 0 } };

		if (poll(p, 2, 10) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			on_timer(a, a->tfd, 0);
		reap(a);
	}
}

int xvb_aio_engine(const struct xvb_aio *a)
{
	return a->engine;
}

void xvb_aio_get_stats(const struct xvb_aio *a, struct xvb_aio_stats *s)
{
	/* Another thread may be counting (a queue thread's context). */
	s->ops = __atomic_load_n(&a->st.ops, __ATOMIC_RELAXED);
	s->retries = __atomic_load_n(&a->st.retries, __ATOMIC_RELAXED);
	s->max_inflight = __atomic_load_n(&a->st.max_inflight, __ATOMIC_RELAXED);
}

size_t xvb_aio_mem(const struct xvb_aio *a)
{
	size_t n = sizeof(*a);

	if (a->ring_up)		/* SQ entries and index array, a CQ twice as deep */
		n += AIO_RING_DEPTH * (sizeof(struct io_uring_sqe) + sizeof(uint32_t)) +
		     2 * AIO_RING_DEPTH * sizeof(struct io_uring_cqe);
	else
		n += (size_t)a->nth * AIO_STACK;
	return n;
}

int xvb_aio_create(struct xvb_evloop *loop, const struct xvb_aio_opts *opts,
		   const struct xvb_log *log, const char *name,
		   void (*batch)(void *arg), void *arg, struct xvb_aio **out)
{
	struct xvb_aio *a = calloc(1, sizeof(*a));
	int rc;

	if (!a)
		return -ENOMEM;
	a->loop = loop;
	a->log = log;
	snprintf(a->name, sizeof(a->name), "%s", name ? name : "aio");
	a->opts = *opts;
	a->engine = opts->engine == XVB_AIO_THREADS ? XVB_AIO_THREADS : XVB_AIO_URING;
	a->batch = batch;
	a->arg = arg;
	a->slow_tail = &a->slow_head;
	a->wait_tail = &a->wait_head;
	a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	a->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	rc = a->efd < 0 || a->tfd < 0 ? -errno : 0;
	if (rc)
		goto fail_fds;
	if (a->engine == XVB_AIO_URING) {
		rc = io_uring_queue_init(AIO_RING_DEPTH, &a->ring, 0);
		if (!rc) {
			/* Signalled for every completion.  Not the _async
			 * variant: that one signals only completions posted by
			 * io_uring's worker threads, and O_DIRECT or cold-cache
			 * reads complete from interrupts and task work, so
			 * those were never reaped (test-blk direct_reads).
			 * Inline completions signal too: reap() finds the CQ
			 * already empty then, which costs one wake-up. */
			rc = io_uring_register_eventfd(&a->ring, a->efd);
			if (rc)
				io_uring_queue_exit(&a->ring);
		}
		if (rc && opts->engine == XVB_AIO_URING) {
			xvb_err(log, "%s: io_uring: %s", a->name, strerror(-rc));
			goto fail_fds;
		}
		if (rc) {
			xvb_warn(log, "%s: io_uring refused (%s): using threads", a->name,
				 strerror(-rc));
			a->engine = XVB_AIO_THREADS;
		}
		a->ring_up = !rc;
	}
	if (a->engine == XVB_AIO_THREADS) {
		rc = pool_start(a);
		if (rc) {
			xvb_err(log, "%s: cannot start I/O threads: %s", a->name, strerror(-rc));
			goto fail_fds;
		}
	}
	if (loop) {
		rc = xvb_evloop_add(loop, a->efd, EPOLLIN, on_efd, a);
		if (!rc) {
			rc = xvb_evloop_add(loop, a->tfd, EPOLLIN, on_timer, a);
			if (rc)
				xvb_evloop_del(loop, a->efd);
		}
		if (rc)
			goto fail_engine;
	}
	*out = a;
	return 0;
fail_engine:
	if (a->ring_up)
		io_uring_queue_exit(&a->ring);
	else
		pool_stop(a);
fail_fds:
	if (a->efd >= 0)
		close(a->efd);
	if (a->tfd >= 0)
		close(a->tfd);
	free(a);
	return rc;
}

int xvb_aio_set_loop(struct xvb_aio *a, struct xvb_evloop *loop)
{
	int rc = 0;

	if (a->loop) {
		xvb_evloop_del(a->loop, a->tfd);
		xvb_evloop_del(a->loop, a->efd);
	}
	a->loop = NULL;
	if (!loop)
		return 0;
	/* Both fds keep what came meanwhile (an eventfd count, an expired
	 * timer): level-triggered, the new loop sees it at once. */
	rc = xvb_evloop_add(loop, a->efd, EPOLLIN, on_efd, a);
	if (!rc) {
		rc = xvb_evloop_add(loop, a->tfd, EPOLLIN, on_timer, a);
		if (rc)
			xvb_evloop_del(loop, a->efd);
	}
	if (!rc)
		a->loop = loop;
	return rc;
}

void xvb_aio_destroy(struct xvb_aio *a)
{
	if (!a)
		return;
	xvb_aio_drain(a);
	if (a->loop) {
		xvb_evloop_del(a->loop, a->tfd);
		xvb_evloop_del(a->loop, a->efd);
	}
	if (a->ring_up)
		io_uring_queue_exit(&a->ring);
	else
		pool_stop(a);
	close(a->efd);
	close(a->tfd);
	free(a);
}
