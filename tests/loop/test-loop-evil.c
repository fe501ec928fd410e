// SPDX-License-Identifier: MIT
/*
 * Integration: the malicious driver (tests/hostile/) against a real
 * xvmsg-backend process on the loopback bus.  Each case gets a fresh
 * backend serving a disk to abuse, an rng and a witness disk that a second
 * guest keeps using; the case asserts its expected outcome, then the
 * witness must still be served.  Under make check-san the backend runs
 * with ASan and UBSan, so a stray access is a failure too.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "loop-fixture.h"
#include "evil.h"

struct fx {
	struct loop_fx lf;	/* lf.d: the evil domain, also e.d */
	struct evil_env e;
	struct xvd_domain *wd;	/* the witness's domain */
	char tap[16];		/* the net export's */
};

static const struct evil_case *current;

static int log_count(void *ctx, const char *needle)
{
	return backend_log_count(ctx, needle);
}

static long stat_of(void *ctx, const char *dev, const char *key)
{
	return backend_stat(ctx, dev, key);
}

/* A backend whose counters cannot be read. */
static long stat_unread(void *ctx, const char *dev, const char *key)
{
	return -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f && f->e.witness)
		xvd_dev_close(f->e.witness);
	if (f && f->wd)
		xvd_domain_close(f->wd);
	return loop_fx_teardown(state);
}

static int setup(void **state)
{
	struct loop_fx_opts o = {
		.disk_bytes = 4u << 20,
		/* --full: full-outside and full-map-flood abuse full mode. */
		.args = { "--export", NULL, "--export", "rng0:rng", "--full", "--export", NULL },
		.open_domain = 1, .domain = { .log_level = XVD_LOG_ERR },
	};
	struct xvd_dev_opts wo = { .export_name = "witness", .devid = 1,
				   .mode = XVD_MODE_POOL, .pool_pages = 32 };
	struct fx *f = calloc(1, sizeof(*f));
	char wimg[160], wexp[256], nexp[64];

	*state = f;
	if (!f)
		return -1;
	/* No asserts here: cmocka skips the teardown when a setup fails. */
	SETUP_TRY(backend_setup(&f->lf.b));
	SETUP_TRY(backend_image(&f->lf.b, "witness.img", 1u << 20, wimg, sizeof(wimg)));
	snprintf(wexp, sizeof(wexp), "witness:blk:path=%s", wimg);
	o.args[1] = wexp;
	snprintf(f->tap, sizeof(f->tap), "xve%u", (unsigned int)getpid() % 100000);
	snprintf(nexp, sizeof(nexp), "net0:net:tap=%s", f->tap);
	o.args[6] = nexp;
	SETUP_TRY(loop_fx_start(&f->lf, &o));
	f->e.net_export = "net0";
	f->e.net_tap = f->tap;
	f->e.net_devid = 3;
	f->e.d = f->lf.d;
	f->e.blk_export = "disk0";
	f->e.rng_export = "rng0";
	f->e.blk_devid = 1;
	f->e.rng_devid = 2;
	f->e.spare_devid = 100;
	f->e.backend_pid = f->lf.b.pid;
	f->e.socket_path = f->lf.b.sock;
	f->e.log_count = log_count;
	f->e.log_ctx = &f->lf.b;
	f->e.backend_stat = stat_of;
	SETUP_TRY(loop_fx_domain(&f->lf, o.domain, &f->wd));
	SETUP_TRY(xvd_blk_open(f->wd, &wo, &f->e.witness));
	return 0;
fail:
	teardown(state);
	return -1;
}

static void run_case(void **state)
{
	struct fx *f = *state;
	char obs[512] = "";
	int r;

	r = current->run(&f->e, obs, sizeof(obs));
	if (r == 0)
		r = evil_witness_ok(&f->e, obs, sizeof(obs));
	if (r) {
		print_error("evil/%s: expected %s; observed %s\n", current->name,
			    current->expect, obs);
		backend_dump_log(&f->lf.b);
	} else {
		print_message("evil/%s: %s\n", current->name, obs);
	}
	assert_int_equal(r, 0);
}

/*
 * A net case must not pass on its sends alone: where the counters should
 * be seen but read -1, it fails and says so (it used to skip the checks).
 */
static void run_case_unread(void **state)
{
	struct fx *f = *state;
	char obs[512] = "";
	int r;

	f->e.backend_stat = stat_unread;
	r = current->run(&f->e, obs, sizeof(obs));
	print_message("evil/%s, counters unreadable: %s\n", current->name, obs);
	assert_int_not_equal(r, 0);
	assert_non_null(strstr(obs, "could not be read"));
}

/* XVMSG_EVIL_CASES="a b": run only the cases named (for working on one);
 * unset: all of them, as make check does. */
static bool wanted(const char *name)
{
	const char *list = getenv("XVMSG_EVIL_CASES"), *p;
	size_t n = strlen(name);

	if (!list || !*list)
		return true;
	for (p = list; (p = strstr(p, name)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
			return true;
	return false;
}

int main(void)
{
	static const struct evil_case *const tables[] = { evil_ring_cases, evil_msg_cases,
							  evil_quota_cases, evil_net_cases };
	int fail = 0, total = 0;

	signal(SIGPIPE, SIG_IGN);
	/* One cmocka group per case, so each is named in the output. */
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		for (const struct evil_case *k = tables[t]; k->name; k++) {
			if (!wanted(k->name))
				continue;
			const struct CMUnitTest one[] = {
				{ k->name, run_case, setup, teardown, NULL },
			};

			current = k;
			total++;
			fail += cmocka_run_group_tests_name(k->name, one, NULL, NULL) != 0;
		}
	}
	for (const struct evil_case *k = evil_net_cases; k->name; k++) {
		char name[64];

		if (!wanted(k->name))
			continue;
		snprintf(name, sizeof(name), "%s-unread", k->name);
		const struct CMUnitTest one[] = {
			{ name, run_case_unread, setup, teardown, NULL },
		};

		current = k;
		total++;
		fail += cmocka_run_group_tests_name(name, one, NULL, NULL) != 0;
	}
	printf("loop-evil: %d passed, %d failed\n", total - fail, fail);
	return fail ? 1 : 0;
}
