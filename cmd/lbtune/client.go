package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// client talks to a running daemon's API: the commands mode, scale,
// pool, node and template use it.
type client struct {
	addr      *string
	tokenFile *string
}

// clientFlags adds --addr and --token-file to fs. Their defaults come
// from $LBTUNE_ADDR and $LBTUNE_TOKEN_FILE when set.
func clientFlags(fs *flag.FlagSet) *client {
	addr := os.Getenv("LBTUNE_ADDR")
	if addr == "" {
		addr = "127.0.0.1:9464"
	}
	tok := os.Getenv("LBTUNE_TOKEN_FILE")
	if tok == "" {
		tok = "lbtune.token"
	}
	return &client{
		addr:      fs.String("addr", addr, "daemon API address host:port ($LBTUNE_ADDR)"),
		tokenFile: fs.String("token-file", tok, "file holding the API bearer token ($LBTUNE_TOKEN_FILE)"),
	}
}

// post sends body to path with the bearer token and returns the decoded
// JSON answer; a non-200 answer is an error carrying the daemon's message.
func (c *client) post(ctx context.Context, path, contentType string, body []byte) (map[string]any, error) {
	tok, err := os.ReadFile(*c.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("read token: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	url := "http://" + strings.TrimPrefix(*c.addr, "http://") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("daemon at %s: %w", *c.addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer of %s: %w", path, err)
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	if resp.StatusCode != http.StatusOK {
		if msg, ok := out["error"].(string); ok {
			return nil, fmt.Errorf("daemon refused (%s): %s", resp.Status, msg)
		}
		return nil, fmt.Errorf("daemon refused (%s): %s", resp.Status, bytes.TrimSpace(b))
	}
	return out, nil
}

// postJSON sends v as JSON.
func (c *client) postJSON(ctx context.Context, path string, v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return c.post(ctx, path, "application/json", b)
}
