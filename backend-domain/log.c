/* SPDX-License-Identifier: MIT */
/* Levelled logging to a caller-supplied stream; no global state. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static const char *const level_names[] = {
	[XVB_LOG_ERR] = "err",
	[XVB_LOG_WARN] = "warn",
	[XVB_LOG_INFO] = "info",
	[XVB_LOG_DEBUG] = "debug",
};

void xvb_logf(const struct xvb_log *log, enum xvb_log_level lvl, const char *fmt, ...)
{
	enum xvb_log_level max = log ? log->level : XVB_LOG_INFO;
	FILE *out = log && log->out ? log->out : stderr;
	const char *prog = log && log->prog ? log->prog : "xvmsg";
	char msg[1024];
	va_list ap;
	size_t n;

	if ((unsigned int)lvl > XVB_LOG_DEBUG)
		lvl = XVB_LOG_DEBUG;
	if (lvl > max)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = strlen(msg);
	/* One fprintf per line so that lines from threads do not interleave. */
	fprintf(out, "%s: %s: %s%s", prog, level_names[lvl], msg,
		n && msg[n - 1] == '\n' ? "" : "\n");
	fflush(out);
}

int xvb_log_level_parse(const char *s, enum xvb_log_level *out)
{
	unsigned int i;

	for (i = 0; s && i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (!strcmp(s, level_names[i])) {
			*out = (enum xvb_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool xvb_log_cond(const struct xvb_log *log, struct xvb_log_cond *c, int rc, const char *what)
{
	int was = c->last;

	c->last = rc;
	if (rc == was)
		return false;
	if (rc)
		xvb_err(log, "%s: %s (said again only when it changes)", what, strerror(-rc));
	else
		xvb_info(log, "%s: working again", what);
	return true;
}
