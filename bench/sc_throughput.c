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

#include "scenario.h"
#include "session.h"

/*
 * A consumer: open @in, tell @p it is ready, drain the warm-up, say so,
 * then receive the timed part; when it ended and the CPU it took.
 */
int sc_throughput_consume(struct link *in, const struct cell *c,
			  struct bench_peer *p, uint64_t *t_end,
			  uint64_t *cpu)
{
	uint64_t i, cpu0;
	int ret;

	ret = link_open(in, ROLE_RX);
	if (!ret)
		ret = bench_peer_notify(p);
	for (i = 0; !ret && i < c->warmup; i++)
		ret = in->tp->recv(in, i);
	if (!ret)
		ret = bench_peer_notify(p);
	cpu0 = bench_cpu_ns();
	for (; !ret && i < c->warmup + c->count; i++)
		ret = in->tp->recv(in, i);
	if (!ret) {
		*t_end = bench_now_ns();
		*cpu = bench_cpu_ns() - cpu0;
	}
	return ret;
}

static int stream_child(struct session *s)
{
	return sc_throughput_consume(&s->link[0], s->cell, &s->peer,
				     &session_shared->t_end_ns,
				     &session_shared->child_cpu_ns);
}

static int stream_parent(struct session *s, uint64_t *t_start,
			 uint64_t *cpu)
{
	struct link *out = &s->link[0];
	const struct cell *c = s->cell;
	uint64_t i, cpu0;
	int ret;

	ret = link_open(out, ROLE_TX);
	if (!ret)
		ret = session_wait(s, "waiting for the consumer");
	for (i = 0; !ret && i < c->warmup; i++)
		ret = out->tp->send(out, i);
	/* The timed part starts with an empty ring and an awake consumer. */
	if (!ret)
		ret = session_wait(s, "waiting for the warm-up to drain");
	*t_start = bench_now_ns();
	cpu0 = bench_cpu_ns();
	for (; !ret && i < c->warmup + c->count; i++)
		ret = out->tp->send(out, i);
	*cpu = bench_cpu_ns() - cpu0;
	return ret;
}

int sc_throughput_run(const struct cell *c, struct result *res)
{
	struct session s;
	uint64_t t_start = 0, t_end, cpu = 0;
	double *mps, *cpu_per_msg;
	unsigned int r, n = c->reps;
	int ret = 0;

	mps = calloc(2 * n, sizeof(*mps));
	if (!mps)
		return bench_fail(-ENOMEM, "calloc");
	cpu_per_msg = mps + n;
	for (r = 0; !ret && r < n; r++) {
		ret = session_start(&s, c, 1, stream_child);
		if (!ret)
			ret = stream_parent(&s, &t_start, &cpu);
		ret = session_end(&s, ret);
		/* The child has exited: its timestamp is final. */
		t_end = session_shared->t_end_ns;
		if (!ret && t_end <= t_start)
			ret = bench_fail(-EPROTO, "consumer finished at "
					 "%" PRIu64 " before the producer "
					 "started at %" PRIu64, t_end,
					 t_start);
		if (!ret) {
			mps[r] = (double)c->count * 1e9 /
				 (double)(t_end - t_start);
			cpu_per_msg[r] =
				(double)(cpu + session_shared->child_cpu_ns) /
				(double)c->count;
		}
	}
	if (!ret) {
		qsort(mps, n, sizeof(*mps), bench_cmp_double);
		res->has_rate = true;
		res->mps = n % 2 ? mps[n / 2] :
				   (mps[n / 2 - 1] + mps[n / 2]) / 2;
		res->mps_min = mps[0];
		res->mps_max = mps[n - 1];
		res->samples = c->count;
		res->reps = n;
		qsort(cpu_per_msg, n, sizeof(*cpu_per_msg), bench_cmp_double);
		res->has_cpu = true;
		res->cpu_ns = cpu_per_msg[n / 2];
	}
	free(mps);
	return ret;
}
