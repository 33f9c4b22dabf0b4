/* SPDX-License-Identifier: MIT */
/*
 * segment.h - a channel's memfd: creation, sealing, validation, mapping.
 */
#ifndef ZB_SEGMENT_H
#define ZB_SEGMENT_H

#include <stdint.h>

#include "layout.h"

struct zbus_channel_opts;

/* Seals every channel memfd carries before any other process maps it. */
#define ZB_REQUIRED_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

struct zb_segment {
	int fd;
	uint8_t *base;
	struct zb_geometry g;      /* validated private copy: trust this */
	struct zb_ctl *ctl;
	struct zb_sub_slot *slots;
	struct zb_pub_slot *pubs;
	struct zb_desc *ring;
	uint8_t *arena;
};

/*
 * zb_geometry_from_opts() - compute a new segment's geometry.
 * Return: 0; -EINVAL for options out of range or reserved fields set.
 */
int zb_geometry_from_opts(const struct zbus_channel_opts *opts,
			  struct zb_geometry *g);

/*
 * zb_layout_validate() - check a header copy against the file's size.
 * Every offset and size is checked with overflow-safe arithmetic.
 * Return: 0 and @g filled; -EBADMSG (corrupt); -EPROTO (incompatible).
 */
int zb_layout_validate(const struct zb_shm_hdr *hdr, uint64_t file_size,
		       struct zb_geometry *g);

/* Create, size, map, initialise and seal a new segment. */
int zb_segment_create(const char *name, const struct zb_geometry *g,
		      struct zb_segment *seg);
/* Check seals, size and header of @fd, then map a duplicate of it. */
int zb_segment_attach_dup(int fd, struct zb_segment *seg);
void zb_segment_destroy(struct zb_segment *seg);

#endif /* ZB_SEGMENT_H */
