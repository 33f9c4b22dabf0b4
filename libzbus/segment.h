/* SPDX-License-Identifier: MIT */
/*
 * segment.h - a channel's two memfds (layout.h): creation, sealing,
 * validation, mapping.
 */
#ifndef ZB_SEGMENT_H
#define ZB_SEGMENT_H

#include <stdint.h>

#include "layout.h"

struct zbus_channel_opts;

/* Seals every channel memfd carries before any other process maps it. */
#define ZB_REQUIRED_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* Index of each memfd in a channel's fd pair (as passed over sockets). */
enum { ZB_FD_DATA, ZB_FD_STATE, ZB_NFDS };

struct zb_segment {
	int fd;                   /* data memfd */
	int state_fd;             /* state memfd */
	uint8_t *base;            /* data mapping */
	uint8_t *state_base;      /* state mapping (always read-write) */
	int writable;             /* data mapped read-write: may publish */
	int sealed;               /* data sealed against new writers */
	struct zb_geometry g;      /* validated private copy: trust this */
	struct zb_ctl *ctl;
	struct zb_sub_ctl *sctl;
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
/*
 * zb_state_validate() - check a state header copy against its file's size
 * and the data segment's validated geometry @g; fills @g's state fields.
 * Return: 0; -EBADMSG (corrupt, or another channel's); -EPROTO.
 */
int zb_state_validate(const struct zb_state_hdr *sh, uint64_t file_size,
		      struct zb_geometry *g);

/*
 * zb_segment_create() - create, size, map, initialise and seal both
 * memfds. With @seal_writers the data memfd is also sealed with
 * F_SEAL_FUTURE_WRITE: the mapping made here stays the only writable one.
 */
int zb_segment_create(const char *name, const struct zb_geometry *g,
		      int seal_writers, struct zb_segment *seg);
/*
 * zb_segment_attach_dup() - check seals, sizes and headers of both memfds,
 * then map duplicates of them. The data memfd is mapped read-write when
 * @fds[ZB_FD_DATA] was opened read-write and is not sealed against new
 * writers, else read-only; the state memfd must be read-write.
 */
int zb_segment_attach_dup(const int fds[ZB_NFDS], struct zb_segment *seg);
void zb_segment_destroy(struct zb_segment *seg);

#endif /* ZB_SEGMENT_H */
