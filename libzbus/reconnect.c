/* SPDX-License-Identifier: MIT */
/*
 * reconnect.c - surviving a broker restart.
 *
 * The data path never needs the broker, but the broker's registry and its
 * liveness watches are what let others find a channel and what reclaim a
 * dead process's slots. A new broker recovers the registry's metadata from
 * its state file; the memfds themselves live on only in the clients. So a
 * connection remembers the channels it created or opened (a duplicate of
 * each memfd) and what it asked the broker to watch, and a keeper thread,
 * woken by the socket's hang-up, reconnects (starting a broker if allowed,
 * with a bounded back-off), hands each memfd back (Adopt) and asks for its
 * watches again. What the new broker refuses (a channel it does not know,
 * a slot that no longer holds the subscription) is forgotten.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "conn.h"
#include "fdpass.h"
#include "util.h"
#include "zbus/zbus.h"

#define BACKOFF_FIRST_MS 10
#define BACKOFF_MAX_MS 1000

void zb_conn_hold_channel(struct zbus_conn *c, const char *name,
			  const struct zb_fds *fds)
{
	struct zb_held_channel *v;
	struct zb_fds dups = { .n = 0, .fd = { -1, -1 } };

	pthread_mutex_lock(&c->lock);
	zb_conn_drop_channel(c, name); /* the newest memfd of a name wins */
	if (c->nchannels == ZB_CONN_MAX_HELD_CHANNELS)
		goto out;
	v = realloc(c->channels, (c->nchannels + 1) * sizeof(*v));
	if (!v)
		goto out;
	c->channels = v;
	for (; dups.n < fds->n; dups.n++) {
		dups.fd[dups.n] = fcntl(fds->fd[dups.n], F_DUPFD_CLOEXEC, 0);
		if (dups.fd[dups.n] < 0) {
			zb_fds_close(&dups);
			goto out;
		}
	}
	snprintf(v[c->nchannels].name, sizeof(v->name), "%s", name);
	v[c->nchannels++].fds = dups;
out:
	pthread_mutex_unlock(&c->lock);
}

void zb_conn_drop_channel(struct zbus_conn *c, const char *name)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->nchannels; i++) {
		if (strcmp(c->channels[i].name, name))
			continue;
		zb_fds_close(&c->channels[i].fds);
		c->channels[i] = c->channels[--c->nchannels];
		break;
	}
	pthread_mutex_unlock(&c->lock);
}

void zb_conn_hold_watch(struct zbus_conn *c, enum zb_watch_kind kind,
			const char *name, uint32_t slot, uint32_t word,
			uint64_t ref_table)
{
	struct zb_held_watch *v;

	pthread_mutex_lock(&c->lock);
	if (c->nwatches == ZB_CONN_MAX_HELD_WATCHES) {
		/* The oldest is the likeliest to be freed by now. */
		memmove(c->watches, c->watches + 1,
			(c->nwatches - 1) * sizeof(*c->watches));
		c->nwatches--;
	}
	v = realloc(c->watches, (c->nwatches + 1) * sizeof(*v));
	if (v) {
		c->watches = v;
		v[c->nwatches].kind = kind;
		snprintf(v[c->nwatches].name, sizeof(v->name), "%s", name);
		v[c->nwatches].slot = slot;
		v[c->nwatches].ref_table = ref_table;
		v[c->nwatches++].word = word;
	}
	pthread_mutex_unlock(&c->lock);
}

void zb_conn_drop_watch(struct zbus_conn *c, enum zb_watch_kind kind,
			const char *name, uint32_t slot, uint32_t word)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->nwatches;) {
		const struct zb_held_watch *w = &c->watches[i];

		if (w->kind != kind || w->slot != slot || w->word != word ||
		    strcmp(w->name, name)) {
			i++;
			continue;
		}
		c->watches[i] = c->watches[--c->nwatches];
	}
	pthread_mutex_unlock(&c->lock);
}

void zb_conn_release_held(struct zbus_conn *c)
{
	for (size_t i = 0; i < c->nchannels; i++)
		zb_fds_close(&c->channels[i].fds);
	free(c->channels);
	free(c->watches);
	c->channels = NULL;
	c->watches = NULL;
	c->nchannels = c->nwatches = 0;
}

/* Hand channel @i back to the new broker. Return: 1 to keep it, 0 to
 * forget it (the broker does not know it, or it is another one now). */
static int adopt(struct zbus_conn *c, size_t i)
{
	Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
	Zbusctl__Adopt ad = ZBUSCTL__ADOPT__INIT;
	Zbusctl__Reply *rep;
	int r;

	ad.name = c->channels[i].name;
	req.body_case = ZBUSCTL__REQUEST__BODY_ADOPT;
	req.adopt = &ad;
	r = zb_conn_request(c, &req, &c->channels[i].fds, &rep, NULL);
	if (r == 0)
		zbusctl__reply__free_unpacked(rep, NULL);
	return r == 0 || (r != -ENOENT && r != -EEXIST && r != -EBADF &&
			  r != -EACCES && r != -EBADMSG);
}

/* Ask for watch @i again. Return: 1 to keep it, 0 to forget it. */
static int rewatch(struct zbus_conn *c, size_t i)
{
	const struct zb_held_watch *w = &c->watches[i];
	int r = zb_conn_watch(c, w->kind, 0, w->name, w->slot, w->word,
			      w->ref_table);

	return r == 0 || (r != -ENOENT && r != -ESTALE && r != -EACCES);
}

/* Give the new broker what the old one had from us. Called locked. */
static void restore(struct zbus_conn *c)
{
	for (size_t i = 0; i < c->nchannels;) {
		if (adopt(c, i)) {
			i++;
			continue;
		}
		zb_fds_close(&c->channels[i].fds);
		c->channels[i] = c->channels[--c->nchannels];
	}
	for (size_t i = 0; i < c->nwatches;) {
		if (rewatch(c, i)) {
			i++;
			continue;
		}
		c->watches[i] = c->watches[--c->nwatches];
	}
}

/* Wait @ms on the stop eventfd. Return: 1 if asked to stop. */
static int stop_asked(struct zbus_conn *c, int ms)
{
	struct pollfd p = { .fd = c->stop_fd, .events = POLLIN };

	return poll(&p, 1, ms) > 0;
}

/* The broker hung up: reconnect until it works or we are stopped. */
static void reconnect(struct zbus_conn *c)
{
	int backoff = BACKOFF_FIRST_MS;

	pthread_mutex_lock(&c->lock);
	close(c->sock);
	c->sock = -1;
	for (;;) {
		if (zb_conn_connect(c) == 0) {
			c->reconnects++;
			restore(c);
			break;
		}
		pthread_mutex_unlock(&c->lock);
		if (stop_asked(c, backoff))
			return;
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
							 backoff * 2;
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
}

static void *keeper_main(void *arg)
{
	struct zbus_conn *c = arg;

	sem_post(&c->keeper_started);
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = c->stop_fd, .events = POLLIN },
			/* Hang-up only: replies are the requester's to read. */
			{ .fd = c->sock, .events = POLLRDHUP },
		};
		int r = poll(p, 2, -1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || p[0].revents)
			return NULL;
		if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			reconnect(c);
			if (stop_asked(c, 0))
				return NULL;
		}
	}
}

int zb_keeper_start(struct zbus_conn *c)
{
	sigset_t all, old;
	int r;

	c->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (c->stop_fd < 0)
		return -errno;
	sem_init(&c->keeper_started, 0, 0);
	/* The keeper must not take the application's signals. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&c->keeper, NULL, keeper_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		close(c->stop_fd);
		c->stop_fd = -1;
		return -r;
	}
	/*
	 * Return only once the keeper runs its own code (then it sits in
	 * poll() and allocates nothing). A thread still starting up may hold
	 * allocator locks (a sanitizer's bookkeeping, TLS): a program that
	 * forks right after connecting would hand them, held, to its child,
	 * whose first malloc() then never returns (seen under ASan).
	 */
	while (sem_wait(&c->keeper_started) < 0 && errno == EINTR)
		;
	c->keeper_running = 1;
	return 0;
}

void zb_keeper_stop(struct zbus_conn *c)
{
	uint64_t one = 1;

	if (!c->keeper_running)
		return;
	/* An eventfd write of 1 only fails on overflow, after 2^64 - 1. */
	while (write(c->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_join(c->keeper, NULL);
	close(c->stop_fd);
	c->keeper_running = 0;
}
