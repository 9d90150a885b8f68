package cli

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/proxy/egress/egresstest"
	"github.com/unjuno/flm/tools/enginefake"
)

// Review 2 (adversarial): `flm engines detect` / `models list` (and the
// UI's status screen, which uses the same detector) pick the egress of the
// proxy started MOST RECENTLY. A user who runs a Tor/SOCKS5 proxy for a
// remote engine and later starts a second, plain proxy (say a loopback
// one for a local tool) makes every later detection reach the remote
// engine directly: its name goes to the local resolver and its address
// sees this machine — while the Tor proxy still runs.
func TestReview2DetectionFollowsTheLatestDirectProxy(t *testing.T) {
	dir := t.TempDir()
	remote := fake(t, enginefake.Options{Kind: enginefake.VLLM, Addr: "127.0.0.2:0", Models: []enginefake.Model{{Name: "big"}}})
	_, rport, _ := net.SplitHostPort(remote.Addr())
	socks := &egresstest.Server{Hosts: map[string]string{remoteEngineName: "127.0.0.2"}}
	if err := socks.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(socks.Stop)
	ok(t, dir, "engines", "add", "--kind", "vllm", "--url", "http://"+net.JoinHostPort(remoteEngineName, rport), "--id", "gpu")

	p, r := runForegroundProxy(t, dir, nil, "--port", fmt.Sprint(freePort(t)), "--egress-mode", "socks5", "--socks5-endpoint", socks.Addr())
	if p.handle.ID == "" {
		t.Fatalf("socks5 proxy: %+v", r)
	}
	time.Sleep(5 * time.Millisecond) // created_at is in ms
	p2, r2 := runForegroundProxy(t, dir, nil, "--port", fmt.Sprint(freePort(t)))
	if p2.handle.ID == "" {
		t.Fatalf("direct proxy: %+v", r2)
	}

	before := len(socks.Requests())
	var det detected
	ok(t, dir, "engines", "detect", "--fresh", "--engine", "gpu").data(t, &det)
	through := 0
	for _, q := range socks.Requests()[before:] {
		if strings.HasPrefix(q, remoteEngineName+":") {
			through++
		}
	}
	if through == 0 {
		t.Errorf("with the socks5 proxy %s still running, detection of the remote engine did not go through SOCKS (state %+v): it was tried directly",
			p.handle.ID, det.Engines)
	}
}

// Review 2: with dns-01 the DNS provider's API client and lego's
// propagation check (plain DNS queries) open their own connections, which
// no SOCKS dialer carries. Under a Tor/SOCKS5 egress the combination is
// refused before anything starts, instead of leaking around the egress.
func TestReview2DNS01RefusedUnderSOCKSEgress(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range [][]string{{"--egress-mode", "tor"}, {"--egress-mode", "socks5", "--socks5-endpoint", "127.0.0.1:1"}} {
		args := append([]string{"proxy", "start", "--mode", "https-acme", "--domain", "llm.example.net",
			"--acme-challenge", "dns-01", "--dns-provider", "cloudflare", "--port", fmt.Sprint(freePort(t))}, mode...)
		r := flm(t, dir, args...)
		code, msg := r.errCode(t)
		if r.code != 1 || code != "PROXY_INVALID_CONFIG" || !strings.Contains(msg, "dns-01 cannot go through") {
			t.Fatalf("%v: exit %d %s %s", mode, r.code, code, msg)
		}
	}
	var hs []any
	flm(t, dir, "proxy", "status").data(t, &hs)
	if len(hs) != 0 {
		t.Fatalf("a refused start left a handle: %v", hs)
	}
}
