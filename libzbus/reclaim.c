/* SPDX-License-Identifier: MIT */
/*
 * reclaim.c - taking back the claims of dead or stuck producers.
 *
 * A claim that is never committed stops every subscriber at its seq: they
 * read in order. The broker ends that in two ways. When a publisher it
 * watches dies, it pads the loans the publisher recorded in its slot
 * (zb_reclaim_publisher()), within milliseconds. And on a timer it pads any
 * claim still open after the channel's unblock timeout
 * (zb_reclaim_unblock()): a stuck producer, or a dead one whose claim no
 * record names (killed between its claim and its record, or holding more
 * loans than a slot records).
 *
 * Padding races with a late publish for the commit word; both CAS it
 * forward from below seq + 1, so exactly one wins (ring_pub.c). A producer
 * that lost learns it from its publish (-ECANCELED); whatever it wrote into
 * its loan meanwhile may land in arena space that was since handed out
 * again, which is why the timeout must sit far above any legitimate hold.
 */
#include "reclaim.h"

#include <errno.h>

#include "ring.h"
#include "util.h"

int zb_reclaim_pad(struct zb_segment *seg, uint64_t seq)
{
	uint32_t cap = seg->g.ring_capacity;
	uint64_t claim = zb_load64_acquire(&seg->ctl->claim_seq);
	struct zb_desc *d = &seg->ring[seq & (cap - 1)];

	/* A sealed channel (mapped read-only here) has one publisher for
	 * life: once it is gone nobody could publish after the pad anyway. */
	if (!seg->writable)
		return 0;

	/* Claimed, and its slot not claimed again since. */
	if ((int64_t)(claim - seq) <= 0 || claim - seq > cap)
		return 0;
	if (zb_commit_advance(&d->commit, zb_load64_acquire(&d->commit), seq,
			      ZB_COMMIT_PADDED | (seq + 1)))
		return 0;
	zb_ring_wake_sleepers(seg, seq);
	return 1;
}

/* Take one publisher out of the count, never below zero. */
static void uncount_publisher(struct zb_ctl *ctl, uint32_t slot_flags)
{
	uint32_t *pubs = &ctl->publishers;

	if (slot_flags & ZB_PUB_SLOT_EXCLUSIVE) {
		zb_cas32(pubs, ZB_PUB_EXCLUSIVE_MARK, 0);
		return;
	}
	for (int tries = 0; tries < 64; tries++) {
		uint32_t n = zb_load32(pubs);

		if (!n || (n & ZB_PUB_EXCLUSIVE_MARK) ||
		    zb_cas32(pubs, n, n - 1))
			return;
	}
}

int zb_reclaim_publisher(struct zb_segment *seg, uint32_t idx, uint32_t word)
{
	uint64_t loans[ZB_PUB_LOANS];
	struct zb_pub_slot *sl;
	uint32_t flags;
	int n = 0;

	if (idx >= seg->g.max_pubs ||
	    (word & ZB_SLOT_STATE_MASK) != ZB_SLOT_ACTIVE)
		return -ESRCH;
	if (!seg->writable) /* sealed: see zb_reclaim_pad() */
		return 0;
	sl = &seg->pubs[idx];
	if (zb_load32_acquire(&sl->state) != word)
		return -ESRCH;
	/* Copy the records before freeing the slot: once free, a new
	 * publisher may take it and record loans of its own. */
	flags = zb_load32(&sl->flags);
	for (uint32_t i = 0; i < ZB_PUB_LOANS; i++)
		loans[i] = zb_load64(&sl->loans[i]);
	if (!zb_slot_free(&sl->state, word))
		return -ESRCH;
	for (uint32_t i = 0; i < ZB_PUB_LOANS; i++)
		if (loans[i])
			n += zb_reclaim_pad(seg, loans[i] - 1);
	uncount_publisher(seg->ctl, flags);
	return n;
}

uint64_t zb_reclaim_unblock(struct zb_segment *seg, struct zb_unblock *u,
			    uint64_t now_ns, uint64_t timeout_ns)
{
	uint32_t cap = seg->g.ring_capacity;
	uint64_t claim = zb_load64_acquire(&seg->ctl->claim_seq), padded = 0;

	if (!seg->writable) /* sealed: see zb_reclaim_pad() */
		return 0;
	if (!u->started) {
		/* Whatever is open in the last ring's worth may have been
		 * claimed long ago (a broker that restarted): time it from
		 * now. */
		u->head = claim > cap ? claim - cap : 0;
		u->mark = claim;
		u->since_ns = now_ns;
		u->started = 1;
	}
	if ((int64_t)(claim - u->head) < 0) {
		/* The claim went back: a peer rewrote it. Start over. */
		u->head = u->mark = claim;
		u->since_ns = now_ns;
		return 0;
	}
	if (claim - u->head > cap)
		u->head = claim - cap; /* older slots were claimed again */
	for (uint32_t n = 0; u->head != claim && n < cap; n++) {
		struct zb_desc *d = &seg->ring[u->head & (cap - 1)];

		if (!zb_commit_reached(zb_load64_acquire(&d->commit),
				       u->head + 1))
			break;
		u->head++;
	}
	if ((int64_t)(u->head - u->mark) >= 0) {
		/* All that was open at since_ns is closed: look afresh. */
		u->mark = claim;
		u->since_ns = now_ns;
		return 0;
	}
	if (now_ns - u->since_ns < timeout_ns)
		return 0;
	for (uint64_t s = u->head; s != u->mark; s++)
		padded += (uint64_t)zb_reclaim_pad(seg, s);
	u->mark = claim;
	u->since_ns = now_ns;
	return padded;
}
