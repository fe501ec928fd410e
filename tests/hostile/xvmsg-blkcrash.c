// SPDX-License-Identifier: MIT
/*
 * xvmsg-blkcrash: a write verifier for backend crashes and restarts.
 *
 *   xvmsg-blkcrash write  TARGET --journal FILE [--seconds S] [--depth N]
 *                         [--flush-every N] [--blocks N] [--seed X]
 *                         [--stop-after-reconnects R] [--stop-file F] [--pool-pages N]
 *   xvmsg-blkcrash verify (TARGET | --image PATH) --journal FILE [--min N]
 *                         [--no-torn]
 *   TARGET: --socket PATH --export NAME      (loopback bus)
 *           --xen --devid N                  (in a Xen guest, pool mode)
 *
 * write keeps up to --depth single-block writes in flight over the first
 * --blocks 4 KiB blocks of the disk and sends a FLUSH after every
 * --flush-every writes.  Write number seq goes to block
 * (seq mod blocks) * stride mod blocks (stride coprime with blocks: every
 * block once per cycle, scattered), and no two writes to one block are ever
 * in flight together, so on one block a larger seq is always a later write.
 * Each 512-byte sector of a block says what it is: magic, the run's seed,
 * seq, block number, sector index, and an FNV-1a checksum of all that and a
 * payload derived from them.
 *
 * When a FLUSH completes, the writes acknowledged before it was submitted
 * are appended to the journal as seq ranges ("D 5-9 12 ...") and the journal
 * is fsync'd: those writes must survive anything the backend does next.
 * Writes acknowledged on a connection that broke before a flush covered
 * them are not claimed (a flush sent to a new backend instance does not
 * cover them).  When the backend goes away (any error), every request in
 * flight is dropped, the device (and on the loopback bus the connection) is
 * closed and opened again with a bounded backoff, and writing continues with
 * new sequence numbers (a backend that completes nothing for 5 s counts as
 * gone too).  SIGTERM/SIGINT, the stop file, the time bound or
 * --stop-after-reconnects ends the run: in-flight writes are drained, a last
 * flush is journalled, then "E next=..." records the first seq never issued.
 *
 * verify reads the blocks back (through the device or from the image file)
 * and checks, block by block, against F = the largest journalled seq that
 * went to that block:
 *   - no sector is corrupt (bad checksum) or misplaced (names another block
 *     or sector index, or a seq that never went to this block or was never
 *     issued);
 *   - if F exists, every sector holds seq F or a later write to this block,
 *     so every journalled write is there or was overwritten by one issued
 *     after it;
 *   - a block whose sectors come from different writes is "torn".
 * Tearing: virtio-blk promises no atomicity for a request that was not
 * completed, and we assume the usual 512-byte sector atomicity (a sector
 * is old or new, never a mix), which is what a disk under the image gives
 * on power loss.  Torn blocks are therefore allowed as long as the rules
 * above hold (a torn block can only hold writes newer than every durable
 * one).  The backend (backend-domain/devices/blk.c) writes with one pwritev
 * per request into the page cache, and a kill stops a buffered write only
 * between pages, so after a process kill a 4 KiB-aligned block is never
 * torn: --no-torn makes a torn block a failure, for that setting.
 *
 * Output lines: "XVMSG-GUEST: PASS|FAIL blkcrash <mode>: ...".  verify
 * exits 0 when every check passed and at least --min (default 1) journalled
 * writes were verified.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "xvmsg-drv.h"

#define BC_BLOCK	4096u
#define BC_SECT		512u
#define BC_SPB		(BC_BLOCK / BC_SECT)
#define BC_MAGIC	0x6873617263627678ULL	/* "xvbcrash" */
#define BC_MAX_DEPTH	128u
#define BC_NO_SEQ	UINT64_MAX
#define BC_STALL_S	5.0	/* no completion for this long: backend lost */

/* One sector as written; the payload fills the rest up to the checksum. */
struct bc_sector_hdr {
	uint64_t magic;
	uint64_t seed;
	uint64_t seq;
	uint64_t block;
	uint32_t idx;
	uint32_t reserved;
};
_Static_assert(sizeof(struct bc_sector_hdr) == 40, "sector header size");
#define BC_SUM_OFF	(BC_SECT - 8)

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

struct bc_opts {
	bool xen;
	const char *socket_path, *export_name, *image, *journal, *stop_file;
	unsigned int devid;
	double seconds;
	unsigned int depth, flush_every, stop_after_reconnects, pool_pages;
	uint64_t blocks, seed, min_verified;
	bool no_torn;
};

/* ---- block format ------------------------------------------------------ */

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* A stride coprime with blocks, about 0.618 * blocks: scattered, and
 * every block exactly once per cycle. */
static uint64_t stride_for(uint64_t blocks)
{
	uint64_t s = blocks * 618 / 1000;

	if (s == 0)
		s = 1;
	while (gcd64(s, blocks) != 1)
		s++;
	return s;
}

static uint64_t block_of(uint64_t seq, uint64_t blocks, uint64_t stride)
{
	return (uint64_t)(((unsigned __int128)(seq % blocks) * stride) % blocks);
}

static void fill_block(uint8_t *b, uint64_t seed, uint64_t seq, uint64_t block)
{
	for (unsigned int i = 0; i < BC_SPB; i++) {
		uint8_t *s = b + i * BC_SECT;
		struct bc_sector_hdr h = { .magic = BC_MAGIC, .seed = seed, .seq = seq,
					   .block = block, .idx = i };
		uint64_t x = seed ^ mix64(seq * BC_SPB + i), sum;

		memcpy(s, &h, sizeof(h));
		for (unsigned int off = sizeof(h); off < BC_SUM_OFF; off += 8) {
			x = mix64(x);
			memcpy(s + off, &x, 8);
		}
		sum = fnv1a(s, BC_SUM_OFF);
		memcpy(s + BC_SUM_OFF, &sum, 8);
	}
}

/* ---- journal ----------------------------------------------------------- */

/* Sorted or not, a list of seqs goes out as ranges on one "D" line. */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t r = write(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int journal_durable(int fd, uint64_t *seqs, size_t n)
{
	char *line;
	size_t cap = 16 + n * 44, len = 0, i = 0;
	int r;

	if (!n)
		return 0;
	line = malloc(cap);
	if (!line)
		return -ENOMEM;
	qsort(seqs, n, sizeof(*seqs), cmp_u64);
	line[len++] = 'D';
	while (i < n) {
		size_t j = i;

		while (j + 1 < n && seqs[j + 1] == seqs[j] + 1)
			j++;
		if (j == i)
			len += (size_t)snprintf(line + len, cap - len, " %" PRIu64, seqs[i]);
		else
			len += (size_t)snprintf(line + len, cap - len, " %" PRIu64 "-%" PRIu64,
						seqs[i], seqs[j]);
		i = j + 1;
	}
	line[len++] = '\n';
	r = write_all(fd, line, len);
	free(line);
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	return r;
}

/* ---- output ------------------------------------------------------------ */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- the device, on either bus --------------------------------------- */

struct bc_conn {
	const struct bc_opts *o;
	struct xvd_domain *d;
	struct xvd_dev *dev;
	uint64_t sectors;
};

/* Drop the device; on the loopback bus the connection died with the backend,
 * on Xen the domain (xenstore, grant and event channel handles) stays. */
static void conn_close(struct bc_conn *c, bool whole)
{
	if (c->dev)
		xvd_dev_close(c->dev);
	c->dev = NULL;
	if (c->d && (whole || !c->o->xen)) {
		xvd_domain_close(c->d);
		c->d = NULL;
	}
}

static int conn_open(struct bc_conn *c)
{
	struct xvd_domain_opts dopts = { .log_level = XVD_LOG_ERR, .timeout_ms = 3000,
					 .ram_pages = 1024, .socket_path = c->o->socket_path };
	struct xvd_dev_opts o = { .mode = XVD_MODE_POOL, .pool_pages = c->o->pool_pages };
	struct xvd_blk_info info;
	int r;

	if (!c->d) {
		r = c->o->xen ? xvd_domain_open_xen(&dopts, &c->d) : xvd_domain_open_loop(&dopts, &c->d);
		if (r) {
			c->d = NULL;
			return r;
		}
	}
	o.devid = c->o->xen ? c->o->devid : 1;
	o.export_name = c->o->xen ? "xen" : c->o->export_name;
	r = xvd_blk_open(c->d, &o, &c->dev);
	if (r) {
		c->dev = NULL;
		goto fail;
	}
	r = xvd_blk_info(c->dev, &info);
	if (!r && info.ro)
		r = -EROFS;
	if (!r && !info.flush)
		r = -EOPNOTSUPP;
	if (r)
		goto fail;
	c->sectors = info.capacity;
	return 0;
fail:
	/* A backend lost during the open (killed between HELLO and the end of
	 * the handshake) leaves a domain that is gone for good: every later
	 * open on it fails at once.  The next try starts from a new domain. */
	conn_close(c, xvd_domain_dispatch(c->d) < 0);
	return r;
}

/* ---- write ------------------------------------------------------------- */

enum { SLOT_FREE, SLOT_WRITE, SLOT_FLUSH };

struct bc_slot {
	int kind;
	uint64_t seq, block;
	uint8_t *buf;
};

struct bc_writer {
	const struct bc_opts *o;
	struct bc_conn c;
	int jfd;
	uint64_t stride, next_seq;
	uint8_t *busy;			/* per block: a write is in flight */
	struct bc_slot slots[BC_MAX_DEPTH];
	unsigned int inflight;
	uint64_t *acked;		/* acknowledged, not yet under a flush */
	size_t nacked, cap_acked;
	uint64_t *cover;		/* under the flush in flight */
	size_t ncover, cap_cover;
	bool flush_inflight;
	unsigned int since_flush;	/* writes submitted since the last flush */
	unsigned int reconnects;
	uint64_t n_acked, n_durable, n_flushes, n_errors;
	bool durable_since_connect;
};

static int push_seq(uint64_t **v, size_t *n, size_t *cap, uint64_t seq)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 1024;
		uint64_t *p = realloc(*v, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = nc;
	}
	(*v)[(*n)++] = seq;
	return 0;
}

static struct bc_slot *free_slot(struct bc_writer *w)
{
	for (unsigned int i = 0; i < w->o->depth; i++)
		if (w->slots[i].kind == SLOT_FREE)
			return &w->slots[i];
	return NULL;
}

/* The backend went away (or broke): forget everything in flight. */
static void writer_lost(struct bc_writer *w, int err)
{
	say("xvmsg-blkcrash: backend lost (%s) at seq %" PRIu64 "; %zu acknowledged writes "
	    "not yet under a completed flush are not claimed", strerror(-err), w->next_seq,
	    w->nacked + w->ncover);
	for (unsigned int i = 0; i < w->o->depth; i++)
		w->slots[i].kind = SLOT_FREE;
	memset(w->busy, 0, w->o->blocks);
	w->inflight = 0;
	w->nacked = w->ncover = 0;
	w->flush_inflight = false;
	w->since_flush = 0;
	w->n_errors++;
	conn_close(&w->c, false);
}

/* Submit what fits; kicks once.  0, or the error that lost the device. */
static int writer_submit(struct bc_writer *w, bool final)
{
	bool any = false;
	int r = 0;

	while (w->inflight < w->o->depth) {
		struct bc_slot *s = free_slot(w);

		if (!s)
			break;
		if (!w->flush_inflight && (w->since_flush >= w->o->flush_every || final) &&
		    (w->nacked || !final)) {
			if (final && w->inflight)
				break;	/* the last flush covers every write */
			r = xvd_blk_submit(w->c.dev, XVD_BLK_FLUSH, 0, NULL, 0, s, XVD_NO_KICK);
			if (r == -ENOSPC || r == -ENOMEM) {
				r = 0;
				break;
			}
			if (r)
				break;
			/* Writes completed before this point are covered. */
			uint64_t *t = w->cover;
			size_t tc = w->cap_cover;

			w->cover = w->acked;
			w->cap_cover = w->cap_acked;
			w->ncover = w->nacked;
			w->acked = t;
			w->cap_acked = tc;
			w->nacked = 0;
			s->kind = SLOT_FLUSH;
			w->flush_inflight = true;
			w->since_flush = 0;
			w->inflight++;
			any = true;
			continue;
		}
		if (final || w->since_flush >= w->o->flush_every)
			break;	/* wait for the flush before writing more */
		uint64_t seq = w->next_seq, blk = block_of(seq, w->o->blocks, w->stride);

		if (w->busy[blk])
			break;
		fill_block(s->buf, w->o->seed, seq, blk);
		r = xvd_blk_submit(w->c.dev, XVD_BLK_WRITE, blk * BC_SPB, s->buf, BC_BLOCK, s,
				   XVD_NO_KICK);
		if (r == -ENOSPC || r == -ENOMEM) {
			r = 0;
			break;
		}
		if (r)
			break;
		s->kind = SLOT_WRITE;
		s->seq = seq;
		s->block = blk;
		w->busy[blk] = 1;
		w->next_seq++;
		w->since_flush++;
		w->inflight++;
		any = true;
	}
	if (!r && any)
		r = xvd_vq_kick(w->c.dev, 0);
	return r;
}

/* Wait (bounded) for completions and account for them.  0, or the error. */
static int writer_reap(struct bc_writer *w, int timeout_ms)
{
	struct xvd_done done[64];
	int n, r = 0;

	n = xvd_blk_wait(w->c.dev, done, 64, timeout_ms);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		struct bc_slot *s = done[i].cookie;

		if (s->kind == SLOT_FREE)
			continue;
		w->inflight--;
		if (s->kind == SLOT_WRITE) {
			w->busy[s->block] = 0;
			if (!done[i].status) {
				w->n_acked++;
				if (push_seq(&w->acked, &w->nacked, &w->cap_acked, s->seq) && !r)
					r = -ENOMEM;
			} else if (!r) {
				r = done[i].status;
			}
		} else {
			w->flush_inflight = false;
			if (!done[i].status) {
				int e = journal_durable(w->jfd, w->cover, w->ncover);

				if (e) {
					say("XVMSG-GUEST: FAIL blkcrash write: journal: %s",
					    strerror(-e));
					return -EBADF;	/* not a backend problem: stop */
				}
				w->n_flushes++;
				w->n_durable += w->ncover;
				if (w->ncover)
					w->durable_since_connect = true;
				w->ncover = 0;
			} else if (!r) {
				r = done[i].status;
			}
		}
		s->kind = SLOT_FREE;
	}
	return r;
}

static bool file_exists(const char *p)
{
	struct stat st;

	return p && stat(p, &st) == 0;
}

static bool writer_should_stop(const struct bc_writer *w, double end)
{
	const struct bc_opts *o = w->o;

	if (stop_signal || now_s() >= end || file_exists(o->stop_file))
		return true;
	return o->stop_after_reconnects && w->reconnects >= o->stop_after_reconnects &&
	       w->durable_since_connect;
}

static int cmd_write(const struct bc_opts *o)
{
	struct bc_writer w = { .o = o, .c = { .o = o } };
	double t0 = now_s(), end = t0 + o->seconds, backoff_until = 0, last_progress = t0;
	uint64_t progress = 0;
	bool connected_once = false;
	char hdr[128];
	int r, ret = 1, open_err = 0;

	w.stride = stride_for(o->blocks);
	w.busy = calloc(1, o->blocks);
	w.jfd = open(o->journal, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (!w.busy || w.jfd < 0) {
		say("XVMSG-GUEST: FAIL blkcrash write: journal %s: %s", o->journal,
		    strerror(w.busy ? errno : ENOMEM));
		goto out;
	}
	for (unsigned int i = 0; i < o->depth; i++) {
		w.slots[i].buf = aligned_alloc(BC_BLOCK, BC_BLOCK);
		if (!w.slots[i].buf) {
			say("XVMSG-GUEST: FAIL blkcrash write: out of memory");
			goto out;
		}
	}
	snprintf(hdr, sizeof(hdr), "H xvmsg-blkcrash 1 seed=%" PRIu64 " blocks=%" PRIu64 "\n",
		 o->seed, o->blocks);
	if (write_all(w.jfd, hdr, strlen(hdr)) || fsync(w.jfd) < 0) {
		say("XVMSG-GUEST: FAIL blkcrash write: journal %s: %s", o->journal, strerror(errno));
		goto out;
	}

	while (!writer_should_stop(&w, end)) {
		if (!w.c.dev) {
			if (now_s() < backoff_until) {
				poll(NULL, 0, 20);
				continue;
			}
			r = conn_open(&w.c);
			if (r) {
				if (r != open_err)	/* each new reason once */
					say("xvmsg-blkcrash: open: %s; retrying", strerror(-r));
				open_err = r;
				backoff_until = now_s() + (o->xen ? 0.5 : 0.05);
				continue;
			}
			open_err = 0;
			if (w.c.sectors / BC_SPB < o->blocks) {
				say("XVMSG-GUEST: FAIL blkcrash write: disk has %" PRIu64
				    " blocks, %" PRIu64 " wanted", w.c.sectors / BC_SPB, o->blocks);
				goto out;
			}
			if (connected_once) {
				w.reconnects++;
				say("xvmsg-blkcrash: reconnected (%u), continuing at seq %" PRIu64,
				    w.reconnects, w.next_seq);
			}
			connected_once = true;
			w.durable_since_connect = false;
			last_progress = now_s();
		}
		r = writer_submit(&w, false);
		if (!r)
			r = writer_reap(&w, 100);
		if (!r && w.n_acked + w.n_flushes != progress) {
			progress = w.n_acked + w.n_flushes;
			last_progress = now_s();
		} else if (!r && w.inflight && now_s() - last_progress > BC_STALL_S) {
			r = -ETIMEDOUT;	/* a backend that stopped answering */
		}
		if (r == -EBADF)
			goto out;
		if (r == -ENOMEM) {
			say("XVMSG-GUEST: FAIL blkcrash write: out of memory");
			goto out;
		}
		if (r)
			writer_lost(&w, r);
	}

	/* Drain, then one flush over everything acknowledged. */
	if (w.c.dev) {
		double drain_end = now_s() + 10;

		r = 0;
		while (!r && (w.inflight || w.nacked) && now_s() < drain_end) {
			r = writer_submit(&w, true);
			if (!r)
				r = writer_reap(&w, 100);
		}
		if (r == -EBADF)
			goto out;
		if (r)
			writer_lost(&w, r);
	}
	snprintf(hdr, sizeof(hdr), "E next=%" PRIu64 "\n", w.next_seq);
	if (write_all(w.jfd, hdr, strlen(hdr)) || fsync(w.jfd) < 0) {
		say("XVMSG-GUEST: FAIL blkcrash write: journal %s: %s", o->journal, strerror(errno));
		goto out;
	}
	if (!connected_once) {
		say("XVMSG-GUEST: FAIL blkcrash write: never connected to the device");
		goto out;
	}
	if (!w.n_durable) {
		say("XVMSG-GUEST: FAIL blkcrash write: no write was acknowledged and flushed");
		goto out;
	}
	say("XVMSG-GUEST: PASS blkcrash write: %" PRIu64 " writes issued, %" PRIu64
	    " acknowledged, %" PRIu64 " flushed (journalled) by %" PRIu64 " flushes, "
	    "%u reconnects, %" PRIu64 " errors, %.1f s", w.next_seq, w.n_acked, w.n_durable,
	    w.n_flushes, w.reconnects, w.n_errors, now_s() - t0);
	ret = 0;
out:
	conn_close(&w.c, true);
	for (unsigned int i = 0; i < BC_MAX_DEPTH; i++)
		free(w.slots[i].buf);
	free(w.busy);
	free(w.acked);
	free(w.cover);
	if (w.jfd >= 0)
		close(w.jfd);
	return ret;
}

/* ---- verify ------------------------------------------------------------ */

struct bc_journal {
	uint64_t seed, blocks, next;	/* next = BC_NO_SEQ when no "E" line */
	uint8_t *durable;		/* bitmap over seq */
	uint64_t nbits, count;
};

static int set_durable(struct bc_journal *j, uint64_t seq)
{
	if (seq >= (1ULL << 34))
		return -ERANGE;
	if (seq >= j->nbits) {
		uint64_t nb = j->nbits ? j->nbits : 1 << 16;
		uint8_t *p;

		while (nb <= seq)
			nb *= 2;
		p = realloc(j->durable, nb / 8);
		if (!p)
			return -ENOMEM;
		memset(p + j->nbits / 8, 0, (nb - j->nbits) / 8);
		j->durable = p;
		j->nbits = nb;
	}
	if (!(j->durable[seq / 8] & (1u << (seq % 8)))) {
		j->durable[seq / 8] |= (uint8_t)(1u << (seq % 8));
		j->count++;
	}
	return 0;
}

static bool is_durable(const struct bc_journal *j, uint64_t seq)
{
	return seq < j->nbits && (j->durable[seq / 8] & (1u << (seq % 8)));
}

/* Parse the journal; a last line without its newline (a writer killed while
 * appending) is ignored: it was never fsync'd as complete. */
static int journal_read(const char *path, struct bc_journal *j)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned int lineno = 0;
	int r = 0;

	j->next = BC_NO_SEQ;
	if (!f)
		return -errno;
	while (!r && (n = getline(&line, &cap, f)) > 0) {
		char *p, *end;

		lineno++;
		if (line[n - 1] != '\n')
			break;
		if (lineno == 1) {
			unsigned long long seed, blocks;

			if (sscanf(line, "H xvmsg-blkcrash 1 seed=%llu blocks=%llu", &seed,
				   &blocks) != 2 || !blocks) {
				r = -EINVAL;
				break;
			}
			j->seed = seed;
			j->blocks = blocks;
			continue;
		}
		if (!strncmp(line, "E next=", 7)) {
			j->next = strtoull(line + 7, NULL, 10);
			continue;
		}
		if (line[0] != 'D') {
			r = -EINVAL;
			break;
		}
		p = line + 1;
		for (;;) {
			uint64_t a, b;

			while (*p == ' ')
				p++;
			if (*p == '\n' || !*p)
				break;
			errno = 0;
			a = strtoull(p, &end, 10);
			if (end == p || errno) {
				r = -EINVAL;
				break;
			}
			b = a;
			p = end;
			if (*p == '-') {
				b = strtoull(p + 1, &end, 10);
				if (end == p + 1 || b < a) {
					r = -EINVAL;
					break;
				}
				p = end;
			}
			for (uint64_t s = a; !r && s <= b; s++)
				r = set_durable(j, s);
			if (r)
				break;
		}
	}
	if (!r && lineno == 0)
		r = -ENODATA;
	if (!r && j->blocks == 0)
		r = -EINVAL;
	if (r)
		fprintf(stderr, "xvmsg-blkcrash: %s: line %u: %s\n", path, lineno, strerror(-r));
	free(line);
	fclose(f);
	return r;
}

struct bc_verify {
	const struct bc_journal *j;
	uint64_t stride;
	uint64_t *floor;		/* per block: largest durable seq, or BC_NO_SEQ */
	uint64_t bad, lost, torn, blocks_with_floor, written;
	unsigned int reported;
};

static void report(struct bc_verify *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(struct bc_verify *v, const char *fmt, ...)
{
	va_list ap;

	if (v->reported++ >= 20)
		return;
	printf("xvmsg-blkcrash: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* 1 = a valid sector of this run (seq in *seq), 0 = not written by this
 * run, -1 = corrupt or misplaced. */
static int check_sector(const struct bc_verify *v, const uint8_t *s, uint64_t block,
			unsigned int idx, uint64_t *seq)
{
	struct bc_sector_hdr h;
	uint64_t sum;

	memcpy(&h, s, sizeof(h));
	if (h.magic != BC_MAGIC || h.seed != v->j->seed)
		return 0;
	memcpy(&sum, s + BC_SUM_OFF, 8);
	if (sum != fnv1a(s, BC_SUM_OFF) || h.block != block || h.idx != idx || h.reserved ||
	    block_of(h.seq, v->j->blocks, v->stride) != block ||
	    (v->j->next != BC_NO_SEQ && h.seq >= v->j->next))
		return -1;
	*seq = h.seq;
	return 1;
}

static void check_block(struct bc_verify *v, const uint8_t *b, uint64_t block)
{
	uint64_t f = v->floor[block], seqs[BC_SPB];
	int kinds[BC_SPB];
	bool torn = false, written = false;

	for (unsigned int i = 0; i < BC_SPB; i++) {
		kinds[i] = check_sector(v, b + i * BC_SECT, block, i, &seqs[i]);
		if (kinds[i] < 0) {
			v->bad++;
			report(v, "block %" PRIu64 " sector %u: corrupt or misplaced", block, i);
			return;
		}
		written |= kinds[i] > 0;
		if (i && (kinds[i] != kinds[0] || (kinds[i] > 0 && seqs[i] != seqs[0])))
			torn = true;
	}
	v->written += written;
	if (torn) {
		v->torn++;
		report(v, "block %" PRIu64 " is torn (sectors from different writes)", block);
	}
	if (f == BC_NO_SEQ)
		return;
	v->blocks_with_floor++;
	for (unsigned int i = 0; i < BC_SPB; i++) {
		if (kinds[i] == 0 || seqs[i] < f) {
			v->lost++;
			if (kinds[i] == 0)
				report(v, "block %" PRIu64 " sector %u: flushed write %" PRIu64
				       " lost (sector not written by this run)", block, i, f);
			else
				report(v, "block %" PRIu64 " sector %u: flushed write %" PRIu64
				       " lost (holds older write %" PRIu64 "%s)", block, i, f, seqs[i],
				       is_durable(v->j, seqs[i]) ? ", itself flushed" : "");
			return;
		}
	}
}

static int read_blocks(const struct bc_opts *o, struct bc_conn *c, int fd, uint64_t first,
		       uint8_t *buf, size_t len)
{
	if (fd >= 0) {
		size_t done = 0;

		while (done < len) {
			ssize_t r = pread(fd, buf + done, len - done,
					  (off_t)(first * BC_BLOCK + done));

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -errno;
			if (r == 0)
				return -ENXIO;	/* image shorter than the journal says */
			done += (size_t)r;
		}
		return 0;
	}
	return xvd_blk_read(c->dev, first * BC_SPB, buf, len);
}

static int cmd_verify(const struct bc_opts *o)
{
	struct bc_journal j = { 0 };
	struct bc_verify v = { .j = &j };
	struct bc_conn c = { .o = o };
	const uint64_t chunk = 16;	/* blocks per read */
	uint8_t *buf = NULL;
	int fd = -1, r, ret = 1;

	r = journal_read(o->journal, &j);
	if (r) {
		say("XVMSG-GUEST: FAIL blkcrash verify: journal %s: %s", o->journal, strerror(-r));
		return 1;
	}
	v.stride = stride_for(j.blocks);
	v.floor = malloc(j.blocks * sizeof(*v.floor));
	buf = aligned_alloc(BC_BLOCK, chunk * BC_BLOCK);
	if (!v.floor || !buf) {
		say("XVMSG-GUEST: FAIL blkcrash verify: out of memory");
		goto out;
	}
	for (uint64_t i = 0; i < j.blocks; i++)
		v.floor[i] = BC_NO_SEQ;
	for (uint64_t s = 0; s < j.nbits; s++) {
		if (is_durable(&j, s)) {
			uint64_t b = block_of(s, j.blocks, v.stride);

			if (v.floor[b] == BC_NO_SEQ || s > v.floor[b])
				v.floor[b] = s;
		}
	}

	if (o->image) {
		fd = open(o->image, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			say("XVMSG-GUEST: FAIL blkcrash verify: %s: %s", o->image, strerror(errno));
			goto out;
		}
	} else {
		r = conn_open(&c);
		if (!r && c.sectors / BC_SPB < j.blocks)
			r = -ENXIO;
		if (r) {
			say("XVMSG-GUEST: FAIL blkcrash verify: open the disk: %s", strerror(-r));
			goto out;
		}
	}
	for (uint64_t b = 0; b < j.blocks; b += chunk) {
		uint64_t n = j.blocks - b < chunk ? j.blocks - b : chunk;

		r = read_blocks(o, &c, fd, b, buf, n * BC_BLOCK);
		if (r) {
			say("XVMSG-GUEST: FAIL blkcrash verify: read block %" PRIu64 ": %s", b,
			    strerror(-r));
			goto out;
		}
		for (uint64_t i = 0; i < n; i++)
			check_block(&v, buf + i * BC_BLOCK, b + i);
	}
	if (v.bad || v.lost || (o->no_torn && v.torn) || j.count < o->min_verified) {
		say("XVMSG-GUEST: FAIL blkcrash verify: %" PRIu64 " flushed writes journalled; "
		    "%" PRIu64 " blocks lost a flushed write, %" PRIu64 " corrupt or misplaced, "
		    "%" PRIu64 " torn%s; %" PRIu64 " needed", j.count, v.lost, v.bad, v.torn,
		    o->no_torn ? " (not allowed)" : "", o->min_verified);
		goto out;
	}
	say("XVMSG-GUEST: PASS blkcrash verify: %" PRIu64 " acknowledged writes verified "
	    "(%" PRIu64 " of %" PRIu64 " blocks hold a flushed write or a later one, %" PRIu64
	    " written, %" PRIu64 " torn, from %s)", j.count, v.blocks_with_floor, j.blocks,
	    v.written, v.torn, o->image ? "the image" : "the device");
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	conn_close(&c, true);
	free(buf);
	free(v.floor);
	free(j.durable);
	return ret;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: xvmsg-blkcrash write  TARGET --journal FILE [--seconds S] [--depth N]\n"
"                             [--flush-every N] [--blocks N] [--seed X]\n"
"                             [--stop-after-reconnects R] [--stop-file F] [--pool-pages N]\n"
"       xvmsg-blkcrash verify (TARGET | --image PATH) --journal FILE [--min N] [--no-torn]\n"
"TARGET: --socket PATH --export NAME | --xen --devid N\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v > max || s[0] == '-') {
		fprintf(stderr, "xvmsg-blkcrash: bad number '%s'\n", s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "xen", no_argument, NULL, 'x' },
		{ "devid", required_argument, NULL, 'd' },
		{ "socket", required_argument, NULL, 's' },
		{ "export", required_argument, NULL, 'e' },
		{ "image", required_argument, NULL, 'i' },
		{ "journal", required_argument, NULL, 'j' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "depth", required_argument, NULL, 'D' },
		{ "flush-every", required_argument, NULL, 'F' },
		{ "blocks", required_argument, NULL, 'b' },
		{ "seed", required_argument, NULL, 'r' },
		{ "stop-after-reconnects", required_argument, NULL, 'R' },
		{ "stop-file", required_argument, NULL, 'f' },
		{ "min", required_argument, NULL, 'm' },
		{ "pool-pages", required_argument, NULL, 'P' },
		{ "no-torn", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct bc_opts o = { .seconds = 10, .depth = 32, .flush_every = 32, .blocks = 1024,
			     .min_verified = 1, .pool_pages = 256 };
	struct sigaction sa = { .sa_handler = on_signal };
	uint64_t v;
	int c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2 || (strcmp(argv[1], "write") && strcmp(argv[1], "verify"))) {
		usage(argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
		return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 2;
	}
	o.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'x': o.xen = true; break;
		case 'd':
			if (parse_u64(optarg, 1023, &v))
				return 2;
			o.devid = (unsigned int)v;
			break;
		case 's': o.socket_path = optarg; break;
		case 'e': o.export_name = optarg; break;
		case 'i': o.image = optarg; break;
		case 'j': o.journal = optarg; break;
		case 'S':
			if (parse_u64(optarg, 24 * 3600, &v))
				return 2;
			o.seconds = (double)v;
			break;
		case 'D':
			if (parse_u64(optarg, BC_MAX_DEPTH, &v) || !v)
				return 2;
			o.depth = (unsigned int)v;
			break;
		case 'F':
			if (parse_u64(optarg, 1u << 20, &v) || !v)
				return 2;
			o.flush_every = (unsigned int)v;
			break;
		case 'b':
			if (parse_u64(optarg, 1ULL << 28, &v) || v < 2)
				return 2;
			o.blocks = v;
			break;
		case 'r':
			if (parse_u64(optarg, UINT64_MAX, &o.seed))
				return 2;
			break;
		case 'R':
			if (parse_u64(optarg, 1u << 20, &v))
				return 2;
			o.stop_after_reconnects = (unsigned int)v;
			break;
		case 'f': o.stop_file = optarg; break;
		case 'm':
			if (parse_u64(optarg, UINT64_MAX, &o.min_verified))
				return 2;
			break;
		case 'T': o.no_torn = true; break;
		case 'P':
			if (parse_u64(optarg, 1u << 16, &v) || !v)
				return 2;
			o.pool_pages = (unsigned int)v;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !o.journal ||
	    (!o.image && !o.xen && (!o.socket_path || !o.export_name)) ||
	    (o.image && (o.xen || o.socket_path)) ||
	    (!strcmp(argv[1], "write") && o.image) || (o.xen && o.socket_path)) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "write") && o.depth >= o.blocks) {
		fprintf(stderr, "xvmsg-blkcrash: --depth must be below --blocks\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	return !strcmp(argv[1], "write") ? cmd_write(&o) : cmd_verify(&o);
}
