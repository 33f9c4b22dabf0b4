/* SPDX-License-Identifier: MIT */
/*
 * pub.h - what other library files may know of a publisher.
 */
#ifndef ZB_PUB_H
#define ZB_PUB_H

#include <stdint.h>

struct zbus_pub;

/* The publisher slot @pub holds, its state word (ACTIVE|generation), and
 * where its table of messages by reference is (struct zb_ref_entry). */
void zb_pub_identity(const struct zbus_pub *pub, uint32_t *slot,
		     uint32_t *word, uint64_t *ref_table);

#endif /* ZB_PUB_H */
