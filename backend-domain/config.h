/* SPDX-License-Identifier: MIT */
/* xvmsg-backend configuration: command line and config file. */
#ifndef XVB_CONFIG_H
#define XVB_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "aio.h"
#include "device.h"
#include "log.h"

#define XVB_MAX_EXPORTS 64

/* --queue-threads: more than 64 threads serve no purpose a queue count
 * (16 per blk device) and a driver domain's vCPUs would not already. */
#define XVB_MAX_QUEUE_THREADS 64

struct xvb_config {
	char bus[16];			/* "loop" */
	char socket_path[108];
	enum xvb_log_level log_level;
	bool allow_full;		/* full mode (foreign mapping) */
	bool full_given;		/* --full / --no-full / full-mode said so */
	bool stats_on_exit;
	unsigned int poll_us;		/* busy-poll queues this long before sleeping */
	unsigned int queue_threads;	/* --queue-threads: 0 = queues on the loop thread */
	unsigned int max_guest_fds;	/* loop bus per-guest fd quota, 0 = default */
	unsigned int max_guest_maps;	/* loop bus per-guest mapping quota, 0 = default */
	unsigned int max_guest_keys;	/* loop bus per-guest store quota, 0 = default */
	unsigned int max_guest_store_bytes;
	int fault;			/* XVB_FAULT_*, for testing guests */
	uint32_t msg_revs;		/* message layout revisions offered (bit r) */
	struct xvb_aio_opts aio;	/* --aio, --fault slow-io=MS */
	unsigned int nexports;
	struct xvb_export exports[XVB_MAX_EXPORTS];
};

void xvb_config_defaults(struct xvb_config *cfg);
/*
 * Add an export from "NAME:TYPE[:PARAMS]".  Returns 0 or -errno and writes a
 * message into err.  Type names are checked against models.
 */
int xvb_config_add_export(struct xvb_config *cfg, const char *spec,
			  const struct xvb_model_ops *const *models, char *err, size_t errlen);
/*
 * Read a config file (format in docs/backend.md).  Returns 0 or -errno with
 * "FILE:LINE: reason" in err.
 */
int xvb_config_load(struct xvb_config *cfg, const char *path,
		    const struct xvb_model_ops *const *models, char *err, size_t errlen);
/*
 * Parse argv into cfg (a --config file is read where it appears, so later
 * flags override it).  Returns 0, 1 when --help/--version was printed to out,
 * or -errno with a message in err.
 */
int xvb_config_parse_args(struct xvb_config *cfg, int argc, char **argv,
			  const struct xvb_model_ops *const *models, FILE *out,
			  char *err, size_t errlen);

#endif /* XVB_CONFIG_H */
