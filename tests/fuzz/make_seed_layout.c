/* SPDX-License-Identifier: MIT */
/*
 * make_seed_layout.c - writes seed_layout.bin, fuzz_layout's seed, from a
 * channel the library itself creates, so that the seed follows the layout
 * instead of going stale by hand. Run it after each layout change and
 * commit the result:
 *
 *   ./build-fz/tests/fuzz/make_seed_layout tests/fuzz/seed_layout.bin
 *
 * test_segment.c fails while the committed seed is not of the current
 * layout version.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout_input.h"
#include "segment.h"
#include "zbus/zbus.h"

/* channel_id is random per channel: a fixed one makes the output the same
 * at each run, so that a regenerated seed only shows in git when the
 * layout changed. */
#define SEED_CHANNEL_ID 0x4445455355425aull /* "ZBUSEED" little-endian */

/* A small geometry, a few of everything: small numbers are cheap for the
 * fuzzer to turn into boundary values. */
static const struct zbus_channel_opts seed_opts = {
	.max_msg_size = 1024,
	.ring_capacity = 16,
	.max_subscribers = 4,
	.max_publishers = 4,
};

/* What an attacher reads of @fd: @len bytes of header, and the file size. */
static int read_memfd(int fd, void *hdr, size_t len, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || pread(fd, hdr, len, 0) != (ssize_t)len)
		return -1;
	*size = (uint64_t)st.st_size;
	return 0;
}

int main(int argc, char **argv)
{
	struct fuzz_layout_input in;
	struct zb_geometry g;
	struct zb_segment seg;
	FILE *f;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTPUT.bin\n", argv[0]);
		return 2;
	}
	memset(&in, 0, sizeof(in));
	r = zb_geometry_from_opts(&seed_opts, &g);
	if (r == 0)
		r = zb_segment_create("fuzz-seed", &g, 0, &seg);
	if (r < 0) {
		fprintf(stderr, "creating the channel: %s\n", strerror(-r));
		return 1;
	}
	r = read_memfd(seg.fd, &in.hdr, sizeof(in.hdr), &in.size);
	if (r == 0)
		r = read_memfd(seg.state_fd, &in.shdr, sizeof(in.shdr),
			       &in.state_size);
	zb_segment_destroy(&seg);
	if (r < 0) {
		perror("reading the memfds");
		return 1;
	}
	in.hdr.channel_id = in.shdr.channel_id = SEED_CHANNEL_ID;

	/* A seed that does not validate makes the fuzzer start from noise. */
	if (zb_layout_validate(&in.hdr, in.size, &g) < 0 ||
	    zb_state_validate(&in.shdr, in.state_size, &g) < 0) {
		fprintf(stderr, "the library's own headers do not validate\n");
		return 1;
	}
	f = fopen(argv[1], "wbe");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	r = fwrite(&in, sizeof(in), 1, f) == 1 ? 0 : -1;
	if (fclose(f) != 0 || r < 0) {
		perror(argv[1]);
		return 1;
	}
	return 0;
}
