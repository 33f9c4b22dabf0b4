/* SPDX-License-Identifier: MIT */
/*
 * hist.h - a latency histogram from nanoseconds to minutes in fixed memory
 * (log-linear buckets: exact below 64 ns, then 32 buckets per power of
 * two, so any value is known within 1/32 of itself). It lives in memory
 * shared with a forked peer, so it holds no pointers.
 */
#ifndef ZBUS_BENCH_HIST_H
#define ZBUS_BENCH_HIST_H

#include <stdint.h>

#define HIST_LINEAR 64u		/* values below it have a bucket each */
#define HIST_SUB_BITS 5u	/* 32 buckets per power of two above it */
#define HIST_MAX_POW 41u	/* up to 2^41 ns: about 37 minutes */
#define HIST_BUCKETS                                                      \
	(HIST_LINEAR + (HIST_MAX_POW - 6u) * (1u << HIST_SUB_BITS))

struct hist {
	uint64_t n;
	uint64_t max;
	uint64_t count[HIST_BUCKETS];
};

void hist_reset(struct hist *h);
/* Record @v (values past the top land in the last bucket; max is exact). */
void hist_add(struct hist *h, uint64_t v);
/* The smallest value with at least @p of the samples at or below it, as
 * the upper bound of its bucket (never below the truth); 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double p);

#endif /* ZBUS_BENCH_HIST_H */
