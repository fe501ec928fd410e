// SPDX-License-Identifier: MIT
/*
 * ctl-parse: xvmsg-ctl's parsers of command lines, description files and
 * values read back from xenstore.  No xenstore, no I/O: see ctl-parse.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <xvmsg/pool.h>
#include <xvmsg/xenbus.h>

#include "ctl-parse.h"
#include "device.h"	/* xvb_params_parse */

static int say(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int say(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* A short printable form of untrusted text for messages. */
#define SHOW(buf, s) ctl_printable(buf, sizeof(buf), s)

int ctl_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	bool big = false;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		unsigned int d = (unsigned char)*s - '0';

		if (d > 9)
			return -EINVAL;
		/* v * 10 + d > max, without overflowing */
		if (big || v > max / 10 || (v == max / 10 && d > max % 10))
			big = true;
		else
			v = v * 10 + d;
	}
	if (big)
		return -ERANGE;
	*out = v;
	return 0;
}

static int parse_small(const char *s, unsigned long max, unsigned int *out)
{
	unsigned long v;
	int r = ctl_parse_uint(s, max, &v);

	if (!r)
		*out = (unsigned int)v;
	return r;
}

int ctl_parse_domid(const char *s, unsigned int *out)
{
	return parse_small(s, CTL_MAX_DOMID, out);
}

int ctl_parse_devid(const char *s, unsigned int *out)
{
	return parse_small(s, CTL_MAX_DEVID, out);
}

int ctl_parse_state(const char *s, unsigned int *out)
{
	return parse_small(s, CTL_MAX_STATE, out);
}

const char *ctl_state_name(const char *s)
{
	static const char *const names[CTL_MAX_STATE + 1] = {
		"Unknown", "Initialising", "InitWait", "Initialised", "Connected",
		"Closing", "Closed", "Reconfiguring", "Reconfigured",
	};
	unsigned int v;

	return ctl_parse_state(s, &v) ? "-" : names[v];
}

char *ctl_printable(char *out, size_t outlen, const char *s)
{
	size_t o = 0;

	if (!outlen)
		return out;
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char tmp[5];
		size_t n;

		if (ch == '\\')
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\\\");
		else if (ch >= 0x20 && ch < 0x7f)
			n = (size_t)snprintf(tmp, sizeof(tmp), "%c", ch);
		else
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", ch);
		if (o + n >= outlen)
			break;
		memcpy(out + o, tmp, n);
		o += n;
	}
	out[o] = '\0';
	return out;
}

size_t ctl_utf8_len(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned int cp;
	size_t n, i;

	if (u[0] < 0x80)
		return 1;
	if (u[0] < 0xc2)		/* continuation byte, or overlong 2-byte form */
		return 0;
	if (u[0] < 0xe0) {
		n = 2;
		cp = u[0] & 0x1f;
	} else if (u[0] < 0xf0) {
		n = 3;
		cp = u[0] & 0x0f;
	} else if (u[0] < 0xf5) {
		n = 4;
		cp = u[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((u[i] & 0xc0) != 0x80)	/* a NUL stops here too */
			return 0;
		cp = cp << 6 | (u[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* ---- devices ------------------------------------------------------------ */

void ctl_dev_init(struct ctl_dev *d)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->mode, sizeof(d->mode), "pool");
	d->pool_pages = XVMSG_DEFAULT_POOL_PAGES;
	d->wait = true;
}

static int params_ok(void *arg, const char *key, const char *value)
{
	return 0;
}

/* A domain as the user names it: 1..CTL_NAME_MAX characters, none a control
 * character.  Whether it exists is for xenstore to say. */
static int domain_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > CTL_NAME_MAX)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

int ctl_dev_set(struct ctl_dev *d, const char *key, const char *value, char *err, size_t errlen)
{
	const char *k = strncmp(key, "--", 2) ? key : key + 2;
	char shown[80];
	unsigned long v;
	int r;

	if (!value)
		return say(err, errlen, -EINVAL, "%s needs a value", key);
	SHOW(shown, value);
	if (!strcmp(k, "backend")) {
		if (!domain_ok(value))
			return say(err, errlen, -EINVAL,
				   "%s must be a domain name or id of 1..%d printable characters, "
				   "not '%s'", key, CTL_NAME_MAX, shown);
		snprintf(d->backend, sizeof(d->backend), "%s", value);
	} else if (!strcmp(k, "type")) {
		if (strcmp(value, "blk") && strcmp(value, "rng") && strcmp(value, "console"))
			return say(err, errlen, -EINVAL,
				   "device type '%s' unknown: blk, rng or console", shown);
		snprintf(d->type, sizeof(d->type), "%s", value);
	} else if (!strcmp(k, "params")) {
		if (strlen(value) > CTL_PARAMS_MAX || xvb_params_parse(value, params_ok, NULL))
			return say(err, errlen, -EINVAL,
				   "parameters '%s' are not key=value,key,... (at most %d "
				   "characters)", shown, CTL_PARAMS_MAX);
		snprintf(d->params, sizeof(d->params), "%s", value);
	} else if (!strcmp(k, "mode")) {
		if (strcmp(value, "pool") && strcmp(value, "grant") && strcmp(value, "full"))
			return say(err, errlen, -EINVAL,
				   "%s must be pool, grant or full, not '%s'", key, shown);
		snprintf(d->mode, sizeof(d->mode), "%s", value);
	} else if (!strcmp(k, "pool-pages")) {
		if (ctl_parse_uint(value, XVMSG_MAX_POOL_PAGES, &v) || v == 0)
			return say(err, errlen, -EINVAL, "%s must be 1..%d, not '%s'", key,
				   XVMSG_MAX_POOL_PAGES, shown);
		d->pool_pages = v;
	} else if (!strcmp(k, "devid")) {
		r = ctl_parse_devid(value, &d->devid);
		if (r)
			return say(err, errlen, -EINVAL, "%s must be 0..%d, not '%s'", key,
				   CTL_MAX_DEVID, shown);
		d->have_devid = true;
	} else {
		return say(err, errlen, -ENOENT, "unknown key '%s'", key);
	}
	return 0;
}

/* Checks across keys, once all are set: a pool mode device's pool must be
 * large enough for its type (include/xvmsg/pool.h). */
static int dev_check(const struct ctl_dev *d, char *err, size_t errlen)
{
	unsigned int min = xvmsg_min_pool_pages(d->type);

	if (!strcmp(d->mode, "pool") && d->pool_pages < min)
		return say(err, errlen, -EINVAL,
			   "pool-pages must be at least %u for %s in pool mode, not %lu", min,
			   d->type, d->pool_pages);
	return 0;
}

/* ---- description files -------------------------------------------------- */

#define DESC_SEP " \t\r"

static const char *const desc_keys[] = { "backend", "params", "mode", "pool-pages", "devid" };
#define DESC_NKEYS (sizeof(desc_keys) / sizeof(desc_keys[0]))

/* One line, NUL-terminated, comment and '\n' gone.  Returns 0 with a device
 * in d, 1 for a blank line, or -EINVAL with the reason (no file:line). */
static int desc_line(char *line, struct ctl_dev *d, char *err, size_t errlen)
{
	bool seen[DESC_NKEYS] = { false };
	char *save = NULL, *tok = strtok_r(line, DESC_SEP, &save);
	char shown[80];
	unsigned int i;
	int r;

	if (!tok)
		return 1;
	ctl_dev_init(d);
	r = ctl_dev_set(d, "type", tok, err, errlen);
	if (r)
		return r;
	while ((tok = strtok_r(NULL, DESC_SEP, &save))) {
		char *eq = strchr(tok, '=');

		if (!eq)
			return say(err, errlen, -EINVAL, "'%s' is not key=value", SHOW(shown, tok));
		*eq++ = '\0';
		for (i = 0; i < DESC_NKEYS && strcmp(tok, desc_keys[i]); i++)
			;
		if (i == DESC_NKEYS)
			return say(err, errlen, -EINVAL,
				   "unknown key '%s' (backend, params, mode, pool-pages, devid)",
				   SHOW(shown, tok));
		if (seen[i])
			return say(err, errlen, -EINVAL, "key '%s' given twice", desc_keys[i]);
		seen[i] = true;
		r = ctl_dev_set(d, tok, eq, err, errlen);
		if (r)
			return r;
	}
	if (!seen[0])
		return say(err, errlen, -EINVAL, "backend=DOMAIN missing");
	return dev_check(d, err, errlen);
}

int ctl_parse_desc(const char *buf, size_t len, const char *name, struct ctl_desc *d,
		   char *err, size_t errlen)
{
	char line[CTL_LINE_MAX + 2], why[256];
	unsigned int lineno = 0, i;
	size_t pos = 0;

	d->n = 0;
	if (len > CTL_FILE_MAX)
		return say(err, errlen, -E2BIG, "%s: larger than %d bytes", name, CTL_FILE_MAX);
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		struct ctl_dev *dev;
		char *hash;
		int r;

		lineno++;
		if (n > CTL_LINE_MAX)
			return say(err, errlen, -EINVAL, "%s:%u: line longer than %d characters",
				   name, lineno, CTL_LINE_MAX);
		if (memchr(buf + pos, '\0', n))
			return say(err, errlen, -EINVAL, "%s:%u: NUL byte (not a text file?)",
				   name, lineno);
		memcpy(line, buf + pos, n);
		line[n] = '\0';
		pos += n + (nl != NULL);
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		if (line[strspn(line, DESC_SEP)] == '\0')
			continue;
		if (d->n == CTL_MAX_DEVICES)
			return say(err, errlen, -E2BIG, "%s:%u: more than %d devices", name, lineno,
				   CTL_MAX_DEVICES);
		dev = &d->dev[d->n];
		why[0] = '\0';
		r = desc_line(line, dev, why, sizeof(why));
		if (r < 0)
			return say(err, errlen, -EINVAL, "%s:%u: %s", name, lineno, why);
		dev->line = lineno;
		for (i = 0; dev->have_devid && i < d->n; i++)
			if (d->dev[i].have_devid && d->dev[i].devid == dev->devid)
				return say(err, errlen, -EINVAL,
					   "%s:%u: devid %u already used on line %u", name, lineno,
					   dev->devid, d->dev[i].line);
		d->n++;
	}
	if (d->n == 0)
		return say(err, errlen, -EINVAL, "%s: no devices", name);
	return 0;
}

/* ---- command line ------------------------------------------------------- */

static int set_domain(char *out, const char *what, const char *s, char *err, size_t errlen)
{
	char shown[80];

	if (!domain_ok(s))
		return say(err, errlen, -EINVAL,
			   "%s must be a domain name or id of 1..%d printable characters, not '%s'",
			   what, CTL_NAME_MAX, SHOW(shown, s));
	snprintf(out, CTL_NAME_MAX + 1, "%s", s);
	return 0;
}

/* An option of attach at argv[*i]: "--key value", "--key=value", "-k value",
 * "-kvalue", or a flag.  Advances *i past what it used.  Returns 0, 1 if
 * argv[*i] is not an option, or -EINVAL. */
static int attach_option(int argc, char *const argv[], int *i, struct ctl_dev *d,
			 char *err, size_t errlen)
{
	static const struct { char s; const char *l; } opts[] = {
		{ 'm', "--mode" }, { 'p', "--pool-pages" }, { 'd', "--devid" },
	};
	const char *a = argv[*i], *value = NULL, *key = NULL;
	char shown[80];
	unsigned int k;

	if (a[0] != '-' || a[1] == '\0')
		return 1;
	if (!strcmp(a, "--no-wait") || !strcmp(a, "-n")) {
		d->wait = false;
		(*i)++;
		return 0;
	}
	for (k = 0; k < sizeof(opts) / sizeof(opts[0]) && !key; k++) {
		size_t l = strlen(opts[k].l);

		if (!strncmp(a, opts[k].l, l) && (a[l] == '\0' || a[l] == '=')) {
			key = opts[k].l;
			value = a[l] == '=' ? a + l + 1 : NULL;
		} else if (a[1] == opts[k].s) {
			key = opts[k].l;
			value = a[2] ? a + 2 : NULL;
		}
	}
	if (!key)
		return say(err, errlen, -EINVAL, "attach: unknown option '%s'", SHOW(shown, a));
	if (!value) {
		if (*i + 1 >= argc)
			return say(err, errlen, -EINVAL, "%s needs a value", key);
		value = argv[++*i];
	}
	(*i)++;
	return ctl_dev_set(d, key, value, err, errlen) ? -EINVAL : 0;
}

static int parse_attach(int argc, char *const argv[], struct ctl_args *a, char *err,
			size_t errlen)
{
	const char *pos[5];
	int i = 1, npos = 0, r;
	bool dashdash = false;

	ctl_dev_init(&a->dev);
	while (i < argc) {
		if (!dashdash && !strcmp(argv[i], "--")) {
			dashdash = true;
			i++;
			continue;
		}
		r = dashdash ? 1 : attach_option(argc, argv, &i, &a->dev, err, errlen);
		if (r < 0)
			return r;
		if (r == 0)
			continue;
		if (npos == 4)
			return say(err, errlen, -EINVAL,
				   "usage: attach FRONTEND BACKEND TYPE [PARAMS] [options]");
		pos[npos++] = argv[i++];
	}
	if (npos < 3)
		return say(err, errlen, -EINVAL,
			   "usage: attach FRONTEND BACKEND TYPE [PARAMS] [options]");
	if (set_domain(a->domain, "FRONTEND", pos[0], err, errlen) ||
	    ctl_dev_set(&a->dev, "backend", pos[1], err, errlen) ||
	    ctl_dev_set(&a->dev, "type", pos[2], err, errlen) ||
	    (npos == 4 && ctl_dev_set(&a->dev, "params", pos[3], err, errlen)))
		return -EINVAL;
	return dev_check(&a->dev, err, errlen);
}

static int parse_devid_arg(const char *s, unsigned int *devid, char *err, size_t errlen)
{
	char shown[80];

	if (ctl_parse_devid(s, devid))
		return say(err, errlen, -EINVAL, "device id '%s' is not a number 0..%d",
			   SHOW(shown, s), CTL_MAX_DEVID);
	return 0;
}

int ctl_parse_args(int argc, char *const argv[], struct ctl_args *a, char *err, size_t errlen)
{
	char shown[80];
	unsigned long t;
	const char *cmd;
	int i;

	memset(a, 0, sizeof(*a));
	a->timeout_s = 10;
	ctl_dev_init(&a->dev);
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--json")) {
			a->json = true;
		} else if (!strcmp(argv[i], "--timeout")) {
			if (i + 1 >= argc || ctl_parse_uint(argv[i + 1], CTL_MAX_TIMEOUT, &t) || !t)
				return say(err, errlen, -EINVAL, "--timeout must be 1..%d seconds",
					   CTL_MAX_TIMEOUT);
			a->timeout_s = (unsigned int)t;
			i++;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			a->cmd = CTL_CMD_HELP;
			return 0;
		} else {
			return say(err, errlen, -EINVAL, "unknown option '%s'", SHOW(shown, argv[i]));
		}
	}
	if (i >= argc)
		return say(err, errlen, -EINVAL, "no command given");
	cmd = argv[i];
	argc -= i;
	argv += i;
	if (!strcmp(cmd, "attach")) {
		a->cmd = CTL_CMD_ATTACH;
		return parse_attach(argc, argv, a, err, errlen);
	}
	if (!strcmp(cmd, "apply")) {
		a->cmd = CTL_CMD_APPLY;
		if (argc != 3)
			return say(err, errlen, -EINVAL, "usage: apply FRONTEND FILE");
		a->file = argv[2];
		return set_domain(a->domain, "FRONTEND", argv[1], err, errlen);
	}
	if (!strcmp(cmd, "detach") || !strcmp(cmd, "stats")) {
		a->cmd = cmd[0] == 'd' ? CTL_CMD_DETACH : CTL_CMD_STATS;
		if (argc != 3)
			return say(err, errlen, -EINVAL, "usage: %s FRONTEND DEVID", cmd);
		if (set_domain(a->domain, "FRONTEND", argv[1], err, errlen))
			return -EINVAL;
		return parse_devid_arg(argv[2], &a->devid, err, errlen);
	}
	if (!strcmp(cmd, "list")) {
		a->cmd = CTL_CMD_LIST;
		if (argc > 2)
			return say(err, errlen, -EINVAL, "usage: list [DOMAIN]");
		return argc == 2 ? set_domain(a->domain, "DOMAIN", argv[1], err, errlen) : 0;
	}
	return say(err, errlen, -EINVAL, "unknown command '%s'", SHOW(shown, cmd));
}

/* ---- counters ----------------------------------------------------------- */

static int stats_walk(const char *line,
		      int (*fn)(void *arg, const char *key, unsigned long long value), void *arg,
		      char *err, size_t errlen)
{
	char keys[CTL_STATS_KEYS][CTL_STATS_KEY_MAX + 1], shown[80], num[24];
	unsigned int n = 0, i;
	const char *p = line;

	while (*p) {
		size_t tlen, klen;
		const char *eq;
		unsigned long long v = 0;
		const char *q;

		if (*p == ' ') {
			p++;
			continue;
		}
		tlen = strcspn(p, " ");
		eq = memchr(p, '=', tlen);
		klen = eq ? (size_t)(eq - p) : tlen;
		snprintf(num, sizeof(num), "%.*s", (int)(klen < 20 ? klen : 20), p);
		if (!eq)
			return say(err, errlen, -EINVAL, "counter '%s' has no value",
				   SHOW(shown, num));
		if (klen == 0 || klen > CTL_STATS_KEY_MAX)
			return say(err, errlen, -EINVAL, "counter name '%s' empty or over %d characters",
				   SHOW(shown, num), CTL_STATS_KEY_MAX);
		for (q = p; q < eq; q++)
			if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_'))
				return say(err, errlen, -EINVAL,
					   "counter name '%s' is not [a-z0-9_]", SHOW(shown, num));
		if (n == CTL_STATS_KEYS)
			return say(err, errlen, -EINVAL, "more than %d counters", CTL_STATS_KEYS);
		memcpy(keys[n], p, klen);
		keys[n][klen] = '\0';
		for (i = 0; i < n; i++)
			if (!strcmp(keys[i], keys[n]))
				return say(err, errlen, -EINVAL, "counter '%s' given twice", keys[n]);
		if (eq + 1 == p + tlen)
			return say(err, errlen, -EINVAL, "counter '%s' has an empty value", keys[n]);
		for (q = eq + 1; q < p + tlen; q++) {
			unsigned int d = (unsigned char)*q - '0';

			if (d > 9)
				return say(err, errlen, -EINVAL, "counter '%s' is not a number",
					   keys[n]);
			if (v > (~0ULL - d) / 10)
				return say(err, errlen, -EINVAL, "counter '%s' over 64 bits", keys[n]);
			v = v * 10 + d;
		}
		if (fn) {
			int r = fn(arg, keys[n], v);

			if (r)
				return r;
		}
		n++;
		p += tlen;
	}
	return 0;
}

int ctl_parse_stats(const char *line,
		    int (*fn)(void *arg, const char *key, unsigned long long value), void *arg,
		    char *err, size_t errlen)
{
	int r;

	if (!line)
		return say(err, errlen, -EINVAL, "no counters");
	if (strnlen(line, CTL_STATS_MAX + 1) > CTL_STATS_MAX)
		return say(err, errlen, -EINVAL, "counters longer than %d bytes", CTL_STATS_MAX);
	r = stats_walk(line, NULL, NULL, err, errlen);
	return r ? r : stats_walk(line, fn, arg, err, errlen);
}
