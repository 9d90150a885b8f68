package vllm

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
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
	"github.com/unjuno/flm/core/engine/enginehttp"
)

// The captures under testdata/captures are verbatim copies of
// shared/fixtures/engines/vllm (tools/enginefake checks that they still
// match). A test serves them from a loopback httptest server and compares
// what the driver makes of them with testdata/golden/*.json; -update
// rewrites the golden files from the driver's output (review the diff).

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the driver's output")

// capture is the response half of a captured exchange.
type capture struct {
	status int
	header [][2]string
	body   []byte
}

func loadCapture(t *testing.T, name string) capture {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "captures", name))
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

// replay serves captures by route: "GET /path", or "POST /path model" for a
// JSON body naming a model. Any other request fails the test, and so does a
// route the driver never asked for.
func replay(t *testing.T, routes map[string]string) string {
	t.Helper()
	caps := map[string]capture{}
	for route, file := range routes {
		caps[route] = loadCapture(t, file)
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
		for route := range caps {
			if !asked[route] {
				t.Errorf("the driver never asked for %q", route)
			}
		}
	})
	return srv.URL
}

// probeResult is what a user sees of an Observation (Latency varies).
type probeResult struct {
	Outcome      engine.Outcome      `json:"outcome"`
	Version      string              `json:"version"`
	Capabilities engine.Capabilities `json:"capabilities"`
	Reason       string              `json:"reason,omitempty"`
}

func golden(t *testing.T, name string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
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

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func newDriver() *Driver { return New(enginehttp.New(func(string) string { return "" })) }

func endpoint(url string) engine.Endpoint {
	return engine.Endpoint{ID: "vllm", Kind: engine.VLLM, BaseURL: url}
}

// TestProbeFingerprint: /version, models owned_by "vllm" and /health 200
// make a ready vLLM; a 503 /health (engine process dead) keeps it vLLM but
// busy; a 401 on /v1/models names the missing key.
func TestProbeFingerprint(t *testing.T) {
	ok := map[string]string{"GET /version": "version.http", "GET /v1/models": "v1_models.http", "GET /health": "health_ok.http"}
	url := replay(t, ok)
	o := newDriver().Probe(ctx(t), endpoint(url))
	if o.Outcome != engine.OutcomeOK || o.Version != "0.32.0" || !o.Capabilities.Chat {
		t.Errorf("probe = %+v, want ok, version 0.32.0, chat", o)
	}
	golden(t, "probe_ok", probeResult{o.Outcome, o.Version, o.Capabilities, o.Reason})

	url = replay(t, map[string]string{"GET /version": "version.http", "GET /v1/models": "v1_models.http", "GET /health": "health_engine_dead.http"})
	o = newDriver().Probe(ctx(t), endpoint(url))
	if o.Outcome != engine.OutcomeBusy || o.Version != "0.32.0" {
		t.Errorf("engine dead: probe = %+v, want busy with the version", o)
	}
	golden(t, "probe_engine_dead", probeResult{o.Outcome, o.Version, o.Capabilities, o.Reason})

	url = replay(t, map[string]string{"GET /version": "version.http", "GET /v1/models": "error_unauthorized.http"})
	o = newDriver().Probe(ctx(t), endpoint(url))
	if o.Outcome != engine.OutcomeBroken || !strings.Contains(o.Reason, "--api-key-env") {
		t.Errorf("unauthorized: probe = %+v, want broken naming --api-key-env", o)
	}
	golden(t, "probe_unauthorized", probeResult{o.Outcome, o.Version, o.Capabilities, o.Reason})
}

// TestModelsList: served names with max_model_len as the context length; a
// LoRA adapter (max_model_len null) is listed without one.
func TestModelsList(t *testing.T) {
	url := replay(t, map[string]string{"GET /v1/models": "v1_models.http"})
	models, err := newDriver().Models(ctx(t), endpoint(url))
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 1 || models[0].ID != "flm://vllm/Qwen/Qwen2.5-1.5B-Instruct" ||
		models[0].ContextLength == nil || *models[0].ContextLength != 32768 {
		t.Errorf("models = %+v", models)
	}
	golden(t, "models", models)

	url = replay(t, map[string]string{"GET /v1/models": "v1_models_served_name_and_lora.http"})
	models, err = newDriver().Models(ctx(t), endpoint(url))
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 2 || models[0].Name != "qwen-small" || models[1].Name != "sql-lora" || models[1].ContextLength != nil {
		t.Errorf("models = %+v", models)
	}
	golden(t, "models_served_name_and_lora", models)
}
