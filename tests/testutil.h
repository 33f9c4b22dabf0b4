/* SPDX-License-Identifier: MIT */
/*
 * testutil.h - shared test helpers: leak checks for fds and mappings,
 * forking helpers and a payload checksum.
 */
#ifndef ZB_TESTUTIL_H
#define ZB_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Number of open fds of this process. */
int tu_count_fds(void);
/* Open fds of another process (-1 if unreadable). */
int tu_count_fds_of(pid_t pid);
/* Number of threads of this process (/proc/self/status), or -1. */
int tu_count_threads(void);
/* Number of mappings of channel memfds ("zbus:" and "zbus-state:"). */
int tu_count_zbus_maps(void);

/*
 * Leak check for fixtures: tu_leak_begin() in .init records the counts;
 * tu_leak_end() in .fini asserts they are back (a Criterion assertion, in
 * leakcheck.c: this file stays free of Criterion for the TSan runner).
 */
void tu_leak_begin(void);
void tu_leak_end(void);
/* The same check, as a value: 0 when nothing leaked. */
int tu_leak_delta(void);
extern int tu_base_fds, tu_base_maps;

struct zbus_channel_opts;

/*
 * tu_segment_copy() - the bytes of both memfds of a freshly created
 * channel, to corrupt in tests: the data segment in @buf/@size, the state
 * segment in @state/@state_size. Both are malloc()ed and belong together
 * (same channel_id). Return: 0 or -errno (then both are NULL).
 */
int tu_segment_copy(const struct zbus_channel_opts *o, uint8_t **buf,
		    size_t *size, uint8_t **state, size_t *state_size);
/*
 * tu_sealed_memfd() - a memfd named "zbus:@name" (so the mapping leak
 * check counts what is attached from it) of @file_size bytes, starting
 * with @len bytes of @buf, sealed with @seals (0: none).
 * Return: the fd, or -errno.
 */
int tu_sealed_memfd(const char *name, const void *buf, size_t len,
		    uint64_t file_size, unsigned mfd_flags, int seals);
/* An unsigned integer from the environment (any base), or @dflt. */
uint64_t tu_env_u64(const char *name, uint64_t dflt);

/* FNV-1a of @len bytes. */
uint64_t tu_hash(const void *p, size_t len);
/* Fill @buf with bytes derived from (producer, index) and stamp a header:
 * producer (4 B), index (8 B), hash of the rest (8 B) when len >= 20. */
void tu_fill(void *buf, size_t len, uint32_t producer, uint64_t index);
/* Check a buffer made by tu_fill(); returns 0 if intact and sets outputs. */
int tu_check(const void *buf, size_t len, uint32_t *producer,
	     uint64_t *index);

/* tu_check() for payloads a producer may be overwriting (lossy reads):
 * the same result, invisible to ThreadSanitizer. */
int tu_check_racy(const void *buf, size_t len, uint32_t *producer,
		  uint64_t *index);

/* Wait for @pid with a bound; returns its exit status (or -1 on
 * signal/timeout: the child is then killed). */
int tu_wait_child(pid_t pid, int timeout_s);

/* A zbusd of the build under test, on a socket in a directory of its own. */
struct tu_broker {
	char dir[64];
	char sock[128];
	char log[160];
	pid_t pid;
};

/*
 * tu_broker_start() - make a directory, start zbusd on a socket in it (its
 * log in the same directory, killed with us) and wait until it answers.
 * Needs ZBUS_BUILD_DIR. Return: 0; -errno (-ETIMEDOUT: it never answered).
 */
int tu_broker_start(struct tu_broker *b);
/* SIGKILL it (its state file stays) and start another on its socket. */
int tu_broker_restart(struct tu_broker *b);
/* SIGTERM it, wait, and remove what it left and the directory. */
void tu_broker_stop(struct tu_broker *b);

#endif /* ZB_TESTUTIL_H */
