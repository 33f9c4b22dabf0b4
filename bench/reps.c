/* SPDX-License-Identifier: MIT */
/*
 * reps.c - the repetitions of a latency or throughput cell, run one at a
 * time so that zbus-bench can interleave transports (struct sc_reps).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

int sc_reps_init(struct sc_reps *a, const struct cell *c)
{
	unsigned int n = c->reps ? c->reps : 1;

	memset(a, 0, sizeof(*a));
	if (c->sc == SC_LATENCY)
		a->rtt = calloc(c->count ? c->count : 1, sizeof(*a->rtt));
	else
		a->mps = calloc(2 * (size_t)n, sizeof(*a->mps));
	if (!a->rtt && !a->mps)
		return bench_fail(-ENOMEM, "calloc");
	a->cpu = a->mps ? a->mps + n : NULL;
	return 0;
}

int sc_rep_run(const struct cell *c, struct sc_reps *a)
{
	return c->sc == SC_LATENCY ? sc_latency_rep(c, a) :
				     sc_throughput_rep(c, a);
}

void sc_reps_finish(const struct cell *c, struct sc_reps *a,
		    struct result *res)
{
	if (c->sc == SC_LATENCY)
		sc_latency_finish(c, a, res);
	else
		sc_throughput_finish(c, a, res);
	sc_reps_free(a);
}

void sc_reps_free(struct sc_reps *a)
{
	free(a->rtt);
	free(a->mps);
	a->rtt = NULL;
	a->mps = a->cpu = NULL;
}
