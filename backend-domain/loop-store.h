/* SPDX-License-Identifier: MIT */
/*
 * The loopback bus's xenstore (loop-store.c): a tree of nodes named by
 * absolute paths ("/local/domain/2/device/xvmsg/1/state"), each with an
 * optional value.  Lookups go through a hash of full paths, a directory
 * lists its own children, removing a directory removes what is below it.
 *
 * Every node written on behalf of a guest is charged to that guest's
 * account (keys and bytes of path and value), against its quota, and the
 * account can take all of them away at once when the guest goes.  Nodes
 * the backend or the loopback toolstack write belong to no account.
 *
 * Not thread-safe; nothing blocks.  Functions returning int return 0 or a
 * negative errno.
 */
#ifndef XVB_LOOP_STORE_H
#define XVB_LOOP_STORE_H

#include <stddef.h>

#define LS_MAX_PATH	255	/* bytes of a path, without the NUL */

struct ls_node;
struct ls_store;

/* What one guest has written.  Zeroed by its owner before the first use;
 * store private apart from reading keys and bytes. */
struct ls_account {
	unsigned int keys;		/* nodes with a value it wrote */
	size_t bytes;			/* their paths and values */
	struct ls_node *nodes;		/* those nodes */
};

struct ls_limits {
	unsigned int keys;		/* per account */
	size_t bytes;			/* per account */
	unsigned int total;		/* values in the whole store */
};

/* Called for each value a removal takes away (path of the node). */
typedef void (*ls_removed_fn)(void *arg, const char *path);

int ls_create(const struct ls_limits *lim, struct ls_store **out);
void ls_destroy(struct ls_store *s);

/* The value at path, or NULL when path has none (absent, or a directory
 * only).  Valid until the next change of the store. */
const char *ls_read(const struct ls_store *s, const char *path);
/*
 * Set path to val, creating the directories above it.  acct: the guest it
 * is written for (a new node is charged to it, a value it owns is
 * re-charged), or NULL for the backend and the toolstack.  -EINVAL: not an
 * absolute path of non-empty components; -EDQUOT: over acct's quota;
 * -ENOSPC: the store holds its limit of values; -ENOMEM.  On error
 * nothing changed.
 */
int ls_write(struct ls_store *s, const char *path, const char *val, struct ls_account *acct);
/* Remove path and everything below it; fn (if not NULL) hears of every
 * value removed.  -ENOENT when path does not exist. */
int ls_rm(struct ls_store *s, const char *path, ls_removed_fn fn, void *arg);
/* Call fn for each child name of path, until it returns non-zero (that is
 * returned).  -ENOENT when path does not exist.  fn must not change the
 * store. */
int ls_dir(const struct ls_store *s, const char *path, int (*fn)(void *arg, const char *child),
	   void *arg);
/* Remove every value acct owns (and directories left empty); fn as for
 * ls_rm.  Returns how many. */
unsigned int ls_rm_account(struct ls_store *s, struct ls_account *acct, ls_removed_fn fn,
			   void *arg);
/* Values in the store. */
unsigned int ls_count(const struct ls_store *s);

#endif /* XVB_LOOP_STORE_H */
