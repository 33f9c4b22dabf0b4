/* SPDX-License-Identifier: MIT */
/*
 * vmpull.c - process_vm_readv/writev with the target pinned by a pidfd.
 *
 * What the kernel does (probed on 6.18; tests/test_vmpull.c asserts the
 * first and third, and logs what it sees of the second):
 *  - A range that runs into an unmapped page gives a short count, up to
 *    the page; the next call, at that page, gives EFAULT.
 *  - A target that is a zombie or reaped gives ESRCH. But a call already
 *    copying holds the target's mm: SIGKILL during a 256 MiB pull does not
 *    stop it, and it returns the full count after the process is dead.
 *    Only the pidfd, checked afterwards, tells.
 *  - Another uid, or a non-dumpable target, gives EPERM (the kernel turns
 *    ptrace's EACCES into EPERM; we map both, in case).
 *  - One call moves at most MAX_RW_COUNT (2 GiB - 4 KiB) and says so with
 *    a short count. We move ZB_VMPULL_CHUNK at a time instead: 4 MiB and
 *    more per call copy at the same rate, and a dead target stops a long
 *    copy within one chunk.
 */
#include "vmpull.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util.h"

int zb_pidfd_open(pid_t pid)
{
	long fd;

	if (pid <= 0)
		return -EINVAL; /* 0 and -1 would not name one process */
	fd = syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? -errno : (int)fd;
}

int zb_pidfd_alive(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	int r;

	if (pidfd < 0)
		return -EBADF; /* poll() would skip it: "running" */
	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (p.revents & POLLNVAL)
		return -EBADF;
	return (p.revents & (POLLIN | POLLHUP)) ? 0 : 1;
}

int zb_pidfd_pid(int pidfd, pid_t *pid)
{
	char path[64], buf[1024];
	const char *line;
	_zb_cleanup_close_ int fd = -1;
	ssize_t n;
	long v;
	char *end;

	if (pidfd < 0 || fcntl(pidfd, F_GETFD) < 0)
		return -EBADF;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	/* Only a pidfd's fdinfo has a "Pid:" line (kernel/pid.c). */
	line = strncmp(buf, "Pid:", 4) == 0 ? buf : strstr(buf, "\nPid:");
	if (!line)
		return -EINVAL;
	line += line == buf ? 4 : 5;
	errno = 0;
	v = strtol(line, &end, 10);
	if (errno || end == line || (*end != '\n' && *end != '\0'))
		return -EINVAL;
	/* -1: reaped; 0: outside our pid namespace. */
	if (v <= 0)
		return -ESRCH;
	if (v > INT_MAX)
		return -EINVAL;
	*pid = (pid_t)v;
	return 0;
}

/* -EINVAL unless [addr, addr + len) fits the address space and the
 * count fits the return type. */
static int check_range(uint64_t addr, size_t len)
{
	if (len > SSIZE_MAX)
		return -EINVAL;
	if (len && addr > UINT64_MAX - (len - 1))
		return -EINVAL;
#if UINTPTR_MAX < UINT64_MAX
	if (len && addr + (len - 1) > UINTPTR_MAX)
		return -EINVAL;
#endif
	return 0;
}

/* One system call: bytes moved, or -errno with EACCES as EPERM. */
static ssize_t vm_call(pid_t pid, uint64_t addr, void *local, size_t len,
		       int write)
{
	struct iovec l = { .iov_base = local, .iov_len = len };
	struct iovec r = { .iov_base = (void *)(uintptr_t)addr,
			   .iov_len = len };
	ssize_t n;

	do
		n = write ? process_vm_writev(pid, &l, 1, &r, 1, 0)
			  : process_vm_readv(pid, &l, 1, &r, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EACCES ? -EPERM : -errno;
	return n;
}

/*
 * The copy loop of both directions. Invariant: a result of @len is
 * returned only when the process of @pidfd was running after the last
 * call, hence @pid was its pid during every call. A dead process turns
 * any outcome into -ESRCH: the kernel's error (or success) may have
 * come from whatever process holds the pid by then.
 */
static ssize_t vm_copy(int pidfd, pid_t pid, uint64_t addr, void *local,
		       size_t len, int write)
{
	size_t done = 0;
	int r;

	r = check_range(addr, len);
	if (r < 0)
		return r;
	/* A write cannot be taken back: check before it, too. */
	if (write) {
		r = zb_pidfd_alive(pidfd);
		if (r <= 0)
			return r ? r : -ESRCH;
	}
	do {
		size_t want = len - done;
		ssize_t n = 0;

		if (want > ZB_VMPULL_CHUNK)
			want = ZB_VMPULL_CHUNK;
		if (want)
			n = vm_call(pid, addr + done, (char *)local + done,
				    want, write);
		r = zb_pidfd_alive(pidfd);
		if (r <= 0)
			return r ? r : -ESRCH;
		if (n < 0)
			return n;
		/* A short count stops at an unmapped page; no progress
		 * at all would loop forever: treat it as the fault it is. */
		if (n == 0 && want)
			return -EFAULT;
		done += (size_t)n;
	} while (done < len);
	return (ssize_t)len;
}

ssize_t zb_vmpull_read(int pidfd, pid_t pid, uint64_t remote_addr, void *dst,
		       size_t len)
{
	return vm_copy(pidfd, pid, remote_addr, dst, len, 0);
}

ssize_t zb_vmpull_write(int pidfd, pid_t pid, uint64_t remote_addr,
			const void *src, size_t len)
{
	return vm_copy(pidfd, pid, remote_addr, (void *)src, len, 1);
}
