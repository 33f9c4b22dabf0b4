/* SPDX-License-Identifier: MIT */
/*
 * wait.h - futex sleeps on shared words, and deadlines for bounded waits.
 */
#ifndef ZB_WAIT_H
#define ZB_WAIT_H

#include <stdint.h>

/* A point in CLOCK_MONOTONIC nanoseconds; ZB_NEVER for "no deadline". */
#define ZB_NEVER UINT64_MAX

uint64_t zb_now_ns(void);
/* Deadline for a timeout in ms (-1: ZB_NEVER, 0: now). */
uint64_t zb_deadline_ms(int timeout_ms);

/*
 * zb_futex_wait() - sleep while *word == expected, until @deadline.
 * Shared (not PRIVATE) futex: the word lives in a mapping other processes
 * share, possibly at other addresses.
 * Return: 0 when woken or the value changed or interrupted; -ETIMEDOUT.
 */
int zb_futex_wait(uint32_t *word, uint32_t expected, uint64_t deadline);
/* Wake every sleeper on @word. */
void zb_futex_wake_all(uint32_t *word);

/*
 * Asymmetric fences (membarrier GLOBAL_EXPEDITED). The hot side of each
 * sleep hand-shake (a publish, a release) needs a full barrier between its
 * store and its load of the sleepers; instead of paying it on every
 * message, every libzbus process registers once, and the side about to
 * sleep (rare, and about to pay a ~40 µs wake-up anyway) forces a barrier
 * on all of them at once.
 *
 * zb_membarrier_register(): once per process. Return: 1 if registered
 * (hot paths may skip their fence), 0 if not (they must fence).
 * zb_membarrier_global(): Return: 0, or -errno when unavailable (the
 * sleeper then cannot trust peers to have fenced and sleeps in short
 * slices instead).
 */
int zb_membarrier_register(void);
int zb_membarrier_global(void);

/* Longest sleep slice when the asymmetric fence is unavailable. */
#define ZB_UNFENCED_SLICE_NS 1000000ull

#endif /* ZB_WAIT_H */
