/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: virtio-blk model on a temporary image.  The core's request API
 * is faked here: requests prepared by a test are served from per-queue lists,
 * and pushes are recorded.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "device.h"

#include "fake-core.h"

static void mkreq(struct xvb_req *r, uint16_t head, const struct iovec *out, unsigned int nout,
		  const struct iovec *in, unsigned int nin)
{
	unsigned int i;

	memset(r, 0, sizeof(*r));
	r->head = head;
	r->nout = nout;
	r->nin = nin;
	for (i = 0; i < nout; i++) {
		r->out[i] = out[i];
		r->out_len += out[i].iov_len;
	}
	for (i = 0; i < nin; i++) {
		r->in[i] = in[i];
		r->in_len += in[i].iov_len;
	}
}

/* ---- fixture ---- */
#define IMG_SECTORS 2048	/* 1 MiB */

struct t {
	char path[64];
	char *logtext;
	size_t logsize;
	struct xvb_log log;
	struct xvb_model_env env;
	void *priv;
	struct fake_vdev f;
};

static int make_image_in(struct t *t, const char *dir, off_t size)
{
	int fd;

	snprintf(t->path, sizeof(t->path), "%s/xvb-blk-XXXXXX", dir);
	fd = mkstemp(t->path);
	if (fd < 0 || ftruncate(fd, size) < 0)
		return -1;
	close(fd);
	return 0;
}

static int setup_env(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	t->log.level = XVB_LOG_DEBUG;
	t->log.prog = "test-blk";
	t->log.out = open_memstream(&t->logtext, &t->logsize);
	t->env = (struct xvb_model_env){ .loop = NULL, .log = &t->log, .name = "blk0" };
	if (!t->log.out || make_image_in(t, "/tmp", IMG_SECTORS * 512))
		return -1;
	*state = t;
	return 0;
}

static int setup(void **state)
{
	struct t *t;
	char params[128];

	if (setup_env(state))
		return -1;
	t = *state;
	snprintf(params, sizeof(params), "path=%s", t->path);
	if (xvb_blk_ops.create(params, &t->env, &t->priv))
		return -1;
	return xvb_blk_ops.activate(t->priv, VDEV(&t->f), xvb_blk_ops.features(t->priv) |
				    1ULL << 32);
}

static int teardown(void **state)
{
	struct t *t = *state;

	if (t->priv)
		xvb_blk_ops.destroy(t->priv);
	fclose(t->log.out);
	if (getenv("XVB_TEST_LOG"))	/* show what the model logged */
		fprintf(stderr, "%s", t->logtext ? t->logtext : "");
	free(t->logtext);
	unlink(t->path);
	free(t);
	return 0;
}

static const char *logtext_of(struct t *t)
{
	fflush(t->log.out);
	return t->logtext ? t->logtext : "";
}

/* Serve one request; check it was pushed exactly once, then flushed. */
static uint32_t submit(struct t *t, struct xvb_req *r)
{
	unsigned int npush = t->f.npush, flushes = t->f.flushes[0];

	fake_queue(&t->f, 0, r, 0);
	xvb_blk_ops.notify(t->priv, 0);
	assert_int_equal(t->f.npush, npush + 1);
	assert_int_equal(t->f.push[npush].head, r->head);
	assert_int_equal(t->f.flushes[0], flushes + 1);
	assert_int_equal(t->f.qnext[0], t->f.qn[0]);
	return t->f.push[npush].written;
}

static void hdr(struct virtio_blk_outhdr *h, uint32_t type, uint64_t sector)
{
	h->type = htole32(type);
	h->ioprio = 0;
	h->sector = htole64(sector);
}

/* A request of the usual shape: header [+ data] / [data +] status. */
static uint8_t simple(struct t *t, uint32_t type, uint64_t sector, void *data, size_t len)
{
	struct virtio_blk_outhdr h;
	uint8_t status = 0xff;
	struct iovec out[2] = { { &h, sizeof(h) }, { data, len } };
	struct iovec in[2] = { { data, len }, { &status, 1 } };
	struct xvb_req r;
	bool to_dev = type != VIRTIO_BLK_T_IN && type != VIRTIO_BLK_T_GET_ID;

	hdr(&h, type, sector);
	if (to_dev)
		mkreq(&r, 7, out, len ? 2 : 1, in + 1, 1);
	else
		mkreq(&r, 7, out, 1, in, 2);
	assert_int_equal(submit(t, &r), r.in_len);
	return status;
}

static uint8_t dwz(struct t *t, uint32_t type, uint64_t sector, uint32_t n, uint32_t flags)
{
	struct virtio_blk_discard_write_zeroes seg = {
		.sector = htole64(sector), .num_sectors = htole32(n), .flags = htole32(flags),
	};

	return simple(t, type, 0, &seg, sizeof(seg));
}

static void fill(uint8_t *p, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 9));
}

/* ---- tests ---- */

static void test_ops_and_config(void **state)
{
	struct t *t = *state;
	uint64_t f = xvb_blk_ops.features(t->priv);
	struct virtio_blk_config c;

	assert_string_equal(xvb_blk_ops.type, "blk");
	assert_int_equal(xvb_blk_ops.device_id, VIRTIO_ID_BLOCK);
	assert_int_equal(xvb_blk_ops.num_queues, 1);
	assert_int_equal(xvb_blk_ops.queue_size, 256);
	assert_int_equal(xvb_blk_ops.config_size, sizeof(c));
	assert_true(f & 1ULL << VIRTIO_BLK_F_SEG_MAX);
	assert_true(f & 1ULL << VIRTIO_BLK_F_BLK_SIZE);
	assert_true(f & 1ULL << VIRTIO_BLK_F_FLUSH);
	assert_true(f & 1ULL << VIRTIO_BLK_F_DISCARD);
	assert_true(f & 1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	assert_false(f & 1ULL << VIRTIO_BLK_F_RO);
	memset(&c, 0xaa, sizeof(c));
	xvb_blk_ops.get_config(t->priv, (uint8_t *)&c);
	assert_int_equal(le64toh(c.capacity), IMG_SECTORS);
	assert_int_equal(le32toh(c.seg_max), XVB_REQ_MAX_SEGS - 2);
	assert_int_equal(le32toh(c.blk_size), 512);
	assert_int_equal(le32toh(c.max_discard_seg), 1);
	assert_int_equal(le32toh(c.max_write_zeroes_seg), 1);
	assert_true(le32toh(c.max_discard_sectors) > 0);
	assert_true(le32toh(c.max_write_zeroes_sectors) > 0);
	assert_true(le32toh(c.discard_sector_alignment) > 0);
}

/* Pool mode: seg_max and size_max follow the transport's limits, SIZE_MAX
 * is offered only then, and a disconnect (zero limits) restores the rest. */
static void test_pool_limits(void **state)
{
	struct t *t = *state;
	struct xvb_req_limits lim = { .seg_bytes = 4096, .req_bytes = 126976 };
	struct virtio_blk_config c;

	assert_non_null(xvb_blk_ops.set_limits);
	assert_false(xvb_blk_ops.features(t->priv) & 1ULL << VIRTIO_BLK_F_SIZE_MAX);
	xvb_blk_ops.set_limits(t->priv, &lim);
	assert_true(xvb_blk_ops.features(t->priv) & 1ULL << VIRTIO_BLK_F_SIZE_MAX);
	xvb_blk_ops.get_config(t->priv, (uint8_t *)&c);
	assert_int_equal(le32toh(c.seg_max), 31);
	assert_int_equal(le32toh(c.size_max), 4096);
	lim.req_bytes = 100;		/* smaller than a segment: still one */
	xvb_blk_ops.set_limits(t->priv, &lim);
	xvb_blk_ops.get_config(t->priv, (uint8_t *)&c);
	assert_int_equal(le32toh(c.seg_max), 1);
	lim = (struct xvb_req_limits){ .seg_bytes = 65536, .req_bytes = 1u << 30 };
	xvb_blk_ops.set_limits(t->priv, &lim);	/* a huge pool: the model's own cap */
	xvb_blk_ops.get_config(t->priv, (uint8_t *)&c);
	assert_int_equal(le32toh(c.seg_max), XVB_REQ_MAX_SEGS - 2);
	lim = (struct xvb_req_limits){ 0 };
	xvb_blk_ops.set_limits(t->priv, &lim);
	assert_false(xvb_blk_ops.features(t->priv) & 1ULL << VIRTIO_BLK_F_SIZE_MAX);
	xvb_blk_ops.get_config(t->priv, (uint8_t *)&c);
	assert_int_equal(le32toh(c.seg_max), XVB_REQ_MAX_SEGS - 2);
	assert_int_equal(le32toh(c.size_max), 0);
}

static void test_write_read(void **state)
{
	struct t *t = *state;
	uint8_t wbuf[1536], rbuf[1536], file[1536];
	struct virtio_blk_outhdr h;
	uint8_t status = 0xff;
	struct xvb_req r;
	int fd;

	/* OUT: header + data in two pieces (split mid-sector) + status */
	fill(wbuf, sizeof(wbuf), 1);
	hdr(&h, VIRTIO_BLK_T_OUT, 5);
	{
		struct iovec out[3] = { { &h, sizeof(h) }, { wbuf, 700 }, { wbuf + 700, 836 } };
		struct iovec in[1] = { { &status, 1 } };

		mkreq(&r, 1, out, 3, in, 1);
	}
	assert_int_equal(submit(t, &r), 1);
	assert_int_equal(status, VIRTIO_BLK_S_OK);

	/* the bytes really are in the file, at sector 5 */
	fd = open(t->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, file, sizeof(file), 5 * 512), sizeof(file));
	close(fd);
	assert_memory_equal(file, wbuf, sizeof(wbuf));

	/* IN: data in three pieces, the status sharing the last one */
	{
		uint8_t last[37];
		struct iovec out[1] = { { &h, sizeof(h) } };
		struct iovec in[3] = { { rbuf, 1000 }, { rbuf + 1000, 500 }, { last, 37 } };

		memset(rbuf, 0, sizeof(rbuf));
		memset(last, 0xff, sizeof(last));
		hdr(&h, VIRTIO_BLK_T_IN, 5);
		mkreq(&r, 2, out, 1, in, 3);
		assert_int_equal(submit(t, &r), sizeof(rbuf) + 1);
		assert_int_equal(last[36], VIRTIO_BLK_S_OK);
		memcpy(rbuf + 1500, last, 36);
		assert_memory_equal(rbuf, wbuf, sizeof(rbuf));
	}

	/* and a plain read of a neighbouring range */
	memset(rbuf, 0xee, 512);
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, 4, rbuf, 512), VIRTIO_BLK_S_OK);
	assert_true(rbuf[0] == 0 && rbuf[511] == 0);
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, 7, rbuf, 512), VIRTIO_BLK_S_OK);
	assert_memory_equal(rbuf, wbuf + 1024, 512);
}

static void test_flush_and_id(void **state)
{
	struct t *t = *state;
	char id[20], want[20];
	const char *base = strrchr(t->path, '/') + 1;

	assert_int_equal(simple(t, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	memset(id, 0x55, sizeof(id));
	memset(want, 0, sizeof(want));
	memcpy(want, base, strlen(base) < 20 ? strlen(base) : 20);
	assert_int_equal(simple(t, VIRTIO_BLK_T_GET_ID, 0, id, sizeof(id)), VIRTIO_BLK_S_OK);
	assert_memory_equal(id, want, sizeof(id));
	/* the status byte of a short buffer is still its last byte */
	memset(id, 0x55, sizeof(id));
	assert_int_equal(simple(t, VIRTIO_BLK_T_GET_ID, 0, id, 4), VIRTIO_BLK_S_OK);
	assert_memory_equal(id, want, 4);
	assert_int_equal((uint8_t)id[4], 0x55);
}

static void test_serial_param(void **state)
{
	struct t *t = *state;
	char params[128], id[20];

	xvb_blk_ops.destroy(t->priv);
	snprintf(params, sizeof(params), "serial=disk-42,path=%s", t->path);
	assert_int_equal(xvb_blk_ops.create(params, &t->env, &t->priv), 0);
	xvb_blk_ops.activate(t->priv, VDEV(&t->f), xvb_blk_ops.features(t->priv));
	memset(id, 0x55, sizeof(id));
	assert_int_equal(simple(t, VIRTIO_BLK_T_GET_ID, 0, id, sizeof(id)), VIRTIO_BLK_S_OK);
	assert_string_equal(id, "disk-42");
	assert_int_equal(id[19], 0);
}

static void test_bounds(void **state)
{
	struct t *t = *state;
	uint8_t buf[1024];

	memset(buf, 0, sizeof(buf));
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, IMG_SECTORS - 2, buf, 1024), VIRTIO_BLK_S_OK);
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, IMG_SECTORS - 1, buf, 1024), VIRTIO_BLK_S_IOERR);
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, IMG_SECTORS, buf, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(simple(t, VIRTIO_BLK_T_OUT, IMG_SECTORS, buf, 512), VIRTIO_BLK_S_IOERR);
	/* sector * 512 and sector + n overflow */
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, 1ULL << 55, buf, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(simple(t, VIRTIO_BLK_T_OUT, UINT64_MAX, buf, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, UINT64_MAX - 1, buf, 1024), VIRTIO_BLK_S_IOERR);
	/* zero-length transfers are fine anywhere inside */
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, IMG_SECTORS, buf, 0), VIRTIO_BLK_S_OK);
}

static void test_unaligned(void **state)
{
	struct t *t = *state;
	uint8_t buf[1024];

	memset(buf, 0x11, sizeof(buf));
	assert_int_equal(simple(t, VIRTIO_BLK_T_OUT, 0, buf, 100), VIRTIO_BLK_S_IOERR);
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, 0, buf, 513), VIRTIO_BLK_S_IOERR);
	/* nothing was written */
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, 0, buf, 512), VIRTIO_BLK_S_OK);
	assert_int_equal(buf[0], 0);
}

static void test_unknown_type(void **state)
{
	struct t *t = *state;
	uint8_t buf[512];

	assert_int_equal(simple(t, 99, 0, buf, 0), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(simple(t, VIRTIO_BLK_T_OUT | 0x80000000u, 0, buf, 512), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(simple(t, VIRTIO_BLK_T_SECURE_ERASE, 0, buf, 0), VIRTIO_BLK_S_UNSUPP);
}

static void test_split_header(void **state)
{
	struct t *t = *state;
	uint8_t raw[16 + 512], rbuf[512], status = 0xff;
	struct virtio_blk_outhdr h;
	struct xvb_req r;
	struct iovec out[4] = { { raw, 5 }, { raw + 5, 7 }, { raw + 12, 4 }, { raw + 16, 512 } };
	struct iovec in[1] = { { &status, 1 } };

	hdr(&h, VIRTIO_BLK_T_OUT, 9);
	memcpy(raw, &h, 16);
	fill(raw + 16, 512, 3);
	mkreq(&r, 3, out, 4, in, 1);
	assert_int_equal(submit(t, &r), 1);
	assert_int_equal(status, VIRTIO_BLK_S_OK);
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, 9, rbuf, 512), VIRTIO_BLK_S_OK);
	assert_memory_equal(rbuf, raw + 16, 512);

	/* header and data sharing one iovec, split elsewhere */
	fill(raw + 16, 512, 4);
	hdr(&h, VIRTIO_BLK_T_OUT, 10);
	memcpy(raw, &h, 16);
	out[0] = (struct iovec){ raw, 300 };
	out[1] = (struct iovec){ raw + 300, 228 };
	mkreq(&r, 4, out, 2, in, 1);
	assert_int_equal(submit(t, &r), 1);
	assert_int_equal(status, VIRTIO_BLK_S_OK);
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, 10, rbuf, 512), VIRTIO_BLK_S_OK);
	assert_memory_equal(rbuf, raw + 16, 512);
}

static void test_malformed(void **state)
{
	struct t *t = *state;
	struct virtio_blk_outhdr h;
	uint8_t buf[512], status = 0xff;
	struct xvb_req r;
	struct iovec out[2] = { { &h, sizeof(h) }, { buf, 512 } };
	struct iovec in[1] = { { &status, 1 } };

	hdr(&h, VIRTIO_BLK_T_OUT, 0);
	memset(buf, 0x77, sizeof(buf));
	mkreq(&r, 5, out, 2, in, 0);		/* no status byte */
	assert_int_equal(submit(t, &r), 0);
	out[0].iov_len = 10;			/* short header */
	mkreq(&r, 6, out, 1, in, 1);
	assert_int_equal(submit(t, &r), 0);
	assert_int_equal(status, 0xff);
	mkreq(&r, 7, NULL, 0, in, 1);		/* no header at all */
	assert_int_equal(submit(t, &r), 0);
	assert_int_equal(status, 0xff);
	/* nothing was written to the disk */
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, 0, buf, 512), VIRTIO_BLK_S_OK);
	assert_int_equal(buf[0], 0);
	assert_non_null(strstr(logtext_of(t), "malformed"));
}

static void test_discard(void **state)
{
	struct t *t = *state;
	uint8_t buf[4096], rbuf[4096], zero[4096];

	memset(zero, 0, sizeof(zero));
	fill(buf, sizeof(buf), 5);
	assert_int_equal(simple(t, VIRTIO_BLK_T_OUT, 64, buf, sizeof(buf)), VIRTIO_BLK_S_OK);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, 64, 8, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, 64, rbuf, sizeof(rbuf)), VIRTIO_BLK_S_OK);
	assert_memory_equal(rbuf, zero, sizeof(rbuf));
	/* unmap is not a discard flag; unknown flags; out of range; bad sizes */
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, 64, 8, 1), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, 64, 8, 4), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, IMG_SECTORS - 4, 8, 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, UINT64_MAX - 2, 8, 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(simple(t, VIRTIO_BLK_T_DISCARD, 0, buf, 8), VIRTIO_BLK_S_IOERR);
	assert_int_equal(simple(t, VIRTIO_BLK_T_DISCARD, 0, zero, 32), VIRTIO_BLK_S_UNSUPP);
}

static void test_write_zeroes(void **state)
{
	struct t *t = *state;
	uint8_t buf[2048], rbuf[2048], zero[1024];

	memset(zero, 0, sizeof(zero));
	fill(buf, sizeof(buf), 6);
	assert_int_equal(simple(t, VIRTIO_BLK_T_OUT, 100, buf, sizeof(buf)), VIRTIO_BLK_S_OK);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, 101, 1, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, 103, 1,
			     VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP), VIRTIO_BLK_S_OK);
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, 100, rbuf, sizeof(rbuf)), VIRTIO_BLK_S_OK);
	assert_memory_equal(rbuf, buf, 512);
	assert_memory_equal(rbuf + 512, zero, 512);
	assert_memory_equal(rbuf + 1024, buf + 1024, 512);
	assert_memory_equal(rbuf + 1536, zero, 512);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, 103, 1, 2), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, IMG_SECTORS, 1, 0), VIRTIO_BLK_S_IOERR);
}

/* tmpfs has no FALLOC_FL_ZERO_RANGE: write-zeroes falls back to writing. */
static void test_write_zeroes_fallback(void **state)
{
	struct t *t = *state;
	uint8_t buf[2048], rbuf[2048], zero[2048];
	char params[128];

	if (access("/dev/shm", W_OK))
		print_error("this test needs a writable /dev/shm (tmpfs)\n");
	assert_int_equal(access("/dev/shm", W_OK), 0);
	xvb_blk_ops.destroy(t->priv);
	t->priv = NULL;
	unlink(t->path);
	assert_int_equal(make_image_in(t, "/dev/shm", IMG_SECTORS * 512), 0);
	snprintf(params, sizeof(params), "path=%s,discard=off", t->path);
	assert_int_equal(xvb_blk_ops.create(params, &t->env, &t->priv), 0);
	assert_false(xvb_blk_ops.features(t->priv) & 1ULL << VIRTIO_BLK_F_DISCARD);
	xvb_blk_ops.activate(t->priv, VDEV(&t->f), xvb_blk_ops.features(t->priv));
	memset(zero, 0, sizeof(zero));
	fill(buf, sizeof(buf), 8);
	assert_int_equal(simple(t, VIRTIO_BLK_T_OUT, 200, buf, sizeof(buf)), VIRTIO_BLK_S_OK);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, 201, 2,
			     VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP), VIRTIO_BLK_S_OK);
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, 200, rbuf, sizeof(rbuf)), VIRTIO_BLK_S_OK);
	assert_memory_equal(rbuf, buf, 512);
	assert_memory_equal(rbuf + 512, zero, 1024);
	assert_memory_equal(rbuf + 1536, buf + 1536, 512);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, 200, 1, 0), VIRTIO_BLK_S_UNSUPP);
}

static void test_not_negotiated(void **state)
{
	struct t *t = *state;

	xvb_blk_ops.reset(t->priv);
	xvb_blk_ops.activate(t->priv, VDEV(&t->f), 1ULL << VIRTIO_BLK_F_FLUSH);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, 0, 1, 0), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0), VIRTIO_BLK_S_UNSUPP);
}

static void test_readonly(void **state)
{
	struct t *t = *state;
	char params[128];
	uint8_t buf[512];
	uint64_t f;

	xvb_blk_ops.destroy(t->priv);
	snprintf(params, sizeof(params), "path=%s,ro", t->path);
	assert_int_equal(xvb_blk_ops.create(params, &t->env, &t->priv), 0);
	f = xvb_blk_ops.features(t->priv);
	assert_true(f & 1ULL << VIRTIO_BLK_F_RO);
	assert_false(f & 1ULL << VIRTIO_BLK_F_DISCARD);
	xvb_blk_ops.activate(t->priv, VDEV(&t->f), f);
	memset(buf, 0x33, sizeof(buf));
	assert_int_equal(simple(t, VIRTIO_BLK_T_OUT, 0, buf, 512), VIRTIO_BLK_S_IOERR);
	assert_non_null(strstr(logtext_of(t), "write to read-only disk"));
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, 0, 1, 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, 0, buf, 512), VIRTIO_BLK_S_OK);
	assert_int_equal(buf[0], 0);
	assert_int_equal(simple(t, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	xvb_blk_ops.quiesce(t->priv);
}

static void test_pop_results(void **state)
{
	struct t *t = *state;
	struct virtio_blk_outhdr h1, h2;
	uint8_t s1 = 0xff, s2 = 0xff;
	struct iovec o1 = { &h1, 16 }, i1 = { &s1, 1 }, o2 = { &h2, 16 }, i2 = { &s2, 1 };
	struct xvb_req r1, r2;

	hdr(&h1, VIRTIO_BLK_T_FLUSH, 0);
	hdr(&h2, VIRTIO_BLK_T_FLUSH, 0);
	mkreq(&r1, 11, &o1, 1, &i1, 1);
	mkreq(&r2, 12, &o2, 1, &i2, 1);
	/* a bad chain in between is skipped; a broken device stops the loop */
	fake_queue(&t->f, 0, NULL, -EINVAL);
	fake_queue(&t->f, 0, &r1, 0);
	fake_queue(&t->f, 0, NULL, -EIO);
	fake_queue(&t->f, 0, &r2, 0);
	xvb_blk_ops.notify(t->priv, 0);
	assert_int_equal(t->f.npush, 1);
	assert_int_equal(t->f.push[0].head, 11);
	assert_int_equal(s1, VIRTIO_BLK_S_OK);
	assert_int_equal(s2, 0xff);
	assert_int_equal(t->f.flushes[0], 1);
	/* the next notify carries on */
	xvb_blk_ops.notify(t->priv, 0);
	assert_int_equal(t->f.npush, 2);
	assert_int_equal(s2, VIRTIO_BLK_S_OK);
	assert_int_equal(t->f.flushes[0], 2);
}

static void test_not_active(void **state)
{
	struct t *t = *state;
	struct virtio_blk_outhdr h;
	uint8_t s = 0xff;
	struct iovec o = { &h, 16 }, i = { &s, 1 };
	struct xvb_req r;

	hdr(&h, VIRTIO_BLK_T_FLUSH, 0);
	mkreq(&r, 1, &o, 1, &i, 1);
	xvb_blk_ops.reset(t->priv);
	fake_queue(&t->f, 0, &r, 0);
	xvb_blk_ops.notify(t->priv, 0);
	assert_int_equal(t->f.pops, 0);
	assert_int_equal(t->f.npush, 0);
	assert_int_equal(t->f.flushes[0], 0);
	assert_int_equal(s, 0xff);
}

static void expect_create_err(struct t *t, const char *params, const char *msg, int err)
{
	void *priv = NULL;
	long before = ftell(t->log.out);

	assert_int_equal(xvb_blk_ops.create(params, &t->env, &priv), err);
	assert_null(priv);
	fflush(t->log.out);
	assert_true(ftell(t->log.out) > before);
	assert_non_null(strstr(t->logtext + before, msg));
}

static void expect_create_fails(struct t *t, const char *params, const char *msg)
{
	expect_create_err(t, params, msg, -EINVAL);
}

static void test_bad_params(void **state)
{
	struct t *t = *state;
	char params[160];

	expect_create_fails(t, "", "'path'");
	expect_create_fails(t, "ro", "'path'");
	snprintf(params, sizeof(params), "path=%s,bogus=1", t->path);
	expect_create_fails(t, params, "'bogus'");
	snprintf(params, sizeof(params), "path=%s,ro=maybe", t->path);
	expect_create_fails(t, params, "'ro'");
	snprintf(params, sizeof(params), "path=%s,serial=123456789012345678901", t->path);
	expect_create_fails(t, params, "'serial'");
	snprintf(params, sizeof(params), "path=%s,,ro", t->path);
	expect_create_fails(t, params, "malformed");
	expect_create_err(t, "path=/nonexistent/xvb.img", "/nonexistent/xvb.img", -ENOENT);
	expect_create_fails(t, "path=/dev/null", "block device");
	/* size not a multiple of 512, and empty */
	assert_int_equal(truncate(t->path, 1000), 0);
	snprintf(params, sizeof(params), "path=%s", t->path);
	expect_create_fails(t, params, "multiple of 512");
	assert_int_equal(truncate(t->path, 0), 0);
	expect_create_fails(t, params, "multiple of 512");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ops_and_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_and_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_serial_param, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unaligned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_zeroes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_zeroes_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_negotiated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pop_results, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_active, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_params, setup_env, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
