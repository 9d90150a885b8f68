// Package proxyctl holds the proxy's configuration, the handle that
// describes a running proxy (PRODUCT.md §4, §6, §7, §8), and the Service
// that owns the rules of running proxies for every front end (CLI, UI):
// refuse what is unsafe before anything starts, compute handle URLs, forget
// dead handles, wait for readiness, stop gracefully, and reload exactly over
// the control channel (control.go).
//
// Security notes: a handle's control token is a secret. Handle.Control is
// never marshalled with the handle (`proxy status` prints handles); only a
// HandleStore keeps it, in a file only the user can read. The Service only
// sends the token to a loopback address.
package proxyctl

import (
	"fmt"

	"github.com/unjuno/flm/core/certs"
	"net/netip"
	"strconv"
	"time"
)

// Mode is a TLS mode.
type Mode string

// The modes.
const (
	LocalHTTP     Mode = "local-http"
	DevSelfSigned Mode = "dev-selfsigned"
	HTTPSACME     Mode = "https-acme"
	PackagedCA    Mode = "packaged-ca"
)

// EgressMode says how the proxy reaches engines that are not on loopback.
type EgressMode string

// The egress modes.
const (
	EgressDirect EgressMode = "direct"
	EgressTor    EgressMode = "tor"
	EgressSOCKS5 EgressMode = "socks5"
)

// Egress is the proxy's egress configuration.
type Egress struct {
	Mode           EgressMode `json:"mode"`
	SOCKS5Endpoint string     `json:"socks5_endpoint,omitempty"`
	FailOpen       bool       `json:"fail_open"`
	// LastCheck is when the proxy's start-up check of the SOCKS endpoint
	// ran (nil: direct mode, or a handle of an older flm).
	LastCheck *time.Time `json:"last_check,omitempty"`
	// FellBack is set when that check failed and FailOpen made the proxy
	// reach engines directly instead.
	FellBack bool `json:"fell_back,omitempty"`
}

// Config is what `flm proxy start` asks for.
type Config struct {
	Mode   Mode   `json:"mode"`
	Port   int    `json:"port"`
	Bind   string `json:"bind"`
	Egress Egress `json:"egress"`

	ACMEEmail     string `json:"acme_email,omitempty"`
	ACMEDomain    string `json:"acme_domain,omitempty"`
	ACMEChallenge string `json:"acme_challenge,omitempty"`
	DNSProvider   string `json:"dns_provider,omitempty"`
}

// DefaultConfig is local-http on 127.0.0.1:8080 with direct egress.
func DefaultConfig() Config {
	return Config{Mode: LocalHTTP, Port: 8080, Bind: "127.0.0.1", Egress: Egress{Mode: EgressDirect}}
}

// DefaultBind is the address a proxy of mode m listens on when none is
// given: 0.0.0.0 for https-acme (the CA and the clients reach it from
// outside), 127.0.0.1 for every other mode. The CLI and the UI both use it.
func DefaultBind(m Mode) string {
	if m == HTTPSACME {
		return "0.0.0.0"
	}
	return "127.0.0.1"
}

// HTTPSPort is the HTTPS port of a TLS mode (port+1), or 0 for local-http.
func (c Config) HTTPSPort() int {
	if c.Mode == LocalHTTP {
		return 0
	}
	return c.Port + 1
}

// Validate checks the parts of c that need no I/O.
func (c Config) Validate() error {
	switch c.Mode {
	case LocalHTTP, DevSelfSigned, HTTPSACME, PackagedCA:
	default:
		return fmt.Errorf("mode %q: want local-http, dev-selfsigned, https-acme or packaged-ca", c.Mode)
	}
	maxPort := 65535
	if c.Mode != LocalHTTP {
		maxPort-- // port+1 must exist too
	}
	if c.Port < 1 || c.Port > maxPort {
		return fmt.Errorf("port %d: want 1-%d", c.Port, maxPort)
	}
	if _, err := netip.ParseAddr(c.Bind); err != nil {
		return fmt.Errorf("bind %q is not an IP address", c.Bind)
	}
	switch c.Egress.Mode {
	case EgressDirect, EgressTor:
	case EgressSOCKS5:
		if c.Egress.SOCKS5Endpoint == "" {
			return fmt.Errorf("egress socks5 needs --socks5-endpoint host:port")
		}
	default:
		return fmt.Errorf("egress mode %q: want direct, tor or socks5", c.Egress.Mode)
	}
	if c.Mode == HTTPSACME {
		if c.ACMEDomain == "" {
			return fmt.Errorf("https-acme needs --domain")
		}
		switch c.ACMEChallenge {
		case "", ChallengeHTTP01, ChallengeTLSALPN01:
		case ChallengeDNS01:
			if c.DNSProvider == "" {
				return fmt.Errorf("dns-01 needs --dns-provider (see `flm security dns-providers`)")
			}
			// A DNS provider's API client and the propagation check (plain
			// DNS queries) open their own connections: they cannot be
			// carried by the SOCKS egress, so dns-01 would leak where a
			// Tor/SOCKS5 user asked for none.
			if c.Egress.Mode == EgressTor || c.Egress.Mode == EgressSOCKS5 {
				return fmt.Errorf("dns-01 cannot go through the %s egress (the DNS provider's API and the propagation check use their own connections); use --acme-challenge http-01 or tls-alpn-01, whose CA traffic goes through it", c.Egress.Mode)
			}
		default:
			return fmt.Errorf("acme challenge %q: want http-01, tls-alpn-01 or dns-01", c.ACMEChallenge)
		}
	}
	return nil
}

// The ACME challenges (Config.ACMEChallenge; "" = http-01).
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
	ChallengeDNS01     = "dns-01"
)

// Loopback reports whether c binds to a loopback address only.
func (c Config) Loopback() bool {
	a, err := netip.ParseAddr(c.Bind)
	return err == nil && a.IsLoopback()
}

// URLs are the addresses a user can reach a proxy at. None shows 0.0.0.0.
type URLs struct {
	Local    string `json:"local"`
	LAN      string `json:"lan,omitempty"`
	External string `json:"external,omitempty"`
}

// Handle describes a proxy FLM started.
type Handle struct {
	ID         string    `json:"id"`
	PID        int       `json:"pid"`
	Port       int       `json:"port"`
	HTTPSPort  int       `json:"https_port,omitempty"`
	Mode       Mode      `json:"mode"`
	ListenAddr string    `json:"listen_addr"`
	URLs       URLs      `json:"urls"`
	Egress     Egress    `json:"egress"`
	StartedAt  time.Time `json:"started_at"`
	Running    bool      `json:"running"`
	LastError  string    `json:"last_error,omitempty"`
	// InstanceID is random per proxy process; the proxy's /health answers
	// it in X-Flm-Instance, so a handle is never confused with another
	// process that reused the pid.
	InstanceID string `json:"instance_id"`
	// Certificate is what the HTTPS listener serves (TLS modes; filled by
	// Service.Status): expiry and the last renewal error among others.
	Certificate *certs.Info `json:"certificate,omitempty"`
	// Control reaches the proxy's control channel. It holds a secret, so
	// it is never part of the handle's JSON; HandleStores keep it apart.
	Control Control `json:"-"`

	// unproven is set by Service.Live on a silent proxy whose pid may now
	// be another program's: it is reported, never signalled.
	unproven bool
}

// Control is the address and token of a proxy's control channel. The zero
// value means the proxy has none (it was started by an older flm).
type Control struct {
	Addr  string // 127.0.0.1:port
	Token string // 64 hex digits
}

// HandleID is the id of the proxy on port: one proxy per port and data dir.
func HandleID(port int) string { return "proxy-" + strconv.Itoa(port) }
