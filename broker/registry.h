/* SPDX-License-Identifier: MIT */
/*
 * registry.h - the broker's channels by name, with owner and mode.
 */
#ifndef ZBD_REGISTRY_H
#define ZBD_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "reclaim.h"
#include "watches.h"
#include "zbus/zbus.h"

/* Who is asking: fixed when the connection was accepted. */
struct zbd_identity {
	uid_t uid;
	gid_t gid;
	gid_t *groups; /* supplementary groups (SO_PEERGROUPS), malloc()ed */
	int ngroups;
};

struct zbd_rates;

struct zbd_channel {
	uint64_t id; /* unique for the broker's life: names can be reused */
	char name[256];
	struct zbus_channel *ch; /* the broker's own mapping */
	int sub_fd;              /* data memfd for subscribe-only clients */
	struct zbus_channel_info info;
	uid_t owner_uid;
	gid_t owner_gid;
	uint32_t mode;
	uint32_t default_policy;
	uint32_t unblock_timeout_ms; /* as asked; 0: the registry's default */
	struct zb_unblock unblock;   /* stuck-claim detection state */
	uint64_t reclaimed;          /* claims padded */
	struct zbd_rates *rates;     /* the last samples (rates.h), or NULL */
	uint64_t created_unix_ns; /* wall clock: kept across broker restarts */
	struct zbd_channel *next;
};

/*
 * A channel known by its record only: saved by a broker that died, waiting
 * for a client to bring its memfd back (Adopt), which must be the very same
 * one (st_dev, st_ino).
 */
struct zbd_saved_channel {
	char name[256];
	uint64_t id;
	uid_t owner_uid;
	gid_t owner_gid;
	uint32_t mode;
	uint32_t default_policy;
	uint32_t max_msg_size;
	uint32_t ring_capacity;
	uint64_t arena_bytes;
	uint32_t max_subscribers;
	uint64_t segment_bytes;
	uint64_t seg_dev; /* fstat() of the memfd when saved: compare with */
	uint64_t seg_ino; /* (uint64_t)st.st_dev and (uint64_t)st.st_ino */
	uint64_t created_unix_ns;
	uint32_t max_publishers;
	uint32_t unblock_timeout_ms;
	uint64_t state_dev; /* the same of the state memfd */
	uint64_t state_ino;
	int sealed;
};

struct zbd_watch;

struct zbd_registry {
	struct zbd_channel *head;
	size_t count;
	/* The slots watched for their process's death (watches.h): made
	 * and freed by the event loop, read by requests. */
	struct zbd_watch *watches;
	uint64_t next_id;
	uint32_t default_unblock_ms; /* --unblock-timeout */
	struct zbd_saved_channel *pending; /* malloc()ed, npending of them */
	size_t npending;
	/* The watches saved on pending channels, restored when their
	 * channel is brought back (malloc()ed, npending_watches of them). */
	struct zbd_saved_watch *pending_watches;
	size_t npending_watches;
	uint64_t pending_until_ns;   /* then the unclaimed ones are dropped */
};

/* The pending record named @name, or NULL. */
struct zbd_saved_channel *zbd_registry_pending(struct zbd_registry *r,
					       const char *name);
/*
 * zbd_registry_adopt() - make pending record @rec a channel again, on @ch
 * (taken over: freed with the channel). @rec leaves the pending list.
 */
int zbd_registry_adopt(struct zbd_registry *r, struct zbd_saved_channel *rec,
		       struct zbus_channel *ch, struct zbd_channel **out);
/* Forget every pending record and pending watch (the recovery window is
 * over). */
void zbd_registry_drop_pending(struct zbd_registry *r);

/* Offered by its producer and sealed: only that producer writes @c. */
static inline int zbd_sealed(const struct zbd_channel *c)
{
	return !!(c->info.flags & ZBUS_CHANNEL_SEAL_WRITERS);
}

/* The unblock timeout in force for @c. */
uint32_t zbd_unblock_ms(const struct zbd_registry *r,
			const struct zbd_channel *c);

struct zbd_channel *zbd_registry_find(struct zbd_registry *r,
				      const char *name);
/* Return: 0; -EEXIST; as zbus_channel_create(). */
int zbd_registry_create(struct zbd_registry *r, const char *name,
			const struct zbus_channel_opts *opts, uint32_t mode,
			uint32_t policy, const struct zbd_identity *who,
			struct zbd_channel **out);
/*
 * zbd_registry_add_sealed() - register @ch, a sealed channel a producer
 * offered (taken over: freed with the channel), owned by @who.
 * Return: 0; -EEXIST; -ENOMEM; -errno.
 */
int zbd_registry_add_sealed(struct zbd_registry *r, const char *name,
			    struct zbus_channel *ch, uint32_t mode,
			    uint32_t policy, const struct zbd_identity *who,
			    struct zbd_channel **out);
/*
 * zbd_reopen() - @fd reopened through /proc with @flags (a memfd has no
 * other name). Return: the new fd; -errno.
 */
int zbd_reopen(int fd, int flags);
void zbd_registry_remove(struct zbd_registry *r, struct zbd_channel *c);
void zbd_registry_clear(struct zbd_registry *r);
size_t zbd_registry_count_owned(const struct zbd_registry *r, uid_t uid);

/*
 * zbd_may() - may @who have @access (ZBUS_ACCESS_*) on @c? Like a file:
 * the owner's bits, else the group's (primary or supplementary), else the
 * others'; read lets a principal subscribe, write publish. Root may.
 */
/* Internal access bit: a subscription the broker delivers (SubscribeDelivered):
 * granted by read (04) or execute (01), the bit that gives no segment. */
#define ZBD_ACCESS_DELIVERED 0x100u
int zbd_may(const struct zbd_channel *c, const struct zbd_identity *who,
	    uint32_t access);
/* Owner or root. */
int zbd_owns(const struct zbd_channel *c, const struct zbd_identity *who);

/*
 * zbd_free_slot() - free slot @slot of @c (a subscriber's or, per @kind,
 * a publisher's) if it still holds @word, as when its process died: a
 * publisher's recorded loans are padded and counted in @c->reclaimed.
 * Return: the loans padded (0 for a subscriber); -ESRCH when the slot
 * holds something else.
 */
int zbd_free_slot(struct zbd_channel *c, enum zbd_watch_kind kind,
		  uint32_t slot, uint32_t word);

#endif /* ZBD_REGISTRY_H */
