/* SPDX-License-Identifier: MIT */
/*
 * c2c.c - the core-to-core round trip of one cache line (c2c.h).
 *
 * The line holds a counter: we store an odd value, the child answers with
 * the next even one. Each round trip moves the line to the child's cache
 * and back, and nothing else is in the way (no syscalls, no payload).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "c2c.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define MAX_ROUNDS 64

struct ball {
	_Alignas(CACHE_LINE) _Atomic uint64_t v;
	uint64_t total; /* round trips the child answers */
};

/* Wait until the ball holds @want (the peer's move). */
static int wait_ball(struct ball *b, uint64_t want)
{
	int ret;

	BENCH_SPIN(ret,
		   atomic_load_explicit(&b->v, memory_order_acquire) == want ?
			   0 : -EAGAIN,
		   "core-to-core ping-pong");
	return ret;
}

/* The child: answer each odd value with the next even one. */
static int pong(struct bench_peer *p, void *arg)
{
	struct ball *b = arg;
	int ret = bench_peer_notify(p);

	for (uint64_t i = 0; ret == 0 && i < b->total; i++) {
		ret = wait_ball(b, 2 * i + 1);
		if (ret == 0)
			atomic_store_explicit(&b->v, 2 * i + 2,
					      memory_order_release);
	}
	return ret;
}

static int ping(struct ball *b, unsigned int trips, unsigned int rounds,
		double *rtt)
{
	uint64_t v = 0;

	for (unsigned int r = 0; r < rounds; r++) {
		uint64_t t0 = bench_now_ns();

		for (unsigned int i = 0; i < trips; i++) {
			int ret;

			atomic_store_explicit(&b->v, ++v,
					      memory_order_release);
			ret = wait_ball(b, ++v);
			if (ret < 0)
				return ret;
		}
		rtt[r] = (double)(bench_now_ns() - t0) / trips;
	}
	return 0;
}

int bench_c2c_rtt(const struct bench_cpus *cpus, unsigned int trips,
		  unsigned int rounds, double *rtt)
{
	struct bench_peer peer = { .pid = -1, .sync_fd = -1 };
	struct ball *b;
	int ret;

	if (!cpus->pin)
		return bench_fail(-ENOTSUP, "one CPU: no core-to-core trip");
	if (!trips || !rounds || rounds > MAX_ROUNDS)
		return bench_fail(-EINVAL, "c2c: %u rounds of %u trips",
				  rounds, trips);
	b = bench_map_shared(sizeof(*b));
	if (!b)
		return -ENOMEM; /* bench_map_shared() said why */
	b->total = (uint64_t)trips * rounds;
	ret = bench_peer_start(&peer, 10, cpus->cpu[1], pong, NULL, b);
	if (ret == 0)
		ret = bench_peer_wait(&peer, "ping-pong partner");
	if (ret == 0)
		ret = ping(b, trips, rounds, rtt);
	ret = bench_peer_end(&peer, ret);
	munmap(b, sizeof(*b));
	return ret;
}

double bench_c2c_median(const struct bench_cpus *cpus, unsigned int trips,
			unsigned int rounds)
{
	double rtt[MAX_ROUNDS];
	int ret = bench_c2c_rtt(cpus, trips, rounds, rtt);

	if (ret < 0)
		return ret;
	qsort(rtt, rounds, sizeof(*rtt), bench_cmp_double);
	return rtt[rounds / 2];
}
