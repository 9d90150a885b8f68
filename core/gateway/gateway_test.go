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
		{ID: "ollama", Status: engine.Status{State: engine.RunningHealthy}, Habits: engine.Habits{LatestTagAlias: true, HonoursIncludeUsage: true}},
		{ID: "llamacpp", Status: engine.Status{State: engine.RunningDegraded}, Habits: engine.Habits{ClosesAfterStream: true}},
		{ID: "vllm", Status: engine.Status{State: engine.ErrorNetwork}, Habits: engine.Habits{MultipleChoices: true}},
	}
	m := func(e, n string) engine.Model {
		return engine.Model{ID: engine.ModelID(e, n), EngineID: e, Name: n}
	}
	return NewCatalog(eps, states, []engine.Model{m("ollama", "llama3:latest"), m("ollama", "shared"), m("llamacpp", "org/model:Q4"), m("llamacpp", "shared"), m("vllm", "down-model")})
}

func TestCatalogResolve(t *testing.T) {
	c := catalog()
	if len(c.Models()) != 4 {
		t.Fatalf("models of running engines = %v", c.Models())
	}
	if tg, _ := c.Resolve("org/model:Q4"); !tg.Habits.ClosesAfterStream || tg.Habits.LatestTagAlias {
		t.Fatalf("target habits = %+v, want llamacpp's", tg.Habits)
	}
	if tg, _ := c.Resolve("flm://ollama/llama3"); !tg.Habits.LatestTagAlias || !tg.Habits.HonoursIncludeUsage {
		t.Fatalf("target habits = %+v, want ollama's", tg.Habits)
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
		{Chat, `{"model":"m","Model":"x","messages":[{"role":"user"}]}`, "Model"},
		{Chat, `{"model":"m","messages":[{"role":"user"}],"stream_options":"x"}`, "stream_options"},
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

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{`{"model":"m","messages":[{"role":"user","content":"x"}]}`, `{}`, `[]`, `{"model":"flm://a/b","input":"x"}`,
		`{"model":"flm://off/y","prompt":"x"}`, `{"model":"flm://gpu/m","messages":[{"role":"user"}],"n":2}`, `{"model":"m","input":"x"}`} {
		f.Add(s)
	}
	c, eps := secretCatalog()
	// No error reveals an engine's address, unless the client typed it.
	leaks := func(t *testing.T, body string, err error) {
		var ge *Error
		if !errors.As(err, &ge) {
			return
		}
		for _, ep := range eps {
			host := strings.TrimPrefix(strings.TrimPrefix(ep.BaseURL, "http://"), "https://")
			host, _, _ = strings.Cut(host, "/")
			if !strings.Contains(body, host) && strings.Contains(ge.Message+ge.Param+strings.Join(ge.Candidates, ""), host) {
				t.Fatalf("error reveals %s: %s", host, ge.Message)
			}
		}
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, route := range []Route{Chat, Completions, Embeddings} {
			r, err := ParseRequest(route, []byte(body))
			if err != nil {
				leaks(t, body, err)
				continue
			}
			tg, err := c.Resolve(r.Model)
			if err != nil {
				leaks(t, body, err)
				continue
			}
			out, err := r.Rewrite(tg)
			leaks(t, body, err)
			if err == nil && !json.Valid(out) {
				t.Fatalf("rewrite produced invalid JSON: %s", out)
			}
		}
	})
}
