/* SPDX-License-Identifier: MIT */
/*
 * layout_input.h - the bytes fuzz_layout reads, and so the format of
 * seed_layout.bin: what an attacher learns from a channel's two memfds
 * before it maps them (each header, read with pread(), and each file's
 * size from fstat()). Shared by the target, the seed's generator
 * (make_seed_layout.c) and the test that the committed seed is current
 * (test_segment.c).
 */
#ifndef ZB_LAYOUT_INPUT_H
#define ZB_LAYOUT_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"

struct fuzz_layout_input {
	struct zb_shm_hdr hdr;     /*   0 data memfd's header */
	uint64_t size;             /* 128 data memfd's size */
	struct zb_state_hdr shdr;  /* 136 state memfd's header */
	uint64_t state_size;       /* 264 state memfd's size */
};
_Static_assert(sizeof(struct fuzz_layout_input) == 272, "layout input");
/* An input this short holds the data half only. */
#define FUZZ_LAYOUT_DATA_BYTES offsetof(struct fuzz_layout_input, shdr)

#endif /* ZB_LAYOUT_INPUT_H */
