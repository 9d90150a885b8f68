package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/engine/enginetest"
	"github.com/unjuno/flm/core/flmerr"
)

var th = engine.Thresholds{Latency: 1500 * time.Millisecond, MaxNetworkFailures: 3}

func obs(o engine.Outcome, ms int) engine.Observation {
	return engine.Observation{Outcome: o, Latency: time.Duration(ms) * time.Millisecond, Reason: "r"}
}

// run feeds a sequence of observations through Next and returns the states.
func run(installed, userAdded bool, seq ...engine.Observation) []string {
	var h engine.History
	var out []string
	for _, o := range seq {
		v := engine.Next(h, o, installed, userAdded, th)
		h = v.History
		if !v.Present {
			out = append(out, "absent")
			continue
		}
		out = append(out, string(v.Status.State))
	}
	return out
}

func TestStateMachine(t *testing.T) {
	ok, slow, busy := obs(engine.OutcomeOK, 10), obs(engine.OutcomeOK, 1500), obs(engine.OutcomeBusy, 5)
	net, foreign, broken := obs(engine.OutcomeNetwork, 0), obs(engine.OutcomeForeign, 3), obs(engine.OutcomeBroken, 3)
	refused := engine.Observation{Outcome: engine.OutcomeNetwork, Reason: "connection refused", Refused: true}
	cases := []struct {
		name            string
		installed, user bool
		seq             []engine.Observation
		want            string
	}{
		{"healthy", false, false, []engine.Observation{ok}, "running-healthy"},
		{"slow is degraded", false, false, []engine.Observation{slow, ok}, "running-degraded,running-healthy"},
		{"busy stays degraded for 3 checks", false, false, []engine.Observation{ok, busy, ok, ok, ok}, "running-healthy,running-degraded,running-degraded,running-degraded,running-healthy"},
		{"down after max failures", false, false, []engine.Observation{ok, net, net, net, net}, "running-healthy,running-degraded,running-degraded,error-network,error-network"},
		{"recovers", false, false, []engine.Observation{ok, net, net, net, ok}, "running-healthy,running-degraded,running-degraded,error-network,running-healthy"},
		{"nothing there", false, false, []engine.Observation{net, net, net, net}, "absent,absent,absent,absent"},
		{"installed, silent", true, false, []engine.Observation{net, net, net, net}, "installed-only,installed-only,installed-only,installed-only"},
		{"foreign server on default port", false, false, []engine.Observation{foreign}, "absent"},
		{"foreign server, engine installed", true, false, []engine.Observation{foreign}, "installed-only"},
		{"foreign server on a declared endpoint", false, true, []engine.Observation{foreign}, "error-api"},
		{"declared endpoint down", false, true, []engine.Observation{net}, "error-network"},
		{"garbage from the engine", false, false, []engine.Observation{ok, broken, ok}, "running-healthy,error-api,running-healthy"},
		{"installed engine stopped", true, false, []engine.Observation{ok, refused, refused, refused, refused, ok}, "running-healthy,running-degraded,running-degraded,installed-only,installed-only,running-healthy"},
		{"installed engine timing out", true, false, []engine.Observation{ok, net, net, net}, "running-healthy,running-degraded,running-degraded,error-network"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := strings.Join(run(c.installed, c.user, c.seq...), ","); got != c.want {
				t.Fatalf("\n got %s\nwant %s", got, c.want)
			}
		})
	}
	v := engine.Next(engine.History{}, slow, false, false, th)
	if v.Status.LatencyMS != 1500 || !strings.Contains(v.Status.Reason, "1500 ms") {
		t.Fatalf("slow status = %+v", v.Status)
	}
	var h engine.History
	for range 2 {
		h = engine.Next(h, ok, false, false, th).History
	}
	v = engine.Next(h, net, false, false, th)
	if v.Status.ConsecutiveFailures != 1 {
		t.Fatalf("consecutive failures = %d", v.Status.ConsecutiveFailures)
	}
	if engine.ErrorRate(engine.RunningHealthy) != 0 || engine.ErrorRate(engine.RunningDegraded) != 0.1 || engine.ErrorRate(engine.ErrorAPI) != 1 {
		t.Fatal("error rates")
	}
}

type fixture struct {
	det     *engine.Detector
	drivers map[engine.Kind]*enginetest.Driver
	cache   *enginetest.MemCache
	now     time.Time
}

func newFixture() *fixture {
	f := &fixture{drivers: map[engine.Kind]*enginetest.Driver{}, cache: &enginetest.MemCache{}, now: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	drivers := map[engine.Kind]engine.Driver{}
	for _, k := range engine.Kinds() {
		d := &enginetest.Driver{K: k, Obs: obs(engine.OutcomeNetwork, 0)}
		f.drivers[k] = d
		drivers[k] = d
	}
	f.det = &engine.Detector{
		Drivers:   drivers,
		Defaults:  engine.DefaultEndpoints(func(string) string { return "" }),
		Endpoints: &enginetest.MemEndpoints{},
		Cache:     f.cache, Log: f.cache,
		Installed: func(engine.Kind) bool { return false },
		Now:       func() time.Time { return f.now },
	}
	return f
}

func ids(states []engine.State) string {
	var s []string
	for _, st := range states {
		s = append(s, st.ID+"="+string(st.Status.State))
	}
	return strings.Join(s, ",")
}

func TestDetectorCacheAndFilter(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	f.drivers[engine.Ollama].Set(engine.Observation{Outcome: engine.OutcomeOK, Latency: 3 * time.Millisecond, Version: "0.33.0", Capabilities: engine.Capabilities{Chat: true}})
	f.drivers[engine.LlamaCPP].Set(obs(engine.OutcomeBusy, 2))
	got, err := f.det.Detect(ctx, engine.DetectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ids(got) != "llamacpp=running-degraded,ollama=running-healthy" || got[1].Version != "0.33.0" || !got[1].Capabilities.Chat || got[1].Name != "Ollama" {
		t.Fatalf("detect = %+v", got)
	}
	if len(f.cache.Logs) != 2 {
		t.Fatalf("%d health log rows, want one per present engine", len(f.cache.Logs))
	}
	probes := f.drivers[engine.Ollama].Probes

	// Within the TTL the cache answers; absent engines are not re-probed either.
	f.now = f.now.Add(engine.CacheTTL - time.Second)
	f.drivers[engine.Ollama].Set(obs(engine.OutcomeNetwork, 0))
	got, _ = f.det.Detect(ctx, engine.DetectOptions{})
	if ids(got) != "llamacpp=running-degraded,ollama=running-healthy" || f.drivers[engine.Ollama].Probes != probes || f.drivers[engine.VLLM].Probes != 1 {
		t.Fatalf("cached detect = %s (probes %d)", ids(got), f.drivers[engine.Ollama].Probes)
	}
	// --engine filters the cached answer too.
	got, _ = f.det.Detect(ctx, engine.DetectOptions{EngineID: "llamacpp"})
	if ids(got) != "llamacpp=running-degraded" {
		t.Fatalf("--engine llamacpp = %s", ids(got))
	}
	// --fresh probes again.
	got, _ = f.det.Detect(ctx, engine.DetectOptions{Fresh: true, EngineID: "ollama"})
	if ids(got) != "ollama=running-degraded" {
		t.Fatalf("--fresh = %s", ids(got))
	}
	// After the TTL everything is probed.
	f.now = f.now.Add(engine.CacheTTL)
	f.det.Detect(ctx, engine.DetectOptions{})
	if f.drivers[engine.VLLM].Probes != 2 {
		t.Fatalf("vllm probed %d times", f.drivers[engine.VLLM].Probes)
	}
	if _, err := f.det.Detect(ctx, engine.DetectOptions{EngineID: "nope"}); !flmerr.Is(err, flmerr.EngineNotFound) {
		t.Fatalf("unknown engine = %v", err)
	}
}

func TestDetectorBoundedByBudget(t *testing.T) {
	f := newFixture()
	f.det.Budget = 300 * time.Millisecond
	for _, d := range f.drivers {
		d.Block = true
	}
	start := time.Now()
	got, err := f.det.Detect(context.Background(), engine.DetectOptions{Fresh: true})
	if err != nil || len(got) != 0 {
		t.Fatalf("detect = %v, %v", got, err)
	}
	// All four blocked probes ran concurrently: about one budget, not four.
	if el := time.Since(start); el > 3*f.det.Budget {
		t.Fatalf("detection took %v with a %v budget", el, f.det.Budget)
	}
}

func TestListModels(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	f.drivers[engine.Ollama].Set(obs(engine.OutcomeOK, 1))
	f.drivers[engine.Ollama].List = []string{"llama3:latest", "tiny:latest"}
	f.drivers[engine.LlamaCPP].Set(obs(engine.OutcomeOK, 1))
	f.drivers[engine.LlamaCPP].List = []string{"org/model:Q4"}
	f.drivers[engine.VLLM].Set(obs(engine.OutcomeOK, 1))
	f.drivers[engine.VLLM].ListFn = func() error { return errors.New("boom") }
	states, _ := f.det.Detect(ctx, engine.DetectOptions{})
	models, failed := f.det.ListModels(ctx, states)
	var got []string
	for _, m := range models {
		got = append(got, m.ID)
	}
	if strings.Join(got, " ") != "flm://llamacpp/org/model:Q4 flm://ollama/llama3:latest flm://ollama/tiny:latest" {
		t.Fatalf("models = %v", got)
	}
	if len(failed) != 1 || failed["vllm"] == nil {
		t.Fatalf("failed = %v", failed)
	}
}
