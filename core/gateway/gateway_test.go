package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/apikey/apikeytest"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/policy"
)

func TestKeyRing(t *testing.T) {
	ctx := context.Background()
	svc := &apikey.Service{Store: apikeytest.NewMemStore()}
	a, _ := svc.Create(ctx, "a")
	b, _ := svc.Create(ctx, "b")
	if _, err := svc.Revoke(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	recs, _ := svc.List(ctx)
	recs = append(recs, apikey.Record{ID: "broken", Hash: "zz"})
	ring := NewKeyRing(recs)
	if ring.Active() != 1 {
		t.Fatalf("Active = %d", ring.Active())
	}
	if rec, ok := ring.Verify(a.Plain); !ok || rec.ID != a.ID {
		t.Fatal("active key refused")
	}
	changed := a.Plain[:len(a.Plain)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(a.Plain, "A")]
	for _, bad := range []string{b.Plain, changed, "", "Bearer " + a.Plain, strings.Repeat("k", 100_000), a.Plain + " "} {
		if _, ok := ring.Verify(bad); ok {
			t.Errorf("Verify(%.12q…) accepted", bad)
		}
	}
	var nilRing *KeyRing
	if _, ok := nilRing.Verify(a.Plain); ok {
		t.Fatal("nil ring accepted a key")
	}
}

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLimiter()
	l.Now = func() time.Time { return now }
	lim := policy.RateLimit{RPM: 60, Burst: 3}
	for i := range 3 {
		d := l.Allow("k", lim)
		if !d.Allowed || d.Limit != 3 || d.Remaining != 2-i {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	d := l.Allow("k", lim)
	if d.Allowed || d.RetryAfter != time.Second || d.Remaining != 0 || d.Reset != 3*time.Second {
		t.Fatalf("over the limit: %+v", d)
	}
	if !l.Allow("other", lim).Allowed {
		t.Fatal("buckets are not per key")
	}
	now = now.Add(time.Second)
	if !l.Allow("k", lim).Allowed {
		t.Fatal("no refill after 1 s at 60 rpm")
	}
	if l.Allow("k", lim).Allowed {
		t.Fatal("refilled more than one token")
	}
	if !l.Allow("k", policy.RateLimit{}).Allowed {
		t.Fatal("rpm 0 must be off")
	}
	// Idle full buckets are swept.
	now = now.Add(time.Hour)
	for i := range 5000 {
		l.Allow(strings.Repeat("x", i%50)+"key", lim)
	}
	total := 0
	for i := range l.shards {
		total += len(l.shards[i].buckets)
	}
	if total > 60 {
		t.Fatalf("%d buckets kept", total)
	}
}

func catalog() *Catalog {
	eps := []engine.Endpoint{
		{ID: "ollama", Kind: engine.Ollama, BaseURL: "http://127.0.0.1:11434"},
		{ID: "llamacpp", Kind: engine.LlamaCPP, BaseURL: "http://127.0.0.1:8080"},
		{ID: "vllm", Kind: engine.VLLM, BaseURL: "http://127.0.0.1:8000"},
		{ID: "lmstudio", Kind: engine.LMStudio, BaseURL: "http://127.0.0.1:1234"},
	}
	states := []engine.State{
		{ID: "ollama", Status: engine.Status{State: engine.RunningHealthy}},
		{ID: "llamacpp", Status: engine.Status{State: engine.RunningDegraded}},
		{ID: "vllm", Status: engine.Status{State: engine.ErrorNetwork}},
	}
	m := func(e, n string) engine.Model {
		return engine.Model{ID: engine.ModelID(e, n), EngineID: e, Name: n}
	}
	ollama := func(n string) engine.Model { x := m("ollama", n); x.EngineKind = engine.Ollama; return x }
	return NewCatalog(eps, states, []engine.Model{ollama("llama3:latest"), m("ollama", "shared"), m("llamacpp", "org/model:Q4"), m("llamacpp", "shared"), m("vllm", "down-model")})
}

func TestCatalogResolve(t *testing.T) {
	c := catalog()
	if len(c.Models()) != 4 {
		t.Fatalf("models of running engines = %v", c.Models())
	}
	for in, want := range map[string]string{
		"flm://llamacpp/org/model:Q4": "llamacpp org/model:Q4",
		"org/model:Q4":                "llamacpp org/model:Q4",
		"llama3:latest":               "ollama llama3:latest",
		"flm://ollama/shared":         "ollama shared",
		"llama3":                      "ollama llama3:latest",
		"flm://ollama/llama3":         "ollama llama3:latest",
	} {
		tg, err := c.Resolve(in)
		if err != nil || tg.Endpoint.ID+" "+tg.Model != want {
			t.Errorf("Resolve(%q) = %+v, %v", in, tg, err)
		}
	}
	cases := map[string]Kind{
		"shared":                Ambiguous,
		"nope":                  ModelNotFound,
		"flm://ollama/nope":     ModelNotFound,
		"flm://ghost/x":         ModelNotFound,
		"flm://vllm/down-model": EngineUnavailable,
		"flm://lmstudio/x":      EngineUnavailable,
		"flm://bad engine/x":    InvalidRequest,
		"flm://ollama/":         InvalidRequest,
	}
	for in, kind := range cases {
		_, err := c.Resolve(in)
		var ge *Error
		if !errors.As(err, &ge) || ge.Kind != kind {
			t.Errorf("Resolve(%q) = %v, want kind %d", in, err, kind)
		}
	}
	_, err := c.Resolve("shared")
	var ge *Error
	errors.As(err, &ge)
	if strings.Join(ge.Candidates, " ") != "flm://llamacpp/shared flm://ollama/shared" || !strings.Contains(ge.Message, "flm://ollama/shared") {
		t.Fatalf("ambiguous: %+v", ge)
	}
}

func TestParseRequest(t *testing.T) {
	good := map[Route]string{
		Chat:        `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"temperature":0.2}`,
		Completions: `{"model":"m","prompt":"once upon"}`,
		Embeddings:  `{"model":"m","input":["a","b"]}`,
	}
	for route, body := range good {
		r, err := ParseRequest(route, []byte(body))
		if err != nil || r.Model != "m" {
			t.Errorf("%s: %v", route.Path(), err)
		}
	}
	bad := []struct {
		route Route
		body  string
		param string
	}{
		{Chat, ``, ""},
		{Chat, `{"model":"m","messages":[{"role":"user"}]`, ""},
		{Chat, `[1]`, ""},
		{Chat, `{"model":"m"} trailing`, ""},
		{Chat, "{\"model\":\"\xff\",\"messages\":[]}", ""},
		{Chat, `{"messages":[{"role":"user","content":"x"}]}`, "model"},
		{Chat, `{"model":5,"messages":[{"role":"user","content":"x"}]}`, "model"},
		{Chat, `{"model":"m"}`, "messages"},
		{Chat, `{"model":"m","messages":[]}`, "messages"},
		{Chat, `{"model":"m","messages":"hi"}`, "messages"},
		{Chat, `{"model":"m","messages":[{"content":"x"}]}`, "messages[0].role"},
		{Chat, `{"model":"m","messages":[{"role":"user"}],"stream":"yes"}`, "stream"},
		{Chat, `{"model":"m","messages":[{"role":"user"}],"n":0}`, "n"},
		{Completions, `{"model":"m"}`, "prompt"},
		{Completions, `{"model":"m","prompt":5}`, "prompt"},
		{Embeddings, `{"model":"m","input":[]}`, "input"},
		{Embeddings, `{"model":"m","input":"x","stream":true}`, "stream"},
	}
	for _, b := range bad {
		_, err := ParseRequest(b.route, []byte(b.body))
		var ge *Error
		if !errors.As(err, &ge) || ge.Kind != InvalidRequest || ge.Param != b.param {
			t.Errorf("ParseRequest(%s, %.40q) = %v (param %q), want param %q", b.route.Path(), b.body, err, paramOf(ge), b.param)
		}
	}
}

func paramOf(e *Error) string {
	if e == nil {
		return "<nil>"
	}
	return e.Param
}

func TestRewrite(t *testing.T) {
	c := catalog()
	tg, _ := c.Resolve("flm://llamacpp/org/model:Q4")
	r, _ := ParseRequest(Chat, []byte(`{"model":"flm://llamacpp/org/model:Q4","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"x":1},"x_extra":[1]}`))
	out, err := r.Rewrite(tg)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = json.Unmarshal(out, &got)
	so, _ := got["stream_options"].(map[string]any)
	if got["model"] != "org/model:Q4" || so["include_usage"] != true || so["x"] != float64(1) || got["x_extra"] == nil || !r.WantsUsage() {
		t.Fatalf("rewrite = %s", out)
	}
	// A client that said no to usage keeps its choice.
	r, _ = ParseRequest(Chat, []byte(`{"model":"m","messages":[{"role":"user"}],"stream":true,"stream_options":{"include_usage":false}}`))
	out, _ = r.Rewrite(tg)
	if !strings.Contains(string(out), `"stream_options":{"include_usage":false}`) || r.WantsUsage() {
		t.Fatalf("explicit include_usage false: %s", out)
	}
	r, _ = ParseRequest(Chat, []byte(`{"model":"llama3:latest","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}`))
	tg, _ = c.Resolve("llama3:latest")
	out, _ = r.Rewrite(tg)
	if strings.Contains(string(out), "stream_options") {
		t.Fatalf("stream_options kept on a non-stream request: %s", out)
	}
	r, _ = ParseRequest(Chat, []byte(`{"model":"llama3:latest","messages":[{"role":"user","content":"hi"}],"n":2}`))
	var ge *Error
	if _, err := r.Rewrite(tg); !errors.As(err, &ge) || ge.Kind != Unsupported || ge.Param != "n" {
		t.Fatalf("n=2 on Ollama = %v", err)
	}
	tg.Endpoint.Kind = engine.VLLM
	if _, err := r.Rewrite(tg); err != nil {
		t.Fatalf("n=2 on vLLM = %v", err)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{`{"model":"m","messages":[{"role":"user","content":"x"}]}`, `{}`, `[]`, `{"model":"flm://a/b","input":"x"}`} {
		f.Add(s)
	}
	c := catalog()
	f.Fuzz(func(t *testing.T, body string) {
		for _, route := range []Route{Chat, Completions, Embeddings} {
			r, err := ParseRequest(route, []byte(body))
			if err != nil {
				continue
			}
			tg, err := c.Resolve(r.Model)
			if err != nil {
				continue
			}
			out, err := r.Rewrite(tg)
			if err == nil && !json.Valid(out) {
				t.Fatalf("rewrite produced invalid JSON: %s", out)
			}
		}
	})
}
