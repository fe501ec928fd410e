// SPDX-License-Identifier: MIT
/*
 * Queue threads (xvmsg-backend --queue-threads N): each runs an event loop
 * of its own, on which the backend's loop thread places device queues
 * (conn-queue.c).  A queue on a thread is served there alone: its kicks,
 * the chains taken, their I/O completions and the used-ring updates.
 *
 * The loop thread hands a queue over, and takes it back, with
 * xvb_qthread_call(): the function runs on the queue thread between two of
 * its rounds, and the caller waits for it.  That is the only place the two
 * threads meet (a mutex and a condition variable, never held while a queue
 * is served), so serving needs no lock at all.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core.h"

#define QTHREAD_STACK (256 * 1024)

struct xvb_qthread {
	pthread_t th;
	bool started;
	struct xvb_evloop *loop;	/* the thread's own */
	int efd;			/* a call is waiting */
	bool stop;			/* the thread's alone */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	void (*fn)(void *arg);		/* under mu: the call, until done */
	void *arg;
	bool done;
};

struct xvb_evloop *xvb_qthread_loop(struct xvb_qthread *t)
{
	return t->loop;
}

/* On the queue thread: run the call waiting, then wake its caller. */
static void on_call(void *arg, int fd, uint32_t events)
{
	struct xvb_qthread *t = arg;
	void (*fn)(void *);
	void *fn_arg;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: nothing waiting after all */
	}
	pthread_mutex_lock(&t->mu);
	fn = t->done ? NULL : t->fn;	/* done: its caller has not woken yet */
	fn_arg = t->arg;
	pthread_mutex_unlock(&t->mu);
	if (!fn)
		return;
	fn(fn_arg);
	pthread_mutex_lock(&t->mu);
	t->done = true;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

void xvb_qthread_call(struct xvb_qthread *t, void (*fn)(void *arg), void *arg)
{
	uint64_t one = 1;

	pthread_mutex_lock(&t->mu);
	t->fn = fn;
	t->arg = arg;
	t->done = false;
	pthread_mutex_unlock(&t->mu);
	while (write(t->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&t->mu);
	while (!t->done)
		pthread_cond_wait(&t->cv, &t->mu);
	t->fn = NULL;
	t->arg = NULL;
	pthread_mutex_unlock(&t->mu);
}

static void *body(void *arg)
{
	struct xvb_qthread *t = arg;

	int rc;

	while (!t->stop) {
		rc = xvb_evloop_run_once(t->loop, -1);
		if (rc < 0 && rc != -EINTR)
			usleep(1000);	/* epoll failed (cannot happen): no spin */
	}
	return NULL;
}

static void stop_fn(void *arg)
{
	((struct xvb_qthread *)arg)->stop = true;
}

int xvb_qthread_create(struct xvb_qthread **out)
{
	struct xvb_qthread *t = calloc(1, sizeof(*t));
	sigset_t all, old;
	pthread_attr_t attr;
	int rc;

	if (!t)
		return -ENOMEM;
	t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->efd < 0) {
		rc = -errno;
		free(t);
		return rc;
	}
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	rc = xvb_evloop_create(&t->loop);
	if (!rc)
		rc = xvb_evloop_add(t->loop, t->efd, EPOLLIN, on_call, t);
	if (rc)
		goto fail;
	/* Signals stay with the loop thread (its signalfd). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, QTHREAD_STACK);
	rc = -pthread_create(&t->th, &attr, body, t);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		goto fail;
	t->started = true;
	*out = t;
	return 0;
fail:
	xvb_qthread_destroy(t);
	return rc;
}

void xvb_qthread_destroy(struct xvb_qthread *t)
{
	if (!t)
		return;
	if (t->started) {
		xvb_qthread_call(t, stop_fn, t);
		pthread_join(t->th, NULL);
	}
	if (t->loop)
		xvb_evloop_destroy(t->loop);
	close(t->efd);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
}
