#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# suite.sh BUILD_DIR OUT_DIR [--quick] - the standard benchmark run: every
# zbus-bench scenario, every transport this machine has, in one run; the
# CSV of each scenario, plots (when gnuplot is there) and RESULTS.md in
# OUT_DIR, with the issue's targets as ratios of that run.
#
# ./dev.sh bench runs it on the committed bench/ (after installing gnuplot,
# ZeroMQ and iceoryx); the test suite runs it with --quick into a
# temporary directory, so that it never rots. Nothing here asserts speed.
set -euo pipefail

build=$1
out=$2
quick=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
bench=$build/bench/zbus-bench
[[ -x $bench ]] || { echo "suite.sh: no $bench (build first)" >&2; exit 1; }
mkdir -p "$out/results"
res=$out/results

if [[ $quick == --quick ]]; then
	opts=(--quick)
	sweep=64,4k,1M
	small=64
	fans=2
else
	opts=(--reps 3)
	sweep=8,64,512,4k,32k,256k,1M,8M,64M
	small=64,4k
	fans=2,4
fi

started=$(date +%s)
stages=
# run NAME ARGS...: one scenario into NAME.csv, its progress (and how long
# it took, for whoever trims the suite) on stderr.
run() {
	local name=$1 t0
	shift
	echo "suite: $name ($*)" >&2
	t0=$(date +%s)
	"$bench" --csv "${opts[@]}" "$@" >"$res/$name.csv"
	stages+="${stages:+, }$name $(($(date +%s) - t0)) s"
}
# probe WHEN: the machine's own share (zbus-bench-machine), labelled.
probe() {
	"$build/bench/zbus-bench-machine" ${quick:+--quick} | sed "s/^/$1 /"
}

"$bench" --help >/dev/null
machine=$("$bench" --quick --scenario throughput --transport zbus \
	--sizes 64 | sed -n '1,2p')
machine+=$'\n'$(probe before:)
run latency --scenario latency --sizes "$sweep"
run throughput --scenario throughput --sizes "$sweep"
run load --scenario load --sizes "$small"
run fanout --scenario fanout --sizes "$small" --fan "$fans"
run fanin --scenario fanin --sizes "$small" --fan "$fans"
run idle --scenario idle --sizes 64
machine+=$'\n'$(probe after:)
elapsed=$(($(date +%s) - started))
echo "suite: stages: $stages" >&2

if command -v gnuplot >/dev/null; then
	plots=yes
	gnuplot -e "res='$res'" "$here/plots.gp"
else
	plots="no (gnuplot is not installed)"
fi

"$here/results.sh" "$res" "$machine" "$elapsed s ($stages)" "$plots" \
	"${quick:-standard}" >"$out/RESULTS.md"
echo "suite: wrote $out/RESULTS.md (${elapsed}s)" >&2
