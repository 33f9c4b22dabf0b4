/* SPDX-License-Identifier: MIT */
/*
 * pull.h - the broker copying a message by reference from its publisher
 * into a subscriber that may not read the publisher itself (Pull).
 */
#ifndef ZBD_PULL_H
#define ZBD_PULL_H

#include <stdint.h>
#include <sys/types.h>

/* A Pull the request checks let through: what to copy, and what the
 * publisher's own table must say for it. */
struct zbd_pull {
	uint64_t channel_id;
	uint32_t slot, word;  /* the publisher's slot, as its watch knows */
	uint64_t ref_table;   /* where its table is, as it registered */
	uint64_t seq;
	uint64_t ref_addr;    /* the record in the ring: the table must */
	uint64_t ref_length;  /* say the same for seq */
	uint64_t offset, length; /* within the message */
	uint64_t dest;        /* in the asking process */
};

/*
 * zbd_pull_copy() - copy @j from the publisher (@src_fd, @src) into the
 * asker (@dst_fd, @dst): process_vm_readv into a buffer of the broker's,
 * process_vm_writev out of it, a piece at a time. Only if the publisher's
 * table vouches for the message, before and after the copy.
 * @why: set to a phrase saying which side failed.
 * @dst_failed: if not NULL, set when the failure was the asker's side
 * (gone, or its buffer not mapped).
 * Return: 0; -ESTALE (not vouched for: revoked, replaced, forged);
 * -ESRCH (either process gone); -EFAULT (the publisher's range or the
 * asker's buffer not mapped); -EPERM (the broker may not: see README);
 * -ENOMEM; -errno.
 */
int zbd_pull_copy(const struct zbd_pull *j, int src_fd, pid_t src,
		  int dst_fd, pid_t dst, const char **why, int *dst_failed);

#endif /* ZBD_PULL_H */
