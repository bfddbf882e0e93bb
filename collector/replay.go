package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// maxDocument bounds how much of one statistics document a source reads, so
// a runaway or hostile endpoint cannot exhaust memory.
const maxDocument = 64 << 20

// replayFile is one capture to replay.
type replayFile struct {
	path string
}

// replayFiles lists the captures under path. A regular file is one capture.
// For a directory, pick is called for each entry in name order with the
// entry's name and whether it is a directory; it returns the path relative
// to the directory of the file to read for that entry, or "" to skip it.
func replayFiles(path string, pick func(name string, dir bool) string) ([]replayFile, error) {
	if path == "" {
		return nil, errors.New("empty path")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []replayFile{{path: path}}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var files []replayFile
	for _, e := range entries {
		rel := pick(e.Name(), e.IsDir())
		if rel == "" {
			continue
		}
		p := filepath.Join(path, rel)
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			continue
		}
		files = append(files, replayFile{path: p})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("directory %s holds no capture", path)
	}
	return files, nil
}

// replay is a Source that returns one snapshot per recorded capture, in
// order, then ErrExhausted. It is safe for concurrent use.
type replay struct {
	uri   string
	files []replayFile
	// parse turns one capture into a snapshot under the scrape's ctx; name
	// is the capture's path.
	parse func(ctx context.Context, data []byte, name string) (Snapshot, error)

	mu   sync.Mutex
	next int
}

func (r *replay) String() string { return r.uri }

// Scrape returns the next capture's snapshot, or ErrExhausted after the last.
func (r *replay) Scrape(ctx context.Context) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", r.uri, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next >= len(r.files) {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", r.uri, ErrExhausted)
	}
	f := r.files[r.next]
	r.next++
	data, err := readLimited(f.path)
	if err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", r.uri, err)
	}
	snap, err := r.parse(ctx, data, f.path)
	if err != nil {
		return Snapshot{}, fmt.Errorf("capture %s: %w", f.path, err)
	}
	if err := snap.Validate(); err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: capture %s: %w", r.uri, f.path, err)
	}
	return snap, nil
}

// Len is the number of captures the replay holds.
func (r *replay) Len() int { return len(r.files) }

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDocument+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxDocument {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, maxDocument)
	}
	return data, nil
}

// webGetter fetches one statistics document over HTTP.
type webGetter struct {
	url    string
	client *http.Client
}

func newWebGetter(raw string) (webGetter, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return webGetter{}, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return webGetter{}, fmt.Errorf("want an http(s) URL with a host, got %q", raw)
	}
	// The client has no timeout of its own: every request runs under the
	// scrape's context, which carries the Loop's per-tick deadline.
	return webGetter{url: raw, client: &http.Client{}}, nil
}

// get returns the body of a 200 response, read under ctx.
func (w webGetter) get(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s: HTTP %s", w.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", w.url, err)
	}
	if len(body) > maxDocument {
		return nil, fmt.Errorf("GET %s: body larger than %d bytes", w.url, maxDocument)
	}
	return body, nil
}

// IsReplay reports whether src replays recorded captures (vts+file:,
// haproxy+file:, nginxlog+file:...?replay=): such a source should be
// scraped back to back until ErrExhausted, not on a wall-clock interval.
func IsReplay(src Source) bool {
	switch s := src.(type) {
	case *replay:
		return true
	case *logFile:
		return s.window > 0
	}
	return false
}
