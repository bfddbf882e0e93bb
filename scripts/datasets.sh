#!/bin/sh
# datasets.sh: re-record the training datasets in datasets/ (make datasets).
#
# Each dataset runs its own local testbed (lbtune testbed up: real HAProxy or
# NGINX in front of light/medium/heavy pools of lbtune backend processes),
# records the balancer at 1 s (lbtune record), drives it with open-loop load
# (lbtune load: phases with spikes, or a real trace), and makes scripted
# exploratory weight changes (lbtune testbed explore), logged as events that
# end up inside the dataset file. The three run in parallel.
#
# Needs /usr/sbin/haproxy and /usr/sbin/nginx. Environment:
#   LBTUNE            lbtune binary (bin/lbtune)
#   DATASET_DURATION  length of each recording (21m)
#   DATASET_OUT       output directory (datasets)
#   DATASET_WORK      scratch directory for stores, logs, testbed state (mktemp)
#   DATASET_ONLY      record only this dataset name
set -eu
cd "$(dirname "$0")/.."
LBTUNE=${LBTUNE:-bin/lbtune}
DUR=${DATASET_DURATION:-21m}
OUT=${DATASET_OUT:-datasets}
WORK=${DATASET_WORK:-$(mktemp -d /tmp/lbtune-datasets.XXXXXX)}
ONLY=${DATASET_ONLY:-}
MIX="/light=60,/medium=30,/heavy=10"
mkdir -p "$OUT" "$WORK"
echo "datasets: scratch in $WORK, $DUR each"

# record NAME BALANCER EXPLORE_EVERY SEED DESCRIPTION LOAD_ARGS...
record() {
	name=$1 balancer=$2 every=$3 seed=$4 desc=$5
	shift 5
	if [ -n "$ONLY" ] && [ "$ONLY" != "$name" ]; then return 0; fi
	dir=$WORK/$name
	mkdir -p "$dir"
	printf 'state_dir: %s\nbalancers: [%s]\n' "$dir/testbed" "$balancer" >"$dir/testbed.yaml"
	"$LBTUNE" testbed up --config "$dir/testbed.yaml" >"$dir/up.txt" 2>"$dir/up.log"
	addr=$("$LBTUNE" testbed status --config "$dir/testbed.yaml" --get "$balancer.addr")
	source=$("$LBTUNE" testbed status --config "$dir/testbed.yaml" --get "$balancer.source")
	echo "datasets: $name: $balancer on $addr, recording $source"

	# Recorder first (it owns the UDP port NGINX logs to), then load and explorer.
	"$LBTUNE" record --source "$source" --db "$dir/store.db" --interval 1s --duration "$DUR" >"$dir/record.log" 2>&1 &
	rec=$!
	sleep 2
	"$LBTUNE" load --mix "$MIX" --base "http://$addr" --duration "$DUR" --seed "$seed" --json "$@" >"$dir/load.json" 2>"$dir/load.log" &
	load=$!
	"$LBTUNE" testbed explore --dir "$dir/testbed" --balancer "$balancer" --every "$every" --duration "$DUR" \
		--max-weight 30 --seed "$seed" --events "$dir/events.jsonl" 2>"$dir/explore.log" &
	explore=$!

	status=0
	wait $load || status=1
	wait $explore || status=1
	wait $rec || status=1
	"$LBTUNE" testbed down --config "$dir/testbed.yaml" >>"$dir/up.txt" 2>&1 || status=1
	if [ $status -ne 0 ]; then
		echo "datasets: $name FAILED (logs in $dir)" >&2
		return 1
	fi

	# Events into the store, then one dataset file with snapshots and events.
	"$LBTUNE" dataset import --db "$dir/store.db" "$dir/events.jsonl" >/dev/null
	"$LBTUNE" dataset export --db "$dir/store.db" --out "$OUT/$name.jsonl.gz" \
		--description "$desc; load: lbtune load --mix $MIX $*; weights: lbtune testbed explore --balancer $balancer --every $every --max-weight 30 --seed $seed (see datasets/README.md)"
	# The load summary (per-second achieved rate included), without the bulky per-request data.
	cp "$dir/load.json" "$OUT/$name.load.json"
	"$LBTUNE" dataset info "$OUT/$name.jsonl.gz"
}

PHASES=scripts/datasets-phases.yaml
TRACE=../shared/traces/worldcup98-1998-06-per-min.csv

record haproxy-phases haproxy 20s 1 \
	"HAProxy 2.6 testbed (admin socket), pools light/medium/heavy, phases with spikes, random weight changes every 20 s" \
	--phases "$PHASES" &
p1=$!
record nginx-phases nginx 30s 2 \
	"NGINX 1.22 testbed (access log via UDP syslog), pools light/medium/heavy, phases with spikes, random weight changes every 30 s (re-render + reload)" \
	--phases "$PHASES" &
p2=$!
record haproxy-worldcup haproxy 20s 3 \
	"HAProxy 2.6 testbed, WorldCup98 10 Jun 1998 trace (per minute, 60x faster, rate x0.06), random weight changes every 20 s" \
	--trace "$TRACE" --speedup 60 --scale 0.06 &
p3=$!

fail=0
wait $p1 || fail=1
wait $p2 || fail=1
wait $p3 || fail=1
exit $fail
