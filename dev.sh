#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# dev.sh - the two quick-start commands of README.md.
#
#   ./dev.sh demo [zbus-demo options]   build, then stream messages from
#                                       producer processes to consumer
#                                       processes and report the result
#   ./dev.sh test                       the whole test suite: gcc -Werror,
#                                       gcc AddressSanitizer+UBSan, clang
#                                       ASan+UBSan with libFuzzer smoke runs,
#                                       and ThreadSanitizer for the lock-free
#                                       code
#
#   ./dev.sh bench [--quick]            the standard benchmark run:
#                                       bench/RESULTS.md and its plots
#
# Each installs the Debian packages it needs when they are missing.
set -euo pipefail
cd "$(dirname "$0")"

PKGS=(build-essential g++ clang libclang-rt-14-dev cmake pkg-config
	libatomic-ops-dev libcriterion-dev libprotobuf-c-dev
	protobuf-c-compiler)
JOBS=$(nproc)

ensure_deps() {
	local missing=() p sudo=""

	for p in "${PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed" || missing+=("$p")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	[[ $(id -u) -ne 0 ]] && sudo=sudo
	echo "dev.sh: installing ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" </dev/null
}

# build DIR CMAKE_ARGS...
build() {
	local dir=$1
	shift
	mkdir -p "$dir"
	echo "--- building $dir ($*)"
	if ! { cmake -S . -B "$dir" -DZBUS_WERROR=ON "$@" &&
		cmake --build "$dir" -j"$JOBS"; } >"$dir/build.log" 2>&1; then
		grep -E -A5 "rror|warning" "$dir/build.log" | head -60
		echo "dev.sh: build of $dir failed (log: $dir/build.log)" >&2
		return 1
	fi
}

TOTAL_PASSED=0
TOTAL_FAILED=0

# check NAME DIR: run a build's tests once; show each test, Criterion's
# summary lines and ctest's, and add up the counts.
check() {
	local name=$1 dir=$2 log rc passed failed
	log=$dir/ctest.log
	echo "=== $name ==="
	set +e
	(cd "$dir" && ctest --verbose) >"$log" 2>&1
	rc=$?
	set -e
	grep -E "Synthesis|Test +#[0-9]+:|^[0-9]+ passed, [0-9]+ failed|tests passed" "$log" |
		sed -E 's/^[0-9]+: //' || true
	# Count tests, not binaries: each Criterion binary (one ctest entry)
	# contributes its own Passing/Failing counts, every other ctest entry
	# counts once. A binary that died before its summary stays a failure.
	read -r passed failed < <(awk '
		/Synthesis: Tested:/ {
			for (i = 1; i <= NF; i++) {
				if ($i == "Passing:") p += $(i + 1)
				if ($i == "Failing:" || $i == "Crashing:") {
					f += $(i + 1); bad += $(i + 1)
				}
			}
			if (bad) bins_bad++; else bins_ok++
			bad = 0
		}
		/tests passed, [0-9]+ tests failed out of/ {
			tf = $4; tt = $NF
		}
		END {
			if (tt == "") { print 0, 1; exit }
			print p + (tt - tf - bins_ok), f + (tf - bins_bad)
		}' "$log")
	TOTAL_PASSED=$((TOTAL_PASSED + passed))
	TOTAL_FAILED=$((TOTAL_FAILED + failed))
	if [[ $rc -ne 0 ]]; then
		grep -E -B2 -A6 "FAIL|Assertion|ERROR|rror:" "$log" | tail -120
		echo "dev.sh: $name: failed (full log: $log)" >&2
	fi
	return $rc
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
demo)
	ensure_deps
	build build-demo -DCMAKE_BUILD_TYPE=Release -DZBUS_BUILD_TESTS=OFF
	# The library starts the broker by itself (the embedded default):
	# point it at the one just built and a socket of the demo's own, and
	# stop that broker afterwards so the demo leaves nothing running.
	sock=$PWD/build-demo/run/zbusd.sock
	export ZBUS_BROKER=$PWD/build-demo/broker/zbusd ZBUS_SOCKET=$sock
	trap 'pkill -TERM -f "zbusd --socket $sock" 2>/dev/null || true' EXIT
	./build-demo/clients/zbus-demo "$@"
	;;
test)
	ensure_deps
	status=0
	# Release (-O3), as the README's main command builds: gcc warns of
	# more at -O3, and -Werror must see it here first.
	build build-test -DCMAKE_BUILD_TYPE=Release
	check "build (gcc -O3, -Werror)" build-test || status=1
	build build-asan -DZBUS_SANITIZER=address -DZBUS_BUILD_BENCH=OFF
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		check "AddressSanitizer + UBSan" build-asan || status=1
	CC=clang build build-clang -DZBUS_SANITIZER=address \
		-DZBUS_BUILD_FUZZ=ON -DZBUS_BUILD_BENCH=OFF
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		check "clang, ASan + UBSan, libFuzzer smoke runs" build-clang ||
		status=1
	build build-tsan -DZBUS_SANITIZER=thread -DZBUS_BUILD_BENCH=OFF
	check "ThreadSanitizer (lock-free code, threads on one mapping)" \
		build-tsan || status=1
	echo "total: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
	exit $status
	;;
bench)
	# The standard benchmark run, side by side with what users would pick
	# instead: bench/RESULTS.md and its plots come from it. Alone on the
	# machine, please: the numbers are ratios within this one run.
	PKGS+=(gnuplot-nox libzmq3-dev iceoryx libiceoryx-binding-c-dev)
	ensure_deps
	build build-bench -DCMAKE_BUILD_TYPE=Release -DZBUS_BUILD_TESTS=OFF
	out=bench
	# A smoke run never replaces the committed results.
	[[ ${1:-} == --quick ]] && out=build-bench/suite-quick
	bench/suite.sh build-bench "$out" "$@"
	;;
*)
	echo "usage: ./dev.sh demo [options] | ./dev.sh test | ./dev.sh bench [--quick]" >&2
	exit 2
	;;
esac
