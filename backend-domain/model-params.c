/* SPDX-License-Identifier: MIT */
/*
 * A model's parameters (device.h): the items parsed by xvmsg_params_parse
 * (include/xvmsg/params.h), and the one wording of every refusal, so that
 * each model's param callback only says what it accepts; and the start of
 * every model's create(), which ends in that parse.  A base: calls
 * nothing of the backend but the log.
 */
#include <errno.h>
#include <stdio.h>

#include "device.h"

struct model_params {
	int (*fn)(void *arg, const char *key, const char *val);
	void *arg;
	bool refused;		/* fn refused an item (and logged why) */
};

static int one_item(void *arg, const char *key, const char *val)
{
	struct model_params *p = arg;
	int err = p->fn(p->arg, key, val);

	if (err)
		p->refused = true;
	return err;
}

int xvb_model_params(const struct xvb_log *log, const char *name, const char *params,
		     int (*fn)(void *arg, const char *key, const char *val), void *arg)
{
	struct model_params p = { .fn = fn, .arg = arg };
	int err = xvmsg_params_parse(params, one_item, &p);

	if (err == -EINVAL && !p.refused)
		xvb_err(log, "%s: malformed parameters '%s'", name, params);
	return err;
}

int xvb_model_start(struct xvb_model_base *m, const struct xvb_model_env *env, const char *type,
		    const char *params, int (*fn)(void *arg, const char *key, const char *val),
		    void *arg)
{
	m->log = env->log;
	m->loop = env->loop;
	snprintf(m->name, sizeof(m->name), "%s", env->name ? env->name : type);
	return xvb_model_params(m->log, m->name, params, fn, arg);
}

int xvb_param_bad(const struct xvb_model_base *m, const char *key, const char *hint)
{
	xvb_model_err(m, "bad value for parameter '%s'%s", key, hint ? hint : "");
	return -EINVAL;
}

int xvb_param_unknown(const struct xvb_model_base *m, const char *key, const char *hint)
{
	xvb_model_err(m, "unknown parameter '%s'%s", key, hint ? hint : "");
	return -EINVAL;
}
