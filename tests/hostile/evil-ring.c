// SPDX-License-Identifier: MIT
/*
 * Malicious-driver cases: placeholder, filled in next.
 *
 * Copyright (c) 2026 The xvmsg authors
 */
#include "evil.h"

static int case_nothing_ring(struct evil_env *e, char *observed, size_t len)
{
	evil_say(observed, len, "did nothing");
	return 0;
}

const struct evil_case evil_ring_cases[] = {
	{ "nothing-ring", "the witness is served", case_nothing_ring, 0 },
	{ 0 }
};
