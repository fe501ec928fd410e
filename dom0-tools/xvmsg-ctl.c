// SPDX-License-Identifier: MIT
/*
 * xvmsg-ctl: the toolstack part of xvmsg on Xen.  Creates and removes xvmsg
 * devices between a frontend (guest) domain and a backend (driver) domain by
 * writing both xenstore directories, with owners and permissions the way
 * libxl does for its own device kinds; lists them; fetches their counters.
 * Run it in dom0 (or wherever the toolstack lives).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

#include <xvmsg/xenbus.h>
#include <xvmsg/toolstack.h>
#include <xvmsg/xs-readf.h>

#include "ctl-parse.h"

struct ctl {
	struct xs_handle *xs;
	bool json;
	int timeout_s;
};

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

/* A domain by name or id.  Returns the id, or -1 with a message.  A name
 * two domains claim is refused: a guest can rewrite its own name key.  With
 * gone_ok, an id is accepted even when the domain no longer exists (to
 * detach the devices of a guest that died). */
static long resolve_domain_opt(struct ctl *c, const char *spec, bool gone_ok)
{
	unsigned int id, n, i;
	char **doms, *name, shown[160];
	long found = -1;

	if (!ctl_parse_domid(spec, &id)) {
		name = xvmsg_xs_readf(c->xs, "/local/domain/%u/name", id);
		if (!name)
			name = xvmsg_xs_readf(c->xs, "/local/domain/%u/domid", id);
		if (!name && !gone_ok) {
			fail("domain %u does not exist", id);
			return -1;
		}
		free(name);
		return (long)id;
	}
	doms = xs_directory(c->xs, XBT_NULL, "/local/domain", &n);
	for (i = 0; doms && i < n; i++) {
		if (ctl_parse_domid(doms[i], &id))
			continue;
		name = xvmsg_xs_readf(c->xs, "/local/domain/%u/name", id);
		if (name && strcmp(name, spec) == 0) {
			if (found >= 0) {
				fail("domain name '%s' is ambiguous: domains %ld and %u have it "
				     "(give the id)", ctl_printable(shown, sizeof(shown), spec), found, id);
				free(name);
				free(doms);
				return -1;
			}
			found = (long)id;
		}
		free(name);
	}
	free(doms);
	if (found < 0)
		fail("unknown domain '%s' (give a name from 'xl list' or a domain id)",
		     ctl_printable(shown, sizeof(shown), spec));
	return found;
}

static long resolve_domain(struct ctl *c, const char *spec)
{
	return resolve_domain_opt(c, spec, false);
}

/* Domain ids and devids are checked before (0..0x7fef, 0..CTL_MAX_DEVID):
 * the paths fit in XVMSG_XS_DIR_MAX. */
static void be_path(char *buf, size_t len, long be, long fe, unsigned long devid)
{
	xvmsg_xs_be_dir(buf, len, (unsigned int)be, (unsigned int)fe, (unsigned int)devid);
}

static void fe_path(char *buf, size_t len, long fe, unsigned long devid)
{
	xvmsg_xs_fe_dir(buf, len, (unsigned int)fe, (unsigned int)devid);
}

/* The backend dir of (fe, devid), found by scanning the backends: never by
 * trusting the frontend's own "backend" key, which the guest can rewrite.
 * A backend domain owns its backend tree, so a rogue one could plant a dir
 * for another backend's device: when two domains claim (fe, devid) the
 * answer is -2 (ambiguous), and callers refuse to act. */
static long find_backend(struct ctl *c, long fe, unsigned long devid)
{
	unsigned int n, i;
	char **doms = xs_directory(c->xs, XBT_NULL, "/local/domain", &n);
	long be = -1;

	for (i = 0; doms && i < n; i++) {
		unsigned int id;
		char *t;

		if (ctl_parse_domid(doms[i], &id))
			continue;
		t = xvmsg_xs_readf(c->xs, "/local/domain/%u/backend/%s/%ld/%lu/frontend-id", id,
				   XVMSG_XS_CLASS, fe, devid);
		if (t) {
			if (be >= 0) {
				fail("device %lu of domain %ld is claimed by backend domains %ld and "
				     "%u; remove the wrong one by hand (xenstore-rm)", devid, fe, be,
				     id);
				be = -2;
				free(t);
				break;
			}
			be = (long)id;
		}
		free(t);
	}
	free(doms);
	return be;
}

static bool devid_used(struct ctl *c, long fe, unsigned long devid)
{
	char *v = xvmsg_xs_readf(c->xs, "/local/domain/%ld/device/%s/%lu/backend-id", fe,
				 XVMSG_XS_CLASS, devid);

	free(v);
	return v != NULL || find_backend(c, fe, devid) != -1;
}

/* A toolstack's write into a transaction (struct xvmsg_xs_writer). */
struct ctl_txn {
	struct ctl		*c;
	xs_transaction_t	t;
};

static int txn_dir(void *ctx, const char *dir, unsigned int owner, unsigned int reader)
{
	struct ctl_txn *x = ctx;
	struct xs_permissions perms[2] = {
		{ .id = owner, .perms = XS_PERM_NONE },
		{ .id = reader, .perms = XS_PERM_READ },
	};

	if (!xs_mkdir(x->c->xs, x->t, dir) || !xs_set_permissions(x->c->xs, x->t, dir, perms, 2))
		return errno ? -errno : -EIO;
	return 0;
}

static int txn_put(void *ctx, const char *path, const char *val)
{
	struct ctl_txn *x = ctx;

	if (!xs_write(x->c->xs, x->t, path, val, (unsigned int)strlen(val)))
		return errno ? -errno : -EIO;
	return 0;
}

static const struct xvmsg_xs_writer txn_writer = { .dir = txn_dir, .put = txn_put };

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Wait until fn(c, path, arg) says done (1) or failed (-1), re-checking on
 * every watch event under path.  Returns 1, -1, or 0 on timeout. */
static int wait_for(struct ctl *c, const char *path,
		    int (*fn)(struct ctl *, const char *, void *), void *arg)
{
	long long end = now_ms() + c->timeout_s * 1000LL;
	struct pollfd p = { .fd = xs_fileno(c->xs), .events = POLLIN };
	char **vec;
	int r = 0;

	if (!xs_watch(c->xs, path, "xvmsg-ctl"))
		return -1;
	while ((r = fn(c, path, arg)) == 0) {
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

#define WHY_MAX 256	/* why a backend refused a device */

/* The backend domain writes state and error in be: both untrusted here.
 * why (WHY_MAX bytes) gets its reason when it refused. */
static int backend_answered(struct ctl *c, const char *be, void *why)
{
	char *state = xvmsg_xs_readf(c->xs, "%s/%s", be, XVMSG_XS_STATE);
	char *err = xvmsg_xs_readf(c->xs, "%s/%s", be, XVMSG_XS_HOTPLUG_ERROR);
	unsigned int st;
	char shown[64];
	int r = 0;

	if (err) {
		ctl_printable(why, WHY_MAX, err);
		r = -1;
	} else if (state && ctl_parse_state(state, &st)) {
		snprintf(why, WHY_MAX, "it wrote an invalid state '%s'",
			 ctl_printable(shown, sizeof(shown), state));
		r = -1;
	} else if (state && st >= XVMSG_STATE_INITWAIT && st <= XVMSG_STATE_CONNECTED) {
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

/* Is devid given explicitly by a device of the description file being
 * applied?  Then no earlier device may take it as the lowest free one. */
static bool devid_reserved(const struct ctl_desc *desc, unsigned long devid)
{
	unsigned int i;

	for (i = 0; desc && i < desc->n; i++)
		if (desc->dev[i].have_devid && desc->dev[i].devid == devid)
			return true;
	return false;
}

/* A device this run attached, to take away again if a later step fails. */
struct attached {
	long fe, be;
	unsigned long devid;
};

/* Attach d (already checked by ctl-parse) to the domain named frontend and
 * print its devid.  If done is not NULL, it is set to what was attached. */
static int do_attach(struct ctl *c, const char *frontend, const struct ctl_dev *d,
		     const struct ctl_desc *desc, struct attached *done)
{
	unsigned long devid = d->devid;
	char be_dir[200], why[WHY_MAX] = "";
	struct xvmsg_dev_spec spec;
	char fe_dir[200];
	long fe, be;
	int r;

	fe = resolve_domain(c, frontend);
	be = resolve_domain(c, d->backend);
	if (fe < 0 || be < 0)
		return 1;
	if (fe == be)
		return fail("frontend and backend must be different domains");
	if (d->have_devid && devid_used(c, fe, devid))
		return fail("device %lu of domain %ld already exists", devid, fe);
	if (!d->have_devid) {
		devid = 0;
		while (devid <= CTL_MAX_DEVID &&
		       (devid_reserved(desc, devid) || devid_used(c, fe, devid)))
			devid++;
		if (devid > CTL_MAX_DEVID)
			return fail("domain %ld has no free device id", fe);
	}
	be_path(be_dir, sizeof(be_dir), be, fe, devid);
	fe_path(fe_dir, sizeof(fe_dir), fe, devid);
	spec = (struct xvmsg_dev_spec){
		.fe_domid = (unsigned int)fe, .be_domid = (unsigned int)be,
		.devid = (unsigned int)devid, .type = d->type, .params = d->params,
		.mode = d->mode, .pool_pages = (unsigned int)d->pool_pages,
	};

	for (;;) {
		xs_transaction_t t = xs_transaction_start(c->xs);

		if (t == XBT_NULL)
			return fail("xenstore transaction: %s", strerror(errno));
		r = xvmsg_dev_entry_write(&spec, &txn_writer, &(struct ctl_txn){ c, t });
		if (r) {
			xs_transaction_end(c->xs, t, true);
			return fail("writing xenstore: %s", strerror(-r));
		}
		if (xs_transaction_end(c->xs, t, false))
			break;
		if (errno != EAGAIN)
			return fail("xenstore transaction: %s", strerror(errno));
	}
	if (d->wait) {
		r = wait_for(c, be_dir, backend_answered, why);
		if (r <= 0) {
			remove_dirs(c, be_dir, fe_dir);
			if (r < 0)
				return fail("backend refused device %lu: %s", devid,
					    why[0] ? why : "xenstore watch failed");
			return fail("backend domain %ld did not answer within %d s; is "
				    "xvmsg-backend --bus xen running there? (device removed)",
				    be, c->timeout_s);
		}
	}
	printf("%lu\n", devid);
	if (done)
		*done = (struct attached){ .fe = fe, .be = be, .devid = devid };
	return 0;
}

/* Take away what do_attach attached, last first. */
static void undo_attached(struct ctl *c, const struct attached *done, unsigned int n)
{
	char be_dir[200], fe_dir[200];

	while (n--) {
		be_path(be_dir, sizeof(be_dir), done[n].be, done[n].fe, done[n].devid);
		fe_path(fe_dir, sizeof(fe_dir), done[n].fe, done[n].devid);
		remove_dirs(c, be_dir, fe_dir);
	}
}

/* The domain a->domain (*fe) and the backend domain (*be) of its device
 * a->devid: 0, or 1 after a message. */
static int find_device(struct ctl *c, const struct ctl_args *a, long *fe, long *be)
{
	*fe = resolve_domain_opt(c, a->domain, true);
	if (*fe < 0)
		return 1;
	*be = find_backend(c, *fe, a->devid);
	if (*be == -2)
		return 1;
	if (*be < 0)
		return fail("domain %ld has no xvmsg device %u", *fe, a->devid);
	return 0;
}

static int cmd_detach(struct ctl *c, const struct ctl_args *a)
{
	char be_dir[200], fe_dir[200];
	unsigned long devid = a->devid;
	long fe, be;

	if (find_device(c, a, &fe, &be))
		return 1;
	be_path(be_dir, sizeof(be_dir), be, fe, devid);
	fe_path(fe_dir, sizeof(fe_dir), fe, devid);
	/* The backend tears the device down when its directory goes; the
	 * frontend sees its backend vanish. */
	remove_dirs(c, be_dir, fe_dir);
	return 0;
}

/* A JSON string of a value a guest or a backend domain wrote: always valid
 * JSON, bytes that are not UTF-8 become U+FFFD. */
static void json_str(const char *s)
{
	size_t n;

	putchar('"');
	while (s && *s) {
		unsigned char ch = (unsigned char)*s;

		n = 1;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else if ((n = ctl_utf8_len(s)) == 0) {
			printf("\\ufffd");
			n = 1;
		} else {
			fwrite(s, 1, n, stdout);
		}
		s += n;
	}
	putchar('"');
}

/* A value from xenstore for the table: control characters escaped. */
static const char *shown(char *buf, size_t len, const char *s, const char *dflt)
{
	return s ? ctl_printable(buf, len, s) : dflt;
}

/*
 * Every key and directory name read here is written by a backend domain (its
 * backend dirs) or a guest (its frontend dirs, its name): ids are parsed
 * before they go into a path or into the JSON, and text is escaped.
 */
static int cmd_list(struct ctl *c, const struct ctl_args *a)
{
	unsigned int nd, i, nf, j, nv, k;
	char **doms;
	long only = -1;
	int count = 0;

	if (a->domain[0] && (only = resolve_domain(c, a->domain)) < 0)
		return 1;
	doms = xs_directory(c->xs, XBT_NULL, "/local/domain", &nd);
	if (c->json)
		printf("[");
	else
		printf("%-10s %-6s %-10s %-8s %-6s %-12s %-12s %s\n", "frontend", "devid",
		       "backend", "type", "mode", "be-state", "fe-state", "params");
	for (i = 0; doms && i < nd; i++) {
		char path[200], **fes;
		unsigned int be;

		if (ctl_parse_domid(doms[i], &be))
			continue;
		snprintf(path, sizeof(path), "/local/domain/%u/backend/%s", be, XVMSG_XS_CLASS);
		fes = xs_directory(c->xs, XBT_NULL, path, &nf);
		for (j = 0; fes && j < nf; j++) {
			char dpath[200], **devs, bad[80];
			unsigned int fe;

			if (ctl_parse_domid(fes[j], &fe)) {
				fprintf(stderr, "xvmsg-ctl: skipping %s/%s: not a domain id\n", path,
					ctl_printable(bad, sizeof(bad), fes[j]));
				continue;
			}
			if (only >= 0 && (long)fe != only && (long)be != only)
				continue;
			snprintf(dpath, sizeof(dpath), "/local/domain/%u/backend/%s/%u", be,
				 XVMSG_XS_CLASS, fe);
			devs = xs_directory(c->xs, XBT_NULL, dpath, &nv);
			for (k = 0; devs && k < nv; k++) {
				char *type, *mode, *params, *bs, *fs, *err, *fname, *bname;
				char s1[160], s2[160], s3[64], s4[64], s5[600], s6[600];
				unsigned int devid;

				if (ctl_parse_devid(devs[k], &devid)) {
					fprintf(stderr, "xvmsg-ctl: skipping %s/%s: not a device id\n",
						dpath, ctl_printable(bad, sizeof(bad), devs[k]));
					continue;
				}
				type = xvmsg_xs_readf(c->xs, "%s/%u/type", dpath, devid);
				mode = xvmsg_xs_readf(c->xs, "%s/%u/mode", dpath, devid);
				params = xvmsg_xs_readf(c->xs, "%s/%u/params", dpath, devid);
				bs = xvmsg_xs_readf(c->xs, "%s/%u/state", dpath, devid);
				fs = xvmsg_xs_readf(c->xs, "/local/domain/%u/device/%s/%u/state",
						    fe, XVMSG_XS_CLASS, devid);
				err = xvmsg_xs_readf(c->xs, "%s/%u/error", dpath, devid);
				fname = xvmsg_xs_readf(c->xs, "/local/domain/%u/name", fe);
				bname = xvmsg_xs_readf(c->xs, "/local/domain/%u/name", be);
				if (c->json) {
					printf("%s{\"frontend_id\":%u,\"frontend\":", count ? "," : "",
					       fe);
					if (fname)
						json_str(fname);
					else
						printf("\"%u\"", fe);
					printf(",\"devid\":%u,\"backend_id\":%u,\"backend\":", devid, be);
					if (bname)
						json_str(bname);
					else
						printf("\"%u\"", be);
					printf(",\"type\":");
					json_str(type);
					printf(",\"mode\":");
					json_str(mode ? mode : "pool");
					printf(",\"backend_state\":");
					json_str(ctl_state_name(bs));
					printf(",\"frontend_state\":");
					json_str(ctl_state_name(fs));
					printf(",\"params\":");
					json_str(params);
					if (err) {
						printf(",\"error\":");
						json_str(err);
					}
					printf("}");
				} else {
					char fid[16], bid[16];

					snprintf(fid, sizeof(fid), "%u", fe);
					snprintf(bid, sizeof(bid), "%u", be);
					printf("%-10s %-6u %-10s %-8s %-6s %-12s %-12s %s%s%s\n",
					       shown(s1, sizeof(s1), fname, fid), devid,
					       shown(s2, sizeof(s2), bname, bid),
					       shown(s3, sizeof(s3), type, "-"),
					       shown(s4, sizeof(s4), mode, "pool"),
					       ctl_state_name(bs), ctl_state_name(fs),
					       shown(s5, sizeof(s5), params, ""),
					       err ? "  error: " : "", shown(s6, sizeof(s6), err, ""));
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

/* Has the backend answered the request want (its stats-seq)? */
static int stats_fresh(struct ctl *c, const char *be, void *want)
{
	char *seq = xvmsg_xs_readf(c->xs, "%s/%s", be, XVMSG_XS_STATS_SEQ);
	int r = seq && strcmp(seq, want) == 0;

	free(seq);
	return r;
}

struct stats_out {
	bool json;
	bool first;
};

static int print_counter(void *arg, const char *key, unsigned long long value)
{
	struct stats_out *o = arg;

	if (o->json)
		printf("%s\"%s\":%llu", o->first ? "" : ",", key, value);
	else
		printf("%-12s %llu\n", key, value);
	o->first = false;
	return 0;
}

static int cmd_stats(struct ctl *c, const struct ctl_args *a)
{
	struct stats_out o = { .json = c->json, .first = true };
	char be_dir[200], seq[32], path[256], why[256], *stats;
	long fe, be;

	if (find_device(c, a, &fe, &be))
		return 1;
	be_path(be_dir, sizeof(be_dir), be, fe, a->devid);
	snprintf(seq, sizeof(seq), "%lld-%d", now_ms(), (int)getpid());
	snprintf(path, sizeof(path), "%s/%s", be_dir, XVMSG_XS_STATS_REQUEST);
	if (!xs_write(c->xs, XBT_NULL, path, seq, (unsigned int)strlen(seq)))
		return fail("writing %s: %s", path, strerror(errno));
	if (wait_for(c, be_dir, stats_fresh, seq) <= 0)
		return fail("backend domain %ld did not answer within %d s", be, c->timeout_s);
	stats = xvmsg_xs_readf(c->xs, "%s/%s", be_dir, XVMSG_XS_STATS);
	if (!stats)
		return fail("backend wrote no counters");
	/* Checked whole before anything is printed. */
	if (ctl_parse_stats(stats, NULL, NULL, why, sizeof(why))) {
		free(stats);
		return fail("backend domain %ld wrote bad counters: %s", be, why);
	}
	if (c->json)
		printf("{");
	ctl_parse_stats(stats, print_counter, &o, why, sizeof(why));
	if (c->json)
		printf("}\n");
	free(stats);
	return 0;
}

/* Read the whole description file (or, with guest, the xl config): it is
 * checked before anything is created or attached.  Returns 0, or 1 with a
 * message. */
static int read_desc(const char *file, struct ctl_desc *desc, struct ctl_guest *guest)
{
	char *buf = malloc(CTL_FILE_MAX + 1), err[512];
	size_t len;
	FILE *f;
	int r;

	if (!buf)
		return fail("%s: out of memory", file);
	f = fopen(file, "r");
	if (!f) {
		free(buf);
		return fail("%s: %s", file, strerror(errno));
	}
	len = fread(buf, 1, CTL_FILE_MAX + 1, f);
	r = ferror(f);
	fclose(f);
	if (r) {
		free(buf);
		return fail("%s: read error", file);
	}
	if (guest)
		r = ctl_parse_xlcfg(buf, len, file, guest, err, sizeof(err));
	else
		r = ctl_parse_desc(buf, len, file, desc, err, sizeof(err));
	free(buf);
	return r ? fail("%s", err) : 0;
}

/*
 * apply FRONTEND FILE: attach every device a description file lists (the
 * format: ctl-parse.h, configs/guest.xvmsg).  The whole file is checked
 * before anything is attached; devids the file gives are kept free for
 * their lines.  Stops at the first device that fails.
 */
static int cmd_apply(struct ctl *c, const struct ctl_args *a, const struct ctl_desc *desc)
{
	unsigned int i;
	int rc = 0;

	for (i = 0; i < desc->n && !rc; i++) {
		rc = do_attach(c, a->domain, &desc->dev[i], desc, NULL);
		if (rc)
			fprintf(stderr, "xvmsg-ctl: %s:%u: device not attached%s\n", a->file,
				desc->dev[i].line, i ? " (the ones before it are)" : "");
	}
	return rc;
}

/*
 * Run xl (XVMSG_XL names it, default "xl" from PATH) with args (NULL-ended),
 * no shell.  Its stderr is ours; its stdout too, or with out, up to outlen-1
 * bytes of it go to out.  Returns its exit status, 128 + the signal that
 * ended it, or 127 if it could not be run.
 */
static int run_xl(const char *const args[], char *out, size_t outlen)
{
	const char *xl = getenv("XVMSG_XL");
	const char *argv[CTL_XL_OPTIONS_MAX + 8];
	int pipefd[2] = { -1, -1 }, status, n = 0;
	size_t used = 0;
	pid_t pid;

	argv[n++] = xl && *xl ? xl : "xl";
	while (*args && n < (int)(sizeof(argv) / sizeof(argv[0])) - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	fflush(stdout);
	if (out && pipe(pipefd))
		return 127;
	pid = fork();
	if (pid < 0) {
		if (out) {
			close(pipefd[0]);
			close(pipefd[1]);
		}
		return 127;
	}
	if (pid == 0) {
		if (out) {
			dup2(pipefd[1], 1);
			close(pipefd[0]);
			close(pipefd[1]);
		}
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "xvmsg-ctl: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (out) {
		ssize_t r;
		char sink[256];

		close(pipefd[1]);
		while ((r = read(pipefd[0], used + 1 < outlen ? out + used : sink,
				 used + 1 < outlen ? outlen - 1 - used : sizeof(sink))) > 0 ||
		       (r < 0 && errno == EINTR))
			if (r > 0 && used + 1 < outlen)
				used += (size_t)r;
		out[used] = '\0';
		close(pipefd[0]);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 127;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* What run_xl's status says, for a message. */
static const char *xl_status(int st, char *buf, size_t len)
{
	if (st == 127)
		snprintf(buf, len, "could not run xl; set XVMSG_XL if it is not on PATH");
	else if (st > 128)
		snprintf(buf, len, "xl was killed by signal %d", st - 128);
	else
		snprintf(buf, len, "xl exited with status %d", st);
	return buf;
}

/* Destroy the domain create made; says what happened. */
static void destroy_domain(const char *spec, const char *name, unsigned int n)
{
	const char *args[] = { "destroy", spec, NULL };
	char why[96];
	int st = run_xl(args, NULL, 0);

	if (st)
		fail("could not destroy the paused domain %s (%s): run 'xl destroy %s'", name,
		     xl_status(st, why, sizeof(why)), spec);
	else
		fail("domain %s destroyed%s", name,
		     n ? " and the xvmsg devices attached to it removed" : "");
}

/*
 * create GUEST.cfg [xl options]: xl create -p, attach every device the file
 * declares, xl unpause.  The file was checked whole before this runs; if a
 * step fails, the devices attached so far are removed and the paused domain
 * destroyed.  xenstore is opened only once the domain exists (c->xs NULL on
 * entry).
 */
static int cmd_create(struct ctl *c, const struct ctl_args *a, const struct ctl_guest *g)
{
	const char *args[CTL_XL_OPTIONS_MAX + 4];
	struct attached done[CTL_MAX_DEVICES];
	char out[64], domid_s[16], why[96], shown[160];
	unsigned int i, n = 0, domid;
	int k = 0, st;

	ctl_printable(shown, sizeof(shown), g->name);
	args[k++] = "create";
	args[k++] = "-p";
	for (i = 0; i < (unsigned int)a->xl_argc; i++)
		args[k++] = a->xl_argv[i];
	args[k++] = a->file;
	args[k] = NULL;
	st = run_xl(args, NULL, 0);
	if (st)
		return fail("%s: xl create -p failed (%s); nothing was created", a->file,
			    xl_status(st, why, sizeof(why)));
	args[0] = "domid";
	args[1] = g->name;
	args[2] = NULL;
	st = run_xl(args, out, sizeof(out));
	out[strcspn(out, "\n")] = '\0';
	if (st || ctl_parse_domid(out, &domid)) {
		fail("%s: xl domid %s did not give the id of the domain xl created (%s)", a->file,
		     shown, st ? xl_status(st, why, sizeof(why)) : "not a number");
		destroy_domain(g->name, shown, 0);
		return 1;
	}
	snprintf(domid_s, sizeof(domid_s), "%u", domid);
	c->xs = xs_open(0);
	if (!c->xs) {
		fail("cannot open xenstore: %s", strerror(errno));
		destroy_domain(domid_s, shown, 0);
		return 1;
	}
	for (i = 0; i < g->desc.n; i++) {
		if (do_attach(c, domid_s, &g->desc.dev[i], &g->desc, &done[n])) {
			fail("%s:%u: xvmsg entry %u (%s) not attached", a->file,
			     g->desc.dev[i].line, i + 1, g->desc.dev[i].type);
			goto undo;
		}
		n++;
	}
	args[0] = "unpause";
	args[1] = domid_s;
	st = run_xl(args, NULL, 0);
	if (st) {
		fail("xl unpause %s failed (%s)", domid_s, xl_status(st, why, sizeof(why)));
		goto undo;
	}
	return 0;
undo:
	undo_attached(c, done, n);
	destroy_domain(domid_s, shown, n);
	return 1;
}

/*
 * attach-from GUEST.cfg: attach every device the xl config declares to the
 * running domain it names.  All or nothing: if one fails, those attached
 * before it are removed again.
 */
static int cmd_attach_from(struct ctl *c, const struct ctl_args *a, const struct ctl_guest *g)
{
	struct attached done[CTL_MAX_DEVICES];
	unsigned int i;

	if (resolve_domain(c, g->name) < 0)
		return 1;
	for (i = 0; i < g->desc.n; i++) {
		if (do_attach(c, g->name, &g->desc.dev[i], &g->desc, &done[i])) {
			fail("%s:%u: xvmsg entry %u (%s) not attached%s", a->file,
			     g->desc.dev[i].line, i + 1, g->desc.dev[i].type,
			     i ? "; the ones before it are removed again" : "");
			undo_attached(c, done, i);
			return 1;
		}
	}
	return 0;
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
"      Create a device of TYPE (blk, rng, console, net) served by xvmsg-backend in\n"
"      domain BACKEND to domain FRONTEND.  PARAMS are the device's parameters\n"
"      as the backend reads them, e.g. path=/srv/disk.img,ro for blk.  Mode\n"
"      defaults to pool, the pool to 256 pages (1 MiB), 1024 (4 MiB) for net;\n"
"      a pool mode device needs at least 8 pages (blk), 6 (console), 3 (rng)\n"
"      or 32 (net).  Prints the id.\n"
"      Waits until the backend takes the device (or refuses it, or the\n"
"      timeout passes: then the device is removed again).\n"
"  apply FRONTEND FILE\n"
"      Attach every device FILE describes, one per line:\n"
"        TYPE backend=DOMAIN [params=P] [mode=M] [pool-pages=N] [devid=N]\n"
"      ('#' starts a comment; see configs/guest.xvmsg).\n"
"  create GUEST.cfg [XL-OPTIONS]\n"
"      Start a guest with its xvmsg devices: 'xl create -p' with the xl\n"
"      options given (not -c, -f, -n, -p, --dryrun or KEY=VALUE), attach\n"
"      every device of the config's xvmsg = [ ... ] list, 'xl unpause'.  If a\n"
"      step fails, removes what it attached and destroys the domain.  The\n"
"      whole file is checked first.  XVMSG_XL names the xl program.\n"
"  attach-from GUEST.cfg\n"
"      Attach every device of the config's xvmsg list to the running guest\n"
"      it names; if one fails, those attached before it are removed.\n"
"      Entries: \"TYPE, backend=DOMAIN[, mode=M][, pool-pages=N][, devid=N]\n"
"      [, device parameters]\", e.g. \"blk, backend=drv, path=/srv/d.img, ro\"\n"
"      (see configs/xvmsg-guest.cfg).\n"
"  detach FRONTEND DEVID\n"
"      Remove the device; the backend releases everything it mapped.\n"
"      FRONTEND may be the id of a domain already gone (cleans up after it).\n"
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
	struct ctl_guest *guest = NULL;
	struct ctl_args a;
	char err[512];
	int rc;

	/* Everything the user gave is checked before xenstore is opened. */
	if (ctl_parse_args(argc, argv, &a, err, sizeof(err))) {
		fprintf(stderr, "xvmsg-ctl: %s (see xvmsg-ctl --help)\n", err);
		return 2;
	}
	if (a.cmd == CTL_CMD_HELP) {
		usage();
		return 0;
	}
	c.json = a.json;
	c.timeout_s = (int)a.timeout_s;
	if (a.cmd == CTL_CMD_APPLY || a.cmd == CTL_CMD_CREATE || a.cmd == CTL_CMD_ATTACH_FROM) {
		/* apply reads a description file into guest->desc, the others an xl config */
		guest = calloc(1, sizeof(*guest));
		if (!guest)
			return fail("out of memory");
		if (read_desc(a.file, a.cmd == CTL_CMD_APPLY ? &guest->desc : NULL,
			      a.cmd == CTL_CMD_APPLY ? NULL : guest)) {
			free(guest);
			return 1;
		}
		if (a.cmd == CTL_CMD_ATTACH_FROM && guest->desc.n == 0) {
			free(guest);
			return fail("%s: declares no devices (xvmsg = [ \"TYPE, backend=DOMAIN, "
				    "...\", ... ])", a.file);
		}
	}
	if (a.cmd == CTL_CMD_CREATE) {
		/* xl first: xenstore is opened once the domain exists */
		rc = cmd_create(&c, &a, guest);
		if (c.xs)
			xs_close(c.xs);
		free(guest);
		return rc;
	}
	c.xs = xs_open(0);
	if (!c.xs) {
		free(guest);
		return fail("cannot open xenstore: %s (run in dom0 with xenstored running)",
			    strerror(errno));
	}
	switch (a.cmd) {
	case CTL_CMD_ATTACH:
		rc = do_attach(&c, a.domain, &a.dev, NULL, NULL);
		break;
	case CTL_CMD_APPLY:
		rc = cmd_apply(&c, &a, &guest->desc);
		break;
	case CTL_CMD_ATTACH_FROM:
		rc = cmd_attach_from(&c, &a, guest);
		break;
	case CTL_CMD_DETACH:
		rc = cmd_detach(&c, &a);
		break;
	case CTL_CMD_LIST:
		rc = cmd_list(&c, &a);
		break;
	case CTL_CMD_STATS:
		rc = cmd_stats(&c, &a);
		break;
	default:
		rc = 2;
	}
	xs_close(c.xs);
	free(guest);
	return rc;
}
