#!/usr/bin/env bash
# Measures the CPU time an idle agent process uses over a minute (issue:
# "an idle agent uses no CPU between events"). A store runs in `up` with no
# simulated nodes; one `sitekeeper agent` serves the demo's three sites
# (health checks every second) or, with EMPTY=1, nothing at all.
#
# With DASHBOARD=1 it measures instead what the dashboard costs: an idle
# `up -f manifests/demo` (3 sites) over the same time with no browser, then
# with headless Chromium holding the dashboard open (its live stream), and
# prints both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/sitekeeper}
SECONDS_IDLE=${SECONDS_IDLE:-60}
DIR=$(mktemp -d)
cleanup() {
	pkill -f -- "--data-dir $DIR" 2>/dev/null || true
	pkill -f -- "--user-data-dir=$DIR/browser" 2>/dev/null || true
	sleep 1
	rm -rf "$DIR"
}
trap cleanup EXIT
hz=$(getconf CLK_TCK)
ticksOf() { awk '{print $14+$15}' "/proc/$1/stat"; }
if [ "${DASHBOARD:-0}" = 1 ]; then
	"$BIN" up -f manifests/demo --data-dir "$DIR/up" >"$DIR/up.out" 2>&1 &
	UP=$!
	for _ in $(seq 1 200); do grep -q "dashboard at" "$DIR/up.out" 2>/dev/null && break; sleep 0.1; done
	URL=$(sed -n 's/^sitekeeper up: dashboard at \([^ ]*\).*/\1/p' "$DIR/up.out")
	sleep 8 # converge
	t0=$(ticksOf "$UP"); sleep "$SECONDS_IDLE"; t1=$(ticksOf "$UP")
	without=$(( (t1 - t0) * 1000 / hz ))
	chromium --headless --no-sandbox --disable-gpu --remote-debugging-port=0 --user-data-dir="$DIR/browser" "$URL" >/dev/null 2>&1 &
	sleep 5 # the page loads and opens its stream
	grep -q "" <(curl -s "${URL}api/state") || { echo "dashboard did not answer" >&2; exit 1; }
	t0=$(ticksOf "$UP"); sleep "$SECONDS_IDLE"; t1=$(ticksOf "$UP")
	with=$(( (t1 - t0) * 1000 / hz ))
	echo "up (3 sites) CPU over ${SECONDS_IDLE}s idle: ${without} ms without a browser ($(( without * 100 / (SECONDS_IDLE * 1000) )).$(( without * 1000 / (SECONDS_IDLE * 1000) % 10 ))%), ${with} ms with the dashboard open in Chromium: +$(( with - without )) ms ($(( (with - without) * 1000 / (SECONDS_IDLE * 1000) )) per mille of one core)"
	exit 0
fi
"$BIN" up --nodes "" --data-dir "$DIR/store" --listen 127.0.0.1:0 >"$DIR/up.out" 2>&1 &
for _ in $(seq 1 100); do grep -q "store at" "$DIR/up.out" 2>/dev/null && break; sleep 0.1; done
EP=$(sed -n 's/^sitekeeper up: store at \([^,]*\),.*/\1/p' "$DIR/up.out")
"$BIN" agent --node node1 --endpoints "$EP" --data-dir "$DIR/node1" >"$DIR/agent.out" 2>&1 &
AGENT=$!
if [ "${EMPTY:-0}" != 1 ]; then
	"$BIN" apply -f manifests/demo --endpoints "$EP" >/dev/null
fi
sleep 8 # converge
t0=$(ticksOf "$AGENT"); sleep "$SECONDS_IDLE"; t1=$(ticksOf "$AGENT")
echo "agent CPU over ${SECONDS_IDLE}s idle: $(( (t1 - t0) * 1000 / hz )) ms ($([ "${EMPTY:-0}" = 1 ] && echo 'no sites' || echo '3 sites, health checks every 1 s'))"
