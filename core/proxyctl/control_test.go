package proxyctl

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/flmerr"
)

func TestNewToken(t *testing.T) {
	a, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewToken()
	if len(a) != 2*TokenBytes || a == b || strings.Trim(a, "0123456789abcdef") != "" {
		t.Fatalf("tokens %q %q", a, b)
	}
}

// The control channel from an attacker's side: another local program, a
// browser page (DNS rebinding), a guessed or empty token.
func TestControlHandlerRefusesBeforeReloading(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	calls := 0
	h := ControlHandler(token, func(_ context.Context, parts Parts) (Applied, error) {
		calls++
		return Applied{Generation: 3, Parts: parts, AppliedAt: time.Unix(0, 0).UTC()}, nil
	})
	do := func(method, target, host, auth string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, nil)
		req.Host = host
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	good := "Bearer " + token
	refused := []struct {
		name           string
		method, target string
		host, auth     string
		hdr            []string
		status         int
	}{
		{"no token", "POST", ControlPath, "127.0.0.1:5000", "", nil, 401},
		{"wrong token", "POST", ControlPath, "127.0.0.1:5000", "Bearer " + strings.Repeat("0", 64), nil, 401},
		{"token prefix", "POST", ControlPath, "127.0.0.1:5000", "Bearer " + token[:32], nil, 401},
		{"not bearer", "POST", ControlPath, "127.0.0.1:5000", "Basic " + token, nil, 401},
		{"rebinding host", "POST", ControlPath, "evil.example:5000", good, nil, 403},
		{"browser origin", "POST", ControlPath, "127.0.0.1:5000", good, []string{"Origin", "http://evil.example"}, 403},
		{"GET", "GET", ControlPath, "127.0.0.1:5000", good, nil, 405},
		{"other path", "POST", "/v1/chat/completions", "127.0.0.1:5000", good, nil, 404},
		{"unknown parts", "POST", ControlPath + "?parts=everything", "127.0.0.1:5000", good, nil, 400},
		// Identify proves who holds the token: it must not answer without it.
		{"identify without token", "GET", IdentifyPath, "127.0.0.1:5000", "", nil, 401},
		{"identify wrong token", "GET", IdentifyPath, "127.0.0.1:5000", "Bearer " + strings.Repeat("0", 64), nil, 401},
		{"identify rebinding host", "GET", IdentifyPath, "evil.example:5000", good, nil, 403},
		{"identify browser origin", "GET", IdentifyPath, "127.0.0.1:5000", good, []string{"Origin", "http://evil.example"}, 403},
		{"identify POST", "POST", IdentifyPath, "127.0.0.1:5000", good, nil, 405},
	}
	for _, c := range refused {
		rec := do(c.method, c.target, c.host, c.auth, c.hdr...)
		var e ControlError
		if rec.Code != c.status || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error.Code == "" {
			t.Errorf("%s: %d %s", c.name, rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), token) {
			t.Errorf("%s: the answer echoes the token", c.name)
		}
	}
	if calls != 0 {
		t.Fatalf("%d refused requests reloaded anyway", calls)
	}

	if rec := do("GET", IdentifyPath, "127.0.0.1:5000", good); rec.Code != http.StatusNoContent || rec.Body.Len() != 0 || calls != 0 {
		t.Fatalf("identify: %d %q (reloads %d); want 204 and no reload", rec.Code, rec.Body, calls)
	}
	rec := do("POST", ControlPath+"?parts=security", "[::1]:5000", good)
	var a Applied
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &a) != nil || a.Generation != 3 || a.Parts != ReloadSecurity || calls != 1 {
		t.Fatalf("good request: %d %s", rec.Code, rec.Body)
	}
	if rec := do("POST", ControlPath, "127.0.0.1:5000", good); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"parts":"all"`) {
		t.Fatalf("default parts: %d %s", rec.Code, rec.Body)
	}

	// An empty token opens nothing.
	open := ControlHandler("", func(context.Context, Parts) (Applied, error) { calls++; return Applied{}, nil })
	for _, auth := range []string{"", "Bearer ", "Bearer"} {
		req := httptest.NewRequest("POST", ControlPath, nil)
		req.Host = "127.0.0.1:1"
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		open.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("empty server token, auth %q: %d", auth, rec.Code)
		}
	}
	if calls != 2 {
		t.Fatalf("calls = %d", calls)
	}
}

func TestControlHandlerReportsTheReloadError(t *testing.T) {
	h := ControlHandler("t", func(context.Context, Parts) (Applied, error) {
		return Applied{}, flmerr.Wrap(flmerr.New(flmerr.PolicyInvalid, "stored policy is invalid"), flmerr.PolicyInvalid, "load policy")
	})
	req := httptest.NewRequest("POST", ControlPath, nil)
	req.Host = "127.0.0.1:9"
	req.Header.Set("Authorization", "Bearer t")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var e ControlError
	if rec.Code != 500 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error.Code != flmerr.PolicyInvalid || !strings.Contains(e.Error.Message, "stored policy is invalid") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

func TestLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:5000": true, "[::1]:5000": true, "127.8.9.1:1": true,
		"127.0.0.1:0": false, "10.0.0.1:5000": false, "localhost:5000": false, "[::]:5000": false, "127.0.0.1": false, "": false,
	} {
		if LoopbackAddr(addr) != want {
			t.Errorf("LoopbackAddr(%q) = %v", addr, !want)
		}
	}
}
