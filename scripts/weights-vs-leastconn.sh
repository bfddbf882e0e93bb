#!/usr/bin/env bash
# Learned weights against what operators use today (issue 18, section 5).
#
# One pool of three `lbtune backend` servers at speeds 1:2:4 (2 job slots
# each, exponential 100 ms jobs at speed 1, so 20, 40 and 80 req/s: 140
# req/s in all) behind a real HAProxy on 127.0.0.1. For each load level
# (a share of those 140 req/s) it runs, one after the other, the same
# seeded Poisson arrivals (`lbtune load --seed`) through:
#
#   equal       balance roundrobin, weights 100:100:100
#   static      balance roundrobin, each weight set of a small grid around
#               the capacity-proportional 25:50:100 (the best is "best static")
#   leastconn   balance leastconn, equal weights (what operators use)
#   leastconn-w balance leastconn, capacity-proportional weights 25:50:100
#   learned     balance roundrobin from equal weights, `lbtune run` in auto
#               mode with the shipped agent (datasets/default-agent.db)
#               changing weights over HAProxy's runtime API: a warm-up with
#               the same arrivals, then the measured cell
#   learned-lc  the same, on balance leastconn: the agent's weights on top
#               of leastconn (HAProxy's leastconn divides by the weights)
#
# Every cell starts a fresh testbed (empty queues) and is scored from the
# load generator's own summary (client side): requests, failed, mean, p95,
# p99; the servers' request shares come from its per-request records and
# the weights in force at the end from HAProxy's stats page.
#
# With LBTUNE_WL_BALANCER=nginx the same pool sits behind a real NGINX
# instead (the testbed's, its access log over UDP syslog to the daemon's
# nginxlog source): balance roundrobin is NGINX's weighted round robin,
# leastconn its `least_conn`, and the learned cells run the daemon with an
# NGINX actuator owning the upstream (it writes the configured upstream,
# equal weights, at start: `nginx -t`, reload), so the weights in force at
# the end are read from the rendered include. One more policy there:
#
#   learned-auto the upstream with `method: auto`: round robin until the
#               agent's balance advice (agent.AdviseBalance) switches it
#               to least_conn itself, weights by the agent throughout
#
# For every learned cell on NGINX $dir/switch.tsv says whether and when the
# upstream switched: the method in the include at the end, the first and
# last decision advising leastconn (seconds after the daemon started) and
# how many, and the daemon's "nginx balancing method set" and "nginx
# reloaded" log lines.
#
# Environment: LBTUNE_WL_DIR (default /tmp/lbtune-wl), LBTUNE_WL_LOADS
# (percent of capacity, default "50 70 85"), LBTUNE_WL_CELL (seconds
# measured per cell, default 60), LBTUNE_WL_WARMUP (the learned cell's
# warm-up in seconds, default 150), LBTUNE_WL_SEED (arrivals, default 1),
# LBTUNE_WL_GRID (static weight sets, default "25:50:100 18:45:100 10:35:100"),
# LBTUNE_WL_POLICIES (default "equal static leastconn leastconn-w learned
# learned-lc"),
# LBTUNE_WL_PORT (the daemon's API port, default 9471), LBTUNE_WL_BALANCER
# (haproxy, the default, or nginx).
# Results: $dir/results.tsv and a markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin="$root/bin/lbtune"
dir=${LBTUNE_WL_DIR:-/tmp/lbtune-wl}
loads=${LBTUNE_WL_LOADS:-50 70 85}
cell=${LBTUNE_WL_CELL:-60}
warmup=${LBTUNE_WL_WARMUP:-150}
seed=${LBTUNE_WL_SEED:-1}
grid=${LBTUNE_WL_GRID:-25:50:100 18:45:100 10:35:100}
policies=${LBTUNE_WL_POLICIES:-equal static leastconn leastconn-w learned learned-lc}
port=${LBTUNE_WL_PORT:-9471}
balancer=${LBTUNE_WL_BALANCER:-haproxy}
model="$root/datasets/default-agent.db"
capacity=140 # req/s: 2 slots x (1 + 2 + 4) / 100 ms
export PATH="$PATH:/usr/sbin:/sbin"

say() { printf 'weights-vs-leastconn: %s\n' "$*" >&2; }

case $balancer in
  haproxy | nginx) ;;
  *) say "LBTUNE_WL_BALANCER=$balancer: want haproxy or nginx"; exit 2 ;;
esac

go build -o "$bin" ./cmd/lbtune
[ -f "$model" ] || { say "no $model (make model)"; exit 1; }
mkdir -p "$dir"
results="$dir/results.tsv"
printf 'load_pct\trate\tpolicy\tweights_end\trequests\tfailed\tmean_ms\tp95_ms\tp99_ms\tachieved\tshare_s1_s2_s4\n' >"$results"
switches="$dir/switch.tsv"
if [ "$balancer" = nginx ]; then
  printf 'load_pct\tpolicy\tmethod_end\tdecisions\tadvise_leastconn\tfirst_advice_s\tlast_advice_s\tmethod_set_s\treloads\trolled_back\n' >"$switches"
fi

tb="" daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=""
  fi
  if [ -n "$tb" ]; then
    "$bin" testbed down --dir "$tb" >/dev/null 2>&1 || say "testbed down $tb failed"
    tb=""
  fi
}
trap cleanup EXIT INT TERM

# up BALANCE W1:W2:W4 CELLDIR: a fresh testbed, its state dir in $tb.
up() {
  local balance=$1 weights=$2 cdir=$3
  tb="$cdir/testbed"
  cat >"$cdir/testbed.yaml" <<EOF
state_dir: $tb
balancers: [$balancer]
haproxy: {log_requests: false}
backend: {work: sleep, dist: exp, light_ms: 100, medium_ms: 100, heavy_ms: 100, queue: 100}
pools:
  - {name: web, min: 3, max: 3, servers: 3, concurrency: 2, speeds: [1, 2, 4], weights: [${weights//:/, }], balance: $balance}
EOF
  "$bin" testbed up --config "$cdir/testbed.yaml" >"$cdir/testbed.out" 2>&1
}

# load RATE SECONDS OUTPREFIX: the seeded arrivals against the testbed.
load() {
  local front
  front=$("$bin" testbed status --dir "$tb" --get "$balancer.addr")
  timeout $(($2 + 60)) nice -n 5 "$bin" load --target "http://$front/light" --rate "$1" --duration "${2}s" \
    --seed "$seed" --out "$3.csv" --json >"$3.json" 2>"$3.log"
}

# weights: the servers' weights now, from HAProxy's stats CSV (s1:s2:s4),
# or on NGINX from the upstream's include file (servers by address).
weights() {
  local url
  if [ "$balancer" = nginx ]; then
    jq -r '.backends[] | select(.pool == "web") | .addr' "$tb/state.json" |
      awk 'NR == FNR {a[$1] = NR; next} $1 == "server" && ($2 in a) {for (i = 3; i <= NF; i++) if ($i ~ /^weight=/) {v = $i; sub(/^weight=/, "", v); sub(/;.*/, "", v); w[a[$2]] = v}}
        END {printf "%s:%s:%s", w[1], w[2], w[3]}' - "$(jq -r .nginx.include "$tb/state.json")"
    return
  fi
  url=$(jq -r .haproxy.stats_url "$tb/state.json")
  curl -fsS "$url" | awk -F, '$1 == "web" && $2 ~ /^web-/ {w[$2] = $19} END {printf "%s:%s:%s", w["web-1"], w["web-2"], w["web-3"]}'
}

# row LOAD RATE POLICY WEIGHTS PREFIX: one line of results.tsv.
row() {
  local shares
  shares=$(awk -F, 'NR > 1 {n[$7]++; t++} END {printf "%.2f:%.2f:%.2f", n["web-1"]/t, n["web-2"]/t, n["web-3"]/t}' "$5.csv")
  jq -r --arg l "$1" --arg r "$2" --arg p "$3" --arg w "$4" --arg s "$shares" \
    '[$l, $r, $p, $w, .requests, .failures, (.mean_ms|round), (.p95_ms|round), (.p99_ms|round), (.rate_achieved*10|round/10), $s] | @tsv' \
    "$5.json" >>"$results"
}

# daemon CELLDIR [METHOD]: lbtune run in auto mode on the testbed's pool;
# on NGINX its actuator owns the upstream with METHOD ("", least_conn or
# auto).
daemon() {
  local cdir=$1 method=${2:-} source sock actuator
  head -c 24 /dev/urandom | base64 | tr -d '\n' >"$cdir/lbtune.token"
  chmod 600 "$cdir/lbtune.token"
  if [ "$balancer" = nginx ]; then
    source=$("$bin" testbed status --dir "$tb" --get nginx.source)
    # The testbed rendered the include; removed, the daemon writes its
    # configured upstream (equal weights, METHOD) at start instead of
    # adopting the testbed's round robin as it is.
    rm -f "$(jq -r .nginx.include "$tb/state.json")"
    actuator=$(jq -r --arg m "$method" '.nginx as $n | [.backends[] | select(.pool == "web") | .addr | @json] | join(", ") as $s |
      "nginx: {conf: \($n.config | @json), include: \($n.include | @json), pid_file: \($n.pid_file | @json), prefix: \($n.prefix | @json), upstreams: [{name: web, method: \($m | @json), servers: [\($s)]}]}"' "$tb/state.json")
  else
    source=$("$bin" testbed status --dir "$tb" --get haproxy.source)
    sock=$("$bin" testbed status --dir "$tb" --get haproxy.socket)
    actuator="haproxy: {socket: \"$sock\"}"
  fi
  # service_rate: the pool's 140 req/s over its 3 servers; a p95 target of
  # 5x the mean job time at speed 1. Min = max = 3: only weights change.
  cat >"$cdir/lbtune.yaml" <<EOF
api: {listen: 127.0.0.1:$port, token_file: lbtune.token}
store: {path: lbtune.db}
model: {path: "$model"}
intervals: {scrape: 5s, scrape_timeout: 2s, decide: 5s}
sources:
  - {name: $balancer, uri: "$source"}
actuators:
  - name: $balancer
    $actuator
pools:
  - name: web
    source: $balancer
    actuator: $balancer
    template: {min: 3, max: 3, target_seconds: 0.5, service_rate: 46.67, max_weight: 256}
EOF
  "$bin" config check "$cdir/lbtune.yaml" >/dev/null
  "$bin" run --config "$cdir/lbtune.yaml" >"$cdir/lbtune.out" 2>"$cdir/lbtune.log" &
  daemon_pid=$!
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$daemon_pid" 2>/dev/null || { daemon_pid=""; say "lbtune run died: $(tail -1 "$cdir/lbtune.log")"; return 1; }
    sleep 0.1
  done
  say "lbtune run did not answer"
  return 1
}

# switched LOAD POLICY CELLDIR STARTED: one line of switch.tsv (NGINX): the
# method in the include at the end; the decisions (warm-up and cell), how
# many advised leastconn, the first and last of them, and the first
# "nginx balancing method set" log line, in seconds after STARTED (the
# daemon answering); the "nginx reloaded" and "rolled back" log lines.
switched() {
  local inc method first set
  inc=$(jq -r .nginx.include "$tb/state.json")
  method=roundrobin
  grep -q '^ *least_conn;' "$inc" && method=least_conn
  first=$(jq -r --arg t0 "$4" '[.[] | select(.balance == "leastconn") | .time | sub("\\.[0-9]+"; "") | fromdateiso8601 - ($t0 | tonumber)] |
    [length, (if length > 0 then (first | round) else "-" end), (if length > 0 then (last | round) else "-" end)] | map(tostring) | join("\t")' \
    "$3/decisions.json" 2>/dev/null || printf '?\t?\t?')
  set=$(grep -m1 'msg="nginx balancing method set"' "$3/lbtune.log" | sed -n 's/^time=\([^ ]*\) .*/\1/p' || true)
  [ -n "$set" ] && set=$(awk -v a="$(date -d "$set" +%s.%N)" -v b="$4" 'BEGIN {printf "%.0f", a - b}') || set=-
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$method" "$(jq length "$3/decisions.json" 2>/dev/null || echo '?')" \
    "$first" "$set" "$(grep -c 'msg="nginx reloaded"' "$3/lbtune.log" || true)" "$(grep -c 'rolled back' "$3/lbtune.log" || true)" >>"$switches"
  tail -1 "$switches" >&2
}

say "start $(date -u +%H:%M:%S) UTC, $(uptime)"
for pct in $loads; do
  rate=$(awk -v c="$capacity" -v p="$pct" 'BEGIN {printf "%g", c * p / 100}')
  for policy in $policies; do
    case $policy in
      equal) sets="roundrobin/100:100:100" ;;
      static) sets=""; for w in $grid; do sets="$sets roundrobin/$w"; done ;;
      leastconn) sets="leastconn/100:100:100" ;;
      leastconn-w) sets="leastconn/25:50:100" ;;
      learned) sets="roundrobin/100:100:100" ;;
      learned-lc) sets="leastconn/100:100:100" ;;
      learned-auto)
        [ "$balancer" = nginx ] || { say "learned-auto needs LBTUNE_WL_BALANCER=nginx (HAProxy's algorithm is the operator's)"; exit 2; }
        sets="roundrobin/100:100:100"
        ;;
      *) say "unknown policy $policy"; exit 2 ;;
    esac
    for set in $sets; do
      balance=${set%%/*} w=${set#*/}
      name=$policy
      [ "$policy" = static ] && name="static $w"
      cdir="$dir/$pct/${policy}-${w//:/-}"
      rm -rf "$cdir" && mkdir -p "$cdir"
      say "load ${pct}% ($rate req/s): $name ($balance), $(uptime | sed "s/.*load average/load average/")"
      up "$balance" "$w" "$cdir"
      if [ "${policy#learned}" != "$policy" ]; then
        method=""
        [ "$policy" = learned-lc ] && method=least_conn
        [ "$policy" = learned-auto ] && method=auto
        daemon "$cdir" "$method"
        started=$(date +%s.%N)
        load "$rate" "$warmup" "$cdir/warmup"
        say "  after warm-up: weights $(weights)"
      fi
      load "$rate" "$cell" "$cdir/load"
      end=$(weights)
      if [ "${policy#learned}" != "$policy" ]; then
        curl -fsS "http://127.0.0.1:$port/v1/decisions?since=1h" >"$cdir/decisions.json" || say "no decisions from the daemon"
        kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
        daemon_pid=""
        [ "$balancer" = nginx ] && switched "$pct" "$policy" "$cdir" "$started"
        "$bin" summary --db "$cdir/lbtune.db" --config "$cdir/lbtune.yaml" --records "$cdir/load.csv" >"$cdir/summary.txt" 2>&1 || true
      fi
      row "$pct" "$rate" "$name" "$end" "$cdir/load"
      cleanup
      tail -1 "$results" >&2
    done
  done
done
say "end $(date -u +%H:%M:%S) UTC, $(uptime)"

# The table for docs/RESULTS.md.
echo "| load | policy | weights (end) | requests | failed | mean ms | p95 ms | p99 ms | share s1:s2:s4 |"
echo "|---|---|---|---:|---:|---:|---:|---:|---|"
awk -F'\t' 'NR > 1 {printf "| %s%% (%s req/s) | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $11}' "$results"
if [ "$balancer" = nginx ] && [ "$(wc -l <"$switches")" -gt 1 ]; then
  echo
  echo "| load | policy | method at the end | decisions | advising leastconn | first, last (s after start) | method set (s) | reloads | rolled back |"
  echo "|---|---|---|---:|---:|---|---:|---:|---:|"
  awk -F'\t' 'NR > 1 {printf "| %s%% | %s | %s | %s | %s | %s, %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10}' "$switches"
fi
