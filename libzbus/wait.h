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

#endif /* ZB_WAIT_H */
