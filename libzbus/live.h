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
	uint32_t pid;      /* as the subscriber wrote it */
	uint32_t policy;
	uint64_t lag;      /* claimed but not yet released by it */
};

struct zb_live {
	uint64_t published;   /* claim_seq */
	uint32_t publishers;
	uint32_t subscribers;
	struct zb_live_sub sub[256];
};

void zb_live_read(const struct zbus_channel *ch, struct zb_live *out);

#endif /* ZB_LIVE_H */
