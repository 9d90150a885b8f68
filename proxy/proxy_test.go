package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/apikey/apikeytest"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/proxyctl"
)

// memSource is a Source over in-memory stores and a fixed engine list.
type memSource struct {
	mu      sync.Mutex
	keys    *apikey.Service
	policy  policy.Policy
	eps     []engine.Endpoint
	states  []engine.State
	models  []engine.Model
	engines int // Engines calls
}

func newMemSource(t testing.TB) (*memSource, apikey.Issued) {
	t.Helper()
	s := &memSource{keys: &apikey.Service{Store: apikeytest.NewMemStore()}, policy: policy.Default()}
	k, err := s.keys.Create(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

func (s *memSource) Keys(ctx context.Context) ([]apikey.Record, error) { return s.keys.List(ctx) }

func (s *memSource) Policy(context.Context) (policy.Policy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.policy, nil
}

func (s *memSource) Engines(context.Context) ([]engine.Endpoint, []engine.State, []engine.Model, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.engines++
	return s.eps, s.states, s.models, nil
}

func (s *memSource) setPolicy(t testing.TB, doc string) {
	t.Helper()
	p, err := policy.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.policy = p
	s.mu.Unlock()
}

// kindHabits are the habits the drivers declare (engine-*/…go, Habits);
// the Source fills them from the drivers, so a test source does too.
var kindHabits = map[engine.Kind]engine.Habits{
	engine.Ollama:   {HonoursIncludeUsage: true, LatestTagAlias: true, NativeMessages: true, NativeResponses: true},
	engine.VLLM:     {MultipleChoices: true, HonoursIncludeUsage: true},
	engine.LMStudio: {HonoursIncludeUsage: true},
	engine.LlamaCPP: {ClosesAfterStream: true, HonoursIncludeUsage: true, NativeMessages: true},
}

// addEngine registers a running engine at url serving models, with its
// kind's habits.
func (s *memSource) addEngine(id string, kind engine.Kind, url string, models ...string) {
	s.addEngineWith(id, kind, kindHabits[kind], url, models...)
}

func (s *memSource) addEngineWith(id string, kind engine.Kind, habits engine.Habits, url string, models ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eps = append(s.eps, engine.Endpoint{ID: id, Kind: kind, BaseURL: url})
	s.states = append(s.states, engine.State{ID: id, Kind: kind, BaseURL: url, Status: engine.Status{State: engine.RunningHealthy}, Habits: habits})
	for _, m := range models {
		s.models = append(s.models, engine.Model{ID: engine.ModelID(id, m), EngineID: id, EngineKind: kind, Name: m})
	}
}

type testProxy struct {
	srv *Server
	url string
	src *memSource
	key apikey.Issued
}

// startProxy runs a real proxy on a loopback port.
func startProxy(t testing.TB, src *memSource, key apikey.Issued, mutate ...func(*Options)) *testProxy {
	t.Helper()
	cfg := testConfig()
	cfg.Port = freePort(t)
	opts := Options{Config: cfg, Source: src}
	for _, m := range mutate {
		m(&opts)
	}
	srv, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	lns, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(lns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return &testProxy{srv: srv, url: "http://" + lns[0].Addr().String(), src: src, key: key}
}

func testConfig() proxyctl.Config {
	return proxyctl.Config{Mode: proxyctl.LocalHTTP, Port: 8080, Bind: "127.0.0.1", Egress: proxyctl.Egress{Mode: proxyctl.EgressDirect}}
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

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (p *testProxy) do(t *testing.T, method, path, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, p.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

func (p *testProxy) auth() []string { return []string{"Authorization", "Bearer " + p.key.Plain} }

// envelopeOf checks OpenAI's error shape plus request_id and returns code.
func envelopeOf(t *testing.T, r reply) string {
	t.Helper()
	var e struct {
		Error struct {
			Message   string  `json:"message"`
			Type      string  `json:"type"`
			Param     *string `json:"param"`
			Code      string  `json:"code"`
			RequestID string  `json:"request_id"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" || e.Error.Code == "" {
		t.Fatalf("status %d body is not the error envelope: %s", r.status, r.body)
	}
	if e.Error.RequestID == "" || e.Error.RequestID != r.header.Get("X-Request-Id") {
		t.Fatalf("request_id %q does not match X-Request-Id %q", e.Error.RequestID, r.header.Get("X-Request-Id"))
	}
	if !bytes.Contains(r.body, []byte(`"param":`)) {
		t.Fatalf("envelope lacks param: %s", r.body)
	}
	return e.Error.Code
}

func TestHealthAndDenyByDefault(t *testing.T) {
	src, key := newMemSource(t)
	p := startProxy(t, src, key)
	if r := p.do(t, "GET", "/health", ""); r.status != 200 || string(r.body) != `{"status":"ok"}`+"\n" && string(r.body) != `{"status":"ok"}` {
		t.Fatalf("health = %d %s", r.status, r.body)
	}
	for _, path := range []string{"/api/pull", "/api/delete", "/api/create", "/v1/../api/pull", "/v1/%2e%2e/api/pull", "/v1%2F..%2Fapi/pull", "/props", "/slots", "/v1/models/../../api/pull", "/"} {
		for _, withKey := range []bool{false, true} {
			var hdr []string
			if withKey {
				hdr = p.auth()
			}
			r := p.do(t, "POST", path, `{"name":"evil"}`, hdr...)
			if strings.HasPrefix(path, "/api/") { // Ollama's error shape (family_ollama_test.go)
				if r.status != 404 || !bytes.HasPrefix(r.body, []byte(`{"error":"no such endpoint`)) {
					t.Fatalf("POST %s (key %v) = %d %s", path, withKey, r.status, r.body)
				}
				continue
			}
			if r.status != 404 || envelopeOf(t, r) != "not_found" {
				t.Fatalf("POST %s (key %v) = %d %s", path, withKey, r.status, r.body)
			}
		}
	}
	if r := p.do(t, "DELETE", "/v1/models", "", p.auth()...); r.status != 405 {
		t.Fatalf("DELETE /v1/models = %d", r.status)
	}
}

func TestAuth(t *testing.T) {
	src, key := newMemSource(t)
	p := startProxy(t, src, key)
	last := key.Plain[len(key.Plain)-1]
	changed := key.Plain[:len(key.Plain)-1] + string("ab"[map[bool]int{true: 1}[last == 'a']])
	bad := [][]string{
		nil,
		{"Authorization", "Bearer"},
		{"Authorization", "Bearer garbage"},
		{"Authorization", "Basic " + key.Plain},
		{"Authorization", "Bearer " + changed},
		{"Authorization", "Bearer " + strings.Repeat("x", 100_000)},
		{"x-api-key", changed},
	}
	for i, h := range bad {
		r := p.do(t, "GET", "/v1/models", "", h...)
		if r.status != 401 && !(i == 5 && r.status == 431) {
			t.Fatalf("case %d: status %d %s", i, r.status, r.body)
		}
		if r.status == 401 {
			if envelopeOf(t, r) != "invalid_api_key" || r.header.Get("Www-Authenticate") == "" {
				t.Fatalf("case %d: %s", i, r.body)
			}
			if bytes.Contains(r.body, []byte(key.Plain[4:])) {
				t.Fatal("error body echoes a key")
			}
		}
	}
	if r := p.do(t, "GET", "/v1/models", "", p.auth()...); r.status != 200 {
		t.Fatalf("valid key: %d %s", r.status, r.body)
	}
	if r := p.do(t, "GET", "/v1/models", "", "x-api-key", key.Plain); r.status != 200 {
		t.Fatalf("x-api-key: %d", r.status)
	}
	// Revocation reaches the running proxy on reload.
	if _, err := src.keys.Revoke(context.Background(), key.ID); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := p.do(t, "GET", "/v1/models", "", p.auth()...); r.status != 401 {
		t.Fatalf("revoked key: %d", r.status)
	}
}

func TestCORS(t *testing.T) {
	src, key := newMemSource(t)
	src.setPolicy(t, `{"cors":{"allowed_origins":["https://app.example"]}}`)
	p := startProxy(t, src, key)
	// A browser preflight is answered before auth.
	r := p.do(t, "OPTIONS", "/v1/chat/completions", "", "Origin", "https://app.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, content-type, x-stainless-os")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "authorization") || !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight = %d %v", r.status, r.header)
	}
	r = p.do(t, "OPTIONS", "/v1/chat/completions", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if r.status != 403 || r.header.Get("Access-Control-Allow-Origin") != "" || envelopeOf(t, r) != "origin_not_allowed" {
		t.Fatalf("preflight from a foreign origin = %d %v", r.status, r.header)
	}
	r = p.do(t, "GET", "/v1/models", "", append(p.auth(), "Origin", "https://app.example")...)
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
		t.Fatalf("actual request = %d %v", r.status, r.header)
	}
	if r := p.do(t, "GET", "/v1/models", "", append(p.auth(), "Origin", "https://evil.example")...); r.status != 403 {
		t.Fatalf("request from a foreign origin = %d", r.status)
	}
}

func TestIPAllowlistAndSpoofing(t *testing.T) {
	src, key := newMemSource(t)
	src.setPolicy(t, `{"ip_whitelist":["10.0.0.0/8"]}`)
	p := startProxy(t, src, key)
	r := p.do(t, "GET", "/v1/models", "", append(p.auth(), "X-Forwarded-For", "10.1.2.3", "X-Real-IP", "10.1.2.3")...)
	if r.status != 403 || envelopeOf(t, r) != "ip_not_allowed" {
		t.Fatalf("spoofed XFF from an untrusted peer = %d %s", r.status, r.body)
	}
	if r := p.do(t, "GET", "/health", ""); r.status != 200 {
		t.Fatalf("/health must stay reachable: %d", r.status)
	}
	// Behind a trusted proxy (here: loopback), the forwarded client counts.
	src.setPolicy(t, `{"ip_whitelist":["10.0.0.0/8"],"trusted_proxy_ips":["127.0.0.1","::1"]}`)
	_ = p.srv.Reload(context.Background())
	if r := p.do(t, "GET", "/v1/models", "", append(p.auth(), "X-Forwarded-For", "192.168.1.9, 10.1.2.3")...); r.status != 200 {
		t.Fatalf("allowed client via trusted proxy = %d %s", r.status, r.body)
	}
	if r := p.do(t, "GET", "/v1/models", "", append(p.auth(), "X-Forwarded-For", "10.1.2.3, 192.168.1.9")...); r.status != 403 {
		t.Fatalf("right-most untrusted hop must decide: %d", r.status)
	}
	if r := p.do(t, "GET", "/v1/models", "", append(p.auth(), "X-Forwarded-For", "garbage")...); r.status != 403 {
		t.Fatalf("malformed XFF is an unknown client, never the (loopback) proxy: %d", r.status)
	}
	if r := p.do(t, "GET", "/v1/models", "", append(p.auth(), "X-Forwarded-For", "203.0.113.9", "X-Real-IP", "10.1.2.3")...); r.status != 403 {
		t.Fatalf("X-Real-IP is not believed unless the policy names it: %d", r.status)
	}
	src.setPolicy(t, `{"ip_whitelist":["::1","127.0.0.0/8"]}`)
	_ = p.srv.Reload(context.Background())
	if r := p.do(t, "GET", "/v1/models", "", p.auth()...); r.status != 200 {
		t.Fatalf("loopback allowed: %d", r.status)
	}
}

func TestHostCheck(t *testing.T) {
	src, key := newMemSource(t)
	p := startProxy(t, src, key)
	for _, host := range []string{"evil.example", "evil.example:8080", "127.0.0.1.nip.io", "10.0.0.1"} {
		if r := p.do(t, "GET", "/v1/models", "", append(p.auth(), "Host", host)...); r.status != 403 || envelopeOf(t, r) != "host_not_allowed" {
			t.Fatalf("Host %s = %d", host, r.status)
		}
	}
	for _, host := range []string{"localhost", "localhost:1234", "127.0.0.1", "[::1]:80"} {
		if r := p.do(t, "GET", "/v1/models", "", append(p.auth(), "Host", host)...); r.status != 200 {
			t.Fatalf("Host %s = %d", host, r.status)
		}
	}
}

// In https-acme mode on loopback (a local tunnel), the certified domain is
// the proxy's own name; any other name is still a rebinding page.
func TestHostCheckACMEDomain(t *testing.T) {
	src, key := newMemSource(t)
	cfg := testConfig()
	cfg.Mode, cfg.ACMEDomain = proxyctl.HTTPSACME, "llm.example.net"
	srv, err := New(context.Background(), Options{Config: cfg, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]int{
		"llm.example.net": 200, "LLM.Example.NET:8081": 200, "llm.example.net.": 200, "localhost": 200,
		"evil.example": 403, "llm.example.net.evil.example": 403, "xllm.example.net": 403, "sub.llm.example.net": 403,
	} {
		req := httptest.NewRequest("GET", "/v1/models", nil)
		req.Host, req.RemoteAddr = host, "127.0.0.1:40000"
		req.Header.Set("Authorization", "Bearer "+key.Plain)
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %s = %d; want %d", host, rec.Code, want)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	src, key := newMemSource(t)
	p := startProxy(t, src, key, func(o *Options) { o.BodyLimit = 1 << 20 })
	big := `{"model":"x","messages":[{"role":"user","content":"` + strings.Repeat("a", 1<<20) + `"}]}`
	r := p.do(t, "POST", "/v1/chat/completions", big, append(p.auth(), "Content-Type", "application/json")...)
	if r.status != 413 || envelopeOf(t, r) != "payload_too_large" {
		t.Fatalf("oversize = %d %s", r.status, r.body)
	}
	// Chunked (no Content-Length) is cut while reading.
	req, _ := http.NewRequest("POST", p.url+"/v1/chat/completions", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+key.Plain)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("chunked oversize = %d", resp.StatusCode)
	}
}

func TestRateLimits(t *testing.T) {
	src, key := newMemSource(t)
	src.setPolicy(t, `{"rate_limit":{"rpm":60,"burst":2}}`)
	p := startProxy(t, src, key)
	for i := range 2 {
		r := p.do(t, "GET", "/v1/models", "", p.auth()...)
		if r.status != 200 || r.header.Get("X-RateLimit-Limit") != "2" || r.header.Get("X-RateLimit-Remaining") != []string{"1", "0"}[i] {
			t.Fatalf("request %d: %d %v", i, r.status, r.header)
		}
	}
	r := p.do(t, "GET", "/v1/models", "", p.auth()...)
	if r.status != 429 || envelopeOf(t, r) != "rate_limit_exceeded" || !rateHeaders(r, "2") {
		t.Fatalf("over the key limit: %d %v %s", r.status, r.header, r.body)
	}
	// The per-IP bucket refuses before any key is checked; its 429 carries
	// the same headers (PRODUCT.md §6: every 429), describing the IP's
	// bucket, also when a key limit is set.
	src.setPolicy(t, `{"ip_rate_limit":{"rpm":60,"burst":1},"rate_limit":{"rpm":6000,"burst":50}}`)
	_ = p.srv.Reload(context.Background())
	p.do(t, "GET", "/v1/models", "", p.auth()...)
	for _, hdr := range [][]string{p.auth(), nil} {
		r := p.do(t, "GET", "/v1/models", "", hdr...)
		if r.status != 429 || envelopeOf(t, r) != "rate_limit_exceeded" || !rateHeaders(r, "1") {
			t.Fatalf("over the ip limit: %d %v", r.status, r.header)
		}
	}
}

// rateHeaders checks a 429's Retry-After and X-RateLimit-* headers: the
// bucket's size, nothing left, and a reset in whole seconds.
func rateHeaders(r reply, limit string) bool {
	reset, err := strconv.Atoi(r.header.Get("X-RateLimit-Reset"))
	retry, err2 := strconv.Atoi(r.header.Get("Retry-After"))
	return err == nil && err2 == nil && reset >= 1 && retry >= 1 &&
		r.header.Get("X-RateLimit-Limit") == limit && r.header.Get("X-RateLimit-Remaining") == "0"
}

func TestHostileHeaders(t *testing.T) {
	src, key := newMemSource(t)
	p := startProxy(t, src, key)
	// 10,000 headers: refused by the header size limit.
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	b.WriteString("GET /v1/models HTTP/1.1\r\nHost: localhost\r\n")
	for i := range 10_000 {
		b.WriteString("X-H" + strings.Repeat("a", i%7) + ": v\r\n")
	}
	b.WriteString("\r\n")
	_, _ = conn.Write([]byte(b.String()))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := io.ReadAll(io.LimitReader(conn, 64))
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 431")) {
		t.Fatalf("10,000 headers answered %q", line)
	}
	// CRLF in a header value cannot be sent by a conforming client; on the
	// wire the server refuses it.
	conn2, _ := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	defer conn2.Close()
	_, _ = conn2.Write([]byte("GET /v1/models HTTP/1.1\r\nHost: localhost\r\nX-A: a\rInjected: 1\r\n\r\n"))
	_ = conn2.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ = io.ReadAll(io.LimitReader(conn2, 16))
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 400")) {
		t.Fatalf("bare CR in a header answered %q", line)
	}
}

func TestMetrics(t *testing.T) {
	src, key := newMemSource(t)
	p := startProxy(t, src, key)
	p.do(t, "GET", "/v1/models", "")
	r := p.do(t, "GET", "/metrics", "")
	for _, want := range []string{"flm_http_requests_total", "flm_auth_failures_total", "flm_http_request_duration_seconds", "flm_active_streams"} {
		if !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// Slow clients cannot hold a connection: headers that trickle (slowloris)
// and a chunked body that never ends are both cut.
func TestSlowClientsCut(t *testing.T) {
	src, key := newMemSource(t)
	p := startProxy(t, src, key, func(o *Options) { o.ReadHeaderTimeout = 300 * time.Millisecond; o.ReadTimeout = 600 * time.Millisecond })
	addr := strings.TrimPrefix(p.url, "http://")
	for name, send := range map[string]func(net.Conn){
		"slowloris": func(c net.Conn) {
			_, _ = c.Write([]byte("GET /v1/models HTTP/1.1\r\nHost: localhost\r\n"))
			for i := 0; i < 30; i++ {
				if _, err := c.Write([]byte("X-Slow: 1\r\n")); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		},
		"endless chunked body": func(c net.Conn) {
			_, _ = c.Write([]byte("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + key.Plain + "\r\nTransfer-Encoding: chunked\r\n\r\n"))
			for i := 0; i < 30; i++ {
				if _, err := c.Write([]byte("1\r\n{\r\n")); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			go send(c)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.ReadAll(c) // returns when the server closes the connection
			if el := time.Since(start); el > 2500*time.Millisecond {
				t.Fatalf("the server held the connection for %v", el)
			}
		})
	}
	srv := (&Server{log: discardLogger(), opts: Options{ReadHeaderTimeout: time.Second, ReadTimeout: time.Second}}).httpServer(http.NotFoundHandler())
	if srv.WriteTimeout != 0 || srv.MaxHeaderBytes == 0 {
		t.Fatalf("write timeout %v would cut healthy streams; max header bytes %d", srv.WriteTimeout, srv.MaxHeaderBytes)
	}
}

type memAudit struct {
	mu     sync.Mutex
	events []AuditEvent
}

func (m *memAudit) Audit(_ context.Context, evs []AuditEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, evs...)
	return nil
}

func (m *memAudit) all() []AuditEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]AuditEvent(nil), m.events...)
}

// Auth failures and blocks are audited, collapsed: 50 failures from one
// address are one row with a count, not 50 rows; successes are not audited.
func TestAuditCollapsed(t *testing.T) {
	src, key := newMemSource(t)
	audit := &memAudit{}
	// One window for the whole test (the flush is triggered below): a
	// slow run must not split the 50 failures across two windows.
	p := startProxy(t, src, key, func(o *Options) { o.Audit = audit; o.AuditEvery = time.Hour })
	for range 50 {
		p.do(t, "GET", "/v1/models", "", "Authorization", "Bearer nope")
	}
	for range 5 {
		p.do(t, "GET", "/v1/models", "", p.auth()...)
	}
	p.do(t, "GET", "/v1/models", "", append(p.auth(), "Host", "evil.example")...)
	p.srv.audit.safeFlush(context.Background())
	evs := audit.all()
	counts := map[string]int{}
	for _, e := range evs {
		counts[e.Type] += e.Count
		if e.Type == "auth_failure" && e.Detail != "invalid_or_revoked_api_key" {
			t.Fatalf("auth failure detail %q", e.Detail)
		}
	}
	if len(evs) != 2 || counts["auth_failure"] != 50 || counts["host_blocked"] != 1 {
		t.Fatalf("audit rows = %+v", evs)
	}
}

// Running proxies pick up key and policy changes by themselves.
func TestPeriodicRefresh(t *testing.T) {
	src, key := newMemSource(t)
	p := startProxy(t, src, key, func(o *Options) { o.RefreshEvery = 50 * time.Millisecond })
	if r := p.do(t, "GET", "/v1/models", "", p.auth()...); r.status != 200 {
		t.Fatalf("before: %d", r.status)
	}
	if _, err := src.keys.Revoke(context.Background(), key.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for p.do(t, "GET", "/v1/models", "", p.auth()...).status != 401 {
		if time.Now().After(deadline) {
			t.Fatal("a revoked key still works without a reload")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Concurrent misses share one detection instead of queueing one each.
func TestRefreshOnMissCoalesced(t *testing.T) {
	src, key := newMemSource(t)
	p := startProxy(t, src, key)
	time.Sleep(1100 * time.Millisecond)
	before := src.engines
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.do(t, "POST", "/v1/chat/completions", chatBody("nope", false), p.auth()...)
		}()
	}
	wg.Wait()
	src.mu.Lock()
	n := src.engines - before
	src.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d detections for 10 concurrent misses", n)
	}
}

func TestRedirectHost(t *testing.T) {
	s := &Server{opts: Options{Config: proxyctl.Config{Mode: proxyctl.DevSelfSigned, Port: 9000, Bind: "0.0.0.0"}}}
	for host, want := range map[string]string{
		"127.0.0.1:9000":    "https://127.0.0.1:9001/v1/models",
		"[::1]:9000":        "https://[::1]:9001/v1/models",
		"myhost:9000":       "https://myhost:9001/v1/models",
		"laptop.local":      "https://laptop.local:9001/v1/models",
		"evil.example:9000": "https://localhost:9001/v1/models",
		"a\"b":              "https://localhost:9001/v1/models",
	} {
		req := httptest.NewRequest("GET", "/v1/models", nil)
		req.Host = host
		w := httptest.NewRecorder()
		s.redirectHandler().ServeHTTP(w, req)
		if w.Code != http.StatusPermanentRedirect || w.Header().Get("Location") != want {
			t.Errorf("Host %q → %d %s, want %s", host, w.Code, w.Header().Get("Location"), want)
		}
	}
}

// The access log names the route even when auth refused the request, and
// holds no key, header or body.
func TestAccessLogLines(t *testing.T) {
	src, key := newMemSource(t)
	var buf syncBuffer
	p := startProxy(t, src, key, func(o *Options) { o.AccessLog = &buf })
	p.do(t, "GET", "/v1/models", "", "Authorization", "Bearer "+key.Plain[:20])
	p.do(t, "POST", "/v1/chat/completions", `{"model":"x","messages":[{"role":"user","content":"secret prompt"}]}`, p.auth()...)
	p.do(t, "GET", "/api/pull", "")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{`"route":"models","status":401`, `"route":"chat","status":404`, `"route":"other","status":404`}
	if len(lines) != 3 {
		t.Fatalf("access log: %q", lines)
	}
	for i, w := range want {
		var v map[string]any
		if json.Unmarshal([]byte(lines[i]), &v) != nil || !strings.Contains(lines[i], w) {
			t.Errorf("line %d %s, want %s", i, lines[i], w)
		}
	}
	if strings.Contains(buf.String(), key.Plain[4:20]) || strings.Contains(buf.String(), "secret prompt") {
		t.Fatal("the access log holds a key or prompt text")
	}
}

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
