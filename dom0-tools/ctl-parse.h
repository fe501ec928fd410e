// SPDX-License-Identifier: MIT
/*
 * ctl-parse: the parsers of xvmsg-ctl, kept apart from xenstore so that they
 * can be unit tested and fuzzed (tests/unit/test-ctl-parse.c,
 * tests/fuzz/fuzz-ctl.c).  They read three kinds of input:
 *
 *   - the command line (user input),
 *   - device description files (xvmsg-ctl apply, configs/guest.xvmsg),
 *   - values read back from xenstore: numbers in key names and values,
 *     backend states and the counters line a backend writes.  The guest
 *     owns its frontend keys and a driver domain its backend keys, so for
 *     dom0 these are as untrusted as the guest and the driver domain.
 *
 * Every function is pure (no xenstore, no files, no globals).  Those that can
 * fail return 0 or a negative errno and, where they take err/errlen, leave a
 * one-line message without a trailing newline in err.
 */
#ifndef XVMSG_CTL_PARSE_H
#define XVMSG_CTL_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define CTL_MAX_DEVID		65535
#define CTL_MAX_DOMID		0x7fef		/* DOMID_FIRST_RESERVED - 1 */
#define CTL_MAX_STATE		8		/* XVMSG_STATE_RECONFIGURED */
#define CTL_MAX_TIMEOUT		3600		/* seconds */
#define CTL_MAX_DEVICES		64		/* devices in one description file */
#define CTL_LINE_MAX		1023		/* characters of a description line, '\n' excluded */
#define CTL_FILE_MAX		(256 * 1024)	/* bytes of a description file */
#define CTL_NAME_MAX		127		/* a domain name or id as the user gives it */
#define CTL_PARAMS_MAX		255		/* device params, as xvmsg-backend takes them */
#define CTL_STATS_MAX		4096		/* bytes of a backend's counters line */
#define CTL_STATS_KEYS		64		/* counters in that line */
#define CTL_STATS_KEY_MAX	31		/* characters of a counter's name */
#define CTL_XL_OPTIONS_MAX	32		/* xl options create passes on */

/*
 * Decimal number 0..max: digits only (no sign, space, "0x" or suffix).
 * Returns 0 and sets *out, -EINVAL if s is NULL or not a number, -ERANGE if
 * it is above max.  *out is untouched on error.
 */
int ctl_parse_uint(const char *s, unsigned long max, unsigned long *out);
/* A domain id 0..CTL_MAX_DOMID, a device id 0..CTL_MAX_DEVID and a XenbusState
 * 0..CTL_MAX_STATE, as ctl_parse_uint. */
int ctl_parse_domid(const char *s, unsigned int *out);
int ctl_parse_devid(const char *s, unsigned int *out);
int ctl_parse_state(const char *s, unsigned int *out);
/* The name of a state xenstore holds ("Connected"), "-" for NULL or anything
 * that is not a valid state.  Never NULL. */
const char *ctl_state_name(const char *s);

/* One device to attach, from the command line or a description file. */
struct ctl_dev {
	char backend[CTL_NAME_MAX + 1];	/* domain name or id; required */
	char type[8];			/* "blk" | "rng" | "console" | "net"; required */
	char params[CTL_PARAMS_MAX + 1];	/* checked with xvmsg_params_parse */
	char mode[8];			/* "pool" (default) | "grant" | "full" */
	unsigned long pool_pages;	/* 1..XVMSG_MAX_POOL_PAGES; default 256, a NIC's 1024 */
	unsigned int devid;		/* valid if have_devid */
	bool have_devid;
	bool wait;			/* wait for the backend (not --no-wait) */
	unsigned int line;		/* line of a description file, else 0 */
};

/* Defaults: mode pool, no devid, wait; pool_pages 0 until the parse sets
 * the type's default (xvmsg_default_pool_pages). */
void ctl_dev_init(struct ctl_dev *d);
/*
 * Set one field of d from key and value.  key is "backend", "type", "params",
 * "mode", "pool-pages" or "devid", optionally with a leading "--" (the error
 * message names the key as given).  Returns 0, -EINVAL for a bad value,
 * -ENOENT for an unknown key.
 */
int ctl_dev_set(struct ctl_dev *d, const char *key, const char *value, char *err, size_t errlen);

/* A description file: the devices in file order. */
struct ctl_desc {
	unsigned int n;
	struct ctl_dev dev[CTL_MAX_DEVICES];
};

/*
 * Parse a description file (len bytes of buf, not NUL-terminated): one
 * device per line, "TYPE key=value ...", keys backend (required), params,
 * mode, pool-pages, devid; '#' starts a comment; spaces, tabs and a '\r'
 * before the '\n' separate.  Checks everything before returning: values,
 * keys given twice, devids used twice, lines over CTL_LINE_MAX characters,
 * NUL bytes, more than CTL_MAX_DEVICES devices, no device at all.  name is
 * the file name for messages ("name:line: why").  Returns 0 or -EINVAL
 * (-E2BIG for too many devices or a file over CTL_FILE_MAX); d is filled
 * only in part on error.
 */
int ctl_parse_desc(const char *buf, size_t len, const char *name, struct ctl_desc *d,
		   char *err, size_t errlen);

/*
 * A guest's xl config (the syntax of xl's libxlu: KEY = VALUE or KEY += VALUE
 * statements ended by a newline or ';', values "string", 'string', numbers or
 * [ lists ] that may span lines, '#' comments).  Only two keys are read: the
 * guest's name = "..." and its devices,
 *
 *   xvmsg = [ "blk, backend=xvmsg-driver, path=/srv/disk.img, mode=pool",
 *             "rng, backend=xvmsg-driver" ]
 *
 * each entry a device type, then comma-separated keys: backend= (required),
 * mode=, pool-pages=, devid= and the device's parameters (blk: path=, ro,
 * serial=, direct, discard=, write-zeroes=; console: stdio, pty, link=,
 * socket=; rng: none), which become ctl_dev.params.  Every other key is
 * skipped (xl reads those); xvmsg = replaces the list, xvmsg += extends it,
 * as xl does.
 */
struct ctl_guest {
	char name[CTL_NAME_MAX + 1];	/* the domain's name, required */
	unsigned int name_line;
	struct ctl_desc desc;		/* dev[i].line: the line of entry i; n may be 0 */
};

/*
 * One entry of xvmsg = [ ... ] (a decoded string, NUL-terminated) into d.
 * Refuses an unknown type or key, a key given twice, a missing backend= or
 * device parameter, and what ctl_dev_set and the pool minimums refuse.
 * Returns 0 or -EINVAL with the reason in err (no file:line).
 */
int ctl_parse_entry(const char *entry, struct ctl_dev *d, char *err, size_t errlen);

/*
 * Parse an xl config (len bytes of buf, not NUL-terminated; at most
 * CTL_FILE_MAX).  Checks the syntax as far as it must to find the keys,
 * every entry, a device given twice (the same devid, or the same type,
 * backend and params), at most CTL_MAX_DEVICES entries, and that the name is
 * there.  name is the file name for messages ("name:line: why").  Returns 0,
 * -EINVAL or -E2BIG; g is filled only in part on error.
 */
int ctl_parse_xlcfg(const char *buf, size_t len, const char *name, struct ctl_guest *g,
		    char *err, size_t errlen);

enum ctl_cmd {
	CTL_CMD_HELP,
	CTL_CMD_ATTACH,
	CTL_CMD_APPLY,
	CTL_CMD_DETACH,
	CTL_CMD_LIST,
	CTL_CMD_STATS,
	CTL_CMD_CREATE,
	CTL_CMD_ATTACH_FROM,
};

/* A whole xvmsg-ctl command line. */
struct ctl_args {
	enum ctl_cmd cmd;
	bool json;			/* --json */
	unsigned int timeout_s;		/* --timeout, 1..CTL_MAX_TIMEOUT, default 10 */
	char domain[CTL_NAME_MAX + 1];	/* FRONTEND; list: DOMAIN or "" for all */
	unsigned int devid;		/* detach, stats */
	struct ctl_dev dev;		/* attach */
	const char *file;		/* apply, create, attach-from: points into argv */
	char *const *xl_argv;		/* create: the xl options after FILE, in argv */
	int xl_argc;
};

/*
 * Parse argv[1..argc-1] (argv[0] is the program).  Global options come
 * before the command; attach takes its options (--mode M, --mode=M, -m M,
 * -mM; --pool-pages/-p, --devid/-d, --no-wait/-n) anywhere, "--" ends them.
 * create takes FILE and then xl create's options, each starting with '-'
 * (not -c, -f, -n, -p or --dryrun, and no KEY=VALUE: the devices and the
 * name come from FILE).
 * Returns 0 (cmd CTL_CMD_HELP for -h/--help) or -EINVAL: a usage error,
 * said in err.  argv is not modified.
 */
int ctl_parse_args(int argc, char *const argv[], struct ctl_args *a, char *err, size_t errlen);

/*
 * A backend's counters: "key=value key=value ..." separated by single or
 * repeated spaces, keys [a-z0-9_] of 1..CTL_STATS_KEY_MAX characters, each
 * key once, values decimal 64-bit, at most CTL_STATS_KEYS of them and
 * CTL_STATS_MAX bytes in all.  The whole line is checked before fn sees
 * any counter; fn's first non-zero return ends the walk and is returned.
 * Returns 0, fn's value, or -EINVAL (said in err).  fn may be NULL.
 */
int ctl_parse_stats(const char *line,
		    int (*fn)(void *arg, const char *key, unsigned long long value), void *arg,
		    char *err, size_t errlen);

/*
 * Copy s (NULL: "") into out for a terminal: printable ASCII as is, every
 * other byte as \xNN, a backslash as \\.  Truncates at a whole character;
 * out (outlen > 0) is always terminated.  Returns out.
 */
char *ctl_printable(char *out, size_t outlen, const char *s);

/*
 * Length of the valid UTF-8 character s starts with: 1 for ASCII (NUL
 * included), 2..4, or 0 if s does not start one (a stray continuation byte,
 * an overlong form, a surrogate, above U+10FFFF, cut short by the NUL).
 * Reads no further than the first byte that decides.  For JSON output of
 * values a guest or a backend domain wrote.
 */
size_t ctl_utf8_len(const char *s);

#endif /* XVMSG_CTL_PARSE_H */
