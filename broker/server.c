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
 * Requests are answered by requests.c; this file moves bytes and fds.
 *
 * Nothing a client does can stall the others: requests are served a few
 * at a time per client per turn, replies are sent without blocking and a
 * client whose socket is full (it does not read) is disconnected, an
 * oversized record disconnects its sender, and a malformed one gets an
 * error reply. Fds that arrive unasked are closed on receipt.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel.h"
#include "ctl.h"
#include "fdpass.h"
#include "log.h"
#include "live.h"
#include "persist.h"
#include "procinfo.h"
#include "rates.h"
#include "reclaim.h"
#include "requests.h"
#include "sub.h"
#include "vmpull.h"
#include "wait.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

enum watch_kind {
	W_LISTEN, W_SIGNAL, W_PEER, W_PIDFD, W_SLOT,
	W_DELIV_SOCK,	/* a delivered subscriber gave bytes back, or left */
	W_DELIV_NOTIFY,	/* messages arrived for a delivered subscriber */
};

struct watch {
	enum watch_kind kind;
	struct zbd_peer *peer;
	struct zbd_slot_watch *slot;
	struct zbd_deliv *deliv;
};

/*
 * A subscription the broker delivers (delivery.h): its own channel handle
 * (a duplicate mapping, so that it outlives a Delete like any mapped
 * subscriber), its events, and whether it stopped at its bound.
 */
struct zbd_deliv {
	struct zbd_delivery d;
	struct zbus_channel *ch;
	struct watch sock_watch, notify_watch;
	int more;
	int dead; /* ended during this batch; freed after it */
	struct zbd_deliv *next;
};

/*
 * A subscription to free, or a publisher whose loans to pad, when its
 * process dies: the record requests read (linked in the registry), and
 * its own duplicate of the client's pidfd (the connection may close long
 * before the process does).
 */
struct zbd_slot_watch {
	struct watch w;
	int pidfd;
	struct zbd_watch rec;
};

static struct zbd_slot_watch *slot_watch_of(struct zbd_watch *rec)
{
	return (struct zbd_slot_watch *)((char *)rec -
					 offsetof(struct zbd_slot_watch, rec));
}

struct zbd_peer {
	struct zbd_client c;
	int fd;
	int pidfd;
	int dead; /* dropped during this batch; freed after it */
	struct watch sock_watch, pid_watch;
	struct zbd_peer *next;
};

static struct watch listen_watch = { W_LISTEN, NULL, NULL, NULL };
static struct watch signal_watch = { W_SIGNAL, NULL, NULL, NULL };

static int watch_add(struct zbd_server *s, int fd, struct watch *w)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = w };

	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/*
 * Stop watching @fd and close it. Explicitly: epoll forgets an fd on close
 * only when no other fd shares its open file, and a client's pidfd is
 * shared with the slot watches made from it (F_DUPFD): a plain close would
 * leave an event pointing at freed memory.
 */
static void watch_close(struct zbd_server *s, int fd)
{
	if (fd < 0)
		return;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
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
		n += !p->dead && p->c.who.uid == uid;
	return n;
}

/*
 * Drop @p: close its socket and pidfd at once (which takes them out of the
 * epoll set) but free it only after the current batch of events, in which
 * its other watch may still appear.
 */
static void drop_peer(struct zbd_server *s, struct zbd_peer *p,
		      const char *why)
{
	if (p->dead)
		return;
	zbd_log("client %llu (pid %d uid %u) %s", p->c.id, (int)p->c.pid,
		(unsigned)p->c.who.uid, why);
	p->dead = 1;
	watch_close(s, p->fd);
	p->fd = -1;
	watch_close(s, p->pidfd);
	p->pidfd = -1;
	s->npeers--;
}

static void reap_dead(struct zbd_server *s)
{
	for (struct zbd_peer **pp = &s->peers; *pp;) {
		struct zbd_peer *p = *pp;

		if (!p->dead) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		free(p->c.who.groups);
		free(p);
	}
}

/* Supplementary groups of the peer, however many (SO_PEERGROUPS says how
 * much room it needs when the first guess is short). */
static int peer_groups(struct zbd_peer *p)
{
	socklen_t len = 64 * sizeof(gid_t);

	for (int tries = 0; tries < 4; tries++) {
		gid_t *g = malloc(len ? len : sizeof(gid_t));
		socklen_t got = len;

		if (!g)
			return -ENOMEM;
		if (getsockopt(p->fd, SOL_SOCKET, SO_PEERGROUPS, g, &got) == 0) {
			p->c.who.groups = g;
			p->c.who.ngroups = (int)(got / sizeof(gid_t));
			return 0;
		}
		free(g);
		if (errno != ERANGE)
			return -errno;
		len = got; /* the size the kernel needs */
	}
	return -ERANGE;
}

/* The identity of a new connection, from the kernel only. */
static int identify(struct zbd_peer *p)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int r;

	if (getsockopt(p->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	p->c.pid = cred.pid;
	p->c.who.uid = cred.uid;
	p->c.who.gid = cred.gid;
	r = peer_groups(p);
	if (r < 0)
		return r; /* a partial identity could deny or grant wrongly */
	/* The pidfd pins the process that connected: never a bare pid. */
	len = sizeof(p->pidfd);
	if (getsockopt(p->fd, SOL_SOCKET, SO_PEERPIDFD, &p->pidfd, &len) < 0)
		p->pidfd = zb_pidfd_open(cred.pid);
	return 0;
}

/* A connection we did not take on: nothing of it is watched yet. */
static void discard(struct zbd_peer *p)
{
	close(p->fd);
	if (p->pidfd >= 0)
		close(p->pidfd);
	free(p->c.who.groups);
	free(p);
}

/* Bytes sent to @fd that its reader has not taken yet. */
static int unread_bytes(int fd)
{
	int n = 0;

	return ioctl(fd, SIOCOUTQ, &n) < 0 ? 0 : n;
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
		p->c.id = ++s->next_peer_id;
		if (identify(p) < 0 || s->npeers >= ZBD_MAX_PEERS ||
		    peers_of_uid(s, p->c.who.uid) >= ZBD_MAX_PEERS_PER_UID) {
			zbd_log("refused a connection (pid %d uid %u): %s",
				(int)p->c.pid, (unsigned)p->c.who.uid,
				s->npeers >= ZBD_MAX_PEERS ? "too many clients"
				: "identity or per-user connection quota");
			discard(p);
			continue;
		}
		p->sock_watch = (struct watch){ W_PEER, p, NULL, NULL };
		p->pid_watch = (struct watch){ W_PIDFD, p, NULL, NULL };
		if (watch_add(s, fd, &p->sock_watch) < 0 ||
		    (p->pidfd >= 0 && watch_add(s, p->pidfd, &p->pid_watch) < 0)) {
			discard(p);
			continue;
		}
		p->next = s->peers;
		s->peers = p;
		s->npeers++;
		zbd_log("client %llu connected: pid %d uid %u gid %u", p->c.id,
			(int)p->c.pid, (unsigned)p->c.who.uid,
			(unsigned)p->c.who.gid);
	}
}

static void unlink_watch(struct zbd_server *s, struct zbd_slot_watch *w);

/* The channel @w is about, or NULL if it went (its name may be another
 * channel's now: the id tells). */
static struct zbd_channel *watched_channel(struct zbd_server *s,
					   const struct zbd_watch *w)
{
	struct zbd_channel *c = zbd_registry_find(&s->reg, w->name);

	return c && c->id == w->channel_id ? c : NULL;
}

/* Does @w's slot still hold what it watches? A subscription or publisher
 * freed by its owner (or reclaimed, or whose channel went) does not. */
static int watch_live(struct zbd_server *s, const struct zbd_watch *w)
{
	struct zbd_channel *c = watched_channel(s, w);

	if (!c)
		return 0;
	return (w->kind == ZBD_WATCH_SUB ? zb_live_slot_word(c->ch, w->slot) :
					   zb_live_pub_word(c->ch, w->slot)) ==
	       w->word;
}

/*
 * Forget @uid's watches on slots their owner freed: a long-lived process
 * that makes and frees many subscriptions needs no unregister call to stay
 * within its quota.
 */
static void prune_watches(struct zbd_server *s, uid_t uid)
{
	struct zbd_watch *w = s->reg.watches, *next;

	for (; w; w = next) {
		next = w->next;
		if (w->uid == uid && !watch_live(s, w))
			unlink_watch(s, slot_watch_of(w));
	}
}

/*
 * Watch @rec's process through @pidfd (taken over, also on failure) and
 * link it for requests to see. Return: 0; -ENOMEM; -errno of epoll.
 */
static int add_watch(struct zbd_server *s, int pidfd,
		     const struct zbd_watch *rec)
{
	struct zbd_slot_watch *w = calloc(1, sizeof(*w));
	int r;

	if (!w) {
		close(pidfd);
		return -ENOMEM;
	}
	w->pidfd = pidfd;
	w->w = (struct watch){ W_SLOT, NULL, w, NULL };
	w->rec = *rec;
	w->rec.next = NULL;
	r = watch_add(s, w->pidfd, &w->w);
	if (r < 0) {
		close(w->pidfd);
		free(w);
		return r;
	}
	zbd_watch_link(&s->reg.watches, &w->rec);
	s->watches_changed = 1;
	return 0;
}

/*
 * The watch of the same slot and word on the same process as @a asks, if
 * there is one: a client that registers again (after a broker restart,
 * whose recovery already restored the watch) needs no second one.
 */
static struct zbd_watch *same_watch(struct zbd_server *s,
				    const struct zbd_peer *p,
				    const struct zbd_action *a)
{
	struct zbd_watch *w = s->reg.watches;

	while ((w = zbd_watch_find(w, a->channel_id, a->watch, a->slot,
				   a->word))) {
		if (w->pid == p->c.pid && w->start_time == p->c.start_time)
			return w;
		w = w->next;
	}
	return NULL;
}

/* Return: 0; -EDQUOT; -ESRCH (no pidfd for this client); -errno. */
static int watch_slot(struct zbd_server *s, struct zbd_peer *p,
		      const struct zbd_action *a)
{
	struct zbd_watch rec, *old;
	int pidfd;

	if (p->pidfd < 0)
		return -ESRCH;
	zbd_client_proc(&p->c);
	old = same_watch(s, p, a);
	if (old) {
		old->client = p->c.id; /* now this connection's */
		old->ref_table = a->ref_table;
		return 0;
	}
	if (zbd_watches_of_uid(s->reg.watches, p->c.who.uid) >=
	    ZBD_MAX_WATCHES_PER_UID)
		prune_watches(s, p->c.who.uid);
	if (zbd_watches_of_uid(s->reg.watches, p->c.who.uid) >=
	    ZBD_MAX_WATCHES_PER_UID)
		return -EDQUOT;
	pidfd = fcntl(p->pidfd, F_DUPFD_CLOEXEC, 0);
	if (pidfd < 0)
		return -errno;
	rec = (struct zbd_watch){
		.kind = a->watch,
		.channel_id = a->channel_id,
		.slot = a->slot,
		.word = a->word,
		.client = p->c.id,
		.pid = p->c.pid,
		.uid = p->c.who.uid,
		.start_time = p->c.start_time,
		.ref_table = a->ref_table,
	};
	snprintf(rec.name, sizeof(rec.name), "%s", a->name);
	return add_watch(s, pidfd, &rec);
}

static void unlink_watch(struct zbd_server *s, struct zbd_slot_watch *w)
{
	s->watches_changed = 1;
	zbd_watch_unlink(&s->reg.watches, &w->rec);
	watch_close(s, w->pidfd);
	free(w);
}

/* The process behind @sw died: free its slot if it still holds it (and
 * for a publisher, pad the loans it left open). */
static void reclaim(struct zbd_server *s, struct zbd_slot_watch *sw)
{
	const struct zbd_watch *w = &sw->rec;
	struct zbd_channel *c = watched_channel(s, w);
	int n;

	if (!c) {
		unlink_watch(s, sw);
		return;
	}
	n = zbd_free_slot(c, w->kind, w->slot, w->word);
	if (n >= 0 && w->kind == ZBD_WATCH_SUB)
		zbd_log("pid %d died: freed its subscription (slot %u) on "
			"'%s'", (int)w->pid, w->slot, w->name);
	else if (n >= 0)
		zbd_log("pid %d died: freed its publisher slot %u on '%s' and "
			"padded %d open loan%s", (int)w->pid, w->slot, w->name,
			n, n == 1 ? "" : "s");
	unlink_watch(s, sw);
}

/* The process of saved watch @w died: free its slot as if this broker
 * had watched it. */
static void reclaim_saved(struct zbd_channel *c, const struct zbd_saved_watch *w)
{
	int n = zbd_free_slot(c, w->kind, w->slot, w->word);

	if (n >= 0 && w->kind == ZBD_WATCH_SUB)
		zbd_log("pid %d died while no broker watched it: freed its "
			"subscription (slot %u) on '%s'", (int)w->pid, w->slot,
			c->name);
	else if (n >= 0)
		zbd_log("pid %d died while no broker watched it: freed its "
			"publisher slot %u on '%s' and padded %d open loan%s",
			(int)w->pid, w->slot, c->name, n, n == 1 ? "" : "s");
}

/*
 * Does the process saved watch @w was made on still run? Its pid with the
 * start time it had: a pid alone may be another process's by now.
 * Return: 1, with *@pidfd for it; 0 when it is gone; -errno of
 * pidfd_open().
 */
static int saved_process(const struct zbd_saved_watch *w, int *pidfd)
{
	uint64_t start;

	*pidfd = zb_pidfd_open(w->pid);
	if (*pidfd < 0)
		return *pidfd == -ESRCH ? 0 : *pidfd;
	/*
	 * Looked at only now that the pidfd pins what holds the pid: if that
	 * started when the saved process did, it is that process. /proc may
	 * also hide it (hidepid) or it may have just exited: then the pidfd
	 * is the one to tell, and a dead process's fires at once.
	 */
	if (w->start_time && zbd_proc_start_time(w->pid, &start) == 0 &&
	    start != w->start_time) {
		close(*pidfd);
		return 0;
	}
	return 1;
}

/* Restore saved watch @w on @c, just brought back: reclaim at once what
 * its process left if it died meanwhile, else watch it again. */
static void restore_watch(struct zbd_server *s, struct zbd_channel *c,
			  const struct zbd_saved_watch *w)
{
	struct zbd_watch rec;
	int pidfd, r;

	if ((w->kind == ZBD_WATCH_SUB ? zb_live_slot_word(c->ch, w->slot) :
	     zb_live_pub_word(c->ch, w->slot)) != w->word)
		return; /* freed or taken again since: nothing to watch */
	r = saved_process(w, &pidfd);
	if (r == 0) {
		reclaim_saved(c, w);
		return;
	}
	if (r < 0) {
		zbd_log("cannot tell whether pid %d (slot %u on '%s') still "
			"runs: %s; its slot is not watched", (int)w->pid,
			w->slot, c->name, strerror(-r));
		return;
	}
	rec = (struct zbd_watch){
		.kind = w->kind,
		.channel_id = c->id,
		.slot = w->slot,
		.word = w->word,
		.pid = w->pid,
		.uid = w->uid,
		.start_time = w->start_time,
		.ref_table = w->ref_table,
	};
	snprintf(rec.name, sizeof(rec.name), "%s", c->name);
	r = add_watch(s, pidfd, &rec);
	if (r < 0)
		zbd_log("cannot watch pid %d again (slot %u on '%s'): %s",
			(int)w->pid, w->slot, c->name, strerror(-r));
	else
		zbd_log("pid %d still runs: watching its %s slot %u on '%s' "
			"again", (int)w->pid, w->kind == ZBD_WATCH_SUB ?
			"subscriber" : "publisher", w->slot, c->name);
}

/* Channel @id was brought back: restore the watches saved on it. */
static void restore_watches(struct zbd_server *s, uint64_t id)
{
	struct zbd_registry *reg = &s->reg;
	struct zbd_channel *c = reg->head;

	while (c && c->id != id)
		c = c->next;
	for (size_t i = 0; c && i < reg->npending_watches;) {
		if (reg->pending_watches[i].channel_id != id) {
			i++;
			continue;
		}
		restore_watch(s, c, &reg->pending_watches[i]);
		reg->pending_watches[i] =
			reg->pending_watches[--reg->npending_watches];
		s->watches_changed = 1;
	}
}

/*
 * Pull: copy what @a checked from its publisher (the process behind its
 * watch) into @p. Return: 0; -errno, with the phrase saying why in *@why.
 */
static int run_pull(struct zbd_server *s, const struct zbd_peer *p,
		    const struct zbd_action *a, const char **why)
{
	struct zbd_watch *w = s->reg.watches;
	const struct zbd_pull *j = &a->pull;

	*why = "the publisher is gone";
	while ((w = zbd_watch_find(w, j->channel_id, ZBD_WATCH_PUB, j->slot,
				   j->word)) && w->ref_table != j->ref_table)
		w = w->next;
	if (!w)
		return -ESRCH;
	if (p->pidfd < 0) {
		*why = "this client's process cannot be pinned (no pidfd)";
		return -ESRCH;
	}
	return zbd_pull_copy(j, slot_watch_of(w)->pidfd, w->pid, p->pidfd,
			     p->c.pid, why, NULL);
}

/* ------------------------------------------------------------------------
 * Delivered subscriptions (delivery.h)
 * ------------------------------------------------------------------------ */

/* A message by reference for delivery @d: checked as a Pull is (a record
 * still in the ring, a registered publisher whose own table vouches for
 * it), copied into @d's ring at @dest. See zbd_ref_copy_fn. */
static int deliver_ref(void *ctx, const struct zbd_delivery *d,
		       const struct zbus_channel *ch, uint64_t seq,
		       uint64_t size, uint64_t dest, int *dst_failed)
{
	struct zbd_server *s = ctx;
	struct zbd_watch *w;
	struct zbd_pull j;
	struct zb_ref ref;
	const char *why;
	int r;

	*dst_failed = 0;
	r = zb_live_ref(ch, seq, &ref);
	if (r < 0)
		return r == -ENOENT ? -ESTALE : r;
	if (ref.length != size)
		return -EBADMSG;
	w = zbd_watch_vouching(s->reg.watches, d->channel_id, ref.slot,
			       ref.word);
	if (!w || zb_live_pub_word(ch, ref.slot) != ref.word)
		return -ESRCH;
	j = (struct zbd_pull){
		.channel_id = d->channel_id,
		.slot = ref.slot,
		.word = ref.word,
		.ref_table = w->ref_table,
		.seq = seq,
		.ref_addr = ref.addr,
		.ref_length = ref.length,
		.length = size,
		.dest = dest,
	};
	return zbd_pull_copy(&j, slot_watch_of(w)->pidfd, w->pid, d->pidfd,
			     d->pid, &why, dst_failed);
}

/*
 * Save a watch of the broker's own subscription for @v, with the broker as
 * its process: a broker started after this one died frees the slot (a
 * reliable one would hold the producers back for ever). The broker's uid
 * owns it, so that the subscriber cannot unregister the broker's slot; it
 * names the subscriber it serves, for stat and ls.
 */
static void deliv_save_watch(struct zbd_server *s, const struct zbd_deliv *v)
{
	static uint64_t start_time;
	struct zbd_watch rec;
	int pidfd, r;

	if (!start_time && zbd_proc_start_time(getpid(), &start_time) < 0)
		start_time = 0;
	pidfd = zb_pidfd_open(getpid());
	if (pidfd < 0) {
		zbd_log("cannot save the watch of delivery %llu: %s",
			v->d.id, strerror(-pidfd));
		return;
	}
	rec = (struct zbd_watch){
		.kind = ZBD_WATCH_SUB,
		.channel_id = v->d.channel_id,
		.slot = v->d.slot,
		.word = v->d.word,
		.pid = getpid(),
		.uid = geteuid(),
		.start_time = start_time,
		.for_pid = v->d.pid,
		.for_uid = v->d.uid,
	};
	snprintf(rec.name, sizeof(rec.name), "%s", v->d.name);
	r = add_watch(s, pidfd, &rec);
	if (r < 0)
		zbd_log("cannot save the watch of delivery %llu: %s",
			v->d.id, strerror(-r));
}

static void deliv_drop_watch(struct zbd_server *s, const struct zbd_deliv *v)
{
	struct zbd_watch *w = s->reg.watches;

	while ((w = zbd_watch_find(w, v->d.channel_id, ZBD_WATCH_SUB,
				   v->d.slot, v->d.word))) {
		if (w->pid == getpid()) {
			unlink_watch(s, slot_watch_of(w));
			return;
		}
		w = w->next;
	}
}

static void deliv_close(struct zbd_server *s, struct zbd_deliv *v)
{
	if (v->d.notify_fd >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, v->d.notify_fd, NULL);
	watch_close(s, v->d.sock);
	zbus_sub_free(v->d.sub); /* closes notify_fd, frees the slot */
	zbus_channel_free(v->ch);
	if (v->d.efd >= 0)
		close(v->d.efd);
	if (v->d.pidfd >= 0)
		close(v->d.pidfd);
	v->d.sock = v->d.efd = v->d.pidfd = v->d.notify_fd = -1;
	v->d.sub = NULL;
	v->ch = NULL;
}

/* End @v (its events may still come in this batch: freed after it). */
static void end_delivery(struct zbd_server *s, struct zbd_deliv *v,
			 const char *why)
{
	if (v->dead)
		return;
	zbd_log("delivery %llu of '%s' to pid %d (uid %u) %s, after %llu "
		"messages", v->d.id, v->d.name, (int)v->d.pid,
		(unsigned)v->d.uid, why, (unsigned long long)v->d.delivered);
	v->dead = 1;
	deliv_drop_watch(s, v);
	deliv_close(s, v);
	s->ndeliveries--;
}

static void reap_deliveries(struct zbd_server *s)
{
	for (struct zbd_deliv **pp = &s->deliveries; *pp;) {
		struct zbd_deliv *v = *pp;

		if (!v->dead) {
			pp = &v->next;
			continue;
		}
		*pp = v->next;
		free(v);
	}
}

static void pump(struct zbd_server *s, struct zbd_deliv *v)
{
	int r;

	if (v->dead)
		return;
	r = zbd_delivery_pump(&v->d, v->ch, deliver_ref, s);
	if (r < 0) {
		char why[128];

		snprintf(why, sizeof(why), "cannot be written any more (%s): "
			 "ended", strerror(-r));
		end_delivery(s, v, why);
		return;
	}
	v->more = r;
	if (r)
		s->pump_again = 1;
}

/* Deliveries that stopped at their bound with more to move. */
static void pump_again(struct zbd_server *s)
{
	s->pump_again = 0;
	for (struct zbd_deliv *v = s->deliveries; v; v = v->next)
		if (v->more)
			pump(s, v);
}

/* The subscriber of @v gave bytes back, or left. */
static void credit(struct zbd_server *s, struct zbd_deliv *v)
{
	int r;

	if (v->dead)
		return;
	r = zbd_delivery_credit(&v->d);
	if (r == -EPIPE)
		end_delivery(s, v, "unsubscribed (or exited)");
	else if (r < 0)
		end_delivery(s, v, "gave back bytes it was never given: ended");
	else
		pump(s, v);
}

/* Messages arrived on @v's channel: reset its notification, deliver. */
static void notified(struct zbd_server *s, struct zbd_deliv *v)
{
	uint64_t n;

	if (v->dead)
		return;
	if (read(v->d.notify_fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: reset already; the ring is looked at anyway. */
	}
	pump(s, v);
}

/*
 * Start what SubscribeDelivered asked for (@q's fds are taken over, also
 * on failure). Return: 0; -errno with *@why set.
 */
static int start_delivery(struct zbd_server *s, const struct zbd_peer *p,
			  struct zbd_delivery_req *q, const char **why)
{
	struct zbd_channel *c = zbd_registry_find(&s->reg, q->name);
	struct zbus_sub_opts so = { .policy = q->policy, .spin_us = -1 };
	struct zbd_deliv *v;
	size_t mine = 0;
	int r;

	for (v = s->deliveries; v; v = v->next)
		mine += !v->dead && v->d.uid == p->c.who.uid;
	v = calloc(1, sizeof(*v));
	if (!v) {
		close(q->sock);
		close(q->efd);
		*why = "out of memory";
		return -ENOMEM;
	}
	v->d.sock = q->sock;
	v->d.efd = q->efd;
	v->d.notify_fd = -1;
	v->d.pidfd = -1;
	r = -ENOENT;
	*why = "the channel went";
	if (!c || c->id != q->channel_id)
		goto fail;
	r = -EDQUOT;
	*why = "too many delivered subscriptions (for this user, or in all)";
	if (s->ndeliveries >= ZBD_MAX_DELIVERIES ||
	    mine >= ZBD_MAX_DELIVERIES_PER_UID)
		goto fail;
	*why = "this client's process cannot be pinned (no pidfd)";
	r = p->pidfd < 0 ? -ESRCH : fcntl(p->pidfd, F_DUPFD_CLOEXEC, 0);
	if (r < 0)
		goto fail;
	v->d.pidfd = r;
	*why = "cannot map the channel";
	r = zbus_channel_attach_dup(zbus_channel_fd(c->ch),
				    zbus_channel_state_fd(c->ch), &v->ch);
	if (r < 0)
		goto fail;
	*why = "cannot subscribe (no free subscriber slot?)";
	r = zbus_sub_new(v->ch, &so, &v->d.sub);
	if (r < 0)
		goto fail;
	*why = "cannot watch the channel";
	r = zbus_sub_fd(v->d.sub);
	if (r < 0)
		goto fail;
	v->d.notify_fd = r;
	zb_sub_identity(v->d.sub, &v->d.slot, &v->d.word);
	v->d.id = ++s->next_delivery_id;
	v->d.channel_id = q->channel_id;
	snprintf(v->d.name, sizeof(v->d.name), "%s", q->name);
	v->d.policy = q->policy;
	v->d.pid = p->c.pid;
	v->d.uid = p->c.who.uid;
	v->d.rx_addr = q->rx_addr;
	v->d.rx_bytes = q->rx_bytes;
	v->sock_watch = (struct watch){ W_DELIV_SOCK, NULL, NULL, v };
	v->notify_watch = (struct watch){ W_DELIV_NOTIFY, NULL, NULL, v };
	r = watch_add(s, v->d.sock, &v->sock_watch);
	if (r == 0)
		r = watch_add(s, v->d.notify_fd, &v->notify_watch);
	if (r < 0)
		goto fail;
	v->next = s->deliveries;
	s->deliveries = v;
	s->ndeliveries++;
	deliv_save_watch(s, v);
	zbd_log("client %llu (pid %d uid %u) subscribed to '%s' by delivery "
		"%llu (%s, slot %u, a %llu-byte ring)", p->c.id, (int)p->c.pid,
		(unsigned)p->c.who.uid, v->d.name, v->d.id,
		v->d.policy == ZBUS_LOSSY ? "lossy" : "reliable", v->d.slot,
		(unsigned long long)v->d.rx_bytes);
	return 0;
fail:
	deliv_close(s, v);
	free(v);
	return r;
}

/* Unsubscribe, UnregisterPublisher: forget the watches @a names that are
 * @p's to drop (its connection's, or its uid's). */
static void unwatch_slot(struct zbd_server *s, const struct zbd_peer *p,
			 const struct zbd_action *a)
{
	struct zbd_watch *w = s->reg.watches, *next;

	while ((w = zbd_watch_find(w, a->channel_id, a->unwatch, a->slot,
				   a->word))) {
		next = w->next;
		if (zbd_watch_owned(w, p->c.id, p->c.who.uid))
			unlink_watch(s, slot_watch_of(w));
		w = next;
	}
}

/* Write the registry where the next broker will look for it. A failure
 * costs a restart's recovery, not this broker's service: log it. */
static void save_state(struct zbd_server *s)
{
	int r;

	s->watches_changed = 0;
	if (!s->state_path[0])
		return;
	r = zbd_persist_save(s->state_path, &s->reg);
	if (r < 0)
		zbd_log("cannot save the registry to %s: %s", s->state_path,
			strerror(-r));
}

/* The recovery window is over: channels nobody brought back are gone. */
static void end_recovery(struct zbd_server *s)
{
	zbd_log("recovery over: %zu channel%s not brought back, forgotten",
		s->reg.npending, s->reg.npending == 1 ? "" : "s");
	zbd_registry_drop_pending(&s->reg);
	save_state(s);
}

/* Clamp the timer tick between these: fine enough for short timeouts
 * (tests), idle enough for the default. */
#define UNBLOCK_TICK_MIN_MS 5
#define UNBLOCK_TICK_MAX_MS 1000

/* How long until the next stuck-claim check: an eighth of the shortest
 * unblock timeout in force, or forever without channels. */
static int unblock_tick_ms(const struct zbd_server *s)
{
	uint32_t shortest = 0;

	for (const struct zbd_channel *c = s->reg.head; c; c = c->next) {
		uint32_t t = zbd_unblock_ms(&s->reg, c);

		if (t && (!shortest || t < shortest))
			shortest = t;
	}
	if (!shortest)
		return -1;
	shortest /= 8;
	if (shortest < UNBLOCK_TICK_MIN_MS)
		return UNBLOCK_TICK_MIN_MS;
	return shortest > UNBLOCK_TICK_MAX_MS ? UNBLOCK_TICK_MAX_MS :
						(int)shortest;
}

/* Pad the claims held open past their channel's unblock timeout. */
static void unblock_channels(struct zbd_server *s)
{
	uint64_t now = zb_now_ns();

	for (struct zbd_channel *c = s->reg.head; c; c = c->next) {
		uint32_t t = zbd_unblock_ms(&s->reg, c);
		uint64_t n;

		if (!t)
			continue;
		n = zb_reclaim_unblock(&c->ch->seg, &c->unblock, now,
				       (uint64_t)t * 1000000);
		if (n) {
			c->reclaimed += n;
			zbd_log("channel '%s': took back %llu claim%s held "
				"open longer than %u ms", c->name,
				(unsigned long long)n, n == 1 ? "" : "s", t);
		}
	}
}

/* Sample every channel's counters, for its rates. */
static void sample_rates(struct zbd_server *s, uint64_t now)
{
	for (struct zbd_channel *c = s->reg.head; c; c = c->next)
		zbd_rates_sample(c, now);
}

/* Milliseconds from @now until @deadline (both in ns), rounded up. */
static int ms_until(uint64_t deadline, uint64_t now)
{
	return (int)((deadline - now + 999999) / 1000000);
}

/* The sooner of two epoll timeouts (-1: none). */
static int sooner(int a, int b)
{
	return a < 0 || (b >= 0 && b < a) ? b : a;
}

/*
 * Serve one record from @p. Return: 0 to go on; 1 when it has nothing
 * more; -1 when the peer was dropped (gone, oversized record, or a reply
 * it does not read).
 */
static int serve_one(struct zbd_server *s, struct zbd_peer *p, uint8_t *buf)
{
	struct zbd_action act;
	uint8_t *reply;
	size_t len;
	ssize_t n;
	struct zb_fds in, fds;
	int r;

	n = zb_fdpass_recv(p->fd, buf, ZB_CTL_MAX_RECORD, &in);
	if (n == -EAGAIN)
		return 1;
	if (n <= 0) {
		drop_peer(s, p, n == 0 ? "disconnected" :
				n == -EMSGSIZE ? "sent an oversized record" :
						 "failed");
		return -1;
	}
	/* Only Adopt and Offer use fds (they keep duplicates); any other
	 * that came along is closed here, unasked. */
	r = zbd_answer(&s->reg, &p->c, buf, (size_t)n, &in, &reply, &len,
		       &fds, &act);
	zb_fds_close(&in);
	if (act.adopted)
		restore_watches(s, act.adopted);
	if (r < 0) {
		if (act.has_delivery) {
			close(act.delivery.sock);
			close(act.delivery.efd);
		}
		if (act.changed || s->watches_changed)
			save_state(s);
		drop_peer(s, p, "could not be answered (out of memory)");
		return -1;
	}
	if (act.unwatch != ZBD_WATCH_NONE)
		unwatch_slot(s, p, &act);
	if (act.watch != ZBD_WATCH_NONE) {
		r = watch_slot(s, p, &act);
		if (r < 0) {
			free(reply);
			r = zbd_refusal(&p->c, buf, (size_t)n, r,
					r == -EDQUOT ? "too many watched "
					"subscriptions and publishers for "
					"this user" :
					"cannot watch this client's life",
					&reply, &len, &fds);
			if (r < 0) {
				drop_peer(s, p, "could not be answered");
				return -1;
			}
		}
	}
	if (act.has_pull) {
		const char *why;

		r = run_pull(s, p, &act, &why);
		if (r < 0) {
			char msg[256];

			free(reply);
			snprintf(msg, sizeof(msg), "pull of message %llu: %s: %s",
				 (unsigned long long)act.pull.seq, why,
				 strerror(-r));
			r = zbd_refusal(&p->c, buf, (size_t)n, r, msg, &reply,
					&len, &fds);
			if (r < 0) {
				drop_peer(s, p, "could not be answered");
				return -1;
			}
		}
	}
	if (act.has_delivery) {
		const char *why;

		r = start_delivery(s, p, &act.delivery, &why);
		if (r < 0) {
			char msg[512];

			free(reply);
			snprintf(msg, sizeof(msg), "delivered subscription to "
				 "'%s': %s", act.delivery.name, why);
			r = zbd_refusal(&p->c, buf, (size_t)n, r, msg, &reply,
					&len, &fds);
			if (r < 0) {
				drop_peer(s, p, "could not be answered");
				return -1;
			}
		}
	}
	/* Saved before the reply: a client told its channel or watch is in
	 * place can count on a next broker knowing it too. */
	if (act.changed || s->watches_changed)
		save_state(s);
	/*
	 * Every fd in an unread reply is charged to the broker's user until
	 * the client reads it, and past RLIMIT_NOFILE the kernel refuses to
	 * pass more (ETOOMANYREFS) to anyone. A client that asks for memfds
	 * without reading its replies is cut off before it can spend that
	 * budget; a legitimate one has at most a few replies in flight.
	 */
	if (fds.n && unread_bytes(p->fd) > ZBD_MAX_UNREAD_BYTES) {
		free(reply);
		drop_peer(s, p, "asks for channels without reading its "
				"replies: disconnected");
		return -1;
	}
	r = zb_fdpass_send(p->fd, reply, len, &fds);
	if (r == -ETOOMANYREFS) {
		/* Not this client's fault: answer without the fd. */
		uint8_t *err;
		size_t elen;
		struct zb_fds efds;

		zbd_log("cannot pass an fd to client %llu (fd budget "
			"exhausted): answering with an error", p->c.id);
		r = zbd_refusal(&p->c, buf, (size_t)n, -EAGAIN,
				"the broker cannot pass more file descriptors "
				"right now: try again", &err, &elen, &efds);
		if (!r) {
			r = zb_fdpass_send(p->fd, err, elen, NULL);
			free(err);
		}
	}
	free(reply);
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
	uint64_t next_tick = 0, next_sample = 0;

	if (!buf)
		return -ENOMEM;
	while (!s->stop) {
		struct epoll_event ev[32];
		int tick = unblock_tick_ms(s), wait_ms = -1, n;
		uint64_t now = zb_now_ns();

		if (tick >= 0) {
			if (!next_tick || now >= next_tick) {
				unblock_channels(s);
				next_tick = now + (uint64_t)tick * 1000000;
			}
			wait_ms = ms_until(next_tick, now);
		}
		if (s->reg.head) {
			if (now >= next_sample) {
				sample_rates(s, now);
				next_sample = now + ZBD_RATE_INTERVAL_MS *
							    1000000ull;
			}
			wait_ms = sooner(wait_ms, ms_until(next_sample, now));
		}
		if (s->reg.npending) {
			if (now >= s->reg.pending_until_ns) {
				end_recovery(s);
				continue;
			}
			wait_ms = sooner(wait_ms,
					 ms_until(s->reg.pending_until_ns, now));
		}
		if (s->pump_again)
			wait_ms = 0;
		n = epoll_wait(s->epfd, ev, 32, wait_ms);

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
				if (!w->peer->dead)
					serve_peer(s, w->peer, buf);
				break;
			case W_PIDFD:
				drop_peer(s, w->peer, "exited");
				break;
			case W_SLOT:
				/* Its only event: freed here, safely. */
				reclaim(s, w->slot);
				break;
			case W_DELIV_SOCK:
				credit(s, w->deliv);
				break;
			case W_DELIV_NOTIFY:
				notified(s, w->deliv);
				break;
			}
		}
		if (s->pump_again)
			pump_again(s);
		reap_dead(s);
		reap_deliveries(s);
		if (s->watches_changed)
			save_state(s); /* reclaimed: not to be done twice */
	}
	free(buf);
	return 0;
}

void zbd_server_fini(struct zbd_server *s)
{
	for (struct zbd_peer *p = s->peers; p; p = p->next)
		drop_peer(s, p, "closed at shutdown");
	reap_dead(s);
	for (struct zbd_deliv *v = s->deliveries; v; v = v->next)
		end_delivery(s, v, "ended at shutdown");
	reap_deliveries(s);
	while (s->reg.watches)
		unlink_watch(s, slot_watch_of(s->reg.watches));
	zbd_registry_clear(&s->reg);
	if (s->sig_fd >= 0)
		close(s->sig_fd);
	if (s->epfd >= 0)
		close(s->epfd);
}
