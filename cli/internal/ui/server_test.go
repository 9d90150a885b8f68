package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/apikey/apikeytest"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/policy/policytest"
	"github.com/unjuno/flm/core/proxyctl"
)

// fakeProxies is proxyctl's use case without processes: it records what
// was asked.
type fakeProxies struct {
	mu      sync.Mutex
	handles []proxyctl.Handle
	started []proxyctl.Config
}

func (f *fakeProxies) Status(context.Context) ([]proxyctl.Handle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]proxyctl.Handle(nil), f.handles...), nil
}
func (f *fakeProxies) Preflight(_ context.Context, cfg proxyctl.Config) ([]string, error) {
	return nil, cfg.Validate()
}
func (f *fakeProxies) StartBackground(_ context.Context, cfg proxyctl.Config) (proxyctl.Handle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, cfg)
	return proxyctl.Handle{ID: proxyctl.HandleID(cfg.Port), Port: cfg.Port, Mode: cfg.Mode, Running: true}, nil
}
func (f *fakeProxies) Stop(context.Context, proxyctl.Selector) ([]string, error) {
	return []string{}, nil
}
func (f *fakeProxies) Reload(context.Context, proxyctl.Selector, proxyctl.Parts) ([]proxyctl.Result, error) {
	return nil, nil
}

type fakeEngines struct{}

func (fakeEngines) Detect(context.Context, engine.DetectOptions) ([]engine.State, error) {
	return []engine.State{{ID: "ollama", Kind: engine.Ollama, Status: engine.Status{State: engine.RunningHealthy, LatencyMS: 3}}}, nil
}
func (fakeEngines) ListModels(context.Context, []engine.State) ([]engine.Model, map[string]error) {
	return []engine.Model{{ID: "flm://ollama/llama3:latest", EngineID: "ollama", Name: "llama3:latest"}}, nil
}

type testUI struct {
	base, token string
	host        string
	keys        *apikey.Service
	policy      *policy.Service
	proxies     *fakeProxies
	applied     *int
}

func startUI(t *testing.T, opts ...func(*Services)) *testUI {
	t.Helper()
	return startUIAt(t, nil, opts...)
}

// startUIAt is startUI with the server's clock (nil: time.Now).
func startUIAt(t *testing.T, now func() time.Time, opts ...func(*Services)) *testUI {
	t.Helper()
	return startUIWith(t, now, nil, opts...)
}

// startUIWith is startUI with the server's clock (nil: time.Now) and
// logger (nil: none).
func startUIWith(t *testing.T, now func() time.Time, log *slog.Logger, opts ...func(*Services)) *testUI {
	t.Helper()
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startUIOn(t, ln, now, log, opts...)
}

// startUIOn is startUIWith on a listener of the test's (from Listen).
func startUIOn(t *testing.T, ln net.Listener, now func() time.Time, log *slog.Logger, opts ...func(*Services)) *testUI {
	t.Helper()
	applied := new(int)
	var mu sync.Mutex
	tu := &testUI{keys: &apikey.Service{Store: apikeytest.NewMemStore()}, policy: &policy.Service{Store: policytest.NewMemStore()},
		proxies: &fakeProxies{}, applied: applied}
	svc := Services{Keys: tu.keys, Policy: tu.policy, Proxies: tu.proxies, Engines: fakeEngines{},
		Apply: func(context.Context, proxyctl.Parts) []proxyctl.Result {
			mu.Lock()
			*applied++
			mu.Unlock()
			return []proxyctl.Result{}
		},
		DefaultPort: func(context.Context) (int, error) { return 8080, nil },
		ChatClient:  func(string) *http.Client { return http.DefaultClient },
	}
	for _, o := range opts {
		o(&svc)
	}
	srv, tok, err := New(ln, svc, log)
	if err != nil {
		t.Fatal(err)
	}
	if now != nil {
		srv.now = now
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	tu.host = ln.Addr().String()
	tu.base, tu.token = "http://"+tu.host, tok
	return tu
}

// do sends one request; hdr are extra headers ("Host" sets the Host).
func (tu *testUI) do(t *testing.T, method, path, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, tu.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (tu *testUI) origin() string { return tu.base }

// cookieName is the UI's session cookie name (it carries the port).
func (tu *testUI) cookieName() string {
	_, port, _ := net.SplitHostPort(tu.host)
	return cookieName(port)
}

// login exchanges the token and returns the session cookie and the
// session secret, as the sign-in page does.
func (tu *testUI) login(t *testing.T) (cookie, secret string) {
	t.Helper()
	resp, body := tu.do(t, "POST", "/session", `{"token":"`+tu.token+`"}`, map[string]string{"Origin": tu.origin(), "Content-Type": "application/json"})
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == tu.cookieName() {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.MaxAge != 0 || !c.Expires.IsZero() {
				t.Fatalf("session cookie must be HttpOnly, SameSite=Strict and end with the browser: %+v", c)
			}
			cookie = c.Name + "=" + c.Value
		}
	}
	if cookie == "" {
		t.Fatalf("no session cookie named %s: %v", tu.cookieName(), resp.Cookies())
	}
	var ans struct {
		Session string `json:"session"`
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil || len(ans.Session) != 64 {
		t.Fatalf("no session secret in the sign-in answer: %s", body)
	}
	if strings.Contains(cookie, ans.Session) {
		t.Fatal("the session secret is the cookie")
	}
	return cookie, ans.Session
}

func (tu *testUI) get(t *testing.T, cookie, secret, path string) (*http.Response, string) {
	return tu.do(t, "GET", path, "", map[string]string{"Cookie": cookie, sessionHeader: secret})
}

func (tu *testUI) post(t *testing.T, cookie, secret, path, body string) (*http.Response, string) {
	return tu.do(t, "POST", path, body, map[string]string{"Cookie": cookie, sessionHeader: secret, "Origin": tu.origin(), "Content-Type": "application/json"})
}

func TestListenRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":0", "192.168.1.10:0", "localhost:0", "example.com:0", "127.0.0.1", "[fe80::1%lo]:0"} {
		if ln, err := Listen(addr); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) accepted a non-loopback address", addr)
		}
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	// New refuses a listener that is not on loopback, however it was made.
	wild, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer wild.Close()
	if _, _, err := New(wild, Services{}, nil); err == nil {
		t.Fatal("New served a wildcard listener")
	}
}

// The UI's port answers on loopback only: every other address of this
// machine refuses the connection.
func TestNotReachableOnOtherAddresses(t *testing.T) {
	tu := startUI(t)
	_, port, _ := net.SplitHostPort(tu.host)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
			continue
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(n.IP.String(), port), 2*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("the UI answers on %s", n.IP)
		}
	}
}

func TestNoSessionIs401(t *testing.T) {
	tu := startUI(t)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/", ""}, {"GET", "/api/status", ""}, {"GET", "/api/keys", ""}, {"GET", "/api/policy", ""},
		{"POST", "/api/keys", `{"label":"x"}`}, {"POST", "/api/policy", `{}`},
	} {
		resp, body := tu.do(t, c.method, c.path, c.body, map[string]string{"Origin": tu.origin(), "Content-Type": "application/json",
			"Cookie": tu.cookieName() + "=" + strings.Repeat("ab", 32), sessionHeader: strings.Repeat("cd", 32)})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without a session: %d %s", c.method, c.path, resp.StatusCode, body)
		}
	}
	if recs, _ := tu.keys.List(context.Background()); len(recs) != 0 {
		t.Fatal("a request without a session created a key")
	}
	// The sign-in page itself shows nothing but the sign-in script.
	_, page := tu.do(t, "GET", "/", "", nil)
	if strings.Contains(page, "flm-csrf") || strings.Contains(page, "/api/") {
		t.Fatal("the sign-in page leaks the app")
	}
}

func TestForeignHostOrOriginIs403(t *testing.T) {
	tu := startUI(t)
	cookie, secret := tu.login(t)
	_, port, _ := net.SplitHostPort(tu.host)
	cases := []map[string]string{
		{"Host": "evil.example:" + port}, // DNS rebinding
		{"Host": "evil.example"},         // DNS rebinding, default port
		{"Host": "127.0.0.1:1"},          // another port
		{"Host": "localhost.evil.example:" + port},
		{"Origin": "http://evil.example"}, // another site's page
		{"Origin": "http://127.0.0.1:1"},  // another local service
		{"Origin": "null"},                // sandboxed frame, file://
		{"Sec-Fetch-Site": "cross-site"},
	}
	for _, h := range cases {
		for _, path := range []string{"/", "/api/keys", "/api/status"} {
			hdr := map[string]string{"Cookie": cookie}
			for k, v := range h {
				hdr[k] = v
			}
			resp, body := tu.do(t, "GET", path, "", hdr)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("GET %s with %v: %d, want 403 (%s)", path, h, resp.StatusCode, body)
			}
		}
		hdr := map[string]string{"Cookie": cookie, sessionHeader: secret, "Origin": tu.origin(), "Content-Type": "application/json"}
		for k, v := range h {
			hdr[k] = v
		}
		if resp, _ := tu.do(t, "POST", "/api/keys", `{"label":"rebound"}`, hdr); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST with %v: %d, want 403", h, resp.StatusCode)
		}
	}
	if recs, _ := tu.keys.List(context.Background()); len(recs) != 0 {
		t.Fatalf("a foreign request created %d key(s)", len(recs))
	}
	// Both loopback names of the UI's own address are fine.
	for _, host := range []string{tu.host, "localhost:" + port} {
		if resp, _ := tu.do(t, "GET", "/api/keys", "", map[string]string{"Cookie": cookie, sessionHeader: secret, "Host": host}); resp.StatusCode != 200 {
			t.Errorf("Host %s: %d", host, resp.StatusCode)
		}
	}
}

func TestTokenIsSingleUse(t *testing.T) {
	tu := startUI(t)
	hdr := map[string]string{"Origin": tu.origin(), "Content-Type": "application/json"}
	// A wrong token fails and does not burn the right one.
	if resp, _ := tu.do(t, "POST", "/session", `{"token":"`+strings.Repeat("0", 64)+`"}`, hdr); resp.StatusCode != 401 {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	// The exchange needs the UI's own Origin and JSON, like every change.
	for _, bad := range []map[string]string{{"Content-Type": "application/json"}, {"Origin": tu.origin(), "Content-Type": "text/plain"}} {
		if resp, _ := tu.do(t, "POST", "/session", `{"token":"`+tu.token+`"}`, bad); resp.StatusCode != 403 {
			t.Fatalf("sign-in with %v: %d, want 403", bad, resp.StatusCode)
		}
	}
	tu.login(t)
	resp, body := tu.do(t, "POST", "/session", `{"token":"`+tu.token+`"}`, hdr)
	if resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Fatalf("second use of the token: %d %s", resp.StatusCode, body)
	}
}

// A cross-site form post, a text/plain "simple request", a request
// without the session secret or with a wrong one, or from another Origin:
// all refused, and nothing changed.
func TestCSRFRefusedAndNothingChanged(t *testing.T) {
	tu := startUI(t)
	cookie, secret := tu.login(t)
	before, _ := tu.policy.Show(context.Background())
	cases := map[string]map[string]string{
		"form post":        {"Cookie": cookie, "Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"},
		"text/plain":       {"Cookie": cookie, "Origin": tu.origin(), "Content-Type": "text/plain", sessionHeader: secret},
		"multipart":        {"Cookie": cookie, "Origin": tu.origin(), "Content-Type": "multipart/form-data; boundary=x", sessionHeader: secret},
		"no secret":        {"Cookie": cookie, "Origin": tu.origin(), "Content-Type": "application/json"},
		"wrong secret":     {"Cookie": cookie, "Origin": tu.origin(), "Content-Type": "application/json", sessionHeader: strings.Repeat("1", 64)},
		"no origin":        {"Cookie": cookie, "Content-Type": "application/json", sessionHeader: secret},
		"foreign origin":   {"Cookie": cookie, "Origin": "http://evil.example", "Content-Type": "application/json", sessionHeader: secret},
		"same-site origin": {"Cookie": cookie, "Origin": tu.origin(), "Content-Type": "application/json", sessionHeader: secret, "Sec-Fetch-Site": "same-site"},
	}
	for name, hdr := range cases {
		for _, c := range []struct{ path, body string }{
			{"/api/keys", `{"label":"csrf"}`},
			{"/api/policy", `{"ip_whitelist":"10.0.0.0/8"}`},
			{"/api/proxies/start", `{"bind":"0.0.0.0"}`},
			{"/api/keys/revoke", `{"id":"x"}`},
		} {
			// Without the session's secret the cookie is no session (401);
			// with it, the wrong kind of request is refused (403).
			want := http.StatusForbidden
			if name == "no secret" || name == "wrong secret" {
				want = http.StatusUnauthorized
			}
			if resp, body := tu.do(t, "POST", c.path, c.body, hdr); resp.StatusCode != want {
				t.Errorf("%s to %s: %d, want %d (%s)", name, c.path, resp.StatusCode, want, body)
			}
		}
	}
	if recs, _ := tu.keys.List(context.Background()); len(recs) != 0 {
		t.Errorf("refused requests created %d key(s)", len(recs))
	}
	after, _ := tu.policy.Show(context.Background())
	if !bytes.Equal(before.Policy.Document(), after.Policy.Document()) {
		t.Errorf("refused requests changed the policy to %s", after.Policy.Document())
	}
	if len(tu.proxies.started) != 0 || *tu.applied != 0 {
		t.Errorf("refused requests started %d proxy(ies), applied %d time(s)", len(tu.proxies.started), *tu.applied)
	}
	// The same request, done right, works.
	resp, body := tu.post(t, cookie, secret, "/api/keys", `{"label":"phone"}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"plain_key":"flm_`) {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	if *tu.applied != 1 {
		t.Fatalf("the new key was not applied to running proxies (%d)", *tu.applied)
	}
}

func TestSecurityHeadersEverywhere(t *testing.T) {
	tu := startUI(t)
	cookie, secret := tu.login(t)
	for _, c := range []struct {
		path   string
		cookie string
		api    bool
	}{
		{"/", "", false}, {"/", cookie, false}, {"/?lang=ja", cookie, false}, {"/static/app.css", "", false}, {"/static/common.js", "", false},
		{"/api/status", cookie, true}, {"/api/keys", cookie, true}, {"/api/policy", cookie, true}, {"/api/keys", "", true}, {"/nope", "", false},
	} {
		hdr := map[string]string{}
		if c.cookie != "" {
			hdr["Cookie"] = c.cookie
			hdr[sessionHeader] = secret
		}
		resp, _ := tu.do(t, "GET", c.path, "", hdr)
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		if csp != CSP || strings.Contains(csp, "unsafe-") || !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: CSP %q", c.path, csp)
		}
		for k, v := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
			if h.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", c.path, k, h.Get(k), v)
			}
		}
		if c.api && h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", c.path, h.Get("Cache-Control"))
		}
	}
}

// The policy form is judged by core's policy service: the message next to
// the field is the one `flm security policy set` prints, and an invalid
// form changes nothing.
func TestPolicyErrorsAreCoresNextToTheField(t *testing.T) {
	tu := startUI(t)
	cookie, secret := tu.login(t)
	before, _ := tu.policy.Show(context.Background())
	cases := []struct {
		form, field, doc string
	}{
		{`{"ip_whitelist":"10.0.0.0/8\nnot-an-ip"}`, "ip_whitelist", `{"ip_whitelist":["10.0.0.0/8","not-an-ip"],"cors":{"allowed_origins":[]}}`},
		{`{"cors_origins":"ftp://x"}`, "cors_origins", `{"ip_whitelist":[],"cors":{"allowed_origins":["ftp://x"]}}`},
		{`{"rate_limit_rpm":"ten"}`, "rate_limit_rpm", `{"ip_whitelist":[],"cors":{"allowed_origins":[]},"rate_limit":{"rpm":"ten"}}`},
		{`{"ip_rate_limit_rpm":"5","ip_rate_limit_burst":"-1"}`, "ip_rate_limit_burst", `{"ip_whitelist":[],"cors":{"allowed_origins":[]},"ip_rate_limit":{"rpm":5,"burst":-1}}`},
		{`{"trusted_proxy_ips":"300.1.1.1"}`, "trusted_proxy_ips", `{"ip_whitelist":[],"cors":{"allowed_origins":[]},"trusted_proxy_ips":["300.1.1.1"]}`},
	}
	for _, c := range cases {
		resp, body := tu.post(t, cookie, secret, "/api/policy", c.form)
		var e errorBody
		_ = json.Unmarshal([]byte(body), &e)
		_, want := policy.Parse([]byte(c.doc))
		if resp.StatusCode != 400 || e.Error.Code != flmerr.PolicyInvalid || e.Error.Field != c.field || want == nil || e.Error.Message != want.Error() {
			t.Errorf("%s: %d %+v, want field %s and core's message %v", c.form, resp.StatusCode, e.Error, c.field, want)
		}
	}
	after, _ := tu.policy.Show(context.Background())
	if !bytes.Equal(before.Policy.Document(), after.Policy.Document()) {
		t.Fatalf("an invalid form changed the policy: %s", after.Policy.Document())
	}
	resp, body := tu.post(t, cookie, secret, "/api/policy", `{"ip_whitelist":"192.168.1.0/24","cors_origins":"https://app.example","rate_limit_rpm":"60","rate_limit_burst":"10"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("valid policy: %d %s", resp.StatusCode, body)
	}
	st, _ := tu.policy.Show(context.Background())
	if got := string(st.Policy.Document()); got != `{"ip_whitelist":["192.168.1.0/24"],"cors":{"allowed_origins":["https://app.example"]},"rate_limit":{"rpm":60,"burst":10}}` {
		t.Fatalf("stored %s", got)
	}
	if *tu.applied != 1 {
		t.Fatalf("the policy was not applied to running proxies")
	}
}

// Fields the form does not show (client_ip_header, x_ extensions) survive
// a save from the form.
func TestPolicyFormKeepsOtherFields(t *testing.T) {
	tu := startUI(t)
	if _, err := tu.policy.Set(context.Background(), []byte(`{"trusted_proxy_ips":["10.0.0.1"],"client_ip_header":"X-Real-IP","x_note":{"a":1},"cors":{"allowed_origins":[],"x_c":true}}`)); err != nil {
		t.Fatal(err)
	}
	cookie, secret := tu.login(t)
	if resp, body := tu.post(t, cookie, secret, "/api/policy", `{"trusted_proxy_ips":"10.0.0.1","ip_whitelist":"10.0.0.0/8"}`); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	st, _ := tu.policy.Show(context.Background())
	doc := string(st.Policy.Document())
	for _, want := range []string{`"client_ip_header":"X-Real-IP"`, `"x_note":{"a":1}`, `"x_c":true`, `"ip_whitelist":["10.0.0.0/8"]`} {
		if !strings.Contains(doc, want) {
			t.Errorf("stored %s lacks %s", doc, want)
		}
	}
}

func TestKeyShownOnceAndRevoked(t *testing.T) {
	tu := startUI(t)
	cookie, secret := tu.login(t)
	resp, body := tu.post(t, cookie, secret, "/api/keys", `{"label":"","models":"","rpm":"","expires_in":""}`)
	if resp.StatusCode != 400 || !strings.Contains(body, `"field":"label"`) {
		t.Fatalf("empty label: %d %s", resp.StatusCode, body)
	}
	resp, body = tu.post(t, cookie, secret, "/api/keys", `{"label":"laptop","models":"flm://ollama/*","rpm":"30","expires_in":"90d"}`)
	var iss struct{ ID, PlainKey string }
	var created map[string]any
	_ = json.Unmarshal([]byte(body), &created)
	iss.PlainKey, _ = created["plain_key"].(string)
	iss.ID, _ = created["id"].(string)
	if resp.StatusCode != 200 || !apikey.WellFormed(iss.PlainKey) {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	_, list := tu.get(t, cookie, secret, "/api/keys")
	if strings.Contains(list, iss.PlainKey) || strings.Contains(list, apikey.Hash(iss.PlainKey)) || !strings.Contains(list, iss.ID) {
		t.Fatalf("the list shows the key or its hash, or misses it: %s", list)
	}
	if resp, body := tu.post(t, cookie, secret, "/api/keys/revoke", `{"id":"`+iss.ID+`"}`); resp.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	if resp, body := tu.post(t, cookie, secret, "/api/keys/revoke", `{"id":"nope"}`); resp.StatusCode != 404 || !strings.Contains(body, "API_KEY_NOT_FOUND") {
		t.Fatalf("revoke unknown: %d %s", resp.StatusCode, body)
	}
	recs, _ := tu.keys.List(context.Background())
	if len(recs) != 1 || recs[0].RevokedAt == nil || recs[0].RPM != 30 || recs[0].ExpiresAt == nil {
		t.Fatalf("stored %+v", recs)
	}
}

func TestPlainHTTPOnLANWarns(t *testing.T) {
	now := time.Now()
	ws := handleWarnings(proxyctl.Handle{Mode: proxyctl.LocalHTTP, ListenAddr: "0.0.0.0:8080", Running: true}, now)
	if len(ws) != 1 || ws[0].Key != "warn.plain_http_lan" || ws[0].Args[0] != "0.0.0.0" {
		t.Fatalf("%+v", ws)
	}
	if ws := handleWarnings(proxyctl.Handle{Mode: proxyctl.LocalHTTP, ListenAddr: "127.0.0.1:8080", Running: true}, now); len(ws) != 0 {
		t.Fatalf("loopback warned: %+v", ws)
	}
	if ws := handleWarnings(proxyctl.Handle{Mode: proxyctl.DevSelfSigned, ListenAddr: "0.0.0.0:8080", Running: true}, now); len(ws) != 0 {
		t.Fatalf("TLS warned: %+v", ws)
	}
}

func TestAcceptLanguage(t *testing.T) {
	for h, want := range map[string]string{"": "en", "ja": "ja", "ja-JP,ja;q=0.9,en;q=0.8": "ja", "en-US,en;q=0.9,ja;q=0.8": "en",
		"fr-FR,ja;q=0.5": "ja", "de": "en", "en;q=0.1,ja;q=0.9": "ja", "ja;q=0": "en"} {
		if got := acceptLanguage(h); got != want {
			t.Errorf("%q: %s, want %s", h, got, want)
		}
	}
}
