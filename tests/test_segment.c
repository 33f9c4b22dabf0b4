/* SPDX-License-Identifier: MIT */
/*
 * test_segment.c - a channel's two memfds seen from the outside: what
 * zbus_channel_create() accepts and produces, and what
 * zbus_channel_attach_dup() refuses.
 *
 * Attach is the trust boundary of the library: a peer hands us any fds it
 * likes. Every hostile case below is built the way a peer would build it,
 * through the public API only: copy both segments of a real channel
 * (pread), corrupt one header field, write the copies into fresh memfds,
 * seal them and attach. A single corrupted field per test, so that each
 * check of zb_layout_validate() and zb_state_validate() is shown to stand
 * on its own and not only behind an earlier one; a data header test
 * attaches with an intact state copy, and the other way round, so that
 * the header under test is what refuses.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"
#include "fuzz/layout_input.h"
#include "layout.h"
#include "segment.h"
#include "testutil.h"
#include "zbus/zbus.h"

#define PAGE 4096u

static void leak_init(void)
{
	tu_leak_begin();
}

static void leak_fini(void)
{
	tu_leak_end();
}

TestSuite(segment, .init = leak_init, .fini = leak_fini, .timeout = 30);
TestSuite(state, .init = leak_init, .fini = leak_fini, .timeout = 30);
TestSuite(readonly, .init = leak_init, .fini = leak_fini, .timeout = 30);
TestSuite(create, .init = leak_init, .fini = leak_fini, .timeout = 30);
TestSuite(error, .init = leak_init, .fini = leak_fini, .timeout = 30);
TestSuite(testutil, .init = leak_init, .fini = leak_fini, .timeout = 30);

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/*
 * A small geometry keeps every hostile copy small: header, ctl, 4
 * publisher slots and 16 descriptors fit in page 0 of the data segment and
 * the arena is page 1; the state segment (header, sub_ctl and 4 subscriber
 * slots) is one page.
 */
static const struct zbus_channel_opts small_opts = {
	.max_msg_size = 1024,
	.ring_capacity = 16,
	.max_subscribers = 4,
	.max_publishers = 4,
};

/* A copy of both memfds of a real, freshly created channel. */
struct image {
	uint8_t *buf; /* data segment */
	size_t size;
	uint8_t *state; /* state segment */
	size_t state_size;
	struct zb_shm_hdr hdr;    /* what a data test corrupts */
	struct zb_state_hdr shdr; /* what a state test corrupts */
};

static void image_load(struct image *im, const struct zbus_channel_opts *o)
{
	cr_assert_eq(tu_segment_copy(o, &im->buf, &im->size, &im->state,
				     &im->state_size),
		     0);
	cr_assert_geq(im->size, sizeof(im->hdr));
	cr_assert_geq(im->state_size, sizeof(im->shdr));
	memcpy(&im->hdr, im->buf, sizeof(im->hdr));
	memcpy(&im->shdr, im->state, sizeof(im->shdr));
	cr_assert_neq(im->hdr.channel_id, 0);
	cr_assert_eq(im->shdr.channel_id, im->hdr.channel_id);
	/* The test relies on the geometry small_opts gives: fail loudly if
	 * the library's layout changes under it. */
	if (o == &small_opts) {
		cr_assert_eq(im->size, 2 * PAGE);
		cr_assert_eq(im->hdr.arena_off, PAGE);
		cr_assert_eq(im->hdr.arena_size, PAGE);
		cr_assert_eq(im->state_size, PAGE);
		cr_assert_eq(im->hdr.state_size, PAGE);
		cr_assert_eq(im->shdr.state_size, PAGE);
		cr_assert_eq(im->shdr.sctl_off, sizeof(struct zb_state_hdr));
		cr_assert_eq(im->shdr.subs_off,
			     im->shdr.sctl_off + sizeof(struct zb_sub_ctl));
	}
}

static void image_free(struct image *im)
{
	free(im->buf);
	free(im->state);
	im->buf = im->state = NULL;
}

/*
 * A memfd named like the library's own ("zbus:") so that the fixture's
 * mapping count also sees a channel attached from it.
 */
static int memfd_with(const void *buf, size_t len, uint64_t file_size,
		      unsigned mfd_flags, int seals)
{
	int fd = tu_sealed_memfd("hostile", buf, len, file_size, mfd_flags,
				 seals);

	cr_assert_geq(fd, 0, "hostile memfd: %s", strerror(-fd));
	return fd;
}

static const int all_seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

/* @seg with @hdr (possibly corrupted) over its start, in a memfd. */
static int copy_memfd(const uint8_t *seg, size_t len, const void *hdr,
		      size_t hdr_len, uint64_t file_size, int seals)
{
	uint8_t *copy = malloc(len);
	int fd;

	cr_assert_not_null(copy);
	memcpy(copy, seg, len);
	memcpy(copy, hdr, hdr_len);
	fd = memfd_with(copy, len, file_size, MFD_ALLOW_SEALING, seals);
	free(copy);
	return fd;
}

static int data_memfd(const struct image *im, uint64_t file_size, int seals)
{
	return copy_memfd(im->buf, im->size, &im->hdr, sizeof(im->hdr),
			  file_size, seals);
}

static int state_memfd(const struct image *im, uint64_t file_size,
		       int seals)
{
	return copy_memfd(im->state, im->state_size, &im->shdr,
			  sizeof(im->shdr), file_size, seals);
}

/* Reopen @fd through /proc, as any process holding it can. */
static int reopen(int fd, int flags)
{
	char path[64];
	int fd2;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	fd2 = open(path, flags | O_CLOEXEC);
	cr_assert_geq(fd2, 0, "reopen %s: %s", path, strerror(errno));
	return fd2;
}

/* Publish one message on @ch and receive it on a second handle. */
static void round_trip(struct zbus_channel *pub_ch,
		       struct zbus_channel *sub_ch, const char *text)
{
	struct zbus_pub_opts po = { .timeout_ms = 1000 };
	struct zbus_sub_opts so = { .policy = ZBUS_RELIABLE, .spin_us = -1 };
	struct zbus_pub *pub = NULL;
	struct zbus_sub *sub = NULL;
	char buf[64] = { 0 };
	size_t len = strlen(text) + 1;

	cr_assert_eq(zbus_sub_new(sub_ch, &so, &sub), 0);
	cr_assert_eq(zbus_pub_new(pub_ch, &po, &pub), 0);
	cr_assert_eq(zbus_pub_send(pub, text, len), 0);
	cr_assert_eq(zbus_sub_recv(sub, buf, sizeof(buf), NULL, 1000),
		     (int)len);
	cr_assert_str_eq(buf, text);
	zbus_pub_free(pub);
	zbus_sub_free(sub);
}

/*
 * Attach @data_fd and @state_fd and close them. A successful attach is
 * exercised with one message, then everything is freed: the caller only
 * sees the code.
 */
static int attach_consume(int data_fd, int state_fd)
{
	struct zbus_channel *ch = NULL;
	int r = zbus_channel_attach_dup(data_fd, state_fd, &ch);

	close(data_fd);
	close(state_fd);
	if (r == 0) {
		cr_assert_not_null(ch);
		round_trip(ch, ch, "hostile but valid");
		zbus_channel_free(ch);
	}
	return r;
}

/* @im, headers as corrupted, in files of @size and @state_size bytes. */
static int attach_files(const struct image *im, uint64_t size,
			uint64_t state_size)
{
	return attach_consume(data_memfd(im, size, all_seals),
			      state_memfd(im, state_size, all_seals));
}

static int attach_sized(const struct image *im, uint64_t file_size)
{
	return attach_files(im, file_size, im->state_size);
}

static int attach_image(const struct image *im)
{
	return attach_files(im, im->size, im->state_size);
}

/* @im in memfds of the right sizes, sealed with @seals and @state_seals. */
static int attach_sealed(const struct image *im, int seals, int state_seals)
{
	return attach_consume(data_memfd(im, im->size, seals),
			      state_memfd(im, im->state_size, state_seals));
}

/* The headers of a fresh small channel, for one corruption. */
#define WITH_IMAGE(im) \
	struct image im; \
	image_load(&im, &small_opts)

/* ------------------------------------------------------------------ */
/* The baseline: an untouched copy attaches                            */
/* ------------------------------------------------------------------ */

Test(segment, attach_accepts_untouched_copy)
{
	WITH_IMAGE(im);
	/* Without this, every rejection below could be an artefact of how
	 * the copy is made. */
	cr_assert_eq(attach_image(&im), 0);
	image_free(&im);
}

/*
 * fuzz_layout's seed must be a channel of this layout: a stale one fails
 * validation, and the fuzzer then starts from bytes that reach nothing
 * past the version check. A layout change makes this fail until the seed
 * is regenerated (tests/fuzz/make_seed_layout.c says how).
 */
Test(segment, fuzz_seed_is_of_current_layout)
{
	const char *src = getenv("ZBUS_SOURCE_DIR");
	struct fuzz_layout_input in;
	struct zb_geometry g;
	char path[PATH_MAX];
	size_t n;
	FILE *f;

	cr_assert(src && *src, "ZBUS_SOURCE_DIR is not set: run through "
			       "ctest, or set it to the source directory");
	snprintf(path, sizeof(path), "%s/tests/fuzz/seed_layout.bin", src);
	f = fopen(path, "rbe");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	n = fread(&in, 1, sizeof(in), f);
	fclose(f);
	cr_assert_eq(n, sizeof(in), "%s: %zu bytes", path, n);
	cr_assert_eq(in.hdr.version_major, ZB_LAYOUT_MAJOR);
	cr_assert_eq(in.hdr.version_minor, ZB_LAYOUT_MINOR);
	cr_assert_eq(in.hdr.hdr_size, sizeof(in.hdr));
	cr_assert_eq(in.shdr.hdr_size, sizeof(in.shdr));
	cr_assert_eq(zb_layout_validate(&in.hdr, in.size, &g), 0);
	cr_assert_eq(zb_state_validate(&in.shdr, in.state_size, &g), 0);
}

/* ------------------------------------------------------------------ */
/* Identity and versioning                                             */
/* ------------------------------------------------------------------ */

Test(segment, attach_rejects_bad_magic)
{
	WITH_IMAGE(im);
	im.hdr.magic ^= 1;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.hdr.magic = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_unknown_major_version)
{
	WITH_IMAGE(im);
	im.hdr.version_major = ZB_LAYOUT_MAJOR + 1;
	cr_expect_eq(attach_image(&im), -EPROTO);
	im.hdr.version_major = 0;
	cr_expect_eq(attach_image(&im), -EPROTO);
	image_free(&im);
}

Test(segment, attach_rejects_unknown_incompat_feature)
{
	WITH_IMAGE(im);
	im.hdr.incompat_features = 1;
	cr_expect_eq(attach_image(&im), -EPROTO);
	im.hdr.incompat_features = 1ull << 63;
	cr_expect_eq(attach_image(&im), -EPROTO);
	image_free(&im);
}

Test(segment, attach_accepts_newer_minor_and_unknown_compat_feature)
{
	struct zbus_channel *ch = NULL;
	struct zbus_channel_info info;
	int fd, sfd;

	WITH_IMAGE(im);
	/* A newer writer that only added compatible things must still be
	 * readable by us: that is the point of the minor/compat split. */
	im.hdr.version_minor = ZB_LAYOUT_MINOR + 1;
	im.hdr.compat_features = 1ull << 17 | 1ull << 63;
	cr_expect_eq(attach_image(&im), 0);

	/* And the attached channel reports the writer's minor version. */
	fd = data_memfd(&im, im.size, all_seals);
	sfd = state_memfd(&im, im.state_size, all_seals);
	cr_assert_eq(zbus_channel_attach_dup(fd, sfd, &ch), 0);
	cr_assert_eq(zbus_channel_info(ch, &info), 0);
	cr_expect_eq(info.version_major, ZB_LAYOUT_MAJOR);
	cr_expect_eq(info.version_minor, ZB_LAYOUT_MINOR + 1);
	zbus_channel_free(ch);
	close(fd);
	close(sfd);
	image_free(&im);
}

/* ------------------------------------------------------------------ */
/* Sizes and offsets                                                   */
/* ------------------------------------------------------------------ */

Test(segment, attach_rejects_small_hdr_size)
{
	WITH_IMAGE(im);
	im.hdr.hdr_size = sizeof(struct zb_shm_hdr) - 1;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.hdr.hdr_size = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_segment_size_not_file_size)
{
	WITH_IMAGE(im);
	uint64_t real = im.hdr.segment_size;

	/* Larger than the file: mapping it would fault past the end. */
	im.hdr.segment_size = real + PAGE;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.hdr.segment_size = real - 1;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.hdr.segment_size = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_ring_capacity_not_pow2)
{
	WITH_IMAGE(im);
	/* 24 descriptors still end before the arena: only the power-of-two
	 * check can catch it (slot = seq & (cap - 1) would alias). */
	im.hdr.ring_capacity = 24;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_ring_capacity_zero)
{
	WITH_IMAGE(im);
	im.hdr.ring_capacity = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	/* 1 is a power of two but below the documented minimum of 2. */
	im.hdr.ring_capacity = 1;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_arena_size_not_pow2)
{
	WITH_IMAGE(im);
	/*
	 * Make everything else consistent: a file 1.5 pages of arena long
	 * whose header says so. Only the power-of-two check is left to
	 * refuse it (positions are masked with arena_size - 1).
	 */
	uint64_t arena = PAGE + PAGE / 2;
	uint64_t file = im.hdr.arena_off + arena;

	im.hdr.arena_size = arena;
	im.hdr.segment_size = file;
	cr_expect_eq(attach_sized(&im, file), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_arena_off_beyond_file)
{
	WITH_IMAGE(im);
	im.hdr.arena_off = im.size + PAGE;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	/* Exactly at the end: an empty arena. */
	im.hdr.arena_off = im.size;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_arena_off_not_page_aligned)
{
	WITH_IMAGE(im);
	/* Shift the arena by one cache line and grow the file to match, so
	 * that the size, the power of two and the ring order all hold: only
	 * the page alignment the mapping relies on is wrong. */
	uint64_t file = im.size + 64;

	im.hdr.arena_off += 64;
	im.hdr.segment_size = file;
	cr_expect_eq(attach_sized(&im, file), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_ring_overlapping_arena)
{
	WITH_IMAGE(im);
	/* Aligned, after the slots, but the 16 descriptors run 448 bytes
	 * into the arena: producers would write descriptors over payloads. */
	im.hdr.ring_off = (uint32_t)im.hdr.arena_off - 64;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_ring_overlapping_pub_slots)
{
	WITH_IMAGE(im);
	im.hdr.ring_off = im.hdr.pubs_off + 64;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_ctl_overlapping_header)
{
	WITH_IMAGE(im);
	im.hdr.ctl_off = 64;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.hdr.ctl_off = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_max_subs_zero)
{
	WITH_IMAGE(im);
	/* The state header must agree on max_subs, so left alone it would
	 * refuse this too: make it agree, leaving the bound as the only
	 * check that can. */
	im.hdr.max_subs = 0;
	im.shdr.max_subs = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_max_subs_over_256)
{
	WITH_IMAGE(im);
	/* The sleepers bitmap has 256 bits. In the small channel 257 slots
	 * would also disagree with the state header and overrun its page, so
	 * a second channel with 256 slots, whose state segment has room for
	 * one more, shows that the bound alone refuses it. */
	struct image big;
	struct zbus_channel_opts o = { .max_msg_size = 1024,
				       .ring_capacity = 16,
				       .max_subscribers = 256 };

	im.hdr.max_subs = ZB_MAX_SUBS + 1;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);

	image_load(&big, &o);
	cr_assert_eq(big.hdr.max_subs, 256);
	cr_assert_leq(big.shdr.subs_off +
			      257ull * sizeof(struct zb_sub_slot),
		      big.state_size);
	cr_expect_eq(attach_image(&big), 0, "control: 256 slots");
	big.hdr.max_subs = big.shdr.max_subs = 257;
	cr_expect_eq(attach_image(&big), -EBADMSG);
	big.hdr.max_subs = big.shdr.max_subs = UINT32_MAX;
	cr_expect_eq(attach_image(&big), -EBADMSG);
	image_free(&big);
}

Test(segment, attach_rejects_max_msg_over_half_arena)
{
	WITH_IMAGE(im);
	/* Half the arena exactly is the largest that still lets a padded
	 * claim make progress in an empty arena. */
	im.hdr.max_msg_size = (uint32_t)(im.hdr.arena_size / 2);
	cr_expect_eq(attach_image(&im), 0, "arena/2 is allowed");
	im.hdr.max_msg_size = (uint32_t)(im.hdr.arena_size / 2) + 1;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.hdr.max_msg_size = (uint32_t)im.hdr.arena_size;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_accepts_consistent_tiny_arena)
{
	WITH_IMAGE(im);
	/*
	 * zbus_channel_create() never makes an arena below one page, but
	 * layout.h only asks for a power of two of at least two aligned
	 * messages. A peer may legally send 128 bytes of arena for 64-byte
	 * messages: attach must accept it and it must work (the round trip
	 * in attach_sized() sends 18 bytes).
	 */
	uint64_t file = im.hdr.arena_off + 128;

	im.hdr.arena_size = 128;
	im.hdr.max_msg_size = 64;
	im.hdr.segment_size = file;
	cr_expect_eq(attach_sized(&im, file), 0);
	image_free(&im);
}

Test(segment, attach_rejects_offsets_that_overflow)
{
	WITH_IMAGE(im);
	struct zb_shm_hdr ok = im.hdr;

	/* 32-bit ring_off + capacity * 32 wraps to a small number if added
	 * in 32 bits. */
	im.hdr.ring_off = UINT32_MAX - 63;
	cr_expect_eq(attach_image(&im), -EBADMSG, "ring_off near 2^32");

	/* ctl_off + ctl_size: a huge ctl_size wraps past pubs_off. */
	im.hdr = ok;
	im.hdr.ctl_size = UINT32_MAX;
	cr_expect_eq(attach_image(&im), -EBADMSG, "ctl_size near 2^32");

	/*
	 * arena_off + arena_size == segment_size holds modulo 2^64 for
	 * arena_off = 2^64 - 8192, arena_size = 16384 (page aligned, a
	 * power of two): a naive sum check passes, the mapping would not.
	 */
	im.hdr = ok;
	im.hdr.arena_size = 4 * PAGE;
	im.hdr.arena_off = im.hdr.segment_size - im.hdr.arena_size;
	cr_assert_eq(im.hdr.arena_off + im.hdr.arena_size,
		     im.hdr.segment_size);
	cr_expect_eq(attach_image(&im), -EBADMSG, "arena_off wraps");

	im.hdr = ok;
	im.hdr.arena_off = UINT64_MAX & ~(uint64_t)(PAGE - 1);
	cr_expect_eq(attach_image(&im), -EBADMSG, "arena_off near 2^64");

	im.hdr = ok;
	im.hdr.arena_size = 1ull << 63;
	cr_expect_eq(attach_image(&im), -EBADMSG, "arena_size 2^63");

	im.hdr = ok;
	im.hdr.segment_size = UINT64_MAX;
	cr_expect_eq(attach_image(&im), -EBADMSG, "segment_size 2^64-1");

	/* 2 * align(max_msg) must not wrap into something small. */
	im.hdr = ok;
	im.hdr.max_msg_size = UINT32_MAX;
	cr_expect_eq(attach_image(&im), -EBADMSG, "max_msg_size 2^32-1");
	image_free(&im);
}

Test(segment, attach_rejects_wrong_slot_size)
{
	WITH_IMAGE(im);
	im.hdr.slot_size = sizeof(struct zb_sub_slot) / 2;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.hdr.slot_size = sizeof(struct zb_sub_slot) * 2;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_wrong_pub_slot_size)
{
	WITH_IMAGE(im);
	im.hdr.pub_slot_size = sizeof(struct zb_pub_slot) / 2;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.hdr.pub_slot_size = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_bad_publisher_region)
{
	WITH_IMAGE(im);
	struct zb_shm_hdr ok = im.hdr;

	cr_assert_eq(ok.max_pubs, 4);
	cr_assert_eq(ok.pubs_off, ok.ctl_off + ok.ctl_size);
	im.hdr.max_pubs = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG, "max_pubs 0");
	im.hdr = ok;
	im.hdr.max_pubs = 5; /* runs into the ring */
	cr_expect_eq(attach_image(&im), -EBADMSG, "publishers overlap ring");
	im.hdr = ok;
	im.hdr.pubs_off -= 64; /* into the ctl */
	cr_expect_eq(attach_image(&im), -EBADMSG, "overlap ctl");
	im.hdr = ok;
	/* The ring follows the slots with no gap: move it one cache line on
	 * (valid, see the control) so that shifted slots still end before
	 * it and only their alignment is wrong. */
	im.hdr.ring_off += 64;
	cr_expect_eq(attach_image(&im), 0, "control: ring moved");
	im.hdr.pubs_off += 8;
	cr_expect_eq(attach_image(&im), -EBADMSG, "misaligned");
	im.hdr = ok;
	im.hdr.pubs_off = UINT32_MAX - 63;
	cr_expect_eq(attach_image(&im), -EBADMSG, "pubs_off near 2^32");
	im.hdr = ok;
	cr_expect_eq(attach_image(&im), 0, "control: untouched");
	image_free(&im);
}

Test(segment, attach_rejects_max_pubs_over_1024)
{
	/* 1025 slots in the small channel would also run into the ring: a
	 * channel with 1024, its ring moved one slot on, has room for one
	 * more, so that the bound alone refuses it. */
	struct zbus_channel_opts o = { .max_msg_size = 1024,
				       .ring_capacity = 16,
				       .max_publishers = 1024 };
	struct image big;

	image_load(&big, &o);
	cr_assert_eq(big.hdr.max_pubs, 1024);
	big.hdr.ring_off += sizeof(struct zb_pub_slot);
	cr_assert_leq(big.hdr.ring_off +
			      (uint64_t)big.hdr.ring_capacity *
				      sizeof(struct zb_desc),
		      big.hdr.arena_off);
	cr_expect_eq(attach_image(&big), 0, "control: shifted ring is valid");
	big.hdr.max_pubs = ZB_MAX_PUBS + 1;
	cr_expect_eq(attach_image(&big), -EBADMSG);
	image_free(&big);
}

Test(segment, attach_rejects_misaligned_ctl_off)
{
	WITH_IMAGE(im);
	/* As for the publisher slots: make room after the ctl first, so
	 * that only the alignment of a shifted ctl is wrong. */
	im.hdr.pubs_off += 64;
	im.hdr.ring_off += 64;
	cr_expect_eq(attach_image(&im), 0, "control: slots and ring moved");
	im.hdr.ctl_off += 8;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_small_ctl_size)
{
	WITH_IMAGE(im);
	/* Shorter than struct zb_ctl: the claim words would overlap what
	 * the header says comes next. */
	im.hdr.ctl_size = sizeof(struct zb_ctl) / 2;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.hdr.ctl_size = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_misaligned_ring_off)
{
	WITH_IMAGE(im);
	/* Page 0 has room after the ring: only the alignment is wrong (a
	 * descriptor's commit word must not straddle a cache line). */
	im.hdr.ring_off += 8;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_wrong_desc_size)
{
	WITH_IMAGE(im);
	im.hdr.desc_size = sizeof(struct zb_desc) / 2;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.hdr.desc_size = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

/* ------------------------------------------------------------------ */
/* What names the state segment                                        */
/* ------------------------------------------------------------------ */

Test(segment, attach_rejects_zero_channel_id)
{
	WITH_IMAGE(im);
	/* Zero in both headers: the pair agrees, so only the rule that an
	 * id is never 0 (what a zeroed memfd would carry) can refuse. */
	im.hdr.channel_id = 0;
	im.shdr.channel_id = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_channel_id_not_the_state_one)
{
	WITH_IMAGE(im);
	/* Valid alone, but names another channel's state segment. */
	im.hdr.channel_id ^= 1;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_state_size_not_the_state_one)
{
	WITH_IMAGE(im);
	im.hdr.state_size = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG, "0");
	/* In range, but the state header and file say one page. */
	im.hdr.state_size = 2 * PAGE;
	cr_expect_eq(attach_image(&im), -EBADMSG, "2 pages");
	image_free(&im);
}

Test(segment, attach_rejects_state_size_out_of_bounds)
{
	WITH_IMAGE(im);
	/* Each size in the data header, the state header and the file
	 * alike, and roomy enough for the 4 slots: only the data header's
	 * bounds are left to refuse it. */
	cr_assert_lt(im.shdr.subs_off + 4 * sizeof(struct zb_sub_slot),
		     PAGE / 2);
	im.hdr.state_size = PAGE / 2;
	im.shdr.state_size = PAGE / 2;
	cr_expect_eq(attach_files(&im, im.size, PAGE / 2), -EBADMSG,
		     "below a page");
	/* One page past the largest state 256 subscribers need. */
	im.hdr.state_size = 10 * PAGE;
	im.shdr.state_size = 10 * PAGE;
	cr_expect_eq(attach_files(&im, im.size, 10 * PAGE), -EBADMSG,
		     "10 pages");
	/* Control: a larger state than needed, within the bounds. */
	im.hdr.state_size = 2 * PAGE;
	im.shdr.state_size = 2 * PAGE;
	cr_expect_eq(attach_files(&im, im.size, 2 * PAGE), 0, "2 pages");
	image_free(&im);
}

/* ------------------------------------------------------------------ */
/* The state header                                                    */
/* ------------------------------------------------------------------ */

Test(state, attach_rejects_bad_magic)
{
	WITH_IMAGE(im);
	im.shdr.magic ^= 1;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.shdr.magic = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	/* The data magic: a data header where a state header belongs. */
	im.shdr.magic = ZB_LAYOUT_MAGIC;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(state, attach_rejects_unknown_major_version)
{
	WITH_IMAGE(im);
	im.shdr.version_major = ZB_LAYOUT_MAJOR + 1;
	cr_expect_eq(attach_image(&im), -EPROTO);
	im.shdr.version_major = 0;
	cr_expect_eq(attach_image(&im), -EPROTO);
	image_free(&im);
}

Test(state, attach_accepts_newer_minor_version)
{
	WITH_IMAGE(im);
	im.shdr.version_minor = ZB_LAYOUT_MINOR + 1;
	cr_expect_eq(attach_image(&im), 0);
	image_free(&im);
}

Test(state, attach_rejects_small_hdr_size)
{
	WITH_IMAGE(im);
	im.shdr.hdr_size = sizeof(struct zb_state_hdr) - 1;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.shdr.hdr_size = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(state, attach_rejects_another_channel_id)
{
	WITH_IMAGE(im);
	im.shdr.channel_id ^= 1;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.shdr.channel_id = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(state, attach_rejects_state_size_not_file_size)
{
	WITH_IMAGE(im);
	uint64_t real = im.shdr.state_size;

	/* Larger than the file: the mapping would fault past its end. */
	im.shdr.state_size = real + PAGE;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.shdr.state_size = real - 1;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.shdr.state_size = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.shdr.state_size = UINT64_MAX;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(state, attach_rejects_state_size_not_the_data_one)
{
	WITH_IMAGE(im);
	/* The state header and its file agree on two pages; the data
	 * header says one: the two are not a pair. */
	im.shdr.state_size = 2 * PAGE;
	cr_expect_eq(attach_files(&im, im.size, 2 * PAGE), -EBADMSG);
	/* Control: the same with the data header agreeing. */
	im.hdr.state_size = 2 * PAGE;
	cr_expect_eq(attach_files(&im, im.size, 2 * PAGE), 0);
	image_free(&im);
}

Test(state, attach_rejects_file_size_not_header)
{
	WITH_IMAGE(im);
	/* Both headers intact on a file of another size. */
	cr_expect_eq(attach_files(&im, im.size, im.state_size + PAGE),
		     -EBADMSG, "one page longer");
	cr_expect_eq(attach_files(&im, im.size, im.state_size / 2),
		     -EBADMSG, "half a page");
	image_free(&im);
}

Test(state, attach_rejects_misaligned_sctl_off)
{
	WITH_IMAGE(im);
	/* The slots follow the sub_ctl with no gap: move them one cache
	 * line on (a valid layout, checked below) so that a shifted sub_ctl
	 * still ends before them and only its alignment is wrong. */
	im.shdr.subs_off += 64;
	cr_expect_eq(attach_image(&im), 0, "control: slots moved");
	im.shdr.sctl_off += 8;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(state, attach_rejects_sctl_overlapping_header_or_slots)
{
	WITH_IMAGE(im);
	im.shdr.sctl_off = 64;
	cr_expect_eq(attach_image(&im), -EBADMSG, "into the header");
	im.shdr.sctl_off = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG, "at 0");
	/* Aligned, after the header, but its last line is slot 0's. */
	im.shdr.sctl_off = im.shdr.subs_off - 64;
	cr_expect_eq(attach_image(&im), -EBADMSG, "into the slots");
	image_free(&im);
}

Test(state, attach_rejects_bad_subs_off)
{
	WITH_IMAGE(im);
	struct zb_state_hdr ok = im.shdr;

	im.shdr.subs_off += 8;
	cr_expect_eq(attach_image(&im), -EBADMSG, "misaligned");
	im.shdr = ok;
	im.shdr.subs_off = ok.sctl_off + 64;
	cr_expect_eq(attach_image(&im), -EBADMSG, "overlaps the sub_ctl");
	im.shdr = ok;
	/* Aligned, but the 4 slots run past the one-page file. */
	im.shdr.subs_off = PAGE - 64;
	cr_expect_eq(attach_image(&im), -EBADMSG, "past the end");
	im.shdr = ok;
	/* subs_off + max_subs * slot_size wraps if added in 32 bits. */
	im.shdr.subs_off = UINT32_MAX - 63;
	cr_expect_eq(attach_image(&im), -EBADMSG, "near 2^32");
	im.shdr = ok;
	im.shdr.subs_off += 64;
	cr_expect_eq(attach_image(&im), 0, "control: moved one line on");
	image_free(&im);
}

Test(state, attach_rejects_max_subs_not_the_data_one)
{
	WITH_IMAGE(im);
	/* Fewer slots than the data header advertises would let a
	 * subscriber index past the state segment; more, a producer miss
	 * some when it wakes sleepers. */
	im.shdr.max_subs = 3;
	cr_expect_eq(attach_image(&im), -EBADMSG, "3");
	im.shdr.max_subs = 5;
	cr_expect_eq(attach_image(&im), -EBADMSG, "5");
	im.shdr.max_subs = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG, "0");
	image_free(&im);
}

Test(state, attach_rejects_wrong_slot_size)
{
	WITH_IMAGE(im);
	im.shdr.slot_size = sizeof(struct zb_sub_slot) / 2;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.shdr.slot_size = sizeof(struct zb_sub_slot) * 2;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	im.shdr.slot_size = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(state, attach_rejects_file_shorter_than_slots)
{
	/*
	 * 256 slots end at 33024 bytes, in the ninth page. Say 8 pages in
	 * both headers and make the file 8 pages: sizes agree everywhere
	 * and stay within the bounds, so only the check that the slots end
	 * inside the file can refuse.
	 */
	struct zbus_channel_opts o = { .max_msg_size = 1024,
				       .ring_capacity = 16,
				       .max_subscribers = 256 };
	struct image big;
	uint64_t end;

	image_load(&big, &o);
	end = big.shdr.subs_off + 256ull * sizeof(struct zb_sub_slot);
	cr_assert_gt(end, 8 * PAGE);
	cr_assert_leq(end, big.state_size);
	big.hdr.state_size = 8 * PAGE;
	big.shdr.state_size = 8 * PAGE;
	cr_expect_eq(attach_files(&big, big.size, 8 * PAGE), -EBADMSG);
	image_free(&big);
}

/* ------------------------------------------------------------------ */
/* Which memfd is which                                                */
/* ------------------------------------------------------------------ */

Test(state, attach_rejects_swapped_memfds)
{
	struct zbus_channel *ch = NULL, *att = NULL;
	int fd, sfd;

	cr_assert_eq(zbus_channel_create("seg-swap", &small_opts, &ch), 0);
	fd = zbus_channel_fd(ch);
	sfd = zbus_channel_state_fd(ch);
	/* Both are sealed memfds of this channel: only the magic of each
	 * header tells them apart. */
	cr_expect_eq(zbus_channel_attach_dup(sfd, fd, &att), -EBADMSG,
		     "swapped");
	cr_expect_eq(zbus_channel_attach_dup(fd, fd, &att), -EBADMSG,
		     "data twice");
	cr_expect_eq(zbus_channel_attach_dup(sfd, sfd, &att), -EBADMSG,
		     "state twice");
	cr_assert_null(att);
	zbus_channel_free(ch);
}

Test(state, attach_rejects_state_of_another_channel)
{
	struct zbus_channel *a = NULL, *b = NULL, *att = NULL;

	/* Same options, so the same geometry: only channel_id differs. */
	cr_assert_eq(zbus_channel_create("seg-pair-a", &small_opts, &a), 0);
	cr_assert_eq(zbus_channel_create("seg-pair-b", &small_opts, &b), 0);
	cr_expect_eq(zbus_channel_attach_dup(zbus_channel_fd(a),
					     zbus_channel_state_fd(b), &att),
		     -EBADMSG);
	cr_assert_null(att);
	zbus_channel_free(b);
	zbus_channel_free(a);
}

/* ------------------------------------------------------------------ */
/* Read-only data, writable state                                      */
/* ------------------------------------------------------------------ */

Test(readonly, state_memfd_opened_read_only_is_refused)
{
	struct zbus_channel *ch = NULL, *att = NULL;
	int sfd;

	cr_assert_eq(zbus_channel_create("seg-ro-state", &small_opts, &ch),
		     0);
	/* Every subscriber writes its slot: a read-only state memfd could
	 * only be mapped to fault at the first zbus_sub_new(). */
	sfd = reopen(zbus_channel_state_fd(ch), O_RDONLY);
	cr_expect_eq(zbus_channel_attach_dup(zbus_channel_fd(ch), sfd, &att),
		     -EACCES);
	cr_assert_null(att);
	close(sfd);
	zbus_channel_free(ch);
}

Test(readonly, state_memfd_sealed_against_writes_is_refused)
{
	WITH_IMAGE(im);
	cr_expect_eq(attach_sealed(&im, all_seals,
				   all_seals | F_SEAL_FUTURE_WRITE),
		     -EACCES, "F_SEAL_FUTURE_WRITE");
	cr_expect_eq(attach_sealed(&im, all_seals, all_seals | F_SEAL_WRITE),
		     -EACCES, "F_SEAL_WRITE");
	image_free(&im);
}

/* Whether writing to @ch's data mapping kills a child with SIGSEGV. */
static int write_faults(const struct zbus_channel *ch)
{
	int st;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		volatile uint8_t *p = ch->seg.base;

		/* The default action, not a sanitizer's handler that would
		 * report and exit instead. The byte written is the one
		 * already there: a wrongly writable mapping stays intact. */
		signal(SIGSEGV, SIG_DFL);
		*p = *p;
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
}

Test(readonly, data_fd_opened_read_only_attaches_read_only)
{
	struct zbus_channel *ch = NULL, *ro = NULL;
	struct zbus_channel_info info;
	struct zbus_pub *pub = NULL;
	int fd;

	cr_assert_eq(zbus_channel_create("seg-ro-data", &small_opts, &ch), 0);
	fd = reopen(zbus_channel_fd(ch), O_RDONLY);
	cr_assert_eq(zbus_channel_attach_dup(fd, zbus_channel_state_fd(ch),
					     &ro),
		     0);
	close(fd);
	cr_assert_eq(zbus_channel_info(ro, &info), 0);
	cr_expect_eq(info.flags, ZBUS_CHANNEL_READ_ONLY, "flags 0x%x",
		     info.flags);
	cr_expect_eq(zbus_pub_new(ro, NULL, &pub), -EACCES);
	cr_expect_null(pub);
	/* It can still subscribe, and receives what the creator sends. */
	round_trip(ch, ro, "to a read-only subscriber");
	cr_expect(write_faults(ro), "the data mapping is writable");
	zbus_channel_free(ro);
	zbus_channel_free(ch);
}

Test(readonly, seal_writers_leaves_only_the_creator_writing)
{
	struct zbus_channel_opts o = small_opts;
	struct zbus_channel *ch = NULL, *att = NULL;
	struct zbus_channel_info info;
	struct zbus_pub *pub = NULL;
	int fd, fd2, seals;
	void *m;

	o.flags = ZBUS_CHANNEL_SEAL_WRITERS;
	cr_assert_eq(zbus_channel_create("seg-sealed", &o, &ch), 0);
	cr_assert_eq(zbus_channel_info(ch, &info), 0);
	cr_expect_eq(info.flags, ZBUS_CHANNEL_SEAL_WRITERS, "creator 0x%x",
		     info.flags);
	seals = fcntl(zbus_channel_fd(ch), F_GET_SEALS);
	cr_expect(seals & F_SEAL_FUTURE_WRITE, "data seals 0x%x", seals);
	seals = fcntl(zbus_channel_state_fd(ch), F_GET_SEALS);
	cr_expect_eq(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE), 0,
		     "state seals 0x%x", seals);

	/* A duplicate of the creator's own read-write fd: the seal, not
	 * the access mode, is what makes it read-only. */
	fd = fcntl(zbus_channel_fd(ch), F_DUPFD_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
	cr_assert_eq(zbus_channel_attach_dup(fd, zbus_channel_state_fd(ch),
					     &att),
		     0);
	cr_assert_eq(zbus_channel_info(att, &info), 0);
	cr_expect_eq(info.flags,
		     ZBUS_CHANNEL_SEAL_WRITERS | ZBUS_CHANNEL_READ_ONLY,
		     "attacher 0x%x", info.flags);
	cr_expect_eq(zbus_pub_new(att, NULL, &pub), -EACCES);
	cr_expect_null(pub);
	round_trip(ch, att, "from the only writer");

	/* Nor can anyone holding the fd get around attach: no new shared
	 * writable mapping, no write, no hole punched under readers. The
	 * seal is the inode's: a reopen through /proc changes nothing. */
	fd2 = reopen(fd, O_RDWR);
	for (int i = 0; i < 2; i++) {
		int f = i ? fd2 : fd;

		errno = 0;
		m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
		cr_expect_eq(m, MAP_FAILED, "fd %d: writable mapping", i);
		cr_expect_eq(errno, EPERM);
		if (m != MAP_FAILED)
			munmap(m, PAGE);
		errno = 0;
		cr_expect_eq(pwrite(f, "x", 1, 0), -1, "fd %d: pwrite", i);
		cr_expect_eq(errno, EPERM);
		errno = 0;
		cr_expect_eq(fallocate(f, FALLOC_FL_PUNCH_HOLE |
						  FALLOC_FL_KEEP_SIZE,
				       0, PAGE),
			     -1, "fd %d: hole punched", i);
		cr_expect_eq(errno, EPERM);
	}
	close(fd2);
	close(fd);
	zbus_channel_free(att);
	zbus_channel_free(ch);
}

Test(readonly, data_sealed_against_writes_attaches_read_only)
{
	WITH_IMAGE(im);
	struct zbus_channel *ch = NULL;
	struct zbus_channel_info info;
	struct zbus_pub *pub = NULL;
	int fd = data_memfd(&im, im.size, all_seals | F_SEAL_WRITE);
	int sfd = state_memfd(&im, im.state_size, all_seals);

	/* A peer's copy, sealed by the peer: attach must map it read-only
	 * rather than fail on a writable mapping the seal forbids. */
	cr_assert_eq(zbus_channel_attach_dup(fd, sfd, &ch), 0);
	cr_assert_eq(zbus_channel_info(ch, &info), 0);
	cr_expect_eq(info.flags,
		     ZBUS_CHANNEL_SEAL_WRITERS | ZBUS_CHANNEL_READ_ONLY,
		     "flags 0x%x", info.flags);
	cr_expect_eq(zbus_pub_new(ch, NULL, &pub), -EACCES);
	zbus_channel_free(ch);
	close(fd);
	close(sfd);
	image_free(&im);
}

/* ------------------------------------------------------------------ */
/* The fds themselves                                                  */
/* ------------------------------------------------------------------ */

/*
 * zbus.h: "-EINVAL if an fd is not a memfd; -EPERM if one lacks the grow,
 * shrink or seal seals". A memfd is refused with -EPERM as soon as any one
 * of the three is missing, on either side: without them a peer could
 * truncate the file under our mapping (SIGBUS) or add seals of its own
 * later. Each case is tried as the data memfd and as the state memfd.
 */
static void expect_seals_refused(const struct image *im, int seals,
				 const char *what)
{
	int r = attach_sealed(im, seals, all_seals);

	cr_expect_eq(r, -EPERM, "data %s: got %d (%s)", what, r,
		     zbus_strerror(r));
	r = attach_sealed(im, all_seals, seals);
	cr_expect_eq(r, -EPERM, "state %s: got %d (%s)", what, r,
		     zbus_strerror(r));
}

Test(segment, attach_rejects_unsealed_memfd)
{
	WITH_IMAGE(im);
	/* Unsealed, a peer could truncate it under our mapping: SIGBUS. */
	expect_seals_refused(&im, 0, "unsealed");
	image_free(&im);
}

Test(segment, attach_rejects_shrink_only_seal)
{
	WITH_IMAGE(im);
	/* It can still grow, and then no later attach passes the size
	 * check: one peer could lock everybody else out. */
	expect_seals_refused(&im, F_SEAL_SHRINK, "shrink-only");
	image_free(&im);
}

Test(segment, attach_rejects_grow_shrink_without_seal_seal)
{
	WITH_IMAGE(im);
	/* Without F_SEAL_SEAL a peer could still add F_SEAL_FUTURE_WRITE
	 * and stop every later attacher from mapping the ring writable. */
	expect_seals_refused(&im, F_SEAL_SHRINK | F_SEAL_GROW, "no F_SEAL_SEAL");
	image_free(&im);
}

Test(segment, attach_rejects_memfd_without_allow_sealing)
{
	WITH_IMAGE(im);
	/* Such a memfd reports only F_SEAL_SEAL: it can still shrink. */
	int fd = memfd_with(im.buf, im.size, im.size, 0, 0);
	int sfd = memfd_with(im.state, im.state_size, im.state_size, 0, 0);

	cr_assert_eq(fcntl(fd, F_GET_SEALS), F_SEAL_SEAL);
	cr_expect_eq(attach_consume(fd, state_memfd(&im, im.state_size,
						    all_seals)),
		     -EPERM, "data");
	cr_expect_eq(attach_consume(data_memfd(&im, im.size, all_seals), sfd),
		     -EPERM, "state");
	image_free(&im);
}

/*
 * @bad in place of each memfd of a real channel in turn: it must be
 * refused with @want either way. The other fd stays valid, so that @bad
 * is what refuses.
 */
static void expect_fd_refused(int bad, int want, const char *what)
{
	struct zbus_channel *real = NULL, *ch = NULL;
	int r;

	cr_assert_eq(zbus_channel_create("seg-bad-fd", &small_opts, &real),
		     0);
	r = zbus_channel_attach_dup(bad, zbus_channel_state_fd(real), &ch);
	cr_expect_eq(r, want, "%s as data: %d", what, r);
	r = zbus_channel_attach_dup(zbus_channel_fd(real), bad, &ch);
	cr_expect_eq(r, want, "%s as state: %d", what, r);
	cr_assert_null(ch);
	zbus_channel_free(real);
}

Test(segment, attach_rejects_pipe)
{
	int p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	expect_fd_refused(p[0], -EINVAL, "read end");
	expect_fd_refused(p[1], -EINVAL, "write end");
	close(p[0]);
	close(p[1]);
}

Test(segment, attach_rejects_regular_file)
{
	WITH_IMAGE(im);
	FILE *f = tmpfile(), *sf = tmpfile();

	cr_assert_not_null(f);
	cr_assert_not_null(sf);
	/* A perfect copy of each segment, on disk: still not a memfd. */
	cr_assert_eq(fwrite(im.buf, 1, im.size, f), im.size);
	cr_assert_eq(fwrite(im.state, 1, im.state_size, sf), im.state_size);
	cr_assert_eq(fflush(f), 0);
	cr_assert_eq(fflush(sf), 0);
	expect_fd_refused(fileno(f), -EINVAL, "data on disk");
	expect_fd_refused(fileno(sf), -EINVAL, "state on disk");
	fclose(f);
	fclose(sf);
	image_free(&im);
}

Test(segment, attach_rejects_socket)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
		     0);
	expect_fd_refused(sv[0], -EINVAL, "socket");
	close(sv[0]);
	close(sv[1]);
}

Test(segment, attach_rejects_bad_fd)
{
	int fd;

	expect_fd_refused(-1, -EBADF, "-1");
	expect_fd_refused(INT_MIN, -EBADF, "INT_MIN");
	/* A closed descriptor number, high enough that the channel
	 * expect_fd_refused() creates does not reuse it. */
	fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 1000);
	cr_assert_geq(fd, 0);
	close(fd);
	expect_fd_refused(fd, -EBADF, "closed");
}

Test(segment, attach_rejects_null_out)
{
	struct zbus_channel *ch = NULL;

	cr_assert_eq(zbus_channel_create("seg-null", &small_opts, &ch), 0);
	cr_expect_eq(zbus_channel_attach_dup(zbus_channel_fd(ch),
					     zbus_channel_state_fd(ch), NULL),
		     -EINVAL);
	zbus_channel_free(ch);
}

Test(segment, attach_rejects_empty_memfd)
{
	int fd = memfd_with(NULL, 0, 0, MFD_ALLOW_SEALING, all_seals);

	expect_fd_refused(fd, -EBADMSG, "empty");
	close(fd);
}

Test(segment, attach_rejects_memfd_smaller_than_header)
{
	WITH_IMAGE(im);
	/* The first 100 bytes of a real header: magic and version are
	 * right, the rest is missing. */
	int fd = memfd_with(im.buf, 100, 100, MFD_ALLOW_SEALING, all_seals);
	int sfd = memfd_with(im.state, 100, 100, MFD_ALLOW_SEALING,
			     all_seals);

	cr_expect_eq(attach_consume(fd, state_memfd(&im, im.state_size,
						    all_seals)),
		     -EBADMSG, "data");
	cr_expect_eq(attach_consume(data_memfd(&im, im.size, all_seals), sfd),
		     -EBADMSG, "state");
	image_free(&im);
}

Test(segment, attach_rejects_memfd_one_page_short)
{
	WITH_IMAGE(im);
	/* An intact header on a file one page shorter than it says: the
	 * last page of the arena would fault. */
	cr_expect_eq(attach_sized(&im, im.size - PAGE), -EBADMSG);
	/* One page longer is wrong too: the header is the single truth. */
	cr_expect_eq(attach_sized(&im, im.size + PAGE), -EBADMSG);
	image_free(&im);
}

/* ------------------------------------------------------------------ */
/* A valid attach                                                      */
/* ------------------------------------------------------------------ */

Test(segment, attach_of_creator_fd_matches_created_geometry)
{
	struct zbus_channel_opts o = { .max_msg_size = 1000,
				       .ring_capacity = 100,
				       .max_subscribers = 3 };
	struct zbus_channel *a = NULL, *b = NULL;
	struct zbus_channel_info ia, ib;
	struct stat st;
	uint64_t want_min;

	cr_assert_eq(zbus_channel_create("seg-geom", &o, &a), 0);
	cr_assert_eq(zbus_channel_attach_dup(zbus_channel_fd(a),
					     zbus_channel_state_fd(a), &b),
		     0);
	cr_assert_eq(zbus_channel_info(a, &ia), 0);
	cr_assert_eq(zbus_channel_info(b, &ib), 0);

	cr_expect_eq(ia.max_msg_size, 1000);
	cr_expect_eq(ia.ring_capacity, 128, "100 rounds up to 128, got %u",
		     ia.ring_capacity);
	cr_expect_eq(ia.max_subscribers, 3);
	cr_expect_eq(ia.version_major, ZB_LAYOUT_MAJOR);
	cr_expect_eq(ia.version_minor, ZB_LAYOUT_MINOR);
	/* Default arena: max(4 × max_msg, capacity × 256), then a power of
	 * two, and in any case at least twice the aligned max_msg. */
	want_min = 4 * 1000;
	if (want_min < 100 * 256)
		want_min = 100 * 256;
	cr_expect(ia.arena_bytes && !(ia.arena_bytes & (ia.arena_bytes - 1)),
		  "arena %llu not a power of two",
		  (unsigned long long)ia.arena_bytes);
	cr_expect_geq(ia.arena_bytes, want_min);
	cr_expect_lt(ia.arena_bytes, 2 * want_min, "rounded up, not more");
	cr_expect_geq(ia.arena_bytes, 2 * 1024ull);
	cr_assert_eq(fstat(zbus_channel_fd(a), &st), 0);
	cr_expect_eq(ia.segment_bytes, (uint64_t)st.st_size);
	cr_expect_geq(ia.segment_bytes, ia.arena_bytes);
	/* The state holds its header, sub_ctl and 3 slots, in pages. */
	cr_assert_eq(fstat(zbus_channel_state_fd(a), &st), 0);
	cr_expect_eq(ia.state_bytes, (uint64_t)st.st_size);
	cr_expect_eq(ia.state_bytes, PAGE);
	cr_expect_eq(ia.flags, 0, "neither sealed nor read-only");

	/* The attacher sees exactly what the creator made. */
	cr_expect_eq(memcmp(&ia, &ib, sizeof(ia)), 0);

	/* And both handles are the same channel. */
	round_trip(a, b, "creator to attacher");
	round_trip(b, a, "attacher to creator");
	zbus_channel_free(b);
	zbus_channel_free(a);
}

Test(segment, create_defaults_and_explicit_arena)
{
	struct zbus_channel *ch = NULL;
	struct zbus_channel_info info;
	struct zbus_channel_opts o = { 0 };

	/* NULL options: 64 KiB messages, 1024 descriptors, 64 slots,
	 * arena max(4 × 64 KiB, 1024 × 256) = 256 KiB. */
	cr_assert_eq(zbus_channel_create(NULL, NULL, &ch), 0);
	cr_assert_eq(zbus_channel_info(ch, &info), 0);
	cr_expect_eq(info.max_msg_size, 64 * 1024);
	cr_expect_eq(info.ring_capacity, 1024);
	cr_expect_eq(info.max_subscribers, 64);
	cr_expect_eq(info.arena_bytes, 256 * 1024);
	ch = zbus_channel_free(ch);
	cr_assert_null(ch);

	/* An explicit arena too small for two messages grows to fit two
	 * aligned max_msg (2 × 4032 = 8064), then to a power of two. */
	o.max_msg_size = 4000;
	o.arena_bytes = 5000;
	cr_assert_eq(zbus_channel_create("seg-arena", &o, &ch), 0);
	cr_assert_eq(zbus_channel_info(ch, &info), 0);
	cr_expect_eq(info.arena_bytes, 8192);
	ch = zbus_channel_free(ch);

	/* A large enough one is only rounded. */
	o.max_msg_size = 100;
	o.arena_bytes = 40000;
	cr_assert_eq(zbus_channel_create("seg-arena", &o, &ch), 0);
	cr_assert_eq(zbus_channel_info(ch, &info), 0);
	cr_expect_eq(info.arena_bytes, 65536);
	ch = zbus_channel_free(ch);

	/* Capacity 2 is the documented minimum and stays 2. */
	o = (struct zbus_channel_opts){ .ring_capacity = 2 };
	cr_assert_eq(zbus_channel_create("seg-cap", &o, &ch), 0);
	cr_assert_eq(zbus_channel_info(ch, &info), 0);
	cr_expect_eq(info.ring_capacity, 2);
	ch = zbus_channel_free(ch);
}

Test(segment, attach_duplicates_the_fds)
{
	struct zbus_channel *creator = NULL, *ch = NULL;
	int fds[2], afds[2];

	cr_assert_eq(zbus_channel_create("seg-dup", &small_opts, &creator),
		     0);
	/* Our own copies of the fds, so that we may close them. */
	fds[0] = fcntl(zbus_channel_fd(creator), F_DUPFD_CLOEXEC, 0);
	fds[1] = fcntl(zbus_channel_state_fd(creator), F_DUPFD_CLOEXEC, 0);
	cr_assert_geq(fds[0], 0);
	cr_assert_geq(fds[1], 0);
	cr_assert_eq(zbus_channel_attach_dup(fds[0], fds[1], &ch), 0);
	afds[0] = zbus_channel_fd(ch);
	afds[1] = zbus_channel_state_fd(ch);
	for (int i = 0; i < 2; i++) {
		int flags = fcntl(afds[i], F_GETFD);

		cr_expect_geq(afds[i], 0);
		cr_expect_neq(afds[i], fds[i], "the channel must own a "
			      "duplicate of fd %d", i);
		cr_expect_geq(flags, 0);
		cr_expect(flags & FD_CLOEXEC, "duplicate %d not CLOEXEC", i);
	}

	/* The caller keeps its fds: closing them, and dropping the creator
	 * too, must leave the attached channel fully usable. */
	cr_assert_eq(close(fds[0]), 0);
	cr_assert_eq(close(fds[1]), 0);
	creator = zbus_channel_free(creator);
	cr_expect_eq(fcntl(afds[0], F_GET_SEALS) & all_seals, all_seals);
	cr_expect_eq(fcntl(afds[1], F_GET_SEALS) & all_seals, all_seals);
	round_trip(ch, ch, "after the original fds are gone");
	zbus_channel_free(ch);
}

/* ------------------------------------------------------------------ */
/* Creation options                                                    */
/* ------------------------------------------------------------------ */

static int create_rc(const struct zbus_channel_opts *o)
{
	struct zbus_channel *ch = NULL;
	int r = zbus_channel_create("seg-opts", o, &ch);

	if (r == 0)
		zbus_channel_free(ch);
	return r;
}

Test(create, rejects_nonzero_reserved_fields)
{
	struct zbus_channel_opts o = { .reserved0 = 1u << 31 };
	size_t n = sizeof(o.reserved) / sizeof(o.reserved[0]);

	cr_expect_eq(create_rc(&o), -EINVAL, "reserved0");
	for (size_t i = 0; i < n; i++) {
		o = (struct zbus_channel_opts){ 0 };
		o.reserved[i] = 1ull << 40;
		cr_expect_eq(create_rc(&o), -EINVAL, "reserved[%zu]", i);
	}
}

Test(create, rejects_unknown_flags)
{
	struct zbus_channel_opts o = { .flags = 1u << 31 };

	cr_expect_eq(create_rc(&o), -EINVAL, "bit 31");
	/* READ_ONLY is what info reports of an attach, not an option. */
	o.flags = ZBUS_CHANNEL_READ_ONLY;
	cr_expect_eq(create_rc(&o), -EINVAL, "READ_ONLY");
	o.flags = ZBUS_CHANNEL_SEAL_WRITERS | 4;
	cr_expect_eq(create_rc(&o), -EINVAL, "SEAL_WRITERS | 4");
	o.flags = ZBUS_CHANNEL_SEAL_WRITERS;
	cr_expect_eq(create_rc(&o), 0, "SEAL_WRITERS");
}

Test(create, rejects_max_msg_over_1gib)
{
	struct zbus_channel_opts o = { .max_msg_size = (1u << 30) + 1 };

	cr_expect_eq(create_rc(&o), -EINVAL);
	o.max_msg_size = UINT32_MAX;
	cr_expect_eq(create_rc(&o), -EINVAL);
}

Test(create, rejects_ring_capacity_out_of_range)
{
	struct zbus_channel_opts o = { .ring_capacity = (1u << 24) + 1 };

	cr_expect_eq(create_rc(&o), -EINVAL, "2^24 + 1");
	o.ring_capacity = UINT32_MAX;
	cr_expect_eq(create_rc(&o), -EINVAL, "2^32 - 1");
	o.ring_capacity = 1;
	cr_expect_eq(create_rc(&o), -EINVAL, "1");
}

Test(create, rejects_max_subscribers_over_256)
{
	struct zbus_channel_opts o = { .max_subscribers = 257 };

	cr_expect_eq(create_rc(&o), -EINVAL);
	o.max_subscribers = UINT32_MAX;
	cr_expect_eq(create_rc(&o), -EINVAL);
}

Test(create, accepts_documented_bounds)
{
	/* The limits themselves are allowed. These memfds are sparse: only
	 * the header page is ever touched. */
	struct zbus_channel_opts o = { .max_subscribers = 256 };

	cr_expect_eq(create_rc(&o), 0, "256 subscribers");
	o = (struct zbus_channel_opts){ .ring_capacity = 1u << 24 };
	cr_expect_eq(create_rc(&o), 0, "2^24 descriptors");
	o = (struct zbus_channel_opts){ .max_msg_size = 1u << 30,
					.ring_capacity = 2 };
	cr_expect_eq(create_rc(&o), 0, "1 GiB messages");
}

Test(create, rejects_null_out)
{
	cr_expect_eq(zbus_channel_create("seg-null", NULL, NULL), -EINVAL);
}

Test(create, memfds_are_sealed)
{
	struct zbus_channel *ch = NULL;
	int fds[2];

	cr_assert_eq(zbus_channel_create("seg-seal", &small_opts, &ch), 0);
	fds[0] = zbus_channel_fd(ch);
	fds[1] = zbus_channel_state_fd(ch);
	for (int i = 0; i < 2; i++) {
		int fd = fds[i], fd2, seals = fcntl(fd, F_GET_SEALS);
		off_t size;

		cr_assert_geq(seals, 0);
		cr_expect_eq(seals & all_seals, all_seals, "fd %d seals 0x%x",
			     i, seals);
		/* Without ZBUS_CHANNEL_SEAL_WRITERS anyone may publish. */
		cr_expect_eq(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE), 0,
			     "fd %d seals 0x%x", i, seals);
		size = lseek(fd, 0, SEEK_END);

		/* The creator's own fd cannot change the size either
		 * way... */
		errno = 0;
		cr_expect_eq(ftruncate(fd, size / 2), -1);
		cr_expect_eq(errno, EPERM);
		errno = 0;
		cr_expect_eq(ftruncate(fd, size * 2), -1);
		cr_expect_eq(errno, EPERM);
		/* ...nor lift a seal (F_SEAL_SEAL). */
		errno = 0;
		cr_expect_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
		cr_expect_eq(errno, EPERM);

		/*
		 * FIELD-NOTES: a receiver can reopen /proc/self/fd/N
		 * read-write, whatever mode the fd came with. Only the seals
		 * stop it, since they belong to the inode, not to the open
		 * file.
		 */
		fd2 = reopen(fd, O_RDWR);
		errno = 0;
		cr_expect_eq(ftruncate(fd2, 0), -1);
		cr_expect_eq(errno, EPERM);
		errno = 0;
		cr_expect_eq(ftruncate(fd2, size + PAGE), -1);
		cr_expect_eq(errno, EPERM);
		cr_expect_eq(lseek(fd2, 0, SEEK_END), size);
		close(fd2);
	}
	zbus_channel_free(ch);
}

/* ------------------------------------------------------------------ */
/* Passing the fds to another process                                 */
/* ------------------------------------------------------------------ */

/* Both memfds in one message, as a broker sends them. */
static int send_fds(int sock, const int fds[2])
{
	char byte = 'c';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;

	memset(&u, 0, sizeof(u));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(2 * sizeof(int));
	memcpy(CMSG_DATA(c), fds, 2 * sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

/* Return: 0 and @fds filled, or -1. Runs in the child: no assertions. */
static int recv_fds(int sock, int fds[2])
{
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;

	if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != 1 ||
	    (mh.msg_flags & MSG_CTRUNC))
		return -1;
	c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(2 * sizeof(int)))
		return -1;
	memcpy(fds, CMSG_DATA(c), 2 * sizeof(int));
	return 0;
}

/* The child: attach what arrives on @sock, publish one message. Exit
 * codes say which step failed, since a child cannot assert. */
static int child_main(int sock)
{
	struct zbus_pub_opts po = { .timeout_ms = 5000 };
	struct zbus_channel *ch = NULL;
	struct zbus_pub *pub = NULL;
	static const char msg[] = "hello from the child";
	int fds[2];

	if (recv_fds(sock, fds) < 0)
		return 10;
	if (zbus_channel_attach_dup(fds[0], fds[1], &ch) != 0)
		return 11;
	close(fds[0]);
	close(fds[1]);
	if (zbus_pub_new(ch, &po, &pub) != 0)
		return 12;
	if (zbus_pub_send(pub, msg, sizeof(msg)) != 0)
		return 13;
	zbus_pub_free(pub);
	zbus_channel_free(ch);
	return 0;
}

Test(segment, child_attaches_fds_passed_by_scm_rights)
{
	struct zbus_sub_opts so = { .policy = ZBUS_RELIABLE };
	struct zbus_channel *ch = NULL;
	struct zbus_sub *sub = NULL;
	struct zbus_msg info;
	char buf[64] = { 0 };
	int sv[2], fds[2], r;
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				sv),
		     0);
	/* Fork before the channel exists: the child can only know it
	 * through the fds it receives, as an unrelated process would. */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		_exit(child_main(sv[1]));
	}
	close(sv[1]);

	cr_assert_eq(zbus_channel_create("seg-scm", &small_opts, &ch), 0);
	/* Subscribe first: a subscription sees only later messages. */
	cr_assert_eq(zbus_sub_new(ch, &so, &sub), 0);
	fds[0] = zbus_channel_fd(ch);
	fds[1] = zbus_channel_state_fd(ch);
	cr_assert_eq(send_fds(sv[0], fds), 0);

	r = zbus_sub_recv(sub, buf, sizeof(buf), &info, 10000);
	cr_expect_eq(r, (int)sizeof("hello from the child"), "recv: %d (%s)",
		     r, zbus_strerror(r));
	cr_expect_str_eq(buf, "hello from the child");
	cr_expect_eq(tu_wait_child(pid, 10), 0, "child failed");

	zbus_sub_free(sub);
	zbus_channel_free(ch);
	close(sv[0]);
}

/* ------------------------------------------------------------------ */
/* Error strings                                                       */
/* ------------------------------------------------------------------ */

static void expect_readable(int code)
{
	const char *s = zbus_strerror(code);

	cr_assert_not_null(s, "zbus_strerror(%d) is NULL", code);
	cr_expect_gt(strlen(s), 3, "zbus_strerror(%d) = \"%s\"", code, s);
	for (const char *p = s; *p; p++)
		cr_expect((unsigned char)*p >= 0x20 && *p != 0x7f,
			  "zbus_strerror(%d) has a control byte", code);
	cr_expect_null(strstr(s, "Unknown error"),
		       "zbus_strerror(%d) = \"%s\"", code, s);
}

Test(error, strerror_covers_every_attach_and_create_code)
{
	static const int codes[] = { 0,	      -EBADMSG, -EPROTO, -EPERM,
				     -EINVAL, -EBADF,   -ENOMEM, -EMFILE,
				     -ENFILE, -EAGAIN,  -ETIMEDOUT,
				     -EMSGSIZE, -ENOSPC, -ESTALE, -EACCES };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		expect_readable(codes[i]);
	/* The two attach failures a user must tell apart read apart. */
	cr_expect_str_neq(zbus_strerror(-EBADMSG), zbus_strerror(-EPROTO));
	cr_expect_str_neq(zbus_strerror(0), zbus_strerror(-EINVAL));
	/* A code the library never returns still yields a string. */
	cr_expect_not_null(zbus_strerror(-99999));
	cr_expect_not_null(zbus_strerror(INT_MIN + 1));
}

/* ------------------------------------------------------------------ */
/* The leak check itself                                               */
/* ------------------------------------------------------------------ */

Test(testutil, leak_check_fires)
{
	struct zbus_channel *ch = NULL;
	int fd;

	/* Every fixture above relies on tu_leak_end() noticing a leak:
	 * show that it would. */
	cr_assert_eq(tu_leak_delta(), 0);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_expect_neq(tu_leak_delta(), 0, "an open fd went unnoticed");
	close(fd);
	cr_expect_eq(tu_leak_delta(), 0);

	/* A forgotten channel is two fds and two zbus mappings. */
	cr_assert_eq(zbus_channel_create("seg-leak", &small_opts, &ch), 0);
	cr_expect_eq(tu_leak_delta(), 4);
	zbus_channel_free(ch);
	cr_expect_eq(tu_leak_delta(), 0);
}
