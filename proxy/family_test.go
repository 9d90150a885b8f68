package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/tools/enginefake"
)

// familyModel is the model every family test's fake engine serves.
const familyModel = "org/chat:Q4"

// familyProxy runs a proxy in front of one fake engine of kind k (engine id
// = the kind) serving familyModel, with the kind's declared habits.
func familyProxy(t *testing.T, k engine.Kind, mutate ...func(*Options)) (*testProxy, *enginefake.Server) {
	t.Helper()
	src, key := newMemSource(t)
	f := startFake(t, enginefake.Options{Kind: enginefake.Kind(k), Models: []enginefake.Model{{Name: familyModel}}})
	src.addEngine(string(k), k, f.URL(), familyModel)
	return startProxy(t, src, key, mutate...), f
}

// lastUpstream is the last request the fake received, or fails.
func lastUpstream(t *testing.T, f *enginefake.Server, before int) enginefake.Request {
	t.Helper()
	reqs := f.Requests()
	if len(reqs) != before+1 {
		t.Fatalf("the engine received %d requests, want 1", len(reqs)-before)
	}
	return reqs[len(reqs)-1]
}

// sseNames are the "event:" names of an SSE body, in order.
func sseNames(body []byte) []string {
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		if n, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "event: "); ok {
			out = append(out, n)
		}
	}
	return out
}

func msgBody(model string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"max_tokens":16,"stream":%v,"system":"be brief","messages":[{"role":"user","content":"hi"}]}`, model, stream)
}

func respBody(model string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"input":"hi","instructions":"be brief","max_output_tokens":16,"stream":%v}`, model, stream)
}

// Both families on every engine kind, streamed and not: the request goes
// to the engine's native route where its driver declares the habit (and
// the captures show the official SDKs accept the answer), else it is
// translated to Chat Completions; either way the engine gets its own model
// name and none of the client's credentials.
func TestFamilyRoutesEveryEngine(t *testing.T) {
	for _, k := range engine.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			p, f := familyProxy(t, k)
			h := kindHabits[k]
			cases := []struct {
				path, body, native string
				isNative, stream   bool
			}{
				{"/v1/messages", msgBody("flm://"+string(k)+"/"+familyModel, false), "/v1/messages", h.NativeMessages, false},
				{"/v1/messages", msgBody(familyModel, true), "/v1/messages", h.NativeMessages, true},
				{"/v1/responses", respBody(familyModel, false), "/v1/responses", h.NativeResponses, false},
				{"/v1/responses", respBody("flm://"+string(k)+"/"+familyModel, true), "/v1/responses", h.NativeResponses, true},
			}
			for _, c := range cases {
				before := len(f.Requests())
				// An attacker's extra credentials: the FLM key as Bearer, a
				// second key and a cookie. None may reach the engine.
				r := p.do(t, "POST", c.path, c.body, "Authorization", "Bearer "+p.key.Plain, "X-Api-Key", "sk-ant-secret",
					"Cookie", "session=secret", "Anthropic-Version", "2023-06-01")
				if r.status != 200 {
					t.Fatalf("%s stream=%v: %d %s", c.path, c.stream, r.status, r.body)
				}
				up := lastUpstream(t, f, before)
				wantPath := "/v1/chat/completions"
				if c.isNative {
					wantPath = c.native
				}
				if up.Path != wantPath {
					t.Fatalf("%s on %s went to %s, want %s", c.path, k, up.Path, wantPath)
				}
				for _, hdr := range []string{"Authorization", "X-Api-Key", "Cookie", "Anthropic-Version"} {
					if v := up.Header.Get(hdr); v != "" {
						t.Fatalf("the engine received the client's %s: %q", hdr, v)
					}
				}
				var sent struct {
					Model  string `json:"model"`
					Stream bool   `json:"stream"`
				}
				if err := json.Unmarshal(up.Body, &sent); err != nil || sent.Model != familyModel || sent.Stream != c.stream {
					t.Fatalf("upstream body %s", up.Body)
				}
				if !c.stream {
					var v struct{ Type, Object string }
					if json.Unmarshal(r.body, &v) != nil || (c.path == "/v1/messages") != (v.Type == "message") || (c.path == "/v1/responses") != (v.Object == "response") {
						t.Fatalf("%s answer: %s", c.path, r.body)
					}
					continue
				}
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
					t.Fatalf("stream Content-Type %q", ct)
				}
				names := sseNames(r.body)
				first, last := "message_start", "message_stop"
				if c.path == "/v1/responses" {
					first, last = "response.created", "response.completed"
					if names[len(names)-1] == "response.incomplete" { // max_output_tokens reached
						last = "response.incomplete"
					}
				}
				if len(names) < 3 || names[0] != first || names[len(names)-1] != last || bytes.Contains(r.body, []byte("[DONE]")) {
					t.Fatalf("%s stream events %q", c.path, names)
				}
			}
		})
	}
}

// anthropicError decodes Anthropic's error shape and checks its request id.
func anthropicError(t *testing.T, r reply) (typ, msg string) {
	t.Helper()
	var e struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Type != "error" || e.Error.Type == "" || e.Error.Message == "" {
		t.Fatalf("status %d body is not Anthropic's error shape: %s", r.status, r.body)
	}
	if e.RequestID == "" || e.RequestID != r.header.Get("X-Request-Id") {
		t.Fatalf("request_id %q, X-Request-Id %q", e.RequestID, r.header.Get("X-Request-Id"))
	}
	return e.Error.Type, e.Error.Message
}

// Every refusal — by the middleware before any handler, by the router, by
// the translation — comes in the error shape of the route's family, with
// the status each family's SDK maps to its own error type; and nothing
// reaches the engine.
func TestFamilyErrorShapes(t *testing.T) {
	src, key := newMemSource(t)
	f := startFake(t, enginefake.Options{Kind: enginefake.Ollama, Models: []enginefake.Model{{Name: familyModel}}})
	src.addEngine("ollama", engine.Ollama, f.URL(), familyModel)
	src.setPolicy(t, `{"cors":{"allowed_origins":["https://app.example"]}}`)
	p := startProxy(t, src, key, func(o *Options) { o.BodyLimit = 4096 })
	xkey := []string{"X-Api-Key", p.key.Plain}
	big := `{"model":"x","max_tokens":1,"messages":[{"role":"user","content":"` + strings.Repeat("a", 5000) + `"}]}`

	anth := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		typ                      string
	}{
		{"no key", "POST", "/v1/messages", msgBody(familyModel, false), nil, 401, "authentication_error"},
		{"wrong x-api-key", "POST", "/v1/messages", msgBody(familyModel, false), []string{"X-Api-Key", "flm_wrong"}, 401, "authentication_error"},
		{"wrong key count_tokens", "POST", "/v1/messages/count_tokens", msgBody(familyModel, false), []string{"X-Api-Key", "flm_wrong"}, 401, "authentication_error"},
		{"foreign origin", "POST", "/v1/messages", msgBody(familyModel, false), append([]string{"Origin", "https://evil.example"}, xkey...), 403, "permission_error"},
		{"body too large", "POST", "/v1/messages", big, xkey, 413, "request_too_large"},
		{"wrong method", "GET", "/v1/messages", "", xkey, 405, "invalid_request_error"},
		{"unknown path", "POST", "/v1/messages/batches", "{}", xkey, 404, "not_found_error"},
		{"unknown model", "POST", "/v1/messages", msgBody("nope", false), xkey, 404, "not_found_error"},
		{"max_tokens 0", "POST", "/v1/messages", `{"model":"` + familyModel + `","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}`, xkey, 400, "invalid_request_error"},
		{"not JSON", "POST", "/v1/messages", `{"model":`, xkey, 400, "invalid_request_error"},
		{"server tool", "POST", "/v1/messages", `{"model":"` + familyModel + `","max_tokens":8,"messages":[{"role":"user","content":"hi"}],"mcp_servers":[{"type":"url","url":"https://x","name":"x"}]}`, xkey, 400, "invalid_request_error"},
	}
	for _, c := range anth {
		before := len(f.Requests())
		r := p.do(t, c.method, c.path, c.body, c.hdr...)
		if r.status != c.status {
			t.Fatalf("%s: status %d, want %d: %s", c.name, r.status, c.status, r.body)
		}
		if typ, _ := anthropicError(t, r); typ != c.typ {
			t.Fatalf("%s: error type %q, want %q", c.name, typ, c.typ)
		}
		if n := len(f.Requests()) - before; n != 0 {
			t.Fatalf("%s: the engine received %d requests", c.name, n)
		}
	}

	// The Responses API has OpenAI's envelope, also for the middleware's
	// refusals; stateful requests are refused whatever the engine.
	openai := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code                     string
	}{
		{"no key", "POST", "/v1/responses", respBody(familyModel, false), nil, 401, "invalid_api_key"},
		{"previous_response_id", "POST", "/v1/responses", `{"model":"` + familyModel + `","input":"hi","previous_response_id":"resp_1"}`, p.auth(), 400, "unsupported_parameter"},
		{"background", "POST", "/v1/responses", `{"model":"` + familyModel + `","input":"hi","background":true}`, p.auth(), 400, "unsupported_parameter"},
		{"retrieve", "GET", "/v1/responses/resp_1", "", p.auth(), 404, "not_found"},
		{"chat no key", "POST", "/v1/chat/completions", chatBody(familyModel, false), nil, 401, "invalid_api_key"},
	}
	for _, c := range openai {
		before := len(f.Requests())
		r := p.do(t, c.method, c.path, c.body, c.hdr...)
		if r.status != c.status {
			t.Fatalf("%s: status %d, want %d: %s", c.name, r.status, c.status, r.body)
		}
		if code := envelopeOf(t, r); code != c.code {
			t.Fatalf("%s: code %q, want %q", c.name, code, c.code)
		}
		if n := len(f.Requests()) - before; n != 0 {
			t.Fatalf("%s: the engine received %d requests", c.name, n)
		}
	}
	r := p.do(t, "GET", "/v1/responses/resp_1", "", p.auth()...)
	if !bytes.Contains(r.body, []byte("stores no responses")) {
		t.Fatalf("retrieving a response: %s", r.body)
	}
	r = p.do(t, "POST", "/v1/responses", `{"model":"`+familyModel+`","input":"hi","previous_response_id":"resp_1"}`, p.auth()...)
	if !bytes.Contains(r.body, []byte(`"param":"previous_response_id"`)) || !bytes.Contains(r.body, []byte("does not store")) {
		t.Fatalf("previous_response_id: %s", r.body)
	}

	// Ollama's routes answer {"error":"…"} and nothing else.
	r = p.do(t, "POST", "/api/chat", `{"model":"x"}`)
	var oe map[string]any
	if r.status != 401 || json.Unmarshal(r.body, &oe) != nil || len(oe) != 1 || oe["error"] == "" {
		t.Fatalf("/api/chat without a key: %d %s", r.status, r.body)
	}
}

// A rate-limited Anthropic client gets 429 rate_limit_error with
// Retry-After, which its SDK raises as RateLimitError.
func TestFamilyRateLimitShape(t *testing.T) {
	src, key := newMemSource(t)
	f := startFake(t, enginefake.Options{Kind: enginefake.Ollama, Models: []enginefake.Model{{Name: familyModel}}})
	src.addEngine("ollama", engine.Ollama, f.URL(), familyModel)
	src.setPolicy(t, `{"rate_limit":{"rpm":1,"burst":1}}`)
	p := startProxy(t, src, key)
	hdr := []string{"X-Api-Key", p.key.Plain}
	if r := p.do(t, "POST", "/v1/messages", msgBody(familyModel, false), hdr...); r.status != 200 {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	r := p.do(t, "POST", "/v1/messages", msgBody(familyModel, false), hdr...)
	if typ, _ := anthropicError(t, r); r.status != 429 || typ != "rate_limit_error" || r.header.Get("Retry-After") == "" {
		t.Fatalf("rate limited: %d %s %v", r.status, r.body, r.header)
	}
}

// A key scoped to other models gets 403 on both families, on the native
// path and the translated one, for an flm:// id and a bare name alike; the
// engine receives nothing.
func TestFamilyScope(t *testing.T) {
	src, _ := newMemSource(t)
	scoped, err := src.keys.CreateWith(context.Background(), apikey.CreateOptions{Label: "kid", Models: []string{"flm://vllm/*"}})
	if err != nil {
		t.Fatal(err)
	}
	o := startFake(t, enginefake.Options{Kind: enginefake.Ollama, Models: []enginefake.Model{{Name: familyModel}}})
	src.addEngine("ollama", engine.Ollama, o.URL(), familyModel)
	v := startFake(t, enginefake.Options{Kind: enginefake.VLLM, Models: []enginefake.Model{{Name: "allowed"}}})
	src.addEngine("vllm", engine.VLLM, v.URL(), "allowed")
	p := startProxy(t, src, scoped)
	hdr := []string{"X-Api-Key", scoped.Plain}
	for _, model := range []string{familyModel, "flm://ollama/" + familyModel} {
		for _, path := range []string{"/v1/messages", "/v1/messages/count_tokens"} {
			r := p.do(t, "POST", path, msgBody(model, false), hdr...)
			if typ, _ := anthropicError(t, r); r.status != 403 || typ != "permission_error" {
				t.Fatalf("%s %s with a scoped key: %d %s", path, model, r.status, r.body)
			}
		}
		r := p.do(t, "POST", "/v1/responses", respBody(model, true), p.auth()...)
		if r.status != 403 || envelopeOf(t, r) != "model_not_allowed" {
			t.Fatalf("/v1/responses %s with a scoped key: %d %s", model, r.status, r.body)
		}
	}
	if n := len(o.Requests()); n != 0 {
		t.Fatalf("the out-of-scope engine received %d requests", n)
	}
	// The model in scope works on both families (translated on vLLM).
	if r := p.do(t, "POST", "/v1/messages", msgBody("allowed", false), hdr...); r.status != 200 {
		t.Fatalf("in scope: %d %s", r.status, r.body)
	}
	if r := p.do(t, "POST", "/v1/responses", respBody("flm://vllm/allowed", false), p.auth()...); r.status != 200 {
		t.Fatalf("in scope: %d %s", r.status, r.body)
	}
}

// An attacker with a scoped key tries to make a natively speaking engine
// serve another model than the one FLM routed and authorised: a duplicate
// "model" (Go's encoding/json, Ollama's decoder, keeps the last), a case
// variant ("MODEL", "Model") or a Unicode fold ("ſtream" is "stream" to
// encoding/json). Each is refused before the engine sees anything.
func TestFamilyPassthroughSmuggling(t *testing.T) {
	src, _ := newMemSource(t)
	scoped, err := src.keys.CreateWith(context.Background(), apikey.CreateOptions{Label: "kid", Models: []string{"flm://ollama/allowed"}})
	if err != nil {
		t.Fatal(err)
	}
	o := startFake(t, enginefake.Options{Kind: enginefake.Ollama, Models: []enginefake.Model{{Name: "allowed"}, {Name: "secret"}}})
	src.addEngine("ollama", engine.Ollama, o.URL(), "allowed", "secret")
	p := startProxy(t, src, scoped)
	msgs := `"max_tokens":8,"messages":[{"role":"user","content":"hi"}]`
	attacks := []struct{ path, body string }{
		{"/v1/messages", `{"model":"allowed","model":"secret",` + msgs + `}`},
		{"/v1/messages", `{"model":"secret","model":"allowed",` + msgs + `}`},
		{"/v1/messages", `{"model":"allowed","MODEL":"secret",` + msgs + `}`},
		{"/v1/messages", `{"MODEL":"secret","model":"allowed",` + msgs + `}`},
		{"/v1/messages", `{"model":"allowed","stream":false,"ſtream":true,` + msgs + `}`},
		{"/v1/messages/count_tokens", `{"model":"allowed","Model":"secret",` + msgs + `}`},
		{"/v1/responses", `{"model":"allowed","mOdel":"secret","input":"hi"}`},
		{"/v1/responses", `{"model":"allowed","input":"hi","input":"again"}`},
	}
	for _, a := range attacks {
		r := p.do(t, "POST", a.path, a.body, "X-Api-Key", scoped.Plain)
		if r.status != 400 && r.status != 403 {
			t.Fatalf("%s %s: %d %s", a.path, a.body, r.status, r.body)
		}
	}
	if n := len(o.Requests()); n != 0 {
		t.Fatalf("the engine received %d smuggled requests", n)
	}
}

func TestPassthroughBody(t *testing.T) {
	got, err := passthroughBody([]byte(` {"max_tokens": 8, "model" : "flm://ollama/x", "x_vendor":{"model":"kept"},"stream":true} `), "x:latest")
	if err != nil || string(got) != `{"max_tokens":8,"model":"x:latest","x_vendor":{"model":"kept"},"stream":true}` {
		t.Fatalf("passthroughBody = %s, %v", got, err)
	}
	for _, bad := range []string{`[]`, `{"a":1,"a":2}`, `{"Stream":true}`, `{"MODEL":"x"}`, `{"mod\u0065l":"a","model":"b"}`, `{"model":"a"`, `{"a":1}x`} {
		if out, err := passthroughBody([]byte(bad), "m"); err == nil {
			t.Fatalf("passthroughBody(%s) = %s, want an error", bad, out)
		}
	}
}

// Whatever the client sends, what passthroughBody accepts is one JSON
// object whose "model", as an engine written in Go reads it
// (case-insensitive, last duplicate wins), is the routed model.
func FuzzPassthroughBody(f *testing.F) {
	for _, s := range []string{
		`{"model":"a","stream":true,"messages":[]}`, `{"model":"a","MODEL":"b"}`, `{"ſtream":1}`,
		`{"model":1}`, `{}`, `{"a":{"model":"b"}}`, `{"\u006dodel":"x"}`, `{"model":"a","model":"b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			return
		}
		out, err := passthroughBody(body, "routed")
		if err != nil {
			return
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(out, &members); err != nil {
			t.Fatalf("output %s is not a JSON object: %v", out, err)
		}
		var seen struct {
			Model any `json:"model"`
		}
		_ = json.Unmarshal(out, &seen)
		for k := range members {
			if strings.EqualFold(k, "model") && seen.Model != "routed" {
				t.Fatalf("an engine reads model %v from %s", seen.Model, out)
			}
		}
	})
}

// count_tokens is answered by an engine that counts Anthropic requests
// itself (llama-server); Ollama speaks Messages but does not count, and
// the translated engines cannot: both are 404 not_found_error, and a
// translated engine receives nothing.
func TestFamilyCountTokens(t *testing.T) {
	for _, k := range engine.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			p, f := familyProxy(t, k)
			body := `{"model":"` + familyModel + `","messages":[{"role":"user","content":"hi"}]}`
			r := p.do(t, "POST", "/v1/messages/count_tokens", body, "X-Api-Key", p.key.Plain)
			if k == engine.LlamaCPP {
				var c struct {
					InputTokens int `json:"input_tokens"`
				}
				if r.status != 200 || json.Unmarshal(r.body, &c) != nil || c.InputTokens == 0 {
					t.Fatalf("count_tokens: %d %s", r.status, r.body)
				}
				return
			}
			typ, msg := anthropicError(t, r)
			if r.status != 404 || typ != "not_found_error" || !strings.Contains(msg, "counting tokens is not available") {
				t.Fatalf("count_tokens: %d %s", r.status, r.body)
			}
			if !kindHabits[k].NativeMessages && len(f.Requests()) != 0 {
				t.Fatalf("a translated engine received a count_tokens request")
			}
		})
	}
}

// nativeEngine is a scripted engine that speaks both families natively.
func nativeEngine(t *testing.T, h http.HandlerFunc) *testProxy {
	t.Helper()
	eng := newScriptEngine(t, h)
	src, key := newMemSource(t)
	src.addEngineWith("e", engine.Ollama, engine.Habits{NativeMessages: true, NativeResponses: true}, eng.URL, "m")
	return startProxy(t, src, key, timeouts(5*time.Second, 300*time.Millisecond))
}

// A native stream is relayed event by event as the engine sent it; one
// cut before its last event ends with the family's error event (never
// OpenAI's error chunk or [DONE], which these clients do not read), and a
// Responses error event is numbered after the events relayed.
func TestFamilyNativeStreamCut(t *testing.T) {
	const msgStart = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"m\",\"usage\":{\"input_tokens\":1,\"output_tokens\":0}}}\n\n"
	const respCreated = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"r\",\"output\":[]}}\n\n"
	const respDelta = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"x\"}\n\n"
	for _, c := range []struct {
		path, body string
		events     []string
		stall      bool
		want       string
	}{
		{"/v1/messages", msgBody("m", true), []string{msgStart}, false, `event: error` + "\n" + `data: {"type":"error","error":{"type":"api_error","message":"the engine ended the stream early"}}`},
		{"/v1/messages", msgBody("m", true), []string{msgStart}, true, `"message":"the engine sent nothing for 300ms; FLM ended the stream"`},
		{"/v1/responses", respBody("m", true), []string{respCreated, respDelta}, false, `"message":"the engine ended the stream early","param":null,"error":{"type":"server_error","code":"stream_error"`},
	} {
		p := nativeEngine(t, func(w http.ResponseWriter, r *http.Request) {
			rc := sseHeaders(w)
			for _, ev := range c.events {
				_, _ = io.WriteString(w, ev)
				_ = rc.Flush()
			}
			if c.stall {
				<-r.Context().Done()
			}
		})
		r := p.do(t, "POST", c.path, c.body, p.auth()...)
		if r.status != 200 || !strings.HasPrefix(string(r.body), strings.Join(c.events, "")) || !strings.Contains(string(r.body), c.want) ||
			bytes.Contains(r.body, []byte("[DONE]")) || bytes.Count(r.body, []byte("event: error")) != 1 {
			t.Fatalf("%s cut (stall %v): %d\n%s", c.path, c.stall, r.status, r.body)
		}
		if c.path == "/v1/responses" && !bytes.Contains(r.body, []byte(`"sequence_number":2}`)) {
			t.Fatalf("error event not numbered after the 2 relayed: %s", r.body)
		}
	}
	// A whole native stream gets nothing added.
	whole := msgStart + "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	p := nativeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		_ = sseHeaders(w)
		_, _ = io.WriteString(w, whole)
	})
	if r := p.do(t, "POST", "/v1/messages", msgBody("m", true), p.auth()...); r.status != 200 || string(r.body) != whole {
		t.Fatalf("whole native stream: %d %q", r.status, r.body)
	}
}

// A translated stream whose engine stalls ends with the family's error
// event after the idle timeout, and the engine's request is cancelled.
func TestFamilyTranslatedStreamStalls(t *testing.T) {
	for _, path := range []string{"/v1/messages", "/v1/responses"} {
		eng := newScriptEngine(t, func(w http.ResponseWriter, r *http.Request) {
			rc := sseHeaders(w)
			_, _ = io.WriteString(w, chunkEvent(0, ""))
			_ = rc.Flush()
			<-r.Context().Done()
		})
		p := streamProxy(t, eng.URL, timeouts(5*time.Second, 300*time.Millisecond))
		body := msgBody("m", true)
		if path == "/v1/responses" {
			body = respBody("m", true)
		}
		start := time.Now()
		r := p.do(t, "POST", path, body, p.auth()...)
		names := sseNames(r.body)
		if r.status != 200 || len(names) < 2 || names[len(names)-1] != "error" || !bytes.Contains(r.body, []byte("sent nothing for 300ms")) {
			t.Fatalf("%s stalled: %d %q\n%s", path, r.status, names, r.body)
		}
		if el := time.Since(start); el > 4*time.Second {
			t.Fatalf("%s: stalled stream ended after %v", path, el)
		}
		eng.waitCanceled(t, 3*time.Second)
	}
}

// An engine's error event in a translated stream quotes its internal URL
// (Ollama: `Post "http://127.0.0.1:38417/completion": EOF`); the client's
// family error event must not tell where the engines live.
func TestFamilyTranslatedStreamErrorRedacted(t *testing.T) {
	for _, path := range []string{"/v1/messages", "/v1/responses"} {
		eng := newScriptEngine(t, func(w http.ResponseWriter, r *http.Request) {
			rc := sseHeaders(w)
			_, _ = io.WriteString(w, chunkEvent(0, ""))
			_, _ = io.WriteString(w, `data: {"error":{"message":"Post \"http://10.1.2.3:38417/completion\": EOF at 10.1.2.3:38417"}}`+"\n\n")
			_ = rc.Flush()
		})
		p := streamProxy(t, eng.URL)
		body := msgBody("m", true)
		if path == "/v1/responses" {
			body = respBody("m", true)
		}
		r := p.do(t, "POST", path, body, p.auth()...)
		names := sseNames(r.body)
		if r.status != 200 || names[len(names)-1] != "error" || bytes.Contains(r.body, []byte("10.1.2.3")) || !bytes.Contains(r.body, []byte("<url>")) {
			t.Fatalf("%s: %d\n%s", path, r.status, r.body)
		}
	}
}
