/* SPDX-License-Identifier: MIT */
/*
 * sockpath.c - where the broker listens, the same rule for every program.
 */
#include "sockpath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/un.h>

int zb_socket_path(const char *explicit_path, char *buf, size_t len)
{
	const char *env = getenv("ZBUS_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
	int n;

	if (len < max)
		max = len;
	if (explicit_path && *explicit_path)
		n = snprintf(buf, len, "%s", explicit_path);
	else if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if (xdg && *xdg)
		n = snprintf(buf, len, "%s/zbus/zbusd.sock", xdg);
	else
		n = snprintf(buf, len, "/run/zbus/zbusd.sock");
	return n < 0 || (size_t)n >= max ? -ENAMETOOLONG : 0;
}
