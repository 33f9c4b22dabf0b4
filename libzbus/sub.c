/* SPDX-License-Identifier: MIT */
/*
 * sub.c - public subscription API: batched in-place receive, copying
 * receive, release, adaptive waiting, pollable fd.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "conn.h"
#include "delivered.h"
#include "notify.h"
#include "ref.h"
#include "ring.h"
#include "sub.h"
#include "util.h"
#include "wait.h"
#include "zbus/zbus.h"

#define DEFAULT_SPIN_US 50

struct zbus_sub {
	struct zbus_channel *ch;
	struct zb_ring_sub ring;
	uint64_t spin_ns;
	int bad_pending; /* a bad descriptor met after messages returned */
	struct zb_notify *notify;
	struct zb_refs refs; /* publishers pulled from (ZBUS_MSG_REF) */
	uint64_t pulled, pull_failed;
	struct zbus_conn *conn; /* pulls through the broker, or NULL */
	/* zbus_conn_subscribe(): the channel it mapped, freed with it; or,
	 * when the broker delivers it, the delivery (and no channel) */
	struct zbus_channel *own_ch;
	struct zb_delivered *dv;
};

int zb_sub_opts_valid(const struct zbus_sub_opts *o)
{
	for (size_t i = 0; i < 3; i++)
		if (o->reserved[i])
			return 0;
	return (o->policy == ZBUS_RELIABLE || o->policy == ZBUS_LOSSY) &&
	       o->spin_us >= -1;
}

ZBUS_EXPORT int zbus_sub_new(struct zbus_channel *ch,
			     const struct zbus_sub_opts *opts,
			     struct zbus_sub **out)
{
	struct zbus_sub_opts o = { 0 };
	struct zbus_sub *s;
	int r;

	if (!ch || !out)
		return -EINVAL;
	if (opts)
		o = *opts;
	if (!zb_sub_opts_valid(&o))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ch = ch;
	if (o.spin_us == -1)
		s->spin_ns = 0;
	else
		s->spin_ns = (uint64_t)(o.spin_us ? o.spin_us : DEFAULT_SPIN_US)
			     * 1000;
	r = zb_ring_sub_join(&s->ring, &ch->seg, o.policy);
	if (r < 0) {
		free(s);
		return r;
	}
	zb_refs_init(&s->refs, &ch->seg);
	s->conn = o.conn;
	*out = s;
	return 0;
}

ZBUS_EXPORT struct zbus_sub *zbus_sub_free(struct zbus_sub *sub)
{
	if (!sub)
		return NULL;
	if (sub->dv) {
		zb_delivered_close(sub->dv);
		free(sub);
		return NULL;
	}
	sub->notify = zb_notify_stop(sub->notify);
	zb_refs_fini(&sub->refs);
	zb_ring_sub_leave(&sub->ring);
	zbus_channel_free(sub->own_ch);
	free(sub);
	return NULL;
}

int zb_sub_adopt_channel(struct zbus_sub *sub, struct zbus_channel *ch)
{
	if (sub->ch != ch || sub->dv)
		return -EINVAL;
	sub->own_ch = ch;
	return 0;
}

int zb_sub_new_delivered(struct zb_delivered *dv, struct zbus_sub **out)
{
	struct zbus_sub *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->dv = dv;
	*out = s;
	return 0;
}

int zb_sub_is_delivered(const struct zbus_sub *sub)
{
	return sub->dv != NULL;
}

/*
 * Copy a payload a lossy producer may be overwriting: a seqlock read whose
 * result is validated afterwards. Under ThreadSanitizer the copy is a plain
 * loop hidden from instrumentation (memcpy is intercepted), so that TSan
 * keeps reporting real races everywhere else.
 */
#if defined(__SANITIZE_THREAD__)
__attribute__((no_sanitize_thread)) static void copy_racy(void *dst,
							   const void *src,
							   size_t n)
{
	const volatile uint8_t *s = src;
	uint8_t *d = dst;

	for (size_t i = 0; i < n; i++)
		d[i] = s[i];
}
#else
static void copy_racy(void *dst, const void *src, size_t n)
{
	memcpy(dst, src, n);
}
#endif

/*
 * The record of message by reference @m, copied out of the arena and
 * checked: what a pull follows. Return: 0; -ESTALE (lossy: overwritten
 * while we copied it); -EBADMSG.
 */
static int ref_record(struct zbus_sub *sub, const struct zb_ring_msg *m,
		      struct zb_ref *ref)
{
	copy_racy(ref, m->data, sizeof(*ref));
	if (sub->ring.policy == ZBUS_LOSSY &&
	    !zb_ring_msg_intact(&sub->ring, m))
		return -ESTALE;
	return zb_ref_check(sub->ring.seg, ref);
}

/* @m is by reference: its size is the record's. Return: as ref_record(),
 * and on failure the message is taken back from the counts (a loss for a
 * stale one, a bad descriptor for a corrupt one). */
static int ref_msg(struct zbus_sub *sub, const struct zb_ring_msg *m,
		   struct zbus_msg *out)
{
	struct zb_ref ref;
	int r = ref_record(sub, m, &ref);

	if (r < 0) {
		sub->ring.received--;
		if (r == -ESTALE) {
			/* Lost, with those lost before it: the next message
			 * says so. */
			sub->ring.missed++;
			sub->ring.pending_missed += m->missed + 1;
		} else {
			sub->ring.bad++;
		}
		return r;
	}
	out->data = NULL;
	out->size = (size_t)ref.length;
	out->flags |= ZBUS_MSG_REF;
	return 0;
}

/* Wait until the next message may be ready: spin, then sleep. */
static int wait_ready(struct zbus_sub *sub, uint64_t deadline)
{
	struct zb_ring_sub *r = &sub->ring;
	uint64_t start = zb_now_ns();
	uint64_t spin_end = start + sub->spin_ns;

	if (spin_end > deadline)
		spin_end = deadline;
	for (uint32_t n = 1; !zb_ring_ready(r, r->read_seq); n++) {
		zb_ring_prefetch_next(r);
		zb_cpu_relax();
		/* Read the clock every 64 spins only: it is the bound of
		 * the loop, not its work. */
		if (!(n & 63) && zb_now_ns() >= spin_end)
			return zb_ring_sleep(r, r->read_seq, deadline, NULL);
	}
	return 0;
}

ZBUS_EXPORT int zbus_sub_recv_batch(struct zbus_sub *sub,
				    struct zbus_msg *msgs, unsigned n,
				    int timeout_ms)
{
	uint64_t deadline = 0;

	if (!sub || !msgs || !n || timeout_ms < -1)
		return -EINVAL;
	if (sub->dv)
		return zb_delivered_recv_batch(sub->dv, msgs, n, timeout_ms);
	if (sub->bad_pending) {
		sub->bad_pending = 0;
		return -EBADMSG;
	}
	for (;;) {
		/* Bounded: a lossy stream overrunning us can produce skips
		 * forever; after a ring's worth we wait or return. */
		uint32_t budget = sub->ring.seg->g.ring_capacity + n;
		unsigned k = 0;
		int r;

		while (k < n && budget--) {
			struct zb_ring_msg m;
			enum zb_read res = zb_ring_read(&sub->ring, &m);

			if (res == ZB_READ_EMPTY)
				break;
			if (res == ZB_READ_SKIPPED)
				continue;
			if (res == ZB_READ_BAD) {
				if (!k)
					return -EBADMSG;
				sub->bad_pending = 1;
				break;
			}
			msgs[k] = (struct zbus_msg){
				.data = m.data,
				.size = m.len,
				.seq = m.seq,
				.producer = m.pub_id,
				.flags = sub->ring.policy == ZBUS_LOSSY ?
						 ZBUS_MSG_LOSSY : 0,
				.missed = m.missed,
				.priv = m.pos,
			};
			if (m.flags & ZB_DESC_REF) {
				r = ref_msg(sub, &m, &msgs[k]);
				if (r == -ESTALE)
					continue;
				if (r < 0) {
					if (!k)
						return -EBADMSG;
					sub->bad_pending = 1;
					break;
				}
			}
			k++;
		}
		if (k)
			return (int)k;
		if (!timeout_ms)
			return -EAGAIN;
		if (!deadline)
			deadline = zb_deadline_ms(timeout_ms);
		r = wait_ready(sub, deadline);
		if (r < 0)
			return r;
		if (zb_now_ns() >= deadline &&
		    !zb_ring_ready(&sub->ring, sub->ring.read_seq))
			return -ETIMEDOUT;
	}
}

ZBUS_EXPORT int zbus_sub_validate(const struct zbus_sub *sub)
{
	if (!sub)
		return -EINVAL;
	if (sub->dv)
		return 0; /* our own copy: nobody overwrites it */
	return zb_ring_held_intact(&sub->ring) ? 0 : -ESTALE;
}

ZBUS_EXPORT int zbus_sub_release(struct zbus_sub *sub)
{
	int r;

	if (!sub)
		return -EINVAL;
	if (sub->dv)
		return zb_delivered_release(sub->dv);
	r = zbus_sub_validate(sub);
	if (r < 0) {
		/* The caller discards what it read: those were missed. */
		sub->ring.missed += sub->ring.holding;
		sub->ring.received -= sub->ring.holding;
	}
	zb_ring_release(&sub->ring);
	return r;
}

/* Is @msg one this subscription holds (received, not yet released)? */
static int holds(const struct zbus_sub *sub, const struct zbus_msg *msg)
{
	const struct zb_ring_sub *r = &sub->ring;

	uint64_t arena = r->seg->g.arena_size;

	return r->holding && (int64_t)(msg->seq - r->held_seq) >= 0 &&
	       (int64_t)(r->read_seq - msg->seq) > 0 &&
	       msg->priv - r->oldest_pos < r->read_pos - r->oldest_pos &&
	       msg->priv % ZB_ARENA_ALIGN == 0 &&
	       (msg->priv & (arena - 1)) + sizeof(struct zb_ref) <= arena;
}

ZBUS_EXPORT ssize_t zbus_sub_pull(struct zbus_sub *sub,
				  const struct zbus_msg *msg, uint64_t offset,
				  void *buf, size_t len)
{
	const struct zb_geometry *g;
	struct zb_ring_msg m;
	struct zb_ref ref;
	ssize_t n;

	if (!sub || sub->dv || !msg || (len && !buf) ||
	    !(msg->flags & ZBUS_MSG_REF) || !holds(sub, msg) || offset > msg->size ||
	    len > msg->size - offset)
		return -EINVAL;
	/* The record again, from our own idea of where it is: what the
	 * caller hands back is not trusted either. */
	g = &sub->ring.seg->g;
	m = (struct zb_ring_msg){
		.seq = msg->seq,
		.pos = msg->priv,
		.data = sub->ring.seg->arena + (msg->priv & (g->arena_size - 1)),
	};
	n = ref_record(sub, &m, &ref);
	if (n == 0 && ref.length != msg->size)
		n = -EBADMSG; /* rewritten since it was received */
	if (n == 0)
		n = zb_ref_pull(&sub->refs, &ref, msg->seq, offset, buf, len);
	/* Not ours to read: the broker may, if the channel lets us
	 * subscribe. It checks all this again, as hostile. */
	if (n == -EPERM && sub->conn && sub->ch->name[0]) {
		n = zb_conn_pull(sub->conn, sub->ch->name, msg->seq, offset,
				 buf, len);
		if (n == 0)
			n = (ssize_t)len;
	}
	if (n < 0)
		sub->pull_failed++;
	else if (offset + len == msg->size)
		sub->pulled++;
	return n;
}

/* Copy received message @m into @buf (@cap bytes). Return: 0; -ESTALE
 * when a lossy copy was overwritten (counted as missed by the release);
 * a pull's error for a message by reference. Releases @m. */
static int copy_out(struct zbus_sub *sub, const struct zbus_msg *m,
		    void *buf, size_t cap)
{
	ssize_t n = 0;

	if (sub->dv) {
		/* Delivered: already a copy of our own, never by reference. */
		if (m->size)
			memcpy(buf, m->data, m->size < cap ? m->size : cap);
		return zb_delivered_release(sub->dv);
	}
	if (m->flags & ZBUS_MSG_REF) {
		if (m->size <= cap && m->size <= INT_MAX)
			n = zbus_sub_pull(sub, m, 0, buf, m->size);
		/* The pull checked what it copied: the record it followed
		 * may be overwritten by now, and that is no loss. */
		zb_ring_release(&sub->ring);
		if (n == -ESTALE && sub->ring.policy == ZBUS_LOSSY) {
			sub->ring.missed++;
			sub->ring.received--;
		}
		return n < 0 ? (int)n : 0;
	}
	if (m->size && sub->ring.policy == ZBUS_LOSSY)
		copy_racy(buf, m->data, m->size < cap ? m->size : cap);
	else if (m->size)
		memcpy(buf, m->data, m->size < cap ? m->size : cap);
	return zbus_sub_release(sub) == 0 ? 0 : -ESTALE;
}

ZBUS_EXPORT int zbus_sub_recv(struct zbus_sub *sub, void *buf, size_t cap,
			      struct zbus_msg *info, int timeout_ms)
{
	for (;;) {
		struct zbus_msg m;
		int r;

		if (!sub || (cap && !buf))
			return -EINVAL;
		r = zbus_sub_recv_batch(sub, &m, 1, timeout_ms);
		if (r < 0)
			return r;
		r = copy_out(sub, &m, buf, cap);
		/* Lossy: a torn copy, or a buffer revoked before we pulled
		 * it, is a message missed (counted): try the next. */
		if (r == -ESTALE && !sub->dv &&
		    sub->ring.policy == ZBUS_LOSSY)
			continue;
		m.data = NULL;
		if (info)
			*info = m;
		if (r < 0)
			return r;
		if (m.size > cap || m.size > INT_MAX)
			return -EMSGSIZE;
		return (int)m.size;
	}
}

ZBUS_EXPORT int zbus_sub_fd(struct zbus_sub *sub)
{
	int r;

	if (!sub)
		return -EINVAL;
	if (sub->dv)
		return zb_delivered_fd(sub->dv);
	if (!sub->notify) {
		r = zb_notify_start(&sub->ring, &sub->notify);
		if (r < 0)
			return r;
	}
	return zb_notify_fd(sub->notify);
}

ZBUS_EXPORT int zbus_sub_stats(const struct zbus_sub *sub,
			       struct zbus_sub_stats *st)
{
	if (!sub || !st)
		return -EINVAL;
	if (sub->dv) {
		zb_delivered_stats(sub->dv, st);
		return 0;
	}
	*st = (struct zbus_sub_stats){
		.received = sub->ring.received,
		.missed = sub->ring.missed,
		.bad = sub->ring.bad,
		.abandoned = sub->ring.abandoned,
		.reclaimed = sub->ring.reclaimed,
		.pulled = sub->pulled,
		.pull_failed = sub->pull_failed,
	};
	return 0;
}

void zb_sub_identity(const struct zbus_sub *sub, uint32_t *slot,
		     uint32_t *word)
{
	*slot = sub->ring.slot_idx;
	*word = sub->ring.slot_word;
}
