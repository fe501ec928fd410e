/* SPDX-License-Identifier: MIT */
/*
 * One packet with descriptors riding along (SCM_RIGHTS), as a driver sends
 * them on the loopback bus's socket: for the tests and fuzzers that speak
 * to it raw.  Header only: the fuzz replays link no more of tests/common.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_TEST_SEND_FDS_H
#define XVMSG_TEST_SEND_FDS_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#define XT_SEND_MAX_FDS	4

/* sendmsg of len bytes at p with n (<= XT_SEND_MAX_FDS) descriptors of
 * fds[], flags besides MSG_NOSIGNAL: its result, -1 with EINVAL for too
 * many descriptors. */
static inline ssize_t xt_send_fds(int s, const void *p, size_t len, const int *fds,
				  unsigned int n, int flags)
{
	union { struct cmsghdr c; char b[CMSG_SPACE(XT_SEND_MAX_FDS * sizeof(int))]; } u;
	struct iovec iov = { (void *)p, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (n > XT_SEND_MAX_FDS) {
		errno = EINVAL;
		return -1;
	}
	if (n) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.b;
		mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
		u.c.cmsg_level = SOL_SOCKET;
		u.c.cmsg_type = SCM_RIGHTS;
		u.c.cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(&u.c), fds, n * sizeof(int));
	}
	return sendmsg(s, &mh, MSG_NOSIGNAL | flags);
}

#endif /* XVMSG_TEST_SEND_FDS_H */
