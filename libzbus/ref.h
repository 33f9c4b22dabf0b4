/* SPDX-License-Identifier: MIT */
/*
 * ref.h - the subscriber's side of messages published by reference:
 * reading their record, finding the publisher's process, and pulling.
 */
#ifndef ZB_REF_H
#define ZB_REF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layout.h"
#include "segment.h"

/* A publisher a subscription has pulled from: its slot's word when
 * resolved, and the process behind it, pinned. */
struct zb_ref_peer {
	uint32_t word; /* 0: nothing resolved */
	pid_t pid;
	int pidfd;
};

/* What a subscription knows of the publishers it pulls from. */
struct zb_refs {
	struct zb_segment *seg;
	struct zb_ref_peer *peers; /* one per publisher slot, or NULL */
	uint64_t data_dev, data_ino; /* the data memfd, as /proc shows it */
};

void zb_refs_init(struct zb_refs *r, struct zb_segment *seg);
/* Close every pidfd. */
void zb_refs_fini(struct zb_refs *r);

/*
 * zb_ref_check() - is @ref, as read from a descriptor, one a pull could
 * follow? Its fields only: the slot's range, no overflow, a zero reserved.
 * Return: 0; -EBADMSG.
 */
int zb_ref_check(const struct zb_segment *seg, const struct zb_ref *ref);

/*
 * zb_ref_pull() - copy [@off, @off + @len) of @ref (message @seq) into
 * @dst. The range must lie within ref->length (checked by the caller).
 * Return: @len; -ESRCH; -ESTALE; -EFAULT; -EPERM; -EBADMSG; -ENOMEM;
 * -errno (see zbus_sub_pull()).
 */
ssize_t zb_ref_pull(struct zb_refs *r, const struct zb_ref *ref, uint64_t seq,
		    uint64_t off, void *dst, size_t len);

#endif /* ZB_REF_H */
