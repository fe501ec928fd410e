/* SPDX-License-Identifier: MIT */
/* Logging with levels.  The log context is passed around, never global. */
#ifndef XVB_LOG_H
#define XVB_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum xvb_log_level { XVB_LOG_ERR = 0, XVB_LOG_WARN, XVB_LOG_INFO, XVB_LOG_DEBUG };

struct xvb_log {
	enum xvb_log_level level;
	FILE *out;		/* NULL = stderr */
	const char *prog;
};

void xvb_logf(const struct xvb_log *log, enum xvb_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Parse "err|warn|info|debug"; -EINVAL otherwise. */
int xvb_log_level_parse(const char *s, enum xvb_log_level *out);

/* A condition that can last, such as a bus whose every dispatch fails:
 * reported when it starts or changes, and when it ends. */
struct xvb_log_cond {
	int last;		/* 0, or the -errno reported last */
};
/* Report rc (0 or -errno) of what: an error line when a failure starts or
 * its errno changes, an info line when it ends, nothing otherwise.
 * Returns true if it wrote a line. */
bool xvb_log_cond(const struct xvb_log *log, struct xvb_log_cond *c, int rc, const char *what);

#define xvb_err(l, ...)   xvb_logf((l), XVB_LOG_ERR, __VA_ARGS__)
#define xvb_warn(l, ...)  xvb_logf((l), XVB_LOG_WARN, __VA_ARGS__)
#define xvb_info(l, ...)  xvb_logf((l), XVB_LOG_INFO, __VA_ARGS__)
#define xvb_dbg(l, ...)   do { const struct xvb_log *l_ = (l); \
			       if (l_ && l_->level >= XVB_LOG_DEBUG) \
				       xvb_logf(l_, XVB_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif /* XVB_LOG_H */
