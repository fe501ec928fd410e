// SPDX-License-Identifier: MIT
/*
 * The driver library's base: logging, the clock, the unit allocator, and
 * what a bus result means for the domain.  Every other file of driver/
 * may call it; it calls none of them (only the bus, through its ops).
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drv-priv.h"

/* ---- logging and the clock --------------------------------------------- */

void xvd_logf(const struct xvd_logger *l, int level, const char *fmt, ...)
{
	char buf[320];
	va_list ap;

	if (level > (l ? l->level : XVD_LOG_ERR))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (l && l->fn)
		l->fn(l->ctx, level, buf);
	else
		fprintf(stderr, "xvmsg-drv: %s\n", buf);
}

int64_t xvd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- unit allocator ---------------------------------------------------- */

static inline bool bit_get(const uint64_t *b, uint32_t i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

static inline void bit_set(uint64_t *b, uint32_t i)
{
	b[i / 64] |= 1ULL << (i % 64);
}

static inline void bit_clr(uint64_t *b, uint32_t i)
{
	b[i / 64] &= ~(1ULL << (i % 64));
}

static inline uint64_t round_up(uint64_t x, uint32_t a)
{
	return (x + a - 1) / a * a;
}

int xvd_ua_init(struct xvd_ualloc *a, uint32_t nunits)
{
	size_t words = XVD_DIV_UP((size_t)nunits, 64);

	memset(a, 0, sizeof(*a));
	a->busy = calloc(words, sizeof(uint64_t));
	a->leak = calloc(words, sizeof(uint64_t));
	a->len = calloc(nunits ? nunits : 1, sizeof(uint32_t));
	if (!a->busy || !a->leak || !a->len) {
		xvd_ua_destroy(a);
		return -ENOMEM;
	}
	a->nunits = nunits;
	return 0;
}

void xvd_ua_destroy(struct xvd_ualloc *a)
{
	free(a->busy);
	free(a->leak);
	free(a->len);
	memset(a, 0, sizeof(*a));
}

static int64_t ua_scan(const struct xvd_ualloc *a, uint32_t n, uint32_t align,
		       uint64_t from, uint64_t to)
{
	uint64_t i = round_up(from, align);

	while (i + n <= to) {
		uint32_t j = 0;

		if (i % 64 == 0 && a->busy[i / 64] == ~0ULL) {	/* skip full words */
			i = round_up(i + 64, align);
			continue;
		}
		while (j < n && !bit_get(a->busy, i + j))
			j++;
		if (j == n)
			return (int64_t)i;
		i = round_up(i + j + 1, align);
	}
	return -1;
}

int64_t xvd_ua_alloc(struct xvd_ualloc *a, uint32_t n, uint32_t align)
{
	int64_t s;

	if (!n || n > a->nunits)
		return -ENOMEM;
	if (!align)
		align = 1;
	s = ua_scan(a, n, align, a->hint, a->nunits);		/* next fit ... */
	if (s < 0)
		s = ua_scan(a, n, align, 0, a->nunits);		/* ... then first fit */
	if (s < 0)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		bit_set(a->busy, (uint32_t)s + i);
	a->len[s] = n;
	a->hint = (uint32_t)s + n < a->nunits ? (uint32_t)s + n : 0;
	return s;
}

uint32_t xvd_ua_free(struct xvd_ualloc *a, uint32_t start)
{
	uint32_t n;

	if (start >= a->nunits || !a->len[start])
		return 0;
	n = a->len[start];
	for (uint32_t i = start; i < start + n; i++)
		if (!bit_get(a->leak, i))
			bit_clr(a->busy, i);
	a->len[start] = 0;
	return n;
}

void xvd_ua_leak(struct xvd_ualloc *a, uint32_t unit, uint32_t n)
{
	for (uint32_t i = unit; i < unit + n && i < a->nunits; i++) {
		bit_set(a->leak, i);
		bit_set(a->busy, i);
	}
}

bool xvd_ua_is_busy(const struct xvd_ualloc *a, uint32_t unit)
{
	return unit < a->nunits && bit_get(a->busy, unit);
}

/* ---- bus results ------------------------------------------------------- */

int xvd_bus_result(struct xvd_domain *d, int r)
{
	/* A reply status may also say -ENODEV: ask the bus whether it is the
	 * peer that is gone (dispatch only ever fails for that). */
	if ((r == -ENODEV || r == -EPIPE) && !d->gone && d->bus->ops->dispatch(d->bus) < 0) {
		xvd_logf(&d->log, XVD_LOG_ERR, "backend gone: every device is lost");
		d->gone = true;
		for (struct xvd_dev *dev = d->devs; dev; dev = dev->next)
			dev->err = -ENODEV;
	}
	return r;
}

int xvd_domain_dispatch(struct xvd_domain *d)
{
	return xvd_bus_result(d, d->bus->ops->dispatch(d->bus));
}
