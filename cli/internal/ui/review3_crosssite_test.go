package ui

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/unjuno/flm/core/proxyctl"
)

// Review 3: a malicious page in the user's browser, and a DNS-rebinding
// one. What a browser sends for such a page is written out header by
// header; the server must refuse before anything runs.

// review3Changes is every state-changing endpoint with a body that would
// work from the UI's own page (so a refusal is the guard's, not the
// handler's).
var review3Changes = []struct{ path, body string }{
	{"/api/keys", `{"label":"attacker"}`},
	{"/api/keys/revoke", `{"id":"victim"}`},
	{"/api/policy", `{"ip_whitelist":"0.0.0.0/0"}`},
	{"/api/proxies/start", `{"mode":"local-http","port":"8080","bind":"0.0.0.0"}`},
	{"/api/proxies/stop", `{"all":true}`},
	{"/api/proxies/reload", `{"all":true}`},
	{"/api/chat", `{"handle_id":"proxy-1","model":"m","prompt":"secret plans","api_key":"flm_stolen"}`},
	{"/api/wizard/policy", `{"ip_whitelist":"0.0.0.0/0"}`},
	{"/api/wizard/firewall", `{"tool":"ufw","mode":"local-http","port":"8080","cidr":"0.0.0.0/0"}`},
	{"/api/wizard/firewall/apply", `{"tool":"ufw","mode":"local-http","port":"8080","cidr":"0.0.0.0/0","consent":true}`},
}

// review3Reads is every read endpoint.
var review3Reads = []string{"/api/status", "/api/status?fresh=1", "/api/models", "/api/keys", "/api/policy", "/api/proxies",
	"/api/qr?proxy=proxy-1&which=lan", "/api/wizard"}

func runningHandle(url string) proxyctl.Handle {
	return proxyctl.Handle{ID: "proxy-1", Port: 1, Mode: proxyctl.LocalHTTP, ListenAddr: "127.0.0.1:1", Running: true,
		URLs: proxyctl.URLs{Local: strings.TrimRight(url, "/"), LAN: "http://192.168.1.2:1"}}
}

// unchanged fails the test if any refused request changed something.
func (tu *testUI) unchanged(t *testing.T, fw *fakeFirewall, logDir string, before []byte) {
	t.Helper()
	if recs, _ := tu.keys.List(context.Background()); len(recs) != 0 {
		t.Errorf("refused requests created %d key(s)", len(recs))
	}
	after, _ := tu.policy.Show(context.Background())
	if !bytes.Equal(before, after.Policy.Document()) {
		t.Errorf("refused requests changed the policy to %s", after.Policy.Document())
	}
	tu.proxies.mu.Lock()
	started := len(tu.proxies.started)
	tu.proxies.mu.Unlock()
	if started != 0 || *tu.applied != 0 || (fw != nil && fw.count() != 0) {
		t.Errorf("refused requests started %d proxy(ies), applied %d change(s), ran firewall commands", started, *tu.applied)
	}
	if logDir != "" {
		if _, err := os.Stat(logDir); !os.IsNotExist(err) {
			t.Errorf("refused requests wrote %s", logDir)
		}
	}
}

// A hostile page on another port of 127.0.0.1 (same SITE as the UI: its
// SameSite=Strict cookie IS sent) or on evil.example (cross-site) posts
// HTML forms, in each encoding a form can use, to every state-changing
// endpoint. The JSON-in-text/plain trick makes a text/plain body parse as
// JSON. A form can set neither X-FLM-Session nor application/json.
func TestReview3FormPostsToEveryEndpointAreRefused(t *testing.T) {
	fw := &fakeFirewall{root: true}
	logDir := t.TempDir() + "/logs/security"
	tu := wizardUI(t, fw, logDir)
	cookie, secret := tu.login(t)
	before, _ := tu.policy.Show(context.Background())
	_, port, _ := net.SplitHostPort(tu.host)
	other := "http://127.0.0.1:1"
	if port == "1" {
		other = "http://127.0.0.1:2"
	}
	pages := []struct{ origin, site string }{
		{other, "same-site"},                  // another local port: the cookie comes along
		{"http://evil.example", "cross-site"}, // another site (Strict: no cookie in a browser; sent here anyway)
		{"null", "cross-site"},                // a sandboxed iframe or a data: URL
	}
	encodings := []struct{ ct, body string }{
		{"text/plain", `{"label":"attacker","x":"="}`},
		{"application/x-www-form-urlencoded", "label=attacker&ip_whitelist=0.0.0.0%2F0&all=true&consent=true"},
		{"multipart/form-data; boundary=XX", "--XX\r\nContent-Disposition: form-data; name=\"label\"\r\n\r\nattacker\r\n--XX--\r\n"},
	}
	for _, pg := range pages {
		for _, enc := range encodings {
			for _, c := range review3Changes {
				for _, withSecret := range []bool{false, true} {
					// withSecret: even if the page somehow had the secret, a
					// form post from elsewhere is refused by Origin and type.
					hdr := map[string]string{"Cookie": cookie, "Origin": pg.origin, "Content-Type": enc.ct,
						"Sec-Fetch-Site": pg.site, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}
					if withSecret {
						hdr[sessionHeader] = secret
					}
					resp, body := tu.do(t, "POST", c.path, enc.body, hdr)
					if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
						t.Errorf("form post (%s, %s) from %s to %s: %d %s", enc.ct, map[bool]string{true: "with secret", false: "no secret"}[withSecret], pg.origin, c.path, resp.StatusCode, body)
					}
					if resp.Header.Get("Access-Control-Allow-Origin") != "" {
						t.Errorf("%s answers with CORS headers", c.path)
					}
				}
			}
		}
	}
	// fetch() from the hostile page: a "simple" request with credentials
	// (no preflight), and the preflight a JSON request needs.
	for _, pg := range pages {
		for _, c := range review3Changes {
			hdr := map[string]string{"Cookie": cookie, "Origin": pg.origin, "Content-Type": "text/plain;charset=UTF-8",
				"Sec-Fetch-Site": pg.site, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "empty"}
			if resp, body := tu.do(t, "POST", c.path, c.body, hdr); resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
				t.Errorf("fetch no-cors from %s to %s: %d %s", pg.origin, c.path, resp.StatusCode, body)
			}
			pre := map[string]string{"Origin": pg.origin, "Access-Control-Request-Method": "POST",
				"Access-Control-Request-Headers": "content-type,x-flm-session", "Sec-Fetch-Site": pg.site, "Sec-Fetch-Mode": "cors"}
			resp, _ := tu.do(t, "OPTIONS", c.path, "", pre)
			if resp.StatusCode < 400 || resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Headers") != "" {
				t.Errorf("preflight from %s to %s: %d, CORS %q", pg.origin, c.path, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		}
		// Reads with credentials: refused, and no CORS header lets the
		// page read an answer.
		for _, path := range review3Reads {
			hdr := map[string]string{"Cookie": cookie, "Origin": pg.origin, "Sec-Fetch-Site": pg.site, "Sec-Fetch-Mode": "cors"}
			if resp, body := tu.do(t, "GET", path, "", hdr); resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("cross-origin GET %s from %s: %d %s", path, pg.origin, resp.StatusCode, body)
			}
		}
	}
	// The sign-in exchange from a hostile page (login CSRF) is refused
	// too, even with the right token.
	for _, pg := range pages {
		for _, enc := range []string{"text/plain", "application/x-www-form-urlencoded", "application/json"} {
			resp, _ := tu.do(t, "POST", "/session", `{"token":"`+tu.token+`"}`, map[string]string{"Origin": pg.origin, "Content-Type": enc, "Sec-Fetch-Site": pg.site})
			if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
				t.Errorf("sign-in (%s) from %s: %d", enc, pg.origin, resp.StatusCode)
			}
		}
	}
	tu.unchanged(t, fw, logDir, before.Policy.Document())
}

// A POST without Origin (some old clients, or a privacy extension that
// strips it): the UI's page always sends one, so none is refused.
func TestReview3ChangeWithoutOriginIsRefused(t *testing.T) {
	fw := &fakeFirewall{root: true}
	logDir := t.TempDir() + "/logs/security"
	tu := wizardUI(t, fw, logDir)
	cookie, secret := tu.login(t)
	before, _ := tu.policy.Show(context.Background())
	for _, c := range review3Changes {
		resp, body := tu.do(t, "POST", c.path, c.body, map[string]string{"Cookie": cookie, sessionHeader: secret, "Content-Type": "application/json"})
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `"code":"INVALID_ARGUMENT"`) {
			t.Errorf("POST %s without Origin: %d %s", c.path, resp.StatusCode, body)
		}
	}
	tu.unchanged(t, fw, logDir, before.Policy.Document())
}

// DNS rebinding: the attacker's name resolves to 127.0.0.1, so the browser
// connects to the UI but names the attacker's host. Every spelling that is
// not the UI's own origin is 403, on every path (the page, sign-in, APIs,
// static files); the same host in capitals is the same origin.
func TestReview3DNSRebindingHostsAreRefused(t *testing.T) {
	tu := startUI(t)
	cookie, secret := tu.login(t)
	_, port, _ := net.SplitHostPort(tu.host)
	hosts := []string{
		"evil.example:" + port, "evil.example", "127.0.0.1.nip.io:" + port, "127-0-0-1.sslip.io:" + port,
		"[::1]:" + port, "localhost.:" + port, "127.0.0.1.:" + port, "localhost", "127.0.0.1",
		"127.0.0.1:" + port + "0", "127.0.0.1:1", "0x7f000001:" + port, "2130706433:" + port, "127.1:" + port,
		"0.0.0.0:" + port, "evil.localhost:" + port, "localhost:" + port + "@evil.example",
	}
	paths := []struct{ method, path, body string }{
		{"GET", "/", ""}, {"GET", "/static/common.js", ""}, {"POST", "/session", `{"token":"` + strings.Repeat("0", 64) + `"}`},
		{"GET", "/api/keys", ""}, {"POST", "/api/keys", `{"label":"rebound"}`},
	}
	for _, h := range hosts {
		for _, p := range paths {
			// To the browser, the rebound page IS evil.example:PORT: its
			// GETs carry no Origin and its POSTs its own, so only the Host
			// tells. (Cookie and secret are included to show that even a
			// full session does not pass under a foreign Host.)
			hdr := map[string]string{"Host": h, "Cookie": cookie, sessionHeader: secret, "Content-Type": "application/json"}
			if p.method == "POST" {
				hdr["Origin"] = "http://" + h
			}
			resp, body := tu.do(t, p.method, p.path, p.body, hdr)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s with Host %q: %d, want 403 (%.120s)", p.method, p.path, h, resp.StatusCode, body)
			}
		}
	}
	// No Host at all, or an empty one (HTTP/1.0 clients, raw sockets).
	for _, req := range []string{"GET /api/keys HTTP/1.0\r\n", "GET /api/keys HTTP/1.1\r\nHost: \r\n", "GET / HTTP/1.0\r\n"} {
		c, err := net.Dial("tcp", tu.host)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, req+"Cookie: "+cookie+"\r\n"+sessionHeader+": "+secret+"\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: %d, want 403 or 400", req, resp.StatusCode)
		}
		resp.Body.Close()
		c.Close()
	}
	if recs, _ := tu.keys.List(context.Background()); len(recs) != 0 {
		t.Fatalf("a rebound request created %d key(s)", len(recs))
	}
	for _, h := range []string{strings.ToUpper("localhost:" + port), tu.host} {
		if r, b := tu.do(t, "GET", "/api/keys", "", map[string]string{"Host": h, "Cookie": cookie, sessionHeader: secret}); r.StatusCode != http.StatusOK {
			t.Errorf("Host %q (the UI's own): %d %s", h, r.StatusCode, b)
		}
	}
}

// Origin "null" (sandboxed frames, data: URLs, some redirects) is no
// origin of the UI: refused on reads, changes and sign-in.
func TestReview3OriginNullIsRefused(t *testing.T) {
	tu := startUI(t)
	cookie, secret := tu.login(t)
	for _, p := range append([]string{"/", "/static/app.js"}, review3Reads...) {
		if resp, _ := tu.do(t, "GET", p, "", map[string]string{"Origin": "null", "Cookie": cookie, sessionHeader: secret}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s with Origin null: %d", p, resp.StatusCode)
		}
	}
	for _, c := range review3Changes {
		if resp, _ := tu.do(t, "POST", c.path, c.body, map[string]string{"Origin": "null", "Cookie": cookie, sessionHeader: secret, "Content-Type": "application/json"}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s with Origin null: %d", c.path, resp.StatusCode)
		}
	}
	if recs, _ := tu.keys.List(context.Background()); len(recs) != 0 {
		t.Fatal("Origin null created a key")
	}
}

// There is no WebSocket: an Upgrade from a hostile page (WebSockets are
// not bound by CORS) gets no 101 anywhere; the chat's event stream is a
// POST answer that needs the session like every API.
func TestReview3NoWebSocket(t *testing.T) {
	tu := startUI(t)
	cookie, secret := tu.login(t)
	for _, p := range []string{"/", "/session", "/api/chat", "/api/status", "/api/ws", "/ws"} {
		for _, origin := range []string{"http://evil.example", tu.origin()} {
			hdr := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
				"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": origin, "Cookie": cookie, sessionHeader: secret}
			if resp, _ := tu.do(t, "GET", p, "", hdr); resp.StatusCode == http.StatusSwitchingProtocols {
				t.Errorf("%s upgraded to a WebSocket for %s", p, origin)
			}
		}
	}
	// The event stream without the secret: 401, before any relay.
	if resp, _ := tu.do(t, "POST", "/api/chat", review3Changes[6].body, map[string]string{"Cookie": cookie, "Origin": tu.origin(), "Content-Type": "application/json", "Accept": "text/event-stream"}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("chat stream without the secret: %d", resp.StatusCode)
	}
}
