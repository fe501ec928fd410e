// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "backend-proc.h"

int backend_setup(struct backend_proc *b)
{
	memset(b, 0, sizeof(*b));
	strcpy(b->dir, "/tmp/xvmsg-test-XXXXXX");
	if (!mkdtemp(b->dir)) {
		int e = errno;

		b->dir[0] = '\0';
		return -e;
	}
	snprintf(b->sock, sizeof(b->sock), "%.60s/loop.sock", b->dir);
	snprintf(b->log, sizeof(b->log), "%s/backend.log", b->dir);
	return 0;
}

int backend_image(struct backend_proc *b, const char *name, size_t size, char *out, size_t len)
{
	int fd;

	snprintf(out, len, "%s/%s", b->dir, name);
	fd = open(out, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size)) {
		close(fd);
		return -errno;
	}
	close(fd);
	return 0;
}

static int can_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return 0;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return rc;
}

static int spawn(struct backend_proc *b)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	pid_t parent = getpid();
	int i, status;

	unlink(b->sock);
	b->pid = fork();
	if (b->pid < 0) {
		int e = errno;

		b->pid = 0;
		return -e;
	}
	if (b->pid == 0) {
		int fd;

		/* Die with the test: a crashed or killed test binary must not
		 * leave a backend behind.  Kept across execv; checked after
		 * setting it in case the parent died in between. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(126);
		fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		execv(b->argv[0], b->argv);
		_exit(127);
	}
	for (i = 0; i < 1000; i++) {	/* 10 s */
		if (can_connect(b->sock))
			return 0;
		if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
			b->pid = 0;
			return -ECHILD;
		}
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

int backend_startv(struct backend_proc *b, const char *const *args)
{
	const char *bin = getenv("XVMSG_BIN");
	char path[256];

	snprintf(path, sizeof(path), "%s/xvmsg-backend", bin ? bin : "build/bin");
	while (b->argc)		/* a second start with other arguments */
		free(b->argv[--b->argc]);
	b->argv[b->argc++] = strdup(path);
	b->argv[b->argc++] = strdup("--socket");
	b->argv[b->argc++] = strdup(b->sock);
	for (; *args && b->argc < 31; args++)
		b->argv[b->argc++] = strdup(*args);
	b->argv[b->argc] = NULL;
	return spawn(b);
}

int backend_start(struct backend_proc *b, const char *arg, ...)
{
	const char *args[29];
	unsigned int n = 0;
	va_list ap;

	va_start(ap, arg);
	for (; arg && n < 28; arg = va_arg(ap, const char *))
		args[n++] = arg;
	va_end(ap);
	args[n] = NULL;
	return backend_startv(b, args);
}

int backend_restart(struct backend_proc *b)
{
	return spawn(b);
}

int backend_stop(struct backend_proc *b, int sig)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int i, status;

	if (b->pid <= 0)
		return -ECHILD;
	kill(b->pid, sig);
	for (i = 0; i < 2000; i++) {	/* 20 s */
		if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
			b->pid = 0;
			return status;
		}
		nanosleep(&ts, NULL);
	}
	kill(b->pid, SIGKILL);
	waitpid(b->pid, &status, 0);
	b->pid = 0;
	return -ETIMEDOUT;
}

void backend_cleanup(struct backend_proc *b)
{
	char cmd[128];
	int i;

	if (b->pid > 0)
		backend_stop(b, SIGKILL);
	for (i = 0; i < b->argc; i++)
		free(b->argv[i]);
	b->argc = 0;
	if (b->dir[0] && !getenv("XVMSG_KEEP_TMP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", b->dir);
	}
	b->dir[0] = '\0';
}

void backend_dump_log(const struct backend_proc *b)
{
	char line[512];
	FILE *f = fopen(b->log, "r");

	if (!f)
		return;
	fprintf(stderr, "---- backend log ----\n");
	while (fgets(line, sizeof(line), f))
		fputs(line, stderr);
	fprintf(stderr, "---------------------\n");
	fclose(f);
}

int file_count_lines(const char *path, const char *needle)
{
	char line[1024];
	FILE *f = fopen(path, "r");
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

int backend_log_count(const struct backend_proc *b, const char *needle)
{
	return file_count_lines(b->log, needle);
}

long backend_stat(const struct backend_proc *b, const char *dev, const char *key)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	char prefix[96], pat[64], line[1024], last[1024] = "";
	const char *v;
	int before, i;
	FILE *f;

	snprintf(prefix, sizeof(prefix), "%s mode=", dev);
	snprintf(pat, sizeof(pat), " %s=", key);
	before = backend_log_count(b, prefix);
	if (b->pid <= 0 || kill(b->pid, SIGUSR1))
		return -1;
	for (i = 0; i < 300 && backend_log_count(b, prefix) <= before; i++)	/* 3 s */
		nanosleep(&ts, NULL);
	f = fopen(b->log, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, prefix, strlen(prefix)) == 0)
			memcpy(last, line, sizeof(last));
	fclose(f);
	v = strstr(last, pat);
	return v ? strtol(v + strlen(pat), NULL, 10) : -1;
}

#define PROC_CPU_TASKS 64
struct proc_cpu {
	unsigned int n;
	struct {
		int tid;
		unsigned long long ns;
		char comm[20];
	} t[PROC_CPU_TASKS];
};

static int proc_cpu_sample(pid_t pid, struct proc_cpu *s)
{
	char path[96];
	struct dirent *de;
	DIR *dir;

	s->n = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((de = readdir(dir)) && s->n < PROC_CPU_TASKS) {
		FILE *fp;
		int ok;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat", (int)pid, de->d_name);
		fp = fopen(path, "r");
		if (!fp)
			continue;	/* exited meanwhile */
		ok = fscanf(fp, "%llu", &s->t[s->n].ns) == 1;
		fclose(fp);
		if (!ok)
			continue;
		s->t[s->n].tid = atoi(de->d_name);
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/comm", (int)pid, de->d_name);
		fp = fopen(path, "r");
		if (!fp || !fgets(s->t[s->n].comm, sizeof(s->t[s->n].comm), fp))
			strcpy(s->t[s->n].comm, "?");
		if (fp)
			fclose(fp);
		s->t[s->n].comm[strcspn(s->t[s->n].comm, "\n")] = '\0';
		s->n++;
	}
	closedir(dir);
	return 0;
}

static unsigned long long proc_cpu_ran(const struct proc_cpu *a, const struct proc_cpu *b,
				       FILE *out)
{
	unsigned long long sum = 0;

	for (unsigned int i = 0; i < b->n; i++) {
		unsigned long long was = 0;

		for (unsigned int j = 0; j < a->n; j++)
			if (a->t[j].tid == b->t[i].tid)
				was = a->t[j].ns;
		if (b->t[i].ns <= was)
			continue;
		sum += b->t[i].ns - was;
		if (out)
			fprintf(out, "  thread %d (%s) ran %llu us\n", b->t[i].tid, b->t[i].comm,
				(b->t[i].ns - was) / 1000);
	}
	return sum;
}

unsigned long long proc_cpu_over(pid_t pid, unsigned int ms, unsigned long long report_ns,
				 const char *what)
{
	static struct proc_cpu a, b;	/* 2 KiB each: off the stack */
	unsigned long long ran;

	if (proc_cpu_sample(pid, &a))
		return ULLONG_MAX;
	usleep(ms * 1000);
	if (proc_cpu_sample(pid, &b))
		return ULLONG_MAX;
	ran = proc_cpu_ran(&a, &b, NULL);
	if (ran >= report_ns) {
		fprintf(stderr, "%s: ran %llu us in %u ms:\n", what, ran / 1000, ms);
		proc_cpu_ran(&a, &b, stderr);
	}
	return ran;
}
