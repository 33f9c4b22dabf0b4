/* SPDX-License-Identifier: MIT */
/*
 * delivered.c - receiving a subscription the broker delivers.
 *
 * The broker writes records into a ring in our private memory and tells
 * us through an eventfd; we read them in place and give the bytes back
 * over a seqpacket socket when the caller releases. The socket also says
 * when the broker is gone (it reads as end of file), and closing our end
 * ends the delivery. The broker is trusted with our memory (it may write
 * it anyway), but what it writes is still checked before it is used: a
 * record that makes no sense ends the delivery with -EPROTO, never a read
 * outside the ring.
 */
#include "delivered.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "ctl.h"
#include "layout.h"
#include "util.h"
#include "wait.h"

struct zb_delivered {
	uint8_t *rx;
	uint64_t cap;
	int sock;            /* ours: bytes back; EOF: the broker is gone */
	int efd;             /* written by the broker when records arrive */
	uint64_t rpos;       /* position of the next record */
	uint64_t given_back; /* bytes given back so far */
	unsigned holding;    /* messages handed out, not released */
	int failed;          /* -EPIPE or -EPROTO once the delivery ended */
	struct zbus_sub_stats st;
};

static uint64_t ring_bytes(uint64_t want)
{
	uint64_t cap = ZB_RX_MIN_BYTES;

	while (cap < want && cap < ZB_RX_MAX_BYTES)
		cap <<= 1;
	return cap;
}

int zb_delivered_open(struct zbus_conn *conn, const char *name,
		      uint32_t policy, uint64_t rx_bytes,
		      struct zb_delivered **out)
{
	Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
	Zbusctl__SubscribeDelivered sd = ZBUSCTL__SUBSCRIBE_DELIVERED__INIT;
	Zbusctl__Reply *rep;
	struct zb_delivered *dv;
	struct zb_fds fds;
	int sv[2], r;

	dv = calloc(1, sizeof(*dv));
	if (!dv)
		return -ENOMEM;
	dv->sock = dv->efd = -1;
	dv->cap = ring_bytes(rx_bytes);
	dv->rx = mmap(NULL, dv->cap, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dv->rx == MAP_FAILED) {
		r = -errno;
		free(dv);
		return r;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		goto fail;
	}
	dv->sock = sv[0];
	dv->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (dv->efd < 0) {
		r = -errno;
		close(sv[1]);
		goto fail;
	}
	sd.name = (char *)name;
	sd.policy = policy;
	sd.rx_addr = (uint64_t)(uintptr_t)dv->rx;
	sd.rx_bytes = dv->cap;
	req.body_case = ZBUSCTL__REQUEST__BODY_SUBSCRIBE_DELIVERED;
	req.subscribe_delivered = &sd;
	fds = (struct zb_fds){ .n = 2, .fd = { sv[1], dv->efd } };
	r = zb_conn_request(conn, &req, &fds, &rep, NULL);
	close(sv[1]); /* the broker has its own now */
	if (r < 0)
		goto fail;
	zbusctl__reply__free_unpacked(rep, NULL);
	*out = dv;
	return 0;
fail:
	zb_delivered_close(dv);
	return r;
}

void zb_delivered_close(struct zb_delivered *dv)
{
	if (!dv)
		return;
	if (dv->sock >= 0)
		close(dv->sock); /* ends the delivery */
	if (dv->efd >= 0)
		close(dv->efd);
	munmap(dv->rx, dv->cap);
	free(dv);
}

/* Give back what was read and released (and padding passed). */
static void give_back(struct zb_delivered *dv)
{
	uint64_t v = dv->rpos - dv->given_back;

	if (!v || dv->failed)
		return;
	if (send(dv->sock, &v, sizeof(v), MSG_DONTWAIT | MSG_NOSIGNAL) ==
	    (ssize_t)sizeof(v))
		dv->given_back = dv->rpos;
	else if (errno != EAGAIN && errno != EINTR)
		dv->failed = -EPIPE;
	/* EAGAIN: the broker is behind on its socket; sent with the next. */
}

/*
 * The record at the read position, if the broker finished it. Return: 1
 * (copied into @rec and checked); 0 none yet; -EPROTO.
 */
static int next_record(struct zb_delivered *dv, struct zb_rx_rec *rec)
{
	uint64_t at = dv->rpos & (dv->cap - 1);
	const struct zb_rx_rec *h = (const void *)(dv->rx + at);
	uint64_t pos1 = __atomic_load_n(&h->pos1, __ATOMIC_ACQUIRE);

	if (pos1 != dv->rpos + 1)
		return 0;
	memcpy(rec, h, sizeof(*rec));
	if (rec->span < sizeof(*rec) || rec->span % ZB_RX_ALIGN ||
	    rec->span > dv->cap - at || (rec->flags & ~ZB_RX_PAD) ||
	    (!(rec->flags & ZB_RX_PAD) && !rec->status &&
	     rec->size > rec->span - sizeof(*rec)) ||
	    rec->status > 0)
		return -EPROTO;
	return 1;
}

/* Count the error a record carries, for zbus_sub_stats(). */
static void count_error(struct zb_delivered *dv, int status)
{
	if (status == -EBADMSG)
		dv->st.bad++;
	else if (status == -EMSGSIZE)
		dv->st.missed++;
	else
		dv->st.pull_failed++;
}

/* Read what is there into @msgs. Return: messages (0: none yet); a
 * record's error, or -EPROTO, when it comes first. */
static int take(struct zb_delivered *dv, struct zbus_msg *msgs, unsigned n)
{
	unsigned k = 0;
	struct zb_rx_rec rec;
	int r;

	while (k < n) {
		uint64_t at = dv->rpos & (dv->cap - 1);

		r = next_record(dv, &rec);
		if (r == 0)
			break;
		if (r < 0) {
			dv->failed = -EPROTO;
			return k ? (int)k : -EPROTO;
		}
		if (rec.flags & ZB_RX_PAD) {
			dv->rpos += rec.span;
			continue;
		}
		if (rec.status) {
			if (k)
				break; /* the error comes with the next call */
			dv->rpos += rec.span;
			dv->st.missed += rec.missed;
			count_error(dv, rec.status);
			return rec.status;
		}
		msgs[k++] = (struct zbus_msg){
			.data = dv->rx + at + sizeof(rec),
			.size = rec.size,
			.seq = rec.seq,
			.producer = rec.producer,
			.missed = rec.missed,
			.priv = dv->rpos,
		};
		dv->st.missed += rec.missed;
		dv->st.received++;
		dv->rpos += rec.span;
		dv->holding++;
	}
	return (int)k;
}

/* Wait until the broker writes, or @deadline. Return: 0; -ETIMEDOUT;
 * -EPIPE when the broker is gone. */
static int wait_record(struct zb_delivered *dv, uint64_t deadline)
{
	struct pollfd p[2] = {
		{ .fd = dv->efd, .events = POLLIN },
		{ .fd = dv->sock, .events = POLLIN },
	};
	uint64_t now = zb_now_ns(), v;
	int ms;

	if (now >= deadline)
		return -ETIMEDOUT;
	ms = deadline == UINT64_MAX ? -1 :
	     (int)((deadline - now + 999999) / 1000000);
	if (poll(p, 2, ms) < 0 && errno != EINTR)
		return -errno;
	if (p[1].revents) {
		dv->failed = -EPIPE; /* the broker never writes it: EOF */
		return -EPIPE;
	}
	if (p[0].revents && read(dv->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: someone else reset it; the ring tells. */
	}
	return 0;
}

int zb_delivered_recv_batch(struct zb_delivered *dv, struct zbus_msg *msgs,
			    unsigned n, int timeout_ms)
{
	uint64_t deadline = 0, v;
	int r;

	if (!dv->holding)
		give_back(dv);
	for (;;) {
		/* Records written before the broker went are still ours. */
		r = take(dv, msgs, n);
		if (r != 0)
			return r;
		if (dv->failed)
			return dv->failed;
		/* Padding passed, errors counted: room for the broker. */
		if (!dv->holding)
			give_back(dv);
		if (!timeout_ms)
			return -EAGAIN;
		if (!deadline)
			deadline = timeout_ms < 0 ? UINT64_MAX :
						    zb_deadline_ms(timeout_ms);
		/* Reset the eventfd first, then look: a record written in
		 * between sets it again, so the wait cannot miss it. */
		if (read(dv->efd, &v, sizeof(v)) < 0) {
			/* EAGAIN: nothing signalled since. */
		}
		r = take(dv, msgs, n);
		if (r != 0)
			return r;
		r = wait_record(dv, deadline);
		if (r < 0)
			return r;
	}
}

int zb_delivered_release(struct zb_delivered *dv)
{
	dv->holding = 0;
	give_back(dv);
	return 0;
}

int zb_delivered_fd(const struct zb_delivered *dv)
{
	return dv->efd;
}

void zb_delivered_stats(const struct zb_delivered *dv,
			struct zbus_sub_stats *st)
{
	*st = dv->st;
}
