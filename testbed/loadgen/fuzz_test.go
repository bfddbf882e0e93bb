package loadgen

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/lbtune/lbtune/testbed/dist"
)

// sharedTraceHead returns the first n bytes of a shared trace, or nil.
func sharedTraceHead(name string, n int) []byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "traces", name))
	if err != nil {
		return nil
	}
	return b[:min(n, len(b))]
}

func FuzzParseTrace(f *testing.F) {
	for _, name := range []string{"nasa-1995-07-13-per-sec.csv", "worldcup98-1998-06-per-min.csv"} {
		if b := sharedTraceHead(name, 4096); b != nil {
			f.Add(b)
		}
	}
	f.Add([]byte("t,rps\n0,1\n1,2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseTrace(bytes.NewReader(data), 1, 1, dist.Exponential)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted trace gives invalid schedule: %v", err)
		}
	})
}

func FuzzParsePhases(f *testing.F) {
	f.Add([]byte("- {duration: 10s, rate: 50}\n- {duration: 3s, rate: 500, distribution: fixed}\n"))
	f.Add([]byte(`[{"duration":"1m","rate":5}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParsePhases(data, dist.Exponential)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted phases are invalid: %v", err)
		}
	})
}

func FuzzReadRecords(f *testing.F) {
	f.Add([]byte("time,target,status,latency_ms,bytes,error,server,service_ms\n2026-11-28T09:25:50.666146011Z,http://127.0.0.1:33117/light,200,8.436,30,,s1,7.172\n"))
	f.Add([]byte(`{"time":"2026-11-28T09:25:50.666146011Z","target":"http://h/","status":503,"latency_ms":1.2,"bytes":10,"error":"503 Service Unavailable"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = ReadRecords(bytes.NewReader(data), func(Record) error { return nil })
	})
}
