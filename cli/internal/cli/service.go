package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kservice "github.com/kardianos/service"

	"github.com/unjuno/flm/cli/internal/datadir"
	"github.com/unjuno/flm/cli/internal/service"
	"github.com/unjuno/flm/core/flmerr"
)

// ServiceCmd is `flm service`.
type ServiceCmd struct {
	Install   ServiceInstallCmd   `cmd:"" help:"Install the proxy as an OS service (systemd, launchd, Windows); it is not started."`
	Uninstall ServiceUninstallCmd `cmd:"" help:"Stop and remove the service (the data dir stays)."`
	Start     ServiceStartCmd     `cmd:"" help:"Start the installed service."`
	Stop      ServiceStopCmd      `cmd:"" help:"Stop the service."`
	Status    ServiceStatusCmd    `cmd:"" help:"Show whether the service is installed, stopped or running."`
	Run       ServiceRunCmd       `cmd:"" hidden:"" help:"Run the proxy as launchd's or the Windows service manager's job (the service's own command)."`
}

// serviceScope picks the user or the system service. Default: the system
// service as root (or on Windows, which has only that), else the user one.
type serviceScope struct {
	User   bool `xor:"scope" help:"The user service: systemd --user unit or launchd LaunchAgent, running as you with your data dir (default unless root)."`
	System bool `xor:"scope" help:"The system service: systemd unit running as user flm with /var/lib/flm, launchd LaunchDaemon or Windows service (default as root; needs root/Administrator)."`
}

// serviceProxyFlags are the `flm proxy start` flags a service records.
type serviceProxyFlags struct {
	Port        int    `help:"HTTP port (default: the proxy.port setting, 8080)." placeholder:"PORT"`
	Mode        string `placeholder:"MODE" help:"TLS mode: local-http (default), dev-selfsigned, https-acme or packaged-ca."`
	Bind        string `placeholder:"ADDR" help:"Address to listen on (default 127.0.0.1; a non-loopback address needs an active API key)."`
	EgressMode  string `name:"egress-mode" placeholder:"MODE" help:"How to reach engines not on loopback: direct (default), tor or socks5."`
	SOCKS5      string `name:"socks5-endpoint" placeholder:"HOST:PORT" help:"SOCKS5 endpoint for --egress-mode socks5/tor."`
	FailOpen    bool   `name:"egress-fail-open" help:"Fall back to direct egress when the SOCKS endpoint is down."`
	ACMEDomain  string `name:"domain" placeholder:"NAME" help:"Public domain name to certify (https-acme)."`
	ACMEEmail   string `name:"acme-email" placeholder:"EMAIL" help:"ACME account e-mail (https-acme; optional)."`
	Challenge   string `name:"acme-challenge" placeholder:"CHALLENGE" help:"ACME challenge: http-01 (default), tls-alpn-01 or dns-01."`
	DNSProvider string `name:"dns-provider" placeholder:"NAME" help:"lego DNS provider for dns-01 (its credentials go in the service's environment file, see docs/guides/SERVICE_GUIDE.md)."`
}

func (f serviceProxyFlags) flags() service.ProxyFlags {
	return service.ProxyFlags{Port: f.Port, Mode: f.Mode, Bind: f.Bind, EgressMode: f.EgressMode, SOCKS5Endpoint: f.SOCKS5,
		EgressFailOpen: f.FailOpen, ACMEEmail: f.ACMEEmail, Domain: f.ACMEDomain, ACMEChallenge: f.Challenge, DNSProvider: f.DNSProvider}
}

// Test seams: the service manager, the running executable and the effective
// user id.
var (
	newServiceManager = func() *service.Manager { return &service.Manager{} }
	serviceExecutable = func() (string, error) {
		exe, err := os.Executable()
		if err != nil {
			return "", err
		}
		return filepath.EvalSymlinks(exe)
	}
	serviceEUID = os.Geteuid
)

func (s serviceScope) scope() service.Scope {
	switch {
	case s.User:
		return service.ScopeUser
	case s.System, runtime.GOOS == "windows", serviceEUID() == 0:
		return service.ScopeSystem
	}
	return service.ScopeUser
}

// serviceProfile builds what the service records. install also prepares
// the user's data dir and checks the key source.
func (a *App) serviceProfile(scope service.Scope, pf service.ProxyFlags, install bool) (service.Profile, error) {
	p := service.Profile{Name: service.Name, Scope: scope, Proxy: pf, Env: map[string]string{}}
	exe, err := serviceExecutable()
	if err != nil {
		return p, flmerr.Wrap(err, flmerr.Internal, "find the flm executable")
	}
	p.Executable = exe
	keySource := strings.ToLower(a.Globals.KeySource)
	if keySource == "" {
		keySource = strings.ToLower(a.Getenv("FLM_DB_KEY_SOURCE"))
	}
	if install && a.Getenv("FLM_DB_KEY") != "" {
		return p, flmerr.New(flmerr.InvalidArgument, "FLM_DB_KEY is set, but a service cannot be given the key that way (a unit file is readable by every user): keep the key in the keychain or the key file (`flm security import-db-key`), unset FLM_DB_KEY and install again")
	}
	if keySource == "env" {
		return p, flmerr.New(flmerr.InvalidArgument, "a service cannot use --key-source env (FLM_DB_KEY would have to be written into its unit file): use file or keychain")
	}
	if scope == service.ScopeUser {
		if install {
			p.DataDir, err = a.DataDir()
		} else {
			p.DataDir, err = datadir.Resolve(a.Globals.DataDir, a.Getenv)
		}
		if err != nil {
			return p, err
		}
		p.KeySource = keySource
	} else {
		p.DataDir = a.Globals.DataDir
		switch {
		case p.DataDir != "":
			if p.DataDir, err = filepath.Abs(p.DataDir); err != nil {
				return p, flmerr.Wrap(err, flmerr.InvalidArgument, "data dir")
			}
		case runtime.GOOS == "darwin":
			p.DataDir = service.DarwinSystemDataDir
		case runtime.GOOS == "windows":
			pd := a.Getenv("ProgramData")
			if pd == "" {
				pd = `C:\ProgramData`
			}
			p.DataDir = filepath.Join(pd, "flm")
		default:
			p.DataDir = service.SystemDataDir
		}
		// A system account has no keychain on Linux and macOS; the Windows
		// service keeps the key in LocalSystem's Credential Manager (auto),
		// because %ProgramData% is readable by every user.
		if runtime.GOOS != "windows" {
			if keySource != "" && keySource != "auto" && keySource != "file" {
				return p, flmerr.New(flmerr.InvalidArgument, "the system service keeps security.db's key in a file (a system user has no keychain): drop --key-source %s", keySource)
			}
			p.KeySource = "file"
		} else if keySource != "auto" {
			p.KeySource = keySource
		}
	}
	for _, k := range service.RecordedEnv {
		if v := a.Getenv(k); v != "" {
			p.Env[k] = v
		}
	}
	return p, p.Validate()
}

// serviceWarnings adds what the user should know after an install.
func (a *App) serviceWarnings(p service.Profile, platform string) {
	var secrets []string
	for _, k := range service.SecretEnv {
		if k != "FLM_DB_KEY" && a.Getenv(k) != "" { // FLM_DB_KEY: install refused it
			secrets = append(secrets, k)
		}
	}
	if len(secrets) > 0 {
		where := "the service runs without them"
		if platform == service.PlatformSystemd {
			where = "put them in /etc/flm/service.env (mode 0600)"
			if p.Scope == service.ScopeUser {
				where = "put them in ~/.config/flm/service.env (mode 0600)"
			}
		}
		a.warn("SERVICE_SECRETS_NOT_RECORDED", fmt.Sprintf("%s set here but not recorded in the service (secrets never go in a unit file): %s", strings.Join(secrets, ", "), where))
	}
	if platform == service.PlatformSystemd && p.Scope == service.ScopeUser {
		if u, err := user.Current(); err == nil {
			if _, err := os.Stat(filepath.Join("/var/lib/systemd/linger", u.Username)); err != nil {
				a.warn("SERVICE_NO_LINGER", fmt.Sprintf("the user service runs only while %s is logged in; to start it at boot run `sudo loginctl enable-linger %s` (and keep security.db's key in the key file: a keychain is locked until you log in)", u.Username, u.Username))
			}
		}
	}
}

// ServiceInstallCmd is `flm service install`.
type ServiceInstallCmd struct {
	serviceScope
	serviceProxyFlags
}

// Help is the detailed help.
func (ServiceInstallCmd) Help() string {
	return `Installs the proxy as an OS service that starts at boot (system) or login
(user) and restarts on failure; start it with ` + "`flm service start`" + `. The flags given
here (the ` + "`flm proxy start`" + ` flags) are recorded in the service; to change them,
uninstall and install again. Under systemd the service runs ` + "`flm proxy start --foreground`" + `
and logs to the journal. Other init systems are refused (SERVICE_UNSUPPORTED): run
` + "`flm proxy start --foreground`" + ` under them. See docs/guides/SERVICE_GUIDE.md.`
}

// Run installs the service.
func (c ServiceInstallCmd) Run(a *App) error {
	m := newServiceManager()
	if err := m.Check(c.scope()); err != nil {
		return err
	}
	// Before serviceProfile creates the user data dir.
	if err := m.CheckUserHome(c.scope()); err != nil {
		return err
	}
	p, err := a.serviceProfile(c.scope(), c.flags(), true)
	if err != nil {
		return err
	}
	r, err := m.Install(p)
	if err != nil {
		return err
	}
	a.serviceWarnings(p, r.Platform)
	return a.print(r, func(w io.Writer) {
		fmt.Fprintf(w, "Installed the flm %s service (%s).\n", r.Scope, r.Platform)
		if r.File != "" {
			what := "file"
			if r.Packaged {
				what = "packaged unit, enabled"
			}
			fmt.Fprintf(w, "%s: %s\n", what, r.File)
		}
		if r.DropIn != "" {
			fmt.Fprintf(w, "profile: %s\n", r.DropIn)
		}
		fmt.Fprintf(w, "runs: %s\n", strings.Join(r.Command, " "))
		fmt.Fprintf(w, "logs: %s\n", r.Logs)
		fmt.Fprintf(w, "Start it with `flm service start%s`.\n", scopeFlag(r.Scope, c.serviceScope))
	})
}

// scopeFlag repeats the scope flag the user gave, for the next command.
func scopeFlag(s service.Scope, given serviceScope) string {
	if given.User || given.System {
		return " --" + string(s)
	}
	return ""
}

// ServiceUninstallCmd is `flm service uninstall`.
type ServiceUninstallCmd struct{ serviceScope }

// Run stops and removes the service.
func (c ServiceUninstallCmd) Run(a *App) error {
	return a.serviceControl(c.serviceScope, (*service.Manager).Uninstall, "Uninstalled the flm %s service (the data dir %s stays).")
}

// ServiceStartCmd is `flm service start`.
type ServiceStartCmd struct{ serviceScope }

// Run starts the service.
func (c ServiceStartCmd) Run(a *App) error {
	return a.serviceControl(c.serviceScope, (*service.Manager).Start, "Started the flm %s service (data dir %s).")
}

// ServiceStopCmd is `flm service stop`.
type ServiceStopCmd struct{ serviceScope }

// Run stops the service.
func (c ServiceStopCmd) Run(a *App) error {
	return a.serviceControl(c.serviceScope, (*service.Manager).Stop, "Stopped the flm %s service (data dir %s).")
}

func (a *App) serviceControl(sc serviceScope, op func(*service.Manager, service.Profile) (service.Report, error), text string) error {
	m := newServiceManager()
	if err := m.Check(sc.scope()); err != nil {
		return err
	}
	if err := m.CheckUserHome(sc.scope()); err != nil {
		return err
	}
	p, err := a.serviceProfile(sc.scope(), service.ProxyFlags{}, false)
	if err != nil {
		return err
	}
	r, err := op(m, p)
	if err != nil {
		return err
	}
	return a.print(r, func(w io.Writer) {
		fmt.Fprintf(w, text+"\n", r.Scope, p.DataDir)
		if r.Logs != "" {
			fmt.Fprintf(w, "logs: %s\n", r.Logs)
		}
	})
}

// ServiceStatusCmd is `flm service status`.
type ServiceStatusCmd struct{ serviceScope }

// Run reports the service's state.
func (c ServiceStatusCmd) Run(a *App) error {
	m := newServiceManager()
	if err := m.Check(c.scope()); err != nil {
		return err
	}
	p, err := a.serviceProfile(c.scope(), service.ProxyFlags{}, false)
	if err != nil {
		return err
	}
	r, err := m.Status(p)
	if err != nil {
		return err
	}
	return a.print(r, func(w io.Writer) {
		state := strings.ReplaceAll(r.State, "_", " ")
		fmt.Fprintf(w, "flm %s service (%s): %s\n", r.Scope, r.Platform, state)
		if r.State == service.StateNotInstalled {
			other := service.ScopeSystem
			if r.Scope == service.ScopeSystem {
				other = service.ScopeUser
			}
			fmt.Fprintf(w, "Install it with `flm service install%s`; the %s service: `flm service status --%s`.\n", scopeFlag(r.Scope, c.serviceScope), other, other)
			return
		}
		if r.File != "" {
			fmt.Fprintf(w, "file: %s\n", r.File)
		}
		if r.DropIn != "" {
			fmt.Fprintf(w, "profile: %s\n", r.DropIn)
		}
		fmt.Fprintf(w, "logs: %s\n", r.Logs)
	})
}

// ServiceRunCmd is `flm service run`: the command launchd and the Windows
// service manager start. Interactively it is `flm proxy start --foreground`.
type ServiceRunCmd struct{ serviceProxyFlags }

func (c ServiceRunCmd) proxyStart() ProxyStartCmd {
	f := c.serviceProxyFlags
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	return ProxyStartCmd{Port: f.Port, Mode: def(f.Mode, "local-http"), Bind: f.Bind, Foreground: true,
		EgressMode: def(f.EgressMode, "direct"), SOCKS5: f.SOCKS5, FailOpen: f.FailOpen, ACMEEmail: f.ACMEEmail,
		ACMEDomain: f.ACMEDomain, Challenge: def(f.Challenge, "http-01"), DNSProvider: f.DNSProvider}
}

// Run serves the proxy, through kardianos' Run when a service manager
// started it (the Windows service control protocol; launchd's SIGTERM).
func (c ServiceRunCmd) Run(a *App) error {
	if _, err := c.flags().Args(); err != nil {
		return err
	}
	start := c.proxyStart()
	if kservice.Interactive() {
		return start.Run(a)
	}
	dir, err := a.DataDir()
	if err != nil {
		return err
	}
	// The OS log gets the proxy's own log lines; the access log, one line
	// per request, goes to a rotated file as in background mode.
	start.AccessLog = filepath.Join(dir, "logs", "service-access.log")
	prg := &serviceProgram{parent: a.ctx}
	s, err := kservice.New(prg, &kservice.Config{Name: service.Name})
	if err != nil {
		return flmerr.Wrap(err, service.CodeFailed, "set up the service")
	}
	logger, err := s.Logger(nil)
	if err != nil {
		return flmerr.Wrap(err, service.CodeFailed, "open the OS log")
	}
	out, errOut := &logLines{log: logger}, &logLines{log: logger, stderr: true}
	a.Stdout, a.Stderr = out, errOut
	prg.run = func(ctx context.Context) error {
		a.ctx = ctx
		err := start.Run(a)
		out.Flush()
		errOut.Flush()
		return err
	}
	prg.exit = func(err error) {
		_ = logger.Errorf("flm proxy stopped: %s (%s)", err, flmerr.CodeOf(err))
		os.Exit(1)
	}
	return s.Run()
}

// serviceProgram adapts the foreground proxy to kardianos' Start/Stop.
type serviceProgram struct {
	parent context.Context
	run    func(context.Context) error
	// exit ends the process when the proxy stops on its own with an error,
	// so that the service manager restarts it (nil: os.Exit(1)).
	exit func(error)

	cancel   context.CancelFunc
	done     chan error
	stopping atomic.Bool
}

// Start launches the proxy and returns at once, as kardianos requires.
func (p *serviceProgram) Start(kservice.Service) error {
	ctx, cancel := context.WithCancel(p.parent)
	p.cancel, p.done = cancel, make(chan error, 1)
	go func() {
		err := p.run(ctx)
		if err != nil && !p.stopping.Load() {
			if p.exit != nil {
				p.exit(err)
			} else {
				os.Exit(1)
			}
		}
		p.done <- err
	}()
	return nil
}

// serviceStopTimeout bounds a graceful stop (the Windows service manager
// waits about 20 s before it gives up on a service).
const serviceStopTimeout = 15 * time.Second

// Stop asks the proxy to shut down gracefully and waits for it.
func (p *serviceProgram) Stop(kservice.Service) error {
	p.stopping.Store(true)
	p.cancel()
	select {
	case err := <-p.done:
		return err
	case <-time.After(serviceStopTimeout):
		return errors.New("the proxy did not stop within 15 s")
	}
}

// logLines forwards each written line to the OS log.
type logLines struct {
	log    kservice.Logger
	stderr bool
	mu     sync.Mutex
	buf    bytes.Buffer
}

func (l *logLines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(b)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			// Keep the unfinished line for the next write.
			rest := line
			l.buf.Reset()
			l.buf.WriteString(rest)
			return len(b), nil
		}
		l.emit(strings.TrimRight(line, "\r\n"))
	}
}

// Flush logs an unfinished last line.
func (l *logLines) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	sc := bufio.NewScanner(&l.buf)
	for sc.Scan() {
		l.emit(sc.Text())
	}
	l.buf.Reset()
}

func (l *logLines) emit(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	switch {
	case !l.stderr:
		_ = l.log.Info(line)
	case strings.Contains(line, `"level":"ERROR"`), strings.HasPrefix(line, "error:"), strings.HasPrefix(line, `{"error":`):
		_ = l.log.Error(line)
	case strings.Contains(line, `"level":"WARN"`), strings.HasPrefix(line, "warning:"):
		_ = l.log.Warning(line)
	default:
		_ = l.log.Info(line)
	}
}
