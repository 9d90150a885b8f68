package ui

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Review 3 (adversarial, from the attacker's side): the session scheme.
// The token in the URL fragment is exchanged once for a cookie
// (flm_ui_session_<port>) and a secret the tab keeps in sessionStorage
// and sends as X-FLM-Session. These tests attack the exchange, the cookie
// and the lifetime the way a hostile page or a hostile local process would.

// Two tabs (or a tab and an attacker who saw the link) race the exchange:
// exactly one wins; every other attempt gets 401 and no cookie, and the
// server holds one session.
func TestReview3TokenExchangeRaceHasOneWinner(t *testing.T) {
	tu := startUI(t)
	const n = 24
	type result struct {
		status  int
		cookies int
		secret  string
	}
	results := make(chan result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("POST", tu.base+"/session", strings.NewReader(`{"token":"`+tu.token+`"}`))
			req.Header.Set("Origin", tu.origin())
			req.Header.Set("Content-Type", "application/json")
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				results <- result{status: -1}
				return
			}
			defer resp.Body.Close()
			var ans struct {
				Session string `json:"session"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&ans)
			results <- result{status: resp.StatusCode, cookies: len(resp.Cookies()), secret: ans.Session}
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	wins, secret := 0, ""
	for r := range results {
		switch r.status {
		case http.StatusOK:
			wins++
			secret = r.secret
		case http.StatusUnauthorized:
			if r.cookies != 0 || r.secret != "" {
				t.Errorf("a losing exchange got a cookie or a secret: %+v", r)
			}
		default:
			t.Errorf("exchange answered %d", r.status)
		}
	}
	if wins != 1 || len(secret) != 64 {
		t.Fatalf("%d of %d racing exchanges won (secret %q), want exactly 1", wins, n, secret)
	}
}

// The token must be given exactly: no prefix, no case change, no padding,
// no other JSON type; none of these spends it.
func TestReview3TokenMustMatchExactly(t *testing.T) {
	tu := startUI(t)
	hdr := map[string]string{"Origin": tu.origin(), "Content-Type": "application/json"}
	for _, body := range []string{
		`{"token":"` + tu.token[:63] + `"}`,
		`{"token":"` + strings.ToUpper(tu.token) + `"}`,
		`{"token":" ` + tu.token + `"}`,
		`{"token":"` + tu.token + `0"}`,
		`{"token":["` + tu.token + `"]}`,
		`{"token":""}`,
		`{}`,
		`{"Token":"x"}`,
	} {
		resp, answer := tu.do(t, "POST", "/session", body, hdr)
		if resp.StatusCode == http.StatusOK || len(resp.Cookies()) != 0 {
			t.Errorf("sign-in with %s: %d %s", body, resp.StatusCode, answer)
		}
	}
	tu.login(t) // still unspent
}

// Cookies are not isolated by port: a page or server on 127.0.0.1:<other>
// can set cookies that the browser then sends to the UI ("cookie
// tossing"). With a longer Path the tossed cookie comes FIRST in the Cookie
// header; a server that reads only the first cookie of that name locks the
// signed-in tab out. And a value the attacker chose before sign-in must
// never become (or name) a session: no fixation.
func TestReview3TossedCookieNeitherLocksOutNorFixes(t *testing.T) {
	tu := startUI(t)
	_, port, _ := net.SplitHostPort(tu.host)
	const chosen = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	// The attacker's server on another port of 127.0.0.1 sets cookies
	// named like the UI's, for the paths the UI uses.
	attacker := httpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, path := range []string{"/api", "/api/keys", "/session"} {
			http.SetCookie(w, &http.Cookie{Name: cookieName(port), Value: chosen, Path: path})
		}
		_, _ = io.WriteString(w, "<p>nothing to see</p>")
	}))
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	visit := func() {
		resp, err := browser.Get(attacker)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	visit() // before sign-in: fixation attempt
	req, _ := http.NewRequest("POST", tu.base+"/session", strings.NewReader(`{"token":"`+tu.token+`"}`))
	req.Header.Set("Origin", tu.origin())
	req.Header.Set("Content-Type", "application/json")
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ans struct {
		Session string `json:"session"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ans)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || ans.Session == "" {
		t.Fatalf("sign-in with a tossed cookie in the jar: %d", resp.StatusCode)
	}
	u, _ := url.Parse(tu.base + "/api/keys")
	sent := jar.Cookies(u)
	if len(sent) < 2 || sent[0].Value != chosen {
		t.Fatalf("the jar does not put the tossed cookie first (%v): the test no longer models a browser", sent)
	}
	for _, c := range sent {
		if c.Value != chosen && c.Value == ans.Session {
			t.Fatal("the session secret is a cookie")
		}
	}
	visit() // after sign-in, again
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, tu.base+path, strings.NewReader(body))
		req.Header.Set(sessionHeader, ans.Session)
		req.Header.Set("Origin", tu.origin())
		req.Header.Set("Content-Type", "application/json")
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := call("GET", "/api/keys", ""); st != http.StatusOK {
		t.Errorf("the signed-in tab after cookie tossing: GET /api/keys %d %s", st, body)
	}
	if st, body := call("POST", "/api/keys", `{"label":"mine"}`); st != http.StatusOK {
		t.Errorf("the signed-in tab after cookie tossing: POST /api/keys %d %s", st, body)
	}
	// The attacker's chosen value opens nothing, with or without a secret.
	for _, secret := range []string{"", ans.Session, chosen} {
		hdr := map[string]string{"Cookie": cookieName(port) + "=" + chosen}
		if secret != "" {
			hdr[sessionHeader] = secret
		}
		if r, body := tu.do(t, "GET", "/api/keys", "", hdr); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("the attacker's chosen cookie with secret %q: %d %s", secret, r.StatusCode, body)
		}
	}
}

// httpServe serves h on a fresh loopback port and returns its URL.
func httpServe(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// An ended session (idle or too old) is gone on the server: its cookie
// and secret open nothing afterwards, even if the clock is set back, and
// no new sign-in is possible with the spent token.
func TestReview3EndedSessionIsForgotten(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	start := now
	tu := startUIAt(t, clock)
	cookie, secret := tu.login(t)
	set(start.Add(SessionIdle + time.Second))
	if resp, _ := tu.get(t, cookie, secret, "/api/keys"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after the idle limit: %d", resp.StatusCode)
	}
	set(start) // the clock goes back: the session stays ended
	if resp, _ := tu.get(t, cookie, secret, "/api/keys"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an ended session came back when the clock went back: %d", resp.StatusCode)
	}
	if resp, _ := tu.do(t, "POST", "/session", `{"token":"`+tu.token+`"}`, map[string]string{"Origin": tu.origin(), "Content-Type": "application/json"}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the spent token after the session ended: %d", resp.StatusCode)
	}
}

// Secrets are compared in constant time: no ==, != or map lookup on the
// token, the session id or the secret in the package's code (a timing
// test would be flaky; the code is what decides).
func TestReview3SecretsComparedInConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	files, _ := filepath.Glob("*.go")
	checked := 0
	secretish := func(e ast.Expr) bool {
		s := exprString(e)
		return strings.Contains(s, "token") || strings.Contains(s, "Token") || strings.Contains(s, "secret") ||
			strings.Contains(s, ".Value") || strings.Contains(s, "sessionHeader")
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		// Storing a session under its id (sessions[id] = …) and deleting it
		// say nothing about a guess; reading one by a request's value does.
		writes := map[ast.Expr]bool{}
		ast.Inspect(file, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.AssignStmt:
				for _, l := range x.Lhs {
					writes[l] = true
				}
			}
			return true
		})
		ast.Inspect(file, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.BinaryExpr:
				if (x.Op == token.EQL || x.Op == token.NEQ) && (secretish(x.X) || secretish(x.Y)) {
					// Comparing with "" or nil says "absent", not which.
					if other := map[string]bool{`""`: true, "nil": true}; !other[exprString(x.X)] && !other[exprString(x.Y)] {
						t.Errorf("%s: %s compares a secret with %s", fset.Position(x.Pos()), exprString(x), x.Op)
					}
				}
			case *ast.IndexExpr:
				if strings.HasSuffix(exprString(x.X), "sessions") && !writes[x] {
					t.Errorf("%s: %s looks a session up by its secret id (not constant time)", fset.Position(x.Pos()), exprString(x))
				}
			}
			return true
		})
	}
	if checked < 5 {
		t.Fatalf("checked %d files", checked)
	}
}

func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	case *ast.BasicLit:
		return x.Value
	case *ast.CallExpr:
		return exprString(x.Fun) + "(…)"
	case *ast.IndexExpr:
		return exprString(x.X) + "[" + exprString(x.Index) + "]"
	case *ast.BinaryExpr:
		return exprString(x.X) + " " + x.Op.String() + " " + exprString(x.Y)
	}
	return "?"
}

// The session's two halves never reach the proxy or the engines: the chat
// relay sends the user's API key to the proxy and nothing of the UI's
// session (no cookie, no X-FLM-Session).
func TestReview3SessionStaysWithTheUI(t *testing.T) {
	var mu sync.Mutex
	var seen http.Header
	proxy := httpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	tu := startUI(t)
	tu.proxies.handles = append(tu.proxies.handles, runningHandle(proxy))
	cookie, secret := tu.login(t)
	resp, body := tu.post(t, cookie, secret, "/api/chat", `{"handle_id":"proxy-1","model":"m","prompt":"hi","api_key":"flm_k"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chat: %d %s", resp.StatusCode, body)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, vs := range seen {
		for _, v := range vs {
			if strings.Contains(v, secret) || strings.Contains(v, strings.TrimPrefix(cookie, tu.cookieName()+"=")) || strings.EqualFold(k, sessionHeader) || strings.EqualFold(k, "Cookie") {
				t.Errorf("the proxy received %s: %s", k, v)
			}
		}
	}
	if seen.Get("Authorization") != "Bearer flm_k" {
		t.Errorf("the proxy got Authorization %q", seen.Get("Authorization"))
	}
}
