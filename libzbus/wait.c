/* SPDX-License-Identifier: MIT */
/*
 * wait.c - futex sleeps and deadlines.
 */
#include "wait.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uint64_t zb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t zb_deadline_ms(int timeout_ms)
{
	if (timeout_ms < 0)
		return ZB_NEVER;
	return zb_now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

int zb_futex_wait(uint32_t *word, uint32_t expected, uint64_t deadline)
{
	struct timespec ts, *tp = NULL;
	long r;

	if (deadline != ZB_NEVER) {
		uint64_t now = zb_now_ns();

		if (now >= deadline)
			return -ETIMEDOUT;
		/* Relative timeout: FUTEX_WAIT measures it on MONOTONIC. */
		ts.tv_sec = (time_t)((deadline - now) / 1000000000ull);
		ts.tv_nsec = (long)((deadline - now) % 1000000000ull);
		tp = &ts;
	}
	r = syscall(SYS_futex, word, FUTEX_WAIT, expected, tp, NULL, 0);
	if (r < 0 && errno == ETIMEDOUT)
		return -ETIMEDOUT;
	return 0; /* woken, EAGAIN (value changed) or EINTR: caller rechecks */
}

void zb_futex_wake_all(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static int registered;
static pthread_once_t register_once = PTHREAD_ONCE_INIT;

static void do_register(void)
{
	registered = syscall(SYS_membarrier,
			     MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
}

int zb_membarrier_register(void)
{
	pthread_once(&register_once, do_register);
	return registered;
}

int zb_membarrier_global(void)
{
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) < 0)
		return -errno;
	return 0;
}
