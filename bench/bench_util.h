/* SPDX-License-Identifier: MIT */
/*
 * bench_util.h - the harness the benchmarks share: the first failure and
 * its reason, a busy-poll loop that notices a dead or stuck peer, blocking
 * fd I/O, the payload pattern, CPU pinning, and a forked peer process with
 * a sync pipe that dies with us and reports why it failed.
 *
 * A benchmark names itself in bench_prog and calls bench_setup() first;
 * every helper that fails records the cause in bench_err (only the first:
 * what fails while unwinding after it is a consequence) and returns
 * -errno.
 */
#ifndef ZBUS_BENCH_UTIL_H
#define ZBUS_BENCH_UTIL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define CACHE_LINE 64

extern char bench_err[512];			/* first failure */
extern volatile sig_atomic_t bench_timed_out;	/* SIGALRM seen */
extern volatile sig_atomic_t bench_child_exited; /* SIGCHLD seen */
extern const char *bench_prog;			/* for messages */

/* Record @err (-errno) with a message; return @err. */
__attribute__((format(printf, 2, 3)))
int bench_fail(int err, const char *fmt, ...);
/* As bench_fail(), for a return code of libzbus: it has its own texts. */
__attribute__((format(printf, 2, 3)))
int bench_zfail(int err, const char *fmt, ...);
/* Print "PROG: MESSAGE (see --help)" to stderr; return -EINVAL. */
__attribute__((format(printf, 1, 2)))
int bench_usage_error(const char *fmt, ...);

struct bench_cpus;
struct zbus_pub;

/*
 * bench_setup() - signals (alarm and child exit interrupt blocking I/O,
 * SIGPIPE gives EPIPE), the page a forked peer reports its error in, and
 * the two CPUs: @cpus is filled and this process (the producer) pinned
 * to the first.
 */
int bench_setup(struct bench_cpus *cpus);
/* A zeroed mapping of @bytes shared with the children forked later. */
void *bench_map_shared(size_t bytes);

bool bench_stop_requested(void);
int bench_stop_error(const char *where);

static inline void bench_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/*
 * Busy-poll @expr while it returns -EAGAIN, every transport the same way.
 * The stop flags are sampled before each attempt, so the attempt made after
 * a peer's exit was noticed still sees what the peer published; only if
 * that one finds nothing either do we give up.
 */
#define BENCH_SPIN(ret, expr, where)                           \
	do {                                                   \
		for (;;) {                                     \
			bool stop_ = bench_stop_requested();   \
			(ret) = (expr);                        \
			if ((ret) != -EAGAIN)                  \
				break;                         \
			if (stop_) {                           \
				(ret) = bench_stop_error(where);  \
				break;                         \
			}                                      \
			bench_cpu_relax();                     \
		}                                              \
	} while (0)

/* CLOCK_MONOTONIC is system-wide: both processes read the same clock. */
uint64_t bench_now_ns(void);
/* CPU time of this process (all its threads), in ns. */
uint64_t bench_cpu_ns(void);
uint64_t bench_round_up(uint64_t v, uint64_t align);

/*
 * Blocking I/O of exactly @len bytes; an alarm makes it -ETIMEDOUT, a peer
 * that went away (EOF, EPIPE, a TCP reset) -EPIPE.
 */
int bench_write_full(int fd, const void *buf, size_t len, const char *where);
int bench_read_full(int fd, void *buf, size_t len, const char *where);

/*
 * Every byte carries the low byte of @seq; the first word carries @seq and
 * the last word ~@seq, so a lost, repeated, reordered or torn message shows.
 */
void bench_payload_fill(void *dst, size_t size, uint64_t seq);

/* The CPUs producer ([0]) and consumer ([1]) run on: the first two we may
 * use; @pin is false with only one. */
struct bench_cpus {
	int ncpu;
	int cpu[2];
	bool pin;
};

int bench_pin_cpu(int cpu);
/* The consumer's CPU, or -1 (not pinned), for bench_peer_start(). */
int bench_consumer_cpu(const struct bench_cpus *c);

/*
 * bench_loan_send() - zbus's zero-copy send: loan @size bytes (busy-polling
 * while the ring is full), write message @seq into the loan, publish it.
 */
int bench_loan_send(struct zbus_pub *pub, size_t size, uint64_t seq);

int bench_cmp_double(const void *a, const void *b);
/* Nearest rank: the smallest sample with at least @p of them at or below. */
double bench_percentile(const double *sorted, unsigned int n, double p);

/* A decimal size with an optional k/M/G suffix (KiB, MiB...), ≤ @max. */
int bench_parse_size(const char *s, uint64_t max, size_t *out);
/* A comma-separated list of such sizes, each in [@min, @max], at most
 * @cap of them, into @sizes and @n. Complains on stderr: -EINVAL. */
int bench_parse_sizes(char *arg, size_t *sizes, unsigned int cap,
		      unsigned int *n, uint64_t min, uint64_t max);
/* A comma-separated list of names of @names (@count), or "all", into the
 * bit mask @mask. Complains on stderr: -EINVAL. */
int bench_parse_names(char *arg, const char *(*name)(size_t i),
		      size_t count, unsigned int *mask);
/* An integer option @opt in [@min, @max]. Complains on stderr. */
int bench_parse_uint(const char *arg, const char *opt, unsigned int min,
		     unsigned int max, unsigned int *out);
void bench_size_label(char *buf, size_t len, size_t size);
/* "machine: Linux RELEASE, nproc N, MODEL" and a warning for -O0. */
void bench_print_machine(FILE *f, int ncpu);

/*
 * struct bench_peer - a forked child and the pipe it signals us on
 * @pid: the child, -1 when none
 * @sync_fd: parent: the read end; child: the write end
 * @timeout_s: the child's alarm; ours is 2 s longer so that a stuck child
 *             reports itself first
 */
struct bench_peer {
	pid_t parent;
	pid_t pid;
	int sync_fd;
	unsigned int timeout_s;
};

typedef int (*bench_child_fn)(struct bench_peer *p, void *arg);

/*
 * bench_peer_start() - fork a child that runs @fn(@arg) on CPU @cpu (-1:
 * where it likes), dies with us, and after @fn calls @cleanup(@arg) (may
 * be NULL) and exits: 0 if @fn returned 0, else 1 with bench_err passed on
 * to bench_peer_end(). In the parent, returns 0 with the child running.
 */
int bench_peer_start(struct bench_peer *p, unsigned int timeout_s, int cpu,
		     bench_child_fn fn, void (*cleanup)(void *arg), void *arg);
/* Child: tell the parent it may go on. */
int bench_peer_notify(struct bench_peer *p);
/* Parent: wait for the child's word; @what names the wait in errors. */
int bench_peer_wait(struct bench_peer *p, const char *what);
/*
 * bench_peer_end() - reap the child always. If we failed on our own (@ret
 * < 0 and not -EPIPE), kill it first; if we failed because it went away
 * (or did not fail at all) and it failed, its reason is the one reported.
 * Return: @ret or the child's failure (-ECHILD).
 */
int bench_peer_end(struct bench_peer *p, int ret);

#endif /* ZBUS_BENCH_UTIL_H */
