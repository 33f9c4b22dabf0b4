/* SPDX-License-Identifier: MIT */
/*
 * sub.h - what other library files may know of a subscription.
 */
#ifndef ZB_SUB_H
#define ZB_SUB_H

#include <stdint.h>

struct zbus_sub;

/* The slot a subscription holds and its state word (ACTIVE|generation). */
void zb_sub_identity(const struct zbus_sub *sub, uint32_t *slot,
		     uint32_t *word);

struct zbus_channel;
struct zb_delivered;
struct zbus_sub_opts;

/* Are @o's policy, spin and reserved fields what zbus_sub_new() takes? */
int zb_sub_opts_valid(const struct zbus_sub_opts *o);

/* zbus_conn_subscribe(): @sub frees @ch (the channel it was made on). */
int zb_sub_adopt_channel(struct zbus_sub *sub, struct zbus_channel *ch);
/* A subscription the broker delivers (delivered.h); it owns @dv. */
int zb_sub_new_delivered(struct zb_delivered *dv, struct zbus_sub **out);
int zb_sub_is_delivered(const struct zbus_sub *sub);

#endif /* ZB_SUB_H */
