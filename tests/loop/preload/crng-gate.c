// SPDX-License-Identifier: MIT
/*
 * LD_PRELOAD shim for the loop tests: getrandom(2) as a kernel whose random
 * pool is not initialised yet, for as long as the file named by
 * XVMSG_TEST_CRNG_GATE exists.  Meanwhile GRND_NONBLOCK
 * calls fail with EAGAIN and the others wait, as the kernel's do before
 * crng init; once the file is gone every call goes to the kernel.  A young
 * Xen domain (a driver domain under emulation) is in that state for a
 * minute or more.  Used by tests/loop/test-loop-rng-wait.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int gate_closed(void)
{
	const char *gate = getenv("XVMSG_TEST_CRNG_GATE");

	return gate && *gate && access(gate, F_OK) == 0;
}

ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	while (gate_closed()) {
		if (flags & GRND_NONBLOCK) {
			errno = EAGAIN;
			return -1;
		}
		nanosleep(&ts, NULL);
	}
	return syscall(SYS_getrandom, buf, len, flags);
}
