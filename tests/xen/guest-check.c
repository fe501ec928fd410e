// SPDX-License-Identifier: MIT
/*
 * xvmsg-guest-check: runs inside a Xen guest domain as a userspace xvmsg
 * frontend (driver/ on the Xen bus) and checks the devices xvmsg-ctl
 * attached from dom0.  Prints one "XVMSG-GUEST: PASS|FAIL <what>" line per
 * check, for the end-to-end test to collect from the console.
 *
 *   xvmsg-guest-check blk-write DEVID SEED     pattern over the whole disk, flush
 *   xvmsg-guest-check blk-verify DEVID SEED    read it all back and compare
 *   xvmsg-guest-check rng DEVID BYTES          random bytes, not all equal
 *   xvmsg-guest-check blk-survive DEVID SEED SECONDS
 *        verify, then keep reading until the backend goes away; reconnect
 *        (bounded by SECONDS) and verify again: for a backend restart.
 *   xvmsg-guest-check churn BLK RNG SEED ROUNDS
 *        open and close the disk and the rng in shifting orders with pool
 *        sizes that change every time, one reopened while the other stays
 *        open: the guest's grant refs fragment, and every open must still
 *        get its pool (consecutive refs) and do I/O through it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xvmsg-drv.h"

#define CHUNK (64u << 10)

static struct xvd_domain *dom;

static int fail(const char *what, int err)
{
	printf("XVMSG-GUEST: FAIL %s: %s\n", what, strerror(err < 0 ? -err : err));
	fflush(stdout);
	return 1;
}

static void pass(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void pass(const char *fmt, ...)
{
	va_list ap;

	printf("XVMSG-GUEST: PASS ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void fill(uint8_t *b, uint64_t sector, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = ((sector + i / 512) << 20) ^ (i % 512) ^ seed;

		memcpy(b + i, &v, 8);
	}
}

static int open_blk(unsigned int devid, struct xvd_dev **dev, uint64_t *sectors)
{
	struct xvd_dev_opts o = { .devid = devid, .mode = XVD_MODE_POOL, .export_name = "xen",
				  .pool_pages = 256 };
	struct xvd_blk_info info;
	int r = xvd_blk_open(dom, &o, dev);

	if (r)
		return r;
	r = xvd_blk_info(*dev, &info);
	if (r) {
		xvd_dev_close(*dev);
		return r;
	}
	*sectors = info.capacity;
	return 0;
}

/* Whole-disk pass: write (seed, flush) or read and compare. */
static int whole_disk(struct xvd_dev *dev, uint64_t sectors, uint64_t seed, bool write,
		      uint64_t *bad)
{
	uint8_t *buf = malloc(CHUNK), *want = malloc(CHUNK);
	uint64_t s;
	int r = 0;

	*bad = 0;
	if (!buf || !want) {
		free(buf);
		free(want);
		return -ENOMEM;
	}
	for (s = 0; s < sectors && !r; s += CHUNK / 512) {
		size_t len = (sectors - s) * 512 < CHUNK ? (size_t)(sectors - s) * 512 : CHUNK;

		fill(want, s, len, seed);
		if (write) {
			r = xvd_blk_write(dev, s, want, len);
		} else {
			r = xvd_blk_read(dev, s, buf, len);
			if (!r && memcmp(buf, want, len))
				(*bad)++;
		}
	}
	if (!r && write)
		r = xvd_blk_flush(dev);
	free(buf);
	free(want);
	return r;
}

static int cmd_blk(unsigned int devid, uint64_t seed, bool write)
{
	struct xvd_dev *dev;
	uint64_t sectors, bad;
	struct timespec t0, t1;
	int r;

	r = open_blk(devid, &dev, &sectors);
	if (r)
		return fail("blk open", r);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = whole_disk(dev, sectors, seed, write, &bad);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	xvd_dev_close(dev);
	if (r)
		return fail(write ? "blk write" : "blk verify", r);
	if (bad) {
		printf("XVMSG-GUEST: FAIL blk verify: %llu of %llu chunks differ\n",
		       (unsigned long long)bad, (unsigned long long)(sectors / (CHUNK / 512)));
		return 1;
	}
	pass("blk %s devid %u: %llu sectors in %.2f s", write ? "write+flush" : "verify", devid,
	     (unsigned long long)sectors,
	     (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}

static int cmd_rng(unsigned int devid, size_t n)
{
	struct xvd_dev_opts o = { .devid = devid, .mode = XVD_MODE_POOL, .export_name = "xen" };
	struct xvd_dev *dev;
	uint8_t *buf = calloc(1, n);
	size_t i, same = 0;
	int r;

	if (!buf || n < 16)
		return fail("rng", EINVAL);
	r = xvd_rng_open(dom, &o, &dev);
	if (r)
		return fail("rng open", r);
	r = xvd_rng_read(dev, buf, n);
	xvd_dev_close(dev);
	if (r != (int)n)
		return fail("rng read", r < 0 ? r : -EIO);
	for (i = 1; i < n; i++)
		same += buf[i] == buf[0];
	if (same > n / 16) {
		free(buf);
		printf("XVMSG-GUEST: FAIL rng: %zu of %zu bytes equal the first\n", same, n);
		return 1;
	}
	pass("rng devid %u: %zu bytes %02x%02x%02x%02x...", devid, n, buf[0], buf[1], buf[2],
	     buf[3]);
	free(buf);
	return 0;
}

/* Survive a backend restart: notice it, reconnect, find the data intact. */
static int cmd_survive(unsigned int devid, uint64_t seed, int seconds)
{
	struct xvd_dev *dev;
	uint64_t sectors, bad;
	uint8_t buf[4096];
	time_t end = time(NULL) + seconds;
	int r, errors = 0;

	r = open_blk(devid, &dev, &sectors);
	if (r)
		return fail("blk open", r);
	printf("XVMSG-GUEST: waiting for the backend to go away\n");
	fflush(stdout);
	while (time(NULL) < end && (r = xvd_blk_read(dev, 0, buf, sizeof(buf))) == 0)
		usleep(20000);
	if (r == 0)
		return fail("backend never went away", ETIMEDOUT);
	errors++;
	printf("XVMSG-GUEST: backend gone (%s), reconnecting\n", strerror(-r));
	fflush(stdout);
	xvd_dev_close(dev);
	do {
		r = open_blk(devid, &dev, &sectors);
		if (r)
			sleep(1);
	} while (r && time(NULL) < end);
	if (r)
		return fail("reconnect", r);
	r = whole_disk(dev, sectors, seed, false, &bad);
	xvd_dev_close(dev);
	if (r || bad)
		return fail("verify after reconnect", r ? r : EIO);
	pass("blk devid %u reconnected after the backend restart (%d error%s seen), "
	     "data intact", devid, errors, errors == 1 ? "" : "s");
	return 0;
}

/* Pool sizes for the churn, varied so that freed runs never fit exactly. */
static const unsigned int churn_pool[] = { 16, 64, 24, 128, 20, 96, 32, 17, 48, 112, 40, 80 };
#define NCHURN (sizeof(churn_pool) / sizeof(churn_pool[0]))

struct churn_dev {
	const char *name;
	unsigned int devid;
	bool blk;
	struct xvd_dev *dev;
	unsigned int pool;
};

static int churn_open(struct churn_dev *c, unsigned int pool, unsigned int *opens)
{
	struct xvd_dev_opts o = { .devid = c->devid, .mode = XVD_MODE_POOL, .export_name = "xen",
				  .pool_pages = pool, .queue_size = 16 };
	int r = c->blk ? xvd_blk_open(dom, &o, &c->dev) : xvd_rng_open(dom, &o, &c->dev);

	if (r) {
		printf("XVMSG-GUEST: FAIL churn: open %u of %s with a %u-page pool: %s\n", *opens + 1,
		       c->name, pool, strerror(-r));
		c->dev = NULL;
		return r;
	}
	c->pool = pool;
	(*opens)++;
	return 0;
}

static void churn_close(struct churn_dev *c)
{
	if (c->dev)
		xvd_dev_close(c->dev);
	c->dev = NULL;
}

/* One I/O through the pool: a disk block must hold blk-write's pattern. */
static int churn_io(struct churn_dev *c, uint64_t seed, unsigned int round, uint64_t sectors)
{
	uint8_t buf[4096], want[4096];
	uint64_t s = (uint64_t)round * 8 % (sectors - 7);
	int r;

	if (!c->blk) {
		r = xvd_rng_read(c->dev, buf, 64);
		return r == 64 ? 0 : r < 0 ? r : -EIO;
	}
	r = xvd_blk_read(c->dev, s, buf, sizeof(buf));
	if (r)
		return r;
	fill(want, s, sizeof(want), seed);
	return memcmp(buf, want, sizeof(buf)) ? -EILSEQ : 0;
}

static int cmd_churn(unsigned int blk, unsigned int rng, uint64_t seed, unsigned int rounds)
{
	struct churn_dev c[2] = { { "blk", blk, true, NULL, 0 }, { "rng", rng, false, NULL, 0 } };
	struct xvd_blk_info info = { 0 };
	struct timespec t0, t1;
	unsigned int round, opens = 0, ios = 0, k;
	int r = 0;

	if (rounds == 0)
		return fail("churn: no rounds", EINVAL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (round = 0; round < rounds && !r; round++) {
		/* Which device opens first, which one is reopened while the
		 * other stays open, which one closes last: all shift. */
		struct churn_dev *a = &c[round & 1], *b = &c[!(round & 1)];
		struct churn_dev *re = (round & 2) ? a : b, *held = re == a ? b : a;

		r = churn_open(a, churn_pool[round % NCHURN], &opens);
		if (!r)
			r = churn_open(b, churn_pool[(round * 5 + 3) % NCHURN], &opens);
		for (k = 0; k < 2 && !r; k++) {
			if (c[k].blk && round == 0) {
				r = xvd_blk_info(c[k].dev, &info);
				if (!r && info.capacity < 16)
					r = -ENOSPC;
			}
			if (!r)
				r = churn_io(&c[k], seed, round, info.capacity);
			ios += !r;
		}
		if (!r) {
			churn_close(re);
			r = churn_open(re, churn_pool[(round * 7 + 5) % NCHURN], &opens);
		}
		if (!r) {
			r = churn_io(re, seed, round + 1, info.capacity);
			ios += !r;
			if (r)
				printf("XVMSG-GUEST: FAIL churn: I/O on %s (%u-page pool, %s held) "
				       "in round %u: %s\n", re->name, re->pool, held->name, round,
				       strerror(-r));
		}
		if (round & 4) {
			churn_close(held);
			churn_close(re);
		} else {
			churn_close(re);
			churn_close(held);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	churn_close(&c[0]);
	churn_close(&c[1]);
	if (r)
		return fail("churn", r);
	pass("churn: %u rounds, %u opens (pools of 16 to 128 pages) and %u pool I/Os in %.2f s",
	     rounds, opens, ios,
	     (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}

int main(int argc, char **argv)
{
	struct xvd_domain_opts o = { .log_level = XVD_LOG_INFO, .ram_pages = 1024 };
	unsigned long devid;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 4) {
		fprintf(stderr, "usage: %s blk-write|blk-verify|rng|blk-survive DEVID ARG [SECONDS]\n"
			"       %s churn BLK RNG SEED ROUNDS\n", argv[0], argv[0]);
		return 2;
	}
	devid = strtoul(argv[2], NULL, 10);
	r = xvd_domain_open_xen(&o, &dom);
	if (r)
		return fail("open the Xen bus", r);
	if (!strcmp(argv[1], "blk-write"))
		r = cmd_blk((unsigned int)devid, strtoull(argv[3], NULL, 0), true);
	else if (!strcmp(argv[1], "blk-verify"))
		r = cmd_blk((unsigned int)devid, strtoull(argv[3], NULL, 0), false);
	else if (!strcmp(argv[1], "rng"))
		r = cmd_rng((unsigned int)devid, strtoul(argv[3], NULL, 0));
	else if (!strcmp(argv[1], "churn") && argc == 6)
		r = cmd_churn((unsigned int)devid, (unsigned int)strtoul(argv[3], NULL, 10),
			      strtoull(argv[4], NULL, 0), (unsigned int)strtoul(argv[5], NULL, 10));
	else if (!strcmp(argv[1], "blk-survive") && argc == 5)
		r = cmd_survive((unsigned int)devid, strtoull(argv[3], NULL, 0), atoi(argv[4]));
	else
		r = 2;
	xvd_domain_close(dom);
	return r;
}
