/* SPDX-License-Identifier: MIT */
/*
 * fuzz_descriptors.c - libFuzzer target for what a subscriber reads from
 * shared memory: the descriptor ring and the claim, written by a hostile
 * peer. Whatever they hold, receiving must not crash or hang, and every
 * message handed out must lie inside the arena and within the maximum
 * size. Reliable and lossy subscriptions alike.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "fuzz.h"
#include "layout.h"
#include "zbus/zbus.h"


static struct zbus_channel *ch;

static void drain(uint32_t policy, const uint8_t *data, size_t size)
{
	const struct zb_geometry *g = &ch->seg.g;
	size_t ring_bytes = (size_t)g->ring_capacity * sizeof(struct zb_desc);
	struct zbus_sub_opts so = { .policy = policy };
	struct zbus_sub *sub;
	struct zbus_msg m[8];

	if (zbus_sub_new(ch, &so, &sub) < 0)
		abort();
	/* The peer's bytes: claim first, then the descriptors. */
	memset(ch->seg.ring, 0, ring_bytes);
	if (size >= 16) {
		memcpy(&ch->seg.ctl->claim_seq, data, 8);
		memcpy(&ch->seg.ctl->claim_pos, data + 8, 8);
		data += 16;
		size -= 16;
	}
	memcpy(ch->seg.ring, data, size < ring_bytes ? size : ring_bytes);

	/* Bounded: a ring's worth of calls, each bounded by itself. */
	for (uint32_t i = 0; i < 2 * g->ring_capacity; i++) {
		int n = zbus_sub_recv_batch(sub, m, 8, 0);

		if (n == -EAGAIN)
			break;
		if (n < 0) {
			CHECK(n == -EBADMSG);
			continue;
		}
		for (int k = 0; k < n; k++) {
			const uint8_t *p = m[k].data;

			CHECK(m[k].size <= g->max_msg_size);
			CHECK(p >= ch->seg.arena &&
			      p + m[k].size <= ch->seg.arena + g->arena_size);
			if (m[k].size) /* touch it: ASan checks the range */
				CHECK(p[0] == p[0] && p[m[k].size - 1] ==
						      p[m[k].size - 1]);
		}
		zbus_sub_release(sub);
	}
	zbus_sub_free(sub);
	/* Back to a clean stream for the next input. */
	ch->seg.ctl->claim_seq = 0;
	ch->seg.ctl->claim_pos = 0;
	memset(ch->seg.slots, 0, g->max_subs * sizeof(struct zb_sub_slot));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ch) {
		struct zbus_channel_opts o = { .max_msg_size = 256,
					       .ring_capacity = 16,
					       .max_subscribers = 2 };

		if (zbus_channel_create("fuzz", &o, &ch) < 0)
			abort();
	}
	drain(ZBUS_RELIABLE, data, size);
	drain(ZBUS_LOSSY, data, size);
	return 0;
}
