// SPDX-License-Identifier: MIT
/*
 * Unit tests of the loopback bus's store (loop-store.c): paths, the tree,
 * removal of directories, and the accounts of guests with their quotas.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "loop-store.h"

struct fx {
	struct ls_store *s;
	char removed[64][64];		/* what removals reported */
	unsigned int nremoved;
};

static const struct ls_limits lim = { .keys = 5, .bytes = 200, .total = 30000 };

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || ls_create(&lim, &f->s))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	ls_destroy(f->s);
	free(f);
	return 0;
}

static void on_removed(void *arg, const char *path)
{
	struct fx *f = arg;

	if (f->nremoved < 64)
		snprintf(f->removed[f->nremoved], sizeof(f->removed[0]), "%s", path);
	f->nremoved++;
}

static bool was_removed(const struct fx *f, const char *path)
{
	for (unsigned int i = 0; i < f->nremoved && i < 64; i++)
		if (!strcmp(f->removed[i], path))
			return true;
	return false;
}

struct names {
	char buf[256];
	unsigned int n;
};

static int add_name(void *arg, const char *child)
{
	struct names *nm = arg;

	size_t used = strlen(nm->buf);

	nm->n++;
	if (used + strlen(child) + 2 <= sizeof(nm->buf))
		snprintf(nm->buf + used, sizeof(nm->buf) - used, "%s ", child);
	return 0;
}

/* The children of path, as "a b c " in any order (the names only as far
 * as they fit); returns their count. */
static unsigned int kids(struct fx *f, const char *path, struct names *nm)
{
	memset(nm, 0, sizeof(*nm));
	assert_int_equal(ls_dir(f->s, path, add_name, nm), 0);
	return nm->n;
}

static void test_paths(void **state)
{
	struct fx *f = *state;
	char longp[300];

	assert_int_equal(ls_write(f->s, "/a/b/c", "1", NULL), 0);
	assert_string_equal(ls_read(f->s, "/a/b/c"), "1");
	assert_int_equal(ls_write(f->s, "/a/b/c", "22", NULL), 0);
	assert_string_equal(ls_read(f->s, "/a/b/c"), "22");
	assert_null(ls_read(f->s, "/a/b"));		/* a directory only */
	assert_null(ls_read(f->s, "/a/b/c/d"));
	assert_null(ls_read(f->s, "/a/b/"));
	assert_int_equal(ls_count(f->s), 1);
	for (const char *bad[] = { "", "a", "/", "/a/", "//a", "/a//b", "a/b", NULL }, **p = bad;
	     *p; p++)
		assert_int_equal(ls_write(f->s, *p, "x", NULL), -EINVAL);
	memset(longp, 'x', sizeof(longp));
	longp[0] = '/';
	longp[LS_MAX_PATH + 1] = '\0';
	assert_int_equal(ls_write(f->s, longp, "x", NULL), -EINVAL);
	longp[LS_MAX_PATH] = '\0';
	assert_int_equal(ls_write(f->s, longp, "x", NULL), 0);
	/* A directory may have a value of its own. */
	assert_int_equal(ls_write(f->s, "/a/b", "dir", NULL), 0);
	assert_string_equal(ls_read(f->s, "/a/b"), "dir");
	assert_string_equal(ls_read(f->s, "/a/b/c"), "22");
	assert_int_equal(ls_count(f->s), 3);
}

static void test_dir_and_rm(void **state)
{
	struct fx *f = *state;
	struct names nm;

	assert_int_equal(ls_write(f->s, "/d/x/1", "a", NULL), 0);
	assert_int_equal(ls_write(f->s, "/d/x/2", "b", NULL), 0);
	assert_int_equal(ls_write(f->s, "/d/x/2/deep", "c", NULL), 0);
	assert_int_equal(ls_write(f->s, "/d/y", "d", NULL), 0);
	assert_int_equal(ls_write(f->s, "/dd/z", "e", NULL), 0);
	assert_int_equal(kids(f, "/d", &nm), 2);
	assert_non_null(strstr(nm.buf, "x "));
	assert_non_null(strstr(nm.buf, "y "));
	assert_int_equal(kids(f, "/d/x", &nm), 2);
	assert_int_equal(kids(f, "/d/x/2", &nm), 1);
	assert_string_equal(nm.buf, "deep ");
	assert_int_equal(kids(f, "/d/y", &nm), 0);		/* exists, no children */
	assert_int_equal(ls_dir(f->s, "/d/q", add_name, &nm), -ENOENT);
	assert_int_equal(ls_dir(f->s, "/d/", add_name, &nm), -ENOENT);

	/* Removing a directory takes what is below it, nothing beside it
	 * ("/dd" is no child of "/d"). */
	assert_int_equal(ls_rm(f->s, "/d/x", on_removed, f), 0);
	assert_int_equal(f->nremoved, 3);
	assert_true(was_removed(f, "/d/x/1") && was_removed(f, "/d/x/2") &&
		    was_removed(f, "/d/x/2/deep"));
	assert_null(ls_read(f->s, "/d/x/2/deep"));
	assert_int_equal(ls_dir(f->s, "/d/x", add_name, &nm), -ENOENT);
	assert_string_equal(ls_read(f->s, "/d/y"), "d");
	assert_string_equal(ls_read(f->s, "/dd/z"), "e");
	assert_int_equal(ls_rm(f->s, "/d/x", on_removed, f), -ENOENT);
	/* The last value gone, its empty directories go too. */
	assert_int_equal(ls_rm(f->s, "/d/y", NULL, NULL), 0);
	assert_int_equal(ls_dir(f->s, "/d", add_name, &nm), -ENOENT);
	assert_int_equal(kids(f, "/dd", &nm), 1);
	assert_int_equal(ls_count(f->s), 1);
}

/* A guest's account: its keys and bytes against its quota; a rewrite of
 * its own key is re-charged; the toolstack's keys stay nobody's; removing
 * (directory or whole account) gives the room back. */
static void test_accounts(void **state)
{
	struct fx *f = *state;
	struct ls_account a = { 0 }, b = { 0 };
	struct names nm;
	char key[32], big[160];
	unsigned int i;

	assert_int_equal(ls_write(f->s, "/g/1/state", "1", NULL), 0);	/* toolstack */
	for (i = 0; i < lim.keys; i++) {
		snprintf(key, sizeof(key), "/g/1/k%u", i);
		assert_int_equal(ls_write(f->s, key, "v", &a), 0);
	}
	assert_int_equal(a.keys, lim.keys);
	assert_int_equal(a.bytes, lim.keys * (strlen("/g/1/k0") + 1));
	assert_int_equal(ls_write(f->s, "/g/1/k9", "v", &a), -EDQUOT);
	assert_null(ls_read(f->s, "/g/1/k9"));
	assert_int_equal(ls_write(f->s, "/g/1/k0", "vv", &a), 0);	/* its own */
	assert_int_equal(a.bytes, lim.keys * (strlen("/g/1/k0") + 1) + 1);
	assert_int_equal(ls_write(f->s, "/g/1/state", "4", &a), 0);	/* the toolstack's */
	assert_int_equal(a.keys, lim.keys);
	assert_int_equal(ls_write(f->s, "/g/2/k0", "v", &b), 0);	/* another guest */
	/* Bytes: a long value does not fit b's 200. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(ls_write(f->s, "/g/2/big", big, &b), 0);
	assert_int_equal(ls_write(f->s, "/g/2/big2", big, &b), -EDQUOT);
	assert_int_equal(b.keys, 2);

	/* Removing a directory unaccounts what was in it. */
	assert_int_equal(ls_rm(f->s, "/g/2", NULL, NULL), 0);
	assert_int_equal(b.keys, 0);
	assert_int_equal(b.bytes, 0);
	assert_null(b.nodes);
	/* The account goes: every value it wrote, not the toolstack's. */
	assert_int_equal(ls_rm_account(f->s, &a, on_removed, f), lim.keys);
	assert_int_equal(f->nremoved, lim.keys);
	assert_int_equal(a.keys, 0);
	assert_int_equal(a.bytes, 0);
	assert_string_equal(ls_read(f->s, "/g/1/state"), "4");
	assert_int_equal(kids(f, "/g/1", &nm), 1);
	assert_int_equal(kids(f, "/g", &nm), 1);
	assert_int_equal(ls_rm_account(f->s, &a, NULL, NULL), 0);
	assert_int_equal(ls_count(f->s), 1);
}

/* Many keys (hashed, the table grows): all found, listed and removed. */
static void test_many(void **state)
{
	struct fx *f = *state;
	char key[64], val[16];
	struct names nm;
	unsigned int i;

	for (i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "/m/%u/k%u", i % 100, i);
		snprintf(val, sizeof(val), "%u", i * 3);
		assert_int_equal(ls_write(f->s, key, val, NULL), 0);
	}
	assert_int_equal(ls_count(f->s), 20000);
	for (i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "/m/%u/k%u", i % 100, i);
		snprintf(val, sizeof(val), "%u", i * 3);
		assert_string_equal(ls_read(f->s, key), val);
	}
	assert_int_equal(kids(f, "/m", &nm), 100);
	for (i = 0; i < 100; i += 2) {
		snprintf(key, sizeof(key), "/m/%u", i);
		assert_int_equal(ls_rm(f->s, key, NULL, NULL), 0);
	}
	assert_int_equal(ls_count(f->s), 10000);
	assert_int_equal(kids(f, "/m", &nm), 50);
	assert_null(ls_read(f->s, "/m/0/k0"));
	assert_string_equal(ls_read(f->s, "/m/1/k1"), "3");
}

/* The store's limit of values: a backstop, refused with -ENOSPC. */
static void test_total(void **state)
{
	static const struct ls_limits small = { .keys = 10, .bytes = 1000, .total = 3 };
	struct ls_store *s;

	(void)state;
	assert_int_equal(ls_create(&small, &s), 0);
	assert_int_equal(ls_write(s, "/t/1", "v", NULL), 0);
	assert_int_equal(ls_write(s, "/t/2", "v", NULL), 0);
	assert_int_equal(ls_write(s, "/t/3", "v", NULL), 0);
	assert_int_equal(ls_write(s, "/t/4", "v", NULL), -ENOSPC);
	assert_int_equal(ls_write(s, "/t/3", "w", NULL), 0);		/* a rewrite fits */
	assert_int_equal(ls_rm(s, "/t/1", NULL, NULL), 0);
	assert_int_equal(ls_write(s, "/t/4", "v", NULL), 0);
	ls_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_and_rm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accounts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
		cmocka_unit_test(test_total),
	};

	return cmocka_run_group_tests_name("loop-store", tests, NULL, NULL);
}
