// SPDX-License-Identifier: MIT
/*
 * Fuzz target: xvmsg-ctl's parsers (dom0-tools/ctl-parse.c).  The first byte
 * of the input picks the parser, the rest is its input:
 *
 *   0  a description file (xvmsg-ctl apply)
 *   1  a command line: arguments separated by NUL bytes
 *   2  a backend's counters line (xenstore "stats")
 *   3  numbers: ctl_parse_uint with a maximum, domid, devid, state
 *   4  ctl_printable into an output buffer of the size the next byte gives,
 *      and ctl_utf8_len over the same text
 *   5  ctl_dev_set: the next byte picks the key, the rest is the value
 *   6  an xl config (xvmsg-ctl create, attach-from); only the byte 6 itself,
 *      so that seeds kept from before it still pick what they picked
 *
 * Besides the sanitizers, each case checks what the parser promises: an
 * error always comes with a message, an accepted device has valid fields,
 * printable output is printable and fits.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xvmsg/xenbus.h>

#include "ctl-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 32

static void check(int ok)
{
	if (!ok)
		abort();
}

/* An accepted device is valid whatever the input was. */
static void check_dev(const struct ctl_dev *d, bool complete)
{
	check((!complete && !d->type[0]) || !strcmp(d->type, "blk") || !strcmp(d->type, "rng") ||
	      !strcmp(d->type, "console") || !strcmp(d->type, "net"));
	check(!strcmp(d->mode, "pool") || !strcmp(d->mode, "grant") || !strcmp(d->mode, "full"));
	/* 0 until a whole entry is parsed: then the type's default */
	check((!complete && d->pool_pages == 0) ||
	      (d->pool_pages >= 1 && d->pool_pages <= XVMSG_MAX_POOL_PAGES));
	check(!d->have_devid || d->devid <= CTL_MAX_DEVID);
	check(strlen(d->params) <= CTL_PARAMS_MAX);
	check(strlen(d->backend) <= CTL_NAME_MAX);
	check(!complete || d->backend[0]);
}

/* The message is set (err starts as "") and on one line. */
static void check_err(const char *err)
{
	check(err[0] != '\0');
	check(strchr(err, '\n') == NULL);
}

/* Write d back as a description file: parsing that must give d again. */
static size_t unparse(const struct ctl_desc *d, char *out, size_t len)
{
	size_t o = 0;
	unsigned int i;

	for (i = 0; i < d->n; i++) {
		const struct ctl_dev *v = &d->dev[i];
		int n = snprintf(out + o, len - o, "%s backend=%s params=%s mode=%s pool-pages=%lu",
				 v->type, v->backend, v->params, v->mode, v->pool_pages);

		check(n > 0 && (size_t)n < len - o);
		o += (size_t)n;
		n = v->have_devid ? snprintf(out + o, len - o, " devid=%u\n", v->devid) :
				    snprintf(out + o, len - o, "\n");
		check(n > 0 && (size_t)n < len - o);
		o += (size_t)n;
	}
	return o;
}

static void same_devs(const struct ctl_desc *a, const struct ctl_desc *b)
{
	unsigned int i;

	check(a->n == b->n);
	for (i = 0; i < a->n; i++) {
		const struct ctl_dev *x = &a->dev[i], *y = &b->dev[i];

		check(!strcmp(x->type, y->type) && !strcmp(x->backend, y->backend) &&
		      !strcmp(x->params, y->params) && !strcmp(x->mode, y->mode) &&
		      x->pool_pages == y->pool_pages && x->have_devid == y->have_devid &&
		      (!x->have_devid || x->devid == y->devid));
	}
}

static void fuzz_desc(const char *buf, size_t len)
{
	static struct ctl_desc d, again;
	static char text[CTL_MAX_DEVICES * (CTL_NAME_MAX + CTL_PARAMS_MAX + 100)];
	char err[512] = "";
	unsigned int i, j;
	size_t n;

	if (ctl_parse_desc(buf, len, "fuzz.xvmsg", &d, err, sizeof(err))) {
		check_err(err);
		return;
	}
	check(d.n >= 1 && d.n <= CTL_MAX_DEVICES);
	for (i = 0; i < d.n; i++) {
		check_dev(&d.dev[i], true);
		check(d.dev[i].line >= 1 && (i == 0 || d.dev[i].line > d.dev[i - 1].line));
		for (j = 0; j < i; j++)
			check(!d.dev[i].have_devid || !d.dev[j].have_devid ||
			      d.dev[i].devid != d.dev[j].devid);
	}
	n = unparse(&d, text, sizeof(text));
	if (ctl_parse_desc(text, n, "again", &again, err, sizeof(err)))
		abort();
	same_devs(&d, &again);
}

static void fuzz_args(char *buf, size_t len)
{
	char *argv[MAX_ARGS + 1] = { "xvmsg-ctl" }, err[512] = "";
	struct ctl_args a;
	int argc = 1;
	size_t p = 0;

	/* buf is NUL-terminated at len: arguments are the NUL-separated pieces. */
	while (p <= len && argc < MAX_ARGS) {
		argv[argc++] = buf + p;
		p += strlen(buf + p) + 1;
	}
	argv[argc] = NULL;
	if (ctl_parse_args(argc, argv, &a, err, sizeof(err))) {
		check_err(err);
		return;
	}
	check(a.timeout_s >= 1 && a.timeout_s <= CTL_MAX_TIMEOUT);
	switch (a.cmd) {
	case CTL_CMD_HELP:
		break;
	case CTL_CMD_ATTACH:
		check_dev(&a.dev, true);
		check(a.domain[0] != '\0');
		break;
	case CTL_CMD_APPLY:
		check(a.file != NULL && a.domain[0] != '\0');
		break;
	case CTL_CMD_DETACH:
	case CTL_CMD_STATS:
		check(a.devid <= CTL_MAX_DEVID && a.domain[0] != '\0');
		break;
	case CTL_CMD_LIST:
		break;
	case CTL_CMD_ATTACH_FROM:
		check(a.file != NULL);
		break;
	case CTL_CMD_CREATE:
		check(a.file != NULL && a.xl_argc >= 0 && a.xl_argc <= CTL_XL_OPTIONS_MAX);
		for (int i = 0; i < a.xl_argc; i++)
			check(a.xl_argv[i][0] == '-' && a.xl_argv[i][1] != '\0');
		break;
	default:
		abort();
	}
}

struct counted {
	unsigned int n;
};

static int counter(void *arg, const char *key, unsigned long long value)
{
	struct counted *c = arg;
	size_t len = strlen(key);

	check(len >= 1 && len <= CTL_STATS_KEY_MAX);
	check(strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_") == len);
	c->n++;
	return 0;
}

static void fuzz_stats(const char *s)
{
	struct counted c = { 0 };
	char err[256] = "";

	if (ctl_parse_stats(s, counter, &c, err, sizeof(err))) {
		check_err(err);
		check(c.n == 0);	/* checked whole before fn sees anything */
		return;
	}
	check(c.n <= CTL_STATS_KEYS);
}

static void fuzz_numbers(const char *s, const uint8_t *data, size_t size)
{
	unsigned long max = 0, v = 12345;
	unsigned int u;
	size_t i;
	int r;

	for (i = 0; i < size && i < sizeof(max); i++)
		max = max << 8 | data[i];
	r = ctl_parse_uint(s, max, &v);
	check(r == 0 || r == -EINVAL || r == -ERANGE);
	if (r == 0) {
		char *end;
		unsigned long ref;

		errno = 0;
		ref = strtoul(s, &end, 10);
		/* same value as the C library, and only digits */
		check(v <= max && !errno && !*end && ref == v && strspn(s, "0123456789") == strlen(s));
	} else {
		check(v == 12345);	/* untouched on error */
	}
	if (!ctl_parse_domid(s, &u))
		check(u <= CTL_MAX_DOMID);
	if (!ctl_parse_devid(s, &u))
		check(u <= CTL_MAX_DEVID);
	if (!ctl_parse_state(s, &u))
		check(u <= CTL_MAX_STATE && strcmp(ctl_state_name(s), "-"));
	else
		check(!strcmp(ctl_state_name(s), "-"));
}

static void fuzz_printable(const char *s, size_t outlen)
{
	char out[300];
	size_t n, i;

	memset(out, 'Z', sizeof(out));
	check(ctl_printable(out, outlen, s) == out);
	n = strlen(out);
	check(n < outlen);
	check(out[outlen] == 'Z');	/* nothing written past outlen */
	for (i = 0; i < n; i++)
		check(out[i] >= 0x20 && out[i] < 0x7f);
	/* UTF-8 walk as json_str does it: never past the NUL, and a sequence
	 * taken is a minimal encoding of a scalar value */
	while (s && *s) {
		const unsigned char *u = (const unsigned char *)s;
		unsigned int cp;

		n = ctl_utf8_len(s);
		check(n <= 4 && (u[0] >= 0x80 || n == 1));
		if (n >= 2) {
			cp = u[0] & (0x7f >> n);
			for (i = 1; i < n; i++) {
				check((u[i] & 0xc0) == 0x80);
				cp = cp << 6 | (u[i] & 0x3f);
			}
			check(cp >= (n == 2 ? 0x80u : n == 3 ? 0x800u : 0x10000u));
			check(cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff));
		}
		s += n ? n : 1;
	}
}

static void fuzz_dev_set(unsigned int which, const char *value)
{
	static const char *const keys[] = {
		"backend", "type", "params", "mode", "pool-pages", "devid",
		"--mode", "--devid", "bogus",
	};
	struct ctl_dev d;
	char err[256] = "";
	int r;

	ctl_dev_init(&d);
	r = ctl_dev_set(&d, keys[which % 9], value, err, sizeof(err));
	if (r) {
		check(r == -EINVAL || r == -ENOENT);
		check_err(err);
		return;
	}
	check(which % 9 != 8);
	check_dev(&d, false);
}

/* An accepted xl config has a name and valid, distinct devices, each of
 * which reads back from its own entry the same. */
static void fuzz_xlcfg(const char *buf, size_t len)
{
	static struct ctl_guest g;
	char err[512] = "";
	unsigned int i, j;

	if (ctl_parse_xlcfg(buf, len, "fuzz.cfg", &g, err, sizeof(err))) {
		check_err(err);
		return;
	}
	check(g.name[0] != '\0' && g.name_line >= 1 && strlen(g.name) <= CTL_NAME_MAX);
	check(g.desc.n <= CTL_MAX_DEVICES);
	for (i = 0; i < g.desc.n; i++) {
		const struct ctl_dev *d = &g.desc.dev[i];

		check_dev(d, true);
		check(d->line >= 1);
		for (j = 0; j < i; j++)
			check((!d->have_devid || !g.desc.dev[j].have_devid ||
			       d->devid != g.desc.dev[j].devid) &&
			      (strcmp(d->type, g.desc.dev[j].type) ||
			       strcmp(d->backend, g.desc.dev[j].backend) ||
			       strcmp(d->params, g.desc.dev[j].params)));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	/* A NUL-terminated copy, so that parsers of C strings see the bytes
	 * before the first NUL; the description parser gets the raw bytes. */
	s = malloc(size);
	if (!s)
		abort();
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	if (data[0] == 6) {
		fuzz_xlcfg(s, size - 1);
		free(s);
		return 0;
	}
	switch (data[0] % 6) {
	case 0:
		fuzz_desc(s, size - 1);
		break;
	case 1:
		fuzz_args(s, size - 1);
		break;
	case 2:
		fuzz_stats(s);
		break;
	case 3:
		fuzz_numbers(size > 1 ? s + (size > 9 ? 8 : size - 1) : s, data + 1,
			     size - 1 < 8 ? size - 1 : 8);
		break;
	case 4:
		fuzz_printable(size > 1 ? s + 1 : s, size > 1 ? 1 + data[1] % 299 : 1);
		break;
	case 5:
		fuzz_dev_set(size > 1 ? data[1] : 0, size > 1 ? s + 1 : s);
		break;
	}
	free(s);
	return 0;
}
