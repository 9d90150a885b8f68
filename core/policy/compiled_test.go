package policy

import (
	"fmt"
	"net/netip"
	"testing"
)

func mustCompile(t testing.TB, doc string) *Compiled {
	t.Helper()
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse(%s): %v", doc, err)
	}
	return p.Compile()
}

func TestAllowsIP(t *testing.T) {
	const restricted = `{"ip_whitelist":["10.0.0.0/8","192.168.1.7/24","203.0.113.5","2001:db8::/32","::1","fe80::/10","::ffff:198.51.100.0/120","::ffff:100.64.0.1"]}`
	for _, tc := range []struct {
		name string
		doc  string
		addr string // "" = the zero netip.Addr
		want bool
	}{
		{"empty list allows v4", DefaultDocument, "8.8.8.8", true},
		{"empty list allows v6", `{}`, "2001:4860::8888", true},
		{"empty list allows zero addr", `{}`, "", true},
		{"v4 in CIDR", restricted, "10.1.2.3", true},
		{"v4 CIDR edge", restricted, "10.255.255.255", true},
		{"v4 outside", restricted, "11.0.0.1", false},
		{"host bits masked", restricted, "192.168.1.200", true},
		{"host bits masked outside", restricted, "192.168.2.7", false},
		{"single v4", restricted, "203.0.113.5", true},
		{"single v4 neighbour", restricted, "203.0.113.6", false},
		{"4in6 client matches v4 entry", restricted, "::ffff:10.1.2.3", true},
		{"4in6 client outside", restricted, "::ffff:11.1.2.3", false},
		{"4in6 entry prefix matches v4 client", restricted, "198.51.100.77", true},
		{"4in6 entry addr matches v4 client", restricted, "100.64.0.1", true},
		{"v6 in CIDR", restricted, "2001:db8:1::42", true},
		{"v6 outside", restricted, "2001:db9::1", false},
		{"v6 loopback", restricted, "::1", true},
		{"v6 neighbour of loopback", restricted, "::2", false},
		{"zoned link-local client", restricted, "fe80::1%eth0", true},
		{"v4 never matches v6 entries", `{"ip_whitelist":["::/0"]}`, "10.0.0.1", false},
		{"v6 never matches v4 entries", `{"ip_whitelist":["0.0.0.0/0"]}`, "2001:db8::1", false},
		{"all v4", `{"ip_whitelist":["0.0.0.0/0"]}`, "1.2.3.4", true},
		{"zero addr denied", restricted, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a netip.Addr
			if tc.addr != "" {
				a = netip.MustParseAddr(tc.addr)
			}
			if got := mustCompile(t, tc.doc).AllowsIP(a); got != tc.want {
				t.Errorf("AllowsIP(%v) = %v, want %v", a, got, tc.want)
			}
		})
	}
}

func TestAllowsIPManyEntries(t *testing.T) {
	p := Policy{}
	for i := range 9999 {
		p.IPWhitelist = append(p.IPWhitelist, fmt.Sprintf("10.%d.%d.0/%d", i/256, i%256, 24+i%9))
	}
	p.IPWhitelist = append(p.IPWhitelist, "2001:db8::/48")
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	c := p.Compile()
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.0.0.1", true},    // 10.0.0.0/24
		{"10.39.14.0", true},  // i=9998: 10.39.14.0/26
		{"10.39.15.0", false}, // beyond the last entry
		{"10.0.1.200", false}, // 10.0.1.0/25
		{"10.0.1.100", true},
		{"2001:db8:1::1", false},
		{"2001:db8::1", true},
	} {
		if got := c.AllowsIP(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("AllowsIP(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestHandBuiltBadEntriesFailClosed(t *testing.T) {
	c := Policy{
		IPWhitelist:     []string{"not an ip"},
		TrustedProxyIPs: []string{"also not"},
		CORS:            CORS{AllowedOrigins: []string{"https://a.example/"}},
		RateLimit:       rl(-1, 0),
	}.Compile()
	if c.AllowsIP(netip.MustParseAddr("10.0.0.1")) {
		t.Error("a whitelist of unparsable entries allowed a client")
	}
	if c.IsTrustedProxy(netip.MustParseAddr("10.0.0.1")) {
		t.Error("an unparsable trusted proxy entry matched")
	}
	if c.AllowsOrigin("https://a.example") {
		t.Error("an unparsable origin entry matched")
	}
	if _, on := c.KeyLimit(); on {
		t.Error("a negative rpm turned a limit on")
	}
}

func TestIsTrustedProxy(t *testing.T) {
	c := mustCompile(t, `{"trusted_proxy_ips":["127.0.0.1","10.0.0.0/8","fd00::/8"]}`)
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", true},
		{"::ffff:127.0.0.1", true},
		{"127.0.0.2", false},
		{"10.9.9.9", true},
		{"fd12::1", true},
		{"fe80::1", false},
	} {
		if got := c.IsTrustedProxy(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("IsTrustedProxy(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	none := mustCompile(t, DefaultDocument)
	if none.IsTrustedProxy(netip.MustParseAddr("127.0.0.1")) {
		t.Error("no trusted_proxy_ips, yet 127.0.0.1 is trusted")
	}
	if none.IsTrustedProxy(netip.Addr{}) {
		t.Error("zero address trusted")
	}
}

// X-Real-IP is believed only when the policy names it; anything else,
// including a hand-built spelling Parse would have canonicalised, leaves
// X-Forwarded-For in charge.
func TestRealIPHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Policy
		want bool
	}{
		{"absent", Policy{TrustedProxyIPs: []string{"127.0.0.1"}}, false},
		{"X-Forwarded-For", Policy{TrustedProxyIPs: []string{"127.0.0.1"}, ClientIPHeader: HeaderXForwardedFor}, false},
		{"X-Real-IP", Policy{TrustedProxyIPs: []string{"127.0.0.1"}, ClientIPHeader: HeaderXRealIP}, true},
		{"hand-built lower case", Policy{TrustedProxyIPs: []string{"127.0.0.1"}, ClientIPHeader: "x-real-ip"}, false},
	} {
		if got := tc.p.Compile().RealIPHeader(); got != tc.want {
			t.Errorf("%s: RealIPHeader() = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !mustCompile(t, `{"trusted_proxy_ips":["10.0.0.1"],"client_ip_header":"x-real-ip"}`).RealIPHeader() {
		t.Error(`parsed "x-real-ip": RealIPHeader() = false`)
	}
	var nilC *Compiled
	if nilC.RealIPHeader() {
		t.Error("nil *Compiled believes X-Real-IP")
	}
}

func TestAllowsOrigin(t *testing.T) {
	const list = `{"cors":{"allowed_origins":["https://a.example","http://localhost:5173","HTTPS://B.Example:443","http://[::1]:8080"]}}`
	for _, tc := range []struct {
		name   string
		doc    string
		origin string
		want   bool
	}{
		{"exact", list, "https://a.example", true},
		{"exact with port", list, "http://localhost:5173", true},
		{"normalized entry", list, "https://b.example", true},
		{"case-insensitive request", list, "HTTPS://A.EXAMPLE", true},
		{"default port in request", list, "https://a.example:443", true},
		{"IPv6", list, "http://[::1]:8080", true},
		{"IPv6 long form", list, "http://[0::1]:8080", true},
		{"other scheme", list, "http://a.example", false},
		{"other port", list, "http://localhost:5174", false},
		{"missing port", list, "http://localhost", false},
		{"suffix attack", list, "https://a.example.evil.test", false},
		{"prefix attack", list, "https://evil-a.example", false},
		{"with path", list, "https://a.example/", false},
		{"null origin", list, "null", false},
		{"empty", list, "", false},
		{"garbage", list, "%%%", false},
		{"too long", list, "https://a.example" + string(make([]byte, maxOriginLen)), false},
		{"no origins", DefaultDocument, "https://a.example", false},
		{"wildcard", `{"cors":{"allowed_origins":["*"]}}`, "https://anything.example:1234", true},
		{"wildcard null", `{"cors":{"allowed_origins":["https://a.example","*"]}}`, "null", true},
		{"wildcard empty", `{"cors":{"allowed_origins":["*"]}}`, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustCompile(t, tc.doc).AllowsOrigin(tc.origin); got != tc.want {
				t.Errorf("AllowsOrigin(%q) = %v, want %v", tc.origin, got, tc.want)
			}
		})
	}
	if mustCompile(t, list).AllowsAnyOrigin() {
		t.Error("AllowsAnyOrigin without *")
	}
	if !mustCompile(t, `{"cors":{"allowed_origins":["*"]}}`).AllowsAnyOrigin() {
		t.Error("AllowsAnyOrigin false with *")
	}
}

func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		name          string
		doc           string
		key, ip       RateLimit
		keyOn, ipOn   bool
		keyBurst, ipB int
	}{
		{name: "none", doc: DefaultDocument},
		{name: "rpm zero is off", doc: `{"rate_limit":{"rpm":0,"burst":5},"ip_rate_limit":{"rpm":0}}`},
		{name: "both", doc: `{"rate_limit":{"rpm":60},"ip_rate_limit":{"rpm":600,"burst":50}}`,
			key: RateLimit{RPM: 60}, keyOn: true, keyBurst: 60, ip: RateLimit{RPM: 600, Burst: 50}, ipOn: true, ipB: 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustCompile(t, tc.doc)
			key, keyOn := c.KeyLimit()
			ip, ipOn := c.IPLimit()
			if key != tc.key || keyOn != tc.keyOn || ip != tc.ip || ipOn != tc.ipOn {
				t.Fatalf("KeyLimit = %+v %v, IPLimit = %+v %v; want %+v %v, %+v %v", key, keyOn, ip, ipOn, tc.key, tc.keyOn, tc.ip, tc.ipOn)
			}
			if keyOn && key.EffectiveBurst() != tc.keyBurst || ipOn && ip.EffectiveBurst() != tc.ipB {
				t.Fatalf("bursts = %d, %d; want %d, %d", key.EffectiveBurst(), ip.EffectiveBurst(), tc.keyBurst, tc.ipB)
			}
		})
	}
}

func TestCompileIsACopy(t *testing.T) {
	p, err := Parse([]byte(`{"ip_whitelist":["10.0.0.1"],"cors":{"allowed_origins":["https://a.example"]},"rate_limit":{"rpm":5}}`))
	if err != nil {
		t.Fatal(err)
	}
	c := p.Compile()
	p.IPWhitelist[0] = "10.0.0.2"
	p.CORS.AllowedOrigins[0] = "https://b.example"
	p.RateLimit.RPM = 0
	if !c.AllowsIP(netip.MustParseAddr("10.0.0.1")) || !c.AllowsOrigin("https://a.example") {
		t.Error("mutating the Policy changed the Compiled")
	}
	if r, on := c.KeyLimit(); !on || r.RPM != 5 {
		t.Error("mutating the Policy changed the compiled limit")
	}
}

func TestNilCompiledFailsClosed(t *testing.T) {
	var c *Compiled
	a := netip.MustParseAddr("127.0.0.1")
	if c.AllowsIP(a) || c.IsTrustedProxy(a) || c.AllowsOrigin("https://a.example") || c.AllowsAnyOrigin() {
		t.Error("nil *Compiled allowed something")
	}
	if _, on := c.KeyLimit(); on {
		t.Error("nil KeyLimit on")
	}
	if _, on := c.IPLimit(); on {
		t.Error("nil IPLimit on")
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	c := mustCompile(t, `{"ip_whitelist":["10.0.0.0/8","2001:db8::/32","192.168.0.1"],"trusted_proxy_ips":["127.0.0.1"],"cors":{"allowed_origins":["https://a.example"]},"rate_limit":{"rpm":60}}`)
	v4, v6, mapped := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:10.1.2.3")
	allocs := testing.AllocsPerRun(100, func() {
		_ = c.AllowsIP(v4)
		_ = c.AllowsIP(v6)
		_ = c.AllowsIP(mapped)
		_ = c.IsTrustedProxy(v4)
		_ = c.AllowsOrigin("https://a.example")
		_, _ = c.KeyLimit()
		_, _ = c.IPLimit()
	})
	if allocs != 0 {
		t.Fatalf("hot path allocates %v times per request", allocs)
	}
}

func BenchmarkAllowsIP(b *testing.B) {
	p := Policy{}
	for i := range 10000 {
		p.IPWhitelist = append(p.IPWhitelist, fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))
	}
	c := p.Compile()
	a := netip.MustParseAddr("::ffff:10.39.15.9")
	for b.Loop() {
		if !c.AllowsIP(a) {
			b.Fatal("denied")
		}
	}
}

func BenchmarkAllowsOrigin(b *testing.B) {
	c := mustCompile(b, `{"cors":{"allowed_origins":["https://a.example","http://localhost:5173"]}}`)
	for b.Loop() {
		if !c.AllowsOrigin("http://localhost:5173") {
			b.Fatal("denied")
		}
	}
}
