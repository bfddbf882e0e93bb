package testbed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/lbtune/lbtune/actuator/haproxy"
)

// Config describes a testbed: which balancers to run, where to keep state,
// and the pools of job backends behind them. Start from DefaultConfig.
type Config struct {
	// StateDir holds the generated configs, logs and the state file.
	StateDir string `yaml:"state_dir"`
	// Balancers lists the balancers to start: "haproxy", "nginx" or both.
	Balancers []string `yaml:"balancers"`
	// HAProxy and NGINX configure the balancers; port 0 picks a free port.
	HAProxy HAProxyConfig `yaml:"haproxy"`
	NGINX   NGINXConfig   `yaml:"nginx"`
	// Backend is how each job backend is started.
	Backend BackendConfig `yaml:"backend"`
	// Pools are the upstream groups, each its own job class.
	Pools []PoolConfig `yaml:"pools"`
}

// HAProxyConfig configures the HAProxy balancer.
type HAProxyConfig struct {
	Bin string `yaml:"bin"`
	// Port is the frontend port clients use (0 = any free port).
	Port int `yaml:"port"`
	// StatsPort serves the stats page (/stats, /stats;csv); 0 = any free port.
	StatsPort int `yaml:"stats_port"`
	// LogRequests writes an `option httplog` line per request to haproxy.log
	// and sends it over UDP syslog to SyslogPort.
	LogRequests bool `yaml:"log_requests"`
	// SyslogPort is the UDP port HAProxy sends its request log to, where
	// `lbtune record --source haproxylog+udp://127.0.0.1:PORT` listens (0 =
	// any free port).
	SyslogPort int `yaml:"syslog_port"`
}

// NGINXConfig configures the NGINX balancer.
type NGINXConfig struct {
	Bin  string `yaml:"bin"`
	Port int    `yaml:"port"`
	// SyslogPort is the UDP port NGINX sends its access log to, where
	// `lbtune record --source nginxlog+udp://127.0.0.1:PORT` listens (0 = any free port).
	SyslogPort int `yaml:"syslog_port"`
}

// BackendConfig says how to run one job backend (lbtune backend).
type BackendConfig struct {
	// Command is the lbtune binary; "" means the running executable.
	Command string `yaml:"command"`
	// Work is cpu or sleep.
	Work string `yaml:"work"`
	// Dist is the service-time distribution.
	Dist string `yaml:"dist"`
	// LightMs, MediumMs, HeavyMs are the mean service times at speed 1.
	LightMs  float64 `yaml:"light_ms"`
	MediumMs float64 `yaml:"medium_ms"`
	HeavyMs  float64 `yaml:"heavy_ms"`
	// Queue is each backend's wait-queue bound.
	Queue int `yaml:"queue"`
}

// PoolConfig is one pool (upstream group / HAProxy backend).
type PoolConfig struct {
	// Name is the pool's name and the path prefix routed to it (/light).
	Name string `yaml:"name"`
	// Min and Max are the node limits the tuner must respect.
	Min int `yaml:"min"`
	Max int `yaml:"max"`
	// Servers is how many backends start.
	Servers int `yaml:"servers"`
	// Concurrency is each backend's job slots: the VM size.
	Concurrency int `yaml:"concurrency"`
	// Speeds are the backends' speed factors, cycled over the servers, so a
	// pool can mix fast and slow machines.
	Speeds []float64 `yaml:"speeds"`
	// Weight is every server's initial weight.
	Weight int `yaml:"weight"`
	// Weights, when given, are the servers' initial weights, cycled over
	// the servers like Speeds (so [1, 2, 4] with speeds [1, 2, 4] starts
	// the pool at capacity-proportional weights); they replace Weight,
	// which may then be left out.
	Weights []int `yaml:"weights"`
	// Balance is the balancing algorithm: "roundrobin" (the default; NGINX's
	// weighted round robin) or "leastconn" (HAProxy `balance leastconn`,
	// NGINX `least_conn`). Runtime weights work under both.
	Balance string `yaml:"balance"`
	// Standby is how many of the pool's servers, the last started, HAProxy
	// starts in maintenance: running but out of service, for a tuner that
	// scales by moving servers between service and standby (lbtune.yaml
	// `haproxy: {standby: true}`). 0 serves every server. HAProxy only.
	Standby int `yaml:"standby"`
}

// DefaultConfig returns the testbed of the issue: HAProxy and NGINX in front
// of pools light/medium/heavy with node limits 20/15/10, different VM sizes
// (8/4/2 slots) and mixed speeds inside each pool, all starting at equal
// weights (so a tuner has something to learn). Jobs sleep, so a pool's
// capacity is slots x speed / mean service time whatever the 2 cores do.
func DefaultConfig() Config {
	return Config{
		StateDir:  filepath.Join(os.TempDir(), "lbtune-testbed"),
		Balancers: []string{"haproxy", "nginx"},
		HAProxy:   HAProxyConfig{Bin: "/usr/sbin/haproxy", LogRequests: true},
		NGINX:     NGINXConfig{Bin: "/usr/sbin/nginx"},
		Backend:   BackendConfig{Work: "sleep", Dist: "exp", LightMs: 5, MediumMs: 20, HeavyMs: 80, Queue: 100},
		Pools: []PoolConfig{
			{Name: "light", Min: 1, Max: 20, Servers: 3, Concurrency: 8, Speeds: []float64{2, 1, 1}, Weight: 10},
			{Name: "medium", Min: 1, Max: 15, Servers: 3, Concurrency: 4, Speeds: []float64{2, 1, 0.5}, Weight: 10},
			{Name: "heavy", Min: 1, Max: 10, Servers: 2, Concurrency: 2, Speeds: []float64{1, 0.5}, Weight: 10},
		},
	}
}

// Has reports whether balancer b ("haproxy" or "nginx") is configured.
func (c Config) Has(b string) bool {
	for _, x := range c.Balancers {
		if x == b {
			return true
		}
	}
	return false
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.StateDir == "" {
		errs = append(errs, errors.New("state_dir is empty"))
	}
	if len(c.Balancers) == 0 {
		errs = append(errs, errors.New("balancers: want haproxy, nginx or both"))
	}
	for _, b := range c.Balancers {
		if b != "haproxy" && b != "nginx" {
			errs = append(errs, fmt.Errorf("balancer %q: want haproxy or nginx", b))
		}
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"haproxy.port", c.HAProxy.Port}, {"haproxy.stats_port", c.HAProxy.StatsPort}, {"haproxy.syslog_port", c.HAProxy.SyslogPort}, {"nginx.port", c.NGINX.Port}, {"nginx.syslog_port", c.NGINX.SyslogPort}} {
		if p.v < 0 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("%s %d: outside 0..65535", p.name, p.v))
		}
	}
	if c.Backend.Work != "cpu" && c.Backend.Work != "sleep" {
		errs = append(errs, fmt.Errorf("backend.work %q: want cpu or sleep", c.Backend.Work))
	}
	if c.Backend.LightMs < 0 || c.Backend.MediumMs < 0 || c.Backend.HeavyMs < 0 || c.Backend.Queue < 0 {
		errs = append(errs, errors.New("backend: service times and queue must not be negative"))
	}
	if len(c.Pools) == 0 {
		errs = append(errs, errors.New("pools: none configured"))
	}
	seen := map[string]bool{}
	for _, p := range c.Pools {
		if p.Name == "" || strings.ContainsAny(p.Name, " \t/{};#'\"") || seen[p.Name] {
			errs = append(errs, fmt.Errorf("pool name %q: empty, repeated or not a plain word", p.Name))
		}
		seen[p.Name] = true
		if p.Servers < 1 || p.Min < 0 || p.Max < p.Servers || p.Min > p.Servers {
			errs = append(errs, fmt.Errorf("pool %s: want 0 <= min (%d) <= servers (%d) <= max (%d) and servers >= 1", p.Name, p.Min, p.Servers, p.Max))
		}
		if p.Concurrency < 0 {
			errs = append(errs, fmt.Errorf("pool %s: concurrency %d must not be negative", p.Name, p.Concurrency))
		}
		for _, s := range p.Speeds {
			if !(s > 0) {
				errs = append(errs, fmt.Errorf("pool %s: speed %v must be positive", p.Name, s))
			}
		}
		if p.Standby < 0 || (p.Standby > 0 && p.Standby >= p.Servers) {
			errs = append(errs, fmt.Errorf("pool %s: standby %d must be in 0..servers-1 (%d)", p.Name, p.Standby, p.Servers-1))
		}
		if p.Standby > 0 && !c.Has("haproxy") {
			errs = append(errs, fmt.Errorf("pool %s: standby servers need the haproxy balancer", p.Name))
		}
		if len(p.Weights) == 0 && (p.Weight < 1 || p.Weight > 256) {
			errs = append(errs, fmt.Errorf("pool %s: weight %d outside 1..256", p.Name, p.Weight))
		}
		for _, w := range p.Weights {
			if w < 1 || w > 256 {
				errs = append(errs, fmt.Errorf("pool %s: weights: %d outside 1..256", p.Name, w))
			}
		}
		if !haproxy.ValidBalance(p.Balance) {
			errs = append(errs, fmt.Errorf("pool %s: balance %q: want %s or %s", p.Name, p.Balance, haproxy.BalanceRoundRobin, haproxy.BalanceLeastConn))
		}
	}
	return errors.Join(errs...)
}

// LoadConfig reads a YAML config over DefaultConfig; unknown keys are errors.
// A pools list in the file replaces the default pools.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read testbed config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("testbed config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes a YAML config over DefaultConfig and validates it.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("decode: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Example returns DefaultConfig as commented YAML (lbtune testbed example).
func Example() string {
	return `# lbtune testbed config: every key is optional; these are the defaults.
state_dir: ` + DefaultConfig().StateDir + `   # generated configs, logs, state.json
balancers: [haproxy, nginx]
haproxy:
  bin: /usr/sbin/haproxy
  port: 0             # frontend (0 = any free port); /light, /medium, /heavy route to the pools
  stats_port: 0       # stats page: /stats and /stats;csv
  log_requests: true  # option httplog lines in haproxy.log (lbtune analyze reads them) and over UDP syslog
  syslog_port: 0      # request log via UDP syslog, for haproxylog+udp://127.0.0.1:PORT (0 = any free port)
nginx:
  bin: /usr/sbin/nginx
  port: 0
  syslog_port: 0      # access log via UDP syslog, for nginxlog+udp://127.0.0.1:PORT
backend:
  command: ""         # lbtune binary; "" = this executable
  work: sleep         # cpu or sleep
  dist: exp           # exp, fixed, normal, lognormal
  light_ms: 5
  medium_ms: 20
  heavy_ms: 80
  queue: 100          # per-backend wait queue; beyond it 503
pools:                # replaces the whole default list when given
  - {name: light,  min: 1, max: 20, servers: 3, concurrency: 8, speeds: [2, 1, 1],   weight: 10}
  - {name: medium, min: 1, max: 15, servers: 3, concurrency: 4, speeds: [2, 1, 0.5], weight: 10}
  - {name: heavy,  min: 1, max: 10, servers: 2, concurrency: 2, speeds: [1, 0.5],    weight: 10}
# A pool's weights: [1, 2, 4] sets each server's start weight (cycled like
# speeds, replacing weight); balance: leastconn (HAProxy balance leastconn,
# NGINX least_conn) instead of the default roundrobin.
# A pool's standby: N (HAProxy only) starts its last N servers in maintenance,
# for a tuner that scales by standby (lbtune.yaml haproxy: {standby: true}).
`
}
