package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
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
	TLS *tls.Config
	// BodyLimit caps request bodies (bytes); 0 = 10 MiB.
	BodyLimit int64
	// RefreshEvery re-reads keys and policy; 0 = 10 s.
	RefreshEvery time.Duration
	// DetectEvery re-detects engines; 0 = 15 s.
	DetectEvery time.Duration
	// Getenv reads engines' API keys (Endpoint.APIKeyEnv); nil = none.
	Getenv func(string) string
	// Transport reaches engines; nil = a tuned default.
	Transport http.RoundTripper
	// ReadHeaderTimeout and ReadTimeout bound slow clients (slowloris, a
	// body that never ends); 0 = 10 s and 2 min.
	ReadHeaderTimeout, ReadTimeout time.Duration
	// AuditEvery is how often collapsed audit events are written; 0 = 1 min.
	AuditEvery time.Duration
	// InstanceID is sent in the X-Flm-Instance header of /health.
	InstanceID string
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
	keys    *gateway.KeyRing
	policy  *policy.Compiled
	catalog *gateway.Catalog
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
	ipLimit   *gateway.Limiter
	transport http.RoundTripper

	snapMu      sync.Mutex // serialises snapshot writers: no update is lost
	refreshMu   sync.Mutex // one engine detection at a time
	lastRefresh atomic.Int64

	servers []*http.Server
	cancel  context.CancelFunc
	done    sync.WaitGroup
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
	s := &Server{opts: opts, log: log, metrics: newMetrics(), keyLimit: gateway.NewLimiter(), ipLimit: gateway.NewLimiter()}
	s.audit = newAuditor(opts.Audit, s.metrics.auditDropped.Inc)
	s.transport = opts.Transport
	if s.transport == nil {
		s.transport = newTransport()
	}
	s.snap.Store(&snapshot{keys: gateway.NewKeyRing(nil), policy: policy.Default().Compile(), catalog: gateway.NewCatalog(nil, nil, nil)})
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
func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
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

// Reload re-reads keys, policy and engines now. A failure keeps the
// previous snapshot's parts that could not be read.
func (s *Server) Reload(ctx context.Context) error {
	if err := s.refreshSecurity(ctx); err != nil {
		return err
	}
	return s.refreshEngines(ctx)
}

func (s *Server) refreshSecurity(ctx context.Context) error {
	recs, err := s.opts.Source.Keys(ctx)
	if err != nil {
		return fmt.Errorf("load api keys: %w", err)
	}
	pol, err := s.opts.Source.Policy(ctx)
	if err != nil {
		return fmt.Errorf("load policy: %w", err)
	}
	keys, compiled := gateway.NewKeyRing(recs), pol.Compile()
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	s.snap.Store(&snapshot{keys: keys, policy: compiled, catalog: s.snap.Load().catalog})
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
	s.snapMu.Lock()
	old := s.snap.Load()
	s.snap.Store(&snapshot{keys: old.keys, policy: old.policy, catalog: cat})
	s.snapMu.Unlock()
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
		if err := s.refreshEnginesLocked(ctx); err != nil {
			s.log.Warn("engine refresh failed", "err", err.Error())
		}
	}()
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
	s.done.Add(2)
	go func() { defer s.done.Done(); s.loop(ctx) }()
	go func() { defer s.done.Done(); s.audit.run(ctx, s.opts.AuditEvery) }()
	return nil
}

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
			if err := s.refreshSecurity(ctx); err != nil {
				s.log.Warn("refresh keys and policy", "err", err.Error())
			}
		case <-eng.C:
			if err := s.refreshEngines(ctx); err != nil {
				s.log.Warn("refresh engines", "err", err.Error())
			}
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

// redirectHandler answers the HTTP port in TLS modes with a permanent
// redirect to HTTPS. The Host header is only reflected when it is an IP
// address or a single-label or .local name; anything else redirects to
// localhost, so the port cannot be used to bounce clients elsewhere.
func (s *Server) redirectHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		if _, err := netip.ParseAddr(host); err != nil && !localName(host) {
			host = "localhost"
		}
		target := "https://" + net.JoinHostPort(host, strconv.Itoa(s.opts.Config.HTTPSPort())) + r.URL.RequestURI()
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
