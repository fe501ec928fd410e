// SPDX-License-Identifier: MIT
/*
 * The loopback bus's store as the bus shows it (the tree itself is
 * loop-store.c): every change queued for the watches above it, delivered
 * by the bus's dispatch, and every write to a guest's backend dirs
 * mirrored to that guest over its socket, as xenstored does with watches.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop-priv.h"

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static void wake(struct loop_bus *lb)
{
	uint64_t one = 1;

	if (write(lb->wake, &one, sizeof(one)) < 0) {
		/* counter full: already awake */
	}
}

void loop_watch_queue(struct loop_bus *lb, const char *path)
{
	size_t i;

	for (i = 0; i < lb->nwatch; i++) {
		if (!under(path, lb->watch[i]))
			continue;
		if (lb->npend && strcmp(lb->pend[lb->npend - 1], path) == 0)
			return;
		if (lb->npend == lb->cappend) {
			size_t cap = lb->cappend ? 2 * lb->cappend : 64;
			char **p = realloc(lb->pend, cap * sizeof(*p));

			if (!p)
				return;
			lb->pend = p;
			lb->cappend = cap;
		}
		lb->pend[lb->npend] = strdup(path);
		if (lb->pend[lb->npend])
			lb->npend++;
		wake(lb);
		return;
	}
}

/* Writes to a driver's backend dirs are mirrored to that driver. */
static void forward(struct loop_bus *lb, const char *path, const char *val)
{
	char prefix[64], buf[600];
	const char *end;
	uint32_t fe;
	struct loop_client *c;
	size_t pl, vl;
	int n;

	n = snprintf(prefix, sizeof(prefix), "/local/domain/%u/backend/%s/",
		     XVMSG_LOOP_BACKEND_DOMID, XVMSG_XS_CLASS);
	if (strncmp(path, prefix, (size_t)n) || loop_parse_id(path + n, &end, 0xffff, &fe) ||
	    *end != '/')
		return;
	c = loop_client_find(lb, fe);
	pl = strlen(path) + 1;
	vl = val ? strlen(val) + 1 : 0;
	if (!c || pl + vl > sizeof(buf))
		return;
	memcpy(buf, path, pl);
	if (val)
		memcpy(buf + pl, val, vl);
	loop_send(c, XVMSG_LOOP_OP_STORE_EVENT, 0, 0, buf, pl + vl, -1);
}

/* A value the store took away: watchers and the guest hear of it. */
void loop_st_removed(void *arg, const char *path)
{
	struct loop_bus *lb = arg;

	loop_watch_queue(lb, path);
	forward(lb, path, NULL);
}

/* Set a key for acct's guest (NULL: the backend or our toolstack part). */
int loop_st_set(struct loop_bus *lb, const char *path, const char *val, struct ls_account *acct)
{
	int rc = ls_write(lb->store, path, val, acct);

	if (rc)
		return rc;
	loop_watch_queue(lb, path);
	forward(lb, path, val);
	return 0;
}

int loop_st_rm(struct loop_bus *lb, const char *path)
{
	return ls_rm(lb->store, path, loop_st_removed, lb);
}

int loop_store_watch(struct xvb_bus *b, const char *path)
{
	struct loop_bus *lb = LB(b);
	char **w = realloc(lb->watch, (lb->nwatch + 1) * sizeof(*w));

	if (!w)
		return -ENOMEM;
	lb->watch = w;
	w[lb->nwatch] = strdup(path);
	if (!w[lb->nwatch])
		return -ENOMEM;
	lb->nwatch++;
	loop_watch_queue(lb, path);		/* like xenstore: fires once when set */
	return 0;
}

int loop_store_unwatch(struct xvb_bus *b, const char *path)
{
	struct loop_bus *lb = LB(b);
	size_t i;

	for (i = 0; i < lb->nwatch; i++) {
		if (strcmp(lb->watch[i], path) == 0) {
			free(lb->watch[i]);
			lb->watch[i] = lb->watch[--lb->nwatch];
			return 0;
		}
	}
	return -ENOENT;
}

void loop_watch_deliver(struct loop_bus *lb)
{
	size_t i;

	/* Callbacks may queue more; take the batch first. */
	while (lb->npend) {
		char **batch = lb->pend;
		size_t n = lb->npend;

		lb->pend = NULL;
		lb->npend = lb->cappend = 0;
		for (i = 0; i < n; i++) {
			lb->ev.watch(lb->ev.ctx, batch[i]);
			free(batch[i]);
		}
		free(batch);
	}
}
