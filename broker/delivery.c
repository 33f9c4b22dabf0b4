/* SPDX-License-Identifier: MIT */
/*
 * delivery.c - moving messages from the broker's own subscription into a
 * subscriber's delivery ring (layout.h, struct zb_rx_rec).
 *
 * The ring is the subscriber's private memory and the broker its only
 * writer: a record's payload and header go first, its pos1 word last in a
 * write of its own, so that the reader never takes a half-written record.
 * Room is what the subscriber gave back over the socket; a delivery holds
 * the message until there is room, which for a reliable one holds the
 * channel's producers back and for a lossy one lets them overwrite it
 * (the loss is counted, and told with the next record). A message
 * the subscriber cannot have (larger than its ring, a pull that failed, a
 * descriptor that failed validation) becomes a record with an error status:
 * an error for that message alone, and the stream goes on.
 */
#include "delivery.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "layout.h"
#include "util.h"
#include "vmpull.h"
#include "zbus/zbus.h"

/* A turn's bound: other clients wait while the broker copies. */
#define PUMP_MAX_RECORDS 256
#define PUMP_MAX_BYTES (16u << 20)

int zbd_delivery_credit(struct zbd_delivery *d)
{
	for (int i = 0; i < 4096; i++) {
		uint64_t v;
		ssize_t n = recv(d->sock, &v, sizeof(v), MSG_DONTWAIT);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -EPIPE;
		if (n == 0)
			return -EPIPE;
		if (n != sizeof(v) || v > d->wpos - d->credited)
			return -EPROTO;
		d->credited += v;
	}
	return 0; /* more next turn: the socket stays readable */
}

static uint64_t round_up(uint64_t v)
{
	return (v + ZB_RX_ALIGN - 1) & ~(uint64_t)(ZB_RX_ALIGN - 1);
}

/* Write @rec at @at in the subscriber's ring: all but pos1, then pos1. */
static int put_header(const struct zbd_delivery *d, uint64_t at,
		      const struct zb_rx_rec *rec)
{
	ssize_t n = zb_vmpull_write(d->pidfd, d->pid, d->rx_addr + at + 8,
				    (const uint8_t *)rec + 8,
				    sizeof(*rec) - 8);

	/*
	 * The kernel copies on our thread, so a fence here orders its
	 * stores of the payload and the header before its store of pos1
	 * (the reader's acquire load pairs with it). x86 keeps stores in
	 * order anyway; weaker machines need the fence, and nothing in
	 * process_vm_writev() promises one.
	 */
	zb_fence_write();
	if (n >= 0)
		n = zb_vmpull_write(d->pidfd, d->pid, d->rx_addr + at,
				    &rec->pos1, sizeof(rec->pos1));
	return n < 0 ? (int)n : 0;
}

/* Fill the rest of the lap with a ZB_RX_PAD record. */
static int put_pad(struct zbd_delivery *d)
{
	uint64_t at = d->wpos & (d->rx_bytes - 1);
	struct zb_rx_rec rec = {
		.pos1 = d->wpos + 1,
		.span = (uint32_t)(d->rx_bytes - at),
		.flags = ZB_RX_PAD,
	};
	int r = put_header(d, at, &rec);

	if (r == 0)
		d->wpos += rec.span;
	return r;
}

/*
 * Room for a record of @span bytes at the write position, padding to the
 * next lap first when it would straddle the end. Return: 1 room; 0 none
 * yet; -errno (writing the pad).
 */
static int make_room(struct zbd_delivery *d, uint64_t span)
{
	uint64_t free_bytes = d->rx_bytes - (d->wpos - d->credited);
	uint64_t lap_left = d->rx_bytes - (d->wpos & (d->rx_bytes - 1));
	int r;

	if (lap_left < span) {
		/* The pad alone when it fits: once given back, a whole lap
		 * is free, and span never exceeds a lap. */
		if (free_bytes < lap_left)
			return 0;
		r = put_pad(d);
		if (r < 0)
			return r;
		free_bytes -= lap_left;
	}
	return free_bytes >= span;
}

/* The payload of received message @m into the record at @at. Return: 0;
 * -errno for that message (status); *@fatal set if the subscriber's side
 * failed. */
static int put_payload(struct zbd_delivery *d, const struct zbus_channel *ch,
		       const struct zbus_msg *m, uint64_t at,
		       zbd_ref_copy_fn copy_ref, void *ctx, int *fatal)
{
	uint64_t dest = d->rx_addr + at + sizeof(struct zb_rx_rec);
	ssize_t n;

	*fatal = 0;
	if (m->flags & ZBUS_MSG_REF)
		return copy_ref(ctx, d, ch, m->seq, m->size, dest, fatal);
	if (!m->size)
		return 0;
	n = zb_vmpull_write(d->pidfd, d->pid, dest, m->data, m->size);
	if (n < 0) {
		*fatal = 1;
		return (int)n;
	}
	/* Lossy: the producer may have overwritten it while we copied. */
	return zbus_sub_validate(d->sub);
}

/* Tell the subscriber records arrived. Its eventfd is non-blocking: a
 * saturated counter (EAGAIN) means it is told already. */
static void wake(const struct zbd_delivery *d)
{
	uint64_t one = 1;

	if (write(d->efd, &one, sizeof(one)) < 0) {
		/* Nothing to do: the next record wakes it again. */
	}
}

/*
 * Deliver the held message. Return: 1 delivered (or found overwritten,
 * lossy); 0 no room yet; -errno: the subscriber's side failed.
 */
static int deliver_held(struct zbd_delivery *d, const struct zbus_channel *ch,
			zbd_ref_copy_fn copy_ref, void *ctx,
			uint64_t *bytes)
{
	const struct zbus_msg *m = &d->held;
	uint64_t span = round_up(sizeof(struct zb_rx_rec) + m->size);
	struct zb_rx_rec rec;
	int status = 0, fatal, r;
	uint64_t at;

	if (m->size > UINT32_MAX - 2 * ZB_RX_ALIGN || span > d->rx_bytes) {
		status = -EMSGSIZE;
		span = sizeof(struct zb_rx_rec);
	}
	/* No room: wait for it, whatever the policy. A lossy subscription
	 * holds no producer back, so while we wait they overwrite what we
	 * did not take, the oldest first, and we go on from the newest
	 * (the copy is validated, and the loss counted by the ring), as a
	 * lossy subscriber that maps the channel would. */
	r = make_room(d, span);
	if (r <= 0)
		return r;
	at = d->wpos & (d->rx_bytes - 1);
	if (!status) {
		status = put_payload(d, ch, m, at, copy_ref, ctx, &fatal);
		if (fatal)
			return status;
		if (status == -ESTALE && d->policy == ZBUS_LOSSY) {
			d->missed_carry += 1 + m->missed;
			zbus_sub_release(d->sub);
			d->holding = 0;
			return 1;
		}
		if (status)
			span = sizeof(struct zb_rx_rec);
	}
	rec = (struct zb_rx_rec){
		.pos1 = d->wpos + 1,
		.seq = m->seq,
		.span = (uint32_t)span,
		.size = (uint32_t)(m->size > UINT32_MAX ? UINT32_MAX : m->size),
		.producer = m->producer,
		.status = status,
		.missed = d->missed_carry + m->missed,
	};
	r = put_header(d, at, &rec);
	if (r < 0)
		return r;
	d->wpos += span;
	d->missed_carry = 0;
	d->delivered++;
	*bytes += span;
	zbus_sub_release(d->sub);
	d->holding = 0;
	return 1;
}

/* A descriptor that failed validation: an error record in its place
 * (a lost one if there is no room). Return: as deliver_held(). */
static int deliver_bad(struct zbd_delivery *d)
{
	struct zb_rx_rec rec = { .span = sizeof(rec), .status = -EBADMSG };
	int r = make_room(d, sizeof(rec));

	if (r <= 0) {
		if (r == 0)
			d->missed_carry++;
		return r < 0 ? r : 1;
	}
	rec.pos1 = d->wpos + 1;
	rec.missed = d->missed_carry;
	r = put_header(d, d->wpos & (d->rx_bytes - 1), &rec);
	if (r < 0)
		return r;
	d->wpos += sizeof(rec);
	d->missed_carry = 0;
	return 1;
}

int zbd_delivery_pump(struct zbd_delivery *d, const struct zbus_channel *ch,
		      zbd_ref_copy_fn copy_ref, void *ctx)
{
	uint64_t bytes = 0, before = d->wpos;
	int records = 0, r = 0, more = 0;

	while (records < PUMP_MAX_RECORDS && bytes < PUMP_MAX_BYTES) {
		if (!d->holding) {
			r = zbus_sub_recv_batch(d->sub, &d->held, 1, 0);
			if (r == -EAGAIN) {
				r = 0;
				break;
			}
			if (r == -EBADMSG) {
				r = deliver_bad(d);
				if (r < 0)
					break;
				records++;
				continue;
			}
			if (r < 0)
				break;
			d->holding = 1;
		}
		r = deliver_held(d, ch, copy_ref, ctx, &bytes);
		if (r <= 0)
			break;
		records++;
	}
	if (r > 0 || records >= PUMP_MAX_RECORDS || bytes >= PUMP_MAX_BYTES)
		more = 1;
	if (d->wpos != before)
		wake(d);
	return r < 0 ? r : more;
}
