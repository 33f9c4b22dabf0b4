/* SPDX-License-Identifier: MIT */
/*
 * cell.h - what zbus-bench measures: the configuration the command line
 * sets (bench_cfg), and the cells it asks for, each one (scenario,
 * transport, size) with the counts and ring geometry it runs with and the
 * result it gives.
 */
#ifndef ZBUS_BENCH_CELL_H
#define ZBUS_BENCH_CELL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench_util.h"
#include "transport.h"

#define MAX_SIZES 16

enum scenario {
	SC_LATENCY, SC_THROUGHPUT, SC_LOAD, SC_FANOUT, SC_FANIN, SC_IDLE,
	SC_COUNT
};

/* The scenarios' names, as the output spells them. */
extern const char *const sc_names[SC_COUNT];

struct config {
	bool json;
	bool csv;
	bool quick;
	unsigned int scenarios;		/* bit per enum scenario */
	unsigned int transports;	/* bit per tp_all[] entry */
	size_t sizes[MAX_SIZES];
	unsigned int nsizes;
	unsigned int reps;		/* throughput repetitions */
	unsigned int fans[4];		/* fan-out/fan-in: children */
	unsigned int nfans;
	struct bench_cpus cpus;		/* [0] parent, [1] child */
};

/* What the command line chose (bench_ipc.c parses it before any cell). */
extern struct config bench_cfg;

/*
 * struct cell - one (scenario, transport, size) measurement
 * @warmup: untimed messages (latency: round trips) first
 * @count: timed messages (latency: samples); latency and throughput take
 *         fewer when the warm-up says @count would overrun @budget_s
 * @min_count: no fewer than this, whatever the time
 * @budget_s: latency and throughput: about how long one repetition's
 *            timed part may run
 * @timeout_s: alarm of each process; a stuck cell fails after it
 */
struct cell {
	enum scenario sc;
	const struct transport *tp;
	size_t size;
	struct geom geom;
	uint64_t warmup;
	uint64_t count;
	uint64_t min_count;
	double budget_s;
	unsigned int reps;
	unsigned int timeout_s;
	double load;			/* SC_LOAD: fraction of saturation */
	unsigned int fan;		/* SC_FANOUT/SC_FANIN: children */
	double rate;			/* SC_LOAD: offered msgs/s */
};

struct result {
	uint64_t samples;
	unsigned int reps;
	bool has_latency;
	double p50_ns, p99_ns, p999_ns;
	bool has_rate;
	double mps, mps_min, mps_max;
	bool has_max;
	double max_ns;
	bool has_p50_spread;		/* latency: medians of its sessions */
	double p50_min_ns, p50_max_ns;
	bool has_cpu;
	double cpu_ns;			/* CPU time per message: both sides
					 * (throughput), the consumer (load) */
};

/* @v, but no less than @lo and no more than @hi. */
static inline uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/*
 * cell_init() - the cell (@sc, @tp, @size) with the counts, warm-up,
 * geometry, repetitions and alarm that bench_cfg asks for.
 */
void cell_init(struct cell *c, enum scenario sc, const struct transport *tp,
	       size_t size);

#endif /* ZBUS_BENCH_CELL_H */
