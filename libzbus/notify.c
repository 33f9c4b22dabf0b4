/* SPDX-License-Identifier: MIT */
/*
 * notify.c - the pollable fd of a subscription.
 *
 * A futex cannot be polled and a producer does not hold its subscribers'
 * fds (they may live in any process, under any user), so the subscriber's
 * own process bridges the two: a thread sleeps on the subscription's futex
 * exactly as a blocking receive would and writes an eventfd when messages
 * become ready. It costs no CPU while the channel is idle.
 */
#include "notify.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util.h"
#include "wait.h"

struct zb_notify {
	struct zb_ring_sub *ring;
	pthread_t thread;
	int efd;
	uint32_t stop; /* atomic: set by zb_notify_stop() */
	uint64_t next; /* first seq not yet signalled */
};

static void signal_fd(int efd)
{
	uint64_t one = 1;

	/* Non-blocking: EAGAIN means the counter is saturated, i.e. it is
	 * already readable. */
	while (write(efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/*
 * Worth a signal, or a look: message @seq is ready, or its slot already
 * holds a later lap (the subscriber took it and producers moved on, so
 * whatever is pending lies further ahead).
 */
static int worth_a_look(const struct zb_ring_sub *ring, uint64_t seq)
{
	const struct zb_desc *d =
		&ring->seg->ring[seq & (ring->seg->g.ring_capacity - 1)];
	uint64_t c = zb_load64_acquire(&d->commit);

	if (c && (int64_t)((c - 1) - seq) > 0)
		return 1;
	return zb_ring_ready(ring, seq);
}

static void *watch(void *arg)
{
	struct zb_notify *n = arg;
	uint32_t cap = n->ring->seg->g.ring_capacity;

	while (!zb_load32_acquire(&n->stop)) {
		uint64_t released;
		uint32_t k = 0;

		/*
		 * The subscriber drains without us: it may have taken and
		 * released messages we never looked at, after which their
		 * slots hold later laps and would never look ready at our
		 * seq again. Never watch behind what it has released.
		 * Acquire pairs with the release in zb_ring_release().
		 */
		released = zb_load64_acquire(&n->ring->slot->cons_seq);
		if ((int64_t)(released - n->next) > 0)
			n->next = released;
		if (!worth_a_look(n->ring, n->next)) {
			zb_ring_sleep(n->ring, n->next, ZB_NEVER, &n->stop);
			continue;
		}
		/*
		 * Step over everything ready now, then signal: a message that
		 * becomes ready after the signal lies beyond @next, so its
		 * commit wakes us for a signal of its own. Signalling first
		 * would let a commit land between the signal and the step,
		 * after the subscriber drained: stepped over, never announced.
		 * Bounded by one ring so an overrun lossy stream cannot keep
		 * us here.
		 */
		while (k++ < cap && worth_a_look(n->ring, n->next))
			n->next++;
		signal_fd(n->efd);
	}
	return NULL;
}

int zb_notify_start(struct zb_ring_sub *ring, struct zb_notify **out)
{
	struct zb_notify *n = calloc(1, sizeof(*n));
	sigset_t all, old;
	int r;

	if (!n)
		return -ENOMEM;
	n->ring = ring;
	n->next = ring->read_seq;
	n->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->efd < 0) {
		r = -errno;
		free(n);
		return r;
	}
	/* The thread must not take the application's signals. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&n->thread, NULL, watch, n);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		close(n->efd);
		free(n);
		return r;
	}
	*out = n;
	return 0;
}

int zb_notify_fd(const struct zb_notify *n)
{
	return n->efd;
}

struct zb_notify *zb_notify_stop(struct zb_notify *n)
{
	if (!n)
		return NULL;
	zb_store32_release(&n->stop, 1);
	zb_ring_kick(n->ring);
	pthread_join(n->thread, NULL);
	close(n->efd);
	free(n);
	return NULL;
}
