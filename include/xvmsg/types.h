/* SPDX-License-Identifier: MIT */
/*
 * xvmsg wire types: fixed-width little-endian integers usable from the Linux
 * kernel and from userspace.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_TYPES_H
#define XVMSG_TYPES_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/build_bug.h>
#include <asm/byteorder.h>
#define XVMSG_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#include <stdint.h>
#include <stddef.h>
#include <endian.h>
#include <assert.h>
#ifdef __linux__
#include <linux/types.h>	/* __u8 .. __u64, __le16 .. __le64 */
#else
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
typedef uint16_t __le16;
typedef uint32_t __le32;
typedef uint64_t __le64;
#endif
#define XVMSG_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define cpu_to_le16(x) htole16(x)
#define cpu_to_le32(x) htole32(x)
#define cpu_to_le64(x) htole64(x)
#define le16_to_cpu(x) le16toh(x)
#define le32_to_cpu(x) le32toh(x)
#define le64_to_cpu(x) le64toh(x)
#endif

/* Asserts the size of a wire struct and the offset of one of its fields. */
#define XVMSG_ASSERT_SIZE(type, size) \
	XVMSG_STATIC_ASSERT(sizeof(type) == (size), #type " has the wrong size")
#define XVMSG_ASSERT_OFF(type, field, off) \
	XVMSG_STATIC_ASSERT(offsetof(type, field) == (off), #type "." #field " is misplaced")

#endif /* XVMSG_TYPES_H */
