package acme_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/apikey/apikeytest"
	"github.com/unjuno/flm/core/certs"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/proxy"
	"github.com/unjuno/flm/proxy/acme"
	"github.com/unjuno/flm/proxy/acme/acmetest"
	"github.com/unjuno/flm/tools/enginefake"
)

// memCerts is an in-memory certs.Store and certs.AccountStore.
type memCerts struct {
	mu    sync.Mutex
	recs  map[string]certs.Record
	accts map[string]certs.Account
	puts  int
}

func newMemCerts() *memCerts {
	return &memCerts{recs: map[string]certs.Record{}, accts: map[string]certs.Account{}}
}

func (s *memCerts) Get(_ context.Context, id string) (certs.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	if !ok {
		return certs.Record{}, fmt.Errorf("%w: %s", certs.ErrNotFound, id)
	}
	return r, nil
}

func (s *memCerts) Put(_ context.Context, r certs.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[r.ID] = r
	s.puts++
	return nil
}

func (s *memCerts) List(context.Context) ([]certs.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []certs.Record
	for _, r := range s.recs {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s *memCerts) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recs[id]; !ok {
		return certs.ErrNotFound
	}
	delete(s.recs, id)
	return nil
}

func (s *memCerts) GetAccount(_ context.Context, dir, email string) (certs.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accts[dir+"|"+email]
	if !ok {
		return certs.Account{}, certs.ErrNotFound
	}
	return a, nil
}

func (s *memCerts) PutAccount(_ context.Context, a certs.Account) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accts[a.Directory+"|"+a.Email] = a
	return nil
}

// memAudit records audit events.
type memAudit struct {
	mu     sync.Mutex
	events []proxy.AuditEvent
}

func (a *memAudit) Audit(_ context.Context, evs []proxy.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, evs...)
	return nil
}

func (a *memAudit) count(typ string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// source is the proxy's Source: one key, one fake engine.
type source struct {
	keys *apikey.Service
	eps  []engine.Endpoint
	sts  []engine.State
	mods []engine.Model
}

func (s *source) Keys(ctx context.Context) ([]apikey.Record, error) { return s.keys.List(ctx) }
func (s *source) Policy(context.Context) (policy.Policy, error)     { return policy.Default(), nil }
func (s *source) Engines(context.Context) ([]engine.Endpoint, []engine.State, []engine.Model, error) {
	return s.eps, s.sts, s.mods, nil
}

// env is a proxy in https-acme mode in front of a fake engine, with Pebble.
type env struct {
	t      *testing.T
	ca     *acmetest.CA
	port   int
	key    string
	src    *source
	store  *memCerts
	audit  *memAudit
	domain string
}

func newEnv(t *testing.T, domain string) *env {
	t.Helper()
	port := acmetest.FreePortPair(t)
	ca := acmetest.Start(t, acmetest.Config{HTTPPort: port, TLSPort: port + 1})
	f, err := enginefake.Start(enginefake.Options{Kind: enginefake.Ollama, Models: []enginefake.Model{{Name: "llama3:latest"}}, TTFT: 20 * time.Millisecond, TokensPerSecond: 4, NoRecord: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	src := &source{keys: &apikey.Service{Store: apikeytest.NewMemStore()}}
	k, err := src.keys.Create(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	src.eps = []engine.Endpoint{{ID: "ollama", Kind: engine.Ollama, BaseURL: f.URL()}}
	src.sts = []engine.State{{ID: "ollama", Kind: engine.Ollama, BaseURL: f.URL(), Status: engine.Status{State: engine.RunningHealthy}}}
	src.mods = []engine.Model{{ID: engine.ModelID("ollama", "llama3:latest"), EngineID: "ollama", EngineKind: engine.Ollama, Name: "llama3:latest"}}
	return &env{t: t, ca: ca, port: port, key: k.Plain, src: src, store: newMemCerts(), audit: &memAudit{}, domain: domain}
}

func (e *env) options(challenge string) acme.Options {
	return acme.Options{
		Domain: e.domain, Email: "me@example.com", Challenge: challenge, Directory: e.ca.Directory,
		Roots: e.ca.Roots, HTTPClient: e.ca.HTTPClient(), Store: e.store, Accounts: e.store, Audit: e.audit, OrderTimeout: 30 * time.Second,
	}
}

// serve runs a proxy with m's TLS and challenge handler until the test ends.
func (e *env) serve(m *acme.Manager, challenge string) *proxy.Server {
	e.t.Helper()
	cfg := proxyctl.Config{Mode: proxyctl.HTTPSACME, Port: e.port, Bind: "127.0.0.1", Egress: proxyctl.Egress{Mode: proxyctl.EgressDirect}, ACMEDomain: e.domain, ACMEChallenge: challenge}
	if challenge == proxyctl.ChallengeDNS01 {
		cfg.DNSProvider = "httpreq"
	}
	srv, err := proxy.New(context.Background(), proxy.Options{Config: cfg, Source: e.src, TLS: m.TLSConfig(), Challenge: m.HTTPHandler()})
	if err != nil {
		e.t.Fatal(err)
	}
	lns, err := srv.Listen()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := srv.Serve(lns); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv
}

// client trusts only Pebble's issuing root and reaches the domain at the
// proxy's HTTPS port.
func (e *env) client() *http.Client {
	roots := e.ca.IssuerRoots(e.t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e.port+1))
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: e.domain},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}}
}

// url addresses the proxy by its loopback address (the Host check of a
// loopback-bound proxy admits only loopback names); the TLS server name
// is the domain (client()).
func (e *env) url(path string) string {
	return "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(e.port+1)) + path
}

// checkServes: /health and /v1/models (with the key) answer 200 over a
// verified TLS connection; the HTTP port only redirects.
func (e *env) checkServes() {
	e.t.Helper()
	c := e.client()
	for _, path := range []string{"/health", "/v1/models"} {
		req, _ := http.NewRequest(http.MethodGet, e.url(path), nil)
		req.Header.Set("Authorization", "Bearer "+e.key)
		resp, err := c.Do(req)
		if err != nil {
			e.t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			e.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		if path == "/v1/models" && !strings.Contains(string(body), "flm://ollama/llama3:latest") {
			e.t.Fatalf("models: %s", body)
		}
	}
	e.checkHTTPPortOnlyRedirects()
}

func (e *env) checkHTTPPortOnlyRedirects() {
	e.t.Helper()
	noRedirect := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/v1/models", e.port), nil)
	req.Header.Set("Authorization", "Bearer "+e.key)
	resp, err := noRedirect.Do(req)
	if err != nil {
		e.t.Fatalf("http port: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || strings.Contains(string(body), "llama3") {
		e.t.Fatalf("http port served %d %s; want only a redirect", resp.StatusCode, body)
	}
}

// servedLeaf is the certificate a new handshake gets.
func (e *env) servedLeaf() *x509.Certificate {
	e.t.Helper()
	conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(e.port+1)), &tls.Config{RootCAs: e.ca.IssuerRoots(e.t), ServerName: e.domain})
	if err != nil {
		e.t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func TestIssuance(t *testing.T) {
	for _, ch := range []string{proxyctl.ChallengeHTTP01, proxyctl.ChallengeTLSALPN01, proxyctl.ChallengeDNS01} {
		t.Run(ch, func(t *testing.T) {
			e := newEnv(t, "llm-"+strings.ReplaceAll(ch, "-", "")+".example.com")
			opts := e.options(ch)
			if ch == proxyctl.ChallengeDNS01 {
				// lego's httpreq provider talks to a DNS API that sets the
				// TXT record in challtestsrv; the HTTP port must not help.
				t.Setenv("HTTPREQ_ENDPOINT", e.ca.HTTPReqEndpoint(t))
				t.Setenv("HTTPREQ_POLLING_INTERVAL", "1")
				t.Setenv("HTTPREQ_PROPAGATION_TIMEOUT", "20")
				opts.DNSProvider, opts.DNSResolvers = "httpreq", []string{e.ca.DNSServer}
				e.ca.AddA(t, e.domain, "127.0.0.2") // nothing listens there
			}
			m, err := acme.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			e.serve(m, ch)
			if err := m.Obtain(context.Background()); err != nil {
				t.Fatalf("obtain: %v", err)
			}
			e.checkServes()
			leaf := e.servedLeaf()
			if !slices.Contains(leaf.DNSNames, e.domain) {
				t.Fatalf("served %v", leaf.DNSNames)
			}
			rec, err := e.store.Get(context.Background(), certs.ACMEID(e.domain))
			if err != nil || rec.Source != certs.SourceACME || rec.Meta[acme.MetaDirectory] != e.ca.Directory {
				t.Fatalf("stored %+v %v", rec.Meta, err)
			}
			if len(e.store.accts) != 1 {
				t.Fatalf("accounts: %d", len(e.store.accts))
			}

			// A second start with the stored, valid certificate makes no
			// order and serves the same certificate.
			orders := e.ca.Orders()
			if orders < 1 {
				t.Fatalf("pebble saw %d orders", orders)
			}
			m2, err := acme.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := m2.Obtain(context.Background()); err != nil {
				t.Fatal(err)
			}
			info, ok := m2.Current()
			if !ok || !info.NotAfter.Equal(rec.NotAfter) {
				t.Fatalf("second start serves %+v", info)
			}
			if got := e.ca.Orders(); got != orders {
				t.Fatalf("second start ordered again: %d orders, was %d", got, orders)
			}
		})
	}
}

func TestCADownIsACMEErrorAndNothingServes(t *testing.T) {
	e := newEnv(t, "down.example.com")
	e.ca.Stop()
	m, err := acme.New(e.options(proxyctl.ChallengeHTTP01))
	if err != nil {
		t.Fatal(err)
	}
	e.serve(m, proxyctl.ChallengeHTTP01)
	err = m.Obtain(context.Background())
	if !flmerr.Is(err, flmerr.ProxyACMEError) || !strings.Contains(err.Error(), e.ca.Directory) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("want PROXY_ACME_ERROR naming the CA and the failure, got %v", err)
	}
	checkNoTLS(t, e)
	e.checkHTTPPortOnlyRedirects()
}

func TestChallengeRefusedIsACMEErrorWithCAProblem(t *testing.T) {
	for _, ch := range []string{proxyctl.ChallengeHTTP01, proxyctl.ChallengeTLSALPN01} {
		t.Run(ch, func(t *testing.T) {
			e := newEnv(t, "elsewhere-"+strings.ReplaceAll(ch, "-", "")+".example.com")
			e.ca.AddA(t, e.domain, "127.0.0.2") // DNS does not point here
			m, err := acme.New(e.options(ch))
			if err != nil {
				t.Fatal(err)
			}
			e.serve(m, ch)
			err = m.Obtain(context.Background())
			if !flmerr.Is(err, flmerr.ProxyACMEError) || !strings.Contains(err.Error(), "urn:ietf:params:acme:error:") {
				t.Fatalf("want PROXY_ACME_ERROR with the CA's problem, got %v", err)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatal("error carries a key")
			}
			checkNoTLS(t, e)
			e.checkHTTPPortOnlyRedirects()
		})
	}
}

// checkNoTLS: without a certificate no handshake completes.
func checkNoTLS(t *testing.T, e *env) {
	t.Helper()
	conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(e.port+1)), &tls.Config{InsecureSkipVerify: true, ServerName: e.domain})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS handshake completed without a certificate")
	}
}

// streamChat starts a streamed chat completion and returns its reader.
func streamChat(t *testing.T, e *env, c *http.Client) *http.Response {
	t.Helper()
	body := `{"model":"flm://ollama/llama3:latest","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	req, _ := http.NewRequest(http.MethodPost, e.url("/v1/chat/completions"), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	return resp
}

func TestRenewalSwapsCertificateWhileStreaming(t *testing.T) {
	e := newEnv(t, "renew.example.com")
	opts := e.options(proxyctl.ChallengeHTTP01)
	opts.CheckEvery = 50 * time.Millisecond
	m, err := acme.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.serve(m, proxyctl.ChallengeHTTP01)
	if err := m.Obtain(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := e.servedLeaf()

	// A stream in flight on a connection made with the old certificate.
	resp := streamChat(t, e, e.client())
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	if _, err := rd.ReadString('\n'); err != nil {
		t.Fatal(err)
	}

	// The CA now says: renew (ARI window in the past).
	rec, _ := e.store.Get(context.Background(), certs.ACMEID(e.domain))
	e.ca.SetRenewalWindow(t, rec.CertPEM, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(20 * time.Second)
	var renewed *x509.Certificate
	for time.Now().Before(deadline) {
		if l := e.servedLeaf(); l.SerialNumber.Cmp(old.SerialNumber) != 0 {
			renewed = l
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if renewed == nil {
		t.Fatal("the certificate was not renewed")
	}
	// The stream that started before the swap completes.
	rest, err := io.ReadAll(rd)
	if err != nil || !strings.Contains(string(rest), "data: [DONE]") {
		t.Fatalf("stream did not complete: %v %q", err, rest)
	}
	if strings.Count(string(rest), "data: {") == 0 {
		t.Fatalf("the stream had ended before the swap: %q", rest)
	}
	if e.audit.count(acme.AuditIssued) < 2 {
		t.Fatalf("renewal not audited: %+v", e.audit.events)
	}
	// New handshakes keep getting the new certificate, and it is stored.
	e.checkServes()
	rec2, _ := e.store.Get(context.Background(), certs.ACMEID(e.domain))
	if rec2.NotAfter.Equal(rec.NotAfter) && string(rec2.CertPEM) == string(rec.CertPEM) {
		t.Fatal("renewed certificate not stored")
	}
}

func TestRenewalFailureKeepsCertificateAndRetries(t *testing.T) {
	e := newEnv(t, "keep.example.com")
	var offset atomic.Int64
	opts := e.options(proxyctl.ChallengeHTTP01)
	opts.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	opts.CheckEvery, opts.RetryMin, opts.RetryMax = 50*time.Millisecond, 100*time.Millisecond, 400*time.Millisecond
	m, err := acme.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.serve(m, proxyctl.ChallengeHTTP01)
	if err := m.Obtain(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := e.servedLeaf()
	e.ca.Stop()
	offset.Store(int64(80 * 24 * time.Hour)) // 10 days left of 90: due

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	time.Sleep(1300 * time.Millisecond)
	cancel()
	<-done

	fails := e.audit.count(acme.AuditRenewalFailed)
	// 50 ms, then backoff 100, 200, 400, 400 …: a handful, not a hot loop.
	if fails < 2 || fails > 8 {
		t.Fatalf("%d renewal attempts in 1.3 s; want retries with backoff", fails)
	}
	if l := e.servedLeaf(); l.SerialNumber.Cmp(old.SerialNumber) != 0 {
		t.Fatal("certificate changed")
	}
	e.checkServes()
	rec, _ := e.store.Get(context.Background(), certs.ACMEID(e.domain))
	if le := rec.Meta[certs.MetaLastError]; !strings.Contains(le, "PROXY_ACME_ERROR") && !strings.Contains(le, e.ca.Directory) {
		t.Fatalf("last_error = %q", le)
	}
	// A restart while the CA is still down keeps serving the stored
	// certificate (due, valid) instead of failing.
	m2, _ := acme.New(opts)
	if err := m2.Obtain(context.Background()); err != nil {
		t.Fatalf("restart with a valid certificate and the CA down: %v", err)
	}
}

func TestTLSParameters(t *testing.T) {
	e := newEnv(t, "tls.example.com")
	m, err := acme.New(e.options(proxyctl.ChallengeTLSALPN01))
	if err != nil {
		t.Fatal(err)
	}
	e.serve(m, proxyctl.ChallengeTLSALPN01)
	if err := m.Obtain(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e.port+1))
	roots := e.ca.IssuerRoots(t)
	for name, cfg := range map[string]*tls.Config{
		"tls1.1":   {MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11},
		"cbc-only": {MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}},
		// A client asking for the challenge protocol gets nothing once
		// no challenge is in progress.
		"acme-tls/1": {NextProtos: []string{"acme-tls/1"}},
	} {
		cfg.RootCAs, cfg.ServerName = roots, e.domain
		conn, err := tls.Dial("tcp", addr, cfg)
		if err == nil {
			conn.Close()
			t.Errorf("%s: handshake succeeded", name)
		}
	}
	// TLS 1.2 with an AEAD suite works.
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: e.domain, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("tls1.2 aead: %v", err)
	}
	conn.Close()
}

func TestHTTPHandlerAnswersOnlyPendingTokens(t *testing.T) {
	m, err := acme.New(acme.Options{Domain: "x.example.com", Store: newMemCerts(), Accounts: newMemCerts()})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: m.HTTPHandler(), ReadHeaderTimeout: time.Second}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	for _, p := range []string{proxy.ChallengePath + "guess", proxy.ChallengePath, "/v1/models", proxy.ChallengePath + "../../v1/models"} {
		resp, err := http.Get("http://" + ln.Addr().String() + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	st := newMemCerts()
	for _, o := range []acme.Options{
		{Domain: "", Store: st, Accounts: st},
		{Domain: "192.0.2.1", Store: st, Accounts: st},
		{Domain: "*.example.com", Store: st, Accounts: st},
		{Domain: "localhost", Store: st, Accounts: st},
		{Domain: "a.example.com", Challenge: "dns-01", DNSProvider: "nope", Store: st, Accounts: st},
		{Domain: "a.example.com", Challenge: "smtp-01", Store: st, Accounts: st},
		{Domain: "a.example.com", Directory: "http://ca.example.com/dir", Store: st, Accounts: st},
	} {
		if _, err := acme.New(o); !flmerr.Is(err, flmerr.ProxyInvalidConfig) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	for in, want := range map[string]string{
		"":                       "https://acme-v02.api.letsencrypt.org/directory",
		"letsencrypt-staging":    "https://acme-staging-v02.api.letsencrypt.org/directory",
		"staging":                "https://acme-staging-v02.api.letsencrypt.org/directory",
		"https://ca.example/dir": "https://ca.example/dir",
	} {
		if got, err := acme.ResolveDirectory(in); err != nil || got != want {
			t.Errorf("ResolveDirectory(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := acme.ResolveDirectory("nonsense"); err == nil {
		t.Error("unknown shortcut accepted")
	}
	if _, err := acme.LoadRoots("/nonexistent.pem"); err == nil {
		t.Error("missing roots file accepted")
	}
	if _, err := acme.New(acme.Options{Domain: "a.example.com", Challenge: "dns-01", DNSProvider: "cloudflare", Store: st, Accounts: st}); err != nil {
		t.Errorf("cloudflare: %v", err)
	}
}
