/* SPDX-License-Identifier: MIT */
/*
 * c2c.h - the core-to-core round trip of one cache line between the two
 * CPUs the benchmarks pin to.
 *
 * Every shared-memory transport pays it per small message (or per batch),
 * and on a virtual machine it is not a constant: where the hypervisor
 * places the two vCPUs (sharing a core's caches, or on two chiplets) can
 * change it several-fold between runs, and the small-message numbers of
 * every shared-memory row move with it. zbus-bench measures it before each
 * cell and prints it in the row; zbus-bench-machine before and after a
 * whole suite.
 */
#ifndef ZBUS_BENCH_C2C_H
#define ZBUS_BENCH_C2C_H

#include "bench_util.h"

/*
 * bench_c2c_rtt() - bounce a cache line between @cpus->cpu[0] (us) and a
 * child forked onto @cpus->cpu[1]: @rounds rounds of @trips round trips,
 * the mean round trip of each round in @rtt[0..@rounds-1], in ns.
 * Return: 0; -errno (bench_err says why); -ENOTSUP without two CPUs.
 */
int bench_c2c_rtt(const struct bench_cpus *cpus, unsigned int trips,
		  unsigned int rounds, double *rtt);

/* The median of @rounds rounds of @trips, or a negative -errno. */
double bench_c2c_median(const struct bench_cpus *cpus, unsigned int trips,
			unsigned int rounds);

#endif /* ZBUS_BENCH_C2C_H */
