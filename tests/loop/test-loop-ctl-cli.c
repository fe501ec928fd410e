// SPDX-License-Identifier: MIT
/*
 * xvmsg-ctl as a program: every argument and description-file error is
 * reported with its reason and exit status 2 (usage) or 1 (file), before
 * xenstore is opened -- so this runs on any host, without Xen.  The
 * parsers themselves are unit-tested (test-ctl-parse) and fuzzed
 * (fuzz-ctl); this checks the binary wires them up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

/* Run xvmsg-ctl with args (NULL-ended); its stderr goes to err.  Returns
 * the exit status, or -1 if it did not exit normally. */
static int run_ctl(char *err, size_t len, ...)
{
	const char *dir = getenv("XVMSG_BIN");
	char prog[512], *argv[16];
	int pipefd[2], status, argc = 1;
	size_t used = 0;
	ssize_t n;
	va_list ap;
	pid_t pid;

	snprintf(prog, sizeof(prog), "%s/xvmsg-ctl", dir ? dir : "build/bin");
	argv[0] = prog;
	va_start(ap, len);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], 2);
		dup2(pipefd[1], 1);
		close(pipefd[0]);
		execv(prog, argv);
		_exit(127);
	}
	close(pipefd[1]);
	while (used + 1 < len && (n = read(pipefd[0], err + used, len - 1 - used)) > 0)
		used += (size_t)n;
	err[used] = 0;
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void expect(int want_rc, const char *want_msg, int rc, const char *out)
{
	if (rc != want_rc || !strstr(out, want_msg) || strstr(out, "xenstore"))
		print_error("exit %d, output: %s\n", rc, out);
	assert_int_equal(rc, want_rc);
	assert_non_null(strstr(out, want_msg));
	assert_null(strstr(out, "xenstore"));	/* refused before opening it */
}

static void test_bad_arguments(void **state)
{
	char out[1024];
	int rc;

	rc = run_ctl(out, sizeof(out), "attach", "g", "d", "blk", "path=/x", "--devid",
		     "99999999999", NULL);
	expect(2, "--devid must be 0..65535", rc, out);
	rc = run_ctl(out, sizeof(out), "attach", "g", "d", "blk", "path=/x", "--mode", "bogus", NULL);
	expect(2, "--mode must be pool, grant or full", rc, out);
	rc = run_ctl(out, sizeof(out), "attach", "g", "d", "blk", "path=/x", "--pool-pages", "0",
		     NULL);
	expect(2, "--pool-pages must be 1..65536", rc, out);
	rc = run_ctl(out, sizeof(out), "attach", "g", "d", "disk", "path=/x", NULL);
	expect(2, "disk", rc, out);
	rc = run_ctl(out, sizeof(out), "detach", "g", "abc", NULL);
	expect(2, "device id 'abc' is not a number", rc, out);
	rc = run_ctl(out, sizeof(out), "frobnicate", NULL);
	expect(2, "unknown command 'frobnicate'", rc, out);
	rc = run_ctl(out, sizeof(out), "attach", "g", NULL);
	expect(2, "see xvmsg-ctl --help", rc, out);
}

static void test_bad_description_file(void **state)
{
	char path[] = "/tmp/xvmsg-ctl-cli-XXXXXX", out[1024];
	static const char *const bad[][2] = {
		{ "blk backend=d mode=grant mode=pool\n", ":1: key 'mode' given twice" },
		{ "rng backend=d\nblk backend=d colour=blue\n", ":2: " },
		{ "blk backend=d devid=4\nrng backend=d devid=4\n", "devid 4 already used on line 1" },
		{ "blk mode=pool\n", ":1: " },
		{ "rng backend=d pool-pages=99999999\n", ":1: " },
	};
	int fd, rc;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fd = mkstemp(path);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, bad[i][0], strlen(bad[i][0])), (ssize_t)strlen(bad[i][0]));
		close(fd);
		rc = run_ctl(out, sizeof(out), "apply", "g", path, NULL);
		unlink(path);
		strcpy(path, "/tmp/xvmsg-ctl-cli-XXXXXX");
		expect(1, bad[i][1], rc, out);
	}
}

static void test_help(void **state)
{
	char out[8192];

	assert_int_equal(run_ctl(out, sizeof(out), "--help", NULL), 0);
	assert_non_null(strstr(out, "detach FRONTEND DEVID"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_bad_description_file),
		cmocka_unit_test(test_help),
	};

	return cmocka_run_group_tests_name("loop-ctl-cli", tests, NULL, NULL);
}
