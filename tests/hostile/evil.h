/* SPDX-License-Identifier: MIT */
/*
 * The malicious driver: cases that speak the xvmsg protocol and break its
 * rules on purpose, each with the outcome the backend must produce.
 *
 * A case gets an environment (a hostile domain, a disk and an rng it may
 * abuse, a witness device of another guest) and returns 0 when the backend
 * did what the case's `expect` says, -1 when it did not.  It writes what it
 * saw into `observed` either way.  Every case checks, at its end, that the
 * backend still serves the witness (evil_witness_ok) and leaves nothing
 * open.  The same cases run on the loopback bus (tests/loop/test-loop-evil,
 * under ASan in make check-san) and in a Xen guest (xvmsg-evil, in
 * tests/xen/e2e).
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_EVIL_H
#define XVMSG_EVIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "drv-priv.h"		/* the evil driver reaches into its own rings */

struct evil_env {
	struct xvd_domain *d;		/* the hostile guest */
	bool xen;			/* true: Xen bus (pool mode only, devices
					 * attached by dom0: see *_devid) */
	const char *blk_export;		/* loopback: export names */
	const char *rng_export;
	unsigned int blk_devid;		/* Xen: devids dom0 attached; loopback:
					 * devids the case may use */
	unsigned int rng_devid;
	/* The net device to abuse: loopback its export (NULL: the net cases
	 * are left out) and the tap it serves, Xen its devid (0: left out). */
	const char *net_export;
	const char *net_tap;
	unsigned int net_devid;
	unsigned int spare_devid;	/* loopback: first of many free devids */
	/* The witness: a block device of another guest (loopback) or another
	 * device of this guest (Xen), open and idle between cases. */
	struct xvd_dev *witness;
	/* Loopback only (0 on Xen): the backend process, for CPU time, fd and
	 * mapping counts, and its socket, for extra guests. */
	pid_t backend_pid;
	const char *socket_path;
	/* Loopback only: count the backend's log lines containing needle
	 * (-1 when unknown). */
	int (*log_count)(void *ctx, const char *needle);
	void *log_ctx;
	/* Loopback only: a counter of the backend's device dev ("blk1(dom2)",
	 * docs/backend.md, Counters), or -1 (unknown, or NULL on Xen). */
	long (*backend_stat)(void *ctx, const char *dev, const char *key);
};

#define EVIL_LOOP_ONLY	1u	/* needs the loopback bus (attach, grant mode...) */
#define EVIL_NET	2u	/* needs a net device (evil_env.net_*) */

struct evil_case {
	const char *name;
	const char *expect;		/* the outcome asserted, one sentence */
	int (*run)(struct evil_env *e, char *observed, size_t len);
	unsigned int flags;
};

/* NULL-name-terminated tables, one per file. */
extern const struct evil_case evil_ring_cases[];	/* evil-ring.c */
extern const struct evil_case evil_msg_cases[];		/* evil-msg.c */
extern const struct evil_case evil_quota_cases[];	/* evil-quota.c */
extern const struct evil_case evil_net_cases[];		/* evil-net.c */

/* ---- helpers (evil-common.c) ---- */

/* Open the hostile disk (or rng) of the environment in a mode (loopback) /
 * pool mode (Xen), with opts tweaks from *o if non-NULL.  0 or -errno. */
int evil_open_blk(struct evil_env *e, int mode, const struct xvd_dev_opts *o,
		  struct xvd_dev **dev);
int evil_open_rng(struct evil_env *e, const struct xvd_dev_opts *o, struct xvd_dev **dev);
/* The hostile net device with these features wanted and rx_bufs receive
 * buffers posted (evil-net.c).  -ENODEV when the environment has none. */
int evil_open_net(struct evil_env *e, int mode, uint64_t features, unsigned int rx_bufs,
		  struct xvd_dev **dev);
/* Does the environment have the net device case k needs? */
static inline bool evil_has_net(const struct evil_env *e)
{
	return e->xen ? e->net_devid != 0 : e->net_export != NULL;
}

/* The witness does a 4 KiB write + read back of a fresh pattern, and (on
 * loopback) the backend process is still alive.  0 or -1 with the reason
 * appended to observed. */
int evil_witness_ok(struct evil_env *e, char *observed, size_t len);

/* The hostile device itself still works after a refusal: a 4 KiB write and
 * read back at sector 8.  0 or -errno. */
int evil_blk_still_works(struct xvd_dev *dev);

/* Loopback: the backend's CPU time (user+system) in ms, its open fd count,
 * and its count of mappings (lines of /proc/PID/maps).  -1 on Xen. */
long evil_backend_cpu_ms(const struct evil_env *e);
long evil_backend_fds(const struct evil_env *e);
long evil_backend_maps(const struct evil_env *e);
/* Only the mappings whose /proc/PID/maps line contains needle (all: NULL). */
long evil_backend_maps_of(const struct evil_env *e, const char *needle);
/* The backend's mappings of guest memory (the drivers' memfds, all named
 * xvmsg-...): unlike evil_backend_maps, not disturbed by allocator growth
 * (ASan maps more as the process runs).  -1 on Xen. */
long evil_backend_guest_maps(const struct evil_env *e);

/* The backend is not spinning: it uses less than 20 % of a CPU over the
 * next `ms` milliseconds (loopback; always true on Xen).  Returns the
 * CPU ms it used, or -1 if it was busier. */
long evil_backend_idle(const struct evil_env *e, int ms);

/* Wait (bounded by ms) until the device reports NEEDS_RESET or breaks:
 * 1 if it did, 0 if not. */
int evil_wait_needs_reset(struct xvd_dev *dev, int ms);

/* Append printf text to observed. */
void evil_say(char *observed, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* XVMSG_EVIL_H */
