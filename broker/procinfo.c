/* SPDX-License-Identifier: MIT */
/*
 * procinfo.c - a process's start time and inner pid, from /proc.
 */
#include "procinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* /proc/@pid/@file into @buf (NUL-terminated). Return: its length;
 * -errno. */
static ssize_t read_proc(pid_t pid, const char *file, char *buf,
			 size_t size)
{
	_zb_cleanup_close_ int fd = -1;
	char path[64];
	size_t got = 0;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	while (got + 1 < size) {
		ssize_t n = read(fd, buf + got, size - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == ESRCH ? -ESRCH : -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = 0;
	return (ssize_t)got;
}

int zbd_proc_start_time(pid_t pid, uint64_t *ticks)
{
	char buf[1024], *p, *end;
	ssize_t n;
	int field;

	if (pid <= 0)
		return -ESRCH;
	n = read_proc(pid, "stat", buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	/* The command name (field 2) may hold spaces and parentheses: the
	 * fields after it start after its last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return -EBADMSG;
	p++;
	/* Field 3 (state) follows; start time is field 22. */
	for (field = 2; field < 21 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return -EBADMSG;
	errno = 0;
	*ticks = strtoull(p + 1, &end, 10);
	if (errno || end == p + 1 || (*end != ' ' && *end != '\n' && *end))
		return -EBADMSG;
	return 0;
}

int zbd_proc_inner_pid(pid_t pid, pid_t *inner)
{
	char buf[4096], *line, *p, *end;
	long v = -1;
	ssize_t n;

	if (pid <= 0)
		return -ESRCH;
	n = read_proc(pid, "status", buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	line = strstr(buf, "\nNSpid:");
	if (!line) {
		*inner = pid; /* a kernel without namespaces */
		return 0;
	}
	p = line + strlen("\nNSpid:");
	for (;;) {
		long x;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\n' || !*p)
			break;
		errno = 0;
		x = strtol(p, &end, 10);
		if (errno || end == p || x <= 0)
			return -EBADMSG;
		v = x;
		p = end;
	}
	if (v <= 0)
		return -EBADMSG;
	*inner = (pid_t)v;
	return 0;
}
