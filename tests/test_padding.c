/* SPDX-License-Identifier: MIT */
/*
 * test_padding.c - taking claims back (reclaim.c) in one process: padding,
 * the race between a pad and a late publish, publisher slots and their
 * loan records, and the stuck-claim timer. The broker drives the same
 * functions for real in test_reclaim.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "layout.h"
#include "reclaim.h"
#include "testutil.h"
#include "util.h"
#include "zbus/zbus.h"

static struct zbus_channel *ch;

static void setup(void)
{
	tu_leak_begin();
}

static void teardown(void)
{
	ch = zbus_channel_free(ch);
	tu_leak_end();
}

TestSuite(padding, .init = setup, .fini = teardown, .timeout = 60);

static struct zb_segment *make(uint32_t cap)
{
	struct zbus_channel_opts o = { .max_msg_size = 256,
				       .ring_capacity = cap,
				       .max_publishers = 4 };
	int r = zbus_channel_create("padding", &o, &ch);

	cr_assert_eq(r, 0, "create: %s", zbus_strerror(r));
	return &ch->seg;
}

static struct zbus_pub *pub_new(uint32_t flags)
{
	struct zbus_pub_opts o = { .timeout_ms = 0, .flags = flags };
	struct zbus_pub *p;

	cr_assert_eq(zbus_pub_new(ch, &o, &p), 0);
	return p;
}

static struct zbus_sub *sub_new(uint32_t policy)
{
	struct zbus_sub_opts o = { .policy = policy };
	struct zbus_sub *s;

	cr_assert_eq(zbus_sub_new(ch, &o, &s), 0);
	return s;
}

static void loan(struct zbus_pub *p, struct zbus_loan *l, uint8_t fill)
{
	cr_assert_eq(zbus_pub_loan(p, 64, l), 0);
	memset(l->data, fill, 64);
}

/* Receive one message (nothing else may be pending) and check it. */
static void expect_msg(struct zbus_sub *s, uint64_t seq, uint8_t fill,
		       uint64_t missed)
{
	struct zbus_msg m;

	cr_assert_eq(zbus_sub_recv_batch(s, &m, 1, 0), 1, "seq %llu",
		     (unsigned long long)seq);
	cr_expect_eq(m.seq, seq);
	cr_expect_eq(m.missed, missed, "missed before %llu",
		     (unsigned long long)seq);
	cr_expect_eq(((const uint8_t *)m.data)[0], fill);
	cr_assert_eq(zbus_sub_release(s), 0);
}

static void expect_empty(struct zbus_sub *s)
{
	struct zbus_msg m;

	cr_expect_eq(zbus_sub_recv_batch(s, &m, 1, 0), -EAGAIN);
}

/* The word a live publisher's slot holds, found by its id. */
static uint32_t slot_of(struct zb_segment *seg, struct zbus_pub *p,
			uint32_t *idx)
{
	for (uint32_t i = 0; i < seg->g.max_pubs; i++) {
		uint32_t w = zb_load32(&seg->pubs[i].state);

		if ((w & ZB_SLOT_STATE_MASK) == ZB_SLOT_ACTIVE &&
		    seg->pubs[i].pub_id == zbus_pub_id(p)) {
			*idx = i;
			return w;
		}
	}
	cr_assert_fail("publisher %u has no slot", zbus_pub_id(p));
	return 0;
}

Test(padding, a_padded_claim_is_one_loss_and_the_stream_goes_on)
{
	struct zb_segment *seg = make(16);
	struct zbus_sub *s = sub_new(ZBUS_RELIABLE);
	struct zbus_pub *stuck = pub_new(0), *other = pub_new(0);
	struct zbus_loan a, b;
	struct zbus_sub_stats st;

	loan(stuck, &a, 0xaa); /* seq 0: never published */
	loan(other, &b, 0xbb); /* seq 1 */
	cr_assert_eq(zbus_pub_publish(other, &b, 64), 0);
	expect_empty(s); /* held back behind seq 0 */

	cr_expect_eq(zb_reclaim_pad(seg, 0), 1);
	cr_expect_eq(zb_reclaim_pad(seg, 0), 0, "padding twice does nothing");
	expect_msg(s, 1, 0xbb, 1);
	cr_assert_eq(zbus_sub_stats(s, &st), 0);
	cr_expect_eq(st.reclaimed, 1);
	cr_expect_eq(st.received, 1);

	/* The late publish loses the race, visibly, and changes nothing. */
	cr_expect_eq(zbus_pub_publish(stuck, &a, 64), -ECANCELED);
	cr_expect_eq(zb_load64(&seg->ring[0].commit), ZB_COMMIT_PADDED | 1);
	expect_empty(s);
	cr_assert_eq(zbus_pub_send(stuck, "\xcc", 1), 0, "it may go on");
	expect_msg(s, 2, 0xcc, 0);
	zbus_sub_free(s);
	zbus_pub_free(stuck);
	zbus_pub_free(other);
}

Test(padding, only_open_claims_within_one_ring_are_padded)
{
	struct zb_segment *seg = make(4);
	struct zbus_pub *p = pub_new(0);
	struct zbus_loan l;

	cr_expect_eq(zb_reclaim_pad(seg, 0), 0, "not claimed yet");
	cr_assert_eq(zbus_pub_send(p, "x", 1), 0);
	cr_expect_eq(zb_reclaim_pad(seg, 0), 0, "committed");
	cr_expect_eq(zb_reclaim_pad(seg, 1), 0, "the future");
	cr_expect_eq(zb_reclaim_pad(seg, UINT64_MAX), 0, "hostile");
	for (int i = 0; i < 5; i++)
		cr_assert_eq(zbus_pub_send(p, "x", 1), 0);
	loan(p, &l, 1); /* seq 6 */
	cr_expect_eq(zb_reclaim_pad(seg, 2), 0, "a ring behind: slot reused");
	cr_expect_eq(zb_load64(&seg->ring[2].commit), 3, "seq 2 untouched");
	cr_expect_eq(zb_reclaim_pad(seg, 6), 1);
	zbus_pub_free(p);
}

Test(padding, a_sleeping_subscriber_is_woken_by_the_pad)
{
	struct zb_segment *seg = make(16);
	struct zbus_sub *s = sub_new(ZBUS_RELIABLE);
	struct zbus_pub *p = pub_new(0);
	struct zbus_loan l;
	struct zbus_msg m;
	struct timespec t0, t1;
	pid_t child;

	loan(p, &l, 1); /* seq 0, held */
	cr_assert_eq(zbus_pub_send(p, "\x02", 1), 0);
	child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		usleep(100 * 1000); /* let the parent fall asleep */
		_exit(zb_reclaim_pad(seg, 0) == 1 ? 0 : 1);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(zbus_sub_recv_batch(s, &m, 1, 5000), 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_expect_eq(m.seq, 1);
	cr_expect_eq(m.missed, 1);
	cr_expect_lt(t1.tv_sec - t0.tv_sec, 4, "woken, not timed out");
	cr_assert_eq(tu_wait_child(child, 10), 0);
	zbus_sub_release(s);
	zbus_sub_free(s);
	zbus_pub_free(p);
}

Test(padding, a_dead_publishers_recorded_loans_are_padded)
{
	struct zb_segment *seg = make(32);
	struct zbus_sub *s = sub_new(ZBUS_RELIABLE);
	struct zbus_pub *dead = pub_new(0), *live = pub_new(0);
	struct zbus_loan l[3], k;
	uint32_t idx, word;

	for (int i = 0; i < 3; i++)
		loan(dead, &l[i], 0xd0); /* seqs 0..2 */
	cr_assert_eq(zbus_pub_publish(dead, &l[1], 64), 0);
	loan(live, &k, 0x11); /* seq 3, open: must survive */
	cr_expect_eq(zb_load32(&seg->ctl->publishers), 2);

	word = slot_of(seg, dead, &idx);
	cr_expect_eq(zb_reclaim_publisher(seg, idx, word), 2);
	cr_expect_eq(zb_reclaim_publisher(seg, idx, word), -ESRCH, "twice");
	cr_expect_eq(zb_load32(&seg->ctl->publishers), 1);
	expect_msg(s, 1, 0xd0, 1); /* seq 0 padded */
	expect_empty(s);           /* seq 2 padded, seq 3 still open */
	cr_assert_eq(zbus_pub_publish(live, &k, 64), 0);
	expect_msg(s, 3, 0x11, 1);

	/* The "dead" one, freed anyway, neither double-counts nor touches
	 * the stream. */
	zbus_pub_free(dead);
	cr_expect_eq(zb_load32(&seg->ctl->publishers), 1);
	expect_empty(s);
	zbus_pub_free(live);
	cr_expect_eq(zb_load32(&seg->ctl->publishers), 0);
	zbus_sub_free(s);
}

Test(padding, a_dead_exclusive_publisher_lets_another_one_in)
{
	struct zb_segment *seg = make(16);
	struct zbus_sub *s = sub_new(ZBUS_RELIABLE);
	struct zbus_pub *dead = pub_new(ZBUS_PUB_EXCLUSIVE), *next = NULL;
	struct zbus_pub_opts xo = { .flags = ZBUS_PUB_EXCLUSIVE };
	struct zbus_loan l;
	uint32_t idx, word;

	cr_assert_eq(zbus_pub_send(dead, "\x01", 1), 0);
	loan(dead, &l, 2);
	cr_assert_eq(zbus_pub_new(ch, &xo, &next), -EBUSY);
	word = slot_of(seg, dead, &idx);
	cr_expect_eq(zb_reclaim_publisher(seg, idx, word), 1);
	cr_expect_eq(zb_load32(&seg->ctl->publishers), 0);
	cr_assert_eq(zbus_pub_new(ch, &xo, &next), 0);
	cr_assert_eq(zbus_pub_send(next, "\x03", 1), 0);
	expect_msg(s, 0, 1, 0);
	expect_msg(s, 2, 3, 1);
	zbus_pub_free(next);
	zbus_pub_free(dead);
	zbus_sub_free(s);
}

Test(padding, loans_beyond_the_records_wait_for_the_timer)
{
	struct zb_segment *seg = make(32);
	struct zbus_pub *p = pub_new(0);
	struct zbus_loan l[ZB_PUB_LOANS + 2];
	struct zb_unblock u = { 0 };
	uint32_t idx, word;

	for (uint32_t i = 0; i < ZB_PUB_LOANS + 2; i++)
		loan(p, &l[i], 1);
	word = slot_of(seg, p, &idx);
	cr_expect_eq(zb_reclaim_publisher(seg, idx, word), (int)ZB_PUB_LOANS);
	cr_expect_eq(zb_reclaim_unblock(seg, &u, 1000, 500), 0, "starts");
	cr_expect_eq(zb_reclaim_unblock(seg, &u, 1400, 500), 0, "too early");
	cr_expect_eq(zb_reclaim_unblock(seg, &u, 1500, 500), 2);
	for (uint32_t i = 0; i < ZB_PUB_LOANS + 2; i++)
		cr_expect_eq(zb_load64(&seg->ring[i].commit),
			     ZB_COMMIT_PADDED | (i + 1), "seq %u", i);
	zbus_pub_free(p);
}

Test(padding, the_timer_pads_only_claims_held_past_the_timeout)
{
	struct zb_segment *seg = make(16);
	struct zbus_pub *p = pub_new(0);
	struct zb_unblock u = { 0 };
	struct zbus_loan a, b;

	cr_expect_eq(zb_reclaim_unblock(seg, &u, 0, 100), 0);
	loan(p, &a, 1); /* seq 0, claimed at t=0..10 */
	cr_expect_eq(zb_reclaim_unblock(seg, &u, 10, 100), 0);
	cr_assert_eq(zbus_pub_publish(p, &a, 64), 0);
	cr_expect_eq(zb_reclaim_unblock(seg, &u, 105, 100), 0, "committed");
	loan(p, &b, 2); /* seq 1, claimed after t=105 */
	cr_expect_eq(zb_reclaim_unblock(seg, &u, 110, 100), 0);
	/* Held since at least 110: not yet 100 later. */
	cr_expect_eq(zb_reclaim_unblock(seg, &u, 200, 100), 0);
	cr_expect_eq(zb_reclaim_unblock(seg, &u, 209, 100), 0);
	cr_expect_eq(zb_reclaim_unblock(seg, &u, 210, 100), 1);
	cr_expect_eq(zb_load64(&seg->ring[0].commit), 1, "seq 0 untouched");
	cr_expect_eq(zbus_pub_publish(p, &b, 64), -ECANCELED);
	cr_expect_eq(zb_reclaim_unblock(seg, &u, 400, 100), 0, "all closed");
	zbus_pub_free(p);
}

Test(padding, a_scribbled_claim_cannot_make_the_timer_spin_or_pad_the_future)
{
	struct zb_segment *seg = make(16);
	struct zb_unblock u = { 0 };

	zb_reclaim_unblock(seg, &u, 0, 10);
	seg->ctl->claim_seq = 1ull << 40; /* a peer's lie */
	cr_expect_eq(zb_reclaim_unblock(seg, &u, 1, 10), 0);
	cr_expect_eq(zb_reclaim_unblock(seg, &u, 100, 10), 16,
		     "one ring at most");
	for (uint32_t i = 0; i < 16; i++)
		cr_expect_lt(zb_load64(&seg->ring[i].commit) &
				     ~ZB_COMMIT_PADDED,
			     (1ull << 40) + 1, "nothing past the claim");
	seg->ctl->claim_seq = 3; /* and back */
	cr_expect_eq(zb_reclaim_unblock(seg, &u, 200, 10), 0);
	cr_expect_eq(zb_reclaim_unblock(seg, &u, 300, 10), 0);
}

/*
 * Without reliable subscribers producers never wait, so a loan held for a
 * full lap is overtaken. Its late publish used to store an older commit
 * over the newer message's and stall every subscriber; now it loses.
 */
Test(padding, a_loan_overtaken_by_a_lap_cannot_roll_the_commit_back)
{
	struct zb_segment *seg = make(4);
	struct zbus_sub *s = sub_new(ZBUS_LOSSY);
	struct zbus_pub *slow = pub_new(0), *fast = pub_new(0);
	struct zbus_loan l;
	struct zbus_msg m;

	loan(slow, &l, 1); /* seq 0 */
	for (int i = 0; i < 4; i++) /* seqs 1..4: seq 4 reuses slot 0 */
		cr_assert_eq(zbus_pub_send(fast, "\x05", 1), 0);
	cr_expect_eq(zbus_pub_publish(slow, &l, 64), -ECANCELED);
	cr_expect_eq(zb_load64(&seg->ring[0].commit), 5);
	cr_assert_eq(zbus_sub_recv_batch(s, &m, 1, 0), 1);
	cr_expect_geq(m.seq, 1);
	zbus_sub_release(s);
	zbus_sub_free(s);
	zbus_pub_free(slow);
	zbus_pub_free(fast);
}

Test(padding, publisher_slots_run_out_and_come_back)
{
	struct zb_segment *seg = make(16);
	struct zbus_pub *p[4], *extra = NULL;
	struct zbus_pub_opts o = { 0 };

	for (int i = 0; i < 4; i++)
		p[i] = pub_new(0);
	cr_expect_eq(zbus_pub_new(ch, &o, &extra), -ENOSPC);
	cr_expect_eq(zb_load32(&seg->ctl->publishers), 4, "not counted");
	zbus_pub_free(p[2]);
	cr_assert_eq(zbus_pub_new(ch, &o, &extra), 0);
	zbus_pub_free(extra);
	for (int i = 0; i < 4; i++)
		if (i != 2)
			zbus_pub_free(p[i]);
	cr_expect_eq(zb_load32(&seg->ctl->publishers), 0);
}
