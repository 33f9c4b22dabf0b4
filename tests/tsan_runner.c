/* SPDX-License-Identifier: MIT */
/*
 * tsan_runner.c - runs the concurrency scenarios with threads on one
 * mapping, for ThreadSanitizer (Criterion cannot run under TSan:
 * Snaipe/Criterion#274). Prints one line per scenario and the plain
 * summary "N passed, N failed".
 */
#include <stdio.h>

#include "stress.h"
#include "testutil.h"

int main(void)
{
	uint64_t msgs = tu_env_u64("ZBUS_STRESS_MSGS", 100000);
	uint64_t rounds = tu_env_u64("ZBUS_PINGPONG_ROUNDS", 10000);
	int passed = 0, failed = 0;
	char err[256];
	struct {
		const char *name;
		int r;
	} res[5];

	err[0] = 0;
	res[0].name = "mixed_4x3_threads";
	res[0].r = stress_mixed(msgs, 4, 0, 1, err, sizeof(err));
	if (res[0].r)
		fprintf(stderr, "%s: %s\n", res[0].name, err);
	res[1].name = "pingpong_always_sleeping_threads";
	res[1].r = stress_pingpong(rounds, -1, 1, err, sizeof(err));
	if (res[1].r)
		fprintf(stderr, "%s: %s\n", res[1].name, err);
	res[2].name = "pingpong_spin_edge_threads";
	res[2].r = stress_pingpong(rounds, 1, 1, err, sizeof(err));
	if (res[2].r)
		fprintf(stderr, "%s: %s\n", res[2].name, err);
	res[3].name = "exclusive_producer_threads";
	res[3].r = stress_mixed(msgs, 1, 1, 1, err, sizeof(err));
	if (res[3].r)
		fprintf(stderr, "%s: %s\n", res[3].name, err);
	res[4].name = "fd_mode_threads";
	res[4].r = stress_fdmode(msgs, 1, err, sizeof(err));
	if (res[4].r)
		fprintf(stderr, "%s: %s\n", res[4].name, err);
	for (int i = 0; i < 5; i++) {
		printf("%s: %s\n", res[i].name, res[i].r ? "FAIL" : "ok");
		if (res[i].r)
			failed++;
		else
			passed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
