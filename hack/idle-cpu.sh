#!/usr/bin/env bash
# Measures the CPU time an idle agent process uses over a minute (issue:
# "an idle agent uses no CPU between events"). A store runs in `up` with no
# simulated nodes; one `sitekeeper agent` serves the demo's three sites
# (health checks every second) or, with EMPTY=1, nothing at all.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/sitekeeper}
SECONDS_IDLE=${SECONDS_IDLE:-60}
DIR=$(mktemp -d)
cleanup() { pkill -f -- "--data-dir $DIR" 2>/dev/null || true; sleep 1; rm -rf "$DIR"; }
trap cleanup EXIT
"$BIN" up --nodes "" --data-dir "$DIR/store" --listen 127.0.0.1:0 >"$DIR/up.out" 2>&1 &
for _ in $(seq 1 100); do grep -q "store at" "$DIR/up.out" 2>/dev/null && break; sleep 0.1; done
EP=$(sed -n 's/^sitekeeper up: store at \([^,]*\),.*/\1/p' "$DIR/up.out")
"$BIN" agent --node node1 --endpoints "$EP" --data-dir "$DIR/node1" >"$DIR/agent.out" 2>&1 &
AGENT=$!
if [ "${EMPTY:-0}" != 1 ]; then
	"$BIN" apply -f manifests/demo --endpoints "$EP" >/dev/null
fi
sleep 8 # converge
ticks() { awk '{print $14+$15}' "/proc/$AGENT/stat"; }
t0=$(ticks); sleep "$SECONDS_IDLE"; t1=$(ticks)
hz=$(getconf CLK_TCK)
echo "agent CPU over ${SECONDS_IDLE}s idle: $(( (t1 - t0) * 1000 / hz )) ms ($([ "${EMPTY:-0}" = 1 ] && echo 'no sites' || echo '3 sites, health checks every 1 s'))"
