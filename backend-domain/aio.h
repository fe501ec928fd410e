/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous file I/O for device models: io_uring, or a small pool of
 * worker threads where io_uring is unavailable or refused.  One context per
 * device queue.  Completions come back on its event loop's thread through
 * an eventfd, so a model's done() callbacks never race with its other ops
 * on that queue.
 *
 * An op is owned by the caller and must stay valid, with the memory its
 * iovecs point to, until done() has run for it.  Reads and writes are
 * carried out whole (short transfers and EAGAIN are resubmitted); a
 * submission the engine refuses (-EAGAIN, -ENOMEM, a full ring) is kept and
 * retried after a short back-off, never dropped and never completed twice.
 */
#ifndef XVB_AIO_H
#define XVB_AIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "evloop.h"
#include "log.h"

enum xvb_aio_engine {
	XVB_AIO_AUTO = 0,	/* io_uring if the kernel lets us, else threads */
	XVB_AIO_URING,
	XVB_AIO_THREADS,
};

/* Chosen once at start (--aio), handed to every device. */
struct xvb_aio_opts {
	int engine;			/* XVB_AIO_*; AUTO is resolved by xvb_aio_probe */
	unsigned int slow_ms;		/* --fault slow-io=MS: every op starts this late */
	unsigned int refuse_every;	/* tests: every Nth submission fails with -EAGAIN */
};

enum xvb_aio_opcode { XVB_AIO_READ, XVB_AIO_WRITE, XVB_AIO_FDATASYNC, XVB_AIO_FALLOCATE };

struct xvb_aio_op {
	int opcode;			/* XVB_AIO_* */
	int fd;
	struct iovec *iov;		/* READ/WRITE: advanced in place on short transfers */
	unsigned int niov;
	off_t off;			/* READ/WRITE/FALLOCATE */
	off_t len;			/* FALLOCATE */
	int mode;			/* FALLOCATE */
	/* 0 or -errno; runs on the loop's thread (or inside xvb_aio_drain). */
	void (*done)(struct xvb_aio_op *op, int res);
	/* private */
	int res;
	uint64_t due_ms;
	struct xvb_aio_op *next;
};

struct xvb_aio;

/* Resolve opts->engine (AUTO: io_uring when a test ring can be set up) and
 * log the choice.  0, or -errno when io_uring was asked for and is not
 * available. */
int xvb_aio_probe(struct xvb_aio_opts *opts, const struct xvb_log *log);
const char *xvb_aio_engine_name(int engine);

/*
 * A context on loop (NULL: completions only run in xvb_aio_drain).  batch()
 * runs after each batch of done() callbacks (models publish there).  With
 * io_uring refused at this point the context falls back to threads and says
 * so in the log, unless opts asked for io_uring.  0 or -errno.
 */
int xvb_aio_create(struct xvb_evloop *loop, const struct xvb_aio_opts *opts,
		   const struct xvb_log *log, const char *name,
		   void (*batch)(void *arg), void *arg, struct xvb_aio **out);
/* Move the context to another loop (NULL: none; completions then run only
 * in xvb_aio_drain), as a queue moves to a queue thread and back: called on
 * the thread of the loop it leaves with NULL, then on the thread of the
 * loop it joins.  From then on submit, plug and the done() callbacks
 * belong to that thread.  0 or -errno (the context is then on no loop). */
int xvb_aio_set_loop(struct xvb_aio *a, struct xvb_evloop *loop);
/* Start op.  Never fails: refusals are retried. */
void xvb_aio_submit(struct xvb_aio *a, struct xvb_aio_op *op);
/* Batching: between plug and unplug, submissions are only queued; unplug
 * hands them to the engine at once (one io_uring_enter) and runs done()
 * for those that completed inline. */
void xvb_aio_plug(struct xvb_aio *a);
void xvb_aio_unplug(struct xvb_aio *a);
/* Ops submitted and not completed yet. */
unsigned int xvb_aio_inflight(const struct xvb_aio *a);
/* Block until every submitted op has completed and its done() has run.
 * done() may submit more; those are waited for too. */
void xvb_aio_drain(struct xvb_aio *a);
/* Drain, then release everything. */
void xvb_aio_destroy(struct xvb_aio *a);
/* The engine in use, and counters for the stats line. */
int xvb_aio_engine(const struct xvb_aio *a);
struct xvb_aio_stats {
	uint64_t ops, retries, max_inflight;
};
void xvb_aio_get_stats(const struct xvb_aio *a, struct xvb_aio_stats *s);
/* Bytes the engine holds: its state and the io_uring rings, or the worker
 * threads' stacks. */
size_t xvb_aio_mem(const struct xvb_aio *a);

#endif /* XVB_AIO_H */
