package localca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unjuno/flm/core/certs"
)

// memStore is an in-memory certs.Store.
type memStore struct {
	mu   sync.Mutex
	recs map[string]certs.Record
	puts int
}

func newMem() *memStore { return &memStore{recs: map[string]certs.Record{}} }

func (s *memStore) Get(_ context.Context, id string) (certs.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	if !ok {
		return certs.Record{}, fmt.Errorf("%w: %s", certs.ErrNotFound, id)
	}
	return r, nil
}

func (s *memStore) Put(_ context.Context, r certs.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[r.ID] = r
	s.puts++
	return nil
}

func (s *memStore) List(context.Context) ([]certs.Record, error) { return nil, nil }
func (s *memStore) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recs, id)
	return nil
}

// addrSource is an injectable, changeable LAN.
type addrSource struct {
	mu    sync.Mutex
	addrs []netip.Addr
}

func (a *addrSource) set(ss ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.addrs = nil
	for _, s := range ss {
		a.addrs = append(a.addrs, netip.MustParseAddr(s))
	}
}

func (a *addrSource) get() []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.addrs)
}

func newManager(t *testing.T, lan ...string) (*Manager, *addrSource, *memStore) {
	t.Helper()
	src := &addrSource{}
	src.set(lan...)
	st := newMem()
	m := &Manager{Store: st, Hostname: "devbox", Addrs: src.get, RootFile: filepath.Join(t.TempDir(), "certs", "local-ca.pem")}
	return m, src, st
}

// serve runs a real TLS listener on loopback with m's configuration and
// returns its address; each connection completes the handshake and closes.
func serve(t *testing.T, tc *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func rootPool(t *testing.T, m *Manager) *x509.CertPool {
	t.Helper()
	root, _, err := m.Root(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AddCert(root)
	return p
}

// handshake connects to addr as a client that trusts only the local root
// and expects serverName; it returns the leaf the server presented.
func handshake(t *testing.T, addr string, pool *x509.CertPool, serverName string, cfg *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.RootCAs, cfg.ServerName = pool, serverName
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func rootAndKey(t *testing.T, st *memStore) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	rec, err := st.Get(context.Background(), certs.LocalCARootID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCert(rec.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	k, err := parseKey(rec.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// signWith signs a server certificate for dns/ips with the root's key,
// bypassing the Manager: what an attacker holding a leaked root key does.
func signWith(t *testing.T, root *x509.Certificate, rootKey *ecdsa.PrivateKey, dns []string, ips []string) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: dns,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestNameConstraints: a certificate the root's key signs for a public
// name or address is rejected by Go's verifier; local names are accepted.
func TestNameConstraints(t *testing.T) {
	m, _, st := newManager(t)
	pool := rootPool(t, m)
	root, key := rootAndKey(t, st)
	verify := func(c *x509.Certificate, name string) error {
		_, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		return err
	}
	for _, tc := range []struct {
		dns, ips []string
		name     string
	}{
		{dns: []string{"example.com"}, name: "example.com"},
		{dns: []string{"www.google.com"}, name: "www.google.com"},
		{dns: []string{"localhost.example.com"}, name: "localhost.example.com"},
		{dns: []string{"phish.devbox"}, name: "phish.devbox"}, // below the host name
		{dns: []string{"home.arpa"}, name: "home.arpa"},
		{dns: []string{"printer.local", "example.com"}, name: "printer.local"}, // one bad SAN spoils it
		{ips: []string{"8.8.8.8"}, name: "8.8.8.8"},
		{ips: []string{"192.0.2.2"}, name: "192.0.2.2"},
		{ips: []string{"2001:4860:4860::8888"}, name: "2001:4860:4860::8888"},
	} {
		err := verify(signWith(t, root, key, tc.dns, tc.ips), tc.name)
		var inv x509.CertificateInvalidError
		if !errors.As(err, &inv) || inv.Reason != x509.CANotAuthorizedForThisName {
			t.Errorf("certificate for %v %v: err = %v, want CANotAuthorizedForThisName", tc.dns, tc.ips, err)
		}
	}
	for _, tc := range []struct {
		dns, ips []string
		name     string
	}{
		{dns: []string{"localhost"}, name: "localhost"},
		{dns: []string{"foo.local"}, name: "foo.local"},
		{dns: []string{"foo.home.arpa"}, name: "foo.home.arpa"},
		{dns: []string{"devbox"}, name: "devbox"},
		{ips: []string{"192.168.1.20"}, name: "192.168.1.20"},
		{ips: []string{"10.1.2.3"}, name: "10.1.2.3"},
		{ips: []string{"172.20.0.1"}, name: "172.20.0.1"},
		{ips: []string{"127.0.0.1"}, name: "127.0.0.1"},
		{ips: []string{"fd00::2"}, name: "fd00::2"},
	} {
		if err := verify(signWith(t, root, key, tc.dns, tc.ips), tc.name); err != nil {
			t.Errorf("certificate for %v %v: %v", tc.dns, tc.ips, err)
		}
	}
	// The root signs no intermediate CA.
	if !root.MaxPathLenZero || root.MaxPathLen != 0 || !root.PermittedDNSDomainsCritical {
		t.Errorf("root: MaxPathLen %d (zero %v), constraints critical %v", root.MaxPathLen, root.MaxPathLenZero, root.PermittedDNSDomainsCritical)
	}
	if err := CheckRoot(root, "devbox"); err != nil {
		t.Errorf("CheckRoot(our root): %v", err)
	}
}

// TestCheckRoot: a file that claims to be the local root but is an
// unconstrained CA, a CA for another host name or an earlier FLM's root (a
// swapped certs/local-ca.pem) is refused.
func TestCheckRoot(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mk := func(mod func(*x509.Certificate)) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: RootCommonName},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
			MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign, PermittedDNSDomainsCritical: true,
			ExtKeyUsage:         []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			PermittedDNSDomains: []string{"localhost", "devbox"}, ExcludedDNSDomains: []string{".devbox"},
			PermittedEmailAddresses: []string{NoneDomain}, PermittedURIDomains: []string{NoneDomain},
			PermittedIPRanges: []*net.IPNet{{IP: net.IP{10, 0, 0, 0}, Mask: net.CIDRMask(8, 32)}}}
		mod(tmpl)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	for _, host := range []string{"devbox", "DevBox.", "devbox."} {
		if err := CheckRoot(mk(func(*x509.Certificate) {}), host); err != nil {
			t.Fatalf("control (machine %q): %v", host, err)
		}
	}
	noHost := mk(func(c *x509.Certificate) { c.PermittedDNSDomains, c.ExcludedDNSDomains = []string{"localhost"}, nil })
	if err := CheckRoot(noHost, "whatever"); err != nil {
		t.Fatalf("root without a host name: %v", err)
	}
	for name, tc := range map[string]struct {
		mod  func(*x509.Certificate)
		host string
		want error
	}{
		"unconstrained": {mod: func(c *x509.Certificate) { c.PermittedDNSDomains, c.PermittedIPRanges = nil, nil }},
		"com":           {mod: func(c *x509.Certificate) { c.PermittedDNSDomains = append(c.PermittedDNSDomains, "com") }},
		"public ip": {mod: func(c *x509.Certificate) {
			c.PermittedIPRanges[0] = &net.IPNet{IP: net.IP{0, 0, 0, 0}, Mask: net.CIDRMask(0, 32)}
		}},
		"path len":            {mod: func(c *x509.Certificate) { c.MaxPathLenZero, c.MaxPathLen = false, -1 }},
		"not ca":              {mod: func(c *x509.Certificate) { c.IsCA, c.MaxPathLenZero = false, false }},
		"another host":        {mod: func(*x509.Certificate) {}, host: "laptop", want: ErrForeignHost},
		"machine has no name": {mod: func(*x509.Certificate) {}, host: "-", want: ErrForeignHost},
		"public name": {mod: func(c *x509.Certificate) {
			c.PermittedDNSDomains, c.ExcludedDNSDomains = []string{"localhost", "www.google.com"}, []string{".www.google.com"}
		}, want: ErrForeignHost},
		"subdomains of the host": {mod: func(c *x509.Certificate) { c.ExcludedDNSDomains = nil }},
		"no ext key usage":       {mod: func(c *x509.Certificate) { c.ExtKeyUsage = nil }, want: ErrOutdatedRoot},
		"any ext key usage": {mod: func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageAny}
		}, want: ErrOutdatedRoot},
		"e-mail open":     {mod: func(c *x509.Certificate) { c.PermittedEmailAddresses = nil }, want: ErrOutdatedRoot},
		"uri open":        {mod: func(c *x509.Certificate) { c.PermittedURIDomains = nil }, want: ErrOutdatedRoot},
		"e-mail for bank": {mod: func(c *x509.Certificate) { c.PermittedEmailAddresses = []string{"bank.example"} }},
		"uri for google":  {mod: func(c *x509.Certificate) { c.PermittedURIDomains = []string{NoneDomain, "google.com"} }},
	} {
		host := tc.host
		switch host {
		case "":
			host = "devbox"
		case "-":
			host = ""
		}
		err := CheckRoot(mk(tc.mod), host)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: CheckRoot = %v, want refused (%v)", name, err, tc.want)
		}
	}
}

// TestAddressChangeReissues: a new LAN address makes Maintain reissue, and
// the next handshake on the same listener presents it — no restart.
func TestAddressChangeReissues(t *testing.T) {
	m, src, st := newManager(t, "192.168.1.5")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if re, err := m.Refresh(ctx); err != nil || !re {
		t.Fatalf("first Refresh = %v, %v", re, err)
	}
	pool := rootPool(t, m)
	addr := serve(t, m.TLSConfig())
	leaf, err := handshake(t, addr, pool, "192.168.1.5", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1", "devbox", "devbox.local"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("server certificate lacks %s: %v", h, err)
		}
	}
	if want := time.Now().Add(ServerValidity); leaf.NotAfter.After(want) {
		t.Errorf("server certificate valid until %v", leaf.NotAfter)
	}

	// Unchanged addresses: nothing reissued, nothing written.
	puts := st.puts
	if re, err := m.Refresh(ctx); err != nil || re || st.puts != puts {
		t.Fatalf("Refresh with the same addresses = %v, %v (puts %d -> %d)", re, err, puts, st.puts)
	}

	done := make(chan struct{})
	go func() { defer close(done); m.Maintain(ctx, 10*time.Millisecond) }()
	src.set("10.20.30.40")
	deadline := time.Now().Add(5 * time.Second)
	for {
		leaf2, err := handshake(t, addr, pool, "10.20.30.40", nil)
		if err == nil {
			if leaf2.VerifyHostname("192.168.1.5") == nil {
				t.Error("the reissued certificate still names the old address")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate for the new address after 5 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	rec, _ := st.Get(context.Background(), certs.LocalCAServerID)
	if !slices.Contains(rec.SANs, "10.20.30.40") {
		t.Errorf("stored record SANs = %v", rec.SANs)
	}
}

// TestRenewalDue: a certificate with less than a third of its life left
// is replaced at the next check.
func TestRenewalDue(t *testing.T) {
	m, _, _ := newManager(t)
	now := time.Now()
	m.Now = func() time.Time { return now }
	if _, err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	first, _ := m.GetCertificate(nil)
	now = now.Add(50 * 24 * time.Hour)
	if re, err := m.Refresh(context.Background()); err != nil || re {
		t.Fatalf("day 50: reissued=%v err=%v, want kept", re, err)
	}
	now = now.Add(15 * 24 * time.Hour)
	if re, err := m.Refresh(context.Background()); err != nil || !re {
		t.Fatalf("day 65: reissued=%v err=%v, want renewed", re, err)
	}
	second, _ := m.GetCertificate(nil)
	if bytes.Equal(first.Certificate[0], second.Certificate[0]) {
		t.Fatal("same certificate served after renewal")
	}
}

// TestSharedStoreConverges: a second proxy (another Manager on the same
// store) adopts the stored certificate instead of issuing its own.
func TestSharedStoreConverges(t *testing.T) {
	m, src, st := newManager(t, "192.168.1.5")
	if _, err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	m2 := &Manager{Store: st, Hostname: "devbox", Addrs: src.get}
	if re, err := m2.Refresh(context.Background()); err != nil || re {
		t.Fatalf("second manager: reissued=%v err=%v", re, err)
	}
	a, _ := m.GetCertificate(nil)
	b, _ := m2.GetCertificate(nil)
	if !bytes.Equal(a.Certificate[0], b.Certificate[0]) {
		t.Fatal("two proxies serve different certificates")
	}
}

// TestOldTLSRefused: the packaged-ca listener refuses a TLS 1.1 client and
// a TLS 1.2 client offering only CBC suites (the server refuses: "remote
// error"), and accepts TLS 1.2 AEAD and TLS 1.3.
func TestOldTLSRefused(t *testing.T) {
	m, _, _ := newManager(t)
	if _, err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	pool := rootPool(t, m)
	addr := serve(t, m.TLSConfig())
	if _, err := handshake(t, addr, pool, "127.0.0.1", &tls.Config{MaxVersion: tls.VersionTLS12}); err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	if _, err := handshake(t, addr, pool, "localhost", &tls.Config{MinVersion: tls.VersionTLS13}); err != nil {
		t.Fatalf("TLS 1.3: %v", err)
	}
	_, err := handshake(t, addr, pool, "127.0.0.1", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil || !strings.Contains(err.Error(), "remote error") {
		t.Errorf("TLS 1.1 client: %v, want refused by the server", err)
	}
	for _, s := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256} {
		_, err := handshake(t, addr, pool, "127.0.0.1", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{s}})
		if err == nil || !strings.Contains(err.Error(), "remote error") {
			t.Errorf("CBC-only client (%s): %v, want refused by the server", tls.CipherSuiteName(s), err)
		}
	}
}

// TestRootFileIsPublicOnly: the exported root is the certificate, 0644,
// and no key; the key is only in the store.
func TestRootFileIsPublicOnly(t *testing.T) {
	m, _, st := newManager(t)
	if _, err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(m.RootFile)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(m.RootFile)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("root file mode %v", fi.Mode())
	}
	rec, _ := st.Get(context.Background(), certs.LocalCARootID)
	if !bytes.Equal(data, rec.CertPEM) || bytes.Contains(data, []byte("PRIVATE KEY")) || bytes.Contains(data, rec.KeyPEM) {
		t.Errorf("root file holds %q", data)
	}
	entries, _ := os.ReadDir(filepath.Dir(m.RootFile))
	if len(entries) != 1 {
		t.Errorf("certs dir holds %v, want only the root certificate", entries)
	}
}

// TestBindOutsideConstraints: packaged-ca on a public address is refused
// (the certificate could not verify there); a private bind is covered.
func TestBindOutsideConstraints(t *testing.T) {
	m, _, _ := newManager(t)
	m.Bind = "203.0.113.7:8080"
	if _, err := m.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "https-acme") {
		t.Fatalf("public bind: %v", err)
	}
	m.Bind = "169.254.10.10"
	if _, err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, _ := m.GetCertificate(nil)
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	if err := leaf.VerifyHostname("169.254.10.10"); err != nil {
		t.Errorf("link-local bind not covered: %v", err)
	}
}

// TestHostnameChangeKeepsRoot: after the machine is renamed, the old root
// stays (it is what devices trust); the new name is left out rather than
// breaking the certificate.
func TestHostnameChangeKeepsRoot(t *testing.T) {
	m, _, st := newManager(t, "192.168.1.5")
	if _, err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	before, _ := st.Get(context.Background(), certs.LocalCARootID)
	m.Hostname = "renamed"
	if _, err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, _ := st.Get(context.Background(), certs.LocalCARootID)
	if !bytes.Equal(before.CertPEM, after.CertPEM) {
		t.Fatal("root replaced on rename")
	}
	c, _ := m.GetCertificate(nil)
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	if leaf.VerifyHostname("renamed") == nil || leaf.VerifyHostname("renamed.local") != nil {
		t.Errorf("after rename: DNS names %v", leaf.DNSNames)
	}
}

// TestRootRefusesEmailAndURINames: even in a certificate for TLS servers,
// a leaked root key cannot certify an e-mail address or a URI: the name
// constraints (not only the root's ExtKeyUsage) refuse them, and a local
// DNS name beside them does not help.
func TestRootRefusesEmailAndURINames(t *testing.T) {
	m, _, st := newManager(t)
	pool := rootPool(t, m)
	root, key := rootAndKey(t, st)
	u, _ := url.Parse("https://www.google.com/")
	local, _ := url.Parse("https://printer.local/")
	for name, mod := range map[string]func(*x509.Certificate){
		"e-mail":            func(c *x509.Certificate) { c.EmailAddresses = []string{"ceo@bank.example"} },
		"e-mail at local":   func(c *x509.Certificate) { c.EmailAddresses = []string{"me@devbox.local"} },
		"uri":               func(c *x509.Certificate) { c.URIs = []*url.URL{u} },
		"uri of local name": func(c *x509.Certificate) { c.URIs = []*url.URL{local} },
	} {
		leaf := signLeaf(t, root, key, func(c *x509.Certificate) {
			c.DNSNames = []string{"printer.local"}
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			mod(c)
		})
		_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "printer.local", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		var inv x509.CertificateInvalidError
		if !errors.As(err, &inv) || inv.Reason != x509.CANotAuthorizedForThisName {
			t.Errorf("%s: err = %v, want CANotAuthorizedForThisName", name, err)
		}
	}
	// The control: the same leaf without them verifies.
	leaf := signLeaf(t, root, key, func(c *x509.Certificate) {
		c.DNSNames = []string{"printer.local"}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "printer.local", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("control: %v", err)
	}
}

// legacyRoot is a root as FLM made it before the TLS-server-only
// restrictions: no ExtKeyUsage, e-mail and URI names unconstrained.
func legacyRoot(t *testing.T, now time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{Organization: []string{"FLM"}, CommonName: RootCommonName + " (devbox)"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, PermittedDNSDomainsCritical: true,
		PermittedDNSDomains: append(slices.Clone(PermittedDNSDomains), "devbox"), ExcludedDNSDomains: []string{".devbox"}}
	for _, p := range PermittedIPRanges {
		tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges, &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// TestOutdatedRootReplaced: a root made by an earlier FLM (its key signs
// S/MIME and code signing too) is never trusted anew from a file, and the
// Manager replaces it — telling the caller, since install-ca must be run
// again — and reissues the server certificate under the new root.
func TestOutdatedRootReplaced(t *testing.T) {
	now := time.Now()
	oldPEM, oldKey := legacyRoot(t, now)
	if _, err := ParseRoot(oldPEM, "devbox"); !errors.Is(err, ErrOutdatedRoot) {
		t.Fatalf("ParseRoot(legacy root) = %v, want ErrOutdatedRoot", err)
	}
	if _, err := ParseRootForRemoval(oldPEM); err != nil {
		t.Fatalf("uninstall-ca cannot take the legacy root out: %v", err)
	}
	m, _, st := newManager(t, "192.168.1.5")
	rec, err := certs.FromPEM(certs.LocalCARootID, certs.SourceLocalCA, oldPEM, oldKey, now)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Put(context.Background(), rec)
	var told []error
	m.OnReplace = func(old *x509.Certificate, why error) {
		if c, _ := parseCert(oldPEM); !old.Equal(c) {
			t.Errorf("OnReplace got %s, want the legacy root", old.Subject)
		}
		told = append(told, why)
	}
	if _, err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(told) != 1 || !errors.Is(told[0], ErrOutdatedRoot) {
		t.Fatalf("OnReplace calls: %v", told)
	}
	root, created, err := m.Root(context.Background())
	if err != nil || created {
		t.Fatalf("Root after the replacement: created=%v err=%v", created, err)
	}
	if err := CheckRoot(root, "devbox"); err != nil {
		t.Fatalf("new root: %v", err)
	}
	if data, _ := os.ReadFile(m.RootFile); !bytes.Equal(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})) {
		t.Error("the exported root file still holds the legacy root")
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	addr := serve(t, m.TLSConfig())
	if _, err := handshake(t, addr, pool, "192.168.1.5", nil); err != nil {
		t.Fatalf("server certificate under the new root: %v", err)
	}
}

// TestReissueKeepsOtherProxysBind: two proxies of one data dir, one bound
// to a link-local address. When the LAN changes, the proxy that reissues
// keeps the other's bind address (still on an interface) so the other does
// not reissue in turn; an address the machine no longer has is dropped.
func TestReissueKeepsOtherProxysBind(t *testing.T) {
	ifaces := &addrSource{}
	ifaces.set("192.168.1.5", "169.254.10.20")
	m1, src, st := newManager(t, "192.168.1.5")
	m1.Bind, m1.Interfaces = "169.254.10.20:8443", ifaces.get
	m2 := &Manager{Store: st, Hostname: "devbox", Addrs: src.get, Interfaces: ifaces.get}
	ctx := context.Background()
	refresh := func(m *Manager) bool {
		t.Helper()
		re, err := m.Refresh(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return re
	}
	refresh(m1)
	if refresh(m2) {
		t.Fatal("m2 reissued over a certificate naming everything it wants")
	}
	stored := func() []string {
		rec, _ := st.Get(ctx, certs.LocalCAServerID)
		return rec.SANs
	}

	src.set("10.0.0.7")
	ifaces.set("10.0.0.7", "169.254.10.20")
	if !refresh(m2) {
		t.Fatal("m2 did not reissue for the new LAN address")
	}
	if s := stored(); !slices.Contains(s, "169.254.10.20") || !slices.Contains(s, "10.0.0.7") || slices.Contains(s, "192.168.1.5") {
		t.Fatalf("after the LAN change the certificate names %v; want m1's bind kept, the new address in, the old one out", s)
	}
	if refresh(m1) {
		t.Fatal("m1 reissued although the certificate still names its bind")
	}

	// m1 is gone and the link-local address with it: the next reissue drops it.
	ifaces.set("10.0.0.8")
	src.set("10.0.0.8")
	if !refresh(m2) {
		t.Fatal("m2 did not reissue for the new LAN address")
	}
	if s := stored(); slices.Contains(s, "169.254.10.20") || slices.Contains(s, "10.0.0.7") {
		t.Fatalf("stale addresses kept: %v", s)
	}
}
