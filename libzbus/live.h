/* SPDX-License-Identifier: MIT */
/*
 * live.h - what a channel's shared memory says about its traffic, for
 * statistics only. Everything read here is reported, never trusted.
 */
#ifndef ZB_LIVE_H
#define ZB_LIVE_H

#include <stdint.h>

struct zbus_channel;

struct zb_live_sub {
	uint32_t slot;
	uint32_t word;     /* its state word: ACTIVE | generation */
	uint32_t pid;      /* as the subscriber wrote it */
	uint32_t policy;
	uint64_t released; /* its cons_seq: every seq below is released */
	uint64_t lag;      /* claimed but not yet released by it */
	uint64_t missed;   /* as the subscriber wrote it */
};

struct zb_live {
	uint64_t published;   /* claim_seq */
	uint64_t depth;       /* the largest lag of a reliable subscriber */
	uint32_t publishers;
	uint32_t subscribers;
	struct zb_live_sub sub[256];
};

struct zb_live_pub {
	uint32_t slot;
	uint32_t word;      /* its state word: ACTIVE | generation */
	uint32_t pid;       /* as the publisher wrote it */
	uint32_t flags;     /* ZB_PUB_SLOT_* */
	uint64_t published; /* as the publisher wrote it */
};

void zb_live_read(const struct zbus_channel *ch, struct zb_live *out);
/* The active publishers of @ch, at most @max of them, into @out.
 * Return: how many. */
uint32_t zb_live_pubs(const struct zbus_channel *ch, struct zb_live_pub *out,
		      uint32_t max);
/* The state word of subscriber slot @idx (0 if out of range). */
uint32_t zb_live_slot_word(const struct zbus_channel *ch, uint32_t idx);
/* The state word of publisher slot @idx (0 if out of range). */
uint32_t zb_live_pub_word(const struct zbus_channel *ch, uint32_t idx);
/* The pid subscriber (publisher) slot @idx says holds it: written by that
 * process itself, so a claim to check, never a fact (0 if out of range). */
uint32_t zb_live_slot_pid(const struct zbus_channel *ch, uint32_t idx);
uint32_t zb_live_pub_pid(const struct zbus_channel *ch, uint32_t idx);
struct zb_ref;
/*
 * zb_live_ref() - the record of message by reference @seq, read as a lossy
 * subscriber would (nothing of ours holds it): copied, then checked that
 * no later message took its descriptor or arena bytes meanwhile.
 * Return: 0; -ENOENT when @seq is not published (yet, or any more);
 * -EINVAL when it is not a message by reference; -EBADMSG when the record
 * is corrupt (zb_ref_check()).
 */
int zb_live_ref(const struct zbus_channel *ch, uint64_t seq,
		struct zb_ref *out);
/* Free slot @idx if it still holds @word (see zb_ring_free_slot()). */
int zb_live_free_slot(struct zbus_channel *ch, uint32_t idx, uint32_t word);

#endif /* ZB_LIVE_H */
