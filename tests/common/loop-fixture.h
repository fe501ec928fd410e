/* SPDX-License-Identifier: MIT */
/*
 * The loop tests' fixture: xvmsg-backend as its own process (backend-proc.h)
 * with, when asked, a disk image exported as disk0, and the driver's domain
 * and device on it.  A test's own struct begins with a struct loop_fx, so
 * that loop_fx_teardown() can close and free it.
 */
#ifndef XVMSG_TEST_LOOP_FIXTURE_H
#define XVMSG_TEST_LOOP_FIXTURE_H

#include <stddef.h>

#include "backend-proc.h"
#include "xvmsg-drv.h"

struct loop_fx {
	struct backend_proc b;
	char img[160];			/* DIR/disk.img, when disk_bytes */
	struct xvd_domain *d;		/* closed by loop_fx_stop, after dev */
	struct xvd_dev *dev;
};

struct loop_fx_opts {
	size_t disk_bytes;		/* > 0: DIR/disk.img (sparse), exported as disk0 */
	const char *disk_params;	/* more params of disk0 ("serial=x"), or NULL */
	const char *disk_also;		/* "NAME:PARAMS": the image exported once more */
	const char *args[16];		/* more backend arguments, NULL-ended */
	int open_domain;		/* open f->d on the backend, with domain's options */
	struct xvd_domain_opts domain;	/* socket_path is filled in */
};

/*
 * Make the temp dir (unless backend_setup ran already), the image, start the
 * backend and open the domain.  No asserts, so a cmocka setup may call it:
 * 0, or -1 after printing the failed step and the backend's log (the caller
 * still tears down).
 */
int loop_fx_start(struct loop_fx *f, const struct loop_fx_opts *o);
/* Open a domain on f's backend with opts o (its socket_path is set). */
int loop_fx_domain(struct loop_fx *f, struct xvd_domain_opts o, struct xvd_domain **out);
/* Close dev, the domain, the backend; remove the temp dir.  Safe twice. */
void loop_fx_stop(struct loop_fx *f);

/* A cmocka setup: *state = a zeroed size-byte struct beginning with a
 * struct loop_fx, started with o.  0 or -1 (then nothing is left over). */
int loop_fx_setup(void **state, size_t size, const struct loop_fx_opts *o);
/* A cmocka teardown: loop_fx_stop and free *state.  Safe on NULL. */
int loop_fx_teardown(void **state);

#endif
