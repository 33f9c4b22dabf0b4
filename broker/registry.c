/* SPDX-License-Identifier: MIT */
/*
 * registry.c - channels by name. A linked list: a broker holds tens or
 * hundreds of channels, and every operation on them is a control-path
 * request, never the data path.
 */
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "live.h"

struct zbd_channel *zbd_registry_find(struct zbd_registry *r,
				      const char *name)
{
	for (struct zbd_channel *c = r->head; c; c = c->next)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

int zbd_reopen(int fd, int flags)
{
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = open(path, flags | O_CLOEXEC);
	return r < 0 ? -errno : r;
}

/*
 * The data memfd handed to clients that may only subscribe. Read-only: it
 * cannot be mapped writable, and with mode 0600 a client of another uid
 * cannot reopen it read-write through /proc either (the same uid can:
 * that is one trust domain anyway, FIELD-NOTES). A sealed channel cannot
 * be mapped writable by anyone, so its own fd will do.
 */
static int subscriber_fd(struct zbus_channel *ch, int sealed)
{
	int fd = zbus_channel_fd(ch), fl = fcntl(fd, F_GETFL);

	if (sealed || (fl >= 0 && (fl & O_ACCMODE) == O_RDONLY)) {
		int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);

		return d < 0 ? -errno : d;
	}
	/* Fails on a memfd another uid made: its reopen still decides. */
	(void)fchmod(fd, 0600);
	return zbd_reopen(fd, O_RDONLY);
}

/* Register @ch (taken over on success) under @name. */
static int add(struct zbd_registry *r, const char *name,
	       struct zbus_channel *ch, struct zbd_channel **out)
{
	struct zbus_channel_info info;
	struct zbd_channel *c;
	int fd;

	if (zbd_registry_find(r, name))
		return -EEXIST;
	zbus_channel_info(ch, &info);
	fd = subscriber_fd(ch, !!(info.flags & ZBUS_CHANNEL_SEAL_WRITERS));
	if (fd < 0)
		return fd;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->ch = ch;
	c->sub_fd = fd;
	c->info = info;
	c->next = r->head;
	r->head = c;
	r->count++;
	*out = c;
	return 0;
}

static uint64_t wall_clock_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* A new channel's owner, mode and policy, from @who. */
static void set_new(struct zbd_registry *r, struct zbd_channel *c,
		    uint32_t mode, uint32_t policy,
		    const struct zbd_identity *who)
{
	c->id = ++r->next_id;
	c->owner_uid = who->uid;
	c->owner_gid = who->gid;
	c->mode = mode & 0777;
	c->default_policy = policy;
	c->created_unix_ns = wall_clock_ns();
}

int zbd_registry_create(struct zbd_registry *r, const char *name,
			const struct zbus_channel_opts *opts, uint32_t mode,
			uint32_t policy, const struct zbd_identity *who,
			struct zbd_channel **out)
{
	struct zbus_channel *ch;
	int ret;

	if (zbd_registry_find(r, name))
		return -EEXIST;
	ret = zbus_channel_create(name, opts, &ch);
	if (ret < 0)
		return ret;
	ret = add(r, name, ch, out);
	if (ret < 0) {
		zbus_channel_free(ch);
		return ret;
	}
	set_new(r, *out, mode, policy, who);
	return 0;
}

int zbd_registry_add_sealed(struct zbd_registry *r, const char *name,
			    struct zbus_channel *ch, uint32_t mode,
			    uint32_t policy, const struct zbd_identity *who,
			    struct zbd_channel **out)
{
	int ret = add(r, name, ch, out);

	if (ret == 0)
		set_new(r, *out, mode, policy, who);
	return ret;
}

struct zbd_saved_channel *zbd_registry_pending(struct zbd_registry *r,
					       const char *name)
{
	for (size_t i = 0; i < r->npending; i++)
		if (!strcmp(r->pending[i].name, name))
			return &r->pending[i];
	return NULL;
}

int zbd_registry_adopt(struct zbd_registry *r, struct zbd_saved_channel *rec,
		       struct zbus_channel *ch, struct zbd_channel **out)
{
	size_t i = (size_t)(rec - r->pending);
	struct zbd_channel *c;
	int ret;

	ret = add(r, rec->name, ch, &c);
	if (ret < 0)
		return ret;
	c->id = rec->id;
	c->owner_uid = rec->owner_uid;
	c->owner_gid = rec->owner_gid;
	c->mode = rec->mode;
	c->default_policy = rec->default_policy;
	c->unblock_timeout_ms = rec->unblock_timeout_ms;
	c->created_unix_ns = rec->created_unix_ns;
	r->pending[i] = r->pending[--r->npending];
	*out = c;
	return 0;
}

void zbd_registry_drop_pending(struct zbd_registry *r)
{
	free(r->pending);
	r->pending = NULL;
	r->npending = 0;
	free(r->pending_watches);
	r->pending_watches = NULL;
	r->npending_watches = 0;
}

void zbd_registry_remove(struct zbd_registry *r, struct zbd_channel *c)
{
	for (struct zbd_channel **p = &r->head; *p; p = &(*p)->next) {
		if (*p != c)
			continue;
		*p = c->next;
		r->count--;
		close(c->sub_fd);
		zbus_channel_free(c->ch);
		free(c->rates); /* one block */
		free(c);
		return;
	}
}

void zbd_registry_clear(struct zbd_registry *r)
{
	while (r->head)
		zbd_registry_remove(r, r->head);
	zbd_registry_drop_pending(r);
}

uint32_t zbd_unblock_ms(const struct zbd_registry *r,
			const struct zbd_channel *c)
{
	return c->unblock_timeout_ms ? c->unblock_timeout_ms :
				       r->default_unblock_ms;
}

size_t zbd_registry_count_owned(const struct zbd_registry *r, uid_t uid)
{
	size_t n = 0;

	for (const struct zbd_channel *c = r->head; c; c = c->next)
		n += c->owner_uid == uid;
	return n;
}

static int in_group(const struct zbd_identity *who, gid_t gid)
{
	if (who->gid == gid)
		return 1;
	for (int i = 0; i < who->ngroups; i++)
		if (who->groups[i] == gid)
			return 1;
	return 0;
}

int zbd_may(const struct zbd_channel *c, const struct zbd_identity *who,
	    uint32_t access)
{
	uint32_t bits, need = 0;

	if (who->uid == 0)
		return 1;
	if (who->uid == c->owner_uid)
		bits = c->mode >> 6;
	else if (in_group(who, c->owner_gid))
		bits = c->mode >> 3;
	else
		bits = c->mode;
	if (access & ZBUS_ACCESS_SUBSCRIBE)
		need |= 04;
	if (access & ZBUS_ACCESS_PUBLISH)
		need |= 02;
	if ((access & ZBD_ACCESS_DELIVERED) && !(bits & 05))
		return 0;
	return (bits & need) == need;
}

int zbd_owns(const struct zbd_channel *c, const struct zbd_identity *who)
{
	return who->uid == 0 || who->uid == c->owner_uid;
}

int zbd_free_slot(struct zbd_channel *c, enum zbd_watch_kind kind,
		  uint32_t slot, uint32_t word)
{
	int n;

	if (kind == ZBD_WATCH_SUB)
		return zb_live_free_slot(c->ch, slot, word) ? 0 : -ESRCH;
	n = zb_reclaim_publisher(&c->ch->seg, slot, word);
	if (n > 0)
		c->reclaimed += (uint64_t)n;
	return n;
}
