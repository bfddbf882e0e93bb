package analyze

import "testing"

// BenchmarkParseHAProxyLine parses one httplog request line.
func BenchmarkParseHAProxyLine(b *testing.B) {
	line := `127.0.0.1:56822 [28/Nov/2026:09:01:35.757] fe_main app/s1 0/0/0/7/7 200 175 - - ---- 8/8/7/4/0 0/0 "GET /products HTTP/1.1"`
	b.SetBytes(int64(len(line)))
	for range b.N {
		if _, err := ParseHAProxyLine(line); err != nil {
			b.Fatal(err)
		}
	}
}
