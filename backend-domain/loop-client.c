// SPDX-License-Identifier: MIT
/*
 * The loopback bus: a driver's connection as the other parts see it
 * (loop-priv.h).  A base: it calls nobody.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "loop-priv.h"

struct loop_client *loop_client_find(struct loop_bus *lb, uint32_t domid)
{
	struct loop_client *c;

	for (c = lb->clients; c; c = c->next)
		if (c->domid == domid && !c->dead)
			return c;
	return NULL;
}

void loop_client_kill(struct loop_client *c)
{
	/* A queue thread's map may be looking for this domain right now. */
	pthread_mutex_lock(&c->lb->map_lock);
	c->dead = true;
	pthread_mutex_unlock(&c->lb->map_lock);
}

unsigned int loop_client_fds(const struct loop_client *c)
{
	unsigned int i, n = c->nregions + c->nev;

	for (i = 0; i < c->nev; i++)
		n += c->ev[i].bound;
	return n;
}

int loop_send(struct loop_client *c, uint32_t op, uint32_t seq, int32_t status,
	      const void *payload, size_t len, int fd)
{
	char buf[XVMSG_LOOP_MAX_PACKET];
	union { struct cmsghdr c; char b[CMSG_SPACE(sizeof(int))]; } u;
	struct xvmsg_loop_hdr h = {
		.op = htole32(op), .len = htole32((uint32_t)len),
		.seq = htole32(seq), .status = htole32((uint32_t)status),
	};
	struct iovec iov = { buf, sizeof(h) + len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (len > sizeof(buf) - sizeof(h))
		return -E2BIG;
	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), payload, len);
	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.b;
		mh.msg_controllen = sizeof(u.b);
		u.c.cmsg_level = SOL_SOCKET;
		u.c.cmsg_type = SCM_RIGHTS;
		u.c.cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(&u.c), &fd, sizeof(int));
	}
	if (sendmsg(c->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		int err = errno;

		/* The kernel's limit on descriptors in flight (ours, not the
		 * driver's doing alone): the caller answers without one. */
		if (err == ETOOMANYREFS && fd >= 0)
			return -err;
		loop_client_kill(c);	/* not reading, or gone */
		return -err;
	}
	return 0;
}

int loop_parse_id(const char *s, const char **end, uint32_t max, uint32_t *out)
{
	uint32_t v = 0;

	if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint32_t)(*s - '0');
		if (v > max)
			return -ERANGE;
	}
	*end = s;
	*out = v;
	return 0;
}
