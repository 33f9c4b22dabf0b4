/* SPDX-License-Identifier: MIT */
/*
 * subscribe.c - zbus_conn_subscribe(): a subscription by channel name,
 * mapped where the process may map the channel, delivered by the broker
 * (delivered.c) where it may not.
 */
#include <errno.h>

#include "delivered.h"
#include "layout.h"
#include "sub.h"
#include "zbus/zbus.h"

/* Errors of opening or mapping that a delivery may get around: the mode
 * gives no segment, or this process cannot map one. The others (no such
 * channel, bad arguments, no broker) it would meet again. */
static int worth_delivering(int r)
{
	switch (r) {
	case -EACCES:	/* execute only: no segment for us */
	case -EPERM:	/* a sandbox forbids shared mappings */
	case -ENOMEM:	/* no address space for it */
	case -EMFILE:	/* no room for its memfds */
	case -ENFILE:
	case -ENODEV:
		return 1;
	default:
		return 0;
	}
}

static int subscribe_mapped(struct zbus_conn *conn, const char *name,
			    const struct zbus_sub_opts *o,
			    struct zbus_sub **out)
{
	struct zbus_channel *ch;
	struct zbus_sub *sub;
	int r;

	r = zbus_conn_open_channel(conn, name, ZBUS_ACCESS_SUBSCRIBE, &ch);
	if (r < 0)
		return r;
	r = zbus_sub_new(ch, o, &sub);
	if (r < 0) {
		zbus_channel_free(ch);
		return r;
	}
	zb_sub_adopt_channel(sub, ch);
	/* A reliable subscriber that dies must not hold producers back. */
	r = zbus_conn_register_sub(conn, name, sub);
	if (r < 0) {
		zbus_sub_free(sub);
		return r;
	}
	*out = sub;
	return 0;
}

/* Enough for two of the channel's largest messages, at least 1 MiB. */
static uint64_t default_ring(struct zbus_conn *conn, const char *name)
{
	struct zbus_channel_stat st;
	uint64_t want = 1u << 20;

	if (zbus_conn_stat(conn, name, &st) == 0 &&
	    2 * ((uint64_t)st.max_msg_size + ZB_RX_ALIGN) > want)
		want = 2 * ((uint64_t)st.max_msg_size + ZB_RX_ALIGN);
	return want;
}

static int subscribe_delivered(struct zbus_conn *conn, const char *name,
			       const struct zbus_sub_opts *o,
			       struct zbus_sub **out)
{
	struct zb_delivered *dv;
	uint64_t rx = o->rx_bytes ? o->rx_bytes : default_ring(conn, name);
	int r;

	r = zb_delivered_open(conn, name, o->policy, rx, &dv);
	if (r < 0)
		return r;
	r = zb_sub_new_delivered(dv, out);
	if (r < 0)
		zb_delivered_close(dv);
	return r;
}

ZBUS_EXPORT int zbus_conn_subscribe(struct zbus_conn *conn, const char *name,
				    const struct zbus_sub_opts *opts,
				    uint32_t flags, struct zbus_sub **out)
{
	struct zbus_sub_opts o = { 0 };
	int r;

	if (!conn || !name || !out || (flags & ~ZBUS_SUBSCRIBE_DELIVERED))
		return -EINVAL;
	if (opts)
		o = *opts;
	o.conn = conn;
	if (!zb_sub_opts_valid(&o))
		return -EINVAL;
	if (!(flags & ZBUS_SUBSCRIBE_DELIVERED)) {
		r = subscribe_mapped(conn, name, &o, out);
		if (!worth_delivering(r))
			return r;
	}
	return subscribe_delivered(conn, name, &o, out);
}
