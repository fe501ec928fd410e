/* SPDX-License-Identifier: MIT */
/*
 * Device models.  A model is one file that exports one const ops table.  It
 * never sees bus or hypervisor headers: it gets requests as iovecs into
 * memory the core has already translated and checked, and it answers by
 * pushing them back.
 */
#ifndef XVB_DEVICE_H
#define XVB_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <xvmsg/params.h>

#include "evloop.h"
#include "log.h"

/* A device the backend may serve: `type` names a model, `params` its
 * arguments (e.g. "path=disk.img,ro").  Comes from the command line, the
 * config file, or the toolstack's xenstore keys. */
struct xvb_export {
	char name[32];
	char type[16];
	char params[256];
};

struct xvb_vdev;	/* core: the virtio device a model instance serves */
struct xvb_aio_opts;	/* aio.h: the I/O engine chosen at start */

/*
 * One request: a descriptor chain, already copied, validated and mapped.
 * A chain has at most XVB_REQ_MAX_SEGS buffers (models advertise limits
 * below that, e.g. blk's seg_max).  Translation may split a buffer where
 * the backend's mappings of the guest's memory end (pool and full mode map
 * in chunks), so each direction has room for more iovecs than buffers.
 */
#define XVB_REQ_MAX_SEGS 128
#define XVB_REQ_MAX_IOV 512
struct xvb_req {
	uint16_t head;			/* chain head; core private */
	uint16_t queue;			/* queue it came from */
	unsigned int nout, nin;		/* device-readable, then device-writable */
	size_t out_len, in_len;		/* total bytes of each */
	struct iovec out[XVB_REQ_MAX_IOV];
	struct iovec in[XVB_REQ_MAX_IOV];
	void *ticket;			/* core private: transient mappings */
};

/* What a model instance gets from the core when it is created. */
struct xvb_model_env {
	struct xvb_evloop *loop;	/* for models with their own fds */
	struct xvb_log *log;
	const char *name;		/* for messages, e.g. "blk0(dom2)" */
	const struct xvb_aio_opts *aio;	/* for models doing file I/O; NULL: auto */
};

/*
 * What the transport can carry in one request, for the connected driver.
 * In pool mode every buffer is bounced through the pool, so a model must
 * not offer request shapes beyond these (include/xvmsg/pool.h); a zero
 * field means no limit beyond the model's own.
 */
struct xvb_req_limits {
	uint32_t seg_bytes;		/* largest single buffer */
	uint32_t req_bytes;		/* largest data payload of one request */
};

/* Every op must be set except queues, set_config, set_limits, features,
 * queue_loop, quiesce, stats and mem (may be NULL). */
struct xvb_model_ops {
	const char *type;		/* "blk", "rng", "console", "net" */
	uint32_t device_id;		/* VIRTIO_ID_* */
	unsigned int num_queues;	/* the most an instance offers */
	/* Queues this instance offers, 1..num_queues (its params may say);
	 * NULL: num_queues. */
	unsigned int (*queues)(void *priv);
	uint16_t queue_size;		/* largest queue offered */
	uint32_t config_size;

	/* Parse params and open resources.  0 or -errno; on error a message
	 * naming the bad parameter has been logged. */
	int (*create)(const char *params, const struct xvb_model_env *env, void **priv);
	/* Release everything.  Called with the device reset. */
	void (*destroy)(void *priv);
	/* Device-specific feature bits (0..63); the core adds the transport
	 * bits (VERSION_1, ACCESS_PLATFORM, RING_EVENT_IDX, INDIRECT_DESC). */
	uint64_t (*features)(void *priv);
	/* The transport's limits for the driver that just connected, before
	 * it reads features or config; zeros again at disconnect. */
	void (*set_limits)(void *priv, const struct xvb_req_limits *lim);
	/* Fill config space (config_size bytes, little-endian fields). */
	void (*get_config)(void *priv, uint8_t *cfg);
	/* Driver wrote config bytes; NULL = read-only config.  0 or -errno. */
	int (*set_config)(void *priv, uint32_t off, const uint8_t *data, uint32_t len);
	/* Driver set DRIVER_OK with these negotiated features: start work.
	 * vdev stays valid until reset().  xvb_pop() returns -EIO until
	 * activate() has returned; right after, the core calls notify() for
	 * every queue, so work that waited for buffers can start there. */
	int (*activate)(void *priv, struct xvb_vdev *vdev, uint64_t features);
	/* Device reset: stop using vdev and every request taken from it.  I/O
	 * still in flight into request buffers must be finished or cancelled
	 * before this returns (the core unmaps them next); may block for it. */
	void (*reset)(void *priv);
	/* Queue q has new available buffers. */
	void (*notify)(void *priv, unsigned int q);
	/* Optional: the model can have its queues served by queue threads
	 * (xvmsg-backend --queue-threads), one thread per queue at most.
	 * Queue q's work moves to loop: called with NULL on the thread of the
	 * loop it leaves (env->loop's at first), then with the new loop on
	 * that loop's thread; the core does so only between activate() and
	 * reset(), while no call of q's is running, and brings q back to
	 * env->loop before reset() or quiesce().  From then on notify(q) and
	 * q's own completions run on that thread, possibly at the same time
	 * as another queue's on another thread: whatever queues share must
	 * be read-only while the device runs.  0 or -errno (q then on no
	 * loop; the device fails). */
	int (*queue_loop)(void *priv, unsigned int q, struct xvb_evloop *loop);
	/* Clean shutdown: finish and flush writes in flight. May block. */
	void (*quiesce)(void *priv);
	/* The model's own counters, appended to the device's: writes
	 * " name=value" items ([a-z0-9_] names) into buf (NUL-terminated,
	 * cut at len).  Never blocks. */
	void (*stats)(void *priv, char *buf, size_t len);
	/* Bytes the model holds for the device now (its state, request
	 * slots, I/O engine), counted in the stats line's mem_bytes.
	 * Optional. */
	size_t (*mem)(const void *priv);
};

/*
 * Request API for models, implemented by the core (vdev.c).
 *
 * xvb_pop() takes the next available chain of queue q.  Returns 1 and fills
 * *req, 0 when the queue is empty, or a negative errno when the device is
 * broken (the model should stop; the core has already set NEEDS_RESET) or a
 * single chain was invalid (-EINVAL: the core has already completed it with
 * zero length and the model should just call xvb_pop() again).
 * xvb_push() completes a request with `written` bytes written to its in
 * buffers; xvb_flush() publishes completed requests and notifies the driver
 * if it asked.  Models push many, then flush once.
 */
int xvb_pop(struct xvb_vdev *vdev, unsigned int q, struct xvb_req *req);
void xvb_push(struct xvb_vdev *vdev, struct xvb_req *req, uint32_t written);
void xvb_flush(struct xvb_vdev *vdev, unsigned int q);
/* From notify(): the model stopped taking queue q's requests before the
 * queue was empty (it could not allocate): call notify() for q again on the
 * device's next turn, as when a call's chain budget runs out.  No kick from
 * the driver will come for requests already available. */
void xvb_retry_later(struct xvb_vdev *vdev, unsigned int q);
/* The device's config space changed: send EVENT_CONFIG. */
void xvb_config_changed(struct xvb_vdev *vdev);
/* Ask the driver for a reset (NEEDS_RESET). */
void xvb_needs_reset(struct xvb_vdev *vdev, const char *why);

/* iovec helpers for models */
size_t xvb_iov_to_buf(const struct iovec *iov, unsigned int n, size_t skip, void *buf, size_t len);
size_t xvb_buf_to_iov(const struct iovec *iov, unsigned int n, size_t skip, const void *buf, size_t len);

/* The models, listed by main(). */
extern const struct xvb_model_ops xvb_blk_ops;
extern const struct xvb_model_ops xvb_rng_ops;
extern const struct xvb_model_ops xvb_console_ops;
extern const struct xvb_model_ops xvb_net_ops;

/*
 * virtio-net's check of a transmit header (devices/net.c), exported for the
 * unit tests and the fuzz target: hdr is the driver's 12-byte
 * virtio_net_hdr_v1, already copied out of shared memory; frame_len the
 * bytes after it; features the negotiated bits.  XVB_NET_TX_OK or why the
 * frame is refused (each has its own counter, xvb_net_tx_err_name()).
 */
enum xvb_net_tx_err {
	XVB_NET_TX_OK,
	XVB_NET_TX_RUNT,	/* no header, or a frame shorter than an Ethernet header */
	XVB_NET_TX_TOO_BIG,	/* frame over XVB_NET_FRAME_MAX */
	XVB_NET_TX_BAD_FLAGS,	/* unknown flags, or NEEDS_CSUM without VIRTIO_NET_F_CSUM */
	XVB_NET_TX_BAD_GSO,	/* gso_type unknown or not negotiated, gso_size 0, no NEEDS_CSUM */
	XVB_NET_TX_BAD_HDR_LEN,	/* hdr_len beyond the frame */
	XVB_NET_TX_BAD_CSUM,	/* csum_start + csum_offset + 2 beyond the frame */
	XVB_NET_TX_NERR
};
#define XVB_NET_HDR_LEN		12	/* struct virtio_net_hdr_v1 */
#define XVB_NET_FRAME_MAX	65553	/* 64 KiB IP packet, Ethernet header, VLAN tag */
enum xvb_net_tx_err xvb_net_tx_check(const uint8_t hdr[XVB_NET_HDR_LEN], size_t frame_len,
				     uint64_t features);
/* The counter's name of a verdict ("tx_runt", ...). */
const char *xvb_net_tx_err_name(enum xvb_net_tx_err e);

/*
 * A model's params ("path=disk.img,ro"), parsed by xvmsg_params_parse
 * (include/xvmsg/params.h, shared with xvmsg-ctl; numbers with
 * xvmsg_parse_u32, wire.h) in model-params.c: fn is called for each item
 * (val NULL for a bare key) and returns 0, -ENOMEM, or what
 * xvb_param_bad() / xvb_param_unknown() return after logging the refusal.
 * Returns 0, fn's first error, or -EINVAL for malformed syntax (logged
 * here, "NAME: malformed parameters '...'").
 */
int xvb_model_params(const struct xvb_log *log, const char *name, const char *params,
		     int (*fn)(void *arg, const char *key, const char *val), void *arg);
/* What every model instance keeps of its env: its log and event loop, and
 * its name for messages. */
struct xvb_model_base {
	const struct xvb_log *log;
	struct xvb_evloop *loop;
	char name[64];
};
/* The start of a model's create(): m from env (the name env's, else type),
 * then params parsed with fn as xvb_model_params() does, after the model
 * has set its defaults.  0 or xvb_model_params()'s error. */
int xvb_model_start(struct xvb_model_base *m, const struct xvb_model_env *env, const char *type,
		    const char *params, int (*fn)(void *arg, const char *key, const char *val),
		    void *arg);
/* Log "NAME: bad value for parameter 'KEY'HINT" (hint NULL or " (...)");
 * returns -EINVAL. */
int xvb_param_bad(const struct xvb_model_base *m, const char *key, const char *hint);
/* Log "NAME: unknown parameter 'KEY'HINT"; returns -EINVAL. */
int xvb_param_unknown(const struct xvb_model_base *m, const char *key, const char *hint);

/* A model's messages, "NAME: ..." (log.h's levels). */
#define xvb_model_err(m, fmt, ...)  xvb_err((m)->log, "%s: " fmt, (m)->name, ##__VA_ARGS__)
#define xvb_model_warn(m, fmt, ...) xvb_warn((m)->log, "%s: " fmt, (m)->name, ##__VA_ARGS__)
#define xvb_model_info(m, fmt, ...) xvb_info((m)->log, "%s: " fmt, (m)->name, ##__VA_ARGS__)
#define xvb_model_dbg(m, fmt, ...)  xvb_dbg((m)->log, "%s: " fmt, (m)->name, ##__VA_ARGS__)

#endif /* XVB_DEVICE_H */
