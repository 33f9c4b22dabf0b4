/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - what the fuzz targets share: a check that aborts, so that
 * libFuzzer records the input that broke an invariant.
 */
#ifndef ZB_FUZZ_H
#define ZB_FUZZ_H

#include <stdint.h>
#include <stdlib.h>

#define CHECK(x)                \
	do {                    \
		if (!(x))       \
			abort(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* ZB_FUZZ_H */
