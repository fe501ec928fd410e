// SPDX-License-Identifier: MIT
/*
 * The backend's registries: the device models main() lists, and which
 * device (and queue) each bound event-channel port belongs to.  A base for
 * backend.c and conn.c: it calls nobody, so a request can be followed top
 * down (backend.c -> conn.c -> registry.c) without back and forth.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

const struct xvb_model_ops *xvb_model_find(const struct xvb_model_ops *const *models,
					   const char *type)
{
	for (; *models; models++)
		if (strcmp((*models)->type, type) == 0)
			return *models;
	return NULL;
}

int xvb_port_register(struct xvb_backend *be, uint32_t port, struct xvb_conn *c, int q)
{
	if (port >= 1u << 20)
		return -ERANGE;
	if (port >= be->nports) {
		uint32_t n = port + 64;
		struct xvb_port_slot *p = realloc(be->ports, n * sizeof(*p));

		if (!p)
			return -ENOMEM;
		memset(p + be->nports, 0, (n - be->nports) * sizeof(*p));
		be->ports = p;
		be->nports = n;
	}
	if (be->ports[port].conn)
		return -EBUSY;
	be->ports[port].conn = c;
	be->ports[port].q = q;
	return 0;
}

void xvb_port_unregister(struct xvb_backend *be, uint32_t port)
{
	if (port < be->nports)
		be->ports[port].conn = NULL;
}

struct xvb_conn *xvb_port_lookup(const struct xvb_backend *be, uint32_t port, int *q)
{
	if (port >= be->nports || !be->ports[port].conn)
		return NULL;
	*q = be->ports[port].q;
	return be->ports[port].conn;
}

void xvb_ports_free(struct xvb_backend *be)
{
	free(be->ports);
	be->ports = NULL;
	be->nports = 0;
}
