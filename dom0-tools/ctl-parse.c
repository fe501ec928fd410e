// SPDX-License-Identifier: MIT
/*
 * ctl-parse: xvmsg-ctl's parsers of command lines, description files and
 * values read back from xenstore.  No xenstore, no I/O: see ctl-parse.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <xvmsg/params.h>
#include <xvmsg/pool.h>
#include <xvmsg/wire.h>

#include "ctl-parse.h"

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
	d->pool_pages = 0;	/* not given: dev_check() sets the type's default */
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
		if (strcmp(value, "blk") && strcmp(value, "rng") && strcmp(value, "console") &&
		    strcmp(value, "net"))
			return say(err, errlen, -EINVAL,
				   "device type '%s' unknown: blk, rng, console or net", shown);
		snprintf(d->type, sizeof(d->type), "%s", value);
	} else if (!strcmp(k, "params")) {
		if (strlen(value) > CTL_PARAMS_MAX || xvmsg_params_parse(value, params_ok, NULL))
			return say(err, errlen, -EINVAL,
				   "parameters '%s' are not key=value,key,... (at most %d "
				   "characters)", shown, CTL_PARAMS_MAX);
		snprintf(d->params, sizeof(d->params), "%s", value);
	} else if (!strcmp(k, "mode")) {
		enum xvmsg_mode m;

		if (xvmsg_parse_mode(value, &m))
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

/* Checks across keys, once all are set: the type's default pool if none
 * was given, and a pool mode device's pool large enough for its type
 * (include/xvmsg/pool.h). */
static int dev_check(struct ctl_dev *d, char *err, size_t errlen)
{
	unsigned int min = xvmsg_min_pool_pages(d->type);

	if (!d->pool_pages)
		d->pool_pages = xvmsg_default_pool_pages(d->type);

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

/* ---- xl configs: entries of xvmsg = [ ... ] ------------------------------ */

/* A device parameter an entry may give, and whether it takes a value. */
struct entry_param {
	const char *type;
	const char *key;
	bool value;
	bool on_off;		/* the value is on or off */
	uint32_t max;		/* else a number 1..max (0: any text) */
};

static const struct entry_param entry_params[] = {
	{ "blk", "path", true, false, 0 },
	{ "blk", "ro", false, false, 0 },
	{ "blk", "serial", true, false, 0 },
	{ "blk", "direct", false, false, 0 },
	{ "blk", "discard", true, true, 0 },
	{ "blk", "write-zeroes", true, true, 0 },
	{ "blk", "queues", true, false, 16 },
	{ "console", "stdio", false, false, 0 },
	{ "console", "pty", false, false, 0 },
	{ "console", "link", true, false, 0 },
	{ "console", "socket", true, false, 0 },
	{ "net", "tap", true, false, 0 },
	{ "net", "mac", true, false, 0 },
	{ "net", "offload", true, true, 0 },
	{ "net", "mrg-rxbuf", true, true, 0 },
};
#define ENTRY_NPARAMS (sizeof(entry_params) / sizeof(entry_params[0]))

static const char *const entry_keys[] = { "backend", "mode", "pool-pages", "devid" };
#define ENTRY_NKEYS (sizeof(entry_keys) / sizeof(entry_keys[0]))

static char *trim(char *s)
{
	char *e;

	s += strspn(s, " \t");
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

/* The keys an entry of type may have, for messages. */
static void entry_key_list(const char *type, char *out, size_t len)
{
	size_t o = (size_t)snprintf(out, len, "backend, mode, pool-pages, devid");
	unsigned int i;

	for (i = 0; i < ENTRY_NPARAMS && o < len; i++)
		if (!strcmp(entry_params[i].type, type))
			o += (size_t)snprintf(out + o, len - o, ", %s", entry_params[i].key);
}

static int entry_param_check(struct ctl_dev *d, const bool *seen, char *err, size_t errlen)
{
	unsigned int i, consoles = 0;
	bool pty = false, link = false, path = false, tap = false;

	for (i = 0; i < ENTRY_NPARAMS; i++) {
		if (!seen[i])
			continue;
		if (!strcmp(entry_params[i].key, "path"))
			path = true;
		else if (!strcmp(entry_params[i].key, "tap"))
			tap = true;
		else if (!strcmp(entry_params[i].key, "link"))
			link = true;
		else if (!strcmp(entry_params[i].key, "pty"))
			pty = true, consoles++;
		else if (!strcmp(entry_params[i].type, "console"))
			consoles++;
	}
	if (!strcmp(d->type, "blk") && !path)
		return say(err, errlen, -EINVAL, "blk needs path=FILE");
	if (!strcmp(d->type, "net") && !tap)
		return say(err, errlen, -EINVAL, "net needs tap=NAME");
	if (!strcmp(d->type, "console") && consoles != 1)
		return say(err, errlen, -EINVAL, "console needs exactly one of stdio, pty, socket=PATH");
	if (link && !pty)
		return say(err, errlen, -EINVAL, "link= goes with pty only");
	return 0;
}

/* The item *rest starts with, cut at its comma and trimmed; *rest moves past
 * the comma, or becomes NULL after the last item. */
static char *next_item(char **rest)
{
	char *item = *rest;

	*rest = strchr(item, ',');
	if (*rest)
		*(*rest)++ = '\0';
	return trim(item);
}

int ctl_parse_entry(const char *entry, struct ctl_dev *d, char *err, size_t errlen)
{
	bool seen_key[ENTRY_NKEYS] = { false }, seen_param[ENTRY_NPARAMS] = { false };
	char buf[CTL_LINE_MAX + 1], params[CTL_LINE_MAX + 1], shown[80], keys[160];
	char *save = NULL, *item;
	size_t plen = 0;
	unsigned int i;
	int r;

	ctl_dev_init(d);
	params[0] = '\0';
	if (strlen(entry) > CTL_LINE_MAX)
		return say(err, errlen, -EINVAL, "entry longer than %d characters", CTL_LINE_MAX);
	snprintf(buf, sizeof(buf), "%s", entry);
	/* The type: everything up to the first comma. */
	save = buf;
	item = next_item(&save);
	if (!*item)
		return say(err, errlen, -EINVAL, "no device type (blk, rng, console or net) first");
	if (strchr(item, '='))
		return say(err, errlen, -EINVAL,
			   "the device type (blk, rng, console or net) comes first, not '%s'",
			   SHOW(shown, item));
	r = ctl_dev_set(d, "type", item, err, errlen);
	if (r)
		return -EINVAL;
	entry_key_list(d->type, keys, sizeof(keys));
	while (save) {
		char *eq, *value;

		item = next_item(&save);
		if (!*item)
			return say(err, errlen, -EINVAL, "empty item between commas");
		eq = strchr(item, '=');
		value = NULL;
		if (eq) {
			*eq = '\0';
			value = trim(eq + 1);
			item = trim(item);
		}
		for (i = 0; i < ENTRY_NKEYS && strcmp(item, entry_keys[i]); i++)
			;
		if (i < ENTRY_NKEYS) {
			if (seen_key[i])
				return say(err, errlen, -EINVAL, "key '%s' given twice", entry_keys[i]);
			seen_key[i] = true;
			if (!value || !*value)
				return say(err, errlen, -EINVAL, "%s= needs a value", entry_keys[i]);
			if (ctl_dev_set(d, item, value, err, errlen))
				return -EINVAL;
			continue;
		}
		for (i = 0; i < ENTRY_NPARAMS; i++)
			if (!strcmp(entry_params[i].type, d->type) &&
			    !strcmp(entry_params[i].key, item))
				break;
		if (i == ENTRY_NPARAMS)
			return say(err, errlen, -EINVAL, "unknown key '%s' for %s (%s)",
				   SHOW(shown, item), d->type, keys);
		if (seen_param[i])
			return say(err, errlen, -EINVAL, "key '%s' given twice", item);
		seen_param[i] = true;
		if (entry_params[i].value && (!value || !*value))
			return say(err, errlen, -EINVAL, "%s= needs a value", item);
		if (!entry_params[i].value && value)
			return say(err, errlen, -EINVAL, "%s takes no value", item);
		if (entry_params[i].on_off && strcmp(value, "on") && strcmp(value, "off"))
			return say(err, errlen, -EINVAL, "%s= must be on or off, not '%s'", item,
				   SHOW(shown, value));
		if (entry_params[i].max) {
			uint32_t n;

			if (xvmsg_parse_u32(value, &n) || n < 1 || n > entry_params[i].max)
				return say(err, errlen, -EINVAL, "%s= must be 1..%u, not '%s'", item,
					   entry_params[i].max, SHOW(shown, value));
		}
		if (value && strchr(value, '='))
			return say(err, errlen, -EINVAL, "the value of %s= holds a '='", item);
		plen += (size_t)snprintf(params + plen, sizeof(params) - plen, "%s%s%s%s",
					 plen ? "," : "", item, value ? "=" : "", value ? value : "");
		if (plen >= sizeof(params))
			return say(err, errlen, -EINVAL, "device parameters too long");
	}
	if (!seen_key[0])
		return say(err, errlen, -EINVAL, "backend=DOMAIN missing");
	r = entry_param_check(d, seen_param, err, errlen);
	if (r)
		return r;
	if (plen && ctl_dev_set(d, "params", params, err, errlen))
		return -EINVAL;
	return dev_check(d, err, errlen);
}

/* ---- xl configs: the file ------------------------------------------------ */

enum xl_tok { XL_EOF, XL_END, XL_IDENT, XL_ATOM, XL_SET, XL_ADD, XL_OPEN, XL_CLOSE, XL_COMMA };

#define XL_DEPTH 16	/* lists nested deeper are refused */

struct xl_lex {
	const char *p, *end;
	const char *file;
	unsigned int line;	/* of the next character */
	unsigned int tok_line;	/* of the last token */
	bool newline;		/* the last XL_END was a newline, not ';' */
	/* XL_IDENT and XL_ATOM: the text, decoded, truncated to CTL_LINE_MAX */
	char text[CTL_LINE_MAX + 1];
	bool long_text;		/* text was truncated */
	bool odd_escape;	/* a string held an escape other than \" \' \\ */
	char *err;
	size_t errlen;
};

static int xl_error(struct xl_lex *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int xl_error(struct xl_lex *l, const char *fmt, ...)
{
	char why[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return say(l->err, l->errlen, -EINVAL, "%s:%u: %s", l->file, l->tok_line, why);
}

static void xl_put(struct xl_lex *l, size_t *n, char c)
{
	if (*n < CTL_LINE_MAX)
		l->text[(*n)++] = c;
	else
		l->long_text = true;
}

/* A quoted string at l->p (its quote): decoded into text. */
static int xl_string(struct xl_lex *l)
{
	char q = *l->p++;
	size_t n = 0;

	for (;;) {
		char c;

		if (l->p == l->end || *l->p == '\n')
			return xl_error(l, "string not closed on its line");
		c = *l->p++;
		if (c == q)
			break;
		if (c == '\0')
			return xl_error(l, "NUL byte (not a text file?)");
		if (c != '\\') {
			xl_put(l, &n, c);
			continue;
		}
		if (l->p == l->end || *l->p == '\n')
			return xl_error(l, "string not closed on its line");
		c = *l->p++;
		if (c != '"' && c != '\'' && c != '\\') {
			/* xl knows more escapes; only strings xvmsg-ctl skips may use them */
			l->odd_escape = true;
			xl_put(l, &n, '\\');
		}
		xl_put(l, &n, c);
	}
	l->text[n] = '\0';
	return XL_ATOM;
}

static bool xl_in(char c, const char *set)
{
	return c && strchr(set, c);
}

/* The next token, or -EINVAL. */
static int xl_next(struct xl_lex *l)
{
	size_t n = 0;
	char shown[16];

	l->long_text = false;
	l->odd_escape = false;
	while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\r'))
		l->p++;
	if (l->p < l->end && *l->p == '#')
		while (l->p < l->end && *l->p != '\n')
			l->p++;
	l->tok_line = l->line;
	if (l->p == l->end)
		return XL_EOF;
	switch (*l->p) {
	case '\n':
		l->p++;
		l->line++;
		l->newline = true;
		return XL_END;
	case ';':
		l->p++;
		l->newline = false;
		return XL_END;
	case '=':
		l->p++;
		return XL_SET;
	case '+':
		if (l->p + 1 < l->end && l->p[1] == '=') {
			l->p += 2;
			return XL_ADD;
		}
		break;
	case '[':
		l->p++;
		return XL_OPEN;
	case ']':
		l->p++;
		return XL_CLOSE;
	case ',':
		l->p++;
		return XL_COMMA;
	case '"':
	case '\'':
		return xl_string(l);
	case '\0':
		return xl_error(l, "NUL byte (not a text file?)");
	}
	if (*l->p >= 'a' && *l->p <= 'z') {
		while (l->p < l->end && (xl_in(*l->p, "._0123456789") || (*l->p >= 'a' && *l->p <= 'z')))
			xl_put(l, &n, *l->p++);
		l->text[n] = '\0';
		return XL_IDENT;
	}
	if (*l->p >= '0' && *l->p <= '9') {
		while (l->p < l->end && xl_in(*l->p, "0123456789abcdefx"))
			xl_put(l, &n, *l->p++);
		l->text[n] = '\0';
		return XL_ATOM;
	}
	ctl_printable(shown, sizeof(shown), (char[]){ *l->p, '\0' });
	return xl_error(l, "unexpected '%s' (not xl config syntax)", shown);
}

/* Skip newlines inside a list; returns the first other token. */
static int xl_next_nl(struct xl_lex *l)
{
	int t;

	while ((t = xl_next(l)) == XL_END && l->newline)
		;
	return t;
}

/* The key a value belongs to, and what is done with its atoms. */
enum xl_key { XL_OTHER, XL_NAME, XL_XVMSG };

static int xl_add_entry(struct xl_lex *l, struct ctl_guest *g)
{
	char why[256] = "", shown[200];
	struct ctl_dev *dev;

	if (l->long_text)
		return xl_error(l, "xvmsg entry longer than %d characters", CTL_LINE_MAX);
	if (l->odd_escape)
		return xl_error(l, "xvmsg entry with a backslash escape other than \\\" \\' \\\\");
	if (g->desc.n == CTL_MAX_DEVICES)
		return xl_error(l, "more than %d xvmsg devices", CTL_MAX_DEVICES);
	dev = &g->desc.dev[g->desc.n];
	if (ctl_parse_entry(l->text, dev, why, sizeof(why)))
		return xl_error(l, "xvmsg entry \"%s\": %s", SHOW(shown, l->text), why);
	dev->line = l->tok_line;
	g->desc.n++;
	return 0;
}

static int xl_set_name(struct xl_lex *l, struct ctl_guest *g, bool add)
{
	size_t have = add ? strlen(g->name) : 0;

	if (l->long_text || have + strlen(l->text) > CTL_NAME_MAX)
		return xl_error(l, "name longer than %d characters", CTL_NAME_MAX);
	if (l->odd_escape)
		return xl_error(l, "name with a backslash escape other than \\\" \\' \\\\");
	snprintf(g->name + have, sizeof(g->name) - have, "%s", l->text);
	g->name_line = l->tok_line;
	return 0;
}

/* A value whose first token t has been read.  Returns 0 or -EINVAL. */
static int xl_value(struct xl_lex *l, int t, enum xl_key key, bool add, unsigned int depth,
		    struct ctl_guest *g)
{
	if (t < 0)
		return t;
	if (t == XL_ATOM) {
		if (key == XL_NAME && depth == 0)
			return xl_set_name(l, g, add);
		if (key == XL_NAME)
			return xl_error(l, "name must be a string, not a list");
		if (key == XL_XVMSG && depth == 0)
			return xl_error(l, "xvmsg must be a list: xvmsg = [ \"TYPE, backend=DOMAIN, ...\", ... ]");
		if (key == XL_XVMSG)
			return xl_add_entry(l, g);
		return 0;
	}
	if (t != XL_OPEN)
		return xl_error(l, "expected a value: \"string\", number or [ list ]");
	if (key == XL_XVMSG && depth > 0)
		return xl_error(l, "xvmsg entries are strings, not lists");
	if (depth == XL_DEPTH)
		return xl_error(l, "lists nested deeper than %d", XL_DEPTH);
	if (key == XL_XVMSG && !add)
		g->desc.n = 0;
	t = xl_next_nl(l);
	if (t == XL_CLOSE)
		return 0;
	for (;;) {
		int r = xl_value(l, t, key, add, depth + 1, g);

		if (r)
			return r;
		t = xl_next_nl(l);
		if (t < 0)
			return t;
		if (t == XL_CLOSE)
			return 0;
		if (t != XL_COMMA)
			return xl_error(l, "expected ',' or ']' in a list");
		t = xl_next_nl(l);
		if (t == XL_CLOSE)
			return 0;
	}
}

static int xl_check_devs(const struct ctl_desc *d, const char *file, char *err, size_t errlen)
{
	unsigned int i, j;

	for (i = 0; i < d->n; i++)
		for (j = 0; j < i; j++) {
			const struct ctl_dev *a = &d->dev[j], *b = &d->dev[i];

			if (a->have_devid && b->have_devid && a->devid == b->devid)
				return say(err, errlen, -EINVAL,
					   "%s:%u: devid %u already used by the entry on line %u",
					   file, b->line, b->devid, a->line);
			if (!strcmp(a->type, b->type) && !strcmp(a->backend, b->backend) &&
			    !strcmp(a->params, b->params))
				return say(err, errlen, -EINVAL,
					   "%s:%u: the same device (%s from %s%s%s) as the entry on "
					   "line %u", file, b->line, b->type, b->backend,
					   b->params[0] ? ", " : "", b->params, a->line);
		}
	return 0;
}

int ctl_parse_xlcfg(const char *buf, size_t len, const char *name, struct ctl_guest *g,
		    char *err, size_t errlen)
{
	struct xl_lex l = {
		.p = buf, .end = buf + len, .file = name, .line = 1, .err = err, .errlen = errlen,
	};
	int t, r;

	memset(g->name, 0, sizeof(g->name));
	g->name_line = 0;
	g->desc.n = 0;
	if (len > CTL_FILE_MAX)
		return say(err, errlen, -E2BIG, "%s: larger than %d bytes", name, CTL_FILE_MAX);
	while ((t = xl_next(&l)) != XL_EOF) {
		enum xl_key key = XL_OTHER;
		bool add;

		if (t < 0)
			return t;
		if (t == XL_END)
			continue;
		if (t != XL_IDENT)
			return xl_error(&l, "expected a KEY = VALUE statement");
		if (!strcmp(l.text, "name"))
			key = XL_NAME;
		else if (!strcmp(l.text, "xvmsg"))
			key = XL_XVMSG;
		t = xl_next(&l);
		if (t < 0)
			return t;
		if (t != XL_SET && t != XL_ADD)
			return xl_error(&l, "expected '=' or '+=' after the key");
		add = t == XL_ADD;
		r = xl_value(&l, xl_next(&l), key, add, 0, g);
		if (r)
			return r;
		t = xl_next(&l);
		if (t < 0)
			return t;
		if (t != XL_END && t != XL_EOF)
			return xl_error(&l, "expected the end of the statement (a newline or ';')");
		if (t == XL_EOF)
			break;
	}
	if (!g->name_line)
		return say(err, errlen, -EINVAL, "%s: no name = \"GUEST\" (the domain's name)", name);
	if (!domain_ok(g->name))
		return say(err, errlen, -EINVAL, "%s:%u: name must be 1..%d printable characters",
			   name, g->name_line, CTL_NAME_MAX);
	return xl_check_devs(&g->desc, name, err, errlen);
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

/* xl create's options that create passes on: each must start with '-'; those
 * that would attach a console, read another file, not create the domain, or
 * pause it (create does that itself) are refused. */
static int check_xl_options(int argc, char *const argv[], char *err, size_t errlen)
{
	static const char *const refused[] = { "-c", "-f", "-n", "-p", "--dryrun" };
	char shown[80];
	unsigned int k;
	int i;

	if (argc > CTL_XL_OPTIONS_MAX)
		return say(err, errlen, -EINVAL, "create: more than %d xl options",
			   CTL_XL_OPTIONS_MAX);
	for (i = 0; i < argc; i++) {
		const char *o = argv[i];

		if (o[0] != '-' || o[1] == '\0')
			return say(err, errlen, -EINVAL,
				   "create: '%s' is not an xl option (KEY=VALUE overrides are not "
				   "passed on: the name and the devices come from the file)",
				   SHOW(shown, o));
		for (k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
			size_t l = strlen(refused[k]);

			/* "-f", "-fFILE", "--dryrun"; -c and -p also inside "-qc" */
			if (!strncmp(o, refused[k], l) ||
			    (o[1] != '-' && l == 2 && strchr(o + 1, refused[k][1]) &&
			     refused[k][1] != 'f'))
				return say(err, errlen, -EINVAL,
					   "create: xl option '%s' is not allowed here (-c, -f, -n, "
					   "-p and --dryrun are not)", SHOW(shown, o));
		}
	}
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
	if (!strcmp(cmd, "attach-from")) {
		a->cmd = CTL_CMD_ATTACH_FROM;
		if (argc != 2)
			return say(err, errlen, -EINVAL, "usage: attach-from GUEST.cfg");
		a->file = argv[1];
		return 0;
	}
	if (!strcmp(cmd, "create")) {
		a->cmd = CTL_CMD_CREATE;
		if (argc < 2)
			return say(err, errlen, -EINVAL, "usage: create GUEST.cfg [xl create options]");
		a->file = argv[1];
		a->xl_argv = argv + 2;
		a->xl_argc = argc - 2;
		return check_xl_options(a->xl_argc, a->xl_argv, err, errlen);
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
