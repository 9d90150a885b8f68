package service

import (
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/unjuno/flm/core/flmerr"
)

// Name is the service's name: the systemd unit flm.service, the launchd
// label and the Windows service name.
const Name = "flm"

// Defaults of the system service on Linux, shared with packaging/ (the
// .deb/.rpm create the user and the data dir).
const (
	PackagedExecutable = "/usr/bin/flm"
	SystemUser         = "flm"
	SystemDataDir      = "/var/lib/flm"
	// DarwinSystemDataDir is the launchd daemon's data dir (it runs as root).
	DarwinSystemDataDir = "/Library/Application Support/flm"
)

// Scope is where the service lives.
type Scope string

const (
	// ScopeUser is a systemd --user unit or a launchd LaunchAgent: it runs as
	// the installing user, with that user's data dir and keychain.
	ScopeUser Scope = "user"
	// ScopeSystem is a systemd system unit (user flm), a launchd
	// LaunchDaemon (root) or a Windows service (LocalSystem).
	ScopeSystem Scope = "system"
)

// The platforms flm installs into (kardianos/service's System names).
const (
	PlatformSystemd = "linux-systemd"
	PlatformLaunchd = "darwin-launchd"
	PlatformWindows = "windows-service"
)

// ProxyFlags are the `flm proxy start` flags a service records. Only the
// ones given are recorded, so the proxy's own defaults (proxy.port setting,
// bind 127.0.0.1 …) still apply to the others.
type ProxyFlags struct {
	Port           int
	Mode           string
	Bind           string
	EgressMode     string
	SOCKS5Endpoint string
	EgressFailOpen bool
	ACMEEmail      string
	Domain         string
	ACMEChallenge  string
	DNSProvider    string
}

var (
	proxyModes     = []string{"local-http", "dev-selfsigned", "https-acme", "packaged-ca"}
	egressModes    = []string{"direct", "tor", "socks5"}
	acmeChallenges = []string{"http-01", "tls-alpn-01", "dns-01"}
)

// Args returns the recorded flags in a fixed order, validated so that the
// service does not start into a restart loop on a flag the proxy rejects at
// once, and so that no value can break the unit file's syntax.
func (f ProxyFlags) Args() ([]string, error) {
	var args []string
	if f.Port != 0 {
		if f.Port < 1 || f.Port > 65535 {
			return nil, flmerr.New(flmerr.InvalidArgument, "port %d: want 1-65535", f.Port)
		}
		args = append(args, "--port", strconv.Itoa(f.Port))
	}
	add := func(flag, v string, allowed []string) error {
		if v == "" {
			return nil
		}
		if allowed != nil && !slices.Contains(allowed, v) {
			return flmerr.New(flmerr.InvalidArgument, "%s %q: want one of %s", flag, v, strings.Join(allowed, ", "))
		}
		if err := safeValue(flag, v); err != nil {
			return err
		}
		args = append(args, flag, v)
		return nil
	}
	if err := add("--mode", f.Mode, proxyModes); err != nil {
		return nil, err
	}
	if f.Bind != "" {
		if _, err := netip.ParseAddr(f.Bind); err != nil {
			return nil, flmerr.New(flmerr.InvalidArgument, "bind %q is not an IP address", f.Bind)
		}
		args = append(args, "--bind", f.Bind)
	}
	if f.SOCKS5Endpoint != "" {
		if err := checkSOCKS5Endpoint(f.SOCKS5Endpoint); err != nil {
			return nil, err
		}
	}
	for _, x := range []struct {
		flag, v string
		allowed []string
	}{
		{"--egress-mode", f.EgressMode, egressModes},
		{"--socks5-endpoint", f.SOCKS5Endpoint, nil},
	} {
		if err := add(x.flag, x.v, x.allowed); err != nil {
			return nil, err
		}
	}
	if f.EgressFailOpen {
		args = append(args, "--egress-fail-open")
	}
	for _, x := range []struct {
		flag, v string
		allowed []string
	}{
		{"--domain", f.Domain, nil},
		{"--acme-email", f.ACMEEmail, nil},
		{"--acme-challenge", f.ACMEChallenge, acmeChallenges},
		{"--dns-provider", f.DNSProvider, nil},
	} {
		if err := add(x.flag, x.v, x.allowed); err != nil {
			return nil, err
		}
	}
	return args, nil
}

// safeValue refuses what no legitimate flag value holds and what would
// change the meaning of a service file: control characters (a newline would
// start a new unit directive), "{{" / "}}" (kardianos renders the unit text
// as a template) and invalid UTF-8 (systemd ignores such an assignment
// whole, FLM_DATA_DIR included; a plist would not parse).
func safeValue(what, v string) error {
	if strings.Contains(v, "{{") || strings.Contains(v, "}}") || strings.IndexFunc(v, unicode.IsControl) >= 0 || !utf8.ValidString(v) {
		return flmerr.New(flmerr.InvalidArgument, "%s %q: control characters, braces and invalid UTF-8 are not allowed in a service's settings", what, v)
	}
	return nil
}

// checkSOCKS5Endpoint wants host:port, as the proxy dials it. Credentials
// (user:pass@host) are refused: they would be written into a service file
// every user can read, and the proxy takes them from FLM_SOCKS5_USERNAME and
// FLM_SOCKS5_PASSWORD only.
func checkSOCKS5Endpoint(v string) error {
	if strings.Contains(v, "@") || strings.Contains(v, "/") {
		return flmerr.New(flmerr.InvalidArgument, "--socks5-endpoint wants host:port, without a scheme or credentials: put SOCKS5 credentials in FLM_SOCKS5_USERNAME/FLM_SOCKS5_PASSWORD in the service's environment file (docs/guides/SERVICE_GUIDE.md), never on its command line")
	}
	host, port, err := net.SplitHostPort(v)
	n, perr := strconv.Atoi(port)
	if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return flmerr.New(flmerr.InvalidArgument, "--socks5-endpoint %q: want host:port (port 1-65535)", v)
	}
	return nil
}

// checkWindowsCommandLine refuses "%" in what the Windows service runs: the
// service manager stores the command line as REG_EXPAND_SZ and expands
// %NAME% in it when it starts the service, with no way to escape it.
func checkWindowsCommandLine(exe string, args []string) error {
	for _, v := range append([]string{exe}, args...) {
		if strings.Contains(v, "%") {
			return flmerr.New(flmerr.InvalidArgument, "%q: a Windows service's command line cannot hold %%: the service manager would expand %%NAME%% in it", v)
		}
	}
	return nil
}

// Profile is everything `flm service install` records.
type Profile struct {
	Name       string // Name, except in tests
	Scope      Scope
	Executable string // absolute path of the flm binary the service runs
	Proxy      ProxyFlags
	// DataDir is the service's FLM_DATA_DIR (always recorded, so the
	// service uses the data dir `flm service install` saw).
	DataDir string
	// KeySource is FLM_DB_KEY_SOURCE ("" = not recorded: auto).
	KeySource string
	// Env holds further non-secret variables to record
	// (FLM_ACME_DIRECTORY …).
	Env map[string]string
}

// Validate checks what the service files need.
func (p Profile) Validate() error {
	if p.Name == "" {
		return flmerr.New(flmerr.InvalidArgument, "service name is empty")
	}
	if p.Scope != ScopeUser && p.Scope != ScopeSystem {
		return flmerr.New(flmerr.InvalidArgument, "service scope %q: want user or system", p.Scope)
	}
	if !filepath.IsAbs(p.Executable) && !isWindowsAbs(p.Executable) {
		return flmerr.New(flmerr.InvalidArgument, "service executable %q is not an absolute path", p.Executable)
	}
	if !filepath.IsAbs(p.DataDir) && !isWindowsAbs(p.DataDir) {
		return flmerr.New(flmerr.InvalidArgument, "service data dir %q is not an absolute path", p.DataDir)
	}
	for _, v := range []string{p.Executable, p.DataDir, p.KeySource} {
		if err := safeValue("service setting", v); err != nil {
			return err
		}
	}
	for k, v := range p.Env {
		if err := safeValue(k, v); err != nil {
			return err
		}
	}
	if _, err := p.Proxy.Args(); err != nil {
		return err
	}
	return nil
}

func isWindowsAbs(p string) bool {
	return len(p) > 2 && p[1] == ':' && (p[2] == '\\' || p[2] == '/')
}

// Arguments is the command line after the executable. Under systemd the
// unit runs the proxy itself; launchd and the Windows service manager run
// `flm service run`, which speaks their protocol (and logs to the OS log).
func (p Profile) Arguments(platform string) []string {
	proxyArgs, _ := p.Proxy.Args()
	if platform == PlatformSystemd {
		return append([]string{"proxy", "start", "--foreground"}, proxyArgs...)
	}
	return append([]string{"service", "run"}, proxyArgs...)
}

// EnvList is the recorded environment in a fixed order: FLM_DATA_DIR,
// FLM_DB_KEY_SOURCE, then the others by name.
func (p Profile) EnvList() [][2]string {
	out := [][2]string{{"FLM_DATA_DIR", p.DataDir}}
	if p.KeySource != "" {
		out = append(out, [2]string{"FLM_DB_KEY_SOURCE", p.KeySource})
	}
	keys := make([]string, 0, len(p.Env))
	for k := range p.Env {
		if k != "FLM_DATA_DIR" && k != "FLM_DB_KEY_SOURCE" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, [2]string{k, p.Env[k]})
	}
	return out
}

// EnvMap is EnvList as a map (kardianos' Config.EnvVars).
func (p Profile) EnvMap() map[string]string {
	m := map[string]string{}
	for _, kv := range p.EnvList() {
		m[kv[0]] = kv[1]
	}
	return m
}

// RecordedEnv lists the non-secret variables `flm service install` copies
// from its own environment into the service; secrets (FLM_DB_KEY, SOCKS5 and
// DNS provider credentials) are never recorded.
var RecordedEnv = []string{"FLM_ACME_DIRECTORY", "FLM_ACME_CA_ROOTS", "FLM_ACME_DNS_RESOLVERS"}

// SecretEnv lists variables the proxy reads that a service never records;
// install warns when they are set.
var SecretEnv = []string{"FLM_DB_KEY", "FLM_SOCKS5_USERNAME", "FLM_SOCKS5_PASSWORD"}
