package cli

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/certs"
	"github.com/unjuno/flm/core/proxyctl"
)

// A user sees which certificate a TLS proxy serves and when it expires, in
// `proxy status` and `security certificates`, and never a private key.
func TestCertificatesListShowAndStatus(t *testing.T) {
	dir := t.TempDir()
	var infos []certs.Info
	flm(t, dir, "security", "certificates", "list").data(t, &infos)
	if infos == nil || len(infos) != 0 {
		t.Fatalf("fresh data dir lists %+v", infos)
	}
	port := freePort(t)
	for freePortAt(port+1) != nil {
		port = freePort(t)
	}
	startProxyProc(t, dir, "--mode", "dev-selfsigned", "--port", fmt.Sprint(port))
	t.Cleanup(func() { _, _ = flmProc(t, dir, "proxy", "stop", "--all") })

	var hs []proxyctl.Handle
	flm(t, dir, "proxy", "status").data(t, &hs)
	if len(hs) != 1 {
		t.Fatalf("status = %+v", hs)
	}
	c := hs[0].Certificate
	if c == nil || c.ID != devServerID || c.Source != certs.SourceDev || c.Expired || c.NotAfter.Before(time.Now().Add(30*24*time.Hour)) {
		t.Fatalf("status certificate = %+v", c)
	}
	if !strings.Contains(strings.Join(c.SANs, ","), "127.0.0.1") {
		t.Fatalf("SANs = %v", c.SANs)
	}

	r := flm(t, dir, "security", "certificates", "list")
	r.data(t, &infos)
	out := r.stdout
	if len(infos) != 2 || infos[0].ID != devCAID || infos[1].ID != devServerID || infos[1].Issuer != infos[0].Subject {
		t.Fatalf("list = %+v", infos)
	}
	pem := flm(t, dir, "security", "certificates", "show", devServerID, "--pem").stdout
	if !strings.HasPrefix(pem, "-----BEGIN CERTIFICATE-----") || strings.Contains(out+pem, "PRIVATE KEY") {
		t.Fatalf("show --pem = %q", pem)
	}
	text := flm(t, dir, "--format", "text", "security", "certificates", "list").stdout
	if !strings.Contains(text, devServerID) || !strings.Contains(text, "valid") {
		t.Fatalf("text list = %q", text)
	}
	if r := flm(t, dir, "security", "certificates", "show", "acme:nope.example"); r.code == 0 || !strings.Contains(r.stderr, "INVALID_ARGUMENT") {
		t.Fatalf("unknown id = %+v", r)
	}
}
