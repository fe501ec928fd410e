/* SPDX-License-Identifier: MIT */
/*
 * Barriers and single-copy accesses for memory shared with the peer (the
 * message page, the virtqueues, the loopback grant table), defined once for
 * the guest module, the userspace driver and the backend.
 *
 *   xvmsg_mb()    full barrier: loads and stores before it are ordered
 *                 against loads and stores after it
 *   xvmsg_rmb()   loads before it are ordered against loads after it
 *   xvmsg_wmb()   stores before it are ordered against stores after it
 *   XVMSG_READ_ONCE(x), XVMSG_WRITE_ONCE(x, v)
 *                 one untorn access the compiler neither repeats nor drops
 *
 * The peer is another domain (or process), never a device: the kernel's
 * virt_*() barriers, which stay barriers on a uniprocessor guest.  Every use
 * names its partner barrier on the other side.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_BARRIER_H
#define XVMSG_BARRIER_H

#ifdef __KERNEL__
#include <linux/compiler.h>
#include <asm/barrier.h>
#define xvmsg_mb()		virt_mb()
#define xvmsg_rmb()		virt_rmb()
#define xvmsg_wmb()		virt_wmb()
#define XVMSG_READ_ONCE(x)	READ_ONCE(x)
#define XVMSG_WRITE_ONCE(x, v)	WRITE_ONCE(x, v)
#else
#define xvmsg_mb()		__atomic_thread_fence(__ATOMIC_SEQ_CST)
#define xvmsg_rmb()		__atomic_thread_fence(__ATOMIC_ACQUIRE)
#define xvmsg_wmb()		__atomic_thread_fence(__ATOMIC_RELEASE)
#define XVMSG_READ_ONCE(x)	__atomic_load_n(&(x), __ATOMIC_RELAXED)
#define XVMSG_WRITE_ONCE(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#endif

#endif /* XVMSG_BARRIER_H */
