/* SPDX-License-Identifier: MIT */
/*
 * report.c - zbus-bench's output: the machine and the table's header, then
 * a row per cell, as a table, JSON lines or CSV (--json, --csv), and a
 * line for a cell that cannot run.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "report.h"

/* The placement the rows being printed ran under (report_set_c2c()). */
static bool has_c2c;
static double c2c_ns;

void report_set_c2c(double ns)
{
	has_c2c = ns > 0;
	c2c_ns = ns;
}

void report_machine(void)
{
	bench_print_machine(stdout, bench_cfg.cpus.ncpu);
	if (bench_cfg.cpus.pin)
		printf("pinning: producer/initiator on CPU %d, "
		       "consumer/responder on CPU %d\n",
		       bench_cfg.cpus.cpu[0], bench_cfg.cpus.cpu[1]);
	else
		printf("pinning: off (only 1 CPU available)\n");
	printf("latency: one way (half a round trip); load: open loop, from "
	       "each message's due time,\n  at a fraction of the rate it "
	       "sustained flat out just before (Mmsg/s is the rate offered)\n"
	       "cpu/msg: CPU time per message, both processes (throughput) "
	       "or the consumer's (load)\n");
	printf("c2c: the round trip of one cache line between the two CPUs, "
	       "measured before\n  each (scenario, transport, size): "
	       "small messages move with it\n");
	printf("\n%-10s %-10s %7s %9s %9s %9s %9s %9s %8s %21s %8s %4s %8s "
	       "%7s\n", "scenario", "transport", "size", "p50(us)",
	       "p99(us)", "p99.9(us)", "max(us)", "Mmsg/s", "GB/s",
	       "min..max / load", "cpu/msg", "reps", "samples", "c2c(ns)");
	fflush(stdout);
}

static void fmt_num(char *buf, size_t len, bool has, double v, int prec,
		    char conv)
{
	if (has)
		snprintf(buf, len, conv == 'g' ? "%.*g" : "%.*f", prec, v);
	else
		snprintf(buf, len, "-");
}

/* CSV: the JSON fields as columns, empty where JSON says null. */
static const char csv_header[] =
	"scenario,transport,size,p50_ns,p99_ns,p999_ns,max_ns,msgs_per_s,"
	"gbytes_per_s,msgs_per_s_min,msgs_per_s_max,load,fan,cpu_ns_per_msg,"
	"cpu_of,reps,samples,skipped,p50_min_ns,p50_max_ns,c2c_ns";

void report_csv_header(void)
{
	printf("%s\n", csv_header);
}

/* A row's numbers as text, a missing one as @none ("" in CSV, "null" in
 * JSON): the two machine-readable forms carry the same fields. */
struct row_text {
	char p50[32], p99[32], p999[32], max[32], mps[32], gbs[32];
	char lo[32], hi[32], load[32], cpu[32], p50lo[32], p50hi[32];
	char c2c[32];
};

static void num(char *buf, size_t len, bool has, double v, int prec,
		const char *none)
{
	if (has)
		snprintf(buf, len, "%.*f", prec, v);
	else
		snprintf(buf, len, "%s", none);
}

static void row_text(const struct cell *c, const struct result *res,
		     const char *none, struct row_text *t)
{
#define NUM(f, has, v, prec) num(t->f, sizeof(t->f), has, v, prec, none)
	NUM(c2c, has_c2c, c2c_ns, 0);
	NUM(p50lo, res->has_p50_spread, res->p50_min_ns, 1);
	NUM(p50hi, res->has_p50_spread, res->p50_max_ns, 1);
	NUM(p50, res->has_latency, res->p50_ns, 1);
	NUM(p99, res->has_latency, res->p99_ns, 1);
	NUM(p999, res->has_latency, res->p999_ns, 1);
	NUM(max, res->has_max, res->max_ns, 1);
	NUM(mps, res->has_rate, res->mps, 0);
	NUM(gbs, res->has_rate, res->mps * (double)c->size / 1e9, 4);
	NUM(lo, res->has_rate, res->mps_min, 0);
	NUM(hi, res->has_rate, res->mps_max, 0);
	NUM(load, c->sc == SC_LOAD, c->load, 3);
	NUM(cpu, res->has_cpu, res->cpu_ns, 1);
#undef NUM
}

static void print_csv(const struct cell *c, const struct result *res)
{
	struct row_text t;

	row_text(c, res, "", &t);
	printf("%s,%s,%zu,%s,%s,%s,%s,%s,%s,%s,%s,%s,%u,%s,%s,%u,%" PRIu64
	       ",,%s,%s,%s\n", sc_names[c->sc], c->tp->name, c->size, t.p50,
	       t.p99, t.p999, t.max, t.mps, t.gbs, t.lo, t.hi, t.load, c->fan,
	       t.cpu, c->sc == SC_LOAD || c->sc == SC_IDLE ? "consumer" : "all",
	       res->reps, res->samples, t.p50lo, t.p50hi, t.c2c);
	fflush(stdout);
}

void report_skip(enum scenario sc, const struct transport *tp, size_t size,
		 const char *why)
{
	char label[32];

	if (bench_cfg.csv) {
		/* Commas would split the reason: semicolons instead. */
		printf("%s,%s,%zu,,,,,,,,,,0,,,0,0,", sc_names[sc],
		       tp->name, size);
		for (const char *p = why; *p; p++)
			putchar(*p == ',' ? ';' : *p);
		printf(",,,\n");
	} else if (bench_cfg.json) {
		printf("{\"scenario\":\"%s\",\"transport\":\"%s\","
		       "\"size\":%zu,\"skipped\":\"%s\"}\n",
		       sc_names[sc], tp->name, size, why);
	} else {
		bench_size_label(label, sizeof(label), size);
		printf("%-10s %-9s %7s skipped: %s\n", sc_names[sc],
		       tp->name, label, why);
	}
	fflush(stdout);
}

static void print_row(const struct cell *c, const struct result *res)
{
	char size[32], p50[32], p99[32], p999[32], mps[32], gbs[32];
	char lo[32], hi[32], spread[80], max[32], cpu[32], c2c[32];

	fmt_num(c2c, sizeof(c2c), has_c2c, c2c_ns, 0, 'f');
	bench_size_label(size, sizeof(size), c->size);
	fmt_num(p50, sizeof(p50), res->has_latency, res->p50_ns / 1e3, 3,
		'f');
	fmt_num(p99, sizeof(p99), res->has_latency, res->p99_ns / 1e3, 3,
		'f');
	fmt_num(p999, sizeof(p999), res->has_latency, res->p999_ns / 1e3, 3,
		'f');
	/* Rates span 10^-3 (1 MiB) to 10^2 Mmsg/s: 4 significant digits. */
	fmt_num(mps, sizeof(mps), res->has_rate, res->mps / 1e6, 4, 'g');
	fmt_num(gbs, sizeof(gbs), res->has_rate,
		res->mps * (double)c->size / 1e9, 3, 'f');
	fmt_num(lo, sizeof(lo), res->has_rate, res->mps_min / 1e6, 4, 'g');
	fmt_num(hi, sizeof(hi), res->has_rate, res->mps_max / 1e6, 4, 'g');
	fmt_num(max, sizeof(max), res->has_max, res->max_ns / 1e3, 1, 'f');
	fmt_num(cpu, sizeof(cpu), res->has_cpu, res->cpu_ns / 1e3, 3, 'f');
	if (c->sc == SC_LOAD)
		snprintf(spread, sizeof(spread), "load %.0f%%",
			 c->load * 100);
	else if (c->sc == SC_FANOUT)
		snprintf(spread, sizeof(spread), "%u consumers", c->fan);
	else if (c->sc == SC_FANIN)
		snprintf(spread, sizeof(spread), "%u producers", c->fan);
	else if (c->sc == SC_IDLE)
		snprintf(spread, sizeof(spread), "idle: %.1f%% CPU",
			 res->cpu_ns / 1e7);
	else if (res->has_p50_spread)
		snprintf(spread, sizeof(spread), "p50 %.3f..%.3f",
			 res->p50_min_ns / 1e3, res->p50_max_ns / 1e3);
	else if (res->has_rate)
		snprintf(spread, sizeof(spread), "%s..%s", lo, hi);
	else
		snprintf(spread, sizeof(spread), "-");
	printf("%-10s %-10s %7s %9s %9s %9s %9s %9s %8s %21s %8s %4u %8"
	       PRIu64 " %7s\n", sc_names[c->sc], c->tp->name, size, p50, p99,
	       p999, max, mps, gbs, spread, cpu, res->reps, res->samples,
	       c2c);
	fflush(stdout);
}

static void print_json(const struct cell *c, const struct result *res)
{
	struct row_text t;

	row_text(c, res, "null", &t);
	printf("{\"scenario\":\"%s\",\"transport\":\"%s\",\"size\":%zu,"
	       "\"p50_min_ns\":%s,\"p50_max_ns\":%s,\"p50_ns\":%s,\"p99_ns\":%s,\"p999_ns\":%s,\"max_ns\":%s,"
	       "\"msgs_per_s\":%s,\"gbytes_per_s\":%s,"
	       "\"msgs_per_s_min\":%s,\"msgs_per_s_max\":%s,"
	       "\"load\":%s,\"fan\":%u,\"cpu_ns_per_msg\":%s,"
	       "\"cpu_of\":\"%s\","
	       "\"reps\":%u,\"samples\":%" PRIu64 ",\"pinned\":%s,"
	       "\"c2c_ns\":%s}\n",
	       sc_names[c->sc], c->tp->name, c->size, t.p50lo, t.p50hi,
	       t.p50, t.p99, t.p999, t.max, t.mps, t.gbs, t.lo, t.hi, t.load,
	       c->fan, t.cpu,
	       c->sc == SC_LOAD || c->sc == SC_IDLE ? "consumer" : "all",
	       res->reps, res->samples,
	       bench_cfg.cpus.pin ? "true" : "false", t.c2c);
	fflush(stdout);
}

void report_result(const struct cell *c, const struct result *res)
{
	if (bench_cfg.json)
		print_json(c, res);
	else if (bench_cfg.csv)
		print_csv(c, res);
	else
		print_row(c, res);
}
