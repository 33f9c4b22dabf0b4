/* SPDX-License-Identifier: MIT */
/*
 * fdpass.h - one record over a SOCK_SEQPACKET Unix socket, with at most two
 * file descriptors riding along (SCM_RIGHTS): a channel's memfd pair.
 */
#ifndef ZB_FDPASS_H
#define ZB_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/* Largest control record either side sends or accepts. */
#define ZB_CTL_MAX_RECORD (64 * 1024)

/* File descriptors that ride along one record (in order). */
#define ZB_FDPASS_MAX 2
struct zb_fds {
	unsigned n;
	int fd[ZB_FDPASS_MAX]; /* fd[i] for i < n; -1 beyond */
};

/* Close every fd of @f and empty it. */
void zb_fds_close(struct zb_fds *f);

/*
 * zb_fdpass_send() - send @len bytes as one record, with the fds of @fds
 * if not NULL (duplicated by the kernel; the caller keeps them). Never
 * blocks: -EAGAIN means the peer is not reading.
 * Return: 0; -errno (-EPIPE when the peer is gone).
 */
int zb_fdpass_send(int sock, const void *buf, size_t len,
		   const struct zb_fds *fds);

/*
 * zb_fdpass_recv() - receive one record into @buf (@cap bytes).
 * @fds_out: NULL to refuse fds (any that arrive are closed), else receives
 *           the first ZB_FDPASS_MAX fds (CLOEXEC); surplus fds are closed.
 * Return: record length; 0 when the peer closed; -EMSGSIZE for a record
 * larger than @cap or a truncated control message (fds closed); -errno.
 */
ssize_t zb_fdpass_recv(int sock, void *buf, size_t cap,
		       struct zb_fds *fds_out);

#endif /* ZB_FDPASS_H */
