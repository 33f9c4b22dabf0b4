/* SPDX-License-Identifier: MIT */
/*
 * sc_fan.c - zbus-bench's fan-out and fan-in scenarios: one parent and
 * FAN children (--fan). In fan-out the parent produces and every child
 * receives every message; in fan-in the children produce and the parent
 * receives them all.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "scenario.h"

/*
 * A transport that one link can serve to several processes (a zbus
 * channel: one publish reaches every subscriber; several publishers claim
 * in one ring) uses a single link; any other gets a link per child, and
 * the parent sends each message on every link (fan-out) or takes them in
 * turn from each (fan-in), as a program using it would.
 */

struct fan_child {
	struct fan *f;
	unsigned int idx;
};

struct fan {
	const struct cell *cell;
	unsigned int n;			/* children */
	unsigned int nlinks;		/* 1 (shared) or n */
	struct link link[MAX_FAN];
	struct bench_peer peer[MAX_FAN];
	struct fan_child child[MAX_FAN];
};

/* What fan children tell the parent, in the shared block. */
struct fan_shared {
	uint64_t t_end_ns[MAX_FAN];
	uint64_t cpu_ns[MAX_FAN];
	/* Set by the parent: 1 warm-up (fan-in), 2 timed part (fan-in),
	 * 3 all done: children exit only then, since a child's exit stops
	 * the parent's waits (bench_stop_requested()) while it may still be
	 * moving messages of the others. */
	uint32_t go;
};

static struct fan_shared *g_fan;

int sc_fan_setup(void)
{
	g_fan = bench_map_shared(sizeof(*g_fan));
	return g_fan ? 0 : -ENOMEM;
}

static bool fan_shares_link(const struct transport *tp)
{
	return tp->recv_any != NULL;
}

static struct link *fan_link(struct fan *f, unsigned int idx)
{
	return &f->link[f->nlinks == 1 ? 0 : idx];
}

static void fan_close_links(struct fan *f)
{
	for (unsigned int i = 0; i < f->nlinks; i++)
		link_close(&f->link[i]);
	f->nlinks = 0;
}

static void fan_child_close(void *arg)
{
	struct fan_child *ch = arg;

	fan_close_links(ch->f);
}

/* Wait for g_fan->go to reach @v (set by the parent). */
static int fan_wait_go(uint32_t v)
{
	int ret;

	BENCH_SPIN(ret, __atomic_load_n(&g_fan->go, __ATOMIC_ACQUIRE) >= v ?
				0 : -EAGAIN,
		   "waiting for the start");
	return ret;
}

/* Fan-out child: receive everything, as the throughput consumer does. */
static int fanout_child(struct bench_peer *p, void *arg)
{
	struct fan_child *ch = arg;
	int ret;

	ret = sc_throughput_consume(fan_link(ch->f, ch->idx), ch->f->cell, p,
				    false, &g_fan->t_end_ns[ch->idx],
				    &g_fan->cpu_ns[ch->idx]);
	return ret ? ret : fan_wait_go(3);
}

/* Fan-in child @idx: a producer whose messages are stamped with its index
 * in the top bits, so that a shared link's consumer can check each
 * producer's order (recv_any). */
static uint64_t fan_stamp(unsigned int idx, uint64_t i)
{
	return ((uint64_t)idx << 40) | i;
}

static int fanin_child(struct bench_peer *p, void *arg)
{
	struct fan_child *ch = arg;
	const struct cell *c = ch->f->cell;
	struct link *out = fan_link(ch->f, ch->idx);
	bool shared = ch->f->nlinks == 1;
	uint64_t i, cpu0;
	int ret;

	ret = link_open(out, ROLE_TX);
	if (!ret)
		ret = bench_peer_notify(p);
	if (!ret)
		ret = fan_wait_go(1);
	for (i = 0; !ret && i < c->warmup; i++)
		ret = out->tp->send(out, shared ? fan_stamp(ch->idx, i) : i);
	if (!ret)
		ret = fan_wait_go(2);
	cpu0 = bench_cpu_ns();
	for (; !ret && i < c->warmup + c->count; i++)
		ret = out->tp->send(out, shared ? fan_stamp(ch->idx, i) : i);
	if (!ret) {
		g_fan->cpu_ns[ch->idx] = bench_cpu_ns() - cpu0;
		ret = fan_wait_go(3);
	}
	return ret;
}

static int fan_start(struct fan *f, const struct cell *c, unsigned int n,
		     bench_child_fn fn, bool in)
{
	int ret = 0;

	memset(f, 0, sizeof(*f));
	f->cell = c;
	f->n = n;
	for (unsigned int i = 0; i < MAX_FAN; i++) {
		f->peer[i].pid = -1;
		f->peer[i].sync_fd = -1;
	}
	for (unsigned int i = 0; !ret && i < (fan_shares_link(c->tp) ? 1 : n);
	     i++) {
		f->link[i].tp = c->tp;
		f->link[i].size = c->size;
		f->link[i].geom = c->geom;
		f->link[i].shared_tx = in && fan_shares_link(c->tp);
		f->nlinks++;
		ret = c->tp->create(&f->link[i]);
	}
	memset(g_fan, 0, sizeof(*g_fan));
	/* Children go where the scheduler puts them: with more of them than
	 * cores, pinning would only choose who waits. */
	for (unsigned int i = 0; !ret && i < n; i++) {
		f->child[i] = (struct fan_child){ f, i };
		ret = bench_peer_start(&f->peer[i], c->timeout_s, -1, fn,
				       fan_child_close, &f->child[i]);
	}
	return ret;
}

static int fan_wait_all(struct fan *f, const char *what)
{
	int ret = 0;

	for (unsigned int i = 0; !ret && i < f->n; i++)
		ret = bench_peer_wait(&f->peer[i], what);
	return ret;
}

static int fan_end(struct fan *f, int ret)
{
	for (unsigned int i = 0; i < f->n; i++)
		if (f->peer[i].pid > 0 || f->peer[i].sync_fd >= 0)
			ret = bench_peer_end(&f->peer[i], ret);
	fan_close_links(f);
	return ret;
}

/* Parent of a fan-out: send every message once per link. */
static int fanout_send(struct fan *f, uint64_t i)
{
	int ret = 0;

	for (unsigned int k = 0; !ret && k < f->nlinks; k++)
		ret = f->link[k].tp->send(&f->link[k], i);
	return ret;
}

static int run_fanout(const struct cell *c, unsigned int n,
		      struct result *res)
{
	uint64_t i, t0 = 0, t_end = 0, cpu0 = 0, cpu = 0;
	struct fan f;
	int ret;

	ret = fan_start(&f, c, n, fanout_child, false);
	for (unsigned int k = 0; !ret && k < f.nlinks; k++)
		ret = link_open(&f.link[k], ROLE_TX);
	if (!ret)
		ret = fan_wait_all(&f, "waiting for the consumers");
	for (i = 0; !ret && i < c->warmup; i++)
		ret = fanout_send(&f, i);
	if (!ret)
		ret = fan_wait_all(&f, "waiting for the warm-up to drain");
	t0 = bench_now_ns();
	cpu0 = bench_cpu_ns();
	for (; !ret && i < c->warmup + c->count; i++)
		ret = fanout_send(&f, i);
	cpu = bench_cpu_ns() - cpu0;
	__atomic_store_n(&g_fan->go, 3, __ATOMIC_RELEASE);
	ret = fan_end(&f, ret);
	for (unsigned int k = 0; !ret && k < n; k++) {
		if (g_fan->t_end_ns[k] > t_end)
			t_end = g_fan->t_end_ns[k];
		cpu += g_fan->cpu_ns[k];
	}
	if (!ret && t_end <= t0)
		ret = bench_fail(-EPROTO, "fan-out: consumers finished before "
				 "the producer started");
	if (!ret) {
		/* Messages published per second, each reaching every one. */
		res->has_rate = true;
		res->mps = res->mps_min = res->mps_max =
			(double)c->count * 1e9 / (double)(t_end - t0);
		res->has_cpu = true;
		res->cpu_ns = (double)cpu / (double)c->count;
		res->samples = c->count;
		res->reps = 1;
	}
	return ret;
}

/* Parent of a fan-in over a shared link: any producer's next message,
 * checked against that producer's own count. */
static int fanin_recv_shared(struct fan *f, uint64_t *next)
{
	struct link *l = &f->link[0];
	uint64_t stamp, idx, i;
	int ret = l->tp->recv_any(l, &stamp);

	if (ret < 0)
		return ret;
	idx = stamp >> 40;
	i = stamp & ((1ull << 40) - 1);
	if (idx >= f->n || i != next[idx])
		return bench_fail(-EBADMSG, "fan-in: message %" PRIu64 " of "
				  "producer %" PRIu64 " out of order",
				  i, idx);
	next[idx]++;
	return 0;
}

/* Receive @k messages from every producer, from @from on. */
static int fanin_recv(struct fan *f, uint64_t from, uint64_t k,
		      uint64_t *next)
{
	int ret = 0;

	if (f->nlinks == 1) {
		for (uint64_t j = 0; !ret && j < k * f->n; j++)
			ret = fanin_recv_shared(f, next);
		return ret;
	}
	/* A link per producer: in turn, as a reader of n sockets would. */
	for (uint64_t i = from; !ret && i < from + k; i++)
		for (unsigned int p = 0; !ret && p < f->n; p++)
			ret = f->link[p].tp->recv(&f->link[p], i);
	return ret;
}

static int run_fanin(const struct cell *c, unsigned int n,
		     struct result *res)
{
	uint64_t next[MAX_FAN] = { 0 }, t0 = 0, t_end = 0, cpu0, cpu = 0;
	struct fan f;
	int ret;

	ret = fan_start(&f, c, n, fanin_child, true);
	for (unsigned int k = 0; !ret && k < f.nlinks; k++)
		ret = link_open(&f.link[k], ROLE_RX);
	if (!ret)
		ret = fan_wait_all(&f, "waiting for the producers");
	__atomic_store_n(&g_fan->go, 1, __ATOMIC_RELEASE);
	if (!ret)
		ret = fanin_recv(&f, 0, c->warmup, next);
	t0 = bench_now_ns();
	cpu0 = bench_cpu_ns();
	__atomic_store_n(&g_fan->go, 2, __ATOMIC_RELEASE);
	if (!ret)
		ret = fanin_recv(&f, c->warmup, c->count, next);
	t_end = bench_now_ns();
	cpu = bench_cpu_ns() - cpu0;
	__atomic_store_n(&g_fan->go, 3, __ATOMIC_RELEASE);
	ret = fan_end(&f, ret);
	for (unsigned int k = 0; !ret && k < n; k++)
		cpu += g_fan->cpu_ns[k];
	if (!ret) {
		/* Messages received per second, from all producers. */
		res->has_rate = true;
		res->mps = res->mps_min = res->mps_max =
			(double)c->count * n * 1e9 / (double)(t_end - t0);
		res->has_cpu = true;
		res->cpu_ns = (double)cpu / (double)(c->count * n);
		res->samples = c->count * n;
		res->reps = 1;
	}
	return ret;
}

const char *sc_fan_skip(enum scenario sc, const struct transport *tp,
			size_t size)
{
	if (sc == SC_FANIN && fan_shares_link(tp) && size < 16)
		return "fan-in over one channel stamps each producer's "
		       "messages: 16 bytes or more";
	return NULL;
}

int sc_fan_rows(enum scenario sc, const struct transport *tp, size_t size,
		void (*print)(const struct cell *, const struct result *))
{
	struct result res;
	struct cell c;
	int ret;

	for (unsigned int k = 0; k < bench_cfg.nfans; k++) {
		cell_init(&c, SC_THROUGHPUT, tp, size);
		c.sc = sc;
		c.fan = bench_cfg.fans[k];
		c.timeout_s *= c.fan;
		/* A socket moves each message once per child, and busy-polling
		 * transports take turns at the scheduler's pace once there
		 * are more processes than cores (iceoryx: about 3000
		 * messages a second): keep the run about as long as a
		 * throughput cell. */
		if (c.count > 10000)
			c.count = 10000;
		memset(&res, 0, sizeof(res));
		if (sc == SC_FANOUT)
			ret = run_fanout(&c, c.fan, &res);
		else
			ret = run_fanin(&c, c.fan, &res);
		if (ret < 0)
			return ret;
		print(&c, &res);
	}
	return 0;
}
