package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"
)

// Modes a pool can run in.
const (
	// ModeAuto decides and applies.
	ModeAuto = "auto"
	// ModeShadow decides and explains but changes nothing.
	ModeShadow = "shadow"
	// ModeManual applies only operator +1/-1 requests.
	ModeManual = "manual"
	// ModeFallbackOnly decides with the threshold fallback only and applies.
	ModeFallbackOnly = "fallback-only"
)

// ValidMode reports whether m is one of the modes above.
func ValidMode(m string) bool {
	switch m {
	case ModeAuto, ModeShadow, ModeManual, ModeFallbackOnly:
		return true
	}
	return false
}

// Config is the whole lbtune.yaml.
type Config struct {
	// API is the HTTP API and dashboard listener.
	API API `yaml:"api"`
	// Store is the bbolt file holding snapshots, decisions and rewards.
	Store Store `yaml:"store"`
	// Model is the trained model + policy; empty Path runs the threshold
	// fallback only.
	Model Model `yaml:"model"`
	// Intervals are the scrape and decision periods.
	Intervals Intervals `yaml:"intervals"`
	// Mode is the starting mode of every pool (auto, shadow, manual,
	// fallback-only); a pool may override it.
	Mode string `yaml:"mode"`
	// Policy is what decides every pool in auto and shadow mode: agent
	// (default), threshold, hpa@U or static; a pool may override it.
	Policy string `yaml:"policy"`
	// Reward weighs the terms of the reward the agent maximises.
	Reward Reward `yaml:"reward"`
	// Guard sets the safety limits on every decision; zero fields keep the
	// built-in defaults.
	Guard Guard `yaml:"guard"`
	// Sources are the balancer statistics endpoints, by name.
	Sources []Source `yaml:"sources"`
	// Actuators are the ways decisions are applied, by name.
	Actuators []Actuator `yaml:"actuators"`
	// Pools are the pools to tune.
	Pools []Pool `yaml:"pools"`

	// file is the path the config was loaded from ("" when built in code).
	file string
	// root is the parsed document, kept to report line numbers.
	root *yaml.Node
}

// API configures the HTTP API.
type API struct {
	// Listen is host:port; 127.0.0.1 keeps it local.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token mutations need. Empty refuses
	// every mutation.
	TokenFile string `yaml:"token_file"`
}

// Store configures the bbolt store.
type Store struct {
	// Path is the bbolt file.
	Path string `yaml:"path"`
	// Retention is how long snapshots are kept; 0 keeps everything.
	Retention time.Duration `yaml:"retention"`
}

// Model names the trained model + policy.
type Model struct {
	// Path is a bbolt store written by `lbtune train`.
	Path string `yaml:"path"`
	// Learning turns on online learning of the policy while running.
	Learning Learning `yaml:"learning"`
	// ScaleInWindow overrides the trained agent's stabilisation window: it
	// shrinks a pool only to the largest plan of this long (0 keeps the
	// policy's own: the one training selected for its objective, 10m for
	// a policy trained before that selection). The threshold fallback's wait between a change
	// and a shrink is guard.down_cooldown when that is set.
	ScaleInWindow time.Duration `yaml:"scale_in_window"`
}

// Learning configures online learning: each pool in auto mode explores
// epsilon-greedily (the guard still clamps every decision), updates its
// own copy of the policy from the rewards it observes, and saves it to the
// store every SaveEvery (and at shutdown), resuming from it on restart.
type Learning struct {
	// Enabled turns online learning on; off by default.
	Enabled bool `yaml:"enabled"`
	// Epsilon is the starting exploration rate, in [0, 1].
	Epsilon float64 `yaml:"epsilon"`
	// Decay multiplies epsilon at every headroom-level choice (every block
	// of 20 decisions), in (0, 1].
	Decay float64 `yaml:"decay"`
	// MinEpsilon is the floor epsilon decays to, in [0, Epsilon].
	MinEpsilon float64 `yaml:"min_epsilon"`
	// SaveEvery is how often the learned policy is saved as a new version,
	// in the pool's time (simulated time for a simulated pool).
	SaveEvery time.Duration `yaml:"save_every"`
}

// Intervals are the daemon's periods.
type Intervals struct {
	// Scrape is the collector period.
	Scrape time.Duration `yaml:"scrape"`
	// ScrapeTimeout bounds one scrape; it must not exceed Scrape.
	ScrapeTimeout time.Duration `yaml:"scrape_timeout"`
	// Decide is the decision period; it must be at least Scrape.
	Decide time.Duration `yaml:"decide"`
}

// Reward weighs the reward terms: reward = -(Latency x latency penalty
// against target + Errors x error ratio + ServerCost x servers on).
type Reward struct {
	Latency    float64 `yaml:"latency"`
	Errors     float64 `yaml:"errors"`
	ServerCost float64 `yaml:"server_cost"`
}

// Guard are the limits the guard enforces on every automatic decision
// (manual +1/-1 only obey the template's min and max). Zero keeps the
// default shown in `lbtune config example`.
type Guard struct {
	// UpCooldown is the least time between two scale-ups (default 30s).
	UpCooldown time.Duration `yaml:"up_cooldown"`
	// DownCooldown is the least time between a scale-up and a scale-in (5m).
	DownCooldown time.Duration `yaml:"down_cooldown"`
	// MaxStepUp and MaxStepDown bound servers added/removed per decision (10, 2).
	MaxStepUp   int `yaml:"max_step_up"`
	MaxStepDown int `yaml:"max_step_down"`
	// SpikeHold is how long a scale-up must be asked for (5s): shorter
	// load spikes are ignored.
	SpikeHold time.Duration `yaml:"spike_hold"`
	// MinLifetime is how long a server runs before it may be removed (5m).
	MinLifetime time.Duration `yaml:"min_lifetime"`
}

// Source is one balancer statistics endpoint.
type Source struct {
	// Name is how pools refer to it.
	Name string `yaml:"name"`
	// URI is a collector source URI (collector.Open).
	URI string `yaml:"uri"`
	// TimeScale, for experiments only (lbtune ab), runs the pools on this
	// source on a clock TimeScale times faster than the wall clock: their
	// snapshots are re-stamped on it and their latencies multiplied by it,
	// and the intervals (decide, scrape), the guard's times and the
	// policies' windows are in its time. A trace replayed TimeScale times
	// faster against servers TimeScale times faster then reads as the trace
	// itself. 0 or 1: the wall clock (production). At most 1000.
	TimeScale float64 `yaml:"time_scale"`
}

// Actuator is one way to apply decisions; exactly one kind is set.
type Actuator struct {
	// Name is how pools refer to it.
	Name    string   `yaml:"name"`
	HAProxy *HAProxy `yaml:"haproxy"`
	NGINX   *NGINX   `yaml:"nginx"`
	Fleet   *Fleet   `yaml:"fleet"`
	AWS     *AWS     `yaml:"aws"`
}

// Kind names the kind of actuator that is set ("" when none).
func (a *Actuator) Kind() string {
	switch {
	case a.HAProxy != nil:
		return "haproxy"
	case a.NGINX != nil:
		return "nginx"
	case a.Fleet != nil:
		return "fleet"
	case a.AWS != nil:
		return "aws"
	}
	return ""
}

// HAProxy applies weights and server changes over the runtime API.
type HAProxy struct {
	// Socket is the admin stats socket (stats socket ... level admin).
	Socket string `yaml:"socket"`
	// Standby scales by moving the backend's configured servers between
	// service and maintenance (drained first): every server the pool may
	// use is in the HAProxy config and running. Without it this actuator
	// only sets weights; scaling needs a fleet or aws actuator.
	Standby bool `yaml:"standby"`
}

// NGINX applies weights by rendering upstream blocks into an include file
// lbtune owns, validating (nginx -t) and reloading gracefully, with
// rollback on failure.
type NGINX struct {
	// Conf is the main nginx.conf (for nginx -t -c); it includes Include
	// inside its http block.
	Conf string `yaml:"conf"`
	// Include is the file the managed upstream blocks are rendered into.
	Include string `yaml:"include"`
	// Prefix is nginx's -p prefix; empty uses the default.
	Prefix string `yaml:"prefix"`
	// PIDFile is the master's pid file (the `pid` directive), for reloads.
	PIDFile string `yaml:"pid_file"`
	// Upstreams are the managed upstream blocks, written at start.
	Upstreams []Upstream `yaml:"upstreams"`
}

// NGINXMethods are the values an upstream's method takes: NGINX's
// balancing methods lbtune renders ("" is weighted round robin) and
// "auto" (nginx.MethodAuto). TestNGINXMethodsRender in tuner checks that
// the NGINX actuator renders every one.
var NGINXMethods = []string{"", "least_conn", "random", "random two", "auto"}

// Upstream is one managed NGINX upstream block.
type Upstream struct {
	// Name is the upstream's name (proxy_pass http://NAME), the pool name.
	Name string `yaml:"name"`
	// Method is "" (weighted round robin), least_conn, random, "random
	// two", or auto: lbtune renders round robin and switches it to
	// least_conn (and back) as the agent advises (agent.AdviseBalance).
	Method string `yaml:"method"`
	// Servers are host:port addresses.
	Servers []string `yaml:"servers"`
}

// Fleet starts and stops local backend processes and registers them in a
// balancer actuator.
type Fleet struct {
	// Balancer names the haproxy or nginx actuator new servers join.
	Balancer string `yaml:"balancer"`
}

// AWS scales an Auto Scaling group or plain EC2 instances.
type AWS struct {
	// Region is the AWS region.
	Region string `yaml:"region"`
	// ASG is the Auto Scaling group; empty uses plain EC2 instances.
	ASG string `yaml:"asg"`
	// LaunchTemplate starts EC2 instances when ASG is empty.
	LaunchTemplate string `yaml:"launch_template"`
	// Port is the backend port on the instances.
	Port int `yaml:"port"`
	// Balancer names the haproxy or nginx actuator instances join.
	Balancer string `yaml:"balancer"`
}

// Pool is one pool to tune.
type Pool struct {
	// Name is the balancer's backend/upstream name.
	Name string `yaml:"name"`
	// Source names the source it is observed through (not with Sim).
	Source string `yaml:"source"`
	// Actuator names the actuator decisions go to (not with Sim).
	Actuator string `yaml:"actuator"`
	// Mode overrides Config.Mode for this pool.
	Mode string `yaml:"mode"`
	// Policy overrides Config.Policy for this pool.
	Policy string `yaml:"policy"`
	// Sim, when set, makes a simulated cluster both source and actuator.
	Sim *Sim `yaml:"sim"`
	// Template is the pool's scaling template.
	Template Template `yaml:"template"`
}

// Template is a pool's scaling template.
type Template struct {
	// Min and Max bound the number of serving servers.
	Min int `yaml:"min"`
	Max int `yaml:"max"`
	// Image starts one server in the cloud (AMI or launch template).
	Image string `yaml:"image"`
	// Command starts one local server; {port} is replaced by a free port.
	Command string `yaml:"command"`
	// TargetSeconds is the p95 response-time target in seconds.
	TargetSeconds float64 `yaml:"target_seconds"`
	// ServiceRate is the requests/s one reference server sustains (0 = learn).
	ServiceRate float64 `yaml:"service_rate"`
	// MaxWeight is the balancer's largest weight (HAProxy 256, NGINX 1000).
	MaxWeight int `yaml:"max_weight"`
	// Sizes are the node sizes, relative to the reference server.
	Sizes []Size `yaml:"sizes"`
	// Fallback sets the pool's threshold fallback; omitted keys keep the
	// defaults (Config.PoolFallback).
	Fallback Fallback `yaml:"fallback"`
	// Objective prices the pool's servers against its p95 target: the
	// reward its agent learns from and the runtime records
	// (Config.PoolReward).
	Objective Objective `yaml:"objective"`
}

// Fallback sets a pool's threshold fallback (agent.ThresholdConfig, field
// by field). An omitted key keeps the default of agent.DefaultThresholdConfig
// (down_cooldown: guard.down_cooldown when that is set); a key set to 0
// switches its rule off where the agent documents it (util_high,
// util_low, reserve).
type Fallback struct {
	// Window is the sliding window the response time and the utilisation
	// are averaged over (1m).
	Window *time.Duration `yaml:"window"`
	// MinBreach is how long the target must be exceeded before it counts (5s).
	MinBreach *time.Duration `yaml:"min_breach"`
	// MinRequests is the fewest requests in the window for its p95 to count (50).
	MinRequests *float64 `yaml:"min_requests"`
	// UtilHigh grows the pool by GrowRatio above it (0.8); UtilLow shrinks
	// it by ShrinkRatio below it (0.3).
	UtilHigh    *float64 `yaml:"util_high"`
	UtilLow     *float64 `yaml:"util_low"`
	GrowRatio   *float64 `yaml:"grow_ratio"`
	ShrinkRatio *float64 `yaml:"shrink_ratio"`
	// ShrinkBelow is the fraction of the target the window's p95 must be
	// under for a shrink (0.7).
	ShrinkBelow *float64 `yaml:"shrink_below"`
	// Reserve servers (2) go on above QueueHigh (2) queued requests per
	// server and off below QueueLow (0.5).
	Reserve   *int     `yaml:"reserve"`
	QueueHigh *float64 `yaml:"queue_high"`
	QueueLow  *float64 `yaml:"queue_low"`
	// DownCooldown is the least time between a change and a shrink (5m).
	DownCooldown *time.Duration `yaml:"down_cooldown"`
	// BreachConfidence is the confidence (0.9) with which the window's
	// requests must show the p95 over the target for a breach to count
	// (agent.TailEstimate); 0 counts the point estimate.
	BreachConfidence *float64 `yaml:"breach_confidence"`
	// Proportional sizes grow and shrink steps by the measurement, the
	// ratios being the largest steps (true); false takes the fixed ratios.
	Proportional *bool `yaml:"proportional"`
	// BreachMemory is how long no shrink goes back to the server count
	// that last breached (1h); 0 forgets at once.
	BreachMemory *time.Duration `yaml:"breach_memory"`
}

// Objective prices a pool's servers against its SLO (the p95 target,
// template.target_seconds): the agent minimises the price of the servers
// it runs plus the cost of the minutes whose p95 misses the target
// (agent.RewardConfig). The unit is the operator's (money, or any).
type Objective struct {
	// ServerHour is the price of one server for one hour; 0 keeps
	// reward.server_cost's (x 120: 6 at the defaults).
	ServerHour float64 `yaml:"server_hour"`
	// ViolationMinute is what one minute over the p95 target costs; 0
	// keeps the agent's default, 8.
	ViolationMinute float64 `yaml:"violation_minute"`
}

// Target is TargetSeconds as a duration.
func (t *Template) Target() time.Duration {
	return time.Duration(t.TargetSeconds * float64(time.Second))
}

// Size is one node size.
type Size struct {
	// Name is the size's name (e.g. "small", "t3.large").
	Name string `yaml:"name"`
	// Speed is its relative capacity (1 = reference server).
	Speed float64 `yaml:"speed"`
	// Concurrency is the requests it serves at once (0 = unbounded).
	Concurrency int `yaml:"concurrency"`
}

// Sim is a simulated cluster driven by a rate trace.
type Sim struct {
	// Trace is a `t,rps` CSV (relative paths are relative to the config
	// file). Set Trace or Phases.
	Trace string `yaml:"trace"`
	// Phases is a synthetic load schedule, repeated; used when Trace is empty.
	Phases []Phase `yaml:"phases"`
	// Speedup is simulated seconds per wall-clock second.
	Speedup float64 `yaml:"speedup"`
	// Scale multiplies the trace's rates.
	Scale float64 `yaml:"scale"`
	// From skips the start of the trace.
	From time.Duration `yaml:"from"`
	// ServiceMs is the mean service time of one request on a reference server.
	ServiceMs float64 `yaml:"service_ms"`
	// BootDelay is how long a new server takes to serve (simulated time).
	BootDelay time.Duration `yaml:"boot_delay"`
	// Servers is the number of servers at start (0 = Template.Min).
	Servers int `yaml:"servers"`
	// Seed makes the arrivals reproducible.
	Seed int64 `yaml:"seed"`
}

// Phase is one step of a synthetic load schedule.
type Phase struct {
	// Duration is the phase's length in simulated time.
	Duration time.Duration `yaml:"duration"`
	// RPS is the mean arrival rate during the phase.
	RPS float64 `yaml:"rps"`
}

// Default returns the configuration every file starts from.
func Default() Config {
	return Config{
		API:       API{Listen: "127.0.0.1:9464"},
		Store:     Store{Path: "lbtune.db", Retention: 7 * 24 * time.Hour},
		Intervals: Intervals{Scrape: time.Second, ScrapeTimeout: 800 * time.Millisecond, Decide: 15 * time.Second},
		Mode:      ModeAuto,
		Reward:    Reward{Latency: 1, Errors: 10, ServerCost: 0.05},
		Model:     Model{Learning: Learning{Epsilon: 0.1, Decay: 0.99, MinEpsilon: 0.02, SaveEvery: 10 * time.Minute}},
	}
}

// defaultPool fills the zero fields of a pool that have a default.
func defaultPool(p *Pool) {
	if p.Template.MaxWeight == 0 {
		p.Template.MaxWeight = 256
	}
	if s := p.Sim; s != nil {
		if s.Speedup == 0 {
			s.Speedup = 1
		}
		if s.Scale == 0 {
			s.Scale = 1
		}
		if s.ServiceMs == 0 {
			s.ServiceMs = 50
		}
		if s.BootDelay == 0 {
			s.BootDelay = 60 * time.Second
		}
		if s.Seed == 0 {
			s.Seed = 1
		}
	}
}

// ErrInvalid marks a configuration that parsed but failed validation.
var ErrInvalid = errors.New("invalid configuration")

// Load reads, strictly decodes and validates the file at path. Relative
// paths inside it (store, model, token file, sim traces) are made relative
// to the file's directory. Every problem is reported, joined.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.file = path
	c.resolve(filepath.Dir(path))
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse strictly decodes a YAML document over Default, without validating
// it. Unknown keys and type mismatches are errors with line numbers.
func Parse(b []byte) (*Config, error) {
	c := Default()
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			// One problem per line, like Validate.
			errs := make([]error, len(te.Errors))
			for i, e := range te.Errors {
				errs[i] = errors.New(e)
			}
			return nil, errors.Join(errs...)
		}
		return nil, fmt.Errorf("decode: %w", err)
	}
	for i := range c.Pools {
		defaultPool(&c.Pools[i])
	}
	c.root = &root
	return &c, nil
}

// ParsePool strictly decodes one pool entry (the body of `lbtune template
// up FILE`) and validates it against c's sources and actuators; problems
// carry the entry's line numbers.
func (c *Config) ParsePool(b []byte) (Pool, error) {
	var pl Pool
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&pl); err != nil {
		return Pool{}, fmt.Errorf("template: %w", err)
	}
	defaultPool(&pl)
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return Pool{}, fmt.Errorf("template: %w", err)
	}
	cc := *c
	cc.file, cc.Pools = "template", []Pool{pl}
	// Line numbers of the entry as if it were pools[0] of a config.
	if len(doc.Content) > 0 {
		cc.root = &yaml.Node{Kind: yaml.MappingNode, Line: 1, Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Value: "pools", Line: 1},
			{Kind: yaml.SequenceNode, Line: 1, Content: []*yaml.Node{doc.Content[0]}},
		}}
	}
	if err := cc.Validate(); err != nil {
		return Pool{}, err
	}
	return pl, nil
}

// resolve makes relative file paths relative to dir.
func (c *Config) resolve(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.Store.Path)
	abs(&c.Model.Path)
	abs(&c.API.TokenFile)
	for i := range c.Pools {
		if s := c.Pools[i].Sim; s != nil {
			abs(&s.Trace)
		}
	}
}

// DecidePeriod is pool p's wall-clock time between decisions:
// intervals.decide, divided by sim.speedup for a simulated pool. Validate
// keeps it at least MinSimPeriod.
func (c *Config) DecidePeriod(p *Pool) time.Duration {
	if p.Sim == nil || !(p.Sim.Speedup > 0) {
		return c.Intervals.Decide
	}
	return time.Duration(float64(c.Intervals.Decide) / p.Sim.Speedup)
}

// PoolMode is the starting mode of pool p.
func (c *Config) PoolMode(p *Pool) string {
	if p.Mode != "" {
		return p.Mode
	}
	return c.Mode
}

// Source returns the source with the given name, or nil.
func (c *Config) Source(name string) *Source {
	for i := range c.Sources {
		if c.Sources[i].Name == name {
			return &c.Sources[i]
		}
	}
	return nil
}

// Actuator returns the actuator with the given name, or nil.
func (c *Config) Actuator(name string) *Actuator {
	for i := range c.Actuators {
		if c.Actuators[i].Name == name {
			return &c.Actuators[i]
		}
	}
	return nil
}
