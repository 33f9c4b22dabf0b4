/* SPDX-License-Identifier: MIT */
/*
 * tp_tcp.c - zbus-bench's "tcp" transport: one TCP connection over
 * loopback per link, used as the unix socketpair is (struct flink and the
 * fd_* ops of tp_fd.c): blocking reads and writes of the whole
 * payload, the unused end closed after fork() so that a dead peer reads
 * as EOF or EPIPE.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

/*
 * tcp_connect_pair() - connect @fd[1] to the listener @lfd (bound to
 * @addr) and accept the other end into @fd[0]. On loopback connect()
 * completes the handshake on its own, before anyone accepts, so one
 * process can make both ends.
 */
static int tcp_connect_pair(int lfd, const struct sockaddr_in *addr,
			    int fd[2])
{
	int one = 1;

	fd[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd[1] < 0)
		return bench_fail(-errno, "tcp: socket");
	if (connect(fd[1], (const struct sockaddr *)addr, sizeof(*addr)) < 0)
		return bench_fail(-errno, "tcp: connect(127.0.0.1:%u)",
				  ntohs(addr->sin_port));
	fd[0] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd[0] < 0)
		return bench_fail(-errno, "tcp: accept4");
	/*
	 * Nagle would hold a small message back until the previous one is
	 * acknowledged; only the sending end writes data, so only it needs
	 * this.
	 */
	if (setsockopt(fd[1], IPPROTO_TCP, TCP_NODELAY, &one,
		       sizeof(one)) < 0)
		return bench_fail(-errno, "tcp: setsockopt(TCP_NODELAY)");
	return 0;
}

/*
 * Before fork(): a listener on an ephemeral port of 127.0.0.1, one
 * connection to it (@fd[1] writes, @fd[0] reads), then the listener is
 * closed so that nothing else can connect. Both ends stay in l->f for
 * fd_close() even on failure.
 */
static int tcp_create(struct link *l)
{
	struct sockaddr_in addr;
	socklen_t alen = sizeof(addr);
	int lfd, ret;

	l->f.fd[0] = l->f.fd[1] = -1;
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return bench_fail(-errno, "tcp: socket");

	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = 0;		/* the kernel picks a free port */
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		ret = bench_fail(-errno, "tcp: bind(127.0.0.1:0)");
	else if (listen(lfd, 1) < 0)
		ret = bench_fail(-errno, "tcp: listen");
	else if (getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0)
		ret = bench_fail(-errno, "tcp: getsockname");
	else
		ret = tcp_connect_pair(lfd, &addr, l->f.fd);
	close(lfd);
	return ret;
}

const struct transport tp_tcp = {
	.name = "tcp", .copies = true,
	.create = tcp_create, .open = fd_open,
	.send = fd_send, .recv = fd_recv, .close = fd_close,
};
