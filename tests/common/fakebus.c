// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "fakebus.h"

#define PAGE 4096
#define FB(b) ((struct fakebus *)(b))

static struct fb_map *find_slot(struct fakebus *fb, void *addr)
{
	unsigned int i;

	for (i = 0; i < sizeof(fb->map) / sizeof(fb->map[0]); i++)
		if (fb->map[i].addr == addr)
			return &fb->map[i];
	return NULL;
}

static int fb_map(struct xvb_bus *b, uint32_t domid, enum xvb_space space, const uint64_t *ids,
		  unsigned int n, bool writable, void **addr)
{
	struct fakebus *fb = FB(b);
	struct fb_map *slot = find_slot(fb, NULL);
	uint64_t frames[64];
	unsigned int i;
	char *base;

	if (!slot || n == 0 || n > 64)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (space == XVB_SPACE_GRANT) {
			if (ids[i] >= FB_MAX_GRANTS || !fb->gnt[ids[i]].permit)
				return -EPERM;
			if (writable && fb->gnt[ids[i]].readonly)
				return -EPERM;
			frames[i] = fb->gnt[ids[i]].frame;
		} else {
			if (!fb->allow_frames)
				return -EPERM;
			frames[i] = ids[i];
		}
		if (frames[i] < fb->frame_base || frames[i] - fb->frame_base >= fb->pages)
			return -EFAULT;
		frames[i] -= fb->frame_base;
	}
	base = mmap(NULL, (size_t)n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (mmap(base + (size_t)i * PAGE, PAGE, PROT_READ | (writable ? PROT_WRITE : 0),
			 MAP_SHARED | MAP_FIXED, fb->memfd, (off_t)(frames[i] * PAGE)) == MAP_FAILED) {
			munmap(base, (size_t)n * PAGE);
			return -ENOMEM;
		}
	}
	slot->addr = base;
	slot->n = n;
	slot->grant = space == XVB_SPACE_GRANT;
	memcpy(slot->ids, ids, n * sizeof(*ids));
	if (slot->grant)
		for (i = 0; i < n; i++)
			fb->gnt[ids[i]].pins++;
	fb->maps++;
	fb->live++;
	*addr = base;
	return 0;
}

static int fb_unmap(struct xvb_bus *b, void *addr, unsigned int n)
{
	struct fakebus *fb = FB(b);
	struct fb_map *slot = addr ? find_slot(fb, addr) : NULL;
	unsigned int i;

	if (!slot || slot->n != n)
		return -EINVAL;
	munmap(addr, (size_t)n * PAGE);
	if (slot->grant)
		for (i = 0; i < n; i++)
			fb->gnt[slot->ids[i]].pins--;
	slot->addr = NULL;
	fb->unmaps++;
	fb->live--;
	return 0;
}

static int fb_notify(struct xvb_bus *b, uint32_t port)
{
	FB(b)->notifies++;
	FB(b)->last_notify = port;
	return 0;
}

static int fb_bind(struct xvb_bus *b, uint32_t domid, uint32_t remote, uint32_t *local)
{
	*local = remote + 100;
	return 0;
}

static int fb_unbind(struct xvb_bus *b, uint32_t port)
{
	return 0;
}

static int fb_read(struct xvb_bus *b, const char *path, char *buf, size_t len)
{
	struct fakebus *fb = FB(b);
	unsigned int i;

	fb->reads++;
	for (i = 0; i < fb->nst; i++) {
		if (strcmp(fb->st[i].path, path) == 0) {
			if (strlen(fb->st[i].val) + 1 > len)
				return -E2BIG;
			strcpy(buf, fb->st[i].val);
			return 0;
		}
	}
	return -ENOENT;
}

static int fb_write(struct xvb_bus *b, const char *path, const char *val)
{
	struct fakebus *fb = FB(b);
	unsigned int i;

	for (i = 0; i < fb->nst && strcmp(fb->st[i].path, path); i++)
		;
	if (i == FB_MAX_STORE)
		return -ENOSPC;
	snprintf(fb->st[i].path, sizeof(fb->st[i].path), "%s", path);
	snprintf(fb->st[i].val, sizeof(fb->st[i].val), "%s", val);
	if (i == fb->nst)
		fb->nst++;
	return 0;
}

static int fb_rm(struct xvb_bus *b, const char *path)
{
	struct fakebus *fb = FB(b);
	size_t n = strlen(path);
	unsigned int i = 0;

	/* path and everything below it, as xenstore does */
	while (i < fb->nst) {
		if (!strncmp(fb->st[i].path, path, n) &&
		    (fb->st[i].path[n] == '\0' || fb->st[i].path[n] == '/'))
			fb->st[i] = fb->st[--fb->nst];
		else
			i++;
	}
	return 0;
}

/* Each direct child of path once, in no particular order. */
static int fb_dir(struct xvb_bus *b, const char *path, int (*fn)(void *arg, const char *child),
		  void *arg)
{
	struct fakebus *fb = FB(b);
	size_t n = strlen(path);
	unsigned int i, j;
	bool any = false;
	char name[128];
	int rc;

	fb->dirs++;
	for (i = 0; i < fb->nst; i++) {
		const char *p = fb->st[i].path, *child = p + n + 1;
		size_t len;

		if (strncmp(p, path, n) || p[n] != '/')
			continue;
		any = true;
		len = strcspn(child, "/");
		for (j = 0; j < i; j++) {	/* seen already? */
			const char *q = fb->st[j].path;

			if (!strncmp(q, path, n) && q[n] == '/' &&
			    !strncmp(q + n + 1, child, len) &&
			    (q[n + 1 + len] == '/' || q[n + 1 + len] == '\0'))
				break;
		}
		if (j < i)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)len, child);
		rc = fn(arg, name);
		if (rc)
			return rc;
	}
	return any ? 0 : -ENOENT;
}

static int fb_watch(struct xvb_bus *b, const char *path)
{
	return 0;
}

static uint32_t fb_self(struct xvb_bus *b)
{
	return 1;
}

/* Queue channels: an eventfd the frontend would signal; signals to the
 * frontend go nowhere.  chan_err, when set, is what every bind returns. */
struct xvb_chan {
	struct fakebus *fb;
	int kick;
};

static int fb_chan_bind(struct xvb_bus *b, uint32_t domid, uint32_t remote, struct xvb_chan **out)
{
	struct fakebus *fb = FB(b);
	struct xvb_chan *ch;

	fb->chan_binds++;
	if (fb->chan_err)
		return fb->chan_err;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	ch->fb = fb;
	ch->kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ch->kick < 0) {
		free(ch);
		return -EMFILE;
	}
	fb->chans++;
	*out = ch;
	return 0;
}

static void fb_chan_unbind(struct xvb_bus *b, struct xvb_chan *ch)
{
	ch->fb->chans--;
	close(ch->kick);
	free(ch);
}

static int fb_chan_fd(struct xvb_chan *ch)
{
	return ch->kick;
}

static int fb_chan_ack(struct xvb_chan *ch)
{
	uint64_t v;

	return read(ch->kick, &v, sizeof(v)) == sizeof(v) ? 0 : -EAGAIN;
}

static int fb_chan_notify(struct xvb_chan *ch)
{
	return 0;
}

static const struct xvb_bus_ops fb_ops = {
	.name = "fake",
	.self_domid = fb_self,
	.store_read = fb_read,
	.store_write = fb_write,
	.store_rm = fb_rm,
	.store_dir = fb_dir,
	.store_watch = fb_watch,
	.store_unwatch = fb_watch,
	.map = fb_map,
	.unmap = fb_unmap,
	.evtchn_bind = fb_bind,
	.evtchn_unbind = fb_unbind,
	.evtchn_notify = fb_notify,
	.chan_bind = fb_chan_bind,
	.chan_unbind = fb_chan_unbind,
	.chan_fd = fb_chan_fd,
	.chan_ack = fb_chan_ack,
	.chan_notify = fb_chan_notify,
};

int fakebus_init(struct fakebus *fb, uint32_t pages)
{
	memset(fb, 0, sizeof(*fb));
	fb->bus.ops = &fb_ops;
	fb->pages = pages;
	fb->memfd = memfd_create("fakebus", MFD_CLOEXEC);
	if (fb->memfd < 0 || ftruncate(fb->memfd, (off_t)pages * PAGE))
		return -errno;
	fb->mem = mmap(NULL, (size_t)pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
		       fb->memfd, 0);
	if (fb->mem == MAP_FAILED)
		return -errno;
	return 0;
}

void fakebus_fini(struct fakebus *fb)
{
	munmap(fb->mem, (size_t)fb->pages * PAGE);
	close(fb->memfd);
}

void fakebus_grant(struct fakebus *fb, uint32_t ref, uint32_t frame, uint32_t n, bool ro)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		fb->gnt[ref + i].permit = true;
		fb->gnt[ref + i].readonly = ro;
		fb->gnt[ref + i].frame = frame + i;
	}
}

void fakebus_revoke(struct fakebus *fb, uint32_t ref, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		fb->gnt[ref + i].permit = false;
}
