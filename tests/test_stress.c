/* SPDX-License-Identifier: MIT */
/*
 * test_stress.c - the concurrency scenarios of stress.c under Criterion:
 * forked processes (the real deployment) and threads on one mapping.
 * ZBUS_STRESS_MSGS sets the messages per producer (default 500000 for
 * processes, i.e. 2 million per run; 50000 for threads).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "stress.h"
#include "testutil.h"

static void setup(void)
{
	tu_leak_begin();
}

static void teardown(void)
{
	tu_leak_end();
}

TestSuite(stress, .init = setup, .fini = teardown, .timeout = 500);

Test(stress, four_producers_three_subscribers_processes)
{
	char err[256] = "";
	uint64_t n = tu_env_u64("ZBUS_STRESS_MSGS", 500000);

	cr_assert_eq(stress_mixed(n, 4, 0, 0, err, sizeof(err)), 0, "%s", err);
}

Test(stress, four_producers_three_subscribers_threads)
{
	char err[256] = "";
	uint64_t n = tu_env_u64("ZBUS_STRESS_MSGS", 50000);

	cr_assert_eq(stress_mixed(n, 4, 0, 1, err, sizeof(err)), 0, "%s", err);
}

Test(stress, exclusive_producer_three_subscribers_processes)
{
	char err[256] = "";
	uint64_t n = tu_env_u64("ZBUS_STRESS_MSGS", 500000) * 2;

	cr_assert_eq(stress_mixed(n, 1, 1, 0, err, sizeof(err)), 0, "%s", err);
}

Test(stress, no_lost_wakeup_when_always_sleeping)
{
	char err[256] = "";
	uint64_t n = tu_env_u64("ZBUS_PINGPONG_ROUNDS", 20000);

	cr_assert_eq(stress_pingpong(n, -1, 0, err, sizeof(err)), 0, "%s",
		     err);
}

Test(stress, no_lost_wakeup_at_the_spin_to_sleep_edge)
{
	char err[256] = "";
	uint64_t n = tu_env_u64("ZBUS_PINGPONG_ROUNDS", 20000);

	/* A 1 µs spin ends right around when the peer publishes: the
	 * window of the lost wake-up race. */
	cr_assert_eq(stress_pingpong(n, 1, 0, err, sizeof(err)), 0, "%s",
		     err);
}

/* Make membarrier() fail with ENOSYS in this process and its children,
 * as a container's seccomp profile may. */
static int block_membarrier(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(*f), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

Test(stress, without_membarrier_fences_and_sliced_sleeps_still_hold)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (!pid) {
		char err[256] = "";

		if (block_membarrier() < 0)
			_exit(90);
		/* Prove the filter bites, or this test proves nothing. */
		if (syscall(__NR_membarrier, 0, 0, 0) != -1 || errno != ENOSYS)
			_exit(91);
		if (stress_pingpong(5000, -1, 0, err, sizeof(err)) < 0 ||
		    stress_mixed(100000, 4, 0, 0, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			_exit(92);
		}
		_exit(0);
	}
	cr_assert_eq(tu_wait_child(pid, 300), 0,
		     "scenarios without membarrier failed (see stderr)");
}

Test(stress, fd_mode_never_misses_a_burst_processes)
{
	char err[256] = "";
	uint64_t n = tu_env_u64("ZBUS_STRESS_MSGS", 500000) / 5;

	cr_assert_eq(stress_fdmode(n, 0, err, sizeof(err)), 0, "%s", err);
}
