// SPDX-License-Identifier: MIT
/*
 * xvmsg-evil: the malicious driver as a program.  Runs the cases of
 * evil-ring.c, evil-msg.c and evil-quota.c against a backend and prints,
 * per case, what was expected and what happened:
 *
 *   XVMSG-GUEST: PASS evil/<case>: <observed>
 *   XVMSG-GUEST: FAIL evil/<case>: expected <expect>; observed <observed>
 *
 * In a Xen guest (devices attached by dom0, pool mode):
 *   xvmsg-evil --xen --blk DEVID --rng DEVID --witness DEVID [--net DEVID]
 *              [--case NAME]...
 * On the loopback bus (a second connection plays the witness guest):
 *   xvmsg-evil --socket PATH --blk EXPORT --rng EXPORT --witness EXPORT
 *              [--net EXPORT --tap NAME] [--backend-pid PID] [--case NAME]...
 * The net cases run only when a net device is given.
 * (the full-mode cases want a backend started with --full; noisy-neighbour
 * reads the backend's counters, which only tests/loop/test-loop-evil can:
 * here it fails, saying so.)
 * --list prints the cases.  Exit status: 0 when every case passed.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evil.h"

static const struct evil_case *const tables[] = { evil_ring_cases, evil_msg_cases,
						  evil_quota_cases, evil_net_cases };

static void usage(FILE *f)
{
	fprintf(f,
"usage: xvmsg-evil --xen --blk DEVID --rng DEVID --witness DEVID [--net DEVID]\n"
"                  [--case NAME]...\n"
"       xvmsg-evil --socket PATH --blk EXPORT --rng EXPORT --witness EXPORT\n"
"                  [--net EXPORT --tap NAME] [--backend-pid PID] [--case NAME]...\n"
"       xvmsg-evil --list\n");
}

static unsigned int parse_devid(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > XVD_MAX_DEVID) {
		fprintf(stderr, "xvmsg-evil: bad devid '%s'\n", s);
		exit(2);
	}
	return (unsigned int)v;
}

static bool wanted(char **names, int n, const char *name)
{
	if (!n)
		return true;
	for (int i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "xen", no_argument, NULL, 'x' },
		{ "socket", required_argument, NULL, 's' },
		{ "blk", required_argument, NULL, 'b' },
		{ "rng", required_argument, NULL, 'r' },
		{ "witness", required_argument, NULL, 'w' },
		{ "backend-pid", required_argument, NULL, 'p' },
		{ "net", required_argument, NULL, 'n' },
		{ "tap", required_argument, NULL, 't' },
		{ "case", required_argument, NULL, 'c' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *blk = NULL, *rng = NULL, *wit = NULL, *net = NULL;
	struct evil_env e = { 0 };
	struct xvd_domain_opts dopts = { .log_level = XVD_LOG_ERR };
	struct xvd_domain *wd = NULL;
	struct xvd_dev_opts wo = { .mode = XVD_MODE_POOL, .pool_pages = 32 };
	char *names[64];
	int nnames = 0, c, pass = 0, fail = 0, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'x': e.xen = true; break;
		case 's': e.socket_path = optarg; break;
		case 'b': blk = optarg; break;
		case 'r': rng = optarg; break;
		case 'w': wit = optarg; break;
		case 'p': e.backend_pid = (pid_t)atoi(optarg); break;
		case 'n': net = optarg; break;
		case 't': e.net_tap = optarg; break;
		case 'c':
			if (nnames == 64) {
				fprintf(stderr, "xvmsg-evil: too many --case\n");
				return 2;
			}
			names[nnames++] = optarg;
			break;
		case 'l':
			for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
				for (const struct evil_case *k = tables[t]; k->name; k++)
					printf("%-24s %s%s\n", k->name, k->expect,
					       k->flags & EVIL_LOOP_ONLY ? " (loopback only)" : "");
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!blk || !rng || !wit || (!e.xen && !e.socket_path) || optind != argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	if (e.xen) {
		e.blk_devid = parse_devid(blk);
		e.rng_devid = parse_devid(rng);
		wo.devid = parse_devid(wit);
		e.net_devid = net ? parse_devid(net) : 0;
		wo.export_name = "xen";
		r = xvd_domain_open_xen(&dopts, &e.d);
		wd = e.d;
	} else {
		e.blk_export = blk;
		e.rng_export = rng;
		e.net_export = net;
		e.net_devid = 3;
		e.blk_devid = 1;
		e.rng_devid = 2;
		e.spare_devid = 100;
		wo.export_name = wit;
		wo.devid = 1;
		dopts.socket_path = e.socket_path;
		r = xvd_domain_open_loop(&dopts, &e.d);
		if (!r)
			r = xvd_domain_open_loop(&dopts, &wd);
	}
	if (!r)
		r = xvd_blk_open(wd, &wo, &e.witness);
	if (r) {
		printf("XVMSG-GUEST: FAIL evil: setup: %s\n", strerror(-r));
		return 1;
	}

	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		for (const struct evil_case *k = tables[t]; k->name; k++) {
			char obs[512] = "";

			if (!wanted(names, nnames, k->name))
				continue;
			if (e.xen && (k->flags & EVIL_LOOP_ONLY))
				continue;
			if ((k->flags & EVIL_NET) && !evil_has_net(&e))
				continue;
			r = k->run(&e, obs, sizeof(obs));
			if (r == 0)
				r = evil_witness_ok(&e, obs, sizeof(obs));
			if (r == 0) {
				pass++;
				printf("XVMSG-GUEST: PASS evil/%s: %s\n", k->name, obs);
			} else {
				fail++;
				printf("XVMSG-GUEST: FAIL evil/%s: expected %s; observed %s\n",
				       k->name, k->expect, obs);
			}
			fflush(stdout);
		}
	}
	xvd_dev_close(e.witness);
	if (wd != e.d)
		xvd_domain_close(wd);
	xvd_domain_close(e.d);
	printf("xvmsg-evil: %d passed, %d failed\n", pass, fail);
	return fail ? 1 : 0;
}
