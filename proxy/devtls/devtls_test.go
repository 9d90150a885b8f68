package devtls

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var testHosts = []string{"localhost", "127.0.0.1", "::1"}

func ensure(t *testing.T, dir string, hosts []string, now time.Time) Files {
	t.Helper()
	f, err := Ensure(dir, hosts, now)
	if err != nil {
		t.Fatalf("Ensure(%v): %v", hosts, err)
	}
	return f
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	c, err := parseCertPEM(readFile(t, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

type snapshot map[string][]byte

func snap(t *testing.T, f Files) snapshot {
	t.Helper()
	return snapshot{
		"ca": readFile(t, f.CACert), "cakey": readFile(t, f.CAKey),
		"cert": readFile(t, f.Cert), "key": readFile(t, f.Key),
	}
}

func verifyFor(t *testing.T, f Files, now time.Time, hosts ...string) {
	t.Helper()
	pool, err := CAPool(f)
	if err != nil {
		t.Fatal(err)
	}
	leaf := loadCert(t, f.Cert)
	for _, h := range hosts {
		if _, err := leaf.Verify(x509.VerifyOptions{
			Roots: pool, DNSName: h, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			t.Errorf("verify server cert for %q: %v", h, err)
		}
	}
}

func TestGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "certs")
	now := time.Now()
	f := ensure(t, dir, []string{"localhost", "127.0.0.1", "::1", "devbox.local", "192.168.1.5"}, now)

	if f != FilesIn(dir) {
		t.Fatalf("Files = %+v, want %+v", f, FilesIn(dir))
	}
	if runtime.GOOS != "windows" {
		modes := map[string]os.FileMode{dir: 0o700, f.CAKey: 0o600, f.Key: 0o600, f.CACert: 0o644, f.Cert: 0o644}
		for p, want := range modes {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("%s mode %#o, want %#o", p, got, want)
			}
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 {
		t.Errorf("dir has %d entries, want 4 (no temp files left): %v", len(ents), ents)
	}

	ca := loadCert(t, f.CACert)
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		t.Errorf("CA basic constraints: IsCA=%v MaxPathLen=%d zero=%v", ca.IsCA, ca.MaxPathLen, ca.MaxPathLenZero)
	}
	if ca.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("CA key usage %v", ca.KeyUsage)
	}
	if !slices.Equal(ca.Subject.Organization, []string{"FLM"}) || !strings.HasPrefix(ca.Subject.CommonName, "FLM Development CA") {
		t.Errorf("CA subject %v", ca.Subject)
	}
	if hn := machineHostname(); hn != "" && ca.Subject.CommonName != "FLM Development CA ("+hn+")" {
		t.Errorf("CA CN %q, want host name %q", ca.Subject.CommonName, hn)
	}
	if ca.SerialNumber.Sign() <= 0 || ca.SerialNumber.BitLen() > 128 {
		t.Errorf("CA serial %v", ca.SerialNumber)
	}
	if d := ca.NotAfter.Sub(now.AddDate(10, 0, 0)); d < -time.Second || d > time.Second {
		t.Errorf("CA NotAfter %v, want now+10y", ca.NotAfter)
	}
	if pub, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", ca.PublicKey)
	}
	if !ca.PermittedDNSDomainsCritical {
		t.Error("name constraints not critical")
	}
	for _, d := range []string{"localhost", ".local"} {
		if !slices.Contains(ca.PermittedDNSDomains, d) {
			t.Errorf("permitted DNS domains %v lack %q", ca.PermittedDNSDomains, d)
		}
	}
	var ranges []string
	for _, n := range ca.PermittedIPRanges {
		ranges = append(ranges, n.String())
	}
	for _, r := range permittedIPRanges {
		if !slices.Contains(ranges, r) {
			t.Errorf("permitted IP ranges %v lack %s", ranges, r)
		}
	}
	if len(ranges) != len(permittedIPRanges) {
		t.Errorf("permitted IP ranges %v: only private hosts requested, want exactly the defaults", ranges)
	}

	leaf := loadCert(t, f.Cert)
	if leaf.Subject.CommonName != "localhost" {
		t.Errorf("server CN %q, want first host", leaf.Subject.CommonName)
	}
	if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature ||
		!slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("server usages: IsCA=%v KU=%v EKU=%v", leaf.IsCA, leaf.KeyUsage, leaf.ExtKeyUsage)
	}
	if v := leaf.NotAfter.Sub(leaf.NotBefore); v > 397*24*time.Hour {
		t.Errorf("server validity %v > 397 days", v)
	}
	if !slices.Equal(leaf.DNSNames, []string{"localhost", "devbox.local"}) {
		t.Errorf("DNS SANs %v", leaf.DNSNames)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(ips, []string{"127.0.0.1", "::1", "192.168.1.5"}) {
		t.Errorf("IP SANs %v", ips)
	}
	if !bytes.Equal(leaf.AuthorityKeyId, ca.SubjectKeyId) || len(ca.SubjectKeyId) == 0 {
		t.Error("server AKID does not match CA SKID")
	}
	verifyFor(t, f, now, "localhost", "127.0.0.1", "::1", "devbox.local", "192.168.1.5")
}

func TestReuse(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	f := ensure(t, dir, testHosts, now)
	before := snap(t, f)
	stats := map[string]os.FileInfo{}
	for _, p := range []string{f.CACert, f.CAKey, f.Cert, f.Key} {
		stats[p], _ = os.Stat(p)
	}
	time.Sleep(20 * time.Millisecond)

	// Same hosts, a subset, a different order and spelling, a later time.
	for _, hosts := range [][]string{testHosts, {"127.0.0.1"}, {"[::1]", "LOCALHOST.", "127.0.0.1"}} {
		ensure(t, dir, hosts, now.Add(24*time.Hour))
	}
	after := snap(t, f)
	for k := range before {
		if !bytes.Equal(before[k], after[k]) {
			t.Errorf("%s changed on reuse", k)
		}
	}
	for p, fi := range stats {
		fi2, _ := os.Stat(p)
		if !fi2.ModTime().Equal(fi.ModTime()) {
			t.Errorf("%s rewritten on reuse", p)
		}
	}
}

func TestNewHostKeepsCA(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	f := ensure(t, dir, testHosts, now)
	before := snap(t, f)

	hosts := append(slices.Clone(testHosts), "devbox.local", "10.1.2.3", "fe80::1%eth0")
	ensure(t, dir, hosts, now)
	after := snap(t, f)
	if !bytes.Equal(before["ca"], after["ca"]) || !bytes.Equal(before["cakey"], after["cakey"]) {
		t.Error("CA changed for a new host")
	}
	if bytes.Equal(before["cert"], after["cert"]) || bytes.Equal(before["key"], after["key"]) {
		t.Error("server cert not reissued for a new host")
	}
	verifyFor(t, f, now, "localhost", "devbox.local", "10.1.2.3", "fe80::1")
}

func TestPublicHostAtCACreation(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	f := ensure(t, dir, append(slices.Clone(testHosts), "203.0.113.7", "gw.example.net"), now)
	verifyFor(t, f, now, "203.0.113.7", "gw.example.net", "localhost")
	caBefore := readFile(t, f.CACert)

	// A public address the CA does not permit needs a new CA, otherwise the
	// server certificate would not verify.
	ensure(t, dir, append(slices.Clone(testHosts), "198.51.100.9"), now)
	if bytes.Equal(caBefore, readFile(t, f.CACert)) {
		t.Error("CA not replaced for a host outside its name constraints")
	}
	verifyFor(t, f, now, "198.51.100.9", "localhost")
}

func TestServerExpiry(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	f := ensure(t, dir, testHosts, now)
	before := snap(t, f)

	later := now.Add(371 * 24 * time.Hour)
	ensure(t, dir, testHosts, later)
	after := snap(t, f)
	if !bytes.Equal(before["ca"], after["ca"]) || !bytes.Equal(before["cakey"], after["cakey"]) {
		t.Error("CA changed although still valid")
	}
	if bytes.Equal(before["cert"], after["cert"]) {
		t.Fatal("server cert not reissued with 26 days left")
	}
	leaf := loadCert(t, f.Cert)
	if !leaf.NotAfter.After(later.Add(30 * 24 * time.Hour)) {
		t.Errorf("reissued cert NotAfter %v too early", leaf.NotAfter)
	}
	verifyFor(t, f, later, "localhost", "127.0.0.1", "::1")
}

func TestCANearExpiry(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	f := ensure(t, dir, testHosts, now)
	before := snap(t, f)

	later := now.AddDate(10, 0, -10)
	ensure(t, dir, testHosts, later)
	after := snap(t, f)
	if bytes.Equal(before["ca"], after["ca"]) || bytes.Equal(before["cakey"], after["cakey"]) {
		t.Error("CA not replaced 10 days before expiry")
	}
	if bytes.Equal(before["cert"], after["cert"]) {
		t.Error("server cert not reissued with the new CA")
	}
	ca := loadCert(t, f.CACert)
	if !ca.NotAfter.After(later.AddDate(9, 0, 0)) {
		t.Errorf("new CA NotAfter %v", ca.NotAfter)
	}
	verifyFor(t, f, later, "localhost", "127.0.0.1", "::1")
}

func TestLooseCAKeyMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	dir := t.TempDir()
	now := time.Now()
	f := ensure(t, dir, testHosts, now)
	before := snap(t, f)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o700} {
		if err := os.Chmod(f.CAKey, mode); err != nil {
			t.Fatal(err)
		}
		// Even a call that would otherwise replace the CA must refuse.
		for _, n := range []time.Time{now, now.AddDate(10, 0, 0)} {
			_, err := Ensure(dir, testHosts, n)
			if err == nil || !strings.Contains(err.Error(), f.CAKey) {
				t.Fatalf("mode %#o: err = %v, want an error naming %s", mode, err, f.CAKey)
			}
		}
	}
	if err := os.Chmod(f.CAKey, 0o400); err != nil {
		t.Fatal(err)
	}
	ensure(t, dir, testHosts, now) // stricter than 0600 is fine
	after := snap(t, f)
	for k := range before {
		if !bytes.Equal(before[k], after[k]) {
			t.Errorf("%s changed", k)
		}
	}
}

func TestCorruptFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   func(Files) string
		data   string
		sameCA bool
	}{
		{"server cert garbage", func(f Files) string { return f.Cert }, "garbage", true},
		{"server cert bad DER", func(f Files) string { return f.Cert }, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", true},
		{"server cert empty", func(f Files) string { return f.Cert }, "", true},
		{"server key garbage", func(f Files) string { return f.Key }, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", true},
		{"CA cert garbage", func(f Files) string { return f.CACert }, "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", false},
		{"CA cert truncated", func(f Files) string { return f.CACert }, "-----BEGIN CERTIFICATE-----\nMIIB", false},
		{"CA key garbage", func(f Files) string { return f.CAKey }, "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			now := time.Now()
			f := ensure(t, dir, testHosts, now)
			before := snap(t, f)
			if err := os.WriteFile(tc.file(f), []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			ensure(t, dir, testHosts, now)
			after := snap(t, f)
			if got := bytes.Equal(before["ca"], after["ca"]); got != tc.sameCA {
				t.Errorf("CA kept = %v, want %v", got, tc.sameCA)
			}
			if bytes.Equal(before["cert"], after["cert"]) {
				t.Error("server cert not reissued")
			}
			verifyFor(t, f, now, "localhost", "127.0.0.1", "::1")
		})
	}
}

func TestMismatchedKeys(t *testing.T) {
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherPEM, _ := encodeKey(other)

	t.Run("CA key", func(t *testing.T) {
		dir := t.TempDir()
		f := ensure(t, dir, testHosts, time.Now())
		before := snap(t, f)
		os.WriteFile(f.CAKey, otherPEM, 0o600)
		ensure(t, dir, testHosts, time.Now())
		if bytes.Equal(before["ca"], readFile(t, f.CACert)) {
			t.Error("CA not replaced after key mismatch")
		}
		verifyFor(t, f, time.Now(), "localhost")
	})
	t.Run("server key", func(t *testing.T) {
		dir := t.TempDir()
		f := ensure(t, dir, testHosts, time.Now())
		before := snap(t, f)
		os.WriteFile(f.Key, otherPEM, 0o600)
		ensure(t, dir, testHosts, time.Now())
		after := snap(t, f)
		if !bytes.Equal(before["ca"], after["ca"]) || bytes.Equal(before["cert"], after["cert"]) {
			t.Error("want same CA and a new server cert")
		}
		if _, err := ServerTLSConfig(f); err != nil {
			t.Error(err)
		}
	})
	t.Run("server cert from another CA", func(t *testing.T) {
		dir1, dir2 := t.TempDir(), t.TempDir()
		f1 := ensure(t, dir1, testHosts, time.Now())
		f2 := ensure(t, dir2, testHosts, time.Now())
		os.WriteFile(f1.Cert, readFile(t, f2.Cert), 0o644)
		os.WriteFile(f1.Key, readFile(t, f2.Key), 0o600)
		ensure(t, dir1, testHosts, time.Now())
		verifyFor(t, f1, time.Now(), "localhost")
	})
}

func TestLooseServerKeyReissued(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	dir := t.TempDir()
	f := ensure(t, dir, testHosts, time.Now())
	before := snap(t, f)
	os.Chmod(f.Key, 0o644)
	ensure(t, dir, testHosts, time.Now())
	if bytes.Equal(before["key"], readFile(t, f.Key)) {
		t.Error("world-readable server key not replaced")
	}
	fi, _ := os.Stat(f.Key)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("server key mode %#o", fi.Mode().Perm())
	}
}

func TestInvalidInput(t *testing.T) {
	for _, hosts := range [][]string{
		nil, {}, {""}, {"localhost", "bad host"}, {"0.0.0.0"}, {"::"}, {"localhost:8080"},
		{"*.example.com"}, {"-bad.local"}, {"a..b"}, {"1.2.3"},
	} {
		dir := filepath.Join(t.TempDir(), "certs")
		if _, err := Ensure(dir, hosts, time.Now()); err == nil {
			t.Errorf("Ensure(%q) succeeded", hosts)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Ensure(%q) created the directory", hosts)
		}
	}
	if _, err := Ensure("", testHosts, time.Now()); err == nil {
		t.Error("empty dir accepted")
	}
	// dir is a file
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Ensure(file, testHosts, time.Now()); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("dir is a file: err = %v", err)
	}
}

func TestErrorsNameFiles(t *testing.T) {
	f := FilesIn(filepath.Join(t.TempDir(), "missing"))
	if _, err := CAPool(f); err == nil || !strings.Contains(err.Error(), f.CACert) {
		t.Errorf("CAPool err = %v", err)
	}
	if _, err := ServerTLSConfig(f); err == nil || !strings.Contains(err.Error(), f.Cert) {
		t.Errorf("ServerTLSConfig err = %v", err)
	}
	dir := t.TempDir()
	f = ensure(t, dir, testHosts, time.Now())
	os.WriteFile(f.Key, []byte("junk"), 0o600)
	if _, err := ServerTLSConfig(f); err == nil || !strings.Contains(err.Error(), f.Key) {
		t.Errorf("ServerTLSConfig err = %v", err)
	}
	os.WriteFile(f.CACert, []byte("junk"), 0o644)
	if _, err := CAPool(f); err == nil || !strings.Contains(err.Error(), f.CACert) {
		t.Errorf("CAPool err = %v", err)
	}
}

func TestConcurrentEnsure(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hosts := testHosts
			if i%2 == 1 {
				hosts = append(slices.Clone(testHosts), "devbox.local")
			}
			_, err := Ensure(dir, hosts, now)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	verifyFor(t, FilesIn(dir), now, "localhost")
}

func TestServerTLSConfigFields(t *testing.T) {
	f := ensure(t, t.TempDir(), testHosts, time.Now())
	cfg, err := ServerTLSConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x", cfg.MinVersion)
	}
	if !slices.Equal(cfg.CurvePreferences, []tls.CurveID{tls.X25519, tls.CurveP256}) {
		t.Errorf("curves %v", cfg.CurvePreferences)
	}
	if !slices.Equal(cfg.NextProtos, []string{"h2", "http/1.1"}) {
		t.Errorf("NextProtos %v", cfg.NextProtos)
	}
	for _, id := range cfg.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")) {
			t.Errorf("non-AEAD or non-ECDHE suite %s", name)
		}
	}
	if len(cfg.Certificates) != 1 {
		t.Errorf("%d certificates", len(cfg.Certificates))
	}
}

// startServer serves 200 "ok" over TLS on 127.0.0.1 with the dev certs.
func startServer(t *testing.T) (Files, string) {
	t.Helper()
	f := ensure(t, t.TempDir(), Hosts("127.0.0.1"), time.Now())
	cfg, err := ServerTLSConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok "+r.Proto)
		}),
		TLSConfig: cfg,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return f, ln.Addr().String()
}

func TestHandshake(t *testing.T) {
	f, addr := startServer(t)
	_, port, _ := net.SplitHostPort(addr)
	pool, err := CAPool(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
		// Everything stays on 127.0.0.1, whatever "localhost" resolves to;
		// the URL's host name is still what gets verified.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		resp, err := client.Get("https://" + net.JoinHostPort(host, port) + "/")
		if err != nil {
			t.Fatalf("GET via %s: %v", host, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "ok") {
			t.Errorf("GET via %s: %d %q", host, resp.StatusCode, body)
		}
		if resp.ProtoMajor != 2 {
			t.Errorf("GET via %s: protocol %s, want HTTP/2", host, resp.Proto)
		}
		tr.CloseIdleConnections()
	}

	// A client that trusts only the system roots must not accept the cert.
	plain := &http.Client{Transport: &http.Transport{DialContext: tr.DialContext}, Timeout: 10 * time.Second}
	if resp, err := plain.Get("https://127.0.0.1:" + port + "/"); err == nil {
		resp.Body.Close()
		t.Error("client without the dev CA accepted the certificate")
	}

	// A host name not in the certificate fails verification.
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "other.local"})
	if err == nil {
		c.Close()
		t.Error("handshake for a name outside the SANs succeeded")
	}
}

func TestOldTLSRejected(t *testing.T) {
	f, addr := startServer(t)
	pool, _ := CAPool(f)
	dial := func(cfg *tls.Config) error {
		cfg.RootCAs = pool
		cfg.ServerName = "127.0.0.1"
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(&tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}); err != nil {
		t.Fatalf("TLS 1.2 with defaults: %v", err)
	}
	if err := dial(&tls.Config{MinVersion: tls.VersionTLS13}); err != nil {
		t.Fatalf("TLS 1.3: %v", err)
	}
	// The client really offers TLS 1.0/1.1; the server must be the one that
	// refuses ("remote error"), not the client's own defaults.
	if err := dial(&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 client accepted")
	} else if !strings.Contains(err.Error(), "remote error") {
		t.Errorf("TLS 1.1: %v, want the server to refuse", err)
	}
	for _, suite := range []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	} {
		err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}})
		if err == nil {
			t.Errorf("TLS 1.2 with only %s accepted", tls.CipherSuiteName(suite))
		} else if !strings.Contains(err.Error(), "remote error") {
			t.Errorf("%s: %v, want the server to refuse", tls.CipherSuiteName(suite), err)
		}
	}
}

// issueWithCA signs a server certificate for names with the CA in f,
// bypassing Ensure's checks (a stand-in for a leaked CA key).
func issueWithCA(t *testing.T, f Files, dns []string, ips []net.IP) *x509.Certificate {
	t.Helper()
	ca := loadCert(t, f.CACert)
	caKey, err := parseKeyPEM(readFile(t, f.CAKey))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	name := "ip"
	if len(dns) > 0 {
		name = dns[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNameConstraints(t *testing.T) {
	f := ensure(t, t.TempDir(), testHosts, time.Now())
	pool, _ := CAPool(f)
	verify := func(c *x509.Certificate, name string) error {
		_, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: name,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		return err
	}
	for _, tc := range []struct {
		dns  []string
		ips  []net.IP
		name string
	}{
		{dns: []string{"evil.example.com"}, name: "evil.example.com"},
		{dns: []string{"localhost.example.com"}, name: "localhost.example.com"},
		{dns: []string{"local"}, name: "local"},
		{dns: []string{"printer.local", "evil.example.com"}, name: "printer.local"},
		{ips: []net.IP{net.ParseIP("8.8.8.8")}, name: "8.8.8.8"},
		{ips: []net.IP{net.ParseIP("2001:db8::1")}, name: "2001:db8::1"},
	} {
		err := verify(issueWithCA(t, f, tc.dns, tc.ips), tc.name)
		var inv x509.CertificateInvalidError
		if !errors.As(err, &inv) || inv.Reason != x509.CANotAuthorizedForThisName {
			t.Errorf("cert for %v %v: err = %v, want CANotAuthorizedForThisName", tc.dns, tc.ips, err)
		}
	}
	// Controls: names inside the constraints verify.
	for _, tc := range []struct {
		dns  []string
		ips  []net.IP
		name string
	}{
		{dns: []string{"printer.local"}, name: "printer.local"},
		{dns: []string{"app.localhost"}, name: "app.localhost"},
		{ips: []net.IP{net.ParseIP("192.168.0.10")}, name: "192.168.0.10"},
		{ips: []net.IP{net.ParseIP("fd00::5")}, name: "fd00::5"},
	} {
		if err := verify(issueWithCA(t, f, tc.dns, tc.ips), tc.name); err != nil {
			t.Errorf("cert for %v %v: %v", tc.dns, tc.ips, err)
		}
	}
}
