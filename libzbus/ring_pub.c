/* SPDX-License-Identifier: MIT */
/*
 * ring_pub.c - the producer side of the descriptor ring.
 *
 * Design. The stream is two free-running 64-bit counters, seq (messages)
 * and pos (arena bytes), kept together in ctl->claim_{seq,pos}. A producer
 * claims a message with ONE double-width CAS that advances both, so every
 * message's arena range follows its predecessor's: arena order is sequence
 * order, and a subscriber that releases up to seq S has also released the
 * arena up to that message's end. This is what lets many producers share
 * one arena lock-free (a failed CAS means another producer progressed) with
 * variable-sized messages and no pools.
 *
 * A claim that would straddle the arena's end pads to the next lap; the
 * arena holds at least two maximum messages so pad + message always fits.
 *
 * Publishing is a seqlock write on the descriptor: the publish writes the
 * fields and then moves commit from the slot's older value to seq + 1. The
 * claim that precedes it (a full barrier, or a store-store fence for an
 * exclusive publisher) is what marks the slot's previous occupant as being
 * overwritten. A shared publisher's commit is a CAS, because the broker
 * may take a claim back (reclaim.c): a commit only moves forward and
 * exactly one of the publisher and the broker wins it.
 *
 * An exclusive publisher checks the commit and then stores it. A locked
 * instruction would have to own the descriptor's line, which a subscriber
 * that keeps up polls: with a CAS, a producer and a consumer that ran
 * neck and neck settled into paying a cache-line round trip per message
 * and ran at half the rate (measured: 3.6 against 8 M/s at 64 bytes).
 * The store is safe because nobody else claims: the slot cannot be
 * reused between our check and our store, so what the check rules out
 * (a later lap's message, a pad we already lost to) stays ruled out. The
 * one race left is the broker padding this very claim, held past the
 * unblock timeout, in the nanoseconds between the two: then subscribers
 * that already skipped the pad lose the message and later ones get it.
 * Neither half is the Dekker with sleeping subscribers: their membarrier
 * is (wait.h), or our own fence where there is none.
 *
 * Each publisher records the loans it holds in its publisher slot, so that
 * the broker can pad exactly those when the publisher dies.
 *
 * Invariants:
 *  1. claim_seq and claim_pos only grow, and only by a successful CAS16.
 *  2. A producer claims seq s only if s < min(cons_seq) + capacity over the
 *     active reliable subscribers, and arena bytes up to end only if
 *     end <= min(cons_pos) + arena_size: nothing a reliable subscriber has
 *     not released is ever overwritten.
 *  3. The limits are computed from a snapshot (Y) of the claim taken BEFORE
 *     scanning the slots; a subscriber that joins unseen starts at a claim
 *     read after it became ACTIVE (Z >= Y), so limits min(Y, ...) + window
 *     never overrun it (see zb_ring_sub_join()).
 *  4. Payload bytes of message m are intact while claim_pos <= m.pos +
 *     arena_size, and its descriptor while claim_seq <= m.seq + capacity:
 *     the claim is advanced (full barrier, or store-store fence when
 *     exclusive) before any byte of a new message is written. Lossy
 *     readers check both after reading.
 *  5. Values read from subscriber slots are hostile: a cons_* that is ahead
 *     of the claim or further behind than one window is ignored (it can
 *     neither stall nor corrupt the stream; at worst it loses its own
 *     protection).
 */
#include "ring.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "wait.h"
#include "zbus/zbus.h"

#define PRODUCER_SPIN_NS 20000ull /* spin this long for room, then sleep */
/* Failed claim CASes before giving up: legitimate contention between a
 * handful of producers fails a few times, not a million. */
#define CLAIM_MAX_TRIES (1u << 20)

/* Take a free publisher slot; it becomes ACTIVE in publish_slot(). */
static int take_slot(struct zb_ring_pub *p)
{
	struct zb_segment *seg = p->seg;

	for (uint32_t i = 0; i < seg->g.max_pubs; i++) {
		struct zb_pub_slot *sl = &seg->pubs[i];
		uint32_t gen;

		if (!zb_slot_take(&sl->state, &gen))
			continue;
		for (uint32_t j = 0; j < ZB_PUB_LOANS; j++)
			zb_store64(&sl->loans[j], 0);
		zb_store64(&sl->published, 0);
		zb_store64(&sl->ref_floor, 0);
		zb_store32(&sl->pid, (uint32_t)getpid());
		p->slot = sl;
		p->slot_idx = i;
		p->slot_word = gen | ZB_SLOT_ACTIVE;
		return 0;
	}
	return -ENOSPC;
}

/* Give back a slot taken by take_slot() that never became ACTIVE. */
static void drop_slot(struct zb_ring_pub *p)
{
	uint32_t gen = p->slot_word & ~ZB_SLOT_STATE_MASK;

	zb_slot_free(&p->slot->state, gen | ZB_SLOT_JOINING);
}

int zb_ring_pub_init(struct zb_ring_pub *p, struct zb_segment *seg,
		     int exclusive)
{
	uint32_t *pubs = &seg->ctl->publishers;
	int r;

	memset(p, 0, sizeof(*p));
	p->seg = seg;
	p->exclusive = exclusive;
	r = take_slot(p);
	if (r < 0)
		return r;
	if (exclusive) {
		if (!zb_cas32(pubs, 0, ZB_PUB_EXCLUSIVE_MARK)) {
			drop_slot(p);
			return -EBUSY;
		}
		/* Only we write the claim from now on: keep it privately,
		 * so a peer scribbling on it cannot steer our writes. */
		p->next_seq = zb_load64_acquire(&seg->ctl->claim_seq);
		p->next_pos = zb_load64_acquire(&seg->ctl->claim_pos);
	} else {
		for (;;) { /* lock-free: fails only if the count moved */
			uint32_t n = zb_load32(pubs);

			if (n & ZB_PUB_EXCLUSIVE_MARK) {
				drop_slot(p);
				return -EBUSY;
			}
			if (zb_cas32(pubs, n, n + 1))
				break;
		}
	}
	/* Subscribers about to sleep issue a membarrier in place of our
	 * half of the Dekker; where we cannot register for it, an
	 * exclusive commit (a plain store) must fence by itself. */
	p->fence = !zb_membarrier_register();
	/* Ids are informational; 0 is never handed out so that a zeroed
	 * descriptor is recognisable. */
	p->id = zb_fetch_add32(&seg->ctl->next_pub_id, 1) + 1;
	zb_store32(&p->slot->pub_id, p->id);
	zb_store32(&p->slot->flags, exclusive ? ZB_PUB_SLOT_EXCLUSIVE : 0);
	/* Release: the broker that reads an ACTIVE slot sees its fields. */
	zb_store32_release(&p->slot->state, p->slot_word);
	return 0;
}

void zb_ring_pub_fini(struct zb_ring_pub *p)
{
	uint32_t *pubs = &p->seg->ctl->publishers;

	/* Whoever frees the slot (we, or the broker after our death) fixes
	 * the count, exactly once. */
	if (!zb_slot_free(&p->slot->state, p->slot_word))
		return;
	if (p->exclusive)
		zb_cas32(pubs, ZB_PUB_EXCLUSIVE_MARK, 0);
	else
		zb_fetch_add32(pubs, (uint32_t)-1);
}

/* Record a loan of @seq in our slot; return its index + 1, 0 if full. */
static uint32_t record_loan(struct zb_ring_pub *p, uint64_t seq)
{
	uint32_t i;

	if (p->loans_used == (1u << ZB_PUB_LOANS) - 1)
		return 0; /* untracked: the broker's timeout covers it */
	i = (uint32_t)__builtin_ctz(~p->loans_used);
	p->loans_used |= 1u << i;
	zb_store64(&p->slot->loans[i], seq + 1);
	return i + 1;
}

static void forget_loan(struct zb_ring_pub *p, uint32_t rec)
{
	if (!rec)
		return;
	zb_store64(&p->slot->loans[rec - 1], 0);
	p->loans_used &= ~(1u << (rec - 1));
}

static void load_claim(const struct zb_ctl *ctl, uint64_t *seq, uint64_t *pos)
{
	/* Two 8-byte loads need not be a consistent pair: the CAS16 that
	 * follows validates them. */
	*seq = zb_load64_acquire(&ctl->claim_seq);
	*pos = zb_load64_acquire(&ctl->claim_pos);
}

/* The claim as this publisher must see it: an exclusive one trusts only
 * its private copy (a peer may scribble on the shared one). */
static void current_claim(const struct zb_ring_pub *p, uint64_t *seq,
			  uint64_t *pos)
{
	if (p->exclusive) {
		*seq = p->next_seq;
		*pos = p->next_pos;
	} else {
		load_claim(p->seg->ctl, seq, pos);
	}
}

static int cas_claim(struct zb_ctl *ctl, uint64_t seq, uint64_t pos,
		     uint64_t new_seq, uint64_t new_pos)
{
	AO_double_t old_v, new_v;

	old_v.AO_val1 = seq;
	old_v.AO_val2 = pos;
	new_v.AO_val1 = new_seq;
	new_v.AO_val2 = new_pos;
	/* Full barrier: the claim is visible before any byte of it is
	 * written (invariant 4). */
	return AO_double_compare_and_swap_full(
		(volatile AO_double_t *)&ctl->claim_seq, old_v, new_v);
}

/* Is @cons behind @y by at most @window (free-running counters)? */
static int in_window(uint64_t y, uint64_t cons, uint64_t window)
{
	return (int64_t)(y - cons) > 0 && y - cons <= window;
}

/* Recompute the limits from the slots (invariants 2, 3, 5). */
static void scan_limits(struct zb_ring_pub *p, uint64_t y_seq, uint64_t y_pos)
{
	const struct zb_geometry *g = &p->seg->g;
	uint64_t min_seq = y_seq, min_pos = y_pos;

	for (uint32_t i = 0; i < g->max_subs; i++) {
		struct zb_sub_slot *sl = &p->seg->slots[i];
		uint64_t cs, cp;

		/* Acquire pairs with the release of state in
		 * zb_ring_sub_join(): policy and cons_* are set before. */
		if ((zb_load32_acquire(&sl->state) & ZB_SLOT_STATE_MASK) !=
			    ZB_SLOT_ACTIVE ||
		    zb_load32(&sl->policy) != ZBUS_RELIABLE)
			continue;
		cs = zb_load64_acquire(&sl->cons_seq);
		cp = zb_load64_acquire(&sl->cons_pos);
		/*
		 * Each dimension on its own: y_seq and y_pos are two loads,
		 * not a pair, so a subscriber can look ahead of one and
		 * behind the other. Ahead binds nothing tighter than y; more
		 * than one window behind is hostile (invariant 5). Dropping
		 * both on either would let the newer y_pos stand in for an
		 * arena position the subscriber still holds.
		 */
		if (in_window(y_seq, cs, g->ring_capacity) &&
		    y_seq - cs > y_seq - min_seq)
			min_seq = cs;
		if (in_window(y_pos, cp, g->arena_size) &&
		    y_pos - cp > y_pos - min_pos)
			min_pos = cp;
	}
	p->limit_seq = min_seq + g->ring_capacity;
	p->limit_pos = min_pos + g->arena_size;
}

/* Where a claim of @need bytes starting at @pos begins (padded to the next
 * lap when it would straddle the arena's end). */
static uint64_t claim_start(const struct zb_geometry *g, uint64_t pos,
			    uint64_t need)
{
	uint64_t off = pos & (g->arena_size - 1);

	return off + need > g->arena_size ? pos + (g->arena_size - off) : pos;
}

static int fits(const struct zb_ring_pub *p, uint64_t seq, uint64_t end)
{
	return (int64_t)(p->limit_seq - seq) > 0 &&
	       (int64_t)(p->limit_pos - end) >= 0;
}

int zb_ring_claim(struct zb_ring_pub *p, uint64_t size, struct zb_claim *c)
{
	const struct zb_geometry *g = &p->seg->g;
	uint64_t need = zb_align_up(size, ZB_ARENA_ALIGN);
	struct zb_ctl *ctl = p->seg->ctl;

	/*
	 * Lock-free: a failed CAS means another producer claimed. The bound
	 * is for a peer that rewrites the claim word without end: that is
	 * an error for this call, not a livelock.
	 */
	for (uint32_t tries = 0;; tries++) {
		uint64_t seq, pos, start, end;

		if (tries == CLAIM_MAX_TRIES)
			return -EBUSY;

		current_claim(p, &seq, &pos);
		start = claim_start(g, pos, need);
		end = start + need;
		if (!fits(p, seq, end)) {
			scan_limits(p, seq, pos);
			if (!fits(p, seq, end))
				return -EAGAIN;
		}
		if (p->exclusive) {
			/* Sole writer of the claim: plain stores. The record
			 * first, so that no instant has the claim visible
			 * and unrecorded; pos before seq, and a store-store
			 * fence before anything of the message is written
			 * (invariant 4). */
			c->rec = record_loan(p, seq);
			zb_store64(&ctl->claim_pos, end);
			zb_store64_release(&ctl->claim_seq, seq + 1);
			zb_fence_write();
			p->next_seq = seq + 1;
			p->next_pos = end;
		}
		if (p->exclusive || cas_claim(ctl, seq, pos, seq + 1, end)) {
			if (!p->exclusive)
				c->rec = record_loan(p, seq);
			/*
			 * No busy mark in the descriptor: the claim itself,
			 * ordered before every write of the message, tells a
			 * lossy reader of the slot's previous occupant that it
			 * is being reused (zb_ring_read() checks claim_seq
			 * after reading the fields). Writing the descriptor
			 * line once per message instead of twice saves a
			 * cross-core transfer on the latency path.
			 */
			c->seq = seq;
			c->pos = start;
			c->size = size;
			return 0;
		}
	}
}

int zb_commit_advance(uint64_t *commit, uint64_t v, uint64_t seq,
		      uint64_t value)
{
	/* A failed CAS means the word moved: forward (padded or overtaken),
	 * or a peer scribbling, which the bound is for. */
	for (int tries = 0; tries < 64; tries++) {
		if (zb_commit_reached(v, seq + 1))
			return -ECANCELED;
		if (zb_cas64(commit, v, value))
			return 0;
		v = zb_load64_acquire(commit);
	}
	return -EBUSY;
}

void zb_ring_wake_sleepers(struct zb_segment *seg, uint64_t seq)
{
	const struct zb_geometry *g = &seg->g;
	struct zb_sub_ctl *sctl = seg->sctl;

	for (uint32_t w = 0; w * 64 < g->max_subs; w++) {
		uint64_t bits = zb_load64(&sctl->sleepers[w]);

		while (bits) {
			uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(bits);
			struct zb_sub_slot *sl;
			uint64_t ws;

			bits &= bits - 1;
			if (i >= g->max_subs)
				break;
			sl = &seg->slots[i];
			ws = zb_load64(&sl->wait_seq);
			if (!ws || (int64_t)(seq - (ws - 1)) < 0)
				continue; /* awake, or waits for later */
			/*
			 * Clear exactly the announcement we judged: a CAS on
			 * the value, never a plain store, so a stale read
			 * cannot erase a newer announcement (the lost wake-up
			 * trap in FIELD-NOTES).
			 */
			if (zb_cas64(&sl->wait_seq, ws, 0)) {
				zb_fetch_add32(&sl->futex, 1);
				zb_futex_wake_all(&sl->futex);
			}
		}
	}
}

int zb_ring_commit(struct zb_ring_pub *p, const struct zb_claim *c,
		   uint32_t len, uint32_t flags)
{
	const struct zb_geometry *g = &p->seg->g;
	struct zb_desc *d = &p->seg->ring[c->seq & (g->ring_capacity - 1)];
	uint64_t v = zb_load64_acquire(&d->commit);
	int r = -ECANCELED;

	/* Lost already: write nothing of ours. */
	if (zb_commit_reached(v, c->seq + 1))
		goto out;
	zb_store64(&d->pos, c->pos);
	zb_store32(&d->length, len);
	zb_store32(&d->flags, flags);
	zb_store32(&d->pub_id, p->id);
	zb_store32(&d->reserved, 0);
	if (p->exclusive) {
		/* Release pairs with the acquire of commit in
		 * zb_ring_read(): the fields and the payload are visible
		 * before the commit is. Why a store: see the top. */
		zb_store64_release(&d->commit, c->seq + 1);
		r = 0;
		/* Our half of the Dekker with zb_ring_sleep() (our commit
		 * before our load of the sleepers), unless their membarrier
		 * gives it. */
		if (p->fence)
			zb_fence_full();
	} else {
		/* A full barrier, paired likewise; also our half of that
		 * Dekker, membarrier or not. */
		r = zb_commit_advance(&d->commit, v, c->seq, c->seq + 1);
	}
out:
	/* After the commit: a record of a committed loan is harmless (the
	 * broker's pad CAS fails), a missing record of an open one is not. */
	forget_loan(p, c->rec);
	if (r)
		return r;
	/* For statistics only: a plain store of our own count (no atomic
	 * increment on the publish path; nobody else writes it). */
	if (!(flags & ZB_DESC_ABANDONED))
		zb_store64(&p->slot->published, ++p->published);
	zb_ring_wake_sleepers(p->seg, c->seq);
	return 0;
}

/* Could a claim of @size bytes succeed now? The same test as
 * zb_ring_claim(), so that "room" means the claim can succeed and the
 * caller never spins between the two. */
static int room_for(struct zb_ring_pub *p, uint64_t size)
{
	const struct zb_geometry *g = &p->seg->g;
	uint64_t need = zb_align_up(size, ZB_ARENA_ALIGN);
	uint64_t seq, pos;

	current_claim(p, &seq, &pos);
	scan_limits(p, seq, pos);
	return fits(p, seq, claim_start(g, pos, need) + need);
}

int zb_ring_released(struct zb_ring_pub *p, uint64_t seq)
{
	uint64_t y_seq, y_pos, min_seq;

	current_claim(p, &y_seq, &y_pos);
	if ((int64_t)(y_seq - seq) <= 0)
		return 0; /* not even claimed yet */
	scan_limits(p, y_seq, y_pos);
	min_seq = p->limit_seq - p->seg->g.ring_capacity;
	return (int64_t)(min_seq - seq) > 0;
}

/*
 * Spin, then sleep on the producer futex, until @ready(@p, @arg) or
 * @deadline. Subscribers wake the futex when they release (or leave)
 * while a producer waits. Return: 0 when ready; -ETIMEDOUT.
 */
static int wait_until(struct zb_ring_pub *p,
		      int (*ready)(struct zb_ring_pub *, uint64_t),
		      uint64_t arg, uint64_t deadline)
{
	struct zb_sub_ctl *sctl = p->seg->sctl;
	uint64_t spin_end = zb_now_ns() + PRODUCER_SPIN_NS;
	int r = 0;

	for (;;) {
		uint64_t now, until;
		uint32_t f;

		if (ready(p, arg))
			return 0;
		now = zb_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		if (now < spin_end) {
			zb_cpu_relax();
			continue;
		}
		f = zb_load32(&sctl->prod_futex);
		/* Announce, then force a barrier on every subscriber (the
		 * other half of the Dekker in zb_ring_release()), then
		 * re-check. Without that barrier, sleep in short slices. */
		zb_fetch_add32(&sctl->prod_waiters, 1);
		until = deadline;
		if (zb_membarrier_global() < 0 &&
		    now + ZB_UNFENCED_SLICE_NS < until)
			until = now + ZB_UNFENCED_SLICE_NS;
		if (!ready(p, arg))
			r = zb_futex_wait(&sctl->prod_futex, f, until);
		zb_fetch_add32(&sctl->prod_waiters, (uint32_t)-1);
		if (r < 0 && until == deadline)
			return r;
		r = 0;
	}
}

int zb_ring_wait_room(struct zb_ring_pub *p, uint64_t size, uint64_t deadline)
{
	return wait_until(p, room_for, size, deadline);
}

int zb_ring_wait_released(struct zb_ring_pub *p, uint64_t seq,
			  uint64_t deadline)
{
	return wait_until(p, zb_ring_released, seq, deadline);
}

void zb_ring_revoke_refs(struct zb_ring_pub *p, uint64_t seq)
{
	uint64_t floor = zb_load64(&p->slot->ref_floor);

	if ((int64_t)(seq + 1 - floor) > 0)
		zb_store64(&p->slot->ref_floor, seq + 1);
	/* The raise is visible before any write of the caller's to the
	 * buffer: a subscriber that pulled such a write then sees it. */
	zb_fence_full();
}
