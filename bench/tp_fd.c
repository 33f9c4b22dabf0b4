/* SPDX-License-Identifier: MIT */
/*
 * tp_fd.c - zbus-bench's transports through a pair of descriptors (struct
 * flink): "unix", an AF_UNIX stream socketpair, and "pipe", a pipe2(); and
 * the fd_* ops they share with tp_tcp.c: blocking writes and reads of the
 * whole payload, the unused end closed after fork().
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

static int unix_create(struct link *l)
{
	l->f.fd[0] = l->f.fd[1] = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, l->f.fd) < 0)
		return bench_fail(-errno, "socketpair");
	return 0;
}

static int pipe_create(struct link *l)
{
	l->f.fd[0] = l->f.fd[1] = -1;
	if (pipe2(l->f.fd, O_CLOEXEC) < 0)
		return bench_fail(-errno, "pipe2");
	return 0;
}

int fd_open(struct link *l, enum role role)
{
	int unused = role == ROLE_TX ? 0 : 1;

	/* Drop the other end: a dead peer reads as EOF or EPIPE, not a hang. */
	close(l->f.fd[unused]);
	l->f.fd[unused] = -1;
	return 0;
}

void fd_close(struct link *l)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (l->f.fd[i] >= 0)
			close(l->f.fd[i]);
		l->f.fd[i] = -1;
	}
}

int fd_send(struct link *l, uint64_t seq)
{
	bench_payload_fill(l->buf, l->size, seq);
	return bench_write_full(l->f.fd[1], l->buf, l->size, l->tp->name);
}

int fd_recv(struct link *l, uint64_t seq)
{
	int ret;

	ret = bench_read_full(l->f.fd[0], l->buf, l->size, l->tp->name);
	if (ret < 0)
		return ret;
	return bench_payload_check(l->buf, l->size, seq);
}

const struct transport tp_unix = {
	.name = "unix", .copies = true,
	.create = unix_create, .open = fd_open,
	.send = fd_send, .recv = fd_recv, .close = fd_close,
};

const struct transport tp_pipe = {
	.name = "pipe", .copies = true,
	.create = pipe_create, .open = fd_open,
	.send = fd_send, .recv = fd_recv, .close = fd_close,
};
