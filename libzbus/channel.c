/* SPDX-License-Identifier: MIT */
/*
 * channel.c - public channel API: create, attach, inspect, free.
 */
#include "channel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "zbus/zbus.h"

ZBUS_EXPORT int zbus_channel_create(const char *name,
				    const struct zbus_channel_opts *opts,
				    struct zbus_channel **out)
{
	struct zb_geometry g;
	struct zbus_channel *ch;
	int r;

	if (!out)
		return -EINVAL;
	r = zb_geometry_from_opts(opts, &g);
	if (r < 0)
		return r;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	r = zb_segment_create(name, &g,
			      !!(opts && (opts->flags & ZBUS_CHANNEL_SEAL_WRITERS)),
			      &ch->seg);
	if (r < 0) {
		free(ch);
		return r;
	}
	if (name)
		snprintf(ch->name, sizeof(ch->name), "%s", name);
	*out = ch;
	return 0;
}

ZBUS_EXPORT int zbus_channel_attach_dup(int data_fd, int state_fd,
					struct zbus_channel **out)
{
	const int fds[ZB_NFDS] = { [ZB_FD_DATA] = data_fd,
				   [ZB_FD_STATE] = state_fd };
	struct zbus_channel *ch;
	int r;

	if (!out)
		return -EINVAL;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	r = zb_segment_attach_dup(fds, &ch->seg);
	if (r < 0) {
		free(ch);
		return r;
	}
	*out = ch;
	return 0;
}

ZBUS_EXPORT int zbus_channel_fd(const struct zbus_channel *ch)
{
	return ch ? ch->seg.fd : -EINVAL;
}

ZBUS_EXPORT int zbus_channel_state_fd(const struct zbus_channel *ch)
{
	return ch ? ch->seg.state_fd : -EINVAL;
}

ZBUS_EXPORT int zbus_channel_info(const struct zbus_channel *ch,
				  struct zbus_channel_info *info)
{
	const struct zb_geometry *g;

	if (!ch || !info)
		return -EINVAL;
	g = &ch->seg.g;
	*info = (struct zbus_channel_info){
		.max_msg_size = g->max_msg_size,
		.ring_capacity = g->ring_capacity,
		.max_subscribers = g->max_subs,
		.max_publishers = g->max_pubs,
		.version_major = g->version_major,
		.version_minor = g->version_minor,
		.arena_bytes = g->arena_size,
		.segment_bytes = g->segment_size,
		.state_bytes = g->state_size,
		.flags = (ch->seg.sealed ? ZBUS_CHANNEL_SEAL_WRITERS : 0) |
			 (ch->seg.writable ? 0 : ZBUS_CHANNEL_READ_ONLY),
	};
	return 0;
}

ZBUS_EXPORT struct zbus_channel *zbus_channel_free(struct zbus_channel *ch)
{
	if (ch) {
		zb_segment_destroy(&ch->seg);
		free(ch);
	}
	return NULL;
}
