package enginehttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
)

const engineKey = "sk-engine-secret-0123456789" // the engine's own key, never to be seen

func env(name string) string {
	if name == "ENGINE_KEY" {
		return engineKey
	}
	return ""
}

func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func endpoint(url string) engine.Endpoint {
	return engine.Endpoint{ID: "e", Kind: engine.VLLM, BaseURL: url}
}

func bounded(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestDoSendsWhatEnginesExpect: the path joins the base URL (with or
// without a trailing slash), a body is JSON with its Content-Type, and the
// engine's key goes only into Authorization.
func TestDoSendsWhatEnginesExpect(t *testing.T) {
	type seen struct {
		method, path, ctype, accept, ua, auth, gzip string
		body                                        []byte
	}
	got := make(chan seen, 1)
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), r.Header.Get("Accept"),
			r.Header.Get("User-Agent"), r.Header.Get("Authorization"), r.Header.Get("Accept-Encoding"), b}
		w.Header().Set("X-Engine", "yes")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	c := New(env)

	ep := endpoint(s.URL + "/")
	ep.APIKeyEnv = "ENGINE_KEY"
	r, err := c.Do(bounded(t, 5*time.Second), ep, http.MethodPost, "/api/show", map[string]string{"model": "a b/c:d"})
	if err != nil {
		t.Fatal(err)
	}
	req := <-got
	if req.method != "POST" || req.path != "/api/show" || req.ctype != "application/json" ||
		req.accept != "application/json" || req.ua != "flm" || req.auth != "Bearer "+engineKey || req.gzip != "" {
		t.Errorf("request %+v", req)
	}
	if string(req.body) != `{"model":"a b/c:d"}` {
		t.Errorf("body %s", req.body)
	}
	if r.Status != http.StatusCreated || string(r.Body) != `{"ok":true}` || r.Header.Get("X-Engine") != "yes" || r.Latency <= 0 {
		t.Errorf("response %+v", r)
	}

	// Get: no body, no Content-Type; no key when the variable is unset or
	// when no variable is named.
	for _, keyEnv := range []string{"", "UNSET_VAR"} {
		ep := endpoint(s.URL)
		ep.APIKeyEnv = keyEnv
		if _, err := c.Get(bounded(t, 5*time.Second), ep, "/v1/models?x=1"); err != nil {
			t.Fatal(err)
		}
		req := <-got
		if req.method != "GET" || req.path != "/v1/models?x=1" || req.ctype != "" || req.auth != "" || len(req.body) != 0 {
			t.Errorf("APIKeyEnv %q: request %+v", keyEnv, req)
		}
	}
	// A client without Getenv sends no key either.
	if _, err := (&Client{HTTP: c.HTTP}).Get(bounded(t, 5*time.Second), ep, "/"); err != nil {
		t.Fatal(err)
	}
	if req := <-got; req.auth != "" {
		t.Errorf("no Getenv: Authorization %q", req.auth)
	}
}

func TestDoRejectsBadInputWithoutSending(t *testing.T) {
	var hits atomic.Int32
	s := server(t, func(http.ResponseWriter, *http.Request) { hits.Add(1) })
	c := New(env)
	if _, err := c.Do(bounded(t, 5*time.Second), endpoint(s.URL), http.MethodPost, "/", make(chan int)); err == nil {
		t.Error("an unencodable body was accepted")
	}
	if _, err := c.Do(bounded(t, 5*time.Second), endpoint(s.URL), "BAD METHOD", "/", nil); err == nil {
		t.Error("an invalid method was accepted")
	}
	if _, err := c.Get(bounded(t, 5*time.Second), endpoint("http://[::1"), "/"); err == nil {
		t.Error("an invalid base URL was accepted")
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
}

// TestRedirectsAreNotFollowed: a hostile server on an engine's port answers
// with a redirect to somewhere else (an internal service, a collector for
// the engine key). The client stops at the redirect: the target is never
// contacted and never sees the key.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var stolen atomic.Int32
	target := server(t, func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) })
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		hostile := server(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/steal", code)
		})
		ep := endpoint(hostile.URL)
		ep.APIKeyEnv = "ENGINE_KEY"
		r, err := New(env).Do(bounded(t, 5*time.Second), ep, http.MethodPost, "/v1/models", map[string]int{"a": 1})
		if err != nil {
			t.Fatalf("%d: %v", code, err)
		}
		if r.Status != code || r.Header.Get("Location") != target.URL+"/steal" {
			t.Errorf("%d: got %d, Location %q", code, r.Status, r.Header.Get("Location"))
		}
		if err := r.JSON(&struct{}{}); err == nil || err.Error() != fmt.Sprintf("HTTP %d", code) {
			t.Errorf("%d: JSON() = %v", code, err)
		}
	}
	if n := stolen.Load(); n != 0 {
		t.Errorf("the redirect target was contacted %d times", n)
	}
}

// TestBodiesAreBounded: a server that sends an endless body does not make
// the client read (or hold) more than MaxBody+1 bytes; a body of exactly
// MaxBody is fine.
func TestBodiesAreBounded(t *testing.T) {
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	var sent atomic.Int64
	endless := server(t, func(w http.ResponseWriter, r *http.Request) {
		for r.Context().Err() == nil {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	r, err := New(env).Get(bounded(t, 10*time.Second), endpoint(endless.URL), "/")
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless body: err %v", err)
	}
	if len(r.Body) != MaxBody+1 || r.Status != http.StatusOK {
		t.Errorf("read %d bytes (status %d), want MaxBody+1", len(r.Body), r.Status)
	}
	if o := NetworkObservation(err); o.Outcome != engine.OutcomeForeign {
		t.Errorf("an oversize answer is %q, want foreign (something answered)", o.Outcome)
	}

	exact := server(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(bytes.Repeat([]byte("b"), MaxBody)) })
	r, err = New(env).Get(bounded(t, 10*time.Second), endpoint(exact.URL), "/")
	if err != nil || len(r.Body) != MaxBody {
		t.Errorf("a body of exactly MaxBody: %d bytes, %v", len(r.Body), err)
	}
}

// TestTimeouts: the caller's deadline bounds the whole call, including a
// server that sends its headers and then trickles its body; a server that
// never sends headers is given up after the transport's header timeout even
// without a deadline.
func TestTimeouts(t *testing.T) {
	t.Run("trickling body", func(t *testing.T) {
		t.Parallel()
		s := server(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			rc := http.NewResponseController(w)
			for r.Context().Err() == nil {
				if _, err := w.Write([]byte(" ")); err != nil {
					return
				}
				_ = rc.Flush()
				time.Sleep(20 * time.Millisecond)
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := New(env).Get(ctx, endpoint(s.URL), "/")
		if err == nil || time.Since(start) > 3*time.Second {
			t.Fatalf("trickling body: err %v after %v", err, time.Since(start))
		}
		if o := NetworkObservation(err); o.Outcome != engine.OutcomeNetwork || o.Reason != "timed out" {
			t.Errorf("observation %+v", o)
		}
		if e := ModelsError(endpoint(s.URL), Response{}, err); !flmerr.Is(e, flmerr.EngineTimeout) {
			t.Errorf("ModelsError = %v (%s)", e, flmerr.CodeOf(e))
		}
	})
	t.Run("no headers", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		s := server(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		defer close(release)
		start := time.Now()
		_, err := New(env).Get(context.Background(), endpoint(s.URL), "/")
		if err == nil || time.Since(start) > 8*time.Second {
			t.Fatalf("silent server: err %v after %v", err, time.Since(start))
		}
		if o := NetworkObservation(err); o.Reason != "timed out" {
			t.Errorf("observation %+v", o)
		}
	})
}

// TestNetworkObservation classifies real transport failures.
func TestNetworkObservation(t *testing.T) {
	c := New(env)

	// Nothing listens: refused (the process is gone).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = c.Get(bounded(t, 5*time.Second), endpoint("http://"+addr), "/")
	if o := NetworkObservation(err); o.Outcome != engine.OutcomeNetwork || !o.Refused || o.Reason != "connection refused" {
		t.Errorf("refused: %+v (%v)", o, err)
	}
	if e := ModelsError(endpoint("http://"+addr), Response{}, err); !flmerr.Is(e, flmerr.EngineNetworkError) ||
		!strings.Contains(e.Error(), "vLLM at http://"+addr) || !strings.Contains(e.Error(), "connection refused") {
		t.Errorf("ModelsError = %v (%s)", e, flmerr.CodeOf(e))
	}

	// Accepted, then closed without an answer.
	hangup := server(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	ep := endpoint(hangup.URL)
	ep.APIKeyEnv = "ENGINE_KEY"
	_, err = c.Get(bounded(t, 5*time.Second), ep, "/")
	o := NetworkObservation(err)
	if err == nil || o.Outcome != engine.OutcomeNetwork || o.Refused || o.Reason != "connection reset" {
		t.Errorf("hang-up: %+v (%v)", o, err)
	}
	// The engine's key appears in no error a user or a log could see.
	if e := ModelsError(ep, Response{}, err); strings.Contains(err.Error(), engineKey) || strings.Contains(e.Error(), engineKey) {
		t.Errorf("the engine key leaked into an error: %v / %v", err, e)
	}

	// A body cut short: headers promised more than came.
	short := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"data":`)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	})
	r, err := c.Get(bounded(t, 5*time.Second), endpoint(short.URL), "/")
	if o := NetworkObservation(err); !errors.Is(err, io.ErrUnexpectedEOF) || o.Reason != "connection reset" || r.Status != http.StatusOK {
		t.Errorf("short body: %+v, status %d, %v", o, r.Status, err)
	}
	// Something arrived (a status), so listing models is an API error.
	if e := ModelsError(endpoint(short.URL), r, err); !flmerr.Is(e, flmerr.EngineAPIError) {
		t.Errorf("ModelsError = %v (%s)", e, flmerr.CodeOf(e))
	}

	for _, tc := range []struct {
		err    error
		reason string
	}{
		{context.DeadlineExceeded, "timed out"},
		{fmt.Errorf("read: %w", io.EOF), "connection reset"},
		{errors.New("read tcp: connection reset by peer"), "connection reset"},
		{errors.New("no route to host"), "no answer"},
	} {
		if o := NetworkObservation(tc.err); o.Outcome != engine.OutcomeNetwork || o.Reason != tc.reason || o.Refused {
			t.Errorf("%v: %+v, want %q", tc.err, o, tc.reason)
		}
	}
}

func TestResponseJSON(t *testing.T) {
	var v struct {
		Version string `json:"version"`
	}
	if err := (Response{Status: 200, Body: []byte(`{"version":"1.2"}`)}).JSON(&v); err != nil || v.Version != "1.2" {
		t.Errorf("ok: %v %+v", err, v)
	}
	for _, tc := range []struct {
		r    Response
		want string
	}{
		{Response{Status: 503, Body: []byte(`{"version":"1.2"}`)}, "HTTP 503"},
		{Response{Status: 200, Body: []byte("{\"version\":\"\xff\"}")}, "body is not valid UTF-8"},
		{Response{Status: 200, Body: []byte(`<html>nginx</html>`)}, "body is not the expected JSON: invalid character '<'"},
		{Response{Status: 200, Body: []byte(`{"version":12}`)}, "body is not the expected JSON: json: cannot unmarshal number"},
	} {
		err := tc.r.JSON(&v)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%d %q: %v, want %q", tc.r.Status, tc.r.Body, err, tc.want)
		}
	}
	// A decode error is cut to a readable length (a deep field path makes
	// it long).
	var deep struct {
		Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa struct {
			Bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb struct {
				Cccccccccccccccccccccccccccccccccccccccc string
			}
		}
	}
	long := `{"Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":{"Bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb":{"Cccccccccccccccccccccccccccccccccccccccc":1}}}`
	if err := (Response{Status: 200, Body: []byte(long)}).JSON(&deep); err == nil ||
		len(err.Error()) > len("body is not the expected JSON: ")+120+len("…") || !strings.HasSuffix(err.Error(), "…") {
		t.Errorf("long error: %v", err)
	}

	var e struct {
		Error string `json:"error"`
	}
	if err := (Response{Status: 401, Body: []byte(`{"error":"Unauthorized"}`)}).DecodeAny(&e); err != nil || e.Error != "Unauthorized" {
		t.Errorf("DecodeAny: %v %+v", err, e)
	}
	if err := (Response{Status: 500, Body: []byte("\xfe")}).DecodeAny(&e); err == nil {
		t.Error("DecodeAny accepted invalid UTF-8")
	}
	var syntax *json.SyntaxError
	if err := (Response{Status: 500, Body: []byte("{")}).DecodeAny(&e); !errors.As(err, &syntax) {
		t.Errorf("DecodeAny(%q) = %v, want a syntax error", "{", err)
	}
}

func TestModelsErrorCodes(t *testing.T) {
	ep := engine.Endpoint{ID: "o", Kind: engine.Ollama, BaseURL: "http://127.0.0.1:11434"}
	for _, tc := range []struct {
		r    Response
		err  error
		code flmerr.Code
		text string
	}{
		{Response{Status: 500}, nil, flmerr.EngineAPIError, "Ollama at http://127.0.0.1:11434: listing models answered HTTP 500"},
		{Response{Status: 200}, ErrTooLarge, flmerr.EngineAPIError, "Ollama at http://127.0.0.1:11434: listing models: response is larger than"},
		{Response{}, context.DeadlineExceeded, flmerr.EngineTimeout, "Ollama at http://127.0.0.1:11434: listing models timed out"},
		{Response{Status: 200}, errors.New("body is not the expected JSON"), flmerr.EngineAPIError, "Ollama at http://127.0.0.1:11434: listing models: body is not"},
		{Response{}, errors.New("dial tcp: no route to host"), flmerr.EngineNetworkError, "Ollama at http://127.0.0.1:11434: listing models: no answer"},
	} {
		e := ModelsError(ep, tc.r, tc.err)
		if !flmerr.Is(e, tc.code) || !strings.HasPrefix(e.Error(), tc.text) {
			t.Errorf("%d %v: %v (%s), want %s %q", tc.r.Status, tc.err, e, flmerr.CodeOf(e), tc.code, tc.text)
		}
	}
}

func TestObservationHelpers(t *testing.T) {
	if got := Describe(errors.New("boom"), "fallback"); got != "boom" {
		t.Errorf("Describe(err) = %q", got)
	}
	if got := Describe(nil, "no version"); got != "no version" {
		t.Errorf("Describe(nil) = %q", got)
	}
	f := Foreign(engine.LMStudio, "GET /api/v0/models: no model list")
	if f.Outcome != engine.OutcomeForeign || f.Reason != "the server there is not LM Studio (GET /api/v0/models: no model list)" {
		t.Errorf("Foreign = %+v", f)
	}
	b := Broken(engine.LlamaCPP, 7*time.Millisecond, "GET /props: %s", "no build_info")
	if b.Outcome != engine.OutcomeBroken || b.Latency != 7*time.Millisecond || b.Reason != "llama.cpp answered unexpectedly: GET /props: no build_info" {
		t.Errorf("Broken = %+v", b)
	}
}

// TestNewClientTransport: engines are reached directly (no proxy from the
// environment) with short connection timeouts and no redirects.
func TestNewClientTransport(t *testing.T) {
	c := New(nil)
	tr, ok := c.HTTP.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport %T", c.HTTP.Transport)
	}
	if tr.Proxy != nil || !tr.DisableCompression || tr.ResponseHeaderTimeout <= 0 || tr.TLSHandshakeTimeout <= 0 || c.HTTP.CheckRedirect == nil {
		t.Errorf("transport %+v", tr)
	}
}

// TestNewWithDialer: every connection, for any host name, is opened by the
// injected dialer (the proxy's egress); the name reaches it unresolved and
// a failing dialer's error reaches the caller.
func TestNewWithDialer(t *testing.T) {
	s := server(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{}`) })
	var asked atomic.Value
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		asked.Store(addr)
		return (&net.Dialer{}).DialContext(ctx, network, s.Listener.Addr().String())
	}
	c := NewWithDialer(env, dial)
	r, err := c.Get(bounded(t, 5*time.Second), endpoint("http://gpu-box.flm-test.invalid:8000"), "/v1/models")
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("Get: %v %d", err, r.Status)
	}
	if got, _ := asked.Load().(string); got != "gpu-box.flm-test.invalid:8000" {
		t.Fatalf("dialer asked for %q", got)
	}
	egressDown := errors.New("egress down")
	c = NewWithDialer(env, func(context.Context, string, string) (net.Conn, error) { return nil, egressDown })
	if _, err := c.Get(bounded(t, 5*time.Second), endpoint(s.URL), "/"); !errors.Is(err, egressDown) {
		t.Fatalf("failing dialer: %v", err)
	}
	if tr := c.HTTP.Transport.(*http.Transport); tr.Proxy != nil || tr.ResponseHeaderTimeout <= 0 {
		t.Errorf("NewWithDialer's transport differs from New's: %+v", tr)
	}
}

type fakeEgressErr struct{}

func (fakeEgressErr) Error() string {
	return "SOCKS5 egress 127.0.0.1:9050 is unavailable: connection refused"
}
func (fakeEgressErr) EgressUnavailable() bool { return true }

// TestNetworkObservationEgress: an egress failure is reported as such (the
// engine was not contacted), not as the engine refusing connections.
func TestNetworkObservationEgress(t *testing.T) {
	o := NetworkObservation(fmt.Errorf("Get: %w", fakeEgressErr{}))
	if o.Outcome != engine.OutcomeNetwork || o.Refused || !strings.Contains(o.Reason, "SOCKS5 egress") {
		t.Fatalf("%+v", o)
	}
}
