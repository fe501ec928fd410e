// SPDX-License-Identifier: MIT
/*
 * Helpers of the malicious-driver cases: opening the hostile devices,
 * checking the witness, and watching the backend process (loopback).
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evil.h"

void evil_say(char *observed, size_t len, const char *fmt, ...)
{
	size_t used = strnlen(observed, len);
	va_list ap;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(observed + used, len - used, fmt, ap);
	va_end(ap);
}

int evil_open_blk(struct evil_env *e, int mode, const struct xvd_dev_opts *o,
		  struct xvd_dev **dev)
{
	struct xvd_dev_opts opts = { 0 };

	if (o)
		opts = *o;
	if (e->xen) {
		if (mode != XVD_MODE_POOL)
			return -EOPNOTSUPP;
		opts.export_name = "xen";
		opts.devid = e->blk_devid;
	} else {
		if (!opts.export_name)
			opts.export_name = e->blk_export;
		if (!opts.devid)
			opts.devid = e->blk_devid;
	}
	opts.mode = mode;
	return xvd_blk_open(e->d, &opts, dev);
}

int evil_open_rng(struct evil_env *e, const struct xvd_dev_opts *o, struct xvd_dev **dev)
{
	struct xvd_dev_opts opts = { 0 };

	if (o)
		opts = *o;
	opts.export_name = e->xen ? "xen" : e->rng_export;
	if (e->xen || !opts.devid)
		opts.devid = e->rng_devid;
	if (e->xen)
		opts.mode = XVD_MODE_POOL;
	return xvd_rng_open(e->d, &opts, dev);
}

static int backend_alive(const struct evil_env *e)
{
	char path[64];

	if (!e->backend_pid)
		return 1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)e->backend_pid);
	return access(path, F_OK) == 0;
}

int evil_witness_ok(struct evil_env *e, char *observed, size_t len)
{
	static uint32_t round;
	uint8_t buf[4096], back[4096];
	int r;

	if (!backend_alive(e)) {
		evil_say(observed, len, "; the backend died");
		return -1;
	}
	round++;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + round);
	r = xvd_blk_write(e->witness, 16, buf, sizeof(buf));
	if (r == 0)
		r = xvd_blk_read(e->witness, 16, back, sizeof(back));
	if (r == 0 && memcmp(buf, back, sizeof(buf)))
		r = -EILSEQ;
	if (r) {
		evil_say(observed, len, "; the witness failed: %s", strerror(-r));
		return -1;
	}
	if (!backend_alive(e)) {
		evil_say(observed, len, "; the backend died");
		return -1;
	}
	return 0;
}

int evil_blk_still_works(struct xvd_dev *dev)
{
	uint8_t buf[4096], back[4096];
	int r;

	memset(buf, 0xa5, sizeof(buf));
	r = xvd_blk_write(dev, 8, buf, sizeof(buf));
	if (r == 0)
		r = xvd_blk_read(dev, 8, back, sizeof(back));
	if (r == 0 && memcmp(buf, back, sizeof(buf)))
		r = -EILSEQ;
	return r;
}

long evil_backend_cpu_ms(const struct evil_env *e)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;

	if (!e->backend_pid)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)e->backend_pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');		/* comm may hold spaces */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (long)((ut + st) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

long evil_backend_fds(const struct evil_env *e)
{
	char path[64];
	struct dirent *de;
	long n = 0;
	DIR *dir;

	if (!e->backend_pid)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)e->backend_pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((de = readdir(dir)))
		n += de->d_name[0] != '.';
	closedir(dir);
	return n;
}

long evil_backend_maps_of(const struct evil_env *e, const char *needle)
{
	char path[64], line[512];
	long n = 0;
	FILE *f;

	if (!e->backend_pid)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)e->backend_pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += !needle || strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

long evil_backend_maps(const struct evil_env *e)
{
	return evil_backend_maps_of(e, NULL);
}

long evil_backend_guest_maps(const struct evil_env *e)
{
	return evil_backend_maps_of(e, "/memfd:xvmsg");
}

long evil_backend_idle(const struct evil_env *e, int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	long a, b;

	if (!e->backend_pid)
		return 0;
	a = evil_backend_cpu_ms(e);
	nanosleep(&ts, NULL);
	b = evil_backend_cpu_ms(e);
	if (a < 0 || b < 0)
		return -1;
	return b - a > ms / 5 ? -1 : b - a;
}

int evil_wait_needs_reset(struct xvd_dev *dev, int ms)
{
	int64_t end = xvd_now_ms() + ms;
	uint32_t status = 0, gen;

	do {
		if (xvd_dev_error(dev))
			return 1;
		if (xvd_dev_config_events(dev, &status, &gen) > 0 &&
		    (status & VMSG_STATUS_NEEDS_RESET))
			return 1;
		xvd_dev_wait(dev, 50);
	} while (xvd_now_ms() < end);
	return 0;
}
