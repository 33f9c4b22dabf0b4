/* SPDX-License-Identifier: MIT */
/*
 * cell.c - zbus-bench's cells: how many messages each (scenario,
 * transport, size) moves, and how much its link holds in flight.
 */
#include <stdint.h>
#include <string.h>

#include "cell.h"

const char *const sc_names[SC_COUNT] = {
	[SC_LATENCY] = "latency",
	[SC_THROUGHPUT] = "throughput",
	[SC_LOAD] = "load",
	[SC_FANOUT] = "fanout",
	[SC_FANIN] = "fanin",
	[SC_IDLE] = "idle",
};

struct config bench_cfg;

static uint64_t pow2_floor(uint64_t v)
{
	uint64_t p = 1;

	while (p <= v / 2)
		p *= 2;
	return p;
}

/*
 * Latency keeps one message in flight: zbus gets the ring the brief asks
 * for and its default arena, and shm-ring about the same bytes (64 KiB), so
 * neither cycles through more cache than the other.
 * Throughput lets either hold the same bytes in flight: 4096 small
 * messages, or up to 8 MiB of large ones (at least 8, at most 256).
 */
static struct geom cell_geom(enum scenario sc, size_t size)
{
	uint64_t slot = bench_round_up(size, CACHE_LINE);
	struct geom g;

	if (sc == SC_LATENCY) {
		g.ring = 256;
		g.arena = 0;
		g.slots = (uint32_t)pow2_floor(clamp_u64(64 * KiB / slot,
							 4, 256));
	} else if (size <= KiB) {
		g.ring = 4096;
		g.arena = 0;
		g.slots = 4096;
	} else {
		g.slots = (uint32_t)pow2_floor(clamp_u64(8 * MiB / slot,
							 8, 256));
		g.ring = g.slots;
		g.arena = g.slots * slot;
	}
	return g;
}

/*
 * Counts keep the standard suite (bench/suite.sh: ten transports, nine
 * sizes up to 64 MiB, five scenarios) within its ten minutes on 2 cores,
 * where a socket round trip costs 25-70 us (the hypervisor wakes the
 * other vCPU) and TCP moves 64-byte messages at about 0.15 M/s; --quick
 * only checks that everything works.
 */
void cell_init(struct cell *c, enum scenario sc,
		      const struct transport *tp, size_t size)
{
	uint64_t bytes;

	memset(c, 0, sizeof(*c));
	c->sc = sc;
	c->tp = tp;
	c->size = size;
	c->geom = cell_geom(sc, size);
	/* Per repetition: a transport that would take longer (ZeroMQ moves
	 * 64 MiB at about 0.3 GB/s) stops at the budget, at min_count. */
	c->budget_s = bench_cfg.quick ? 0.05 : 0.4;
	if (sc == SC_LATENCY) {
		/* At least 1000 round trips, 60 from 1 MiB up, 9 from 8 MiB
		 * (in all repetitions together). */
		c->min_count = size >= 8 * MiB ? 9 : size >= MiB ? 60 : 1000;
		c->count = bench_cfg.quick ?
				   clamp_u64(4 * MiB / size, 20, 200) :
				   clamp_u64(GiB / size, c->min_count, 20000);
		if (bench_cfg.quick)
			c->min_count = c->count;
		/* Every slot of the ring (and message of zbus's arena: four
		 * of the largest) written once before any timed one: a first
		 * touch of 64 MiB faults in 16384 pages. */
		c->warmup = c->count / 10 > 10 ? c->count / 10 :
			    size >= 8 * MiB ? 5 : 10;
		if (c->warmup <= c->geom.slots)
			c->warmup = c->geom.slots + 1;
		c->reps = bench_cfg.reps;
		bytes = 2 * (c->count + c->warmup) * size;
	} else {
		c->count = bench_cfg.quick ?
				   clamp_u64(8 * MiB / size, 8, 2000) :
				   clamp_u64(256 * MiB / size,
					     size >= 8 * MiB ? 16 : 64,
					     300000);
		c->min_count = bench_cfg.quick ? c->count :
			       size >= 8 * MiB ? 4 : 64;
		/* Twice round the ring: every slot and arena page touched
		 * (a small message's arena holds more messages than its
		 * ring; from 1 MiB on both are the same and once is enough). */
		c->warmup = (size >= MiB ? 1ull : 2ull) *
			    (c->geom.slots > c->geom.ring ? c->geom.slots :
							    c->geom.ring);
		if (c->warmup > c->count)
			c->warmup = c->count;
		c->reps = bench_cfg.reps;
		bytes = (c->count + c->warmup) * size;
	}
	/* Generous: no transport here is slower than ~128 MiB/s. */
	c->timeout_s = (bench_cfg.quick ? 10 : 60) +
		       (unsigned int)(bytes >> 27);
}
