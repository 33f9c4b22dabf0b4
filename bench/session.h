/* SPDX-License-Identifier: MIT */
/*
 * session.h - a session of zbus-bench: one forked child, the links of one
 * cell shared with it, and the block of memory it reports in.
 */
#ifndef ZBUS_BENCH_SESSION_H
#define ZBUS_BENCH_SESSION_H

#include <stdatomic.h>
#include <stdint.h>

#include "bench_util.h"
#include "cell.h"
#include "hist.h"
#include "transport.h"

/* What the child tells the parent; shared, zeroed before each fork(). */
struct shared_block {
	uint64_t t_end_ns;
	uint64_t child_cpu_ns;		/* the child's CPU in the timed part */
	uint64_t t0_ns;			/* load: message 0's intended send */
	uint64_t t_warm_ns;		/* load: the consumer's timed start */
	struct hist hist;		/* load: the consumer's latencies */
	_Atomic uint64_t count;		/* latency, throughput: the timed
					 * messages (session_pick_count()) */
};

/* The one shared block, mapped by session_setup() before any fork(). */
extern struct shared_block *session_shared;

/*
 * struct session - @link[0] carries parent → child, @link[1] (latency only)
 * child → parent; @peer is the child, which writes one byte on its sync
 * pipe each time the parent may go on.
 */
struct session;
typedef int (*child_fn)(struct session *s);

struct session {
	const struct cell *cell;
	struct link link[2];
	unsigned int nlinks;
	struct bench_peer peer;
	child_fn fn;
};

/* Map session_shared; before any session. Return: 0, -ENOMEM. */
int session_setup(void);
/*
 * session_start() - create @nlinks links of cell @c and fork the child,
 * which runs @fn; session_end() reaps it and closes the links, returning
 * @ret or the child's failure (bench_peer_end()).
 */
int session_start(struct session *s, const struct cell *c,
		  unsigned int nlinks, child_fn fn);
int session_end(struct session *s, int ret);
/*
 * session_pick_count() - parent, after the warm-up: how many timed
 * messages (round trips) to run, given that @warm of them took @warm_ns:
 * about the cell's time budget, within [@min, @max]. Published for the
 * child before the first timed message is sent, so a child that reads
 * session_count() after receiving that message sees it (every transport
 * orders a send after the writes before it).
 */
uint64_t session_pick_count(const struct cell *c, uint64_t warm,
			    uint64_t warm_ns, uint64_t min, uint64_t max);
/* Child: the count the parent picked; only after the first timed message. */
uint64_t session_count(void);
/* Child: tell the parent it may go on. */
int session_notify(struct session *s);
/* Parent: wait for the child's word; @what names the wait in errors. */
int session_wait(struct session *s, const char *what);

#endif /* ZBUS_BENCH_SESSION_H */
