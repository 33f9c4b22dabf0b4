/* SPDX-License-Identifier: MIT */
/*
 * sc_load.c - zbus-bench's load scenario: open-loop latency, messages due
 * on a fixed schedule at fractions of the rate the same consumer sustained
 * flat out just before, in a histogram (hist.h).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hist.h"
#include "scenario.h"
#include "session.h"

/*
 * Open-loop latency under load: message i is due at t0 + i / rate, on a
 * schedule fixed in advance; the producer sends it as soon as it is due
 * (late if it fell behind, never skipped), and the consumer measures its
 * latency from when it was due, not from when it was sent. A stall of the
 * producer, the transport or the consumer so shows in every message it
 * delays, instead of pausing the clock (coordinated omission).
 */
static uint64_t due_ns(uint64_t t0, double period_ns, uint64_t i)
{
	return t0 + (uint64_t)((double)i * period_ns);
}

static int load_child(struct session *s)
{
	struct link *in = &s->link[0];
	const struct cell *c = s->cell;
	double period = 1e9 / c->rate;
	uint64_t i, t0 = 0, now, cpu0 = 0;
	int ret;

	ret = link_open(in, ROLE_RX);
	if (!ret)
		ret = session_notify(s);
	for (i = 0; !ret && i < c->warmup + c->count; i++) {
		if (i == c->warmup) {
			cpu0 = bench_cpu_ns();
			session_shared->t_warm_ns = bench_now_ns();
		}
		ret = in->tp->recv(in, i);
		now = bench_now_ns();
		/* Written before message 0 was sent. */
		if (i == 0)
			t0 = __atomic_load_n(&session_shared->t0_ns,
					     __ATOMIC_ACQUIRE);
		if (!ret && i >= c->warmup) {
			uint64_t due = due_ns(t0, period, i);

			hist_add(&session_shared->hist,
				 now > due ? now - due : 0);
		}
	}
	if (!ret) {
		session_shared->child_cpu_ns = bench_cpu_ns() - cpu0;
		session_shared->t_end_ns = bench_now_ns();
	}
	return ret;
}

/* Wait for @due, busy (a sleep would be later than the schedule). */
static int wait_until_due(uint64_t due)
{
	int ret;

	BENCH_SPIN(ret, bench_now_ns() >= due ? 0 : -EAGAIN,
		   "load: waiting to send");
	return ret;
}

static int load_parent(struct session *s)
{
	struct link *out = &s->link[0];
	const struct cell *c = s->cell;
	double period = 1e9 / c->rate;
	uint64_t i, t0;
	int ret;

	ret = link_open(out, ROLE_TX);
	if (!ret)
		ret = session_wait(s, "waiting for the consumer");
	t0 = bench_now_ns() + 1000000; /* a millisecond to get going */
	__atomic_store_n(&session_shared->t0_ns, t0, __ATOMIC_RELEASE);
	for (i = 0; !ret && i < c->warmup + c->count; i++) {
		ret = wait_until_due(due_ns(t0, period, i));
		if (!ret)
			ret = out->tp->send(out, i);
	}
	return ret;
}

static int run_load(const struct cell *c, struct result *res)
{
	struct session s;
	int ret;

	ret = session_start(&s, c, 1, load_child);
	if (!ret)
		ret = load_parent(&s);
	ret = session_end(&s, ret);
	if (!ret) {
		const struct hist *h = &session_shared->hist;

		res->has_latency = res->has_max = true;
		res->p50_ns = (double)hist_percentile(h, 0.50);
		res->p99_ns = (double)hist_percentile(h, 0.99);
		res->p999_ns = (double)hist_percentile(h, 0.999);
		res->max_ns = (double)h->max;
		res->has_rate = true;
		res->mps = res->mps_min = res->mps_max = c->rate;
		res->has_cpu = true;
		res->cpu_ns = (double)session_shared->child_cpu_ns /
			      (double)c->count;
		res->samples = h->n;
		res->reps = 1;
	}
	return ret;
}

/* The offered loads, as fractions of the saturation rate. */
static const double load_fractions[] = { 0.1, 0.5, 0.8, 0.95, 1.0 };
#define N_LOADS (sizeof(load_fractions) / sizeof(load_fractions[0]))

/* A load cell of about @count messages (a warm-up of a tenth first). */
static void cell_init_count(struct cell *c, uint64_t count, double secs)
{
	c->count = clamp_u64(count, 200, 2000000);
	c->warmup = c->count / 10 > 50 ? c->count / 10 : 50;
	c->timeout_s = 30 + (unsigned int)(4 * secs);
}

/*
 * The load scenario of (@tp, @size): its saturation first (the same
 * scenario, flat out), then a row per offered load up to it, each for a
 * fixed time.
 */
int sc_load_rows(const struct transport *tp, size_t size,
		 void (*print)(const struct cell *, const struct result *))
{
	double secs = bench_cfg.quick ? 0.02 : 0.3;
	struct result res;
	struct cell c;
	double top;
	int ret;

	/*
	 * Saturation: the same load cell, everything due at once, so that
	 * the producer sends flat out and the consumer, clock and histogram
	 * included, takes what it can: the rate it sustained is the top.
	 * An uninstrumented throughput run would overstate it, and the 80-
	 * 100% rows would then measure a queue that only grows.
	 */
	cell_init(&c, SC_LOAD, tp, size);
	c.rate = 1e18;
	cell_init_count(&c, c.count, secs);
	memset(&res, 0, sizeof(res));
	ret = run_load(&c, &res);
	if (ret < 0)
		return ret;
	if (session_shared->t_end_ns <= session_shared->t_warm_ns)
		return bench_fail(-EPROTO, "load: no time went by");
	top = (double)c.count * 1e9 /
	      (double)(session_shared->t_end_ns - session_shared->t_warm_ns);
	/* --quick: 80% and full load only, enough to see it work. */
	for (size_t k = bench_cfg.quick ? N_LOADS - 3 : 0; k < N_LOADS;
	     k += bench_cfg.quick ? 2 : 1) {
		cell_init(&c, SC_LOAD, tp, size);
		c.load = load_fractions[k];
		c.rate = top * c.load;
		cell_init_count(&c, (uint64_t)(c.rate * secs), secs);
		memset(&res, 0, sizeof(res));
		ret = run_load(&c, &res);
		if (ret < 0)
			return ret;
		print(&c, &res);
	}
	return 0;
}
