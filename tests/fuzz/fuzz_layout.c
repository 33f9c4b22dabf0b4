/* SPDX-License-Identifier: MIT */
/*
 * fuzz_layout.c - libFuzzer target for what attach checks before it maps
 * a channel: zb_layout_validate() on the data memfd's header, then
 * zb_state_validate() on the state memfd's header against the geometry
 * the first returned, in that order as in zb_segment_attach_dup() (the
 * state check needs the data check's result: it is a pair).
 *
 * Input: struct fuzz_layout_input (layout_input.h), both headers and both
 * file sizes; an input holding only the data half tests that alone.
 * Whatever the bytes, validation returns 0, -EBADMSG or -EPROTO, and a
 * header it accepts describes what every reader relies on after attach:
 * check_data() and check_state() say what that is.
 *
 * Seed: seed_layout.bin holds the headers of a channel that the library
 * created with a small geometry. make_seed_layout.c wrote it (see there to
 * regenerate it after a layout change), and test_segment.c fails while
 * the committed seed is not of the current layout.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "layout.h"
#include "layout_input.h"
#include "segment.h"

#define PAGE 4096u
/* Bits in the sleepers bitmap: one per subscriber slot. */
#define SLEEPER_BITS (8 * sizeof(((struct zb_sub_ctl *)0)->sleepers))
_Static_assert(PAGE % ZB_ARENA_ALIGN == 0, "page-aligned arena");
/* A state segment of ZB_MAX_SUBS slots, the largest a header may name. */
#define MAX_STATE_SIZE                                                   \
	align_up(sizeof(struct zb_state_hdr) + sizeof(struct zb_sub_ctl) + \
			 (uint64_t)ZB_MAX_SUBS * sizeof(struct zb_sub_slot), \
		 PAGE)

static int is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* The data segment: header, ctl, publisher slots, ring, arena. */
static void check_data(const struct zb_shm_hdr *h, uint64_t file_size,
		       const struct zb_geometry *g)
{
	uint64_t pubs_end = g->pubs_off +
			    (uint64_t)g->max_pubs * sizeof(struct zb_pub_slot);
	uint64_t ring_end = g->ring_off +
			    (uint64_t)g->ring_capacity * sizeof(struct zb_desc);

	/* A version and features this reader knows. Readers never look at
	 * the header again: the geometry must be its copy. */
	CHECK(h->version_major == ZB_LAYOUT_MAJOR &&
	      !(h->incompat_features & ~ZB_INCOMPAT_KNOWN));
	CHECK(g->version_major == h->version_major &&
	      g->version_minor == h->version_minor);
	CHECK(g->channel_id == h->channel_id && g->channel_id != 0);
	CHECK(g->segment_size == h->segment_size && g->ctl_off == h->ctl_off &&
	      g->pubs_off == h->pubs_off && g->max_pubs == h->max_pubs &&
	      g->ring_off == h->ring_off &&
	      g->ring_capacity == h->ring_capacity &&
	      g->arena_off == h->arena_off && g->arena_size == h->arena_size &&
	      g->max_msg_size == h->max_msg_size &&
	      g->max_subs == h->max_subs && g->state_size == h->state_size);
	/* Readers index each array with sizeof, not with the header's
	 * sizes: the two must agree. */
	CHECK(h->pub_slot_size == sizeof(struct zb_pub_slot) &&
	      h->desc_size == sizeof(struct zb_desc) &&
	      h->slot_size == sizeof(struct zb_sub_slot));

	/* Every region in order, each ending before the next begins, the
	 * arena ending at the file's end: mapping segment_size bytes covers
	 * them all. Sums in 64 bits: none can wrap. */
	CHECK(g->segment_size == file_size);
	CHECK(h->hdr_size >= sizeof(*h) && g->ctl_off >= h->hdr_size);
	CHECK(h->ctl_size >= sizeof(struct zb_ctl) &&
	      (uint64_t)g->ctl_off + h->ctl_size <= g->pubs_off);
	CHECK(pubs_end <= g->ring_off);
	CHECK(ring_end <= g->arena_off);
	CHECK(g->arena_off <= file_size &&
	      g->arena_size == file_size - g->arena_off);

	/* The claim is a 16-byte CAS and each region starts a cache line of
	 * its own. A page-aligned arena keeps every payload start, which the
	 * claim rounds to ZB_ARENA_ALIGN, aligned in memory too. */
	CHECK(g->ctl_off % ZB_CACHELINE == 0 &&
	      g->pubs_off % ZB_CACHELINE == 0 &&
	      g->ring_off % ZB_CACHELINE == 0);
	CHECK(g->arena_off % PAGE == 0);

	/* Slots by seq & (capacity - 1), bytes by pos & (arena_size - 1). */
	CHECK(g->ring_capacity >= 2 && g->ring_capacity <= ZB_MAX_CAPACITY &&
	      is_pow2(g->ring_capacity));
	CHECK(is_pow2(g->arena_size) && g->arena_size <= ZB_MAX_ARENA);
	/* A claim that would straddle the arena's end pads to the next
	 * lap: the pad and the largest message must fit in an empty arena,
	 * or a producer could never make progress. */
	CHECK(g->max_msg_size <= ZB_MAX_MSG_SIZE &&
	      2 * align_up(g->max_msg_size, ZB_ARENA_ALIGN) <= g->arena_size);
	CHECK(g->max_pubs >= 1 && g->max_pubs <= ZB_MAX_PUBS);
	/* What the data header says of its state segment. */
	CHECK(g->max_subs >= 1 && g->max_subs <= ZB_MAX_SUBS);
	CHECK(g->state_size >= PAGE && g->state_size <= MAX_STATE_SIZE);
}

/* The state segment, validated against @before, the data geometry: header,
 * sub ctl, subscriber slots. */
static void check_state(const struct zb_state_hdr *sh, uint64_t file_size,
			const struct zb_geometry *before,
			const struct zb_geometry *g)
{
	struct zb_geometry rest = *g;
	uint64_t sctl_end = g->sctl_off + (uint64_t)sizeof(struct zb_sub_ctl);
	uint64_t subs_end = g->subs_off +
			    (uint64_t)g->max_subs * sizeof(struct zb_sub_slot);

	/* It fills the state offsets from the header, and nothing else. */
	CHECK(g->sctl_off == sh->sctl_off && g->subs_off == sh->subs_off);
	rest.sctl_off = before->sctl_off;
	rest.subs_off = before->subs_off;
	CHECK(memcmp(&rest, before, sizeof(rest)) == 0);

	/* A pair: the state segment of this channel, of the size and slot
	 * count the data header gave. */
	CHECK(sh->version_major == ZB_LAYOUT_MAJOR);
	CHECK(sh->channel_id == g->channel_id);
	CHECK(sh->state_size == file_size && g->state_size == file_size);
	CHECK(sh->max_subs == g->max_subs);
	CHECK(sh->slot_size == sizeof(struct zb_sub_slot));

	/* In order, aligned, in bounds: mapping state_size bytes covers
	 * every slot. Each slot has its bit in the sleepers bitmap. */
	CHECK(sh->hdr_size >= sizeof(*sh) && g->sctl_off >= sh->hdr_size);
	CHECK(g->sctl_off % ZB_CACHELINE == 0 &&
	      g->subs_off % ZB_CACHELINE == 0);
	CHECK(sctl_end <= g->subs_off);
	CHECK(subs_end <= file_size);
	CHECK(g->max_subs >= 1 && g->max_subs <= SLEEPER_BITS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_layout_input in;
	struct zb_geometry g, before;
	int r;

	if (size < FUZZ_LAYOUT_DATA_BYTES)
		return 0;
	memset(&in, 0, sizeof(in));
	memcpy(&in, data, size < sizeof(in) ? size : sizeof(in));

	r = zb_layout_validate(&in.hdr, in.size, &g);
	CHECK(r == 0 || r == -EBADMSG || r == -EPROTO);
	if (r < 0)
		return 0;
	check_data(&in.hdr, in.size, &g);

	if (size < sizeof(in))
		return 0;
	before = g;
	r = zb_state_validate(&in.shdr, in.state_size, &g);
	CHECK(r == 0 || r == -EBADMSG || r == -EPROTO);
	if (r == 0)
		check_state(&in.shdr, in.state_size, &before, &g);
	return 0;
}
