/* SPDX-License-Identifier: MIT */
/*
 * tp_ring.c - zbus-bench's "shm-ring" transport: a bare single-producer
 * single-consumer ring (struct shm_ring) in a mapping shared across fork(),
 * busy-polled on both sides: the floor the hardware allows.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>

#include "transport.h"

static int ring_create(struct link *l)
{
	struct rlink *r = &l->r;
	void *p;

	r->slot_bytes = bench_round_up(l->size, CACHE_LINE);
	r->mask = l->geom.slots - 1;
	r->map_bytes = sizeof(struct shm_ring) +
		       (size_t)l->geom.slots * r->slot_bytes;
	/* MAP_SHARED before fork(): both processes see the same pages. */
	p = mmap(NULL, r->map_bytes, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return bench_fail(-errno, "mmap(%zu)", r->map_bytes);
	r->ring = p;
	/* Atomics shared between processes must be lock-free (address-free). */
	if (!atomic_is_lock_free(&r->ring->prod_tail))
		return bench_fail(-ENOTSUP, "shm-ring: 64-bit atomics are not "
				  "lock-free");
	atomic_init(&r->ring->prod_tail, 0);
	atomic_init(&r->ring->cons_head, 0);
	return 0;
}

static int ring_open(struct link *l, enum role role)
{
	(void)role;
	l->r.pos = 0;
	l->r.peer = 0;
	return 0;
}

static void ring_close(struct link *l)
{
	if (l->r.ring)
		munmap(l->r.ring, l->r.map_bytes);
	l->r.ring = NULL;
}

static unsigned char *ring_slot(const struct rlink *r, uint64_t pos)
{
	return (unsigned char *)r->ring + sizeof(struct shm_ring) +
	       (pos & r->mask) * r->slot_bytes;
}

static int ring_try_reserve(struct rlink *r)
{
	if (r->pos - r->peer <= r->mask)
		return 0;
	/*
	 * Acquire pairs with the release of cons_head in ring_recv(): the
	 * consumer is done reading a slot before we overwrite it.
	 */
	r->peer = atomic_load_explicit(&r->ring->cons_head,
				       memory_order_acquire);
	return r->pos - r->peer <= r->mask ? 0 : -EAGAIN;
}

static int ring_try_peek(struct rlink *r)
{
	if (r->peer != r->pos)
		return 0;
	/*
	 * Acquire pairs with the release of prod_tail in ring_send(): the
	 * payload is visible once the index that announces it is.
	 */
	r->peer = atomic_load_explicit(&r->ring->prod_tail,
				       memory_order_acquire);
	return r->peer != r->pos ? 0 : -EAGAIN;
}

static int ring_send(struct link *l, uint64_t seq)
{
	struct rlink *r = &l->r;
	int ret;

	BENCH_SPIN(ret, ring_try_reserve(r), "shm-ring send");
	if (ret < 0)
		return ret;
	bench_payload_fill(ring_slot(r, r->pos), l->size, seq);
	r->pos++;
	/* Release pairs with the acquire in ring_try_peek(). */
	atomic_store_explicit(&r->ring->prod_tail, r->pos,
			      memory_order_release);
	return 0;
}

static int ring_recv(struct link *l, uint64_t seq)
{
	struct rlink *r = &l->r;
	int ret;

	BENCH_SPIN(ret, ring_try_peek(r), "shm-ring recv");
	if (ret < 0)
		return ret;
	ret = bench_payload_check(ring_slot(r, r->pos), l->size, seq);
	if (ret < 0)
		return ret;
	r->pos++;
	/* Release pairs with the acquire in ring_try_reserve(). */
	atomic_store_explicit(&r->ring->cons_head, r->pos,
			      memory_order_release);
	return 0;
}

const struct transport tp_shm_ring = {
	.name = "shm-ring", .copies = false,
	.create = ring_create, .open = ring_open,
	.send = ring_send, .recv = ring_recv, .close = ring_close,
};
