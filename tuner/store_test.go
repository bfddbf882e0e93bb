package tuner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lbtune/lbtune/datasets"
	"github.com/lbtune/lbtune/internal/testkit"
	"github.com/lbtune/lbtune/tuner/config"
)

// TestDamagedStoreWhileRunning damages the store under a running daemon
// (the --sim example): every page's type is overwritten in the file bbolt
// has mapped. /v1/series must then answer 500 with the store's ErrCorrupt
// error, on every call (the store refuses without reading the damaged
// pages again), never drop the connection on a panic; and the daemon must
// still stop when asked. A new daemon on that store refuses to start with
// the same kind of error.
func TestDamagedStoreWhileRunning(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	path := testkit.ExampleConfig(t, dir, true, map[string]string{
		"listen: 127.0.0.1:9464":   "listen: " + addr,
		"token_file: lbtune.token": `token_file: ""`,
	})
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	d, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "store checked") {
		t.Errorf("start log lacks the store check: %s", logs.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()

	get := func() (int, string, error) {
		resp, err := http.Get("http://" + addr + "/v1/series?pool=web")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	// Wait for a few snapshots, then damage every page past the meta pages.
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body, err := get()
		if err == nil && code == 200 && strings.Count(body, "{") >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no series within 15 s: %d %s %v", code, body, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	f, err := os.OpenFile(cfg.Store.Path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	for off := int64(2 * 4096); off < st.Size(); off += 4096 {
		if _, err := f.WriteAt([]byte{0x7f, 0x7f}, off+8); err != nil { // page flags
			t.Fatal(err)
		}
	}
	_ = f.Close()

	var first string
	for i := 0; i < 20; i++ {
		code, body, err := get()
		if err != nil {
			t.Fatalf("GET /v1/series after the damage: %v (a panic drops the connection)", err)
		}
		if code == 200 {
			time.Sleep(100 * time.Millisecond) // not read a damaged page yet
			continue
		}
		if code != 500 || !strings.Contains(body, "store file is damaged") || !strings.Contains(body, "lbtune dataset recover") {
			t.Fatalf("GET /v1/series: %d %s, want 500 with the store's ErrCorrupt error", code, body)
		}
		if first == "" {
			first = body
		} else if body != first {
			t.Fatalf("later call: %s, want the same error as the first: %s", body, first)
		}
	}
	if first == "" {
		t.Fatal("the damage was never met")
	}
	if err := d.store.Failed(); !errors.Is(err, datasets.ErrCorrupt) || !strings.Contains(first, err.Error()) {
		t.Errorf("store Failed() = %v; the API answered %s", err, first)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop within 20 s of cancel")
	}
	if _, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now); !errors.Is(err, datasets.ErrCorrupt) {
		t.Fatalf("New on the damaged store: %v, want ErrCorrupt", err)
	}
}
