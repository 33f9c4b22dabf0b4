/* SPDX-License-Identifier: MIT */
/*
 * sub.h - what other library files may know of a subscription.
 */
#ifndef ZB_SUB_H
#define ZB_SUB_H

#include <stdint.h>

struct zbus_sub;

/* The slot a subscription holds and its state word (ACTIVE|generation). */
void zb_sub_identity(const struct zbus_sub *sub, uint32_t *slot,
		     uint32_t *word);

#endif /* ZB_SUB_H */
