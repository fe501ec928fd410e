// SPDX-License-Identifier: MIT
/*
 * The loopback bus's xenstore: a tree of nodes, found by a hash of their
 * full paths (FNV-1a, chained, doubled at load 1).  The root is the node
 * with the empty path; "/a" hangs below it.  A node without a value and
 * without children is removed, so a path exists exactly when a value lies
 * at or below it.  Nodes a guest wrote are linked into its account.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loop-store.h"

struct ls_node {
	struct ls_node *hnext;			/* hash chain */
	struct ls_node *parent, *kids;		/* tree */
	struct ls_node *sprev, *snext;		/* siblings */
	struct ls_account *acct;		/* who wrote the value, NULL: nobody's */
	struct ls_node *aprev, *anext;		/* the account's nodes */
	char *val;				/* NULL: a directory only */
	size_t len;				/* of path */
	char path[];
};

struct ls_store {
	struct ls_limits lim;
	struct ls_node **tab;
	size_t tabsize, nnodes;			/* power of two; nodes hashed */
	unsigned int nvals;
	struct ls_node *root;
};

static uint64_t hash(const char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static struct ls_node *lookup(const struct ls_store *s, const char *p, size_t len)
{
	struct ls_node *n = s->tab[hash(p, len) & (s->tabsize - 1)];

	for (; n; n = n->hnext)
		if (n->len == len && memcmp(n->path, p, len) == 0)
			return n;
	return NULL;
}

static void hash_add(struct ls_store *s, struct ls_node *n)
{
	struct ls_node **b = &s->tab[hash(n->path, n->len) & (s->tabsize - 1)];

	n->hnext = *b;
	*b = n;
	s->nnodes++;
}

static void hash_del(struct ls_store *s, struct ls_node *n)
{
	struct ls_node **p = &s->tab[hash(n->path, n->len) & (s->tabsize - 1)];

	while (*p != n)
		p = &(*p)->hnext;
	*p = n->hnext;
	s->nnodes--;
}

/* Twice the buckets when there are as many nodes as buckets; a failed
 * allocation only leaves the chains longer. */
static void grow(struct ls_store *s)
{
	size_t size = s->tabsize * 2, i;
	struct ls_node **tab, *n, *next;

	if (s->nnodes < s->tabsize || size > ((size_t)1 << 24))
		return;
	tab = calloc(size, sizeof(*tab));
	if (!tab)
		return;
	for (i = 0; i < s->tabsize; i++) {
		for (n = s->tab[i]; n; n = next) {
			next = n->hnext;
			n->hnext = tab[hash(n->path, n->len) & (size - 1)];
			tab[hash(n->path, n->len) & (size - 1)] = n;
		}
	}
	free(s->tab);
	s->tab = tab;
	s->tabsize = size;
}

static struct ls_node *node_new(const char *p, size_t len)
{
	struct ls_node *n = calloc(1, sizeof(*n) + len + 1);

	if (!n)
		return NULL;
	memcpy(n->path, p, len);
	n->len = len;
	return n;
}

int ls_create(const struct ls_limits *lim, struct ls_store **out)
{
	struct ls_store *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->lim = *lim;
	s->tabsize = 256;
	s->tab = calloc(s->tabsize, sizeof(*s->tab));
	s->root = node_new("", 0);
	if (!s->tab || !s->root) {
		free(s->tab);
		free(s->root);
		free(s);
		return -ENOMEM;
	}
	hash_add(s, s->root);
	*out = s;
	return 0;
}

/* An absolute path of non-empty components, not too long. */
static bool valid_path(const char *p, size_t len)
{
	size_t i;

	if (len == 0 || len > LS_MAX_PATH || p[0] != '/' || p[len - 1] == '/')
		return false;
	for (i = 1; i < len; i++)
		if (p[i] == '/' && p[i - 1] == '/')
			return false;
	return true;
}

static void account_add(struct ls_node *n, struct ls_account *a)
{
	n->acct = a;
	n->aprev = NULL;
	n->anext = a->nodes;
	if (a->nodes)
		a->nodes->aprev = n;
	a->nodes = n;
	a->keys++;
	a->bytes += n->len + strlen(n->val);
}

static void account_del(struct ls_node *n)
{
	struct ls_account *a = n->acct;

	if (!a)
		return;
	if (n->aprev)
		n->aprev->anext = n->anext;
	else
		a->nodes = n->anext;
	if (n->anext)
		n->anext->aprev = n->aprev;
	a->keys--;
	a->bytes -= n->len + strlen(n->val);
	n->acct = NULL;
	n->aprev = n->anext = NULL;
}

static void unlink_node(struct ls_store *s, struct ls_node *n)
{
	if (n->sprev)
		n->sprev->snext = n->snext;
	else if (n->parent)
		n->parent->kids = n->snext;
	if (n->snext)
		n->snext->sprev = n->sprev;
	hash_del(s, n);
	free(n->val);
	free(n);
}

/* Drop value-less, childless nodes from n upwards (never the root). */
static void prune(struct ls_store *s, struct ls_node *n)
{
	struct ls_node *up;

	while (n && n != s->root && !n->val && !n->kids) {
		up = n->parent;
		unlink_node(s, n);
		n = up;
	}
}

/* The node of path, made with the directories above it if need be. */
static struct ls_node *get_node(struct ls_store *s, const char *p, size_t len)
{
	struct ls_node *n = lookup(s, p, len), *parent;
	const char *slash;
	size_t plen;

	if (n)
		return n;
	slash = memrchr(p, '/', len);
	plen = slash ? (size_t)(slash - p) : 0;
	parent = plen ? get_node(s, p, plen) : s->root;
	if (!parent)
		return NULL;
	n = node_new(p, len);
	if (!n) {
		prune(s, parent);	/* directories just made for it */
		return NULL;
	}
	n->parent = parent;
	n->snext = parent->kids;
	if (parent->kids)
		parent->kids->sprev = n;
	parent->kids = n;
	hash_add(s, n);
	return n;
}

int ls_write(struct ls_store *s, const char *path, const char *val, struct ls_account *acct)
{
	size_t len = strlen(path), vlen = strlen(val);
	struct ls_node *n = lookup(s, path, len);
	bool had = n && n->val;
	/* A new value is charged to the writer; a changed one stays its
	 * owner's (the toolstack's state key of a device stays nobody's). */
	struct ls_account *charge = had ? n->acct : acct;
	char *v;

	if (!valid_path(path, len))
		return -EINVAL;
	if (charge) {
		unsigned int keys = charge->keys + !had;
		size_t bytes = charge->bytes + len + vlen - (had ? len + strlen(n->val) : 0);

		if (keys > s->lim.keys || bytes > s->lim.bytes)
			return -EDQUOT;
	}
	if (!had && s->nvals >= s->lim.total)
		return -ENOSPC;
	v = strdup(val);
	if (!v)
		return -ENOMEM;
	if (!n)
		n = get_node(s, path, len);
	if (!n) {
		free(v);
		return -ENOMEM;
	}
	if (had) {
		account_del(n);
		free(n->val);
		n->val = v;
		if (charge)
			account_add(n, charge);
	} else {
		n->val = v;
		s->nvals++;
		if (charge)
			account_add(n, charge);
	}
	grow(s);
	return 0;
}

const char *ls_read(const struct ls_store *s, const char *path)
{
	struct ls_node *n = lookup(s, path, strlen(path));

	return n ? n->val : NULL;
}

/* Free n's value (telling fn) and, below it, everything. */
static void rm_tree(struct ls_store *s, struct ls_node *n, ls_removed_fn fn, void *arg)
{
	while (n->kids)
		rm_tree(s, n->kids, fn, arg);
	if (n->val) {
		if (fn)
			fn(arg, n->path);
		account_del(n);
		s->nvals--;
	}
	unlink_node(s, n);
}

int ls_rm(struct ls_store *s, const char *path, ls_removed_fn fn, void *arg)
{
	struct ls_node *n = lookup(s, path, strlen(path)), *up;

	if (!n || n == s->root)
		return -ENOENT;
	up = n->parent;
	rm_tree(s, n, fn, arg);
	prune(s, up);
	return 0;
}

int ls_dir(const struct ls_store *s, const char *path, int (*fn)(void *arg, const char *child),
	   void *arg)
{
	struct ls_node *n = lookup(s, path, strlen(path)), *k;
	int rc;

	if (!n || n == s->root)
		return -ENOENT;
	for (k = n->kids; k; k = k->snext) {
		rc = fn(arg, k->path + n->len + 1);
		if (rc)
			return rc;
	}
	return 0;
}

unsigned int ls_rm_account(struct ls_store *s, struct ls_account *acct, ls_removed_fn fn,
			   void *arg)
{
	unsigned int removed = 0;
	struct ls_node *n;

	while ((n = acct->nodes)) {
		if (fn)
			fn(arg, n->path);
		account_del(n);
		free(n->val);
		n->val = NULL;
		s->nvals--;
		prune(s, n);
		removed++;
	}
	return removed;
}

unsigned int ls_count(const struct ls_store *s)
{
	return s->nvals;
}

void ls_destroy(struct ls_store *s)
{
	size_t i;
	struct ls_node *n, *next;

	if (!s)
		return;
	for (i = 0; i < s->tabsize; i++) {
		for (n = s->tab[i]; n; n = next) {
			next = n->hnext;
			free(n->val);
			free(n);
		}
	}
	free(s->tab);
	free(s);
}
