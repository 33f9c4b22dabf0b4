/* SPDX-License-Identifier: MIT */
/*
 * reclaim.h - taking back what dead or stuck producers hold: the broker's
 * side of liveness on the data path. Each function needs the data segment
 * mapped writable; on a sealed channel (one publisher for life, so no
 * stream to keep going once it is gone) they do nothing.
 */
#ifndef ZB_RECLAIM_H
#define ZB_RECLAIM_H

#include <stdint.h>

#include "segment.h"

/*
 * zb_reclaim_pad() - take claim @seq back: its commit word becomes
 * ZB_COMMIT_PADDED | (seq + 1) unless it already reached seq + 1, and the
 * subscribers waiting for it are woken. Only a claimed seq within one ring
 * of the claim is padded: a hostile record can't make us pad the future.
 * Return: 1 if padded; 0 if committed already (or not padded: out of the
 * window, or the word kept changing under us).
 */
int zb_reclaim_pad(struct zb_segment *seg, uint64_t seq);

/*
 * zb_reclaim_publisher() - free publisher slot @idx if it still holds
 * @word (the ACTIVE state and generation of the publisher meant, which
 * must be dead: nothing stops a live one from recording loans meanwhile),
 * pad the loans it recorded, and take it out of ctl->publishers (clearing
 * the exclusive mark if it held it).
 * Return: the number of loans padded, or -ESRCH when the slot holds
 * something else (freed already, or another publisher since).
 */
int zb_reclaim_publisher(struct zb_segment *seg, uint32_t idx, uint32_t word);

/*
 * Stuck-claim detection for one channel, driven by the broker's timer.
 * Every seq in [head, mark) was claimed at or before @since_ns and is not
 * committed yet; if one still is @timeout_ns later, all of [head, mark)
 * that is still open is padded.
 */
struct zb_unblock {
	uint64_t head;     /* lowest seq not known to be committed */
	uint64_t mark;     /* claim_seq when @since_ns was taken */
	uint64_t since_ns;
	int started;
};

/*
 * zb_reclaim_unblock() - one look at @seg: advance over committed
 * descriptors (at most one ring's worth per call) and pad claims held past
 * @timeout_ns. Return: the number of claims padded.
 */
uint64_t zb_reclaim_unblock(struct zb_segment *seg, struct zb_unblock *u,
			    uint64_t now_ns, uint64_t timeout_ns);

#endif /* ZB_RECLAIM_H */
