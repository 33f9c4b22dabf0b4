/* SPDX-License-Identifier: MIT */
/*
 * procinfo.h - what /proc says of a process, to tell it from another that
 * got its pid later: its start time, and its pid in its own namespace.
 *
 * A pid alone names whoever holds it now. The broker watches processes by
 * pidfd, but a pidfd cannot be saved in a file: what a later broker gets
 * back is a pid and the start time the process had, and a process whose
 * start time differs is another one.
 */
#ifndef ZBD_PROCINFO_H
#define ZBD_PROCINFO_H

#include <stdint.h>
#include <sys/types.h>

/**
 * zbd_proc_start_time() - when process @pid started, in clock ticks after
 * boot (field 22 of /proc/PID/stat)
 * Return: 0; -ENOENT (or -ESRCH) when no process has @pid; -EBADMSG when
 * the file does not parse; other -errno of reading it.
 */
int zbd_proc_start_time(pid_t pid, uint64_t *ticks);

/**
 * zbd_proc_inner_pid() - @pid as the process itself sees it (getpid() in
 * its own pid namespace: the last NSpid of /proc/PID/status), which is
 * what it writes into a slot. @pid itself outside any nested namespace.
 * Return: 0; -ENOENT; -EBADMSG; other -errno.
 */
int zbd_proc_inner_pid(pid_t pid, pid_t *inner);

#endif /* ZBD_PROCINFO_H */
