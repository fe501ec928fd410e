// SPDX-License-Identifier: MIT
/*
 * Configuration of xvmsg-backend.  Every error names what was wrong and
 * where; nothing here exits.
 *
 * Config file: one setting per line, '#' starts a comment.
 *   bus = loop
 *   socket = /run/xvmsg/loop.sock
 *   log-level = info
 *   full-mode = yes|no       (default: no on the loop bus, yes on xen)
 *   max-guest-fds = N
 *   max-guest-maps = N
 *   max-guest-keys = N
 *   max-guest-store-bytes = N
 *   aio = auto|io_uring|threads
 *   queue-threads = N
 *   export NAME TYPE [PARAMS]
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xvmsg/params.h>
#include <xvmsg/wire.h>

#include "config.h"
#include "core.h"
#include "fault.h"

void xvb_config_defaults(struct xvb_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->bus, "loop");
	strcpy(cfg->socket_path, "/run/xvmsg/loop.sock");
	cfg->log_level = XVB_LOG_INFO;
	/* Full mode hands the backend all of a guest's memory: only when asked
	 * for (main() keeps the Xen bus's default, where it also needs the
	 * foreign-mapping privilege of dom0). */
	cfg->allow_full = false;
	cfg->msg_revs = XVMSG_MSG_REVS_ALL;
}

static int set_aio(struct xvb_config *cfg, const char *val, char *err, size_t errlen)
{
	if (!strcmp(val, "auto"))
		cfg->aio.engine = XVB_AIO_AUTO;
	else if (!strcmp(val, "io_uring") || !strcmp(val, "uring"))
		cfg->aio.engine = XVB_AIO_URING;
	else if (!strcmp(val, "threads"))
		cfg->aio.engine = XVB_AIO_THREADS;
	else {
		snprintf(err, errlen, "aio must be auto, io_uring or threads");
		return -EINVAL;
	}
	return 0;
}

static bool valid_name(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n >= max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return false;
	return true;
}

static int check_params(void *arg, const char *key, const char *value)
{
	return 0;
}

static int add_export(struct xvb_config *cfg, const char *name, const char *type,
		      const char *params, const struct xvb_model_ops *const *models,
		      char *err, size_t errlen)
{
	struct xvb_export *x;
	unsigned int i;

	if (!valid_name(name, sizeof(x->name))) {
		snprintf(err, errlen, "export name '%s' must be 1-31 characters of [A-Za-z0-9._-]",
			 name);
		return -EINVAL;
	}
	if (!xvb_model_find(models, type)) {
		snprintf(err, errlen, "export '%s': unknown device type '%s' (blk, rng, console, net)",
			 name, type);
		return -EINVAL;
	}
	if (strlen(params) >= sizeof(x->params)) {
		snprintf(err, errlen, "export '%s': parameters longer than %zu characters", name,
			 sizeof(x->params) - 1);
		return -EINVAL;
	}
	if (xvmsg_params_parse(params, check_params, NULL)) {
		snprintf(err, errlen, "export '%s': parameters '%s' are not key=value,key,...",
			 name, params);
		return -EINVAL;
	}
	for (i = 0; i < cfg->nexports; i++) {
		if (strcmp(cfg->exports[i].name, name) == 0) {
			snprintf(err, errlen, "export '%s' defined twice", name);
			return -EEXIST;
		}
	}
	if (cfg->nexports == XVB_MAX_EXPORTS) {
		snprintf(err, errlen, "more than %d exports", XVB_MAX_EXPORTS);
		return -ENOSPC;
	}
	x = &cfg->exports[cfg->nexports++];
	snprintf(x->name, sizeof(x->name), "%s", name);
	snprintf(x->type, sizeof(x->type), "%s", type);
	snprintf(x->params, sizeof(x->params), "%s", params);
	return 0;
}

int xvb_config_add_export(struct xvb_config *cfg, const char *spec,
			  const struct xvb_model_ops *const *models, char *err, size_t errlen)
{
	char buf[512], *type, *params;

	if (strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "export specification too long");
		return -EINVAL;
	}
	strcpy(buf, spec);
	type = strchr(buf, ':');
	if (!type) {
		snprintf(err, errlen, "export '%s': expected NAME:TYPE[:PARAMS]", spec);
		return -EINVAL;
	}
	*type++ = '\0';
	params = strchr(type, ':');
	if (params)
		*params++ = '\0';
	return add_export(cfg, buf, type, params ? params : "", models, err, errlen);
}

static int set_socket(struct xvb_config *cfg, const char *v, char *err, size_t errlen)
{
	if (!*v || strlen(v) >= sizeof(cfg->socket_path)) {
		snprintf(err, errlen, "socket path must be 1-%zu characters",
			 sizeof(cfg->socket_path) - 1);
		return -EINVAL;
	}
	strcpy(cfg->socket_path, v);
	return 0;
}

static int set_bus(struct xvb_config *cfg, const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "loop") && strcmp(v, "xen")) {
		snprintf(err, errlen, "bus '%s' unknown: loop or xen", v);
		return -EINVAL;
	}
	strcpy(cfg->bus, v);
	return 0;
}

static int set_bool(bool *b, const char *v, char *err, size_t errlen)
{
	if (xvmsg_param_bool(v, b)) {	/* v is never NULL here */
		snprintf(err, errlen, "'%s' is not yes or no", v);
		return -EINVAL;
	}
	return 0;
}

static int set_poll(struct xvb_config *cfg, const char *v, char *err, size_t errlen)
{
	char *end;
	unsigned long n = strtoul(v, &end, 10);

	if (!isdigit((unsigned char)*v) || *end || n > 1000000) {
		snprintf(err, errlen, "poll-us must be 0..1000000 microseconds");
		return -EINVAL;
	}
	cfg->poll_us = (unsigned int)n;
	return 0;
}

static int set_guest_fds(struct xvb_config *cfg, const char *v, char *err, size_t errlen)
{
	char *end;
	unsigned long n = strtoul(v, &end, 10);

	if (!isdigit((unsigned char)*v) || *end || n < 4 || n > 1000000) {
		snprintf(err, errlen, "max-guest-fds must be 4..1000000 descriptors");
		return -EINVAL;
	}
	cfg->max_guest_fds = (unsigned int)n;
	return 0;
}

/* A number key = min..max into *out. */
static int set_uint(unsigned int *out, const char *key, const char *v, unsigned long min,
		    unsigned long max, const char *unit, char *err, size_t errlen)
{
	char *end;
	unsigned long n = strtoul(v, &end, 10);

	if (!isdigit((unsigned char)*v) || *end || n < min || n > max) {
		snprintf(err, errlen, "%s must be %lu..%lu %s", key, min, max, unit);
		return -EINVAL;
	}
	*out = (unsigned int)n;
	return 0;
}

/* The numeric settings that are the same in the file (KEY = N) and on the
 * command line (--KEY N): one definition of each name and range. */
static const struct uint_setting {
	const char *key;
	size_t off;		/* in struct xvb_config */
	unsigned long min, max;
	const char *unit;
} uint_settings[] = {
	{ "max-guest-maps", offsetof(struct xvb_config, max_guest_maps), 16, 16000000, "mappings" },
	{ "max-guest-keys", offsetof(struct xvb_config, max_guest_keys), 16, 1000000, "keys" },
	{ "max-guest-store-bytes", offsetof(struct xvb_config, max_guest_store_bytes), 4096,
	  1u << 30, "bytes" },
	{ "queue-threads", offsetof(struct xvb_config, queue_threads), 0, XVB_MAX_QUEUE_THREADS,
	  "threads" },
};

/* Setting key (without "--") to v if it is one of uint_settings: 0 or
 * -EINVAL with a message naming shown (the key as the user spelt it);
 * -ENOENT if key is not one of them. */
static int set_uint_setting(struct xvb_config *cfg, const char *key, const char *shown,
			    const char *v, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < sizeof(uint_settings) / sizeof(uint_settings[0]); i++) {
		const struct uint_setting *u = &uint_settings[i];

		if (!strcmp(key, u->key))
			return set_uint((unsigned int *)((char *)cfg + u->off), shown, v, u->min,
					u->max, u->unit, err, errlen);
	}
	return -ENOENT;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int load_line(struct xvb_config *cfg, char *line, const struct xvb_model_ops *const *models,
		     char *err, size_t errlen)
{
	char *eq, *key, *val;
	int rc;

	if (strncmp(line, "export", 6) == 0 && isspace((unsigned char)line[6])) {
		char *name, *type, *params, *save = NULL;

		name = strtok_r(line + 6, " \t", &save);
		type = strtok_r(NULL, " \t", &save);
		params = strtok_r(NULL, "", &save);
		if (!name || !type) {
			snprintf(err, errlen, "expected: export NAME TYPE [PARAMS]");
			return -EINVAL;
		}
		return add_export(cfg, name, type, params ? trim(params) : "", models, err, errlen);
	}
	eq = strchr(line, '=');
	if (!eq) {
		snprintf(err, errlen, "expected 'key = value' or 'export NAME TYPE [PARAMS]'");
		return -EINVAL;
	}
	*eq = '\0';
	key = trim(line);
	val = trim(eq + 1);
	if (!strcmp(key, "socket"))
		return set_socket(cfg, val, err, errlen);
	if (!strcmp(key, "bus"))
		return set_bus(cfg, val, err, errlen);
	if (!strcmp(key, "full-mode")) {
		cfg->full_given = true;
		return set_bool(&cfg->allow_full, val, err, errlen);
	}
	if (!strcmp(key, "poll-us"))
		return set_poll(cfg, val, err, errlen);
	if (!strcmp(key, "max-guest-fds"))
		return set_guest_fds(cfg, val, err, errlen);
	if (!strcmp(key, "stats-on-exit"))
		return set_bool(&cfg->stats_on_exit, val, err, errlen);
	if (!strcmp(key, "aio"))
		return set_aio(cfg, val, err, errlen);
	rc = set_uint_setting(cfg, key, key, val, err, errlen);
	if (rc != -ENOENT)
		return rc;
	if (!strcmp(key, "log-level")) {
		if (xvb_log_level_parse(val, &cfg->log_level)) {
			snprintf(err, errlen, "log-level must be err, warn, info or debug");
			return -EINVAL;
		}
		return 0;
	}
	snprintf(err, errlen, "unknown setting '%s'", key);
	return -EINVAL;
}

int xvb_config_load(struct xvb_config *cfg, const char *path,
		    const struct xvb_model_ops *const *models, char *err, size_t errlen)
{
	char line[1024], msg[400];
	unsigned int lineno = 0;
	FILE *f = fopen(path, "r");
	int rc = 0;

	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	while (fgets(line, sizeof(line), f)) {
		char *s, *hash;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, errlen, "%s:%u: line too long", path, lineno);
			rc = -EINVAL;
			break;
		}
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		s = trim(line);
		if (!*s)
			continue;
		rc = load_line(cfg, s, models, msg, sizeof(msg));
		if (rc) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, msg);
			break;
		}
	}
	if (!rc && ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		rc = -EIO;
	}
	fclose(f);
	return rc;
}

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
"Usage: %s [OPTION]...\n"
"Serve virtio devices to guests that share only a buffer pool (xvmsg).\n"
"\n"
"  -c, --config FILE        read settings from FILE (see docs/backend.md)\n"
"  -b, --bus NAME           bus to serve on: loop (default) or xen\n"
"  -s, --socket PATH        loopback bus socket (default /run/xvmsg/loop.sock)\n"
"  -e, --export NAME:TYPE[:PARAMS]\n"
"                           offer a device (loop bus; on xen the toolstack\n"
"                           names type and params); TYPE is blk, rng or console:\n"
"                             blk      path=FILE[,ro][,serial=S][,direct]\n"
"                                      [,discard=on|off][,write-zeroes=on|off]\n"
"                             rng      (no parameters)\n"
"                             console  stdio | pty[,link=PATH] | socket=PATH\n"
"      --full               allow full mode (the backend maps any guest memory;\n"
"                           default on the loop bus: off; on xen: on, and only\n"
"                           a backend in dom0 can use it)\n"
"      --no-full            refuse full mode\n"
"      --poll-us N          after work, keep polling the queues for N us\n"
"                           before sleeping (default 0: interrupt driven)\n"
"      --max-guest-fds N    loop bus: descriptors one guest may make the backend\n"
"                           hold (regions 1, event channels 1; default an\n"
"                           eighth of the fd limit, 16..1024)\n"
"      --max-guest-maps N   loop bus: mappings of one guest's memory the backend\n"
"                           may hold (default an eighth of vm.max_map_count)\n"
"      --max-guest-keys N   loop bus: store keys one guest may write (default\n"
"                           1000)\n"
"      --max-guest-store-bytes N\n"
"                           loop bus: bytes of paths and values of those keys\n"
"                           (default 262144)\n"
"      --msg-revision LIST  virtio-msg message layouts to offer, e.g. 1,2\n"
"                           (default: every one known, 1,2; docs/protocol.md)\n"
"      --stats-on-exit      print per-device counters when stopping\n"
"      --aio ENGINE         block I/O engine: auto (default: io_uring if the\n"
"                           kernel allows it, else threads), io_uring, threads\n"
"      --queue-threads N    serve blk queues on N threads of their own (0..64;\n"
"                           default 0: every queue on the event loop's thread)\n"
"      --fault NAME         misbehave on purpose, to test guests (never in\n"
"                           production; docs/backend.md says what each does):\n"
"                           used-bad-id, used-bad-len, used-dup-id, silent,\n"
"                           irq-storm, msg-bad-token, msg-rewrite,\n"
"                           vanish-handshake, keep-mapped, snoop,\n"
"                           desc-rewrite, avail-rewrite, wrong-device-id,\n"
"                           quiet-bad-id, extra-features;\n"
"                           slow-io=MS delays every block I/O by MS ms\n"
"  -l, --log-level LEVEL    err, warn, info (default) or debug\n"
"  -h, --help               show this help and exit\n"
"  -V, --version            show the version and exit\n"
"\n"
"Signals: SIGTERM/SIGINT finish writes in flight, flush and exit;\n"
"SIGUSR1 prints per-device counters to stderr.\n"
"Exit status: 0 on a clean stop, 2 on a bad configuration, 1 on other errors.\n",
		prog);
}

int xvb_config_parse_args(struct xvb_config *cfg, int argc, char **argv,
			  const struct xvb_model_ops *const *models, FILE *out,
			  char *err, size_t errlen)
{
	enum { OPT_NO_FULL = 256, OPT_FULL, OPT_STATS, OPT_POLL, OPT_FAULT, OPT_GUEST_FDS,
	       OPT_GUEST_MAPS, OPT_GUEST_KEYS, OPT_GUEST_STORE, OPT_MSG_REV, OPT_AIO,
	       OPT_QTHREADS };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "bus", required_argument, NULL, 'b' },
		{ "socket", required_argument, NULL, 's' },
		{ "export", required_argument, NULL, 'e' },
		{ "no-full", no_argument, NULL, OPT_NO_FULL },
		{ "full", no_argument, NULL, OPT_FULL },
		{ "stats-on-exit", no_argument, NULL, OPT_STATS },
		{ "poll-us", required_argument, NULL, OPT_POLL },
		{ "max-guest-fds", required_argument, NULL, OPT_GUEST_FDS },
		{ "max-guest-maps", required_argument, NULL, OPT_GUEST_MAPS },
		{ "max-guest-keys", required_argument, NULL, OPT_GUEST_KEYS },
		{ "max-guest-store-bytes", required_argument, NULL, OPT_GUEST_STORE },
		{ "fault", required_argument, NULL, OPT_FAULT },
		{ "msg-revision", required_argument, NULL, OPT_MSG_REV },
		{ "aio", required_argument, NULL, OPT_AIO },
		{ "queue-threads", required_argument, NULL, OPT_QTHREADS },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc, idx;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:b:s:e:l:hV", opts, &idx)) != -1) {
		switch (c) {
		case 'c':
			rc = xvb_config_load(cfg, optarg, models, err, errlen);
			if (rc)
				return rc;
			break;
		case 'b':
			if ((rc = set_bus(cfg, optarg, err, errlen)))
				return rc;
			break;
		case 's':
			if ((rc = set_socket(cfg, optarg, err, errlen)))
				return rc;
			break;
		case 'e':
			if ((rc = xvb_config_add_export(cfg, optarg, models, err, errlen)))
				return rc;
			break;
		case OPT_NO_FULL:
		case OPT_FULL:
			cfg->allow_full = c == OPT_FULL;
			cfg->full_given = true;
			break;
		case OPT_STATS:
			cfg->stats_on_exit = true;
			break;
		case OPT_POLL:
			if ((rc = set_poll(cfg, optarg, err, errlen)))
				return rc;
			break;
		case OPT_GUEST_FDS:
			if ((rc = set_guest_fds(cfg, optarg, err, errlen)))
				return rc;
			break;
		case OPT_GUEST_MAPS:
		case OPT_QTHREADS:
		case OPT_GUEST_KEYS:
		case OPT_GUEST_STORE: {
			const char *name = opts[idx].name;
			char shown[48];

			snprintf(shown, sizeof(shown), "--%s", name);
			if ((rc = set_uint_setting(cfg, name, shown, optarg, err, errlen)))
				return rc;
			break;
		}
		case OPT_AIO:
			if ((rc = set_aio(cfg, optarg, err, errlen)))
				return rc;
			break;
		case OPT_FAULT: {
			static const char *const names[] = XVB_FAULT_NAMES;
			int i;

			if (!strncmp(optarg, "slow-io=", 8)) {
				if ((rc = set_uint(&cfg->aio.slow_ms, "--fault slow-io", optarg + 8,
						   1, 60000, "ms", err, errlen)))
					return rc;
				break;
			}
			for (i = 0; i < (int)(sizeof(names) / sizeof(names[0])) &&
				    strcmp(names[i], optarg); i++)
				;
			if (i == (int)(sizeof(names) / sizeof(names[0]))) {
				snprintf(err, errlen, "--fault must be used-bad-id, used-bad-len, "
					 "used-dup-id, silent, irq-storm, msg-bad-token, msg-rewrite, "
					 "vanish-handshake, keep-mapped, snoop, desc-rewrite, "
					 "avail-rewrite, wrong-device-id, quiet-bad-id, extra-features "
					 "or slow-io=MS");
				return -EINVAL;
			}
			cfg->fault = i;
			break;
		}
		case OPT_MSG_REV: {
			uint32_t m;

			if (xvmsg_parse_revisions(optarg, &m) || (m & ~XVMSG_MSG_REVS_ALL)) {
				snprintf(err, errlen, "--msg-revision must list revisions of %d..%d, "
					 "such as 1,2", XVMSG_MSG_REV_MIN, XVMSG_MSG_REV_MAX);
				return -EINVAL;
			}
			cfg->msg_revs = m;
			break;
		}
		case 'l':
			if (xvb_log_level_parse(optarg, &cfg->log_level)) {
				snprintf(err, errlen, "--log-level must be err, warn, info or debug");
				return -EINVAL;
			}
			break;
		case 'h':
			usage(out, argv[0]);
			return 1;
		case 'V':
			fprintf(out, "xvmsg-backend %s (virtio-msg revision %d)\n", XVMSG_VERSION,
				XVMSG_MSG_REVISION);
			return 1;
		case ':':
			snprintf(err, errlen, "option '%s' needs an argument (see --help)",
				 argv[optind - 1]);
			return -EINVAL;
		default:
			snprintf(err, errlen, "unknown option '%s' (see --help)", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
		return -EINVAL;
	}
	if (cfg->nexports == 0 && strcmp(cfg->bus, "loop") == 0) {
		snprintf(err, errlen, "no devices to serve: give --export or an export line in --config");
		return -EINVAL;
	}
	return 0;
}
