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

/* Responder: echo each message back, written in full again. */
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
		if (!ret)
			ret = out->tp->send(out, i);
	}
	return ret;
}

static int latency_parent(struct session *s, uint64_t *rtt)
{
	struct link *out = &s->link[0], *in = &s->link[1];
	const struct cell *c = s->cell;
	uint64_t i, t0;
	int ret;

	ret = link_open(in, ROLE_RX);
	if (!ret)
		ret = link_open(out, ROLE_TX);
	if (!ret)
		ret = session_wait(s, "waiting for the responder");
	for (i = 0; !ret && i < c->warmup + c->count; i++) {
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
int sc_latency_run(const struct cell *c, struct result *res)
{
	unsigned int r, n = c->reps ? c->reps : 1;
	uint64_t done = 0, *rtt;
	struct session s;
	int ret = 0;

	rtt = calloc(c->count, sizeof(*rtt));
	if (!rtt)
		return bench_fail(-ENOMEM, "calloc");
	for (r = 0; !ret && r < n; r++) {
		struct cell part = *c;
		double p50;

		part.count = (c->count - done) / (n - r);
		if (!part.count)
			continue;
		ret = session_start(&s, &part, 2, latency_child);
		if (!ret)
			ret = latency_parent(&s, rtt + done);
		ret = session_end(&s, ret);
		if (ret)
			break;
		qsort(rtt + done, part.count, sizeof(*rtt), cmp_u64);
		/* One way is half a round trip. */
		p50 = percentile(rtt + done, part.count, 0.50) / 2.0;
		if (!res->has_p50_spread || p50 < res->p50_min_ns)
			res->p50_min_ns = p50;
		if (!res->has_p50_spread || p50 > res->p50_max_ns)
			res->p50_max_ns = p50;
		res->has_p50_spread = true;
		done += part.count;
	}
	if (!ret) {
		qsort(rtt, done, sizeof(*rtt), cmp_u64);
		res->has_latency = true;
		res->p50_ns = percentile(rtt, done, 0.50) / 2.0;
		res->p99_ns = percentile(rtt, done, 0.99) / 2.0;
		res->p999_ns = percentile(rtt, done, 0.999) / 2.0;
		res->samples = done;
		res->reps = n;
	}
	free(rtt);
	return ret;
}
