/* SPDX-License-Identifier: MIT */
/*
 * One xvmsg device of the backend, private to conn.c (the handshake, the
 * device's turns), conn-ring.c (its message ring) and conn-queue.c (its
 * queues on queue threads).  The rest of the
 * core sees struct xvb_conn through the xvb_conn_* functions of core.h.
 */
#ifndef XVB_CONN_H
#define XVB_CONN_H

#include "core.h"

struct xvb_fault;

/* A queue served on a queue thread (conn-queue.c): its channel, fd and
 * turns belong to that thread while the queue is there. */
struct xvb_qserve {
	struct xvb_conn *c;
	unsigned int q;
	struct xvb_chan *chan;		/* NULL: the queue is the loop thread's */
	struct xvb_qthread *t;
	struct xvb_evdefer again;	/* budget spent: another turn next round */
	bool on_thread;			/* queue thread's: it is on its loop */
	bool turn;			/* queue thread's: again is armed */
};

struct xvb_conn {
	struct xvb_conn *next;
	struct xvb_backend *be;
	uint32_t feid, devid;
	char bepath[128], fepath[128], name[64];
	int state;			/* our XenbusState */
	enum xvmsg_mode mode;
	uint32_t max_pool;
	uint32_t min_pool;		/* xvmsg_min_pool_pages() of the type */
	const struct xvb_model_ops *ops;
	void *priv;
	bool failed;			/* model could not be created: stays Closed */
	bool connected;
	bool ever_connected;		/* this instance connected the frontend once */
	struct xvb_stats stats;
	struct xvb_vdev vdev;
	struct xvb_mapcache mc;
	struct xvmsg_msg_page *msg;
	uint32_t msg_port;
	bool msg_bound;
	uint32_t vq_port[XVMSG_MAX_QUEUES];	/* the loop thread's queues */
	unsigned int nvq_ports;
	struct xvb_qserve qs[XVMSG_MAX_QUEUES];	/* queue threads' (qs[q].chan) */
	uint64_t attn_q;		/* remote queues whose ring lied (__atomic) */
	uint32_t d2b_cons, b2d_prod;
	/* On the backend's pending list: the last call ran out of budget.
	 * Work found meanwhile (notifications) waits for the turn. */
	struct xvb_conn *pend_next;
	bool pend_on;
	bool pend_msgs;			/* the message ring has more */
	uint64_t pend_q;		/* these queues have more */
	bool event_pending;		/* an event waits for a free b2d slot */
	bool in_request;		/* handling a request: its response owns the slot kept */
	struct vmsg pending;		/* EVENT_CONFIG: the latest one is enough */
	uint64_t used_pending;		/* in-band EVENT_USED waiting, by queue */
	uint32_t notify_from;		/* b2d prod at the last notification */
	struct xvb_fault *fault;	/* --fault (fault.c), testing guests only; else NULL */
};

/* ---- conn-ring.c: the message ring of a connected device ---- */

/* The device's transport: events and used notifications for the driver. */
extern const struct xvb_vdev_transport xvb_conn_transport;
/* The page is mapped: take the ring indices the frontend initialised. */
void xvb_conn_ring_start(struct xvb_conn *c);
/* Disconnected: forget the events that waited for room. */
void xvb_conn_ring_stop(struct xvb_conn *c);
/* Take and answer up to the message budget; with more waiting, pend_msgs
 * says so and the rest waits for the device's next turn.  0, or -EPROTO
 * when the ring is corrupt (*why says how): the caller disconnects. */
int xvb_conn_ring_process(struct xvb_conn *c, const char **why);

#endif /* XVB_CONN_H */
