package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// ErrUnknownPool is returned for a pool name the simulation does not have.
var ErrUnknownPool = errors.New("unknown pool")

// ErrUnknownServer is returned by SetWeights for a server not in the pool.
var ErrUnknownServer = errors.New("unknown server")

type state uint8

const (
	stBooting state = iota
	stUp
	stDrain
	stDown // failed, shown once in a snapshot, then gone
	stGone
)

// request is a request waiting in a server's queue.
type request struct {
	arrival float64 // arrival time, s
	demand  float64 // service demand on a Speed 1 server, s
}

// fifo is a growable ring buffer of requests; its size is a power of two.
type fifo struct {
	buf     []request
	head, n int
}

func (q *fifo) push(r request) {
	if q.n == len(q.buf) {
		nb := make([]request, max(16, 2*len(q.buf)))
		for i := 0; i < q.n; i++ {
			nb[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)&(len(q.buf)-1)] = r
	q.n++
}

func (q *fifo) pop() request {
	r := q.buf[q.head]
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.n--
	return r
}

type server struct {
	name, addr string
	pool       int32
	state      state
	gen        uint32 // bumped on failure/cancel: pending events of an older gen are void
	weight     int
	speed      float64
	slots      int
	busy       int // requests in service
	q          fifo
	upPos      int32   // index in pool.up, -1 when not serving
	bornAt     float64 // when it was ordered (powered on)
	counters   counters
	lat        []float32 // latencies (ms) completed since the last scrape
	// swSum and swN are the sliding average of the pool's StatsSamples
	// (HAProxy's swrate: sum -= sum/N; sum += v; mean = sum/min(n, N)).
	swSum float64
	swN   int
}

type counters struct {
	requests, ok, errors uint64
	latSumMs             float64
}

// event is one request's service completion.
type event struct {
	t, arrival float64
	srv        int32
	gen        uint32
}

const (
	timerBoot uint8 = iota
	timerFailAt
	timerFailRandom
)

type timer struct {
	t    float64
	kind uint8
	pool int32
	srv  int32
	gen  uint32
}

// pool is the runtime state of one pool.
type pool struct {
	cfg      PoolConfig
	idx      int32
	mu       float64 // ServiceRate
	classCum []float64
	classes  []sampler
	arr      *rand.Rand // arrivals and demands: same for every policy
	route    *rand.Rand // p2c choices
	fail     *rand.Rand // random failures
	// arrivals
	step    int
	stepEnd float64
	rate    float64
	share   float64
	next    float64
	// servers
	up      []int32 // serving servers, by id
	load    []int32 // busy+queued of up[i]: dense for the balancers' scans
	wt      []int32 // weight of up[i]
	cur     []int32 // smooth WRR current weight of up[i]
	sameW   bool    // every up server has the same positive weight
	all     []int32 // servers the balancer knows (up, drain, down), by id
	booting []int32 // ordered, not yet serving, oldest first
	rr      int     // rotation for least_conn ties
	sched   []int32 // HAProxy roundrobin cycle (indices into up)
	schedAt int
	dirty   bool // sched must be rebuilt
	nextID  int
	// lifecycle and ground truth
	powered      int
	target       int // serving + booting, as last ordered
	lastDir      int
	lastActT     float64
	truth        PoolTruth
	sumLast      float64 // time of the last powered-count change
	minuteSS     float64 // truth.ServerSeconds when the current minute began
	minuteLat    []float32
	ivLat        []float32 // latencies (ms) completed since the last scrape
	minuteFailed int
	hist         histogram
}

// Sim is one simulation run. It is not safe for concurrent use: one
// goroutine drives it (Advance, Scrape, Scale, SetWeights).
type Sim struct {
	cfg        Config
	now        float64
	trace      *Trace
	pools      []*pool
	servers    []server
	events     []event
	timers     []timer
	nextMinute float64
	minute     int
}

// New builds a simulation at t = 0 with each pool's initial servers up.
func New(cfg Config) (*Sim, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sim{cfg: cfg, trace: cfg.Trace, nextMinute: 60}
	for i, pc := range cfg.Pools {
		p := &pool{cfg: pc, idx: int32(i), mu: pc.ServiceRate(), share: pc.Share}
		seed := cfg.Seed*0x9e3779b97f4a7c15 + uint64(i)
		p.arr = rand.New(rand.NewPCG(seed, 1))
		p.route = rand.New(rand.NewPCG(seed, 2))
		p.fail = rand.New(rand.NewPCG(seed, 3))
		var tot float64
		for _, c := range pc.Classes {
			tot += c.Share
		}
		var cum float64
		for _, c := range pc.Classes {
			cum += c.Share / tot
			p.classCum = append(p.classCum, cum)
			p.classes = append(p.classes, newSampler(c.Service))
		}
		p.classCum[len(p.classCum)-1] = 1
		p.truth.Name = pc.Name
		p.hist = newHistogram()
		s.pools = append(s.pools, p)
		for range pc.Servers {
			id := s.addServer(p)
			s.servers[id].state = stUp
			p.up = append(p.up, id)
			p.all = append(p.all, id)
		}
		s.reindex(p)
		p.target = pc.Servers
		p.dirty = true
		p.step = -1
		p.stepEnd = s.trace.Times[0]
		s.nextArrival(p, 0)
		for _, at := range pc.Failures.At {
			s.pushTimer(timer{t: at.Seconds(), kind: timerFailAt, pool: p.idx})
		}
		if pc.Failures.PerServerHour > 0 {
			s.scheduleRandomFailure(p, 0)
		}
	}
	return s, nil
}

// String names the simulator as a snapshot source.
func (s *Sim) String() string { return "sim:" + s.trace.Name }

// Now is the current simulated wall-clock time.
func (s *Sim) Now() time.Time { return s.cfg.Start.Add(seconds(s.now)) }

// Elapsed is the simulated time since the start.
func (s *Sim) Elapsed() time.Duration { return seconds(s.now) }

// End is when the trace ends, measured from the start.
func (s *Sim) End() time.Duration { return s.trace.Duration() }

// Config is the simulation's configuration with defaults filled in.
func (s *Sim) Config() Config { return s.cfg }

func (s *Sim) pool(name string) (*pool, error) {
	for _, p := range s.pools {
		if p.cfg.Name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("sim: pool %q: %w", name, ErrUnknownPool)
}

// addServer creates a powered-on (booting) server and returns its index.
func (s *Sim) addServer(p *pool) int32 {
	id := int32(len(s.servers))
	p.nextID++
	name := p.cfg.Name + "-" + leftPad(p.nextID)
	s.servers = append(s.servers, server{
		name: name, addr: "10." + strconv.Itoa(int(p.idx)) + "." + strconv.Itoa(p.nextID/250) + "." + strconv.Itoa(p.nextID%250+1) + ":80",
		pool: p.idx, state: stBooting, weight: p.cfg.Weight, speed: p.cfg.Speed, slots: p.cfg.Slots,
		bornAt: s.now, upPos: -1,
	})
	s.setPowered(p, p.powered+1)
	return id
}

func leftPad(n int) string {
	s := strconv.Itoa(n)
	for len(s) < 4 {
		s = "0" + s
	}
	return s
}

// setPowered integrates server-seconds up to now and sets the count.
func (s *Sim) setPowered(p *pool, n int) {
	p.truth.ServerSeconds += float64(p.powered) * (s.now - p.sumLast)
	p.sumLast = s.now
	p.powered = n
}

// nextArrival draws the pool's next arrival after time from, moving through
// the trace's steps (Poisson within each step; memoryless across steps).
func (s *Sim) nextArrival(p *pool, from float64) {
	t := from
	for {
		if p.rate > 0 {
			t += p.arr.ExpFloat64() / p.rate
			if t < p.stepEnd {
				p.next = t
				return
			}
		}
		if p.step+1 >= len(s.trace.Times) {
			p.next = math.Inf(1)
			return
		}
		p.step++
		t = s.trace.Times[p.step]
		p.stepEnd = s.trace.stepEnd(p.step)
		p.rate = s.trace.Rates[p.step] * p.share
	}
}

// Advance runs the simulation until the given time since the start.
func (s *Sim) Advance(to time.Duration) {
	s.runUntil(to.Seconds())
}

// runUntil processes every event up to and including time T.
func (s *Sim) runUntil(T float64) {
	for {
		// The earliest of: a completion, a timer, a minute boundary, an arrival.
		next := math.Inf(1)
		kind := 0
		if len(s.events) > 0 {
			next, kind = s.events[0].t, 1
		}
		if len(s.timers) > 0 && s.timers[0].t < next {
			next, kind = s.timers[0].t, 2
		}
		if s.nextMinute < next {
			next, kind = s.nextMinute, 3
		}
		var ap *pool
		for _, p := range s.pools {
			if p.next < next {
				next, kind, ap = p.next, 4, p
			}
		}
		if next > T {
			if T > s.now {
				s.now = T
			}
			return
		}
		s.now = next
		switch kind {
		case 1:
			s.complete()
		case 2:
			s.fireTimer()
		case 3:
			s.closeMinute()
		case 4:
			s.arrive(ap)
		}
	}
}

// arrive handles one arrival at the pool: class, demand, route, serve or queue.
func (s *Sim) arrive(p *pool) {
	t := p.next
	c := 0
	if len(p.classCum) > 1 {
		u := p.arr.Float64()
		for c < len(p.classCum)-1 && u >= p.classCum[c] {
			c++
		}
	}
	demand := p.classes[c].sample(p.arr)
	s.nextArrival(p, t)
	id := s.pick(p)
	if id < 0 {
		p.truth.Dropped++
		p.minuteFailed++
		return
	}
	sv := &s.servers[id]
	if p.cfg.MaxQueue > 0 && sv.q.n >= p.cfg.MaxQueue {
		p.truth.Dropped++
		p.minuteFailed++
		return
	}
	sv.counters.requests++
	if sv.busy < sv.slots {
		s.start(sv, id, request{arrival: t, demand: demand})
	} else {
		sv.q.push(request{arrival: t, demand: demand})
	}
	p.load[sv.upPos] = int32(sv.busy + sv.q.n)
}

// start puts a request in service on server id.
func (s *Sim) start(sv *server, id int32, r request) {
	sv.busy++
	s.pushEvent(event{t: s.now + r.demand/sv.speed, arrival: r.arrival, srv: id, gen: sv.gen})
}

// complete handles the earliest completion event.
func (s *Sim) complete() {
	ev := s.popEvent()
	sv := &s.servers[ev.srv]
	if ev.gen != sv.gen {
		return // the server failed while this request was in service
	}
	p := s.pools[sv.pool]
	lat := s.now - ev.arrival
	ms := lat * 1000
	sv.counters.ok++
	sv.counters.latSumMs += ms
	if len(sv.lat) < maxIntervalSamples {
		sv.lat = append(sv.lat, float32(ms))
	}
	if n := p.cfg.StatsSamples; n > 0 {
		sv.swSum += ms - sv.swSum/float64(n)
		sv.swN++
	}
	p.minuteLat = append(p.minuteLat, float32(ms))
	if len(p.ivLat) < maxIntervalSamples*16 {
		p.ivLat = append(p.ivLat, float32(ms))
	}
	p.hist.add(ms)
	p.truth.Completed++
	p.truth.SojournSeconds += lat
	sv.busy--
	if sv.q.n > 0 {
		s.start(sv, ev.srv, sv.q.pop())
	} else if sv.state == stDrain && sv.busy == 0 {
		s.remove(p, ev.srv)
	}
	if sv.upPos >= 0 {
		p.load[sv.upPos] = int32(sv.busy + sv.q.n)
	}
}

// maxIntervalSamples caps the latencies kept per server between scrapes, so
// a simulation nobody scrapes does not grow without bound.
const maxIntervalSamples = 1 << 16

// closeMinute records the ground truth of the minute ending now.
func (s *Sim) closeMinute() {
	for _, p := range s.pools {
		s.setPowered(p, p.powered) // integrate server-seconds up to the minute's end
		m := MinuteTruth{Requests: len(p.minuteLat), Failed: p.minuteFailed, Servers: p.powered,
			ServerSeconds: p.truth.ServerSeconds - p.minuteSS}
		p.minuteSS = p.truth.ServerSeconds
		if len(p.minuteLat) > 0 {
			m.P95Ms = float64(quantile32(p.minuteLat, 0.95))
		}
		p.truth.Minutes = append(p.truth.Minutes, m)
		p.minuteLat = p.minuteLat[:0]
		p.minuteFailed = 0
	}
	s.minute++
	s.nextMinute += 60
}
