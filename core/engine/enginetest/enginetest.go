// Package enginetest provides in-memory fakes of the engine package's
// stores, a scripted Driver, and the conformance suites store adapters run.
package enginetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine"
)

// MemEndpoints is an in-memory engine.EndpointStore.
type MemEndpoints struct {
	mu  sync.Mutex
	eps []engine.Endpoint
}

var _ engine.EndpointStore = (*MemEndpoints)(nil)

// ListEndpoints implements engine.EndpointStore.
func (m *MemEndpoints) ListEndpoints(ctx context.Context) ([]engine.Endpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.eps), ctx.Err()
}

// AddEndpoint implements engine.EndpointStore.
func (m *MemEndpoints) AddEndpoint(ctx context.Context, ep engine.Endpoint, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if slices.ContainsFunc(m.eps, func(e engine.Endpoint) bool { return e.ID == ep.ID }) {
		return fmt.Errorf("endpoint %s exists", ep.ID)
	}
	m.eps = append(m.eps, ep)
	return ctx.Err()
}

// RemoveEndpoint implements engine.EndpointStore.
func (m *MemEndpoints) RemoveEndpoint(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.IndexFunc(m.eps, func(e engine.Endpoint) bool { return e.ID == id })
	if i < 0 {
		return engine.ErrNotFound
	}
	m.eps = slices.Delete(m.eps, i, i+1)
	return ctx.Err()
}

// MemCache is an in-memory engine.StateCache and engine.HealthLog.
type MemCache struct {
	mu      sync.Mutex
	entries map[string]engine.CachedEntry
	Logs    []LogRow
}

// LogRow is one AppendHealth call.
type LogRow struct {
	EngineID string
	Status   engine.Status
	At       time.Time
}

var (
	_ engine.StateCache = (*MemCache)(nil)
	_ engine.HealthLog  = (*MemCache)(nil)
)

// LoadStates implements engine.StateCache.
func (m *MemCache) LoadStates(ctx context.Context) (map[string]engine.CachedEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.entries), ctx.Err()
}

// SaveState implements engine.StateCache.
func (m *MemCache) SaveState(ctx context.Context, id string, c engine.Cached, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil {
		m.entries = map[string]engine.CachedEntry{}
	}
	m.entries[id] = engine.CachedEntry{Cached: c, At: at}
	return ctx.Err()
}

// AppendHealth implements engine.HealthLog.
func (m *MemCache) AppendHealth(ctx context.Context, id string, st engine.Status, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Logs = append(m.Logs, LogRow{id, st, at})
	return ctx.Err()
}

// Driver is a scripted engine.Driver: it answers every probe with Obs (or
// blocks until ctx ends when Block is set).
type Driver struct {
	K engine.Kind
	// H is what Habits declares.
	H      engine.Habits
	mu     sync.Mutex
	Obs    engine.Observation
	Block  bool
	List   []string
	ListFn func() error
	Probes int
}

var _ engine.Driver = (*Driver)(nil)

// Kind implements engine.Driver.
func (d *Driver) Kind() engine.Kind { return d.K }

// Habits implements engine.Driver.
func (d *Driver) Habits() engine.Habits { return d.H }

// Set changes the scripted observation.
func (d *Driver) Set(o engine.Observation) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Obs = o
}

// Probe implements engine.Driver.
func (d *Driver) Probe(ctx context.Context, ep engine.Endpoint) engine.Observation {
	d.mu.Lock()
	d.Probes++
	obs, block := d.Obs, d.Block
	d.mu.Unlock()
	if block {
		<-ctx.Done()
		return engine.Observation{Outcome: engine.OutcomeNetwork, Reason: ctx.Err().Error()}
	}
	return obs
}

// Models implements engine.Driver.
func (d *Driver) Models(ctx context.Context, ep engine.Endpoint) ([]engine.Model, error) {
	if d.ListFn != nil {
		if err := d.ListFn(); err != nil {
			return nil, err
		}
	}
	var out []engine.Model
	for _, n := range d.List {
		out = append(out, engine.Model{ID: engine.ModelID(ep.ID, n), EngineID: ep.ID, EngineKind: d.K, Name: n})
	}
	return out, ctx.Err()
}

// RunEndpointStore is the conformance suite for engine.EndpointStore.
func RunEndpointStore(t *testing.T, newStore func(t *testing.T) engine.EndpointStore) {
	ctx := context.Background()
	s := newStore(t)
	if l, err := s.ListEndpoints(ctx); err != nil || len(l) != 0 {
		t.Fatalf("new store lists %v, %v", l, err)
	}
	a := engine.Endpoint{ID: "vllm-b", Kind: engine.VLLM, BaseURL: "http://127.0.0.1:8001", APIKeyEnv: "VLLM_KEY", UserAdded: true}
	b := engine.Endpoint{ID: "ollama-2", Kind: engine.Ollama, BaseURL: "http://10.0.0.2:11434/prefix", UserAdded: true}
	now := time.Now()
	for _, ep := range []engine.Endpoint{a, b} {
		if err := s.AddEndpoint(ctx, ep, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddEndpoint(ctx, a, now); err == nil {
		t.Fatal("duplicate id accepted")
	}
	l, err := s.ListEndpoints(ctx)
	if err != nil || len(l) != 2 || l[0] != a || l[1] != b {
		t.Fatalf("List = %+v, %v; want [a b] in insertion order", l, err)
	}
	if err := s.RemoveEndpoint(ctx, "vllm-b"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveEndpoint(ctx, "vllm-b"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("second remove = %v, want ErrNotFound", err)
	}
	if l, _ := s.ListEndpoints(ctx); len(l) != 1 || l[0].ID != "ollama-2" {
		t.Fatalf("after remove: %+v", l)
	}
}

// RunStateCache is the conformance suite for engine.StateCache.
func RunStateCache(t *testing.T, newStore func(t *testing.T) engine.StateCache) {
	ctx := context.Background()
	s := newStore(t)
	at := time.Date(2026, 11, 27, 10, 0, 0, 250_000_000, time.UTC)
	c := engine.Cached{
		State:   engine.State{ID: "ollama", Kind: engine.Ollama, BaseURL: "http://127.0.0.1:11434", Version: "0.33.0", Status: engine.Status{State: engine.RunningHealthy, LatencyMS: 4}},
		Present: true,
		History: engine.History{Recent: []engine.Outcome{engine.OutcomeBusy, engine.OutcomeOK}, SeenRunning: true},
	}
	if err := s.SaveState(ctx, "ollama", c, at); err != nil {
		t.Fatal(err)
	}
	c2 := c
	c2.State.Status.LatencyMS = 9
	if err := s.SaveState(ctx, "ollama", c2, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveState(ctx, "vllm", engine.Cached{Present: false}, at); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadStates(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("LoadStates = %v, %v", got, err)
	}
	e := got["ollama"]
	if !e.At.Equal(at.Add(time.Second)) || e.State.Status.LatencyMS != 9 || !e.Present || !e.History.SeenRunning ||
		strings.Join(outcomes(e.History.Recent), ",") != "busy,ok" {
		t.Fatalf("cached ollama = %+v", e)
	}
	if got["vllm"].Present {
		t.Fatal("absent engine came back present")
	}
}

func outcomes(o []engine.Outcome) []string {
	s := make([]string, len(o))
	for i, x := range o {
		s[i] = string(x)
	}
	return s
}
