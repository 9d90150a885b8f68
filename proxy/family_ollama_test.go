package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	ollama "github.com/ollama/ollama/api"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/tools/enginefake"
)

// ollamaNames are the chat and embedding model names a fake engine of kind
// k serves in these tests: Ollama's carry their tag, as Ollama lists them.
func ollamaNames(k engine.Kind) (chat, embed string) {
	if k == engine.Ollama {
		return "tiny:latest", "embed:latest"
	}
	return "org/tiny", "org/embed"
}

// ollamaSetup runs a proxy in front of a fake engine of kind k (id "e")
// with a chat and an embedding model.
func ollamaSetup(t *testing.T, k engine.Kind, opts ...func(*enginefake.Options)) (*testProxy, *enginefake.Server) {
	t.Helper()
	chat, embed := ollamaNames(k)
	src, key := newMemSource(t)
	o := enginefake.Options{Kind: enginefake.Kind(k), Models: []enginefake.Model{{Name: chat}, {Name: embed, Embedding: true}}}
	for _, f := range opts {
		f(&o)
	}
	f := startFake(t, o)
	src.addEngine("e", k, f.URL(), chat, embed)
	src.setCaps("flm://e/"+chat, engine.Capabilities{Chat: true, ChatStream: true, Completions: true})
	src.setCaps("flm://e/"+embed, engine.Capabilities{Embeddings: true})
	return startProxy(t, src, key), f
}

// setCaps gives a model of the source the capabilities its driver would
// report.
func (s *memSource) setCaps(id string, caps engine.Capabilities) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.models {
		if s.models[i].ID == id {
			s.models[i].Capabilities = caps
		}
	}
}

// ndjsonLines splits an NDJSON body into its lines, each checked to be
// one JSON object.
func ndjsonLines(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	if !bytes.HasSuffix(body, []byte("\n")) {
		t.Fatalf("NDJSON body does not end with a newline: %q", body)
	}
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n")) {
		var v map[string]any
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", line, err)
		}
		out = append(out, v)
	}
	return out
}

// ollamaError checks Ollama's error shape, {"error":"…"} and nothing else,
// and returns the message.
func ollamaError(t *testing.T, r reply, status int) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil || len(v) != 1 {
		t.Fatalf("status %d body is not Ollama's error shape: %s", r.status, r.body)
	}
	msg, ok := v["error"].(string)
	if !ok || msg == "" || r.status != status || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("want %d {\"error\":…} as JSON, got %d %s (%s)", status, r.status, r.body, r.header.Get("Content-Type"))
	}
	return msg
}

// Every Ollama-API route, against every engine kind, as an Ollama client
// calls it: answers in Ollama's shapes, streams as NDJSON ending with a
// done line, and the engine receiving its own OpenAI route and model name,
// never the client's key.
func TestOllamaFacadeEveryEngine(t *testing.T) {
	for _, k := range engine.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			p, f := ollamaSetup(t, k)
			chat, embed := ollamaNames(k)
			auth := p.auth()

			if r := p.do(t, "GET", "/api/version", "", auth...); r.status != 200 || string(r.body) != `{"version":"0.33.0"}` {
				t.Fatalf("version = %d %s", r.status, r.body)
			}
			r := p.do(t, "GET", "/api/tags", "", auth...)
			var tags struct {
				Models []struct {
					Name, Model, Digest string
					Capabilities        []string
				}
			}
			if err := json.Unmarshal(r.body, &tags); err != nil || r.status != 200 || len(tags.Models) != 2 {
				t.Fatalf("tags = %d %s", r.status, r.body)
			}
			names := []string{tags.Models[0].Name, tags.Models[1].Name}
			if !slices.Contains(names, chat) || !slices.Contains(names, embed) {
				t.Fatalf("tags list %v, want %s and %s", names, chat, embed)
			}
			r = p.do(t, "POST", "/api/show", `{"model":"`+chat+`"}`, auth...)
			if r.status != 200 || !bytes.Contains(r.body, []byte(`"capabilities":`)) || !bytes.Contains(r.body, []byte(`"model_info":`)) {
				t.Fatalf("show = %d %s", r.status, r.body)
			}

			before := len(f.Requests())
			r = p.do(t, "POST", "/api/chat", `{"model":"`+chat+`","stream":false,"messages":[{"role":"user","content":"hello"}]}`, auth...)
			var msg struct {
				Model   string
				Message struct{ Role, Content string }
				Done    bool
				Reason  string `json:"done_reason"`
				Eval    *int   `json:"eval_count"`
				Created string `json:"created_at"`
			}
			if err := json.Unmarshal(r.body, &msg); err != nil || r.status != 200 || msg.Model != chat || msg.Message.Role != "assistant" ||
				msg.Message.Content == "" || !msg.Done || msg.Reason == "" || msg.Eval == nil || msg.Created == "" {
				t.Fatalf("chat = %d %s", r.status, r.body)
			}
			reqs := f.Requests()
			if len(reqs) != before+1 {
				t.Fatalf("engine got %d requests for one chat", len(reqs)-before)
			}
			up := reqs[len(reqs)-1]
			var upBody struct{ Model string }
			_ = json.Unmarshal(up.Body, &upBody)
			if up.Path != "/v1/chat/completions" || upBody.Model != chat || up.Header.Get("Authorization") != "" || bytes.Contains(up.Body, []byte(p.key.Plain)) {
				t.Fatalf("engine got %s %s (Authorization %q)", up.Path, up.Body, up.Header.Get("Authorization"))
			}

			// stream defaults to true, as in Ollama.
			r = p.do(t, "POST", "/api/chat", `{"model":"`+chat+`","messages":[{"role":"user","content":"hello"}]}`, auth...)
			if r.status != 200 || r.header.Get("Content-Type") != "application/x-ndjson" {
				t.Fatalf("chat stream = %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
			}
			lines := ndjsonLines(t, r.body)
			text := ""
			for i, l := range lines {
				done, _ := l["done"].(bool)
				if done != (i == len(lines)-1) {
					t.Fatalf("line %d done=%v of %d lines: %s", i, done, len(lines), r.body)
				}
				m, _ := l["message"].(map[string]any)
				s, _ := m["content"].(string)
				text += s
			}
			last := lines[len(lines)-1]
			if len(lines) < 3 || text == "" || (last["done_reason"] != "stop" && last["done_reason"] != "length") || last["total_duration"] == nil {
				t.Fatalf("chat stream lines: %s", r.body)
			}

			r = p.do(t, "POST", "/api/generate", `{"model":"`+chat+`","prompt":"once","stream":false}`, auth...)
			var gen struct {
				Response string
				Done     bool
			}
			if err := json.Unmarshal(r.body, &gen); err != nil || r.status != 200 || gen.Response == "" || !gen.Done {
				t.Fatalf("generate = %d %s", r.status, r.body)
			}
			r = p.do(t, "POST", "/api/generate", `{"model":"`+chat+`","prompt":"once"}`, auth...)
			if lines := ndjsonLines(t, r.body); r.status != 200 || len(lines) < 2 || lines[len(lines)-1]["done"] != true || lines[0]["response"] == nil {
				t.Fatalf("generate stream = %d %s", r.status, r.body)
			}
			r = p.do(t, "POST", "/api/generate", `{"model":"`+chat+`","prompt":"[INST]once[/INST]","raw":true,"stream":false}`, auth...)
			if reqs := f.Requests(); r.status != 200 || reqs[len(reqs)-1].Path != "/v1/completions" || !bytes.Contains(r.body, []byte(`"response":"`)) {
				t.Fatalf("raw generate = %d %s (engine path %s)", r.status, r.body, reqs[len(reqs)-1].Path)
			}

			r = p.do(t, "POST", "/api/embed", `{"model":"`+embed+`","input":["a","b"]}`, auth...)
			var emb struct {
				Model      string
				Embeddings [][]float64
			}
			if err := json.Unmarshal(r.body, &emb); err != nil || r.status != 200 || emb.Model != embed || len(emb.Embeddings) != 2 || len(emb.Embeddings[0]) == 0 {
				t.Fatalf("embed = %d %.300s", r.status, r.body)
			}
			r = p.do(t, "POST", "/api/embeddings", `{"model":"`+embed+`","prompt":"a"}`, auth...)
			var legacy struct{ Embedding []float64 }
			if err := json.Unmarshal(r.body, &legacy); err != nil || r.status != 200 || len(legacy.Embedding) == 0 {
				t.Fatalf("embeddings = %d %.300s", r.status, r.body)
			}
			// The flm:// id names the same model.
			r = p.do(t, "POST", "/api/chat", `{"model":"flm://e/`+chat+`","stream":false,"messages":[{"role":"user","content":"hello"}]}`, auth...)
			if r.status != 200 || !bytes.Contains(r.body, []byte(`"model":"flm://e/`+chat+`"`)) {
				t.Fatalf("chat by id = %d %s", r.status, r.body)
			}
		})
	}
}

// Refusals come in Ollama's shape, so Ollama clients show FLM's message:
// no key, a bad key, an unknown model (in Ollama's own words), a request
// that cannot be translated, an engine error.
func TestOllamaErrors(t *testing.T) {
	p, f := ollamaSetup(t, engine.LlamaCPP)
	chatBody := `{"model":"org/tiny","stream":false,"messages":[{"role":"user","content":"x"}]}`
	for _, path := range []string{"/api/version", "/api/tags"} {
		r := p.do(t, "GET", path, "")
		ollamaError(t, r, 401)
		if r.header.Get("Www-Authenticate") == "" {
			t.Fatalf("%s: 401 without WWW-Authenticate", path)
		}
	}
	ollamaError(t, p.do(t, "POST", "/api/chat", chatBody, "Authorization", "Bearer flm_wrong"), 401)
	if msg := ollamaError(t, p.do(t, "POST", "/api/chat", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, p.auth()...), 404); msg != "model 'nope' not found" {
		t.Fatalf("unknown model: %q", msg)
	}
	ollamaError(t, p.do(t, "POST", "/api/show", `{"model":"nope"}`, p.auth()...), 404)
	ollamaError(t, p.do(t, "POST", "/api/chat", `{"model":"org/tiny","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}`, p.auth()...), 400)
	ollamaError(t, p.do(t, "POST", "/api/generate", `{"model":"org/tiny","prompt":"x","template":"{{ .Prompt }}"}`, p.auth()...), 400)
	ollamaError(t, p.do(t, "POST", "/api/chat", `{"model":"org/tiny","messages":[`, p.auth()...), 400)
	// Ollama's unload call cannot be honoured; the load call is answered by FLM.
	ollamaError(t, p.do(t, "POST", "/api/generate", `{"model":"org/tiny","keep_alive":0}`, p.auth()...), 400)
	n := len(f.Requests())
	if r := p.do(t, "POST", "/api/generate", `{"model":"org/tiny"}`, p.auth()...); r.status != 200 || !bytes.Contains(r.body, []byte(`"done_reason":"load"`)) || len(f.Requests()) != n {
		t.Fatalf("load call = %d %s (engine called: %v)", r.status, r.body, len(f.Requests()) != n)
	}
	f.SetFailure(enginefake.Fail500)
	ollamaError(t, p.do(t, "POST", "/api/chat", chatBody, p.auth()...), 502)
	// A stream that breaks after its headers ends with an error line.
	f.SetFailure(enginefake.FailReset)
	r := p.do(t, "POST", "/api/chat", `{"model":"org/tiny","messages":[{"role":"user","content":"x"}]}`, p.auth()...)
	lines := ndjsonLines(t, r.body)
	if r.status != 200 || lines[len(lines)-1]["error"] == nil || lines[len(lines)-1]["done"] != nil {
		t.Fatalf("broken stream = %d %s", r.status, r.body)
	}
}

// Ollama's admin routes, and anything else under /api/ FLM does not
// serve, are 404 before any key is asked for (the attacker has none) and
// with a key; nothing reaches the engine.
func TestOllamaAdminRoutesDenied(t *testing.T) {
	p, f := ollamaSetup(t, engine.Ollama)
	routes := []struct{ method, path, body string }{
		{"POST", "/api/pull", `{"model":"evil"}`},
		{"POST", "/api/push", `{"model":"tiny:latest"}`},
		{"POST", "/api/create", `{"model":"x","from":"tiny"}`},
		{"DELETE", "/api/delete", `{"model":"tiny:latest"}`},
		{"POST", "/api/copy", `{"source":"tiny","destination":"x"}`},
		{"GET", "/api/ps", ""},
		{"POST", "/api/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000", "x"},
		{"HEAD", "/api/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000", ""},
		{"POST", "/api/chat/../pull", `{"model":"evil"}`},
		{"POST", "/api/%70ull", `{"model":"evil"}`},
		{"POST", "/api", `{}`},
		{"GET", "/", ""},
	}
	for _, rt := range routes {
		for _, hdr := range [][]string{nil, p.auth()} {
			r := p.do(t, rt.method, rt.path, rt.body, hdr...)
			if r.status != 404 {
				t.Fatalf("%s %s (key %v) = %d %s", rt.method, rt.path, hdr != nil, r.status, r.body)
			}
		}
	}
	if n := len(f.Requests()); n != 0 {
		t.Fatalf("the engine got %d requests: %+v", n, f.Requests())
	}
}

// An Ollama stream is NDJSON written line by line: each line in a chunk of
// its own (written and flushed alone), the first long before the last
// while the engine is still generating.
func TestOllamaStreamFlushedPerLine(t *testing.T) {
	p, _ := ollamaSetup(t, engine.VLLM, func(o *enginefake.Options) { o.TokensPerSecond = 40 })
	c := dialRaw(t, p.url)
	for _, path := range []string{"/api/chat", "/api/generate"} {
		body := `{"model":"org/tiny","messages":[{"role":"user","content":"hello"}]}`
		if path == "/api/generate" {
			body = `{"model":"org/tiny","prompt":"hello"}`
		}
		r, err := c.post(path, body, p.auth()...)
		if err != nil || r.status != 200 || len(r.chunks) < 4 {
			t.Fatalf("%s: %v %d %d chunks", path, err, r.status, len(r.chunks))
		}
		for i, ch := range r.chunks {
			if bytes.Count(ch.data, []byte("\n")) != 1 || !bytes.HasSuffix(ch.data, []byte("\n")) || !json.Valid(bytes.TrimSpace(ch.data)) {
				t.Fatalf("%s: chunk %d is not one NDJSON line: %q", path, i, ch.data)
			}
		}
		first, last := r.chunks[0].at, r.chunks[len(r.chunks)-1].at
		if gap := last - first; gap < time.Duration(len(r.chunks)-2)*20*time.Millisecond {
			t.Fatalf("%s: %d lines arrived within %v: not flushed as generated", path, len(r.chunks), gap)
		}
	}
}

var (
	goldenTimes     = regexp.MustCompile(`"created_at":"[^"]*"`)
	goldenDurations = regexp.MustCompile(`"(total|prompt_eval|eval|load)_duration":\d+`)
	goldenCallIDs   = regexp.MustCompile(`"call_[0-9a-f]{24}"`)
)

// normalizeOllama replaces what changes from run to run (clock, measured
// durations, random ids) in an Ollama answer.
func normalizeOllama(b []byte) []byte {
	b = goldenTimes.ReplaceAll(b, []byte(`"created_at":"TIME"`))
	b = goldenDurations.ReplaceAll(b, []byte(`"${1}_duration":0`))
	return goldenCallIDs.ReplaceAll(b, []byte(`"call_ID"`))
}

// The facade's translation per engine kind (PROXY_SPEC.md, "Ollama API"):
// what the engine receives for each client request, and what the client
// receives, streamed and not.
func TestOllamaGolden(t *testing.T) {
	cases := []struct{ name, path, body string }{
		{"chat", "/api/chat", `{"model":"%s","stream":false,"options":{"temperature":0.2,"num_predict":8,"num_ctx":4096,"stop":["END"]},"keep_alive":"5m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]}`},
		{"chat_stream", "/api/chat", `{"model":"%s","format":"json","messages":[{"role":"user","content":"hi"}]}`},
		{"generate", "/api/generate", `{"model":"%s","system":"Be brief.","prompt":"once","stream":false}`},
		{"generate_stream", "/api/generate", `{"model":"%s","prompt":"once","options":{"seed":7}}`},
		{"generate_raw", "/api/generate", `{"model":"%s","prompt":"[INST]once[/INST]","raw":true,"stream":false}`},
		{"embed", "/api/embed", `{"model":"%[2]s","input":["a","b"],"truncate":true}`},
		{"embeddings", "/api/embeddings", `{"model":"%[2]s","prompt":"a"}`},
	}
	for _, k := range engine.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			p, f := ollamaSetup(t, k)
			chat, embed := ollamaNames(k)
			for _, c := range cases {
				before := len(f.Requests())
				r := p.do(t, "POST", c.path, fmt.Sprintf(strings.ReplaceAll(c.body, `"%s"`, `"%[1]s"`), chat, embed), p.auth()...)
				if r.status != 200 {
					t.Fatalf("%s = %d %s", c.name, r.status, r.body)
				}
				reqs := f.Requests()
				if len(reqs) != before+1 {
					t.Fatalf("%s: the engine got %d requests", c.name, len(reqs)-before)
				}
				up := reqs[len(reqs)-1]
				golden(t, "ollama_api_"+string(k)+"_"+c.name+".upstream.json", append([]byte(up.Method+" "+up.Path+"\n"), indent(t, up.Body)...))
				out := normalizeOllama(r.body)
				if strings.HasSuffix(c.name, "_stream") {
					golden(t, "ollama_api_"+string(k)+"_"+c.name+".client.ndjson", out)
					continue
				}
				golden(t, "ollama_api_"+string(k)+"_"+c.name+".client.json", shortenVectors(indent(t, out)))
			}
		})
	}
}

var longVector = regexp.MustCompile(`\[\s*(-?[0-9.e+-]+,\s*){8,}-?[0-9.e+-]+\s*\]`)

// shortenVectors keeps golden files of embeddings readable: a long vector
// becomes its length (the vectors themselves are the engine's, copied byte
// for byte and compared by TestOllamaFacadeEveryEngine's clients).
func shortenVectors(b []byte) []byte {
	return longVector.ReplaceAllFunc(b, func(v []byte) []byte {
		return []byte(fmt.Sprintf(`"<%d numbers>"`, bytes.Count(v, []byte(","))+1))
	})
}

// The engine's vectors reach the client unchanged: /api/embed copies the
// numbers byte for byte.
func TestOllamaEmbedVectorsVerbatim(t *testing.T) {
	p, f := ollamaSetup(t, engine.VLLM)
	r := p.do(t, "POST", "/api/embed", `{"model":"org/embed","input":"a"}`, p.auth()...)
	if r.status != 200 {
		t.Fatalf("embed = %d %s", r.status, r.body)
	}
	// The same request on the engine's own route answers the same numbers.
	req, _ := http.NewRequest("POST", f.URL()+"/v1/embeddings", strings.NewReader(`{"model":"org/embed","input":"a"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eng struct {
		Data []struct{ Embedding json.RawMessage }
	}
	var got struct{ Embeddings []json.RawMessage }
	if json.Unmarshal(raw, &eng) != nil || json.Unmarshal(r.body, &got) != nil || len(got.Embeddings) != 1 || !bytes.Equal(got.Embeddings[0], eng.Data[0].Embedding) {
		t.Fatalf("vectors differ:\n FLM %.200s\n engine %.200s", r.body, raw)
	}
}

// bearerTransport adds FLM's key to every request of a client that has no
// option for it (the Ollama Go client).
type bearerTransport struct{ key string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

func ollamaGoClient(t *testing.T, base, key string) *ollama.Client {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return ollama.NewClient(u, &http.Client{Transport: bearerTransport{key}, Timeout: 20 * time.Second})
}

// clientSetupScoped is ollamaSetup plus a key that may use only the chat
// model.
func clientSetupScoped(t *testing.T, k engine.Kind) (*testProxy, apikey.Issued) {
	t.Helper()
	p, _ := ollamaSetup(t, k)
	chat, _ := ollamaNames(k)
	scoped := p.src.addKey(t, apikey.CreateOptions{Label: "chat-only", Models: []string{"flm://e/" + chat}})
	if err := p.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p, scoped
}

// Ollama's own Go client (github.com/ollama/ollama/api) works unchanged
// against FLM in front of every engine kind, streaming and not, and gets
// its own error types: AuthorizationError for a bad key, StatusError 403
// for a model outside the key's scope.
func TestOllamaGoClient(t *testing.T) {
	for _, k := range engine.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			p, scoped := clientSetupScoped(t, k)
			chat, embed := ollamaNames(k)
			ctx := context.Background()
			c := ollamaGoClient(t, p.url, p.key.Plain)

			if v, err := c.Version(ctx); err != nil || v != "0.33.0" {
				t.Fatalf("version: %q %v", v, err)
			}
			list, err := c.List(ctx)
			if err != nil || len(list.Models) != 2 {
				t.Fatalf("list: %v %+v", err, list)
			}
			show, err := c.Show(ctx, &ollama.ShowRequest{Model: chat})
			if err != nil || !slices.Contains(show.Capabilities, "completion") {
				t.Fatalf("show: %v %+v", err, show)
			}
			for _, stream := range []bool{false, true} {
				var parts []ollama.ChatResponse
				err := c.Chat(ctx, &ollama.ChatRequest{Model: chat, Stream: &stream, Messages: []ollama.Message{{Role: "user", Content: "hello"}}},
					func(r ollama.ChatResponse) error { parts = append(parts, r); return nil })
				text := ""
				for _, r := range parts {
					text += r.Message.Content
				}
				if err != nil || len(parts) == 0 || !parts[len(parts)-1].Done || text == "" || (stream && len(parts) < 2) || (!stream && len(parts) != 1) {
					t.Fatalf("chat (stream %v): %v, %d parts, %q", stream, err, len(parts), text)
				}
				if last := parts[len(parts)-1]; last.DoneReason == "" || last.Model != chat || last.TotalDuration <= 0 {
					t.Fatalf("chat (stream %v) last part: %+v", stream, last)
				}
				var gparts []ollama.GenerateResponse
				err = c.Generate(ctx, &ollama.GenerateRequest{Model: chat, Prompt: "once", Stream: &stream},
					func(r ollama.GenerateResponse) error { gparts = append(gparts, r); return nil })
				if err != nil || len(gparts) == 0 || !gparts[len(gparts)-1].Done || (stream && len(gparts) < 2) {
					t.Fatalf("generate (stream %v): %v %+v", stream, err, gparts)
				}
			}
			emb, err := c.Embed(ctx, &ollama.EmbedRequest{Model: embed, Input: []string{"a", "b"}})
			if err != nil || len(emb.Embeddings) != 2 || len(emb.Embeddings[0]) == 0 {
				t.Fatalf("embed: %v %+v", err, emb)
			}
			legacy, err := c.Embeddings(ctx, &ollama.EmbeddingRequest{Model: embed, Prompt: "a"})
			if err != nil || len(legacy.Embedding) == 0 {
				t.Fatalf("embeddings: %v", err)
			}

			bad := ollamaGoClient(t, p.url, "flm_wrong")
			var authErr ollama.AuthorizationError
			if _, err := bad.List(ctx); !errors.As(err, &authErr) || authErr.StatusCode != 401 {
				t.Fatalf("bad key (list): %T %v", err, err)
			}
			err = bad.Chat(ctx, &ollama.ChatRequest{Model: chat, Messages: []ollama.Message{{Role: "user", Content: "hi"}}}, func(ollama.ChatResponse) error { return nil })
			if !errors.As(err, &authErr) || authErr.StatusCode != 401 {
				t.Fatalf("bad key (chat stream): %T %v", err, err)
			}

			sc := ollamaGoClient(t, p.url, scoped.Plain)
			if l, err := sc.List(ctx); err != nil || len(l.Models) != 1 || l.Models[0].Name != chat {
				t.Fatalf("scoped list: %v %+v", err, l)
			}
			var se ollama.StatusError
			if _, err := sc.Embed(ctx, &ollama.EmbedRequest{Model: embed, Input: "a"}); !errors.As(err, &se) || se.StatusCode != 403 || !strings.Contains(se.ErrorMessage, "may not use this model") {
				t.Fatalf("out of scope (embed): %T %v", err, err)
			}
			err = sc.Generate(ctx, &ollama.GenerateRequest{Model: "flm://e/" + embed, Prompt: "hi"}, func(ollama.GenerateResponse) error { return nil })
			if !errors.As(err, &se) || se.StatusCode != 403 {
				t.Fatalf("out of scope (generate stream): %T %v", err, err)
			}
			if err := sc.Chat(ctx, &ollama.ChatRequest{Model: chat, Messages: []ollama.Message{{Role: "user", Content: "hi"}}}, func(ollama.ChatResponse) error { return nil }); err != nil {
				t.Fatalf("scoped key, its own model: %v", err)
			}
		})
	}
}

// The Ollama JS client (npm ollama) works unchanged against FLM in front
// of every engine kind, streaming and not, and throws its ResponseError
// with FLM's status and message for a bad key and a model outside the
// key's scope. tools/test.sh installs it (npm ci in tools/clienttest); a
// missing node or package fails the test.
func TestOllamaNodeClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is required for this test (tools/test.sh checks for it)")
	}
	dir, _ := filepath.Abs("../tools/clienttest")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ollama", "package.json")); err != nil {
		t.Fatalf("run `npm ci` in %s first (tools/test.sh does)", dir)
	}
	for _, k := range engine.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			p, scoped := clientSetupScoped(t, k)
			chat, embed := ollamaNames(k)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "ollama.mjs"))
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "FLM_HOST="+p.url, "FLM_API_KEY="+p.key.Plain, "FLM_SCOPED_KEY="+scoped.Plain,
				"FLM_CHAT_MODEL="+chat, "FLM_EMBED_MODEL="+embed)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("node client: %v\n%s", err, out)
			}
			type failure struct {
				Name, Message string
				Status        int
				Accepted      bool
			}
			var rep struct {
				Version string
				Models  []string
				Show    struct {
					Capabilities []string
					HasModelInfo bool
				}
				Chat struct {
					Content, Role string
					Done          bool
					EvalCount     *int
				}
				ChatStream struct {
					Text       string
					Parts      int
					Done       bool
					DoneReason string
				}
				Generate struct {
					Response string
					Done     bool
				}
				GenerateStream struct {
					Text  string
					Parts int
				}
				Embed                        struct{ Count, Dims int }
				Embeddings                   struct{ Dims int }
				BadKey, BadKeyStream         failure
				ScopedModels                 []string
				OutOfScope, OutOfScopeStream failure
			}
			if err := json.Unmarshal(out, &rep); err != nil {
				t.Fatalf("node report: %v\n%s", err, out)
			}
			ok := rep.Version == "0.33.0" && slices.Contains(rep.Models, chat) && slices.Contains(rep.Models, embed) &&
				slices.Contains(rep.Show.Capabilities, "completion") && rep.Show.HasModelInfo &&
				rep.Chat.Content != "" && rep.Chat.Role == "assistant" && rep.Chat.Done &&
				rep.ChatStream.Text != "" && rep.ChatStream.Parts >= 2 && rep.ChatStream.Done && rep.ChatStream.DoneReason != "" &&
				rep.Generate.Response != "" && rep.Generate.Done && rep.GenerateStream.Text != "" && rep.GenerateStream.Parts >= 2 &&
				rep.Embed.Count == 2 && rep.Embed.Dims > 0 && rep.Embeddings.Dims > 0 &&
				slices.Equal(rep.ScopedModels, []string{chat})
			if !ok {
				t.Fatalf("node client report: %s", out)
			}
			for name, f := range map[string]failure{"bad key": rep.BadKey, "bad key (stream)": rep.BadKeyStream} {
				if f.Name != "ResponseError" || f.Status != 401 || !strings.Contains(f.Message, "API key") {
					t.Fatalf("%s: %+v", name, f)
				}
			}
			for name, f := range map[string]failure{"out of scope": rep.OutOfScope, "out of scope (stream)": rep.OutOfScopeStream} {
				if f.Name != "ResponseError" || f.Status != 403 || !strings.Contains(f.Message, "may not use this model") {
					t.Fatalf("%s: %+v", name, f)
				}
			}
		})
	}
}

// The relay's deadlines hold on the facade: an engine that stalls
// mid-stream is cut after the idle timeout, the client's stream ends with
// Ollama's error line, and the engine request is cancelled; a
// non-streamed answer whose body stalls is a 504.
func TestOllamaEngineStalls(t *testing.T) {
	eng := newScriptEngine(t, func(w http.ResponseWriter, r *http.Request) {
		rc := sseHeaders(w)
		for i := range 2 {
			_, _ = io.WriteString(w, chunkEvent(i, ""))
			_ = rc.Flush()
		}
		<-r.Context().Done()
	})
	const idle = 300 * time.Millisecond
	p := streamProxy(t, eng.URL, timeouts(5*time.Second, idle))
	for _, stream := range []bool{true, false} {
		start := time.Now()
		r := p.do(t, "POST", "/api/chat", fmt.Sprintf(`{"model":"m","stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream), p.auth()...)
		el := time.Since(start)
		if el < idle || el > idle+3*time.Second {
			t.Fatalf("stream %v: ended after %v, idle timeout %v", stream, el, idle)
		}
		eng.waitCanceled(t, 3*time.Second)
		if !stream {
			if msg := ollamaError(t, r, http.StatusGatewayTimeout); !strings.Contains(msg, "sent nothing") {
				t.Fatalf("non-streamed stall: %q", msg)
			}
			continue
		}
		lines := ndjsonLines(t, r.body)
		if r.status != 200 || len(lines) != 3 || lines[0]["message"] == nil {
			t.Fatalf("stalled stream = %d %s", r.status, r.body)
		}
		if msg, _ := lines[2]["error"].(string); !strings.Contains(msg, "sent nothing") {
			t.Fatalf("last line %v", lines[2])
		}
	}
	if n := relayTimeouts(p, "engine_idle"); n != 2 {
		t.Fatalf("flm_relay_timeouts_total{kind=engine_idle} = %v", n)
	}
}
