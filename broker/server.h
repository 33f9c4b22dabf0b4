/* SPDX-License-Identifier: MIT */
/*
 * server.h - the broker's event loop: listening socket, clients, signals.
 */
#ifndef ZBD_SERVER_H
#define ZBD_SERVER_H

#include <stddef.h>

#include "registry.h"

/* Limits that keep one user from exhausting the broker for others. */
#define ZBD_MAX_PEERS 1024
#define ZBD_MAX_PEERS_PER_UID 64
/* Unread reply bytes past which a client asking for an fd is cut off:
 * a few replies (a reply is a few hundred bytes). With the per-user
 * connection limit this bounds the fds in flight per user (~64 x 8). */
#define ZBD_MAX_UNREAD_BYTES 4096
#define ZBD_MAX_REQUESTS_PER_TURN 16       /* fairness between peers */

struct zbd_peer;
struct zbd_deliv;

/* Subscriptions a user may ask the broker to watch (each holds an fd). */
#define ZBD_MAX_WATCHES_PER_UID 256

struct zbd_server {
	int epfd;
	int listen_fd;
	int sig_fd;
	int stop;
	struct zbd_registry reg;
	struct zbd_peer *peers;
	size_t npeers;
	unsigned long long next_peer_id;
	char state_path[256]; /* the registry is saved here ("": never) */
	int watches_changed;  /* since the registry was last saved */
	struct zbd_deliv *deliveries; /* subscriptions it delivers */
	size_t ndeliveries;
	unsigned long long next_delivery_id;
	int pump_again;       /* a delivery stopped at its bound */
};

/* Take over @listen_fd (bound, listening); block SIGTERM/SIGINT and watch
 * them through a signalfd. Return: 0; -errno. */
int zbd_server_init(struct zbd_server *s, int listen_fd);
/* Serve until SIGTERM/SIGINT. Return: 0; -errno on a fatal error. */
int zbd_server_run(struct zbd_server *s);
void zbd_server_fini(struct zbd_server *s);

#endif /* ZBD_SERVER_H */
