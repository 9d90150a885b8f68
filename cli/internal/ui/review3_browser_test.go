package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Review 3 in a real browser: the user signs in to the UI in Chromium,
// then opens a hostile page on another port of 127.0.0.1 — the same site
// as the UI, so Chromium attaches the SameSite=Strict session cookie to
// its requests. The page (testdata/review3/attack.js) reads APIs with
// credentials, posts JSON, "simple" requests, beacons and HTML forms in
// every encoding to every state-changing endpoint, frames the UI, opens
// it in a window and reaches into it, loads an API as an image, and
// tosses cookies named like the UI's. Then Chromium visits the UI's port
// under a DNS-rebinding name (evil.localhost resolves to loopback in
// Chromium itself). Nothing may be readable, nothing may change, and the
// signed-in tab must keep working.
func TestReview3BrowserAttacks(t *testing.T) {
	root, chromium, node := browserPrereqs(t)
	playwright := filepath.Join(root, "tools/uitest/node_modules/playwright-core/index.mjs")

	// The UI, with every byte the browser sends it recorded.
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wire := &teeListener{Listener: ln}
	fw := &fakeFirewall{root: true}
	logDir := t.TempDir() + "/logs/security"
	tu := startUIOn(t, wire, nil, nil, func(s *Services) {
		s.Wizard = Wizard{GOOS: "linux", LogDir: logDir, Run: fw.run, Privileged: func() bool { return true },
			LookPath: func(string) (string, error) { return "/usr/sbin/ufw", nil }}
	})
	before, _ := tu.policy.Show(context.Background())
	_, port, _ := net.SplitHostPort(tu.host)

	attackJS, err := os.ReadFile("testdata/review3/attack.js")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var report []byte
	attacker := httpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/toss":
			// Cookies are not isolated by port: these reach the UI, and
			// the /api ones are sent BEFORE the real session cookie.
			for _, p := range []string{"/api", "/api/keys", "/session"} {
				http.SetCookie(w, &http.Cookie{Name: cookieName(port), Value: strings.Repeat("a", 64), Path: p})
			}
			_, _ = io.WriteString(w, "<!doctype html><title>toss</title>")
		case "/attack.html":
			_, _ = io.WriteString(w, `<!doctype html><title>cute cats</title><script src="/attack.js"></script>`)
		case "/attack.js":
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write(attackJS)
		case "/report":
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			report = b
			mu.Unlock()
		default:
			http.NotFound(w, r)
		}
	}))
	changes, _ := json.Marshal(func() []map[string]string {
		var out []map[string]string
		for _, c := range review3Changes {
			out = append(out, map[string]string{"path": c.path, "body": c.body})
		}
		return out
	}())

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, node, filepath.Join("testdata", "review3", "attack.mjs"))
	run.Env = append(os.Environ(), "PLAYWRIGHT="+playwright, "CHROMIUM="+chromium, "UI_URL="+tu.base+"/#token="+tu.token,
		"ATTACKER="+attacker, "CHANGES="+string(changes))
	var stderr bytes.Buffer
	run.Stderr = &stderr
	out, err := run.Output()
	var seen struct {
		Steps            []string `json:"steps"`
		Error            string   `json:"error"`
		Before           int      `json:"before"`
		After            int      `json:"after"`
		RebindEvil       any      `json:"rebind_evil.localhost"`
		RebindFLM        any      `json:"rebind_flm.localhost"`
		SessionGoneShown bool     `json:"session_gone_shown"`
		Cookies          []string `json:"cookies"`
		HiddenShown      []string `json:"hidden_shown"`
	}
	_ = json.Unmarshal(lastLine(out), &seen)
	if err != nil || seen.Error != "" {
		t.Fatalf("browser run failed: %v\n%s\nsteps %v\n%s", err, seen.Error, seen.Steps, stderr.String())
	}
	mu.Lock()
	var page map[string]any
	_ = json.Unmarshal(report, &page)
	mu.Unlock()
	t.Logf("browser: %s\nhostile page: %s", lastLine(out), report)

	// What the hostile page could read or do.
	for _, k := range []string{"read_keys", "read_page", "json_post", "frame", "window", "image"} {
		if v, _ := page[k].(string); v != "blocked" {
			t.Errorf("hostile page, %s: %q, want blocked", k, page[k])
		}
	}
	if n, _ := page["form_posts"].(float64); int(n) != 3*len(review3Changes) {
		t.Errorf("hostile page sent %v form posts, want %d", page["form_posts"], 3*len(review3Changes))
	}
	// The attacks did reach the UI, with the session cookie: the refusals
	// above are the server's, not the browser's.
	sent := wire.String()
	for _, want := range []string{"Content-Type: text/plain", "Content-Type: application/x-www-form-urlencoded", "Content-Type: multipart/form-data",
		"POST /api/wizard/firewall/apply ", "POST /api/proxies/start ", "Cookie: " + cookieName(port) + "=aaaa", "Host: evil.localhost:" + port,
		"Sec-Fetch-Site: same-site"} {
		if !strings.Contains(sent, want) {
			t.Errorf("the browser never sent %q to the UI: the attack did not happen as written", want)
		}
	}
	if !strings.Contains(sent, "Cookie: ") || !regexpSessionCookieAlongside(sent, cookieName(port)) {
		t.Errorf("the hostile page's requests did not carry the real session cookie: the same-site case was not exercised")
	}
	// DNS rebinding in the browser.
	for name, v := range map[string]any{"evil.localhost": seen.RebindEvil, "flm.localhost": seen.RebindFLM} {
		if n, ok := v.(float64); !ok || int(n) != http.StatusForbidden {
			t.Errorf("Chromium at http://%s:%s/: %v, want 403", name, port, v)
		}
	}
	// The user's tab still works after the cookie tossing.
	if seen.Before != http.StatusOK || seen.After != http.StatusOK || seen.SessionGoneShown {
		t.Errorf("the signed-in tab: %d before, %d after the hostile page (session-gone shown: %v); cookies %v", seen.Before, seen.After, seen.SessionGoneShown, seen.Cookies)
	}
	if len(seen.HiddenShown) != 0 {
		t.Errorf("elements marked hidden are displayed: %v", seen.HiddenShown)
	}
	tu.unchanged(t, fw, logDir, before.Policy.Document())
}

// regexpSessionCookieAlongside reports whether some request carried the
// tossed cookie and the real one together (the real one is not "aaaa…").
func regexpSessionCookieAlongside(wire, name string) bool {
	for _, line := range strings.Split(wire, "\r\n") {
		v, ok := strings.CutPrefix(line, "Cookie: ")
		if !ok {
			continue
		}
		real := false
		for _, part := range strings.Split(v, "; ") {
			if val, ok := strings.CutPrefix(part, name+"="); ok && val != strings.Repeat("a", 64) {
				real = true
			}
		}
		if real {
			return true
		}
	}
	return false
}

// teeListener records everything its connections read.
type teeListener struct {
	net.Listener
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *teeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &teeConn{Conn: c, l: l}, nil
}

func (l *teeListener) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type teeConn struct {
	net.Conn
	l *teeListener
}

func (c *teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.mu.Lock()
	c.l.buf.Write(p[:n])
	c.l.mu.Unlock()
	return n, err
}
