/* SPDX-License-Identifier: MIT */
/*
 * Run xvmsg-backend as a separate process for integration tests: a private
 * temp dir holds its socket, images and log.  XVMSG_BIN names the directory
 * of the programs (set by the Makefile).
 */
#ifndef XVMSG_TEST_BACKEND_PROC_H
#define XVMSG_TEST_BACKEND_PROC_H

#include <stddef.h>
#include <sys/types.h>

struct backend_proc {
	char dir[64];		/* temp dir, removed by backend_cleanup */
	char sock[100];
	char log[128];
	pid_t pid;
	char *argv[32];		/* kept for restarts */
	int argc;
};

/* Make the temp dir.  0 or -errno. */
int backend_setup(struct backend_proc *b);
/* Create DIR/name of size bytes (sparse); path written to out. */
int backend_image(struct backend_proc *b, const char *name, size_t size, char *out, size_t len);
/* Start xvmsg-backend with --socket and the given extra args (NULL-ended);
 * waits (bounded) until the socket accepts connections.  0 or -errno. */
int backend_start(struct backend_proc *b, const char *arg, ...);
/* Start again with the same arguments. */
int backend_restart(struct backend_proc *b);
/* Send sig and wait for exit (bounded, then SIGKILL); returns the exit
 * status as from waitpid, or -errno. */
int backend_stop(struct backend_proc *b, int sig);
/* Stop if running, remove the temp dir. */
void backend_cleanup(struct backend_proc *b);
/* Print the backend's log to stderr (for failing tests). */
void backend_dump_log(const struct backend_proc *b);
/* Count of lines in the backend's log containing needle. */
int backend_log_count(const struct backend_proc *b, const char *needle);

#endif
