package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/cli/internal/truststore"
	"github.com/unjuno/flm/core/certs"
	"github.com/unjuno/flm/proxy/devtls"
	"github.com/unjuno/flm/proxy/localca"
)

// caEnv is the environment of a user running install-ca: HOME is a
// temporary home with an NSS database, no sudo, no CA overrides.
func caEnv(home string) []string {
	var env []string
	for _, kv := range hermeticEnviron() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "SUDO_USER", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home)
}

func flmCA(t *testing.T, dir, home string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(flmBin, append([]string{"--data-dir", dir}, args...)...)
	cmd.Env = caEnv(home)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, errb.String())
	}
	return out, nil
}

type caOut struct {
	Data struct {
		Root struct {
			Fingerprint string `json:"fingerprint_sha256"`
			File        string `json:"file"`
		} `json:"root"`
		Changed bool                `json:"changed"`
		Changes []truststore.Change `json:"changes"`
		Notes   []string            `json:"notes"`
	} `json:"data"`
}

func decodeCA(t *testing.T, out []byte) caOut {
	t.Helper()
	var o caOut
	if err := json.Unmarshal(out, &o); err != nil {
		t.Fatalf("install-ca output %s: %v", out, err)
	}
	return o
}

// trustState is what install-ca may touch on this machine (Debian layout):
// the anchors directory, the links in /etc/ssl/certs and the bundle.
func trustState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, dir := range []string{"/usr/local/share/ca-certificates", "/etc/ssl/certs"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			target, _ := os.Readlink(filepath.Join(dir, e.Name()))
			fmt.Fprintf(&b, "%s/%s -> %s\n", dir, e.Name(), target)
		}
	}
	bundle, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "bundle %x\n", sha256.Sum256(bundle))
	return b.String()
}

// goClient is a program that GETs a URL with Go's system roots: run in a
// fresh process each time, since Go loads the system pool once per process.
const goClient = `package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(os.Args[1])
	if err != nil {
		fmt.Println(err)
		os.Exit(3)
	}
	b, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s", resp.StatusCode, b)
}
`

// TestPackagedCAOnLinux is issue 10's packaged-ca check, for real, as root:
// install-ca puts the root into the system store (and an NSS database);
// curl and a Go client using the system roots reach /health at the
// machine's LAN address; uninstall-ca takes exactly that out again and
// both fail on the certificate.
func TestPackagedCAOnLinux(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Fatalf("this test runs on Linux (CI); GOOS=%s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test changes the system trust store and must run as root (CI does)")
	}
	for _, tool := range []string{"update-ca-certificates", "certutil", "curl", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (tools/test.sh installs ca-certificates, libnss3-tools and curl): %v", tool, err)
		}
	}
	dir, home := t.TempDir(), t.TempDir()
	nssdb := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(nssdb, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("certutil", "-N", "-d", "sql:"+nssdb, "--empty-password").CombinedOutput(); err != nil {
		t.Fatalf("certutil -N: %v %s", err, out)
	}
	// A fresh machine's store is not always what update-ca-certificates
	// makes of it (seen: a CA dropped in as a plain file where the tool
	// writes a symlink). Bring it to the tool's own state first, so the
	// comparison below sees only what install-ca and uninstall-ca change.
	if out, err := exec.Command("update-ca-certificates").CombinedOutput(); err != nil {
		t.Fatalf("update-ca-certificates: %v %s", err, out)
	}
	t0 := time.Now()
	before := trustState(t)
	// Whatever happens, the machine's trust store is left as it was.
	t.Cleanup(func() {
		data, err := os.ReadFile(filepath.Join(dir, "certs", LocalCARootFile))
		if err != nil {
			return
		}
		b, _ := pem.Decode(data)
		if b == nil {
			return
		}
		root, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return
		}
		if _, err := truststore.Uninstall(context.Background(), root, truststore.Options{Home: home}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	// No terminal, no --yes: refused, nothing trusted.
	if out, err := flmCA(t, dir, home, "security", "install-ca"); err == nil || !strings.Contains(err.Error(), "INVALID_ARGUMENT") || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("install-ca without consent: %v %s", err, out)
	}
	if got := trustState(t); got != before {
		t.Fatal("install-ca without consent changed the trust store")
	}

	out, err := flmCA(t, dir, home, "security", "install-ca", "--yes")
	if err != nil {
		t.Fatal(err)
	}
	first := decodeCA(t, out)
	anchor := "/usr/local/share/ca-certificates/flm-" + first.Data.Root.Fingerprint[:16] + ".crt"
	var actions []string
	for _, c := range first.Data.Changes {
		actions = append(actions, c.Action+" "+c.Path+c.Command)
	}
	t.Logf("install-ca: %v", actions)
	if !first.Data.Changed || len(actions) != 3 || actions[0] != "wrote "+anchor || actions[1] != "ran update-ca-certificates" ||
		!strings.HasPrefix(actions[2], "ran ") || !strings.Contains(actions[2], "certutil -A -d sql:"+nssdb) {
		t.Fatalf("install-ca changes = %v", actions)
	}
	// Twice: one entry, nothing changed.
	out, err = flmCA(t, dir, home, "security", "install-ca", "--yes")
	if err != nil {
		t.Fatal(err)
	}
	if again := decodeCA(t, out); again.Data.Changed || len(again.Data.Changes) != 0 {
		t.Fatalf("second install-ca changed %+v", again.Data)
	}
	rootPEM, err := os.ReadFile(filepath.Join(dir, "certs", LocalCARootFile))
	if err != nil {
		t.Fatal(err)
	}
	bundle, _ := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if n := bytes.Count(bundle, bytes.TrimSpace(rootPEM)); n != 1 {
		t.Fatalf("root in the system bundle %d times", n)
	}
	if l, _ := exec.Command("certutil", "-L", "-d", "sql:"+nssdb).CombinedOutput(); bytes.Count(l, []byte("FLM Local CA")) != 1 {
		t.Fatalf("NSS database after two installs:\n%s", l)
	}

	// The proxy, on the machine's LAN address if it has a private one.
	host, bind := "127.0.0.1", "127.0.0.1"
	lan := devtls.PrivateInterfaceAddrs()
	if i := slices.IndexFunc(lan, netip.Addr.Is4); i >= 0 {
		host, bind = lan[i].String(), "0.0.0.0"
	} else if len(lan) > 0 {
		host, bind = lan[0].String(), "::"
	}
	t.Logf("machine private addresses %v: testing https://%s (bind %s)", lan, host, bind)
	createKey(t, dir, "lan")
	port := freePort(t)
	for freePortAt(port+1) != nil {
		port = freePort(t)
	}
	h := startProxyProc(t, dir, "--mode", "packaged-ca", "--bind", bind, "--port", fmt.Sprint(port))
	if h.HTTPSPort != port+1 {
		t.Fatalf("handle = %+v", h)
	}
	url := fmt.Sprintf("https://%s/health", net.JoinHostPort(host, fmt.Sprint(port+1)))

	clientDir := t.TempDir()
	t.Logf("proxy up after %v", time.Since(t0))
	if err := os.WriteFile(filepath.Join(clientDir, "main.go"), []byte(goClient), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(clientDir, "go.mod"), []byte("module client\n\ngo 1.26\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	goBin := filepath.Join(clientDir, "client")
	build := exec.Command("go", "build", "-o", goBin, ".")
	build.Dir, build.Env = clientDir, append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the Go client: %v %s", err, out)
	}
	curl := func() ([]byte, error) {
		c := exec.Command("curl", "-sS", "--fail", "--max-time", "5", "--noproxy", "*", url)
		c.Env = caEnv(home)
		return c.CombinedOutput()
	}
	goGet := func() ([]byte, error) {
		c := exec.Command(goBin, url)
		c.Env = caEnv(home)
		return c.CombinedOutput()
	}
	t.Logf("client built after %v", time.Since(t0))
	if out, err := curl(); err != nil || !bytes.Contains(out, []byte(`"ok"`)) {
		t.Fatalf("curl %s with the system roots: %v %s", url, err, out)
	}
	if out, err := goGet(); err != nil || !bytes.HasPrefix(out, []byte("200 ")) {
		t.Fatalf("Go client %s with the system roots: %v %s", url, err, out)
	}

	// Old protocol versions and CBC suites are refused by this listener.
	tlsAddr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port+1))
	for name, cfg := range map[string]*tls.Config{
		"TLS 1.1":  {MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11, InsecureSkipVerify: true},                                     //nolint:gosec // probing the server
		"CBC-only": {MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}, InsecureSkipVerify: true}, //nolint:gosec
	} {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsAddr, cfg)
		if err == nil {
			c.Close()
			t.Errorf("%s client accepted by the packaged-ca listener", name)
		} else if !strings.Contains(err.Error(), "remote error") {
			t.Errorf("%s: %v, want the server to refuse", name, err)
		}
	}

	// The CA key is in security.db only: no file of the data dir holds
	// it, and security.db holds it encrypted.
	d, err := store.Open(context.Background(), dir, store.Security)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := (store.Certs{DB: d}).Get(context.Background(), certs.LocalCARootID)
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(rec.KeyPEM)
	if kb == nil {
		t.Fatal("stored root key is not PEM")
	}
	needles := [][]byte{rec.KeyPEM, kb.Bytes, []byte(base64.StdEncoding.EncodeToString(kb.Bytes)[:40]), []byte(hex.EncodeToString(kb.Bytes))}
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		data, _ := os.ReadFile(p)
		for _, n := range needles {
			if bytes.Contains(data, n) {
				t.Errorf("%s holds the CA private key", p)
			}
		}
		if strings.HasPrefix(p, filepath.Join(dir, "certs")) && bytes.Contains(data, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a private key", p)
		}
		return nil
	})

	t.Logf("checks done after %v", time.Since(t0))
	out, err = flmCA(t, dir, home, "security", "uninstall-ca", "--yes")
	if err != nil {
		t.Fatal(err)
	}
	un := decodeCA(t, out)
	t.Logf("uninstall-ca: %+v", un.Data.Changes)
	if !un.Data.Changed || un.Data.Changes[0] != (truststore.Change{Action: "removed", Path: anchor}) {
		t.Fatalf("uninstall-ca changes = %+v", un.Data.Changes)
	}
	if got := trustState(t); got != before {
		t.Fatalf("uninstall-ca left the trust store different:\nbefore:\n%s\nafter:\n%s", before, got)
	}
	if l, _ := exec.Command("certutil", "-L", "-d", "sql:"+nssdb).CombinedOutput(); bytes.Contains(l, []byte("FLM")) {
		t.Fatalf("NSS database after uninstall:\n%s", l)
	}
	if out, err := curl(); err == nil || !bytes.Contains(out, []byte("certificate")) {
		t.Fatalf("curl after uninstall-ca: %v %s, want a certificate error", err, out)
	}
	if out, err := goGet(); err == nil || !bytes.Contains(out, []byte("x509: certificate signed by unknown authority")) {
		t.Fatalf("Go client after uninstall-ca: %v %s, want a certificate error", err, out)
	}
	out, err = flmCA(t, dir, home, "security", "uninstall-ca", "--yes")
	if err != nil || decodeCA(t, out).Data.Changed {
		t.Fatalf("second uninstall-ca: %v %s", err, out)
	}
}

// TestInstallCAConsent: without a terminal and without --yes nothing is
// asked and nothing changes; at a terminal, anything but y/yes declines.
func TestInstallCAConsent(t *testing.T) {
	dir := t.TempDir()
	calls := 0
	trustOptions = truststore.Options{SkipSystem: true, Home: t.TempDir(), Privileged: func() bool { return true }, Run: func(context.Context, string, ...string) ([]byte, error) {
		calls++
		return nil, nil
	}}
	defer func() { trustOptions = truststore.Options{} }()
	if msg := fails(t, dir, 1, "INVALID_ARGUMENT", "security", "install-ca"); !strings.Contains(msg, "--yes") {
		t.Fatalf("message %q", msg)
	}
	isTerminal = func(io.Reader) bool { return true }
	defer func() { isTerminal = defaultIsTerminal }()
	for _, answer := range []string{"", "n\n", "no\n", "sure\n"} {
		r := flmIn(t, dir, answer, "security", "install-ca")
		prompt, errObj, found := strings.Cut(r.stderr, "[y/N] ")
		if !found || !strings.Contains(prompt, "*.local") {
			t.Fatalf("answer %q: no prompt on stderr: %q", answer, r.stderr)
		}
		r.stderr = errObj
		if code, msg := r.errCode(t); r.code != 1 || code != "INVALID_ARGUMENT" || !strings.Contains(msg, "not confirmed") {
			t.Fatalf("answer %q: %d %s %s", answer, r.code, code, msg)
		}
	}
	r := flmIn(t, dir, "y\n", "security", "install-ca")
	if r.code != 0 {
		t.Fatalf("answer y: %d %s", r.code, r.stderr)
	}
	if calls != 0 {
		t.Fatalf("commands run: %d (no NSS database, system skipped)", calls)
	}
	// uninstall-ca asks too.
	isTerminal = defaultIsTerminal
	fails(t, dir, 1, "INVALID_ARGUMENT", "security", "uninstall-ca")
}

// TestDevSelfSignedLANURLCovered is issue 10 item 4: the LAN URL a
// dev-selfsigned proxy bound to 0.0.0.0 prints verifies against its
// certificate.
func TestDevSelfSignedLANURLCovered(t *testing.T) {
	lan := systemLAN{}.Addr()
	if lan != "" && !slices.Contains(devtls.Hosts("0.0.0.0"), lan) {
		t.Fatalf("the LAN finder's address %s is not among devtls.Hosts(0.0.0.0) = %v", lan, devtls.Hosts("0.0.0.0"))
	}
	dir := t.TempDir()
	createKey(t, dir, "k")
	port := freePort(t)
	for freePortAt(port+1) != nil {
		port = freePort(t)
	}
	h := startProxyProc(t, dir, "--mode", "dev-selfsigned", "--bind", "0.0.0.0", "--port", fmt.Sprint(port))
	pool, err := devtls.CAPool(devtls.FilesIn(filepath.Join(dir, "certs")))
	if err != nil {
		t.Fatal(err)
	}
	urls := []string{h.URLs.Local}
	if h.URLs.LAN != "" {
		urls = append(urls, h.URLs.LAN)
	} else {
		t.Logf("this machine has no private IPv4 address (%v): no LAN URL printed; checking the local URL only", devtls.PrivateInterfaceAddrs())
	}
	for _, u := range urls {
		hostport := strings.TrimPrefix(u, "https://")
		hostname, _, _ := net.SplitHostPort(hostport)
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", hostport, &tls.Config{RootCAs: pool, ServerName: hostname})
		if err != nil {
			t.Fatalf("%s (printed by the handle): %v", u, err)
		}
		c.Close()
	}
	_, _ = flmProc(t, dir, "proxy", "stop", "--all")
}

// legacyRootPEM is a root as FLM made it before the TLS-server-only
// restrictions (no ExtKeyUsage, e-mail and URI names open), for host.
func legacyRootPEM(t *testing.T, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{Organization: []string{"FLM"}, CommonName: localca.RootCommonName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign, PermittedDNSDomainsCritical: true,
		PermittedDNSDomains: append(slices.Clone(localca.PermittedDNSDomains), host), ExcludedDNSDomains: []string{"." + host}}
	for _, p := range localca.PermittedIPRanges {
		tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges, &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// TestInstallCAUnderSudoRefusesSwappedRoot: under sudo, install-ca reads
// certs/local-ca.pem from the user's data dir, a file the user (or malware
// running as the user) can replace. A root for a public name, or an
// earlier FLM's root (its key signs S/MIME and code signing), is refused
// before anything is written to the system trust store; this machine's
// current root is accepted, and uninstall-ca may take any FLM root out.
func TestInstallCAUnderSudoRefusesSwappedRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test plays root under sudo in a user's data dir and must run as root (CI does)")
	}
	host := devtls.MachineHostname()
	if host == "" {
		t.Fatal("this machine has no usable host name")
	}
	sys := t.TempDir()
	anchors := filepath.Join(sys, "usr/local/share/ca-certificates")
	if err := os.MkdirAll(anchors, 0o755); err != nil {
		t.Fatal(err)
	}
	ran := 0
	trustOptions = truststore.Options{Root: sys, Home: t.TempDir(), Privileged: func() bool { return true },
		LookPath: func(n string) (string, error) { return "/usr/sbin/" + n, nil },
		Run:      func(context.Context, string, ...string) ([]byte, error) { ran++; return nil, nil }}
	defer func() { trustOptions = truststore.Options{} }()
	userDir := func(certPEM []byte) string {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "certs", LocalCARootFile), certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{dir, filepath.Join(dir, "certs"), filepath.Join(dir, "certs", LocalCARootFile)} {
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		if !truststore.OwnedByOther(dir) {
			t.Fatal("the data dir does not look like another user's")
		}
		return dir
	}
	public, _, _ := localca.NewRoot("www.google.com", time.Now())
	legacy, _ := legacyRootPEM(t, host)
	for name, tc := range map[string]struct {
		pem  []byte
		want string
	}{
		"public host name": {public, "www.google.com"},
		"earlier FLM root": {legacy, "as the data dir's owner first"},
	} {
		dir := userDir(tc.pem)
		msg := fails(t, dir, 1, "INVALID_ARGUMENT", "security", "install-ca", "--yes")
		if !strings.Contains(msg, "refusing") || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: message %q", name, msg)
		}
		if entries, _ := os.ReadDir(anchors); len(entries) != 0 || ran != 0 {
			t.Fatalf("%s: the system store changed (%v, %d commands run)", name, entries, ran)
		}
		if _, err := os.Stat(filepath.Join(dir, "security.db")); err == nil {
			t.Errorf("%s: root opened the user's security.db", name)
		}
		// Taking an earlier root out is always allowed.
		if name == "earlier FLM root" {
			trustOptions.SkipSystem = true
			if r := flm(t, dir, "security", "uninstall-ca", "--yes"); r.code != 0 {
				t.Errorf("uninstall-ca of an earlier FLM root: %d %s", r.code, r.stderr)
			}
			trustOptions.SkipSystem = false
		}
	}
	// This machine's current root is accepted.
	good, _, err := localca.NewRoot(host, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	trustOptions.SkipSystem = true
	r := flm(t, userDir(good), "security", "install-ca", "--yes")
	if r.code != 0 {
		t.Fatalf("install-ca of this machine's root: %d %s", r.code, r.stderr)
	}
}

// TestInstallCAReplacesOutdatedRoot: a data dir whose local CA an earlier
// FLM made gets a new, TLS-server-only root on the next install-ca, with a
// warning that says so and that install-ca must be run again.
func TestInstallCAReplacesOutdatedRoot(t *testing.T) {
	dir := t.TempDir()
	ok(t, dir, "security", "certificates", "list") // creates the data dir and its databases
	certPEM, keyPEM := legacyRootPEM(t, "devbox")
	d, err := store.Open(context.Background(), dir, store.Security)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := certs.FromPEM(certs.LocalCARootID, certs.SourceLocalCA, certPEM, keyPEM, time.Now())
	if err == nil {
		err = (store.Certs{DB: d}).Put(context.Background(), rec)
	}
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	trustOptions = truststore.Options{SkipSystem: true, Home: t.TempDir(), Privileged: func() bool { return true }}
	defer func() { trustOptions = truststore.Options{} }()
	r := flm(t, dir, "security", "install-ca", "--yes")
	if r.code != 0 {
		t.Fatalf("install-ca: %d %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "LOCAL_CA_REPLACED") || !strings.Contains(r.stdout, "install-ca") {
		t.Fatalf("no replacement warning: %s", r.stdout)
	}
	data, err := os.ReadFile(filepath.Join(dir, "certs", LocalCARootFile))
	if err != nil {
		t.Fatal(err)
	}
	root, err := localca.ParseRoot(data, devtls.MachineHostname())
	if err != nil {
		t.Fatalf("the exported root after install-ca: %v", err)
	}
	if bytes.Equal(data, certPEM) || !slices.Equal(root.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Fatal("the earlier root was kept")
	}
}
