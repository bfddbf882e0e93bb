#!/usr/bin/env bash
# proof-drain: under constant load through a real HAProxy and then a real
# NGINX, perform >= 50 scale-out/scale-in cycles and 20 weight changes with
# the actuator (local fleet of backend processes), and check that no request
# failed; then kill -9 a backend and time its replacement.
#
# The load is testbed/loadgen (the library behind `lbtune load`), constant
# rate. Needs /usr/sbin/haproxy and /usr/sbin/nginx.
#
# Environment: LBTUNE_PROOF_CYCLES (50), LBTUNE_PROOF_WEIGHTS (20),
# LBTUNE_PROOF_RATE (200 req/s).
set -euo pipefail
cd "$(dirname "$0")/.."

export LBTUNE_PROOF_CYCLES="${LBTUNE_PROOF_CYCLES:-50}"
export LBTUNE_PROOF_WEIGHTS="${LBTUNE_PROOF_WEIGHTS:-20}"
export LBTUNE_PROOF_RATE="${LBTUNE_PROOF_RATE:-200}"

for bin in /usr/sbin/haproxy /usr/sbin/nginx; do
	[ -x "$bin" ] || { echo "proof-drain: $bin missing (install haproxy and nginx)" >&2; exit 1; }
done

log="$(mktemp -t proof-drain.XXXXXX.log)"
echo "proof-drain: ${LBTUNE_PROOF_CYCLES} scale cycles, ${LBTUNE_PROOF_WEIGHTS} weight changes, ${LBTUNE_PROOF_RATE} req/s (full log: $log)"
status=0
go test -count=1 -run '^TestProofDrain$' -v -timeout 20m ./actuator >"$log" 2>&1 || status=$?
grep -E 'PROOF|^(--- |ok|FAIL|PASS)|proof_test.go' "$log" | grep -v 'INFO' || true
if [ "$status" -ne 0 ]; then
	echo "proof-drain: FAILED (exit $status), see $log" >&2
	exit "$status"
fi
echo "proof-drain: OK: 0 failed requests on both balancers"
