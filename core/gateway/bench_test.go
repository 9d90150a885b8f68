package gateway

import (
	"testing"

	"github.com/unjuno/flm/core/engine"
)

// BenchmarkParseAndRewrite is the request path's share of the gateway:
// validate a chat body (incl. the case-variant checks) and rewrite it.
func BenchmarkParseAndRewrite(b *testing.B) {
	body := []byte(`{"model":"flm://ollama/llama3:latest","messages":[{"role":"system","content":"You are a storyteller."},{"role":"user","content":"Tell me a story about a cat."}],"max_tokens":16,"temperature":0.7,"stream":true,"stream_options":{"include_usage":true}}`)
	tg := Target{Endpoint: engine.Endpoint{ID: "ollama", Kind: engine.Ollama}, Model: "llama3:latest"}
	b.ReportAllocs()
	for b.Loop() {
		r, err := ParseRequest(Chat, body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Rewrite(tg); err != nil {
			b.Fatal(err)
		}
	}
}
