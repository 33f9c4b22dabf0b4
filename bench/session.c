/* SPDX-License-Identifier: MIT */
/*
 * session.c - zbus-bench's sessions: one forked child and the links shared
 * with it (session.h).
 */
#include <errno.h>
#include <string.h>

#include "session.h"

struct shared_block *session_shared;

int session_setup(void)
{
	session_shared = bench_map_shared(sizeof(*session_shared));
	return session_shared ? 0 : -ENOMEM;
}

static void session_close_links(void *arg)
{
	struct session *s = arg;
	unsigned int i;

	for (i = 0; i < s->nlinks; i++)
		link_close(&s->link[i]);
	s->nlinks = 0;
}

uint64_t session_pick_count(const struct cell *c, uint64_t warm,
			    uint64_t warm_ns, uint64_t min, uint64_t max)
{
	double per = warm ? (double)warm_ns / (double)warm : 0;
	uint64_t n = max;

	/* A slow transport or a huge size runs for the budget, not for a
	 * count sized for the fastest one: the suite must end in time. */
	if (per > 0 && c->budget_s * 1e9 / per < (double)max)
		n = (uint64_t)(c->budget_s * 1e9 / per);
	n = clamp_u64(n, min < max ? min : max, max);
	atomic_store_explicit(&session_shared->count, n, memory_order_release);
	return n;
}

uint64_t session_count(void)
{
	return atomic_load_explicit(&session_shared->count,
				    memory_order_acquire);
}

int session_notify(struct session *s)
{
	return bench_peer_notify(&s->peer);
}

int session_wait(struct session *s, const char *what)
{
	return bench_peer_wait(&s->peer, what);
}

static int run_child_fn(struct bench_peer *p, void *arg)
{
	struct session *s = arg;

	(void)p;
	return s->fn(s);
}

int session_start(struct session *s, const struct cell *c,
		  unsigned int nlinks, child_fn fn)
{
	int ret;
	unsigned int i;

	memset(s, 0, sizeof(*s));
	s->cell = c;
	s->fn = fn;
	s->peer.pid = -1;
	s->peer.sync_fd = -1;
	for (i = 0; i < nlinks; i++) {
		s->link[i].tp = c->tp;
		s->link[i].size = c->size;
		s->link[i].geom = c->geom;
		s->nlinks++;
		ret = c->tp->create(&s->link[i]);
		if (ret < 0)
			return ret;
	}
	memset(session_shared, 0, sizeof(*session_shared));
	return bench_peer_start(&s->peer, c->timeout_s,
				bench_consumer_cpu(&bench_cfg.cpus),
				run_child_fn, session_close_links, s);
}

int session_end(struct session *s, int ret)
{
	ret = bench_peer_end(&s->peer, ret);
	session_close_links(s);
	return ret;
}
