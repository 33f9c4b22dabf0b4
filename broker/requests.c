/* SPDX-License-Identifier: MIT */
/*
 * requests.c - the broker's answers: one request record in, one reply
 * record (and maybe a channel's memfds) out, for a client whose identity the kernel
 * gave us. No sockets here: the event loop moves the bytes, the fuzzer
 * calls this directly.
 */
#include "requests.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "fdpass.h"
#include "layout.h"
#include "live.h"
#include "procinfo.h"
#include "ref.h"
#include "log.h"
#include "rates.h"
#include "segment.h"

#define ZBD_STR_(x) #x
#define ZBD_STR(x) ZBD_STR_(x)
#define ZBD_VERSION ZBD_STR(ZBUS_VERSION_MAJOR) "." ZBD_STR(ZBUS_VERSION_MINOR)

/* --- replies ------------------------------------------------------------ */

struct reply {
	Zbusctl__Reply r;
	char msg[320];
	struct zb_fds fds; /* sent with the reply, not owned */
	Zbusctl__HelloReply hello;
	Zbusctl__ChannelInfo info;
	Zbusctl__ChannelParams params;
	Zbusctl__ListReply list;
	void *extra[2]; /* freed after packing (stat's lists) */
};

__attribute__((format(printf, 3, 4)))
static void fail(struct reply *rp, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rp->msg, sizeof(rp->msg), fmt, ap);
	va_end(ap);
	rp->r.status = status;
	rp->r.message = rp->msg;
}

static void fill_info(const struct zbd_channel *c, struct reply *rp)
{
	Zbusctl__ChannelInfo *ci = &rp->info;
	Zbusctl__ChannelParams *cp = &rp->params;
	struct zb_live live;

	zb_live_read(c->ch, &live);
	zbusctl__channel_info__init(ci);
	zbusctl__channel_params__init(cp);
	cp->max_msg_size = c->info.max_msg_size;
	cp->ring_capacity = c->info.ring_capacity;
	cp->arena_bytes = c->info.arena_bytes;
	cp->max_subscribers = c->info.max_subscribers;
	cp->max_publishers = c->info.max_publishers;
	cp->unblock_timeout_ms = c->unblock_timeout_ms;
	cp->default_policy = c->default_policy;
	cp->mode = c->mode;
	ci->name = (char *)c->name;
	ci->params = cp;
	ci->owner_uid = c->owner_uid;
	ci->owner_gid = c->owner_gid;
	ci->segment_bytes = c->info.segment_bytes;
	ci->publishers = live.publishers;
	ci->subscribers = live.subscribers;
	ci->published = live.published;
	ci->depth = live.depth;
	ci->publish_rate = zbd_publish_rate(c);
	ci->reclaimed = c->reclaimed;
	ci->sealed = zbd_sealed(c);
	rp->r.body_case = ZBUSCTL__REPLY__BODY_CHANNEL;
	rp->r.channel = ci;
}

/* --- requests ----------------------------------------------------------- */

/* Refuse @name while a client may still bring its memfd back. */
static int being_recovered(struct zbd_registry *reg, const char *name,
			   struct reply *rp)
{
	if (!zbd_registry_pending(reg, name))
		return 0;
	fail(rp, -EAGAIN, "channel '%s' is being recovered after a broker "
	     "restart: try again shortly", name);
	return 1;
}


static void do_hello(struct zbd_client *p, const Zbusctl__Hello *h,
		     struct reply *rp)
{
	if (h->version != ZB_CTL_VERSION) {
		fail(rp, -EPROTO, "protocol version %u is not spoken here "
		     "(zbusd speaks %u)", h->version, ZB_CTL_VERSION);
		return;
	}
	p->said_hello = 1;
	zbusctl__hello_reply__init(&rp->hello);
	rp->hello.version = ZB_CTL_VERSION;
	rp->hello.uid = p->who.uid;
	rp->hello.gid = p->who.gid;
	rp->hello.pid = (uint32_t)p->pid;
	rp->hello.broker = "zbusd " ZBD_VERSION;
	rp->r.body_case = ZBUSCTL__REPLY__BODY_HELLO;
	rp->r.hello = &rp->hello;
}

/* Send @c's memfds with the reply: the data one read-write only to those
 * who may publish. */
static void hand_out(struct zbd_channel *c, uint32_t access,
		     struct reply *rp)
{
	rp->fds.n = ZB_NFDS;
	rp->fds.fd[ZB_FD_DATA] = (access & ZBUS_ACCESS_PUBLISH) ?
					 zbus_channel_fd(c->ch) : c->sub_fd;
	rp->fds.fd[ZB_FD_STATE] = zbus_channel_state_fd(c->ch);
}

static void do_open_existing(struct zbd_client *p, struct zbd_channel *c,
			     uint32_t access, struct reply *rp)
{
	if (zbd_sealed(c) && (access & ZBUS_ACCESS_PUBLISH)) {
		fail(rp, -EACCES, "channel '%s' is sealed: only the process "
		     "that offered it publishes", c->name);
		return;
	}
	if (!zbd_may(c, &p->who, access)) {
		fail(rp, -EACCES, "uid %u may not %s channel '%s' (owner "
		     "%u:%u, mode %03o)", (unsigned)p->who.uid,
		     access == ZBUS_ACCESS_SUBSCRIBE ? "subscribe to" :
		     access == ZBUS_ACCESS_PUBLISH ? "publish to" :
						     "publish and subscribe to",
		     c->name, (unsigned)c->owner_uid, (unsigned)c->owner_gid,
		     c->mode);
		return;
	}
	fill_info(c, rp);
	hand_out(c, access, rp);
}

/* Would @bytes more of segments keep @who within its quotas? Else fail. */
static int within_quota(struct zbd_registry *reg, const struct zbd_client *p,
			uint64_t bytes, struct reply *rp)
{
	uint64_t owned_bytes = 0;

	for (struct zbd_channel *x = reg->head; x; x = x->next)
		if (x->owner_uid == p->who.uid)
			owned_bytes += x->info.segment_bytes +
				       x->info.state_bytes;
	if (reg->count < ZBD_MAX_CHANNELS &&
	    zbd_registry_count_owned(reg, p->who.uid) <
		    ZBD_MAX_CHANNELS_PER_UID &&
	    owned_bytes + bytes <= ZBD_MAX_BYTES_PER_UID)
		return 1;
	fail(rp, -EDQUOT, "quota exhausted for uid %u: at most %u channels "
	     "and %llu GiB of segments per user, %u channels in all",
	     (unsigned)p->who.uid, ZBD_MAX_CHANNELS_PER_UID,
	     ZBD_MAX_BYTES_PER_UID >> 30, ZBD_MAX_CHANNELS);
	return 0;
}

static void do_create(struct zbd_registry *reg, struct zbd_client *p,
		      const Zbusctl__Create *cr, struct reply *rp,
		      struct zbd_action *act)
{
	const Zbusctl__ChannelParams *cp = cr->params;
	struct zbus_channel_opts o = { 0 };
	uint32_t mode = 0600, policy = ZBUS_RELIABLE;
	struct zbd_channel *c;
	struct zb_geometry g;
	int r;

	if (!zb_ctl_name_valid(cr->name)) {
		fail(rp, -EINVAL, "invalid channel name (1..255 printable "
		     "characters, no spaces)");
		return;
	}
	if (being_recovered(reg, cr->name, rp))
		return;
	c = zbd_registry_find(reg, cr->name);
	if (c) {
		if (!cr->open_existing)
			fail(rp, -EEXIST, "channel '%s' exists", c->name);
		else
			do_open_existing(p, c, ZBUS_ACCESS_PUBLISH |
					       ZBUS_ACCESS_SUBSCRIBE, rp);
		return;
	}
	if (cp) {
		o.max_msg_size = cp->max_msg_size;
		o.ring_capacity = cp->ring_capacity;
		o.arena_bytes = cp->arena_bytes;
		o.max_subscribers = cp->max_subscribers;
		o.max_publishers = cp->max_publishers;
		mode = cp->mode ? cp->mode : 0600;
		policy = cp->default_policy;
	}
	if ((mode & ~0777u) ||
	    (policy != ZBUS_RELIABLE && policy != ZBUS_LOSSY) ||
	    zb_geometry_from_opts(&o, &g) < 0) {
		fail(rp, -EINVAL, "invalid channel parameters");
		return;
	}
	if (!within_quota(reg, p, g.segment_size + g.state_size, rp))
		return;
	r = zbd_registry_create(reg, cr->name, &o, mode, policy, &p->who,
				&c);
	if (r < 0) {
		fail(rp, r, "cannot create channel '%s': %s", cr->name,
		     zbus_strerror(r));
		return;
	}
	c->unblock_timeout_ms = cp ? cp->unblock_timeout_ms : 0;
	zbd_log("client %llu (uid %u) created channel '%s' (%llu bytes, mode "
		"%03o)", p->id, (unsigned)p->who.uid, c->name,
		(unsigned long long)c->info.segment_bytes, c->mode);
	act->changed = 1;
	fill_info(c, rp);
	hand_out(c, ZBUS_ACCESS_PUBLISH | ZBUS_ACCESS_SUBSCRIBE, rp);
}

static void do_open(struct zbd_registry *reg, struct zbd_client *p,
		    const Zbusctl__Open *op, struct reply *rp)
{
	struct zbd_channel *c;

	if (!zb_ctl_name_valid(op->name) || !op->access ||
	    (op->access & ~(ZBUS_ACCESS_PUBLISH | ZBUS_ACCESS_SUBSCRIBE))) {
		fail(rp, -EINVAL, "invalid channel name or access");
		return;
	}
	if (being_recovered(reg, op->name, rp))
		return;
	c = zbd_registry_find(reg, op->name);
	if (!c) {
		fail(rp, -ENOENT, "no channel '%s'", op->name);
		return;
	}
	do_open_existing(p, c, op->access, rp);
}

/* Is @fd the file (@dev, @ino)? */
static int same_file(int fd, uint64_t dev, uint64_t ino)
{
	struct stat st;

	return fstat(fd, &st) == 0 && (uint64_t)st.st_dev == dev &&
	       (uint64_t)st.st_ino == ino;
}

/* Does the attached @ch have the geometry @rec was saved with? */
static int same_geometry(const struct zbus_channel *ch,
			 const struct zbd_saved_channel *rec)
{
	struct zbus_channel_info i;

	zbus_channel_info(ch, &i);
	return i.max_msg_size == rec->max_msg_size &&
	       i.ring_capacity == rec->ring_capacity &&
	       i.arena_bytes == rec->arena_bytes &&
	       i.max_subscribers == rec->max_subscribers &&
	       i.max_publishers == rec->max_publishers &&
	       i.segment_bytes == rec->segment_bytes;
}

/* The rights a saved channel gives @who: zbd_may() on a stand-in. */
static int may_touch_saved(const struct zbd_saved_channel *rec,
			   const struct zbd_identity *who)
{
	struct zbd_channel c = { .owner_uid = rec->owner_uid,
				 .owner_gid = rec->owner_gid,
				 .mode = rec->mode };

	return zbd_may(&c, who, ZBUS_ACCESS_SUBSCRIBE) ||
	       zbd_may(&c, who, ZBUS_ACCESS_PUBLISH);
}

/* Are @fds the memfds fstat() gave (@dev, @ino) and (@sdev, @sino)? */
static int same_files(const struct zb_fds *fds, uint64_t dev, uint64_t ino,
		      uint64_t sdev, uint64_t sino)
{
	return fds->n == ZB_NFDS &&
	       same_file(fds->fd[ZB_FD_DATA], dev, ino) &&
	       same_file(fds->fd[ZB_FD_STATE], sdev, sino);
}

/* Are @fds the memfds of the live channel @c? */
static int fds_of(const struct zbd_channel *c, const struct zb_fds *fds)
{
	struct stat st, sst;

	return fstat(zbus_channel_fd(c->ch), &st) == 0 &&
	       fstat(zbus_channel_state_fd(c->ch), &sst) == 0 &&
	       same_files(fds, (uint64_t)st.st_dev, (uint64_t)st.st_ino,
			  (uint64_t)sst.st_dev, (uint64_t)sst.st_ino);
}

/*
 * Attach the memfds a client brought back for @rec. A client that may
 * only subscribe holds a read-only data memfd; the broker needs it
 * writable (it pads dead producers' claims), so it reopens it, which works
 * for the uid that made it or root. Not for a sealed channel: nobody can
 * map that one writable again.
 */
static int attach_recovered(const struct zbd_saved_channel *rec,
			    const struct zb_fds *fds, struct zbus_channel **ch)
{
	int data = fds->fd[ZB_FD_DATA], fl = fcntl(data, F_GETFL), rw = -1;
	int r;

	if (!rec->sealed && fl >= 0 && (fl & O_ACCMODE) == O_RDONLY) {
		rw = zbd_reopen(data, O_RDWR);
		if (rw < 0)
			return -EACCES;
		data = rw;
	}
	r = zbus_channel_attach_dup(data, fds->fd[ZB_FD_STATE], ch);
	if (rw >= 0)
		close(rw);
	if (r == 0 && !same_geometry(*ch, rec)) {
		*ch = zbus_channel_free(*ch);
		r = -EBADMSG;
	}
	return r;
}

static void do_adopt(struct zbd_registry *reg, struct zbd_client *p,
		     const Zbusctl__Adopt *ad, const struct zb_fds *fds,
		     struct reply *rp, struct zbd_action *act)
{
	struct zbd_saved_channel *rec;
	struct zbus_channel *ch;
	struct zbd_channel *c;
	int r;

	if (!zb_ctl_name_valid(ad->name) || fds->n != ZB_NFDS) {
		fail(rp, -EINVAL, "adopt needs a channel name and its two "
		     "memfds");
		return;
	}
	c = zbd_registry_find(reg, ad->name);
	if (c) {
		/* Another client brought it back first: fine if these are
		 * the same memfds, a different channel otherwise. */
		if (fds_of(c, fds))
			fill_info(c, rp);
		else
			fail(rp, -EEXIST, "channel '%s' is another channel "
			     "now", c->name);
		return;
	}
	rec = zbd_registry_pending(reg, ad->name);
	if (!rec) {
		fail(rp, -ENOENT, "no channel '%s' to recover", ad->name);
		return;
	}
	if (!may_touch_saved(rec, &p->who)) {
		fail(rp, -EACCES, "uid %u may not use channel '%s'",
		     (unsigned)p->who.uid, rec->name);
		return;
	}
	/* The very memfds, not ones made to look like them: a client could
	 * otherwise swap a channel under everyone who opens it later. */
	if (!same_files(fds, rec->seg_dev, rec->seg_ino, rec->state_dev,
			rec->state_ino)) {
		fail(rp, -EBADF, "those are not the memfds of channel '%s'",
		     rec->name);
		return;
	}
	r = attach_recovered(rec, fds, &ch);
	if (r < 0) {
		fail(rp, r, "cannot adopt channel '%s': %s", rec->name,
		     r == -EACCES ? "its data memfd is read-only here; a "
				    "publisher will bring it back" :
				    zbus_strerror(r));
		return;
	}
	r = zbd_registry_adopt(reg, rec, ch, &c);
	if (r < 0) {
		zbus_channel_free(ch);
		fail(rp, r, "cannot adopt channel '%s'", ad->name);
		return;
	}
	zbd_log("client %llu (uid %u) brought channel '%s' back", p->id,
		(unsigned)p->who.uid, c->name);
	act->changed = 1;
	act->adopted = c->id;
	fill_info(c, rp);
}

/*
 * Offer: a producer's own channel, sealed so that only it ever writes the
 * data. The broker checks what it is given like any attacher (seals,
 * sizes, headers, the pair), plus the writers' seal, and maps it
 * read-only.
 */
static void do_offer(struct zbd_registry *reg, struct zbd_client *p,
		     const Zbusctl__Offer *of, const struct zb_fds *fds,
		     struct reply *rp, struct zbd_action *act)
{
	const Zbusctl__ChannelParams *cp = of->params;
	uint32_t mode = 0600, policy = ZBUS_RELIABLE;
	struct zbus_channel_info info;
	struct zbus_channel *ch;
	struct zbd_channel *c;
	int seals, r;

	if (!zb_ctl_name_valid(of->name) || fds->n != ZB_NFDS) {
		fail(rp, -EINVAL, "offer needs a channel name and the "
		     "channel's two memfds");
		return;
	}
	if (cp) {
		if (cp->max_msg_size || cp->ring_capacity || cp->arena_bytes ||
		    cp->max_subscribers || cp->max_publishers ||
		    cp->unblock_timeout_ms) {
			fail(rp, -EINVAL, "an offered channel's geometry is "
			     "its memfds': leave it 0 in the parameters");
			return;
		}
		mode = cp->mode ? cp->mode : 0600;
		policy = cp->default_policy;
	}
	if ((mode & ~0777u) ||
	    (policy != ZBUS_RELIABLE && policy != ZBUS_LOSSY)) {
		fail(rp, -EINVAL, "invalid channel parameters");
		return;
	}
	if (being_recovered(reg, of->name, rp))
		return;
	if (zbd_registry_find(reg, of->name)) {
		fail(rp, -EEXIST, "channel '%s' exists", of->name);
		return;
	}
	seals = fcntl(fds->fd[ZB_FD_DATA], F_GET_SEALS);
	if (seals >= 0 && !(seals & F_SEAL_FUTURE_WRITE)) {
		fail(rp, -EPERM, "the data memfd of '%s' is not sealed "
		     "against new writers (create it with "
		     "ZBUS_CHANNEL_SEAL_WRITERS)", of->name);
		return;
	}
	r = zbus_channel_attach_dup(fds->fd[ZB_FD_DATA],
				    fds->fd[ZB_FD_STATE], &ch);
	if (r < 0) {
		fail(rp, r, "cannot take channel '%s': %s", of->name,
		     zbus_strerror(r));
		return;
	}
	zbus_channel_info(ch, &info);
	if (!within_quota(reg, p, info.segment_bytes + info.state_bytes, rp)) {
		zbus_channel_free(ch);
		return;
	}
	r = zbd_registry_add_sealed(reg, of->name, ch, mode, policy, &p->who,
				    &c);
	if (r < 0) {
		zbus_channel_free(ch);
		fail(rp, r, "cannot register channel '%s': %s", of->name,
		     zbus_strerror(r));
		return;
	}
	zbd_log("client %llu (uid %u) offered sealed channel '%s' (%llu "
		"bytes, mode %03o)", p->id, (unsigned)p->who.uid, c->name,
		(unsigned long long)c->info.segment_bytes, c->mode);
	act->changed = 1;
	fill_info(c, rp);
}

static void do_delete(struct zbd_registry *reg, struct zbd_client *p,
		      const Zbusctl__Delete *del, struct reply *rp,
		      struct zbd_action *act)
{
	struct zbd_channel *c = zb_ctl_name_valid(del->name) ?
		zbd_registry_find(reg, del->name) : NULL;

	if (!c) {
		fail(rp, -ENOENT, "no channel '%s'",
		     del->name ? del->name : "");
		return;
	}
	if (!zbd_owns(c, &p->who)) {
		fail(rp, -EPERM, "only its owner (uid %u) or root may delete "
		     "channel '%s'", (unsigned)c->owner_uid, c->name);
		return;
	}
	zbd_log("client %llu (uid %u) deleted channel '%s'", p->id,
		(unsigned)p->who.uid, c->name);
	zbd_registry_remove(reg, c);
	act->changed = 1;
}

/*
 * A page of the list, from @offset, as many channels as fit one record
 * with room to spare. The reply owns an array of infos built here and
 * freed by the caller.
 */
static int do_list(struct zbd_registry *reg, const Zbusctl__List *ls,
		   struct reply *rp, Zbusctl__ChannelInfo ***infos,
		   struct reply **storage)
{
	const size_t budget = ZB_CTL_MAX_RECORD - 1024;
	size_t n = 0, i = 0, used = 0, skip = ls->offset;
	Zbusctl__ChannelInfo **v;
	struct reply *each;

	for (struct zbd_channel *c = reg->head; c; c = c->next)
		n++;
	v = calloc(n ? n : 1, sizeof(*v));
	each = calloc(n ? n : 1, sizeof(*each));
	if (!v || !each) {
		free(v);
		free(each);
		fail(rp, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	for (struct zbd_channel *c = reg->head; c; c = c->next) {
		size_t sz;

		if (skip) {
			skip--;
			continue;
		}
		fill_info(c, &each[i]);
		/* An entry costs its packed size plus a tag and length. */
		sz = protobuf_c_message_get_packed_size(&each[i].info.base) +
		     8;
		if (used + sz > budget)
			break;
		used += sz;
		v[i] = &each[i].info;
		i++;
	}
	zbusctl__list_reply__init(&rp->list);
	rp->list.n_channel = i;
	rp->list.channel = v;
	rp->list.total = (uint32_t)n;
	rp->r.body_case = ZBUSCTL__REPLY__BODY_LIST;
	rp->r.list = &rp->list;
	*infos = v;
	*storage = each;
	return 0;
}

void zbd_client_proc(struct zbd_client *c)
{
	if (c->proc_known)
		return;
	c->proc_known = 1;
	c->inner_pid = c->pid;
	(void)zbd_proc_inner_pid(c->pid, &c->inner_pid);
	if (zbd_proc_start_time(c->pid, &c->start_time) < 0)
		c->start_time = 0;
}

/* The state word slot @slot (of @kind) of @c holds now (0 out of range). */
static uint32_t word_of(const struct zbd_channel *c, enum zbd_watch_kind kind,
			uint32_t slot)
{
	return kind == ZBD_WATCH_PUB ? zb_live_pub_word(c->ch, slot) :
				       zb_live_slot_word(c->ch, slot);
}

/* Does slot @slot (of @kind) of @c hold @word, an active one? */
static int slot_holds(const struct zbd_channel *c, enum zbd_watch_kind kind,
		      uint32_t slot, uint32_t word)
{
	return word_of(c, kind, slot) == word &&
	       (word & ZB_SLOT_STATE_MASK) == ZB_SLOT_ACTIVE;
}

static void fail_stale(struct reply *rp, const struct zbd_channel *c,
		       enum zbd_watch_kind kind, uint32_t slot)
{
	int pub = kind == ZBD_WATCH_PUB;

	fail(rp, -ESTALE, "%s slot %u of '%s' does not hold that %s",
	     pub ? "publisher" : "subscriber", slot, c->name,
	     pub ? "publisher" : "subscription");
}

/*
 * Subscribe and RegisterPublisher: watch the asking process and, when it
 * dies, free slot @slot (subscriber or publisher, per @kind) if it still
 * holds @word. Only someone who may subscribe (publish) may ask, and only
 * for a slot that holds that word now.
 */
static void do_watch(struct zbd_registry *reg, struct zbd_client *p,
		     enum zbd_watch_kind kind, const char *name, uint32_t slot,
		     uint32_t word, uint64_t ref_table, struct reply *rp,
		     struct zbd_action *act)
{
	struct zbd_channel *c = zb_ctl_name_valid(name) ?
		zbd_registry_find(reg, name) : NULL;
	int pub = kind == ZBD_WATCH_PUB;
	uint32_t holder;

	if (!c) {
		fail(rp, -ENOENT, "no channel '%s'", name ? name : "");
		return;
	}
	if (!zbd_may(c, &p->who,
		     pub ? ZBUS_ACCESS_PUBLISH : ZBUS_ACCESS_SUBSCRIBE)) {
		fail(rp, -EACCES, "uid %u may not %s channel '%s'",
		     (unsigned)p->who.uid, pub ? "publish to" : "subscribe to",
		     c->name);
		return;
	}
	if (!slot_holds(c, kind, slot, word)) {
		fail_stale(rp, c, kind, slot);
		return;
	}
	/* The broker will watch the asking process: the slot must say it is
	 * that process's, else its death would free another's slot. */
	holder = pub ? zb_live_pub_pid(c->ch, slot) :
		       zb_live_slot_pid(c->ch, slot);
	if (holder != (uint32_t)p->pid)
		zbd_client_proc(p); /* in a pid namespace of its own? */
	if (holder != (uint32_t)p->pid && holder != (uint32_t)p->inner_pid) {
		fail(rp, -EPERM, "%s slot %u of '%s' belongs to pid %u, not "
		     "to the process that connected (pid %d): each process "
		     "registers its own", pub ? "publisher" : "subscriber",
		     slot, c->name, holder, (int)p->pid);
		return;
	}
	act->watch = kind;
	act->channel_id = c->id;
	snprintf(act->name, sizeof(act->name), "%s", c->name);
	act->slot = slot;
	act->word = word;
	act->ref_table = pub ? ref_table : 0;
}

/*
 * Pull: check all the broker can on its own mapping (the right to
 * subscribe, a message by reference still in the ring, the range, a
 * registered publisher that gave a table); the event loop then copies,
 * checking the publisher's table (pull.c).
 */
static void do_pull(struct zbd_registry *reg, struct zbd_client *p,
		    const Zbusctl__Pull *pl, struct reply *rp,
		    struct zbd_action *act)
{
	struct zbd_channel *c = zb_ctl_name_valid(pl->name) ?
		zbd_registry_find(reg, pl->name) : NULL;
	const struct zbd_watch *w;
	struct zb_ref ref;
	int r;

	if (!c) {
		fail(rp, -ENOENT, "no channel '%s'", pl->name ? pl->name : "");
		return;
	}
	if (!zbd_may(c, &p->who, ZBUS_ACCESS_SUBSCRIBE)) {
		fail(rp, -EACCES, "uid %u may not subscribe to channel '%s'",
		     (unsigned)p->who.uid, c->name);
		return;
	}
	if (pl->length > ZB_CTL_MAX_PULL) {
		fail(rp, -EINVAL, "at most %u bytes per pull", ZB_CTL_MAX_PULL);
		return;
	}
	r = zb_live_ref(c->ch, pl->seq, &ref);
	if (r < 0) {
		fail(rp, r == -ENOENT ? -ESTALE : r, "message %llu of '%s' %s",
		     (unsigned long long)pl->seq, c->name,
		     r == -ENOENT ? "is not in the ring (any more)" :
		     r == -EINVAL ? "is not a message by reference" :
				    "has a corrupt reference");
		return;
	}
	if (pl->offset > ref.length || pl->length > ref.length - pl->offset) {
		fail(rp, -EINVAL, "bytes %llu..%llu are beyond message %llu "
		     "(%llu bytes)", (unsigned long long)pl->offset,
		     (unsigned long long)(pl->offset + pl->length),
		     (unsigned long long)pl->seq,
		     (unsigned long long)ref.length);
		return;
	}
	w = zbd_watch_vouching(reg->watches, c->id, ref.slot, ref.word);
	if (!w || zb_live_pub_word(c->ch, ref.slot) != ref.word) {
		fail(rp, -ESRCH, "the publisher of message %llu of '%s' is "
		     "gone or did not register with the broker "
		     "(zbus_conn_register_pub): the broker pulls only what a "
		     "publisher vouches for", (unsigned long long)pl->seq,
		     c->name);
		return;
	}
	act->has_pull = 1;
	act->pull = (struct zbd_pull){
		.channel_id = c->id,
		.slot = ref.slot,
		.word = ref.word,
		.ref_table = w->ref_table,
		.seq = pl->seq,
		.ref_addr = ref.addr,
		.ref_length = ref.length,
		.offset = pl->offset,
		.length = pl->length,
		.dest = pl->dest,
	};
}

/* The fds a delivery comes with: a Unix seqpacket socket, an eventfd. */
static int is_seqpacket(int fd)
{
	int type = 0, domain = 0;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return 0;
	len = sizeof(domain);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return 0;
	return type == SOCK_SEQPACKET && domain == AF_UNIX;
}

static int is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = 0;
	return strcmp(target, "anon_inode:[eventfd]") == 0 &&
	       (fcntl(fd, F_GETFL) & O_NONBLOCK);
}

/*
 * SubscribeDelivered: the right to subscribe (read, or the execute bit
 * that gives no segment), a policy, a delivery ring that is a power of
 * two at an aligned address, and the two fds it must come with. The
 * event loop subscribes and starts delivering (delivery.h).
 */
static void do_deliver(struct zbd_registry *reg, struct zbd_client *p,
		       const Zbusctl__SubscribeDelivered *sd,
		       const struct zb_fds *fds, struct reply *rp,
		       struct zbd_action *act)
{
	struct zbd_channel *c = zb_ctl_name_valid(sd->name) ?
		zbd_registry_find(reg, sd->name) : NULL;
	struct zbd_delivery_req *q = &act->delivery;

	if (!c) {
		fail(rp, -ENOENT, "no channel '%s'", sd->name ? sd->name : "");
		return;
	}
	if (!zbd_may(c, &p->who, ZBD_ACCESS_DELIVERED)) {
		fail(rp, -EACCES, "uid %u may not subscribe to channel '%s'",
		     (unsigned)p->who.uid, c->name);
		return;
	}
	if (sd->policy != ZBUS_RELIABLE && sd->policy != ZBUS_LOSSY) {
		fail(rp, -EINVAL, "unknown policy %u", sd->policy);
		return;
	}
	if (sd->rx_bytes < ZB_RX_MIN_BYTES || sd->rx_bytes > ZB_RX_MAX_BYTES ||
	    (sd->rx_bytes & (sd->rx_bytes - 1)) || !sd->rx_addr ||
	    sd->rx_addr % ZB_RX_ALIGN ||
	    sd->rx_addr > UINT64_MAX - sd->rx_bytes) {
		fail(rp, -EINVAL, "a delivery ring is a power of two of %u "
		     "to %u bytes at a %u-byte aligned address",
		     ZB_RX_MIN_BYTES, ZB_RX_MAX_BYTES, ZB_RX_ALIGN);
		return;
	}
	if (fds->n != 2 || !is_seqpacket(fds->fd[0]) ||
	    !is_eventfd(fds->fd[1])) {
		fail(rp, -EINVAL, "a delivery comes with a Unix seqpacket "
		     "socket and a non-blocking eventfd");
		return;
	}
	q->sock = fcntl(fds->fd[0], F_DUPFD_CLOEXEC, 0);
	q->efd = q->sock < 0 ? -1 : fcntl(fds->fd[1], F_DUPFD_CLOEXEC, 0);
	if (q->efd < 0) {
		if (q->sock >= 0)
			close(q->sock);
		fail(rp, -errno, "cannot keep the delivery's fds: %s",
		     strerror(errno));
		return;
	}
	q->channel_id = c->id;
	snprintf(q->name, sizeof(q->name), "%s", c->name);
	q->policy = sd->policy;
	q->rx_addr = sd->rx_addr;
	q->rx_bytes = sd->rx_bytes;
	act->has_delivery = 1;
	fill_info(c, rp);
}

/*
 * Unsubscribe and UnregisterPublisher: forget the asker's watches of slot
 * @slot holding @word (the event loop drops them) and free the slot if it
 * still holds @word. A watch is the asker's when its connection or its
 * uid registered it; the slot is not someone else's to free otherwise.
 */
static void do_unwatch(struct zbd_registry *reg, struct zbd_client *p,
		       enum zbd_watch_kind kind, const char *name,
		       uint32_t slot, uint32_t word, struct reply *rp,
		       struct zbd_action *act)
{
	struct zbd_channel *c = zb_ctl_name_valid(name) ?
		zbd_registry_find(reg, name) : NULL;
	const char *what = kind == ZBD_WATCH_PUB ? "publisher" : "subscriber";
	struct zbd_watch *any, *w;

	if (!c) {
		fail(rp, -ENOENT, "no channel '%s'", name ? name : "");
		return;
	}
	any = zbd_watch_find(reg->watches, c->id, kind, slot, word);
	for (w = any; w && !zbd_watch_owned(w, p->id, p->who.uid);)
		w = zbd_watch_find(w->next, c->id, kind, slot, word);
	if (!w && any) {
		fail(rp, -EACCES, "uid %u may not unregister %s slot %u of "
		     "'%s': uid %u registered it", (unsigned)p->who.uid, what,
		     slot, c->name, (unsigned)any->uid);
		return;
	}
	if (!w) {
		if (slot_holds(c, kind, slot, word))
			fail(rp, -ENOENT, "%s slot %u of '%s' is not "
			     "registered", what, slot, c->name);
		else
			fail_stale(rp, c, kind, slot);
		return;
	}
	if (zbd_free_slot(c, kind, slot, word) >= 0)
		zbd_log("client %llu (uid %u) unregistered and freed %s slot "
			"%u on '%s'", p->id, (unsigned)p->who.uid, what, slot,
			c->name);
	act->unwatch = kind;
	act->channel_id = c->id;
	act->slot = slot;
	act->word = word;
}

/*
 * Who is behind the slots of @c: for each slot, the uid of a process the
 * broker watches for what the slot holds now (ZBUS_UID_UNKNOWN when none),
 * and after those, for a slot the broker delivers from, the pid of the
 * subscriber it delivers to (0 for any other). One pass over the watches,
 * whatever their number. NULL when out of memory: every uid is then
 * unknown.
 */
static uint32_t *watcher_uids(const struct zbd_registry *reg,
			      const struct zbd_channel *c,
			      enum zbd_watch_kind kind)
{
	int pub = kind == ZBD_WATCH_PUB;
	uint32_t n = pub ? c->info.max_publishers : c->info.max_subscribers;
	/* [0, n): the uids; [n, 2n): a delivery's subscriber pid, or 0. */
	uint32_t *uid = calloc(2 * (size_t)n, sizeof(*uid));

	if (!uid)
		return NULL;
	for (uint32_t i = 0; i < n; i++)
		uid[i] = ZBUS_UID_UNKNOWN;
	for (const struct zbd_watch *w = reg->watches; w; w = w->next) {
		if (w->channel_id != c->id || w->kind != kind ||
		    w->slot >= n || w->word != word_of(c, kind, w->slot))
			continue;
		/* A slot the broker delivers from is shown as the
		 * subscriber's it serves, not as zbusd's own. */
		uid[w->slot] = (uint32_t)(w->for_pid ? w->for_uid : w->uid);
		uid[n + w->slot] = (uint32_t)w->for_pid;
	}
	return uid;
}

/* A delivery's subscriber pid in @uids (watcher_uids()), else @pid. */
static uint32_t pid_at(const uint32_t *uids, uint32_t n, uint32_t slot,
		       uint32_t pid)
{
	return uids && uids[n + slot] ? uids[n + slot] : pid;
}

static uint32_t uid_at(const uint32_t *uids, uint32_t slot)
{
	return uids ? uids[slot] : ZBUS_UID_UNKNOWN;
}

/*
 * The subscribers of @c, for stat: slot, pid and missed (as the
 * subscriber wrote them: informational), policy, lag, and the uid of the
 * process the broker watches for it. Read from the broker's own mapping.
 * One heap block holds the entries and the pointers to them.
 */
static void subscriber_list(const struct zbd_registry *reg,
			    const struct zbd_channel *c, struct reply *rp)
{
	uint32_t *uids = watcher_uids(reg, c, ZBD_WATCH_SUB);
	struct zb_live live;
	Zbusctl__SubscriberInfo *v, **pv;

	zb_live_read(c->ch, &live);
	v = live.subscribers ?
		calloc(live.subscribers, sizeof(*v) + sizeof(*pv)) : NULL;
	if (!v) {
		free(uids);
		return; /* the counts are still there */
	}
	pv = (Zbusctl__SubscriberInfo **)(v + live.subscribers);
	for (uint32_t i = 0; i < live.subscribers; i++) {
		const struct zb_live_sub *ls = &live.sub[i];

		zbusctl__subscriber_info__init(&v[i]);
		v[i].slot = ls->slot;
		v[i].pid = pid_at(uids, c->info.max_subscribers, ls->slot,
				  ls->pid);
		v[i].policy = ls->policy;
		v[i].lag = ls->lag;
		v[i].uid = uid_at(uids, ls->slot);
		v[i].missed = ls->missed;
		v[i].rate = zbd_rate_of(c, ZBD_WATCH_SUB, ls->slot, ls->word);
		pv[i] = &v[i];
	}
	free(uids);
	rp->info.n_subscriber = live.subscribers;
	rp->info.subscriber = pv;
	rp->extra[0] = v;
}

/* The publishers of @c, for stat, as subscriber_list(). */
static void publisher_list(const struct zbd_registry *reg,
			   const struct zbd_channel *c, struct reply *rp)
{
	uint32_t max = c->info.max_publishers, n, *uids;
	struct zb_live_pub *live = malloc(max * sizeof(*live));
	Zbusctl__PublisherInfo *v, **pv;

	n = live ? zb_live_pubs(c->ch, live, max) : 0;
	v = n ? calloc(n, sizeof(*v) + sizeof(*pv)) : NULL;
	if (!v) {
		free(live);
		return;
	}
	uids = watcher_uids(reg, c, ZBD_WATCH_PUB);
	pv = (Zbusctl__PublisherInfo **)(v + n);
	for (uint32_t i = 0; i < n; i++) {
		zbusctl__publisher_info__init(&v[i]);
		v[i].slot = live[i].slot;
		v[i].pid = live[i].pid;
		v[i].uid = uid_at(uids, live[i].slot);
		v[i].published = live[i].published;
		v[i].exclusive = !!(live[i].flags & ZB_PUB_SLOT_EXCLUSIVE);
		v[i].rate = zbd_rate_of(c, ZBD_WATCH_PUB, live[i].slot,
					live[i].word);
		pv[i] = &v[i];
	}
	free(uids);
	free(live);
	rp->info.n_publisher = n;
	rp->info.publisher = pv;
	rp->extra[1] = v;
}

/*
 * A stat of a channel with many slots taken could outgrow a record (up
 * to 1024 publishers and 256 subscribers): drop entries from the end of
 * the lists until it fits. The counts still say how many there are.
 */
static void fit_record(struct reply *rp)
{
	const size_t budget = ZB_CTL_MAX_RECORD - 1024;
	Zbusctl__ChannelInfo *ci = &rp->info;

	while (protobuf_c_message_get_packed_size(&rp->r.base) > budget &&
	       (ci->n_publisher || ci->n_subscriber)) {
		size_t *n = ci->n_publisher ? &ci->n_publisher :
					      &ci->n_subscriber;

		*n = *n > 64 ? *n - 64 : 0;
	}
}

static void do_stat(struct zbd_registry *reg, const Zbusctl__Stat *st,
		    struct reply *rp)
{
	struct zbd_channel *c = zb_ctl_name_valid(st->name) ?
		zbd_registry_find(reg, st->name) : NULL;

	if (!c) {
		fail(rp, -ENOENT, "no channel '%s'", st->name ? st->name : "");
		return;
	}
	fill_info(c, rp);
	subscriber_list(reg, c, rp);
	publisher_list(reg, c, rp);
	fit_record(rp);
}

int zbd_answer(struct zbd_registry *reg, struct zbd_client *p,
	       const uint8_t *rec, size_t len, const struct zb_fds *in,
	       uint8_t **out, size_t *out_len, struct zb_fds *out_fds,
	       struct zbd_action *act)
{
	Zbusctl__ChannelInfo **infos = NULL;
	struct reply *storage = NULL;
	Zbusctl__Request *req;
	struct reply rp;
	size_t n;

	memset(&rp, 0, sizeof(rp));
	memset(act, 0, sizeof(*act));
	zbusctl__reply__init(&rp.r);
	req = zbusctl__request__unpack(NULL, len, rec);
	if (!req) {
		fail(&rp, -EBADMSG, "malformed request (%zu bytes)", len);
	} else {
		rp.r.id = req->id;
		if (!p->said_hello &&
		    req->body_case != ZBUSCTL__REQUEST__BODY_HELLO) {
			fail(&rp, -EPROTO, "say hello first");
		} else {
			switch (req->body_case) {
			case ZBUSCTL__REQUEST__BODY_HELLO:
				do_hello(p, req->hello, &rp);
				break;
			case ZBUSCTL__REQUEST__BODY_CREATE:
				do_create(reg, p, req->create, &rp, act);
				break;
			case ZBUSCTL__REQUEST__BODY_OPEN:
				do_open(reg, p, req->open, &rp);
				break;
			case ZBUSCTL__REQUEST__BODY_DELETE:
				do_delete(reg, p, req->delete_, &rp, act);
				break;
			case ZBUSCTL__REQUEST__BODY_LIST:
				do_list(reg, req->list, &rp, &infos, &storage);
				break;
			case ZBUSCTL__REQUEST__BODY_STAT:
				do_stat(reg, req->stat, &rp);
				break;
			case ZBUSCTL__REQUEST__BODY_SUBSCRIBE:
				do_watch(reg, p, ZBD_WATCH_SUB,
					 req->subscribe->name,
					 req->subscribe->slot,
					 req->subscribe->word, 0, &rp, act);
				break;
			case ZBUSCTL__REQUEST__BODY_ADOPT:
				do_adopt(reg, p, req->adopt, in, &rp, act);
				break;
			case ZBUSCTL__REQUEST__BODY_OFFER:
				do_offer(reg, p, req->offer, in, &rp, act);
				break;
			case ZBUSCTL__REQUEST__BODY_REGISTER_PUBLISHER:
				do_watch(reg, p, ZBD_WATCH_PUB,
					 req->register_publisher->name,
					 req->register_publisher->slot,
					 req->register_publisher->word,
					 req->register_publisher->ref_table,
					 &rp, act);
				break;
			case ZBUSCTL__REQUEST__BODY_PULL:
				do_pull(reg, p, req->pull, &rp, act);
				break;
			case ZBUSCTL__REQUEST__BODY_SUBSCRIBE_DELIVERED:
				do_deliver(reg, p, req->subscribe_delivered,
					   in, &rp, act);
				break;
			case ZBUSCTL__REQUEST__BODY_UNSUBSCRIBE:
				do_unwatch(reg, p, ZBD_WATCH_SUB,
					   req->unsubscribe->name,
					   req->unsubscribe->slot,
					   req->unsubscribe->word, &rp, act);
				break;
			case ZBUSCTL__REQUEST__BODY_UNREGISTER_PUBLISHER:
				do_unwatch(reg, p, ZBD_WATCH_PUB,
					   req->unregister_publisher->name,
					   req->unregister_publisher->slot,
					   req->unregister_publisher->word, &rp,
					   act);
				break;
			default:
				fail(&rp, -EOPNOTSUPP, "unknown request");
				break;
			}
		}
	}
	n = protobuf_c_message_get_packed_size(&rp.r.base);
	*out = n <= ZB_CTL_MAX_RECORD ? malloc(n ? n : 1) : NULL;
	if (*out) {
		protobuf_c_message_pack(&rp.r.base, *out);
		*out_len = n;
		*out_fds = rp.fds;
	}
	free(infos);
	free(storage);
	free(rp.extra[0]);
	free(rp.extra[1]);
	if (req)
		zbusctl__request__free_unpacked(req, NULL);
	return *out ? 0 : -ENOMEM;
}

int zbd_refusal(const struct zbd_client *c, const uint8_t *rec, size_t len,
		int status, const char *message, uint8_t **out,
		size_t *out_len, struct zb_fds *out_fds)
{
	Zbusctl__Request *req = zbusctl__request__unpack(NULL, len, rec);
	Zbusctl__Reply r = ZBUSCTL__REPLY__INIT;

	(void)c;
	if (req) {
		r.id = req->id;
		zbusctl__request__free_unpacked(req, NULL);
	}
	r.status = status;
	r.message = (char *)message;
	*out_len = protobuf_c_message_get_packed_size(&r.base);
	*out = malloc(*out_len ? *out_len : 1);
	if (!*out)
		return -ENOMEM;
	protobuf_c_message_pack(&r.base, *out);
	out_fds->n = 0;
	return 0;
}
