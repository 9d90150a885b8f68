package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Review 2 (adversarial): the UI's session cookie was the whole credential.
// Cookies are not scoped by port (RFC 6265 §8.5, and every browser): the
// browser that signed in sends flm_ui_session to ANY server on 127.0.0.1,
// whatever its port — another local user's web server, a dev server, a
// hostile "engine" the user opens in a tab. That server is no browser: it
// sets Host and Origin as it likes, reads the CSRF token from GET / and
// drives the UI (creates keys, changes the policy, starts proxies on
// 0.0.0.0, applies firewall rules as root).
//
// Fixed: the cookie is only half of a session. Sign-in also returns a
// secret that the page keeps in sessionStorage (scoped to the UI's origin,
// port included) and sends in X-FLM-Session with every API call; the page
// HTML carries no secret.

// cookieSpy is another HTTP service on loopback that records the cookies
// it receives.
type cookieSpy struct {
	mu   sync.Mutex
	seen []string
	url  string
}

func startCookieSpy(t *testing.T) *cookieSpy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	spy := &cookieSpy{url: "http://" + ln.Addr().String() + "/"}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spy.mu.Lock()
		spy.seen = append(spy.seen, r.Header.Get("Cookie"))
		spy.mu.Unlock()
		_, _ = io.WriteString(w, "hello")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return spy
}

func (s *cookieSpy) cookies() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.seen, "; ")
}

// A user agent that keeps cookies by RFC 6265 (net/http/cookiejar, like a
// browser) signs in, then visits another service on 127.0.0.1. No browser
// can keep the cookie from that service (cookies are not port-scoped), so
// the cookie must be worthless there: that service, which writes any Host
// and Origin it likes, reads the page and calls every API with the cookie —
// and gets nothing and changes nothing.
func TestReview2SessionCookieReachesOtherLoopbackPorts(t *testing.T) {
	fw := &fakeFirewall{root: true}
	logDir := t.TempDir() + "/logs/security"
	tu := wizardUI(t, fw, logDir)
	spy := startCookieSpy(t)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("POST", tu.base+"/session", strings.NewReader(`{"token":"`+tu.token+`"}`))
	req.Header.Set("Origin", tu.origin())
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var signedIn struct {
		Session string `json:"session"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&signedIn)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || signedIn.Session == "" {
		t.Fatalf("sign-in: %d, secret %q", resp.StatusCode, signedIn.Session)
	}
	resp, err = client.Get(spy.url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	stolen := ""
	for _, part := range strings.Split(spy.cookies(), ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), tu.cookieName()+"="); ok {
			stolen = tu.cookieName() + "=" + v
		}
	}
	if stolen == "" {
		// Not expected of an RFC 6265 jar; then there is nothing to steal
		// and the rest of the test would prove nothing.
		t.Fatalf("the jar kept the cookie from the other port (%q): the test no longer models a browser", spy.cookies())
	}
	if strings.Contains(spy.cookies(), signedIn.Session) {
		t.Fatal("the session secret travels as a cookie")
	}

	// The page served on the cookie holds no secret.
	pr, page := tu.do(t, "GET", "/", "", map[string]string{"Cookie": stolen})
	if pr.StatusCode != http.StatusOK {
		t.Fatalf("the app shell for the cookie: %d", pr.StatusCode)
	}
	if strings.Contains(page, signedIn.Session) || strings.Contains(page, "flm-csrf") || regexp.MustCompile(`[0-9a-f]{32}`).MatchString(page) {
		t.Fatalf("the page served on the cookie alone carries a secret: %.300s", page)
	}

	// Every API, with the cookie and everything else a non-browser client
	// can forge — but no secret, or a guessed one.
	before, _ := tu.policy.Show(context.Background())
	apis := []struct{ method, path, body string }{
		{"GET", "/api/status", ""}, {"GET", "/api/models", ""}, {"GET", "/api/keys", ""}, {"GET", "/api/policy", ""},
		{"GET", "/api/proxies", ""}, {"GET", "/api/qr?proxy=proxy-8080&which=lan", ""}, {"GET", "/api/wizard", ""},
		{"POST", "/api/keys", `{"label":"attacker"}`},
		{"POST", "/api/keys/revoke", `{"id":"x"}`},
		{"POST", "/api/policy", `{"ip_whitelist":"0.0.0.0/0"}`},
		{"POST", "/api/proxies/start", `{"mode":"local-http","port":"8080","bind":"0.0.0.0"}`},
		{"POST", "/api/proxies/stop", `{"all":true}`},
		{"POST", "/api/proxies/reload", `{"all":true}`},
		{"POST", "/api/chat", `{"handle_id":"proxy-8080","model":"m","prompt":"p","api_key":"k"}`},
		{"POST", "/api/wizard/policy", `{"ip_whitelist":"0.0.0.0/0"}`},
		{"POST", "/api/wizard/firewall", `{"tool":"ufw","mode":"local-http","port":"8080","cidr":"0.0.0.0/0"}`},
		{"POST", "/api/wizard/firewall/apply", `{"tool":"ufw","mode":"local-http","port":"8080","cidr":"0.0.0.0/0","consent":true}`},
	}
	for _, secret := range []string{"", strings.Repeat("0", 64), "X"} {
		for _, a := range apis {
			hdr := map[string]string{"Cookie": stolen, "Host": tu.host, "Origin": tu.origin(), "Content-Type": "application/json",
				"X-FLM-CSRF": "anything"}
			if secret != "" {
				hdr[sessionHeader] = secret
			}
			if resp, body := tu.do(t, a.method, a.path, a.body, hdr); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with the cookie alone (secret %q): %d, want 401 (%.200s)", a.method, a.path, secret, resp.StatusCode, body)
			}
		}
	}
	if recs, _ := tu.keys.List(context.Background()); len(recs) != 0 {
		t.Errorf("the cookie alone created %d key(s)", len(recs))
	}
	after, _ := tu.policy.Show(context.Background())
	if !bytes.Equal(before.Policy.Document(), after.Policy.Document()) {
		t.Errorf("the cookie alone changed the policy to %s", after.Policy.Document())
	}
	if len(tu.proxies.started) != 0 || *tu.applied != 0 || fw.count() != 0 {
		t.Errorf("the cookie alone started %d proxy(ies), applied %d change(s), ran %v", len(tu.proxies.started), *tu.applied, fw.ran)
	}
	if _, err := os.Stat(logDir); !os.IsNotExist(err) {
		t.Errorf("the cookie alone wrote %s: %v", logDir, err)
	}

	// The page's own calls (cookie + the secret from sign-in) work.
	if resp, body := tu.get(t, stolen, signedIn.Session, "/api/keys"); resp.StatusCode != http.StatusOK {
		t.Fatalf("the signed-in tab: %d %s", resp.StatusCode, body)
	}
}

// The secret without the cookie is no session either: both halves are
// needed, and the secret of one session does not open another.
func TestReview2SecretWithoutCookieIs401(t *testing.T) {
	tu := startUI(t)
	cookie, secret := tu.login(t)
	for _, hdr := range []map[string]string{
		{sessionHeader: secret},
		{sessionHeader: secret, "Cookie": tu.cookieName() + "=" + strings.Repeat("ab", 32)},
		{sessionHeader: secret, "Cookie": "flm_ui_session=" + strings.TrimPrefix(cookie, tu.cookieName()+"=")}, // the old, portless name
	} {
		hdr["Origin"], hdr["Content-Type"] = tu.origin(), "application/json"
		for _, a := range []struct{ method, path, body string }{{"GET", "/api/keys", ""}, {"POST", "/api/keys", `{"label":"x"}`}} {
			if resp, body := tu.do(t, a.method, a.path, a.body, hdr); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with %v: %d, want 401 (%s)", a.method, a.path, hdr, resp.StatusCode, body)
			}
		}
	}
	if recs, _ := tu.keys.List(context.Background()); len(recs) != 0 {
		t.Fatalf("a request without the cookie created %d key(s)", len(recs))
	}
}

// A session ends after SessionIdle without an API call, and after
// SessionMaxAge however busy it is; the cookie then opens no page either.
func TestReview2SessionLifetime(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	// Busy: a call every hour keeps it alive until the absolute limit.
	tu := startUIAt(t, clock)
	cookie, secret := tu.login(t)
	var lived time.Duration
	for lived = 0; lived < 24*time.Hour; lived += time.Hour {
		if resp, _ := tu.get(t, cookie, secret, "/api/keys"); resp.StatusCode != http.StatusOK {
			break
		}
		advance(time.Hour)
	}
	if lived != SessionMaxAge+time.Hour || SessionMaxAge > 12*time.Hour {
		t.Fatalf("a busy session lived %v; want it to end after %v (at most 12h)", lived, SessionMaxAge)
	}
	if resp, _ := tu.do(t, "GET", "/", "", map[string]string{"Cookie": cookie}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the page after the session ended: %d", resp.StatusCode)
	}

	// Idle: no call for longer than SessionIdle ends it; a call before
	// that restarts the idle time. Opening the page alone (cookie) does
	// not.
	tu = startUIAt(t, clock)
	cookie, secret = tu.login(t)
	advance(SessionIdle - time.Minute)
	if resp, _ := tu.get(t, cookie, secret, "/api/keys"); resp.StatusCode != http.StatusOK {
		t.Fatalf("within the idle limit: %d", resp.StatusCode)
	}
	advance(SessionIdle - time.Minute)
	tu.do(t, "GET", "/", "", map[string]string{"Cookie": cookie})
	advance(2 * time.Minute)
	if resp, _ := tu.get(t, cookie, secret, "/api/keys"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after %v idle: %d, want 401", SessionIdle+time.Minute, resp.StatusCode)
	}
}

// Two UIs on two ports keep apart cookies: the name carries the port.
func TestReview2CookieNameHasThePort(t *testing.T) {
	a, b := startUI(t), startUI(t)
	ca, _ := a.login(t)
	cb, _ := b.login(t)
	if a.cookieName() == b.cookieName() || !strings.HasPrefix(ca, a.cookieName()+"=") || !strings.HasPrefix(cb, b.cookieName()+"=") {
		t.Fatalf("cookies %q and %q", ca, cb)
	}
	_, port, _ := net.SplitHostPort(a.host)
	if !strings.HasSuffix(a.cookieName(), "_"+port) {
		t.Fatalf("cookie name %s lacks the port %s", a.cookieName(), port)
	}
}
