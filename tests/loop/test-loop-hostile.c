// SPDX-License-Identifier: MIT
/*
 * Integration: a driver that points descriptors where it must not.  The
 * backend refuses each such request (completed with length 0), stays up,
 * and keeps serving the same device and others.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xvmsg/loop.h>
#include <cmocka.h>
#include <linux/virtio_blk.h>

#include <xvmsg/xenbus.h>

#include "loop-fixture.h"
#include "send-fds.h"

static int setup(void **state)
{
	static const struct loop_fx_opts o = {
		.disk_bytes = 1u << 20, .args = { "--export", "rng0:rng" },
	};

	return loop_fx_setup(state, sizeof(struct loop_fx), &o);
}

static void open_blk(struct loop_fx *f, int mode)
{
	struct xvd_domain_opts dopts = { .socket_path = f->b.sock, .log_level = XVD_LOG_ERR };
	struct xvd_dev_opts o = { .export_name = "disk0", .mode = mode, .pool_pages = 64 };

	assert_int_equal(xvd_domain_open_loop(&dopts, &f->d), 0);
	assert_int_equal(xvd_blk_open(f->d, &o, &f->dev), 0);
}

/* A read whose data buffer is at a raw bus address; returns the used length.
 * Header and status live in guest RAM so that every mode can map them. */
static uint32_t read_to(struct loop_fx *f, uint64_t bus_addr, uint32_t len)
{
	struct virtio_blk_outhdr *hdr;
	uint8_t *status;
	struct xvd_done done;
	int n;

	assert_int_equal(xvd_ram_alloc(f->d, sizeof(*hdr), (void **)&hdr), 0);
	assert_int_equal(xvd_ram_alloc(f->d, 1, (void **)&status), 0);
	hdr->type = htole32(VIRTIO_BLK_T_IN);
	*status = 0xff;
	{
		struct xvd_buf bufs[3] = {
			{ .addr = hdr, .len = sizeof(*hdr) },
			{ .len = len, .dev_writes = true, .raw = true, .bus_addr = bus_addr },
			{ .addr = status, .len = 1, .dev_writes = true },
		};

		assert_int_equal(xvd_vq_submit(f->dev, 0, bufs, 3, (void *)0x1, 0), 0);
	}
	do {
		n = xvd_vq_poll(f->dev, 0, &done, 1);
		if (n == 0)
			assert_true(xvd_dev_wait(f->dev, 5000) > 0);
	} while (n == 0);
	assert_int_equal(n, 1);
	assert_int_equal(done.status, 0);
	assert_int_equal(*status, 0xff);	/* the device wrote nothing */
	xvd_ram_free(f->d, hdr);
	xvd_ram_free(f->d, status);
	return done.len;
}

/* After every refusal the same device still works, and the backend lives. */
static void still_serving(struct loop_fx *f)
{
	uint8_t buf[4096];
	int status;

	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(xvd_blk_write(f->dev, 8, buf, sizeof(buf)), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(xvd_blk_read(f->dev, 8, buf, sizeof(buf)), 0);
	assert_int_equal(buf[0], 0x5a);
	assert_int_equal(buf[4095], 0x5a);
	assert_int_equal(waitpid(f->b.pid, &status, WNOHANG), 0);
}

static void test_pool_refuses_outside_addresses(void **state)
{
	struct loop_fx *f = *state;
	static const uint64_t bad[] = {
		0x1000,				/* a guest frame: RAM, not the pool */
		XVMSG_GRANT_ADDR(0x7fff0, 0),	/* a grant far beyond the pool */
		XVMSG_GRANT_ADDR(2, 0),		/* a reserved grant, below the pool */
		0xfffffffffffff000ULL,		/* address + length overflows */
	};
	unsigned int i;

	open_blk(f, XVD_MODE_POOL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(read_to(f, bad[i], 4096), 0);
		still_serving(f);
	}
	assert_true(backend_log_count(&f->b, "refused a request") >= 4);
}

static void test_grant_refuses_ungranted(void **state)
{
	struct loop_fx *f = *state;

	open_blk(f, XVD_MODE_GRANT);
	/* In range of the grant table, but never granted. */
	assert_int_equal(read_to(f, XVMSG_GRANT_ADDR(60000, 0), 4096), 0);
	still_serving(f);
	/* Beyond the grant table. */
	assert_int_equal(read_to(f, XVMSG_GRANT_ADDR(0x7ffffff, 0), 4096), 0);
	still_serving(f);
	/* A frame address is not a grant. */
	assert_int_equal(read_to(f, 0x2000, 4096), 0);
	still_serving(f);
}

/* A broken device does not disturb another device of the same backend. */
static void test_other_device_unaffected(void **state)
{
	struct loop_fx *f = *state;
	struct xvd_dev_opts o = { .export_name = "rng0", .devid = 5, .mode = XVD_MODE_POOL };
	struct xvd_dev *rng;
	uint8_t r[64];

	open_blk(f, XVD_MODE_POOL);
	assert_int_equal(xvd_rng_open(f->d, &o, &rng), 0);
	assert_int_equal(read_to(f, 0x1000, 4096), 0);
	assert_int_equal(xvd_rng_read(rng, r, sizeof(r)), (int)sizeof(r));
	xvd_dev_close(rng);
	still_serving(f);
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* The reply to op: its status, or 1 if the backend hung up. */
static int raw_reply(int fd, uint32_t op)
{
	char buf[XVMSG_LOOP_MAX_PACKET + 64];
	struct xvmsg_loop_hdr h;
	ssize_t n;

	n = recv(fd, buf, sizeof(buf), 0);
	if (n <= 0)
		return 1;
	assert_true(n >= (ssize_t)sizeof(h));
	memcpy(&h, buf, sizeof(h));
	assert_int_equal(le32toh(h.op), op | XVMSG_LOOP_REPLY);
	return (int)le32toh(h.status);
}

/* Send a packet; return the reply's status, or 1 if the backend hung up. */
static int raw_call(int fd, uint32_t op, uint32_t len_field, const void *p, size_t len)
{
	char buf[XVMSG_LOOP_MAX_PACKET + 64];
	struct xvmsg_loop_hdr h = { htole32(op), htole32(len_field), htole32(7), 0 };

	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), p, len);
	if (send(fd, buf, sizeof(h) + len, MSG_NOSIGNAL) < 0)
		return 1;
	return raw_reply(fd, op);
}

/* Garbage on the control socket: refused or disconnected, never a crash,
 * and other guests are served as before. */
static void test_control_socket_garbage(void **state)
{
	struct loop_fx *f = *state;
	struct xvmsg_loop_hello hello = { htole32(99), htole32(64) };
	struct xvmsg_loop_attach at = { .mode = htole32(0) };
	char junk[3] = { 1, 2, 3 };
	int fd;

	fd = raw_connect(f->b.sock);
	/* Anything before HELLO is refused. */
	assert_int_equal(raw_call(fd, XVMSG_LOOP_OP_ATTACH, sizeof(at), &at, sizeof(at)), -EPROTO);
	/* Wrong version, and HELLO without its grant table fd. */
	assert_int_equal(raw_call(fd, XVMSG_LOOP_OP_HELLO, sizeof(hello), &hello, sizeof(hello)),
			 -EINVAL);
	hello.version = htole32(XVMSG_LOOP_VERSION);
	assert_int_equal(raw_call(fd, XVMSG_LOOP_OP_HELLO, sizeof(hello), &hello, sizeof(hello)),
			 -EINVAL);
	/* Unknown op before HELLO. */
	assert_int_equal(raw_call(fd, 12345, 0, NULL, 0), -EPROTO);
	/* A length field that lies: the connection is dropped. */
	assert_int_equal(raw_call(fd, XVMSG_LOOP_OP_WRITE, 500, "x", 1), 1);
	close(fd);

	/* A packet shorter than a header: dropped too. */
	fd = raw_connect(f->b.sock);
	assert_int_equal(send(fd, junk, sizeof(junk), MSG_NOSIGNAL), (ssize_t)sizeof(junk));
	assert_int_equal(recv(fd, junk, sizeof(junk), 0), 0);
	close(fd);

	/* Everyone else is still served. */
	open_blk(f, XVD_MODE_POOL);
	still_serving(f);
}

/* Send a packet carrying one fd; return the reply's status (1: hung up). */
static int raw_call_fd(int fd, uint32_t op, const void *p, size_t len, int memfd)
{
	struct xvmsg_loop_hdr h = { htole32(op), htole32((uint32_t)len), htole32(8), 0 };
	char buf[XVMSG_LOOP_MAX_PACKET];

	assert_true(sizeof(h) + len <= sizeof(buf));
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), p, len);
	if (xt_send_fds(fd, buf, sizeof(h) + len, &memfd, 1, 0) < 0)
		return 1;
	return raw_reply(fd, op);
}

static int memfd_of(size_t size, bool seal)
{
	int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (seal)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	return fd;
}

/* Memory the guest could shrink under the backend's mappings (SIGBUS in
 * the backend, every guest's service gone) is refused: the grant table and
 * every region must come sealed against shrinking. */
static void test_unsealed_memory_refused(void **state)
{
	struct loop_fx *f = *state;
	struct xvmsg_loop_hello hello = { htole32(XVMSG_LOOP_VERSION), htole32(64) };
	struct xvmsg_loop_region reg = { htole64(0x1000), htole64(4) };
	int fd = raw_connect(f->b.sock), m;

	m = memfd_of(64 * sizeof(struct xvmsg_loop_gnt), false);
	assert_int_equal(raw_call_fd(fd, XVMSG_LOOP_OP_HELLO, &hello, sizeof(hello), m), -EINVAL);
	close(m);
	m = memfd_of(64 * sizeof(struct xvmsg_loop_gnt), true);
	assert_int_equal(raw_call_fd(fd, XVMSG_LOOP_OP_HELLO, &hello, sizeof(hello), m), 0);
	close(m);
	m = memfd_of(4 * 4096, false);
	assert_int_equal(raw_call_fd(fd, XVMSG_LOOP_OP_REGION, &reg, sizeof(reg), m), -EINVAL);
	close(m);
	m = memfd_of(4 * 4096, true);
	assert_int_equal(raw_call_fd(fd, XVMSG_LOOP_OP_REGION, &reg, sizeof(reg), m), 0);
	close(m);
	close(fd);
	open_blk(f, XVD_MODE_POOL);
	still_serving(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pool_refuses_outside_addresses, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_grant_refuses_ungranted, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_other_device_unaffected, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_control_socket_garbage, setup, loop_fx_teardown),
		cmocka_unit_test_setup_teardown(test_unsealed_memory_refused, setup, loop_fx_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("loop-hostile", tests, NULL, NULL);
}
