/* SPDX-License-Identifier: MIT */
/*
 * hist.c - see hist.h.
 */
#include "hist.h"

#include <math.h>
#include <string.h>

void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
}

static unsigned int bucket_of(uint64_t v)
{
	unsigned int e, sub;

	if (v < HIST_LINEAR)
		return (unsigned int)v;
	e = 63u - (unsigned int)__builtin_clzll(v); /* >= 6 */
	if (e >= HIST_MAX_POW)
		return HIST_BUCKETS - 1;
	sub = (unsigned int)(v >> (e - HIST_SUB_BITS)) &
	      ((1u << HIST_SUB_BITS) - 1);
	return HIST_LINEAR + (e - 6u) * (1u << HIST_SUB_BITS) + sub;
}

/* The largest value bucket @b holds. */
static uint64_t bucket_top(unsigned int b)
{
	unsigned int e, sub;

	if (b < HIST_LINEAR)
		return b;
	e = 6u + (b - HIST_LINEAR) / (1u << HIST_SUB_BITS);
	sub = (b - HIST_LINEAR) % (1u << HIST_SUB_BITS);
	return (((uint64_t)(1u << HIST_SUB_BITS) + sub + 1)
		<< (e - HIST_SUB_BITS)) - 1;
}

void hist_add(struct hist *h, uint64_t v)
{
	h->count[bucket_of(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
	uint64_t rank, seen = 0;

	if (!h->n)
		return 0;
	rank = (uint64_t)ceil(p * (double)h->n);
	if (rank < 1)
		rank = 1;
	for (unsigned int b = 0; b < HIST_BUCKETS; b++) {
		seen += h->count[b];
		if (seen >= rank) {
			uint64_t top = bucket_top(b);

			return top < h->max ? top : h->max;
		}
	}
	return h->max;
}
