package testkit

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

func TestExampleConfigReplaces(t *testing.T) {
	dir := t.TempDir()
	p := ExampleConfig(t, dir, true, map[string]string{"listen: 127.0.0.1:9464": "listen: 127.0.0.1:1"})
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "listen: 127.0.0.1:1\n") || strings.Contains(string(b), "9464") {
		t.Errorf("replacement not made:\n%s", b)
	}
}

func TestSyncBufferLines(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(&b, "level=INFO msg=x n=%d\n", i)
		}()
	}
	wg.Wait()
	if got := len(b.Lines("msg=x")); got != 8 {
		t.Errorf("%d lines with msg=x, want 8", got)
	}
	if got := b.Lines("msg=x", "n=3"); len(got) != 1 {
		t.Errorf("lines with n=3: %q", got)
	}
	if got := b.Lines("absent"); len(got) != 0 {
		t.Errorf("lines with absent: %q", got)
	}
}

func TestShippedModel(t *testing.T) {
	if _, err := os.Stat(ShippedModel(t)); err != nil {
		t.Fatal(err)
	}
}
