package enginetest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine"
)

// The engine modules' own tests serve captured engine responses (the
// *.http files of shared/fixtures/engines, copied into each module's
// testdata/captures) from a loopback server and compare what their driver
// makes of them with golden JSON files. These helpers are shared so the
// four modules do not each carry a copy.

// capture is the response half of a captured exchange.
type capture struct {
	status int
	header [][2]string
	body   []byte
}

func loadCapture(t *testing.T, dir, name string) capture {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	_, resp, ok := bytes.Cut(data, []byte("\n### RESPONSE\n"))
	head, body, ok2 := bytes.Cut(resp, []byte("\n\n"))
	if !ok || !ok2 {
		t.Fatalf("%s: not a capture", name)
	}
	lines := strings.Split(string(head), "\n")
	fields := strings.Fields(lines[0])
	if len(fields) < 2 {
		t.Fatalf("%s: bad status line %q", name, lines[0])
	}
	c := capture{body: body}
	if c.status, err = strconv.Atoi(fields[1]); err != nil {
		t.Fatalf("%s: bad status line %q", name, lines[0])
	}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		c.header = append(c.header, [2]string{k, strings.TrimSpace(v)})
	}
	return c
}

// Replay serves the captures in dir by route — "GET /path", or
// "POST /path model" for a JSON body naming a model — and returns the
// server's URL. Any other request fails the test, and so does a route that
// was never asked for. The server closes when the test ends.
func Replay(t *testing.T, dir string, routes map[string]string) string {
	t.Helper()
	caps := map[string]capture{}
	for route, file := range routes {
		caps[route] = loadCapture(t, dir, file)
	}
	var mu sync.Mutex
	asked := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := r.Method + " " + r.URL.Path
		var body struct {
			Model string `json:"model"`
		}
		if json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body) == nil && body.Model != "" {
			route += " " + body.Model
		}
		c, ok := caps[route]
		if !ok {
			t.Errorf("unexpected request %q", route)
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		asked[route] = true
		mu.Unlock()
		for _, h := range c.header {
			switch strings.ToLower(h[0]) {
			case "content-length", "transfer-encoding", "date":
			default:
				w.Header().Add(h[0], h[1])
			}
		}
		w.WriteHeader(c.status)
		_, _ = w.Write(c.body)
	}))
	t.Cleanup(func() {
		srv.Close()
		mu.Lock()
		defer mu.Unlock()
		for route := range caps {
			if !asked[route] {
				t.Errorf("the driver never asked for %q", route)
			}
		}
	})
	return srv.URL
}

// ProbeResult is what a user sees of an Observation (Latency varies).
type ProbeResult struct {
	Outcome      engine.Outcome      `json:"outcome"`
	Version      string              `json:"version"`
	Capabilities engine.Capabilities `json:"capabilities"`
	Reason       string              `json:"reason,omitempty"`
}

// Golden compares got, as indented JSON, with dir/name.json; with update
// it rewrites the file instead (review the diff).
func Golden(t *testing.T, dir, name string, got any, update bool) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join(dir, name+".json")
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update writes it)", err, t.Name())
	}
	if !bytes.Equal(want, b) {
		t.Errorf("differs from %s (go test -run %s -update rewrites it):\n got %s\nwant %s", path, t.Name(), b, want)
	}
}

// Context is a context cancelled after d or when the test ends.
func Context(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// ProbeResultOf keeps the parts of o a golden file records.
func ProbeResultOf(o engine.Observation) ProbeResult {
	return ProbeResult{Outcome: o.Outcome, Version: o.Version, Capabilities: o.Capabilities, Reason: o.Reason}
}
