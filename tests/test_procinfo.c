/* SPDX-License-Identifier: MIT */
/*
 * test_procinfo.c - the broker's reading of /proc: a process's start time
 * (what tells it from a later one with its pid) and its pid inside its own
 * pid namespace (what it writes into a slot).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procinfo.h"

/* A child that sits until killed, after naming itself @comm. */
static pid_t sitter(const char *comm, int *ready)
{
	int p[2];
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	if (!pid) {
		prctl(PR_SET_NAME, comm);
		if (write(p[1], "k", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	*ready = p[0];
	return pid;
}

static void wait_said(int fd)
{
	char c;

	cr_assert_eq(read(fd, &c, 1), 1);
	close(fd);
}

Test(procinfo, start_time_is_stable_and_later_for_a_child)
{
	uint64_t a, b, child;
	int fd;
	pid_t pid;

	cr_assert_eq(zbd_proc_start_time(getpid(), &a), 0);
	cr_assert_eq(zbd_proc_start_time(getpid(), &b), 0);
	cr_assert_eq(a, b);
	cr_assert_gt(a, 0);
	usleep(20000); /* two clock ticks at 100 Hz */
	pid = sitter("sitter", &fd);
	wait_said(fd);
	cr_assert_eq(zbd_proc_start_time(pid, &child), 0);
	cr_assert_gt(child, a, "a child started before its parent");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	cr_assert_eq(zbd_proc_start_time(pid, &child), -ESRCH,
		     "a reaped process has a start time");
	cr_assert_eq(zbd_proc_start_time(0, &child), -ESRCH);
	cr_assert_eq(zbd_proc_start_time(-1, &child), -ESRCH);
}

/* A command name may hold spaces and parentheses: the fields after it are
 * counted from its last ')'. Its start time is the parent's view too. */
Test(procinfo, a_command_name_with_parentheses_does_not_shift_fields)
{
	uint64_t plain, odd;
	int fd;
	pid_t pid;

	pid = sitter("a) b ) (c 1 2", &fd);
	wait_said(fd);
	cr_assert_eq(zbd_proc_start_time(pid, &odd), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	pid = sitter("plain", &fd);
	wait_said(fd);
	cr_assert_eq(zbd_proc_start_time(pid, &plain), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	/* Started a moment apart: a shifted field would be far off. */
	cr_assert_leq(plain - odd, 100, "start times %lu and %lu",
		      (unsigned long)odd, (unsigned long)plain);
}

Test(procinfo, inner_pid_outside_a_namespace_is_the_pid)
{
	pid_t inner = 0;

	cr_assert_eq(zbd_proc_inner_pid(getpid(), &inner), 0);
	cr_assert_eq(inner, getpid());
	cr_assert_eq(zbd_proc_inner_pid(0, &inner), -ESRCH);
}

/* In a new pid namespace a process is pid 1 to itself: that is what it
 * writes into a slot, and what the broker must match. */
Test(procinfo, inner_pid_in_a_new_namespace_is_its_own_view)
{
	int said_pipe[2], pid_pipe[2];
	pid_t outer, in_child = 0, inner = 0;
	char said = 0;

	if (geteuid() != 0)
		cr_skip_test("needs root to make a pid namespace");
	cr_assert_eq(pipe(said_pipe), 0);
	cr_assert_eq(pipe(pid_pipe), 0);
	outer = fork();
	if (!outer) {
		pid_t in;

		/* The namespace holds this process's next child. */
		if (unshare(CLONE_NEWPID))
			_exit(1);
		in = fork();
		if (in < 0)
			_exit(2);
		if (!in) {
			said = getpid() == 1 ? 'k' : 'n';
			if (write(said_pipe[1], &said, 1) != 1)
				_exit(3);
			for (;;)
				pause();
		}
		/* The child's pid as we, outside, see it. */
		if (write(pid_pipe[1], &in, sizeof(in)) != sizeof(in))
			_exit(4);
		waitpid(in, NULL, 0);
		_exit(0);
	}
	close(said_pipe[1]);
	close(pid_pipe[1]);
	cr_assert_eq(read(said_pipe[0], &said, 1), 1, "no namespace child");
	cr_assert_eq(said, 'k', "not pid 1 in its namespace");
	cr_assert_eq(read(pid_pipe[0], &in_child, sizeof(in_child)),
		     sizeof(in_child));
	cr_assert_eq(zbd_proc_inner_pid(in_child, &inner), 0);
	cr_assert_eq(inner, 1, "inner pid %d", (int)inner);
	kill(in_child, SIGKILL);
	close(said_pipe[0]);
	close(pid_pipe[0]);
	waitpid(outer, NULL, 0);
}
