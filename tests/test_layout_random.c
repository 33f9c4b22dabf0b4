/*
 * test_layout_random.c - deterministic random mutation of a channel's
 * headers.
 *
 * test_segment.c proves each check of zb_layout_validate() and
 * zb_state_validate() one field at a time; this one looks for combinations
 * nobody thought of. Each iteration takes the valid 128-byte headers of a
 * real channel's two memfds, damages a few bytes of one (or sets a few
 * fields of either to boundary values), writes them with the rest of the
 * real segments into fresh sealed memfds and attaches. The only
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
#include "segment.h"
#include "testutil.h"
#include "zbus/zbus.h"

#define DEFAULT_SEED 0x5a42555352414e44ull /* "ZBUSRAND" */
#define BYTE_ITERS 20000
#define FIELD_ITERS 5000
#define HDR_BYTES 128 /* both headers */
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

_Static_assert(sizeof(struct zb_shm_hdr) == HDR_BYTES &&
		       sizeof(struct zb_state_hdr) == HDR_BYTES,
	       "HDR_BYTES");

/* A small real channel: a few pages, so 20000 copies stay cheap. */
static const struct zbus_channel_opts opts = {
	.max_msg_size = 1024,
	.ring_capacity = 16,
	.max_subscribers = 4,
};

/* Both segments of a channel, indexed by ZB_FD_DATA and ZB_FD_STATE. */
struct image {
	uint8_t *buf[ZB_NFDS];
	size_t size[ZB_NFDS];
};

static void image_load(struct image *im)
{
	cr_assert_eq(tu_segment_copy(&opts, &im->buf[ZB_FD_DATA],
				     &im->size[ZB_FD_DATA],
				     &im->buf[ZB_FD_STATE],
				     &im->size[ZB_FD_STATE]),
		     0);
	for (int i = 0; i < ZB_NFDS; i++)
		cr_assert_geq(im->size[i], HDR_BYTES);
}

/* A copy of @from to mutate: same sizes, own buffers. */
static void image_dup(struct image *im, const struct image *from)
{
	for (int i = 0; i < ZB_NFDS; i++) {
		im->size[i] = from->size[i];
		im->buf[i] = malloc(from->size[i]);
		cr_assert_not_null(im->buf[i]);
	}
}

static void image_reset(struct image *im, const struct image *from)
{
	for (int i = 0; i < ZB_NFDS; i++)
		memcpy(im->buf[i], from->buf[i], from->size[i]);
}

static void image_free(struct image *im)
{
	for (int i = 0; i < ZB_NFDS; i++) {
		free(im->buf[i]);
		im->buf[i] = NULL;
	}
}

struct outcome {
	unsigned ok, badmsg, proto;
};

/*
 * Attach @im (headers already mutated) from fresh sealed memfds.
 * Return: NULL if the outcome is acceptable, else what went wrong (a
 * static string). Plain checks, not Criterion assertions, in the loop:
 * 20000 iterations of passing asserts would each cost a message to the
 * runner.
 */
static const char *try_attach(const struct image *im, struct outcome *out,
			      int *code)
{
	static const char *const names[ZB_NFDS] = { "rand", "rand-state" };
	static const uint8_t payload[8] = { 'z', 'b', 'u', 's', 1, 2, 3, 4 };
	struct zbus_pub_opts po = { .timeout_ms = 0 }; /* never block */
	struct zbus_sub_opts so = { .policy = ZBUS_RELIABLE, .spin_us = -1 };
	struct zbus_channel *ch = NULL;
	struct zbus_channel_info info;
	struct zbus_pub *pub = NULL;
	struct zbus_sub *sub = NULL;
	uint8_t buf[sizeof(payload)];
	const char *err = NULL;
	size_t len, size = im->size[ZB_FD_DATA];
	int fds[ZB_NFDS], r = 0;

	for (int i = 0; i < ZB_NFDS; i++) {
		fds[i] = tu_sealed_memfd(names[i], im->buf[i], im->size[i],
					 im->size[i], MFD_ALLOW_SEALING,
					 F_SEAL_SHRINK | F_SEAL_GROW |
						 F_SEAL_SEAL);
		if (fds[i] < 0)
			r = -1;
	}
	if (r == 0)
		r = zbus_channel_attach_dup(fds[ZB_FD_DATA], fds[ZB_FD_STATE],
					    &ch);
	for (int i = 0; i < ZB_NFDS; i++)
		if (fds[i] >= 0)
			close(fds[i]); /* attach duplicated it */
	if (fds[ZB_FD_DATA] < 0 || fds[ZB_FD_STATE] < 0)
		return "building the memfds failed";
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
	else if (info.state_bytes != im->size[ZB_FD_STATE])
		err = "accepted: state size is not the file size";
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
		   const struct image *good, const struct image *bad)
{
	static const char *const names[ZB_NFDS] = { "data", "state" };
	char diff[512] = "", msg[768];
	size_t n = 0;

	for (int h = 0; h < ZB_NFDS; h++)
		for (unsigned i = 0; i < HDR_BYTES && n < 400; i++)
			if (good->buf[h][i] != bad->buf[h][i])
				n += (size_t)snprintf(
					diff + n, sizeof(diff) - n,
					" %s[%u] %02x->%02x", names[h], i,
					good->buf[h][i], bad->buf[h][i]);
	snprintf(msg, sizeof(msg),
		 "%s (code %d: %s)\n  seed 0x%016" PRIx64
		 " iteration %u, header bytes:%s",
		 what, code, zbus_strerror(code), seed, iter, diff);
	cr_expect_fail("%s", msg);
}

/* Damage the copy @seg of @good; @which: the header to damage, if the
 * mutation picks one. */
typedef void mutate_fn(struct image *seg, const struct image *good,
		       unsigned which);

/*
 * @iters times: mutate a fresh copy of a real channel's segments with
 * @mutate, starting from @seed, and attach it. Stops at the first
 * unacceptable outcome, reported as a failure.
 * Return: 0, or -1 if one was reported.
 */
static int run(uint64_t seed, unsigned iters, mutate_fn *mutate,
	       unsigned which, struct outcome *out)
{
	struct image good, seg;
	int failed = 0;

	image_load(&good);
	image_dup(&seg, &good);
	rng = seed ? seed : DEFAULT_SEED;

	for (unsigned it = 0; it < iters; it++) {
		const char *err;
		int code = 0;

		image_reset(&seg, &good);
		mutate(&seg, &good, which);
		err = try_attach(&seg, out, &code);
		if (err) {
			report(err, seed, it, code, &good, &seg);
			failed = 1;
			break;
		}
	}
	image_free(&seg);
	image_free(&good);
	return failed ? -1 : 0;
}

static void check_outcome(const char *what, unsigned iters, int r,
			  const struct outcome *out, int want_proto)
{
	cr_log_info("%s: %u iterations, %u attached, %u -EBADMSG, "
		    "%u -EPROTO",
		    what, iters, out->ok, out->badmsg, out->proto);
	/* If nothing ever attached or nothing was ever refused, the test
	 * exercised nothing: the image or the generator is broken. */
	if (r == 0 && iters >= 1000) {
		cr_expect_gt(out->ok, 0, "%s", what);
		cr_expect_gt(out->badmsg, 0, "%s", what);
		if (want_proto)
			cr_expect_gt(out->proto, 0, "%s", what);
	}
}

static void flip_bytes(struct image *seg, const struct image *good,
		       unsigned which)
{
	unsigned flips = 1 + (unsigned)(next() % 4);

	(void)good;
	for (unsigned f = 0; f < flips; f++) {
		uint64_t v = next();
		unsigned at = (unsigned)(v % HDR_BYTES);

		/* XOR with 1..255: the byte always changes (two flips of
		 * one byte may still cancel out). */
		seg->buf[which][at] ^= (uint8_t)(1 + (v >> 32) % 255);
	}
}

Test(layout_random, byte_flips_are_refused_or_harmless)
{
	uint64_t seed = tu_env_u64("ZBUS_LAYOUT_SEED", DEFAULT_SEED);
	unsigned iters = (unsigned)tu_env_u64("ZBUS_LAYOUT_ITERS", BYTE_ITERS);
	struct outcome out = { 0 };
	int r = run(seed, iters, flip_bytes, ZB_FD_DATA, &out);

	check_outcome("data byte flips", iters, r, &out, 1);
}

Test(layout_random, state_byte_flips_are_refused_or_harmless)
{
	uint64_t seed = tu_env_u64("ZBUS_LAYOUT_SEED", DEFAULT_SEED) ^ 0x57a7e;
	unsigned iters = (unsigned)tu_env_u64("ZBUS_LAYOUT_ITERS", BYTE_ITERS);
	struct outcome out = { 0 };
	int r = run(seed, iters, flip_bytes, ZB_FD_STATE, &out);

	check_outcome("state byte flips", iters, r, &out, 1);
}

/*
 * Byte flips rarely produce the values that hit boundaries (0, a power of
 * two, one past it, the top of the type, the real value of a neighbour).
 * Here 1–3 whole fields, of either header, get such values: a change of
 * one header that the other repeats (channel_id, state_size, max_subs)
 * is only ever caught by comparing the two. The magics are left out: any
 * other value is refused at once.
 */
struct field {
	const char *name;
	unsigned which; /* ZB_FD_DATA or ZB_FD_STATE */
	unsigned off, width;
};

#define D(n) { #n, ZB_FD_DATA, offsetof(struct zb_shm_hdr, n), \
	       sizeof(((struct zb_shm_hdr *)0)->n) }
#define S(n) { "state." #n, ZB_FD_STATE, offsetof(struct zb_state_hdr, n), \
	       sizeof(((struct zb_state_hdr *)0)->n) }
static const struct field fields[] = {
	D(version_major), D(version_minor),  D(hdr_size),
	D(incompat_features), D(compat_features), D(segment_size),
	D(ctl_off),	  D(ctl_size),	      D(state_size),
	D(max_subs),	  D(ring_off),	      D(ring_capacity),
	D(arena_off),	  D(arena_size),      D(max_msg_size),
	D(slot_size),	  D(desc_size),	      D(pubs_off),
	D(max_pubs),	  D(pub_slot_size),   D(channel_id),
	S(version_major), S(version_minor),  S(hdr_size),
	S(channel_id),	  S(state_size),      S(sctl_off),
	S(subs_off),	  S(max_subs),	      S(slot_size),
};
#undef D
#undef S

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

/* A value worth trying for @f, whose valid value is @cur. */
static uint64_t boundary_value(uint64_t cur, const struct image *good,
			       const struct field *f)
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
	case 9: return good->size[f->which] - (r >> 32) % 3 * 4096;
	case 10: { /* the valid value of another field */
		const struct field *o = &fields[(r >> 16) % NFIELDS];
		return get_field(good->buf[o->which], o);
	}
	default: return cur ^ (1ull << bit);
	}
}

static void set_boundary_fields(struct image *seg, const struct image *good,
				unsigned which)
{
	unsigned n = 1 + (unsigned)(next() % 3);

	(void)which; /* each field names its header */
	for (unsigned k = 0; k < n; k++) {
		const struct field *f = &fields[next() % NFIELDS];
		uint8_t *h = seg->buf[f->which];

		set_field(h, f, boundary_value(get_field(h, f), good, f));
	}
}

Test(layout_random, boundary_fields_are_refused_or_harmless)
{
	uint64_t seed = tu_env_u64("ZBUS_LAYOUT_SEED", DEFAULT_SEED) ^ 0xf1e1d;
	unsigned iters = (unsigned)tu_env_u64("ZBUS_LAYOUT_ITERS", BYTE_ITERS) /
			 (BYTE_ITERS / FIELD_ITERS);
	struct outcome out = { 0 };
	int r = run(seed, iters, set_boundary_fields, ZB_FD_DATA, &out);

	check_outcome("boundary fields", iters, r, &out, 0);
}
