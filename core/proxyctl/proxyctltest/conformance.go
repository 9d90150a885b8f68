package proxyctltest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
)

// sample is a fully populated handle.
func sample(id string, port int) proxyctl.Handle {
	return proxyctl.Handle{
		ID: id, PID: 4000 + port, Port: port, HTTPSPort: port + 1, Mode: proxyctl.DevSelfSigned,
		ListenAddr: fmt.Sprintf("0.0.0.0:%d", port),
		URLs:       proxyctl.URLs{Local: fmt.Sprintf("https://127.0.0.1:%d", port+1), LAN: fmt.Sprintf("https://192.168.1.20:%d", port+1)},
		Egress:     proxyctl.Egress{Mode: proxyctl.EgressDirect},
		StartedAt:  time.Date(2026, 11, 27, 10, 9, 42, 781_000_000, time.UTC),
		InstanceID: "inst-" + id,
		Control:    proxyctl.Control{Addr: fmt.Sprintf("127.0.0.1:%d", 40000+port), Token: strings.Repeat("ab", 32)},
	}
}

func sameHandle(t *testing.T, got, want proxyctl.Handle) {
	t.Helper()
	if got.ID != want.ID || got.PID != want.PID || got.Port != want.Port || got.HTTPSPort != want.HTTPSPort ||
		got.Mode != want.Mode || got.ListenAddr != want.ListenAddr || got.URLs != want.URLs || got.Egress != want.Egress ||
		!got.StartedAt.Equal(want.StartedAt) || got.InstanceID != want.InstanceID {
		t.Fatalf("handle = %+v, want %+v", got, want)
	}
	if got.Control != want.Control {
		t.Fatalf("control = %+v, want %+v (the store must keep the control channel)", got.Control, want.Control)
	}
}

// RunHandleStore is the conformance suite of proxyctl.HandleStore. newStore
// returns an empty store.
func RunHandleStore(t *testing.T, newStore func(t *testing.T) proxyctl.HandleStore) {
	ctx := context.Background()
	cfg := proxyctl.DefaultConfig()

	t.Run("EmptyList", func(t *testing.T) {
		if hs, err := newStore(t).List(ctx); err != nil || len(hs) != 0 {
			t.Fatalf("List = %v, %v; want none", hs, err)
		}
	})

	t.Run("SaveListSortedWithControl", func(t *testing.T) {
		s := newStore(t)
		b, a := sample("proxy-9000", 9000), sample("proxy-21500", 21500)
		for _, h := range []proxyctl.Handle{b, a} {
			if err := s.Save(ctx, h, cfg); err != nil {
				t.Fatal(err)
			}
		}
		hs, err := s.List(ctx)
		if err != nil || len(hs) != 2 {
			t.Fatalf("List = %v, %v; want 2", hs, err)
		}
		sameHandle(t, hs[0], a) // "proxy-21500" < "proxy-9000"
		sameHandle(t, hs[1], b)
	})

	t.Run("SaveReplacesSameID", func(t *testing.T) {
		s := newStore(t)
		h := sample("proxy-8080", 8080)
		if err := s.Save(ctx, h, cfg); err != nil {
			t.Fatal(err)
		}
		h.PID, h.InstanceID = 777, "restarted"
		h.Control = proxyctl.Control{Addr: "127.0.0.1:45678", Token: strings.Repeat("cd", 32)}
		if err := s.Save(ctx, h, cfg); err != nil {
			t.Fatal(err)
		}
		hs, err := s.List(ctx)
		if err != nil || len(hs) != 1 {
			t.Fatalf("List = %v, %v; want the one replaced handle", hs, err)
		}
		sameHandle(t, hs[0], h)
	})

	t.Run("RemoveAndRemoveUnknown", func(t *testing.T) {
		s := newStore(t)
		a, b := sample("proxy-1", 1), sample("proxy-2", 2)
		for _, h := range []proxyctl.Handle{a, b} {
			if err := s.Save(ctx, h, cfg); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Remove(ctx, "proxy-1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Remove(ctx, "proxy-404"); err != nil {
			t.Fatalf("Remove(unknown) = %v, want nil", err)
		}
		hs, err := s.List(ctx)
		if err != nil || len(hs) != 1 {
			t.Fatalf("List = %v, %v", hs, err)
		}
		sameHandle(t, hs[0], b)
	})

	t.Run("ConcurrentSaves", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() { errs <- s.Save(ctx, sample(fmt.Sprintf("proxy-%d", 100+i), 100+i), cfg) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if hs, err := s.List(ctx); err != nil || len(hs) != 8 {
			t.Fatalf("after 8 concurrent saves List = %d handles, %v", len(hs), err)
		}
	})
}

// eventually polls cond for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// RunProcesses is the conformance suite of proxyctl.Processes. spawn starts
// a process whose command line is that of a proxy on port and that runs
// until it is signalled; the test that calls spawn cleans it up.
func RunProcesses(t *testing.T, p proxyctl.Processes, spawn func(t *testing.T, port int) int) {
	t.Run("NoSuchPID", func(t *testing.T) {
		for _, pid := range []int{0, -1} {
			if p.Alive(pid) {
				t.Fatalf("Alive(%d) = true", pid)
			}
		}
	})

	t.Run("AliveAndIdentified", func(t *testing.T) {
		pid := spawn(t, 21500)
		if !p.Alive(pid) {
			t.Fatal("a running process is not Alive")
		}
		if is, known := p.IsProxy(pid, 21500); known && !is {
			t.Fatal("IsProxy does not recognise a proxy's command line")
		}
		if is, known := p.IsProxy(pid, 21501); known && is {
			t.Fatal("IsProxy matched the wrong port")
		}
		if err := p.Signal(pid, proxyctl.Kill); err != nil {
			t.Fatal(err)
		}
	})

	for _, sig := range []proxyctl.Signal{proxyctl.Terminate, proxyctl.Kill} {
		t.Run(fmt.Sprintf("SignalStops%d", sig), func(t *testing.T) {
			pid := spawn(t, 21600)
			if err := p.Signal(pid, sig); err != nil {
				t.Fatalf("Signal = %v", err)
			}
			if !eventually(5*time.Second, func() bool { return !p.Alive(pid) }) {
				t.Fatal("the process is still Alive 5 s after the signal")
			}
			if is, known := p.IsProxy(pid, 21600); known && is {
				t.Fatal("IsProxy is true for an exited process")
			}
			if err := p.Signal(pid, proxyctl.Terminate); err == nil {
				t.Fatal("signalling an exited process succeeded")
			}
		})
	}
}

// RunLauncher is the conformance suite of proxyctl.Launcher. ok must start
// a proxy that keeps running; failing one whose process exits during
// start, with failingCode as its own error code ("" if it writes none).
// The suite kills what it launched through p.
func RunLauncher(t *testing.T, l proxyctl.Launcher, p proxyctl.Processes, ok, failing proxyctl.Config, failingCode flmerr.Code) {
	ctx := context.Background()
	t.Run("LaunchReturnsRunningPID", func(t *testing.T) {
		pid, err := l.Launch(ctx, ok)
		if err != nil || pid <= 0 {
			t.Fatalf("Launch = %d, %v", pid, err)
		}
		defer func() {
			_ = p.Signal(pid, proxyctl.Kill)
			eventually(5*time.Second, func() bool { return !p.Alive(pid) })
		}()
		if !p.Alive(pid) {
			t.Fatal("the launched process is not alive")
		}
		// Right after the fork the child may not have exec'd yet, and its
		// command line is still the parent's: wait for the exec.
		recognised := eventually(5*time.Second, func() bool {
			is, known := p.IsProxy(pid, ok.Port)
			return !known || is
		})
		if !recognised {
			t.Fatal("the launched process is not recognisable as the proxy of its port")
		}
	})

	t.Run("LastWordsOfAFailedStart", func(t *testing.T) {
		pid, err := l.Launch(ctx, failing)
		if err != nil {
			t.Fatalf("Launch = %v", err)
		}
		if !eventually(20*time.Second, func() bool { return !p.Alive(pid) }) {
			_ = p.Signal(pid, proxyctl.Kill)
			t.Fatal("the failing launch is still running after 20 s")
		}
		lw := l.LastWords(failing)
		if lw.Message == "" || lw.Log == "" {
			t.Fatalf("LastWords = %+v; want a message and the log's place", lw)
		}
		if lw.Code != failingCode {
			t.Fatalf("LastWords code = %q, want %q (%s)", lw.Code, failingCode, lw.Message)
		}
	})
}

// ServeHealth runs a real HTTP server answering GET /health as h and
// returns a handle whose local URL points at it.
func ServeHealth(t *testing.T, h Health) proxyctl.Handle {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.Hang {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Flm-Instance", h.Instance)
		status := h.Status
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	t.Cleanup(srv.Close)
	return proxyctl.Handle{ID: "proxy-test", URLs: proxyctl.URLs{Local: srv.URL}, InstanceID: h.Instance}
}

// RunProber is the conformance suite of proxyctl.Prober. serve makes a
// proxy answer /health as h and returns its handle (ServeHealth for real
// adapters).
func RunProber(t *testing.T, p proxyctl.Prober, serve func(t *testing.T, h Health) proxyctl.Handle) {
	ctx := context.Background()
	t.Run("InstanceOfA200", func(t *testing.T) {
		h := serve(t, Health{Instance: "i-123"})
		if inst, err := p.Probe(ctx, h); err != nil || inst != "i-123" {
			t.Fatalf("Probe = %q, %v", inst, err)
		}
	})
	t.Run("Not200IsAnError", func(t *testing.T) {
		h := serve(t, Health{Instance: "i-123", Status: http.StatusServiceUnavailable})
		if _, err := p.Probe(ctx, h); err == nil {
			t.Fatal("a 503 /health counted as an answer")
		}
	})
	t.Run("NothingListening", func(t *testing.T) {
		h := proxyctl.Handle{ID: "proxy-1", URLs: proxyctl.URLs{Local: "http://127.0.0.1:1"}}
		if _, err := p.Probe(ctx, h); err == nil {
			t.Fatal("Probe of nothing succeeded")
		}
	})
	t.Run("HangBoundedByContext", func(t *testing.T) {
		h := serve(t, Health{Hang: true})
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := p.Probe(ctx, h); err == nil {
			t.Fatal("a proxy that never answers counted as an answer")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("Probe took %v past a 300 ms deadline", d)
		}
	})
}

// ServeControl runs a real control channel (proxyctl.ControlHandler) on
// loopback and returns a handle that reaches it.
func ServeControl(t *testing.T, token string, reload proxyctl.ReloadFunc) proxyctl.Handle {
	t.Helper()
	srv := httptest.NewServer(proxyctl.ControlHandler(token, reload))
	t.Cleanup(srv.Close)
	return proxyctl.Handle{ID: "proxy-test", Control: proxyctl.Control{Addr: srv.Listener.Addr().String(), Token: token}}
}

// RunController is the conformance suite of proxyctl.Controller. serve
// runs a control channel with token and reload and returns a handle that
// reaches it (ServeControl for real adapters); stalled returns a handle
// whose channel accepts requests and never answers (ServeStalledControl).
func RunController(t *testing.T, c proxyctl.Controller, serve func(t *testing.T, token string, reload proxyctl.ReloadFunc) proxyctl.Handle,
	stalled func(t *testing.T, token string) proxyctl.Handle) {
	ctx := context.Background()
	token, err := proxyctl.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var calls atomic.Int32
	var lastParts atomic.Value
	reload := func(_ context.Context, parts proxyctl.Parts) (proxyctl.Applied, error) {
		calls.Add(1)
		lastParts.Store(parts)
		return proxyctl.Applied{Generation: 7, AppliedAt: at, Parts: parts, ActiveKeys: 2, PolicySHA256: "abc", Engines: 1, Models: 3}, nil
	}

	t.Run("ReloadReturnsWhatWasApplied", func(t *testing.T) {
		h := serve(t, token, reload)
		for _, parts := range []proxyctl.Parts{proxyctl.ReloadSecurity, proxyctl.ReloadAll} {
			a, err := c.Reload(ctx, h, parts)
			if err != nil {
				t.Fatal(err)
			}
			want := proxyctl.Applied{Generation: 7, AppliedAt: at, Parts: parts, ActiveKeys: 2, PolicySHA256: "abc", Engines: 1, Models: 3}
			if !a.AppliedAt.Equal(want.AppliedAt) || a.Generation != want.Generation || a.Parts != parts || a.ActiveKeys != 2 ||
				a.PolicySHA256 != "abc" || a.Engines != 1 || a.Models != 3 || lastParts.Load() != parts {
				t.Fatalf("Reload(%s) = %+v; the proxy was asked for %v", parts, a, lastParts.Load())
			}
		}
	})

	t.Run("WrongTokenNeverReloads", func(t *testing.T) {
		h := serve(t, token, reload)
		before := calls.Load()
		for _, tok := range []string{"", strings.Repeat("0", 64), token[:63], token + "0"} {
			bad := h
			bad.Control.Token = tok
			if _, err := c.Reload(ctx, bad, proxyctl.ReloadAll); err == nil {
				t.Fatalf("token %q accepted", tok)
			}
		}
		if calls.Load() != before {
			t.Fatal("a wrong token made the proxy reload")
		}
	})

	t.Run("FailedReloadCarriesTheProxysCode", func(t *testing.T) {
		h := serve(t, token, func(context.Context, proxyctl.Parts) (proxyctl.Applied, error) {
			return proxyctl.Applied{}, flmerr.New(flmerr.DBError, "load policy: disk on fire")
		})
		_, err := c.Reload(ctx, h, proxyctl.ReloadAll)
		if !flmerr.Is(err, flmerr.DBError) || !strings.Contains(err.Error(), "disk on fire") {
			t.Fatalf("Reload = %v (%s), want DB_ERROR with the proxy's message", err, flmerr.CodeOf(err))
		}
	})

	t.Run("NothingListeningIsNotRunning", func(t *testing.T) {
		h := proxyctl.Handle{ID: "proxy-1", Control: proxyctl.Control{Addr: "127.0.0.1:1", Token: token}}
		if _, err := c.Reload(ctx, h, proxyctl.ReloadAll); !flmerr.Is(err, flmerr.ProxyNotRunning) {
			t.Fatalf("Reload = %v (%s), want PROXY_NOT_RUNNING", err, flmerr.CodeOf(err))
		}
	})

	t.Run("IdentifyProvesTheTokenHolderWithoutReloading", func(t *testing.T) {
		h := serve(t, token, reload)
		before := calls.Load()
		if err := c.Identify(ctx, h); err != nil {
			t.Fatalf("Identify of the proxy holding the token = %v", err)
		}
		if calls.Load() != before {
			t.Fatal("Identify made the proxy reload")
		}
	})

	// A pid the OS reused cannot be told apart by its command line on
	// every OS; its recorded control address can: nothing listens there,
	// or what listens does not know the token.
	t.Run("IdentifyProvesAnotherProcess", func(t *testing.T) {
		h := serve(t, token, reload)
		bad := h
		bad.Control.Token = strings.Repeat("0", 64)
		if err := c.Identify(ctx, bad); !errors.Is(err, proxyctl.ErrNotThisProxy) {
			t.Fatalf("Identify with a token the channel refuses = %v, want ErrNotThisProxy", err)
		}
		gone := proxyctl.Handle{ID: "proxy-1", Control: proxyctl.Control{Addr: "127.0.0.1:1", Token: token}}
		if err := c.Identify(ctx, gone); !errors.Is(err, proxyctl.ErrNotThisProxy) {
			t.Fatalf("Identify where nothing listens = %v, want ErrNotThisProxy", err)
		}
	})

	// Silence proves nothing: an overloaded proxy is still the proxy.
	t.Run("IdentifySilenceIsNoProof", func(t *testing.T) {
		h := stalled(t, token)
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := c.Identify(ctx, h)
		if err == nil || errors.Is(err, proxyctl.ErrNotThisProxy) {
			t.Fatalf("Identify of a channel that never answers = %v, want an error that proves nothing", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("Identify took %v past a 300 ms deadline", d)
		}
	})

	t.Run("HangBoundedByContext", func(t *testing.T) {
		h := serve(t, token, func(ctx context.Context, _ proxyctl.Parts) (proxyctl.Applied, error) {
			<-ctx.Done()
			return proxyctl.Applied{}, ctx.Err()
		})
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Reload(ctx, h, proxyctl.ReloadAll)
		if err == nil {
			t.Fatal("a reload that never ends returned no error")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("Reload took %v past a 300 ms deadline", d)
		}
	})
}

// ServeStalledControl listens on loopback, accepts connections and never
// answers (a stopped or overloaded proxy), and returns a handle that
// reaches it.
func ServeStalledControl(t *testing.T, token string) proxyctl.Handle {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return proxyctl.Handle{ID: "proxy-test", Control: proxyctl.Control{Addr: ln.Addr().String(), Token: token}}
}
