#!/bin/sh
# bench-loadgen.sh: how fast lbtune load can send open loop, compared with
# wrk's closed-loop ceiling, in the same run against the same trivial backend
# (lbtune backend /healthz: no work). Recorded in docs/BENCHMARKS.md.
#
# Environment: LBTUNE (bin/lbtune), BENCH_DURATION (10s), BENCH_RATES,
# BENCH_WORKERS (the --max-workers values tried: "256 64").
set -eu
cd "$(dirname "$0")/.."
LBTUNE=${LBTUNE:-bin/lbtune}
DUR=${BENCH_DURATION:-10s}
RATES=${BENCH_RATES:-5000 7500 10000 12500}
WORKERS=${BENCH_WORKERS:-256 64}
tmp=$(mktemp -d)
"$LBTUNE" backend --work sleep --concurrency 0 >"$tmp/addr" 2>"$tmp/backend.log" &
backend=$!
trap 'kill $backend 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do [ -s "$tmp/addr" ] && break; sleep 0.1; done
url="http://$(head -n1 "$tmp/addr")/healthz"
echo "backend: $url (pid $backend); $(nproc) CPUs; load average: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== wrk (closed loop, the ceiling of this backend on this machine)"
wrk -t2 -c64 -d"$DUR" --latency "$url" | grep -E "Requests/sec|Latency|50%|99%|Socket errors|Non-2xx"

for workers in $WORKERS; do
	for dist in exp fixed; do
		for rate in $RATES; do
			echo "== lbtune load --dist $dist --rate $rate --duration $DUR --max-workers $workers"
			"$LBTUNE" load --target "$url" --dist "$dist" --rate "$rate" --duration "$DUR" --max-workers "$workers" |
				grep -E "^requests|^failures|^percentile"
		done
	done
done
