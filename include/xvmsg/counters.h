/* SPDX-License-Identifier: MIT */
/*
 * Reading the backend's counters (docs/backend.md, "Counters"): on SIGUSR1
 * (and with --stats-on-exit) xvmsg-backend prints one line per device,
 * "NAME mode=pool state=4 maps=4 ...", the whole dump with one write.
 * Userspace only: xvmsg-bench and the demo driver read them from the
 * backend's log.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_COUNTERS_H
#define XVMSG_COUNTERS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of " key=<u64>" in line: 1 with it in *v, 0 if line has no key. */
static inline int xvmsg_counter(const char *line, const char *key, uint64_t *v)
{
	char pat[32];
	const char *p;

	snprintf(pat, sizeof(pat), " %s=", key);
	p = strstr(line, pat);
	if (!p)
		return 0;
	*v = strtoull(p + strlen(pat), NULL, 10);
	return 1;
}

/*
 * The next line of device name ("blk0(dom2)") in f from offset *off on:
 * 1 with it in line, or 0 when f holds no whole line of it yet.  *off moves
 * past every whole line read; a line still being written is not consumed
 * but read again by the next call, so a dump is never read torn.
 */
static inline int xvmsg_counters_line(FILE *f, long *off, const char *name, char *line, int len)
{
	size_t nlen = strlen(name);

	clearerr(f);
	fseek(f, *off, SEEK_SET);
	while (fgets(line, len, f)) {
		if (!strchr(line, '\n'))
			break;		/* incomplete: read it again later */
		*off = ftell(f);
		if (strncmp(line, name, nlen) == 0 && line[nlen] == ' ')
			return 1;
	}
	return 0;
}

#endif
