/* SPDX-License-Identifier: MIT */
/*
 * bench_vmpull.c - zbus-bench-vmpull: what a pull out of another process
 * costs, beside a copy out of shared memory, in one run.
 *
 * Methods, each copying @size bytes into a private buffer of ours:
 *   memcpy   memcpy() out of a shared mapping the target writes: the
 *            copy a consumer makes from a zero-copy segment
 *   readv    process_vm_readv() of the same bytes through the target's
 *            address space, looping only on short counts: the floor
 *   vmpull   zb_vmpull_read(): readv in 64 MiB pieces plus a pidfd check
 *            after each; against readv this is the cost of its safety
 *
 * The target is a forked child on another CPU. All three read the same
 * pages (a MAP_SHARED mapping the child inherited), so they differ only
 * in how the bytes travel. By default the child rewrites the bytes right
 * before every timed copy ("fresh": they sit in its cache or in DRAM, as
 * just after a publish); --stale writes them once.
 *
 * Each size gets one untimed round of every method first (faults in our
 * pages; on a VM that backs memory lazily, the first touch of a page costs
 * far more than the copy). Then the methods take turns, rep after rep, so
 * that any drift of the machine hits all of them alike. Every copy is
 * checked (one word per page) outside the timed part.
 *
 * Output: per size and method, the median rate over the reps, and "p90":
 * the rate that 90% of the reps reached (the 90th percentile of the time).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmpull.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define PAGE 4096ull
#define MAX_REPS 10000

static const uint64_t sizes[] = { 64 * KiB, MiB, 16 * MiB, 256 * MiB };
enum { M_MEMCPY, M_READV, M_VMPULL, M_COUNT };
static const char *const method_names[M_COUNT] = { "memcpy", "readv",
						   "vmpull" };

static struct {
	unsigned reps;
	uint64_t max;
	int stale;
} cfg = { .reps = 21, .max = 256 * MiB };

/* The target: writes the pattern into the shared mapping on request. */
struct target {
	pid_t pid;
	int pidfd;
	int cmd, ack;
};
struct cmd {
	uint64_t size, seed; /* size 0: exit */
};

static uint64_t pat_word(uint64_t seed, uint64_t i)
{
	return (i + seed) * 0x9E3779B97F4A7C15ull;
}

static void pat_fill(uint64_t *p, uint64_t size, uint64_t seed)
{
	for (uint64_t i = 0; i < size / 8; i++)
		p[i] = pat_word(seed, i);
}

/* One word per page, and the last one: enough to see a copy that did
 * not happen, or came from the wrong round. */
static int pat_spot_check(const uint64_t *p, uint64_t size, uint64_t seed)
{
	for (uint64_t i = 0; i < size / 8; i += PAGE / 8)
		if (p[i] != pat_word(seed, i))
			return -1;
	return p[size / 8 - 1] == pat_word(seed, size / 8 - 1) ? 0 : -1;
}

static int io_full(int fd, void *buf, size_t len, int wr)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = wr ? write(fd, (char *)buf + done, len - done)
			       : read(fd, (char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		done += (size_t)n;
	}
	return 0;
}

static void pin_cpu(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	sched_setaffinity(0, sizeof(s), &s); /* best effort */
}

static _Noreturn void target_main(uint64_t *src, int cmd, int ack,
				  int ncpu)
{
	struct cmd c;
	char a = 'k';

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (ncpu > 1)
		pin_cpu(1);
	while (io_full(cmd, &c, sizeof(c), 0) == 0 && c.size) {
		pat_fill(src, c.size, c.seed);
		if (io_full(ack, &a, 1, 1) < 0)
			break;
	}
	_exit(0);
}

static int target_start(struct target *t, uint64_t *src, int ncpu)
{
	int cmd[2], ack[2];

	if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(ack, O_CLOEXEC) < 0)
		return -errno;
	t->pid = fork();
	if (t->pid < 0)
		return -errno;
	if (t->pid == 0) {
		close(cmd[1]);
		close(ack[0]);
		target_main(src, cmd[0], ack[1], ncpu);
	}
	close(cmd[0]);
	close(ack[1]);
	t->cmd = cmd[1];
	t->ack = ack[0];
	t->pidfd = zb_pidfd_open(t->pid);
	return t->pidfd < 0 ? t->pidfd : 0;
}

/* Have the target write @size bytes of pattern @seed; wait until done. */
static int target_write(struct target *t, uint64_t size, uint64_t seed)
{
	struct cmd c = { .size = size, .seed = seed };
	char a;
	int r = io_full(t->cmd, &c, sizeof(c), 1);

	return r < 0 ? r : io_full(t->ack, &a, 1, 0);
}

static void target_stop(struct target *t)
{
	close(t->cmd); /* the target exits on EOF */
	close(t->ack);
	waitpid(t->pid, NULL, 0);
	if (t->pidfd >= 0)
		close(t->pidfd);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A bare process_vm_readv(), looping only on short counts. */
static int readv_loop(pid_t pid, void *dst, const void *src, uint64_t size)
{
	uint64_t done = 0;

	while (done < size) {
		struct iovec l = { (char *)dst + done, size - done };
		struct iovec r = { (char *)src + done, size - done };
		ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);

		if (n <= 0)
			return n < 0 ? -errno : -EFAULT;
		done += (uint64_t)n;
	}
	return 0;
}

static int copy_once(int m, const struct target *t, void *dst,
		     const void *src, uint64_t size)
{
	ssize_t n;

	switch (m) {
	case M_MEMCPY:
		memcpy(dst, src, size);
		return 0;
	case M_READV:
		return readv_loop(t->pid, dst, src, size);
	default:
		n = zb_vmpull_read(t->pidfd, t->pid, (uintptr_t)src, dst,
				   size);
		return n < 0 ? (int)n : 0;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least @p of them at or
 * below it. */
static double percentile(const double *sorted, unsigned n, double p)
{
	long rank = (long)ceil(p * n);

	if (rank < 1)
		rank = 1;
	return sorted[rank - 1];
}

static void size_label(char *buf, size_t len, uint64_t size)
{
	if (size >= MiB)
		snprintf(buf, len, "%lluMiB", (unsigned long long)(size / MiB));
	else
		snprintf(buf, len, "%lluKiB", (unsigned long long)(size / KiB));
}

/*
 * Rep 0 is the untimed round; reps 1..cfg.reps land in @secs, method by
 * method (cfg.reps each).
 */
static int run_size(struct target *t, uint64_t *src, uint64_t *dst,
		    uint64_t size, double *secs)
{
	uint64_t seed = size;
	int r;

	if (cfg.stale && (r = target_write(t, size, seed)) < 0)
		return r;
	for (unsigned rep = 0; rep <= cfg.reps; rep++) {
		for (int m = 0; m < M_COUNT; m++) {
			uint64_t t0, t1;

			if (!cfg.stale) {
				seed = ((uint64_t)rep << 8 | (uint64_t)m) + 1;
				r = target_write(t, size, seed);
				if (r < 0)
					return r;
			}
			t0 = now_ns();
			r = copy_once(m, t, dst, src, size);
			t1 = now_ns();
			if (r < 0) {
				fprintf(stderr, "%s: %s\n", method_names[m],
					strerror(-r));
				return r;
			}
			if (pat_spot_check(dst, size, seed) < 0) {
				fprintf(stderr, "%s: wrong bytes copied\n",
					method_names[m]);
				return -EBADMSG;
			}
			/* so that a copy that does not happen shows */
			dst[0] = dst[size / 8 - 1] = 0;
			if (rep > 0)
				secs[m * cfg.reps + rep - 1] =
					(double)(t1 - t0) / 1e9;
		}
	}
	return 0;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': v *= KiB; end++; break;
	case 'm': case 'M': v *= MiB; end++; break;
	case 'g': case 'G': v *= GiB; end++; break;
	default: break;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	if (*end || !v)
		return -EINVAL;
	*out = v;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: zbus-bench-vmpull [--reps N] [--max SIZE] "
		   "[--stale]\n"
		   "  --reps N    timed copies per size and method (21)\n"
		   "  --max SIZE  largest size of 64K 1M 16M 256M (256M)\n"
		   "  --stale     the target writes once, not before each "
		   "copy\n");
}

static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reps", required_argument, NULL, 'r' },
		{ "max", required_argument, NULL, 'm' },
		{ "stale", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "r:m:sh", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			cfg.reps = (unsigned)strtoul(optarg, NULL, 10);
			if (cfg.reps < 1 || cfg.reps > MAX_REPS)
				return -EINVAL;
			break;
		case 'm':
			if (parse_size(optarg, &cfg.max) < 0 ||
			    cfg.max < sizes[0])
				return -EINVAL;
			break;
		case 's':
			cfg.stale = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	return optind == argc ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN), ret = 0;
	struct target t = { .pid = -1, .pidfd = -1, .cmd = -1, .ack = -1 };
	uint64_t *src, *dst, max = 0;
	double *secs;

	if (parse_args(argc, argv) < 0) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		if (sizes[i] <= cfg.max)
			max = sizes[i];
	/* Shared before the fork: the child writes, all methods read it. */
	src = mmap(NULL, max, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	dst = mmap(NULL, max, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	secs = calloc((size_t)M_COUNT * cfg.reps, sizeof(*secs));
	if (src == MAP_FAILED || dst == MAP_FAILED || !secs) {
		perror("zbus-bench-vmpull: memory");
		return 1;
	}
	ret = target_start(&t, src, ncpu);
	if (ret < 0) {
		fprintf(stderr, "zbus-bench-vmpull: target: %s\n",
			strerror(-ret));
		return 1;
	}
	if (ncpu > 1)
		pin_cpu(0);
	printf("# target on CPU 1, copier on CPU 0%s; data %s; %u reps\n",
	       ncpu > 1 ? "" : " (not pinned: 1 CPU)",
	       cfg.stale ? "written once (stale)"
			 : "rewritten by the target before each copy (fresh)",
	       cfg.reps);
#ifndef __OPTIMIZE__
	printf("# warning: built without optimisation\n");
#endif
	printf("%-8s %-7s %12s %12s\n", "size", "method", "median GB/s",
	       "p90 GB/s");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]) && !ret;
	     i++) {
		uint64_t size = sizes[i];
		char label[32];

		if (size > max)
			break;
		ret = run_size(&t, src, dst, size, secs);
		if (ret < 0)
			break;
		size_label(label, sizeof(label), size);
		for (int m = 0; m < M_COUNT; m++) {
			double *s = secs + m * cfg.reps;

			qsort(s, cfg.reps, sizeof(*s), cmp_double);
			printf("%-8s %-7s %12.2f %12.2f\n", label,
			       method_names[m],
			       size / percentile(s, cfg.reps, 0.5) / 1e9,
			       size / percentile(s, cfg.reps, 0.9) / 1e9);
		}
		fflush(stdout);
	}
	target_stop(&t);
	free(secs);
	munmap(src, max);
	munmap(dst, max);
	return ret < 0 ? 1 : 0;
}
