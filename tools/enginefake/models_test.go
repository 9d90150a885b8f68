package enginefake

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Names that a real deployment has: a namespace and a tag, a space, unicode.
var oddNames = []string{"org/model:Q4", "has space", "ünïcödé"}

func oddModels() []Model {
	return []Model{
		{Name: oddNames[0], ContextLength: 4096},
		{Name: oddNames[1]},
		{Name: oddNames[2], Embedding: true, ContextLength: 8192},
	}
}

// listEntries decodes body and returns the array at key and its entries
// re-encoded one by one.
func listEntries(t *testing.T, body []byte, key string) [][]byte {
	t.Helper()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(doc[key], &entries); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	out := make([][]byte, len(entries))
	for i, e := range entries {
		out[i] = e
	}
	return out
}

// capturedEntry returns entry i of the array at key in a fixture's body.
func capturedEntry(t *testing.T, fixture, key string, i int) []byte {
	t.Helper()
	return listEntries(t, mustFixture(fixture).Response.Body, key)[i]
}

func field(t *testing.T, b []byte, key string) any {
	t.Helper()
	v, err := shapeOf(b)
	if err != nil {
		t.Fatal(err)
	}
	return v.(map[string]any)[key]
}

func wantShape(t *testing.T, what string, captured, got []byte) {
	t.Helper()
	if err := sameShape(captured, got); err != nil {
		t.Errorf("%s: %v\n got %s\nwant %s", what, err, got, captured)
	}
}

func TestModelSubstitutionOllama(t *testing.T) {
	srv := startFake(t, Options{Kind: Ollama, Models: oddModels()})
	c := testClient()
	want := []string{"org/model:Q4", "has space:latest", "ünïcödé:latest"} // Ollama adds ":latest"

	r := get(t, c, srv.URL()+"/v1/models")
	for i, e := range listEntries(t, r.Body, "data") {
		wantShape(t, "/v1/models entry", capturedEntry(t, "ollama/v1_models.http", "data", 0), e)
		if id := field(t, e, "id"); id != want[i] {
			t.Errorf("/v1/models[%d].id = %v, want %q", i, id, want[i])
		}
	}
	r = get(t, c, srv.URL()+"/api/tags")
	entries := listEntries(t, r.Body, "models")
	if len(entries) != 3 {
		t.Fatalf("/api/tags: %s", r.Body)
	}
	for i, e := range entries {
		wantShape(t, "/api/tags entry", capturedEntry(t, "ollama/api_tags.http", "models", pick(i == 2, 1, 0)), e)
		if field(t, e, "name") != want[i] || field(t, e, "model") != want[i] {
			t.Errorf("/api/tags[%d] = %s", i, e)
		}
	}

	r = post(t, c, srv.URL()+"/api/show", `{"model":"has space"}`)
	wantShape(t, "/api/show", mustFixture("ollama/api_show.http").Response.Body, r.Body)
	r = post(t, c, srv.URL()+"/api/show", `{"model":"ünïcödé"}`)
	wantShape(t, "/api/show embedding", mustFixture("ollama/api_show_embed_model.http").Response.Body, r.Body)
	if mi := field(t, r.Body, "model_info").(map[string]any); mi["llama.context_length"] != json.Number("8192") {
		t.Errorf("context length: %v", mi["llama.context_length"])
	}
	if caps := field(t, r.Body, "capabilities"); caps.([]any)[0] != "embedding" {
		t.Errorf("capabilities %v", caps)
	}

	r = post(t, c, srv.URL()+"/api/chat", `{"model":"org/model:Q4","messages":[{"role":"user","content":"hi"}],"stream":false}`)
	if r.Status != 200 || field(t, r.Body, "model") != "org/model:Q4" {
		t.Errorf("chat: %d %s", r.Status, r.Body)
	}
	r = post(t, c, srv.URL()+"/api/chat", `{"model":"ünïcödé","messages":[{"role":"user","content":"hi"}]}`)
	if r.Status != 400 || field(t, r.Body, "error") != `"ünïcödé" does not support chat` {
		t.Errorf("chat on embedding model: %d %s", r.Status, r.Body)
	}
	r = get(t, c, srv.URL()+"/api/ps")
	ps := listEntries(t, r.Body, "models")
	if len(ps) != 1 || field(t, ps[0], "name") != "org/model:Q4" || field(t, ps[0], "context_length") != json.Number("4096") {
		t.Errorf("/api/ps: %s", r.Body)
	}
	wantShape(t, "/api/ps entry", capturedEntry(t, "ollama/api_ps.http", "models", 0), ps[0])

	r = post(t, c, srv.URL()+"/v1/embeddings", `{"model":"ünïcödé","input":["a","b","c"]}`)
	if r.Status != 200 || len(listEntries(t, r.Body, "data")) != 3 || field(t, r.Body, "model") != "ünïcödé" {
		t.Errorf("/v1/embeddings batch: %d %.300s", r.Status, r.Body)
	}
	// gin's /v1/models/:model is one path segment: a name with '/' 404s.
	if r = get(t, c, srv.URL()+"/v1/models/has%20space"); r.Status != 200 || field(t, r.Body, "id") != "has space" {
		t.Errorf("/v1/models/has space: %d %s", r.Status, r.Body)
	}
	if r = get(t, c, srv.URL()+"/v1/models/org/model:Q4"); r.Status != 404 || string(r.Body) != "404 page not found" {
		t.Errorf("/v1/models/org/model:Q4: %d %s", r.Status, r.Body)
	}
}

func TestModelSubstitutionLMStudio(t *testing.T) {
	srv := startFake(t, Options{Kind: LMStudio, Models: oddModels()})
	c := testClient()
	r := get(t, c, srv.URL()+"/v1/models")
	for i, e := range listEntries(t, r.Body, "data") {
		wantShape(t, "/v1/models entry", capturedEntry(t, "lmstudio/v1_models.http", "data", 0), e)
		if field(t, e, "id") != oddNames[i] {
			t.Errorf("/v1/models[%d] = %s", i, e)
		}
	}
	r = get(t, c, srv.URL()+"/api/v0/models")
	entries := listEntries(t, r.Body, "data")
	if len(entries) != 3 {
		t.Fatalf("/api/v0/models: %s", r.Body)
	}
	for i, e := range entries {
		// Given models are loaded: the loaded LLM entry's shape; the loaded
		// embedding entry gains loaded_context_length like it.
		if i < 2 {
			wantShape(t, "/api/v0/models entry", capturedEntry(t, "lmstudio/api_v0_models.http", "data", 0), e)
		}
		if field(t, e, "id") != oddNames[i] || field(t, e, "state") != "loaded" {
			t.Errorf("/api/v0/models[%d] = %s", i, e)
		}
	}
	if typ := field(t, entries[2], "type"); typ != "embeddings" || field(t, entries[2], "max_context_length") != json.Number("8192") {
		t.Errorf("embedding entry %s", entries[2])
	}
	r = get(t, c, srv.URL()+"/api/v0/models/org/model:Q4")
	if r.Status != 200 || field(t, r.Body, "id") != "org/model:Q4" {
		t.Errorf("/api/v0/models/org/model:Q4: %d %s", r.Status, r.Body)
	}
	r = post(t, c, srv.URL()+"/v1/chat/completions", `{"model":"has space","messages":[{"role":"user","content":"hi"}]}`)
	if field(t, r.Body, "model") != "has space" || field(t, r.Body, "system_fingerprint") != "has space" {
		t.Errorf("chat: %s", r.Body)
	}
	wantShape(t, "chat", mustFixture("lmstudio/v1_chat_completions.http").Response.Body, r.Body)
	// Several models loaded: an unknown name is a 404 listing them.
	r = post(t, c, srv.URL()+"/v1/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`)
	if r.Status != 404 || !strings.Contains(string(r.Body), `ünïcödé`) {
		t.Errorf("unknown model: %d %s", r.Status, r.Body)
	}
}

func TestLMStudioSingleLoadedModelIgnoresName(t *testing.T) {
	srv := startFake(t, Options{Kind: LMStudio, Models: []Model{{Name: "only-one"}}})
	r := post(t, testClient(), srv.URL()+"/v1/chat/completions", `{"model":"default","messages":[{"role":"user","content":"hi"}]}`)
	if r.Status != 200 || field(t, r.Body, "model") != "only-one" {
		t.Errorf("%d %s", r.Status, r.Body)
	}
	r = get(t, testClient(), srv.URL()+"/health")
	if r.Status != 200 || field(t, r.Body, "error") != "Unexpected endpoint or method. (GET /health)" {
		t.Errorf("unknown route: %d %s", r.Status, r.Body)
	}
}

func TestModelSubstitutionLlamaCpp(t *testing.T) {
	srv := startFake(t, Options{Kind: LlamaCpp, Models: []Model{{Name: "org/model:Q4", ContextLength: 4096}}})
	c := testClient()
	r := get(t, c, srv.URL()+"/v1/models")
	wantShape(t, "/v1/models", mustFixture("llamacpp/v1_models.http").Response.Body, r.Body)
	e := listEntries(t, r.Body, "data")[0]
	if field(t, e, "id") != "org/model:Q4" || field(t, e, "meta").(map[string]any)["n_ctx"] != json.Number("4096") {
		t.Errorf("data[0] %s", e)
	}
	if m := listEntries(t, r.Body, "models")[0]; field(t, m, "name") != "org/model:Q4" {
		t.Errorf("models[0] %s", m)
	}
	r = get(t, c, srv.URL()+"/props")
	if field(t, r.Body, "model_alias") != "org/model:Q4" {
		t.Errorf("props %s", r.Body)
	}
	// It ignores the requested model and reports its own.
	r = post(t, c, srv.URL()+"/v1/chat/completions", `{"model":"whatever","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	for _, ev := range sseData(t, r.Body) {
		if string(ev) != "[DONE]" && field(t, ev, "model") != "org/model:Q4" {
			t.Errorf("event %s", ev)
		}
	}
	// A fresh client: llama-server closed the connection after the stream,
	// and a pooled one could be that dead connection.
	r = post(t, testClient(), srv.URL()+"/v1/embeddings", `{"input":"x"}`)
	if r.Status != 501 {
		t.Errorf("embeddings without an embedding model: %d", r.Status)
	}
}

func TestModelSubstitutionLlamaCppRouter(t *testing.T) {
	srv := startFake(t, Options{Kind: LlamaCpp, Router: true, Models: oddModels()})
	c := testClient()
	r := post(t, c, srv.URL()+"/v1/chat/completions", `{"model":"has space","messages":[{"role":"user","content":"hi"}]}`)
	if r.Status != 200 || field(t, r.Body, "model") != "has space" || !r.Close {
		t.Errorf("chat: %d close=%v %s", r.Status, r.Close, r.Body)
	}
	r = get(t, c, srv.URL()+"/v1/models")
	entries := listEntries(t, r.Body, "data")
	for i, e := range entries {
		if field(t, e, "id") != oddNames[i] {
			t.Errorf("entry %d: %s", i, e)
		}
	}
	wantShape(t, "loaded entry", capturedEntry(t, "llamacpp/router_mode/models_after_load.http", "data", 0), entries[1])
	wantShape(t, "unloaded entry", capturedEntry(t, "llamacpp/router_mode/models_initial.http", "data", 0), entries[0])
	if args := field(t, entries[1], "status").(map[string]any)["args"].([]any); args[6] != "has space" {
		t.Errorf("--alias in args: %v", args)
	}
	r = post(t, c, srv.URL()+"/v1/chat/completions", `{"model":"nope","messages":[]}`)
	if r.Status != 400 || !strings.Contains(string(r.Body), "model 'nope' not found") {
		t.Errorf("unknown: %d %s", r.Status, r.Body)
	}
}

func TestModelSubstitutionVLLM(t *testing.T) {
	srv := startFake(t, Options{Kind: VLLM, Models: []Model{{Name: "org/model:Q4", ContextLength: 4096}, {Name: "ünïcödé"}}})
	c := testClient()
	r := get(t, c, srv.URL()+"/v1/models")
	entries := listEntries(t, r.Body, "data")
	for i, e := range entries {
		wantShape(t, "card", capturedEntry(t, "vllm/v1_models.http", "data", 0), e)
		if field(t, e, "id") != []string{"org/model:Q4", "ünïcödé"}[i] || field(t, e, "owned_by") != "vllm" {
			t.Errorf("card %d %s", i, e)
		}
	}
	if field(t, entries[0], "max_model_len") != json.Number("4096") || field(t, entries[1], "max_model_len") != json.Number("32768") {
		t.Errorf("max_model_len: %s", r.Body)
	}
	r = post(t, c, srv.URL()+"/v1/chat/completions", `{"model":"ünïcödé","messages":[{"role":"user","content":"hi"}]}`)
	if r.Status != 200 || field(t, r.Body, "model") != "ünïcödé" {
		t.Errorf("chat %d %s", r.Status, r.Body)
	}
	r = do(t, c, http.MethodGet, srv.URL()+"/metrics", nil, nil)
	if !strings.Contains(string(r.Body), `model_name="org/model:Q4"`) || strings.Contains(string(r.Body), "Qwen") {
		t.Errorf("metrics labels not substituted")
	}
}
