/* SPDX-License-Identifier: MIT */
/*
 * sc_latency.c - zbus-bench's latency scenario: ping-pong over two links
 * (one per direction); one-way latency is half of each round trip, timed
 * by the initiator.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "scenario.h"
#include "session.h"

/* Responder: echo each message back, written in full again; as many as
 * the initiator picked once its first timed message is in. */
static int latency_child(struct session *s)
{
	struct link *in = &s->link[0], *out = &s->link[1];
	uint64_t i, total = s->cell->warmup + s->cell->count;
	int ret;

	ret = link_open(in, ROLE_RX);
	if (!ret)
		ret = link_open(out, ROLE_TX);
	/* Subscribed: nothing the parent sends from now on can be missed. */
	if (!ret)
		ret = session_notify(s);
	for (i = 0; !ret && i < total; i++) {
		ret = in->tp->recv(in, i);
		if (i == s->cell->warmup)
			total = s->cell->warmup + session_count();
		if (!ret)
			ret = out->tp->send(out, i);
	}
	return ret;
}

/* Initiator: the warm-up, then *@count timed round trips into @rtt (at
 * most c->count; fewer when the warm-up says they would overrun the
 * budget). */
static int latency_parent(struct session *s, uint64_t *rtt, uint64_t *count)
{
	struct link *out = &s->link[0], *in = &s->link[1];
	const struct cell *c = s->cell;
	uint64_t i, t0, t_warm = 0;
	int ret;

	ret = link_open(in, ROLE_RX);
	if (!ret)
		ret = link_open(out, ROLE_TX);
	if (!ret)
		ret = session_wait(s, "waiting for the responder");
	*count = c->count;
	for (i = 0; !ret && i < c->warmup + *count; i++) {
		if (i == 0)
			t_warm = bench_now_ns();
		if (i == c->warmup)
			*count = session_pick_count(c, c->warmup,
						    bench_now_ns() - t_warm,
						    c->min_count, c->count);
		t0 = bench_now_ns();
		ret = out->tp->send(out, i);
		if (!ret)
			ret = in->tp->recv(in, i);
		if (!ret && i >= c->warmup)
			rtt[i - c->warmup] = bench_now_ns() - t0;
	}
	return ret;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least @p of them at or below. */
static uint64_t percentile(const uint64_t *sorted, uint64_t n, double p)
{
	uint64_t rank = (uint64_t)ceil(p * (double)n);

	return sorted[clamp_u64(rank, 1, n) - 1];
}

/*
 * Ping-pong in c->reps sessions of a share of the round trips each: the
 * percentiles pool them all, the spread of the sessions' medians says how
 * far one session is from the next (each starts processes anew, so it also
 * catches where the hypervisor put them).
 */
int sc_latency_rep(const struct cell *c, struct sc_reps *a)
{
	unsigned int r = a->done, n = c->reps ? c->reps : 1;
	struct result *res = &a->res;
	struct cell part = *c;
	struct session s;
	uint64_t got = 0;
	double p50;
	int ret;

	/* An equal share of the most each; the last takes the rest.
	 * nrtt ≤ r shares: the rtt array has room. */
	part.count = r + 1 < n ? c->count / n :
				 c->count - (n - 1) * (c->count / n);
	part.min_count = (c->min_count + n - 1) / n;
	a->done++;
	if (!part.count)
		return 0;
	ret = session_start(&s, &part, 2, latency_child);
	if (!ret)
		ret = latency_parent(&s, a->rtt + a->nrtt, &got);
	ret = session_end(&s, ret);
	if (ret)
		return ret;
	qsort(a->rtt + a->nrtt, got, sizeof(*a->rtt), cmp_u64);
	/* One way is half a round trip. */
	p50 = percentile(a->rtt + a->nrtt, got, 0.50) / 2.0;
	if (!res->has_p50_spread || p50 < res->p50_min_ns)
		res->p50_min_ns = p50;
	if (!res->has_p50_spread || p50 > res->p50_max_ns)
		res->p50_max_ns = p50;
	res->has_p50_spread = true;
	a->nrtt += got;
	return 0;
}

void sc_latency_finish(const struct cell *c, struct sc_reps *a,
		       struct result *res)
{
	uint64_t n = a->nrtt;

	(void)c;
	*res = a->res;
	if (!n)
		return;
	qsort(a->rtt, n, sizeof(*a->rtt), cmp_u64);
	res->has_latency = true;
	res->p50_ns = percentile(a->rtt, n, 0.50) / 2.0;
	res->p99_ns = percentile(a->rtt, n, 0.99) / 2.0;
	res->p999_ns = percentile(a->rtt, n, 0.999) / 2.0;
	res->samples = n;
	res->reps = a->done;
}
