/* SPDX-License-Identifier: MIT */
/*
 * log.h - the broker's log: one readable line per event on stderr.
 */
#ifndef ZBD_LOG_H
#define ZBD_LOG_H

__attribute__((format(printf, 1, 2))) void zbd_log(const char *fmt, ...);
/* Non-zero: say nothing (the fuzzer, which must keep stderr its own). */
extern int zbd_log_quiet;

#endif /* ZBD_LOG_H */
