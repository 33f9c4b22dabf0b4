/* SPDX-License-Identifier: MIT */
/*
 * requests.h - the broker's answer to one control request.
 */
#ifndef ZBD_REQUESTS_H
#define ZBD_REQUESTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fdpass.h"
#include "delivery.h"
#include "pull.h"
#include "registry.h"
#include "watches.h"

/* Quotas that keep one user from exhausting the broker for others. */
#define ZBD_MAX_CHANNELS 4096
#define ZBD_MAX_CHANNELS_PER_UID 256
#define ZBD_MAX_BYTES_PER_UID (8ull << 30) /* segment bytes owned */

/* What an answer asks the event loop to do besides replying. */
struct zbd_action {
	enum zbd_watch_kind watch; /* when the client dies, on @channel_id */
	enum zbd_watch_kind unwatch; /* forget the client's watches of it */
	uint64_t channel_id;
	char name[256];
	uint32_t slot;
	uint32_t word;
	int changed; /* the registry changed: save it */
	uint64_t adopted; /* the id of a channel brought back (Adopt) */
	uint64_t ref_table; /* with @watch ZBD_WATCH_PUB: RegisterPublisher's */
	int has_pull;          /* a Pull checked: the loop copies @pull */
	struct zbd_pull pull;
	/* SubscribeDelivered checked: the loop starts delivering; @fds are
	 * duplicates (socket, eventfd) it takes over */
	int has_delivery;
	struct zbd_delivery_req delivery;
};

/* A client as the broker knows it: identity from the kernel only. */
struct zbd_client {
	unsigned long long id;
	pid_t pid;          /* SO_PEERCRED: in the broker's pid namespace */
	/* From /proc, read when first needed (zbd_client_proc()): most
	 * clients never register a slot, and the reads cost a connect 2x. */
	int proc_known;
	pid_t inner_pid;    /* as the client sees itself (procinfo.h) */
	uint64_t start_time; /* its start (procinfo.h); 0: unknown */
	struct zbd_identity who;
	int said_hello;
};

/*
 * zbd_client_proc() - fill @c's inner_pid and start_time from /proc once.
 * Read while its pidfd pins the pid: if the process is gone, they may be
 * another's, and unused, since its pidfd ends the connection and fires
 * any watch made on it at once.
 */
void zbd_client_proc(struct zbd_client *c);

/*
 * zbd_answer() - answer one request record from @c.
 * @in: the fds that came with the record (borrowed: the caller closes
 *      them; requests that keep one take a duplicate)
 * @out: a malloc()ed reply record (always set on success: malformed or
 *       refused requests get a reply with a status and a sentence)
 * @out_fds: a channel's memfds to send with the reply (borrowed), or none
 * @act: filled with what else the loop must do (zeroed when nothing)
 * Return: 0; -ENOMEM.
 */
int zbd_answer(struct zbd_registry *reg, struct zbd_client *c,
	       const uint8_t *rec, size_t len, const struct zb_fds *in,
	       uint8_t **out, size_t *out_len, struct zb_fds *out_fds,
	       struct zbd_action *act);

/*
 * zbd_refusal() - a reply to the request in @rec (its id echoed) that
 * refuses it with @status and @message, for when the answer zbd_answer()
 * built cannot be delivered. Return: 0; -ENOMEM.
 */
int zbd_refusal(const struct zbd_client *c, const uint8_t *rec, size_t len,
		int status, const char *message, uint8_t **out,
		size_t *out_len, struct zb_fds *out_fds);

#endif /* ZBD_REQUESTS_H */
