package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/gateway"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/tools/enginefake"
)

// Hot-path benchmarks (docs/PERFORMANCE.md). CI runs them once
// (-benchtime=1x) so they keep compiling; timings are read by people.

func BenchmarkKeyVerify(b *testing.B) {
	src, key := newMemSource(&testing.T{})
	recs, _ := src.Keys(context.Background())
	ring := gateway.NewKeyRing(recs)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ring.Verify(key.Plain); !ok {
			b.Fatal("refused")
		}
	}
}

func BenchmarkPolicyCheck(b *testing.B) {
	p, _ := policy.Parse([]byte(`{"ip_whitelist":["10.0.0.0/8","192.168.0.0/16","127.0.0.1","::1"],"cors":{"allowed_origins":["https://a.example"]}}`))
	c := p.Compile()
	req := httptest.NewRequest("GET", "/v1/models", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	b.ReportAllocs()
	for b.Loop() {
		ip := resolveClientIP(req, c)
		if !c.AllowsIP(ip) || !c.AllowsOrigin("https://a.example") {
			b.Fatal("refused")
		}
	}
}

func BenchmarkRateLimiter(b *testing.B) {
	l := gateway.NewLimiter()
	lim := policy.RateLimit{RPM: 1 << 30, Burst: 1 << 30}
	b.ReportAllocs()
	for b.Loop() {
		l.Allow("key_0123456789abcdef", lim)
	}
}

func BenchmarkRouteAndRewrite(b *testing.B) {
	src, _ := newMemSource(&testing.T{})
	src.addEngine("ollama", engine.Ollama, "http://127.0.0.1:1", "llama3:latest", "tiny:latest")
	eps, states, models, _ := src.Engines(context.Background())
	cat := gateway.NewCatalog(eps, states, models)
	body := []byte(`{"model":"flm://ollama/llama3:latest","messages":[{"role":"system","content":"You are a storyteller."},{"role":"user","content":"Tell me a story about a cat."}],"max_tokens":16,"temperature":0.7}`)
	b.ReportAllocs()
	for b.Loop() {
		r, err := gateway.ParseRequest(gateway.Chat, body)
		if err != nil {
			b.Fatal(err)
		}
		t, err := cat.Resolve(r.Model)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Rewrite(t); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSSERelay(b *testing.B) {
	fx, err := enginefake.LoadFixture("ollama/v1_chat_completions_stream_usage.http")
	if err != nil {
		b.Fatal(err)
	}
	stream := fx.Response.Body
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		st := sseState{keepUsage: true}
		out := 0
		for chunk := range bytes.SplitAfterSeq(stream, []byte("\n\n")) {
			st.push(chunk)
			for {
				ev, ok := st.next(false)
				if !ok {
					break
				}
				out += len(ev)
			}
		}
		if !st.done || out < len(stream) {
			b.Fatalf("relayed %d of %d bytes", out, len(stream))
		}
	}
}

// BenchmarkChatThroughProxy is the whole request path in one process: the
// security chain, routing, rewrite, a real loopback round trip to a fast
// upstream, and the response copy. Profile it with -cpuprofile.
func BenchmarkChatThroughProxy(b *testing.B) {
	fx, _ := enginefake.LoadFixture("ollama/v1_chat_completions.http")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(fx.Response.Body)
	}))
	defer upstream.Close()
	src, key := newMemSource(&testing.T{})
	src.addEngine("ollama", engine.Ollama, upstream.URL, "tiny:latest")
	src.policy, _ = policy.Parse([]byte(`{"ip_whitelist":["127.0.0.1","::1","192.0.2.0/24"],"rate_limit":{"rpm":1000000000,"burst":1000000000}}`))
	srv, err := New(context.Background(), Options{Config: testConfig(), Source: src})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	body := `{"model":"flm://ollama/tiny:latest","messages":[{"role":"user","content":"Tell me a story about a cat."}],"max_tokens":16}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
		req.Host = "127.0.0.1:8080"
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set("Authorization", "Bearer "+key.Plain)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
