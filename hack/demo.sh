#!/usr/bin/env bash
# The demo: a cluster on the embedded default with two simulated nodes.
# Starts `sitekeeper up` on manifests/demo, waits for Ready, fetches each
# site, fails node1, shows the failover while a client keeps fetching,
# heals node1, switches back by `switchover`, and stops. Needs no root.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/sitekeeper}
DATA=$(mktemp -d)
LOG="$DATA/up.log"
UP_PID=""
cleanup() {
	if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
		kill -INT "$UP_PID"
		wait "$UP_PID" 2>/dev/null || true
	fi
	rm -rf "$DATA"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fetch() { curl -s -m 1 -D - -o "$DATA/body" "$1" | tr -d '\r' | awk '/^X-Sitekeeper-Node/ {print $2}' | tr -d '\n'; printf ' says: %s\n' "$(cat "$DATA/body" 2>/dev/null)"; }

# The demo's addresses must be free: a site left running by another demo
# or up would answer in its place.
for url in http://127.0.10.1:18080/ http://127.0.10.2:18080/; do
	if curl -s -m 0.5 -o /dev/null "$url"; then
		holder=$(ss -ltnp 2>/dev/null | grep -E "127\.0\.10\.[12]:18080" | sed -n 's/.*users:((\("[^"]*",pid=[0-9]*\).*/\1/p' | head -1)
		echo "demo: $url already answers${holder:+ (held by $holder)}; stop that sitekeeper up first" >&2
		exit 1
	fi
done

say "Start a store and nodes node1 and node2 (each with its agent and placement candidate) in one process"
"$BIN" up -f manifests/demo --watch=false --data-dir "$DATA/state" --listen 127.0.0.1:0 >"$LOG" 2>"$DATA/up.err" &
UP_PID=$!
for _ in $(seq 1 100); do grep -q "store at" "$LOG" 2>/dev/null && break; sleep 0.1; done
EP=$(sed -n 's/^sitekeeper up: store at \([^,]*\),.*/\1/p' "$LOG")
export SITEKEEPER_ENDPOINTS="$EP"
echo "store endpoint: $EP"

say "Wait until every site is Ready"
ready=""
for _ in $(seq 1 100); do
	if [ "$("$BIN" get sites | grep -c ' True ')" = 3 ]; then ready=yes; break; fi
	sleep 0.2
done
if [ -z "$ready" ]; then
	"$BIN" get sites
	echo "demo: the sites did not become Ready within 20 s; the log is in $DATA/up.err" >&2
	cat "$DATA/up.err" >&2
	exit 1
fi
"$BIN" get sites
"$BIN" get groups

say "Each site answers on its virtual IP (the X-Sitekeeper-Node header names the node)"
echo -n "WebSite1 http://127.0.10.1:18080/ -> "; fetch http://127.0.10.1:18080/
echo -n "WebSite2 http://127.0.10.2:18080/ -> "; fetch http://127.0.10.2:18080/

say "node1 loses power; a client fetches WebSite1 every 50 ms until node2 answers"
"$BIN" sim fail-node node1
start=$(date +%s%N); first_ok=""; failed=0
for _ in $(seq 1 200); do
	node=$(curl -s -m 0.2 -D - -o /dev/null http://127.0.10.1:18080/ | tr -d '\r' | awk '/^X-Sitekeeper-Node/ {print $2}' || true)
	if [ "$node" = node2 ]; then
		first_ok=$(date +%s%N); break
	fi
	failed=$((failed + 1))
	printf '  %s request failed%s\n' "$(date +%T.%3N)" "${node:+ (answered by $node)}"
	sleep 0.05
done
[ -n "$first_ok" ] || { echo "demo: WebSite1 was not served by node2 within 10 s" >&2; exit 1; }
echo "WebSite1 served by node2 after $(( (first_ok - start) / 1000000 )) ms, $failed request(s) failed meanwhile (lease TTL 2 s)"
echo -n "WebSite1 -> "; fetch http://127.0.10.1:18080/
"$BIN" get groups

say "node1 is repaired and boots; WebSite1 has manual switchback, so it stays on node2"
"$BIN" sim heal-node node1
sleep 3
"$BIN" get groups

say "Switch WebSite1 back to node1 by hand"
"$BIN" switchover iissite WebSite1 --to node1 --wait
echo -n "WebSite1 -> "; fetch http://127.0.10.1:18080/

say "What happened (placement events)"
"$BIN" events | grep -E 'REASON|Placed|FailedOver|Switched|Simulated'

say "Stop"
