/* SPDX-License-Identifier: MIT */
/*
 * stress.h - concurrency scenarios, runnable from Criterion tests and from
 * the ThreadSanitizer runner. Each returns 0, or -1 with a reason in @err.
 */
#ifndef ZB_STRESS_H
#define ZB_STRESS_H

#include <stddef.h>
#include <stdint.h>

/*
 * @producers (1..4) x 3 subscribers (reliable, lossy, reliable), with
 * per-message checksums. @exclusive: the one producer uses
 * ZBUS_PUB_EXCLUSIVE.
 */
int stress_mixed(uint64_t per_producer, int producers, int exclusive,
		 int use_threads, char *err, size_t len);
/*
 * Ping-pong @rounds round trips over two channels with subscribers that
 * spin @spin_us (-1: never) before they sleep: a lost wake-up shows as a
 * receive timing out. One way is published exclusively (ZBUS_PUB_EXCLUSIVE,
 * a plain-store commit), the other shared (a CAS commit).
 */
int stress_pingpong(uint64_t rounds, int spin_us, int use_threads,
		    char *err, size_t len);

/*
 * A subscriber driven by its pollable fd (poll, read, drain until -EAGAIN)
 * while a publisher sends @msgs in bursts: a poll that times out is a lost
 * notification.
 */
int stress_fdmode(uint64_t msgs, int use_threads, char *err, size_t len);

#endif /* ZB_STRESS_H */
