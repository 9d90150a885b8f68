// Package proxyctltest has an in-memory fake of every proxyctl port and
// the conformance suites every real adapter runs (RunHandleStore,
// RunProcesses, RunLauncher, RunProber, RunController). The fakes pass the
// same suites (proxyctltest_test.go).
package proxyctltest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
)

// Handles is an in-memory proxyctl.HandleStore.
type Handles struct {
	mu      sync.Mutex
	handles map[string]proxyctl.Handle
	configs map[string]proxyctl.Config
	// Err, when set, is returned by every call.
	Err error
}

var _ proxyctl.HandleStore = (*Handles)(nil)

// NewHandles returns an empty store.
func NewHandles() *Handles {
	return &Handles{handles: map[string]proxyctl.Handle{}, configs: map[string]proxyctl.Config{}}
}

// Save implements proxyctl.HandleStore.
func (m *Handles) Save(ctx context.Context, h proxyctl.Handle, cfg proxyctl.Config) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Err != nil {
		return m.Err
	}
	m.handles[h.ID], m.configs[h.ID] = h, cfg
	return nil
}

// List implements proxyctl.HandleStore.
func (m *Handles) List(ctx context.Context) ([]proxyctl.Handle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Err != nil {
		return nil, m.Err
	}
	out := make([]proxyctl.Handle, 0, len(m.handles))
	for _, h := range m.handles {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b proxyctl.Handle) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Remove implements proxyctl.HandleStore.
func (m *Handles) Remove(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Err != nil {
		return m.Err
	}
	delete(m.handles, id)
	delete(m.configs, id)
	return nil
}

// Config returns the configuration saved with handle id.
func (m *Handles) Config(id string) (proxyctl.Config, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.configs[id]
	return c, ok
}

// Proc is a fake process.
type Proc struct {
	Port int  // the port its command line names (IsProxy)
	Args bool // whether its command line is a proxy's
	// IgnoreTerm keeps it running on Terminate (a stuck proxy).
	IgnoreTerm bool
	alive      bool
	signals    []proxyctl.Signal
}

// Procs is a fake process table: proxyctl.Processes.
type Procs struct {
	mu    sync.Mutex
	next  int
	procs map[int]*Proc
	// Unknown makes IsProxy answer "the OS does not tell" (macOS).
	Unknown bool
	// NoHangup makes Hangup ErrUnsupported (Windows).
	NoHangup bool
}

var _ proxyctl.Processes = (*Procs)(nil)

// NewProcs returns an empty table; pids start at 1000.
func NewProcs() *Procs { return &Procs{next: 1000, procs: map[int]*Proc{}} }

// Spawn adds a running process and returns its pid.
func (f *Procs) Spawn(p Proc) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	p.alive = true
	f.procs[f.next] = &p
	return f.next
}

// Exit makes pid exit.
func (f *Procs) Exit(pid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.procs[pid]; p != nil {
		p.alive = false
	}
}

// Signals returns the signals pid received.
func (f *Procs) Signals(pid int) []proxyctl.Signal {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.procs[pid]; p != nil {
		return slices.Clone(p.signals)
	}
	return nil
}

// Alive implements proxyctl.Processes.
func (f *Procs) Alive(pid int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.procs[pid]
	return p != nil && p.alive
}

// Signal implements proxyctl.Processes.
func (f *Procs) Signal(pid int, sig proxyctl.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.procs[pid]
	if p == nil || !p.alive {
		return fmt.Errorf("signal %d: no such process", pid)
	}
	if sig == proxyctl.Hangup && f.NoHangup {
		return proxyctl.ErrUnsupported
	}
	p.signals = append(p.signals, sig)
	switch {
	case sig == proxyctl.Kill, sig == proxyctl.Terminate && !p.IgnoreTerm:
		p.alive = false
	}
	return nil
}

// IsProxy implements proxyctl.Processes.
func (f *Procs) IsProxy(pid, port int) (is, known bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Unknown {
		return false, false
	}
	p := f.procs[pid]
	return p != nil && p.alive && p.Args && p.Port == port, true
}

// Launcher is a fake proxyctl.Launcher: each launch spawns a fake process
// in Procs and calls Child, which plays the child (records its handle, or
// exits).
type Launcher struct {
	Procs *Procs
	Child func(cfg proxyctl.Config, pid int)
	// Err fails every launch.
	Err error

	mu       sync.Mutex
	words    map[int]proxyctl.LastWords
	launched []proxyctl.Config
}

var _ proxyctl.Launcher = (*Launcher)(nil)

// Launch implements proxyctl.Launcher.
func (l *Launcher) Launch(ctx context.Context, cfg proxyctl.Config) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if l.Err != nil {
		return 0, l.Err
	}
	pid := l.Procs.Spawn(Proc{Port: cfg.Port, Args: true})
	l.mu.Lock()
	l.launched = append(l.launched, cfg)
	l.mu.Unlock()
	if l.Child != nil {
		l.Child(cfg, pid)
	}
	return pid, nil
}

// Die makes the process launched for cfg exit with code and message as
// its last words.
func (l *Launcher) Die(cfg proxyctl.Config, pid int, code flmerr.Code, msg string) {
	l.mu.Lock()
	if l.words == nil {
		l.words = map[int]proxyctl.LastWords{}
	}
	l.words[cfg.Port] = proxyctl.LastWords{Code: code, Message: msg}
	l.mu.Unlock()
	l.Procs.Exit(pid)
}

// LastWords implements proxyctl.Launcher.
func (l *Launcher) LastWords(cfg proxyctl.Config) proxyctl.LastWords {
	l.mu.Lock()
	defer l.mu.Unlock()
	lw := l.words[cfg.Port]
	if lw.Message == "" {
		lw.Message = "no log"
	}
	lw.Log = fmt.Sprintf("fake/proxy-%d.log", cfg.Port)
	return lw
}

// Launched returns the configurations launched so far.
func (l *Launcher) Launched() []proxyctl.Config {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.launched)
}

// Health is how a fake proxy answers GET /health.
type Health struct {
	Instance string
	Status   int  // 0 = 200
	Hang     bool // never answers (until ctx ends)
}

// Prober is a fake proxyctl.Prober: proxies by local URL.
type Prober struct {
	mu      sync.Mutex
	proxies map[string]Health
}

var _ proxyctl.Prober = (*Prober)(nil)

// Set makes the proxy at localURL answer as h.
func (p *Prober) Set(localURL string, h Health) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proxies == nil {
		p.proxies = map[string]Health{}
	}
	p.proxies[localURL] = h
}

// Down makes nothing answer at localURL.
func (p *Prober) Down(localURL string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.proxies, localURL)
}

// Probe implements proxyctl.Prober.
func (p *Prober) Probe(ctx context.Context, h proxyctl.Handle) (string, error) {
	p.mu.Lock()
	hl, ok := p.proxies[h.URLs.Local]
	p.mu.Unlock()
	switch {
	case !ok:
		return "", fmt.Errorf("GET %s/health: connection refused", h.URLs.Local)
	case hl.Hang:
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		<-ctx.Done()
		return "", fmt.Errorf("GET %s/health: %w", h.URLs.Local, ctx.Err())
	case hl.Status != 0 && hl.Status != http.StatusOK:
		return "", fmt.Errorf("GET %s/health: status %d", h.URLs.Local, hl.Status)
	}
	return hl.Instance, nil
}

// Controller is a fake proxyctl.Controller: it serves each registered
// proxy's proxyctl.ControlHandler in memory, so the token rules are the
// real ones.
type Controller struct {
	mu       sync.Mutex
	handlers map[string]http.Handler
	stalled  map[string]bool
}

var _ proxyctl.Controller = (*Controller)(nil)

// Serve registers a proxy's control channel at addr.
func (c *Controller) Serve(addr, token string, reload proxyctl.ReloadFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.handlers == nil {
		c.handlers = map[string]http.Handler{}
	}
	c.handlers[addr] = proxyctl.ControlHandler(token, reload)
}

// Down removes the control channel at addr: nothing listens there.
func (c *Controller) Down(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.handlers, addr)
}

// Stall makes the channel at addr accept requests and never answer (a
// stopped or overloaded proxy), until ctx ends; stalled false undoes it.
func (c *Controller) Stall(addr string, stalled bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stalled == nil {
		c.stalled = map[string]bool{}
	}
	c.stalled[addr] = stalled
}

// do serves one request on the channel of h, as the real client would.
func (c *Controller) do(ctx context.Context, h proxyctl.Handle, method, target string) (*httptest.ResponseRecorder, error) {
	c.mu.Lock()
	hd, ok := c.handlers[h.Control.Addr]
	stalled := c.stalled[h.Control.Addr]
	c.mu.Unlock()
	if !ok {
		return nil, flmerr.Wrap(fmt.Errorf("%w: nothing listens at %s", proxyctl.ErrNotThisProxy, h.Control.Addr),
			flmerr.ProxyNotRunning, "the control channel of %s does not answer", h.ID)
	}
	if stalled {
		<-ctx.Done()
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+h.Control.Addr+target, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+h.Control.Token)
	rec := httptest.NewRecorder()
	if !stalled {
		hd.ServeHTTP(rec, req)
	}
	if err := ctx.Err(); err != nil {
		return nil, flmerr.Wrap(err, flmerr.ProxyNotRunning, "the control channel of %s did not answer in time", h.ID)
	}
	return rec, nil
}

// Identify implements proxyctl.Controller.
func (c *Controller) Identify(ctx context.Context, h proxyctl.Handle) error {
	rec, err := c.do(ctx, h, http.MethodGet, proxyctl.IdentifyPath)
	switch {
	case err != nil:
		return err
	case rec.Code == http.StatusNoContent:
		return nil
	case rec.Code == http.StatusUnauthorized:
		return fmt.Errorf("%w: the control channel at %s refuses the token", proxyctl.ErrNotThisProxy, h.Control.Addr)
	}
	return fmt.Errorf("the control channel of %s answered %d", h.ID, rec.Code)
}

// Reload implements proxyctl.Controller.
func (c *Controller) Reload(ctx context.Context, h proxyctl.Handle, parts proxyctl.Parts) (proxyctl.Applied, error) {
	rec, err := c.do(ctx, h, http.MethodPost, proxyctl.ControlPath+"?parts="+url.QueryEscape(string(parts)))
	if err != nil {
		return proxyctl.Applied{}, err
	}
	if rec.Code != http.StatusOK {
		var e proxyctl.ControlError
		if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error.Code == "" {
			return proxyctl.Applied{}, flmerr.New(flmerr.Internal, "the control channel of %s answered %d", h.ID, rec.Code)
		}
		return proxyctl.Applied{}, flmerr.New(e.Error.Code, "%s", e.Error.Message)
	}
	var a proxyctl.Applied
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		return proxyctl.Applied{}, flmerr.Wrap(err, flmerr.Internal, "decode the answer of %s", h.ID)
	}
	return a, nil
}

// Keys is a fake proxyctl.KeyChecker.
type Keys struct {
	Active bool
	Err    error
}

// HasActiveKey implements proxyctl.KeyChecker.
func (k Keys) HasActiveKey(ctx context.Context) (bool, error) { return k.Active, k.Err }

// Ports is a fake proxyctl.PortChecker.
type Ports struct {
	Busy    map[int]bool   // ports something else listens on
	Holders map[int]string // what holds them, when known
}

// Free implements proxyctl.PortChecker.
func (p Ports) Free(_ context.Context, _ string, port int) error {
	if p.Busy[port] {
		return fmt.Errorf("listen tcp :%d: bind: address already in use", port)
	}
	return nil
}

// Holder implements proxyctl.PortChecker.
func (p Ports) Holder(_ context.Context, port int) string { return p.Holders[port] }

// LAN is a fake proxyctl.LANFinder: its value is the address.
type LAN string

// Addr implements proxyctl.LANFinder.
func (l LAN) Addr() string { return string(l) }

// Clock is a fake proxyctl.Clock: Sleep advances it at once.
type Clock struct {
	mu  sync.Mutex
	now time.Time
	// OnSleep, when set, runs after each Sleep with the new time (a test
	// makes things happen "meanwhile").
	OnSleep func(now time.Time)
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now implements proxyctl.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep implements proxyctl.Clock.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	now, hook := c.now, c.OnSleep
	c.mu.Unlock()
	if hook != nil {
		hook(now)
	}
	return nil
}
