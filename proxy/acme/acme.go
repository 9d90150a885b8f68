package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/challenge/tlsalpn01"
	"github.com/go-acme/lego/v5/lego"
	legolog "github.com/go-acme/lego/v5/log"
	"github.com/go-acme/lego/v5/registration"

	"github.com/unjuno/flm/core/certs"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/proxy"
	"github.com/unjuno/flm/proxy/tlsconf"
)

// Environment variables the CLI reads (documented in the guide).
const (
	// EnvDirectory selects the CA: a directory URL or a shortcut
	// (ResolveDirectory). Unset = Let's Encrypt production.
	EnvDirectory = "FLM_ACME_DIRECTORY"
	// EnvCARoots names PEM files (os.PathListSeparator-separated) whose
	// certificates are trusted, besides the system roots, for the TLS
	// connection to the ACME directory (a private or test CA).
	EnvCARoots = "FLM_ACME_CA_ROOTS"
	// EnvDNSResolvers lists DNS servers (host:port, comma-separated) that
	// DNS-01 uses to check that the TXT record is visible; set, they are
	// trusted as authoritative (split-horizon setups, tests).
	EnvDNSResolvers = "FLM_ACME_DNS_RESOLVERS"
)

// Meta keys of an ACME certificate record.
const (
	MetaDirectory = "directory"
	MetaCertURL   = "cert_url"
	MetaChallenge = "challenge"
	MetaARIStart  = "ari_start"
	MetaARIEnd    = "ari_end"
)

// Audit event types written by the manager.
const (
	AuditRenewalFailed = "acme_renewal_failed"
	AuditIssued        = "acme_certificate_issued"
)

// ResolveDirectory turns FLM_ACME_DIRECTORY's value into a directory URL:
// "" or "letsencrypt"/"production" = Let's Encrypt production,
// "letsencrypt-staging"/"staging" = its staging CA, any other lego CA code
// (zerossl, googletrust …), or an https:// URL (http:// only for a
// loopback host).
func ResolveDirectory(v string) (string, error) {
	v = strings.TrimSpace(v)
	switch strings.ToLower(v) {
	case "", "production", "letsencrypt", "le":
		return lego.DirectoryURLLetsEncrypt, nil
	case "staging", "letsencrypt-staging", "le-staging":
		return lego.DirectoryURLLetsEncryptStaging, nil
	}
	if strings.Contains(v, "://") {
		u, err := parseURL(v)
		if err != nil {
			return "", err
		}
		return u, nil
	}
	u, err := lego.GetDirectoryURL(v)
	if err != nil {
		return "", fmt.Errorf("%s %q: want an https:// directory URL or one of letsencrypt, staging, %s", EnvDirectory, v, strings.Join(otherCodes(), ", "))
	}
	return u, nil
}

// LoadRoots reads FLM_ACME_CA_ROOTS's PEM files into a pool that also
// holds the system roots. An empty value returns nil (system roots only).
func LoadRoots(paths string) (*x509.CertPool, error) {
	if strings.TrimSpace(paths) == "" {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, p := range filepath.SplitList(paths) {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvCARoots, err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", EnvCARoots, p)
		}
	}
	return pool, nil
}

// ParseResolvers splits FLM_ACME_DNS_RESOLVERS ("host:port,host:port";
// a host without port gets 53).
func ParseResolvers(v string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(f); err != nil {
			if net.ParseIP(strings.Trim(f, "[]")) == nil && strings.Contains(f, ":") {
				return nil, fmt.Errorf("%s: %q is not host:port", EnvDNSResolvers, f)
			}
			f = net.JoinHostPort(strings.Trim(f, "[]"), "53")
		}
		out = append(out, f)
	}
	return out, nil
}

// Options configure a Manager.
type Options struct {
	// Domain is the name to certify (it must resolve to this machine, or
	// DNS-01 is used).
	Domain string
	// Email is the ACME account's contact ("" = none).
	Email string
	// Challenge is http-01 (default), tls-alpn-01 or dns-01.
	Challenge string
	// DNSProvider names the DNS-01 provider (DNSProviders).
	DNSProvider string
	// Directory is the CA's directory URL ("" = Let's Encrypt production).
	Directory string
	// Store keeps the certificate, Accounts the ACME account (security.db).
	Store    certs.Store
	Accounts certs.AccountStore
	// HTTPClient carries all ACME traffic (nil = a default client; the
	// egress may give one that goes through SOCKS5). When Roots is set and
	// the client's transport is an *http.Transport, a copy of it trusting
	// Roots is used.
	HTTPClient *http.Client
	// Roots, if set, verifies the directory's TLS certificate (LoadRoots).
	Roots *x509.CertPool
	// DNSResolvers, if set, are the servers DNS-01 asks for the TXT record
	// (and are trusted as authoritative). Process-wide in lego.
	DNSResolvers []string
	// Profile asks the CA for a certificate profile ("" = its default).
	Profile string
	// Audit receives renewal failures and renewals (nil = none).
	Audit proxy.AuditSink
	// Logger gets the manager's and lego's messages (nil = discard).
	Logger *slog.Logger
	// Now is the clock (nil = time.Now); tests move it.
	Now func() time.Time
	// CheckEvery is how often Run checks for renewal; 0 = 12 h.
	CheckEvery time.Duration
	// RetryMin and RetryMax bound the backoff after a failed renewal;
	// 0 = 1 min and 1 h.
	RetryMin, RetryMax time.Duration
	// OrderTimeout bounds one issuance (account, order, challenge,
	// download); 0 = 2 min.
	OrderTimeout time.Duration
}

// Manager gets and renews one domain's certificate. Safe for concurrent
// use; GetCertificate is on the handshake path and never blocks on I/O.
type Manager struct {
	opts Options
	log  *slog.Logger
	id   string

	cur atomic.Pointer[served]

	chMu   sync.Mutex
	tokens map[string]string           // HTTP-01: token → key authorization
	alpn   map[string]*tls.Certificate // TLS-ALPN-01: domain → challenge cert

	orderMu sync.Mutex // one issuance at a time
	client  *lego.Client
}

// served is the certificate in use.
type served struct {
	cert *tls.Certificate
	rec  certs.Record
}

// New checks opts and returns a Manager with no certificate yet (Obtain
// loads or orders it).
func New(opts Options) (*Manager, error) {
	opts.Domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(opts.Domain)), ".")
	if err := checkDomain(opts.Domain); err != nil {
		return nil, flmerr.New(flmerr.ProxyInvalidConfig, "%v", err)
	}
	if opts.Store == nil || opts.Accounts == nil {
		return nil, flmerr.New(flmerr.Internal, "acme manager needs a certificate and an account store")
	}
	if opts.Challenge == "" {
		opts.Challenge = proxyctl.ChallengeHTTP01
	}
	switch opts.Challenge {
	case proxyctl.ChallengeHTTP01, proxyctl.ChallengeTLSALPN01:
	case proxyctl.ChallengeDNS01:
		if _, err := lookupDNSProvider(opts.DNSProvider); err != nil {
			return nil, flmerr.New(flmerr.ProxyInvalidConfig, "%v (see `flm security dns-providers`)", err)
		}
	default:
		return nil, flmerr.New(flmerr.ProxyInvalidConfig, "acme challenge %q: want http-01, tls-alpn-01 or dns-01", opts.Challenge)
	}
	if opts.Directory == "" {
		opts.Directory = lego.DirectoryURLLetsEncrypt
	}
	if _, err := parseURL(opts.Directory); err != nil {
		return nil, flmerr.New(flmerr.ProxyInvalidConfig, "%v", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CheckEvery <= 0 {
		opts.CheckEvery = 12 * time.Hour
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Minute
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = time.Hour
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = opts.RetryMin
	}
	if opts.OrderTimeout <= 0 {
		opts.OrderTimeout = 2 * time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// lego logs to stdout by default, which is the CLI's JSON output.
	legolog.SetDefault(log.With("component", "lego"))
	if len(opts.DNSResolvers) > 0 {
		dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: opts.DNSResolvers, Timeout: 10 * time.Second}))
	}
	return &Manager{
		opts: opts, log: log, id: certs.ACMEID(opts.Domain),
		tokens: map[string]string{}, alpn: map[string]*tls.Certificate{},
	}, nil
}

func parseURL(v string) (string, error) {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("ACME directory %q is not a URL", v)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip == nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
			return "", fmt.Errorf("ACME directory %q: plain http only on loopback", v)
		}
	default:
		return "", fmt.Errorf("ACME directory %q: want https://", v)
	}
	return u.String(), nil
}

// checkDomain accepts a DNS name FLM can certify (no IP, no wildcard: the
// http-01 and tls-alpn-01 challenges cannot prove those).
func checkDomain(d string) error {
	if d == "" {
		return errors.New("https-acme needs --domain")
	}
	if net.ParseIP(strings.Trim(d, "[]")) != nil {
		return fmt.Errorf("domain %q: ACME certifies names, not IP addresses", d)
	}
	if len(d) > 253 || !strings.Contains(d, ".") {
		return fmt.Errorf("domain %q: want a fully qualified name such as llm.example.net", d)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("domain %q is not a valid DNS name", d)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("domain %q is not a valid DNS name (wildcards are not supported)", d)
			}
		}
	}
	return nil
}

// Domain is the certified name.
func (m *Manager) Domain() string { return m.opts.Domain }

// TLSConfig is the HTTPS listener's configuration: FLM's parameters
// (tlsconf.Server), the current certificate through GetCertificate, and
// "acme-tls/1" for TLS-ALPN-01.
func (m *Manager) TLSConfig() *tls.Config {
	c := tlsconf.Server()
	c.GetCertificate = m.GetCertificate
	if m.opts.Challenge == proxyctl.ChallengeTLSALPN01 {
		c.NextProtos = append(c.NextProtos, tlsalpn01.ACMETLS1Protocol)
	}
	return c
}

// GetCertificate returns the certificate for a handshake: the TLS-ALPN-01
// challenge certificate to a validation client (ALPN "acme-tls/1" only,
// during a challenge), else the current certificate. Without one the
// handshake fails: https-acme never serves without a certificate.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == tlsalpn01.ACMETLS1Protocol {
		m.chMu.Lock()
		c := m.alpn[strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))]
		m.chMu.Unlock()
		if c == nil {
			return nil, errors.New("acme: no tls-alpn-01 challenge in progress")
		}
		return c, nil
	}
	if s := m.cur.Load(); s != nil {
		return s.cert, nil
	}
	return nil, errors.New("acme: no certificate yet")
}

// Current describes the certificate in use (ok = false before Obtain).
func (m *Manager) Current() (certs.Info, bool) {
	s := m.cur.Load()
	if s == nil {
		return certs.Info{}, false
	}
	return certs.InfoOf(s.rec, m.opts.Now()), true
}

// HTTPHandler answers HTTP-01 challenges (mount as proxy.Options.Challenge:
// GET/HEAD under proxy.ChallengePath). Unknown tokens are 404.
func (m *Manager) HTTPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.URL.Path, proxy.ChallengePath)
		if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			http.NotFound(w, r)
			return
		}
		m.chMu.Lock()
		keyAuth, ok := m.tokens[token]
		m.chMu.Unlock()
		if !ok || token == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, keyAuth)
	})
}

// http01Provider and alpnProvider present challenges to the listeners the
// proxy already runs (lego would otherwise open its own).
type http01Provider struct{ m *Manager }

func (p http01Provider) Present(_ context.Context, _, token, keyAuth string) error {
	p.m.chMu.Lock()
	defer p.m.chMu.Unlock()
	p.m.tokens[token] = keyAuth
	return nil
}

func (p http01Provider) CleanUp(_ context.Context, _, token, _ string) error {
	p.m.chMu.Lock()
	defer p.m.chMu.Unlock()
	delete(p.m.tokens, token)
	return nil
}

type alpnProvider struct{ m *Manager }

func (p alpnProvider) Present(_ context.Context, domain, _, keyAuth string) error {
	c, err := tlsalpn01.ChallengeCert(domain, keyAuth)
	if err != nil {
		return err
	}
	p.m.chMu.Lock()
	defer p.m.chMu.Unlock()
	p.m.alpn[strings.ToLower(domain)] = c
	return nil
}

func (p alpnProvider) CleanUp(_ context.Context, domain, _, _ string) error {
	p.m.chMu.Lock()
	defer p.m.chMu.Unlock()
	delete(p.m.alpn, strings.ToLower(domain))
	return nil
}

// Obtain leaves a certificate in place: the stored one when it is valid
// and not due (no order), else a new one from the CA. A stored certificate
// that is due but still valid is served, and a failed renewal is only
// recorded (Run retries). With no valid certificate, a failure is
// PROXY_ACME_ERROR carrying the CA's message.
func (m *Manager) Obtain(ctx context.Context) error {
	rec, err := m.opts.Store.Get(ctx, m.id)
	haveStored := err == nil
	if err != nil && !errors.Is(err, certs.ErrNotFound) {
		return flmerr.Wrap(err, flmerr.ProxyACMEError, "read the stored certificate for %s", m.opts.Domain)
	}
	if haveStored && m.usable(rec) {
		if err := m.install(rec); err == nil {
			if !m.due(rec) {
				m.log.Info("acme: using the stored certificate", "domain", m.opts.Domain, "not_after", rec.NotAfter)
				return nil
			}
			if rerr := m.renew(ctx); rerr != nil {
				m.log.Warn("acme: renewal failed; the current certificate stays in use", "domain", m.opts.Domain, "err", rerr.Error())
			}
			return nil
		}
	}
	return m.renew(ctx)
}

// usable: the stored record is from this CA, for this domain, and valid now.
func (m *Manager) usable(rec certs.Record) bool {
	return rec.Meta[MetaDirectory] == m.opts.Directory && slices.Contains(rec.SANs, m.opts.Domain) &&
		m.opts.Now().Before(rec.NotAfter) && len(rec.CertPEM) > 0 && len(rec.KeyPEM) > 0
}

func (m *Manager) due(rec certs.Record) bool {
	var w *certs.Window
	if s, e := parseTime(rec.Meta[MetaARIStart]), parseTime(rec.Meta[MetaARIEnd]); !s.IsZero() {
		w = &certs.Window{Start: s, End: e}
	}
	return certs.NeedsRenewal(rec.NotBefore, rec.NotAfter, m.opts.Now(), w)
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return t
}

// install makes rec the served certificate (atomic swap).
func (m *Manager) install(rec certs.Record) error {
	c, err := tls.X509KeyPair(rec.CertPEM, rec.KeyPEM)
	if err != nil {
		return fmt.Errorf("load certificate %s: %w", rec.ID, err)
	}
	m.cur.Store(&served{cert: &c, rec: rec})
	return nil
}

// renew orders a certificate and installs it. On failure it records the
// error on the stored record (if any), writes an audit event, and returns
// PROXY_ACME_ERROR.
func (m *Manager) renew(ctx context.Context) error {
	m.orderMu.Lock()
	defer m.orderMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, m.opts.OrderTimeout)
	defer cancel()
	rec, err := m.order(ctx)
	if err != nil {
		m.log.Error("acme: no certificate", "domain", m.opts.Domain, "directory", m.opts.Directory, "err", err.Error())
		ferr := &flmerr.Error{Code: flmerr.ProxyACMEError, Err: err,
			Message: fmt.Sprintf("get a certificate for %s from %s: %s", m.opts.Domain, m.opts.Directory, reason(err))}
		switch m.opts.Challenge {
		case proxyctl.ChallengeHTTP01:
			ferr.Message += " (http-01: " + m.opts.Domain + ":80 must reach this proxy's HTTP port)"
		case proxyctl.ChallengeTLSALPN01:
			ferr.Message += " (tls-alpn-01: " + m.opts.Domain + ":443 must reach this proxy's HTTPS port)"
		}
		m.recordFailure(ferr.Message)
		return ferr
	}
	if err := m.install(rec); err != nil {
		return flmerr.Wrap(err, flmerr.ProxyACMEError, "the CA's certificate for %s", m.opts.Domain)
	}
	m.audit(proxy.AuditEvent{Type: AuditIssued, Severity: "low", Detail: "certificate for " + m.opts.Domain + " valid until " + rec.NotAfter.Format(time.RFC3339)})
	m.log.Info("acme: new certificate", "domain", m.opts.Domain, "not_after", rec.NotAfter)
	return nil
}

// reason is the short form of an issuance error a user sees: the CA's
// problem (type and detail) when it sent one, else the network error;
// lego's wrapping (kept in the log) is dropped and the text is bounded.
func reason(err error) string {
	var pd *legoacme.ProblemDetails
	var op *net.OpError
	msg := err.Error()
	switch {
	case errors.As(err, &pd):
		msg = pd.Type + ": " + pd.Detail
		for _, sub := range pd.SubProblems {
			msg += "; " + sub.Type + ": " + sub.Detail
		}
	case errors.As(err, &op):
		msg = "cannot reach the CA: " + op.Error()
	}
	const max = 240
	if len(msg) > max {
		msg = msg[:max/2] + "…" + msg[len(msg)-max/2:]
	}
	return msg
}

// recordFailure keeps msg as the stored record's last error (a record
// needs a certificate: with none stored, the error only goes to the audit
// log and the caller).
func (m *Manager) recordFailure(msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if rec, err := m.opts.Store.Get(ctx, m.id); err == nil {
		rec.Meta = cloneMeta(rec.Meta)
		rec.Meta[certs.MetaLastError] = m.opts.Now().UTC().Format(time.RFC3339) + " " + msg
		if err := m.opts.Store.Put(ctx, rec); err != nil {
			m.log.Warn("acme: cannot record the renewal error", "err", err.Error())
		}
	}
	m.audit(proxy.AuditEvent{Type: AuditRenewalFailed, Severity: "high", Detail: msg})
}

func (m *Manager) audit(ev proxy.AuditEvent) {
	if m.opts.Audit == nil {
		return
	}
	ev.Count, ev.At, ev.Endpoint = 1, m.opts.Now().UTC(), m.opts.Domain
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.opts.Audit.Audit(ctx, []proxy.AuditEvent{ev}); err != nil {
		m.log.Warn("acme: audit write failed", "err", err.Error())
	}
}

func cloneMeta(in map[string]string) map[string]string {
	out := make(map[string]string, len(in)+1)
	for k, v := range in {
		out[k] = v
	}
	return out
}

// order runs one issuance and stores the result.
func (m *Manager) order(ctx context.Context) (certs.Record, error) {
	client, err := m.legoClient(ctx)
	if err != nil {
		return certs.Record{}, err
	}
	req := certificate.ObtainRequest{
		Domains: []string{m.opts.Domain}, Bundle: true, KeyType: certcrypto.EC256, Profile: m.opts.Profile,
	}
	// ARI (RFC 9773): name the certificate this one replaces, when the CA
	// offers renewal information for it.
	var prevLeaf *x509.Certificate
	if s := m.cur.Load(); s != nil && len(s.cert.Certificate) > 0 {
		prevLeaf, _ = x509.ParseCertificate(s.cert.Certificate[0])
	}
	if prevLeaf != nil {
		if _, err := client.Certificate.GetRenewalInfo(ctx, prevLeaf); err == nil {
			if id, err := api.MakeARICertID(prevLeaf); err == nil {
				req.ReplacesCertID = id
			}
		}
	}
	res, err := client.Certificate.Obtain(ctx, req)
	if err != nil && req.ReplacesCertID != "" {
		// A CA may refuse the replacement (already replaced): order plainly.
		var pd *legoacme.ProblemDetails
		if errors.As(err, &pd) && strings.Contains(pd.Type, "alreadyReplaced") {
			req.ReplacesCertID = ""
			res, err = client.Certificate.Obtain(ctx, req)
		}
	}
	if err != nil {
		return certs.Record{}, err
	}
	now := m.opts.Now()
	rec, err := certs.FromPEM(m.id, certs.SourceACME, res.Certificate, res.PrivateKey, now)
	if err != nil {
		return certs.Record{}, err
	}
	rec.Meta = map[string]string{MetaDirectory: m.opts.Directory, MetaCertURL: res.CertURL, MetaChallenge: m.opts.Challenge}
	if leaf, err := x509.ParseCertificate(mustDER(res.Certificate)); err == nil {
		if ri, err := client.Certificate.GetRenewalInfo(ctx, leaf); err == nil && ri != nil {
			rec.Meta[MetaARIStart] = ri.SuggestedWindow.Start.UTC().Format(time.RFC3339)
			rec.Meta[MetaARIEnd] = ri.SuggestedWindow.End.UTC().Format(time.RFC3339)
		}
	}
	if err := m.opts.Store.Put(ctx, rec); err != nil {
		return certs.Record{}, fmt.Errorf("store the certificate: %w", err)
	}
	return rec, nil
}

func mustDER(p []byte) []byte {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil
	}
	return b.Bytes
}

// refreshARI re-reads the CA's renewal window for the served certificate
// and stores it (best effort: a CA without ARI keeps the fixed rule).
func (m *Manager) refreshARI(ctx context.Context) {
	s := m.cur.Load()
	if s == nil || len(s.cert.Certificate) == 0 {
		return
	}
	leaf, err := x509.ParseCertificate(s.cert.Certificate[0])
	if err != nil {
		return
	}
	m.orderMu.Lock()
	defer m.orderMu.Unlock()
	client, err := m.legoClient(ctx)
	if err != nil {
		return
	}
	ri, err := client.Certificate.GetRenewalInfo(ctx, leaf)
	if err != nil || ri == nil {
		return
	}
	rec := s.rec
	rec.Meta = cloneMeta(rec.Meta)
	start, end := ri.SuggestedWindow.Start.UTC().Format(time.RFC3339), ri.SuggestedWindow.End.UTC().Format(time.RFC3339)
	if rec.Meta[MetaARIStart] == start && rec.Meta[MetaARIEnd] == end {
		return
	}
	rec.Meta[MetaARIStart], rec.Meta[MetaARIEnd] = start, end
	if cur, err := m.opts.Store.Get(ctx, m.id); err == nil {
		rec.Meta[certs.MetaLastError] = cur.Meta[certs.MetaLastError]
	}
	if err := m.opts.Store.Put(ctx, rec); err == nil {
		m.cur.Store(&served{cert: s.cert, rec: rec})
	}
}

// Run checks for renewal every CheckEvery until ctx ends; after a failed
// renewal it retries with exponential backoff (RetryMin … RetryMax),
// keeping the current certificate while it is valid.
func (m *Manager) Run(ctx context.Context) {
	wait := m.opts.CheckEvery
	backoff := time.Duration(0)
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if m.check(ctx) == nil {
			backoff, wait = 0, m.opts.CheckEvery
			continue
		}
		if backoff == 0 {
			backoff = m.opts.RetryMin
		} else if backoff *= 2; backoff > m.opts.RetryMax {
			backoff = m.opts.RetryMax
		}
		wait = backoff
	}
}

// check renews now if the served certificate is due (or missing).
func (m *Manager) check(ctx context.Context) error {
	s := m.cur.Load()
	if s != nil {
		m.refreshARI(ctx)
		s = m.cur.Load()
		if !m.due(s.rec) {
			return nil
		}
	}
	err := m.renew(ctx)
	if err != nil {
		if s != nil && m.opts.Now().Before(s.rec.NotAfter) {
			m.log.Warn("acme: renewal failed; the current certificate stays in use", "domain", m.opts.Domain, "not_after", s.rec.NotAfter, "err", err.Error())
		} else {
			m.log.Error("acme: no valid certificate", "domain", m.opts.Domain, "err", err.Error())
		}
	}
	return err
}

// legoClient returns the account's client, creating the account (key in
// the AccountStore) on first use. Called with orderMu held.
func (m *Manager) legoClient(ctx context.Context) (*lego.Client, error) {
	if m.client != nil {
		return m.client, nil
	}
	acc, err := m.opts.Accounts.GetAccount(ctx, m.opts.Directory, m.opts.Email)
	var key crypto.Signer
	switch {
	case err == nil:
		if key, err = certcrypto.ParsePEMPrivateKey(acc.KeyPEM); err != nil {
			return nil, fmt.Errorf("the stored ACME account key is damaged: %w", err)
		}
	case errors.Is(err, certs.ErrNotFound):
		k, gerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if gerr != nil {
			return nil, gerr
		}
		key = k
		acc = certs.Account{Directory: m.opts.Directory, Email: m.opts.Email, KeyPEM: certcrypto.PEMEncode(k), CreatedAt: m.opts.Now().UTC()}
	default:
		return nil, fmt.Errorf("read the ACME account: %w", err)
	}
	u := &user{email: m.opts.Email, key: key}
	if len(acc.Registration) > 0 {
		var reg legoacme.ExtendedAccount
		if json.Unmarshal(acc.Registration, &reg) == nil && reg.Location != "" {
			u.reg = &reg
		}
	}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = m.opts.Directory
	cfg.UserAgent = "flm"
	cfg.HTTPClient = m.httpClient()
	cfg.Certificate.Timeout = 30 * time.Second
	client, err := lego.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("reach the ACME directory: %w", err)
	}
	if u.reg == nil {
		reg, err := client.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
		if err != nil {
			return nil, fmt.Errorf("register the ACME account: %w", err)
		}
		u.reg = reg
		acc.Registration, _ = json.Marshal(reg)
		if err := m.opts.Accounts.PutAccount(ctx, acc); err != nil {
			return nil, fmt.Errorf("store the ACME account: %w", err)
		}
	}
	if err := m.setSolver(client); err != nil {
		return nil, err
	}
	m.client = client
	return client, nil
}

func (m *Manager) setSolver(client *lego.Client) error {
	switch m.opts.Challenge {
	case proxyctl.ChallengeTLSALPN01:
		return client.Challenge.SetTLSALPN01Provider(alpnProvider{m})
	case proxyctl.ChallengeDNS01:
		p, err := lookupDNSProvider(m.opts.DNSProvider)
		if err != nil {
			return err
		}
		prov, err := p.build()
		if err != nil {
			return fmt.Errorf("dns provider %s (credentials from %s): %w", p.Name, strings.Join(p.Env, ", "), err)
		}
		var opts []dns01.ChallengeOption
		if len(m.opts.DNSResolvers) > 0 {
			opts = append(opts, dns01.DisableAuthoritativeNssPropagationRequirement())
		}
		return client.Challenge.SetDNS01Provider(prov, opts...)
	default:
		return client.Challenge.SetHTTP01Provider(http01Provider{m})
	}
}

// httpClient is the ACME traffic's client: the injected one (trusting
// Roots when set) or a default.
func (m *Manager) httpClient() *http.Client {
	base := m.opts.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   15 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       30 * time.Second,
		}}
	}
	if m.opts.Roots == nil {
		return base
	}
	t, ok := base.Transport.(*http.Transport)
	if base.Transport == nil {
		t, ok = http.DefaultTransport.(*http.Transport)
	}
	if !ok {
		return base
	}
	t = t.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	t.TLSClientConfig.RootCAs = m.opts.Roots
	c := *base
	c.Transport = t
	return &c
}

// user is lego's view of the account. Its key is never printed.
type user struct {
	email string
	key   crypto.Signer
	reg   *legoacme.ExtendedAccount
}

func (u *user) GetEmail() string                           { return u.email }
func (u *user) GetRegistration() *legoacme.ExtendedAccount { return u.reg }
func (u *user) GetPrivateKey() crypto.Signer               { return u.key }

var _ registration.User = (*user)(nil)

// otherCodes are lego's CA codes besides Let's Encrypt's two, which the
// error names by FLM's shortcuts.
func otherCodes() []string {
	var out []string
	for _, c := range lego.GetAllCodes() {
		if c != "letsencrypt" && c != "letsencrypt-staging" {
			out = append(out, c)
		}
	}
	return out
}
