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
size_tics = 'set xtics ("8 B" 8, "64 B" 64, "512 B" 512, "4 KiB" 4096, "32 KiB" 32768, "256 KiB" 262144, "1 MiB" 1048576, "8 MiB" 8388608, "64 MiB" 67108864)'

# The rows of transport @t in CSV file @f (ran, not skipped): one line
# each, unbroken by the other transports' rows.
rows(f, t) = sprintf("< awk -F, '$2 == \"%s\" && $18 == \"\"' %s", t, f)

# The transports of a CSV file, in the order they appear.
transports(f) = system(sprintf("awk -F, 'NR > 1 && $18 == \"\" && !seen[$2]++ { printf \"%%s \", $2 }' %s", f))

do for [fmt in "pngcairo svg"] {
	ext = fmt eq "pngcairo" ? "png" : "svg"
	if (fmt eq "pngcairo") {
		set terminal pngcairo size 1100,650 noenhanced
	} else {
		set terminal svg size 1100,650 noenhanced
	}

	set logscale x 2
	eval size_tics
	f = res . "/latency.csv"
	tl = transports(f)
	set output res . "/latency." . ext
	set title "One-way latency (half a ping-pong round trip): p50 solid, p99 dashed"
	set xlabel "message size"
	set ylabel "microseconds"
	set logscale y 10
	plot for [i=1:words(tl)] rows(f, word(tl, i)) using 3:($4 / 1000) \
		with linespoints lw 2 lc i title word(tl, i), \
	     for [i=1:words(tl)] rows(f, word(tl, i)) using 3:($5 / 1000) \
		with lines dt 2 lc i notitle

	f = res . "/throughput.csv"
	tl = transports(f)
	set output res . "/throughput." . ext
	set title "One-way throughput, payload written and read in full"
	set ylabel "GB/s"
	set logscale y 10
	plot for [i=1:words(tl)] rows(f, word(tl, i)) using 3:9 \
		with linespoints lw 2 lc i title word(tl, i)

	f = res . "/load.csv"
	tl = transports(f)
	set output res . "/load." . ext
	set title "Open-loop latency under load, 64-byte messages: p99 (from each message's due time)"
	unset logscale x
	set xtics auto
	set xlabel "offered load, fraction of the rate sustained flat out just before"
	set ylabel "p99 latency, microseconds"
	set logscale y 10
	plot for [i=1:words(tl)] rows(f, word(tl, i)) using ($3 == 64 ? $12 : NaN):($5 / 1000) \
		with linespoints lw 2 lc i title word(tl, i)
	set output
}
