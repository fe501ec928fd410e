// SPDX-License-Identifier: MIT
/* xvmsg-backend configuration: command line and config file, good and bad. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "core.h"

static const struct xvb_model_ops *const models[] = {
	&xvb_blk_ops, &xvb_rng_ops, &xvb_console_ops, &xvb_net_ops, NULL,
};

static int parse(struct xvb_config *cfg, char *err, size_t len, ...)
{
	char *argv[32] = { "xvmsg-backend" };
	int argc = 1;
	va_list ap;
	FILE *out = fopen("/dev/null", "w");
	int rc;

	va_start(ap, len);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	xvb_config_defaults(cfg);
	err[0] = '\0';
	rc = xvb_config_parse_args(cfg, argc, argv, models, out, err, len);
	fclose(out);
	return rc;
}

static char *write_file(const char *text)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/xvmsg-cfg-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_cli_good(void **state)
{
	struct xvb_config cfg;
	char err[256];

	assert_int_equal(parse(&cfg, err, sizeof(err), "--socket", "/tmp/s", "--export",
			       "disk0:blk:path=/x.img,ro", "-e", "r:rng", "--log-level", "debug",
			       "--no-full", "--poll-us", "20", NULL), 0);
	assert_string_equal(cfg.socket_path, "/tmp/s");
	assert_int_equal(cfg.nexports, 2);
	assert_string_equal(cfg.exports[0].name, "disk0");
	assert_string_equal(cfg.exports[0].type, "blk");
	assert_string_equal(cfg.exports[0].params, "path=/x.img,ro");
	assert_string_equal(cfg.exports[1].type, "rng");
	assert_string_equal(cfg.exports[1].params, "");
	assert_int_equal(cfg.log_level, XVB_LOG_DEBUG);
	assert_false(cfg.allow_full);
	assert_int_equal(cfg.poll_us, 20);
}

/* Full mode (all of guest RAM to the backend) is off unless asked for;
 * the last of --full, --no-full and full-mode wins, and says it was given
 * (the Xen bus keeps its own default otherwise). */
static void test_full_mode_default_off(void **state)
{
	struct xvb_config cfg;
	char err[256];
	char *path = write_file("full-mode = yes\n");

	assert_int_equal(parse(&cfg, err, sizeof(err), "-e", "r:rng", NULL), 0);
	assert_false(cfg.allow_full);
	assert_false(cfg.full_given);
	assert_int_equal(parse(&cfg, err, sizeof(err), "-e", "r:rng", "--full", NULL), 0);
	assert_true(cfg.allow_full);
	assert_true(cfg.full_given);
	assert_int_equal(parse(&cfg, err, sizeof(err), "-e", "r:rng", "--full", "--no-full",
			       NULL), 0);
	assert_false(cfg.allow_full);
	assert_true(cfg.full_given);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--config", path, "-e", "r:rng", NULL), 0);
	assert_true(cfg.allow_full);
	assert_true(cfg.full_given);
	unlink(path);
}

/* The loop bus's per-guest quotas: mappings, store keys and bytes. */
static void test_guest_quotas(void **state)
{
	struct xvb_config cfg;
	char err[256];
	char *path = write_file("max-guest-keys = 64\nmax-guest-store-bytes = 8192\n"
				"max-guest-maps = 300\n");

	assert_int_equal(parse(&cfg, err, sizeof(err), "-e", "r:rng", NULL), 0);
	assert_int_equal(cfg.max_guest_keys, 0);		/* 0: the bus's default */
	assert_int_equal(cfg.max_guest_store_bytes, 0);
	assert_int_equal(cfg.max_guest_maps, 0);
	assert_int_equal(parse(&cfg, err, sizeof(err), "-e", "r:rng", "--max-guest-keys", "50",
			       "--max-guest-store-bytes", "10000", "--max-guest-maps", "100",
			       NULL), 0);
	assert_int_equal(cfg.max_guest_keys, 50);
	assert_int_equal(cfg.max_guest_store_bytes, 10000);
	assert_int_equal(cfg.max_guest_maps, 100);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--config", path, "-e", "r:rng", NULL), 0);
	assert_int_equal(cfg.max_guest_keys, 64);
	assert_int_equal(cfg.max_guest_store_bytes, 8192);
	assert_int_equal(cfg.max_guest_maps, 300);
	assert_true(parse(&cfg, err, sizeof(err), "-e", "r:rng", "--max-guest-keys", "0",
			  NULL) < 0);
	assert_non_null(strstr(err, "--max-guest-keys must be 16..1000000 keys"));
	assert_true(parse(&cfg, err, sizeof(err), "-e", "r:rng", "--max-guest-store-bytes",
			  "12k", NULL) < 0);
	/* getopt's abbreviation is named in full; the file's key without "--" */
	assert_int_equal(parse(&cfg, err, sizeof(err), "-e", "r:rng", "--max-guest-m", "200",
			       NULL), 0);
	assert_int_equal(cfg.max_guest_maps, 200);
	assert_true(parse(&cfg, err, sizeof(err), "-e", "r:rng", "--max-guest-m", "15",
			  NULL) < 0);
	assert_non_null(strstr(err, "--max-guest-maps must be 16..16000000 mappings"));
	unlink(path);
	path = write_file("max-guest-store-bytes = 4095\n");
	assert_true(parse(&cfg, err, sizeof(err), "--config", path, "-e", "r:rng", NULL) < 0);
	assert_non_null(strstr(err, "max-guest-store-bytes must be 4096..1073741824 bytes"));
	assert_null(strstr(err, "--max"));
	assert_true(parse(&cfg, err, sizeof(err), "-e", "r:rng", "--max-guest-maps", "-5",
			  NULL) < 0);
	unlink(path);
}

/* --queue-threads / queue-threads: 0 (the default, queues on the loop
 * thread) to 64. */
static void test_queue_threads(void **state)
{
	struct xvb_config cfg;
	char err[256];
	char *path = write_file("queue-threads = 3\n");

	assert_int_equal(parse(&cfg, err, sizeof(err), "-e", "r:rng", NULL), 0);
	assert_int_equal(cfg.queue_threads, 0);
	assert_int_equal(parse(&cfg, err, sizeof(err), "-e", "r:rng", "--queue-threads", "64",
			       NULL), 0);
	assert_int_equal(cfg.queue_threads, 64);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--config", path, "-e", "r:rng", NULL), 0);
	assert_int_equal(cfg.queue_threads, 3);
	assert_true(parse(&cfg, err, sizeof(err), "-e", "r:rng", "--queue-threads", "65",
			  NULL) < 0);
	assert_non_null(strstr(err, "--queue-threads must be 0..64 threads"));
	assert_true(parse(&cfg, err, sizeof(err), "-e", "r:rng", "--queue-threads", "two",
			  NULL) < 0);
	assert_true(parse(&cfg, err, sizeof(err), "-e", "r:rng", "--queue-threads", "-1",
			  NULL) < 0);
	assert_true(parse(&cfg, err, sizeof(err), "-e", "r:rng", "--queue-threads", "",
			  NULL) < 0);
	unlink(path);
}

static void test_cli_help_and_version(void **state)
{
	struct xvb_config cfg;
	char err[256];

	assert_int_equal(parse(&cfg, err, sizeof(err), "--help", NULL), 1);
	assert_int_equal(parse(&cfg, err, sizeof(err), "-V", NULL), 1);
}

static void expect_error(const char *needle, ...)
{
	struct xvb_config cfg;
	char err[256], *argv[32] = { "xvmsg-backend" };
	int argc = 1;
	va_list ap;
	FILE *out = fopen("/dev/null", "w");

	va_start(ap, needle);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	xvb_config_defaults(&cfg);
	err[0] = '\0';
	assert_true(xvb_config_parse_args(&cfg, argc, argv, models, out, err, sizeof(err)) < 0);
	fclose(out);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not mention '%s'", err, needle);
}

static void test_cli_bad(void **state)
{
	expect_error("no devices to serve", NULL);
	expect_error("unknown option", "--frobnicate", NULL);
	expect_error("needs an argument", "--export", NULL);
	expect_error("unknown device type 'floppy'", "-e", "a:floppy", NULL);
	expect_error("expected NAME:TYPE", "-e", "justaname", NULL);
	expect_error("defined twice", "-e", "a:rng", "-e", "a:rng", NULL);
	expect_error("export name", "-e", "bad name:rng", NULL);
	expect_error("not key=value", "-e", "a:blk:path=/x,,ro", NULL);
	expect_error("log-level", "-e", "a:rng", "--log-level", "loud", NULL);
	expect_error("bus 'kvm' unknown", "-e", "a:rng", "--bus", "kvm", NULL);
	expect_error("poll-us", "-e", "a:rng", "--poll-us", "-1", NULL);
	expect_error("unexpected argument", "-e", "a:rng", "extra", NULL);
	expect_error("socket path", "-e", "a:rng", "--socket",
		     "/a/very/long/path/that/does/not/fit/in/a/unix/socket/address/because/it/is/"
		     "longer/than/one/hundred/and/eight/bytes", NULL);
}

static void test_xen_bus_needs_no_exports(void **state)
{
	struct xvb_config cfg;
	char err[256];

	assert_int_equal(parse(&cfg, err, sizeof(err), "--bus", "xen", NULL), 0);
	assert_string_equal(cfg.bus, "xen");
}

static void test_file_good(void **state)
{
	struct xvb_config cfg;
	char err[256];
	char *path = write_file("# a comment\n"
				"socket = /run/x.sock   # trailing comment\n"
				"\n"
				"log-level = warn\n"
				"full-mode = no\n"
				"stats-on-exit = yes\n"
				"export disk0 blk path=/srv/d.img,serial=d0\n"
				"export rng0  rng\n");

	assert_int_equal(parse(&cfg, err, sizeof(err), "--config", path, "--log-level", "info",
			       NULL), 0);
	assert_string_equal(cfg.socket_path, "/run/x.sock");
	assert_int_equal(cfg.log_level, XVB_LOG_INFO);	/* the flag after --config wins */
	assert_false(cfg.allow_full);
	assert_true(cfg.stats_on_exit);
	assert_int_equal(cfg.nexports, 2);
	assert_string_equal(cfg.exports[0].params, "path=/srv/d.img,serial=d0");
	unlink(path);
}

static void file_error(const char *text, const char *needle)
{
	struct xvb_config cfg;
	char err[256];
	char *path = write_file(text);

	xvb_config_defaults(&cfg);
	assert_true(xvb_config_load(&cfg, path, models, err, sizeof(err)) < 0);
	if (!strstr(err, needle) || !strstr(err, path))
		fail_msg("error '%s' does not name the file and '%s'", err, needle);
	unlink(path);
}

static void test_file_bad(void **state)
{
	struct xvb_config cfg;
	char err[256];

	file_error("socket = /x\nwhat is this\n", ":2: expected 'key = value'");
	file_error("colour = blue\n", ":1: unknown setting 'colour'");
	file_error("export\tonlyname\n", ":1: expected: export NAME TYPE");
	file_error("export a teapot\n", "unknown device type 'teapot'");
	file_error("full-mode = perhaps\n", "not yes or no");
	file_error("log-level = 7\n", "log-level must be");
	xvb_config_defaults(&cfg);
	assert_int_equal(xvb_config_load(&cfg, "/nonexistent/xvmsg.conf", models, err,
					 sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/xvmsg.conf"));
}

static void test_file_long_line(void **state)
{
	char *text = malloc(3000);

	memset(text, 'x', 2998);
	text[2998] = '\n';
	text[2999] = '\0';
	file_error(text, "line too long");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_good),
		cmocka_unit_test(test_cli_help_and_version),
		cmocka_unit_test(test_full_mode_default_off),
		cmocka_unit_test(test_guest_quotas),
		cmocka_unit_test(test_queue_threads),
		cmocka_unit_test(test_cli_bad),
		cmocka_unit_test(test_xen_bus_needs_no_exports),
		cmocka_unit_test(test_file_good),
		cmocka_unit_test(test_file_bad),
		cmocka_unit_test(test_file_long_line),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
