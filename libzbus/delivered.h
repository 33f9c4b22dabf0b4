/* SPDX-License-Identifier: MIT */
/*
 * delivered.h - the receiving end of a subscription the broker delivers:
 * a delivery ring in our own memory that the broker fills (layout.h,
 * struct zb_rx_rec), for a process that maps nothing of the channel.
 */
#ifndef ZB_DELIVERED_H
#define ZB_DELIVERED_H

#include <stddef.h>
#include <stdint.h>

#include "zbus/zbus.h"

struct zb_delivered;

/*
 * zb_delivered_open() - ask the broker behind @conn to deliver channel
 * @name with @policy into a ring of @rx_bytes (rounded up to a power of
 * two within ZB_RX_MIN_BYTES..ZB_RX_MAX_BYTES).
 * Return: 0; -errno of the request (zbus_conn_error() explains); -ENOMEM;
 * -EMFILE.
 */
int zb_delivered_open(struct zbus_conn *conn, const char *name,
		      uint32_t policy, uint64_t rx_bytes,
		      struct zb_delivered **out);
void zb_delivered_close(struct zb_delivered *dv);

/* As zbus_sub_recv_batch(); also -EPIPE once the broker is gone (the
 * delivery ended), -EPROTO when it wrote a record that makes no sense, a
 * record's own error (-EMSGSIZE, -ESTALE, -ESRCH, -EBADMSG...) for a
 * message that could not be delivered. */
int zb_delivered_recv_batch(struct zb_delivered *dv, struct zbus_msg *msgs,
			    unsigned n, int timeout_ms);
/* Give back every message received so far. Return: 0. */
int zb_delivered_release(struct zb_delivered *dv);
/* The eventfd the broker writes when records arrive. */
int zb_delivered_fd(const struct zb_delivered *dv);
void zb_delivered_stats(const struct zb_delivered *dv,
			struct zbus_sub_stats *st);

#endif /* ZB_DELIVERED_H */
