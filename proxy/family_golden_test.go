package proxy

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/tools/enginefake"
)

// ids and clocks FLM makes for translated answers (random, the time).
var (
	translatedIDs = regexp.MustCompile(`\b(msg|resp|fc|req)_[0-9a-f]{24}\b`)
	createdAt     = regexp.MustCompile(`"(created_at|completed_at)":\s*[0-9]+`)
)

func normalizeAnswer(b []byte) []byte {
	b = translatedIDs.ReplaceAll(b, []byte("${1}_ID"))
	return createdAt.ReplaceAll(b, []byte(`"${1}":0`))
}

// The API-family rules of docs/specs/PROXY_SPEC.md per engine kind: what
// the engine receives (path and body) for a client's Anthropic Messages or
// Responses request, passed through or translated, and what the client
// receives back, streamed and not. A request the target cannot honour (an
// image for a model without vision) is the client's 400 where FLM
// translates, and reaches no engine.
func TestGoldenFamilies(t *testing.T) {
	const model = "flm://e/org/model:Q4"
	requests := []struct{ name, path, body string }{
		{"messages", "/v1/messages", `{"model":"` + model + `","max_tokens":16,"system":[{"type":"text","text":"be brief"}],"stop_sequences":["\n\n"],"temperature":0.2,"metadata":{"user_id":"u"},"x_vendor":{"a":1},` +
			`"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"text","text":"hello"}]},{"role":"user","content":[{"type":"text","text":"again"}]}]}`},
		{"messages_stream", "/v1/messages", `{"model":"` + model + `","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{"messages_tools", "/v1/messages", `{"model":"` + model + `","max_tokens":16,"messages":[{"role":"user","content":"weather?"}],` +
			`"tools":[{"name":"weather","description":"today's weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],"tool_choice":{"type":"auto"}}`},
		{"responses", "/v1/responses", `{"model":"` + model + `","input":"hi","instructions":"be brief","max_output_tokens":16,"temperature":0.2,"store":true,"metadata":{"k":"v"}}`},
		{"responses_stream", "/v1/responses", `{"model":"` + model + `","input":[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"input_text","text":"hi"}]}],"max_output_tokens":16,"stream":true}`},
		{"responses_tools", "/v1/responses", `{"model":"` + model + `","input":[{"role":"user","content":"weather?"},` +
			`{"type":"function_call","call_id":"call_1","name":"weather","arguments":"{\"city\":\"Oslo\"}"},{"type":"function_call_output","call_id":"call_1","output":"sunny"}],` +
			`"tools":[{"type":"function","name":"weather","parameters":{"type":"object","properties":{}}}],"tool_choice":"required"}`},
		// The model takes no images: refused where FLM translates.
		{"messages_image", "/v1/messages", `{"model":"` + model + `","max_tokens":16,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]}]}`},
	}
	for _, k := range engine.Kinds() {
		t.Run(string(k), func(t *testing.T) {
			src, key := newMemSource(t)
			f := startFake(t, enginefake.Options{Kind: enginefake.Kind(k), Models: []enginefake.Model{{Name: "org/model:Q4"}}})
			src.addEngine("e", k, f.URL(), "org/model:Q4")
			src.models[0].Capabilities = engine.Capabilities{Chat: true, ChatStream: true, Tools: true}
			p := startProxy(t, src, key)
			for _, c := range requests {
				before := len(f.Requests())
				r := p.do(t, "POST", c.path, c.body, "X-Api-Key", p.key.Plain)
				prefix := string(k) + "_" + c.name
				reqs := f.Requests()
				if len(reqs) == before {
					// Refused by FLM: the client's answer is the golden.
					golden(t, prefix+".client.json", indent(t, normalizeAnswer(r.body)))
					continue
				}
				up := reqs[len(reqs)-1]
				var body any
				if err := json.Unmarshal(up.Body, &body); err != nil {
					t.Fatalf("%s: upstream body %s", prefix, up.Body)
				}
				upstream, _ := json.Marshal(map[string]any{"path": up.Path, "body": body})
				golden(t, prefix+".upstream.json", indent(t, upstream))
				if r.status != 200 {
					t.Fatalf("%s: %d %s", prefix, r.status, r.body)
				}
				if strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
					golden(t, prefix+".client.sse", normalizeAnswer(r.body))
				} else {
					golden(t, prefix+".client.json", indent(t, normalizeAnswer(r.body)))
				}
			}
		})
	}
}
