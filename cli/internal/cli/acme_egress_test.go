package cli

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/proxy/acme"
	"github.com/unjuno/flm/proxy/acme/acmetest"
	"github.com/unjuno/flm/proxy/egress/egresstest"
)

// ACME traffic goes through the egress (PRODUCT.md §8): with
// --egress-mode socks5 the CA is reached by a name only the SOCKS server
// resolves, so issuance can only succeed through it, and the SOCKS server
// sees the CA's host.
func TestHTTPSACMEThroughSOCKSEgress(t *testing.T) {
	const caName = "acme-ca.flm-egress.test"
	dir := t.TempDir()
	port := acmetest.FreePortPair(t)
	ca := acmetest.Start(t, acmetest.Config{HTTPPort: port, TLSPort: port + 1, DirectoryNames: []string{caName}})
	socks := &egresstest.Server{Hosts: map[string]string{caName: "127.0.0.1"}}
	if err := socks.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(socks.Stop)
	if !strings.Contains(ca.Directory, "://127.0.0.1:") {
		t.Fatalf("directory %s", ca.Directory)
	}
	directory := strings.Replace(ca.Directory, "://127.0.0.1:", "://"+caName+":", 1)
	createKey(t, dir, "k")
	const domain = "egress.example.com"
	env := map[string]string{acme.EnvDirectory: directory, acme.EnvCARoots: ca.RootsFile}
	p, r := runForegroundProxy(t, dir, env, "--mode", "https-acme", "--domain", domain, "--port", fmt.Sprint(port),
		"--bind", "127.0.0.1", "--egress-mode", "socks5", "--socks5-endpoint", socks.Addr())
	if p.handle.ID == "" {
		t.Fatalf("https-acme through socks5 did not start: %+v", r)
	}
	seen := 0
	for _, q := range socks.Requests() {
		if strings.HasPrefix(q, caName+":") {
			seen++
		}
	}
	if seen == 0 {
		t.Fatalf("the SOCKS server never saw the CA (%v)", socks.Requests())
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.IssuerRoots(t), ServerName: domain},
	}}
	resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/health", port+1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/health = %d", resp.StatusCode)
	}
}
