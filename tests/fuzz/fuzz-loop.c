// SPDX-License-Identifier: MIT
/*
 * Fuzz target: the loopback bus's control socket (backend-domain/bus-loop.c
 * and loop-*.c) as a hostile driver process speaks it, and the backend's
 * use of what that driver set up (maps of its grants and frames, its event
 * and queue channels); the bus watches all of /local/domain, so every
 * write meets the watch code.  One bus lives for the whole run; each input
 * is one driver connection, a list of steps of 4 bytes and a body:
 *
 *   u8 what, u8 fds, le16 len, len bytes of body (cut to what is left)
 *
 *   what % 5 == 0  the body sent as one packet, header and all
 *            1     a packet with a header that fits: op = body[0] % 10,
 *                  payload the rest of the body (cut to fit the packet
 *                  size); a WRITE's leading "~" becomes the driver's
 *                  /local/domain/<domid>/device/xvmsg
 *            2     the backend maps (then reads and unmaps): space
 *                  body[0] & 1 (grant, frame), n = body[1] % 4 + 1 pages,
 *                  writable if body[1] & 0x80, ids le32 from body + 2
 *            3     the backend binds the channel whose port is le16 body,
 *                  signals and drains it, unbinds it; as a queue channel
 *                  (its own fd, acked) when body[2] & 1
 *            4     the driver writes body + 2 into the last memfd it made,
 *                  at byte le16 body * 8 (its grant table, live)
 *   fds (packets): n = fds & 3 descriptors, of kind (fds >> 2) & 3: 0 a
 *   memfd sealed against shrinking, (fds >> 4) + 1 pages, starting with the
 *   packet's payload; 1 the same unsealed; 2 /dev/null; 3 a socket.
 *
 * After every step the bus dispatches and the driver reads what came back
 * (HELLO's reply names its domid for steps 1 to 3; the channel ends it
 * receives, up to 8, get a notification after every step and are closed
 * at the end, any more at once).
 * Besides the sanitizers: once the driver has gone, the bus holds no more
 * descriptors and no more mappings than before it came.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <xvmsg/loop.h>

#include "bus.h"
#include "device.h"
#include "send-fds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct xvb_bus *bus;
static char sock_path[108];

#define check(x)                                                                   \
	do {                                                                       \
		if (!(x)) {                                                        \
			fprintf(stderr, "fuzz-loop: line %d: %s\n", __LINE__, #x); \
			abort();                                                   \
		}                                                                  \
	} while (0)

static void no_watch(void *ctx, const char *path)
{
	(void)ctx;
	(void)path;
}

static void no_event(void *ctx, uint32_t port)
{
	(void)ctx;
	(void)port;
}

static const struct xvb_export exports[] = {
	{ .name = "rng0", .type = "rng" },
	{ .name = "blk0", .type = "blk", .params = "path=/nonexistent" },
};

static char sock_dir[] = "/tmp/xvmsg-fuzz-loop-XXXXXX";

static void bus_down(void)
{
	bus->ops->destroy(bus);
	unlink(sock_path);
	rmdir(sock_dir);
}

static void bus_up(void)
{
	const struct xvb_bus_events ev = { NULL, no_watch, no_event };
	struct xvb_loop_opts o = {
		.exports = exports, .nr_exports = 2, .allow_full = true,
		/* small quotas: reachable by an input */
		.max_guest_fds = 16, .max_guest_maps = 64,
		.max_guest_keys = 16, .max_guest_store_bytes = 2048,
	};

	check(mkdtemp(sock_dir) != NULL);
	snprintf(sock_path, sizeof(sock_path), "%s/s", sock_dir);
	o.socket_path = sock_path;
	check(xvb_loop_create(&o, &ev, &bus) == 0);
	/* as a backend does, and more: every write a driver makes or causes
	 * goes past a watch */
	check(bus->ops->store_watch(bus, "/local/domain") == 0);
	atexit(bus_down);
}

static unsigned int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned int n = 0;

	check(d != NULL);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Mappings of memfds (the drivers' memory; the sanitizers' own mappings
 * come and go and are not counted). */
static unsigned int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	unsigned int n = 0;
	char line[512];

	check(f != NULL);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "/memfd:") != NULL;
	fclose(f);
	return n;
}

static uint32_t le(const uint8_t *p, unsigned int n)
{
	uint32_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

/* Up to 3 descriptors of the kind fds names; their number.  *last_mem
 * keeps (a copy of) the last memfd made. */
static unsigned int make_fds(uint8_t fds, const uint8_t *body, size_t len, int *out,
			     int *last_mem)
{
	unsigned int n = fds & 3, kind = (fds >> 2) & 3, i;
	size_t bytes = (size_t)((fds >> 4) + 1) * 4096;

	for (i = 0; i < n; i++) {
		int sv[2];

		switch (kind) {
		case 0:
		case 1:
			out[i] = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
			check(out[i] >= 0);
			check(ftruncate(out[i], (off_t)bytes) == 0);
			check(pwrite(out[i], body, len < bytes ? len : bytes, 0) >= 0);
			if (kind == 0)
				check(fcntl(out[i], F_ADD_SEALS, F_SEAL_SHRINK) == 0);
			if (*last_mem >= 0)
				close(*last_mem);
			*last_mem = dup(out[i]);
			check(*last_mem >= 0);
			break;
		case 2:
			out[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
			check(out[i] >= 0);
			break;
		default:
			check(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
			close(sv[1]);
			out[i] = sv[0];
			break;
		}
	}
	return n;
}

/* The bus's turn, then everything it sent: a HELLO reply's domid to
 * *domid, event channel ends to ports[] (until full; the rest closed). */
static void turn(int s, uint32_t *domid, int *ports, unsigned int *nports)
{
	char buf[XVMSG_LOOP_MAX_PACKET + 16], cbuf[CMSG_SPACE(XVMSG_LOOP_MAX_FDS * sizeof(int))];

	check(bus->ops->dispatch(bus) >= 0);
	for (;;) {
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		ssize_t n = recvmsg(s, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		struct xvmsg_loop_hdr h;

		if (n <= 0)
			break;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			unsigned int k, nfd;

			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			nfd = (unsigned int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (k = 0; k < nfd; k++) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
				if (*nports < 8)
					ports[(*nports)++] = fd;
				else
					close(fd);
			}
		}
		check((size_t)n >= sizeof(h));	/* the bus sends whole packets */
		memcpy(&h, buf, sizeof(h));
		check(le32toh(h.len) == (size_t)n - sizeof(h));
		if (le32toh(h.op) == (XVMSG_LOOP_OP_HELLO | XVMSG_LOOP_REPLY) && !h.status &&
		    n >= (ssize_t)(sizeof(h) + sizeof(struct xvmsg_loop_hello_reply))) {
			struct xvmsg_loop_hello_reply r;

			memcpy(&r, buf + sizeof(h), sizeof(r));
			*domid = le16toh(r.frontend_domid);
		}
	}
}

static void backend_map(uint32_t domid, const uint8_t *body, size_t len)
{
	uint64_t ids[4];
	unsigned int n, i;
	void *addr;

	if (len < 2)
		return;
	n = body[1] % 4 + 1;
	for (i = 0; i < n; i++)
		ids[i] = 2 + 4 * i + 4 <= len ? le(body + 2 + 4 * i, 4) : i;
	if (bus->ops->map(bus, domid, (body[0] & 1) ? XVB_SPACE_FRAME : XVB_SPACE_GRANT, ids, n,
			  body[1] & 0x80, &addr) == 0) {
		volatile const uint8_t *p = addr;

		(void)p[0];
		(void)p[n * 4096 - 1];
		check(bus->ops->unmap(bus, addr, n) == 0);
	}
}

static void backend_channel(uint32_t domid, const uint8_t *body, size_t len)
{
	struct xvb_chan *ch;
	uint32_t port;

	if (len >= 3 && (body[2] & 1)) {
		if (bus->ops->chan_bind(bus, domid, le(body, 2), &ch))
			return;
		check(bus->ops->chan_fd(ch) >= 0);
		bus->ops->chan_notify(ch);
		bus->ops->chan_ack(ch);
		bus->ops->chan_unbind(bus, ch);
		return;
	}
	if (len < 2 || bus->ops->evtchn_bind(bus, domid, le(body, 2), &port))
		return;
	bus->ops->evtchn_notify(bus, port);
	check(bus->ops->dispatch(bus) >= 0);
	bus->ops->evtchn_unbind(bus, port);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned int fds0, maps0, nports = 0, i;
	uint32_t domid = 0xffff;
	int s, ports[8], last_mem = -1;

	if (!bus)
		bus_up();
	check(bus->ops->dispatch(bus) >= 0);
	fds0 = count_entries("/proc/self/fd");
	maps0 = count_maps();
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	check(s >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	check(connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	turn(s, &domid, ports, &nports);

	while (size >= 4) {
		uint8_t what = data[0], fl = data[1];
		size_t len = le(data + 2, 2);
		const uint8_t *body = data + 4;
		int fds[3];
		unsigned int nfd;

		if (len > size - 4)
			len = size - 4;
		data += 4 + len;
		size -= 4 + len;
		switch (what % 5) {
		case 0:
			nfd = make_fds(fl, body, len, fds, &last_mem);
			/* the bus may have hung up on this driver already */
			(void)xt_send_fds(s, body, len, fds, nfd, MSG_DONTWAIT);
			break;
		case 1: {
			/* XVMSG_LOOP_MAX_PACKET is the whole packet, header included */
			const size_t max = XVMSG_LOOP_MAX_PACKET - sizeof(struct xvmsg_loop_hdr);
			uint8_t pkt[XVMSG_LOOP_MAX_PACKET];
			size_t plen = len ? len - 1 : 0;
			struct xvmsg_loop_hdr h = { htole32(len ? body[0] % 10 : 0), 0, htole32(9), 0 };

			if (le32toh(h.op) == XVMSG_LOOP_OP_WRITE && plen && body[1] == '~') {
				int n = snprintf((char *)pkt + sizeof(h), 64,
						 "/local/domain/%u/device/xvmsg", domid);

				plen = plen - 1 + (size_t)n;
				if (plen > max)
					plen = max;
				memcpy(pkt + sizeof(h) + n, body + 2, plen - (size_t)n);
			} else {
				if (plen > max)
					plen = max;
				memcpy(pkt + sizeof(h), body + 1, plen);
			}
			h.len = htole32((uint32_t)plen);
			memcpy(pkt, &h, sizeof(h));
			nfd = make_fds(fl, pkt + sizeof(h), plen, fds, &last_mem);
			(void)xt_send_fds(s, pkt, sizeof(h) + plen, fds, nfd, MSG_DONTWAIT);
			break;
		}
		case 2:
			nfd = 0;
			backend_map(domid, body, len);
			break;
		case 3:
			nfd = 0;
			backend_channel(domid, body, len);
			break;
		default:
			nfd = 0;
			if (last_mem >= 0 && len >= 2)
				(void)pwrite(last_mem, body + 2, len - 2, (off_t)le(body, 2) * 8);
			break;
		}
		for (i = 0; i < nfd; i++)
			close(fds[i]);
		turn(s, &domid, ports, &nports);
		/* the driver's side of its channels: a notification each */
		for (i = 0; i < nports; i++)
			(void)send(ports[i], "", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	}

	for (i = 0; i < nports; i++)
		close(ports[i]);
	if (last_mem >= 0)
		close(last_mem);
	close(s);
	for (i = 0; i < 3; i++)
		check(bus->ops->dispatch(bus) >= 0);
	/* The driver is gone: so is everything the bus held of it. */
	check(count_entries("/proc/self/fd") == fds0);
	check(count_maps() == maps0);
	return 0;
}
