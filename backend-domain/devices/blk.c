/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk on a raw image file or block device (virtio 1.2, 5.2).
 * notify() takes every available request and starts its I/O (aio.h:
 * io_uring or worker threads); requests complete in any order, from the
 * event loop, and are pushed then.  In pool mode seg_max and size_max follow
 * the pool (set_limits), so no request outgrows it.
 *
 * FLUSH starts an fdatasync when it is taken: that covers every write
 * completed (pushed) before, as virtio asks, and is answered when it is done.
 * Reset waits for the requests in flight and drops them unanswered, so no
 * I/O touches guest memory after the core has unmapped it.
 *
 * Params:
 *   path=FILE          image; size a non-zero multiple of 512 (required)
 *   ro[=on|off]        read-only (default off)
 *   serial=STR         GET_ID answer, at most 20 bytes (default: file name)
 *   discard[=on|off]   offer DISCARD, done with a punched hole (default on)
 *   write-zeroes[=on|off]  offer WRITE_ZEROES (default on)
 *   direct[=on|off]    open with O_DIRECT (default off); the driver's buffers
 *                      must then suit the host's O_DIRECT alignment
 *   queues=N           request queues, 1..16 (default 1); more than one
 *                      offers VIRTIO_BLK_F_MQ.  Each queue has its own I/O
 *                      context and request slots (struct blk_q), so queues
 *                      served by different queue threads (queue_loop) share
 *                      nothing but the file and the device's settings.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xvmsg/wire.h>

#include "aio.h"
#include "device.h"

#define BLK_SECTOR_SHIFT	9
#define BLK_SECTOR_SIZE		512u
#define BLK_QUEUE_SIZE		256
#define BLK_MAX_QUEUES		16
#define BLK_SEG_MAX		(XVB_REQ_MAX_SEGS - 2)	/* minus header and status */
#define BLK_DWZ_MAX_SECTORS	(1u << 22)		/* 2 GiB per range */
#define BLK_DWZ_MAX_SEG		1
#define BLK_ZERO_BUF		(64 * 1024)

struct blk {
	struct xvb_model_base m;	/* log, loop, name */
	char *path;
	int fd;
	bool ro, discard, write_zeroes, direct, have_serial;
	uint64_t capacity;		/* in sectors */
	uint32_t discard_align;		/* in sectors */
	char serial[VIRTIO_BLK_ID_BYTES];
	struct xvb_req_limits lim;	/* the transport's, for the connected driver */
	/* Set by activate and reset, which run while no queue is being
	 * served: queue threads only read them. */
	struct xvb_vdev *vdev;		/* set between activate and reset */
	uint64_t features;		/* negotiated */
	bool resetting;			/* reset: completions are dropped */
	const void *zeroes;		/* write-zeroes fallback: a zeroed buffer */
	unsigned int nq;		/* queues offered (queues=) */
	struct blk_q *q;		/* [nq] */
};

/* One queue's I/O, touched only by the thread serving the queue. */
struct blk_q {
	struct blk *b;
	unsigned int index;
	struct xvb_aio *aio;
	struct blk_io *free_ios;	/* spare request slots */
	unsigned int nios;		/* slots allocated, at most the queue's size
					 * (mem() reads it from elsewhere: __atomic) */
	bool pushed;			/* completions to publish (batch) */
};

/* One request in flight: the chain, and the I/O done for it. */
struct blk_io {
	struct xvb_aio_op op;		/* first: container of op */
	struct blk_q *bq;
	struct blk_io *next_free;
	uint8_t type;			/* VIRTIO_BLK_T_* */
	bool wz;			/* write-zeroes: EOPNOTSUPP means do it by writing */
	bool zfill;			/* writing zeroes, chunk after chunk */
	off_t zf_off, zf_left;		/* what is left to write */
	uint64_t sector;
	struct xvb_req req;
	struct iovec iov[XVB_REQ_MAX_IOV];
};

static int blk_param(void *arg, const char *key, const char *val)
{
	struct blk *b = arg;
	int err = 0;

	if (!strcmp(key, "path")) {
		if (!val || !*val)
			goto bad;
		free(b->path);
		b->path = strdup(val);
		if (!b->path)
			return -ENOMEM;
	} else if (!strcmp(key, "serial")) {
		if (!val || strlen(val) > VIRTIO_BLK_ID_BYTES)
			goto bad;
		memset(b->serial, 0, sizeof(b->serial));
		memcpy(b->serial, val, strlen(val));
		b->have_serial = true;
	} else if (!strcmp(key, "ro")) {
		err = xvmsg_param_bool(val, &b->ro);
	} else if (!strcmp(key, "discard")) {
		err = xvmsg_param_bool(val, &b->discard);
	} else if (!strcmp(key, "write-zeroes")) {
		err = xvmsg_param_bool(val, &b->write_zeroes);
	} else if (!strcmp(key, "direct")) {
		err = xvmsg_param_bool(val, &b->direct);
	} else if (!strcmp(key, "queues")) {
		uint32_t n;

		if (!val || xvmsg_parse_u32(val, &n) || n < 1 || n > BLK_MAX_QUEUES)
			goto bad;
		b->nq = n;
	} else {
		return xvb_param_unknown(&b->m, key, NULL);
	}
	if (!err)
		return 0;
bad:
	return xvb_param_bad(&b->m, key,
			     !strcmp(key, "serial") ? " (at most 20 bytes)" :
			     !strcmp(key, "queues") ? " (1..16)" : NULL);
}

static void blk_destroy(void *priv)
{
	struct blk *b = priv;
	struct blk_io *io;
	unsigned int i;

	if (!b)
		return;
	b->resetting = true;
	for (i = 0; b->q && i < b->nq; i++) {
		struct blk_q *bq = &b->q[i];

		xvb_aio_destroy(bq->aio);
		while ((io = bq->free_ios)) {
			bq->free_ios = io->next_free;
			free(io);
		}
	}
	free(b->q);
	if (b->fd >= 0)
		close(b->fd);
	free((void *)b->zeroes);
	free(b->path);
	free(b);
}

static int blk_open(struct blk *b)
{
	struct stat st;
	uint64_t size;
	const char *base;

	b->fd = open(b->path, (b->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | (b->direct ? O_DIRECT : 0));
	if (b->fd < 0 || fstat(b->fd, &st) < 0 ||
	    (S_ISBLK(st.st_mode) && ioctl(b->fd, BLKGETSIZE64, &size) < 0)) {
		int err = -errno;

		xvb_model_err(&b->m, "path: cannot open %s: %s", b->path, strerror(-err));
		return err;
	}
	if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else if (!S_ISBLK(st.st_mode)) {
		xvb_model_err(&b->m, "path: %s is not a regular file or block device", b->path);
		return -EINVAL;
	}
	if (size == 0 || size % BLK_SECTOR_SIZE) {
		xvb_model_err(&b->m, "path: size of %s (%llu bytes) is not a non-zero multiple of 512",
			      b->path, (unsigned long long)size);
		return -EINVAL;
	}
	b->capacity = size >> BLK_SECTOR_SHIFT;
	b->discard_align = st.st_blksize >= (blksize_t)BLK_SECTOR_SIZE && st.st_blksize <= (1 << 20) ?
			   (uint32_t)st.st_blksize / BLK_SECTOR_SIZE : 1;
	if (!b->have_serial) {
		base = strrchr(b->path, '/');
		base = base ? base + 1 : b->path;
		/* zero-padded; no NUL when all 20 bytes are used */
		memcpy(b->serial, base, strnlen(base, sizeof(b->serial)));
	}
	return 0;
}

static const struct xvb_aio_opts default_aio = { .engine = XVB_AIO_AUTO };

/* After a batch of a queue's completions: publish them. */
static void blk_batch(void *arg)
{
	struct blk_q *bq = arg;

	if (bq->pushed && bq->b->vdev)
		xvb_flush(bq->b->vdev, bq->index);
	bq->pushed = false;
}

static int blk_create(const char *params, const struct xvb_model_env *env, void **priv)
{
	struct blk *b = calloc(1, sizeof(*b));
	unsigned int i;
	int err;

	if (!b)
		return -ENOMEM;
	b->fd = -1;
	b->discard = b->write_zeroes = true;
	b->nq = 1;
	err = xvb_model_start(&b->m, env, "blk", params, blk_param, b);
	if (err)
		goto fail;
	if (!b->path) {
		xvb_model_err(&b->m, "missing parameter 'path'");
		err = -EINVAL;
		goto fail;
	}
	err = blk_open(b);
	if (err)
		goto fail;
	b->q = calloc(b->nq, sizeof(*b->q));
	/* Aligned: with direct=on it is written O_DIRECT. */
	b->zeroes = aligned_alloc(4096, BLK_ZERO_BUF);
	if (b->zeroes)
		memset((void *)b->zeroes, 0, BLK_ZERO_BUF);
	if (!b->q || !b->zeroes) {
		err = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < b->nq; i++) {
		b->q[i].b = b;
		b->q[i].index = i;
		err = xvb_aio_create(env->loop, env->aio ? env->aio : &default_aio, b->m.log,
				     b->m.name, blk_batch, &b->q[i], &b->q[i].aio);
		if (err)
			goto fail;
	}
	xvb_model_info(&b->m, "%s, %llu sectors%s%s, %u queue%s, I/O by %s", b->path,
		       (unsigned long long)b->capacity, b->ro ? ", read-only" : "",
		       b->direct ? ", O_DIRECT" : "", b->nq, b->nq == 1 ? "" : "s",
		       xvb_aio_engine_name(xvb_aio_engine(b->q[0].aio)));
	*priv = b;
	return 0;
fail:
	blk_destroy(b);
	return err;
}

static uint64_t blk_features(void *priv)
{
	struct blk *b = priv;
	uint64_t f = 1ULL << VIRTIO_BLK_F_SEG_MAX | 1ULL << VIRTIO_BLK_F_BLK_SIZE |
		     1ULL << VIRTIO_BLK_F_FLUSH;

	if (b->lim.seg_bytes)
		f |= 1ULL << VIRTIO_BLK_F_SIZE_MAX;
	if (b->ro)
		f |= 1ULL << VIRTIO_BLK_F_RO;
	if (b->discard && !b->ro)
		f |= 1ULL << VIRTIO_BLK_F_DISCARD;
	if (b->write_zeroes && !b->ro)
		f |= 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
	if (b->nq > 1)
		f |= 1ULL << VIRTIO_BLK_F_MQ;
	return f;
}

static unsigned int blk_queues(void *priv)
{
	return ((struct blk *)priv)->nq;
}

static void blk_set_limits(void *priv, const struct xvb_req_limits *lim)
{
	struct blk *b = priv;

	b->lim = *lim;
}

/*
 * Segments per request: BLK_SEG_MAX, or fewer when the transport limits the
 * request (pool mode: seg_max segments of size_max bytes fit in its budget).
 */
static uint32_t blk_seg_max(const struct blk *b)
{
	uint32_t n;

	if (!b->lim.seg_bytes || !b->lim.req_bytes)
		return BLK_SEG_MAX;
	n = b->lim.req_bytes / b->lim.seg_bytes;
	return n < 1 ? 1 : n < BLK_SEG_MAX ? n : BLK_SEG_MAX;
}

static void blk_get_config(void *priv, uint8_t *cfg)
{
	struct blk *b = priv;
	struct virtio_blk_config c;

	memset(&c, 0, sizeof(c));
	c.capacity = htole64(b->capacity);
	c.size_max = htole32(b->lim.seg_bytes);
	c.seg_max = htole32(blk_seg_max(b));
	c.blk_size = htole32(BLK_SECTOR_SIZE);
	c.max_discard_sectors = htole32(BLK_DWZ_MAX_SECTORS);
	c.max_discard_seg = htole32(BLK_DWZ_MAX_SEG);
	c.discard_sector_alignment = htole32(b->discard_align);
	c.max_write_zeroes_sectors = htole32(BLK_DWZ_MAX_SECTORS);
	c.max_write_zeroes_seg = htole32(BLK_DWZ_MAX_SEG);
	c.write_zeroes_may_unmap = b->discard;
	c.num_queues = htole16((uint16_t)b->nq);
	memcpy(cfg, &c, sizeof(c));
}

static int blk_activate(void *priv, struct xvb_vdev *vdev, uint64_t features)
{
	struct blk *b = priv;

	b->vdev = vdev;
	b->features = features;
	b->resetting = false;
	return 0;
}

/* Wait for the I/O in flight; its requests are dropped, not answered (the
 * core forgets them and unmaps their buffers after this returns). */
static void blk_reset(void *priv)
{
	struct blk *b = priv;
	unsigned int i;

	b->resetting = true;
	for (i = 0; i < b->nq; i++) {
		xvb_aio_drain(b->q[i].aio);
		b->q[i].pushed = false;
	}
	b->vdev = NULL;
	b->features = 0;
}

/* Queue q moves to another thread's loop (or off any): its I/O context
 * with it.  The core calls this with no request of the queue being taken. */
static int blk_queue_loop(void *priv, unsigned int q, struct xvb_evloop *loop)
{
	struct blk *b = priv;

	return q < b->nq ? xvb_aio_set_loop(b->q[q].aio, loop) : -EINVAL;
}

/* Sectors [sector, sector + n) lie inside the disk; no overflow possible. */
static bool range_ok(const struct blk *b, uint64_t sector, uint64_t n)
{
	return sector <= b->capacity && n <= b->capacity - sector;
}

/* Copy the entries of src covering bytes [skip, skip + len) into dst. */
static unsigned int iov_slice(const struct iovec *src, unsigned int n, size_t skip, size_t len,
			      struct iovec *dst)
{
	unsigned int i, k = 0;

	for (i = 0; i < n && len; i++) {
		size_t l = src[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len)
			l = len;
		dst[k].iov_base = (char *)src[i].iov_base + skip;
		dst[k++].iov_len = l;
		len -= l;
		skip = 0;
	}
	return k;
}

#define BLK_S_PENDING 0xff	/* I/O started: the status comes with its completion */

/* Answer io's request (unless the device is being reset) and free the slot. */
static void blk_complete(struct blk_io *io, uint8_t status)
{
	struct blk_q *bq = io->bq;
	struct blk *b = bq->b;
	struct xvb_req *req = &io->req;

	if (!b->resetting && b->vdev) {
		/* The status is the last device-writable byte, so all of in[] counts. */
		xvb_buf_to_iov(req->in, req->nin, req->in_len - 1, &status, 1);
		xvb_push(b->vdev, req, req->in_len > UINT32_MAX ? UINT32_MAX : (uint32_t)req->in_len);
		bq->pushed = true;
	}
	io->next_free = bq->free_ios;
	bq->free_ios = io;
}

static void blk_start(struct blk *b, struct blk_io *io, int opcode)
{
	io->op.opcode = opcode;
	io->op.fd = b->fd;
	xvb_aio_submit(io->bq->aio, &io->op);
}

static uint8_t blk_rw(struct blk *b, struct blk_io *io, uint64_t sector, bool write)
{
	const struct xvb_req *req = &io->req;
	size_t len = write ? req->out_len - sizeof(struct virtio_blk_outhdr) : req->in_len - 1;

	if (write && b->ro) {
		xvb_model_dbg(&b->m, "write to read-only disk");
		return VIRTIO_BLK_S_IOERR;
	}
	if (len % BLK_SECTOR_SIZE || !range_ok(b, sector, len >> BLK_SECTOR_SHIFT)) {
		xvb_model_dbg(&b->m, "bad %s: sector %llu, %zu bytes",
			      write ? "write" : "read", (unsigned long long)sector, len);
		return VIRTIO_BLK_S_IOERR;
	}
	if (write)
		io->op.niov = iov_slice(req->out, req->nout, sizeof(struct virtio_blk_outhdr), len,
					io->iov);
	else
		io->op.niov = iov_slice(req->in, req->nin, 0, len, io->iov);
	io->op.iov = io->iov;
	io->op.off = (off_t)(sector << BLK_SECTOR_SHIFT);
	blk_start(b, io, write ? XVB_AIO_WRITE : XVB_AIO_READ);
	return BLK_S_PENDING;
}

/* Write-zeroes where the file cannot zero a range (tmpfs, btrfs): written
 * from the zeroed buffer, one chunk of BLK_ZERO_BUF per I/O through the
 * engine, the next submitted from the completion of the one before; up to
 * 2 GiB this way, and the thread serving the queue serves everything
 * else meanwhile. */
static void blk_zfill_next(struct blk *b, struct blk_io *io)
{
	size_t n = io->zf_left < BLK_ZERO_BUF ? (size_t)io->zf_left : BLK_ZERO_BUF;

	io->iov[0].iov_base = (void *)b->zeroes;
	io->iov[0].iov_len = n;
	io->op.iov = io->iov;
	io->op.niov = 1;
	io->op.off = io->zf_off;
	io->zf_off += (off_t)n;
	io->zf_left -= (off_t)n;
	blk_start(b, io, XVB_AIO_WRITE);
}

static uint8_t blk_discard_wz(struct blk *b, struct blk_io *io, bool wz)
{
	const struct xvb_req *req = &io->req;
	struct virtio_blk_discard_write_zeroes seg;
	size_t len = req->out_len - sizeof(struct virtio_blk_outhdr);
	unsigned int bit = wz ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD;
	uint64_t sector;
	uint32_t nsect, flags;

	if (b->ro)
		return VIRTIO_BLK_S_IOERR;
	if (!(b->features & (1ULL << bit)))
		return VIRTIO_BLK_S_UNSUPP;
	if (len == 0 || len % sizeof(seg))
		return VIRTIO_BLK_S_IOERR;
	if (len > BLK_DWZ_MAX_SEG * sizeof(seg))
		return VIRTIO_BLK_S_UNSUPP;
	xvb_iov_to_buf(req->out, req->nout, sizeof(struct virtio_blk_outhdr), &seg, sizeof(seg));
	sector = le64toh(seg.sector);
	nsect = le32toh(seg.num_sectors);
	flags = le32toh(seg.flags);
	/* virtio 1.2, 5.2.6.2: unknown flags, or unmap on a discard: UNSUPP */
	if ((flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) || (!wz && flags))
		return VIRTIO_BLK_S_UNSUPP;
	if (nsect > BLK_DWZ_MAX_SECTORS || !range_ok(b, sector, nsect))
		return VIRTIO_BLK_S_IOERR;
	if (!nsect)
		return VIRTIO_BLK_S_OK;
	io->wz = wz;
	io->sector = sector;
	io->op.off = (off_t)(sector << BLK_SECTOR_SHIFT);
	io->op.len = (off_t)nsect << BLK_SECTOR_SHIFT;
	if (!wz || ((flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) && b->discard))
		io->op.mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	else
		io->op.mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	blk_start(b, io, XVB_AIO_FALLOCATE);
	return BLK_S_PENDING;
}

/* The I/O of a request finished (on the loop's thread). */
static void blk_done(struct xvb_aio_op *op, int err)
{
	struct blk_io *io = (struct blk_io *)op;
	struct blk *b = io->bq->b;
	const char *what;

	if (err && op->opcode == XVB_AIO_FALLOCATE && err == -EOPNOTSUPP && !b->resetting) {
		/* discard is only a hint; write-zeroes is done by writing */
		if (!io->wz) {
			err = 0;
		} else {
			io->zfill = true;
			io->zf_off = op->off;
			io->zf_left = op->len;
			blk_zfill_next(b, io);
			return;
		}
	} else if (!err && io->zfill && io->zf_left && !b->resetting) {
		blk_zfill_next(b, io);
		return;
	}
	if (err) {
		what = op->opcode == XVB_AIO_READ ? "read" : io->zfill ? "write-zeroes" :
		       op->opcode == XVB_AIO_WRITE ? "write" :
		       op->opcode == XVB_AIO_FDATASYNC ? "flush" : io->wz ? "write-zeroes" : "discard";
		if (op->opcode == XVB_AIO_FDATASYNC)
			xvb_model_warn(&b->m, "flush: %s", strerror(-err));
		else
			xvb_model_warn(&b->m, "%s at sector %llu: %s", what,
				       (unsigned long long)io->sector, strerror(-err));
	}
	blk_complete(io, err ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
}

static void blk_handle(struct blk *b, struct blk_io *io)
{
	struct xvb_req *req = &io->req;
	struct virtio_blk_outhdr hdr;
	uint8_t status;
	uint64_t sector;

	if (req->in_len == 0 ||
	    xvb_iov_to_buf(req->out, req->nout, 0, &hdr, sizeof(hdr)) != sizeof(hdr)) {
		xvb_model_dbg(&b->m, "malformed request (%zu out, %zu in bytes)",
			      req->out_len, req->in_len);
		xvb_push(b->vdev, req, 0);
		io->next_free = io->bq->free_ios;
		io->bq->free_ios = io;
		return;
	}
	sector = le64toh(hdr.sector);
	io->sector = sector;
	io->type = (uint8_t)le32toh(hdr.type);
	switch (le32toh(hdr.type)) {
	case VIRTIO_BLK_T_IN:
		status = blk_rw(b, io, sector, false);
		break;
	case VIRTIO_BLK_T_OUT:
		status = blk_rw(b, io, sector, true);
		break;
	case VIRTIO_BLK_T_FLUSH:
		/* Covers every write completed before now: those were pushed
		 * only after their I/O finished. */
		status = VIRTIO_BLK_S_OK;
		if (!b->ro) {
			blk_start(b, io, XVB_AIO_FDATASYNC);
			status = BLK_S_PENDING;
		}
		break;
	case VIRTIO_BLK_T_GET_ID:
		xvb_buf_to_iov(req->in, req->nin, 0, b->serial,
			       req->in_len - 1 < sizeof(b->serial) ? req->in_len - 1 : sizeof(b->serial));
		status = VIRTIO_BLK_S_OK;
		break;
	case VIRTIO_BLK_T_DISCARD:
		status = blk_discard_wz(b, io, false);
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		status = blk_discard_wz(b, io, true);
		break;
	default:
		xvb_model_dbg(&b->m, "unsupported request type %u", le32toh(hdr.type));
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (status != BLK_S_PENDING)
		blk_complete(io, status);
}

static struct blk_io *blk_io_get(struct blk_q *bq)
{
	struct blk_io *io = bq->free_ios;

	if (io) {
		bq->free_ios = io->next_free;
	} else {
		io = malloc(sizeof(*io));
		if (!io)
			return NULL;
		__atomic_store_n(&bq->nios, bq->nios + 1, __ATOMIC_RELAXED);
	}
	memset(&io->op, 0, sizeof(io->op));
	io->op.done = blk_done;
	io->bq = bq;
	io->wz = io->zfill = false;
	return io;
}

static void blk_notify(void *priv, unsigned int q)
{
	struct blk *b = priv;
	struct blk_q *bq;
	struct blk_io *io;
	int r;

	if (!b->vdev || q >= b->nq)
		return;
	bq = &b->q[q];
	/* At most queue-size requests per queue can be in flight: one slot
	 * each. */
	xvb_aio_plug(bq->aio);
	while ((io = blk_io_get(bq))) {
		r = xvb_pop(b->vdev, q, &io->req);
		if (r <= 0) {
			io->next_free = bq->free_ios;
			bq->free_ios = io;
			if (r == -EINVAL)
				continue;	/* the core completed that chain */
			break;			/* empty, budget spent, or broken */
		}
		blk_handle(b, io);
	}
	xvb_aio_unplug(bq->aio);
	if (b->vdev) {
		if (!io)	/* out of memory: the rest on the device's next turn */
			xvb_retry_later(b->vdev, q);
		bq->pushed = false;
		xvb_flush(b->vdev, q);	/* inline completions, chains the core completed */
	}
}

/* Finish the requests in flight (answering them), then flush the file. */
static void blk_quiesce(void *priv)
{
	struct blk *b = priv;

	for (unsigned int i = 0; i < b->nq; i++)
		xvb_aio_drain(b->q[i].aio);
	if (!b->ro && fdatasync(b->fd) < 0)
		xvb_model_warn(&b->m, "flush: %s", strerror(errno));
}

static void blk_stats(void *priv, char *buf, size_t len)
{
	struct blk *b = priv;
	struct xvb_aio_stats st, all = { 0 };

	for (unsigned int i = 0; i < b->nq; i++) {
		xvb_aio_get_stats(b->q[i].aio, &st);
		all.ops += st.ops;
		all.retries += st.retries;
		if (st.max_inflight > all.max_inflight)
			all.max_inflight = st.max_inflight;
	}
	/* Counters are numbers (docs/protocol.md, the "stats" key): the
	 * engine is aio_uring 1 (io_uring) or 0 (worker threads);
	 * aio_max_inflight is the most one queue had in flight. */
	snprintf(buf, len, " aio_uring=%d aio_ops=%llu aio_retries=%llu aio_max_inflight=%llu",
		 xvb_aio_engine(b->q[0].aio) == XVB_AIO_URING, (unsigned long long)all.ops,
		 (unsigned long long)all.retries, (unsigned long long)all.max_inflight);
}

static size_t blk_mem(const void *priv)
{
	const struct blk *b = priv;
	size_t n = sizeof(*b) + b->nq * sizeof(*b->q) + BLK_ZERO_BUF;

	for (unsigned int i = 0; i < b->nq; i++)
		n += (size_t)__atomic_load_n(&b->q[i].nios, __ATOMIC_RELAXED) *
		     sizeof(struct blk_io) + xvb_aio_mem(b->q[i].aio);
	return n;
}

const struct xvb_model_ops xvb_blk_ops = {
	.type = "blk",
	.device_id = VIRTIO_ID_BLOCK,
	.num_queues = BLK_MAX_QUEUES,
	.queues = blk_queues,
	.queue_size = BLK_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_blk_config),
	.create = blk_create,
	.destroy = blk_destroy,
	.features = blk_features,
	.set_limits = blk_set_limits,
	.get_config = blk_get_config,
	.activate = blk_activate,
	.reset = blk_reset,
	.notify = blk_notify,
	.queue_loop = blk_queue_loop,
	.quiesce = blk_quiesce,
	.stats = blk_stats,
	.mem = blk_mem,
};
