/* SPDX-License-Identifier: MIT */
/*
 * tp_zbus.c - zbus-bench's zbus transports: one zbus channel per link.
 *   zbus       loan, write in place, publish; receive a batch in place,
 *              release; the publisher is exclusive (ZBUS_PUB_EXCLUSIVE)
 *   zbus-mp    the same through the multi-producer claim (16-byte CAS)
 *   zbus-copy  zbus_pub_send() and zbus_sub_recv(): one copy on each side
 *   zbus-block zbus with both sides waiting in the library (a short spin,
 *              then a futex), as a program that must not burn a core would
 * Each can serve one link to several processes (recv_any): fan-out and
 * fan-in share one channel.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <zbus/zbus.h>

#include "transport.h"

static int zlink_create(struct link *l)
{
	struct zbus_channel_opts opts;
	int ret;

	memset(&opts, 0, sizeof(opts));
	opts.max_msg_size = (uint32_t)l->size;
	opts.ring_capacity = l->geom.ring;
	opts.arena_bytes = l->geom.arena;
	l->z.owner = getpid();
	ret = zbus_channel_create("zbus-bench", &opts, &l->z.ch);
	if (ret < 0)
		return bench_zfail(ret, "zbus_channel_create(max_msg_size %zu, "
				   "ring %u, arena %" PRIu64 ")", l->size,
				   l->geom.ring, l->geom.arena);
	return 0;
}

static int zlink_open(struct link *l, enum role role)
{
	struct zlink *z = &l->z;
	struct zbus_channel *ch;
	struct zbus_pub_opts po;
	struct zbus_sub_opts so;
	int ret;

	if (getpid() != z->owner) {
		/*
		 * The child maps the channel from its memfd as any other
		 * process would, instead of using the inherited mapping.
		 */
		ret = zbus_channel_attach_dup(zbus_channel_fd(z->ch),
					      zbus_channel_state_fd(z->ch), &ch);
		if (ret < 0)
			return bench_zfail(ret, "zbus_channel_attach_dup");
		zbus_channel_free(z->ch);
		z->ch = ch;
	}

	if (role == ROLE_TX) {
		/* Busy-poll like shm-ring, or (zbus-block) let the library
		 * wait: spin a little, then sleep on its futex. */
		memset(&po, 0, sizeof(po));
		po.timeout_ms = l->tp->blocking ? 10000 : 0;
		po.flags = l->tp->pub_flags;
		/* Several producers on one channel (fan-in) share the ring. */
		if (l->shared_tx)
			po.flags &= ~ZBUS_PUB_EXCLUSIVE;
		ret = zbus_pub_new(z->ch, &po, &z->pub);
		if (ret < 0)
			return bench_zfail(ret, "zbus_pub_new");
	} else {
		memset(&so, 0, sizeof(so));
		so.policy = ZBUS_RELIABLE;
		ret = zbus_sub_new(z->ch, &so, &z->sub);
		if (ret < 0)
			return bench_zfail(ret, "zbus_sub_new");
	}
	return 0;
}

static void zlink_close(struct link *l)
{
	struct zlink *z = &l->z;

	z->sub = zbus_sub_free(z->sub);
	z->pub = zbus_pub_free(z->pub);
	z->ch = zbus_channel_free(z->ch);
}

static int zc_send(struct link *l, uint64_t seq)
{
	return bench_loan_send(l->z.pub, l->size, seq);
}

/* A batch of messages to hand out, when the last one is all read: busy
 * polled, or (zbus-block) waited for in the library. */
static int zc_refill(struct link *l)
{
	struct zlink *z = &l->z;
	int ret;

	if (z->idx < z->cnt)
		return 0;
	if (l->tp->blocking) {
		/* The library's adaptive wait: 50 us of spinning, then its
		 * futex; a second at a time so that a stop is heard. */
		do
			ret = zbus_sub_recv_batch(z->sub, z->msgs, RECV_BATCH,
						  1000);
		while (ret == -ETIMEDOUT && !bench_stop_requested());
	} else {
		BENCH_SPIN(ret, zbus_sub_recv_batch(z->sub, z->msgs,
						    RECV_BATCH, 0),
			   "zbus_sub_recv_batch");
	}
	if (ret < 0)
		return bench_zfail(ret, "zbus_sub_recv_batch");
	if (ret == 0 || ret > RECV_BATCH)
		return bench_fail(-EPROTO, "zbus_sub_recv_batch returned %d "
				  "for at most %d", ret, RECV_BATCH);
	z->cnt = (unsigned int)ret;
	z->idx = 0;
	return 0;
}

/*
 * Take the next message and read it in full: message *@seq, or with
 * @any the next of any sender, whose stamp goes to *@seq (fan-in).
 */
static int zc_take(struct link *l, uint64_t *seq, bool any)
{
	struct zlink *z = &l->z;
	const struct zbus_msg *m;
	int ret;

	ret = zc_refill(l);
	if (ret < 0)
		return ret;
	m = &z->msgs[z->idx++];
	if (m->size != l->size || (any && m->size < 16))
		return bench_fail(-EBADMSG, "zbus message of %zu bytes, "
				  "expected %zu", m->size, l->size);
	if (any)
		memcpy(seq, m->data, sizeof(*seq));
	ret = bench_payload_check(m->data, m->size, *seq);
	if (ret < 0)
		return ret;

	/* Give the batch back once read: the producer may be waiting on it. */
	if (z->idx == z->cnt) {
		ret = zbus_sub_release(z->sub);
		if (ret < 0)
			return bench_zfail(ret, "zbus_sub_release");
	}
	return 0;
}

static int zc_recv(struct link *l, uint64_t seq)
{
	return zc_take(l, &seq, false);
}

/* The next message, whoever sent it: its stamp, checked (fan-in). */
static int zc_recv_any(struct link *l, uint64_t *stamp)
{
	return zc_take(l, stamp, true);
}

static int zcopy_send(struct link *l, uint64_t seq)
{
	int ret;

	bench_payload_fill(l->buf, l->size, seq);
	BENCH_SPIN(ret, zbus_pub_send(l->z.pub, l->buf, l->size),
		   "zbus_pub_send");
	if (ret < 0)
		return bench_zfail(ret, "zbus_pub_send(%zu)", l->size);
	return 0;
}

/* As zc_take(), by copy into the link's buffer. */
static int zcopy_take(struct link *l, uint64_t *seq, bool any)
{
	int ret;

	BENCH_SPIN(ret, zbus_sub_recv(l->z.sub, l->buf, l->size, NULL, 0),
		   "zbus_sub_recv");
	if (ret < 0)
		return bench_zfail(ret, "zbus_sub_recv");
	if ((size_t)ret != l->size || (any && l->size < 16))
		return bench_fail(-EBADMSG, "zbus_sub_recv returned %d bytes, "
				  "expected %zu", ret, l->size);
	if (any)
		memcpy(seq, l->buf, sizeof(*seq));
	return bench_payload_check(l->buf, l->size, *seq);
}

static int zcopy_recv(struct link *l, uint64_t seq)
{
	return zcopy_take(l, &seq, false);
}

/* As zc_recv_any(), by copy. */
static int zcopy_recv_any(struct link *l, uint64_t *stamp)
{
	return zcopy_take(l, stamp, true);
}

/* One producer per channel, as here: it says so and claims without atomic
 * read-modify-writes. */
const struct transport tp_zbus = {
	.name = "zbus", .copies = false,
	.pub_flags = ZBUS_PUB_EXCLUSIVE,
	.create = zlink_create, .open = zlink_open,
	.send = zc_send, .recv = zc_recv, .close = zlink_close,
	.recv_any = zc_recv_any,
};

/* The same, through the multi-producer claim (16-byte CAS). */
const struct transport tp_zbus_mp = {
	.name = "zbus-mp", .copies = false,
	.create = zlink_create, .open = zlink_open,
	.send = zc_send, .recv = zc_recv, .close = zlink_close,
	.recv_any = zc_recv_any,
};

const struct transport tp_zbus_copy = {
	.name = "zbus-copy", .copies = true,
	.pub_flags = ZBUS_PUB_EXCLUSIVE,
	.create = zlink_create, .open = zlink_open,
	.send = zcopy_send, .recv = zcopy_recv, .close = zlink_close,
	.recv_any = zcopy_recv_any,
};

/* zbus as a program that must not burn a core when idle would use it: both
 * sides wait in the library. */
const struct transport tp_zbus_block = {
	.name = "zbus-block", .copies = false,
	.pub_flags = ZBUS_PUB_EXCLUSIVE, .blocking = true,
	.create = zlink_create, .open = zlink_open,
	.send = zc_send, .recv = zc_recv, .close = zlink_close,
	.recv_any = zc_recv_any,
};
