/* SPDX-License-Identifier: MIT */
/*
 * Run xvmsg-backend as a separate process for integration tests: a private
 * temp dir holds its socket, images and log.  XVMSG_BIN names the directory
 * of the programs (set by the Makefile).
 */
#ifndef XVMSG_TEST_BACKEND_PROC_H
#define XVMSG_TEST_BACKEND_PROC_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/*
 * cmocka does not run a test's teardown when its setup fails, so a setup
 * must not assert once backend_setup/backend_start ran: the backend and the
 * temp dir would outlive the test.  SETUP_TRY(expr) runs one fallible step
 * (0 on success, nonzero on failure), prints the failed step and jumps to
 * the setup's `fail:` label, which cleans up (backend_cleanup) and returns
 * -1.  The backend also dies with the test process (PR_SET_PDEATHSIG), so a
 * crashed test binary cannot leave it running either.
 */
#define SETUP_TRY(expr)								\
	do {									\
		long setup_try_rc_ = (long)(expr);				\
		if (setup_try_rc_ != 0) {					\
			fprintf(stderr, "%s:%d: setup step failed (%ld): %s\n",	\
				__FILE__, __LINE__, setup_try_rc_, #expr);	\
			goto fail;						\
		}								\
	} while (0)

struct backend_proc {
	char dir[64];		/* temp dir, removed by backend_cleanup */
	char sock[100];
	char log[128];
	pid_t pid;
	char *argv[32];		/* kept for restarts */
	int argc;
};

/* Make the temp dir.  0 or -errno (then b->dir is empty, cleanup is a no-op). */
int backend_setup(struct backend_proc *b);
/* Create DIR/name of size bytes (sparse); path written to out. */
int backend_image(struct backend_proc *b, const char *name, size_t size, char *out, size_t len);
/* Start xvmsg-backend with --socket and the given extra args (NULL-ended);
 * waits (bounded) until the socket accepts connections.  0 or -errno.  The
 * backend gets SIGKILL when the calling thread exits (PR_SET_PDEATHSIG), so
 * start it from the test's main thread. */
int backend_start(struct backend_proc *b, const char *arg, ...);
/* The same with the extra args in a NULL-ended array. */
int backend_startv(struct backend_proc *b, const char *const *args);
/* Start again with the same arguments. */
int backend_restart(struct backend_proc *b);
/* Send sig and wait for exit (bounded, then SIGKILL); returns the exit
 * status as from waitpid, or -errno. */
int backend_stop(struct backend_proc *b, int sig);
/* Stop if running, remove the temp dir.  Safe on a zeroed struct, after a
 * failed backend_setup, and twice. */
void backend_cleanup(struct backend_proc *b);
/* Print the backend's log to stderr (for failing tests). */
void backend_dump_log(const struct backend_proc *b);
/* Count of lines in the backend's log containing needle. */
/* Lines of the file at path that contain needle (0 if it cannot be read). */
int file_count_lines(const char *path, const char *needle);
int backend_log_count(const struct backend_proc *b, const char *needle);
/* One counter of device dev (e.g. "blk1(dom2)"): SIGUSR1 makes the backend
 * print its counters to the log (docs/backend.md); key=N of dev's newest
 * line.  -1 when the backend or the counter is not there. */
long backend_stat(const struct backend_proc *b, const char *dev, const char *key);

/*
 * CPU ns the threads of process pid ran in the next ms milliseconds
 * (/proc/PID/task/TID/schedstat, thread by thread: one that exits
 * meanwhile, an io_uring worker timing out, does not make a sum go
 * backwards).  When that is at least report_ns, each thread that ran is
 * listed on stderr under what.  ULLONG_MAX when the process is not there.
 */
unsigned long long proc_cpu_over(pid_t pid, unsigned int ms, unsigned long long report_ns,
				 const char *what);

#endif
