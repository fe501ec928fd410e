// SPDX-License-Identifier: GPL-2.0-only
/*
 * Private rings: what virtio_ring reads is never memory the backend can
 * write, and the module keeps its own record of the requests in flight.
 *
 * In pool and grant mode a split ring lives in memory the backend maps
 * writable.  virtio_ring reads its own descriptor table back when it frees a
 * chain (the NEXT flag, in detach_buf_split), so a backend that sets NEXT
 * everywhere would make the guest walk a chain for ever in interrupt
 * context.  And drivers read the used ring outside any interrupt: virtio_net
 * takes transmit completions back when it receives, in a loop that runs
 * while the used index says entries are pending, which on a queue that
 * virtio_ring broke (a bad id) never ends.  So each virtqueue has:
 *
 *   ring    what virtio_ring uses (vring_new_virtqueue): a virtually
 *           contiguous mapping of private pages (descriptor table and avail
 *           ring, page-rounded, then with private_used the used ring), or
 *           without private_used the pages of the shared used ring;
 *   shared  one allocation through the device's DMA ops (the pool, grants or
 *           guest frames), laid out like a split ring with 4 KiB alignment.
 *           This is the ring the backend is told about.
 *
 * Each kick copies the new chains' descriptors and avail entries to the
 * shared ring, then its index.  With private_used, each interrupt of the
 * queue copies the new used entries the other way, under used_lock, before
 * vring_interrupt: each entry is read once and must name a head the module
 * gave the backend and the backend has not completed yet (shared_heads);
 * the first that does not stops the copy there, nothing after it reaches
 * virtio_ring, and the connection is failed (the backend lied).  So
 * virtio_ring sees only ids it can take, each once, and what it sees
 * cannot change under it; once the queue is dead nothing more is copied.
 *
 * Entries reach virtio_ring only through an interrupt then, and a driver
 * that waits for one with interrupts off on the CPU the event channel is
 * bound to would wait for ever: virtio_console does (put_chars, the hvc
 * console, spins on virtqueue_get_buf under a spinlock taken with
 * irqsave).  So virtio_console's queues keep the shared used ring in
 * virtio_ring's view (xvmsg-virtio.c, setup_vq), and virtio_ring's own
 * checks of each entry are what stands there.  Every other driver the
 * backend serves (virtio_blk, virtio_net, virtio_rng) takes its
 * completions from the callback or from NAPI, with interrupts on.
 *
 * The shared rings run without VIRTIO_RING_F_EVENT_IDX (used_event would
 * sit in the private avail ring) and without flags: the backend is always
 * kicked and always interrupts.
 *
 * The record of requests in flight: a head is recorded when it is copied out
 * (or found when failing), keyed by the bus address of its first descriptor;
 * virtio_ring unmaps exactly that address when it frees the chain, and the
 * DMA ops report it here (xvmsg_shadow_unmapped), which clears the head.
 * Failing the requests in flight completes the recorded heads, nothing read
 * from shared memory, under the same lock as the queue's interrupt handler.
 * A queue whose requests are failed is dead for good (xvmsg_shadow_kill):
 * kicks only record, the backend's interrupts are ignored, and the private
 * used ring is written by the module alone (xvmsg-virtio.c,
 * xvmsg_fail_inflight, says why and in which order).
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include <linux/bitmap.h>
#include <linux/dma-mapping.h>
#include <linux/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/virtio_ring.h>

#include "xvmsg.h"

/* Bytes of the descriptor table and avail ring (with used_event), page-rounded. */
static size_t driver_part(unsigned int num)
{
	return PAGE_ALIGN(16 * (size_t)num + 6 + 2 * (size_t)num);
}

static size_t used_part(unsigned int num)
{
	return PAGE_ALIGN(6 + 8 * (size_t)num + 2);
}

static struct page *va_page(void *va)
{
	return is_vmalloc_addr(va) ? vmalloc_to_page(va) : virt_to_page(va);
}

int xvmsg_shadow_create(struct xvmsg_queue *q, struct device *dma_dev, unsigned int num,
			bool private_used)
{
	struct xvmsg_shadow *s = &q->sh;
	size_t dp = driver_part(num), up = used_part(num), i;
	unsigned int np = (dp + up) >> PAGE_SHIFT;
	struct page **pages = NULL;

	memset(s, 0, sizeof(*s));
	spin_lock_init(&s->avail_lock);
	spin_lock_init(&s->used_lock);
	s->num = num;
	s->ndriver = dp >> PAGE_SHIFT;
	s->size = dp + up;
	s->private_used = private_used;
	s->npriv = private_used ? np : s->ndriver;
	s->priv = kcalloc(s->npriv, sizeof(*s->priv), GFP_KERNEL);
	s->inflight = bitmap_zalloc(num, GFP_KERNEL);
	s->shared_heads = bitmap_zalloc(num, GFP_KERNEL);
	pages = kcalloc(np, sizeof(*pages), GFP_KERNEL);
	if (!s->priv || !s->inflight || !s->shared_heads || !pages)
		goto fail;
	s->shared_va = dma_alloc_coherent(dma_dev, s->size, &s->shared_dma, GFP_KERNEL);
	if (!s->shared_va)
		goto fail;
	memset(s->shared_va, 0, s->size);
	for (i = 0; i < s->npriv; i++) {
		s->priv[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!s->priv[i])
			goto fail;
		pages[i] = s->priv[i];
	}
	for (; i < np; i++)
		pages[i] = va_page(s->shared_va + (i << PAGE_SHIFT));
	s->ring_va = vmap(pages, np, VM_MAP, PAGE_KERNEL);
	if (!s->ring_va)
		goto fail;
	kfree(pages);
	vring_init(&s->ring, num, s->ring_va, PAGE_SIZE);
	vring_init(&s->shared, num, s->shared_va, PAGE_SIZE);
	return 0;
fail:
	kfree(pages);
	xvmsg_shadow_destroy(q, dma_dev);
	return -ENOMEM;
}

/* Forget the queue's recorded chains (a reset may leave some behind): a
 * later unmap of the same address must not clear a head of a new ring. */
static void forget_records(struct xvmsg_queue *q)
{
	struct xvmsg_conn *c = q->conn;
	unsigned long index, flags;
	void *v;

	if (!c)
		return;
	xa_lock_irqsave(&c->heads, flags);
	xa_for_each(&c->heads, index, v)
		if (xa_to_value(v) >> 16 == q->index)
			__xa_erase(&c->heads, index);
	xa_unlock_irqrestore(&c->heads, flags);
}

void xvmsg_shadow_destroy(struct xvmsg_queue *q, struct device *dma_dev)
{
	struct xvmsg_shadow *s = &q->sh;
	unsigned int i;

	forget_records(q);

	if (s->ring_va)
		vunmap(s->ring_va);
	if (s->shared_va)
		dma_free_coherent(dma_dev, s->size, s->shared_va, s->shared_dma);
	for (i = 0; s->priv && i < s->npriv; i++)
		if (s->priv[i])
			__free_page(s->priv[i]);
	kfree(s->priv);
	bitmap_free(s->inflight);
	bitmap_free(s->shared_heads);
	memset(s, 0, sizeof(*s));
}

void xvmsg_shadow_addrs(const struct xvmsg_queue *q, u64 *desc, u64 *avail, u64 *used)
{
	const struct xvmsg_shadow *s = &q->sh;

	*desc = s->shared_dma;
	*avail = s->shared_dma + 16 * (u64)s->num;
	*used = s->shared_dma + ((u64)s->ndriver << PAGE_SHIFT);
}

/* Record head as in flight under the bus address of its first descriptor. */
static void record(struct xvmsg_queue *q, u16 head, u64 addr)
{
	struct xvmsg_shadow *s = &q->sh;
	struct xvmsg_conn *c = q->conn;
	unsigned long flags;
	int r;

	if (test_and_set_bit(head, s->inflight))
		return;
	xa_lock_irqsave(&c->heads, flags);
	r = xa_err(__xa_store(&c->heads, (unsigned long)addr,
			      xa_mk_value((unsigned long)q->index << 16 | head), GFP_ATOMIC));
	xa_unlock_irqrestore(&c->heads, flags);
	/* No memory for the record: the request goes unrecorded (it would
	 * never be cleared, and the stall watchdog would count it for ever);
	 * only failing it, should the backend fail, is lost. */
	if (r) {
		clear_bit(head, s->inflight);
		xvmsg_stat_inc(c->info, XVMSG_ST_MAP_ERRORS);
		return;
	}
	atomic_inc(&s->ninflight);
}

/*
 * Heads virtio_ring made available since the last call: recorded, and with
 * to_shared their chains and avail entries copied to the shared ring.
 * avail_lock held.  Returns the private avail index.
 */
static u16 take_avail(struct xvmsg_queue *q, bool to_shared)
{
	struct xvmsg_shadow *s = &q->sh;
	u16 idx = le16_to_cpu(READ_ONCE(s->ring.avail->idx)), i;

	/* Pairs with virtio_ring's write barrier before it sets avail->idx:
	 * the entries and descriptors read below are complete. */
	smp_rmb();
	for (i = s->avail_seen; i != idx; i++) {
		unsigned int slot = i % s->num, n;
		u16 head = le16_to_cpu(READ_ONCE(s->ring.avail->ring[slot]));
		u16 d = head;

		if (head >= s->num)
			continue;	/* cannot happen: virtio_ring wrote it */
		record(q, head, le64_to_cpu(s->ring.desc[head].addr));
		for (n = 0; to_shared && n < s->num; n++) {
			struct vring_desc v = s->ring.desc[d];

			s->shared.desc[d] = v;
			if (!(le16_to_cpu(v.flags) & VRING_DESC_F_NEXT) ||
			    le16_to_cpu(v.next) >= s->num)
				break;
			d = le16_to_cpu(v.next);
		}
		if (to_shared) {
			/* Completable from now on (before the index makes it
			 * visible: xvmsg_shadow_kick's barrier). */
			set_bit(head, s->shared_heads);
			WRITE_ONCE(s->shared.avail->ring[slot], cpu_to_le16(head));
		}
	}
	s->avail_seen = idx;
	return idx;
}

bool xvmsg_shadow_kick(struct xvmsg_queue *q, bool share)
{
	struct xvmsg_shadow *s = &q->sh;
	unsigned long flags;
	u16 idx;

	spin_lock_irqsave(&s->avail_lock, flags);
	if (s->dead || !share) {
		/* Recorded only, and failed with the others
		 * (xvmsg_fail_inflight): nothing goes to the backend. */
		take_avail(q, false);
		spin_unlock_irqrestore(&s->avail_lock, flags);
		return false;
	}
	idx = take_avail(q, true);
	/* Descriptors and entries before the index; pairs with the backend's
	 * read barrier after it reads avail->idx. */
	xvmsg_wmb();
	WRITE_ONCE(s->shared.avail->idx, cpu_to_le16(idx));
	spin_unlock_irqrestore(&s->avail_lock, flags);
	return true;
}

void xvmsg_shadow_kill(struct xvmsg_queue *q)
{
	struct xvmsg_shadow *s = &q->sh;
	unsigned long flags;

	spin_lock_irqsave(&s->avail_lock, flags);
	s->dead = true;
	spin_unlock_irqrestore(&s->avail_lock, flags);
	/* An interrupt handler still in vring_interrupt on another CPU is
	 * done once we had the lock. */
	spin_lock_irqsave(&s->used_lock, flags);
	s->used_dead = true;
	spin_unlock_irqrestore(&s->used_lock, flags);
}

/*
 * The device is broken for good: take back the used entries virtio_ring did
 * not consume (its used index goes back to virtio_ring's own last_used).  A
 * broken queue hands nothing back, and a driver that takes completions back
 * outside the callback (virtio_net's transmit cleanup in NAPI) loops while
 * entries look pending: it would spin for ever.  Those requests stay with
 * virtio_ring until the driver's remove detaches them.  Returns how many
 * entries were taken back.
 */
unsigned int xvmsg_shadow_retract(struct xvmsg_queue *q, struct virtqueue *vq)
{
	struct xvmsg_shadow *s = &q->sh;
	unsigned long flags;
	u16 last, idx;

	spin_lock_irqsave(&s->used_lock, flags);
	last = (u16)virtqueue_enable_cb_prepare(vq);
	idx = le16_to_cpu(READ_ONCE(s->ring.used->idx));
	if (idx != last)
		WRITE_ONCE(s->ring.used->idx, cpu_to_le16(last));
	spin_unlock_irqrestore(&s->used_lock, flags);
	return (u16)(idx - last);
}

bool xvmsg_shadow_pending(struct xvmsg_queue *q)
{
	struct xvmsg_shadow *s = &q->sh;
	unsigned long flags;
	bool r;

	spin_lock_irqsave(&s->avail_lock, flags);
	r = le16_to_cpu(READ_ONCE(s->ring.avail->idx)) != s->failed_to;
	spin_unlock_irqrestore(&s->avail_lock, flags);
	return r;
}

/* The DMA ops unmapped addr: if it starts a recorded chain, virtio_ring has
 * freed that chain, so it is no longer in flight.  Any context. */
void xvmsg_shadow_unmapped(struct xvmsg_conn *c, dma_addr_t addr)
{
	unsigned long flags;
	unsigned int qi, head;
	void *v;

	if (xa_empty(&c->heads))
		return;
	xa_lock_irqsave(&c->heads, flags);
	v = __xa_erase(&c->heads, (unsigned long)addr);
	xa_unlock_irqrestore(&c->heads, flags);
	if (!v)
		return;
	qi = xa_to_value(v) >> 16;
	head = xa_to_value(v) & 0xffff;
	if (qi < c->nq && c->q[qi].sh.inflight && head < c->q[qi].sh.num &&
	    test_and_clear_bit(head, c->q[qi].sh.inflight))
		atomic_dec(&c->q[qi].sh.ninflight);
}

/*
 * Copy the used entries the backend added since the last call to the
 * private ring, each read once and checked: it must name a head given to
 * the backend and not completed yet.  The first that does not stops the
 * copy (used_lied); nothing after it is taken, now or later.  Each accepted
 * entry clears a head of shared_heads, so at most num are taken before a
 * lie, and the private ring never holds more than virtio_ring has in
 * flight.  used_lock held.
 */
static void copy_used(struct xvmsg_shadow *s)
{
	u16 idx = le16_to_cpu(READ_ONCE(s->shared.used->idx)), i = s->used_copied;

	if (idx == i || s->used_lied)
		return;
	/* The entries after the index; pairs with the backend's write barrier
	 * before it sets used->idx. */
	xvmsg_rmb();
	for (; i != idx; i++) {
		unsigned int slot = i % s->num;
		u32 id = le32_to_cpu(READ_ONCE(s->shared.used->ring[slot].id));
		u32 len = le32_to_cpu(READ_ONCE(s->shared.used->ring[slot].len));

		if (id >= s->num || !test_and_clear_bit(id, s->shared_heads)) {
			s->used_lied = true;
			s->lie_id = id;
			s->lie_at = i;
			break;
		}
		WRITE_ONCE(s->ring.used->ring[slot].id, cpu_to_le32(id));
		WRITE_ONCE(s->ring.used->ring[slot].len, cpu_to_le32(len));
	}
	if (i == s->used_copied)
		return;
	/* Entries before the index: virtio_ring may read it on another CPU
	 * (NAPI), without this lock. */
	smp_wmb();
	WRITE_ONCE(s->ring.used->idx, cpu_to_le16(i));
	s->used_copied = i;
}

irqreturn_t xvmsg_shadow_interrupt(struct xvmsg_queue *q, struct virtqueue *vq, int irq,
				   bool *lied)
{
	struct xvmsg_shadow *s = &q->sh;
	unsigned long flags;
	irqreturn_t ret = IRQ_NONE;
	bool first = false;

	spin_lock_irqsave(&s->used_lock, flags);
	/* A dead queue's used ring is the module's (xvmsg_shadow_fail_all):
	 * what the backend writes now is not looked at. */
	if (!s->used_dead) {
		u16 before = s->used_copied;

		if (s->private_used) {
			first = !s->used_lied;
			copy_used(s);
			first &= s->used_lied;
		}
		ret = vring_interrupt(irq, vq);
		/* Entries copied are work done, even when a driver on another
		 * CPU (start_xmit, NAPI) took them before vring_interrupt
		 * looked: not a spurious interrupt, which Xen would throttle. */
		if (s->used_copied != before)
			ret = IRQ_HANDLED;
	}
	*lied = s->used_lied;
	spin_unlock_irqrestore(&s->used_lock, flags);
	if (first)
		dev_err(xvmsg_dev(q->conn),
			"queue %u: used entry %u names descriptor %u, which the backend does not hold: it lied\n",
			q->index, s->lie_at, s->lie_id);
	return ret;
}

/*
 * Complete every recorded head with length 0 and run virtio_ring on them
 * (the queue must be dead: xvmsg_shadow_kill).  The entries go where
 * virtio_ring reads next (its own last_used index), so nothing the backend
 * wrote into its used ring is needed.  The caller has unbroken the device.
 * Returns how many were completed; *left how many virtio_ring did not take
 * back (the driver takes them back later, outside the callback, or, on a
 * queue without private_used, the backend rewrote the used ring at the
 * same moment).
 */
unsigned int xvmsg_shadow_fail_all(struct xvmsg_queue *q, struct virtqueue *vq,
				   unsigned int *left)
{
	struct xvmsg_shadow *s = &q->sh;
	unsigned int n = 0, head;
	unsigned long flags;
	u16 last;

	spin_lock_irqsave(&s->avail_lock, flags);
	s->dead = true;
	s->failed_to = take_avail(q, false);	/* made available, not kicked yet */
	spin_unlock_irqrestore(&s->avail_lock, flags);

	spin_lock_irqsave(&s->used_lock, flags);
	s->used_dead = true;
	last = (u16)virtqueue_enable_cb_prepare(vq);
	for_each_set_bit(head, s->inflight, s->num) {
		unsigned int slot = (u16)(last + n) % s->num;

		WRITE_ONCE(s->ring.used->ring[slot].id, cpu_to_le32(head));
		WRITE_ONCE(s->ring.used->ring[slot].len, 0);
		n++;
	}
	if (n) {
		/* Entries before the index, as a device's write barrier. */
		xvmsg_wmb();
		WRITE_ONCE(s->ring.used->idx, cpu_to_le16(last + n));
		vring_interrupt(0, vq);
	}
	spin_unlock_irqrestore(&s->used_lock, flags);
	*left = atomic_read(&s->ninflight);
	return n;
}

bool xvmsg_shadow_busy(struct xvmsg_queue *q)
{
	struct xvmsg_shadow *s = &q->sh;
	unsigned long flags;
	bool r;

	if (atomic_read(&s->ninflight))
		return true;
	/* Made available and never kicked: on a queue without private_used a
	 * backend that sets NO_NOTIFY in the used ring makes virtio_ring skip
	 * the kicks, so nothing of them is copied out or recorded. */
	spin_lock_irqsave(&s->avail_lock, flags);
	r = le16_to_cpu(READ_ONCE(s->ring.avail->idx)) != s->avail_seen;
	spin_unlock_irqrestore(&s->avail_lock, flags);
	return r;
}

/*
 * For a hang's post-mortem: where each side's indexes stand.  Read without
 * the ring locks (values of a moment, each read once); vq_lock keeps the
 * rings from being freed meanwhile.
 */
void xvmsg_shadow_show(struct seq_file *m, struct xvmsg_queue *q)
{
	struct xvmsg_shadow *s = &q->sh;

	if (!READ_ONCE(q->vq) || !s->num) {
		seq_printf(m, "queue %u: no virtqueue\n", q->index);
		return;
	}
	seq_printf(m, "queue %u: %u entries%s; avail: private %u, copied %u, shared %u; "
		   "used: shared %u, copied %u, private %u; in flight %d, with the backend %u"
		   "%s%s%s; irq %d port %u\n",
		   q->index, s->num, s->private_used ? ", private used ring" : "",
		   le16_to_cpu(READ_ONCE(s->ring.avail->idx)), READ_ONCE(s->avail_seen),
		   le16_to_cpu(READ_ONCE(s->shared.avail->idx)),
		   le16_to_cpu(READ_ONCE(s->shared.used->idx)), READ_ONCE(s->used_copied),
		   le16_to_cpu(READ_ONCE(s->ring.used->idx)), atomic_read(&s->ninflight),
		   bitmap_weight(s->shared_heads, s->num), READ_ONCE(s->dead) ? ", dead" : "",
		   READ_ONCE(s->used_dead) ? ", used dead" : "",
		   READ_ONCE(s->used_lied) ? ", lied" : "", q->irq, q->port);
}
