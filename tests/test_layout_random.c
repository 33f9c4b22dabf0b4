/* SPDX-License-Identifier: MIT */
/*
 * test_layout_random.c - deterministic random mutation of a segment header.
 *
 * test_segment.c proves each check of zb_layout_validate() one field at a
 * time; this one looks for combinations nobody thought of. Each iteration
 * takes the valid 128-byte header of a real channel, damages a few bytes
 * (or sets a few fields to boundary values), writes it with the rest of
 * the real segment into a fresh sealed memfd and attaches. The only
 * acceptable outcomes are a refusal with -EBADMSG or -EPROTO, or an
 * attach that then really works: one message published and received.
 * A crash, a hang or any other code is a bug.
 *
 * The generator is a fixed-seed xorshift, so a failure names an iteration
 * that reproduces. ZBUS_LAYOUT_SEED and ZBUS_LAYOUT_ITERS override the
 * seed and the count (for longer runs by hand).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"
#include "testutil.h"
#include "zbus/zbus.h"

#define DEFAULT_SEED 0x5a42555352414e44ull /* "ZBUSRAND" */
#define BYTE_ITERS 20000
#define FIELD_ITERS 5000
#define HDR_BYTES sizeof(struct zb_shm_hdr)
#define NFIELDS (sizeof(fields) / sizeof(*fields))

static void leak_init(void)
{
	tu_leak_begin();
}

static void leak_fini(void)
{
	tu_leak_end();
}

TestSuite(layout_random, .init = leak_init, .fini = leak_fini,
	  .timeout = 60);

static uint64_t rng;

static uint64_t next(void)
{
	/* xorshift64 (Marsaglia): enough to spread flips, and portable. */
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A small real channel: two pages, so 20000 copies stay cheap. */
static const struct zbus_channel_opts opts = {
	.max_msg_size = 1024,
	.ring_capacity = 16,
	.max_subscribers = 4,
};

struct image {
	uint8_t *buf;
	size_t size;
};

static void image_load(struct image *im)
{
	cr_assert_eq(tu_segment_copy(&opts, &im->buf, &im->size), 0);
	cr_assert_geq(im->size, sizeof(struct zb_shm_hdr));
}

struct outcome {
	unsigned ok, badmsg, proto;
};

/*
 * Attach @seg (header already mutated) from a fresh sealed memfd.
 * Return: NULL if the outcome is acceptable, else what went wrong (a
 * static string). Plain checks, not Criterion assertions, in the loop:
 * 20000 iterations of passing asserts would each cost a message to the
 * runner.
 */
static const char *try_attach(const uint8_t *seg, size_t size,
			      struct outcome *out, int *code)
{
	static const uint8_t payload[8] = { 'z', 'b', 'u', 's', 1, 2, 3, 4 };
	struct zbus_pub_opts po = { .timeout_ms = 0 }; /* never block */
	struct zbus_sub_opts so = { .policy = ZBUS_RELIABLE, .spin_us = -1 };
	struct zbus_channel *ch = NULL;
	struct zbus_channel_info info;
	struct zbus_pub *pub = NULL;
	struct zbus_sub *sub = NULL;
	uint8_t buf[sizeof(payload)];
	const char *err = NULL;
	size_t len;
	int fd, r;

	fd = tu_sealed_memfd("rand", seg, size, size, MFD_ALLOW_SEALING,
			     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	if (fd < 0)
		return "building the memfd failed";
	r = zbus_channel_attach_dup(fd, &ch);
	close(fd); /* attach duplicated it */
	*code = r;
	if (r == -EBADMSG) {
		out->badmsg++;
		return NULL;
	}
	if (r == -EPROTO) {
		out->proto++;
		return NULL;
	}
	if (r != 0)
		return "attach returned neither 0, -EBADMSG nor -EPROTO";
	out->ok++;

	/* What was accepted must describe a usable channel. */
	zbus_channel_info(ch, &info);
	if (info.segment_bytes != size)
		err = "accepted: segment size is not the file size";
	else if (!info.arena_bytes ||
		 (info.arena_bytes & (info.arena_bytes - 1)) ||
		 info.arena_bytes > size)
		err = "accepted: bad arena size";
	else if (info.ring_capacity < 2 ||
		 (info.ring_capacity & (info.ring_capacity - 1)))
		err = "accepted: bad ring capacity";
	else if (!info.max_subscribers || info.max_subscribers > 256)
		err = "accepted: bad subscriber count";
	else if (2ull * info.max_msg_size > info.arena_bytes)
		err = "accepted: max_msg_size over half the arena";
	if (err)
		goto out;

	len = info.max_msg_size < sizeof(payload) ? info.max_msg_size
						  : sizeof(payload);
	if (zbus_sub_new(ch, &so, &sub) != 0)
		err = "accepted: zbus_sub_new failed";
	else if (zbus_pub_new(ch, &po, &pub) != 0)
		err = "accepted: zbus_pub_new failed";
	else if (zbus_pub_send(pub, payload, len) != 0)
		err = "accepted: zbus_pub_send failed";
	else if (zbus_sub_recv(sub, buf, sizeof(buf), NULL, 0) != (int)len)
		err = "accepted: zbus_sub_recv did not return the message";
	else if (memcmp(buf, payload, len))
		err = "accepted: payload differs";
out:
	zbus_pub_free(pub);
	zbus_sub_free(sub);
	zbus_channel_free(ch);
	return err;
}

static void report(const char *what, uint64_t seed, unsigned iter, int code,
		   const uint8_t *good, const uint8_t *bad)
{
	char diff[512] = "", msg[768];
	size_t n = 0;

	for (unsigned i = 0; i < sizeof(struct zb_shm_hdr) && n < 400; i++)
		if (good[i] != bad[i])
			n += (size_t)snprintf(diff + n, sizeof(diff) - n,
					      " [%u] %02x->%02x", i, good[i],
					      bad[i]);
	snprintf(msg, sizeof(msg),
		 "%s (code %d: %s)\n  seed 0x%016" PRIx64
		 " iteration %u, header bytes:%s",
		 what, code, zbus_strerror(code), seed, iter, diff);
	cr_expect_fail("%s", msg);
}

Test(layout_random, byte_flips_are_refused_or_harmless)
{
	uint64_t seed = tu_env_u64("ZBUS_LAYOUT_SEED", DEFAULT_SEED);
	unsigned iters = (unsigned)tu_env_u64("ZBUS_LAYOUT_ITERS", BYTE_ITERS);
	struct outcome out = { 0 };
	struct image im;
	uint8_t *seg;
	int failed = 0;

	image_load(&im);
	seg = malloc(im.size);
	cr_assert_not_null(seg);
	rng = seed ? seed : DEFAULT_SEED;

	for (unsigned it = 0; it < iters; it++) {
		unsigned flips = 1 + (unsigned)(next() % 4);
		const char *err;
		int code = 0;

		memcpy(seg, im.buf, im.size);
		for (unsigned f = 0; f < flips; f++) {
			uint64_t v = next();
			unsigned at = (unsigned)(v % HDR_BYTES);

			/* XOR with 1..255: the byte always changes (two
			 * flips of one byte may still cancel out). */
			seg[at] ^= (uint8_t)(1 + (v >> 32) % 255);
		}
		err = try_attach(seg, im.size, &out, &code);
		if (err) {
			report(err, seed, it, code, im.buf, seg);
			failed = 1;
			break;
		}
	}
	cr_log_info("byte flips: %u iterations, %u attached, %u -EBADMSG, "
		    "%u -EPROTO",
		    iters, out.ok, out.badmsg, out.proto);
	/* If nothing ever attached or nothing was ever refused, the test
	 * exercised nothing: the image or the generator is broken. */
	if (!failed && iters >= 1000) {
		cr_expect_gt(out.ok, 0);
		cr_expect_gt(out.badmsg, 0);
		cr_expect_gt(out.proto, 0);
	}
	free(seg);
	free(im.buf);
}

/*
 * Byte flips rarely produce the values that hit boundaries (0, a power of
 * two, one past it, the top of the type, the real value of a neighbour).
 * Here 1–3 whole fields get such values.
 */
struct field {
	const char *name;
	unsigned off, width;
};

#define F(n) { #n, offsetof(struct zb_shm_hdr, n), \
	       sizeof(((struct zb_shm_hdr *)0)->n) }
static const struct field fields[] = {
	F(version_major), F(version_minor),  F(hdr_size),
	F(incompat_features), F(compat_features), F(segment_size),
	F(ctl_off),	  F(ctl_size),	      F(subs_off),
	F(max_subs),	  F(ring_off),	      F(ring_capacity),
	F(arena_off),	  F(arena_size),      F(max_msg_size),
	F(slot_size),	  F(desc_size),	      F(pubs_off),
	F(max_pubs),	  F(pub_slot_size),
};
#undef F

static uint64_t get_field(const uint8_t *h, const struct field *f)
{
	uint64_t v = 0;
	uint32_t v32;
	uint16_t v16;

	switch (f->width) {
	case 2:
		memcpy(&v16, h + f->off, 2);
		return v16;
	case 4:
		memcpy(&v32, h + f->off, 4);
		return v32;
	default:
		memcpy(&v, h + f->off, 8);
		return v;
	}
}

static void set_field(uint8_t *h, const struct field *f, uint64_t v)
{
	uint32_t v32 = (uint32_t)v;
	uint16_t v16 = (uint16_t)v;

	if (f->width == 2)
		memcpy(h + f->off, &v16, 2);
	else if (f->width == 4)
		memcpy(h + f->off, &v32, 4);
	else
		memcpy(h + f->off, &v, 8);
}

/* A value worth trying for a field whose valid value is @cur. */
static uint64_t boundary_value(uint64_t cur, const uint8_t *hdr,
			       size_t seg_size)
{
	uint64_t r = next();
	unsigned bit = (unsigned)((r >> 8) % 64);

	switch (r % 12) {
	case 0: return 0;
	case 1: return 1;
	case 2: return cur + 1;
	case 3: return cur - 1;
	case 4: return cur * 2;
	case 5: return cur / 2;
	case 6: return 1ull << bit;
	case 7: return (1ull << bit) - 1;
	case 8: return UINT64_MAX - (r >> 32) % 4096;
	case 9: return seg_size - (r >> 32) % 3 * 4096;
	case 10: { /* the valid value of another field */
		const struct field *o = &fields[(r >> 16) % NFIELDS];
		return get_field(hdr, o);
	}
	default: return cur ^ (1ull << bit);
	}
}

Test(layout_random, boundary_fields_are_refused_or_harmless)
{
	uint64_t seed = tu_env_u64("ZBUS_LAYOUT_SEED", DEFAULT_SEED) ^ 0xf1e1d;
	unsigned iters = (unsigned)tu_env_u64("ZBUS_LAYOUT_ITERS", BYTE_ITERS) /
			 (BYTE_ITERS / FIELD_ITERS);
	struct outcome out = { 0 };
	struct image im;
	uint8_t *seg;
	int failed = 0;

	image_load(&im);
	seg = malloc(im.size);
	cr_assert_not_null(seg);
	rng = seed;

	for (unsigned it = 0; it < iters; it++) {
		unsigned n = 1 + (unsigned)(next() % 3);
		const char *err;
		int code = 0;

		memcpy(seg, im.buf, im.size);
		for (unsigned k = 0; k < n; k++) {
			const struct field *f = &fields[next() % NFIELDS];

			set_field(seg, f,
				  boundary_value(get_field(seg, f), im.buf,
						 im.size));
		}
		err = try_attach(seg, im.size, &out, &code);
		if (err) {
			report(err, seed, it, code, im.buf, seg);
			failed = 1;
			break;
		}
	}
	cr_log_info("boundary fields: %u iterations, %u attached, "
		    "%u -EBADMSG, %u -EPROTO",
		    iters, out.ok, out.badmsg, out.proto);
	if (!failed && iters >= 1000) {
		cr_expect_gt(out.ok, 0);
		cr_expect_gt(out.badmsg, 0);
	}
	free(seg);
	free(im.buf);
}
