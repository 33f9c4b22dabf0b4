/* SPDX-License-Identifier: MIT */
/*
 * live.c - traffic numbers read from a mapped channel, for statistics.
 */
#include "live.h"

#include <string.h>

#include "channel.h"
#include "layout.h"
#include "ref.h"
#include "ring.h"
#include "util.h"
#include "zbus/zbus.h"

/*
 * How far a subscriber that released up to @released is behind
 * @published. One that says it released more than was published (read
 * after the claim, or a lie) is not behind.
 */
static uint64_t lag_of(uint64_t published, uint64_t released)
{
	return (int64_t)(published - released) > 0 ? published - released : 0;
}

void zb_live_read(const struct zbus_channel *ch, struct zb_live *out)
{
	const struct zb_segment *seg = &ch->seg;
	uint32_t pubs = zb_load32(&seg->ctl->publishers);

	memset(out, 0, sizeof(*out));
	out->published = zb_load64(&seg->ctl->claim_seq);
	out->publishers = pubs & ZB_PUB_EXCLUSIVE_MARK ? 1 : pubs;
	for (uint32_t i = 0; i < seg->g.max_subs && i < 256; i++) {
		const struct zb_sub_slot *sl = &seg->slots[i];
		uint32_t word = zb_load32(&sl->state);
		struct zb_live_sub *o;

		if ((word & ZB_SLOT_STATE_MASK) != ZB_SLOT_ACTIVE)
			continue;
		o = &out->sub[out->subscribers++];
		o->slot = i;
		o->word = word;
		o->pid = zb_load32(&sl->pid);
		o->policy = zb_load32(&sl->policy);
		o->released = zb_load64(&sl->cons_seq);
		o->lag = lag_of(out->published, o->released);
		o->missed = zb_load64(&sl->missed);
		/* What producers wait for: a reliable subscriber's lag, as
		 * far as they heed it (within one ring, see scan_limits()). */
		if (o->policy == ZBUS_RELIABLE &&
		    o->lag <= seg->g.ring_capacity && o->lag > out->depth)
			out->depth = o->lag;
	}
}

uint32_t zb_live_pubs(const struct zbus_channel *ch, struct zb_live_pub *out,
		      uint32_t max)
{
	const struct zb_segment *seg = &ch->seg;
	uint32_t n = 0;

	for (uint32_t i = 0; i < seg->g.max_pubs && n < max; i++) {
		const struct zb_pub_slot *sl = &seg->pubs[i];
		uint32_t word = zb_load32_acquire(&sl->state);

		if ((word & ZB_SLOT_STATE_MASK) != ZB_SLOT_ACTIVE)
			continue;
		out[n++] = (struct zb_live_pub){
			.slot = i,
			.word = word,
			.pid = zb_load32(&sl->pid),
			.flags = zb_load32(&sl->flags),
			.published = zb_load64(&sl->published),
		};
	}
	return n;
}

uint32_t zb_live_slot_word(const struct zbus_channel *ch, uint32_t idx)
{
	if (idx >= ch->seg.g.max_subs)
		return 0;
	return zb_load32_acquire(&ch->seg.slots[idx].state);
}

uint32_t zb_live_pub_word(const struct zbus_channel *ch, uint32_t idx)
{
	if (idx >= ch->seg.g.max_pubs)
		return 0;
	return zb_load32_acquire(&ch->seg.pubs[idx].state);
}

uint32_t zb_live_slot_pid(const struct zbus_channel *ch, uint32_t idx)
{
	if (idx >= ch->seg.g.max_subs)
		return 0;
	return zb_load32(&ch->seg.slots[idx].pid);
}

uint32_t zb_live_pub_pid(const struct zbus_channel *ch, uint32_t idx)
{
	if (idx >= ch->seg.g.max_pubs)
		return 0;
	return zb_load32(&ch->seg.pubs[idx].pid);
}

int zb_live_ref(const struct zbus_channel *ch, uint64_t seq,
		struct zb_ref *out)
{
	const struct zb_segment *seg = &ch->seg;
	const struct zb_geometry *g = &seg->g;
	const struct zb_desc *d = &seg->ring[seq & (g->ring_capacity - 1)];
	uint64_t c1, pos;
	uint32_t len, flags;

	c1 = zb_load64_acquire(&d->commit);
	if (c1 != seq + 1)
		return -ENOENT;
	pos = zb_load64(&d->pos);
	len = zb_load32(&d->length);
	flags = zb_load32(&d->flags);
	/* Only a range inside the arena is ever copied. */
	if (!(flags & ZB_DESC_REF) || len != sizeof(*out) ||
	    (pos & (g->arena_size - 1)) + len > g->arena_size)
		return -EINVAL;
	memcpy(out, seg->arena + (pos & (g->arena_size - 1)), sizeof(*out));
	zb_fence_read();
	/* Still that message, its bytes not reclaimed (ring_pub.c, 4). */
	if (zb_load64(&d->commit) != c1 ||
	    zb_load64_acquire(&seg->ctl->claim_seq) - seq > g->ring_capacity ||
	    zb_load64_acquire(&seg->ctl->claim_pos) - pos > g->arena_size)
		return -ENOENT;
	return zb_ref_check(seg, out);
}

int zb_live_free_slot(struct zbus_channel *ch, uint32_t idx, uint32_t word)
{
	return zb_ring_free_slot(&ch->seg, idx, word);
}
