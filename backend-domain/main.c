// SPDX-License-Identifier: MIT
/*
 * xvmsg-backend: serves virtio devices over a bus, from a driver domain.
 * main() lists the device models, reads the configuration, checks every
 * export by creating it once, then runs the event loop until SIGTERM.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

#include "config.h"
#include "core.h"

static const struct xvb_model_ops *const models[] = {
	&xvb_blk_ops,
	&xvb_rng_ops,
	&xvb_console_ops,
	&xvb_net_ops,
	NULL,
};

struct app {
	struct xvb_backend be;
	struct xvb_bus *bus;
	struct xvb_log log;
	struct xvb_log_cond bus_err;	/* dispatch failing: logged once, not per call */
	bool stop;
};

static void on_bus(void *arg, int fd, uint32_t events)
{
	struct app *app = arg;

	xvb_log_cond(&app->log, &app->bus_err, app->bus->ops->dispatch(app->bus), "bus");
}

static void on_signal(void *arg, int fd, uint32_t events)
{
	struct app *app = arg;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGUSR1) {
			xvb_backend_dump_stats(&app->be, stderr);
		} else {
			xvb_info(&app->log, "signal %u: finishing", si.ssi_signo);
			app->stop = true;
		}
	}
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * After work, keep serving queues without waiting for kicks until poll_us
 * pass with nothing to do (like vhost's busyloop_timeout): a sleep/wake
 * cycle between two processes costs far more than a short spin.  While it
 * polls, the queues are quiet (no kick asked for: a driver that keeps its
 * queue busy makes no system call to notify us), and the loop's fds
 * (completions, kicks of other devices, the bus) are looked at only after
 * work or every POLL_FDS_US, so a spin is reads of shared memory, not a
 * system call a turn.  Before sleeping every queue is armed again and
 * looked at once more.  Idle, nothing runs: the poll only follows work.
 */
#define POLL_FDS_US 20

static void busy_poll(struct app *app, struct xvb_evloop *loop, unsigned int poll_us)
{
	uint64_t now = now_us(), idle_since = now, fds_at = now;

	xvb_backend_quiet(&app->be);
	for (;;) {
		while (!app->stop && now - idle_since < poll_us) {
			bool worked = xvb_backend_poll(&app->be);

			if (worked || now - fds_at >= POLL_FDS_US) {
				worked |= xvb_evloop_run_once(loop, 0) > 0;
				fds_at = now_us();
			}
			now = now_us();
			if (worked)
				idle_since = now;
		}
		if (!xvb_backend_arm(&app->be) || app->stop)
			break;
		/* work came in just before we armed: poll on */
		xvb_backend_quiet(&app->be);
		now = idle_since = now_us();
	}
}

/*
 * Every loopback guest makes us hold descriptors (its regions and event
 * channels), and a soft limit of 1024 is common: take the hard limit.
 * Returns the soft limit now in force.
 */
static unsigned long raise_nofile(struct xvb_log *log)
{
	struct rlimit l;

	if (getrlimit(RLIMIT_NOFILE, &l))
		return 1024;
	if (l.rlim_cur < l.rlim_max) {
		rlim_t was = l.rlim_cur;

		l.rlim_cur = l.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &l)) {
			xvb_warn(log, "cannot raise the fd limit from %lu: %s", (unsigned long)was,
				 strerror(errno));
			l.rlim_cur = was;
		}
	}
	return l.rlim_cur == RLIM_INFINITY ? 1UL << 20 : (unsigned long)l.rlim_cur;
}

/* Create and destroy each export once so that a bad one stops us now. */
static int check_exports(const struct xvb_config *cfg, struct xvb_evloop *loop,
			 struct xvb_log *log)
{
	struct xvb_model_env env = { .loop = loop, .log = log, .aio = &cfg->aio };
	unsigned int i;

	for (i = 0; i < cfg->nexports; i++) {
		const struct xvb_export *x = &cfg->exports[i];
		const struct xvb_model_ops *ops = xvb_model_find(models, x->type);
		void *priv;

		env.name = x->name;
		if (ops->create(x->params, &env, &priv)) {
			xvb_err(log, "export '%s' (%s:%s) is not usable", x->name, x->type,
				x->params);
			return -EINVAL;
		}
		ops->destroy(priv);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct xvb_bus_events ev;
	struct xvb_loop_opts lo;
	struct xvb_evloop *loop = NULL;
	struct xvb_config cfg;
	struct app app;
	char err[512];
	sigset_t mask;
	int sfd = -1, rc;

	memset(&app, 0, sizeof(app));
	app.log.prog = "xvmsg-backend";
	app.log.level = XVB_LOG_INFO;
	xvb_config_defaults(&cfg);
	rc = xvb_config_parse_args(&cfg, argc, argv, models, stdout, err, sizeof(err));
	if (rc == 1)
		return 0;
	if (rc < 0) {
		fprintf(stderr, "xvmsg-backend: %s\n", err);
		return 2;
	}
	app.log.level = cfg.log_level;
	setvbuf(stderr, NULL, _IOLBF, 0);

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = xvb_evloop_create(&loop);
	if (rc)
		goto fail;
	if (cfg.aio.slow_ms)
		xvb_warn(&app.log, "fault injection on: every block I/O starts %u ms late "
			 "(--fault slow-io)", cfg.aio.slow_ms);
	if (xvb_aio_probe(&cfg.aio, &app.log) || check_exports(&cfg, loop, &app.log)) {
		xvb_evloop_destroy(loop);
		return 2;
	}
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0 || xvb_evloop_add(loop, sfd, EPOLLIN, on_signal, &app)) {
		rc = -errno;
		goto fail;
	}

	ev.ctx = &app.be;
	ev.watch = xvb_backend_watch;
	ev.event = xvb_backend_event;
	if (strcmp(cfg.bus, "xen") == 0) {
		/* On Xen full mode stays available unless refused: only a
		 * backend with dom0's privilege can use it anyway. */
		struct xvb_xen_opts xo = { .allow_full = cfg.full_given ? cfg.allow_full : true };

		rc = xvb_xen_create(&xo, &ev, &app.bus, err, sizeof(err));
		if (rc) {
			xvb_err(&app.log, "xen bus: %s", err);
			goto fail_logged;
		}
	} else {
		unsigned long nofile = raise_nofile(&app.log);

		memset(&lo, 0, sizeof(lo));
		lo.socket_path = cfg.socket_path;
		lo.exports = cfg.exports;
		lo.nr_exports = cfg.nexports;
		lo.allow_full = cfg.allow_full;
		lo.max_guest_fds = cfg.max_guest_fds ? cfg.max_guest_fds
						     : xvb_loop_default_guest_fds(nofile);
		lo.max_guest_maps = cfg.max_guest_maps ? cfg.max_guest_maps
			: xvb_loop_default_guest_maps(xvb_loop_max_map_count());
		lo.max_guest_keys = cfg.max_guest_keys ? cfg.max_guest_keys : XVB_LOOP_GUEST_KEYS;
		lo.max_guest_store_bytes = cfg.max_guest_store_bytes ? cfg.max_guest_store_bytes
								     : XVB_LOOP_GUEST_STORE_BYTES;
		xvb_info(&app.log, "fd limit %lu, at most %u per guest; per guest at most %u "
			 "mappings, %u store keys of %u bytes", nofile, lo.max_guest_fds,
			 lo.max_guest_maps, lo.max_guest_keys, lo.max_guest_store_bytes);
		rc = xvb_loop_create(&lo, &ev, &app.bus);
		if (rc) {
			xvb_err(&app.log, "cannot serve on %s: %s", cfg.socket_path,
				strerror(-rc));
			goto fail_logged;
		}
	}
	xvb_backend_init(&app.be, app.bus, loop, &app.log, models);
	app.be.aio = cfg.aio;
	app.be.fault = cfg.fault;
	app.be.msg_revs = cfg.msg_revs;
	if (cfg.fault)
		xvb_warn(&app.log, "fault injection on (--fault): this backend lies to its guests");
	if (cfg.queue_threads) {
		rc = xvb_backend_queue_threads(&app.be, cfg.queue_threads);
		if (rc) {
			xvb_err(&app.log, "cannot start %u queue threads: %s", cfg.queue_threads,
				strerror(-rc));
			xvb_backend_shutdown(&app.be);
			app.bus->ops->destroy(app.bus);
			goto fail_logged;
		}
		xvb_info(&app.log, "%u queue thread%s: blk queues with event channels of their "
			 "own are served there%s", cfg.queue_threads,
			 cfg.queue_threads == 1 ? "" : "s",
			 cfg.fault ? " (not with --fault: those stay on the loop thread)" : "");
	}
	rc = xvb_evloop_add(loop, app.bus->ops->get_fd(app.bus), EPOLLIN, on_bus, &app);
	if (rc || (rc = xvb_backend_start(&app.be)))
		goto fail_bus;
	if (strcmp(cfg.bus, "xen") == 0)
		xvb_info(&app.log, "serving on xen bus as domain %u (%s)",
			 app.bus->ops->self_domid(app.bus), app.be.root);
	else
		xvb_info(&app.log, "serving %u export%s on %s bus at %s", cfg.nexports,
			 cfg.nexports == 1 ? "" : "s", app.bus->ops->name, cfg.socket_path);

	while (!app.stop) {
		rc = xvb_evloop_run_once(loop, -1);
		if (rc < 0 && rc != -EINTR) {
			xvb_err(&app.log, "event loop: %s", strerror(-rc));
			break;
		}
		if (cfg.poll_us)
			busy_poll(&app, loop, cfg.poll_us);
	}
	if (cfg.stats_on_exit)
		xvb_backend_dump_stats(&app.be, stderr);
	xvb_backend_shutdown(&app.be);
	xvb_evloop_del(loop, app.bus->ops->get_fd(app.bus));
	app.bus->ops->destroy(app.bus);
	close(sfd);
	xvb_evloop_destroy(loop);
	xvb_info(&app.log, "stopped");
	return 0;

fail_bus:
	xvb_backend_shutdown(&app.be);	/* joins the queue threads, if any */
	app.bus->ops->destroy(app.bus);
fail:
	if (rc)
		xvb_err(&app.log, "%s", strerror(-rc));
fail_logged:
	if (sfd >= 0)
		close(sfd);
	if (loop)
		xvb_evloop_destroy(loop);
	return 1;
}
