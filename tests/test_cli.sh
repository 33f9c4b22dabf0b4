#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# test_cli.sh ZBUS ZBUSD - the zbus tool used from a shell, as README.md
# shows it, against a real broker on a private socket. Prints each check;
# exits non-zero at the first failure.
set -euo pipefail

zbus=$1
zbusd=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/zbus-cli.XXXXXX")
export ZBUS_SOCKET=$tmp/zbusd.sock
export ZBUS_NO_AUTOSTART=1
broker=""

cleanup() {
	[[ -n $broker ]] && kill -TERM "$broker" 2>/dev/null && wait "$broker" || true
	rm -rf "$tmp"
}
trap cleanup EXIT
step() { printf '[check] %s\n' "$*"; }
fail() {
	printf '[FAIL ] %s\n' "$*" >&2
	[[ -f $tmp/broker.log ]] && sed 's/^/  broker: /' "$tmp/broker.log" >&2
	exit 1
}

"$zbusd" 2>"$tmp/broker.log" &
broker=$!
for _ in $(seq 100); do [[ -S $ZBUS_SOCKET ]] && break; sleep 0.05; done
[[ -S $ZBUS_SOCKET ]] || fail "the broker did not start"

# Start a subscriber, wait until it says it is subscribed, then publish.
# subscribe NAME OUT ARGS...: runs zbus sub in the background.
subscribe() {
	local name=$1 out=$2
	shift 2
	"$zbus" sub "$name" "$@" >"$out" 2>"$out.err" &
	sub_pid=$!
	for _ in $(seq 100); do
		grep -q "subscribed" "$out.err" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "zbus sub $name did not subscribe: $(cat "$out.err")"
}

step "lines: printf 'alpha\\nbeta\\ngamma\\n' | zbus pub demo; zbus sub demo -n 3"
subscribe demo "$tmp/lines.out" -n 3
printf 'alpha\nbeta\ngamma\n' | "$zbus" pub demo
wait "$sub_pid" || fail "zbus sub exited $?"
[[ $(cat "$tmp/lines.out") == $'alpha\nbeta\ngamma' ]] ||
	fail "lines came out as: $(cat "$tmp/lines.out")"

step "two subscribers both get every message (broadcast)"
subscribe fan "$tmp/fan1.out" -n 100
first=$sub_pid
subscribe fan "$tmp/fan2.out" -n 100
seq 1 100 | "$zbus" pub fan
wait "$first" || fail "first subscriber exited $?"
wait "$sub_pid" || fail "second subscriber exited $?"
cmp -s "$tmp/fan1.out" <(seq 1 100) || fail "first subscriber's output differs"
cmp -s "$tmp/fan2.out" <(seq 1 100) || fail "second subscriber's output differs"

step "--file: a whole binary file as one message, --records out"
head -c 50000 /dev/urandom >"$tmp/blob"
subscribe blobs "$tmp/blob.out" -n 1 --records
"$zbus" pub blobs --file "$tmp/blob"
wait "$sub_pid" || fail "zbus sub --records exited $?"
[[ $(stat -c %s "$tmp/blob.out") -eq 50004 ]] || fail "record size wrong"
tail -c 50000 "$tmp/blob.out" | cmp -s - "$tmp/blob" || fail "file content differs"

step "--records in: length-prefixed binary records, including an empty one"
subscribe recs "$tmp/recs.out" -n 3 --records
printf '\x03\x00\x00\x00abc\x00\x00\x00\x00\x02\x00\x00\x00\x00\xff' |
	"$zbus" pub recs --records
wait "$sub_pid" || fail "zbus sub exited $?"
cmp -s "$tmp/recs.out" <(printf '\x03\x00\x00\x00abc\x00\x00\x00\x00\x02\x00\x00\x00\x00\xff') ||
	fail "records differ"

step "ls lists the channels; stat shows one"
"$zbus" ls >"$tmp/ls.out"
for c in demo fan blobs recs; do
	grep -q "^$c " "$tmp/ls.out" || fail "ls does not show $c: $(cat "$tmp/ls.out")"
done
"$zbus" stat fan >"$tmp/stat.out"
grep -q "published: *100 messages" "$tmp/stat.out" ||
	fail "stat fan: $(cat "$tmp/stat.out")"

step "stat lists a running subscriber with its pid and lag"
subscribe watched "$tmp/watched.out" -n 5
printf 'one\ntwo\n' | "$zbus" pub watched
sleep 0.2
"$zbus" stat watched >"$tmp/stat2.out"
grep -Eq "^[0-9]+ +$sub_pid +reliable +[0-9]+$" "$tmp/stat2.out" ||
	fail "stat does not list subscriber $sub_pid: $(cat "$tmp/stat2.out")"
printf 'three\nfour\nfive\n' | "$zbus" pub watched
wait "$sub_pid" || fail "zbus sub exited $?"

step "errors: one readable line and a non-zero status"
set +e
"$zbus" stat no-such-channel 2>"$tmp/err1"
st=$?
"$zbus" frobnicate 2>/dev/null
st2=$?
ZBUS_SOCKET=$tmp/nobody.sock "$zbus" ls 2>"$tmp/err2"
st3=$?
set -e
[[ $st -eq 1 && $(wc -l <"$tmp/err1") -eq 1 ]] || fail "stat of a missing channel: status $st, $(cat "$tmp/err1")"
grep -q "no channel 'no-such-channel'" "$tmp/err1" || fail "message: $(cat "$tmp/err1")"
[[ $st2 -eq 2 ]] || fail "unknown command: status $st2"
[[ $st3 -eq 1 ]] && grep -q "cannot reach the broker" "$tmp/err2" ||
	fail "no broker: status $st3, $(cat "$tmp/err2")"

echo "cli: all checks passed"
