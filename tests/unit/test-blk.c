/* SPDX-License-Identifier: MIT */
/*
 * Unit tests: virtio-blk model on a temporary image.  The core's request API
 * is faked here: requests prepared by a test are served from per-queue lists,
 * and pushes are recorded.  The model completes I/O from an event loop: the
 * tests run it until the pushes they expect have come.  Every test runs with
 * each I/O engine (io_uring, threads).
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "aio.h"
#include "device.h"
#include "evloop.h"

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
	struct xvb_aio_opts aio;
	struct xvb_evloop *loop;
	void *priv;
	struct fake_vdev f;
};

/* The allocation seam: the program links with -Wl,--wrap=malloc
 * (Makefile), so while fail_malloc is set every malloc of our objects
 * (blk's request slots) fails. */
void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
static bool fail_malloc;

void *__wrap_malloc(size_t n)
{
	return fail_malloc ? NULL : __real_malloc(n);
}

/* The engine of this run (main runs the tests once per engine). */
static int test_engine = XVB_AIO_URING;

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run the model's event loop until n requests have been pushed in all
 * (at most 10 s). */
static void wait_pushes(struct t *t, unsigned int n)
{
	uint64_t end = mono_ms() + 10000;

	while (t->f.npush < n && mono_ms() < end)
		xvb_evloop_run_once(t->loop, 100);
	assert_int_equal(t->f.npush, n);
}

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
	t->aio.engine = test_engine;
	if (xvb_evloop_create(&t->loop))
		return -1;
	t->env = (struct xvb_model_env){ .loop = t->loop, .log = &t->log, .name = "blk0",
					 .aio = &t->aio };
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
	xvb_evloop_destroy(t->loop);
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
	wait_pushes(t, npush + 1);
	xvb_evloop_run_once(t->loop, 0);	/* nothing else comes */
	assert_int_equal(t->f.npush, npush + 1);
	assert_int_equal(t->f.push[npush].head, r->head);
	assert_true(t->f.flushes[0] >= flushes + 1);
	assert_int_equal(t->f.flush_npush[0], npush + 1);	/* published */
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
	assert_int_equal(xvb_blk_ops.num_queues, 16);
	assert_int_equal(xvb_blk_ops.queues(t->priv), 1);	/* the default */
	assert_false(f & 1ULL << VIRTIO_BLK_F_MQ);
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

/* The same with the image opened O_DIRECT (tmpfs takes it since Linux
 * 6.6, without asking for alignment), over most of the disk: the zeroes
 * are written chunk after chunk, each chunk an I/O of the engine's, so
 * the thread serves other work meanwhile.  Every I/O starts 10 ms late
 * (--fault slow-io): the fallocate that fails and 16 writes after it take
 * at least 170 ms; written synchronously on the completion path (as
 * before), only the fallocate was late. */
static void test_write_zeroes_fallback_direct(void **state)
{
	struct t *t = *state;
	static uint8_t buf[IMG_SECTORS * 512], rbuf2[IMG_SECTORS * 512], rbuf[4096], zero[4096];
	char params[160];
	uint64_t t0;
	int fd;

	xvb_blk_ops.destroy(t->priv);
	t->priv = NULL;
	unlink(t->path);
	assert_int_equal(make_image_in(t, "/dev/shm", IMG_SECTORS * 512), 0);
	fd = open(t->path, O_RDWR | O_DIRECT);
	if (fd < 0)
		print_error("tmpfs here takes no O_DIRECT (%s)\n", strerror(errno));
	assert_true(fd >= 0);
	close(fd);
	fill(buf, sizeof(buf), 9);
	fd = open(t->path, O_RDWR);
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 0), sizeof(buf));
	snprintf(params, sizeof(params), "path=%s,discard=off,direct=on", t->path);
	t->aio.slow_ms = 10;
	assert_int_equal(xvb_blk_ops.create(params, &t->env, &t->priv), 0);
	xvb_blk_ops.activate(t->priv, VDEV(&t->f), xvb_blk_ops.features(t->priv));
	/* Sectors 8 .. 2040: 15 chunks of 64 KiB and a last one shorter. */
	t0 = mono_ms();
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, 8, IMG_SECTORS - 16, 0),
			 VIRTIO_BLK_S_OK);
	assert_true(mono_ms() - t0 >= 17 * 10);
	assert_int_equal(simple(t, VIRTIO_BLK_T_IN, 8, rbuf, 4096), VIRTIO_BLK_S_OK);
	assert_memory_equal(rbuf, zero, 4096);
	assert_int_equal(pread(fd, rbuf2, sizeof(rbuf2), 0), sizeof(rbuf2));
	close(fd);
	assert_memory_equal(rbuf2, buf, 4096);
	for (size_t off = 4096; off < sizeof(rbuf2) - 4096; off += 4096)
		assert_memory_equal(rbuf2 + off, zero, 4096);
	assert_memory_equal(rbuf2 + sizeof(rbuf2) - 4096, buf + sizeof(buf) - 4096, 4096);
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
	wait_pushes(t, 1);
	assert_int_equal(t->f.push[0].head, 11);
	assert_int_equal(s1, VIRTIO_BLK_S_OK);
	assert_int_equal(s2, 0xff);
	assert_int_equal(t->f.flush_npush[0], 1);
	/* the next notify carries on */
	xvb_blk_ops.notify(t->priv, 0);
	wait_pushes(t, 2);
	assert_int_equal(s2, VIRTIO_BLK_S_OK);
	assert_int_equal(t->f.flush_npush[0], 2);
}

/* No request slot to be had: the queue's requests wait for the device's
 * next turn (xvb_retry_later).  With EVENT_IDX the driver does not kick
 * for requests it already made available, so nothing else would come. */
static void test_slot_alloc_fails(void **state)
{
	struct t *t = *state;
	struct virtio_blk_outhdr h;
	uint8_t id[VIRTIO_BLK_ID_BYTES], status = 0xff;
	struct iovec out[1] = { { &h, sizeof(h) } };
	struct iovec in[2] = { { id, sizeof(id) }, { &status, 1 } };
	struct xvb_req r;

	hdr(&h, VIRTIO_BLK_T_GET_ID, 0);
	mkreq(&r, 9, out, 1, in, 2);
	fake_queue(&t->f, 0, &r, 0);
	fail_malloc = true;		/* a fresh device has no spare slot */
	xvb_blk_ops.notify(t->priv, 0);
	fail_malloc = false;
	assert_int_equal(t->f.qnext[0], 0);	/* nothing taken */
	assert_int_equal(t->f.npush, 0);
	assert_int_equal(t->f.retries[0], 1);	/* but another turn asked for */

	xvb_blk_ops.notify(t->priv, 0);	/* the turn */
	wait_pushes(t, 1);
	assert_int_equal(t->f.qnext[0], 1);
	assert_int_equal(status, VIRTIO_BLK_S_OK);
	assert_int_equal(t->f.retries[0], 1);	/* no more asked for */
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
	for (unsigned int i = 0; i < 6; i++) {
		static const char *const bad[] = { "0", "17", "x", "", "+2", "2x" };

		snprintf(params, sizeof(params), "path=%s,queues=%s", t->path, bad[i]);
		expect_create_fails(t, params, "'queues' (1..16)");
	}
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

/* ---- asynchronous I/O ---- */

/* The threads engine's fdatasync comes here (io_uring's stays in the
 * kernel): it notes how many requests had been pushed when it began and
 * when it had finished. */
static struct fake_vdev *sync_watch;
static unsigned int sync_calls, sync_begin_npush, sync_end_npush;

int fdatasync(int fd)
{
	int rc;

	if (sync_watch)
		sync_begin_npush = __atomic_load_n(&sync_watch->npush, __ATOMIC_SEQ_CST);
	rc = (int)syscall(SYS_fdatasync, fd);
	if (sync_watch) {
		sync_end_npush = __atomic_load_n(&sync_watch->npush, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&sync_calls, 1, __ATOMIC_SEQ_CST);
	}
	return rc;
}

/* A new instance with the options in t->aio (and extra params, if any). */
static void recreate_with(struct t *t, const char *extra)
{
	char params[160];

	xvb_blk_ops.destroy(t->priv);
	snprintf(params, sizeof(params), "path=%s%s", t->path, extra);
	assert_int_equal(xvb_blk_ops.create(params, &t->env, &t->priv), 0);
	assert_int_equal(xvb_blk_ops.activate(t->priv, VDEV(&t->f),
					      xvb_blk_ops.features(t->priv)), 0);
}

static void recreate(struct t *t)
{
	recreate_with(t, "");
}

static unsigned long long stat_of(struct t *t, const char *key)
{
	char buf[256], *p;

	xvb_blk_ops.stats(t->priv, buf, sizeof(buf));
	p = strstr(buf, key);
	assert_non_null(p);
	return strtoull(p + strlen(key), NULL, 10);
}

#define NIO 32
#define IO_BYTES 2048	/* 4 sectors */

struct batch {
	struct virtio_blk_outhdr h[NIO];
	uint8_t st[NIO];
	uint8_t *data[NIO];
	struct xvb_req r[NIO];
};

/* Queue NIO writes (or reads) of IO_BYTES at sectors 8 * i, heads base + i. */
static void queue_batch(struct t *t, struct batch *b, bool write, uint16_t base)
{
	unsigned int i;

	for (i = 0; i < NIO; i++) {
		struct iovec out[2] = { { &b->h[i], sizeof(b->h[i]) }, { b->data[i], IO_BYTES } };
		struct iovec in[2] = { { b->data[i], IO_BYTES }, { &b->st[i], 1 } };

		b->st[i] = 0xff;
		hdr(&b->h[i], write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, 8ULL * i);
		if (write)
			mkreq(&b->r[i], (uint16_t)(base + i), out, 2, in + 1, 1);
		else
			mkreq(&b->r[i], (uint16_t)(base + i), out, 1, in, 2);
		fake_queue(&t->f, 0, &b->r[i], 0);
	}
}

/* Every head of [base, base + NIO) pushed exactly once among pushes
 * [from, from + NIO), each with status OK; returns how many came out of
 * the order they were taken in. */
static unsigned int check_batch(struct t *t, struct batch *b, unsigned int from, uint16_t base)
{
	unsigned int i, seen[NIO] = { 0 }, reordered = 0;

	for (i = 0; i < NIO; i++) {
		unsigned int h = t->f.push[from + i].head - base;

		assert_true(h < NIO);
		seen[h]++;
		reordered += h != i;
	}
	for (i = 0; i < NIO; i++) {
		assert_int_equal(seen[i], 1);
		assert_int_equal(b->st[i], VIRTIO_BLK_S_OK);
	}
	return reordered;
}

static void batch_alloc(struct batch *b, unsigned int seed)
{
	unsigned int i;

	for (i = 0; i < NIO; i++) {
		b->data[i] = malloc(IO_BYTES);
		assert_non_null(b->data[i]);
		fill(b->data[i], IO_BYTES, seed + i);
	}
}

static void batch_free(struct batch *b)
{
	unsigned int i;

	for (i = 0; i < NIO; i++)
		free(b->data[i]);
}

/* Writes then reads, all taken in one notify each: all in flight at once,
 * completed in whatever order the engine finishes them, each exactly once. */
static void write_read_batches(struct t *t)
{
	struct batch *w = calloc(1, sizeof(*w)), *r = calloc(1, sizeof(*r));
	unsigned int i, n0 = t->f.npush;

	assert_true(w && r);
	batch_alloc(w, 40);
	batch_alloc(r, 0);
	queue_batch(t, w, true, 100);
	xvb_blk_ops.notify(t->priv, 0);
	wait_pushes(t, n0 + NIO);
	check_batch(t, w, n0, 100);
	for (i = 0; i < NIO; i++)
		memset(r->data[i], 0, IO_BYTES);
	queue_batch(t, r, false, 200);
	xvb_blk_ops.notify(t->priv, 0);
	wait_pushes(t, n0 + 2 * NIO);
	xvb_evloop_run_once(t->loop, 20);
	assert_int_equal(t->f.npush, n0 + 2 * NIO);	/* none twice */
	print_message("      %u of %u reads completed out of order\n",
		      check_batch(t, r, n0 + NIO, 200), NIO);
	for (i = 0; i < NIO; i++)
		assert_memory_equal(r->data[i], w->data[i], IO_BYTES);
	assert_int_equal(t->f.flush_npush[0], n0 + 2 * NIO);
	batch_free(w);
	batch_free(r);
	free(w);
	free(r);
}

/* The model's counters go into the "stats" key, which xvmsg-ctl reads as
 * key=number pairs only: every value is a number, the engine included. */
static void test_stats_are_numbers(void **state)
{
	struct t *t = *state;
	char buf[256], *tok, *save = NULL;
	unsigned int n = 0;

	xvb_blk_ops.stats(t->priv, buf, sizeof(buf));
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save), n++) {
		char *eq = strchr(tok, '=');

		assert_non_null(eq);
		assert_true(eq[1] != '\0');
		assert_int_equal(strspn(eq + 1, "0123456789"), strlen(eq + 1));
	}
	assert_true(n >= 4);
	assert_true(stat_of(t, "aio_uring=") <= 1);
}

static void test_many_in_flight(void **state)
{
	struct t *t = *state;

	write_read_batches(t);
	/* they really were in flight together */
	assert_true(stat_of(t, "aio_max_inflight=") > 1);
	assert_int_equal(stat_of(t, "aio_ops="), 2 * NIO);
}

/* Submissions refused (-EAGAIN) are retried: nothing dropped or doubled. */
static void test_submit_refused(void **state)
{
	struct t *t = *state;

	t->aio.refuse_every = 3;
	recreate(t);
	write_read_batches(t);
	assert_true(stat_of(t, "aio_retries=") > 0);
}

/* Slow storage: a write completed before a FLUSH is durable before the
 * FLUSH is answered; the FLUSH is not answered before its own sync ran. */
static void test_flush_slow(void **state)
{
	struct t *t = *state;
	uint8_t buf[512];
	uint64_t t0;

	t->aio.slow_ms = 60;
	recreate(t);
	sync_watch = &t->f;
	sync_calls = 0;
	fill(buf, sizeof(buf), 3);
	t0 = mono_ms();
	assert_int_equal(simple(t, VIRTIO_BLK_T_OUT, 9, buf, sizeof(buf)), VIRTIO_BLK_S_OK);
	assert_true(mono_ms() - t0 >= 55);	/* the fault slowed it */
	t0 = mono_ms();
	assert_int_equal(simple(t, VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	assert_true(mono_ms() - t0 >= 55);
	if (test_engine == XVB_AIO_THREADS) {
		/* the sync began after the write was answered, ended before the flush was */
		assert_int_equal(sync_calls, 1);
		assert_int_equal(sync_begin_npush, 1);
		assert_int_equal(sync_end_npush, 1);
	}
	sync_watch = NULL;
}

/* Reset and destroy with I/O in flight: they wait for it, nothing is
 * answered, and the buffers can be freed right after (ASan would see a
 * late completion writing into them). */
static void test_reset_in_flight(void **state)
{
	struct t *t = *state;
	struct batch *b = calloc(1, sizeof(*b));
	uint64_t t0;

	assert_non_null(b);
	t->aio.slow_ms = 50;
	recreate(t);
	batch_alloc(b, 0);
	queue_batch(t, b, false, 300);
	/*
	 * Timed from before the notify: every request is due 50 ms after its
	 * submission, so a reset that waited returns no sooner than that.
	 * (Timed from after the notify, a descheduled test on a loaded
	 * machine saw less than 40 ms go by and failed.)
	 */
	t0 = mono_ms();
	xvb_blk_ops.notify(t->priv, 0);
	xvb_blk_ops.reset(t->priv);
	assert_true(mono_ms() - t0 >= 45);	/* it waited */
	batch_free(b);
	xvb_evloop_run_once(t->loop, 100);
	assert_int_equal(t->f.npush, 0);

	/* again, then destroy */
	assert_int_equal(xvb_blk_ops.activate(t->priv, VDEV(&t->f),
					      xvb_blk_ops.features(t->priv)), 0);
	batch_alloc(b, 0);
	queue_batch(t, b, true, 400);
	xvb_blk_ops.notify(t->priv, 0);
	xvb_blk_ops.destroy(t->priv);
	t->priv = NULL;
	batch_free(b);
	free(b);
	xvb_evloop_run_once(t->loop, 100);
	assert_int_equal(t->f.npush, 0);
}

/*
 * queues=2: VIRTIO_BLK_F_MQ and num_queues 2 offered; each queue's requests
 * are taken on its own notify, answered on that queue and published by a
 * flush of that queue; data written through one reads back through the
 * other.
 */
static void test_multiqueue(void **state)
{
	struct t *t = *state;
	struct virtio_blk_config c;
	uint8_t w[2][1024], r[2][1024];
	struct virtio_blk_outhdr h[4];
	uint8_t st[4];
	struct xvb_req rq[4];
	unsigned int i;

	recreate_with(t, ",queues=2");
	assert_int_equal(xvb_blk_ops.queues(t->priv), 2);
	assert_true(xvb_blk_ops.features(t->priv) & 1ULL << VIRTIO_BLK_F_MQ);
	xvb_blk_ops.get_config(t->priv, (uint8_t *)&c);
	assert_int_equal(le16toh(c.num_queues), 2);

	/* a write on each queue: queue q writes sectors 40 + 2q .. */
	for (i = 0; i < 2; i++) {
		struct iovec out[2] = { { &h[i], sizeof(h[i]) }, { w[i], sizeof(w[i]) } };
		struct iovec in[1] = { { &st[i], 1 } };

		fill(w[i], sizeof(w[i]), 11 + i);
		st[i] = 0xff;
		hdr(&h[i], VIRTIO_BLK_T_OUT, 40 + 2 * i);
		mkreq(&rq[i], (uint16_t)(10 + i), out, 2, in, 1);
		fake_queue(&t->f, i, &rq[i], 0);
	}
	xvb_blk_ops.notify(t->priv, 1);
	wait_pushes(t, 1);
	assert_int_equal(t->f.push[0].queue, 1);
	assert_int_equal(t->f.push[0].head, 11);
	assert_int_equal(t->f.flush_npush[1], 1);	/* published on queue 1 */
	assert_int_equal(t->f.qnext[0], 0);		/* queue 0 not touched */
	xvb_blk_ops.notify(t->priv, 0);
	wait_pushes(t, 2);
	assert_int_equal(t->f.push[1].queue, 0);
	assert_int_equal(t->f.flush_npush[0], 2);
	assert_int_equal(st[0], VIRTIO_BLK_S_OK);
	assert_int_equal(st[1], VIRTIO_BLK_S_OK);

	/* read each back through the other queue */
	for (i = 0; i < 2; i++) {
		struct iovec out[1] = { { &h[2 + i], sizeof(h[2 + i]) } };
		struct iovec in[2] = { { r[i], sizeof(r[i]) }, { &st[2 + i], 1 } };

		memset(r[i], 0, sizeof(r[i]));
		st[2 + i] = 0xff;
		hdr(&h[2 + i], VIRTIO_BLK_T_IN, 40 + 2 * i);
		mkreq(&rq[2 + i], (uint16_t)(20 + i), out, 1, in, 2);
		fake_queue(&t->f, 1 - i, &rq[2 + i], 0);
	}
	xvb_blk_ops.notify(t->priv, 0);
	xvb_blk_ops.notify(t->priv, 1);
	wait_pushes(t, 4);
	for (i = 0; i < 2; i++) {
		assert_int_equal(st[2 + i], VIRTIO_BLK_S_OK);
		assert_memory_equal(r[i], w[i], sizeof(w[i]));
	}
	assert_int_equal(t->f.flush_npush[0] + t->f.flush_npush[1] >= 4, 1);

	/* a queue the instance does not have is ignored */
	xvb_blk_ops.notify(t->priv, 5);
}

/*
 * I/O that the storage completes later, not inside the submission: O_DIRECT
 * reads, and buffered reads of pages not in the page cache.  The kernel
 * completes those from an interrupt or task work, not from io_uring's worker
 * threads; each completion must still wake the event loop.  (An eventfd
 * registered with io_uring_register_eventfd_async is signalled only from
 * the workers: these requests were then never answered.)
 */
#define COLD_IO 4096
#define COLD_N 16

static void cold_reads(struct t *t, bool direct)
{
	struct virtio_blk_outhdr h[COLD_N];
	uint8_t st[COLD_N], *buf[COLD_N], *want;
	struct xvb_req r[COLD_N];
	unsigned int i, round, n0;
	int fd;

	want = malloc(COLD_IO);
	assert_non_null(want);
	fd = open(t->path, O_WRONLY);
	assert_true(fd >= 0);
	for (i = 0; i < COLD_N; i++) {
		fill(want, COLD_IO, i);
		assert_int_equal(pwrite(fd, want, COLD_IO, (off_t)i * COLD_IO), COLD_IO);
	}
	assert_int_equal(fdatasync(fd), 0);
	close(fd);
	recreate_with(t, direct ? ",direct=on" : "");
	for (i = 0; i < COLD_N; i++) {
		buf[i] = aligned_alloc(4096, COLD_IO);
		assert_non_null(buf[i]);
	}
	for (round = 0; round < 3; round++) {
		fd = open(t->path, O_RDONLY);
		assert_true(fd >= 0);
		/* out of the page cache: the reads must go to the disk */
		assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
		close(fd);
		n0 = t->f.npush;
		for (i = 0; i < COLD_N; i++) {
			struct iovec out[1] = { { &h[i], sizeof(h[i]) } };
			struct iovec in[2] = { { buf[i], COLD_IO }, { &st[i], 1 } };

			st[i] = 0xff;
			memset(buf[i], 0, COLD_IO);
			hdr(&h[i], VIRTIO_BLK_T_IN, (uint64_t)i * COLD_IO / 512);
			mkreq(&r[i], (uint16_t)(500 + i), out, 1, in, 2);
			fake_queue(&t->f, 0, &r[i], 0);
		}
		xvb_blk_ops.notify(t->priv, 0);
		wait_pushes(t, n0 + COLD_N);
		for (i = 0; i < COLD_N; i++) {
			assert_int_equal(st[i], VIRTIO_BLK_S_OK);
			fill(want, COLD_IO, i);
			assert_memory_equal(buf[i], want, COLD_IO);
		}
	}
	for (i = 0; i < COLD_N; i++)
		free(buf[i]);
	free(want);
}

static void test_direct_reads(void **state)
{
	cold_reads(*state, true);
}

static void test_cold_cache_reads(void **state)
{
	cold_reads(*state, false);
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
		cmocka_unit_test_setup_teardown(test_write_zeroes_fallback_direct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_negotiated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pop_results, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slot_alloc_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_active, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_params, setup_env, teardown),
		cmocka_unit_test_setup_teardown(test_many_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_are_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_submit_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_slow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_direct_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multiqueue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cold_cache_reads, setup, teardown),
	};
	int fails;

	test_engine = XVB_AIO_URING;
	fails = cmocka_run_group_tests_name("blk-io_uring", tests, NULL, NULL);
	test_engine = XVB_AIO_THREADS;
	return fails + cmocka_run_group_tests_name("blk-threads", tests, NULL, NULL);
}
