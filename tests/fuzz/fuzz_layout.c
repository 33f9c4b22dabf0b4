/* SPDX-License-Identifier: MIT */
/*
 * fuzz_layout.c - libFuzzer target for zb_layout_validate().
 *
 * Input: a 128-byte header followed by 8 bytes of file size (seed_layout.bin
 * is a real channel's, made with the library's defaults for a small
 * geometry). Whatever the
 * bytes, validation must not crash, and a header it accepts must describe
 * regions that are in bounds, in order and non-overlapping: that is what
 * every reader relies on after attach.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "layout.h"
#include "segment.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct zb_shm_hdr h;
	struct zb_geometry g;
	uint64_t file_size;

	if (size < sizeof(h) + sizeof(file_size))
		return 0;
	memcpy(&h, data, sizeof(h));
	memcpy(&file_size, data + sizeof(h), sizeof(file_size));
	if (zb_layout_validate(&h, file_size, &g) < 0)
		return 0;

	CHECK(g.segment_size == file_size);
	CHECK(g.ctl_off >= sizeof(h) && g.ctl_off % 16 == 0);
	CHECK((uint64_t)g.ctl_off + sizeof(struct zb_ctl) <= g.subs_off);
	CHECK(g.max_subs >= 1 && g.max_subs <= ZB_MAX_SUBS);
	CHECK((uint64_t)g.subs_off +
		      (uint64_t)g.max_subs * sizeof(struct zb_sub_slot) <=
	      g.ring_off);
	CHECK(g.ring_capacity >= 2 && !(g.ring_capacity & (g.ring_capacity - 1)));
	CHECK((uint64_t)g.ring_off +
		      (uint64_t)g.ring_capacity * sizeof(struct zb_desc) <=
	      g.arena_off);
	CHECK(g.arena_size && !(g.arena_size & (g.arena_size - 1)));
	CHECK(g.arena_off <= file_size &&
	      g.arena_size == file_size - g.arena_off);
	CHECK(2 * (uint64_t)g.max_msg_size <= g.arena_size);
	return 0;
}
