/* SPDX-License-Identifier: MIT */
/*
 * sc_throughput.c - zbus-bench's throughput scenario: a one-way stream;
 * the clock runs from the producer's first timed send to the consumer's
 * last receive, with the CPU time of both processes per message beside
 * it. Its consumer serves the fan-out scenario's children too.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"
#include "session.h"

/*
 * A consumer: open @in, tell @p it is ready, drain the warm-up, say so,
 * then receive the timed part (c->count, or with @picked the count the
 * producer picked, known once its first timed message is in); when it
 * ended and the CPU it took.
 */
int sc_throughput_consume(struct link *in, const struct cell *c,
			  struct bench_peer *p, bool picked, uint64_t *t_end,
			  uint64_t *cpu)
{
	uint64_t i, cpu0, count = c->count;
	int ret;

	ret = link_open(in, ROLE_RX);
	if (!ret)
		ret = bench_peer_notify(p);
	for (i = 0; !ret && i < c->warmup; i++)
		ret = in->tp->recv(in, i);
	if (!ret)
		ret = bench_peer_notify(p);
	cpu0 = bench_cpu_ns();
	for (; !ret && i < c->warmup + count; i++) {
		ret = in->tp->recv(in, i);
		if (picked && i == c->warmup)
			count = session_count();
	}
	if (!ret) {
		*t_end = bench_now_ns();
		*cpu = bench_cpu_ns() - cpu0;
	}
	return ret;
}

static int stream_child(struct session *s)
{
	return sc_throughput_consume(&s->link[0], s->cell, &s->peer, true,
				     &session_shared->t_end_ns,
				     &session_shared->child_cpu_ns);
}

/* The producer: the warm-up, then @count timed messages (picked from
 * how long the warm-up took to drain). */
static int stream_parent(struct session *s, uint64_t *t_start,
			 uint64_t *cpu, uint64_t *count)
{
	struct link *out = &s->link[0];
	const struct cell *c = s->cell;
	uint64_t i, cpu0, t_warm = 0;
	int ret;

	ret = link_open(out, ROLE_TX);
	if (!ret)
		ret = session_wait(s, "waiting for the consumer");
	if (!ret)
		t_warm = bench_now_ns();
	for (i = 0; !ret && i < c->warmup; i++)
		ret = out->tp->send(out, i);
	/* The timed part starts with an empty ring and an awake consumer. */
	if (!ret)
		ret = session_wait(s, "waiting for the warm-up to drain");
	*count = session_pick_count(c, c->warmup, bench_now_ns() - t_warm,
				    c->min_count, c->count);
	*t_start = bench_now_ns();
	cpu0 = bench_cpu_ns();
	for (; !ret && i < c->warmup + *count; i++)
		ret = out->tp->send(out, i);
	*cpu = bench_cpu_ns() - cpu0;
	return ret;
}

int sc_throughput_rep(const struct cell *c, struct sc_reps *a)
{
	uint64_t t_start = 0, t_end, cpu = 0, count = 0;
	unsigned int r = a->done;
	struct session s;
	int ret;

	ret = session_start(&s, c, 1, stream_child);
	if (!ret)
		ret = stream_parent(&s, &t_start, &cpu, &count);
	ret = session_end(&s, ret);
	if (ret)
		return ret;
	/* The child has exited: its timestamp is final. */
	t_end = session_shared->t_end_ns;
	if (t_end <= t_start)
		return bench_fail(-EPROTO, "consumer finished at %" PRIu64
				  " before the producer started at %" PRIu64,
				  t_end, t_start);
	a->mps[r] = (double)count * 1e9 / (double)(t_end - t_start);
	a->cpu[r] = (double)(cpu + session_shared->child_cpu_ns) /
		    (double)count;
	if (!a->fewest || count < a->fewest)
		a->fewest = count;
	a->done++;
	return 0;
}

/* The median over the repetitions, the slowest and fastest beside it. */
void sc_throughput_finish(const struct cell *c, struct sc_reps *a,
			  struct result *res)
{
	unsigned int n = a->done;

	(void)c;
	memset(res, 0, sizeof(*res));
	if (!n)
		return;
	qsort(a->mps, n, sizeof(*a->mps), bench_cmp_double);
	res->has_rate = true;
	res->mps = n % 2 ? a->mps[n / 2] :
			   (a->mps[n / 2 - 1] + a->mps[n / 2]) / 2;
	res->mps_min = a->mps[0];
	res->mps_max = a->mps[n - 1];
	res->samples = a->fewest; /* per repetition, at the least */
	res->reps = n;
	qsort(a->cpu, n, sizeof(*a->cpu), bench_cmp_double);
	res->has_cpu = true;
	res->cpu_ns = a->cpu[n / 2];
}
