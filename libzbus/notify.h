/* SPDX-License-Identifier: MIT */
/*
 * notify.h - a pollable fd for a subscription: an eventfd signalled by a
 * thread that sleeps on the subscription's futex.
 */
#ifndef ZB_NOTIFY_H
#define ZB_NOTIFY_H

#include "ring.h"

struct zb_notify;

/* Return: 0; -ENOMEM; -EMFILE/-ENFILE; -EAGAIN (no thread). */
int zb_notify_start(struct zb_ring_sub *ring, struct zb_notify **out);
int zb_notify_fd(const struct zb_notify *n);
/* Stop the thread, close the fd. Accepts NULL; returns NULL. */
struct zb_notify *zb_notify_stop(struct zb_notify *n);

#endif /* ZB_NOTIFY_H */
