/* SPDX-License-Identifier: MIT */
/*
 * conn.h - a connection to the broker, as the library's own files see it:
 * conn.c (requests) and reconnect.c (what it holds, and getting it back
 * after the broker restarts).
 */
#ifndef ZB_CONN_H
#define ZB_CONN_H

#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <sys/un.h>

#include "fdpass.h"
#include "zbus_ctl.pb-c.h"

/* What the broker watches for us, kept to be asked again after a restart. */
enum zb_watch_kind { ZB_WATCH_SUB, ZB_WATCH_PUB };

struct zb_held_watch {
	enum zb_watch_kind kind;
	char name[256];
	uint32_t slot, word;
	uint64_t ref_table; /* a publisher's (pub.h); 0 for a subscriber */
};

/* A channel this connection created, opened or offered: name, memfds. */
struct zb_held_channel {
	char name[256];
	struct zb_fds fds;
};

/* Bounds on what a connection keeps for a restart (fds and memory). */
#define ZB_CONN_MAX_HELD_CHANNELS 256
#define ZB_CONN_MAX_HELD_WATCHES 1024

struct zbus_conn {
	/* Recursive: the keeper re-sends requests while holding it. */
	pthread_mutex_t lock;
	int sock;          /* -1 while the broker is gone */
	int timeout_ms;
	int autostart;
	uint64_t next_id;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char error[256];
	struct zb_held_channel *channels;
	size_t nchannels;
	struct zb_held_watch *watches;
	size_t nwatches;
	/* The keeper thread: wakes on the socket's hang-up and reconnects. */
	pthread_t keeper;
	int keeper_running;
	int stop_fd;       /* eventfd: written to stop the keeper */
	sem_t keeper_started; /* posted by the keeper on its first step */
	uint64_t reconnects;
};

/*
 * zb_conn_request() - one request (with the fds of @send if not NULL), one
 * reply. On success *@rep is the unpacked reply and *@fds (if not NULL)
 * the fds that came with it; a refusal's status is returned, its message
 * in @c->error. -ENOTCONN while the broker is gone.
 */
int zb_conn_request(struct zbus_conn *c, Zbusctl__Request *req,
		    const struct zb_fds *send, Zbusctl__Reply **rep,
		    struct zb_fds *fds);
/* Ask the broker to watch @slot (holding @word) of channel @name, per
 * @kind (Subscribe or RegisterPublisher), or with @undo to stop and free
 * the slot (Unsubscribe, UnregisterPublisher).
 * Return: as zb_conn_request(). */
int zb_conn_watch(struct zbus_conn *c, enum zb_watch_kind kind, int undo,
		  const char *name, uint32_t slot, uint32_t word,
		  uint64_t ref_table);
/*
 * zb_conn_pull() - have the broker copy [@offset, @offset + @len) of
 * message by reference @seq of channel @name into @dst, in pieces of
 * ZB_CTL_MAX_PULL. Return: 0; the broker's refusal (-EACCES, -ESRCH,
 * -ESTALE, -EFAULT, -EPERM...); transport errors.
 */
int zb_conn_pull(struct zbus_conn *c, const char *name, uint64_t seq,
		 uint64_t offset, void *dst, size_t len);
/* Connect @c->sock (starting a broker if allowed) and say hello. */
int zb_conn_connect(struct zbus_conn *c);

/* Remember channel @name's memfds (duplicated) / a registration. Best
 * effort: past the bounds, nothing is remembered. */
void zb_conn_hold_channel(struct zbus_conn *c, const char *name,
			  const struct zb_fds *fds);
void zb_conn_drop_channel(struct zbus_conn *c, const char *name);
void zb_conn_hold_watch(struct zbus_conn *c, enum zb_watch_kind kind,
			const char *name, uint32_t slot, uint32_t word,
			uint64_t ref_table);
void zb_conn_drop_watch(struct zbus_conn *c, enum zb_watch_kind kind,
			const char *name, uint32_t slot, uint32_t word);
void zb_conn_release_held(struct zbus_conn *c);

/* Start / stop the keeper thread. Return: 0; -errno. */
int zb_keeper_start(struct zbus_conn *c);
void zb_keeper_stop(struct zbus_conn *c);

#endif /* ZB_CONN_H */
