/* SPDX-License-Identifier: MIT */
/*
 * live.c - traffic numbers read from a mapped channel, for statistics.
 */
#include "live.h"

#include <string.h>

#include "channel.h"
#include "layout.h"
#include "ring.h"
#include "util.h"

void zb_live_read(const struct zbus_channel *ch, struct zb_live *out)
{
	const struct zb_segment *seg = &ch->seg;
	uint32_t pubs = zb_load32(&seg->ctl->publishers);

	memset(out, 0, sizeof(*out));
	out->published = zb_load64(&seg->ctl->claim_seq);
	out->publishers = pubs & ZB_PUB_EXCLUSIVE_MARK ? 1 : pubs;
	for (uint32_t i = 0; i < seg->g.max_subs && i < 256; i++) {
		const struct zb_sub_slot *sl = &seg->slots[i];
		struct zb_live_sub *o;

		if ((zb_load32(&sl->state) & ZB_SLOT_STATE_MASK) !=
		    ZB_SLOT_ACTIVE)
			continue;
		o = &out->sub[out->subscribers++];
		o->slot = i;
		o->pid = zb_load32(&sl->pid);
		o->policy = zb_load32(&sl->policy);
		o->lag = out->published - zb_load64(&sl->cons_seq);
	}
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

int zb_live_free_slot(struct zbus_channel *ch, uint32_t idx, uint32_t word)
{
	return zb_ring_free_slot(&ch->seg, idx, word);
}
