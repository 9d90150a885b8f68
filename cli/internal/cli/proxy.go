package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/unjuno/flm/cli/internal/proc"
	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/core/settings"
	"github.com/unjuno/flm/proxy"
	"github.com/unjuno/flm/proxy/devtls"
)

// ProxyCmd is `flm proxy`.
type ProxyCmd struct {
	Start  ProxyStartCmd  `cmd:"" help:"Start the proxy (in the background unless --foreground)."`
	Stop   ProxyStopCmd   `cmd:"" help:"Stop proxies gracefully."`
	Status ProxyStatusCmd `cmd:"" help:"Show running proxies."`
	Reload ProxyReloadCmd `cmd:"" help:"Re-read policy, keys and engines without dropping connections."`
}

// ProxyStartCmd is `flm proxy start`.
type ProxyStartCmd struct {
	Port        int    `help:"HTTP port (HTTPS is port+1 in TLS modes). Default: the proxy.port setting (8080)." placeholder:"PORT"`
	Mode        string `enum:"local-http,dev-selfsigned,https-acme,packaged-ca" default:"local-http" help:"TLS mode: local-http, dev-selfsigned, https-acme or packaged-ca."`
	Bind        string `default:"127.0.0.1" help:"Address to listen on."`
	Foreground  bool   `help:"Run in this process (systemd, containers) instead of in the background."`
	EgressMode  string `name:"egress-mode" enum:"direct,tor,socks5" default:"direct" help:"How to reach engines that are not on loopback."`
	SOCKS5      string `name:"socks5-endpoint" placeholder:"HOST:PORT" help:"SOCKS5 endpoint for --egress-mode socks5/tor."`
	FailOpen    bool   `name:"egress-fail-open" help:"Fall back to direct egress when the SOCKS endpoint is down."`
	ACMEEmail   string `name:"acme-email" help:"ACME account e-mail (https-acme)."`
	ACMEDomain  string `name:"acme-domain" help:"Domain to certify (https-acme)."`
	Challenge   string `enum:"http-01,dns-01" default:"http-01" help:"ACME challenge."`
	DNSProvider string `name:"dns-provider" help:"lego DNS provider for dns-01."`
	// AccessLog is set by `proxy start` for its background process: the
	// access log goes to this file, rotated; in the foreground it goes to
	// stderr (systemd and containers collect it there).
	AccessLog string `name:"access-log" hidden:"" help:"Write the access log to this file (rotated at 20 MB)."`
}

// accessLogMax is the size at which the access log is rotated (one old
// file is kept).
const accessLogMax = 20 << 20

func (c ProxyStartCmd) config(a *App) (proxyctl.Config, error) {
	cfg := proxyctl.Config{
		Mode: proxyctl.Mode(c.Mode), Port: c.Port, Bind: c.Bind,
		Egress:    proxyctl.Egress{Mode: proxyctl.EgressMode(c.EgressMode), SOCKS5Endpoint: c.SOCKS5, FailOpen: c.FailOpen},
		ACMEEmail: c.ACMEEmail, ACMEDomain: c.ACMEDomain, ACMEChallenge: c.Challenge, DNSProvider: c.DNSProvider,
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
	if err := cfg.Validate(); err != nil {
		return cfg, flmerr.New(flmerr.ProxyInvalidConfig, "%v", err)
	}
	switch cfg.Mode {
	case proxyctl.HTTPSACME, proxyctl.PackagedCA:
		return cfg, flmerr.New(flmerr.ProxyInvalidConfig, "mode %s is not available yet; use local-http or dev-selfsigned", cfg.Mode)
	}
	if cfg.Egress.Mode != proxyctl.EgressDirect {
		return cfg, flmerr.New(flmerr.ProxyInvalidConfig, "egress mode %s is not available yet; use direct", cfg.Egress.Mode)
	}
	return cfg, nil
}

// preflight refuses what would fail or be unsafe, before any process
// starts: a proxy already on the port, a port held by something else, and
// binding beyond loopback without an active key.
func (a *App) preflight(cfg proxyctl.Config) error {
	handles, err := a.liveHandles()
	if err != nil {
		return err
	}
	for _, h := range handles {
		if h.Port == cfg.Port || (cfg.HTTPSPort() != 0 && (h.Port == cfg.HTTPSPort() || h.HTTPSPort == cfg.Port)) {
			return flmerr.New(flmerr.ProxyAlreadyRun, "an FLM proxy (%s, pid %d) already runs on port %d; stop it with `flm proxy stop --port %d`", h.ID, h.PID, h.Port, h.Port)
		}
	}
	for _, p := range []int{cfg.Port, cfg.HTTPSPort()} {
		if p == 0 {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Bind, strconv.Itoa(p)))
		if err != nil {
			return a.portInUse(p, err)
		}
		ln.Close()
	}
	if !cfg.Loopback() {
		svc, err := a.keys()
		if err != nil {
			return err
		}
		recs, err := svc.List(a.ctx)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(recs, apikey.Record.Active) {
			return flmerr.New(flmerr.ProxyInvalidConfig, "binding to %s exposes the gateway beyond this machine; create an API key first (`flm api-keys create --label <device>`)", cfg.Bind)
		}
		if cfg.Mode == proxyctl.LocalHTTP {
			fmt.Fprintf(a.Stderr, "warning: local-http on %s sends prompts and keys unencrypted over the network; prefer --mode dev-selfsigned\n", cfg.Bind)
		}
	}
	return nil
}

// portInUse names what holds the port when it is a detected engine.
func (a *App) portInUse(port int, cause error) error {
	msg := fmt.Sprintf("port %d is in use", port)
	if det, err := a.detector(); err == nil {
		if states, err := det.Detect(a.ctx, engine.DetectOptions{}); err == nil {
			for _, s := range states {
				if engine.Running(s.Status.State) && s.BaseURL != "" && portOf(s.BaseURL) == port {
					msg = fmt.Sprintf("port %d is in use by %s (detected at %s)", port, engine.DisplayName(s.Kind), s.BaseURL)
				}
			}
		}
	}
	return &flmerr.Error{Code: flmerr.ProxyPortInUse, Message: msg + "; choose another with --port", Err: cause}
}

func portOf(rawURL string) int {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(u.Port())
	return n
}

// Run starts the proxy.
func (c ProxyStartCmd) Run(a *App) error {
	cfg, err := c.config(a)
	if err != nil {
		return err
	}
	if err := a.preflight(cfg); err != nil {
		return err
	}
	if c.Foreground {
		return a.runForeground(cfg, c.AccessLog)
	}
	return a.startBackground(cfg)
}

func handleID(port int) string { return "proxy-" + strconv.Itoa(port) }

// startBackground re-runs flm with --foreground in its own session and
// waits until the child answers /health and has recorded its handle.
func (a *App) startBackground(cfg proxyctl.Config) error {
	dir, err := a.DataDir()
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return flmerr.Wrap(err, flmerr.Internal, "find the flm executable")
	}
	logPath := filepath.Join(dir, "logs", fmt.Sprintf("proxy-%d.log", cfg.Port))
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return flmerr.Wrap(err, flmerr.IOError, "open proxy log")
	}
	defer logf.Close()
	args := []string{"--data-dir", dir, "proxy", "start", "--foreground", "--port", strconv.Itoa(cfg.Port),
		"--mode", string(cfg.Mode), "--bind", cfg.Bind, "--egress-mode", string(cfg.Egress.Mode),
		"--access-log", filepath.Join(dir, "logs", fmt.Sprintf("access-%d.log", cfg.Port))}
	for flag, v := range map[string]string{"--socks5-endpoint": cfg.Egress.SOCKS5Endpoint, "--acme-email": cfg.ACMEEmail,
		"--acme-domain": cfg.ACMEDomain, "--challenge": cfg.ACMEChallenge, "--dns-provider": cfg.DNSProvider} {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	if cfg.Egress.FailOpen {
		args = append(args, "--egress-fail-open")
	}
	env := append(os.Environ(), "FLM_DATA_DIR="+dir)
	p, err := proc.StartDetached(exe, args, env, logf)
	if err != nil {
		return flmerr.Wrap(err, flmerr.Internal, "start the proxy process")
	}
	pid := p.Pid // Release clears it
	_ = p.Release()
	h, err := a.waitReady(cfg, pid, logPath, 20*time.Second)
	if err != nil {
		if proc.Alive(pid) {
			_ = proc.Kill(pid)
		}
		return err
	}
	return a.printHandles([]proxyctl.Handle{h}, true)
}

func (a *App) waitReady(cfg proxyctl.Config, pid int, logPath string, timeout time.Duration) (proxyctl.Handle, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !proc.Alive(pid) {
			return proxyctl.Handle{}, childError(logPath)
		}
		handles, err := a.handleStore()
		if err != nil {
			return proxyctl.Handle{}, err
		}
		list, err := handles.List(a.ctx)
		if err != nil {
			return proxyctl.Handle{}, err
		}
		for _, h := range list {
			if h.ID == handleID(cfg.Port) && h.PID == pid && a.healthy(h) {
				h.Running = true
				return h, nil
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	return proxyctl.Handle{}, flmerr.New(flmerr.ProxyInvalidConfig, "the proxy did not answer /health within %v (log: %s)", timeout, logPath)
}

// childError reports why the proxy process exited during start: its own
// error object (the last line of its log) with its code, when it wrote one.
func childError(logPath string) error {
	line := lastLine(logPath)
	var e struct {
		Error struct {
			Code    flmerr.Code `json:"code"`
			Message string      `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(line), &e) == nil && e.Error.Code != "" {
		return flmerr.New(e.Error.Code, "the proxy exited during start: %s (log: %s)", e.Error.Message, logPath)
	}
	return flmerr.New(flmerr.ProxyInvalidConfig, "the proxy exited during start: %s (log: %s)", line, logPath)
}

// lastLine returns the last non-empty line of a log, for start errors.
func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no log"
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if lines[i] != "" {
			if len(lines[i]) > 400 {
				return lines[i][:400]
			}
			return lines[i]
		}
	}
	return "no log"
}

func (a *App) handleStore() (store.Handles, error) {
	d, err := a.DB(store.Config)
	if err != nil {
		return store.Handles{}, err
	}
	return store.Handles{DB: d}, nil
}

// healthClient checks /health: over HTTPS in TLS modes, trusting the dev
// CA in certs/.
func (a *App) healthClient(h proxyctl.Handle) (*http.Client, string) {
	c := &http.Client{Timeout: 2 * time.Second}
	url := h.URLs.Local
	if h.HTTPSPort != 0 {
		if dir, err := a.DataDir(); err == nil {
			if pool, err := devtls.CAPool(devtls.FilesIn(filepath.Join(dir, "certs"))); err == nil {
				c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
			}
		}
	}
	return c, url + "/health"
}

// healthy reports whether the handle's proxy answers /health as that very
// process (same instance id).
func (a *App) healthy(h proxyctl.Handle) bool {
	c, url := a.healthClient(h)
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1024))
	return resp.StatusCode == http.StatusOK && h.InstanceID != "" && resp.Header.Get("X-Flm-Instance") == h.InstanceID
}

// ours reports whether pid is still the proxy process of h, as far as the
// OS can tell: a pid can be reused by an unrelated process after a crash,
// and that process must never get our signals.
func (a *App) ours(h proxyctl.Handle) bool {
	if a.healthy(h) {
		return true
	}
	has, known := proc.CmdlineHas(h.PID, "proxy", "start", "--foreground", "--port", strconv.Itoa(h.Port))
	return known && has
}

// runForeground serves until SIGINT/SIGTERM, reloading on SIGHUP.
func (a *App) runForeground(cfg proxyctl.Config, accessLogPath string) error {
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
	cfgSvc, err := a.settings()
	if err != nil {
		return err
	}
	bodyLimit, err := cfgSvc.Int(a.ctx, settings.ProxyBodyLimitBytes)
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
	opts := proxy.Options{
		Config: cfg, Source: src, Audit: store.Audit{DB: sec}, BodyLimit: int64(bodyLimit), Getenv: a.Getenv,
		Logger: slog.New(slog.NewJSONHandler(a.Stderr, nil)), AccessLog: access, InstanceID: instance,
	}
	if cfg.Mode == proxyctl.DevSelfSigned {
		files, err := devtls.Ensure(filepath.Join(dir, "certs"), devtls.Hosts(cfg.Bind), time.Now())
		if err != nil {
			return flmerr.Wrap(err, flmerr.ProxyCertFailed, "prepare the development certificate")
		}
		if opts.TLS, err = devtls.ServerTLSConfig(files); err != nil {
			return flmerr.Wrap(err, flmerr.ProxyCertFailed, "load the development certificate")
		}
	}
	srv, err := proxy.New(a.ctx, opts)
	if err != nil {
		return err
	}
	lns, err := srv.Listen()
	if err != nil {
		if flmerr.Is(err, flmerr.ProxyPortInUse) {
			return a.portInUse(cfg.Port, err)
		}
		return err
	}
	if err := srv.Serve(lns); err != nil {
		return err
	}
	h := newHandle(cfg, os.Getpid())
	h.InstanceID = instance
	handles, err := a.handleStore()
	if err != nil {
		return err
	}
	if err := handles.Save(a.ctx, h, cfg); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	defer func() { _ = handles.Remove(context.Background(), h.ID) }()
	if err := a.printHandles([]proxyctl.Handle{h}, true); err != nil {
		return err
	}

	for sig := range sigs {
		if sig == syscall.SIGHUP {
			if err := srv.Reload(context.Background()); err != nil {
				opts.Logger.Warn("reload failed", "err", err.Error())
			} else {
				opts.Logger.Info("reloaded")
			}
			continue
		}
		break
	}
	return srv.Shutdown(context.Background())
}

// newHandle describes a proxy; URLs never show 0.0.0.0.
func newHandle(cfg proxyctl.Config, pid int) proxyctl.Handle {
	scheme, port := "http", cfg.Port
	if cfg.HTTPSPort() != 0 {
		scheme, port = "https", cfg.HTTPSPort()
	}
	url := func(host string) string { return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) }
	h := proxyctl.Handle{
		ID: handleID(cfg.Port), PID: pid, Port: cfg.Port, HTTPSPort: cfg.HTTPSPort(), Mode: cfg.Mode,
		ListenAddr: net.JoinHostPort(cfg.Bind, strconv.Itoa(cfg.Port)), Egress: cfg.Egress,
		StartedAt: time.Now().UTC().Truncate(time.Millisecond), Running: true,
	}
	switch {
	case cfg.Loopback():
		h.URLs.Local = url(cfg.Bind)
	case cfg.Bind == "0.0.0.0" || cfg.Bind == "::":
		h.URLs.Local = url("127.0.0.1")
		if lan := lanAddr(); lan != "" {
			h.URLs.LAN = url(lan)
		}
	default:
		h.URLs.Local = url(cfg.Bind)
		h.URLs.LAN = url(cfg.Bind)
	}
	if cfg.Mode == proxyctl.HTTPSACME && cfg.ACMEDomain != "" {
		h.URLs.External = "https://" + net.JoinHostPort(cfg.ACMEDomain, strconv.Itoa(cfg.HTTPSPort()))
	}
	return h
}

// lanAddr is the first private IPv4 address of an up interface.
func lanAddr() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsPrivate() {
			return n.IP.String()
		}
	}
	return ""
}

// liveHandles returns handles of running proxies and forgets the ones
// whose process is gone.
func (a *App) liveHandles() ([]proxyctl.Handle, error) {
	handles, err := a.handleStore()
	if err != nil {
		return nil, err
	}
	list, err := handles.List(a.ctx)
	if err != nil {
		return nil, err
	}
	var live []proxyctl.Handle
	for _, h := range list {
		if !proc.Alive(h.PID) || !a.ours(h) {
			if err := handles.Remove(a.ctx, h.ID); err != nil && !flmerr.Is(err, flmerr.DBReadOnly) {
				return nil, err
			}
			continue
		}
		h.Running = a.healthy(h)
		if !h.Running {
			h.LastError = "the process is alive but /health does not answer"
		}
		live = append(live, h)
	}
	return live, nil
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
		t := table(w, "ID", "PID", "MODE", "LISTEN", "URL", "LAN URL", "RUNNING")
		for _, h := range hs {
			t.row(h.ID, strconv.Itoa(h.PID), string(h.Mode), h.ListenAddr, h.URLs.Local, h.URLs.LAN, strconv.FormatBool(h.Running))
		}
		t.flush()
	})
}

// ProxyStatusCmd is `flm proxy status`.
type ProxyStatusCmd struct{}

// Run lists running proxies.
func (ProxyStatusCmd) Run(a *App) error {
	hs, err := a.liveHandles()
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

func (s selector) pick(a *App) ([]proxyctl.Handle, error) {
	n := 0
	for _, set := range []bool{s.Port != 0, s.HandleID != "", s.All} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, flmerr.New(flmerr.InvalidArgument, "give exactly one of --port, --handle-id or --all")
	}
	live, err := a.liveHandles()
	if err != nil {
		return nil, err
	}
	var out []proxyctl.Handle
	for _, h := range live {
		if s.All || h.Port == s.Port || h.ID == s.HandleID {
			out = append(out, h)
		}
	}
	if len(out) == 0 && !s.All {
		return nil, flmerr.New(flmerr.ProxyNotRunning, "no FLM proxy matches; `flm proxy status` lists the running ones")
	}
	return out, nil
}

// ProxyStopCmd is `flm proxy stop`.
type ProxyStopCmd struct{ selector }

// stopWait covers the proxy's 5 s grace for streams plus its shutdown.
const stopWait = proxy.ShutdownGrace + 3*time.Second

// Run stops the selected proxies gracefully (SIGTERM, then SIGKILL after
// the grace period).
func (c ProxyStopCmd) Run(a *App) error {
	hs, err := c.pick(a)
	if err != nil {
		return err
	}
	handles, err := a.handleStore()
	if err != nil {
		return err
	}
	stopped := []string{}
	var errs []error
	for _, h := range hs {
		if err := proc.Terminate(h.PID); err != nil && proc.Alive(h.PID) {
			errs = append(errs, fmt.Errorf("%s: %w", h.ID, err))
			continue
		}
		if !proc.WaitExit(h.PID, stopWait) {
			_ = proc.Kill(h.PID)
			proc.WaitExit(h.PID, time.Second)
		}
		_ = handles.Remove(a.ctx, h.ID)
		stopped = append(stopped, h.ID)
	}
	if err := errors.Join(errs...); err != nil {
		return flmerr.Wrap(err, flmerr.Internal, "stop")
	}
	return a.print(map[string]any{"stopped": stopped}, func(w io.Writer) {
		fmt.Fprintf(w, "Stopped %d proxy(ies).\n", len(stopped))
	})
}

// ProxyReloadCmd is `flm proxy reload`.
type ProxyReloadCmd struct{ selector }

// Run signals the selected proxies to reload.
func (c ProxyReloadCmd) Run(a *App) error {
	hs, err := c.pick(a)
	if err != nil {
		return err
	}
	type failure struct {
		HandleID string `json:"handle_id"`
		Error    string `json:"error"`
	}
	reloaded, failures := []string{}, []failure{}
	for _, h := range hs {
		if err := proc.Reload(h.PID); err != nil {
			failures = append(failures, failure{h.ID, err.Error()})
			continue
		}
		reloaded = append(reloaded, h.ID)
	}
	return a.print(map[string]any{"reloaded": reloaded, "total": len(hs), "errors": failures}, func(w io.Writer) {
		fmt.Fprintf(w, "Reloaded %d of %d proxy(ies).\n", len(reloaded), len(hs))
		for _, f := range failures {
			fmt.Fprintf(w, "%s: %s\n", f.HandleID, f.Error)
		}
	})
}

// proxySource feeds a running proxy from the stores and the detector.
type proxySource struct {
	keys   *apikey.Service
	policy *policy.Service
	det    *engine.Detector
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
