/* SPDX-License-Identifier: MIT */
/*
 * ring.h - the descriptor ring and payload arena: claim, publish, read,
 * release, and the futex hand-shakes between producers and subscribers.
 * See ring_pub.c for the design and its invariants.
 */
#ifndef ZB_RING_H
#define ZB_RING_H

#include <stdint.h>

#include "segment.h"
#include "util.h"

/* Private state of one publisher. */
struct zb_ring_pub {
	struct zb_segment *seg;
	struct zb_pub_slot *slot; /* where our loans are recorded */
	uint32_t slot_idx;
	uint32_t slot_word;   /* our state word: ACTIVE | generation */
	uint32_t loans_used;  /* bit i: slot->loans[i] records a loan */
	uint32_t id;
	int exclusive;      /* sole publisher: claims and commits with
			     * plain stores */
	int fence;          /* no membarrier here: fence after a commit */
	uint64_t limit_seq; /* claims with seq < limit_seq are safe */
	uint64_t limit_pos; /* claims ending at or before limit_pos are safe */
	uint64_t next_seq;  /* exclusive: the claim, kept privately */
	uint64_t next_pos;
	uint64_t published; /* messages committed: slot->published's source */
};

struct zb_claim {
	uint64_t seq;
	uint64_t pos;  /* payload start */
	uint64_t size; /* bytes loaned */
	uint32_t rec;  /* index + 1 of its record in our slot; 0: none */
};

/*
 * zb_ring_pub_init() - register a publisher on @seg: take a publisher
 * slot and count ourselves in ctl->publishers.
 * Return: 0; -EBUSY when @exclusive is asked while another publisher
 * exists, or when an exclusive one owns the channel; -ENOSPC when every
 * publisher slot is taken.
 */
int zb_ring_pub_init(struct zb_ring_pub *p, struct zb_segment *seg,
		     int exclusive);
void zb_ring_pub_fini(struct zb_ring_pub *p);
/*
 * zb_ring_claim() - take the next seq and @size arena bytes.
 * Return: 0; -EAGAIN when a reliable subscriber holds the room (the caller
 * waits with zb_ring_wait_room() and retries); -EBUSY when the claim word
 * keeps changing under us far beyond any real contention.
 */
int zb_ring_claim(struct zb_ring_pub *p, uint64_t size, struct zb_claim *c);
/*
 * zb_ring_commit() - make @c's descriptor visible with @len bytes and
 * @flags, wake sleepers, forget the loan's record, and count a message
 * published (not an abandoned loan) in our slot.
 * Return: 0; -ECANCELED when the commit word already says seq or later
 * (the broker padded the claim, or a later lap overtook it): nothing of
 * ours is visible; -EBUSY when the commit word keeps changing under us (a
 * peer scribbling on it).
 */
int zb_ring_commit(struct zb_ring_pub *p, const struct zb_claim *c,
		   uint32_t len, uint32_t flags);
/* Is commit word @v at or past seq + 1 == @want (padded or not)? */
static inline int zb_commit_reached(uint64_t v, uint64_t want)
{
	return (int64_t)(ZB_COMMIT_SEQ(v) - want) >= 0;
}

/*
 * zb_commit_advance() - CAS @commit, last seen as @v, to @value (seq + 1,
 * padded or not), unless it already reached seq + 1: the one rule by which
 * a publish and the broker's pad race for a claim.
 * Return: 0; -ECANCELED when it reached seq + 1 first; -EBUSY when it keeps
 * changing under us (a peer scribbling on it).
 */
int zb_commit_advance(uint64_t *commit, uint64_t v, uint64_t seq,
		      uint64_t value);

/*
 * Subscriber and publisher slots share one state-word protocol (layout.h):
 * FREE -> JOINING (a new generation) -> ACTIVE -> FREE, each step a CAS.
 */
/* Take @state (JOINING) if FREE, with a new generation in *@gen (state
 * bits clear): whoever remembers the old one (the broker) can no longer
 * free it by mistake. Return: 1 if taken; 0 if in use or taken under us. */
static inline int zb_slot_take(uint32_t *state, uint32_t *gen)
{
	uint32_t w = zb_load32(state);

	*gen = (w & ~ZB_SLOT_STATE_MASK) + ZB_SLOT_GEN_ONE;
	return (w & ZB_SLOT_STATE_MASK) == ZB_SLOT_FREE &&
	       zb_cas32(state, w, *gen | ZB_SLOT_JOINING);
}

/* Free @state if it still holds @word exactly (same state, same
 * generation), keeping the generation. Return: 1 if freed. */
static inline int zb_slot_free(uint32_t *state, uint32_t word)
{
	return zb_cas32(state, word, word & ~ZB_SLOT_STATE_MASK);
}

/* Wake the subscribers asleep waiting for a seq <= @seq. */
void zb_ring_wake_sleepers(struct zb_segment *seg, uint64_t seq);
/*
 * zb_ring_wait_room() - sleep until a subscriber releases or @deadline.
 * Return: 0 (retry the claim); -ETIMEDOUT.
 */
int zb_ring_wait_room(struct zb_ring_pub *p, uint64_t size,
		      uint64_t deadline);

/*
 * zb_ring_released() - has every active reliable subscriber released
 * message @seq (and so every one before it)? Hostile slot values count as
 * released, as in the claim's limits. Return: 1 or 0.
 */
int zb_ring_released(struct zb_ring_pub *p, uint64_t seq);
/*
 * zb_ring_wait_released() - sleep until zb_ring_released(@seq) or
 * @deadline. Return: 0; -ETIMEDOUT.
 */
int zb_ring_wait_released(struct zb_ring_pub *p, uint64_t seq,
			  uint64_t deadline);
/*
 * zb_ring_revoke_refs() - our messages by reference up to @seq may change
 * from now on: raise our slot's ref_floor past @seq, then fence, so that a
 * subscriber pulling one of them later drops what it pulled.
 */
void zb_ring_revoke_refs(struct zb_ring_pub *p, uint64_t seq);

/* Outcome of looking at the next message of a subscription. */
enum zb_read {
	ZB_READ_MSG,       /* a message: fields filled */
	ZB_READ_EMPTY,     /* nothing published yet */
	ZB_READ_SKIPPED,   /* abandoned or padded loan, lossy overrun: look
			    * again */
	ZB_READ_BAD,       /* descriptor failed validation, skipped */
};

struct zb_ring_msg {
	uint64_t seq;
	uint64_t pos;
	uint32_t len;
	uint32_t pub_id;
	uint32_t flags; /* ZB_DESC_REF or 0 */
	const uint8_t *data;
	uint64_t missed; /* lossy: lost right before this message */
};

/* Private state of one subscription (the shared part is its slot). */
struct zb_ring_sub {
	struct zb_segment *seg;
	struct zb_sub_slot *slot;
	uint32_t slot_idx;
	uint32_t slot_word;    /* our state word: ACTIVE | generation */
	uint32_t policy;
	uint64_t read_seq;     /* next seq to look at */
	uint64_t read_pos;     /* arena released up to here once read */
	uint64_t held_seq;     /* first seq not yet released */
	uint64_t oldest_pos;   /* payload start of the oldest held message */
	uint64_t holding;      /* messages handed out since last release */
	uint64_t pending_missed;
	uint64_t received, missed, bad, abandoned, reclaimed;
	int fence; /* no asymmetric fence here: fence each release */
};

/* Return: 0; -ENOSPC when every slot is taken. */
int zb_ring_sub_join(struct zb_ring_sub *s, struct zb_segment *seg,
		     uint32_t policy);
void zb_ring_sub_leave(struct zb_ring_sub *s);
/*
 * zb_ring_free_slot() - free subscriber slot @idx if its state word is
 * still @word (ACTIVE and the generation of the subscription meant), and
 * wake producers waiting for room. For the owner leaving and for the
 * broker reclaiming a dead subscriber's slot.
 * Return: 1 if freed; 0 if the slot holds something else (already freed,
 * or another subscription since).
 */
int zb_ring_free_slot(struct zb_segment *seg, uint32_t idx, uint32_t word);
enum zb_read zb_ring_read(struct zb_ring_sub *s, struct zb_ring_msg *m);
/* Lossy: 1 if every payload held since the last release is intact. */
int zb_ring_held_intact(const struct zb_ring_sub *s);
/* Lossy: 1 if the payload of @m is intact now. */
int zb_ring_msg_intact(const struct zb_ring_sub *s,
		       const struct zb_ring_msg *m);
void zb_ring_release(struct zb_ring_sub *s);
/* Prefetch where the next payload most likely starts (while polling). */
void zb_ring_prefetch_next(const struct zb_ring_sub *s);
/* 1 if zb_ring_read() at @seq would find something (message or skip). */
int zb_ring_ready(const struct zb_ring_sub *s, uint64_t seq);
/*
 * zb_ring_sleep() - futex sleep until message @seq may be ready, @deadline
 * passes, or *@stop becomes non-zero (checked after announcing; an
 * atomic flag set by another thread, which then calls zb_ring_kick()).
 * Return: 0 (look again); -ETIMEDOUT.
 */
int zb_ring_sleep(struct zb_ring_sub *s, uint64_t seq, uint64_t deadline,
		  uint32_t *stop);
/* Wake a zb_ring_sleep() on this subscription (used to stop threads). */
void zb_ring_kick(struct zb_ring_sub *s);

#endif /* ZB_RING_H */
