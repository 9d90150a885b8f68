package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/tools/enginefake"
)

// addKey issues a key as o describes in the source's store.
func (s *memSource) addKey(t testing.TB, o apikey.CreateOptions) apikey.Issued {
	t.Helper()
	k, err := s.keys.CreateWith(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func bearerOf(k apikey.Issued) []string { return []string{"Authorization", "Bearer " + k.Plain} }

// scopeSetup runs a proxy in front of two engines: "a", an Ollama
// (tiny:latest, served as "tiny" too, and embed:latest), and "b", a vLLM
// (org/other, org/embed). It returns the fakes by engine id.
func scopeSetup(t *testing.T) (*testProxy, map[string]*enginefake.Server) {
	t.Helper()
	src, key := newMemSource(t)
	a := startFake(t, enginefake.Options{Kind: enginefake.Ollama, Models: []enginefake.Model{{Name: "tiny:latest"}, {Name: "embed:latest", Embedding: true}}})
	b := startFake(t, enginefake.Options{Kind: enginefake.VLLM, Models: []enginefake.Model{{Name: "org/other"}, {Name: "org/embed", Embedding: true}}})
	src.addEngine("a", engine.Ollama, a.URL(), "tiny:latest", "embed:latest")
	src.addEngine("b", engine.VLLM, b.URL(), "org/other", "org/embed")
	return startProxy(t, src, key), map[string]*enginefake.Server{"a": a, "b": b}
}

// familyRequest is a request of one API family for a model.
type familyRequest struct {
	family, method, path string
	body                 func(model string) string
}

func chatLike(format string) func(string) string {
	return func(model string) string { return sprintfJSON(format, model) }
}

// scopedRoutes is every route that names a model, in every API family.
var scopedRoutes = []familyRequest{
	{"openai", "POST", "/v1/chat/completions", chatLike(`{"model":"%s","messages":[{"role":"user","content":"hi"}]}`)},
	{"openai", "POST", "/v1/chat/completions", chatLike(`{"model":"%s","stream":true,"messages":[{"role":"user","content":"hi"}]}`)},
	{"openai", "POST", "/v1/completions", chatLike(`{"model":"%s","prompt":"hi"}`)},
	{"openai", "POST", "/v1/embeddings", chatLike(`{"model":"%s","input":"hi"}`)},
	{"responses", "POST", "/v1/responses", chatLike(`{"model":"%s","input":"hi"}`)},
	{"responses", "POST", "/v1/responses", chatLike(`{"model":"%s","input":"hi","stream":true}`)},
	{"anthropic", "POST", "/v1/messages", chatLike(`{"model":"%s","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`)},
	{"anthropic", "POST", "/v1/messages", chatLike(`{"model":"%s","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)},
	{"anthropic", "POST", "/v1/messages/count_tokens", chatLike(`{"model":"%s","messages":[{"role":"user","content":"hi"}]}`)},
	{"ollama", "POST", "/api/chat", chatLike(`{"model":"%s","messages":[{"role":"user","content":"hi"}]}`)},
	{"ollama", "POST", "/api/chat", chatLike(`{"model":"%s","stream":false,"messages":[{"role":"user","content":"hi"}]}`)},
	{"ollama", "POST", "/api/chat", chatLike(`{"model":"%s"}`)}, // the load call answers without the engine
	{"ollama", "POST", "/api/generate", chatLike(`{"model":"%s","prompt":"hi"}`)},
	{"ollama", "POST", "/api/generate", chatLike(`{"model":"%s","prompt":"hi","raw":true,"stream":false}`)},
	{"ollama", "POST", "/api/embed", chatLike(`{"model":"%s","input":"hi"}`)},
	{"ollama", "POST", "/api/embeddings", chatLike(`{"model":"%s","prompt":"hi"}`)},
	{"ollama", "POST", "/api/show", chatLike(`{"model":"%s"}`)},
}

// checkForbidden checks a 403 model_not_allowed in the family's shape.
func checkForbidden(t *testing.T, fam string, r reply) {
	t.Helper()
	if r.status != http.StatusForbidden {
		t.Fatalf("%s: status %d, want 403: %s", fam, r.status, r.body)
	}
	switch fam {
	case "openai", "responses":
		if code := envelopeOf(t, r); code != "model_not_allowed" {
			t.Fatalf("%s: code %q: %s", fam, code, r.body)
		}
	case "anthropic":
		var e struct {
			Type  string
			Error struct{ Type, Message string }
		}
		if json.Unmarshal(r.body, &e) != nil || e.Type != "error" || e.Error.Type != "permission_error" || !strings.Contains(e.Error.Message, "may not use this model") {
			t.Fatalf("anthropic: %s", r.body)
		}
	case "ollama":
		if msg := ollamaError(t, r, 403); !strings.Contains(msg, "may not use this model") {
			t.Fatalf("ollama: %q", msg)
		}
	}
}

// The attack: a key limited to engine b's models tries engine a's model
// by every name that reaches it — full id, the implicit-tag alias, the
// bare name with and without its tag — on every route of every API
// family. Each attempt is a 403 model_not_allowed in the family's shape,
// engine a never sees a request, and the key still works for its own
// models.
func TestScopeAttackOtherEnginesModel(t *testing.T) {
	p, fakes := scopeSetup(t)
	scoped := p.src.addKey(t, apikey.CreateOptions{Label: "b-only", Models: []string{"flm://b/*"}})
	if err := p.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	names := []string{"flm://a/tiny:latest", "flm://a/tiny", "tiny", "tiny:latest", "flm://a/embed:latest", "embed"}
	for _, rt := range scopedRoutes {
		for _, name := range names {
			r := p.do(t, rt.method, rt.path, rt.body(name), bearerOf(scoped)...)
			t.Logf("%s %s %s → %d", rt.family, rt.path, name, r.status)
			checkForbidden(t, rt.family, r)
		}
	}
	if n := len(fakes["a"].Requests()); n != 0 {
		t.Fatalf("engine a got %d requests from a key scoped to b", n)
	}
	// Its own models work, on every route.
	for _, rt := range scopedRoutes {
		model := "org/other"
		if strings.Contains(rt.path, "embed") {
			model = "flm://b/org/embed"
		}
		r := p.do(t, rt.method, rt.path, rt.body(model), bearerOf(scoped)...)
		if rt.path == "/v1/messages/count_tokens" { // vLLM does not count Anthropic tokens
			if r.status != 404 {
				t.Fatalf("count_tokens on b = %d %s", r.status, r.body)
			}
			continue
		}
		if r.status != 200 {
			t.Fatalf("%s %s %s with its own model = %d %s", rt.family, rt.path, model, r.status, r.body)
		}
	}
}

// A scope naming one exact id covers every name of that model: the alias
// and the bare names resolve to the id, which is what the scope judges.
func TestScopeExactIDCoversAliases(t *testing.T) {
	p, _ := scopeSetup(t)
	exact := p.src.addKey(t, apikey.CreateOptions{Label: "tiny", Models: []string{"flm://a/tiny:latest"}})
	if err := p.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"flm://a/tiny:latest", "flm://a/tiny", "tiny", "tiny:latest"} {
		r := p.do(t, "POST", "/api/chat", `{"model":"`+name+`","stream":false,"messages":[{"role":"user","content":"hi"}]}`, bearerOf(exact)...)
		if r.status != 200 {
			t.Fatalf("%s = %d %s", name, r.status, r.body)
		}
		r = p.do(t, "POST", "/v1/chat/completions", `{"model":"`+name+`","messages":[{"role":"user","content":"hi"}]}`, bearerOf(exact)...)
		if r.status != 200 {
			t.Fatalf("openai %s = %d %s", name, r.status, r.body)
		}
	}
	checkForbidden(t, "ollama", p.do(t, "POST", "/api/embed", `{"model":"embed","input":"x"}`, bearerOf(exact)...))
}

// The attack: a second "model" member (or one spelled in another case)
// must not carry a request past the scope to another model.
func TestScopeAttackDuplicateModelKeys(t *testing.T) {
	p, fakes := scopeSetup(t)
	scoped := p.src.addKey(t, apikey.CreateOptions{Label: "b-only", Models: []string{"flm://b/*"}})
	if err := p.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	bodies := []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"org/other","model":"flm://a/tiny:latest","messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/chat/completions", `{"model":"flm://a/tiny:latest","model":"org/other","messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/chat/completions", `{"model":"org/other","Model":"flm://a/tiny:latest","messages":[{"role":"user","content":"hi"}]}`},
		{"/api/chat", `{"model":"org/other","model":"flm://a/tiny:latest","stream":false,"messages":[{"role":"user","content":"hi"}]}`},
		{"/api/chat", `{"model":"flm://a/tiny:latest","model":"org/other","stream":false,"messages":[{"role":"user","content":"hi"}]}`},
		{"/api/chat", `{"model":"org/other","MODEL":"flm://a/tiny:latest","stream":false,"messages":[{"role":"user","content":"hi"}]}`},
		{"/api/generate", `{"model":"org/other","Model":"tiny","prompt":"hi","stream":false}`},
		{"/v1/messages", `{"model":"org/other","Model":"tiny","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/responses", `{"model":"org/other","model":"tiny","input":"hi"}`},
	}
	for _, b := range bodies {
		r := p.do(t, "POST", b.path, b.body, bearerOf(scoped)...)
		if r.status == 200 {
			// Then it must have gone to b, the key's engine, as org/other.
			reqs := fakes["b"].Requests()
			if len(reqs) == 0 || !strings.Contains(string(reqs[len(reqs)-1].Body), `"org/other"`) || strings.Contains(string(reqs[len(reqs)-1].Body), "tiny") {
				t.Fatalf("%s %s answered 200 but engine b got %v", b.path, b.body, reqs)
			}
		}
	}
	if n := len(fakes["a"].Requests()); n != 0 {
		t.Fatalf("engine a got %d requests through duplicate model keys", n)
	}
}

// A scoped key lists only its models: /v1/models and /api/tags. Names in
// /api/tags still route back to the listed model.
func TestScopeListsOnlyAllowedModels(t *testing.T) {
	p, _ := scopeSetup(t)
	scoped := p.src.addKey(t, apikey.CreateOptions{Label: "a-chat", Models: []string{"flm://a/tiny*"}})
	if err := p.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	var models struct{ Data []struct{ ID string } }
	r := p.do(t, "GET", "/v1/models", "", bearerOf(scoped)...)
	if err := json.Unmarshal(r.body, &models); err != nil || len(models.Data) != 1 || models.Data[0].ID != "flm://a/tiny:latest" {
		t.Fatalf("scoped /v1/models = %d %s", r.status, r.body)
	}
	var tags struct{ Models []struct{ Name string } }
	r = p.do(t, "GET", "/api/tags", "", bearerOf(scoped)...)
	if err := json.Unmarshal(r.body, &tags); err != nil || len(tags.Models) != 1 || tags.Models[0].Name != "tiny:latest" {
		t.Fatalf("scoped /api/tags = %d %s", r.status, r.body)
	}
	// An unscoped key sees all four.
	r = p.do(t, "GET", "/v1/models", "", p.auth()...)
	if err := json.Unmarshal(r.body, &models); err != nil || len(models.Data) != 4 {
		t.Fatalf("/v1/models = %s", r.body)
	}
	r = p.do(t, "GET", "/api/tags", "", p.auth()...)
	if err := json.Unmarshal(r.body, &tags); err != nil || len(tags.Models) != 4 {
		t.Fatalf("/api/tags = %s", r.body)
	}
	var listed []string
	for _, m := range tags.Models {
		listed = append(listed, m.Name)
	}
	for _, want := range []string{"tiny:latest", "embed:latest", "org/other", "org/embed"} {
		if !slices.Contains(listed, want) {
			t.Fatalf("/api/tags lists %v, want %s", listed, want)
		}
	}
}

// An expired key is refused with 401 saying it expired, and when, in each
// family's shape; the key next to it is unaffected.
func TestScopeExpiredKey(t *testing.T) {
	p, _ := scopeSetup(t)
	past := time.Now().Add(-2 * time.Hour)
	p.src.keys.Now = func() time.Time { return past }
	expired := p.src.addKey(t, apikey.CreateOptions{Label: "old", ExpiresIn: time.Hour})
	p.src.keys.Now = nil
	if err := p.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	when := expired.ExpiresAt.UTC().Format(time.RFC3339)
	cases := []struct{ family, method, path, body string }{
		{"openai", "GET", "/v1/models", ""},
		{"openai", "POST", "/v1/chat/completions", `{"model":"org/other","messages":[{"role":"user","content":"hi"}]}`},
		{"anthropic", "POST", "/v1/messages", `{"model":"org/other","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`},
		{"ollama", "GET", "/api/tags", ""},
		{"ollama", "POST", "/api/chat", `{"model":"org/other","messages":[{"role":"user","content":"hi"}]}`},
	}
	for _, c := range cases {
		r := p.do(t, c.method, c.path, c.body, bearerOf(expired)...)
		var msg string
		switch c.family {
		case "openai":
			if r.status != 401 || envelopeOf(t, r) != "expired_api_key" {
				t.Fatalf("%s = %d %s", c.path, r.status, r.body)
			}
			var e struct{ Error struct{ Message string } }
			_ = json.Unmarshal(r.body, &e)
			msg = e.Error.Message
		case "anthropic":
			var e struct {
				Error struct{ Type, Message string }
			}
			if json.Unmarshal(r.body, &e) != nil || r.status != 401 || e.Error.Type != "authentication_error" {
				t.Fatalf("%s = %d %s", c.path, r.status, r.body)
			}
			msg = e.Error.Message
		case "ollama":
			msg = ollamaError(t, r, 401)
		}
		if !strings.Contains(msg, "expired") || !strings.Contains(msg, when) {
			t.Fatalf("%s: message %q does not say the key expired at %s", c.path, msg, when)
		}
	}
	if r := p.do(t, "GET", "/api/tags", "", p.auth()...); r.status != 200 {
		t.Fatalf("another key = %d", r.status)
	}
	// A key that expires later works until then.
	later := p.src.addKey(t, apikey.CreateOptions{Label: "new", ExpiresIn: time.Hour})
	if err := p.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := p.do(t, "GET", "/api/tags", "", bearerOf(later)...); r.status != 200 {
		t.Fatalf("unexpired key = %d %s", r.status, r.body)
	}
}

func rateLimitOf(r reply) (limit, remaining int) {
	limit, _ = strconv.Atoi(r.header.Get("X-RateLimit-Limit"))
	remaining, _ = strconv.Atoi(r.header.Get("X-RateLimit-Remaining"))
	return limit, remaining
}

// A key's own limit bites on its own: the key with --rpm 3 is refused on
// its fourth request (429 with its bucket's headers, in the family's
// shape), while another key goes on under the policy's limit. Responses
// carry the headers of the tighter bucket.
func TestScopeOwnRateLimit(t *testing.T) {
	p, _ := scopeSetup(t)
	p.src.setPolicy(t, `{"rate_limit":{"rpm":100,"burst":100}}`)
	own := p.src.addKey(t, apikey.CreateOptions{Label: "kid-tablet", RPM: 3})
	if err := p.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		path := []string{"/v1/models", "/api/tags", "/api/version"}[i]
		r := p.do(t, "GET", path, "", bearerOf(own)...)
		if limit, rem := rateLimitOf(r); r.status != 200 || limit != 3 || rem != 2-i {
			t.Fatalf("request %d = %d, X-RateLimit %d/%d, want 3/%d", i, r.status, limit, rem, 2-i)
		}
	}
	r := p.do(t, "GET", "/api/tags", "", bearerOf(own)...)
	if msg := ollamaError(t, r, 429); !strings.Contains(msg, "own rate limit") || r.header.Get("Retry-After") == "" || r.header.Get("X-RateLimit-Limit") != "3" {
		t.Fatalf("4th request: %q %v", msg, r.header)
	}
	if r := p.do(t, "GET", "/v1/models", "", bearerOf(own)...); r.status != 429 || envelopeOf(t, r) != "rate_limit_exceeded" {
		t.Fatalf("5th request (openai) = %d %s", r.status, r.body)
	}
	for i := range 10 {
		r := p.do(t, "GET", "/api/tags", "", p.auth()...)
		if limit, rem := rateLimitOf(r); r.status != 200 || limit != 100 || rem != 99-i {
			t.Fatalf("other key's request %d = %d, X-RateLimit %d/%d", i, r.status, limit, rem)
		}
	}
}

// The policy's per-key limit still applies to a key with a looser limit of
// its own: the tighter of the two bites, and the headers are its.
func TestScopePolicyLimitStillBites(t *testing.T) {
	p, _ := scopeSetup(t)
	p.src.setPolicy(t, `{"rate_limit":{"rpm":2,"burst":2}}`)
	own := p.src.addKey(t, apikey.CreateOptions{Label: "loose", RPM: 50})
	if err := p.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		r := p.do(t, "GET", "/api/version", "", bearerOf(own)...)
		if limit, rem := rateLimitOf(r); r.status != 200 || limit != 2 || rem != 1-i {
			t.Fatalf("request %d = %d, X-RateLimit %d/%d, want the policy's 2/%d", i, r.status, limit, rem, 1-i)
		}
	}
	r := p.do(t, "GET", "/api/version", "", bearerOf(own)...)
	if msg := ollamaError(t, r, 429); r.header.Get("X-RateLimit-Limit") != "2" || !strings.Contains(msg, "rate limit") {
		t.Fatalf("3rd request: %q %v", msg, r.header)
	}
}

// A key without scopes is judged by one length check: the scope check
// costs nothing on the plain OpenAI path.
func TestScopeFastPath(t *testing.T) {
	s := &Server{}
	rec := apikey.Record{ID: "k"}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := s.checkScope(nil, rec, "flm://a/tiny:latest"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("checkScope for an unscoped key allocates %v times", allocs)
	}
	all := []engine.Model{{ID: "flm://a/x"}, {ID: "flm://b/y"}}
	if got := visibleModels(rec, all); &got[0] != &all[0] {
		t.Fatal("an unscoped key's model list must be the catalog itself, not a copy")
	}
	scoped := apikey.Record{Models: []string{"flm://b/*"}}
	if got := visibleModels(scoped, all); len(got) != 1 || got[0].ID != "flm://b/y" {
		t.Fatalf("scoped list %v", got)
	}
}

// Refusals of scoped and expired keys are audited with the key's id, so
// the owner sees whose key probed which route; the plaintext key is in no
// row.
func TestScopeRefusalsAudited(t *testing.T) {
	src, key := newMemSource(t)
	a := startFake(t, enginefake.Options{Kind: enginefake.Ollama, Models: []enginefake.Model{{Name: "tiny:latest"}}})
	src.addEngine("a", engine.Ollama, a.URL(), "tiny:latest")
	scoped := src.addKey(t, apikey.CreateOptions{Label: "none-of-a", Models: []string{"flm://b/*"}})
	src.keys.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expired := src.addKey(t, apikey.CreateOptions{Label: "old", ExpiresIn: time.Hour})
	src.keys.Now = nil
	audit := &memAudit{}
	p := startProxy(t, src, key, func(o *Options) { o.Audit = audit; o.AuditEvery = time.Hour })
	for range 3 {
		p.do(t, "POST", "/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}]}`, bearerOf(scoped)...)
	}
	p.do(t, "POST", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi"}]}`, bearerOf(scoped)...)
	p.do(t, "GET", "/api/tags", "", bearerOf(expired)...)
	p.srv.audit.safeFlush(context.Background())
	rows := map[string]AuditEvent{}
	for _, e := range audit.all() {
		rows[e.Type+" "+e.Endpoint] = e
		if strings.Contains(fmt.Sprintf("%+v", e), scoped.Plain) || strings.Contains(fmt.Sprintf("%+v", e), expired.Plain) {
			t.Fatalf("an audit row holds a plaintext key: %+v", e)
		}
	}
	if e := rows["model_not_allowed /api/chat"]; e.KeyID != scoped.ID || e.Count != 3 || e.Status != 403 {
		t.Fatalf("scope refusal row: %+v (all: %+v)", e, rows)
	}
	if e := rows["model_not_allowed /v1/chat/completions"]; e.KeyID != scoped.ID || e.Count != 1 {
		t.Fatalf("scope refusal row (openai): %+v", e)
	}
	if e := rows["auth_failure /api/tags"]; e.KeyID != expired.ID || e.Detail != "expired_api_key" || e.Status != 401 {
		t.Fatalf("expired key row: %+v", e)
	}
	if n := len(a.Requests()); n != 0 {
		t.Fatalf("the engine got %d requests", n)
	}
}
