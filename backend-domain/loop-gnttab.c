// SPDX-License-Identifier: MIT
/*
 * The loopback bus's grant tables and guest memory, checked the way Xen
 * checks them: a map names grant refs (or, in full mode, frames) of a
 * driver; every entry is checked and marked in use (READING / WRITING) as
 * Xen's v1 grant table does, so the driver cannot revoke what is mapped,
 * and only frames of memfd regions the driver handed over can be mapped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "loop-priv.h"

/* The guest owns every memfd it hands us and could shrink it at any time:
 * our next access to a page past the new end would be SIGBUS, the end of
 * every guest's backend.  Accept only memfds sealed against shrinking. */
bool loop_shrink_sealed(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	return seals >= 0 && (seals & F_SEAL_SHRINK);
}

int loop_gnt_open(int fd, uint32_t n, struct loop_gnt **out)
{
	struct loop_gnt *g;
	struct stat st;

	if (n <= XVMSG_LOOP_GNT_RESERVED || n > XVMSG_LOOP_MAX_GNT_ENTRIES || !loop_shrink_sealed(fd) ||
	    fstat(fd, &st) || (uint64_t)st.st_size < (uint64_t)n * sizeof(struct xvmsg_loop_gnt))
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->refs = 1;
	g->n = n;
	g->pin_r = calloc(n, sizeof(uint16_t));
	g->pin_w = calloc(n, sizeof(uint16_t));
	g->e = mmap(NULL, (size_t)n * sizeof(*g->e), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (!g->pin_r || !g->pin_w || g->e == MAP_FAILED) {
		if (g->e != MAP_FAILED)
			munmap(g->e, (size_t)n * sizeof(*g->e));
		free(g->pin_r);
		free(g->pin_w);
		free(g);
		return -ENOMEM;
	}
	*out = g;
	return 0;
}

void loop_gnt_put(struct loop_gnt *g)
{
	if (!g || --g->refs)
		return;
	munmap(g->e, (size_t)g->n * sizeof(*g->e));
	free(g->pin_r);
	free(g->pin_w);
	free(g);
}

static const struct loop_region *region_of(const struct loop_client *c, uint64_t frame)
{
	unsigned int i;

	for (i = 0; i < c->nregions; i++)
		if (frame >= c->region[i].base && frame - c->region[i].base < c->region[i].pages)
			return &c->region[i];
	return NULL;
}

static void unpin(struct loop_gnt *g, uint32_t ref, bool writable)
{
	uint16_t *flags = &g->e[ref].flags;

	if (--g->pin_r[ref] == 0)
		__atomic_and_fetch(flags, (uint16_t)htole16(~XVMSG_GTF_READING), __ATOMIC_SEQ_CST);
	if (writable && --g->pin_w[ref] == 0)
		__atomic_and_fetch(flags, (uint16_t)htole16(~XVMSG_GTF_WRITING), __ATOMIC_SEQ_CST);
}

/* Check and pin one grant entry the way Xen does; returns its frame. */
static int pin(struct loop_gnt *g, uint64_t ref, bool writable, uint64_t *frame)
{
	uint16_t *fp, old, want;

	if (ref < XVMSG_LOOP_GNT_RESERVED || ref >= g->n)
		return -EINVAL;
	fp = &g->e[ref].flags;
	old = __atomic_load_n(fp, __ATOMIC_ACQUIRE);
	do {
		uint16_t f = le16toh(old);

		if (!(f & XVMSG_GTF_PERMIT_ACCESS) ||
		    le16toh(__atomic_load_n(&g->e[ref].domid, __ATOMIC_RELAXED)) !=
		    XVMSG_LOOP_BACKEND_DOMID)
			return -EPERM;
		if (writable && (f & XVMSG_GTF_READONLY))
			return -EPERM;
		want = htole16(f | XVMSG_GTF_READING | (writable ? XVMSG_GTF_WRITING : 0));
	} while (!__atomic_compare_exchange_n(fp, &old, want, false, __ATOMIC_SEQ_CST,
					      __ATOMIC_ACQUIRE));
	/* Pinned: the granter can no longer revoke it.  Read the frame once. */
	*frame = le32toh(__atomic_load_n(&g->e[ref].frame, __ATOMIC_RELAXED));
	g->pin_r[ref]++;
	if (writable)
		g->pin_w[ref]++;
	return 0;
}

static int map_locked(struct loop_bus *lb, uint32_t domid, enum xvb_space space,
		      const uint64_t *ids, unsigned int n, bool writable, void **addr);

int loop_map(struct xvb_bus *b, uint32_t domid, enum xvb_space space, const uint64_t *ids,
	     unsigned int n, bool writable, void **addr)
{
	struct loop_bus *lb = LB(b);
	int rc;

	pthread_mutex_lock(&lb->map_lock);
	rc = map_locked(lb, domid, space, ids, n, writable, addr);
	pthread_mutex_unlock(&lb->map_lock);
	return rc;
}

static int map_locked(struct loop_bus *lb, uint32_t domid, enum xvb_space space,
		      const uint64_t *ids, unsigned int n, bool writable, void **addr)
{
	struct loop_client *c = loop_client_find(lb, domid);
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	const struct loop_region **reg = NULL;
	struct loop_map *m = NULL;
	uint64_t *frame = NULL;
	unsigned int i = 0, pinned = 0, j, runs = 0;
	char *base = MAP_FAILED;
	int rc;

	if (!c)
		return -ESRCH;
	if (n == 0 || n > 65536)
		return -EINVAL;
	if (space == XVB_SPACE_FRAME && !lb->caps.map_frames)
		return -EPERM;
	m = calloc(1, sizeof(*m) + n * sizeof(uint32_t));
	frame = calloc(n, sizeof(*frame));
	reg = calloc(n, sizeof(*reg));
	if (!m || !frame || !reg) {
		rc = -ENOMEM;
		goto err;
	}
	for (i = 0; i < n; i++) {
		if (space == XVB_SPACE_GRANT) {
			rc = pin(c->gnt, ids[i], writable, &frame[i]);
			if (rc)
				goto err;
			m->ref[i] = (uint32_t)ids[i];
			pinned++;
		} else {
			frame[i] = ids[i];
		}
		reg[i] = region_of(c, frame[i]);
		if (!reg[i]) {
			rc = -EFAULT;	/* not memory this backend was given */
			i++;
			goto err;
		}
	}
	/* Runs of consecutive frames of one region are mapped at once, each a
	 * mapping of the kernel's: the guest's quota counts them (the kernel's
	 * own limit, vm.max_map_count, is shared by every guest). */
	for (i = 0; i < n; i = j, runs++)
		for (j = i + 1; j < n && reg[j] == reg[i] && frame[j] == frame[j - 1] + 1; j++)
			;
	if (c->nvmas + runs > lb->max_guest_maps) {
		rc = -EDQUOT;
		goto err;
	}
	base = mmap(NULL, (size_t)n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		rc = -ENOMEM;
		goto err;
	}
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && reg[j] == reg[i] && frame[j] == frame[j - 1] + 1; j++)
			;
		if (mmap(base + (size_t)i * PAGE, (size_t)(j - i) * PAGE, prot,
			 MAP_SHARED | MAP_FIXED, reg[i]->fd,
			 (off_t)((frame[i] - reg[i]->base) * PAGE)) == MAP_FAILED) {
			rc = -ENOMEM;
			goto err;
		}
	}
	m->addr = base;
	m->n = n;
	m->vmas = runs;
	m->owner = c;
	c->nvmas += runs;
	m->writable = writable;
	if (space == XVB_SPACE_GRANT) {
		m->gnt = c->gnt;
		c->gnt->refs++;
	}
	m->next = lb->maps;
	lb->maps = m;
	free(frame);
	free(reg);
	*addr = base;
	return 0;

err:
	if (base != MAP_FAILED)
		munmap(base, (size_t)n * PAGE);
	for (j = 0; j < pinned; j++)
		unpin(c->gnt, m->ref[j], writable);
	free(m);
	free(frame);
	free(reg);
	return rc;
}

int loop_unmap(struct xvb_bus *b, void *addr, unsigned int n)
{
	struct loop_bus *lb = LB(b);
	struct loop_map **pp, *m;
	unsigned int i;

	pthread_mutex_lock(&lb->map_lock);
	for (pp = &lb->maps; (m = *pp); pp = &m->next) {
		if (m->addr != addr)
			continue;
		if (m->n != n)
			break;
		*pp = m->next;
		munmap(m->addr, (size_t)m->n * PAGE);
		if (m->owner)
			m->owner->nvmas -= m->vmas;
		if (m->gnt) {
			for (i = 0; i < m->n; i++)
				unpin(m->gnt, m->ref[i], m->writable);
			loop_gnt_put(m->gnt);
		}
		pthread_mutex_unlock(&lb->map_lock);
		free(m);
		return 0;
	}
	pthread_mutex_unlock(&lb->map_lock);
	return m ? -EINVAL : -ENOENT;
}

int loop_do_region(struct loop_bus *lb, struct loop_client *c, const void *p, size_t len,
		   int *fds, unsigned int nfds)
{
	struct xvmsg_loop_region r;
	uint64_t base, pages;
	struct stat st;
	unsigned int i;

	if (len < sizeof(r) || nfds != 1)
		return -EINVAL;
	memcpy(&r, p, sizeof(r));
	base = le64toh(r.base_gfn);
	pages = le64toh(r.pages);
	if (!pages || pages > (1ULL << 28) || base > (1ULL << 40))
		return -EINVAL;
	if (!loop_shrink_sealed(fds[0]) || fstat(fds[0], &st) || (uint64_t)st.st_size < pages * PAGE)
		return -EINVAL;
	for (i = 0; i < c->nregions; i++)
		if (base < c->region[i].base + c->region[i].pages &&
		    c->region[i].base < base + pages)
			return -EEXIST;
	if (loop_client_fds(c) + 1 > lb->max_guest_fds)
		return -EDQUOT;
	if (c->nregions == MAX_REGIONS)
		return -ENOSPC;
	c->region[c->nregions].base = base;
	c->region[c->nregions].pages = pages;
	c->region[c->nregions].fd = fds[0];
	c->nregions++;
	fds[0] = -1;		/* taken */
	return 0;
}

/*
 * UNREGION: like a guest taking memory back from a grant-mapped backend,
 * except that mappings made before stay valid (each mmap holds its own
 * reference to the memfd) until the device that made them unmaps them; only
 * new maps of these frames fail.  The descriptor and the slot are freed now.
 */
int loop_region_remove(struct loop_client *c, uint64_t base_gfn)
{
	const struct loop_region *r = region_of(c, base_gfn);
	unsigned int i = r ? (unsigned int)(r - c->region) : 0;

	if (!r || r->base != base_gfn)
		return -ENOENT;
	close(r->fd);
	c->region[i] = c->region[--c->nregions];
	return 0;
}
