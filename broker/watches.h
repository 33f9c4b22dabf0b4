/* SPDX-License-Identifier: MIT */
/*
 * watches.h - the slots the broker watches for their process's death
 * (Subscribe, RegisterPublisher): which slot of which channel, and who
 * asked. Requests read them (whose process is behind a slot, for stat;
 * whose a watch is, for Unsubscribe); the event loop makes them, holds
 * their pidfds and frees them.
 */
#ifndef ZBD_WATCHES_H
#define ZBD_WATCHES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What to do when the watched process dies. */
enum zbd_watch_kind {
	ZBD_WATCH_NONE,
	ZBD_WATCH_SUB, /* free subscriber slot @slot */
	ZBD_WATCH_PUB, /* pad the loans of publisher slot @slot, free it */
};

struct zbd_watch {
	enum zbd_watch_kind kind;
	uint64_t channel_id; /* a name can be reused: the id tells */
	char name[256];
	uint32_t slot;
	uint32_t word;       /* ACTIVE | generation of the one meant */
	unsigned long long client; /* the connection that asked */
	pid_t pid;                 /* the process watched */
	uid_t uid;                 /* its uid (SO_PEERCRED) */
	uint64_t start_time;       /* its start (procinfo.h); 0: unknown */
	uint64_t ref_table; /* a publisher's table of references (layout.h,
			     * in its memory), 0: none */
	pid_t for_pid;      /* a delivery's (the broker's own subscription):
			     * the subscriber it serves; 0: none */
	uid_t for_uid;
	struct zbd_watch *next;
};

/* A watch as saved for the next broker (persist.h): no connection, no
 * pidfd, and only the id of its channel. */
struct zbd_saved_watch {
	uint64_t channel_id;
	enum zbd_watch_kind kind;
	uint32_t slot;
	uint32_t word;
	uid_t uid;
	pid_t pid;
	uint64_t start_time;
	uint64_t ref_table;
};

/* More than a broker can hold (ZBD_MAX_WATCHES_PER_UID for each of
 * ZBD_MAX_PEERS users): a state file with more is refused. */
#define ZBD_MAX_SAVED_WATCHES (1u << 18)

/*
 * zbd_watch_find() - the first watch from @w on whose channel, kind, slot
 * and word are @channel_id, @kind, @slot and @word; NULL if none. Pass
 * the found one's next to find the others.
 */
struct zbd_watch *zbd_watch_find(struct zbd_watch *w, uint64_t channel_id,
				 enum zbd_watch_kind kind, uint32_t slot,
				 uint32_t word);
/*
 * zbd_watch_vouching() - the watch of publisher slot @slot holding @word
 * of channel @channel_id that gave a table of references (the one a pull
 * through the broker must be vouched for by), or NULL.
 */
struct zbd_watch *zbd_watch_vouching(struct zbd_watch *list,
				     uint64_t channel_id, uint32_t slot,
				     uint32_t word);
/* May a client (@client, uid @uid) drop @w? Only its own connection's
 * watches, or those of its uid. */
int zbd_watch_owned(const struct zbd_watch *w, unsigned long long client,
		    uid_t uid);
/* The watches that count against @uid's quota (deliveries' do not). */
size_t zbd_watches_of_uid(const struct zbd_watch *list, uid_t uid);
void zbd_watch_link(struct zbd_watch **list, struct zbd_watch *w);
void zbd_watch_unlink(struct zbd_watch **list, struct zbd_watch *w);

#endif /* ZBD_WATCHES_H */
