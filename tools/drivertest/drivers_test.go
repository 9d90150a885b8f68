package drivertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/engine/enginehttp"
	"github.com/unjuno/flm/core/engine/enginetest"
	llamacpp "github.com/unjuno/flm/engine-llamacpp"
	lmstudio "github.com/unjuno/flm/engine-lmstudio"
	ollama "github.com/unjuno/flm/engine-ollama"
	vllm "github.com/unjuno/flm/engine-vllm"
	"github.com/unjuno/flm/tools/enginefake"
)

func drivers() map[engine.Kind]engine.Driver {
	c := enginehttp.New(func(string) string { return "" })
	return map[engine.Kind]engine.Driver{
		engine.Ollama: ollama.New(c), engine.VLLM: vllm.New(c), engine.LMStudio: lmstudio.New(c), engine.LlamaCPP: llamacpp.New(c),
	}
}

func start(t *testing.T, opts enginefake.Options) *enginefake.Server {
	t.Helper()
	f, err := enginefake.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// detector checks one user-added endpoint (so every state is visible).
type detector struct {
	det *engine.Detector
	now time.Time
}

func newDetector(ep engine.Endpoint) *detector {
	d := &detector{now: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	store := &enginetest.MemEndpoints{}
	_ = store.AddEndpoint(context.Background(), ep, d.now)
	cache := &enginetest.MemCache{}
	d.det = &engine.Detector{
		Drivers: drivers(), Endpoints: store, Cache: cache, Log: cache,
		Installed:  func(engine.Kind) bool { return false },
		Thresholds: engine.Thresholds{Latency: 250 * time.Millisecond, MaxNetworkFailures: 3},
		Now:        func() time.Time { return d.now },
		Budget:     2 * time.Second,
	}
	return d
}

func (d *detector) check(t *testing.T) engine.State {
	t.Helper()
	d.now = d.now.Add(time.Second)
	states, err := d.det.Detect(context.Background(), engine.DetectOptions{Fresh: true})
	if err != nil || len(states) != 1 {
		t.Fatalf("detect = %+v, %v", states, err)
	}
	return states[0]
}

func expect(t *testing.T, st engine.State, want engine.StateName, what string) {
	t.Helper()
	if st.Status.State != want {
		t.Fatalf("%s: state %s (%s), want %s", what, st.Status.State, st.Status.Reason, want)
	}
}

// What each kind shows while its model loads (enginefake.FailLoading): a
// llama-server answers 503 "Loading model" everywhere and vLLM's /health
// answers 503 (degraded); LM Studio (no model loaded yet) and Ollama
// (requests for the loading model wait, /api/version answers) stay
// healthy: their APIs are up.
var loadingState = map[engine.Kind]engine.StateName{
	engine.LlamaCPP: engine.RunningDegraded,
	engine.VLLM:     engine.RunningDegraded,
	engine.LMStudio: engine.RunningHealthy,
	engine.Ollama:   engine.RunningHealthy,
}

func TestStatesPerKind(t *testing.T) {
	for _, k := range engine.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			f := start(t, enginefake.Options{Kind: enginefake.Kind(k)})
			ep := engine.Endpoint{ID: "e", Kind: k, BaseURL: f.URL(), UserAdded: true}
			d := newDetector(ep)

			st := d.check(t)
			expect(t, st, engine.RunningHealthy, "healthy")
			if k != engine.LMStudio && st.Version == "" {
				t.Fatal("no version")
			}
			if !st.Capabilities.Chat || !st.Capabilities.ChatStream {
				t.Fatalf("capabilities %+v", st.Capabilities)
			}

			f.SetLatency(400 * time.Millisecond)
			st = d.check(t)
			expect(t, st, engine.RunningDegraded, "slow")
			f.SetLatency(0)
			expect(t, d.check(t), engine.RunningHealthy, "fast again")

			f.SetFailure(enginefake.FailLoading)
			expect(t, d.check(t), loadingState[k], "loading")
			f.SetFailure(enginefake.FailNone)
			// A busy answer keeps the engine degraded for the last 3 checks.
			want := []engine.StateName{engine.RunningHealthy, engine.RunningHealthy, engine.RunningHealthy}
			if loadingState[k] == engine.RunningDegraded {
				want = []engine.StateName{engine.RunningDegraded, engine.RunningDegraded, engine.RunningHealthy}
			}
			for i, w := range want {
				expect(t, d.check(t), w, fmt.Sprintf("recovering from loading, check %d", i+1))
			}

			f.SetFailure(enginefake.FailMalformed)
			expect(t, d.check(t), engine.ErrorAPI, "garbage JSON")
			f.SetFailure(enginefake.FailNone)
			expect(t, d.check(t), engine.RunningHealthy, "recovered from garbage")

			// Down: degraded, then error-network after 3 failed checks.
			addr := f.Addr()
			f.Close()
			for i, w := range []engine.StateName{engine.RunningDegraded, engine.RunningDegraded, engine.ErrorNetwork, engine.ErrorNetwork} {
				st := d.check(t)
				expect(t, st, w, fmt.Sprintf("down, check %d", i+1))
				if st.Status.ConsecutiveFailures != i+1 {
					t.Fatalf("consecutive failures %d, want %d", st.Status.ConsecutiveFailures, i+1)
				}
			}
			// Back on the same address: healthy at once.
			start(t, enginefake.Options{Kind: enginefake.Kind(k), Addr: addr})
			expect(t, d.check(t), engine.RunningHealthy, "back up")
		})
	}
}

// Another engine (or FLM's own proxy) on an endpoint is never taken for
// the declared kind.
func TestWrongServerNeverHealthy(t *testing.T) {
	for _, declared := range engine.Kinds() {
		for _, actual := range engine.Kinds() {
			if declared == actual {
				continue
			}
			f := start(t, enginefake.Options{Kind: enginefake.Kind(actual)})
			d := newDetector(engine.Endpoint{ID: "e", Kind: declared, BaseURL: f.URL(), UserAdded: true})
			st := d.check(t)
			if st.Status.State != engine.ErrorAPI {
				t.Errorf("%s declared, %s running: %s (%s)", declared, actual, st.Status.State, st.Status.Reason)
			}
			// At a default endpoint the foreign server is simply not that engine.
			drv := drivers()[declared]
			if o := drv.Probe(context.Background(), engine.Endpoint{ID: "x", Kind: declared, BaseURL: f.URL()}); o.Outcome == engine.OutcomeOK || o.Outcome == engine.OutcomeBusy {
				t.Errorf("%s driver took %s for itself", declared, actual)
			}
		}
	}
}

// The union of four engines' models, with names holding '/', ':', spaces
// and unicode, under flm:// ids that parse back.
func TestModelsAcrossFourEngines(t *testing.T) {
	names := []string{"org/model:Q4", "has space", "ünïcödé"}
	var eps []engine.Endpoint
	for _, k := range engine.Kinds() {
		var ms []enginefake.Model
		for _, n := range names {
			ms = append(ms, enginefake.Model{Name: n, ContextLength: 4096})
		}
		if k == engine.LlamaCPP {
			ms = ms[:1] // llama-server serves one model
		}
		f := start(t, enginefake.Options{Kind: enginefake.Kind(k), Models: ms})
		eps = append(eps, engine.Endpoint{ID: string(k), Kind: k, BaseURL: f.URL()})
	}
	det := &engine.Detector{Drivers: drivers(), Defaults: eps, Installed: func(engine.Kind) bool { return false }}
	states, err := det.Detect(context.Background(), engine.DetectOptions{})
	if err != nil || len(states) != 4 {
		t.Fatalf("detect = %+v, %v", states, err)
	}
	models, failed := det.ListModels(context.Background(), states)
	if len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	var ids []string
	for _, m := range models {
		ids = append(ids, m.ID)
		e, n, err := engine.ParseModelID(m.ID)
		if err != nil || e != m.EngineID || n != m.Name {
			t.Fatalf("id %q parses to %q %q %v", m.ID, e, n, err)
		}
		if m.ContextLength == nil || *m.ContextLength != 4096 {
			t.Errorf("%s context length %v", m.ID, m.ContextLength)
		}
	}
	want := []string{
		"flm://llamacpp/org/model:Q4",
		"flm://lmstudio/has space", "flm://lmstudio/org/model:Q4", "flm://lmstudio/ünïcödé",
		"flm://ollama/has space:latest", "flm://ollama/org/model:Q4", "flm://ollama/ünïcödé:latest",
		"flm://vllm/has space", "flm://vllm/org/model:Q4", "flm://vllm/ünïcödé",
	}
	slices.Sort(want)
	if strings.Join(ids, "\n") != strings.Join(want, "\n") {
		t.Fatalf("models:\n%s\nwant:\n%s", strings.Join(ids, "\n"), strings.Join(want, "\n"))
	}
	e, n, _ := engine.ParseModelID("flm://llamacpp/org/model:Q4")
	if e != "llamacpp" || n != "org/model:Q4" {
		t.Fatal("flm://llamacpp/org/model:Q4 must parse to llamacpp, org/model:Q4")
	}
}
