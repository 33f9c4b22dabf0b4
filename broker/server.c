/* SPDX-License-Identifier: MIT */
/*
 * server.c - the broker's event loop.
 *
 * Single-threaded epoll. Each client is a SOCK_SEQPACKET connection whose
 * identity is fixed at accept: SO_PEERCRED, its supplementary groups, and
 * a pidfd (SO_PEERPIDFD, else pidfd_open of the credential's pid) that
 * becomes readable when it dies. Identities claimed inside requests are
 * never looked at.
 *
 * Nothing a client does can stall the others: requests are served a few
 * at a time per client per turn, replies are sent without blocking and a
 * client whose socket is full (it does not read) is disconnected, an
 * oversized record disconnects its sender, and a malformed one gets an
 * error reply. Fds that arrive unasked are closed on receipt.
 */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ctl.h"
#include "fdpass.h"
#include "live.h"
#include "log.h"
#include "segment.h"

#define ZBD_STR_(x) #x
#define ZBD_STR(x) ZBD_STR_(x)
#define ZBD_VERSION ZBD_STR(ZBUS_VERSION_MAJOR) "." ZBD_STR(ZBUS_VERSION_MINOR)

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

enum watch_kind { W_LISTEN, W_SIGNAL, W_PEER, W_PIDFD };

struct watch {
	enum watch_kind kind;
	struct zbd_peer *peer;
};

struct zbd_peer {
	unsigned long long id;
	int fd;
	int pidfd;
	pid_t pid;
	struct zbd_identity who;
	int said_hello;
	struct watch sock_watch, pid_watch;
	struct zbd_peer *next;
};

static struct watch listen_watch = { W_LISTEN, NULL };
static struct watch signal_watch = { W_SIGNAL, NULL };

static int watch_add(struct zbd_server *s, int fd, struct watch *w)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = w };

	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int zbd_server_init(struct zbd_server *s, int listen_fd)
{
	sigset_t set;
	int r;

	memset(s, 0, sizeof(*s));
	s->listen_fd = listen_fd;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0)
		return -errno;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->sig_fd < 0)
		return -errno;
	r = watch_add(s, listen_fd, &listen_watch);
	if (!r)
		r = watch_add(s, s->sig_fd, &signal_watch);
	return r;
}

static size_t peers_of_uid(const struct zbd_server *s, uid_t uid)
{
	size_t n = 0;

	for (const struct zbd_peer *p = s->peers; p; p = p->next)
		n += p->who.uid == uid;
	return n;
}

static void drop_peer(struct zbd_server *s, struct zbd_peer *p,
		      const char *why)
{
	zbd_log("client %llu (pid %d uid %u) %s", p->id, (int)p->pid,
		(unsigned)p->who.uid, why);
	for (struct zbd_peer **pp = &s->peers; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	s->npeers--;
	close(p->fd); /* also leaves the epoll set */
	if (p->pidfd >= 0)
		close(p->pidfd);
	free(p);
}

/* The identity of a new connection, from the kernel only. */
static int identify(struct zbd_peer *p)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t groups[64];
	socklen_t glen = sizeof(groups);

	if (getsockopt(p->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	p->pid = cred.pid;
	p->who.uid = cred.uid;
	p->who.gid = cred.gid;
	if (getsockopt(p->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0) {
		p->who.ngroups = (int)(glen / sizeof(gid_t));
		memcpy(p->who.groups, groups, glen);
	}
	/* The pidfd pins the process that connected: never a bare pid. */
	len = sizeof(p->pidfd);
	if (getsockopt(p->fd, SOL_SOCKET, SO_PEERPIDFD, &p->pidfd, &len) < 0)
		p->pidfd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
	return 0;
}

static void accept_peers(struct zbd_server *s)
{
	for (int i = 0; i < 64; i++) {
		struct zbd_peer *p;
		int fd = accept4(s->listen_fd, NULL, NULL,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0)
			return; /* EAGAIN, or a transient error: next turn */
		p = calloc(1, sizeof(*p));
		if (!p) {
			close(fd);
			continue;
		}
		p->fd = fd;
		p->pidfd = -1;
		p->id = ++s->next_peer_id;
		if (identify(p) < 0 || s->npeers >= ZBD_MAX_PEERS ||
		    peers_of_uid(s, p->who.uid) >= ZBD_MAX_PEERS_PER_UID) {
			zbd_log("refused a connection (pid %d uid %u): %s",
				(int)p->pid, (unsigned)p->who.uid,
				s->npeers >= ZBD_MAX_PEERS ? "too many clients"
				: "identity or per-user connection quota");
			close(fd);
			if (p->pidfd >= 0)
				close(p->pidfd);
			free(p);
			continue;
		}
		p->sock_watch = (struct watch){ W_PEER, p };
		p->pid_watch = (struct watch){ W_PIDFD, p };
		if (watch_add(s, fd, &p->sock_watch) < 0 ||
		    (p->pidfd >= 0 && watch_add(s, p->pidfd, &p->pid_watch) < 0)) {
			close(fd);
			if (p->pidfd >= 0)
				close(p->pidfd);
			free(p);
			continue;
		}
		p->next = s->peers;
		s->peers = p;
		s->npeers++;
		zbd_log("client %llu connected: pid %d uid %u gid %u", p->id,
			(int)p->pid, (unsigned)p->who.uid,
			(unsigned)p->who.gid);
	}
}

/* --- replies ------------------------------------------------------------ */

struct reply {
	Zbusctl__Reply r;
	char msg[320];
	int fd; /* sent with the reply, not owned */
	Zbusctl__HelloReply hello;
	Zbusctl__ChannelInfo info;
	Zbusctl__ChannelParams params;
	Zbusctl__ListReply list;
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
	rp->r.body_case = ZBUSCTL__REPLY__BODY_CHANNEL;
	rp->r.channel = ci;
}

/* --- requests ----------------------------------------------------------- */

static void do_hello(struct zbd_peer *p, const Zbusctl__Hello *h,
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

static void do_open_existing(struct zbd_peer *p, struct zbd_channel *c,
			     uint32_t access, struct reply *rp)
{
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
	rp->fd = zbus_channel_fd(c->ch);
}

static void do_create(struct zbd_server *s, struct zbd_peer *p,
		      const Zbusctl__Create *cr, struct reply *rp)
{
	const Zbusctl__ChannelParams *cp = cr->params;
	struct zbus_channel_opts o = { 0 };
	uint32_t mode = 0600, policy = ZBUS_RELIABLE;
	uint64_t owned_bytes = 0;
	struct zbd_channel *c;
	struct zb_geometry g;
	int r;

	if (!zb_ctl_name_valid(cr->name)) {
		fail(rp, -EINVAL, "invalid channel name (1..255 printable "
		     "characters, no spaces)");
		return;
	}
	c = zbd_registry_find(&s->reg, cr->name);
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
		mode = cp->mode ? cp->mode : 0600;
		policy = cp->default_policy;
	}
	if ((mode & ~0777u) ||
	    (policy != ZBUS_RELIABLE && policy != ZBUS_LOSSY) ||
	    zb_geometry_from_opts(&o, &g) < 0) {
		fail(rp, -EINVAL, "invalid channel parameters");
		return;
	}
	for (struct zbd_channel *x = s->reg.head; x; x = x->next)
		if (x->owner_uid == p->who.uid)
			owned_bytes += x->info.segment_bytes;
	if (s->reg.count >= ZBD_MAX_CHANNELS ||
	    zbd_registry_count_owned(&s->reg, p->who.uid) >=
		    ZBD_MAX_CHANNELS_PER_UID ||
	    owned_bytes + g.segment_size > ZBD_MAX_BYTES_PER_UID) {
		fail(rp, -EDQUOT, "quota exhausted for uid %u: at most %u "
		     "channels and %llu GiB of segments per user, %u channels "
		     "in all", (unsigned)p->who.uid, ZBD_MAX_CHANNELS_PER_UID,
		     ZBD_MAX_BYTES_PER_UID >> 30, ZBD_MAX_CHANNELS);
		return;
	}
	r = zbd_registry_create(&s->reg, cr->name, &o, mode, policy, &p->who,
				&c);
	if (r < 0) {
		fail(rp, r, "cannot create channel '%s': %s", cr->name,
		     zbus_strerror(r));
		return;
	}
	zbd_log("client %llu (uid %u) created channel '%s' (%llu bytes, mode "
		"%03o)", p->id, (unsigned)p->who.uid, c->name,
		(unsigned long long)c->info.segment_bytes, c->mode);
	fill_info(c, rp);
	rp->fd = zbus_channel_fd(c->ch);
}

static void do_open(struct zbd_server *s, struct zbd_peer *p,
		    const Zbusctl__Open *op, struct reply *rp)
{
	struct zbd_channel *c;

	if (!zb_ctl_name_valid(op->name) || !op->access ||
	    (op->access & ~(ZBUS_ACCESS_PUBLISH | ZBUS_ACCESS_SUBSCRIBE))) {
		fail(rp, -EINVAL, "invalid channel name or access");
		return;
	}
	c = zbd_registry_find(&s->reg, op->name);
	if (!c) {
		fail(rp, -ENOENT, "no channel '%s'", op->name);
		return;
	}
	do_open_existing(p, c, op->access, rp);
}

static void do_delete(struct zbd_server *s, struct zbd_peer *p,
		      const Zbusctl__Delete *del, struct reply *rp)
{
	struct zbd_channel *c = zb_ctl_name_valid(del->name) ?
		zbd_registry_find(&s->reg, del->name) : NULL;

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
	zbd_registry_remove(&s->reg, c);
}

/* A list reply owns an array of infos: built here, freed by the caller. */
static int do_list(struct zbd_server *s, struct reply *rp,
		   Zbusctl__ChannelInfo ***infos, struct reply **storage)
{
	size_t n = 0, i = 0;
	Zbusctl__ChannelInfo **v;
	struct reply *each;

	for (struct zbd_channel *c = s->reg.head; c; c = c->next)
		n++;
	v = calloc(n ? n : 1, sizeof(*v));
	each = calloc(n ? n : 1, sizeof(*each));
	if (!v || !each) {
		free(v);
		free(each);
		fail(rp, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	for (struct zbd_channel *c = s->reg.head; c; c = c->next, i++) {
		fill_info(c, &each[i]);
		v[i] = &each[i].info;
	}
	zbusctl__list_reply__init(&rp->list);
	rp->list.n_channel = n;
	rp->list.channel = v;
	rp->r.body_case = ZBUSCTL__REPLY__BODY_LIST;
	rp->r.list = &rp->list;
	*infos = v;
	*storage = each;
	return 0;
}

static void do_stat(struct zbd_server *s, const Zbusctl__Stat *st,
		    struct reply *rp)
{
	struct zbd_channel *c = zb_ctl_name_valid(st->name) ?
		zbd_registry_find(&s->reg, st->name) : NULL;

	if (!c) {
		fail(rp, -ENOENT, "no channel '%s'", st->name ? st->name : "");
		return;
	}
	fill_info(c, rp);
}

/*
 * Serve one record from @p. Return: 0 to go on; -1 when the peer must be
 * dropped (gone, oversized record, or a reply it does not read).
 */
static int serve_one(struct zbd_server *s, struct zbd_peer *p, uint8_t *buf)
{
	Zbusctl__ChannelInfo **infos = NULL;
	struct reply *storage = NULL;
	Zbusctl__Request *req;
	struct reply rp;
	ssize_t n;
	int r;

	n = zb_fdpass_recv(p->fd, buf, ZB_CTL_MAX_RECORD, NULL);
	if (n == -EAGAIN)
		return 1;
	if (n <= 0) {
		drop_peer(s, p, n == 0 ? "disconnected" :
				n == -EMSGSIZE ? "sent an oversized record" :
						 "failed");
		return -1;
	}
	memset(&rp, 0, sizeof(rp));
	zbusctl__reply__init(&rp.r);
	rp.fd = -1;
	req = zbusctl__request__unpack(NULL, (size_t)n, buf);
	if (!req) {
		fail(&rp, -EBADMSG, "malformed request (%zd bytes)", n);
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
				do_create(s, p, req->create, &rp);
				break;
			case ZBUSCTL__REQUEST__BODY_OPEN:
				do_open(s, p, req->open, &rp);
				break;
			case ZBUSCTL__REQUEST__BODY_DELETE:
				do_delete(s, p, req->delete_, &rp);
				break;
			case ZBUSCTL__REQUEST__BODY_LIST:
				do_list(s, &rp, &infos, &storage);
				break;
			case ZBUSCTL__REQUEST__BODY_STAT:
				do_stat(s, req->stat, &rp);
				break;
			default:
				fail(&rp, -EOPNOTSUPP, "unknown request");
				break;
			}
		}
	}
	r = zb_ctl_send(p->fd, &rp.r.base, rp.fd);
	free(infos);
	free(storage);
	if (req)
		zbusctl__request__free_unpacked(req, NULL);
	if (r < 0) {
		drop_peer(s, p, r == -EAGAIN ? "does not read its replies: "
						"disconnected" : "went away");
		return -1;
	}
	return 0;
}

static void serve_peer(struct zbd_server *s, struct zbd_peer *p, uint8_t *buf)
{
	for (int i = 0; i < ZBD_MAX_REQUESTS_PER_TURN; i++)
		if (serve_one(s, p, buf))
			return;
}

static void read_signals(struct zbd_server *s)
{
	struct signalfd_siginfo si;

	while (read(s->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		zbd_log("signal %u: shutting down", si.ssi_signo);
		s->stop = 1;
	}
}

int zbd_server_run(struct zbd_server *s)
{
	uint8_t *buf = malloc(ZB_CTL_MAX_RECORD);

	if (!buf)
		return -ENOMEM;
	while (!s->stop) {
		struct epoll_event ev[32];
		int n = epoll_wait(s->epfd, ev, 32, -1);

		if (n < 0 && errno != EINTR) {
			free(buf);
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct watch *w = ev[i].data.ptr;

			switch (w->kind) {
			case W_LISTEN:
				accept_peers(s);
				break;
			case W_SIGNAL:
				read_signals(s);
				break;
			case W_PEER:
				serve_peer(s, w->peer, buf);
				/* The peer may be freed: its other watch
				 * may still be in this batch. */
				goto next_turn;
			case W_PIDFD:
				drop_peer(s, w->peer, "exited");
				goto next_turn;
			}
		}
next_turn:;
	}
	free(buf);
	return 0;
}

void zbd_server_fini(struct zbd_server *s)
{
	while (s->peers)
		drop_peer(s, s->peers, "closed at shutdown");
	zbd_registry_clear(&s->reg);
	if (s->sig_fd >= 0)
		close(s->sig_fd);
	if (s->epfd >= 0)
		close(s->epfd);
}
