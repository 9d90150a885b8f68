package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/gateway"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/proxy/egress"
)

// Source provides what the proxy caches. The cli's composition root
// implements it over the SQLite stores and the engine detector. Calls are
// made off the request path (at start, periodically, on reload and on a
// routing miss), never per request.
type Source interface {
	Keys(ctx context.Context) ([]apikey.Record, error)
	Policy(ctx context.Context) (policy.Policy, error)
	// Engines detects (fresh) and lists models of the running engines.
	Engines(ctx context.Context) ([]engine.Endpoint, []engine.State, []engine.Model, error)
}

// Options configure a Server.
type Options struct {
	Config proxyctl.Config
	Source Source
	Audit  AuditSink // nil = no audit
	Logger *slog.Logger
	// AccessLog gets one JSON line per request (nil = none). Writes are
	// not synchronised by the proxy: give it a writer safe for concurrent
	// use.
	AccessLog io.Writer
	// TLS is the server configuration of the HTTPS listener (TLS modes).
	// Its GetCertificate may swap certificates at any time (renewal,
	// reissue) without dropping connections.
	TLS *tls.Config
	// Challenge answers ACME HTTP-01 challenges on the HTTP port in TLS
	// modes (paths under ChallengePath); nil = none. Everything else on
	// that port is redirected to HTTPS: it never serves models.
	Challenge http.Handler
	// BodyLimit caps request bodies (bytes); 0 = 10 MiB.
	BodyLimit int64
	// RefreshEvery re-reads keys and policy; 0 = 10 s (policy changes
	// apply within 30 s by themselves, PRODUCT.md §6).
	RefreshEvery time.Duration
	// DetectEvery re-detects engines; 0 = 15 s.
	DetectEvery time.Duration
	// Getenv reads engines' API keys (Endpoint.APIKeyEnv); nil = none.
	Getenv func(string) string
	// Transport reaches engines; nil = a tuned default.
	Transport http.RoundTripper
	// Egress opens the default transport's connections to engines (nil =
	// direct, as egress mode direct). When the egress is the reason an
	// engine could not be reached, the answer is 502 egress_unavailable.
	Egress *egress.Dialer
	// ReadHeaderTimeout and ReadTimeout bound slow clients (slowloris, a
	// body that never ends); 0 = 10 s and 2 min.
	ReadHeaderTimeout, ReadTimeout time.Duration
	// AuditEvery is how often collapsed audit events are written; 0 = 1 min.
	AuditEvery time.Duration
	// InstanceID is sent in the X-Flm-Instance header of /health.
	InstanceID string
	// ControlToken, when set, opens the control channel
	// (proxyctl.ControlHandler) on 127.0.0.1 at a random port
	// (ControlAddr): requests carrying this token make the proxy reload
	// at once and answer what it applied. Never log it.
	ControlToken string
	// StreamWriteTimeout bounds each write (and flush) of a response to
	// the client: a client that stops reading is cut off and the engine
	// request ends. 0 = 60 s (setting proxy.stream_write_timeout_s).
	StreamWriteTimeout time.Duration
	// StreamIdleTimeout bounds the wait for the engine's next bytes while
	// a response is relayed (and for its response headers); 0 = 600 s
	// (setting proxy.stream_idle_timeout_s).
	StreamIdleTimeout time.Duration
}

// DefaultBodyLimit is PRODUCT.md's 10 MiB.
const DefaultBodyLimit = 10 << 20

// snapshot is what the hot path reads: immutable, swapped whole.
type snapshot struct {
	gen       uint64 // grows with every stored snapshot
	keys      *gateway.KeyRing
	policy    *policy.Compiled
	policySum string // SHA-256 of the policy's normalized document
	catalog   *gateway.Catalog
	engines   int // running engines in catalog
}

// Server is a running (or runnable) FLM proxy.
type Server struct {
	opts      Options
	log       *slog.Logger
	echo      *echo.Echo
	snap      atomic.Pointer[snapshot]
	metrics   *metrics
	audit     *auditor
	keyLimit  *gateway.Limiter
	ownLimit  *gateway.Limiter // keys' own limits (apikey.Record.RPM)
	ipLimit   *gateway.Limiter
	transport http.RoundTripper

	snapMu sync.Mutex // serialises snapshot writers: no update is lost
	// secMu makes a key and policy refresh one step, from its reads to
	// its store: a slow periodic read that saw an older state can never
	// land after a reload that read a newer one.
	secMu sync.Mutex
	// refreshMu is the same for engines: one detection at a time, read
	// to store.
	refreshMu   sync.Mutex
	lastRefresh atomic.Int64

	servers     []*http.Server
	controlAddr string
	cancel      context.CancelFunc
	done        sync.WaitGroup
}

// New builds a Server; it loads keys, policy and engines once, so a Server
// that returns without error can answer at once.
func New(ctx context.Context, opts Options) (*Server, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, flmerr.New(flmerr.ProxyInvalidConfig, "%v", err)
	}
	if opts.Source == nil {
		return nil, flmerr.New(flmerr.Internal, "proxy needs a source")
	}
	if opts.BodyLimit <= 0 {
		opts.BodyLimit = DefaultBodyLimit
	}
	if opts.RefreshEvery <= 0 {
		opts.RefreshEvery = 10 * time.Second
	}
	if opts.DetectEvery <= 0 {
		opts.DetectEvery = 15 * time.Second
	}
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = 10 * time.Second
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 2 * time.Minute
	}
	if opts.AuditEvery <= 0 {
		opts.AuditEvery = auditWindow
	}
	if opts.Getenv == nil {
		opts.Getenv = func(string) string { return "" }
	}
	log := opts.Logger
	if log == nil {
		log = discardLogger()
	}
	s := &Server{opts: opts, log: log, metrics: newMetrics(), keyLimit: gateway.NewLimiter(), ownLimit: gateway.NewLimiter(), ipLimit: gateway.NewLimiter()}
	s.audit = newAuditor(opts.Audit, s.metrics.auditDropped.Inc)
	s.audit.log = log
	s.transport = opts.Transport
	if s.transport == nil {
		var dial func(ctx context.Context, network, addr string) (net.Conn, error)
		if opts.Egress != nil {
			dial = opts.Egress.DialContext
		}
		s.transport = newTransport(dial)
	}
	s.snap.Store(&snapshot{keys: gateway.NewKeyRing(nil), policy: policy.Default().Compile(), policySum: policySum(policy.Default()), catalog: gateway.NewCatalog(nil, nil, nil)})
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	s.echo = s.routes()
	return s, nil
}

// newTransport is the upstream transport: connections reused, no
// compression (SSE must not be buffered by a decoder), no proxy from the
// environment, no overall timeout (a healthy stream may run for minutes),
// but a bounded wait for response headers (a model load).
func newTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return &http.Transport{
		DialContext:         dial,
		TLSHandshakeTimeout: 5 * time.Second,
		// A non-streamed answer arrives whole at the end of generation:
		// long generations on slow hardware take many minutes.
		ResponseHeaderTimeout: 30 * time.Minute,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       30 * time.Second, // idle upstream connections (and their goroutines) go soon after a burst
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
}

// Reload re-reads keys, policy and engines now and returns once they are
// in force. A part that cannot be read keeps its previous value (and is
// reported); the others are still applied.
func (s *Server) Reload(ctx context.Context) error {
	_, err := s.apply(ctx, proxyctl.ReloadAll)
	return err
}

// apply is the control channel's reload: when it returns, requests are
// judged by what the Source held when it was called.
func (s *Server) apply(ctx context.Context, parts proxyctl.Parts) (proxyctl.Applied, error) {
	err := s.refreshSecurity(ctx)
	if parts == proxyctl.ReloadAll {
		err = errors.Join(err, s.refreshEngines(ctx))
	}
	snap := s.snap.Load()
	return proxyctl.Applied{
		Generation: snap.gen, AppliedAt: time.Now().UTC().Truncate(time.Millisecond), Parts: parts,
		ActiveKeys: snap.keys.Active(), PolicySHA256: snap.policySum, Engines: snap.engines, Models: len(snap.catalog.Models()),
	}, err
}

// update stores a new snapshot made from the current one.
func (s *Server) update(change func(*snapshot)) {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	next := *s.snap.Load()
	change(&next)
	next.gen++
	s.snap.Store(&next)
}

func policySum(p policy.Policy) string {
	sum := sha256.Sum256(p.Document())
	return hex.EncodeToString(sum[:])
}

// refreshSecurity re-reads keys and policy. They refresh independently: a
// policy that cannot be read must not stop revocations from reaching the
// proxy, and each keeps its last good value.
func (s *Server) refreshSecurity(ctx context.Context) error {
	s.secMu.Lock()
	defer s.secMu.Unlock()
	recs, kerr := s.opts.Source.Keys(ctx)
	pol, perr := s.opts.Source.Policy(ctx)
	if kerr != nil && perr != nil {
		return errors.Join(fmt.Errorf("load api keys: %w", kerr), fmt.Errorf("load policy: %w", perr))
	}
	var keys *gateway.KeyRing
	if kerr == nil {
		keys = gateway.NewKeyRing(recs)
	}
	var compiled *policy.Compiled
	var sum string
	if perr == nil {
		compiled, sum = pol.Compile(), policySum(pol)
	}
	s.update(func(n *snapshot) {
		if keys != nil {
			n.keys = keys
		}
		if compiled != nil {
			n.policy, n.policySum = compiled, sum
		}
	})
	switch {
	case kerr != nil:
		return fmt.Errorf("load api keys: %w", kerr)
	case perr != nil:
		return fmt.Errorf("load policy: %w", perr)
	}
	return nil
}

func (s *Server) refreshEngines(ctx context.Context) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	return s.refreshEnginesLocked(ctx)
}

func (s *Server) refreshEnginesLocked(ctx context.Context) error {
	eps, states, models, err := s.opts.Source.Engines(ctx)
	if err != nil {
		return fmt.Errorf("detect engines: %w", err)
	}
	cat := gateway.NewCatalog(eps, states, models)
	running := 0
	for _, st := range states {
		if engine.Running(st.Status.State) {
			running++
		}
	}
	s.update(func(n *snapshot) { n.catalog, n.engines = cat, running })
	s.lastRefresh.Store(time.Now().UnixNano())
	return nil
}

func (s *Server) refreshedWithin(d time.Duration) bool {
	return time.Since(time.Unix(0, s.lastRefresh.Load())) < d
}

// refreshOnMiss re-detects engines after a routing miss (a model pulled or
// an engine started after the last refresh), at most once per second. It
// reports whether the catalog is newer than the caller's miss, so the
// caller routes again. Concurrent misses share one detection.
func (s *Server) refreshOnMiss(ctx context.Context, missed time.Time) bool {
	if s.refreshedWithin(time.Second) {
		return time.Unix(0, s.lastRefresh.Load()).After(missed)
	}
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	if s.refreshedWithin(time.Second) { // someone else refreshed meanwhile
		return time.Unix(0, s.lastRefresh.Load()).After(missed)
	}
	if err := s.refreshEnginesLocked(ctx); err != nil {
		s.log.Warn("engine refresh failed", "err", err.Error())
		return false
	}
	return true
}

// refreshInBackground re-detects engines after an engine failed, unless a
// detection is already running.
func (s *Server) refreshInBackground() {
	if s.refreshedWithin(time.Second) || !s.refreshMu.TryLock() {
		return
	}
	go func() {
		defer s.refreshMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.safely("engine refresh failed", func() error { return s.refreshEnginesLocked(ctx) })
	}()
}

// safely runs a background refresh: its error is logged, and a panic (a
// driver's, during re-detection) is logged instead of ending the proxy.
func (s *Server) safely(what string, f func() error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error(what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	if err := f(); err != nil {
		s.log.Warn(what, "err", err.Error())
	}
}

// Handler is the proxy's whole HTTP handler (tests mount it on httptest).
func (s *Server) Handler() http.Handler { return s.echo }

// Metrics serves the Prometheus registry (tests).
func (s *Server) metricsHandler() http.Handler { return promHandler(s.metrics.reg) }

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout, // slowloris
		ReadTimeout:       s.opts.ReadTimeout,       // a body that never ends
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10, // 10,000 headers → 431
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// Listen binds the proxy's ports: HTTP on Config.Port, and in TLS modes
// HTTPS on Port+1 with HTTP redirecting to it. A port in use is
// PROXY_PORT_IN_USE.
func (s *Server) Listen() ([]net.Listener, error) {
	cfg := s.opts.Config
	addr := func(p int) string { return net.JoinHostPort(cfg.Bind, strconv.Itoa(p)) }
	var lns []net.Listener
	ln, err := net.Listen("tcp", addr(cfg.Port))
	if err != nil {
		return nil, portErr(cfg.Port, err)
	}
	lns = append(lns, ln)
	if cfg.HTTPSPort() != 0 {
		ln2, err := net.Listen("tcp", addr(cfg.HTTPSPort()))
		if err != nil {
			ln.Close()
			return nil, portErr(cfg.HTTPSPort(), err)
		}
		lns = append(lns, ln2)
	}
	return lns, nil
}

func portErr(port int, err error) error {
	return &flmerr.Error{Code: flmerr.ProxyPortInUse, Message: fmt.Sprintf("cannot listen on port %d: %v", port, err), Err: err}
}

// Serve serves on listeners from Listen and runs the refresh loops until
// Shutdown. It returns at once.
func (s *Server) Serve(lns []net.Listener) error {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if s.opts.Config.HTTPSPort() != 0 {
		if s.opts.TLS == nil || len(lns) < 2 {
			cancel()
			return flmerr.New(flmerr.ProxyCertFailed, "mode %s needs a TLS configuration and two listeners", s.opts.Config.Mode)
		}
		redirect := s.httpServer(s.redirectHandler())
		tlsSrv := s.httpServer(s.echo)
		tlsSrv.TLSConfig = s.opts.TLS
		s.servers = []*http.Server{redirect, tlsSrv}
		s.goServe(func() error { return redirect.Serve(lns[0]) })
		s.goServe(func() error { return tlsSrv.Serve(tls.NewListener(lns[1], s.opts.TLS)) })
	} else {
		srv := s.httpServer(s.echo)
		s.servers = []*http.Server{srv}
		s.goServe(func() error { return srv.Serve(lns[0]) })
	}
	if err := s.serveControl(); err != nil {
		cancel()
		for _, srv := range s.servers {
			_ = srv.Close()
		}
		return err
	}
	s.done.Add(2)
	go func() { defer s.done.Done(); s.loop(ctx) }()
	go func() { defer s.done.Done(); s.audit.run(ctx, s.opts.AuditEvery) }()
	return nil
}

// serveControl opens the control channel when a token is set. It listens on
// loopback only, apart from the public listeners, so neither the IP
// allowlist nor the LAN is involved.
func (s *Server) serveControl() error {
	if s.opts.ControlToken == "" {
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		if ln, err = net.Listen("tcp", "[::1]:0"); err != nil {
			return flmerr.Wrap(err, flmerr.ProxyPortInUse, "open the control channel on loopback")
		}
	}
	srv := &http.Server{
		Handler:           proxyctl.ControlHandler(s.opts.ControlToken, s.apply),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.controlAddr = ln.Addr().String()
	s.servers = append(s.servers, srv)
	s.goServe(func() error { return srv.Serve(ln) })
	return nil
}

// ControlAddr is the control channel's address ("" without a token or
// before Serve).
func (s *Server) ControlAddr() string { return s.controlAddr }

func (s *Server) goServe(f func() error) {
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("listener stopped", "err", err.Error())
		}
	}()
}

func (s *Server) loop(ctx context.Context) {
	sec := time.NewTicker(s.opts.RefreshEvery)
	eng := time.NewTicker(s.opts.DetectEvery)
	defer sec.Stop()
	defer eng.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sec.C:
			s.safely("refresh keys and policy", func() error { return s.refreshSecurity(ctx) })
		case <-eng.C:
			s.safely("refresh engines", func() error { return s.refreshEngines(ctx) })
		}
	}
}

// ShutdownGrace is how long in-flight requests (streams) get on stop.
const ShutdownGrace = 5 * time.Second

// Shutdown stops accepting, lets in-flight requests finish for up to
// ShutdownGrace, then closes what remains.
func (s *Server) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ShutdownGrace)
	defer cancel()
	var errs []error
	for _, srv := range s.servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			_ = srv.Close()
		}
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.done.Wait()
	if t, ok := s.transport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

// ChallengePath is where ACME HTTP-01 challenges are served (RFC 8555 §8.3).
const ChallengePath = "/.well-known/acme-challenge/"

// redirectHandler answers the HTTP port in TLS modes with a permanent
// redirect to HTTPS. The Host header is only reflected when it is an IP
// address or a single-label or .local name; anything else redirects to
// localhost, so the port cannot be used to bounce clients elsewhere.
func (s *Server) redirectHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Challenge != nil && strings.HasPrefix(r.URL.Path, ChallengePath) && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			s.opts.Challenge.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		cfg := s.opts.Config
		if cfg.Mode == proxyctl.HTTPSACME && cfg.ACMEDomain != "" && strings.EqualFold(strings.TrimSuffix(host, "."), strings.TrimSuffix(cfg.ACMEDomain, ".")) {
			// The certified name, at the external URL `proxy status`
			// prints (port+1), never the visitor's own localhost.
			target := "https://" + net.JoinHostPort(strings.TrimSuffix(cfg.ACMEDomain, "."), strconv.Itoa(cfg.HTTPSPort()))
			http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusPermanentRedirect)
			return
		}
		if _, err := netip.ParseAddr(host); err != nil && !localName(host) {
			host = "localhost"
		}
		target := "https://" + net.JoinHostPort(host, strconv.Itoa(cfg.HTTPSPort())) + r.URL.RequestURI()
		http.Redirect(w, r, target, http.StatusPermanentRedirect)
	})
}

// localName accepts "localhost", single-label host names and .local names.
func localName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return !strings.Contains(h, ".") || strings.HasSuffix(strings.ToLower(h), ".local")
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
