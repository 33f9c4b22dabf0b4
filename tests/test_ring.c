/* SPDX-License-Identifier: MIT */
/*
 * test_ring.c - semantics of the descriptor ring in one process: ordering,
 * wrap-around, sizes, full and empty, loans, lossy accounting, and
 * descriptors corrupted in shared memory.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "channel.h"
#include "layout.h"
#include "pub.h"
#include "sub.h"
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

TestSuite(ring, .init = setup, .fini = teardown, .timeout = 60);

static struct zbus_channel *make(uint32_t max_msg, uint32_t cap,
				 uint64_t arena)
{
	struct zbus_channel_opts o = { .max_msg_size = max_msg,
				       .ring_capacity = cap,
				       .arena_bytes = arena };
	int r = zbus_channel_create("test", &o, &ch);

	cr_assert_eq(r, 0, "create: %s", zbus_strerror(r));
	return ch;
}

static struct zbus_pub *pub_nb(void)
{
	struct zbus_pub_opts o = { .timeout_ms = 0 };
	struct zbus_pub *p;

	cr_assert_eq(zbus_pub_new(ch, &o, &p), 0);
	return p;
}

static struct zbus_sub *sub_of(uint32_t policy)
{
	struct zbus_sub_opts o = { .policy = policy };
	struct zbus_sub *s;

	cr_assert_eq(zbus_sub_new(ch, &o, &s), 0);
	return s;
}

static void send_filled(struct zbus_pub *p, size_t len, uint64_t idx)
{
	struct zbus_loan l;
	int r = zbus_pub_loan(p, len, &l);

	cr_assert_eq(r, 0, "loan %zu: %s", len, zbus_strerror(r));
	tu_fill(l.data, len, zbus_pub_id(p), idx);
	cr_assert_eq(zbus_pub_publish(p, &l, len), 0);
}

static void recv_checked(struct zbus_sub *s, size_t len, uint64_t idx)
{
	struct zbus_msg m;
	uint32_t prod;
	uint64_t got;
	int r = zbus_sub_recv_batch(s, &m, 1, 0);

	cr_assert_eq(r, 1, "recv: %s", zbus_strerror(r));
	cr_assert_eq(m.size, len);
	if (len >= 20) {
		cr_assert_eq(tu_check(m.data, m.size, &prod, &got), 0,
			     "torn payload at %lu", (unsigned long)idx);
		cr_assert_eq(got, idx);
	}
	cr_assert_eq(zbus_sub_release(s), 0);
}

Test(ring, empty_returns_eagain)
{
	struct zbus_msg m;
	struct zbus_sub *s;

	make(0, 0, 0);
	s = sub_of(ZBUS_RELIABLE);
	cr_assert_eq(zbus_sub_recv_batch(s, &m, 1, 0), -EAGAIN);
	zbus_sub_free(s);
}

Test(ring, wraps_around_many_times_with_varied_sizes)
{
	struct zbus_pub *p;
	struct zbus_sub *s;

	make(300, 8, 0); /* tiny ring and arena: ~10^4 laps */
	p = pub_nb();
	s = sub_of(ZBUS_RELIABLE);
	for (uint64_t i = 0; i < 100000; i++) {
		size_t len = 20 + (i * 37) % 281;

		send_filled(p, len, i);
		if (i % 3 == 2) /* keep 0..2 messages in flight */
			for (uint64_t j = i - 2; j <= i; j++)
				recv_checked(s, 20 + (j * 37) % 281, j);
	}
	zbus_sub_free(s);
	zbus_pub_free(p);
}

Test(ring, every_size_from_zero_to_max)
{
	const uint32_t max = 70000;
	size_t sizes[] = { 0, 1, 19, 20, 63, 64, 65, 4095, 4096, 4097,
			   65536, max - 1, max };
	struct zbus_pub *p;
	struct zbus_sub *s;

	make(max, 16, 0);
	p = pub_nb();
	s = sub_of(ZBUS_RELIABLE);
	for (int round = 0; round < 20; round++) /* and across laps */
		for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
			send_filled(p, sizes[i], i);
			recv_checked(s, sizes[i], i);
		}
	zbus_sub_free(s);
	zbus_pub_free(p);
}

Test(ring, loan_above_max_is_emsgsize)
{
	struct zbus_loan l;
	struct zbus_pub *p;

	make(1000, 0, 0);
	p = pub_nb();
	cr_assert_eq(zbus_pub_loan(p, 1001, &l), -EMSGSIZE);
	cr_assert_eq(zbus_pub_send(p, "x", 1001), -EMSGSIZE);
	cr_assert_eq(zbus_pub_send(p, NULL, 10), -EINVAL);
	zbus_pub_free(p);
}

Test(ring, full_ring_gives_eagain_until_released)
{
	struct zbus_pub *p;
	struct zbus_sub *s;

	make(64, 16, 0);
	p = pub_nb();
	s = sub_of(ZBUS_RELIABLE);
	for (int i = 0; i < 16; i++)
		cr_assert_eq(zbus_pub_send(p, "abc", 3), 0);
	cr_assert_eq(zbus_pub_send(p, "abc", 3), -EAGAIN);
	recv_checked(s, 3, 0);
	cr_assert_eq(zbus_pub_send(p, "abc", 3), 0);
	cr_assert_eq(zbus_pub_send(p, "abc", 3), -EAGAIN);
	zbus_sub_free(s);
	zbus_pub_free(p);
}

Test(ring, full_arena_gives_eagain_before_the_ring_is_full)
{
	struct zbus_channel_info info;
	struct zbus_pub *p;
	struct zbus_sub *s;
	int sent = 0;

	make(4096, 1024, 16384);
	cr_assert_eq(zbus_channel_info(ch, &info), 0);
	cr_assert_eq(info.arena_bytes, 16384);
	p = pub_nb();
	s = sub_of(ZBUS_RELIABLE);
	while (sent < 100 && zbus_pub_send(p, NULL, 0) == 0 &&
	       zbus_pub_loan(p, 4096, &(struct zbus_loan){ 0 }) == 0)
		sent++;
	/* 16 KiB holds 4 messages of 4 KiB (the zero-size ones take no
	 * arena): the ring (1024) is far from full. */
	cr_assert_eq(sent, 4);
	zbus_sub_free(s);
	zbus_pub_free(p); /* abandons the loans */
}

Test(ring, slowest_reliable_subscriber_holds_producers)
{
	struct zbus_pub *p;
	struct zbus_sub *fast, *slow;
	struct zbus_msg m[8];

	make(64, 8, 0);
	p = pub_nb();
	fast = sub_of(ZBUS_RELIABLE);
	slow = sub_of(ZBUS_RELIABLE);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(zbus_pub_send(p, "x", 1), 0);
	cr_assert_eq(zbus_sub_recv_batch(fast, m, 8, 0), 8);
	zbus_sub_release(fast);
	cr_assert_eq(zbus_pub_send(p, "x", 1), -EAGAIN);
	/* Unsubscribing the slow one frees the producer at once. */
	zbus_sub_free(slow);
	cr_assert_eq(zbus_pub_send(p, "x", 1), 0);
	zbus_sub_free(fast);
	zbus_pub_free(p);
}

Test(ring, lossy_never_blocks_and_counts_exactly_what_it_missed)
{
	struct zbus_sub_stats st;
	struct zbus_pub *p;
	struct zbus_sub *s;
	struct zbus_msg m[16];
	uint64_t last = 0, got = 0, missed = 0;
	int first = 1, r;

	make(64, 16, 0);
	p = pub_nb();
	s = sub_of(ZBUS_LOSSY);
	for (uint64_t i = 0; i < 1000; i++)
		send_filled(p, 40, i);
	while ((r = zbus_sub_recv_batch(s, m, 16, 0)) > 0) {
		for (int i = 0; i < r; i++) {
			uint32_t prod;
			uint64_t idx;

			cr_assert_eq(tu_check(m[i].data, m[i].size, &prod,
					      &idx), 0);
			cr_assert(first || idx > last, "duplicate or reorder");
			cr_assert_eq(m[i].seq, idx);
			missed += m[i].missed;
			last = idx;
			first = 0;
			got++;
		}
		cr_assert_eq(zbus_sub_release(s), 0);
	}
	cr_assert_eq(r, -EAGAIN);
	cr_assert_eq(zbus_sub_stats(s, &st), 0);
	cr_assert_eq(st.received, got);
	cr_assert_eq(st.missed, missed);
	cr_assert_eq(got + missed, 1000, "got %lu + missed %lu",
		     (unsigned long)got, (unsigned long)missed);
	cr_assert(missed > 0 && last == 999);
	zbus_sub_free(s);
	zbus_pub_free(p);
}

/* The counts their owners keep in their slots, for the broker to report:
 * messages published (abandoned loans are none), messages lost. */
Test(ring, slots_count_what_was_published_and_what_was_lost)
{
	struct zbus_sub_stats st;
	struct zbus_pub *p, *q;
	struct zbus_sub *s;
	struct zbus_msg m[16];
	struct zbus_loan l;
	uint32_t ps, qs, ss, word;
	uint64_t table;

	make(64, 16, 0);
	p = pub_nb();
	q = pub_nb();
	s = sub_of(ZBUS_LOSSY);
	zb_pub_identity(p, &ps, &word, &table);
	zb_pub_identity(q, &qs, &word, &table);
	zb_sub_identity(s, &ss, &word);
	for (uint64_t i = 0; i < 100; i++)
		send_filled(i % 4 ? p : q, 40, i);
	cr_assert_eq(zbus_pub_loan(p, 8, &l), 0);
	cr_assert_eq(zbus_pub_abandon(p, &l), 0);
	cr_expect_eq(zb_load64(&ch->seg.pubs[ps].published), 75);
	cr_expect_eq(zb_load64(&ch->seg.pubs[qs].published), 25);
	while (zbus_sub_recv_batch(s, m, 16, 0) > 0)
		cr_assert_eq(zbus_sub_release(s), 0);
	cr_assert_eq(zbus_sub_stats(s, &st), 0);
	cr_assert_gt(st.missed, 0, "the ring of 16 did not overrun us");
	cr_expect_eq(zb_load64(&ch->seg.slots[ss].missed), st.missed);

	/* A new owner of a slot starts from zero. */
	zbus_pub_free(p);
	zbus_sub_free(s);
	p = pub_nb();
	s = sub_of(ZBUS_LOSSY);
	zb_pub_identity(p, &ps, &word, &table);
	zb_sub_identity(s, &ss, &word);
	cr_expect_eq(zb_load64(&ch->seg.pubs[ps].published), 0);
	cr_expect_eq(zb_load64(&ch->seg.slots[ss].missed), 0);
	zbus_sub_free(s);
	zbus_pub_free(q);
	zbus_pub_free(p);
}

Test(ring, lossy_payload_overwritten_while_held_is_stale)
{
	struct zbus_pub *p;
	struct zbus_sub *s;
	struct zbus_msg m;

	make(1024, 64, 4096); /* arena: 4 messages of 1 KiB */
	p = pub_nb();
	s = sub_of(ZBUS_LOSSY);
	send_filled(p, 1024, 0);
	cr_assert_eq(zbus_sub_recv_batch(s, &m, 1, 0), 1);
	cr_assert_eq(zbus_sub_validate(s), 0);
	for (uint64_t i = 1; i < 6; i++)
		send_filled(p, 1024, i);
	cr_assert_eq(zbus_sub_validate(s), -ESTALE);
	cr_assert_eq(zbus_sub_release(s), -ESTALE);
	zbus_sub_free(s);
	zbus_pub_free(p);
}

Test(ring, abandoned_loans_are_skipped_and_counted)
{
	struct zbus_sub_stats st;
	struct zbus_loan a, b, c;
	struct zbus_pub *p;
	struct zbus_sub *s;

	make(256, 16, 0);
	p = pub_nb();
	s = sub_of(ZBUS_RELIABLE);
	cr_assert_eq(zbus_pub_loan(p, 100, &a), 0);
	cr_assert_eq(zbus_pub_loan(p, 100, &b), 0);
	cr_assert_eq(zbus_pub_loan(p, 100, &c), 0);
	tu_fill(b.data, 100, zbus_pub_id(p), 1);
	/* Publishing out of order: consumers still see loan order. */
	cr_assert_eq(zbus_pub_publish(p, &b, 100), 0);
	cr_assert_eq(zbus_sub_recv_batch(s, &(struct zbus_msg){ 0 }, 1, 0),
		     -EAGAIN);
	cr_assert_eq(zbus_pub_abandon(p, &a), 0);
	recv_checked(s, 100, 1);
	cr_assert_eq(zbus_pub_abandon(p, &c), 0);
	cr_assert_eq(zbus_sub_recv_batch(s, &(struct zbus_msg){ 0 }, 1, 0),
		     -EAGAIN);
	cr_assert_eq(zbus_sub_stats(s, &st), 0);
	cr_assert_eq(st.abandoned, 2);
	cr_assert_eq(st.received, 1);
	/* A spent loan cannot be published or abandoned again. */
	cr_assert_eq(zbus_pub_publish(p, &b, 100), -EINVAL);
	cr_assert_eq(zbus_pub_abandon(p, &a), -EINVAL);
	zbus_sub_free(s);
	zbus_pub_free(p);
}

Test(ring, freeing_a_publisher_abandons_its_loans)
{
	struct zbus_pub *p, *q;
	struct zbus_sub *s;
	struct zbus_loan l;

	make(256, 16, 0);
	p = pub_nb();
	q = pub_nb();
	s = sub_of(ZBUS_RELIABLE);
	cr_assert_eq(zbus_pub_loan(p, 50, &l), 0);
	send_filled(q, 50, 7); /* stuck behind p's loan */
	cr_assert_eq(zbus_sub_recv_batch(s, &(struct zbus_msg){ 0 }, 1, 0),
		     -EAGAIN);
	zbus_pub_free(p);
	recv_checked(s, 50, 7);
	zbus_sub_free(s);
	zbus_pub_free(q);
}

Test(ring, publish_shorter_than_loaned)
{
	struct zbus_pub *p;
	struct zbus_sub *s;
	struct zbus_loan l;

	make(4096, 16, 0);
	p = pub_nb();
	s = sub_of(ZBUS_RELIABLE);
	cr_assert_eq(zbus_pub_loan(p, 4096, &l), 0);
	tu_fill(l.data, 33, zbus_pub_id(p), 5);
	cr_assert_eq(zbus_pub_publish(p, &l, 4097), -EINVAL);
	cr_assert_eq(zbus_pub_publish(p, &l, 33), 0);
	recv_checked(s, 33, 5);
	zbus_sub_free(s);
	zbus_pub_free(p);
}

Test(ring, sendv_gathers_and_recv_copies)
{
	struct iovec iov[3] = { { "hello", 5 }, { ", ", 2 }, { "world", 5 } };
	struct zbus_pub *p;
	struct zbus_sub *s;
	struct zbus_msg info;
	char buf[32] = { 0 }, small[4];

	make(64, 16, 0);
	p = pub_nb();
	s = sub_of(ZBUS_RELIABLE);
	cr_assert_eq(zbus_pub_sendv(p, iov, 3), 0);
	cr_assert_eq(zbus_sub_recv(s, buf, sizeof(buf), &info, 0), 12);
	cr_assert_str_eq(buf, "hello, world");
	cr_assert_eq(info.producer, zbus_pub_id(p));
	cr_assert_eq(zbus_pub_send(p, "too long", 8), 0);
	cr_assert_eq(zbus_sub_recv(s, small, sizeof(small), &info, 0),
		     -EMSGSIZE);
	cr_assert_eq(info.size, 8);
	cr_assert_eq(zbus_sub_recv(s, small, sizeof(small), NULL, 0), -EAGAIN);
	zbus_sub_free(s);
	zbus_pub_free(p);
}

Test(ring, batch_receive_returns_up_to_n_in_order)
{
	struct zbus_pub *p;
	struct zbus_sub *s;
	struct zbus_msg m[10];

	make(64, 64, 0);
	p = pub_nb();
	s = sub_of(ZBUS_RELIABLE);
	for (uint64_t i = 0; i < 25; i++)
		send_filled(p, 24, i);
	for (int round = 0, base = 0; round < 3; round++) {
		int r = zbus_sub_recv_batch(s, m, 10, 0);

		cr_assert_eq(r, round < 2 ? 10 : 5);
		for (int i = 0; i < r; i++) {
			uint32_t prod;
			uint64_t idx;

			cr_assert_eq(tu_check(m[i].data, 24, &prod, &idx), 0);
			cr_assert_eq(idx, (uint64_t)(base + i));
		}
		base += r;
		zbus_sub_release(s);
	}
	zbus_sub_free(s);
	zbus_pub_free(p);
}

Test(ring, subscriber_slots_run_out_with_enospc)
{
	struct zbus_channel_opts o = { .max_subscribers = 2 };
	struct zbus_sub *a, *b, *c;

	cr_assert_eq(zbus_channel_create("t", &o, &ch), 0);
	cr_assert_eq(zbus_sub_new(ch, NULL, &a), 0);
	cr_assert_eq(zbus_sub_new(ch, NULL, &b), 0);
	cr_assert_eq(zbus_sub_new(ch, NULL, &c), -ENOSPC);
	zbus_sub_free(a);
	cr_assert_eq(zbus_sub_new(ch, NULL, &c), 0);
	zbus_sub_free(b);
	zbus_sub_free(c);
}

Test(ring, options_with_reserved_fields_are_refused)
{
	struct zbus_pub_opts po = { .reserved[3] = 1 };
	struct zbus_sub_opts so = { .reserved[0] = 1 };
	struct zbus_sub_opts bad_policy = { .policy = 7 };
	struct zbus_pub *p;
	struct zbus_sub *s;

	make(0, 0, 0);
	cr_assert_eq(zbus_pub_new(ch, &po, &p), -EINVAL);
	cr_assert_eq(zbus_sub_new(ch, &so, &s), -EINVAL);
	cr_assert_eq(zbus_sub_new(ch, &bad_policy, &s), -EINVAL);
}

/* Corrupt message 1 of 3 with @fn, check the subscriber reports exactly
 * that message as bad and carries on with message 2. */
static void corrupt_middle(uint32_t policy, void (*fn)(struct zb_desc *))
{
	struct zbus_sub_stats st;
	struct zbus_pub *p;
	struct zbus_sub *s;
	struct zbus_msg m[3];

	make(256, 16, 0);
	p = pub_nb();
	s = sub_of(policy);
	for (uint64_t i = 0; i < 3; i++)
		send_filled(p, 100, i);
	fn(&ch->seg.ring[1]);
	cr_assert_eq(zbus_sub_recv_batch(s, m, 3, 0), 1, "message 0 first");
	cr_assert_eq(zbus_sub_recv_batch(s, m, 3, 0), -EBADMSG);
	cr_assert_eq(zbus_sub_recv_batch(s, m, 3, 0), 1);
	cr_assert_eq(m[0].seq, 2);
	zbus_sub_stats(s, &st);
	cr_assert_eq(st.bad, 1);
	cr_assert_eq(zbus_sub_release(s), 0);
	zbus_sub_free(s);
	zbus_pub_free(p);
}

static void huge_length(struct zb_desc *d)
{
	d->length = UINT32_MAX;
}

static void length_past_arena(struct zb_desc *d)
{
	/* Within max_msg_size, but running off the arena's end. */
	d->pos = (d->pos & ~4095ull) + 4096 - 10;
}

static void unknown_flag(struct zb_desc *d)
{
	d->flags = 0x80;
}

static void position_behind(struct zb_desc *d)
{
	d->pos -= 1 << 20; /* before the previous message */
}

static void position_overflowing(struct zb_desc *d)
{
	d->pos = UINT64_MAX - 5;
}

Test(ring, corrupt_length_is_one_bad_message)
{
	corrupt_middle(ZBUS_RELIABLE, huge_length);
}
Test(ring, length_running_off_the_arena_is_one_bad_message)
{
	corrupt_middle(ZBUS_RELIABLE, length_past_arena);
}
Test(ring, unknown_flag_is_one_bad_message)
{
	corrupt_middle(ZBUS_LOSSY, unknown_flag);
}
Test(ring, position_behind_the_stream_is_one_bad_message)
{
	corrupt_middle(ZBUS_RELIABLE, position_behind);
}
Test(ring, overflowing_position_is_one_bad_message)
{
	corrupt_middle(ZBUS_RELIABLE, position_overflowing);
}

Test(ring, hostile_subscriber_positions_cannot_stall_producers)
{
	struct zbus_pub *p;
	struct zbus_sub *s;

	make(64, 8, 0);
	p = pub_nb();
	s = sub_of(ZBUS_RELIABLE);
	/* A peer claims to be ahead of the stream, then hopelessly behind:
	 * either way the producer ignores it rather than stall forever. */
	ch->seg.slots[0].cons_seq = 1000;
	for (int i = 0; i < 20; i++)
		cr_assert_eq(zbus_pub_send(p, "x", 1), 0);
	ch->seg.slots[0].cons_seq = (uint64_t)-500;
	for (int i = 0; i < 20; i++)
		cr_assert_eq(zbus_pub_send(p, "x", 1), 0);
	zbus_sub_free(s);
	zbus_pub_free(p);
}

Test(ring, hostile_sleeper_bits_beyond_max_subs_are_ignored)
{
	struct zbus_channel_opts o = { .max_subscribers = 3 };
	struct zbus_pub *p;

	cr_assert_eq(zbus_channel_create("t", &o, &ch), 0);
	ch->seg.sctl->sleepers[0] = ~0ull;
	ch->seg.sctl->sleepers[3] = ~0ull;
	p = pub_nb();
	for (int i = 0; i < 10; i++)
		cr_assert_eq(zbus_pub_send(p, "x", 1), 0);
	zbus_pub_free(p);
}

Test(ring, subscriber_ahead_in_seq_still_bounds_the_arena)
{
	static char kib[1024];
	struct zbus_pub *p;
	struct zbus_sub *s;
	int sent = 0;

	make(1024, 64, 4096); /* arena: 4 messages of 1 KiB */
	p = pub_nb();
	s = sub_of(ZBUS_RELIABLE);
	/*
	 * A producer's claim snapshot is two loads: its seq may be older
	 * than its pos, so a subscriber can look ahead in seq while it still
	 * holds arena bytes. Its arena position must bind all the same
	 * (regression: the whole subscriber used to be dropped).
	 */
	ch->seg.slots[0].cons_seq = ch->seg.ctl->claim_seq + 3;
	while (sent < 10 && zbus_pub_send(p, kib, 1024) == 0)
		sent++;
	cr_assert_eq(sent, 4, "the held arena was overwritten (%d sent)",
		     sent);
	zbus_sub_free(s);
	zbus_pub_free(p);
}

Test(ring, exclusive_publisher_excludes_the_others)
{
	struct zbus_pub_opts ex = { .timeout_ms = 0,
				    .flags = ZBUS_PUB_EXCLUSIVE };
	struct zbus_pub_opts bad = { .flags = 0x80 };
	struct zbus_pub *p, *q;
	struct zbus_sub *s;

	make(256, 16, 0);
	s = sub_of(ZBUS_RELIABLE);
	cr_assert_eq(zbus_pub_new(ch, &bad, &p), -EINVAL);
	cr_assert_eq(zbus_pub_new(ch, &ex, &p), 0);
	cr_assert_eq(zbus_pub_new(ch, &ex, &q), -EBUSY);
	cr_assert_eq(zbus_pub_new(ch, NULL, &q), -EBUSY);
	for (uint64_t i = 0; i < 100; i++) { /* and wraps the ring */
		send_filled(p, 100, i);
		recv_checked(s, 100, i);
	}
	zbus_pub_free(p);
	/* Gone: shared publishers may come, and then no exclusive one. */
	cr_assert_eq(zbus_pub_new(ch, NULL, &q), 0);
	cr_assert_eq(zbus_pub_new(ch, &ex, &p), -EBUSY);
	send_filled(q, 100, 100); /* continues the stream where it was */
	recv_checked(s, 100, 100);
	zbus_pub_free(q);
	cr_assert_eq(zbus_pub_new(ch, &ex, &p), 0);
	zbus_pub_free(p);
	zbus_sub_free(s);
}

Test(ring, exclusive_publisher_ignores_a_scribbled_claim)
{
	struct zbus_pub_opts ex = { .timeout_ms = 0,
				    .flags = ZBUS_PUB_EXCLUSIVE };
	struct zbus_pub *p;
	struct zbus_sub *s;

	make(256, 16, 0);
	s = sub_of(ZBUS_RELIABLE);
	cr_assert_eq(zbus_pub_new(ch, &ex, &p), 0);
	send_filled(p, 100, 0);
	/* A peer rewrites the shared claim: the exclusive publisher keeps
	 * its own, so the stream goes on where it was. */
	ch->seg.ctl->claim_seq = 12345;
	ch->seg.ctl->claim_pos = 999;
	recv_checked(s, 100, 0);
	send_filled(p, 100, 1);
	recv_checked(s, 100, 1);
	zbus_pub_free(p);
	zbus_sub_free(s);
}

static volatile int scribbling;

/* A hostile peer: garbage into both halves of the claim, without end. */
static void *scribble_claim(void *arg)
{
	struct zb_ctl *ctl = arg;
	uint64_t x = 0x9e3779b97f4a7c15ull;

	while (zb_load32((uint32_t *)&scribbling)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		zb_store64(&ctl->claim_seq, x);
		zb_store64(&ctl->claim_pos, x * 31);
	}
	return NULL;
}

Test(ring, a_peer_scribbling_on_the_claim_cannot_crash_or_hang_producers,
     .timeout = 30)
{
	static char payload[64];
	struct zbus_pub *p;
	pthread_t th;
	int ok = 0, busy = 0;

	make(64, 1024, 0);
	p = pub_nb();
	zb_store32((uint32_t *)&scribbling, 1);
	cr_assert_eq(pthread_create(&th, NULL, scribble_claim, ch->seg.ctl),
		     0);
	uint8_t before[sizeof(struct zb_shm_hdr) + 64 * 128];
	size_t slots_len = ch->seg.g.max_subs * sizeof(struct zb_sub_slot);

	/*
	 * Every call ends (claimed between two rewrites, or -EBUSY after a
	 * bounded number of failed CASes, or -ECANCELED when the garbage
	 * claim's descriptor already holds a later commit) and, whatever
	 * garbage it claimed from, writes only descriptors and arena bytes:
	 * the header and the subscriber slots stay as they were, and nothing
	 * outside the mapping is touched (that would fault).
	 */
	cr_assert_leq(slots_len, sizeof(before) - sizeof(struct zb_shm_hdr));
	memcpy(before, ch->seg.base, sizeof(struct zb_shm_hdr));
	memcpy(before + sizeof(struct zb_shm_hdr), ch->seg.slots, slots_len);
	for (int i = 0; i < 200; i++) {
		int r = zbus_pub_send(p, payload, sizeof(payload));

		cr_assert(r == 0 || r == -EBUSY || r == -EAGAIN ||
				  r == -ECANCELED,
			  "send: %s", zbus_strerror(r));
		ok += r == 0;
		busy += r == -EBUSY;
	}
	zb_store32((uint32_t *)&scribbling, 0);
	pthread_join(th, NULL);
	cr_assert_eq(memcmp(before, ch->seg.base, sizeof(struct zb_shm_hdr)),
		     0, "header written");
	cr_assert_eq(memcmp(before + sizeof(struct zb_shm_hdr),
			    ch->seg.slots, slots_len),
		     0, "subscriber slots written");
	cr_log_info("200 sends: %d claimed, %d gave up", ok, busy);
	zbus_pub_free(p);
}
