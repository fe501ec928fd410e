// SPDX-License-Identifier: MIT
/*
 * xvmsg-bench: virtio-blk throughput and latency of the three xvmsg memory
 * modes over the loopback bus, side by side with the backing store itself.
 *
 * It starts its own xvmsg-backend (own socket, own log) exporting one image
 * three times, opens one guest domain per mode with one blk device each, and
 * runs the workloads with requests kept in flight asynchronously.  Without
 * --mode the modes run interleaved, round by round, so that their ratios
 * are measured under the same conditions.
 *
 * Per (mode, workload) it reports IOPS, MiB/s, latency percentiles and the
 * per-request costs the modes differ in: backend map/unmap calls (from the
 * counters the backend prints on SIGUSR1), notifications both ways, and bytes
 * copied through the pool.  "raw" is pread/pwrite on the image at QD 1 in this
 * process: the limit of the backing store.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <endian.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <stdatomic.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <xvmsg/counters.h>
#include <xvmsg/pool.h>

#include "xvmsg-drv.h"

#define SECTOR			512
#define MAX_QD			256
#define MAX_RAW_QD		4096	/* raw at the total depth of --devices */
#define MAX_DEVICES		64
#define DEV_QUEUE_SIZE		256	/* the backend's blk queue size */
#define MAX_POOL_PAGES		65536
#define WARMUP_S		0.2
#define COMPLETION_WAIT_MS	5000
#define DEVID			0
#define MAX_ROUNDS		64	/* per-round IOPS kept for the median ratio */

/*
 * Set by the SIGINT/SIGTERM handler and polled by every loop, which then
 * unwinds through the normal cleanup (backend killed, temp files removed).
 * A signal handler can reach nothing else, hence the one global.
 */
static volatile sig_atomic_t g_stop_signal;

enum { M_POOL, M_GRANT, M_FULL, M_RAW, NMODES };
static const char *const mode_names[NMODES] = { "pool", "grant", "full", "raw" };
static const int drv_modes[3] = { XVD_MODE_POOL, XVD_MODE_GRANT, XVD_MODE_FULL };

struct workload {
	const char *name;
	int op;			/* XVD_BLK_READ / XVD_BLK_WRITE */
	uint32_t bs;		/* request size */
	bool seq;
	unsigned int def_qd;
	unsigned int flush_every;	/* a FLUSH after every N writes (0: none) */
};

enum { W_RANDREAD, W_SEQREAD, W_RANDWRITE, W_LAT, W_SEQWRITE, NWL };
static const struct workload workloads[NWL] = {
	[W_RANDREAD]  = { "randread4k",  XVD_BLK_READ,  4096,   false, 32 },
	[W_SEQREAD]   = { "seqread256k", XVD_BLK_READ,  262144, true,  8 },
	[W_RANDWRITE] = { "randwrite4k", XVD_BLK_WRITE, 4096,   false, 32 },
	[W_LAT]       = { "lat4k",       XVD_BLK_READ,  4096,   false, 1 },
	[W_SEQWRITE]  = { "seqwrite256k", XVD_BLK_WRITE, 262144, true, 8 },
};

enum { N_64, N_1500, N_64K, NNET };

/* One mode's transmit phases of a net workload, summed over rounds. */
struct net_result {
	bool valid;
	uint64_t pkts, bytes, ns;
	uint64_t maps, kicks, notify_out, copied;
};

struct opts {
	unsigned int modes;	/* bit per M_* */
	unsigned int wls;	/* bit per W_* */
	double seconds;		/* per mode per workload, over all rounds */
	unsigned int qd;	/* 0 = the workload's default */
	const char *csv;
	const char *image;
	uint64_t size;
	unsigned int rounds;
	const char *backend;
	unsigned int poll_us;	/* backend --poll-us */
	unsigned int qthreads;	/* backend --queue-threads */
	bool direct;		/* O_DIRECT: the backend's exports and raw */
	unsigned int devices;	/* --devices N: N devices driven together (0: off) */
	bool noisy;		/* --workload noisy */
	unsigned int queues;	/* --queues: virtio-blk request queues per device */
	unsigned int net;	/* --workload net*: bit per N_* (0: blk) */
};

/* Latency samples in nanoseconds. */
struct samples {
	uint64_t *v;
	size_t n, cap;
};

struct result {
	bool valid;
	unsigned int qd;
	uint64_t reqs, bytes;
	uint64_t ns;			/* timed phases, summed over rounds */
	struct samples lat;
	uint64_t maps, unmaps;		/* backend counters over the phases */
	uint64_t kicks, notify_out;	/* driver kicks, backend notifications */
	uint64_t copied;		/* pool bounce bytes, both ways */
	uint64_t flushes;		/* FLUSH requests among reqs */
	uint64_t drv_cpu_ns;		/* this process's CPU time in the timed phases */
	uint64_t be_cpu_ns;		/* the backend's (all its threads) */
	double round_iops[MAX_ROUNDS];	/* each timed phase's own IOPS */
	unsigned int nrounds;
};

/* One line of the backend's SIGUSR1 dump, the fields we use. */
struct be_counters {
	char mode[16];
	uint64_t maps, unmaps, notify_out;
};

struct backend {
	pid_t pid;
	char dir[64];
	char sock[108];		/* sizeof(sockaddr_un.sun_path) */
	char log[128];
	long log_off;		/* where the next dump is looked for */
};

struct bench_dev {
	int mode;			/* M_POOL .. M_FULL */
	struct xvd_domain *dom;
	struct xvd_dev *dev;
	char be_name[48];		/* "blk<devid>(dom<domid>)" in the backend */
	uint64_t rng;			/* xorshift state for random offsets */
	uint64_t seq_off;		/* next sequential offset */
	bool threaded;			/* driven by a worker thread */
};

struct bench {
	struct opts o;
	struct backend be;
	char img_path[160];
	bool img_temp;
	int img_fd;
	int raw_fd;			/* the image for raw: O_DIRECT with --direct */
	uint64_t img_size;
	uint64_t raw_rng, raw_seq;
	struct bench_dev devs[3];
	struct bench_dev *mdevs;	/* --devices, noisy: one domain each */
	struct result *mres[NWL];	/* --devices: per workload, per device */
	struct result noisy[3];		/* B alone, B beside A, A */
	struct result noisy_raw[3];	/* the same, raw on the file */
	struct result res[NMODES][NWL];
	struct net_result nres[NMODES][NNET][2];	/* [..][0] transmit, [1] receive */
	int raw_tap;			/* net: raw's tap, -1 */
	struct samples ref_rtt;		/* notification round trips, ns */
	struct result ref_raw;		/* raw 4 KiB reads, when raw mode is off */
	bool tty;
	bool failed;			/* driver messages from now on are noise */
	unsigned long drv_quiet;	/* driver messages not shown after a failure */
};

/* ---- small helpers ------------------------------------------------------ */

static void on_signal(int sig)
{
	g_stop_signal = sig;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static __attribute__((format(printf, 1, 2))) int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("xvmsg-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Next request offset in bytes: 4 KiB aligned random, or sequential. */
static uint64_t next_offset(uint64_t *rng, uint64_t *seq, const struct workload *w,
			    uint64_t size)
{
	uint64_t off;

	if (!w->seq)
		return xorshift(rng) % (size / w->bs) * w->bs;
	if (*seq + w->bs > size)
		*seq = 0;
	off = *seq;
	*seq += w->bs;
	return off;
}

static int samples_add(struct samples *s, uint64_t v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 65536;
		uint64_t *n = realloc(s->v, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->v = n;
		s->cap = cap;
	}
	s->v[s->n++] = v;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile in microseconds; sorts the samples. */
static double percentile_us(struct samples *s, double p)
{
	size_t i;

	if (!s->n)
		return 0;
	qsort(s->v, s->n, sizeof(*s->v), cmp_u64);
	i = (size_t)(p / 100.0 * (double)s->n + 0.999999);
	i = i ? i - 1 : 0;
	return (double)s->v[i < s->n ? i : s->n - 1] / 1000.0;
}

/* ---- the backend process ------------------------------------------------ */

static bool can_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Print the backend log's last lines (not the counter dumps) to stderr. */
static void backend_log_tail(const struct backend *be)
{
	char lines[10][256], buf[256];
	unsigned int n = 0, i;
	FILE *f = fopen(be->log, "r");

	if (!f)
		return;
	while (fgets(buf, sizeof(buf), f)) {
		if (strstr(buf, " mode=") && strstr(buf, " maps="))
			continue;
		snprintf(lines[n % 10], sizeof(lines[0]), "%s", buf);
		n++;
	}
	fclose(f);
	if (!n)
		return;
	fprintf(stderr, "xvmsg-bench: last lines of the backend log:\n");
	for (i = n > 10 ? n - 10 : 0; i < n; i++)
		fprintf(stderr, "  | %s", lines[i % 10]);
}

/* 0 while running; else reports how it ended and returns -1. */
static int backend_check(struct backend *be)
{
	int status;

	if (be->pid <= 0)
		return fail("backend is not running");
	if (waitpid(be->pid, &status, WNOHANG) != be->pid)
		return 0;
	be->pid = 0;
	if (WIFSIGNALED(status))
		fail("backend died (signal %d)", WTERMSIG(status));
	else
		fail("backend exited (status %d)", WEXITSTATUS(status));
	backend_log_tail(be);
	return -1;
}

/* The name of export i: one per mode, or one per device of --devices and
 * the noisy-neighbour workload. */
static void export_name(const struct opts *o, unsigned int i, char *buf, size_t len)
{
	static const char *const names[3] = { "bench-pool", "bench-grant", "bench-full" };

	if (o->devices || o->noisy)
		snprintf(buf, len, "bench-d%u", i);
	else
		snprintf(buf, len, "%s", names[i]);
}

static unsigned int nr_exports(const struct opts *o)
{
	return o->devices ? o->devices : o->noisy ? 2 : 3;
}

static void net_tap_name(char *buf, size_t len, char which);

static int backend_start(struct backend *be, const char *bin, const char *image,
			 const struct opts *o)
{
	unsigned int argc = 0, i, n = nr_exports(o);
	char (*exports)[256] = calloc(n, sizeof(*exports)), poll[16], qt[16], name[32];
	char **argv = calloc(2 * n + 14, sizeof(*argv));

	if (!exports || !argv) {
		free(exports);
		free(argv);
		return fail("out of memory");
	}
	for (i = 0; i < n; i++) {
		char tap[IFNAMSIZ], q[24] = "";

		export_name(o, i, name, sizeof(name));
		net_tap_name(tap, sizeof(tap), "pgf"[i % 3]);
		if (o->queues > 1)	/* a backend before queues= still runs the rest */
			snprintf(q, sizeof(q), ",queues=%u", o->queues);
		if (o->net)
			snprintf(exports[i], sizeof(exports[i]), "%s:net:tap=%s", name, tap);
		else
			snprintf(exports[i], sizeof(exports[i]), "%s:blk:path=%s%s%s", name, image,
				 o->direct ? ",direct=on" : "", q);
	}
	argv[argc++] = (char *)bin;
	argv[argc++] = (char *)"--socket";
	argv[argc++] = be->sock;
	argv[argc++] = (char *)"--log-level";
	argv[argc++] = (char *)"warn";
	argv[argc++] = (char *)"--full";	/* full mode is measured too */
	snprintf(poll, sizeof(poll), "%u", o->poll_us);
	argv[argc++] = (char *)"--poll-us";
	argv[argc++] = poll;
	if (o->qthreads) {	/* a backend before --queue-threads still runs the rest */
		snprintf(qt, sizeof(qt), "%u", o->qthreads);
		argv[argc++] = (char *)"--queue-threads";
		argv[argc++] = qt;
	}
	for (i = 0; i < n; i++) {
		argv[argc++] = (char *)"--export";
		argv[argc++] = exports[i];
	}
	argv[argc] = NULL;

	be->pid = fork();
	if (be->pid < 0) {
		free(exports);
		free(argv);
		return fail("fork: %s", strerror(errno));
	}
	if (be->pid == 0) {
		int fd = open(be->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		/* Own process group: a ^C reaches only us, and we stop it.  If we
		 * die without cleaning up, the kernel sends it SIGTERM. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0)
			_exit(126);
		execv(bin, argv);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	free(exports);
	free(argv);
	for (i = 0; i < 1000; i++) {	/* 10 s */
		if (can_connect(be->sock))
			return 0;
		if (backend_check(be))
			return -1;
		if (g_stop_signal)
			return -1;
		sleep_ms(10);
	}
	return fail("backend did not start listening on %s within 10 s", be->sock);
}

static void backend_stop(struct backend *be)
{
	int status, i;

	if (be->pid <= 0)
		return;
	kill(be->pid, SIGTERM);
	for (i = 0; i < 500; i++) {	/* 5 s, then SIGKILL */
		if (waitpid(be->pid, &status, WNOHANG) == be->pid) {
			be->pid = 0;
			return;
		}
		sleep_ms(10);
	}
	kill(be->pid, SIGKILL);
	waitpid(be->pid, &status, 0);
	be->pid = 0;
}

/*
 * Ask the backend for its counters (SIGUSR1) and parse the line of device
 * `name` from the part of the log written after the signal.  Only whole
 * lines are consumed, so a dump being written is never read torn.
 */
static int backend_counters(struct backend *be, const char *name, struct be_counters *c)
{
	char line[1024];
	FILE *f;
	int i;

	if (backend_check(be))
		return -1;
	f = fopen(be->log, "r");
	if (!f)
		return fail("cannot read the backend log %s: %s", be->log, strerror(errno));
	/* Everything after the current end is the answer to this signal: the
	 * backend writes each dump with one write. */
	if (fseek(f, 0, SEEK_END) == 0)
		be->log_off = ftell(f);
	if (kill(be->pid, SIGUSR1) < 0) {
		fclose(f);
		return fail("cannot signal the backend: %s", strerror(errno));
	}
	for (i = 0; i < 3000; i++) {	/* 3 s */
		if (xvmsg_counters_line(f, &be->log_off, name, line, sizeof(line))) {
			const char *m = strstr(line, " mode=");

			if (!m || !xvmsg_counter(line, "maps", &c->maps) ||
			    !xvmsg_counter(line, "unmaps", &c->unmaps) ||
			    !xvmsg_counter(line, "notify_out", &c->notify_out)) {
				fclose(f);
				return fail("cannot parse the backend counters: %s", line);
			}
			sscanf(m, " mode=%15s", c->mode);
			fclose(f);
			return 0;
		}
		if (backend_check(be) || g_stop_signal) {
			fclose(f);
			return -1;
		}
		sleep_ms(1);
	}
	fclose(f);
	return fail("no counters for %s in the backend log after SIGUSR1", name);
}

/* ---- the image ---------------------------------------------------------- */

/* Write size bytes of non-zero data, then read them once (page cache). */
static int image_create(struct bench *b)
{
	const size_t chunk = 1 << 20;
	uint64_t *buf = malloc(chunk), off;
	int r = -1;

	if (!buf)
		return fail("out of memory");
	for (off = 0; off < b->img_size; off += chunk) {
		size_t n = b->img_size - off < chunk ? (size_t)(b->img_size - off) : chunk;

		if (g_stop_signal)
			goto out;
		for (size_t i = 0; i < chunk / 8; i++)
			buf[i] = ((off + i * 8) * 0x9e3779b97f4a7c15ULL) | 1;
		if (pwrite(b->img_fd, buf, n, (off_t)off) != (ssize_t)n) {
			fail("writing the image %s: %s", b->img_path, strerror(errno ? errno : EIO));
			goto out;
		}
	}
	r = 0;
out:
	free(buf);
	return r;
}

static int image_warm(struct bench *b)
{
	const size_t chunk = 1 << 20;
	char *buf = malloc(chunk);
	uint64_t off;
	ssize_t n;

	if (!buf)
		return fail("out of memory");
	for (off = 0; off < b->img_size && !g_stop_signal; off += (uint64_t)n) {
		n = pread(b->img_fd, buf, chunk, (off_t)off);
		if (n <= 0) {
			free(buf);
			return fail("reading the image %s: %s", b->img_path,
				    n ? strerror(errno) : "unexpected end of file");
		}
	}
	free(buf);
	return g_stop_signal ? -1 : 0;
}

static int image_open(struct bench *b)
{
	struct stat st;

	if (!b->o.image) {
		snprintf(b->img_path, sizeof(b->img_path), "%s/image", b->be.dir);
		b->img_fd = open(b->img_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (b->img_fd < 0)
			return fail("cannot create %s: %s", b->img_path, strerror(errno));
		b->img_temp = true;
		b->img_size = b->o.size;
		if (image_create(b))
			return -1;
	} else {
		if (!realpath(b->o.image, b->img_path))
			return fail("image %s: %s", b->o.image, strerror(errno));
		b->img_fd = open(b->img_path, O_RDWR | O_CLOEXEC);
		if (b->img_fd < 0 || fstat(b->img_fd, &st) < 0)
			return fail("image %s: %s", b->img_path, strerror(errno));
		if (!S_ISREG(st.st_mode))
			return fail("image %s is not a regular file", b->img_path);
		b->img_size = (uint64_t)st.st_size;
		if (b->img_size % SECTOR)
			return fail("image %s: size %" PRIu64 " is not a multiple of 512",
				    b->img_path, b->img_size);
		if (b->img_size < workloads[W_SEQREAD].bs)
			return fail("image %s: smaller than 256 KiB", b->img_path);
	}
	b->raw_fd = open(b->img_path, O_RDWR | O_CLOEXEC | (b->o.direct ? O_DIRECT : 0));
	if (b->raw_fd < 0)
		return fail("image %s%s: %s", b->img_path, b->o.direct ? " (O_DIRECT)" : "",
			    strerror(errno));
	if (!b->o.direct)
		return image_warm(b);
	/* Direct I/O measures the disk: nothing of the image stays cached
	 * (the backend opens it O_DIRECT as well). */
	if (fdatasync(b->img_fd) < 0 || posix_fadvise(b->img_fd, 0, 0, POSIX_FADV_DONTNEED))
		return fail("image %s: cannot drop it from the page cache: %s", b->img_path,
			    strerror(errno));
	return 0;
}

/* ---- devices ------------------------------------------------------------ */

static unsigned int wl_qd(const struct bench *b, int w)
{
	return b->o.qd ? b->o.qd : workloads[w].def_qd;
}

/* Largest qd * request size over the selected workloads. */
static uint64_t max_inflight_bytes(const struct bench *b)
{
	uint64_t m = 0;

	for (int w = 0; w < NWL; w++)
		if (b->o.wls & (1u << w) && (uint64_t)wl_qd(b, w) * workloads[w].bs > m)
			m = (uint64_t)wl_qd(b, w) * workloads[w].bs;
	return m;
}

/*
 * Pool pages for the chosen workloads: every request in flight at once, and
 * a pool whose request limits (docs/protocol.md 4.1; the driver library
 * cuts seg_max to XVD_BLK_MAX_SEGS) carry the largest block size whole.
 */
static unsigned int pool_pages_for(const struct bench *b)
{
	uint64_t need = max_inflight_bytes(b) / 4096 + 64, bs = 0;

	for (int w = 0; w < NWL; w++)
		if (b->o.wls & (1u << w) && workloads[w].bs > bs)
			bs = workloads[w].bs;
	while (need < MAX_POOL_PAGES &&
	       (uint64_t)xvmsg_pool_seg_max((uint32_t)need, XVD_BLK_MAX_SEGS) *
	       xvmsg_pool_seg_bytes((uint32_t)need) < bs)
		need++;
	return need < MAX_POOL_PAGES ? (unsigned int)need : MAX_POOL_PAGES;
}

/* Driver library messages: shown, except after a failure, when closing a
 * domain whose backend is gone only adds noise. */
static void drv_log(void *ctx, int level, const char *msg)
{
	struct bench *b = ctx;

	if (__atomic_load_n(&b->failed, __ATOMIC_RELAXED)) {
		__atomic_add_fetch(&b->drv_quiet, 1, __ATOMIC_RELAXED);
		return;
	}
	fprintf(stderr, "xvmsg-bench: driver: %s\n", msg);
}

static int dev_open(struct bench *b, struct bench_dev *bd, int mode, unsigned int export)
{
	char name[32];
	uint64_t need = max_inflight_bytes(b) / 4096;
	struct xvd_domain_opts dopt = {
		.socket_path = b->be.sock,
		.ram_pages = need + 1024 > 4096 ? need + 1024 : 4096,
		.log_level = XVD_LOG_WARN,
		.log = drv_log,
		.log_ctx = b,
	};
	struct xvd_dev_opts o = {
		.export_name = name,
		.devid = DEVID,
		.mode = drv_modes[mode],
		.pool_pages = pool_pages_for(b),
		.queues = b->o.queues,
	};
	unsigned int maxqd = 0;
	struct xvd_blk_info info;
	int r;

	for (int w = 0; w < NWL; w++)
		if (b->o.wls & (1u << w) && wl_qd(b, w) > maxqd)
			maxqd = wl_qd(b, w);
	/* A request is 3 descriptors; past a third of the ring they must go
	 * indirect or the ring, not qd, would limit the depth. */
	if (maxqd * 3 > DEV_QUEUE_SIZE)
		o.indirect_min = 3;

	export_name(&b->o, export, name, sizeof(name));
	bd->mode = mode;
	bd->rng = 0x2545f4914f6cdd1dULL * (uint64_t)(mode + 1 + 3 * export);
	r = xvd_domain_open_loop(&dopt, &bd->dom);
	if (r < 0)
		return fail("%s mode: cannot connect to the backend: %s", mode_names[mode],
			    strerror(-r));
	r = xvd_blk_open(bd->dom, &o, &bd->dev);
	if (r < 0)
		return fail("%s mode: cannot open export %s: %s", mode_names[mode], name,
			    strerror(-r));
	r = xvd_blk_info(bd->dev, &info);
	if (r < 0)
		return fail("%s mode: reading the capacity: %s", mode_names[mode], strerror(-r));
	if (info.capacity * SECTOR != b->img_size)
		return fail("%s mode: capacity %" PRIu64 " sectors, image has %" PRIu64 " bytes",
			    mode_names[mode], info.capacity, b->img_size);
	snprintf(bd->be_name, sizeof(bd->be_name), "blk%u(dom%u)", DEVID,
		 xvd_domain_id(bd->dom));
	return 0;
}

static void dev_close(struct bench_dev *bd)
{
	if (bd->dom)
		xvd_domain_close(bd->dom);	/* closes the device too */
	bd->dom = NULL;
	bd->dev = NULL;
}

/* ---- timed phases ------------------------------------------------------- */

struct slot {
	void *buf;
	uint64_t t0;
	bool flush;
};

static int dev_fail(struct bench *b, const struct bench_dev *bd, const char *what, int err)
{
	__atomic_store_n(&b->failed, true, __ATOMIC_RELAXED);
	/* Worker threads leave the backend's fate to the main thread (one
	 * waitpid, not a race of several). */
	if (!bd->threaded && (err == -ENODEV || err == -EPIPE) && backend_check(&b->be))
		return -1;	/* it said why */
	return fail("%s mode (%s): %s: %s", mode_names[bd->mode], bd->be_name, what,
		    strerror(-err));
}

/* The body of a phase: keep qd requests in flight until secs pass, then
 * drain.  r == NULL: warmup, nothing recorded. */
static int dev_io(struct bench *b, struct bench_dev *bd, const struct workload *w,
		  unsigned int qd, double secs, struct slot *slots, struct result *r)
{
	struct xvd_done done[64];
	unsigned int freel[MAX_QD], nfree = qd, inflight = 0, i, writes = 0;
	uint64_t t_start = now_ns(), deadline = t_start + (uint64_t)(secs * 1e9), t;
	int n, rc;

	for (i = 0; i < qd; i++)
		freel[i] = qd - 1 - i;
	for (;;) {
		unsigned int submitted = 0;

		if (g_stop_signal)
			return -1;
		t = now_ns();
		while (t < deadline && nfree) {
			struct slot *s = &slots[freel[nfree - 1]];
			uint64_t off = next_offset(&bd->rng, &bd->seq_off, w, b->img_size);

			s->flush = w->flush_every && writes == w->flush_every;
			s->t0 = now_ns();
			if (s->flush)
				rc = xvd_blk_submit(bd->dev, XVD_BLK_FLUSH, 0, NULL, 0, s,
						    XVD_NO_KICK);
			else
				rc = xvd_blk_submit(bd->dev, w->op, off / SECTOR, s->buf, w->bs, s,
						    XVD_NO_KICK);
			if (rc == -ENOSPC || rc == -ENOMEM) {
				if (!inflight && !submitted)
					return dev_fail(b, bd, "no room for a single request", rc);
				break;	/* reap first */
			}
			if (rc < 0)
				return dev_fail(b, bd, "submit", rc);
			writes = s->flush ? 0 : writes + 1;
			nfree--;
			inflight++;
			submitted++;
		}
		if (submitted && (rc = xvd_blk_kick(bd->dev)) < 0)
			return dev_fail(b, bd, "kick", rc);
		if (!inflight)
			break;
		n = xvd_blk_poll(bd->dev, done, 64);
		if (n == 0)
			n = xvd_blk_wait(bd->dev, done, 64, COMPLETION_WAIT_MS);
		if (n < 0)
			return dev_fail(b, bd, "completion", n);
		if (n == 0 && !g_stop_signal) {
			if (!bd->threaded && backend_check(&b->be))
				return -1;
			return dev_fail(b, bd, "no completion within 5 s", -ETIMEDOUT);
		}
		t = now_ns();
		for (i = 0; i < (unsigned int)n; i++) {
			struct slot *s = done[i].cookie;

			if (done[i].status)
				return dev_fail(b, bd, "request failed", done[i].status);
			if (r && samples_add(&r->lat, t - s->t0))
				return fail("out of memory");
			freel[nfree++] = (unsigned int)(s - slots);
			inflight--;
			if (r) {
				r->reqs++;
				r->bytes += s->flush ? 0 : w->bs;
				r->flushes += s->flush;
			}
		}
	}
	if (r)
		r->ns += now_ns() - t_start;
	return 0;
}

/* One timed (or warmup, r == NULL) phase on an xvmsg device, with the
 * driver and backend counters taken around it. */
static int dev_phase(struct bench *b, struct bench_dev *bd, int wl, double secs,
		     struct result *r)
{
	const struct workload *w = &workloads[wl];
	unsigned int qd = wl_qd(b, wl), i;
	struct be_counters c0, c1;
	struct xvd_stats s0, s1;
	struct slot slots[MAX_QD];
	int rc = -1;

	memset(slots, 0, sizeof(slots));
	for (i = 0; i < qd; i++) {
		int e = xvd_ram_alloc(bd->dom, w->bs, &slots[i].buf);

		if (e < 0) {
			dev_fail(b, bd, "allocating buffers in guest RAM", e);
			goto out;
		}
		if (w->op == XVD_BLK_WRITE)
			memset(slots[i].buf, 0xa5 ^ (int)i, w->bs);
	}
	if (r) {
		xvd_dev_stats(bd->dev, &s0);
		if (backend_counters(&b->be, bd->be_name, &c0))
			goto out;
		if (strcmp(c0.mode, mode_names[bd->mode])) {
			fail("%s: the backend serves it in mode %s, expected %s", bd->be_name,
			     c0.mode, mode_names[bd->mode]);
			goto out;
		}
	}
	if (dev_io(b, bd, w, qd, secs, slots, r))
		goto out;
	if (r) {
		xvd_dev_stats(bd->dev, &s1);
		if (backend_counters(&b->be, bd->be_name, &c1))
			goto out;
		r->valid = true;
		r->qd = qd;
		r->maps += c1.maps - c0.maps;
		r->unmaps += c1.unmaps - c0.unmaps;
		r->notify_out += c1.notify_out - c0.notify_out;
		r->kicks += s1.kicks - s0.kicks;
		r->copied += (s1.bounce_in - s0.bounce_in) + (s1.bounce_out - s0.bounce_out);
	}
	rc = 0;
out:
	for (i = 0; i < qd; i++)
		xvd_ram_free(bd->dom, slots[i].buf);
	return rc;
}

/*
 * The backing store's own speed: an io_uring loop on the image keeping qd
 * requests in flight, what fio's io_uring engine measures (and its libaio
 * one, within noise).  With --direct the image is opened O_DIRECT here too.
 */
static int raw_io(struct bench *b, const struct workload *w, unsigned int qd, double secs,
		  uint64_t *rng, uint64_t *seq, struct result *r)
{
	uint64_t t_start = now_ns(), deadline = t_start + (uint64_t)(secs * 1e9);
	unsigned int inflight = 0, i, writes = 0;
	struct io_uring ring;
	struct slot *slots;
	int rc;

	slots = calloc(qd, sizeof(*slots));
	if (!slots)
		return fail("out of memory");
	rc = io_uring_queue_init(qd, &ring, 0);
	if (rc < 0) {
		free(slots);
		return fail("raw: io_uring_queue_init(%u): %s", qd, strerror(-rc));
	}
	for (i = 0; i < qd; i++) {
		if (posix_memalign(&slots[i].buf, 4096, w->bs)) {
			rc = fail("out of memory");
			goto out;
		}
		memset(slots[i].buf, 0x5a, w->bs);
	}
	for (i = 0;; ) {
		struct io_uring_cqe *cqe;
		uint64_t t = now_ns();

		/* Refill: every free slot gets a request until the deadline;
		 * with flush_every, an fdatasync after every N writes, in the
		 * stream like the devices' FLUSH. */
		for (; t < deadline && inflight < qd && !g_stop_signal; inflight++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			struct slot *sl = &slots[i++ % qd];

			while (sl->t0)		/* the slot still in flight: next one */
				sl = &slots[i++ % qd];
			sl->flush = w->flush_every && writes == w->flush_every;
			if (sl->flush)
				io_uring_prep_fsync(sqe, b->raw_fd, IORING_FSYNC_DATASYNC);
			else if (w->op == XVD_BLK_WRITE)
				io_uring_prep_write(sqe, b->raw_fd, sl->buf, w->bs,
						    next_offset(rng, seq, w, b->img_size));
			else
				io_uring_prep_read(sqe, b->raw_fd, sl->buf, w->bs,
						   next_offset(rng, seq, w, b->img_size));
			writes = sl->flush ? 0 : writes + 1;
			io_uring_sqe_set_data(sqe, sl);
			sl->t0 = now_ns();
		}
		if (!inflight)
			break;
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 && rc != -EINTR) {
			fail("raw: io_uring_submit: %s", strerror(-rc));
			goto out;
		}
		t = now_ns();
		while (io_uring_peek_cqe(&ring, &cqe) == 0) {
			struct slot *sl = io_uring_cqe_get_data(cqe);
			int res = cqe->res;

			io_uring_cqe_seen(&ring, cqe);
			if (res != (sl->flush ? 0 : (int)w->bs)) {
				rc = fail("raw %s on %s: %s", sl->flush ? "fdatasync" :
					  w->op == XVD_BLK_WRITE ? "write" : "read",
					  b->img_path, res < 0 ? strerror(-res) : "short transfer");
				goto out;
			}
			if (r) {
				if (samples_add(&r->lat, t - sl->t0)) {
					rc = fail("out of memory");
					goto out;
				}
				r->reqs++;
				r->bytes += sl->flush ? 0 : w->bs;
				r->flushes += sl->flush;
			}
			sl->t0 = 0;
			inflight--;
		}
		if (g_stop_signal && !inflight)
			break;
	}
	rc = 0;
	if (r) {
		r->valid = true;
		r->qd = qd;
		r->ns += now_ns() - t_start;
	}
out:
	while (rc && inflight) {	/* nothing may land in freed buffers */
		struct io_uring_cqe *cqe;

		if (io_uring_wait_cqe(&ring, &cqe) < 0)
			break;
		io_uring_cqe_seen(&ring, cqe);
		inflight--;
	}
	io_uring_queue_exit(&ring);
	for (i = 0; i < qd; i++)
		free(slots[i].buf);
	free(slots);
	return g_stop_signal ? -1 : rc;
}

/* The raw loop for workload wl, on the bench's own offset stream. */
static int raw_phase(struct bench *b, int wl, unsigned int qd, double secs, struct result *r)
{
	return raw_io(b, &workloads[wl], qd, secs, &b->raw_rng, &b->raw_seq, r);
}

/* CPU time of this process, all threads (ns). */
static uint64_t self_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* CPU time of process pid, all its threads (io_uring's workers too), from
 * /proc/<pid>/task/<tid>/schedstat (ns on a CPU); 0 if unreadable. */
static uint64_t proc_cpu_ns(pid_t pid)
{
	char path[64], line[128];
	uint64_t sum = 0;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		unsigned long long ns;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat", (int)pid, de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(line, sizeof(line), f) && sscanf(line, "%llu", &ns) == 1)
			sum += ns;
		fclose(f);
	}
	closedir(d);
	return sum;
}

static int phase(struct bench *b, int mode, int wl, double secs, struct result *r)
{
	uint64_t reqs0 = r ? r->reqs : 0, ns0 = r ? r->ns : 0;
	uint64_t c0 = self_cpu_ns(), b0 = b->be.pid > 0 ? proc_cpu_ns(b->be.pid) : 0;
	int rc;

	if (mode == M_RAW)
		rc = raw_phase(b, wl, wl_qd(b, wl), secs, r);
	else
		rc = dev_phase(b, &b->devs[mode], wl, secs, r);
	if (rc || !r)
		return rc;
	r->drv_cpu_ns += self_cpu_ns() - c0;
	if (b->be.pid > 0)
		r->be_cpu_ns += proc_cpu_ns(b->be.pid) - b0;
	if (r->nrounds < MAX_ROUNDS && r->ns > ns0)
		r->round_iops[r->nrounds++] = (double)(r->reqs - reqs0) * 1e9 / (double)(r->ns - ns0);
	return 0;
}

/* ---- references for the latency ----------------------------------------- */

/*
 * Notification round trips between this process and a forked child for
 * secs, appended to s (ns): the cost of two cross-process wakeups, the
 * floor of a request that needs a kick and an interrupt.  The primitive is
 * the loopback bus's event channel, a datagram socketpair (one datagram
 * each way); blocking receives on both sides.  A cpu >= 0 pins that side
 * to it (the parent only for the measurement).
 */
static int notify_rtt(double secs, struct samples *s, int parent_cpu, int child_cpu)
{
	cpu_set_t saved, one;
	int sv[2] = { -1, -1 }, rc = -1, status, i;
	uint64_t t0, t1, deadline;
	pid_t pid = -1;
	char v;

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv)) {
		fail("socketpair: %s", strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		fail("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {		/* echo each ping; 2 means stop */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (child_cpu >= 0) {
			CPU_ZERO(&one);
			CPU_SET(child_cpu, &one);
			sched_setaffinity(0, sizeof(one), &one);
		}
		while (recv(sv[1], &v, 1, 0) == 1 && v == 1)
			if (send(sv[1], &v, 1, 0) != 1)
				break;
		_exit(0);
	}
	if (parent_cpu >= 0) {
		CPU_ZERO(&one);
		CPU_SET(parent_cpu, &one);
		if (sched_getaffinity(0, sizeof(saved), &saved) ||
		    sched_setaffinity(0, sizeof(one), &one))
			parent_cpu = -1;	/* unpinned, then */
	}
	deadline = now_ns() + (uint64_t)(secs * 1e9);
	for (i = 0;; i++) {		/* the first 100 warm up */
		v = 1;
		t0 = now_ns();
		if (send(sv[0], &v, 1, 0) != 1 || recv(sv[0], &v, 1, 0) != 1) {
			if (!g_stop_signal)
				fail("notification ping-pong: %s", strerror(errno));
			break;
		}
		t1 = now_ns();
		if (i >= 100 && samples_add(s, t1 - t0)) {
			fail("out of memory");
			break;
		}
		if (t1 >= deadline && i >= 200) {
			rc = 0;
			break;
		}
	}
	if (parent_cpu >= 0)
		sched_setaffinity(0, sizeof(saved), &saved);
	v = 2;
	if (send(sv[0], &v, 1, 0) != 1)
		kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	pid = -1;
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	return rc;
}

/*
 * Where the two processes run matters more than anything else on a small
 * VM: a wakeup on a CPU that idles costs far more than a switch on the same
 * CPU.  Measure both placements once, pinned, to explain the unpinned p50.
 */
static int rtt_placements(double *same_cpu, double *two_cpus)
{
	struct samples s1 = { 0 }, s2 = { 0 };
	int cpus[2], n = 0, rc = 1;
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	if (n == 2 && !notify_rtt(0.1, &s1, cpus[0], cpus[0]) &&
	    !notify_rtt(0.1, &s2, cpus[0], cpus[1])) {
		*same_cpu = percentile_us(&s1, 50);
		*two_cpus = percentile_us(&s2, 50);
		rc = 0;
	}
	free(s1.v);
	free(s2.v);
	return rc;
}

/* One round of the references, next to the lat4k phases of that round:
 * notification round trips, and raw 4 KiB reads unless raw mode measures them. */
static int reference_round(struct bench *b, double secs)
{
	if (notify_rtt(secs, &b->ref_rtt, -1, -1))
		return -1;
	if (!(b->o.modes & (1u << M_RAW)))
		return raw_phase(b, W_LAT, 1, secs, &b->ref_raw);
	return 0;
}

/* One status line on a terminal, rewritten as the run goes on. */
static void progress(const struct bench *b, const char *wl, unsigned int round, const char *what)
{
	if (!b->tty)
		return;
	if (!wl)
		fprintf(stderr, "\r\033[K");
	else if (!round)
		fprintf(stderr, "\r\033[K  %s: warming up %s ...", wl, what);
	else
		fprintf(stderr, "\r\033[K  %s: round %u/%u, %s ...", wl, round, b->o.rounds, what);
}

/* One phase of workload wl in mode m for secs: counted into the results,
 * or a warm-up (counted false).  0 or -1. */
typedef int (*phase_fn)(struct bench *b, int m, int wl, double secs, bool counted);

/* Workload wl (named name): warm each selected mode up, then the rounds,
 * the modes interleaved and their order rotated from round to round;
 * after_round (may be NULL) runs at the end of each.  0 or -1. */
static int run_rounds(struct bench *b, int wl, const char *name, phase_fn run_phase,
		      int (*after_round)(struct bench *b, int wl, unsigned int round,
					 double per_phase))
{
	double per_phase = b->o.seconds / b->o.rounds;
	int modes[NMODES], nm = 0;

	for (int m = 0; m < NMODES; m++)
		if (b->o.modes & (1u << m))
			modes[nm++] = m;
	for (int i = 0; i < nm; i++) {
		progress(b, name, 0, mode_names[modes[i]]);
		if (run_phase(b, modes[i], wl, per_phase < WARMUP_S ? per_phase : WARMUP_S, false))
			return -1;
	}
	for (unsigned int round = 0; round < b->o.rounds; round++) {
		for (int i = 0; i < nm; i++) {
			int m = modes[(i + (int)round) % nm];

			progress(b, name, round + 1, mode_names[m]);
			if (run_phase(b, m, wl, per_phase, true))
				return -1;
		}
		if (after_round && after_round(b, wl, round, per_phase))
			return -1;
	}
	return 0;
}

static int disk_phase(struct bench *b, int m, int wl, double secs, bool counted)
{
	return phase(b, m, wl, secs, counted ? &b->res[m][wl] : NULL);
}

/* lat's rounds end with the reference measurements (when a mode other
 * than raw runs). */
static int lat_references(struct bench *b, int wl, unsigned int round, double per_phase)
{
	if (wl != W_LAT || !(b->o.modes & ((1u << M_RAW) - 1)))
		return 0;
	progress(b, workloads[wl].name, round + 1, "references");
	return reference_round(b, per_phase / 2);
}

/* Every selected disk workload, in rounds (run_rounds). */
static int run_all(struct bench *b)
{
	for (int wl = 0; wl < NWL; wl++)
		if ((b->o.wls & (1u << wl)) &&
		    run_rounds(b, wl, workloads[wl].name, disk_phase, lat_references))
			return -1;
	progress(b, NULL, 0, NULL);
	return 0;
}

/* ---- several devices at once (--devices, noisy) -------------------------- */

/* One device driven by its own thread: the driver library wants a domain
 * used from one thread, and each of these devices has a domain (a guest)
 * of its own. */
struct job {
	struct bench *b;
	struct bench_dev *bd;
	const struct workload *w;
	unsigned int qd;
	double secs;
	pthread_barrier_t *start;
	struct result *r;	/* NULL: warmup */
	int rc;
};

static void *job_main(void *arg)
{
	struct job *j = arg;
	struct slot *slots = calloc(j->qd, sizeof(*slots));
	unsigned int i, n = 0;
	int rc = slots ? 0 : fail("out of memory");

	for (i = 0; !rc && i < j->qd; i++, n++) {
		int e = xvd_ram_alloc(j->bd->dom, j->w->bs, &slots[i].buf);

		if (e < 0) {
			rc = dev_fail(j->b, j->bd, "allocating buffers in guest RAM", e);
			break;
		}
		memset(slots[i].buf, 0xa5 ^ (int)i, j->w->bs);
	}
	pthread_barrier_wait(j->start);		/* all start together, failed or not */
	if (!rc)
		rc = dev_io(j->b, j->bd, j->w, j->qd, j->secs, slots, j->r);
	for (i = 0; i < n; i++)
		xvd_ram_free(j->bd->dom, slots[i].buf);
	free(slots);
	j->rc = rc;
	return NULL;
}

/* Run the jobs together; 0, or -1 when one failed (it said why). */
static int run_jobs(struct bench *b, struct job *jobs, unsigned int n)
{
	pthread_barrier_t start;
	pthread_t *tids = calloc(n, sizeof(*tids));
	unsigned int i, started = 0;
	int rc = 0;

	if (!tids || pthread_barrier_init(&start, NULL, n)) {
		free(tids);
		return fail("out of memory");
	}
	for (i = 0; i < n; i++) {
		jobs[i].start = &start;
		jobs[i].rc = 0;
		if (pthread_create(&tids[i], NULL, job_main, &jobs[i]))
			break;
		started++;
	}
	if (started < n) {
		/* Cannot happen short of running out of threads; the ones
		 * started wait at the barrier for ever: give up loudly. */
		fail("cannot start %u threads", n);
		exit(1);
	}
	for (i = 0; i < n; i++) {
		pthread_join(tids[i], NULL);
		rc |= jobs[i].rc;
	}
	pthread_barrier_destroy(&start);
	free(tids);
	if (!rc && backend_check(&b->be))
		rc = -1;
	return rc ? -1 : 0;
}

/* --devices N: every device runs workload wl at its depth, all together. */
static int devices_phase(struct bench *b, int wl, double secs, struct result *res)
{
	unsigned int n = b->o.devices, i;
	struct job *jobs = calloc(n, sizeof(*jobs));
	int rc;

	if (!jobs)
		return fail("out of memory");
	for (i = 0; i < n; i++)
		jobs[i] = (struct job){ .b = b, .bd = &b->mdevs[i], .w = &workloads[wl],
					.qd = wl_qd(b, wl), .secs = secs,
					.r = res ? &res[i] : NULL };
	rc = run_jobs(b, jobs, n);
	free(jobs);
	return rc;
}

static unsigned int total_qd(const struct bench *b, int wl)
{
	unsigned int t = b->o.devices * wl_qd(b, wl);

	return t < MAX_RAW_QD ? t : MAX_RAW_QD;
}

static int run_devices(struct bench *b)
{
	double per_phase = b->o.seconds / b->o.rounds;

	for (int wl = 0; wl < NWL; wl++) {
		if (!(b->o.wls & (1u << wl)))
			continue;
		progress(b, workloads[wl].name, 0, "all devices");
		if (devices_phase(b, wl, per_phase < WARMUP_S ? per_phase : WARMUP_S, NULL) ||
		    raw_phase(b, wl, total_qd(b, wl), WARMUP_S, NULL))
			return -1;
		for (unsigned int round = 0; round < b->o.rounds; round++) {
			/* raw first in odd rounds, the devices first in even ones */
			for (int k = 0; k < 2; k++) {
				bool raw = (k == 0) == (round & 1);

				progress(b, workloads[wl].name, round + 1, raw ? "raw" : "all devices");
				if (raw ? raw_phase(b, wl, total_qd(b, wl), per_phase,
						    &b->res[M_RAW][wl])
					: devices_phase(b, wl, per_phase, b->mres[wl]))
					return -1;
			}
		}
	}
	progress(b, NULL, 0, NULL);
	return 0;
}

/* The noisy neighbour: device 0 (A) writes at QD 32 with a FLUSH after every
 * 8 writes; device 1 (B) reads at QD 1.  B alone, then B beside A. */
static const struct workload noisy_a = { "write4k+flush/8", XVD_BLK_WRITE, 4096, false, 32, 8 };
static const struct workload noisy_b = { "read4k", XVD_BLK_READ, 4096, false, 1, 0 };

/* One raw stream of the noisy neighbour, in a thread of its own. */
struct raw_job {
	struct bench *b;
	const struct workload *w;
	unsigned int qd;
	double secs;
	uint64_t rng, seq;
	struct result *r;	/* NULL: warmup */
	int rc;
};

static void *raw_job_main(void *arg)
{
	struct raw_job *j = arg;

	j->rc = raw_io(j->b, j->w, j->qd, j->secs, &j->rng, &j->seq, j->r);
	return NULL;
}

/* The same two jobs straight on the file (io_uring, opened as the backend
 * opens it): what the disk itself does to B, the reference for B's ratio.
 * B runs here; A, when beside, in a thread. */
static int raw_noisy_phase(struct bench *b, bool beside, double secs, bool warm)
{
	struct raw_job a = { .b = b, .w = &noisy_a, .qd = 32, .secs = secs,
			     .rng = 0x9e3779b97f4a7c15ULL, .r = warm ? NULL : &b->noisy_raw[2] };
	struct raw_job bj = { .b = b, .w = &noisy_b, .qd = 1, .secs = secs,
			      .rng = 0xbf58476d1ce4e5b9ULL,
			      .r = warm ? NULL : &b->noisy_raw[beside ? 1 : 0] };
	pthread_t th;

	if (beside && pthread_create(&th, NULL, raw_job_main, &a))
		return fail("cannot start a thread");
	raw_job_main(&bj);
	if (beside)
		pthread_join(th, NULL);
	return bj.rc || (beside && a.rc) ? -1 : 0;
}

static int run_noisy(struct bench *b)
{
	double per_phase = b->o.seconds / b->o.rounds;
	struct job jobs[2];

	for (unsigned int round = 0; round <= b->o.rounds; round++) {
		bool warm = round == 0;
		double secs = warm ? WARMUP_S : per_phase;

		for (int k = 0; k < 2; k++) {
			/* alternate which of the two situations comes first */
			bool beside = (k == 0) == (round & 1);

			progress(b, "noisy", round, beside ? "B beside A" : "B alone");
			jobs[0] = (struct job){ .b = b, .bd = &b->mdevs[1], .w = &noisy_b, .qd = 1,
						.secs = secs,
						.r = warm ? NULL : &b->noisy[beside ? 1 : 0] };
			jobs[1] = (struct job){ .b = b, .bd = &b->mdevs[0], .w = &noisy_a, .qd = 32,
						.secs = secs, .r = warm ? NULL : &b->noisy[2] };
			if (run_jobs(b, jobs, beside ? 2 : 1))
				return -1;
			progress(b, "noisy", round, beside ? "raw B beside raw A" : "raw B alone");
			if (raw_noisy_phase(b, beside, secs, warm))
				return -1;
		}
	}
	progress(b, NULL, 0, NULL);
	return 0;
}

/* ---- output ------------------------------------------------------------- */

static double median(double *v, unsigned int n);

struct row {
	double iops, mib_s, p50, p99, maps, unmaps, notifies, copied;
};

static void row_compute(struct result *r, struct row *o)
{
	double secs = (double)r->ns / 1e9, n = r->reqs ? (double)r->reqs : 1;

	o->iops = secs > 0 ? (double)r->reqs / secs : 0;
	o->mib_s = secs > 0 ? (double)r->bytes / secs / (1024.0 * 1024.0) : 0;
	o->p99 = percentile_us(&r->lat, 99);
	o->p50 = percentile_us(&r->lat, 50);
	o->maps = (double)r->maps / n;
	o->unmaps = (double)r->unmaps / n;
	o->notifies = (double)(r->kicks + r->notify_out) / n;
	o->copied = (double)r->copied / n;
}

static void print_results(struct bench *b, FILE *csv)
{
	struct row rows[NMODES][NWL];

	/* "µs" is two bytes and one column: its fields are one byte wider. */
	printf("%-6s %-12s %4s %10s %9s %10s %10s %9s %10s %12s %13s\n", "mode", "workload", "qd",
	       "IOPS", "MiB/s", "p50 µs", "p99 µs", "maps/req", "unmaps/req", "notifies/req",
	       "copied B/req");
	if (csv)
		fprintf(csv, "mode,workload,qd,iops,mib_s,p50_us,p99_us,maps_per_req,"
			     "unmaps_per_req,notifies_per_req,copied_bytes_per_req\n");
	for (int wl = 0; wl < NWL; wl++) {
		for (int m = 0; m < NMODES; m++) {
			struct result *r = &b->res[m][wl];
			struct row *o = &rows[m][wl];

			if (!r->valid)
				continue;
			row_compute(r, o);
			printf("%-6s %-12s %4u %10.0f %9.1f %9.1f %9.1f", mode_names[m],
			       workloads[wl].name, r->qd, o->iops, o->mib_s, o->p50, o->p99);
			if (m == M_RAW)
				printf(" %9s %10s %12s %13s\n", "-", "-", "-", "-");
			else
				printf(" %9.2f %10.2f %12.2f %13.1f\n", o->maps, o->unmaps,
				       o->notifies, o->copied);
			if (csv)
				fprintf(csv, "%s,%s,%u,%.1f,%.2f,%.2f,%.2f,%.3f,%.3f,%.3f,%.1f\n",
					mode_names[m], workloads[wl].name, r->qd, o->iops,
					o->mib_s, o->p50, o->p99, o->maps, o->unmaps, o->notifies,
					o->copied);
		}
	}

	if (b->res[M_POOL][W_RANDREAD].valid) {
		bool any = false;

		for (int m = M_GRANT; m < NMODES; m++) {
			if (!b->res[m][W_RANDREAD].valid || rows[m][W_RANDREAD].iops <= 0)
				continue;
			if (!any)
				printf("\nratios, randread4k IOPS, same run:\n");
			any = true;
			printf("  pool/%-5s = %.2f\n", mode_names[m],
			       rows[M_POOL][W_RANDREAD].iops / rows[m][W_RANDREAD].iops);
		}
	}

	for (int wl = 0; wl < NWL; wl++) {
		const struct result *rr = &b->res[M_RAW][wl];
		bool head = false;

		for (int m = M_POOL; m < NMODES; m++) {
			const struct result *r = &b->res[m][wl];
			double ratio[MAX_ROUNDS];
			unsigned int n = 0;

			if (!r->valid || !r->reqs)
				continue;
			if (!head)
				printf("\n%s, CPU per I/O (this process + the backend, timed phases)%s:\n",
				       workloads[wl].name, rr->valid ? " and per-round IOPS / raw" : "");
			head = true;
			printf("  %-5s %6.2f µs + %6.2f µs = %6.2f µs", mode_names[m],
			       (double)r->drv_cpu_ns / 1e3 / (double)r->reqs,
			       (double)r->be_cpu_ns / 1e3 / (double)r->reqs,
			       (double)(r->drv_cpu_ns + r->be_cpu_ns) / 1e3 / (double)r->reqs);
			if (m != M_RAW && rr->valid) {
				for (unsigned int i = 0; i < r->nrounds && i < rr->nrounds; i++)
					if (rr->round_iops[i] > 0)
						ratio[n++] = r->round_iops[i] / rr->round_iops[i];
				printf("; rounds");
				for (unsigned int i = 0; i < n; i++)
					printf(" %.2f", ratio[i]);
				if (n)
					printf(", median %.2f", median(ratio, n));
			}
			printf("\n");
		}
	}

	if (b->ref_rtt.n) {
		double rtt = percentile_us(&b->ref_rtt, 50), raw, sum, same, two;

		raw = b->res[M_RAW][W_LAT].valid ? rows[M_RAW][W_LAT].p50
						 : percentile_us(&b->ref_raw.lat, 50);
		sum = rtt + raw;
		printf("\n");
		for (int m = M_POOL; m <= M_FULL; m++)
			if (b->res[m][W_LAT].valid)
				printf("lat4k %s p50 = %.1f µs vs notify RTT p50 %.1f + raw read p50 "
				       "%.1f = %.1f µs (ratio %.2f)\n", mode_names[m],
				       rows[m][W_LAT].p50, rtt, raw, sum,
				       sum > 0 ? rows[m][W_LAT].p50 / sum : 0);
		if (!g_stop_signal && rtt_placements(&same, &two) == 0)
			printf("  (notify RTT p50 pinned to one CPU %.1f µs, to two CPUs %.1f µs: "
			       "unpinned processes,\n   the driver and the backend too, land on "
			       "either)\n", same, two);
	}
}

/* Median of n values (sorts them). */
static double median(double *v, unsigned int n)
{
	for (unsigned int i = 1; i < n; i++)
		for (unsigned int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : 0;
}

static void print_devices(struct bench *b, FILE *csv)
{
	unsigned int n = b->o.devices;
	double *p99 = calloc(n, sizeof(*p99));
	int mode = b->mdevs[0].mode;

	if (!p99)
		return;
	printf("%u %s-mode devices, one guest each, driven together; raw: io_uring at the total "
	       "depth\n", n, mode_names[mode]);
	printf("%-12s %6s %8s %11s %9s %8s %10s %10s %10s %11s %7s\n", "workload", "qd/dev",
	       "total qd", "agg IOPS", "MiB/s", "p50 µs", "p99 min", "p99 med", "p99 max",
	       "raw IOPS", "agg/raw");
	if (csv)
		fprintf(csv, "mode,workload,devices,qd_per_dev,total_qd,agg_iops,agg_mib_s,"
			     "p50_us,p99_min_us,p99_median_us,p99_max_us,raw_iops,agg_over_raw\n");
	for (int wl = 0; wl < NWL; wl++) {
		struct result all = { 0 }, *res = b->mres[wl];
		struct row raw;
		double iops = 0, mib = 0, p50;
		unsigned int i;

		if (!(b->o.wls & (1u << wl)) || !res || !b->res[M_RAW][wl].valid)
			continue;
		for (i = 0; i < n; i++) {
			struct row o;

			row_compute(&res[i], &o);
			iops += o.iops;
			mib += o.mib_s;
			p99[i] = o.p99;
			for (size_t k = 0; k < res[i].lat.n; k++)
				if (samples_add(&all.lat, res[i].lat.v[k]))
					break;
		}
		p50 = percentile_us(&all.lat, 50);
		free(all.lat.v);
		row_compute(&b->res[M_RAW][wl], &raw);
		{
			double mn = p99[0], mx = p99[0], md;

			for (i = 1; i < n; i++) {
				mn = p99[i] < mn ? p99[i] : mn;
				mx = p99[i] > mx ? p99[i] : mx;
			}
			md = median(p99, n);
			printf("%-12s %6u %8u %11.0f %9.1f %8.1f %10.1f %10.1f %10.1f %11.0f %7.2f\n",
			       workloads[wl].name, wl_qd(b, wl), total_qd(b, wl), iops, mib, p50, mn,
			       md, mx, raw.iops, raw.iops > 0 ? iops / raw.iops : 0);
			if (csv)
				fprintf(csv, "%s,%s,%u,%u,%u,%.1f,%.2f,%.2f,%.2f,%.2f,%.2f,%.1f,%.3f\n",
					mode_names[mode], workloads[wl].name, n, wl_qd(b, wl),
					total_qd(b, wl), iops, mib, p50, mn, md, mx, raw.iops,
					raw.iops > 0 ? iops / raw.iops : 0);
		}
	}
	free(p99);
}

/* One block of the noisy table (the three cases of res, named mode); returns
 * B's p99 beside A / alone. */
static double print_noisy_block(const char *mode, struct result *res, FILE *csv)
{
	static const char *const cases[3] = { "b_alone", "b_beside_a", "a_beside_b" };
	static const char *const labels[3] = { "B alone", "B beside A", "A (beside B)" };
	struct row rows[3];

	for (int i = 0; i < 3; i++) {
		row_compute(&res[i], &rows[i]);
		printf("%-6s %-16s %10.0f %9.1f %9.1f", mode, labels[i], rows[i].iops, rows[i].p50,
		       rows[i].p99);
		if (i == 2)
			printf("  (%.0f flushes/s)", res[2].ns ? (double)res[2].flushes * 1e9 /
							     (double)res[2].ns : 0);
		printf("\n");
		if (csv)
			fprintf(csv, "%s,%s,%.1f,%.2f,%.2f\n", mode, cases[i], rows[i].iops,
				rows[i].p50, rows[i].p99);
	}
	return rows[0].p99 > 0 ? rows[1].p99 / rows[0].p99 : 0;
}

static void print_noisy(struct bench *b, FILE *csv)
{
	const char *mode = mode_names[b->mdevs[0].mode];
	double dev, raw;

	printf("noisy neighbour, %s mode, two guests: A writes 4 KiB at QD 32 with a FLUSH after "
	       "every 8 writes,\nB reads 4 KiB at QD 1; raw: the same two jobs with io_uring "
	       "on the file itself\n", mode);
	printf("%-6s %-16s %10s %9s %9s\n", "mode", "", "IOPS", "p50 µs", "p99 µs");
	if (csv)
		fprintf(csv, "mode,case,iops,p50_us,p99_us\n");
	dev = print_noisy_block(mode, b->noisy, csv);
	raw = print_noisy_block("raw", b->noisy_raw, csv);
	printf("\nB's p99 beside A / alone: %s %.2f, raw %.2f (%s / raw %.2f)\n", mode, dev, raw,
	       mode, raw > 0 ? dev / raw : 0);
}

/* ---- net workloads (--workload net64, net1500, net64k, net) -------------- */

/*
 * virtio-net, both ways.  Transmit: each mode's guest sends frames of one
 * size as fast as its 64 transmit slots allow; the backend writes them to
 * a tap of its own, whose host stack drops them (another host's MAC).
 * "raw" writes the same frames, with the same header, straight into a tap
 * from this process: the cost of the tap itself.  net64k frames are 64 KiB
 * TSO frames (VIRTIO_NET_F_HOST_TSO4), which the tap takes whole.  Receive
 * (net_rx_phase): frames sent into the tap from the host side reach the
 * guest; raw reads them from a tap itself.
 */
struct net_wl {
	const char *name;
	uint32_t len;		/* frame bytes, without the virtio-net header */
	bool tso;
};

static const struct net_wl net_wls[NNET] = {
	[N_64]   = { "net64",   64,    false },
	[N_1500] = { "net1500", 1514,  false },
	[N_64K]  = { "net64k",  65548, true },
};

#define NET_FEATURES	((1ULL << 0) | (1ULL << 11))	/* VIRTIO_NET_F_CSUM, HOST_TSO4 */
#define NET_RX_BUFS	256	/* receive buffers the guests keep posted */
#define NET_WINDOW	200	/* receive: frames the sender keeps ahead, below the tap's queue */
#define NET_ETH_TEST	0x88b5

static void net_tap_name(char *buf, size_t len, char which)
{
	snprintf(buf, len, "xvb%u%c", (unsigned int)getpid() % 100000, which);
}

/* The frame of a workload and its header (virtio_net_hdr_v1, host order). */
static void net_frame(const struct net_wl *w, uint8_t *f, struct xvd_net_hdr *h)
{
	static const uint8_t dst[6] = { 0x52, 0x54, 0x00, 0xbe, 0x0c, 0x01 };
	uint16_t tot = htons((uint16_t)(w->len - 14));

	memset(h, 0, sizeof(*h));
	memset(f, 0x6b, w->len);
	memcpy(f, dst, 6);
	memcpy(f + 6, dst, 6);
	f[6] = 0x02;
	if (!w->tso) {
		f[12] = 0x88;		/* local experimental ethertype */
		f[13] = 0xb5;
		return;
	}
	memset(f + 12, 0, 42);		/* IPv4 + TCP headers */
	f[12] = 0x08;
	f[14] = 0x45;
	memcpy(f + 16, &tot, 2);
	f[22] = 64;
	f[23] = 6;
	f[26] = 198, f[27] = 18, f[28] = 0, f[29] = 1;
	f[30] = 198, f[31] = 18, f[32] = 0, f[33] = 2;
	f[35] = 9, f[37] = 9;
	f[46] = 0x50;
	f[47] = 0x10;
	h->flags = 1;			/* NEEDS_CSUM */
	h->gso_type = 1;		/* TCPV4 */
	h->hdr_len = 54;
	h->gso_size = 1448;
	h->csum_start = 34;
	h->csum_offset = 16;
}

static int net_dev_open(struct bench *b, int mode)
{
	struct bench_dev *bd = &b->devs[mode];
	char name[32];
	struct xvd_domain_opts dopt = {
		.socket_path = b->be.sock, .ram_pages = 8192, .log_level = XVD_LOG_WARN,
		.log = drv_log, .log_ctx = b,
	};
	struct xvd_dev_opts o = {
		.export_name = name, .devid = DEVID, .mode = drv_modes[mode],
		.pool_pages = (b->o.net & (1u << N_64K)) ? 4096 : 1024,
		.features = NET_FEATURES,
	};
	int r;

	export_name(&b->o, (unsigned int)mode, name, sizeof(name));
	bd->mode = mode;
	r = xvd_domain_open_loop(&dopt, &bd->dom);
	if (r < 0)
		return fail("%s mode: cannot connect to the backend: %s", mode_names[mode],
			    strerror(-r));
	r = xvd_net_open(bd->dom, &o, NET_RX_BUFS, &bd->dev);
	if (r < 0)
		return fail("%s mode: cannot open export %s: %s", mode_names[mode], name,
			    strerror(-r));
	if ((b->o.net & (1u << N_64K)) &&
	    (xvd_dev_features(bd->dev) & NET_FEATURES) != NET_FEATURES)
		return fail("%s mode: the tap offers no TSO (features %#" PRIx64 ")",
			    mode_names[mode], xvd_dev_features(bd->dev));
	snprintf(bd->be_name, sizeof(bd->be_name), "net%u(dom%u)", DEVID, xvd_domain_id(bd->dom));
	return 0;
}

/* A guest's timed (or warmup, r == NULL) transmit phase. */
static int net_dev_phase(struct bench *b, struct bench_dev *bd, int wl, double secs,
			 struct net_result *r)
{
	const struct net_wl *w = &net_wls[wl];
	static uint8_t frame[65600];
	struct xvd_net_hdr h;
	struct be_counters c0, c1;
	struct xvd_stats s0, s1;
	uint64_t t0, deadline, n = 0;
	int rc;

	net_frame(w, frame, &h);
	if (r) {
		xvd_dev_stats(bd->dev, &s0);
		if (backend_counters(&b->be, bd->be_name, &c0))
			return -1;
	}
	t0 = now_ns();
	deadline = t0 + (uint64_t)(secs * 1e9);
	while (!g_stop_signal && now_ns() < deadline) {
		for (unsigned int i = 0; i < 32; i++, n++) {
			rc = xvd_net_send(bd->dev, &h, frame, w->len, i == 31 ? 0 : XVD_NO_KICK);
			if (rc < 0)
				return dev_fail(b, bd, "send", rc);
		}
	}
	rc = xvd_net_tx_wait(bd->dev, COMPLETION_WAIT_MS);
	if (rc < 0)
		return dev_fail(b, bd, "transmit completions", rc);
	if (!r)
		return 0;
	r->ns += now_ns() - t0;
	xvd_dev_stats(bd->dev, &s1);
	if (backend_counters(&b->be, bd->be_name, &c1))
		return -1;
	r->valid = true;
	r->pkts += n;
	r->bytes += n * w->len;
	r->maps += c1.maps - c0.maps;
	r->kicks += s1.kicks - s0.kicks;
	r->notify_out += c1.notify_out - c0.notify_out;
	r->copied += (s1.bounce_in - s0.bounce_in) + (s1.bounce_out - s0.bounce_out);
	return 0;
}

/* The same frames written straight into a tap of our own. */
static int net_raw_phase(struct bench *b, int wl, double secs, struct net_result *r)
{
	const struct net_wl *w = &net_wls[wl];
	static uint8_t frame[65600];
	uint8_t hb[XVD_NET_HDR_LEN];
	struct xvd_net_hdr h;
	struct iovec iov[2] = { { hb, sizeof(hb) }, { frame, 0 } };
	uint64_t t0, deadline, n = 0;
	uint16_t v[5];
	int fd = b->raw_tap;

	net_frame(w, frame, &h);
	iov[1].iov_len = w->len;
	hb[0] = h.flags;
	hb[1] = h.gso_type;
	v[0] = htole16(h.hdr_len);
	v[1] = htole16(h.gso_size);
	v[2] = htole16(h.csum_start);
	v[3] = htole16(h.csum_offset);
	v[4] = 0;
	memcpy(hb + 2, v, sizeof(v));
	t0 = now_ns();
	deadline = t0 + (uint64_t)(secs * 1e9);
	while (!g_stop_signal && now_ns() < deadline) {
		for (unsigned int i = 0; i < 32;) {
			ssize_t k = writev(fd, iov, 2);

			if (k < 0 && errno == EAGAIN)
				continue;
			if (k != (ssize_t)(sizeof(hb) + w->len))
				return fail("raw: writing to the tap: %s", strerror(errno));
			i++;
			n++;
		}
	}
	if (r) {
		r->valid = true;
		r->ns += now_ns() - t0;
		r->pkts += n;
		r->bytes += n * w->len;
	}
	return 0;
}

/* raw's tap: created here (it goes when we close it), up, the header of
 * the guests' frames. */
static int net_raw_open(struct bench *b)
{
	struct ifreq ifr;
	int hdr = XVD_NET_HDR_LEN, s;

	memset(&ifr, 0, sizeof(ifr));
	net_tap_name(ifr.ifr_name, sizeof(ifr.ifr_name), 'r');
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	b->raw_tap = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (b->raw_tap < 0 || ioctl(b->raw_tap, TUNSETIFF, &ifr) < 0 ||
	    ioctl(b->raw_tap, TUNSETVNETHDRSZ, &hdr) < 0)
		return fail("raw: cannot make tap %s: %s", ifr.ifr_name, strerror(errno));
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		if (s >= 0)
			close(s);
		return fail("raw: tap %s: %s", ifr.ifr_name, strerror(errno));
	}
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
		close(s);
		return fail("raw: cannot set tap %s up: %s", ifr.ifr_name, strerror(errno));
	}
	close(s);
	return 0;
}

/*
 * Receive: a thread of ours sends the workload's frames into the mode's tap
 * from the host side (a packet socket), keeping at most NET_WINDOW ahead of
 * what was received, so that nothing is dropped at the tap; the guest (or,
 * for raw, this process reading the tap itself) takes them.  64 KiB frames
 * are single frames on taps whose MTU allows them: a GSO frame sent on a
 * packet socket is segmented before the tap (it is "dodgy").
 */
struct net_sender {
	int fd;
	const uint8_t *frame;
	size_t len;
	atomic_ulong sent, received;
	atomic_bool stop;
	int err;
};

static void *net_sender_main(void *arg)
{
	struct net_sender *s = arg;

	while (!atomic_load(&s->stop) && !g_stop_signal) {
		/* Signed: frames a phase before left behind are received too. */
		if ((long)(atomic_load(&s->sent) - atomic_load(&s->received)) >= NET_WINDOW) {
			sched_yield();
			continue;
		}
		if (send(s->fd, s->frame, s->len, 0) < 0) {
			if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR)
				continue;
			s->err = errno;
			break;
		}
		atomic_fetch_add(&s->sent, 1);
	}
	return NULL;
}

/* Frames the kernel dropped on their way into tap (its queue full), or 0
 * when that cannot be read: for the warning of a stalled receive phase. */
static unsigned long long tap_dropped(const char *tap)
{
	char path[96];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/tx_dropped", tap);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

/* A packet socket sending on tap (and its MTU raised for 64 KiB frames). */
static int net_host_socket(const char *tap, uint32_t frame_len)
{
	struct sockaddr_ll sa = { .sll_family = AF_PACKET, .sll_protocol = htons(NET_ETH_TEST) };
	struct ifreq ifr;
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0), s;

	if (fd < 0)
		return fail("packet socket: %s", strerror(errno));
	sa.sll_ifindex = (int)if_nametoindex(tap);
	if (!sa.sll_ifindex || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return fail("packet socket on %s: %s", tap, strerror(errno));
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", tap);
	ifr.ifr_mtu = 65521;		/* a tap's largest */
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (frame_len > 1514 && (s < 0 || ioctl(s, SIOCSIFMTU, &ifr) < 0)) {
		fail("MTU of %s: %s", tap, strerror(errno));
		if (s >= 0)
			close(s);
		close(fd);
		return -1;
	}
	if (s >= 0)
		close(s);
	return fd;
}

static int net_rx_phase(struct bench *b, int mode, int wl, double secs, struct net_result *r)
{
	const struct net_wl *w = &net_wls[wl];
	struct bench_dev *bd = mode == M_RAW ? NULL : &b->devs[mode];
	static uint8_t frame[65600], buf[65600 + XVD_NET_HDR_LEN];
	/* A single frame's largest on a tap: its MTU 65521 and the header */
	struct net_sender snd = { .frame = frame, .len = w->len < 65535 ? w->len : 65535 };
	struct be_counters c0 = { 0 }, c1 = { 0 };
	struct xvd_stats s0, s1;
	uint64_t t0, t1, last, deadline, n = 0, bytes = 0, gap, longest = 0;
	unsigned long long drops0, dropped, credited;
	unsigned long reopened = 0;
	char tap[IFNAMSIZ];
	pthread_t th;
	int rc = -1, k;

	memset(frame, 0x3c, snd.len);
	frame[0] = 0x52, frame[1] = 0x54, frame[3] = 0x0c, frame[5] = 0x02;
	memcpy(frame + 6, frame, 6);
	frame[6] = 0x02;
	frame[12] = NET_ETH_TEST >> 8;
	frame[13] = NET_ETH_TEST & 0xff;
	net_tap_name(tap, sizeof(tap), "pgfr"[mode]);
	snd.fd = net_host_socket(tap, w->len);
	if (snd.fd < 0)
		return -1;
	if (r && bd) {
		xvd_dev_stats(bd->dev, &s0);
		if (backend_counters(&b->be, bd->be_name, &c0))
			goto out_fd;
	}
	drops0 = tap_dropped(tap);
	if (pthread_create(&th, NULL, net_sender_main, &snd)) {
		fail("cannot start the sender thread");
		goto out_fd;
	}
	t0 = now_ns();
	deadline = t0 + (uint64_t)(secs * 1e9);
	last = t0;
	credited = drops0;
	while (!g_stop_signal && now_ns() < deadline) {
		/* A frame the tap dropped would close the sender's window for
		 * good: after 100 ms without one, the frames the tap counts as
		 * dropped are given back to the window; after a second, it is
		 * opened again whatever was lost; after 5 s, give up. */
		if (now_ns() - last > 100 * 1000000ULL) {
			unsigned long long d = tap_dropped(tap);

			if (d > credited) {
				atomic_fetch_add(&snd.received, (unsigned long)(d - credited));
				credited = d;
			}
		}
		if (now_ns() - last > 1000 * 1000000ULL) {
			if (now_ns() - last > (uint64_t)COMPLETION_WAIT_MS * 1000000ULL) {
				fail("%s mode: no frame received in %d ms", mode_names[mode],
				     COMPLETION_WAIT_MS);
				break;
			}
			if (atomic_load(&snd.sent) != atomic_load(&snd.received)) {
				reopened++;
				atomic_store(&snd.received, atomic_load(&snd.sent));
			}
		}
		if (bd) {
			k = xvd_net_recv(bd->dev, NULL, buf, sizeof(buf), 100);
			if (k == -ETIMEDOUT)
				continue;
			if (k < 0) {
				dev_fail(b, bd, "receive", k);
				break;
			}
			if (k < 14 || buf[12] != NET_ETH_TEST >> 8 || buf[13] != (NET_ETH_TEST & 0xff))
				continue;	/* the host's own (IPv6 on a new interface) */
		} else {
			struct pollfd p = { .fd = b->raw_tap, .events = POLLIN };
			ssize_t got = read(b->raw_tap, buf, sizeof(buf));

			/* As the backend does: read until empty, then wait. */
			if (got < 0 && errno == EAGAIN) {
				poll(&p, 1, 100);
				continue;
			}
			if (got < XVD_NET_HDR_LEN + 14) {
				if (got < 0) {
					fail("raw: reading the tap: %s", strerror(errno));
					break;
				}
				continue;
			}
			k = (int)(got - XVD_NET_HDR_LEN);
			if (buf[XVD_NET_HDR_LEN + 12] != NET_ETH_TEST >> 8)
				continue;
		}
		n++;
		bytes += (uint64_t)k;
		gap = now_ns() - last;
		longest = gap > longest ? gap : longest;
		last = now_ns();
		atomic_fetch_add(&snd.received, 1);
	}
	/* The wait since the last frame counts too (a phase that stalled to
	 * its end); a stall of a tenth of a measured phase is worth a line
	 * (the warm-up's first frames wait for a new tap). */
	gap = now_ns() - last;
	longest = gap > longest ? gap : longest;
	dropped = tap_dropped(tap);
	dropped = dropped > drops0 ? dropped - drops0 : 0;
	if (reopened || dropped || (r && longest > (uint64_t)(secs * 1e8)))
		fprintf(stderr, "xvmsg-bench: %s %s rx: %" PRIu64 " frames, the longest wait for "
			"one %" PRIu64 " ms, %llu dropped at the tap, the window reopened %lu "
			"time%s\n", mode_names[mode], w->name, n, longest / 1000000, dropped,
			reopened, reopened == 1 ? "" : "s");
	atomic_store(&snd.stop, true);
	pthread_join(th, NULL);
	if (g_stop_signal || now_ns() < deadline)
		goto out_fd;
	t1 = now_ns();
	/* The counters of the frames counted, before those still on their
	 * way are drained: read after, they added the maps and notifications
	 * of up to NET_WINDOW uncounted frames (grant net64k rx showed 62
	 * maps a frame for 33). */
	if (r && bd) {
		xvd_dev_stats(bd->dev, &s1);
		if (backend_counters(&b->be, bd->be_name, &c1))
			goto out_fd;
	}
	/* Take what is still on its way (not counted), so that the next
	 * phase starts with an empty tap queue and nothing is dropped there. */
	for (;;) {
		if (bd) {
			if (xvd_net_recv(bd->dev, NULL, buf, sizeof(buf), 50) < 0)
				break;
		} else {
			struct pollfd p = { .fd = b->raw_tap, .events = POLLIN };

			if (read(b->raw_tap, buf, sizeof(buf)) < 0 &&
			    (errno != EAGAIN || poll(&p, 1, 50) != 1))
				break;
		}
	}
	if (snd.err) {
		fail("sending on %s: %s", tap, strerror(snd.err));
		goto out_fd;
	}
	/* What is still in flight is taken next phase, or left in the tap. */
	if (r) {
		r->ns += t1 - t0;
		r->valid = true;
		r->pkts += n;
		r->bytes += bytes;
		if (bd) {
			r->maps += c1.maps - c0.maps;
			r->kicks += s1.kicks - s0.kicks;
			r->notify_out += c1.notify_out - c0.notify_out;
			r->copied += (s1.bounce_in - s0.bounce_in) + (s1.bounce_out - s0.bounce_out);
		}
	}
	rc = 0;
out_fd:
	close(snd.fd);
	return rc;
}

static int net_phase(struct bench *b, int mode, int wl, double secs, struct net_result *r)
{
	int rc;

	if (mode == M_RAW)
		rc = net_raw_phase(b, wl, secs, r ? &r[0] : NULL);
	else
		rc = net_dev_phase(b, &b->devs[mode], wl, secs, r ? &r[0] : NULL);
	return rc ? rc : net_rx_phase(b, mode, wl, secs, r ? &r[1] : NULL);
}

static int net_counted_phase(struct bench *b, int m, int wl, double secs, bool counted)
{
	return net_phase(b, m, wl, secs, counted ? b->nres[m][wl] : NULL);
}

/* Every selected net workload, in rounds as the disks' (run_rounds). */
static int run_net(struct bench *b)
{
	for (int wl = 0; wl < NNET; wl++)
		if ((b->o.net & (1u << wl)) &&
		    run_rounds(b, wl, net_wls[wl].name, net_counted_phase, NULL))
			return -1;
	progress(b, NULL, 0, NULL);
	return 0;
}

static void print_net(struct bench *b, FILE *csv)
{
	printf("%-6s %-8s %-3s %6s %11s %9s %9s %8s %13s %13s\n", "mode", "workload", "dir",
	       "frame", "packets/s", "MiB/s", "Gbit/s", "maps/pkt", "notifies/pkt",
	       "copied B/pkt");
	if (csv)
		fprintf(csv, "mode,workload,dir,frame_bytes,pps,mib_s,gbit_s,maps_per_pkt,"
			     "notifies_per_pkt,copied_bytes_per_pkt\n");
	for (int i = 0; i < 2 * NNET; i++) {
		int wl = i / 2, dir = i % 2;

		for (int m = 0; m < NMODES; m++) {
			struct net_result *r = &b->nres[m][wl][dir];
			double secs = (double)r->ns / 1e9, n = r->pkts ? (double)r->pkts : 1;
			double pps, mib, gbit;
			/* received frames: single ones, 65535 bytes at most */
			uint32_t flen = dir && net_wls[wl].len > 65535 ? 65535 : net_wls[wl].len;

			if (!r->valid)
				continue;
			pps = secs > 0 ? (double)r->pkts / secs : 0;
			mib = secs > 0 ? (double)r->bytes / secs / (1024.0 * 1024.0) : 0;
			gbit = secs > 0 ? (double)r->bytes * 8 / secs / 1e9 : 0;
			printf("%-6s %-8s %-3s %6u %11.0f %9.1f %9.2f", mode_names[m], net_wls[wl].name,
			       dir ? "rx" : "tx", flen, pps, mib, gbit);
			if (m == M_RAW)
				printf(" %8s %13s %13s\n", "-", "-", "-");
			else
				printf(" %8.2f %13.2f %13.1f\n", (double)r->maps / n,
				       (double)(r->kicks + r->notify_out) / n, (double)r->copied / n);
			if (csv) {
				fprintf(csv, "%s,%s,%s,%u,%.1f,%.2f,%.3f", mode_names[m],
					net_wls[wl].name, dir ? "rx" : "tx", flen, pps, mib, gbit);
				if (m == M_RAW)
					fprintf(csv, ",,,\n");
				else
					fprintf(csv, ",%.3f,%.3f,%.1f\n", (double)r->maps / n,
						(double)(r->kicks + r->notify_out) / n,
						(double)r->copied / n);
			}
		}
	}
}

/* ---- command line ------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out,
"Usage: xvmsg-bench [OPTION]...\n"
"Measure virtio-blk over the xvmsg loopback bus in pool, grant and full mode\n"
"against the backing store itself (raw), side by side.\n"
"\n"
"  --mode MODE        pool, grant, full or raw, or a comma-separated list of them;\n"
"                     default: all four, interleaved\n"
"  --workload W       randread4k (QD 32), seqread256k (QD 8), randwrite4k (QD 32),\n"
"                     lat4k (QD 1), seqwrite256k (QD 8) or all (default); or\n"
"                     noisy: two guests, A writing at QD 32 with a FLUSH every\n"
"                     8 writes, B reading at QD 1: B's latency alone and\n"
"                     beside A, and the same two jobs raw on the file (the\n"
"                     disk's own share); or net64, net1500, net64k (64 KiB frames, TSO\n"
"                     when sent) or net (all three): virtio-net frames sent to\n"
"                     a tap and received from it, raw writing and reading a\n"
"                     tap itself (needs root)\n"
"  --seconds N        timed seconds per mode per workload, over all rounds\n"
"                     (default 3; fractions allowed)\n"
"  --rounds N         rounds the time is split into (default 3)\n"
"  --qd N             queue depth for every workload, 1..%d\n"
"  --image PATH       use this file (size a multiple of 512); randwrite4k\n"
"                     overwrites parts of it\n"
"  --size BYTES       size of the temporary image (default 256M; K/M/G allowed)\n"
"  --direct           the backend opens the image O_DIRECT, and so does raw:\n"
"                     the disk, not the page cache, is measured\n"
"  --devices N        N devices (one guest each, --mode, default pool) driven\n"
"                     together on one backend: aggregate IOPS and each device's\n"
"                     p99 against raw at the total depth (default workload\n"
"                     randread4k)\n"
"  --queues N         request queues per device, 1..16 (default 1): requests\n"
"                     go to them in turn (virtio-blk MQ)\n"
"  --csv FILE         also write the results as CSV to FILE\n"
"  --backend PATH     xvmsg-backend to run (default: next to this program)\n"
"  --backend-poll-us N  the backend keeps polling queues N us after work\n"
"                     before it sleeps (default 0: interrupt driven)\n"
"  --backend-queue-threads N  the backend serves blk queues on N threads of\n"
"                     their own (default 0: on its event loop's thread)\n"
"  -h, --help         show this help and exit\n"
"\n"
"raw is an io_uring loop on the image at the same queue depth (fio's way).\n"
"Columns: maps/req and unmaps/req are the backend's map and unmap calls,\n"
"notifies/req the driver's kicks plus the backend's notifications, copied B/req\n"
"the bytes bounced through the pool, all per request.\n"
"Exit status: 0 done, 1 failure, 2 bad usage.\n", MAX_QD);
}

static int parse_double(const char *s, double *v)
{
	char *end;

	errno = 0;
	*v = strtod(s, &end);
	return errno || end == s || *end || !(*v > 0) || *v > 86400 ? -1 : 0;
}

static int parse_uint(const char *s, unsigned int lo, unsigned int hi, unsigned int *v)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || x < lo || x > hi)
		return -1;
	*v = (unsigned int)x;
	return 0;
}

static int parse_size(const char *s, uint64_t *v)
{
	unsigned long long x;
	char *end;
	int shift = 0;

	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	if (*end == 'k' || *end == 'K')
		shift = 10;
	else if (*end == 'm' || *end == 'M')
		shift = 20;
	else if (*end == 'g' || *end == 'G')
		shift = 30;
	if (shift)
		end++;
	if (*end == 'i' && shift)	/* KiB, MiB, GiB */
		end++;
	if (*end == 'B' && shift)
		end++;
	if (*end || x > (UINT64_MAX >> shift))
		return -1;
	*v = (uint64_t)x << shift;
	return 0;
}

static __attribute__((format(printf, 1, 2))) int bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("xvmsg-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'xvmsg-bench --help'.\n", stderr);
	return 2;
}

/* 0, 1 (help shown) or 2 (bad usage, reported). */
static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_MODE = 256, O_WL, O_SECONDS, O_QD, O_CSV, O_IMAGE, O_SIZE, O_ROUNDS, O_BACKEND,
	       O_POLL, O_DIRECTIO, O_DEVICES, O_QUEUES, O_QTHREADS };
	static const struct option lopts[] = {
		{ "mode", required_argument, NULL, O_MODE },
		{ "workload", required_argument, NULL, O_WL },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "qd", required_argument, NULL, O_QD },
		{ "csv", required_argument, NULL, O_CSV },
		{ "image", required_argument, NULL, O_IMAGE },
		{ "size", required_argument, NULL, O_SIZE },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "backend", required_argument, NULL, O_BACKEND },
		{ "backend-poll-us", required_argument, NULL, O_POLL },
		{ "backend-queue-threads", required_argument, NULL, O_QTHREADS },
		{ "direct", no_argument, NULL, O_DIRECTIO },
		{ "devices", required_argument, NULL, O_DEVICES },
		{ "queues", required_argument, NULL, O_QUEUES },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* the whole-number options: their field and range */
	static const struct { int opt; size_t off; unsigned int lo, hi; } nums[] = {
		{ O_QD, offsetof(struct opts, qd), 1, MAX_QD },
		{ O_ROUNDS, offsetof(struct opts, rounds), 1, 1000 },
		{ O_POLL, offsetof(struct opts, poll_us), 0, 1000000 },
		{ O_QTHREADS, offsetof(struct opts, qthreads), 0, 64 },
		{ O_QUEUES, offsetof(struct opts, queues), 1, 16 },
		{ O_DEVICES, offsetof(struct opts, devices), 1, MAX_DEVICES },
	};
	bool size_set = false, mode_set = false, wl_set = false;
	int c, i, idx;
	size_t n;

	*o = (struct opts){ .modes = (1u << NMODES) - 1, .wls = (1u << NWL) - 1,
			    .seconds = 3, .size = 256ULL << 20, .rounds = 3, .queues = 1 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", lopts, &idx)) != -1) {
		for (n = 0; n < sizeof(nums) / sizeof(nums[0]) && nums[n].opt != c; n++)
			;
		if (n < sizeof(nums) / sizeof(nums[0])) {
			if (parse_uint(optarg, nums[n].lo, nums[n].hi,
				       (unsigned int *)((char *)o + nums[n].off)))
				return bad_usage("--%s: '%s' is not in %u..%u", lopts[idx].name,
						 optarg, nums[n].lo, nums[n].hi);
			continue;
		}
		switch (c) {
		case O_MODE:
			/* one mode, or several separated by commas (pool,raw) */
			o->modes = 0;
			for (const char *t = optarg;; t++) {
				size_t len = strcspn(t, ",");

				for (i = 0; i < NMODES && (strlen(mode_names[i]) != len ||
							   strncmp(t, mode_names[i], len)); i++)
					;
				if (i == NMODES)
					return bad_usage("--mode: '%s' is not pool, grant, full or raw"
							 " (or a list of them, comma-separated)", optarg);
				o->modes |= 1u << i;
				t += len;
				if (!*t)
					break;
			}
			mode_set = true;
			break;
		case O_WL:
			wl_set = true;
			o->noisy = !strcmp(optarg, "noisy");
			if (o->noisy)
				break;
			o->net = 0;
			if (!strcmp(optarg, "net")) {
				o->net = (1u << NNET) - 1;
				break;
			}
			for (i = 0; i < NNET && strcmp(optarg, net_wls[i].name); i++)
				;
			if (i < NNET) {
				o->net = 1u << i;
				break;
			}
			if (!strcmp(optarg, "all")) {
				o->wls = (1u << NWL) - 1;
				break;
			}
			for (i = 0; i < NWL && strcmp(optarg, workloads[i].name); i++)
				;
			if (i == NWL)
				return bad_usage("--workload: '%s' is not randread4k, seqread256k, "
						 "randwrite4k, lat4k, seqwrite256k, all, noisy, "
						 "net64, net1500, net64k or net", optarg);
			o->wls = 1u << i;
			break;
		case O_SECONDS:
			if (parse_double(optarg, &o->seconds))
				return bad_usage("--seconds: '%s' is not a positive number", optarg);
			break;
		case O_SIZE:
			if (parse_size(optarg, &o->size) || o->size < (1 << 20) ||
			    o->size % 4096 || o->size > (1ULL << 40))
				return bad_usage("--size: '%s' is not a multiple of 4096 between "
						 "1 MiB and 1 TiB", optarg);
			size_set = true;
			break;
		case O_CSV:
			o->csv = optarg;
			break;
		case O_IMAGE:
			o->image = optarg;
			break;
		case O_BACKEND:
			o->backend = optarg;
			break;
		case O_DIRECTIO:
			o->direct = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case ':':
			return bad_usage("option '%s' needs an argument", argv[optind - 1]);
		default:
			return bad_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad_usage("unexpected argument '%s'", argv[optind]);
	if (o->image && size_set)
		return bad_usage("%s", "--size and --image exclude each other");
	if (o->net && (o->devices || o->noisy || o->qd || o->image || size_set || o->direct))
		return bad_usage("%s", "the net workloads take no --devices, --qd, --image, "
				 "--size or --direct (up to 64 frames in flight)");
	if (o->devices || o->noisy) {
		if (o->devices && o->noisy)
			return bad_usage("%s", "--devices and --workload noisy exclude each other");
		if (mode_set && (o->modes & (1u << M_RAW)))
			return bad_usage("%s", "--devices and noisy run pool, grant or full mode "
					 "(raw is their reference)");
		if (mode_set && (o->modes & (o->modes - 1)))
			return bad_usage("%s", "--devices and noisy take one mode");
		if (!mode_set)
			o->modes = 1u << M_POOL;
		if (o->noisy && o->qd)
			return bad_usage("%s", "--qd does not apply to noisy (A: QD 32, B: QD 1)");
		if (o->noisy)		/* sizes guest RAM and pool for A's QD 32 writes */
			o->wls = 1u << W_RANDWRITE;
		else if (!wl_set)
			o->wls = 1u << W_RANDREAD;
	}
	return 0;
}

/* The xvmsg-backend next to our own executable. */
static int default_backend(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return fail("cannot read /proc/self/exe: %s", strerror(errno));
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	if ((size_t)snprintf(out, len, "%s/xvmsg-backend", exe) >= len)
		return fail("path of this program too long");
	return 0;
}

/* ---- main --------------------------------------------------------------- */

/* The net workloads: three taps served by the backend, one made here. */
static int bench_run_net(struct bench *b, const char *backend_bin, FILE *csv)
{
	if (access("/dev/net/tun", R_OK | W_OK))
		return fail("the net workloads need /dev/net/tun (root): %s", strerror(errno));
	if (backend_start(&b->be, backend_bin, NULL, &b->o))
		return -1;
	for (int m = M_POOL; m <= M_FULL; m++) {
		if (b->o.modes & (1u << m) && net_dev_open(b, m)) {
			backend_check(&b->be);
			return -1;
		}
	}
	if (b->o.modes & (1u << M_RAW) && net_raw_open(b))
		return -1;
	if (run_net(b) || backend_check(&b->be))
		return -1;
	printf("xvmsg-bench: virtio-net to (tx) and from (rx) a tap, %.3g s per mode per "
	       "workload and direction in %u round%s\n\n", b->o.seconds, b->o.rounds,
	       b->o.rounds == 1 ? "" : "s");
	print_net(b, csv);
	return 0;
}

static int bench_run(struct bench *b, const char *backend_bin, FILE *csv)
{
	if (!mkdtemp(b->be.dir))
		return fail("cannot create a temporary directory: %s", strerror(errno));
	snprintf(b->be.sock, sizeof(b->be.sock), "%s/loop.sock", b->be.dir);
	snprintf(b->be.log, sizeof(b->be.log), "%s/backend.log", b->be.dir);
	if (b->o.net)
		return bench_run_net(b, backend_bin, csv);
	if (image_open(b))
		return -1;
	if (backend_start(&b->be, backend_bin, b->img_path, &b->o))
		return -1;
	if (b->o.devices || b->o.noisy) {
		unsigned int n = nr_exports(&b->o);
		int mode = __builtin_ctz(b->o.modes);

		b->mdevs = calloc(n, sizeof(*b->mdevs));
		for (int wl = 0; wl < NWL && b->o.devices; wl++)
			if (b->o.wls & (1u << wl) && !(b->mres[wl] = calloc(n, sizeof(struct result))))
				return fail("out of memory");
		if (!b->mdevs)
			return fail("out of memory");
		for (unsigned int i = 0; i < n; i++) {
			b->mdevs[i].threaded = true;
			if (dev_open(b, &b->mdevs[i], mode, i)) {
				backend_check(&b->be);
				return -1;
			}
		}
	}
	for (int m = M_POOL; m <= M_FULL && !b->mdevs; m++) {
		if (b->o.modes & (1u << m) && dev_open(b, &b->devs[m], m, (unsigned int)m)) {
			backend_check(&b->be);	/* says so if it died */
			return -1;
		}
	}
	if (b->o.devices ? run_devices(b) : b->o.noisy ? run_noisy(b) : run_all(b))
		return -1;
	if (backend_check(&b->be))
		return -1;
	printf("xvmsg-bench: image %s (%" PRIu64 " MiB%s), %.3g s per %s in %u round%s; "
	       "backend: %u queue thread%s\n\n",
	       b->img_temp ? "temporary" : b->img_path, b->img_size >> 20,
	       b->o.direct ? ", O_DIRECT" : b->img_temp ? ", page cache" : "", b->o.seconds,
	       b->o.noisy ? "situation" : b->o.devices ? "workload" : "mode per workload",
	       b->o.rounds, b->o.rounds == 1 ? "" : "s", b->o.qthreads,
	       b->o.qthreads == 1 ? "" : "s");
	if (b->o.devices)
		print_devices(b, csv);
	else if (b->o.noisy)
		print_noisy(b, csv);
	else
		print_results(b, csv);
	return 0;
}

static void bench_cleanup(struct bench *b)
{
	for (int m = M_POOL; m <= M_FULL; m++)
		dev_close(&b->devs[m]);
	for (unsigned int i = 0; b->mdevs && i < nr_exports(&b->o); i++)
		dev_close(&b->mdevs[i]);
	free(b->mdevs);
	for (int w = 0; w < NWL; w++) {
		for (unsigned int i = 0; b->mres[w] && i < b->o.devices; i++)
			free(b->mres[w][i].lat.v);
		free(b->mres[w]);
	}
	for (int i = 0; i < 3; i++) {
		free(b->noisy[i].lat.v);
		free(b->noisy_raw[i].lat.v);
	}
	backend_stop(&b->be);
	if (b->img_fd >= 0)
		close(b->img_fd);
	if (b->raw_fd >= 0)
		close(b->raw_fd);
	if (b->raw_tap >= 0)
		close(b->raw_tap);
	if (b->img_temp)
		unlink(b->img_path);
	if (b->be.dir[0] && strcmp(b->be.dir, "/tmp/xvmsg-bench-XXXXXX")) {
		unlink(b->be.sock);
		unlink(b->be.log);
		rmdir(b->be.dir);
	}
	for (int m = 0; m < NMODES; m++)
		for (int w = 0; w < NWL; w++)
			free(b->res[m][w].lat.v);
	free(b->ref_rtt.v);
	free(b->ref_raw.lat.v);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART */
	char backend_bin[PATH_MAX];
	struct bench *b;
	FILE *csv = NULL;
	int rc;

	b = calloc(1, sizeof(*b));
	if (!b) {
		fail("out of memory");
		return 1;
	}
	b->img_fd = -1;
	b->raw_fd = -1;
	b->raw_tap = -1;
	b->raw_rng = 0x853c49e6748fea9bULL;	/* xorshift: any non-zero seed */
	rc = parse_args(argc, argv, &b->o);
	if (rc) {
		free(b);
		return rc == 1 ? 0 : 2;
	}
	if (b->o.backend)
		snprintf(backend_bin, sizeof(backend_bin), "%s", b->o.backend);
	else if (default_backend(backend_bin, sizeof(backend_bin)))
		goto fail_early;
	if (access(backend_bin, X_OK)) {
		fail("cannot run the backend %s: %s%s", backend_bin, strerror(errno),
		     b->o.backend ? "" : " (use --backend)");
		goto fail_early;
	}
	if (b->o.csv && !(csv = fopen(b->o.csv, "w"))) {
		fail("cannot write %s: %s", b->o.csv, strerror(errno));
		goto fail_early;
	}

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	b->tty = isatty(STDERR_FILENO);
	snprintf(b->be.dir, sizeof(b->be.dir), "/tmp/xvmsg-bench-XXXXXX");

	rc = bench_run(b, backend_bin, csv) ? 1 : 0;
	b->failed |= rc || g_stop_signal;
	if (b->tty)
		progress(b, NULL, 0, NULL);
	bench_cleanup(b);
	if (b->drv_quiet)
		fprintf(stderr, "xvmsg-bench: (%lu driver messages during the teardown not shown)\n",
			b->drv_quiet);
	if (csv && fclose(csv) && !rc) {
		fail("writing %s: %s", b->o.csv, strerror(errno));
		rc = 1;
	}
	if (g_stop_signal) {
		fprintf(stderr, "xvmsg-bench: interrupted, backend stopped and temporary files "
				"removed\n");
		rc = 128 + g_stop_signal;
	}
	free(b);
	return rc;

fail_early:
	free(b);
	return 1;
}
