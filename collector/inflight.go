package collector

import "time"

// InFlight is the mean number of requests in progress over a window of
// length window during which the requests together spent busyMs
// milliseconds in progress (Little's law: L = λW, the arrival rate times the
// mean time in progress, is the summed time over the window's length). It
// is 0 for an empty window.
//
// It is the one estimate of the Active and Queue gauges for sources that
// see requests but no gauges: the request logs (each server's time with its
// requests, and HAProxy's queue time, over the window since the previous
// snapshot) and vts (the growth of requestMsecCounter between two
// documents). Those gauges are then means over the interval before the
// snapshot rather than values at its time; their mean over a run is the
// same.
func InFlight(busyMs float64, window time.Duration) float64 {
	if window <= 0 || busyMs <= 0 {
		return 0
	}
	return busyMs / (float64(window) / float64(time.Millisecond))
}

// latencySums estimates each server's Active gauge from the growth of its
// LatencySumMs between consecutive snapshots of one source (InFlight over
// the time between them), for sources whose documents have the sum but no
// gauge (vts). As for the logs (windowInFlight), a request counts at most
// the interval's length: the estimate is at most the requests completed in
// it. A server new since the previous snapshot, or whose sum or request
// count went backwards (a restart), gets no estimate (0) for that interval.
type latencySums struct {
	at   time.Time
	sums map[[2]string][2]uint64 // LatencySumMs, Requests
}

// fill sets the Active gauges of s and remembers its sums.
func (l *latencySums) fill(s *Snapshot) {
	window := s.Time.Sub(l.at)
	next := make(map[[2]string][2]uint64, len(l.sums))
	for i := range s.Pools {
		p := &s.Pools[i]
		for j := range p.Servers {
			sv := &p.Servers[j]
			k := [2]string{p.Name, sv.Name}
			cur := [2]uint64{sv.Counters.LatencySumMs, sv.Counters.Requests}
			next[k] = cur
			if prev, ok := l.sums[k]; ok && cur[0] >= prev[0] && cur[1] >= prev[1] && window > 0 && !l.at.IsZero() {
				sv.Gauges.Active = min(InFlight(float64(cur[0]-prev[0]), window), float64(cur[1]-prev[1]))
			}
		}
	}
	l.at, l.sums = s.Time, next
}
