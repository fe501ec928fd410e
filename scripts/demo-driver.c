// SPDX-License-Identifier: MIT
/*
 * xvmsg-demo-driver: the guest of the loopback demo (scripts/demo-loop.sh).
 *
 * Connects to a running xvmsg-backend as one guest domain and walks a person
 * through numbered steps: a virtio-blk disk in pool mode (write, flush, read
 * back, verify), a virtio-rng, a virtio-console, then the isolation property
 * of pool mode (the backend process has no mapping of guest RAM, seen from
 * /proc/<backend>/maps), and the same disk test in grant and full mode with
 * the backend's map/unmap counters.  Exit status 0 only if every check passed.
 *
 * The backend must export disk0 (blk, at least 4 MiB), rng0 (rng) and con0
 * (console).  A console peer on the host side is expected to send one line
 * when it connects and to answer the guest's line with one line of its own.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xvmsg/counters.h>
#include <xvmsg/wire.h>

#include "xvmsg-drv.h"

#define SECTOR		512
#define TEST_BYTES	(4u << 20)	/* written and verified per mode */
#define CHUNK		(64u << 10)	/* bytes per request */
#define GREETING_MS	10000		/* for the console peer to connect */
#define REPLY_MS	5000
#define GUEST_LINE	"hello from the guest"

enum { DEVID_DISK = 0, DEVID_RNG = 1, DEVID_CON = 2 };

struct opts {
	const char *socket;
	pid_t backend_pid;
	const char *backend_log;
};

/* Backend counters of one device, from its SIGUSR1 dump. */
struct be_counters {
	uint64_t maps, map_pages, unmaps, notify_in, notify_out, requests;
};

/* What the disk test measured in one mode, for the summary. */
struct mode_result {
	bool ran, ok;
	uint64_t requests;		/* driver: chains submitted */
	struct be_counters be;		/* backend: delta over the test */
	uint64_t grants, revokes, copied;
};

struct demo {
	struct opts o;
	struct xvd_domain *dom;
	long log_off;			/* backend log: where the next dump starts */
	unsigned int step;
	unsigned int checks, passed;
	struct mode_result res[3];
};

/* ---- output ------------------------------------------------------------- */

static void step(struct demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void step(struct demo *d, const char *fmt, ...)
{
	va_list ap;

	printf("\n[%u] ", ++d->step);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void info(const char *fmt, ...)
{
	va_list ap;

	printf("    ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* Record a check; prints "    OK  what" or "    FAIL  what". */
static bool check(struct demo *d, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool check(struct demo *d, bool ok, const char *fmt, ...)
{
	va_list ap;

	d->checks++;
	d->passed += ok;
	printf("    %-5s ", ok ? "OK" : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return ok;
}

static void drv_log(void *ctx, int level, const char *msg)
{
	fprintf(stderr, "    (driver %s: %s)\n", level == XVD_LOG_ERR ? "error" : "warning", msg);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- the backend's counters (SIGUSR1) ----------------------------------- */

/*
 * Send SIGUSR1 and parse the line of device name ("blk0(dom2)") from what the
 * backend writes to its log after the previous dump.  Whole lines only.
 */
static int be_counters(struct demo *d, const char *name, struct be_counters *c)
{
	char line[1024];
	FILE *f;

	if (kill(d->o.backend_pid, SIGUSR1) < 0)
		return -errno;
	f = fopen(d->o.backend_log, "r");
	if (!f)
		return -errno;
	for (int i = 0; i < 3000; i++) {	/* 3 s */
		if (xvmsg_counters_line(f, &d->log_off, name, line, sizeof(line))) {
			fclose(f);
			if (!xvmsg_counter(line, "maps", &c->maps) ||
			    !xvmsg_counter(line, "map_pages", &c->map_pages) ||
			    !xvmsg_counter(line, "unmaps", &c->unmaps) ||
			    !xvmsg_counter(line, "notify_in", &c->notify_in) ||
			    !xvmsg_counter(line, "notify_out", &c->notify_out) ||
			    !xvmsg_counter(line, "requests", &c->requests))
				return -EPROTO;
			return 0;
		}
		sleep_ms(1);
	}
	fclose(f);
	return -ETIMEDOUT;
}

/* ---- the disk test ------------------------------------------------------ */

static void ram_exposure(struct demo *d);

static uint8_t pattern(uint64_t off, int mode)
{
	uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(mode + 1) * 0xbf58476d1ce4e5b9ULL;

	return (uint8_t)(x >> 56) | 1;	/* never 0: a hole reads as zeroes */
}

/* Attach disk0 in mode, write TEST_BYTES, flush, read back and verify; with
 * the backend's and the driver's counters over the I/O.  out != NULL: leave
 * the device open after a successful test and return it there. */
static void disk_test(struct demo *d, int mode, struct xvd_dev **out)
{
	struct xvd_dev_opts o = {
		.export_name = "disk0", .devid = DEVID_DISK, .mode = mode,
		.pool_pages = 64,	/* 256 KiB: a few requests in flight, bounced */
	};
	struct mode_result *mr = &d->res[mode];
	struct be_counters c0 = { 0 }, c1 = { 0 };
	struct xvd_stats s0, s1;
	struct xvd_blk_info bi;
	uint64_t bad = 0, nreq = 0, off;
	char name[48];
	struct xvd_dev *dev;
	uint8_t *buf = NULL;
	bool have_c0;
	int r;

	mr->ran = true;
	r = xvd_blk_open(d->dom, &o, &dev);
	if (!check(d, r == 0, "disk0 attached in %s mode%s%s", xvmsg_mode_name(mode),
		   r ? ": " : "", r ? strerror(-r) : ""))
		return;
	r = xvd_blk_info(dev, &bi);
	if (r == 0)
		info("capacity %" PRIu64 " sectors = %" PRIu64 " MiB, block size %u%s", bi.capacity,
		     bi.capacity * SECTOR >> 20, bi.blk_size, bi.flush ? ", flush supported" : "");
	if (!check(d, r == 0 && bi.capacity * SECTOR >= TEST_BYTES, "capacity read (need %u MiB)",
		   TEST_BYTES >> 20))
		goto out;

	snprintf(name, sizeof(name), "blk%u(dom%u)", DEVID_DISK, xvd_domain_id(d->dom));
	r = xvd_ram_alloc(d->dom, CHUNK, (void **)&buf);
	if (r < 0) {
		check(d, false, "buffer in guest RAM: %s", strerror(-r));
		goto out;
	}
	xvd_dev_stats(dev, &s0);
	r = be_counters(d, name, &c0);
	have_c0 = r == 0;
	if (r < 0)
		info("(backend counters not available: %s)", strerror(-r));
	r = 0;

	for (off = 0; off < TEST_BYTES && r >= 0; off += CHUNK, nreq++) {
		for (uint32_t i = 0; i < CHUNK; i++)
			buf[i] = pattern(off + i, mode);
		r = xvd_blk_write(dev, off / SECTOR, buf, CHUNK);
	}
	if (r >= 0 && (r = xvd_blk_flush(dev)) == 0)
		nreq++;
	if (!check(d, r >= 0, "wrote a pattern over the first %u MiB in %" PRIu64 " requests of "
		   "%u KiB, flushed%s%s", TEST_BYTES >> 20, nreq - (r >= 0), CHUNK >> 10,
		   r < 0 ? ": " : "", r < 0 ? strerror(-r) : ""))
		goto out;
	for (off = 0; off < TEST_BYTES && r >= 0; off += CHUNK, nreq++) {
		memset(buf, 0, CHUNK);
		r = xvd_blk_read(dev, off / SECTOR, buf, CHUNK);
		for (uint32_t s = 0; r >= 0 && s < CHUNK; s += SECTOR)
			for (uint32_t i = 0; i < SECTOR; i++)
				if (buf[s + i] != pattern(off + s + i, mode)) {
					bad++;
					break;
				}
	}
	if (r < 0) {
		check(d, false, "read back: %s", strerror(-r));
		goto out;
	}
	mr->ok = check(d, bad == 0, "read back and verified: %" PRIu64 " of %u sectors match",
		       TEST_BYTES / SECTOR - bad, TEST_BYTES / SECTOR);

	xvd_dev_stats(dev, &s1);
	mr->requests = s1.requests - s0.requests;
	mr->grants = s1.grants - s0.grants;
	mr->revokes = s1.revokes - s0.revokes;
	mr->copied = (s1.bounce_in - s0.bounce_in) + (s1.bounce_out - s0.bounce_out);
	if (have_c0 && be_counters(d, name, &c1) == 0) {
		mr->be = (struct be_counters){
			c1.maps - c0.maps, c1.map_pages - c0.map_pages, c1.unmaps - c0.unmaps,
			c1.notify_in - c0.notify_in, c1.notify_out - c0.notify_out,
			c1.requests - c0.requests };
		info("backend %s during the test: %" PRIu64 " requests, %" PRIu64 " map calls (%"
		     PRIu64 " pages), %" PRIu64 " unmap calls", name, mr->be.requests, mr->be.maps,
		     mr->be.map_pages, mr->be.unmaps);
	}
	info("guest side: %" PRIu64 " grants made, %" PRIu64 " revoked, %" PRIu64
	     " bytes copied through the pool", mr->grants, mr->revokes, mr->copied);
	if (mode != XVD_MODE_POOL)
		ram_exposure(d);
out:
	xvd_ram_free(d->dom, buf);
	if (out && mr->ok) {
		*out = dev;
		return;
	}
	xvd_dev_close(dev);
}

/* ---- rng and console ---------------------------------------------------- */

static void rng_test(struct demo *d, struct xvd_dev **out)
{
	struct xvd_dev_opts o = { .export_name = "rng0", .devid = DEVID_RNG, .mode = XVD_MODE_POOL };
	uint8_t rnd[32] = { 0 };
	char hex[3 * sizeof(rnd) + 1];
	bool nonzero = false;
	int r;

	r = xvd_rng_open(d->dom, &o, out);
	if (!check(d, r == 0, "rng0 attached in pool mode%s%s", r ? ": " : "",
		   r ? strerror(-r) : ""))
		return;
	r = xvd_rng_read(*out, rnd, sizeof(rnd));
	for (size_t i = 0; i < sizeof(rnd); i++) {
		snprintf(hex + 3 * i, 4, "%02x ", rnd[i]);
		nonzero |= rnd[i] != 0;
	}
	hex[sizeof(hex) - 2] = '\0';
	if (r == (int)sizeof(rnd))
		info("%s", hex);
	check(d, r == (int)sizeof(rnd) && nonzero, "read %zu random bytes%s%s", sizeof(rnd),
	      r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
}

/* One line from the console, without its end of line; -ETIMEDOUT or -errno. */
static int con_read_line(struct xvd_dev *dev, char *line, size_t len, int timeout_ms)
{
	struct timespec t0, t;
	size_t n = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		char c;
		long left;
		int r;

		clock_gettime(CLOCK_MONOTONIC, &t);
		left = timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		r = xvd_console_read(dev, &c, 1, left > 0 ? (int)left : 0);
		if (r < 0)
			return r;
		if (c == '\n')
			break;
		if (c != '\r' && n + 1 < len)
			line[n++] = isprint((unsigned char)c) ? c : '?';
	}
	line[n] = '\0';
	return 0;
}

static void console_test(struct demo *d, struct xvd_dev **out)
{
	struct xvd_dev_opts o = { .export_name = "con0", .devid = DEVID_CON, .mode = XVD_MODE_POOL };
	char line[128];
	int r;

	r = xvd_console_open(d->dom, &o, out);
	if (!check(d, r == 0, "con0 attached in pool mode%s%s", r ? ": " : "",
		   r ? strerror(-r) : ""))
		return;
	info("waiting for the host side of the console to connect ...");
	fflush(stdout);
	r = con_read_line(*out, line, sizeof(line), GREETING_MS);
	if (!check(d, r == 0, "host side connected%s%s%s", r ? ": " : ", it says \"",
		   r ? strerror(-r) : line, r ? "" : "\""))
		return;
	info("guest writes \"%s\"", GUEST_LINE);
	fflush(stdout);
	r = xvd_console_write(*out, GUEST_LINE "\n", strlen(GUEST_LINE) + 1);
	if (r < 0) {
		check(d, false, "console write: %s", strerror(-r));
		return;
	}
	r = con_read_line(*out, line, sizeof(line), REPLY_MS);
	check(d, r == 0 && line[0], "reply read by the guest%s%s%s", r ? ": " : ": \"",
	      r ? strerror(-r) : line, r ? "" : "\"");
}

/* ---- isolation ---------------------------------------------------------- */

struct memfd_view {
	unsigned int maps_dev, maps_ram, maps_gnt;
	unsigned int fds_dev, fds_ram, fds_gnt;
	uint64_t ram_kib;
};

static void count(const char *s, unsigned int *dev, unsigned int *ram, unsigned int *gnt)
{
	if (strstr(s, "memfd:xvmsg-dev"))
		(*dev)++;
	else if (strstr(s, "memfd:xvmsg-ram"))
		(*ram)++;
	else if (strstr(s, "memfd:xvmsg-gnttab"))
		(*gnt)++;
}

/* Look at the backend's mappings and fds; print the mappings if show. */
static int memfd_view(struct demo *d, bool show, struct memfd_view *v)
{
	char path[64], line[512], target[256];
	struct dirent *e;
	FILE *f;
	DIR *dir;

	memset(v, 0, sizeof(*v));
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)d->o.backend_pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	if (show)
		info("memfd mappings in %s:", path);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8], *name = strstr(line, "/memfd:xvmsg-");

		if (!name || sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
			continue;
		name[strcspn(name, "\n")] = '\0';
		count(name, &v->maps_dev, &v->maps_ram, &v->maps_gnt);
		if (strstr(name, "xvmsg-ram"))
			v->ram_kib += (hi - lo) >> 10;
		if (show)
			info("  %012lx-%012lx %s %7lu KiB  %s", lo, hi, perms, (hi - lo) >> 10,
			     name + 1);
	}
	fclose(f);

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)d->o.backend_pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((e = readdir(dir))) {
		char fd_path[320];
		ssize_t n;

		snprintf(fd_path, sizeof(fd_path), "%s/%s", path, e->d_name);
		n = readlink(fd_path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		count(target, &v->fds_dev, &v->fds_ram, &v->fds_gnt);
	}
	closedir(dir);
	return 0;
}

static void isolation_check(struct demo *d)
{
	struct memfd_view v;
	int r = memfd_view(d, true, &v);

	if (r < 0) {
		check(d, false, "cannot inspect the backend (pid %d): %s", (int)d->o.backend_pid,
		      strerror(-r));
		return;
	}
	info("  (xvmsg-gnttab = the guest's grant table, xvmsg-dev = one device's message");
	info("   page and pool, xvmsg-ram = guest RAM)");
	info("backend has %u xvmsg-dev, %u xvmsg-gnttab and %u xvmsg-ram memfds open", v.fds_dev,
	     v.fds_gnt, v.fds_ram);
	check(d, v.maps_dev > 0 && v.maps_ram == 0 && v.fds_ram == 0,
	      "no xvmsg-ram mapping or fd: in pool mode the backend cannot reach guest RAM");
}

/* In grant or full mode, device attached: what the backend can reach of
 * guest RAM now (information, not a check). */
static void ram_exposure(struct demo *d)
{
	struct memfd_view v;

	if (memfd_view(d, false, &v) < 0)
		return;
	info("backend process, disk attached: holds %u xvmsg-ram fd%s and %u xvmsg-ram mapping%s (%" PRIu64 " KiB)",
	     v.fds_ram, v.fds_ram == 1 ? "" : "s", v.maps_ram, v.maps_ram == 1 ? "" : "s",
	     v.ram_kib);
}

/* After the guest is gone the backend must hold nothing of it. */
static void released_check(struct demo *d)
{
	struct memfd_view v = { 0 };
	unsigned int left = 1;
	int r = 0;

	for (int i = 0; i < 200 && left; i++) {	/* the backend tears down asynchronously */
		if (i)
			sleep_ms(10);
		r = memfd_view(d, false, &v);
		if (r < 0)
			break;
		left = v.maps_dev + v.maps_ram + v.maps_gnt + v.fds_dev + v.fds_ram + v.fds_gnt;
	}
	if (r < 0)
		check(d, false, "cannot inspect the backend: %s", strerror(-r));
	else
		check(d, left == 0, "detached and disconnected: the backend holds %u mappings or "
		      "fds of our memory", left);
}

/* ---- main --------------------------------------------------------------- */

static void summary(const struct demo *d)
{
	printf("\n    %-6s %9s %10s %11s %12s %8s %15s\n", "mode", "requests", "be maps",
	       "be unmaps", "guest grants", "revokes", "bytes copied");
	for (int m = 0; m < 3; m++) {
		const struct mode_result *r = &d->res[m];

		if (!r->ran || !r->ok)
			continue;
		printf("    %-6s %9" PRIu64 " %10" PRIu64 " %11" PRIu64 " %12" PRIu64 " %8" PRIu64
		       " %15" PRIu64 "\n", xvmsg_mode_name(m), r->requests, r->be.maps, r->be.unmaps,
		       r->grants, r->revokes, r->copied);
	}
	info("pool mode: no map calls at all, the data is copied through the pool;");
	info("grant mode: the backend maps and unmaps granted pages per request;");
	info("full mode: the backend can reach all of guest RAM without asking.");
}

static void usage(FILE *out)
{
	fprintf(out,
"Usage: xvmsg-demo-driver --socket PATH --backend-pid PID --backend-log FILE\n"
"The guest side of the loopback demo (see scripts/demo-loop.sh).  The backend\n"
"must export disk0 (blk), rng0 (rng) and con0 (console); its stderr must go to\n"
"FILE, where its SIGUSR1 counters are read.  Exit status: 0 if every check\n"
"passed, 1 if one failed, 2 on bad usage.\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "backend-pid", required_argument, NULL, 'p' },
		{ "backend-log", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long v;
	int c;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'p':
			v = strtol(optarg, &end, 10);
			if (*end || v <= 0 || v > INT_MAX) {
				fprintf(stderr, "xvmsg-demo-driver: bad pid '%s'\n", optarg);
				return 2;
			}
			o->backend_pid = (pid_t)v;
			break;
		case 'l':
			o->backend_log = optarg;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || !o->socket || !o->backend_pid || !o->backend_log) {
		usage(stderr);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct xvd_dev *disk = NULL, *rng = NULL, *con = NULL;
	struct demo d = { 0 };
	struct xvd_domain_opts dopt = {
		.log_level = XVD_LOG_WARN, .log = drv_log, .timeout_ms = 5000,
	};
	int r;

	r = parse_args(argc, argv, &d.o);
	if (r)
		return r == 1 ? 0 : 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	dopt.socket_path = d.o.socket;

	step(&d, "Connect to the backend as a guest domain (loopback bus, %s)", d.o.socket);
	r = xvd_domain_open_loop(&dopt, &d.dom);
	if (!check(&d, r == 0, "connected%s%s", r ? ": " : "", r ? strerror(-r) : "")) {
		printf("\nFAILED: cannot go on without the backend\n");
		return 1;
	}
	info("we are domain %u; guest RAM is a memfd named xvmsg-ram", xvd_domain_id(d.dom));

	step(&d, "Disk disk0 in pool mode: the backend gets only a 256 KiB pool and a message page");
	disk_test(&d, XVD_MODE_POOL, &disk);

	step(&d, "Random numbers from rng0");
	rng_test(&d, &rng);

	step(&d, "Console con0 (the host side is a unix socket the demo script reads)");
	console_test(&d, &con);

	step(&d, "Isolation: what the backend process (pid %d) has mapped of us",
	     (int)d.o.backend_pid);
	isolation_check(&d);

	if (disk)
		xvd_dev_close(disk);
	step(&d, "The same disk test in grant mode (per-request grants, like grant-dma-ops)");
	disk_test(&d, XVD_MODE_GRANT, NULL);

	step(&d, "The same disk test in full mode (the backend maps guest RAM, like dom0)");
	disk_test(&d, XVD_MODE_FULL, NULL);

	step(&d, "What each mode cost the backend (counters from SIGUSR1) and the guest");
	summary(&d);

	step(&d, "Detach every device and disconnect");
	if (con)
		xvd_dev_close(con);
	if (rng)
		xvd_dev_close(rng);
	xvd_domain_close(d.dom);
	released_check(&d);

	printf("\nguest: %u of %u checks passed%s\n", d.passed, d.checks,
	       d.passed == d.checks ? "" : " -- FAILED");
	return d.passed == d.checks ? 0 : 1;
}
