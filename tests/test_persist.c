/* SPDX-License-Identifier: MIT */
/*
 * test_persist.c - the broker's saved registry: what zbd_persist_save()
 * writes, zbd_persist_load() gives back field for field, and a file that
 * was cut short, corrupted, forged or swapped for something else is
 * refused with the code persist.h documents.
 *
 * Forged files are packed by hand from a valid State with one field wrong
 * per case, so that each check of the loader is shown to stand on its own.
 * Each test gets a private directory under /tmp; the fixture checks that
 * no fd or mapping outlives the test, and AddressSanitizer builds that no
 * memory does.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "persist.h"
#include "registry.h"
#include "requests.h"
#include "testutil.h"
#include "zbus/zbus.h"
#include "zbusd_state.pb-c.h"

#define NOBODY 65534

static char dir[64];
static char state_path[128];

/* --- fixture ---------------------------------------------------------- */

static void setup(void)
{
	tu_leak_begin();
	snprintf(dir, sizeof(dir), "/tmp/zbus-persist-XXXXXX");
	cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(state_path, sizeof(state_path), "%s/zbusd.state", dir);
}

static void teardown(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) < 0)
			unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	tu_leak_end();
}

TestSuite(persist, .init = setup, .fini = teardown, .timeout = 30);

/* --- helpers ---------------------------------------------------------- */

/* Entries of the test's directory: a temp file left behind shows here. */
static int count_entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	cr_assert(d, "opendir %s: %s", dir, strerror(errno));
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(fchmod(fd, 0600), 0); /* whatever the umask */
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	cr_assert(buf);
	cr_assert_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/*
 * zbd_persist_load() of @path, which must leave nothing to free when it
 * fails. Return: its result; *@n the channels it found.
 */
static int load_path(const char *path, size_t *n)
{
	struct zbd_saved_state st;
	int r;

	memset(&st, 0xff, sizeof(st)); /* a failed load must zero it all */
	r = zbd_persist_load(path, &st);
	if (r < 0) {
		cr_assert_null(st.channels, "a failed load hands out channels");
		cr_assert_null(st.watches, "a failed load hands out watches");
		cr_assert_eq(st.nchannels, 0);
		cr_assert_eq(st.nwatches, 0);
		cr_assert_eq(st.next_id, 0);
	}
	*n = st.nchannels;
	zbd_saved_state_free(&st);
	return r;
}

static int load(void)
{
	size_t n;

	return load_path(state_path, &n);
}

/* --- a real registry -------------------------------------------------- */

static const struct {
	const char *name;
	struct zbus_channel_opts opts;
	uint32_t mode, policy;
	uid_t uid;
	gid_t gid;
} channels[] = {
	{ "sensors/imu",
	  { .max_msg_size = 1024, .ring_capacity = 16, .max_subscribers = 4 },
	  0600, ZBUS_RELIABLE, 1000, 1000 },
	{ "video.raw",
	  { .max_msg_size = 4096,
	    .ring_capacity = 64,
	    .max_subscribers = 8,
	    .arena_bytes = 1 << 20 },
	  0640, ZBUS_LOSSY, 0, 44 },
	{ "gone", { .max_msg_size = 512 }, 0666, ZBUS_RELIABLE, 1, 1 },
	{ "log-lines", { 0 }, 0664, ZBUS_LOSSY, NOBODY, NOBODY },
};
#define NCHANNELS (sizeof(channels) / sizeof(channels[0]))

/*
 * Every channel above, less "gone": its id stays used, so that next_id is
 * more than the number of channels, as in a broker that ran a while.
 */
static void make_registry(struct zbd_registry *reg)
{
	struct zbd_channel *c;

	*reg = (struct zbd_registry){ 0 };
	for (size_t i = 0; i < NCHANNELS; i++) {
		struct zbd_identity who = { .uid = channels[i].uid,
					    .gid = channels[i].gid };

		cr_assert_eq(zbd_registry_create(reg, channels[i].name,
						 &channels[i].opts,
						 channels[i].mode,
						 channels[i].policy, &who, &c),
			     0, "create %s", channels[i].name);
	}
	zbd_registry_remove(reg, zbd_registry_find(reg, "gone"));
	cr_assert_eq(reg->count, NCHANNELS - 1);
	cr_assert_eq(reg->next_id, NCHANNELS);
}

static void assert_same(const struct zbd_saved_channel *s,
			const struct zbd_channel *c)
{
	struct stat st, sst;

	cr_assert_eq(fstat(zbus_channel_fd(c->ch), &st), 0);
	cr_assert_eq(fstat(zbus_channel_state_fd(c->ch), &sst), 0);
	cr_assert_str_eq(s->name, c->name);
	cr_assert_eq(s->id, c->id, "%s", c->name);
	cr_assert_eq(s->owner_uid, c->owner_uid, "%s", c->name);
	cr_assert_eq(s->owner_gid, c->owner_gid, "%s", c->name);
	cr_assert_eq(s->mode, c->mode, "%s", c->name);
	cr_assert_eq(s->default_policy, c->default_policy, "%s", c->name);
	cr_assert_eq(s->max_msg_size, c->info.max_msg_size, "%s", c->name);
	cr_assert_eq(s->ring_capacity, c->info.ring_capacity, "%s", c->name);
	cr_assert_eq(s->arena_bytes, c->info.arena_bytes, "%s", c->name);
	cr_assert_eq(s->max_subscribers, c->info.max_subscribers, "%s",
		     c->name);
	cr_assert_eq(s->segment_bytes, c->info.segment_bytes, "%s", c->name);
	cr_assert_eq(s->seg_dev, (uint64_t)st.st_dev, "%s", c->name);
	cr_assert_eq(s->seg_ino, (uint64_t)st.st_ino, "%s", c->name);
	cr_assert_eq(s->state_dev, (uint64_t)sst.st_dev, "%s", c->name);
	cr_assert_eq(s->state_ino, (uint64_t)sst.st_ino, "%s", c->name);
	cr_assert_neq(s->state_ino, s->seg_ino, "%s", c->name);
	cr_assert_eq(s->sealed, zbd_sealed(c), "%s", c->name);
	cr_assert_eq(s->created_unix_ns, c->created_unix_ns, "%s", c->name);
	cr_assert_neq(s->created_unix_ns, 0, "%s", c->name);
}

/* Is @w in @reg's registry, live (on a channel @reg holds) or pending? */
#define SAME_WATCH(a, b)                                                  \
	((a)->channel_id == (b)->channel_id && (a)->kind == (b)->kind &&  \
	 (a)->slot == (b)->slot && (a)->word == (b)->word &&              \
	 (a)->uid == (b)->uid && (a)->pid == (b)->pid &&                  \
	 (a)->start_time == (b)->start_time)

static int watch_saved(const struct zbd_registry *reg,
		       const struct zbd_saved_watch *w)
{
	for (const struct zbd_watch *l = reg->watches; l; l = l->next)
		if (SAME_WATCH(l, w))
			return 1;
	for (size_t i = 0; i < reg->npending_watches; i++)
		if (SAME_WATCH(&reg->pending_watches[i], w))
			return 1;
	return 0;
}

/* Every watch @st loaded is one of @reg's, and it holds as many as @reg
 * has on the channels it holds. */
static void assert_same_watches(const struct zbd_registry *reg,
				const struct zbd_saved_state *st)
{
	size_t expect = reg->npending_watches;

	for (const struct zbd_watch *l = reg->watches; l; l = l->next)
		for (const struct zbd_channel *c = reg->head; c; c = c->next)
			expect += c->id == l->channel_id;
	cr_assert_eq(st->nwatches, expect, "%zu watches saved, %zu loaded",
		     expect, st->nwatches);
	for (size_t i = 0; i < st->nwatches; i++)
		cr_assert(watch_saved(reg, &st->watches[i]),
			  "loaded a watch never saved (slot %u pid %d)",
			  st->watches[i].slot, (int)st->watches[i].pid);
}

/* @reg saved and loaded back: the same channels, field for field. */
static void assert_round_trip(const struct zbd_registry *reg)
{
	struct zbd_saved_state st;
	struct zbd_saved_channel *saved;
	size_t n;

	cr_assert_eq(zbd_persist_save(state_path, reg), 0);
	cr_assert_eq(zbd_persist_load(state_path, &st), 0);
	saved = st.channels;
	n = st.nchannels;
	cr_assert_eq(n, reg->count);
	cr_assert_eq(st.next_id, reg->next_id);
	for (size_t i = 0; i < n; i++) {
		const struct zbd_channel *c =
			zbd_registry_find((struct zbd_registry *)reg,
					  saved[i].name);

		cr_assert(c, "loaded a channel never saved: %s",
			  saved[i].name);
		assert_same(&saved[i], c);
		if (i)
			cr_assert_gt(saved[i].id, saved[i - 1].id,
				     "not sorted by id");
	}
	assert_same_watches(reg, &st);
	zbd_saved_state_free(&st);
}

/* --- forged files ----------------------------------------------------- */

/* A valid State of up to four channels (and, with two or more, a watch on
 * a subscriber slot of the first and on a publisher slot of the second),
 * for a test to spoil one field. */
struct forged {
	Zbusd__State st;
	Zbusd__SavedChannel rec[4];
	Zbusd__SavedChannel *ptr[4];
	Zbusd__SavedWatch wrec[2];
	Zbusd__SavedWatch *wptr[2];
};

static void forge(struct forged *f, size_t n)
{
	static const char *const names[] = { "a", "b.c", "d/e-f", "g_h:9" };

	zbusd__state__init(&f->st);
	f->st.version = ZBD_PERSIST_VERSION;
	f->st.next_id = 10;
	f->st.complete = 1;
	f->st.n_channel = n;
	f->st.channel = f->ptr;
	for (size_t i = 0; i < n; i++) {
		Zbusd__SavedChannel *r = &f->rec[i];

		zbusd__saved_channel__init(r);
		r->name = (char *)names[i];
		r->id = i + 1;
		r->mode = 0660;
		r->default_policy = ZBUS_LOSSY;
		r->max_msg_size = 1024;
		r->ring_capacity = 16;
		r->arena_bytes = 4096;
		r->max_subscribers = 4;
		r->segment_bytes = 3 * 4096;
		r->seg_dev = 5;
		r->seg_ino = 100 + i;
		r->created_unix_ns = 1;
		r->max_publishers = 2;
		f->ptr[i] = r;
	}
	if (n < 2)
		return;
	for (size_t i = 0; i < 2; i++) {
		Zbusd__SavedWatch *w = &f->wrec[i];

		zbusd__saved_watch__init(w);
		w->channel_id = i + 1;
		w->kind = i ? ZBD_WATCH_PUB : ZBD_WATCH_SUB;
		w->slot = i ? 1 : 3; /* the last slot of each */
		w->word = (7u << 2) | ZB_SLOT_ACTIVE;
		w->uid = 1000;
		w->pid = 4242;
		w->start_time = 12345;
		f->wptr[i] = w;
	}
	f->st.n_watch = 2;
	f->st.watch = f->wptr;
}

static void write_state(const Zbusd__State *st)
{
	size_t len = zbusd__state__get_packed_size(st);
	uint8_t *buf = malloc(len);

	cr_assert(buf);
	zbusd__state__pack(st, buf);
	write_file(state_path, buf, len);
	free(buf);
}

/* The result of loading @f written out. */
static int load_forged(const struct forged *f)
{
	write_state(&f->st);
	return load();
}

/* --- round trips ------------------------------------------------------ */

Test(persist, round_trip_keeps_every_field)
{
	struct zbd_registry reg;

	make_registry(&reg);
	assert_round_trip(&reg);
	zbd_registry_clear(&reg);
}

/* Watches: those on live channels and the pending ones are saved whole;
 * one on a channel the registry no longer holds is left out. */
Test(persist, round_trip_keeps_the_watches_of_held_channels)
{
	struct zbd_registry reg;
	struct zbd_watch w[3] = {
		{ .kind = ZBD_WATCH_SUB, .slot = 3, .word = 4 | ZB_SLOT_ACTIVE,
		  .pid = 1234, .uid = 1000, .start_time = 987654321 },
		{ .kind = ZBD_WATCH_PUB, .slot = 0, .word = ZB_SLOT_ACTIVE,
		  .pid = 77, .uid = 0, .start_time = 5 },
		{ .kind = ZBD_WATCH_SUB, .slot = 0, .word = ZB_SLOT_ACTIVE,
		  .pid = 9, .uid = 9, .channel_id = 3 }, /* "gone"'s id */
	};
	struct zbd_saved_watch pending = {
		.channel_id = 1, .kind = ZBD_WATCH_PUB, .slot = 1,
		.word = 8 | ZB_SLOT_ACTIVE, .uid = 5, .pid = 4321,
		.start_time = 42,
	};
	struct zbd_saved_state st;

	make_registry(&reg);
	w[0].channel_id = zbd_registry_find(&reg, "video.raw")->id;
	w[1].channel_id = zbd_registry_find(&reg, "sensors/imu")->id;
	for (int i = 0; i < 3; i++)
		zbd_watch_link(&reg.watches, &w[i]);
	reg.pending_watches = &pending;
	reg.npending_watches = 1;
	assert_round_trip(&reg);
	cr_assert_eq(zbd_persist_load(state_path, &st), 0);
	cr_assert_eq(st.nwatches, 3, "the watch of a gone channel was saved");
	zbd_saved_state_free(&st);
	reg.pending_watches = NULL;
	reg.npending_watches = 0;
	reg.watches = NULL;
	zbd_registry_clear(&reg);
}

Test(persist, empty_registry_keeps_its_next_id)
{
	struct zbd_registry reg = { .next_id = 42 };

	assert_round_trip(&reg);
}

Test(persist, save_replaces_the_previous_file)
{
	struct zbd_registry reg;

	make_registry(&reg);
	assert_round_trip(&reg);
	zbd_registry_remove(&reg, zbd_registry_find(&reg, "video.raw"));
	assert_round_trip(&reg);
	zbd_registry_clear(&reg);
}

Test(persist, save_leaves_only_the_state_file_and_no_fd)
{
	struct zbd_registry reg;
	struct stat st;
	int fds;

	make_registry(&reg);
	fds = tu_count_fds();
	cr_assert_eq(zbd_persist_save(state_path, &reg), 0);
	cr_assert_eq(zbd_persist_save(state_path, &reg), 0);
	cr_assert_eq(tu_count_fds(), fds, "save leaks an fd");
	cr_assert_eq(count_entries(), 1, "a temp file was left behind");
	cr_assert_eq(lstat(state_path, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(st.st_uid, geteuid());
	zbd_registry_clear(&reg);
}

Test(persist, missing_file_is_a_fresh_start)
{
	struct zbd_saved_state st;

	memset(&st, 0xff, sizeof(st));
	cr_assert_eq(zbd_persist_load(state_path, &st), 0);
	cr_assert_null(st.channels);
	cr_assert_null(st.watches);
	cr_assert_eq(st.nchannels, 0);
	cr_assert_eq(st.nwatches, 0);
	cr_assert_eq(st.next_id, 0);
}

/* --- failed saves ----------------------------------------------------- */

Test(persist, failed_rename_removes_the_new_file)
{
	struct zbd_registry reg;

	make_registry(&reg);
	cr_assert_eq(mkdir(state_path, 0700), 0);
	cr_assert_eq(zbd_persist_save(state_path, &reg), -EISDIR);
	cr_assert_eq(count_entries(), 1, "the new file was left behind");
	zbd_registry_clear(&reg);
}

Test(persist, failed_write_keeps_the_old_file)
{
	struct rlimit small, old;
	struct zbd_registry reg, empty = { .next_id = 7 };
	size_t n;
	int r;

	make_registry(&reg);
	cr_assert_eq(zbd_persist_save(state_path, &empty), 0);
	/* The file size limit makes write() fail with EFBIG halfway. */
	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = (struct rlimit){ 16, old.rlim_max }; /* soft: can go back */
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
	r = zbd_persist_save(state_path, &reg);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	cr_assert_eq(r, -EFBIG);
	cr_assert_eq(count_entries(), 1, "the new file was left behind");
	cr_assert_eq(load_path(state_path, &n), 0);
	cr_assert_eq(n, 0, "the old file was replaced");
	zbd_registry_clear(&reg);
}

Test(persist, save_into_a_missing_directory_fails)
{
	struct zbd_registry reg = { 0 };
	char path[160];

	snprintf(path, sizeof(path), "%s/no/such.state", dir);
	cr_assert_eq(zbd_persist_save(path, &reg), -ENOENT);
}

/* --- damaged files ---------------------------------------------------- */

Test(persist, truncated_file_is_refused_at_every_length)
{
	struct zbd_registry reg;
	uint8_t *buf;
	size_t len;

	make_registry(&reg);
	cr_assert_eq(zbd_persist_save(state_path, &reg), 0);
	buf = read_file(state_path, &len);
	/* Cuts at a field boundary unpack fine: only the missing end shows
	 * that channels were lost. */
	for (size_t cut = 0; cut < len; cut++) {
		write_file(state_path, buf, cut);
		cr_assert_eq(load(), -EBADMSG, "%zu of %zu bytes", cut, len);
	}
	write_file(state_path, buf, len);
	cr_assert_eq(load(), 0);
	free(buf);
	zbd_registry_clear(&reg);
}

Test(persist, garbage_is_refused)
{
	static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0xff,
					   0xff, 0xff, 0xff, 0xff, 0xff,
					   0xff, 0x01, 0x13, 0x37 };
	char text[] = "this is not a protobuf";

	write_file(state_path, garbage, sizeof(garbage));
	cr_assert_eq(load(), -EBADMSG);
	write_file(state_path, text, sizeof(text));
	cr_assert_eq(load(), -EBADMSG);
}

Test(persist, other_version_is_refused)
{
	struct forged f;

	forge(&f, 2);
	cr_assert_eq(load_forged(&f), 0, "the forged state is not valid");
	f.st.version = ZBD_PERSIST_VERSION + 1;
	cr_assert_eq(load_forged(&f), -EPROTO);
	f.st.version = 0;
	cr_assert_eq(load_forged(&f), -EBADMSG, "no version: no state file");
}

Test(persist, oversize_file_is_refused)
{
	int fd = open(state_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(fchmod(fd, 0600), 0);
	cr_assert_eq(ftruncate(fd, ZBD_PERSIST_MAX_BYTES + 1), 0);
	close(fd);
	cr_assert_eq(load(), -EBADMSG);
}

/* --- forged channels -------------------------------------------------- */

/* The limits of each check, just inside: valid. */
Test(persist, values_at_the_limits_are_valid)
{
	char longest[ZB_CTL_NAME_MAX + 1];
	struct forged f;

	memset(longest, 'n', ZB_CTL_NAME_MAX);
	longest[ZB_CTL_NAME_MAX] = 0;
	forge(&f, 3);
	f.rec[0].name = longest;
	f.rec[0].id = f.st.next_id;
	f.wrec[0].channel_id = f.st.next_id;
	f.wrec[0].pid = INT32_MAX;
	f.wrec[1].start_time = UINT64_MAX;
	f.rec[1].mode = 0777;
	f.rec[1].default_policy = ZBUS_RELIABLE;
	f.rec[2].name = (char *)"!#$%&*+,:;<=>?@[]^`{|}~";
	cr_assert_eq(load_forged(&f), 0);
}

Test(persist, bad_names_are_refused)
{
	char too_long[ZB_CTL_NAME_MAX + 2];
	const char *bad[] = { "", "two words", "tab\there", "new\nline",
			      "del\x7f", "caf\xc3\xa9", too_long };
	struct forged f;

	memset(too_long, 'n', ZB_CTL_NAME_MAX + 1);
	too_long[ZB_CTL_NAME_MAX + 1] = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		forge(&f, 3);
		f.rec[1].name = (char *)bad[i];
		cr_assert_eq(load_forged(&f), -EBADMSG, "name \"%s\"", bad[i]);
	}
}

/* Each spoils one field of a valid forged state of three channels. */
static void id_zero(struct forged *f)
{
	f->rec[1].id = 0;
}
static void id_above_next_id(struct forged *f)
{
	f->rec[1].id = f->st.next_id + 1;
}
static void id_twice(struct forged *f)
{
	f->rec[2].id = f->rec[0].id;
}
static void name_twice(struct forged *f)
{
	f->rec[2].name = f->rec[0].name;
}
static void mode_above_0777(struct forged *f)
{
	f->rec[1].mode = 01000;
}
static void unknown_policy(struct forged *f)
{
	f->rec[1].default_policy = ZBUS_LOSSY + 1;
}
static void no_max_msg_size(struct forged *f)
{
	f->rec[1].max_msg_size = 0;
}
static void no_ring_capacity(struct forged *f)
{
	f->rec[1].ring_capacity = 0;
}
static void no_arena_bytes(struct forged *f)
{
	f->rec[1].arena_bytes = 0;
}
static void no_max_subscribers(struct forged *f)
{
	f->rec[1].max_subscribers = 0;
}
static void no_segment_bytes(struct forged *f)
{
	f->rec[1].segment_bytes = 0;
}
static void not_complete(struct forged *f)
{
	f->st.complete = 0;
}
static void watch_of_no_channel(struct forged *f)
{
	f->wrec[0].channel_id = 9; /* below next_id, but no channel's */
}
static void watch_kind_none(struct forged *f)
{
	f->wrec[0].kind = ZBD_WATCH_NONE;
}
static void watch_kind_unknown(struct forged *f)
{
	f->wrec[1].kind = 3;
}
static void watch_sub_slot_beyond(struct forged *f)
{
	f->wrec[0].slot = f->rec[0].max_subscribers;
}
static void watch_pub_slot_beyond(struct forged *f)
{
	f->wrec[1].slot = f->rec[1].max_publishers;
}
static void watch_word_not_active(struct forged *f)
{
	f->wrec[1].word &= ~ZB_SLOT_STATE_MASK;
}
static void watch_pid_zero(struct forged *f)
{
	f->wrec[0].pid = 0;
}
static void watch_pid_negative(struct forged *f)
{
	f->wrec[1].pid = 0x80000000u;
}

static const struct {
	const char *what;
	void (*spoil)(struct forged *f);
} spoilers[] = {
	{ "id 0", id_zero },
	{ "id above next_id", id_above_next_id },
	{ "an id twice", id_twice },
	{ "a name twice", name_twice },
	{ "mode above 0777", mode_above_0777 },
	{ "unknown policy", unknown_policy },
	{ "max_msg_size 0", no_max_msg_size },
	{ "ring_capacity 0", no_ring_capacity },
	{ "arena_bytes 0", no_arena_bytes },
	{ "max_subscribers 0", no_max_subscribers },
	{ "segment_bytes 0", no_segment_bytes },
	{ "not complete", not_complete },
	{ "a watch on no channel", watch_of_no_channel },
	{ "a watch of no kind", watch_kind_none },
	{ "a watch of an unknown kind", watch_kind_unknown },
	{ "a subscriber watch beyond the slots", watch_sub_slot_beyond },
	{ "a publisher watch beyond the slots", watch_pub_slot_beyond },
	{ "a watch on a slot not active", watch_word_not_active },
	{ "a watch of pid 0", watch_pid_zero },
	{ "a watch of a negative pid", watch_pid_negative },
};
#define NSPOILERS (sizeof(spoilers) / sizeof(spoilers[0]))

/* Indices, not pointers: a parameter is copied into another process. */
ParameterizedTestParameters(persist, spoiled_field_is_refused)
{
	static int cases[NSPOILERS];

	for (size_t i = 0; i < NSPOILERS; i++)
		cases[i] = (int)i;
	return cr_make_param_array(int, cases, NSPOILERS);
}

ParameterizedTest(int *i, persist, spoiled_field_is_refused)
{
	struct forged f;

	forge(&f, 3);
	cr_assert_eq(load_forged(&f), 0, "the forged state is not valid");
	spoilers[*i].spoil(&f);
	cr_assert_eq(load_forged(&f), -EBADMSG, "%s", spoilers[*i].what);
}

Test(persist, more_channels_than_a_broker_holds_are_refused)
{
	const size_t n = ZBD_MAX_CHANNELS + 1;
	Zbusd__SavedChannel *recs = calloc(n, sizeof(*recs));
	Zbusd__SavedChannel **ptrs = calloc(n, sizeof(*ptrs));
	char (*names)[16] = calloc(n, sizeof(*names));
	struct forged f;

	cr_assert(recs && ptrs && names);
	forge(&f, 1);
	for (size_t i = 0; i < n; i++) {
		recs[i] = f.rec[0];
		snprintf(names[i], sizeof(names[i]), "c%zu", i);
		recs[i].name = names[i];
		recs[i].id = i + 1;
		ptrs[i] = &recs[i];
	}
	f.st.next_id = n;
	f.st.channel = ptrs;
	f.st.n_channel = n - 1;
	cr_assert_eq(load_forged(&f), 0, "a full broker's state");
	f.st.n_channel = n;
	cr_assert_eq(load_forged(&f), -EBADMSG);
	free(names);
	free(ptrs);
	free(recs);
}

Test(persist, more_watches_than_a_broker_holds_are_refused)
{
	const size_t n = ZBD_MAX_SAVED_WATCHES + 1;
	Zbusd__SavedWatch **ptrs = calloc(n, sizeof(*ptrs));
	struct forged f;

	cr_assert(ptrs);
	forge(&f, 2);
	for (size_t i = 0; i < n; i++)
		ptrs[i] = &f.wrec[i & 1];
	f.st.watch = ptrs;
	f.st.n_watch = n - 1;
	cr_assert_eq(load_forged(&f), 0, "as many watches as a broker holds");
	f.st.n_watch = n;
	cr_assert_eq(load_forged(&f), -EBADMSG);
	free(ptrs);
}

/* --- files of the wrong kind ------------------------------------------ */

Test(persist, group_or_other_writable_file_is_refused)
{
	struct forged f;

	forge(&f, 1);
	write_state(&f.st);
	cr_assert_eq(chmod(state_path, 0644), 0);
	cr_assert_eq(load(), 0, "readable by others is fine");
	cr_assert_eq(chmod(state_path, 0620), 0);
	cr_assert_eq(load(), -EPERM, "group-writable");
	cr_assert_eq(chmod(state_path, 0602), 0);
	cr_assert_eq(load(), -EPERM, "writable by others");
}

Test(persist, file_of_another_user_is_refused)
{
	struct forged f;

	if (geteuid() != 0)
		cr_skip_test("needs root to give the file away");
	forge(&f, 1);
	write_state(&f.st);
	cr_assert_eq(chown(state_path, NOBODY, NOBODY), 0);
	cr_assert_eq(load(), -EPERM);
}

Test(persist, symlink_is_not_followed)
{
	char real[160];
	size_t n;
	struct forged f;

	forge(&f, 1);
	write_state(&f.st);
	snprintf(real, sizeof(real), "%s/real.state", dir);
	cr_assert_eq(rename(state_path, real), 0);
	cr_assert_eq(load_path(real, &n), 0, "the target itself is valid");
	cr_assert_eq(symlink(real, state_path), 0);
	cr_assert_eq(load(), -ELOOP);
}

Test(persist, directory_or_fifo_is_refused)
{
	cr_assert_eq(mkfifo(state_path, 0600), 0);
	cr_assert_eq(load(), -EBADMSG, "a FIFO (and the open must not hang)");
	cr_assert_eq(unlink(state_path), 0);
	cr_assert_eq(mkdir(state_path, 0700), 0);
	cr_assert_eq(load(), -EBADMSG, "a directory");
}

/*
 * A delivery's watch belongs to the broker's uid (so that the subscriber
 * cannot unregister the broker's slot) but deliveries have their own
 * quota, per subscriber: they must not use up the broker uid's watches.
 */
Test(persist, a_deliverys_watch_does_not_count_against_the_broker_uid)
{
	struct zbd_watch w[3] = {
		{ .kind = ZBD_WATCH_SUB, .slot = 0, .pid = 100, .uid = 0 },
		{ .kind = ZBD_WATCH_SUB, .slot = 1, .pid = 100, .uid = 0,
		  .for_pid = 200, .for_uid = 1000 },
		{ .kind = ZBD_WATCH_PUB, .slot = 0, .pid = 300, .uid = 1000 },
	};
	struct zbd_watch *list = NULL;

	for (int i = 0; i < 3; i++)
		zbd_watch_link(&list, &w[i]);
	cr_expect_eq(zbd_watches_of_uid(list, 0), 1);
	cr_expect_eq(zbd_watches_of_uid(list, 1000), 1);
}
