package analyze

import (
	"os"
	"strings"
	"testing"
)

func FuzzAnalyze(f *testing.F) {
	if b, err := os.ReadFile(sharedLog); err == nil {
		f.Add(string(b[:min(len(b), 4000)]))
	}
	f.Add("time,target,status,latency_ms,bytes,error,server,service_ms\n2026-11-28T09:25:50.666146011Z,http://h/light,200,8.436,30,,s1,7.172\n")
	f.Fuzz(func(t *testing.T, doc string) {
		r, err := Analyze(strings.NewReader(doc))
		if err != nil {
			return
		}
		if r.Total.Requests < 0 || r.Total.Errors > r.Total.Requests {
			t.Fatalf("inconsistent report %+v", r.Total)
		}
	})
}
