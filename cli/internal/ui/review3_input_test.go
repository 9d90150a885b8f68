package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
)

// Review 3: hostile input from a signed-in tab (a compromised extension,
// a confused script) and what answers and logs give away.

// Every state-changing endpoint, fed bodies that are not the one JSON
// object its screen sends: a clear 4xx with a stable code and message in
// the API's envelope, and nothing changed. A valid object followed by
// more text is malformed too: a decoder that stops after the first value
// would act on half a request.
func TestReview3MalformedBodiesChangeNothing(t *testing.T) {
	fw := &fakeFirewall{root: true}
	logDir := t.TempDir() + "/logs/security"
	tu := wizardUI(t, fw, logDir)
	cookie, secret := tu.login(t)
	before, _ := tu.policy.Show(context.Background())
	huge := `{"label":"` + strings.Repeat("a", maxBody+1) + `"}`
	for _, c := range review3Changes {
		bodies := map[string]string{
			"empty":          "",
			"truncated":      c.body[:len(c.body)-1],
			"null":           "null",
			"array":          "[" + c.body + "]",
			"string":         `"` + strings.ReplaceAll(c.body, `"`, `\"`) + `"`,
			"number":         "1",
			"trailing text":  c.body + " and more",
			"two objects":    c.body + c.body,
			"unknown field":  strings.TrimSuffix(c.body, "}") + `,"is_admin":true}`,
			"wrong type":     `{"` + firstKey(c.body) + `":{"nested":true}}`,
			"over the limit": huge,
			"not UTF-8":      "{\"label\":\"\xff\xfe\"}",
		}
		for name, body := range bodies {
			resp, answer := tu.post(t, cookie, secret, c.path, body)
			if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("%s with a %s body: %d, want 400/413 (%.200s)", c.path, name, resp.StatusCode, answer)
				continue
			}
			var env errorBody
			if err := json.Unmarshal([]byte(answer), &env); err != nil || env.Error.Code != "INVALID_ARGUMENT" || env.Error.Message == "" {
				t.Errorf("%s with a %s body: not a clear error envelope: %.200s", c.path, name, answer)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s with a %s body: Content-Type %q, Cache-Control %q", c.path, name, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
			}
			if name == "over the limit" && (resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(env.Error.Message, "MiB")) {
				t.Errorf("%s with a body over the limit: %d %q, want 413 naming the limit", c.path, resp.StatusCode, env.Error.Message)
			}
		}
	}
	// The sign-in exchange, likewise (the token is not spent).
	for name, body := range map[string]string{"null": "null", "trailing": `{"token":"` + tu.token + `"} x`, "two": `{"token":"x"}{"token":"` + tu.token + `"}`,
		"huge": `{"token":"` + strings.Repeat("0", 5000) + `"}`} {
		resp, answer := tu.do(t, "POST", "/session", body, map[string]string{"Origin": tu.origin(), "Content-Type": "application/json"})
		if resp.StatusCode/100 != 4 || len(resp.Cookies()) != 0 || !strings.Contains(answer, `"code":"INVALID_ARGUMENT"`) {
			t.Errorf("sign-in with a %s body: %d %s", name, resp.StatusCode, answer)
		}
	}
	tu.unchanged(t, fw, logDir, before.Policy.Document())
}

func firstKey(body string) string {
	var m map[string]json.RawMessage
	_ = json.Unmarshal([]byte(body), &m)
	for k := range m {
		return k
	}
	return "x"
}

// Every answer under /api/ — an unknown path, a wrong method, a refused
// request — is the API's JSON envelope with a code (the page shows
// error.message; a plain-text "404 page not found" shows as "HTTP 404"),
// and none may be cached.
func TestReview3EveryAPIErrorIsTheEnvelope(t *testing.T) {
	tu := startUI(t)
	cookie, secret := tu.login(t)
	all := map[string]string{"Cookie": cookie, sessionHeader: secret, "Origin": tu.origin(), "Content-Type": "application/json"}
	cases := []struct {
		method, path string
		hdr          map[string]string
		status       int
	}{
		{"GET", "/api/nope", all, http.StatusNotFound},
		{"POST", "/api/nope", all, http.StatusNotFound},
		{"GET", "/api/keys/revoke", all, http.StatusMethodNotAllowed},
		{"PUT", "/api/keys", all, http.StatusMethodNotAllowed},
		{"DELETE", "/api/policy", all, http.StatusMethodNotAllowed},
		{"GET", "/api/chat", all, http.StatusMethodNotAllowed},
		{"GET", "/api/nope", nil, http.StatusUnauthorized},
		{"GET", "/session", nil, http.StatusMethodNotAllowed},
	}
	for _, c := range cases {
		resp, body := tu.do(t, c.method, c.path, "{}", c.hdr)
		var env errorBody
		if resp.StatusCode != c.status || json.Unmarshal([]byte(body), &env) != nil || env.Error.Code == "" || env.Error.Message == "" {
			t.Errorf("%s %s: %d %q, want %d with the error envelope", c.method, c.path, resp.StatusCode, body, c.status)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: Cache-Control %q", c.method, c.path, resp.Header.Get("Cache-Control"))
		}
	}
}

// Every API answer, success or error, streamed or not, says no-store: a
// shared or disk cache must never keep a key, a policy or a chat.
func TestReview3NoAPIAnswerIsCached(t *testing.T) {
	proxy := httpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n")
	}))
	fw := &fakeFirewall{root: true}
	tu := wizardUI(t, fw, t.TempDir()+"/logs")
	tu.proxies.handles = append(tu.proxies.handles, runningHandle(proxy))
	cookie, secret := tu.login(t)
	for _, p := range review3Reads {
		resp, body := tu.get(t, cookie, secret, p)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: %d, Cache-Control %q (%.100s)", p, resp.StatusCode, resp.Header.Get("Cache-Control"), body)
		}
	}
	for _, c := range review3Changes {
		if c.path == "/api/wizard/firewall/apply" {
			continue // it runs the (fake) firewall; its answers go through writeJSON like the rest
		}
		resp, body := tu.post(t, cookie, secret, c.path, c.body)
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("POST %s (%d %.100s): Cache-Control %q", c.path, resp.StatusCode, body, resp.Header.Get("Cache-Control"))
		}
	}
	// The sign-in answer carries the secret.
	tu2 := startUI(t)
	resp, _ := tu2.do(t, "POST", "/session", `{"token":"`+tu2.token+`"}`, map[string]string{"Origin": tu2.origin(), "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("sign-in: %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
}

// Answers to anyone without a session name no file or directory of this
// machine and no Go internals.
func TestReview3AnswersWithoutSessionRevealNoPaths(t *testing.T) {
	tu := startUI(t)
	home, _ := os.UserHomeDir()
	wd, _ := os.Getwd()
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/", ""}, {"GET", "/nope", ""}, {"GET", "/static/nope.js", ""}, {"GET", "/static/../../../etc/passwd", ""},
		{"GET", "/api/keys", ""}, {"POST", "/api/keys", "{"}, {"POST", "/session", "{"}, {"POST", "/session", `{"token":"x"}`},
		{"GET", "/%2e%2e/%2e%2e/etc/passwd", ""},
	} {
		resp, body := tu.do(t, c.method, c.path, c.body, map[string]string{"Origin": tu.origin(), "Content-Type": "application/json"})
		for _, leak := range []string{wd, home, os.TempDir(), "goroutine ", ".go:", "root:x:"} {
			if leak != "" && leak != "/" && strings.Contains(body, leak) {
				t.Errorf("%s %s (%d) reveals %q: %.200s", c.method, c.path, resp.StatusCode, leak, body)
			}
		}
	}
}

// logRecorder keeps every log line the UI writes.
type logRecorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logRecorder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// The UI's log (and its HTTP server's error log) never holds the sign-in
// token, the session id or secret, a new key, the chat tester's key or
// prompt — on success or failure. The log is not empty, so the check is
// not vacuous.
func TestReview3NoSecretOrPromptInLogs(t *testing.T) {
	rec := &logRecorder{}
	log := slog.New(slog.NewTextHandler(rec, &slog.HandlerOptions{Level: slog.LevelDebug}))
	const prompt, chatKey = "PROMPT-the-merger-closes-friday", "flm_chatkey_0123456789"
	proxy := httpServe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if bytes.Contains(b, []byte("fail")) {
			w.WriteHeader(http.StatusBadRequest)
			// A proxy that echoes the prompt in its error.
			_, _ = io.WriteString(w, `{"error":{"message":"bad prompt: `+prompt+`","type":"invalid_request_error"}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\ndata: [DONE]\n\n")
	}))
	fw := &fakeFirewall{root: true}
	tu := startUILogged(t, log, func(s *Services) {
		s.Wizard = Wizard{GOOS: "linux", LogDir: t.TempDir(), Run: fw.run, Privileged: func() bool { return true },
			LookPath: func(string) (string, error) { return "/usr/sbin/ufw", nil }}
	})
	tu.proxies.handles = append(tu.proxies.handles, runningHandle(proxy))
	// A wrong token first, then the right one.
	tu.do(t, "POST", "/session", `{"token":"`+strings.Repeat("1", 64)+`"}`, map[string]string{"Origin": tu.origin(), "Content-Type": "application/json"})
	cookie, secret := tu.login(t)
	_, created := tu.post(t, cookie, secret, "/api/keys", `{"label":"phone"}`)
	var key struct {
		ID    string `json:"id"`
		Plain string `json:"plain_key"`
	}
	_ = json.Unmarshal([]byte(created), &key)
	if key.Plain == "" {
		t.Fatalf("no key: %s", created)
	}
	tu.post(t, cookie, secret, "/api/chat", `{"handle_id":"proxy-1","model":"m","prompt":"`+prompt+`","api_key":"`+chatKey+`"}`)
	tu.post(t, cookie, secret, "/api/chat", `{"handle_id":"proxy-1","model":"m","prompt":"`+prompt+` fail","api_key":"`+chatKey+`"}`)
	tu.post(t, cookie, secret, "/api/chat", `{"handle_id":"nope","model":"m","prompt":"`+prompt+`","api_key":"`+chatKey+`"}`)
	tu.post(t, cookie, secret, "/api/chat", `{"handle_id":"proxy-1","model":"m","prompt":"`+prompt+`","api_key":"`+chatKey+`"`) // malformed
	tu.post(t, cookie, secret, "/api/keys/revoke", `{"id":"`+key.ID+`"}`)
	tu.post(t, cookie, secret, "/api/wizard/firewall/apply", `{"tool":"ufw","mode":"local-http","port":"8080","cidr":"192.168.1.0/24","consent":true}`)
	tu.get(t, cookie, strings.Repeat("9", 64), "/api/keys")
	logged := rec.String()
	if !strings.Contains(logged, "ui session started") || !strings.Contains(logged, "ui created an api key") {
		t.Fatalf("the log lacks the events (is the logger wired?): %s", logged)
	}
	for name, s := range map[string]string{"token": tu.token, "session id": strings.TrimPrefix(cookie, tu.cookieName()+"="), "session secret": secret,
		"new key": key.Plain, "chat key": chatKey, "prompt": prompt} {
		if strings.Contains(logged, s) {
			t.Errorf("the log holds the %s: %s", name, logged)
		}
	}
}

// startUILogged is startUI with the server's logger.
func startUILogged(t *testing.T, log *slog.Logger, opts ...func(*Services)) *testUI {
	t.Helper()
	return startUIWith(t, nil, log, opts...)
}
