/* SPDX-License-Identifier: MIT */
/*
 * test_stress.c - the concurrency scenarios of stress.c under Criterion:
 * forked processes (the real deployment) and threads on one mapping.
 * ZBUS_STRESS_MSGS sets the messages per producer (default 500000 for
 * processes, i.e. 2 million per run; 50000 for threads).
 */
#include <criterion/criterion.h>

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
	uint64_t n = stress_param("ZBUS_STRESS_MSGS", 500000);

	cr_assert_eq(stress_mixed(n, 0, err, sizeof(err)), 0, "%s", err);
}

Test(stress, four_producers_three_subscribers_threads)
{
	char err[256] = "";
	uint64_t n = stress_param("ZBUS_STRESS_MSGS", 50000);

	cr_assert_eq(stress_mixed(n, 1, err, sizeof(err)), 0, "%s", err);
}

Test(stress, no_lost_wakeup_when_always_sleeping)
{
	char err[256] = "";
	uint64_t n = stress_param("ZBUS_PINGPONG_ROUNDS", 20000);

	cr_assert_eq(stress_pingpong(n, -1, 0, err, sizeof(err)), 0, "%s",
		     err);
}

Test(stress, no_lost_wakeup_at_the_spin_to_sleep_edge)
{
	char err[256] = "";
	uint64_t n = stress_param("ZBUS_PINGPONG_ROUNDS", 20000);

	/* A 1 µs spin ends right around when the peer publishes: the
	 * window of the lost wake-up race. */
	cr_assert_eq(stress_pingpong(n, 1, 0, err, sizeof(err)), 0, "%s",
		     err);
}
