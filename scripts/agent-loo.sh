#!/bin/sh
# agent-loo.sh: the agent's leave-one-trace-out results (docs/RESULTS.md "Agent").
# For every trace in TRACES, train the agent on the other traces, then score it on
# the held-out one beside the baselines, and the agent again with --trend-only
# (OUT/T.trend-only.json). Usage: scripts/agent-loo.sh [OUTDIR]
#
# WHOLE=1 scores every trace whole instead of its first 72 h (WorldCup June
# thinned with --scale 0.1 as in the slices; NASA per second is one day
# either way); training is the same. FRONTIER=1 adds the clairvoyant at
# H x target for H = 0.75..0.95 (oracle@H; finer where the agents' violations
# fall), the points of the frontier the goals are read against
# (docs/RESULTS.md "Agent").
set -eu
BIN=${BIN:-bin/lbtune}
T=${TRACES_DIR:-../shared/traces}
OUT=${1:-/tmp/lbtune-loo}
EPISODES=${EPISODES:-40}
EXPLORE=${EXPLORE:-8}
POLICIES=static,threshold,hpa@0.3,hpa@0.4,hpa@0.5,hpa@0.6,hpa@0.7,oracle,agent
if [ "${FRONTIER:-0}" = 1 ]; then
	for h in 0.75 0.7525 0.755 0.7575 0.76 0.77 0.78 0.79 0.8 0.8025 0.805 0.8075 0.81 0.8125 0.815 0.8175 \
		0.82 0.83 0.835 0.8375 0.84 0.8425 0.845 0.85 0.87 0.9 0.95; do
		POLICIES="$POLICIES,oracle@$h"
	done
fi
mkdir -p "$OUT"
# trace name, eval flags (a 72 h slice, or the whole trace with WHOLE=1;
# busy traces thinned with --scale)
if [ "${WHOLE:-0}" = 1 ]; then
	cat > "$OUT/traces.txt" <<LIST
nasa-1995-07-13-per-sec
nasa-1995-07-per-min
worldcup98-1998-05-per-min
worldcup98-1998-06-per-min --scale 0.1
worldcup98-1998-07-per-min
LIST
else
	cat > "$OUT/traces.txt" <<LIST
nasa-1995-07-13-per-sec --to 24h
nasa-1995-07-per-min --to 72h
worldcup98-1998-05-per-min --to 72h
worldcup98-1998-06-per-min --to 72h --scale 0.1
worldcup98-1998-07-per-min --to 72h
LIST
fi
while read -r name flags; do
	others=$(for o in $(cut -d' ' -f1 "$OUT/traces.txt"); do [ "$o" = "$name" ] || printf '%s,' "$T/$o.csv"; done)
	others=${others%,}
	rm -f "$OUT/$name.db"
	echo "== $name: train on the other traces" >&2
	"$BIN" policy train --traces "$others" --out "$OUT/$name.db" --episodes "$EPISODES" --explore-episodes "$EXPLORE" --quiet >&2
	echo "== $name: eval $flags" >&2
	if [ "${WHOLE:-0}" != 1 ]; then # whole traces take minutes each: JSON only
		# shellcheck disable=SC2086
		"$BIN" eval --trace "$T/$name.csv" $flags --policies "$POLICIES" --model "$OUT/$name.db" --progress=false > "$OUT/$name.txt"
	fi
	# shellcheck disable=SC2086
	"$BIN" eval --trace "$T/$name.csv" $flags --policies "$POLICIES" --model "$OUT/$name.db" --progress=false --json > "$OUT/$name.json"
	# the same agent forecasting with the trend alone (no seasonal profile)
	# shellcheck disable=SC2086
	"$BIN" eval --trace "$T/$name.csv" $flags --policies agent --trend-only --model "$OUT/$name.db" --progress=false --json > "$OUT/$name.trend-only.json"
	if [ "${WHOLE:-0}" != 1 ]; then
		cat "$OUT/$name.txt"
	fi
done < "$OUT/traces.txt"
