/* SPDX-License-Identifier: MIT */
/*
 * log.h - the broker's log: one readable line per event on stderr.
 */
#ifndef ZBD_LOG_H
#define ZBD_LOG_H

__attribute__((format(printf, 1, 2))) void zbd_log(const char *fmt, ...);

#endif /* ZBD_LOG_H */
