/* SPDX-License-Identifier: MIT */
/*
 * ctl.c - control protocol glue: names and packing.
 */
#include "ctl.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdpass.h"

int zb_ctl_name_valid(const char *name)
{
	size_t n;

	if (!name)
		return 0;
	n = strnlen(name, ZB_CTL_NAME_MAX + 1);
	if (n == 0 || n > ZB_CTL_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] > '~')
			return 0;
	return 1;
}

int zb_ctl_send(int sock, const ProtobufCMessage *msg,
		const struct zb_fds *fds)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf;
	int r;

	if (len > ZB_CTL_MAX_RECORD)
		return -EMSGSIZE;
	buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	protobuf_c_message_pack(msg, buf);
	r = zb_fdpass_send(sock, buf, len, fds);
	free(buf);
	return r;
}

int zb_ctl_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}
