package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/apikey/apikeytest"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/proxyctl"
)

// gatedSource is a Source whose reads can fail, panic or be held at a gate
// (a slow SQLite read), to test what refreshes do in between.
type gatedSource struct {
	keys *apikey.Service

	mu        sync.Mutex
	policy    policy.Policy
	policyErr error
	keysErr   error
	enginesFn func() // runs inside Engines (may panic)
	models    []string
	// gate, when set, holds the next Policy read after it took its value;
	// entered is closed once the read is held.
	gate    chan struct{}
	entered chan struct{}
}

func newGatedSource(t *testing.T) (*gatedSource, apikey.Issued) {
	t.Helper()
	s := &gatedSource{keys: &apikey.Service{Store: apikeytest.NewMemStore()}, policy: policy.Default()}
	k, err := s.keys.Create(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

func (s *gatedSource) Keys(ctx context.Context) ([]apikey.Record, error) {
	s.mu.Lock()
	err := s.keysErr
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.keys.List(ctx)
}

func (s *gatedSource) Policy(ctx context.Context) (policy.Policy, error) {
	s.mu.Lock()
	p, err, gate, entered := s.policy, s.policyErr, s.gate, s.entered
	s.gate, s.entered = nil, nil
	s.mu.Unlock()
	if gate != nil {
		close(entered)
		<-gate
	}
	return p, err
}

func (s *gatedSource) Engines(context.Context) ([]engine.Endpoint, []engine.State, []engine.Model, error) {
	s.mu.Lock()
	fn, names := s.enginesFn, s.models
	s.mu.Unlock()
	if fn != nil {
		fn()
	}
	const id, url = "e1", "http://127.0.0.1:1"
	var models []engine.Model
	for _, n := range names {
		models = append(models, engine.Model{ID: engine.ModelID(id, n), EngineID: id, EngineKind: engine.Ollama, Name: n})
	}
	return []engine.Endpoint{{ID: id, Kind: engine.Ollama, BaseURL: url}},
		[]engine.State{{ID: id, Kind: engine.Ollama, BaseURL: url, Status: engine.Status{State: engine.RunningHealthy}}}, models, nil
}

func (s *gatedSource) set(f func(s *gatedSource)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func mustPolicy(t *testing.T, doc string) policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startGated runs a real proxy over src on loopback.
func startGated(t *testing.T, src Source, mutate func(*Options)) (*Server, string) {
	t.Helper()
	cfg := testConfig()
	cfg.Port = freePort(t)
	opts := Options{Config: cfg, Source: src, RefreshEvery: time.Hour, DetectEvery: time.Hour}
	if mutate != nil {
		mutate(&opts)
	}
	srv, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	lns, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(lns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv, "http://" + lns[0].Addr().String()
}

func status(t *testing.T, url, key string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

const (
	denyLoopback  = `{"ip_whitelist":["10.0.0.0/8"]}`
	allowLoopback = `{"ip_whitelist":["127.0.0.1"]}`
)

// A periodic refresh that read the policy before a change and is slow to
// finish must not store it over the reload that came after the change.
func TestReloadSnapshotNeverGoesBackwards(t *testing.T) {
	src, key := newGatedSource(t)
	src.set(func(s *gatedSource) { s.policy = mustPolicy(t, denyLoopback) })
	srv, url := startGated(t, src, nil)
	if got := status(t, url, key.Plain); got != 403 {
		t.Fatalf("before: %d", got)
	}
	// A periodic refresh (what the loop runs every RefreshEvery) takes the
	// old policy and is held.
	gate, entered := make(chan struct{}), make(chan struct{})
	src.set(func(s *gatedSource) { s.gate, s.entered = gate, entered })
	periodic := make(chan error, 1)
	go func() { periodic <- srv.refreshSecurity(context.Background()) }()
	<-entered
	src.set(func(s *gatedSource) { s.policy = mustPolicy(t, allowLoopback) })
	reloaded := make(chan error, 1)
	go func() { reloaded <- srv.Reload(context.Background()) }()
	time.Sleep(50 * time.Millisecond) // the reload is waiting (or, before the fix, done)
	close(gate)
	for _, ch := range []chan error{periodic, reloaded} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if srv.snap.Load().policySum != policySum(mustPolicy(t, allowLoopback)) {
		t.Fatal("the slow periodic refresh stored the old policy over the reload")
	}
	if got := status(t, url, key.Plain); got != 200 {
		t.Fatalf("after the reload the old policy is back in force: %d", got)
	}
}

// Revocations keep reaching a running proxy while its policy cannot be
// read, and the policy keeps its last good value; the other way round too.
func TestRefreshKeysAndPolicyIndependently(t *testing.T) {
	src, key := newGatedSource(t)
	src.set(func(s *gatedSource) { s.policy = mustPolicy(t, allowLoopback) })
	srv, url := startGated(t, src, func(o *Options) { o.RefreshEvery = 20 * time.Millisecond })
	good := srv.snap.Load().policySum
	if good != policySum(mustPolicy(t, allowLoopback)) {
		t.Fatal("the policy in force is not the stored one")
	}
	src.set(func(s *gatedSource) {
		s.policyErr = flmerr.New(flmerr.PolicyInvalid, "the stored security policy is invalid")
	})
	if _, err := src.keys.Revoke(context.Background(), key.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for status(t, url, key.Plain) != 401 {
		if time.Now().After(deadline) {
			t.Fatal("a revoked key still works 3 s later: the failing policy read stopped the key refresh")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if srv.snap.Load().policySum != good {
		t.Fatal("the policy lost its last good value")
	}
	err := srv.Reload(context.Background())
	if !flmerr.Is(err, flmerr.PolicyInvalid) || !strings.Contains(err.Error(), "load policy") {
		t.Fatalf("Reload = %v; the failed part must be reported", err)
	}

	// Keys unreadable: the policy still refreshes, keys keep their value.
	k2, err := src.keys.Create(context.Background(), "second")
	if err != nil {
		t.Fatal(err)
	}
	src.set(func(s *gatedSource) {
		s.policyErr, s.keysErr = nil, errors.New("security.db is locked")
		s.policy = mustPolicy(t, `{"ip_whitelist":["127.0.0.1","10.0.0.0/8"]}`)
	})
	want := policySum(mustPolicy(t, `{"ip_whitelist":["127.0.0.1","10.0.0.0/8"]}`))
	deadline = time.Now().Add(3 * time.Second)
	for srv.snap.Load().policySum != want {
		if time.Now().After(deadline) {
			t.Fatal("the policy did not refresh while keys could not be read")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status(t, url, k2.Plain) != 401 || srv.snap.Load().keys.Active() != 0 {
		t.Fatal("keys changed although they could not be read")
	}
}

// The control channel from outside: only the token holder, only on its
// loopback listener, and the next request after it answered is judged by
// the new state.
func TestReloadOverControlChannel(t *testing.T) {
	src, key := newGatedSource(t)
	token, err := proxyctl.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	srv, url := startGated(t, src, func(o *Options) {
		o.ControlToken = token
		o.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	if !proxyctl.LoopbackAddr(srv.ControlAddr()) {
		t.Fatalf("control address %q is not loopback", srv.ControlAddr())
	}
	call := func(base, tok string) (int, proxyctl.Applied) {
		req, _ := http.NewRequest("POST", base+proxyctl.ControlPath+"?parts=security", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a proxyctl.Applied
		_ = json.NewDecoder(resp.Body).Decode(&a)
		return resp.StatusCode, a
	}
	before := srv.snap.Load().gen
	k2, _ := src.keys.Create(context.Background(), "new")
	if _, err := src.keys.Revoke(context.Background(), key.ID); err != nil {
		t.Fatal(err)
	}
	// Not on the public port, not without the token.
	if code, _ := call(url, token); code != 404 {
		t.Fatalf("control path on the public port: %d", code)
	}
	if code, _ := call("http://"+srv.ControlAddr(), strings.Repeat("0", 64)); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	if srv.snap.Load().gen != before || status(t, url, key.Plain) != 200 {
		t.Fatal("a refused control request reloaded")
	}
	start := time.Now()
	code, applied := call("http://"+srv.ControlAddr(), token)
	t.Logf("control-channel reload of keys and policy: %v round trip", time.Since(start))
	if code != 200 || applied.Generation <= before || applied.ActiveKeys != 1 || applied.Parts != proxyctl.ReloadSecurity ||
		applied.PolicySHA256 != policySum(policy.Default()) {
		t.Fatalf("reload = %d %+v", code, applied)
	}
	if status(t, url, key.Plain) != 401 || status(t, url, k2.Plain) != 200 {
		t.Fatal("the request right after the reload was judged by the old keys")
	}
	logMu.Lock()
	defer logMu.Unlock()
	if strings.Contains(logs.String(), token) {
		t.Fatal("the control token reached the log")
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// A driver panic during a background re-detection is logged; the proxy
// keeps serving and later refreshes work.
func TestRefreshInBackgroundSurvivesPanic(t *testing.T) {
	src, key := newGatedSource(t)
	srv, url := startGated(t, src, func(o *Options) { o.DetectEvery = 20 * time.Millisecond })
	src.set(func(s *gatedSource) { s.enginesFn = func() { panic("driver bug") } })
	srv.lastRefresh.Store(0)
	srv.refreshInBackground()
	time.Sleep(100 * time.Millisecond) // the goroutine and a few loop ticks panicked
	if !srv.refreshMu.TryLock() {
		t.Fatal("the panicking refresh left the engine lock held")
	}
	srv.refreshMu.Unlock()
	if status(t, url, key.Plain) != 200 {
		t.Fatal("the proxy stopped serving")
	}
	src.set(func(s *gatedSource) { s.enginesFn, s.models = nil, []string{"llama3"} })
	deadline := time.Now().Add(3 * time.Second)
	for len(srv.snap.Load().catalog.Models()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the refresh loop died with the panic")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap := srv.snap.Load()
	if snap.engines != 1 || fmt.Sprint(len(snap.catalog.Models())) != "1" {
		t.Fatalf("after recovery: %d engines, %d models", snap.engines, len(snap.catalog.Models()))
	}
}
