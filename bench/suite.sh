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
# run NAME ARGS...: one scenario into NAME.csv, its progress on stderr.
run() {
	local name=$1
	shift
	echo "suite: $name ($*)" >&2
	"$bench" --csv "${opts[@]}" "$@" >"$res/$name.csv"
}

"$bench" --help >/dev/null
machine=$("$bench" --quick --scenario throughput --transport zbus \
	--sizes 64 | sed -n '1,2p')
run latency --scenario latency --sizes "$sweep"
run throughput --scenario throughput --sizes "$sweep"
run load --scenario load --sizes "$small"
run fanout --scenario fanout --sizes "$small" --fan "$fans"
run fanin --scenario fanin --sizes "$small" --fan "$fans"
run idle --scenario idle --sizes 64
elapsed=$(($(date +%s) - started))

if command -v gnuplot >/dev/null; then
	plots=yes
	gnuplot -e "res='$res'" "$here/plots.gp"
else
	plots="no (gnuplot is not installed)"
fi

"$here/results.sh" "$res" "$machine" "$elapsed" "$plots" \
	"${quick:-standard}" >"$out/RESULTS.md"
echo "suite: wrote $out/RESULTS.md (${elapsed}s)" >&2
