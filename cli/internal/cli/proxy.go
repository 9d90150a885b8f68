package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/core/settings"
	"github.com/unjuno/flm/proxy"
)

// ProxyCmd is `flm proxy`.
type ProxyCmd struct {
	Start  ProxyStartCmd  `cmd:"" help:"Start the proxy (in the background unless --foreground)."`
	Stop   ProxyStopCmd   `cmd:"" help:"Stop proxies gracefully."`
	Status ProxyStatusCmd `cmd:"" help:"Show running proxies."`
	Reload ProxyReloadCmd `cmd:"" help:"Make proxies apply the stored policy, keys and engines now, without dropping connections."`
}

// ProxyStartCmd is `flm proxy start`.
type ProxyStartCmd struct {
	Port        int    `help:"HTTP port (HTTPS is port+1 in TLS modes). Default: the proxy.port setting (8080)." placeholder:"PORT"`
	Mode        string `enum:"local-http,dev-selfsigned,https-acme,packaged-ca" default:"local-http" help:"TLS mode: local-http, dev-selfsigned, https-acme or packaged-ca."`
	Bind        string `placeholder:"ADDR" help:"Address to listen on. Default: 127.0.0.1; 0.0.0.0 in https-acme mode (the CA and your clients reach it from outside)."`
	Foreground  bool   `help:"Run in this process (systemd, containers) instead of in the background."`
	EgressMode  string `name:"egress-mode" enum:"direct,tor,socks5" default:"direct" help:"How to reach engines that are not on loopback."`
	SOCKS5      string `name:"socks5-endpoint" placeholder:"HOST:PORT" help:"SOCKS5 endpoint for --egress-mode socks5/tor."`
	FailOpen    bool   `name:"egress-fail-open" help:"Fall back to direct egress when the SOCKS endpoint is down."`
	ACMEEmail   string `name:"acme-email" help:"ACME account e-mail (https-acme; optional)."`
	ACMEDomain  string `name:"domain" aliases:"acme-domain" placeholder:"NAME" help:"Public domain name to certify (https-acme); it must point at this machine."`
	Challenge   string `name:"acme-challenge" aliases:"challenge" enum:"http-01,tls-alpn-01,dns-01" default:"http-01" help:"ACME challenge: http-01 (the HTTP port, reached as port 80), tls-alpn-01 (the HTTPS port, reached as 443) or dns-01 (--dns-provider)."`
	DNSProvider string `name:"dns-provider" placeholder:"NAME" help:"lego DNS provider for dns-01 (credentials from its environment variables; list: flm security dns-providers)."`
	// AccessLog is set by `proxy start` for its background process: the
	// access log goes to this file, rotated; in the foreground it goes to
	// stderr (systemd and containers collect it there).
	AccessLog string `name:"access-log" hidden:"" help:"Write the access log to this file (rotated at 20 MB)."`
}

// accessLogMax is the size at which the access log is rotated (one old
// file is kept).
const accessLogMax = 20 << 20

// config binds the flags (port: flag, else the proxy.port setting).
func (c ProxyStartCmd) config(a *App) (proxyctl.Config, error) {
	cfg := proxyctl.Config{
		Mode: proxyctl.Mode(c.Mode), Port: c.Port, Bind: c.Bind,
		Egress:    proxyctl.Egress{Mode: proxyctl.EgressMode(c.EgressMode), SOCKS5Endpoint: c.SOCKS5, FailOpen: c.FailOpen},
		ACMEEmail: c.ACMEEmail, ACMEDomain: c.ACMEDomain, ACMEChallenge: c.Challenge, DNSProvider: c.DNSProvider,
	}
	if cfg.Bind == "" {
		cfg.Bind = proxyctl.DefaultBind(cfg.Mode)
	}
	if cfg.Port == 0 {
		svc, err := a.settings()
		if err != nil {
			return cfg, err
		}
		if cfg.Port, err = svc.Int(a.ctx, settings.ProxyPort); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// Run starts the proxy.
func (c ProxyStartCmd) Run(a *App) error {
	cfg, err := c.config(a)
	if err != nil {
		return err
	}
	svc, err := a.proxyService()
	if err != nil {
		return err
	}
	warnings, err := svc.Preflight(a.ctx, cfg)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(a.Stderr, "warning: %s\n", w)
	}
	if c.Foreground {
		return a.runForeground(svc, cfg, c.AccessLog)
	}
	h, err := svc.StartBackground(a.ctx, cfg)
	if err != nil {
		return err
	}
	warnEgressFallback(a, h)
	if svc.Certs != nil && h.HTTPSPort != 0 {
		if info, err := svc.Certs.Certificate(a.ctx, h); err == nil {
			h.Certificate = info
		}
	}
	return a.printHandles([]proxyctl.Handle{h}, true)
}

// runForeground serves until SIGINT/SIGTERM. Reloads come over the control
// channel (exact: the caller learns when they applied); SIGHUP still
// reloads, for `kill -HUP` and service managers.
func (a *App) runForeground(svc *proxyctl.Service, cfg proxyctl.Config, accessLogPath string) error {
	// Signals are caught before anything is announced: a reload sent the
	// moment `proxy start` returns must not end the process.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	dir, err := a.DataDir()
	if err != nil {
		return err
	}
	src, err := a.proxySource()
	if err != nil {
		return err
	}
	sec, err := a.DB(store.Security)
	if err != nil {
		return err
	}
	// Egress before anything reaches an engine: detection, health checks
	// and requests all take it (egress.go).
	eg, err := a.startEgress(a.ctx, &cfg, store.Audit{DB: sec})
	if err != nil {
		return err
	}
	src.det.Drivers = driversVia(a.Getenv, eg)
	cfgSvc, err := a.settings()
	if err != nil {
		return err
	}
	var bodyLimit, writeTimeout, idleTimeout int
	for _, s := range []struct {
		key string
		v   *int
	}{{settings.ProxyBodyLimitBytes, &bodyLimit}, {settings.ProxyStreamWriteTimeoutS, &writeTimeout}, {settings.ProxyStreamIdleTimeoutS, &idleTimeout}} {
		if *s.v, err = cfgSvc.Int(a.ctx, s.key); err != nil {
			return err
		}
	}
	token, err := proxyctl.NewToken()
	if err != nil {
		return err
	}
	instance := newRequestID()[len("req_"):]
	var accessOut io.Writer = a.Stderr
	if accessLogPath != "" {
		rf, err := openRotating(accessLogPath, accessLogMax)
		if err != nil {
			return flmerr.Wrap(err, flmerr.IOError, "open the access log")
		}
		defer rf.Close()
		accessOut = rf
	}
	access := newBufferedLog(accessOut)
	defer access.Close()
	logger := slog.New(slog.NewJSONHandler(a.Stderr, nil))
	src.log = logger
	opts := proxy.Options{
		Config: cfg, Source: src, Audit: store.Audit{DB: sec}, BodyLimit: int64(bodyLimit), Getenv: a.Getenv,
		Logger: logger, AccessLog: access, InstanceID: instance, ControlToken: token,
		StreamWriteTimeout: time.Duration(writeTimeout) * time.Second, StreamIdleTimeout: time.Duration(idleTimeout) * time.Second,
		Egress: eg,
	}
	tlsSet, err := a.prepareTLS(a.ctx, tlsEnv{cfg: cfg, dataDir: dir, sec: sec, log: logger, egress: eg})
	if err != nil {
		return err
	}
	opts.TLS, opts.Challenge = tlsSet.Config, tlsSet.Challenge
	srv, err := proxy.New(a.ctx, opts)
	if err != nil {
		return err
	}
	lns, err := srv.Listen()
	if err != nil {
		if flmerr.Is(err, flmerr.ProxyPortInUse) {
			return svc.PortInUse(a.ctx, cfg.Port, err)
		}
		return err
	}
	if err := srv.Serve(lns); err != nil {
		return err
	}
	// Listeners serve (the HTTP port answers ACME challenges, the HTTPS
	// port completes no handshake until a certificate exists): get the
	// certificate now, or stop without ever serving models.
	if tlsSet.Obtain != nil {
		if err := tlsSet.Obtain(a.ctx); err != nil {
			_ = srv.Shutdown(context.Background())
			return err
		}
	}
	if tlsSet.Maintain != nil {
		mctx, stopMaintain := context.WithCancel(context.WithoutCancel(a.ctx))
		done := make(chan struct{})
		go func() { defer close(done); tlsSet.Maintain(mctx) }()
		defer func() { stopMaintain(); <-done }()
	}
	if beforeRegister != nil {
		beforeRegister()
	}
	// Register re-reads keys and policy once the handle is visible, so a
	// change stored while this proxy started is not missed.
	h, err := svc.Register(a.ctx, cfg, proxyctl.Registration{
		PID: os.Getpid(), InstanceID: instance, Control: proxyctl.Control{Addr: srv.ControlAddr(), Token: token},
	})
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	defer func() { _ = svc.Unregister(context.Background(), h.ID) }()
	if err := a.printHandles([]proxyctl.Handle{h}, true); err != nil {
		return err
	}

	for running := true; running; {
		select {
		case <-a.ctx.Done(): // SIGINT/SIGTERM too, or the embedding caller's cancel
			running = false
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				running = false
				continue
			}
			if err := srv.Reload(context.Background()); err != nil {
				opts.Logger.Warn("reload failed", "err", err.Error())
			} else {
				opts.Logger.Info("reloaded")
			}
		}
	}
	return srv.Shutdown(context.Background())
}

// beforeRegister, when set (tests only), runs after the proxy serves and
// before it registers its handle: the window in which a change stored by
// another command finds no proxy to reload.
var beforeRegister func()

// liveHandles returns handles of running proxies (chat picks one).
func (a *App) liveHandles() ([]proxyctl.Handle, error) {
	svc, err := a.proxyService()
	if err != nil {
		return nil, err
	}
	return svc.Live(a.ctx)
}

func (a *App) printHandles(hs []proxyctl.Handle, single bool) error {
	if hs == nil {
		hs = []proxyctl.Handle{}
	}
	var data any = hs
	if single && len(hs) == 1 {
		data = hs[0]
	}
	return a.print(data, func(w io.Writer) {
		if len(hs) == 0 {
			fmt.Fprintln(w, "No proxy is running. Start one with `flm proxy start`.")
			return
		}
		t := table(w, "ID", "PID", "MODE", "LISTEN", "URL", "LAN URL", "RUNNING", "CERT EXPIRES")
		for _, h := range hs {
			expires := ""
			if c := h.Certificate; c != nil {
				expires = stamp(c.NotAfter)
				if c.LastError != "" {
					expires += " (renewal failing)"
				}
			}
			t.row(h.ID, strconv.Itoa(h.PID), string(h.Mode), h.ListenAddr, h.URLs.Local, h.URLs.LAN, strconv.FormatBool(h.Running), expires)
		}
		t.flush()
		for _, h := range hs {
			if h.LastError != "" {
				fmt.Fprintf(w, "%s: %s\n", h.ID, h.LastError)
			}
			if c := h.Certificate; c != nil && c.LastError != "" {
				fmt.Fprintf(w, "%s: certificate renewal failing: %s\n", h.ID, c.LastError)
			}
		}
	})
}

// ProxyStatusCmd is `flm proxy status`.
type ProxyStatusCmd struct{}

// Run lists running proxies, with the certificate each TLS proxy serves.
func (ProxyStatusCmd) Run(a *App) error {
	svc, err := a.proxyService()
	if err != nil {
		return err
	}
	hs, err := svc.Status(a.ctx)
	if err != nil {
		return err
	}
	return a.printHandles(hs, false)
}

// selector picks handles for stop and reload.
type selector struct {
	Port     int    `help:"The proxy on this port." placeholder:"PORT"`
	HandleID string `name:"handle-id" help:"The proxy with this handle id." placeholder:"ID"`
	All      bool   `help:"Every running proxy."`
}

func (s selector) sel() proxyctl.Selector {
	return proxyctl.Selector{Port: s.Port, HandleID: s.HandleID, All: s.All}
}

// ProxyStopCmd is `flm proxy stop`.
type ProxyStopCmd struct{ selector }

// Run stops the selected proxies gracefully.
func (c ProxyStopCmd) Run(a *App) error {
	svc, err := a.proxyService()
	if err != nil {
		return err
	}
	stopped, err := svc.Stop(a.ctx, c.sel())
	if err != nil {
		return err
	}
	return a.print(map[string]any{"stopped": stopped}, func(w io.Writer) {
		fmt.Fprintf(w, "Stopped %d proxy(ies).\n", len(stopped))
	})
}

// ProxyReloadCmd is `flm proxy reload`.
type ProxyReloadCmd struct{ selector }

type reloadFailure struct {
	HandleID string      `json:"handle_id"`
	Code     flmerr.Code `json:"code"`
	Error    string      `json:"error"`
}

// Run makes the selected proxies apply the stored keys, policy and engines
// and returns once each answered. It exits 1 when any did not apply them.
func (c ProxyReloadCmd) Run(a *App) error {
	svc, err := a.proxyService()
	if err != nil {
		return err
	}
	res, err := svc.Reload(a.ctx, c.sel(), proxyctl.ReloadAll)
	if err != nil {
		return err
	}
	reloaded, failures := []string{}, []reloadFailure{}
	for _, r := range res {
		if r.OK() {
			reloaded = append(reloaded, r.HandleID)
		} else {
			failures = append(failures, reloadFailure{r.HandleID, r.Code, r.Error})
		}
	}
	err = a.print(map[string]any{"reloaded": reloaded, "total": len(res), "errors": failures, "proxies": res}, func(w io.Writer) {
		fmt.Fprintf(w, "Reloaded %d of %d proxy(ies).\n", len(reloaded), len(res))
		for _, r := range res {
			if r.OK() {
				fmt.Fprintf(w, "%s: generation %d, %d active key(s), %d engine(s), %d model(s)\n", r.HandleID, r.Applied.Generation, r.Applied.ActiveKeys, r.Applied.Engines, r.Applied.Models)
			}
		}
		for _, f := range failures {
			fmt.Fprintf(w, "%s: %s\n", f.HandleID, f.Error)
		}
	})
	if err == nil && len(failures) > 0 {
		return reported(1)
	}
	return err
}

// proxySource feeds a running proxy from the stores and the detector.
type proxySource struct {
	keys   *apikey.Service
	policy *policy.Service
	det    *engine.Detector
	log    *slog.Logger // nil = discard

	mu     sync.Mutex
	warned string // the policy warnings last logged, so each set is logged once
}

func (a *App) proxySource() (*proxySource, error) {
	keys, err := a.keys()
	if err != nil {
		return nil, err
	}
	pol, err := a.policies()
	if err != nil {
		return nil, err
	}
	det, err := a.detector()
	if err != nil {
		return nil, err
	}
	return &proxySource{keys: keys, policy: pol, det: det}, nil
}

func (s *proxySource) Keys(ctx context.Context) ([]apikey.Record, error) { return s.keys.List(ctx) }

func (s *proxySource) Policy(ctx context.Context) (policy.Policy, error) {
	st, err := s.policy.Show(ctx)
	if err == nil && s.log != nil {
		s.mu.Lock()
		if w := strings.Join(st.Warnings, "\n"); w != s.warned {
			s.warned = w
			for _, msg := range st.Warnings {
				s.log.Warn("policy", "warning", msg)
			}
		}
		s.mu.Unlock()
	}
	return st.Policy, err
}

func (s *proxySource) Engines(ctx context.Context) ([]engine.Endpoint, []engine.State, []engine.Model, error) {
	eps, err := s.det.AllEndpoints(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	states, err := s.det.Detect(ctx, engine.DetectOptions{Fresh: true})
	if err != nil {
		return nil, nil, nil, err
	}
	models, _ := s.det.ListModels(ctx, states)
	return eps, states, models, nil
}
