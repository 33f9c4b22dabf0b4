/* SPDX-License-Identifier: MIT */
/*
 * vmpull.h - copy bytes out of (or into) another process's address space
 * with process_vm_readv/writev, the target pinned by a pidfd: the
 * primitive under "publish by reference".
 *
 * process_vm_readv() names its target by pid, and a pid is only a number:
 * once the process is reaped the number can go to a new process, which
 * would then be read silently. A pidfd names the process itself. A pid
 * stays with its process until the process is reaped, so if the pidfd's
 * process has not even exited when a copy ends, the pid named that process
 * for the whole copy. Every copy here checks that afterwards, and reports
 * -ESRCH otherwise, whatever the kernel copied.
 *
 * The pair (@pidfd, @pid) must name one process: @pidfd from
 * zb_pidfd_open(@pid), or checked once with zb_pidfd_pid() when it came
 * from elsewhere (SO_PEERPIDFD beside SO_PEERCRED). The copies do not
 * check this on every call (it takes a /proc read).
 */
#ifndef ZB_VMPULL_H
#define ZB_VMPULL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Largest piece moved by one system call. Between pieces the target is
 * checked again, so that a dead target stops a long copy early. It costs
 * nothing measurable: one poll() per 64 MiB.
 */
#define ZB_VMPULL_CHUNK (64u << 20)

/*
 * zb_pidfd_open() - a pidfd for process @pid (CLOEXEC, as every pidfd).
 * Return: the fd, owned by the caller; -EINVAL (@pid <= 0, or not a
 * thread-group leader); -ESRCH (no such process); -EMFILE; -errno.
 * Thread-safe.
 */
int zb_pidfd_open(pid_t pid);

/*
 * zb_pidfd_alive() - whether the process of @pidfd is still running: a
 * pidfd polls readable once its process has exited (zombie or reaped).
 * Never blocks.
 * Return: 1 running; 0 exited; -EBADF (@pidfd not open); -errno. For an
 * fd that is not a pidfd the answer is meaningless: check it once with
 * zb_pidfd_pid(). Thread-safe.
 */
int zb_pidfd_alive(int pidfd);

/*
 * zb_pidfd_pid() - the pid of the process of @pidfd, in our pid namespace
 * (the "Pid:" line of /proc/self/fdinfo/@pidfd). Meant for setup, to
 * check that a pid and a pidfd received separately name one process.
 * @pid: receives the pid on success.
 * Return: 0; -EBADF (@pidfd not open); -EINVAL (not a pidfd); -ESRCH (the
 * process is reaped, or has no pid in our namespace); -errno (/proc not
 * readable). Thread-safe.
 */
int zb_pidfd_pid(int pidfd, pid_t *pid);

/*
 * zb_vmpull_read() - copy @len bytes at @remote_addr of process @pid into
 * @dst: all of them, or fail.
 * @pidfd: pins the process; see the top of this file for the pair.
 * @dst: @len writable bytes of ours; its content is unspecified after a
 *       failure (some bytes may have been copied).
 *
 * Return: @len (0 for @len 0); on failure, and never a part:
 *  -ESRCH   the process of @pidfd has exited by the end of the copy (even
 *           if every byte arrived: a dead target cannot be told from a
 *           recycled pid), or is gone
 *  -EFAULT  part of the remote range is not mapped readable (or @dst is
 *           not writable)
 *  -EPERM   no right to read it: another uid, or a target that is not
 *           dumpable (setuid without exec), and we lack CAP_SYS_PTRACE
 *  -EINVAL  @remote_addr + @len overflows 64 bits or the address space,
 *           or @len > SSIZE_MAX
 *  -EBADF   @pidfd is not open
 *  -ENOMEM, -errno
 * Thread-safe; blocks only for the copy, in pieces of ZB_VMPULL_CHUNK.
 */
ssize_t zb_vmpull_read(int pidfd, pid_t pid, uint64_t remote_addr, void *dst,
		       size_t len);

/*
 * zb_vmpull_write() - copy @len bytes of @src to @remote_addr of process
 * @pid: all of them, or fail. For the broker to fill a consumer's
 * registered receive buffer.
 *
 * A write cannot be taken back, so the process is checked before each
 * piece as well as after the last. What remains is the time between a
 * check and the system call: for a wrong process to be written, the
 * target must exit and be reaped, and the kernel must give its pid out
 * again (it hands pids out in turn, up to pid_max) inside that window,
 * to a process we may write and that maps @remote_addr writable.
 *
 * Return: @len; on failure -ESRCH, -EFAULT (not mapped writable: a
 * read-only page is -EFAULT too), -EPERM, -EINVAL, -EBADF, -ENOMEM or
 * -errno, as zb_vmpull_read(); then some bytes may have been written.
 * Thread-safe; blocks only for the copy.
 */
ssize_t zb_vmpull_write(int pidfd, pid_t pid, uint64_t remote_addr,
			const void *src, size_t len);

#endif /* ZB_VMPULL_H */
