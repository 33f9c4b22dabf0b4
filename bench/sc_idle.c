/* SPDX-License-Identifier: MIT */
/*
 * sc_idle.c - zbus-bench's idle scenario: the CPU a consumer burns while
 * it waits for a message.
 */
#include <stdint.h>
#include <unistd.h>

#include "scenario.h"
#include "session.h"

/*
 * Idle: what a consumer burns while nothing comes. It waits for a message
 * the producer sends only after IDLE_MS; the CPU time it took meanwhile,
 * per second, is the cost of waiting (a busy-polling consumer burns a
 * whole core, a blocking one next to nothing).
 */
#define IDLE_MS 1000

static int idle_child(struct session *s)
{
	struct link *in = &s->link[0];
	uint64_t cpu0;
	int ret;

	ret = link_open(in, ROLE_RX);
	if (!ret)
		ret = session_notify(s);
	cpu0 = bench_cpu_ns();
	if (!ret)
		ret = in->tp->recv(in, 0);
	if (!ret)
		session_shared->child_cpu_ns = bench_cpu_ns() - cpu0;
	return ret;
}

int sc_idle_run(const struct cell *c, struct result *res)
{
	unsigned int ms = bench_cfg.quick ? IDLE_MS / 10 : IDLE_MS;
	struct session s;
	uint64_t t0 = 0;
	int ret;

	ret = session_start(&s, c, 1, idle_child);
	if (!ret)
		ret = link_open(&s.link[0], ROLE_TX);
	if (!ret)
		ret = session_wait(&s, "waiting for the consumer");
	if (!ret) {
		t0 = bench_now_ns();
		usleep(ms * 1000u);
		ret = s.link[0].tp->send(&s.link[0], 0);
	}
	ret = session_end(&s, ret);
	if (!ret) {
		/* CPU nanoseconds per second waited: a fraction of a core. */
		res->has_cpu = true;
		res->cpu_ns = (double)session_shared->child_cpu_ns * 1e9 /
			      (double)(bench_now_ns() - t0);
		res->samples = 1;
		res->reps = 1;
	}
	return ret;
}
