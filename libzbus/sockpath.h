/* SPDX-License-Identifier: MIT */
/*
 * sockpath.h - where the broker listens.
 */
#ifndef ZB_SOCKPATH_H
#define ZB_SOCKPATH_H

#include <stddef.h>

/*
 * zb_socket_path() - the broker's socket: @explicit if not NULL, else
 * $ZBUS_SOCKET, else $XDG_RUNTIME_DIR/zbus/zbusd.sock, else
 * /run/zbus/zbusd.sock.
 * Return: 0; -ENAMETOOLONG if it does not fit a sockaddr_un (or @len).
 */
int zb_socket_path(const char *explicit_path, char *buf, size_t len);

#endif /* ZB_SOCKPATH_H */
