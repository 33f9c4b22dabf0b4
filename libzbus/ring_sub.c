/* SPDX-License-Identifier: MIT */
/*
 * ring_sub.c - the subscriber side of the descriptor ring.
 *
 * A subscription owns one slot of the subscriber table. It reads messages
 * in sequence order; each descriptor is read once with a seqlock (commit
 * before and after the fields) into private memory, validated there with
 * overflow-safe arithmetic, and only then used. A bad descriptor costs that
 * message only.
 *
 * Reliable subscriptions publish how far they have released (cons_seq,
 * cons_pos) and producers never overwrite beyond it. Lossy ones publish
 * nothing the producers wait for; they detect being overrun (the slot holds
 * a later message, or the claim is more than one ring ahead) and skip ahead,
 * counting exactly the sequence numbers they skipped, and check after the
 * fact that a payload was not overwritten while they read it (invariant 4
 * of ring_pub.c).
 */
#include "ring.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "wait.h"
#include "zbus/zbus.h"

static struct zb_desc *desc_of(const struct zb_ring_sub *s, uint64_t seq)
{
	return &s->seg->ring[seq & (s->seg->g.ring_capacity - 1)];
}

int zb_ring_sub_join(struct zb_ring_sub *s, struct zb_segment *seg,
		     uint32_t policy)
{
	struct zb_ctl *ctl = seg->ctl;

	memset(s, 0, sizeof(*s));
	s->seg = seg;
	s->policy = policy;
	s->fence = !zb_membarrier_register();
	for (uint32_t i = 0; i < seg->g.max_subs; i++) {
		struct zb_sub_slot *sl = &seg->slots[i];
		uint32_t gen;
		uint64_t seq, pos;

		if (!zb_slot_take(&sl->state, &gen))
			continue;
		s->slot = sl;
		s->slot_idx = i;
		zb_store32(&sl->policy, policy);
		zb_store32(&sl->pid, (uint32_t)getpid());
		zb_store64(&sl->wait_seq, 0);
		zb_store64(&sl->gen, zb_load64(&sl->gen) + 1);
		zb_store64(&sl->missed, 0);
		zb_store64(&sl->cons_pos, zb_load64_acquire(&ctl->claim_pos));
		zb_store64(&sl->cons_seq, zb_load64_acquire(&ctl->claim_seq));
		/* Release pairs with the acquire in scan_limits(). */
		s->slot_word = gen | ZB_SLOT_ACTIVE;
		zb_store32_release(&sl->state, s->slot_word);
		zb_fence_full();
		/*
		 * Start at a claim read after becoming visible (invariant 3 of
		 * ring_pub.c): producers that did not see us yet computed
		 * their limits from an older claim. pos is read before seq so
		 * that cons_pos never exceeds the start of message cons_seq.
		 */
		pos = zb_load64_acquire(&ctl->claim_pos);
		seq = zb_load64_acquire(&ctl->claim_seq);
		zb_store64_release(&sl->cons_pos, pos);
		zb_store64_release(&sl->cons_seq, seq);
		s->read_seq = s->held_seq = seq;
		s->read_pos = pos;
		return 0;
	}
	return -ENOSPC;
}

void zb_ring_sub_leave(struct zb_ring_sub *s)
{
	if (!s->slot)
		return;
	zb_ring_free_slot(s->seg, s->slot_idx, s->slot_word);
	s->slot = NULL;
}

int zb_ring_free_slot(struct zb_segment *seg, uint32_t idx, uint32_t word)
{
	struct zb_sub_ctl *sctl = seg->sctl;
	struct zb_sub_slot *sl;

	if (idx >= seg->g.max_subs ||
	    (word & ZB_SLOT_STATE_MASK) != ZB_SLOT_ACTIVE)
		return 0;
	sl = &seg->slots[idx];
	/* Exactly this subscription: same state and generation. */
	if (!zb_slot_free(&sl->state, word))
		return 0;
	zb_and64(&sctl->sleepers[idx / 64], ~(1ull << (idx % 64)));
	/* A producer may be asleep waiting for it: let it rescan (the CAS
	 * above is a full barrier before this load). */
	if (zb_load32(&sctl->prod_waiters)) {
		zb_fetch_add32(&sctl->prod_futex, 1);
		zb_futex_wake_all(&sctl->prod_futex);
	}
	return 1;
}

/* Lossy: is the subscription more than one ring behind the claim? */
static int overrun(const struct zb_ring_sub *s, uint64_t seq, uint64_t commit)
{
	uint64_t claim = zb_load64_acquire(&s->seg->ctl->claim_seq);
	uint64_t ahead = claim - seq;

	commit = ZB_COMMIT_SEQ(commit);
	if (commit && (int64_t)((commit - 1) - seq) > 0)
		return 1; /* the slot already holds a later message */
	return ahead > s->seg->g.ring_capacity && ahead < (1ull << 63);
}

void zb_ring_prefetch_next(const struct zb_ring_sub *s)
{
	/*
	 * Arena order is sequence order, so the next payload starts where
	 * the last one ended (unless it pads to the next lap). Fetching that
	 * line while we poll the descriptor overlaps the two cache misses a
	 * new message costs, instead of taking them one after the other.
	 */
	__builtin_prefetch(s->seg->arena +
			   (s->read_pos & (s->seg->g.arena_size - 1)));
}

int zb_ring_ready(const struct zb_ring_sub *s, uint64_t seq)
{
	uint64_t c = zb_load64_acquire(&desc_of(s, seq)->commit);

	if (c == seq + 1 || c == (ZB_COMMIT_PADDED | (seq + 1)))
		return 1;
	return s->policy == ZBUS_LOSSY && overrun(s, seq, c);
}

/* Lossy: skip to where the ring still holds messages, counting them. */
static void skip_ahead(struct zb_ring_sub *s)
{
	uint64_t claim = zb_load64_acquire(&s->seg->ctl->claim_seq);
	uint32_t cap = s->seg->g.ring_capacity;
	/* Land half a ring behind the claim: far enough from the producers
	 * not to be overrun again at once, recent enough to be useful. */
	uint64_t to = claim - cap / 2;

	if ((int64_t)(to - s->read_seq) <= 0)
		to = s->read_seq + 1;
	s->pending_missed += to - s->read_seq;
	s->missed += to - s->read_seq;
	s->read_seq = to;
	/* read_pos stays: a lossy subscriber's cons_pos is not used. */
}

int zb_ring_msg_intact(const struct zb_ring_sub *s,
		       const struct zb_ring_msg *m)
{
	uint64_t claim_pos;

	/* Our reads of the payload happen before this load (seqlock). */
	zb_fence_read();
	claim_pos = zb_load64_acquire(&s->seg->ctl->claim_pos);
	return claim_pos - m->pos <= s->seg->g.arena_size;
}

int zb_ring_held_intact(const struct zb_ring_sub *s)
{
	uint64_t claim_pos;

	if (s->policy != ZBUS_LOSSY || !s->holding)
		return 1;
	zb_fence_read();
	claim_pos = zb_load64_acquire(&s->seg->ctl->claim_pos);
	return claim_pos - s->oldest_pos <= s->seg->g.arena_size;
}

enum zb_read zb_ring_read(struct zb_ring_sub *s, struct zb_ring_msg *m)
{
	const struct zb_geometry *g = &s->seg->g;
	uint64_t e = s->read_seq, c1, c2, pos, off;
	struct zb_desc *d = desc_of(s, e);
	uint32_t len, flags, pub_id;

	/* Acquire pairs with the release of commit in zb_ring_commit(). */
	c1 = zb_load64_acquire(&d->commit);
	if (c1 == (ZB_COMMIT_PADDED | (e + 1))) {
		/* The broker took this claim back from a dead or stuck
		 * producer: a loss, with no payload and no arena range we
		 * know of (the next message's release covers it). */
		s->reclaimed++;
		s->pending_missed++;
		s->read_seq = e + 1;
		return ZB_READ_SKIPPED;
	}
	if (c1 != e + 1) {
		if (s->policy == ZBUS_LOSSY && overrun(s, e, c1)) {
			skip_ahead(s);
			return ZB_READ_SKIPPED;
		}
		zb_ring_prefetch_next(s);
		return ZB_READ_EMPTY;
	}
	pos = zb_load64(&d->pos);
	len = zb_load32(&d->length);
	flags = zb_load32(&d->flags);
	pub_id = zb_load32(&d->pub_id);
	zb_fence_read();
	c2 = zb_load64(&d->commit);
	/*
	 * Rewritten under us? The commit changed, or (lossy) the slot was
	 * claimed again: that claim is ordered before any write of the new
	 * message, so if we read anything of it we see the claim here
	 * (invariant 4 of ring_pub.c). For a reliable reader either means a
	 * producer broke the protocol.
	 */
	if (c2 != c1 ||
	    (s->policy == ZBUS_LOSSY &&
	     zb_load64_acquire(&s->seg->ctl->claim_seq) - e >
		     g->ring_capacity)) {
		if (s->policy == ZBUS_LOSSY) {
			s->missed++;
			s->pending_missed++;
			s->read_seq++;
			return ZB_READ_SKIPPED;
		}
		goto bad;
	}

	/* Validate the private copy: nothing below trusts shared memory. */
	if (flags & ~ZB_DESC_KNOWN_FLAGS)
		goto bad;
	off = pos & (g->arena_size - 1);
	/* A reference is its record, whatever the channel's message size
	 * (the arena always holds two aligned records). */
	if ((flags & ZB_DESC_REF) ?
		    len != sizeof(struct zb_ref) || (flags & ZB_DESC_ABANDONED) :
		    len > g->max_msg_size)
		goto bad;
	if (off + len > g->arena_size)
		goto bad;
	/* Arena order is sequence order: a message starts at or after the
	 * previous one's end and within one lap of it. */
	if (s->policy == ZBUS_RELIABLE && pos - s->read_pos > g->arena_size)
		goto bad;

	s->read_seq = e + 1;
	if (flags & ZB_DESC_ABANDONED) {
		s->abandoned++;
		s->read_pos = pos;
		return ZB_READ_SKIPPED;
	}
	m->seq = e;
	m->pos = pos;
	m->len = len;
	m->pub_id = pub_id;
	m->flags = flags & ZB_DESC_REF;
	m->data = s->seg->arena + off;
	if (s->policy == ZBUS_LOSSY && !zb_ring_msg_intact(s, m)) {
		s->missed++;
		s->pending_missed++;
		return ZB_READ_SKIPPED;
	}
	s->read_pos = pos + zb_align_up(len, ZB_ARENA_ALIGN);
	if (!s->holding)
		s->oldest_pos = pos;
	s->holding++;
	m->missed = s->pending_missed;
	s->pending_missed = 0;
	s->received++;
	return ZB_READ_MSG;

bad:
	s->bad++;
	s->read_seq = e + 1;
	return ZB_READ_BAD;
}

void zb_ring_release(struct zb_ring_sub *s)
{
	struct zb_sub_ctl *sctl = s->seg->sctl;
	struct zb_sub_slot *sl = s->slot;

	s->holding = 0;
	if (s->held_seq == s->read_seq)
		return;
	s->held_seq = s->read_seq;
	/* Release pairs with the acquire in scan_limits(): our reads of the
	 * payloads happen before the producer may overwrite them. pos first:
	 * a producer reading the new seq with an old pos is conservative. */
	zb_store64_release(&sl->cons_pos, s->read_pos);
	zb_store64_release(&sl->cons_seq, s->read_seq);
	/* For statistics only, on the line we just wrote: a plain store. */
	zb_store64(&sl->missed, s->missed);
	if (s->policy != ZBUS_RELIABLE)
		return;
	/* Dekker with zb_ring_wait_room(): our release before our load of
	 * prod_waiters, its announcement before its rescan. Its membarrier
	 * supplies our half, unless this process could not register. */
	if (s->fence)
		zb_fence_full();
	else
		AO_compiler_barrier();
	if (zb_load32(&sctl->prod_waiters)) {
		zb_fetch_add32(&sctl->prod_futex, 1);
		zb_futex_wake_all(&sctl->prod_futex);
	}
}

int zb_ring_sleep(struct zb_ring_sub *s, uint64_t seq, uint64_t deadline,
		  uint32_t *stop)
{
	struct zb_sub_slot *sl = s->slot;
	uint64_t *word = &s->seg->sctl->sleepers[s->slot_idx / 64];
	uint64_t bit = 1ull << (s->slot_idx % 64);
	uint64_t until = deadline;
	uint32_t f;
	int r = 0;

	/* Read the futex word before announcing: a wake after this point
	 * changes it and the futex_wait below returns at once. */
	f = zb_load32(&sl->futex);
	zb_store64(&sl->wait_seq, seq + 1);
	zb_or64(word, bit);
	zb_fence_full();
	/*
	 * Force a full barrier on every publisher: the other half of the
	 * Dekker in zb_ring_commit(), which does not fence by itself. If we
	 * cannot, a publish may miss us: sleep in short slices.
	 */
	if (zb_membarrier_global() < 0) {
		uint64_t slice = zb_now_ns() + ZB_UNFENCED_SLICE_NS;

		if (slice < until)
			until = slice;
	}
	if (!zb_ring_ready(s, seq) && !(stop && zb_load32_acquire(stop)))
		r = zb_futex_wait(&sl->futex, f, until);
	/* Withdraw our announcement unless a producer already took it. */
	zb_cas64(&sl->wait_seq, seq + 1, 0);
	zb_and64(word, ~bit);
	return r == -ETIMEDOUT && until != deadline ? 0 : r;
}

void zb_ring_kick(struct zb_ring_sub *s)
{
	zb_fetch_add32(&s->slot->futex, 1);
	zb_futex_wake_all(&s->slot->futex);
}
