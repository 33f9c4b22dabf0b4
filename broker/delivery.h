/* SPDX-License-Identifier: MIT */
/*
 * delivery.h - subscriptions the broker delivers: for a subscriber that
 * maps nothing of the channel (its mode gives it no segment, or its
 * mapping failed), the broker subscribes itself and copies each message
 * into a delivery ring in the subscriber's own memory (layout.h, struct
 * zb_rx_rec) with process_vm_writev().
 */
#ifndef ZBD_DELIVERY_H
#define ZBD_DELIVERY_H

#include <stdint.h>
#include <sys/types.h>

#include "zbus/zbus.h"

/* Deliveries one user may have, and the broker in all: each holds a
 * subscriber slot, two fds from the client and a thread (zbus_sub_fd()). */
#define ZBD_MAX_DELIVERIES_PER_UID 16
#define ZBD_MAX_DELIVERIES 256

/* What a checked SubscribeDelivered asks for. */
struct zbd_delivery_req {
	uint64_t channel_id;
	char name[256];
	uint32_t policy;
	uint64_t rx_addr, rx_bytes;
	int sock;   /* ours: a duplicate of the fd that came with it */
	int efd;    /* the subscriber's eventfd: a duplicate */
};

struct zbd_delivery {
	unsigned long long id;
	uint64_t channel_id;
	char name[256];
	uint32_t policy;
	struct zbus_sub *sub;  /* the broker's own subscription */
	uint32_t slot, word;   /* its slot, for the saved watch */
	int notify_fd;         /* zbus_sub_fd(sub): messages arrived */
	int sock, efd;         /* see struct zbd_delivery_req */
	int pidfd;             /* the subscriber, pinned */
	pid_t pid;
	uid_t uid;
	uint64_t rx_addr, rx_bytes;
	uint64_t wpos;         /* bytes of records written */
	uint64_t credited;     /* bytes the subscriber gave back */
	int holding;           /* @held waits for room (reliable) */
	struct zbus_msg held;
	uint64_t missed_carry; /* lost here, told with the next record */
	uint64_t delivered;    /* records of messages written */
};

/*
 * A message by reference, copied by the caller (it knows the publishers'
 * watches) from its publisher into the subscriber at @dest: @seq's record
 * is in @ch's ring. Return: 0; -errno for that message, with *@dst_failed
 * set when the subscriber's side failed (which ends the delivery).
 */
typedef int (*zbd_ref_copy_fn)(void *ctx, const struct zbd_delivery *d,
			       const struct zbus_channel *ch, uint64_t seq,
			       uint64_t size, uint64_t dest, int *dst_failed);

/*
 * zbd_delivery_credit() - take the bytes the subscriber gave back off its
 * socket. Return: 0; -EPIPE when it closed its end (unsubscribed or
 * died); -EPROTO when it gave back more than it was given or sent
 * something that is not a count.
 */
int zbd_delivery_credit(struct zbd_delivery *d);

/*
 * zbd_delivery_pump() - move what @d's subscription received into the
 * subscriber's ring while there is room, a bounded amount per call, then
 * wake the subscriber. Return: 0 when it waits (for messages or room);
 * 1 when it stopped at its bound with more to do (call again soon);
 * -errno when the subscriber cannot be written any more (gone, or its
 * ring unmapped): the delivery ends.
 */
int zbd_delivery_pump(struct zbd_delivery *d, const struct zbus_channel *ch,
		      zbd_ref_copy_fn copy_ref, void *ctx);

#endif /* ZBD_DELIVERY_H */
