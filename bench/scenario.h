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

/* sc_latency.c: ping-pong, one-way latency from the round trips */
int sc_latency_run(const struct cell *c, struct result *res);

/* sc_throughput.c: a one-way stream, flat out */
int sc_throughput_run(const struct cell *c, struct result *res);
/* Its consumer, which each fan-out child is too. */
int sc_throughput_consume(struct link *in, const struct cell *c,
			  struct bench_peer *p, uint64_t *t_end,
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
