// SPDX-License-Identifier: MIT
/*
 * Integration: backend crashes under sustained writes.  xvmsg-blkcrash
 * (tests/hostile/xvmsg-blkcrash.c) writes self-describing blocks with many
 * requests in flight and a FLUSH every few writes, journalling what each
 * completed flush covered; meanwhile the backend is killed with SIGKILL at
 * random moments and restarted, and the writer reconnects each time.  Then
 * the verifier proves, from the image file and again through a new
 * backend, that every write acknowledged before a completed flush is there
 * (or was overwritten by a later write to the same block).  A second case
 * damages an image on purpose and checks that the verifier notices a lost,
 * a corrupt and a misplaced block, so the first one can fail.  A third
 * kills the backend at one chosen moment, while the writer opens its first
 * device (HELLO answered, ATTACH not), played by a stand-in backend.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <xvmsg/loop.h>

#include "loop-fixture.h"

#define KILLS		6
#define IMG_SIZE	(16u << 20)

struct fx {
	struct loop_fx lf;	/* lf.img: the disk */
	char journal[160], wout[160], vout[160];
	pid_t writer;		/* a running xvmsg-blkcrash write, killed by teardown */
};

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int setup(void **state)
{
	static const struct loop_fx_opts o = { .disk_bytes = IMG_SIZE };
	struct fx *f;

	if (loop_fx_setup(state, sizeof(*f), &o))
		return -1;
	f = *state;
	snprintf(f->journal, sizeof(f->journal), "%s/journal", f->lf.b.dir);
	snprintf(f->wout, sizeof(f->wout), "%s/writer.out", f->lf.b.dir);
	snprintf(f->vout, sizeof(f->vout), "%s/verify.out", f->lf.b.dir);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f && f->writer > 0) {	/* a failed test left it running */
		kill(f->writer, SIGKILL);
		waitpid(f->writer, NULL, 0);
	}
	return loop_fx_teardown(state);
}

/* Start XVMSG_BIN/xvmsg-blkcrash with args (NULL-ended), output to out. */
static pid_t spawn_tool(const char *out, ...)
{
	const char *bin = getenv("XVMSG_BIN");
	char path[512];
	char *argv[32];
	int argc = 0, fd;
	va_list ap;
	pid_t pid, parent = getpid();

	snprintf(path, sizeof(path), "%s/xvmsg-blkcrash", bin ? bin : "build/bin");
	argv[argc++] = path;
	va_start(ap, out);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	pid = fork();
	if (pid == 0) {
		/* Dies with the test, like the backend (backend-proc.c). */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(126);
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execv(path, argv);
		_exit(127);
	}
	return pid;
}

/* waitpid, bounded; SIGKILL after limit_ms.  The exit status, or -1. */
static int wait_tool(pid_t pid, long long limit_ms)
{
	long long end = now_ms() + limit_ms;
	int status;

	while (now_ms() < end) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (r < 0)
			return -1;
		sleep_ms(20);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

static void dump(const char *path)
{
	char line[512];
	FILE *fp = fopen(path, "r");

	if (!fp)
		return;
	while (fgets(line, sizeof(line), fp))
		fprintf(stderr, "  | %s", line);
	fclose(fp);
}

/* The number after key in the file's last line containing key; -1 if none. */
static long long find_count(const char *path, const char *key)
{
	char line[1024];
	long long v = -1;
	FILE *fp = fopen(path, "r");

	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp)) {
		const char *k = strstr(line, key);

		if (!k)
			continue;
		/* key is "N word": scan back from it to the number before */
		while (k > line && k[-1] == ' ')
			k--;
		while (k > line && k[-1] >= '0' && k[-1] <= '9')
			k--;
		v = strtoll(k, NULL, 10);
	}
	fclose(fp);
	return v;
}

/* Flushes the writer journalled: its complete "D" lines (the header
 * line, written before it connects, is none). */
static long long journal_flushes(const char *path)
{
	char line[256];
	long long n = 0;
	bool start = true;
	FILE *fp = fopen(path, "r");

	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp)) {
		size_t len = strlen(line);

		if (start && line[0] == 'D' && line[len - 1] == '\n')
			n++;
		start = line[len - 1] == '\n';	/* a long line comes in pieces */
	}
	fclose(fp);
	return n;
}

/*
 * Wait (bounded) until the writer is connected to backend instance i and
 * has journalled a flush through it: it said "reconnected" i times (the
 * first instance needs no such line), and a flush was journalled after
 * that, which can only have gone through instance i (writer_lost forgets
 * everything in flight).  Neither the journal's header, written before the
 * writer first connects, nor a flush of the instance before counts.
 * The milliseconds it took, or -1.
 */
static long long wait_flush_through(struct fx *f, int i, long long limit_ms)
{
	long long t0 = now_ms(), flushes = -1;

	while (now_ms() - t0 < limit_ms) {
		if (flushes < 0 && file_count_lines(f->wout, "xvmsg-blkcrash: reconnected (") >= i)
			flushes = journal_flushes(f->journal);
		if (flushes >= 0 && journal_flushes(f->journal) > flushes)
			return now_ms() - t0;
		sleep_ms(10);
	}
	return -1;
}

static long long run_verify(struct fx *f, bool image)
{
	pid_t pid;
	int rc;

	if (image)
		pid = spawn_tool(f->vout, "verify", "--image", f->lf.img, "--journal", f->journal,
				 "--no-torn", NULL);
	else
		pid = spawn_tool(f->vout, "verify", "--socket", f->lf.b.sock, "--export", "disk0",
				 "--journal", f->journal, "--no-torn", NULL);
	assert_true(pid > 0);
	rc = wait_tool(pid, 20000);
	dump(f->vout);
	if (rc != 0)
		return -1;
	return find_count(f->vout, "acknowledged writes verified");
}

/* Kill -9 and restart the backend KILLS times at random moments under
 * sustained writes; every flushed write must be on the image. */
static void test_kill_under_writes(void **state)
{
	struct fx *f = *state;
	unsigned int seed = (unsigned int)time(NULL) ^ (unsigned int)getpid();
	char wseed[32];
	long long t0 = now_ms(), reconnects, durable, from_image, from_dev;
	pid_t w;
	int i, rc;

	fprintf(stderr, "random seed %u\n", seed);
	snprintf(wseed, sizeof(wseed), "%u", seed);
	w = spawn_tool(f->wout, "write", "--socket", f->lf.b.sock, "--export", "disk0",
		       "--journal", f->journal, "--seconds", "60", "--depth", "32",
		       "--flush-every", "16", "--blocks", "1024", "--seed", wseed, NULL);
	f->writer = w;
	assert_true(w > 0);
	for (i = 0; i <= KILLS; i++) {
		/* The writer is connected to this instance and has flushed
		 * through it (after the last kill: it carries on over the last
		 * instance). */
		long long ms = wait_flush_through(f, i, 10000);

		if (ms < 0) {
			dump(f->wout);
			backend_dump_log(&f->lf.b);
			fail_msg("backend instance %d: the writer flushed nothing through it in 10 s",
				 i);
		}
		fprintf(stderr, "backend instance %d: the writer flushed through it after %lld ms\n",
			i, ms);
		if (i == KILLS)
			break;
		sleep_ms(rand_r(&seed) % 400);	/* a random moment, mid-stream */
		assert_true(WIFSIGNALED(backend_stop(&f->lf.b, SIGKILL)));
		sleep_ms(rand_r(&seed) % 100);	/* the writer sees a dead backend */
		assert_int_equal(backend_restart(&f->lf.b), 0);
	}
	assert_int_equal(kill(w, SIGTERM), 0);
	rc = wait_tool(w, 15000);
	f->writer = 0;
	dump(f->wout);
	assert_int_equal(rc, 0);
	reconnects = find_count(f->wout, "reconnects");
	durable = find_count(f->wout, "flushed (journalled)");
	assert_true(reconnects >= KILLS);
	assert_true(durable > 0);

	from_image = run_verify(f, true);
	assert_true(from_image > 0);
	assert_int_equal(from_image, durable);
	from_dev = run_verify(f, false);
	assert_int_equal(from_dev, from_image);
	fprintf(stderr, "%d kills, %lld reconnects, %lld acknowledged+flushed writes verified, "
		"%lld ms\n", KILLS, reconnects, from_image, now_ms() - t0);
}

/* The backend dies while the writer opens its device (--fault
 * vanish-handshake: it exits between mapping the message page and
 * Connected), after the writer's domain was opened on it: the writer must
 * start over with a new domain on the next backend, not retry on the dead
 * one for ever (it did). */
static void test_writer_after_vanished_open(void **state)
{
	struct fx *f = *state;
	char exp[256];
	const char *bad[] = { "--export", exp, "--fault", "vanish-handshake", NULL };
	const char *good[] = { "--export", exp, NULL };
	long long t0;
	pid_t w;
	int st;

	snprintf(exp, sizeof(exp), "disk0:blk:path=%s", f->lf.img);
	assert_int_equal(backend_stop(&f->lf.b, SIGTERM), 0);
	assert_int_equal(backend_startv(&f->lf.b, bad), 0);
	w = spawn_tool(f->wout, "write", "--socket", f->lf.b.sock, "--export", "disk0",
		       "--journal", f->journal, "--seconds", "30", "--depth", "8",
		       "--flush-every", "4", "--blocks", "256", NULL);
	f->writer = w;
	assert_true(w > 0);
	for (t0 = now_ms(); !backend_log_count(&f->lf.b, "fault vanish-handshake") &&
			    now_ms() - t0 < 10000; )
		sleep_ms(10);
	st = backend_stop(&f->lf.b, SIGKILL);
	assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 3);
	assert_int_equal(backend_startv(&f->lf.b, good), 0);
	/* Its first connection is to this backend: a flush through it. */
	if (wait_flush_through(f, 0, 10000) < 0) {
		dump(f->wout);
		fail_msg("the writer made no progress on the next backend in 10 s");
	}
	assert_int_equal(kill(w, SIGTERM), 0);
	assert_int_equal(wait_tool(w, 15000), 0);
	f->writer = 0;
}

/* One packet from a stand-in backend's connection, within limit_ms, its
 * descriptors closed: the op (seq in *seq), or -1. */
static int fake_recv(int fd, uint32_t *seq, int limit_ms)
{
	uint8_t buf[XVMSG_LOOP_MAX_PACKET];
	union { struct cmsghdr c; char b[CMSG_SPACE(sizeof(int) * XVMSG_LOOP_MAX_FDS)]; } u;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = u.b, .msg_controllen = sizeof(u.b) };
	struct pollfd pfd = { fd, POLLIN, 0 };
	struct xvmsg_loop_hdr h;
	ssize_t n;

	if (poll(&pfd, 1, limit_ms) != 1)
		return -1;
	n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	for (struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int rfd;

				memcpy(&rfd, CMSG_DATA(c) + i * sizeof(int), sizeof(rfd));
				close(rfd);
			}
	if (n < (ssize_t)sizeof(h))
		return -1;
	memcpy(&h, buf, sizeof(h));
	*seq = le32toh(h.seq);
	return (int)le32toh(h.op);
}

/* The backend dies while the writer opens its first device: HELLO was
 * answered, the ATTACH never is.  A stand-in backend on the socket plays
 * that moment, then the real one starts there again; the writer must
 * connect to it and write.  (test_kill_under_writes reaches this moment
 * only by chance.) */
static void test_kill_during_open(void **state)
{
	struct fx *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct xvmsg_loop_hdr h = {
		htole32(XVMSG_LOOP_OP_HELLO | XVMSG_LOOP_REPLY),
		htole32(sizeof(struct xvmsg_loop_hello_reply)), 0, 0,
	};
	struct xvmsg_loop_hello_reply rep = {
		htole32(XVMSG_LOOP_VERSION), htole16(2), htole16(XVMSG_LOOP_BACKEND_DOMID),
	};
	struct iovec iov[2] = { { &h, sizeof(h) }, { &rep, sizeof(rep) } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
	struct pollfd pfd;
	uint32_t seq = 0;
	int lsock, c, rc;
	pid_t w;

	assert_int_equal(backend_stop(&f->lf.b, SIGTERM), 0);
	lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(lsock >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->lf.b.sock);
	unlink(sa.sun_path);
	assert_int_equal(bind(lsock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lsock, 4), 0);

	w = spawn_tool(f->wout, "write", "--socket", f->lf.b.sock, "--export", "disk0",
		       "--journal", f->journal, "--seconds", "60", "--blocks", "256",
		       "--seed", "7", NULL);
	f->writer = w;
	assert_true(w > 0);
	pfd = (struct pollfd){ lsock, POLLIN, 0 };
	assert_int_equal(poll(&pfd, 1, 20000), 1);
	c = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
	assert_true(c >= 0);
	assert_int_equal(fake_recv(c, &seq, 10000), XVMSG_LOOP_OP_HELLO);
	h.seq = htole32(seq);
	assert_int_equal(sendmsg(c, &msg, MSG_NOSIGNAL), (ssize_t)(sizeof(h) + sizeof(rep)));
	assert_int_equal(fake_recv(c, &seq, 10000), XVMSG_LOOP_OP_ATTACH);
	close(c);		/* killed now: the ATTACH has no answer */
	close(lsock);
	assert_int_equal(backend_restart(&f->lf.b), 0);

	/* Retries come every 50 ms; 10 s is for a loaded machine. */
	if (wait_flush_through(f, 0, 10000) < 0) {
		dump(f->wout);
		backend_dump_log(&f->lf.b);
		fail_msg("the writer never wrote through the restarted backend");
	}
	assert_int_equal(kill(w, SIGTERM), 0);
	rc = wait_tool(w, 15000);
	f->writer = 0;
	dump(f->wout);
	assert_int_equal(rc, 0);
	assert_true(run_verify(f, true) > 0);
}

/* pread/pwrite 512 bytes of the image at byte offset off. */
static void img_io(struct fx *f, off_t off, void *buf, bool write)
{
	int fd = open(f->lf.img, O_RDWR | O_CLOEXEC);

	assert_true(fd >= 0);
	if (write)
		assert_int_equal(pwrite(fd, buf, 512, off), 512);
	else
		assert_int_equal(pread(fd, buf, 512, off), 512);
	close(fd);
}

/* The verifier can fail: a lost, a corrupt and a misplaced sector each
 * make it fail, with a reason. */
static void test_verifier_detects_damage(void **state)
{
	struct fx *f = *state;
	uint8_t good[512], other[512], bad[512];
	char vlog[1024] = "";
	pid_t w;
	FILE *fp;

	w = spawn_tool(f->wout, "write", "--socket", f->lf.b.sock, "--export", "disk0",
		       "--journal", f->journal, "--seconds", "1", "--blocks", "64", "--seed", "9",
		       NULL);
	assert_true(w > 0);
	assert_int_equal(wait_tool(w, 15000), 0);	/* reaps it, or kills it after 15 s */
	assert_int_equal(backend_stop(&f->lf.b, SIGTERM), 0);
	assert_true(run_verify(f, true) > 0);

	/* Block 3, sector 2 back to zeroes: a flushed write lost. */
	img_io(f, 3 * 4096 + 2 * 512, good, false);
	memset(bad, 0, sizeof(bad));
	img_io(f, 3 * 4096 + 2 * 512, bad, true);
	assert_int_equal(run_verify(f, true), -1);
	assert_true(find_count(f->vout, "blocks lost a flushed write") == 1);
	img_io(f, 3 * 4096 + 2 * 512, good, true);
	assert_true(run_verify(f, true) > 0);

	/* One bit flipped: corrupt. */
	memcpy(bad, good, sizeof(bad));
	bad[100] ^= 0x10;
	img_io(f, 3 * 4096 + 2 * 512, bad, true);
	assert_int_equal(run_verify(f, true), -1);
	assert_true(find_count(f->vout, "corrupt or misplaced") == 1);

	/* Block 5's sector 2 at block 3: misplaced. */
	img_io(f, 5 * 4096 + 2 * 512, other, false);
	img_io(f, 3 * 4096 + 2 * 512, other, true);
	assert_int_equal(run_verify(f, true), -1);
	fp = fopen(f->vout, "r");
	assert_non_null(fp);
	assert_true(fread(vlog, 1, sizeof(vlog) - 1, fp) > 0);
	fclose(fp);
	assert_non_null(strstr(vlog, "block 3 sector 2: corrupt or misplaced"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kill_under_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verifier_detects_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_after_vanished_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_during_open, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
