/* SPDX-License-Identifier: MIT */
/*
 * pub.c - public publisher API: loans, publish, abandon, copying sends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "pub.h"
#include "ring.h"
#include "util.h"
#include "wait.h"
#include "zbus/zbus.h"

/* Tags a loan so that a stray or reused struct is refused, not trusted. */
#define LOAN_TAG 0x7a6c6f616eull /* "zloan" */

struct zbus_pub {
	struct zbus_channel *ch;
	struct zb_ring_pub ring;
	int timeout_ms;
	/* Outstanding loans, oldest first, so that freeing the publisher
	 * abandons them instead of leaving consumers stuck behind them. */
	struct zb_claim *loans;
	size_t nloans, cap_loans;
	int large_by_ref; /* ZBUS_PUB_LARGE_BY_REF */
	/* What we published by reference, for the broker (layout.h). */
	struct zb_ref_entry refs[ZB_REF_TABLE_LEN];
};

static int track_loan(struct zbus_pub *p, const struct zb_claim *c)
{
	if (p->nloans == p->cap_loans) {
		size_t n = p->cap_loans ? 2 * p->cap_loans : 4;
		struct zb_claim *v = realloc(p->loans, n * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->loans = v;
		p->cap_loans = n;
	}
	p->loans[p->nloans++] = *c;
	return 0;
}

/* Take loan @seq off the list into @c (our copy: the caller's struct is
 * not trusted). Return: 0, or -EINVAL when @seq is not an outstanding
 * loan of @p. */
static int untrack_loan(struct zbus_pub *p, uint64_t seq, struct zb_claim *c)
{
	for (size_t i = 0; i < p->nloans; i++) {
		if (p->loans[i].seq != seq)
			continue;
		*c = p->loans[i];
		memmove(&p->loans[i], &p->loans[i + 1],
			(p->nloans - i - 1) * sizeof(*p->loans));
		p->nloans--;
		return 0;
	}
	return -EINVAL;
}

ZBUS_EXPORT int zbus_pub_new(struct zbus_channel *ch,
			     const struct zbus_pub_opts *opts,
			     struct zbus_pub **out)
{
	struct zbus_pub *p;
	int r;

	if (!ch || !out)
		return -EINVAL;
	if (opts) {
		for (size_t i = 0; i < 6; i++)
			if (opts->reserved[i])
				return -EINVAL;
		if (opts->timeout_ms < -1 ||
		    (opts->flags & ~(uint32_t)(ZBUS_PUB_EXCLUSIVE |
						ZBUS_PUB_LARGE_BY_REF)))
			return -EINVAL;
	}
	/* Mapped read-only: a subscribe-only fd, or sealed by its creator. */
	if (!ch->seg.writable)
		return -EACCES;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ch = ch;
	p->timeout_ms = opts ? opts->timeout_ms : -1;
	p->large_by_ref = opts && (opts->flags & ZBUS_PUB_LARGE_BY_REF);
	r = zb_ring_pub_init(&p->ring, &ch->seg,
			     opts && (opts->flags & ZBUS_PUB_EXCLUSIVE));
	if (r < 0) {
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

ZBUS_EXPORT struct zbus_pub *zbus_pub_free(struct zbus_pub *pub)
{
	if (!pub)
		return NULL;
	for (size_t i = 0; i < pub->nloans; i++)
		zb_ring_commit(&pub->ring, &pub->loans[i], 0,
			       ZB_DESC_ABANDONED);
	memset(pub->refs, 0, sizeof(pub->refs));
	zb_ring_pub_fini(&pub->ring);
	free(pub->loans);
	free(pub);
	return NULL;
}

ZBUS_EXPORT uint32_t zbus_pub_id(const struct zbus_pub *pub)
{
	return pub ? pub->ring.id : 0;
}

/* Claim @size arena bytes and a seq, waiting for room as @pub does. */
static int claim(struct zbus_pub *pub, size_t size, struct zb_claim *c)
{
	uint64_t deadline = 0;
	int r;

	for (;;) {
		r = zb_ring_claim(&pub->ring, size, c);
		if (r != -EAGAIN || pub->timeout_ms == 0)
			return r;
		if (!deadline)
			deadline = zb_deadline_ms(pub->timeout_ms);
		r = zb_ring_wait_room(&pub->ring, size, deadline);
		if (r < 0)
			return r;
	}
}

ZBUS_EXPORT int zbus_pub_loan(struct zbus_pub *pub, size_t size,
			      struct zbus_loan *loan)
{
	struct zb_claim c;
	int r;

	if (!pub || !loan)
		return -EINVAL;
	if (size > pub->ch->seg.g.max_msg_size)
		return -EMSGSIZE;
	r = claim(pub, size, &c);
	if (r < 0)
		return r;
	r = track_loan(pub, &c);
	if (r < 0) {
		zb_ring_commit(&pub->ring, &c, 0, ZB_DESC_ABANDONED);
		return r;
	}
	loan->data = pub->ch->seg.arena +
		     (c.pos & (pub->ch->seg.g.arena_size - 1));
	loan->size = size;
	loan->seq = c.seq;
	loan->priv[0] = c.pos;
	loan->priv[1] = LOAN_TAG << 24 | (uint64_t)pub->ring.id;
	return 0;
}

/* Check @loan is an outstanding loan of @pub and take it off the list. */
static int take_loan(struct zbus_pub *pub, const struct zbus_loan *loan,
		     struct zb_claim *c)
{
	if (!pub || !loan || loan->priv[1] != (LOAN_TAG << 24 | pub->ring.id))
		return -EINVAL;
	return untrack_loan(pub, loan->seq, c);
}

ZBUS_EXPORT int zbus_pub_publish(struct zbus_pub *pub, struct zbus_loan *loan,
				 size_t size)
{
	struct zb_claim c;
	int r;

	r = take_loan(pub, loan, &c);
	if (r < 0)
		return r;
	if (size > c.size) {
		/* Still outstanding: there is room, we just took it off. */
		track_loan(pub, &c);
		return -EINVAL;
	}
	/* Spent either way: a second publish is refused. */
	loan->priv[1] = 0;
	return zb_ring_commit(&pub->ring, &c, (uint32_t)size, 0);
}

ZBUS_EXPORT int zbus_pub_abandon(struct zbus_pub *pub, struct zbus_loan *loan)
{
	struct zb_claim c;
	int r = take_loan(pub, loan, &c);

	if (r < 0)
		return r;
	loan->priv[1] = 0;
	return zb_ring_commit(&pub->ring, &c, 0, ZB_DESC_ABANDONED);
}

/* Say in our table that message @seq is @ref: the broker reads it there
 * before it pulls for a subscriber that cannot. Visible before the
 * message is (the commit is a full barrier). */
static void vouch(struct zbus_pub *pub, uint64_t seq, const struct zb_ref *ref)
{
	struct zb_ref_entry *e = &pub->refs[seq % ZB_REF_TABLE_LEN];

	zb_store64(&e->seq_plus1, 0); /* never a mix of two messages */
	zb_fence_write();
	zb_store64(&e->addr, ref->addr);
	zb_store64(&e->length, ref->length);
	zb_fence_write();
	zb_store64(&e->seq_plus1, seq + 1);
}

/* Take back our word for every message up to @seq. */
static void unvouch(struct zbus_pub *pub, uint64_t seq)
{
	for (uint32_t i = 0; i < ZB_REF_TABLE_LEN; i++) {
		uint64_t v = zb_load64(&pub->refs[i].seq_plus1);

		if (v && (int64_t)(v - 1 - seq) <= 0)
			zb_store64(&pub->refs[i].seq_plus1, 0);
	}
}

/* Revoke in the ring (ref_floor) and in our table: from now on nobody
 * takes the buffers of messages up to @seq for theirs. */
static void revoke_refs(struct zbus_pub *pub, uint64_t seq)
{
	unvouch(pub, seq);
	zb_ring_revoke_refs(&pub->ring, seq); /* and fences */
}

ZBUS_EXPORT int zbus_pub_send_ref(struct zbus_pub *pub, const void *data,
				  size_t size, uint64_t *seq)
{
	struct zb_claim c;
	struct zb_ref ref;
	int r;

	if (!pub || (size && !data) ||
	    (uintptr_t)data > UINTPTR_MAX - size || size > ZBUS_REF_MAX)
		return -EINVAL;
	r = claim(pub, sizeof(ref), &c);
	if (r < 0)
		return r;
	ref = (struct zb_ref){
		.addr = (uint64_t)(uintptr_t)data,
		.length = size,
		.slot = pub->ring.slot_idx,
		.word = pub->ring.slot_word,
	};
	vouch(pub, c.seq, &ref);
	memcpy(pub->ch->seg.arena + (c.pos & (pub->ch->seg.g.arena_size - 1)),
	       &ref, sizeof(ref));
	r = zb_ring_commit(&pub->ring, &c, sizeof(ref), ZB_DESC_REF);
	if (r == 0 && seq)
		*seq = c.seq;
	return r;
}

ZBUS_EXPORT int zbus_pub_ref_wait(struct zbus_pub *pub, uint64_t seq,
				  int timeout_ms)
{
	int r;

	if (!pub || timeout_ms < -1)
		return -EINVAL;
	if (!timeout_ms)
		r = zb_ring_released(&pub->ring, seq) ? 0 : -EAGAIN;
	else
		r = zb_ring_wait_released(&pub->ring, seq,
					  zb_deadline_ms(timeout_ms));
	if (r == 0)
		revoke_refs(pub, seq);
	return r;
}

ZBUS_EXPORT int zbus_pub_ref_revoke(struct zbus_pub *pub, uint64_t seq)
{
	if (!pub)
		return -EINVAL;
	revoke_refs(pub, seq);
	return 0;
}

/*
 * A send too large for the arena, with ZBUS_PUB_LARGE_BY_REF: by reference,
 * returning once the reliable subscribers pulled it, as a copying send
 * returns once the bytes are copied. On a timeout the reference is revoked
 * (the caller gets its buffer back): late pullers get -ESTALE.
 */
static int send_large(struct zbus_pub *pub, const void *data, size_t size)
{
	uint64_t seq;
	int r = zbus_pub_send_ref(pub, data, size, &seq);

	if (r < 0)
		return r;
	r = zbus_pub_ref_wait(pub, seq, pub->timeout_ms);
	if (r < 0)
		revoke_refs(pub, seq);
	return r == -EAGAIN ? -ETIMEDOUT : r;
}

ZBUS_EXPORT int zbus_pub_sendv(struct zbus_pub *pub, const struct iovec *iov,
			       int iovcnt)
{
	struct zbus_loan loan;
	size_t total = 0;
	uint8_t *dst;
	int r;

	if (!pub || iovcnt < 0 || (iovcnt && !iov))
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len && !iov[i].iov_base)
			return -EINVAL;
		if (iov[i].iov_len > SIZE_MAX - total)
			return -EMSGSIZE;
		total += iov[i].iov_len;
	}
	/* One buffer only: a reference names one contiguous range. */
	if (total > pub->ch->seg.g.max_msg_size && pub->large_by_ref &&
	    iovcnt == 1)
		return send_large(pub, iov[0].iov_base, total);
	r = zbus_pub_loan(pub, total, &loan);
	if (r < 0)
		return r;
	dst = loan.data;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len)
			memcpy(dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
	return zbus_pub_publish(pub, &loan, total);
}

ZBUS_EXPORT int zbus_pub_send(struct zbus_pub *pub, const void *data,
			      size_t size)
{
	struct iovec iov = { .iov_base = (void *)data, .iov_len = size };

	return zbus_pub_sendv(pub, &iov, 1);
}

void zb_pub_identity(const struct zbus_pub *pub, uint32_t *slot,
		     uint32_t *word, uint64_t *ref_table)
{
	*slot = pub->ring.slot_idx;
	*word = pub->ring.slot_word;
	*ref_table = (uint64_t)(uintptr_t)pub->refs;
}
