/* SPDX-License-Identifier: MIT */
/*
 * pull.c - Pull: the broker's copy for a subscriber of another user.
 *
 * The broker may read every client's memory (root, or CAP_SYS_PTRACE), so
 * it must not let a record in the ring, which any publisher of the channel
 * can write, choose what it reads: a forged record naming another
 * publisher's slot would otherwise read that publisher's secrets out for
 * whoever asks. It reads only what the publisher itself vouches for, in a
 * table in its own memory (layout.h, struct zb_ref_entry) whose address it
 * gave over its own connection. Two copies (in and out of the broker's
 * buffer) in pieces that stay in cache, since no system call copies from
 * one process straight into another for a third.
 */
#include "pull.h"

#include <errno.h>
#include <stdlib.h>

#include "layout.h"
#include "vmpull.h"

#define BOUNCE_BYTES (256u << 10) /* fits L2: the write reads it warm */

/* Does the publisher's table still say @j's message is @j's record? */
static int vouched(const struct zbd_pull *j, int src_fd, pid_t src)
{
	struct zb_ref_entry e;
	uint64_t at = j->ref_table +
		      (j->seq % ZB_REF_TABLE_LEN) * sizeof(struct zb_ref_entry);
	ssize_t n;

	if (j->ref_table > UINT64_MAX - ZB_REF_TABLE_LEN * sizeof(e))
		return -ESTALE;
	n = zb_vmpull_read(src_fd, src, at, &e, sizeof(e));
	if (n < 0)
		return n == -EFAULT ? -ESTALE : (int)n;
	return e.seq_plus1 == j->seq + 1 && e.addr == j->ref_addr &&
			       e.length == j->ref_length ?
		       0 :
		       -ESTALE;
}

int zbd_pull_copy(const struct zbd_pull *j, int src_fd, pid_t src,
		  int dst_fd, pid_t dst, const char **why, int *dst_failed)
{
	static uint8_t *bounce;
	uint64_t done = 0;
	int unused, r;

	if (!dst_failed)
		dst_failed = &unused;
	*dst_failed = 0;

	*why = "the publisher does not vouch for that message (revoked, or "
	       "not its own)";
	r = vouched(j, src_fd, src);
	if (r < 0)
		return r;
	if (!bounce && !(bounce = malloc(BOUNCE_BYTES))) {
		*why = "out of memory";
		return -ENOMEM;
	}
	while (done < j->length) {
		size_t n = j->length - done < BOUNCE_BYTES ?
				   (size_t)(j->length - done) : BOUNCE_BYTES;
		ssize_t k = zb_vmpull_read(src_fd, src,
					   j->ref_addr + j->offset + done,
					   bounce, n);

		if (k < 0) {
			*why = "reading the publisher's buffer";
			return (int)k;
		}
		k = zb_vmpull_write(dst_fd, dst, j->dest + done, bounce, n);
		if (k < 0) {
			*why = "writing into the subscriber's buffer";
			*dst_failed = 1;
			return (int)k;
		}
		done += n;
	}
	/* Revoked while we copied: what we wrote may be half new. */
	*why = "the publisher revoked the buffer during the copy";
	return vouched(j, src_fd, src);
}
