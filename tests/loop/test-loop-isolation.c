// SPDX-License-Identifier: MIT
/*
 * Integration: what the backend process can reach in each mode.
 *
 * Pool mode: the backend holds no mapping and no fd of the driver's guest
 * RAM memfd, only of the device region (message page + pool).  Grant and
 * full mode are the positive controls: there the backend does get RAM, so
 * the check is shown to be able to fail.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "loop-fixture.h"

/* A backend with the default options, or with --full. */
static int setup(void **state)
{
	static const struct loop_fx_opts o = { .disk_bytes = 4u << 20 };

	return loop_fx_setup(state, sizeof(struct loop_fx), &o);
}

static int setup_full(void **state)
{
	static const struct loop_fx_opts o = { .disk_bytes = 4u << 20, .args = { "--full" } };

	return loop_fx_setup(state, sizeof(struct loop_fx), &o);
}

/* Inode of this process's memfd called name, from /proc/self/maps. */
static unsigned long memfd_inode(pid_t pid, const char *name)
{
	char path[64], line[512], want[64];
	unsigned long ino = 0;
	FILE *m;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	snprintf(want, sizeof(want), "/memfd:%s ", name);
	m = fopen(path, "r");
	if (!m)
		return 0;
	while (fgets(line, sizeof(line), m)) {
		unsigned long i;
		char *p = strstr(line, "/memfd:");

		if (!p || strncmp(p, want, strlen(want)))
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %lu", &i) == 1) {
			ino = i;
			break;
		}
	}
	fclose(m);
	return ino;
}

/* Mappings of inode ino in process pid (memfd mappings only). */
static int maps_of_inode(pid_t pid, unsigned long ino)
{
	char path[64], line[512];
	int n = 0;
	FILE *m;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	m = fopen(path, "r");
	assert_non_null(m);
	while (fgets(line, sizeof(line), m)) {
		unsigned long i;

		if (strstr(line, "/memfd:") && sscanf(line, "%*s %*s %*s %*s %lu", &i) == 1 &&
		    i == ino)
			n++;
	}
	fclose(m);
	return n;
}

/* Open fds of process pid that refer to inode ino. */
static int fds_of_inode(pid_t pid, unsigned long ino)
{
	char path[64], fp[320];
	struct dirent *e;
	struct stat st;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	assert_non_null(dir);
	while ((e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(fp, sizeof(fp), "%s/%s", path, e->d_name);
		if (stat(fp, &st) == 0 && st.st_ino == ino)
			n++;
	}
	closedir(dir);
	return n;
}

static void run_io(struct loop_fx *f, int mode)
{
	struct xvd_domain_opts dopts = { .socket_path = f->b.sock, .ram_pages = 4096,
					 .log_level = XVD_LOG_WARN };
	struct xvd_dev_opts o = { .export_name = "disk0", .mode = mode, .pool_pages = 256 };
	uint8_t buf[8192];
	unsigned int i;

	assert_int_equal(xvd_domain_open_loop(&dopts, &f->d), 0);
	assert_int_equal(xvd_blk_open(f->d, &o, &f->dev), 0);
	for (i = 0; i < 64; i++) {
		memset(buf, (int)i, sizeof(buf));
		assert_int_equal(xvd_blk_write(f->dev, i * 16, buf, sizeof(buf)), 0);
		assert_int_equal(xvd_blk_read(f->dev, i * 16, buf, sizeof(buf)), 0);
	}
}

static void test_pool_mode_reaches_only_the_pool(void **state)
{
	struct loop_fx *f = *state;
	unsigned long ram, dev;

	run_io(f, XVD_MODE_POOL);
	ram = memfd_inode(getpid(), "xvmsg-ram");
	dev = memfd_inode(getpid(), "xvmsg-dev");
	assert_int_not_equal(ram, 0);
	assert_int_not_equal(dev, 0);
	/* The backend maps the pool (positive control of the detector)... */
	assert_true(maps_of_inode(f->b.pid, dev) > 0);
	/* ...and nothing of guest RAM, neither mapped nor as an fd. */
	assert_int_equal(maps_of_inode(f->b.pid, ram), 0);
	assert_int_equal(fds_of_inode(f->b.pid, ram), 0);
}

static void test_grant_mode_gets_ram(void **state)
{
	struct loop_fx *f = *state;
	unsigned long ram;

	run_io(f, XVD_MODE_GRANT);
	ram = memfd_inode(getpid(), "xvmsg-ram");
	assert_int_not_equal(ram, 0);
	/* The RAM region was handed over (checked against grants on each map). */
	assert_true(fds_of_inode(f->b.pid, ram) > 0);
}

static void test_full_mode_maps_ram(void **state)
{
	struct loop_fx *f = *state;
	unsigned long ram;

	run_io(f, XVD_MODE_FULL);
	ram = memfd_inode(getpid(), "xvmsg-ram");
	assert_true(maps_of_inode(f->b.pid, ram) > 0);
}

/* Full mode hands the backend all of guest RAM: off unless the backend was
 * started with --full.  The attach is refused, nothing of RAM reaches the
 * backend, and pool mode works as before. */
static void test_full_mode_off_by_default(void **state)
{
	struct loop_fx *f = *state;
	struct xvd_domain_opts dopts = { .socket_path = f->b.sock, .ram_pages = 4096,
					 .log_level = -1 };
	struct xvd_dev_opts o = { .export_name = "disk0", .mode = XVD_MODE_FULL };
	unsigned long ram;

	assert_int_equal(xvd_domain_open_loop(&dopts, &f->d), 0);
	assert_int_equal(xvd_blk_open(f->d, &o, &f->dev), -EPERM);
	f->dev = NULL;
	ram = memfd_inode(getpid(), "xvmsg-ram");
	if (ram)
		assert_int_equal(maps_of_inode(f->b.pid, ram), 0);
	xvd_domain_close(f->d);
	f->d = NULL;
	run_io(f, XVD_MODE_POOL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pool_mode_reaches_only_the_pool, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_grant_mode_gets_ram, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_full_mode_maps_ram, setup_full, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_full_mode_off_by_default, setup, loop_fx_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("loop-isolation", tests, NULL, NULL);
}
