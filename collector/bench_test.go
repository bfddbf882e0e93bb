//go:build unix

package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// vtsDocument generates a vts JSON document of groups x servers peers with
// every field a real peer has (rings and buckets included), so the parser
// skips what it does not read at the real cost.
func vtsDocument(groups, servers int) []byte {
	var b strings.Builder
	b.WriteString(`{"hostName":"bench","moduleVersion":"v0.2.7","nginxVersion":"1.22.1","loadMsec":1795856398410,"nowMsec":1795856411678,`)
	b.WriteString(`"connections":{"active":9,"reading":0,"writing":9,"waiting":0,"accepted":94,"handled":94,"requests":11627},"serverZones":{},"upstreamZones":{`)
	ring := `{"times":[` + strings.TrimSuffix(strings.Repeat("1795856411404,", 64), ",") + `],"msecs":[` + strings.TrimSuffix(strings.Repeat("51,", 64), ",") + `]}`
	buckets := `{"msecs":[5,10,25,50,100,500,1000],"counters":[2052,5101,7767,8628,9555,9555,9555]}`
	for g := 0; g < groups; g++ {
		if g > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"pool%03d":[`, g)
		for s := 0; s < servers; s++ {
			if s > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"server":"10.%d.%d.1:8080","requestCounter":%d,"inBytes":253435,"outBytes":891075,"responses":{"1xx":0,"2xx":4828,"3xx":0,"4xx":3,"5xx":1},`, g, s, 4832+s)
			fmt.Fprintf(&b, `"requestMsecCounter":34140,"requestMsec":7,"requestMsecs":%s,"requestBuckets":%s,"responseMsecCounter":34124,"responseMsec":7,"responseMsecs":%s,"responseBuckets":%s,`, ring, buckets, ring, buckets)
			b.WriteString(`"weight":3,"maxFails":1,"failTimeout":10,"backup":false,"down":false,"overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"requestMsecCounter":0,"responseMsecCounter":0}}`)
		}
		b.WriteByte(']')
	}
	b.WriteString(`}}`)
	return []byte(b.String())
}

// haproxyCSV generates `show stat` output (the 2.6 header, 128 columns and
// a trailing comma) with backends x servers server rows plus the frontend
// and backend rows.
func haproxyCSV(backends, servers int) []byte {
	header := "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n"
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("fe_main,FRONTEND,,,8,8,2000,9,208345,571110,0,0,1,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,9,,,,0,3251,0,1,11,0,,534,545,3271,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,9,9,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,8,8,9,3270,174061,574579,0,0,\n")
	for be := 0; be < backends; be++ {
		for s := 0; s < servers; s++ {
			fmt.Fprintf(&b, "be%03d,s%03d,0,0,3,5,,%d,99517,274224,,0,,0,0,0,0,UP,5,1,0,0,0,8,0,,1,3,1,,1578,,2,251,,260,L7OK,200,6,0,1575,0,0,0,0,,,,1575,0,0,,,,,0,,,0,0,6,6,,,,Layer7 check passed,,2,3,4,,,,10.%d.%d.1:8080,,http,,,,,,,,0,5,1573,,,2,,0,3,16,17,0,0,2,3,5,5,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n", be, s, 1578+s, be, s)
		}
		fmt.Fprintf(&b, "be%03d,BACKEND,0,0,8,8,200,2839,179037,493099,0,0,,0,0,0,0,UP,9,3,0,,0,8,0,,1,3,0,,2839,,1,452,,468,,,,0,2820,0,0,11,0,,,,2831,0,0,0,0,0,0,0,,,0,0,16,16,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,14,2825,0,0,,,0,3,64,64,0,,,,,9,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,14,8,40,2865,500130,150118,0,0,\n", be)
	}
	return []byte(b.String())
}

// cpuPerOp reports the process CPU time (user + system) per operation as
// "cpu-ns/op" when the benchmark ends. On a shared, loaded machine wall
// time (ns/op) grows with the load; CPU time per op barely does, so the
// recorded figures use it. Run with -cpu 1 so the process does little else.
func cpuPerOp(b *testing.B) {
	start := cpuNow(b)
	b.Cleanup(func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuNow(b)-start)/float64(b.N), "cpu-ns/op")
		}
	})
}

func cpuNow(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkParseVTS parses a vts document of 100 upstream groups x 20 servers.
func BenchmarkParseVTS(b *testing.B) {
	doc := vtsDocument(100, 20)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	cpuPerOp(b)
	for b.Loop() {
		s, err := ParseVTS(doc, "bench")
		if err != nil || len(s.Pools) != 100 {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseHAProxyCSV parses `show stat` with 2000 servers (100
// backends x 20).
func BenchmarkParseHAProxyCSV(b *testing.B) {
	doc := haproxyCSV(100, 20)
	at := time.Unix(1795856495, 0)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	cpuPerOp(b)
	for b.Loop() {
		s, err := ParseHAProxyCSV(doc, "bench", at)
		if err != nil || len(s.Pools) != 100 {
			b.Fatal(err)
		}
	}
}

// BenchmarkNginxLogLine aggregates one lbtune-format access-log line with
// two upstream attempts.
func BenchmarkNginxLogLine(b *testing.B) {
	line := `<190>Nov 28 09:00:15 nginx: lbtune=1 msec=1795856415.123 pool=app status=200 rt=0.071 bytes=30 reqlen=80 ua="127.0.0.1:18083, 127.0.0.1:18082" us="502, 200" urt="0.046, 0.025"`
	agg := newLogAggregator(nginxLog)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	cpuPerOp(b)
	for b.Loop() {
		agg.addLine(line)
	}
}

// BenchmarkHAProxyLogLine aggregates one HAProxy httplog line received
// over syslog.
func BenchmarkHAProxyLogLine(b *testing.B) {
	line := `<134>Dec  2 19:40:01 haproxy[1234]: 127.0.0.1:56822 [02/Dec/2026:19:40:01.757] fe_main app/s1 0/0/0/7/7 200 175 - - ---- 8/8/7/4/0 0/0 "GET /products HTTP/1.1"`
	agg := newLogAggregator(haproxyLog)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	cpuPerOp(b)
	for b.Loop() {
		agg.addLine(line)
	}
}

// BenchmarkDecodeVTSEncodingJSON decodes the same 100 x 20 document with
// encoding/json into the same struct: the baseline the scanner replaces.
func BenchmarkDecodeVTSEncodingJSON(b *testing.B) {
	doc := vtsDocument(100, 20)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	cpuPerOp(b)
	for b.Loop() {
		var d vtsDoc
		if err := json.Unmarshal(doc, &d); err != nil || len(d.UpstreamZones) != 100 {
			b.Fatal(err)
		}
	}
}

// BenchmarkHostRead reads this machine's /proc once per op: what
// lbtune record --host adds to every scrape.
func BenchmarkHostRead(b *testing.B) {
	var r HostReader
	b.ReportAllocs()
	cpuPerOp(b)
	for b.Loop() {
		if _, err := r.Read(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVTSSkipDeep skips a value nested depth levels deep under an
// unknown key with the depth limit lifted: one pass, so 1M levels cost
// about 10x 100k (the quadratic skip: 0.47 s vs 9.6 s at 100k vs 400k).
// "refuse" is ParseVTS on the 1M-deep document: refused at MaxVTSDepth.
func BenchmarkVTSSkipDeep(b *testing.B) {
	for _, depth := range []int{100_000, 1_000_000} {
		doc := deepVTS("[", "]", depth)
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			cpuPerOp(b)
			for b.Loop() {
				sc := vtsScanner{data: doc, maxDepth: 2 * depth, ctx: context.Background()}
				var d vtsDoc
				if err := sc.document(&d); err != nil || d.NowMsec == nil {
					b.Fatal(err)
				}
			}
		})
	}
	doc := deepVTS("[", "]", 1_000_000)
	b.Run("refuse/depth=1000000", func(b *testing.B) {
		cpuPerOp(b)
		for b.Loop() {
			if _, err := ParseVTS(doc, "bench"); err == nil {
				b.Fatal("1M-deep document accepted")
			}
		}
	})
}

// BenchmarkParseHAProxyCSVQuoted parses `show stat` whose every server row
// has a quoted field: linear in the rows (the splitter once copied the
// rest of the document per quoted row).
func BenchmarkParseHAProxyCSVQuoted(b *testing.B) {
	const header = "# pxname,svname,qcur,scur,stot,bin,bout,econ,eresp,status,weight,bck,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,ttime\n"
	at := time.Unix(1795856495, 0)
	for _, rows := range []int{10_000, 100_000} {
		var doc strings.Builder
		doc.WriteString(header)
		for i := range rows {
			fmt.Fprintf(&doc, "app,\"s%d\",0,0,%d,1,1,0,0,UP,1,0,0,1,0,0,0,1\n", i, i)
		}
		data := []byte(doc.String())
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			cpuPerOp(b)
			for b.Loop() {
				if _, err := ParseHAProxyCSV(data, "bench", at); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
