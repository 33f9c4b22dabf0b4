/* SPDX-License-Identifier: MIT */
/*
 * sub.c - public subscription API: batched in-place receive, copying
 * receive, release, adaptive waiting, pollable fd.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "notify.h"
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
};

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
	for (size_t i = 0; i < 6; i++)
		if (o.reserved[i])
			return -EINVAL;
	if ((o.policy != ZBUS_RELIABLE && o.policy != ZBUS_LOSSY) ||
	    o.spin_us < -1)
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
	*out = s;
	return 0;
}

ZBUS_EXPORT struct zbus_sub *zbus_sub_free(struct zbus_sub *sub)
{
	if (!sub)
		return NULL;
	sub->notify = zb_notify_stop(sub->notify);
	zb_ring_sub_leave(&sub->ring);
	free(sub);
	return NULL;
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
			msgs[k++] = (struct zbus_msg){
				.data = m.data,
				.size = m.len,
				.seq = m.seq,
				.producer = m.pub_id,
				.flags = sub->ring.policy == ZBUS_LOSSY ?
						 ZBUS_MSG_LOSSY : 0,
				.missed = m.missed,
				.priv = m.pos,
			};
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
	return zb_ring_held_intact(&sub->ring) ? 0 : -ESTALE;
}

ZBUS_EXPORT int zbus_sub_release(struct zbus_sub *sub)
{
	int r;

	if (!sub)
		return -EINVAL;
	r = zbus_sub_validate(sub);
	if (r < 0) {
		/* The caller discards what it read: those were missed. */
		sub->ring.missed += sub->ring.holding;
		sub->ring.received -= sub->ring.holding;
	}
	zb_ring_release(&sub->ring);
	return r;
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

ZBUS_EXPORT int zbus_sub_recv(struct zbus_sub *sub, void *buf, size_t cap,
			      struct zbus_msg *info, int timeout_ms)
{
	for (;;) {
		struct zbus_msg m;
		int r, intact;

		if (!sub || (cap && !buf))
			return -EINVAL;
		r = zbus_sub_recv_batch(sub, &m, 1, timeout_ms);
		if (r < 0)
			return r;
		if (m.size && sub->ring.policy == ZBUS_LOSSY)
			copy_racy(buf, m.data, m.size < cap ? m.size : cap);
		else if (m.size)
			memcpy(buf, m.data, m.size < cap ? m.size : cap);
		intact = zbus_sub_release(sub) == 0;
		if (!intact)
			continue; /* counted as missed by the release */
		m.data = NULL;
		if (info)
			*info = m;
		return m.size > cap ? -EMSGSIZE : (int)m.size;
	}
}

ZBUS_EXPORT int zbus_sub_fd(struct zbus_sub *sub)
{
	int r;

	if (!sub)
		return -EINVAL;
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
	*st = (struct zbus_sub_stats){
		.received = sub->ring.received,
		.missed = sub->ring.missed,
		.bad = sub->ring.bad,
		.abandoned = sub->ring.abandoned,
		.reclaimed = sub->ring.reclaimed,
	};
	return 0;
}

void zb_sub_identity(const struct zbus_sub *sub, uint32_t *slot,
		     uint32_t *word)
{
	*slot = sub->ring.slot_idx;
	*word = sub->ring.slot_word;
}
