/* SPDX-License-Identifier: MIT */
/*
 * Fault injection: a backend that misbehaves on purpose, to test that
 * guests survive one (xvmsg-backend --fault NAME; never set in normal use).
 *
 * Every lie lives in fault.c.  The core reaches it through seams only: the
 * device's transport (xvb_fault_wrap puts the fault between a device and
 * its connection: the optional push and reset hooks of struct
 * xvb_vdev_transport, and its notify hook), and the few calls below that
 * the connection makes when it has a struct xvb_fault (NULL without
 * --fault).  Nothing here blocks; only xvb_fault_mapped() does not return.
 */
#ifndef XVB_FAULT_H
#define XVB_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#include <xvmsg/msg.h>
#include <xvmsg/xenbus.h>

enum {
	XVB_FAULT_NONE = 0,
	XVB_FAULT_USED_BAD_ID,		/* used entries name a descriptor beyond the queue */
	XVB_FAULT_USED_BAD_LEN,		/* used lengths larger than the buffers */
	XVB_FAULT_SILENT,		/* after DRIVER_OK, never complete or answer */
	XVB_FAULT_IRQ_STORM,		/* thousands of notifications per completion */
	XVB_FAULT_USED_DUP_ID,		/* every completion's used entry written twice */
	XVB_FAULT_MSG_BAD_TOKEN,	/* a stale and an unsolicited response before each right one */
	XVB_FAULT_MSG_REWRITE,		/* response slots rewritten after the driver consumed them */
	XVB_FAULT_VANISH_HANDSHAKE,	/* _exit() after mapping the frontend's page, before Connected */
	XVB_FAULT_KEEP_MAPPED,		/* grant mode: a request's pages stay mapped after completion */
	XVB_FAULT_SNOOP,		/* pool mode: look for XVB_SNOOP_MARKER in the idle pool */
	XVB_FAULT_DESC_REWRITE,		/* NEXT set on every descriptor, then a valid completion */
	XVB_FAULT_AVAIL_REWRITE,	/* never complete; avail->idx set back to the used index */
	XVB_FAULT_WRONG_DEVICE_ID,	/* GET_DEVICE_INFO names another device (balloon) */
	XVB_FAULT_QUIET_BAD_ID,		/* queues after the first: used-bad-id, never notified */
	XVB_FAULT_EXTRA_FEATURES,	/* GET_DEVICE_FEATURES offers every transport bit */
};
#define XVB_FAULT_NAMES { "none", "used-bad-id", "used-bad-len", "silent", "irq-storm",	\
			  "used-dup-id", "msg-bad-token", "msg-rewrite", "vanish-handshake",	\
			  "keep-mapped", "snoop", "desc-rewrite", "avail-rewrite",		\
			  "wrong-device-id", "quiet-bad-id", "extra-features" }
/* What --fault snoop looks for: guest data a test wrote, which must not
 * stay in pool slots the guest freed. */
#define XVB_SNOOP_MARKER "XVMSG-SECRET-"

struct xvb_evloop;
struct xvb_fault;
struct xvb_log;
struct xvb_vdev;
struct xvb_vdev_transport;

/* One device's lies (kind XVB_FAULT_*); *out is NULL for XVB_FAULT_NONE.
 * name and log must outlive it.  0 or -ENOMEM. */
int xvb_fault_create(int kind, struct xvb_evloop *loop, const struct xvb_log *log,
		     const char *name, struct xvb_fault **out);
/* After the device's reset and disconnect; NULL is fine. */
void xvb_fault_destroy(struct xvb_fault *f);
/* Put f between a device and its transport: *tp and *ctx (the
 * connection's) are forwarded to and replaced by f's own. */
void xvb_fault_wrap(struct xvb_fault *f, const struct xvb_vdev_transport **tp, void **ctx);

/* ---- the handshake ---- */
/* The frontend's message page is mapped, Connected not written yet
 * (vanish-handshake: the process exits here). */
void xvb_fault_mapped(struct xvb_fault *f);
/* Connected: d has its mapcache, b2d_prod is the ring's start. */
void xvb_fault_connected(struct xvb_fault *f, struct xvb_vdev *d, uint32_t b2d_prod);
/* Disconnecting, before the device is reset: logs what the lies did. */
void xvb_fault_disconnected(struct xvb_fault *f);

/* ---- the message ring ---- */
/* Drop this request unanswered (silent, once d runs)? */
bool xvb_fault_drop_request(const struct xvb_fault *f, const struct xvb_vdev *d);
/* A call begins, or a b2d slot is about to be filled (msg-rewrite:
 * slots the driver consumed are scribbled over). */
void xvb_fault_b2d(struct xvb_fault *f, struct xvmsg_msg_page *msg, uint32_t b2d_prod);
/* A response about to be put: may change it (wrong-device-id,
 * extra-features) and fill
 * extra[] with messages to put before it (msg-bad-token), only as many
 * as b2d has room for besides the response.  Returns how many. */
unsigned int xvb_fault_response(struct xvb_fault *f, const struct xvmsg_msg_page *msg,
				uint32_t b2d_prod, struct vmsg *resp, struct vmsg extra[2]);

#endif /* XVB_FAULT_H */
