/* SPDX-License-Identifier: MIT */
/*
 * persist.c - the registry's metadata in a file: written whole and renamed
 * into place, read back as hostile input.
 *
 * Saving never writes the file in place: a broker killed halfway would
 * leave half a registry, and every channel not in it would be lost to the
 * next broker. Loading checks what the file says as if a stranger had
 * written it: the next broker hands out channels by what it finds there.
 */
#include "persist.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "layout.h"
#include "requests.h"
#include "util.h"
#include "zbusd_state.pb-c.h"

/* --- saving ------------------------------------------------------------ */

/* The record of pending channel @s. Its name points into @s. */
static void saved_to_record(const struct zbd_saved_channel *s,
			    Zbusd__SavedChannel *rec)
{
	zbusd__saved_channel__init(rec);
	rec->name = (char *)s->name; /* packing only reads it */
	rec->id = s->id;
	rec->owner_uid = s->owner_uid;
	rec->owner_gid = s->owner_gid;
	rec->mode = s->mode;
	rec->default_policy = s->default_policy;
	rec->max_msg_size = s->max_msg_size;
	rec->ring_capacity = s->ring_capacity;
	rec->arena_bytes = s->arena_bytes;
	rec->max_subscribers = s->max_subscribers;
	rec->max_publishers = s->max_publishers;
	rec->segment_bytes = s->segment_bytes;
	rec->seg_dev = s->seg_dev;
	rec->seg_ino = s->seg_ino;
	rec->created_unix_ns = s->created_unix_ns;
	rec->unblock_timeout_ms = s->unblock_timeout_ms;
	rec->state_dev = s->state_dev;
	rec->state_ino = s->state_ino;
	rec->sealed = !!s->sealed;
}

/* The record of @c. Its name points into @c, which must outlive it. */
static int channel_to_record(const struct zbd_channel *c,
			     Zbusd__SavedChannel *rec)
{
	struct zbd_saved_channel s;
	struct stat st, sst;

	if (fstat(zbus_channel_fd(c->ch), &st) < 0 ||
	    fstat(zbus_channel_state_fd(c->ch), &sst) < 0)
		return -errno;
	s = (struct zbd_saved_channel){
		.id = c->id,
		.owner_uid = c->owner_uid,
		.owner_gid = c->owner_gid,
		.mode = c->mode,
		.default_policy = c->default_policy,
		.max_msg_size = c->info.max_msg_size,
		.ring_capacity = c->info.ring_capacity,
		.arena_bytes = c->info.arena_bytes,
		.max_subscribers = c->info.max_subscribers,
		.max_publishers = c->info.max_publishers,
		.segment_bytes = c->info.segment_bytes,
		.seg_dev = (uint64_t)st.st_dev,
		.seg_ino = (uint64_t)st.st_ino,
		.created_unix_ns = c->created_unix_ns,
		.unblock_timeout_ms = c->unblock_timeout_ms,
		.state_dev = (uint64_t)sst.st_dev,
		.state_ino = (uint64_t)sst.st_ino,
		.sealed = zbd_sealed(c),
	};
	saved_to_record(&s, rec);
	rec->name = (char *)c->name; /* not into s, which dies here */
	return 0;
}

static int by_u64(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return (*x > *y) - (*x < *y);
}

/* The ids of every channel of @reg, pending ones too, sorted in *@ids. */
static int channel_ids(const struct zbd_registry *reg, uint64_t **ids,
		       size_t *n)
{
	size_t k = 0;

	*ids = malloc((reg->npending + reg->count + 1) * sizeof(**ids));
	if (!*ids)
		return -ENOMEM;
	for (size_t i = 0; i < reg->npending; i++)
		(*ids)[k++] = reg->pending[i].id;
	for (const struct zbd_channel *c = reg->head; c; c = c->next)
		(*ids)[k++] = c->id;
	qsort(*ids, k, sizeof(**ids), by_u64);
	*n = k;
	return 0;
}

static void watch_to_record(const struct zbd_saved_watch *w,
			    Zbusd__SavedWatch *rec)
{
	zbusd__saved_watch__init(rec);
	rec->channel_id = w->channel_id;
	rec->kind = (uint32_t)w->kind;
	rec->slot = w->slot;
	rec->word = w->word;
	rec->uid = (uint32_t)w->uid;
	rec->pid = (uint32_t)w->pid;
	rec->start_time = w->start_time;
	rec->ref_table = w->ref_table;
}

/*
 * The watches of @reg as records in *@recs and *@ptrs (malloc()ed), and
 * how many in *@n: the pending ones, and the live ones whose channel
 * @reg still holds (sorted @ids, @nids of them).
 */
static int pack_watches(const struct zbd_registry *reg, const uint64_t *ids,
			size_t nids, Zbusd__SavedWatch **recs,
			Zbusd__SavedWatch ***ptrs, size_t *n)
{
	const struct zbd_watch *w;
	size_t k = reg->npending_watches;

	for (w = reg->watches; w; w = w->next)
		k++;
	if (k > ZBD_MAX_SAVED_WATCHES)
		return -E2BIG;
	*recs = calloc(k + 1, sizeof(**recs));
	*ptrs = calloc(k + 1, sizeof(**ptrs));
	if (!*recs || !*ptrs)
		return -ENOMEM;
	for (k = 0; k < reg->npending_watches; k++)
		watch_to_record(&reg->pending_watches[k], &(*recs)[k]);
	for (w = reg->watches; w; w = w->next) {
		struct zbd_saved_watch sw = {
			.channel_id = w->channel_id, .kind = w->kind,
			.slot = w->slot, .word = w->word, .uid = w->uid,
			.pid = w->pid, .start_time = w->start_time,
			.ref_table = w->ref_table,
		};

		if (bsearch(&w->channel_id, ids, nids, sizeof(*ids), by_u64))
			watch_to_record(&sw, &(*recs)[k++]);
	}
	for (size_t i = 0; i < k; i++)
		(*ptrs)[i] = &(*recs)[i];
	*n = k;
	return 0;
}

/* @reg packed into *@buf (malloc()ed) of *@len bytes. */
static int pack_registry(const struct zbd_registry *reg, uint8_t **buf,
			 size_t *len)
{
	Zbusd__State state = ZBUSD__STATE__INIT;
	_zb_cleanup_free_ Zbusd__SavedChannel *recs = NULL;
	_zb_cleanup_free_ Zbusd__SavedChannel **ptrs = NULL;
	_zb_cleanup_free_ Zbusd__SavedWatch *wrecs = NULL;
	_zb_cleanup_free_ Zbusd__SavedWatch **wptrs = NULL;
	_zb_cleanup_free_ uint64_t *ids = NULL;
	const struct zbd_channel *c;
	size_t n = reg->npending, nids, nw;
	int r;

	/* Pending ones too: a broker that dies while recovering must not
	 * lose what it had not recovered yet. */
	for (c = reg->head; c; c = c->next)
		n++;
	/* A file the next broker would refuse is as bad as none. */
	if (n > ZBD_MAX_CHANNELS)
		return -E2BIG;
	r = channel_ids(reg, &ids, &nids);
	if (r == 0)
		r = pack_watches(reg, ids, nids, &wrecs, &wptrs, &nw);
	if (r < 0)
		return r;
	/* n + 1: an empty registry is no reason for calloc() to fail. */
	recs = calloc(n + 1, sizeof(*recs));
	ptrs = calloc(n + 1, sizeof(*ptrs));
	if (!recs || !ptrs)
		return -ENOMEM;
	for (n = 0; n < reg->npending; n++) {
		saved_to_record(&reg->pending[n], &recs[n]);
		ptrs[n] = &recs[n];
	}
	for (c = reg->head; c; c = c->next, n++) {
		r = channel_to_record(c, &recs[n]);
		if (r < 0)
			return r;
		ptrs[n] = &recs[n];
	}
	state.version = ZBD_PERSIST_VERSION;
	state.next_id = reg->next_id;
	state.n_channel = n;
	state.channel = ptrs;
	state.n_watch = nw;
	state.watch = wptrs;
	state.complete = 1;
	*len = zbusd__state__get_packed_size(&state);
	*buf = malloc(*len);
	if (!*buf)
		return -ENOMEM;
	zbusd__state__pack(&state, *buf);
	return 0;
}

/*
 * All @len bytes of @buf into @fd. Not synced to the disk: the file only
 * has to outlive the broker, not the machine. After a machine crash every
 * memfd it names is gone too, and the page cache already survives a dead
 * broker. On a disk-backed /run an fsync per subscription cost
 * milliseconds of every control request.
 */
static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int zbd_persist_save(const char *path, const struct zbd_registry *reg)
{
	_zb_cleanup_free_ uint8_t *buf = NULL;
	_zb_cleanup_free_ char *tmp = NULL;
	size_t len;
	int fd, r;

	r = pack_registry(reg, &buf, &len);
	if (r < 0)
		return r;
	/* Beside @path, so that the rename stays on one file system. */
	if (asprintf(&tmp, "%s.XXXXXX", path) < 0) {
		tmp = NULL; /* undefined after a failure */
		return -ENOMEM;
	}
	/* O_CREAT | O_EXCL and mode 0600: a new file that only we may read,
	 * whatever another process left at a name like it. */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = write_all(fd, buf, len);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

/* --- loading ----------------------------------------------------------- */

/*
 * The bytes of @path in *@buf (malloc()ed, also on failure: the caller
 * frees it), if it is a file that only we can have written.
 */
static int read_state_file(const char *path, uint8_t **buf, size_t *len)
{
	_zb_cleanup_close_ int fd = -1;
	struct stat st;
	size_t size, got = 0;

	/* A link could point us at any file; a FIFO would hang the open. */
	fd = open(path,
		  O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADMSG;
	if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
		return -EPERM;
	if (st.st_size > ZBD_PERSIST_MAX_BYTES)
		return -EBADMSG;
	size = (size_t)st.st_size;
	*buf = malloc(size + 1); /* + 1: an empty file is no failure */
	if (!*buf)
		return -ENOMEM;
	while (got < size) {
		ssize_t n = read(fd, *buf + got, size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break; /* shrunk since fstat(): unpacking judges */
		got += (size_t)n;
	}
	*len = got;
	return 0;
}

/* @rec, checked, into @s. Duplicates are found later, once sorted. */
static int channel_from_record(const Zbusd__SavedChannel *rec,
			       uint64_t next_id, struct zbd_saved_channel *s)
{
	if (!zb_ctl_name_valid(rec->name))
		return -EBADMSG;
	if (rec->id == 0 || rec->id > next_id || rec->mode > 0777 ||
	    (rec->default_policy != ZBUS_RELIABLE &&
	     rec->default_policy != ZBUS_LOSSY))
		return -EBADMSG;
	if (!rec->max_msg_size || !rec->ring_capacity || !rec->arena_bytes ||
	    !rec->max_subscribers || !rec->segment_bytes)
		return -EBADMSG;
	snprintf(s->name, sizeof(s->name), "%s", rec->name);
	s->id = rec->id;
	s->owner_uid = rec->owner_uid;
	s->owner_gid = rec->owner_gid;
	s->mode = rec->mode;
	s->default_policy = rec->default_policy;
	s->max_msg_size = rec->max_msg_size;
	s->ring_capacity = rec->ring_capacity;
	s->arena_bytes = rec->arena_bytes;
	s->max_subscribers = rec->max_subscribers;
	s->segment_bytes = rec->segment_bytes;
	s->seg_dev = rec->seg_dev;
	s->seg_ino = rec->seg_ino;
	s->created_unix_ns = rec->created_unix_ns;
	s->max_publishers = rec->max_publishers;
	s->unblock_timeout_ms = rec->unblock_timeout_ms;
	s->state_dev = rec->state_dev;
	s->state_ino = rec->state_ino;
	s->sealed = rec->sealed;
	return 0;
}

static int by_id(const void *a, const void *b)
{
	const struct zbd_saved_channel *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

static int by_name(const void *a, const void *b)
{
	const struct zbd_saved_channel *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

/*
 * -EBADMSG if two of the @n channels of @s share an id or a name. Sorts @s
 * by id: n log n, where comparing every pair of 4096 would take seconds.
 */
static int check_unique(struct zbd_saved_channel *s, size_t n)
{
	_zb_cleanup_free_ const struct zbd_saved_channel **names = NULL;

	qsort(s, n, sizeof(*s), by_id);
	for (size_t i = 1; i < n; i++)
		if (s[i - 1].id == s[i].id)
			return -EBADMSG;
	names = malloc(n * sizeof(*names));
	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		names[i] = &s[i];
	qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 1; i < n; i++)
		if (!strcmp(names[i - 1]->name, names[i]->name))
			return -EBADMSG;
	return 0;
}

/* The channels of @st, checked, in *@out (NULL if none). */
static int channels_from_state(const Zbusd__State *st,
			       struct zbd_saved_channel **out)
{
	_zb_cleanup_free_ struct zbd_saved_channel *s = NULL;
	size_t n = st->n_channel;
	int r;

	/* No version: not a state file (an empty one unpacks as zeroes). */
	if (st->version == 0)
		return -EBADMSG;
	if (st->version != ZBD_PERSIST_VERSION)
		return -EPROTO;
	if (!st->complete || n > ZBD_MAX_CHANNELS)
		return -EBADMSG;
	if (n == 0)
		return 0;
	s = calloc(n, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		r = channel_from_record(st->channel[i], st->next_id, &s[i]);
		if (r < 0)
			return r;
	}
	r = check_unique(s, n);
	if (r < 0)
		return r;
	*out = s;
	s = NULL;
	return 0;
}

static int channel_has_id(const void *key, const void *elem)
{
	const uint64_t *id = key;
	const struct zbd_saved_channel *c = elem;

	return (*id > c->id) - (*id < c->id);
}

/* @rec, checked against the channels (@ch, @nch, sorted by id), in @w. */
static int watch_from_record(const Zbusd__SavedWatch *rec,
			     const struct zbd_saved_channel *ch, size_t nch,
			     struct zbd_saved_watch *w)
{
	const struct zbd_saved_channel *c =
		bsearch(&rec->channel_id, ch, nch, sizeof(*ch), channel_has_id);

	if (!c || !rec->pid || rec->pid > INT32_MAX ||
	    (rec->word & ZB_SLOT_STATE_MASK) != ZB_SLOT_ACTIVE)
		return -EBADMSG;
	if (rec->kind == ZBD_WATCH_SUB ? rec->slot >= c->max_subscribers :
	    rec->kind == ZBD_WATCH_PUB ? rec->slot >= c->max_publishers : 1)
		return -EBADMSG;
	*w = (struct zbd_saved_watch){
		.channel_id = rec->channel_id,
		.kind = (enum zbd_watch_kind)rec->kind,
		.slot = rec->slot,
		.word = rec->word,
		.uid = (uid_t)rec->uid,
		.pid = (pid_t)rec->pid,
		.start_time = rec->start_time,
		.ref_table = rec->ref_table,
	};
	return 0;
}

/* The watches of @st, checked against @out's channels, into @out. */
static int watches_from_state(const Zbusd__State *st,
			      struct zbd_saved_state *out)
{
	size_t n = st->n_watch;

	if (n > ZBD_MAX_SAVED_WATCHES)
		return -EBADMSG;
	if (n == 0)
		return 0;
	out->watches = calloc(n, sizeof(*out->watches));
	if (!out->watches)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int r = watch_from_record(st->watch[i], out->channels,
					  out->nchannels, &out->watches[i]);

		if (r < 0)
			return r;
	}
	out->nwatches = n;
	return 0;
}

void zbd_saved_state_free(struct zbd_saved_state *st)
{
	free(st->channels);
	free(st->watches);
	memset(st, 0, sizeof(*st));
}

int zbd_persist_load(const char *path, struct zbd_saved_state *out)
{
	_zb_cleanup_free_ uint8_t *buf = NULL;
	Zbusd__State *st;
	size_t len = 0;
	int r;

	memset(out, 0, sizeof(*out));
	r = read_state_file(path, &buf, &len);
	if (r == -ENOENT)
		return 0; /* never saved: a fresh start */
	if (r < 0)
		return r;
	st = zbusd__state__unpack(NULL, len, buf);
	if (!st)
		return -EBADMSG;
	r = channels_from_state(st, &out->channels);
	if (r == 0) {
		out->nchannels = st->n_channel;
		out->next_id = st->next_id;
		r = watches_from_state(st, out);
	}
	zbusd__state__free_unpacked(st, NULL);
	if (r < 0)
		zbd_saved_state_free(out);
	return r;
}
