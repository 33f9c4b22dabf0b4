#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# results.sh RES_DIR MACHINE DURATION PLOTS MODE - RESULTS.md on stdout,
# from the CSV files suite.sh wrote in RES_DIR: the issue's targets as
# ratios within this run, then every table. Every number in it comes from
# those files.
set -euo pipefail

res=$1
machine=$2
elapsed=$3
plots=$4
mode=$5

cat <<EOF
# libzbus benchmark results

Written by \`./dev.sh bench\` (bench/suite.sh) from one run; nothing here
is edited by hand. Run: $mode, $(date -u '+%Y-%m-%d %H:%M UTC'), ${elapsed}.

\`\`\`
$machine
\`\`\`

Method: producer and consumer are separate processes pinned to the two
CPUs (fan-out/fan-in children are not pinned); every transport writes
each payload in full and reads it in full (and checks it); rings are
warmed first. Latency is half a ping-pong round trip, its percentiles
pooled over the repetitions (fresh processes each) and the spread of
their medians beside it; throughput the median of the repetitions
(min..max beside it); load latencies are
open-loop, each from its message's due time, so stalls are not hidden,
at fractions of the rate the same consumer sustained flat out.
CPU is CPU time per message (all processes; for load rows the
consumer's). The machine is shared: compare within this run only.

The \`before:\` and \`after:\` lines are the machine's own share,
measured by \`zbus-bench-machine\` around the run: the round trip of one
cache line between the two pinned CPUs (what every shared-memory
transport pays per small message; it moves with where the hypervisor
places the two vCPUs, and the small-message rows move with it), and the
time each CPU was taken away while spinning (what a tail latency at low
load can owe to the machine rather than to the transport).

EOF

awk -F, -v plots="$plots" '
FNR == 1 { next }
{
	key = $1 "|" $2 "|" $3
	if ($18 != "") { skipped[key] = $18; next }
	p50[key] = $4; p99[key] = $5; p999[key] = $6; mx[key] = $7
	p50lo[key] = $19; p50hi[key] = $20
	mps[key] = $8; gbs[key] = $9; lo[key] = $10; hi[key] = $11
	cpu[key] = $14
	if ($21 != "") {
		c2c[key] = $21
		if (c2cmin == "" || $21 + 0 < c2cmin) c2cmin = $21 + 0
		if (c2cmax == "" || $21 + 0 > c2cmax) c2cmax = $21 + 0
	}
	if ($1 == "load" || $1 == "fanout" || $1 == "fanin") {
		n = ++rows[$1 "|" $2 "|" $3]
		sub_load[$1 "|" $2 "|" $3 "|" n] = $12
		sub_fan[$1 "|" $2 "|" $3 "|" n] = $13
		sub_p50[$1 "|" $2 "|" $3 "|" n] = $4
		sub_p99[$1 "|" $2 "|" $3 "|" n] = $5
		sub_p999[$1 "|" $2 "|" $3 "|" n] = $6
		sub_max[$1 "|" $2 "|" $3 "|" n] = $7
		sub_mps[$1 "|" $2 "|" $3 "|" n] = $8
		sub_cpu[$1 "|" $2 "|" $3 "|" n] = $14
	}
	if (!(($1 "|" $2) in seen_tp)) {
		seen_tp[$1 "|" $2] = 1
		ntp[$1]++; tp[$1, ntp[$1]] = $2
	}
	if (!(($1 "|" $3) in seen_sz)) {
		seen_sz[$1 "|" $3] = 1
		nsz[$1]++; sz[$1, nsz[$1]] = $3
	}
}
function label(b) {
	if (b >= 1048576 && b % 1048576 == 0) return (b / 1048576) " MiB"
	if (b >= 1024 && b % 1024 == 0) return (b / 1024) " KiB"
	return b " B"
}
function us(ns) { return ns == "" ? "-" : sprintf("%.2f", ns / 1000) }
function have(k) { return (k in mps) || (k in p50) }
# The core-to-core round trip measured before the rows of @ka and @kb.
function placement(ka, kb) {
	if (!(ka in c2c) || !(kb in c2c)) return "-"
	return sprintf("%d / %d ns", c2c[ka], c2c[kb])
}
# target NAME SCEN KEY_A KEY_B OP LIMIT WHAT: a target row, the ratio of
# the speeds of the two rows (latency p50 or msgs/s) against LIMIT.
function target(name, scen, ka, kb, op, limit, what,   a, b, r, ok) {
	a = scen == "latency" ? p50[ka] : mps[ka]
	b = scen == "latency" ? p50[kb] : mps[kb]
	if (a == "" || b == "" || b + 0 == 0) {
		printf "| %s | - | | not measured here (%s) |\n", name, what
		return
	}
	r = a / b
	ok = op == "<=" ? r <= limit : r >= limit
	printf "| %s | **%.2f×** | %s | %s%s |\n", name, r, placement(ka, kb),
	       ok ? "met" : "MISSED",
	       apart(ka, kb) ? " (the rows met different placements: not comparable)" : ""
}
# Did the rows of @ka and @kb run under placements 2× apart or more?
function apart(ka, kb) {
	if (!(ka in c2c) || !(kb in c2c) || c2c[ka] <= 0 || c2c[kb] <= 0)
		return 0
	return c2c[ka] / c2c[kb] >= 2 || c2c[kb] / c2c[ka] >= 2
}
function why(k) { return (k in skipped) ? skipped[k] : "no such row" }
function cell(sc, k) {
	if (sc == "latency")
		return (k in p50) ? sprintf("%s (%s–%s) / %s / %s", us(p50[k]),
					    us(p50lo[k]), us(p50hi[k]),
					    us(p99[k]), us(p999[k])) : "skipped"
	return (k in mps) ? sprintf("%.3g (%.3g), %s", gbs[k], mps[k] / 1e6,
				    us(cpu[k])) : "skipped"
}
# A table of scenario @sc: a row per transport, a column per size.
function size_table(sc, title,   i, t, name) {
	print "## " title "\n"
	printf "| transport |"
	for (i = 1; i <= nsz[sc]; i++)
		printf " %s |", label(sz[sc, i])
	printf "\n|---|"
	for (i = 1; i <= nsz[sc]; i++)
		printf "---|"
	print ""
	for (t = 1; t <= ntp[sc]; t++) {
		name = tp[sc, t]
		printf "| %s |", name
		for (i = 1; i <= nsz[sc]; i++)
			printf " %s |", cell(sc, sc "|" name "|" sz[sc, i])
		print ""
	}
	print ""
}
END {
	print "## Targets (issue 5), as ratios within this run\n"
	print "| target | ratio | c2c of the two rows | |"
	print "|---|---|---|---|"
	target("64 B one-way latency p50 ≤ 1.5× the bare ring", "latency",
	       "latency|zbus|64", "latency|shm-ring|64", "<=", 1.5,
	       "no 64 B latency row")
	target("64 B one-way latency p50 ≤ 0.3× iceoryx", "latency",
	       "latency|zbus|64", "latency|iceoryx|64", "<=", 0.3,
	       why("latency|iceoryx|64"))
	target("64 B throughput ≥ 20× the Unix socket", "throughput",
	       "throughput|zbus|64", "throughput|unix|64", ">=", 20,
	       "no 64 B throughput row")
	target("64 B throughput ≥ 10× iceoryx", "throughput",
	       "throughput|zbus|64", "throughput|iceoryx|64", ">=", 10,
	       why("throughput|iceoryx|64"))
	target("1 MiB throughput with loans ≥ 0.8× the bare ring",
	       "throughput", "throughput|zbus|1048576",
	       "throughput|shm-ring|1048576", ">=", 0.8,
	       "no 1 MiB throughput row")
	worst = ""; wsz = ""
	for (i = 1; i <= nsz["throughput"]; i++) {
		s = sz["throughput", i]
		a = mps["throughput|zbus-block|" s]
		b = mps["throughput|unix|" s]
		if (a == "" || b == "") continue
		if (worst == "" || a / b < worst) { worst = a / b; wsz = s }
	}
	if (worst == "")
		print "| blocking mode ≥ a Unix socket at every size | - | | no rows |"
	else
		printf "| blocking mode (zbus-block) ≥ a Unix socket at every size | **%.2f×** at its worst (%s) | %s | %s |\n",
		       worst, label(wsz),
		       placement("throughput|zbus-block|" wsz,
				 "throughput|unix|" wsz),
		       (worst >= 1 ? "met" : "MISSED")
	k = "idle|zbus-block|64"
	if (k in cpu)
		printf "| blocking mode burns no CPU when idle (under 1%% of a core) | **%.2f%%** of a core | | %s |\n",
		       cpu[k] / 1e7, (cpu[k] / 1e7 < 1 ? "met" : "MISSED")
	else
		print "| blocking mode burns no CPU when idle | - | | no idle row |"
	print ""
	if (c2cmin != "")
		printf "The core-to-core round trip, measured before each repetition (the median of a row\x27s in its c2c column), ranged from %d to %d ns over the rows of this run; the c2c column above gives it for the two rows compared (the zbus row\x27s, then the other\x27s). Latency and throughput run their repetitions interleaved (every transport\x27s first, then every second...), so the rows of one size meet the same machine.\n\n", c2cmin, c2cmax

	print "## Idle: CPU a waiting consumer burns (share of one core)\n"
	print "| transport | CPU |"
	print "|---|---|"
	for (t = 1; t <= ntp["idle"]; t++) {
		k = "idle|" tp["idle", t] "|64"
		printf "| %s | %s |\n", tp["idle", t],
		       (k in cpu) ? sprintf("%.2f%%", cpu[k] / 1e7) : "skipped"
	}
	print ""

	size_table("latency", "One-way latency (µs): p50 (the sessions\x27 p50s, lowest–highest) / p99 / p99.9")
	size_table("throughput",
		   "Throughput: GB/s (Mmsg/s), CPU µs per message")

	for (sc = 1; sc <= 3; sc++) {
		scen = sc == 1 ? "load" : sc == 2 ? "fanout" : "fanin"
		if (scen == "load")
			print "## Open-loop latency under load (µs): p50 / p99 / p99.9 / max; consumer CPU µs per message\n"
		else if (scen == "fanout")
			print "## Fan-out: one producer, N consumers; messages published per second (M), CPU µs per message (all processes)\n"
		else
			print "## Fan-in: N producers, one consumer; messages received per second (M), CPU µs per message (all processes)\n"
		print "| transport | size | rows |"
		print "|---|---|---|"
		for (t = 1; t <= ntp[scen]; t++) {
			name = tp[scen, t]
			for (i = 1; i <= nsz[scen]; i++) {
				s = sz[scen, i]
				k = scen "|" name "|" s
				if (k in skipped) {
					printf "| %s | %s | skipped: %s |\n", name,
					       label(s), skipped[k]
					continue
				}
				line = ""
				for (n = 1; n <= rows[k]; n++) {
					r = k "|" n
					if (scen == "load")
						line = line sprintf("%s%d%% of %.3g M/s: %s / %s / %s / %s, cpu %s",
							n > 1 ? "; " : "",
							sub_load[r] * 100,
							sub_mps[r] / 1e6 / sub_load[r],
							us(sub_p50[r]), us(sub_p99[r]),
							us(sub_p999[r]), us(sub_max[r]),
							us(sub_cpu[r]))
					else
						line = line sprintf("%sN=%d: %.3g M/s, cpu %s",
							n > 1 ? "; " : "",
							sub_fan[r], sub_mps[r] / 1e6,
							us(sub_cpu[r]))
				}
				printf "| %s | %s | %s |\n", name, label(s), line
			}
		}
		print ""
	}

	print "## Skipped\n"
	none = 1
	for (k in skipped) {
		split(k, f, "|")
		if (!((f[1] "|" f[2]) in said)) {
			said[f[1] "|" f[2]] = 1
			printf "- %s, %s: %s\n", f[1], f[2], skipped[k]
			none = 0
		}
	}
	if (none)
		print "- nothing"
	print ""
	if (plots == "yes") {
		print "## Plots\n"
		print "![latency](results/latency.png) ![throughput](results/throughput.png) ![load](results/load.png)\n"
		print "SVG beside each PNG in results/."
	} else {
		print "Plots: " plots "."
	}
}' "$res"/latency.csv "$res"/throughput.csv "$res"/load.csv \
	"$res"/fanout.csv "$res"/fanin.csv "$res"/idle.csv

# What every run shows and a reader needs to read it right: written by
# hand, once, about the method (no numbers: those are all above).
notes=$(dirname "$0")/notes.md
[[ -f $notes ]] && { echo; cat "$notes"; }
exit 0
