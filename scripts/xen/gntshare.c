// SPDX-License-Identifier: MIT
/*
 * gntshare: the smoke test's check that two unprivileged domUs can share a
 * page (gntalloc -> gntdev) and signal each other over an interdomain event
 * channel.  Linked statically; uses only the Linux uapi ioctls, no Xen
 * libraries.
 *
 *   gntshare offer  PEER OUTFILE SECONDS
 *       Grant one page to domain PEER, allocate an unbound event channel for
 *       PEER, write "GREF PORT\n" to OUTFILE (atomically, by rename), then
 *       wait for the peer's answer and acknowledge it.
 *   gntshare accept PEER GREF PORT SECONDS
 *       Map grant GREF of domain PEER, bind to its PORT, answer, and wait
 *       for the acknowledgement.
 *
 * The page (all fields little-endian u32, each written by one side only):
 *   0  magic  'XVMS'            offerer, before publishing GREF
 *   4  ping   a cookie          offerer, before publishing GREF
 *   8  pong   ping + 1          acceptor, then it notifies
 *   12 ack    pong + 1          offerer, then it notifies
 *
 * Exit status 0 when the whole exchange happened, 1 otherwise; one line
 * on stdout says what was checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* The uapi headers use these Xen types without defining them. */
typedef uint16_t domid_t;
typedef uint32_t grant_ref_t;

#include <xen/evtchn.h>
#include <xen/gntalloc.h>
#include <xen/gntdev.h>

#define PAGE_SIZE  4096
#define SMOKE_MAGIC 0x534d5658u /* "XVMS" */

struct smoke_page {
	uint32_t magic;
	uint32_t ping;
	uint32_t pong;
	uint32_t ack;
};

struct evtchn {
	int fd;
	uint32_t port;
};

static void msg(const char *fmt, const char *what, int err)
{
	fprintf(stderr, "gntshare: %s: %s%s%s\n", fmt, what, err ? ": " : "",
		err ? strerror(err) : "");
}

static int open_dev(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		int err = errno;

		msg("open", path, err);
		return -err;
	}
	return fd;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/*
 * Wait until the channel fires, at most until deadline_ms.  Unmasks the
 * port again.  Returns 0, -ETIMEDOUT or another negative errno.
 */
static int evtchn_wait(struct evtchn *ec, long deadline_ms)
{
	for (;;) {
		struct pollfd pfd = { .fd = ec->fd, .events = POLLIN };
		long left = deadline_ms - now_ms();
		uint32_t port;
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		if (read(ec->fd, &port, sizeof(port)) != (ssize_t)sizeof(port))
			return -EIO;
		/* Unmask: the driver masks a port each time it fires. */
		if (write(ec->fd, &port, sizeof(port)) != (ssize_t)sizeof(port))
			return -EIO;
		if (port == ec->port)
			return 0;
	}
}

/*
 * Open the event channel device into ec->fd and bind a port with the ioctl
 * req (its name in messages): 0 with the port in ec->port, or a negative
 * errno.  ec->fd stays open on failure too (or -1): the caller closes it.
 */
static int evtchn_bind(struct evtchn *ec, unsigned long req, const char *name, void *arg)
{
	int rc = open_dev("/dev/xen/evtchn");

	if (rc < 0)
		return rc;
	ec->fd = rc;
	rc = ioctl(ec->fd, req, arg);
	if (rc < 0) {
		rc = -errno;
		msg(name, "evtchn", -rc);
		return rc;
	}
	ec->port = (uint32_t)rc;
	return 0;
}
#define EVTCHN_BIND(ec, req, arg) evtchn_bind(ec, req, #req, arg)

static int evtchn_notify(struct evtchn *ec)
{
	struct ioctl_evtchn_notify n = { .port = ec->port };

	return ioctl(ec->fd, IOCTL_EVTCHN_NOTIFY, &n) < 0 ? -errno : 0;
}

/* Wait for *field to become want; 0, -ETIMEDOUT or -EPROTO (wrong value). */
static int wait_field(struct evtchn *ec, uint32_t *field, uint32_t want,
		      long deadline_ms)
{
	for (;;) {
		/* Pairs with the peer's release store before its notify. */
		uint32_t v = __atomic_load_n(field, __ATOMIC_ACQUIRE);
		int rc;

		if (v == want)
			return 0;
		if (v != 0)
			return -EPROTO;
		rc = evtchn_wait(ec, deadline_ms);
		if (rc < 0)
			return rc;
	}
}

static int write_outfile(const char *path, uint32_t gref, uint32_t port)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%u %u\n", gref, port);
	if (fclose(f) != 0)
		return -errno;
	return rename(tmp, path) < 0 ? -errno : 0;
}

static int offer(uint16_t peer, const char *outfile, long deadline_ms)
{
	struct ioctl_gntalloc_alloc_gref alloc = {
		.domid = peer, .flags = GNTALLOC_FLAG_WRITABLE, .count = 1,
	};
	struct ioctl_evtchn_bind_unbound_port bind = { .remote_domain = peer };
	struct evtchn ec = { .fd = -1 };
	struct smoke_page *pg;
	uint32_t cookie;
	int ga, rc;

	ga = open_dev("/dev/xen/gntalloc");
	if (ga < 0)
		return ga;
	if (ioctl(ga, IOCTL_GNTALLOC_ALLOC_GREF, &alloc) < 0) {
		rc = -errno;
		msg("IOCTL_GNTALLOC_ALLOC_GREF", "gntalloc", -rc);
		goto out_ga;
	}
	pg = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ga,
		  (off_t)alloc.index);
	if (pg == MAP_FAILED) {
		rc = -errno;
		msg("mmap", "gntalloc", -rc);
		goto out_ga;
	}
	cookie = ((uint32_t)getpid() << 16 ^ (uint32_t)now_ms()) | 1u;
	pg->ping = cookie;
	pg->pong = 0;
	pg->ack = 0;
	/* Pairs with the acceptor's acquire load of magic after mapping. */
	__atomic_store_n(&pg->magic, SMOKE_MAGIC, __ATOMIC_RELEASE);

	rc = EVTCHN_BIND(&ec, IOCTL_EVTCHN_BIND_UNBOUND_PORT, &bind);
	if (rc < 0)
		goto out_ec;

	rc = write_outfile(outfile, alloc.gref_ids[0], ec.port);
	if (rc < 0) {
		msg("write", outfile, -rc);
		goto out_ec;
	}

	rc = wait_field(&ec, &pg->pong, cookie + 1, deadline_ms);
	if (rc < 0) {
		msg("waiting for the peer's answer", rc == -EPROTO ? "wrong value" : "no answer", -rc);
		goto out_ec;
	}
	/* Pairs with the acceptor's acquire load of ack after its wakeup. */
	__atomic_store_n(&pg->ack, cookie + 2, __ATOMIC_RELEASE);
	rc = evtchn_notify(&ec);
	if (rc < 0) {
		msg("IOCTL_EVTCHN_NOTIFY", "evtchn", -rc);
		goto out_ec;
	}
	printf("gntshare: offer ok: gref %u port %u peer %u: answer seen, ack sent\n",
	       alloc.gref_ids[0], ec.port, peer);
	rc = 0;
out_ec:
	if (ec.fd >= 0)
		close(ec.fd);
	munmap(pg, PAGE_SIZE);
out_ga:
	close(ga);
	return rc;
}

static int accept_page(uint16_t peer, uint32_t gref, uint32_t port,
		       long deadline_ms)
{
	struct ioctl_gntdev_map_grant_ref map = {
		.count = 1, .refs = { { .domid = peer, .ref = gref } },
	};
	struct ioctl_gntdev_unmap_grant_ref unmap = { .count = 1 };
	struct ioctl_evtchn_bind_interdomain bind = {
		.remote_domain = peer, .remote_port = port,
	};
	struct evtchn ec = { .fd = -1 };
	struct smoke_page *pg;
	uint32_t ping;
	int gd, rc;

	gd = open_dev("/dev/xen/gntdev");
	if (gd < 0)
		return gd;
	if (ioctl(gd, IOCTL_GNTDEV_MAP_GRANT_REF, &map) < 0) {
		rc = -errno;
		msg("IOCTL_GNTDEV_MAP_GRANT_REF", "gntdev", -rc);
		goto out_gd;
	}
	unmap.index = map.index;
	pg = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, gd,
		  (off_t)map.index);
	if (pg == MAP_FAILED) {
		rc = -errno;
		msg("mmap of the grant", "gntdev", -rc);
		goto out_ref;
	}
	/* Pairs with the offerer's release store of magic. */
	if (__atomic_load_n(&pg->magic, __ATOMIC_ACQUIRE) != SMOKE_MAGIC) {
		msg("shared page", "no magic", 0);
		rc = -EPROTO;
		goto out_map;
	}
	ping = pg->ping;

	rc = EVTCHN_BIND(&ec, IOCTL_EVTCHN_BIND_INTERDOMAIN, &bind);
	if (rc < 0)
		goto out_ec;

	/* Pairs with the offerer's acquire load of pong in wait_field(). */
	__atomic_store_n(&pg->pong, ping + 1, __ATOMIC_RELEASE);
	rc = evtchn_notify(&ec);
	if (rc < 0) {
		msg("IOCTL_EVTCHN_NOTIFY", "evtchn", -rc);
		goto out_ec;
	}
	rc = wait_field(&ec, &pg->ack, ping + 2, deadline_ms);
	if (rc < 0) {
		msg("waiting for the ack", rc == -EPROTO ? "wrong value" : "no ack", -rc);
		goto out_ec;
	}
	printf("gntshare: accept ok: gref %u of domain %u mapped, port %u bound (local %u), ping/pong/ack done\n",
	       gref, peer, port, ec.port);
	rc = 0;
out_ec:
	if (ec.fd >= 0)
		close(ec.fd);
out_map:
	munmap(pg, PAGE_SIZE);
out_ref:
	ioctl(gd, IOCTL_GNTDEV_UNMAP_GRANT_REF, &unmap);
out_gd:
	close(gd);
	return rc;
}

static unsigned long num(const char *s, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || end == s || *end || v > max) {
		fprintf(stderr, "gntshare: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && strcmp(argv[1], "offer") == 0) {
		long deadline = now_ms() + 1000L * (long)num(argv[4], 3600);

		rc = offer((uint16_t)num(argv[2], 0x7fef), argv[3], deadline);
	} else if (argc == 6 && strcmp(argv[1], "accept") == 0) {
		long deadline = now_ms() + 1000L * (long)num(argv[5], 3600);

		rc = accept_page((uint16_t)num(argv[2], 0x7fef),
				 (uint32_t)num(argv[3], UINT32_MAX),
				 (uint32_t)num(argv[4], UINT32_MAX), deadline);
	} else {
		fprintf(stderr,
			"usage: gntshare offer PEER OUTFILE SECONDS\n"
			"       gntshare accept PEER GREF PORT SECONDS\n");
		return 2;
	}
	return rc < 0 ? 1 : 0;
}
