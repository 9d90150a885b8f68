package proxyctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/unjuno/flm/core/flmerr"
)

// Service owns the rules of running proxies: the CLI binds flags to it and
// prints, the UI will call it the same way. All ports are required except
// LAN (nil: no LAN URL) and Clock (nil: SystemClock).
type Service struct {
	Handles  HandleStore
	Procs    Processes
	Launcher Launcher
	Prober   Prober
	Control  Controller
	Keys     KeyChecker
	Ports    PortChecker
	LAN      LANFinder
	Clock    Clock
	// Certs tells the certificates of TLS proxies in Status (nil: none).
	Certs CertFinder

	// ReadyTimeout bounds StartBackground's wait for /health; 0 = 20 s.
	ReadyTimeout time.Duration
	// ACMEReadyTimeout replaces ReadyTimeout in https-acme mode, where the
	// proxy gets its certificate from the CA before it registers; 0 = 3 min.
	ACMEReadyTimeout time.Duration
	// StopTimeout is how long Stop waits after Terminate before it
	// kills; 0 = 8 s (the proxy's 5 s grace for streams plus margin).
	StopTimeout time.Duration
	// ReloadTimeout bounds one proxy's reload; 0 = 15 s (an engine
	// detection takes at most 5 s).
	ReloadTimeout time.Duration
	// SilentReloadTimeout bounds the reload of a proxy whose /health did
	// not answer (stopped, overloaded): a command that changed keys must
	// not hang on it. 0 = 3 s.
	SilentReloadTimeout time.Duration
	// IdentifyTimeout bounds the question to the control channel of a
	// silent proxy whose identity the OS does not tell. 0 = 3 s.
	IdentifyTimeout time.Duration
}

// Default timeouts.
const (
	DefaultReadyTimeout     = 20 * time.Second
	DefaultACMEReadyTimeout = 3 * time.Minute
	DefaultStopTimeout      = 8 * time.Second
	DefaultReloadTimeout    = 15 * time.Second
	DefaultSilentTimeout    = 3 * time.Second
	DefaultIdentifyTimeout  = 3 * time.Second
	pollEvery               = 25 * time.Millisecond
)

func (s *Service) clock() Clock {
	if s.Clock == nil {
		return SystemClock{}
	}
	return s.Clock
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Check validates cfg (PROXY_INVALID_CONFIG).
func (s *Service) Check(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return flmerr.New(flmerr.ProxyInvalidConfig, "%v", err)
	}
	return nil
}

// Preflight refuses what would fail or be unsafe, before any process
// starts: an invalid config, a proxy of this data dir already on the port,
// a port held by something else, and a bind beyond loopback without an
// active key. It returns warnings for the user (unencrypted LAN traffic).
func (s *Service) Preflight(ctx context.Context, cfg Config) (warnings []string, err error) {
	if err := s.Check(cfg); err != nil {
		return nil, err
	}
	live, err := s.Live(ctx)
	if err != nil {
		return nil, err
	}
	https := cfg.HTTPSPort()
	for _, h := range live {
		if h.Port == cfg.Port || (https != 0 && (h.Port == https || h.HTTPSPort == cfg.Port)) {
			return nil, flmerr.New(flmerr.ProxyAlreadyRun, "an FLM proxy (%s, pid %d) already runs on port %d; stop it with `flm proxy stop --port %d`", h.ID, h.PID, h.Port, h.Port)
		}
	}
	for _, p := range []int{cfg.Port, https} {
		if p == 0 {
			continue
		}
		if err := s.Ports.Free(ctx, cfg.Bind, p); err != nil {
			return nil, s.PortInUse(ctx, p, err)
		}
	}
	if !cfg.Loopback() {
		has, err := s.Keys.HasActiveKey(ctx)
		if err != nil {
			return nil, err
		}
		if !has {
			return nil, flmerr.New(flmerr.ProxyInvalidConfig, "binding to %s exposes the gateway beyond this machine; create an API key first (`flm api-keys create --label <device>`)", cfg.Bind)
		}
		if cfg.Mode == LocalHTTP {
			warnings = append(warnings, fmt.Sprintf("local-http on %s sends prompts and keys unencrypted over the network; prefer --mode dev-selfsigned", cfg.Bind))
		}
	}
	return warnings, nil
}

// PortInUse is the PROXY_PORT_IN_USE error for port, naming what holds it
// when that is known.
func (s *Service) PortInUse(ctx context.Context, port int, cause error) error {
	msg := fmt.Sprintf("port %d is in use", port)
	if holder := s.Ports.Holder(ctx, port); holder != "" {
		msg += " by " + holder
	}
	return &flmerr.Error{Code: flmerr.ProxyPortInUse, Message: msg + "; choose another with --port", Err: cause}
}

// StartBackground launches a proxy process for cfg (after Preflight) and
// returns its handle once the process recorded it and answers /health as
// that very process. A process that exits first is reported with its own
// error; one that does not answer in time is killed.
func (s *Service) StartBackground(ctx context.Context, cfg Config) (Handle, error) {
	pid, err := s.Launcher.Launch(ctx, cfg)
	if err != nil {
		return Handle{}, err
	}
	h, err := s.waitReady(ctx, cfg, pid)
	if err != nil && s.Procs.Alive(pid) {
		_ = s.Procs.Signal(pid, Kill)
	}
	return h, err
}

func (s *Service) waitReady(ctx context.Context, cfg Config, pid int) (Handle, error) {
	c := s.clock()
	timeout := orDefault(s.ReadyTimeout, DefaultReadyTimeout)
	if cfg.Mode == HTTPSACME {
		timeout = orDefault(s.ACMEReadyTimeout, DefaultACMEReadyTimeout)
	}
	deadline := c.Now().Add(timeout)
	for c.Now().Before(deadline) {
		if !s.Procs.Alive(pid) {
			lw := s.Launcher.LastWords(cfg)
			code := lw.Code
			if code == "" {
				code = flmerr.ProxyInvalidConfig
			}
			return Handle{}, flmerr.New(code, "the proxy exited during start: %s (log: %s)", lw.Message, lw.Log)
		}
		list, err := s.Handles.List(ctx)
		if err != nil {
			return Handle{}, err
		}
		for _, h := range list {
			if h.ID == HandleID(cfg.Port) && h.PID == pid && s.answers(ctx, h) {
				h.Running = true
				return h, nil
			}
		}
		if err := c.Sleep(ctx, pollEvery); err != nil {
			return Handle{}, flmerr.Wrap(err, flmerr.ProxyInvalidConfig, "waiting for the proxy")
		}
	}
	return Handle{}, flmerr.New(flmerr.ProxyInvalidConfig, "the proxy did not answer /health within %v (log: %s)", timeout, s.Launcher.LastWords(cfg).Log)
}

// answers reports whether h's proxy answers /health as that very process.
func (s *Service) answers(ctx context.Context, h Handle) bool {
	if h.InstanceID == "" {
		return false
	}
	inst, err := s.Prober.Probe(ctx, h)
	return err == nil && inst == h.InstanceID
}

// Registration is what a proxy process that serves reports about itself.
type Registration struct {
	PID        int
	InstanceID string
	Control    Control
}

// Register records the handle of a proxy that serves cfg in this process
// (foreground mode): what StartBackground waits for. The proxy must already
// serve its control channel (r.Control).
//
// Once the handle is recorded, Register has the proxy re-read keys and
// policy over that channel before it returns. A proxy reads them first
// while it starts, before its handle can be seen; a key revoked or a policy
// set in between is stored by a command that finds no handle to reload and
// returns, and the new proxy would enforce the older state until its next
// periodic refresh. Any change stored before the handle was visible is read
// here; any change stored after it finds the handle. If the re-read fails,
// the handle is removed and the proxy must not serve.
func (s *Service) Register(ctx context.Context, cfg Config, r Registration) (Handle, error) {
	if !LoopbackAddr(r.Control.Addr) || r.Control.Token == "" {
		return Handle{}, flmerr.New(flmerr.Internal, "a proxy registers with its control channel on loopback")
	}
	h := s.NewHandle(cfg, r.PID)
	h.InstanceID, h.Control = r.InstanceID, r.Control
	if err := s.Handles.Save(ctx, h, cfg); err != nil {
		return Handle{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, orDefault(s.ReloadTimeout, DefaultReloadTimeout))
	defer cancel()
	if _, err := s.Control.Reload(rctx, h, ReloadSecurity); err != nil {
		_ = s.Handles.Remove(context.WithoutCancel(ctx), h.ID)
		return Handle{}, flmerr.Wrap(err, flmerr.CodeOf(err), "re-read keys and policy once the proxy is registered")
	}
	return h, nil
}

// Unregister forgets a handle (the proxy is stopping).
func (s *Service) Unregister(ctx context.Context, id string) error {
	return s.Handles.Remove(ctx, id)
}

// NewHandle describes a proxy serving cfg. URLs never show 0.0.0.0: a
// wildcard bind is reached locally at 127.0.0.1 and from the LAN at the
// machine's private address; TLS modes point at the HTTPS port.
func (s *Service) NewHandle(cfg Config, pid int) Handle {
	scheme, port := "http", cfg.Port
	if cfg.HTTPSPort() != 0 {
		scheme, port = "https", cfg.HTTPSPort()
	}
	url := func(host string) string { return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) }
	h := Handle{
		ID: HandleID(cfg.Port), PID: pid, Port: cfg.Port, HTTPSPort: cfg.HTTPSPort(), Mode: cfg.Mode,
		ListenAddr: net.JoinHostPort(cfg.Bind, strconv.Itoa(cfg.Port)), Egress: cfg.Egress,
		StartedAt: s.clock().Now().UTC().Truncate(time.Millisecond), Running: true,
	}
	switch {
	case cfg.Loopback():
		h.URLs.Local = url(cfg.Bind)
	case cfg.Bind == "0.0.0.0" || cfg.Bind == "::":
		h.URLs.Local = url("127.0.0.1")
		if s.LAN != nil {
			if lan := s.LAN.Addr(); lan != "" {
				h.URLs.LAN = url(lan)
			}
		}
	default:
		h.URLs.Local = url(cfg.Bind)
		h.URLs.LAN = url(cfg.Bind)
	}
	if cfg.Mode == HTTPSACME && cfg.ACMEDomain != "" {
		h.URLs.External = "https://" + net.JoinHostPort(cfg.ACMEDomain, strconv.Itoa(cfg.HTTPSPort()))
	}
	return h
}

// Live returns the handles of running proxies and forgets the others: a
// dead pid, or a live pid that is provably not that proxy (the OS reused
// it), is removed and never signalled. Running is whether /health answers.
//
// A live pid whose /health does not answer (stopped, overloaded: the probe
// gives up after 2 s) is never forgotten on doubt, or a command that
// changed keys would skip a proxy that still serves them. Its identity is
// proven by its command line where the OS tells it (Linux), else by its
// control channel: a right answer to the token proves it is the proxy,
// nothing listening there or a refused token proves it is not. When
// neither answers, the handle is kept, not running, with LastError saying
// so, and it is never signalled (Stop refuses it; an older proxy without a
// control channel is not sent SIGHUP).
func (s *Service) Live(ctx context.Context) ([]Handle, error) {
	list, err := s.Handles.List(ctx)
	if err != nil {
		return nil, err
	}
	live := []Handle{}
	for _, h := range list {
		alive := s.Procs.Alive(h.PID)
		if alive && s.answers(ctx, h) {
			h.Running = true
			live = append(live, h)
			continue
		}
		h.Running = false
		id := notOurs
		if alive {
			id = s.identify(ctx, h)
		}
		switch id {
		case notOurs:
			// A read-only store keeps it; it is still not shown.
			if err := s.Handles.Remove(ctx, h.ID); err != nil && !flmerr.Is(err, flmerr.DBReadOnly) {
				return nil, err
			}
			continue
		case ours:
			h.LastError = "the process is alive but /health does not answer"
		default:
			h.unproven = true
			h.LastError = fmt.Sprintf("pid %d is alive but neither /health nor the control channel answers, and this OS does not tell "+
				"whether it is still this proxy; it is kept, and never signalled", h.PID)
		}
		live = append(live, h)
	}
	return live, nil
}

// Status is Live with the certificate each TLS proxy serves: subject,
// SANs, expiry and the last renewal error (PRODUCT.md §7). A certificate
// that cannot be read is named in the handle's LastError; it never hides
// the handle.
func (s *Service) Status(ctx context.Context) ([]Handle, error) {
	hs, err := s.Live(ctx)
	if err != nil || s.Certs == nil {
		return hs, err
	}
	for i := range hs {
		if hs[i].HTTPSPort == 0 {
			continue
		}
		info, err := s.Certs.Certificate(ctx, hs[i])
		if err != nil {
			msg := "certificate: " + err.Error()
			if hs[i].LastError != "" {
				msg = hs[i].LastError + "; " + msg
			}
			hs[i].LastError = msg
			continue
		}
		hs[i].Certificate = info
	}
	return hs, nil
}

type identity int

const (
	unknown identity = iota
	ours
	notOurs
)

// identify tells whether the live pid of h, whose /health is silent, is
// still h's proxy.
func (s *Service) identify(ctx context.Context, h Handle) identity {
	if is, known := s.Procs.IsProxy(h.PID, h.Port); known {
		if is {
			return ours
		}
		return notOurs
	}
	if !LoopbackAddr(h.Control.Addr) || h.Control.Token == "" {
		return unknown // no channel to ask (an older proxy), or a tampered store: the token goes nowhere else
	}
	ctx, cancel := context.WithTimeout(ctx, orDefault(s.IdentifyTimeout, DefaultIdentifyTimeout))
	defer cancel()
	switch err := s.Control.Identify(ctx, h); {
	case err == nil:
		return ours
	case errors.Is(err, ErrNotThisProxy):
		return notOurs
	}
	return unknown
}

// Selector picks running proxies: exactly one of its fields is set.
type Selector struct {
	Port     int
	HandleID string
	All      bool
}

// Select returns the live proxies sel names. A --port or --handle-id that
// matches none is PROXY_NOT_RUNNING; --all matching none is not an error.
func (s *Service) Select(ctx context.Context, sel Selector) ([]Handle, error) {
	n := 0
	for _, set := range []bool{sel.Port != 0, sel.HandleID != "", sel.All} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, flmerr.New(flmerr.InvalidArgument, "give exactly one of --port, --handle-id or --all")
	}
	live, err := s.Live(ctx)
	if err != nil {
		return nil, err
	}
	out := []Handle{}
	for _, h := range live {
		if sel.All || h.Port == sel.Port || h.ID == sel.HandleID {
			out = append(out, h)
		}
	}
	if len(out) == 0 && !sel.All {
		return nil, flmerr.New(flmerr.ProxyNotRunning, "no FLM proxy matches; `flm proxy status` lists the running ones")
	}
	return out, nil
}

// Stop stops the selected proxies: Terminate, then Kill once StopTimeout
// passed, and forgets their handles. A signal that fails on a live process
// is INTERNAL, reported after the others were stopped. A proxy whose
// identity cannot be proven (see Live) is not signalled: PROXY_NOT_RUNNING,
// naming its pid, after the others were stopped.
func (s *Service) Stop(ctx context.Context, sel Selector) (stopped []string, err error) {
	hs, err := s.Select(ctx, sel)
	if err != nil {
		return nil, err
	}
	stopped = []string{}
	var errs, unproven []error
	for _, h := range hs {
		if h.unproven {
			unproven = append(unproven, fmt.Errorf("%s: %s; if it is, stop it with the OS's tools", h.ID, h.LastError))
			continue
		}
		if err := s.Procs.Signal(h.PID, Terminate); err != nil && s.Procs.Alive(h.PID) {
			errs = append(errs, fmt.Errorf("%s: %w", h.ID, err))
			continue
		}
		if !s.waitExit(ctx, h.PID, orDefault(s.StopTimeout, DefaultStopTimeout)) {
			_ = s.Procs.Signal(h.PID, Kill)
			s.waitExit(ctx, h.PID, time.Second)
		}
		_ = s.Handles.Remove(ctx, h.ID)
		stopped = append(stopped, h.ID)
	}
	if err := errors.Join(errs...); err != nil {
		return stopped, flmerr.Wrap(errors.Join(append(errs, unproven...)...), flmerr.Internal, "stop")
	}
	if err := errors.Join(unproven...); err != nil {
		return stopped, flmerr.Wrap(err, flmerr.ProxyNotRunning, "not stopped")
	}
	return stopped, nil
}

// waitExit polls until pid is gone or timeout passes.
func (s *Service) waitExit(ctx context.Context, pid int, timeout time.Duration) bool {
	c := s.clock()
	deadline := c.Now().Add(timeout)
	for c.Now().Before(deadline) {
		if !s.Procs.Alive(pid) {
			return true
		}
		if c.Sleep(ctx, 20*time.Millisecond) != nil {
			break
		}
	}
	return !s.Procs.Alive(pid)
}

// Result is one proxy's answer to a reload: what it applied, or why not.
type Result struct {
	HandleID string      `json:"handle_id"`
	Applied  *Applied    `json:"applied,omitempty"`
	Code     flmerr.Code `json:"code,omitempty"`
	Error    string      `json:"error,omitempty"`
}

// OK reports whether the proxy applied the reload.
func (r Result) OK() bool { return r.Applied != nil }

// Reload makes the selected proxies apply parts of the stored state and
// returns once each applied it (or failed): when every Result is OK, every
// selected proxy enforces what was stored before the call.
func (s *Service) Reload(ctx context.Context, sel Selector, parts Parts) ([]Result, error) {
	hs, err := s.Select(ctx, sel)
	if err != nil {
		return nil, err
	}
	return s.reloadEach(ctx, hs, parts), nil
}

// Apply is Reload of every running proxy: what a command that changed what
// proxies enforce (keys, policy, engines) calls before it returns.
func (s *Service) Apply(ctx context.Context, parts Parts) ([]Result, error) {
	live, err := s.Live(ctx)
	if err != nil {
		return nil, err
	}
	return s.reloadEach(ctx, live, parts), nil
}

func (s *Service) reloadEach(ctx context.Context, hs []Handle, parts Parts) []Result {
	out := make([]Result, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		wg.Go(func() { out[i] = s.reloadOne(ctx, h, parts) })
	}
	wg.Wait()
	return out
}

func (s *Service) reloadOne(ctx context.Context, h Handle, parts Parts) Result {
	r := Result{HandleID: h.ID}
	fail := func(err error) Result {
		r.Code, r.Error = flmerr.CodeOf(err), err.Error()
		return r
	}
	if h.Control == (Control{}) {
		if h.unproven {
			// SIGHUP ends a process that does not handle it.
			return fail(flmerr.New(flmerr.ProxyNotRunning, "not signalled: %s", h.LastError))
		}
		// A proxy of an older flm: SIGHUP is all it understands, and it
		// cannot say when it applied it.
		if err := s.Procs.Signal(h.PID, Hangup); err != nil {
			return fail(flmerr.Wrap(err, flmerr.ProxyInvalidConfig, "the proxy has no control channel and cannot be signalled"))
		}
		return fail(flmerr.New(flmerr.ProxyInvalidConfig, "the proxy has no control channel (started by an older flm): sent SIGHUP, but it cannot confirm when it applies it; restart it for exact reloads"))
	}
	if !LoopbackAddr(h.Control.Addr) {
		return fail(flmerr.New(flmerr.ProxyInvalidConfig, "the recorded control address %q is not a loopback address; the token is not sent there", h.Control.Addr))
	}
	timeout := orDefault(s.ReloadTimeout, DefaultReloadTimeout)
	if !h.Running {
		timeout = min(timeout, orDefault(s.SilentReloadTimeout, DefaultSilentTimeout))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	applied, err := s.Control.Reload(ctx, h, parts)
	if err != nil {
		return fail(err)
	}
	r.Applied = &applied
	return r
}
