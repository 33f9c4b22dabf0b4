/* SPDX-License-Identifier: MIT */
/*
 * fdpass.h - one record over a SOCK_SEQPACKET Unix socket, with at most one
 * file descriptor riding along (SCM_RIGHTS).
 */
#ifndef ZB_FDPASS_H
#define ZB_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/* Largest control record either side sends or accepts. */
#define ZB_CTL_MAX_RECORD (64 * 1024)

/*
 * zb_fdpass_send() - send @len bytes as one record, with @fd if >= 0
 * (duplicated by the kernel; the caller keeps @fd). Never blocks:
 * -EAGAIN means the peer is not reading.
 * Return: 0; -errno (-EPIPE when the peer is gone).
 */
int zb_fdpass_send(int sock, const void *buf, size_t len, int fd);

/*
 * zb_fdpass_recv() - receive one record into @buf (@cap bytes).
 * @fd_out: NULL to refuse fds (any that arrive are closed), else receives
 *          the first fd (CLOEXEC) or -1; surplus fds are closed.
 * Return: record length; 0 when the peer closed; -EMSGSIZE for a record
 * larger than @cap or a truncated control message (fds closed); -errno.
 */
ssize_t zb_fdpass_recv(int sock, void *buf, size_t cap, int *fd_out);

#endif /* ZB_FDPASS_H */
