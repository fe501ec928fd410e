/* SPDX-License-Identifier: MIT */
/*
 * Model parameters: "key=value,key,key2=value2".  Keys are [a-z0-9_-]+, a
 * value is anything but ','.  An empty or NULL string has no items; an empty
 * item, an empty or malformed key, or an item over 255 bytes is -EINVAL.
 * The whole string is checked before fn sees any item.
 */
#include <errno.h>
#include <string.h>

#include "device.h"

#define XVB_PARAM_ITEM_MAX 255

static int key_ok(const char *k)
{
	if (!*k)
		return 0;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') ||
		      *k == '_' || *k == '-'))
			return 0;
	return 1;
}

static int parse(const char *p, int (*fn)(void *arg, const char *key, const char *value),
		 void *arg)
{
	char item[XVB_PARAM_ITEM_MAX + 1];

	if (!p || !*p)
		return 0;
	for (;;) {
		size_t len = strcspn(p, ",");
		char *eq;
		int ret;

		if (len == 0 || len > XVB_PARAM_ITEM_MAX)
			return -EINVAL;
		memcpy(item, p, len);
		item[len] = '\0';
		eq = strchr(item, '=');
		if (eq)
			*eq = '\0';
		if (!key_ok(item))
			return -EINVAL;
		ret = fn ? fn(arg, item, eq ? eq + 1 : NULL) : 0;
		if (ret)
			return ret;
		if (!p[len])
			return 0;
		p += len + 1;	/* past the ',': a trailing ',' is an empty item */
	}
}

int xvb_params_parse(const char *params,
		     int (*fn)(void *arg, const char *key, const char *value), void *arg)
{
	int ret = parse(params, NULL, NULL);

	return ret ? ret : parse(params, fn, arg);
}
