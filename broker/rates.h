/* SPDX-License-Identifier: MIT */
/*
 * rates.h - messages per second. The segment holds counters only (the
 * claim, each publisher's count, each subscriber's release point and
 * losses); the broker samples them on its timer, about once a second, and
 * reports the rate over the last interval sampled.
 */
#ifndef ZBD_RATES_H
#define ZBD_RATES_H

#include <stdint.h>

#include "registry.h"
#include "watches.h"

#define ZBD_RATE_INTERVAL_MS 1000

/* One slot when last sampled. */
struct zbd_slot_rate {
	uint32_t word;  /* what it held then (0: nothing active) */
	uint64_t count; /* its counter then */
	double rate;    /* messages/s over the interval that ended then */
};

/* A channel's samples: one block, freed with free(). */
struct zbd_rates {
	uint64_t at_ns;     /* the last sample (0: none yet) */
	struct zbd_slot_rate claims; /* of the channel's claim_seq */
	struct zbd_slot_rate *sub; /* max_subscribers of them */
	struct zbd_slot_rate *pub; /* max_publishers of them */
};

/*
 * zbd_rates_sample() - sample @c's counters at @now_ns. A rate needs two
 * samples of the same occupant of a slot, and a counter that did not go
 * back (they are hostile): otherwise it is 0. Out of memory, nothing is
 * sampled and every rate stays 0.
 */
void zbd_rates_sample(struct zbd_channel *c, uint64_t now_ns);

/* Claims per second on @c over the last interval sampled. */
double zbd_publish_rate(const struct zbd_channel *c);
/* The rate of slot @slot (of @kind) of @c if it holds @word as when last
 * sampled, else 0. */
double zbd_rate_of(const struct zbd_channel *c, enum zbd_watch_kind kind,
		   uint32_t slot, uint32_t word);

#endif /* ZBD_RATES_H */
