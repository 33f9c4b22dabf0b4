/* SPDX-License-Identifier: MIT */
/*
 * scenario.h - zbus-bench's scenarios, a file each (sc_*.c). A runner
 * measures one cell into a zeroed @res; a scenario that makes several rows
 * of one (transport, size) runs its cells itself and hands each row to
 * @print. Return: 0 or -errno, the reason in bench_err.
 */
#ifndef ZBUS_BENCH_SCENARIO_H
#define ZBUS_BENCH_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include "bench_util.h"
#include "cell.h"
#include "transport.h"

#define MAX_FAN 8		/* fan-out, fan-in: children at most */

/*
 * struct sc_reps - the repetitions of one latency or throughput cell so
 * far. zbus-bench interleaves them: the first repetition of every
 * transport at a size, then the second, and so on, so that every
 * transport meets the same machine (where the hypervisor puts our two
 * vCPUs changes within minutes, and small messages move with it: c2c.h).
 * sc_reps_init() before the first, sc_reps_finish() after the last (it
 * frees; sc_reps_free() alone after a failure).
 */
struct sc_reps {
	unsigned int done;	/* repetitions run so far */
	uint64_t *rtt;		/* latency: every timed round trip, pooled */
	uint64_t nrtt;
	double *mps, *cpu;	/* throughput: each repetition's */
	uint64_t fewest;	/* throughput: its fewest timed messages */
	struct result res;	/* latency: the spread of the session p50s */
};

int sc_reps_init(struct sc_reps *a, const struct cell *c);
/* Run repetition number a->done of @c (c->sc: latency or throughput). */
int sc_rep_run(const struct cell *c, struct sc_reps *a);
void sc_reps_finish(const struct cell *c, struct sc_reps *a,
		    struct result *res);
void sc_reps_free(struct sc_reps *a);

/* sc_latency.c: ping-pong, one-way latency from the round trips */
int sc_latency_rep(const struct cell *c, struct sc_reps *a);
void sc_latency_finish(const struct cell *c, struct sc_reps *a,
		       struct result *res);

/* sc_throughput.c: a one-way stream, flat out */
int sc_throughput_rep(const struct cell *c, struct sc_reps *a);
void sc_throughput_finish(const struct cell *c, struct sc_reps *a,
			  struct result *res);
/* Its consumer, which each fan-out child is too. */
int sc_throughput_consume(struct link *in, const struct cell *c,
			  struct bench_peer *p, bool picked, uint64_t *t_end,
			  uint64_t *cpu);

/* sc_idle.c: the CPU a consumer burns waiting */
int sc_idle_run(const struct cell *c, struct result *res);

/* sc_load.c: the saturation of (@tp, @size), then a row per offered load */
int sc_load_rows(const struct transport *tp, size_t size,
		 void (*print)(const struct cell *, const struct result *));

/* sc_fan.c: map the fan children's shared block; before any fan cell. */
int sc_fan_setup(void);
/* Why (@sc, @tp, @size) cannot run, or NULL. */
const char *sc_fan_skip(enum scenario sc, const struct transport *tp,
			size_t size);
/* The fan rows of (@sc, @tp, @size): one per number of children. */
int sc_fan_rows(enum scenario sc, const struct transport *tp, size_t size,
		void (*print)(const struct cell *, const struct result *));

#endif /* ZBUS_BENCH_SCENARIO_H */
