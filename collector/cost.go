package collector

// InSystem is the number of requests in the pool at the end of the
// interval: every server's Active and Queue gauges plus the pool-level
// Queue (requests in service plus requests waiting).
func (p *PoolRates) InSystem() float64 {
	n := p.Queue
	for i := range p.Servers {
		n += p.Servers[i].Gauges.Active + p.Servers[i].Gauges.Queue
	}
	return n
}

// ServersUp is the number of the pool's primary servers serving at the end
// of the interval: State up and not Backup (a backup server in use reports
// StateBackup and is not counted).
func (p *PoolRates) ServersUp() int {
	n := 0
	for i := range p.Servers {
		if p.Servers[i].Serving() {
			n++
		}
	}
	return n
}

// Cost is the pool's cost figure of the interval, c1 x InSystem + c2 x
// ServersUp: c1 prices a request in the system (holding cost, Little's law
// ties it to response time), c2 a server kept on.
func (p *PoolRates) Cost(c1, c2 float64) float64 {
	return c1*p.InSystem() + c2*float64(p.ServersUp())
}

// HostRates are the host signals over one interval (see Host).
type HostRates struct {
	// Reset is true when the CPU time went backwards (the host rebooted):
	// the cumulative values are then counted from zero.
	Reset bool
	// CPUBusy is the fraction of CPU time spent busy over the interval, in
	// 0..1 (0 when no CPU time passed).
	CPUBusy float64
	// NetRxBytes and NetTxBytes are bytes per second received and sent. A
	// sum that went down without a reboot (an interface removed) gives 0
	// for the interval, never a negative rate or the whole sum again.
	NetRxBytes, NetTxBytes float64
	// MemTotalBytes, MemAvailableBytes, TCPEstablished and the load
	// averages are the values at the end of the interval.
	MemTotalBytes, MemAvailableBytes uint64
	TCPEstablished                   uint64
	Load1, Load5, Load15             float64
}

// hostRates derives the interval rates of two host readings dt seconds
// apart.
func hostRates(prev, cur *Host, dt float64) HostRates {
	hr := HostRates{
		MemTotalBytes: cur.MemTotalBytes, MemAvailableBytes: cur.MemAvailableBytes,
		TCPEstablished: cur.TCPEstablished, Load1: cur.Load1, Load5: cur.Load5, Load15: cur.Load15,
	}
	p := *prev
	if cur.CPUTotalSeconds < p.CPUTotalSeconds {
		hr.Reset = true
		p = Host{}
	}
	if dTotal := cur.CPUTotalSeconds - p.CPUTotalSeconds; dTotal > 0 {
		hr.CPUBusy = min(max((cur.CPUBusySeconds-p.CPUBusySeconds)/dTotal, 0), 1)
	}
	d := func(a, b uint64) float64 {
		if b < a {
			return 0
		}
		return float64(b-a) / dt
	}
	hr.NetRxBytes = d(p.NetRxBytes, cur.NetRxBytes)
	hr.NetTxBytes = d(p.NetTxBytes, cur.NetTxBytes)
	return hr
}

// Serving reports whether the server takes new requests of its pool: State
// up and not a Backup. It is the one definition of a serving server
// (PoolRates.ServersUp counts them).
func (s *ServerRates) Serving() bool { return s.State == StateUp && !s.Backup }
