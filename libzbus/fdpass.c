/* SPDX-License-Identifier: MIT */
/*
 * fdpass.c - records and file descriptors over Unix sockets.
 *
 * The kernel's traps (FIELD-NOTES): a control buffer too small, or a
 * receiver at its fd limit, gives MSG_CTRUNC and drops fds; every fd that
 * arrives is already installed in our table, so each one we do not keep
 * must be closed, or a peer could exhaust our fds by sending them unasked.
 */
#include "fdpass.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Room for more fds than we ever accept, so that surplus ones arrive
 * (and get closed) instead of truncating the control message. */
#define MAX_FDS_SEEN 16

void zb_fds_close(struct zb_fds *f)
{
	for (unsigned i = 0; i < ZB_FDPASS_MAX; i++) {
		if (i < f->n && f->fd[i] >= 0)
			close(f->fd[i]);
		f->fd[i] = -1;
	}
	f->n = 0;
}

int zb_fdpass_send(int sock, const void *buf, size_t len,
		   const struct zb_fds *fds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(ZB_FDPASS_MAX * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fds && fds->n > ZB_FDPASS_MAX)
		return -EINVAL;
	if (fds && fds->n) {
		size_t bytes = fds->n * sizeof(int);
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(bytes);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(bytes);
		memcpy(CMSG_DATA(c), fds->fd, bytes);
	}
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

ssize_t zb_fdpass_recv(int sock, void *buf, size_t cap,
		       struct zb_fds *fds_out)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(MAX_FDS_SEEN * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	struct zb_fds kept = { .n = 0, .fd = { -1, -1 } };
	ssize_t n;

	if (fds_out)
		*fds_out = kept;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c;
	     c = CMSG_NXTHDR(&msg, c)) {
		size_t nfd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (fds_out && kept.n < ZB_FDPASS_MAX)
				kept.fd[kept.n++] = fd;
			else
				close(fd); /* unasked or surplus */
		}
	}
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		zb_fds_close(&kept);
		return -EMSGSIZE;
	}
	if (fds_out)
		*fds_out = kept;
	return n;
}
