/* SPDX-License-Identifier: MIT */
/*
 * rates.c - sampling a channel's counters into messages per second.
 */
#include "rates.h"

#include <stdlib.h>

#include "live.h"

static struct zbd_rates *rates_of(struct zbd_channel *c)
{
	uint32_t nsubs = c->info.max_subscribers;
	uint32_t npubs = c->info.max_publishers;
	struct zbd_rates *r;

	if (c->rates)
		return c->rates;
	r = calloc(1, sizeof(*r) + (nsubs + npubs) * sizeof(*r->sub));
	if (!r)
		return NULL;
	r->sub = (struct zbd_slot_rate *)(r + 1);
	r->pub = r->sub + nsubs;
	c->rates = r;
	return r;
}

/* Take @e to (@word, @count), @ns after its last sample (0: the first). */
static void step(struct zbd_slot_rate *e, uint32_t word, uint64_t count,
		 uint64_t ns)
{
	int same = ns && e->word == word && (int64_t)(count - e->count) >= 0;

	e->rate = same ? (double)(count - e->count) * 1e9 / (double)ns : 0;
	e->word = word;
	e->count = count;
}

/* A subscriber's count: messages it took off the ring, lost ones aside. */
static uint64_t taken(const struct zb_live_sub *ls)
{
	return ls->released - ls->missed;
}

/* The entries of the live lists come in slot order: walk both at once,
 * and a slot the list skips holds nothing now. */
static void sample_subs(struct zbd_rates *r, uint32_t nsubs,
			const struct zb_live *live, uint64_t ns)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < nsubs; i++) {
		const struct zb_live_sub *ls = &live->sub[k];

		if (k < live->subscribers && ls->slot == i) {
			step(&r->sub[i], ls->word, taken(ls), ns);
			k++;
		} else {
			r->sub[i] = (struct zbd_slot_rate){ 0 };
		}
	}
}

static void sample_pubs(struct zbd_rates *r, uint32_t npubs,
			const struct zb_live_pub *live, uint32_t n,
			uint64_t ns)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < npubs; i++) {
		if (k < n && live[k].slot == i) {
			step(&r->pub[i], live[k].word, live[k].published, ns);
			k++;
		} else {
			r->pub[i] = (struct zbd_slot_rate){ 0 };
		}
	}
}

void zbd_rates_sample(struct zbd_channel *c, uint64_t now_ns)
{
	uint32_t npubs = c->info.max_publishers;
	struct zbd_rates *r = rates_of(c);
	struct zb_live_pub *pubs;
	struct zb_live live;
	uint64_t ns;
	uint32_t n;

	pubs = r ? malloc(npubs * sizeof(*pubs)) : NULL;
	if (!pubs)
		return;
	ns = r->at_ns && now_ns > r->at_ns ? now_ns - r->at_ns : 0;
	zb_live_read(c->ch, &live);
	n = zb_live_pubs(c->ch, pubs, npubs);
	step(&r->claims, 0, live.published, ns);
	sample_subs(r, c->info.max_subscribers, &live, ns);
	sample_pubs(r, npubs, pubs, n, ns);
	r->at_ns = now_ns;
	free(pubs);
}

double zbd_publish_rate(const struct zbd_channel *c)
{
	return c->rates ? c->rates->claims.rate : 0;
}

double zbd_rate_of(const struct zbd_channel *c, enum zbd_watch_kind kind,
		   uint32_t slot, uint32_t word)
{
	const struct zbd_slot_rate *e;

	if (!c->rates)
		return 0;
	if (kind == ZBD_WATCH_PUB && slot < c->info.max_publishers)
		e = &c->rates->pub[slot];
	else if (kind == ZBD_WATCH_SUB && slot < c->info.max_subscribers)
		e = &c->rates->sub[slot];
	else
		return 0;
	return e->word == word ? e->rate : 0;
}
