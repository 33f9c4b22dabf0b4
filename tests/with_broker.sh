#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# with_broker.sh ZBUSD CMD [ARGS...] - run CMD against a real broker on a
# private socket ($ZBUS_SOCKET), then stop the broker whatever happens.
# Autostart is off inside, so CMD cannot start a broker that outlives it.
set -euo pipefail

zbusd=$1
shift
tmp=$(mktemp -d "${TMPDIR:-/tmp}/zbus-broker.XXXXXX")
export ZBUS_SOCKET=$tmp/zbusd.sock
export ZBUS_NO_AUTOSTART=1
"$zbusd" 2>"$tmp/broker.log" &
broker=$!
trap 'kill -TERM $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do [[ -S $ZBUS_SOCKET ]] && break; sleep 0.05; done
[[ -S $ZBUS_SOCKET ]] || { cat "$tmp/broker.log" >&2; exit 1; }
"$@"
