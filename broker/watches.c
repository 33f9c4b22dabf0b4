/* SPDX-License-Identifier: MIT */
/*
 * watches.c - the broker's watches on slots, as a list: a user holds at
 * most ZBD_MAX_WATCHES_PER_UID of them, and they are looked at on the
 * control path only.
 */
#include "watches.h"

struct zbd_watch *zbd_watch_find(struct zbd_watch *w, uint64_t channel_id,
				 enum zbd_watch_kind kind, uint32_t slot,
				 uint32_t word)
{
	for (; w; w = w->next)
		if (w->channel_id == channel_id && w->kind == kind &&
		    w->slot == slot && w->word == word)
			return w;
	return NULL;
}

int zbd_watch_owned(const struct zbd_watch *w, unsigned long long client,
		    uid_t uid)
{
	return w->client == client || w->uid == uid;
}

size_t zbd_watches_of_uid(const struct zbd_watch *list, uid_t uid)
{
	size_t n = 0;

	/* A delivery's watch is the broker's, on a subscriber's behalf:
	 * deliveries have a quota of their own, per subscriber uid
	 * (ZBD_MAX_DELIVERIES_PER_UID), and must not use up the broker
	 * uid's watches. */
	for (const struct zbd_watch *w = list; w; w = w->next)
		n += w->uid == uid && !w->for_pid;
	return n;
}

struct zbd_watch *zbd_watch_vouching(struct zbd_watch *list,
				     uint64_t channel_id, uint32_t slot,
				     uint32_t word)
{
	struct zbd_watch *w = list;

	while ((w = zbd_watch_find(w, channel_id, ZBD_WATCH_PUB, slot, word))) {
		if (w->ref_table)
			return w;
		w = w->next;
	}
	return NULL;
}

void zbd_watch_link(struct zbd_watch **list, struct zbd_watch *w)
{
	w->next = *list;
	*list = w;
}

void zbd_watch_unlink(struct zbd_watch **list, struct zbd_watch *w)
{
	for (struct zbd_watch **pp = list; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			return;
		}
}
