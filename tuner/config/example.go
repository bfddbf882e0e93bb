package config

// Example returns a complete, commented, valid lbtune.yaml. With sim, the
// pools are simulated clusters driven by synthetic load phases, so the
// daemon runs end to end with no balancer; without, the pools are HAProxy
// backends whose servers are local processes.
func Example(sim bool) string {
	if sim {
		return exampleHead + exampleSim
	}
	return exampleHead + exampleReal
}

const exampleHead = `# lbtune.yaml: configuration of the online tuner (lbtune run).
# Durations are Go durations (500ms, 15s, 1h); relative paths are relative
# to this file. Unknown keys are errors: 'lbtune config check FILE'.

api:
  # HTTP API, /metrics and the dashboard. Keep it on 127.0.0.1 unless a
  # proxy in front of it authenticates users.
  listen: 127.0.0.1:9464
  # Bearer token for POST requests (mode, scale, pause, nodes, templates).
  # Empty: every mutation is refused.
  token_file: lbtune.token

store:
  # bbolt file: snapshots, decisions, rewards, daemon state.
  path: lbtune.db
  # Snapshots older than this are pruned (0 keeps everything).
  retention: 168h

model:
  # Model + policy written by 'lbtune train'. Empty: threshold fallback only.
  path: ""
  # Online learning (needs a model): each pool in auto mode explores
  # epsilon-greedily (the guard still clamps every decision; explored
  # decisions say "explore" in their reason), learns from the rewards it
  # observes in its own copy of the policy, saves it to the store as a new
  # version every save_every and at shutdown, and resumes from it on restart.
  learning:
    enabled: false
    epsilon: 0.1       # starting exploration rate, 0..1
    decay: 0.99        # epsilon x decay at each headroom-level choice (every 20 decisions), (0, 1]
    min_epsilon: 0.02  # floor of the decay, 0..epsilon
    save_every: 10m    # pool time (simulated time for a simulated pool)

intervals:
  scrape: 1s           # collector period
  scrape_timeout: 800ms # at most the scrape period
  decide: 5s           # decision period, at least the scrape period

# Starting mode of every pool: auto (decide and apply), shadow (decide and
# explain, change nothing), manual (only operator +1/-1), fallback-only
# (threshold fallback decides and applies). 'lbtune mode' switches it live.
mode: auto

# reward per 30 s = -(latency x latency penalty against the target + errors x error
# ratio + server_cost x servers on + 4 x [p95 over the target]); see template.objective
reward:
  latency: 1
  errors: 10
  server_cost: 0.05

# Safety limits on every automatic decision (manual +1/-1 obey only the
# template's min and max). Every clamp is recorded with its reason.
guard:
  up_cooldown: 30s     # least time between two scale-ups
  down_cooldown: 5m    # least time between a scale-up and a scale-in
  max_step_up: 10      # servers added per decision at most
  max_step_down: 2     # servers removed per decision at most
  spike_hold: 5s       # a scale-up must be asked for this long: shorter spikes are ignored
  min_lifetime: 5m     # a server runs this long before it may be removed
`

const exampleReal = `
# Where snapshots come from: collector source URIs.
sources:
  - name: haproxy
    uri: haproxy+unix:///run/haproxy/admin.sock
  # - name: nginx
  #   uri: nginxlog+udp://127.0.0.1:5514

# How decisions are applied.
actuators:
  - name: haproxy            # weights, drain, add/del server over the runtime API
    haproxy:
      socket: /run/haproxy/admin.sock
  - name: local              # local backend processes registered in HAProxy
    fleet:
      balancer: haproxy
  # - name: nginx            # render upstreams, nginx -t, graceful reload, rollback
  #   nginx:
  #     conf: /etc/nginx/nginx.conf
  #     include: /etc/nginx/conf.d/lbtune-upstreams.conf   # lbtune owns this file
  #     pid_file: /run/nginx.pid
  #     upstreams:
  #       - {name: light, method: auto, servers: [127.0.0.1:8081, 127.0.0.1:8082]}   # auto: least_conn when the servers are unequal
  # - name: cloud            # an Auto Scaling group (or launch_template for EC2)
  #   aws:
  #     region: eu-west-1
  #     asg: web-light
  #     port: 8080
  #     balancer: haproxy

pools:
  - name: light              # HAProxy backend name
    source: haproxy
    actuator: local
    template:
      min: 2
      max: 20
      # Starts one server; {port} is a free loopback port.
      command: lbtune backend --listen 127.0.0.1:{port} --concurrency 8
      target_seconds: 0.25   # p95 response-time target, seconds
      service_rate: 0        # req/s of one server; 0 = learn it online
      max_weight: 256        # HAProxy 256, NGINX 1000
      sizes:
        - {name: small, speed: 1, concurrency: 8}
      # What the agent minimises for this pool: the price of one server
      # for one hour against the cost of a minute whose p95 misses the
      # target (0 keeps the defaults: reward.server_cost x 120, and 8).
      objective: {server_hour: 6, violation_minute: 8}
      # The threshold fallback's settings; omitted keys keep the defaults
      # (lbtune policy show --config lists them per pool).
      fallback: {util_high: 0.8, util_low: 0.3, grow_ratio: 2, shrink_ratio: 0.5, reserve: 2}
  - name: heavy
    source: haproxy
    actuator: local
    mode: shadow             # this pool only explains what it would do
    template:
      min: 1
      max: 10
      command: lbtune backend --listen 127.0.0.1:{port} --concurrency 4 --heavy-ms 80
      target_seconds: 1.5
      max_weight: 256
      sizes:
        - {name: large, speed: 2, concurrency: 4}
`

const exampleSim = `
# No balancer: each pool is a simulated cluster (source and actuator at
# once), driven by a trace or synthetic phases at a speed-up. Use it to
# rehearse a policy, or where HAProxy cannot run.
pools:
  - name: web
    sim:
      # trace: ../shared/traces/worldcup98-1998-06-per-min.csv
      phases:                # repeated; simulated time
        - {duration: 10m, rps: 15}
        - {duration: 10m, rps: 60}
        - {duration: 5m, rps: 120}
        - {duration: 10m, rps: 30}
      speedup: 10            # simulated seconds per wall-clock second
      scale: 1               # multiplies the rates
      service_ms: 100        # mean service time on a reference server
      boot_delay: 60s        # simulated boot time of a new server
      servers: 2
      seed: 1
    template:
      min: 1
      max: 20
      target_seconds: 0.5
      max_weight: 256
      sizes:
        - {name: small, speed: 1, concurrency: 1}
`
