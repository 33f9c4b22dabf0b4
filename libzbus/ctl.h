/* SPDX-License-Identifier: MIT */
/*
 * ctl.h - the control protocol's glue (zbus_ctl.proto via protobuf-c),
 * shared by the library and the broker.
 */
#ifndef ZB_CTL_H
#define ZB_CTL_H

#include <stddef.h>

#include "zbus_ctl.pb-c.h"

#define ZB_CTL_VERSION 1       /* protocol major spoken by this build */
#define ZB_CTL_NAME_MAX 255
/* Bytes the broker copies per Pull request: a few ms of its time. */
#define ZB_CTL_MAX_PULL (8u << 20)

/* 1 if @name is a valid channel name: 1..255 printable, no spaces. */
int zb_ctl_name_valid(const char *name);

/*
 * zb_ctl_send() - pack @msg into one record and send it (with @fds if not
 * NULL).
 * Return: 0; -EMSGSIZE when it packs larger than a record; as
 * zb_fdpass_send().
 */
/*
 * zb_ctl_connect() - a SOCK_SEQPACKET connection to the broker at @path
 * (not yet greeted). Return: the socket (CLOEXEC); -errno.
 */
int zb_ctl_connect(const char *path);

struct zb_fds;
int zb_ctl_send(int sock, const ProtobufCMessage *msg,
		const struct zb_fds *fds);

#endif /* ZB_CTL_H */
