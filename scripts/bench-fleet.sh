#!/usr/bin/env bash
# bench-fleet.sh: one lbtune daemon tuning many pools (make bench-fleet).
#
# Runs `lbtune run` with POOLS simulated pools of SERVERS servers each
# (1 s scrapes, 5 s decisions, the shipped agent model) for DURATION
# seconds and reports: the daemon's CPU share (cores, from /proc), its RSS
# over the run (start, middle, end), the decision loop's p50/p99 (from
# lbtune_decision_loop_seconds on /metrics), the API's p50/p99 for
# /v1/policy and /v1/decisions?since=&limit= under CLIENTS concurrent
# clients (lbtune load, 15 s per endpoint in the middle of the run; the
# policy both in full and with ?clusters=once), the live heap in the
# middle and at the end (heap profiles from /debug/pprof with the token,
# kept in the work directory), and the store's growth per simulated day
# (snapshots + decisions, from the file size).
#
# The simulated clusters run inside the daemon (each pool's simulator is
# its source and actuator), so the CPU share includes simulating
# POOLS x ~10 req/s; the bench prints the simulator's request rate.
#
# Environment: POOLS (200), SERVERS (20), DURATION (600 s), CLIENTS (20),
# RETENTION (store retention, default 1h: pruning runs during the bench),
# BIN (bin/lbtune), KEEP=1 keeps the work directory, POLICY (every pool's
# policy: agent by default; static holds the server count, to tell memory
# that follows the pools' sizes from memory that leaks).
set -euo pipefail
cd "$(dirname "$0")/.."
POOLS=${POOLS:-200}
SERVERS=${SERVERS:-20}
DURATION=${DURATION:-600}
CLIENTS=${CLIENTS:-20}
RETENTION=${RETENTION:-1h}
BIN=${BIN:-bin/lbtune}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/lbtune
dir=$(mktemp -d /tmp/lbtune-bench-fleet.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 19464)
model="$(pwd)/datasets/default-agent.db"
[ -f "$model" ] || model=""

{
	cat <<EOF
# Written by scripts/bench-fleet.sh: $POOLS simulated pools of $SERVERS servers.
api: {listen: "127.0.0.1:$port", token_file: lbtune.token}
store: {path: lbtune.db, retention: $RETENTION}
model: {path: "$model"}
intervals: {scrape: 1s, scrape_timeout: 800ms, decide: 5s}
mode: auto
${POLICY:+policy: $POLICY}
pools:
EOF
	for i in $(seq 1 "$POOLS"); do
		# Each pool: 20 servers of 1 req/s serving 8..14 req/s in 10 min phases.
		cat <<EOF
  - name: p$i
    sim:
      phases: [{duration: 10m, rps: $((8 + i % 7))}, {duration: 10m, rps: 14}]
      speedup: 1
      service_ms: 1000
      boot_delay: 60s
      servers: $SERVERS
      seed: $i
    template: {min: 1, max: $((2 * SERVERS)), target_seconds: 5, max_weight: 256}
EOF
	done
} >"$dir/lbtune.yaml"

"$BIN" config check "$dir/lbtune.yaml" >/dev/null
"$BIN" run --config "$dir/lbtune.yaml" >"$dir/run.out" 2>"$dir/run.log" &
pid=$!
cleanup() {
	kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	if [ "${KEEP:-}" = 1 ]; then echo "bench-fleet: files in $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT
for _ in $(seq 300); do
	curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || { echo "bench-fleet: lbtune run died: $(tail -3 "$dir/run.log")" >&2; exit 1; }
	sleep 0.2
done

clk=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
# Anonymous memory (heap, stacks): the store's file pages that bbolt maps
# also count in VmRSS, and they grow with the file, not with leaks.
rss() { awk '/^RssAnon/ {print $2}' "/proc/$pid/status"; }
rssfile() { awk '/^RssFile/ {print $2}' "/proc/$pid/status"; }
size() { stat -c %s "$dir/lbtune.db"; }
t0=$(date +%s.%N)
c0=$(cpu)
rss0=$(rss)
size0=$(size)
half=$((DURATION / 2))
sleep "$half"
rss_mid=$(rss)
# The live heap (in use at the last GC) from a heap profile.
heap() {
	curl -fsS -H "Authorization: Bearer $(cat "$dir/lbtune.token")" "http://127.0.0.1:$port/debug/pprof/heap" >"$dir/heap-$1.pb.gz" || return 0
	go tool pprof -sample_index=inuse_space -top "$dir/heap-$1.pb.gz" 2>/dev/null | awk '/^Showing nodes/ {print $(NF-1); exit}'
}
heap_mid=$(heap mid)
# The decision loop's p50, p99 (bucket upper bounds) and count from a
# /metrics dump; the mid-run dump, before the API load, gives the loop
# without 20 API clients competing for the CPU.
loopq() {
	awk '/^lbtune_decision_loop_seconds_bucket/ {
	match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); b[le] += $2; if (!(le in seen)) { seen[le] = 1; order[n++] = le } }
	END {
		total = b["+Inf"]; if (total == 0) { print "n/a n/a 0"; exit }
		p50 = ""; p99 = ""
		for (i = 0; i < n; i++) { le = order[i]; if (p50 == "" && b[le] >= 0.5 * total) p50 = le; if (p99 == "" && b[le] >= 0.99 * total) p99 = le }
		printf "%s %s %d\n", p50, p99, total }' "$1"
}
curl -fsS "http://127.0.0.1:$port/metrics" >"$dir/metrics-mid.txt"

# The API under CLIENTS concurrent clients, 30 s per endpoint.
api() {
	"$BIN" load --target "http://127.0.0.1:$port$1" --rate 200 --duration 15s --max-workers "$CLIENTS" --json 2>/dev/null |
		python3 -c 'import json,sys; s=json.load(sys.stdin); print("%.1f %.1f %d %d" % (s["p50_ms"], s["p99_ms"], s["requests"], s["failures"]))'
}
api_policy=$(api /v1/policy)
api_once=$(api "/v1/policy?clusters=once")
api_dec=$(api "/v1/decisions?since=10m&limit=100")
size_policy=$(curl -fsS "http://127.0.0.1:$port/v1/policy" | wc -c)
size_once=$(curl -fsS "http://127.0.0.1:$port/v1/policy?clusters=once" | wc -c)
rest=$((DURATION - half - 45))
[ "$rest" -gt 0 ] && sleep "$rest"

t1=$(date +%s.%N)
c1=$(cpu)
rss1=$(rss)
rssf1=$(rssfile)
size1=$(size)
heap_end=$(heap end)
curl -fsS "http://127.0.0.1:$port/metrics" >"$dir/metrics.txt"
served=$(awk '/^lbtune_pool_requests_per_second/ {s += $2} END {printf "%.0f", s}' "$dir/metrics.txt")
loop=$(loopq "$dir/metrics.txt")
loop_quiet=$(loopq "$dir/metrics-mid.txt")
wall=$(echo "$t1 - $t0" | bc -l)
cores=$(echo "($c1 - $c0) / $clk / $wall" | bc -l)
perday=$(echo "($size1 - $size0) / $wall * 86400 / 1048576" | bc -l)
read -r p50 p99 ndec <<<"$loop"
read -r qp50 qp99 qndec <<<"$loop_quiet"
read -r pol50 pol99 polreq polfail <<<"$api_policy"
read -r once50 once99 oncereq oncefail <<<"$api_once"
read -r dec50 dec99 decreq decfail <<<"$api_dec"
printf 'bench-fleet: %d pools x %d servers, %.0f s, 1 s scrapes, 5 s decisions (simulated load %s req/s served)\n' "$POOLS" "$SERVERS" "$wall" "$served"
printf '  cpu            %.3f cores\n' "$cores"
printf '  rss (anon)     %d MiB at start, %d MiB mid-run, %d MiB at end (+ %d MiB of mapped store file at end)\n' $((rss0 / 1024)) $((rss_mid / 1024)) $((rss1 / 1024)) $((rssf1 / 1024))
printf '  decision loop  p50 <= %s s, p99 <= %s s (bucket bounds; %d decisions)\n' "$p50" "$p99" "$ndec"
printf '  (first half)   p50 <= %s s, p99 <= %s s (%d decisions before the API load)\n' "$qp50" "$qp99" "$qndec"
printf '  live heap      %s mid-run, %s at end (inuse_space of the heap profiles)\n' "${heap_mid:-n/a}" "${heap_end:-n/a}"
printf '  /v1/policy     p50 %s ms, p99 %s ms (%s requests, %s failed, %d clients; %d bytes)\n' "$pol50" "$pol99" "$polreq" "$polfail" "$CLIENTS" "$size_policy"
printf '  ?clusters=once p50 %s ms, p99 %s ms (%s requests, %s failed; %d bytes)\n' "$once50" "$once99" "$oncereq" "$oncefail" "$size_once"
printf '  records        queue full %s times, %s not stored (lbtune_record_queue_full_total, lbtune_record_errors_total)\n' \
	"$(awk '/^lbtune_record_queue_full_total/ {print $2}' "$dir/metrics.txt")" "$(awk '/^lbtune_record_errors_total/ {print $2}' "$dir/metrics.txt")"
printf '  /v1/decisions  p50 %s ms, p99 %s ms (%s requests, %s failed; since=10m&limit=100)\n' "$dec50" "$dec99" "$decreq" "$decfail"
printf '  store          %.1f MiB -> %.1f MiB: %.0f MiB per day at this rate (retention %s)\n' "$(echo "$size0/1048576" | bc -l)" "$(echo "$size1/1048576" | bc -l)" "$perday" "$RETENTION"
