package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/unjuno/flm/cli/internal/proc"
	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/proxy"
	"github.com/unjuno/flm/proxy/devtls"
)

// The adapters of proxyctl's ports: OS processes, the flm executable, HTTP
// to the proxies, the stores and the detector. The rules are in
// proxyctl.Service; proxyports_test.go runs proxyctltest's conformance
// suites against these.

var (
	_ proxyctl.HandleStore = store.Handles{}
	_ proxyctl.Processes   = osProcesses{}
	_ proxyctl.Launcher    = flmLauncher{}
	_ proxyctl.Prober      = httpProber{}
	_ proxyctl.Controller  = httpController{}
	_ proxyctl.KeyChecker  = keyChecker{}
	_ proxyctl.PortChecker = portChecker{}
	_ proxyctl.LANFinder   = systemLAN{}
)

// proxyService wires proxyctl.Service to this data dir. Only config.db is
// opened here; security.db and the detector are opened when a rule needs
// them (a non-loopback bind, a busy port).
func (a *App) proxyService() (*proxyctl.Service, error) {
	dir, err := a.DataDir()
	if err != nil {
		return nil, err
	}
	d, err := a.DB(store.Config)
	if err != nil {
		return nil, err
	}
	certs := filepath.Join(dir, "certs")
	return &proxyctl.Service{
		Handles:  store.Handles{DB: d},
		Procs:    osProcesses{},
		Launcher: flmLauncher{dataDir: dir, keySource: a.Globals.KeySource},
		Prober:   httpProber{certsDir: certs},
		Control:  httpController{},
		Keys:     keyChecker{a},
		Ports:    portChecker{a},
		LAN:      systemLAN{},
		Certs:    certFinder{a},
		// The proxy's grace for streams, plus its shutdown.
		StopTimeout: proxy.ShutdownGrace + 3*time.Second,
	}, nil
}

// osProcesses is proxyctl.Processes over cli/internal/proc.
type osProcesses struct{}

func (osProcesses) Alive(pid int) bool { return proc.Alive(pid) }

func (osProcesses) Signal(pid int, sig proxyctl.Signal) error {
	var err error
	switch sig {
	case proxyctl.Terminate:
		err = proc.Terminate(pid)
	case proxyctl.Kill:
		err = proc.Kill(pid)
	case proxyctl.Hangup:
		err = proc.Reload(pid)
	default:
		return fmt.Errorf("unknown signal %d", sig)
	}
	if errors.Is(err, proc.ErrUnsupported) {
		return proxyctl.ErrUnsupported
	}
	return err
}

func (osProcesses) IsProxy(pid, port int) (is, known bool) {
	return proc.CmdlineHas(pid, "proxy", "start", "--foreground", "--port", strconv.Itoa(port))
}

// flmLauncher re-runs this flm executable with `proxy start --foreground`
// in its own session, its output appended to logs/proxy-<port>.log.
type flmLauncher struct {
	dataDir string
	exe     string // "" = os.Executable()
	// keySource is --key-source, passed on so that the child reads
	// security.db's key where this process does.
	keySource string
}

func (l flmLauncher) logPath(port int) string {
	return filepath.Join(l.dataDir, "logs", fmt.Sprintf("proxy-%d.log", port))
}

func (l flmLauncher) Launch(_ context.Context, cfg proxyctl.Config) (int, error) {
	exe := l.exe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return 0, flmerr.Wrap(err, flmerr.Internal, "find the flm executable")
		}
	}
	logf, err := os.OpenFile(l.logPath(cfg.Port), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, flmerr.Wrap(err, flmerr.IOError, "open proxy log")
	}
	defer logf.Close()
	args := []string{"--data-dir", l.dataDir}
	if l.keySource != "" {
		args = append(args, "--key-source", l.keySource)
	}
	args = append(args, "proxy", "start", "--foreground", "--port", strconv.Itoa(cfg.Port),
		"--mode", string(cfg.Mode), "--bind", cfg.Bind, "--egress-mode", string(cfg.Egress.Mode),
		"--access-log", filepath.Join(l.dataDir, "logs", fmt.Sprintf("access-%d.log", cfg.Port)))
	for _, f := range []struct{ flag, v string }{{"--socks5-endpoint", cfg.Egress.SOCKS5Endpoint}, {"--acme-email", cfg.ACMEEmail},
		{"--domain", cfg.ACMEDomain}, {"--acme-challenge", cfg.ACMEChallenge}, {"--dns-provider", cfg.DNSProvider}} {
		if f.v != "" {
			args = append(args, f.flag, f.v)
		}
	}
	if cfg.Egress.FailOpen {
		args = append(args, "--egress-fail-open")
	}
	env := append(os.Environ(), "FLM_DATA_DIR="+l.dataDir)
	p, err := proc.StartDetached(exe, args, env, logf)
	if err != nil {
		return 0, flmerr.Wrap(err, flmerr.Internal, "start the proxy process")
	}
	pid := p.Pid // Release clears it
	_ = p.Release()
	return pid, nil
}

// LastWords reads the child's error object (the last line of its log).
func (l flmLauncher) LastWords(cfg proxyctl.Config) proxyctl.LastWords {
	path := l.logPath(cfg.Port)
	line := lastLine(path)
	lw := proxyctl.LastWords{Message: clip(line, 400), Log: path}
	// The child's error object is read whole: its message and warnings
	// (a DB_KEY_IN_FILE warning alone is ~450 bytes) must not be cut
	// before the code is found.
	var e struct {
		Error struct {
			Code    flmerr.Code `json:"code"`
			Message string      `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(line), &e) == nil && e.Error.Code != "" {
		lw.Code, lw.Message = e.Error.Code, e.Error.Message
	}
	return lw
}

// lastWordsTail is how much of the end of a proxy log LastWords reads.
const lastWordsTail = 64 << 10

// lastLine returns the last non-empty line within the last 64 KiB of a log.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "no log"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > lastWordsTail {
		if _, err := f.Seek(st.Size()-lastWordsTail, io.SeekStart); err != nil {
			return "no log"
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, lastWordsTail))
	if err != nil {
		return "no log"
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) != "" {
			return lines[i]
		}
	}
	return "no log"
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// loopbackTransport never goes through an HTTP proxy from the environment:
// what it carries (a control token) is for the proxy on this machine only.
func loopbackTransport(tc *tls.Config) *http.Transport {
	return &http.Transport{Proxy: nil, TLSClientConfig: tc, DisableKeepAlives: true,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}
}

// httpProber checks GET /health, over HTTPS in TLS modes trusting the dev
// CA in certs/ (dev-selfsigned) or the local CA's root exported there
// (packaged-ca, LocalCARootFile). In https-acme mode the certificate names
// a public domain, not the loopback address probed, and its CA may be one
// only the user's clients trust (Pebble, a staging CA): the probe does not
// verify the chain there. It carries no secret, and the proxy's identity
// is proven by its instance id (and the control token), not by TLS.
type httpProber struct{ certsDir string }

// LocalCARootFile is the packaged-ca root certificate (public) in certs/,
// for users to copy to phones and for the CLI's own probes.
const LocalCARootFile = "local-ca.pem"

func (p httpProber) Probe(ctx context.Context, h proxyctl.Handle) (string, error) {
	var tc *tls.Config
	if h.HTTPSPort != 0 || strings.HasPrefix(h.URLs.Local, "https://") {
		switch h.Mode {
		case proxyctl.HTTPSACME:
			tc = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // see httpProber
		case proxyctl.PackagedCA:
			if pem, err := os.ReadFile(filepath.Join(p.certsDir, LocalCARootFile)); err == nil {
				pool := x509.NewCertPool()
				if pool.AppendCertsFromPEM(pem) {
					tc = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
				}
			}
		default:
			if pool, err := devtls.CAPool(devtls.FilesIn(p.certsDir)); err == nil {
				tc = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URLs.Local+"/health", nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: loopbackTransport(tc)}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /health: status %d", resp.StatusCode)
	}
	return resp.Header.Get("X-Flm-Instance"), nil
}

// httpController is the client of the control channel
// (proxyctl.ControlHandler).
type httpController struct{}

func (httpController) Reload(ctx context.Context, h proxyctl.Handle, parts proxyctl.Parts) (proxyctl.Applied, error) {
	u := "http://" + h.Control.Addr + proxyctl.ControlPath + "?parts=" + url.QueryEscape(string(parts))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return proxyctl.Applied{}, flmerr.Wrap(err, flmerr.ProxyInvalidConfig, "the control address of %s", h.ID)
	}
	req.Header.Set("Authorization", "Bearer "+h.Control.Token)
	resp, err := (&http.Client{Transport: loopbackTransport(nil)}).Do(req)
	if err != nil {
		// The URL holds no secret, but keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return proxyctl.Applied{}, flmerr.Wrap(err, flmerr.ProxyNotRunning, "the control channel of %s does not answer", h.ID)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return proxyctl.Applied{}, flmerr.Wrap(err, flmerr.ProxyNotRunning, "read the answer of %s", h.ID)
	}
	if resp.StatusCode != http.StatusOK {
		var e proxyctl.ControlError
		if json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
			return proxyctl.Applied{}, flmerr.New(flmerr.Internal, "the control channel of %s answered status %d", h.ID, resp.StatusCode)
		}
		return proxyctl.Applied{}, flmerr.New(e.Error.Code, "%s", e.Error.Message)
	}
	var a proxyctl.Applied
	if err := json.Unmarshal(body, &a); err != nil {
		return proxyctl.Applied{}, flmerr.Wrap(err, flmerr.Internal, "decode the answer of %s", h.ID)
	}
	return a, nil
}

// Identify asks the control channel whether it holds h's token. Its dial
// has no timeout of its own (ctx bounds it): Windows answers a closed
// loopback port only after retrying for about 2 s, and that refusal is
// the proof that the proxy is gone.
func (httpController) Identify(ctx context.Context, h proxyctl.Handle) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.Control.Addr+proxyctl.IdentifyPath, nil)
	if err != nil {
		return flmerr.Wrap(err, flmerr.ProxyInvalidConfig, "the control address of %s", h.ID)
	}
	req.Header.Set("Authorization", "Bearer "+h.Control.Token)
	tr := loopbackTransport(nil)
	tr.DialContext = (&net.Dialer{}).DialContext
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if refused(err) {
			return fmt.Errorf("%w: nothing listens at %s", proxyctl.ErrNotThisProxy, h.Control.Addr)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("the control channel of %s does not answer: %w", h.ID, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch resp.StatusCode {
	case http.StatusNoContent:
		return nil
	case http.StatusUnauthorized:
		return fmt.Errorf("%w: the control channel at %s refuses the token", proxyctl.ErrNotThisProxy, h.Control.Addr)
	}
	return fmt.Errorf("the control channel of %s answered status %d", h.ID, resp.StatusCode)
}

// refused reports whether a dial failed because nothing listens: ECONNREFUSED,
// or WSAECONNREFUSED (10061) on Windows, where syscall.ECONNREFUSED is a
// different, invented number.
func refused(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return false
	}
	var errno syscall.Errno
	return errors.As(err, &errno) && (errno == syscall.ECONNREFUSED || runtime.GOOS == "windows" && errno == 10061)
}

// keyChecker reads security.db's keys.
type keyChecker struct{ a *App }

func (k keyChecker) HasActiveKey(ctx context.Context) (bool, error) {
	svc, err := k.a.keys()
	if err != nil {
		return false, err
	}
	recs, err := svc.List(ctx)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(recs, apikey.Record.Active), nil
}

// portChecker test-binds ports and asks the detector who holds one.
type portChecker struct{ a *App }

func (portChecker) Free(_ context.Context, bind string, port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(bind, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return ln.Close()
}

func (p portChecker) Holder(ctx context.Context, port int) string {
	det, err := p.a.detector()
	if err != nil {
		return ""
	}
	states, err := det.Detect(ctx, engine.DetectOptions{})
	if err != nil {
		return ""
	}
	for _, s := range states {
		if engine.Running(s.Status.State) && s.BaseURL != "" && portOf(s.BaseURL) == port {
			return fmt.Sprintf("%s (detected at %s)", engine.DisplayName(s.Kind), s.BaseURL)
		}
	}
	return ""
}

func portOf(rawURL string) int {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(u.Port())
	return n
}

// systemLAN finds the first private IPv4 address of the machine's
// interfaces (devtls puts every private address in the dev certificate).
type systemLAN struct{}

func (systemLAN) Addr() string {
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
