package ui

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/proxyctl"
)

// Keys is the API-key use case (*apikey.Service).
type Keys interface {
	List(ctx context.Context) ([]apikey.Record, error)
	CreateWith(ctx context.Context, o apikey.CreateOptions) (apikey.Issued, error)
	Revoke(ctx context.Context, id string) (apikey.Record, error)
}

// Policies is the policy use case (*policy.Service).
type Policies interface {
	Show(ctx context.Context) (policy.Stored, error)
	Set(ctx context.Context, doc []byte) (policy.Stored, error)
}

// Proxies is the proxy-control use case (*proxyctl.Service).
type Proxies interface {
	Status(ctx context.Context) ([]proxyctl.Handle, error)
	Preflight(ctx context.Context, cfg proxyctl.Config) ([]string, error)
	StartBackground(ctx context.Context, cfg proxyctl.Config) (proxyctl.Handle, error)
	Stop(ctx context.Context, sel proxyctl.Selector) ([]string, error)
	Reload(ctx context.Context, sel proxyctl.Selector, parts proxyctl.Parts) ([]proxyctl.Result, error)
}

// Engines detects engines and lists their models (*engine.Detector).
type Engines interface {
	Detect(ctx context.Context, opts engine.DetectOptions) ([]engine.State, error)
	ListModels(ctx context.Context, states []engine.State) ([]engine.Model, map[string]error)
}

// Services are the core services the UI calls: the same ones the CLI's
// commands build (cli/internal/cli/ui.go wires them).
type Services struct {
	Keys    Keys
	Policy  Policies
	Proxies Proxies
	Engines Engines
	// Apply makes every running proxy enforce what was just stored (the
	// CLI's applyToProxies): called after a key or the policy changed.
	Apply func(ctx context.Context, parts proxyctl.Parts) []proxyctl.Result
	// DefaultPort is the proxy.port setting, the port a new proxy gets
	// when the form leaves it empty.
	DefaultPort func(ctx context.Context) (int, error)
	// ChatClient returns the HTTP client that reaches a proxy's base URL
	// (trusting the dev CA of the data dir for https URLs).
	ChatClient func(baseURL string) *http.Client
	// Wizard is the setup wizard's view of this machine (optional).
	Wizard Wizard
}

func (s Services) check() error {
	if s.Keys == nil || s.Policy == nil || s.Proxies == nil || s.Engines == nil || s.Apply == nil || s.DefaultPort == nil || s.ChatClient == nil {
		return errors.New("ui: every service is required")
	}
	return nil
}

// Server is the UI's HTTP server.
type Server struct {
	svc Services
	log *slog.Logger
	ln  net.Listener
	// hosts are the Host header values that name this server; origin is
	// what a browser sends as Origin from its pages.
	hosts   map[string]bool
	origins map[string]bool
	// cookie is the session cookie's name: it carries the port, so two
	// `flm ui` on different ports do not overwrite each other's cookie.
	cookie string
	now    func() time.Time

	mu       sync.Mutex
	token    string // "" once used
	sessions map[string]*session
	// writes serializes state-changing calls: one user, one change at a
	// time, in the order the clicks came.
	writes sync.Mutex
}

// session is one signed-in browser tab. The cookie (HttpOnly) names it;
// secret is the second half of the credential: the page keeps it in
// sessionStorage (scoped to this origin, port included) and sends it in the
// X-FLM-Session header with every API call. Browsers send cookies to every
// port of 127.0.0.1, so the cookie alone must never be enough.
type session struct {
	secret   string
	started  time.Time
	lastSeen time.Time
}

const (
	// SessionIdle is how long a session lasts without an API call.
	SessionIdle = 2 * time.Hour
	// SessionMaxAge is how long a session lasts at most, however busy.
	SessionMaxAge = 12 * time.Hour
)

// Listen opens addr, which must be a literal loopback IP with a port
// ("127.0.0.1:0"): the UI is never served on another address. The
// listener is what New serves.
func Listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, flmerr.New(flmerr.InvalidArgument, "ui address %q: %v", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() || ip.Zone() != "" {
		return nil, flmerr.New(flmerr.InvalidArgument, "the UI listens on a loopback address only (127.0.0.1 or ::1), not %q", host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return nil, flmerr.New(flmerr.InvalidArgument, "ui port %q: must be 0..65535", port)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, flmerr.Wrap(err, flmerr.ProxyPortInUse, "listen on %s", addr)
	}
	return ln, nil
}

// New returns a server for ln (from Listen) and the session token the URL
// carries. log may be nil.
func New(ln net.Listener, svc Services, log *slog.Logger) (*Server, string, error) {
	if err := svc.check(); err != nil {
		return nil, "", err
	}
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return nil, "", errors.New("ui: not a TCP listener")
	}
	ip, _ := netip.AddrFromSlice(tcp.IP)
	if !ip.Unmap().IsLoopback() {
		return nil, "", flmerr.New(flmerr.InvalidArgument, "the UI listens on a loopback address only, not %s", tcp.IP)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tok, err := randomHex(32)
	if err != nil {
		return nil, "", err
	}
	port := strconv.Itoa(tcp.Port)
	s := &Server{svc: svc, log: log, ln: ln, token: tok, sessions: map[string]*session{}, now: time.Now,
		hosts: map[string]bool{}, origins: map[string]bool{}, cookie: cookieName(port)}
	names := []string{"localhost", net.JoinHostPort(ip.Unmap().String(), port)}
	if ip.Unmap().Is4() {
		names = append(names, "127.0.0.1")
	} else {
		names = append(names, "[::1]")
	}
	for _, n := range names {
		h := n
		if _, _, err := net.SplitHostPort(n); err != nil {
			h = n + ":" + port
		}
		s.hosts[h] = true
		s.origins["http://"+h] = true
	}
	return s, tok, nil
}

// URL is the address to open, with the session token in its fragment.
func (s *Server) URL(token string) string {
	return "http://" + s.ln.Addr().String() + "/#token=" + token
}

// Serve serves until ctx ends, then shuts down.
func (s *Server) Serve(ctx context.Context) error {
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
		case <-done:
		}
	}()
	err := hs.Serve(s.ln)
	close(done)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("ui: random: %w", err)
	}
	return hex.EncodeToString(b), nil
}
