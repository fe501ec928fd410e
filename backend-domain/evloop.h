/* SPDX-License-Identifier: MIT */
/*
 * A small epoll event loop owned by main().  Callbacks run on the loop's
 * thread; a callback may add or remove fds, including its own.
 */
#ifndef XVB_EVLOOP_H
#define XVB_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>	/* EPOLLIN, EPOLLOUT for callers */

struct xvb_evloop;
typedef void (*xvb_fd_cb)(void *arg, int fd, uint32_t events);

/*
 * Work that waits for no fd: armed, it runs once in the next round, after
 * that round's fd callbacks (so whatever the fds brought gets its turn
 * first).  While any is armed a round does not wait for fds.  The caller
 * owns the struct and sets cb and arg; the loop only links it.
 */
struct xvb_evdefer {
	void (*cb)(void *arg);
	void *arg;
	struct xvb_evdefer *next;	/* loop private */
	bool armed;			/* loop private */
};

int xvb_evloop_create(struct xvb_evloop **out);
void xvb_evloop_destroy(struct xvb_evloop *loop);
/* Watch fd for events (EPOLLIN, EPOLLOUT...).  0 or -errno; -EEXIST when fd
 * is already watched. */
int xvb_evloop_add(struct xvb_evloop *loop, int fd, uint32_t events, xvb_fd_cb cb, void *arg);
/* Change the events; 0 pauses the fd entirely (hang-ups and errors too)
 * until it is set again. */
int xvb_evloop_mod(struct xvb_evloop *loop, int fd, uint32_t events);
void xvb_evloop_del(struct xvb_evloop *loop, int fd);
/* Stop watching *fd (if it is watched), close it and set it to -1; nothing
 * when *fd is already negative. */
void xvb_evloop_del_close(struct xvb_evloop *loop, int *fd);
/* Arm d (no-op when armed); callable from callbacks, d's own included. */
void xvb_evloop_defer(struct xvb_evloop *loop, struct xvb_evdefer *d);
/* Disarm d; after this the loop holds no pointer to it. */
void xvb_evloop_cancel(struct xvb_evloop *loop, struct xvb_evdefer *d);
/* Run one round: wait up to timeout_ms (-1 = forever; 0 while deferred
 * work is armed), dispatch the fds, then the deferred work armed before the
 * round.  Returns the number of callbacks run or -errno (-EINTR on a
 * signal, -EBUSY when called from inside a callback). */
int xvb_evloop_run_once(struct xvb_evloop *loop, int timeout_ms);

/*
 * For a listening socket whose accept4() failed with EMFILE or ENFILE: the
 * connection stays queued and the socket readable, so a level-triggered
 * loop would call back at once, for ever.  Give up *spare (a descriptor
 * kept open for this; reopened first if it is -1) to take the connection
 * and hang up at once, the client sees end of file; then reopen *spare.
 * true: refused that way.  false: no spare could be had, the caller stops
 * watching lfd until descriptors come back (and reopens *spare then).
 */
bool xvb_refuse_with_spare(int lfd, int *spare);
/* The spare descriptor xvb_refuse_with_spare() gives up: -1 if none. */
int xvb_spare_open(void);

#endif /* XVB_EVLOOP_H */
