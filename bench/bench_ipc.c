/* SPDX-License-Identifier: MIT */
/*
 * bench_ipc.c - zbus-bench: libzbus side by side with the IPC it competes with
 *
 * Transports, each moving one message of a fixed size at a time:
 *   zbus       loan, write in place, publish; receive a batch in place,
 *              release; the publisher is exclusive (ZBUS_PUB_EXCLUSIVE)
 *   zbus-mp    the same through the multi-producer claim (16-byte CAS)
 *   zbus-copy  zbus_pub_send() and zbus_sub_recv(): one copy on each side
 *   zbus-block zbus with both sides waiting in the library (a short spin,
 *              then a futex), as a program that must not burn a core would
 *   shm-ring   a bare single-producer single-consumer ring in a shared
 *              mapping, busy-polled: the floor the hardware allows
 *   unix       AF_UNIX stream socketpair
 *   pipe       pipe2()
 *   tcp        TCP over loopback (127.0.0.1), TCP_NODELAY (tp_tcp.c)
 *   mq         POSIX message queue, one message per mq_send() (tp_mq.c);
 *              sizes over the kernel's limits are skipped, with the reason
 *   zmq        ZeroMQ PAIR sockets over ipc://, blocking (tp_zmq.c; a
 *              skipped row when built without libzmq)
 *   iceoryx    Eclipse iceoryx 2.0 through its C binding, zero-copy as zbus:
 *              loan, write in place, publish; take in place, release; its
 *              RouDi daemon is started on a private configuration at first
 *              use and stopped at exit (tp_iceoryx.c; optional at build)
 *
 * Scenarios:
 *   latency     ping-pong over two links (one per direction); one-way latency
 *               is half of each round trip, timed by the initiator
 *   throughput  one-way stream; the clock runs from the producer's first
 *               timed send to the consumer's last receive; CPU time of both
 *               processes per message beside it
 *   fanout      one producer, N consumers (--fan, default 2 and 4), each
 *               receiving every message: messages published per second
 *               and the CPU time of all processes per message
 *   fanin       N producers, one consumer: messages received per second
 *   idle        a consumer waiting a second for a message: the CPU it
 *               burns meanwhile (cpu/msg: ns per second waited)
 *   load        open-loop latency: messages due on a fixed schedule at 10%,
 *               50%, 80%, 95% and 100% of the rate the same consumer
 *               sustained flat out just before, each
 *               latency taken from its due time (no coordinated omission),
 *               in a histogram from ns to minutes (hist.h); p50, p99,
 *               p99.9, max and the consumer's CPU time per message
 *
 * Rules that keep the comparison honest:
 *  - Producer and consumer are separate processes, pinned to two CPUs, so
 *    every byte really crosses between cores as it would between programs.
 *  - Every transport writes the whole payload on the sending side and reads
 *    the whole payload on the receiving side; a zero-copy transport must not
 *    win by touching less memory than the program using it would.
 *  - Every shared-memory side busy-polls with the same pause loop; the socket
 *    and pipe sides block in the kernel, which is how they are used.
 *  - Rings are warmed (every slot touched) before any timed message.
 *  - Latency and throughput interleave their repetitions: every
 *    transport's first at a size, then every transport's second..., each
 *    after a look at where the hypervisor has put our two vCPUs (the
 *    cache-line round trip between them, c2c.h), which moves small-message
 *    numbers several-fold within minutes. Every row prints it.
 *  - A repetition runs for its count or about budget_s (cell.c), whichever
 *    is less, never under a floor: a slow transport at 64 MiB does not
 *    hold the suite up, and the row says how many samples it took.
 *  - A peer that dies or hangs fails the run: children have an alarm and
 *    die with their parent, the parent has an alarm too and reaps always.
 *
 * Output: one row per (scenario, transport, size). Latency rows give the
 * p50/p99/p99.9 of one-way latency over "samples" round trips (all
 * repetitions pooled) and the lowest and highest repetition's p50;
 * throughput rows give the median over "reps" repetitions of at least
 * "samples" messages each, with the slowest and fastest as the spread.
 *
 * Files: the transports behind transport.h, listed in transport.c, a file
 * per family (tp_zbus.c, tp_ring.c, tp_fd.c for unix and pipe, tp_tcp.c,
 * tp_mq.c, tp_zmq.c, tp_iceoryx.c); the cells measured and their counts
 * (cell.c); a forked peer and its links (session.c); a file per scenario
 * (sc_*.c, scenario.h) and the interleaved repetitions (reps.c); the
 * output (report.c). This one has the command line and main().
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "c2c.h"
#include "cell.h"
#include "report.h"
#include "scenario.h"
#include "session.h"
#include "transport.h"

#define MAX_SIZE (64 * MiB)	/* rings hold several: keep memory sane */
#define MAX_REPS 1000

static void usage(FILE *f)
{
	fprintf(f,
		"usage: zbus-bench [--json|--csv] [--quick] "
		"[--scenario latency|throughput|load|fanout|fanin|idle|all]\n"
		"                  [--transport NAME[,NAME...]] "
		"[--sizes 64,4096,1048576] [--reps R] [--fan 2,4]\n"
		"transports: zbus, zbus-mp, zbus-copy, zbus-block, shm-ring, unix, "
		"pipe, tcp, mq, zmq, iceoryx\n"
		"            (or all); sizes take k/M suffixes, 1..64M; mq skips "
		"the sizes the\n"
		"            kernel's limits refuse (fs.mqueue.msgsize_max, "
		"ulimit -q) and says so\n");
}

static const char *transport_name(size_t i)
{
	return tp_all[i]->name;
}

/* --fan N[,N...]: children of the fan-out and fan-in scenarios. */
static int parse_fans(const char *arg)
{
	const size_t max = sizeof(bench_cfg.fans) / sizeof(bench_cfg.fans[0]);
	char *copy = strdup(arg), *tok, *save = NULL;
	int ret = 0;

	if (!copy)
		return bench_usage_error("out of memory");
	bench_cfg.nfans = 0;
	for (tok = strtok_r(copy, ",", &save); !ret && tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (bench_cfg.nfans == max)
			ret = bench_usage_error("--fan: at most %zu values",
						max);
		else
			ret = bench_parse_uint(tok, "--fan", 1, MAX_FAN,
					       bench_cfg.fans +
					       bench_cfg.nfans++);
	}
	free(copy);
	if (!ret && !bench_cfg.nfans)
		ret = bench_usage_error("--fan needs a number");
	return ret;
}

static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "csv", no_argument, NULL, 'c' },
		{ "quick", no_argument, NULL, 'q' },
		{ "scenario", required_argument, NULL, 's' },
		{ "transport", required_argument, NULL, 't' },
		{ "sizes", required_argument, NULL, 'S' },
		{ "reps", required_argument, NULL, 'r' },
		{ "fan", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool reps_set = false, fans_set = false;
	int c, ret = 0;

	bench_cfg.scenarios = (1u << SC_COUNT) - 1;
	bench_cfg.transports = (1u << tp_count) - 1;
	bench_cfg.sizes[0] = 64;
	bench_cfg.sizes[1] = 4096;
	bench_cfg.sizes[2] = MiB;
	bench_cfg.nsizes = 3;
	bench_cfg.reps = 5;
	bench_cfg.fans[0] = 2;
	bench_cfg.fans[1] = 4;
	bench_cfg.nfans = 2;

	opterr = 0;
	while (!ret && (c = getopt_long(argc, argv, "jcqs:t:S:r:F:h", opts,
					NULL)) != -1) {
		switch (c) {
		case 'j':
			bench_cfg.json = true;
			break;
		case 'c':
			bench_cfg.csv = true;
			break;
		case 'q':
			bench_cfg.quick = true;
			break;
		case 's':
			if (!strcmp(optarg, "latency"))
				bench_cfg.scenarios = 1u << SC_LATENCY;
			else if (!strcmp(optarg, "throughput"))
				bench_cfg.scenarios = 1u << SC_THROUGHPUT;
			else if (!strcmp(optarg, "load"))
				bench_cfg.scenarios = 1u << SC_LOAD;
			else if (!strcmp(optarg, "fanout"))
				bench_cfg.scenarios = 1u << SC_FANOUT;
			else if (!strcmp(optarg, "fanin"))
				bench_cfg.scenarios = 1u << SC_FANIN;
			else if (!strcmp(optarg, "idle"))
				bench_cfg.scenarios = 1u << SC_IDLE;
			else if (!strcmp(optarg, "all"))
				bench_cfg.scenarios = (1u << SC_COUNT) - 1;
			else
				ret = bench_usage_error("unknown scenario '%s'",
							optarg);
			break;
		case 't':
			ret = bench_parse_names(optarg, transport_name,
						tp_count,
						&bench_cfg.transports);
			break;
		case 'S':
			ret = bench_parse_sizes(optarg, bench_cfg.sizes,
						MAX_SIZES, &bench_cfg.nsizes,
						1, MAX_SIZE);
			break;
		case 'r':
			ret = bench_parse_uint(optarg, "--reps", 1, MAX_REPS,
					       &bench_cfg.reps);
			reps_set = true;
			break;
		case 'F':
			ret = parse_fans(optarg);
			fans_set = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			ret = bench_usage_error("bad option '%s'",
						argv[optind - 1]);
			break;
		}
	}
	if (!ret && optind < argc)
		ret = bench_usage_error("unexpected argument '%s'",
					argv[optind]);
	/* Three keeps a real median while staying a smoke test. */
	if (bench_cfg.quick && !reps_set)
		bench_cfg.reps = 3;
	/* One fan is enough to see fan-out and fan-in work. */
	if (bench_cfg.quick && !fans_set)
		bench_cfg.nfans = 1;
	return ret;
}

static int setup(void)
{
	int ret = bench_setup(&bench_cfg.cpus);

	if (ret < 0)
		return ret;
	ret = session_setup();
	if (ret < 0)
		return ret;
	return sc_fan_setup();
}

/* Where the hypervisor has put our two vCPUs right now (c2c.h): without
 * it, two rows' small-message numbers cannot be compared. 0: unpinned. */
static double measure_c2c(void)
{
	if (!bench_cfg.cpus.pin)
		return 0;
	return bench_c2c_median(&bench_cfg.cpus, bench_cfg.quick ? 200 : 2000,
				5);
}

static void say_failure(enum scenario sc, const struct transport *tp,
			size_t size)
{
	char label[32];

	bench_size_label(label, sizeof(label), size);
	fprintf(stderr, "zbus-bench: %s %s %s: %s\n", sc_names[sc], tp->name,
		label, bench_err);
}

/* One transport's repetitions at one size, and the placements they met. */
struct lane {
	const struct transport *tp;
	const char *why;	/* cannot run here: why (in whybuf) */
	char whybuf[160];
	struct cell c;
	struct sc_reps reps;
	double *c2c;		/* before each repetition */
};

/*
 * The rows of latency or throughput at @size: every transport's first
 * repetition, then every transport's second, and so on (struct sc_reps
 * says why), each after a fresh look at the placement; the row gives the
 * median placement its repetitions met.
 */
static int run_interleaved(enum scenario sc, size_t size)
{
	struct lane lanes[32] = { 0 };
	unsigned int nl = 0, r, i;
	struct result res;
	int ret = 0;

	for (size_t ti = 0; ti < tp_count && nl < 32; ti++) {
		struct lane *l = &lanes[nl];

		if (!(bench_cfg.transports & (1u << ti)))
			continue;
		nl++;
		l->tp = tp_all[ti];
		if (l->tp->available)
			l->why = l->tp->available(size, l->whybuf,
						  sizeof(l->whybuf));
		if (l->why)
			continue;
		cell_init(&l->c, sc, l->tp, size);
		l->c2c = calloc(l->c.reps, sizeof(*l->c2c));
		if (!l->c2c) {
			ret = bench_fail(-ENOMEM, "calloc");
			break;
		}
		ret = sc_reps_init(&l->reps, &l->c);
		if (ret < 0)
			break;
	}
	for (r = 0; !ret && r < bench_cfg.reps; r++) {
		for (i = 0; !ret && i < nl; i++) {
			struct lane *l = &lanes[i];
			double c2c;

			if (l->why || r >= l->c.reps)
				continue;
			c2c = measure_c2c();
			ret = c2c < 0 ? (int)c2c : sc_rep_run(&l->c, &l->reps);
			l->c2c[r] = c2c;
			if (ret < 0)
				say_failure(sc, l->tp, size);
		}
	}
	for (i = 0; i < nl; i++) {
		struct lane *l = &lanes[i];

		if (!ret && l->why) {
			report_skip(sc, l->tp, size, l->why);
		} else if (!ret) {
			qsort(l->c2c, l->c.reps, sizeof(*l->c2c),
			      bench_cmp_double);
			report_set_c2c(l->c2c[l->c.reps / 2]);
			sc_reps_finish(&l->c, &l->reps, &res);
			report_result(&l->c, &res);
		}
		sc_reps_free(&l->reps);
		free(l->c2c);
	}
	return ret;
}

/* The rows of (@sc, @tp, @size) of the scenarios that run alone (load,
 * fan-out, fan-in, idle), or a line saying why it cannot run. */
static int run_one(enum scenario sc, const struct transport *tp,
		   size_t size)
{
	char whybuf[160];
	struct result res;
	const char *why = NULL;
	struct cell c;
	double c2c;
	int ret;

	if (tp->available)
		why = tp->available(size, whybuf, sizeof(whybuf));
	if (!why && (sc == SC_FANOUT || sc == SC_FANIN))
		why = sc_fan_skip(sc, tp, size);
	if (why) {
		report_skip(sc, tp, size, why);
		return 0;
	}
	c2c = measure_c2c();
	if (c2c < 0)
		return (int)c2c;
	report_set_c2c(c2c);
	if (sc == SC_LOAD) {
		ret = sc_load_rows(tp, size, report_result);
	} else if (sc == SC_FANOUT || sc == SC_FANIN) {
		ret = sc_fan_rows(sc, tp, size, report_result);
	} else {
		cell_init(&c, sc, tp, size);
		memset(&res, 0, sizeof(res));
		ret = sc_idle_run(&c, &res);
		if (!ret)
			report_result(&c, &res);
	}
	if (ret < 0)
		say_failure(sc, tp, size);
	return ret;
}

int main(int argc, char **argv)
{
	unsigned int sc, si;
	size_t ti;

	bench_prog = "zbus-bench";
	if (parse_args(argc, argv) < 0)
		return 2;
	if (setup() < 0) {
		fprintf(stderr, "zbus-bench: %s\n", bench_err);
		return 1;
	}
	if (bench_cfg.csv)
		report_csv_header();
	else if (!bench_cfg.json)
		report_machine();

	for (sc = 0; sc < SC_COUNT; sc++) {
		if (!(bench_cfg.scenarios & (1u << sc)))
			continue;
		for (si = 0; si < bench_cfg.nsizes; si++) {
			if (sc == SC_LATENCY || sc == SC_THROUGHPUT) {
				if (run_interleaved(sc, bench_cfg.sizes[si]))
					return 1;
				continue;
			}
			for (ti = 0; ti < tp_count; ti++)
				if ((bench_cfg.transports & (1u << ti)) &&
				    run_one(sc, tp_all[ti],
					    bench_cfg.sizes[si]) < 0)
					return 1;
		}
	}
	return 0;
}
