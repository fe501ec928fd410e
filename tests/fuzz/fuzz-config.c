// SPDX-License-Identifier: MIT
/* Fuzz target: xvmsg-backend's config file parser and the params parser. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "config.h"
#include "core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct xvb_model_ops *const models[] = {
	&xvb_blk_ops, &xvb_rng_ops, &xvb_console_ops, &xvb_net_ops, NULL,
};

static int count(void *arg, const char *key, const char *value)
{
	(*(unsigned int *)arg)++;
	return strlen(key) == 0;	/* the parser never hands out an empty key */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xvb_config cfg;
	char path[64], err[512], *s;
	unsigned int n = 0;
	int fd;

	/* As a config file. */
	fd = memfd_create("fuzz-config", 0);
	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	xvb_config_defaults(&cfg);
	err[0] = '\0';
	if (xvb_config_load(&cfg, path, models, err, sizeof(err)) && !err[0])
		abort();	/* an error always says why */
	if (cfg.nexports > XVB_MAX_EXPORTS)
		abort();
	close(fd);
	/* As device params. */
	s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	if (xvmsg_params_parse(s, count, &n) > 0)
		abort();
	free(s);
	return 0;
}
