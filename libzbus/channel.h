/* SPDX-License-Identifier: MIT */
/*
 * channel.h - struct zbus_channel: a mapped segment, shared by the
 * publishers and subscribers made from it.
 */
#ifndef ZB_CHANNEL_H
#define ZB_CHANNEL_H

#include "segment.h"

struct zbus_channel {
	struct zb_segment seg;
	/* Its name at the broker ("" if unknown: attached from fds alone),
	 * for pulls the broker makes for us. */
	char name[256];
};

#endif /* ZB_CHANNEL_H */
