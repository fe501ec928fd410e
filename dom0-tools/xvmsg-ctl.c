// SPDX-License-Identifier: MIT
/*
 * xvmsg-ctl: the toolstack part of xvmsg on Xen.  Creates and removes xvmsg
 * devices between a frontend (guest) domain and a backend (driver) domain by
 * writing both xenstore directories, with owners and permissions the way
 * libxl does for its own device kinds; lists them; fetches their counters.
 * Run it in dom0 (or wherever the toolstack lives).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

#include <xvmsg/xenbus.h>

#include "device.h"	/* xvb_params_parse */

#define MAX_DEVID 65535

struct ctl {
	struct xs_handle *xs;
	bool json;
	int timeout_s;
};

static const char *const state_names[] = {
	"Unknown", "Initialising", "InitWait", "Initialised", "Connected",
	"Closing", "Closed", "Reconfiguring", "Reconfigured",
};

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "xvmsg-ctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see xvmsg-ctl --help)\n");
	exit(2);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "xvmsg-ctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static char *rd(struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *rd(struct ctl *c, const char *fmt, ...)
{
	char path[256];
	unsigned int len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return xs_read(c->xs, XBT_NULL, path, &len);
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return !*end && !errno && *out <= max;
}

/* A domain by name or id.  Returns the id, or -1 with a message. */
static long resolve_domain(struct ctl *c, const char *spec)
{
	unsigned long id;
	unsigned int n, i;
	char **doms, *name;
	long found = -1;

	if (parse_uint(spec, 0x7fef, &id)) {
		name = rd(c, "/local/domain/%lu/name", id);
		if (!name && !rd(c, "/local/domain/%lu/domid", id)) {
			fail("domain %lu does not exist", id);
			return -1;
		}
		free(name);
		return (long)id;
	}
	doms = xs_directory(c->xs, XBT_NULL, "/local/domain", &n);
	for (i = 0; doms && i < n; i++) {
		name = rd(c, "/local/domain/%s/name", doms[i]);
		if (name && strcmp(name, spec) == 0 && parse_uint(doms[i], 0x7fef, &id))
			found = (long)id;
		free(name);
	}
	free(doms);
	if (found < 0)
		fail("unknown domain '%s' (give a name from 'xl list' or a domain id)", spec);
	return found;
}

static void be_path(char *buf, size_t len, long be, long fe, unsigned long devid)
{
	snprintf(buf, len, "/local/domain/%ld/backend/%s/%ld/%lu", be, XVMSG_XS_CLASS, fe, devid);
}

static void fe_path(char *buf, size_t len, long fe, unsigned long devid)
{
	snprintf(buf, len, "/local/domain/%ld/device/%s/%lu", fe, XVMSG_XS_CLASS, devid);
}

/* The backend dir of (fe, devid), found by scanning the backends: never by
 * trusting the frontend's own "backend" key, which the guest can rewrite. */
static long find_backend(struct ctl *c, long fe, unsigned long devid)
{
	unsigned int n, i;
	char **doms = xs_directory(c->xs, XBT_NULL, "/local/domain", &n);
	long be = -1;

	for (i = 0; doms && i < n && be < 0; i++) {
		unsigned long id;
		char *t;

		if (!parse_uint(doms[i], 0x7fef, &id))
			continue;
		t = rd(c, "/local/domain/%lu/backend/%s/%ld/%lu/frontend-id", id, XVMSG_XS_CLASS,
		       fe, devid);
		if (t)
			be = (long)id;
		free(t);
	}
	free(doms);
	return be;
}

static bool devid_used(struct ctl *c, long fe, unsigned long devid)
{
	char *v = rd(c, "/local/domain/%ld/device/%s/%lu/backend-id", fe, XVMSG_XS_CLASS, devid);

	free(v);
	return v != NULL || find_backend(c, fe, devid) >= 0;
}

static int check_param(void *arg, const char *key, const char *value)
{
	return 0;
}

static bool write_dir(struct ctl *c, xs_transaction_t t, const char *dir, long owner, long reader)
{
	struct xs_permissions perms[2] = {
		{ .id = (unsigned int)owner, .perms = XS_PERM_NONE },
		{ .id = (unsigned int)reader, .perms = XS_PERM_READ },
	};

	return xs_mkdir(c->xs, t, dir) && xs_set_permissions(c->xs, t, dir, perms, 2);
}

static bool wr(struct ctl *c, xs_transaction_t t, const char *dir, const char *key,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static bool wr(struct ctl *c, xs_transaction_t t, const char *dir, const char *key,
	       const char *fmt, ...)
{
	char path[256], val[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s", dir, key);
	return xs_write(c->xs, t, path, val, (unsigned int)strlen(val));
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Wait until fn says done (1) or failed (-1), re-checking on every watch
 * event under path.  Returns 1, -1, or 0 on timeout. */
static int wait_for(struct ctl *c, const char *path, int (*fn)(struct ctl *, void *), void *arg)
{
	long long end = now_ms() + c->timeout_s * 1000LL;
	struct pollfd p = { .fd = xs_fileno(c->xs), .events = POLLIN };
	char **vec;
	int r = 0;

	if (!xs_watch(c->xs, path, "xvmsg-ctl"))
		return -1;
	while ((r = fn(c, arg)) == 0) {
		long long left = end - now_ms();

		if (left <= 0)
			break;
		if (poll(&p, 1, (int)(left > 1000 ? 1000 : left)) > 0)
			while ((vec = xs_check_watch(c->xs)))
				free(vec);
	}
	xs_unwatch(c->xs, path, "xvmsg-ctl");
	return r;
}

struct attach_wait {
	char be[200];
	char why[256];
};

static int backend_answered(struct ctl *c, void *arg)
{
	struct attach_wait *w = arg;
	char *state = rd(c, "%s/%s", w->be, XVMSG_XS_STATE);
	char *err = rd(c, "%s/%s", w->be, XVMSG_XS_HOTPLUG_ERROR);
	int r = 0;

	if (err) {
		snprintf(w->why, sizeof(w->why), "%s", err);
		r = -1;
	} else if (state && atoi(state) >= XVMSG_STATE_INITWAIT &&
		   atoi(state) <= XVMSG_STATE_CONNECTED) {
		r = 1;
	}
	free(state);
	free(err);
	return r;
}

static void remove_dirs(struct ctl *c, const char *be, const char *fe)
{
	xs_rm(c->xs, XBT_NULL, be);
	xs_rm(c->xs, XBT_NULL, fe);
}

static int cmd_attach(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "pool-pages", required_argument, NULL, 'p' },
		{ "devid", required_argument, NULL, 'd' },
		{ "no-wait", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mode = "pool", *params = "", *type;
	unsigned long pool = XVMSG_DEFAULT_POOL_PAGES, devid = 0;
	bool have_devid = false, wait = true;
	struct attach_wait w = { .why = "" };
	char fe_dir[200];
	long fe, be;
	int o, r;

	while ((o = getopt_long(argc, argv, "m:p:d:n", opts, NULL)) != -1) {
		switch (o) {
		case 'm':
			mode = optarg;
			if (strcmp(mode, "pool") && strcmp(mode, "grant") && strcmp(mode, "full"))
				die_usage("--mode must be pool, grant or full");
			break;
		case 'p':
			if (!parse_uint(optarg, XVMSG_MAX_POOL_PAGES, &pool) || pool == 0)
				die_usage("--pool-pages must be 1..%d", XVMSG_MAX_POOL_PAGES);
			break;
		case 'd':
			if (!parse_uint(optarg, MAX_DEVID, &devid))
				die_usage("--devid must be 0..%d", MAX_DEVID);
			have_devid = true;
			break;
		case 'n':
			wait = false;
			break;
		default:
			die_usage("attach: bad option");
		}
	}
	if (argc - optind < 3 || argc - optind > 4)
		die_usage("usage: attach FRONTEND BACKEND TYPE [PARAMS] [options]");
	type = argv[optind + 2];
	if (argc - optind == 4)
		params = argv[optind + 3];
	if (strcmp(type, "blk") && strcmp(type, "rng") && strcmp(type, "console"))
		die_usage("device type '%s' unknown: blk, rng or console", type);
	if (strlen(params) > 255 || xvb_params_parse(params, check_param, NULL))
		die_usage("parameters '%s' are not key=value,key,... (at most 255 characters)",
			  params);
	fe = resolve_domain(c, argv[optind]);
	be = resolve_domain(c, argv[optind + 1]);
	if (fe < 0 || be < 0)
		return 1;
	if (fe == be)
		return fail("frontend and backend must be different domains");
	if (have_devid && devid_used(c, fe, devid))
		return fail("device %lu of domain %ld already exists", devid, fe);
	if (!have_devid) {
		while (devid <= MAX_DEVID && devid_used(c, fe, devid))
			devid++;
		if (devid > MAX_DEVID)
			return fail("domain %ld has no free device id", fe);
	}
	be_path(w.be, sizeof(w.be), be, fe, devid);
	fe_path(fe_dir, sizeof(fe_dir), fe, devid);

	for (;;) {
		xs_transaction_t t = xs_transaction_start(c->xs);
		bool ok;

		if (t == XBT_NULL)
			return fail("xenstore transaction: %s", strerror(errno));
		ok = write_dir(c, t, fe_dir, fe, be) &&
		     wr(c, t, fe_dir, XVMSG_XS_BACKEND, "%s", w.be) &&
		     wr(c, t, fe_dir, XVMSG_XS_BACKEND_ID, "%ld", be) &&
		     wr(c, t, fe_dir, XVMSG_XS_STATE, "%d", XVMSG_STATE_INITIALISING) &&
		     write_dir(c, t, w.be, be, fe) &&
		     wr(c, t, w.be, XVMSG_XS_FRONTEND_ID, "%ld", fe) &&
		     wr(c, t, w.be, XVMSG_XS_TYPE, "%s", type) &&
		     wr(c, t, w.be, XVMSG_XS_PARAMS, "%s", params) &&
		     wr(c, t, w.be, XVMSG_XS_MODE, "%s", mode) &&
		     wr(c, t, w.be, XVMSG_XS_POOL_PAGES, "%lu", pool) &&
		     wr(c, t, w.be, "online", "1") &&
		     wr(c, t, w.be, XVMSG_XS_STATE, "%d", XVMSG_STATE_INITIALISING) &&
		     wr(c, t, w.be, XVMSG_XS_FRONTEND, "%s", fe_dir);
		if (!ok) {
			int e = errno;

			xs_transaction_end(c->xs, t, true);
			return fail("writing xenstore: %s", strerror(e));
		}
		if (xs_transaction_end(c->xs, t, false))
			break;
		if (errno != EAGAIN)
			return fail("xenstore transaction: %s", strerror(errno));
	}
	if (wait) {
		r = wait_for(c, w.be, backend_answered, &w);
		if (r <= 0) {
			remove_dirs(c, w.be, fe_dir);
			if (r < 0)
				return fail("backend refused device %lu: %s", devid,
					    w.why[0] ? w.why : "xenstore watch failed");
			return fail("backend domain %ld did not answer within %d s; is "
				    "xvmsg-backend --bus xen running there? (device removed)",
				    be, c->timeout_s);
		}
	}
	printf("%lu\n", devid);
	return 0;
}

static int cmd_detach(struct ctl *c, int argc, char **argv)
{
	char be_dir[200], fe_dir[200];
	unsigned long devid;
	long fe, be;

	if (argc != 3)
		die_usage("usage: detach FRONTEND DEVID");
	if (!parse_uint(argv[2], MAX_DEVID, &devid))
		die_usage("device id '%s' is not a number", argv[2]);
	fe = resolve_domain(c, argv[1]);
	if (fe < 0)
		return 1;
	be = find_backend(c, fe, devid);
	if (be < 0)
		return fail("domain %ld has no xvmsg device %lu", fe, devid);
	be_path(be_dir, sizeof(be_dir), be, fe, devid);
	fe_path(fe_dir, sizeof(fe_dir), fe, devid);
	/* The backend tears the device down when its directory goes; the
	 * frontend sees its backend vanish. */
	remove_dirs(c, be_dir, fe_dir);
	return 0;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static const char *state_name(const char *s)
{
	unsigned long v;

	if (s && parse_uint(s, 8, &v))
		return state_names[v];
	return "-";
}

static int cmd_list(struct ctl *c, int argc, char **argv)
{
	unsigned int nd, i, nf, j, nv, k;
	char **doms = xs_directory(c->xs, XBT_NULL, "/local/domain", &nd);
	long only = -1;
	int count = 0;

	if (argc > 2)
		die_usage("usage: list [DOMAIN]");
	if (argc == 2 && (only = resolve_domain(c, argv[1])) < 0)
		return 1;
	if (c->json)
		printf("[");
	else
		printf("%-10s %-6s %-10s %-8s %-6s %-12s %-12s %s\n", "frontend", "devid",
		       "backend", "type", "mode", "be-state", "fe-state", "params");
	for (i = 0; doms && i < nd; i++) {
		char path[200], **fes;

		snprintf(path, sizeof(path), "/local/domain/%s/backend/%s", doms[i],
			 XVMSG_XS_CLASS);
		fes = xs_directory(c->xs, XBT_NULL, path, &nf);
		for (j = 0; fes && j < nf; j++) {
			char **devs;

			if (only >= 0 && atol(fes[j]) != only && atol(doms[i]) != only)
				continue;
			snprintf(path, sizeof(path), "/local/domain/%s/backend/%s/%s", doms[i],
				 XVMSG_XS_CLASS, fes[j]);
			devs = xs_directory(c->xs, XBT_NULL, path, &nv);
			for (k = 0; devs && k < nv; k++) {
				char *type = rd(c, "%s/%s/type", path, devs[k]);
				char *mode = rd(c, "%s/%s/mode", path, devs[k]);
				char *params = rd(c, "%s/%s/params", path, devs[k]);
				char *bs = rd(c, "%s/%s/state", path, devs[k]);
				char *fs = rd(c, "/local/domain/%s/device/%s/%s/state", fes[j],
					      XVMSG_XS_CLASS, devs[k]);
				char *err = rd(c, "%s/%s/error", path, devs[k]);
				char *fname = rd(c, "/local/domain/%s/name", fes[j]);
				char *bname = rd(c, "/local/domain/%s/name", doms[i]);

				if (c->json) {
					printf("%s{\"frontend_id\":%s,\"frontend\":", count ? "," : "",
					       fes[j]);
					json_str(fname ? fname : fes[j]);
					printf(",\"devid\":%s,\"backend_id\":%s,\"backend\":", devs[k],
					       doms[i]);
					json_str(bname ? bname : doms[i]);
					printf(",\"type\":");
					json_str(type);
					printf(",\"mode\":");
					json_str(mode ? mode : "pool");
					printf(",\"backend_state\":");
					json_str(state_name(bs));
					printf(",\"frontend_state\":");
					json_str(state_name(fs));
					printf(",\"params\":");
					json_str(params);
					if (err) {
						printf(",\"error\":");
						json_str(err);
					}
					printf("}");
				} else {
					printf("%-10s %-6s %-10s %-8s %-6s %-12s %-12s %s%s%s\n",
					       fname ? fname : fes[j], devs[k], bname ? bname : doms[i],
					       type ? type : "-", mode ? mode : "pool", state_name(bs),
					       state_name(fs), params ? params : "",
					       err ? "  error: " : "", err ? err : "");
				}
				count++;
				free(type); free(mode); free(params); free(bs); free(fs);
				free(err); free(fname); free(bname);
			}
			free(devs);
		}
		free(fes);
	}
	free(doms);
	if (c->json)
		printf("]\n");
	return 0;
}

struct stats_wait {
	char be[200];
	char seq[32];
};

static int stats_fresh(struct ctl *c, void *arg)
{
	struct stats_wait *w = arg;
	char *seq = rd(c, "%s/%s", w->be, XVMSG_XS_STATS_SEQ);
	int r = seq && strcmp(seq, w->seq) == 0;

	free(seq);
	return r;
}

static int cmd_stats(struct ctl *c, int argc, char **argv)
{
	struct stats_wait w;
	unsigned long devid;
	char path[256], *stats, *tok, *save = NULL;
	long fe, be;
	bool first = true;

	if (argc != 3)
		die_usage("usage: stats FRONTEND DEVID");
	if (!parse_uint(argv[2], MAX_DEVID, &devid))
		die_usage("device id '%s' is not a number", argv[2]);
	fe = resolve_domain(c, argv[1]);
	if (fe < 0)
		return 1;
	be = find_backend(c, fe, devid);
	if (be < 0)
		return fail("domain %ld has no xvmsg device %lu", fe, devid);
	be_path(w.be, sizeof(w.be), be, fe, devid);
	snprintf(w.seq, sizeof(w.seq), "%lld-%d", now_ms(), (int)getpid());
	snprintf(path, sizeof(path), "%s/%s", w.be, XVMSG_XS_STATS_REQUEST);
	if (!xs_write(c->xs, XBT_NULL, path, w.seq, (unsigned int)strlen(w.seq)))
		return fail("writing %s: %s", path, strerror(errno));
	if (wait_for(c, w.be, stats_fresh, &w) <= 0)
		return fail("backend domain %ld did not answer within %d s", be, c->timeout_s);
	stats = rd(c, "%s/%s", w.be, XVMSG_XS_STATS);
	if (!stats)
		return fail("backend wrote no counters");
	if (c->json)
		printf("{");
	for (tok = strtok_r(stats, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq)
			continue;
		*eq = '\0';
		if (c->json)
			printf("%s\"%s\":%s", first ? "" : ",", tok, eq + 1);
		else
			printf("%-12s %s\n", tok, eq + 1);
		first = false;
	}
	if (c->json)
		printf("}\n");
	free(stats);
	return 0;
}

/*
 * apply FRONTEND FILE: attach every device a description file lists.
 * One device per line: TYPE key=value...  with keys backend (required),
 * params, mode, pool-pages, devid.  '#' starts a comment.  The whole file is
 * checked before anything is attached.
 */
static int cmd_apply(struct ctl *c, int argc, char **argv)
{
	char line[1024], *args[64][12], store[64][1024];
	unsigned int n = 0, lineno = 0, i;
	FILE *f;
	int rc = 0;

	if (argc != 3)
		die_usage("usage: apply FRONTEND FILE");
	f = fopen(argv[2], "r");
	if (!f)
		return fail("%s: %s", argv[2], strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok, *hash = strchr(line, '#');
		const char *backend = NULL, *params = NULL;
		int k = 0;

		lineno++;
		if (hash)
			*hash = '\0';
		if (line[strspn(line, " \t\r\n")] == '\0')
			continue;	/* blank */
		if (n == 64) {
			fclose(f);
			return fail("%s:%u: more than 64 devices", argv[2], lineno);
		}
		strcpy(store[n], line);
		tok = strtok_r(store[n], " \t\r\n", &save);
		args[n][k++] = "attach";
		args[n][k++] = argv[1];
		args[n][k++] = NULL;	/* backend, below */
		args[n][k++] = tok;	/* type */
		args[n][k++] = NULL;	/* params, below */
		while ((tok = strtok_r(NULL, " \t\r\n", &save))) {
			char *eq = strchr(tok, '=');

			if (!eq) {
				fclose(f);
				return fail("%s:%u: '%s' is not key=value", argv[2], lineno, tok);
			}
			*eq++ = '\0';
			if (!strcmp(tok, "backend")) {
				backend = eq;
			} else if (!strcmp(tok, "params")) {
				params = eq;
			} else if (!strcmp(tok, "mode") || !strcmp(tok, "pool-pages") ||
				   !strcmp(tok, "devid")) {
				if (k > 9) {
					fclose(f);
					return fail("%s:%u: a key given twice", argv[2], lineno);
				}
				args[n][k++] = tok[0] == 'm' ? "--mode" : tok[0] == 'p' ?
					       "--pool-pages" : "--devid";
				args[n][k++] = eq;
			} else {
				fclose(f);
				return fail("%s:%u: unknown key '%s' (backend, params, mode, "
					    "pool-pages, devid)", argv[2], lineno, tok);
			}
		}
		if (!backend) {
			fclose(f);
			return fail("%s:%u: backend=DOMAIN missing", argv[2], lineno);
		}
		args[n][2] = (char *)backend;
		args[n][4] = (char *)(params ? params : "");
		args[n][k] = NULL;
		n++;
	}
	fclose(f);
	if (n == 0)
		return fail("%s: no devices", argv[2]);
	for (i = 0; i < n && !rc; i++) {
		int cnt = 0;

		while (args[i][cnt])
			cnt++;
		optind = 1;
		rc = cmd_attach(c, cnt, args[i]);
	}
	return rc;
}

static void usage(void)
{
	printf(
"Usage: xvmsg-ctl [--json] [--timeout SECONDS] COMMAND ...\n"
"Manage xvmsg virtio devices between Xen domains (run in dom0).\n"
"\n"
"Commands:\n"
"  attach FRONTEND BACKEND TYPE [PARAMS] [--mode pool|grant|full]\n"
"         [--pool-pages N] [--devid N] [--no-wait]\n"
"      Create a device of TYPE (blk, rng, console) served by xvmsg-backend in\n"
"      domain BACKEND to domain FRONTEND.  PARAMS are the device's parameters\n"
"      as the backend reads them, e.g. path=/srv/disk.img,ro for blk.  Mode\n"
"      defaults to pool, the pool to 256 pages (1 MiB).  Prints the device id.\n"
"      Waits until the backend takes the device (or refuses it, or the\n"
"      timeout passes: then the device is removed again).\n"
"  apply FRONTEND FILE\n"
"      Attach every device FILE describes, one per line:\n"
"        TYPE backend=DOMAIN [params=P] [mode=M] [pool-pages=N] [devid=N]\n"
"      ('#' starts a comment; see configs/guest.xvmsg).\n"
"  detach FRONTEND DEVID\n"
"      Remove the device; the backend releases everything it mapped.\n"
"  list [DOMAIN]\n"
"      Show xvmsg devices (of DOMAIN as frontend or backend).\n"
"  stats FRONTEND DEVID\n"
"      Ask the backend for the device's counters (maps, notifications, ...).\n"
"\n"
"Domains are names (as in 'xl list') or ids.\n"
"Options:\n"
"  --json          machine-readable output for list and stats\n"
"  --timeout S     how long to wait for a backend (default 10)\n"
"  -h, --help      this help\n"
"Exit status: 0 success, 1 failure, 2 usage error.\n");
}

int main(int argc, char **argv)
{
	struct ctl c = { .timeout_s = 10 };
	unsigned long t;
	int i, rc;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--json")) {
			c.json = true;
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			if (!parse_uint(argv[++i], 3600, &t) || t == 0)
				die_usage("--timeout must be 1..3600 seconds");
			c.timeout_s = (int)t;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage();
			return 0;
		} else {
			die_usage("unknown option '%s'", argv[i]);
		}
	}
	if (i == argc)
		die_usage("no command given");
	c.xs = xs_open(0);
	if (!c.xs)
		return fail("cannot open xenstore: %s (run in dom0 with xenstored running)",
			    strerror(errno));
	argc -= i;
	argv += i;
	optind = 1;
	if (!strcmp(argv[0], "attach"))
		rc = cmd_attach(&c, argc, argv);
	else if (!strcmp(argv[0], "apply"))
		rc = cmd_apply(&c, argc, argv);
	else if (!strcmp(argv[0], "detach"))
		rc = cmd_detach(&c, argc, argv);
	else if (!strcmp(argv[0], "list"))
		rc = cmd_list(&c, argc, argv);
	else if (!strcmp(argv[0], "stats"))
		rc = cmd_stats(&c, argc, argv);
	else
		die_usage("unknown command '%s'", argv[0]);
	xs_close(c.xs);
	return rc;
}
