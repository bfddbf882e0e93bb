package analyze

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

func FuzzParseHAProxyLine(f *testing.F) {
	if b, err := os.ReadFile(sharedLog); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for i := 0; sc.Scan() && i < 60; i++ {
			f.Add(sc.Text())
		}
	}
	f.Add(`127.0.0.1:1 [28/Nov/2026:09:01:35.000] fe be/<NOSRV> 0/-1/-1/-1/0 503 217 - - SC-- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`)
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParseHAProxyLine(line)
		if err != nil {
			return
		}
		if e.Ta < -1 || e.Tr < -1 || e.Bytes < 0 || e.Server == "" && e.Backend == "" && e.Frontend == "" && e.Status == 0 {
			t.Fatalf("accepted an implausible entry %+v", e)
		}
		_ = e.Kind()
	})
}

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
