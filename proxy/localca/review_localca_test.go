package localca

// Adversarial review of packaged-ca (issue 10 part 2). Each test states
// what a user relies on; a failing test is a finding (see the review
// report).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"testing"
	"time"
)

// TestReviewCheckRootRefusesPublicHostName: under sudo, install-ca trusts
// whatever certs/local-ca.pem (a file the unprivileged user, or malware
// running as that user, can replace) holds if CheckRoot accepts it. A root
// made for a public name ("www.google.com", "login.example-bank.com") has
// the "one exact host name" shape CheckRoot allows, so a user-level
// attacker who swaps the file gets a system-trusted CA for that name,
// with a key they hold. CheckRoot must only allow the machine's own host
// name (or no extra name at all).
func TestReviewCheckRootRefusesPublicHostName(t *testing.T) {
	certPEM, keyPEM, err := NewRoot("www.google.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The machine is "devbox"; the file's root names www.google.com.
	root, perr := ParseRoot(certPEM, "devbox")
	if perr == nil {
		// Show the impact: the attacker's key signs www.google.com and Go
		// accepts it under this root.
		c, _ := parseCert(certPEM)
		k, _ := parseKey(keyPEM)
		leaf := signWith(t, c, k, []string{"www.google.com"}, nil)
		pool := x509.NewCertPool()
		pool.AddCert(root)
		_, verr := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "www.google.com", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		t.Fatalf("CheckRoot accepted a root permitting www.google.com (a leaf for it verifies: err=%v); install-ca under sudo would put it in the system trust store", verr)
	}
}

// signLeaf signs a leaf with arbitrary template fields with the root's key:
// what a holder of a leaked root key can do.
func signLeaf(t *testing.T, root *x509.Certificate, rootKey *ecdsa.PrivateKey, mod func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	mod(tmpl)
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

// TestReviewRootOnlyForTLSServers: the package doc promises that a leaked
// root key cannot certify anything but local names. The root carries no
// ExtKeyUsage and no e-mail/URI constraints, so (installed as a system
// anchor, which Debian/Fedora trust for every purpose) its key also signs
// S/MIME certificates for any e-mail address, code-signing certificates,
// and client/server certificates whose only name is a URI — and Go's
// verifier accepts them.
func TestReviewRootOnlyForTLSServers(t *testing.T) {
	m, _, st := newManager(t)
	pool := rootPool(t, m)
	root, key := rootAndKey(t, st)
	u, _ := url.Parse("https://www.google.com/")
	for _, tc := range []struct {
		name  string
		usage x509.ExtKeyUsage
		mod   func(*x509.Certificate)
	}{
		{"e-mail for ceo@bank.example", x509.ExtKeyUsageEmailProtection, func(c *x509.Certificate) {
			c.EmailAddresses = []string{"ceo@bank.example"}
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
		}},
		{"code signing", x509.ExtKeyUsageCodeSigning, func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
		}},
		{"URI SAN https://www.google.com/", x509.ExtKeyUsageClientAuth, func(c *x509.Certificate) {
			c.URIs = []*url.URL{u}
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}},
	} {
		leaf := signLeaf(t, root, key, tc.mod)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{tc.usage}}); err == nil {
			t.Errorf("%s: a certificate signed by the local root verifies; the root should be limited to serverAuth (ExtKeyUsage on the root) and exclude e-mail/URI names", tc.name)
		}
	}
}

// TestReviewTwoProxiesDifferentBindConverge: two packaged-ca proxies of
// one data dir share the server certificate record. When their wanted SAN
// sets differ (one bound to a specific address that is not in the LAN
// list, e.g. a link-local address), each Refresh finds the other's
// certificate "wrong" and reissues: a reissue loop every minute (a new
// key, a security.db write, and the other proxy's certificate replaced).
func TestReviewTwoProxiesDifferentBindConverge(t *testing.T) {
	m1, src, st := newManager(t, "192.168.1.5")
	m1.Bind = "169.254.10.20:8443" // link-local: permitted, not a "private" interface address
	m2 := &Manager{Store: st, Hostname: "devbox", Addrs: src.get}
	ctx := context.Background()
	for _, m := range []*Manager{m1, m2} {
		if _, err := m.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	puts := st.puts
	reissues := 0
	for range 5 {
		for _, m := range []*Manager{m1, m2} {
			re, err := m.Refresh(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if re {
				reissues++
			}
		}
	}
	if reissues > 0 {
		t.Errorf("two proxies with different binds reissued %d times in 5 rounds (%d store writes); they never converge", reissues, st.puts-puts)
	}
}

// TestReviewSoundConstraints records what was checked and holds: names
// a leaked key might try that the root must refuse.
func TestReviewSoundConstraints(t *testing.T) {
	m, _, st := newManager(t)
	pool := rootPool(t, m)
	root, key := rootAndKey(t, st)
	for _, tc := range []struct {
		dns, ips []string
		name     string
	}{
		{dns: []string{"devbox.evil.com"}, name: "devbox.evil.com"},
		{dns: []string{"evil.com.local"}, name: "evil.com"},
		{dns: []string{"LOCALHOST.evil.com"}, name: "localhost.evil.com"},
		{dns: []string{"xlocal"}, name: "xlocal"},
		{dns: []string{"local"}, name: "local"},
		{dns: []string{"*.com"}, name: "a.com"},
		{ips: []string{"100.64.0.1"}, name: "100.64.0.1"},
		{ips: []string{"2001:db8::1"}, name: "2001:db8::1"},
		{ips: []string{"::ffff:8.8.8.8"}, name: "8.8.8.8"},
		{ips: []string{"64:ff9b::808:808"}, name: "64:ff9b::808:808"},
	} {
		_, err := signWith(t, root, key, tc.dns, tc.ips).Verify(x509.VerifyOptions{Roots: pool, DNSName: tc.name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err == nil {
			t.Errorf("certificate for %v %v verified as %s", tc.dns, tc.ips, tc.name)
		}
		var inv x509.CertificateInvalidError
		var hn x509.HostnameError
		if !errors.As(err, &inv) && !errors.As(err, &hn) {
			t.Errorf("certificate for %v %v: unexpected error %v", tc.dns, tc.ips, err)
		}
	}
}
