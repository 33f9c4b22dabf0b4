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
	if (sc == SC_LATENCY) {
		/* At least 1000 round trips, 50 from 1 MiB up: a pipe moves
		 * 64 MiB messages at under 1 GB/s. */
		c->count = bench_cfg.quick ?
				   clamp_u64(4 * MiB / size, 20, 200) :
				   clamp_u64(GiB / size,
					     size >= MiB ? 50 : 1000, 20000);
		c->warmup = c->count / 10 > 10 ? c->count / 10 : 10;
		c->reps = bench_cfg.reps;
		bytes = 2 * (c->count + c->warmup) * size;
	} else {
		c->count = bench_cfg.quick ?
				   clamp_u64(8 * MiB / size, 8, 2000) :
				   clamp_u64(256 * MiB / size,
					     size >= 8 * MiB ? 16 : 64,
					     300000);
		/* Twice round the ring: every slot and arena page touched. */
		c->warmup = 2ull * (c->geom.slots > c->geom.ring ?
				    c->geom.slots : c->geom.ring);
		if (c->warmup > c->count)
			c->warmup = c->count;
		c->reps = bench_cfg.reps;
		bytes = (c->count + c->warmup) * size;
	}
	/* Generous: no transport here is slower than ~128 MiB/s. */
	c->timeout_s = (bench_cfg.quick ? 10 : 60) +
		       (unsigned int)(bytes >> 27);
}
