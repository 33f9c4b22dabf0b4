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
sub_pid=""
pub_pid=""

cleanup() {
	# A check that failed may leave a client waiting: end it too.
	for p in $sub_pid $pub_pid; do kill -TERM "$p" 2>/dev/null || true; done
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

step "--file larger than the channel's messages: by reference, pulled"
head -c 3000000 /dev/urandom >"$tmp/big"
subscribe bigs "$tmp/big.out" -n 1 --records --max-size 4096
"$zbus" pub bigs --file "$tmp/big" --max-size 4096 ||
	fail "zbus pub --file of 3 MB on a 4 KiB channel exited $?"
wait "$sub_pid" || fail "zbus sub exited $?: $(cat "$tmp/big.out.err")"
[[ $(stat -c %s "$tmp/big.out") -eq 3000004 ]] || fail "big record size wrong"
tail -c 3000000 "$tmp/big.out" | cmp -s - "$tmp/big" || fail "big file differs"

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
grep -q "^writers: *whoever the mode lets publish" "$tmp/stat.out" ||
	fail "stat fan: no writers line: $(cat "$tmp/stat.out")"

step "stat and ls list a running publisher and subscriber: pid, uid, counts, lag, losses, rate"
subscribe watched "$tmp/watched.out" -n 5
# The publisher reads a fifo that stays open: it lives on between lines.
mkfifo "$tmp/pub.in"
"$zbus" pub watched <"$tmp/pub.in" 2>"$tmp/pub.err" &
pub_pid=$!
exec 3>"$tmp/pub.in"
printf 'one\ntwo\n' >&3
for _ in $(seq 100); do
	[[ $(wc -l <"$tmp/watched.out") -eq 2 ]] && break
	sleep 0.05
done
uid=$(id -u)
"$zbus" stat watched >"$tmp/stat2.out"
"$zbus" ls >"$tmp/ls2.out"
for out in "$tmp/stat2.out" "$tmp/ls2.out"; do
	grep -Eq "^watched +[0-9]+:[0-9]+ +0600 +1 +1 +0 +[0-9]+\.[0-9] +2 +0$" "$out" ||
		fail "no channel row (1 pub, 1 sub, depth 0, 2 published): $(cat "$out")"
	grep -Eq "^  pub +[0-9]+ +$pub_pid +$uid +shared +2 +[0-9]+\.[0-9]$" "$out" ||
		fail "publisher $pub_pid (uid $uid, 2 published) not listed: $(cat "$out")"
	grep -Eq "^  sub +[0-9]+ +$sub_pid +$uid +reliable +0 +0 +[0-9]+\.[0-9]$" "$out" ||
		fail "subscriber $sub_pid (uid $uid, lag 0, missed 0) not listed: $(cat "$out")"
done
grep -Eq "^CHANNEL +OWNER +MODE +PUBS +SUBS +DEPTH +MSG/S +PUBLISHED +RECLAIMED$" "$tmp/ls2.out" ||
	fail "ls header: $(head -1 "$tmp/ls2.out")"
grep -q "^depth: *0 messages" "$tmp/stat2.out" || fail "stat: no depth"
printf 'three\nfour\nfive\n' >&3
exec 3>&-
wait "$pub_pid" || fail "zbus pub exited $?: $(cat "$tmp/pub.err")"
wait "$sub_pid" || fail "zbus sub exited $?"
pub_pid=""
sub_pid=""

if [[ $(id -u) -eq 0 ]] && command -v setpriv >/dev/null; then
	step "execute-only: zbus sub as nobody gets deliveries from the broker (mode 0601)"
	chmod 755 "$tmp"
	"$zbus" pub xonly --mode 601 </dev/null || fail "zbus pub --mode 601 exited $?"
	sub_as_nobody() {
		setpriv --reuid 65534 --regid 65534 --clear-groups "$zbus" "$@"
	}
	sub_as_nobody sub xonly -n 2 >"$tmp/xonly.out" 2>"$tmp/xonly.out.err" &
	sub_pid=$!
	for _ in $(seq 100); do
		grep -q "subscribed" "$tmp/xonly.out.err" 2>/dev/null && break
		sleep 0.05
	done
	grep -q "subscribed" "$tmp/xonly.out.err" ||
		fail "nobody did not subscribe: $(cat "$tmp/xonly.out.err")"
	printf 'secret one\nsecret two\n' | "$zbus" pub xonly
	wait "$sub_pid" || fail "zbus sub as nobody exited $?: $(cat "$tmp/xonly.out.err")"
	sub_pid=""
	[[ $(cat "$tmp/xonly.out") == $'secret one\nsecret two' ]] ||
		fail "nobody got: $(cat "$tmp/xonly.out")"
	grep -q "subscribed to 'xonly' by delivery" "$tmp/broker.log" ||
		fail "the broker did not deliver: $(grep xonly "$tmp/broker.log")"
else
	step "[skip] execute-only delivery from a shell: needs root and setpriv"
fi

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
