package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/proxy"

	"github.com/unjuno/flm/core/proxyctl"
)

// DefaultTorEndpoint is Tor's SOCKS port, the endpoint of --egress-mode tor
// when none is given.
const DefaultTorEndpoint = "127.0.0.1:9050"

// The environment variables of the optional SOCKS5 credentials (RFC 1929).
const (
	EnvUsername = "FLM_SOCKS5_USERNAME"
	EnvPassword = "FLM_SOCKS5_PASSWORD"
)

// ContextDialer dials connections; *net.Dialer is one.
type ContextDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Auth is a SOCKS5 user name and password. Its String hides both.
type Auth struct{ User, Password string }

func (Auth) String() string { return "Auth{redacted}" }

// GoString hides the credentials from %#v too.
func (a Auth) GoString() string { return a.String() }

// AuthFromEnv reads the credentials from EnvUsername and EnvPassword: nil
// when neither is set; an error (naming the variables, not their values)
// when only one is, or when one is longer than RFC 1929 allows.
func AuthFromEnv(getenv func(string) string) (*Auth, error) {
	if getenv == nil {
		return nil, nil
	}
	u, p := getenv(EnvUsername), getenv(EnvPassword)
	switch {
	case u == "" && p == "":
		return nil, nil
	case u == "" || p == "":
		return nil, fmt.Errorf("SOCKS5 credentials need both %s and %s (only one is set)", EnvUsername, EnvPassword)
	case len(u) > 255 || len(p) > 255:
		return nil, fmt.Errorf("SOCKS5 credentials in %s/%s: each must be 1-255 bytes", EnvUsername, EnvPassword)
	}
	return &Auth{User: u, Password: p}, nil
}

// Config configures a Dialer.
type Config struct {
	Mode proxyctl.EgressMode // "" = direct
	// Endpoint is the SOCKS server's host:port; "" in tor mode is
	// DefaultTorEndpoint. Ignored in direct mode.
	Endpoint string
	Auth     *Auth // nil = no authentication
	// Direct dials loopback destinations, direct-mode destinations and the
	// SOCKS server itself; nil = a net.Dialer with a 5 s timeout.
	Direct ContextDialer
}

// EndpointOf is the SOCKS endpoint an egress configuration uses: its own,
// Tor's default in tor mode, "" in direct mode.
func EndpointOf(e proxyctl.Egress) string {
	switch e.Mode {
	case proxyctl.EgressTor:
		if e.SOCKS5Endpoint == "" {
			return DefaultTorEndpoint
		}
		return e.SOCKS5Endpoint
	case proxyctl.EgressSOCKS5:
		return e.SOCKS5Endpoint
	}
	return ""
}

// Dialer dials engines (and ACME servers) according to the egress rules of
// the package doc. It is safe for concurrent use and holds no connection:
// every dial starts afresh.
type Dialer struct {
	mode     proxyctl.EgressMode
	endpoint string
	auth     *Auth
	direct   ContextDialer
}

// New validates cfg and returns its Dialer. It does no I/O (see Check).
func New(cfg Config) (*Dialer, error) {
	d := &Dialer{mode: cfg.Mode, auth: cfg.Auth, direct: cfg.Direct}
	if d.mode == "" {
		d.mode = proxyctl.EgressDirect
	}
	if d.direct == nil {
		d.direct = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	}
	switch d.mode {
	case proxyctl.EgressDirect:
		return d, nil
	case proxyctl.EgressTor, proxyctl.EgressSOCKS5:
	default:
		return nil, fmt.Errorf("egress mode %q: want direct, tor or socks5", d.mode)
	}
	d.endpoint = EndpointOf(proxyctl.Egress{Mode: d.mode, SOCKS5Endpoint: cfg.Endpoint})
	host, port, err := net.SplitHostPort(d.endpoint)
	if err != nil || host == "" {
		return nil, fmt.Errorf("SOCKS5 endpoint %q: want host:port (e.g. 127.0.0.1:9050)", d.endpoint)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("SOCKS5 endpoint %q: port must be 1-65535", d.endpoint)
	}
	if cfg.Auth != nil && (cfg.Auth.User == "" || cfg.Auth.Password == "" || len(cfg.Auth.User) > 255 || len(cfg.Auth.Password) > 255) {
		return nil, errors.New("SOCKS5 credentials: user name and password must each be 1-255 bytes")
	}
	return d, nil
}

// Mode is the dialer's egress mode.
func (d *Dialer) Mode() proxyctl.EgressMode { return d.mode }

// Endpoint is the SOCKS server's host:port ("" in direct mode).
func (d *Dialer) Endpoint() string { return d.endpoint }

// SOCKS reports whether non-loopback destinations go through SOCKS.
func (d *Dialer) SOCKS() bool { return d.mode != proxyctl.EgressDirect }

// Loopback reports whether host (a name or an IP literal, without port)
// is this machine: a loopback IP literal, "localhost" or a name under
// ".localhost". It never looks a name up.
func Loopback(host string) bool {
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().IsLoopback()
	}
	host = strings.ToLower(host)
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// Onion reports a Tor onion service name.
func Onion(host string) bool {
	return strings.HasSuffix(strings.ToLower(strings.TrimSuffix(host, ".")), ".onion")
}

// DialContext connects to addr (host:port) by the egress rules.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if Loopback(host) {
		return d.dialLoopback(ctx, network, addr)
	}
	if !d.SOCKS() {
		if Onion(host) {
			return nil, ErrOnionDirect
		}
		return d.direct.DialContext(ctx, network, addr)
	}
	return d.dialSOCKS(ctx, network, addr)
}

// dialLoopback dials a loopback destination directly. "localhost" names
// are dialed at 127.0.0.1 and then ::1 themselves: they must not reach a
// DNS server either.
func (d *Dialer) dialLoopback(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, _ := net.SplitHostPort(addr)
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return d.direct.DialContext(ctx, network, addr)
	}
	c, err := d.direct.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	if err == nil {
		return c, nil
	}
	if c6, err6 := d.direct.DialContext(ctx, network, net.JoinHostPort("::1", port)); err6 == nil {
		return c6, nil
	}
	return nil, err
}

// dialSOCKS connects through the SOCKS server; the destination's name, if
// it is one, is sent to the server unresolved (golang.org/x/net/proxy sends
// any non-literal host as a SOCKS5 domain name).
func (d *Dialer) dialSOCKS(ctx context.Context, network, addr string) (net.Conn, error) {
	var auth *proxy.Auth
	if d.auth != nil {
		auth = &proxy.Auth{User: d.auth.User, Password: d.auth.Password}
	}
	fw := &trackingDialer{d: d.direct}
	sd, err := proxy.SOCKS5("tcp", d.endpoint, auth, fw)
	if err != nil {
		return nil, d.unavailable(err)
	}
	c, err := sd.(proxy.ContextDialer).DialContext(ctx, network, addr)
	if err == nil {
		return c, nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	// The server answered the CONNECT with a failure code: egress works,
	// the destination does not answer (socks reports "unknown error <reply>").
	if fw.reached && strings.Contains(err.Error(), "unknown error ") {
		return nil, &TargetError{Err: err}
	}
	return nil, d.unavailable(err)
}

func (d *Dialer) unavailable(err error) *UnavailableError {
	return &UnavailableError{Endpoint: d.endpoint, Reason: reasonOf(err), Err: err}
}

// trackingDialer remembers whether the SOCKS server was reached.
type trackingDialer struct {
	d       ContextDialer
	reached bool
}

func (t *trackingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := t.d.DialContext(ctx, network, addr)
	t.reached = err == nil
	return c, err
}

// Dial implements proxy.Dialer.
func (t *trackingDialer) Dial(network, addr string) (net.Conn, error) {
	return t.DialContext(context.Background(), network, addr)
}

// NewTransport is an http.Transport that dials through d: no proxy from the
// environment (the egress is explicit), bounded dial and TLS handshakes.
func (d *Dialer) NewTransport() *http.Transport {
	return &http.Transport{
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// HTTPClient is a client whose every connection follows the egress rules,
// for ACME traffic (proxy/acme Options.HTTPClient).
func (d *Dialer) HTTPClient() *http.Client {
	return &http.Client{Transport: d.NewTransport(), Timeout: 2 * time.Minute}
}
