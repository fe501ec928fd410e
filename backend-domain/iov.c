/* SPDX-License-Identifier: MIT */
/* Copying between flat buffers and iovec arrays, starting `skip` bytes in. */
#include <stdbool.h>
#include <string.h>

#include "device.h"

/* Walk iov from byte skip for at most len bytes; each piece is copied into
 * the iovec (to_iov) or out of it into buf.  Returns the bytes copied. */
static size_t iov_copy(const struct iovec *iov, unsigned int n, size_t skip, char *buf,
		       size_t len, bool to_iov)
{
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < n && done < len; i++) {
		size_t chunk;
		char *base;

		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		chunk = iov[i].iov_len - skip;
		if (chunk > len - done)
			chunk = len - done;
		base = (char *)iov[i].iov_base + skip;
		if (to_iov)
			memcpy(base, buf + done, chunk);
		else
			memcpy(buf + done, base, chunk);
		done += chunk;
		skip = 0;
	}
	return done;
}

size_t xvb_iov_to_buf(const struct iovec *iov, unsigned int n, size_t skip, void *buf, size_t len)
{
	return iov_copy(iov, n, skip, buf, len, false);
}

size_t xvb_buf_to_iov(const struct iovec *iov, unsigned int n, size_t skip, const void *buf, size_t len)
{
	return iov_copy(iov, n, skip, (char *)buf, len, true);
}
