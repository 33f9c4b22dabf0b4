/* SPDX-License-Identifier: MIT */
/*
 * conn.c - the public client of the broker: connect (starting a broker
 * when none answers), create/open/delete/list/stat channels by name.
 *
 * One request at a time per connection, each answered before the next is
 * sent; every wait is bounded by the connection's timeout. A keeper thread
 * reconnects after the broker restarts (reconnect.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "conn.h"
#include "ctl.h"
#include "fdpass.h"
#include "segment.h"
#include "sockpath.h"
#include "pub.h"
#include "sub.h"
#include "util.h"
#include "wait.h"
#include "zbus/zbus.h"

#ifndef ZBUS_BROKER_DEFAULT
#define ZBUS_BROKER_DEFAULT "/usr/local/bin/zbusd"
#endif

#define DEFAULT_TIMEOUT_MS 5000

extern char **environ;

static int autostart_allowed(const struct zbus_conn_opts *o)
{
	const char *env = getenv("ZBUS_NO_AUTOSTART");

	if (o && (o->flags & ZBUS_CONN_NO_AUTOSTART))
		return 0;
	return !(env && *env && strcmp(env, "0"));
}

/*
 * Start "zbusd --socket PATH --background" and wait for it to say it
 * listens (its first process exits once the socket is bound; the broker
 * itself lives on in a new session). Another client starting one at the
 * same moment is fine: the second broker finds a live socket and leaves.
 */
static int start_broker(const char *path, int timeout_ms)
{
	const char *broker = getenv("ZBUS_BROKER");
	char *argv[] = { "zbusd", "--socket", (char *)path, "--background",
			 NULL };
	uint64_t deadline = zb_deadline_ms(timeout_ms);
	pid_t pid;
	int st, r;

	if (!broker || !*broker)
		broker = ZBUS_BROKER_DEFAULT;
	r = posix_spawn(&pid, broker, NULL, NULL, argv, environ);
	if (r)
		return -r;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		/* 0: it listens; 3: another broker already does. */
		if (w == pid)
			return WIFEXITED(st) && (WEXITSTATUS(st) == 0 ||
						 WEXITSTATUS(st) == 3)
				       ? 0 : -ECHILD;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (zb_now_ns() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -ETIMEDOUT;
		}
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
}

/*
 * Connect to a broker just started. Ours listens by the time it reported
 * back, but when two clients start one at once the loser's broker leaves
 * (exit 3) as soon as it sees the winner's lock, possibly before the
 * winner listens: retry, bounded by @timeout_ms.
 */
static int connect_started(const char *path, int timeout_ms)
{
	uint64_t deadline = zb_deadline_ms(timeout_ms);
	int fd;

	for (;;) {
		fd = zb_ctl_connect(path);
		if ((fd != -ENOENT && fd != -ECONNREFUSED) ||
		    zb_now_ns() >= deadline)
			return fd;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
}

/* Wait until @sock is ready for @events, within @deadline. */
static int wait_sock(int sock, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = sock, .events = events };
		int ms = -1, r;

		if (deadline != ZB_NEVER) {
			uint64_t now = zb_now_ns();

			if (now >= deadline)
				return -ETIMEDOUT;
			ms = (int)((deadline - now + 999999) / 1000000);
		}
		r = poll(&p, 1, ms);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int request_locked(struct zbus_conn *c, Zbusctl__Request *req,
			  const struct zb_fds *send, Zbusctl__Reply **rep,
			  struct zb_fds *fds);

int zb_conn_request(struct zbus_conn *c, Zbusctl__Request *req,
		    const struct zb_fds *send, Zbusctl__Reply **rep,
		    struct zb_fds *fds)
{
	int r;

	pthread_mutex_lock(&c->lock);
	r = request_locked(c, req, send, rep, fds);
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* See zb_conn_request(). */
static int request(struct zbus_conn *c, Zbusctl__Request *req,
		   Zbusctl__Reply **rep, struct zb_fds *fds)
{
	return zb_conn_request(c, req, NULL, rep, fds);
}

static int request_locked(struct zbus_conn *c, Zbusctl__Request *req,
			  const struct zb_fds *send, Zbusctl__Reply **rep,
			  struct zb_fds *fds)
{
	uint64_t deadline = zb_deadline_ms(c->timeout_ms);
	struct zb_fds got = { .n = 0, .fd = { -1, -1 } };
	uint8_t *buf;
	ssize_t n;
	int r;
	Zbusctl__Reply *reply;

	c->error[0] = 0;
	if (c->sock < 0) {
		snprintf(c->error, sizeof(c->error), "the broker is gone; "
			 "reconnecting");
		return -ENOTCONN;
	}
	req->id = ++c->next_id;
	for (;;) {
		r = zb_ctl_send(c->sock, &req->base, send);
		if (r != -EAGAIN)
			break;
		r = wait_sock(c->sock, POLLOUT, deadline);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	buf = malloc(ZB_CTL_MAX_RECORD);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		n = zb_fdpass_recv(c->sock, buf, ZB_CTL_MAX_RECORD,
				   fds ? &got : NULL);
		if (n != -EAGAIN)
			break;
		r = wait_sock(c->sock, POLLIN, deadline);
		if (r < 0) {
			free(buf);
			return r;
		}
	}
	if (n <= 0) {
		free(buf);
		return n == 0 ? -ECONNRESET : (int)n;
	}
	reply = zbusctl__reply__unpack(NULL, (size_t)n, buf);
	free(buf);
	if (!reply || reply->id != req->id) {
		if (reply)
			zbusctl__reply__free_unpacked(reply, NULL);
		zb_fds_close(&got);
		snprintf(c->error, sizeof(c->error),
			 "malformed reply from the broker");
		return -EPROTO;
	}
	if (reply->status) {
		r = reply->status < 0 ? reply->status : -EPROTO;
		snprintf(c->error, sizeof(c->error), "%s",
			 reply->message ? reply->message : "");
		zbusctl__reply__free_unpacked(reply, NULL);
		zb_fds_close(&got);
		return r;
	}
	*rep = reply;
	if (fds)
		*fds = got;
	return 0;
}

/* A request whose reply carries nothing but its status. */
static int request_status(struct zbus_conn *c, Zbusctl__Request *req)
{
	Zbusctl__Reply *rep;
	int r = request(c, req, &rep, NULL);

	if (r == 0)
		zbusctl__reply__free_unpacked(rep, NULL);
	return r;
}

/* Stat @name: on success *@rep is a reply that holds a ChannelInfo. */
static int stat_request(struct zbus_conn *c, const char *name,
			Zbusctl__Reply **rep)
{
	Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
	Zbusctl__Stat st = ZBUSCTL__STAT__INIT;
	int r;

	st.name = (char *)name;
	req.body_case = ZBUSCTL__REQUEST__BODY_STAT;
	req.stat = &st;
	r = request(c, &req, rep, NULL);
	if (r == 0 && (*rep)->body_case != ZBUSCTL__REPLY__BODY_CHANNEL) {
		zbusctl__reply__free_unpacked(*rep, NULL);
		r = -EPROTO;
	}
	return r;
}

static int hello(struct zbus_conn *c)
{
	Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
	Zbusctl__Hello h = ZBUSCTL__HELLO__INIT;
	Zbusctl__Reply *rep;
	int r;

	h.version = ZB_CTL_VERSION;
	h.client_name = "libzbus";
	req.body_case = ZBUSCTL__REQUEST__BODY_HELLO;
	req.hello = &h;
	r = request(c, &req, &rep, NULL);
	if (r < 0)
		return r;
	r = rep->body_case == ZBUSCTL__REPLY__BODY_HELLO &&
			    rep->hello->version == ZB_CTL_VERSION ? 0 : -EPROTO;
	zbusctl__reply__free_unpacked(rep, NULL);
	return r;
}

int zb_conn_connect(struct zbus_conn *c)
{
	int r;

	c->sock = zb_ctl_connect(c->path);
	if ((c->sock == -ENOENT || c->sock == -ECONNREFUSED) &&
	    c->autostart) {
		int ms = c->timeout_ms < 0 ? DEFAULT_TIMEOUT_MS : c->timeout_ms;

		r = start_broker(c->path, ms);
		if (r == 0)
			c->sock = connect_started(c->path, ms);
	}
	if (c->sock < 0) {
		r = c->sock;
		c->sock = -1;
		return r;
	}
	r = hello(c);
	if (r < 0) {
		close(c->sock);
		c->sock = -1;
	}
	return r;
}

ZBUS_EXPORT int zbus_conn_open(const struct zbus_conn_opts *opts,
			       struct zbus_conn **out)
{
	pthread_mutexattr_t ma;
	struct zbus_conn *c;
	int r;

	if (!out)
		return -EINVAL;
	if (opts && (opts->reserved[0] || opts->reserved[1] ||
		     opts->reserved[2] || opts->reserved[3] ||
		     (opts->flags & ~(ZBUS_CONN_NO_AUTOSTART |
				      ZBUS_CONN_NO_RECONNECT)) ||
		     opts->timeout_ms < -1))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->sock = -1;
	c->stop_fd = -1;
	c->autostart = autostart_allowed(opts);
	c->timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms
						 : DEFAULT_TIMEOUT_MS;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&c->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	r = zb_socket_path(opts ? opts->socket_path : NULL, c->path,
			   sizeof(c->path));
	if (r == 0)
		r = zb_conn_connect(c);
	if (r == 0 && !(opts && (opts->flags & ZBUS_CONN_NO_RECONNECT)))
		r = zb_keeper_start(c);
	if (r < 0) {
		if (c->sock >= 0)
			close(c->sock);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return r;
	}
	*out = c;
	return 0;
}

ZBUS_EXPORT struct zbus_conn *zbus_conn_free(struct zbus_conn *c)
{
	if (c) {
		zb_keeper_stop(c);
		if (c->sock >= 0)
			close(c->sock);
		zb_conn_release_held(c);
		pthread_mutex_destroy(&c->lock);
		free(c);
	}
	return NULL;
}

ZBUS_EXPORT uint64_t zbus_conn_reconnects(struct zbus_conn *c)
{
	uint64_t n;

	if (!c)
		return 0;
	pthread_mutex_lock(&c->lock);
	n = c->reconnects;
	pthread_mutex_unlock(&c->lock);
	return n;
}

ZBUS_EXPORT const char *zbus_conn_error(const struct zbus_conn *c)
{
	return c ? c->error : "";
}

/* A channel reply: attach the memfds that came with it, and remember them
 * for a broker restart. */
static int attach_reply(struct zbus_conn *c, const char *name,
			Zbusctl__Reply *rep, struct zb_fds *fds,
			struct zbus_channel **out)
{
	int r = -EPROTO;

	if (rep->body_case == ZBUSCTL__REPLY__BODY_CHANNEL &&
	    fds->n == ZB_NFDS)
		r = zbus_channel_attach_dup(fds->fd[ZB_FD_DATA],
					    fds->fd[ZB_FD_STATE], out);
	if (r == 0) {
		snprintf((*out)->name, sizeof((*out)->name), "%s", name);
		zb_conn_hold_channel(c, name, fds);
	}
	zb_fds_close(fds);
	zbusctl__reply__free_unpacked(rep, NULL);
	return r;
}

/* Reserved fields zero, known @flags only, a policy and a mode. */
static int params_valid(const struct zbus_channel_params *p, uint32_t flags)
{
	for (size_t i = 0; i < 4; i++)
		if (p->reserved[i])
			return 0;
	return !(p->flags & ~flags) &&
	       (p->default_policy == ZBUS_RELIABLE ||
		p->default_policy == ZBUS_LOSSY) && !(p->mode & ~0777u);
}

ZBUS_EXPORT int zbus_conn_create(struct zbus_conn *c, const char *name,
				 const struct zbus_channel_params *p,
				 struct zbus_channel **out)
{
	Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
	Zbusctl__Create cr = ZBUSCTL__CREATE__INIT;
	Zbusctl__ChannelParams cp = ZBUSCTL__CHANNEL_PARAMS__INIT;
	struct zbus_channel_params none = { 0 };
	Zbusctl__Reply *rep;
	struct zb_fds fds;
	int r;

	if (!c || !out || !zb_ctl_name_valid(name))
		return -EINVAL;
	if (!p)
		p = &none;
	if (!params_valid(p, ZBUS_CREATE_OPEN_EXISTING))
		return -EINVAL;
	cp.max_msg_size = p->geometry.max_msg_size;
	cp.ring_capacity = p->geometry.ring_capacity;
	cp.arena_bytes = p->geometry.arena_bytes;
	cp.max_subscribers = p->geometry.max_subscribers;
	cp.max_publishers = p->geometry.max_publishers;
	cp.unblock_timeout_ms = p->unblock_timeout_ms;
	cp.default_policy = p->default_policy;
	cp.mode = p->mode ? p->mode : 0600;
	cr.name = (char *)name;
	cr.params = &cp;
	cr.open_existing = !!(p->flags & ZBUS_CREATE_OPEN_EXISTING);
	req.body_case = ZBUSCTL__REQUEST__BODY_CREATE;
	req.create = &cr;
	r = request(c, &req, &rep, &fds);
	return r < 0 ? r : attach_reply(c, name, rep, &fds, out);
}

ZBUS_EXPORT int zbus_conn_open_channel(struct zbus_conn *c, const char *name,
				       uint32_t access,
				       struct zbus_channel **out)
{
	Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
	Zbusctl__Open op = ZBUSCTL__OPEN__INIT;
	Zbusctl__Reply *rep;
	struct zb_fds fds;
	int r;

	if (!c || !out || !zb_ctl_name_valid(name) || !access ||
	    (access & ~(ZBUS_ACCESS_PUBLISH | ZBUS_ACCESS_SUBSCRIBE)))
		return -EINVAL;
	op.name = (char *)name;
	op.access = access;
	req.body_case = ZBUSCTL__REQUEST__BODY_OPEN;
	req.open = &op;
	r = request(c, &req, &rep, &fds);
	return r < 0 ? r : attach_reply(c, name, rep, &fds, out);
}

ZBUS_EXPORT int zbus_conn_offer(struct zbus_conn *c, const char *name,
				const struct zbus_channel_params *p,
				struct zbus_channel *ch)
{
	static const struct zbus_channel_opts no_geometry;
	Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
	Zbusctl__Offer of = ZBUSCTL__OFFER__INIT;
	Zbusctl__ChannelParams cp = ZBUSCTL__CHANNEL_PARAMS__INIT;
	struct zbus_channel_params none = { 0 };
	struct zb_fds fds;
	Zbusctl__Reply *rep;
	int r;

	if (!c || !ch || !zb_ctl_name_valid(name) || !ch->seg.sealed ||
	    !ch->seg.writable)
		return -EINVAL;
	if (!p)
		p = &none;
	/* The memfds carry the geometry; there is nothing to time out. */
	if (!params_valid(p, 0) || p->unblock_timeout_ms ||
	    memcmp(&p->geometry, &no_geometry, sizeof(no_geometry)))
		return -EINVAL;
	cp.default_policy = p->default_policy;
	cp.mode = p->mode ? p->mode : 0600;
	of.name = (char *)name;
	of.params = &cp;
	req.body_case = ZBUSCTL__REQUEST__BODY_OFFER;
	req.offer = &of;
	fds = (struct zb_fds){ .n = ZB_NFDS,
			       .fd = { [ZB_FD_DATA] = ch->seg.fd,
				       [ZB_FD_STATE] = ch->seg.state_fd } };
	r = zb_conn_request(c, &req, &fds, &rep, NULL);
	if (r < 0)
		return r;
	zbusctl__reply__free_unpacked(rep, NULL);
	zb_conn_hold_channel(c, name, &fds);
	return 0;
}

ZBUS_EXPORT int zbus_conn_delete(struct zbus_conn *c, const char *name)
{
	Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
	Zbusctl__Delete del = ZBUSCTL__DELETE__INIT;
	int r;

	if (!c || !zb_ctl_name_valid(name))
		return -EINVAL;
	del.name = (char *)name;
	req.body_case = ZBUSCTL__REQUEST__BODY_DELETE;
	req.delete_ = &del;
	r = request_status(c, &req);
	if (r == 0)
		zb_conn_drop_channel(c, name);
	return r;
}

static void to_stat(const Zbusctl__ChannelInfo *ci,
		    struct zbus_channel_stat *st)
{
	const Zbusctl__ChannelParams *p = ci->params;

	memset(st, 0, sizeof(*st));
	snprintf(st->name, sizeof(st->name), "%s", ci->name ? ci->name : "");
	if (p) {
		st->max_msg_size = p->max_msg_size;
		st->ring_capacity = p->ring_capacity;
		st->max_subscribers = p->max_subscribers;
		st->max_publishers = p->max_publishers;
		st->unblock_timeout_ms = p->unblock_timeout_ms;
		st->mode = p->mode;
		st->arena_bytes = p->arena_bytes;
		st->default_policy = p->default_policy;
	}
	st->segment_bytes = ci->segment_bytes;
	st->published = ci->published;
	st->owner_uid = ci->owner_uid;
	st->owner_gid = ci->owner_gid;
	st->publishers = ci->publishers;
	st->subscribers = ci->subscribers;
	st->reclaimed = ci->reclaimed;
	st->flags = ci->sealed ? ZBUS_CHANNEL_SEAL_WRITERS : 0;
	st->depth = ci->depth;
	st->publish_rate = ci->publish_rate;
}

ZBUS_EXPORT int zbus_conn_list(struct zbus_conn *c,
			       struct zbus_channel_stat **out)
{
	struct zbus_channel_stat *v = NULL;
	size_t n = 0, cap = 0;

	if (!c || !out)
		return -EINVAL;
	/* The broker pages the list: ask from where the last page ended
	 * until we have as many as it says it holds (bounded: a page that
	 * brings nothing new ends it). */
	for (;;) {
		Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
		Zbusctl__List list = ZBUSCTL__LIST__INIT;
		Zbusctl__Reply *rep;
		size_t got, total;
		int r;

		list.offset = (uint32_t)n;
		req.body_case = ZBUSCTL__REQUEST__BODY_LIST;
		req.list = &list;
		r = request(c, &req, &rep, NULL);
		if (r < 0) {
			free(v);
			return r;
		}
		if (rep->body_case != ZBUSCTL__REPLY__BODY_LIST) {
			zbusctl__reply__free_unpacked(rep, NULL);
			free(v);
			return -EPROTO;
		}
		got = rep->list->n_channel;
		total = rep->list->total;
		if (n + got > cap) {
			size_t ncap = n + got > 2 * cap ? n + got : 2 * cap;
			struct zbus_channel_stat *nv =
				realloc(v, (ncap ? ncap : 1) * sizeof(*nv));

			if (!nv) {
				zbusctl__reply__free_unpacked(rep, NULL);
				free(v);
				return -ENOMEM;
			}
			v = nv;
			cap = ncap;
		}
		for (size_t i = 0; i < got; i++)
			to_stat(rep->list->channel[i], &v[n + i]);
		zbusctl__reply__free_unpacked(rep, NULL);
		n += got;
		if (!got || n >= total || n > INT32_MAX)
			break;
	}
	if (!v)
		v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	*out = v;
	return (int)n;
}

ZBUS_EXPORT int zbus_conn_stat(struct zbus_conn *c, const char *name,
			       struct zbus_channel_stat *out)
{
	Zbusctl__Reply *rep;
	int r;

	if (!c || !out || !zb_ctl_name_valid(name))
		return -EINVAL;
	r = stat_request(c, name, &rep);
	if (r < 0)
		return r;
	to_stat(rep->channel, out);
	zbusctl__reply__free_unpacked(rep, NULL);
	return 0;
}

/* Fill the (name, slot, word) of one of the four watch requests. */
#define SLOT_BODY(msg, case_, field)                                          \
	do {                                                                  \
		(msg).name = (char *)name;                                    \
		(msg).slot = slot;                                            \
		(msg).word = word;                                            \
		req.body_case = ZBUSCTL__REQUEST__BODY_##case_;               \
		req.field = &(msg);                                           \
	} while (0)

int zb_conn_watch(struct zbus_conn *c, enum zb_watch_kind kind, int undo,
		  const char *name, uint32_t slot, uint32_t word,
		  uint64_t ref_table)
{
	Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
	Zbusctl__Subscribe sb = ZBUSCTL__SUBSCRIBE__INIT;
	Zbusctl__RegisterPublisher rp = ZBUSCTL__REGISTER_PUBLISHER__INIT;
	Zbusctl__Unsubscribe us = ZBUSCTL__UNSUBSCRIBE__INIT;
	Zbusctl__UnregisterPublisher up = ZBUSCTL__UNREGISTER_PUBLISHER__INIT;

	if (kind == ZB_WATCH_SUB && !undo)
		SLOT_BODY(sb, SUBSCRIBE, subscribe);
	else if (kind == ZB_WATCH_SUB)
		SLOT_BODY(us, UNSUBSCRIBE, unsubscribe);
	else if (!undo) {
		SLOT_BODY(rp, REGISTER_PUBLISHER, register_publisher);
		rp.ref_table = ref_table;
	}
	else
		SLOT_BODY(up, UNREGISTER_PUBLISHER, unregister_publisher);
	return request_status(c, &req);
}

#undef SLOT_BODY

/*
 * Register a watch and remember it for a broker restart; or, with @undo,
 * forget it (whatever the broker answers: the one asking is done with it,
 * and the keeper must not register it again) and have the broker forget
 * it and free the slot.
 */
static int watch_slot(struct zbus_conn *c, enum zb_watch_kind kind, int undo,
		      const char *name, uint32_t slot, uint32_t word,
		      uint64_t ref_table)
{
	int r;

	if (undo)
		zb_conn_drop_watch(c, kind, name, slot, word);
	r = zb_conn_watch(c, kind, undo, name, slot, word, ref_table);
	if (r == 0 && !undo)
		zb_conn_hold_watch(c, kind, name, slot, word, ref_table);
	return r;
}

static int watch_sub(struct zbus_conn *c, const char *name,
		     const struct zbus_sub *sub, int undo)
{
	uint32_t slot, word;

	if (!c || !sub || !zb_ctl_name_valid(name))
		return -EINVAL;
	if (zb_sub_is_delivered(sub))
		return -EINVAL; /* the broker's own: nothing of ours to watch */
	zb_sub_identity(sub, &slot, &word);
	return watch_slot(c, ZB_WATCH_SUB, undo, name, slot, word, 0);
}

static int watch_pub(struct zbus_conn *c, const char *name,
		     const struct zbus_pub *pub, int undo)
{
	uint32_t slot, word;
	uint64_t table;

	if (!c || !pub || !zb_ctl_name_valid(name))
		return -EINVAL;
	zb_pub_identity(pub, &slot, &word, &table);
	return watch_slot(c, ZB_WATCH_PUB, undo, name, slot, word, table);
}

int zb_conn_pull(struct zbus_conn *c, const char *name, uint64_t seq,
		 uint64_t offset, void *dst, size_t len)
{
	Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
	Zbusctl__Pull pl = ZBUSCTL__PULL__INIT;
	size_t done = 0;

	pl.name = (char *)name;
	pl.seq = seq;
	req.body_case = ZBUSCTL__REQUEST__BODY_PULL;
	req.pull = &pl;
	/* In pieces: the broker copies a piece per request, so that one big
	 * message never holds it up for everyone else. */
	while (done < len) {
		size_t n = len - done < ZB_CTL_MAX_PULL ? len - done :
							 ZB_CTL_MAX_PULL;
		int r;

		pl.offset = offset + done;
		pl.length = n;
		pl.dest = (uint64_t)(uintptr_t)((uint8_t *)dst + done);
		r = request_status(c, &req);
		if (r < 0)
			return r;
		done += n;
	}
	return 0;
}

ZBUS_EXPORT int zbus_conn_register_sub(struct zbus_conn *c, const char *name,
				       const struct zbus_sub *sub)
{
	return watch_sub(c, name, sub, 0);
}

ZBUS_EXPORT int zbus_conn_register_pub(struct zbus_conn *c, const char *name,
				       const struct zbus_pub *pub)
{
	return watch_pub(c, name, pub, 0);
}

ZBUS_EXPORT int zbus_conn_unregister_sub(struct zbus_conn *c,
					 const char *name,
					 const struct zbus_sub *sub)
{
	return watch_sub(c, name, sub, 1);
}

ZBUS_EXPORT int zbus_conn_unregister_pub(struct zbus_conn *c,
					 const char *name,
					 const struct zbus_pub *pub)
{
	return watch_pub(c, name, pub, 1);
}

/*
 * Stat @name and have @fill turn the entries of one of its lists (@count
 * of them) into a malloc()ed array of @each-byte elements.
 * Return: the array (NULL when none, or on failure); *@n: the number of
 * entries, or -errno.
 */
static void *stat_list(struct zbus_conn *c, const char *name, size_t each,
		       size_t (*count)(const Zbusctl__ChannelInfo *),
		       void (*fill)(const Zbusctl__ChannelInfo *, void *),
		       int *n)
{
	Zbusctl__Reply *rep;
	void *v = NULL;
	size_t k;

	*n = !c || !zb_ctl_name_valid(name) ? -EINVAL :
					      stat_request(c, name, &rep);
	if (*n < 0)
		return NULL;
	k = count(rep->channel);
	if (k && !(v = calloc(k, each)))
		*n = -ENOMEM;
	else if (k)
		fill(rep->channel, v);
	if (*n == 0)
		*n = (int)k;
	zbusctl__reply__free_unpacked(rep, NULL);
	return v;
}

static size_t count_subs(const Zbusctl__ChannelInfo *ci)
{
	return ci->n_subscriber;
}

static void fill_subs(const Zbusctl__ChannelInfo *ci, void *out)
{
	struct zbus_sub_stat *v = out;

	for (size_t i = 0; i < ci->n_subscriber; i++) {
		const Zbusctl__SubscriberInfo *si = ci->subscriber[i];

		v[i].slot = si->slot;
		v[i].pid = si->pid;
		v[i].policy = si->policy;
		v[i].uid = si->uid;
		v[i].lag = si->lag;
		v[i].missed = si->missed;
		v[i].rate = si->rate;
	}
}

static size_t count_pubs(const Zbusctl__ChannelInfo *ci)
{
	return ci->n_publisher;
}

static void fill_pubs(const Zbusctl__ChannelInfo *ci, void *out)
{
	struct zbus_pub_stat *v = out;

	for (size_t i = 0; i < ci->n_publisher; i++) {
		const Zbusctl__PublisherInfo *pi = ci->publisher[i];

		v[i].slot = pi->slot;
		v[i].pid = pi->pid;
		v[i].uid = pi->uid;
		v[i].flags = pi->exclusive ? ZBUS_PUB_EXCLUSIVE : 0;
		v[i].published = pi->published;
		v[i].rate = pi->rate;
	}
}

ZBUS_EXPORT int zbus_conn_subscribers(struct zbus_conn *c, const char *name,
				      struct zbus_sub_stat **out)
{
	int n = -EINVAL;

	if (out)
		*out = stat_list(c, name, sizeof(**out), count_subs,
				 fill_subs, &n);
	return n;
}

ZBUS_EXPORT int zbus_conn_publishers(struct zbus_conn *c, const char *name,
				     struct zbus_pub_stat **out)
{
	int n = -EINVAL;

	if (out)
		*out = stat_list(c, name, sizeof(**out), count_pubs,
				 fill_pubs, &n);
	return n;
}
