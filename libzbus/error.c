/* SPDX-License-Identifier: MIT */
/*
 * error.c - readable messages for the library's return codes.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "zbus/zbus.h"

ZBUS_EXPORT const char *zbus_strerror(int err)
{
	/* INT_MIN has no positive twin: no errno is that large anyway. */
	if (err == INT_MIN)
		return "unknown error";
	switch (err < 0 ? -err : err) {
	case 0:
		return "success";
	case EAGAIN:
		return "try again: ring full or empty";
	case ETIMEDOUT:
		return "timed out waiting for the channel";
	case EBADMSG:
		return "corrupt channel segment or message descriptor";
	case EPROTO:
		return "incompatible channel layout version or feature";
	case EPERM:
		return "operation not permitted (a channel memfd must be "
		       "sealed against shrinking and growing)";
	case EMSGSIZE:
		return "message larger than the channel's maximum or the "
		       "buffer";
	case ENOSPC:
		return "no free subscriber slot in the channel";
	case ESTALE:
		return "lossy subscriber overrun: payload overwritten while "
		       "held";
	case EBUSY:
		return "busy: the channel has an exclusive publisher (or the "
		       "claim is being rewritten by a peer)";
	case EINVAL:
		return "invalid argument (or the fd is not a channel memfd)";
	default:
		return strerror(err < 0 ? -err : err);
	}
}
