/* SPDX-License-Identifier: MIT */
/*
 * A device's parameters, the toolstack's xenstore key `params`
 * (docs/protocol.md): "key=value,key,key2=value2".  Keys are [a-z0-9_-]+,
 * a value is anything but ','.  An empty or NULL string has no items; an
 * empty item, an empty or malformed key, or an item over 255 bytes is
 * -EINVAL.  Userspace only: xvmsg-ctl checks what it writes with the same
 * parser the backend's device models read it with.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#ifndef XVMSG_PARAMS_H
#define XVMSG_PARAMS_H

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define XVMSG_PARAM_ITEM_MAX 255

static inline int xvmsg_param_key_ok(const char *k)
{
	if (!*k)
		return 0;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') ||
		      *k == '_' || *k == '-'))
			return 0;
	return 1;
}

/* A boolean value: on/yes/1/true or off/no/0/false; a key without a value
 * (v NULL) means on.  0, or -EINVAL (*out untouched). */
static inline int xvmsg_param_bool(const char *v, bool *out)
{
	if (!v || !strcmp(v, "on") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "true"))
		*out = true;
	else if (!strcmp(v, "off") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* One pass over params: calls fn (when set) for each item. */
static inline int xvmsg_params_walk(const char *p,
				    int (*fn)(void *arg, const char *key, const char *value),
				    void *arg)
{
	char item[XVMSG_PARAM_ITEM_MAX + 1];

	if (!p || !*p)
		return 0;
	for (;;) {
		size_t len = strcspn(p, ",");
		char *eq;
		int ret;

		if (len == 0 || len > XVMSG_PARAM_ITEM_MAX)
			return -EINVAL;
		memcpy(item, p, len);
		item[len] = '\0';
		eq = strchr(item, '=');
		if (eq)
			*eq = '\0';
		if (!xvmsg_param_key_ok(item))
			return -EINVAL;
		ret = fn ? fn(arg, item, eq ? eq + 1 : NULL) : 0;
		if (ret)
			return ret;
		if (!p[len])
			return 0;
		p += len + 1;	/* past the ',': a trailing ',' is an empty item */
	}
}

/*
 * Parse params, calling fn for each item (value NULL for a bare key).  The
 * whole string is checked before fn sees any item.  Returns fn's first
 * non-zero value, 0, or -EINVAL on syntax.  fn may be NULL (check only).
 */
static inline int xvmsg_params_parse(const char *params,
				     int (*fn)(void *arg, const char *key, const char *value),
				     void *arg)
{
	int ret = xvmsg_params_walk(params, NULL, NULL);

	return ret ? ret : xvmsg_params_walk(params, fn, arg);
}

#endif /* XVMSG_PARAMS_H */
