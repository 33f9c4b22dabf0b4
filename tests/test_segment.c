/* SPDX-License-Identifier: MIT */
/*
 * test_segment.c - a channel's memfd seen from the outside: what
 * zbus_channel_create() accepts and produces, and what
 * zbus_channel_attach_dup() refuses.
 *
 * Attach is the trust boundary of the library: a peer hands us any fd it
 * likes. Every hostile case below is built the way a peer would build it,
 * through the public API only: copy a real segment (pread), corrupt one
 * header field, write the copy into a fresh memfd, seal it and attach. A
 * single corrupted field per test, so that each check of
 * zb_layout_validate() is shown to stand on its own and not only behind an
 * earlier one.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

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
TestSuite(create, .init = leak_init, .fini = leak_fini, .timeout = 30);
TestSuite(error, .init = leak_init, .fini = leak_fini, .timeout = 30);
TestSuite(testutil, .init = leak_init, .fini = leak_fini, .timeout = 30);

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/*
 * A small geometry keeps every hostile copy at two pages: header, ctl,
 * 4 subscriber and 4 publisher slots and 16 descriptors fit in page 0, the
 * arena is page 1.
 */
static const struct zbus_channel_opts small_opts = {
	.max_msg_size = 1024,
	.ring_capacity = 16,
	.max_subscribers = 4,
	.max_publishers = 4,
};

/* A copy of a real, freshly created segment. */
struct image {
	uint8_t *buf;
	size_t size;
	struct zb_shm_hdr hdr; /* what the test corrupts */
};

static void image_load(struct image *im, const struct zbus_channel_opts *o)
{
	cr_assert_eq(tu_segment_copy(o, &im->buf, &im->size), 0);
	cr_assert_geq(im->size, sizeof(im->hdr));
	memcpy(&im->hdr, im->buf, sizeof(im->hdr));
	/* The test relies on the geometry small_opts gives: fail loudly if
	 * the library's layout changes under it. */
	if (o == &small_opts) {
		cr_assert_eq(im->size, 2 * PAGE);
		cr_assert_eq(im->hdr.arena_off, PAGE);
		cr_assert_eq(im->hdr.arena_size, PAGE);
	}
}

static void image_free(struct image *im)
{
	free(im->buf);
	im->buf = NULL;
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
 * Write @im (with its possibly corrupted header) into a sealed memfd of
 * @file_size bytes and attach it. A successful attach is exercised with
 * one message, then everything is freed: the caller only sees the code.
 */
static int attach_sized(const struct image *im, uint64_t file_size)
{
	struct zbus_channel *ch = NULL;
	uint8_t *copy;
	int fd, r;

	copy = malloc(im->size);
	cr_assert_not_null(copy);
	memcpy(copy, im->buf, im->size);
	memcpy(copy, &im->hdr, sizeof(im->hdr));
	fd = memfd_with(copy, im->size, file_size, MFD_ALLOW_SEALING,
			all_seals);
	free(copy);
	r = zbus_channel_attach_dup(fd, &ch);
	close(fd);
	if (r == 0) {
		cr_assert_not_null(ch);
		round_trip(ch, ch, "hostile but valid");
		zbus_channel_free(ch);
	}
	return r;
}

static int attach_image(const struct image *im)
{
	return attach_sized(im, im->size);
}

/* The header of a fresh small channel, for one corruption. */
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
	uint8_t *copy;
	int fd;

	WITH_IMAGE(im);
	/* A newer writer that only added compatible things must still be
	 * readable by us: that is the point of the minor/compat split. */
	im.hdr.version_minor = ZB_LAYOUT_MINOR + 1;
	im.hdr.compat_features = 1ull << 17 | 1ull << 63;
	cr_expect_eq(attach_image(&im), 0);

	/* And the attached channel reports the writer's minor version. */
	copy = malloc(im.size);
	cr_assert_not_null(copy);
	memcpy(copy, im.buf, im.size);
	memcpy(copy, &im.hdr, sizeof(im.hdr));
	fd = memfd_with(copy, im.size, im.size, MFD_ALLOW_SEALING, all_seals);
	free(copy);
	cr_assert_eq(zbus_channel_attach_dup(fd, &ch), 0);
	cr_assert_eq(zbus_channel_info(ch, &info), 0);
	cr_expect_eq(info.version_major, ZB_LAYOUT_MAJOR);
	cr_expect_eq(info.version_minor, ZB_LAYOUT_MINOR + 1);
	zbus_channel_free(ch);
	close(fd);
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

Test(segment, attach_rejects_ring_overlapping_slots)
{
	WITH_IMAGE(im);
	im.hdr.ring_off = im.hdr.subs_off + 64;
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
	im.hdr.max_subs = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);
}

Test(segment, attach_rejects_max_subs_over_256)
{
	WITH_IMAGE(im);
	/* The sleepers bitmap has 256 bits. In the small channel 257 slots
	 * would also run into the ring, so a second channel with 256 slots
	 * and room for one more shows that the bound alone refuses it. */
	struct image big;
	struct zbus_channel_opts o = { .max_msg_size = 1024,
				       .ring_capacity = 16,
				       .max_subscribers = 256 };

	im.hdr.max_subs = ZB_MAX_SUBS + 1;
	cr_expect_eq(attach_image(&im), -EBADMSG);
	image_free(&im);

	image_load(&big, &o);
	/* The ring starts right after the 256 slots: shift it by one slot
	 * so that 257 would fit in front of it. */
	cr_assert_eq(big.hdr.max_subs, 256);
	big.hdr.ring_off += sizeof(struct zb_sub_slot);
	cr_assert_leq(big.hdr.ring_off +
			      (uint64_t)big.hdr.ring_capacity * 32,
		      big.hdr.arena_off);
	cr_expect_eq(attach_image(&big), 0, "control: shifted ring is valid");
	big.hdr.max_subs = 257;
	cr_expect_eq(attach_image(&big), -EBADMSG);
	big.hdr.max_subs = UINT32_MAX;
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

	/* subs_off + max_subs * slot_size wraps in 32 bits too. */
	im.hdr = ok;
	im.hdr.subs_off = UINT32_MAX - 63;
	cr_expect_eq(attach_image(&im), -EBADMSG, "subs_off near 2^32");

	/* ctl_off + ctl_size: a huge ctl_size wraps past subs_off. */
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
	cr_assert_eq(ok.pubs_off, ok.subs_off + 4 * sizeof(struct zb_sub_slot));
	im.hdr.max_pubs = 0;
	cr_expect_eq(attach_image(&im), -EBADMSG, "max_pubs 0");
	im.hdr = ok;
	im.hdr.max_pubs = ZB_MAX_PUBS + 1;
	cr_expect_eq(attach_image(&im), -EBADMSG, "max_pubs over the bound");
	im.hdr = ok;
	im.hdr.max_pubs = 5; /* runs into the ring */
	cr_expect_eq(attach_image(&im), -EBADMSG, "publishers overlap ring");
	im.hdr = ok;
	im.hdr.pubs_off -= sizeof(struct zb_sub_slot); /* into the subs */
	cr_expect_eq(attach_image(&im), -EBADMSG, "overlap subscribers");
	im.hdr = ok;
	im.hdr.pubs_off += 8;
	cr_expect_eq(attach_image(&im), -EBADMSG, "misaligned");
	im.hdr = ok;
	im.hdr.pubs_off = UINT32_MAX - 63;
	cr_expect_eq(attach_image(&im), -EBADMSG, "pubs_off near 2^32");
	im.hdr = ok;
	cr_expect_eq(attach_image(&im), 0, "control: untouched");
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
/* The fd itself                                                       */
/* ------------------------------------------------------------------ */

/*
 * zbus.h: "-EINVAL if @fd is not a memfd; -EPERM if it lacks the grow,
 * shrink or seal seals". A memfd is refused with -EPERM as soon as any one
 * of the three is missing: without them a peer could truncate the file
 * under our mapping (SIGBUS) or add seals of its own later.
 */
Test(segment, attach_rejects_unsealed_memfd)
{
	WITH_IMAGE(im);
	struct zbus_channel *ch = NULL;
	int fd = memfd_with(im.buf, im.size, im.size, MFD_ALLOW_SEALING, 0);
	int r = zbus_channel_attach_dup(fd, &ch);

	/* Unsealed, a peer could truncate it under our mapping: SIGBUS. */
	cr_expect_eq(r, -EPERM, "unsealed memfd: got %d (%s)", r,
		     zbus_strerror(r));
	if (r == 0)
		zbus_channel_free(ch);
	close(fd);
	image_free(&im);
}

Test(segment, attach_rejects_shrink_only_seal)
{
	WITH_IMAGE(im);
	struct zbus_channel *ch = NULL;
	int fd = memfd_with(im.buf, im.size, im.size, MFD_ALLOW_SEALING,
			    F_SEAL_SHRINK);
	int r = zbus_channel_attach_dup(fd, &ch);

	/* It can still grow, and then no later attach passes the size
	 * check: one peer could lock everybody else out. */
	cr_expect_eq(r, -EPERM, "shrink-only sealed memfd: got %d (%s)", r,
		     zbus_strerror(r));
	if (r == 0)
		zbus_channel_free(ch);
	close(fd);
	image_free(&im);
}

Test(segment, attach_rejects_grow_shrink_without_seal_seal)
{
	WITH_IMAGE(im);
	struct zbus_channel *ch = NULL;
	int fd = memfd_with(im.buf, im.size, im.size, MFD_ALLOW_SEALING,
			    F_SEAL_SHRINK | F_SEAL_GROW);
	int r = zbus_channel_attach_dup(fd, &ch);

	/* Without F_SEAL_SEAL a peer could still add F_SEAL_FUTURE_WRITE
	 * and stop every later attacher from mapping the ring writable. */
	cr_expect_eq(r, -EPERM, "got %d (%s)", r, zbus_strerror(r));
	if (r == 0)
		zbus_channel_free(ch);
	close(fd);
	image_free(&im);
}

Test(segment, attach_rejects_memfd_without_allow_sealing)
{
	WITH_IMAGE(im);
	struct zbus_channel *ch = NULL;
	/* Such a memfd reports only F_SEAL_SEAL: it can still shrink. */
	int fd = memfd_with(im.buf, im.size, im.size, 0, 0);
	int r;

	cr_assert_eq(fcntl(fd, F_GET_SEALS), F_SEAL_SEAL);
	r = zbus_channel_attach_dup(fd, &ch);
	cr_expect_eq(r, -EPERM, "got %d (%s)", r, zbus_strerror(r));
	if (r == 0)
		zbus_channel_free(ch);
	close(fd);
	image_free(&im);
}

Test(segment, attach_rejects_pipe)
{
	struct zbus_channel *ch = NULL;
	int p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_expect_eq(zbus_channel_attach_dup(p[0], &ch), -EINVAL);
	cr_expect_eq(zbus_channel_attach_dup(p[1], &ch), -EINVAL);
	close(p[0]);
	close(p[1]);
}

Test(segment, attach_rejects_regular_file)
{
	WITH_IMAGE(im);
	struct zbus_channel *ch = NULL;
	FILE *f = tmpfile();

	cr_assert_not_null(f);
	/* A perfect copy of a segment, on disk: still not a memfd. */
	cr_assert_eq(fwrite(im.buf, 1, im.size, f), im.size);
	cr_assert_eq(fflush(f), 0);
	cr_expect_eq(zbus_channel_attach_dup(fileno(f), &ch), -EINVAL);
	fclose(f);
	image_free(&im);
}

Test(segment, attach_rejects_socket)
{
	struct zbus_channel *ch = NULL;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
		     0);
	cr_expect_eq(zbus_channel_attach_dup(sv[0], &ch), -EINVAL);
	close(sv[0]);
	close(sv[1]);
}

Test(segment, attach_rejects_bad_fd)
{
	struct zbus_channel *ch = NULL;
	int fd;

	cr_expect_eq(zbus_channel_attach_dup(-1, &ch), -EBADF);
	cr_expect_eq(zbus_channel_attach_dup(INT_MIN, &ch), -EBADF);
	/* A closed descriptor number. */
	fd = dup(STDERR_FILENO);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_expect_eq(zbus_channel_attach_dup(fd, &ch), -EBADF);
}

Test(segment, attach_rejects_null_out)
{
	struct zbus_channel *ch = NULL;

	cr_assert_eq(zbus_channel_create("seg-null", &small_opts, &ch), 0);
	cr_expect_eq(zbus_channel_attach_dup(zbus_channel_fd(ch), NULL),
		     -EINVAL);
	zbus_channel_free(ch);
}

Test(segment, attach_rejects_empty_memfd)
{
	struct zbus_channel *ch = NULL;
	int fd = memfd_with(NULL, 0, 0, MFD_ALLOW_SEALING, all_seals);

	cr_expect_eq(zbus_channel_attach_dup(fd, &ch), -EBADMSG);
	close(fd);
}

Test(segment, attach_rejects_memfd_smaller_than_header)
{
	WITH_IMAGE(im);
	struct zbus_channel *ch = NULL;
	/* The first 100 bytes of a real header: magic and version are
	 * right, the rest is missing. */
	int fd = memfd_with(im.buf, 100, 100, MFD_ALLOW_SEALING, all_seals);

	cr_expect_eq(zbus_channel_attach_dup(fd, &ch), -EBADMSG);
	close(fd);
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
	cr_assert_eq(zbus_channel_attach_dup(zbus_channel_fd(a), &b), 0);
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

Test(segment, attach_duplicates_the_fd)
{
	struct zbus_channel *creator = NULL, *ch = NULL;
	int fd, afd, flags;

	cr_assert_eq(zbus_channel_create("seg-dup", &small_opts, &creator),
		     0);
	/* Our own copy of the fd, so that we may close it. */
	fd = fcntl(zbus_channel_fd(creator), F_DUPFD_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(zbus_channel_attach_dup(fd, &ch), 0);
	afd = zbus_channel_fd(ch);
	cr_expect_geq(afd, 0);
	cr_expect_neq(afd, fd, "the channel must own a duplicate");
	flags = fcntl(afd, F_GETFD);
	cr_expect_geq(flags, 0);
	cr_expect(flags & FD_CLOEXEC, "duplicate must be CLOEXEC");

	/* The caller keeps @fd: closing it, and dropping the creator too,
	 * must leave the attached channel fully usable. */
	cr_assert_eq(close(fd), 0);
	creator = zbus_channel_free(creator);
	cr_expect_eq(fcntl(afd, F_GET_SEALS) & all_seals, all_seals);
	round_trip(ch, ch, "after the original fd is gone");
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
	struct zbus_channel_opts o = { 0 };

	for (int i = 0; i < 4; i++) {
		o = (struct zbus_channel_opts){ 0 };
		o.reserved[i] = 1ull << 40;
		cr_expect_eq(create_rc(&o), -EINVAL, "reserved[%d]", i);
	}
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

Test(create, memfd_is_sealed)
{
	struct zbus_channel *ch = NULL;
	char path[64];
	int fd, fd2, seals;
	off_t size;

	cr_assert_eq(zbus_channel_create("seg-seal", &small_opts, &ch), 0);
	fd = zbus_channel_fd(ch);
	seals = fcntl(fd, F_GET_SEALS);
	cr_assert_geq(seals, 0);
	cr_expect_eq(seals & all_seals, all_seals, "seals 0x%x", seals);
	size = lseek(fd, 0, SEEK_END);

	/* The creator's own fd cannot change the size either way... */
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
	 * FIELD-NOTES: a receiver can reopen /proc/self/fd/N read-write,
	 * whatever mode the fd came with. Only the seals stop it, since they
	 * belong to the inode, not to the open file.
	 */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	fd2 = open(path, O_RDWR | O_CLOEXEC);
	cr_assert_geq(fd2, 0, "reopen %s: %s", path, strerror(errno));
	errno = 0;
	cr_expect_eq(ftruncate(fd2, 0), -1);
	cr_expect_eq(errno, EPERM);
	errno = 0;
	cr_expect_eq(ftruncate(fd2, size + PAGE), -1);
	cr_expect_eq(errno, EPERM);
	cr_expect_eq(lseek(fd2, 0, SEEK_END), size);
	close(fd2);
	zbus_channel_free(ch);
}

/* ------------------------------------------------------------------ */
/* Passing the fd to another process                                   */
/* ------------------------------------------------------------------ */

static int send_fd(int sock, int fd)
{
	char byte = 'c';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
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
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

/* Return: the received fd, or -1. Runs in the child: no assertions. */
static int recv_fd(int sock)
{
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	int fd;

	if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != 1 ||
	    (mh.msg_flags & MSG_CTRUNC))
		return -1;
	c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(sizeof(int)))
		return -1;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/* The child: attach what arrives on @sock, publish one message. Exit
 * codes say which step failed, since a child cannot assert. */
static int child_main(int sock)
{
	struct zbus_pub_opts po = { .timeout_ms = 5000 };
	struct zbus_channel *ch = NULL;
	struct zbus_pub *pub = NULL;
	static const char msg[] = "hello from the child";
	int fd = recv_fd(sock);

	if (fd < 0)
		return 10;
	if (zbus_channel_attach_dup(fd, &ch) != 0)
		return 11;
	close(fd);
	if (zbus_pub_new(ch, &po, &pub) != 0)
		return 12;
	if (zbus_pub_send(pub, msg, sizeof(msg)) != 0)
		return 13;
	zbus_pub_free(pub);
	zbus_channel_free(ch);
	return 0;
}

Test(segment, child_attaches_fd_passed_by_scm_rights)
{
	struct zbus_sub_opts so = { .policy = ZBUS_RELIABLE };
	struct zbus_channel *ch = NULL;
	struct zbus_sub *sub = NULL;
	struct zbus_msg info;
	char buf[64] = { 0 };
	int sv[2], r;
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				sv),
		     0);
	/* Fork before the channel exists: the child can only know it
	 * through the fd it receives, as an unrelated process would. */
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
	cr_assert_eq(send_fd(sv[0], zbus_channel_fd(ch)), 0);

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
				     -EMSGSIZE, -ENOSPC, -ESTALE };

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

	/* A forgotten channel is one fd and one zbus mapping. */
	cr_assert_eq(zbus_channel_create("seg-leak", &small_opts, &ch), 0);
	cr_expect_eq(tu_leak_delta(), 2);
	zbus_channel_free(ch);
	cr_expect_eq(tu_leak_delta(), 0);
}
