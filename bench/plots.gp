# SPDX-License-Identifier: MIT
#
# plots.gp - the suite's plots from its CSV files (suite.sh): gnuplot -e
# "res='DIR'" plots.gp writes DIR/*.png and DIR/*.svg.
#
#   latency.*     one-way latency p50 and p99 against message size
#   throughput.*  GB/s against message size
#   load.*        p99 latency against offered load (64-byte messages)

set datafile separator ','
set key outside right top
set grid
set logscale x 2
set format x "%.0s%cB"

# The transports of a CSV file, in the order they appear.
transports(f) = system(sprintf("awk -F, 'NR > 1 && $18 == \"\" && !seen[$2]++ { printf \"%%s \", $2 }' %s", f))

do for [fmt in "pngcairo svg"] {
	ext = fmt eq "pngcairo" ? "png" : "svg"
	if (fmt eq "pngcairo") {
		set terminal pngcairo size 1100,650 noenhanced
	} else {
		set terminal svg size 1100,650 noenhanced
	}

	f = res . "/latency.csv"
	tl = transports(f)
	set output res . "/latency." . ext
	set title "One-way latency (half a ping-pong round trip): p50 solid, p99 dashed"
	set xlabel "message size"
	set ylabel "microseconds"
	set logscale y 10
	plot for [i=1:words(tl)] f using (strcol(2) eq word(tl, i) ? $3 : NaN):($4 / 1000) \
		with linespoints lw 2 lc i title word(tl, i), \
	     for [i=1:words(tl)] f using (strcol(2) eq word(tl, i) ? $3 : NaN):($5 / 1000) \
		with lines dt 2 lc i notitle

	f = res . "/throughput.csv"
	tl = transports(f)
	set output res . "/throughput." . ext
	set title "One-way throughput, payload written and read in full"
	set ylabel "GB/s"
	set logscale y 10
	plot for [i=1:words(tl)] f using (strcol(2) eq word(tl, i) ? $3 : NaN):($9) \
		with linespoints lw 2 lc i title word(tl, i)

	f = res . "/load.csv"
	tl = transports(f)
	set output res . "/load." . ext
	set title "Open-loop latency under load, 64-byte messages: p99 (from each message's due time)"
	unset logscale x
	set format x "%g"
	set xlabel "offered load, fraction of the throughput measured just before"
	set ylabel "p99 latency, microseconds"
	set logscale y 10
	plot for [i=1:words(tl)] f using (strcol(2) eq word(tl, i) && $3 == 64 ? $12 : NaN):($5 / 1000) \
		with linespoints lw 2 lc i title word(tl, i)
	set logscale x 2
	set format x "%.0s%cB"
	set output
}
