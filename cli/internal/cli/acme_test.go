package cli

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/proxy/acme"
	"github.com/unjuno/flm/proxy/acme/acmetest"
)

// https-acme as a user runs it: `flm proxy start --mode https-acme` in the
// background gets a certificate from the CA (Pebble), serves it to a client
// that trusts only the CA's root, keeps every key in security.db, and a
// restart reuses the stored certificate without a new order.
func TestHTTPSACMEJourney(t *testing.T) {
	dir := t.TempDir()
	port := acmetest.FreePortPair(t)
	ca := acmetest.Start(t, acmetest.Config{HTTPPort: port, TLSPort: port + 1})
	t.Setenv(acme.EnvDirectory, ca.Directory)
	t.Setenv(acme.EnvCARoots, ca.RootsFile)
	k := createKey(t, dir, "k")
	const domain = "cli.example.com"
	args := []string{"--mode", "https-acme", "--domain", domain, "--acme-email", "me@example.com", "--port", fmt.Sprint(port)}

	h := startProxyProc(t, dir, args...)
	if h.HTTPSPort != port+1 || !strings.Contains(h.URLs.External, domain) {
		t.Fatalf("handle = %+v", h)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.IssuerRoots(t), ServerName: domain},
	}}
	for _, path := range []string{"/health", "/v1/models"} {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d%s", port+1, path), nil)
		req.Header.Set("Authorization", "Bearer "+k.PlainKey)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	orders := ca.Orders()
	if orders != 1 {
		t.Fatalf("pebble saw %d orders", orders)
	}

	// The certificate is listed, with no key.
	r := ok(t, dir, "security", "certificates", "list")
	if !strings.Contains(r.stdout, "acme:"+domain) || strings.Contains(r.stdout, "PRIVATE") {
		t.Fatalf("certificates list: %s", r.stdout)
	}

	// Restart: the stored certificate is valid and not due: no order.
	if _, err := flmProc(t, dir, "proxy", "stop", "--all"); err != nil {
		t.Fatal(err)
	}
	startProxyProc(t, dir, args...)
	if got := ca.Orders(); got != orders {
		t.Fatalf("restart ordered again: %d orders, was %d", got, orders)
	}
	resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/health", port+1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := flmProc(t, dir, "proxy", "stop", "--all"); err != nil {
		t.Fatal(err)
	}

	// The account key and the certificate key are in security.db only:
	// no file in the data dir holds a PEM private key.
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a private key", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// acmeEnv makes the in-process App see the ACME variables.
func acmeEnv(vars map[string]string) func(*App) {
	return func(a *App) {
		get := a.Getenv
		a.Getenv = func(k string) string {
			if v, ok := vars[k]; ok {
				return v
			}
			return get(k)
		}
	}
}

// Failures are loud: the start fails with PROXY_ACME_ERROR and the CA's
// message, no handle is left, and nothing is left serving.
func TestHTTPSACMEFailures(t *testing.T) {
	dir := t.TempDir()
	createKey(t, dir, "k")
	port := acmetest.FreePortPair(t)
	ca := acmetest.Start(t, acmetest.Config{HTTPPort: port, TLSPort: port + 1})
	ca.AddA(t, "elsewhere.example.com", "127.0.0.2") // DNS does not point here
	down := fmt.Sprintf("https://127.0.0.1:%d/dir", freePort(t))
	for _, c := range []struct {
		name, dir, domain, code string
		want                    []string
	}{
		{"ca down", down, "down.example.com", "PROXY_ACME_ERROR", []string{down, "connection refused"}},
		{"dns elsewhere", ca.Directory, "elsewhere.example.com", "PROXY_ACME_ERROR", []string{"urn:ietf:params:acme:error:connection", "elsewhere.example.com:80"}},
		{"bad directory", "not-a-ca", "x.example.com", "PROXY_INVALID_CONFIG", []string{"FLM_ACME_DIRECTORY"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			vars := map[string]string{acme.EnvDirectory: c.dir, acme.EnvCARoots: ca.RootsFile}
			// Bound to 127.0.0.1 only: the name "elsewhere" points at
			// 127.0.0.2, where nothing of this proxy listens.
			args := []string{"proxy", "start", "--mode", "https-acme", "--domain", c.domain, "--port", fmt.Sprint(port), "--bind", "127.0.0.1"}
			// In this process (--foreground): the exact code and message.
			acmeHTTPClient = ca.HTTPClient // Retry-After on challenges: fast
			t.Cleanup(func() { acmeHTTPClient = nil })
			r := flmWith(t, dir, acmeEnv(vars), append(args, "--foreground")...)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n") // log lines, then the error
			code, msg := result{stderr: lines[len(lines)-1]}.errCode(t)
			if r.code != 1 || code != c.code {
				t.Fatalf("exit %d %s: %s", r.code, code, msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q: %s", w, msg)
				}
			}
			if strings.Contains(r.stdout, `"data"`) {
				t.Fatalf("a handle was printed: %s", r.stdout)
			}
			checkNothingServes(t, port)
			// In the background, as a user runs it: the start fails and
			// reports the child's error (the CA's refusal of a challenge
			// is left to the foreground: the child's client polls
			// Pebble for 5 s).
			if c.name == "dns elsewhere" {
				return
			}
			for k, v := range vars {
				t.Setenv(k, v)
			}
			out, err := flmProc(t, dir, args...)
			// The child's own code, not PROXY_INVALID_CONFIG around it
			// (its error line, with warnings, is longer than 400 bytes).
			if err == nil || !strings.Contains(err.Error(), `{"error":{"code":"`+c.code+`"`) {
				t.Fatalf("background start: %v %s", err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("background message lacks %q: %v", w, err)
				}
			}
			checkNothingServes(t, port)
		})
	}
	var hs []json.RawMessage
	ok(t, dir, "proxy", "status").data(t, &hs)
	if len(hs) != 0 {
		t.Fatalf("a failed start left a handle: %s", hs)
	}
}

// checkNothingServes: after a failed start neither port answers.
func checkNothingServes(t *testing.T, port int) {
	t.Helper()
	for _, p := range []int{port, port + 1} {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("port %d still accepts connections after a failed start", p)
		}
	}
}

func TestDNSProviders(t *testing.T) {
	dir := t.TempDir()
	var out struct {
		Providers []struct {
			Name string   `json:"name"`
			Env  []string `json:"env"`
		} `json:"providers"`
	}
	ok(t, dir, "security", "dns-providers").data(t, &out)
	names := map[string][]string{}
	for _, p := range out.Providers {
		names[p.Name] = p.Env
	}
	for _, want := range []string{"cloudflare", "route53", "exec", "httpreq", "dnsupdate", "duckdns"} {
		if _, ok := names[want]; !ok {
			t.Errorf("%s missing from %v", want, names)
		}
	}
	if !strings.Contains(strings.Join(names["cloudflare"], " "), "CLOUDFLARE_DNS_API_TOKEN") {
		t.Errorf("cloudflare env: %v", names["cloudflare"])
	}
	r := ok(t, dir, "--format", "text", "security", "dns-providers")
	if !strings.Contains(r.stdout, "cloudflare") {
		t.Errorf("text: %s", r.stdout)
	}
}
