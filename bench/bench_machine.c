/* SPDX-License-Identifier: MIT */
/*
 * bench_machine.c - zbus-bench-machine: what the machine itself does to a
 * benchmark at the moment it runs.
 *
 * On a virtual machine the same binary gives small-message numbers that
 * swing several-fold from one run to the next, and open-loop tails in
 * milliseconds at loads far from saturation. Two things the guest cannot
 * see in /proc (steal time reads zero here) explain most of it, so we
 * measure them beside the results instead of guessing:
 *
 *   core-to-core  a cache line bounced between the two pinned CPUs: the
 *                 round trip of one 64-byte line, the unit every
 *                 shared-memory transport pays per message or per batch.
 *                 Where the hypervisor places our two vCPUs (one core's
 *                 two threads, one L3, two chiplets) sets it, and it can
 *                 change between runs.
 *   hiccups       each CPU spins reading the clock; any gap longer than
 *                 the loop itself is time the CPU was taken from us
 *                 (an interrupt, the host running someone else). The
 *                 time lost and the longest gap bound what a tail
 *                 latency at low load can owe to the machine.
 *
 * Output: two text lines, or with --csv one row per measure. Nothing here
 * is compared against a limit: it is context for the other numbers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "c2c.h"

#define PINGPONG_ROUNDS 9
#define GAP_NS 10000ull /* a gap this long is the machine's, not ours */

/* The hiccup counts the child reports back. */
struct shared {
	uint64_t child_gaps;
	uint64_t child_lost_ns;
	uint64_t child_max_ns;
	_Atomic uint32_t go;
};

struct hiccups {
	uint64_t gaps;    /* gaps of GAP_NS or more */
	uint64_t lost_ns; /* their total */
	uint64_t max_ns;  /* the longest */
};

static struct bench_cpus cpus;
static bool csv;
static unsigned int trips = 20000;
static unsigned int spin_ms = 1000;

/* Spin for spin_ms reading the clock; count the gaps. */
static void spin_hiccups(struct hiccups *h)
{
	uint64_t start = bench_now_ns(), last = start;
	uint64_t end = start + (uint64_t)spin_ms * 1000000ull;

	memset(h, 0, sizeof(*h));
	while (last < end) {
		uint64_t now = bench_now_ns(), gap = now - last;

		if (gap >= GAP_NS) {
			h->gaps++;
			h->lost_ns += gap;
			if (gap > h->max_ns)
				h->max_ns = gap;
		}
		last = now;
	}
}

static int child_main(struct bench_peer *p, void *arg)
{
	struct shared *sh = arg;
	struct hiccups h;
	int ret;

	ret = bench_peer_notify(p);
	if (ret < 0)
		return ret;
	/* Both CPUs spin at once: a host that takes one vCPU away while
	 * the other runs is what a producer and consumer pair sees. */
	BENCH_SPIN(ret,
		   atomic_load_explicit(&sh->go, memory_order_acquire) ?
			   0 : -EAGAIN,
		   "hiccup start");
	if (ret < 0)
		return ret;
	spin_hiccups(&h);
	sh->child_gaps = h.gaps;
	sh->child_lost_ns = h.lost_ns;
	sh->child_max_ns = h.max_ns;
	return 0;
}

static void report(const double *rtt, const struct hiccups *h)
{
	double sorted[PINGPONG_ROUNDS];
	double window = (double)spin_ms * 1e6;

	memcpy(sorted, rtt, sizeof(sorted));
	qsort(sorted, PINGPONG_ROUNDS, sizeof(*sorted), bench_cmp_double);
	if (csv) {
		printf("measure,cpu,value,min,max,unit\n");
		printf("c2c_rtt,%d-%d,%.1f,%.1f,%.1f,ns\n", cpus.cpu[0],
		       cpus.cpu[1], sorted[PINGPONG_ROUNDS / 2], sorted[0],
		       sorted[PINGPONG_ROUNDS - 1]);
		for (int i = 0; i < 2; i++) {
			printf("hiccup_gaps,%d,%" PRIu64 ",,,per %u ms\n",
			       cpus.cpu[i], h[i].gaps, spin_ms);
			printf("hiccup_lost,%d,%.3f,,,%%\n", cpus.cpu[i],
			       100.0 * (double)h[i].lost_ns / window);
			printf("hiccup_max,%d,%.1f,,,us\n", cpus.cpu[i],
			       (double)h[i].max_ns / 1e3);
		}
		return;
	}
	printf("core-to-core: one cache line's round trip between CPU %d and "
	       "CPU %d: %.0f ns (p50 of %d rounds, %.0f..%.0f)\n",
	       cpus.cpu[0], cpus.cpu[1], sorted[PINGPONG_ROUNDS / 2],
	       PINGPONG_ROUNDS, sorted[0], sorted[PINGPONG_ROUNDS - 1]);
	printf("hiccups (gaps of %llu us or more while spinning %u ms):",
	       GAP_NS / 1000, spin_ms);
	for (int i = 0; i < 2; i++)
		printf("%s CPU %d: %" PRIu64 ", %.2f%% lost, longest %.0f us",
		       i ? ";" : "", cpus.cpu[i], h[i].gaps,
		       100.0 * (double)h[i].lost_ns / window,
		       (double)h[i].max_ns / 1e3);
	printf("\n");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: zbus-bench-machine [--csv] [--quick]\n"
		   "  the cache-line round trip between the two CPUs the "
		   "benchmarks pin to,\n  and the time each CPU is taken "
		   "away while it spins (hiccups)\n");
}

static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "csv", no_argument, NULL, 'c' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			csv = true;
			break;
		case 'q':
			trips = 2000;
			spin_ms = 50;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc)
		return bench_usage_error("unexpected argument '%s'",
					 argv[optind]);
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_peer peer = { .pid = -1, .sync_fd = -1 };
	struct hiccups h[2];
	double rtt[PINGPONG_ROUNDS];
	struct shared *sh;
	int ret;

	bench_prog = "zbus-bench-machine";
	if (parse_args(argc, argv) < 0)
		return 2;
	ret = bench_setup(&cpus);
	if (ret < 0)
		goto out;
	if (!cpus.pin) {
		ret = bench_fail(-ENOTSUP, "needs two CPUs to measure between");
		goto out;
	}
	sh = bench_map_shared(sizeof(*sh));
	if (!sh) {
		ret = -ENOMEM; /* bench_map_shared() said why */
		goto out;
	}
	ret = bench_c2c_rtt(&cpus, trips, PINGPONG_ROUNDS, rtt);
	if (ret == 0)
		ret = bench_peer_start(&peer, 30 + spin_ms / 1000,
				       bench_consumer_cpu(&cpus), child_main,
				       NULL, sh);
	if (ret == 0)
		ret = bench_peer_wait(&peer, "hiccup partner");
	if (ret == 0) {
		atomic_store_explicit(&sh->go, 1, memory_order_release);
		spin_hiccups(&h[0]);
	}
	ret = bench_peer_end(&peer, ret);
	if (ret == 0) {
		h[1] = (struct hiccups){ sh->child_gaps, sh->child_lost_ns,
					 sh->child_max_ns };
		report(rtt, h);
	}
out:
	if (ret < 0) {
		fprintf(stderr, "%s: %s\n", bench_prog, bench_err);
		return 1;
	}
	return 0;
}
