#!/usr/bin/env bash
# make demo: the main job. On a fresh Debian machine it installs HAProxy if
# missing (apt-get, as root), brings up the local testbed (HAProxy in front
# of pools of job backends), starts `lbtune run` on it, sends load in
# phases, and prints the dashboard address. Where HAProxy cannot be
# installed or started, it runs the same daemon against a simulated cluster
# and says so. Ctrl-C stops the load, the daemon and the testbed, then
# writes PNG charts of the run and prints a one-screen summary (lbtune
# summary: requests, failed, p95 vs target, server-minutes, server-count
# changes, decisions by policy and outcome).
#
# The testbed's pools start with 2 of their 6 servers in service (the
# other 4 on standby). The load is quiet, ramps up to a busy phase and
# down in the first 2.5 minutes, then stays quiet (a 10-minute cycle): the
# tuner scales each pool out during the ramp (0:25-2:00 in), and the agent
# scales them back in once the busy phase has left its scale-in window
# (90 s here instead of 10 min): from about 4:50 in, a step at a time.
# LBTUNE_DEMO_DURATION=6m shows both.
#
# Environment: LBTUNE_DEMO_DIR (state, default /tmp/lbtune-demo),
# LBTUNE_DEMO_PORT (dashboard port, default 9464), LBTUNE_DEMO_SIM=1 (force
# the simulated cluster), LBTUNE_DEMO_DURATION (stop by itself after this
# long, e.g. 10m; default: until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin="$root/bin/lbtune"
dir=${LBTUNE_DEMO_DIR:-/tmp/lbtune-demo}
port=${LBTUNE_DEMO_PORT:-9464}
duration=${LBTUNE_DEMO_DURATION:-}
export PATH="$PATH:/usr/sbin:/sbin"

say() { printf 'demo: %s\n' "$*"; }

[ -x "$bin" ] || { say "building lbtune"; go build -o "$bin" ./cmd/lbtune; }

# 1. HAProxy: use it, install it, or fall back to the simulator.
mode=testbed
if [ "${LBTUNE_DEMO_SIM:-}" = 1 ]; then
  mode=sim
elif ! command -v haproxy >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing haproxy (apt-get)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; }; then
      mode=sim
    fi
    # The package starts a system HAProxy; the testbed runs its own.
    (systemctl stop haproxy || service haproxy stop) >/dev/null 2>&1 || true
  else
    mode=sim
  fi
  command -v haproxy >/dev/null 2>&1 || mode=sim
fi

# The shipped default model + policy (make model), when present.
model=""
policy="threshold fallback only (no datasets/default-agent.db: run 'make model')"
if [ -f "$root/datasets/default-agent.db" ]; then
  model="$root/datasets/default-agent.db"
  policy="trained default agent ($model) behind its threshold fallback"
fi

rm -rf "$dir"
mkdir -p "$dir"
head -c 24 /dev/urandom | base64 | tr -d '\n' >"$dir/lbtune.token"
chmod 600 "$dir/lbtune.token"

daemon_pid="" load_pid=""
cleanup() {
  trap - EXIT INT TERM
  echo
  if [ -n "$load_pid" ] && kill -INT "$load_pid" 2>/dev/null; then
    wait "$load_pid" 2>/dev/null || true # in-flight requests finish first
    say "load stopped: $(sed -n 's/.*"failures": *\([0-9]*\).*/\1/p' "$dir/load.json" | head -1) failed requests"
  fi
  summary_args=(--db "$dir/lbtune.db" --config "$dir/lbtune.yaml")
  [ -s "$dir/records.csv" ] && summary_args+=(--records "$dir/records.csv")
  if [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null; then
    wait "$daemon_pid" 2>/dev/null || true
    say "daemon stopped"
  fi
  if [ "$mode" = testbed ]; then
    "$bin" testbed down --dir "$dir/testbed" >/dev/null 2>&1 && say "testbed down"
  fi
  if "$bin" plot --db "$dir/lbtune.db" --out "$dir/plots" >"$dir/plots.txt" 2>&1; then
    say "charts of the run: $dir/plots/"
  fi
  if "$bin" summary "${summary_args[@]}" >"$dir/summary.txt" 2>&1; then
    say "summary (also in $dir/summary.txt):"
    echo
    cat "$dir/summary.txt"
  else
    say "no summary: $(tail -1 "$dir/summary.txt")"
  fi
  exit 0
}
trap cleanup EXIT INT TERM

# 2. The cluster and the daemon's configuration.
if [ "$mode" = testbed ]; then
  cat >"$dir/testbed.yaml" <<EOF
state_dir: $dir/testbed
balancers: [haproxy]
# 2 job slots per server: light serves 40 req/s per server (50 ms), heavy
# 10 (200 ms). 6 servers per pool, 4 of them on standby (HAProxy maint).
# Weight 100 is the agent's own scale: at 10, its first weight shift
# doubled the serving servers' weights (to move a fraction of one) while
# the standby servers kept 10, so the servers put back in service took
# half a share and light-1 got its full capacity's worth of the busy phase.
backend: {work: sleep, dist: exp, light_ms: 50, medium_ms: 100, heavy_ms: 200, queue: 200}
pools:
  - {name: light, min: 2, max: 6, servers: 6, standby: 4, concurrency: 2, speeds: [1], weight: 100}
  - {name: heavy, min: 2, max: 6, servers: 6, standby: 4, concurrency: 2, speeds: [1], weight: 100}
EOF
  if ! "$bin" testbed up --config "$dir/testbed.yaml" >"$dir/testbed.out" 2>&1; then
    say "HAProxy testbed did not start (see $dir/testbed.out): using the simulated cluster instead"
    "$bin" testbed down --dir "$dir/testbed" >/dev/null 2>&1 || true
    mode=sim
  fi
fi

if [ "$mode" = testbed ]; then
  source=$("$bin" testbed status --dir "$dir/testbed" --get haproxy.source)
  front=$("$bin" testbed status --dir "$dir/testbed" --get haproxy.addr)
  sock=${source#haproxy+unix://}
  # lbtune reads the pools through HAProxy's per-request log (syslog over
  # UDP): its p95 is the requests' own. The stats socket has only
  # per-server averages, from which a p95 is imputed (ln 20 x the mean),
  # and that under-read the clients' tail by up to 41% in a queueing
  # ramp (docs/RESULTS.md "Daemon"). The actuator still uses the socket.
  logsrc=$("$bin" testbed status --dir "$dir/testbed" --get haproxy.log_source 2>/dev/null || true)
  [ -n "$logsrc" ] && source=$logsrc
  cat >"$dir/lbtune.yaml" <<EOF
# Written by scripts/demo.sh: HAProxy testbed, 6 servers per pool of which
# 2 start in service; the tuner keeps as many in service as the load needs
# (standby scaling), never fewer than 2. A demo compresses time: the
# agent's scale-in window (10m by default), the guard's wait between a
# scale-up and a scale-in (5m) and a server's least lifetime (5m) are 90 s
# here, so a pool grows and shrinks back within the first five minutes.
# service_rate is each server's capacity (2 slots / mean job time); the
# targets leave room above HAProxy's p95 estimate of an idle server
# (ln 20 x the mean: 150 ms light, 600 ms heavy).
api: {listen: 127.0.0.1:$port, token_file: lbtune.token}
store: {path: lbtune.db}
model: {path: "$model", scale_in_window: 90s}
guard: {down_cooldown: 90s, min_lifetime: 90s}
# One scrape per decision: the agent takes the latest interval's rate for
# a count over the decision interval and leaves that much Poisson noise
# out of its forecast's sigma; under a 1 s scrape most of the noise of a
# 1 s count stayed in sigma (times the 2 min horizon's 24 steps), and the
# scale-in plans stayed at the pool's maximum for the whole 14 min run.
intervals: {scrape: 5s, scrape_timeout: 2s, decide: 5s}
sources:
  - {name: haproxy, uri: "$source"}
actuators:
  - name: haproxy
    haproxy: {socket: "$sock", standby: true}
pools:
  - name: light
    source: haproxy
    actuator: haproxy
    template: {min: 2, max: 6, target_seconds: 0.4, service_rate: 40, max_weight: 256}
  - name: heavy
    source: haproxy
    actuator: haproxy
    template: {min: 2, max: 6, target_seconds: 2, service_rate: 10, max_weight: 256}
EOF
  # Quiet (2 servers each suffice), a ramp up to a busy phase (80% of it
  # to light: about 4-5 servers' worth in each pool) and down, then quiet
  # long enough for the busy phase to leave the agent's 90 s scale-in
  # window. The ramp's steps load 2 servers to 50% then 85%: the pools grow
  # before a step can overload them (going from 60 to 130 req/s at once
  # queued heavy for the 30 s its threshold fallback took to react, and
  # 248 requests timed out). One cycle is 10 min, repeated.
  cat >"$dir/phases.yaml" <<'EOF'
- {duration: 15s,  rate: 20}
- {duration: 20s,  rate: 50}
- {duration: 45s,  rate: 85}
- {duration: 25s,  rate: 110}
- {duration: 30s,  rate: 130}
- {duration: 15s,  rate: 70}
- {duration: 450s, rate: 20}
EOF
  say "HAProxy testbed up: $front (pools light, heavy; 6 job backends each, 2 in service)"
  pool=light
else
  if [ "${LBTUNE_DEMO_SIM:-}" = 1 ]; then
    say "LBTUNE_DEMO_SIM=1: running against a SIMULATED cluster (no balancer; load phases at 10x speed)"
  else
    say "HAProxy is not available here: running against a SIMULATED cluster instead (no balancer; load phases at 10x speed)"
  fi
  pool=web
  "$bin" config example --sim | sed -e "s/127.0.0.1:9464/127.0.0.1:$port/" -e "s|^  path: \"\"|  path: \"$model\"|" >"$dir/lbtune.yaml"
fi
"$bin" config check "$dir/lbtune.yaml" >/dev/null

# 3. The daemon, then the load.
start_daemon() {
  "$bin" run --config "$dir/lbtune.yaml" >"$dir/lbtune.out" 2>"$dir/lbtune.log" &
  daemon_pid=$!
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$daemon_pid" 2>/dev/null || { daemon_pid=""; return 1; }
    sleep 0.1
  done
  return 1
}
if ! start_daemon; then
  say "lbtune run failed: $(tail -1 "$dir/lbtune.log")"
  if [ -z "$model" ]; then exit 1; fi
  say "retrying without the default model: the threshold fallback decides"
  sed -i "s|\"$model\"|\"\"|" "$dir/lbtune.yaml"
  model="" policy="threshold fallback only (the default model did not load; see above)"
  start_daemon || { say "lbtune run failed again: $(tail -1 "$dir/lbtune.log")"; exit 1; }
fi
if [ "$mode" = testbed ]; then
  "$bin" load --mix "/light=80,/heavy=20" --base "http://$front" --phases "$dir/phases.yaml" \
    --duration "${duration:-24h}" --out "$dir/records.csv" --json >"$dir/load.json" 2>"$dir/load.log" &
  load_pid=$!
fi

cat <<EOF

  dashboard   http://127.0.0.1:$port/
  API         curl http://127.0.0.1:$port/v1/policy   (and /v1/state, /v1/decisions?since=10m, /metrics)
  commands    LBTUNE_ADDR=127.0.0.1:$port LBTUNE_TOKEN_FILE=$dir/lbtune.token $bin mode manual
              ... $bin scale $pool +1 | pool pause $pool | mode auto
  logs        $dir/lbtune.log
  cluster     $mode
  policy      $policy

Ctrl-C stops the load, the daemon and the cluster.
EOF

if [ -n "$duration" ]; then
  sleep "$duration" &
  wait $! || true
else
  wait "$daemon_pid" || true
fi
