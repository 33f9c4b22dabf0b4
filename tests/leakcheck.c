/* SPDX-License-Identifier: MIT */
/*
 * leakcheck.c - the Criterion side of the fd and mapping leak check.
 */
#include <criterion/criterion.h>

#include "testutil.h"

void tu_leak_end(void)
{
	int fds = tu_count_fds(), maps = tu_count_zbus_maps();

	cr_assert_eq(fds, tu_base_fds, "fd leak: %d open, %d before", fds,
		     tu_base_fds);
	cr_assert_eq(maps, tu_base_maps,
		     "mapping leak: %d zbus mappings, %d before", maps,
		     tu_base_maps);
}
