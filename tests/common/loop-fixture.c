// SPDX-License-Identifier: MIT
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop-fixture.h"

int loop_fx_start(struct loop_fx *f, const struct loop_fx_opts *o)
{
	char exp[320], also[320];
	const char *argv[22];
	unsigned int n = 0;

	if (!f->b.dir[0])
		SETUP_TRY(backend_setup(&f->b));
	if (o->disk_bytes) {
		SETUP_TRY(backend_image(&f->b, "disk.img", o->disk_bytes, f->img, sizeof(f->img)));
		snprintf(exp, sizeof(exp), "disk0:blk:path=%s%s%s", f->img,
			 o->disk_params ? "," : "", o->disk_params ? o->disk_params : "");
		argv[n++] = "--export";
		argv[n++] = exp;
		if (o->disk_also) {
			const char *colon = strchr(o->disk_also, ':');
			int nl = colon ? (int)(colon - o->disk_also) : (int)strlen(o->disk_also);

			snprintf(also, sizeof(also), "%.*s:blk:path=%s%s%s", nl, o->disk_also,
				 f->img, colon ? "," : "", colon ? colon + 1 : "");
			argv[n++] = "--export";
			argv[n++] = also;
		}
	}
	for (unsigned int i = 0; i < 16 && o->args[i]; i++)
		argv[n++] = o->args[i];
	argv[n] = NULL;
	SETUP_TRY(backend_startv(&f->b, argv));
	if (o->open_domain)
		SETUP_TRY(loop_fx_domain(f, o->domain, &f->d));
	return 0;
fail:
	backend_dump_log(&f->b);
	return -1;
}

int loop_fx_domain(struct loop_fx *f, struct xvd_domain_opts o, struct xvd_domain **out)
{
	o.socket_path = f->b.sock;
	return xvd_domain_open_loop(&o, out);
}

void loop_fx_stop(struct loop_fx *f)
{
	if (f->dev)
		xvd_dev_close(f->dev);
	f->dev = NULL;
	if (f->d)
		xvd_domain_close(f->d);
	f->d = NULL;
	backend_cleanup(&f->b);
}

int loop_fx_setup(void **state, size_t size, const struct loop_fx_opts *o)
{
	struct loop_fx *f = calloc(1, size);

	*state = f;
	if (!f)
		return -1;
	if (loop_fx_start(f, o)) {
		loop_fx_teardown(state);
		return -1;
	}
	return 0;
}

int loop_fx_teardown(void **state)
{
	struct loop_fx *f = *state;

	if (!f)
		return 0;
	loop_fx_stop(f);
	free(f);
	*state = NULL;
	return 0;
}
