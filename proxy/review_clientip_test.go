package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/unjuno/flm/core/policy"
)

// A client behind a trusted proxy claims to be FLM's own loopback (or a
// trusted proxy) in the header that names it. Neither can be true of a
// client a proxy forwards — a client on the proxy's host is the proxy's
// loopback, not FLM's — so the claim makes the client unknown, in
// X-Real-IP as in X-Forwarded-For, and never opens what loopback opens.
func TestReviewClientIPLoopbackClaims(t *testing.T) {
	realIP := policy.Policy{TrustedProxyIPs: []string{"127.0.0.1", "10.0.0.1", "fd00::/8"}, ClientIPHeader: policy.HeaderXRealIP}
	xff := policy.Policy{TrustedProxyIPs: []string{"127.0.0.1", "10.0.0.1", "fd00::/8"}}
	for _, c := range []struct {
		name      string
		pol       policy.Policy
		peer, hdr string
		value     string
		want      string // "" = unknown
	}{
		{"X-Real-IP loopback via a remote proxy", realIP, "10.0.0.1:5000", "X-Real-IP", "127.0.0.1", ""},
		{"X-Real-IP loopback via a local proxy", realIP, "127.0.0.1:5000", "X-Real-IP", "127.0.0.1", ""},
		{"X-Real-IP other loopback address", realIP, "10.0.0.1:5000", "X-Real-IP", "127.8.9.10", ""},
		{"X-Real-IP IPv6 loopback", realIP, "10.0.0.1:5000", "X-Real-IP", "::1", ""},
		{"X-Real-IP mapped loopback", realIP, "10.0.0.1:5000", "X-Real-IP", "::ffff:127.0.0.1", ""},
		{"X-Real-IP bracketed loopback with a port", realIP, "10.0.0.1:5000", "X-Real-IP", "[::1]:80", ""},
		{"X-Real-IP names a trusted proxy", realIP, "10.0.0.1:5000", "X-Real-IP", "10.0.0.1", ""},
		{"X-Real-IP names a trusted IPv6 proxy", realIP, "10.0.0.1:5000", "X-Real-IP", "fd00::7", ""},
		{"X-Real-IP a real client", realIP, "10.0.0.1:5000", "X-Real-IP", "198.51.100.4", "198.51.100.4"},
		{"X-Real-IP a LAN client", realIP, "10.0.0.1:5000", "X-Real-IP", "10.0.0.5", "10.0.0.5"},
		{"XFF loopback via a remote proxy", xff, "10.0.0.1:5000", "X-Forwarded-For", "127.0.0.1", ""},
		{"XFF IPv6 loopback via a remote proxy", xff, "10.0.0.1:5000", "X-Forwarded-For", "::1", ""},
		{"XFF loopback left of a real client", xff, "10.0.0.1:5000", "X-Forwarded-For", "127.0.0.1, 198.51.100.4", "198.51.100.4"},
		{"XFF loopback via a local proxy", xff, "127.0.0.1:5000", "X-Forwarded-For", "127.0.0.1", ""},
		{"an untrusted loopback peer is still loopback", xff, "[::1]:5000", "", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.RemoteAddr = c.peer
			if c.hdr != "" {
				req.Header.Set(c.hdr, c.value)
			}
			got := resolveClientIP(req, c.pol.Compile())
			if c.hdr == "" {
				if !got.IsLoopback() {
					t.Fatalf("a loopback peer without headers resolved to %v", got)
				}
				return
			}
			if c.want == "" && got.IsValid() || c.want != "" && got.String() != c.want {
				t.Fatalf("client %v, want %q (\"\" = unknown)", got, c.want)
			}
		})
	}
}

// The attack end to end: a trusted proxy forwards X-Real-IP: 127.0.0.1
// from anyone. /metrics must still want a key, and the default per-IP
// limit (skipped only for loopback clients) must still apply.
func TestReviewAttackXRealIPLoopbackOpensNothing(t *testing.T) {
	for _, claim := range []string{"127.0.0.1", "::1", "10.0.0.1"} {
		t.Run(claim, func(t *testing.T) {
			pol := policy.Policy{TrustedProxyIPs: []string{"10.0.0.1"}, ClientIPHeader: policy.HeaderXRealIP}
			h, _ := newHandlerProxy(t, pol)
			if w := h.get("/metrics", "10.0.0.1:5000", "X-Real-IP", claim); w.Code != http.StatusUnauthorized {
				t.Fatalf("/metrics with X-Real-IP %s and no key = %d, want 401", claim, w.Code)
			}
			limited := 0
			for range defaultIPLimit.Burst + 20 {
				if h.get("/v1/models", "10.0.0.1:5000", "X-Real-IP", claim).Code == http.StatusTooManyRequests {
					limited++
				}
			}
			if limited == 0 {
				t.Fatalf("%d requests claiming %s were never rate limited", defaultIPLimit.Burst+20, claim)
			}
		})
	}
	// The same proxy's real loopback clients: a request from FLM's own
	// loopback without a proxy still opens /metrics.
	h, _ := newHandlerProxy(t, policy.Policy{TrustedProxyIPs: []string{"10.0.0.1"}, ClientIPHeader: policy.HeaderXRealIP})
	if w := h.get("/metrics", "127.0.0.1:5000"); w.Code != http.StatusOK {
		t.Fatalf("/metrics from loopback = %d", w.Code)
	}
}
