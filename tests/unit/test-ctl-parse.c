// SPDX-License-Identifier: MIT
/* Unit tests: xvmsg-ctl's parsers (dom0-tools/ctl-parse.c), good and bad input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ctl-parse.h"

static char err[512];

static int desc(const char *text, struct ctl_desc *d)
{
	err[0] = '\0';
	return ctl_parse_desc(text, strlen(text), "f.xvmsg", d, err, sizeof(err));
}

/* The parse fails with -EINVAL (or want) and err contains what. */
static void desc_bad(const char *text, int want, const char *what)
{
	static struct ctl_desc d;

	assert_int_equal(desc(text, &d), want);
	if (!strstr(err, what))
		fail_msg("error '%s' does not say '%s'", err, what);
}

static int args(struct ctl_args *a, ...)
{
	char *argv[32] = { "xvmsg-ctl" };
	int argc = 1;
	va_list ap;

	va_start(ap, a);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	err[0] = '\0';
	return ctl_parse_args(argc, argv, a, err, sizeof(err));
}

#define ARGS_BAD(what, ...) do { \
	struct ctl_args a_; \
	assert_int_equal(args(&a_, __VA_ARGS__, NULL), -EINVAL); \
	if (!strstr(err, what)) \
		fail_msg("error '%s' does not say '%s'", err, what); \
} while (0)

static void test_uint(void **state)
{
	unsigned long v = 7;
	unsigned int u;

	assert_int_equal(ctl_parse_uint("0", 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(ctl_parse_uint("0010", 10, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(ctl_parse_uint("18446744073709551615", ~0UL, &v), 0);
	assert_true(v == ~0UL);
	v = 7;
	assert_int_equal(ctl_parse_uint("18446744073709551616", ~0UL, &v), -ERANGE);
	assert_int_equal(ctl_parse_uint("99999999999999999999999999", ~0UL, &v), -ERANGE);
	assert_int_equal(ctl_parse_uint("11", 10, &v), -ERANGE);
	assert_int_equal(ctl_parse_uint("1", 0, &v), -ERANGE);
	assert_int_equal(ctl_parse_uint("", 10, &v), -EINVAL);
	assert_int_equal(ctl_parse_uint(NULL, 10, &v), -EINVAL);
	assert_int_equal(ctl_parse_uint("-1", 10, &v), -EINVAL);
	assert_int_equal(ctl_parse_uint("+1", 10, &v), -EINVAL);
	assert_int_equal(ctl_parse_uint(" 1", 10, &v), -EINVAL);
	assert_int_equal(ctl_parse_uint("1 ", 10, &v), -EINVAL);
	assert_int_equal(ctl_parse_uint("0x1", 10, &v), -EINVAL);
	assert_int_equal(ctl_parse_uint("99999999999999999999x", ~0UL, &v), -EINVAL);
	assert_int_equal(v, 7);	/* untouched on error */

	assert_int_equal(ctl_parse_domid("32751", &u), 0);
	assert_int_equal(u, 0x7fef);
	assert_int_equal(ctl_parse_domid("32752", &u), -ERANGE);	/* DOMID_FIRST_RESERVED */
	assert_int_equal(ctl_parse_devid("65535", &u), 0);
	assert_int_equal(ctl_parse_devid("65536", &u), -ERANGE);
	assert_int_equal(ctl_parse_devid("99999999999", &u), -ERANGE);
	assert_int_equal(ctl_parse_state("8", &u), 0);
	assert_int_equal(ctl_parse_state("9", &u), -ERANGE);
	assert_int_equal(ctl_parse_state("4junk", &u), -EINVAL);	/* atoi said 4 */
	assert_string_equal(ctl_state_name("4"), "Connected");
	assert_string_equal(ctl_state_name("04"), "Connected");
	assert_string_equal(ctl_state_name("4junk"), "-");
	assert_string_equal(ctl_state_name("-1"), "-");
	assert_string_equal(ctl_state_name(NULL), "-");
}

static void test_desc_good(void **state)
{
	static struct ctl_desc d;

	assert_int_equal(desc("# devices\n"
			      "blk  backend=xvmsg-driver params=path=/srv/a.img,serial=x pool-pages=256\n"
			      "\n"
			      "\trng\tbackend=3 pool-pages=16 devid=9   # a comment\r\n"
			      "console backend=d params=pty,link=/run/c mode=grant devid=0 pool-pages=96",
			      &d), 0);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.dev[0].type, "blk");
	assert_string_equal(d.dev[0].backend, "xvmsg-driver");
	assert_string_equal(d.dev[0].params, "path=/srv/a.img,serial=x");	/* split at the first '=' */
	assert_string_equal(d.dev[0].mode, "pool");	/* default */
	assert_int_equal(d.dev[0].pool_pages, 256);
	assert_false(d.dev[0].have_devid);
	assert_true(d.dev[0].wait);
	assert_int_equal(d.dev[0].line, 2);
	assert_string_equal(d.dev[1].type, "rng");
	assert_string_equal(d.dev[1].backend, "3");
	assert_string_equal(d.dev[1].params, "");
	assert_int_equal(d.dev[1].pool_pages, 16);
	assert_true(d.dev[1].have_devid);
	assert_int_equal(d.dev[1].devid, 9);
	assert_int_equal(d.dev[1].line, 4);
	assert_string_equal(d.dev[2].mode, "grant");
	assert_int_equal(d.dev[2].devid, 0);
	assert_int_equal(d.dev[2].line, 5);	/* last line without '\n' */
	/* the default pool by type: a NIC's holds its receive buffers */
	assert_int_equal(desc("net backend=d params=tap=t0\nrng backend=d\n", &d), 0);
	assert_int_equal(d.dev[0].pool_pages, 1024);
	assert_int_equal(d.dev[1].pool_pages, 256);
}

static void test_desc_shipped(void **state)
{
	static struct ctl_desc d;
	static char buf[CTL_FILE_MAX];
	FILE *f = fopen("configs/guest.xvmsg", "r");
	size_t len;

	if (!f)		/* make runs the tests from the top directory */
		print_error("configs/guest.xvmsg: %s (run from the top directory)\n",
			    strerror(errno));
	assert_non_null(f);
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	err[0] = '\0';
	assert_int_equal(ctl_parse_desc(buf, len, "configs/guest.xvmsg", &d, err, sizeof(err)), 0);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.dev[2].type, "console");
	assert_int_equal(d.dev[2].pool_pages, 96);
}

static void test_desc_bad(void **state)
{
	char big[1200];

	desc_bad("blk backend=d params=path=/x pool-pages=0\n", -EINVAL,
		 "f.xvmsg:1: pool-pages must be 1..65536, not '0'");
	desc_bad("rng backend=d\nrng backend=d pool-pages=65537\n", -EINVAL,
		 "f.xvmsg:2: pool-pages must be 1..65536");
	desc_bad("rng backend=d pool-pages=99999999999999999999999\n", -EINVAL, "f.xvmsg:1: pool-pages");
	desc_bad("rng backend=d pool-pages=-1\n", -EINVAL, "pool-pages must be");
	/* Below a type's minimum in pool mode (include/xvmsg/pool.h). */
	desc_bad("blk backend=d params=path=/x pool-pages=7\n", -EINVAL,
		 "f.xvmsg:1: pool-pages must be at least 8 for blk in pool mode, not 7");
	desc_bad("console backend=d pool-pages=5\n", -EINVAL, "at least 6 for console");
	desc_bad("rng backend=d pool-pages=2\n", -EINVAL, "at least 3 for rng");
	desc_bad("rng backend=d pool-pages=\n", -EINVAL, "pool-pages must be");
	desc_bad("rng backend=d devid=65536\n", -EINVAL, "f.xvmsg:1: devid must be 0..65535");
	desc_bad("rng backend=d devid=99999999999\n", -EINVAL, "devid must be 0..65535");
	desc_bad("rng backend=d devid=1x\n", -EINVAL, "devid must be");
	desc_bad("rng backend=d mode=bogus\n", -EINVAL, "mode must be pool, grant or full, not 'bogus'");
	desc_bad("disk backend=d\n", -EINVAL, "f.xvmsg:1: device type 'disk' unknown");
	desc_bad("backend=d rng\n", -EINVAL, "device type 'backend=d' unknown");
	desc_bad("blk backend=d params=a,,b\n", -EINVAL, "parameters 'a,,b' are not key=value");
	desc_bad("rng backend=d colour=blue\n", -EINVAL,
		 "f.xvmsg:1: unknown key 'colour' (backend, params, mode, pool-pages, devid)");
	desc_bad("rng backend=d oops\n", -EINVAL, "'oops' is not key=value");
	desc_bad("blk params=path=/x\n", -EINVAL, "f.xvmsg:1: backend=DOMAIN missing");
	desc_bad("rng backend=\n", -EINVAL, "backend must be a domain name or id");
	desc_bad("rng backend=d backend=e\n", -EINVAL, "key 'backend' given twice");
	desc_bad("rng backend=d mode=pool mode=grant\n", -EINVAL, "key 'mode' given twice");
	desc_bad("rng backend=d devid=1 devid=1\n", -EINVAL, "key 'devid' given twice");
	desc_bad("rng backend=d devid=4\n\nblk backend=e devid=4\n", -EINVAL,
		 "f.xvmsg:3: devid 4 already used on line 1");
	desc_bad("", -EINVAL, "f.xvmsg: no devices");
	desc_bad("# only a comment\n\n \t\r\n", -EINVAL, "f.xvmsg: no devices");

	/* over-long lines are refused, not split into two devices */
	memset(big, 'a', sizeof(big));
	memcpy(big, "rng backend=", 12);
	big[1024] = '\n';
	big[1025] = '\0';
	desc_bad(big, -EINVAL, "f.xvmsg:1: line longer than 1023 characters");
	big[1023] = '\n';	/* 1023 characters: the limit itself is fine */
	big[1024] = '\0';
	desc_bad(big, -EINVAL, "backend must be a domain name or id of 1..127");
}

static void test_desc_limits(void **state)
{
	static struct ctl_desc d;
	static char text[64 * 40 + 100];
	size_t o = 0;
	unsigned int i;

	for (i = 0; i < CTL_MAX_DEVICES; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o, "rng backend=d devid=%u\n", i);
	assert_int_equal(desc(text, &d), 0);
	assert_int_equal(d.n, CTL_MAX_DEVICES);
	snprintf(text + o, sizeof(text) - o, "rng backend=d\n");
	assert_int_equal(desc(text, &d), -E2BIG);
	assert_non_null(strstr(err, "f.xvmsg:65: more than 64 devices"));

	/* a NUL byte in the middle of a line */
	err[0] = '\0';
	assert_int_equal(ctl_parse_desc("rng backend=d\0 devid=1\n", 23, "f.xvmsg", &d, err,
					sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "f.xvmsg:1: NUL byte"));
	assert_int_equal(ctl_parse_desc(text, CTL_FILE_MAX + 1, "f.xvmsg", &d, err, sizeof(err)),
			 -E2BIG);
	assert_non_null(strstr(err, "larger than"));
}

static void test_args_good(void **state)
{
	struct ctl_args a;

	assert_int_equal(args(&a, "attach", "g", "d", "blk", "path=/x", NULL), 0);
	assert_int_equal(a.cmd, CTL_CMD_ATTACH);
	assert_string_equal(a.domain, "g");
	assert_string_equal(a.dev.backend, "d");
	assert_string_equal(a.dev.type, "blk");
	assert_string_equal(a.dev.params, "path=/x");
	assert_string_equal(a.dev.mode, "pool");
	assert_int_equal(a.dev.pool_pages, 256);
	assert_false(a.dev.have_devid);
	assert_true(a.dev.wait);
	assert_int_equal(a.timeout_s, 10);
	assert_false(a.json);

	/* A NIC's pool by default holds its 256 receive buffers (a page
	 * each at most) and sends beside them; one given is kept. */
	assert_int_equal(args(&a, "attach", "g", "d", "net", "tap=t0", NULL), 0);
	assert_int_equal(a.dev.pool_pages, 1024);
	assert_int_equal(args(&a, "attach", "g", "d", "net", "tap=t0", "--pool-pages", "256", NULL),
			 0);
	assert_int_equal(a.dev.pool_pages, 256);

	/* options before, between and after the operands, in every spelling */
	assert_int_equal(args(&a, "--json", "--timeout", "30", "attach", "--devid", "7", "g",
			      "-mgrant", "d", "-p", "16", "rng", "--no-wait", NULL), 0);
	assert_true(a.json);
	assert_int_equal(a.timeout_s, 30);
	assert_true(a.dev.have_devid);
	assert_int_equal(a.dev.devid, 7);
	assert_string_equal(a.dev.mode, "grant");
	assert_int_equal(a.dev.pool_pages, 16);
	assert_false(a.dev.wait);
	assert_string_equal(a.dev.type, "rng");
	assert_int_equal(args(&a, "attach", "g", "d", "blk", "--mode=full", "--pool-pages=65536",
			      "-d0", "-n", NULL), 0);
	assert_string_equal(a.dev.mode, "full");
	assert_int_equal(a.dev.pool_pages, 65536);
	assert_int_equal(a.dev.devid, 0);
	assert_true(a.dev.have_devid);
	/* "--" ends the options: params that look like one */
	assert_int_equal(args(&a, "attach", "g", "d", "blk", "--", "-x", NULL), 0);
	assert_string_equal(a.dev.params, "-x");

	assert_int_equal(args(&a, "apply", "g", "configs/guest.xvmsg", NULL), 0);
	assert_int_equal(a.cmd, CTL_CMD_APPLY);
	assert_string_equal(a.file, "configs/guest.xvmsg");
	assert_int_equal(args(&a, "detach", "3", "65535", NULL), 0);
	assert_int_equal(a.cmd, CTL_CMD_DETACH);
	assert_int_equal(a.devid, 65535);
	assert_int_equal(args(&a, "stats", "g", "0", NULL), 0);
	assert_int_equal(a.cmd, CTL_CMD_STATS);
	assert_int_equal(args(&a, "list", NULL), 0);
	assert_int_equal(a.cmd, CTL_CMD_LIST);
	assert_string_equal(a.domain, "");
	assert_int_equal(args(&a, "list", "xvmsg-driver", NULL), 0);
	assert_string_equal(a.domain, "xvmsg-driver");
	assert_int_equal(args(&a, "--help", "attach", NULL), 0);
	assert_int_equal(a.cmd, CTL_CMD_HELP);
}

static void test_args_bad(void **state)
{
	struct ctl_args a;

	ARGS_BAD("--devid must be 0..65535, not '99999999999'",
		 "attach", "g", "d", "blk", "--devid", "99999999999");
	ARGS_BAD("--devid must be 0..65535, not '65536'", "attach", "g", "d", "blk", "--devid", "65536");
	ARGS_BAD("--devid must be 0..65535, not '-1'", "attach", "g", "d", "blk", "--devid", "-1");
	ARGS_BAD("--devid needs a value", "attach", "g", "d", "blk", "--devid");
	ARGS_BAD("--mode must be pool, grant or full, not 'bogus'",
		 "attach", "g", "d", "blk", "--mode", "bogus");
	ARGS_BAD("--pool-pages must be 1..65536, not '0'", "attach", "g", "d", "blk", "-p0");
	ARGS_BAD("--pool-pages must be 1..65536, not '1e3'",
		 "attach", "g", "d", "blk", "--pool-pages=1e3");
	ARGS_BAD("device type 'disk' unknown", "attach", "g", "d", "disk");
	ARGS_BAD("pool-pages must be at least 8 for blk in pool mode, not 4",
		 "attach", "g", "d", "blk", "path=/x", "--pool-pages", "4");
	ARGS_BAD("pool-pages must be at least 8 for blk in pool mode, not 4",
		 "attach", "g", "d", "--pool-pages", "4", "blk", "path=/x");
	ARGS_BAD("parameters 'path=/x,' are not key=value", "attach", "g", "d", "blk", "path=/x,");
	ARGS_BAD("attach: unknown option '--bogus'", "attach", "g", "d", "blk", "--bogus");
	ARGS_BAD("usage: attach FRONTEND BACKEND TYPE", "attach", "g", "d");
	ARGS_BAD("usage: attach FRONTEND BACKEND TYPE", "attach", "g", "d", "blk", "p", "extra");
	ARGS_BAD("FRONTEND must be a domain name or id", "attach", "", "d", "rng");
	ARGS_BAD("FRONTEND must be a domain name or id", "attach", "g\x1b[2J", "d", "rng");
	ARGS_BAD("device id 'x' is not a number 0..65535", "detach", "g", "x");
	ARGS_BAD("device id '65536' is not a number", "stats", "g", "65536");
	ARGS_BAD("usage: detach FRONTEND DEVID", "detach", "g");
	ARGS_BAD("usage: apply FRONTEND FILE", "apply", "g");
	ARGS_BAD("usage: list [DOMAIN]", "list", "a", "b");
	ARGS_BAD("--timeout must be 1..3600 seconds", "--timeout", "0", "list");
	ARGS_BAD("--timeout must be 1..3600 seconds", "--timeout", "3601", "list");
	ARGS_BAD("--timeout must be 1..3600 seconds", "--timeout");
	ARGS_BAD("unknown option '--frob'", "--frob", "list");
	ARGS_BAD("unknown command 'frob'", "frob");
	assert_int_equal(args(&a, NULL), -EINVAL);
	assert_string_equal(err, "no command given");
	/* untrusted text in a message is escaped */
	ARGS_BAD("unknown command 'a\\x1b[2J'", "a\x1b[2J");
}

struct seen {
	unsigned int n;
	char key[16][32];
	unsigned long long val[16];
};

static int collect(void *arg, const char *key, unsigned long long value)
{
	struct seen *s = arg;

	if (s->n == 16)
		return -E2BIG;
	snprintf(s->key[s->n], sizeof(s->key[0]), "%s", key);
	s->val[s->n++] = value;
	return 0;
}

static void stats_bad(const char *line, const char *what)
{
	struct seen s = { 0 };

	err[0] = '\0';
	assert_int_equal(ctl_parse_stats(line, collect, &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(s.n, 0);	/* nothing handed out before the whole line is checked */
	if (!strstr(err, what))
		fail_msg("error '%s' does not say '%s'", err, what);
}

static void test_stats(void **state)
{
	struct seen s = { 0 };
	char line[CTL_STATS_MAX + 10];
	unsigned int i;
	size_t o = 0;

	assert_int_equal(ctl_parse_stats("maps=1 map_pages=257  bytes_in=18446744073709551615 ",
					 collect, &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.key[1], "map_pages");
	assert_true(s.val[1] == 257);
	assert_true(s.val[2] == ~0ULL);
	s.n = 0;
	assert_int_equal(ctl_parse_stats("", collect, &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 0);
	/* fn's error is returned */
	assert_int_equal(ctl_parse_stats("a=1 b=2 c=3 d=4 e=5 f=6 g=7 h=8 i=9 j=10 k=11 l=12 m=13 "
					 "n=14 o=15 p=16 q=17", collect, &s, err, sizeof(err)),
			 -E2BIG);

	/* a net device's whole line, as the backend writes it */
	assert_int_equal(ctl_parse_stats("maps=3 map_pages=129 unmaps=0 unmap_pages=0 notify_in=150 "
					 "notify_out=150 msgs_in=14 msgs_out=14 msgs_bad=0 "
					 "requests=204 bad_chains=0 bytes_out=155142 bytes_in=12288 "
					 "tx_packets=198 tx_bytes=152766 rx_packets=6 rx_bytes=516 "
					 "tx_runt=0 tx_too_big=0 tx_bad_flags=0 tx_bad_gso=0 "
					 "tx_bad_hdr_len=0 tx_bad_csum=0 tx_tap_err=0 rx_bad_buf=0 "
					 "rx_dropped=0 rx_waits=1 link_changes=0",
					 NULL, NULL, err, sizeof(err)), 0);

	stats_bad("maps=1 bytes_in=18446744073709551616", "counter 'bytes_in' over 64 bits");
	stats_bad("maps=1 maps=2", "counter 'maps' given twice");
	stats_bad("maps=-1", "counter 'maps' is not a number");
	stats_bad("maps=1x", "counter 'maps' is not a number");
	stats_bad("maps=", "counter 'maps' has an empty value");
	stats_bad("maps", "counter 'maps' has no value");
	stats_bad("=1", "empty or over 31 characters");
	stats_bad("\"x\":1,\"y\"=2", "is not [a-z0-9_]");	/* would have gone into the JSON */
	stats_bad("Maps=1", "is not [a-z0-9_]");
	stats_bad("maps=1\tx=2", "is not a number");
	stats_bad("abcdefghijklmnopqrstuvwxyz0123456=1", "empty or over 31 characters");
	for (i = 0; i < CTL_STATS_KEYS + 1; i++)
		o += (size_t)snprintf(line + o, sizeof(line) - o, "k%u=1 ", i);
	stats_bad(line, "more than 64 counters");
	memset(line, '1', sizeof(line));
	memcpy(line, "a=", 2);
	line[CTL_STATS_MAX + 1] = '\0';
	stats_bad(line, "longer than 4096 bytes");
	stats_bad(NULL, "no counters");
}

static void test_printable(void **state)
{
	char out[32];

	assert_string_equal(ctl_printable(out, sizeof(out), "name-1 ok"), "name-1 ok");
	assert_string_equal(ctl_printable(out, sizeof(out), "a\x1b[2Jb\\\n\xc3"),
			    "a\\x1b[2Jb\\\\\\x0a\\xc3");
	assert_string_equal(ctl_printable(out, sizeof(out), NULL), "");
	/* truncated at a whole character */
	assert_string_equal(ctl_printable(out, 6, "ab\x01" "cd"), "ab");
	assert_string_equal(ctl_printable(out, 1, "abc"), "");
}

static void test_utf8(void **state)
{
	assert_int_equal(ctl_utf8_len("a"), 1);
	assert_int_equal(ctl_utf8_len(""), 1);
	assert_int_equal(ctl_utf8_len("\xc3\xa9"), 2);		/* U+00E9 */
	assert_int_equal(ctl_utf8_len("\xe2\x82\xac"), 3);	/* U+20AC */
	assert_int_equal(ctl_utf8_len("\xf0\x9f\x98\x80"), 4);	/* U+1F600 */
	assert_int_equal(ctl_utf8_len("\xf4\x8f\xbf\xbf"), 4);	/* U+10FFFF */
	assert_int_equal(ctl_utf8_len("\x80"), 0);		/* stray continuation */
	assert_int_equal(ctl_utf8_len("\xc0\xaf"), 0);		/* overlong '/' */
	assert_int_equal(ctl_utf8_len("\xe0\x80\xaf"), 0);	/* overlong '/' */
	assert_int_equal(ctl_utf8_len("\xf0\x80\x80\xaf"), 0);	/* overlong '/' */
	assert_int_equal(ctl_utf8_len("\xed\xa0\x80"), 0);	/* surrogate U+D800 */
	assert_int_equal(ctl_utf8_len("\xf4\x90\x80\x80"), 0);	/* U+110000 */
	assert_int_equal(ctl_utf8_len("\xf5\x80\x80\x80"), 0);
	assert_int_equal(ctl_utf8_len("\xe2\x82"), 0);		/* cut short by the NUL */
	assert_int_equal(ctl_utf8_len("\xc3" "a"), 0);
}

static void test_dev_set(void **state)
{
	struct ctl_dev d;

	ctl_dev_init(&d);
	assert_int_equal(ctl_dev_set(&d, "colour", "x", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "unknown key 'colour'"));
	assert_int_equal(ctl_dev_set(&d, "mode", NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "mode needs a value"));
	/* a failed set leaves the old value */
	assert_int_equal(ctl_dev_set(&d, "pool-pages", "16", err, sizeof(err)), 0);
	assert_int_equal(ctl_dev_set(&d, "pool-pages", "0", err, sizeof(err)), -EINVAL);
	assert_int_equal(d.pool_pages, 16);
	assert_int_equal(ctl_dev_set(&d, "devid", "x", err, sizeof(err)), -EINVAL);
	assert_false(d.have_devid);
}

static int xlcfg(const char *text, struct ctl_guest *g)
{
	err[0] = '\0';
	return ctl_parse_xlcfg(text, strlen(text), "g.cfg", g, err, sizeof(err));
}

static void xlcfg_bad(const char *text, const char *what)
{
	static struct ctl_guest g;

	assert_int_equal(xlcfg(text, &g), -EINVAL);
	if (!strstr(err, what))
		fail_msg("error '%s' does not say '%s'", err, what);
	assert_null(strchr(err, '\n'));
}

static void test_xlcfg_good(void **state)
{
	static struct ctl_guest g;

	assert_int_equal(xlcfg("# a guest\n"
			       "name = \"gu\\\"est\"  # comment\n"
			       "type = 'pv'; memory = 0x100; vcpus = 2\n"
			       "extra = \"console=hvc0 \\x41 \\n # not a comment\"\n"
			       "cpus = [ [ \"0\", 1 ], [] ]\n"
			       "xvmsg = [ \"rng, backend=old\" ]\n"
			       "xvmsg = [\n"
			       "  \"blk, backend=drv, path=/srv/d.img, ro, serial=s0, mode=grant, queues=2\",\n"
			       "\n"
			       "  'rng,backend=7 ,pool-pages = 16, devid=3',\n"
			       "]\n"
			       "xvmsg += [ \"console, backend=drv, pty, link=/run/c\" ]\n", &g), 0);
	assert_string_equal(g.name, "gu\"est");
	assert_int_equal(g.name_line, 2);
	assert_int_equal(g.desc.n, 3);
	assert_string_equal(g.desc.dev[0].type, "blk");
	assert_string_equal(g.desc.dev[0].backend, "drv");
	assert_string_equal(g.desc.dev[0].params, "path=/srv/d.img,ro,serial=s0,queues=2");
	assert_string_equal(g.desc.dev[0].mode, "grant");
	assert_int_equal(g.desc.dev[0].line, 8);
	assert_string_equal(g.desc.dev[1].backend, "7");
	assert_int_equal(g.desc.dev[1].pool_pages, 16);
	assert_true(g.desc.dev[1].have_devid);
	assert_int_equal(g.desc.dev[1].devid, 3);
	assert_int_equal(g.desc.dev[1].line, 10);
	assert_string_equal(g.desc.dev[2].params, "pty,link=/run/c");
	assert_int_equal(g.desc.dev[2].line, 12);
	/* a NIC */
	assert_int_equal(xlcfg("name=\"g\"\nxvmsg = [ \"net, backend=drv, tap=xvtap-g1, "
			       "mac=52:54:00:00:01:01, offload=off, mrg-rxbuf=on\" ]\n", &g), 0);
	assert_int_equal(g.desc.n, 1);
	assert_string_equal(g.desc.dev[0].type, "net");
	assert_string_equal(g.desc.dev[0].params,
			    "tap=xvtap-g1,mac=52:54:00:00:01:01,offload=off,mrg-rxbuf=on");
	/* no xvmsg key: a guest without xvmsg devices */
	assert_int_equal(xlcfg("name=\"g\"", &g), 0);
	assert_int_equal(g.desc.n, 0);
}

static void test_xlcfg_shipped(void **state)
{
	static struct ctl_guest g;
	static char buf[CTL_FILE_MAX];
	FILE *f = fopen("configs/xvmsg-guest.cfg", "r");
	size_t len;

	assert_non_null(f);
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	err[0] = '\0';
	assert_int_equal(ctl_parse_xlcfg(buf, len, "xvmsg-guest.cfg", &g, err, sizeof(err)), 0);
	assert_string_equal(g.name, "xvmsg-guest");
	assert_int_equal(g.desc.n, 2);
	assert_string_equal(g.desc.dev[0].params, "path=/srv/xvmsg/disk0.img,serial=disk0");
}

static void test_xlcfg_bad(void **state)
{
	static char big[CTL_FILE_MAX + 2];

	xlcfg_bad("name=\"g\"\nxvmsg = [ \"disk, backend=d\" ]\n",
		  "g.cfg:2: xvmsg entry \"disk, backend=d\": device type 'disk' unknown");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"blk, backend=d, path=/x, colour=blue\" ]\n",
		  "g.cfg:2: xvmsg entry \"blk, backend=d, path=/x, colour=blue\": unknown key 'colour' for blk");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"rng, backend=d, path=/x\" ]\n", "unknown key 'path' for rng");
	xlcfg_bad("name=\"g\"\nxvmsg = [\n\"rng, mode=pool\" ]\n", "g.cfg:3: xvmsg entry \"rng, mode=pool\": backend=DOMAIN missing");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"blk, backend=d, path=/x\",\n\"rng, backend=d\",\n"
		  "\"blk, backend=d, path=/x\" ]\n", "g.cfg:4: the same device (blk from d, path=/x) as the entry on line 2");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"blk, backend=d, path=/x, devid=2\",\n"
		  "\"rng, backend=d, devid=2\" ]\n", "g.cfg:3: devid 2 already used by the entry on line 2");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"rng, backend=d, backend=e\" ]\n", "key 'backend' given twice");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"blk, backend=d, path=/x, ro, ro\" ]\n", "key 'ro' given twice");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"blk, backend=d\" ]\n", "blk needs path=FILE");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"net, backend=d, mac=52:54:00:00:01:01\" ]\n",
		  "net needs tap=NAME");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"net, backend=d, tap=t, offload=maybe\" ]\n",
		  "offload= must be on or off");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"net, backend=d, tap=t, pool-pages=16\" ]\n",
		  "pool-pages must be at least 32 for net");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"net, backend=d, tap=t, path=/x\" ]\n",
		  "unknown key 'path' for net");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"blk, backend=d, path=/x, ro=yes\" ]\n", "ro takes no value");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"blk, backend=d, path=/x, discard=maybe\" ]\n", "discard= must be on or off");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"blk, backend=d, path=/x, queues=0\" ]\n", "queues= must be 1..16, not '0'");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"blk, backend=d, path=/x, queues=17\" ]\n", "queues= must be 1..16");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"blk, backend=d, path=/x, queues=+2\" ]\n", "queues= must be 1..16");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"blk, backend=d, path=\" ]\n", "path= needs a value");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"console, backend=d, pty, stdio\" ]\n", "exactly one of stdio, pty");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"console, backend=d, socket=/s, link=/l\" ]\n", "link= goes with pty only");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"rng, backend=d, pool-pages=2\" ]\n", "pool-pages must be at least 3 for rng");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"backend=d, rng\" ]\n", "the device type (blk, rng, console or net) comes first");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"rng,, backend=d\" ]\n", "empty item between commas");
	xlcfg_bad("name=\"g\"\nxvmsg = [ \"rng, backend=d\\n\" ]\n", "backslash escape");
	xlcfg_bad("name=\"g\"\nxvmsg = \"rng, backend=d\"\n", "g.cfg:2: xvmsg must be a list");
	xlcfg_bad("name=\"g\"\nxvmsg = [ [ \"rng, backend=d\" ] ]\n", "xvmsg entries are strings");
	xlcfg_bad("xvmsg = [ \"rng, backend=d\" ]\n", "g.cfg: no name = \"GUEST\"");
	xlcfg_bad("name = [ \"g\" ]\n", "g.cfg:1: name must be a string");
	xlcfg_bad("name=\"g\"\nmemory = (128)\n", "g.cfg:2: unexpected '('");
	xlcfg_bad("name=\"g\nmemory = 1\n", "g.cfg:1: string not closed");
	xlcfg_bad("name=\"g\"\ndisk = [ \"a\" \"b\" ]\n", "g.cfg:2: expected ',' or ']'");
	xlcfg_bad("name=\"g\" memory=1\n", "g.cfg:1: expected the end of the statement");
	xlcfg_bad("name\n", "g.cfg:1: expected '=' or '+='");
	xlcfg_bad("Name = \"g\"\n", "g.cfg:1: unexpected 'N'");
	xlcfg_bad("name=\"g\"\ncpus = [[[[[[[[[[[[[[[[[[\"0\"]]]]]]]]]]]]]]]]]]\n", "nested deeper");
	memset(big, '\n', sizeof(big));
	assert_int_equal(ctl_parse_xlcfg(big, sizeof(big), "g.cfg", &(struct ctl_guest){ 0 }, err,
					 sizeof(err)), -E2BIG);
}

static void test_args_create(void **state)
{
	struct ctl_args a;

	assert_int_equal(args(&a, "create", "g.cfg", "-q", "-e", NULL), 0);
	assert_int_equal(a.cmd, CTL_CMD_CREATE);
	assert_string_equal(a.file, "g.cfg");
	assert_int_equal(a.xl_argc, 2);
	assert_string_equal(a.xl_argv[1], "-e");
	assert_int_equal(args(&a, "create", "g.cfg", NULL), 0);
	assert_int_equal(a.xl_argc, 0);
	assert_int_equal(args(&a, "attach-from", "g.cfg", NULL), 0);
	assert_int_equal(a.cmd, CTL_CMD_ATTACH_FROM);
	assert_int_equal(args(&a, "create", "g.cfg", "-c", NULL), -EINVAL);
	assert_non_null(strstr(err, "'-c' is not allowed"));
	assert_int_equal(args(&a, "create", "g.cfg", "-qp", NULL), -EINVAL);
	assert_int_equal(args(&a, "create", "g.cfg", "-fother.cfg", NULL), -EINVAL);
	assert_int_equal(args(&a, "create", "g.cfg", "--dryrun", NULL), -EINVAL);
	assert_int_equal(args(&a, "create", "g.cfg", "memory=512", NULL), -EINVAL);
	assert_non_null(strstr(err, "'memory=512' is not an xl option"));
	assert_int_equal(args(&a, "create", NULL), -EINVAL);
	assert_int_equal(args(&a, "attach-from", "a", "b", NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uint),
		cmocka_unit_test(test_desc_good),
		cmocka_unit_test(test_desc_shipped),
		cmocka_unit_test(test_desc_bad),
		cmocka_unit_test(test_desc_limits),
		cmocka_unit_test(test_args_good),
		cmocka_unit_test(test_args_bad),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_dev_set),
		cmocka_unit_test(test_xlcfg_good),
		cmocka_unit_test(test_xlcfg_shipped),
		cmocka_unit_test(test_xlcfg_bad),
		cmocka_unit_test(test_args_create),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
