#!/bin/sh
# model.sh: reproduce the shipped default model + policy (datasets/default-agent.db)
# that `lbtune eval --policies agent` and `make demo` use when no --model is given.
# Trained on every shipped trace in the simulator (and on the recorded datasets'
# weight changes, when datasets/*.jsonl.gz exist: fitted Q iteration with each
# pool's p95 target at 4x its mean service time). Deterministic for a seed.
# Each episode's pool is sized for its own peak, 2-20 servers (MIN_PEAK=20:
# every pool sized for 20, as scripts/agent-loo.sh trains): the daemon's
# pools are often 2-6 servers, whose load states (a largest share of 0.5 or
# more) pools of 20 never reach, and a model trained on 20 only sent a
# 2-server pool of `make demo` to the fallback as out of distribution.
set -eu
BIN=${BIN:-bin/lbtune}
T=${TRACES_DIR:-../shared/traces}
OUT=${OUT:-datasets/default-agent.db}
traces=$(ls "$T"/*.csv | tr '\n' ',' | sed 's/,$//')
data=""
for f in datasets/*.jsonl.gz; do
	[ -e "$f" ] && data="$data --data $f"
done
rm -f "$OUT"
# shellcheck disable=SC2086
"$BIN" policy train --traces "$traces" $data ${data:+--data-target light=20ms,medium=80ms,heavy=320ms} --out "$OUT" \
	--episodes "${EPISODES:-40}" --explore-episodes "${EXPLORE:-8}" --policy-seed "${SEED:-1}" \
	--min-peak-servers "${MIN_PEAK:-2}"
"$BIN" policy show --model "$OUT"
