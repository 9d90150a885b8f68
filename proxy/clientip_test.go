package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unjuno/flm/core/policy"
)

// trustingPolicy trusts loopback and two private ranges as proxies.
func trustingPolicy() policy.Policy {
	return policy.Policy{TrustedProxyIPs: []string{"127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8"}}
}

// (peer, X-Forwarded-For lines, X-Real-IP lines, policy) → client IP; ""
// is "unknown client" (the invalid address).
func TestResolveClientIP(t *testing.T) {
	trusted := trustingPolicy()
	realIP := trustingPolicy()
	realIP.ClientIPHeader = policy.HeaderXRealIP
	none := policy.Policy{}
	const proxy = "127.0.0.1:40000"
	cases := []struct {
		name   string
		pol    policy.Policy
		peer   string
		xff    []string
		realIP []string
		want   string
	}{
		// Headers from peers that are not trusted proxies are never read.
		{"untrusted peer forges XFF", trusted, "203.0.113.9:5555", []string{"10.0.0.5"}, nil, "203.0.113.9"},
		{"untrusted peer forges X-Real-IP", trusted, "203.0.113.9:5555", nil, []string{"127.0.0.1"}, "203.0.113.9"},
		{"untrusted peer, policy names X-Real-IP", realIP, "203.0.113.9:5555", nil, []string{"10.0.0.5"}, "203.0.113.9"},
		{"no trusted proxies", none, proxy, []string{"203.0.113.9"}, []string{"203.0.113.9"}, "127.0.0.1"},
		{"untrusted IPv6 peer", trusted, "[2001:db8::7]:443", []string{"::1"}, nil, "2001:db8::7"},
		{"untrusted IPv4-mapped peer", trusted, "[::ffff:203.0.113.9]:1", []string{"10.0.0.5"}, nil, "203.0.113.9"},
		{"untrusted zoned peer", trusted, "[fe80::1%eth0]:1", []string{"10.0.0.5"}, nil, "fe80::1%eth0"},
		{"peer address unparsable", trusted, "garbage", []string{"198.51.100.4"}, nil, ""},

		// A trusted proxy: X-Forwarded-For from the right, trusted hops skipped.
		{"one hop", trusted, proxy, []string{"198.51.100.4"}, nil, "198.51.100.4"},
		{"IPv4-mapped trusted peer", trusted, "[::ffff:127.0.0.1]:1", []string{"198.51.100.4"}, nil, "198.51.100.4"},
		{"IPv6 trusted peer", trusted, "[::1]:1", []string{"2001:db8::9"}, nil, "2001:db8::9"},
		{"client-forged entries left of the client", trusted, proxy, []string{"10.0.0.5, 127.0.0.1, 198.51.100.4"}, nil, "198.51.100.4"},
		{"chain of trusted proxies", trusted, proxy, []string{"198.51.100.4, 10.1.1.1, 10.2.2.2"}, nil, "198.51.100.4"},
		{"chain with IPv6 trusted hops", trusted, proxy, []string{"2001:db8::9, fd00::1, ::1"}, nil, "2001:db8::9"},
		{"trusted mapped hop skipped", trusted, proxy, []string{"198.51.100.4, ::ffff:10.1.1.1"}, nil, "198.51.100.4"},
		{"several lines, joined in order", trusted, proxy, []string{"10.0.0.5", "198.51.100.4, 10.1.1.1"}, nil, "198.51.100.4"},
		{"the last line holds the last hop", trusted, proxy, []string{"198.51.100.4", "203.0.113.9"}, nil, "203.0.113.9"},
		{"X-Real-IP ignored unless named", trusted, proxy, []string{"203.0.113.9"}, []string{"10.0.0.5"}, "203.0.113.9"},
		{"X-Real-IP alone is not read", trusted, proxy, nil, []string{"10.0.0.5"}, ""},
		{"no header", trusted, proxy, nil, nil, ""},
		{"every hop trusted", trusted, proxy, []string{"10.0.0.5, 127.0.0.1"}, nil, ""},
		{"the client claims to be loopback", trusted, proxy, []string{"127.0.0.1"}, nil, ""},
		{"garbage", trusted, proxy, []string{"garbage"}, nil, ""},
		{"garbage left of the client is not read", trusted, proxy, []string{"garbage, 198.51.100.4"}, nil, "198.51.100.4"},
		{"garbage right of the client", trusted, proxy, []string{"198.51.100.4, garbage"}, nil, ""},
		{"empty last element", trusted, proxy, []string{"198.51.100.4, "}, nil, ""},
		{"empty last line", trusted, proxy, []string{"198.51.100.4", ""}, nil, ""},
		{"only commas", trusted, proxy, []string{",,,"}, nil, ""},
		{"spaces and tabs around", trusted, proxy, []string{" \t198.51.100.4\t "}, nil, "198.51.100.4"},
		{"IPv4 with a port", trusted, proxy, []string{"198.51.100.4:5678"}, nil, "198.51.100.4"},
		{"IPv4 port out of range", trusted, proxy, []string{"198.51.100.4:99999"}, nil, ""},
		{"IPv4 empty port", trusted, proxy, []string{"198.51.100.4:"}, nil, ""},
		{"IPv6", trusted, proxy, []string{"2001:db8::9"}, nil, "2001:db8::9"},
		{"bracketed IPv6", trusted, proxy, []string{"[2001:db8::9]"}, nil, "2001:db8::9"},
		{"bracketed IPv6 with a port", trusted, proxy, []string{"[2001:db8::9]:443"}, nil, "2001:db8::9"},
		{"bracketed IPv6 with junk after", trusted, proxy, []string{"[2001:db8::9]x"}, nil, ""},
		{"unbalanced bracket", trusted, proxy, []string{"[2001:db8::9"}, nil, ""},
		{"bracketed IPv4", trusted, proxy, []string{"[198.51.100.4]"}, nil, ""},
		{"zone dropped", trusted, proxy, []string{"fe80::9%eth0"}, nil, "fe80::9"},
		{"bracketed zone with a port", trusted, proxy, []string{"[fe80::9%25eth0]:80"}, nil, "fe80::9"},
		{"IPv4-mapped IPv6 unmapped", trusted, proxy, []string{"::ffff:198.51.100.4"}, nil, "198.51.100.4"},
		{"zoned IPv4 refused", trusted, proxy, []string{"198.51.100.4%eth0"}, nil, ""},
		{"RFC 7239 unknown", trusted, proxy, []string{"unknown"}, nil, ""},
		{"obfuscated identifier", trusted, proxy, []string{"_hidden"}, nil, ""},
		{"host name", trusted, proxy, []string{"evil.example"}, nil, ""},
		{"CIDR", trusted, proxy, []string{"198.51.100.0/24"}, nil, ""},
		{"huge header: the walk stops at the client", trusted, proxy, []string{strings.Repeat("10.0.0.5, ", 6000) + "198.51.100.4"}, nil, "198.51.100.4"},
		{"huge all-trusted chain", trusted, proxy, []string{strings.Repeat("10.0.0.5,", 6000) + "10.0.0.6"}, nil, ""},
		{"huge element", trusted, proxy, []string{strings.Repeat("1", 100_000)}, nil, ""},

		// client_ip_header "X-Real-IP": that header alone, one address.
		{"X-Real-IP named", realIP, proxy, []string{"203.0.113.9"}, []string{"198.51.100.4"}, "198.51.100.4"},
		{"X-Real-IP named: XFF ignored", realIP, proxy, []string{"198.51.100.4"}, nil, ""},
		{"X-Real-IP repeated", realIP, proxy, nil, []string{"198.51.100.4", "10.0.0.5"}, ""},
		{"X-Real-IP list", realIP, proxy, nil, []string{"198.51.100.4, 10.0.0.5"}, ""},
		{"X-Real-IP garbage", realIP, proxy, nil, []string{"garbage"}, ""},
		{"X-Real-IP empty", realIP, proxy, nil, []string{""}, ""},
		{"X-Real-IP bracketed IPv6 with a port", realIP, proxy, nil, []string{"[2001:db8::9]:1"}, "2001:db8::9"},
		{"X-Real-IP mapped", realIP, proxy, nil, []string{"::ffff:198.51.100.4"}, "198.51.100.4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/v1/models", nil)
			req.RemoteAddr = c.peer
			for _, v := range c.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range c.realIP {
				req.Header.Add("X-Real-IP", v)
			}
			got := resolveClientIP(req, c.pol.Compile())
			if c.want == "" {
				if got.IsValid() {
					t.Fatalf("client %v, want unknown", got)
				}
				return
			}
			if got.String() != c.want {
				t.Fatalf("client %v, want %s", got, c.want)
			}
		})
	}
}

// handlerProxy is a Server driven through its whole handler, so tests can
// choose the socket peer.
type handlerProxy struct {
	srv *Server
	src *memSource
}

func newHandlerProxy(t *testing.T, pol policy.Policy, mutate ...func(*Options)) (*handlerProxy, string) {
	t.Helper()
	src, key := newMemSource(t)
	src.policy = pol
	opts := Options{Config: testConfig(), Source: src}
	for _, m := range mutate {
		m(&opts)
	}
	srv, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return &handlerProxy{srv: srv, src: src}, key.Plain
}

// get sends a GET from peer with the given header lines (name, value, …;
// a name may repeat) and returns the recorded answer.
func (h *handlerProxy) get(path, peer string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	req.Host, req.RemoteAddr = "127.0.0.1:8080", peer
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(w, req)
	return w
}

// An attacker behind the trusted reverse proxy (which appends the address
// it sees, 203.0.113.9, and passes the client's other headers through, as
// Caddy does) tries to pass an allowlist that admits only 10.0.0.0/8.
func TestAttackForgedIPBypassesAllowlist(t *testing.T) {
	pol := policy.Policy{IPWhitelist: []string{"10.0.0.0/8"}, TrustedProxyIPs: []string{"127.0.0.1", "::1"}}
	h, key := newHandlerProxy(t, pol)
	auth := []string{"Authorization", "Bearer " + key}
	const attacker = "203.0.113.9"
	attacks := [][]string{
		{"X-Forwarded-For", attacker, "X-Real-IP", "10.0.0.5"},
		{"X-Forwarded-For", "10.0.0.5, " + attacker},
		{"X-Forwarded-For", "10.0.0.5", "X-Forwarded-For", attacker},
		{"X-Forwarded-For", attacker + ", 127.0.0.1"},
		{"X-Forwarded-For", "10.0.0.5, " + attacker, "X-Real-IP", "10.0.0.5", "X-Forwarded-Host", "10.0.0.5"},
		{"X-Real-IP", "10.0.0.5"},
		{"X-Real-IP", "10.0.0.5", "X-Forwarded-For", "[::ffff:10.0.0.5]:80, " + attacker},
		{"X-Forwarded-For", "10.0.0.5, garbage"},
		{"X-Forwarded-For", "10.0.0.5, "},
	}
	for _, peer := range []string{"127.0.0.1:40000", "[::1]:40000", "[::ffff:127.0.0.1]:40000"} {
		for i, a := range attacks {
			if w := h.get("/v1/models", peer, append(a, auth...)...); w.Code != http.StatusForbidden {
				t.Errorf("peer %s attack %d %v: %d, want 403", peer, i, a, w.Code)
			}
		}
	}
	// Not a trusted proxy: whatever it sends, it is the client.
	if w := h.get("/v1/models", "198.51.100.7:1", append([]string{"X-Forwarded-For", "10.0.0.5", "X-Real-IP", "10.0.0.5"}, auth...)...); w.Code != http.StatusForbidden {
		t.Errorf("untrusted peer with forged headers: %d", w.Code)
	}
	// The real client behind the proxy still gets in.
	if w := h.get("/v1/models", "127.0.0.1:40000", append([]string{"X-Forwarded-For", "192.168.1.9, 10.1.2.3", "X-Real-IP", attacker}, auth...)...); w.Code != http.StatusOK {
		t.Errorf("allowed client via the trusted proxy: %d %s", w.Code, w.Body)
	}
}

// The same attack over a real socket, the way the issue reproduced it.
func TestAttackForgedXRealIPOverLoopback(t *testing.T) {
	src, key := newMemSource(t)
	src.policy = policy.Policy{IPWhitelist: []string{"10.0.0.0/8"}, TrustedProxyIPs: []string{"127.0.0.1", "::1"}}
	p := startProxy(t, src, key)
	r := p.do(t, "GET", "/v1/models", "", append(p.auth(), "X-Forwarded-For", "203.0.113.9", "X-Real-IP", "10.0.0.5")...)
	if r.status != http.StatusForbidden || envelopeOf(t, r) != "ip_not_allowed" {
		t.Fatalf("forged X-Real-IP: %d %s", r.status, r.body)
	}
}

// When the policy names X-Real-IP as the proxy's header, that header is
// the client and X-Forwarded-For cannot override it.
func TestRealIPHeaderWhenNamed(t *testing.T) {
	pol := policy.Policy{IPWhitelist: []string{"10.0.0.0/8"}, TrustedProxyIPs: []string{"127.0.0.1"}, ClientIPHeader: policy.HeaderXRealIP}
	h, key := newHandlerProxy(t, pol)
	auth := []string{"Authorization", "Bearer " + key}
	if w := h.get("/v1/models", "127.0.0.1:1", append([]string{"X-Real-IP", "10.0.0.5", "X-Forwarded-For", "203.0.113.9"}, auth...)...); w.Code != http.StatusOK {
		t.Fatalf("client named by X-Real-IP: %d", w.Code)
	}
	for _, a := range [][]string{
		{"X-Real-IP", "203.0.113.9", "X-Forwarded-For", "10.0.0.5"},
		{"X-Forwarded-For", "10.0.0.5"},
		{"X-Real-IP", "203.0.113.9", "X-Real-IP", "10.0.0.5"},
	} {
		if w := h.get("/v1/models", "127.0.0.1:1", append(a, auth...)...); w.Code != http.StatusForbidden {
			t.Errorf("%v: %d, want 403", a, w.Code)
		}
	}
}

// Rotating forged headers must not give an attacker a fresh per-IP bucket
// on every request: the bucket is the address the trusted proxy saw.
func TestAttackRotatingHeadersDoNotResetIPLimit(t *testing.T) {
	pol := trustingPolicy()
	pol.IPRateLimit = &policy.RateLimit{RPM: 60, Burst: 2}
	h, key := newHandlerProxy(t, pol)
	refused := 0
	for i := range 10 {
		forged := fmt.Sprintf("198.51.100.%d", i+1)
		w := h.get("/v1/models", "127.0.0.1:40000", "Authorization", "Bearer "+key,
			"X-Real-IP", forged, "X-Forwarded-For", forged+", 203.0.113.9")
		if w.Code == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused != 8 {
		t.Fatalf("%d of 10 requests refused, want 8 (burst 2): rotating headers reset the bucket", refused)
	}
	// IPv6: one /64 is one bucket, whatever address in it is claimed.
	h, key = newHandlerProxy(t, pol)
	refused = 0
	for i := range 6 {
		w := h.get("/v1/models", fmt.Sprintf("[2001:db8::%x]:1", i+1), "Authorization", "Bearer "+key)
		if w.Code == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused != 4 {
		t.Fatalf("%d of 6 requests from one /64 refused, want 4", refused)
	}
}

// /metrics is open to loopback clients only. A request through the trusted
// proxy that claims to come from loopback is not.
func TestAttackForgedLoopbackOpensMetrics(t *testing.T) {
	pol := policy.Policy{TrustedProxyIPs: []string{"127.0.0.1"}}
	h, key := newHandlerProxy(t, pol)
	cases := []struct {
		peer string
		hdr  []string
		want int
	}{
		{"127.0.0.1:1234", []string{"X-Real-IP", "127.0.0.1", "X-Forwarded-For", "203.0.113.9"}, 401}, // the hole this fixes
		{"127.0.0.1:1234", []string{"X-Real-IP", "::1"}, 401},
		{"127.0.0.1:1234", []string{"X-Forwarded-For", "127.0.0.1"}, 401},        // every hop trusted: unknown, not loopback
		{"127.0.0.1:1234", []string{"X-Forwarded-For", "::1, 203.0.113.9"}, 401}, // forged left part
		{"127.0.0.1:1234", []string{"X-Forwarded-For", "::ffff:127.0.0.1"}, 401}, // mapped loopback is trusted, so skipped
		{"127.0.0.1:1234", nil, 401},                                             // via the trusted proxy without a client header
		{"127.0.0.1:1234", []string{"X-Forwarded-For", "garbage"}, 401},          // malformed chain
		{"127.0.0.1:1234", []string{"X-Forwarded-For", "203.0.113.9, "}, 401},    // empty last hop
		{"127.0.0.1:1234", []string{"X-Forwarded-For", "203.0.113.9"}, 401},      // a real remote client
		{"[::1]:1234", []string{"X-Forwarded-For", "203.0.113.9"}, 200},          // loopback, not a trusted proxy: headers ignored
		{"192.0.2.7:1234", []string{"X-Real-IP", "127.0.0.1"}, 401},              // untrusted peer
		{"192.0.2.7:1234", []string{"Authorization", "Bearer " + key}, 200},      // a key opens it
		{"127.0.0.1:1234", []string{"X-Forwarded-For", "203.0.113.9", "Authorization", "Bearer " + key}, 200},
	}
	for i, c := range cases {
		if w := h.get("/metrics", c.peer, c.hdr...); w.Code != c.want {
			t.Errorf("case %d (%s %v): %d, want %d", i, c.peer, c.hdr, w.Code, c.want)
		}
	}
	// With the policy naming X-Real-IP, a client the proxy reports as
	// loopback is unknown, as in X-Forwarded-For: the proxy's loopback is
	// not FLM's, and a proxy passing X-Real-IP through lets anyone claim it.
	pol.ClientIPHeader = policy.HeaderXRealIP
	h, _ = newHandlerProxy(t, pol)
	if w := h.get("/metrics", "127.0.0.1:1234", "X-Real-IP", "127.0.0.1"); w.Code != 401 {
		t.Errorf("loopback client named by the proxy's X-Real-IP: %d, want 401", w.Code)
	}
}

// A request refused because its proxy named no valid client is the one an
// operator most needs to see: the access log shows the socket peer, and
// the audit row says where it came from.
func TestRefusedUnknownClientIsIdentifiable(t *testing.T) {
	var buf syncBuffer
	audit := &memAudit{}
	pol := policy.Policy{IPWhitelist: []string{"10.0.0.0/8"}, TrustedProxyIPs: []string{"127.0.0.1"}}
	h, _ := newHandlerProxy(t, pol, func(o *Options) { o.AccessLog = &buf; o.Audit = audit })
	if w := h.get("/v1/models", "127.0.0.1:1234", "X-Forwarded-For", "not-an-ip"); w.Code != http.StatusForbidden {
		t.Fatalf("unknown client: %d", w.Code)
	}
	if w := h.get("/v1/models", "198.51.100.7:1", "X-Forwarded-For", "10.0.0.5"); w.Code != http.StatusForbidden {
		t.Fatalf("untrusted peer: %d", w.Code)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("access log %q", lines)
	}
	var l0, l1 struct {
		IP, Peer, Route string
		Status          int
	}
	if json.Unmarshal([]byte(lines[0]), &l0) != nil || json.Unmarshal([]byte(lines[1]), &l1) != nil {
		t.Fatalf("access log not JSON: %q", lines)
	}
	if l0.IP != "" || l0.Peer != "127.0.0.1" || l0.Status != 403 || l0.Route != "models" {
		t.Fatalf("refused unknown client logged as %s", lines[0])
	}
	if l1.IP != "198.51.100.7" || l1.Peer != "198.51.100.7" {
		t.Fatalf("untrusted peer logged as %s", lines[1])
	}
	h.srv.audit.safeFlush(context.Background())
	evs := audit.all()
	found := false
	for _, e := range evs {
		if e.Type == "ip_blocked" && e.IP == "" && strings.Contains(e.Detail, "127.0.0.1") {
			found = true
		}
		if e.IP == "invalid IP" {
			t.Fatalf("audit row with a meaningless ip: %+v", e)
		}
	}
	if !found {
		t.Fatalf("audit rows %+v do not name the proxy of the unknown client", evs)
	}
}
