// Package acmetest runs a real ACME CA for tests: Pebble and
// pebble-challtestsrv (github.com/letsencrypt/pebble/v2, installed by
// tools/test.sh) on loopback at random ports. Pebble's directory is served
// over TLS with a certificate made here (RootsFile trusts it), its DNS
// resolver is challtestsrv (every name resolves to 127.0.0.1 unless AddA
// says otherwise), and its validation connects to the HTTP and TLS ports the
// test names (FLM's HTTP port and HTTPS port).
//
// Missing binaries fail the test under CI=true; elsewhere the test is
// skipped with the command that installs them.
package acmetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"go/build"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the Pebble release tests are written against.
const Version = "v2.10.3"

// Config says where Pebble's validation connects.
type Config struct {
	// HTTPPort receives HTTP-01 validations (FLM's HTTP port); TLSPort
	// TLS-ALPN-01 validations (FLM's HTTPS port).
	HTTPPort, TLSPort int
	// Profiles adds certificate profiles: name → validity. "default" (90
	// days) is always there.
	Profiles map[string]time.Duration
	// DirectoryNames are extra DNS names the directory's TLS certificate
	// covers (besides localhost and the loopback addresses), for reaching
	// the CA by a name only a SOCKS server resolves.
	DirectoryNames []string
}

// CA is a running Pebble with its challenge test server.
type CA struct {
	// Directory is the ACME directory URL (https, loopback).
	Directory string
	// RootsFile is a PEM file trusting the directory's TLS certificate
	// (FLM_ACME_CA_ROOTS); Roots is the same as a pool.
	RootsFile string
	Roots     *x509.CertPool
	// DNSServer is challtestsrv's DNS address (FLM_ACME_DNS_RESOLVERS).
	DNSServer string

	t       testing.TB
	mgmt    string // pebble management (https)
	chall   string // challtestsrv management (http)
	pebble  *exec.Cmd
	pebLog  *syncBuffer
	rootPEM []byte
	stopped bool
	mu      sync.Mutex
}

// Binary finds an installed tool: PATH, then $(go env GOPATH)/bin. Missing
// fails the test under CI=true, else skips it.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(gp, "bin", name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	msg := fmt.Sprintf("%s is not installed: go install github.com/letsencrypt/pebble/v2/cmd/%s@%s (tools/test.sh does)", name, name, Version)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreePortPair returns a loopback TCP port p such that p and p+1 were free
// (FLM's HTTP and HTTPS ports).
func FreePortPair(t testing.TB) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if p >= 65535 {
			continue
		}
		ln2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1)))
		if err != nil {
			continue
		}
		ln2.Close()
		return p
	}
	t.Fatal("no free port pair on loopback")
	return 0
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// freeUDPTCPPort is a port free for both UDP and TCP (challtestsrv's DNS
// serves both).
func freeUDPTCPPort(t testing.TB) int {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		pc.Close()
		if err != nil {
			continue
		}
		ln.Close()
		return p
	}
	t.Fatal("no free udp+tcp port on loopback")
	return 0
}

// Start runs Pebble and challtestsrv until the test ends.
func Start(t testing.TB, cfg Config) *CA {
	t.Helper()
	pebbleBin := Binary(t, "pebble")
	challBin := Binary(t, "pebble-challtestsrv")
	dir := t.TempDir()
	certFile, keyFile, rootsFile, roots := wfeCert(t, dir, cfg.DirectoryNames)

	dnsPort, challMgmt := freeUDPTCPPort(t), freePort(t)
	ca := &CA{t: t, RootsFile: rootsFile, Roots: roots, DNSServer: fmt.Sprintf("127.0.0.1:%d", dnsPort), chall: fmt.Sprintf("127.0.0.1:%d", challMgmt)}
	chall := exec.Command(challBin,
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "",
		"-dnsserver", ca.DNSServer, "-management", ca.chall,
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	chLog := &syncBuffer{}
	chall.Stdout, chall.Stderr = chLog, chLog
	if err := chall.Start(); err != nil {
		t.Fatalf("start pebble-challtestsrv: %v", err)
	}
	t.Cleanup(func() { _ = chall.Process.Kill(); _ = chall.Wait() })

	wfePort, mgmtPort := freePort(t), freePort(t)
	profiles := map[string]any{"default": map[string]any{"description": "default", "validityPeriod": 7776000}}
	for name, d := range cfg.Profiles {
		profiles[name] = map[string]any{"description": name, "validityPeriod": int64(d / time.Second)}
	}
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", wfePort),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       cfg.HTTPPort,
		"tlsPort":                        cfg.TLSPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"keyAlgorithm":                   "ecdsa",
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"profiles":                       profiles,
	}}
	confFile := filepath.Join(dir, "pebble.json")
	b, _ := json.Marshal(conf)
	if err := os.WriteFile(confFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ca.Directory = fmt.Sprintf("https://127.0.0.1:%d/dir", wfePort)
	ca.mgmt = fmt.Sprintf("127.0.0.1:%d", mgmtPort)
	ca.pebble = exec.Command(pebbleBin, "-config", confFile, "-dnsserver", ca.DNSServer)
	ca.pebble.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	ca.pebLog = &syncBuffer{}
	ca.pebble.Stdout, ca.pebble.Stderr = ca.pebLog, ca.pebLog
	if err := ca.pebble.Start(); err != nil {
		t.Fatalf("start pebble: %v", err)
	}
	t.Cleanup(ca.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble log:\n%s\nchalltestsrv log:\n%s", tail(ca.pebLog.String()), tail(chLog.String()))
		}
	})

	client := ca.client()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(ca.Directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not come up: %v\n%s", err, ca.pebLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		c, err := net.DialTimeout("tcp", ca.chall, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble-challtestsrv did not come up: %v\n%s", err, chLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ca.rootPEM = ca.fetchRoot(t)
	return ca
}

func tail(s string) string {
	if len(s) > 8000 {
		return "…" + s[len(s)-8000:]
	}
	return s
}

// HTTPClient is an ACME client for this CA: it trusts RootsFile and, as
// Pebble sends no Retry-After on challenge responses (lego then polls
// after 5 s), adds "Retry-After: 1" there, so an issuance takes about a
// second.
func (ca *CA) HTTPClient() *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Roots}}
	return &http.Client{Timeout: 30 * time.Second, Transport: retryAfter{tr}}
}

type retryAfter struct{ http.RoundTripper }

func (r retryAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.RoundTripper.RoundTrip(req)
	if err == nil && resp.Header.Get("Retry-After") == "" && strings.HasPrefix(req.URL.Path, "/chalZ/") {
		resp.Header.Set("Retry-After", "1")
	}
	return resp, err
}

func (ca *CA) client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Roots}}}
}

// Stop kills Pebble (a CA that is down). Idempotent.
func (ca *CA) Stop() {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ca.stopped {
		return
	}
	ca.stopped = true
	_ = ca.pebble.Process.Kill()
	_ = ca.pebble.Wait()
}

// IssuerRootPEM is the root Pebble issues under (management /roots/0,
// read at start: Pebble makes a new root at every start).
func (ca *CA) IssuerRootPEM(testing.TB) []byte { return ca.rootPEM }

func (ca *CA) fetchRoot(t testing.TB) []byte {
	t.Helper()
	resp, err := ca.client().Get("https://" + ca.mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("pebble root: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pebble root: %d %v", resp.StatusCode, err)
	}
	return b
}

// IssuerRoots is a pool holding only Pebble's issuing root.
func (ca *CA) IssuerRoots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.IssuerRootPEM(t)) {
		t.Fatal("pebble root: no PEM")
	}
	return pool
}

func (ca *CA) challPost(t testing.TB, path string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post("http://"+ca.chall+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("challtestsrv %s: %v", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("challtestsrv %s: %s", path, resp.Status)
	}
}

// AddA makes host resolve to addrs (IPv4) for Pebble.
func (ca *CA) AddA(t testing.TB, host string, addrs ...string) {
	t.Helper()
	ca.challPost(t, "/add-a", map[string]any{"host": host, "addresses": addrs})
}

var ordersRE = regexp.MustCompile(`There are now (\d+) orders in the db`)

// Orders is how many orders Pebble has received.
func (ca *CA) Orders() int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader([]byte(ca.pebLog.String())))
	for sc.Scan() {
		if m := ordersRE.FindStringSubmatch(sc.Text()); m != nil {
			n, _ = strconv.Atoi(m[1])
		}
	}
	return n
}

// SetRenewalWindow makes Pebble suggest [start, end] as the ARI renewal
// window of the certificate certPEM (its leaf).
func (ca *CA) SetRenewalWindow(t testing.TB, certPEM []byte, start, end time.Time) {
	t.Helper()
	ari, _ := json.Marshal(map[string]any{"suggestedWindow": map[string]string{"start": start.UTC().Format(time.RFC3339), "end": end.UTC().Format(time.RFC3339)}})
	b, _ := json.Marshal(map[string]string{"Certificate": string(certPEM), "ARIResponse": string(ari)})
	resp, err := ca.client().Post("https://"+ca.mgmt+"/set-renewal-info/", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("pebble set-renewal-info: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("pebble set-renewal-info: %s %s", resp.Status, msg)
	}
}

// HTTPReqEndpoint starts a DNS API for lego's httpreq provider
// (HTTPREQ_ENDPOINT): /present and /cleanup set and clear the TXT record in
// challtestsrv, as a real DNS provider's API would.
func (ca *CA) HTTPReqEndpoint(t testing.TB) string {
	t.Helper()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct{ FQDN, Value string }
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&msg) != nil || msg.FQDN == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		path := "/set-txt"
		if r.URL.Path == "/cleanup" {
			path = "/clear-txt"
		} else if r.URL.Path != "/present" {
			http.NotFound(w, r)
			return
		}
		b, _ := json.Marshal(map[string]string{"host": msg.FQDN, "value": msg.Value})
		resp, err := http.Post("http://"+ca.chall+path, "application/json", bytes.NewReader(b))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// wfeCert makes a CA and a loopback certificate for Pebble's listeners.
func wfeCert(t testing.TB, dir string, names []string) (certFile, keyFile, rootsFile string, roots *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "acmetest directory CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: append([]string{"localhost"}, names...), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile, rootsFile = filepath.Join(dir, "wfe.pem"), filepath.Join(dir, "wfe.key"), filepath.Join(dir, "roots.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	for f, b := range map[string][]byte{
		certFile:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyFile:   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		rootsFile: caPEM,
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	roots = x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return certFile, keyFile, rootsFile, roots
}

// syncBuffer is a bytes.Buffer safe for a process's output and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitOrders waits (bounded) until Pebble has seen n orders.
func (ca *CA) WaitOrders(ctx context.Context, n int) bool {
	for ctx.Err() == nil {
		if ca.Orders() >= n {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
